//! File locks: `flock(2)`, and `fcntl(2)`'s record locks, both the process-owned
//! POSIX kind (`F_SETLK`, `F_SETLKW`, `F_GETLK`) and the open-file-description kind
//! (`F_OFD_*`), held between the sandbox's processes as Linux holds them.
//!
//! - A `flock` lock belongs to an open file description: every descriptor dup'ed or
//!   inherited from it shares it, and it goes when the last of them closes. Two
//!   opens of one file conflict, even in one process.
//! - A POSIX record lock belongs to a process: a child does not inherit it, `execve`
//!   keeps it, and closing *any* descriptor of the file releases all the process's
//!   locks on it (the trap every POSIX-lock user knows). An OFD lock belongs to the open
//!   file description, as a `flock` lock does, and conflicts with POSIX locks.
//! - Setting a lock of an owner merges it with that owner's adjacent and overlapping
//!   locks of the same type, and cuts those of the other type, so that `F_GETLK`
//!   reports the same ranges Linux would.
//!
//! A file is known by its device and inode numbers, as the sandbox's `stat` shows
//! them. Waiting (`F_SETLKW`, `flock` without `LOCK_NB`) parks the task; every release
//! stirs the scheduler, which tries the call again. An `F_SETLKW` that would close a
//! cycle of processes waiting on each other's POSIX locks fails with `EDEADLK`, as
//! Linux's `posix_locks_deadlock` answers (following at most ten waits; OFD locks and
//! `flock` have no such check, on Linux either).

use std::collections::BTreeMap;
use std::rc::{Rc, Weak};

use super::fd::OpenFile;
use super::task::Tid;
use crate::errno::{self, Errno};

/// A file: its device and inode numbers.
pub(crate) type Key = (u64, u64);

/// The last byte offset a lock may cover (`OFFSET_MAX`): a range to the end of the
/// file ends here.
pub(crate) const OFFSET_MAX: i64 = i64::MAX;

/// Most lock entries the sandbox holds at once, so that a workload splitting ranges
/// cannot grow the VMM's memory without bound (`ENOLCK` past it).
const MAX_ENTRIES: usize = if cfg!(test) { 64 } else { 1 << 16 };

/// Who holds a record lock.
#[derive(Debug, Clone)]
pub(crate) enum Owner {
    /// A process (POSIX locks).
    Process(Tid),
    /// An open file description (OFD locks).
    File(Weak<OpenFile>),
}

impl Owner {
    fn same(&self, other: &Owner) -> bool {
        match (self, other) {
            (Owner::Process(a), Owner::Process(b)) => a == b,
            (Owner::File(a), Owner::File(b)) => Weak::ptr_eq(a, b),
            _ => false,
        }
    }

    /// Still holding: a process's locks are taken away when it ends; an open file
    /// description's go with its last reference.
    fn alive(&self) -> bool {
        match self {
            Owner::Process(_) => true,
            Owner::File(w) => w.strong_count() > 0,
        }
    }
}

/// A record lock: `start..=end`, a write (exclusive) or read (shared) lock.
#[derive(Debug, Clone)]
pub(crate) struct Range {
    pub(crate) owner: Owner,
    pub(crate) write: bool,
    pub(crate) start: i64,
    pub(crate) end: i64,
}

impl Range {
    fn overlaps(&self, start: i64, end: i64) -> bool {
        self.start <= end && start <= self.end
    }
}

/// A `flock` lock: the open file description holding it, shared or exclusive.
#[derive(Debug, Clone)]
struct Whole {
    file: Weak<OpenFile>,
    exclusive: bool,
}

impl Whole {
    /// Still held: the open file description has a reference left.
    fn alive(&self) -> bool {
        self.file.strong_count() > 0
    }
}

/// The locks of `held` the copy keeps, each as `copy` makes it (`None`: gone), files
/// with none left dropped.
fn copy_held<T>(
    held: &BTreeMap<Key, Vec<T>>,
    copy: impl Fn(&T) -> Option<T>,
) -> BTreeMap<Key, Vec<T>> {
    held.iter()
        .map(|(k, v)| (*k, v.iter().filter_map(&copy).collect::<Vec<_>>()))
        .filter(|(_, v)| !v.is_empty())
        .collect()
}

/// A task waiting in `F_SETLKW` for a POSIX lock (for the deadlock check).
#[derive(Debug, Clone)]
pub(crate) struct Waiter {
    pub(crate) tid: Tid,
    pub(crate) pid: Tid,
    pub(crate) key: Key,
    pub(crate) write: bool,
    pub(crate) start: i64,
    pub(crate) end: i64,
}

/// Most waits the deadlock check follows (Linux's `MAX_DEADLK_ITERATIONS`).
const MAX_DEADLK_ITERATIONS: usize = 10;

/// The sandbox's file locks.
#[derive(Debug, Default)]
pub(crate) struct Locks {
    ranges: BTreeMap<Key, Vec<Range>>,
    flocks: BTreeMap<Key, Vec<Whole>>,
    /// Tasks waiting for POSIX locks, as they last parked (an entry whose task no
    /// longer waits in `F_SETLKW` is ignored; see `deadlock`).
    waiting: Vec<Waiter>,
}

/// What a `flock` call asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FlockOp {
    Shared,
    Exclusive,
    Unlock,
}

impl Locks {
    /// No lock is held (dead owners' entries aside).
    pub(crate) fn is_empty(&self) -> bool {
        self.ranges.is_empty() && self.flocks.is_empty()
    }

    /// Some lock is held by a live owner (a snapshot file cannot carry it).
    pub(crate) fn any_live(&self) -> bool {
        self.ranges.values().flatten().any(|r| r.owner.alive())
            || self.flocks.values().flatten().any(Whole::alive)
    }

    /// Entries held, dead owners' included.
    fn count(&self) -> usize {
        self.ranges.values().map(Vec::len).sum::<usize>()
            + self.flocks.values().map(Vec::len).sum::<usize>()
    }

    /// Drops the entries of owners that are gone.
    fn purge(&mut self) {
        self.ranges.retain(|_, v| {
            v.retain(|r| r.owner.alive());
            !v.is_empty()
        });
        self.flocks.retain(|_, v| {
            v.retain(Whole::alive);
            !v.is_empty()
        });
    }

    /// The first record lock on `key` that keeps `owner` from taking `start..=end`
    /// (for writing if `write`).
    pub(crate) fn conflict(
        &self,
        key: Key,
        owner: &Owner,
        write: bool,
        start: i64,
        end: i64,
    ) -> Option<&Range> {
        self.ranges.get(&key)?.iter().find(|r| {
            r.owner.alive() && !r.owner.same(owner) && (write || r.write) && r.overlaps(start, end)
        })
    }

    /// Sets (`Some(write)`) or removes (`None`) `owner`'s lock on `start..=end` of
    /// `key`, merging and cutting the owner's other locks there. The caller checked
    /// for conflicts. `ENOLCK` (and nothing changed) when the sandbox would hold too
    /// many.
    pub(crate) fn set(
        &mut self,
        key: Key,
        owner: &Owner,
        lock: Option<bool>,
        start: i64,
        end: i64,
    ) -> Result<(), Errno> {
        let old = self.ranges.get(&key).map_or(&[][..], Vec::as_slice);
        let before = old.len();
        let mut others = Vec::with_capacity(before + 2);
        let mut mine = Vec::new();
        for r in old {
            if !r.owner.alive() {
                continue;
            }
            if !r.owner.same(owner) {
                others.push(r.clone());
            } else if !r.overlaps(start, end) {
                mine.push(r.clone());
            } else {
                // The parts of `r` outside `start..=end` stay.
                if r.start < start {
                    mine.push(Range {
                        end: start - 1,
                        ..r.clone()
                    });
                }
                if r.end > end {
                    mine.push(Range {
                        start: end + 1,
                        ..r.clone()
                    });
                }
            }
        }
        if let Some(write) = lock {
            let (mut s, mut e) = (start, end);
            // Same-type locks that touch the new range join it.
            mine.retain(|r| {
                let touches = r.end.checked_add(1) == Some(s) || e.checked_add(1) == Some(r.start);
                if r.write == write && touches {
                    s = s.min(r.start);
                    e = e.max(r.end);
                    false
                } else {
                    true
                }
            });
            mine.push(Range {
                owner: owner.clone(),
                write,
                start: s,
                end: e,
            });
        }
        others.append(&mut mine);
        if others.len() > before && self.count() - before + others.len() > MAX_ENTRIES {
            self.purge();
            let here = self.ranges.get(&key).map_or(0, Vec::len);
            if self.count() - here + others.len() > MAX_ENTRIES {
                return Err(errno::ENOLCK);
            }
        }
        others.sort_by_key(|r| r.start);
        if others.is_empty() {
            self.ranges.remove(&key);
        } else {
            self.ranges.insert(key, others);
        }
        Ok(())
    }

    /// `flock(2)` on `key` through `file`: `Ok(true)` when done, `Ok(false)` when
    /// another open file description's lock is in the way (the caller fails with
    /// `EWOULDBLOCK` or waits). As Linux does, a conversion drops the old lock first,
    /// so a shared lock waiting to become exclusive no longer holds the shared one.
    pub(crate) fn flock(
        &mut self,
        key: Key,
        file: &Rc<OpenFile>,
        op: FlockOp,
    ) -> Result<bool, Errno> {
        let me = Rc::downgrade(file);
        let exclusive = op == FlockOp::Exclusive;
        let held = self.flocks.entry(key).or_default();
        held.retain(Whole::alive);
        if let Some(i) = held.iter().position(|w| Weak::ptr_eq(&w.file, &me)) {
            if op != FlockOp::Unlock && held[i].exclusive == exclusive {
                return Ok(true);
            }
            held.remove(i);
        }
        if op == FlockOp::Unlock {
            if held.is_empty() {
                self.flocks.remove(&key);
            }
            return Ok(true);
        }
        if held.iter().any(|w| exclusive || w.exclusive) {
            return Ok(false);
        }
        if self.count() >= MAX_ENTRIES {
            self.purge();
            if self.count() >= MAX_ENTRIES {
                return Err(errno::ENOLCK);
            }
        }
        self.flocks.entry(key).or_default().push(Whole {
            file: me,
            exclusive,
        });
        Ok(true)
    }

    /// Notes that a task waits for a POSIX lock (replacing what it waited for before).
    pub(crate) fn wait(&mut self, w: Waiter) {
        self.unwait(w.tid);
        self.waiting.push(w);
    }

    /// The task waits for no lock any more.
    pub(crate) fn unwait(&mut self, tid: Tid) {
        self.waiting.retain(|w| w.tid != tid);
    }

    /// Would process `pid` waiting behind `blocker` close a cycle of processes waiting
    /// on each other's POSIX locks? `waits(tid)`: the task still waits in `F_SETLKW`
    /// (an entry of a task a signal took out of its wait is not followed).
    pub(crate) fn deadlock(&self, pid: Tid, blocker: &Range, waits: impl Fn(Tid) -> bool) -> bool {
        let Owner::Process(mut q) = blocker.owner else {
            return false;
        };
        for _ in 0..MAX_DEADLK_ITERATIONS {
            if q == pid {
                return true;
            }
            let Some(w) = self.waiting.iter().find(|w| w.pid == q && waits(w.tid)) else {
                return false;
            };
            let Some(r) = self.conflict(w.key, &Owner::Process(q), w.write, w.start, w.end) else {
                return false;
            };
            let Owner::Process(next) = r.owner else {
                return false;
            };
            q = next;
        }
        false
    }

    /// `pid` holds some POSIX lock.
    pub(crate) fn held_by(&self, pid: Tid) -> bool {
        self.ranges
            .values()
            .flatten()
            .any(|r| matches!(r.owner, Owner::Process(p) if p == pid))
    }

    /// Releases `pid`'s POSIX locks on `key` (`None`: on every file; the process ended).
    pub(crate) fn release(&mut self, pid: Tid, key: Option<Key>) {
        if key.is_none() {
            self.waiting.retain(|w| w.pid != pid);
        }
        self.ranges.retain(|k, v| {
            if key.is_none_or(|key| key == *k) {
                v.retain(|r| !matches!(r.owner, Owner::Process(p) if p == pid));
            }
            !v.is_empty()
        });
    }

    /// A copy for a snapshot's kernel: the open file descriptions held weakly are the
    /// copies' (second pass, `snap.rs`); a lock whose file was not copied (no
    /// descriptor left) is gone.
    pub(crate) fn snap_weak(&self, m: &crate::snap::Memo) -> Locks {
        let ranges = copy_held(&self.ranges, |r| {
            let owner = match &r.owner {
                Owner::Process(p) => Owner::Process(*p),
                Owner::File(w) => Owner::File(m.weak(w)?),
            };
            Some(Range { owner, ..r.clone() })
        });
        let flocks = copy_held(&self.flocks, |w| {
            Some(Whole {
                file: m.weak(&w.file)?,
                exclusive: w.exclusive,
            })
        });
        Locks {
            ranges,
            flocks,
            waiting: self.waiting.clone(),
        }
    }
}

/// The range `struct flock` names, as Linux's `flock_to_posix_lock` reads it: from
/// `whence`'s origin (`pos` for `SEEK_CUR`, `size` for `SEEK_END`), `len` bytes on
/// (backwards when negative; to the end of any file when 0). `EOVERFLOW` past
/// `OFFSET_MAX`, `EINVAL` before 0.
pub(crate) fn range_of(
    whence: i16,
    start: i64,
    len: i64,
    pos: i64,
    size: i64,
) -> Result<(i64, i64), Errno> {
    let origin = match i32::from(whence) {
        libc::SEEK_SET => 0,
        libc::SEEK_CUR => pos,
        libc::SEEK_END => size,
        _ => return Err(errno::EINVAL),
    };
    if start > OFFSET_MAX - origin {
        return Err(errno::EOVERFLOW);
    }
    let mut s = origin + start;
    if s < 0 {
        return Err(errno::EINVAL);
    }
    let e;
    if len > 0 {
        if len - 1 > OFFSET_MAX - s {
            return Err(errno::EOVERFLOW);
        }
        e = s + (len - 1);
    } else if len < 0 {
        e = s - 1;
        s = s.checked_add(len).ok_or(errno::EINVAL)?;
        if s < 0 {
            return Err(errno::EINVAL);
        }
    } else {
        e = OFFSET_MAX;
    }
    Ok((s, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linux::fd::FileKind;

    const K: Key = (1, 2);

    fn spans(l: &Locks) -> Vec<(bool, i64, i64)> {
        l.ranges
            .get(&K)
            .map(|v| v.iter().map(|r| (r.write, r.start, r.end)).collect())
            .unwrap_or_default()
    }

    #[test]
    fn same_type_neighbours_merge_and_other_types_cut() {
        let mut l = Locks::default();
        let p = Owner::Process(7);
        l.set(K, &p, Some(false), 0, 9).unwrap();
        l.set(K, &p, Some(false), 10, 19).unwrap();
        assert_eq!(spans(&l), [(false, 0, 19)]);
        l.set(K, &p, Some(true), 5, 7).unwrap();
        assert_eq!(spans(&l), [(false, 0, 4), (true, 5, 7), (false, 8, 19)]);
        l.set(K, &p, None, 3, 9).unwrap();
        assert_eq!(spans(&l), [(false, 0, 2), (false, 10, 19)]);
        l.set(K, &p, Some(false), 0, OFFSET_MAX).unwrap();
        assert_eq!(spans(&l), [(false, 0, OFFSET_MAX)]);
        l.set(K, &p, None, 0, OFFSET_MAX).unwrap();
        assert!(l.is_empty());
    }

    #[test]
    fn conflicts_are_between_owners_and_need_a_writer() {
        let mut l = Locks::default();
        let (a, b) = (Owner::Process(1), Owner::Process(2));
        l.set(K, &a, Some(false), 10, 19).unwrap();
        assert!(l.conflict(K, &b, false, 0, OFFSET_MAX).is_none());
        assert!(l.conflict(K, &b, true, 19, 30).is_some());
        assert!(l.conflict(K, &b, true, 20, 30).is_none());
        assert!(l.conflict(K, &a, true, 0, 30).is_none());
        let f = OpenFile::new(FileKind::Dir, None, 0);
        let o = Owner::File(Rc::downgrade(&f));
        l.set(K, &o, Some(true), 40, 49).unwrap();
        assert!(l.conflict(K, &a, false, 45, 45).is_some());
        // The open file description's lock goes with its last reference.
        drop(f);
        assert!(l.conflict(K, &a, false, 45, 45).is_none());
        l.release(1, Some(K));
        assert!(!l.any_live());
    }

    #[test]
    fn a_cycle_of_waits_is_a_deadlock() {
        let mut l = Locks::default();
        let (a, b, c) = (Owner::Process(1), Owner::Process(2), Owner::Process(3));
        l.set(K, &a, Some(true), 0, 0).unwrap();
        l.set(K, &b, Some(true), 1, 1).unwrap();
        l.set(K, &c, Some(true), 2, 2).unwrap();
        // 2 waits for 1's byte, 3 for 2's: 1 asking for 3's closes the cycle.
        for (tid, pid, at) in [(20, 2, 0), (30, 3, 1)] {
            l.wait(Waiter {
                tid,
                pid,
                key: K,
                write: true,
                start: at,
                end: at,
            });
        }
        let blocker = l.conflict(K, &a, true, 2, 2).unwrap().clone();
        assert!(l.deadlock(1, &blocker, |_| true));
        // A task no longer waiting (a signal took it out) breaks the chain.
        assert!(!l.deadlock(1, &blocker, |t| t != 30));
        l.unwait(20);
        assert!(!l.deadlock(1, &blocker, |_| true));
    }

    #[test]
    fn flock_converts_by_dropping_first() {
        let mut l = Locks::default();
        let (f, g) = (
            OpenFile::new(FileKind::Dir, None, 0),
            OpenFile::new(FileKind::Dir, None, 0),
        );
        assert_eq!(l.flock(K, &f, FlockOp::Shared), Ok(true));
        assert_eq!(l.flock(K, &g, FlockOp::Shared), Ok(true));
        assert_eq!(l.flock(K, &g, FlockOp::Exclusive), Ok(false));
        // g's shared lock went with the failed conversion: f may now convert.
        assert_eq!(l.flock(K, &f, FlockOp::Exclusive), Ok(true));
        assert_eq!(l.flock(K, &g, FlockOp::Shared), Ok(false));
        drop(f);
        assert_eq!(l.flock(K, &g, FlockOp::Exclusive), Ok(true));
        assert_eq!(l.flock(K, &g, FlockOp::Unlock), Ok(true));
        assert!(l.is_empty());
    }

    #[test]
    fn ranges_read_as_linux_reads_them() {
        assert_eq!(range_of(0, 5, 0, 0, 0), Ok((5, OFFSET_MAX)));
        assert_eq!(range_of(1, 0, 10, 100, 0), Ok((100, 109)));
        assert_eq!(range_of(2, -10, 0, 0, 50), Ok((40, OFFSET_MAX)));
        assert_eq!(range_of(0, 10, -5, 0, 0), Ok((5, 9)));
        assert_eq!(range_of(0, 3, -5, 0, 0), Err(errno::EINVAL));
        assert_eq!(range_of(0, -1, 1, 0, 0), Err(errno::EINVAL));
        assert_eq!(range_of(2, OFFSET_MAX, 1, 0, 10), Err(errno::EOVERFLOW));
        assert_eq!(range_of(0, 10, OFFSET_MAX, 0, 0), Err(errno::EOVERFLOW));
        // The last byte there is: up to OFFSET_MAX, never past it.
        assert_eq!(range_of(0, 1, OFFSET_MAX, 0, 0), Ok((1, OFFSET_MAX)));
        assert_eq!(range_of(1, 0, OFFSET_MAX, 1, 0), Ok((1, OFFSET_MAX)));
        assert_eq!(
            range_of(0, OFFSET_MAX, 1, 0, 0),
            Ok((OFFSET_MAX, OFFSET_MAX))
        );
        assert_eq!(range_of(0, 0, i64::MIN, 0, 0), Err(errno::EINVAL));
        assert_eq!(range_of(3, 0, 0, 0, 0), Err(errno::EINVAL));
    }

    #[test]
    fn the_table_is_bounded() {
        let mut l = Locks::default();
        let p = Owner::Process(1);
        for i in 0..MAX_ENTRIES as i64 {
            l.set(K, &p, Some(i % 2 == 0), i, i).unwrap();
        }
        assert_eq!(
            l.set(
                K,
                &p,
                Some(true),
                MAX_ENTRIES as i64 + 5,
                MAX_ENTRIES as i64 + 5
            ),
            Err(errno::ENOLCK)
        );
        assert_eq!(l.count(), MAX_ENTRIES);
        l.release(1, None);
        assert!(l.is_empty());
    }
}
