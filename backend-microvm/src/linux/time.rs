//! Clocks and sleeps. The workload sees the host's clocks; its CPU clocks are the vCPU
//! thread's. Sleeps end early when the run is killed or times out.

use std::time::{Duration, Instant};

use super::{Kernel, SysErr, SysResult};
use crate::errno;
use crate::kick::thread_cpu_time;

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

fn encode(d: Duration) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&(d.as_secs() as i64).to_le_bytes());
    b[8..].copy_from_slice(&i64::from(d.subsec_nanos()).to_le_bytes());
    b
}

impl Kernel {
    /// The value of a workload clock.
    fn clock(&self, id: u64) -> Result<Duration, SysErr> {
        Ok(match id as i32 {
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

    /// Reads a `struct timespec`.
    pub(crate) fn timespec(&mut self, ptr: u64) -> Result<Duration, SysErr> {
        let raw = self.mm.read_user_vec(ptr, 16)?;
        let sec = i64::from_le_bytes(raw[..8].try_into().unwrap_or_default());
        let nsec = i64::from_le_bytes(raw[8..].try_into().unwrap_or_default());
        if sec < 0 || !(0..1_000_000_000).contains(&nsec) {
            return Err(errno::EINVAL.into());
        }
        Ok(Duration::new(sec as u64, nsec as u32))
    }

    /// The instant at which CLOCK_MONOTONIC reads `t`.
    pub(crate) fn monotonic_to_instant(&self, t: Duration) -> Instant {
        let now = host_clock(libc::CLOCK_MONOTONIC);
        later(t.saturating_sub(now))
    }

    pub(crate) fn sys_clock_gettime(&mut self, id: u64, tp: u64) -> SysResult {
        let d = self.clock(id)?;
        self.mm.write_user(tp, &encode(d))?;
        Ok(0)
    }

    pub(crate) fn sys_clock_getres(&mut self, id: u64, tp: u64) -> SysResult {
        self.clock(id)?;
        if tp != 0 {
            self.mm.write_user(tp, &encode(Duration::from_nanos(1)))?;
        }
        Ok(0)
    }

    pub(crate) fn sys_gettimeofday(&mut self, tv: u64) -> SysResult {
        if tv != 0 {
            let d = host_clock(libc::CLOCK_REALTIME);
            let mut b = [0u8; 16];
            b[..8].copy_from_slice(&(d.as_secs() as i64).to_le_bytes());
            b[8..].copy_from_slice(&i64::from(d.subsec_micros()).to_le_bytes());
            self.mm.write_user(tv, &b)?;
        }
        Ok(0)
    }

    pub(crate) fn sys_time(&mut self, t: u64) -> SysResult {
        let s = host_clock(libc::CLOCK_REALTIME).as_secs();
        if t != 0 {
            self.mm.write_u64(t, s)?;
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

    pub(crate) fn sys_nanosleep(&mut self, req: u64, _rem: u64) -> SysResult {
        let d = self.timespec(req)?;
        let until = self.deadline_after(d);
        self.sleep_until(until)
    }

    pub(crate) fn sys_clock_nanosleep(
        &mut self,
        id: u64,
        flags: u64,
        req: u64,
        _rem: u64,
    ) -> SysResult {
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
