//! Signals: dispositions (per process), masks and thread-directed pending signals (per
//! task), process-directed pending signals, delivery to handlers (a Linux `rt_sigframe`
//! on the user stack) and `rt_sigreturn`. The other signal syscalls are `sigcalls.rs`.
//!
//! A signal for a task blocked in an interruptible syscall wakes it: the syscall ends
//! with `EINTR`, or is made again after the handler (`SA_RESTART`, for the calls Linux
//! restarts). Default actions: terminate (the whole process), ignore, stop (the whole
//! process, until `SIGCONT`; its parent sees it through `SIGCHLD` and `WUNTRACED`).

use super::task::{Task, TaskState, Tid, Wait, INIT_PID};
use super::{Cpu, Kernel, Stop, SysErr, SysResult, UserCtx};
use crate::abi::{self, SigContext, StackT, UContext};
use crate::errno;
use crate::guest::layout::{USER_CODE_TOP, USER_TOP};
use crate::mm::UserPtr;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

pub(crate) const SIG_DFL: u64 = 0;
pub(crate) const SIG_IGN: u64 = 1;
const SA_NOCLDWAIT: u64 = 0x2;
const SA_ONSTACK: u64 = 0x0800_0000;
const SA_RESTART: u64 = 0x1000_0000;
const SA_RESETHAND: u64 = 0x8000_0000;
const SA_NODEFER: u64 = 0x4000_0000;
pub(crate) const SS_ONSTACK: u32 = 1;
pub(crate) const SS_DISABLE: u32 = 2;
pub(crate) const MINSIGSTKSZ: u64 = 2048;
/// `SIGKILL`.
pub(crate) const SIGKILL: i32 = 9;
/// `SIGSTOP`.
pub(crate) const SIGSTOP: i32 = 19;
/// `SIGSEGV`.
pub(crate) const SIGSEGV: i32 = 11;
/// `SIGCHLD`.
pub(crate) const SIGCHLD: i32 = 17;
/// `SIGCONT`.
pub(crate) const SIGCONT: i32 = 18;
/// `SA_NOCLDSTOP`: no `SIGCHLD` when a child stops or continues.
const SA_NOCLDSTOP: u64 = 0x1;
/// `si_code`s of `SIGCHLD`.
const CLD_STOPPED: i32 = 5;
const CLD_CONTINUED: i32 = 6;
/// `SIGALRM`.
pub(crate) const SIGALRM: i32 = 14;
/// `si_code` of a signal sent by `kill`.
pub(crate) const SI_USER: i32 = 0;
/// `si_code` of a signal sent by `tgkill`.
pub(crate) const SI_TKILL: i32 = -6;
/// Size of the kernel's `struct ucontext` on x86-64.
const UCONTEXT: u64 = std::mem::size_of::<UContext>() as u64;
/// Size of `siginfo_t`.
const SIGINFO: u64 = std::mem::size_of::<abi::SigInfo>() as u64;
/// Saved FPU states kept for nested handlers.
const MAX_FPU_SAVES: usize = 64;

/// The bit of `sig` in a mask.
pub(crate) fn bit(sig: i32) -> u64 {
    1u64 << (sig - 1)
}

/// Signals whose default action is to do nothing.
pub(crate) fn default_ignored(sig: i32) -> bool {
    matches!(sig, SIGCHLD | SIGCONT | 23 | 28)
}

/// Signals whose default action is to stop the process.
fn default_stops(sig: i32) -> bool {
    matches!(sig, SIGSTOP | 20 | 21 | 22)
}

/// One disposition (`struct kernel_sigaction`).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Action {
    pub(crate) handler: u64,
    pub(crate) flags: u64,
    pub(crate) restorer: u64,
    pub(crate) mask: u64,
}

/// What a signal carries (`siginfo_t`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct SigInfo {
    /// Signal number.
    pub(crate) signo: i32,
    /// `si_code`.
    pub(crate) code: i32,
    /// `si_addr` for faults; for `kill`, the sender's pid and uid.
    pub(crate) addr: u64,
    /// The word at `si_status`'s and `si_value`'s place: a child's status (`SIGCHLD`,
    /// as an unsigned 32-bit value), or the sender's whole `si_value` (a queued signal:
    /// `sival_ptr` is 64 bits).
    pub(crate) status: u64,
}

impl SigInfo {
    /// A signal sent by `kill` from `pid` running as `uid`.
    pub(crate) fn user(sig: i32, code: i32, pid: Tid, uid: u32) -> SigInfo {
        SigInfo {
            signo: sig,
            code,
            addr: abi::SigInfo::sender(pid, uid),
            status: 0,
        }
    }

    /// As the workload sees it.
    pub(crate) fn to_abi(self) -> abi::SigInfo {
        abi::SigInfo {
            si_signo: self.signo,
            si_code: self.code,
            who: self.addr,
            value: self.status,
            ..abi::SigInfo::default()
        }
    }
}

/// A signal frame as `deliver` puts it on the user stack: the return address (the
/// restorer), the `struct ucontext` (at `rsp + 8` when the handler starts) and the
/// `siginfo_t`, as Linux's `struct rt_sigframe`.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
struct SignalFrame {
    restorer: u64,
    uc: UContext,
    info: abi::SigInfo,
}
const _: () = assert!(std::mem::size_of::<SignalFrame>() as u64 == 8 + UCONTEXT + SIGINFO);

/// What was decided for a pending signal.
enum Disposition {
    Ignore,
    Terminate,
    Stop,
    Handle,
}

pub(crate) fn valid(sig: u64) -> Result<i32, SysErr> {
    if (1..=64).contains(&sig) {
        Ok(sig as i32)
    } else {
        Err(errno::EINVAL.into())
    }
}

impl Kernel {
    fn disposition(&self, pid: Tid, sig: i32) -> Disposition {
        if sig == SIGKILL {
            return Disposition::Terminate;
        }
        if sig == SIGSTOP {
            return Disposition::Stop;
        }
        let Some(p) = self.proc_ref(pid) else {
            return Disposition::Ignore;
        };
        match p.act[(sig - 1) as usize].handler {
            SIG_IGN => Disposition::Ignore,
            SIG_DFL if default_ignored(sig) => Disposition::Ignore,
            SIG_DFL if default_stops(sig) => Disposition::Stop,
            SIG_DFL => Disposition::Terminate,
            _ => Disposition::Handle,
        }
    }

    /// True when the parent does not want its ended children (`SIGCHLD` ignored or
    /// `SA_NOCLDWAIT`): they are reaped at once.
    pub(crate) fn reaps_children(&self, pid: Tid) -> bool {
        pid == INIT_PID
            || self.proc_ref(pid).is_some_and(|p| {
                let a = p.act[(SIGCHLD - 1) as usize];
                a.handler == SIG_IGN || a.flags & SA_NOCLDWAIT != 0
            })
    }

    /// A signal sent to `pid` (to its thread `tid`) that is ignored goes, one that
    /// stops the process stops it, at once: true then. Unless it is blocked, as Linux
    /// has it ("blocked signals are never ignored": the disposition may change before
    /// it is unblocked), so a blocked `SIGCHLD` stays pending for `sigwaitinfo` and
    /// `signalfd`, and a blocked `SIGTSTP` waits. A process's signal counts as
    /// blocked when its main thread (or, that one gone, every thread) blocks it.
    fn acted_on_at_once(&mut self, pid: Tid, tid: Option<Tid>, sig: i32) -> bool {
        let d = self.disposition(pid, sig);
        if !matches!(d, Disposition::Ignore | Disposition::Stop) {
            return false;
        }
        let blocks = |t: &Task| t.mask & bit(sig) != 0;
        let blocked = match tid {
            Some(t) => self.task_ref(t).is_some_and(blocks),
            None => match self.task_ref(pid) {
                Some(main) => blocks(main),
                None => self.proc_ref(pid).is_some_and(|p| {
                    !p.threads.is_empty()
                        && p.threads
                            .iter()
                            .all(|t| self.task_ref(*t).is_some_and(blocks))
                }),
            },
        };
        if blocked {
            return false;
        }
        if matches!(d, Disposition::Stop) {
            self.stop_process(pid, sig);
        }
        true
    }

    /// Whether `sig` is ignored by `pid` now (a pending one is dropped when taken).
    pub(crate) fn ignores(&self, pid: Tid, sig: i32) -> bool {
        matches!(self.disposition(pid, sig), Disposition::Ignore)
    }

    /// Sends `info` to the process `pid`: any of its threads not blocking it takes it.
    pub(crate) fn signal_process(&mut self, pid: Tid, info: SigInfo) {
        let sig = info.signo;
        // Callers check: a number outside 1..=64 is never sent (nor indexes `act`).
        let known = valid(sig as u64).is_ok();
        debug_assert!(known, "signal {sig} sent to {pid}");
        if !known || (pid == INIT_PID && self.live.is_some()) {
            return; // a live sandbox's init takes no signal
        }
        if sig == SIGCONT {
            self.continue_process(pid);
        }
        if self.acted_on_at_once(pid, None, sig) {
            return;
        }
        let Some(p) = self.proc_mut(pid) else {
            return;
        };
        if p.exit.is_some() {
            return;
        }
        p.pending |= bit(sig);
        p.info[(sig - 1) as usize] = Some(info);
        let threads = p.threads.clone();
        self.stirred = true;
        if sig == SIGKILL {
            self.kill_process(pid, super::task::ExitStatus::Signal(SIGKILL));
            return;
        }
        // Wake one thread that can take it now.
        for t in threads {
            if self.task_ref(t).is_some_and(|t| t.mask & bit(sig) == 0) {
                self.interrupt(t, sig);
                break;
            }
        }
    }

    /// Sends `info` to the task `tid` only.
    pub(crate) fn signal_task(&mut self, tid: Tid, info: SigInfo) {
        let sig = info.signo;
        let Some(pid) = self.task_ref(tid).map(|t| t.pid) else {
            return;
        };
        if sig == SIGCONT {
            self.continue_process(pid);
        }
        if self.acted_on_at_once(pid, Some(tid), sig) {
            return;
        }
        if sig == SIGKILL {
            self.kill_process(pid, super::task::ExitStatus::Signal(SIGKILL));
            return;
        }
        if let Some(t) = self.task_mut(tid) {
            t.pending |= bit(sig);
            t.info[(sig - 1) as usize] = Some(info);
            if t.mask & bit(sig) == 0 {
                self.interrupt(tid, sig);
            }
        }
        self.stirred = true;
    }

    /// Sends a signal to the current task from itself (faults of syscalls: `SIGPIPE`,
    /// `SIGXFSZ`).
    pub(crate) fn raise(&mut self, sig: i32) -> Result<(), SysErr> {
        let info = SigInfo::user(sig, SI_USER, self.proc.pid, self.user.0);
        let tid = self.task.tid;
        self.signal_task(tid, info);
        Ok(())
    }

    /// Stops the process `pid` (its threads stay off the vCPU until `SIGCONT`); its
    /// parent learns it.
    fn stop_process(&mut self, pid: Tid, sig: i32) {
        let Some(p) = self.proc_mut(pid) else {
            return;
        };
        if p.exit.is_some() || p.stopped.is_some() {
            return;
        }
        p.stopped = Some(sig);
        p.stop_report = Some(sig);
        p.continued = false;
        p.pending &= !bit(SIGCONT);
        let ppid = p.ppid;
        self.notify_parent(ppid, pid, CLD_STOPPED, sig);
        self.stirred = true;
    }

    /// Continues the process `pid` if it is stopped (`SIGCONT`, whatever its
    /// disposition); pending stop signals are dropped.
    fn continue_process(&mut self, pid: Tid) {
        let Some(p) = self.proc_mut(pid) else {
            return;
        };
        let stops = bit(SIGSTOP) | bit(20) | bit(21) | bit(22);
        p.pending &= !stops;
        if p.stopped.take().is_none() {
            return;
        }
        p.stop_report = None;
        p.continued = true;
        let ppid = p.ppid;
        self.notify_parent(ppid, pid, CLD_CONTINUED, SIGCONT);
        self.stirred = true;
    }

    /// `SIGCHLD` to `ppid` about its child `pid` stopping or continuing (unless it
    /// asked not to, `SA_NOCLDSTOP`).
    fn notify_parent(&mut self, ppid: Tid, pid: Tid, code: i32, status: i32) {
        let quiet = self
            .proc_ref(ppid)
            .is_none_or(|p| p.act[(SIGCHLD - 1) as usize].flags & SA_NOCLDSTOP != 0);
        if quiet || ppid == INIT_PID {
            return;
        }
        let info = SigInfo {
            signo: SIGCHLD,
            code,
            addr: u64::from(pid) | (u64::from(self.user.0) << 32),
            status: u64::from(status as u32),
        };
        self.signal_process(ppid, info);
    }

    /// Ends the syscall `tid` is blocked in because `sig` came: a `Retry` wait is
    /// tried once more first (`Wait::Interrupted`: `retry_blocked` ends it after, if
    /// it still waits); others end at once.
    fn interrupt(&mut self, tid: Tid, sig: i32) {
        let Some(t) = self.task_mut(tid) else {
            return;
        };
        if let TaskState::Blocked(b) = &mut t.state {
            if b.wait == Wait::Retry {
                b.wait = Wait::Interrupted(sig);
                self.stirred = true;
                return;
            }
        }
        self.end_wait(tid, sig);
    }

    /// Ends the syscall `tid` is blocked in because `sig` came: `EINTR`, or a restart
    /// after the handler.
    pub(crate) fn end_wait(&mut self, tid: Tid, sig: i32) {
        let Some(pid) = self.task_ref(tid).map(|t| t.pid) else {
            return;
        };
        let restart = self
            .proc_ref(pid)
            .is_some_and(|p| p.act[(sig - 1) as usize].flags & SA_RESTART != 0);
        let handled = matches!(self.disposition(pid, sig), Disposition::Handle);
        let Some(t) = self.task_mut(tid) else {
            return;
        };
        let TaskState::Blocked(b) = &t.state else {
            return;
        };
        if matches!(b.wait, Wait::Vfork(_)) {
            return;
        }
        if t.partial > 0 {
            // A write that moved bytes before the signal answers their count.
            t.ctx.regs.rax = std::mem::take(&mut t.partial);
        } else if handled && restart && super::dispatch::restartable(b.nr) {
            t.ctx.rip = t.ctx.rip.wrapping_sub(2);
            t.ctx.regs.rax = b.nr;
        } else {
            t.ctx.regs.rax = (-i64::from(libc::EINTR)) as u64;
        }
        t.state = TaskState::Runnable;
    }

    /// Takes the pending signal `sig` of the current task (its own first, then its
    /// process's) with what it carries: the one place a signal is dequeued, for its
    /// delivery or for `sigwaitinfo`. A POSIX timer's signal records its overruns
    /// there (`timer_getoverrun`); one its timer made stale (set again, deleted) is
    /// dropped: `None`.
    pub(crate) fn take_pending(&mut self, sig: i32) -> Option<SigInfo> {
        let i = (sig - 1) as usize;
        let info = if self.task.pending & bit(sig) != 0 {
            self.task.pending &= !bit(sig);
            self.task.info[i].take()
        } else {
            self.proc.pending &= !bit(sig);
            self.proc.info[i].take()
        }
        .unwrap_or(SigInfo {
            signo: sig,
            code: 0,
            addr: 0,
            status: 0,
        });
        match info.code {
            super::timers::SI_TIMER => self.timers.delivered(self.proc.pid, &info),
            super::timers::SI_TIMER_STALE => return None,
            _ => {}
        }
        Some(info)
    }

    /// Acts on the current task's pending, unblocked signals before it returns to user
    /// mode (it is on the vCPU). Ends with the task dead when a signal killed its
    /// process.
    pub(crate) fn deliver_signals(&mut self, cpu: &mut dyn Cpu) -> Result<(), Stop> {
        loop {
            let mask = self.task.mask & !(bit(SIGKILL) | bit(SIGSTOP));
            let ready = (self.task.pending | self.proc.pending) & !mask;
            if ready == 0 || matches!(self.task.state, TaskState::Dead) {
                return Ok(());
            }
            let sig = ready.trailing_zeros() as i32 + 1;
            let Some(info) = self.take_pending(sig) else {
                continue;
            };
            match self.disposition(self.proc.pid, sig) {
                Disposition::Ignore => continue,
                Disposition::Stop => {
                    let pid = self.proc.pid;
                    self.stop_process(pid, sig);
                    return Ok(());
                }
                Disposition::Terminate => {
                    let pid = self.proc.pid;
                    self.kill_process(pid, super::task::ExitStatus::Signal(sig));
                    return Ok(());
                }
                Disposition::Handle => {
                    let mut ctx = self.task.ctx.clone();
                    if self.deliver(cpu, &mut ctx, info)? {
                        self.task.ctx = ctx;
                    } else {
                        let pid = self.proc.pid;
                        self.kill_process(pid, super::task::ExitStatus::Signal(SIGSEGV));
                        return Ok(());
                    }
                }
            }
        }
    }

    /// A fault of the current task (`sig` with `code` at `addr`): runs its handler, or
    /// kills its process as Linux would when there is none, or it is blocked or ignored.
    pub(crate) fn fault_signal(
        &mut self,
        cpu: &mut dyn Cpu,
        sig: i32,
        code: i32,
        addr: u64,
    ) -> Result<(), Stop> {
        let a = self.proc.act[(sig - 1) as usize];
        if a.handler == SIG_DFL || a.handler == SIG_IGN || self.task.mask & bit(sig) != 0 {
            let pid = self.proc.pid;
            self.kill_process(pid, super::task::ExitStatus::Signal(sig));
            return Ok(());
        }
        let info = SigInfo {
            signo: sig,
            code,
            addr,
            status: 0,
        };
        let mut ctx = self.task.ctx.clone();
        if self.deliver(cpu, &mut ctx, info)? {
            self.task.ctx = ctx;
        } else {
            let pid = self.proc.pid;
            self.kill_process(pid, super::task::ExitStatus::Signal(SIGSEGV));
        }
        Ok(())
    }

    /// Builds a signal frame on the user stack and points user mode at the handler.
    /// False when the frame cannot be written (Linux then forces SIGSEGV).
    fn deliver(
        &mut self,
        cpu: &mut dyn Cpu,
        ctx: &mut UserCtx,
        info: SigInfo,
    ) -> Result<bool, Stop> {
        let sig = info.signo;
        let a = self.proc.act[(sig - 1) as usize];
        let r = ctx.regs;
        let mut sp = r.rsp;
        let altstack = self.task.altstack;
        let on_alt =
            altstack.is_some_and(|(base, size)| sp > base && sp <= base.saturating_add(size));
        match altstack {
            Some((base, size)) if a.flags & SA_ONSTACK != 0 && !on_alt => {
                sp = base.wrapping_add(size)
            }
            _ => sp = sp.wrapping_sub(128), // the red zone
        }
        let frame = ((sp.wrapping_sub(8 + UCONTEXT + SIGINFO)) & !15).wrapping_sub(8);
        let uc = frame.wrapping_add(8);
        let si = uc.wrapping_add(UCONTEXT);
        let old_mask = self.task.suspend_mask.take().unwrap_or(self.task.mask);
        let ss_flags = if altstack.is_none() {
            SS_DISABLE
        } else if on_alt {
            SS_ONSTACK
        } else {
            0
        };
        let (ss_sp, ss_size) = altstack.unwrap_or((0, 0));
        let frame_bytes = SignalFrame {
            restorer: a.restorer,
            uc: UContext {
                uc_flags: 0,
                uc_link: 0,
                uc_stack: StackT {
                    ss_sp,
                    ss_flags: ss_flags as i32,
                    _pad: 0,
                    ss_size,
                },
                uc_mcontext: SigContext {
                    r8: r.r8,
                    r9: r.r9,
                    r10: r.r10,
                    r11: r.r11,
                    r12: r.r12,
                    r13: r.r13,
                    r14: r.r14,
                    r15: r.r15,
                    rdi: r.rdi,
                    rsi: r.rsi,
                    rbp: r.rbp,
                    rbx: r.rbx,
                    rdx: r.rdx,
                    rax: r.rax,
                    rcx: r.rcx,
                    rsp: r.rsp,
                    rip: ctx.rip,
                    eflags: ctx.rflags,
                    cs: crate::guest::layout::USER_CS,
                    ss: crate::guest::layout::USER_DS,
                    oldmask: old_mask,
                    cr2: info.addr,
                    // The FPU state stays with the VMM (`sig_fpu`), not on the stack.
                    fpstate: 0,
                    ..SigContext::default()
                },
                uc_sigmask: old_mask,
            },
            info: info.to_abi(),
        };
        if a.restorer == 0
            || frame >= USER_TOP
            || self
                .mm
                .write(UserPtr::<SignalFrame>::new(frame), &frame_bytes)
                .is_err()
        {
            return Ok(false);
        }
        let fpu = cpu.save_fpu()?;
        if self.task.sig_fpu.len() == MAX_FPU_SAVES {
            self.task.sig_fpu.remove(0);
        }
        self.task.sig_fpu.push(fpu);
        ctx.regs.rdi = sig as u64;
        ctx.regs.rsi = si;
        ctx.regs.rdx = uc;
        ctx.regs.rax = 0;
        ctx.regs.rsp = frame;
        ctx.rip = a.handler;
        ctx.rflags &= !(0x100 | 0x400 | 0x10000); // TF, DF, RF
        self.task.mask = old_mask | a.mask;
        if a.flags & SA_NODEFER == 0 {
            self.task.mask |= bit(sig);
        }
        self.task.mask &= !(bit(SIGKILL) | bit(SIGSTOP));
        if a.flags & SA_RESETHAND != 0 {
            self.proc.act[(sig - 1) as usize] = Action::default();
        }
        Ok(true)
    }

    pub(crate) fn sys_rt_sigreturn(&mut self, cpu: &mut dyn Cpu, ctx: &mut UserCtx) -> SysResult {
        let uc = match self.mm.read(UserPtr::<UContext>::new(ctx.regs.rsp)) {
            Ok(uc) => uc,
            Err(_) => return Err(self.die(SIGSEGV)),
        };
        let m = uc.uc_mcontext;
        if m.rip >= USER_CODE_TOP || m.rsp >= USER_TOP {
            return Err(self.die(SIGSEGV));
        }
        let r = &mut ctx.regs;
        (r.r8, r.r9, r.r10, r.r11, r.r12, r.r13, r.r14, r.r15) =
            (m.r8, m.r9, m.r10, m.r11, m.r12, m.r13, m.r14, m.r15);
        (r.rdi, r.rsi, r.rbp, r.rbx, r.rdx, r.rax, r.rcx, r.rsp) =
            (m.rdi, m.rsi, m.rbp, m.rbx, m.rdx, m.rax, m.rcx, m.rsp);
        ctx.rip = m.rip;
        ctx.rflags = m.eflags;
        self.task.mask = uc.uc_sigmask & !(bit(SIGKILL) | bit(SIGSTOP));
        if let Some(fpu) = self.task.sig_fpu.pop() {
            cpu.restore_fpu(&fpu)?;
        }
        Ok(ctx.regs.rax)
    }
}
