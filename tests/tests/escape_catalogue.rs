//! The escape catalogue: one test per known technique, run against both backends. Each
//! runs a real workload (tests/programs/attack.c, statically linked so that the micro-VM
//! runs it too) that tries the technique, and asserts it failed.
//!
//! Techniques the micro-VM cannot even express (it answers every host-kernel feature
//! with its own personality) still run there: the assertion is the same, the attack
//! failed.

use std::path::PathBuf;

use hsb_tests::*;
use hybrid_sandbox::{IsolationRequest, Network, Outcome};

fn programs() -> PathBuf {
    hsb_tests::programs(env!("CARGO_TARGET_TMPDIR"))
}

/// attack-static with `args`, in `iso`.
fn attack_in(iso: IsolationRequest, args: &[&str]) -> Workload {
    Workload::new(
        format!("{PROGRAMS_IN_SANDBOX}/attack-static"),
        args.iter().copied(),
    )
    .mount(Mount::ro(programs(), PROGRAMS_IN_SANDBOX))
    .isolation(iso)
}

/// Runs an attack. Whatever the test then expects, any line in which a probe reports an
/// attack as allowed fails it here.
fn go(w: Workload) -> Outcome {
    let o = run(w);
    let v = verdict(&o);
    let allowed: Vec<&str> = v.lines().filter(|l| l.contains(": allowed")).collect();
    assert!(
        allowed.is_empty(),
        "the sandbox allowed an attack: {allowed:#?}\n{v}"
    );
    o
}

fn verdict(o: &Outcome) -> String {
    format!("{}{}", stdout(o), String::from_utf8_lossy(&o.stderr))
}

/// The probe ran and reported its operation refused (or the workload died trying).
fn assert_failed(o: &Outcome, what: &str) {
    let v = verdict(o);
    let refused = v.contains(": blocked") || o.termination != Termination::Exited;
    assert!(refused, "{what}: the attack succeeded: {v} ({o:?})");
}

macro_rules! catalogue {
    ($($(#[$doc:meta])* fn $name:ident($iso:ident) $body:block)*) => {
        mod container {
            use super::*;
            $( $(#[$doc])* #[test] fn $name() { let $iso = IsolationRequest::Container; $body } )*
        }
        mod microvm {
            use super::*;
            $( $(#[$doc])* #[test] fn $name() {
                let $iso = IsolationRequest::MicroVm;
                if !backend_ready($iso) { return; }
                $body
            } )*
        }
    };
}

catalogue! {
    /// /proc/self/exe overwrite (runc CVE-2019-5736 style): the workload opens its own
    /// executable, or init's, for writing.
    fn proc_self_exe_overwrite(iso) {
        assert_failed(&go(attack_in(iso, &["open-write", "/proc/self/exe"])), "write /proc/self/exe");
        assert_failed(&go(attack_in(iso, &["open-write", "/proc/1/exe"])), "write /proc/1/exe");
    }

    /// `..` past the root of a mount or of the sandbox.
    fn dotdot_traversal(iso) {
        for p in ["/../../../../etc/shadow", "/opt/hsb-tests/../../../etc/shadow", "/tmp/../../root/.bashrc"] {
            assert_failed(&go(attack_in(iso, &["open-read", p])), p);
        }
    }

    /// A symlink planted in a writable mount, pointing at a host path.
    fn symlink_to_host_path(iso) {
        let dir = writable_tempdir();
        let secret = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(secret.path(), "host secret").unwrap();
        let target = secret.path().to_str().unwrap();
        let o = go(attack_in(iso, &["symlink-read", "/out/link", target]).mount(Mount::rw(dir.path(), "/out")));
        assert_failed(&o, "read a host file through a planted symlink");
        assert!(!verdict(&o).contains("host secret"));
    }

    /// A hard link from a writable mount to a file the sandbox sees read-only.
    fn hard_link_to_a_read_only_file(iso) {
        let dir = writable_tempdir();
        let o = go(attack_in(iso, &["link", "/opt/hsb-tests/attack-static", "/out/copy"]).mount(Mount::rw(dir.path(), "/out")));
        assert_failed(&o, "hard link across mounts");
        assert!(!dir.path().join("copy").exists());
    }

    /// A setuid-root binary in a mount gives no privilege.
    fn setuid_binary_in_a_mount(iso) {
        let dir = writable_tempdir();
        let bin = dir.path().join("attack-suid");
        std::fs::copy(programs().join("attack-static"), &bin).unwrap();
        let c = std::ffi::CString::new(bin.to_str().unwrap()).unwrap();
        // SAFETY: chown on a path we created, with a valid C string.
        unsafe { libc::chown(c.as_ptr(), 0, 0) };
        set_mode(&bin, 0o4755);
        let o = go(Workload::new("/x/attack-suid", ["setuid0"]).mount(Mount::ro(dir.path(), "/x")).isolation(iso));
        assert_failed(&o, "setuid(0) from a setuid-root binary");
    }

    /// Device nodes: making one, or opening one found in a mount.
    fn device_nodes(iso) {
        assert_failed(&go(attack_in(iso, &["mknod-char"])), "mknod a character device");
        if root_caller() {
            let dir = writable_tempdir();
            let node = dir.path().join("mem");
            let c = std::ffi::CString::new(node.to_str().unwrap()).unwrap();
            // SAFETY: mknod on a path we own; (1, 1) is /dev/mem.
            assert_eq!(unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(1, 1)) }, 0);
            let o = go(attack_in(iso, &["open-read", "/d/mem"]).mount(Mount::ro(dir.path(), "/d")));
            assert_failed(&o, "open a host device node found in a mount");
        }
    }

    /// Writes to kernel tunables: /proc/sys, /sys, and a cgroup's cgroup.procs.
    fn proc_sys_sys_and_cgroup_writes(iso) {
        for p in ["/proc/sys/kernel/hostname", "/proc/sys/vm/drop_caches", "/sys/kernel/uevent_helper", "/sys/fs/cgroup/cgroup.procs", "/sys/fs/cgroup/memory/cgroup.procs"] {
            assert_failed(&go(attack_in(iso, &["open-write", p])), p);
        }
    }

    /// Abstract UNIX sockets reach host services in the host's network namespace.
    fn abstract_unix_socket_to_a_host_service(iso) {
        let name = format!("hsb-catalogue-{}", std::process::id());
        let listener = std::os::unix::net::UnixListener::bind_addr(
            &<std::os::unix::net::SocketAddr as std::os::linux::net::SocketAddrExt>::from_abstract_name(name.as_bytes()).unwrap(),
        )
        .unwrap();
        listener.set_nonblocking(true).unwrap();
        let mut w = attack_in(iso, &["abstract-connect", &name]);
        if iso == IsolationRequest::Container {
            w.network = Some(Network::Loopback);
        }
        assert_failed(&go(w), "connect to a host abstract socket");
        assert!(listener.accept().is_err(), "the host service got a connection");
    }

    /// TCP and UDP to the host's loopback, with no network and with the sandbox's own
    /// loopback (the default): under `none` both calls fail; under `loopback` a datagram
    /// may leave the socket (to the sandbox's own 127.0.0.1, where nothing listens), and
    /// the host must still receive nothing.
    fn tcp_and_udp_to_host_loopback(iso) {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        tcp.set_nonblocking(true).unwrap();
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        udp.set_nonblocking(true).unwrap();
        let (tp, up) = (tcp.local_addr().unwrap().port().to_string(), udp.local_addr().unwrap().port().to_string());
        for network in [Network::None, Network::Loopback] {
            let with = |args: &[&str]| {
                let mut w = attack_in(iso, args);
                w.network = Some(network);
                w
            };
            assert_failed(&go(with(&["connect", &tp])), "TCP connect to the host");
            let o = run(with(&["udp-send", &up]));
            if network == Network::None {
                assert_failed(&o, "UDP send without a network");
            }
            assert!(tcp.accept().is_err(), "TCP reached the host ({network})");
            let mut buf = [0u8; 8];
            assert!(udp.recv_from(&mut buf).is_err(), "UDP reached the host ({network})");
        }
    }

    /// TIOCSTI: pushing characters into an inherited terminal.
    fn tiocsti_on_a_terminal(iso) {
        assert_failed(&go(attack_in(iso, &["tiocsti"])), "TIOCSTI");
    }

    /// Debugging other processes: ptrace, process_vm_readv.
    fn ptrace_and_process_vm(iso) {
        for p in ["ptrace-traceme", "ptrace-attach-init", "process_vm_readv"] {
            assert_failed(&go(attack_in(iso, &[p])), p);
        }
    }

    /// Kernel attack surface: userfaultfd, io_uring, bpf, perf_event_open, keyrings,
    /// modules, kexec, reboot.
    fn kernel_attack_surface(iso) {
        for p in ["userfaultfd", "io_uring", "bpf", "perf", "keyctl", "add_key", "init_module", "kexec", "reboot"] {
            assert_failed(&go(attack_in(iso, &[p])), p);
        }
    }

    /// New namespaces: clone3/clone/unshare with namespace flags, setns; and mounts.
    fn namespaces_and_mounts(iso) {
        for p in ["unshare-user", "unshare-mount", "unshare-net", "clone-newuser", "setns", "mount", "umount", "pivot_root", "chroot"] {
            assert_failed(&go(attack_in(iso, &[p])), p);
        }
        let o = go(attack_in(iso, &["clone3"]));
        assert_failed(&o, "clone3");
    }

    /// The x32 and int 0x80 (i386) system call entry paths.
    fn x32_and_int80_entry_paths(iso) {
        assert_failed(&go(attack_in(iso, &["x32-getpid"])), "x32 syscall");
        let o = go(attack_in(iso, &["int80-getpid"]));
        assert!(!stdout(&o).contains("returned") || stdout(&o).contains("returned -"), "int 0x80 reached a kernel: {}", verdict(&o));
    }

    /// Signals to host processes.
    fn signals_to_host_processes(iso) {
        let mut host = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let pid = host.id().to_string();
        assert_failed(&go(attack_in(iso, &["kill", &pid])), "signal a host process");
        assert!(host.try_wait().unwrap().is_none(), "the host process died");
        host.kill().unwrap();
        host.wait().unwrap();
        // The container's init shares the sandbox's Landlock domain with its execs:
        // signals from inside reach it and have no effect (PID 1 of its namespace).
        let probe = if iso == IsolationRequest::Container { "kill-init-effect" } else { "kill-init" };
        assert_failed(&go(attack_in(iso, &[probe])), "signal the sandbox's init");
    }

    /// Descriptors and environment of the caller reaching the workload.
    fn fd_and_environment_leaks(iso) {
        let f = std::fs::File::open("/etc/hostname").unwrap();
        use std::os::fd::AsRawFd;
        // SAFETY: clearing FD_CLOEXEC on a descriptor we own.
        unsafe { libc::fcntl(f.as_raw_fd(), libc::F_SETFD, 0) };
        // SAFETY: no other code reads this variable concurrently.
        unsafe { std::env::set_var("HSB_CATALOGUE_SECRET", "hunter2") };
        let o = go(attack_in(iso, &["fds"]));
        assert_eq!(stdout(&o), "fds: 3\n", "only stdin, stdout and stderr: {}", verdict(&o));
        let o = go(attack_in(iso, &["env"]));
        assert!(!stdout(&o).contains("HSB_CATALOGUE_SECRET"), "{}", stdout(&o));
        drop(f);
    }

    /// Privileged CPU instructions from user mode: rdmsr faults; cpuid only describes.
    fn rdmsr_and_cpuid_probing(iso) {
        let o = go(attack_in(iso, &["rdmsr"]));
        assert_eq!(o.termination, Termination::Signaled, "rdmsr must fault: {}", verdict(&o));
        let o = go(attack_in(iso, &["cpuid"]));
        assert_eq!(o.termination, Termination::Exited, "{}", verdict(&o));
    }

    /// A fork bomb under a pids limit: stopped early, and the limit is what ended it.
    fn fork_bomb_under_a_pids_limit(iso) {
        let mut w = Workload::new(format!("{PROGRAMS_IN_SANDBOX}/forkbomb-static"), Vec::<String>::new())
            .mount(Mount::ro(programs(), PROGRAMS_IN_SANDBOX))
            .isolation(iso);
        w.limits.pids = Some(32);
        w.limits.wall_time = Some(std::time::Duration::from_secs(20));
        let o = go(w);
        let rlimits = o.enforcement.limits.mechanism == hybrid_sandbox::LimitMechanism::Rlimit;
        if !feature("usable cgroups", rlimits.then(|| format!("{:?}", o.enforcement.limits.note))) {
            // RLIMIT_NPROC cannot end the run by itself: the bomb spins until the wall time.
            assert!(matches!(o.termination, Termination::PidsLimit | Termination::Timeout), "{o:?}");
        } else {
            assert_eq!(o.termination, Termination::PidsLimit, "{o:?}");
            assert!(o.wall_time < std::time::Duration::from_secs(20), "not stopped early: {o:?}");
        }
    }

    /// Wild pointers (kernel, non-canonical, unmapped, read-only), huge lengths and
    /// counts, and overlapping buffers across the syscall families (files, paths, I/O
    /// vectors, pipes, sockets, polling, memory, signals, time, identity, limits,
    /// processes): each answered as Linux answers it (EFAULT, EINVAL...), never a crash.
    /// In the container the answers are the host kernel's: the same program checks that
    /// its expectations are Linux's own.
    fn wild_pointers_and_lengths_in_every_syscall_family(iso) {
        let w = Workload::new(format!("{PROGRAMS_IN_SANDBOX}/wildptr-static"), Vec::<String>::new())
            .mount(Mount::ro(programs(), PROGRAMS_IN_SANDBOX))
            .isolation(iso);
        let o = go(w);
        let out = stdout(&o);
        assert!(o.success(), "{}", verdict(&o));
        let bad: Vec<&str> = out.lines().filter(|l| l.starts_with("BAD")).collect();
        assert!(bad.is_empty(), "answered unlike Linux: {bad:#?}");
        let last = out.lines().last().unwrap_or_default();
        assert!(last.starts_with("done ") && last.ends_with(", 0 bad"), "{out}");
        let checks: u32 = last.split_whitespace().nth(1).and_then(|n| n.parse().ok()).unwrap_or(0);
        assert!(checks > 300, "{last}");
    }

    /// Old translations of changed mappings: a page made read-only, not executable,
    /// unmapped, replaced (by anonymous memory, or by its file's pages mapped again over
    /// themselves), moved by mremap, or shared copy-on-write by a fork, each after the
    /// workload touched it, so that the CPU and the micro-VM's shadow page tables hold a
    /// translation of it: the next access must fault or see the new contents, never the
    /// old frame or right; a right given back works at once. 40 rounds (560 checks): in
    /// the micro-VM every change the VMM makes to a page table must reach what the guest
    /// caches of it. Fails if the VMM skips the guest's rewrite of a narrowed entry.
    fn old_translations_of_changed_mappings(iso) {
        let w = Workload::new(format!("{PROGRAMS_IN_SANDBOX}/stale-static"), Vec::<String>::new())
            .mount(Mount::ro(programs(), PROGRAMS_IN_SANDBOX))
            .isolation(iso);
        let o = go(w);
        let out = stdout(&o);
        let bad: Vec<&str> = out.lines().filter(|l| l.starts_with("BAD")).collect();
        assert!(bad.is_empty(), "an old translation survived: {bad:#?}");
        assert!(o.success(), "{}", verdict(&o));
        assert_eq!(out.lines().last(), Some("done 560 checks, 0 bad"), "{out}");
    }

    /// A host service's UNIX socket inside a mounted directory, read-only or read-write,
    /// under network `none` and `loopback`: a pathname socket is found by its inode,
    /// across namespaces and read-only mounts, so it would be a way out of any network
    /// mode. Reached by path, relative path, a planted symlink, /proc/self/fd, a
    /// datagram `sendto` (from a socket or a socket pair), a stream `sendmsg` naming it,
    /// and a race that rewrites the address while a supervisor checks it.
    fn host_unix_socket_through_a_mount(iso) {
        use std::os::unix::net::{UnixDatagram, UnixListener};
        let dir = writable_tempdir();
        let sock = dir.path().join("host.sock");
        let listener = UnixListener::bind(&sock).unwrap();
        listener.set_nonblocking(true).unwrap();
        set_mode(&sock, 0o777);
        let dgram_path = dir.path().join("host.dgram");
        let dgram = UnixDatagram::bind(&dgram_path).unwrap();
        dgram.set_nonblocking(true).unwrap();
        set_mode(&dgram_path, 0o777);
        let networks: &[Network] = match iso {
            IsolationRequest::Container => &[Network::None, Network::Loopback],
            _ => &[Network::None],
        };
        for &network in networks {
            let _ = std::fs::remove_file(dir.path().join("link"));
            let probes: [&[&str]; 10] = [
                &["unix-connect", "/h/host.sock"],
                &["unix-connect", "/w/host.sock"],
                &["unix-connect", "../h/host.sock"],
                &["unix-connect-via-link", "/h/host.sock", "/tmp/link"],
                &["unix-connect-via-link", "/h/host.sock", "/w/link"],
                &["unix-connect-fdpath", "/w/host.sock"],
                &["unix-sendto", "/h/host.dgram"],
                &["unix-sendto-pair", "/w/host.dgram"],
                &["unix-sendmsg-stream", "/h/host.sock"],
                &["unix-connect-race", "/h/host.sock", "3000"],
            ];
            for args in probes {
                let mut w = attack_in(iso, args)
                    .mount(Mount::ro(dir.path(), "/h"))
                    .mount(Mount::rw(dir.path(), "/w"));
                w.network = Some(network);
                w.cwd = Some("/tmp".into());
                assert_failed(&go(w), &format!("{args:?} under network {network:?}"));
            }
            let mut w = attack_in(iso, &["unix-connect", "host.sock"]).mount(Mount::ro(dir.path(), "/h"));
            w.network = Some(network);
            w.cwd = Some("/h".into());
            assert_failed(&go(w), "a relative path from inside the mount");
        }
        assert!(listener.accept().is_err(), "the host service got a connection");
        assert!(dgram.recv(&mut [0u8; 8]).is_err(), "the host service got a datagram");
    }

    /// FIFOs and sockets made in a read-write mount would stay behind on the host: a FIFO
    /// hangs whoever opens it there later, a bound socket serves them.
    fn fifos_and_sockets_in_a_rw_mount(iso) {
        let dir = writable_tempdir();
        for args in [["mkfifo", "/out/fifo"], ["mknod-fifo", "/out/fifo2"], ["mknod-sock", "/out/sock"], ["unix-bind", "/out/bound"]] {
            assert_failed(&go(attack_in(iso, &args).mount(Mount::rw(dir.path(), "/out"))), &args.join(" "));
            // Below the sandbox's own /tmp too (whose own rights must not reach the mount).
            let below = args[1].replace("/out", "/tmp/out");
            let o = go(attack_in(iso, &[args[0], &below]).mount(Mount::rw(dir.path(), "/tmp/out")));
            assert_failed(&o, &format!("{} under /tmp", args[0]));
        }
        for e in std::fs::read_dir(dir.path()).unwrap() {
            let e = e.unwrap();
            let t = e.file_type().unwrap();
            use std::os::unix::fs::FileTypeExt;
            assert!(!t.is_fifo() && !t.is_socket(), "{:?} was left on the host", e.path());
        }
    }

    /// Set-user-ID and set-group-ID bits (and file capabilities) on files in a
    /// read-write mount: the file belongs to the sandbox's identity on the host (to host
    /// root once mounts are idmapped), and a host user running it would get that identity.
    /// Every way of setting a mode: chmod, fchmod, fchmodat, fchmodat2, the create modes
    /// of open, openat, openat2, creat and mknod, and an O_TMPFILE linked in.
    fn set_id_bits_in_a_rw_mount(iso) {
        let dir = writable_tempdir();
        let probes = ["chmod", "fchmod", "fchmodat", "fchmodat2", "open-creat", "creat", "openat-creat", "openat2-creat", "mknod-reg"];
        for probe in probes {
            for mode in ["4755", "2755", "6777"] {
                let file = format!("/out/{probe}-{mode}");
                let o = go(attack_in(iso, &[probe, &file, mode]).mount(Mount::rw(dir.path(), "/out")));
                assert_failed(&o, &format!("{probe} {mode}"));
            }
        }
        let o = go(attack_in(iso, &["tmpfile-link", "/out", "4755", "/out/tmpfile"]).mount(Mount::rw(dir.path(), "/out")));
        assert_failed(&o, "O_TMPFILE with a set-id mode, linked in");
        let o = go(attack_in(iso, &["setxattr-cap", "/out/capfile"]).mount(Mount::rw(dir.path(), "/out")));
        assert_failed(&o, "a file capability");
        // What the host sees: no set-id bit, no capability, on anything the sandbox made.
        use std::os::unix::fs::PermissionsExt;
        let mut seen = 0;
        for e in std::fs::read_dir(dir.path()).unwrap() {
            let p = e.unwrap().path();
            let mode = std::fs::symlink_metadata(&p).unwrap().permissions().mode();
            assert_eq!(mode & 0o6000, 0, "{} has mode {mode:o} on the host", p.display());
            let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
            // SAFETY: a valid C string; a NULL buffer of size 0 asks only for the size.
            let n = unsafe { libc::getxattr(c.as_ptr(), c"security.capability".as_ptr(), std::ptr::null_mut(), 0) };
            assert!(n < 0, "{} has a file capability", p.display());
            seen += 1;
        }
        assert!(seen > 0, "the probes created nothing to check");
    }

    /// Host facts a sandbox's /proc would show: the kernel's command line, the boot id
    /// (a host fingerprint), its configuration, symbols, modules, keys, timers,
    /// scheduler internals and interrupt counts, pressure stall information (the host's
    /// load), and hardware and filesystem directories.
    fn proc_host_facts(iso) {
        let host = |p: &str| std::fs::read_to_string(p).unwrap_or_default().trim().to_string();
        let (cmdline, boot_id) = (host("/proc/cmdline"), host("/proc/sys/kernel/random/boot_id"));
        assert!(!boot_id.is_empty());
        let mut probes: Vec<Vec<String>> = vec![
            vec!["read-fact".into(), "/proc/cmdline".into(), cmdline],
            vec!["read-fact".into(), "/proc/sys/kernel/random/boot_id".into(), boot_id],
        ];
        for f in ["config.gz", "kallsyms", "modules", "keys", "key-users", "timer_list", "sched_debug", "latency_stats", "interrupts", "softirqs", "kcore"] {
            probes.push(vec!["read-fact".into(), format!("/proc/{f}")]);
        }
        for d in ["pressure", "acpi", "asound", "bus", "driver", "fs", "irq", "scsi"] {
            probes.push(vec!["list-fact".into(), format!("/proc/{d}")]);
        }
        for p in &probes {
            let args: Vec<&str> = p.iter().map(String::as_str).collect();
            assert_failed(&go(attack_in(iso, &args)), &p[..2].join(" "));
        }
        // And /proc/sys cannot be written (kernel.hostname is the sandbox's own UTS one).
        assert_failed(&go(attack_in(iso, &["open-write", "/proc/sys/kernel/hostname"])), "write /proc/sys");
    }
}

/// Techniques aimed at the micro-VM's own machinery, which a container does not have:
/// its ELF loader, the guest-side pages of its supervisor (syscall stub, doorbell,
/// return frame), its address-space layout. Each ends in a clean error or a clean
/// signal for the workload; the VMM never fails (a failure would be an `Err` of the run,
/// and these tests panic on it).
mod microvm_only {
    use super::*;
    use hybrid_sandbox::{Backend, HostSupport, IsolationRequest, Policy, SpawnError};

    fn ready() -> bool {
        backend_ready(IsolationRequest::MicroVm)
    }

    /// vmprobe-static NAME in the micro-VM.
    fn probe(name: &str) -> Outcome {
        go(
            Workload::new(format!("{PROGRAMS_IN_SANDBOX}/vmprobe-static"), [name])
                .mount(Mount::ro(programs(), PROGRAMS_IN_SANDBOX))
                .isolation(IsolationRequest::MicroVm),
        )
    }

    /// The probe ended in a fault signal, before doing anything after its attempt.
    fn assert_faulted(name: &str) {
        let o = probe(name);
        assert_eq!(
            o.termination,
            Termination::Signaled,
            "{name}: {}",
            verdict(&o)
        );
        assert!(
            matches!(o.signal, Some(libc::SIGSEGV | libc::SIGBUS | libc::SIGILL)),
            "{name}: {o:?}"
        );
        assert_eq!(stdout(&o), format!("armed {name}\n"), "{name}: it went on");
    }

    /// Stores into the syscall stub (its fast-call map too) and the vDSO's data fault;
    /// executing the return
    /// frame page faults; a frame written into it (asking for CPL0) is never used, and
    /// the stub's `iretq` reached with such a frame faults; a doorbell write with garbage
    /// is only a syscall with the workload's own registers, answered and returned from
    /// to where `rcx` says (not user code: the process gets SIGSEGV, for good).
    #[test]
    fn guest_stores_into_the_stub_doorbell_and_return_frame() {
        if !ready() {
            return;
        }
        for p in [
            "store-stub",
            "store-fast-map",
            "store-vvar",
            "exec-frame",
            "iret-to-kernel",
            "doorbell-garbage",
        ] {
            assert_faulted(p);
        }
        // A return address forged by entering the stub directly: the process ends, and
        // its code never runs again (the stub's iretq is not resumed for it).
        let o = probe("resume-after-kill");
        assert!(o.success(), "{}", verdict(&o));
        assert!(
            stdout(&o).ends_with("child signal 11, zombie did not run\n"),
            "{}",
            verdict(&o)
        );
        let o = probe("store-frame");
        assert!(o.success(), "{}", verdict(&o));
        assert!(
            stdout(&o).contains("still running, pid "),
            "{}",
            verdict(&o)
        );
        let o = probe("doorbell-getpid");
        assert!(o.success(), "{}", verdict(&o));
        let out = stdout(&o);
        let line = out.lines().nth(1).unwrap_or_default();
        let nums: Vec<&str> = line
            .split(" = ")
            .skip(1)
            .map(|s| s.split(',').next().unwrap_or_default())
            .collect();
        assert!(
            nums.len() == 2 && nums[0] == nums[1],
            "the doorbell answered as getpid does: {out}"
        );
    }

    /// Jumps into the supervisor's entry points (the stub, its `iretq`, its flush
    /// entry, the CPL0 exception handlers) and to a non-canonical address, with garbage
    /// in every register, stack pointer included; `int` to vectors user mode may not use.
    #[test]
    fn jumps_into_the_supervisor_with_garbage_registers() {
        if !ready() {
            return;
        }
        for p in [
            "jump-stub",
            "jump-iret",
            "jump-flush",
            "jump-handler",
            "jump-noncanonical",
            "int-0x81",
            "int-0x0e",
        ] {
            assert_faulted(p);
        }
    }

    /// Loads and stores at unmapped, upper-half (the supervisor's direct map of guest
    /// RAM, its own frames) and non-canonical addresses: SIGSEGV.
    #[test]
    fn unmapped_and_upper_half_accesses_are_sigsegv() {
        if !ready() {
            return;
        }
        for p in [
            "read-null",
            "read-unmapped",
            "read-direct-map",
            "read-supervisor",
            "write-supervisor",
            "read-noncanonical",
            "read-top",
        ] {
            assert_faulted(p);
            let o = probe(p);
            assert_eq!(o.signal, Some(libc::SIGSEGV), "{p}: {o:?}");
        }
    }

    /// Malformed programs, given to the VMM's loader at setup and to `execve` inside a
    /// running guest: truncated headers, bogus program headers, huge `p_memsz` and
    /// `p_filesz`, overlapping, wrapping and misplaced segments, entry points outside
    /// the program (in the supervisor's pages too), `PT_INTERP` pointing at itself, in a
    /// loop, at nothing or at garbage, and garbage after `#!`. Each is a clean error
    /// (`NotExecutable` at setup, an errno from `execve`) or a clean signal or exit of
    /// the workload, never a failure of the VMM; and the VMM runs the next one.
    #[test]
    fn malformed_elf_files() {
        if !ready() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let cases = malformed::cases("/x");
        for (name, bytes) in &cases {
            let f = dir.path().join(name);
            std::fs::write(&f, bytes).unwrap();
            set_mode(&f, 0o755);
        }
        set_mode(dir.path(), 0o755);
        // At setup: the VMM's own loader.
        for (name, _) in &cases {
            let w = Workload::new(format!("/x/{name}"), Vec::<String>::new())
                .mount(Mount::ro(dir.path(), "/x"))
                .isolation(IsolationRequest::MicroVm);
            match spawn_direct(w) {
                Ok(o) => assert!(
                    matches!(
                        o.termination,
                        Termination::Exited | Termination::Signaled | Termination::MemoryLimit
                    ),
                    "{name}: {o:?}"
                ),
                Err(SpawnError::NotExecutable { .. } | SpawnError::ProgramNotFound(_)) => {}
                Err(SpawnError::Setup { step, .. }) if step == "loading the program" => {}
                Err(e) => panic!("{name}: {}", chain(&e)),
            }
        }
        // From a running guest: its execve, each in a child of one program.
        let names: Vec<String> = cases.iter().map(|(n, _)| format!("/x/{n}")).collect();
        let o = go(Workload::new(
            format!("{PROGRAMS_IN_SANDBOX}/execit-static"),
            names.iter().map(String::as_str),
        )
        .mount(Mount::ro(programs(), PROGRAMS_IN_SANDBOX))
        .mount(Mount::ro(dir.path(), "/x"))
        .isolation(IsolationRequest::MicroVm));
        assert!(o.success(), "{}", verdict(&o));
        let out = stdout(&o);
        assert!(out.ends_with("done\n"), "{out}");
        for n in &names {
            let line = out
                .lines()
                .find(|l| l.starts_with(&format!("{n}: ")))
                .unwrap_or_else(|| panic!("{n} missing: {out}"));
            assert!(
                line.contains(": errno=")
                    || line.contains(": exited ")
                    || line.contains(": signal "),
                "{line}"
            );
        }
        // The well-formed control case ran; the plainly broken ones were refused.
        assert!(out.contains("/x/control: exited 0\n"), "{out}");
        for n in [
            "truncated-16",
            "phnum-0",
            "vaddr-wraps",
            "vaddr-over-stub",
            "shebang-self",
            "interp-missing",
        ] {
            assert!(out.contains(&format!("/x/{n}: errno=")), "{n}: {out}");
        }
    }

    /// Runs `w` on the micro-VM backend directly: the plan as the policy makes it, given
    /// to the backend without the facade's look at the program first.
    fn spawn_direct(w: Workload) -> Result<Outcome, SpawnError> {
        let plan = Policy::embedded_default()
            .resolve(&w, &HostSupport::assume_all())
            .expect("plan");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let mut e = backend_microvm::MicroVmBackend::new().spawn(plan).await?;
            Ok(e.wait()
                .await
                .unwrap_or_else(|e| panic!("the VMM failed: {}", chain(&e))))
        })
    }

    fn chain(e: &dyn std::error::Error) -> String {
        let mut s = e.to_string();
        let mut cur = e.source();
        while let Some(c) = cur {
            s.push_str(": ");
            s.push_str(&c.to_string());
            cur = c.source();
        }
        s
    }

    /// Malformed x86-64 programs, built from a small valid one.
    mod malformed {
        const PT_LOAD: u32 = 1;
        const PT_INTERP: u32 = 3;

        /// A static ELF (headers, then `exit(0)`), loaded at 0x400000: a R+X segment over
        /// the whole file, a RW segment with a `.bss` tail, and a stack note.
        fn template() -> Vec<u8> {
            let code = [0xb8, 0x3c, 0, 0, 0, 0x31, 0xff, 0x0f, 0x05]; // exit(0)
            let code_at = 64 + 3 * 56;
            let total = (code_at + code.len()) as u64;
            let mut b = Vec::new();
            b.extend_from_slice(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0");
            b.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
            b.extend_from_slice(&62u16.to_le_bytes()); // x86-64
            b.extend_from_slice(&1u32.to_le_bytes());
            b.extend_from_slice(&(0x40_0000 + code_at as u64).to_le_bytes()); // entry
            b.extend_from_slice(&64u64.to_le_bytes()); // phoff
            b.extend_from_slice(&0u64.to_le_bytes()); // shoff
            b.extend_from_slice(&0u32.to_le_bytes());
            for v in [64u16, 56, 3, 64, 0, 0] {
                b.extend_from_slice(&v.to_le_bytes());
            }
            let ph = |t: u32, f: u32, off: u64, va: u64, fsz: u64, msz: u64| {
                let mut p = Vec::new();
                p.extend_from_slice(&t.to_le_bytes());
                p.extend_from_slice(&f.to_le_bytes());
                for v in [off, va, va, fsz, msz, 0x1000] {
                    p.extend_from_slice(&v.to_le_bytes());
                }
                p
            };
            b.extend(ph(PT_LOAD, 5, 0, 0x40_0000, total, total));
            b.extend(ph(PT_LOAD, 6, 0, 0x40_1000, 0x40, 0x3000));
            b.extend(ph(0x6474_e551, 6, 0, 0, 0, 0));
            b.extend_from_slice(&code);
            b
        }

        fn put(b: &mut [u8], at: usize, v: &[u8]) {
            b[at..at + v.len()].copy_from_slice(v);
        }
        fn u16_at(b: &mut [u8], at: usize, v: u16) {
            put(b, at, &v.to_le_bytes());
        }
        fn u32_at(b: &mut [u8], at: usize, v: u32) {
            put(b, at, &v.to_le_bytes());
        }
        fn u64_at(b: &mut [u8], at: usize, v: u64) {
            put(b, at, &v.to_le_bytes());
        }
        /// Offset of field `off` of program header `i`.
        fn ph(i: usize, off: usize) -> usize {
            64 + 56 * i + off
        }
        /// The template with program header 2 made a `PT_INTERP` naming `path`.
        fn with_interp(path: &[u8], nul: bool) -> Vec<u8> {
            let mut b = template();
            let at = b.len() as u64;
            b.extend_from_slice(path);
            if nul {
                b.push(0);
            }
            let len = b.len() as u64 - at;
            u32_at(&mut b, ph(2, 0), PT_INTERP);
            u64_at(&mut b, ph(2, 8), at);
            u64_at(&mut b, ph(2, 32), len);
            u64_at(&mut b, ph(2, 40), len);
            b
        }
        fn patched(f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
            let mut b = template();
            f(&mut b);
            b
        }

        /// Every case, with paths under `dir` (where the sandbox sees them).
        pub(super) fn cases(dir: &str) -> Vec<(String, Vec<u8>)> {
            let t = template();
            let p = |n: &str| format!("{dir}/{n}").into_bytes();
            let mut garbage = vec![0u8; 4096];
            let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
            for g in garbage.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *g = x as u8;
            }
            let mut many = template();
            u16_at(&mut many, 56, 512);
            u64_at(&mut many, 32, 4096);
            many.resize(4096, 0);
            for i in 0..512u64 {
                let at = 4096 + 56 * i as usize;
                many.resize(at + 56, 0);
                u32_at(&mut many, at, PT_LOAD);
                u32_at(&mut many, at + 4, 5);
                u64_at(&mut many, at + 16, 0x40_0000 + (i << 24));
                u64_at(&mut many, at + 32, 0x100);
                u64_at(&mut many, at + 40, 0x100);
            }
            let cases: Vec<(&str, Vec<u8>)> = vec![
                ("control", t.clone()),
                ("empty", Vec::new()),
                ("truncated-16", t[..16].to_vec()),
                ("truncated-63", t[..63].to_vec()),
                ("truncated-phdrs", t[..100].to_vec()),
                ("elf32", patched(|b| b[4] = 1)),
                ("big-endian", patched(|b| b[5] = 2)),
                ("not-x86-64", patched(|b| u16_at(b, 18, 40))),
                ("core-file", patched(|b| u16_at(b, 16, 4))),
                ("phentsize-32", patched(|b| u16_at(b, 54, 32))),
                ("phnum-0", patched(|b| u16_at(b, 56, 0))),
                ("phnum-65535", patched(|b| u16_at(b, 56, 0xffff))),
                ("phoff-huge", patched(|b| u64_at(b, 32, 1 << 62))),
                ("phoff-past-eof", patched(|b| u64_at(b, 32, 10_000))),
                ("phoff-wraps", patched(|b| u64_at(b, 32, u64::MAX - 8))),
                ("many-phdrs", many),
                (
                    "filesz-huge",
                    patched(|b| {
                        u64_at(b, ph(0, 32), 1 << 60);
                        u64_at(b, ph(0, 40), 1 << 60)
                    }),
                ),
                (
                    "filesz-past-eof",
                    patched(|b| {
                        u64_at(b, ph(0, 32), 1 << 20);
                        u64_at(b, ph(0, 40), 1 << 20)
                    }),
                ),
                (
                    "filesz-over-memsz",
                    patched(|b| u64_at(b, ph(1, 32), 0x4000)),
                ),
                ("memsz-huge", patched(|b| u64_at(b, ph(1, 40), 1 << 46))),
                ("memsz-16g", patched(|b| u64_at(b, ph(1, 40), 16 << 30))),
                ("memsz-max", patched(|b| u64_at(b, ph(1, 40), u64::MAX))),
                (
                    "vaddr-wraps",
                    patched(|b| u64_at(b, ph(1, 16), 0xffff_ffff_ffff_f000)),
                ),
                (
                    "vaddr-upper-half",
                    patched(|b| u64_at(b, ph(1, 16), 0xffff_8000_0000_0000)),
                ),
                (
                    "vaddr-over-stub",
                    patched(|b| u64_at(b, ph(1, 16), 0x7fff_ffff_d000)),
                ),
                (
                    "vaddr-over-vdso",
                    patched(|b| u64_at(b, ph(1, 16), 0x7fff_fff8_0000)),
                ),
                ("vaddr-zero", patched(|b| u64_at(b, ph(0, 16), 0))),
                ("misaligned", patched(|b| u64_at(b, ph(1, 16), 0x40_1100))),
                (
                    "overlapping-segments",
                    patched(|b| u64_at(b, ph(1, 16), 0x40_0000)),
                ),
                ("entry-unmapped", patched(|b| u64_at(b, 24, 0x10_0000_0000))),
                (
                    "entry-supervisor",
                    patched(|b| u64_at(b, 24, 0xffff_ffff_ffe0_4000)),
                ),
                (
                    "entry-noncanonical",
                    patched(|b| u64_at(b, 24, 0x8000_0000_0000)),
                ),
                ("entry-stub", patched(|b| u64_at(b, 24, 0x7fff_ffff_d000))),
                (
                    "entry-doorbell",
                    patched(|b| u64_at(b, 24, 0x7fff_ffff_e000)),
                ),
                ("interp-self", with_interp(&p("interp-self"), true)),
                ("interp-loop-a", with_interp(&p("interp-loop-b"), true)),
                ("interp-loop-b", with_interp(&p("interp-loop-a"), true)),
                ("interp-missing", with_interp(&p("nothing-here"), true)),
                ("interp-dir", with_interp(dir.as_bytes(), true)),
                ("interp-no-nul", with_interp(&p("control"), false)),
                ("interp-garbage", with_interp(&p("garbage"), true)),
                ("interp-script", with_interp(&p("shebang-control"), true)),
                ("interp-proc-self-exe", with_interp(b"/proc/self/exe", true)),
                ("interp-dev-zero", with_interp(b"/dev/zero", true)),
                (
                    "interp-filesz-huge",
                    patched(|b| {
                        u32_at(b, ph(2, 0), PT_INTERP);
                        u64_at(b, ph(2, 32), 1 << 40)
                    }),
                ),
                (
                    "interp-offset-past-eof",
                    patched(|b| {
                        u32_at(b, ph(2, 0), PT_INTERP);
                        u64_at(b, ph(2, 8), 1 << 40);
                        u64_at(b, ph(2, 32), 16)
                    }),
                ),
                ("garbage", garbage),
                (
                    "shebang-control",
                    [b"#!".as_slice(), &p("control"), b"\n"].concat(),
                ),
                ("shebang-empty", b"#!\n".to_vec()),
                ("shebang-spaces", b"#!   \t  \n".to_vec()),
                (
                    "shebang-garbage",
                    b"#!\xff\xfe\x00\x01 garbage \x7f\n".to_vec(),
                ),
                (
                    "shebang-long",
                    [b"#!".as_slice(), &p(&"a".repeat(1000))].concat(),
                ),
                (
                    "shebang-self",
                    [b"#!".as_slice(), &p("shebang-self"), b"\n"].concat(),
                ),
                (
                    "shebang-loop-a",
                    [b"#!".as_slice(), &p("shebang-loop-b"), b"\n"].concat(),
                ),
                (
                    "shebang-loop-b",
                    [b"#!".as_slice(), &p("shebang-loop-a"), b" arg\n"].concat(),
                ),
                (
                    "shebang-to-malformed",
                    [b"#!".as_slice(), &p("truncated-16"), b"\n"].concat(),
                ),
                ("shebang-dev-zero", b"#!/dev/zero\n".to_vec()),
                ("shebang-proc-exe", b"#!/proc/self/exe -x\n".to_vec()),
            ];
            cases.into_iter().map(|(n, b)| (n.to_string(), b)).collect()
        }
    }
}
