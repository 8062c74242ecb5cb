//! The micro-VM's way out (network `egress`): the egress broker of the container
//! backend (`sandbox-egress`, linked in-process) and a relay thread beside it.
//!
//! The VMM thread makes no host socket and connects nowhere (its seccomp allowlist has
//! no `socket`, `connect` or `bind`; `confine.rs` asserts it). Both threads here are
//! started by the caller before the VMM thread confines itself:
//! - the broker's thread decides each connection and serves it
//!   ([`BrokerHandle::connect`] hands back the sandbox's end of a connected stream);
//! - the relay thread asks the broker for each connection a guest socket opens toward
//!   an address that is not the VM's own, and moves bytes between the descriptor the
//!   broker handed over and two byte queues ([`Conn`]) that the VMM thread fills and
//!   empties with the guest socket's buffers (`linux/egress.rs`). The relay wakes a
//!   waiting VMM thread as stdin data does ([`Control::relay_changed`]); the VMM thread
//!   wakes the relay through a [`Notify`] (a futex or an eventfd write: both on its
//!   allowlist already).
//!
//! A host client of an exposed port arrives the same way, from
//! [`BrokerHandle::take_inward`], as a connection for the guest's listener.
//!
//! DNS needs no relay: the VMM thread asks [`BrokerHandle::dns_answer`], which answers
//! from the rules without I/O.
//!
//! The same relay serves a micro-VM that runs in a network namespace an OCI engine made
//! (network `loopback` with a namespace to join): there is no broker, the engine's
//! network is the policy. The relay thread joins that namespace before it serves; a
//! guest connection beyond the VM is a TCP connection the relay makes there, a guest
//! UDP socket's datagrams beyond the VM go from a UDP socket of the relay there (its
//! answers come back), and a guest listener on a wildcard address (or the guest's own)
//! gets a listener at the same port there, whose clients (an engine's published port)
//! are queued on it.

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddrV4;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex, MutexGuard};

use sandbox_core::network::{ExposedPort, NetworkEvent, NetworkReport};
use sandbox_core::{Plan, SpawnError};
use sandbox_egress::{Broker, BrokerHandle, Events, Link};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot, Notify};

use crate::kick::Control;

/// Each direction of a relayed connection holds at most this much on the host side
/// (besides the guest socket's own buffer), charged to the sandbox's memory as the
/// guest socket's buffers are.
pub(crate) const RING: usize = 1 << 20;
/// The most the relay reads or writes at once.
const CHUNK: usize = 256 << 10;

/// One relayed connection: what goes each way, and where it stands.
#[derive(Debug, Default)]
pub(crate) struct Conn {
    st: Mutex<ConnState>,
    /// Wakes the relay's sending half: bytes to send, the guest's end of sending, or
    /// the guest gone.
    send: Notify,
    /// Wakes the relay's receiving half: room for more inbound bytes, or the guest gone.
    room: Notify,
}

/// The state of a [`Conn`], under its lock.
#[derive(Debug, Default)]
pub(crate) struct ConnState {
    /// `None` while the broker decides; then connected (`true`) or refused.
    pub(crate) open: Option<bool>,
    /// From the host, for the guest.
    pub(crate) inbound: VecDeque<u8>,
    /// How much `inbound` may hold: what the VMM has charged to the sandbox's memory
    /// for it (0 until it did, or while the sandbox's memory is full).
    pub(crate) window: usize,
    /// The host side will send nothing more.
    pub(crate) in_eof: bool,
    /// From the guest, for the host.
    pub(crate) outbound: VecDeque<u8>,
    /// The guest will send nothing more (shut down for writing, or closed).
    pub(crate) out_eof: bool,
    /// Why a connection was not made (`ECONNREFUSED` when the broker refused).
    pub(crate) error: i32,
    /// The guest socket is gone: the relay drops the connection.
    pub(crate) gone: bool,
}

impl Conn {
    /// Its state.
    pub(crate) fn lock(&self) -> MutexGuard<'_, ConnState> {
        crate::sync::locked(&self.st)
    }

    /// Tells the relay something changed.
    pub(crate) fn wake_relay(&self) {
        self.send.notify_one();
        self.room.notify_one();
    }
}

/// A guest UDP socket's datagrams beyond the VM, in an engine's namespace: a host UDP
/// socket there sends them and takes the answers.
#[derive(Debug, Default)]
pub(crate) struct Datagrams {
    st: Mutex<DatagramState>,
    /// Wakes the relay: datagrams to send, or the guest socket gone.
    send: Notify,
}

/// The state of [`Datagrams`], under its lock.
#[derive(Debug, Default)]
pub(crate) struct DatagramState {
    /// To send, with their destination.
    pub(crate) out: VecDeque<(SocketAddrV4, Vec<u8>)>,
    /// Received, with their source, for the guest socket.
    pub(crate) incoming: VecDeque<(SocketAddrV4, Vec<u8>)>,
    /// Bytes in `incoming` (bounded as a socket's receive queue).
    pub(crate) incoming_bytes: usize,
    /// The guest socket is gone.
    pub(crate) gone: bool,
}

impl Datagrams {
    /// Its state.
    pub(crate) fn lock(&self) -> MutexGuard<'_, DatagramState> {
        crate::sync::locked(&self.st)
    }

    /// Tells the relay something changed.
    pub(crate) fn wake_relay(&self) {
        self.send.notify_one();
    }
}

/// Most ports the relay listens at for a guest in an engine's namespace.
const MAX_LISTENERS: usize = 256;

/// What a guest UDP socket's relayed datagrams may hold, each way (`rmem_default`).
const DATAGRAM_QUEUE: usize = 212_992;

enum Job {
    /// A guest UDP socket's datagrams (the engine's namespace only).
    Datagrams(Arc<Datagrams>),
    /// A guest socket connects to `dst`.
    Connect(SocketAddrV4, Arc<Conn>),
    /// A host client of the exposed port, for the guest's listener.
    Inward(u16, OwnedFd),
    /// The guest listens at this TCP port (the engine's namespace only).
    Listen(u16),
}

/// The egress of one micro-VM sandbox: its broker and relay, shared by the VMM thread
/// (which opens connections and asks DNS) and the host side (report, events).
#[derive(Debug)]
pub(crate) struct VmNet {
    broker: Mutex<Option<Arc<BrokerHandle>>>,
    /// The broker's events (`None` in an engine's namespace, which has no broker).
    events: Option<Events>,
    /// In an engine's network namespace: guest listeners get one there too.
    namespace: bool,
    /// The ports the relay listens at for the guest (the engine's namespace only).
    listening: Mutex<HashSet<u16>>,
    /// Most relayed connections (and relayed UDP sockets) at once: see [`max_links`].
    max_links: usize,
    exposed: Vec<ExposedPort>,
    ca_bundle: Option<String>,
    jobs: mpsc::UnboundedSender<Job>,
    /// Host clients of exposed ports that the VMM thread has not taken yet.
    inward: Mutex<VecDeque<(u16, Arc<Conn>)>>,
    quit: Mutex<Option<oneshot::Sender<()>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// The report once the broker stopped.
    last: Mutex<Option<NetworkReport>>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Job")
    }
}

fn setup(step: &str, e: impl std::fmt::Display) -> SpawnError {
    SpawnError::Setup {
        step: step.into(),
        source: std::io::Error::other(e.to_string()),
    }
}

impl VmNet {
    /// Starts the broker of `plan` (network `egress`) and the relay; `None` for the
    /// other networks. Called before the VMM thread exists (it confines itself).
    pub(crate) fn start(plan: &Plan, ctl: &Arc<Control>) -> Result<Option<Arc<VmNet>>, SpawnError> {
        match (plan.network, &plan.netns) {
            (sandbox_core::Network::Egress, _) => {}
            (sandbox_core::Network::Loopback, Some(ns)) => return Self::in_namespace(ns, ctl),
            _ => return Ok(None),
        }
        let broker = Broker::new(plan.egress.clone().unwrap_or_default())
            .map_err(|e| setup("preparing the egress broker", e))?;
        let ca_bundle = broker.ca_bundle();
        let broker = Arc::new(
            broker
                .start(Link::InProcess)
                .map_err(|e| setup("starting the egress broker", e))?,
        );
        let inward_rx = broker.take_inward();
        let (jobs, rx) = mpsc::unbounded_channel();
        let (quit, quit_rx) = oneshot::channel();
        let net = Arc::new(VmNet {
            events: Some(broker.events_source()),
            namespace: false,
            listening: Mutex::new(HashSet::new()),
            max_links: max_links(),
            exposed: broker.exposed().to_vec(),
            broker: Mutex::new(Some(Arc::clone(&broker))),
            ca_bundle,
            jobs: jobs.clone(),
            inward: Mutex::new(VecDeque::new()),
            quit: Mutex::new(Some(quit)),
            thread: Mutex::new(None),
            last: Mutex::new(None),
        });
        let weak = Arc::downgrade(&net);
        let c = Arc::clone(ctl);
        let thread = std::thread::Builder::new()
            .name("hsb-vm-relay".into())
            .spawn(move || relay_thread(Some(broker), c, weak, rx, quit_rx))
            .map_err(|e| setup("starting the micro-VM's network relay", e))?;
        *crate::sync::locked(&net.thread) = Some(thread);
        if let Some(rx) = inward_rx {
            // Ends when the broker stops (its sender goes).
            std::thread::Builder::new()
                .name("hsb-vm-inward".into())
                .spawn(move || {
                    while let Ok((port, fd)) = rx.recv() {
                        if jobs.send(Job::Inward(port, fd)).is_err() {
                            break;
                        }
                    }
                })
                .map_err(|e| setup("starting the micro-VM's exposed ports", e))?;
        }
        Ok(Some(net))
    }

    /// The relay in the network namespace at `ns` (an OCI engine's), without a broker.
    fn in_namespace(
        ns: &std::path::Path,
        ctl: &Arc<Control>,
    ) -> Result<Option<Arc<VmNet>>, SpawnError> {
        let what = format!("joining the network namespace {}", ns.display());
        let file = std::fs::File::open(ns).map_err(|e| setup(&what, e))?;
        let (jobs, rx) = mpsc::unbounded_channel();
        let (quit, quit_rx) = oneshot::channel();
        let net = Arc::new(VmNet {
            broker: Mutex::new(None),
            events: None,
            namespace: true,
            listening: Mutex::new(HashSet::new()),
            max_links: max_links(),
            exposed: Vec::new(),
            ca_bundle: None,
            jobs,
            inward: Mutex::new(VecDeque::new()),
            quit: Mutex::new(Some(quit)),
            thread: Mutex::new(None),
            last: Mutex::new(None),
        });
        let weak = Arc::downgrade(&net);
        let c = Arc::clone(ctl);
        let (joined_tx, joined_rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("hsb-vm-relay".into())
            .spawn(move || {
                use std::os::fd::AsRawFd;
                // SAFETY: setns on a descriptor this thread owns; it moves this thread
                // only (the relay's sockets are made in that namespace).
                let r = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                let ok = r == 0;
                let _ = joined_tx.send(if ok {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                });
                drop(file);
                if ok {
                    relay_thread(None, c, weak, rx, quit_rx);
                }
            })
            .map_err(|e| setup("starting the micro-VM's network relay", e))?;
        match joined_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(setup(&what, e)),
            Err(_) => return Err(setup(&what, "the relay thread ended")),
        }
        *crate::sync::locked(&net.thread) = Some(thread);
        Ok(Some(net))
    }

    /// A guest TCP listener at `port` (on a wildcard address or the guest's own): in an
    /// engine's namespace, the relay listens at that port there too (once per port).
    /// At most [`MAX_LISTENERS`] ports (each a host descriptor of the VMM process);
    /// past them a guest listener is the VM's only.
    pub(crate) fn listen(&self, port: u16) {
        if !self.namespace {
            return;
        }
        let new = {
            let mut l = crate::sync::locked(&self.listening);
            l.len() < MAX_LISTENERS && l.insert(port)
        };
        if new {
            let _ = self.jobs.send(Job::Listen(port));
        }
    }

    /// Most relayed connections at once (and, apart, relayed UDP sockets).
    pub(crate) fn max_links(&self) -> usize {
        self.max_links
    }

    /// The CA bundle the sandbox trusts (secrets configured), for its /etc.
    pub(crate) fn ca_bundle(&self) -> Option<String> {
        self.ca_bundle.clone()
    }

    /// Where the host reaches the sandbox's exposed ports.
    pub(crate) fn exposed(&self) -> Vec<ExposedPort> {
        self.exposed.clone()
    }

    /// The broker's decisions as they happen (`None` without a broker).
    pub(crate) fn events(&self) -> Option<tokio::sync::broadcast::Receiver<NetworkEvent>> {
        self.events.as_ref().map(Events::subscribe)
    }

    fn broker(&self) -> Option<Arc<BrokerHandle>> {
        crate::sync::locked(&self.broker).clone()
    }

    /// The answer to a DNS message the guest sent to the broker's address (`None`:
    /// not a DNS message, or the broker stopped).
    pub(crate) fn dns_answer(&self, query: &[u8]) -> Option<Vec<u8>> {
        self.broker()?.dns_answer(query)
    }

    /// Counts a datagram of the guest that went nowhere.
    pub(crate) fn dropped(&self, kind: &str) {
        if let Some(b) = self.broker() {
            b.dropped(kind);
        }
    }

    /// A guest connection to `dst`: the broker decides on the relay thread; the
    /// connection's `open` says the answer.
    pub(crate) fn connect(&self, dst: SocketAddrV4) -> Arc<Conn> {
        let conn = Arc::new(Conn::default());
        if self
            .jobs
            .send(Job::Connect(dst, Arc::clone(&conn)))
            .is_err()
        {
            conn.lock().open = Some(false);
        }
        conn
    }

    /// A guest UDP socket's way out in an engine's namespace (`None` with a broker,
    /// where only its DNS answers).
    pub(crate) fn datagrams(&self) -> Option<Arc<Datagrams>> {
        if !self.namespace {
            return None;
        }
        let d = Arc::new(Datagrams::default());
        self.jobs.send(Job::Datagrams(Arc::clone(&d))).ok()?;
        Some(d)
    }

    /// Whether there is room for `len` more bytes to send on `d`.
    pub(crate) fn datagram_room(d: &Datagrams, len: usize) -> bool {
        let st = d.lock();
        st.out.iter().map(|(_, b)| b.len()).sum::<usize>() + len <= DATAGRAM_QUEUE
    }

    /// A host client of an exposed port waiting for the guest, if any.
    pub(crate) fn take_inward(&self) -> Option<(u16, Arc<Conn>)> {
        crate::sync::locked(&self.inward).pop_front()
    }

    /// The report: what the broker decided so far, final once stopped.
    pub(crate) fn report(&self) -> Option<NetworkReport> {
        if let Some(r) = crate::sync::locked(&self.last).clone() {
            return Some(r);
        }
        self.broker().map(|b| b.report())
    }

    /// Ends every relayed connection and stops the broker; its final report (kept for
    /// later calls). Blocking (joins the relay thread): not for the VMM thread.
    pub(crate) fn stop(&self) -> Option<NetworkReport> {
        if let Some(q) = crate::sync::locked(&self.quit).take() {
            let _ = q.send(());
        }
        let t = crate::sync::locked(&self.thread).take();
        if let Some(t) = t {
            let _ = t.join();
        }
        let b = crate::sync::locked(&self.broker).take();
        if let Some(b) = b {
            let report = match Arc::try_unwrap(b) {
                Ok(b) => b.stop(),
                Err(b) => b.report(),
            };
            *crate::sync::locked(&self.last) = Some(report);
        }
        self.report()
    }
}

impl Drop for VmNet {
    fn drop(&mut self) {
        if let Some(q) = self
            .quit
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            let _ = q.send(());
        }
    }
}

/// Most relayed connections of one sandbox: 1,024, and never more than an eighth of
/// the descriptors the embedding process may open (`RLIMIT_NOFILE`; each connection
/// holds up to three: the relay's end, the broker's end and its upstream), so that a
/// workload opening connections without end cannot exhaust the caller's table (the
/// VMM's own descriptors are bounded apart, `host_fd_budget`). Asked before the VMM
/// thread confines itself.
fn max_links() -> usize {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills the struct passed; it has no other effect.
    let cur = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) } == 0 {
        rl.rlim_cur
    } else {
        1024
    };
    usize::try_from(cur / 8)
        .unwrap_or(usize::MAX)
        .clamp(16, 1024)
}

fn relay_thread(
    broker: Option<Arc<BrokerHandle>>,
    ctl: Arc<Control>,
    net: std::sync::Weak<VmNet>,
    mut jobs: mpsc::UnboundedReceiver<Job>,
    quit: oneshot::Receiver<()>,
) {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
    else {
        return;
    };
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let mut quit = quit;
        loop {
            tokio::select! {
                job = jobs.recv() => match job {
                    Some(Job::Connect(dst, conn)) => match &broker {
                        Some(broker) => {
                            match broker.connect(dst) {
                                Ok(fd) => {
                                    conn.lock().open = Some(true);
                                    tokio::task::spawn_local(pump_fd(fd, conn, Arc::clone(&ctl)));
                                }
                                Err(_) => {
                                    let mut st = conn.lock();
                                    st.open = Some(false);
                                    st.error = libc::ECONNREFUSED;
                                }
                            }
                            ctl.relay_changed();
                        }
                        // The engine's namespace: a real connection there.
                        None => {
                            let ctl = Arc::clone(&ctl);
                            tokio::task::spawn_local(async move {
                                match tokio::net::TcpStream::connect(dst).await {
                                    Ok(s) => {
                                        let _ = s.set_nodelay(true);
                                        conn.lock().open = Some(true);
                                        ctl.relay_changed();
                                        pump(s, conn, ctl).await;
                                    }
                                    Err(e) => {
                                        let mut st = conn.lock();
                                        st.open = Some(false);
                                        st.error = e.raw_os_error().unwrap_or(libc::ECONNREFUSED);
                                        drop(st);
                                        ctl.relay_changed();
                                    }
                                }
                            });
                        }
                    },
                    Some(Job::Listen(port)) => {
                        let Ok(l) = tokio::net::TcpListener::bind((std::net::Ipv4Addr::UNSPECIFIED, port)).await else {
                            continue;
                        };
                        let (net, ctl) = (net.clone(), Arc::clone(&ctl));
                        tokio::task::spawn_local(async move {
                            while let Ok((s, _)) = l.accept().await {
                                let _ = s.set_nodelay(true);
                                let Some(net) = net.upgrade() else { break };
                                let conn = Arc::new(Conn::default());
                                conn.lock().open = Some(true);
                                crate::sync::locked(&net.inward)
                                    .push_back((port, Arc::clone(&conn)));
                                tokio::task::spawn_local(pump(s, conn, Arc::clone(&ctl)));
                                ctl.relay_changed();
                            }
                        });
                    }
                    Some(Job::Datagrams(d)) => {
                        tokio::task::spawn_local(datagrams(d, Arc::clone(&ctl)));
                    }
                    Some(Job::Inward(port, fd)) => {
                        let Some(net) = net.upgrade() else { continue };
                        let conn = Arc::new(Conn::default());
                        conn.lock().open = Some(true);
                        crate::sync::locked(&net.inward)
                            .push_back((port, Arc::clone(&conn)));
                        tokio::task::spawn_local(pump_fd(fd, conn, Arc::clone(&ctl)));
                        ctl.relay_changed();
                    }
                    None => break,
                },
                _ = &mut quit => break,
            }
        }
    });
    // Every connection's task (and descriptor) goes with the runtime.
    drop(local);
    drop(rt);
}

/// Sends a guest UDP socket's datagrams from a host UDP socket in the engine's
/// namespace, and queues what comes back, until the guest socket is gone.
async fn datagrams(d: Arc<Datagrams>, ctl: Arc<Control>) {
    let Ok(sock) = tokio::net::UdpSocket::bind((std::net::Ipv4Addr::UNSPECIFIED, 0)).await else {
        return;
    };
    let mut buf = vec![0u8; 65_536];
    loop {
        let next = {
            let mut st = d.lock();
            if st.gone {
                return;
            }
            st.out.pop_front()
        };
        if let Some((dst, data)) = next {
            // A datagram that cannot go is lost, as UDP's are.
            let _ = sock.send_to(&data, dst).await;
            continue;
        }
        tokio::select! {
            r = sock.recv_from(&mut buf) => {
                let Ok((n, std::net::SocketAddr::V4(from))) = r else { continue };
                let mut st = d.lock();
                if st.incoming_bytes + n > DATAGRAM_QUEUE {
                    continue; // a full receive queue drops, as Linux's
                }
                st.incoming_bytes += n;
                st.incoming.push_back((from, buf[..n].to_vec()));
                drop(st);
                ctl.relay_changed();
            }
            _ = d.send.notified() => {}
        }
    }
}

/// [`pump`] on the broker's descriptor.
async fn pump_fd(fd: OwnedFd, conn: Arc<Conn>, ctl: Arc<Control>) {
    let std = std::os::unix::net::UnixStream::from(fd);
    let Ok(stream) = tokio::net::UnixStream::from_std(std) else {
        let mut st = conn.lock();
        st.in_eof = true;
        drop(st);
        ctl.relay_changed();
        return;
    };
    pump(stream, conn, ctl).await;
}

/// Moves bytes between a stream (the broker's descriptor, or a connection in the
/// engine's namespace) and the connection's queues until both directions are over or
/// the guest socket is gone.
async fn pump<S>(stream: S, conn: Arc<Conn>, ctl: Arc<Control>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite,
{
    let (mut rd, mut wr) = tokio::io::split(stream);
    let inbound = async {
        let mut buf = vec![0u8; CHUNK];
        loop {
            let room = {
                let st = conn.lock();
                if st.gone {
                    return;
                }
                st.window.saturating_sub(st.inbound.len()).min(CHUNK)
            };
            if room == 0 {
                conn.room.notified().await;
                continue;
            }
            let n = tokio::select! {
                r = rd.read(&mut buf[..room]) => r.unwrap_or(0),
                // The guest went (or took bytes): look again.
                _ = conn.room.notified() => continue,
            };
            let mut st = conn.lock();
            if n == 0 {
                st.in_eof = true;
                drop(st);
                ctl.relay_changed();
                return;
            }
            let was_empty = st.inbound.is_empty();
            st.inbound.extend(&buf[..n]);
            drop(st);
            if was_empty {
                ctl.relay_changed();
            }
        }
    };
    let outbound = async {
        let mut buf = Vec::with_capacity(CHUNK);
        loop {
            let (full, eof, gone) = {
                let mut st = conn.lock();
                let full = st.outbound.len() >= RING;
                let n = st.outbound.len().min(CHUNK);
                buf.clear();
                buf.extend(st.outbound.drain(..n));
                (full, st.out_eof, st.gone)
            };
            if buf.is_empty() {
                if eof || gone {
                    let _ = wr.shutdown().await;
                    return;
                }
                conn.send.notified().await;
                continue;
            }
            if full {
                // The guest's writer may wait for this room.
                ctl.relay_changed();
            }
            if wr.write_all(&buf).await.is_err() {
                // The host side went: what the guest still sends is dropped.
                loop {
                    {
                        let mut st = conn.lock();
                        st.outbound.clear();
                        if st.out_eof || st.gone {
                            return;
                        }
                    }
                    conn.send.notified().await;
                }
            }
        }
    };
    tokio::join!(inbound, outbound);
}
