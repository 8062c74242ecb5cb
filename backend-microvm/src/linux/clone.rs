//! New tasks: `fork`, `vfork` and `clone` (with `CLONE_PIDFD`; `clone3` answers `ENOSYS`, as in the
//! container backend; glibc falls back to `clone`). A thread shares its process's
//! address space, descriptors and dispositions; a new process gets a copy-on-write
//! copy of the address space (or shares it, `CLONE_VM`: `vfork`, `posix_spawn`), a copy
//! of the descriptor table (the open files themselves shared, as Linux does) and of the
//! dispositions. All of them stay in the one VM.

use super::signal::SIGCHLD;
use super::task::{Process, Task, Tid, Wait};
use super::{Block, Cpu, Kernel, Stop, SysErr, SysResult, UserCtx};
use crate::errno;
use crate::memory::HeapCharge;
use crate::mm::UserPtr;

const CSIGNAL: u64 = 0xff;
const CLONE_VM: u64 = 0x100;
const CLONE_FS: u64 = 0x200;
const CLONE_FILES: u64 = 0x400;
const CLONE_SIGHAND: u64 = 0x800;
const CLONE_PIDFD: u64 = 0x1000;
const CLONE_PTRACE: u64 = 0x2000;
const CLONE_VFORK: u64 = 0x4000;
const CLONE_PARENT: u64 = 0x8000;
const CLONE_THREAD: u64 = 0x1_0000;
const CLONE_SYSVSEM: u64 = 0x4_0000;
const CLONE_SETTLS: u64 = 0x8_0000;
const CLONE_PARENT_SETTID: u64 = 0x10_0000;
const CLONE_CHILD_CLEARTID: u64 = 0x20_0000;
const CLONE_DETACHED: u64 = 0x40_0000;
const CLONE_UNTRACED: u64 = 0x80_0000;
const CLONE_CHILD_SETTID: u64 = 0x100_0000;
const CLONE_IO: u64 = 0x8000_0000;
/// Namespace flags: a sandbox makes none (as the container backend's filter).
const CLONE_NEW: u64 = 0x0200_0000 // NEWCGROUP
    | 0x0002_0000 // NEWNS
    | 0x0400_0000 // NEWUTS
    | 0x0800_0000 // NEWIPC
    | 0x1000_0000 // NEWUSER
    | 0x2000_0000 // NEWPID
    | 0x4000_0000 // NEWNET
    | 0x80; // NEWTIME

/// What a `clone` asks for.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CloneArgs {
    pub(crate) flags: u64,
    pub(crate) exit_signal: u64,
    /// New stack pointer (0: the caller's).
    pub(crate) stack: u64,
    pub(crate) parent_tid: u64,
    pub(crate) child_tid: u64,
    pub(crate) tls: u64,
}

impl Kernel {
    /// `fork`.
    pub(crate) fn sys_fork(&mut self, cpu: &mut dyn Cpu, ctx: &UserCtx) -> SysResult {
        self.clone_task(
            cpu,
            ctx,
            CloneArgs {
                exit_signal: SIGCHLD as u64,
                ..Default::default()
            },
        )
    }

    /// `vfork`.
    pub(crate) fn sys_vfork(&mut self, cpu: &mut dyn Cpu, ctx: &UserCtx) -> SysResult {
        self.clone_task(
            cpu,
            ctx,
            CloneArgs {
                flags: CLONE_VM | CLONE_VFORK,
                exit_signal: SIGCHLD as u64,
                ..Default::default()
            },
        )
    }

    /// `clone(flags, stack, parent_tid, child_tid, tls)`.
    pub(crate) fn sys_clone(&mut self, cpu: &mut dyn Cpu, ctx: &UserCtx, a: [u64; 6]) -> SysResult {
        let args = CloneArgs {
            flags: a[0] & !CSIGNAL,
            exit_signal: a[0] & CSIGNAL,
            stack: a[1],
            parent_tid: a[2],
            child_tid: a[3],
            tls: a[4],
        };
        self.clone_task(cpu, ctx, args)
    }

    fn clone_task(&mut self, cpu: &mut dyn Cpu, ctx: &UserCtx, args: CloneArgs) -> SysResult {
        let f = args.flags;
        let thread = f & CLONE_THREAD != 0;
        // The legacy clone returns the pidfd where CLONE_PARENT_SETTID writes the id.
        if f & CLONE_PIDFD != 0 && f & CLONE_PARENT_SETTID != 0 {
            return Err(errno::EINVAL.into());
        }
        // Linux's copy_process checks, in its order: invalid combinations are EINVAL
        // before a namespace is refused (EPERM, as the container's filter does).
        const CLONE_NEWNS: u64 = 0x0002_0000;
        const CLONE_NEWUSER: u64 = 0x1000_0000;
        const CLONE_NEWPID: u64 = 0x2000_0000;
        if f & (CLONE_NEWNS | CLONE_FS) == CLONE_NEWNS | CLONE_FS
            || f & (CLONE_NEWUSER | CLONE_FS) == CLONE_NEWUSER | CLONE_FS
            || (thread && f & CLONE_SIGHAND == 0)
            || (f & CLONE_SIGHAND != 0 && f & CLONE_VM == 0)
            || (thread && f & (CLONE_NEWUSER | CLONE_NEWPID) != 0)
            || (f & CLONE_PIDFD != 0 && f & CLONE_DETACHED != 0)
        {
            return Err(errno::EINVAL.into());
        }
        if f & CLONE_NEW != 0 {
            return Err(errno::EPERM.into());
        }
        if !thread && f & (CLONE_FILES | CLONE_FS | CLONE_SIGHAND) != 0 {
            // Sharing these between processes is not offered (threads share them all).
            return Err(self.unsupported(
                "clone(CLONE_FILES|CLONE_FS|CLONE_SIGHAND without CLONE_THREAD)",
                errno::EINVAL,
            ));
        }
        let _ = (
            CLONE_PTRACE,
            CLONE_SYSVSEM,
            CLONE_DETACHED,
            CLONE_UNTRACED,
            CLONE_IO,
        );
        if let Some(limit) = self.pids_limit {
            if self.task_count() as u64 >= limit {
                if self.live.is_some() {
                    // A live sandbox goes on: the fork fails, as under a pids cgroup.
                    return Err(errno::EAGAIN.into());
                }
                return Err(SysErr::Stop(Stop::PidsLimit));
            }
        }
        // What the child's command line costs, charged before anything is made.
        let argv_charge = match (&self.proc.argv_charge, thread) {
            (_, true) => None,
            (None, false) => None,
            (Some(c), false) => {
                Some(HeapCharge::of(&self.mm.mem.budget(), c.bytes()).map_err(|_| errno::ENOMEM)?)
            }
        };
        let tid = self.new_tid();
        let space = if f & CLONE_VM != 0 {
            self.mm.space()
        } else {
            self.mm.fork()?
        };
        // From here a failure gives the new address space back.
        let r = self
            .clone_into(cpu, ctx, args, tid, space)
            .and_then(|child| self.clone_start(args, tid, child, argv_charge));
        // (A vfork's wait is a Block: the child was made.)
        let failed = !matches!(r, Ok(_) | Err(SysErr::Block(_)));
        if failed && f & CLONE_VM == 0 {
            self.mm.release(space);
        }
        r
    }

    /// The new task `tid` in `space`, its ids written where `args` asks.
    fn clone_into(
        &mut self,
        cpu: &mut dyn Cpu,
        ctx: &UserCtx,
        args: CloneArgs,
        tid: Tid,
        space: crate::mm::SpaceId,
    ) -> Result<Task, SysErr> {
        let f = args.flags;
        let thread = f & CLONE_THREAD != 0;
        let mut regs = ctx.regs;
        regs.rax = 0;
        if args.stack != 0 {
            regs.rsp = args.stack;
        }
        let mut child = Task::new(
            tid,
            if thread { self.proc.pid } else { tid },
            space,
            UserCtx {
                regs,
                rip: ctx.rip,
                rflags: ctx.rflags,
            },
        );
        child.fs_base = if f & CLONE_SETTLS != 0 {
            args.tls
        } else {
            cpu.fs_base()?
        };
        child.gs_base = cpu.gs_base()?;
        child.fpu = Some(cpu.save_fpu()?);
        child.mask = self.task.mask;
        child.nice = self.task.nice;
        child.policy = self.task.policy;
        child.ioprio = self.task.ioprio;
        if f & CLONE_VM == 0 || f & CLONE_VFORK != 0 {
            child.altstack = self.task.altstack;
        }
        if f & CLONE_CHILD_CLEARTID != 0 {
            child.clear_tid = args.child_tid;
        }
        if f & CLONE_PARENT_SETTID != 0 {
            self.mm.write(UserPtr::<u32>::new(args.parent_tid), &tid)?;
        }
        if f & CLONE_CHILD_SETTID != 0 {
            let cur = self.mm.space();
            self.mm.switch(space);
            let r = self.mm.write(UserPtr::<u32>::new(args.child_tid), &tid);
            self.mm.switch(cur);
            r?;
        }
        Ok(child)
    }

    /// Makes the task `child` run: its process (unless a thread), a pidfd for it
    /// (`CLONE_PIDFD`), a `vfork` parent's wait. Fails (a pidfd refused) before it
    /// changes anything.
    fn clone_start(
        &mut self,
        args: CloneArgs,
        tid: Tid,
        mut child: Task,
        argv_charge: Option<HeapCharge>,
    ) -> SysResult {
        let f = args.flags;
        let thread = f & CLONE_THREAD != 0;
        // CLONE_PIDFD: a pidfd in the parent's table only (the child's copy drops it,
        // as Linux copies the table before making it), written where asked.
        let pidfd = if f & CLONE_PIDFD != 0 {
            let p = super::pidfd::PidFd { pid: tid, thread };
            let fd = self.add_pidfd(p, 0)?;
            if let Err(e) = self
                .mm
                .write(UserPtr::<i32>::new(args.parent_tid), &(fd as i32))
            {
                let _ = self.proc.files.close(fd);
                return Err(e.into());
            }
            Some(fd)
        } else {
            None
        };
        if thread {
            self.proc.threads.push(tid);
        } else {
            let p = &self.proc;
            let mut proc = Process {
                pid: tid,
                ppid: if f & CLONE_PARENT != 0 { p.ppid } else { p.pid },
                pgid: p.pgid,
                sid: p.sid,
                threads: vec![tid],
                files: p.files.clone(),
                cwd: p.cwd.clone(),
                cwd_seen: p.cwd_seen,
                umask: p.umask,
                act: p.act,
                pending: 0,
                info: [None; 64],
                exe: p.exe.clone(),
                comm: p.comm.clone(),
                argv: p.argv.clone(),
                argv_charge,
                exit: None,
                exit_signal: (args.exit_signal & CSIGNAL) as i32,
                itimer: None,
                cpu_itimers: [None; 2],
                cpu_dead: std::time::Duration::ZERO,
                cpu_children: std::time::Duration::ZERO,
                exec: p.exec,
                stopped: None,
                stop_report: None,
                continued: false,
                rlimits: p.rlimits,
                dumpable: p.dumpable,
                subreaper: false,
                persona: p.persona,
                membarrier: 0,
            };
            if let Some(fd) = pidfd {
                let _ = proc.files.close(fd);
            }
            self.procs.insert(tid, proc);
        }
        if f & CLONE_VFORK != 0 {
            child.vfork_parent = Some(self.task.tid);
        }
        self.tasks.insert(tid, child);
        self.stirred = true;
        if f & CLONE_VFORK != 0 {
            return Err(SysErr::Block(Block {
                deadline: None,
                wait: Wait::Vfork(tid),
            }));
        }
        Ok(u64::from(tid))
    }
}
