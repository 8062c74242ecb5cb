//! `execve` and `execveat`: the calling process gets a new address space with the
//! program (and its loader) mapped, its other threads end, close-on-exec descriptors
//! close, handled signals go back to their default, and a `vfork` parent goes on.

use super::signal::{Action, SIG_IGN};
use super::{Cpu, Kernel, SysErr, SysResult, UserCtx};
use crate::errno;
use crate::loader::{self, LoadError, MAX_ARGS};
use crate::memory::HeapCharge;
use crate::mm::MapError;
use crate::mm::UserPtr;

/// Most argv or envp entries read.
const MAX_STRINGS: usize = 0x7fff_ffff;

impl Kernel {
    /// Reads a NULL-terminated array of strings (argv, envp), within the `MAX_ARGS`
    /// budget shared by both.
    fn string_array(&mut self, ptr: u64, budget: &mut usize) -> Result<Vec<Vec<u8>>, SysErr> {
        let mut out = Vec::new();
        if ptr == 0 {
            return Ok(out);
        }
        for i in 0..MAX_STRINGS {
            let at = ptr.checked_add(8 * i as u64).ok_or(errno::EFAULT)?;
            let p = self.mm.read(UserPtr::<u64>::new(at))?;
            if p == 0 {
                break;
            }
            let s = self.mm.read_cstr(p, *budget).map_err(|e| match e {
                crate::mm::CStrError::TooLong => SysErr::Errno(errno::E2BIG),
                other => other.into(),
            })?;
            // As Linux counts: the string, its NUL and its pointer.
            *budget = budget.checked_sub(s.len() + 1 + 8).ok_or(errno::E2BIG)?;
            out.push(s);
        }
        Ok(out)
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn sys_execve(
        &mut self,
        cpu: &mut dyn Cpu,
        ctx: &mut UserCtx,
        dirfd: u64,
        path_ptr: u64,
        argv_ptr: u64,
        envp_ptr: u64,
        flags: u64,
    ) -> SysResult {
        const AT_EMPTY_PATH: u64 = 0x1000;
        const AT_SYMLINK_NOFOLLOW: u64 = 0x100;
        if flags & !(AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0 {
            return Err(errno::EINVAL.into());
        }
        let path = self.path_arg(path_ptr)?;
        let mut budget = MAX_ARGS;
        let argv = self.string_array(argv_ptr, &mut budget)?;
        let envp = self.string_array(envp_ptr, &mut budget)?;
        let (base, path) = if path.is_empty() {
            if flags & AT_EMPTY_PATH == 0 {
                return Err(errno::ENOENT.into());
            }
            let f = self.proc.files.get(dirfd)?;
            let loc = f.loc.clone().ok_or(errno::EBADF)?;
            let p = loc.path();
            (self.vfs.root(), p)
        } else {
            (self.base_for(&path, dirfd)?, path)
        };
        let prog = loader::find_exec(&self.vfs, &base, &path, argv).map_err(|e| e.errno())?;
        // The copy of argv kept for /proc/PID/cmdline is the sandbox's memory.
        let argv_charge = HeapCharge::of(&self.mm.mem.budget(), super::task::argv_cost(&prog.argv))
            .map_err(|_| errno::ENOMEM)?;
        let old = self.mm.space();
        let new = self
            .mm
            .new_space()
            .map_err(|_| SysErr::from(MapError::Oom))?;
        self.mm.switch(new);
        let entry = match loader::load(&mut self.mm, &self.vfs, &prog, &envp, self.user, self.vdso)
        {
            Ok(e) => e,
            Err(e) => {
                self.mm.switch(old);
                self.mm.release(new);
                return match e {
                    LoadError::NoMemory => Err(MapError::Oom.into()),
                    other => Err(other.errno().into()),
                };
            }
        };
        // No way back from here.
        let me = self.task.tid;
        for t in self.proc.threads.clone() {
            if t != me {
                self.end_other_thread(t);
            }
        }
        if self.task.clear_tid != 0 {
            let cur = self.mm.space();
            self.mm.switch(old);
            if self
                .mm
                .write(UserPtr::<u32>::new(self.task.clear_tid), &0)
                .is_ok()
            {
                let addr = self.task.clear_tid;
                self.futex_wake_addr(addr, 1, u32::MAX);
            }
            self.mm.switch(cur);
            self.task.clear_tid = 0;
        }
        self.task.space = new;
        self.space_unused(old, self.proc.pid);
        if let Some(parent) = self.task.vfork_parent.take() {
            self.vfork_release(parent, me);
        }
        // POSIX timers end with the program (`exit_itimers`); timerfds are files.
        self.timers.drop_process(self.proc.pid, false);
        let gone = self.proc.files.close_on_exec();
        self.closed(&gone);
        drop(gone);
        for a in self.proc.act.iter_mut() {
            if a.handler != SIG_IGN {
                *a = Action::default();
            }
        }
        self.task.altstack = None;
        self.task.sig_fpu.clear();
        self.task.suspend_mask = None;
        self.proc.exe = prog.exe();
        self.proc.comm = prog.comm();
        // The charge was taken before the old image went (see above).
        self.proc.argv = prog.argv;
        self.proc.argv_charge = Some(argv_charge);
        self.vfs.set_exe(self.proc.pid, &self.proc.exe);
        *ctx = Kernel::fresh_ctx(entry.rip, entry.rsp);
        cpu.set_fs_base(0)?;
        cpu.set_gs_base(0)?;
        cpu.reset_fpu()?;
        self.stirred = true;
        Ok(0)
    }

    /// Ends another thread of the current process (`execve`).
    fn end_other_thread(&mut self, tid: super::task::Tid) {
        if let Some(t) = self.tasks.remove(&tid) {
            self.proc.threads.retain(|x| *x != tid);
            self.proc.cpu_dead += t.cpu;
        }
    }
}
