//! The `hsb` command-line contract: flags, JSON fields and exit codes.

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const HSB: &str = env!("CARGO_BIN_EXE_hsb");

fn hsb(args: &[&str]) -> Output {
    Command::new(HSB)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run hsb")
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(&o.stdout)))
}

#[test]
fn runs_python_with_the_embedded_default_policy() {
    let o = hsb(&["run", "--", "python3", "-c", "print(6 * 7)"]);
    assert_eq!(
        (code(&o), text(&o.stdout).as_str()),
        (0, "42\n"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn exit_status_follows_the_workload() {
    assert_eq!(code(&hsb(&["run", "--", "sh", "-c", "exit 7"])), 7);
    assert_eq!(
        code(&hsb(&["run", "--", "sh", "-c", "kill -TERM $$"])),
        128 + 15
    );
    let t = Instant::now();
    let o = hsb(&["run", "--wall-time", "300ms", "--", "sleep", "10"]);
    assert_eq!(code(&o), 124);
    assert!(t.elapsed() < Duration::from_secs(5));
    assert!(text(&o.stderr).contains("timeout"), "{}", text(&o.stderr));
}

#[test]
fn setup_errors_exit_125_with_the_reason() {
    let cases: [(&[&str], &str); 5] = [
        (&["run", "--no-such-flag", "--", "true"], "--no-such-flag"),
        (
            &["run", "--memory", "12parsecs", "--", "true"],
            "unknown unit",
        ),
        (&["run", "--wall-time", "soon", "--", "true"], "soon"),
        (
            &["run", "--mount", "/definitely/not/here:/x", "--", "true"],
            "/definitely/not/here",
        ),
        (&["run", "--isolation", "chroot", "--", "true"], "chroot"),
    ];
    for (args, needle) in cases {
        let o = hsb(args);
        assert_eq!(code(&o), 125, "{args:?}: {}", text(&o.stderr));
        assert!(
            text(&o.stderr).contains(needle),
            "{args:?}: {}",
            text(&o.stderr)
        );
    }
}

/// A program that is a file on the host but outside the sandbox's mounts: the error
/// says so and how to mount it, and the mount it suggests makes the run work; a name
/// that is nowhere gets no hint.
#[test]
fn a_host_program_outside_the_mounts_gets_a_hint_that_works() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let prog = dir.path().join("hello.sh");
    std::fs::write(&prog, "#!/bin/sh\necho hi from $0\n").unwrap();
    std::fs::set_permissions(&prog, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let p = prog.display().to_string();
    let o = hsb(&["run", "--", &p]);
    assert_eq!(code(&o), 127, "{}", text(&o.stderr));
    let err = text(&o.stderr);
    let mount = format!("--mount {d}:{d}");
    assert!(err.contains("hint:") && err.contains(&mount), "{err}");
    let o = hsb(&["run", "--mount", &format!("{d}:{d}"), "--", &p]);
    assert_eq!(
        (code(&o), text(&o.stdout)),
        (0, format!("hi from {p}\n")),
        "{}",
        text(&o.stderr)
    );
    // Relative to the caller's directory: the hint names it and a --cwd.
    let o = Command::new(HSB)
        .args(["run", "--", "./hello.sh"])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(code(&o), 127);
    let err = text(&o.stderr);
    assert!(err.contains(&format!("{mount} --cwd {d}")), "{err}");
    // Nothing on the host either: no hint; and --json keeps its error document.
    let o = hsb(&["run", "--", "/no/such/dir/prog"]);
    assert!(!text(&o.stderr).contains("hint:"), "{}", text(&o.stderr));
    let o = hsb(&["run", "--json", "--", &p]);
    assert_eq!(json(&o)["error"]["kind"], "program_not_found");
}

#[test]
fn missing_and_unexecutable_programs() {
    let o = hsb(&["run", "--", "no-such-program-anywhere"]);
    assert_eq!(code(&o), 127, "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("not found"));
    // A program whose interpreter is not mounted is found but cannot run, and says why.
    let dir0 = tempfile::tempdir().unwrap();
    let script = dir0.path().join("s");
    std::fs::write(&script, "#!/no/such/interpreter\n").unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let o = hsb(&[
        "run",
        "--mount",
        &format!("{}:/s", dir0.path().display()),
        "--",
        "/s/s",
    ]);
    assert_eq!(code(&o), 126, "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("interpreter"),
        "{}",
        text(&o.stderr)
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f"), "data").unwrap();
    let mount = format!("{}:/d", dir.path().display());
    let o = hsb(&["run", "--mount", &mount, "--", "/d/f"]);
    assert_eq!(code(&o), 126, "{}", text(&o.stderr));
}

#[test]
fn json_output_has_the_contract_fields() {
    let o = hsb(&[
        "run",
        "--json",
        "--",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(code(&o), 3);
    let v = json(&o);
    for k in [
        "isolation",
        "termination",
        "exit_code",
        "signal",
        "stdout",
        "stderr",
        "wall_time_ms",
        "cpu_time_ms",
        "peak_memory_bytes",
        "decision",
        "enforcement",
    ] {
        assert!(v.get(k).is_some(), "missing {k}: {v}");
    }
    assert_eq!(v["isolation"], "container");
    assert_eq!(v["termination"], "exited");
    assert_eq!(v["exit_code"], 3);
    assert_eq!(v["stdout"], "out\n");
    assert_eq!(v["stderr"], "err\n");
    assert_eq!(v["decision"]["isolation"], "container");
    assert!(v["decision"]["reasons"]
        .as_array()
        .is_some_and(|r| !r.is_empty()));
    assert_eq!(v["enforcement"]["seccomp"]["action"], "errno");
    // Errors are JSON too, with the same exit codes.
    let o = hsb(&["run", "--json", "--", "no-such-program-anywhere"]);
    assert_eq!(code(&o), 127);
    assert_eq!(json(&o)["error"]["kind"], "program_not_found");
    let o = hsb(&["run", "--json", "--wall-time", "200ms", "--", "sleep", "5"]);
    assert_eq!(code(&o), 124);
    assert_eq!(json(&o)["termination"], "timeout");
}

#[test]
fn stdin_from_a_file_or_from_hsb() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("in.txt");
    std::fs::write(&f, "a\nb\nc\n").unwrap();
    let o = hsb(&["run", "--stdin", f.to_str().unwrap(), "--", "wc", "-l"]);
    assert_eq!(text(&o.stdout).trim(), "3");
    let mut child = Command::new(HSB)
        .args(["run", "--stdin", "-", "--", "tr", "a-z", "A-Z"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"hello\n").unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(text(&o.stdout), "HELLO\n");
}

#[test]
fn mounts_env_cwd_and_limits_flags() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("in.txt"), "data").unwrap();
    let ro = format!("{}:/in:ro", dir.path().display());
    let o = hsb(&[
        "run",
        "--mount",
        &ro,
        "--env",
        "A=1",
        "--cwd",
        "/in",
        "--memory",
        "256MiB",
        "--pids",
        "16",
        "--cpu-time",
        "5s",
        "--network",
        "loopback",
        "--",
        "sh",
        "-c",
        "echo $A; cat in.txt; echo x > in.txt",
    ]);
    assert_eq!(text(&o.stdout), "1\ndata");
    assert!(text(&o.stderr).contains("Read-only"), "{}", text(&o.stderr));
}

#[test]
fn probe_reports_both_backends() {
    let o = hsb(&["probe", "--json"]);
    assert_eq!(code(&o), 0);
    let v = json(&o);
    let c = &v["container"];
    assert_eq!(c["available"], true, "{c}");
    for k in [
        "user_namespaces",
        "seccomp",
        "landlock_abi",
        "cgroup",
        "rootless",
    ] {
        assert!(
            c["details"].get(k).is_some(),
            "container probe lacks {k}: {c}"
        );
    }
    assert!(v["microvm"].get("available").is_some(), "{v}");
    let o = hsb(&["probe"]);
    assert!(
        text(&o.stdout).contains("container: available"),
        "{}",
        text(&o.stdout)
    );
}

#[test]
fn policy_check_and_explain() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        "[[defaults.mounts]]\nsource = \"/usr\"\n[[defaults.mounts]]\nsource = \"/lib64\"\noptional = true\n\
         [[defaults.mounts]]\nsource = \"/lib\"\noptional = true\n\
         [profiles.judge]\nisolation = \"container\"\nlimits = { memory = \"128MiB\" }\n",
    )
    .unwrap();
    let o = hsb(&["policy", "check", good.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[profiles.judge]\nlimits = { memroy = \"128MiB\" }\n").unwrap();
    let o = hsb(&["policy", "check", bad.to_str().unwrap()]);
    assert_eq!(code(&o), 125);
    let err = text(&o.stderr);
    assert!(
        err.contains(&format!("{}:2:", bad.display())) && err.contains("did you mean `memory`"),
        "{err}"
    );
    let o = hsb(&[
        "policy",
        "explain",
        good.to_str().unwrap(),
        "--workload",
        "judge",
        "--json",
        "--",
        "python3",
    ]);
    let v = json(&o);
    assert_eq!(v["profile"], "judge");
    assert_eq!(v["isolation"], "container");
    assert!(v["reasons"].as_array().is_some_and(|r| !r.is_empty()));
    let o = hsb(&[
        "run",
        "--policy",
        good.to_str().unwrap(),
        "--workload",
        "judge",
        "--json",
        "--",
        "/usr/bin/true",
    ]);
    assert_eq!(json(&o)["decision"]["profile"], "judge");
}

/// A copy of hsb that an unprivileged user can execute (the build tree may be private).
fn hsb_copy(dir: &std::path::Path) -> String {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join("hsb");
    std::fs::copy(HSB, &p).unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p.display().to_string()
}

#[test]
fn rootless_runs_work_and_say_so() {
    use std::os::unix::fs::PermissionsExt;
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        // Already unprivileged: the normal suites run rootless.
        let v = json(&hsb(&["run", "--json", "--", "true"]));
        assert_eq!(v["enforcement"]["rootless"], true);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bin = hsb_copy(dir.path());
    let o = Command::new("setpriv")
        .args([
            "--reuid",
            "65534",
            "--regid",
            "65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
        ])
        .args([
            bin.as_str(),
            "run",
            "--json",
            "--",
            "sh",
            "-c",
            "id -u; cat /proc/self/uid_map; grep CapEff /proc/self/status",
        ])
        .current_dir("/")
        .output()
        .expect("setpriv (util-linux) must be installed");
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let v = json(&o);
    assert_eq!(v["enforcement"]["rootless"], true);
    assert_eq!(v["enforcement"]["host_uid"], 65534);
    assert_eq!(v["enforcement"]["limits"]["mechanism"], "rlimit");
    assert!(v["enforcement"]["limits"]["note"]
        .as_str()
        .is_some_and(|n| n.contains("not delegated")));
    let out = v["stdout"].as_str().unwrap();
    assert!(
        out.starts_with("1000\n") && out.contains("1000      65534          1"),
        "{out}"
    );
    assert!(out.contains("CapEff:\t0000000000000000"), "{out}");
    // An image root (overlayfs in the user namespace) works rootless too.
    let img = busybox_image_tar(dir.path());
    std::fs::set_permissions(&img, std::fs::Permissions::from_mode(0o644)).unwrap();
    let store = dir.path().join("store");
    std::fs::create_dir(&store).unwrap();
    std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o777)).unwrap();
    let o = Command::new("setpriv")
        .args([
            "--reuid",
            "65534",
            "--regid",
            "65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
        ])
        .args([
            bin.as_str(),
            "run",
            "--json",
            "--image",
            img.to_str().unwrap(),
            "--",
            "sh",
            "-c",
            "echo hi > /new; cat /new",
        ])
        .env("HSB_IMAGE_STORE", &store)
        .current_dir("/")
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let v = json(&o);
    assert_eq!(v["stdout"], "hi\n");
    assert_eq!(v["enforcement"]["rootless"], true);
    // Without access to /dev/kvm (root-only here), the micro-VM fails closed: exit 125
    // and the reason.
    let others = std::fs::metadata("/dev/kvm").map_or(0, |m| m.permissions().mode() & 0o006);
    if common::feature(
        "a /dev/kvm that uid 65534 cannot open",
        (others != 0).then(|| format!("/dev/kvm is mode {others:o} for others")),
    ) {
        let o = Command::new("setpriv")
            .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
            .args([
                bin.as_str(),
                "run",
                "--isolation",
                "microvm",
                "--",
                "/usr/bin/busybox",
                "true",
            ])
            .current_dir("/")
            .output()
            .unwrap();
        assert_eq!(code(&o), 125, "{}", text(&o.stderr));
        assert!(text(&o.stderr).contains("/dev/kvm"), "{}", text(&o.stderr));
    }
}

fn processes_with(marker: &str) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            std::fs::read(e.path().join("cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(marker))
                .unwrap_or(false)
        })
        .count()
}

fn wait_for(secs: f64, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + Duration::from_secs_f64(secs);
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

#[test]
fn kill_9_of_hsb_leaves_nothing_behind() {
    let marker = "966.4242";
    let mut child = Command::new(HSB)
        .args([
            "run",
            "--",
            "sh",
            "-c",
            &format!("setsid sleep {marker} & sleep {marker}"),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    assert!(
        wait_for(5.0, || processes_with(marker) >= 2),
        "workload did not start"
    );
    let pid = child.id();
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(
        wait_for(3.0, || processes_with(marker) == 0),
        "{} processes left",
        processes_with(marker)
    );
    // Its cgroup is swept by the next run of any hsb.
    assert_eq!(code(&hsb(&["run", "--", "true"])), 0);
    for ctrl in ["memory", "pids", "cpuacct"] {
        let base = format!("/sys/fs/cgroup/{ctrl}/hsb");
        if let Ok(entries) = std::fs::read_dir(&base) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                assert!(
                    !name.starts_with(&format!("{pid}-")),
                    "cgroup {base}/{name} left behind"
                );
            }
        }
    }
}

/// Where a running `hsb` has its own binary's first mapping (from /proc/PID/maps).
fn binary_base(pid: u32, binary: &std::path::Path) -> Option<u64> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).ok()?;
    maps.lines()
        .find(|l| l.split_whitespace().nth(5) == binary.to_str())
        .and_then(|l| u64::from_str_radix(l.split('-').next()?, 16).ok())
}

/// `hsb` (the VMM's process too) is position-independent and loaded at a new address
/// each time: its link options (packed relocations, see build.rs) keep ASLR.
#[test]
fn hsb_is_loaded_at_a_random_address_each_time() {
    let header = std::fs::read(HSB).unwrap();
    // e_type at offset 16: ET_DYN (3) for a position-independent executable.
    assert_eq!(u16::from_le_bytes([header[16], header[17]]), 3, "{HSB}");
    let aslr = std::fs::read_to_string("/proc/sys/kernel/randomize_va_space").unwrap();
    if !common::feature(
        "ASLR",
        (aslr.trim() == "0").then(|| "kernel.randomize_va_space is 0".to_string()),
    ) {
        return;
    }
    let binary = std::fs::canonicalize(HSB).unwrap();
    let mut bases = Vec::new();
    for _ in 0..2 {
        let mut child = Command::new(HSB)
            .args(["run", "--", "sleep", "966.4343"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let mut base = None;
        wait_for(10.0, || {
            base = binary_base(child.id(), &binary);
            base.is_some()
        });
        child.kill().unwrap();
        child.wait().unwrap();
        bases.push(base.expect("hsb's mapping of its binary"));
    }
    assert_ne!(bases[0], bases[1], "hsb loaded twice at the same address");
    assert!(bases[0] != 0x400000, "{:#x}", bases[0]);
    assert!(
        wait_for(3.0, || processes_with("966.4343") == 0),
        "a sleep outlived its hsb"
    );
}

#[test]
fn operator_floor_and_needs_on_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let floor = dir.path().join("floor.toml");
    std::fs::write(
        &floor,
        "[floor]\nlimits = { memory = \"256MiB\" }\nnetwork = \"none\"\n",
    )
    .unwrap();
    let f = floor.to_str().unwrap();
    let o = hsb(&["run", "--floor", f, "--memory", "1GiB", "--", "true"]);
    assert_eq!(code(&o), 125);
    assert!(
        text(&o.stderr).contains("operator floor"),
        "{}",
        text(&o.stderr)
    );
    let o = hsb(&["run", "--floor", f, "--network", "loopback", "--", "true"]);
    assert_eq!(code(&o), 125);
    // Within the floor the run goes ahead, with the floor's maximum filled in.
    let o = hsb(&["run", "--floor", f, "--json", "--", "true"]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let auto = dir.path().join("auto.toml");
    std::fs::write(&auto, "[defaults]\nisolation = \"auto\"\n").unwrap();
    let a = auto.to_str().unwrap();
    let o = hsb(&[
        "policy",
        "explain",
        a,
        "--label",
        "trust=trusted",
        "--json",
        "--",
        "make",
    ]);
    assert_eq!(json(&o)["isolation"], "container");
    // Untrusted code goes to the micro-VM: where this host has none, the refusal says so.
    let o = hsb(&[
        "policy",
        "explain",
        a,
        "--label",
        "trust=untrusted",
        "--json",
        "--",
        "prog",
    ]);
    let v = json(&o);
    assert!(
        v["isolation"] == "microvm"
            || v["refused"]
                .as_str()
                .is_some_and(|r| r.contains("microvm isolation is not available")),
        "{v}"
    );
    if v["isolation"] != "microvm" {
        common::feature("KVM", Some(v["refused"].to_string()));
    }
    let o = hsb(&[
        "policy",
        "explain",
        a,
        "--label",
        "trust=untrusted",
        "--need",
        "network",
        "--json",
        "--",
        "prog",
    ]);
    assert_eq!(code(&o), 125);
    let v = json(&o);
    assert!(
        v["refused"].as_str().is_some_and(|r| r.contains("network")),
        "{v}"
    );
    let o = hsb(&[
        "policy",
        "explain",
        a,
        "--label",
        "trust=untrusted",
        "--need",
        "network",
    ]);
    assert!(text(&o.stdout).contains("refused"), "{}", text(&o.stdout));
}

#[test]
fn image_commands_and_run_with_an_image() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let store = dir.path().join("store");
    let img = busybox_image_tar(dir.path());
    let hsb_env = |args: &[&str]| {
        Command::new(HSB)
            .args(args)
            .env("HSB_IMAGE_STORE", &store)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let o = hsb_env(&["image", "import", img.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).starts_with("cli-test:1: 1 layers"),
        "{}",
        text(&o.stdout)
    );
    let o = hsb_env(&["image", "list", "--json"]);
    assert_eq!(json(&o)[0]["name"], "cli-test:1");
    // Without a program, the image's cmd runs; with one, it replaces the cmd.
    let o = hsb_env(&["run", "--image", "cli-test:1"]);
    assert_eq!(
        (code(&o), text(&o.stdout).as_str()),
        (0, "from-cmd\n"),
        "{}",
        text(&o.stderr)
    );
    let o = hsb_env(&["run", "--image", "cli-test:1", "--", "sh", "-c", "exit 9"]);
    assert_eq!(code(&o), 9);
    let o = hsb_env(&["run", "--image", "nope:0", "--", "sh"]);
    assert_eq!(code(&o), 125);
    assert!(
        text(&o.stderr).contains("no image `nope:0`"),
        "{}",
        text(&o.stderr)
    );
    let o = hsb_env(&["image", "rm", "cli-test:1"]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    assert_eq!(
        json(&hsb_env(&["image", "list", "--json"])),
        serde_json::json!([])
    );
    // A tampered image is refused by digest.
    let mut bad = std::fs::read(&img).unwrap();
    let at = bad.windows(7).position(|w| w == b"busybox").unwrap() + 2000;
    bad[at] ^= 0xff;
    let bad_path = dir.path().join("bad.tar");
    std::fs::write(&bad_path, bad).unwrap();
    let o = hsb_env(&["image", "import", bad_path.to_str().unwrap()]);
    assert_eq!(code(&o), 125);
    assert!(text(&o.stderr).contains("tampered"), "{}", text(&o.stderr));
}

/// A one-layer busybox image in `docker save` form, tagged `cli-test:1`, written in `dir`.
fn busybox_image_tar(dir: &std::path::Path) -> std::path::PathBuf {
    let busybox = std::fs::read("/bin/busybox").expect("busybox-static (scripts/install-deps.sh)");
    let mut layer = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(busybox.len() as u64);
    h.set_mode(0o755);
    layer
        .append_data(&mut h, "bin/busybox", &busybox[..])
        .unwrap();
    let mut l = tar::Header::new_gnu();
    l.set_entry_type(tar::EntryType::Symlink);
    l.set_size(0);
    layer.append_link(&mut l, "bin/sh", "/bin/busybox").unwrap();
    let layer = layer.into_inner().unwrap();
    let hex = |b: &[u8]| {
        sha2::Sha256::digest(b)
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect::<String>()
    };
    use sha2::Digest;
    let cfg = serde_json::json!({"architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["/bin/sh", "-c", "echo from-cmd"], "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{}", hex(&layer))]}})
    .to_string();
    let cfg_name = format!("{}.json", hex(cfg.as_bytes()));
    let mut t = tar::Builder::new(Vec::new());
    for (name, data) in [
        ("l/layer.tar", layer.clone()),
        (cfg_name.as_str(), cfg.clone().into_bytes()),
        ("manifest.json", serde_json::json!([{"Config": cfg_name, "RepoTags": ["cli-test:1"], "Layers": ["l/layer.tar"]}]).to_string().into_bytes()),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        t.append_data(&mut h, name, &data[..]).unwrap();
    }
    let img = dir.join("img.tar");
    std::fs::write(&img, t.into_inner().unwrap()).unwrap();
    img
}

/// A reader that stops early (`hsb run --json | head -c 10`) ends hsb as it ends any
/// Unix filter (SIGPIPE), never with a panic; nothing of the sandbox stays.
#[test]
fn a_reader_that_stops_early_ends_hsb_quietly() {
    use std::io::Read;
    for args in [
        &["run", "--json", "--", "sh", "-c", "seq 1 200000"][..],
        &["run", "--", "sh", "-c", "seq 1 200000"][..],
        &["probe", "--json"][..],
    ] {
        let mut child = Command::new(HSB)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run hsb");
        let mut out = child.stdout.take().expect("stdout");
        let mut first = [0u8; 10];
        let _ = out.read(&mut first);
        drop(out);
        let mut err = String::new();
        child
            .stderr
            .take()
            .expect("stderr")
            .read_to_string(&mut err)
            .expect("read stderr");
        let status = child.wait().expect("wait hsb");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_ne!(status.code(), Some(101), "{args:?}: {err}");
    }
}
