//! The VMM's software half without KVM, for the fuzz targets in `fuzz/` (cargo
//! feature `fuzzing`, never on in normal builds): guest RAM, the supervisor's tables
//! and an address space built as for a real run, the sandbox's file view with no host
//! mount (an in-memory /tmp, /dev, /proc and the generated /etc files), and the Linux
//! personality on top. Nothing here needs `/dev/kvm`: what the vCPU would do is played
//! by the caller through [`Guest`] (user-mode loads and stores, syscalls).
//!
//! The personality runs as in a real run: the ELF loader maps programs, syscalls go
//! through the same dispatcher, tasks are switched and signals delivered as the vCPU
//! loop does between two guest entries. A panic, an endless loop or an unbounded
//! allocation in here is a bug of the VMM that a guest could reach.
//!
//! ```
//! use backend_microvm::fuzzing::{Guest, Step};
//!
//! let mut g = Guest::new(16 << 20);
//! g.add_file(b"/tmp/script", b"#!/tmp/missing\n", 0o755).unwrap();
//! assert!(g.load(b"/tmp/script", &[b"script"]).is_err());
//! // getpid(2) answers the first process's id.
//! assert_eq!(g.syscall(39, [0; 6]), Step::Returned(2));
//! ```

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use kvm_bindings::kvm_xsave;

use crate::guest::layout::USER_CODE_TOP;
use crate::kick::Control;
use crate::linux::task::{ExitStatus, Process, Tid, FIRST_PID};
use crate::linux::{Cpu, FdTable, Kernel, Limits, Settings, Stop};
use crate::memory::Memory;
use crate::mm::{Access, AddressSpace, FaultOutcome};
use crate::stdio::{Input, Output};
use crate::vfs::Opened;

/// How long one guest may wait in total for its blocked tasks (a `nanosleep` of an
/// hour must not stall the fuzzer): past it, the run ends as a timeout.
const WAIT_BUDGET: Duration = Duration::from_millis(5);
/// The open-files limit of the guest.
const OPEN_FILES: u64 = 64;
/// The output limit of the guest (stdout and stderr).
const OUTPUT_LIMIT: u64 = 1 << 16;

/// What a syscall (and the return to user mode after it) came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The task that made the call goes on with this value in `rax`.
    Returned(i64),
    /// Another task runs now (the caller blocked, ended, or its time slice is over).
    Switched,
    /// The run is over (the first process ended, a limit was reached, every task
    /// waits for good...), in words; any further call answers this again.
    Ended(String),
}

/// What the loader made of a program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Loaded {
    /// The first instruction (the `PT_INTERP` loader's, for a dynamic program).
    pub rip: u64,
    /// The initial stack pointer (at `argc`).
    pub rsp: u64,
}

/// What a user-mode access to an address comes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Touch {
    /// The page is (now) mapped for the access.
    Mapped,
    /// SIGSEGV, with this `si_code`.
    Segv(i32),
    /// SIGBUS (past the end of a mapped file).
    Bus,
    /// The guest's memory is exhausted.
    Oom,
}

/// The vCPU state the personality asks for, kept in memory.
#[derive(Debug, Default)]
struct SoftCpu {
    fs: u64,
    gs: u64,
}

impl Cpu for SoftCpu {
    fn fs_base(&mut self) -> Result<u64, Stop> {
        Ok(self.fs)
    }
    fn set_fs_base(&mut self, v: u64) -> Result<(), Stop> {
        self.fs = v;
        Ok(())
    }
    fn gs_base(&mut self) -> Result<u64, Stop> {
        Ok(self.gs)
    }
    fn set_gs_base(&mut self, v: u64) -> Result<(), Stop> {
        self.gs = v;
        Ok(())
    }
    fn save_fpu(&mut self) -> Result<Box<kvm_xsave>, Stop> {
        Ok(Box::default())
    }
    fn restore_fpu(&mut self, _: &kvm_xsave) -> Result<(), Stop> {
        Ok(())
    }
    fn reset_fpu(&mut self) -> Result<(), Stop> {
        Ok(())
    }
}

/// One sandbox's guest side without a VM: memory, address spaces, files, processes.
#[derive(Debug)]
pub struct Guest {
    k: Kernel,
    cpu: SoftCpu,
    /// The task whose FS/GS bases `cpu` holds.
    loaded: Tid,
    /// Time spent waiting for blocked tasks so far.
    waited: Duration,
    ended: Option<String>,
}

/// The plan every guest is built from: the embedded default policy, no host mounts.
fn plan() -> &'static sandbox_core::Plan {
    static PLAN: OnceLock<sandbox_core::Plan> = OnceLock::new();
    PLAN.get_or_init(|| {
        let w = sandbox_core::Workload::new("/tmp/prog", Vec::<String>::new());
        let mut plan = sandbox_core::Policy::embedded_default()
            .resolve(&w, &sandbox_core::HostSupport::assume_all())
            .unwrap_or_else(|e| panic!("the embedded default policy resolves: {e}"));
        plan.mounts.clear();
        plan.root = None;
        plan.cwd = "/tmp".into();
        plan
    })
}

impl Guest {
    /// A guest of `memory` bytes of RAM (rounded up to 2 MiB, at least 4 MiB) with an
    /// empty address space, one process (pid 2) with stdin, stdout and stderr, a pids
    /// limit of 8, and `/tmp` as its working directory.
    pub fn new(memory: u64) -> Guest {
        let size = memory.clamp(4 << 20, 1 << 30).next_multiple_of(2 << 20);
        let mut mem = Memory::new(size).unwrap_or_else(|e| panic!("guest RAM: {e}"));
        let pt = crate::guest::build_supervisor(&mut mem)
            .unwrap_or_else(|e| panic!("supervisor tables: {e}"));
        let budget = mem.budget();
        let mut mm = AddressSpace::new(mem, pt);
        if mm.start_first_space().is_err() {
            panic!("the first address space fits any guest of 4 MiB");
        }
        let plan = plan();
        let vfs = crate::vfs::build(plan, budget).unwrap_or_else(|e| panic!("file view: {e:?}"));
        let root = vfs.root();
        let cwd = vfs.resolve(&root, b"/tmp", true).unwrap_or(root);
        let mut files = FdTable::new(OPEN_FILES as usize);
        for (i, kind) in [
            crate::linux::FileKind::Stdin(0),
            crate::linux::FileKind::Output(0, false),
            crate::linux::FileKind::Output(0, true),
        ]
        .into_iter()
        .enumerate()
        {
            let flags = if i == 0 {
                libc::O_RDONLY
            } else {
                libc::O_WRONLY
            };
            files.put(i, crate::linux::OpenFile::new(kind, None, flags), false);
        }
        vfs.set_self(FIRST_PID);
        let proc = Process::first(
            files,
            cwd,
            b"/tmp/prog".to_vec(),
            b"prog".to_vec(),
            vec![b"prog".to_vec()],
        );
        // Nobody reads the live stream: the output is only kept (up to the limit).
        let (tx, _) = tokio::sync::mpsc::unbounded_channel();
        let settings = Settings {
            pids_limit: Some(8),
            limits: Limits {
                file_size: Some(1 << 20),
                deadline: None,
                cpu: None,
                open_files: OPEN_FILES,
                memory: size,
                stack: 8 << 20,
            },
            out: Output::new(tx, Some(OUTPUT_LIMIT)),
            input: Input::Null,
            ctl: Arc::new(Control::default()),
            start: Instant::now(),
            hostname: "fuzz".into(),
            user: (1000, 1000),
            vdso: true,
            // The loopback: the fuzzed calls reach the inet sockets' whole state.
            network: crate::linux::inet::NetMode::Loopback,
            egress: None,
        };
        let mut k = Kernel::new(mm, vfs, proc, (0x40_0000, 0x7fff_fff0_0000), settings);
        k.cpu_mark = crate::kick::thread_cpu_time();
        Guest {
            k,
            cpu: SoftCpu::default(),
            loaded: FIRST_PID,
            waited: Duration::ZERO,
            ended: None,
        }
    }

    /// Gives the guest `data` as its stdin (instead of end-of-file at once).
    pub fn set_stdin(&mut self, data: &[u8]) {
        self.k.input = Input::Bytes(data.to_vec(), 0);
    }

    /// Gives the first process a terminal (`/dev/pts/0`, its controlling terminal) on
    /// descriptor `fd`, fed by the guest's stdin (see [`Guest::set_stdin`]); what it
    /// shows goes to stdout. Its line discipline and ioctls are then fuzzed with the
    /// rest.
    pub fn give_tty(&mut self, fd: u32) {
        let tty = crate::linux::tty::Tty::new(
            0,
            0,
            crate::abi::Winsize {
                ws_row: 24,
                ws_col: 80,
                ws_xpixel: 0,
                ws_ypixel: 0,
            },
            self.k.proc.sid,
        );
        self.k
            .vfs
            .add_dev("/dev/pts/0", crate::vfs::DevKind::Pts(0));
        let root = self.k.vfs.root();
        let loc = self.k.vfs.resolve(&root, b"/dev/pts/0", true).ok();
        self.k.ttys.push(std::rc::Rc::clone(&tty));
        let file = crate::linux::OpenFile::new(crate::linux::FileKind::Tty(tty), loc, libc::O_RDWR);
        self.k.proc.files.put(fd as usize, file, false);
    }

    /// Creates (or replaces) the file `path` of the guest's in-memory /tmp with
    /// `data` and permission bits `mode`. Fails with an errno (no room, not in /tmp).
    pub fn add_file(&mut self, path: &[u8], data: &[u8], mode: u32) -> Result<(), i32> {
        if !path.starts_with(b"/tmp/") {
            return Err(libc::EINVAL);
        }
        let root = self.k.vfs.root();
        let flags = libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC;
        let (_, opened) = self
            .k
            .vfs
            .open(&root, path, flags, mode & 0o7777)
            .map_err(|e| e.0)?;
        let Opened::Tmp(inode) = opened else {
            return Err(libc::EINVAL);
        };
        inode.chmod(mode & 0o7777);
        let mut at = 0;
        while at < data.len() {
            let n = inode.write_at(at as u64, &data[at..]).map_err(|e| e.0)?;
            if n == 0 {
                return Err(libc::ENOSPC);
            }
            at += n;
        }
        Ok(())
    }

    /// Loads the program at `path` (a guest path: `#!` lines and `PT_INTERP` loaders
    /// are followed in the guest's file view) into the current address space, which
    /// must be fresh (as at the start of a run), with `argv` and an empty environment.
    /// The first task is set to start at the entry point. Fails with the reason.
    pub fn load(&mut self, path: &[u8], argv: &[&[u8]]) -> Result<Loaded, String> {
        let cwd = self.k.proc.cwd.clone();
        let argv: Vec<Vec<u8>> = argv.iter().map(|a| a.to_vec()).collect();
        let prog =
            crate::loader::find_exec(&self.k.vfs, &cwd, path, argv).map_err(|e| e.to_string())?;
        let entry = crate::loader::load(
            &mut self.k.mm,
            &self.k.vfs,
            &prog,
            &[b"PATH=/bin".to_vec()],
            self.k.user,
            self.k.vdso,
        )
        .map_err(|e| e.to_string())?;
        self.k.task.ctx = Kernel::fresh_ctx(entry.rip, entry.rsp);
        self.k.proc.exe = prog.exe();
        self.k.proc.comm = prog.comm();
        self.k.proc.argv = prog.argv;
        Ok(Loaded {
            rip: entry.rip,
            rsp: entry.rsp,
        })
    }

    /// The current address space's mappings: start, end and `PROT_*` rights.
    pub fn mappings(&self) -> Vec<(u64, u64, u32)> {
        self.k
            .mm
            .vmas()
            .map(|(start, v)| (start, v.end, v.prot))
            .collect()
    }

    /// Bytes of guest memory in use (frames and /tmp).
    pub fn memory_used(&self) -> u64 {
        self.k.mm.mem.used_bytes()
    }

    /// Redirects the current process's syscall site of call `nr` that returns to
    /// `ret`, as the vCPU thread does when the fast-call thread offers it (see
    /// `redirect.rs`; the offer is a hint the workload can forge): true when the site
    /// was rewritten.
    pub fn redirect_site(&mut self, nr: u64, ret: u64) -> bool {
        crate::redirect::redirect(&mut self.k, nr, ret)
    }

    /// Puts back the redirected sites of `start .. end`, as before `mprotect` makes
    /// code writable.
    pub fn restore_sites(&mut self, start: u64, end: u64) {
        crate::redirect::restore(&mut self.k.mm, start, end)
    }

    /// How many redirected sites `start .. end` holds.
    pub fn redirected_sites(&mut self, start: u64, end: u64) -> usize {
        crate::redirect::sites(&mut self.k.mm, start, end).len()
    }

    /// What a user-mode access of the current task to `va` comes to (`write`: a store,
    /// `exec`: an instruction fetch), as the page-fault path answers it. A fault the
    /// task cannot take is delivered to it as a signal (its handler, or its process
    /// ends), as the vCPU loop does.
    pub fn touch(&mut self, va: u64, write: bool, exec: bool) -> Touch {
        if self.ended.is_some() {
            return Touch::Segv(0);
        }
        let access = match (write, exec) {
            (_, true) => Access::Exec,
            (true, false) => Access::Write,
            (false, false) => Access::Read,
        };
        let canonical = !((1 << 47)..0xffff_8000_0000_0000).contains(&va);
        let outcome = if canonical {
            self.k.mm.fault(va, access)
        } else {
            FaultOutcome::Segv(0x80) // #GP: SI_KERNEL
        };
        let (sig, code) = match outcome {
            FaultOutcome::Mapped => return Touch::Mapped,
            FaultOutcome::Oom => {
                self.end(Stop::MemoryLimit);
                return Touch::Oom;
            }
            FaultOutcome::Segv(code) => (libc::SIGSEGV, code),
            FaultOutcome::Bus => (libc::SIGBUS, 2),
        };
        if let Err(stop) = self.k.fault_signal(&mut self.cpu, sig, code, va) {
            self.end(stop);
        } else {
            self.settle();
        }
        match outcome {
            FaultOutcome::Bus => Touch::Bus,
            _ => Touch::Segv(code),
        }
    }

    /// A user-mode store of `data` at `va` by the current task (false: it would fault;
    /// nothing is delivered then, see [`Guest::touch`]).
    pub fn store(&mut self, va: u64, data: &[u8]) -> bool {
        self.ended.is_none() && self.k.mm.write_user(va, data).is_ok()
    }

    /// A user-mode load of `buf.len()` bytes at `va` by the current task.
    pub fn load_bytes(&mut self, va: u64, buf: &mut [u8]) -> bool {
        self.ended.is_none() && self.k.mm.read_user(va, buf).is_ok()
    }

    /// The current task's id.
    pub fn current(&self) -> u32 {
        self.k.task.tid
    }

    /// The current task's user-mode stack pointer (where a handler's frame went).
    pub fn stack_pointer(&self) -> u64 {
        self.k.task.ctx.regs.rsp
    }

    /// The current task makes syscall `nr` with `args` (`rdi, rsi, rdx, r10, r8, r9`);
    /// then, as the vCPU loop does before the guest runs again, the next task is chosen
    /// and its pending signals are delivered.
    pub fn syscall(&mut self, nr: u64, args: [u64; 6]) -> Step {
        if let Some(why) = &self.ended {
            return Step::Ended(why.clone());
        }
        let caller = self.k.task.tid;
        let regs = &mut self.k.task.ctx.regs;
        regs.rax = nr;
        [regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8, regs.r9] = args;
        // What `syscall` leaves: the return address in rcx, the flags in r11.
        regs.rcx = self.k.task.ctx.rip;
        regs.r11 = self.k.task.ctx.rflags;
        if let Err(stop) = self.k.syscall(&mut self.cpu) {
            return self.end(stop);
        }
        self.settle();
        if let Some(why) = &self.ended {
            return Step::Ended(why.clone());
        }
        if self.k.task.tid == caller {
            Step::Returned(self.k.task.ctx.regs.rax as i64)
        } else {
            Step::Switched
        }
    }

    /// The current task makes syscall `nr` through the fast-call slot: answered as the
    /// fast-call thread answers it, or, when that thread would send it back, made
    /// through [`Guest::syscall`] as the stub then makes it.
    pub fn fast_syscall(&mut self, nr: u64, args: [u64; 6]) -> Step {
        if let Some(why) = &self.ended {
            return Step::Ended(why.clone());
        }
        match crate::fastcall::answer_for_fuzzing(&mut self.k, nr, args) {
            Some(v) => Step::Returned(v as i64),
            None => self.syscall(nr, args),
        }
    }

    /// What the vCPU loop does before the guest runs again: the next task (a wait that
    /// outlasts the guest's small time budget ends the run), its signals, its way back
    /// to user mode.
    fn settle(&mut self) {
        for _ in 0..64 {
            // The scheduler runs after every call, as in the vCPU loop (timers fire,
            // blocked calls are tried again, a slice may end). It may wait for a
            // deadline only when nobody can run, and only as long as the budget left.
            let cur = self.k.task.tid;
            let t0 = Instant::now();
            let may_wait = !self.k.can_run(cur);
            if may_wait {
                self.k.limits.deadline = Some(t0 + WAIT_BUDGET.saturating_sub(self.waited));
            }
            let next = self.k.schedule().map(|_| ());
            self.k.limits.deadline = None;
            if may_wait {
                self.waited += t0.elapsed();
            }
            if let Err(stop) = next {
                self.end(stop);
                return;
            }
            if self.k.task.tid != self.loaded {
                self.switch();
            }
            if let Err(stop) = self.k.deliver_signals(&mut self.cpu) {
                self.end(stop);
                return;
            }
            if !self.k.task.runnable() {
                continue;
            }
            if self.k.task.ctx.rip >= USER_CODE_TOP {
                // What `return_to_user` does with a context that leaves user code.
                let pid = self.k.proc.pid;
                self.k.kill_process(pid, ExitStatus::Signal(libc::SIGSEGV));
                continue;
            }
            return;
        }
        self.end(Stop::Internal("no task could be made to run".into()));
    }

    /// Moves the FS/GS bases (the vCPU's per-task state) from the task that had the
    /// vCPU to the current one, as the vCPU loop's switch does.
    fn switch(&mut self) {
        let (fs, gs) = (self.cpu.fs, self.cpu.gs);
        if let Some(t) = self.k.task_mut(self.loaded) {
            t.fs_base = fs;
            t.gs_base = gs;
            t.fpu = Some(Box::default());
        }
        self.cpu.fs = self.k.task.fs_base;
        self.cpu.gs = self.k.task.gs_base;
        self.k.task.fpu = None;
        self.loaded = self.k.task.tid;
    }

    fn end(&mut self, stop: Stop) -> Step {
        let why = format!("{stop:?}");
        if let Stop::Internal(msg) = &stop {
            // The VMM gave up: a bug a guest could trigger, unless the host failed.
            panic!("the VMM failed: {msg}");
        }
        self.ended = Some(why.clone());
        Step::Ended(why)
    }
}

/// Reads `bytes` as a saved personality state (`linux::saved`, the state section of a
/// snapshot file) over a fresh 4 MiB guest whose filesystem is built from the fuzzing
/// plan: the decoder every snapshot file's state goes through. It may refuse (`Err`,
/// the reason); it may not panic, hang or allocate without bound.
pub fn load_state(bytes: &[u8]) -> Result<(), String> {
    let size = 4u64 << 20;
    let mem = Memory::new(size).map_err(|e| e.to_string())?;
    let budget = mem.budget();
    drop(mem);
    let vfs =
        crate::vfs::build(plan(), std::rc::Rc::clone(&budget)).map_err(|e| format!("{e:?}"))?;
    let ram = vm_memory::GuestMemoryMmap::<()>::from_ranges(&[(
        vm_memory::GuestAddress(0),
        size as usize,
    )])
    .map_err(|e| e.to_string())?;
    let (tx, _) = tokio::sync::mpsc::unbounded_channel();
    let settings = Settings {
        pids_limit: Some(8),
        limits: Limits {
            file_size: None,
            deadline: None,
            cpu: None,
            open_files: OPEN_FILES,
            memory: size,
            stack: 8 << 20,
        },
        out: Output::new(tx, Some(OUTPUT_LIMIT)),
        input: Input::Null,
        ctl: Arc::new(Control::default()),
        start: Instant::now(),
        hostname: "fuzz".into(),
        user: (1000, 1000),
        vdso: false,
        network: crate::linux::inet::NetMode::None,
        egress: None,
    };
    Kernel::load_state(bytes, (vfs, budget), (ram, Vec::new()), settings)
        .map(drop)
        .map_err(|e| format!("{e:?}"))
}
