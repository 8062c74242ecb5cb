//! `struct open_how`, `struct flock`, and the fixed head of a directory record.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::assert_size;
use crate::errno::{self, Errno};

/// `struct open_how` (`openat2`; 24 bytes in its first version, the size the caller
/// passes says which version it knows).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub(crate) struct OpenHow {
    pub(crate) flags: u64,
    pub(crate) mode: u64,
    pub(crate) resolve: u64,
}
assert_size!(OpenHow, 24);

/// The size of the first `struct open_how`.
pub(crate) const OPEN_HOW_SIZE_VER0: usize = 24;

/// `RESOLVE_*` flags Linux knows.
const RESOLVE_ALL: u64 = 0x3f;
const RESOLVE_BENEATH: u64 = 0x08;
const RESOLVE_IN_ROOT: u64 = 0x10;

impl OpenHow {
    /// What `openat2` accepts (else `EINVAL`, as Linux's `build_open_how`): flags that
    /// fit an `int`, known `RESOLVE_*` bits and not both `BENEATH` and `IN_ROOT`,
    /// permission bits only in `mode`, and a mode only when a file may be created.
    pub(crate) fn checked(self) -> Result<OpenHow, Errno> {
        // Linux's test (`build_open_flags`): O_CREAT or __O_TMPFILE alone, not all of
        // O_TMPFILE, whose bits include O_DIRECTORY.
        let creates = self.flags as i32 & (libc::O_CREAT | O_TMPFILE_BIT) != 0;
        // Linux's VALID_OPEN_FLAGS (x86-64): the access mode and O_CREAT up to
        // __O_TMPFILE; any other bit is EINVAL for openat2 (open ignores them).
        const VALID_OPEN_FLAGS: u64 = 0x7f_ffc3;
        if self.flags & !VALID_OPEN_FLAGS != 0
            || self.resolve & !RESOLVE_ALL != 0
            || self.resolve & (RESOLVE_BENEATH | RESOLVE_IN_ROOT)
                == RESOLVE_BENEATH | RESOLVE_IN_ROOT
            || self.mode & !0o7777 != 0
            || (self.mode != 0 && !creates)
            || (self.flags as i32 & libc::O_PATH != 0 && self.flags as i32 & !O_PATH_FLAGS != 0)
        {
            return Err(errno::EINVAL);
        }
        Ok(self)
    }
}

/// `__O_TMPFILE`: `O_TMPFILE` without the `O_DIRECTORY` its value includes.
pub(crate) const O_TMPFILE_BIT: i32 = libc::O_TMPFILE & !libc::O_DIRECTORY;

/// The flags an `O_PATH` open keeps (Linux's `O_PATH_FLAGS`): `open` drops the others,
/// `openat2` refuses them.
pub(crate) const O_PATH_FLAGS: i32 =
    libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;

/// `struct flock` (32 bytes).
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub(crate) struct Flock {
    pub(crate) l_type: i16,
    pub(crate) l_whence: i16,
    pub(crate) _pad0: u32,
    pub(crate) l_start: i64,
    pub(crate) l_len: i64,
    pub(crate) l_pid: i32,
    pub(crate) _pad1: u32,
}
assert_size!(Flock, 32);

/// The fixed head of a `struct linux_dirent64` and of the old `struct linux_dirent`
/// (18 bytes, packed; the name, and the type byte, follow).
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C, packed)]
pub(crate) struct DirentHead {
    pub(crate) d_ino: u64,
    pub(crate) d_off: i64,
    pub(crate) d_reclen: u16,
}
assert_size!(DirentHead, 18);

#[cfg(test)]
mod tests {
    use std::mem::{offset_of, size_of};

    use super::*;

    #[test]
    fn layouts_match_the_c_library() {
        assert_eq!(size_of::<OpenHow>(), size_of::<libc::open_how>());
        assert_eq!(
            offset_of!(OpenHow, resolve),
            offset_of!(libc::open_how, resolve)
        );
        assert_eq!(size_of::<Flock>(), size_of::<libc::flock>());
        macro_rules! same {
            ($($f:ident),*) => { $(assert_eq!(offset_of!(Flock, $f), offset_of!(libc::flock, $f), stringify!($f));)* };
        }
        same!(l_type, l_whence, l_start, l_len, l_pid);
        // The record's type byte follows the head, where glibc's dirent64 has d_type.
        assert_eq!(size_of::<DirentHead>(), offset_of!(libc::dirent64, d_type));
        assert_eq!(
            offset_of!(DirentHead, d_reclen),
            offset_of!(libc::dirent64, d_reclen)
        );
    }

    #[test]
    fn open_how_is_checked_as_linux_does() {
        let how = |flags: i32, mode, resolve| OpenHow {
            flags: flags as u32 as u64,
            mode,
            resolve,
        };
        assert!(how(libc::O_RDONLY, 0, 0).checked().is_ok());
        assert!(how(libc::O_CREAT, 0o644, 0x08).checked().is_ok());
        assert_eq!(how(libc::O_RDONLY, 0o644, 0).checked(), Err(errno::EINVAL));
        assert_eq!(how(libc::O_CREAT, 0o10000, 0).checked(), Err(errno::EINVAL));
        assert_eq!(how(0, 0, 0x40).checked(), Err(errno::EINVAL));
        assert_eq!(how(0, 0, 0x18).checked(), Err(errno::EINVAL));
        assert_eq!(
            OpenHow {
                flags: 1 << 32,
                ..Default::default()
            }
            .checked(),
            Err(errno::EINVAL)
        );
    }
}
