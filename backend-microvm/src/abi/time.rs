//! `struct timespec`, `struct timeval`, `struct itimerval`.

use std::time::Duration;

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::assert_size;
use crate::errno::{self, Errno};

const NSEC_PER_SEC: i64 = 1_000_000_000;
const USEC_PER_SEC: i64 = 1_000_000;
/// `utimensat`: set to the current time.
const UTIME_NOW: i64 = (1 << 30) - 1;
/// `utimensat`: leave unchanged.
const UTIME_OMIT: i64 = (1 << 30) - 2;

/// `struct timespec` (16 bytes).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub(crate) struct Timespec {
    pub(crate) tv_sec: i64,
    pub(crate) tv_nsec: i64,
}
assert_size!(Timespec, 16);

impl Timespec {
    /// The duration it holds: `EINVAL` for a negative one or nanoseconds out of
    /// `0..1e9`, as Linux's `timespec64_valid`.
    pub(crate) fn duration(&self) -> Result<Duration, Errno> {
        if self.tv_sec < 0 || !(0..NSEC_PER_SEC).contains(&self.tv_nsec) {
            return Err(errno::EINVAL);
        }
        Ok(Duration::new(self.tv_sec as u64, self.tv_nsec as u32))
    }

    /// As a time to set with `utimensat` (`UTIME_NOW`, `UTIME_OMIT` or a time).
    pub(crate) fn utime(&self) -> Result<UtimeSpec, Errno> {
        match self.tv_nsec {
            UTIME_NOW => Ok(UtimeSpec::Now),
            UTIME_OMIT => Ok(UtimeSpec::Omit),
            0..NSEC_PER_SEC => Ok(UtimeSpec::At(self.tv_sec, self.tv_nsec)),
            _ => Err(errno::EINVAL),
        }
    }
}

impl From<Duration> for Timespec {
    fn from(d: Duration) -> Self {
        Timespec {
            tv_sec: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: i64::from(d.subsec_nanos()),
        }
    }
}

/// What `utimensat` is asked to do with one of the two times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UtimeSpec {
    /// The current time.
    Now,
    /// Leave it.
    Omit,
    /// Seconds and nanoseconds.
    At(i64, i64),
}

/// `struct timeval` (16 bytes).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub(crate) struct Timeval {
    pub(crate) tv_sec: i64,
    pub(crate) tv_usec: i64,
}
assert_size!(Timeval, 16);

impl Timeval {
    /// The duration it holds: `EINVAL` for a negative one or microseconds out of
    /// `0..1e6`.
    pub(crate) fn duration(&self) -> Result<Duration, Errno> {
        if self.tv_sec < 0 || !(0..USEC_PER_SEC).contains(&self.tv_usec) {
            return Err(errno::EINVAL);
        }
        Ok(Duration::new(
            self.tv_sec as u64,
            self.tv_usec as u32 * 1000,
        ))
    }

    /// Seconds and nanoseconds of a time to set (`utimes`): `EINVAL` for microseconds
    /// out of range (the seconds may be negative: a time before 1970).
    pub(crate) fn time(&self) -> Result<(i64, i64), Errno> {
        if !(0..USEC_PER_SEC).contains(&self.tv_usec) {
            return Err(errno::EINVAL);
        }
        Ok((self.tv_sec, self.tv_usec * 1000))
    }
}

impl From<Duration> for Timeval {
    fn from(d: Duration) -> Self {
        Timeval {
            tv_sec: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            tv_usec: i64::from(d.subsec_micros()),
        }
    }
}

/// `struct itimerval` (32 bytes): the interval, then the time left.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub(crate) struct Itimerval {
    pub(crate) it_interval: Timeval,
    pub(crate) it_value: Timeval,
}
assert_size!(Itimerval, 32);

/// `struct itimerspec` (32 bytes): the interval, then the time left (`timerfd_*`,
/// `timer_*`).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub(crate) struct Itimerspec {
    pub(crate) it_interval: Timespec,
    pub(crate) it_value: Timespec,
}
assert_size!(Itimerspec, 32);

/// `struct sigevent` as `timer_create` reads it (64 bytes): the value the signal
/// carries, the signal, how to notify, and the thread for `SIGEV_THREAD_ID`.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub(crate) struct Sigevent {
    pub(crate) sigev_value: u64,
    pub(crate) sigev_signo: i32,
    pub(crate) sigev_notify: i32,
    pub(crate) sigev_tid: i32,
    pub(crate) _rest: [u8; 44],
}
assert_size!(Sigevent, 64);

/// `struct utimbuf` (`utime`; 16 bytes, whole seconds).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub(crate) struct Utimbuf {
    pub(crate) actime: i64,
    pub(crate) modtime: i64,
}
assert_size!(Utimbuf, 16);

#[cfg(test)]
mod tests {
    use std::mem::{offset_of, size_of};

    use super::*;

    #[test]
    fn layouts_match_the_c_library() {
        assert_eq!(size_of::<Timespec>(), size_of::<libc::timespec>());
        assert_eq!(
            offset_of!(Timespec, tv_nsec),
            offset_of!(libc::timespec, tv_nsec)
        );
        assert_eq!(size_of::<Timeval>(), size_of::<libc::timeval>());
        assert_eq!(
            offset_of!(Timeval, tv_usec),
            offset_of!(libc::timeval, tv_usec)
        );
        assert_eq!(size_of::<Itimerval>(), size_of::<libc::itimerval>());
        assert_eq!(
            offset_of!(Itimerval, it_value),
            offset_of!(libc::itimerval, it_value)
        );
        assert_eq!(size_of::<Itimerspec>(), size_of::<libc::itimerspec>());
        assert_eq!(
            offset_of!(Itimerspec, it_value),
            offset_of!(libc::itimerspec, it_value)
        );
        assert_eq!(size_of::<Sigevent>(), size_of::<libc::sigevent>());
        assert_eq!(
            offset_of!(Sigevent, sigev_notify),
            offset_of!(libc::sigevent, sigev_notify)
        );
        assert_eq!(size_of::<Utimbuf>(), size_of::<libc::utimbuf>());
        assert_eq!(
            offset_of!(Utimbuf, modtime),
            offset_of!(libc::utimbuf, modtime)
        );
    }

    #[test]
    fn validation_is_linux_s() {
        let ts = |s, n| Timespec {
            tv_sec: s,
            tv_nsec: n,
        };
        assert_eq!(ts(1, 5).duration(), Ok(Duration::new(1, 5)));
        assert_eq!(ts(-1, 0).duration(), Err(errno::EINVAL));
        assert_eq!(ts(0, 1_000_000_000).duration(), Err(errno::EINVAL));
        assert_eq!(ts(0, -1).duration(), Err(errno::EINVAL));
        assert_eq!(ts(7, UTIME_OMIT).utime(), Ok(UtimeSpec::Omit));
        assert_eq!(ts(-3, 2).utime(), Ok(UtimeSpec::At(-3, 2)));
        let tv = |s, u| Timeval {
            tv_sec: s,
            tv_usec: u,
        };
        assert_eq!(tv(2, 999_999).duration(), Ok(Duration::new(2, 999_999_000)));
        assert_eq!(tv(0, 1_000_000).duration(), Err(errno::EINVAL));
        assert_eq!(tv(-5, 1).time(), Ok((-5, 1000)));
        assert_eq!(Timespec::from(Duration::MAX).tv_sec, i64::MAX);
    }
}
