//! The vCPU loop: runs the guest's tasks in turn and turns their exits into the
//! personality's work.
//!
//! Two exits matter: the doorbell (a syscall: the stub wrote to the MMIO page) and the
//! exception port (the CPL0 handler reports a fault or exception); a kick (a signal to
//! this thread: a kill, a limit, the end of a time slice) interrupts `KVM_RUN`.
//! Everything else is a bug or a host failure and ends the run.
//!
//! A task resumes in one of three ways: straight on (the vCPU is where it stopped),
//! through the exception handler's `iretq` (a fault was resolved), or from its saved
//! context through the syscall stub's `iretq` (after a syscall, a signal delivery, or
//! a switch from another task: then its FS/GS bases, FPU state and page-table root are
//! loaded first).

use std::time::{Duration, Instant};

use kvm_bindings::{kvm_regs, kvm_xsave};
use kvm_ioctls::VcpuExit;

use crate::fastcall::{Control, Gate};
use crate::guest::layout::*;
use crate::kick::Timer;
use crate::linux::task::Tid;
use crate::linux::{Cpu, Kernel, Stop, UserCtx, TIME_SLICE};
use crate::mm::{Access, FaultOutcome};
use crate::vm::user_segment;
use crate::vm::Vm;

const SIGILL: i32 = 4;
const SIGTRAP: i32 = 5;
const SIGBUS: i32 = 7;
const SIGFPE: i32 = 8;
const SIGSEGV: i32 = 11;

/// How soon a scheduler kick that found the vCPU in the supervisor comes again.
const KICK_RETRY: Duration = Duration::from_millis(1);

/// RFLAGS bits user mode may hold: CF, PF, AF, ZF, SF, TF, DF, OF, AC, ID.
const USER_FLAGS: u64 =
    0x1 | 0x4 | 0x10 | 0x40 | 0x80 | 0x100 | 0x400 | 0x800 | 0x4_0000 | 0x20_0000;

fn internal(what: &str, e: impl std::fmt::Display) -> Stop {
    Stop::Internal(format!("{what}: {e}"))
}

/// The running task's vCPU state beyond the registers, for the personality.
struct VcpuCpu<'a> {
    vm: &'a mut Vm,
    clean_fpu: &'a kvm_xsave,
}

impl VcpuCpu<'_> {
    fn sregs(&self) -> Result<kvm_bindings::kvm_sregs, Stop> {
        self.vm
            .sregs()
            .map_err(|e| internal("reading the vCPU's segments", e))
    }
    fn set_sregs(&mut self, s: &kvm_bindings::kvm_sregs) -> Result<(), Stop> {
        self.vm
            .set_sregs(s)
            .map_err(|e| internal("setting the vCPU's segments", e))
    }
}

impl Cpu for VcpuCpu<'_> {
    fn fs_base(&mut self) -> Result<u64, Stop> {
        Ok(self.sregs()?.fs.base)
    }
    fn set_fs_base(&mut self, v: u64) -> Result<(), Stop> {
        let mut s = self.sregs()?;
        s.fs.base = v;
        self.set_sregs(&s)
    }
    fn gs_base(&mut self) -> Result<u64, Stop> {
        Ok(self.sregs()?.gs.base)
    }
    fn set_gs_base(&mut self, v: u64) -> Result<(), Stop> {
        let mut s = self.sregs()?;
        s.gs.base = v;
        self.set_sregs(&s)
    }
    fn save_fpu(&mut self) -> Result<Box<kvm_xsave>, Stop> {
        Ok(Box::new(
            self.vm
                .vcpu
                .get_xsave()
                .map_err(|e| internal("KVM_GET_XSAVE", e))?,
        ))
    }
    fn restore_fpu(&mut self, state: &kvm_xsave) -> Result<(), Stop> {
        // SAFETY: `state` came from KVM_GET_XSAVE on this vCPU (see `save_fpu`, and the
        // clean state taken at creation): a complete, valid XSAVE area.
        unsafe { self.vm.vcpu.set_xsave(state) }.map_err(|e| internal("KVM_SET_XSAVE", e))
    }
    fn reset_fpu(&mut self) -> Result<(), Stop> {
        let clean = self.clean_fpu;
        self.restore_fpu(clean)
    }
}

/// How the loaded task goes back to user mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    /// The vCPU is where it stopped.
    Straight,
    /// Back into the code an exception interrupted, through the handler's `iretq`
    /// (`Runner::resume`: a page fault was resolved).
    Exception,
    /// From its saved context, through the stub.
    Context,
}

/// The loop's state.
struct Runner {
    /// The task whose FS/GS/FPU state the vCPU holds.
    loaded: Tid,
    /// The page-table root the vCPU holds.
    cr3: u64,
    entry: Entry,
    /// The vCPU stopped in the exception handler (CPL0).
    at_cpl0: bool,
    /// With `Entry::Exception`: the registers to resume with (every one as the
    /// exception left it, rsp at the frame the CPU pushed).
    resume: kvm_regs,
    /// With `Entry::Exception`: the exception interrupted the stub, not the task's
    /// own code (its saved context is not where it is): it is resumed there, never
    /// set aside.
    stub_trap: bool,
    /// The scheduler's one-shot kick, and when it is armed for.
    tick: Option<Timer>,
    armed: Option<Instant>,
    /// The FPU state of a fresh task.
    clean_fpu: Box<kvm_xsave>,
    /// Exit counts and times, for `HSB_MICROVM_TRACE=1`.
    stats: Stats,
    /// The kernel's kick switch (`Kernel::ctl`), told when the guest runs: held here
    /// because the fast-call thread may hold the kernel while `KVM_RUN` returns.
    ctl: std::sync::Arc<crate::kick::Control>,
}

/// What the loop did, written to stderr at the end with `HSB_MICROVM_TRACE=1`.
#[derive(Debug, Default)]
struct Stats {
    syscalls: u64,
    faults: u64,
    kicks: u64,
    /// Kicks that came while KVM was delivering an exception.
    kicks_in_delivery: u64,
    switches: u64,
    /// Fast calls answered with a follow-up exit.
    fast_follows: u64,
    in_guest: std::time::Duration,
    in_vmm: std::time::Duration,
    reloads: u64,
    flushes: u64,
    /// Page-table entries the guest rewrote for the flushes.
    flushed_entries: u64,
    last_exit: Option<std::time::Instant>,
}

/// Runs the guest until the run ends.
pub(crate) fn run(vm: &mut Vm, k: &mut Kernel, tick: Option<Timer>) -> Stop {
    run_with(vm, k, tick, false)
}

/// Runs a sandbox started from a snapshot (a fresh vCPU: every task's state is in
/// the kernel, the first to run is put on the vCPU from its saved context).
pub(crate) fn run_restored(vm: &mut Vm, k: &mut Kernel, tick: Option<Timer>) -> Stop {
    run_with(vm, k, tick, true)
}

fn run_with(vm: &mut Vm, k: &mut Kernel, tick: Option<Timer>, restored: bool) -> Stop {
    let clean_fpu = match vm.vcpu.get_xsave() {
        Ok(x) => Box::new(x),
        Err(e) => return internal("KVM_GET_XSAVE", e),
    };
    let cr3 = match vm.sregs() {
        Ok(s) => s.cr3,
        Err(e) => return internal("reading the vCPU's segments", e),
    };
    let mut r = Runner {
        // Restored: no task is on the vCPU yet (no task has id 0).
        loaded: if restored { 0 } else { k.task.tid },
        cr3,
        // An entry point outside user code (a malformed program) goes through the
        // checks of a return to user mode, never straight into KVM_RUN (on VT-x a
        // non-canonical RIP would fail the VM entry itself).
        entry: if k.task.ctx.rip < USER_CODE_TOP && !restored {
            Entry::Straight
        } else {
            Entry::Context
        },
        at_cpl0: false,
        resume: kvm_regs::default(),
        stub_trap: false,
        tick,
        armed: None,
        clean_fpu,
        stats: Stats::default(),
        ctl: k.ctl.clone(),
    };
    k.cpu_mark = crate::kick::thread_cpu_time();
    crate::fastcall::reset_slot(k);
    let ram = k.mm.mem.ram().clone();
    let gate = Gate::new(k);
    let fast = Control::default();
    std::thread::scope(|scope| {
        let _finish = fast.finish_on_drop();
        let mut started = !crate::fastcall::enabled();
        loop {
            if !started && r.stats.syscalls >= crate::fastcall::START_AFTER {
                // Enough syscalls to pay for a fast-call thread. It inherits this
                // thread's seccomp filter, Landlock domain and file identity. A thread
                // that cannot be made leaves every call on the exit path.
                started = true;
                let (gate, fast, ram) = (&gate, &fast, ram.clone());
                let made = std::thread::Builder::new()
                    .name("hsb-fastcall".into())
                    .stack_size(256 << 10)
                    .spawn_scoped(scope, move || crate::fastcall::serve(gate, fast, ram));
                if made.is_err() {
                    crate::fastcall::forgive_failed_spawn();
                }
            }
            if let Some(stop) = r.turn(vm, &gate, &fast) {
                break stop;
            }
        }
    })
}

impl Runner {
    /// One turn of the loop; `Some` when the run ends.
    fn turn(&mut self, vm: &mut Vm, gate: &Gate<'_>, fast: &Control) -> Option<Stop> {
        let stepped = match crate::trap::violation() {
            Some(nr) => Err(Stop::Violation(nr)),
            None => self.step(vm, gate, fast),
        };
        let stop = stepped.err()?;
        let mut g = gate.lock();
        let k: &mut Kernel = &mut g;
        if stop == Stop::Snapshot {
            self.snapshot(vm, k);
            return None;
        }
        // A live sandbox outlives a process that hit a limit: it is killed and
        // its exec reports the limit; the loop goes on with the others.
        if k.live.is_some() && k.live_recover(&stop) {
            self.entry = Entry::Context;
            return None;
        }
        k.account_cpu();
        if crate::linux::stats_enabled() {
            eprintln!(
                "[hsb-vmm] {:?} fast calls: {} answered, {} sent to the exit path, {} sites redirected",
                self.stats,
                fast.answered.load(std::sync::atomic::Ordering::Relaxed),
                fast.declined.load(std::sync::atomic::Ordering::Relaxed),
                fast.redirected.load(std::sync::atomic::Ordering::Relaxed)
            );
            if let Some(s) = &vm.kvm_stats {
                eprintln!("[hsb-vmm] KVM {:?}", s.read());
            }
        }
        Some(stop)
    }
}

impl Runner {
    /// One turn: ready the vCPU (kernel locked), run the guest (kernel free for the
    /// fast-call thread), handle the exit (kernel locked).
    fn step(&mut self, vm: &mut Vm, gate: &Gate<'_>, fast: &Control) -> Result<(), Stop> {
        {
            let mut g = gate.lock();
            let switches = self.stats.switches;
            if !self.prepare(vm, &mut g)? {
                return Ok(());
            }
            if self.stats.switches != switches {
                // Another task goes on the vCPU (a new exec's first entry among them):
                // it makes its first calls soon, likely after the thread's window
                // closed (it polls only after syscall exits), and each would then be
                // an exit.
                fast.nudge();
            }
            fast.lend();
        }
        self.ctl.entering();
        let exit = self.run_guest(vm);
        self.ctl.left();
        let mut g = gate.lock();
        fast.reclaim();
        self.handle(vm, &mut g, exit?, fast)
    }

    /// Everything before the guest runs: live requests, scheduling, signal delivery,
    /// the way back to user mode. False when no task is to be entered this turn.
    fn prepare(&mut self, vm: &mut Vm, k: &mut Kernel) -> Result<bool, Stop> {
        if k.live.is_some() {
            // Every task's state is in the kernel unless the vCPU stopped mid-way
            // (in the supervisor, or delivering an exception).
            k.boundary = self.entry != Entry::Straight;
            k.serve_live()?;
        }
        let now = Instant::now();
        // A snapshot waits for a boundary: the task is set aside at the next chance.
        let kick = if k.snapshot_pending() {
            Some(now)
        } else {
            k.next_kick()
        };
        // A task resumed after a fault it took goes back through the scheduler when
        // something is due (a slice ended, a sleeper's deadline passed) or a signal
        // waits: its context is saved, so it can be set aside there.
        if self.entry == Entry::Exception
            && !self.stub_trap
            && (k.has_signal() || kick.is_some_and(|t| t <= now))
        {
            self.entry = Entry::Context;
        }
        // Who runs: the loaded task straight on, or whoever the scheduler picks.
        // A wake-up or a yield (`preempt`) goes through the scheduler.
        let straight = self.entry != Entry::Context
            && !k.preempt
            && k.task.tid == self.loaded
            && k.can_run(self.loaded);
        let next = if straight {
            k.check_limits()?;
            self.loaded
        } else {
            k.schedule()?
        };
        if next != self.loaded || !straight {
            self.entry = Entry::Context;
        }
        if next != self.loaded {
            self.stats.switches += 1;
            self.switch(vm, k, next)?;
        }
        if self.entry == Entry::Context {
            let mut cpu = VcpuCpu {
                vm,
                clean_fpu: &self.clean_fpu,
            };
            k.deliver_signals(&mut cpu)?;
            if !k.task.runnable() {
                return Ok(false); // its process was killed: someone else runs
            }
        }
        self.arm_tick(if straight { kick } else { k.next_kick() });
        if !self.enter(vm, k)? {
            return Ok(false); // its process was killed: someone else runs
        }
        Ok(true)
    }

    /// Runs the guest to its next exit.
    fn run_guest(&mut self, vm: &mut Vm) -> Result<Exit, Stop> {
        let timed = crate::linux::stats_enabled();
        let t0 = timed.then(std::time::Instant::now);
        let ran = vm.vcpu.run();
        if let Some(t0) = t0 {
            let t1 = std::time::Instant::now();
            if let Some(l) = self.stats.last_exit {
                self.stats.in_vmm += t0 - l;
            }
            self.stats.in_guest += t1 - t0;
            self.stats.last_exit = Some(t1);
        }
        let exit = match ran {
            Ok(VcpuExit::MmioWrite(addr, _)) if addr & !(PAGE_SIZE - 1) == vm.doorbell_gpa => {
                if addr - vm.doorbell_gpa == crate::fastcall::FOLLOW_OFFSET {
                    Ok(Exit::FastFollow)
                } else {
                    Ok(Exit::Syscall)
                }
            }
            Ok(VcpuExit::IoOut(port, _))
                if (EXC_PORT_BASE..EXC_PORT_BASE + crate::guest::IDT_ENTRIES as u16)
                    .contains(&port) =>
            {
                Ok(Exit::Exception((port - EXC_PORT_BASE) as u8))
            }
            Ok(VcpuExit::Shutdown) => Err(Stop::Internal("the guest triple-faulted".into())),
            Ok(other) => Err(Stop::Internal(format!("unexpected VM exit: {other:?}"))),
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {
                Ok(Exit::Interrupted)
            }
            Err(e) => Err(internal("KVM_RUN", e)),
        }?;
        Ok(exit)
    }

    /// Handles the guest's exit.
    fn handle(
        &mut self,
        vm: &mut Vm,
        k: &mut Kernel,
        exit: Exit,
        fast: &Control,
    ) -> Result<(), Stop> {
        match exit {
            Exit::Syscall => {
                self.stats.syscalls += 1;
                self.take_syscall_ctx(vm, k)?;
                let mut cpu = VcpuCpu {
                    vm,
                    clean_fpu: &self.clean_fpu,
                };
                k.syscall(&mut cpu)?;
                self.entry = Entry::Context;
                // The guest makes syscalls: the fast-call thread (if any) polls again.
                fast.nudge();
            }
            Exit::FastFollow => {
                // A fast call was answered (rax), and a signal, a switch or a stop came
                // with it: the task goes on through the scheduler, as after a syscall.
                self.stats.fast_follows += 1;
                if let Some(stop) = fast.take_pending() {
                    return Err(stop);
                }
                self.take_syscall_ctx(vm, k)?;
                let space = k.mm.space();
                for (s, nr, site) in fast.take_redirects() {
                    if s == space && crate::redirect::redirect(k, nr, site) {
                        fast.redirected
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
                k.fire_cpu_timers();
                self.entry = Entry::Context;
            }
            Exit::Exception(vector) => {
                self.stats.faults += 1;
                self.on_exception(vm, k, vector)?
            }
            Exit::Interrupted => {
                self.stats.kicks += 1;
                vm.vcpu.set_kvm_immediate_exit(0);
                k.check_all_limits()?;
                k.fire_cpu_timers();
                let regs = vm.regs().map_err(|e| internal("reading registers", e))?;
                // KVM may have been delivering an exception (a fault of the user code,
                // about to enter the handler) when the kick came: it is delivered at the
                // next entry, so the task must go on straight, not be set aside.
                let events = vm
                    .vcpu
                    .get_vcpu_events()
                    .map_err(|e| internal("KVM_GET_VCPU_EVENTS", e))?;
                let delivering = events.exception.injected != 0 || events.exception.pending != 0;
                if delivering {
                    self.stats.kicks_in_delivery += 1;
                }
                if regs.rip < USER_CODE_TOP && !delivering {
                    // In user mode: the task can be set aside here.
                    k.task.ctx = UserCtx {
                        rip: regs.rip,
                        rflags: regs.rflags,
                        regs,
                    };
                    self.at_cpl0 = false;
                    self.entry = Entry::Context;
                } else {
                    self.entry = Entry::Straight;
                }
            }
        }
        Ok(())
    }

    /// The task stopped in the stub after a `syscall` (a doorbell): its context is the
    /// registers, with the return address and flags `syscall` left in rcx and r11.
    fn take_syscall_ctx(&mut self, vm: &mut Vm, k: &mut Kernel) -> Result<(), Stop> {
        let regs = vm.regs().map_err(|e| internal("reading registers", e))?;
        k.task.ctx = UserCtx {
            rip: regs.rcx,
            rflags: regs.r11,
            regs,
        };
        self.at_cpl0 = false;
        Ok(())
    }

    /// Takes the snapshots asked for (at a boundary: see `step`). The loaded task's
    /// FS/GS bases and FPU state are on the vCPU, not in the kernel: they go into the
    /// copy.
    fn snapshot(&mut self, vm: &mut Vm, k: &mut Kernel) {
        let reqs = match k.live.as_mut() {
            Some(l) => std::mem::take(&mut l.snaps),
            None => return,
        };
        let sregs = vm.sregs().map_err(|e| e.to_string());
        let fpu = vm.vcpu.get_xsave().map_err(|e| e.to_string());
        let cpu = match (sregs, fpu) {
            (Ok(sregs), Ok(fpu)) => Ok((sregs.fs.base, sregs.gs.base, fpu)),
            (Err(e), _) | (_, Err(e)) => Err(format!("reading the vCPU's state: {e}")),
        };
        for req in reqs {
            crate::live::snapshot::take(k, self.loaded, &cpu, req);
        }
    }

    /// Puts task `next` (already current in the kernel) on the vCPU.
    fn switch(&mut self, vm: &mut Vm, k: &mut Kernel, next: Tid) -> Result<(), Stop> {
        // A fast call left posted belongs to the task leaving: never answered as the
        // next one's.
        crate::fastcall::clear_slot(k);
        let mut sregs = vm
            .sregs()
            .map_err(|e| internal("reading the vCPU's segments", e))?;
        let old = self.loaded;
        if k.task_ref(old).is_some() {
            let fpu = vm
                .vcpu
                .get_xsave()
                .map_err(|e| internal("KVM_GET_XSAVE", e))?;
            if let Some(t) = k.task_mut(old) {
                t.fs_base = sregs.fs.base;
                t.gs_base = sregs.gs.base;
                t.fpu = Some(Box::new(fpu));
            }
        }
        k.account_cpu_switch(old);
        sregs.fs.base = k.task.fs_base;
        sregs.gs.base = k.task.gs_base;
        sregs.cr3 = k.mm.cr3();
        crate::vm::set_user_segments(&mut sregs);
        sregs.fs.selector = USER_DS;
        sregs.gs.selector = USER_DS;
        vm.set_sregs(&sregs)
            .map_err(|e| internal("setting the vCPU's segments", e))?;
        let fpu = k.task.fpu.take();
        let state: &kvm_xsave = fpu.as_deref().unwrap_or(&self.clean_fpu);
        // SAFETY: the state came from KVM_GET_XSAVE on this vCPU (saved at a switch or
        // copied by clone), or is the clean state taken at creation.
        unsafe { vm.vcpu.set_xsave(state) }.map_err(|e| internal("KVM_SET_XSAVE", e))?;
        self.loaded = next;
        self.cr3 = sregs.cr3;
        self.at_cpl0 = false;
        Ok(())
    }

    /// Arms the scheduler's kick for `at` (see `Kernel::next_kick`). A moment already
    /// past (the vCPU goes on straight, in the supervisor, where no task can be set
    /// aside) is retried shortly: the kick then finds the task back in user mode.
    fn arm_tick(&mut self, at: Option<Instant>) {
        let Some(t) = &self.tick else {
            return;
        };
        let now = Instant::now();
        let at = at.map(|a| if a <= now { now + KICK_RETRY } else { a });
        if at == self.armed {
            return;
        }
        // Re-arming costs a host syscall: a kick armed a little earlier than wanted
        // (at most a tenth of a slice) stays as it is, it only makes the scheduler look.
        if let (Some(old), Some(new)) = (self.armed, at) {
            if old > now && old <= new && new - old < TIME_SLICE / 10 {
                return;
            }
        }
        t.after(at.map(|a| a - now));
        self.armed = at;
    }

    /// Readies the vCPU to enter the loaded task: page-table root, stale translations,
    /// and the way back to user mode. False when the task cannot go back to user mode
    /// (its context leaves user code): its process was killed, and the vCPU must not be
    /// entered for it (it would resume wherever the last exit left it, the stub's
    /// `iretq` with a frame the workload chose, and run a dead process's code).
    fn enter(&mut self, vm: &mut Vm, k: &mut Kernel) -> Result<bool, Stop> {
        vm.cover(k.mm.mem.high_water())
            .map_err(|e| internal("memory slot", e))?;
        if self.entry == Entry::Context && k.task.ctx.rip >= USER_CODE_TOP {
            // A return address the workload forged (entering the stub itself, a signal
            // handler or a sigreturn frame outside user code): SIGSEGV, as on Linux.
            let pid = k.proc.pid;
            k.kill_process(pid, crate::linux::task::ExitStatus::Signal(SIGSEGV));
            return Ok(false);
        }
        let cr3 = k.mm.cr3();
        let fix_segments = self.entry == Entry::Context && self.at_cpl0;
        if cr3 != self.cr3 || fix_segments {
            let mut sregs = vm
                .sregs()
                .map_err(|e| internal("reading the vCPU's segments", e))?;
            sregs.cr3 = cr3;
            if fix_segments {
                sregs.cs = user_segment(USER_CS, true);
                sregs.ss = user_segment(USER_DS, false);
            }
            vm.set_sregs(&sregs)
                .map_err(|e| internal("setting the vCPU's segments", e))?;
            self.cr3 = cr3;
            self.at_cpl0 = false;
        }
        let flush = k.mm.take_flush();
        if !flush.is_empty() {
            self.stats.flushes += 1;
            self.stats.flushed_entries += flush.len() as u64;
        }
        let entries = flush.len();
        let mut runs = work_runs(flush);
        if k.mm.take_reload() || entries > WORK_ENTRIES || runs.len() > WORK_RUNS {
            self.stats.reloads += 1;
            vm.reload_slot()
                .map_err(|e| internal("memory slot reload", e))?;
            runs.clear();
        }
        match self.entry {
            Entry::Context => return_to_user(vm, k, &runs)?,
            Entry::Exception => {
                let mut regs = self.resume;
                regs.rip = if runs.is_empty() {
                    RESUME_VA
                } else {
                    arm_flush(&k.mm.mem, &mut regs, &runs)?;
                    RESUME_FLUSH_VA
                };
                vm.set_regs(&regs)
                    .map_err(|e| internal("setting registers", e))?;
            }
            Entry::Straight => {
                if !runs.is_empty() {
                    vm.reload_slot()
                        .map_err(|e| internal("memory slot reload", e))?;
                }
            }
        }
        Ok(true)
    }

    fn on_exception(&mut self, vm: &mut Vm, k: &mut Kernel, vector: u8) -> Result<(), Stop> {
        let regs = vm.regs().map_err(|e| internal("reading registers", e))?;
        let f = read_frame(k, vector, regs.rsp)?;
        let cr2 = if vector == 14 {
            vm.sregs()
                .map_err(|e| internal("reading the vCPU's CR2", e))?
                .cr2
        } else {
            0
        };
        let in_stub = (STUB_VA..STUB_VA + PAGE_SIZE).contains(&f.rip);
        if f.cs & 3 != 3 && !in_stub {
            return Err(Stop::Internal(format!(
                "guest supervisor fault: vector {vector} error {:#x} at {:#x} (cr2 {cr2:#x})",
                f.error, f.rip
            )));
        }
        self.at_cpl0 = true;
        self.entry = Entry::Context;
        self.stub_trap = false;
        // Resuming goes through the handler's `iretq`, the CPU's frame on the stack.
        self.resume = regs;
        self.resume.rsp = f.at;
        if in_stub && vector == 1 && f.rflags & TRAP_FLAG != 0 {
            // A single-step trap in the stub page: a redirected site's trampoline
            // entered it with the workload's TF set (a `syscall` would have cleared
            // it). Linux takes no trap inside a syscall either: the stub goes on with
            // TF clear, and the flags the call returns with set it again.
            k.mm.mem
                .write_u64(f.at - SUP_VA + 16, f.rflags & !TRAP_FLAG)
                .ok_or_else(|| Stop::Internal("exception frame outside RAM".into()))?;
            self.entry = Entry::Exception;
            self.stub_trap = true;
            return Ok(());
        }
        if in_stub {
            // Returning to user mode failed (a frame the workload made unusable).
            let pid = k.proc.pid;
            k.kill_process(pid, crate::linux::task::ExitStatus::Signal(SIGSEGV));
            return Ok(());
        }
        let mut user = regs;
        user.rsp = f.rsp;
        k.task.ctx = UserCtx {
            regs: user,
            rip: f.rip,
            rflags: f.rflags,
        };
        let signal = match vector {
            14 => {
                let access = if f.error & 0x10 != 0 {
                    Access::Exec
                } else if f.error & 0x2 != 0 {
                    Access::Write
                } else {
                    Access::Read
                };
                let what = crate::linux::trace_enabled().then(|| k.mm.describe(cr2));
                let t = what.is_some().then(std::time::Instant::now);
                let outcome = k.mm.fault(cr2, access);
                if let (Some(what), Some(t)) = (what, t) {
                    eprintln!(
                        "[hsb-vmm {}:{}] fault {cr2:#x} {access:?} {what} at {:#x} = {outcome:?} in {:?}",
                        k.proc.pid,
                        k.task.tid,
                        f.rip,
                        t.elapsed()
                    );
                }
                match outcome {
                    FaultOutcome::Mapped => None,
                    FaultOutcome::Oom => return Err(Stop::MemoryLimit),
                    FaultOutcome::Segv(code) => Some((SIGSEGV, code, cr2)),
                    FaultOutcome::Bus => Some((SIGBUS, 2, cr2)), // BUS_ADRERR
                }
            }
            0 => Some((SIGFPE, 1, f.rip)),       // FPE_INTDIV
            16 | 19 => Some((SIGFPE, 0, f.rip)), // x87 / SIMD floating point
            1 | 3 => Some((SIGTRAP, 1, f.rip)),  // TRAP_BRKPT
            6 => Some((SIGILL, 2, f.rip)),       // ILL_ILLOPN
            7 => Some((SIGILL, 0, f.rip)),
            11 | 12 | 17 => Some((SIGBUS, 0, 0)),
            13 | 4 | 5 | 10 => Some((SIGSEGV, 0x80, 0)), // SI_KERNEL
            v => {
                return Err(Stop::Internal(format!(
                    "guest exception {v} at {:#x}",
                    f.rip
                )))
            }
        };
        match signal {
            None => self.entry = Entry::Exception,
            Some((sig, code, addr)) => {
                let mut cpu = VcpuCpu {
                    vm,
                    clean_fpu: &self.clean_fpu,
                };
                k.fault_signal(&mut cpu, sig, code, addr)?;
            }
        }
        Ok(())
    }
}

enum Exit {
    Syscall,
    FastFollow,
    /// An exception's entry in the handler (its vector).
    Exception(u8),
    Interrupted,
}

/// Resumes user mode with the current task's saved context (its `rip` is user code:
/// `enter` checked), through the stub's `iretq`, or, when page-table entries changed,
/// through the flush path (the guest rewrites them at CPL0 first).
fn return_to_user(vm: &mut Vm, k: &mut Kernel, flush: &[[u64; 2]]) -> Result<(), Stop> {
    let ctx = &k.task.ctx;
    let rflags = (ctx.rflags & USER_FLAGS) | 0x202;
    let frame = iret_frame(ctx.rip, rflags, ctx.regs.rsp);
    let mut regs: kvm_regs = ctx.regs;
    regs.rflags = 0x2;
    let mem = &k.mm.mem;
    let put = |gpa: u64, v: u64| put_word(mem, gpa, v);
    if !flush.is_empty() {
        for (i, v) in frame.iter().enumerate() {
            put(DATA_GPA + DATA_FRAME + 8 * i as u64, *v)?;
        }
        arm_flush(mem, &mut regs, flush)?;
        regs.rip = FLUSH_ENTRY_VA;
    } else {
        for (i, v) in frame.iter().enumerate() {
            put(FRAME_GPA + (USER_FRAME_VA - FRAME_VA) + 8 * i as u64, *v)?;
        }
        regs.rsp = USER_FRAME_VA;
        regs.rip = STUB_VA + 6;
    }
    vm.set_regs(&regs)
        .map_err(|e| internal("setting registers", e))
}

/// Arms the guest's flush of `runs` (not empty) for a vCPU about to enter it with
/// `regs`: the first run in registers, the others in the work list, the registers
/// that takes saved in the data page (the flush restores them), the direction flag
/// clear (supervisor.S `resume_flush`).
fn arm_flush(
    mem: &crate::memory::Memory,
    regs: &mut kvm_regs,
    runs: &[[u64; 2]],
) -> Result<(), Stop> {
    let put = |gpa: u64, v: u64| put_word(mem, gpa, v);
    let (first, rest) = runs
        .split_first()
        .ok_or_else(|| Stop::Internal("an empty flush armed".into()))?;
    for (i, run) in rest.iter().enumerate() {
        put(WORK_GPA + 16 * i as u64, run[0])?;
        put(WORK_GPA + 16 * i as u64 + 8, run[1])?;
    }
    for (i, v) in [regs.rax, regs.rcx, regs.rdx, regs.rsi, regs.rdi]
        .into_iter()
        .enumerate()
    {
        put(DATA_GPA + DATA_SAVED + 8 * i as u64, v)?;
    }
    put(DATA_GPA + DATA_COUNT, runs.len() as u64)?;
    regs.rsi = first[0];
    regs.rcx = first[1];
    regs.rdx = SUP_VA + WORK_GPA;
    regs.rax = rest.len() as u64;
    regs.rflags &= !DIRECTION_FLAG;
    Ok(())
}

/// Writes a word of the supervisor's data (the return frame, the work list).
fn put_word(mem: &crate::memory::Memory, gpa: u64, v: u64) -> Result<(), Stop> {
    mem.write_u64(gpa, v)
        .ok_or_else(|| Stop::Internal("supervisor data outside RAM".into()))
}

/// RFLAGS.DF: string instructions go down.
const DIRECTION_FLAG: u64 = 1 << 10;

/// The page-table entries of a flush (guest virtual addresses of their slots), as the
/// guest's work list takes them: runs of adjacent entries, each its first entry and
/// its length. Order does not matter (every entry is rewritten before the guest goes
/// on), nor does an entry listed twice.
fn work_runs(mut entries: Vec<u64>) -> Vec<[u64; 2]> {
    entries.sort_unstable();
    entries.dedup();
    let mut runs: Vec<[u64; 2]> = Vec::new();
    for va in entries {
        match runs.last_mut() {
            Some(run) if run[0] + 8 * run[1] == va => run[1] += 1,
            _ => runs.push([va, 1]),
        }
    }
    runs
}

/// The frame the stub's `iretq` takes to enter user mode at `rip` with `rflags` and
/// `rsp`: rip, cs, rflags, rsp, ss.
pub(crate) fn iret_frame(rip: u64, rflags: u64, rsp: u64) -> [u64; 5] {
    [rip, u64::from(USER_CS), rflags, rsp, u64::from(USER_DS)]
}

/// The frame the CPU pushed on the exception stack (IST1), and where (`at`, the
/// virtual address of its `rip`).
struct ExcFrame {
    at: u64,
    error: u64,
    rip: u64,
    cs: u64,
    rflags: u64,
    rsp: u64,
}

/// RFLAGS.TF: a debug trap after each instruction.
const TRAP_FLAG: u64 = 1 << 8;

/// Reads the frame of an exception with `vector` whose handler's entry stopped with
/// `rsp`. The entry is a single `out`, so `rsp` is where the CPU left it: the top of
/// the exception stack less the frame; anything else is the VMM's error.
fn read_frame(k: &Kernel, vector: u8, rsp: u64) -> Result<ExcFrame, Stop> {
    let words = if has_error_code(vector) { 6 } else { 5 };
    if rsp != IST_TOP_VA - 8 * words {
        return Err(Stop::Internal(format!(
            "exception {vector}: stack at {rsp:#x}, not the CPU's frame"
        )));
    }
    let m = &k.mm.mem;
    let base = IST_TOP_GPA - 8 * words;
    let q = |i: u64| {
        m.read_u64(base + 8 * i)
            .ok_or_else(|| Stop::Internal("exception frame outside RAM".into()))
    };
    let (error, at) = if words == 6 {
        (q(0)?, rsp + 8)
    } else {
        (0, rsp)
    };
    let first = words - 5;
    Ok(ExcFrame {
        at,
        error,
        rip: q(first)?,
        cs: q(first + 1)?,
        rflags: q(first + 2)?,
        rsp: q(first + 3)?,
    })
}

#[cfg(test)]
mod tests {
    use super::work_runs;

    #[test]
    fn a_flush_goes_to_the_guest_as_runs_of_adjacent_entries() {
        assert!(work_runs(Vec::new()).is_empty());
        // Out of order, one listed twice, two runs and a lone entry.
        let entries = vec![0x1010, 0x1000, 0x1008, 0x2000, 0x1008, 0x3000, 0x3008];
        assert_eq!(
            work_runs(entries),
            vec![[0x1000, 3], [0x2000, 1], [0x3000, 2]]
        );
        // A run goes on across a page-table page's end when the next page follows.
        assert_eq!(work_runs(vec![0x1ff8, 0x2000]), vec![[0x1ff8, 2]]);
    }
}
