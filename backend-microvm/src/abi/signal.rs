//! Signal structures: `struct kernel_sigaction`, `stack_t`, `siginfo_t`, and the
//! `struct ucontext` (with its `struct sigcontext`) of a signal frame.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::assert_size;

/// The kernel's `struct sigaction` (`rt_sigaction`; 32 bytes, the mask a `u64`).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub(crate) struct SigAction {
    pub(crate) handler: u64,
    pub(crate) flags: u64,
    pub(crate) restorer: u64,
    pub(crate) mask: u64,
}
assert_size!(SigAction, 32);

/// `stack_t` (`sigaltstack`; 24 bytes).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub(crate) struct StackT {
    pub(crate) ss_sp: u64,
    pub(crate) ss_flags: i32,
    pub(crate) _pad: u32,
    pub(crate) ss_size: u64,
}
assert_size!(StackT, 24);

/// `struct signalfd_siginfo` (128 bytes): what a `signalfd` read gives per signal.
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub(crate) struct SignalfdSiginfo {
    pub(crate) ssi_signo: u32,
    pub(crate) ssi_errno: i32,
    pub(crate) ssi_code: i32,
    pub(crate) ssi_pid: u32,
    pub(crate) ssi_uid: u32,
    pub(crate) ssi_fd: i32,
    pub(crate) ssi_tid: u32,
    pub(crate) ssi_band: u32,
    pub(crate) ssi_overrun: u32,
    pub(crate) ssi_trapno: u32,
    pub(crate) ssi_status: i32,
    pub(crate) ssi_int: i32,
    pub(crate) ssi_ptr: u64,
    pub(crate) ssi_utime: u64,
    pub(crate) ssi_stime: u64,
    pub(crate) ssi_addr: u64,
    pub(crate) _pad: [u64; 6],
}
assert_size!(SignalfdSiginfo, 128);

/// `siginfo_t` (128 bytes). Its union is kept as the words the personality fills:
/// `who` is `si_pid` and `si_uid` for a signal from a process, or `si_addr` for a
/// fault; `value` is `si_status` (`SIGCHLD`, in its low half) or `si_value` (queued
/// signals); `utime` and `stime` are `SIGCHLD`'s.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub(crate) struct SigInfo {
    pub(crate) si_signo: i32,
    pub(crate) si_errno: i32,
    pub(crate) si_code: i32,
    pub(crate) _pad: i32,
    pub(crate) who: u64,
    pub(crate) value: u64,
    pub(crate) utime: i64,
    pub(crate) stime: i64,
    pub(crate) _rest: [u8; 80],
}
assert_size!(SigInfo, 128);

impl Default for SigInfo {
    fn default() -> Self {
        SigInfo {
            si_signo: 0,
            si_errno: 0,
            si_code: 0,
            _pad: 0,
            who: 0,
            value: 0,
            utime: 0,
            stime: 0,
            _rest: [0; 80],
        }
    }
}

impl SigInfo {
    /// `si_pid` and `si_uid` as the union's first word holds them.
    pub(crate) fn sender(pid: u32, uid: u32) -> u64 {
        u64::from(pid) | (u64::from(uid) << 32)
    }
}

/// The kernel's `struct sigcontext` on x86-64 (256 bytes): the registers a signal
/// handler's return restores.
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub(crate) struct SigContext {
    pub(crate) r8: u64,
    pub(crate) r9: u64,
    pub(crate) r10: u64,
    pub(crate) r11: u64,
    pub(crate) r12: u64,
    pub(crate) r13: u64,
    pub(crate) r14: u64,
    pub(crate) r15: u64,
    pub(crate) rdi: u64,
    pub(crate) rsi: u64,
    pub(crate) rbp: u64,
    pub(crate) rbx: u64,
    pub(crate) rdx: u64,
    pub(crate) rax: u64,
    pub(crate) rcx: u64,
    pub(crate) rsp: u64,
    pub(crate) rip: u64,
    pub(crate) eflags: u64,
    pub(crate) cs: u16,
    pub(crate) gs: u16,
    pub(crate) fs: u16,
    pub(crate) ss: u16,
    pub(crate) err: u64,
    pub(crate) trapno: u64,
    pub(crate) oldmask: u64,
    pub(crate) cr2: u64,
    pub(crate) fpstate: u64,
    pub(crate) _reserved: [u64; 8],
}
assert_size!(SigContext, 256);

/// The kernel's `struct ucontext` on x86-64 (304 bytes).
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub(crate) struct UContext {
    pub(crate) uc_flags: u64,
    pub(crate) uc_link: u64,
    pub(crate) uc_stack: StackT,
    pub(crate) uc_mcontext: SigContext,
    pub(crate) uc_sigmask: u64,
}
assert_size!(UContext, 304);

#[cfg(test)]
mod tests {
    use std::mem::{offset_of, size_of};

    use zerocopy::IntoBytes;

    use super::*;

    #[test]
    fn layouts_match_the_c_library() {
        assert_eq!(size_of::<StackT>(), size_of::<libc::stack_t>());
        assert_eq!(
            offset_of!(StackT, ss_flags),
            offset_of!(libc::stack_t, ss_flags)
        );
        assert_eq!(
            offset_of!(StackT, ss_size),
            offset_of!(libc::stack_t, ss_size)
        );
        assert_eq!(size_of::<SigInfo>(), size_of::<libc::siginfo_t>());
        assert_eq!(
            size_of::<SignalfdSiginfo>(),
            size_of::<libc::signalfd_siginfo>()
        );
        assert_eq!(
            offset_of!(SignalfdSiginfo, ssi_ptr),
            offset_of!(libc::signalfd_siginfo, ssi_ptr)
        );
        assert_eq!(
            offset_of!(SignalfdSiginfo, ssi_addr),
            offset_of!(libc::signalfd_siginfo, ssi_addr)
        );
        // glibc's ucontext_t begins as the kernel's (its mcontext holds the same
        // registers in the kernel's order: gregs[REG_R8..=REG_EFL]).
        assert_eq!(
            offset_of!(UContext, uc_stack),
            offset_of!(libc::ucontext_t, uc_stack)
        );
        assert_eq!(
            offset_of!(UContext, uc_mcontext),
            offset_of!(libc::ucontext_t, uc_mcontext)
        );
        assert_eq!(offset_of!(SigContext, r8), 8 * libc::REG_R8 as usize);
        assert_eq!(offset_of!(SigContext, rdi), 8 * libc::REG_RDI as usize);
        assert_eq!(offset_of!(SigContext, rsp), 8 * libc::REG_RSP as usize);
        assert_eq!(offset_of!(SigContext, rip), 8 * libc::REG_RIP as usize);
        assert_eq!(offset_of!(SigContext, eflags), 8 * libc::REG_EFL as usize);
        assert_eq!(offset_of!(SigContext, cr2), 8 * libc::REG_CR2 as usize);
    }

    #[test]
    fn siginfo_fields_are_where_the_c_library_reads_them() {
        let si = SigInfo {
            si_signo: 17,
            si_code: 1,
            who: SigInfo::sender(1234, 1000),
            value: 7,
            ..SigInfo::default()
        };
        // SAFETY: siginfo_t is plain data of the same size (checked above); any bytes
        // are a valid siginfo_t.
        let c: libc::siginfo_t = unsafe { std::ptr::read_unaligned(si.as_bytes().as_ptr().cast()) };
        assert_eq!(c.si_signo, 17);
        assert_eq!(c.si_code, 1);
        // SAFETY: the union is read as SIGCHLD's fields or as a fault's address, all
        // plain integers written above (so for each read below).
        let pid = unsafe { c.si_pid() };
        // SAFETY: as above.
        let uid = unsafe { c.si_uid() };
        // SAFETY: as above.
        let status = unsafe { c.si_status() };
        // SAFETY: as above.
        let addr = unsafe { c.si_addr() } as u64;
        assert_eq!((pid, uid, status), (1234, 1000, 7));
        assert_eq!(addr, SigInfo::sender(1234, 1000));
    }
}
