//! Each limit of the container backend, hit by a real workload, ends the run with its
//! own termination, and kills everything the workload started.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hsb_tests::*;
use hybrid_sandbox::{ByteSize, IsolationRequest, LimitMechanism};

fn programs() -> PathBuf {
    hsb_tests::programs(env!("CARGO_TARGET_TMPDIR"))
}

fn prog(name: &str) -> Workload {
    Workload::new(
        format!("{PROGRAMS_IN_SANDBOX}/{name}"),
        Vec::<String>::new(),
    )
    .mount(Mount::ro(programs(), PROGRAMS_IN_SANDBOX))
    .isolation(IsolationRequest::Container)
}

/// Usable cgroups; without them the limits tests check what rlimits still hold.
fn cgroups() -> bool {
    let limits = run(Workload::new("true", Vec::<String>::new()))
        .enforcement
        .limits;
    feature(
        "usable cgroups",
        (limits.mechanism == LimitMechanism::Rlimit)
            .then(|| limits.note.unwrap_or_else(|| "rlimits only".into())),
    )
}

#[test]
fn fork_bomb_hits_the_pids_limit() {
    let mut w = prog("forkbomb");
    w.limits.pids = Some(32);
    w.limits.wall_time = Some(Duration::from_secs(20));
    let o = run(w);
    if cgroups() {
        assert_eq!(o.termination, Termination::PidsLimit, "{o:?}");
    } else {
        // RLIMIT_NPROC cannot end the run by itself: the bomb spins until the wall time.
        assert!(
            matches!(o.termination, Termination::PidsLimit | Termination::Timeout),
            "{o:?}"
        );
    }
    assert!(
        o.wall_time < Duration::from_secs(20),
        "the bomb was not stopped early: {o:?}"
    );
}

#[test]
fn memory_hog_hits_the_memory_limit() {
    let mut w = prog("memhog");
    w.limits.memory = Some(ByteSize::mib(64));
    w.limits.tmp_size = Some(ByteSize::mib(8));
    let o = run(w);
    assert_eq!(o.termination, Termination::MemoryLimit, "{o:?}");
    if cgroups() {
        assert!(
            o.peak_memory_bytes >= 48 << 20 && o.peak_memory_bytes <= 72 << 20,
            "peak {}",
            o.peak_memory_bytes
        );
    }
}

#[test]
fn cpu_spin_hits_the_cpu_limit() {
    let mut w = prog("spin");
    w.limits.cpu_time = Some(Duration::from_millis(400));
    w.limits.wall_time = Some(Duration::from_secs(20));
    let o = run(w);
    assert_eq!(o.termination, Termination::CpuLimit, "{o:?}");
    assert!(o.cpu_time >= Duration::from_millis(400), "{:?}", o.cpu_time);
    assert!(o.wall_time < Duration::from_secs(5), "{:?}", o.wall_time);
}

#[test]
fn wall_time_kills_a_setsid_grandchild_too() {
    // A grandchild that started its own session and ignores SIGHUP must die with the run.
    let marker = "977.7531";
    let mut w = sh(&format!(
        "setsid sh -c 'trap \"\" HUP; exec sleep {marker}' & sleep 1000"
    ))
    .isolation(IsolationRequest::Container);
    w.limits.wall_time = Some(Duration::from_millis(500));
    let o = run(w);
    assert_eq!(o.termination, Termination::Timeout, "{o:?}");
    assert_eq!(o.shell_status(), 124);
    assert!(o.wall_time < Duration::from_secs(3), "{:?}", o.wall_time);
    assert!(
        eventually(2.0, || host_processes_with(marker).is_empty()),
        "left behind: {:?}",
        host_processes_with(marker)
    );
}

#[test]
fn output_flood_hits_the_output_limit() {
    let mut w = Workload::new("yes", ["flood"]).isolation(IsolationRequest::Container);
    w.limits.output = Some(ByteSize::mib(1));
    let o = run(w);
    assert_eq!(o.termination, Termination::OutputLimit, "{o:?}");
    assert_eq!(
        o.stdout.len() + o.stderr.len(),
        1 << 20,
        "captured output is capped at the limit"
    );
}

#[test]
fn file_size_limit_stops_a_big_write() {
    let mut w = sh("dd if=/dev/zero of=/tmp/big bs=1M count=4 2>/dev/null; echo $?")
        .isolation(IsolationRequest::Container);
    w.limits.file_size = Some(ByteSize::mib(1));
    let o = run(w);
    // dd dies of SIGXFSZ (exit 153 in the shell); the run itself exits normally.
    assert_eq!(stdout(&o).trim(), "153", "{o:?}");
}

#[test]
fn tmp_is_size_capped() {
    let mut w = sh("dd if=/dev/zero of=/tmp/fill bs=1M count=16 2>&1 | grep -c 'No space'")
        .isolation(IsolationRequest::Container);
    w.limits.tmp_size = Some(ByteSize::mib(4));
    let o = run(w);
    assert_eq!(stdout(&o).trim(), "1", "{o:?}");
}

#[test]
fn open_files_limit_is_in_force() {
    let mut w = sh("ulimit -n").isolation(IsolationRequest::Container);
    w.limits.open_files = Some(64);
    assert_eq!(stdout(&run(w)).trim(), "64");
}

#[test]
fn limits_report_names_their_mechanism() {
    let o = run(Workload::new("true", Vec::<String>::new()).isolation(IsolationRequest::Container));
    let d = &o.enforcement.limits.details;
    for k in [
        "memory",
        "pids",
        "cpu_time",
        "wall_time",
        "output",
        "open_files",
        "file_size",
    ] {
        assert!(d.contains_key(k), "no mechanism for {k}: {d:?}");
    }
}

/// Every process of a run sits in the run's own leaf of each cgroup v1 hierarchy the
/// host offers (init moves itself in through `tasks`, before its cgroup namespace is
/// made), a process the workload forks too, and the caller stays where it was.
#[test]
fn workload_processes_sit_in_the_runs_cgroup_leaves() {
    if !cgroups() || !Path::new("/sys/fs/cgroup/memory/hsb").is_dir() {
        return; // cgroup v2 hosts: the parent moves init (see cgroup.rs).
    }
    let mine = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let w = Workload::new("/bin/sh", ["-c", "sleep 3017 & exec sleep 3018"])
        .isolation(IsolationRequest::Container);
    let t = std::thread::spawn(move || run(w));
    let pids = (0..400)
        .find_map(|_| {
            std::thread::sleep(Duration::from_millis(25));
            let p = [
                host_processes_with("sleep\u{0}3017"),
                host_processes_with("sleep\u{0}3018"),
            ];
            p.iter().all(|v| v.len() == 1).then(|| [p[0][0], p[1][0]])
        })
        .expect("the workload's two sleeps never showed up");
    let leaf = format!(":/hsb/{}-", std::process::id());
    for p in pids {
        let cg = std::fs::read_to_string(format!("/proc/{p}/cgroup")).unwrap();
        for ctrl in ["memory", "pids", "cpuacct"] {
            let line = cg
                .lines()
                .find(|l| {
                    l.split(':')
                        .nth(1)
                        .is_some_and(|c| c.split(',').any(|x| x == ctrl))
                })
                .unwrap_or_else(|| panic!("no {ctrl} line in {cg}"));
            assert!(
                line.contains(&leaf),
                "process {p} is not in the run's {ctrl} leaf: {cg}"
            );
        }
    }
    for p in pids {
        let _ = std::process::Command::new("kill")
            .arg(p.to_string())
            .status();
    }
    let o = t.join().unwrap();
    assert!(!o.success(), "{o:?}");
    assert_eq!(
        std::fs::read_to_string("/proc/self/cgroup").unwrap(),
        mine,
        "the caller's own cgroups changed"
    );
}

/// `cpus = 0.25`: two spinning processes for about 1.5 s of wall time get a quarter of
/// one CPU between them (the cgroup's CPU quota), not the two CPUs they could use; the
/// run ends normally. Only an upper bound is checked: a loaded machine gives less.
#[test]
fn cpus_limit_holds_spinners_to_their_share() {
    if !cgroups() {
        return;
    }
    let mut w =
        sh("for i in 1 2; do timeout 1.5 sh -c 'while :; do :; done' & done; wait; echo done")
            .isolation(IsolationRequest::Container);
    w.limits.cpus = Some("0.25".parse().unwrap());
    let o = run(w);
    assert_eq!(
        (o.exit_code, stdout(&o).as_str()),
        (Some(0), "done\n"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let wall = o.wall_time.as_secs_f64();
    let cpu = o.cpu_time.as_secs_f64();
    assert!(
        cpu < 0.6 * wall,
        "{cpu:.2} s of CPU in {wall:.2} s under cpus = 0.25"
    );
    let detail = &o.enforcement.limits.details["cpus"];
    assert!(
        detail.contains("cpu.max") || detail.contains("cpu.cfs_quota_us"),
        "{detail}"
    );
}

/// The micro-VM has one vCPU: a share below one CPU is refused by name (never
/// ignored), one or more is what it has anyway and is reported so.
#[test]
fn cpus_below_one_is_refused_by_the_microvm() {
    if !backend_ready(IsolationRequest::MicroVm) {
        return;
    }
    let mut w = sh("true").isolation(IsolationRequest::MicroVm);
    w.limits.cpus = Some("0.5".parse().unwrap());
    let rt = runtime();
    let e = rt.block_on(sandbox().run(w.clone())).unwrap_err().chain();
    assert!(e.contains("cpus") || e.contains("one vCPU"), "{e}");
    w.limits.cpus = Some("1".parse().unwrap());
    let o = run(w);
    assert_eq!(o.exit_code, Some(0));
    assert!(o.enforcement.limits.details["cpus"].contains("one vCPU"));
}
