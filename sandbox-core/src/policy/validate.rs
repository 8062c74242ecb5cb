//! Checks on policy values and per-run options, with messages that say what to do.

use std::path::{Component, Path, PathBuf};

use super::error::{did_you_mean, Location, PolicyError};
use super::schema::{FloorSpec, PolicyFile, ProfileSpec};
use crate::limits::Limits;
use crate::plan::{PlannedMount, PlannedTmpfs};
use crate::units::ByteSize;
use crate::workload::{Mount, MountMode, Tmpfs, Workload};

/// A policy file larger than this is refused before it is read.
pub(crate) const MAX_POLICY_BYTES: u64 = 1 << 20;

const MIN_MEMORY: u64 = 4 << 20;
const MAX_MEMORY: u64 = 1 << 44;
const MAX_PIDS: u64 = 1 << 22;
const MAX_OPEN_FILES: u64 = 1 << 20;
const MAX_PROFILES: usize = 1000;
const MAX_MOUNTS: usize = 256;

/// Host paths that are kernel interfaces, never mountable into a sandbox.
const FORBIDDEN_SOURCES: [&str; 3] = ["/proc", "/sys", "/dev"];
/// Sandbox paths the sandbox itself provides.
const RESERVED_TARGETS: [&str; 2] = ["/proc", "/dev"];

/// Where POSIX shared memory lives: an in-memory filesystem may be put there (see
/// [`plan_tmpfs`]); without one, the backends link it to /tmp.
pub(crate) const SHM: &str = "/dev/shm";

/// Adds a "did you mean" to serde's "unknown field `x`, expected one of `a`, `b`".
pub(crate) fn improve_serde_message(msg: &str) -> String {
    let msg = msg.trim_end();
    let Some(rest) = msg.strip_prefix("unknown field `") else {
        return msg.to_string();
    };
    let Some((field, tail)) = rest.split_once('`') else {
        return msg.to_string();
    };
    let candidates: Vec<&str> = tail.split('`').skip(1).step_by(2).collect();
    match did_you_mean(field, candidates.iter().copied()) {
        Some(s) => format!(
            "unknown key `{field}` (did you mean `{s}`?); {}",
            tail.trim_start_matches(", ")
        ),
        None => format!("unknown key `{field}`; {}", tail.trim_start_matches(", ")),
    }
}

pub(crate) fn policy(file: &PolicyFile, origin: &str) -> Result<(), PolicyError> {
    let loc = || Location {
        origin: origin.to_string(),
        line: None,
        column: None,
    };
    if let Some(v) = file.version {
        if v != 1 {
            return Err(PolicyError::Invalid {
                location: loc(),
                key: "version".into(),
                message: format!("version {v} is not known to this hybrid-sandbox; only 1 is"),
            });
        }
    }
    if file.profiles.len() > MAX_PROFILES {
        return Err(PolicyError::Invalid {
            location: loc(),
            key: "profiles".into(),
            message: format!("{} profiles; at most {MAX_PROFILES}", file.profiles.len()),
        });
    }
    profile(&file.defaults, "defaults").map_err(|(key, message)| PolicyError::Invalid {
        location: loc(),
        key,
        message,
    })?;
    for (i, rule) in file.rules.iter().enumerate() {
        if !file.profiles.contains_key(&rule.profile) {
            let hint = did_you_mean(&rule.profile, file.profiles.keys().map(String::as_str))
                .map(|s| format!(" (did you mean `{s}`?)"))
                .unwrap_or_default();
            return Err(PolicyError::Invalid {
                location: loc(),
                key: format!("rules[{i}].profile"),
                message: format!("there is no profile `{}`{hint}", rule.profile),
            });
        }
        if rule.program.is_none() && rule.labels.is_empty() {
            return Err(PolicyError::Invalid {
                location: loc(),
                key: format!("rules[{i}]"),
                message: "a rule needs `program` or `labels` to match on (a catch-all is the `default` profile)".into(),
            });
        }
        if let Some(p) = &rule.program {
            glob::Pattern::new(p).map_err(|e| PolicyError::Invalid {
                location: loc(),
                key: format!("rules[{i}].program"),
                message: format!("`{p}` is not a valid glob: {e}"),
            })?;
        }
    }
    let layered_all = std::iter::once(("defaults".to_string(), file.defaults.clone())).chain(
        file.profiles
            .iter()
            .map(|(n, p)| (format!("profiles.{n}"), file.defaults.layered(p))),
    );
    for (key, spec) in layered_all {
        if let (Some(i), Some(fb)) = (spec.isolation, spec.fallback) {
            if crate::types::IsolationRequest::from(fb) == i {
                return Err(PolicyError::Invalid {
                    location: loc(),
                    key: format!("{key}.fallback"),
                    message: format!("the fallback is the isolation itself ({fb}); drop it or name the other backend"),
                });
            }
        }
        super::egress::check_profile(&spec).map_err(|(k, message)| PolicyError::Invalid {
            location: loc(),
            key: format!("{key}.{k}"),
            message,
        })?;
        if let Some(floor) = &file.floor {
            floor_contradictions(floor, &spec).map_err(|(k, message)| PolicyError::Invalid {
                location: loc(),
                key: format!("{key}.{k}"),
                message,
            })?;
        }
    }
    for (name, spec) in &file.profiles {
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(PolicyError::Invalid {
                location: loc(),
                key: format!("profiles.{name}"),
                message: "profile names use letters, digits, `-`, `_` and `.`".into(),
            });
        }
        profile(spec, &format!("profiles.{name}")).map_err(|(key, message)| {
            PolicyError::Invalid {
                location: loc(),
                key,
                message,
            }
        })?;
        // The layered result must hold together too (a profile's tmp_size against the
        // defaults' memory, say).
        let layered = file.defaults.layered(spec);
        if let Some(l) = &layered.limits {
            limits_consistent(l).map_err(|message| PolicyError::Invalid {
                location: loc(),
                key: format!("profiles.{name}.limits"),
                message,
            })?;
        }
    }
    super::templates::check(file, origin)?;
    Ok(())
}

/// A profile that asks for less than the floor in the same file: a contradiction the
/// author should fix (a floor from another file clamps instead).
fn floor_contradictions(floor: &FloorSpec, spec: &ProfileSpec) -> Result<(), (String, String)> {
    use crate::types::{Isolation, IsolationRequest};
    if let Some(max) = &floor.limits {
        if let Some(l) = &spec.limits {
            let mut clamped = l.clone();
            let f = super::floor::Floor::from_spec(
                FloorSpec {
                    limits: Some(max.clone()),
                    ..Default::default()
                },
                "",
            );
            if let Some(note) = f.clamp_limits(&mut clamped).into_iter().next() {
                return Err((
                    "limits".into(),
                    format!(
                        "{} (floor.limits in the same file)",
                        note.trim_start_matches("operator floor: ")
                    ),
                ));
            }
        }
    }
    if let (Some(l), Some(max)) = (&spec.image_limits, &floor.image_limits) {
        if let Some((k, over)) = l.exceeding(max).into_iter().next() {
            return Err((
                format!("image_limits.{k}"),
                format!("{over} is above floor.image_limits in the same file"),
            ));
        }
    }
    super::egress::floor_contradictions(floor, spec)?;
    if let (Some(IsolationRequest::Container), Some(Isolation::MicroVm)) =
        (spec.isolation, floor.min_isolation)
    {
        return Err((
            "isolation".into(),
            "asks for container, but the floor in the same file requires microvm".into(),
        ));
    }
    if let (Some(Isolation::Container), Some(Isolation::MicroVm)) =
        (spec.fallback, floor.min_isolation)
    {
        return Err((
            "fallback".into(),
            "falls back to container, but the floor in the same file requires microvm".into(),
        ));
    }
    Ok(())
}

fn profile(spec: &ProfileSpec, key: &str) -> Result<(), (String, String)> {
    profile_keys(spec, key)
}

/// The checks of a profile's keys, shared with `[templates.NAME]`.
pub(crate) fn profile_keys(spec: &ProfileSpec, key: &str) -> Result<(), (String, String)> {
    if let Some(l) = &spec.limits {
        limits(l).map_err(|(k, m)| (format!("{key}.limits.{k}"), m))?;
        limits_consistent(l).map_err(|m| (format!("{key}.limits"), m))?;
    }
    if let Some(mounts) = &spec.mounts {
        if mounts.len() > MAX_MOUNTS {
            return Err((
                format!("{key}.mounts"),
                format!("{} mounts; at most {MAX_MOUNTS}", mounts.len()),
            ));
        }
        for (i, m) in mounts.iter().enumerate() {
            if !m.source.is_absolute() {
                return Err((
                    format!("{key}.mounts[{i}].source"),
                    format!("`{}` must be an absolute host path", m.source.display()),
                ));
            }
            plan_mount(m).map_err(|msg| (format!("{key}.mounts[{i}]"), msg))?;
        }
    }
    if let Some(env) = &spec.env {
        for (k, v) in env {
            env_entry(k, v).map_err(|m| (format!("{key}.env.{k}"), m))?;
        }
    }
    if let Some(cwd) = &spec.cwd {
        if !cwd.starts_with('/') {
            return Err((
                format!("{key}.cwd"),
                format!("`{cwd}` must be an absolute path in the sandbox"),
            ));
        }
    }
    if let Some(h) = &spec.hostname {
        if h.is_empty()
            || h.len() > 64
            || !h
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        {
            return Err((
                format!("{key}.hostname"),
                "1 to 64 letters, digits, `-` or `.`".into(),
            ));
        }
    }
    Ok(())
}

/// Bounds of each limit; the error names the limit.
pub(crate) fn limits(l: &Limits) -> Result<(), (String, String)> {
    let range = |name: &str, v: u64, lo: u64, hi: u64, shown: &dyn Fn(u64) -> String| {
        if v < lo || v > hi {
            Err((
                name.to_string(),
                format!(
                    "{} is out of range ({} to {})",
                    shown(v),
                    shown(lo),
                    shown(hi)
                ),
            ))
        } else {
            Ok(())
        }
    };
    let size = |v: u64| ByteSize(v).to_string();
    let num = |v: u64| v.to_string();
    if let Some(m) = l.memory {
        range("memory", m.0, MIN_MEMORY, MAX_MEMORY, &size)?;
    }
    if let Some(p) = l.pids {
        range("pids", p, 1, MAX_PIDS, &num)?;
    }
    if let Some(n) = l.open_files {
        range("open_files", n, 4, MAX_OPEN_FILES, &num)?;
    }
    if let Some(s) = l.file_size {
        range("file_size", s.0, 1, MAX_MEMORY, &size)?;
    }
    if let Some(s) = l.output {
        range("output", s.0, 1, MAX_MEMORY, &size)?;
    }
    if let Some(s) = l.tmp_size {
        range("tmp_size", s.0, 4096, MAX_MEMORY, &size)?;
    }
    for (name, d) in [("wall_time", l.wall_time), ("cpu_time", l.cpu_time)] {
        if let Some(d) = d {
            if d.is_zero() {
                return Err((name.into(), "must be more than zero".into()));
            }
        }
    }
    Ok(())
}

/// Limits that contradict each other.
pub(crate) fn limits_consistent(l: &Limits) -> Result<(), String> {
    if let (Some(t), Some(m)) = (l.tmp_size, l.memory) {
        if t > m {
            return Err(format!(
                "tmp_size ({t}) is larger than memory ({m}); /tmp lives in the sandbox's memory, \
                 so it can never be filled: lower tmp_size or raise memory"
            ));
        }
    }
    Ok(())
}

pub(crate) fn env_entry(k: &str, v: &str) -> Result<(), String> {
    if k.is_empty() || k.contains('=') || k.contains('\0') {
        return Err(format!(
            "`{k}` is not a valid variable name (empty, or contains `=` or NUL)"
        ));
    }
    if v.contains('\0') {
        return Err("the value contains a NUL byte".into());
    }
    Ok(())
}

/// Per-run options of a workload.
pub(crate) fn workload(w: &Workload) -> Result<(), PolicyError> {
    let bad = |option: &str, message: String| PolicyError::InvalidRunOption {
        option: option.into(),
        message,
    };
    if w.program.is_empty() && w.image.is_none() {
        return Err(bad("program", "no program given".into()));
    }
    if w.program.contains('\0') || w.args.iter().any(|a| a.contains('\0')) {
        return Err(bad("argv", "arguments cannot contain NUL bytes".into()));
    }
    for (k, v) in &w.env {
        env_entry(k, v).map_err(|m| bad(&format!("env {k}"), m))?;
    }
    if let Some(cwd) = &w.cwd {
        if !cwd.starts_with('/') || cwd.contains('\0') {
            return Err(bad(
                "cwd",
                format!("`{cwd}` must be an absolute path in the sandbox"),
            ));
        }
    }
    limits(&w.limits).map_err(|(k, m)| bad(&format!("limit {k}"), m))?;
    w.image_limits
        .check()
        .map_err(|(k, m)| bad(&format!("image limit {k}"), m))?;
    if let Some(r) = &w.root_dir {
        if !r.path.is_absolute() {
            return Err(bad(
                "root",
                format!("`{}` must be an absolute host path", r.path.display()),
            ));
        }
        if w.image.is_some() {
            return Err(bad(
                "root",
                "a root directory and an image cannot both be the root".into(),
            ));
        }
    }
    if let Some(h) = &w.hostname {
        if h.is_empty() || h.len() > 64 || h.bytes().any(|b| b == 0 || b == b'/') {
            return Err(bad(
                "hostname",
                format!("`{h}` is not a host name (1 to 64 bytes, no `/` or NUL)"),
            ));
        }
    }
    for (what, ns) in [
        ("network namespace", &w.netns),
        ("IPC namespace", &w.ipcns),
        ("UTS namespace", &w.utsns),
    ] {
        if let Some(n) = ns {
            if !n.is_absolute() {
                return Err(bad(
                    what,
                    format!("`{}` must be an absolute host path", n.display()),
                ));
            }
        }
    }
    if let Some(p) = &w.cgroup_parent {
        // On the bytes: `components` would drop an inner `.`.
        let plain = std::os::unix::ffi::OsStrExt::as_bytes(p.as_os_str())
            .split(|b| *b == b'/')
            .all(|seg| seg != b"." && seg != b"..");
        if !plain || !p.components().any(|c| matches!(c, Component::Normal(_))) {
            return Err(bad(
                "cgroup parent",
                format!(
                    "`{}` must be a cgroup's path of plain names (no `.` or `..`) from each hierarchy's root",
                    p.display()
                ),
            ));
        }
    }
    for m in &w.mounts {
        if !m.source.is_absolute() {
            return Err(bad(
                "mount",
                format!(
                    "source `{}` must be an absolute host path",
                    m.source.display()
                ),
            ));
        }
    }
    Ok(())
}

/// Where a mount may go: absolute, no `..`, not `/`, not inside what the sandbox
/// provides itself.
fn plan_target(path: &Path) -> Result<PathBuf, String> {
    let target = normalize_absolute(path).ok_or_else(|| {
        format!(
            "target `{}` must be an absolute path without `..`",
            path.display()
        )
    })?;
    if target == Path::new("/") {
        return Err("a mount cannot replace the sandbox's root `/`".into());
    }
    for r in RESERVED_TARGETS {
        if target.starts_with(r) {
            return Err(format!(
                "target `{}` is inside `{r}`, which the sandbox provides itself",
                target.display()
            ));
        }
    }
    Ok(target)
}

/// Validates an in-memory filesystem; `default_size` when it names none.
pub(crate) fn plan_tmpfs(t: &Tmpfs, default_size: u64) -> Result<PlannedTmpfs, String> {
    // At `/tmp` it replaces the sandbox's own in-memory /tmp (the backends leave theirs
    // out), with this one's size, mode and options. At `/dev/shm` (POSIX shared memory,
    // Docker's `--shm-size`) it replaces the link to /tmp the sandbox's /dev has there:
    // the one place inside /dev a mount may go.
    let target = match normalize_absolute(&t.target) {
        Some(p) if p == Path::new(SHM) => p,
        _ => plan_target(&t.target)?,
    };
    if let Some(m) = t.mode.filter(|m| *m > 0o7777) {
        return Err(format!(
            "tmpfs `{}`: mode {m:o} is not a permission (0 to 7777 octal)",
            target.display()
        ));
    }
    let size = t.size.map_or(default_size, |b| b.0);
    if size == 0 {
        return Err(format!(
            "tmpfs `{}`: size must be above 0",
            target.display()
        ));
    }
    Ok(PlannedTmpfs {
        target,
        size,
        mode: t.mode.unwrap_or(0o1777),
        noexec: t.noexec,
    })
}

/// Validates one mount and normalizes its target.
pub(crate) fn plan_mount(m: &Mount) -> Result<PlannedMount, String> {
    let target = plan_target(m.target_path())?;
    let source = normalize_absolute(&m.source).ok_or_else(|| {
        format!(
            "source `{}` must be an absolute path without `..`",
            m.source.display()
        )
    })?;
    if source == Path::new("/") && m.mode == MountMode::Rw {
        return Err("mounting the host's `/` read-write would hand the workload the host; mount the directories it needs".into());
    }
    for f in FORBIDDEN_SOURCES {
        if source.starts_with(f) {
            return Err(format!(
                "source `{}` is a host kernel interface ({f}); the sandbox has its own /proc and /dev",
                source.display()
            ));
        }
    }
    Ok(PlannedMount {
        source,
        target,
        mode: m.mode,
        optional: m.optional,
        system: m.system,
        noexec: m.noexec,
    })
}

/// `/a/./b//c` → `/a/b/c`; `None` for relative paths or paths with `..` or NUL.
pub(crate) fn normalize_absolute(p: &Path) -> Option<PathBuf> {
    if !p.is_absolute() || p.as_os_str().as_encoded_bytes().contains(&0) {
        return None;
    }
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(n) => out.push(n),
            Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}
