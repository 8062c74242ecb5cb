//! Moving bytes: read/write and friends (`readv`, `pread64`, `sendfile`...) between the
//! workload's memory and its files, pipes, devices and stdio, through bounded pieces.

use std::os::fd::AsRawFd;
use std::rc::Rc;

use sandbox_core::StreamKind;

use super::fd::{FileKind, OpenFile};
use super::socket::{MSG_DONTWAIT, MSG_PEEK};
use super::{too_many, Kernel, Stop, SysErr, SysResult};
use crate::abi::Iovec;
use crate::errno;
use crate::errno::Errno;
use crate::mm::UserPtr;
use crate::pipe::{self, PipeEnd};
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

/// A zeroed buffer of `len` bytes for a read to fill (reads, `sendfile`,
/// `copy_file_range`, `recvfrom`), kept by the thread for the next read when dropped
/// if it is no larger than [`PIECE`]. A fresh buffer of a piece's size was a new
/// mapping from the allocator at every read (128 KiB is its mmap threshold), and the
/// host's faults on its pages cost more than the copy: ~80 µs of a 64 KiB pipe read
/// here. The buffer is zeroed as a fresh one was (a source may count bytes it left).
pub(crate) struct Scratch(Vec<u8>);

thread_local! {
    static SCRATCH: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

impl Scratch {
    pub(crate) fn new(len: usize) -> Scratch {
        let mut v = SCRATCH.with(std::cell::Cell::take);
        v.clear();
        v.resize(len, 0);
        Scratch(v)
    }
}

impl std::ops::Deref for Scratch {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl std::ops::DerefMut for Scratch {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // One buffer a thread, of a piece at most (a nested read took an empty one).
        if self.0.capacity() <= PIECE as usize {
            let v = std::mem::take(&mut self.0);
            SCRATCH.with(|s| {
                let kept = s.take();
                s.set(if kept.capacity() >= v.capacity() {
                    kept
                } else {
                    v
                });
            });
        }
    }
}

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
        let r = self.read_file_unwatched(file, buf, len, at);
        if matches!(r, Ok(n) if n > 0) {
            self.notify_file(file, super::inotify::IN_ACCESS);
        }
        r
    }

    fn read_file_unwatched(
        &mut self,
        file: &Rc<OpenFile>,
        buf: u64,
        len: u64,
        at: Option<u64>,
    ) -> SysResult {
        if !file.readable() {
            return Err(errno::EBADF.into());
        }
        if matches!(file.kind, FileKind::Dir) {
            return Err(errno::EISDIR.into());
        }
        let len = len.min(RW_MAX);
        let regular = file.kind.is_regular();
        let mut done = 0u64;
        while done < len {
            if done > 0 && crate::kick::must_stop() {
                return Ok(done); // a limit was reached: the run ends at the next turn
            }
            let piece = (len - done).min(PIECE);
            let mut tmp = Scratch::new(piece as usize);
            let n = if regular {
                // Nothing is consumed: read first, as Linux does (a read at the end of
                // a file answers 0 whatever the buffer), then copy out what came.
                let pos = at.unwrap_or(file.pos.get()) + if at.is_some() { done } else { 0 };
                let n = match self.source_read(file, &mut tmp, Some(pos), done > 0) {
                    Ok(n) => n,
                    Err(SysErr::Errno(_)) if done > 0 => return Ok(done),
                    Err(e) => return Err(e),
                };
                if let Err(e) = self.mm.write_user(buf + done, &tmp[..n]) {
                    return if done > 0 { Ok(done) } else { Err(e.into()) };
                }
                if at.is_none() && !matches!(file.kind, FileKind::Dev(_)) {
                    file.pos.set(pos + n as u64);
                }
                n
            } else {
                // A pipe, socket or stream: the destination must be writable before
                // anything is taken (but a read that takes nothing never looks at it).
                // Read once: the loop ends after this piece (`!regular`).
                self.check_read_buffer(file, buf, piece, 0)?;
                let n = match self.source_read(file, &mut tmp, None, done > 0) {
                    Ok(n) => n,
                    Err(SysErr::Errno(_) | SysErr::Block(_)) if done > 0 => return Ok(done),
                    Err(e) => return Err(e),
                };
                self.mm.write_user(buf + done, &tmp[..n])?;
                n
            };
            done += n as u64;
            if (n as u64) < piece || !regular {
                break;
            }
        }
        Ok(done)
    }

    /// A write of `len` bytes that is refused whole is refused before its bytes are
    /// read, as Linux's `pipe_write` (no reader) and `unix_*_sendmsg` refuse it (not
    /// connected; shut for sending by this socket's `SHUT_WR` or, stream and
    /// seqpacket, its peer's `SHUT_RD`): `EPIPE` with `SIGPIPE` (unless `nosignal`),
    /// or the connection's error. Whatever else goes wrong comes after the bytes are
    /// read. `AF_INET` and netlink sockets have their own paths.
    pub(crate) fn refuse_write_early(
        &mut self,
        file: &OpenFile,
        len: u64,
        nosignal: bool,
    ) -> Result<(), SysErr> {
        let unix = |s: &super::fd::Socket| s.inet.is_none() && !super::netlink::is_netlink(file);
        let broken = match &file.kind {
            FileKind::Pipe(end) if end.writes() => {
                let p = end.pipe.borrow();
                len > 0 && p.readers == 0 && !p.no_reader_yet
            }
            FileKind::Socket(s)
                if unix(s) && matches!(s.kind, libc::SOCK_STREAM | libc::SOCK_SEQPACKET) =>
            {
                super::unix::check_connected(s, true)?;
                s.tx.borrow()
                    .as_ref()
                    .is_none_or(|e| e.pipe.borrow().read_shut)
            }
            // A connected datagram socket without its sending end shut it (SHUT_WR).
            FileKind::Socket(s) if unix(s) && s.kind == libc::SOCK_DGRAM => {
                s.unix.borrow().connected && s.tx.borrow().is_none()
            }
            _ => false,
        };
        if broken {
            if !nosignal {
                self.raise(SIGPIPE)?;
            }
            return Err(errno::EPIPE.into());
        }
        Ok(())
    }

    /// Checks that `len` bytes at `buf` can take what a read of `file` (a pipe,
    /// socket or stream) gets, as Linux does: only when it finds something to copy.
    /// A pipe or socket with nothing queued answers what it answers (the end of file,
    /// `EAGAIN`, a wait) whatever the buffer; else `EFAULT`, and a datagram found is
    /// taken and lost with it (Linux's copy fails after the dequeue), unless peeked.
    pub(crate) fn check_read_buffer(
        &mut self,
        file: &OpenFile,
        buf: u64,
        len: u64,
        flags: u64,
    ) -> Result<(), SysErr> {
        let Err(e) = self.mm.user_chunks(buf, len, true) else {
            return Ok(());
        };
        let queue = match &file.kind {
            FileKind::Pipe(end) => Some(Rc::clone(&end.pipe)),
            FileKind::Socket(s) => match s.rx.borrow().as_ref() {
                Some(end) => Some(Rc::clone(&end.pipe)),
                None => return Ok(()), // shut or never connected: nothing is taken
            },
            _ => None,
        };
        let Some(queue) = queue else {
            return Err(e.into());
        };
        let (empty, stream) = {
            let q = queue.borrow();
            (q.is_empty(), q.is_stream())
        };
        if empty {
            return Ok(());
        }
        if !stream && matches!(file.kind, FileKind::Socket(_)) && flags & MSG_PEEK == 0 {
            let mut lost = vec![0u8; 1];
            let _ = self.recv_msg(file, &mut lost, flags | MSG_DONTWAIT);
        }
        Err(e.into())
    }

    pub(crate) fn source_read(
        &mut self,
        file: &OpenFile,
        buf: &mut [u8],
        at: Option<u64>,
        partial: bool,
    ) -> Result<usize, SysErr> {
        let off = at.unwrap_or(file.pos.get());
        let n = match &file.kind {
            FileKind::Stdin(chan) => {
                let nonblock = file.flags.get() & libc::O_NONBLOCK != 0 || partial;
                return self.read_stdin(*chan, buf, nonblock);
            }
            FileKind::Host(fd) => {
                if !self.shm.is_empty() {
                    self.host_to_file(fd, off, buf.len() as u64);
                }
                host::pread(fd.as_raw_fd(), buf, off)?
            }
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
            FileKind::Pipe(end) if end.reads() => {
                return self.read_pipe(end, buf, file.flags.get() & libc::O_NONBLOCK != 0, false)
            }
            FileKind::Socket(_) => return self.sock_read(file, buf),
            FileKind::Tty(t) => {
                let t = Rc::clone(t);
                return self.tty_read(file, &t, buf, partial);
            }
            FileKind::PtyMaster(m) => return self.master_read(file, &m.0, buf, partial),
            FileKind::EventFd(ev) => {
                return self.read_eventfd(ev, buf, file.flags.get() & libc::O_NONBLOCK != 0)
            }
            FileKind::TimerFd(t) => {
                return self.read_timerfd(t, buf, file.flags.get() & libc::O_NONBLOCK != 0)
            }
            FileKind::SignalFd(m) => {
                return self.read_signalfd(m.get(), buf, file.flags.get() & libc::O_NONBLOCK != 0)
            }
            FileKind::Inotify(i) => {
                let i = Rc::clone(i);
                return self.read_inotify(&i, buf, file.flags.get() & libc::O_NONBLOCK != 0);
            }
            FileKind::Dir => return Err(errno::EISDIR.into()),
            // Open for reading, but with no read method: EINVAL, as Linux.
            FileKind::PidFd(_) => return Err(errno::EINVAL.into()),
            FileKind::Mqueue(q) => {
                let q = Rc::clone(q);
                return Ok(self.read_mqueue(&q, file, buf));
            }
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

    fn read_stdin(&mut self, chan: u32, buf: &mut [u8], nonblock: bool) -> Result<usize, SysErr> {
        loop {
            match self.input_of(chan) {
                // An ended exec's stdin: end of file.
                None | Some(Input::Null) => return Ok(0),
                Some(Input::Bytes(data, pos)) => {
                    let n = buf.len().min(data.len() - *pos);
                    buf[..n].copy_from_slice(&data[*pos..*pos + n]);
                    *pos += n;
                    return Ok(n);
                }
                Some(Input::Stream(q)) => {
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
        let found = {
            let mut p = end.pipe.borrow_mut();
            let r = p.read(buf, peek);
            if !peek && matches!(r, pipe::Read::Data { .. }) {
                let _ = p.account(&self.mm.mem.budget()); // less: cannot fail
            }
            if matches!(r, pipe::Read::Empty) && end.eof_unwaited(&p) {
                return Ok(0);
            }
            r
        };
        match found {
            pipe::Read::Data { n, .. } => return Ok(n),
            pipe::Read::Eof => return Ok(0),
            pipe::Read::Empty => {}
        }
        if nonblock {
            return Err(errno::EAGAIN.into());
        }
        Err(self.park(None))
    }

    /// Writes into a pipe (or one direction of a socket pair): what fits now (a
    /// datagram fits whole or waits); `EPIPE` (and `SIGPIPE` unless `nosignal`)
    /// without readers. Waiting for the rest of a large write is the caller's
    /// ([`Kernel::write_iov`]).
    pub(crate) fn write_pipe(
        &mut self,
        end: &PipeEnd,
        data: &[u8],
        nonblock: bool,
        nosignal: bool,
    ) -> Result<usize, SysErr> {
        let budget = self.mm.mem.budget();
        let w = {
            let mut p = end.pipe.borrow_mut();
            let w = p.write(data);
            // What the buffer holds is the sandbox's memory.
            if matches!(w, pipe::Write::Wrote(_)) && p.account(&budget).is_err() {
                return Err(Stop::MemoryLimit.into());
            }
            w
        };
        match w {
            pipe::Write::Wrote(n) => Ok(n),
            pipe::Write::Broken => {
                if !nosignal {
                    self.raise(SIGPIPE)?;
                }
                Err(errno::EPIPE.into())
            }
            pipe::Write::TooBig => Err(Errno(libc::EMSGSIZE).into()),
            pipe::Write::Full if nonblock => Err(errno::EAGAIN.into()),
            pipe::Write::Full => Err(self.park(None)),
        }
    }

    /// A write that moved `done` bytes and now waits for room: where it goes on from
    /// when tried again, and what others wait for has changed (the bytes it wrote are
    /// there to read: a reader waiting for them is tried again, or both would wait
    /// for ever).
    pub(crate) fn block_part_way(&mut self, done: u64, b: super::Block) -> SysErr {
        self.task.partial = done;
        self.stirred = true;
        SysErr::Block(b)
    }

    /// Bytes an interrupted write of this syscall already moved (a blocking write to a
    /// pipe that waits for room part way): the syscall goes on from there when it is
    /// tried again, and answers that count if a signal ends the wait.
    pub(crate) fn resume_point(&self) -> u64 {
        if self.retrying.is_some() {
            self.task.partial
        } else {
            0
        }
    }

    /// Writes the workload's `buf` to `file`, at `at` or the file position.
    pub(crate) fn write_file(
        &mut self,
        file: &Rc<OpenFile>,
        buf: u64,
        len: u64,
        at: Option<u64>,
    ) -> SysResult {
        self.write_iov(file, &[(buf, len.min(RW_MAX))], at)
    }

    /// Writes the workload's buffers `iov` (their total checked) to `file`, at `at`
    /// or the file position. A blocking write to a pipe or stream socket waits until
    /// all of it is written (a write of at most `PIPE_BUF` bytes goes in at once), as
    /// Linux's does; a signal ends the wait with the count written so far.
    pub(crate) fn write_iov(
        &mut self,
        file: &Rc<OpenFile>,
        iov: &[(u64, u64)],
        at: Option<u64>,
    ) -> SysResult {
        let r = self.write_iov_unwatched(file, iov, at);
        if matches!(r, Ok(n) if n > 0) {
            self.notify_file(file, super::inotify::IN_MODIFY);
        }
        r
    }

    fn write_iov_unwatched(
        &mut self,
        file: &Rc<OpenFile>,
        iov: &[(u64, u64)],
        at: Option<u64>,
    ) -> SysResult {
        if !file.writable() {
            return Err(errno::EBADF.into());
        }
        if matches!(file.kind, FileKind::Dir) {
            return Err(errno::EISDIR.into());
        }
        let total: u64 = iov.iter().map(|(_, l)| *l).sum();
        match file.kind {
            // Discarded without being read, as Linux's write_null.
            FileKind::Dev(DevKind::Null | DevKind::Zero) => return Ok(total),
            FileKind::Dev(DevKind::Full) => return Err(errno::ENOSPC.into()),
            _ => {}
        }
        let blocking = file.flags.get() & libc::O_NONBLOCK == 0;
        let waits_for_all = blocking
            && match &file.kind {
                FileKind::Pipe(_) => true,
                FileKind::Socket(s) => s.kind == libc::SOCK_STREAM,
                _ => false,
            };
        let mut done = self.resume_point();
        if done == 0 {
            self.refuse_write_early(file, total, false)?;
        }
        let mut seg_start = 0u64;
        for &(base, len) in iov {
            let seg_end = seg_start + len;
            while done < seg_end {
                if done > 0 && crate::kick::must_stop() {
                    return Ok(done); // a limit was reached: the run ends at the next turn
                }
                let pos = done - seg_start;
                let piece = (len - pos).min(PIECE);
                let data = match self.mm.read_user_vec(base + pos, piece as usize) {
                    Ok(d) => d,
                    Err(e) => return if done > 0 { Ok(done) } else { Err(e.into()) },
                };
                let n = match self.sink_write(file, &data, at.map(|o| o + done)) {
                    Ok(n) => n as u64,
                    Err(SysErr::Block(b)) if done > 0 && waits_for_all => {
                        return Err(self.block_part_way(done, b));
                    }
                    Err(SysErr::Errno(_) | SysErr::Block(_)) if done > 0 => return Ok(done),
                    Err(e) => return Err(e),
                };
                done += n;
                if n < piece && !waits_for_all {
                    return Ok(done);
                }
            }
            seg_start = seg_end;
        }
        Ok(done)
    }

    /// Bytes that may be written at `off` under `RLIMIT_FSIZE`; raises SIGXFSZ past it.
    fn fsize_room(&mut self, off: u64, len: usize) -> Result<usize, SysErr> {
        let Some(limit) = self.file_size_limit() else {
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
        file: &Rc<OpenFile>,
        data: &[u8],
        at: Option<u64>,
    ) -> Result<usize, SysErr> {
        let append = file.flags.get() & libc::O_APPEND != 0;
        match &file.kind {
            FileKind::Output(chan, err) => {
                let stream = if *err {
                    StreamKind::Stderr
                } else {
                    StreamKind::Stdout
                };
                if *chan == 0 {
                    self.out.write(stream, data)?;
                } else {
                    self.live_output(*chan, stream, data);
                }
                Ok(data.len())
            }
            FileKind::Host(fd) => {
                let off = if append {
                    host::fstat(fd.as_raw_fd())?.size
                } else {
                    at.unwrap_or(file.pos.get())
                };
                let room = self.fsize_room(off, data.len())?;
                if !self.shm.is_empty() {
                    self.host_to_file(fd, off, room as u64);
                }
                let n = host::pwrite(fd.as_raw_fd(), &data[..room], off)?;
                if !self.shm.is_empty() {
                    self.host_from_file(fd, off, n as u64);
                }
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
            FileKind::Pipe(end) if end.writes() => {
                self.write_pipe(end, data, file.flags.get() & libc::O_NONBLOCK != 0, false)
            }
            FileKind::Socket(_) if super::netlink::is_netlink(file) => {
                // To the kernel: a request, as send(2) makes it.
                self.netlink_send(file, data, 0, None).map(|n| n as usize)
            }
            FileKind::Socket(sock) if sock.inet.is_some() && sock.kind != libc::SOCK_STREAM => {
                // UDP: to the peer, through the same path as send(2).
                self.inet_send(file, data, 0, None, Default::default())
                    .map(|n| n as usize)
            }
            FileKind::Socket(sock) => {
                super::unix::check_connected(sock, true)?;
                if let Some(n) = super::inet::write_to_gone_peer(sock, data.len()) {
                    return Ok(n);
                }
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
            // Open for writing, but with no write method: EINVAL, as Linux.
            FileKind::TimerFd(_)
            | FileKind::SignalFd(_)
            | FileKind::PidFd(_)
            | FileKind::Mqueue(_) => Err(errno::EINVAL.into()),
            FileKind::Tty(t) => {
                let t = Rc::clone(t);
                self.tty_write(file, &t, data)
            }
            FileKind::PtyMaster(m) => self.master_write(file, &m.0, data),
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
        // A negative offset is refused before the descriptor is looked at.
        if (off as i64) < 0 {
            return Err(errno::EINVAL.into());
        }
        let f = self.proc.files.get(fd)?;
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

    /// The `iovec`s of `readv`/`writev`, as Linux's `import_iovec`: at most
    /// `IOV_MAX` (`EINVAL`), no negative length (`EINVAL`), the total cut to
    /// `MAX_RW_COUNT`, and every buffer in the user half (`EFAULT`, before any byte
    /// moves).
    pub(crate) fn iovecs(
        &mut self,
        iov: UserPtr<Iovec>,
        cnt: u64,
    ) -> Result<Vec<(u64, u64)>, SysErr> {
        let v = self
            .mm
            .read_array(iov, u64::from(cnt as i32 as u32), IOV_MAX)
            .map_err(too_many(errno::EINVAL))?;
        if (cnt as i32) < 0 {
            return Err(errno::EINVAL.into());
        }
        let mut total = 0u64;
        let mut out = Vec::with_capacity(v.len());
        for i in &v {
            if (i.iov_len as i64) < 0 {
                return Err(errno::EINVAL.into());
            }
            let len = i.iov_len.min(RW_MAX - total);
            // access_ok: even an empty buffer must start in the user half.
            if !user_range(i.iov_base, len) {
                return Err(errno::EFAULT.into());
            }
            total += len;
            out.push((i.iov_base, len));
        }
        Ok(out)
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
        if !f.readable() {
            return Err(errno::EBADF.into());
        }
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
        if !f.writable() {
            return Err(errno::EBADF.into());
        }
        let iov = self.iovecs(iov, cnt)?;
        self.write_iov(&f, &iov, off)
    }

    fn file_id(&self, f: &OpenFile) -> Result<Option<FileId>, SysErr> {
        Ok(match &f.kind {
            FileKind::Host(fd) => {
                let m = host::fstat(fd.as_raw_fd())?;
                Some(FileId::Host(m.dev, m.ino))
            }
            FileKind::Tmp(t) => Some(FileId::Tmp(
                Rc::as_ptr(t.fs()) as usize,
                Rc::as_ptr(t) as usize,
            )),
            FileKind::Gen(b) => Some(FileId::Gen(b.as_ptr() as usize)),
            _ => None,
        })
    }

    /// `copy_file_range`: bytes from one regular file to another of the same
    /// filesystem (`EXDEV` across), through the VMM, with Linux's checks in Linux's
    /// order.
    pub(crate) fn sys_copy_file_range(
        &mut self,
        fd_in: u64,
        off_in: UserPtr<i64>,
        fd_out: u64,
        off_out: UserPtr<i64>,
        len: u64,
        flags: u64,
    ) -> SysResult {
        let input = self.proc.files.get(fd_in)?;
        let output = self.proc.files.get(fd_out)?;
        let pos_in = if off_in.is_null() {
            input.pos.get() as i64
        } else {
            self.mm.read(off_in)?
        };
        let pos_out = if off_out.is_null() {
            output.pos.get() as i64
        } else {
            self.mm.read(off_out)?
        };
        if flags != 0 {
            return Err(errno::EINVAL.into());
        }
        if matches!(input.kind, FileKind::Dir) || matches!(output.kind, FileKind::Dir) {
            return Err(errno::EISDIR.into());
        }
        let (Some(id_in), Some(id_out)) = (self.file_id(&input)?, self.file_id(&output)?) else {
            return Err(errno::EINVAL.into());
        };
        if !input.readable() || !output.writable() || output.flags.get() & libc::O_APPEND != 0 {
            return Err(errno::EBADF.into());
        }
        // Offsets and the count are added as unsigned numbers, as Linux does.
        if (pos_in as u64).checked_add(len).is_none() || (pos_out as u64).checked_add(len).is_none()
        {
            return Err(Errno(libc::EOVERFLOW).into());
        }
        if !id_in.same_fs(&id_out) {
            return Err(errno::EXDEV.into());
        }
        let size = self.file_size(&input)?;
        let mut count = if pos_in < 0 || pos_in as u64 >= size {
            0
        } else {
            len.min(size - pos_in as u64)
        };
        if pos_out >= 0 {
            count = count.min(self.fsize_room(pos_out as u64, count as usize)? as u64);
        }
        if id_in == id_out
            && pos_out.saturating_add(count as i64) > pos_in
            && pos_out < pos_in.saturating_add(count as i64)
        {
            return Err(errno::EINVAL.into());
        }
        if pos_in < 0 || pos_out < 0 {
            return Err(errno::EINVAL.into());
        }
        let count = count.min(RW_MAX);
        let (mut from, mut to) = (pos_in as u64, pos_out as u64);
        let mut done = 0u64;
        while done < count {
            let mut tmp = Scratch::new((count - done).min(PIECE) as usize);
            let n = match self.source_read(&input, &mut tmp, Some(from), done > 0) {
                Ok(0) => break,
                Ok(n) => n,
                Err(SysErr::Errno(_)) if done > 0 => break,
                Err(e) => return Err(e),
            };
            let w = match self.sink_write(&output, &tmp[..n], Some(to)) {
                Ok(w) => w,
                Err(SysErr::Errno(_)) if done > 0 => break,
                Err(e) => return Err(e),
            };
            done += w as u64;
            from += w as u64;
            to += w as u64;
            if w < n {
                break;
            }
        }
        if done > 0 {
            if off_in.is_null() {
                input.pos.set(from);
            } else {
                self.mm.write(off_in, &(from as i64))?;
            }
            if off_out.is_null() {
                output.pos.set(to);
            } else {
                self.mm.write(off_out, &(to as i64))?;
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
        // A pipe (or the run's stdin, a stream as well) has no `splice_read` for Linux's
        // sendfile: EINVAL, and the caller falls back to read and write. Into a pipe,
        // Linux waits for room (or fails for want of a reader) before it finds that.
        let input = self.proc.files.get(in_fd)?;
        if matches!(input.kind, FileKind::Pipe(_) | FileKind::Stdin(_)) {
            let output = self.proc.files.get(out_fd)?;
            if let FileKind::Pipe(end) = &output.kind {
                if end.writes() {
                    let nonblock = output.flags.get() & libc::O_NONBLOCK != 0;
                    self.write_pipe(end, &[], nonblock, false)?; // EPIPE without a reader
                    if !end.pipe.borrow().writable() {
                        return Err(if nonblock {
                            errno::EAGAIN.into()
                        } else {
                            self.park(None)
                        });
                    }
                }
            }
            return Err(errno::EINVAL.into());
        }
        self.transfer(out_fd, in_fd, offp, UserPtr::new(0), count)
    }

    /// Moves up to `count` bytes from `in_fd` (at `*offp` when given, which is then
    /// advanced; else at its position) to `out_fd` (at `*out_offp` likewise): the body
    /// of `sendfile` and `splice`.
    pub(crate) fn transfer(
        &mut self,
        out_fd: u64,
        in_fd: u64,
        offp: UserPtr<i64>,
        out_offp: UserPtr<i64>,
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
        let mut out_off = if !out_offp.is_null() {
            let o = self.mm.read(out_offp)?;
            Some(u64::try_from(o).map_err(|_| errno::EINVAL)?)
        } else {
            None
        };
        let count = count.min(RW_MAX);
        // A pipe or a socket is peeked, and only what the output took is then taken
        // from it: what the output does not take (it is full, or gone, or a signal
        // ends the wait for room) stays in the input, as Linux's splice leaves it.
        let stream = matches!(input.kind, FileKind::Pipe(_) | FileKind::Socket(_));
        let mut done = 0u64;
        while done < count {
            if done > 0 && crate::kick::must_stop() {
                break; // a limit was reached: the run ends at the next turn
            }
            let mut tmp = Scratch::new((count - done).min(PIECE) as usize);
            let got = if stream {
                self.stream_take(&input, &mut tmp, done > 0, true)
            } else {
                self.source_read(&input, &mut tmp, off, done > 0)
            };
            let n = match got {
                Ok(n) => n,
                Err(SysErr::Errno(_) | SysErr::Block(_)) if done > 0 => break,
                Err(e) => return Err(e),
            };
            if n == 0 {
                break;
            }
            let w = match self.sink_write(&output, &tmp[..n], out_off) {
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
            if stream && w > 0 {
                // Peeked: at least `w` bytes are there, and nothing ran since.
                let mut taken = Scratch::new(w);
                self.stream_take(&input, &mut taken, true, false)?;
            }
            done += w as u64;
            if let Some(o) = out_off.as_mut() {
                *o = o.saturating_add(w as u64);
            }
            if let Some(o) = off.as_mut() {
                *o = o.saturating_add(w as u64);
            } else if w < n && !stream {
                input.pos.set(input.pos.get() - (n - w) as u64);
            }
            if w < n {
                break;
            }
        }
        if let Some(o) = off {
            self.mm.write(offp, &(o as i64))?;
        }
        if let Some(o) = out_off {
            self.mm.write(out_offp, &(o as i64))?;
        }
        Ok(done)
    }

    /// Reads (or with `peek`, copies) what a pipe or a socket `file` holds into `buf`:
    /// `transfer`'s input side. Without waiting after the first piece (`partial`).
    fn stream_take(
        &mut self,
        file: &OpenFile,
        buf: &mut [u8],
        partial: bool,
        peek: bool,
    ) -> Result<usize, SysErr> {
        let nonblock = file.flags.get() & libc::O_NONBLOCK != 0 || partial;
        match &file.kind {
            FileKind::Pipe(end) if end.reads() => self.read_pipe(end, buf, nonblock, peek),
            FileKind::Socket(_) => {
                let flags =
                    if peek { MSG_PEEK } else { 0 } | if partial { MSG_DONTWAIT } else { 0 };
                self.recv_msg(file, buf, flags).map(|(n, _, _)| n)
            }
            _ => Err(errno::EBADF.into()),
        }
    }
}

/// Which filesystem and file an open regular file is on (`copy_file_range` copies
/// within one filesystem, as Linux does between filesystems of different types).
#[derive(Debug, PartialEq, Eq)]
enum FileId {
    /// A host file: its device and inode.
    Host(u64, u64),
    /// An in-memory file: its filesystem and inode (addresses, compared only).
    Tmp(usize, usize),
    /// A generated file (`/proc`, `/etc`): a filesystem of its own each.
    Gen(usize),
}

impl FileId {
    fn same_fs(&self, other: &FileId) -> bool {
        match (self, other) {
            (FileId::Host(a, _), FileId::Host(b, _)) => a == b,
            (FileId::Tmp(a, _), FileId::Tmp(b, _)) => a == b,
            (FileId::Gen(a), FileId::Gen(b)) => a == b,
            _ => false,
        }
    }
}

/// Whether `base .. base + len` lies in the user half (Linux's `access_ok`: a range
/// check only; the pages are looked at when bytes move).
pub(crate) fn user_range(base: u64, len: u64) -> bool {
    base.checked_add(len)
        .is_some_and(|end| end <= crate::guest::layout::USER_TOP)
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
