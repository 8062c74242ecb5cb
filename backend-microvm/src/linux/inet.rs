//! `AF_INET` and `AF_INET6` sockets on the sandbox's own loopback: TCP (`SOCK_STREAM`)
//! and UDP (`SOCK_DGRAM`) as objects of the personality, never host sockets (the VMM
//! thread's seccomp allowlist has no socket call). A TCP connection is a socket pair
//! with addresses: `connect` finds the listener bound at the destination in the
//! sandbox's port tables, links a new socket to the caller's (as `unix.rs` does for a
//! named `AF_UNIX` socket) and queues it for `accept`; a UDP datagram goes into the
//! receive queue of the socket bound at its destination, with its source address.
//!
//! What exists depends on the network mode, as in a Linux network namespace:
//! - `loopback`: `lo` is up, `127.0.0.0/8` and `::1` are local; any other destination
//!   is unreachable (`ENETUNREACH`).
//! - `none`: an empty namespace (`lo` down): sockets are made and bound (`127.0.0.1`
//!   and the wildcards; `::1` is `EADDRNOTAVAIL`), but nothing is reachable, not even
//!   the sandbox itself (`ENETUNREACH`, `::1` `EADDRNOTAVAIL`).

use std::cell::{RefCell, RefMut};
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::rc::{Rc, Weak};
use std::time::Duration;

use super::fd::{next_ino, FileKind, OpenFile, Socket};
use super::scm::{Inbox, Outgoing};
use super::unix::{link_sized, Backlog, UnixState, SOCK_DGRAM, SOCK_STREAM};
use super::{Kernel, SysErr, SysResult};
use crate::errno::{self, Errno};
use crate::mm::UserPtr;
use crate::pipe::{Pipe, PipeEnd};
use sandbox_core::network::SANDBOX_ADDR;

pub(crate) const AF_INET: u16 = 2;
pub(crate) const AF_INET6: u16 = 10;
const SOL_SOCKET: u32 = 1;
const IPPROTO_IP: u32 = 0;
pub(crate) const IPPROTO_TCP: u32 = 6;
const IPPROTO_UDP: u32 = 17;
/// UDP-Lite: UDP with partial checksums; on a loopback it is UDP, in a port space of
/// its own.
const IPPROTO_UDPLITE: u32 = 136;
const IPPROTO_IPV6: u32 = 41;
const IPV6_V6ONLY: u32 = 26;
/// `sizeof(struct sockaddr_in)`.
const SOCKADDR_IN: u32 = 16;
/// The shortest `sockaddr_in6` Linux takes (without `sin6_scope_id`).
const SIN6_LEN_RFC2133: u32 = 24;
/// `sizeof(struct sockaddr_in6)`.
const SOCKADDR_IN6: usize = 28;
/// `sizeof(struct sockaddr_storage)`.
const SOCKADDR_STORAGE: u32 = 128;
/// `/proc/sys/net/ipv4/ip_local_port_range`.
const EPHEMERAL: (u16, u16) = (32768, 60999);
/// `/proc/sys/net/ipv4/ip_unprivileged_port_start`.
const PRIVILEGED_BELOW: u16 = 1024;
/// Each direction of a TCP connection buffers up to this much (Linux's send buffer and
/// receive window on loopback grow to a few MiB: a program may write that much before
/// its peer reads). What is buffered is charged to the sandbox's memory.
pub(crate) const TCP_BUFFER: usize = 4 << 20;
/// A UDP socket's receive queue (`net.core.rmem_default`).
const UDP_BUFFER: usize = 212_992;
/// The largest UDP payload over IPv4 and IPv6.
const UDP_MAX: [usize; 2] = [65_507, 65_527];
/// `/proc/sys/net/core/somaxconn`.
const SOMAXCONN: u32 = 4096;

/// The sandbox's network, as a Linux network namespace would have it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum NetMode {
    /// No interface up (an empty namespace).
    #[default]
    None,
    /// `lo` up: `127.0.0.0/8` and `::1`.
    Loopback,
    /// `lo` and an interface addressed [`SANDBOX_ADDR`] whose default route is the
    /// egress broker: any other IPv4 destination is the broker's to decide
    /// (`egress.rs`); IPv6 only on `lo`.
    Egress,
}

/// An address (IPv4-mapped IPv6 addresses as IPv4: the same endpoint) and a port.
pub(crate) type Endpoint = (IpAddr, u16);

/// `::ffff:a.b.c.d` as `a.b.c.d`.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(a) => a.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Where a non-blocking `connect` stands after it answered `EINPROGRESS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Connect {
    /// No connect under way.
    Idle,
    /// Connected; the next `connect` answers 0, the one after `EISCONN`.
    InProgress,
    /// The egress broker decides (`egress.rs`): neither readable nor writable yet.
    Pending,
    /// Refused: `SO_ERROR` (or the next `connect`) says why.
    Failed,
}

/// An `AF_INET`/`AF_INET6` socket's own state (its connection is the pair's, in
/// `Socket` and `UnixState`).
#[derive(Debug)]
pub(crate) struct InetState {
    /// An `AF_INET6` socket.
    pub(crate) v6: bool,
    /// `IPPROTO_TCP`, `IPPROTO_UDP` or `IPPROTO_UDPLITE` (a datagram socket).
    pub(crate) proto: u32,
    /// Bound (by `bind`, or automatically by `connect`, `listen`, a send).
    pub(crate) local: Option<Endpoint>,
    /// The peer (connected TCP, or a UDP socket's default destination).
    pub(crate) peer: Option<Endpoint>,
    /// `IPV6_V6ONLY`.
    pub(crate) v6only: bool,
    /// `SO_REUSEADDR`.
    pub(crate) reuseaddr: bool,
    /// `SO_REUSEPORT`.
    pub(crate) reuseport: bool,
    /// `SO_ERROR`: an error to report once.
    pub(crate) error: i32,
    /// A non-blocking connect's state.
    pub(crate) connect: Connect,
    /// A write went to a peer that had closed: the connection was reset (the writes
    /// after it fail).
    pub(crate) reset: bool,
    /// `SO_RCVTIMEO`.
    pub(crate) rcvtimeo: Option<Duration>,
    /// `SO_SNDTIMEO`.
    pub(crate) sndtimeo: Option<Duration>,
    /// Other options set, by level and name (read back as set).
    opts: BTreeMap<(u32, u32), Vec<u8>>,
}

/// A write on a TCP connection whose peer has closed: Linux takes the first one (the
/// peer answers it with a reset, which the writer learns later), and the writes after
/// it fail (`EPIPE` and `SIGPIPE`, from the caller). `Some(len)`: taken (and dropped).
pub(crate) fn write_to_gone_peer(s: &Socket, len: usize) -> Option<usize> {
    let mut st = state(s)?;
    if st.proto != IPPROTO_TCP || st.reset {
        return None;
    }
    let gone =
        s.tx.borrow()
            .as_ref()
            .is_some_and(|e| e.pipe.borrow().readers == 0);
    if !gone {
        return None;
    }
    // An empty write sends nothing, so nothing answers it.
    if len > 0 {
        st.reset = true;
    }
    Some(len)
}

/// A connected TCP socket's `SO_RCVBUF` (`receive`) or `SO_SNDBUF` bounds what the
/// direction it reads (or writes) buffers, as Linux's window and send buffer do: a
/// sender whose peer reads slowly waits (or gets `EAGAIN`) after that much — four
/// times the option's (doubled) value, about what Linux's loopback takes.
fn fit_buffer(s: &Socket, receive: bool, bytes: usize) {
    let end = if receive {
        s.rx.borrow()
    } else {
        s.tx.borrow()
    };
    if let Some(e) = end.as_ref() {
        e.pipe.borrow_mut().set_share(receive, bytes * 4);
    }
}

/// The socket's inet state (it is an `AF_INET`/`AF_INET6` socket), with a reset its
/// peer sent taken in (see [`take_reset`]).
pub(crate) fn state(s: &Socket) -> Option<RefMut<'_, InetState>> {
    let mut st = s.inet.as_ref().map(|i| i.borrow_mut())?;
    take_reset(s, &mut st);
    Some(st)
}

/// A TCP socket closed for the last time resets its connection, as Linux's
/// `tcp_close` sends a RST, when bytes it was sent are still unread or `SO_LINGER` is
/// on with a zero timeout: the direction it wrote is marked (its peer's receive side).
pub(crate) fn on_close(s: &Socket) {
    let Some(st) = s.inet.as_ref().and_then(|i| i.try_borrow().ok()) else {
        return;
    };
    if st.proto != IPPROTO_TCP {
        return;
    }
    let unread =
        s.rx.try_borrow()
            .ok()
            .is_some_and(|r| r.as_ref().is_some_and(|e| !e.pipe.borrow().is_empty()));
    let linger0 = st
        .opts
        .get(&(SOL_SOCKET, libc::SO_LINGER as u32))
        .is_some_and(|v| v.len() >= 8 && v[..4] != [0; 4] && v[4..8] == [0; 4]);
    if !(unread || linger0) {
        return;
    }
    if let Ok(tx) = s.tx.try_borrow() {
        if let Some(e) = tx.as_ref() {
            let mut p = e.pipe.borrow_mut();
            if p.readers > 0 && p.reset == 0 {
                p.reset = 1;
            }
        }
    }
}

/// A reset from the peer (see [`on_close`]), taken once into the socket's state as
/// Linux's `tcp_reset` does: the pending error `ECONNRESET` (what the next send or
/// `SO_ERROR` answers, and a receive once the bytes already there are read), the
/// connection over (writes `EPIPE`, `getpeername` `ENOTCONN`, poll hung up).
fn take_reset(s: &Socket, st: &mut InetState) {
    let Ok(rx) = s.rx.try_borrow() else {
        return;
    };
    let Some(e) = rx.as_ref() else {
        return;
    };
    let mut p = e.pipe.borrow_mut();
    if p.reset == 1 {
        p.reset = 2;
        st.error = libc::ECONNRESET;
        st.reset = true;
    }
}

/// True when the connection of `s` was reset by its peer.
pub(crate) fn was_reset(s: &Socket) -> bool {
    s.inet.is_some()
        && s.rx
            .borrow()
            .as_ref()
            .is_some_and(|e| e.pipe.borrow().reset != 0)
}

/// The `sockaddr_in` (IPv4 socket) or `sockaddr_in6` bytes of `ep`.
pub(crate) fn sockaddr(v6: bool, (ip, port): Endpoint) -> Vec<u8> {
    if v6 {
        let a = match ip {
            IpAddr::V4(a) => a.to_ipv6_mapped(),
            IpAddr::V6(a) => a,
        };
        let mut v = vec![0u8; SOCKADDR_IN6];
        v[..2].copy_from_slice(&AF_INET6.to_ne_bytes());
        v[2..4].copy_from_slice(&port.to_be_bytes());
        v[8..24].copy_from_slice(&a.octets());
        v
    } else {
        let a = match canonical(ip) {
            IpAddr::V4(a) => a,
            IpAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
        };
        let mut v = vec![0u8; SOCKADDR_IN as usize];
        v[..2].copy_from_slice(&AF_INET.to_ne_bytes());
        v[2..4].copy_from_slice(&port.to_be_bytes());
        v[4..8].copy_from_slice(&a.octets());
        v
    }
}

/// The endpoint of `sockaddr` bytes (either family; `None` for anything else).
fn endpoint_of(b: &[u8]) -> Option<Endpoint> {
    let family = u16::from_ne_bytes([*b.first()?, *b.get(1)?]);
    let port = u16::from_be_bytes([*b.get(2)?, *b.get(3)?]);
    match family {
        AF_INET if b.len() >= 8 => Some((IpAddr::from([b[4], b[5], b[6], b[7]]), port)),
        AF_INET6 if b.len() >= 24 => {
            let o: [u8; 16] = b[8..24].try_into().ok()?;
            Some((canonical(IpAddr::V6(Ipv6Addr::from(o))), port))
        }
        _ => None,
    }
}

/// The `IPPROTO_IPV6` ancillary items a receive on `s` gets for what came with `got`:
/// `IPV6_HOPLIMIT` then `IPV6_TCLASS`, each when asked for (`IPV6_RECVHOPLIMIT`,
/// `IPV6_RECVTCLASS`), as Linux's `ip6_datagram_recv_specific_ctl` orders them. A
/// datagram's hop limit and traffic class travel after its source address.
pub(crate) fn ancillary(s: &Socket, got: &super::scm::Incoming) -> Vec<(i32, i32, Vec<u8>)> {
    let Some(st) = state(s) else {
        return Vec::new();
    };
    let mut v = Vec::new();
    if !st.v6 || st.proto == IPPROTO_TCP {
        return v;
    }
    let meta = got.from.as_deref().filter(|f| f.len() == SOCKADDR_IN6 + 2);
    let (tclass, hops) = meta.map_or((0, 64), |f| (f[SOCKADDR_IN6], f[SOCKADDR_IN6 + 1]));
    let on = |name: i32| {
        st.opts
            .get(&(IPPROTO_IPV6, name as u32))
            .is_some_and(|b| b.iter().any(|x| *x != 0))
    };
    let lvl = IPPROTO_IPV6 as i32;
    if on(libc::IPV6_RECVHOPLIMIT) {
        v.push((
            lvl,
            libc::IPV6_HOPLIMIT,
            i32::from(hops).to_ne_bytes().to_vec(),
        ));
    }
    if on(libc::IPV6_RECVTCLASS) {
        v.push((
            lvl,
            libc::IPV6_TCLASS,
            i32::from(tclass).to_ne_bytes().to_vec(),
        ));
    }
    v
}

/// A datagram's source as a receiver of family `v6` sees it.
pub(crate) fn source_for(v6: bool, from: &[u8]) -> Option<Rc<[u8]>> {
    endpoint_of(from).map(|ep| sockaddr(v6, ep).into())
}

/// What a socket bound at `ip` takes in: its IPv4 part and its IPv6 part (`None`:
/// nothing of that family; `Some(None)`: any address of it).
type Cover = (Option<Option<Ipv4Addr>>, Option<Option<Ipv6Addr>>);

fn cover(v6only: bool, ip: IpAddr) -> Cover {
    match ip {
        IpAddr::V4(a) => (Some((!a.is_unspecified()).then_some(a)), None),
        IpAddr::V6(a) if a.is_unspecified() => ((!v6only).then_some(None), Some(None)),
        IpAddr::V6(a) => (None, Some(Some(a))),
    }
}

fn meet<T: PartialEq>(a: &Option<Option<T>>, b: &Option<Option<T>>) -> bool {
    match (a, b) {
        (Some(x), Some(y)) => x.is_none() || y.is_none() || x == y,
        _ => false,
    }
}

fn overlap(a: &Cover, b: &Cover) -> bool {
    meet(&a.0, &b.0) || meet(&a.1, &b.1)
}

/// How well a socket bound at `ip` matches destination `dst` (0: not at all): an exact
/// address beats a wildcard, a socket of the destination's family another.
fn score(v6: bool, v6only: bool, ip: IpAddr, dst: IpAddr) -> u32 {
    let c = cover(v6only, ip);
    let hit = match dst {
        IpAddr::V4(d) => meet(&c.0, &Some(Some(d))),
        IpAddr::V6(d) => meet(&c.1, &Some(Some(d))),
    };
    if !hit {
        return 0;
    }
    let exact = !ip.is_unspecified();
    let same_family = v6 == dst.is_ipv6();
    1 + 4 * u32::from(exact) + 2 * u32::from(same_family)
}

/// The sandbox's port tables: which sockets are bound at each TCP and UDP port.
#[derive(Debug, Default)]
pub(crate) struct Ports {
    /// By protocol and port.
    bound: HashMap<(u32, u16), Vec<Weak<OpenFile>>>,
    next: u32,
}

impl Ports {
    /// The sockets bound at `port` that are still open (the others are forgotten).
    fn at(&mut self, proto: u32, port: u16) -> Vec<Rc<OpenFile>> {
        let t = &mut self.bound;
        let Some(v) = t.get_mut(&(proto, port)) else {
            return Vec::new();
        };
        v.retain(|w| w.strong_count() > 0);
        let live: Vec<_> = v.iter().filter_map(Weak::upgrade).collect();
        if live.is_empty() {
            t.remove(&(proto, port));
        }
        live
    }

    fn add(&mut self, proto: u32, port: u16, f: &Rc<OpenFile>) {
        self.bound
            .entry((proto, port))
            .or_default()
            .push(Rc::downgrade(f));
    }
}

/// The known options kept as an `int`: level, name, default, and whether any non-zero
/// value reads back as 1.
const INT_OPTS: &[(u32, u32, i32, bool)] = &[
    (SOL_SOCKET, libc::SO_DEBUG as u32, 0, true),
    (SOL_SOCKET, libc::SO_DONTROUTE as u32, 0, true),
    (SOL_SOCKET, libc::SO_BROADCAST as u32, 0, true),
    (SOL_SOCKET, libc::SO_KEEPALIVE as u32, 0, true),
    (SOL_SOCKET, libc::SO_OOBINLINE as u32, 0, true),
    (SOL_SOCKET, libc::SO_PRIORITY as u32, 0, false),
    (SOL_SOCKET, libc::SO_RCVLOWAT as u32, 1, false),
    (SOL_SOCKET, libc::SO_TIMESTAMP as u32, 0, true),
    (SOL_SOCKET, libc::SO_TIMESTAMPNS as u32, 0, true),
    (SOL_SOCKET, libc::SO_PASSCRED as u32, 0, true),
    (SOL_SOCKET, libc::SO_ZEROCOPY as u32, 0, true),
    (IPPROTO_TCP, libc::TCP_NODELAY as u32, 0, true),
    (IPPROTO_TCP, libc::TCP_MAXSEG as u32, 536, false),
    (IPPROTO_TCP, libc::TCP_CORK as u32, 0, true),
    (IPPROTO_TCP, libc::TCP_KEEPIDLE as u32, 7200, false),
    (IPPROTO_TCP, libc::TCP_KEEPINTVL as u32, 75, false),
    (IPPROTO_TCP, libc::TCP_KEEPCNT as u32, 9, false),
    (IPPROTO_TCP, libc::TCP_SYNCNT as u32, 6, false),
    (IPPROTO_TCP, libc::TCP_LINGER2 as u32, 60, false),
    (IPPROTO_TCP, libc::TCP_DEFER_ACCEPT as u32, 0, false),
    (IPPROTO_TCP, libc::TCP_QUICKACK as u32, 1, true),
    (IPPROTO_TCP, libc::TCP_USER_TIMEOUT as u32, 0, false),
    (IPPROTO_TCP, libc::TCP_FASTOPEN as u32, 0, false),
    (IPPROTO_UDPLITE, 10, 0, false), // UDPLITE_SEND_CSCOV
    (IPPROTO_UDPLITE, 11, 0, false), // UDPLITE_RECV_CSCOV
    (IPPROTO_IP, libc::IP_TOS as u32, 0, false),
    (IPPROTO_IP, libc::IP_TTL as u32, 64, false),
    (IPPROTO_IP, libc::IP_RECVERR as u32, 0, true),
    (IPPROTO_IP, libc::IP_PKTINFO as u32, 0, true),
    (IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS as u32, 64, false),
    (IPPROTO_IPV6, libc::IPV6_RECVERR as u32, 0, true),
    (IPPROTO_IPV6, libc::IPV6_RECVPKTINFO as u32, 0, true),
    (IPPROTO_IPV6, libc::IPV6_TCLASS as u32, 0, false),
    (IPPROTO_IPV6, libc::IPV6_RECVHOPLIMIT as u32, 0, true),
    (IPPROTO_IPV6, libc::IPV6_RECVTCLASS as u32, 0, true),
];

/// Whether a socket of `v6`/`proto` has options at `level`.
fn level_ok(v6: bool, proto: u32, level: u32) -> bool {
    match level {
        SOL_SOCKET | IPPROTO_IP => true,
        IPPROTO_IPV6 => v6,
        IPPROTO_TCP => proto == IPPROTO_TCP,
        IPPROTO_UDPLITE => proto == IPPROTO_UDPLITE,
        _ => false,
    }
}

/// A `struct timeval` option as a duration (`None`: zero, no timeout).
fn timeval(b: &[u8]) -> Result<Option<Duration>, Errno> {
    if b.len() < 16 {
        return Err(errno::EINVAL);
    }
    let s = i64::from_ne_bytes(b[..8].try_into().unwrap_or_default());
    let us = i64::from_ne_bytes(b[8..16].try_into().unwrap_or_default());
    if !(0..1_000_000).contains(&us) {
        return Err(Errno(libc::EDOM));
    }
    if s < 0 || (s == 0 && us == 0) {
        return Ok(None); // zero: no timeout (a negative one too, here)
    }
    Ok(Some(
        Duration::from_secs(s as u64) + Duration::from_micros(us as u64),
    ))
}

fn timeval_bytes(d: Option<Duration>) -> Vec<u8> {
    let d = d.unwrap_or_default();
    let mut v = (d.as_secs() as i64).to_ne_bytes().to_vec();
    v.extend_from_slice(&i64::from(d.subsec_micros()).to_ne_bytes());
    v
}

/// A fresh `AF_INET` (`v6`: `AF_INET6`) socket of `kind` (`SOCK_STREAM`: TCP,
/// `SOCK_DGRAM`: UDP), unbound.
pub(crate) fn new_inet(v6: bool, kind: i32, proto: u32) -> Socket {
    let any = if v6 {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    } else {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    };
    let rx =
        (kind == SOCK_DGRAM).then(|| PipeEnd::new(&Pipe::socket_sized(true, UDP_BUFFER), false));
    Socket {
        rx: RefCell::new(rx),
        tx: RefCell::new(None),
        kind,
        ino: next_ino(),
        inbox: Rc::new(RefCell::new(Inbox::default())),
        outbox: RefCell::new(None),
        unix: RefCell::new(UnixState {
            made: true,
            name: Some(sockaddr(v6, (any, 0)).into()),
            ..UnixState::default()
        }),
        inet: Some(Box::new(RefCell::new(InetState {
            v6,
            proto,
            local: None,
            peer: None,
            v6only: false,
            reuseaddr: false,
            reuseport: false,
            error: 0,
            connect: Connect::Idle,
            reset: false,
            rcvtimeo: None,
            sndtimeo: None,
            opts: BTreeMap::new(),
        }))),
    }
}

pub(crate) fn sock(f: &OpenFile) -> Result<&Socket, SysErr> {
    match &f.kind {
        FileKind::Socket(s) if s.inet.is_some() => Ok(s),
        _ => Err(errno::ENOTSOCK.into()),
    }
}

/// What `poll` sees of an inet socket: `(readable, writable, POLLERR|POLLHUP bits)`.
pub(crate) fn poll(s: &Socket) -> (bool, bool, i16) {
    const POLLERR: i16 = 0x8;
    const POLLHUP: i16 = 0x10;
    const POLLRDHUP: i16 = 0x2000;
    let Some(st) = state(s) else {
        return (false, false, 0);
    };
    let err = if st.error != 0 { POLLERR } else { 0 };
    let rx_ready =
        s.rx.borrow()
            .as_ref()
            .is_none_or(|e| e.readable(&e.pipe.borrow()));
    if st.proto != IPPROTO_TCP {
        let r =
            s.rx.borrow()
                .as_ref()
                .is_some_and(|e| e.readable(&e.pipe.borrow()));
        return (r, true, err);
    }
    let u = s.unix.borrow();
    if let Some(l) = &u.listen {
        return (!l.queue.is_empty(), false, 0);
    }
    if st.connect == Connect::Failed {
        return (true, true, err | POLLHUP);
    }
    if st.connect == Connect::Pending {
        return (false, false, 0);
    }
    if !u.connected {
        return (false, true, POLLHUP | err);
    }
    // Shut down for writing, or the peer gone: a write does not wait (as tcp_poll).
    let (w, shut_wr) = match s.tx.borrow().as_ref() {
        Some(e) => {
            let p = e.pipe.borrow();
            (p.readers == 0 || p.writable(), false)
        }
        None => (true, true),
    };
    let eof =
        s.rx.borrow()
            .as_ref()
            .is_none_or(|e| e.at_end(&e.pipe.borrow()));
    // Hung up once both directions are over: the end read and this side shut down for
    // writing, or reset by a write to a peer that had gone.
    let hup = if eof && (shut_wr || st.reset) {
        POLLHUP
    } else {
        0
    };
    let rdhup = if eof { POLLRDHUP } else { 0 };
    (rx_ready, w, hup | rdhup | err)
}

impl Kernel {
    /// `socket(AF_INET or AF_INET6, type, protocol)`: TCP and UDP; raw and ICMP
    /// sockets are refused (counted).
    /// `inet_create`'s checks of a socket's type (`kind`) and protocol, which
    /// `socket` and `socketpair` make alike (the latter then refuses to pair).
    pub(crate) fn inet_kind(&mut self, kind: i32, proto: u64) -> Result<(), SysErr> {
        match (kind, proto) {
            (SOCK_STREAM, 0 | 6) | (SOCK_DGRAM, 0 | 17 | 136) => Ok(()),
            (3, _) => Err(self.unsupported("socket(AF_INET, SOCK_RAW)", Errno(libc::EPERM))),
            (SOCK_DGRAM, 1 | 58) => {
                Err(self.unsupported("socket(AF_INET, SOCK_DGRAM, ICMP)", errno::EACCES))
            }
            (SOCK_STREAM | SOCK_DGRAM, _) => Err(Errno(libc::EPROTONOSUPPORT).into()),
            _ => Err(Errno(libc::ESOCKTNOSUPPORT).into()),
        }
    }

    pub(crate) fn inet_socket(&mut self, domain: u64, ty: i32, proto: u64) -> SysResult {
        let kind = ty & 0xf;
        self.inet_kind(kind, proto)?;
        let proto = match (kind, proto) {
            (SOCK_STREAM, _) => IPPROTO_TCP,
            (_, 136) => IPPROTO_UDPLITE,
            _ => IPPROTO_UDP,
        };
        let s = new_inet(domain == u64::from(AF_INET6), kind, proto);
        let nb = if ty as u64 & super::socket::SOCK_NONBLOCK != 0 {
            libc::O_NONBLOCK
        } else {
            0
        };
        let f = OpenFile::new(FileKind::Socket(s), None, libc::O_RDWR | nb);
        let cloexec = ty as u64 & super::socket::SOCK_CLOEXEC != 0;
        Ok(self.proc.files.add(f, cloexec, 0)?)
    }

    /// Reads an address for socket family `v6`, as Linux checks it: the length first
    /// (`EINVAL`), then the family (`EAFNOSUPPORT`; `AF_UNSPEC` answers `None`).
    fn inet_addr(&mut self, v6: bool, addr: u64, alen: u32) -> Result<Option<Endpoint>, SysErr> {
        if alen > SOCKADDR_STORAGE {
            return Err(errno::EINVAL.into());
        }
        let raw = self.mm.read_user_vec(addr, alen as usize)?;
        let min = if v6 { SIN6_LEN_RFC2133 } else { SOCKADDR_IN };
        if raw.len() >= 2 && u16::from_ne_bytes([raw[0], raw[1]]) == libc::AF_UNSPEC as u16 {
            return Ok(None);
        }
        if alen < min {
            return Err(errno::EINVAL.into());
        }
        let family = u16::from_ne_bytes([raw[0], raw[1]]);
        if family != if v6 { AF_INET6 } else { AF_INET } {
            return Err(errno::EAFNOSUPPORT.into());
        }
        let port = u16::from_be_bytes([raw[2], raw[3]]);
        let ip = if v6 {
            let o: [u8; 16] = raw[8..24].try_into().map_err(|_| errno::EINVAL)?;
            IpAddr::V6(Ipv6Addr::from(o))
        } else {
            IpAddr::from([raw[4], raw[5], raw[6], raw[7]])
        };
        Ok(Some((ip, port)))
    }

    /// Whether a socket may bind `ip` (canonical): an address of this sandbox's
    /// interfaces. In an empty namespace Linux has no local routing table yet, and
    /// takes any IPv4 address (`inet_addr_type` answers "broadcast"); IPv6 has none.
    fn is_local(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(_) if self.net == NetMode::None => true,
            IpAddr::V4(a) => {
                a.is_unspecified()
                    || a.is_loopback()
                    || (self.net == NetMode::Egress && a == SANDBOX_ADDR)
            }
            IpAddr::V6(a) => a.is_unspecified() || (a.is_loopback() && self.net != NetMode::None),
        }
    }

    /// The route to `dst` (canonical): the destination reached (the wildcards mean this
    /// host), or why not, as Linux answers in the namespace this mode is.
    fn route(&self, dst: IpAddr) -> Result<IpAddr, Errno> {
        let dst = match dst {
            IpAddr::V4(a) if a.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(a) if a.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            d => d,
        };
        match (self.net, dst) {
            (NetMode::Loopback | NetMode::Egress, IpAddr::V4(a)) if a.is_loopback() => Ok(dst),
            (NetMode::Loopback | NetMode::Egress, IpAddr::V6(a)) if a.is_loopback() => Ok(dst),
            // The sandbox's own address, or the broker's to decide (`is_remote`).
            (NetMode::Egress, IpAddr::V4(_)) => Ok(dst),
            // No IPv6 address at all: no source for any destination.
            (NetMode::None, IpAddr::V6(_)) => Err(Errno(libc::EADDRNOTAVAIL)),
            _ => Err(Errno(libc::ENETUNREACH)),
        }
    }

    /// A free ephemeral port of `proto` (`None` when every one is taken).
    fn ephemeral(&mut self, proto: u32) -> Option<u16> {
        let span = u32::from(EPHEMERAL.1 - EPHEMERAL.0) + 1;
        if self.inet.next == 0 {
            let mut b = [0u8; 4];
            super::fill_random_bytes(&mut b);
            self.inet.next = u32::from_ne_bytes(b) % span + 1;
        }
        for _ in 0..span {
            let port = EPHEMERAL.0 + ((self.inet.next - 1) % span) as u16;
            self.inet.next = self.inet.next % span + 1;
            if self.inet.at(proto, port).is_empty() {
                return Some(port);
            }
        }
        None
    }

    /// Binds `f` at `ip` (canonical) and `port` (0: an ephemeral one), as Linux's
    /// `inet_csk_get_port`/`udp_lib_get_port`: a port is shared only by sockets whose
    /// addresses do not overlap, or that all set `SO_REUSEPORT`, or (not listening,
    /// for TCP) all set `SO_REUSEADDR`.
    fn claim(&mut self, f: &Rc<OpenFile>, ip: IpAddr, port: u16) -> Result<(), SysErr> {
        let s = sock(f)?;
        let (proto, v6only, reuseaddr, reuseport) = {
            let st = state(s).ok_or(errno::ENOTSOCK)?;
            (st.proto, st.v6only, st.reuseaddr, st.reuseport)
        };
        let port = if port == 0 {
            self.ephemeral(proto).ok_or(errno::EADDRINUSE)?
        } else {
            let mine = cover(v6only, ip);
            for other in self.inet.at(proto, port) {
                let Ok(o) = sock(&other) else { continue };
                let Some(ost) = state(o) else { continue };
                let Some((oip, _)) = ost.local else { continue };
                if !overlap(&mine, &cover(ost.v6only, oip)) {
                    continue;
                }
                let listening = o.unix.borrow().listen.is_some();
                let shared = (reuseport && ost.reuseport)
                    || (reuseaddr && ost.reuseaddr && (proto != IPPROTO_TCP || !listening));
                if !shared {
                    return Err(errno::EADDRINUSE.into());
                }
            }
            port
        };
        self.inet.add(proto, port, f);
        let v6 = {
            let mut st = state(s).ok_or(errno::ENOTSOCK)?;
            st.local = Some((ip, port));
            st.v6
        };
        s.unix.borrow_mut().name = Some(sockaddr(v6, (ip, port)).into());
        Ok(())
    }

    /// `bind` of an `AF_INET`/`AF_INET6` socket.
    pub(crate) fn inet_bind(&mut self, f: &Rc<OpenFile>, addr: u64, alen: u32) -> SysResult {
        let s = sock(f)?;
        let (v6, v6only) = {
            let st = state(s).ok_or(errno::ENOTSOCK)?;
            (st.v6, st.v6only)
        };
        let Some((ip, port)) = self.inet_addr(v6, addr, alen)? else {
            // AF_UNSPEC: an IPv4 socket takes it with INADDR_ANY (as Linux's inet_bind).
            if v6 {
                return Err(errno::EAFNOSUPPORT.into());
            }
            let raw = self
                .mm
                .read_user_vec(addr, alen.min(SOCKADDR_IN) as usize)?;
            if alen < SOCKADDR_IN || raw[4..8] != [0; 4] {
                return Err(if alen < SOCKADDR_IN {
                    errno::EINVAL
                } else {
                    errno::EAFNOSUPPORT
                }
                .into());
            }
            let port = u16::from_be_bytes([raw[2], raw[3]]);
            return self.inet_bind_at(f, IpAddr::V4(Ipv4Addr::UNSPECIFIED), port);
        };
        if v6 && v6only && matches!(ip, IpAddr::V6(a) if a.to_ipv4_mapped().is_some()) {
            return Err(errno::EINVAL.into());
        }
        self.inet_bind_at(f, canonical(ip), port)
    }

    fn inet_bind_at(&mut self, f: &Rc<OpenFile>, ip: IpAddr, port: u16) -> SysResult {
        let s = sock(f)?;
        if !self.is_local(ip) {
            return Err(Errno(libc::EADDRNOTAVAIL).into());
        }
        if port != 0 && port < PRIVILEGED_BELOW && self.user.0 != 0 {
            return Err(errno::EACCES.into());
        }
        if state(s).is_some_and(|st| st.local.is_some()) || s.unix.borrow().connected {
            return Err(errno::EINVAL.into());
        }
        self.claim(f, ip, port)?;
        Ok(0)
    }

    /// Binds an unbound socket to the wildcard and an ephemeral port (as Linux's
    /// `inet_autobind`, before `listen`, a connect or a send).
    pub(crate) fn inet_autobind(&mut self, f: &Rc<OpenFile>) -> Result<(), SysErr> {
        let s = sock(f)?;
        let v6 = match state(s) {
            Some(st) if st.local.is_none() => st.v6,
            _ => return Ok(()),
        };
        let any = if v6 {
            IpAddr::V6(Ipv6Addr::UNSPECIFIED)
        } else {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        };
        self.claim(f, any, 0)
    }

    /// `listen` of a TCP socket (an unbound one gets an ephemeral port).
    pub(crate) fn inet_listen(&mut self, f: &Rc<OpenFile>, backlog: u64) -> SysResult {
        let s = sock(f)?;
        let (proto, local, v6only, reuseport) = {
            let st = state(s).ok_or(errno::ENOTSOCK)?;
            (st.proto, st.local, st.v6only, st.reuseport)
        };
        if proto != IPPROTO_TCP {
            return Err(errno::EOPNOTSUPP.into());
        }
        if s.unix.borrow().connected || state(s).is_some_and(|st| st.connect != Connect::Idle) {
            return Err(errno::EINVAL.into());
        }
        if s.unix.borrow().listen.is_none() {
            if let Some((ip, port)) = local {
                // Another socket of the port listening at an overlapping address.
                for other in self.inet.at(IPPROTO_TCP, port) {
                    if Rc::ptr_eq(&other, f) {
                        continue;
                    }
                    let Ok(o) = sock(&other) else { continue };
                    let Some(ost) = state(o) else { continue };
                    let Some((oip, _)) = ost.local else { continue };
                    if o.unix.borrow().listen.is_some()
                        && overlap(&cover(v6only, ip), &cover(ost.v6only, oip))
                        && !(reuseport && ost.reuseport)
                    {
                        return Err(errno::EADDRINUSE.into());
                    }
                }
            } else {
                self.inet_autobind(f)?;
            }
        }
        // In an OCI engine's network namespace, a listener the engine's network can
        // reach (a wildcard address, or the guest's own) gets its twin there.
        if let (Some(eg), Some((ip, port))) = (&self.egress, state(s).and_then(|st| st.local)) {
            if ip.is_unspecified() || ip == IpAddr::V4(SANDBOX_ADDR) {
                eg.net.listen(port);
            }
        }
        let b = backlog as u32;
        let max = if b > SOMAXCONN { SOMAXCONN } else { b } as usize;
        let cred = self.own_cred();
        let mut u = s.unix.borrow_mut();
        match &mut u.listen {
            Some(l) => l.max = max,
            None => {
                u.listen = Some(Backlog {
                    max,
                    queue: std::collections::VecDeque::new(),
                    cred,
                })
            }
        }
        Ok(0)
    }

    /// The socket a packet to `dst` (canonical) at `port` reaches: the best-scored
    /// listener (TCP) or receiver (UDP; a connected one only from its peer `from`).
    pub(crate) fn lookup(
        &mut self,
        proto: u32,
        dst: IpAddr,
        port: u16,
        from: Endpoint,
    ) -> Option<Rc<OpenFile>> {
        let mut best: Option<(u32, Rc<OpenFile>)> = None;
        for f in self.inet.at(proto, port) {
            let Ok(s) = sock(&f) else { continue };
            let Some(st) = state(s) else { continue };
            let Some((ip, _)) = st.local else { continue };
            if proto == IPPROTO_TCP && s.unix.borrow().listen.is_none() {
                continue;
            }
            if proto != IPPROTO_TCP {
                if let Some(p) = st.peer {
                    if p != from {
                        continue;
                    }
                }
            }
            let sc = score(st.v6, st.v6only, ip, dst);
            if sc > 0 && best.as_ref().is_none_or(|(b, _)| sc > *b) {
                best = Some((sc, Rc::clone(&f)));
            }
        }
        best.map(|(_, f)| f)
    }

    /// The source address a socket bound at `local` uses toward `dst` (routed).
    fn source(&self, local: Option<Endpoint>, dst: IpAddr) -> IpAddr {
        match local {
            Some((ip, _)) if !ip.is_unspecified() => ip,
            _ => match dst {
                IpAddr::V4(a) if self.net == NetMode::Egress && !a.is_loopback() => {
                    IpAddr::V4(SANDBOX_ADDR)
                }
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
            },
        }
    }

    /// Whether `dst` (routed) is beyond the sandbox: the egress broker's to decide.
    pub(crate) fn is_remote(&self, dst: IpAddr) -> bool {
        self.net == NetMode::Egress
            && matches!(dst, IpAddr::V4(a) if !a.is_loopback() && !a.is_unspecified() && a != SANDBOX_ADDR)
    }

    /// `connect` of an `AF_INET`/`AF_INET6` socket.
    pub(crate) fn inet_connect(&mut self, f: &Rc<OpenFile>, addr: u64, alen: u32) -> SysResult {
        let s = sock(f)?;
        let (v6, v6only, proto) = {
            let st = state(s).ok_or(errno::ENOTSOCK)?;
            (st.v6, st.v6only, st.proto)
        };
        let nonblock = f.flags.get() & libc::O_NONBLOCK != 0;
        if proto == IPPROTO_TCP {
            // A non-blocking connect's answer comes first, then the state's.
            let pending = state(s).map(|st| st.connect);
            match pending {
                Some(Connect::InProgress) => {
                    if let Some(mut st) = state(s) {
                        st.connect = Connect::Idle;
                    }
                    return Ok(0);
                }
                Some(Connect::Failed) => {
                    let e = state(s).map_or(0, |mut st| {
                        st.connect = Connect::Idle;
                        std::mem::take(&mut st.error)
                    });
                    return Err(Errno(if e == 0 { libc::ECONNABORTED } else { e }).into());
                }
                Some(Connect::Pending) if nonblock => return Err(Errno(libc::EALREADY).into()),
                Some(Connect::Pending) => return Err(self.park(None)),
                _ => {}
            }
            if s.unix.borrow().connected || s.unix.borrow().listen.is_some() {
                // AF_UNSPEC on a connected socket drops the connection.
                if alen >= 2 {
                    let fam = self.mm.read(UserPtr::<u16>::new(addr))?;
                    if fam == libc::AF_UNSPEC as u16 {
                        drop(s.rx.borrow_mut().take());
                        drop(s.tx.borrow_mut().take());
                        s.unix.borrow_mut().connected = false;
                        s.unix.borrow_mut().listen = None;
                        return Ok(0);
                    }
                }
                return Err(errno::EISCONN.into());
            }
        }
        let Some((ip, port)) = self.inet_addr(v6, addr, alen)? else {
            // AF_UNSPEC: forget the peer (UDP), or nothing to drop (TCP).
            if proto != IPPROTO_TCP {
                if let Some(mut st) = state(s) {
                    st.peer = None;
                }
                let mut u = s.unix.borrow_mut();
                u.connected = false;
                u.peer_name = None;
            }
            return Ok(0);
        };
        let mapped = matches!(ip, IpAddr::V6(a) if a.to_ipv4_mapped().is_some());
        if v6only && mapped {
            return Err(Errno(libc::ENETUNREACH).into());
        }
        let dst = self.route(canonical(ip))?;
        if proto != IPPROTO_TCP {
            self.inet_autobind(f)?;
            let local = state(s).and_then(|st| st.local);
            let src = self.source(local, dst);
            if let Some(mut st) = state(s) {
                st.peer = Some((dst, port));
                if let Some((lip, lport)) = st.local {
                    if lip.is_unspecified() {
                        st.local = Some((src, lport));
                    }
                }
            }
            let local = state(s).and_then(|st| st.local);
            let mut u = s.unix.borrow_mut();
            u.connected = true;
            u.peer_name = Some(sockaddr(v6, (dst, port)).into());
            if let Some(l) = local {
                u.name = Some(sockaddr(v6, l).into());
            }
            return Ok(0);
        }
        if self.is_remote(dst) {
            return self.egress_connect(f, dst, port, nonblock);
        }
        let listener = self.lookup(IPPROTO_TCP, dst, port, (dst, port));
        let Some(listener) = listener else {
            if nonblock {
                if let Some(mut st) = state(s) {
                    st.connect = Connect::Failed;
                    st.error = libc::ECONNREFUSED;
                }
                return Err(Errno(libc::EINPROGRESS).into());
            }
            return Err(errno::ECONNREFUSED.into());
        };
        let l = sock(&listener)?;
        let (full, lv6, lport) = {
            let u = l.unix.borrow();
            let Some(b) = &u.listen else {
                return Err(errno::ECONNREFUSED.into());
            };
            let lst = state(l).ok_or(errno::ENOTSOCK)?;
            (
                b.queue.len() > b.max,
                lst.v6,
                lst.local.map_or(port, |x| x.1),
            )
        };
        if full {
            if nonblock {
                return Err(errno::EAGAIN.into());
            }
            return Err(self.park(None));
        }
        self.inet_autobind(f)?;
        let local = state(s).and_then(|st| st.local).unwrap_or((dst, 0));
        let src = (self.source(Some(local), dst), local.1);
        let server = new_inet(lv6, SOCK_STREAM, IPPROTO_TCP);
        link_sized(s, &server, TCP_BUFFER);
        if let Some(mut st) = state(&server) {
            st.local = Some((dst, lport));
            st.peer = Some(src);
        }
        {
            let mut su = server.unix.borrow_mut();
            su.name = Some(sockaddr(lv6, (dst, lport)).into());
            su.peer_name = Some(sockaddr(lv6, src).into());
        }
        if let Some(mut st) = state(s) {
            st.local = Some(src);
            st.peer = Some((dst, port));
            if nonblock {
                st.connect = Connect::InProgress;
            }
        }
        {
            let mut u = s.unix.borrow_mut();
            u.name = Some(sockaddr(v6, src).into());
            u.peer_name = Some(sockaddr(v6, (dst, port)).into());
        }
        let file = OpenFile::new(FileKind::Socket(server), None, libc::O_RDWR);
        if let Some(b) = &mut l.unix.borrow_mut().listen {
            b.queue.push_back(file);
        }
        if nonblock {
            return Err(Errno(libc::EINPROGRESS).into());
        }
        Ok(0)
    }

    /// Sends on an `AF_INET`/`AF_INET6` socket: TCP on its connection (a destination
    /// named is ignored, as Linux's); UDP to the socket bound at the destination (or
    /// the peer), with this socket's address as the source. A datagram to a port
    /// nobody has is dropped, and a connected sender learns it (`ECONNREFUSED` at its
    /// next call), as from Linux's ICMP port-unreachable; a full receive queue drops
    /// it, as Linux's.
    pub(crate) fn inet_send(
        &mut self,
        f: &Rc<OpenFile>,
        data: &[u8],
        flags: u64,
        to: Option<(u64, u32)>,
        out: Outgoing,
    ) -> SysResult {
        let s = sock(f)?;
        if !out.files.is_empty() {
            return Err(errno::EINVAL.into());
        }
        // An IPv4 UDP send has no out-of-band data (udp_sendmsg: after the length's
        // check); IPv6's sends it as any datagram.
        if flags & super::socket::MSG_OOB != 0
            && state(s).is_some_and(|st| !st.v6 && st.proto != IPPROTO_TCP)
        {
            if data.len() > 0xffff {
                return Err(Errno(libc::EMSGSIZE).into());
            }
            return Err(errno::EOPNOTSUPP.into());
        }
        // IPPROTO_IPV6 items of an IPv6 datagram: checked as ip6_datagram_send_ctl.
        let mut item_hops = None;
        let mut item_tclass = None;
        if state(s).is_some_and(|st| st.v6 && st.proto != IPPROTO_TCP) {
            for (ty, data) in &out.ipv6 {
                let v = match <[u8; 4]>::try_from(data.as_slice()) {
                    Ok(b) => i32::from_ne_bytes(b),
                    Err(_) => return Err(errno::EINVAL.into()),
                };
                if !(-1..=255).contains(&v) {
                    return Err(errno::EINVAL.into());
                }
                match *ty {
                    libc::IPV6_HOPLIMIT => item_hops = Some(v),
                    libc::IPV6_TCLASS => item_tclass = Some(v),
                    _ => return Err(errno::EINVAL.into()),
                }
            }
        }
        let (v6, proto, v6only) = {
            let mut st = state(s).ok_or(errno::ENOTSOCK)?;
            let e = std::mem::take(&mut st.error);
            if e != 0 {
                if st.connect == Connect::Failed {
                    st.connect = Connect::Idle;
                }
                return Err(Errno(e).into());
            }
            (st.v6, st.proto, st.v6only)
        };
        if proto == IPPROTO_TCP {
            return self.send_on(f, data, flags, None, out, None);
        }
        let dst = match to {
            Some((addr, alen)) if addr != 0 && alen != 0 => {
                match self.inet_addr(v6, addr, alen)? {
                    Some(ep) => Some(ep),
                    None => state(s).and_then(|st| st.peer),
                }
            }
            _ => state(s).and_then(|st| st.peer),
        };
        let Some((ip, port)) = dst else {
            return Err(Errno(libc::EDESTADDRREQ).into());
        };
        if port == 0 {
            return Err(errno::EINVAL.into());
        }
        if v6only && matches!(ip, IpAddr::V6(a) if a.to_ipv4_mapped().is_some()) {
            return Err(Errno(libc::ENETUNREACH).into());
        }
        self.inet_autobind(f)?;
        let dst = self.route(canonical(ip))?;
        if data.len() > UDP_MAX[usize::from(v6)] {
            return Err(Errno(libc::EMSGSIZE).into());
        }
        if self.is_remote(dst) {
            return self.egress_datagram(f, data, dst, port);
        }
        let local = state(s).and_then(|st| st.local);
        let src = (self.source(local, dst), local.map_or(0, |l| l.1));
        let Some(target) = self.lookup(proto, dst, port, src) else {
            let connected_to_it = state(s).is_some_and(|st| st.peer == Some((dst, port)));
            if connected_to_it {
                if let Some(mut st) = state(s) {
                    st.error = libc::ECONNREFUSED;
                }
            }
            return Ok(data.len() as u64);
        };
        // The hop limit and traffic class go after the source: an item of the message
        // (IPV6_HOPLIMIT, IPV6_TCLASS, -1 for the default), else the socket's options.
        let (mut hops, mut tclass) = {
            let st = state(s).ok_or(errno::ENOTSOCK)?;
            let opt = |l: u32, n: i32, d: i32| {
                st.opts.get(&(l, n as u32)).map_or(d, |b| {
                    i32::from_ne_bytes(b[..4].try_into().unwrap_or_default())
                })
            };
            if v6 {
                (
                    opt(IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS, 64),
                    opt(IPPROTO_IPV6, libc::IPV6_TCLASS, 0),
                )
            } else {
                (
                    opt(IPPROTO_IP, libc::IP_TTL, 64),
                    opt(IPPROTO_IP, libc::IP_TOS, 0),
                )
            }
        };
        if let Some(h) = item_hops.filter(|h| *h >= 0) {
            hops = h;
        }
        if let Some(t) = item_tclass.filter(|t| *t >= 0) {
            tclass = t;
        }
        let mut meta = sockaddr(true, src);
        meta.push(tclass.clamp(0, 255) as u8);
        meta.push(hops.clamp(0, 255) as u8);
        let from: Rc<[u8]> = meta.into();
        const MSG_DONTWAIT: u64 = 0x40;
        match self.send_on(f, data, flags | MSG_DONTWAIT, Some(target), out, Some(from)) {
            Err(SysErr::Errno(e)) if e == errno::EAGAIN => Ok(data.len() as u64),
            r => r,
        }
    }

    /// Takes the error a socket has to report (`SO_ERROR`, or an ICMP-like answer to
    /// an earlier datagram), if any.
    pub(crate) fn inet_take_error(s: &Socket) -> Option<Errno> {
        let mut st = state(s)?;
        let e = std::mem::take(&mut st.error);
        if st.connect == Connect::Failed {
            st.connect = Connect::Idle;
        }
        (e != 0).then_some(Errno(e))
    }

    /// `shutdown` of an `AF_INET`/`AF_INET6` socket: `ENOTCONN` unless connected; a
    /// listener shut down for reading stops listening.
    pub(crate) fn inet_shutdown(&mut self, s: &Socket, how: u64) -> Result<bool, SysErr> {
        if how > 2 {
            return Err(errno::EINVAL.into());
        }
        let mut u = s.unix.borrow_mut();
        if u.listen.is_some() {
            if how != 1 {
                u.listen = None;
            }
            return Ok(true);
        }
        if !u.connected {
            return Err(errno::ENOTCONN.into());
        }
        Ok(false)
    }

    /// `getsockopt` of an `AF_INET`/`AF_INET6` socket.
    pub(crate) fn inet_getsockopt(
        &mut self,
        f: &Rc<OpenFile>,
        level: u32,
        name: u32,
        val: u64,
        len: UserPtr<u32>,
    ) -> SysResult {
        let s = sock(f)?;
        let int = |v: i32| v.to_ne_bytes().to_vec();
        let listening = s.unix.borrow().listen.is_some();
        let v: Vec<u8> = {
            let mut st = state(s).ok_or(errno::ENOTSOCK)?;
            // Linux's ip_getsockopt answers a level it does not know EOPNOTSUPP
            // (setsockopt: ENOPROTOOPT).
            if !level_ok(st.v6, st.proto, level) {
                return Err(errno::EOPNOTSUPP.into());
            }
            match (level, name as i32) {
                (SOL_SOCKET, libc::SO_TYPE) => int(s.kind),
                (SOL_SOCKET, libc::SO_DOMAIN) => {
                    int(i32::from(if st.v6 { AF_INET6 } else { AF_INET }))
                }
                (SOL_SOCKET, libc::SO_PROTOCOL) => int(st.proto as i32),
                (SOL_SOCKET, libc::SO_ERROR) => {
                    let e = std::mem::take(&mut st.error);
                    int(e)
                }
                (SOL_SOCKET, libc::SO_ACCEPTCONN) => int(i32::from(listening)),
                (SOL_SOCKET, libc::SO_REUSEADDR) => int(i32::from(st.reuseaddr)),
                (SOL_SOCKET, libc::SO_REUSEPORT) => int(i32::from(st.reuseport)),
                (SOL_SOCKET, libc::SO_RCVBUF | libc::SO_SNDBUF) => {
                    match st.opts.get(&(level, name)) {
                        Some(v) => v.clone(),
                        None if s.kind == SOCK_DGRAM => int(UDP_BUFFER as i32),
                        None if name as i32 == libc::SO_RCVBUF => int(131_072),
                        None => int(16_384),
                    }
                }
                (SOL_SOCKET, libc::SO_LINGER) => st
                    .opts
                    .get(&(level, name))
                    .cloned()
                    .unwrap_or_else(|| vec![0; 8]),
                (SOL_SOCKET, libc::SO_RCVTIMEO | libc::SO_RCVTIMEO_NEW) => {
                    timeval_bytes(st.rcvtimeo)
                }
                (SOL_SOCKET, libc::SO_SNDTIMEO | libc::SO_SNDTIMEO_NEW) => {
                    timeval_bytes(st.sndtimeo)
                }
                (SOL_SOCKET, libc::SO_PEERCRED) => {
                    drop(st);
                    use zerocopy::IntoBytes;
                    super::unix::NO_CRED.as_bytes().to_vec()
                }
                (IPPROTO_IPV6, n) if n as u32 == IPV6_V6ONLY => int(i32::from(st.v6only)),
                (IPPROTO_TCP, libc::TCP_MAXSEG) if s.unix.borrow().connected => int(65_483),
                _ => match INT_OPTS.iter().find(|o| o.0 == level && o.1 == name) {
                    Some(o) => st.opts.get(&(level, name)).cloned().unwrap_or(int(o.2)),
                    None => return Err(Errno(libc::ENOPROTOOPT).into()),
                },
            }
        };
        let cap = self.mm.read(len)?;
        if (cap as i32) < 0 {
            return Err(errno::EINVAL.into());
        }
        let n = (cap as usize).min(v.len());
        self.mm.write_user(val, &v[..n])?;
        self.mm.write(len, &(n as u32))?;
        Ok(0)
    }

    /// `setsockopt` of an `AF_INET`/`AF_INET6` socket: the options real programs set
    /// are kept and read back (`SO_REUSEADDR`, `SO_REUSEPORT`, `IPV6_V6ONLY` and the
    /// timeouts are used; buffer sizes are doubled, as Linux reports them).
    pub(crate) fn inet_setsockopt(
        &mut self,
        f: &Rc<OpenFile>,
        level: u32,
        name: u32,
        val: u64,
        len: u32,
    ) -> SysResult {
        let s = sock(f)?;
        let (v6, proto) = {
            let st = state(s).ok_or(errno::ENOTSOCK)?;
            (st.v6, st.proto)
        };
        if !level_ok(v6, proto, level) {
            return Err(Errno(libc::ENOPROTOOPT).into());
        }
        if (len as i32) < 0 {
            return Err(errno::EINVAL.into());
        }
        let raw = self.mm.read_user_vec(val, (len as usize).min(64))?;
        let int = || -> Result<i32, SysErr> {
            if raw.len() < 4 {
                return Err(errno::EINVAL.into());
            }
            Ok(i32::from_ne_bytes([raw[0], raw[1], raw[2], raw[3]]))
        };
        let mut st = state(s).ok_or(errno::ENOTSOCK)?;
        match (level, name as i32) {
            (SOL_SOCKET, libc::SO_REUSEADDR) => st.reuseaddr = int()? != 0,
            (SOL_SOCKET, libc::SO_REUSEPORT) => st.reuseport = int()? != 0,
            (SOL_SOCKET, libc::SO_RCVBUF | libc::SO_SNDBUF) => {
                let min = if name as i32 == libc::SO_RCVBUF {
                    2304
                } else {
                    4608
                };
                let v = (int()?.clamp(0, 212_992) * 2).max(min);
                st.opts.insert((level, name), v.to_ne_bytes().to_vec());
                if st.proto == IPPROTO_TCP {
                    fit_buffer(s, name as i32 == libc::SO_RCVBUF, v as usize);
                }
            }
            (SOL_SOCKET, libc::SO_LINGER) => {
                if raw.len() < 8 {
                    return Err(errno::EINVAL.into());
                }
                let on = i32::from_ne_bytes([raw[0], raw[1], raw[2], raw[3]]) != 0;
                let mut v = i32::from(on).to_ne_bytes().to_vec();
                v.extend_from_slice(&raw[4..8]);
                st.opts.insert((level, name), v);
            }
            (SOL_SOCKET, libc::SO_RCVTIMEO | libc::SO_RCVTIMEO_NEW) => st.rcvtimeo = timeval(&raw)?,
            (SOL_SOCKET, libc::SO_SNDTIMEO | libc::SO_SNDTIMEO_NEW) => st.sndtimeo = timeval(&raw)?,
            (SOL_SOCKET, libc::SO_BINDTODEVICE) => {
                // Only `lo` exists (an empty name unbinds).
                let dev: Vec<u8> = raw.iter().copied().take_while(|b| *b != 0).collect();
                if !dev.is_empty() && dev != b"lo" {
                    return Err(Errno(libc::ENODEV).into());
                }
            }
            (IPPROTO_IPV6, n) if n as u32 == IPV6_V6ONLY => {
                let v = int()?;
                if st.local.is_some() {
                    return Err(errno::EINVAL.into());
                }
                st.v6only = v != 0;
            }
            _ => match INT_OPTS.iter().find(|o| o.0 == level && o.1 == name) {
                Some(o) => {
                    let v = int()?;
                    let v = if o.3 { i32::from(v != 0) } else { v };
                    st.opts.insert((level, name), v.to_ne_bytes().to_vec());
                }
                None => return Err(Errno(libc::ENOPROTOOPT).into()),
            },
        }
        Ok(0)
    }
}
