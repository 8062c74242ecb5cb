//! `struct iovec`, `struct msghdr`, `struct mmsghdr`, `struct ucred`.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::assert_size;

/// `struct iovec` (16 bytes).
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub(crate) struct Iovec {
    pub(crate) iov_base: u64,
    pub(crate) iov_len: u64,
}
assert_size!(Iovec, 16);

/// `struct msghdr` (56 bytes).
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub(crate) struct MsgHdr {
    pub(crate) msg_name: u64,
    pub(crate) msg_namelen: u32,
    pub(crate) _pad0: u32,
    pub(crate) msg_iov: u64,
    pub(crate) msg_iovlen: u64,
    pub(crate) msg_control: u64,
    pub(crate) msg_controllen: u64,
    pub(crate) msg_flags: i32,
    pub(crate) _pad1: u32,
}
assert_size!(MsgHdr, 56);

/// `struct mmsghdr` (64 bytes): a message and the count it moved.
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub(crate) struct MMsgHdr {
    pub(crate) msg_hdr: MsgHdr,
    pub(crate) msg_len: u32,
    pub(crate) _pad: u32,
}
assert_size!(MMsgHdr, 64);

/// `struct ucred` (12 bytes, `SO_PEERCRED`).
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub(crate) struct Ucred {
    pub(crate) pid: i32,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
}
assert_size!(Ucred, 12);

#[cfg(test)]
mod tests {
    use std::mem::{offset_of, size_of};

    use super::*;

    #[test]
    fn layouts_match_the_c_library() {
        assert_eq!(size_of::<Iovec>(), size_of::<libc::iovec>());
        assert_eq!(offset_of!(Iovec, iov_len), offset_of!(libc::iovec, iov_len));
        assert_eq!(size_of::<MsgHdr>(), size_of::<libc::msghdr>());
        macro_rules! same {
            ($($f:ident),*) => { $(assert_eq!(offset_of!(MsgHdr, $f), offset_of!(libc::msghdr, $f), stringify!($f));)* };
        }
        same!(
            msg_name,
            msg_namelen,
            msg_iov,
            msg_iovlen,
            msg_control,
            msg_controllen,
            msg_flags
        );
        assert_eq!(size_of::<MMsgHdr>(), size_of::<libc::mmsghdr>());
        assert_eq!(
            offset_of!(MMsgHdr, msg_len),
            offset_of!(libc::mmsghdr, msg_len)
        );
        assert_eq!(size_of::<Ucred>(), size_of::<libc::ucred>());
        assert_eq!(offset_of!(Ucred, gid), offset_of!(libc::ucred, gid));
    }
}
