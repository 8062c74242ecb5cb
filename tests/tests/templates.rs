//! Warm templates (`[templates.NAME]`), through the library, in both backends: a
//! python3 template runs `print(6*7)`; two runs read different `os.urandom` and
//! `random.random()` values; nothing of one run (a file in /tmp, a module attribute)
//! is seen by the next; a program that ends before it reads its stdin is an error
//! naming the template with its stderr; wall-time and output limits end template
//! runs; a container template's pool refills; bad templates in a policy give errors
//! naming the key.

use std::time::{Duration, Instant};

use hsb_tests::*;
use hybrid_sandbox::{ByteSize, ExecLimits, IsolationRequest, Sandbox, TemplateRun, Termination};

/// Serializes the tests of this file (each builds sandboxes) and says whether `iso` runs.
fn ready(iso: IsolationRequest) -> Option<std::sync::MutexGuard<'static, ()>> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    if !backend_ready(iso) {
        return None;
    }
    Some(SERIAL.lock().unwrap_or_else(|e| e.into_inner()))
}

const PY: &str = r#"
[templates.vm]
isolation = "microvm"
argv = ["python3", "-c", 'import json, os, random, re, sys; code = sys.stdin.read(); random.seed(); exec(compile(code, "<stdin>", "exec"), {"__name__": "__main__"})']
limits = { wall_time = "20s", output = "1MiB" }

[templates.ct]
isolation = "container"
argv = ["python3", "-c", 'import json, os, random, re, sys; code = sys.stdin.read(); random.seed(); exec(compile(code, "<stdin>", "exec"), {"__name__": "__main__"})']
limits = { wall_time = "20s", output = "1MiB" }
pool = 2

[templates.vmpool]
isolation = "microvm"
argv = ["python3", "-c", 'import json, os, random, re, sys; code = sys.stdin.read(); random.seed(); exec(compile(code, "<stdin>", "exec"), {"__name__": "__main__"})']
limits = { wall_time = "20s", output = "1MiB" }
pool = 2

[templates.vmwarm]
isolation = "microvm"
argv = ["python3", "-c", 'import hashlib, os, sys, threading, time; threading.Thread(target=time.sleep, args=(3600,), daemon=True).start(); BLOB = bytearray(os.urandom(4 << 20)); D = hashlib.sha256(BLOB).hexdigest(); exec(sys.stdin.read())']
limits = { wall_time = "20s" }
pool = 1

[templates.cat-vm]
isolation = "microvm"
argv = ["busybox", "cat"]

[templates.cat-ct]
isolation = "container"
argv = ["busybox", "cat"]
pool = 1

[templates.early-vm]
isolation = "microvm"
argv = ["python3", "-c", "import sys; sys.stderr.write('no input for me, giving up\\n'); sys.exit(3)"]

[templates.early-ct]
isolation = "container"
argv = ["python3", "-c", "import sys; sys.stderr.write('no input for me, giving up\\n'); sys.exit(3)"]
pool = 1
"#;

/// The default policy's system mounts plus the test templates.
fn policy() -> Sandbox {
    let text = format!("{}\n{PY}", hybrid_sandbox::EMBEDDED_DEFAULT);
    sandbox_with(&text)
}

async fn run(sb: &Sandbox, name: &str, code: &str) -> hybrid_sandbox::Outcome {
    sb.run_template(name, TemplateRun::new(code))
        .await
        .unwrap_or_else(|e| panic!("template {name}: {}", e.chain()))
}

const RANDOMS: &str = "import os, random\nprint(os.urandom(16).hex(), random.random())";

const LEAK: &str = r#"
import os, json
seen = [os.path.exists("/tmp/leak"), hasattr(json, "leak")]
open("/tmp/leak", "w").write("x")
json.leak = 1
print(seen)
"#;

async fn common(sb: &Sandbox, name: &str, backend: &str) {
    // A program that copies its stdin with sendfile (busybox cat) is parked too.
    let cat = format!("cat-{}", &name);
    let o = run(sb, &cat, "typed line\n").await;
    assert_eq!(stdout(&o), "typed line\n", "{o:?}");
    let o = run(sb, name, "print(6*7)").await;
    assert_eq!(o.termination, Termination::Exited, "{o:?}");
    assert_eq!(stdout(&o), "42\n", "{o:?}");
    assert!(
        o.decision.reasons[0].contains(&format!("template `{name}`"))
            && o.decision.reasons[0].contains(backend),
        "the outcome says where it came from: {:?}",
        o.decision.reasons
    );
    // Clones do not share random state: getrandom is fresh and `random` is reseeded.
    let a = stdout(&run(sb, name, RANDOMS).await);
    let b = stdout(&run(sb, name, RANDOMS).await);
    let (a, b): (Vec<&str>, Vec<&str>) = (
        a.split_whitespace().collect(),
        b.split_whitespace().collect(),
    );
    assert_eq!((a.len(), b.len()), (2, 2), "{a:?} {b:?}");
    assert_ne!(a[0], b[0], "os.urandom repeated across template runs");
    assert_ne!(a[1], b[1], "random.random() repeated across template runs");
    // Nothing of one run is left for the next.
    for _ in 0..2 {
        let o = run(sb, name, LEAK).await;
        assert_eq!(
            stdout(&o),
            "[False, False]\n",
            "a run saw the previous one's state: {o:?}"
        );
    }
    // A program error is the run's outcome, with its stderr.
    let o = run(sb, name, "raise SystemExit('bad input')").await;
    assert_eq!(o.exit_code, Some(1), "{o:?}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("bad input"),
        "{o:?}"
    );
    // Limits: wall time and output end the run.
    let mut r = TemplateRun::new("import time\nwhile True: time.sleep(0.01)");
    r.limits = ExecLimits {
        wall_time: Some(Duration::from_millis(500)),
        ..ExecLimits::default()
    };
    let o = sb.run_template(name, r).await.expect("run");
    assert_eq!(o.termination, Termination::Timeout, "{o:?}");
    let o = run(
        sb,
        name,
        "import sys\nwhile True: sys.stdout.write('y' * 65536)",
    )
    .await;
    assert_eq!(o.termination, Termination::OutputLimit, "{o:?}");
    assert!(o.stdout.len() as u64 <= 1 << 20, "{}", o.stdout.len());
    // A program that ends before reading its stdin: an error naming the template,
    // with its stderr.
    let early = format!("early-{}", &name);
    let e = sb
        .build_template(&early)
        .await
        .expect_err("a template that never waits on stdin");
    let msg = e.chain();
    assert_eq!(e.kind(), "template", "{msg}");
    assert!(msg.contains(&format!("template `{early}`")), "{msg}");
    assert!(msg.contains("no input for me, giving up"), "{msg}");
    assert!(msg.contains("status 3"), "{msg}");
}

#[test]
fn microvm_template_python() {
    let Some(_g) = ready(IsolationRequest::MicroVm) else {
        return;
    };
    let sb = policy();
    runtime().block_on(async {
        let threads0 = vcpu_threads();
        let info = sb
            .build_template("vm")
            .await
            .unwrap_or_else(|e| panic!("{}", e.chain()));
        assert_eq!(info.isolation, hybrid_sandbox::Isolation::MicroVm);
        common(&sb, "vm", "micro-VM").await;
        // CPU: a run's CPU limit counts the run only (not the template's start).
        let mut r = TemplateRun::new("while True: pass");
        r.limits.cpu_time = Some(Duration::from_millis(300));
        let o = sb.run_template("vm", r).await.expect("run");
        assert_eq!(o.termination, Termination::CpuLimit, "{o:?}");
        let o = run(&sb, "vm", "print(sum(range(10)))").await;
        assert!(o.cpu_time < Duration::from_secs(30), "{o:?}");
        // A run's outcome comes before its micro-VM is torn down, which goes on in the
        // background: it still ends, for every run.
        until("template runs' micro-VMs outlived their runs", || {
            vcpu_threads() == threads0
        })
        .await;
    });
}

/// This process's VMM threads: one vCPU thread per live micro-VM, and its fast-call
/// thread once it made enough syscalls.
fn vcpu_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|c| matches!(c.trim(), "hsb-vcpu" | "hsb-fastcall"))
        .count()
}

/// Waits (at most a minute) until template `name` has `n` instances ready.
async fn pool_full(sb: &Sandbox, name: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while sb.build_template(name).await.expect("built").ready < n {
        assert!(
            Instant::now() < deadline,
            "the pool of {name} never had {n} ready"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits (at most a minute) until `f` holds.
async fn until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn microvm_template_pool_keeps_forks_started_ahead() {
    let Some(_g) = ready(IsolationRequest::MicroVm) else {
        return;
    };
    runtime().block_on(async {
        let sb = policy();
        let threads0 = vcpu_threads();
        let info = sb
            .build_template("vmpool")
            .await
            .unwrap_or_else(|e| panic!("{}", e.chain()));
        assert_eq!(info.pool, 2);
        pool_full(&sb, "vmpool", 2).await;
        // A run takes a fork started ahead and only hands it its stdin.
        let o = run(&sb, "vmpool", "print(6*7)").await;
        assert_eq!(
            stdout(&o),
            "42
",
            "{o:?}"
        );
        assert!(
            o.decision.reasons[0].contains("started ahead, from its pool of 2"),
            "{:?}",
            o.decision.reasons
        );
        // Forks started ahead share nothing random, nor one run's state with the next.
        let a = stdout(&run(&sb, "vmpool", RANDOMS).await);
        let b = stdout(&run(&sb, "vmpool", RANDOMS).await);
        assert_ne!(a, b, "pooled forks repeated their random values");
        for _ in 0..2 {
            let o = run(&sb, "vmpool", LEAK).await;
            assert_eq!(stdout(&o), "[False, False]\n", "{o:?}");
        }
        // The run's wall time counts from its start, on a pooled fork too.
        let mut r = TemplateRun::new("import time\nwhile True: time.sleep(0.01)");
        r.limits.wall_time = Some(Duration::from_millis(500));
        let o = sb.run_template("vmpool", r).await.expect("run");
        assert_eq!(o.termination, Termination::Timeout, "{o:?}");
        // A run with its own CPU limit is forked when it comes, under that limit.
        let mut r = TemplateRun::new("while True: pass");
        r.limits.cpu_time = Some(Duration::from_millis(300));
        let o = sb.run_template("vmpool", r).await.expect("run");
        assert_eq!(o.termination, Termination::CpuLimit, "{o:?}");
        assert!(
            o.decision.reasons[0].contains("started now"),
            "{:?}",
            o.decision.reasons
        );
        // The pool refills, and goes with its template: no VM is left.
        pool_full(&sb, "vmpool", 2).await;
        drop(sb);
        until("pooled forks outlived their template", || {
            vcpu_threads() == threads0
        })
        .await;
    });
}

/// A fork started ahead is warmed from an earlier run of the same template (the
/// pages that run touched are touched before the run, `warm.rs`), and the warming
/// changes nothing the run can see: each run finds the template's 4 MiB exactly as
/// it was, then writes a byte of each of its pages (so the next fork's warming
/// writes them too, adding zero). The template has a second thread, asleep.
#[test]
fn microvm_template_pool_forks_are_warmed_without_changing_a_byte() {
    let Some(_g) = ready(IsolationRequest::MicroVm) else {
        return;
    };
    runtime().block_on(async {
        let sb = policy();
        let code = "import hashlib\nok = hashlib.sha256(BLOB).hexdigest() == D\nBLOB[::4096] = bytes(len(BLOB) // 4096)\nprint(ok)";
        let mut warmed = Vec::new();
        for _ in 0..4 {
            pool_full(&sb, "vmwarm", 1).await;
            let o = run(&sb, "vmwarm", code).await;
            assert_eq!(stdout(&o), "True\n", "{o:?}");
            let reason = &o.decision.reasons[0];
            assert!(reason.contains("from its pool of 1"), "{reason}");
            if let Some((_, rest)) = reason.split_once("while it waited (") {
                let pages: u64 = rest
                    .split_once(' ')
                    .and_then(|(n, _)| n.parse().ok())
                    .unwrap_or_else(|| panic!("{reason}"));
                warmed.push(pages);
            }
        }
        // The first fork started before any run: not warmed. Later ones are, over at
        // least the 1,024 pages each run reads and writes.
        assert!(!warmed.is_empty(), "no fork was warmed");
        assert!(warmed.iter().all(|p| *p >= 1024), "{warmed:?}");
    });
}

#[test]
fn container_template_python_and_pool() {
    let Some(_g) = ready(IsolationRequest::Container) else {
        return;
    };
    let sb = policy();
    runtime().block_on(async {
        let info = sb
            .build_template("ct")
            .await
            .unwrap_or_else(|e| panic!("{}", e.chain()));
        assert_eq!(
            (info.isolation, info.pool),
            (hybrid_sandbox::Isolation::Container, 2)
        );
        let full = |sb: Sandbox| async move {
            let until = Instant::now() + Duration::from_secs(60);
            loop {
                let i = sb.build_template("ct").await.expect("info");
                if i.ready == 2 {
                    return;
                }
                assert!(Instant::now() < until, "the pool never refilled: {i:?}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        full(sb.clone()).await;
        let o = run(&sb, "ct", "print(6*7)").await;
        assert!(
            o.decision.reasons[0].contains("from its pool"),
            "{:?}",
            o.decision.reasons
        );
        // The pool refills in the background.
        full(sb.clone()).await;
        // A run with its own CPU limit cannot use a pre-started instance: started cold.
        let mut r = TemplateRun::new("print(1)");
        r.limits.cpu_time = Some(Duration::from_secs(7));
        let o = sb.run_template("ct", r).await.expect("cold run");
        assert_eq!(stdout(&o), "1\n");
        assert!(
            o.decision.reasons[0].contains("started cold"),
            "{:?}",
            o.decision.reasons
        );
        common(&sb, "ct", "container").await;
    });
}

#[test]
fn default_policy_py_template() {
    let Some(_g) = ready(IsolationRequest::MicroVm) else {
        return;
    };
    let o = runtime()
        .block_on(sandbox().run_template(
            "py",
            TemplateRun::new("import json; print(json.dumps(6*7))"),
        ))
        .unwrap_or_else(|e| panic!("{}", e.chain()));
    assert_eq!(stdout(&o), "42\n", "{o:?}");
    let _ = ByteSize(0);
}

/// The policy error for `toml` (a template table appended to the default policy).
fn policy_error(toml: &str) -> String {
    let text = format!("{}\n{toml}", hybrid_sandbox::EMBEDDED_DEFAULT);
    match hybrid_sandbox::Policy::from_toml_str(&text, "templates.toml") {
        Ok(_) => panic!("accepted: {toml}"),
        Err(e) => {
            let mut s = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(x) = src {
                s.push_str(&format!(": {x}"));
                src = x.source();
            }
            s
        }
    }
}

#[test]
fn bad_templates_are_refused_naming_the_key() {
    let cases: &[(&str, &[&str])] = &[
        (
            "[templates.t]\nisolation = \"microvm\"\nargv = [\"python3\"]\nimage_name = \"x\"\n",
            &["unknown key `image_name`", "templates.toml"],
        ),
        (
            "[templates.t]\nisolation = \"microvm\"\n",
            &["templates.t.argv", "missing"],
        ),
        (
            "[templates.t]\nisolation = \"microvm\"\nargv = []\n",
            &["templates.t.argv", "empty"],
        ),
        (
            "[templates.t]\nargv = [\"python3\"]\n",
            &["templates.t.isolation", "missing"],
        ),
        (
            "[templates.t]\nisolation = \"auto\"\nargv = [\"python3\"]\n",
            &["templates.t.isolation", "`auto` is not a template isolation"],
        ),
        (
            "[templates.t]\nisolation = \"container\"\nargv = [\"python3\"]\n",
            &["templates.t.pool", "a container template keeps pre-started instances"],
        ),
        (
            "[templates.t]\nisolation = \"container\"\nargv = [\"python3\"]\npool = 0\n",
            &["templates.t.pool", "at least one"],
        ),
        (
            "[templates.t]\nisolation = \"container\"\nargv = [\"python3\"]\npool = 1000\n",
            &["templates.t.pool", "at most 64"],
        ),
        (
            "[templates.t]\nisolation = \"microvm\"\nargv = [\"python3\"]\npool = 65\n",
            &["templates.t.pool", "at most 64"],
        ),
        (
            "[templates.t]\nisolation = \"microvm\"\nargv = [\"python3\"]\nnetwork = \"egress\"\n",
            &["templates.t.network", "egress"],
        ),
        (
            "[templates.t]\nisolation = \"microvm\"\nargv = [\"python3\"]\nprofile = \"defualt\"\n",
            &["templates.t.profile", "did you mean `default`"],
        ),
        (
            "[templates.t]\nisolation = \"microvm\"\nargv = [\"python3\"]\nlimits = { memory = \"1KiB\" }\n",
            &["templates.t.limits.memory"],
        ),
        (
            "[templates.t]\nisolation = \"microvm\"\nargv = [\"python3\"]\n[[templates.t.mounts]]\nsource = \"relative\"\n",
            &["templates.t.mounts[0].source", "absolute"],
        ),
        (
            "[templates.\"a b\"]\nisolation = \"microvm\"\nargv = [\"python3\"]\n",
            &["templates.a b", "template names"],
        ),
    ];
    for (toml, wants) in cases {
        let msg = policy_error(toml);
        for w in *wants {
            assert!(msg.contains(w), "{toml}\n=> {msg}\n(wanted {w:?})");
        }
    }
    // The embedded default's templates load, and an unknown name lists them.
    let p = hybrid_sandbox::Policy::embedded_default();
    assert_eq!(p.template_names(), ["py", "py-container"]);
    let e = p.template("pyy").unwrap_err().to_string();
    let e = format!(
        "{e}: {}",
        std::error::Error::source(&p.template("pyy").unwrap_err())
            .map(|s| s.to_string())
            .unwrap_or_default()
    );
    assert!(e.contains("did you mean `py`") || e.contains("`py`"), "{e}");
}

/// The cgroups of the container sandboxes a process made (`/sys/fs/cgroup/*/hsb/PID-*`).
fn cgroups_of(pid: u32) -> Vec<std::path::PathBuf> {
    ["memory", "pids", "cpuacct", "freezer", ""]
        .iter()
        .filter_map(|c| std::fs::read_dir(format!("/sys/fs/cgroup/{c}/hsb")).ok())
        .flat_map(|d| d.flatten())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(&format!("{pid}-"))
        })
        .map(|e| e.path())
        .collect()
}

const MARKED: &str = r#"
[templates.marked]
isolation = "container"
argv = ["python3", "-c", "import sys; sys.stdin.read()  # hsb-pool-marker-5c1e"]
pool = 3
"#;

/// Run by `kill_9_of_a_caller_with_a_pool_leaves_nothing` as a child: a container
/// template's full pool, then it waits to be killed.
#[test]
fn template_pool_child_process() {
    if std::env::var("HSB_TEMPLATE_CHILD").is_err() {
        return;
    }
    let sb = sandbox_with(&format!("{}\n{MARKED}", hybrid_sandbox::EMBEDDED_DEFAULT));
    runtime().block_on(async {
        sb.build_template("marked").await.expect("build");
        let until = Instant::now() + Duration::from_secs(60);
        while sb.build_template("marked").await.expect("info").ready < 3 {
            assert!(Instant::now() < until, "the pool never filled");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        println!("HSB-TEMPLATE-READY");
        tokio::time::sleep(Duration::from_secs(600)).await;
    });
}

#[test]
fn kill_9_of_a_caller_with_a_pool_leaves_nothing() {
    use std::io::BufRead;
    let Some(_g) = ready(IsolationRequest::Container) else {
        return;
    };
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "template_pool_child_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("HSB_TEMPLATE_CHILD", "1")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(
        lines.any(|l| l.is_ok_and(|l| l.contains("HSB-TEMPLATE-READY"))),
        "the child never got ready"
    );
    let marker = "hsb-pool-marker-5c1e";
    assert_eq!(
        host_processes_with(marker).len(),
        3,
        "three pre-started programs"
    );
    let cgroups = cgroups_of(pid);
    assert!(!cgroups.is_empty(), "the pool's sandboxes have no cgroups");
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(
        eventually(20.0, || host_processes_with(marker).is_empty()),
        "a pooled program outlived its killed caller: {:?}",
        host_processes_with(marker)
    );
    let procs = |c: &std::path::PathBuf| {
        std::fs::read_to_string(c.join("cgroup.procs"))
            .map(|s| s.lines().count())
            .unwrap_or(0)
    };
    assert!(
        eventually(20.0, || cgroups.iter().map(procs).sum::<usize>() == 0),
        "processes of the killed caller's pool are still alive"
    );
}
