//! Named `AF_UNIX` sockets inside the guest: `socket`, `bind` (a socket node in the
//! sandbox's in-memory filesystems, a name in the sandbox's own abstract namespace, or
//! an automatic one), `listen`, `accept`, `connect`, `getsockname`/`getpeername` and
//! datagrams sent to a name. A stream connection is a socket pair that `connect` makes
//! and queues on the listener, and `accept` hands over, as Linux's `unix_stream_connect`
//! does. Every name is the sandbox's: nothing here reaches, or is reached from, a host
//! socket (the VMM thread has no socket call on its seccomp allowlist either).

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::rc::{Rc, Weak};

use super::fd::{next_ino, FileKind, OpenFile, Socket};
use super::scm::Inbox;
use super::{Kernel, SysErr, SysResult};
use crate::abi::Ucred;
use crate::errno::{self, Errno};
use crate::mm::UserPtr;
use crate::pipe::{Pipe, PipeEnd};
use crate::vfs::Node;

pub(crate) const AF_UNIX: u16 = 1;
pub(crate) const SOCK_STREAM: i32 = 1;
pub(crate) const SOCK_DGRAM: i32 = 2;
pub(crate) const SOCK_SEQPACKET: i32 = 5;
/// `offsetof(struct sockaddr_un, sun_path)`.
const SUN_PATH_OFF: usize = 2;
/// `sizeof(struct sockaddr_un)`.
const SOCKADDR_UN: usize = 110;
/// `sizeof(struct sockaddr_storage)`: the most `move_addr_to_kernel` takes.
const SOCKADDR_STORAGE: u32 = 128;
/// `/proc/sys/net/core/somaxconn`: the largest backlog.
const SOMAXCONN: u32 = 4096;
/// What `SO_PEERCRED` answers for a socket without a peer (no pid, uid and gid -1).
pub(crate) const NO_CRED: Ucred = Ucred {
    pid: 0,
    uid: u32::MAX,
    gid: u32::MAX,
};

/// The naming and connection state of a socket.
#[derive(Debug, Default)]
pub(crate) struct UnixState {
    /// Its address as `getsockname` shows it (`sockaddr_un` bytes, family first).
    pub(crate) name: Option<Rc<[u8]>>,
    /// The peer's address when it was connected.
    pub(crate) peer_name: Option<Rc<[u8]>>,
    /// A stream or seqpacket socket with a peer (a pair's end, connected, accepted),
    /// or a datagram socket with a default destination.
    pub(crate) connected: bool,
    /// Listening: the connections waiting for `accept`.
    pub(crate) listen: Option<Backlog>,
    /// `SO_PEERCRED`: who the peer was when the connection was made.
    pub(crate) peer_cred: Option<Ucred>,
    /// A datagram socket's default destination (`connect`).
    pub(crate) dgram_peer: Option<Weak<OpenFile>>,
    /// Made by `socket` (not by `socketpair`): its unconnected states are Linux's.
    pub(crate) made: bool,
    /// An `AF_NETLINK` socket's state (`netlink.rs`): its name is a `sockaddr_nl`.
    pub(crate) netlink: Option<Box<super::netlink::Netlink>>,
}

/// A listening socket's queue.
#[derive(Debug)]
pub(crate) struct Backlog {
    /// `listen`'s backlog: Linux queues one more than this.
    pub(crate) max: usize,
    /// The server ends of connections made and not yet accepted.
    pub(crate) queue: VecDeque<Rc<OpenFile>>,
    /// Who listened (what a connecting socket's `SO_PEERCRED` shows).
    pub(crate) cred: Ucred,
}

/// The sandbox's socket names: the abstract namespace, the sockets bound to socket
/// nodes, and the inboxes that hold descriptors in flight (see `scm.rs`).
#[derive(Debug, Default)]
pub(crate) struct Names {
    /// By type and name: Linux hashes an abstract name with the socket's type, so a
    /// stream socket and a datagram socket may hold the same name.
    abstract_names: HashMap<(i32, Vec<u8>), Weak<OpenFile>>,
    nodes: HashMap<u64, Weak<OpenFile>>,
    next_node: u64,
    next_auto: u32,
    /// Inboxes that have held descriptors (the garbage collector's sweep list).
    pub(crate) inboxes: Vec<Weak<RefCell<Inbox>>>,
    /// Names held after the last prune.
    named_after_prune: usize,
    /// Descriptors in flight at the last collection.
    pub(crate) live_in_flight: usize,
    /// Descriptors sent since then.
    pub(crate) sent_since_gc: usize,
}

impl Names {
    /// Forgets the names of sockets that are gone, once the maps have doubled since the
    /// last time (a loop binding fresh names and closing the sockets grows nothing but
    /// what it holds, at a cost proportional to its binds).
    fn prune(&mut self) {
        let len = self.abstract_names.len() + self.nodes.len();
        if len <= 2 * self.named_after_prune + 64 {
            return;
        }
        self.abstract_names.retain(|_, w| w.strong_count() > 0);
        self.nodes.retain(|_, w| w.strong_count() > 0);
        self.named_after_prune = self.abstract_names.len() + self.nodes.len();
    }
}

impl Drop for Names {
    /// The run ends: descriptors still in flight are dropped, so a socket that holds
    /// itself (sent over its own connection) gives its memory back.
    fn drop(&mut self) {
        let mut gone = Vec::new();
        for i in self.inboxes.drain(..) {
            if let Some(i) = i.upgrade() {
                if let Ok(mut i) = i.try_borrow_mut() {
                    gone.extend(i.entries.drain(..));
                }
            }
        }
        drop(gone);
    }
}

/// An `AF_UNIX` address a call names.
#[derive(Debug, Clone)]
enum Addr {
    /// A path in the sandbox's filesystem.
    Path(Vec<u8>),
    /// A name in the abstract namespace (without its leading NUL).
    Abstract(Vec<u8>),
}

impl Addr {
    /// The bytes `getsockname` shows for it (Linux keeps a path's NUL).
    fn sockaddr(&self) -> Rc<[u8]> {
        let mut v = AF_UNIX.to_ne_bytes().to_vec();
        match self {
            Addr::Path(p) => {
                v.extend_from_slice(p);
                v.push(0);
            }
            Addr::Abstract(n) => {
                v.push(0);
                v.extend_from_slice(n);
            }
        }
        v.into()
    }
}

/// A fresh socket of `kind`.
pub(crate) fn new_socket(kind: i32, made: bool) -> Socket {
    Socket {
        rx: RefCell::new(None),
        tx: RefCell::new(None),
        kind,
        ino: next_ino(),
        inbox: Rc::new(RefCell::new(Inbox::default())),
        outbox: RefCell::new(None),
        unix: RefCell::new(UnixState {
            made,
            ..UnixState::default()
        }),
        inet: None,
    }
}

/// An `AF_UNIX` socket's buffer, what `SO_SNDBUF` and `SO_RCVBUF` answer: Linux's
/// default (`net.core.wmem_default`, `rmem_default`). Linux charges a sender's bytes in
/// flight, with their overhead, against its `SO_SNDBUF`; here each direction holds this
/// many bytes (a stream pair takes about 200 KiB before its writer waits, as on Linux,
/// and a datagram may be up to 32 bytes less, Linux's `EMSGSIZE` bound).
pub(crate) const UNIX_BUFFER: usize = 212_992;

/// Links `a` and `b` both ways with fresh buffers (a socket pair, or a connection).
pub(crate) fn link(a: &Socket, b: &Socket) {
    link_sized(a, b, UNIX_BUFFER);
}

/// [`link`] with buffers of `capacity` bytes each way.
pub(crate) fn link_sized(a: &Socket, b: &Socket, capacity: usize) {
    let direction = || match a.kind {
        SOCK_STREAM => Pipe::socket_sized(false, capacity),
        SOCK_SEQPACKET => Pipe::seqpacket(capacity),
        _ => Pipe::socket_sized(true, capacity),
    };
    let (a_to_b, b_to_a) = (direction(), direction());
    *a.rx.borrow_mut() = Some(PipeEnd::new(&b_to_a, false));
    *a.tx.borrow_mut() = Some(PipeEnd::new(&a_to_b, true));
    *b.rx.borrow_mut() = Some(PipeEnd::new(&a_to_b, false));
    *b.tx.borrow_mut() = Some(PipeEnd::new(&b_to_a, true));
    *a.outbox.borrow_mut() = Some(Rc::clone(&b.inbox));
    *b.outbox.borrow_mut() = Some(Rc::clone(&a.inbox));
    a.unix.borrow_mut().connected = true;
    b.unix.borrow_mut().connected = true;
}

/// What `poll` sees of a socket whose state is not a connected pair's: a listening
/// socket is readable when a connection waits; an unconnected stream socket is
/// writable and hung up; a datagram socket made by `socket` is readable when a
/// datagram waits and writable while its destination has room (as `unix_poll` and
/// `unix_dgram_poll`). `None`: the pair's rules apply (`poll.rs`). The answer is
/// `(readable, writable, hung up)`.
pub(crate) fn poll_state(s: &Socket) -> Option<(bool, bool, bool)> {
    let u = s.unix.borrow();
    if let Some(l) = &u.listen {
        return Some((!l.queue.is_empty(), false, false));
    }
    if !u.made {
        return None;
    }
    if s.kind != SOCK_DGRAM {
        return (!u.connected).then_some((false, true, true));
    }
    // Shut for reading: a read does not wait (it finds the end), as unix_dgram_poll.
    let r =
        s.rx.borrow()
            .as_ref()
            .is_some_and(|e| e.readable(&e.pipe.borrow()));
    let w = match s.tx.borrow().as_ref() {
        Some(e) => {
            let p = e.pipe.borrow();
            p.readers > 0 && p.writable()
        }
        None => !u.connected,
    };
    let hup = rx_shut(s) && s.tx.borrow().is_none() && u.connected;
    Some((r, w, hup))
}

/// The receiving side of `s` is shut down (or gone).
pub(crate) fn rx_shut(s: &Socket) -> bool {
    s.rx.borrow().as_ref().is_none_or(PipeEnd::is_shut)
}

/// A read or write on socket `s` through `read`/`write`: a socket that was never
/// connected (or listens) answers as Linux's: `EINVAL` to a read of a stream socket,
/// `ENOTCONN` to a write (no `SIGPIPE`) and to a datagram socket without destination.
pub(crate) fn check_connected(s: &Socket, write: bool) -> Result<(), Errno> {
    let u = s.unix.borrow();
    if s.inet.is_some() {
        // TCP: a read unconnected is ENOTCONN, a write finds no connection (EPIPE and
        // SIGPIPE, from the caller); UDP: a send needs a destination.
        return match (s.kind == SOCK_STREAM, write) {
            (true, false) if !u.connected => Err(errno::ENOTCONN),
            (false, true) if !u.connected => Err(Errno(libc::EDESTADDRREQ)),
            _ => Ok(()),
        };
    }
    if !u.made || u.connected {
        return Ok(());
    }
    if u.listen.is_some() || s.kind != SOCK_DGRAM {
        return Err(if write {
            errno::ENOTCONN
        } else {
            errno::EINVAL
        });
    }
    if write {
        return Err(errno::ENOTCONN);
    }
    Ok(())
}

impl Kernel {
    /// `socket(AF_UNIX, type, 0)`: a socket of the sandbox (`SOCK_RAW` is a datagram
    /// socket, as Linux's `unix_create` makes it).
    pub(crate) fn unix_socket(&mut self, kind: i32, flags: u64) -> SysResult {
        let kind = if kind == 3 { SOCK_DGRAM } else { kind };
        let s = new_socket(kind, true);
        if kind == SOCK_DGRAM {
            // Its receive queue: every sender writes into it.
            let q = Pipe::socket_sized(true, UNIX_BUFFER);
            *s.rx.borrow_mut() = Some(PipeEnd::new(&q, false));
        }
        let nb = if flags & super::socket::SOCK_NONBLOCK != 0 {
            libc::O_NONBLOCK
        } else {
            0
        };
        let f = OpenFile::new(FileKind::Socket(s), None, libc::O_RDWR | nb);
        let cloexec = flags & super::socket::SOCK_CLOEXEC != 0;
        Ok(self.proc.files.add(f, cloexec, 0)?)
    }

    /// The credentials of the calling process, as a socket records them.
    pub(crate) fn own_cred(&self) -> Ucred {
        Ucred {
            pid: self.proc.pid as i32,
            uid: self.user.0,
            gid: self.user.1,
        }
    }

    /// Reads an address of `alen` bytes for `connect`/`sendto`: Linux's
    /// `unix_validate_addr` (a family and at least one byte of name, at most a
    /// `sockaddr_un`: `EINVAL`).
    fn read_addr(&mut self, addr: u64, alen: u32) -> Result<Addr, SysErr> {
        if alen > SOCKADDR_STORAGE {
            return Err(errno::EINVAL.into());
        }
        let raw = self.mm.read_user_vec(addr, alen as usize)?;
        if (alen as usize) <= SUN_PATH_OFF || alen as usize > SOCKADDR_UN {
            return Err(errno::EINVAL.into());
        }
        if u16::from_ne_bytes([raw[0], raw[1]]) != AF_UNIX {
            return Err(errno::EINVAL.into());
        }
        Ok(parse(&raw[SUN_PATH_OFF..]))
    }

    /// The socket bound at `a`: a path looked up in the sandbox (`ENOENT`, `ENOTDIR`,
    /// `EACCES`...; a node that is not a socket, or whose socket is gone, is
    /// `ECONNREFUSED`), or a name of the sandbox's abstract namespace. A kind other
    /// than `kind` is `EPROTOTYPE`.
    fn find_socket(&mut self, a: &Addr, kind: i32) -> Result<Rc<OpenFile>, SysErr> {
        let found = match a {
            Addr::Abstract(n) => self
                .unix
                .abstract_names
                .get(&(kind, n.clone()))
                .and_then(Weak::upgrade),
            Addr::Path(p) => {
                let base = self.base_for(p, libc::AT_FDCWD as u64)?;
                let loc = self.vfs.resolve(&base, p, true)?;
                let key = match loc.node() {
                    Node::Tmp(t) => t.socket(),
                    _ => None,
                };
                match key {
                    Some(k) => {
                        // Connecting needs write permission on the node, as on Linux.
                        self.vfs.permission(&loc, 2)?;
                        self.unix.nodes.get(&k).and_then(Weak::upgrade)
                    }
                    None => None,
                }
            }
        };
        let f = found.ok_or(errno::ECONNREFUSED)?;
        let FileKind::Socket(s) = &f.kind else {
            return Err(errno::ECONNREFUSED.into());
        };
        if s.kind != kind {
            return Err(errno::EPROTOTYPE.into());
        }
        Ok(f)
    }

    /// `bind`: a path (a socket node in the sandbox's in-memory filesystems; see
    /// `Vfs::mksock`), an abstract name (this sandbox's namespace), or, for an address
    /// of the family alone, an automatic abstract name.
    pub(crate) fn sys_bind(&mut self, fd: u64, addr: u64, alen: u64) -> SysResult {
        let alen = alen as u32;
        if alen > SOCKADDR_STORAGE {
            return Err(errno::EINVAL.into());
        }
        let raw = self.mm.read_user_vec(addr, alen as usize)?;
        let f = self.socket(fd)?;
        if super::socket::is_inet(&f) {
            return self.inet_bind(&f, addr, alen);
        }
        if super::netlink::is_netlink(&f) {
            return self.netlink_bind(&f, &raw);
        }
        let FileKind::Socket(s) = &f.kind else {
            return Err(errno::ENOTSOCK.into());
        };
        if (alen as usize) < SUN_PATH_OFF || u16::from_ne_bytes([raw[0], raw[1]]) != AF_UNIX {
            return Err(errno::EINVAL.into());
        }
        if alen as usize == SUN_PATH_OFF {
            if s.unix.borrow().name.is_none() {
                self.autobind(&f);
            }
            return Ok(0);
        }
        if alen as usize > SOCKADDR_UN {
            return Err(errno::EINVAL.into());
        }
        let a = parse(&raw[SUN_PATH_OFF..]);
        let bound = s.unix.borrow().name.is_some();
        match &a {
            Addr::Abstract(n) => {
                if bound {
                    return Err(errno::EINVAL.into());
                }
                let key = (s.kind, n.clone());
                if self
                    .unix
                    .abstract_names
                    .get(&key)
                    .is_some_and(|w| w.strong_count() > 0)
                {
                    return Err(errno::EADDRINUSE.into());
                }
                self.unix.prune();
                self.unix.abstract_names.insert(key, Rc::downgrade(&f));
            }
            Addr::Path(p) => {
                let key = self.unix.next_node;
                let base = self.base_for(p, libc::AT_FDCWD as u64)?;
                let mode = 0o777 & !self.proc.umask;
                if bound {
                    // Linux makes the node, finds the socket bound, and removes it.
                    self.vfs.mksock(&base, p, mode, key)?;
                    let _ = self.vfs.unlink(&base, p, false);
                    return Err(errno::EINVAL.into());
                }
                self.vfs.mksock(&base, p, mode, key)?;
                self.unix.next_node += 1;
                self.unix.prune();
                self.unix.nodes.insert(key, Rc::downgrade(&f));
            }
        }
        s.unix.borrow_mut().name = Some(a.sockaddr());
        Ok(0)
    }

    /// Linux's `unix_autobind`: the first free name of five hex digits in the
    /// abstract namespace.
    fn autobind(&mut self, f: &Rc<OpenFile>) {
        let FileKind::Socket(s) = &f.kind else {
            return;
        };
        self.unix.prune();
        for _ in 0..0x10_0000 {
            let n = self.unix.next_auto & 0xf_ffff;
            self.unix.next_auto = self.unix.next_auto.wrapping_add(1);
            let name = format!("{n:05x}").into_bytes();
            if self
                .unix
                .abstract_names
                .contains_key(&(s.kind, name.clone()))
            {
                continue;
            }
            self.unix
                .abstract_names
                .insert((s.kind, name.clone()), Rc::downgrade(f));
            s.unix.borrow_mut().name = Some(Addr::Abstract(name).sockaddr());
            return;
        }
    }

    /// `listen`: a bound, unconnected stream or seqpacket socket queues up to
    /// `backlog + 1` connections (`backlog` at most `somaxconn`); again, the backlog
    /// changes.
    pub(crate) fn sys_listen(&mut self, fd: u64, backlog: u64) -> SysResult {
        let f = self.socket(fd)?;
        if super::socket::is_inet(&f) {
            return self.inet_listen(&f, backlog);
        }
        let FileKind::Socket(s) = &f.kind else {
            return Err(errno::ENOTSOCK.into());
        };
        if s.kind == SOCK_DGRAM {
            return Err(errno::EOPNOTSUPP.into());
        }
        let cred = self.own_cred();
        let mut u = s.unix.borrow_mut();
        if u.connected || u.name.is_none() {
            return Err(errno::EINVAL.into());
        }
        let b = backlog as u32;
        let max = if b > SOMAXCONN { SOMAXCONN } else { b } as usize;
        match &mut u.listen {
            Some(l) => l.max = max,
            None => {
                u.listen = Some(Backlog {
                    max,
                    queue: VecDeque::new(),
                    cred,
                })
            }
        }
        Ok(0)
    }

    /// `connect`: a stream or seqpacket socket is paired with a new socket queued on
    /// the listener (a full backlog waits, or `EAGAIN` when non-blocking); a datagram
    /// socket takes the named socket as its destination (`AF_UNSPEC` drops it).
    pub(crate) fn sys_connect(&mut self, fd: u64, addr: u64, alen: u64) -> SysResult {
        let f = self.socket(fd)?;
        if super::socket::is_inet(&f) {
            return self.inet_connect(&f, addr, alen as u32);
        }
        if super::netlink::is_netlink(&f) {
            return self.netlink_connect(&f, addr, alen as u32);
        }
        let FileKind::Socket(s) = &f.kind else {
            return Err(errno::ENOTSOCK.into());
        };
        let alen = alen as u32;
        if s.kind == SOCK_DGRAM {
            if (2..=SOCKADDR_STORAGE).contains(&alen) {
                let family = self.mm.read(UserPtr::<u16>::new(addr))?;
                if family == libc::AF_UNSPEC as u16 {
                    *s.tx.borrow_mut() = None;
                    *s.outbox.borrow_mut() = None;
                    let mut u = s.unix.borrow_mut();
                    if u.made {
                        u.connected = false;
                        u.dgram_peer = None;
                        u.peer_name = None;
                    }
                    return Ok(0);
                }
            }
            let a = self.read_addr(addr, alen)?;
            let target = self.find_socket(&a, SOCK_DGRAM)?;
            self.may_send(&f, &target)?;
            let FileKind::Socket(t) = &target.kind else {
                return Err(errno::ECONNREFUSED.into());
            };
            let rx = t.rx.borrow();
            let Some(q) = rx.as_ref() else {
                return Err(errno::ECONNREFUSED.into());
            };
            *s.tx.borrow_mut() = Some(PipeEnd::new(&q.pipe, true));
            *s.outbox.borrow_mut() = Some(Rc::clone(&t.inbox));
            let mut u = s.unix.borrow_mut();
            u.connected = true;
            u.dgram_peer = Some(Rc::downgrade(&target));
            u.peer_name = t.unix.borrow().name.clone();
            return Ok(0);
        }
        let a = self.read_addr(addr, alen)?;
        let target = self.find_socket(&a, s.kind)?;
        let FileKind::Socket(l) = &target.kind else {
            return Err(errno::ECONNREFUSED.into());
        };
        let (full, listener_name, listener_cred) = {
            let u = l.unix.borrow();
            let Some(b) = &u.listen else {
                return Err(errno::ECONNREFUSED.into());
            };
            (b.queue.len() > b.max, u.name.clone(), b.cred)
        };
        if rx_shut(l) && l.unix.borrow().connected {
            return Err(errno::ECONNREFUSED.into()); // shut down for reading
        }
        if full {
            if f.flags.get() & libc::O_NONBLOCK != 0 {
                return Err(errno::EAGAIN.into());
            }
            return Err(self.park(None));
        }
        {
            let u = s.unix.borrow();
            if u.connected {
                return Err(errno::EISCONN.into());
            }
            if u.listen.is_some() {
                return Err(errno::EINVAL.into());
            }
        }
        let server = new_socket(s.kind, true);
        link(s, &server);
        let me = self.own_cred();
        {
            let mut su = server.unix.borrow_mut();
            su.name = listener_name.clone();
            su.peer_name = s.unix.borrow().name.clone();
            su.peer_cred = Some(me);
        }
        {
            let mut u = s.unix.borrow_mut();
            u.peer_name = listener_name;
            u.peer_cred = Some(listener_cred);
        }
        let file = OpenFile::new(FileKind::Socket(server), None, libc::O_RDWR);
        if let Some(b) = &mut l.unix.borrow_mut().listen {
            b.queue.push_back(file);
        }
        Ok(0)
    }

    /// Linux's `unix_may_send`: a datagram socket connected to another than `from`
    /// takes nothing from it (`EPERM`).
    pub(crate) fn may_send(&self, from: &Rc<OpenFile>, to: &Rc<OpenFile>) -> Result<(), SysErr> {
        let FileKind::Socket(t) = &to.kind else {
            return Ok(());
        };
        let peer = t.unix.borrow().dgram_peer.as_ref().and_then(Weak::upgrade);
        match peer {
            Some(p) if !Rc::ptr_eq(&p, from) => Err(errno::EPERM.into()),
            _ => Ok(()),
        }
    }

    /// The socket a datagram sent to `addr` goes to, checked as Linux's
    /// `unix_dgram_sendmsg` (the address, the socket found, `unix_may_send`).
    pub(crate) fn dgram_target(
        &mut self,
        from: &Rc<OpenFile>,
        addr: u64,
        alen: u32,
    ) -> Result<Rc<OpenFile>, SysErr> {
        let a = self.read_addr(addr, alen)?;
        let t = self.find_socket(&a, SOCK_DGRAM)?;
        self.may_send(from, &t)?;
        Ok(t)
    }

    /// `accept`/`accept4`: the oldest waiting connection, as a new descriptor
    /// (`SOCK_NONBLOCK`, `SOCK_CLOEXEC`), and its peer's address; none waiting: wait,
    /// or `EAGAIN` when non-blocking (a signal ends the wait as Linux's).
    pub(crate) fn sys_accept(
        &mut self,
        fd: u64,
        addr: u64,
        alen: UserPtr<u32>,
        flags: u64,
    ) -> SysResult {
        let flags_ok = super::socket::SOCK_NONBLOCK | super::socket::SOCK_CLOEXEC;
        if flags & !flags_ok != 0 {
            return Err(errno::EINVAL.into());
        }
        let f = self.socket(fd)?;
        let FileKind::Socket(s) = &f.kind else {
            return Err(errno::ENOTSOCK.into());
        };
        if s.kind == SOCK_DGRAM {
            return Err(errno::EOPNOTSUPP.into());
        }
        let next = {
            let mut u = s.unix.borrow_mut();
            let Some(b) = &mut u.listen else {
                return Err(errno::EINVAL.into());
            };
            b.queue.pop_front()
        };
        let Some(conn) = next else {
            if f.flags.get() & libc::O_NONBLOCK != 0 {
                return Err(errno::EAGAIN.into());
            }
            return Err(self.park(None));
        };
        let put_back = |conn: Rc<OpenFile>| {
            if let Some(b) = &mut s.unix.borrow_mut().listen {
                b.queue.push_front(conn);
            }
        };
        if flags & super::socket::SOCK_NONBLOCK != 0 {
            conn.flags.set(libc::O_RDWR | libc::O_NONBLOCK);
        }
        if addr != 0 && !alen.is_null() {
            let peer = match &conn.kind {
                FileKind::Socket(c) => c.unix.borrow().peer_name.clone(),
                _ => None,
            };
            if let Err(e) = self.put_name(addr, alen, peer.as_deref()) {
                put_back(conn);
                return Err(e);
            }
        }
        let cloexec = flags & super::socket::SOCK_CLOEXEC != 0;
        match self.proc.files.add(Rc::clone(&conn), cloexec, 0) {
            Ok(n) => Ok(n),
            Err(e) => {
                put_back(conn);
                Err(e.into())
            }
        }
    }

    /// Writes an address (`None`: the family alone, an unnamed socket) cut to the
    /// caller's `*alen` bytes; `*alen` becomes its full length (`EINVAL` for a
    /// negative one).
    pub(crate) fn put_name(
        &mut self,
        addr: u64,
        alen: UserPtr<u32>,
        name: Option<&[u8]>,
    ) -> Result<(), SysErr> {
        let cap = self.mm.read(alen)?;
        if (cap as i32) < 0 {
            return Err(errno::EINVAL.into());
        }
        let family = AF_UNIX.to_ne_bytes();
        let name = name.unwrap_or(&family);
        let n = (cap as usize).min(name.len());
        self.mm.write_user(addr, &name[..n])?;
        self.mm.write(alen, &(name.len() as u32))?;
        Ok(())
    }

    /// `getsockname`: the bound address, or the family alone.
    pub(crate) fn sys_getsockname(&mut self, fd: u64, addr: u64, alen: UserPtr<u32>) -> SysResult {
        let f = self.socket(fd)?;
        let FileKind::Socket(s) = &f.kind else {
            return Err(errno::ENOTSOCK.into());
        };
        let name = s.unix.borrow().name.clone();
        self.put_name(addr, alen, name.as_deref())?;
        Ok(0)
    }

    /// `getpeername`: the peer's address (the family alone when it has none);
    /// `ENOTCONN` without a peer.
    pub(crate) fn sys_getpeername(&mut self, fd: u64, addr: u64, alen: UserPtr<u32>) -> SysResult {
        let f = self.socket(fd)?;
        if super::netlink::is_netlink(&f) {
            return self.netlink_peer(&f, addr, alen);
        }
        let FileKind::Socket(s) = &f.kind else {
            return Err(errno::ENOTSOCK.into());
        };
        if super::inet::was_reset(s) {
            return Err(errno::ENOTCONN.into());
        }
        let (connected, name) = {
            let u = s.unix.borrow();
            let alive = u.dgram_peer.as_ref().is_none_or(|p| p.strong_count() > 0);
            (u.connected && alive, u.peer_name.clone())
        };
        if !connected {
            return Err(errno::ENOTCONN.into());
        }
        self.put_name(addr, alen, name.as_deref())?;
        Ok(0)
    }

    /// `SO_PEERCRED` of `s`.
    pub(crate) fn peer_cred(&self, s: &Socket) -> Ucred {
        let u = s.unix.borrow();
        if let Some(l) = &u.listen {
            return l.cred;
        }
        u.peer_cred.unwrap_or(NO_CRED)
    }

    /// `SO_ACCEPTCONN` of `s`.
    pub(crate) fn listening(&self, s: &Socket) -> bool {
        s.unix.borrow().listen.is_some()
    }
}

/// A `sun_path` of the bytes given: a leading NUL starts an abstract name (all the
/// bytes after it), else a path up to its first NUL.
fn parse(p: &[u8]) -> Addr {
    if p.first() == Some(&0) {
        return Addr::Abstract(p[1..].to_vec());
    }
    let end = p.iter().position(|b| *b == 0).unwrap_or(p.len());
    Addr::Path(p[..end].to_vec())
}

impl crate::snap::Snap for UnixState {
    /// The datagram peer is set later ([`fix_unix`]): it is held weakly.
    fn snap(&self, m: &mut crate::snap::Memo) -> Result<Self, crate::snap::SnapError> {
        Ok(UnixState {
            name: self.name.as_ref().map(|n| m.bytes(n)),
            peer_name: self.peer_name.as_ref().map(|n| m.bytes(n)),
            connected: self.connected,
            listen: match &self.listen {
                Some(b) => Some(Backlog {
                    max: b.max,
                    queue: b.queue.snap(m)?,
                    cred: b.cred,
                }),
                None => None,
            },
            peer_cred: self.peer_cred,
            dgram_peer: self.dgram_peer.clone(),
            made: self.made,
            // Netlink sockets are refused (`Socket`'s copy).
            netlink: None,
        })
    }
}

/// Points a copied socket's datagram peer at the peer's copy (second pass).
pub(crate) fn fix_unix(file: &Rc<OpenFile>, m: &crate::snap::Memo) {
    if let super::FileKind::Socket(s) = &file.kind {
        let mut u = s.unix.borrow_mut();
        if let Some(w) = u.dgram_peer.take() {
            u.dgram_peer = m.weak(&w);
        }
    }
}

impl Names {
    /// A copy naming the copied sockets and inboxes (second pass: all held weakly).
    pub(crate) fn snap_weak(&self, m: &crate::snap::Memo) -> Names {
        Names {
            abstract_names: self
                .abstract_names
                .iter()
                .filter_map(|(k, w)| m.weak(w).map(|w| (k.clone(), w)))
                .collect(),
            nodes: self
                .nodes
                .iter()
                .filter_map(|(k, w)| m.weak(w).map(|w| (*k, w)))
                .collect(),
            next_node: self.next_node,
            next_auto: self.next_auto,
            inboxes: self.inboxes.iter().filter_map(|w| m.weak(w)).collect(),
            named_after_prune: self.named_after_prune,
            live_in_flight: self.live_in_flight,
            sent_since_gc: self.sent_since_gc,
        }
    }
}
