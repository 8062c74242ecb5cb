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

fn go(w: Workload) -> Outcome {
    run(w)
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
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
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

    /// TCP and UDP to the host's loopback.
    fn tcp_and_udp_to_host_loopback(iso) {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        tcp.set_nonblocking(true).unwrap();
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        udp.set_nonblocking(true).unwrap();
        let (tp, up) = (tcp.local_addr().unwrap().port().to_string(), udp.local_addr().unwrap().port().to_string());
        assert_failed(&go(attack_in(iso, &["connect", &tp])), "TCP connect to the host");
        go(attack_in(iso, &["udp-send", &up]));
        assert!(tcp.accept().is_err(), "TCP reached the host");
        let mut buf = [0u8; 8];
        assert!(udp.recv_from(&mut buf).is_err(), "UDP reached the host");
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
        assert_failed(&go(attack_in(iso, &["kill-init"])), "signal the sandbox's init");
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
}
