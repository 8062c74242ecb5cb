//! The runc commands: create, start, state, kill, delete, run, exec, ps, pause, resume,
//! update, features.

use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use clap::Args;

use super::ctl::{self, Reply, Request};
use super::state::{self, Dir, Exit};
use super::{OciCommand, OciError, Runtime};

#[derive(Debug, Args)]
pub(crate) struct CreateArgs {
    /// The bundle directory (config.json and the root filesystem).
    #[arg(long, short = 'b', default_value = ".")]
    pub(crate) bundle: PathBuf,
    /// Where to write the pid of the container's process (its supervisor).
    #[arg(long = "pid-file", value_name = "FILE")]
    pub(crate) pid_file: Option<PathBuf>,
    /// A UNIX socket to send the terminal's master to (process.terminal).
    #[arg(long = "console-socket", value_name = "PATH")]
    pub(crate) console_socket: Option<PathBuf>,
    /// Descriptors beyond stdio to pass (only 0 is supported).
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub(crate) preserve_fds: u32,
    /// Accepted for runc compatibility (hsb always uses pivot_root).
    #[arg(long = "no-pivot", hide = true)]
    pub(crate) no_pivot: bool,
    /// Accepted for runc compatibility.
    #[arg(long = "no-new-keyring", hide = true)]
    pub(crate) no_new_keyring: bool,
    /// `run` only: do not wait for the process.
    #[arg(long, short = 'd')]
    pub(crate) detach: bool,
    /// `run` only: keep the container's state after its process ends.
    #[arg(long)]
    pub(crate) keep: bool,
    /// The container's id.
    pub(crate) id: String,
}

#[derive(Debug, Args)]
pub(crate) struct ExecArgs {
    /// A JSON file with the OCI process to run.
    #[arg(long, short = 'p', value_name = "FILE")]
    pub(crate) process: Option<PathBuf>,
    /// Do not wait: the process's supervisor runs on (its pid in --pid-file).
    #[arg(long, short = 'd')]
    pub(crate) detach: bool,
    #[arg(long = "pid-file", value_name = "FILE")]
    pub(crate) pid_file: Option<PathBuf>,
    /// Give the process a terminal.
    #[arg(long, short = 't')]
    pub(crate) tty: bool,
    #[arg(long = "console-socket", value_name = "PATH")]
    pub(crate) console_socket: Option<PathBuf>,
    /// Working directory.
    #[arg(long)]
    pub(crate) cwd: Option<String>,
    /// Environment variables (KEY=VALUE).
    #[arg(long, short = 'e')]
    pub(crate) env: Vec<String>,
    /// uid[:gid] (must be the container's user).
    #[arg(long, short = 'u')]
    pub(crate) user: Option<String>,
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub(crate) preserve_fds: u32,
    /// Capabilities to add: refused (hsb grants none).
    #[arg(long = "cap", short = 'c')]
    pub(crate) caps: Vec<String>,
    /// Accepted (always in force).
    #[arg(long = "no-new-privs")]
    pub(crate) no_new_privs: bool,
    #[arg(long, hide = true)]
    pub(crate) apparmor: Option<String>,
    #[arg(long = "process-label", hide = true)]
    pub(crate) process_label: Option<String>,
    #[arg(long = "additional-gids", short = 'g', hide = true)]
    pub(crate) additional_gids: Vec<String>,
    #[arg(long, hide = true)]
    pub(crate) cgroup: Option<String>,
    #[arg(long = "ignore-paused", hide = true)]
    pub(crate) ignore_paused: bool,
    pub(crate) id: String,
    /// The command (without --process).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub(crate) args: Vec<String>,
}

/// runc's `update`: new limits for a created, running or paused container.
#[derive(Debug, Args)]
pub(crate) struct UpdateArgs {
    /// A JSON file with an OCI `linux.resources` object (`-`: standard input), as
    /// containerd's shim passes it; the options below override its values.
    #[arg(long, short = 'r', value_name = "FILE")]
    pub(crate) resources: Option<PathBuf>,
    /// Memory limit in bytes (k, m, g suffixes).
    #[arg(long, value_name = "BYTES", allow_hyphen_values = true)]
    pub(crate) memory: Option<String>,
    /// Memory plus swap (not applied apart from memory).
    #[arg(long = "memory-swap", value_name = "BYTES", allow_hyphen_values = true)]
    pub(crate) memory_swap: Option<String>,
    /// Soft memory limit (not applied).
    #[arg(
        long = "memory-reservation",
        value_name = "BYTES",
        allow_hyphen_values = true
    )]
    pub(crate) memory_reservation: Option<String>,
    /// Processes and threads at once.
    #[arg(long = "pids-limit", value_name = "N", allow_hyphen_values = true)]
    pub(crate) pids_limit: Option<i64>,
    /// CPU quota per period, in microseconds.
    #[arg(long = "cpu-quota", value_name = "US", allow_hyphen_values = true)]
    pub(crate) cpu_quota: Option<i64>,
    /// CPU period, in microseconds.
    #[arg(long = "cpu-period", value_name = "US")]
    pub(crate) cpu_period: Option<u64>,
    /// CPU shares (not applied).
    #[arg(long = "cpu-share", value_name = "N")]
    pub(crate) cpu_share: Option<u64>,
    /// CPUs allowed (not supported).
    #[arg(long = "cpuset-cpus", value_name = "LIST")]
    pub(crate) cpuset_cpus: Option<String>,
    /// Memory nodes allowed (not supported).
    #[arg(long = "cpuset-mems", value_name = "LIST")]
    pub(crate) cpuset_mems: Option<String>,
    /// Block I/O weight (not applied).
    #[arg(long = "blkio-weight", value_name = "N")]
    pub(crate) blkio_weight: Option<u16>,
    /// The container's id.
    pub(crate) id: String,
}

pub(crate) fn dispatch(rt: &Runtime, cmd: OciCommand) -> Result<i32, OciError> {
    match cmd {
        OciCommand::Create(a) => create(rt, a, false),
        OciCommand::Run(a) => create(rt, a, true),
        OciCommand::Start { id } => start(rt, &id),
        OciCommand::State { id } => state_cmd(rt, &id),
        OciCommand::Kill { all, id, signal } => kill(rt, &id, signal.as_deref(), all),
        OciCommand::Delete { force, id } => delete(rt, &id, force),
        OciCommand::Exec(a) => exec(rt, a),
        OciCommand::Ps { format, id, .. } => ps(rt, &id, &format),
        OciCommand::Update(a) => update(rt, a),
        OciCommand::Pause { id } => simple(rt, &id, Request::Pause, "paused"),
        OciCommand::Resume { id } => simple(rt, &id, Request::Resume, "running"),
        OciCommand::Features => {
            out(&serde_json::to_string_pretty(&features()).unwrap_or_default());
            Ok(0)
        }
        OciCommand::Supervise {
            bundle,
            console_socket,
            ready_fd,
            start,
            id,
        } => super::supervise::main(
            rt,
            super::supervise::Args {
                id,
                bundle,
                console_socket,
                ready_fd,
                start,
            },
        ),
    }
}

fn existing(rt: &Runtime, id: &str) -> Result<(Dir, state::Record), OciError> {
    let dir = Dir::new(&rt.root, id)?;
    if !dir.exists() {
        return Err(dir.missing());
    }
    let rec = dir.record()?;
    Ok((dir, rec))
}

/// A pipe whose write end survives exec (for the child) and whose read end does not.
fn ready_pipe() -> Result<(OwnedFd, OwnedFd), OciError> {
    let (r, w) = nix::unistd::pipe().map_err(|e| OciError::msg(format!("pipe: {e}")))?;
    nix::fcntl::fcntl(
        &r,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )
    .map_err(|e| OciError::msg(format!("pipe: {e}")))?;
    Ok((r, w))
}

fn read_all(fd: OwnedFd) -> String {
    let mut s = String::new();
    let _ = std::fs::File::from(fd).read_to_string(&mut s);
    s
}

fn create(rt: &Runtime, a: CreateArgs, run: bool) -> Result<i32, OciError> {
    if a.preserve_fds > 0 {
        return Err(OciError::msg(
            "--preserve-fds: passing descriptors beyond stdio into the sandbox is not supported by hsb",
        ));
    }
    let dir = Dir::new(&rt.root, &a.id)?;
    let bundle = std::path::absolute(&a.bundle)
        .map_err(|e| OciError::msg(format!("--bundle {}: {e}", a.bundle.display())))?;
    dir.claim()?;
    Dir::sweep_cgroups(&rt.root);
    let (r, w) = match ready_pipe() {
        Ok(p) => p,
        Err(e) => {
            dir.remove();
            return Err(e);
        }
    };
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/proc/self/exe"));
    let mut cmd = std::process::Command::new(exe);
    cmd.args(rt.child_args())
        .arg("_supervise")
        .arg("--bundle")
        .arg(&bundle)
        .arg("--ready-fd")
        .arg(w.as_raw_fd().to_string());
    if let Some(c) = &a.console_socket {
        cmd.arg("--console-socket")
            .arg(std::path::absolute(c).unwrap_or(c.clone()));
    }
    if run {
        cmd.arg("--start");
    }
    cmd.arg(&a.id);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            dir.remove();
            return Err(OciError::msg(format!("cannot start the supervisor: {e}")));
        }
    };
    drop(w);
    let msg = read_all(r);
    if msg != "ok" {
        let _ = child.wait();
        dir.remove();
        return Err(OciError::msg(if msg.is_empty() {
            "the container's supervisor failed before it was ready".to_string()
        } else {
            msg
        }));
    }
    let pid = child.id() as i32;
    if let Some(p) = &a.pid_file {
        if let Err(e) = state::write_pid_file(p, pid) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            let _ = child.wait();
            dir.remove();
            return Err(e);
        }
    }
    if !run || a.detach {
        return Ok(0);
    }
    let status = child
        .wait()
        .map_err(|e| OciError::msg(format!("waiting for the container: {e}")))?;
    if !a.keep {
        let rec = dir.record().ok();
        dir.remove();
        if let Some(rec) = rec {
            poststop(rt, &rec);
        }
    }
    use std::os::unix::process::ExitStatusExt;
    Ok(match (status.code(), status.signal()) {
        (Some(c), _) => c,
        (None, Some(s)) => 128 + s,
        _ => 255,
    })
}

fn start(rt: &Runtime, id: &str) -> Result<i32, OciError> {
    let (dir, rec) = existing(rt, id)?;
    match dir.status(&rec).as_str() {
        "created" => {}
        "stopped" => return Err(OciError::msg("cannot start a container that has stopped")),
        "running" | "paused" => {
            return Err(OciError::msg("cannot start an already running container"))
        }
        other => {
            return Err(OciError::msg(format!(
                "cannot start a container that is {other}"
            )))
        }
    }
    match ctl::call(&dir.socket(), &Request::Start) {
        Ok(Reply::Ok) => Ok(0),
        Ok(Reply::Error(e)) => Err(OciError::msg(e)),
        Ok(_) => Err(OciError::msg(
            "unexpected answer from the container's supervisor",
        )),
        Err(e) => Err(OciError::msg(format!(
            "cannot reach the container's supervisor: {e}"
        ))),
    }
}

fn state_cmd(rt: &Runtime, id: &str) -> Result<i32, OciError> {
    let (dir, rec) = existing(rt, id)?;
    let status = dir.status(&rec);
    let rootfs = std::fs::read(rec.bundle.join("config.json"))
        .ok()
        .and_then(|t| serde_json::from_slice::<serde_json::Value>(&t).ok())
        .and_then(|v| {
            v.pointer("/root/path")
                .and_then(|p| p.as_str())
                .map(str::to_string)
        })
        .map(|p| rec.bundle.join(p).display().to_string())
        .unwrap_or_default();
    let v = serde_json::json!({
        "ociVersion": "1.0.2",
        "id": rec.id,
        "pid": if status == "stopped" { 0 } else { rec.pid },
        "status": status,
        "bundle": rec.bundle,
        "rootfs": rootfs,
        "created": rec.created,
        "owner": "",
        "annotations": rec.annotations,
        "hsb": {
            "isolation": rec.isolation,
            "decision": rec.decision,
            "enforced_differently": rec.notes,
            "enforcement": rec.enforcement,
            "exit": dir.exit(),
        },
    });
    out(&serde_json::to_string_pretty(&v).unwrap_or_default());
    Ok(0)
}

/// A signal by number or name (`9`, `KILL`, `SIGKILL`).
pub(crate) fn parse_signal(s: &str) -> Result<i32, OciError> {
    if let Ok(n) = s.parse::<i32>() {
        if nix::sys::signal::Signal::try_from(n).is_ok() {
            return Ok(n);
        }
    }
    let up = s.to_ascii_uppercase();
    let name = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    name.parse::<nix::sys::signal::Signal>()
        .map(|s| s as i32)
        .map_err(|_| OciError::msg(format!("unknown signal {s:?}")))
}

fn kill(rt: &Runtime, id: &str, signal: Option<&str>, all: bool) -> Result<i32, OciError> {
    let sig = parse_signal(signal.unwrap_or("SIGTERM"))?;
    let (dir, rec) = existing(rt, id)?;
    if dir.status(&rec) == "stopped" {
        return Err(OciError::msg("container not running"));
    }
    match ctl::call(&dir.socket(), &Request::Kill { signal: sig, all }) {
        Ok(Reply::Ok) => Ok(0),
        Ok(Reply::Error(e)) => Err(OciError::msg(e)),
        Ok(_) => Err(OciError::msg(
            "unexpected answer from the container's supervisor",
        )),
        Err(_) => Err(OciError::msg("container not running")),
    }
}

/// Writes `text` and a newline to stdout; a reader that went away (`| head -1`) is not
/// an error of the command (println! panicked on the broken pipe).
fn out(text: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout().lock(), "{text}");
}

fn delete(rt: &Runtime, id: &str, force: bool) -> Result<i32, OciError> {
    let dir = Dir::new(&rt.root, id)?;
    if !dir.path.exists() {
        // As runc: with --force, a container that is not there is deleted already
        // (Podman deletes after a failed create, and printed this error each time).
        if force {
            return Ok(0);
        }
        return Err(dir.missing());
    }
    let cgroups = dir.cgroups();
    let Ok(rec) = dir.record() else {
        // A create that died half-way: nothing runs; clear it.
        dir.remove();
        super::cgroups::remove(&cgroups);
        return Ok(0);
    };
    let status = dir.status(&rec);
    if status != "stopped" {
        if (status == "running" || status == "paused") && !force {
            return Err(OciError::msg(format!(
                "cannot delete container {id} that is not stopped: {status}"
            )));
        }
        let _ = ctl::call(
            &dir.socket(),
            &Request::Kill {
                signal: libc::SIGKILL,
                all: true,
            },
        );
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while state::alive(rec.pid, rec.pid_start) {
            if std::time::Instant::now() > deadline {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(rec.pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
    dir.remove();
    // A supervisor still on its way out after recording the exit removes them itself;
    // `remove` waits out its last moments in them.
    super::cgroups::remove(&cgroups);
    poststop(rt, &rec);
    Ok(0)
}

/// config.json's poststop hooks: after the container is gone, before `delete` (or
/// `run`) returns, as the spec asks; a failure is a warning.
fn poststop(rt: &Runtime, rec: &state::Record) {
    let st = super::hooks::state(&rec.id, "stopped", 0, &rec.bundle, &rec.annotations);
    if let Err(e) = super::hooks::run(&rec.poststop, &st, None) {
        super::log::warn(rt, &format!("poststop hook failed: {e}"), true);
    }
}

fn simple(rt: &Runtime, id: &str, req: Request, _after: &str) -> Result<i32, OciError> {
    let (dir, rec) = existing(rt, id)?;
    let status = dir.status(&rec);
    let ok = match req {
        Request::Pause => status == "running",
        _ => status == "paused",
    };
    if !ok {
        return Err(OciError::msg(format!("container {id} is {status}")));
    }
    ask(&dir, &req)
}

/// Sends `req` to the container's supervisor, for a plain yes or its error.
fn ask(dir: &Dir, req: &Request) -> Result<i32, OciError> {
    match ctl::call(&dir.socket(), req) {
        Ok(Reply::Ok) => Ok(0),
        Ok(Reply::Error(e)) => Err(OciError::msg(e)),
        Ok(_) => Err(OciError::msg(
            "unexpected answer from the container's supervisor",
        )),
        Err(e) => Err(OciError::msg(format!(
            "cannot reach the container's supervisor: {e}"
        ))),
    }
}

/// A size as runc's options take it: bytes, or with a k, m, g or t suffix (powers
/// of 1024); -1 is "no limit".
fn size_option(name: &str, v: &str) -> Result<i64, OciError> {
    let t = v.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (digits, shift) = match t.as_bytes().last() {
        Some(b'k') => (&t[..t.len() - 1], 10),
        Some(b'm') => (&t[..t.len() - 1], 20),
        Some(b'g') => (&t[..t.len() - 1], 30),
        Some(b't') => (&t[..t.len() - 1], 40),
        _ => (t, 0),
    };
    match digits.parse::<i64>() {
        Ok(-1) if shift == 0 => Ok(-1),
        Ok(n) if n >= 0 => n
            .checked_mul(1 << shift)
            .ok_or_else(|| OciError::msg(format!("--{name} {v}: too large"))),
        _ => Err(OciError::msg(format!(
            "--{name} {v}: not a size in bytes (with k, m, g or t)"
        ))),
    }
}

/// The `linux.resources` object `update` asks for: `--resources`, then the options.
fn update_resources(a: &UpdateArgs) -> Result<serde_json::Value, OciError> {
    let mut r = match &a.resources {
        None => serde_json::json!({}),
        Some(p) => {
            let text = if p.as_os_str() == "-" {
                let mut b = Vec::new();
                std::io::stdin()
                    .read_to_end(&mut b)
                    .map_err(|e| OciError::msg(format!("reading the resources: {e}")))?;
                b
            } else {
                std::fs::read(p)
                    .map_err(|e| OciError::msg(format!("reading {}: {e}", p.display())))?
            };
            serde_json::from_slice(&text)
                .map_err(|e| OciError::msg(format!("the resources are not JSON: {e}")))?
        }
    };
    if !r.is_object() {
        return Err(OciError::msg("the resources must be a JSON object"));
    }
    let mut set = |section: &str, key: &str, v: serde_json::Value| {
        if !r[section].is_object() {
            r[section] = serde_json::json!({});
        }
        r[section][key] = v;
    };
    for (name, key, v) in [
        ("memory", "limit", &a.memory),
        ("memory-swap", "swap", &a.memory_swap),
        ("memory-reservation", "reservation", &a.memory_reservation),
    ] {
        if let Some(v) = v {
            set("memory", key, size_option(name, v)?.into());
        }
    }
    if let Some(n) = a.pids_limit {
        set("pids", "limit", n.into());
    }
    if let Some(n) = a.cpu_quota {
        set("cpu", "quota", n.into());
    }
    if let Some(n) = a.cpu_period {
        set("cpu", "period", n.into());
    }
    if let Some(n) = a.cpu_share {
        set("cpu", "shares", n.into());
    }
    if let Some(v) = &a.cpuset_cpus {
        set("cpu", "cpus", v.as_str().into());
    }
    if let Some(v) = &a.cpuset_mems {
        set("cpu", "mems", v.as_str().into());
    }
    if let Some(n) = a.blkio_weight {
        set("blockIO", "weight", n.into());
    }
    Ok(r)
}

/// `update`: the new limits are checked here (what hsb does not apply is logged as a
/// warning, what it cannot is an error), then applied by the container's supervisor
/// to the live sandbox (within the policy's floor; see `Live::update_limits`).
fn update(rt: &Runtime, a: UpdateArgs) -> Result<i32, OciError> {
    let (dir, rec) = existing(rt, &a.id)?;
    let status = dir.status(&rec);
    if status == "stopped" {
        return Err(OciError::msg(format!(
            "container {} is stopped: its limits cannot change",
            a.id
        )));
    }
    let resources = update_resources(&a)?;
    let text = serde_json::to_vec(&resources).unwrap_or_default();
    let r = super::config::updated_resources(&text).map_err(OciError::config)?;
    for n in &r.notes {
        super::log::warn(rt, &format!("update {}: {n}", a.id), false);
    }
    if let Some(set) = &r.cpuset {
        // On the cgroupsPath the container was created in (its config names it), and
        // only if its supervisor is there.
        let path = super::config::load(&rec.bundle, None)
            .map_err(OciError::config)?
            .cgroups_path
            .ok_or_else(|| {
                OciError::msg(format!(
                    "update {}: linux.resources.cpu.cpus/mems: CPU sets are set on linux.cgroupsPath, which the container's config does not give",
                    a.id
                ))
            })?;
        let (at, before) = super::cgroups::set_cpuset(rec.pid, &path, set)
            .map_err(|e| OciError::msg(format!("update {}: {e}", a.id)))?;
        let asked = ask(&dir, &Request::Update { limits: r.limits });
        if asked.is_err() {
            super::cgroups::restore_cpuset(&at, &before);
        }
        return asked;
    }
    ask(&dir, &Request::Update { limits: r.limits })
}

fn ps(rt: &Runtime, id: &str, format: &str) -> Result<i32, OciError> {
    let (dir, rec) = existing(rt, id)?;
    let pids = if dir.status(&rec) == "stopped" {
        Vec::new()
    } else {
        match ctl::call(&dir.socket(), &Request::Ps) {
            Ok(Reply::Pids(p)) => p,
            _ => Vec::new(),
        }
    };
    match format {
        "json" => out(&serde_json::to_string(&pids).unwrap_or_default()),
        "table" => {
            let table: Vec<String> = std::iter::once("PID".to_string())
                .chain(pids.iter().map(|p| p.to_string()))
                .collect();
            out(&table.join("\n"));
        }
        other => return Err(OciError::msg(format!("invalid format option {other:?}"))),
    }
    Ok(0)
}

fn features() -> serde_json::Value {
    serde_json::json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": "1.1.0",
        "hooks": [],
        "mountOptions": ["bind", "rbind", "ro", "rw", "nosuid", "nodev", "private", "rprivate", "slave", "rslave", "relatime"],
        "linux": {
            "namespaces": ["pid", "network", "ipc", "uts", "mount", "cgroup", "user"],
            "capabilities": [],
            "cgroup": { "v1": true, "v2": true, "systemd": false, "systemdUser": false },
            "seccomp": { "enabled": true, "actions": [], "operators": [], "archs": [] },
            "apparmor": { "enabled": false },
            "selinux": { "enabled": false },
        },
        "annotations": {
            "io.hybrid-sandbox.isolation": "container | microvm | auto",
            "io.hybrid-sandbox.label.KEY": "a label for the policy's rules",
            "io.hybrid-sandbox.version": env!("CARGO_PKG_VERSION"),
        },
    })
}

/// The container's own process settings (the base of an exec given as arguments).
fn base_process(rec: &state::Record) -> Result<super::config::ProcessSpec, OciError> {
    let c = super::config::load(&rec.bundle, None).map_err(OciError::config)?;
    Ok(c.process)
}

fn exec(rt: &Runtime, a: ExecArgs) -> Result<i32, OciError> {
    let (dir, rec) = existing(rt, &a.id)?;
    match dir.status(&rec).as_str() {
        "running" => {}
        "paused" => return Err(OciError::msg("cannot exec in a paused container")),
        s => return Err(OciError::msg(format!("cannot exec in a {s} container"))),
    }
    if a.preserve_fds > 0 {
        return Err(OciError::msg(
            "--preserve-fds: passing descriptors beyond stdio into the sandbox is not supported by hsb",
        ));
    }
    if !a.caps.is_empty() {
        return Err(OciError::msg("--cap: hsb grants no capabilities"));
    }
    let mut process = match &a.process {
        Some(f) => {
            let text = std::fs::read(f)
                .map_err(|e| OciError::msg(format!("--process {}: {e}", f.display())))?;
            let (p, notes) = super::config::exec_process(&text).map_err(OciError::config)?;
            for n in notes {
                super::log::info(rt, &format!("exec in {}: {n}", a.id));
            }
            p
        }
        None => {
            if a.args.is_empty() {
                return Err(OciError::msg(
                    "exec: no command given (use --process or ARGS)",
                ));
            }
            let mut p = base_process(&rec)?;
            p.argv = a.args.clone();
            p.terminal = false;
            p
        }
    };
    for kv in &a.env {
        match kv.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                process.env.insert(k.into(), v.into());
            }
            _ => return Err(OciError::msg(format!("--env {kv:?}: must be KEY=VALUE"))),
        }
    }
    if let Some(c) = &a.cwd {
        process.cwd = c.clone();
    }
    if let Some(u) = &a.user {
        let mut it = u.split(':');
        let uid = it.next().and_then(|x| x.parse().ok());
        let gid = it
            .next()
            .map(|x| x.parse().ok())
            .unwrap_or(Some(process.user.1));
        match (uid, gid) {
            (Some(u), Some(g)) => process.user = (u, g),
            _ => return Err(OciError::msg(format!("--user {u:?}: must be UID[:GID]"))),
        }
    }
    if !a.additional_gids.is_empty() {
        // runc's `exec -g`: each process of an hsb container has the container's groups.
        let mut groups = Vec::new();
        for g in &a.additional_gids {
            for one in g.split(',') {
                let gid: u32 = one.parse().map_err(|_| {
                    OciError::msg(format!("--additional-gids {g:?}: must be numeric gids"))
                })?;
                if gid != process.user.1 {
                    groups.push(gid);
                }
            }
        }
        groups.sort_unstable();
        groups.dedup();
        if groups != process.groups {
            return Err(OciError::msg(format!(
                "--additional-gids {groups:?}: differs from the container's supplementary groups {:?}; every process of an hsb container has its groups",
                process.groups
            )));
        }
    }
    if a.tty {
        process.terminal = true;
    }
    if process.terminal
        && a.console_socket.is_none()
        && !nix::unistd::isatty(std::io::stdin()).unwrap_or(false)
    {
        return Err(OciError::msg(
            "a terminal was asked for: give --console-socket, or run exec from a terminal",
        ));
    }
    if !a.detach {
        let exit = exec_client(&dir, process, a.console_socket.as_deref(), None)?;
        return Ok(exit.status());
    }
    let (r, w) = ready_pipe()?;
    // SAFETY: `hsb oci exec` is single-threaded until here (no runtime, no thread was
    // started), so the child may go on running Rust code.
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Child) => {
            drop(r);
            let _ = nix::unistd::setsid();
            let code = match exec_client(&dir, process, a.console_socket.as_deref(), Some(w)) {
                Ok(exit) => exit_like(exit),
                Err(_) => 1,
            };
            std::process::exit(code)
        }
        Ok(nix::unistd::ForkResult::Parent { child }) => {
            drop(w);
            let msg = read_all(r);
            if msg != "ok" {
                let _ = nix::sys::wait::waitpid(child, None);
                return Err(OciError::msg(if msg.is_empty() {
                    "the exec failed before it started".to_string()
                } else {
                    msg
                }));
            }
            if let Some(p) = &a.pid_file {
                state::write_pid_file(p, child.as_raw())?;
            }
            Ok(0)
        }
        Err(e) => Err(OciError::msg(format!("fork: {e}"))),
    }
}

fn exit_like(e: Exit) -> i32 {
    if let Some(sig) = e.signal {
        if let Ok(s) = nix::sys::signal::Signal::try_from(sig) {
            // SAFETY: restoring a signal's default action; no handler is involved.
            let _ = unsafe { nix::sys::signal::signal(s, nix::sys::signal::SigHandler::SigDfl) };
            let _ = nix::sys::signal::raise(s);
        }
    }
    e.status()
}

/// Hands stdio (or a new terminal) to the supervisor, runs the exec, and returns its
/// exit. `ready`: where to say "ok" (or the error) once it started.
fn exec_client(
    dir: &Dir,
    process: super::config::ProcessSpec,
    console_socket: Option<&Path>,
    ready: Option<OwnedFd>,
) -> Result<Exit, OciError> {
    let say = |ready: &Option<OwnedFd>, msg: &str| {
        if let Some(w) = ready {
            let _ = nix::unistd::write(w, msg.as_bytes());
        }
    };
    let fail = |ready: &Option<OwnedFd>, e: OciError| -> Result<Exit, OciError> {
        say(ready, &e.to_string());
        if ready.is_none() {
            Err(e)
        } else {
            Err(OciError::msg(""))
        }
    };
    let conn = match ctl::connect(&dir.socket()) {
        Ok(c) => c,
        Err(e) => {
            return fail(
                &ready,
                OciError::msg(format!("cannot reach the container: {e}")),
            )
        }
    };
    let mut _pty = None;
    let mut restore = None;
    let (fds, tty_fd): (Vec<RawFd>, Option<RawFd>) = if process.terminal {
        if let Some(sock) = console_socket {
            let pty = match super::console::open(process.size) {
                Ok(p) => p,
                Err(e) => {
                    return fail(
                        &ready,
                        OciError::msg(format!("cannot open a terminal: {e}")),
                    )
                }
            };
            if let Err(e) = super::console::send_master(sock, &pty.master, &pty.name) {
                return fail(
                    &ready,
                    OciError::msg(format!("console socket {}: {e}", sock.display())),
                );
            }
            let _ = super::console::make_controlling(&pty.slave);
            let s = pty.slave.as_raw_fd();
            _pty = Some(pty);
            (vec![s, s, s], Some(s))
        } else {
            let stdin = std::io::stdin();
            restore = super::console::raw(&stdin.as_fd()).map(|t| (0, t));
            (vec![0, 1, 2], Some(0))
        }
    } else {
        (vec![0, 1, 2], None)
    };
    let mut process = process;
    if let (true, Some(fd), None) = (process.terminal, tty_fd, process.size) {
        // SAFETY: `fd` is open for this function's life (stdin or the pty slave).
        process.size = super::console::size(&unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) });
    }
    let undo = |restore: &Option<(RawFd, nix::sys::termios::Termios)>| {
        if let Some((fd, t)) = restore {
            // SAFETY: stdin stays open for the process's life.
            super::console::restore(&unsafe { std::os::fd::BorrowedFd::borrow_raw(*fd) }, t);
        }
    };
    let sent = ctl::send(&conn, &Request::Exec { process }, &fds)
        .map_err(|e| OciError::msg(format!("cannot reach the container: {e}")))
        .and_then(|_| {
            ctl::recv::<Reply>(&conn)
                .map_err(|e| OciError::msg(format!("the container's supervisor: {e}")))
        });
    match sent {
        Ok(Some((Reply::Ok, _))) => say(&ready, "ok"),
        Ok(Some((Reply::Error(e), _))) => {
            undo(&restore);
            return fail(&ready, OciError::msg(e));
        }
        Ok(_) => {
            undo(&restore);
            return fail(&ready, OciError::msg("the container stopped"));
        }
        Err(e) => {
            undo(&restore);
            return fail(&ready, e);
        }
    }
    if ready.is_some() && tty_fd != Some(0) {
        // Detached: the stdio went to the supervisor; keep none of the caller's.
        let _ = super::console::stdio_to_null();
    }
    drop(ready);
    let exit = wait_exec(conn, tty_fd);
    undo(&restore);
    Ok(exit)
}

/// Passes signals (and terminal resizes) on until the exec's exit arrives.
fn wait_exec(conn: OwnedFd, tty_fd: Option<RawFd>) -> Exit {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return Exit {
            code: Some(1),
            signal: None,
        };
    };
    let conn = std::sync::Arc::new(conn);
    rt.block_on(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let c = conn.clone();
        let mut exit = tokio::task::spawn_blocking(move || loop {
            match ctl::recv::<Reply>(&*c) {
                Ok(Some((Reply::Exit(e), _))) => return e,
                Ok(Some(_)) => continue,
                _ => return Exit { code: None, signal: Some(libc::SIGKILL) },
            }
        });
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<i32>();
        for sig in [
            libc::SIGTERM,
            libc::SIGINT,
            libc::SIGHUP,
            libc::SIGQUIT,
            libc::SIGUSR1,
            libc::SIGUSR2,
            libc::SIGWINCH,
        ] {
            if let Ok(mut s) = signal(SignalKind::from_raw(sig)) {
                let tx = tx.clone();
                tokio::spawn(async move {
                    while s.recv().await.is_some() {
                        if tx.send(sig).is_err() {
                            return;
                        }
                    }
                });
            }
        }
        // The engine may have sized the terminal after its size was read for the exec
        // request and before SIGWINCH was watched: the size now, once, closes that gap.
        let _ = tx.send(libc::SIGWINCH);
        loop {
            tokio::select! {
                e = &mut exit => return e.unwrap_or(Exit { code: None, signal: Some(libc::SIGKILL) }),
                Some(sig) = rx.recv() => {
                    let req = if sig == libc::SIGWINCH {
                        // SAFETY: the terminal stays open while the exec runs.
                        match tty_fd.and_then(|fd| super::console::size(&unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) })) {
                            Some(s) => Request::Resize { rows: s.rows, cols: s.cols },
                            None => continue,
                        }
                    } else {
                        Request::Signal { signal: sig }
                    };
                    let _ = ctl::send(&conn, &req, &[]);
                }
            }
        }
    })
}
