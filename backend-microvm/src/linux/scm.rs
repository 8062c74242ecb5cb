//! Ancillary data of `AF_UNIX` sockets: descriptors passed in flight (`SCM_RIGHTS`),
//! credentials (`SCM_CREDENTIALS` with `SO_PASSCRED`) and a datagram's sender.
//!
//! What comes with a message waits in the receiving socket's [`Inbox`], placed by the
//! count of the buffer it goes with (bytes of a stream, messages of datagrams), as
//! Linux keeps it in the message's `skb`: a stream read stops at the end of a message
//! that carries descriptors, and takes them when it reads any of its bytes.
//!
//! Descriptors in flight are open files held by an inbox: a socket sent over its own
//! connection (or two sent over each other's) would hold itself for ever. As Linux's
//! `unix_gc`, a collector marks what the sandbox's descriptor tables reach (the files,
//! the inboxes of the sockets among them, the files in those, the connections waiting
//! on listeners) and empties the inboxes nothing reaches; it runs before descriptors
//! are sent, so garbage is bounded by what one sender may have in flight
//! (`RLIMIT_NOFILE`, then `ETOOMANYREFS`, as Linux's `too_many_unix_fds`), and what is
//! left when the run ends is dropped with the kernel (`unix::Names`).

use std::collections::{HashSet, VecDeque};
use std::rc::Rc;

use zerocopy::IntoBytes;

use super::fd::{FileKind, OpenFile};
use super::{Kernel, SysErr};
use crate::abi::{MsgHdr, Ucred};
use crate::errno;
use crate::memory::{Budget, HeapCharge, OutOfMemory};

const SOL_SOCKET: i32 = 1;
const SCM_RIGHTS: i32 = 1;
const SCM_CREDENTIALS: i32 = 2;
/// Most descriptors in one message (Linux's `SCM_MAX_FD`).
const SCM_MAX_FD: usize = 253;
/// `sizeof(struct cmsghdr)`.
pub(crate) const CMSG_HDR: usize = 16;
/// The most control data `sendmsg` takes (Linux's `optmem_max`): `ENOBUFS` past it.
const OPTMEM_MAX: u64 = 128 * 1024;
/// `MSG_CTRUNC`.
pub(crate) const MSG_CTRUNC: i32 = 0x8;
/// `MSG_CMSG_CLOEXEC`.
pub(crate) const MSG_CMSG_CLOEXEC: u64 = 0x4000_0000;

pub(crate) fn cmsg_align(n: usize) -> usize {
    (n + 7) & !7
}

/// What came with one message.
#[derive(Debug)]
pub(crate) struct Entry {
    /// Where the message starts in the buffer's count (bytes or messages).
    at: u64,
    /// Its length (bytes of a stream; 1 for a datagram).
    len: u64,
    /// Descriptors in flight.
    files: Vec<Rc<OpenFile>>,
    /// Who sent it.
    cred: Ucred,
    /// The sender's address (datagrams).
    from: Option<Rc<[u8]>>,
}

/// What a socket's receiving side holds besides its bytes.
#[derive(Debug, Default)]
pub(crate) struct Inbox {
    /// In the buffer's order.
    pub(crate) entries: VecDeque<Entry>,
    /// `SO_PASSCRED` of the receiving socket: senders record who they are.
    pub(crate) passcred: bool,
    /// What the entries cost the sandbox's memory.
    charge: Option<HeapCharge>,
    /// On the collector's list (`Names::inboxes`).
    registered: bool,
}

thread_local! {
    /// Files in flight whose inbox went, waiting to be dropped one by one (see
    /// [`Inbox`]'s `Drop`).
    static GRAVEYARD: std::cell::RefCell<(bool, Vec<Rc<OpenFile>>)> =
        const { std::cell::RefCell::new((false, Vec::new())) };
}

impl Drop for Inbox {
    /// A socket in flight may hold another in its inbox, and that one a third: dropping
    /// such a chain recursively would take a stack frame per link, and a workload could
    /// make the chain as long as its descriptors in flight allow. The files are dropped
    /// in a loop instead, by the outermost inbox that goes.
    fn drop(&mut self) {
        let files: Vec<Rc<OpenFile>> = self.entries.drain(..).flat_map(|e| e.files).collect();
        let first = GRAVEYARD.with(|g| {
            let mut g = g.borrow_mut();
            g.1.extend(files);
            !std::mem::replace(&mut g.0, true)
        });
        if !first {
            return; // an outer drop is emptying the graveyard
        }
        loop {
            let next = GRAVEYARD.with(|g| g.borrow_mut().1.pop());
            match next {
                Some(f) => drop(f),
                None => break,
            }
        }
        GRAVEYARD.with(|g| g.borrow_mut().0 = false);
    }
}

impl Inbox {
    fn account(&mut self, budget: &Rc<Budget>) -> Result<(), OutOfMemory> {
        let bytes = self
            .entries
            .iter()
            .map(|e| 64 + 8 * e.files.len() as u64)
            .sum();
        self.charge
            .get_or_insert_with(|| HeapCharge::new(budget))
            .set(bytes)
    }

    /// Drops what was passed before `pos` without being taken.
    fn prune(&mut self, pos: u64) {
        while self.entries.front().is_some_and(|e| e.at + e.len <= pos) {
            self.entries.pop_front();
        }
    }

    /// How much a stream read at `pos` may take: up to the end of the first message
    /// that carries descriptors.
    pub(crate) fn limit(&mut self, pos: u64) -> Option<u64> {
        self.prune(pos);
        self.entries
            .iter()
            .find(|e| !e.files.is_empty())
            .map(|e| e.at + e.len - pos)
    }

    /// What a read of `n` units at `pos` takes (a datagram: `n` is 1).
    fn take(&mut self, pos: u64, n: u64, peek: bool) -> Incoming {
        self.prune(pos);
        let mut got = Incoming::default();
        for e in self.entries.iter_mut() {
            if e.at >= pos + n {
                break;
            }
            if got.cred.is_none() {
                got.cred = Some(e.cred);
                got.from = e.from.clone();
            }
            if got.files.is_empty() && !e.files.is_empty() {
                got.files = if peek {
                    e.files.clone()
                } else {
                    std::mem::take(&mut e.files)
                };
            }
        }
        if !peek {
            self.prune(pos + n);
        }
        got
    }
}

/// What a sender attaches to a message.
#[derive(Debug, Default)]
pub(crate) struct Outgoing {
    /// `SCM_RIGHTS`.
    pub(crate) files: Vec<Rc<OpenFile>>,
    /// `IPPROTO_IPV6` items (type, data), for an `AF_INET6` datagram socket to check
    /// and use (`inet.rs`); `AF_UNIX` ignores other levels, as Linux's.
    pub(crate) ipv6: Vec<(i32, Vec<u8>)>,
}

/// What a read took besides the bytes.
#[derive(Debug, Default)]
pub(crate) struct Incoming {
    /// Descriptors (installed by `recvmsg`, else closed).
    pub(crate) files: Vec<Rc<OpenFile>>,
    /// The sender's credentials, when recorded.
    pub(crate) cred: Option<Ucred>,
    /// The sender's address, when it had one.
    pub(crate) from: Option<Rc<[u8]>>,
}

impl Kernel {
    /// Records what goes with the message just written to a buffer whose count is now
    /// `total_in` (`n` units of it), in `inbox`, when there is something to record:
    /// descriptors, a name (datagrams), or credentials the receiver asked for.
    pub(crate) fn attach(
        &mut self,
        inbox: &Rc<std::cell::RefCell<Inbox>>,
        total_in: u64,
        n: u64,
        out: Outgoing,
        from: Option<Rc<[u8]>>,
    ) -> Result<(), SysErr> {
        let mut i = inbox.borrow_mut();
        if out.files.is_empty() && from.is_none() && !i.passcred {
            return Ok(());
        }
        let holds_files = !out.files.is_empty();
        let register = holds_files && !std::mem::replace(&mut i.registered, true);
        i.entries.push_back(Entry {
            at: total_in - n,
            len: n,
            files: out.files,
            cred: self.own_cred(),
            from,
        });
        if i.account(&self.mm.mem.budget()).is_err() {
            return Err(super::Stop::MemoryLimit.into());
        }
        drop(i);
        if register {
            self.unix.inboxes.push(Rc::downgrade(inbox));
        }
        Ok(())
    }

    /// Takes what goes with a read of `n` units at `pos` from `inbox`.
    pub(crate) fn detach(
        &mut self,
        inbox: &Rc<std::cell::RefCell<Inbox>>,
        pos: u64,
        n: u64,
        peek: bool,
    ) -> Incoming {
        let mut i = inbox.borrow_mut();
        let got = i.take(pos, n, peek);
        let _ = i.account(&self.mm.mem.budget()); // less: cannot fail
        got
    }

    /// The control data of a `sendmsg`, read once and checked as Linux's `__scm_send`:
    /// each header's length within the buffer (`EINVAL`), `SCM_RIGHTS` of open
    /// descriptors (`EBADF`), at most 253 in all (`EINVAL`), `SCM_CREDENTIALS` naming
    /// the caller itself (`EPERM`); other levels are skipped, other types `EINVAL`.
    pub(crate) fn read_control(&mut self, hdr: &MsgHdr) -> Result<Outgoing, SysErr> {
        let mut out = Outgoing::default();
        let len = hdr.msg_controllen;
        if len > i32::MAX as u64 || len > OPTMEM_MAX {
            return Err(errno::ENOBUFS.into());
        }
        if (len as usize) < CMSG_HDR {
            return Ok(out);
        }
        let buf = self.mm.read_user_vec(hdr.msg_control, len as usize)?;
        let mut off = 0usize;
        while off + CMSG_HDR <= buf.len() {
            let word = |at: usize| u64::from_ne_bytes(buf[at..at + 8].try_into().unwrap_or([0; 8]));
            let clen = word(off);
            let level = word(off + 8) as u32 as i32;
            let ty = (word(off + 8) >> 32) as u32 as i32;
            if clen < CMSG_HDR as u64 || clen > (buf.len() - off) as u64 {
                return Err(errno::EINVAL.into());
            }
            let clen = clen as usize;
            let data = &buf[off + CMSG_HDR..off + clen];
            if level == libc::IPPROTO_IPV6 {
                out.ipv6.push((ty, data.to_vec()));
            }
            if level == SOL_SOCKET {
                match ty {
                    SCM_RIGHTS => {
                        let n = data.len() / 4;
                        if out.files.len() + n > SCM_MAX_FD {
                            return Err(errno::EINVAL.into());
                        }
                        for c in data.chunks_exact(4) {
                            let fd = i32::from_ne_bytes([c[0], c[1], c[2], c[3]]);
                            out.files.push(self.proc.files.get(fd as u32 as u64)?);
                        }
                    }
                    SCM_CREDENTIALS => {
                        if clen != CMSG_HDR + 12 {
                            return Err(errno::EINVAL.into());
                        }
                        let f = |i: usize| {
                            u32::from_ne_bytes([data[i], data[i + 1], data[i + 2], data[i + 3]])
                        };
                        let me = self.own_cred();
                        if f(0) as i32 != me.pid || f(4) != me.uid || f(8) != me.gid {
                            return Err(errno::EPERM.into());
                        }
                    }
                    _ => return Err(errno::EINVAL.into()),
                }
            }
            off += cmsg_align(clen);
        }
        if !out.files.is_empty() {
            self.admit_in_flight(out.files.len())?;
        }
        Ok(out)
    }

    /// Admits `n` more descriptors in flight, as Linux's `too_many_unix_fds`: refused
    /// (`ETOOMANYREFS`) when more than `RLIMIT_NOFILE` are in flight already. What is in
    /// flight is known exactly after a collection; between two, an upper bound (what
    /// was counted then, plus what was sent since) decides while it is under the limit.
    /// A collection runs when that bound passes the limit, or when what was sent since
    /// the last one is more than what it left (so the collector's work, which grows
    /// with what is in flight, stays proportional to what is sent).
    fn admit_in_flight(&mut self, n: usize) -> Result<(), SysErr> {
        let limit = self.proc.files.limit;
        let bound = self.unix.live_in_flight + self.unix.sent_since_gc;
        if bound > limit || self.unix.sent_since_gc > self.unix.live_in_flight.max(64) {
            self.collect_garbage();
            self.unix.live_in_flight = self.in_flight();
            self.unix.sent_since_gc = 0;
            if self.unix.live_in_flight > limit {
                return Err(errno::ETOOMANYREFS.into());
            }
        }
        self.unix.sent_since_gc += n;
        Ok(())
    }

    /// Descriptors in flight in the sandbox.
    fn in_flight(&mut self) -> usize {
        self.unix.inboxes.retain(|w| w.strong_count() > 0);
        self.unix
            .inboxes
            .iter()
            .filter_map(|w| w.upgrade())
            .map(|i| {
                i.borrow()
                    .entries
                    .iter()
                    .map(|e| e.files.len())
                    .sum::<usize>()
            })
            .sum()
    }

    /// Empties the inboxes that no descriptor of any process reaches (see the module's
    /// comment): the files in flight there can never be received.
    pub(crate) fn collect_garbage(&mut self) {
        self.unix.inboxes.retain(|w| w.strong_count() > 0);
        if self.unix.inboxes.is_empty() {
            return;
        }
        let mut todo: Vec<Rc<OpenFile>> =
            self.proc.files.iter().map(|(_, f)| Rc::clone(f)).collect();
        for p in self.procs.values() {
            todo.extend(p.files.iter().map(|(_, f)| Rc::clone(f)));
        }
        let mut seen: HashSet<*const OpenFile> = HashSet::new();
        let mut live: HashSet<*const std::cell::RefCell<Inbox>> = HashSet::new();
        while let Some(f) = todo.pop() {
            if !seen.insert(Rc::as_ptr(&f)) {
                continue;
            }
            let FileKind::Socket(s) = &f.kind else {
                continue;
            };
            if live.insert(Rc::as_ptr(&s.inbox)) {
                for e in s.inbox.borrow().entries.iter() {
                    todo.extend(e.files.iter().cloned());
                }
            }
            if let Some(l) = &s.unix.borrow().listen {
                todo.extend(l.queue.iter().cloned());
            }
        }
        let mut gone = Vec::new();
        for w in &self.unix.inboxes {
            if let Some(i) = w.upgrade() {
                if !live.contains(&Rc::as_ptr(&i)) {
                    for e in i.borrow_mut().entries.iter_mut() {
                        gone.append(&mut e.files);
                    }
                }
            }
        }
        drop(gone); // after every borrow: a file dropped may be a socket seen above
    }

    /// Writes the control data of a `recvmsg` as Linux's `scm_recv` does: the
    /// credentials when `creds` (`SO_PASSCRED`), then the descriptors, installed
    /// (`MSG_CMSG_CLOEXEC`) while the buffer and the descriptor table have room; what
    /// does not fit is closed and `MSG_CTRUNC` set. Updates `msg_controllen` and
    /// `msg_flags` in `hdr`.
    pub(crate) fn write_control(
        &mut self,
        hdr: &mut MsgHdr,
        got: Incoming,
        creds: bool,
        cloexec: bool,
    ) -> Result<(), SysErr> {
        let start = hdr.msg_control;
        let total = hdr.msg_controllen as usize;
        let mut used = 0usize;
        let mut flags = 0;
        if creds {
            let cred = got.cred.unwrap_or(super::unix::NO_CRED);
            let data = cred.as_bytes();
            let room = total - used;
            if room < CMSG_HDR {
                flags |= MSG_CTRUNC;
            } else {
                let mut clen = CMSG_HDR + data.len();
                if room < clen {
                    flags |= MSG_CTRUNC;
                    clen = room;
                }
                let mut m = (clen as u64).to_ne_bytes().to_vec();
                m.extend(SOL_SOCKET.to_ne_bytes());
                m.extend(SCM_CREDENTIALS.to_ne_bytes());
                m.extend_from_slice(data);
                self.mm.write_user(start + used as u64, &m[..clen])?;
                used += cmsg_align(CMSG_HDR + data.len()).min(room);
            }
        }
        if !got.files.is_empty() {
            let room = total - used;
            let fit = if room > CMSG_HDR {
                (room - CMSG_HDR) / 4
            } else {
                0
            };
            let mut fds = Vec::new();
            for f in got.files.iter().take(fit) {
                match self.proc.files.add(Rc::clone(f), cloexec, 0) {
                    Ok(fd) => fds.push(fd as i32),
                    Err(_) => break,
                }
            }
            if fds.len() < got.files.len() {
                flags |= MSG_CTRUNC;
            }
            if !fds.is_empty() {
                let clen = CMSG_HDR + 4 * fds.len();
                let mut m = (clen as u64).to_ne_bytes().to_vec();
                m.extend(SOL_SOCKET.to_ne_bytes());
                m.extend(SCM_RIGHTS.to_ne_bytes());
                for fd in &fds {
                    m.extend(fd.to_ne_bytes());
                }
                if let Err(e) = self.mm.write_user(start + used as u64, &m) {
                    for fd in fds {
                        let _ = self.proc.files.close(fd as u64);
                    }
                    return Err(e.into());
                }
                used += cmsg_align(clen).min(room);
            }
        }
        hdr.msg_controllen = used as u64;
        hdr.msg_flags |= flags;
        Ok(())
    }

    /// Writes ancillary items `(level, type, data)` into the caller's control buffer as
    /// Linux's `put_cmsg`: no room for a header sets `MSG_CTRUNC` and writes nothing; an
    /// item cut short keeps its header with the shortened length and sets `MSG_CTRUNC`;
    /// each takes its aligned space, at most what is left.
    pub(crate) fn put_cmsgs(
        &mut self,
        hdr: &mut MsgHdr,
        items: &[(i32, i32, Vec<u8>)],
    ) -> Result<(), SysErr> {
        let start = hdr.msg_control;
        let total = hdr.msg_controllen as usize;
        let mut used = 0usize;
        for (level, ty, data) in items {
            let room = total - used;
            if room < CMSG_HDR {
                hdr.msg_flags |= MSG_CTRUNC;
                break;
            }
            let full = CMSG_HDR + data.len();
            let clen = if room < full {
                hdr.msg_flags |= MSG_CTRUNC;
                room
            } else {
                full
            };
            let mut m = (clen as u64).to_ne_bytes().to_vec();
            m.extend(level.to_ne_bytes());
            m.extend(ty.to_ne_bytes());
            m.extend_from_slice(data);
            self.mm.write_user(start + used as u64, &m[..clen])?;
            used += cmsg_align(full).min(room);
        }
        hdr.msg_controllen = used as u64;
        Ok(())
    }
}

impl crate::snap::Snap for Entry {
    fn snap(&self, m: &mut crate::snap::Memo) -> Result<Self, crate::snap::SnapError> {
        Ok(Entry {
            at: self.at,
            len: self.len,
            files: self.files.snap(m)?,
            cred: self.cred,
            from: self.from.as_ref().map(|f| m.bytes(f)),
        })
    }
}

impl crate::snap::Snap for Inbox {
    fn snap(&self, m: &mut crate::snap::Memo) -> Result<Self, crate::snap::SnapError> {
        Ok(Inbox {
            entries: self.entries.snap(m)?,
            passcred: self.passcred,
            charge: self.charge.snap(m)?,
            registered: self.registered,
        })
    }
}
