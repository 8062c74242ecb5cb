//! Sockets inside the guest: `AF_UNIX` only (pairs here; names, listening and
//! connecting in `unix.rs`; descriptors and credentials in flight in `scm.rs`), with
//! `send`/`recv`/`sendmsg`/`recvmsg`, `shutdown`, socket options. There is no network
//! stack: `socket` for any other family answers `EAFNOSUPPORT`, counted.

use std::rc::Rc;

use super::fd::{FileKind, OpenFile, Socket};
use zerocopy::IntoBytes;

use super::inet::{AF_INET, AF_INET6};
use super::rw::IOV_MAX;
use super::scm::{Incoming, Outgoing, MSG_CMSG_CLOEXEC};
use super::unix::{
    check_connected, link, new_socket, AF_UNIX, SOCK_DGRAM, SOCK_SEQPACKET, SOCK_STREAM,
};
use super::{Kernel, SysErr, SysResult};
use crate::abi::MsgHdr;
use crate::errno::{self, Errno};
use crate::mm::UserPtr;
use crate::pipe::PipeEnd;

pub(crate) const SOCK_NONBLOCK: u64 = 0x800;
pub(crate) const SOCK_CLOEXEC: u64 = 0x8_0000;
/// `MSG_OOB`.
pub(crate) const MSG_OOB: u64 = 0x1;
pub(crate) const MSG_PEEK: u64 = 0x2;
pub(crate) const MSG_DONTWAIT: u64 = 0x40;
const MSG_NOSIGNAL: u64 = 0x4000;
const MSG_TRUNC: u64 = 0x20;
const MSG_WAITALL: u64 = 0x100;
const SOL_SOCKET: u64 = 1;

/// An `AF_INET`/`AF_INET6` socket (`inet.rs`).
pub(crate) fn is_inet(f: &OpenFile) -> bool {
    matches!(&f.kind, FileKind::Socket(s) if s.inet.is_some())
}

fn pair(kind: i32) -> (Socket, Socket) {
    let a = new_socket(kind, false);
    let b = new_socket(kind, false);
    link(&a, &b);
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

/// `MSG_OOB`, answered before anything else as Linux does. On an `AF_UNIX` socket: a
/// datagram or seqpacket socket has no out-of-band data (`EOPNOTSUPP`, both ways); a
/// stream socket's receive finds none (`EINVAL`: out-of-band bytes are sent inline
/// here), and an empty send with it is `EOPNOTSUPP`. On `AF_INET`/`AF_INET6`: a TCP
/// receive finds no urgent data (`EINVAL` at once, never a wait: urgent bytes are sent
/// inline, as with `SO_OOBINLINE`); a UDP send is `inet_send`'s. `send`: the length
/// sent, or `None` for a receive.
pub(crate) fn refuse_oob(f: &OpenFile, flags: u64, send: Option<u64>) -> Result<(), Errno> {
    let FileKind::Socket(s) = &f.kind else {
        return Ok(());
    };
    if flags & MSG_OOB == 0 || super::netlink::is_netlink(f) {
        return Ok(());
    }
    if s.inet.is_some() {
        return match (s.kind, send) {
            (SOCK_STREAM, None) => Err(errno::EINVAL),
            _ => Ok(()),
        };
    }
    match (s.kind, send) {
        (SOCK_STREAM, None) => Err(errno::EINVAL),
        (SOCK_STREAM, Some(len)) if len > 0 => Ok(()),
        _ => Err(errno::EOPNOTSUPP),
    }
}

impl Kernel {
    /// `socket`: `AF_UNIX` sockets of the sandbox (`unix.rs`), `AF_INET`/`AF_INET6`
    /// ones (`inet.rs`); no other family is offered.
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
        if domain == u64::from(AF_INET) || domain == u64::from(AF_INET6) {
            return self.inet_socket(domain, ty, proto);
        }
        if domain == u64::from(AF_UNIX) {
            // unix_create's own checks come before the (missing) socket is made.
            if proto != 0 && proto != u64::from(AF_UNIX) {
                return Err(Errno(libc::EPROTONOSUPPORT).into());
            }
            if !matches!(ty & 0xf, SOCK_STREAM | SOCK_DGRAM | SOCK_SEQPACKET | 3) {
                return Err(Errno(libc::ESOCKTNOSUPPORT).into());
            }
            return self.unix_socket(ty & 0xf, ty as u64);
        }
        if domain == u64::from(super::netlink::AF_NETLINK) {
            return self.netlink_socket(ty, proto);
        }
        let what = match domain {
            17 => "socket(AF_PACKET)",
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
            1 => {}
            // Internet sockets are made (their type and protocol checked) and then
            // refuse to pair.
            2 | 10 => {
                self.inet_kind(kind, proto)?;
                return Err(errno::EOPNOTSUPP.into());
            }
            // Families of Linux that never pair (their own checks are not made here).
            16 | 17 => return Err(errno::EOPNOTSUPP.into()),
            _ => return Err(errno::EAFNOSUPPORT.into()),
        }
        if proto != 0 && proto != u64::from(AF_UNIX) {
            return Err(Errno(libc::EPROTONOSUPPORT).into());
        }
        let kind = match kind {
            SOCK_STREAM | SOCK_DGRAM | SOCK_SEQPACKET => kind,
            SOCK_RAW => SOCK_DGRAM,
            _ => return Err(Errno(libc::ESOCKTNOSUPPORT).into()),
        };
        self.mm.user_chunks(sv.addr(), 8, true)?;
        let (a, b) = pair(kind);
        let me = self.own_cred();
        a.unix.borrow_mut().peer_cred = Some(me);
        b.unix.borrow_mut().peer_cred = Some(me);
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

    pub(crate) fn socket(&self, fd: u64) -> Result<Rc<OpenFile>, SysErr> {
        let f = self.proc.files.get(fd)?;
        match f.kind {
            FileKind::Socket(_) => Ok(f),
            _ => Err(errno::ENOTSOCK.into()),
        }
    }

    /// Sends `data` on socket `f` (to `dest`, a datagram socket named by the caller,
    /// else to its peer), with `out` attached to its first part: a blocking send on a
    /// stream socket waits until all of it is sent (a signal ends the wait with the
    /// count sent so far), as Linux's `unix_stream_sendmsg`; a datagram goes whole or
    /// not at all.
    pub(crate) fn send_on(
        &mut self,
        f: &Rc<OpenFile>,
        data: &[u8],
        flags: u64,
        dest: Option<Rc<OpenFile>>,
        out: Outgoing,
        source: Option<Rc<[u8]>>,
    ) -> SysResult {
        let FileKind::Socket(s) = &f.kind else {
            return Err(errno::ENOTSOCK.into());
        };
        if dest.is_none() {
            check_connected(s, true)?;
        }
        let nonblock = flags & MSG_DONTWAIT != 0 || f.flags.get() & libc::O_NONBLOCK != 0;
        let nosignal = flags & MSG_NOSIGNAL != 0;
        let waits_for_all = !nonblock && s.kind == SOCK_STREAM;
        // The end written and the inbox that goes with it.
        let own_tx = s.tx.borrow();
        let (tmp, inbox) = match &dest {
            Some(d) => {
                let FileKind::Socket(t) = &d.kind else {
                    return Err(errno::ENOTSOCK.into());
                };
                let rx = t.rx.borrow();
                let Some(q) = rx.as_ref() else {
                    return Err(errno::ECONNREFUSED.into());
                };
                (Some(PipeEnd::new(&q.pipe, true)), Some(Rc::clone(&t.inbox)))
            }
            None => (None, s.outbox.borrow().clone()),
        };
        let Some(end) = tmp.as_ref().or(own_tx.as_ref()) else {
            drop(own_tx);
            if !nosignal {
                self.raise(13)?;
            }
            return Err(errno::EPIPE.into());
        };
        if dest.is_none() {
            if let Some(n) = super::inet::write_to_gone_peer(s, data.len()) {
                return Ok(n as u64);
            }
        }
        let from = if s.kind == SOCK_STREAM {
            None
        } else {
            source.or_else(|| s.unix.borrow().name.clone())
        };
        let mut out = Some(out);
        let mut done = self.resume_point() as usize;
        let mut first = done == 0;
        while done < data.len() || data.is_empty() {
            match self.write_pipe(end, &data[done..], nonblock, nosignal) {
                Ok(n) => {
                    let units = if s.kind == SOCK_STREAM { n as u64 } else { 1 };
                    if first && units > 0 {
                        first = false;
                        if let (Some(i), Some(o)) = (&inbox, out.take()) {
                            let total = end.pipe.borrow().total_in;
                            self.attach(i, total, units, o, from.clone())?;
                        }
                    }
                    done += n
                }
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

    /// Receives into `buf` from socket `f`: the count, the message's length and what
    /// came with it. A stream read stops at the end of a message that carries
    /// descriptors (`scm.rs`).
    pub(crate) fn recv_msg(
        &mut self,
        f: &OpenFile,
        buf: &mut [u8],
        flags: u64,
    ) -> Result<(usize, usize, Incoming), SysErr> {
        let FileKind::Socket(s) = &f.kind else {
            return Err(errno::ENOTSOCK.into());
        };
        refuse_oob(f, flags, None)?;
        // A TCP socket's pending error (a reset) comes after the bytes already there.
        let waiting = s.kind == SOCK_STREAM
            && s.rx
                .borrow()
                .as_ref()
                .is_some_and(|e| !e.pipe.borrow().is_empty());
        if !waiting {
            if let Some(e) = Self::inet_take_error(s) {
                return Err(e.into());
            }
        }
        check_connected(s, false)?;
        let nonblock = flags & MSG_DONTWAIT != 0 || f.flags.get() & libc::O_NONBLOCK != 0;
        let peek = flags & MSG_PEEK != 0;
        let timeout = super::inet::state(s).and_then(|st| st.rcvtimeo);
        let rx = s.rx.borrow();
        let Some(end) = rx.as_ref().filter(|e| !e.drained()) else {
            return shut_read(s.kind, nonblock).map(|n| (n, n, Incoming::default()));
        };
        let (pos, stream, full) = {
            let p = end.pipe.borrow();
            (p.total_out, p.is_stream(), p.next_message())
        };
        let mut lim = buf.len();
        if stream {
            if let Some(l) = s.inbox.borrow_mut().limit(pos) {
                lim = lim.min(usize::try_from(l).unwrap_or(usize::MAX));
            }
        }
        // MSG_WAITALL: a blocking stream read waits until what was asked for is there
        // (at most a buffer's worth), or the end of the stream.
        if flags & MSG_WAITALL != 0 && stream && !nonblock && !peek {
            let p = end.pipe.borrow();
            if p.len() < lim.min(p.capacity()) && !end.at_end(&p) {
                drop(p);
                return Err(self.socket_wait(timeout));
            }
        }
        let n = match self.read_pipe(end, &mut buf[..lim], nonblock || timeout.is_some(), peek) {
            Err(SysErr::Errno(e)) if e == errno::EAGAIN && !nonblock => {
                return Err(self.socket_wait(timeout));
            }
            r => r?,
        };
        let got = if stream && n == 0 {
            Incoming::default()
        } else {
            let units = if stream { n as u64 } else { 1 };
            self.detach(&s.inbox, pos, units, peek)
        };
        Ok((n, full.max(n), got))
    }

    /// Waits for a socket (until `timeout` from the first try, then `EAGAIN`, as
    /// `SO_RCVTIMEO` asks).
    fn socket_wait(&self, timeout: Option<std::time::Duration>) -> SysErr {
        match timeout {
            None => self.park(None),
            Some(t) => {
                let dl = self.deadline_after(t);
                if dl.is_some_and(|d| std::time::Instant::now() >= d) {
                    errno::EAGAIN.into()
                } else {
                    self.park(dl)
                }
            }
        }
    }

    /// A socket read through `read`/`readv`: `recv` without flags (descriptors that
    /// came with the bytes are closed, as Linux does without a control buffer).
    pub(crate) fn sock_read(&mut self, f: &OpenFile, buf: &mut [u8]) -> Result<usize, SysErr> {
        self.recv_msg(f, buf, 0).map(|(n, _, _)| n)
    }

    /// The sender's address of what was received on `s`: a datagram's sender, a
    /// stream's peer (none when unnamed).
    fn sender(s: &Socket, got: &Incoming) -> Option<Rc<[u8]>> {
        if let Some(st) = super::inet::state(s) {
            // TCP gives no address; UDP the datagram's source, in the receiver's family.
            if s.kind == SOCK_STREAM {
                return None;
            }
            return got
                .from
                .as_deref()
                .and_then(|b| super::inet::source_for(st.v6, b));
        }
        if s.kind == SOCK_STREAM || s.kind == SOCK_SEQPACKET {
            s.unix.borrow().peer_name.clone()
        } else {
            got.from.clone()
        }
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
        if super::netlink::is_netlink(&f) {
            return self.netlink_sendto(&f, buf, len, flags, addr, alen);
        }
        if is_inet(&f) {
            if addr != 0 && alen as u32 > 128 {
                return Err(errno::EINVAL.into());
            }
            let data = self.mm.read_user_vec(buf, len.min(1 << 20) as usize)?;
            return self.inet_send(
                &f,
                &data,
                flags,
                Some((addr, alen as u32)),
                Outgoing::default(),
            );
        }
        refuse_oob(&f, flags, Some(len))?;
        let dest = if addr != 0 {
            // `socklen_t` is an unsigned int: the register's low half.
            self.destination(&f, addr, alen as u32)?
        } else {
            None
        };
        if dest.is_none() {
            self.refuse_write_early(&f, len, flags & MSG_NOSIGNAL != 0)?;
        }
        let data = self.mm.read_user_vec(buf, len.min(1 << 20) as usize)?;
        self.send_on(&f, &data, flags, dest, Outgoing::default(), None)
    }

    /// A destination named in `sendto`/`sendmsg`, as Linux answers it: a connected
    /// stream socket is `EISCONN`, an unconnected one `EOPNOTSUPP`; a seqpacket one
    /// ignores it; a datagram one sends to the socket named (`unix.rs`).
    fn destination(
        &mut self,
        f: &Rc<OpenFile>,
        addr: u64,
        alen: u32,
    ) -> Result<Option<Rc<OpenFile>>, SysErr> {
        let FileKind::Socket(s) = &f.kind else {
            return Err(errno::ENOTSOCK.into());
        };
        if alen == 0 {
            return Ok(None);
        }
        match s.kind {
            SOCK_STREAM if s.unix.borrow().connected || !s.unix.borrow().made => {
                Err(errno::EISCONN.into())
            }
            SOCK_STREAM => Err(errno::EOPNOTSUPP.into()),
            SOCK_SEQPACKET => Ok(None),
            _ => self.dgram_target(f, addr, alen).map(Some),
        }
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
        refuse_oob(&f, flags, None)?;
        self.check_read_buffer(&f, buf, len.min(1 << 20), flags)?;
        let mut tmp = super::rw::Scratch::new(len.min(1 << 20) as usize);
        let (n, full, got) = self.recv_msg(&f, &mut tmp, flags)?;
        self.mm.write_user(buf, &tmp[..n])?;
        if addr != 0 && !alen.is_null() {
            let FileKind::Socket(s) = &f.kind else {
                return Err(errno::ENOTSOCK.into());
            };
            let from = Self::sender(s, &got).map_or_else(Vec::new, |n| n.to_vec());
            self.put_addr(addr, alen, &from)?;
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
        if super::netlink::is_netlink(&f) {
            return self.netlink_sendmsg(&f, &hdr, flags);
        }
        if is_inet(&f) {
            let iov = self.msg_iovecs(&hdr)?;
            let out = self.read_control(&hdr)?;
            let total: u64 = iov.iter().map(|(_, l)| *l).sum();
            if total > 1 << 20 {
                return Err(errno::EMSGSIZE.into());
            }
            let mut data = Vec::new();
            for (base, len) in iov {
                data.extend(self.mm.read_user_vec(base, len as usize)?);
            }
            return self.inet_send(&f, &data, flags, Some((hdr.msg_name, hdr.msg_namelen)), out);
        }
        let dest = if hdr.msg_name != 0 {
            self.destination(&f, hdr.msg_name, hdr.msg_namelen)?
        } else {
            None
        };
        let iov = self.msg_iovecs(&hdr)?;
        let out = self.read_control(&hdr)?;
        let total: u64 = iov.iter().map(|(_, l)| *l).sum(); // bounded: see iovecs
        if total > 1 << 20 {
            return Err(errno::EMSGSIZE.into());
        }
        refuse_oob(&f, flags, Some(total))?;
        if dest.is_none() {
            self.refuse_write_early(&f, total, flags & MSG_NOSIGNAL != 0)?;
        }
        let mut data = Vec::new();
        for (base, len) in iov {
            data.extend(self.mm.read_user_vec(base, len as usize)?);
        }
        self.send_on(&f, &data, flags, dest, out, None)
    }

    pub(crate) fn sys_recvmsg(&mut self, fd: u64, msg: UserPtr<MsgHdr>, flags: u64) -> SysResult {
        let f = self.socket(fd)?;
        let mut hdr = self.mm.read(msg)?;
        // A negative name length is refused before anything is received.
        if (hdr.msg_namelen as i32) < 0 {
            return Err(errno::EINVAL.into());
        }
        let iov = self.msg_iovecs(&hdr)?;
        // The total is bounded (see iovecs).
        let total: u64 = iov.iter().map(|(_, l)| *l).sum::<u64>().min(1 << 20);
        let mut tmp = vec![0u8; total as usize];
        let (n, full, mut got) = self.recv_msg(&f, &mut tmp, flags)?;
        let FileKind::Socket(s) = &f.kind else {
            return Err(errno::ENOTSOCK.into());
        };
        let mut off = 0usize;
        for (base, len) in iov {
            if off >= n {
                break;
            }
            let k = (len as usize).min(n - off);
            self.mm.write_user(base, &tmp[off..off + k])?;
            off += k;
        }
        // The sender's name (none: length 0), cut to the caller's buffer; without a
        // buffer, `msg_namelen` is left as it was (Linux writes it with the name only).
        let from = Self::sender(s, &got).map_or_else(Vec::new, |n| n.to_vec());
        if hdr.msg_name != 0 {
            let k = from.len().min(hdr.msg_namelen as usize);
            self.mm.write_user(hdr.msg_name, &from[..k])?;
            hdr.msg_namelen = from.len() as u32;
        }
        hdr.msg_flags = (flags & MSG_CMSG_CLOEXEC) as i32;
        if full > n {
            hdr.msg_flags |= MSG_TRUNC as i32;
        }
        let creds = s.inbox.borrow().passcred;
        if creds && got.cred.is_none() {
            got.cred = Some(self.peer_cred(s));
        }
        if s.inet.is_some() {
            let items = super::inet::ancillary(s, &got);
            self.put_cmsgs(&mut hdr, &items)?;
        } else {
            self.write_control(&mut hdr, got, creds, flags & MSG_CMSG_CLOEXEC != 0)?;
        }
        self.mm.write(msg, &hdr)?;
        // MSG_TRUNC: a datagram's real length, as recvfrom answers it.
        Ok(if flags & MSG_TRUNC != 0 { full } else { n } as u64)
    }

    pub(crate) fn sys_shutdown(&mut self, fd: u64, how: u64) -> SysResult {
        let f = self.socket(fd)?;
        let FileKind::Socket(s) = &f.kind else {
            return Err(errno::ENOTSOCK.into());
        };
        if s.inet.is_some() && self.inet_shutdown(s, how)? {
            return Ok(0);
        }
        if super::netlink::is_netlink(&f) {
            return Err(errno::EOPNOTSUPP.into()); // sock_no_shutdown
        }
        if how > 2 {
            return Err(errno::EINVAL.into());
        }
        // What was queued stays readable after SHUT_RD (then the end of file), as
        // Linux's RCV_SHUTDOWN leaves it; the peer's writes fail at once.
        if how != 1 {
            if let Some(end) = s.rx.borrow_mut().as_mut() {
                end.shut_read();
            }
        }
        if how != 0 {
            drop(s.tx.borrow_mut().take());
        }
        Ok(0)
    }

    /// An address of `name.len()` bytes (empty: none), cut to the caller's buffer of
    /// `*alen` bytes; `*alen` becomes its full length.
    fn put_addr(&mut self, addr: u64, alen: UserPtr<u32>, name: &[u8]) -> Result<(), SysErr> {
        let cap = self.mm.read(alen)?;
        if (cap as i32) < 0 {
            return Err(errno::EINVAL.into());
        }
        let n = (cap as usize).min(name.len());
        self.mm.write_user(addr, &name[..n])?;
        self.mm.write(alen, &(name.len() as u32))?;
        Ok(())
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
        if is_inet(&f) {
            return self.inet_getsockopt(&f, level as u32, name as u32, val, len);
        }
        if super::netlink::is_netlink(&f) {
            return self.netlink_getsockopt(&f, level as u32, name as u32, val, len);
        }
        let FileKind::Socket(s) = &f.kind else {
            return Err(errno::ENOTSOCK.into());
        };
        if level != SOL_SOCKET {
            return Err(errno::EOPNOTSUPP.into());
        }
        let int = |v: i32| v.as_bytes().to_vec();
        let v: Vec<u8> = match name as i32 {
            libc::SO_TYPE => int(s.kind),
            libc::SO_DOMAIN => int(i32::from(AF_UNIX)),
            libc::SO_PROTOCOL | libc::SO_ERROR => int(0),
            libc::SO_ACCEPTCONN => int(i32::from(self.listening(s))),
            libc::SO_PASSCRED => int(i32::from(s.inbox.borrow().passcred)),
            libc::SO_RCVBUF | libc::SO_SNDBUF => int(super::unix::UNIX_BUFFER as i32),
            libc::SO_PEERCRED => self.peer_cred(s).as_bytes().to_vec(),
            _ => return Err(Errno(libc::ENOPROTOOPT).into()),
        };
        // An option's value is cut to the caller's buffer, as Linux does.
        let cap = self.mm.read(len)? as usize;
        let n = cap.min(v.len());
        self.mm.write_user(val, &v[..n])?;
        self.mm.write(len, &(n as u32))?;
        Ok(0)
    }

    /// `setsockopt`: `SOL_SOCKET` options of an `int` at least (`EINVAL` for less);
    /// other levels are not `AF_UNIX`'s (`EOPNOTSUPP`). `SO_PASSCRED` is used; other
    /// values are accepted, not used.
    pub(crate) fn sys_setsockopt(
        &mut self,
        fd: u64,
        level: u64,
        name: u64,
        val: u64,
        len: u64,
    ) -> SysResult {
        let f = self.socket(fd)?;
        if is_inet(&f) {
            return self.inet_setsockopt(&f, level as u32, name as u32, val, len as u32);
        }
        if super::netlink::is_netlink(&f) {
            return self.netlink_setsockopt(&f, level as u32, name as u32, val, len as u32);
        }
        if level != SOL_SOCKET {
            return Err(errno::EOPNOTSUPP.into());
        }
        if (len as u32) < 4 {
            return Err(errno::EINVAL.into());
        }
        if !(1..=80).contains(&name) {
            return Err(Errno(libc::ENOPROTOOPT).into());
        }
        if name as i32 == libc::SO_PASSCRED {
            let on = self.mm.read(UserPtr::<i32>::new(val))? != 0;
            if let FileKind::Socket(s) = &f.kind {
                s.inbox.borrow_mut().passcred = on;
            }
        }
        Ok(0)
    }
}
