//! Per-process resource limits (`getrlimit`, `setrlimit`, `prlimit64`) and per-thread
//! scheduling parameters (nice values, policies; `getpriority`, `setpriority`,
//! `sched_*`), kept as Linux keeps them: a soft and a hard value per resource, inherited
//! by children; a nice value and a policy per thread. The sandbox's own limits (memory,
//! CPU time, pids, file size, open files) are where the hard values start, so nothing
//! the workload sets can go past them. Which limits are enforced (and which only
//! reported) is said in the syscall table's notes.

use super::task::Tid;
use super::{Kernel, Limits, SysErr, SysResult};
use crate::abi::{Rlimit, SchedParam, Timespec};
use crate::errno;
use crate::mm::UserPtr;

/// `RLIM_INFINITY`.
pub(crate) const RLIM_INFINITY: u64 = u64::MAX;
/// `RLIM_NLIMITS`.
const RLIM_NLIMITS: usize = 16;
/// `/proc/sys/fs/nr_open`: the most `RLIMIT_NOFILE` can be.
const NR_OPEN: u64 = 1 << 20;

/// The limits of one process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rlimits([Rlimit; RLIM_NLIMITS]);

impl Rlimits {
    /// What the first process starts with: the sandbox's limits, soft and hard.
    pub(crate) fn initial(l: &Limits, pids: Option<u64>) -> Rlimits {
        let both = |v: u64| Rlimit {
            rlim_cur: v,
            rlim_max: v,
        };
        let mut r = [both(RLIM_INFINITY); RLIM_NLIMITS];
        let cpu = l.cpu.map_or(RLIM_INFINITY, |d| d.as_secs().max(1));
        r[libc::RLIMIT_CPU as usize] = both(cpu);
        r[libc::RLIMIT_FSIZE as usize] = both(l.file_size.unwrap_or(RLIM_INFINITY));
        for m in [libc::RLIMIT_DATA, libc::RLIMIT_AS, libc::RLIMIT_RSS] {
            r[m as usize] = both(l.memory);
        }
        r[libc::RLIMIT_STACK as usize] = Rlimit {
            rlim_cur: l.stack,
            rlim_max: RLIM_INFINITY,
        };
        r[libc::RLIMIT_CORE as usize] = both(0);
        r[libc::RLIMIT_NPROC as usize] = both(pids.unwrap_or(RLIM_INFINITY));
        r[libc::RLIMIT_NOFILE as usize] = both(l.open_files);
        r[libc::RLIMIT_MEMLOCK as usize] = both(8 << 20);
        r[libc::RLIMIT_SIGPENDING as usize] = both(64);
        r[libc::RLIMIT_MSGQUEUE as usize] = both(819_200);
        r[libc::RLIMIT_NICE as usize] = both(0);
        r[libc::RLIMIT_RTPRIO as usize] = both(0);
        Rlimits(r)
    }

    /// No limit at all (until [`Rlimits::initial`] replaces it).
    pub(crate) fn unlimited() -> Rlimits {
        Rlimits(
            [Rlimit {
                rlim_cur: RLIM_INFINITY,
                rlim_max: RLIM_INFINITY,
            }; RLIM_NLIMITS],
        )
    }

    /// The limit of `resource`.
    pub(crate) fn get(&self, resource: u32) -> Option<Rlimit> {
        self.0.get(resource as usize).copied()
    }

    /// The soft limit of `resource` (`None`: unlimited).
    pub(crate) fn soft(&self, resource: u32) -> Option<u64> {
        self.get(resource)
            .map(|r| r.rlim_cur)
            .filter(|v| *v != RLIM_INFINITY)
    }

    /// Sets `resource` to `new` as an unprivileged process may: the hard limit only
    /// lowered (`EPERM`), the open-files limit within `nr_open` (`EPERM`).
    fn set(&mut self, resource: u32, new: Rlimit) -> Result<(), SysErr> {
        let old = self.get(resource).ok_or(errno::EINVAL)?;
        if new.rlim_max > old.rlim_max {
            return Err(errno::EPERM.into());
        }
        if resource == libc::RLIMIT_NOFILE && new.rlim_max > NR_OPEN {
            return Err(errno::EPERM.into());
        }
        self.0[resource as usize] = new;
        Ok(())
    }
}

/// `PRIO_PROCESS`, `PRIO_PGRP`, `PRIO_USER`.
const PRIO_PROCESS: u64 = 0;
const PRIO_PGRP: u64 = 1;
const PRIO_USER: u64 = 2;
/// Scheduling policies a process may choose without privilege.
const SCHED_OTHER: i32 = 0;
const SCHED_FIFO: i32 = 1;
const SCHED_RR: i32 = 2;
const SCHED_BATCH: i32 = 3;
const SCHED_IDLE: i32 = 5;
const SCHED_RESET_ON_FORK: i32 = 0x4000_0000;

impl Kernel {
    /// The process a `prlimit64` names: itself (0), or any live one of the sandbox.
    fn limits_of(&mut self, pid: u64) -> Result<Tid, SysErr> {
        let pid = pid as i32;
        if pid == 0 {
            return Ok(self.proc.pid);
        }
        let pid = u32::try_from(pid).map_err(|_| errno::ESRCH)?;
        // A thread id names its process.
        let p = self.task_ref(pid).map_or(pid, |t| t.pid);
        match self.proc_ref(p) {
            Some(x) if x.exit.is_none() => Ok(p),
            _ => Err(errno::ESRCH.into()),
        }
    }

    /// `prlimit64` (and `getrlimit`, `setrlimit`).
    pub(crate) fn sys_prlimit(
        &mut self,
        pid: u64,
        resource: u64,
        new: UserPtr<Rlimit>,
        old: UserPtr<Rlimit>,
    ) -> SysResult {
        let new = if new.is_null() {
            None
        } else {
            Some(self.mm.read(new)?)
        };
        let resource = u32::try_from(resource).map_err(|_| errno::EINVAL)?;
        if resource as usize >= RLIM_NLIMITS {
            return Err(errno::EINVAL.into());
        }
        let new = new.map(Rlimit::checked).transpose()?;
        let pid = self.limits_of(pid)?;
        let Some(p) = self.proc_mut(pid) else {
            return Err(errno::ESRCH.into());
        };
        let current = p.rlimits.get(resource).ok_or(errno::EINVAL)?;
        if let Some(n) = new {
            p.rlimits.set(resource, n)?;
            if resource == libc::RLIMIT_NOFILE {
                p.files.limit = usize::try_from(n.rlim_cur.min(NR_OPEN)).unwrap_or(usize::MAX);
            }
        }
        if !old.is_null() {
            self.mm.write(old, &current)?;
        }
        Ok(0)
    }

    /// The soft `RLIMIT_FSIZE` of the current process (`None`: unlimited).
    pub(crate) fn file_size_limit(&self) -> Option<u64> {
        self.proc.rlimits.soft(libc::RLIMIT_FSIZE)
    }

    /// The tasks a `getpriority`/`setpriority` names.
    fn prio_targets(&self, which: u64, who: u64) -> Result<Vec<Tid>, SysErr> {
        let who = who as u32;
        let tids = self.tids();
        let v: Vec<Tid> = match which {
            PRIO_PROCESS => {
                let t = if who == 0 { self.task.tid } else { who };
                tids.into_iter().filter(|x| *x == t).collect()
            }
            PRIO_PGRP => {
                let g = if who == 0 { self.proc.pgid } else { who };
                tids.into_iter()
                    .filter(|t| {
                        self.task_ref(*t)
                            .and_then(|t| self.proc_ref(t.pid))
                            .is_some_and(|p| p.pgid == g)
                    })
                    .collect()
            }
            PRIO_USER => {
                if who == 0 || who == self.user.0 {
                    tids
                } else {
                    Vec::new()
                }
            }
            _ => return Err(errno::EINVAL.into()),
        };
        if v.is_empty() {
            return Err(errno::ESRCH.into());
        }
        Ok(v)
    }

    /// `getpriority`: `20 - nice` of the highest priority among the targets (the raw
    /// syscall's answer; libc turns it back into a nice value).
    pub(crate) fn sys_getpriority(&mut self, which: u64, who: u64) -> SysResult {
        let nice = self
            .prio_targets(which, who)?
            .into_iter()
            .filter_map(|t| self.task_ref(t).map(|t| t.nice))
            .min()
            .unwrap_or(0);
        Ok((20 - nice) as u64)
    }

    /// `setpriority`: the nice value, clamped to -20..=19, of every target; lowering
    /// one (a higher priority) needs `CAP_SYS_NICE` or `RLIMIT_NICE` (`EACCES`).
    pub(crate) fn sys_setpriority(&mut self, which: u64, who: u64, nice: u64) -> SysResult {
        let targets = self.prio_targets(which, who)?;
        let nice = (nice as i32).clamp(-20, 19);
        let allowed = 20
            - self
                .proc
                .rlimits
                .soft(libc::RLIMIT_NICE)
                .unwrap_or(40)
                .min(40) as i32;
        for t in targets {
            let Some(task) = self.task_mut(t) else {
                continue;
            };
            if nice < task.nice && nice < allowed {
                return Err(errno::EACCES.into());
            }
            task.nice = nice;
        }
        Ok(0)
    }

    /// The task a `sched_*` call names: the caller (0) or a live task; a negative id
    /// is `EINVAL` (`neg`) or `ESRCH`, an unknown one `ESRCH`.
    fn sched_target(&self, pid: u64, neg: errno::Errno) -> Result<Tid, SysErr> {
        let pid = pid as i32;
        if pid < 0 {
            return Err(neg.into());
        }
        if pid == 0 {
            return Ok(self.task.tid);
        }
        let t = pid as Tid;
        if self.task_ref(t).is_some() || self.is_virtual_init(t) {
            Ok(t)
        } else {
            Err(errno::ESRCH.into())
        }
    }

    /// The virtual init (pid 1 when no guest task holds it): a process of the sandbox
    /// that runs no guest code. The `sched_*` getters answer for it as for any process
    /// (its parent's `getppid()` names it); changing it is another process's business
    /// (`EPERM`).
    pub(crate) fn is_virtual_init(&self, t: Tid) -> bool {
        t == super::task::INIT_PID && self.task_ref(t).is_none()
    }

    /// `sched_getscheduler`.
    pub(crate) fn sys_sched_getscheduler(&mut self, pid: u64) -> SysResult {
        let t = self.sched_target(pid, errno::EINVAL)?;
        Ok(self.task_ref(t).map_or(0, |t| t.policy) as u64)
    }

    /// `sched_getparam`: priority 0 (no real-time policy is ever granted).
    pub(crate) fn sys_sched_getparam(&mut self, pid: u64, param: UserPtr<SchedParam>) -> SysResult {
        if param.is_null() {
            return Err(errno::EINVAL.into());
        }
        self.sched_target(pid, errno::EINVAL)?;
        self.mm.write(param, &SchedParam::default())?;
        Ok(0)
    }

    /// `sched_setparam`/`sched_setscheduler`: the normal policies at priority 0; the
    /// real-time ones need privilege (`EPERM`).
    pub(crate) fn sys_sched_set(
        &mut self,
        pid: u64,
        policy: Option<u64>,
        param: UserPtr<SchedParam>,
    ) -> SysResult {
        if param.is_null() {
            return Err(errno::EINVAL.into());
        }
        let t = self.sched_target(pid, errno::EINVAL)?;
        if self.is_virtual_init(t) {
            return Err(errno::EPERM.into());
        }
        let prio = self.mm.read(param)?.sched_priority;
        let current = self.task_ref(t).map_or(SCHED_OTHER, |t| t.policy);
        let policy = match policy {
            None => current,
            Some(p) => (p as i32) & !SCHED_RESET_ON_FORK,
        };
        match (policy, prio) {
            (SCHED_OTHER | SCHED_BATCH | SCHED_IDLE, 0) => {}
            (SCHED_FIFO | SCHED_RR, 1..=99) => return Err(errno::EPERM.into()),
            _ => return Err(errno::EINVAL.into()),
        }
        if let Some(task) = self.task_mut(t) {
            task.policy = policy;
        }
        Ok(0)
    }

    /// `sched_rr_get_interval`: the time slice.
    pub(crate) fn sys_sched_rr_get_interval(
        &mut self,
        pid: u64,
        tp: UserPtr<Timespec>,
    ) -> SysResult {
        self.sched_target(pid, errno::EINVAL)?;
        self.mm.write(tp, &super::TIME_SLICE.into())?;
        Ok(0)
    }

    /// `sched_getaffinity`: CPU 0, the guest's one vCPU; `len` must hold the mask in
    /// whole words.
    pub(crate) fn sys_sched_getaffinity(
        &mut self,
        pid: u64,
        len: u64,
        mask: UserPtr<u64>,
    ) -> SysResult {
        self.sched_target(pid, errno::ESRCH)?;
        if len < 8 || len % 8 != 0 {
            return Err(errno::EINVAL.into());
        }
        self.mm.write(mask, &1)?;
        Ok(8)
    }

    /// `sched_setaffinity`: a mask must allow CPU 0 (`EINVAL` otherwise).
    pub(crate) fn sys_sched_setaffinity(
        &mut self,
        pid: u64,
        len: u64,
        mask: UserPtr<u8>,
    ) -> SysResult {
        let t = self.sched_target(pid, errno::ESRCH)?;
        if self.is_virtual_init(t) {
            return Err(errno::EPERM.into());
        }
        if len == 0 {
            return Err(errno::EINVAL.into());
        }
        let first = self.mm.read(mask)?;
        if first & 1 == 0 {
            return Err(errno::EINVAL.into());
        }
        Ok(0)
    }
}

impl Rlimits {
    /// Soft and hard values, by resource (`savefile`).
    pub(crate) fn pairs(&self) -> Vec<(u64, u64)> {
        self.0.iter().map(|r| (r.rlim_cur, r.rlim_max)).collect()
    }

    /// Limits read back: `RLIM_NLIMITS` pairs, each soft at most its hard.
    pub(crate) fn from_pairs(p: &[(u64, u64)]) -> Option<Rlimits> {
        if p.len() != RLIM_NLIMITS || p.iter().any(|(c, m)| c > m) {
            return None;
        }
        let mut r = [Rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        }; RLIM_NLIMITS];
        for (i, (c, m)) in p.iter().enumerate() {
            r[i] = Rlimit {
                rlim_cur: *c,
                rlim_max: *m,
            };
        }
        Some(Rlimits(r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hard_limits_only_go_down() {
        let l = Limits {
            file_size: Some(1 << 20),
            deadline: None,
            cpu: None,
            open_files: 256,
            memory: 64 << 20,
            stack: 8 << 20,
        };
        let mut r = Rlimits::initial(&l, Some(32));
        let fsize = libc::RLIMIT_FSIZE;
        let set = |c, m| Rlimit {
            rlim_cur: c,
            rlim_max: m,
        };
        assert!(r.set(fsize, set(1024, 1 << 20)).is_ok());
        assert_eq!(
            r.get(fsize),
            Some(set(1024, 1 << 20)),
            "the hard limit stays"
        );
        assert!(
            r.set(fsize, set(1 << 20, 1 << 20)).is_ok(),
            "the soft one comes back"
        );
        assert!(r.set(fsize, set(1, 2 << 20)).is_err());
        assert!(r.set(libc::RLIMIT_NOFILE, set(16, 256)).is_ok());
        assert_eq!(r.soft(libc::RLIMIT_NOFILE), Some(16));
        assert_eq!(r.soft(libc::RLIMIT_LOCKS), None);
    }
}
