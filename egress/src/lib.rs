//! The egress broker of hybrid-sandbox: the one way out of a sandbox whose network is
//! `egress`. It answers the sandbox's DNS only for names the policy allows (from a private
//! pool of addresses, never forwarding a question), decides every TCP connection by the
//! name it was for (checked against the TLS SNI and HTTP Host) or by a rule naming its
//! address, refuses everything else, serves an HTTP proxy for programs that honour
//! `HTTP_PROXY`, puts secrets into requests to their hosts only (terminating TLS with a
//! CA of the sandbox's own), makes exposed ports reachable from the host, and reports
//! each decision.
//!
//! One [`Broker`] per sandbox, running on a thread of its own once started. The
//! container backend links it to the TUN device inside the sandbox's network namespace
//! ([`Link::Tun`]): a userspace TCP/IP stack (smoltcp) terminates the sandbox's packets.
//! The micro-VM asks it in-process ([`Link::InProcess`]): [`BrokerHandle::connect`] hands
//! back a connected stream descriptor and [`BrokerHandle::dns_answer`] answers a DNS
//! message, so the VMM thread needs neither `socket` nor `connect`.

mod broker;
mod dns;
mod intercept;
mod peek;
mod pool;
mod proxy;
mod record;
mod relay;
mod stack;
mod tls;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};

use sandbox_core::network::{
    EgressPlan, ExposedPort, NetworkEvent, NetworkReport, BROKER_ADDR, PROXY_PORT, SANDBOX_ADDR,
};
use sandbox_core::Network;
use tokio::sync::{broadcast, mpsc, oneshot};

use broker::Shared;

pub use stack::{MTU, VNET_HDR_LEN};
pub use tls::{http1_client_config, load_pem_certs, provider as tls_provider, OneBuffer};

/// The broker could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum EgressError {
    /// The sandbox's CA or the trust store could not be prepared.
    #[error("TLS setup: {0}")]
    Tls(String),
    /// A port for an exposed sandbox port could not be opened on the host.
    #[error("cannot listen on 127.0.0.1 for the sandbox's port {port}")]
    Expose {
        /// The sandbox's port.
        port: u16,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The broker's thread could not be started.
    #[error("cannot start the broker's thread")]
    Thread(#[source] std::io::Error),
}

/// Where a broker's events can be subscribed to; cheap to clone.
#[derive(Debug, Clone)]
pub struct Events(record::Recorder);

impl Events {
    /// Each decision from now on. Receivers that fall behind lose the oldest events
    /// (the report keeps them all).
    pub fn subscribe(&self) -> broadcast::Receiver<NetworkEvent> {
        self.0.subscribe()
    }
}

/// A connection the broker refused (the micro-VM's `connect` gets ECONNREFUSED).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("connection to {dst} refused: {rule}")]
pub struct Refused {
    /// Where the sandbox wanted to go.
    pub dst: SocketAddrV4,
    /// The rule that decided, in words.
    pub rule: String,
}

/// How the sandbox reaches the broker.
#[derive(Debug)]
pub enum Link {
    /// A TUN device inside the sandbox's network namespace (no packet information
    /// header; a virtio-net header of [`VNET_HDR_LEN`] bytes, `TUN_F_CSUM` offload),
    /// addressed [`SANDBOX_ADDR`], its peer [`BROKER_ADDR`], MTU [`MTU`].
    Tun(OwnedFd),
    /// In the same process (the micro-VM): through [`BrokerHandle::connect`],
    /// [`BrokerHandle::dns_answer`] and [`BrokerHandle::take_inward`].
    InProcess,
}

/// A broker prepared for one sandbox, not yet running: its CA (when the sandbox has
/// secrets) and the host ports of its exposed ports exist, so both can go into the
/// sandbox's setup and the caller's view before the sandbox starts.
#[derive(Debug)]
pub struct Broker {
    shared: Arc<Shared>,
    listeners: Vec<(u16, std::net::TcpListener)>,
    exposed: Vec<ExposedPort>,
}

impl Broker {
    /// Prepares the broker for `plan`.
    pub fn new(plan: EgressPlan) -> Result<Broker, EgressError> {
        let tls = tls::Tls::new(&plan)?;
        let mut listeners = Vec::new();
        let mut exposed = Vec::new();
        for &port in &plan.expose {
            let l = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                .and_then(|l| l.set_nonblocking(true).map(|_| l))
                .map_err(|source| EgressError::Expose { port, source })?;
            let host = l
                .local_addr()
                .map_err(|source| EgressError::Expose { port, source })?;
            exposed.push(ExposedPort {
                sandbox_port: port,
                host,
            });
            listeners.push((port, l));
        }
        let report = NetworkReport {
            mode: Network::Egress,
            sandbox_address: Some(SANDBOX_ADDR),
            broker_address: Some(BROKER_ADDR),
            exposed: exposed.clone(),
            ..Default::default()
        };
        Ok(Broker {
            shared: Shared::new(plan, record::Recorder::new(report), tls),
            listeners,
            exposed,
        })
    }

    /// The PEM bundle the sandbox must trust (the host's CAs and the sandbox's own), to
    /// be placed at [`sandbox_core::network::CA_BUNDLE_PATH`]; `None` without secrets.
    pub fn ca_bundle(&self) -> Option<String> {
        self.shared.tls.bundle()
    }

    /// Where the host reaches the sandbox's exposed ports.
    pub fn exposed(&self) -> &[ExposedPort] {
        &self.exposed
    }

    /// Starts the broker's thread on `link`.
    pub fn start(self, link: Link) -> Result<BrokerHandle, EgressError> {
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel::<Cmd>();
        let (vm_inward_tx, vm_inward_rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let shared = self.shared.clone();
        let listeners = self.listeners;
        let thread = std::thread::Builder::new()
            .name("hsb-egress".into())
            .spawn(move || {
                run(
                    shared,
                    link,
                    listeners,
                    cmd_rx,
                    stop_rx,
                    vm_inward_tx,
                    done_tx,
                )
            })
            .map_err(EgressError::Thread)?;
        Ok(BrokerHandle {
            shared: self.shared,
            exposed: self.exposed,
            stop: Some(stop_tx),
            done: Mutex::new(done_rx),
            thread: Some(thread),
            cmds: cmd_tx,
            inward: Mutex::new(Some(vm_inward_rx)),
        })
    }
}

enum Cmd {
    Connect(
        SocketAddrV4,
        std::sync::mpsc::SyncSender<Result<OwnedFd, Refused>>,
    ),
}

/// A running broker. Dropping it stops the broker and ends its connections.
#[derive(Debug)]
pub struct BrokerHandle {
    shared: Arc<Shared>,
    exposed: Vec<ExposedPort>,
    stop: Option<oneshot::Sender<()>>,
    /// Says the broker has stopped deciding (its report is final). In a lock so that
    /// the handle can be shared (the micro-VM's VMM and relay threads both use it).
    done: Mutex<std::sync::mpsc::Receiver<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    cmds: mpsc::UnboundedSender<Cmd>,
    inward: Mutex<Option<std::sync::mpsc::Receiver<(u16, OwnedFd)>>>,
}

impl std::fmt::Debug for Cmd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cmd")
    }
}

impl BrokerHandle {
    /// The report so far.
    pub fn report(&self) -> NetworkReport {
        self.shared.recorder.snapshot()
    }

    /// Each decision as it happens.
    pub fn events(&self) -> broadcast::Receiver<NetworkEvent> {
        self.shared.recorder.subscribe()
    }

    /// A source of [`NetworkEvent`]s that outlives this handle (for a sandbox's view).
    pub fn events_source(&self) -> Events {
        Events(self.shared.recorder.clone())
    }

    /// Where the host reaches the sandbox's exposed ports.
    pub fn exposed(&self) -> &[ExposedPort] {
        &self.exposed
    }

    /// The answer to a DNS message the sandbox sent to [`BROKER_ADDR`]:53 (no I/O: the
    /// answer comes from the rules and the pool). `None` for garbage.
    pub fn dns_answer(&self, query: &[u8]) -> Option<Vec<u8>> {
        dns::answer(&self.shared, query)
    }

    /// A TCP connection of the sandbox to `dst` (as the sandbox addressed it: a pool
    /// address from DNS, an address a rule names, or the proxy at
    /// [`BROKER_ADDR`]:[`PROXY_PORT`]). Allowed: the sandbox's end of a connected
    /// `AF_UNIX` stream (non-blocking, close-on-exec) whose other end the broker serves.
    /// Refused: the rule that decided. Waits only for the broker's thread to decide.
    pub fn connect(&self, dst: SocketAddrV4) -> Result<OwnedFd, Refused> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let gone = || Refused {
            dst,
            rule: "the broker has stopped".into(),
        };
        self.cmds.send(Cmd::Connect(dst, tx)).map_err(|_| gone())?;
        rx.recv().map_err(|_| gone())?
    }

    /// Counts a packet of the sandbox that went nowhere (an in-process sandbox's UDP
    /// datagram to anything but the broker's DNS, or a DNS message it could not read),
    /// in the report's `dropped_packets` under `kind`, as the container's link counts
    /// what its stack drops.
    pub fn dropped(&self, kind: &str) {
        self.shared.recorder.dropped(kind);
    }

    /// Host clients of the exposed ports, for an in-process sandbox: each arrives as the
    /// sandbox port and the sandbox's end of an `AF_UNIX` stream. Once only.
    pub fn take_inward(&self) -> Option<std::sync::mpsc::Receiver<(u16, OwnedFd)>> {
        self.inward.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// Stops the broker and returns its final report. The broker's thread goes on
    /// closing its connections and link in the background: closing a TUN device waits
    /// for the kernel to unregister it (an RCU grace period, tens of milliseconds), which
    /// the caller need not wait for.
    pub fn stop(mut self) -> NetworkReport {
        self.halt();
        let _ = self.done.lock().unwrap_or_else(|e| e.into_inner()).recv();
        // Detached: it ends by itself once its runtime is dropped.
        self.thread.take();
        self.report()
    }

    fn halt(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

impl Drop for BrokerHandle {
    fn drop(&mut self) {
        self.halt();
        let _ = self.done.lock().unwrap_or_else(|e| e.into_inner()).recv();
        self.thread.take();
    }
}

fn unix_pair() -> std::io::Result<(tokio::net::UnixStream, OwnedFd)> {
    let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;
    ours.set_nonblocking(true)?;
    theirs.set_nonblocking(true)?;
    Ok((tokio::net::UnixStream::from_std(ours)?, theirs.into()))
}

fn run(
    shared: Arc<Shared>,
    link: Link,
    listeners: Vec<(u16, std::net::TcpListener)>,
    mut cmds: mpsc::UnboundedReceiver<Cmd>,
    stop: oneshot::Receiver<()>,
    vm_inward: std::sync::mpsc::Sender<(u16, OwnedFd)>,
    done: std::sync::mpsc::Sender<()>,
) {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        let _ = done.send(());
        return;
    };
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let (inward_tx, inward_rx) = mpsc::unbounded_channel();
        for (port, l) in listeners {
            let Ok(l) = tokio::net::TcpListener::from_std(l) else {
                continue;
            };
            let tx = inward_tx.clone();
            tokio::task::spawn_local(async move {
                while let Ok((s, _)) = l.accept().await {
                    let _ = s.set_nodelay(true);
                    if tx.send((port, s)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(inward_tx);
        match link {
            Link::Tun(fd) => {
                tokio::task::spawn_local(stack::run(shared.clone(), fd, inward_rx));
            }
            Link::InProcess => {
                tokio::task::spawn_local(in_process_inward(shared.clone(), inward_rx, vm_inward));
            }
        }
        let mut stop = stop;
        loop {
            tokio::select! {
                cmd = cmds.recv() => match cmd {
                    Some(Cmd::Connect(dst, reply)) => {
                        let _ = reply.send(connect(&shared, dst));
                    }
                    None => std::future::pending::<()>().await,
                },
                _ = &mut stop => break,
            }
        }
    });
    // No task runs any more. Dropping the tasks records the byte counts of the
    // connections still open (their tallies); then the report is final. The runtime
    // (and the link) goes after.
    drop(local);
    let _ = done.send(());
    drop(rt);
}

fn connect(shared: &Arc<Shared>, dst: SocketAddrV4) -> Result<OwnedFd, Refused> {
    let refused = |rule: String| Refused { dst, rule };
    let (ours, theirs) = unix_pair().map_err(|e| refused(format!("no socket pair: {e}")))?;
    if *dst.ip() == BROKER_ADDR {
        if dst.port() != PROXY_PORT {
            return Err(refused(format!(
                "the broker's address serves only DNS and the proxy (port {PROXY_PORT})"
            )));
        }
        tokio::task::spawn_local(proxy::serve(shared.clone(), ours));
        return Ok(theirs);
    }
    match shared.admit_ip(*dst.ip(), dst.port(), "vm") {
        Some(adm) => {
            tokio::task::spawn_local(relay::serve(shared.clone(), adm, ours));
            Ok(theirs)
        }
        None => Err(refused(match pool_or_ip(shared, dst) {
            Some(r) => r,
            None => "no allow rule matches".into(),
        })),
    }
}

fn pool_or_ip(shared: &Shared, dst: SocketAddrV4) -> Option<String> {
    shared
        .recorder
        .snapshot()
        .connections
        .iter()
        .rev()
        .find(|c| c.ip == *dst.ip() && c.port == dst.port())
        .map(|c| c.rule.clone())
}

async fn in_process_inward(
    shared: Arc<Shared>,
    mut rx: mpsc::UnboundedReceiver<(u16, tokio::net::TcpStream)>,
    out: std::sync::mpsc::Sender<(u16, OwnedFd)>,
) {
    while let Some((port, client)) = rx.recv().await {
        let Ok((ours, theirs)) = unix_pair() else {
            continue;
        };
        if out.send((port, theirs)).is_err() {
            break;
        }
        tokio::task::spawn_local(relay::serve_exposed(shared.clone(), port, ours, client));
    }
}

/// The sandbox-side addresses of the egress link, for backends that set it up.
pub fn link_addresses() -> (Ipv4Addr, Ipv4Addr, u8) {
    (
        SANDBOX_ADDR,
        BROKER_ADDR,
        sandbox_core::network::LINK_PREFIX,
    )
}

#[doc(hidden)]
pub fn _unused(_: SocketAddr) {}
