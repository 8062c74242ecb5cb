//! Process structures: `struct rlimit`, `struct rusage`, `struct utsname`,
//! `struct sysinfo`, `struct tms`, capability headers and sets, `struct sched_param`.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::{assert_size, Timeval};
use crate::errno::{self, Errno};

/// `struct rlimit` (16 bytes; `RLIM_INFINITY` is `u64::MAX`).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub(crate) struct Rlimit {
    pub(crate) rlim_cur: u64,
    pub(crate) rlim_max: u64,
}
assert_size!(Rlimit, 16);

impl Rlimit {
    /// A limit to set: the soft value may not exceed the hard one (`EINVAL`).
    pub(crate) fn checked(self) -> Result<Rlimit, Errno> {
        if self.rlim_cur > self.rlim_max {
            return Err(errno::EINVAL);
        }
        Ok(self)
    }
}

/// `struct rusage` (144 bytes).
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub(crate) struct Rusage {
    pub(crate) ru_utime: Timeval,
    pub(crate) ru_stime: Timeval,
    pub(crate) ru_maxrss: i64,
    pub(crate) ru_ixrss: i64,
    pub(crate) ru_idrss: i64,
    pub(crate) ru_isrss: i64,
    pub(crate) ru_minflt: i64,
    pub(crate) ru_majflt: i64,
    pub(crate) ru_nswap: i64,
    pub(crate) ru_inblock: i64,
    pub(crate) ru_oublock: i64,
    pub(crate) ru_msgsnd: i64,
    pub(crate) ru_msgrcv: i64,
    pub(crate) ru_nsignals: i64,
    pub(crate) ru_nvcsw: i64,
    pub(crate) ru_nivcsw: i64,
}
assert_size!(Rusage, 144);

/// Length of each `struct utsname` field, its NUL included.
const UTS_LEN: usize = 65;

/// `struct utsname` (390 bytes).
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub(crate) struct Utsname {
    pub(crate) sysname: [u8; UTS_LEN],
    pub(crate) nodename: [u8; UTS_LEN],
    pub(crate) release: [u8; UTS_LEN],
    pub(crate) version: [u8; UTS_LEN],
    pub(crate) machine: [u8; UTS_LEN],
    pub(crate) domainname: [u8; UTS_LEN],
}
assert_size!(Utsname, 390);

impl Utsname {
    /// A field holding `s` (cut to 64 bytes), NUL-padded.
    pub(crate) fn field(s: &str) -> [u8; UTS_LEN] {
        let mut f = [0u8; UTS_LEN];
        let n = s.len().min(UTS_LEN - 1);
        f[..n].copy_from_slice(&s.as_bytes()[..n]);
        f
    }
}

/// `struct sysinfo` (112 bytes).
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub(crate) struct Sysinfo {
    pub(crate) uptime: i64,
    pub(crate) loads: [u64; 3],
    pub(crate) totalram: u64,
    pub(crate) freeram: u64,
    pub(crate) sharedram: u64,
    pub(crate) bufferram: u64,
    pub(crate) totalswap: u64,
    pub(crate) freeswap: u64,
    pub(crate) procs: u16,
    pub(crate) _pad: u16,
    pub(crate) _pad2: u32,
    pub(crate) totalhigh: u64,
    pub(crate) freehigh: u64,
    pub(crate) mem_unit: u32,
    pub(crate) _f: [u8; 4],
}
assert_size!(Sysinfo, 112);

/// `struct tms` (32 bytes, in clock ticks).
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub(crate) struct Tms {
    pub(crate) tms_utime: i64,
    pub(crate) tms_stime: i64,
    pub(crate) tms_cutime: i64,
    pub(crate) tms_cstime: i64,
}
assert_size!(Tms, 32);

/// `struct __user_cap_header_struct` (8 bytes).
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub(crate) struct CapHeader {
    pub(crate) version: u32,
    pub(crate) pid: i32,
}
assert_size!(CapHeader, 8);

/// `struct __user_cap_data_struct` (12 bytes; versions 2 and 3 pass two).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub(crate) struct CapData {
    pub(crate) effective: u32,
    pub(crate) permitted: u32,
    pub(crate) inheritable: u32,
}
assert_size!(CapData, 12);

/// `struct sched_param` (4 bytes).
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub(crate) struct SchedParam {
    pub(crate) sched_priority: i32,
}
assert_size!(SchedParam, 4);

#[cfg(test)]
mod tests {
    use std::mem::{offset_of, size_of};

    use super::*;

    #[test]
    fn layouts_match_the_c_library() {
        assert_eq!(size_of::<Rlimit>(), size_of::<libc::rlimit>());
        assert_eq!(size_of::<Rusage>(), size_of::<libc::rusage>());
        assert_eq!(
            offset_of!(Rusage, ru_maxrss),
            offset_of!(libc::rusage, ru_maxrss)
        );
        assert_eq!(
            offset_of!(Rusage, ru_nivcsw),
            offset_of!(libc::rusage, ru_nivcsw)
        );
        assert_eq!(size_of::<Utsname>(), size_of::<libc::utsname>());
        assert_eq!(
            offset_of!(Utsname, machine),
            offset_of!(libc::utsname, machine)
        );
        assert_eq!(size_of::<Sysinfo>(), size_of::<libc::sysinfo>());
        macro_rules! same {
            ($($f:ident),*) => { $(assert_eq!(offset_of!(Sysinfo, $f), offset_of!(libc::sysinfo, $f), stringify!($f));)* };
        }
        same!(uptime, loads, totalram, freeram, procs, totalhigh, freehigh, mem_unit);
        assert_eq!(size_of::<Tms>(), size_of::<libc::tms>());
        assert_eq!(size_of::<SchedParam>(), size_of::<libc::sched_param>());
        assert_eq!(Utsname::field("Linux")[..6], *b"Linux\0");
        assert_eq!(Utsname::field(&"x".repeat(99))[64], 0);
    }

    #[test]
    fn a_soft_limit_above_the_hard_one_is_refused() {
        let r = |c, m| Rlimit {
            rlim_cur: c,
            rlim_max: m,
        };
        assert_eq!(r(1, 2).checked(), Ok(r(1, 2)));
        assert_eq!(r(3, 2).checked(), Err(errno::EINVAL));
    }
}
