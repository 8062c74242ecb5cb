//! System V IPC: shared memory segments (`shmget`, `shmat`, `shmdt`, `shmctl`),
//! semaphore sets (`semget`, `semop`, `semtimedop`, `semctl`) and message queues
//! (`msgget`, `msgsnd`, `msgrcv`, `msgctl`), in the sandbox's own IPC namespace as a
//! container has it: keys, ids, permissions, limits and answers as Linux 6.x gives them.
//!
//! - Ids are Linux's: an index taken cyclically below `IPCMNI` and a sequence number
//!   that grows each time the indexes wrap, `seq << 15 | index`; the `*_STAT` commands
//!   take an index.
//! - A segment's memory is shared pages of zeros like `MAP_SHARED|MAP_ANONYMOUS`
//!   ([`Kernel::shared_zeros`]); its attach count is the number of mappings of it in
//!   every address space (a mapping split by `mprotect` counts twice, as on Linux). A
//!   segment removed while attached loses its key and goes with its last mapping.
//! - A blocking `semop` or `msgsnd`/`msgrcv` waits and is tried again when something
//!   happened, as a retried call; one whose object was removed meanwhile answers
//!   `EIDRM`. `SEM_UNDO` adjustments are kept per process (shared by its threads) and
//!   applied when it ends.
//! - The sandbox's root has `CAP_IPC_OWNER` and `CAP_SYS_ADMIN` over its namespace (as
//!   root in a container's user namespace) but not `CAP_SYS_RESOURCE` (raising a
//!   queue's size past `msgmnb` is `EPERM`). What the objects hold in the VMM
//!   (semaphore values, queued messages, undo lists) is charged to the sandbox's memory
//!   (`ENOMEM` when it is full).

use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use super::task::{TaskState, Tid};
use super::{Kernel, SysErr, SysResult};
use crate::abi::{
    IpcPerm, Msginfo, MsqidDs, Sembuf, SemidDs, Seminfo, ShmInfo, ShmidDs, Shminfo, Timespec,
};
use crate::errno::{self, Errno};
use crate::guest::layout::PAGE_SIZE;
use crate::memory::{Budget, HeapCharge};
use crate::mm::{Fixed, SharedPages, UserPtr, VmaKind, PROT_EXEC, PROT_READ, PROT_WRITE};

const IPC_PRIVATE: i32 = 0;
const IPC_CREAT: i32 = 0o1000;
const IPC_EXCL: i32 = 0o2000;
const IPC_NOWAIT: i32 = 0o4000;

const IPC_RMID: i32 = 0;
const IPC_SET: i32 = 1;
const IPC_STAT: i32 = 2;
const IPC_INFO: i32 = 3;
/// Accepted and ignored: x86-64 only has the 64-bit layouts.
const IPC_64: i32 = 0x100;

const SHM_LOCK: i32 = 11;
const SHM_UNLOCK: i32 = 12;
const SHM_STAT: i32 = 13;
const SHM_INFO: i32 = 14;
const SHM_STAT_ANY: i32 = 15;
const SHM_HUGETLB: i32 = 0o4000;
const SHM_RDONLY: u64 = 0o10000;
const SHM_RND: u64 = 0o20000;
const SHM_REMAP: u64 = 0o40000;
const SHM_EXEC: u64 = 0o100000;
/// Mode bits of a segment: removed while attached, locked in memory.
const SHM_DEST: u32 = 0o1000;
const SHM_LOCKED: u32 = 0o2000;

const GETPID: i32 = 11;
const GETVAL: i32 = 12;
const GETALL: i32 = 13;
const GETNCNT: i32 = 14;
const GETZCNT: i32 = 15;
const SETVAL: i32 = 16;
const SETALL: i32 = 17;
const SEM_STAT: i32 = 18;
const SEM_INFO: i32 = 19;
const SEM_STAT_ANY: i32 = 20;
const SEM_UNDO: i16 = 0x1000;

const MSG_STAT: i32 = 11;
const MSG_INFO: i32 = 12;
const MSG_STAT_ANY: i32 = 13;
const MSG_NOERROR: i32 = 0o10000;
const MSG_EXCEPT: i32 = 0o20000;
const MSG_COPY: i32 = 0o40000;

/// Linux's default limits (`ipc/util.h`, `include/uapi/linux/{shm,sem,msg}.h`).
const IPCMNI: u32 = 32768;
const SEQ_SHIFT: u32 = 15;
const SEQ_MAX: u32 = (i32::MAX as u32) >> SEQ_SHIFT;
const SHMMAX: u64 = u64::MAX - (1 << 24);
const SHMALL: u64 = u64::MAX - (1 << 24);
const SHMMNI: usize = 4096;
const SEMMSL: i32 = 32000;
const SEMMNI: usize = 32000;
const SEMMNS: u64 = 1_024_000_000;
const SEMOPM: u64 = 500;
const SEMVMX: i32 = 32767;
const SEMAEM: i32 = SEMVMX;
const MSGMNI: usize = 32000;
const MSGMAX: u64 = 8192;
const MSGMNB: u64 = 16384;

/// VMM memory an object's bookkeeping costs, charged with what it holds.
const OBJECT_COST: u64 = 256;
/// Per semaphore (value, pid, time) and per undo slot.
const SEM_COST: u64 = 16;
/// Per queued message besides its text.
const MSG_COST: u64 = 64;

/// `semop` and `semtimedop`, whose blocked tasks `GETNCNT`/`GETZCNT` count.
const SYS_SEMOP: u64 = 65;
const SYS_SEMTIMEDOP: u64 = 220;

/// Seconds of the wall clock, for the objects' times.
fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// An object's permissions.
#[derive(Debug, Clone)]
struct Perm {
    key: i32,
    uid: u32,
    gid: u32,
    cuid: u32,
    cgid: u32,
    mode: u32,
    seq: u32,
}

impl Perm {
    fn abi(&self) -> IpcPerm {
        IpcPerm {
            key: self.key,
            uid: self.uid,
            gid: self.gid,
            cuid: self.cuid,
            cgid: self.cgid,
            mode: self.mode,
            seq: self.seq as u16,
            ..Default::default()
        }
    }
}

/// An object with its permissions, and the VMM memory it holds.
#[derive(Debug)]
struct Obj<T> {
    perm: Perm,
    ctime: i64,
    charge: HeapCharge,
    body: T,
}

/// The objects of one kind, by index; ids allocated as Linux's `ipc_idr_alloc`.
#[derive(Debug)]
struct Ids<T> {
    objs: BTreeMap<u32, Obj<T>>,
    /// Where the next search for a free index starts.
    next: u32,
    /// The last index given, whose reuse (or a lower one) bumps the sequence.
    last: Option<u32>,
    seq: u32,
    /// Most objects at once.
    limit: usize,
}

impl<T> Ids<T> {
    fn new(limit: usize) -> Ids<T> {
        Ids {
            objs: BTreeMap::new(),
            next: 0,
            last: None,
            seq: 0,
            limit,
        }
    }

    /// The index and sequence number for a new object (`ENOSPC` when full).
    fn alloc(&mut self) -> Result<(u32, u32), Errno> {
        if self.objs.len() >= self.limit {
            return Err(errno::ENOSPC);
        }
        // Linux cycles through at least 64 indexes, or half again as many as are used.
        let max = (self.objs.len() as u32 * 3 / 2).clamp(64, 32000);
        let free = |from: u32, to: u32| (from..to).find(|i| !self.objs.contains_key(i));
        let idx = free(self.next.min(max), max)
            .or_else(|| free(0, self.next.min(max)))
            .ok_or(errno::ENOSPC)?;
        if self.last.is_some_and(|l| idx <= l) {
            self.seq += 1;
            if self.seq >= SEQ_MAX {
                self.seq = 0;
            }
        }
        self.last = Some(idx);
        self.next = idx + 1;
        Ok((idx, self.seq))
    }

    /// The object `id` names (index and sequence), or `EINVAL`.
    fn get(&self, id: i32) -> Result<&Obj<T>, Errno> {
        let (idx, seq) = split_id(id)?;
        self.objs
            .get(&idx)
            .filter(|o| o.perm.seq == seq)
            .ok_or(errno::EINVAL)
    }

    fn get_mut(&mut self, id: i32) -> Result<&mut Obj<T>, Errno> {
        let (idx, seq) = split_id(id)?;
        self.objs
            .get_mut(&idx)
            .filter(|o| o.perm.seq == seq)
            .ok_or(errno::EINVAL)
    }

    /// The object an `IPC_STAT` names by its id, or a `*_STAT` by its index (with its
    /// full id), which the caller may read (`any`: `*_STAT_ANY`, unchecked).
    fn stat(
        &self,
        id: i32,
        by_index: bool,
        any: bool,
        user: (u32, u32),
    ) -> Result<(i32, &Obj<T>), Errno> {
        let (full, o) = if by_index {
            self.at_index(id)?
        } else {
            (0, self.get(id)?)
        };
        if !any && !permits(&o.perm, user, S_IRUGO) {
            return Err(errno::EACCES);
        }
        Ok((full, o))
    }

    /// The object `id` for a command only its owner (or creator) may give (`EPERM`).
    fn owned(&mut self, id: i32, user: (u32, u32)) -> Result<&mut Obj<T>, Errno> {
        let o = self.get_mut(id)?;
        if !owns(&o.perm, user) {
            return Err(errno::EPERM);
        }
        Ok(o)
    }

    /// The object at index `id & 0x7fff` (`*_STAT`), with its full id.
    fn at_index(&self, id: i32) -> Result<(i32, &Obj<T>), Errno> {
        let idx = (id as u32) % IPCMNI;
        let o = self.objs.get(&idx).ok_or(errno::EINVAL)?;
        Ok((full_id(idx, o.perm.seq), o))
    }

    fn by_key(&self, key: i32) -> Option<(u32, &Obj<T>)> {
        self.objs
            .iter()
            .find(|(_, o)| o.perm.key == key)
            .map(|(i, o)| (*i, o))
    }

    fn remove(&mut self, id: i32) -> Option<Obj<T>> {
        let (idx, _) = split_id(id).ok()?;
        self.objs.remove(&idx)
    }

    /// `ipc_get_maxidx`: the highest index in use, or -1.
    fn max_idx(&self) -> i32 {
        self.objs.keys().next_back().map_or(-1, |i| *i as i32)
    }

    /// A copy, the objects' bodies made by `f` and their charges on `budget`.
    fn copy_with<U>(
        &self,
        budget: &Rc<Budget>,
        mut f: impl FnMut(&T) -> Result<U, crate::snap::SnapError>,
    ) -> Result<Ids<U>, crate::snap::SnapError> {
        let mut objs = BTreeMap::new();
        for (i, o) in &self.objs {
            let copy = Obj {
                perm: o.perm.clone(),
                ctime: o.ctime,
                charge: HeapCharge::restored(budget, o.charge.bytes()),
                body: f(&o.body)?,
            };
            objs.insert(*i, copy);
        }
        Ok(Ids {
            objs,
            next: self.next,
            last: self.last,
            seq: self.seq,
            limit: self.limit,
        })
    }

    /// The objects with their full ids.
    fn with_ids(&self) -> impl Iterator<Item = (i32, &Obj<T>)> {
        self.objs.iter().map(|(i, o)| (full_id(*i, o.perm.seq), o))
    }
}

fn split_id(id: i32) -> Result<(u32, u32), Errno> {
    if id < 0 {
        return Err(errno::EINVAL);
    }
    let id = id as u32;
    Ok((id % IPCMNI, id >> SEQ_SHIFT))
}

fn full_id(idx: u32, seq: u32) -> i32 {
    ((seq << SEQ_SHIFT) + idx) as i32
}

/// A shared memory segment.
#[derive(Debug, Clone)]
struct Segment {
    pages: Rc<SharedPages>,
    size: u64,
    atime: i64,
    dtime: i64,
    cpid: Tid,
    lpid: Tid,
    /// The attach count when last looked at ([`Ipc::observe_segments`]).
    seen: u64,
}

impl Segment {
    /// Mappings of it, in every address space but those going away (`leaving`: the
    /// pages each of their mappings shows). The kernel's list of shared memory and the
    /// segment hold the other two references.
    fn nattch(&self, leaving: &BTreeMap<crate::mm::SpaceId, Vec<usize>>) -> u64 {
        let me = Rc::as_ptr(&self.pages) as usize;
        let going = leaving.values().flatten().filter(|p| **p == me).count();
        (Rc::strong_count(&self.pages) as u64).saturating_sub(2 + going as u64)
    }

    fn pages(&self) -> u64 {
        self.size.div_ceil(PAGE_SIZE)
    }
}

/// A semaphore.
#[derive(Debug, Clone, Copy, Default)]
struct Sem {
    val: i32,
    pid: Tid,
}

/// A semaphore set.
#[derive(Debug, Clone)]
struct SemSet {
    sems: Vec<Sem>,
    otime: i64,
}

/// A queued message.
#[derive(Debug, Clone)]
struct Msg {
    mtype: i64,
    text: Vec<u8>,
}

/// A message queue.
#[derive(Debug, Clone)]
struct Queue {
    msgs: std::collections::VecDeque<Msg>,
    cbytes: u64,
    qbytes: u64,
    stime: i64,
    rtime: i64,
    lspid: Tid,
    lrpid: Tid,
}

/// A process's `SEM_UNDO` adjustments, by semaphore set.
#[derive(Debug)]
struct Undo {
    adj: BTreeMap<i32, Vec<i32>>,
    charge: HeapCharge,
}

/// The sandbox's IPC namespace.
#[derive(Debug)]
pub(crate) struct Ipc {
    shm: Ids<Segment>,
    sem: Ids<SemSet>,
    msg: Ids<Queue>,
    /// `SEM_UNDO` adjustments by process.
    undo: BTreeMap<Tid, Undo>,
    /// What each task blocked in `semop` waits for: (set, semaphore, for zero).
    sem_waits: BTreeMap<Tid, (i32, u16, bool)>,
    /// Address spaces whose process ended while they were current, released at the
    /// next switch: the shared pages of their mappings (by address), no longer
    /// counted as attaches.
    leaving: BTreeMap<crate::mm::SpaceId, Vec<usize>>,
}

impl Default for Ipc {
    fn default() -> Ipc {
        Ipc {
            shm: Ids::new(SHMMNI),
            sem: Ids::new(SEMMNI),
            msg: Ids::new(MSGMNI),
            undo: BTreeMap::new(),
            sem_waits: BTreeMap::new(),
            leaving: BTreeMap::new(),
        }
    }
}

/// `requested` (`S_IRUGO`-style bits) is granted by `p` to `user`: the owner's, the
/// group's or the others' bits, as Linux's `ipcperms` (root has `CAP_IPC_OWNER`).
fn permits(p: &Perm, (uid, gid): (u32, u32), requested: u32) -> bool {
    if uid == 0 {
        return true;
    }
    let requested = (requested >> 6 | requested >> 3 | requested) & 7;
    let granted = if uid == p.uid || uid == p.cuid {
        p.mode >> 6
    } else if gid == p.gid || gid == p.cgid {
        p.mode >> 3
    } else {
        p.mode
    } & 7;
    requested & !granted == 0
}

/// `user` owns or created `p` (or is root, with `CAP_SYS_ADMIN` in the namespace).
fn owns(p: &Perm, (uid, _): (u32, u32)) -> bool {
    uid == 0 || uid == p.uid || uid == p.cuid
}

const S_IRUGO: u32 = 0o444;
const S_IWUGO: u32 = 0o222;
const S_IXUGO: u32 = 0o111;

/// `IPC_SET`'s new owner and mode (`ipc_update_perm`): -1 is no valid id.
fn update_perm(p: &mut Perm, new: &IpcPerm) -> Result<(), Errno> {
    if new.uid == u32::MAX || new.gid == u32::MAX {
        return Err(errno::EINVAL);
    }
    p.uid = new.uid;
    p.gid = new.gid;
    p.mode = (p.mode & !0o777) | (new.mode & 0o777);
    Ok(())
}

impl Ipc {
    /// A copy for a snapshot or a sandbox started from one: the segments' pages are the
    /// copies `m` made of the originals (the mappings share them), charges are made
    /// again on the copy's `budget`.
    pub(crate) fn copy(
        &self,
        m: &mut crate::snap::Memo,
        budget: &Rc<Budget>,
    ) -> Result<Ipc, crate::snap::SnapError> {
        use crate::snap::Snap;
        let charge = |c: &HeapCharge| HeapCharge::restored(budget, c.bytes());
        let shm = self.shm.copy_with(budget, |g| {
            Ok(Segment {
                pages: g.pages.snap(m)?,
                ..g.clone()
            })
        })?;
        let sem = self.sem.copy_with(budget, |s| Ok(s.clone()))?;
        let msg = self.msg.copy_with(budget, |q| Ok(q.clone()))?;
        let undo = self
            .undo
            .iter()
            .map(|(p, u)| {
                (
                    *p,
                    Undo {
                        adj: u.adj.clone(),
                        charge: charge(&u.charge),
                    },
                )
            })
            .collect();
        // The copies' pages are other objects: the spaces going away name them.
        let renamed: BTreeMap<usize, usize> = self
            .shm
            .objs
            .iter()
            .filter_map(|(i, o)| {
                let new = shm.objs.get(i)?;
                Some((
                    Rc::as_ptr(&o.body.pages) as usize,
                    Rc::as_ptr(&new.body.pages) as usize,
                ))
            })
            .collect();
        let leaving = self
            .leaving
            .iter()
            .map(|(id, ps)| {
                (
                    *id,
                    ps.iter().filter_map(|p| renamed.get(p).copied()).collect(),
                )
            })
            .collect();
        Ok(Ipc {
            shm,
            sem,
            msg,
            undo,
            sem_waits: self.sem_waits.clone(),
            leaving,
        })
    }

    /// Semaphores in all sets (`semmns` counts them).
    fn used_sems(&self) -> u64 {
        self.sem
            .objs
            .values()
            .map(|o| o.body.sems.len() as u64)
            .sum()
    }

    /// True when no object exists (a snapshot file can hold none).
    pub(crate) fn is_empty(&self) -> bool {
        self.shm.objs.is_empty() && self.sem.objs.is_empty() && self.msg.objs.is_empty()
    }

    /// After a call of process `pid`: a segment attached more times than before was
    /// attached by it (`shmat`, a `fork`: `shm_atime`, `shm_lpid`), one attached fewer
    /// times detached by it (`shmdt`, `munmap`, `execve`: `shm_dtime`, `shm_lpid`), as
    /// Linux counts each mapping opened and closed; a segment removed while attached
    /// whose last mapping went is gone.
    pub(crate) fn observe_segments(&mut self, pid: Tid) {
        let now = now_secs();
        for o in self.shm.objs.values_mut() {
            let s = &mut o.body;
            let n = s.nattch(&self.leaving);
            if n > s.seen {
                (s.atime, s.lpid) = (now, pid);
            } else if n < s.seen {
                (s.dtime, s.lpid) = (now, pid);
            }
            s.seen = n;
        }
        let leaving = &self.leaving;
        self.shm
            .objs
            .retain(|_, o| o.perm.mode & SHM_DEST == 0 || o.body.nattch(leaving) > 0);
    }

    /// The space `id` was released: its mappings are gone.
    pub(crate) fn space_released(&mut self, id: crate::mm::SpaceId) {
        self.leaving.remove(&id);
    }
}

/// What a `*get` call asks.
struct Get {
    key: i32,
    flg: i32,
}

/// A new object's permissions: `user` owns it, with the mode bits of `flg`.
fn new_perm((uid, gid): (u32, u32), key: i32, flg: i32, seq: u32) -> Perm {
    Perm {
        key,
        uid,
        gid,
        cuid: uid,
        cgid: gid,
        mode: (flg & 0o777) as u32,
        seq,
    }
}

impl Kernel {
    /// The key lookup of `shmget`, `semget`, `msgget` (Linux's `ipcget`): a private
    /// key or an absent one with `IPC_CREAT` makes a new object (`make`); an existing
    /// one is `EEXIST` with `IPC_CREAT|IPC_EXCL`, else checked by `more` and against
    /// the permissions `flg` asks.
    fn ipc_get<T>(
        ids: &mut Ids<T>,
        user: (u32, u32),
        get: Get,
        more: impl FnOnce(&T) -> Result<(), Errno>,
        make: impl FnOnce(&mut Ids<T>) -> Result<i32, Errno>,
    ) -> SysResult {
        if get.key != IPC_PRIVATE {
            if let Some((idx, o)) = ids.by_key(get.key) {
                if get.flg & IPC_CREAT != 0 && get.flg & IPC_EXCL != 0 {
                    return Err(errno::EEXIST.into());
                }
                more(&o.body)?;
                if !permits(&o.perm, user, (get.flg & 0o777) as u32) {
                    return Err(errno::EACCES.into());
                }
                return Ok(full_id(idx, o.perm.seq) as u64);
            }
            if get.flg & IPC_CREAT == 0 {
                return Err(errno::ENOENT.into());
            }
        }
        Ok(make(ids)? as u64)
    }

    fn budget(&self) -> Rc<Budget> {
        self.mm.mem.budget()
    }

    // --- shared memory ---

    pub(crate) fn sys_shmget(&mut self, key: u64, size: u64, flg: u64) -> SysResult {
        let (key, flg) = (key as i32, flg as i32);
        let user = self.user;
        let tot: u64 = self.ipc.shm.objs.values().map(|o| o.body.pages()).sum();
        let budget = self.budget();
        let pid = self.proc.pid;
        // A segment's memory comes at first touch, from the sandbox's (made here so
        // that the kernel's list of shared memory holds it: the frames go with it).
        let fresh = std::cell::RefCell::new(None);
        let r = {
            let perm = |seq| new_perm(user, key, flg, seq);
            let make = |ids: &mut Ids<Segment>| {
                if !(1..=SHMMAX).contains(&size) {
                    return Err(errno::EINVAL);
                }
                let pages = size.div_ceil(PAGE_SIZE);
                if tot.checked_add(pages).is_none_or(|t| t > SHMALL) {
                    return Err(errno::ENOSPC);
                }
                if flg & SHM_HUGETLB != 0 {
                    // No huge pages are reserved for the sandbox (Linux with none: the
                    // same answer).
                    return Err(errno::ENOMEM);
                }
                let charge = HeapCharge::of(&budget, OBJECT_COST).map_err(|_| errno::ENOMEM)?;
                let (idx, seq) = ids.alloc()?;
                *fresh.borrow_mut() = Some((idx, seq, charge, perm(seq)));
                Ok(full_id(idx, seq))
            };
            let more = |s: &Segment| {
                if s.size < size {
                    Err(errno::EINVAL)
                } else {
                    Ok(())
                }
            };
            Self::ipc_get(&mut self.ipc.shm, user, Get { key, flg }, more, make)
        };
        if let Some((idx, _, charge, perm)) = fresh.into_inner() {
            let pages = self.shared_zeros();
            self.ipc.shm.objs.insert(
                idx,
                Obj {
                    perm,
                    ctime: now_secs(),
                    charge,
                    body: Segment {
                        pages,
                        size,
                        atime: 0,
                        dtime: 0,
                        cpid: pid,
                        lpid: 0,
                        seen: 0,
                    },
                },
            );
        }
        r
    }

    pub(crate) fn sys_shmat(&mut self, id: u64, addr: u64, flg: u64) -> SysResult {
        let id = id as i32;
        if id < 0 {
            return Err(errno::EINVAL.into());
        }
        let (mut addr, fixed) = (addr, addr != 0);
        if addr != 0 {
            if addr % PAGE_SIZE != 0 {
                if flg & SHM_RND == 0 {
                    return Err(errno::EINVAL.into());
                }
                addr &= !(PAGE_SIZE - 1);
                if addr == 0 && flg & SHM_REMAP != 0 {
                    return Err(errno::EINVAL.into());
                }
            }
        } else if flg & SHM_REMAP != 0 {
            return Err(errno::EINVAL.into());
        }
        let (mut prot, mut want) = if flg & SHM_RDONLY != 0 {
            (PROT_READ, S_IRUGO)
        } else {
            (PROT_READ | PROT_WRITE, S_IRUGO | S_IWUGO)
        };
        if flg & SHM_EXEC != 0 {
            prot |= PROT_EXEC;
            want |= S_IXUGO;
        }
        let o = self.ipc.shm.get(id)?;
        if !permits(&o.perm, self.user, want) {
            return Err(errno::EACCES.into());
        }
        let (pages, size) = (Rc::clone(&o.body.pages), o.body.size);
        // Linux asks an address given without SHM_REMAP to be free, over the size
        // (`MAP_FIXED` at 0 is the mapping's own refusal).
        let fixed = if fixed {
            if addr != 0 && flg & SHM_REMAP == 0 {
                let end = addr.checked_add(size).ok_or(errno::EINVAL)?;
                if self.mm.vmas_overlapping(addr, end).next().is_some() {
                    return Err(errno::EINVAL.into());
                }
            }
            Fixed::Replace
        } else {
            Fixed::Hint
        };
        let start = self.mapping_call(|k| {
            Ok(k.mm.mmap(
                addr,
                size,
                prot,
                fixed,
                false,
                VmaKind::SharedFile { pages, offset: 0 },
            )?)
        })?;
        if flg & SHM_RDONLY != 0 {
            let end = start.saturating_add(size.div_ceil(PAGE_SIZE) * PAGE_SIZE);
            self.mm.hint(start, end, crate::mm::vma::hint::NO_WRITE, 0);
        }
        Ok(start)
    }

    /// The segment whose pages `p` are, by id.
    fn segment_of(&self, p: &Rc<SharedPages>) -> Option<i32> {
        self.ipc
            .shm
            .objs
            .iter()
            .find(|(_, o)| Rc::ptr_eq(&o.body.pages, p))
            .map(|(i, o)| full_id(*i, o.perm.seq))
    }

    pub(crate) fn sys_shmdt(&mut self, addr: u64) -> SysResult {
        if addr % PAGE_SIZE != 0 {
            return Err(errno::EINVAL.into());
        }
        // The first mapping from `addr` on that starts where its segment would be
        // attached at `addr` (a fragment after an mprotect or a munmap, too), then
        // every such mapping of the same segment within its size.
        let attach = |start: u64, kind: &VmaKind| match kind {
            VmaKind::SharedFile { pages, offset } if start.checked_sub(addr) == Some(*offset) => {
                Some(Rc::clone(pages))
            }
            _ => None,
        };
        let first = self
            .mm
            .vmas_overlapping(addr, u64::MAX)
            .find_map(|(s, v)| attach(s, &v.kind).filter(|p| self.segment_of(p).is_some()));
        let Some(pages) = first else {
            return Err(errno::EINVAL.into());
        };
        let id = self.segment_of(&pages).ok_or(errno::EINVAL)?;
        let size = self.ipc.shm.get(id).map_or(0, |o| o.body.size);
        let limit = addr.saturating_add(size.div_ceil(PAGE_SIZE) * PAGE_SIZE);
        let pieces: Vec<(u64, u64)> = self
            .mm
            .vmas_overlapping(addr, u64::MAX)
            .filter(|(s, v)| {
                v.end <= limit && attach(*s, &v.kind).is_some_and(|p| Rc::ptr_eq(&p, &pages))
            })
            .map(|(s, v)| (s, v.end))
            .collect();
        drop(pages);
        for (s, e) in pieces {
            self.mm.munmap(s, e - s)?;
        }
        Ok(0)
    }

    pub(crate) fn sys_shmctl(&mut self, id: u64, cmd: u64, buf: u64) -> SysResult {
        let (id, cmd) = (id as i32, cmd as i32);
        if cmd < 0 || id < 0 {
            return Err(errno::EINVAL.into());
        }
        let user = self.user;
        match cmd & !IPC_64 {
            IPC_INFO => {
                let info = Shminfo {
                    shmmax: SHMMAX,
                    shmmin: 1,
                    shmmni: SHMMNI as u64,
                    shmseg: SHMMNI as u64,
                    shmall: SHMALL,
                    unused: [0; 4],
                };
                self.mm.write(UserPtr::new(buf), &info)?;
                Ok(self.ipc.shm.max_idx().max(0) as u64)
            }
            SHM_INFO => {
                let segs = self.ipc.shm.objs.values();
                let info = ShmInfo {
                    used_ids: self.ipc.shm.objs.len() as i32,
                    shm_tot: segs.clone().map(|o| o.body.pages()).sum(),
                    shm_rss: segs
                        .map(|o| o.body.pages.frames.borrow().len() as u64)
                        .sum(),
                    ..Default::default()
                };
                self.mm.write(UserPtr::new(buf), &info)?;
                Ok(self.ipc.shm.max_idx().max(0) as u64)
            }
            c @ (IPC_STAT | SHM_STAT | SHM_STAT_ANY) => {
                let (full, o) = self
                    .ipc
                    .shm
                    .stat(id, c != IPC_STAT, c == SHM_STAT_ANY, user)?;
                let s = &o.body;
                let ds = ShmidDs {
                    perm: o.perm.abi(),
                    segsz: s.size,
                    atime: s.atime,
                    dtime: s.dtime,
                    ctime: o.ctime,
                    cpid: s.cpid as i32,
                    lpid: s.lpid as i32,
                    nattch: s.nattch(&self.ipc.leaving),
                    unused: [0; 2],
                };
                self.mm.write(UserPtr::new(buf), &ds)?;
                Ok(full as u64)
            }
            IPC_SET => {
                let new: ShmidDs = self.mm.read(UserPtr::new(buf))?;
                let o = self.ipc.shm.owned(id, user)?;
                update_perm(&mut o.perm, &new.perm)?;
                o.ctime = now_secs();
                Ok(0)
            }
            IPC_RMID => {
                let o = self.ipc.shm.owned(id, user)?;
                // Gone now when unattached, else with its last mapping (its key is
                // free for a new segment at once).
                o.perm.mode |= SHM_DEST;
                o.perm.key = IPC_PRIVATE;
                self.ipc.observe_segments(self.proc.pid);
                Ok(0)
            }
            c @ (SHM_LOCK | SHM_UNLOCK) => {
                let o = self.ipc.shm.owned(id, user)?;
                if c == SHM_LOCK {
                    o.perm.mode |= SHM_LOCKED;
                } else {
                    o.perm.mode &= !SHM_LOCKED;
                }
                Ok(0)
            }
            _ => Err(errno::EINVAL.into()),
        }
    }

    // --- semaphores ---

    pub(crate) fn sys_semget(&mut self, key: u64, nsems: u64, flg: u64) -> SysResult {
        let (key, nsems, flg) = (key as i32, nsems as i32, flg as i32);
        if !(0..=SEMMSL).contains(&nsems) {
            return Err(errno::EINVAL.into());
        }
        let user = self.user;
        let budget = self.budget();
        let used = self.ipc.used_sems();
        let perm_of = |seq| new_perm(user, key, flg, seq);
        let make = |ids: &mut Ids<SemSet>| {
            if nsems == 0 {
                return Err(errno::EINVAL);
            }
            if used + nsems as u64 > SEMMNS {
                return Err(errno::ENOSPC);
            }
            let charge = HeapCharge::of(&budget, OBJECT_COST + SEM_COST * nsems as u64)
                .map_err(|_| errno::ENOMEM)?;
            let (idx, seq) = ids.alloc()?;
            ids.objs.insert(
                idx,
                Obj {
                    perm: perm_of(seq),
                    ctime: now_secs(),
                    charge,
                    body: SemSet {
                        sems: vec![Sem::default(); nsems as usize],
                        otime: 0,
                    },
                },
            );
            Ok(full_id(idx, seq))
        };
        let more = |s: &SemSet| {
            if nsems as usize > s.sems.len() {
                Err(errno::EINVAL)
            } else {
                Ok(())
            }
        };
        Self::ipc_get(&mut self.ipc.sem, user, Get { key, flg }, more, make)
    }

    pub(crate) fn sys_semtimedop(&mut self, id: u64, sops: u64, nsops: u64, ts: u64) -> SysResult {
        let id = id as i32;
        let timeout = if ts == 0 {
            None
        } else {
            Some(self.mm.read(UserPtr::<Timespec>::new(ts))?)
        };
        // Linux 6.x's order: the count (an unsigned int), the operations read, then the
        // id and the timeout's value.
        let nsops = u64::from(nsops as u32);
        if nsops > SEMOPM {
            return Err(errno::E2BIG.into());
        }
        if nsops < 1 {
            return Err(errno::EINVAL.into());
        }
        let ops = self
            .mm
            .read_array(UserPtr::<Sembuf>::new(sops), nsops, SEMOPM as usize)
            .map_err(super::too_many(errno::E2BIG))?;
        if id < 0 {
            return Err(errno::EINVAL.into());
        }
        let deadline = match timeout {
            None => None,
            Some(t) => {
                let d = t.duration()?;
                self.deadline_after(d)
            }
        };
        let max = ops.iter().map(|o| o.num).max().unwrap_or(0);
        let undos = ops.iter().any(|o| o.flg & SEM_UNDO != 0);
        let gone = |k: &Kernel| -> SysErr {
            // A set removed while this call waited.
            if k.retrying.is_some() {
                errno::EIDRM.into()
            } else {
                errno::EINVAL.into()
            }
        };
        let pid = self.proc.pid;
        let Ok(set) = self.ipc.sem.get(id) else {
            return Err(gone(self));
        };
        if usize::from(max) >= set.body.sems.len() {
            return Err(errno::EFBIG.into());
        }
        let alter = ops.iter().any(|o| o.op != 0);
        if !permits(&set.perm, self.user, if alter { S_IWUGO } else { S_IRUGO }) {
            return Err(errno::EACCES.into());
        }
        // Sequentially on copies: all or nothing.
        let mut vals: Vec<i32> = set.body.sems.iter().map(|s| s.val).collect();
        let nsems = vals.len();
        if undos {
            self.undo_slot(pid, id, nsems)?;
        }
        let mut adj = self
            .ipc
            .undo
            .get(&pid)
            .and_then(|u| u.adj.get(&id).cloned())
            .unwrap_or_else(|| vec![0; nsems]);
        let mut blocked = None;
        for o in &ops {
            let n = usize::from(o.num);
            let v = vals[n];
            let op = i32::from(o.op);
            if (op == 0 && v != 0) || v + op < 0 {
                blocked = Some(*o);
                break;
            }
            if v + op > SEMVMX {
                return Err(errno::ERANGE.into());
            }
            if o.flg & SEM_UNDO != 0 {
                let undo = adj[n] - op;
                if !(-SEMAEM - 1..=SEMAEM).contains(&undo) {
                    return Err(errno::ERANGE.into());
                }
                adj[n] = undo;
            }
            vals[n] = v + op;
        }
        let tid = self.task.tid;
        if let Some(o) = blocked {
            if o.flg & (IPC_NOWAIT as i16) != 0 {
                self.ipc.sem_waits.remove(&tid);
                return Err(errno::EAGAIN.into());
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                self.ipc.sem_waits.remove(&tid);
                return Err(errno::EAGAIN.into());
            }
            self.ipc.sem_waits.insert(tid, (id, o.num, o.op == 0));
            return Err(self.park(deadline));
        }
        self.ipc.sem_waits.remove(&tid);
        let set = self.ipc.sem.get_mut(id)?;
        for o in &ops {
            set.body.sems[usize::from(o.num)].pid = pid;
        }
        for (s, v) in set.body.sems.iter_mut().zip(vals) {
            s.val = v;
        }
        set.body.otime = now_secs();
        if undos {
            if let Some(u) = self.ipc.undo.get_mut(&pid) {
                u.adj.insert(id, adj);
            }
        }
        self.stirred = true;
        Ok(0)
    }

    /// Makes room for the undo adjustments of `pid` on set `id` (`ENOMEM` when the
    /// sandbox's memory is full).
    fn undo_slot(&mut self, pid: Tid, id: i32, nsems: usize) -> Result<(), Errno> {
        let budget = self.budget();
        let u = self.ipc.undo.entry(pid).or_insert_with(|| Undo {
            adj: BTreeMap::new(),
            charge: HeapCharge::new(&budget),
        });
        if u.adj.contains_key(&id) {
            return Ok(());
        }
        let cost = u.charge.bytes() + OBJECT_COST + SEM_COST * nsems as u64;
        u.charge.set(cost).map_err(|_| errno::ENOMEM)?;
        u.adj.insert(id, vec![0; nsems]);
        Ok(())
    }

    /// Tasks blocked in `semop` on semaphore `num` of `id`, waiting for it to be zero
    /// (`zero`) or to grow.
    fn sem_waiters(&mut self, id: i32, num: u16, zero: bool) -> u64 {
        let tasks: Vec<Tid> = self.ipc.sem_waits.keys().copied().collect();
        for tid in tasks {
            let still = self.task_ref(tid).is_some_and(|t| match &t.state {
                TaskState::Blocked(b) => {
                    (b.nr == SYS_SEMOP || b.nr == SYS_SEMTIMEDOP) && b.args[0] as i32 == id
                }
                _ => false,
            });
            if !still {
                self.ipc.sem_waits.remove(&tid);
            }
        }
        self.ipc
            .sem_waits
            .values()
            .filter(|w| **w == (id, num, zero))
            .count() as u64
    }

    pub(crate) fn sys_semctl(&mut self, id: u64, num: u64, cmd: u64, arg: u64) -> SysResult {
        let (id, num, cmd) = (id as i32, num as i32, cmd as i32 & !IPC_64);
        if id < 0 {
            return Err(errno::EINVAL.into());
        }
        let user = self.user;
        match cmd {
            IPC_INFO | SEM_INFO => {
                let mut info = Seminfo {
                    semmap: SEMMNS as i32,
                    semmni: SEMMNI as i32,
                    semmns: SEMMNS as i32,
                    semmnu: SEMMNS as i32,
                    semmsl: SEMMSL,
                    semopm: SEMOPM as i32,
                    semume: SEMOPM as i32,
                    semusz: 20,
                    semvmx: SEMVMX,
                    semaem: SEMAEM,
                };
                if cmd == SEM_INFO {
                    info.semusz = self.ipc.sem.objs.len() as i32;
                    info.semaem = self.ipc.used_sems() as i32;
                }
                self.mm.write(UserPtr::new(arg), &info)?;
                Ok(self.ipc.sem.max_idx().max(0) as u64)
            }
            IPC_STAT | SEM_STAT | SEM_STAT_ANY => {
                let (full, o) =
                    self.ipc
                        .sem
                        .stat(id, cmd != IPC_STAT, cmd == SEM_STAT_ANY, user)?;
                let ds = SemidDs {
                    perm: o.perm.abi(),
                    otime: o.body.otime,
                    ctime: o.ctime,
                    nsems: o.body.sems.len() as u64,
                    ..Default::default()
                };
                self.mm.write(UserPtr::new(arg), &ds)?;
                Ok(full as u64)
            }
            IPC_SET => {
                let new: SemidDs = self.mm.read(UserPtr::new(arg))?;
                let o = self.ipc.sem.owned(id, user)?;
                update_perm(&mut o.perm, &new.perm)?;
                o.ctime = now_secs();
                Ok(0)
            }
            IPC_RMID => {
                self.ipc.sem.owned(id, user)?;
                self.ipc.sem.remove(id);
                for u in self.ipc.undo.values_mut() {
                    u.adj.remove(&id);
                }
                self.stirred = true; // its waiters answer EIDRM
                Ok(0)
            }
            SETVAL => {
                let val = arg as i32;
                if !(0..=SEMVMX).contains(&val) {
                    return Err(errno::ERANGE.into());
                }
                let o = self.ipc.sem.get(id)?;
                if num < 0 || num as usize >= o.body.sems.len() {
                    return Err(errno::EINVAL.into());
                }
                if !permits(&o.perm, user, S_IWUGO) {
                    return Err(errno::EACCES.into());
                }
                let pid = self.proc.pid;
                self.clear_undo(id, Some(num as usize));
                let o = self.ipc.sem.get_mut(id)?;
                o.body.sems[num as usize] = Sem { val, pid };
                o.ctime = now_secs();
                self.stirred = true;
                Ok(0)
            }
            GETALL | GETVAL | GETPID | GETNCNT | GETZCNT | SETALL => {
                let o = self.ipc.sem.get(id)?;
                let want = if cmd == SETALL { S_IWUGO } else { S_IRUGO };
                if !permits(&o.perm, user, want) {
                    return Err(errno::EACCES.into());
                }
                let n = o.body.sems.len();
                match cmd {
                    GETALL => {
                        let vals: Vec<u16> = o.body.sems.iter().map(|s| s.val as u16).collect();
                        self.mm.write_array(UserPtr::new(arg), &vals)?;
                        return Ok(0);
                    }
                    SETALL => {
                        let vals: Vec<u16> = self
                            .mm
                            .read_array(UserPtr::new(arg), n as u64, SEMMSL as usize)
                            .map_err(super::too_many(errno::EINVAL))?;
                        if vals.iter().any(|v| i32::from(*v) > SEMVMX) {
                            return Err(errno::ERANGE.into());
                        }
                        let pid = self.proc.pid;
                        self.clear_undo(id, None);
                        let o = self.ipc.sem.get_mut(id)?;
                        for (s, v) in o.body.sems.iter_mut().zip(vals) {
                            *s = Sem {
                                val: i32::from(v),
                                pid,
                            };
                        }
                        o.ctime = now_secs();
                        self.stirred = true;
                        return Ok(0);
                    }
                    _ => {}
                }
                if num < 0 || num as usize >= n {
                    return Err(errno::EINVAL.into());
                }
                let s = o.body.sems[num as usize];
                Ok(match cmd {
                    GETVAL => s.val as u64,
                    GETPID => u64::from(s.pid),
                    _ => self.sem_waiters(id, num as u16, cmd == GETZCNT),
                })
            }
            _ => Err(errno::EINVAL.into()),
        }
    }

    /// `SETVAL`/`SETALL`: every process's adjustments of the semaphore (or the set)
    /// are dropped.
    fn clear_undo(&mut self, id: i32, num: Option<usize>) {
        for u in self.ipc.undo.values_mut() {
            if let Some(adj) = u.adj.get_mut(&id) {
                match num {
                    Some(n) => adj[n] = 0,
                    None => adj.fill(0),
                }
            }
        }
    }

    /// The address space `id` goes with the end of process `pid` (or its `execve`):
    /// the segments it had attached were detached by `pid` (counted now, though the
    /// space itself may be released later).
    pub(crate) fn ipc_space_gone(&mut self, id: crate::mm::SpaceId, pid: Tid) {
        if self.ipc.shm.objs.is_empty() {
            return;
        }
        let mut maps: Vec<Rc<SharedPages>> = Vec::new();
        self.mm.each_vma_of(id, |_, v| {
            if let VmaKind::SharedFile { pages, .. } = &v.kind {
                maps.push(Rc::clone(pages));
            }
        });
        let now = now_secs();
        for o in self.ipc.shm.objs.values_mut() {
            let s = &mut o.body;
            let n = maps.iter().filter(|p| Rc::ptr_eq(p, &s.pages)).count() as u64;
            if n > 0 {
                (s.dtime, s.lpid) = (now, pid);
                s.seen = s.seen.saturating_sub(n);
            }
        }
        if id == self.mm.space() {
            // Released at the next switch: not attached meanwhile.
            let ptrs = maps.iter().map(|p| Rc::as_ptr(p) as usize).collect();
            self.ipc.leaving.insert(id, ptrs);
        }
    }

    /// A process ends: its `SEM_UNDO` adjustments are applied (clamped to the values
    /// a semaphore holds, as Linux's `exit_sem`).
    pub(crate) fn ipc_exit(&mut self, pid: Tid) {
        let Some(u) = self.ipc.undo.remove(&pid) else {
            return;
        };
        let now = now_secs();
        for (id, adj) in u.adj {
            let Ok(set) = self.ipc.sem.get_mut(id) else {
                continue;
            };
            for (s, a) in set.body.sems.iter_mut().zip(adj) {
                if a != 0 {
                    s.val = (s.val + a).clamp(0, SEMVMX);
                    s.pid = pid;
                }
            }
            set.body.otime = now;
        }
        self.stirred = true;
    }

    // --- message queues ---

    pub(crate) fn sys_msgget(&mut self, key: u64, flg: u64) -> SysResult {
        let (key, flg) = (key as i32, flg as i32);
        let user = self.user;
        let budget = self.budget();
        let perm_of = |seq| new_perm(user, key, flg, seq);
        let make = |ids: &mut Ids<Queue>| {
            let charge = HeapCharge::of(&budget, OBJECT_COST).map_err(|_| errno::ENOMEM)?;
            let (idx, seq) = ids.alloc()?;
            ids.objs.insert(
                idx,
                Obj {
                    perm: perm_of(seq),
                    ctime: now_secs(),
                    charge,
                    body: Queue {
                        msgs: Default::default(),
                        cbytes: 0,
                        qbytes: MSGMNB,
                        stime: 0,
                        rtime: 0,
                        lspid: 0,
                        lrpid: 0,
                    },
                },
            );
            Ok(full_id(idx, seq))
        };
        Self::ipc_get(&mut self.ipc.msg, user, Get { key, flg }, |_| Ok(()), make)
    }

    pub(crate) fn sys_msgsnd(&mut self, id: u64, msgp: u64, size: u64, flg: u64) -> SysResult {
        let (id, flg) = (id as i32, flg as i32);
        let mtype: i64 = self.mm.read(UserPtr::new(msgp))?;
        if size > MSGMAX || id < 0 || mtype < 1 {
            return Err(errno::EINVAL.into());
        }
        let text = if size == 0 {
            Vec::new()
        } else {
            self.mm.read_user_vec(msgp.wrapping_add(8), size as usize)?
        };
        let retrying = self.retrying.is_some();
        let user = self.user;
        let pid = self.proc.pid;
        let q = self
            .ipc
            .msg
            .get_mut(id)
            .map_err(|e| if retrying { errno::EIDRM } else { e })?;
        if !permits(&q.perm, user, S_IWUGO) {
            return Err(errno::EACCES.into());
        }
        let fits =
            size + q.body.cbytes <= q.body.qbytes && (q.body.msgs.len() as u64) < q.body.qbytes;
        if !fits {
            if flg & IPC_NOWAIT != 0 {
                return Err(errno::EAGAIN.into());
            }
            return Err(self.park(None));
        }
        let cost = q.charge.bytes() + MSG_COST + size;
        q.charge.set(cost).map_err(|_| errno::ENOMEM)?;
        q.body.msgs.push_back(Msg { mtype, text });
        q.body.cbytes += size;
        q.body.lspid = pid;
        q.body.stime = now_secs();
        self.stirred = true;
        Ok(0)
    }

    pub(crate) fn sys_msgrcv(
        &mut self,
        id: u64,
        msgp: u64,
        size: u64,
        typ: u64,
        flg: u64,
    ) -> SysResult {
        let (id, typ, flg) = (id as i32, typ as i64, flg as i32);
        if id < 0 || (size as i64) < 0 {
            return Err(errno::EINVAL.into());
        }
        if flg & MSG_COPY != 0 {
            if flg & MSG_EXCEPT != 0 || flg & IPC_NOWAIT == 0 {
                return Err(errno::EINVAL.into());
            }
            // Linux loads the buffer it copies into from the caller first.
            let len = size.min(MSGMAX) as usize;
            if len > 0 {
                self.mm.read_user_vec(msgp, len).map_err(SysErr::from)?;
            }
        }
        let retrying = self.retrying.is_some();
        let user = self.user;
        let pid = self.proc.pid;
        let q = self
            .ipc
            .msg
            .get_mut(id)
            .map_err(|e| if retrying { errno::EIDRM } else { e })?;
        if !permits(&q.perm, user, S_IRUGO) {
            return Err(errno::EACCES.into());
        }
        let msgs = &q.body.msgs;
        let found = if flg & MSG_COPY != 0 {
            usize::try_from(typ).ok().filter(|i| *i < msgs.len())
        } else if typ == 0 {
            (!msgs.is_empty()).then_some(0)
        } else if typ < 0 {
            let bound = typ.checked_neg().unwrap_or(i64::MAX);
            msgs.iter()
                .enumerate()
                .filter(|(_, m)| m.mtype <= bound)
                .min_by_key(|(i, m)| (m.mtype, *i))
                .map(|(i, _)| i)
        } else if flg & MSG_EXCEPT != 0 {
            msgs.iter().position(|m| m.mtype != typ)
        } else {
            msgs.iter().position(|m| m.mtype == typ)
        };
        let Some(i) = found else {
            if flg & IPC_NOWAIT != 0 {
                return Err(errno::ENOMSG.into());
            }
            return Err(self.park(None));
        };
        let len = msgs[i].text.len() as u64;
        if size < len && flg & MSG_NOERROR == 0 {
            return Err(errno::E2BIG.into());
        }
        let m = if flg & MSG_COPY != 0 {
            if len > size.min(MSGMAX) {
                return Err(errno::EINVAL.into());
            }
            msgs[i].clone()
        } else {
            let m = q.body.msgs.remove(i).ok_or(errno::EINVAL)?;
            q.body.cbytes -= len;
            q.body.rtime = now_secs();
            q.body.lrpid = pid;
            let cost = q.charge.bytes().saturating_sub(MSG_COST + len);
            let _ = q.charge.set(cost);
            self.stirred = true;
            m
        };
        self.mm.write(UserPtr::new(msgp), &m.mtype)?;
        let n = (len.min(size)) as usize;
        if n > 0 {
            self.mm.write_user(msgp.wrapping_add(8), &m.text[..n])?;
        }
        Ok(n as u64)
    }

    pub(crate) fn sys_msgctl(&mut self, id: u64, cmd: u64, buf: u64) -> SysResult {
        let (id, cmd) = (id as i32, cmd as i32);
        if id < 0 || cmd < 0 {
            return Err(errno::EINVAL.into());
        }
        let user = self.user;
        match cmd & !IPC_64 {
            c @ (IPC_INFO | MSG_INFO) => {
                let mut info = Msginfo {
                    msgpool: (MSGMNI as u64 * MSGMNB / 1024) as i32,
                    msgmap: MSGMNB as i32,
                    msgmax: MSGMAX as i32,
                    msgmnb: MSGMNB as i32,
                    msgmni: MSGMNI as i32,
                    msgssz: 16,
                    msgtql: MSGMNB as i32,
                    msgseg: 0xffff,
                    pad: 0,
                };
                if c == MSG_INFO {
                    let qs = self.ipc.msg.objs.values();
                    info.msgpool = self.ipc.msg.objs.len() as i32;
                    info.msgmap = qs.clone().map(|q| q.body.msgs.len()).sum::<usize>() as i32;
                    info.msgtql =
                        qs.map(|q| q.body.cbytes).sum::<u64>().min(i32::MAX as u64) as i32;
                }
                self.mm.write(UserPtr::new(buf), &info)?;
                Ok(self.ipc.msg.max_idx().max(0) as u64)
            }
            c @ (IPC_STAT | MSG_STAT | MSG_STAT_ANY) => {
                let (full, o) = self
                    .ipc
                    .msg
                    .stat(id, c != IPC_STAT, c == MSG_STAT_ANY, user)?;
                let q = &o.body;
                let ds = MsqidDs {
                    perm: o.perm.abi(),
                    stime: q.stime,
                    rtime: q.rtime,
                    ctime: o.ctime,
                    cbytes: q.cbytes,
                    qnum: q.msgs.len() as u64,
                    qbytes: q.qbytes,
                    lspid: q.lspid as i32,
                    lrpid: q.lrpid as i32,
                    unused: [0; 2],
                };
                self.mm.write(UserPtr::new(buf), &ds)?;
                Ok(full as u64)
            }
            IPC_SET => {
                let new: MsqidDs = self.mm.read(UserPtr::new(buf))?;
                let o = self.ipc.msg.owned(id, user)?;
                // Past msgmnb needs CAP_SYS_RESOURCE, which no sandbox has.
                if new.qbytes > MSGMNB {
                    return Err(errno::EPERM.into());
                }
                update_perm(&mut o.perm, &new.perm)?;
                o.body.qbytes = new.qbytes;
                o.ctime = now_secs();
                self.stirred = true;
                Ok(0)
            }
            IPC_RMID => {
                self.ipc.msg.owned(id, user)?;
                self.ipc.msg.remove(id);
                self.stirred = true; // its waiters answer EIDRM
                Ok(0)
            }
            _ => Err(errno::EINVAL.into()),
        }
    }

    /// `/proc/sysvipc/{shm,sem,msg}`, as Linux prints them.
    pub(crate) fn sysvipc(&self, what: &str) -> String {
        let ipc = &self.ipc;
        let mut s = String::new();
        match what {
            "shm" => {
                s.push_str("       key      shmid perms                  size  cpid  lpid nattch   uid   gid  cuid  cgid      atime      dtime      ctime                   rss                  swap\n");
                for (id, o) in ipc.shm.with_ids() {
                    let (p, g) = (&o.perm, &o.body);
                    let rss = g.pages.frames.borrow().len() as u64 * PAGE_SIZE;
                    s.push_str(&format!(
                        "{:>10} {:>10}  {:>4o} {:>21} {:>5} {:>5}  {:>5} {:>5} {:>5} {:>5} {:>5} {:>10} {:>10} {:>10} {:>21} {:>21}\n",
                        p.key, id, p.mode, g.size, g.cpid, g.lpid, g.nattch(&ipc.leaving), p.uid, p.gid,
                        p.cuid, p.cgid, g.atime, g.dtime, o.ctime, rss, 0
                    ));
                }
            }
            "sem" => {
                s.push_str("       key      semid perms      nsems   uid   gid  cuid  cgid      otime      ctime\n");
                for (id, o) in ipc.sem.with_ids() {
                    let p = &o.perm;
                    s.push_str(&format!(
                        "{:>10} {:>10}  {:>4o} {:>10} {:>5} {:>5} {:>5} {:>5} {:>10} {:>10}\n",
                        p.key,
                        id,
                        p.mode,
                        o.body.sems.len(),
                        p.uid,
                        p.gid,
                        p.cuid,
                        p.cgid,
                        o.body.otime,
                        o.ctime
                    ));
                }
            }
            _ => {
                s.push_str("       key      msqid perms      cbytes       qnum lspid lrpid   uid   gid  cuid  cgid      stime      rtime      ctime\n");
                for (id, o) in ipc.msg.with_ids() {
                    let (p, q) = (&o.perm, &o.body);
                    s.push_str(&format!(
                        "{:>10} {:>10}  {:>4o}  {:>10} {:>10} {:>5} {:>5} {:>5} {:>5} {:>5} {:>5} {:>10} {:>10} {:>10}\n",
                        p.key, id, p.mode, q.cbytes, q.msgs.len(), q.lspid, q.lrpid, p.uid,
                        p.gid, p.cuid, p.cgid, q.stime, q.rtime, o.ctime
                    ));
                }
            }
        }
        s
    }
}
