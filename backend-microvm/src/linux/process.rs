//! Process calls: identity, process groups and sessions, `uname`, limits, usage,
//! interval timers, `arch_prctl`, `prctl`, `getrandom`, CPU affinity.

use std::time::{Duration, Instant};

use super::rw::fill_random;
use super::task::Tid;
use super::{Cpu, Kernel, SysErr, SysResult};
use crate::abi::{Itimerval, Rusage, Sysinfo, Tms, Utsname};
use crate::errno;
use crate::guest::layout::PAGE_SIZE;
use crate::mm::UserPtr;

/// The release `uname` reports.
pub(crate) const RELEASE: &str = "6.1.0-hsb-microvm";

impl Kernel {
    pub(crate) fn sys_uname(&mut self, buf: UserPtr<Utsname>) -> SysResult {
        let u = Utsname {
            sysname: Utsname::field("Linux"),
            nodename: Utsname::field(&self.hostname),
            release: Utsname::field(RELEASE),
            version: Utsname::field("#1 SMP hybrid-sandbox micro-VM"),
            machine: Utsname::field("x86_64"),
            domainname: Utsname::field("(none)"),
        };
        self.mm.write(buf, &u)?;
        Ok(0)
    }

    pub(crate) fn sys_getrusage(&mut self, who: u64, buf: UserPtr<Rusage>) -> SysResult {
        let t = match who as i32 {
            libc::RUSAGE_CHILDREN => self.proc.cpu_children,
            libc::RUSAGE_THREAD => self.task_cpu(),
            libc::RUSAGE_SELF => self.proc_cpu(),
            _ => return Err(errno::EINVAL.into()),
        };
        let r = Rusage {
            ru_utime: t.into(),
            ru_maxrss: (self.mm.mem.peak_bytes() / 1024) as i64,
            ..Rusage::default()
        };
        self.mm.write(buf, &r)?;
        Ok(0)
    }

    pub(crate) fn sys_sysinfo(&mut self, buf: UserPtr<Sysinfo>) -> SysResult {
        let total = self.mm.mem.size();
        let free = total.saturating_sub(self.mm.mem.used_bytes());
        let i = Sysinfo {
            uptime: self.start.elapsed().as_secs() as i64,
            totalram: total,
            freeram: free,
            procs: 1,
            mem_unit: 1,
            ..Sysinfo::default()
        };
        self.mm.write(buf, &i)?;
        Ok(0)
    }

    pub(crate) fn sys_times(&mut self, buf: UserPtr<Tms>) -> SysResult {
        let ticks = |d: Duration| (d.as_millis() / 10) as u64;
        if !buf.is_null() {
            let t = Tms {
                tms_utime: ticks(self.proc_cpu()) as i64,
                tms_cutime: ticks(self.proc.cpu_children) as i64,
                ..Tms::default()
            };
            self.mm.write(buf, &t)?;
        }
        Ok(ticks(self.start.elapsed()) + 1)
    }

    /// `getresuid`/`getresgid`: the real, effective and saved ids are all `id`.
    pub(crate) fn sys_getres(&mut self, ids: [UserPtr<u32>; 3], id: u32) -> SysResult {
        for p in ids {
            self.mm.write(p, &id)?;
        }
        Ok(0)
    }

    /// `set*id`: only to the ids already held.
    pub(crate) fn sys_setid(&mut self, nr: libc::c_long, a: [u64; 6]) -> SysResult {
        let (uid, gid) = self.user;
        let (own, n) = match nr {
            libc::SYS_setuid | libc::SYS_setfsuid => (uid, 1),
            libc::SYS_setgid | libc::SYS_setfsgid => (gid, 1),
            libc::SYS_setreuid => (uid, 2),
            libc::SYS_setregid => (gid, 2),
            libc::SYS_setresuid => (uid, 3),
            libc::SYS_setresgid => (gid, 3),
            _ => return Err(errno::EPERM.into()), // setgroups
        };
        if matches!(nr, libc::SYS_setfsuid | libc::SYS_setfsgid) {
            return Ok(u64::from(own));
        }
        if a[..n]
            .iter()
            .all(|v| *v as u32 == own || *v as u32 == u32::MAX)
        {
            Ok(0)
        } else {
            Err(errno::EPERM.into())
        }
    }

    /// No supplementary groups (as the container backend's workload has none).
    pub(crate) fn sys_getgroups(&mut self, size: u64, _list: u64) -> SysResult {
        if (size as i32) < 0 {
            return Err(errno::EINVAL.into());
        }
        Ok(0)
    }

    pub(crate) fn sys_prctl(&mut self, a: [u64; 6]) -> SysResult {
        const PR_SET_VMA: i32 = 0x5356_4d41;
        let flag = |v: u64| -> Result<bool, SysErr> {
            match v {
                0 => Ok(false),
                1 => Ok(true),
                _ => Err(errno::EINVAL.into()),
            }
        };
        match a[0] as i32 {
            libc::PR_SET_NAME => {
                // Up to 15 bytes, stopping at a NUL (strncpy_from_user).
                self.proc.comm = match self.mm.read_cstr(a[1], 15) {
                    Ok(n) => n,
                    Err(crate::mm::CStrError::TooLong) => self.mm.read_user_vec(a[1], 15)?,
                    Err(e) => return Err(e.into()),
                };
                Ok(0)
            }
            libc::PR_GET_NAME => {
                let mut name = [0u8; 16];
                let n = self.proc.comm.len().min(15);
                name[..n].copy_from_slice(&self.proc.comm[..n]);
                self.mm.write(UserPtr::<[u8; 16]>::new(a[1]), &name)?;
                Ok(0)
            }
            libc::PR_SET_PDEATHSIG => {
                if a[1] > 64 {
                    return Err(errno::EINVAL.into());
                }
                if a[1] != 0 {
                    // Recorded; the signal is not sent when the parent dies.
                    self.note_unsupported("prctl(PR_SET_PDEATHSIG)");
                }
                self.task.pdeathsig = a[1] as i32;
                Ok(0)
            }
            libc::PR_GET_PDEATHSIG => {
                self.mm
                    .write(UserPtr::<i32>::new(a[1]), &self.task.pdeathsig)?;
                Ok(0)
            }
            libc::PR_SET_DUMPABLE => {
                self.proc.dumpable = flag(a[1])?;
                Ok(0)
            }
            libc::PR_GET_DUMPABLE => Ok(u64::from(self.proc.dumpable)),
            libc::PR_SET_KEEPCAPS => flag(a[1]).map(|_| 0),
            libc::PR_GET_KEEPCAPS => Ok(0),
            libc::PR_SET_NO_NEW_PRIVS => {
                if a[1] != 1 || a[2..5].iter().any(|v| *v != 0) {
                    return Err(errno::EINVAL.into());
                }
                Ok(0)
            }
            // The sandbox's processes always run with no_new_privs, as the container's.
            libc::PR_GET_NO_NEW_PRIVS => {
                if a[1..5].iter().any(|v| *v != 0) {
                    return Err(errno::EINVAL.into());
                }
                Ok(1)
            }
            libc::PR_SET_CHILD_SUBREAPER => {
                if a[1] != 0 {
                    // Recorded; orphans still go to the sandbox's init.
                    self.note_unsupported("prctl(PR_SET_CHILD_SUBREAPER)");
                }
                self.proc.subreaper = a[1] != 0;
                Ok(0)
            }
            libc::PR_GET_CHILD_SUBREAPER => {
                self.mm
                    .write(UserPtr::<i32>::new(a[1]), &i32::from(self.proc.subreaper))?;
                Ok(0)
            }
            libc::PR_SET_TIMERSLACK => Ok(0),
            libc::PR_GET_TIMERSLACK => Ok(50_000),
            libc::PR_CAPBSET_READ => {
                if a[1] > 63 {
                    return Err(errno::EINVAL.into());
                }
                Ok(0)
            }
            libc::PR_CAPBSET_DROP => Err(errno::EPERM.into()),
            // Naming anonymous mappings is harmless to accept.
            PR_SET_VMA => Ok(0),
            _ => Err(errno::EINVAL.into()),
        }
    }

    pub(crate) fn sys_arch_prctl(&mut self, cpu: &mut dyn Cpu, code: u64, addr: u64) -> SysResult {
        const ARCH_SET_GS: u64 = 0x1001;
        const ARCH_SET_FS: u64 = 0x1002;
        const ARCH_GET_FS: u64 = 0x1003;
        const ARCH_GET_GS: u64 = 0x1004;
        const ARCH_GET_CPUID: u64 = 0x1011;
        match code {
            ARCH_SET_FS | ARCH_SET_GS => {
                if addr >= crate::guest::layout::USER_TOP {
                    return Err(errno::EPERM.into());
                }
                if code == ARCH_SET_FS {
                    cpu.set_fs_base(addr)?;
                } else {
                    cpu.set_gs_base(addr)?;
                }
                Ok(0)
            }
            ARCH_GET_FS | ARCH_GET_GS => {
                let v = if code == ARCH_GET_FS {
                    cpu.fs_base()?
                } else {
                    cpu.gs_base()?
                };
                self.mm.write(UserPtr::<u64>::new(addr), &v)?;
                Ok(0)
            }
            ARCH_GET_CPUID => Ok(1),
            _ => Err(errno::EINVAL.into()),
        }
    }

    pub(crate) fn sys_getrandom(&mut self, buf: u64, len: u64, flags: u64) -> SysResult {
        const GRND_RANDOM: u64 = 0x2;
        const GRND_INSECURE: u64 = 0x4;
        // Linux's order: unknown flags and RANDOM with INSECURE (EINVAL), then the
        // buffer's range (EFAULT, even for an empty one: import_ubuf's access_ok).
        if flags & !0x7 != 0 || flags & (GRND_RANDOM | GRND_INSECURE) == GRND_RANDOM | GRND_INSECURE
        {
            return Err(errno::EINVAL.into());
        }
        if !super::rw::user_range(buf, len) {
            return Err(errno::EFAULT.into());
        }
        let len = len.min(32 * 1024 * 1024 - 1) as usize;
        // Written page by page: a fault past the first byte ends the call with what
        // was written before it, as Linux's copy does.
        let mut done = 0;
        let mut tmp = vec![0u8; len.min(64 * 1024)];
        while done < len {
            let chunk = &mut tmp[..(len - done).min(64 * 1024)];
            fill_random(chunk);
            let mut at = 0;
            while at < chunk.len() {
                let va = buf + (done + at) as u64;
                let room = (PAGE_SIZE - va % PAGE_SIZE) as usize;
                let n = room.min(chunk.len() - at);
                if let Err(e) = self.mm.write_user(va, &chunk[at..at + n]) {
                    return if done + at > 0 {
                        Ok((done + at) as u64)
                    } else {
                        Err(e.into())
                    };
                }
                at += n;
            }
            done += chunk.len();
        }
        Ok(len as u64)
    }
}

/// `struct itimerval` from a remaining time and an interval.
fn itimerval(left: Duration, every: Duration) -> Itimerval {
    Itimerval {
        it_interval: every.into(),
        it_value: left.into(),
    }
}

impl Kernel {
    /// A process id argument: 0 is the caller; a negative or unknown one `ESRCH`.
    fn pid_arg(&self, pid: u64) -> Result<Tid, SysErr> {
        let pid = pid as i32;
        if pid < 0 {
            return Err(errno::ESRCH.into());
        }
        if pid == 0 {
            return Ok(self.proc.pid);
        }
        let pid = pid as Tid;
        match self.proc_ref(pid) {
            Some(p) if p.exit.is_none() => Ok(pid),
            _ => Err(errno::ESRCH.into()),
        }
    }

    pub(crate) fn sys_getpgid(&mut self, pid: u64) -> SysResult {
        let pid = self.pid_arg(pid)?;
        Ok(u64::from(self.proc_ref(pid).map_or(0, |p| p.pgid)))
    }

    pub(crate) fn sys_getsid(&mut self, pid: u64) -> SysResult {
        let pid = self.pid_arg(pid)?;
        Ok(u64::from(self.proc_ref(pid).map_or(0, |p| p.sid)))
    }

    /// `setpgid`: the caller or one of its children, into a group of its session.
    pub(crate) fn sys_setpgid(&mut self, pid: u64, pgid: u64) -> SysResult {
        if (pgid as i32) < 0 {
            return Err(errno::EINVAL.into());
        }
        let pid = self.pid_arg(pid)?;
        let me = self.proc.pid;
        let sid = self.proc.sid;
        let target = self.proc_ref(pid).ok_or(errno::ESRCH)?;
        if pid != me && target.ppid != me {
            return Err(errno::ESRCH.into());
        }
        if target.sid != sid || target.pid == target.sid {
            return Err(errno::EPERM.into());
        }
        let pgid = if pgid == 0 { pid } else { pgid as Tid };
        if pgid != pid {
            let exists = self.pids().into_iter().any(|p| {
                self.proc_ref(p)
                    .is_some_and(|x| x.pgid == pgid && x.sid == sid && x.exit.is_none())
            });
            if !exists {
                return Err(errno::EPERM.into());
            }
        }
        if let Some(t) = self.proc_mut(pid) {
            t.pgid = pgid;
        }
        Ok(0)
    }

    /// `setsid`: a new session and group, unless the caller leads a group.
    pub(crate) fn sys_setsid(&mut self) -> SysResult {
        let me = self.proc.pid;
        let leads = self.pids().into_iter().any(|p| {
            self.proc_ref(p)
                .is_some_and(|x| x.pgid == me && x.exit.is_none())
        });
        if leads {
            return Err(errno::EPERM.into());
        }
        self.proc.sid = me;
        self.proc.pgid = me;
        Ok(u64::from(me))
    }

    fn itimer_now(&self) -> (Duration, Duration) {
        match self.proc.itimer {
            Some((at, every)) => (
                at.saturating_duration_since(Instant::now())
                    .max(Duration::from_micros(1)),
                every,
            ),
            None => (Duration::ZERO, Duration::ZERO),
        }
    }

    pub(crate) fn sys_alarm(&mut self, secs: u64) -> SysResult {
        let (left, _) = self.itimer_now();
        let old = if left.is_zero() {
            0
        } else {
            left.as_secs() + u64::from(left.subsec_nanos() >= 500_000_000)
        }
        .max(u64::from(!left.is_zero()));
        self.proc.itimer = (secs != 0).then(|| {
            (
                super::time::later(Duration::from_secs(secs.min(u64::from(u32::MAX)))),
                Duration::ZERO,
            )
        });
        self.stirred = true;
        Ok(old)
    }

    /// What is left of `ITIMER_VIRTUAL` (`which` 1) or `ITIMER_PROF` (2), and its
    /// interval. The micro-VM does not tell the guest's user time from the time the VMM
    /// spends on its calls, so both count the process's CPU time (what `getrusage`
    /// reports as user time).
    fn cpu_itimer_now(&self, which: usize) -> (Duration, Duration) {
        match self.proc.cpu_itimers[which - 1] {
            Some((at, every)) => (
                at.saturating_sub(self.proc_cpu())
                    .max(Duration::from_micros(1)),
                every,
            ),
            None => (Duration::ZERO, Duration::ZERO),
        }
    }

    /// Expired CPU-time timers of the current process send `SIGVTALRM` or `SIGPROF`
    /// (and start their next period); checked after its calls and at the scheduler's
    /// kicks, which [`Kernel::next_kick`] arms for the earliest expiry.
    pub(crate) fn fire_cpu_timers(&mut self) {
        if self.proc.cpu_itimers.iter().all(Option::is_none) {
            return;
        }
        let now = self.proc_cpu();
        for (i, signo) in [(0, 26), (1, 27)] {
            let Some((at, every)) = self.proc.cpu_itimers[i] else {
                continue;
            };
            if now < at {
                continue;
            }
            self.proc.cpu_itimers[i] = (!every.is_zero()).then(|| {
                let periods = ((now - at).as_nanos() / every.as_nanos() + 1) as u32;
                (at + every.saturating_mul(periods), every)
            });
            let info = super::signal::SigInfo {
                signo,
                code: 0x80, // SI_KERNEL
                addr: 0,
                status: 0,
            };
            self.signal_process(self.proc.pid, info);
        }
    }

    /// The wall-clock moment before which no CPU-time timer of the current process can
    /// expire (CPU time never runs faster than the clock).
    pub(crate) fn cpu_timer_kick(&self) -> Option<Instant> {
        let at = self
            .proc
            .cpu_itimers
            .iter()
            .flatten()
            .map(|(at, _)| *at)
            .min()?;
        Some(super::time::later(at.saturating_sub(self.proc_cpu())))
    }

    pub(crate) fn sys_getitimer(&mut self, which: u64, cur: UserPtr<Itimerval>) -> SysResult {
        if which > 2 {
            return Err(errno::EINVAL.into());
        }
        if which != 0 {
            let (left, every) = self.cpu_itimer_now(which as usize);
            self.mm.write(cur, &itimerval(left, every))?;
            return Ok(0);
        }
        let (left, every) = self.itimer_now();
        self.mm.write(cur, &itimerval(left, every))?;
        Ok(0)
    }

    pub(crate) fn sys_setitimer(
        &mut self,
        which: u64,
        new: UserPtr<Itimerval>,
        old: UserPtr<Itimerval>,
    ) -> SysResult {
        if which > 2 {
            return Err(errno::EINVAL.into());
        }
        let new = if !new.is_null() {
            Some(self.mm.read(new)?)
        } else {
            None
        };
        if which != 0 {
            let which = which as usize;
            let values = match new {
                Some(it) => Some((it.it_value.duration()?, it.it_interval.duration()?)),
                None => None,
            };
            if !old.is_null() {
                let (left, every) = self.cpu_itimer_now(which);
                self.mm.write(old, &itimerval(left, every))?;
            }
            if let Some((value, every)) = values {
                let base = self.proc_cpu();
                self.proc.cpu_itimers[which - 1] =
                    (!value.is_zero()).then(|| (base + value, every));
                self.stirred = true;
            }
            return Ok(0);
        }
        if !old.is_null() {
            let (left, every) = self.itimer_now();
            self.mm.write(old, &itimerval(left, every))?;
        }
        if let Some(it) = new {
            let every = it.it_interval.duration()?;
            let value = it.it_value.duration()?;
            self.proc.itimer = (!value.is_zero()).then(|| (super::time::later(value), every));
            self.stirred = true;
        }
        Ok(0)
    }
}
