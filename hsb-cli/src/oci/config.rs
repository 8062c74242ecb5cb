//! An OCI bundle's `config.json` turned into a live sandbox ([`Workload`] without a
//! program) and the process `start` runs in it.
//!
//! Every field is looked at: what hsb honours is mapped; what it enforces its own way is
//! accepted and written in the container's report ([`Container::notes`]); anything else
//! fails `create` with the field's path named (`linux.resources.cpu.quota: ...`), and so
//! does a field this runtime does not know. Nothing is dropped silently.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hybrid_sandbox::{
    ByteSize, IsolationRequest, Limits, Mount, MountMode, Network, RootDir, Tmpfs, TtySize,
    Workload,
};
use serde_json::{Map, Value};

/// Annotation choosing the isolation: `container`, `microvm` or `auto`.
pub(crate) const ISOLATION_ANNOTATION: &str = "io.hybrid-sandbox.isolation";
/// Prefix of annotations that become the policy's labels.
pub(crate) const LABEL_PREFIX: &str = "io.hybrid-sandbox.label.";
const OWN_PREFIX: &str = "io.hybrid-sandbox.";

/// A config.json that cannot be honoured, with the field's path.
#[derive(Debug)]
pub(crate) struct ConfigError {
    pub(crate) field: String,
    pub(crate) message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "config.json: {}: {}", self.field, self.message)
    }
}

fn err<T>(field: impl Into<String>, message: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError {
        field: field.into(),
        message: message.into(),
    })
}

/// The process `start` (or `exec`) runs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct ProcessSpec {
    pub(crate) argv: Vec<String>,
    pub(crate) env: BTreeMap<String, String>,
    pub(crate) cwd: String,
    pub(crate) terminal: bool,
    pub(crate) size: Option<TtySize>,
    pub(crate) user: (u32, u32),
    /// `process.user.additionalGids` besides the gid: sorted, without duplicates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) groups: Vec<u32>,
}

/// What a bundle asks for, in hsb's terms.
#[derive(Debug)]
pub(crate) struct Container {
    /// The live sandbox to create (no program).
    pub(crate) workload: Workload,
    /// The container's process.
    pub(crate) process: ProcessSpec,
    /// What is enforced differently from what config.json says, in words: written to
    /// the state directory and the log.
    pub(crate) notes: Vec<String>,
    /// `net.*` sysctls to set in the joined network namespace.
    pub(crate) sysctl: Vec<(String, String)>,
    /// The config's annotations (for `state`).
    pub(crate) annotations: BTreeMap<String, String>,
    /// tmpfs mounts with `tmpcopyup` (the field, the target): what the rootfs holds
    /// there would be copied in; hsb accepts only a target with nothing to copy.
    pub(crate) copy_up: Vec<(String, PathBuf)>,
    /// The field of each bind mount (`mounts[i]`), in `workload.mounts`' order.
    pub(crate) bind_fields: Vec<String>,
    /// The hooks to run.
    pub(crate) hooks: super::hooks::Hooks,
    /// config.json asks for a new network namespace (a `network` entry without a path).
    pub(crate) own_netns: bool,
    /// `linux.cgroupsPath`, checked (see `cgroups.rs`): the cgroup the supervisor joins.
    pub(crate) cgroups_path: Option<PathBuf>,
    /// `linux.resources.cpu.cpus` and `mems`: set on that cgroup (see `cgroups::set_cpuset`).
    pub(crate) cpuset: Option<CpuSet>,
}

/// A CPU set and a memory-node set (`linux.resources.cpu.cpus`, `mems`), each a list
/// such as `0-2,5` whose syntax is checked here and whose CPUs the kernel checks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct CpuSet {
    pub(crate) cpus: Option<String>,
    pub(crate) mems: Option<String>,
}

/// What `linux.resources` (at create, or given to `update`) asks, as hsb applies it.
#[derive(Debug, Default)]
pub(crate) struct Resources {
    /// The sandbox's limits.
    pub(crate) limits: Limits,
    /// The CPU and memory-node sets.
    pub(crate) cpuset: Option<CpuSet>,
    /// What is reported, not applied.
    pub(crate) notes: Vec<String>,
}

/// Whether `v` is a CPU or memory-node list as cgroups take it: numbers and ranges
/// (`a-b`, a <= b), comma-separated.
fn is_cpu_list(v: &str) -> bool {
    let num = |n: &str| !n.is_empty() && n.len() <= 6 && n.bytes().all(|b| b.is_ascii_digit());
    !v.is_empty()
        && v.split(',').all(|part| match part.split_once('-') {
            Some((a, b)) => num(a) && num(b) && a.parse::<u32>().ok() <= b.parse::<u32>().ok(),
            None => num(part),
        })
}

/// Reads `<bundle>/config.json`. `forced`: the isolation this runtime is registered for
/// (its binary name or `--isolation`), which an annotation may not contradict.
pub(crate) fn load(
    bundle: &Path,
    forced: Option<IsolationRequest>,
) -> Result<Container, ConfigError> {
    let path = bundle.join("config.json");
    let text = std::fs::read(&path).map_err(|e| ConfigError {
        field: "config.json".into(),
        message: format!("cannot read {}: {e}", path.display()),
    })?;
    parse(&text, bundle, forced)
}

/// Parses config.json's bytes (see [`load`]).
pub(crate) fn parse(
    text: &[u8],
    bundle: &Path,
    forced: Option<IsolationRequest>,
) -> Result<Container, ConfigError> {
    let value: Value = serde_json::from_slice(text).map_err(|e| ConfigError {
        field: "config.json".into(),
        message: format!("malformed JSON: {e}"),
    })?;
    // The typed model checks every known field's shape (types, enum values).
    if let Err(e) = serde_json::from_value::<oci_spec::runtime::Spec>(value.clone()) {
        return err("config.json", format!("not a valid OCI runtime spec: {e}"));
    }
    let Value::Object(top) = value else {
        return err("config.json", "the top level must be a JSON object");
    };
    Mapper::new(bundle, forced).run(top)
}

/// The process of `exec --process FILE` (an OCI `process` object). Rlimits and the
/// like are the container's own and are reported, not applied per process.
pub(crate) fn exec_process(text: &[u8]) -> Result<(ProcessSpec, Vec<String>), ConfigError> {
    let v: Value = serde_json::from_slice(text).map_err(|e| ConfigError {
        field: "process".into(),
        message: format!("malformed JSON: {e}"),
    })?;
    if let Err(e) = serde_json::from_value::<oci_spec::runtime::Process>(v.clone()) {
        return err("process", format!("not a valid OCI process: {e}"));
    }
    let mut m = Mapper::new(Path::new("/"), None);
    m.process(&v)?;
    let p = m.process.take().ok_or_else(|| ConfigError {
        field: "process".into(),
        message: "missing".into(),
    })?;
    Ok((p, m.notes))
}

/// The limits of `update --resources` (an OCI `linux.resources` object): those hsb
/// applies, and what it reports without applying (as at create).
pub(crate) fn resources(text: &[u8]) -> Result<Resources, ConfigError> {
    let v: Value = serde_json::from_slice(text).map_err(|e| ConfigError {
        field: "resources".into(),
        message: format!("malformed JSON: {e}"),
    })?;
    if let Err(e) = serde_json::from_value::<oci_spec::runtime::LinuxResources>(v.clone()) {
        return err(
            "resources",
            format!("not a valid OCI linux.resources object: {e}"),
        );
    }
    let mut m = Mapper::new(Path::new("/"), None);
    m.resources(&v)?;
    Ok(Resources {
        limits: m.w.limits,
        cpuset: m.cpuset,
        notes: m.notes,
    })
}

/// The new limits `update --resources` gives a running container: the mapping of
/// `resources`, where what only a new container can take is refused. runc's -1 lifts a
/// limit, and a sandbox's limits are only ever replaced; a CPU period without a quota
/// would change a limit hsb keeps as a share of the period it always uses (100 ms), so
/// only that period passes alone (as the containerd CRI plugin sends it for a
/// container with no CPU limit).
pub(crate) fn updated_resources(text: &[u8]) -> Result<Resources, ConfigError> {
    let r = resources(text)?;
    // `resources` read it as JSON already.
    let v: Value = serde_json::from_slice(text).unwrap_or_default();
    for (section, key) in [("memory", "limit"), ("pids", "limit"), ("cpu", "quota")] {
        if let Some(n) = v[section][key].as_i64().filter(|n| *n < 0) {
            return err(
                format!("linux.resources.{section}.{key}"),
                format!("{n}: lifting a limit of a running hsb container is not supported; give a value"),
            );
        }
    }
    let quota = v["cpu"]["quota"].as_i64().is_some_and(|q| q > 0);
    match v["cpu"]["period"].as_u64() {
        Some(p) if p > 0 && p != CPU_PERIOD && !quota => err(
            "linux.resources.cpu.period",
            format!(
                "{p}: a CPU period alone cannot change a running hsb container's limit (kept as a share of {CPU_PERIOD} µs); give the quota too (--cpu-quota)"
            ),
        ),
        _ => Ok(r),
    }
}

/// The CPU period hsb's CPU limits are shares of, in microseconds.
const CPU_PERIOD: u64 = 100_000;

struct Mapper<'a> {
    bundle: &'a Path,
    forced: Option<IsolationRequest>,
    w: Workload,
    notes: Vec<String>,
    sysctl: Vec<(String, String)>,
    annotations: BTreeMap<String, String>,
    process: Option<ProcessSpec>,
    copy_up: Vec<(String, PathBuf)>,
    bind_fields: Vec<String>,
    hooks: super::hooks::Hooks,
    own_netns: bool,
    cgroups_path: Option<PathBuf>,
    cpuset: Option<CpuSet>,
}

fn obj<'v>(v: &'v Value, field: &str) -> Result<&'v Map<String, Value>, ConfigError> {
    v.as_object()
        .map_or_else(|| err(field, "must be an object"), Ok)
}

fn s<'v>(v: &'v Value, field: &str) -> Result<&'v str, ConfigError> {
    v.as_str()
        .map_or_else(|| err(field, "must be a string"), Ok)
}

fn u(v: &Value, field: &str) -> Result<u64, ConfigError> {
    v.as_u64()
        .map_or_else(|| err(field, "must be a non-negative integer"), Ok)
}

fn strings(v: &Value, field: &str) -> Result<Vec<String>, ConfigError> {
    let Some(a) = v.as_array() else {
        return err(field, "must be an array of strings");
    };
    a.iter()
        .enumerate()
        .map(|(i, x)| s(x, &format!("{field}[{i}]")).map(str::to_string))
        .collect()
}

/// True for JSON values that ask for nothing (absent, null, false, 0, "", [], {}).
fn empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.values().all(empty),
    }
}

impl<'a> Mapper<'a> {
    fn new(bundle: &'a Path, forced: Option<IsolationRequest>) -> Mapper<'a> {
        Mapper {
            bundle,
            forced,
            w: Workload::default(),
            notes: Vec::new(),
            sysctl: Vec::new(),
            annotations: BTreeMap::new(),
            process: None,
            copy_up: Vec::new(),
            bind_fields: Vec::new(),
            hooks: Default::default(),
            own_netns: false,
            cgroups_path: None,
            cpuset: None,
        }
    }
}

impl Mapper<'_> {
    fn run(mut self, top: Map<String, Value>) -> Result<Container, ConfigError> {
        // Annotations first: the isolation decides nothing below, but labels and the
        // isolation are part of the workload.
        if let Some(a) = top.get("annotations") {
            self.annotations(a)?;
        }
        // The runtime's own isolation (its name, --isolation, its config file) holds
        // whether or not the bundle has annotations.
        if let Some(f) = self.forced {
            if self.w.isolation.is_none_or(|a| a == IsolationRequest::Auto) {
                self.w.isolation = Some(f);
            }
        }
        for (k, v) in &top {
            match k.as_str() {
                "ociVersion" => {
                    let ver = s(v, k)?;
                    if !ver.starts_with("1.") {
                        return err(k, format!("version {ver} is not supported (1.x is)"));
                    }
                }
                "annotations" => {}
                "process" => self.process(v)?,
                "root" => self.root(v)?,
                "hostname" => {
                    let h = s(v, k)?;
                    if !h.is_empty() {
                        self.w.hostname = Some(h.to_string());
                    }
                }
                "domainname" if empty(v) => {}
                "mounts" => self.mounts(v)?,
                "linux" => self.linux(v)?,
                "hooks" => self.hooks = super::hooks::parse(v)?,
                "solaris" | "windows" | "vm" | "zos" if empty(v) => {}
                other => {
                    return err(
                        other,
                        "not supported by hsb (unknown to it, or for another platform)",
                    )
                }
            }
        }
        let Some(process) = self.process.take() else {
            return err("process", "missing: the container needs a process to start");
        };
        if self.w.utsns.is_some() && self.w.hostname.is_some() {
            // As runc: the joined namespace's owner names it.
            return err(
                "hostname",
                "cannot be set in a joined UTS namespace (a `uts` entry of linux.namespaces has a path)",
            );
        }
        if self.w.root_dir.is_none() {
            return err("root", "missing: the container needs a root filesystem");
        }
        if self.w.isolation == Some(IsolationRequest::MicroVm) {
            self.microvm_network();
        }
        self.groups(&process.groups)?;
        self.w.cwd = Some(process.cwd.clone());
        self.w.user = Some(process.user);
        self.w.groups = process.groups.clone();
        Ok(Container {
            workload: self.w,
            process,
            notes: self.notes,
            sysctl: self.sysctl,
            annotations: self.annotations,
            copy_up: self.copy_up,
            bind_fields: self.bind_fields,
            hooks: self.hooks,
            own_netns: self.own_netns,
            cgroups_path: self.cgroups_path,
            cpuset: self.cpuset,
        })
    }

    /// Supplementary groups (`process.user.additionalGids`) are given by the container
    /// backend to a root runtime (each the same gid on the host, never a group the host
    /// names: the backend refuses those by gid); a rootless runtime's user namespace
    /// cannot map them, and the micro-VM's processes have none: refused here, naming
    /// the gid.
    fn groups(&self, groups: &[u32]) -> Result<(), ConfigError> {
        let Some(g) = groups.first() else {
            return Ok(());
        };
        let f = "process.user.additionalGids";
        if self.w.isolation == Some(IsolationRequest::MicroVm) {
            return err(
                f,
                format!("supplementary group {g}: the micro-VM's processes have only their gid (use the container runtime, or remove --group-add / supplementalGroups / fsGroup)"),
            );
        }
        if !nix::unistd::geteuid().is_root() {
            return err(
                f,
                format!("supplementary group {g} cannot be mapped into the container's user namespace: a rootless runtime's maps only its own group (run the engine as root, or remove --group-add / supplementalGroups / fsGroup)"),
            );
        }
        Ok(())
    }

    /// A micro-VM container's network is the namespace the engine made or names (or
    /// the one the supervisor makes for the engine's hooks, `own_netns`): the guest has
    /// its own loopback, and its TCP beyond the VM goes through a relay thread of the
    /// VMM process that joined that namespace (connections made there, a listener there
    /// for each port the guest listens at, so published ports reach it), and so does
    /// its UDP (DNS included); said in the container's report. Without a
    /// namespace, the guest has its own loopback only; `net.*` sysctls then have no
    /// namespace to go to. Joined IPC and UTS namespaces mean nothing to the VM's
    /// kernel, and are refused by the backend by name.
    fn microvm_network(&mut self) {
        let for_hooks = self.own_netns && !self.hooks.create.is_empty();
        if self.w.netns.is_some() || for_hooks {
            self.notes.push(
                "linux.namespaces: the micro-VM's TCP and UDP go through the engine's network namespace (a relay thread of the VMM process makes its connections and sends its datagrams there, and listens there at the TCP ports the guest listens at); no IPv6 beyond its loopback, no raw sockets; the guest sees itself at 100.96.0.2".into(),
            );
        }
        if self.w.netns.is_none() && !for_hooks {
            for (k, _) in self.sysctl.drain(..) {
                self.notes.push(format!(
                    "linux.sysctl.{k}: not applied (no network namespace to apply it in)"
                ));
            }
        }
    }

    fn annotations(&mut self, v: &Value) -> Result<(), ConfigError> {
        for (k, val) in obj(v, "annotations")? {
            let field = format!("annotations.{k}");
            let val = s(val, &field)?;
            self.annotations.insert(k.clone(), val.to_string());
            if k == ISOLATION_ANNOTATION {
                let asked: IsolationRequest = val.parse().map_err(|m: String| ConfigError {
                    field: field.clone(),
                    message: m,
                })?;
                match self.forced {
                    Some(f) if f != asked && asked != IsolationRequest::Auto => {
                        return err(
                            field,
                            format!(
                                "asks for {asked}, but this runtime is registered for {f} isolation; use the runtime registered for {asked}"
                            ),
                        )
                    }
                    _ => self.w.isolation = Some(asked),
                }
            } else if let Some(key) = k.strip_prefix(LABEL_PREFIX) {
                if key.is_empty() {
                    return err(field, "a label needs a key after the prefix");
                }
                self.w.labels.insert(key.to_string(), val.to_string());
            } else if k.starts_with(OWN_PREFIX) {
                return err(
                    field,
                    format!(
                        "unknown hsb annotation (known: {ISOLATION_ANNOTATION}, {LABEL_PREFIX}KEY)"
                    ),
                );
            }
        }

        Ok(())
    }

    fn process(&mut self, v: &Value) -> Result<(), ConfigError> {
        let mut p = ProcessSpec {
            argv: Vec::new(),
            env: BTreeMap::new(),
            cwd: "/".into(),
            terminal: false,
            size: None,
            user: (0, 0),
            groups: Vec::new(),
        };
        for (k, val) in obj(v, "process")? {
            let field = format!("process.{k}");
            match k.as_str() {
                "args" => p.argv = strings(val, &field)?,
                "env" => {
                    for (i, kv) in strings(val, &field)?.into_iter().enumerate() {
                        match kv.split_once('=') {
                            Some((k, v)) if !k.is_empty() => {
                                p.env.insert(k.to_string(), v.to_string());
                            }
                            _ => return err(format!("{field}[{i}]"), "must be KEY=VALUE"),
                        }
                    }
                }
                "cwd" => {
                    let c = s(val, &field)?;
                    if !c.starts_with('/') {
                        return err(field, "must be an absolute path");
                    }
                    p.cwd = c.to_string();
                }
                "terminal" => p.terminal = val.as_bool().unwrap_or(false),
                "consoleSize" => {
                    let o = obj(val, &field)?;
                    let dim = |n: &str| -> Result<u16, ConfigError> {
                        let f = format!("{field}.{n}");
                        o.get(n)
                            .map(|x| u(x, &f))
                            .transpose()?
                            .unwrap_or(0)
                            .try_into()
                            .map_or_else(|_| err(f, "too large"), Ok)
                    };
                    let (rows, cols) = (dim("height")?, dim("width")?);
                    if rows > 0 && cols > 0 {
                        p.size = Some(TtySize { rows, cols });
                    }
                }
                "user" => (p.user, p.groups) = self.user(val, &field)?,
                "rlimits" => self.rlimits(val, &field)?,
                "capabilities" => self.notes.push(
                    "process.capabilities: every capability is dropped (hsb grants none)".into(),
                ),
                "noNewPrivileges" => {}
                "oomScoreAdj" => self
                    .notes
                    .push("process.oomScoreAdj: hsb sets 1000 on the container's processes".into()),
                "apparmorProfile" | "selinuxLabel" if empty(val) => {}
                "apparmorProfile" | "selinuxLabel" => self.notes.push(format!(
                    "{field}: not applied (hsb confines with seccomp, Landlock and namespaces)"
                )),
                "commandLine" | "ioPriority" | "scheduler" | "execCPUAffinity" if empty(val) => {}
                other => return err(format!("process.{other}"), "not supported by hsb"),
            }
        }
        if p.argv.is_empty() {
            return err("process.args", "missing or empty: nothing to run");
        }
        self.process = Some(p);
        Ok(())
    }

    /// `process.user`: the uid and gid, and the supplementary groups besides the gid.
    fn user(&mut self, v: &Value, field: &str) -> Result<((u32, u32), Vec<u32>), ConfigError> {
        let o = obj(v, field)?;
        let id = |n: &str| -> Result<u32, ConfigError> {
            let f = format!("{field}.{n}");
            o.get(n)
                .map(|x| u(x, &f))
                .transpose()?
                .unwrap_or(0)
                .try_into()
                .map_or_else(|_| err(f, "out of range"), Ok)
        };
        let ids = (id("uid")?, id("gid")?);
        let mut groups = Vec::new();
        for (k, val) in o {
            match k.as_str() {
                "uid" | "gid" => {}
                "umask" => {
                    if val.as_u64() != Some(0o022) && !empty(val) {
                        self.notes
                            .push(format!("{field}.umask: the container's umask is 022"));
                    }
                }
                "additionalGids" => {
                    let f = format!("{field}.additionalGids");
                    let Some(list) = val.as_array() else {
                        return err(f, "must be an array of gids");
                    };
                    for (i, g) in list.iter().enumerate() {
                        let g = u(g, &format!("{f}[{i}]"))?;
                        let Ok(g) = u32::try_from(g) else {
                            return err(format!("{f}[{i}]"), format!("{g} is out of range"));
                        };
                        if g != ids.1 {
                            groups.push(g);
                        }
                    }
                }
                "username" if empty(val) => {}
                other => return err(format!("{field}.{other}"), "not supported by hsb"),
            }
        }
        groups.sort_unstable();
        groups.dedup();
        Ok((ids, groups))
    }

    fn rlimits(&mut self, v: &Value, field: &str) -> Result<(), ConfigError> {
        let Some(list) = v.as_array() else {
            return err(field, "must be an array");
        };
        let host_nofile = nofile_ceiling();
        for (i, r) in list.iter().enumerate() {
            let f = format!("{field}[{i}]");
            let o = obj(r, &f)?;
            let kind = o
                .get("type")
                .map(|t| s(t, &format!("{f}.type")))
                .transpose()?
                .unwrap_or("");
            let hard = o
                .get("hard")
                .map(|x| u(x, &format!("{f}.hard")))
                .transpose()?
                .unwrap_or(0);
            match kind {
                "RLIMIT_NOFILE" => {
                    if hard > host_nofile {
                        return err(
                            f,
                            format!("RLIMIT_NOFILE {hard} is above what this host lets the runtime grant ({host_nofile}: its hard limit, or fs.nr_open with CAP_SYS_RESOURCE); ask for {host_nofile} or less, e.g. with the engine's --ulimit nofile"),
                        );
                    }
                    self.w.limits.open_files = Some(hard);
                }
                "RLIMIT_NPROC" => self.notes.push(format!(
                    "{f}: RLIMIT_NPROC is not set (it counts per host user, which sandboxes share); the pids limit bounds processes"
                )),
                "RLIMIT_CORE" => self
                    .notes
                    .push(format!("{f}: core dumps stay off (RLIMIT_CORE 0)")),
                other => {
                    return err(
                        format!("{f}.type"),
                        format!("{other} is not supported by hsb (RLIMIT_NOFILE is; RLIMIT_NPROC and RLIMIT_CORE are reported)"),
                    )
                }
            }
        }
        Ok(())
    }

    fn root(&mut self, v: &Value) -> Result<(), ConfigError> {
        let o = obj(v, "root")?;
        let mut path = None;
        let mut readonly = false;
        for (k, val) in o {
            match k.as_str() {
                "path" => path = Some(s(val, "root.path")?),
                "readonly" => readonly = val.as_bool().unwrap_or(false),
                other => return err(format!("root.{other}"), "not supported by hsb"),
            }
        }
        let Some(p) = path else {
            return err("root.path", "missing");
        };
        let full = self.bundle.join(p);
        match std::fs::metadata(&full) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return err(
                    "root.path",
                    format!("{} is not a directory", full.display()),
                )
            }
            Err(e) => return err("root.path", format!("{}: {e}", full.display())),
        }
        self.w.root_dir = Some(RootDir {
            path: full,
            readonly,
        });
        Ok(())
    }

    fn mounts(&mut self, v: &Value) -> Result<(), ConfigError> {
        let Some(list) = v.as_array() else {
            return err("mounts", "must be an array");
        };
        for (i, m) in list.iter().enumerate() {
            let f = format!("mounts[{i}]");
            let o = obj(m, &f)?;
            let mut dest = "";
            let mut kind = "";
            let mut source = "";
            let mut options = Vec::new();
            for (k, val) in o {
                match k.as_str() {
                    "destination" => dest = s(val, &format!("{f}.destination"))?,
                    "type" => kind = s(val, &format!("{f}.type"))?,
                    "source" => source = s(val, &format!("{f}.source"))?,
                    "options" => options = strings(val, &format!("{f}.options"))?,
                    "uidMappings" | "gidMappings" if empty(val) => {}
                    other => return err(format!("{f}.{other}"), "not supported by hsb"),
                }
            }
            if !dest.starts_with('/') {
                return err(format!("{f}.destination"), "must be an absolute path");
            }
            let bind = kind == "bind" || options.iter().any(|o| o == "bind" || o == "rbind");
            match (bind, kind, dest) {
                (false, "proc", "/proc") | (false, "tmpfs", "/dev") | (false, "devpts", "/dev/pts") => {}
                (false, "sysfs", "/sys") | (false, "cgroup" | "cgroup2", "/sys/fs/cgroup") => {
                    self.notes.push(format!(
                        "{f}: {kind} at {dest} is not mounted (hsb shows no host kernel interface; /sys is empty)"
                    ))
                }
                (false, "mqueue", "/dev/mqueue") => self.notes.push(format!(
                    "{f}: /dev/mqueue is the sandbox's own (the container mounts its IPC namespace's queues there, not a joined pod namespace's; the micro-VM's queues need no mount)"
                )),
                // Docker's (`--shm-size`): an in-memory filesystem of its own, with its
                // size, apart from /tmp's.
                (false, "tmpfs", "/dev/shm") => self.tmpfs(&f, dest, &options)?,
                // A bind of the engine's shared memory (Podman's, a pod's): not shared;
                // the container's /dev/shm is its /tmp.
                (_, _, "/dev/shm") => self.notes.push(format!(
                    "{f}: a {kind} at /dev/shm is not mounted (POSIX shared memory is not shared with the engine or a pod): /dev/shm is the container's /tmp (a link)"
                )),
                (true, _, _) => self.bind(&f, source, dest, &options)?,
                (false, "tmpfs", _) => self.tmpfs(&f, dest, &options)?,
                _ => {
                    return err(
                        f,
                        format!("a {kind} mount at {dest} is not supported by hsb (bind and tmpfs mounts are; proc, /dev, devpts, sysfs, cgroup and mqueue are the sandbox's own)"),
                    )
                }
            }
        }
        Ok(())
    }

    fn bind(
        &mut self,
        f: &str,
        source: &str,
        dest: &str,
        options: &[String],
    ) -> Result<(), ConfigError> {
        let mut mode = MountMode::Rw;
        let mut noexec = false;
        for o in options {
            match o.as_str() {
                "ro" => mode = MountMode::Ro,
                "rw" | "bind" | "rbind" | "private" | "rprivate" | "slave" | "rslave"
                | "nosuid" | "nodev" | "relatime" | "norelatime" | "strictatime" | "z" | "Z" => {}
                "noexec" => noexec = true,
                "exec" => noexec = false,
                other => {
                    return err(
                        format!("{f}.options"),
                        format!("`{other}` is not supported by hsb for a bind mount"),
                    )
                }
            }
        }
        if source.is_empty() {
            return err(format!("{f}.source"), "missing");
        }
        let src: PathBuf = self.bundle.join(source);
        // `noexec` is the mount's in either backend: the container sets
        // MOUNT_ATTR_NOEXEC on the bind, the micro-VM refuses to run or map executable
        // what is on it (its mount report says `noexec`).
        self.bind_fields.push(f.to_string());
        self.w.mounts.push(Mount {
            source: src,
            target: Some(dest.into()),
            mode,
            optional: false,
            system: false,
            noexec,
        });
        Ok(())
    }

    /// A `tmpfs` mount: its size and mode are honoured, `nosuid` and `nodev` always
    /// apply; what hsb does not do its way fails naming the option.
    fn tmpfs(&mut self, f: &str, dest: &str, options: &[String]) -> Result<(), ConfigError> {
        let mut t = Tmpfs {
            target: dest.into(),
            size: None,
            mode: None,
            noexec: false,
        };
        for o in options {
            let field = format!("{f}.options");
            match o.split_once('=') {
                Some(("size", v)) => t.size = Some(ByteSize(tmpfs_size(v).map_err(|m| ConfigError { field, message: m })?)),
                Some(("mode", v)) => {
                    t.mode = Some(u32::from_str_radix(v, 8).ok().filter(|m| *m <= 0o7777).ok_or_else(|| ConfigError {
                        field,
                        message: format!("`mode={v}` is not an octal permission"),
                    })?)
                }
                None if matches!(
                    o.as_str(),
                    "rw" | "nosuid" | "nodev" | "strictatime" | "relatime" | "norelatime"
                        | "noatime" | "private" | "rprivate" | "slave" | "rslave"
                ) => {}
                None if o == "noexec" => t.noexec = true,
                None if o == "exec" => t.noexec = false,
                None if o == "tmpcopyup" => self.copy_up.push((field, dest.into())),
                _ => {
                    return err(
                        field,
                        format!("`{o}` is not supported by hsb for a tmpfs mount (size=, mode=, nosuid, nodev, noexec, exec and the atime options are)"),
                    )
                }
            }
        }
        self.w.tmpfs.push(t);
        Ok(())
    }

    fn linux(&mut self, v: &Value) -> Result<(), ConfigError> {
        for (k, val) in obj(v, "linux")? {
            let field = format!("linux.{k}");
            match k.as_str() {
                "namespaces" => self.namespaces(val)?,
                "resources" => self.resources(val)?,
                "sysctl" => {
                    for (key, value) in obj(val, &field)? {
                        let value = s(value, &format!("{field}.{key}"))?;
                        if !key.starts_with("net.") {
                            return err(
                                format!("{field}.{key}"),
                                "only net.* sysctls are supported (set in the engine's network namespace)",
                            );
                        }
                        self.sysctl.push((key.clone(), value.to_string()));
                    }
                }
                "cgroupsPath" => match super::cgroups::requested(s(val, &field)?) {
                    Ok(Ok(path)) => {
                        self.notes.push(format!(
                            "{field}: the supervisor joins it; the container's processes are in hsb's own cgroup (limits from linux.resources)"
                        ));
                        self.cgroups_path = Some(path);
                    }
                    Ok(Err(why)) => self.notes.push(format!("{field}: {why}")),
                    Err(why) => return err(field, why),
                },
                "seccomp" => self.notes.push(
                    "linux.seccomp: the engine's profile is replaced by hsb's own default-deny allowlist"
                        .into(),
                ),
                "maskedPaths" | "readonlyPaths" => self.notes.push(format!(
                    "{field}: host kernel files are out of reach of the container's user namespace (/sys is not mounted; /proc/sys and the like are read-only to it)"
                )),
                "devices" if empty(val) => {}
                "devices" => {
                    return err(
                        field,
                        "devices are not supported by hsb (the container gets null, zero, full, random, urandom and its own terminals)",
                    )
                }
                "uidMappings" | "gidMappings" if empty(val) => {}
                "uidMappings" | "gidMappings" => {
                    return err(
                        field,
                        "user namespace mappings are hsb's own (the container's user maps to an unprivileged host id)",
                    )
                }
                "rootfsPropagation" | "mountLabel" if empty(val) => {}
                "rootfsPropagation" => self
                    .notes
                    .push(format!("{field}: the container's mounts are private")),
                other => return err(format!("linux.{other}"), "not supported by hsb"),
            }
        }
        Ok(())
    }

    fn namespaces(&mut self, v: &Value) -> Result<(), ConfigError> {
        let Some(list) = v.as_array() else {
            return err("linux.namespaces", "must be an array");
        };
        let mut seen = Vec::new();
        for (i, n) in list.iter().enumerate() {
            let f = format!("linux.namespaces[{i}]");
            let o = obj(n, &f)?;
            let kind = o
                .get("type")
                .map(|t| s(t, &format!("{f}.type")))
                .transpose()?
                .unwrap_or("");
            let path = o
                .get("path")
                .map(|p| s(p, &format!("{f}.path")))
                .transpose()?
                .unwrap_or("");
            for k in o.keys() {
                if k != "type" && k != "path" {
                    return err(format!("{f}.{k}"), "not supported by hsb");
                }
            }
            seen.push(kind);
            match (kind, path.is_empty()) {
                ("network", false) => {
                    self.w.netns = Some(path.into());
                    self.w.network = Some(Network::Loopback);
                }
                ("network", true) => {
                    self.w.network = Some(Network::Loopback);
                    self.own_netns = true;
                }
                ("ipc", false) => self.w.ipcns = Some(path.into()),
                ("uts", false) => self.w.utsns = Some(path.into()),
                ("pid" | "ipc" | "uts" | "mount" | "cgroup" | "user", true) => {}
                ("pid" | "mount" | "cgroup" | "user", false) => {
                    return err(
                        format!("{f}.path"),
                        format!("joining an existing {kind} namespace is not supported by hsb (the network, IPC and UTS namespaces can be joined)"),
                    )
                }
                (other, _) => {
                    return err(format!("{f}.type"), format!("`{other}` is not supported by hsb"))
                }
            }
        }
        for needed in ["pid", "ipc", "uts", "mount", "network"] {
            if !seen.contains(&needed) {
                return err(
                    "linux.namespaces",
                    format!("no `{needed}` entry asks to share the host's {needed} namespace; hsb always gives a container its own"),
                );
            }
        }
        Ok(())
    }

    fn resources(&mut self, v: &Value) -> Result<(), ConfigError> {
        for (k, val) in obj(v, "linux.resources")? {
            let field = format!("linux.resources.{k}");
            match k.as_str() {
                "memory" => {
                    for (mk, mv) in obj(val, &field)? {
                        let mf = format!("{field}.{mk}");
                        match mk.as_str() {
                            "limit" => {
                                if let Some(n) = mv.as_i64() {
                                    if n > 0 {
                                        self.w.limits.memory = Some(ByteSize(n as u64));
                                    }
                                } else {
                                    return err(mf, "must be an integer");
                                }
                            }
                            "swap" => self
                                .notes
                                .push(format!("{mf}: swap is not limited apart from memory")),
                            "reservation" | "swappiness" => {
                                self.notes.push(format!("{mf}: not applied"))
                            }
                            "disableOOMKiller" if empty(mv) => {}
                            "kernel" | "kernelTCP" | "checkBeforeUpdate" | "useHierarchy"
                                if empty(mv) => {}
                            other => {
                                return err(format!("{field}.{other}"), "not supported by hsb")
                            }
                        }
                    }
                }
                "pids" => {
                    if let Some(l) = val.get("limit").and_then(Value::as_i64) {
                        if l > 0 {
                            self.w.limits.pids = Some(l as u64);
                        }
                    }
                }
                "devices" => {
                    // Rules only narrow what a runc container may open; hsb's set of
                    // devices is fixed (null, zero, full, random, urandom, its own pty).
                }
                "cpu" => {
                    let cpu = obj(val, &field)?;
                    let quota = cpu.get("quota").and_then(Value::as_i64).filter(|q| *q > 0);
                    let period = match cpu.get("period") {
                        None => CPU_PERIOD,
                        Some(p) if empty(p) => CPU_PERIOD,
                        Some(p) => match p.as_u64() {
                            Some(p) if p >= 1000 => p,
                            _ => {
                                return err(
                                    format!("{field}.period"),
                                    "must be a number of microseconds, 1000 or more",
                                )
                            }
                        },
                    };
                    for (ck, cv) in cpu {
                        match ck.as_str() {
                            "shares" | "realtimePeriod" | "realtimeRuntime" | "idle" | "burst" => {
                                if !empty(cv) {
                                    self.notes.push(format!("{field}.{ck}: not applied"))
                                }
                            }
                            "period" => {}
                            "quota" if empty(cv) || cv.as_i64() == Some(-1) || quota.is_some() => {}
                            "cpus" | "mems" if empty(cv) => {}
                            "cpus" | "mems" => {
                                let list = s(cv, &format!("{field}.{ck}"))?.trim();
                                if !is_cpu_list(list) {
                                    return err(
                                        format!("{field}.{ck}"),
                                        format!("{list:?} is not a list of numbers and ranges such as 0-2,5"),
                                    );
                                }
                                let set = self.cpuset.get_or_insert_with(CpuSet::default);
                                if ck == "cpus" {
                                    set.cpus = Some(list.to_string());
                                } else {
                                    set.mems = Some(list.to_string());
                                }
                            }
                            other => {
                                return err(format!("{field}.{other}"), "not supported by hsb")
                            }
                        }
                    }
                    if let Some(q) = quota {
                        // quota/period CPUs, in thousandths, at least one.
                        let millis = (q as u64).saturating_mul(1000) / period;
                        self.w.limits.cpus = Some(hybrid_sandbox::units::Cpus(
                            millis.clamp(1, 1_000_000) as u32,
                        ));
                    }
                }
                "blockIO" | "hugepageLimits" | "network" | "rdma" | "unified" if empty(val) => {}
                other => return err(format!("linux.resources.{other}"), "not supported by hsb"),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;

/// The most open files a container may be granted: the runtime's own hard limit, or
/// with `CAP_SYS_RESOURCE` (root's, unless a container or the host took it away),
/// which may raise it as runc does, `fs.nr_open`, the kernel's ceiling.
pub(crate) fn nofile_ceiling() -> u64 {
    let hard = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map_or(u64::MAX, |(_, hard)| hard);
    if !has_sys_resource() {
        return hard;
    }
    std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|n| n.trim().parse::<u64>().ok())
        .map_or(hard, |n| n.max(hard))
}

/// Whether this process holds `CAP_SYS_RESOURCE` (capability 24, a bit of `CapEff`).
fn has_sys_resource() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .is_some_and(|caps| caps & (1 << 24) != 0)
}

/// Raises this process's hard `RLIMIT_NOFILE` to `n` if it is lower, so the sandbox
/// made next inherits room for a container's `RLIMIT_NOFILE` of `n` (checked against
/// `nofile_ceiling` when the config was read).
pub(crate) fn raise_nofile(n: u64) -> Result<(), String> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(|e| e.to_string())?;
    if n <= hard {
        return Ok(());
    }
    setrlimit(Resource::RLIMIT_NOFILE, soft, n)
        .map_err(|e| format!("cannot raise this runtime's RLIMIT_NOFILE to {n}: {e}"))
}

/// A tmpfs `size=` option: bytes, or with a `k`, `m` or `g` suffix (a share of memory,
/// `50%`, is refused: the sandbox's size is its own, not the host's).
fn tmpfs_size(v: &str) -> Result<u64, String> {
    let (digits, shift) = match v.as_bytes().last() {
        Some(b'k' | b'K') => (&v[..v.len() - 1], 10),
        Some(b'm' | b'M') => (&v[..v.len() - 1], 20),
        Some(b'g' | b'G') => (&v[..v.len() - 1], 30),
        _ => (v, 0),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1 << shift))
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("`size={v}` is not a size in bytes (with k, m or g)"))
}
