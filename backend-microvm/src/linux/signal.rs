//! Signals: dispositions, the mask, pending signals, delivery to handlers (with a
//! Linux `rt_sigframe` on the user stack) and `rt_sigreturn`. Signals come only from
//! the workload itself (`kill`, `raise`, `abort`), from faults, and from limits
//! (SIGXFSZ, SIGPIPE).

use super::{Cpu, Kernel, Stop, SysErr, SysResult, UserCtx, PID};
use crate::errno;
use crate::guest::layout::USER_TOP;

const SIG_DFL: u64 = 0;
const SIG_IGN: u64 = 1;
const SA_ONSTACK: u64 = 0x0800_0000;
const SA_RESETHAND: u64 = 0x8000_0000;
const SA_NODEFER: u64 = 0x4000_0000;
const SS_ONSTACK: u32 = 1;
const SS_DISABLE: u32 = 2;
const MINSIGSTKSZ: u64 = 2048;
/// `SIGKILL`.
pub(crate) const SIGKILL: i32 = 9;
/// `SIGSTOP`.
const SIGSTOP: i32 = 19;
/// `SIGSEGV`.
pub(crate) const SIGSEGV: i32 = 11;
/// Size of the kernel's `struct ucontext` on x86-64.
const UCONTEXT: u64 = 304;
/// Size of `siginfo_t`.
const SIGINFO: u64 = 128;
/// Saved FPU states kept for nested handlers.
const MAX_FPU_SAVES: usize = 64;

fn bit(sig: i32) -> u64 {
    1u64 << (sig - 1)
}

/// Signals whose default action is to do nothing (stop signals included: there is no
/// job control in a sandbox).
fn default_ignored(sig: i32) -> bool {
    matches!(sig, 17 | 18 | 19 | 20 | 21 | 22 | 23 | 28)
}

/// One disposition (`struct kernel_sigaction`).
#[derive(Debug, Clone, Copy, Default)]
struct Action {
    handler: u64,
    flags: u64,
    restorer: u64,
    mask: u64,
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
}

impl SigInfo {
    fn encode(&self) -> Vec<u8> {
        let mut b = vec![0u8; SIGINFO as usize];
        b[..4].copy_from_slice(&self.signo.to_le_bytes());
        b[8..12].copy_from_slice(&self.code.to_le_bytes());
        b[16..24].copy_from_slice(&self.addr.to_le_bytes());
        b
    }
}

/// The signal state of the process.
#[derive(Debug)]
pub(crate) struct Signals {
    act: [Action; 64],
    mask: u64,
    pending: u64,
    info: [Option<SigInfo>; 64],
    altstack: Option<(u64, u64)>,
    fpu: Vec<Box<kvm_bindings::kvm_xsave>>,
}

impl Default for Signals {
    fn default() -> Self {
        Signals {
            act: [Action::default(); 64],
            mask: 0,
            pending: 0,
            info: [None; 64],
            altstack: None,
            fpu: Vec::new(),
        }
    }
}

fn valid(sig: u64) -> Result<i32, SysErr> {
    if (1..=64).contains(&sig) {
        Ok(sig as i32)
    } else {
        Err(errno::EINVAL.into())
    }
}

impl Kernel {
    /// Sends `sig` to the workload; it is acted on when the workload next returns to
    /// user mode.
    pub(crate) fn raise(&mut self, sig: i32) -> Result<(), SysErr> {
        self.raise_info(SigInfo {
            signo: sig,
            code: 0,
            addr: PID | (u64::from(self.user.0) << 32),
        });
        Ok(())
    }

    fn raise_info(&mut self, info: SigInfo) {
        let sig = info.signo;
        let a = self.sig.act[(sig - 1) as usize];
        if sig != SIGKILL
            && sig != SIGSTOP
            && (a.handler == SIG_IGN || (a.handler == SIG_DFL && default_ignored(sig)))
        {
            return;
        }
        self.sig.pending |= bit(sig);
        self.sig.info[(sig - 1) as usize] = Some(info);
    }

    /// Acts on pending, unblocked signals before returning to user mode.
    pub(crate) fn after_syscall(
        &mut self,
        cpu: &mut dyn Cpu,
        ctx: &mut UserCtx,
    ) -> Result<(), Stop> {
        loop {
            let ready = self.sig.pending & (!self.sig.mask | bit(SIGKILL) | bit(SIGSTOP));
            if ready == 0 {
                return Ok(());
            }
            let sig = ready.trailing_zeros() as i32 + 1;
            self.sig.pending &= !bit(sig);
            let info = self.sig.info[(sig - 1) as usize].take().unwrap_or(SigInfo {
                signo: sig,
                code: 0,
                addr: 0,
            });
            let a = self.sig.act[(sig - 1) as usize];
            match a.handler {
                _ if sig == SIGKILL => return Err(Stop::Signal(sig)),
                _ if sig == SIGSTOP => continue,
                SIG_IGN => continue,
                SIG_DFL if default_ignored(sig) => continue,
                SIG_DFL => return Err(Stop::Signal(sig)),
                _ => self.deliver(cpu, ctx, info)?,
            }
        }
    }

    /// A fault of the workload (`sig` with `code` at `addr`): runs its handler, or ends
    /// the run as Linux would when there is none, or it is blocked or ignored.
    pub(crate) fn fault_signal(
        &mut self,
        cpu: &mut dyn Cpu,
        ctx: &mut UserCtx,
        sig: i32,
        code: i32,
        addr: u64,
    ) -> Result<(), Stop> {
        let a = self.sig.act[(sig - 1) as usize];
        if a.handler == SIG_DFL || a.handler == SIG_IGN || self.sig.mask & bit(sig) != 0 {
            return Err(Stop::Signal(sig));
        }
        self.deliver(
            cpu,
            ctx,
            SigInfo {
                signo: sig,
                code,
                addr,
            },
        )
    }

    /// Builds a signal frame on the user stack and points user mode at the handler.
    fn deliver(&mut self, cpu: &mut dyn Cpu, ctx: &mut UserCtx, info: SigInfo) -> Result<(), Stop> {
        let sig = info.signo;
        let a = self.sig.act[(sig - 1) as usize];
        let r = ctx.regs;
        let mut sp = r.rsp;
        let on_alt = self
            .sig
            .altstack
            .is_some_and(|(base, size)| sp > base && sp <= base + size);
        match self.sig.altstack {
            Some((base, size)) if a.flags & SA_ONSTACK != 0 && !on_alt => sp = base + size,
            _ => sp = sp.wrapping_sub(128), // the red zone
        }
        let frame = ((sp.wrapping_sub(8 + UCONTEXT + SIGINFO)) & !15).wrapping_sub(8);
        let uc = frame.wrapping_add(8);
        let si = uc.wrapping_add(UCONTEXT);
        // struct ucontext: flags, link, stack, sigcontext, sigmask.
        let mut ucb = Vec::with_capacity(UCONTEXT as usize);
        ucb.extend_from_slice(&0u64.to_le_bytes());
        ucb.extend_from_slice(&0u64.to_le_bytes());
        let (ss_sp, ss_size) = self.sig.altstack.unwrap_or((0, 0));
        ucb.extend_from_slice(&ss_sp.to_le_bytes());
        let ss_flags = if self.sig.altstack.is_none() {
            SS_DISABLE
        } else if on_alt {
            SS_ONSTACK
        } else {
            0
        };
        ucb.extend_from_slice(&u64::from(ss_flags).to_le_bytes());
        ucb.extend_from_slice(&ss_size.to_le_bytes());
        for v in [
            r.r8, r.r9, r.r10, r.r11, r.r12, r.r13, r.r14, r.r15, r.rdi, r.rsi, r.rbp, r.rbx,
            r.rdx, r.rax, r.rcx, r.rsp, ctx.rip, ctx.rflags,
        ] {
            ucb.extend_from_slice(&v.to_le_bytes());
        }
        // cs, gs, fs, ss; err, trapno, oldmask, cr2; fpstate (kept by the VMM); reserved.
        let segs: u64 = u64::from(crate::guest::layout::USER_CS)
            | (u64::from(crate::guest::layout::USER_DS) << 48);
        ucb.extend_from_slice(&segs.to_le_bytes());
        for v in [0u64, 0, self.sig.mask, info.addr, 0] {
            ucb.extend_from_slice(&v.to_le_bytes());
        }
        ucb.resize(40 + 256, 0);
        ucb.extend_from_slice(&self.sig.mask.to_le_bytes());
        let mut bytes = a.restorer.to_le_bytes().to_vec();
        bytes.extend_from_slice(&ucb);
        bytes.extend_from_slice(&info.encode());
        if a.restorer == 0 || frame >= USER_TOP || self.mm.write_user(frame, &bytes).is_err() {
            // No way to run the handler: Linux forces SIGSEGV.
            return Err(Stop::Signal(SIGSEGV));
        }
        let fpu = cpu.save_fpu()?;
        if self.sig.fpu.len() == MAX_FPU_SAVES {
            self.sig.fpu.remove(0);
        }
        self.sig.fpu.push(fpu);
        ctx.regs.rdi = sig as u64;
        ctx.regs.rsi = si;
        ctx.regs.rdx = uc;
        ctx.regs.rax = 0;
        ctx.regs.rsp = frame;
        ctx.rip = a.handler;
        ctx.rflags &= !(0x100 | 0x400 | 0x10000); // TF, DF, RF
        self.sig.mask |= a.mask;
        if a.flags & SA_NODEFER == 0 {
            self.sig.mask |= bit(sig);
        }
        self.sig.mask &= !(bit(SIGKILL) | bit(SIGSTOP));
        if a.flags & SA_RESETHAND != 0 {
            self.sig.act[(sig - 1) as usize] = Action::default();
        }
        Ok(())
    }

    pub(crate) fn sys_rt_sigreturn(&mut self, cpu: &mut dyn Cpu, ctx: &mut UserCtx) -> SysResult {
        let uc = ctx.regs.rsp;
        let raw = match self.mm.read_user_vec(uc, UCONTEXT as usize) {
            Ok(r) => r,
            Err(_) => return Err(Stop::Signal(SIGSEGV).into()),
        };
        let q = |i: usize| {
            u64::from_le_bytes(raw[40 + i * 8..48 + i * 8].try_into().unwrap_or_default())
        };
        let rip = q(16);
        let rsp = q(15);
        if rip >= USER_TOP || rsp >= USER_TOP {
            return Err(Stop::Signal(SIGSEGV).into());
        }
        let r = &mut ctx.regs;
        (r.r8, r.r9, r.r10, r.r11, r.r12, r.r13, r.r14, r.r15) =
            (q(0), q(1), q(2), q(3), q(4), q(5), q(6), q(7));
        (r.rdi, r.rsi, r.rbp, r.rbx, r.rdx, r.rax, r.rcx, r.rsp) =
            (q(8), q(9), q(10), q(11), q(12), q(13), q(14), rsp);
        ctx.rip = rip;
        ctx.rflags = q(17);
        let mask = u64::from_le_bytes(raw[296..304].try_into().unwrap_or_default());
        self.sig.mask = mask & !(bit(SIGKILL) | bit(SIGSTOP));
        if let Some(fpu) = self.sig.fpu.pop() {
            cpu.restore_fpu(&fpu)?;
        }
        Ok(ctx.regs.rax)
    }

    pub(crate) fn sys_rt_sigaction(
        &mut self,
        sig: u64,
        act: u64,
        oact: u64,
        size: u64,
    ) -> SysResult {
        if size != 8 {
            return Err(errno::EINVAL.into());
        }
        let sig = valid(sig)?;
        let new = if act != 0 {
            if sig == SIGKILL || sig == SIGSTOP {
                return Err(errno::EINVAL.into());
            }
            let raw = self.mm.read_user_vec(act, 32)?;
            let q =
                |i: usize| u64::from_le_bytes(raw[i * 8..i * 8 + 8].try_into().unwrap_or_default());
            Some(Action {
                handler: q(0),
                flags: q(1),
                restorer: q(2),
                mask: q(3),
            })
        } else {
            None
        };
        let old = self.sig.act[(sig - 1) as usize];
        if oact != 0 {
            let mut b = Vec::with_capacity(32);
            for v in [old.handler, old.flags, old.restorer, old.mask] {
                b.extend_from_slice(&v.to_le_bytes());
            }
            self.mm.write_user(oact, &b)?;
        }
        if let Some(n) = new {
            self.sig.act[(sig - 1) as usize] = n;
            if n.handler == SIG_IGN || (n.handler == SIG_DFL && default_ignored(sig)) {
                self.sig.pending &= !bit(sig);
            }
        }
        Ok(0)
    }

    pub(crate) fn sys_rt_sigprocmask(
        &mut self,
        how: u64,
        set: u64,
        oset: u64,
        size: u64,
    ) -> SysResult {
        if size != 8 {
            return Err(errno::EINVAL.into());
        }
        let new = if set != 0 {
            Some(self.mm.read_u64(set)?)
        } else {
            None
        };
        if oset != 0 {
            self.mm.write_u64(oset, self.sig.mask)?;
        }
        if let Some(s) = new {
            self.sig.mask = match how as i32 {
                libc::SIG_BLOCK => self.sig.mask | s,
                libc::SIG_UNBLOCK => self.sig.mask & !s,
                libc::SIG_SETMASK => s,
                _ => return Err(errno::EINVAL.into()),
            } & !(bit(SIGKILL) | bit(SIGSTOP));
        }
        Ok(0)
    }

    pub(crate) fn sys_rt_sigpending(&mut self, set: u64, size: u64) -> SysResult {
        if size > 8 {
            return Err(errno::EINVAL.into());
        }
        self.mm.write_u64(set, self.sig.pending & self.sig.mask)?;
        Ok(0)
    }

    pub(crate) fn sys_sigaltstack(&mut self, ss: u64, old: u64) -> SysResult {
        let new = if ss != 0 {
            let raw = self.mm.read_user_vec(ss, 24)?;
            let sp = u64::from_le_bytes(raw[..8].try_into().unwrap_or_default());
            let flags = u32::from_le_bytes(raw[8..12].try_into().unwrap_or_default());
            let size = u64::from_le_bytes(raw[16..24].try_into().unwrap_or_default());
            Some((sp, flags, size))
        } else {
            None
        };
        if old != 0 {
            let (sp, size) = self.sig.altstack.unwrap_or((0, 0));
            let flags = if self.sig.altstack.is_none() {
                SS_DISABLE
            } else {
                0
            };
            let mut b = sp.to_le_bytes().to_vec();
            b.extend_from_slice(&u64::from(flags).to_le_bytes());
            b.extend_from_slice(&size.to_le_bytes());
            self.mm.write_user(old, &b)?;
        }
        if let Some((sp, flags, size)) = new {
            if flags & SS_DISABLE != 0 {
                self.sig.altstack = None;
            } else if flags & !SS_ONSTACK != 0 {
                return Err(errno::EINVAL.into());
            } else if size < MINSIGSTKSZ {
                return Err(errno::ENOMEM.into());
            } else {
                self.sig.altstack = Some((sp, size));
            }
        }
        Ok(0)
    }

    pub(crate) fn sys_kill(&mut self, pid: i64, sig: u64) -> SysResult {
        match pid {
            p if p == PID as i64 || p == 0 || p == -1 || p == -(PID as i64) => {}
            1 => return Err(errno::EPERM.into()),
            _ => return Err(errno::ESRCH.into()),
        }
        if sig == 0 {
            return Ok(0);
        }
        let s = valid(sig)?;
        self.raise(s)?;
        Ok(0)
    }

    pub(crate) fn sys_tgkill(&mut self, tgid: i64, tid: i64, sig: u64) -> SysResult {
        if tgid <= 0 || tid <= 0 {
            return Err(errno::EINVAL.into());
        }
        if tgid != PID as i64 || tid != PID as i64 {
            return Err(errno::ESRCH.into());
        }
        if sig == 0 {
            return Ok(0);
        }
        let s = valid(sig)?;
        self.raise(s)?;
        Ok(0)
    }
}
