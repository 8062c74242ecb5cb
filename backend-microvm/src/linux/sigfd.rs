//! `signalfd`: a descriptor from which a thread reads its pending signals of a mask
//! (the thread's own, then its process's), as `sigwaitinfo` takes them, one
//! `struct signalfd_siginfo` each; readable (`poll`, `epoll`) while one is pending
//! for the thread that looks. Signals are taken through the one dequeue path
//! ([`Kernel::take_pending`]), so a POSIX timer's overruns and stale signals are
//! treated as a delivery treats them.

use std::cell::Cell;

use zerocopy::IntoBytes;

use super::fd::FileKind;
use super::signal::{bit, SigInfo, SIGCHLD, SIGKILL, SIGSTOP};
use super::{Kernel, SysErr, SysResult};
use crate::abi::SignalfdSiginfo;
use crate::errno;
use crate::mm::UserPtr;

/// `sizeof(struct signalfd_siginfo)`.
const SIGINFO_SIZE: usize = 128;

/// What one taken signal reads as, field by field as Linux's `signalfd_copyinfo`
/// fills them for the signal's kind.
fn to_signalfd(i: &SigInfo) -> SignalfdSiginfo {
    let mut s = SignalfdSiginfo {
        ssi_signo: i.signo as u32,
        ssi_code: i.code,
        ..SignalfdSiginfo::default()
    };
    let (low, high) = (i.addr as u32, (i.addr >> 32) as u32);
    match i.code {
        super::timers::SI_TIMER => {
            s.ssi_tid = low;
            s.ssi_overrun = high;
            s.ssi_int = i.status as i32;
            s.ssi_ptr = i.status;
        }
        // From a process (kill, tkill, sigqueue; the kernel's own, SI_KERNEL, has
        // none): pid and uid, and what sigqueue sent.
        c if c <= 0 || c == 0x80 => {
            s.ssi_pid = low;
            s.ssi_uid = high;
            s.ssi_int = i.status as i32;
            s.ssi_ptr = i.status;
        }
        _ if i.signo == SIGCHLD => {
            s.ssi_pid = low;
            s.ssi_uid = high;
            s.ssi_status = i.status as u32 as i32;
        }
        // A fault's address.
        _ => s.ssi_addr = i.addr,
    }
    s
}

impl Kernel {
    /// `signalfd4` (and `signalfd`, with no flags): a new descriptor for `fd` = -1,
    /// or a new mask for the signalfd `fd`.
    pub(crate) fn sys_signalfd4(
        &mut self,
        fd: u64,
        mask: UserPtr<u64>,
        size: u64,
        flags: u64,
    ) -> SysResult {
        if size != 8 {
            return Err(errno::EINVAL.into());
        }
        let set = self.mm.read(mask)?;
        let allowed = (libc::SFD_CLOEXEC | libc::SFD_NONBLOCK) as u64;
        if flags & !allowed != 0 {
            return Err(errno::EINVAL.into());
        }
        let set = set & !(bit(SIGKILL) | bit(SIGSTOP));
        if fd as i32 == -1 {
            return self.add_anon(FileKind::SignalFd(Cell::new(set)), libc::O_RDWR, flags);
        }
        let f = self.proc.files.get(fd)?;
        match &f.kind {
            FileKind::SignalFd(m) => m.set(set),
            _ => return Err(errno::EINVAL.into()),
        }
        // Waiters on it look again with the new mask.
        self.stirred = true;
        Ok(fd as i32 as u64)
    }

    /// Whether the current thread has a signal of `mask` pending (a signalfd is
    /// readable for it).
    pub(crate) fn signalfd_ready(&self, mask: u64) -> bool {
        (self.task.pending | self.proc.pending) & mask != 0
    }

    /// `read` of a signalfd: the current thread's pending signals of `mask`, as many
    /// as `buf` holds whole; waits for the first while there is none.
    pub(crate) fn read_signalfd(
        &mut self,
        mask: u64,
        buf: &mut [u8],
        nonblock: bool,
    ) -> Result<usize, SysErr> {
        let room = buf.len() / SIGINFO_SIZE;
        if room == 0 {
            return Err(errno::EINVAL.into());
        }
        let mut n = 0;
        while n < room {
            let ready = (self.task.pending | self.proc.pending) & mask;
            if ready == 0 {
                break;
            }
            let sig = ready.trailing_zeros() as i32 + 1;
            // A stale timer signal is dropped, and the read goes on.
            let Some(info) = self.take_pending(sig) else {
                continue;
            };
            let at = n * SIGINFO_SIZE;
            buf[at..at + SIGINFO_SIZE].copy_from_slice(to_signalfd(&info).as_bytes());
            n += 1;
        }
        if n > 0 {
            return Ok(n * SIGINFO_SIZE);
        }
        Err(if nonblock {
            errno::EAGAIN.into()
        } else {
            self.park(None)
        })
    }
}
