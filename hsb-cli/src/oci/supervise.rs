//! The container's supervisor: the one host process an engine sees as the container's
//! process. `create` starts it (a re-exec of this binary, `hsb oci _supervise`, with the
//! stdio the engine handed over); it creates the live sandbox, serves the control
//! socket in the state directory, runs config.json's process on `start`, and exits with
//! that process's status (dying of the same signal if it was killed), after destroying
//! the sandbox. A signal sent to it goes to the container's process; if the engine's
//! shim (its parent once `create` exits) dies, it dies too (PDEATHSIG), and the
//! sandbox with it.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use hybrid_sandbox::{ExecRequest, Live, LiveOptions, Stdin, TtySize};
use tokio::sync::{mpsc, oneshot};

use super::config::{Container, ProcessSpec};
use super::ctl::{self, Reply, Request};
use super::relay::{self, Cmd, Io};
use super::state::{self, Dir, Exit, Record};
use super::{OciError, Runtime};

/// What `create` passes to the supervisor.
#[derive(Debug, Clone)]
pub(crate) struct Args {
    pub(crate) id: String,
    pub(crate) bundle: PathBuf,
    pub(crate) console_socket: Option<PathBuf>,
    /// Where to write "ok" (or the error) once the sandbox is ready.
    pub(crate) ready_fd: RawFd,
    /// Start the process at once (`run`).
    pub(crate) start: bool,
}

/// What starts the container's process, or ends it before it starts.
enum Begin {
    Start(oneshot::Sender<Result<(), String>>),
    Kill(i32),
}

enum Phase {
    Created(Option<oneshot::Sender<Begin>>),
    Running(mpsc::UnboundedSender<Cmd>),
    Stopped,
}

struct Shared {
    dir: Dir,
    live: Live,
    rt: tokio::runtime::Handle,
    phase: Mutex<Phase>,
    /// Exec supervisors (their host pids) and their command channels.
    execs: Mutex<Vec<(i32, mpsc::UnboundedSender<Cmd>)>>,
    user: (u32, u32),
    /// Its supplementary groups besides the gid (every process of it has them).
    groups: Vec<u32>,
    /// config.json's poststart hooks, run once the process has started.
    poststart: Poststart,
    /// The container's memory limit mirrored on `linux.cgroupsPath` (cgroup v1).
    memory_mirror: Option<super::cgroups::MemoryMirror>,
}

/// What the poststart hooks need: the hooks, the state they read, the runtime's
/// network namespace, and the log.
struct Poststart {
    hooks: Vec<super::hooks::Hook>,
    state: serde_json::Value,
    home_netns: Option<OwnedFd>,
    rt_cfg: Runtime,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Reports the outcome of setup to `create` and closes the pipe.
fn report(fd: RawFd, r: &Result<(), OciError>) {
    // SAFETY: `create` passed this descriptor to us for this one write; we own it now.
    let f = unsafe { OwnedFd::from_raw_fd(fd) };
    let msg = match r {
        Ok(()) => "ok".to_string(),
        Err(e) => e.to_string(),
    };
    let _ = nix::unistd::write(&f, msg.as_bytes());
}

/// The supervisor's main: never returns.
pub(crate) fn main(rt_cfg: &Runtime, a: Args) -> ! {
    // `create` (or `run`), which waits for the report below: read before the report,
    // since `create` may exit, and this process be reparented, right after it.
    let creator = nix::unistd::getppid();
    let _ = nix::unistd::setsid();
    let dir = match Dir::new(&rt_cfg.root, &a.id) {
        Ok(d) => d,
        Err(e) => {
            report(a.ready_fd, &Err(e));
            fail_exit()
        }
    };
    let mut container = match super::config::load(&a.bundle, rt_cfg.isolation) {
        Ok(c) => c,
        Err(e) => {
            report(a.ready_fd, &Err(OciError::config(e)));
            fail_exit()
        }
    };
    // A container may ask more open files than this process's hard limit (a Podman
    // pod's infra container asks 1048576, Docker's default is as high): root raises
    // its own, as runc does, and the sandbox inherits room for it.
    if let Some(n) = container.workload.limits.open_files {
        if let Err(e) = super::config::raise_nofile(n) {
            report(
                a.ready_fd,
                &Err(OciError::msg(format!("config.json: process.rlimits: {e}"))),
            );
            fail_exit()
        }
    }
    // Before any thread exists: see `network_for_hooks`.
    let home_netns = match network_for_hooks(&mut container) {
        Ok(h) => h,
        Err(e) => {
            report(a.ready_fd, &Err(e));
            fail_exit()
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            report(
                a.ready_fd,
                &Err(OciError::msg(format!("starting the runtime: {e}"))),
            );
            fail_exit()
        }
    };
    let setup = rt.block_on(setup(rt_cfg, &a, &dir, container, home_netns.as_ref()));
    let (shared, container, pty) = match setup {
        Ok(x) => x,
        Err(e) => {
            report(a.ready_fd, &Err(e));
            fail_exit()
        }
    };
    if pty.is_some() {
        // The container's stdio is the terminal: keep none of the engine's.
        if let Err(e) = super::console::stdio_to_null() {
            report(
                a.ready_fd,
                &Err(OciError::msg(format!(
                    "cannot let go of the engine's stdio: {e}"
                ))),
            );
            let _ = rt.block_on(shared.live.destroy());
            fail_exit()
        }
    }
    let live = shared.live.clone();
    let netns = container.workload.netns.clone();
    let id = a.id.clone();
    // Engines find a container's namespaces through /proc/PID/ns of the pid in its
    // state, this process: the CRI plugin and Podman put a pod's containers in the
    // network, IPC and UTS namespaces of its sandbox container that way. So the main
    // thread (the one /proc/PID/ns shows) enters the sandbox's and then only waits;
    // the supervisor goes on in a thread made before, in this process's own
    // namespaces, as are the threads it makes.
    let (entered_tx, entered_rx) = std::sync::mpsc::channel::<Result<(), OciError>>();
    let body = std::thread::spawn(move || {
        if let Ok(Err(e)) | Err(e) = entered_rx
            .recv()
            .map_err(|_| OciError::msg("the supervisor's main thread is gone"))
        {
            let _ = rt.block_on(shared.live.destroy());
            report(a.ready_fd, &Err(e));
            fail_exit()
        }
        supervise(a, dir, rt, shared, container, pty, creator)
    });
    let entered = match enter_for_engines(&live, netns.as_deref()) {
        // Without privileges (a rootless engine) setns(2) is refused: engines then
        // find this process's namespaces, as before hsb's sandbox existed; hsb never
        // joins a caller's own IPC or UTS namespace, so a pod's container fails
        // rather than share them.
        Err(e) if !nix::unistd::geteuid().is_root() => {
            super::log::warn(rt_cfg, &format!("{id}: {e}"), false);
            Ok(())
        }
        r => r,
    };
    let _ = entered_tx.send(entered);
    drop(live);
    // The body ends the process; it returns only by panicking.
    let _ = body.join();
    fail_exit()
}

/// Moves the calling (main) thread into the container's network, IPC and UTS
/// namespaces: the sandbox's own, or those it joined. A micro-VM's guest has none on
/// the host: the thread enters the network namespace the VMM was given, else fresh
/// ones, so that a container joining this pid's never gets the host's.
fn enter_for_engines(live: &Live, netns: Option<&Path>) -> Result<(), OciError> {
    use nix::sched::CloneFlags as F;
    let failed = |what: &str, e: &dyn std::error::Error| {
        let mut msg = format!(
            "cannot put the container's pid in its {what} namespaces, where engines find them: {e}"
        );
        let mut cause = e.source();
        while let Some(c) = cause {
            msg.push_str(&format!(": {c}"));
            cause = c.source();
        }
        OciError::msg(msg)
    };
    if live.isolation() == hybrid_sandbox::Isolation::Container {
        live.enter_namespaces()
            .map_err(|e| failed("network, IPC and UTS", &e))?;
        // Podman's `cp` and `top` reach a running container through /proc/PID/root
        // and /proc/PID/ns/mnt: the container's filesystem and /proc, never the host's
        // (`podman cp` wrote to the host's root, `podman top` listed its processes).
        return live
            .enter_mount_namespace()
            .map_err(|e| failed("mount", &e));
    }
    match netns {
        Some(p) => std::fs::File::open(p)
            .map_err(|e| nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))
            .and_then(|f| nix::sched::setns(&f, F::CLONE_NEWNET)),
        None => nix::sched::unshare(F::CLONE_NEWNET),
    }
    .map_err(|e| failed("network", &e))?;
    nix::sched::unshare(F::CLONE_NEWIPC | F::CLONE_NEWUTS)
        .map_err(|e| failed("IPC and UTS", &e))?;
    empty_root().map_err(|e| failed("mount", &e))
}

/// Gives the calling (main) thread a mount namespace of its own whose root is an
/// empty, read-only tmpfs: a micro-VM's files live in its guest, and an engine that
/// looks for the container's filesystem through /proc/PID/root (`podman cp`) must find
/// nothing it can write, never the host's root.
fn empty_root() -> nix::Result<()> {
    use nix::mount::{mount, MsFlags};
    use nix::sched::CloneFlags as F;
    nix::sched::unshare(F::CLONE_FS | F::CLONE_NEWNS)?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )?;
    mount(
        Some("hsb-empty"),
        "/",
        Some("tmpfs"),
        MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("size=4k,mode=0555"),
    )?;
    // The tmpfs lies over the old root: looked up from it, "/" is the tmpfs.
    nix::unistd::chdir("/")?;
    nix::unistd::chroot(".")
}

/// The supervisor once its sandbox is made: reports to `create`, serves the engine's
/// requests, runs the container's process, and ends this process as it ended.
fn supervise(
    a: Args,
    dir: Dir,
    rt: tokio::runtime::Runtime,
    shared: Arc<Shared>,
    container: Container,
    pty: Option<super::console::Pty>,
    creator: nix::unistd::Pid,
) -> ! {
    let (begin_tx, begin_rx) = oneshot::channel();
    *lock(&shared.phase) = Phase::Created(Some(begin_tx));
    let listener = match ctl::listen(&dir.socket()) {
        Ok(l) => l,
        Err(e) => {
            let _ = rt.block_on(shared.live.destroy());
            report(
                a.ready_fd,
                &Err(OciError::msg(format!(
                    "cannot listen on {}: {e}",
                    dir.socket().display()
                ))),
            );
            fail_exit()
        }
    };
    dir.set_status("created");
    {
        let shared = shared.clone();
        std::thread::spawn(move || serve(shared, listener));
    }
    report(a.ready_fd, &Ok(()));
    watch_parent(creator);
    let exit = rt.block_on(run(
        shared.clone(),
        container.process,
        pty,
        begin_rx,
        a.start,
    ));
    let _ = dir.write_file("exit", &serde_json::to_vec(&exit).unwrap_or_default());
    dir.set_status("stopped");
    *lock(&shared.phase) = Phase::Stopped;
    let _ = rt.block_on(shared.live.destroy());
    let _ = std::fs::remove_file(dir.socket());
    super::cgroups::leave();
    exit_like(exit)
}

/// With `prestart`/`createRuntime` hooks and a new network namespace asked for, the
/// engine sets the container's network up from a hook (Docker's `libnetwork-setkey`),
/// through `/proc/PID/ns/net` of the state's pid: this process. So this process moves
/// into a fresh network namespace (loopback up) and the sandbox joins it, instead of
/// making its own; the hooks themselves run in the runtime's namespace, returned here.
fn network_for_hooks(c: &mut Container) -> Result<Option<OwnedFd>, OciError> {
    if c.hooks.create.is_empty() || !c.own_netns {
        return Ok(None);
    }
    let home = std::fs::File::open("/proc/self/ns/net")
        .map_err(|e| OciError::msg(format!("cannot open this process's network namespace: {e}")))?;
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| {
        OciError::msg(format!(
            "cannot make the container's network namespace for its hooks: {e}"
        ))
    })?;
    loopback_up()
        .map_err(|e| OciError::msg(format!("cannot bring the container's loopback up: {e}")))?;
    c.workload.netns = Some(PathBuf::from(format!(
        "/proc/{}/ns/net",
        std::process::id()
    )));
    Ok(Some(OwnedFd::from(home)))
}

/// `ip link set lo up` in this thread's network namespace.
fn loopback_up() -> std::io::Result<()> {
    let sock = nix::sys::socket::socket(
        nix::sys::socket::AddressFamily::Inet,
        nix::sys::socket::SockType::Datagram,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    // SAFETY: an all-zero ifreq is a valid value; the name is set below.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *d = *s as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads the interface named in `req` and writes its flags into
    // `req`, which lives for the call; `sock` is an open socket.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the union's flags member was just written by the kernel.
    unsafe { req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    // SAFETY: SIOCSIFFLAGS reads `req` (name and flags), which lives for the call.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

async fn setup(
    rt_cfg: &Runtime,
    a: &Args,
    dir: &Dir,
    mut container: Container,
    home_netns: Option<&OwnedFd>,
) -> Result<(Arc<Shared>, Container, Option<super::console::Pty>), OciError> {
    let pty = if container.process.terminal {
        let Some(sock) = &a.console_socket else {
            return Err(OciError::msg(
                "process.terminal is true: a --console-socket is needed to hand the terminal over",
            ));
        };
        let pty = super::console::open(container.process.size)
            .map_err(|e| OciError::msg(format!("cannot open a terminal: {e}")))?;
        super::console::send_master(sock, &pty.master, &pty.name).map_err(|e| {
            OciError::msg(format!(
                "cannot send the terminal to the console socket {}: {e}",
                sock.display()
            ))
        })?;
        super::console::make_controlling(&pty.slave)
            .map_err(|e| OciError::msg(format!("cannot take the terminal: {e}")))?;
        Some(pty)
    } else {
        None
    };
    if let Some(path) = container.cgroups_path.clone() {
        // Before the sandbox: a micro-VM's memory is charged where it is made.
        let joined = super::cgroups::join(&path);
        if let Err(e) = dir.write_cgroups(&joined.made) {
            super::cgroups::remove(&joined.made);
            return Err(OciError::msg(format!(
                "cannot write the container's state: {e}"
            )));
        }
        if joined.failed.is_empty() {
            if let Some(set) = &container.cpuset {
                // Before the sandbox, whose processes inherit it.
                let (d, _) = super::cgroups::set_cpuset(std::process::id() as i32, &path, set)
                    .map_err(|e| OciError::msg(format!("linux.resources.cpu.cpus/mems: {e}")))?;
                container.notes.push(format!(
                    "linux.resources.cpu.cpus/mems: set on {} (cgroup v1 cpuset)",
                    d.display()
                ));
            }
            // The sandbox's own cgroup (a container's) is made inside it, so the engine's
            // statistics and a pod's limits take in the container's processes.
            container.workload.cgroup_parent = Some(path);
        } else {
            super::log::warn(
                rt_cfg,
                &format!(
                    "{}: linux.cgroupsPath not joined everywhere (engines read this pid's cgroups for its statistics; hsb's limits hold anyway): {}",
                    a.id,
                    joined.failed.join("; ")
                ),
                false,
            );
        }
    }
    if container.cpuset.is_some() && container.workload.cgroup_parent.is_none() {
        return Err(OciError::msg(
            "linux.resources.cpu.cpus/mems: CPU sets are set on linux.cgroupsPath, which is not given or could not be joined in every hierarchy (see the log)",
        ));
    }
    super::rootfs::resolve_sources(&mut container)?;
    super::rootfs::prepare(&container)?;
    super::rootfs::check_program(&container)?;
    if !container.sysctl.is_empty() {
        apply_sysctls(&container)?;
    }
    let sandbox = rt_cfg.sandbox()?;
    let live = sandbox
        .create(container.workload.clone(), LiveOptions::default())
        .await
        .map_err(|e| OciError::msg(format!("creating the sandbox: {}", e.chain())))?;
    let memory_mirror = match &container.workload.cgroup_parent {
        None => None,
        Some(path) => {
            let found = super::cgroups::MemoryMirror::find(std::process::id(), path)
                .and_then(|m| m.map(|m| m.apply().map(|()| m)).transpose());
            match found {
                Ok(m) => m,
                Err(e) => {
                    let _ = live.destroy().await;
                    return Err(OciError::msg(format!(
                        "linux.resources.memory.limit: cannot set it on linux.cgroupsPath: {e}"
                    )));
                }
            }
        }
    };
    if let Some(m) = memory_mirror.as_ref() {
        if container.workload.limits.memory.is_some() {
            container.notes.push(format!(
                "linux.resources.memory.limit: also set on {} (where engines watch for OOM kills), which holds the supervisor too",
                m.dir.display()
            ));
        }
    }
    let pid = std::process::id() as i32;
    let rec = Record {
        id: a.id.clone(),
        bundle: a.bundle.clone(),
        created: state::now_rfc3339(),
        pid,
        pid_start: state::start_time(pid).unwrap_or(0),
        annotations: container.annotations.clone(),
        isolation: live.isolation().to_string(),
        decision: serde_json::to_value(live.decision()).unwrap_or_default(),
        enforcement: serde_json::to_value(live.enforcement()).unwrap_or_default(),
        notes: container.notes.clone(),
        poststop: container.hooks.poststop.clone(),
    };
    super::log::info(
        rt_cfg,
        &format!(
            "container {}: {} isolation ({}); {}",
            a.id,
            rec.isolation,
            live.decision().reasons.join("; "),
            if rec.notes.is_empty() {
                "config.json applied as written".to_string()
            } else {
                format!("enforced differently: {}", rec.notes.join("; "))
            }
        ),
    );
    if let Err(e) = dir.write_record(&rec) {
        let _ = live.destroy().await;
        return Err(OciError::msg(format!(
            "cannot write the container's state: {e}"
        )));
    }
    if !container.hooks.create.is_empty() {
        let state = super::hooks::state(&a.id, "creating", pid, &a.bundle, &container.annotations);
        let hooks = container.hooks.create.clone();
        let home = home_netns.map(|h| h.try_clone()).transpose().map_err(|e| {
            OciError::msg(format!("cannot keep the runtime's network namespace: {e}"))
        })?;
        let ran =
            tokio::task::spawn_blocking(move || super::hooks::run(&hooks, &state, home.as_ref()))
                .await
                .unwrap_or_else(|e| Err(e.to_string()));
        if let Err(e) = ran {
            let _ = live.destroy().await;
            return Err(OciError::msg(format!("hook failed: {e}")));
        }
    }
    let shared = Arc::new(Shared {
        dir: dir.clone(),
        live,
        rt: tokio::runtime::Handle::current(),
        phase: Mutex::new(Phase::Stopped),
        execs: Mutex::new(Vec::new()),
        user: container.process.user,
        groups: container.process.groups.clone(),
        poststart: Poststart {
            hooks: container.hooks.poststart.clone(),
            state: super::hooks::state(&a.id, "running", pid, &a.bundle, &container.annotations),
            home_netns: home_netns.map(|h| h.try_clone()).transpose().map_err(|e| {
                OciError::msg(format!("cannot keep the runtime's network namespace: {e}"))
            })?,
            rt_cfg: rt_cfg.clone(),
        },
        memory_mirror,
    });
    Ok((shared, container, pty))
}

/// Sets `net.*` sysctls in the network namespace the engine gave.
fn apply_sysctls(c: &Container) -> Result<(), OciError> {
    let Some(ns) = c.workload.netns.clone() else {
        return Err(OciError::msg(
            "config.json: linux.sysctl: net.* sysctls need the engine's network namespace (linux.namespaces with a network path)",
        ));
    };
    let list = c.sysctl.clone();
    std::thread::spawn(move || -> Result<(), OciError> {
        let f = std::fs::File::open(&ns).map_err(|e| {
            OciError::msg(format!(
                "config.json: linux.namespaces: {}: {e}",
                ns.display()
            ))
        })?;
        nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| {
            OciError::msg(format!(
                "config.json: linux.namespaces: joining {}: {e}",
                ns.display()
            ))
        })?;
        for (k, v) in list {
            if k.contains("..") || k.contains('/') {
                return Err(OciError::msg(format!(
                    "config.json: linux.sysctl.{k}: not a sysctl name"
                )));
            }
            let path = format!("/proc/sys/{}", k.replace('.', "/"));
            std::fs::write(&path, &v)
                .map_err(|e| OciError::msg(format!("config.json: linux.sysctl.{k}: {e}")))?;
        }
        Ok(())
    })
    .join()
    .unwrap_or_else(|_| Err(OciError::msg("setting sysctls failed")))
}

/// Arms PDEATHSIG once `create` (`first`, the parent this process started with) has
/// exited and this process belongs to the engine's
/// shim (a child subreaper) or to init: the shim's death then ends the container.
///
/// The parent-death signal is a property of the *thread* that set it (the kernel looks
/// at each live thread's `pdeath_signal` when the parent dies): the watcher thread
/// therefore stays alive, parked, for the life of the process. Returning from it
/// would silently disarm the signal (a `kill -9` of conmon or containerd's shim then
/// left the supervisor and the sandbox running).
fn watch_parent(first: nix::unistd::Pid) {
    std::thread::spawn(move || {
        loop {
            if nix::unistd::getppid() != first {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let now = nix::unistd::getppid();
        if nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL).is_err()
            || nix::unistd::getppid() != now
        {
            // Not armed, or the new parent died before it was: nothing would end the
            // container with its shim.
            std::process::exit(137);
        }
        loop {
            std::thread::park();
        }
    });
}

fn request(p: &ProcessSpec, stdin: bool) -> ExecRequest {
    let mut r = ExecRequest::new(p.argv.clone());
    r.env = p.env.clone();
    r.cwd = Some(p.cwd.clone());
    r.stdin = if stdin { Stdin::Stream } else { Stdin::Null };
    if p.terminal {
        r.tty = Some(p.size.unwrap_or_default());
    }
    r
}

/// Waits for `start` (or a kill), runs the process, and returns how it ended.
async fn run(
    shared: Arc<Shared>,
    process: ProcessSpec,
    pty: Option<super::console::Pty>,
    begin: oneshot::Receiver<Begin>,
    start_now: bool,
) -> Exit {
    let reply = if start_now {
        None
    } else {
        match begin.await {
            Ok(Begin::Start(reply)) => Some(reply),
            Ok(Begin::Kill(sig)) => {
                return Exit {
                    code: None,
                    signal: Some(sig),
                }
            }
            Err(_) => {
                return Exit {
                    code: None,
                    signal: Some(libc::SIGKILL),
                }
            }
        }
    };
    let io = match &pty {
        Some(p) => {
            let dup = |what: &str| {
                p.slave
                    .try_clone()
                    .map_err(|e| format!("cannot share the terminal ({what}): {e}"))
            };
            match (dup("stdin"), dup("stdout"), dup("stderr")) {
                (Ok(i), Ok(o), Ok(e)) => Ok(Io {
                    stdin: Some(i),
                    stdout: o,
                    stderr: e,
                }),
                (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => Err(e),
            }
        }
        None => own_stdio(),
    };
    let io = match io {
        Ok(io) => io,
        Err(e) => return failed_start(reply, e),
    };
    // Signals, and the engine's resizes (SIGWINCH), are taken from now on: one that
    // came between the size read below and the process's start would be lost (an
    // engine sizes the terminal as it attaches, which may be as `start` runs); they
    // wait in the channel until the process runs.
    let (tx, rx) = mpsc::unbounded_channel();
    forward_signals(tx.clone(), pty.as_ref().map(|p| p.slave.as_raw_fd()));
    let mut req = request(&process, io.stdin.is_some());
    if let (Some(p), Some(tty)) = (&pty, req.tty.as_mut()) {
        // The engine may have sized the terminal between create and start.
        if let Some(size) = super::console::size(&p.slave) {
            *tty = size;
        }
    }
    let exec = match shared.live.exec_streaming(req).await {
        Ok(e) => e,
        Err(e) => {
            let status = e.exit_status();
            let msg = format!("starting the container's process: {}", e.chain());
            let exit = Exit {
                code: Some(if status == 125 { 1 } else { status }),
                signal: None,
            };
            if let Some(r) = reply {
                let _ = r.send(Err(msg));
            } else {
                eprintln!("hsb: {msg}");
            }
            return exit;
        }
    };
    *lock(&shared.phase) = Phase::Running(tx.clone());
    shared.dir.set_status("running");
    // poststart: once the process runs, before `start` (or `run`) goes on.
    if !shared.poststart.hooks.is_empty() {
        let s = Arc::clone(&shared);
        let _ = tokio::task::spawn_blocking(move || {
            let p = &s.poststart;
            if let Err(e) = super::hooks::run(&p.hooks, &p.state, p.home_netns.as_ref()) {
                super::log::warn(&p.rt_cfg, &format!("poststart hook failed: {e}"), false);
            }
        })
        .await;
    }
    if let Some(r) = reply {
        let _ = r.send(Ok(()));
    }
    match relay::drive(exec, io, rx).await {
        Ok(o) => relay::exit_of(&o),
        Err(_) => Exit {
            code: None,
            signal: Some(libc::SIGKILL),
        },
    }
}

fn failed_start(reply: Option<oneshot::Sender<Result<(), String>>>, e: String) -> Exit {
    if let Some(r) = reply {
        let _ = r.send(Err(e));
    }
    Exit {
        code: Some(1),
        signal: None,
    }
}

/// This process's stdio (the engine's), for the container's process.
fn own_stdio() -> Result<Io, String> {
    let dup = |fd: RawFd| -> Result<OwnedFd, String> {
        // SAFETY: 0, 1 and 2 are open for the life of the process (the engine's
        // stdio); borrowing them to duplicate is sound.
        let b = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        b.try_clone_to_owned()
            .map_err(|e| format!("the engine's stdio (fd {fd}): {e}"))
    };
    let stdin = dup(0)?;
    Ok(Io {
        stdin: (!relay::is_dev_null(&stdin)).then_some(stdin),
        stdout: dup(1)?,
        stderr: dup(2)?,
    })
}

/// Signals sent to the supervisor go to the container's process; SIGWINCH (the
/// engine resized the terminal) becomes a resize.
fn forward_signals(tx: mpsc::UnboundedSender<Cmd>, tty: Option<RawFd>) {
    use tokio::signal::unix::{signal, SignalKind};
    for sig in [
        libc::SIGTERM,
        libc::SIGINT,
        libc::SIGHUP,
        libc::SIGQUIT,
        libc::SIGUSR1,
        libc::SIGUSR2,
        libc::SIGWINCH,
    ] {
        let Ok(mut s) = signal(SignalKind::from_raw(sig)) else {
            continue;
        };
        let tx = tx.clone();
        tokio::spawn(async move {
            while s.recv().await.is_some() {
                let cmd = match (sig, tty) {
                    (libc::SIGWINCH, Some(fd)) => {
                        // SAFETY: the pty slave stays open for the supervisor's life.
                        let b = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
                        match super::console::size(&b) {
                            Some(size) => Cmd::Resize(size),
                            None => continue,
                        }
                    }
                    (libc::SIGWINCH, None) => continue,
                    _ => Cmd::Signal(sig),
                };
                if tx.send(cmd).is_err() {
                    return;
                }
            }
        });
    }
}

/// Ends this process after a failure: the cgroup directories it made go first.
fn fail_exit() -> ! {
    super::cgroups::leave();
    std::process::exit(1)
}

/// Ends this process the way the container's process ended.
fn exit_like(e: Exit) -> ! {
    if let Some(sig) = e.signal {
        if let Ok(s) = nix::sys::signal::Signal::try_from(sig) {
            // SAFETY: restoring the default action of a signal; no handler is installed.
            let _ = unsafe { nix::sys::signal::signal(s, nix::sys::signal::SigHandler::SigDfl) };
            let mut set = nix::sys::signal::SigSet::empty();
            set.add(s);
            let _ = set.thread_unblock();
            let _ = nix::sys::signal::raise(s);
        }
        std::process::exit(128 + sig)
    }
    std::process::exit(e.code.unwrap_or(255))
}

/// Serves the control socket: one thread per connection.
fn serve(shared: Arc<Shared>, listener: OwnedFd) {
    loop {
        match ctl::accept(&listener) {
            Ok(conn) => {
                let shared = shared.clone();
                std::thread::spawn(move || handle(shared, conn));
            }
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
        }
    }
}

fn handle(shared: Arc<Shared>, conn: OwnedFd) {
    // Only the container's owner (the caller that created it) or root may ask.
    let me = nix::unistd::geteuid().as_raw();
    match ctl::peer(&conn) {
        Some((uid, _)) if uid == me || uid == 0 => {}
        _ => return,
    }
    let Ok(Some((req, fds))) = ctl::recv::<Request>(&conn) else {
        return;
    };
    let reply = match req {
        Request::Start => start(&shared),
        Request::Kill { signal, all } => kill(&shared, signal, all),
        Request::Pause => match shared.rt.block_on(shared.live.pause()) {
            Ok(()) => {
                shared.dir.set_status("paused");
                Reply::Ok
            }
            Err(e) => Reply::Error(e.chain()),
        },
        Request::Resume => match shared.rt.block_on(shared.live.resume()) {
            Ok(()) => {
                shared.dir.set_status("running");
                Reply::Ok
            }
            Err(e) => Reply::Error(e.chain()),
        },
        Request::Update { limits } => update(&shared, &limits),
        Request::Ps => {
            let mut pids = vec![std::process::id() as i32];
            pids.extend(lock(&shared.execs).iter().map(|(p, _)| *p));
            Reply::Pids(pids)
        }
        Request::Exec { process } => return exec(shared, conn, process, fds),
        Request::Signal { .. } | Request::Resize { .. } => {
            Reply::Error("no exec on this connection".into())
        }
    };
    let _ = ctl::send(&conn, &reply, &[]);
}

/// New limits for the live sandbox; a new memory limit is mirrored on
/// `linux.cgroupsPath` (see `cgroups::MemoryMirror`).
fn update(shared: &Shared, limits: &hybrid_sandbox::Limits) -> Reply {
    if let Err(e) = shared.rt.block_on(shared.live.update_limits(limits)) {
        return Reply::Error(format!("updating the container's limits: {}", e.chain()));
    }
    match (&shared.memory_mirror, limits.memory) {
        (Some(m), Some(_)) => match m.apply() {
            Ok(()) => Reply::Ok,
            Err(e) => Reply::Error(format!(
                "the sandbox's memory limit changed; setting it on linux.cgroupsPath failed: {e}"
            )),
        },
        _ => Reply::Ok,
    }
}

fn start(shared: &Shared) -> Reply {
    let tx = match &mut *lock(&shared.phase) {
        Phase::Created(tx) => tx.take(),
        Phase::Running(_) => {
            return Reply::Error("cannot start an already running container".into())
        }
        Phase::Stopped => return Reply::Error("cannot start a container that has stopped".into()),
    };
    let Some(tx) = tx else {
        return Reply::Error("the container is already starting".into());
    };
    let (rtx, rrx) = oneshot::channel();
    if tx.send(Begin::Start(rtx)).is_err() {
        return Reply::Error("the container has stopped".into());
    }
    match shared.rt.block_on(rrx) {
        Ok(Ok(())) => Reply::Ok,
        Ok(Err(e)) => Reply::Error(e),
        Err(_) => Reply::Error("the container stopped while starting".into()),
    }
}

fn kill(shared: &Shared, sig: i32, all: bool) -> Reply {
    if nix::sys::signal::Signal::try_from(sig).is_err() {
        return Reply::Error(format!("invalid signal {sig}"));
    }
    let main = match &mut *lock(&shared.phase) {
        Phase::Created(tx) => {
            if let Some(tx) = tx.take() {
                let _ = tx.send(Begin::Kill(sig));
            }
            return Reply::Ok;
        }
        Phase::Running(tx) => tx.clone(),
        Phase::Stopped => return Reply::Error("container not running".into()),
    };
    if main.send(Cmd::Signal(sig)).is_err() {
        return Reply::Error("container not running".into());
    }
    if all {
        for (_, tx) in lock(&shared.execs).iter() {
            let _ = tx.send(Cmd::Signal(sig));
        }
        if sig == libc::SIGKILL {
            let _ = shared.rt.block_on(shared.live.destroy());
        }
    }
    Reply::Ok
}

/// Runs an exec for a client that handed over its stdio; replies Ok when it started,
/// passes on its signals and resizes, and sends its exit at the end.
fn exec(shared: Arc<Shared>, conn: OwnedFd, process: ProcessSpec, fds: Vec<OwnedFd>) {
    let fail = |msg: String| {
        let _ = ctl::send(&conn, &Reply::Error(msg), &[]);
    };
    if !matches!(*lock(&shared.phase), Phase::Running(_)) {
        return fail("cannot exec in a container that is not running".into());
    }
    if process.user != shared.user {
        return fail(format!(
            "process.user: {}:{} differs from the container's user {}:{}; hsb runs every process of a container as its user",
            process.user.0, process.user.1, shared.user.0, shared.user.1
        ));
    }
    if process.groups != shared.groups {
        return fail(format!(
            "process.user.additionalGids: {:?} differs from the container's supplementary groups {:?}; every process of an hsb container has its groups",
            process.groups, shared.groups
        ));
    }
    let mut fds = fds.into_iter();
    let (Some(i), Some(o), Some(e)) = (fds.next(), fds.next(), fds.next()) else {
        return fail("an exec needs its stdin, stdout and stderr".into());
    };
    let stdin = (!relay::is_dev_null(&i)).then_some(i);
    let req = request(&process, stdin.is_some());
    let execution = match shared.rt.block_on(shared.live.exec_streaming(req)) {
        Ok(x) => x,
        Err(err) => return fail(format!("exec failed: {}", err.chain())),
    };
    let peer_pid = ctl::peer(&conn).map_or(0, |(_, p)| p);
    let (tx, rx) = mpsc::unbounded_channel();
    lock(&shared.execs).push((peer_pid, tx.clone()));
    if ctl::send(&conn, &Reply::Ok, &[]).is_err() {
        let _ = tx.send(Cmd::Kill);
    }
    let io = Io {
        stdin,
        stdout: o,
        stderr: e,
    };
    let task = shared.rt.spawn(relay::drive(execution, io, rx));
    // The client's messages until it goes; its going kills the exec.
    let conn = Arc::new(conn);
    {
        let conn = conn.clone();
        let tx = tx.clone();
        std::thread::spawn(move || loop {
            match ctl::recv::<Request>(&*conn) {
                Ok(Some((Request::Signal { signal }, _))) => {
                    let _ = tx.send(Cmd::Signal(signal));
                }
                Ok(Some((Request::Resize { rows, cols }, _))) => {
                    let _ = tx.send(Cmd::Resize(TtySize { rows, cols }));
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => {
                    let _ = tx.send(Cmd::Kill);
                    return;
                }
            }
        });
    }
    let exit = match shared.rt.block_on(task) {
        Ok(Ok(o)) => relay::exit_of(&o),
        _ => Exit {
            code: None,
            signal: Some(libc::SIGKILL),
        },
    };
    lock(&shared.execs).retain(|(p, _)| *p != peer_pid);
    let _ = ctl::send(&conn, &Reply::Exit(exit), &[]);
    let _ = nix::sys::socket::shutdown(conn.as_raw_fd(), nix::sys::socket::Shutdown::Both);
}
