//! The guest's ABI: the x86-64 Linux structures syscalls pass, as `#[repr(C)]` Rust
//! types. Each is read from or written to the workload's memory in one checked copy
//! of exactly its size (`AddressSpace::read`/`write` on a `UserPtr<T>`), never decoded
//! by hand from byte offsets; the derives (`zerocopy`) prove at compile time that any
//! bytes make a valid value and that a written value has no uninitialised padding,
//! and the tests below check each layout against the host's C library. Validation of
//! what a value may hold (ranges, flags) is a method of its type, next to the layout.
//!
//! This module knows nothing of the personality or the filesystem: both use it.

mod elf;
mod fs;
mod ipc;
mod poll;
mod process;
mod signal;
mod socket;
mod stat;
mod time;
mod tty;

pub(crate) use elf::{Elf64Ehdr, Elf64Phdr};
pub(crate) use fs::{DirentHead, Flock, OpenHow, OPEN_HOW_SIZE_VER0, O_PATH_FLAGS, O_TMPFILE_BIT};
pub(crate) use ipc::{
    IpcPerm, MqAttr, Msginfo, MsqidDs, Sembuf, SemidDs, Seminfo, ShmInfo, ShmidDs, Shminfo,
};
pub(crate) use poll::{EpollEvent, PollFd};
pub(crate) use process::{CapData, CapHeader, Rlimit, Rusage, SchedParam, Sysinfo, Tms, Utsname};
pub(crate) use signal::{SigAction, SigContext, SigInfo, SignalfdSiginfo, StackT, UContext};
pub(crate) use socket::{Iovec, MMsgHdr, MsgHdr, Ucred};
pub(crate) use stat::{Stat, Statfs, Statx, StatxTimestamp};
pub(crate) use time::{Itimerspec, Itimerval, Sigevent, Timespec, Timeval, Utimbuf, UtimeSpec};
pub(crate) use tty::{Termios, Termios2, Winsize, NCCS};

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// A value that crosses the user boundary: every byte pattern is a valid value (so a
/// read cannot make an invalid one) and every byte of it is initialised (so a write
/// leaks nothing of the VMM). Implemented for every type that derives both.
pub(crate) trait Abi: FromBytes + IntoBytes + Immutable + KnownLayout {}

impl<T: FromBytes + IntoBytes + Immutable + KnownLayout> Abi for T {}

/// Checks `size_of::<T>()` at compile time.
macro_rules! assert_size {
    ($t:ty, $n:expr) => {
        const _: () = assert!(std::mem::size_of::<$t>() == $n);
    };
}
pub(crate) use assert_size;
