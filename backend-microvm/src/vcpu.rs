//! The vCPU loop: runs the guest and turns its exits into the personality's work.
//!
//! Two exits matter: the doorbell (a syscall: the stub wrote to the MMIO page) and the
//! exception port (the CPL0 handler reports a fault or exception). Everything else is
//! a bug or a host failure and ends the run.

use kvm_bindings::{kvm_regs, kvm_xsave};
use kvm_ioctls::{VcpuExit, VcpuFd};

use crate::guest::layout::*;
use crate::kick::thread_cpu_time;
use crate::linux::{Cpu, Kernel, Stop, UserCtx};
use crate::mm::{Access, FaultOutcome};
use crate::vm::Vm;

const SIGILL: i32 = 4;
const SIGTRAP: i32 = 5;
const SIGBUS: i32 = 7;
const SIGFPE: i32 = 8;
const SIGSEGV: i32 = 11;

/// RFLAGS bits user mode may hold: CF, PF, AF, ZF, SF, TF, DF, OF, AC, ID.
const USER_FLAGS: u64 =
    0x1 | 0x4 | 0x10 | 0x40 | 0x80 | 0x100 | 0x400 | 0x800 | 0x4_0000 | 0x20_0000;

fn internal(what: &str, e: impl std::fmt::Display) -> Stop {
    Stop::Internal(format!("{what}: {e}"))
}

/// vCPU state beyond the registers, for the personality.
struct VcpuCpu<'a> {
    vcpu: &'a VcpuFd,
}

impl Cpu for VcpuCpu<'_> {
    fn fs_base(&mut self) -> Result<u64, Stop> {
        Ok(self
            .vcpu
            .get_sregs()
            .map_err(|e| internal("KVM_GET_SREGS", e))?
            .fs
            .base)
    }
    fn set_fs_base(&mut self, v: u64) -> Result<(), Stop> {
        let mut s = self
            .vcpu
            .get_sregs()
            .map_err(|e| internal("KVM_GET_SREGS", e))?;
        s.fs.base = v;
        self.vcpu
            .set_sregs(&s)
            .map_err(|e| internal("KVM_SET_SREGS", e))
    }
    fn gs_base(&mut self) -> Result<u64, Stop> {
        Ok(self
            .vcpu
            .get_sregs()
            .map_err(|e| internal("KVM_GET_SREGS", e))?
            .gs
            .base)
    }
    fn set_gs_base(&mut self, v: u64) -> Result<(), Stop> {
        let mut s = self
            .vcpu
            .get_sregs()
            .map_err(|e| internal("KVM_GET_SREGS", e))?;
        s.gs.base = v;
        self.vcpu
            .set_sregs(&s)
            .map_err(|e| internal("KVM_SET_SREGS", e))
    }
    fn save_fpu(&mut self) -> Result<Box<kvm_xsave>, Stop> {
        Ok(Box::new(
            self.vcpu
                .get_xsave()
                .map_err(|e| internal("KVM_GET_XSAVE", e))?,
        ))
    }
    fn restore_fpu(&mut self, state: &kvm_xsave) -> Result<(), Stop> {
        // SAFETY: `state` came from KVM_GET_XSAVE on this vCPU (see `save_fpu`): a
        // complete, valid legacy XSAVE area.
        unsafe { self.vcpu.set_xsave(state) }.map_err(|e| internal("KVM_SET_XSAVE", e))
    }
}

/// Runs the guest until the run ends.
pub(crate) fn run(vm: &mut Vm, k: &mut Kernel) -> Stop {
    if k.ctl.killed() {
        return Stop::Killed;
    }
    loop {
        let exit = match vm.vcpu.run() {
            Ok(VcpuExit::MmioWrite(addr, _)) if addr & !(PAGE_SIZE - 1) == vm.doorbell_gpa => {
                Ok(Exit::Syscall)
            }
            Ok(VcpuExit::IoOut(port, _)) if port == EXC_PORT => Ok(Exit::Exception),
            Ok(VcpuExit::Shutdown) => Err(Stop::Internal("the guest triple-faulted".into())),
            Ok(other) => Err(Stop::Internal(format!("unexpected VM exit: {other:?}"))),
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {
                Ok(Exit::Interrupted)
            }
            Err(e) => Err(internal("KVM_RUN", e)),
        };
        let step = match exit {
            Ok(Exit::Syscall) => on_syscall(vm, k),
            Ok(Exit::Exception) => on_exception(vm, k),
            Ok(Exit::Interrupted) => {
                vm.vcpu.set_kvm_immediate_exit(0);
                check_limits(k)
            }
            Err(s) => Err(s),
        };
        if let Err(stop) = step {
            return stop;
        }
    }
}

enum Exit {
    Syscall,
    Exception,
    Interrupted,
}

/// After a kick: was it a kill, the wall clock, or the CPU clock?
fn check_limits(k: &Kernel) -> Result<(), Stop> {
    if k.ctl.killed() {
        return Err(Stop::Killed);
    }
    if k.limits
        .deadline
        .is_some_and(|d| std::time::Instant::now() >= d)
    {
        return Err(Stop::Timeout);
    }
    if k.limits.cpu.is_some_and(|c| thread_cpu_time() >= c) {
        return Err(Stop::CpuLimit);
    }
    Ok(())
}

fn on_syscall(vm: &mut Vm, k: &mut Kernel) -> Result<(), Stop> {
    let regs = vm.regs().map_err(|e| internal("reading registers", e))?;
    let mut ctx = UserCtx {
        rip: regs.rcx,
        rflags: regs.r11,
        regs,
    };
    let mut cpu = VcpuCpu { vcpu: &vm.vcpu };
    k.syscall(&mut cpu, &mut ctx)?;
    return_to_user(vm, k, &ctx, regs)
}

/// Resumes user mode with `ctx` after a syscall: through the stub's `iretq`, or, when
/// page-table entries changed, through the flush path (the guest rewrites them at CPL0).
fn return_to_user(vm: &mut Vm, k: &mut Kernel, ctx: &UserCtx, stub: kvm_regs) -> Result<(), Stop> {
    if ctx.rip >= USER_TOP {
        return Err(Stop::Signal(SIGSEGV));
    }
    let rflags = (ctx.rflags & USER_FLAGS) | 0x202;
    let frame = [
        ctx.rip,
        u64::from(USER_CS),
        rflags,
        ctx.regs.rsp,
        u64::from(USER_DS),
    ];
    let mut regs = ctx.regs;
    regs.rflags = stub.rflags;
    let flush = k.mm.take_flush();
    let mem = &k.mm.mem;
    let put = |gpa: u64, v: u64| {
        mem.write_u64(gpa, v)
            .ok_or_else(|| Stop::Internal("supervisor data outside RAM".into()))
    };
    if !flush.is_empty() && flush.len() <= WORK_CAPACITY {
        for (i, va) in flush.iter().enumerate() {
            put(WORK_GPA + 8 * i as u64, *va)?;
        }
        for (i, v) in frame.iter().enumerate() {
            put(DATA_GPA + DATA_FRAME + 8 * i as u64, *v)?;
        }
        put(DATA_GPA + DATA_COUNT, flush.len() as u64)?;
        regs.rip = FLUSH_ENTRY_VA;
    } else {
        if !flush.is_empty() {
            vm.reload_slot()
                .map_err(|e| internal("memory slot reload", e))?;
        }
        for (i, v) in frame.iter().enumerate() {
            put(FRAME_GPA + (USER_FRAME_VA - FRAME_VA) + 8 * i as u64, *v)?;
        }
        regs.rsp = USER_FRAME_VA;
        regs.rip = STUB_VA + 6;
    }
    vm.set_regs(&regs)
        .map_err(|e| internal("setting registers", e))
}

/// The exception frame on the IST stack, as the handler leaves it.
struct ExcFrame {
    rax: u64,
    vector: u64,
    error: u64,
    rip: u64,
    cs: u64,
    rflags: u64,
    rsp: u64,
}

const FRAME_BASE: u64 = IST_TOP_GPA - 64;

fn read_frame(k: &Kernel) -> Result<ExcFrame, Stop> {
    let m = &k.mm.mem;
    let q = |i: u64| {
        m.read_u64(FRAME_BASE + 8 * i)
            .ok_or_else(|| Stop::Internal("exception frame outside RAM".into()))
    };
    Ok(ExcFrame {
        rax: q(0)?,
        vector: q(1)?,
        error: q(2)?,
        rip: q(3)?,
        cs: q(4)?,
        rflags: q(5)?,
        rsp: q(6)?,
    })
}

fn on_exception(vm: &mut Vm, k: &mut Kernel) -> Result<(), Stop> {
    let f = read_frame(k)?;
    let cr2 = k.mm.mem.read_u64(DATA_GPA + DATA_CR2).unwrap_or(0);
    let in_stub = (STUB_VA..STUB_VA + PAGE_SIZE).contains(&f.rip);
    if f.cs & 3 != 3 && !in_stub {
        return Err(Stop::Internal(format!(
            "guest supervisor fault: vector {} error {:#x} at {:#x} (cr2 {cr2:#x})",
            f.vector, f.error, f.rip
        )));
    }
    if in_stub {
        // Returning to user mode failed (a frame the workload made unusable).
        return Err(Stop::Signal(SIGSEGV));
    }
    let signal = match f.vector {
        14 => {
            let access = if f.error & 0x10 != 0 {
                Access::Exec
            } else if f.error & 0x2 != 0 {
                Access::Write
            } else {
                Access::Read
            };
            match k.mm.fault(cr2, access) {
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
    if let Some((sig, code, addr)) = signal {
        let regs = vm.regs().map_err(|e| internal("reading registers", e))?;
        let mut user = regs;
        user.rax = f.rax;
        user.rsp = f.rsp;
        let mut ctx = UserCtx {
            regs: user,
            rip: f.rip,
            rflags: f.rflags,
        };
        let mut cpu = VcpuCpu { vcpu: &vm.vcpu };
        k.fault_signal(&mut cpu, &mut ctx, sig, code, addr)?;
        // A handler runs: resume there through the handler's own iretq.
        let m = &k.mm.mem;
        let put = |i: u64, v: u64| {
            m.write_u64(FRAME_BASE + 8 * i, v)
                .ok_or_else(|| Stop::Internal("exception frame outside RAM".into()))
        };
        put(0, ctx.regs.rax)?;
        put(3, ctx.rip)?;
        put(5, (ctx.rflags & USER_FLAGS) | 0x202)?;
        put(6, ctx.regs.rsp)?;
        let mut back = ctx.regs;
        (back.rax, back.rsp, back.rip, back.rflags) = (regs.rax, regs.rsp, regs.rip, regs.rflags);
        vm.set_regs(&back)
            .map_err(|e| internal("setting registers", e))?;
    }
    let flush = k.mm.take_flush();
    if flush.len() > WORK_CAPACITY {
        vm.reload_slot()
            .map_err(|e| internal("memory slot reload", e))?;
    } else if !flush.is_empty() {
        let m = &k.mm.mem;
        for (i, va) in flush.iter().enumerate() {
            m.write_u64(WORK_GPA + 8 * i as u64, *va);
        }
        m.write_u64(DATA_GPA + DATA_COUNT, flush.len() as u64);
    }
    Ok(())
}
