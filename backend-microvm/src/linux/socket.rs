//! Sockets inside the guest: `socketpair(AF_UNIX)` (stream, datagram, seqpacket), with
//! `send`/`recv`/`sendmsg`/`recvmsg`, `shutdown`, socket options and names. There is no
//! network stack: `socket` for any family answers `EAFNOSUPPORT`, counted.

use std::cell::RefCell;
use std::rc::Rc;

use super::fd::{next_ino, FileKind, OpenFile, Socket};
use zerocopy::IntoBytes;

use super::rw::IOV_MAX;
use super::{Kernel, SysErr, SysResult};
use crate::abi::{MsgHdr, Ucred};
use crate::errno::{self, Errno};
use crate::mm::UserPtr;
use crate::pipe::{Pipe, PipeEnd};

const AF_UNIX: u64 = 1;
const SOCK_STREAM: i32 = 1;
const SOCK_DGRAM: i32 = 2;
const SOCK_SEQPACKET: i32 = 5;
const SOCK_NONBLOCK: u64 = 0x800;
const SOCK_CLOEXEC: u64 = 0x8_0000;
const MSG_PEEK: u64 = 0x2;
const MSG_DONTWAIT: u64 = 0x40;
const MSG_NOSIGNAL: u64 = 0x4000;
const MSG_TRUNC: u64 = 0x20;
const SOL_SOCKET: u64 = 1;

fn pair(kind: i32) -> (Socket, Socket) {
    let a_to_b = Pipe::socket(kind != SOCK_STREAM);
    let b_to_a = Pipe::socket(kind != SOCK_STREAM);
    let a = Socket {
        rx: RefCell::new(Some(PipeEnd::new(&b_to_a, false))),
        tx: RefCell::new(Some(PipeEnd::new(&a_to_b, true))),
        kind,
        ino: next_ino(),
    };
    let b = Socket {
        rx: RefCell::new(Some(PipeEnd::new(&a_to_b, false))),
        tx: RefCell::new(Some(PipeEnd::new(&b_to_a, true))),
        kind,
        ino: next_ino(),
    };
    (a, b)
}

/// What a read of a socket whose receiving side is shut down answers: the end of file,
/// but a non-blocking read of a datagram socket finds nothing yet (`EAGAIN`): Linux
/// only notices the shutdown when it would wait.
pub(crate) fn shut_read(kind: i32, nonblock: bool) -> Result<usize, SysErr> {
    if kind == SOCK_DGRAM && nonblock {
        Err(errno::EAGAIN.into())
    } else {
        Ok(0)
    }
}

impl Kernel {
    /// `socket`: no family is offered (no network stack in the micro-VM).
    pub(crate) fn sys_socket(&mut self, domain: u64, ty: u64, proto: u64) -> SysResult {
        // Linux checks the type's flags and range before the family.
        let ty = ty as i32;
        if ty & !(0xf | SOCK_NONBLOCK as i32 | SOCK_CLOEXEC as i32) != 0 {
            return Err(errno::EINVAL.into());
        }
        if domain >= 46 {
            return Err(errno::EAFNOSUPPORT.into());
        }
        if ty & 0xf > 10 {
            return Err(errno::EINVAL.into());
        }
        if domain == AF_UNIX {
            // unix_create's own checks come before the (missing) socket is made.
            if proto != 0 && proto != AF_UNIX {
                return Err(Errno(libc::EPROTONOSUPPORT).into());
            }
            if !matches!(ty & 0xf, SOCK_STREAM | SOCK_DGRAM | SOCK_SEQPACKET | 3) {
                return Err(Errno(libc::ESOCKTNOSUPPORT).into());
            }
        }
        let what = match domain {
            AF_UNIX => "socket(AF_UNIX)",
            2 => "socket(AF_INET)",
            10 => "socket(AF_INET6)",
            16 => "socket(AF_NETLINK)",
            _ => "socket(other families)",
        };
        Err(self.unsupported(what, errno::EAFNOSUPPORT))
    }

    pub(crate) fn sys_socketpair(
        &mut self,
        domain: u64,
        ty: u64,
        proto: u64,
        sv: UserPtr<[i32; 2]>,
    ) -> SysResult {
        // Linux's order: the type's flags, the family's range, the type's range, the
        // family's own checks (protocol, type), then whether it pairs at all.
        const NPROTO: u64 = 46;
        const SOCK_RAW: i32 = 3;
        if ty & !(0xf | SOCK_NONBLOCK | SOCK_CLOEXEC) != 0 {
            return Err(errno::EINVAL.into());
        }
        if domain >= NPROTO {
            return Err(errno::EAFNOSUPPORT.into());
        }
        let kind = (ty & 0xf) as i32;
        if kind > 10 {
            return Err(errno::EINVAL.into());
        }
        match domain {
            AF_UNIX => {}
            // No network stack: these families exist on Linux, whose sockets do not pair
            // (their protocol checks are not made here).
            2 | 10 | 16 | 17 => return Err(errno::EOPNOTSUPP.into()),
            _ => return Err(errno::EAFNOSUPPORT.into()),
        }
        if proto != 0 && proto != AF_UNIX {
            return Err(Errno(libc::EPROTONOSUPPORT).into());
        }
        let kind = match kind {
            SOCK_STREAM | SOCK_DGRAM | SOCK_SEQPACKET => kind,
            SOCK_RAW => SOCK_DGRAM,
            _ => return Err(Errno(libc::ESOCKTNOSUPPORT).into()),
        };
        self.mm.user_chunks(sv.addr(), 8, true)?;
        let (a, b) = pair(kind);
        let nb = if ty & SOCK_NONBLOCK != 0 {
            libc::O_NONBLOCK
        } else {
            0
        };
        let cloexec = ty & SOCK_CLOEXEC != 0;
        let fa = OpenFile::new(FileKind::Socket(a), None, libc::O_RDWR | nb);
        let fb = OpenFile::new(FileKind::Socket(b), None, libc::O_RDWR | nb);
        let x = self.proc.files.add(fa, cloexec, 0)?;
        let y = match self.proc.files.add(fb, cloexec, 0) {
            Ok(y) => y,
            Err(e) => {
                let _ = self.proc.files.close(x);
                return Err(e.into());
            }
        };
        self.mm.write(sv, &[x as i32, y as i32])?;
        Ok(0)
    }

    fn socket(&self, fd: u64) -> Result<Rc<OpenFile>, SysErr> {
        let f = self.proc.files.get(fd)?;
        match f.kind {
            FileKind::Socket(_) => Ok(f),
            _ => Err(errno::ENOTSOCK.into()),
        }
    }

    /// Sends `data` on socket `f`: a blocking send on a stream socket waits until all
    /// of it is sent (a signal ends the wait with the count sent so far), as Linux's
    /// `unix_stream_sendmsg`; a datagram goes whole or not at all.
    fn send(&mut self, f: &OpenFile, data: &[u8], flags: u64) -> SysResult {
        let FileKind::Socket(s) = &f.kind else {
            return Err(errno::ENOTSOCK.into());
        };
        let nonblock = flags & MSG_DONTWAIT != 0 || f.flags.get() & libc::O_NONBLOCK != 0;
        let nosignal = flags & MSG_NOSIGNAL != 0;
        let waits_for_all = !nonblock && s.kind == SOCK_STREAM;
        let tx = s.tx.borrow();
        let Some(end) = tx.as_ref() else {
            drop(tx);
            if !nosignal {
                self.raise(13)?;
            }
            return Err(errno::EPIPE.into());
        };
        let mut done = self.resume_point() as usize;
        while done < data.len() || data.is_empty() {
            match self.write_pipe(end, &data[done..], nonblock, nosignal) {
                Ok(n) => done += n,
                Err(SysErr::Block(b)) if done > 0 && waits_for_all => {
                    return Err(self.block_part_way(done as u64, b));
                }
                Err(SysErr::Errno(_) | SysErr::Block(_)) if done > 0 => break,
                Err(e) => return Err(e),
            }
            if !waits_for_all || data.is_empty() {
                break;
            }
        }
        Ok(done as u64)
    }

    /// Receives into `buf` from socket `f`; returns the count and the message's length.
    fn recv(&mut self, f: &OpenFile, buf: &mut [u8], flags: u64) -> Result<(usize, usize), SysErr> {
        let FileKind::Socket(s) = &f.kind else {
            return Err(errno::ENOTSOCK.into());
        };
        let nonblock = flags & MSG_DONTWAIT != 0 || f.flags.get() & libc::O_NONBLOCK != 0;
        let rx = s.rx.borrow();
        let Some(end) = rx.as_ref() else {
            return shut_read(s.kind, nonblock).map(|n| (n, n));
        };
        let full = end.pipe.borrow().next_message();
        let n = self.read_pipe(end, buf, nonblock, flags & MSG_PEEK != 0)?;
        Ok((n, full.max(n)))
    }

    pub(crate) fn sys_sendto(
        &mut self,
        fd: u64,
        buf: u64,
        len: u64,
        flags: u64,
        addr: u64,
        alen: u64,
    ) -> SysResult {
        if !super::rw::user_range(buf, len) {
            return Err(errno::EFAULT.into());
        }
        let f = self.socket(fd)?;
        if addr != 0 {
            // `socklen_t` is an unsigned int: the register's low half.
            self.destination(&f, addr, alen as u32)?;
        }
        let data = self.mm.read_user_vec(buf, len.min(1 << 20) as usize)?;
        self.send(&f, &data, flags)
    }

    /// A destination named in `sendto`/`sendmsg`, as Linux answers it for a socket pair:
    /// a stream socket is already connected (EISCONN); a seqpacket one ignores it; a
    /// datagram one would send to the named socket, and no socket here has a name (the
    /// micro-VM has socket pairs only, and never reaches a host socket): ECONNREFUSED.
    fn destination(&mut self, f: &OpenFile, addr: u64, alen: u32) -> Result<(), SysErr> {
        let FileKind::Socket(s) = &f.kind else {
            return Err(errno::ENOTSOCK.into());
        };
        if alen == 0 {
            return Ok(());
        }
        match s.kind {
            SOCK_STREAM => Err(errno::EISCONN.into()),
            SOCK_SEQPACKET => Ok(()),
            _ => Err(self.unix_peer(addr, alen)),
        }
    }

    /// What reaching the `AF_UNIX` address at `addr` (`alen` bytes) comes to, as
    /// Linux's `unix_find_other`: the address checked (`EINVAL`), a path looked up in
    /// the sandbox (`ENOENT`, `ENOTDIR`, `EACCES`...), and then, whatever is found,
    /// `ECONNREFUSED`: no socket here has a name to be reached by (the micro-VM has
    /// socket pairs only, and never reaches a host socket).
    fn unix_peer(&mut self, addr: u64, alen: u32) -> SysErr {
        const SUN_PATH: u32 = 108;
        if alen <= 2 || alen > 2 + SUN_PATH {
            return errno::EINVAL.into();
        }
        let raw = match self.mm.read_user_vec(addr, alen as usize) {
            Ok(r) => r,
            Err(e) => return e.into(),
        };
        if u16::from_ne_bytes([raw[0], raw[1]]) != AF_UNIX as u16 {
            return errno::EINVAL.into();
        }
        let path = &raw[2..];
        if path[0] == 0 {
            return Errno(libc::ECONNREFUSED).into(); // abstract: none exists
        }
        let end = path.iter().position(|b| *b == 0).unwrap_or(path.len());
        let path = path[..end].to_vec();
        let found = self
            .base_for(&path, libc::AT_FDCWD as u64)
            .and_then(|base| Ok(self.vfs.resolve(&base, &path, true)?));
        match found {
            Ok(_) => Errno(libc::ECONNREFUSED).into(),
            Err(e) => e,
        }
    }

    /// `connect` on a socket pair: the address is looked for first, as Linux does.
    pub(crate) fn sys_connect(&mut self, fd: u64, addr: u64, alen: u64) -> SysResult {
        self.socket(fd)?;
        Err(self.unix_peer(addr, alen as u32))
    }

    /// `bind`: a socket pair's end may take an automatic (unnamed here) address; a
    /// name in the filesystem or the abstract namespace is not offered (counted).
    pub(crate) fn sys_bind(&mut self, fd: u64, addr: u64, alen: u64) -> SysResult {
        self.socket(fd)?;
        let family = self.mm.read(UserPtr::<u16>::new(addr))?;
        if alen < 2 || family != AF_UNIX as u16 {
            return Err(errno::EINVAL.into());
        }
        if alen == 2 {
            return Ok(0);
        }
        Err(self.unsupported("bind(named AF_UNIX address)", errno::EINVAL))
    }

    pub(crate) fn sys_recvfrom(
        &mut self,
        fd: u64,
        buf: u64,
        len: u64,
        flags: u64,
        addr: u64,
        alen: UserPtr<u32>,
    ) -> SysResult {
        // The buffer is checked before the descriptor, as Linux's import_ubuf.
        if !super::rw::user_range(buf, len) {
            return Err(errno::EFAULT.into());
        }
        let f = self.socket(fd)?;
        self.mm.user_chunks(buf, len.min(1 << 20), true)?;
        let mut tmp = vec![0u8; len.min(1 << 20) as usize];
        let (n, full) = self.recv(&f, &mut tmp, flags)?;
        self.mm.write_user(buf, &tmp[..n])?;
        if addr != 0 && !alen.is_null() {
            self.put_unix_name(addr, alen)?;
        }
        Ok(if flags & MSG_TRUNC != 0 { full } else { n } as u64)
    }

    /// The `iovec`s of a `msghdr`: at most `IOV_MAX` (`EMSGSIZE`), then checked as
    /// readv's are ([`Kernel::iovecs`]: no negative length, the total bounded, every
    /// buffer in user space).
    fn msg_iovecs(&mut self, hdr: &MsgHdr) -> Result<Vec<(u64, u64)>, SysErr> {
        if hdr.msg_iovlen > IOV_MAX as u64 {
            return Err(errno::EMSGSIZE.into());
        }
        self.iovecs(UserPtr::new(hdr.msg_iov), hdr.msg_iovlen)
    }

    pub(crate) fn sys_sendmsg(&mut self, fd: u64, msg: UserPtr<MsgHdr>, flags: u64) -> SysResult {
        let f = self.socket(fd)?;
        // Read once: what is checked is what is used.
        let hdr = self.mm.read(msg)?;
        if hdr.msg_name != 0 {
            self.destination(&f, hdr.msg_name, hdr.msg_namelen)?;
        }
        let iov = self.msg_iovecs(&hdr)?;
        if hdr.msg_controllen != 0 {
            // Passing descriptors or credentials (SCM_RIGHTS...) is not offered.
            return Err(self.unsupported("sendmsg(ancillary data)", errno::EOPNOTSUPP));
        }
        let total: u64 = iov.iter().map(|(_, l)| *l).sum(); // bounded: see iovecs
        if total > 1 << 20 {
            return Err(errno::EMSGSIZE.into());
        }
        let mut data = Vec::new();
        for (base, len) in iov {
            data.extend(self.mm.read_user_vec(base, len as usize)?);
        }
        self.send(&f, &data, flags)
    }

    pub(crate) fn sys_recvmsg(&mut self, fd: u64, msg: UserPtr<MsgHdr>, flags: u64) -> SysResult {
        let f = self.socket(fd)?;
        let mut hdr = self.mm.read(msg)?;
        let iov = self.msg_iovecs(&hdr)?;
        // The total is bounded (see iovecs).
        let total: u64 = iov.iter().map(|(_, l)| *l).sum::<u64>().min(1 << 20);
        let mut tmp = vec![0u8; total as usize];
        let (n, full) = self.recv(&f, &mut tmp, flags)?;
        let mut off = 0usize;
        for (base, len) in iov {
            if off >= n {
                break;
            }
            let k = (len as usize).min(n - off);
            self.mm.write_user(base, &tmp[off..off + k])?;
            off += k;
        }
        // No sender name (a socket pair's peer is unnamed), no ancillary data.
        hdr.msg_namelen = 0;
        hdr.msg_controllen = 0;
        hdr.msg_flags = if full > n { MSG_TRUNC as i32 } else { 0 };
        self.mm.write(msg, &hdr)?;
        Ok(n as u64)
    }

    pub(crate) fn sys_shutdown(&mut self, fd: u64, how: u64) -> SysResult {
        let f = self.socket(fd)?;
        let FileKind::Socket(s) = &f.kind else {
            return Err(errno::ENOTSOCK.into());
        };
        match how {
            0 => drop(s.rx.borrow_mut().take()),
            1 => drop(s.tx.borrow_mut().take()),
            2 => {
                drop(s.rx.borrow_mut().take());
                drop(s.tx.borrow_mut().take());
            }
            _ => return Err(errno::EINVAL.into()),
        }
        Ok(0)
    }

    /// An unnamed `AF_UNIX` address (a `sa_family_t` alone), cut to the caller's
    /// buffer of `*alen` bytes; `*alen` becomes its full length.
    fn put_unix_name(&mut self, addr: u64, alen: UserPtr<u32>) -> Result<(), SysErr> {
        let cap = self.mm.read(alen)?;
        let family = AF_UNIX as u16;
        let name = family.as_bytes();
        let n = (cap as usize).min(name.len());
        self.mm.write_user(addr, &name[..n])?;
        self.mm.write(alen, &(name.len() as u32))?;
        Ok(())
    }

    pub(crate) fn sys_getsockname(&mut self, fd: u64, addr: u64, alen: UserPtr<u32>) -> SysResult {
        self.socket(fd)?;
        self.put_unix_name(addr, alen)?;
        Ok(0)
    }

    pub(crate) fn sys_getsockopt(
        &mut self,
        fd: u64,
        level: u64,
        name: u64,
        val: u64,
        len: UserPtr<u32>,
    ) -> SysResult {
        let f = self.socket(fd)?;
        let FileKind::Socket(s) = &f.kind else {
            return Err(errno::ENOTSOCK.into());
        };
        if level != SOL_SOCKET {
            return Err(errno::EOPNOTSUPP.into());
        }
        let int = |v: i32| v.as_bytes().to_vec();
        let v: Vec<u8> = match name as i32 {
            libc::SO_TYPE => int(s.kind),
            libc::SO_DOMAIN => int(AF_UNIX as i32),
            libc::SO_PROTOCOL | libc::SO_ERROR | libc::SO_ACCEPTCONN => int(0),
            libc::SO_RCVBUF | libc::SO_SNDBUF => int(crate::pipe::PIPE_CAPACITY as i32),
            libc::SO_PEERCRED => Ucred {
                pid: self.proc.pid as i32,
                uid: self.user.0,
                gid: self.user.1,
            }
            .as_bytes()
            .to_vec(),
            _ => return Err(Errno(libc::ENOPROTOOPT).into()),
        };
        // An option's value is cut to the caller's buffer, as Linux does.
        let cap = self.mm.read(len)? as usize;
        let n = cap.min(v.len());
        self.mm.write_user(val, &v[..n])?;
        self.mm.write(len, &(n as u32))?;
        Ok(0)
    }

    /// `bind`, `listen`, `accept`, `connect` on a socket pair: `e` (there is no other
    /// kind of socket to name, listen on or reach).
    pub(crate) fn sys_no_network(&mut self, fd: u64, e: Errno) -> SysResult {
        self.socket(fd)?;
        Err(e.into())
    }

    /// `setsockopt`: `SOL_SOCKET` options of an `int` at least (`EINVAL` for less);
    /// other levels are not `AF_UNIX`'s (`EOPNOTSUPP`). Values are accepted, not used.
    pub(crate) fn sys_setsockopt(&mut self, fd: u64, level: u64, name: u64, len: u64) -> SysResult {
        self.socket(fd)?;
        if level != SOL_SOCKET {
            return Err(errno::EOPNOTSUPP.into());
        }
        if (len as u32) < 4 {
            return Err(errno::EINVAL.into());
        }
        if !(1..=80).contains(&name) {
            return Err(Errno(libc::ENOPROTOOPT).into());
        }
        Ok(0)
    }
}
