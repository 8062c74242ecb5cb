//! The userspace TCP/IP stack (smoltcp) that terminates the container's TUN device: the
//! sandbox's only way out. Every packet is looked at before the stack sees it: IPv4 TCP
//! and DNS to the broker pass; UDP elsewhere, ICMP, IPv6 and the rest are dropped and
//! counted. A TCP SYN is admitted (or not) by the broker's rules before a socket is made
//! for it, so a refused connection gets a reset at once.

mod device;
mod stream;

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, OwnedFd};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use sandbox_core::network::{BROKER_ADDR, LINK_PREFIX, PROXY_PORT, SANDBOX_ADDR};
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::socket::{tcp, udp};
use smoltcp::time::Instant;
use smoltcp::wire::{
    HardwareAddress, IpAddress, IpCidr, IpListenEndpoint, IpProtocol, Ipv4Packet, TcpPacket,
    UdpPacket,
};
use tokio::io::unix::AsyncFd;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Notify};

use crate::broker::Shared;
use device::TunDevice;
pub use device::{MTU, VNET_HDR_LEN};
use stream::StackStream;

/// Buffer of each TCP connection, each way.
const TCP_BUFFER: usize = 1 << 20;
/// Connections open at once; more are refused.
const MAX_CONNECTIONS: usize = 4096;
/// The DNS port.
const DNS_PORT: u16 = 53;

type Tuple = (SocketAddrV4, SocketAddrV4);

/// The stack's state; shared with the connections' streams on the same thread.
pub(crate) struct Net {
    iface: Interface,
    pub(crate) sockets: SocketSet<'static>,
    dev: TunDevice,
    dns: SocketHandle,
    /// Live connections by (sandbox end, far end), to tell a SYN sent again from a new one.
    conns: HashMap<Tuple, SocketHandle>,
    /// Sockets whose stream is gone: removed once closed.
    pub(crate) orphans: Vec<SocketHandle>,
    next_port: u16,
}

fn now() -> Instant {
    Instant::now()
}

fn tcp_socket() -> tcp::Socket<'static> {
    let mut s = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; TCP_BUFFER]),
        tcp::SocketBuffer::new(vec![0; TCP_BUFFER]),
    );
    s.set_nagle_enabled(false);
    s.set_timeout(Some(smoltcp::time::Duration::from_secs(300)));
    s.set_keep_alive(Some(smoltcp::time::Duration::from_secs(60)));
    s
}

/// What to do with a packet from the sandbox.
enum Verdict {
    Pass,
    Drop(&'static str),
    Syn(Tuple),
}

fn classify(pkt: &[u8]) -> Verdict {
    match pkt.first().map(|b| b >> 4) {
        Some(4) => {}
        Some(6) => return Verdict::Drop("ipv6"),
        _ => return Verdict::Drop("other"),
    }
    let Ok(ip) = Ipv4Packet::new_checked(pkt) else {
        return Verdict::Drop("other");
    };
    let (src, dst): (Ipv4Addr, Ipv4Addr) = (ip.src_addr(), ip.dst_addr());
    if ip.more_frags() || ip.frag_offset() != 0 {
        return Verdict::Drop("other");
    }
    match ip.next_header() {
        IpProtocol::Udp => match UdpPacket::new_checked(ip.payload()) {
            Ok(u) if dst == BROKER_ADDR && u.dst_port() == DNS_PORT => Verdict::Pass,
            _ => Verdict::Drop("udp"),
        },
        IpProtocol::Tcp => match TcpPacket::new_checked(ip.payload()) {
            Ok(t) if t.syn() && !t.ack() => Verdict::Syn((
                SocketAddrV4::new(src, t.src_port()),
                SocketAddrV4::new(dst, t.dst_port()),
            )),
            Ok(_) => Verdict::Pass,
            Err(_) => Verdict::Drop("other"),
        },
        IpProtocol::Icmp => Verdict::Drop("icmp"),
        _ => Verdict::Drop("other"),
    }
}

/// A connection to start once the packet that opened it is in the stack.
enum Start {
    Relay(SocketHandle, crate::broker::Admitted),
    Proxy(SocketHandle),
}

impl Net {
    fn new(fd: &OwnedFd) -> Net {
        let mut dev = TunDevice {
            fd: fd.as_raw_fd(),
            rx: Default::default(),
            tx_buf: vec![0; MTU + VNET_HDR_LEN],
            tx_dropped: 0,
        };
        let mut iface = Interface::new(Config::new(HardwareAddress::Ip), &mut dev, now());
        iface.update_ip_addrs(|a| {
            let _ = a.push(IpCidr::new(IpAddress::Ipv4(BROKER_ADDR), LINK_PREFIX));
        });
        // Any destination is the broker's to answer.
        let _ = iface.routes_mut().add_default_ipv4_route(BROKER_ADDR);
        iface.set_any_ip(true);
        let mut sockets = SocketSet::new(Vec::new());
        let mut dns = udp::Socket::new(
            udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 64], vec![0; 64 * 1024]),
            udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 64], vec![0; 64 * 1024]),
        );
        let _ = dns.bind(IpListenEndpoint {
            addr: Some(IpAddress::Ipv4(BROKER_ADDR)),
            port: DNS_PORT,
        });
        let dns = sockets.add(dns);
        Net {
            iface,
            sockets,
            dev,
            dns,
            conns: HashMap::new(),
            orphans: Vec::new(),
            next_port: 40000,
        }
    }

    /// Takes one packet from the sandbox.
    fn ingress(&mut self, shared: &Shared, pkt: Vec<u8>, starts: &mut Vec<Start>) {
        match classify(pkt.get(VNET_HDR_LEN..).unwrap_or_default()) {
            Verdict::Drop(kind) => {
                shared.recorder.dropped(kind);
                return;
            }
            Verdict::Pass => {}
            Verdict::Syn(tuple) => {
                if !self.conns.contains_key(&tuple) {
                    if let Some(s) = self.admit(shared, tuple) {
                        starts.push(s);
                    }
                }
            }
        }
        self.dev.rx.push_back(pkt);
    }

    fn listen(&mut self, tuple: Tuple) -> Option<SocketHandle> {
        let mut s = tcp_socket();
        let ep = IpListenEndpoint {
            addr: Some(IpAddress::Ipv4(*tuple.1.ip())),
            port: tuple.1.port(),
        };
        s.listen(ep).ok()?;
        let h = self.sockets.add(s);
        self.conns.insert(tuple, h);
        Some(h)
    }

    fn admit(&mut self, shared: &Shared, tuple: Tuple) -> Option<Start> {
        let (src, dst) = tuple;
        if *src.ip() != SANDBOX_ADDR {
            shared.recorder.dropped("other");
            return None;
        }
        if *dst.ip() == BROKER_ADDR {
            // The proxy; anything else of the broker's address gets a reset.
            return (dst.port() == PROXY_PORT)
                .then(|| self.listen(tuple))
                .flatten()
                .map(Start::Proxy);
        }
        if self.conns.len() >= MAX_CONNECTIONS {
            shared.recorder.dropped("tcp_over_limit");
            return None;
        }
        let adm = shared.admit_ip(*dst.ip(), dst.port(), "tun")?;
        let h = self.listen(tuple)?;
        Some(Start::Relay(h, adm))
    }

    fn poll(&mut self, shared: &Shared) {
        let t = now();
        self.iface.poll(t, &mut self.dev, &mut self.sockets);
        // DNS questions, answered from the pool.
        let mut answered = false;
        loop {
            let dns = self.sockets.get_mut::<udp::Socket<'static>>(self.dns);
            let mut buf = [0u8; 4096];
            let Ok((n, meta)) = dns.recv_slice(&mut buf) else {
                break;
            };
            if let Some(reply) = crate::dns::answer(shared, &buf[..n]) {
                let _ = dns.send_slice(&reply, meta.endpoint);
                answered = true;
            }
        }
        if answered {
            self.iface.poll(t, &mut self.dev, &mut self.sockets);
        }
        // Sockets whose stream is gone.
        let mut keep = Vec::new();
        for h in std::mem::take(&mut self.orphans) {
            let s = self.sockets.get_mut::<tcp::Socket<'static>>(h);
            if matches!(s.state(), tcp::State::Closed | tcp::State::TimeWait) {
                self.sockets.remove(h);
                self.conns.retain(|_, v| *v != h);
            } else {
                keep.push(h);
            }
        }
        self.orphans = keep;
    }

    fn delay(&mut self) -> Duration {
        self.iface
            .poll_delay(now(), &self.sockets)
            .map(|d| Duration::from_micros(d.total_micros()))
            .unwrap_or(Duration::from_secs(1))
            .min(Duration::from_secs(1))
    }

    /// A connection from a host client to an exposed port of the sandbox.
    fn connect_inward(&mut self, port: u16) -> Option<SocketHandle> {
        let mut s = tcp_socket();
        self.next_port = if self.next_port >= 65000 {
            40000
        } else {
            self.next_port + 1
        };
        s.connect(
            self.iface.context(),
            (IpAddress::Ipv4(SANDBOX_ADDR), port),
            (IpAddress::Ipv4(BROKER_ADDR), self.next_port),
        )
        .ok()?;
        Some(self.sockets.add(s))
    }
}

/// Runs the stack on the TUN descriptor until the device goes away (or the task is
/// dropped with the broker).
pub(crate) async fn run(
    shared: Arc<Shared>,
    tun: OwnedFd,
    mut inward: mpsc::UnboundedReceiver<(u16, TcpStream)>,
) {
    // SAFETY: F_SETFL with O_NONBLOCK on a descriptor we own changes only its flags.
    unsafe { libc::fcntl(tun.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
    let net = Rc::new(RefCell::new(Net::new(&tun)));
    // SAFETY: an OwnedFd owns its descriptor and returns the same one for its whole life.
    let afd = unsafe { AsyncFd::register_with_interest(tun, tokio::io::Interest::READABLE) };
    let Ok(afd) = afd else {
        return;
    };
    let wake = Rc::new(Notify::new());
    let mut starts = Vec::new();
    loop {
        {
            let mut n = net.borrow_mut();
            n.poll(&shared);
        }
        for s in starts.drain(..) {
            let stream = |h| StackStream {
                net: net.clone(),
                handle: h,
                wake: wake.clone(),
            };
            match s {
                Start::Relay(h, adm) => {
                    tokio::task::spawn_local(crate::relay::serve(shared.clone(), adm, stream(h)));
                }
                Start::Proxy(h) => {
                    tokio::task::spawn_local(crate::proxy::serve(shared.clone(), stream(h)));
                }
            }
        }
        let delay = net.borrow_mut().delay();
        tokio::select! {
            r = afd.readable() => {
                let Ok(mut guard) = r else { break };
                let mut n = net.borrow_mut();
                let mut gone = false;
                loop {
                    const FRAME: usize = MTU + VNET_HDR_LEN;
                    let mut buf: Vec<u8> = Vec::with_capacity(FRAME);
                    match guard.try_io(|fd| {
                        // SAFETY: reads at most FRAME bytes into the buffer's spare
                        // capacity, which is FRAME bytes long.
                        let r = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), FRAME) };
                        if r < 0 { Err(std::io::Error::last_os_error()) } else { Ok(r as usize) }
                    }) {
                        Ok(Ok(0)) => { gone = true; break }
                        Ok(Ok(len)) => {
                            // SAFETY: read(2) initialized the first `len` (<= FRAME) bytes.
                            unsafe { buf.set_len(len) };
                            n.ingress(&shared, buf, &mut starts);
                        }
                        Ok(Err(e)) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        Ok(Err(_)) => { gone = true; break }
                        Err(_would_block) => break,
                    }
                }
                if gone { break }
            }
            _ = wake.notified() => {}
            Some((port, client)) = inward.recv() => {
                let h = net.borrow_mut().connect_inward(port);
                let Some(h) = h else { continue };
                let stream = StackStream { net: net.clone(), handle: h, wake: wake.clone() };
                tokio::task::spawn_local(crate::relay::serve_exposed(
                    shared.clone(),
                    port,
                    stream,
                    client,
                ));
            }
            _ = tokio::time::sleep(delay) => {}
        }
    }
}
