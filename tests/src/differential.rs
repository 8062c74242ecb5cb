//! The differential harness: the same static probe programs (`tests/differential/*.c`,
//! one per syscall family) run natively, in the container and in the micro-VM, and
//! their answers are compared call by call (return value or errno, and the side effects
//! each probe prints). Linux, run natively as an unprivileged user, is the reference: a
//! difference is either listed in `tests/differential/expected.txt` with its reason (a
//! documented protection, a privilege the sandbox never has, the VM's one vCPU...) or a
//! bug that the tests report.
//!
//! Each probe also makes calls with random arguments from a seed (the same calls
//! everywhere): `HSB_DIFF_RANDOM` calls per family (200 by default; CI), from
//! `HSB_DIFF_SEEDS` seeds (1 by default). `scripts/differential.sh` runs it long.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use hybrid_sandbox::{IsolationRequest, Mount, Termination, Workload};

/// The syscall families, one probe program each.
pub const FAMILIES: &[&str] = &[
    "io", "fs", "proc", "signal", "time", "mm", "socket", "thread", "misc", "ipc", "net", "netnone",
];

/// The network a family's probe needs: natively, a network namespace of its own (with
/// `lo` up for `loopback`); in the sandboxes, that network mode. `None`: the host's
/// namespace natively, the default (`none`) in the sandboxes.
fn network_of(family: &str) -> Option<hybrid_sandbox::Network> {
    match family {
        "net" => Some(hybrid_sandbox::Network::Loopback),
        "netnone" => Some(hybrid_sandbox::Network::None),
        _ => None,
    }
}

/// Where the probes appear inside sandboxes.
const IN_SANDBOX: &str = "/opt/hsb-probes";

/// Random calls per family and seed in the default (CI) run.
pub const DEFAULT_RANDOM: u64 = 200;

/// Where a probe ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Env {
    /// On the host kernel, as an unprivileged user: the reference.
    Native,
    /// In the container backend.
    Container,
    /// In the micro-VM backend.
    MicroVm,
}

impl Env {
    /// Its name in reports and in `expected.txt`.
    pub fn name(self) -> &'static str {
        match self {
            Env::Native => "native",
            Env::Container => "container",
            Env::MicroVm => "microvm",
        }
    }
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("differential")
}

/// Compiles every probe (`gcc -static`: the micro-VM runs it too) into a directory
/// keyed by a hash of the sources (`$TMPDIR/hsb-differential/HASH`); returns it.
pub fn probes() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let mut files: Vec<PathBuf> = std::fs::read_dir(src_dir())
            .expect("tests/differential")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "c" || e == "h"))
            .collect();
        files.sort();
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for f in &files {
            for b in std::fs::read(f).expect("read probe source") {
                hash = (hash ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
            }
        }
        // Under the system's temporary directory: the native runs, as uid 65534, must
        // reach the binaries (a build directory may be private to its owner).
        let root = std::env::temp_dir().join("hsb-differential");
        std::fs::create_dir_all(&root).expect("probe root");
        crate::set_mode(&root, 0o755);
        let out = root.join(format!("{hash:016x}"));
        if out.join("done").exists() {
            return out;
        }
        let tmp = root.join(format!("tmp-{}-{hash:016x}", std::process::id()));
        std::fs::create_dir_all(&tmp).expect("probe dir");
        for fam in FAMILIES {
            let src = src_dir().join(format!("{fam}.c"));
            let st = Command::new("gcc")
                .args([
                    "-static",
                    "-O1",
                    "-pthread",
                    "-Wall",
                    "-Wno-stringop-overflow",
                ])
                .args([
                    "-Wno-stringop-overread",
                    "-Wno-nonnull",
                    "-Wno-unused-function",
                    "-o",
                ])
                .arg(tmp.join(fam))
                .arg(&src)
                .status()
                .expect("gcc must be installed (scripts/install-deps.sh)");
            assert!(st.success(), "compiling {}", src.display());
        }
        std::fs::write(tmp.join("done"), b"").expect("mark");
        crate::set_mode(&tmp, 0o755);
        if std::fs::rename(&tmp, &out).is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        out
    })
}

/// The arguments of one run of a probe: the fixed checks, or random calls.
fn argv(random: Option<(u64, u64)>) -> Vec<String> {
    match random {
        None => Vec::new(),
        Some((seed, n)) => vec!["random".into(), seed.to_string(), n.to_string()],
    }
}

/// Runs probe `family` natively, as uid/gid 65534 when the caller is root (as the
/// sandboxes' workloads are unprivileged), in a fresh directory, with an empty
/// environment.
fn run_native(family: &str, random: Option<(u64, u64)>) -> Result<String, String> {
    // On a tmpfs, as the sandboxes' /tmp is (file sealing, holes and the like depend
    // on the filesystem).
    let base = Path::new("/dev/shm");
    let dir = tempfile::Builder::new()
        .prefix("hsb-diff-")
        .tempdir_in(if base.is_dir() {
            base
        } else {
            Path::new("/tmp")
        })
        .map_err(|e| e.to_string())?;
    crate::set_mode(dir.path(), 0o777);
    let probe = probes().join(family);
    let mut cmd = match network_of(family) {
        // A user and network namespace of its own (as the unprivileged caller), `lo`
        // brought up for a loopback network.
        Some(mode) => {
            let up = if mode == hybrid_sandbox::Network::Loopback {
                "ip link set lo up && "
            } else {
                ""
            };
            let mut c = Command::new("unshare");
            c.args(["--user", "--map-root-user", "--net", "--", "sh", "-c"])
                .arg(format!("{up}exec \"$0\" \"$@\""))
                .arg(&probe);
            c
        }
        None => Command::new(&probe),
    };
    cmd.args(argv(random))
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    use std::os::unix::process::CommandExt;
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        cmd.uid(65534).gid(65534);
    }
    // A process group of its own, as in a sandbox (PRIO_PGRP and kill(0) name it, not
    // the test runner's group).
    cmd.process_group(0);
    // The probe starts with stdin, stdout and stderr only, as in a sandbox (the test
    // harness may hold inheritable descriptors, cargo's jobserver for one), and with
    // no_new_privs set, as every sandbox of both backends is.
    let close_rest = || {
        // SAFETY: close_range(2) takes plain integers and only closes descriptors of
        // the child being set up; it is async-signal-safe.
        unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
        // SAFETY: prctl(2) with plain integers changes only this child's flag; it is
        // async-signal-safe.
        unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
        Ok(())
    };
    // SAFETY: between fork and exec the hook runs only close_range(2) and prctl(2),
    // which are async-signal-safe and touch no memory of the parent.
    unsafe { cmd.pre_exec(close_rest) };
    let child = cmd.spawn().map_err(|e| format!("spawn: {e}"))?;
    let out = wait_with_timeout(child, Duration::from_secs(120))?;
    if !out.status.success() {
        return Err(format!(
            "exit {:?}; stderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn wait_with_timeout(
    mut child: std::process::Child,
    limit: Duration,
) -> Result<std::process::Output, String> {
    let stdout = child.stdout.take();
    let reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(mut s) = stdout {
            let _ = std::io::Read::read_to_end(&mut s, &mut v);
        }
        v
    });
    let start = Instant::now();
    loop {
        match child.try_wait().map_err(|e| e.to_string())? {
            Some(status) => {
                let mut stderr = Vec::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = std::io::Read::read_to_end(&mut e, &mut stderr);
                }
                let stdout = reader.join().unwrap_or_default();
                return Ok(std::process::Output {
                    status,
                    stdout,
                    stderr,
                });
            }
            None if start.elapsed() > limit => {
                let _ = child.kill();
                let _ = child.wait();
                return Err("timed out".into());
            }
            None => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

/// Runs probe `family` in a sandbox of `iso`, in its `/tmp`.
fn run_sandboxed(
    family: &str,
    iso: IsolationRequest,
    random: Option<(u64, u64)>,
) -> Result<String, String> {
    let mut w = Workload::new(format!("{IN_SANDBOX}/{family}"), argv(random))
        .mount(Mount::ro(probes(), IN_SANDBOX))
        .isolation(iso);
    if let Some(mode) = network_of(family) {
        w.network = Some(mode);
    }
    w.cwd = Some("/tmp".into());
    w.limits.wall_time = Some(Duration::from_secs(120));
    let o = crate::run_in(crate::sandbox(), w);
    if o.termination != Termination::Exited || o.exit_code != Some(0) {
        let out = String::from_utf8_lossy(&o.stdout);
        let last: Vec<&str> = out.lines().rev().take(3).collect();
        return Err(format!(
            "{:?} exit {:?} signal {:?}; last lines: {:?}; stderr: {}",
            o.termination,
            o.exit_code,
            o.signal,
            last,
            String::from_utf8_lossy(&o.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

/// One probe's lines: label to the rest of the line, in order.
pub type Lines = Vec<(String, String)>;

fn parse(out: &str) -> Lines {
    out.lines()
        .filter_map(|l| {
            let (label, rest) = l.split_once(' ')?;
            Some((label.to_string(), rest.to_string()))
        })
        .collect()
}

/// A difference from the native answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// Where.
    pub env: Env,
    /// The check's label.
    pub label: String,
    /// Linux's answer (`(missing)` when the line is absent).
    pub native: String,
    /// The backend's.
    pub got: String,
    /// Why it is deliberate, when `expected.txt` says so.
    pub reason: Option<String>,
}

/// An entry of `expected.txt`: a deliberate difference.
#[derive(Debug, Clone)]
pub struct Expected {
    /// `container`, `microvm` or `both`.
    pub env: String,
    /// A label, `*` matching any run of characters.
    pub pattern: String,
    /// Why.
    pub reason: String,
}

impl Expected {
    fn applies(&self, env: Env, label: &str) -> bool {
        (self.env == "both" || self.env == env.name()) && glob(&self.pattern, label)
    }
}

/// `*` matches any run of characters (none included).
fn glob(pattern: &str, s: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == s,
        Some((head, tail)) => {
            let Some(rest) = s.strip_prefix(head) else {
                return false;
            };
            (0..=rest.len())
                .filter(|i| rest.is_char_boundary(*i))
                .any(|i| glob(tail, &rest[i..]))
        }
    }
}

/// The deliberate differences (`tests/differential/expected.txt`): lines of
/// `ENV LABEL-GLOB: REASON`; `#` starts a comment.
pub fn expected() -> Vec<Expected> {
    let text = std::fs::read_to_string(src_dir().join("expected.txt")).expect("expected.txt");
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (head, reason) = l
                .split_once(": ")
                .unwrap_or_else(|| panic!("expected.txt: no reason in `{l}`"));
            let (env, pattern) = head
                .split_once(' ')
                .unwrap_or_else(|| panic!("expected.txt: no label in `{l}`"));
            assert!(
                matches!(env, "container" | "microvm" | "both"),
                "expected.txt: unknown environment in `{l}`"
            );
            Expected {
                env: env.into(),
                pattern: pattern.trim().into(),
                reason: reason.trim().into(),
            }
        })
        .collect()
}

/// Whether an `expected.txt` reason marks a difference not fixed yet (`known: ...`)
/// rather than a deliberate one.
pub fn is_known(reason: &str) -> bool {
    reason.starts_with("known:")
}

/// What one family came to.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// The family.
    pub family: String,
    /// Lines Linux gave (checks compared).
    pub checks: usize,
    /// Random calls among them.
    pub random: usize,
    /// Every difference.
    pub differences: Vec<Difference>,
    /// Runs that failed outright (crash, timeout), by environment.
    pub failures: Vec<(Env, String)>,
    /// Entries of `expected.txt` for this family that matched no difference.
    pub stale: Vec<Expected>,
}

impl Report {
    /// Differences not listed as deliberate.
    pub fn unexplained(&self) -> Vec<&Difference> {
        self.differences
            .iter()
            .filter(|d| d.reason.is_none())
            .collect()
    }

    /// Differences in `env`: (all, deliberate).
    pub fn count(&self, env: Env) -> (usize, usize) {
        let d = self.differences.iter().filter(|d| d.env == env);
        let all = d.clone().count();
        (all, d.filter(|d| d.reason.is_some()).count())
    }

    /// Everything worth reading, one line each.
    pub fn text(&self) -> String {
        let mut s = format!(
            "{}: {} checks ({} random)\n",
            self.family, self.checks, self.random
        );
        for (env, e) in &self.failures {
            let _ = writeln!(s, "  FAILED RUN in {}: {e}", env.name());
        }
        for d in &self.differences {
            let tag = match &d.reason {
                Some(r) if is_known(r) => format!("KNOWN, not fixed yet ({r})"),
                Some(r) => format!("deliberate ({r})"),
                None => "UNEXPLAINED".into(),
            };
            let _ = writeln!(
                s,
                "  {} {} [{tag}]\n      native:  {}\n      {:<8} {}",
                d.env.name(),
                d.label,
                d.native,
                format!("{}:", d.env.name()),
                d.got
            );
        }
        for e in &self.stale {
            let _ = writeln!(
                s,
                "  STALE expected.txt entry (no such difference any more): {} {}",
                e.env, e.pattern
            );
        }
        s
    }
}

/// How many random calls per seed, and how many seeds (`HSB_DIFF_RANDOM`,
/// `HSB_DIFF_SEEDS`).
pub fn random_plan() -> (u64, u64) {
    let num = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    (
        num("HSB_DIFF_RANDOM", DEFAULT_RANDOM),
        num("HSB_DIFF_SEEDS", 1),
    )
}

/// Runs `family` everywhere and compares.
pub fn compare(family: &str) -> Report {
    let (calls, seeds) = random_plan();
    let mut runs: Vec<Option<(u64, u64)>> = vec![None];
    runs.extend((1..=seeds).filter(|_| calls > 0).map(|s| Some((s, calls))));
    let expected: Vec<Expected> = expected()
        .into_iter()
        .filter(|e| e.pattern.starts_with(&format!("{family}.")))
        .collect();
    let mut report = Report {
        family: family.into(),
        ..Report::default()
    };
    let mut used = vec![false; expected.len()];
    for random in runs {
        let tag = |l: &str| match random {
            None => l.to_string(),
            Some((seed, _)) => l.replacen(".random.", &format!(".random{seed}."), 1),
        };
        let native = match run_native(family, random) {
            Ok(o) => parse(&o),
            Err(e) => {
                report.failures.push((Env::Native, e));
                continue;
            }
        };
        report.checks += native.len();
        if random.is_some() {
            report.random += native.len();
        }
        let reference: BTreeMap<&str, &str> = native
            .iter()
            .map(|(l, r)| (l.as_str(), r.as_str()))
            .collect();
        for (env, iso) in [
            (Env::Container, IsolationRequest::Container),
            (Env::MicroVm, IsolationRequest::MicroVm),
        ] {
            if !crate::backend_ready(iso) {
                continue;
            }
            let got = match run_sandboxed(family, iso, random) {
                Ok(o) => parse(&o),
                Err(e) => {
                    report.failures.push((env, e));
                    continue;
                }
            };
            let theirs: BTreeMap<&str, &str> =
                got.iter().map(|(l, r)| (l.as_str(), r.as_str())).collect();
            let mut labels: Vec<&str> = native.iter().map(|(l, _)| l.as_str()).collect();
            labels.extend(
                got.iter()
                    .map(|(l, _)| l.as_str())
                    .filter(|l| !reference.contains_key(l)),
            );
            for label in labels {
                let (n, g) = (reference.get(label), theirs.get(label));
                if n == g {
                    continue;
                }
                let shown = tag(label);
                let hit = expected.iter().position(|e| e.applies(env, label));
                if let Some(i) = hit {
                    used[i] = true;
                }
                report.differences.push(Difference {
                    env,
                    label: shown,
                    native: n.map_or("(missing)".into(), |s| s.to_string()),
                    got: g.map_or("(missing)".into(), |s| s.to_string()),
                    reason: hit.map(|i| expected[i].reason.clone()),
                });
            }
        }
    }
    // An entry that matched nothing is stale (fixed: remove it), unless it is about a
    // backend that was not run, or about random calls in a run other than the default
    // one (other seeds may not reach them; the default run's answers are the same on
    // every run, so there a random entry is checked too).
    let default_plan = random_plan() == (DEFAULT_RANDOM, 1);
    let ran = |env: &str| match env {
        "container" => crate::backend_ready(IsolationRequest::Container),
        "microvm" => crate::backend_ready(IsolationRequest::MicroVm),
        _ => {
            crate::backend_ready(IsolationRequest::Container)
                && crate::backend_ready(IsolationRequest::MicroVm)
        }
    };
    report.stale = expected
        .iter()
        .zip(&used)
        .filter(|(e, u)| !**u && (default_plan || !e.pattern.contains(".random")))
        .filter(|(e, _)| ran(&e.env))
        .map(|(e, _)| e.clone())
        .collect();
    report
}

/// The row of `family` in the doc's table.
pub fn row(r: &Report) -> String {
    let cell = |env: Env| {
        let (all, explained) = r.count(env);
        let known = r
            .differences
            .iter()
            .filter(|d| d.env == env && d.reason.as_deref().is_some_and(is_known))
            .count();
        if all == 0 {
            "same answers".to_string()
        } else if all != explained {
            format!("{all} differences, {} unexplained", all - explained)
        } else if known == 0 {
            format!("{all} deliberate differences")
        } else {
            format!(
                "{} deliberate differences, {known} known (not fixed yet)",
                all - known
            )
        }
    };
    format!(
        "| {} | {} ({} fixed, {} random) | {} | {} |",
        r.family,
        r.checks,
        r.checks - r.random,
        r.random,
        cell(Env::Container),
        cell(Env::MicroVm)
    )
}

/// The doc's section: the table's head, a row per family (from `rows`, in family
/// order; a family without one keeps `—`), and the deliberate differences.
pub fn section(rows: &BTreeMap<String, String>) -> String {
    let mut s = String::from(
        "### Differential tests: the micro-VM and the container against Linux\n\n\
         The same static probe programs (`tests/differential/*.c`, one per syscall family) \
         run natively on the host kernel as an unprivileged user, in the container and in \
         the micro-VM; every answer (return value or errno, and the side effects each probe \
         prints) is compared with Linux's. `cargo test -p hsb-tests --test differential` \
         runs the fixed checks and 200 calls with random arguments per family (CI); \
         `scripts/differential.sh CALLS SEEDS` runs more. A difference is a failure unless \
         it is listed below with its reason. `HSB_BLESS=1` rewrites this table.\n\n\
         | family | checks compared | container | micro-VM |\n| --- | --- | --- | --- |\n",
    );
    for fam in FAMILIES {
        match rows.get(*fam) {
            Some(r) => s.push_str(r),
            None => {
                let _ = write!(s, "| {fam} | — | — | — |");
            }
        }
        s.push('\n');
    }
    s.push_str(
        "\nDeliberate differences, and known ones not fixed yet (`known:`), from \
         `tests/differential/expected.txt`:\n\n",
    );
    s.push_str("| where | checks | why |\n| --- | --- | --- |\n");
    for e in expected() {
        let _ = writeln!(
            s,
            "| {} | `{}` | {} |",
            e.env,
            e.pattern,
            e.reason.replace('|', "\\|")
        );
    }
    s
}

/// The rows the doc holds now.
pub fn rows_in_doc(doc: &str) -> BTreeMap<String, String> {
    let Some(sec) = crate::compat_doc::section(doc, "differential") else {
        return BTreeMap::new();
    };
    sec.lines()
        .filter_map(|l| {
            let fam = l.strip_prefix("| ")?.split(" |").next()?;
            FAMILIES
                .contains(&fam)
                .then(|| (fam.to_string(), l.to_string()))
        })
        .filter(|(_, l)| !l.contains("| — |"))
        .collect()
}

/// Checks `report`'s row against the doc (rewriting it under `HSB_BLESS=1`); only for
/// the default plan, whose counts the doc states. Returns a complaint, if any.
pub fn check_doc_row(report: &Report) -> Option<String> {
    static LOCK: Mutex<()> = Mutex::new(());
    if random_plan() != (DEFAULT_RANDOM, 1) {
        return None;
    }
    let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let path = crate::compat_doc::path();
    let doc = std::fs::read_to_string(&path).unwrap_or_default();
    let mut rows = rows_in_doc(&doc);
    let mine = row(report);
    let current = section(&rows);
    rows.insert(report.family.clone(), mine);
    let wanted = section(&rows);
    let in_doc = crate::compat_doc::section(&doc, "differential");
    if in_doc == Some(wanted.trim_matches('\n')) && current == wanted {
        return None;
    }
    if std::env::var_os("HSB_BLESS").is_some() {
        std::fs::write(
            &path,
            crate::compat_doc::replace_section(&doc, "differential", &wanted),
        )
        .expect("write docs/compat.md");
        return None;
    }
    Some(format!(
        "the differential table of {} is stale for {}: rerun with HSB_BLESS=1 and commit it",
        path.display(),
        report.family
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob("io.pipe.*", "io.pipe.setsz"));
        assert!(glob("io.*.eagain", "io.pipe.full.eagain"));
        assert!(!glob("io.pipe", "io.pipe.x"));
        assert!(glob("*", ""));
    }
}
