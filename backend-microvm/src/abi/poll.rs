//! `struct pollfd`, `struct epoll_event`.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::assert_size;

/// `struct pollfd` (8 bytes).
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub(crate) struct PollFd {
    pub(crate) fd: i32,
    pub(crate) events: i16,
    pub(crate) revents: i16,
}
assert_size!(PollFd, 8);

/// `struct epoll_event` (12 bytes: packed on x86-64).
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C, packed)]
pub(crate) struct EpollEvent {
    pub(crate) events: u32,
    pub(crate) data: u64,
}
assert_size!(EpollEvent, 12);

#[cfg(test)]
mod tests {
    use std::mem::{offset_of, size_of};

    use super::*;

    #[test]
    fn layouts_match_the_c_library() {
        assert_eq!(size_of::<PollFd>(), size_of::<libc::pollfd>());
        assert_eq!(offset_of!(PollFd, events), offset_of!(libc::pollfd, events));
        assert_eq!(
            offset_of!(PollFd, revents),
            offset_of!(libc::pollfd, revents)
        );
        assert_eq!(size_of::<EpollEvent>(), size_of::<libc::epoll_event>());
        assert_eq!(
            offset_of!(EpollEvent, data),
            offset_of!(libc::epoll_event, u64)
        );
    }
}
