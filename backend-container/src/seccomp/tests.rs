use super::*;

/// `prog` as the interpreter's instructions.
fn insns(prog: &[libc::sock_filter]) -> Vec<seccomp_tree::eval::Insn> {
    prog.iter().map(|f| (f.code, f.jt, f.jf, f.k)).collect()
}

fn run(prog: &[libc::sock_filter], nr: u32, arch: u32, args: [u64; 6]) -> u32 {
    seccomp_tree::eval::run(&insns(prog), nr, arch, args)
}

fn run_counted(prog: &[libc::sock_filter], nr: u32, arch: u32, args: [u64; 6]) -> (u32, usize) {
    seccomp_tree::eval::run_counted(&insns(prog), nr, arch, args)
}

fn seccompiler_linear(action: serde_json::Value) -> Vec<libc::sock_filter> {
    let mut doc: serde_json::Value = serde_json::from_str(PROFILE_JSON).unwrap();
    doc["workload"]["mismatch_action"] = action;
    let prog =
        seccompiler::compile_from_json(doc.to_string().as_bytes(), seccompiler::TargetArch::x86_64)
            .unwrap()
            .remove("workload")
            .unwrap();
    prog.iter()
        .map(|f| libc::sock_filter {
            code: f.code,
            jt: f.jt,
            jf: f.jf,
            k: f.k,
        })
        .collect()
}

const X86_64: u32 = 0xC000_003E;
const I386: u32 = 0x4000_0003;

#[test]
fn tree_matches_seccompilers_linear_program() {
    for (action, ours) in [
        (
            serde_json::json!({ "errno": 1 }),
            filters(SeccompAction::Errno).allowlist,
        ),
        (
            serde_json::json!("kill_process"),
            filters(SeccompAction::Kill).allowlist,
        ),
    ] {
        let reference = seccompiler_linear(action);
        let argsets: [[u64; 6]; 8] = [
            [0; 6],
            [1, 0, 0, 0, 0, 0],
            [2, 0, 1, 0, 0, 0],
            [16, 0, 0, 0, 0, 0],
            [16, 3, 9, 0, 0, 0],
            [0x1000_0000 | 17, 0, 0, 0, 0, 0],
            [0xffff_ffff, 0x5412, 0, 0, 0, 0],
            [0x20000, 0x541C, 0x7fff_ffff_ffff, 0, 0, 0],
        ];
        for nr in (0..600).chain([0x4000_0000, 0x4000_0001, 0x4000_0200, u32::MAX]) {
            for args in argsets {
                for arch in [X86_64, I386] {
                    assert_eq!(
                        run(ours, nr, arch, args),
                        run(&reference, nr, arch, args),
                        "nr {nr} args {args:?} arch {arch:#x}"
                    );
                }
            }
        }
        // The point of the tree: every lookup is short (the linear program needs hundreds).
        let longest = (0..600)
            .map(|nr| run_counted(ours, nr, X86_64, [0; 6]).1)
            .max()
            .unwrap();
        let linear = (0..600)
            .map(|nr| run_counted(&reference, nr, X86_64, [0; 6]).1)
            .max()
            .unwrap();
        assert!(
            longest < 60,
            "longest lookup {longest} instructions (linear: {linear})"
        );
    }
}

fn check_like_the_kernel(prog: &[libc::sock_filter]) {
    seccomp_tree::eval::check_like_the_kernel(&insns(prog));
}

#[test]
fn programs_pass_the_kernel_checks() {
    for action in [SeccompAction::Errno, SeccompAction::Kill] {
        check_like_the_kernel(filters(action).allowlist);
        check_like_the_kernel(filters(action).enosys);
        assert!(
            filters(action).allowlist.len() < 400,
            "{} instructions",
            filters(action).allowlist.len()
        );
    }
}

#[test]
fn verdicts_of_note() {
    let f = filters(SeccompAction::Errno).allowlist;
    let allow = libc::SECCOMP_RET_ALLOW;
    let eperm = libc::SECCOMP_RET_ERRNO | libc::EPERM as u32;
    assert_eq!(run(f, libc::SYS_read as u32, X86_64, [0; 6]), allow);
    assert_eq!(run(f, libc::SYS_unshare as u32, X86_64, [0; 6]), eperm);
    assert_eq!(run(f, libc::SYS_mount as u32, X86_64, [0; 6]), eperm);
    assert_eq!(
        run(
            f,
            libc::SYS_clone as u32,
            X86_64,
            [libc::SIGCHLD as u64, 0, 0, 0, 0, 0]
        ),
        allow
    );
    assert_eq!(
        run(
            f,
            libc::SYS_clone as u32,
            X86_64,
            [libc::CLONE_NEWUSER as u64, 0, 0, 0, 0, 0]
        ),
        eperm
    );
    assert_eq!(
        run(
            f,
            libc::SYS_ioctl as u32,
            X86_64,
            [0, libc::TIOCSTI, 0, 0, 0, 0]
        ),
        eperm
    );
    assert_eq!(
        run(
            f,
            libc::SYS_ioctl as u32,
            X86_64,
            [0, libc::TCGETS, 0, 0, 0, 0]
        ),
        allow
    );
    // x32 numbers are never allowed, and other architectures are killed.
    assert_eq!(
        run(f, 0x4000_0000 | libc::SYS_read as u32, X86_64, [0; 6]),
        eperm
    );
    assert_eq!(run(f, 3, I386, [0; 6]), libc::SECCOMP_RET_KILL_PROCESS);
    let k = filters(SeccompAction::Kill).allowlist;
    assert_eq!(
        run(k, libc::SYS_bpf as u32, X86_64, [0; 6]),
        libc::SECCOMP_RET_KILL_PROCESS
    );
    assert_eq!(
        run(
            filters(SeccompAction::Errno).enosys,
            libc::SYS_clone3 as u32,
            X86_64,
            [0; 6]
        ),
        libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32
    );
}

#[test]
fn dangerous_calls_are_not_listed() {
    let doc: serde_json::Value = serde_json::from_str(PROFILE_JSON).unwrap();
    let rules = doc["workload"]["filter"].as_array().unwrap();
    let names: Vec<&str> = rules.iter().filter_map(|r| r["syscall"].as_str()).collect();
    for bad in [
        "unshare",
        "setns",
        "mount",
        "umount2",
        "pivot_root",
        "move_mount",
        "open_tree",
        "fsopen",
        "fsmount",
        "mount_setattr",
        "ptrace",
        "process_vm_readv",
        "process_vm_writev",
        "bpf",
        "keyctl",
        "add_key",
        "request_key",
        "io_uring_setup",
        "io_uring_enter",
        "io_uring_register",
        "perf_event_open",
        "userfaultfd",
        "init_module",
        "finit_module",
        "delete_module",
        "kexec_load",
        "kexec_file_load",
        "reboot",
        "swapon",
        "acct",
        "iopl",
        "ioperm",
        "chroot",
        "open_by_handle_at",
        "modify_ldt",
        "syslog",
        "settimeofday",
        "clock_settime",
    ] {
        assert!(!names.contains(&bad), "{bad} is allowed");
    }
    // Every syscall's first rule says why it is allowed.
    let mut seen = std::collections::HashSet::new();
    for rule in rules {
        let name = rule["syscall"].as_str().unwrap();
        if seen.insert(name) {
            assert!(rule.get("comment").is_some(), "{name} has no reason");
        }
    }
}

/// Set-id bits in every way of setting a mode, UNIX datagram sockets, and a second
/// seccomp listener are refused; the same calls without them are allowed.
#[test]
fn set_id_modes_datagram_unix_sockets_and_listeners_are_refused() {
    let f = filters(SeccompAction::Errno).allowlist;
    let allow = libc::SECCOMP_RET_ALLOW;
    let eperm = libc::SECCOMP_RET_ERRNO | libc::EPERM as u32;
    let at = |nr: libc::c_long, args: [u64; 6]| run(f, nr as u32, X86_64, args);
    for mode in [0o4755u64, 0o2755, 0o6777, 0o104755, 0x1_0000_0000 | 0o4000] {
        assert_eq!(
            at(libc::SYS_chmod, [0, mode, 0, 0, 0, 0]),
            eperm,
            "chmod {mode:o}"
        );
        assert_eq!(at(libc::SYS_fchmod, [3, mode, 0, 0, 0, 0]), eperm);
        assert_eq!(at(libc::SYS_fchmodat, [3, 0, mode, 0, 0, 0]), eperm);
        assert_eq!(at(libc::SYS_fchmodat2, [3, 0, mode, 0, 0, 0]), eperm);
        // mkdir ignores set-id bits in its mode (as Linux does): nothing to refuse.
        assert_eq!(at(libc::SYS_mkdirat, [3, 0, mode, 0, 0, 0]), allow);
        assert_eq!(at(libc::SYS_mknod, [0, mode | 0o10000, 0, 0, 0, 0]), eperm);
        assert_eq!(
            at(libc::SYS_mknodat, [3, 0, mode | 0o10000, 0, 0, 0]),
            eperm
        );
        assert_eq!(at(libc::SYS_creat, [0, mode, 0, 0, 0, 0]), eperm);
        let creat = libc::O_CREAT as u64 | libc::O_WRONLY as u64;
        let tmpfile = libc::O_TMPFILE as u64 | libc::O_RDWR as u64;
        assert_eq!(at(libc::SYS_open, [0, creat, mode, 0, 0, 0]), eperm);
        assert_eq!(at(libc::SYS_open, [0, tmpfile, mode, 0, 0, 0]), eperm);
        assert_eq!(at(libc::SYS_openat, [3, 0, creat, mode, 0, 0]), eperm);
        assert_eq!(at(libc::SYS_openat, [3, 0, tmpfile, mode, 0, 0]), eperm);
        // Without O_CREAT or O_TMPFILE the mode is ignored by the kernel: not refused.
        assert_eq!(
            at(libc::SYS_openat, [3, 0, libc::O_RDONLY as u64, mode, 0, 0]),
            allow
        );
    }
    for mode in [0o755u64, 0o1777, 0o644, 0] {
        assert_eq!(at(libc::SYS_chmod, [0, mode, 0, 0, 0, 0]), allow);
        assert_eq!(at(libc::SYS_fchmodat, [3, 0, mode, 0, 0, 0]), allow);
        assert_eq!(at(libc::SYS_mkdirat, [3, 0, mode, 0, 0, 0]), allow);
        assert_eq!(
            at(libc::SYS_openat, [3, 0, libc::O_CREAT as u64, mode, 0, 0]),
            allow
        );
        assert_eq!(
            at(libc::SYS_mknodat, [3, 0, 0o10000 | mode, 0, 0, 0]),
            allow
        );
    }
    // openat2's mode is in memory: ENOSYS from the last filter, so libc uses openat.
    assert_eq!(
        run(
            filters(SeccompAction::Errno).enosys,
            libc::SYS_openat2 as u32,
            X86_64,
            [0; 6]
        ),
        libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32
    );
    // UNIX sockets: stream and seqpacket, never datagram (flags do not matter).
    let unix = libc::AF_UNIX as u64;
    for (ty, want) in [
        (libc::SOCK_STREAM, allow),
        (libc::SOCK_SEQPACKET, allow),
        (
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            allow,
        ),
        (libc::SOCK_DGRAM, eperm),
        (libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, eperm),
        (libc::SOCK_RAW, eperm),
    ] {
        assert_eq!(
            at(libc::SYS_socket, [unix, ty as u64, 0, 0, 0, 0]),
            want,
            "socket {ty}"
        );
        assert_eq!(
            at(libc::SYS_socketpair, [unix, ty as u64, 0, 0, 0, 0]),
            want,
            "pair {ty}"
        );
    }
    // A listener of the workload's own is refused; plain filters are not.
    let new_listener = libc::SECCOMP_FILTER_FLAG_NEW_LISTENER;
    assert_eq!(at(libc::SYS_seccomp, [1, new_listener, 0, 0, 0, 0]), eperm);
    assert_eq!(at(libc::SYS_seccomp, [1, 0, 0, 0, 0, 0]), allow);
    // Every connect goes to the supervisor; nothing else does.
    let notif = filters(SeccompAction::Errno).user_notif;
    check_like_the_kernel(notif);
    assert_eq!(
        run(notif, libc::SYS_connect as u32, X86_64, [3, 0, 16, 0, 0, 0]),
        libc::SECCOMP_RET_USER_NOTIF
    );
    for nr in [
        libc::SYS_read,
        libc::SYS_sendto,
        libc::SYS_sendmsg,
        libc::SYS_bind,
    ] {
        assert_eq!(run(notif, nr as u32, X86_64, [0; 6]), allow);
    }
}
