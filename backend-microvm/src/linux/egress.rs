//! The guest's side of network `egress` (the host's side is `crate::net`): a TCP
//! connection to an address beyond the sandbox is a guest socket linked, as a loopback
//! connection is (`inet.rs`), to a peer that no guest holds: its buffers are emptied
//! and filled here, from and into the byte queues of a relayed connection the egress
//! broker decided. The broker's DNS answers datagrams to its address; every other
//! datagram beyond the sandbox goes nowhere (counted in the report, as the container's
//! link counts them). A host client of an exposed port becomes a connection queued on
//! the guest's listener at that port.
//!
//! Nothing here makes a host call: the queues are memory shared with the relay thread
//! under a lock, and the relay is woken through a `Notify`.

use std::cell::Cell;
use std::net::{IpAddr, SocketAddrV4};
use std::rc::{Rc, Weak};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sandbox_core::network::{BROKER_ADDR, SANDBOX_ADDR};

use super::fd::{FileKind, OpenFile};
use super::inet::{self, sockaddr, state, Connect, IPPROTO_TCP, TCP_BUFFER};
use super::scm::Outgoing;
use super::unix::{link_sized, SOCK_STREAM};
use super::{Kernel, SysResult};
use crate::errno::{self, Errno};
use crate::memory::HeapCharge;
use crate::net::{Conn, Datagrams, VmNet, RING};
use crate::pipe::{self, PipeEnd};

/// The broker's DNS port.
const DNS_PORT: u16 = 53;
/// What each direction of a relayed connection may hold when the sandbox's memory has
/// no room for its queues (at most 128 KiB per connection, 128 MiB per sandbox).
const UNCHARGED: usize = 64 << 10;
/// How often every relayed connection is looked at even when neither side said it
/// changed: what waits for memory to be freed (a starved receive buffer, a full
/// reserve) or for a closed guest UDP socket to be noticed.
const SWEEP_EVERY: Duration = Duration::from_millis(2);

/// The sandbox's relayed connections.
#[derive(Debug)]
pub(crate) struct Egress {
    /// The broker and relay.
    pub(crate) net: Arc<VmNet>,
    links: Vec<Link>,
    /// Guest UDP sockets whose datagrams leave through an engine's namespace.
    udp: Vec<(Weak<OpenFile>, Arc<Datagrams>)>,
    /// The source port the next host client of an exposed port shows.
    next_port: u16,
    scratch: Vec<u8>,
    /// Set by the guest side of the relayed connections' buffers (a read, a write, a
    /// resize, a close: [`pipe::Pipe::watch`]) and by a new connection: the next
    /// pump looks at them. With the relay's flag (`Control::relayed`) it keeps the
    /// scheduler from visiting every idle connection after each syscall.
    touched: Rc<Cell<bool>>,
    /// When every connection is looked at regardless (see [`SWEEP_EVERY`]).
    next_sweep: Instant,
}

/// One relayed connection, guest side.
#[derive(Debug)]
struct Link {
    conn: Arc<Conn>,
    /// A connect the broker has not answered yet: the guest socket.
    pending: Option<Weak<OpenFile>>,
    /// Writes into the guest socket's receive buffer.
    to_guest: Option<PipeEnd>,
    /// Reads the guest socket's send buffer.
    from_guest: Option<PipeEnd>,
    /// What the host-side queues may hold, charged to the sandbox's memory.
    charge: Option<HeapCharge>,
    /// The guest's receive buffer could not be charged for what was last moved in:
    /// nothing more goes in until it can.
    starved: bool,
}

impl Egress {
    /// The guest side of `net`.
    pub(crate) fn new(net: Arc<VmNet>) -> Egress {
        Egress {
            net,
            links: Vec::new(),
            udp: Vec::new(),
            next_port: 40000,
            scratch: Vec::new(),
            touched: Rc::new(Cell::new(false)),
            next_sweep: Instant::now(),
        }
    }
}

/// Links `s` (a TCP socket) to a peer no guest holds; the peer's two ends.
/// The guest's use of them sets `watch`.
fn link_relay(s: &super::fd::Socket, watch: &Rc<Cell<bool>>) -> (Option<PipeEnd>, Option<PipeEnd>) {
    let peer = inet::new_inet(false, SOCK_STREAM, IPPROTO_TCP);
    link_sized(s, &peer, TCP_BUFFER);
    let to_guest = peer.tx.borrow_mut().take();
    let from_guest = peer.rx.borrow_mut().take();
    for end in to_guest.iter().chain(&from_guest) {
        end.pipe.borrow_mut().watch = Some(Rc::clone(watch));
    }
    (to_guest, from_guest)
}

impl Kernel {
    /// `connect` of a TCP socket to `dst` beyond the sandbox: the broker decides (on
    /// the relay thread); the socket waits, or says `EINPROGRESS`.
    pub(crate) fn egress_connect(
        &mut self,
        f: &Rc<OpenFile>,
        dst: IpAddr,
        port: u16,
        nonblock: bool,
    ) -> SysResult {
        let IpAddr::V4(a) = dst else {
            return Err(Errno(libc::ENETUNREACH).into());
        };
        match &self.egress {
            None => return Err(Errno(libc::ENETUNREACH).into()),
            // Past the most relayed connections (`VmNet::max_links`): `EAGAIN`, as
            // when Linux runs out of local ports.
            Some(eg) if eg.links.len() >= eg.net.max_links() => {
                eg.net.dropped("tcp_over_limit");
                return Err(errno::EAGAIN.into());
            }
            Some(_) => {}
        }
        self.inet_autobind(f)?;
        let s = inet::sock(f)?;
        let v6 = {
            let mut st = state(s).ok_or(errno::ENOTSOCK)?;
            let lport = st.local.map_or(0, |l| l.1);
            st.local = Some((IpAddr::V4(SANDBOX_ADDR), lport));
            st.peer = Some((dst, port));
            st.connect = Connect::Pending;
            st.v6
        };
        {
            let st = state(s).ok_or(errno::ENOTSOCK)?;
            let mut u = s.unix.borrow_mut();
            u.name = st.local.map(|l| sockaddr(v6, l).into());
            u.peer_name = Some(sockaddr(v6, (dst, port)).into());
        }
        if let Some(eg) = self.egress.as_mut() {
            let conn = eg.net.connect(SocketAddrV4::new(a, port));
            eg.touched.set(true);
            eg.links.push(Link {
                conn,
                pending: Some(Rc::downgrade(f)),
                to_guest: None,
                from_guest: None,
                charge: None,
                starved: false,
            });
        }
        if nonblock {
            return Err(Errno(libc::EINPROGRESS).into());
        }
        Err(self.park(None))
    }

    /// A datagram to `dst:port` beyond the sandbox: a DNS question to the broker is
    /// answered at once (the answer queued on `f` from the broker's address); anything
    /// else goes nowhere, as a datagram the broker's link drops.
    pub(crate) fn egress_datagram(
        &mut self,
        f: &Rc<OpenFile>,
        data: &[u8],
        dst: IpAddr,
        port: u16,
    ) -> SysResult {
        let Some(net) = self.egress.as_ref().map(|e| Arc::clone(&e.net)) else {
            return Err(Errno(libc::ENETUNREACH).into());
        };
        // In an engine's namespace: sent from a host UDP socket there (a full queue
        // drops the datagram: UDP never blocks its sender).
        if let Some(d) = self.datagrams_of(f, &net) {
            let IpAddr::V4(a) = dst else {
                return Err(Errno(libc::ENETUNREACH).into());
            };
            if VmNet::datagram_room(&d, data.len()) {
                d.lock()
                    .out
                    .push_back((SocketAddrV4::new(a, port), data.to_vec()));
                d.wake_relay();
            }
            return Ok(data.len() as u64);
        }
        if dst != IpAddr::V4(BROKER_ADDR) || port != DNS_PORT {
            net.dropped("udp");
            return Ok(data.len() as u64);
        }
        let Some(answer) = net.dns_answer(data) else {
            net.dropped("udp");
            return Ok(data.len() as u64);
        };
        // From the broker's address, with the default traffic class and hop limit.
        let mut from = sockaddr(true, (IpAddr::V4(BROKER_ADDR), DNS_PORT));
        from.extend_from_slice(&[0, 64]);
        const MSG_DONTWAIT: u64 = 0x40;
        let _ = self.send_on(
            f,
            &answer,
            MSG_DONTWAIT,
            Some(Rc::clone(f)),
            Outgoing::default(),
            Some(from.into()),
        );
        Ok(data.len() as u64)
    }

    /// The relayed datagrams of the guest UDP socket `f` (made at its first datagram
    /// beyond the VM); `None` with a broker, or past `VmNet::max_links` sockets.
    fn datagrams_of(&mut self, f: &Rc<OpenFile>, net: &Arc<VmNet>) -> Option<Arc<Datagrams>> {
        let eg = self.egress.as_mut()?;
        if let Some((_, d)) = eg
            .udp
            .iter()
            .find(|(w, _)| std::ptr::eq(w.as_ptr(), Rc::as_ptr(f)))
        {
            return Some(Arc::clone(d));
        }
        // Each is a host socket of the VMM process: as many as relayed connections.
        let max = eg.net.max_links();
        if eg.udp.len() >= max {
            eg.udp.retain(|(w, d)| {
                let live = w.strong_count() > 0;
                if !live {
                    d.lock().gone = true;
                    d.wake_relay();
                }
                live
            });
        }
        if eg.udp.len() >= max {
            // Too many: this socket's datagrams go nowhere, as to an unreachable
            // destination (the caller drops them).
            return None;
        }
        let d = net.datagrams()?;
        eg.udp.push((Rc::downgrade(f), Arc::clone(&d)));
        Some(d)
    }

    /// Delivers the datagrams the relay received to their guest sockets (from their
    /// source; a connected socket only from its peer; a full receive queue drops).
    fn deliver_datagrams(&mut self, udp: &mut Vec<(Weak<OpenFile>, Arc<Datagrams>)>) {
        const MSG_DONTWAIT: u64 = 0x40;
        udp.retain(|(w, d)| {
            let Some(f) = w.upgrade() else {
                d.lock().gone = true;
                d.wake_relay();
                return false;
            };
            let got: Vec<_> = {
                let mut st = d.lock();
                st.incoming_bytes = 0;
                st.incoming.drain(..).collect()
            };
            let peer = inet::sock(&f)
                .ok()
                .and_then(|s| state(s).and_then(|st| st.peer));
            for (from, data) in got {
                let src = (IpAddr::V4(*from.ip()), from.port());
                if peer.is_some_and(|p| p != src) {
                    continue;
                }
                let mut meta = sockaddr(true, src);
                meta.extend_from_slice(&[0, 64]);
                let _ = self.send_on(
                    &f,
                    &data,
                    MSG_DONTWAIT,
                    Some(Rc::clone(&f)),
                    Outgoing::default(),
                    Some(meta.into()),
                );
                self.stirred = true;
            }
            true
        });
    }

    /// Moves what the relay brought into the guest's sockets and what the guest wrote
    /// out to the relay; completes connects the broker answered; queues host clients
    /// of exposed ports on the guest's listeners. Called by the scheduler each time it
    /// looks (after every syscall, and when woken); does nothing unless the relay or
    /// the guest changed something since, or the periodic sweep is due.
    pub(crate) fn pump_egress(&mut self) {
        let Some(mut eg) = self.egress.take() else {
            return;
        };
        let now = Instant::now();
        // The relay's flag is taken before its queues are read: what it adds later
        // sets the flag again.
        let relayed = self.ctl.relayed.swap(false, Ordering::SeqCst);
        if relayed || eg.touched.get() || now >= eg.next_sweep {
            eg.next_sweep = now + SWEEP_EVERY;
            while let Some((port, conn)) = eg.net.take_inward() {
                self.inward(&mut eg, port, conn);
            }
            let mut links = std::mem::take(&mut eg.links);
            links.retain_mut(|l| self.pump_link(l, &mut eg.scratch, &eg.touched));
            eg.links = links;
            let mut udp = std::mem::take(&mut eg.udp);
            self.deliver_datagrams(&mut udp);
            eg.udp = udp;
            // The pump's own reads and writes of the guest's buffers set it too; only
            // the guest's, between two pumps, count.
            eg.touched.set(false);
        }
        self.egress = Some(eg);
    }

    /// One connection; `false` once it is over on both sides.
    fn pump_link(&mut self, l: &mut Link, scratch: &mut Vec<u8>, watch: &Rc<Cell<bool>>) -> bool {
        if let Some(w) = &l.pending {
            let open = l.conn.lock().open;
            let Some(f) = w.upgrade() else {
                l.conn.lock().gone = true;
                l.conn.wake_relay();
                return false;
            };
            let Some(open) = open else {
                return true;
            };
            l.pending = None;
            let Ok(s) = inet::sock(&f) else {
                return false;
            };
            self.stirred = true;
            if !open {
                let e = match l.conn.lock().error {
                    0 => libc::ECONNREFUSED,
                    e => e,
                };
                if let Some(mut st) = state(s) {
                    st.connect = Connect::Failed;
                    st.error = e;
                }
                return false;
            }
            (l.to_guest, l.from_guest) = link_relay(s, watch);
            if let Some(mut st) = state(s) {
                st.connect = Connect::InProgress;
            };
        }
        let budget = self.mm.mem.budget();
        // Network buffers never take the sandbox's last memory: they grow only while
        // `reserve` stays free beside them (a quarter of the memory limit, at most
        // 64 MiB), so the workload's own allocations still succeed; below that, each
        // direction goes on through a small queue (`UNCHARGED`) so nothing stalls.
        let reserve = (self.limits.memory / 4).min(64 << 20);
        let room = |bytes: usize| {
            let b = bytes as u64 + reserve;
            let ok = budget.charge_bytes(b).is_ok();
            if ok {
                budget.uncharge_bytes(b);
            }
            ok
        };
        let mut st = l.conn.lock();
        let mut wake = false;
        // From the host into the guest's receive buffer (charged as the guest's
        // buffers are; what cannot be charged waits, unless the buffer is empty).
        let mut close_in = false;
        if let Some(end) = &l.to_guest {
            let mut p = end.pipe.borrow_mut();
            let mut moved = false;
            if p.readers == 0 {
                st.inbound.clear();
                close_in = true;
            }
            if l.starved && p.account(&budget).is_ok() {
                l.starved = false;
            }
            let limit = if !l.starved && room(st.inbound.len()) {
                st.inbound.len()
            } else if p.is_empty() {
                st.inbound.len().min(UNCHARGED)
            } else {
                0
            };
            let mut left = limit;
            while left > 0 && !st.inbound.is_empty() {
                let (a, _) = st.inbound.as_slices();
                let a = &a[..a.len().min(left)];
                match p.write(a) {
                    pipe::Write::Wrote(n) => {
                        st.inbound.drain(..n);
                        left -= n;
                        moved = true;
                    }
                    _ => break,
                }
            }
            if moved {
                l.starved = p.account(&budget).is_err();
                self.stirred = true;
                wake = true;
            }
            if st.in_eof && st.inbound.is_empty() {
                close_in = true;
            }
        }
        if close_in && l.to_guest.take().is_some() {
            self.stirred = true;
        }
        // From the guest's send buffer out to the host: a full queue's worth while
        // there is room, else a little when the queue is empty.
        let pending_out = l.from_guest.as_ref().map_or(0, |e| e.pipe.borrow().len());
        let out_room = RING.saturating_sub(st.outbound.len()).min(pending_out);
        let out_room = if room(out_room) {
            out_room
        } else if st.outbound.is_empty() {
            pending_out.min(UNCHARGED)
        } else {
            0
        };
        let mut close_out = false;
        if let Some(end) = &l.from_guest {
            let mut p = end.pipe.borrow_mut();
            let room = out_room;
            if room > 0 {
                scratch.resize(room, 0);
                if let pipe::Read::Data { n, .. } = p.read(&mut scratch[..room], false) {
                    st.outbound.extend(&scratch[..n]);
                    let _ = p.account(&budget);
                    self.stirred = true;
                    wake = true;
                }
            }
            if p.writers == 0 && p.is_empty() {
                st.out_eof = true;
                close_out = true;
                wake = true;
            }
        }
        // The host-side queues are the sandbox's memory. The relay may read ahead a
        // full window while there is room for it beside `reserve`: the window is
        // charged here, before the relay (another thread) can fill it, so the windows
        // of many connections never take the workload's reserve between two visits.
        // Without room, the window is a small uncharged one, and the charge follows
        // what the queues hold (best effort: they are bounded whatever it says).
        let charge = l.charge.get_or_insert_with(|| HeapCharge::new(&budget));
        let queued = st.inbound.len() + st.outbound.len();
        let full = RING.max(st.inbound.len()) + st.outbound.len();
        let held = charge.bytes() as usize;
        let window = if l.to_guest.is_none() {
            0
        } else if room(full.saturating_sub(held)) && charge.set(full as u64).is_ok() {
            RING
        } else {
            UNCHARGED
        };
        if window != RING {
            let _ = charge.set(queued as u64);
        }
        if st.window != window {
            wake |= window > st.window;
            st.window = window;
        }
        if close_out {
            l.from_guest = None;
        }
        let over = l.to_guest.is_none() && l.from_guest.is_none();
        if over {
            st.gone = true;
            wake = true;
        }
        drop(st);
        if wake {
            l.conn.wake_relay();
        }
        !over
    }

    /// A host client of the exposed `port`: a connection for the guest's listener at
    /// [`SANDBOX_ADDR`]:`port` (one bound at a wildcard address or at that one), from
    /// the broker's address; without such a listener (or with its backlog full) the
    /// client's connection ends at once, as a reset would end it.
    fn inward(&mut self, eg: &mut Egress, port: u16, conn: Arc<Conn>) {
        let refuse = |conn: &Arc<Conn>| {
            conn.lock().gone = true;
            conn.wake_relay();
        };
        let dst = IpAddr::V4(SANDBOX_ADDR);
        eg.next_port = if eg.next_port >= 60999 {
            40000
        } else {
            eg.next_port + 1
        };
        let peer = (IpAddr::V4(BROKER_ADDR), eg.next_port);
        let Some(listener) = self.lookup(IPPROTO_TCP, dst, port, peer) else {
            return refuse(&conn);
        };
        let Ok(l) = inet::sock(&listener) else {
            return refuse(&conn);
        };
        let (full, lv6) = {
            let u = l.unix.borrow();
            let Some(b) = &u.listen else {
                return refuse(&conn);
            };
            (b.queue.len() > b.max, state(l).is_some_and(|st| st.v6))
        };
        if full {
            return refuse(&conn);
        }
        let server = inet::new_inet(lv6, SOCK_STREAM, IPPROTO_TCP);
        let (to_guest, from_guest) = link_relay(&server, &eg.touched);
        if let Some(mut st) = state(&server) {
            st.local = Some((dst, port));
            st.peer = Some(peer);
        }
        {
            let mut su = server.unix.borrow_mut();
            su.name = Some(sockaddr(lv6, (dst, port)).into());
            su.peer_name = Some(sockaddr(lv6, peer).into());
        }
        let file = OpenFile::new(FileKind::Socket(server), None, libc::O_RDWR);
        if let Some(b) = &mut l.unix.borrow_mut().listen {
            b.queue.push_back(file);
        }
        self.stirred = true;
        eg.links.push(Link {
            conn,
            pending: None,
            to_guest,
            from_guest,
            charge: None,
            starved: false,
        });
    }
}
