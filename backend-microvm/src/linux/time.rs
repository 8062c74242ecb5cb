//! Clocks and sleeps. The workload sees the host's clocks; its CPU clocks are the vCPU
//! thread's. Sleeps end early when the run is killed or times out.

use std::time::{Duration, Instant};

use super::{Kernel, SysErr, SysResult};
use crate::abi::{Timespec, Timeval};
use crate::errno;
use crate::kick::thread_cpu_time;
use crate::mm::UserPtr;

fn host_clock(id: libc::clockid_t) -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid timespec pointer; the clock id is one of the constants used below.
    unsafe { libc::clock_gettime(id, &mut ts) };
    Duration::new(
        ts.tv_sec.max(0) as u64,
        ts.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}

/// `d` from now; a duration too long for the clock saturates (ten years: the run's
/// deadline or a kill comes first).
pub(crate) fn later(d: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d)
        .unwrap_or(now + Duration::from_secs(10 * 365 * 86400))
}

impl Kernel {
    /// The value of a workload clock: the host's wall and monotonic clocks, and the
    /// CPU clocks of the calling thread and process or, by the ids `clock_getcpuclockid`
    /// and `pthread_getcpuclockid` make, of another process or of another thread of the
    /// caller's process.
    pub(super) fn clock(&self, id: u64) -> Result<Duration, SysErr> {
        let id = id as i32;
        if id < 0 {
            return self.cpu_clock(id);
        }
        Ok(match id {
            libc::CLOCK_REALTIME | libc::CLOCK_REALTIME_COARSE | libc::CLOCK_TAI => {
                host_clock(libc::CLOCK_REALTIME)
            }
            libc::CLOCK_MONOTONIC | libc::CLOCK_MONOTONIC_COARSE | libc::CLOCK_MONOTONIC_RAW => {
                host_clock(libc::CLOCK_MONOTONIC)
            }
            libc::CLOCK_BOOTTIME => host_clock(libc::CLOCK_BOOTTIME),
            libc::CLOCK_PROCESS_CPUTIME_ID => self.proc_cpu(),
            libc::CLOCK_THREAD_CPUTIME_ID => self.task_cpu(),
            _ => return Err(errno::EINVAL.into()),
        })
    }

    /// A dynamic CPU clock id, as Linux encodes it: `~pid << 3`, bit 2 for a thread,
    /// the low bits the kind (profiling, virtual, scheduler time: one CPU time here).
    /// A thread must be of the caller's process, a process must exist (`EINVAL`; the
    /// virtual init, pid 1, exists).
    fn cpu_clock(&self, id: i32) -> Result<Duration, SysErr> {
        const PERTHREAD: i32 = 4;
        if id & 3 == 3 {
            return Err(errno::EINVAL.into());
        }
        let pid = !(id >> 3) as u32;
        if id & PERTHREAD != 0 {
            if pid == 0 || pid == self.task.tid {
                return Ok(self.task_cpu());
            }
            return match self.task_ref(pid) {
                Some(t) if t.pid == self.proc.pid => Ok(t.cpu),
                _ => Err(errno::EINVAL.into()),
            };
        }
        if pid == 0 || pid == self.proc.pid {
            return Ok(self.proc_cpu());
        }
        match self.proc_ref(pid) {
            Some(p) if p.exit.is_none() => {
                let threads: Duration = p
                    .threads
                    .iter()
                    .filter_map(|t| self.task_ref(*t).map(|t| t.cpu))
                    .sum();
                Ok(p.cpu_dead + threads)
            }
            // The virtual init (no guest task holds pid 1) exists and runs no code.
            None if self.is_virtual_init(pid) => Ok(Duration::ZERO),
            _ => Err(errno::EINVAL.into()),
        }
    }

    /// CPU time of the current task.
    pub(crate) fn task_cpu(&self) -> Duration {
        self.task.cpu + thread_cpu_time().saturating_sub(self.cpu_mark)
    }

    /// CPU time of the current process (its threads, those that ended included).
    pub(crate) fn proc_cpu(&self) -> Duration {
        let others: Duration = self
            .proc
            .threads
            .iter()
            .filter(|t| **t != self.task.tid)
            .filter_map(|t| self.tasks.get(t).map(|t| t.cpu))
            .sum();
        self.proc.cpu_dead + others + self.task_cpu()
    }

    /// Reads a `struct timespec` holding a duration.
    pub(crate) fn timespec(&mut self, p: UserPtr<Timespec>) -> Result<Duration, SysErr> {
        Ok(self.mm.read(p)?.duration()?)
    }

    /// The instant at which CLOCK_MONOTONIC reads `t`.
    pub(crate) fn monotonic_to_instant(&self, t: Duration) -> Instant {
        let now = host_clock(libc::CLOCK_MONOTONIC);
        later(t.saturating_sub(now))
    }

    pub(crate) fn sys_clock_gettime(&mut self, id: u64, tp: UserPtr<Timespec>) -> SysResult {
        let d = self.clock(id)?;
        self.mm.write(tp, &d.into())?;
        Ok(0)
    }

    pub(crate) fn sys_clock_getres(&mut self, id: u64, tp: UserPtr<Timespec>) -> SysResult {
        self.clock(id)?;
        if !tp.is_null() {
            self.mm.write(tp, &Duration::from_nanos(1).into())?;
        }
        Ok(0)
    }

    pub(crate) fn sys_gettimeofday(&mut self, tv: UserPtr<Timeval>) -> SysResult {
        if !tv.is_null() {
            let d = host_clock(libc::CLOCK_REALTIME);
            self.mm.write(tv, &d.into())?;
        }
        Ok(0)
    }

    pub(crate) fn sys_time(&mut self, t: UserPtr<u64>) -> SysResult {
        let s = host_clock(libc::CLOCK_REALTIME).as_secs();
        if !t.is_null() {
            self.mm.write(t, &s)?;
        }
        Ok(s)
    }

    /// Sleeps until `until`: done once it passed.
    fn sleep_until(&mut self, until: Option<Instant>) -> SysResult {
        match until {
            Some(u) if Instant::now() >= u => Ok(0),
            other => Err(self.park(other)),
        }
    }

    pub(crate) fn sys_nanosleep(&mut self, req: UserPtr<Timespec>, _rem: u64) -> SysResult {
        let d = self.timespec(req)?;
        let until = self.deadline_after(d);
        self.sleep_until(until)
    }

    pub(crate) fn sys_clock_nanosleep(
        &mut self,
        id: u64,
        flags: u64,
        req: UserPtr<Timespec>,
        _rem: u64,
    ) -> SysResult {
        match id as i32 {
            // No sleeping on a thread's own CPU time, as Linux (which has no nsleep
            // for this clock).
            libc::CLOCK_THREAD_CPUTIME_ID => return Err(errno::EOPNOTSUPP.into()),
            c if c < 0 && c & 4 != 0 => return Err(errno::EINVAL.into()),
            _ => {}
        }
        let d = self.timespec(req)?;
        let now = self.clock(id)?;
        let until = if flags & libc::TIMER_ABSTIME as u64 != 0 {
            match self.retrying {
                Some(dl) => dl,
                None => Some(later(d.saturating_sub(now))),
            }
        } else {
            self.deadline_after(d)
        };
        self.sleep_until(until)
    }

    /// The instant at which CLOCK_REALTIME reads `t`.
    pub(crate) fn realtime_to_instant(&self, t: Duration) -> Instant {
        let now = host_clock(libc::CLOCK_REALTIME);
        later(t.saturating_sub(now))
    }
}
