//! Tree-wide limits through cgroups: v2 where available and writable, else v1 (memory,
//! pids, cpuacct), else none (the run falls back to rlimits, and the report says so).
//!
//! Each run gets its own leaf cgroup named `<creator pid>-<n>` under an `hsb` directory.
//! A caller killed with SIGKILL cannot remove its leaves; the next run of any hybrid-sandbox
//! process sweeps leaves whose creator is dead.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use sandbox_core::{LimitMechanism, Limits};

/// How this host's cgroups can be used by this process.
#[derive(Debug, Clone)]
pub(crate) enum Host {
    /// A writable cgroup v2 directory whose children get memory, pids and cpu.
    V2 { base: PathBuf },
    /// Writable cgroup v1 hierarchies (each optional).
    V1 {
        memory: Option<PathBuf>,
        pids: Option<PathBuf>,
        cpuacct: Option<PathBuf>,
        /// The `cpu` controller's hierarchy (CPU quotas), when it is not `cpuacct`'s.
        cpu: Option<PathBuf>,
        /// `cpu` and `cpuacct` are one hierarchy (`cpu,cpuacct`): quotas go in the
        /// `cpuacct` leaf.
        cpu_with_cpuacct: bool,
        /// Used by live sandboxes only (pause and resume).
        freezer: Option<PathBuf>,
    },
    /// None usable; why.
    Unusable { reason: String },
}

impl Host {
    pub(crate) fn mechanism(&self) -> LimitMechanism {
        match self {
            Host::V2 { .. } => LimitMechanism::CgroupV2,
            Host::V1 { .. } => LimitMechanism::CgroupV1,
            Host::Unusable { .. } => LimitMechanism::Rlimit,
        }
    }

    pub(crate) fn version_name(&self) -> &'static str {
        match self {
            Host::V2 { .. } => "v2",
            Host::V1 { .. } => "v1",
            Host::Unusable { .. } => "none usable",
        }
    }
}

struct Mount {
    fstype: String,
    point: PathBuf,
    options: String,
}

fn mounts() -> Vec<Mount> {
    let text = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let point = left.split(' ').nth(4)?;
            let mut r = right.split(' ');
            let fstype = r.next()?.to_string();
            let options = r.nth(1).unwrap_or("").to_string();
            Some(Mount {
                fstype,
                point: PathBuf::from(unescape(point)),
                options,
            })
        })
        .collect()
}

fn unescape(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

fn writable(p: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
    unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
}

/// Detects what this process can use, once.
pub(crate) fn host() -> &'static Host {
    static HOST: OnceLock<Host> = OnceLock::new();
    HOST.get_or_init(detect)
}

fn detect() -> Host {
    let all = mounts();
    // cgroup v2 with the controllers we need.
    if let Some(m) = all.iter().find(|m| m.fstype == "cgroup2") {
        let controllers =
            fs::read_to_string(m.point.join("cgroup.controllers")).unwrap_or_default();
        let has = |c: &str| controllers.split_whitespace().any(|x| x == c);
        if has("memory") && has("pids") {
            if let Some(base) = v2_base(&m.point) {
                return Host::V2 { base };
            }
        }
    }
    // cgroup v1 controllers, as root.
    let v1 = |ctrl: &str| {
        all.iter()
            .find(|m| m.fstype == "cgroup" && m.options.split(',').any(|o| o == ctrl))
            .map(|m| m.point.clone())
            .filter(|p| writable(p))
            .map(|p| p.join("hsb"))
            .filter(|p| fs::create_dir(p).is_ok() || p.is_dir())
    };
    let (memory, pids, cpuacct) = (v1("memory"), v1("pids"), v1("cpuacct"));
    if memory.is_some() || pids.is_some() {
        let cpu = v1("cpu");
        let cpu_with_cpuacct = cpu.is_some() && cpu == cpuacct;
        return Host::V1 {
            memory,
            pids,
            cpuacct,
            cpu: cpu.filter(|_| !cpu_with_cpuacct),
            cpu_with_cpuacct,
            freezer: v1("freezer"),
        };
    }
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    Host::Unusable {
        reason: if uid == 0 {
            "no writable cgroup hierarchy with the memory and pids controllers was found".into()
        } else {
            format!(
                "cgroups are not delegated to uid {uid}; set HSB_CGROUP_PARENT to a delegated cgroup v2 \
                 directory (e.g. inside `systemd-run --user --scope -p Delegate=yes`) for tree-wide limits"
            )
        },
    }
}

/// The `hsb` directory under which run cgroups are created (v2).
fn v2_base(root: &Path) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("HSB_CGROUP_PARENT") {
        let p = PathBuf::from(p);
        return (p.starts_with(root) && writable(&p)).then_some(p);
    }
    if !writable(root) {
        return None;
    }
    let base = root.join("hsb");
    if !base.is_dir() {
        fs::create_dir(&base).ok()?;
    }
    // The root cgroup may hold processes and still enable controllers for children.
    let _ = fs::write(root.join("cgroup.subtree_control"), "+memory +pids +cpu");
    let _ = fs::write(base.join("cgroup.subtree_control"), "+memory +pids +cpu");
    let enabled = fs::read_to_string(base.join("cgroup.subtree_control")).unwrap_or_default();
    (enabled.contains("memory") && enabled.contains("pids")).then_some(base)
}

/// Resource usage read from a run's cgroup.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Stats {
    pub(crate) cpu_ns: Option<u64>,
    pub(crate) peak_memory: Option<u64>,
    pub(crate) oom_kills: u64,
    pub(crate) pids_max_hits: u64,
}

/// One run's cgroup (a leaf in each hierarchy used).
#[derive(Debug)]
pub(crate) struct Cgroup {
    v2: Option<PathBuf>,
    memory: Option<PathBuf>,
    pids: Option<PathBuf>,
    cpuacct: Option<PathBuf>,
    /// A v1 `cpu` leaf (only with a `cpus` limit, when `cpu` is its own hierarchy).
    cpu: Option<PathBuf>,
    /// A v1 freezer leaf (live sandboxes; see `cgroup_freeze.rs`).
    pub(crate) freezer: Option<PathBuf>,
    name: String,
    /// On v1, the cgroup (from each hierarchy's root) the leaves are made in instead of
    /// hsb's directory.
    parent: Option<PathBuf>,
    removed: bool,
    /// The files [`Cgroup::stats`] reads, opened at its first call and kept: each
    /// exec of a live sandbox reads them twice, and a `pread` at offset 0 of an open
    /// cgroup file regenerates it, where a path lookup, an open and a close cost more
    /// than the read itself.
    stat_files: OnceLock<StatFiles>,
}

/// Open cgroup files of [`Stats`]; `None` where the file is absent.
#[derive(Debug, Default)]
struct StatFiles {
    v2_cpu: Option<fs::File>,
    v2_peak: Option<fs::File>,
    v2_events: Option<fs::File>,
    v2_pids: Option<fs::File>,
    cpuacct: Option<fs::File>,
    v1_peak: Option<fs::File>,
    v1_oom: Option<fs::File>,
    v1_pids: Option<fs::File>,
}

impl StatFiles {
    fn open(cg: &Cgroup) -> StatFiles {
        let open = |d: &Option<PathBuf>, name: &str| {
            d.as_ref().and_then(|d| fs::File::open(d.join(name)).ok())
        };
        StatFiles {
            v2_cpu: open(&cg.v2, "cpu.stat"),
            v2_peak: open(&cg.v2, "memory.peak"),
            v2_events: open(&cg.v2, "memory.events"),
            v2_pids: open(&cg.v2, "pids.events"),
            cpuacct: open(&cg.cpuacct, "cpuacct.usage"),
            v1_peak: open(&cg.memory, "memory.max_usage_in_bytes"),
            v1_oom: open(&cg.memory, "memory.oom_control"),
            v1_pids: open(&cg.pids, "pids.events"),
        }
    }
}

/// The whole of a small cgroup file, read again from its start (`None`: no file, or
/// unreadable).
fn read_whole(f: &Option<fs::File>, buf: &mut [u8; 1024]) -> Option<usize> {
    use std::os::unix::fs::FileExt;
    let f = f.as_ref()?;
    let mut at = 0;
    while at < buf.len() {
        match f.read_at(&mut buf[at..], at as u64) {
            Ok(0) => break,
            // A cgroup file is generated whole by the read that starts it: a short
            // read is its end.
            Ok(n) if at == 0 && n < buf.len() => return Some(n),
            Ok(n) => at += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    Some(at)
}

fn file_u64(f: &Option<fs::File>) -> Option<u64> {
    let mut buf = [0u8; 1024];
    let n = read_whole(f, &mut buf)?;
    std::str::from_utf8(&buf[..n]).ok()?.trim().parse().ok()
}

fn file_keyed(f: &Option<fs::File>, key: &str) -> Option<u64> {
    let mut buf = [0u8; 1024];
    let n = read_whole(f, &mut buf)?;
    keyed_in(std::str::from_utf8(&buf[..n]).ok()?, key)
}

/// `path` opened close-on-exec, for reading or writing, with `flags` besides.
fn open_fd(path: &Path, write: bool, flags: i32) -> io::Result<std::os::fd::OwnedFd> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .read(!write)
        .write(write)
        .custom_flags(flags | libc::O_CLOEXEC)
        .open(path)
        .map(std::os::fd::OwnedFd::from)
}

static SEQ: AtomicU64 = AtomicU64::new(0);

/// The CPU bandwidth period: 100 ms, the kernel's default.
const CPU_PERIOD_US: u64 = 100_000;

/// The quota per period for `cpus` (thousandths of a CPU), at least the kernel's
/// minimum of 1 ms.
fn quota_us(c: sandbox_core::units::Cpus) -> u64 {
    (u64::from(c.millis()) * CPU_PERIOD_US / 1000).max(1000)
}

fn no_cpu_controller(e: io::Error, what: &str) -> io::Error {
    io::Error::new(
        e.kind(),
        format!("the cpus limit needs {what}, which this host does not offer ({e}); remove the limit or run where the cgroup cpu controller is available"),
    )
}

/// A memory limit the kernel would not set (`EBUSY`: it could not reclaim the
/// sandbox's memory below it), said in words.
fn over_usage(e: io::Error, m: sandbox_core::units::ByteSize) -> io::Error {
    if e.raw_os_error() == Some(libc::EBUSY) {
        io::Error::new(
            e.kind(),
            format!("the sandbox uses more memory than {m} now, and the kernel could not reclaim enough"),
        )
    } else {
        e
    }
}

fn read_u64(p: &Path) -> Option<u64> {
    fs::read_to_string(p).ok()?.trim().parse().ok()
}

fn keyed_in(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

impl Cgroup {
    /// Creates the run's cgroup with `limits` applied: a leaf under hsb's directory of
    /// each hierarchy, or on cgroup v1 under `parent` (a path from each hierarchy's
    /// root, which must exist there: an engine's cgroup, which then holds the
    /// sandbox). On v2 `parent` is not used (a cgroup holding its caller's process
    /// cannot give a child controllers). `details` receives, per limit, the mechanism
    /// in words, and where the leaf is when a parent was asked for.
    pub(crate) fn create(
        host: &Host,
        limits: &Limits,
        parent: Option<&Path>,
        details: &mut BTreeMap<String, String>,
    ) -> io::Result<Option<Cgroup>> {
        sweep_once(host);
        let name = format!(
            "{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let mut cg = Cgroup {
            v2: None,
            memory: None,
            pids: None,
            cpuacct: None,
            cpu: None,
            freezer: None,
            name: name.clone(),
            parent: None,
            removed: false,
            stat_files: OnceLock::new(),
        };
        match host {
            Host::Unusable { .. } => return Ok(None),
            Host::V2 { base } => {
                if let Some(p) = parent {
                    details.insert(
                        "cgroup_parent".into(),
                        format!(
                            "not used: on cgroup v2 the sandbox's cgroup is under {}, not {} (a cgroup that holds a process cannot give its children controllers)",
                            base.display(),
                            p.display()
                        ),
                    );
                }
                let dir = base.join(&name);
                fs::create_dir(&dir)?;
                cg.v2 = Some(dir.clone());
                if let Some(m) = limits.memory {
                    fs::write(dir.join("memory.max"), m.0.to_string())?;
                    let _ = fs::write(dir.join("memory.swap.max"), "0");
                    let _ = fs::write(dir.join("memory.oom.group"), "1");
                    details.insert(
                        "memory".into(),
                        "cgroup v2 memory.max (whole sandbox)".into(),
                    );
                }
                if let Some(p) = limits.pids {
                    fs::write(dir.join("pids.max"), p.to_string())?;
                    details.insert("pids".into(), "cgroup v2 pids.max (whole sandbox)".into());
                }
                if limits.cpu_time.is_some() {
                    details.insert(
                        "cpu_time".into(),
                        "cgroup v2 cpu.stat usage, whole sandbox".into(),
                    );
                }
                if let Some(c) = limits.cpus {
                    fs::write(
                        dir.join("cpu.max"),
                        format!("{} {CPU_PERIOD_US}", quota_us(c)),
                    )
                    .map_err(|e| no_cpu_controller(e, "cpu.max of the sandbox's cgroup v2"))?;
                    details.insert(
                        "cpus".into(),
                        format!(
                            "cgroup v2 cpu.max {} {CPU_PERIOD_US} (whole sandbox)",
                            quota_us(c)
                        ),
                    );
                }
            }
            Host::V1 {
                memory,
                pids,
                cpuacct,
                cpu,
                cpu_with_cpuacct,
                ..
            } => {
                cg.parent = parent.map(|p| p.strip_prefix("/").unwrap_or(p).to_path_buf());
                if let Some(p) = &cg.parent {
                    details.insert(
                        "cgroup_parent".into(),
                        format!(
                            "cgroup v1: the sandbox's cgroup is under /{} in each hierarchy",
                            p.display()
                        ),
                    );
                }
                let in_parent = cg.parent.clone();
                let mk = |base: &Option<PathBuf>| -> io::Result<Option<PathBuf>> {
                    match base {
                        Some(b) => {
                            let d = leaf_dir(b, in_parent.as_deref(), &name);
                            fs::create_dir(&d).map_err(|e| {
                                io::Error::new(e.kind(), format!("making {}: {e}", d.display()))
                            })?;
                            Ok(Some(d))
                        }
                        None => Ok(None),
                    }
                };
                // Register each directory as soon as it exists, so an error removes it.
                cg.memory = mk(memory)?;
                cg.pids = mk(pids)?;
                cg.cpuacct = mk(cpuacct)?;
                if let (Some(m), Some(d)) = (limits.memory, &cg.memory) {
                    fs::write(d.join("memory.limit_in_bytes"), m.0.to_string())?;
                    let _ = fs::write(d.join("memory.memsw.limit_in_bytes"), m.0.to_string());
                    let _ = fs::write(d.join("memory.swappiness"), "0");
                    details.insert(
                        "memory".into(),
                        "cgroup v1 memory.limit_in_bytes (whole sandbox)".into(),
                    );
                }
                if let (Some(p), Some(d)) = (limits.pids, &cg.pids) {
                    fs::write(d.join("pids.max"), p.to_string())?;
                    details.insert("pids".into(), "cgroup v1 pids.max (whole sandbox)".into());
                }
                if let (Some(_), Some(_)) = (limits.cpu_time, &cg.cpuacct) {
                    details.insert(
                        "cpu_time".into(),
                        "cgroup v1 cpuacct.usage, whole sandbox".into(),
                    );
                }
                if let Some(c) = limits.cpus {
                    if !cpu_with_cpuacct {
                        cg.cpu = mk(cpu)?;
                    }
                    let dir = match (&cg.cpu, *cpu_with_cpuacct) {
                        (Some(d), _) => d.clone(),
                        (None, true) => cg.cpuacct.clone().ok_or_else(|| {
                            no_cpu_controller(
                                io::ErrorKind::NotFound.into(),
                                "a cgroup v1 cpu hierarchy",
                            )
                        })?,
                        (None, false) => {
                            return Err(no_cpu_controller(
                                io::ErrorKind::NotFound.into(),
                                "a writable cgroup v1 cpu hierarchy",
                            ))
                        }
                    };
                    fs::write(dir.join("cpu.cfs_period_us"), CPU_PERIOD_US.to_string())
                        .and_then(|_| {
                            fs::write(dir.join("cpu.cfs_quota_us"), quota_us(c).to_string())
                        })
                        .map_err(|e| {
                            no_cpu_controller(e, "cpu.cfs_quota_us of the sandbox's cgroup v1")
                        })?;
                    details.insert(
                        "cpus".into(),
                        format!(
                            "cgroup v1 cpu.cfs_quota_us {} per {CPU_PERIOD_US} us (whole sandbox)",
                            quota_us(c)
                        ),
                    );
                }
            }
        }
        Ok(Some(cg))
    }

    /// Changes the memory, pids and cpus limits of a sandbox whose processes already
    /// run in this cgroup: each one set in `l` (the caller refuses the others). What
    /// this cgroup lacks for one of them is found before anything is written. A
    /// memory limit below what the sandbox uses now is refused by the kernel once it
    /// could not reclaim enough (memory goes first: then nothing else changed); the
    /// error says so.
    pub(crate) fn update(&self, host: &Host, l: &Limits) -> io::Result<()> {
        let refused = |what: &str, e: io::Error| {
            io::Error::new(
                e.kind(),
                format!("setting {what} of the sandbox's cgroup: {e}"),
            )
        };
        if let Some(dir) = &self.v2 {
            if l.cpus.is_some() && !dir.join("cpu.max").exists() {
                return Err(no_cpu_controller(
                    io::ErrorKind::NotFound.into(),
                    "cpu.max of the sandbox's cgroup v2",
                ));
            }
            if let Some(m) = l.memory {
                // Below what it uses now, memory.max would have the kernel kill the
                // sandbox (memory.oom.group) when it cannot reclaim enough: reclaim
                // through memory.high first, and refuse if that was not enough.
                let current = read_u64(&dir.join("memory.current")).unwrap_or(0);
                if m.0 < current {
                    let _ = fs::write(dir.join("memory.high"), m.0.to_string());
                    let after = read_u64(&dir.join("memory.current")).unwrap_or(u64::MAX);
                    let _ = fs::write(dir.join("memory.high"), "max");
                    if after > m.0 {
                        return Err(refused(
                            "memory.max",
                            over_usage(io::Error::from_raw_os_error(libc::EBUSY), m),
                        ));
                    }
                }
                fs::write(dir.join("memory.max"), m.0.to_string())
                    .map_err(|e| refused("memory.max", e))?;
            }
            if let Some(p) = l.pids {
                fs::write(dir.join("pids.max"), p.to_string())
                    .map_err(|e| refused("pids.max", e))?;
            }
            if let Some(c) = l.cpus {
                fs::write(
                    dir.join("cpu.max"),
                    format!("{} {CPU_PERIOD_US}", quota_us(c)),
                )
                .map_err(|e| no_cpu_controller(e, "cpu.max of the sandbox's cgroup v2"))?;
            }
            return Ok(());
        }
        let missing = |what: &str| {
            io::Error::new(
                io::ErrorKind::Unsupported,
                format!("the sandbox has no cgroup v1 {what} group on this host, so its {what} limit cannot change"),
            )
        };
        // Each group a limit needs, before any is written.
        let memory = match l.memory {
            Some(_) => Some(self.memory.as_ref().ok_or_else(|| missing("memory"))?),
            None => None,
        };
        let pids = match l.pids {
            Some(_) => Some(self.pids.as_ref().ok_or_else(|| missing("pids"))?),
            None => None,
        };
        let cpu = match l.cpus {
            None => None,
            Some(_) => {
                let with_cpuacct = matches!(
                    host,
                    Host::V1 {
                        cpu_with_cpuacct: true,
                        ..
                    }
                );
                Some(match (&self.cpu, with_cpuacct) {
                    (Some(d), _) => d,
                    (None, true) => self.cpuacct.as_ref().ok_or_else(|| missing("cpu"))?,
                    (None, false) => {
                        return Err(io::Error::new(
                            io::ErrorKind::Unsupported,
                            "the sandbox was created without a cpus limit, and on this host's cgroup v1 \
                             (cpu and cpuacct apart) only a sandbox created with one has a cpu group \
                             to change: create it with a cpus limit (any, such as the host's CPU count)",
                        ))
                    }
                })
            }
        };
        if let (Some(m), Some(dir)) = (l.memory, memory) {
            // memory+swap must stay at least the memory limit: raise it first, lower
            // it last (it is absent without swap accounting).
            let memsw = dir.join("memory.memsw.limit_in_bytes");
            let now = read_u64(&dir.join("memory.limit_in_bytes")).unwrap_or(u64::MAX);
            if m.0 > now {
                let _ = fs::write(&memsw, m.0.to_string());
            }
            fs::write(dir.join("memory.limit_in_bytes"), m.0.to_string())
                .map_err(|e| refused("memory.limit_in_bytes", over_usage(e, m)))?;
            if m.0 <= now {
                let _ = fs::write(&memsw, m.0.to_string());
            }
        }
        if let (Some(p), Some(dir)) = (l.pids, pids) {
            fs::write(dir.join("pids.max"), p.to_string()).map_err(|e| refused("pids.max", e))?;
        }
        if let (Some(c), Some(dir)) = (l.cpus, cpu) {
            fs::write(dir.join("cpu.cfs_period_us"), CPU_PERIOD_US.to_string())
                .and_then(|_| fs::write(dir.join("cpu.cfs_quota_us"), quota_us(c).to_string()))
                .map_err(|e| no_cpu_controller(e, "cpu.cfs_quota_us of the sandbox's cgroup v1"))?;
        }
        Ok(())
    }

    /// The v2 directory, if this is a v2 cgroup.
    pub(crate) fn v2_dir(&self) -> Option<&Path> {
        self.v2.as_deref()
    }

    /// The leaf's directory in the v1 hierarchy whose hsb directory is `base` (always
    /// `<hierarchy root>/hsb`, see `detect`): under it, or under the parent asked for.
    pub(crate) fn v1_dir(&self, base: &Path) -> PathBuf {
        leaf_dir(base, self.parent.as_deref(), &self.name)
    }

    /// Memory in use now (bytes) and processes alive, for a live sandbox's stats.
    pub(crate) fn usage(&self) -> (Option<u64>, Option<u64>) {
        if let Some(d) = &self.v2 {
            return (
                read_u64(&d.join("memory.current")),
                read_u64(&d.join("pids.current")),
            );
        }
        (
            self.memory
                .as_ref()
                .and_then(|d| read_u64(&d.join("memory.usage_in_bytes"))),
            self.pids
                .as_ref()
                .and_then(|d| read_u64(&d.join("pids.current"))),
        )
    }

    /// Moves `pid` into the run's v2 cgroup (when it was not cloned into it). The v1
    /// leaves are joined by the process itself, through [`Cgroup::v1_join_files`].
    pub(crate) fn add(&self, pid: i32) -> io::Result<()> {
        if let Some(d) = &self.v2 {
            fs::write(d.join("cgroup.procs"), pid.to_string())?;
        }
        Ok(())
    }

    /// The v2 directory, open for `CLONE_INTO_CGROUP` (`None` on v1).
    pub(crate) fn v2_open(&self) -> io::Result<Option<std::os::fd::OwnedFd>> {
        self.v2
            .as_ref()
            .map(|d| open_fd(d, false, libc::O_DIRECTORY))
            .transpose()
    }

    /// The `tasks` file of each v1 leaf, opened for writing, for a single-threaded
    /// process to move itself in by writing `0` to each.
    ///
    /// Why not the parent writing the child's pid into `cgroup.procs`: that write takes
    /// the kernel's global `cgroup_threadgroup_rwsem` for writing, which waits for an RCU
    /// grace period (5–16 ms measured on these hosts, most of a one-shot run). A thread
    /// moving itself through `tasks` (pid `0`, not the whole thread group) skips that
    /// lock in current kernels (`cgroup_procs_write_start`: 0.04 ms measured; a kernel
    /// without that path takes the lock, as before). Permission is checked against the
    /// credentials of the file's opener (this process), so the child may already be in
    /// its user namespace.
    pub(crate) fn v1_join_files(&self) -> io::Result<Vec<std::os::fd::OwnedFd>> {
        [
            &self.memory,
            &self.pids,
            &self.cpuacct,
            &self.cpu,
            &self.freezer,
        ]
        .into_iter()
        .flatten()
        .map(|d| open_fd(&d.join("tasks"), true, 0))
        .collect()
    }

    /// Current usage and events.
    pub(crate) fn stats(&self) -> Stats {
        let f = self.stat_files.get_or_init(|| StatFiles::open(self));
        let mut s = Stats::default();
        if self.v2.is_some() {
            s.cpu_ns = file_keyed(&f.v2_cpu, "usage_usec").map(|us| us * 1000);
            s.peak_memory = file_u64(&f.v2_peak);
            s.oom_kills = file_keyed(&f.v2_events, "oom_kill").unwrap_or(0);
            s.pids_max_hits = file_keyed(&f.v2_pids, "max").unwrap_or(0);
        }
        if self.cpuacct.is_some() {
            s.cpu_ns = file_u64(&f.cpuacct);
        }
        if self.memory.is_some() {
            s.peak_memory = file_u64(&f.v1_peak);
            s.oom_kills = file_keyed(&f.v1_oom, "oom_kill").unwrap_or(0);
        }
        if self.pids.is_some() {
            s.pids_max_hits = file_keyed(&f.v1_pids, "max").unwrap_or(0);
        }
        s
    }

    /// Whether it counts CPU time (so an exec can have a cgroup of its own, below).
    pub(crate) fn counts_cpu(&self) -> bool {
        self.v2.is_some() || self.cpuacct.is_some()
    }

    /// A cgroup of its own for one exec of a live sandbox, under the sandbox's in the
    /// hierarchy that counts CPU time (v2's, or v1's `cpuacct`): its per-exec CPU time
    /// then counts every process the exec starts, not each one alone. `None` without
    /// such a hierarchy. The exec's process joins it through the `cgroup.procs`
    /// descriptor given with it.
    pub(crate) fn exec_child(
        &self,
        id: u64,
    ) -> io::Result<Option<(ExecCgroup, std::os::fd::OwnedFd)>> {
        let (base, v2) = match (&self.v2, &self.cpuacct) {
            (Some(d), _) => (d, true),
            (None, Some(d)) => (d, false),
            _ => return Ok(None),
        };
        let dir = base.join(format!("exec-{id}"));
        fs::create_dir(&dir)?;
        let opened = open_fd(&dir.join("cgroup.procs"), true, 0).and_then(|procs| {
            let usage = fs::File::open(dir.join(if v2 { "cpu.stat" } else { "cpuacct.usage" }))?;
            Ok((procs, usage))
        });
        match opened {
            Ok((procs, usage)) => Ok(Some((
                ExecCgroup {
                    dir,
                    usage: Some(usage),
                    v2,
                },
                procs,
            ))),
            Err(e) => {
                let _ = fs::remove_dir(&dir);
                Err(e)
            }
        }
    }

    /// Removes the cgroup(s). The processes must be gone; retries briefly while the
    /// kernel finishes tearing them down.
    pub(crate) fn remove(&mut self) {
        if self.removed {
            return;
        }
        self.removed = true;
        // Nothing of the cgroup is held open while it goes.
        self.stat_files.take();
        for d in [
            &self.v2,
            &self.memory,
            &self.pids,
            &self.cpuacct,
            &self.cpu,
            &self.freezer,
        ]
        .into_iter()
        .flatten()
        {
            // Execs' cgroups that processes they left in the background kept.
            for child in subdirs(d) {
                remove_dir_retrying(&child);
            }
            remove_dir_retrying(d);
        }
    }
}

/// Removes an empty cgroup, retrying briefly while the kernel finishes tearing down the
/// processes that were in it.
fn remove_dir_retrying(d: &Path) {
    for attempt in 0..200 {
        match fs::remove_dir(d) {
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && attempt < 199 => {
                std::thread::sleep(std::time::Duration::from_micros(500))
            }
            _ => break,
        }
    }
}

/// The child cgroups of `d` (its directories).
fn subdirs(d: &Path) -> Vec<PathBuf> {
    fs::read_dir(d)
        .map(|it| {
            it.flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

/// One exec's cgroup (see [`Cgroup::exec_child`]); removed when dropped, unless
/// processes the exec left in the background are still in it (then it goes with its
/// sandbox's).
#[derive(Debug)]
pub(crate) struct ExecCgroup {
    dir: PathBuf,
    usage: Option<fs::File>,
    v2: bool,
}

impl ExecCgroup {
    /// CPU time used so far by every process that was in it.
    pub(crate) fn cpu_ns(&self) -> Option<u64> {
        if self.v2 {
            file_keyed(&self.usage, "usage_usec").map(|us| us * 1000)
        } else {
            file_u64(&self.usage)
        }
    }

    /// Kills every process in it (those the exec started in other process groups
    /// too). v2: `cgroup.kill`. v1: each listed process, through a pidfd taken before
    /// it is checked to still be in this cgroup (a pid reused meanwhile is not killed).
    pub(crate) fn kill_all(&self) {
        if self.v2 && fs::write(self.dir.join("cgroup.kill"), "1").is_ok() {
            return;
        }
        let Ok(procs) = fs::read_to_string(self.dir.join("cgroup.procs")) else {
            return;
        };
        // Its sandbox's leaf and its own name: `exec-N` alone is in every sandbox.
        let name = match (
            self.dir.parent().and_then(|p| p.file_name()),
            self.dir.file_name(),
        ) {
            (Some(leaf), Some(own)) => {
                format!("/{}/{}", leaf.to_string_lossy(), own.to_string_lossy())
            }
            _ => return,
        };
        for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
            // SAFETY: pidfd_open takes a pid and flags; it returns a new descriptor.
            let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
            if fd < 0 {
                continue;
            }
            // SAFETY: pidfd_open just returned this descriptor; nothing else owns it.
            let pidfd =
                unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd as i32) };
            // While the pidfd is open the pid names that process (or its zombie).
            let still_ours = fs::read_to_string(format!("/proc/{pid}/cgroup"))
                .is_ok_and(|c| c.lines().any(|l| l.ends_with(&name)));
            if still_ours {
                // SAFETY: a pidfd we own; a NULL siginfo sends a plain SIGKILL.
                unsafe {
                    libc::syscall(
                        libc::SYS_pidfd_send_signal,
                        std::os::fd::AsRawFd::as_raw_fd(&pidfd),
                        libc::SIGKILL,
                        std::ptr::null::<libc::siginfo_t>(),
                        0u32,
                    )
                };
            }
        }
    }
}

impl Drop for ExecCgroup {
    fn drop(&mut self) {
        self.usage.take();
        let _ = fs::remove_dir(&self.dir);
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        self.remove();
    }
}

/// A v1 leaf named `name` in the hierarchy whose hsb directory is `base`: in `base`, or
/// in `parent` (from the hierarchy's root).
fn leaf_dir(base: &Path, parent: Option<&Path>, name: &str) -> PathBuf {
    match (parent, base.parent()) {
        (Some(p), Some(root)) => root.join(p).join(name),
        _ => base.join(name),
    }
}

/// Removes leaves left by hybrid-sandbox processes that died without cleaning up.
fn sweep_once(host: &Host) {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let bases: Vec<&PathBuf> = match host {
            Host::V2 { base } => vec![base],
            Host::V1 {
                memory,
                pids,
                cpuacct,
                cpu,
                freezer,
                ..
            } => [memory, pids, cpuacct, cpu, freezer]
                .into_iter()
                .flatten()
                .collect(),
            Host::Unusable { .. } => vec![],
        };
        for base in bases {
            sweep(base);
        }
    });
}

pub(crate) fn sweep(base: &Path) {
    let Ok(entries) = fs::read_dir(base) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.split_once('-'))
            .and_then(|(p, _)| p.parse::<i32>().ok())
        else {
            continue;
        };
        // SAFETY: kill with signal 0 only checks for the process's existence.
        let alive = unsafe { libc::kill(pid, 0) } == 0
            || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
        if !alive && fs::remove_dir(e.path()).is_err() {
            // Execs' cgroups first, then the sandbox's.
            for child in subdirs(&e.path()) {
                empty_and_remove(&child);
            }
            empty_and_remove(&e.path());
        }
    }
}

/// Kills what is left in a dead hybrid-sandbox process's cgroup `dir` and removes it.
fn empty_and_remove(dir: &Path) {
    // Processes are left in it: frozen ones (a paused sandbox whose owner and its thaw
    // guard were killed) do not act on their SIGKILL until thawed.
    let _ = fs::write(dir.join("freezer.state"), "THAWED");
    let _ = fs::write(dir.join("cgroup.freeze"), "0");
    for pid in fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse::<i32>().ok())
    {
        // SAFETY: kill has no memory preconditions; these are the processes of a dead
        // hybrid-sandbox process's sandbox.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    for _ in 0..50 {
        if fs::remove_dir(dir).is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sandbox_core::ByteSize;

    /// The cgroup v2 path, on a directory laid out as cgroupfs would be: the file names
    /// written and the counters parsed (these machines run cgroup v1, so the kernel side
    /// of v2 is not exercised here).
    #[test]
    fn v2_files_written_and_counters_read() {
        let base = std::env::temp_dir().join(format!("hsb-cg2-test-{}", std::process::id()));
        fs::create_dir_all(&base).unwrap();
        let host = Host::V2 { base: base.clone() };
        let limits = Limits {
            memory: Some(ByteSize::mib(64)),
            pids: Some(10),
            cpu_time: Some(std::time::Duration::from_secs(1)),
            ..Default::default()
        };
        let mut details = BTreeMap::new();
        let mut cg = Cgroup::create(&host, &limits, None, &mut details)
            .unwrap()
            .unwrap();
        let dir = cg.v2.clone().unwrap();
        assert_eq!(
            fs::read_to_string(dir.join("memory.max")).unwrap(),
            (64u64 << 20).to_string()
        );
        assert_eq!(fs::read_to_string(dir.join("pids.max")).unwrap(), "10");
        assert_eq!(
            fs::read_to_string(dir.join("memory.oom.group")).unwrap(),
            "1"
        );
        assert!(details["memory"].contains("cgroup v2") && details["pids"].contains("cgroup v2"));
        // What the kernel would report.
        fs::write(
            dir.join("cpu.stat"),
            "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n",
        )
        .unwrap();
        fs::write(dir.join("memory.peak"), "4194304\n").unwrap();
        fs::write(
            dir.join("memory.events"),
            "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n",
        )
        .unwrap();
        fs::write(dir.join("pids.events"), "max 2\n").unwrap();
        let st = cg.stats();
        assert_eq!(
            (st.cpu_ns, st.peak_memory, st.oom_kills, st.pids_max_hits),
            (Some(1_500_000), Some(4 << 20), 1, 2)
        );
        cg.add(1).unwrap();
        assert_eq!(fs::read_to_string(dir.join("cgroup.procs")).unwrap(), "1");
        // Plain directories with files cannot be rmdir'ed like cgroups; clean up by hand.
        cg.removed = true;
        fs::remove_dir_all(&base).unwrap();
    }

    /// A parent cgroup (an engine's): on v1 the leaves are made in it under each
    /// hierarchy's root (the freezer's too), and a hierarchy without it fails naming
    /// the directory; on v2 the leaf stays under hsb's directory and the report says so.
    /// On directories laid out as cgroupfs would be.
    #[test]
    fn leaves_are_made_in_the_parent_asked_for_on_v1_only() {
        let t = std::env::temp_dir().join(format!("hsb-cgparent-test-{}", std::process::id()));
        let hier = ["memory", "pids", "cpuacct", "freezer"];
        for h in hier {
            fs::create_dir_all(t.join(h).join("hsb")).unwrap();
            fs::create_dir_all(t.join(h).join("docker/abc")).unwrap();
        }
        let host = Host::V1 {
            memory: Some(t.join("memory/hsb")),
            pids: Some(t.join("pids/hsb")),
            cpuacct: Some(t.join("cpuacct/hsb")),
            cpu: None,
            cpu_with_cpuacct: false,
            freezer: Some(t.join("freezer/hsb")),
        };
        let limits = Limits {
            memory: Some(ByteSize::mib(64)),
            pids: Some(10),
            ..Default::default()
        };
        let mut details = BTreeMap::new();
        let parent = Path::new("/docker/abc");
        let mut cg = Cgroup::create(&host, &limits, Some(parent), &mut details)
            .unwrap()
            .unwrap();
        let name = cg.name.clone();
        let leaf = |h: &str| t.join(h).join("docker/abc").join(&name);
        assert_eq!(cg.memory.as_deref(), Some(leaf("memory").as_path()));
        assert_eq!(cg.pids.as_deref(), Some(leaf("pids").as_path()));
        assert_eq!(cg.cpuacct.as_deref(), Some(leaf("cpuacct").as_path()));
        assert_eq!(
            fs::read_to_string(leaf("memory").join("memory.limit_in_bytes")).unwrap(),
            (64u64 << 20).to_string()
        );
        assert!(
            details["cgroup_parent"].contains("/docker/abc"),
            "{details:?}"
        );
        let freezer = crate::cgroup_freeze::Freezer::attach(&host, Some(&mut cg));
        assert!(matches!(&freezer, crate::cgroup_freeze::Freezer::V1(d) if *d == leaf("freezer")));
        assert!(fs::read_dir(t.join("memory/hsb")).unwrap().next().is_none());
        cg.removed = true;
        // A hierarchy without the parent: refused, naming what could not be made.
        fs::remove_dir_all(t.join("pids/docker")).unwrap();
        let err = Cgroup::create(&host, &limits, Some(parent), &mut BTreeMap::new()).unwrap_err();
        assert!(err.to_string().contains("pids/docker/abc"), "{err}");
        // v2: not used, and said.
        let v2 = Host::V2 {
            base: t.join("memory/hsb"),
        };
        let mut details = BTreeMap::new();
        let mut cg = Cgroup::create(&v2, &Limits::default(), Some(parent), &mut details)
            .unwrap()
            .unwrap();
        assert!(cg.v2.as_deref().unwrap().starts_with(t.join("memory/hsb")));
        assert!(details["cgroup_parent"].contains("not used"), "{details:?}");
        cg.removed = true;
        fs::remove_dir_all(&t).unwrap();
    }

    /// `CLONE_INTO_CGROUP` as the spawner uses it, on this host's cgroup2 mount (which
    /// need not have any controller): the child starts in the directory, the caller
    /// stays where it was. Skipped where no writable cgroup2 mount exists.
    #[test]
    fn clone3_starts_the_child_in_a_v2_directory() {
        use std::os::fd::{AsRawFd, FromRawFd};
        let Some(m) = mounts().into_iter().find(|m| m.fstype == "cgroup2") else {
            eprintln!("skipped: no cgroup2 mount");
            return;
        };
        let name = format!("hsb-clone3-test-{}", std::process::id());
        let dir = m.point.join(&name);
        if fs::create_dir(&dir).is_err() {
            eprintln!("skipped: {} is not writable", m.point.display());
            return;
        }
        let before = fs::read_to_string("/proc/self/cgroup").unwrap();
        let fd = fs::File::open(&dir).unwrap();
        let r = crate::sys::clone3_into_cgroup(0, fd.as_raw_fd());
        match r {
            Ok((0, _)) => loop {
                // The child: only raw system calls until it is killed.
                // SAFETY: pause has no preconditions.
                unsafe { libc::pause() };
            },
            Ok((pid, pidfd)) => {
                let cg = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
                // SAFETY: CLONE_PIDFD stored a fresh pidfd that nothing else owns.
                let pidfd = unsafe { std::os::fd::OwnedFd::from_raw_fd(pidfd) };
                sandbox_core::child::kill_and_reap(&pidfd);
                fs::remove_dir(&dir).unwrap();
                let line = cg.lines().find(|l| l.starts_with("0::")).unwrap();
                assert_eq!(line, format!("0::/{name}"), "{cg}");
                assert_eq!(fs::read_to_string("/proc/self/cgroup").unwrap(), before);
            }
            Err(e) => {
                fs::remove_dir(&dir).unwrap();
                assert!(
                    matches!(e, libc::ENOSYS | libc::E2BIG),
                    "clone3 failed: {}",
                    io::Error::from_raw_os_error(e)
                );
                eprintln!("skipped: no clone3 with CLONE_INTO_CGROUP here");
            }
        }
    }
}
