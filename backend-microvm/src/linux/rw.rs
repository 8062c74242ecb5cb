//! Moving bytes: read/write and friends (`readv`, `pread64`, `sendfile`...) between the
//! workload's memory and its files, pipes, devices and stdio, through bounded pieces.

use std::os::fd::AsRawFd;
use std::rc::Rc;

use sandbox_core::StreamKind;

use super::fd::{FileKind, OpenFile};
use super::{too_many, Kernel, SysErr, SysResult};
use crate::abi::Iovec;
use crate::errno;
use crate::errno::Errno;
use crate::mm::UserPtr;
use crate::pipe::{PipeEnd, PIPE_CAPACITY};
use crate::stdio::Input;
use crate::vfs::{host, DevKind};

/// Largest count one read or write handles (as Linux's `MAX_RW_COUNT`).
const RW_MAX: u64 = 0x7fff_f000;
/// Most `iovec`s in one call (Linux's `UIO_MAXIOV`).
pub(crate) const IOV_MAX: usize = 1024;
/// Bytes moved through the VMM per step.
const PIECE: u64 = 128 * 1024;
/// `SIGPIPE`.
const SIGPIPE: i32 = 13;
/// `SIGXFSZ`.
const SIGXFSZ: i32 = 25;

impl FileKind {
    /// Files whose reads can be repeated until the count or end of file.
    fn is_regular(&self) -> bool {
        matches!(
            self,
            FileKind::Host(_) | FileKind::Tmp(_) | FileKind::Gen(_) | FileKind::Dev(_)
        )
    }
}

impl Kernel {
    /// Reads from `file` into the workload's `buf`, at `at` or the file position.
    pub(crate) fn read_file(
        &mut self,
        file: &Rc<OpenFile>,
        buf: u64,
        len: u64,
        at: Option<u64>,
    ) -> SysResult {
        if matches!(file.kind, FileKind::Dir) {
            return Err(errno::EISDIR.into());
        }
        if !file.readable() {
            return Err(errno::EBADF.into());
        }
        let len = len.min(RW_MAX);
        let mut done = 0u64;
        while done < len {
            let piece = (len - done).min(PIECE);
            // The destination must be writable before anything is consumed.
            if let Err(e) = self.mm.user_chunks(buf + done, piece, true) {
                return if done > 0 { Ok(done) } else { Err(e.into()) };
            }
            let mut tmp = vec![0u8; piece as usize];
            let n = match self.source_read(file, &mut tmp, at.map(|o| o + done), done > 0) {
                Ok(n) => n,
                Err(SysErr::Errno(_) | SysErr::Block(_)) if done > 0 => return Ok(done),
                Err(e) => return Err(e),
            };
            self.mm.write_user(buf + done, &tmp[..n])?;
            done += n as u64;
            if (n as u64) < piece || !file.kind.is_regular() {
                break;
            }
        }
        Ok(done)
    }

    fn source_read(
        &mut self,
        file: &OpenFile,
        buf: &mut [u8],
        at: Option<u64>,
        partial: bool,
    ) -> Result<usize, SysErr> {
        let off = at.unwrap_or(file.pos.get());
        let n = match &file.kind {
            FileKind::Stdin => {
                return self.read_stdin(buf, file.flags.get() & libc::O_NONBLOCK != 0 || partial)
            }
            FileKind::Host(fd) => host::pread(fd.as_raw_fd(), buf, off)?,
            FileKind::Tmp(t) => {
                if !self.shm.is_empty() {
                    self.shm_to_file(t);
                }
                t.read_at(off, buf)?
            }
            FileKind::Gen(b) => {
                let start = (off as usize).min(b.len());
                let n = buf.len().min(b.len() - start);
                buf[..n].copy_from_slice(&b[start..start + n]);
                n
            }
            FileKind::Dev(DevKind::Null) => 0,
            FileKind::Dev(DevKind::Zero | DevKind::Full) => {
                buf.fill(0);
                buf.len()
            }
            FileKind::Dev(DevKind::Random) => {
                fill_random(buf);
                buf.len()
            }
            FileKind::Pipe(end) if !end.write => {
                return self.read_pipe(end, buf, file.flags.get() & libc::O_NONBLOCK != 0, false)
            }
            FileKind::Socket(sock) => {
                let rx = sock.rx.borrow();
                return match rx.as_ref() {
                    Some(end) => {
                        self.read_pipe(end, buf, file.flags.get() & libc::O_NONBLOCK != 0, false)
                    }
                    None => Ok(0),
                };
            }
            FileKind::EventFd(ev) => {
                return self.read_eventfd(ev, buf, file.flags.get() & libc::O_NONBLOCK != 0)
            }
            FileKind::Dir => return Err(errno::EISDIR.into()),
            _ => return Err(errno::EBADF.into()),
        };
        if at.is_none()
            && matches!(
                file.kind,
                FileKind::Host(_) | FileKind::Tmp(_) | FileKind::Gen(_)
            )
        {
            file.pos.set(off + n as u64);
        }
        Ok(n)
    }

    fn read_stdin(&mut self, buf: &mut [u8], nonblock: bool) -> Result<usize, SysErr> {
        loop {
            match &mut self.input {
                Input::Null => return Ok(0),
                Input::Bytes(data, pos) => {
                    let n = buf.len().min(data.len() - *pos);
                    buf[..n].copy_from_slice(&data[*pos..*pos + n]);
                    *pos += n;
                    return Ok(n);
                }
                Input::Stream(q) => {
                    if let Some(d) = q.take(buf.len()) {
                        buf[..d.len()].copy_from_slice(&d);
                        return Ok(d.len());
                    }
                    if nonblock {
                        return Err(errno::EAGAIN.into());
                    }
                }
            }
            self.block_until(None)?;
        }
    }

    /// Reads what a pipe (or one direction of a socket pair) holds: one message for
    /// datagrams (the rest of a longer one is dropped, as Linux does), else up to
    /// `buf.len()` bytes. With `peek`, nothing is taken.
    pub(crate) fn read_pipe(
        &mut self,
        end: &PipeEnd,
        buf: &mut [u8],
        nonblock: bool,
        peek: bool,
    ) -> Result<usize, SysErr> {
        {
            let mut p = end.pipe.borrow_mut();
            if !p.buf.is_empty() {
                let avail = match &p.msgs {
                    Some(m) => m.front().copied().unwrap_or(0),
                    None => p.buf.len(),
                };
                let n = buf.len().min(avail);
                for (i, b) in p.buf.iter().take(n).enumerate() {
                    buf[i] = *b;
                }
                if !peek {
                    let take = if p.msgs.is_some() { avail } else { n };
                    p.buf.drain(..take);
                    if let Some(m) = p.msgs.as_mut() {
                        m.pop_front();
                    }
                }
                return Ok(n);
            }
            if p.writers == 0 && !p.no_writer_yet {
                return Ok(0);
            }
        }
        if nonblock {
            return Err(errno::EAGAIN.into());
        }
        Err(self.park(None))
    }

    /// Writes into a pipe (or one direction of a socket pair): what fits (a datagram
    /// fits whole or waits); `EPIPE` (and `SIGPIPE` unless `nosignal`) without readers.
    pub(crate) fn write_pipe(
        &mut self,
        end: &PipeEnd,
        data: &[u8],
        nonblock: bool,
        nosignal: bool,
    ) -> Result<usize, SysErr> {
        {
            let mut p = end.pipe.borrow_mut();
            if p.readers == 0 && !p.no_reader_yet {
                drop(p);
                if !nosignal {
                    self.raise(SIGPIPE)?;
                }
                return Err(errno::EPIPE.into());
            }
            let room = PIPE_CAPACITY.saturating_sub(p.buf.len());
            if p.msgs.is_some() {
                if data.len() > PIPE_CAPACITY {
                    return Err(Errno(libc::EMSGSIZE).into());
                }
                if room >= data.len() {
                    p.buf.extend(data);
                    if let Some(m) = p.msgs.as_mut() {
                        m.push_back(data.len());
                    }
                    return Ok(data.len());
                }
            } else if room > 0 {
                let n = room.min(data.len());
                p.buf.extend(&data[..n]);
                return Ok(n);
            }
        }
        if nonblock {
            return Err(errno::EAGAIN.into());
        }
        Err(self.park(None))
    }

    /// Writes the workload's `buf` to `file`, at `at` or the file position.
    pub(crate) fn write_file(
        &mut self,
        file: &Rc<OpenFile>,
        buf: u64,
        len: u64,
        at: Option<u64>,
    ) -> SysResult {
        if matches!(file.kind, FileKind::Dir) {
            return Err(errno::EISDIR.into());
        }
        if !file.writable() {
            return Err(errno::EBADF.into());
        }
        let len = len.min(RW_MAX);
        let mut done = 0u64;
        while done < len {
            let piece = (len - done).min(PIECE);
            let data = match self.mm.read_user_vec(buf + done, piece as usize) {
                Ok(d) => d,
                Err(e) => return if done > 0 { Ok(done) } else { Err(e.into()) },
            };
            let n = match self.sink_write(file, &data, at.map(|o| o + done)) {
                Ok(n) => n,
                Err(SysErr::Errno(_) | SysErr::Block(_)) if done > 0 => return Ok(done),
                Err(e) => return Err(e),
            };
            done += n as u64;
            if (n as u64) < piece {
                break;
            }
        }
        Ok(done)
    }

    /// Bytes that may be written at `off` under `RLIMIT_FSIZE`; raises SIGXFSZ past it.
    fn fsize_room(&mut self, off: u64, len: usize) -> Result<usize, SysErr> {
        let Some(limit) = self.limits.file_size else {
            return Ok(len);
        };
        if off >= limit && len > 0 {
            self.raise(SIGXFSZ)?;
            return Err(errno::EFBIG.into());
        }
        Ok(len.min((limit - off.min(limit)) as usize))
    }

    fn sink_write(
        &mut self,
        file: &OpenFile,
        data: &[u8],
        at: Option<u64>,
    ) -> Result<usize, SysErr> {
        let append = file.flags.get() & libc::O_APPEND != 0;
        match &file.kind {
            FileKind::Output(err) => {
                let stream = if *err {
                    StreamKind::Stderr
                } else {
                    StreamKind::Stdout
                };
                self.out.write(stream, data)?;
                Ok(data.len())
            }
            FileKind::Host(fd) => {
                let off = if append {
                    host::fstat(fd.as_raw_fd())?.size
                } else {
                    at.unwrap_or(file.pos.get())
                };
                let room = self.fsize_room(off, data.len())?;
                let n = host::pwrite(fd.as_raw_fd(), &data[..room], off)?;
                if at.is_none() {
                    file.pos.set(off + n as u64);
                }
                Ok(n)
            }
            FileKind::Tmp(t) => {
                let off = if append {
                    t.meta().size
                } else {
                    at.unwrap_or(file.pos.get())
                };
                let room = self.fsize_room(off, data.len())?;
                if !self.shm.is_empty() {
                    self.shm_to_file(t);
                }
                let n = t.write_at(off, &data[..room])?;
                if !self.shm.is_empty() {
                    self.shm_from_file(t);
                }
                if at.is_none() {
                    file.pos.set(off + n as u64);
                }
                Ok(n)
            }
            FileKind::Dev(DevKind::Full) => Err(errno::ENOSPC.into()),
            FileKind::Dev(_) => Ok(data.len()),
            FileKind::Pipe(end) if end.write => {
                self.write_pipe(end, data, file.flags.get() & libc::O_NONBLOCK != 0, false)
            }
            FileKind::Socket(sock) => {
                let tx = sock.tx.borrow();
                match tx.as_ref() {
                    Some(end) => {
                        self.write_pipe(end, data, file.flags.get() & libc::O_NONBLOCK != 0, false)
                    }
                    None => {
                        drop(tx);
                        self.raise(SIGPIPE)?;
                        Err(errno::EPIPE.into())
                    }
                }
            }
            FileKind::EventFd(ev) => {
                self.write_eventfd(ev, data, file.flags.get() & libc::O_NONBLOCK != 0)
            }
            _ => Err(errno::EBADF.into()),
        }
    }

    pub(crate) fn sys_read(&mut self, fd: u64, buf: u64, len: u64) -> SysResult {
        let f = self.proc.files.get(fd)?;
        self.read_file(&f, buf, len, None)
    }

    pub(crate) fn sys_write(&mut self, fd: u64, buf: u64, len: u64) -> SysResult {
        let f = self.proc.files.get(fd)?;
        self.write_file(&f, buf, len, None)
    }

    fn positional(&self, fd: u64, off: u64) -> Result<Rc<OpenFile>, SysErr> {
        let f = self.proc.files.get(fd)?;
        if (off as i64) < 0 {
            return Err(errno::EINVAL.into());
        }
        match f.kind {
            FileKind::Host(_)
            | FileKind::Tmp(_)
            | FileKind::Gen(_)
            | FileKind::Dev(_)
            | FileKind::Dir => Ok(f),
            _ => Err(errno::ESPIPE.into()),
        }
    }

    pub(crate) fn sys_pread(&mut self, fd: u64, buf: u64, len: u64, off: u64) -> SysResult {
        let f = self.positional(fd, off)?;
        self.read_file(&f, buf, len, Some(off))
    }

    pub(crate) fn sys_pwrite(&mut self, fd: u64, buf: u64, len: u64, off: u64) -> SysResult {
        let f = self.positional(fd, off)?;
        self.write_file(&f, buf, len, Some(off))
    }

    /// The `iovec`s of `readv`/`writev`: at most `IOV_MAX`, their total a `ssize_t`
    /// (both `EINVAL`, as Linux's `import_iovec`).
    pub(crate) fn iovecs(
        &mut self,
        iov: UserPtr<Iovec>,
        cnt: u64,
    ) -> Result<Vec<(u64, u64)>, SysErr> {
        let v = self
            .mm
            .read_array(iov, cnt, IOV_MAX)
            .map_err(too_many(errno::EINVAL))?;
        let mut total = 0u64;
        for i in &v {
            total = total
                .checked_add(i.iov_len)
                .filter(|t| *t as i64 >= 0)
                .ok_or(errno::EINVAL)?;
        }
        Ok(v.iter().map(|i| (i.iov_base, i.iov_len)).collect())
    }

    pub(crate) fn sys_readv(
        &mut self,
        fd: u64,
        iov: UserPtr<Iovec>,
        cnt: u64,
        off: Option<u64>,
    ) -> SysResult {
        let f = match off {
            Some(o) => self.positional(fd, o)?,
            None => self.proc.files.get(fd)?,
        };
        let mut done = 0;
        for (base, len) in self.iovecs(iov, cnt)? {
            if len == 0 {
                continue;
            }
            let n = match self.read_file(&f, base, len, off.map(|o| o + done)) {
                Ok(n) => n,
                Err(SysErr::Errno(_)) if done > 0 => return Ok(done),
                Err(e) => return Err(e),
            };
            done += n;
            if n < len || !f.kind.is_regular() {
                break;
            }
        }
        Ok(done)
    }

    pub(crate) fn sys_writev(
        &mut self,
        fd: u64,
        iov: UserPtr<Iovec>,
        cnt: u64,
        off: Option<u64>,
    ) -> SysResult {
        let f = match off {
            Some(o) => self.positional(fd, o)?,
            None => self.proc.files.get(fd)?,
        };
        let mut done = 0;
        for (base, len) in self.iovecs(iov, cnt)? {
            if len == 0 {
                continue;
            }
            let n = match self.write_file(&f, base, len, off.map(|o| o + done)) {
                Ok(n) => n,
                Err(SysErr::Errno(_)) if done > 0 => return Ok(done),
                Err(e) => return Err(e),
            };
            done += n;
            if n < len {
                break;
            }
        }
        Ok(done)
    }

    pub(crate) fn sys_sendfile(
        &mut self,
        out_fd: u64,
        in_fd: u64,
        offp: UserPtr<i64>,
        count: u64,
    ) -> SysResult {
        let input = self.proc.files.get(in_fd)?;
        let output = self.proc.files.get(out_fd)?;
        if !input.readable() || !output.writable() {
            return Err(errno::EBADF.into());
        }
        let mut off = if !offp.is_null() {
            let o = self.mm.read(offp)?;
            Some(u64::try_from(o).map_err(|_| errno::EINVAL)?)
        } else {
            None
        };
        let count = count.min(RW_MAX);
        let mut done = 0u64;
        while done < count {
            let mut tmp = vec![0u8; (count - done).min(PIECE) as usize];
            let n = match self.source_read(&input, &mut tmp, off, done > 0) {
                Ok(n) => n,
                Err(SysErr::Errno(_) | SysErr::Block(_)) if done > 0 => break,
                Err(e) => return Err(e),
            };
            if n == 0 {
                break;
            }
            let w = match self.sink_write(&output, &tmp[..n], None) {
                Ok(w) => w,
                Err(e) => {
                    // Put back what was taken but not written (positional inputs).
                    if off.is_none()
                        && matches!(
                            input.kind,
                            FileKind::Host(_) | FileKind::Tmp(_) | FileKind::Gen(_)
                        )
                    {
                        input.pos.set(input.pos.get().saturating_sub(n as u64));
                    }
                    if done > 0 && matches!(e, SysErr::Errno(_) | SysErr::Block(_)) {
                        break;
                    }
                    return Err(e);
                }
            };
            done += w as u64;
            if let Some(o) = off.as_mut() {
                *o = o.saturating_add(w as u64);
            } else if w < n {
                input.pos.set(input.pos.get() - (n - w) as u64);
            }
            if w < n {
                break;
            }
        }
        if let Some(o) = off {
            self.mm.write(offp, &(o as i64))?;
        }
        Ok(done)
    }
}

/// Fills `buf` from the host's random source.
pub(crate) fn fill_random(buf: &mut [u8]) {
    let mut done = 0;
    while done < buf.len() {
        // SAFETY: writes at most the remaining length into the buffer.
        let n = unsafe { libc::getrandom(buf[done..].as_mut_ptr().cast(), buf.len() - done, 0) };
        if n <= 0 {
            break;
        }
        done += n as usize;
    }
}
