//! `AF_NETLINK` sockets inside the guest: `NETLINK_ROUTE` answered by the personality,
//! enough for a program to learn the sandbox's interfaces as a Linux network namespace
//! shows them (`if_nameindex()`, `getifaddrs()`, `ip addr`, `ip link`, `ip route show
//! table all`), and the interface `ioctl`s (`SIOCGIFINDEX`, `SIOCGIFNAME`, ...) every
//! socket answers. Nothing here reaches the host's netlink: the answers are made from
//! the network mode alone, which gives one interface, `lo`:
//! - `loopback`: `lo` up with `127.0.0.1/8` and `::1/128`, and the local table's routes;
//! - `none`: `lo` down, no address, no route (what `unshare -n` shows on the host).
//!
//! A request is taken as Linux's `netlink_rcv_skb` and `rtnetlink_rcv_msg` take it:
//! every message of a datagram in turn, an `NLMSG_ERROR` answer for an error or when
//! `NLM_F_ACK` asks, dumps (`RTM_GETLINK`, `RTM_GETADDR`, `RTM_GETROUTE`) in datagrams of
//! at most `NLMSG_GOODSIZE` bytes followed by `NLMSG_DONE`. Requests that would change
//! the network are `EPERM` (the sandbox has no `CAP_NET_ADMIN` over it); other types
//! are `EOPNOTSUPP`, as Linux answers a type without handler, and counted as
//! unimplemented. Other netlink protocols are `EPROTONOSUPPORT` (counted).

use std::collections::HashMap;
use std::rc::{Rc, Weak};

use super::fd::{FileKind, OpenFile, Socket};
use super::inet::NetMode;
use super::scm::Outgoing;
use super::unix::{new_socket, SOCK_DGRAM};
use super::{Kernel, SysErr, SysResult};
use crate::errno::{self, Errno};
use crate::mm::UserPtr;
use crate::pipe::{Pipe, PipeEnd};

pub(crate) const AF_NETLINK: u16 = 16;
const SOCK_RAW: i32 = 3;
/// `MAX_LINKS`: netlink protocols are below it.
const MAX_LINKS: u64 = 32;
const SOL_SOCKET: u32 = 1;
const SOL_NETLINK: u32 = 270;
/// `sizeof(struct sockaddr_nl)`.
const SOCKADDR_NL: usize = 12;
const HDR: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
/// Types below it are control messages, not requests.
const NLMSG_MIN_TYPE: u16 = 0x10;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_MULTI: u16 = 2;
const NLM_F_ACK: u16 = 4;
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_CAPPED: u16 = 0x100;
const RTM_BASE: u16 = 16;
/// The last rtnetlink type of Linux 6.x (`RTM_MAX`).
const RTM_MAX: u16 = 131;
const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
const RTM_NEWADDR: u16 = 20;
const RTM_GETADDR: u16 = 22;
const RTM_NEWROUTE: u16 = 24;
const RTM_GETROUTE: u16 = 26;
const PF_BRIDGE: u8 = 7;
const AF_INET6: u8 = 10;
/// `NLMSG_GOODSIZE` on 4 KiB pages: what a dump puts in one datagram.
const GOODSIZE: usize = 3776;
/// `net.core.rmem_default`/`wmem_default`, and the `_max` a program may ask.
const BUF_DEFAULT: u32 = 212_992;
/// `SOCK_MIN_RCVBUF`, `SOCK_MIN_SNDBUF`.
const MIN_RCVBUF: u32 = 2304;
const MIN_SNDBUF: u32 = 4608;
/// `lo`'s index.
const LO: i32 = 1;
/// `IFF_UP | IFF_LOOPBACK | IFF_RUNNING` (and `IFF_LOWER_UP` in netlink's 32 bits).
const LO_FLAGS_UP: u32 = 0x1_0049;
const IFF_LOOPBACK: u32 = 0x8;
/// `ARPHRD_LOOPBACK`.
const ARPHRD_LOOPBACK: u16 = 772;

/// A netlink socket's own state (its receive queue is the socket's `rx`).
#[derive(Debug)]
pub(crate) struct Netlink {
    /// `SOCK_RAW` or `SOCK_DGRAM`, as made (the same thing for netlink).
    ty: i32,
    /// The protocol (`NETLINK_ROUTE`).
    proto: u32,
    /// Its port id: 0 until bound (by `bind`, or automatically by a send or `connect`).
    portid: u32,
    /// Multicast groups joined (`bind`'s `nl_groups`): no event ever happens here.
    groups: u32,
    /// `connect`'s destination (port id, groups).
    dst: (u32, u32),
    /// `SOL_NETLINK` flags set (`NETLINK_PKTINFO`... as bits by option number).
    flags: u32,
    /// `SO_RCVBUF`, `SO_SNDBUF` as `getsockopt` shows them.
    rcvbuf: u32,
    sndbuf: u32,
    /// `SO_PASSCRED`.
    passcred: bool,
}

/// The sandbox's netlink port ids in use (`NETLINK_ROUTE`'s table).
#[derive(Debug)]
pub(crate) struct Ports {
    bound: HashMap<u32, Weak<OpenFile>>,
    /// Linux's `rover`: the automatic port ids after the first of a process.
    rover: i32,
}

impl Default for Ports {
    fn default() -> Self {
        Ports {
            bound: HashMap::new(),
            rover: -4096,
        }
    }
}

impl Ports {
    fn taken(&self, id: u32) -> bool {
        self.bound.get(&id).is_some_and(|w| w.strong_count() > 0)
    }

    fn insert(&mut self, id: u32, f: &Rc<OpenFile>) {
        if self.bound.len() > 64 {
            self.bound.retain(|_, w| w.strong_count() > 0);
        }
        self.bound.insert(id, Rc::downgrade(f));
    }
}

/// A socket's netlink state (`None`: not a netlink socket).
pub(crate) fn is_netlink(f: &OpenFile) -> bool {
    matches!(&f.kind, FileKind::Socket(s) if s.unix.borrow().netlink.is_some())
}

/// `struct sockaddr_nl` of a port id and groups.
fn sockaddr_nl(pid: u32, groups: u32) -> Rc<[u8]> {
    let mut v = Vec::with_capacity(SOCKADDR_NL);
    v.extend_from_slice(&AF_NETLINK.to_ne_bytes());
    v.extend_from_slice(&[0, 0]);
    v.extend_from_slice(&pid.to_ne_bytes());
    v.extend_from_slice(&groups.to_ne_bytes());
    v.into()
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// What a request sees of the sandbox's network.
#[derive(Debug, Clone, Copy)]
struct View {
    /// `lo` is up (with its addresses and routes).
    up: bool,
    /// Network `egress`: `egress0` too, the sandbox's link to the egress broker
    /// (`SANDBOX_ADDR`/30, the default route through `BROKER_ADDR`), as the container
    /// backend's TUN interface of the same name shows.
    egress: bool,
    /// The requesting socket's port id (the answers' `nlmsg_pid`).
    portid: u32,
    /// `NETLINK_CAP_ACK`: errors do not echo the request's payload.
    cap_ack: bool,
}

/// An attribute (`struct nlattr`), padded to 4 bytes.
fn attr(out: &mut Vec<u8>, ty: u16, val: &[u8]) {
    out.extend_from_slice(&((4 + val.len()) as u16).to_ne_bytes());
    out.extend_from_slice(&ty.to_ne_bytes());
    out.extend_from_slice(val);
    out.resize(out.len().next_multiple_of(4), 0);
}

/// A message of `body` (already padded).
fn message(ty: u16, flags: u16, seq: u32, pid: u32, body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(HDR + body.len());
    m.extend_from_slice(&((HDR + body.len()) as u32).to_ne_bytes());
    m.extend_from_slice(&ty.to_ne_bytes());
    m.extend_from_slice(&flags.to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&pid.to_ne_bytes());
    m.extend_from_slice(body);
    m
}

/// `lo` as `RTM_NEWLINK` shows it (Linux's attributes but `IFLA_AF_SPEC`).
fn link_body(up: bool) -> Vec<u8> {
    let mut b = Vec::with_capacity(700);
    b.extend_from_slice(&[0, 0]);
    b.extend_from_slice(&ARPHRD_LOOPBACK.to_ne_bytes());
    b.extend_from_slice(&LO.to_ne_bytes());
    let flags = if up { LO_FLAGS_UP } else { IFF_LOOPBACK };
    b.extend_from_slice(&flags.to_ne_bytes());
    b.extend_from_slice(&0u32.to_ne_bytes());
    let u32a = |b: &mut Vec<u8>, t: u16, v: u32| attr(b, t, &v.to_ne_bytes());
    attr(&mut b, 3, b"lo\0"); // IFLA_IFNAME
    u32a(&mut b, 13, 1000); // IFLA_TXQLEN
    attr(&mut b, 16, &[if up { 0 } else { 2 }]); // IFLA_OPERSTATE: unknown / down
    attr(&mut b, 17, &[0]); // IFLA_LINKMODE
    attr(&mut b, 67, &[1]); // IFLA_NETNS_IMMUTABLE
    u32a(&mut b, 4, 65_536); // IFLA_MTU
    u32a(&mut b, 50, 0); // IFLA_MIN_MTU
    u32a(&mut b, 51, 0); // IFLA_MAX_MTU
    u32a(&mut b, 27, 0); // IFLA_GROUP
    u32a(&mut b, 30, 0); // IFLA_PROMISCUITY
    u32a(&mut b, 61, 0); // IFLA_ALLMULTI
    u32a(&mut b, 31, 1); // IFLA_NUM_TX_QUEUES
    u32a(&mut b, 40, 65_535); // IFLA_GSO_MAX_SEGS
    u32a(&mut b, 41, 65_536); // IFLA_GSO_MAX_SIZE
    u32a(&mut b, 58, 65_536); // IFLA_GRO_MAX_SIZE
    u32a(&mut b, 63, 65_536); // IFLA_GSO_IPV4_MAX_SIZE
    u32a(&mut b, 64, 65_536); // IFLA_GRO_IPV4_MAX_SIZE
    u32a(&mut b, 59, 524_280); // IFLA_TSO_MAX_SIZE
    u32a(&mut b, 60, 65_535); // IFLA_TSO_MAX_SEGS
    u32a(&mut b, 66, 0); // IFLA_MAX_PACING_OFFLOAD_HORIZON
    u32a(&mut b, 32, 1); // IFLA_NUM_RX_QUEUES
    attr(&mut b, 33, &[1]); // IFLA_CARRIER
    u32a(&mut b, 35, 0); // IFLA_CARRIER_CHANGES
    u32a(&mut b, 47, 0); // IFLA_CARRIER_UP_COUNT
    u32a(&mut b, 48, 0); // IFLA_CARRIER_DOWN_COUNT
    attr(&mut b, 39, &[0]); // IFLA_PROTO_DOWN
    attr(&mut b, 1, &[0; 6]); // IFLA_ADDRESS
    attr(&mut b, 2, &[0; 6]); // IFLA_BROADCAST
    attr(&mut b, 23, &[0; 200]); // IFLA_STATS64
    attr(&mut b, 7, &[0; 96]); // IFLA_STATS
    attr(&mut b, 43, &[5, 0, 2, 0, 0, 0, 0, 0]); // IFLA_XDP { IFLA_XDP_ATTACHED: 0 }
    attr(
        &mut b,
        6,
        if up {
            &b"noqueue\0"[..]
        } else {
            &b"noop\0"[..]
        },
    ); // IFLA_QDISC
    attr(&mut b, 14, &[0; 32]); // IFLA_MAP
    b
}

/// `egress0`'s index.
const EGRESS: i32 = 2;
/// `IFF_UP | IFF_POINTOPOINT | IFF_RUNNING | IFF_NOARP | IFF_MULTICAST | IFF_LOWER_UP`.
const EGRESS_FLAGS: u32 = 0x1_10d1;
/// `ARPHRD_NONE` (a TUN device).
const ARPHRD_NONE: u16 = 0xfffe;

/// `egress0` as `RTM_NEWLINK` shows it: a point-to-point link without a hardware
/// address.
fn egress_link_body() -> Vec<u8> {
    let mut b = Vec::with_capacity(500);
    b.extend_from_slice(&[0, 0]);
    b.extend_from_slice(&ARPHRD_NONE.to_ne_bytes());
    b.extend_from_slice(&EGRESS.to_ne_bytes());
    b.extend_from_slice(&EGRESS_FLAGS.to_ne_bytes());
    b.extend_from_slice(&0u32.to_ne_bytes());
    let u32a = |b: &mut Vec<u8>, t: u16, v: u32| attr(b, t, &v.to_ne_bytes());
    attr(&mut b, 3, b"egress0\0"); // IFLA_IFNAME
    u32a(&mut b, 13, 500); // IFLA_TXQLEN
    attr(&mut b, 16, &[0]); // IFLA_OPERSTATE: unknown
    attr(&mut b, 17, &[0]); // IFLA_LINKMODE
    u32a(&mut b, 4, 65_535); // IFLA_MTU
    u32a(&mut b, 50, 68); // IFLA_MIN_MTU
    u32a(&mut b, 51, 65_535); // IFLA_MAX_MTU
    u32a(&mut b, 27, 0); // IFLA_GROUP
    u32a(&mut b, 30, 0); // IFLA_PROMISCUITY
    u32a(&mut b, 61, 0); // IFLA_ALLMULTI
    u32a(&mut b, 31, 1); // IFLA_NUM_TX_QUEUES
    u32a(&mut b, 32, 1); // IFLA_NUM_RX_QUEUES
    attr(&mut b, 33, &[1]); // IFLA_CARRIER
    attr(&mut b, 39, &[0]); // IFLA_PROTO_DOWN
    attr(&mut b, 23, &[0; 200]); // IFLA_STATS64
    attr(&mut b, 7, &[0; 96]); // IFLA_STATS
    attr(&mut b, 6, b"pfifo_fast\0"); // IFLA_QDISC
    attr(&mut b, 14, &[0; 32]); // IFLA_MAP
    b
}

/// The links: `lo`, and `egress0` with network `egress`.
fn link_bodies(v: &View) -> Vec<Vec<u8>> {
    let mut out = vec![link_body(v.up)];
    if v.egress {
        out.push(egress_link_body());
    }
    out
}

/// The link of `index`, or named `name`.
fn find_link(v: &View, index: i32, name: Option<&[u8]>) -> Option<Vec<u8>> {
    let is = |i: i32, n: &[u8]| {
        if index > 0 {
            index == i
        } else {
            name == Some(n)
        }
    };
    if is(LO, b"lo") {
        return Some(link_body(v.up));
    }
    if v.egress && is(EGRESS, b"egress0") {
        return Some(egress_link_body());
    }
    None
}

/// `lo`'s addresses as `RTM_NEWADDR` shows them, of `family` (0: both).
fn addr_bodies(v4: bool, v6: bool, egress: bool) -> Vec<Vec<u8>> {
    // IFA_CACHEINFO: permanent, made when the sandbox started (its uptime 0).
    let mut cache = Vec::new();
    cache.extend_from_slice(&u32::MAX.to_ne_bytes());
    cache.extend_from_slice(&u32::MAX.to_ne_bytes());
    cache.extend_from_slice(&[0; 8]);
    let mut out = Vec::new();
    if v4 {
        // family, prefix length, IFA_F_PERMANENT, RT_SCOPE_HOST, index.
        let mut b = vec![2, 8, 0x80, 0xfe];
        b.extend_from_slice(&(LO as u32).to_ne_bytes());
        attr(&mut b, 1, &[127, 0, 0, 1]); // IFA_ADDRESS
        attr(&mut b, 2, &[127, 0, 0, 1]); // IFA_LOCAL
        attr(&mut b, 3, b"lo\0"); // IFA_LABEL
        attr(&mut b, 8, &0x80u32.to_ne_bytes()); // IFA_FLAGS
        attr(&mut b, 6, &cache); // IFA_CACHEINFO
        out.push(b);
    }
    if v4 && egress {
        // SANDBOX_ADDR/30, RT_SCOPE_UNIVERSE, on egress0.
        let a = sandbox_core::network::SANDBOX_ADDR.octets();
        let mut b = vec![2, sandbox_core::network::LINK_PREFIX, 0x80, 0];
        b.extend_from_slice(&(EGRESS as u32).to_ne_bytes());
        attr(&mut b, 1, &a); // IFA_ADDRESS
        attr(&mut b, 2, &a); // IFA_LOCAL
        attr(&mut b, 3, b"egress0\0"); // IFA_LABEL
        attr(&mut b, 8, &0x80u32.to_ne_bytes()); // IFA_FLAGS
        attr(&mut b, 6, &cache); // IFA_CACHEINFO
        out.push(b);
    }
    if v6 {
        let mut b = vec![10, 128, 0x80, 0xfe];
        b.extend_from_slice(&(LO as u32).to_ne_bytes());
        let mut one = [0u8; 16];
        one[15] = 1;
        attr(&mut b, 1, &one); // IFA_ADDRESS
        attr(&mut b, 6, &cache); // IFA_CACHEINFO
        attr(&mut b, 8, &0x80u32.to_ne_bytes()); // IFA_FLAGS
        attr(&mut b, 11, &[1]); // IFA_PROTO: IFAPROT_KERNEL_LO
        out.push(b);
    }
    out
}

/// The routes (`ip route show table all`): with `egress0`, the main table's default
/// route through the broker and its link's prefix, and the local table's routes of
/// its address; the local table's routes of `lo`.
fn route_bodies(v4: bool, v6: bool, egress: bool) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    if v4 && egress {
        let me = sandbox_core::network::SANDBOX_ADDR.octets();
        let broker = sandbox_core::network::BROKER_ADDR.octets();
        let plen = sandbox_core::network::LINK_PREFIX;
        let mask = u32::MAX << (32 - u32::from(plen));
        let net = (u32::from_be_bytes(me) & mask).to_be_bytes();
        let bcast = (u32::from_be_bytes(me) | !mask).to_be_bytes();
        let oif = (EGRESS as u32).to_ne_bytes();
        // default via the broker: table main, protocol boot, RTN_UNICAST.
        let mut b = vec![2, 0, 0, 0, 254, 3, 0, 1, 0, 0, 0, 0];
        attr(&mut b, 15, &254u32.to_ne_bytes()); // RTA_TABLE
        attr(&mut b, 5, &broker); // RTA_GATEWAY
        attr(&mut b, 4, &oif); // RTA_OIF
        out.push(b);
        // The link's prefix: protocol kernel, scope link.
        let mut b = vec![2, plen, 0, 0, 254, 2, 0xfd, 1, 0, 0, 0, 0];
        attr(&mut b, 15, &254u32.to_ne_bytes());
        attr(&mut b, 1, &net); // RTA_DST
        attr(&mut b, 7, &me); // RTA_PREFSRC
        attr(&mut b, 4, &oif);
        out.push(b);
        // The local table: the address (local) and the prefix's broadcast.
        for (scope, ty, dst) in [(0xfeu8, 2u8, me), (0xfd, 3, bcast)] {
            let mut b = vec![2, 32, 0, 0, 255, 2, scope, ty, 0, 0, 0, 0];
            attr(&mut b, 15, &255u32.to_ne_bytes());
            attr(&mut b, 1, &dst);
            attr(&mut b, 7, &me);
            attr(&mut b, 4, &oif);
            out.push(b);
        }
    }
    if v4 {
        // (prefix length, scope, type, destination): RTN_LOCAL 2, RTN_BROADCAST 3.
        for (len, scope, ty, dst) in [
            (8u8, 0xfeu8, 2u8, [127u8, 0, 0, 0]),
            (32, 0xfe, 2, [127, 0, 0, 1]),
            (32, 0xfd, 3, [127, 255, 255, 255]),
        ] {
            // family, dst_len, src_len, tos, table (local), protocol (kernel), scope,
            // type, flags.
            let mut b = vec![2, len, 0, 0, 255, 2, scope, ty, 0, 0, 0, 0];
            attr(&mut b, 15, &255u32.to_ne_bytes()); // RTA_TABLE
            attr(&mut b, 1, &dst); // RTA_DST
            attr(&mut b, 7, &[127, 0, 0, 1]); // RTA_PREFSRC
            attr(&mut b, 4, &(LO as u32).to_ne_bytes()); // RTA_OIF
            out.push(b);
        }
    }
    if v6 {
        let mut b = vec![10, 128, 0, 0, 255, 2, 0, 2, 0, 0, 0, 0];
        let mut one = [0u8; 16];
        one[15] = 1;
        attr(&mut b, 15, &255u32.to_ne_bytes()); // RTA_TABLE
        attr(&mut b, 1, &one); // RTA_DST
        attr(&mut b, 6, &0u32.to_ne_bytes()); // RTA_PRIORITY
        attr(&mut b, 4, &(LO as u32).to_ne_bytes()); // RTA_OIF
        attr(&mut b, 12, &[0; 32]); // RTA_CACHEINFO
        attr(&mut b, 20, &[0]); // RTA_PREF
        out.push(b);
    }
    out
}

/// What one request message gets.
enum Answer {
    /// Nothing but the acknowledgement (`0`) or an error (negative errno).
    Status(i32),
    /// A single reply (then the acknowledgement if asked).
    Reply(u16, Vec<u8>),
    /// A dump: these messages, then `NLMSG_DONE` (no acknowledgement); `true`: in
    /// the last datagram when it has room (a dump that ends in its first pass, as
    /// IPv6's), else on its own.
    Dump(u16, Vec<Vec<u8>>, bool),
    /// A type not offered here (its name, for the unimplemented count).
    Unsupported(String),
}

/// Which families a dump of `family` covers: IPv4's or IPv6's own handler, else
/// `PF_UNSPEC`'s, which walks them all: (IPv4, IPv6).
fn families(family: u8) -> (bool, bool) {
    match family {
        2 => (true, false),
        10 => (false, true),
        _ => (true, true),
    }
}

/// `rtnetlink_rcv_msg` for one message `m` (its header included).
fn route_message(m: &[u8], v: &View) -> Answer {
    let ty = u16_at(m, 4);
    let flags = u16_at(m, 6);
    if ty > RTM_MAX {
        return Answer::Status(-libc::EOPNOTSUPP);
    }
    // Every message has at least a family byte.
    let Some(&family) = m.get(HDR) else {
        return Answer::Status(0);
    };
    let kind = (ty - RTM_BASE) & 3;
    if kind != 2 {
        return Answer::Status(-libc::EPERM);
    }
    if flags & NLM_F_DUMP != 0 {
        let (v4, v6) = families(family);
        // IPv6's link and address dumps end in their first pass (NLMSG_DONE joins
        // their messages); the others end in a pass of their own.
        let joined = family == AF_INET6;
        return match ty {
            // PF_BRIDGE's link dump lists bridge ports: lo is none.
            RTM_GETLINK if family == PF_BRIDGE => Answer::Dump(RTM_NEWLINK, Vec::new(), false),
            RTM_GETLINK => Answer::Dump(RTM_NEWLINK, link_bodies(v), joined),
            RTM_GETADDR if v.up => Answer::Dump(RTM_NEWADDR, addr_bodies(v4, v6, v.egress), joined),
            RTM_GETADDR => Answer::Dump(RTM_NEWADDR, Vec::new(), false),
            RTM_GETROUTE if v.up => {
                Answer::Dump(RTM_NEWROUTE, route_bodies(v4, v6, v.egress), false)
            }
            RTM_GETROUTE => Answer::Dump(RTM_NEWROUTE, Vec::new(), false),
            _ => Answer::Unsupported(format!("netlink route dump type {ty}")),
        };
    }
    match ty {
        RTM_GETLINK => {
            // rtnl_getlink: an ifinfomsg, then the index or a name.
            if m.len() < HDR + 16 {
                return Answer::Status(-libc::EINVAL);
            }
            let index = u32_at(m, HDR + 4) as i32;
            let name = if index > 0 {
                None
            } else {
                match find_attr(&m[HDR + 16..], 3).or_else(|| find_attr(&m[HDR + 16..], 53)) {
                    Some(name) => name.split(|b| *b == 0).next(),
                    None => return Answer::Status(-libc::EINVAL),
                }
            };
            match find_link(v, index, name) {
                Some(body) => Answer::Reply(RTM_NEWLINK, body),
                None => Answer::Status(-libc::ENODEV),
            }
        }
        _ => Answer::Unsupported(format!("netlink route request type {ty}")),
    }
}

/// The value of attribute `ty` among `attrs`.
fn find_attr(mut attrs: &[u8], ty: u16) -> Option<&[u8]> {
    while attrs.len() >= 4 {
        let len = usize::from(u16_at(attrs, 0));
        if len < 4 || len > attrs.len() {
            return None;
        }
        if u16_at(attrs, 2) & 0x3fff == ty {
            return Some(&attrs[4..len]);
        }
        attrs = &attrs[len.next_multiple_of(4).min(attrs.len())..];
    }
    None
}

/// `netlink_ack`: an `NLMSG_ERROR` answering `m` with `err` (the request's header,
/// and its payload too for an error unless `NETLINK_CAP_ACK`).
fn ack(m: &[u8], err: i32, v: &View) -> Vec<u8> {
    let capped = err == 0 || v.cap_ack;
    let len = (u32_at(m, 0) as usize).min(m.len());
    let echo = if capped { &m[..HDR] } else { &m[..len] };
    let mut body = err.to_ne_bytes().to_vec();
    body.extend_from_slice(echo);
    body.resize(body.len().next_multiple_of(4), 0);
    let flags = if capped { NLM_F_CAPPED } else { 0 };
    message(NLMSG_ERROR, flags, u32_at(m, 8), v.portid, &body)
}

/// Linux's `netlink_rcv_skb` over a datagram sent to the kernel: the datagrams the
/// sender receives, and the request types not offered.
fn receive(data: &[u8], v: &View) -> (Vec<Vec<u8>>, Vec<String>) {
    let mut out = Vec::new();
    let mut unsupported = Vec::new();
    let mut rest = data;
    while rest.len() >= HDR {
        let len = u32_at(rest, 0) as usize;
        if len < HDR || len > rest.len() {
            break;
        }
        let m = &rest[..len];
        let (ty, flags, seq) = (u16_at(m, 4), u16_at(m, 6), u32_at(m, 8));
        let mut err = 0;
        if flags & NLM_F_REQUEST != 0 && ty >= NLMSG_MIN_TYPE {
            match route_message(m, v) {
                Answer::Status(e) => err = e,
                Answer::Reply(t, body) => out.push(message(t, 0, seq, v.portid, &body)),
                Answer::Dump(t, bodies, joined) => {
                    // As many messages as fit in a datagram of NLMSG_GOODSIZE, then
                    // NLMSG_DONE; no acknowledgement.
                    let mut dgram: Vec<u8> = Vec::new();
                    for b in bodies {
                        let msg = message(t, NLM_F_MULTI, seq, v.portid, &b);
                        if !dgram.is_empty() && dgram.len() + msg.len() > GOODSIZE {
                            out.push(std::mem::take(&mut dgram));
                        }
                        dgram.extend_from_slice(&msg);
                    }
                    let done = message(NLMSG_DONE, NLM_F_MULTI, seq, v.portid, &[0; 4]);
                    if joined && dgram.len() + done.len() <= GOODSIZE {
                        dgram.extend_from_slice(&done);
                        out.push(dgram);
                    } else {
                        if !dgram.is_empty() {
                            out.push(dgram);
                        }
                        out.push(done);
                    }
                    rest = &rest[len.next_multiple_of(4).min(rest.len())..];
                    continue;
                }
                Answer::Unsupported(what) => {
                    unsupported.push(what);
                    err = -libc::EOPNOTSUPP;
                }
            }
        }
        if flags & NLM_F_ACK != 0 || err != 0 {
            out.push(ack(m, err, v));
        }
        rest = &rest[len.next_multiple_of(4).min(rest.len())..];
    }
    (out, unsupported)
}

/// The state of netlink socket `s`.
fn with<T>(s: &Socket, f: impl FnOnce(&mut Netlink) -> T) -> Option<T> {
    s.unix.borrow_mut().netlink.as_deref_mut().map(f)
}

/// The interface an `ifreq` names (`ifr_name`, cut at its 16th byte and at a `:`):
/// `lo`'s index, or `egress0`'s with network `egress`.
fn ifreq_index(ifr: &[u8], egress: bool) -> Option<i32> {
    let name = &ifr[..15];
    let end = name
        .iter()
        .position(|b| *b == 0 || *b == b':')
        .unwrap_or(15);
    match &name[..end] {
        b"lo" => Some(LO),
        b"egress0" if egress => Some(EGRESS),
        _ => None,
    }
}

impl Kernel {
    /// `socket(AF_NETLINK, type, protocol)`, as `netlink_create`: `SOCK_RAW` or
    /// `SOCK_DGRAM` (`ESOCKTNOSUPPORT`), a protocol below `MAX_LINKS`
    /// (`EPROTONOSUPPORT`); only `NETLINK_ROUTE` is offered.
    pub(crate) fn netlink_socket(&mut self, ty: i32, proto: u64) -> SysResult {
        let kind = ty & 0xf;
        if kind != SOCK_RAW && kind != SOCK_DGRAM {
            return Err(Errno(libc::ESOCKTNOSUPPORT).into());
        }
        if proto >= MAX_LINKS {
            return Err(Errno(libc::EPROTONOSUPPORT).into());
        }
        if proto != 0 {
            let what = format!("socket(AF_NETLINK, protocol {proto})");
            return Err(self.unsupported(&what, Errno(libc::EPROTONOSUPPORT)));
        }
        let s = new_socket(SOCK_DGRAM, true);
        let q = Pipe::socket_sized(true, BUF_DEFAULT as usize);
        *s.rx.borrow_mut() = Some(PipeEnd::new(&q, false));
        {
            let mut u = s.unix.borrow_mut();
            u.name = Some(sockaddr_nl(0, 0));
            u.netlink = Some(Box::new(Netlink {
                ty: kind,
                proto: proto as u32,
                portid: 0,
                groups: 0,
                dst: (0, 0),
                flags: 0,
                rcvbuf: BUF_DEFAULT,
                sndbuf: BUF_DEFAULT,
                passcred: false,
            }));
        }
        let nb = if ty as u64 & super::socket::SOCK_NONBLOCK != 0 {
            libc::O_NONBLOCK
        } else {
            0
        };
        let f = OpenFile::new(FileKind::Socket(s), None, libc::O_RDWR | nb);
        let cloexec = ty as u64 & super::socket::SOCK_CLOEXEC != 0;
        Ok(self.proc.files.add(f, cloexec, 0)?)
    }

    /// Gives `f` a port id if it has none (`netlink_autobind`: the process's id when
    /// free, else the next of Linux's negative rover).
    fn netlink_autobind(&mut self, f: &Rc<OpenFile>) {
        let FileKind::Socket(s) = &f.kind else {
            return;
        };
        if with(s, |n| n.portid).unwrap_or(1) != 0 {
            return;
        }
        let mut id = self.proc.pid;
        while self.netlink.taken(id) || id == 0 {
            id = self.netlink.rover as u32;
            self.netlink.rover = self.netlink.rover.wrapping_sub(1);
            if self.netlink.rover > -4096 {
                self.netlink.rover = -4096;
            }
        }
        self.netlink.insert(id, f);
        let groups = with(s, |n| {
            n.portid = id;
            n.groups
        })
        .unwrap_or(0);
        s.unix.borrow_mut().name = Some(sockaddr_nl(id, groups));
    }

    /// `bind`, as `netlink_bind`: a `sockaddr_nl` (`EINVAL` short or of another
    /// family); a bound socket keeps its port id (another is `EINVAL`); port 0 is
    /// automatic, a taken one `EADDRINUSE`. Groups are joined (none ever hears
    /// anything: nothing changes in the sandbox's network).
    pub(crate) fn netlink_bind(&mut self, f: &Rc<OpenFile>, raw: &[u8]) -> SysResult {
        let FileKind::Socket(s) = &f.kind else {
            return Err(errno::ENOTSOCK.into());
        };
        if raw.len() < SOCKADDR_NL || u16_at(raw, 0) != AF_NETLINK {
            return Err(errno::EINVAL.into());
        }
        let (pid, groups) = (u32_at(raw, 4), u32_at(raw, 8));
        let bound = with(s, |n| n.portid).unwrap_or(0);
        if bound != 0 && pid != bound {
            return Err(errno::EINVAL.into());
        }
        if bound == 0 {
            if pid == 0 {
                self.netlink_autobind(f);
            } else if self.netlink.taken(pid) {
                return Err(errno::EADDRINUSE.into());
            } else {
                self.netlink.insert(pid, f);
                with(s, |n| n.portid = pid);
            }
        }
        let id = with(s, |n| {
            n.groups = groups;
            n.portid
        })
        .unwrap_or(0);
        s.unix.borrow_mut().name = Some(sockaddr_nl(id, groups));
        Ok(0)
    }

    /// `connect`, as `netlink_connect`: `AF_UNSPEC` forgets the destination; a
    /// `sockaddr_nl` sets it (to groups: `EPERM`, rtnetlink lets no one send to them
    /// unprivileged) and binds the socket.
    pub(crate) fn netlink_connect(&mut self, f: &Rc<OpenFile>, addr: u64, alen: u32) -> SysResult {
        let FileKind::Socket(s) = &f.kind else {
            return Err(errno::ENOTSOCK.into());
        };
        if !(2..=128).contains(&alen) {
            return Err(errno::EINVAL.into());
        }
        let raw = self.mm.read_user_vec(addr, alen as usize)?;
        let family = u16_at(&raw, 0);
        if family == libc::AF_UNSPEC as u16 {
            with(s, |n| n.dst = (0, 0));
            return Ok(0);
        }
        if family != AF_NETLINK || raw.len() < SOCKADDR_NL {
            return Err(errno::EINVAL.into());
        }
        let (pid, groups) = (u32_at(&raw, 4), u32_at(&raw, 8));
        if groups != 0 {
            return Err(errno::EPERM.into());
        }
        self.netlink_autobind(f);
        with(s, |n| n.dst = (pid, groups));
        Ok(0)
    }

    /// `getpeername`: the destination (`connect`'s, else the kernel's 0).
    pub(crate) fn netlink_peer(
        &mut self,
        f: &OpenFile,
        addr: u64,
        alen: UserPtr<u32>,
    ) -> SysResult {
        let FileKind::Socket(s) = &f.kind else {
            return Err(errno::ENOTSOCK.into());
        };
        let (pid, groups) = with(s, |n| n.dst).unwrap_or((0, 0));
        self.put_name(addr, alen, Some(&sockaddr_nl(pid, groups)))?;
        Ok(0)
    }

    /// A send (`sendto`/`sendmsg`/`write`) on netlink socket `f`, to `dest` (the
    /// caller's address bytes) or `connect`'s destination, as `netlink_sendmsg`: the
    /// kernel (port 0) takes the request at once and queues its answers on `f`.
    pub(crate) fn netlink_send(
        &mut self,
        f: &Rc<OpenFile>,
        data: &[u8],
        flags: u64,
        dest: Option<&[u8]>,
    ) -> SysResult {
        let FileKind::Socket(s) = &f.kind else {
            return Err(errno::ENOTSOCK.into());
        };
        if flags & libc::MSG_OOB as u64 != 0 {
            return Err(errno::EOPNOTSUPP.into());
        }
        if data.is_empty() {
            return Err(Errno(libc::ENODATA).into());
        }
        let (pid, groups) = match dest {
            Some(a) if !a.is_empty() => {
                if a.len() < SOCKADDR_NL || u16_at(a, 0) != AF_NETLINK {
                    return Err(errno::EINVAL.into());
                }
                (u32_at(a, 4), u32_at(a, 8))
            }
            _ => with(s, |n| n.dst).unwrap_or((0, 0)),
        };
        if groups != 0 || pid != 0 {
            // To other netlink sockets or groups: rtnetlink allows it only to a
            // privileged sender, which the sandbox's workload never is.
            return Err(errno::EPERM.into());
        }
        self.netlink_autobind(f);
        let (portid, cap, sndbuf) = with(s, |n| (n.portid, n.flags & (1 << 10) != 0, n.sndbuf))
            .unwrap_or((0, false, BUF_DEFAULT));
        if data.len() > sndbuf as usize - 32 {
            return Err(errno::EMSGSIZE.into());
        }
        let view = View {
            up: self.net != NetMode::None,
            egress: self.net == NetMode::Egress,
            portid,
            cap_ack: cap,
        };
        let (answers, unsupported) = receive(data, &view);
        for what in unsupported {
            self.count_unimplemented(what);
        }
        let kernel = sockaddr_nl(0, 0);
        for a in answers {
            // A full receive queue drops the answer, as Linux's (ENOBUFS aside).
            let r = self.send_on(
                f,
                &a,
                libc::MSG_DONTWAIT as u64,
                Some(Rc::clone(f)),
                Outgoing::default(),
                Some(Rc::clone(&kernel)),
            );
            if matches!(r, Err(SysErr::Block(_))) {
                break;
            }
        }
        Ok(data.len() as u64)
    }

    /// `sendto` on a netlink socket: the address is read as `move_addr_to_kernel`
    /// reads it (more than a `sockaddr_storage`: `EINVAL`).
    pub(crate) fn netlink_sendto(
        &mut self,
        f: &Rc<OpenFile>,
        buf: u64,
        len: u64,
        flags: u64,
        addr: u64,
        alen: u64,
    ) -> SysResult {
        let dest = if addr != 0 {
            if alen as u32 > 128 {
                return Err(errno::EINVAL.into());
            }
            Some(self.mm.read_user_vec(addr, alen as u32 as usize)?)
        } else {
            None
        };
        let data = self.mm.read_user_vec(buf, len.min(1 << 20) as usize)?;
        self.netlink_send(f, &data, flags, dest.as_deref())
    }

    /// `sendmsg` on a netlink socket: the name (cut to a `sockaddr_storage`, none
    /// without a pointer), the bytes of every `iovec`; control messages are ignored.
    pub(crate) fn netlink_sendmsg(
        &mut self,
        f: &Rc<OpenFile>,
        hdr: &crate::abi::MsgHdr,
        flags: u64,
    ) -> SysResult {
        if (hdr.msg_namelen as i32) < 0 {
            return Err(errno::EINVAL.into());
        }
        let dest = if hdr.msg_name != 0 {
            Some(
                self.mm
                    .read_user_vec(hdr.msg_name, hdr.msg_namelen.min(128) as usize)?,
            )
        } else {
            None
        };
        if hdr.msg_iovlen > super::rw::IOV_MAX as u64 {
            return Err(errno::EMSGSIZE.into());
        }
        let iov = self.iovecs(UserPtr::new(hdr.msg_iov), hdr.msg_iovlen)?;
        let total: u64 = iov.iter().map(|(_, l)| *l).sum();
        if total > 1 << 20 {
            return Err(errno::EMSGSIZE.into());
        }
        let mut data = Vec::new();
        for (base, len) in iov {
            data.extend(self.mm.read_user_vec(base, len as usize)?);
        }
        self.netlink_send(f, &data, flags, dest.as_deref())
    }

    /// `getsockopt` on a netlink socket: `SOL_SOCKET`'s common options, and
    /// `SOL_NETLINK`'s flags (an `int`; `EINVAL` for less room).
    pub(crate) fn netlink_getsockopt(
        &mut self,
        f: &OpenFile,
        level: u32,
        name: u32,
        val: u64,
        len: UserPtr<u32>,
    ) -> SysResult {
        let FileKind::Socket(s) = &f.kind else {
            return Err(errno::ENOTSOCK.into());
        };
        let Some((ty, proto, flags, rcv, snd, cred)) = with(s, |n| {
            (n.ty, n.proto, n.flags, n.rcvbuf, n.sndbuf, n.passcred)
        }) else {
            return Err(errno::ENOTSOCK.into());
        };
        let cap = self.mm.read(len)?;
        if (cap as i32) < 0 {
            return Err(errno::EINVAL.into());
        }
        let v: i32 = match (level, name as i32) {
            (SOL_SOCKET, libc::SO_TYPE) => ty,
            (SOL_SOCKET, libc::SO_DOMAIN) => i32::from(AF_NETLINK),
            (SOL_SOCKET, libc::SO_PROTOCOL) => proto as i32,
            (SOL_SOCKET, libc::SO_ERROR | libc::SO_ACCEPTCONN) => 0,
            (SOL_SOCKET, libc::SO_RCVBUF) => rcv as i32,
            (SOL_SOCKET, libc::SO_SNDBUF) => snd as i32,
            (SOL_SOCKET, libc::SO_PASSCRED) => i32::from(cred),
            (SOL_SOCKET, _) => return Err(Errno(libc::ENOPROTOOPT).into()),
            (SOL_NETLINK, 3..=5 | 10..=12) => {
                if cap < 4 {
                    return Err(errno::EINVAL.into());
                }
                i32::from(flags & (1 << name) != 0)
            }
            (SOL_NETLINK, 9) => {
                // NETLINK_LIST_MEMBERSHIPS: the groups as a bit array (u32s).
                let groups = with(s, |n| n.groups).unwrap_or(0);
                let k = (cap as usize / 4).min(1) * 4;
                self.mm.write_user(val, &groups.to_ne_bytes()[..k])?;
                self.mm.write(len, &4u32)?;
                return Ok(0);
            }
            _ => return Err(Errno(libc::ENOPROTOOPT).into()),
        };
        let n = (cap as usize).min(4);
        self.mm.write_user(val, &v.to_ne_bytes()[..n])?;
        self.mm.write(len, &(n as u32))?;
        Ok(0)
    }

    /// `setsockopt` on a netlink socket: buffer sizes (doubled and bounded as Linux
    /// does), `SO_PASSCRED`, and `SOL_NETLINK`'s flags and memberships.
    pub(crate) fn netlink_setsockopt(
        &mut self,
        f: &OpenFile,
        level: u32,
        name: u32,
        val: u64,
        len: u32,
    ) -> SysResult {
        let FileKind::Socket(s) = &f.kind else {
            return Err(errno::ENOTSOCK.into());
        };
        let v = if len >= 4 {
            self.mm.read(UserPtr::<u32>::new(val))?
        } else {
            0
        };
        match level {
            SOL_SOCKET => {
                if len < 4 {
                    return Err(errno::EINVAL.into());
                }
                match name as i32 {
                    libc::SO_RCVBUF => {
                        with(s, |n| n.rcvbuf = (v.min(BUF_DEFAULT) * 2).max(MIN_RCVBUF));
                    }
                    libc::SO_SNDBUF => {
                        with(s, |n| n.sndbuf = (v.min(BUF_DEFAULT) * 2).max(MIN_SNDBUF));
                    }
                    libc::SO_RCVBUFFORCE | libc::SO_SNDBUFFORCE => {
                        return Err(errno::EPERM.into());
                    }
                    libc::SO_PASSCRED => {
                        with(s, |n| n.passcred = v != 0);
                    }
                    1..=80 => {}
                    _ => return Err(Errno(libc::ENOPROTOOPT).into()),
                }
                Ok(0)
            }
            SOL_NETLINK => {
                match name {
                    // NETLINK_ADD_MEMBERSHIP, NETLINK_DROP_MEMBERSHIP: rtnetlink's
                    // groups (RTNLGRP_MAX is 35 in Linux 6.x).
                    1 | 2 => {
                        if v == 0 || v > 35 {
                            return Err(errno::EINVAL.into());
                        }
                        if v <= 32 {
                            let bit = 1u32 << (v - 1);
                            with(s, |n| {
                                if name == 1 {
                                    n.groups |= bit
                                } else {
                                    n.groups &= !bit
                                }
                            });
                        }
                    }
                    // NETLINK_LISTEN_ALL_NSID: other namespaces' events (CAP_NET_BROADCAST).
                    8 => return Err(errno::EPERM.into()),
                    3..=5 | 10..=12 => {
                        with(s, |n| {
                            if v != 0 {
                                n.flags |= 1 << name
                            } else {
                                n.flags &= !(1 << name)
                            }
                        });
                    }
                    _ => return Err(Errno(libc::ENOPROTOOPT).into()),
                }
                Ok(0)
            }
            _ => Err(Errno(libc::ENOPROTOOPT).into()),
        }
    }

    /// The interface `ioctl`s of any socket (Linux's `dev_ioctl`, and `devinet_ioctl`
    /// for an `AF_INET` socket's addresses), answered for `lo`: `SIOCGIFNAME` by index,
    /// `SIOCGIFINDEX`, `SIOCGIFFLAGS`, `SIOCGIFMTU`, ... by name (another name
    /// `ENODEV`), `SIOCGIFCONF`; the setters are `EPERM`. `None`: not one of them.
    pub(crate) fn netdev_ioctl(&mut self, f: &OpenFile, req: u64, arg: u64) -> Option<SysResult> {
        const IFREQ: usize = 40;
        let FileKind::Socket(s) = &f.kind else {
            return None;
        };
        let v4 = super::inet::state(s).is_some_and(|st| !st.v6);
        let up = self.net != NetMode::None;
        let egress = self.net == NetMode::Egress;
        let me = sandbox_core::network::SANDBOX_ADDR.octets();
        let r = (|| -> SysResult {
            if req == 0x8912 {
                // SIOCGIFCONF: an ifreq per IPv4 address (lo's when up, egress0's).
                let conf: [u64; 2] = self.mm.read(UserPtr::new(arg))?;
                let room = conf[0] as u32 as i32;
                let mut all: Vec<(&[u8], [u8; 4])> = Vec::new();
                if up {
                    all.push((b"lo", [127, 0, 0, 1]));
                }
                if egress {
                    all.push((b"egress0", me));
                }
                let written = if conf[1] == 0 {
                    all.len()
                } else {
                    all.len().min(room.max(0) as usize / IFREQ)
                };
                if conf[1] != 0 {
                    for (i, (name, a)) in all.iter().take(written).enumerate() {
                        let mut r = [0u8; IFREQ];
                        r[..name.len()].copy_from_slice(name);
                        r[16..18].copy_from_slice(&super::inet::AF_INET.to_ne_bytes());
                        r[20..24].copy_from_slice(a);
                        self.mm.write_user(conf[1] + (i * IFREQ) as u64, &r)?;
                    }
                }
                self.mm
                    .write(UserPtr::<i32>::new(arg), &((written * IFREQ) as i32))?;
                return Ok(0);
            }
            let mut ifr = self.mm.read_user_vec(arg, IFREQ)?;
            match req {
                // SIOCGIFNAME
                0x8910 => {
                    let index = i32::from_ne_bytes([ifr[16], ifr[17], ifr[18], ifr[19]]);
                    let name: &[u8] = match index {
                        LO => b"lo",
                        EGRESS if egress => b"egress0",
                        _ => return Err(Errno(libc::ENODEV).into()),
                    };
                    ifr[..16].fill(0);
                    ifr[..name.len()].copy_from_slice(name);
                    self.mm.write_user(arg, &ifr[..16])?;
                    return Ok(0);
                }
                // Setters: SIOCSIFFLAGS, SIOCSIFADDR, SIOCSIFDSTADDR, SIOCSIFBRDADDR,
                // SIOCSIFNETMASK, SIOCSIFMETRIC, SIOCSIFMTU, SIOCSIFNAME, SIOCSIFHWADDR,
                // SIOCSIFTXQLEN, SIOCSIFMAP.
                0x8914 | 0x8916 | 0x8918 | 0x891a | 0x891c | 0x891e | 0x8922 | 0x8923 | 0x8924
                | 0x8943 | 0x8971 => return Err(errno::EPERM.into()),
                _ => {}
            }
            let addr_req = matches!(req, 0x8915 | 0x8917 | 0x8919 | 0x891b);
            let named = matches!(
                req,
                0x8913 | 0x891d | 0x8921 | 0x8927 | 0x8933 | 0x8942 | 0x8970
            );
            let answered = named || (addr_req && v4);
            if !answered {
                return Err(errno::ENOTTY.into());
            }
            let Some(index) = ifreq_index(&ifr, egress) else {
                return Err(Errno(libc::ENODEV).into());
            };
            let lo = index == LO;
            let mut out = [0u8; 24];
            match req {
                0x8913 => {
                    let fl = match (lo, up) {
                        (true, true) => LO_FLAGS_UP,
                        (true, false) => IFF_LOOPBACK,
                        (false, _) => EGRESS_FLAGS,
                    } as u16;
                    out[..2].copy_from_slice(&fl.to_ne_bytes());
                }
                0x891d | 0x8970 => {}
                0x8921 => {
                    let mtu: i32 = if lo { 65_536 } else { 65_535 };
                    out[..4].copy_from_slice(&mtu.to_ne_bytes());
                }
                0x8927 => {
                    let ty = if lo { ARPHRD_LOOPBACK } else { ARPHRD_NONE };
                    out[..2].copy_from_slice(&ty.to_ne_bytes());
                }
                0x8933 => out[..4].copy_from_slice(&index.to_ne_bytes()),
                0x8942 => {
                    let q: i32 = if lo { 1000 } else { 500 };
                    out[..4].copy_from_slice(&q.to_ne_bytes());
                }
                _ => {
                    // An IPv4 address of the interface: SIOCGIFADDR, SIOCGIFDSTADDR,
                    // SIOCGIFBRDADDR, SIOCGIFNETMASK.
                    if lo && !up {
                        return Err(Errno(libc::EADDRNOTAVAIL).into());
                    }
                    out[..2].copy_from_slice(&super::inet::AF_INET.to_ne_bytes());
                    let plen = u32::from(sandbox_core::network::LINK_PREFIX);
                    let mask = u32::MAX << (32 - plen);
                    let a = match (req, lo) {
                        (0x8919, _) => [0, 0, 0, 0],
                        (0x891b, true) => [255, 0, 0, 0],
                        (0x891b, false) => mask.to_be_bytes(),
                        (_, true) => [127, 0, 0, 1],
                        (_, false) => me,
                    };
                    out[4..8].copy_from_slice(&a);
                }
            }
            self.mm.write_user(arg + 16, &out)?;
            Ok(0)
        })();
        Some(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(ty: u16, flags: u16, body: &[u8]) -> Vec<u8> {
        message(ty, flags, 7, 0, body)
    }

    fn messages(d: &[u8]) -> Vec<(u16, u16, Vec<u8>)> {
        let mut out = Vec::new();
        let mut rest = d;
        while rest.len() >= HDR {
            let len = u32_at(rest, 0) as usize;
            out.push((u16_at(rest, 4), u16_at(rest, 6), rest[HDR..len].to_vec()));
            rest = &rest[len.next_multiple_of(4).min(rest.len())..];
        }
        out
    }

    const UP: View = View {
        up: true,
        egress: false,
        portid: 42,
        cap_ack: false,
    };

    #[test]
    fn link_dump_then_done_in_its_own_datagram() {
        let (out, un) = receive(&request(RTM_GETLINK, 0x301, &[0; 16]), &UP);
        assert!(un.is_empty());
        assert_eq!(out.len(), 2);
        let m = messages(&out[0]);
        assert_eq!(m.len(), 1);
        assert_eq!((m[0].0, m[0].1), (RTM_NEWLINK, NLM_F_MULTI));
        assert_eq!(u32_at(&m[0].2, 4), 1);
        assert_eq!(u32_at(&m[0].2, 8), LO_FLAGS_UP);
        assert_eq!(find_attr(&m[0].2[16..], 3), Some(&b"lo\0"[..]));
        assert_eq!(messages(&out[1])[0].0, NLMSG_DONE);
        assert_eq!(u32_at(&out[0], 12), 42);
    }

    #[test]
    fn address_dump_by_family() {
        let n = |family: u8, up: bool| {
            let v = View { up, ..UP };
            let (out, _) = receive(
                &request(RTM_GETADDR, 0x301, &[family, 0, 0, 0, 0, 0, 0, 0]),
                &v,
            );
            out.iter().map(|d| messages(d).len()).sum::<usize>() - 1
        };
        assert_eq!(n(0, true), 2);
        assert_eq!(n(2, true), 1);
        assert_eq!(n(10, true), 1);
        assert_eq!(n(17, true), 2);
        assert_eq!(n(0, false), 0);
    }

    #[test]
    fn errors_echo_the_request_and_acks_only_its_header() {
        let req = request(200, NLM_F_REQUEST, &[1, 2, 3, 4]);
        let (out, _) = receive(&req, &UP);
        let m = messages(&out[0]);
        assert_eq!(m[0].0, NLMSG_ERROR);
        assert_eq!(m[0].2[..4], (-libc::EOPNOTSUPP).to_ne_bytes());
        assert_eq!(&m[0].2[4..], &req[..]);
        // A change is EPERM; an acknowledged get of lo by index: the reply, then 0.
        let (out, _) = receive(&request(RTM_NEWADDR, NLM_F_REQUEST, &[2; 8]), &UP);
        assert_eq!(messages(&out[0])[0].2[..4], (-libc::EPERM).to_ne_bytes());
        let mut ifi = [0u8; 16];
        ifi[4] = 1;
        let (out, _) = receive(&request(RTM_GETLINK, NLM_F_REQUEST | NLM_F_ACK, &ifi), &UP);
        assert_eq!(out.len(), 2);
        assert_eq!(messages(&out[0])[0].0, RTM_NEWLINK);
        let a = messages(&out[1]);
        assert_eq!((a[0].0, a[0].1), (NLMSG_ERROR, NLM_F_CAPPED));
        assert_eq!(a[0].2.len(), 20);
        ifi[4] = 9;
        let (out, _) = receive(&request(RTM_GETLINK, NLM_F_REQUEST, &ifi), &UP);
        assert_eq!(messages(&out[0])[0].2[..4], (-libc::ENODEV).to_ne_bytes());
        // Not a request: nothing, unless acknowledged; a cut message ends the datagram.
        assert!(receive(&request(RTM_GETLINK, 0, &ifi), &UP).0.is_empty());
        let mut cut = request(RTM_GETLINK, 0x301, &ifi);
        cut[0] = 200;
        assert!(receive(&cut, &UP).0.is_empty());
    }

    #[test]
    fn unknown_dumps_are_counted() {
        let (out, un) = receive(&request(30, 0x301, &[0; 12]), &UP);
        assert_eq!(un.len(), 1);
        assert_eq!(messages(&out[0])[0].0, NLMSG_ERROR);
    }
}
