//! `struct termios` (the kernel's, not the C library's), `struct termios2`,
//! `struct winsize`.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::assert_size;

/// Control characters of the kernel's `struct termios` (`NCCS`).
pub(crate) const NCCS: usize = 19;

/// The kernel's `struct termios` (36 bytes; the C library's is larger and converted
/// by it), as `TCGETS`/`TCSETS*` pass it.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub(crate) struct Termios {
    pub(crate) c_iflag: u32,
    pub(crate) c_oflag: u32,
    pub(crate) c_cflag: u32,
    pub(crate) c_lflag: u32,
    pub(crate) c_line: u8,
    pub(crate) c_cc: [u8; NCCS],
}
assert_size!(Termios, 36);

/// `struct termios2` (`TCGETS2`/`TCSETS2*`): the same and the two speeds.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub(crate) struct Termios2 {
    pub(crate) t: Termios,
    pub(crate) c_ispeed: u32,
    pub(crate) c_ospeed: u32,
}
assert_size!(Termios2, 44);

/// `struct winsize` (`TIOCGWINSZ`/`TIOCSWINSZ`).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub(crate) struct Winsize {
    pub(crate) ws_row: u16,
    pub(crate) ws_col: u16,
    pub(crate) ws_xpixel: u16,
    pub(crate) ws_ypixel: u16,
}
assert_size!(Winsize, 8);

#[cfg(test)]
mod tests {
    use std::mem::{offset_of, size_of};

    use super::*;

    #[test]
    fn layouts_match_the_kernel() {
        assert_eq!(size_of::<Termios2>(), size_of::<libc::termios2>());
        assert_eq!(
            offset_of!(Termios2, c_ispeed),
            offset_of!(libc::termios2, c_ispeed)
        );
        assert_eq!(offset_of!(Termios, c_cc), offset_of!(libc::termios2, c_cc));
        assert_eq!(size_of::<Winsize>(), size_of::<libc::winsize>());
        assert_eq!(
            offset_of!(Winsize, ws_col),
            offset_of!(libc::winsize, ws_col)
        );
    }
}
