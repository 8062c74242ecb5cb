//! `futex`: waits parked on a key (address space and address for private futexes,
//! guest-physical address for shared ones) until a `FUTEX_WAKE` (or a requeue and a
//! wake, a timeout, a signal). What glibc's threads, mutexes, condition variables and
//! `pthread_join` stand on.

use std::time::Instant;

use super::task::{FutexKey, TaskState, Wait};
use super::{Block, Kernel, SysErr, SysResult};
use crate::errno;
use crate::mm::{UserPtr, VmaKind, PROT_WRITE};

const FUTEX_WAIT: i32 = 0;
const FUTEX_WAKE: i32 = 1;
const FUTEX_REQUEUE: i32 = 3;
const FUTEX_CMP_REQUEUE: i32 = 4;
const FUTEX_WAKE_OP: i32 = 5;
const FUTEX_WAIT_BITSET: i32 = 9;
const FUTEX_WAKE_BITSET: i32 = 10;
const FUTEX_PRIVATE_FLAG: i32 = 128;
const FUTEX_CLOCK_REALTIME: i32 = 256;

impl Kernel {
    /// The key of the futex at `uaddr`.
    fn futex_key(&mut self, uaddr: u64, private: bool) -> Result<FutexKey, SysErr> {
        if uaddr % 4 != 0 {
            return Err(errno::EINVAL.into());
        }
        // Linux's get_futex_key: the word must be in user space (EFAULT), even for a
        // private futex whose key is only its address.
        if !super::rw::user_range(uaddr, 4) {
            return Err(errno::EFAULT.into());
        }
        if private {
            return Ok(FutexKey::Private(self.mm.space(), uaddr));
        }
        let chunks = self.mm.user_chunks(uaddr, 4, false)?;
        let gpa = chunks.first().map(|c| c.0).ok_or(errno::EFAULT)?;
        // A read-only private anonymous page never changes: Linux refuses it a shared
        // key (get_futex_key's "RO anonymous page" EFAULT).
        let read_only_anon = self
            .mm
            .vma_at(uaddr)
            .is_some_and(|(_, v)| matches!(v.kind, VmaKind::Anon) && v.prot & PROT_WRITE == 0);
        if read_only_anon {
            return Err(errno::EFAULT.into());
        }
        Ok(FutexKey::Shared(gpa))
    }

    /// Wakes up to `n` tasks waiting on `key` whose bitset meets `bitset`.
    fn futex_wake_key(&mut self, key: FutexKey, n: u32, bitset: u32) -> u32 {
        let mut woken = 0;
        for tid in self.tids() {
            if woken >= n {
                break;
            }
            let Some(t) = self.task_mut(tid) else {
                continue;
            };
            if let TaskState::Blocked(b) = &t.state {
                if let Wait::Futex { key: k, bitset: bs } = b.wait {
                    if k == key && bs & bitset != 0 {
                        t.ctx.regs.rax = 0;
                        t.state = TaskState::Runnable;
                        woken += 1;
                    }
                }
            }
        }
        if woken > 0 {
            self.woke_one();
        }
        woken
    }

    /// Wakes waiters of the futex at `addr` of the current space, private or shared
    /// (`CLONE_CHILD_CLEARTID` at a thread's end).
    pub(crate) fn futex_wake_addr(&mut self, addr: u64, n: u32, bitset: u32) -> u32 {
        let mut woken = 0;
        if let Ok(k) = self.futex_key(addr, true) {
            woken += self.futex_wake_key(k, n, bitset);
        }
        if let Ok(k) = self.futex_key(addr, false) {
            woken += self.futex_wake_key(k, n.saturating_sub(woken), bitset);
        }
        woken
    }

    /// Moves up to `n` waiters of `from` to `to`.
    fn futex_requeue(&mut self, from: FutexKey, to: FutexKey, n: u32) -> u32 {
        let mut moved = 0;
        for tid in self.tids() {
            if moved >= n {
                break;
            }
            let Some(t) = self.task_mut(tid) else {
                continue;
            };
            if let TaskState::Blocked(b) = &mut t.state {
                if let Wait::Futex { key, .. } = &mut b.wait {
                    if *key == from {
                        *key = to;
                        moved += 1;
                    }
                }
            }
        }
        moved
    }

    pub(crate) fn sys_futex(&mut self, a: [u64; 6]) -> SysResult {
        let [uaddr, op, val, timeout, uaddr2, val3] = a;
        // The futex words the operations read (and `FUTEX_WAKE_OP` writes).
        let (word, word2) = (UserPtr::<u32>::new(uaddr), UserPtr::<u32>::new(uaddr2));
        let op = op as i32;
        let private = op & FUTEX_PRIVATE_FLAG != 0;
        let cmd = op & !(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME);
        match cmd {
            FUTEX_WAIT | FUTEX_WAIT_BITSET => {
                if self.retrying.is_some() {
                    // Only the deadline tries a futex wait again.
                    return Err(errno::ETIMEDOUT.into());
                }
                // Linux's order: the timeout is read and checked first (sys_futex),
                // then the bitset, the word's address and its value (futex_wait).
                let deadline = if timeout == 0 {
                    None
                } else {
                    let d = self.timespec(UserPtr::new(timeout))?;
                    Some(if cmd == FUTEX_WAIT {
                        super::time::later(d)
                    } else if op & FUTEX_CLOCK_REALTIME != 0 {
                        self.realtime_to_instant(d)
                    } else {
                        self.monotonic_to_instant(d)
                    })
                };
                let bitset = if cmd == FUTEX_WAIT {
                    u32::MAX
                } else {
                    val3 as u32
                };
                if bitset == 0 {
                    return Err(errno::EINVAL.into());
                }
                let key = self.futex_key(uaddr, private)?;
                if self.mm.read(word)? != val as u32 {
                    return Err(errno::EAGAIN.into());
                }
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return Err(errno::ETIMEDOUT.into());
                }
                Err(SysErr::Block(Block {
                    deadline,
                    wait: Wait::Futex { key, bitset },
                }))
            }
            FUTEX_WAKE | FUTEX_WAKE_BITSET => {
                let bitset = if cmd == FUTEX_WAKE {
                    u32::MAX
                } else {
                    val3 as u32
                };
                if bitset == 0 {
                    return Err(errno::EINVAL.into());
                }
                let key = self.futex_key(uaddr, private)?;
                Ok(u64::from(self.futex_wake_key(key, val as u32, bitset)))
            }
            FUTEX_REQUEUE | FUTEX_CMP_REQUEUE => {
                // Negative counts are refused before anything is looked at.
                if (val as i32) < 0 || (timeout as i32) < 0 {
                    return Err(errno::EINVAL.into());
                }
                let key = self.futex_key(uaddr, private)?;
                let key2 = self.futex_key(uaddr2, private)?;
                if cmd == FUTEX_CMP_REQUEUE && self.mm.read(word)? != val3 as u32 {
                    return Err(errno::EAGAIN.into());
                }
                let woken = self.futex_wake_key(key, val as u32, u32::MAX);
                let moved = self.futex_requeue(key, key2, timeout as u32);
                Ok(u64::from(woken + moved))
            }
            FUTEX_WAKE_OP => {
                let key = self.futex_key(uaddr, private)?;
                let key2 = self.futex_key(uaddr2, private)?;
                let enc = val3 as u32;
                let (opk, cmp) = ((enc >> 28) & 0xf, (enc >> 24) & 0xf);
                let mut oparg = (enc >> 12) & 0xfff;
                let cmparg = enc & 0xfff;
                if opk & 8 != 0 {
                    oparg = 1u32.checked_shl(oparg).unwrap_or(0);
                }
                let old = self.mm.read(word2)?;
                let new = match opk & 7 {
                    0 => oparg,
                    1 => old.wrapping_add(oparg),
                    2 => old | oparg,
                    3 => old & !oparg,
                    4 => old ^ oparg,
                    _ => return Err(errno::ENOSYS.into()),
                };
                self.mm.write(word2, &new)?;
                let mut woken = self.futex_wake_key(key, val as u32, u32::MAX);
                let hit = match cmp {
                    0 => old == cmparg,
                    1 => old != cmparg,
                    2 => (old as i32) < cmparg as i32,
                    3 => (old as i32) <= cmparg as i32,
                    4 => (old as i32) > cmparg as i32,
                    5 => (old as i32) >= cmparg as i32,
                    _ => return Err(errno::ENOSYS.into()),
                };
                if hit {
                    woken += self.futex_wake_key(key2, timeout as u32, u32::MAX);
                }
                Ok(u64::from(woken))
            }
            _ => Err(self.unsupported("futex(PI and other operations)", errno::ENOSYS)),
        }
    }
}
