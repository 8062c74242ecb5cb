//! `inotify`: watches on files and directories, and the events of what the sandbox's
//! processes do to them, queued on the instance's descriptor in Linux's order and
//! format (`struct inotify_event`, names padded to 16 bytes, an event identical to
//! the last one queued merged into it, `IN_Q_OVERFLOW` past 16,384 events).
//!
//! A watch is on a file as the sandbox's `stat` shows it (device and inode numbers).
//! Events come from the calls of the sandbox's own processes: opening, reading,
//! writing, truncating, closing, creating (files, directories, links, symlinks,
//! FIFOs), removing, renaming, changing modes, owners and times. Changes made from
//! outside the sandbox (a host process writing a file of a read-write mount) are not
//! seen; `IN_DELETE_SELF` comes when the last name of a file goes, even if a
//! descriptor still holds it open (Linux waits for the last close). Costs nothing
//! while no watch exists. What the queues hold is charged to the sandbox's memory
//! (a queue the memory limit cannot grow says `IN_Q_OVERFLOW`), instances are at
//! most 128 (`EMFILE`, Linux's `max_user_instances`) and watches 65,536 (`ENOSPC`).

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::rc::{Rc, Weak};

use super::fd::{FileKind, OpenFile};
use super::{Kernel, SysErr, SysResult};
use crate::errno;
use crate::memory::{Budget, HeapCharge};
use crate::vfs::Location;

/// A file: device and inode numbers.
type Key = (u64, u64);

pub(crate) const IN_ACCESS: u32 = 0x1;
pub(crate) const IN_MODIFY: u32 = 0x2;
pub(crate) const IN_ATTRIB: u32 = 0x4;
pub(crate) const IN_CLOSE_WRITE: u32 = 0x8;
pub(crate) const IN_CLOSE_NOWRITE: u32 = 0x10;
pub(crate) const IN_OPEN: u32 = 0x20;
pub(crate) const IN_MOVED_FROM: u32 = 0x40;
pub(crate) const IN_MOVED_TO: u32 = 0x80;
pub(crate) const IN_CREATE: u32 = 0x100;
pub(crate) const IN_DELETE: u32 = 0x200;
pub(crate) const IN_DELETE_SELF: u32 = 0x400;
pub(crate) const IN_MOVE_SELF: u32 = 0x800;
const IN_ALL_EVENTS: u32 = 0xfff;
const IN_UNMOUNT: u32 = 0x2000;
const IN_Q_OVERFLOW: u32 = 0x4000;
const IN_IGNORED: u32 = 0x8000;
const IN_ONLYDIR: u32 = 0x0100_0000;
const IN_DONT_FOLLOW: u32 = 0x0200_0000;
const IN_EXCL_UNLINK: u32 = 0x0400_0000;
const IN_MASK_CREATE: u32 = 0x1000_0000;
const IN_MASK_ADD: u32 = 0x2000_0000;
const IN_ISDIR: u32 = 0x4000_0000;
const IN_ONESHOT: u32 = 0x8000_0000;
/// Every bit `inotify_add_watch` takes.
const ALL_BITS: u32 = IN_ALL_EVENTS
    | IN_UNMOUNT
    | IN_Q_OVERFLOW
    | IN_IGNORED
    | IN_ONLYDIR
    | IN_DONT_FOLLOW
    | IN_EXCL_UNLINK
    | IN_MASK_ADD
    | IN_MASK_CREATE
    | IN_ISDIR
    | IN_ONESHOT;
/// Events sent to a directory's watch for something done to an entry of it.
const CHILD_EVENTS: u32 =
    IN_ACCESS | IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_CLOSE_NOWRITE | IN_OPEN;
/// Linux's `max_queued_events` default.
const MAX_QUEUED: usize = if cfg!(test) { 8 } else { 16_384 };
/// Watches of the whole sandbox (Linux's per-user `max_user_watches` is about this
/// on a small machine): `ENOSPC` past it.
const MAX_WATCHES: usize = if cfg!(test) { 8 } else { 65_536 };
/// `sizeof(struct inotify_event)`, and what names are padded to.
const EVENT_SIZE: usize = 16;
/// Linux's `max_user_instances` default.
const MAX_INSTANCES: usize = if cfg!(test) { 2 } else { 128 };
/// What a queued event costs the VMM beyond its name (charged to the sandbox).
const EVENT_COST: u64 = 64;

/// One queued event.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Event {
    wd: i32,
    mask: u32,
    cookie: u32,
    name: Vec<u8>,
}

impl Event {
    /// Its size as read: the header and the name, NUL-padded to 16 bytes.
    fn size(&self) -> usize {
        EVENT_SIZE + self.padded()
    }

    fn padded(&self) -> usize {
        if self.name.is_empty() {
            0
        } else {
            (self.name.len() + 1).div_ceil(EVENT_SIZE) * EVENT_SIZE
        }
    }
}

/// A watch: what it is on and the events it wants.
#[derive(Debug, Clone)]
struct Watch {
    key: Key,
    mask: u32,
}

/// An inotify instance (the open file behind its descriptor).
#[derive(Debug)]
pub(crate) struct Inotify {
    watches: RefCell<BTreeMap<i32, Watch>>,
    /// The last watch descriptor given (they count up, as Linux's cyclic ids).
    last_wd: Cell<i32>,
    queue: RefCell<VecDeque<Event>>,
    /// Every event queued so far: what an edge-triggered `epoll` compares.
    queued: Cell<u64>,
    /// What the queue costs the sandbox's memory.
    charge: RefCell<HeapCharge>,
}

/// What queuing `e` costs.
fn cost(e: &Event) -> u64 {
    EVENT_COST + e.name.len() as u64
}

impl Inotify {
    fn new(budget: &Rc<Budget>) -> Inotify {
        Inotify {
            watches: RefCell::default(),
            last_wd: Cell::new(0),
            queue: RefCell::default(),
            queued: Cell::new(0),
            charge: RefCell::new(HeapCharge::new(budget)),
        }
    }

    /// Whether a read would return now (`POLLIN`).
    pub(crate) fn readable(&self) -> bool {
        !self.queue.borrow().is_empty()
    }

    /// Events queued so far (see [`Inotify::queued`]).
    pub(crate) fn activity(&self) -> u64 {
        self.queued.get()
    }

    /// Bytes a read would return (`FIONREAD`).
    pub(crate) fn pending_bytes(&self) -> usize {
        self.queue.borrow().iter().map(Event::size).sum()
    }

    /// Queues `e` unless it repeats the last one; past the limit, one overflow event.
    /// True when something was queued.
    fn push(&self, e: Event) -> bool {
        let mut q = self.queue.borrow_mut();
        if q.back() == Some(&e) {
            return false;
        }
        let mut charge = self.charge.borrow_mut();
        let more = charge.bytes() + cost(&e);
        let e = if q.len() >= MAX_QUEUED || charge.set(more).is_err() {
            let overflow = Event {
                wd: -1,
                mask: IN_Q_OVERFLOW,
                cookie: 0,
                name: Vec::new(),
            };
            if q.back() == Some(&overflow) {
                return false;
            }
            overflow
        } else {
            e
        };
        q.push_back(e);
        self.queued.set(self.queued.get().wrapping_add(1));
        true
    }

    /// Ends watch `wd` (`IN_IGNORED` tells the reader); false when there is none.
    fn end_watch(&self, wd: i32) -> bool {
        if self.watches.borrow_mut().remove(&wd).is_none() {
            return false;
        }
        self.push(Event {
            wd,
            mask: IN_IGNORED,
            cookie: 0,
            name: Vec::new(),
        });
        true
    }

    /// Takes the first event (its charge given back).
    fn pop(&self) {
        if let Some(e) = self.queue.borrow_mut().pop_front() {
            let mut charge = self.charge.borrow_mut();
            let less = charge.bytes().saturating_sub(cost(&e));
            let _ = charge.set(less);
        }
    }

    /// A copy for a snapshot.
    pub(crate) fn copy(
        &self,
        m: &mut crate::snap::Memo,
    ) -> Result<Inotify, crate::snap::SnapError> {
        use crate::snap::Snap;
        Ok(Inotify {
            watches: RefCell::new(self.watches.borrow().clone()),
            last_wd: Cell::new(self.last_wd.get()),
            queue: RefCell::new(self.queue.borrow().clone()),
            queued: Cell::new(self.queued.get()),
            charge: RefCell::new(self.charge.borrow().snap(m)?),
        })
    }
}

/// Every inotify instance of the sandbox, held weakly (each goes with its last
/// descriptor), and the rename cookies.
#[derive(Debug, Default)]
pub(crate) struct Instances {
    all: Vec<Weak<Inotify>>,
    cookie: u32,
}

impl Instances {
    /// No instance holds a watch: events are not looked for.
    fn idle(&self) -> bool {
        self.all.is_empty()
    }

    /// A copy for a snapshot, whose instances are among `files` (the copied open
    /// files).
    pub(crate) fn copy<'a>(&self, files: impl Iterator<Item = &'a Rc<OpenFile>>) -> Instances {
        Instances {
            all: files
                .filter_map(|f| match &f.kind {
                    FileKind::Inotify(i) => Some(Rc::downgrade(i)),
                    _ => None,
                })
                .collect(),
            cookie: self.cookie,
        }
    }

    fn watch_count(&self) -> usize {
        self.all
            .iter()
            .filter_map(Weak::upgrade)
            .map(|i| i.watches.borrow().len())
            .sum()
    }
}

/// What a path or an open file names, for events: the node's key and whether it is
/// a directory, and its directory's key with the name in it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Subject {
    pub(crate) node: Option<(Key, bool)>,
    /// The node's link count.
    pub(crate) links: u64,
    parent: Option<(Key, Vec<u8>)>,
}

impl Kernel {
    /// Whether anything watches: every hook returns at once when not.
    pub(crate) fn watched(&self) -> bool {
        !self.inotify.idle()
    }

    /// What `loc` names (nothing is looked up when no watch exists).
    pub(crate) fn subject_of(&self, loc: &Location) -> Subject {
        if !self.watched() {
            return Subject::default();
        }
        let parent = loc
            .parent_loc()
            .and_then(|p| Some((self.key_of(&p)?, loc.top().name.to_vec())));
        self.subject(Some(loc), parent)
    }

    /// A subject from the node's location and its directory's key and name.
    fn subject(&self, loc: Option<&Location>, parent: Option<(Key, Vec<u8>)>) -> Subject {
        let meta = loc.and_then(|l| self.vfs.meta(l).ok());
        Subject {
            node: meta
                .as_ref()
                .map(|m| ((m.dev, m.ino), m.mode & libc::S_IFMT == libc::S_IFDIR)),
            links: meta.map_or(0, |m| m.nlink),
            parent,
        }
    }

    /// The key of the node `loc` ends at.
    fn key_of(&self, loc: &Location) -> Option<Key> {
        self.vfs.meta(loc).ok().map(|m| (m.dev, m.ino))
    }

    /// What `path` (from `base`) names, before a call changes it: the node if it
    /// exists (its last component not followed), and its directory with the name.
    pub(crate) fn subject_at(&self, base: &Location, path: &[u8]) -> Subject {
        if !self.watched() {
            return Subject::default();
        }
        let node = self.vfs.resolve(base, path, false).ok();
        let parent = self
            .vfs
            .resolve_parent(base, path)
            .ok()
            .and_then(|(p, name)| Some((self.key_of(&p)?, name)));
        self.subject(node.as_ref(), parent)
    }

    /// What the open file `f` names.
    pub(crate) fn subject_of_file(&self, f: &OpenFile) -> Subject {
        match (&f.kind, &f.loc) {
            (FileKind::Host(_) | FileKind::Tmp(_) | FileKind::Dir | FileKind::Dev(_), Some(l)) => {
                self.subject_of(l)
            }
            _ => Subject::default(),
        }
    }

    /// `mask` happened to what `loc` names (nothing is looked up when no watch
    /// exists).
    pub(crate) fn notify_loc(&mut self, loc: &Location, mask: u32) {
        if self.watched() {
            let s = self.subject_of(loc);
            self.notify(&s, mask);
        }
    }

    /// `mask` happened to the open file `f` (nothing is looked up when no watch
    /// exists).
    pub(crate) fn notify_file(&mut self, f: &OpenFile, mask: u32) {
        if self.watched() {
            let s = self.subject_of_file(f);
            self.notify(&s, mask);
        }
    }

    /// `mask` happened to `s`: to its directory's watches with its name (the events a
    /// directory hears of its entries), then to its own.
    pub(crate) fn notify(&mut self, s: &Subject, mask: u32) {
        let Some((key, dir)) = s.node else {
            return;
        };
        let mask = if dir { mask | IN_ISDIR } else { mask };
        if let Some((pk, name)) = &s.parent {
            if mask & CHILD_EVENTS != 0 {
                self.queue_events(*pk, mask, 0, name);
            }
        }
        self.queue_events(key, mask, 0, b"");
    }

    /// `mask` happened to the node of `s`, told to its own watches only (a change of
    /// its link count: its directory hears of the name instead).
    pub(crate) fn notify_self(&mut self, s: &Subject, mask: u32) {
        if let Some((key, dir)) = s.node {
            self.queue_events(key, if dir { mask | IN_ISDIR } else { mask }, 0, b"");
        }
    }

    /// A directory event (`IN_CREATE`, `IN_DELETE`, a move) about `name` in the
    /// directory `s.parent`.
    pub(crate) fn notify_entry(&mut self, s: &Subject, mask: u32, is_dir: bool, cookie: u32) {
        if let Some((pk, name)) = &s.parent {
            let mask = if is_dir { mask | IN_ISDIR } else { mask };
            self.queue_events(*pk, mask, cookie, &name.clone());
        }
    }

    /// `path` (from `base`) was just made, not a directory: `IN_CREATE` in its
    /// directory.
    pub(crate) fn created_at(&mut self, base: &Location, path: &[u8]) {
        if self.watched() {
            let s = self.subject_at(base, path);
            self.notify_entry(&s, IN_CREATE, false, 0);
        }
    }

    /// A rename of `from` to `to`: `IN_MOVED_FROM` and `IN_MOVED_TO` with one cookie,
    /// the link count of what `to` named changed (`IN_ATTRIB`; not when `replaced` is
    /// false: an exchange, where it moved too), then `IN_MOVE_SELF` on what moved
    /// (Linux's `fsnotify_move`).
    pub(crate) fn notify_move(&mut self, from: &Subject, to: &Subject, replaced: bool) {
        let Some((key, dir)) = from.node else {
            return;
        };
        self.inotify.cookie = self.inotify.cookie.wrapping_add(1);
        let cookie = self.inotify.cookie;
        self.notify_entry(from, IN_MOVED_FROM, dir, cookie);
        self.notify_entry(to, IN_MOVED_TO, dir, cookie);
        if replaced && to.node.is_some() && to.node != from.node {
            self.notify_self(to, IN_ATTRIB);
        }
        let mask = if dir {
            IN_MOVE_SELF | IN_ISDIR
        } else {
            IN_MOVE_SELF
        };
        self.queue_events(key, mask, 0, b"");
    }

    /// The last name of the node of `s` went (`IN_DELETE_SELF`): its watches end
    /// (`IN_IGNORED`).
    pub(crate) fn notify_gone(&mut self, s: &Subject) {
        let Some((key, dir)) = s.node else {
            return;
        };
        let mask = if dir {
            IN_DELETE_SELF | IN_ISDIR
        } else {
            IN_DELETE_SELF
        };
        self.queue_events(key, mask, 0, b"");
        for i in self.inotify.all.iter().filter_map(Weak::upgrade) {
            let gone: Vec<i32> = i
                .watches
                .borrow()
                .iter()
                .filter(|(_, w)| w.key == key)
                .map(|(wd, _)| *wd)
                .collect();
            for wd in gone {
                i.end_watch(wd);
            }
        }
        self.stirred = true;
    }

    /// The open files `files` are being closed for the last time (no descriptor is
    /// left): `IN_CLOSE_WRITE` or `IN_CLOSE_NOWRITE`.
    pub(crate) fn notify_last_close(&mut self, files: &[Rc<OpenFile>]) {
        if !self.watched() {
            return;
        }
        for f in files {
            // The list's own reference is the last one.
            if Rc::strong_count(f) != 1 || matches!(f.kind, FileKind::Path) {
                continue;
            }
            let s = self.subject_of_file(f);
            let mask = if f.writable() {
                IN_CLOSE_WRITE
            } else {
                IN_CLOSE_NOWRITE
            };
            self.notify(&s, mask);
        }
    }

    /// Queues an event on every watch of `key` that wants it; a one-shot watch ends.
    fn queue_events(&mut self, key: Key, mask: u32, cookie: u32, name: &[u8]) {
        let mut any = false;
        self.inotify.all.retain(|w| w.strong_count() > 0);
        for i in self.inotify.all.iter().filter_map(Weak::upgrade) {
            let hits: Vec<(i32, u32)> = i
                .watches
                .borrow()
                .iter()
                .filter(|(_, w)| w.key == key && w.mask & mask & IN_ALL_EVENTS != 0)
                .map(|(wd, w)| (*wd, w.mask))
                .collect();
            for (wd, wmask) in hits {
                any |= i.push(Event {
                    wd,
                    mask: mask & (wmask | !IN_ALL_EVENTS),
                    cookie,
                    name: name.to_vec(),
                });
                if wmask & IN_ONESHOT != 0 {
                    i.end_watch(wd);
                }
            }
        }
        if any {
            // A reader may be waiting: it is tried again, and a fast call that queued
            // the event goes through the vCPU loop so that it is tried now.
            self.stirred = true;
            if self.any_blocked() {
                self.preempt = true;
            }
        }
    }

    pub(crate) fn sys_inotify_init1(&mut self, flags: u64) -> SysResult {
        let allowed = (libc::IN_NONBLOCK | libc::IN_CLOEXEC) as u64;
        if flags & !allowed != 0 {
            return Err(errno::EINVAL.into());
        }
        self.inotify.all.retain(|w| w.strong_count() > 0);
        if self.inotify.all.len() >= MAX_INSTANCES {
            return Err(errno::EMFILE.into());
        }
        let i = Rc::new(Inotify::new(&self.mm.mem.budget()));
        self.inotify.all.push(Rc::downgrade(&i));
        self.add_anon(FileKind::Inotify(i), libc::O_RDONLY, flags)
    }

    /// The instance behind `fd` (`EINVAL` for another kind of file).
    fn instance(&self, fd: u64) -> Result<Rc<Inotify>, SysErr> {
        match &self.proc.files.get(fd)?.kind {
            FileKind::Inotify(i) => Ok(Rc::clone(i)),
            _ => Err(errno::EINVAL.into()),
        }
    }

    pub(crate) fn sys_inotify_add_watch(&mut self, fd: u64, ptr: u64, mask: u64) -> SysResult {
        let mask = mask as u32;
        if mask & !ALL_BITS != 0 || mask & ALL_BITS == 0 {
            return Err(errno::EINVAL.into());
        }
        let f = self.proc.files.get(fd)?;
        if mask & IN_MASK_ADD != 0 && mask & IN_MASK_CREATE != 0 {
            return Err(errno::EINVAL.into());
        }
        let FileKind::Inotify(i) = &f.kind else {
            return Err(errno::EINVAL.into());
        };
        let i = Rc::clone(i);
        let path = self.path_arg(ptr)?;
        let base = self.base_for(&path, libc::AT_FDCWD as u64)?;
        let loc = self.vfs.resolve(&base, &path, mask & IN_DONT_FOLLOW == 0)?;
        let m = self.vfs.meta(&loc)?;
        if mask & IN_ONLYDIR != 0 && m.mode & libc::S_IFMT != libc::S_IFDIR {
            return Err(errno::ENOTDIR.into());
        }
        // Watching needs read permission on it (Linux's inotify_find_inode).
        self.vfs.permission(&loc, 4)?;
        let key = (m.dev, m.ino);
        let existing = i
            .watches
            .borrow()
            .iter()
            .find(|(_, w)| w.key == key)
            .map(|(wd, _)| *wd);
        let flags = mask & !(IN_MASK_ADD | IN_MASK_CREATE);
        if let Some(wd) = existing {
            if mask & IN_MASK_CREATE != 0 {
                return Err(errno::EEXIST.into());
            }
            let mut watches = i.watches.borrow_mut();
            if let Some(w) = watches.get_mut(&wd) {
                w.mask = if mask & IN_MASK_ADD != 0 {
                    w.mask | flags
                } else {
                    flags
                };
            }
            return Ok(wd as u64);
        }
        if self.inotify.watch_count() >= MAX_WATCHES {
            return Err(errno::ENOSPC.into());
        }
        let wd = i.last_wd.get().checked_add(1).unwrap_or(1);
        i.last_wd.set(wd);
        i.watches
            .borrow_mut()
            .insert(wd, Watch { key, mask: flags });
        Ok(wd as u64)
    }

    pub(crate) fn sys_inotify_rm_watch(&mut self, fd: u64, wd: u64) -> SysResult {
        let i = self.instance(fd)?;
        if !i.end_watch(wd as i32) {
            return Err(errno::EINVAL.into());
        }
        self.stirred = true;
        Ok(0)
    }

    /// `read` of an inotify instance: as many whole events as `buf` holds (`EINVAL`
    /// when not even the first fits), waiting for one while there are none.
    pub(crate) fn read_inotify(
        &mut self,
        i: &Inotify,
        buf: &mut [u8],
        nonblock: bool,
    ) -> Result<usize, SysErr> {
        let mut q = i.queue.borrow_mut();
        let Some(first) = q.front() else {
            drop(q);
            return Err(if nonblock {
                errno::EAGAIN.into()
            } else {
                self.park(None)
            });
        };
        if first.size() > buf.len() {
            return Err(errno::EINVAL.into());
        }
        let mut at = 0;
        while let Some(e) = q.front() {
            let size = e.size();
            if at + size > buf.len() {
                break;
            }
            let out = &mut buf[at..at + size];
            out.fill(0);
            out[0..4].copy_from_slice(&e.wd.to_ne_bytes());
            out[4..8].copy_from_slice(&e.mask.to_ne_bytes());
            out[8..12].copy_from_slice(&e.cookie.to_ne_bytes());
            out[12..16].copy_from_slice(&(e.padded() as u32).to_ne_bytes());
            out[16..16 + e.name.len()].copy_from_slice(&e.name);
            at += size;
            drop(q);
            i.pop();
            q = i.queue.borrow_mut();
        }
        Ok(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(wd: i32, mask: u32, name: &[u8]) -> Event {
        Event {
            wd,
            mask,
            cookie: 0,
            name: name.to_vec(),
        }
    }

    #[test]
    fn names_are_padded_to_sixteen_bytes_with_their_nul() {
        assert_eq!(ev(1, IN_CREATE, b"").size(), 16);
        assert_eq!(ev(1, IN_CREATE, b"a").size(), 32);
        assert_eq!(ev(1, IN_CREATE, &[b'x'; 15]).size(), 32);
        assert_eq!(ev(1, IN_CREATE, &[b'x'; 16]).size(), 48);
    }

    #[test]
    fn a_repeated_event_merges_and_a_full_queue_says_so_once() {
        let i = Inotify::new(&Rc::new(Budget::detached(1 << 20)));
        assert!(i.push(ev(1, IN_MODIFY, b"f")));
        assert!(!i.push(ev(1, IN_MODIFY, b"f")));
        assert!(i.push(ev(1, IN_MODIFY, b"g")));
        for n in 0..10 {
            i.push(ev(1, IN_CREATE, format!("{n}").as_bytes()));
        }
        let q = i.queue.borrow();
        assert_eq!(q.len(), MAX_QUEUED + 1);
        assert_eq!(q.back().map(|e| e.mask), Some(IN_Q_OVERFLOW));
    }
}
