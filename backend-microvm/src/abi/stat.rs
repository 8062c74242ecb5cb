//! `struct stat`, `struct statx`, `struct statfs`.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::assert_size;

/// `struct stat` (144 bytes).
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub(crate) struct Stat {
    pub(crate) st_dev: u64,
    pub(crate) st_ino: u64,
    pub(crate) st_nlink: u64,
    pub(crate) st_mode: u32,
    pub(crate) st_uid: u32,
    pub(crate) st_gid: u32,
    pub(crate) _pad0: u32,
    pub(crate) st_rdev: u64,
    pub(crate) st_size: i64,
    pub(crate) st_blksize: i64,
    pub(crate) st_blocks: i64,
    pub(crate) st_atime: i64,
    pub(crate) st_atime_nsec: i64,
    pub(crate) st_mtime: i64,
    pub(crate) st_mtime_nsec: i64,
    pub(crate) st_ctime: i64,
    pub(crate) st_ctime_nsec: i64,
    pub(crate) _unused: [i64; 3],
}
assert_size!(Stat, 144);

/// `struct statx_timestamp` (16 bytes).
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub(crate) struct StatxTimestamp {
    pub(crate) tv_sec: i64,
    pub(crate) tv_nsec: u32,
    pub(crate) _reserved: i32,
}
assert_size!(StatxTimestamp, 16);

/// `struct statx` (256 bytes).
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub(crate) struct Statx {
    pub(crate) stx_mask: u32,
    pub(crate) stx_blksize: u32,
    pub(crate) stx_attributes: u64,
    pub(crate) stx_nlink: u32,
    pub(crate) stx_uid: u32,
    pub(crate) stx_gid: u32,
    pub(crate) stx_mode: u16,
    pub(crate) _spare0: u16,
    pub(crate) stx_ino: u64,
    pub(crate) stx_size: u64,
    pub(crate) stx_blocks: u64,
    pub(crate) stx_attributes_mask: u64,
    pub(crate) stx_atime: StatxTimestamp,
    pub(crate) stx_btime: StatxTimestamp,
    pub(crate) stx_ctime: StatxTimestamp,
    pub(crate) stx_mtime: StatxTimestamp,
    pub(crate) stx_rdev_major: u32,
    pub(crate) stx_rdev_minor: u32,
    pub(crate) stx_dev_major: u32,
    pub(crate) stx_dev_minor: u32,
    pub(crate) stx_mnt_id: u64,
    pub(crate) stx_dio_mem_align: u32,
    pub(crate) stx_dio_offset_align: u32,
    pub(crate) _spare3: [u64; 12],
}
assert_size!(Statx, 256);

/// `struct statfs` (120 bytes).
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub(crate) struct Statfs {
    pub(crate) f_type: i64,
    pub(crate) f_bsize: i64,
    pub(crate) f_blocks: u64,
    pub(crate) f_bfree: u64,
    pub(crate) f_bavail: u64,
    pub(crate) f_files: u64,
    pub(crate) f_ffree: u64,
    pub(crate) f_fsid: [i32; 2],
    pub(crate) f_namelen: i64,
    pub(crate) f_frsize: i64,
    pub(crate) f_flags: i64,
    pub(crate) _spare: [i64; 4],
}
assert_size!(Statfs, 120);

#[cfg(test)]
mod tests {
    use std::mem::{offset_of, size_of};

    use super::*;

    #[test]
    fn stat_matches_the_c_library() {
        assert_eq!(size_of::<Stat>(), size_of::<libc::stat>());
        macro_rules! same {
            ($($f:ident),*) => { $(assert_eq!(offset_of!(Stat, $f), offset_of!(libc::stat, $f), stringify!($f));)* };
        }
        same!(
            st_dev,
            st_ino,
            st_nlink,
            st_mode,
            st_uid,
            st_gid,
            st_rdev,
            st_size,
            st_blksize,
            st_blocks,
            st_atime,
            st_atime_nsec,
            st_mtime,
            st_mtime_nsec,
            st_ctime,
            st_ctime_nsec
        );
    }

    #[test]
    fn statx_matches_the_c_library() {
        assert_eq!(size_of::<Statx>(), size_of::<libc::statx>());
        macro_rules! same {
            ($($f:ident),*) => { $(assert_eq!(offset_of!(Statx, $f), offset_of!(libc::statx, $f), stringify!($f));)* };
        }
        same!(
            stx_mask,
            stx_blksize,
            stx_attributes,
            stx_nlink,
            stx_uid,
            stx_gid,
            stx_mode,
            stx_ino,
            stx_size,
            stx_blocks,
            stx_attributes_mask,
            stx_atime,
            stx_btime,
            stx_ctime,
            stx_mtime,
            stx_rdev_major,
            stx_rdev_minor,
            stx_dev_major,
            stx_dev_minor,
            stx_mnt_id,
            stx_dio_mem_align,
            stx_dio_offset_align
        );
        assert_eq!(
            size_of::<StatxTimestamp>(),
            size_of::<libc::statx_timestamp>()
        );
        assert_eq!(
            offset_of!(StatxTimestamp, tv_nsec),
            offset_of!(libc::statx_timestamp, tv_nsec)
        );
    }

    #[test]
    fn statfs_matches_the_c_library() {
        assert_eq!(size_of::<Statfs>(), size_of::<libc::statfs>());
        macro_rules! same {
            ($($f:ident),*) => { $(assert_eq!(offset_of!(Statfs, $f), offset_of!(libc::statfs, $f), stringify!($f));)* };
        }
        same!(
            f_type, f_bsize, f_blocks, f_bfree, f_bavail, f_files, f_ffree, f_fsid, f_namelen,
            f_frsize
        );
    }
}
