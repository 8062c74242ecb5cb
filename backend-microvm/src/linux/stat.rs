//! `struct stat` and `struct statx` of the VFS's metadata.

use crate::abi::{Stat, Statx, StatxTimestamp};
use crate::vfs::{Meta, Time};

/// `STATX_BASIC_STATS`: the fields every answer fills.
const STATX_BASIC_STATS: u32 = 0x7ff;

/// `struct stat` of `m`.
/// The major number of device number `d` (glibc's `gnu_dev_major`).
pub(crate) fn major(d: u64) -> u32 {
    (((d >> 8) & 0xfff) | ((d >> 32) & !0xfff)) as u32
}

/// The minor number of device number `d` (glibc's `gnu_dev_minor`).
pub(crate) fn minor(d: u64) -> u32 {
    ((d & 0xff) | ((d >> 12) & !0xff)) as u32
}

pub(crate) fn stat_of(m: &Meta) -> Stat {
    Stat {
        st_dev: m.dev,
        st_ino: m.ino,
        st_nlink: m.nlink,
        st_mode: m.mode,
        st_uid: m.uid,
        st_gid: m.gid,
        st_rdev: m.rdev,
        st_size: m.size as i64,
        st_blksize: m.blksize as i64,
        st_blocks: m.blocks as i64,
        st_atime: m.atime.sec,
        st_atime_nsec: m.atime.nsec,
        st_mtime: m.mtime.sec,
        st_mtime_nsec: m.mtime.nsec,
        st_ctime: m.ctime.sec,
        st_ctime_nsec: m.ctime.nsec,
        ..Stat::default()
    }
}

/// `struct statx` of `m`, every basic field filled (the birth time is not kept: the
/// change time stands in).
pub(crate) fn statx_of(m: &Meta) -> Statx {
    let ts = |t: Time| StatxTimestamp {
        tv_sec: t.sec,
        tv_nsec: t.nsec as u32,
        _reserved: 0,
    };
    Statx {
        stx_mask: STATX_BASIC_STATS,
        stx_blksize: m.blksize as u32,
        stx_nlink: m.nlink as u32,
        stx_uid: m.uid,
        stx_gid: m.gid,
        stx_mode: m.mode as u16,
        stx_ino: m.ino,
        stx_size: m.size,
        stx_blocks: m.blocks,
        stx_atime: ts(m.atime),
        stx_btime: ts(m.ctime),
        stx_ctime: ts(m.ctime),
        stx_mtime: ts(m.mtime),
        stx_rdev_major: major(m.rdev),
        stx_rdev_minor: minor(m.rdev),
        stx_dev_major: major(m.dev),
        stx_dev_minor: minor(m.dev),
        ..Statx::default()
    }
}

#[cfg(test)]
mod tests {
    use zerocopy::IntoBytes;

    use super::*;

    #[test]
    fn stat_matches_what_the_host_kernel_writes() {
        // SAFETY: zeroed stat is valid; stat(2) fills it.
        let mut host: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: valid path and buffer.
        assert_eq!(unsafe { libc::stat(c"/".as_ptr(), &mut host) }, 0);
        let m = Meta::from_host(&host);
        let ours = stat_of(&m);
        // SAFETY: `host` is plain old data of exactly this size (checked in abi).
        let raw = unsafe {
            std::slice::from_raw_parts(
                (&host as *const libc::stat).cast::<u8>(),
                ours.as_bytes().len(),
            )
        };
        assert_eq!(ours.as_bytes(), raw);
    }

    #[test]
    fn statx_matches_what_the_host_kernel_writes() {
        // SAFETY: zeroed statx is valid; statx(2) fills it.
        let mut host: libc::statx = unsafe { std::mem::zeroed() };
        // SAFETY: valid path and buffer.
        let r = unsafe {
            libc::statx(
                libc::AT_FDCWD,
                c"/".as_ptr(),
                0,
                STATX_BASIC_STATS,
                &mut host,
            )
        };
        assert_eq!(r, 0);
        // SAFETY: zeroed stat is valid; stat(2) fills it.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: valid path and buffer.
        assert_eq!(unsafe { libc::stat(c"/".as_ptr(), &mut st) }, 0);
        let ours = statx_of(&Meta::from_host(&st));
        assert_eq!(ours.stx_ino, host.stx_ino);
        assert_eq!(ours.stx_mode, host.stx_mode);
        assert_eq!(ours.stx_size, host.stx_size);
        assert_eq!(ours.stx_nlink, host.stx_nlink);
        assert_eq!(ours.stx_mtime.tv_sec, host.stx_mtime.tv_sec);
        assert_eq!(ours.stx_mtime.tv_nsec, host.stx_mtime.tv_nsec);
        assert_eq!(
            (ours.stx_dev_major, ours.stx_dev_minor),
            (host.stx_dev_major, host.stx_dev_minor)
        );
    }
}
