//! The container backend of hybrid-sandbox: a workload in its own user, mount, PID,
//! network, IPC, UTS and cgroup namespaces, on a fresh read-only tmpfs root holding only
//! the policy's mounts, with every capability dropped, no_new_privs, a default-deny
//! seccomp allowlist, Landlock rules mirroring the mounts, and limits through cgroups
//! (v2, else v1, else rlimits). Works as root and rootless.
//!
//! Use it through `hybrid-sandbox`; this crate's only public item is [`ContainerBackend`].

mod blueprint;
mod cgroup;
mod cgroup_freeze;
mod child;
mod execution;
mod landlock;
mod live;

#[cfg(feature = "fuzzing")]
pub mod fuzzing {
    //! Entry points for the fuzz targets (`fuzz/`).

    /// Reads `body` as the part of a container snapshot file after its header and
    /// before its checksum (a good header and checksum are put around it, so that the
    /// fuzzer reaches the entries' checks), for a plan with `/tmp` and `/work`.
    /// Whatever the bytes, it refuses them or gives entries inside those roots.
    pub fn decode_container_snapshot(body: &[u8]) -> bool {
        crate::live::fuzz_decode_snapshot(body)
    }
}
mod probe;
mod seccomp;
mod spawner;
mod sys;
mod tun;
mod unotify;

use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;

use async_trait::async_trait;
use sandbox_core::{
    Backend, BackendProbe, EnforcementLevel, EnforcementReport, Execution, Isolation, LandlockMode,
    LimitMechanism, LimitsReport, MountMode, Network, Plan, SeccompReport, SpawnError,
};
use tokio::io::AsyncReadExt;

use blueprint::{Blueprint, Inputs, Labels};
use child::{ErrorRecord, Stage};
use execution::{Guard, KillState};

/// The container backend. Cheap to create; host facts are detected once per process.
/// Loads a container snapshot file (the writable layer a live container's snapshot
/// saved) open as `file`, `name` naming it in errors, for sandboxes of `plan` (the
/// plan the snapshot was taken under: otherwise refused) and `options`. The file is
/// checked whole (magic, format, checksum, every entry's path and bounds) before
/// anything starts; each start writes its entries through the new sandbox's own file
/// API.
pub async fn load_snapshot_file(
    file: std::fs::File,
    name: &str,
    plan: Plan,
    options: sandbox_core::LiveOptions,
) -> Result<Arc<dyn sandbox_core::LiveSnapshot>, sandbox_core::LiveError> {
    live::load_snapshot(file, name, plan, options).await
}

#[derive(Debug, Default, Clone)]
pub struct ContainerBackend {
    _private: (),
}

impl ContainerBackend {
    /// A container backend.
    pub fn new() -> Self {
        ContainerBackend { _private: () }
    }
}

fn setup(step: &str, source: std::io::Error) -> SpawnError {
    SpawnError::Setup {
        step: step.to_string(),
        source,
    }
}

#[async_trait]
impl Backend for ContainerBackend {
    fn isolation(&self) -> Isolation {
        Isolation::Container
    }

    fn probe(&self) -> BackendProbe {
        probe::probe()
    }

    fn availability(&self) -> Result<(), String> {
        probe::quick().clone()
    }

    async fn spawn(&self, plan: Plan) -> Result<Box<dyn Execution>, SpawnError> {
        // One lifecycle: a run is a sandbox created for one exec, destroyed with it.
        live::run(plan).await
    }

    async fn create(
        &self,
        plan: Plan,
        options: sandbox_core::LiveOptions,
    ) -> Result<Arc<dyn sandbox_core::LiveSandbox>, SpawnError> {
        live::create(plan, options).await
    }
}

/// A sandbox whose init is running (a run's workload started, or a live sandbox ready).
pub(crate) struct Booted {
    pub(crate) guard: Guard,
    pub(crate) pidfd: OwnedFd,
    pub(crate) parent: blueprint::ParentEnds,
    pub(crate) enforcement: EnforcementReport,
    pub(crate) freezer: cgroup_freeze::Freezer,
    /// Answers every `connect(2)` of the sandbox's processes while it lives.
    pub(crate) connects: unotify::Supervisor,
    /// The egress broker (network `egress`): every exec of the sandbox shares it (one
    /// network namespace), for the sandbox's life.
    pub(crate) broker: Option<sandbox_egress::BrokerHandle>,
    /// The host uid and gid the workload's own ids map to, when they differ from this
    /// process's (as root: see `blueprint::ROOT_MODE_HOST_ID`).
    pub(crate) workload_host_ids: Option<(u32, u32)>,
}

/// The setup of every sandbox (a run's is a sandbox for one exec): Landlock, seccomp,
/// cgroup, the child spec, clone, id maps, and the wait until init serves its control
/// socket.
pub(crate) async fn boot(plan: &Plan, mode: live::Mode) -> Result<Booted, SpawnError> {
    if let Err(reason) = probe::quick() {
        return Err(SpawnError::Unavailable {
            isolation: Isolation::Container,
            reason: reason.clone(),
        });
    }
    let ll = landlock::prepare(plan.network)
        .map_err(|e| setup("creating the Landlock ruleset", std::io::Error::other(e)))?;
    if plan.landlock == LandlockMode::Required && ll.report.level != EnforcementLevel::Full {
        return Err(SpawnError::Unsupported(format!(
            "the policy requires Landlock, but this kernel (ABI {}) cannot enforce: {}",
            ll.report.abi,
            ll.report.missing.join(", ")
        )));
    }
    let filters = seccomp::filters(plan.seccomp_action);

    // The egress broker exists before the sandbox: its CA goes into the sandbox's files,
    // its host ports into the caller's view.
    let broker = match plan.network {
        Network::Egress => Some(
            sandbox_egress::Broker::new(plan.egress.clone().unwrap_or_default())
                .map_err(|e| setup("preparing the egress broker", std::io::Error::other(e)))?,
        ),
        _ => None,
    };
    let ca_bundle = broker.as_ref().and_then(sandbox_egress::Broker::ca_bundle);
    let cg_host = cgroup::host();
    let mut details = BTreeMap::new();
    let mut cgroup = cgroup::Cgroup::create(
        cg_host,
        &plan.limits,
        plan.cgroup_parent.as_deref(),
        &mut details,
    )
    .map_err(|e| setup("creating the sandbox's cgroup", e))?;
    let freezer = if mode == live::Mode::Live {
        cgroup_freeze::Freezer::attach(cg_host, cgroup.as_mut())
    } else {
        cgroup_freeze::Freezer::None("a run is not paused".into())
    };
    if let (Some(c), false) = (plan.limits.cpus, details.contains_key("cpus")) {
        // No rlimit stands in for a CPU share: refused, never ignored.
        return Err(SpawnError::Unsupported(format!(
            "the cpus limit ({c}) needs a cgroup with the cpu controller, and {}",
            match cg_host {
                cgroup::Host::Unusable { reason } => reason.clone(),
                _ => "none was set up".into(),
            }
        )));
    }
    let rlimit_memory = !details.contains_key("memory");
    let rlimit_pids = !details.contains_key("pids");
    let masks = ll.masks;
    // Init moves itself into the v1 leaves (see `Cgroup::v1_join_files`), or is cloned
    // into the v2 directory.
    let (cgroup_tasks, cgroup_v2) = match &cgroup {
        Some(cg) => (
            cg.v1_join_files()
                .map_err(|e| setup("opening the sandbox's cgroup for init to join", e))?,
            cg.v2_open()
                .map_err(|e| setup("opening the sandbox's cgroup v2 directory", e))?,
        ),
        None => (Vec::new(), None),
    };
    let mut bp = Blueprint::build(
        plan,
        Inputs {
            masks: ll.masks,
            ruleset: ll.fd,
            seccomp: &filters,
            rlimit_memory,
            rlimit_pids,
            ca_bundle,
            cgroup_tasks,
            cgroup_v2,
        },
    )?;
    live::prepare_spec(&mut bp, masks)?;
    let enforcement = report(
        plan,
        &bp,
        filters.allowed_syscalls,
        ll.report,
        cg_host,
        details,
    );
    let id_maps = bp.id_maps();
    let workload_host_ids = bp.root_mode.then_some((bp.host_uid, bp.host_gid));
    let Blueprint {
        spec,
        parent,
        child_ends,
        ruleset,
        labels,
        root_mode,
        ..
    } = bp;

    let spec = Arc::new(spec);
    let (pid, pidfd, in_cgroup) = spawner::clone_init(spec.clone())
        .await
        .map_err(|e| setup("cloning the sandbox's init", e))?;
    drop(child_ends);
    drop(ruleset);
    let kill = Arc::new(KillState::new(
        pidfd
            .try_clone()
            .map_err(|e| setup("duplicating the pidfd", e))?,
    ));
    let guard = Guard {
        kill: kill.clone(),
        cgroup,
        armed: true,
    };

    // Id maps and cgroup, then release the child.
    let proc = format!("/proc/{pid}");
    if !root_mode {
        std::fs::write(format!("{proc}/setgroups"), "deny")
            .map_err(|e| setup("writing setgroups", e))?;
    }
    for (file, map) in id_maps {
        std::fs::write(format!("{proc}/{file}"), map)
            .map_err(|e| setup(&format!("writing {file}"), e))?;
    }
    if let (Some(cg), false) = (&guard.cgroup, in_cgroup) {
        cg.add(pid)
            .map_err(|e| setup("moving the sandbox into its cgroup", e))?;
    }
    // SAFETY: writing one byte from a stack buffer to our pipe.
    if unsafe { libc::write(parent.sync_w.as_raw_fd(), [1u8].as_ptr().cast(), 1) } != 1 {
        return Err(setup(
            "starting the sandbox",
            std::io::Error::last_os_error(),
        ));
    }

    // Either an error record, or EOF once init serves requests.
    let err_r = parent
        .err_r
        .try_clone()
        .map_err(|e| setup("duplicating a pipe", e))?;
    if let Some(rec) = read_error(err_r)
        .await
        .map_err(|e| setup("waiting for the sandbox to start", e))?
    {
        return Err(describe(plan, &labels, rec));
    }
    // Init sent the listener of its user-notification filter before it began to serve.
    let connects = unotify::Supervisor::start(&parent.notify, plan.network == Network::None)
        .map_err(|e| setup("starting the connect supervisor", e))?;
    // And the egress link's TUN descriptor, made while init still had the caller's
    // identity.
    let broker = match (broker, &parent.tun_r) {
        (Some(b), Some(sock)) => {
            let fd = tun::receive_fd(sock)
                .map_err(|e| setup("receiving the sandbox's egress interface", e))?;
            Some(
                b.start(sandbox_egress::Link::Tun(fd))
                    .map_err(|e| setup("starting the egress broker", std::io::Error::other(e)))?,
            )
        }
        _ => None,
    };
    Ok(Booted {
        guard,
        pidfd,
        parent,
        enforcement,
        freezer,
        connects,
        broker,
        workload_host_ids,
    })
}

async fn read_error(fd: OwnedFd) -> std::io::Result<Option<ErrorRecord>> {
    let mut rx = tokio::net::unix::pipe::Receiver::from_owned_fd(fd)?;
    let mut buf = [0u8; ErrorRecord::SIZE];
    let mut got = 0;
    while got < buf.len() {
        match rx.read(&mut buf[got..]).await? {
            0 => break,
            n => got += n,
        }
    }
    Ok((got == buf.len()).then(|| ErrorRecord::from_bytes(&buf)))
}

fn describe(plan: &Plan, labels: &Labels, rec: ErrorRecord) -> SpawnError {
    let errno = std::io::Error::from_raw_os_error(rec.errno);
    let idx = rec.index as usize;
    match Stage::from_u32(rec.stage) {
        Some(Stage::Op) => match labels.ops.get(idx) {
            Some((src, target)) => SpawnError::Mount {
                source_path: src.clone(),
                target: target.clone(),
                source: errno,
            },
            None => setup("building the root filesystem", errno),
        },
        Some(Stage::Source) => SpawnError::Mount {
            source_path: labels.sources.get(idx).cloned().unwrap_or_default(),
            target: String::new(),
            source: errno,
        },
        Some(Stage::Overlay) => setup(
            "mounting the image's layers with overlayfs (needs Linux 5.11+ for overlayfs in a user \
             namespace, a layer store the sandbox user can traverse, and user xattrs on tmpfs: 6.6+)",
            errno,
        ),
        Some(Stage::Supervisor) => setup(
            "installing the seccomp user-notification filter that hands connect(2) to the \
             supervisor (needs Linux 5.0+), or sending its listener",
            errno,
        ),
        Some(Stage::Cgroup) => setup("moving the sandbox into its cgroup", errno),
        Some(Stage::Cwd) => setup(
            &format!("entering the working directory {}", plan.cwd),
            errno,
        ),
        Some(Stage::Network) if idx > 0 => setup(tun::Step::describe(rec.index), errno),
        Some(Stage::Landlock) => setup(
            &format!(
                "applying Landlock rules ({})",
                labels
                    .rules
                    .get(idx)
                    .map(String::as_str)
                    .unwrap_or("restrict")
            ),
            errno,
        ),
        Some(stage) => setup(&format!("{stage:?}").to_lowercase(), errno),
        None => setup("unknown", errno),
    }
}

fn report(
    plan: &Plan,
    bp: &Blueprint,
    allowed_syscalls: usize,
    landlock: sandbox_core::LandlockReport,
    cg: &cgroup::Host,
    mut details: BTreeMap<String, String>,
) -> EnforcementReport {
    let l = &plan.limits;
    let rl = |d: &mut BTreeMap<String, String>, k: &str, v: &str| {
        d.entry(k.into()).or_insert_with(|| v.into());
    };
    if l.memory.is_some() {
        rl(
            &mut details,
            "memory",
            "RLIMIT_AS per process (no usable cgroup)",
        );
    }
    if l.pids.is_some() {
        rl(&mut details, "pids", "RLIMIT_NPROC (no usable cgroup)");
    }
    if l.cpu_time.is_some() {
        rl(
            &mut details,
            "cpu_time",
            "RLIMIT_CPU per process (no usable cgroup)",
        );
    }
    if l.wall_time.is_some() {
        details.insert(
            "wall_time".into(),
            "supervisor timer, whole sandbox killed".into(),
        );
    }
    if l.output.is_some() {
        details.insert(
            "output".into(),
            "counted by the supervisor, whole sandbox killed".into(),
        );
    }
    if l.open_files.is_some() {
        details.insert("open_files".into(), "RLIMIT_NOFILE per process".into());
    }
    if l.file_size.is_some() {
        details.insert("file_size".into(), "RLIMIT_FSIZE per process".into());
    }
    details.insert(
        "tmp_size".into(),
        "size of the /tmp tmpfs, charged to the memory limit".into(),
    );
    let (ro, rw) = plan.mounts.iter().fold((0, 0), |(ro, rw), m| match m.mode {
        MountMode::Ro => (ro + 1, rw),
        MountMode::Rw => (ro, rw + 1),
    });
    EnforcementReport {
        isolation: Isolation::Container,
        namespaces: ["user", "mount", "pid", "network", "ipc", "uts", "cgroup"]
            .iter()
            .map(|n| {
                let joined = match *n {
                    "network" => &plan.netns,
                    "ipc" => &plan.ipcns,
                    "uts" => &plan.utsns,
                    _ => &None,
                };
                match joined {
                    Some(p) => format!("{n} (joined: {})", p.display()),
                    None => n.to_string(),
                }
            })
            .collect(),
        rootless: !bp.root_mode,
        host_uid: Some(bp.host_uid),
        capabilities: "all dropped (bounding, ambient, permitted, effective, inheritable; secure bits locked)".into(),
        no_new_privs: true,
        seccomp: SeccompReport {
            enforced: true,
            applies_to: "workload".into(),
            profile: seccomp::PROFILE_NAME.into(),
            action: plan.seccomp_action,
            allowed_syscalls,
        },
        landlock,
        limits: LimitsReport {
            mechanism: if details.values().any(|v| v.starts_with("cgroup")) { cg.mechanism() } else { LimitMechanism::Rlimit },
            details,
            note: match cg {
                cgroup::Host::Unusable { reason } => Some(reason.clone()),
                _ => None,
            },
        },
        network: plan.network,
        network_detail: format!(
            "{}; every connect(2) is made by the supervisor, which reaches pathname UNIX \
             sockets only on the sandbox's own filesystems (its /tmp, an image's layer), never a \
             host socket through a mount; abstract UNIX names are looked up in the sandbox's own \
             network namespace; no UNIX datagram sockets (their sendto/sendmsg could name a host \
             socket)",
            match plan.network {
                Network::None => "own network namespace with no interface up (not even \
                                  loopback): no route anywhere; TCP bind and connect refused \
                                  (Landlock, and the supervisor for connect)",
                Network::Loopback => "own network namespace with only its own loopback up: \
                                      the host's loopback and network are unreachable",
                Network::Egress => "own network namespace with its own loopback and one TUN \
                                    interface whose packets the egress broker terminates: DNS \
                                    and every TCP connection decided by the policy's rules \
                                    (the outcome's network section), everything else dropped; \
                                    no route to the host's interfaces or loopback",
            }
        ),
        filesystem: match &plan.root {
            Some(img) => format!(
                "image {} ({} layers, overlayfs) with a throwaway writable layer; {ro} read-only and {rw} \
                 read-write mounts (no FIFO, socket, device node or set-id mode made in them); \
                 private /proc with host facts masked and /proc/sys read-only; /dev with null, zero, full, random, urandom and a private devpts (/dev/pts, /dev/ptmx); /tmp tmpfs",
                img.name,
                img.layers.len()
            ),
            None => format!(
                "read-only tmpfs root; {ro} read-only and {rw} read-write mounts (from {} entries; no FIFO, \
                 socket, device node or set-id mode made in them); private /proc with host facts masked \
                 and /proc/sys read-only; \
                 /dev with null, zero, full, random, urandom and a private devpts (/dev/pts, /dev/ptmx); /tmp tmpfs; \
                 nosuid and nodev everywhere but the devices",
                plan.mounts.len()
            ),
        },
        vm: None,
        mounts: bp.mounts.clone(),
    }
}
