//! One sandbox, on its own thread: setup (memory, filesystem, program, VM), the
//! thread's confinement, the run, and the outcome.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use sandbox_core::{
    EnforcementLevel, EnforcementReport, Isolation, LandlockMode, LimitMechanism, LimitsReport,
    Outcome, Plan, RunError, SpawnError, Termination, VmReport,
};

use crate::confine::{confine_thread, Confinement};
use crate::guest::layout::{MAX_RAM, VVAR_GPA};
use crate::kick::{self, Control, Timer};
use crate::linux::task::{Process, FIRST_PID};
use crate::linux::{FdTable, FileKind, Kernel, Limits, OpenFile, Settings, Stop};
use crate::loader::{self, LoadError};
use crate::memory::Memory;
use crate::mm::AddressSpace;
use crate::stdio::{Input, Output};
use crate::vfs;
use crate::vm::{Vm, VmError};

/// Guest RAM when the plan sets no memory limit.
pub(crate) const DEFAULT_MEMORY: u64 = 1 << 30;
/// Smallest memory limit the micro-VM accepts (its tables plus a small program).
const MIN_MEMORY: u64 = 1 << 20;
/// `RLIMIT_NOFILE` when the plan sets none.
pub(crate) const DEFAULT_OPEN_FILES: u64 = 1024;

fn setup_err(step: &str, e: impl std::error::Error + Send + Sync + 'static) -> SpawnError {
    SpawnError::Setup {
        step: step.into(),
        source: std::io::Error::other(e),
    }
}

/// Everything ready to run.
pub(crate) struct Prepared {
    pub(crate) vm: Vm,
    pub(crate) kernel: Kernel,
    confinement: Confinement,
    memory: u64,
    mounts: usize,
    timers: Vec<Timer>,
    pub(crate) tick: Timer,
    euid: u32,
    mount_reports: Vec<sandbox_core::MountReport>,
    /// The host uid and gid the VMM reaches files as.
    identity: (u32, u32),
    /// Host descriptors the VMM may hold for the sandbox.
    host_fds: usize,
}

impl Prepared {
    /// The enforcement report of this sandbox (a run's, or a live sandbox's).
    pub(crate) fn enforcement(&self, plan: &Plan) -> EnforcementReport {
        let mut e = report(
            plan,
            &self.confinement,
            self.memory,
            self.mounts,
            (self.euid, self.identity.0),
            self.host_fds,
        );
        e.mounts = self.mount_reports.clone();
        e
    }
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared").finish_non_exhaustive()
    }
}

/// Builds the sandbox of `plan` on the calling thread and confines the thread. With
/// `live`, no program is loaded: the only process is the virtual init (see `live`).
pub(crate) fn prepare(
    plan: &Plan,
    ctl: Arc<Control>,
    out: Output,
    input: Input,
    start: Instant,
    live: bool,
    net: Option<Arc<crate::net::VmNet>>,
) -> Result<Prepared, SpawnError> {
    refuse_unenforceable(plan)?;
    let requested = plan.limits.memory.map(|b| b.0).unwrap_or(DEFAULT_MEMORY);
    if requested > MAX_RAM {
        return Err(SpawnError::Unsupported(format!(
            "the micro-VM supports at most {} GiB of guest memory; the plan asks for {requested} bytes",
            MAX_RAM >> 30
        )));
    }
    if requested < MIN_MEMORY {
        return Err(SpawnError::Unsupported(format!(
            "the memory limit of {requested} bytes is below the micro-VM's minimum of 1 MiB"
        )));
    }
    // RAM is mapped in 2 MiB steps; the frame budget keeps to the limit exactly.
    let memory = requested.next_multiple_of(2 << 20);
    let mut mem = Memory::with_limit(memory, requested)
        .map_err(|e| setup_err("reserving guest memory", e))?;
    let pt = crate::guest::build_supervisor(&mut mem)
        .map_err(|e| setup_err("building the guest supervisor", e))?;
    let budget = mem.budget();
    let mut mm = AddressSpace::new(mem, pt);
    mm.start_first_space()
        .map_err(|e| setup_err("making the first address space", e))?;

    let open_files = plan.limits.open_files.unwrap_or(DEFAULT_OPEN_FILES);
    let host_fds = host_fd_budget(open_files, plan.limits.pids);
    vfs::host::set_fd_budget(host_fds);
    let ca_bundle = net.as_ref().and_then(|n| n.ca_bundle());
    let vfs = vfs::build_with(plan, budget, ca_bundle).map_err(|e| SpawnError::Mount {
        source_path: e.mount.source.display().to_string(),
        target: e.mount.target.display().to_string(),
        source: e.error,
    })?;
    let root = vfs.root();
    let cwd = vfs
        .resolve(&root, plan.cwd.as_bytes(), true)
        .map_err(|e| SpawnError::Setup {
            step: format!("entering the working directory {}", plan.cwd),
            source: std::io::Error::from_raw_os_error(e.0),
        })?;
    if !cwd.node().is_dir() {
        return Err(SpawnError::Setup {
            step: format!("entering the working directory {}", plan.cwd),
            source: std::io::Error::from_raw_os_error(libc::ENOTDIR),
        });
    }
    let mut vm = Vm::create(&mm.mem, mm.cr3(), 0, 0).map_err(|e| match e {
        VmError::Open(err) => SpawnError::Unavailable {
            isolation: Isolation::MicroVm,
            reason: crate::probe::availability()
                .err()
                .unwrap_or_else(|| format!("cannot open /dev/kvm: {err}")),
        },
        other => setup_err("creating the VM", other),
    })?;
    // The vDSO's clocks count from the guest's TSC; without a time base, none is offered.
    let vdso = match vm.time_base() {
        Some(base) => mm
            .mem
            .write(VVAR_GPA, &crate::guest::vdso::vvar(&base))
            .is_some(),
        None => false,
    };
    let mut files = FdTable::new(open_files.min(1 << 20) as usize);
    let stdio = [
        OpenFile::new(FileKind::Stdin(0), None, libc::O_RDONLY),
        OpenFile::new(FileKind::Output(0, false), None, libc::O_WRONLY),
        OpenFile::new(FileKind::Output(0, true), None, libc::O_WRONLY),
    ];
    for (i, f) in stdio.into_iter().enumerate() {
        files.put(i, f, false);
    }
    let mounts = vfs.sources().len();
    let mount_reports = vfs.reports.clone();
    // Timers kick this thread out of KVM_RUN at the wall and CPU limits.
    let mut timers = Vec::new();
    if let (false, Some(d)) = (live, plan.limits.wall_time) {
        timers.push(
            Timer::new(libc::CLOCK_MONOTONIC, d.saturating_sub(start.elapsed()))
                .map_err(|e| setup_err("arming the wall-time timer", e))?,
        );
    }
    if let (false, Some(d)) = (live, plan.limits.cpu_time) {
        let left = d.saturating_sub(kick::thread_cpu_time());
        timers.push(
            Timer::new(libc::CLOCK_THREAD_CPUTIME_ID, left)
                .map_err(|e| setup_err("arming the CPU-time timer", e))?,
        );
    }
    // The scheduler's kick: the end of a time slice, a sleeper's deadline (armed only
    // for the next moment the scheduler must look).
    let tick = Timer::one_shot().map_err(|e| setup_err("creating the scheduler timer", e))?;
    // SAFETY: geteuid has no preconditions (asked before seccomp narrows this thread).
    let euid = unsafe { libc::geteuid() };
    // Asked now too: the confined thread cannot (geteuid is off its allowlist; asked
    // at the end of the run, it failed and the report showed 4294967295).
    let identity = crate::confine::host_identity();
    // Read /sys, /proc and the environment now: the confined thread cannot.
    crate::probe::kvm_kind();
    crate::linux::stats_enabled();
    let confinement =
        confine_thread(vfs.sources()).map_err(|e| setup_err("confining the VMM thread", e))?;
    if plan.landlock == LandlockMode::Required
        && confinement.landlock.level != EnforcementLevel::Full
    {
        return Err(SpawnError::Unsupported(format!(
            "the policy requires full Landlock, but this kernel enforces {:?} for the VMM (ABI {}, missing: {})",
            confinement.landlock.level,
            confinement.landlock.abi,
            confinement.landlock.missing.join(", ")
        )));
    }
    let (process, entry) = if live {
        vfs.set_self(crate::linux::task::INIT_PID);
        (crate::live::guest::init_process(cwd), (0, 0))
    } else {
        // The program is untrusted: its ELF (and its loader's) is read and parsed only now,
        // behind the thread's seccomp filter and Landlock.
        let prog = loader::find(&vfs, &cwd, &plan.program_candidates(), &plan.argv)
            .map_err(|e| load_error(plan, e))?;
        vfs.set_exe(FIRST_PID, &prog.exe());
        vfs.set_self(FIRST_PID);
        let env: Vec<Vec<u8>> = plan
            .env
            .iter()
            .map(|(k, v)| format!("{k}={v}").into_bytes())
            .collect();
        let entry = loader::load(&mut mm, &vfs, &prog, &env, plan.user, vdso)
            .map_err(|e| load_error(plan, e))?;
        vm.set_entry(entry.rip, entry.rsp)
            .map_err(|e| setup_err("setting the first registers", e))?;
        let process = Process::first(files, cwd, prog.exe(), prog.comm(), prog.argv);
        (process, (entry.rip, entry.rsp))
    };
    let kernel = Kernel::new(
        mm,
        vfs,
        process,
        entry,
        Settings {
            pids_limit: plan.limits.pids,
            limits: Limits {
                file_size: plan.limits.file_size.map(|b| b.0),
                // A live sandbox's wall and CPU limits are each exec's (see `live`).
                deadline: (!live)
                    .then(|| plan.limits.wall_time.and_then(|d| start.checked_add(d)))
                    .flatten(),
                cpu: (!live).then_some(plan.limits.cpu_time).flatten(),
                open_files,
                memory: requested,
                stack: 8 << 20,
            },
            out,
            input,
            ctl,
            start,
            hostname: plan.hostname.clone(),
            user: plan.user,
            vdso,
            // Egress, or an OCI engine's namespace (loopback with one to join): the
            // relay is the way out.
            network: match (plan.network, &net) {
                (sandbox_core::Network::None, _) => crate::linux::inet::NetMode::None,
                (_, Some(_)) => crate::linux::inet::NetMode::Egress,
                (sandbox_core::Network::Loopback, None) => crate::linux::inet::NetMode::Loopback,
                _ => crate::linux::inet::NetMode::None,
            },
            egress: net,
        },
    );
    Ok(Prepared {
        vm,
        kernel,
        confinement,
        memory,
        mounts,
        timers,
        tick,
        euid,
        mount_reports,
        identity,
        host_fds,
    })
}

/// Host namespaces to join (a pod's IPC or UTS namespace) mean nothing to a VM whose
/// kernel is the VMM's: refused, never ignored.
pub(crate) fn refuse_unenforceable(plan: &Plan) -> Result<(), SpawnError> {
    if let Some(c) = plan.limits.cpus {
        if c.millis() < 1000 {
            return Err(SpawnError::Unsupported(format!(
                "the micro-VM has one vCPU and cannot be held below one CPU (cpus = {c}): use the container backend, or cpus of 1 or more"
            )));
        }
    }
    // Its processes answer getgroups with none, and its file checks know only the
    // primary gid: supplementary groups would be a protection-relevant fact dropped.
    let extra = plan.extra_groups();
    if !extra.is_empty() {
        return Err(SpawnError::Unsupported(format!(
            "the micro-VM does not give supplementary groups ({extra:?}; an OCI bundle's process.user.additionalGids): its processes have only the gid {}: use the container backend",
            plan.user.1
        )));
    }
    for (what, ns) in [("IPC", &plan.ipcns), ("UTS", &plan.utsns)] {
        if let Some(p) = ns {
            return Err(SpawnError::Unsupported(format!(
                "the micro-VM cannot join the {what} namespace {} (a VM's SysV IPC and host name are its own: a pod's {what} namespace is shared by containers only): use the container backend",
                p.display()
            )));
        }
    }
    Ok(())
}

/// How many host descriptors the VMM may hold for a sandbox whose processes may each
/// have `open_files` descriptors, `pids` tasks at most: four full tables (or one per
/// task when fewer may exist) and 64 for the VMM's own handles (mounts, directories
/// walked), and never more than half of what the embedding process may open (its
/// `RLIMIT_NOFILE`), so a workload cannot exhaust the caller's table. Past it the
/// workload gets `ENFILE`, as from a full system file table.
pub(crate) fn host_fd_budget(open_files: u64, pids: Option<u64>) -> usize {
    let tables = pids.unwrap_or(4).clamp(1, 4);
    let wanted = open_files.saturating_mul(tables).saturating_add(64);
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills the struct passed; it has no other effect.
    let caller = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) } == 0 {
        rl.rlim_cur
    } else {
        1024
    };
    let cap = (caller / 2).max(64);
    usize::try_from(wanted.min(cap)).unwrap_or(usize::MAX)
}

fn load_error(plan: &Plan, e: LoadError) -> SpawnError {
    match e {
        LoadError::NotFound => SpawnError::ProgramNotFound(plan.program.clone()),
        LoadError::NotExecutable {
            path,
            reason,
            errno,
        } => SpawnError::NotExecutable {
            program: path,
            source: std::io::Error::new(std::io::Error::from_raw_os_error(errno).kind(), reason),
        },
        LoadError::NoMemory => SpawnError::Setup {
            step: "loading the program".into(),
            source: std::io::Error::other("the memory limit is too small for the program"),
        },
    }
}

/// Runs a prepared sandbox to its end: its outcome, and its personality (processes,
/// files, page cache), which the caller frees once the outcome is out.
pub(crate) fn run(plan: &Plan, p: Prepared, start: Instant) -> (Result<Outcome, RunError>, Kernel) {
    let Prepared {
        mut vm,
        mut kernel,
        confinement,
        memory,
        mounts,
        timers,
        tick,
        euid,
        mount_reports,
        identity,
        host_fds,
    } = p;
    let armed = kick::arm_thread(&mut vm.vcpu.get_kvm_run().immediate_exit);
    let watching = kick::watch(kick::Watch {
        ctl: Arc::clone(&kernel.ctl),
        deadline: kernel.limits.deadline,
        cpu: kernel.limits.cpu,
    });
    let stop = crate::vcpu::run(&mut vm, &mut kernel, Some(tick));
    drop(watching);
    drop(armed);
    kernel.ctl.unregister_thread();
    drop(timers);
    drop(vm);
    let wall_time = start.elapsed();
    let cpu_time = kick::thread_cpu_time();
    kernel.out.close();
    // A host syscall off the allowlist at any point of the run (its teardown included) ends it as a violation.
    let stop = match crate::trap::violation() {
        Some(nr) => Stop::Violation(nr),
        None => stop,
    };
    let (termination, exit_code, signal) = match stop {
        Stop::Exit(c) => (Termination::Exited, Some(c), None),
        Stop::Signal(s) => (Termination::Signaled, None, Some(s)),
        Stop::MemoryLimit => (Termination::MemoryLimit, None, Some(libc::SIGKILL)),
        Stop::OutputLimit => (Termination::OutputLimit, None, Some(libc::SIGKILL)),
        Stop::CpuLimit => (Termination::CpuLimit, None, Some(libc::SIGKILL)),
        Stop::PidsLimit => (Termination::PidsLimit, None, Some(libc::SIGKILL)),
        Stop::Timeout => (Termination::Timeout, None, Some(libc::SIGKILL)),
        Stop::Killed => (Termination::Killed, None, Some(libc::SIGKILL)),
        Stop::Violation(nr) => {
            let name = crate::linux::dispatch::syscall_name(nr as u64);
            tracing::error!(syscall = %name, "the VMM thread made a host syscall off its allowlist");
            // Said where every caller (CLI, C, Python) reads it, as the run's last words.
            let note = format!(
                "[hsb-vmm] policy violation: the VMM thread made host syscall {nr} ({name}), which its seccomp allowlist ({}) does not allow; the run was ended\n",
                crate::confine::PROFILE
            );
            kernel.out.stderr.extend_from_slice(note.as_bytes());
            (Termination::PolicyViolation, None, Some(libc::SIGSYS))
        }
        // Only a live sandbox takes snapshots: never the end of a run.
        Stop::Snapshot => {
            let e = RunError::Supervision(
                "running the micro-VM".into(),
                std::io::Error::other("a snapshot stop in a run"),
            );
            return (Err(e), kernel);
        }
        Stop::Internal(msg) => {
            tracing::error!(%msg, "micro-VM run failed");
            let e =
                RunError::Supervision("running the micro-VM".into(), std::io::Error::other(msg));
            return (Err(e), kernel);
        }
    };
    let mut enforcement = report(
        plan,
        &confinement,
        memory,
        mounts,
        (euid, identity.0),
        host_fds,
    );
    enforcement.mounts = mount_reports;
    let outcome = Outcome {
        isolation: Isolation::MicroVm,
        termination,
        exit_code,
        signal,
        stdout: std::mem::take(&mut kernel.out.stdout),
        stderr: std::mem::take(&mut kernel.out.stderr),
        wall_time,
        cpu_time,
        peak_memory_bytes: kernel.mm.mem.peak_bytes(),
        decision: plan.decision.clone(),
        enforcement,
        network: None,
        unimplemented_syscalls: std::mem::take(&mut kernel.unimplemented),
    };
    (Ok(outcome), kernel)
}

/// What the workload's sockets reach, in words.
fn network_detail(plan: &Plan) -> String {
    let inet = match plan.network {
        sandbox_core::Network::Loopback if plan.netns.is_some() => {
            "its own loopback and an interface at 100.96.0.2 whose way out is the network \
             namespace the OCI engine made: a TCP connect to any other IPv4 address is made \
             there by a host thread of the VMM process (the VMM thread makes no host socket), \
             and a guest listener on a wildcard address gets a listener at the same port \
             there (an engine's published port reaches it); UDP datagrams beyond the VM are \
             sent from a host UDP socket there and its answers come back; no IPv6 beyond ::1"
        }
        sandbox_core::Network::Loopback => {
            "its own loopback: AF_INET/AF_INET6 TCP and UDP sockets are objects of the \
             personality, reaching 127.0.0.0/8 and ::1 of this VM only (other destinations \
             ENETUNREACH); the host's loopback and its services are not reachable"
        }
        sandbox_core::Network::Egress => {
            "its own loopback and an interface at 100.96.0.2 whose only way out is the \
             egress broker, in-process: a TCP connect to any other IPv4 address is decided \
             by the broker (by the name its DNS gave the address for, the TLS SNI or HTTP \
             Host, or a rule naming the address) and relayed by a host thread the broker \
             hands the connection to (the VMM thread makes no host socket); UDP reaches only \
             the broker's DNS (100.96.0.1:53), other datagrams are dropped and counted; no \
             IPv6 beyond ::1; exposed ports reach the guest's listeners from 127.0.0.1 on the \
             host; the host's loopback is not reachable"
        }
        _ => {
            "no interface up (as an empty network namespace): AF_INET/AF_INET6 sockets can be \
             made and bound, every destination is unreachable"
        }
    };
    format!(
        "no host socket: every socket is the personality's own. {inet}. AF_UNIX sockets: \
         pathname sockets in the sandbox's in-memory filesystems (never in a host mount), an \
         abstract namespace per sandbox; NETLINK_ROUTE shows the sandbox's own interface (lo) \
         only; raw and packet sockets and other netlink protocols are refused"
    )
}

/// How the file view was built, in words.
fn filesystem_report(plan: &Plan, mounts: usize) -> String {
    let root = match &plan.root {
        Some(img) => format!(
            "root: image {} ({} read-only layers, whiteouts and opaque directories honoured) under an in-memory writable layer (copy-up, charged to guest memory, gone after the run); ",
            img.name,
            img.layers.len()
        ),
        None => String::new(),
    };
    format!(
        "VMM-served: {root}{mounts} host directories opened at setup (openat2 RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|RESOLVE_NO_MAGICLINKS, symlinks resolved in the sandbox), read-only ones refused with EROFS, no FIFO, socket, device node or set-id mode made in read-write ones; in-memory /tmp; /dev with null, zero, full, random, urandom; a generated /proc (no host facts); generated /etc files"
    )
}

/// The enforcement report of a micro-VM run.
pub(crate) fn report(
    plan: &Plan,
    c: &Confinement,
    memory: u64,
    mounts: usize,
    (euid, host_uid): (u32, u32),
    host_fds: usize,
) -> EnforcementReport {
    let l = &plan.limits;
    let mut details = BTreeMap::new();
    details.insert(
        "host_descriptors".into(),
        format!(
            "the VMM holds at most {host_fds} host descriptors for the sandbox (open files, directory handles, file mappings); past it the workload gets ENFILE"
        ),
    );
    details.insert(
        "memory".into(),
        format!(
            "guest RAM of {} MiB, frames allocated on demand up to {} bytes",
            memory >> 20,
            l.memory.map(|b| b.0).unwrap_or(memory)
        ),
    );
    if l.wall_time.is_some() {
        details.insert(
            "wall_time".into(),
            "VMM timer kicks the vCPU out of KVM_RUN".into(),
        );
    }
    if l.cpu_time.is_some() {
        details.insert("cpu_time".into(), "vCPU thread CPU-time timer".into());
    }
    if let Some(c) = l.cpus {
        details.insert(
            "cpus".into(),
            format!("one vCPU: the guest never uses more than 1 CPU (cpus = {c})"),
        );
    }
    if l.output.is_some() {
        details.insert("output".into(), "VMM counts stdout and stderr".into());
    }
    if l.file_size.is_some() {
        details.insert(
            "file_size".into(),
            "VMM personality (RLIMIT_FSIZE semantics, SIGXFSZ)".into(),
        );
    }
    if l.open_files.is_some() {
        details.insert(
            "open_files".into(),
            "VMM descriptor table (RLIMIT_NOFILE)".into(),
        );
    }
    if l.tmp_size.is_some() {
        details.insert(
            "tmp_size".into(),
            "in-memory /tmp, also charged to guest memory".into(),
        );
    }
    if l.pids.is_some() {
        details.insert(
            "pids".into(),
            format!(
                "VMM task table: processes and threads of the guest counted (zombies too); one more ends the run (pids_limit); all {} share the one vCPU",
                l.pids.unwrap_or(0)
            ),
        );
    }
    EnforcementReport {
        isolation: Isolation::MicroVm,
        namespaces: Vec::new(),
        rootless: euid != 0,
        host_uid: Some(host_uid),
        capabilities: format!(
            "workload: none (it runs in guest user mode and never issues a host syscall); VMM thread: reaches files as host uid {host_uid}{}, with no capability and no supplementary group, under seccomp and Landlock",
            if euid == 0 {
                " (through detached mounts made at setup, idmapped so that each source owner's files are that uid's, read-only ones read-only in the kernel)"
            } else {
                ""
            }
        ),
        no_new_privs: true,
        seccomp: c.seccomp.clone(),
        landlock: c.landlock.clone(),
        limits: LimitsReport { mechanism: LimitMechanism::Vm, details, note: None },
        network: plan.network,
        network_detail: network_detail(plan),
        filesystem: filesystem_report(plan, mounts),
        vm: Some(VmReport {
            kvm_kind: crate::probe::kvm_kind().into(),
            vcpus: 1,
            guest_memory_bytes: memory,
            timestamp_counter: Some(crate::vm::tsc_note(crate::probe::kvm_kind())),
        }),
        mounts: Vec::new(),
    }
}
