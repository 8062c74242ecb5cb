//! The sandbox's in-memory /tmp: bounded by `tmp_size` and charged against guest
//! memory (its data counts as the sandbox's memory, as a tmpfs does in a cgroup).
//! What the VMM keeps besides the data is charged too: each directory entry (its name,
//! the inode, a symlink's target; see [`entry_cost`]) is charged to its directory
//! while there, so a million empty files or long symlinks cost the sandbox's memory,
//! not the host's (ENOSPC once the budget is spent, as a full tmpfs answers).

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;

use super::{Meta, Time};
use crate::errno::{self, Errno};
use crate::guest::layout::PAGE_SIZE;
use crate::memory::{Budget, HeapCharge};
use crate::pipe::Pipe;

/// What a tmpfs inode holds.
#[derive(Debug)]
pub(crate) enum TmpData {
    /// A directory.
    Dir(BTreeMap<Vec<u8>, Rc<TmpInode>>),
    /// A regular file.
    File(FileData),
    /// A symlink.
    Link(Vec<u8>),
    /// An image root's upper layer only: the name is deleted from the layers below.
    Whiteout,
    /// A named pipe (FIFO).
    Fifo(Rc<RefCell<Pipe>>),
    /// A socket's name in the filesystem (`bind`): the personality's key for the
    /// socket bound there (the node stays after the socket goes, as on Linux).
    Socket(u64),
}

/// A regular file's bytes: its length and the pages written. A hole (past what was
/// written, or left by a seek) reads as zeros and holds no page, as on Linux's tmpfs:
/// a file of 2 GiB and three bytes written at its end costs one page.
#[derive(Debug, Default, Clone)]
pub(crate) struct FileData {
    len: u64,
    pages: BTreeMap<u64, Box<[u8]>>,
}

impl FileData {
    /// The file's size.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Pages held.
    fn held(&self) -> u64 {
        self.pages.len() as u64
    }

    /// Pages a write of `len` bytes at `off` would add.
    fn missing(&self, off: u64, len: u64) -> u64 {
        if len == 0 {
            return 0;
        }
        let (first, last) = (off / PAGE_SIZE, (off + len - 1) / PAGE_SIZE);
        let present = self.pages.range(first..=last).count() as u64;
        last - first + 1 - present
    }

    /// Copies the bytes at `off` into `buf` (zeros in holes); the count (0 at the end).
    fn read(&self, off: u64, buf: &mut [u8]) -> usize {
        let n = (buf.len() as u64).min(self.len.saturating_sub(off)) as usize;
        let mut done = 0;
        while done < n {
            let at = off + done as u64;
            let (index, inner) = (at / PAGE_SIZE, (at % PAGE_SIZE) as usize);
            let k = (n - done).min(PAGE_SIZE as usize - inner);
            match self.pages.get(&index) {
                Some(p) => buf[done..done + k].copy_from_slice(&p[inner..inner + k]),
                None => buf[done..done + k].fill(0),
            }
            done += k;
        }
        n
    }

    /// Writes `data` at `off` (the pages it needs made), growing the file.
    fn write(&mut self, off: u64, data: &[u8]) {
        let mut done = 0;
        while done < data.len() {
            let at = off + done as u64;
            let (index, inner) = (at / PAGE_SIZE, (at % PAGE_SIZE) as usize);
            let k = (data.len() - done).min(PAGE_SIZE as usize - inner);
            let p = self
                .pages
                .entry(index)
                .or_insert_with(|| vec![0u8; PAGE_SIZE as usize].into_boxed_slice());
            p[inner..inner + k].copy_from_slice(&data[done..done + k]);
            done += k;
        }
        self.len = self.len.max(off + data.len() as u64);
    }

    /// Zeros bytes `off .. off + len`: pages wholly inside go (their count
    /// returned, the one holding the end of the file too, as Linux's tmpfs), the
    /// partly covered ones at either end are zeroed there.
    fn punch(&mut self, off: u64, len: u64) -> u64 {
        if len == 0 || off >= self.len {
            return 0;
        }
        let end = off.saturating_add(len);
        let (first_whole, end_whole) = (off.div_ceil(PAGE_SIZE), end / PAGE_SIZE);
        let mut gone = 0;
        if first_whole < end_whole {
            let tail = self.pages.split_off(&end_whole);
            gone = self.pages.split_off(&first_whole).len() as u64;
            self.pages.extend(tail);
        }
        for index in [off / PAGE_SIZE, (end - 1) / PAGE_SIZE] {
            let base = index * PAGE_SIZE;
            let (from, to) = (off.max(base), end.min(base + PAGE_SIZE));
            if let Some(p) = self.pages.get_mut(&index) {
                p[(from - base) as usize..(to - base) as usize].fill(0);
            }
        }
        gone
    }

    /// Sets the size: pages past it go (their count returned), the last page's bytes
    /// past it become zeros (they read so if the file grows again).
    fn set_len(&mut self, len: u64) -> u64 {
        let keep = len.div_ceil(PAGE_SIZE);
        let gone = self.pages.split_off(&keep).len() as u64;
        if len % PAGE_SIZE != 0 {
            if let Some(p) = self.pages.get_mut(&(len / PAGE_SIZE)) {
                p[(len % PAGE_SIZE) as usize..].fill(0);
            }
        }
        self.len = len;
        gone
    }
}

/// One tmpfs inode.
#[derive(Debug)]
pub(crate) struct TmpInode {
    /// Inode number.
    pub(crate) ino: u64,
    /// Contents.
    pub(crate) data: RefCell<TmpData>,
    /// Permission bits (`0o7777`).
    pub(crate) mode: Cell<u32>,
    /// Links to it.
    pub(crate) nlink: Cell<u64>,
    /// Access, modification and change times.
    pub(crate) times: Cell<[Time; 3]>,
    /// An image root's upper layer only: this directory hides the layers' one below.
    pub(crate) opaque: Cell<bool>,
    /// File seals (`F_ADD_SEALS`): a file that is not a sealable memfd has
    /// `F_SEAL_SEAL`, as on Linux's shmem.
    pub(crate) seals: Cell<u32>,
    /// A directory: what its entries cost (see [`entry_cost`]).
    names: RefCell<HeapCharge>,
    fs: Rc<TmpFs>,
}

/// `F_SEAL_SEAL`: no more seals.
pub(crate) const F_SEAL_SEAL: u32 = 0x1;
/// `F_SEAL_SHRINK`: the size never goes down.
pub(crate) const F_SEAL_SHRINK: u32 = 0x2;
/// `F_SEAL_GROW`: the size never goes up.
pub(crate) const F_SEAL_GROW: u32 = 0x4;
/// `F_SEAL_WRITE`: the contents never change.
pub(crate) const F_SEAL_WRITE: u32 = 0x8;
/// `F_SEAL_FUTURE_WRITE`: no new writes (existing writable mappings keep theirs).
pub(crate) const F_SEAL_FUTURE_WRITE: u32 = 0x10;
/// `F_SEAL_EXEC`: the execute bits never change.
pub(crate) const F_SEAL_EXEC: u32 = 0x20;

/// What a directory entry costs the VMM besides its name: the map's node, the inode and
/// its metadata (an estimate on the safe side).
const ENTRY_COST: u64 = 256;

/// What the entry `name` for `node` costs while it is in a directory.
fn entry_cost(name: &[u8], node: &TmpInode) -> u64 {
    let target = match &*node.data.borrow() {
        TmpData::Link(t) => t.len() as u64,
        _ => 0,
    };
    ENTRY_COST + name.len() as u64 + target
}

/// A name of `node` was taken away: one link less; none for a directory, which had
/// one name (Linux's `rmdir` leaves it with no link: nothing more is made in it).
fn unlinked(node: &TmpInode) {
    let n = if node.is_dir() {
        0
    } else {
        node.nlink.get().saturating_sub(1)
    };
    node.nlink.set(n);
}

impl Drop for TmpInode {
    fn drop(&mut self) {
        if let TmpData::File(d) = &*self.data.borrow() {
            self.fs.release(d.held());
        }
    }
}

/// The device number of a sandbox's first in-memory filesystem (`/tmp`, 0:42).
pub(crate) const TMP_DEV: u64 = 0x2a;

/// The others the plan builds number on from here, in the order they are built (0x2b
/// is the synthetic nodes', 0x2c `/proc`'s).
pub(crate) const MORE_TMP_DEVS: u64 = 0x2d;

/// The filesystem: its size limit and the memory budget it draws from.
#[derive(Debug)]
pub(crate) struct TmpFs {
    limit: u64,
    used: Cell<u64>,
    next_ino: Cell<u64>,
    budget: Rc<Budget>,
    /// The uid and gid its files belong to (the workload's).
    owner: (u32, u32),
    /// Its device number: each in-memory filesystem of a sandbox has its own, so that
    /// a device and inode number name one file (hard-link checks, `find`'s loop check,
    /// file locks), as Linux gives each tmpfs an anonymous device.
    dev: u64,
    /// Mounted `noexec`: no program runs from it, none of its files is mapped
    /// executable (each of the sandbox's in-memory filesystems is mounted once, so
    /// this is its mount's flag; see [`super::Node::noexec`]).
    noexec: bool,
}

fn pages(bytes: u64) -> u64 {
    bytes.div_ceil(PAGE_SIZE)
}

impl TmpFs {
    /// A filesystem of at most `limit` bytes of file data, its files owned by `owner`,
    /// numbered `dev` (see [`TMP_DEV`]), mounted `noexec` or not; returns its root.
    pub(crate) fn create(
        limit: u64,
        budget: Rc<Budget>,
        owner: (u32, u32),
        dev: u64,
        noexec: bool,
    ) -> Rc<TmpInode> {
        let fs = Rc::new(TmpFs {
            limit,
            used: Cell::new(0),
            next_ino: Cell::new(2),
            budget,
            owner,
            dev,
            noexec,
        });
        let root = TmpFs::inode(&fs, TmpData::Dir(BTreeMap::new()), 0o1777);
        root.nlink.set(2);
        root
    }

    /// A new inode.
    pub(crate) fn inode(fs: &Rc<TmpFs>, data: TmpData, mode: u32) -> Rc<TmpInode> {
        let ino = fs.next_ino.get();
        fs.next_ino.set(ino + 1);
        let now = Time::now();
        Rc::new(TmpInode {
            ino,
            data: RefCell::new(data),
            mode: Cell::new(mode & 0o7777),
            nlink: Cell::new(1),
            times: Cell::new([now; 3]),
            opaque: Cell::new(false),
            seals: Cell::new(F_SEAL_SEAL),
            names: RefCell::new(HeapCharge::new(&fs.budget)),
            fs: Rc::clone(fs),
        })
    }

    /// Accounts `n` more pages of file data (`ENOSPC` past the size limit or the
    /// memory budget).
    fn charge(&self, n: u64) -> Result<(), Errno> {
        let used = self.used.get() + n * PAGE_SIZE;
        if used > self.limit {
            return Err(errno::ENOSPC);
        }
        self.budget.charge(n).map_err(|_| errno::ENOSPC)?;
        self.used.set(used);
        Ok(())
    }

    /// Gives `n` pages of file data back.
    fn release(&self, n: u64) {
        self.budget.uncharge(n);
        self.used.set(self.used.get().saturating_sub(n * PAGE_SIZE));
    }

    /// Bytes of file data held (whole pages).
    pub(crate) fn used(&self) -> u64 {
        self.used.get()
    }

    /// The size limit.
    pub(crate) fn limit(&self) -> u64 {
        self.limit
    }

    /// Mounted `noexec`.
    pub(crate) fn noexec(&self) -> bool {
        self.noexec
    }
}

impl TmpInode {
    /// The filesystem it belongs to.
    pub(crate) fn fs(&self) -> &Rc<TmpFs> {
        &self.fs
    }

    /// Its metadata.
    pub(crate) fn meta(&self) -> Meta {
        let (kind, size) = match &*self.data.borrow() {
            TmpData::Dir(m) => (libc::S_IFDIR, (m.len() as u64 + 2) * 20),
            TmpData::File(d) => (libc::S_IFREG, d.len()),
            TmpData::Link(t) => (libc::S_IFLNK, t.len() as u64),
            TmpData::Whiteout => (libc::S_IFCHR, 0),
            TmpData::Fifo(_) => (libc::S_IFIFO, 0),
            TmpData::Socket(_) => (libc::S_IFSOCK, 0),
        };
        let [atime, mtime, ctime] = self.times.get();
        Meta {
            dev: self.fs.dev,
            ino: self.ino,
            mode: kind | self.mode.get(),
            nlink: self.nlink.get(),
            uid: self.fs.owner.0,
            gid: self.fs.owner.1,
            rdev: 0,
            size,
            blksize: PAGE_SIZE,
            blocks: match &*self.data.borrow() {
                TmpData::File(d) => d.held() * (PAGE_SIZE / 512),
                _ => pages(size) * (PAGE_SIZE / 512),
            },
            atime,
            mtime,
            ctime,
        }
    }

    /// `F_ADD_SEALS`: `EPERM` once sealed against more seals.
    pub(crate) fn add_seals(&self, seals: u32) -> Result<(), Errno> {
        let now = self.seals.get();
        if now & F_SEAL_SEAL != 0 {
            return Err(errno::EPERM);
        }
        self.seals.set(now | seals);
        Ok(())
    }

    /// True for a regular file.
    pub(crate) fn is_file(&self) -> bool {
        matches!(&*self.data.borrow(), TmpData::File(_))
    }

    /// True for a directory.
    pub(crate) fn is_dir(&self) -> bool {
        matches!(&*self.data.borrow(), TmpData::Dir(_))
    }

    /// The pipe of a FIFO.
    pub(crate) fn fifo(&self) -> Option<Rc<RefCell<Pipe>>> {
        match &*self.data.borrow() {
            TmpData::Fifo(p) => Some(Rc::clone(p)),
            _ => None,
        }
    }

    /// The key of the socket bound at this node.
    pub(crate) fn socket(&self) -> Option<u64> {
        match &*self.data.borrow() {
            TmpData::Socket(k) => Some(*k),
            _ => None,
        }
    }

    /// True for a whiteout (an image root's upper layer only).
    pub(crate) fn is_whiteout(&self) -> bool {
        matches!(&*self.data.borrow(), TmpData::Whiteout)
    }

    fn touch(&self, modified: bool) {
        let now = Time::now();
        let [a, m, _] = self.times.get();
        self.times.set(if modified {
            [a, now, now]
        } else {
            [now, m, now]
        });
    }

    /// Reads file data at `off`.
    pub(crate) fn read_at(&self, off: u64, buf: &mut [u8]) -> Result<usize, Errno> {
        match &*self.data.borrow() {
            TmpData::File(d) => Ok(d.read(off, buf)),
            TmpData::Dir(_) => Err(errno::EISDIR),
            TmpData::Link(_) | TmpData::Whiteout | TmpData::Fifo(_) | TmpData::Socket(_) => {
                Err(errno::EINVAL)
            }
        }
    }

    /// Writes file data at `off`, growing the file.
    pub(crate) fn write_at(&self, off: u64, data: &[u8]) -> Result<usize, Errno> {
        let mut guard = self.data.borrow_mut();
        let TmpData::File(d) = &mut *guard else {
            return Err(errno::EISDIR);
        };
        let seals = self.seals.get();
        if seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE) != 0 && !data.is_empty() {
            return Err(errno::EPERM);
        }
        let end = off.checked_add(data.len() as u64).ok_or(errno::EFBIG)?;
        if end > d.len() && seals & F_SEAL_GROW != 0 {
            return Err(errno::EPERM);
        }
        if end > i64::MAX as u64 {
            return Err(errno::EFBIG);
        }
        self.fs.charge(d.missing(off, data.len() as u64))?;
        d.write(off, data);
        drop(guard);
        self.touch(true);
        Ok(data.len())
    }

    /// Whether it is sealed against writes (`F_SEAL_WRITE`, `F_SEAL_FUTURE_WRITE`).
    pub(crate) fn write_sealed(&self) -> bool {
        self.seals.get() & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE) != 0
    }

    /// `FALLOC_FL_PUNCH_HOLE`: bytes `off .. off + len` (within the size) read as
    /// zeros from now on; whole pages there go back. The size stays.
    pub(crate) fn punch_hole(&self, off: u64, len: u64) -> Result<(), Errno> {
        let mut guard = self.data.borrow_mut();
        let TmpData::File(d) = &mut *guard else {
            return Err(errno::EISDIR);
        };
        if self.write_sealed() {
            return Err(errno::EPERM);
        }
        let gone = d.punch(off, len);
        self.fs.release(gone);
        drop(guard);
        self.touch(true);
        Ok(())
    }

    /// Sets the file size.
    pub(crate) fn truncate(&self, len: u64) -> Result<(), Errno> {
        let mut guard = self.data.borrow_mut();
        let TmpData::File(d) = &mut *guard else {
            return Err(errno::EISDIR);
        };
        let seals = self.seals.get();
        let old = d.len();
        if (len < old && seals & F_SEAL_SHRINK != 0) || (len > old && seals & F_SEAL_GROW != 0) {
            return Err(errno::EPERM);
        }
        let gone = d.set_len(len);
        self.fs.release(gone);
        drop(guard);
        self.touch(true);
        Ok(())
    }

    /// The child `name` of a directory.
    pub(crate) fn child(&self, name: &[u8]) -> Option<Rc<TmpInode>> {
        match &*self.data.borrow() {
            TmpData::Dir(m) => m.get(name).cloned(),
            _ => None,
        }
    }

    /// The symlink target.
    pub(crate) fn link_target(&self) -> Option<Vec<u8>> {
        match &*self.data.borrow() {
            TmpData::Link(t) => Some(t.clone()),
            _ => None,
        }
    }

    /// The entries of a directory.
    pub(crate) fn entries(&self) -> Vec<(Vec<u8>, Rc<TmpInode>)> {
        match &*self.data.borrow() {
            TmpData::Dir(m) => m.iter().map(|(k, v)| (k.clone(), Rc::clone(v))).collect(),
            _ => Vec::new(),
        }
    }

    /// Adds `node` as `name`; `EEXIST` when taken.
    pub(crate) fn insert(&self, name: &[u8], node: Rc<TmpInode>) -> Result<(), Errno> {
        let mut guard = self.data.borrow_mut();
        let TmpData::Dir(m) = &mut *guard else {
            return Err(errno::ENOTDIR);
        };
        // Nothing is made in a removed directory (Linux: `ENOENT`).
        if self.nlink.get() == 0 {
            return Err(errno::ENOENT);
        }
        if m.contains_key(name) {
            return Err(errno::EEXIST);
        }
        self.charge_entry(entry_cost(name, &node))?;
        if node.is_dir() {
            self.nlink.set(self.nlink.get() + 1);
        }
        m.insert(name.to_vec(), node);
        drop(guard);
        self.touch(true);
        Ok(())
    }

    /// Adds `node` as `name` where the name is free or a whiteout; returns whether a
    /// whiteout was replaced. `EEXIST` when the name is taken by anything else.
    pub(crate) fn insert_over_whiteout(
        &self,
        name: &[u8],
        node: Rc<TmpInode>,
    ) -> Result<bool, Errno> {
        let was = self.child(name).is_some_and(|c| c.is_whiteout());
        if was {
            self.detach(name);
        }
        self.insert(name, node)?;
        Ok(was)
    }

    /// Removes `name`: a directory only when `dir` (and empty), a non-directory only
    /// when not.
    pub(crate) fn remove(&self, name: &[u8], dir: bool) -> Result<Rc<TmpInode>, Errno> {
        let mut guard = self.data.borrow_mut();
        let TmpData::Dir(m) = &mut *guard else {
            return Err(errno::ENOTDIR);
        };
        let node = m.get(name).cloned().ok_or(errno::ENOENT)?;
        match (dir, node.is_dir()) {
            (true, false) => return Err(errno::ENOTDIR),
            (false, true) => return Err(errno::EISDIR),
            (true, true) if !node.entries().is_empty() => return Err(errno::ENOTEMPTY),
            _ => {}
        }
        m.remove(name);
        drop(guard);
        self.uncharge_entry(entry_cost(name, &node));
        if node.is_dir() {
            self.nlink.set(self.nlink.get().saturating_sub(1));
        }
        unlinked(&node);
        self.touch(true);
        Ok(node)
    }

    /// Takes `name` out of a directory without any check (rename's source side).
    pub(crate) fn detach(&self, name: &[u8]) -> Option<Rc<TmpInode>> {
        let mut guard = self.data.borrow_mut();
        let TmpData::Dir(m) = &mut *guard else {
            return None;
        };
        let node = m.remove(name);
        drop(guard);
        if let Some(n) = &node {
            self.uncharge_entry(entry_cost(name, n));
        }
        self.touch(true);
        node
    }

    /// Puts `node` as `name` in place of what is there, with no check and no link count
    /// changed (`RENAME_EXCHANGE`: both names stay linked, to each other's node).
    pub(crate) fn swap_in(&self, name: &[u8], node: Rc<TmpInode>) -> Result<(), Errno> {
        let mut guard = self.data.borrow_mut();
        let TmpData::Dir(m) = &mut *guard else {
            return Err(errno::ENOTDIR);
        };
        let old_cost = m.get(name).map_or(0, |o| entry_cost(name, o));
        self.charge_entry(entry_cost(name, &node))?;
        m.insert(name.to_vec(), node);
        drop(guard);
        self.uncharge_entry(old_cost);
        self.touch(true);
        Ok(())
    }

    /// Replaces (or adds) `name` with `node` (rename's target side). Returns what was there.
    pub(crate) fn replace(
        &self,
        name: &[u8],
        node: Rc<TmpInode>,
    ) -> Result<Option<Rc<TmpInode>>, Errno> {
        let mut guard = self.data.borrow_mut();
        let TmpData::Dir(m) = &mut *guard else {
            return Err(errno::ENOTDIR);
        };
        if self.nlink.get() == 0 {
            return Err(errno::ENOENT);
        }
        if let Some(old) = m.get(name) {
            match (node.is_dir(), old.is_dir()) {
                (true, false) => return Err(errno::ENOTDIR),
                (false, true) => return Err(errno::EISDIR),
                (true, true) if !old.entries().is_empty() => return Err(errno::ENOTEMPTY),
                _ => {}
            }
        }
        let old_cost = m.get(name).map_or(0, |o| entry_cost(name, o));
        self.charge_entry(entry_cost(name, &node))?;
        let old = m.insert(name.to_vec(), node);
        drop(guard);
        self.uncharge_entry(old_cost);
        if let Some(o) = &old {
            unlinked(o);
        }
        self.touch(true);
        Ok(old)
    }

    /// Charges a new entry of this directory (ENOSPC when the budget is spent).
    fn charge_entry(&self, cost: u64) -> Result<(), Errno> {
        let mut c = self.names.borrow_mut();
        let now = c.bytes();
        c.set(now.saturating_add(cost)).map_err(|_| errno::ENOSPC)
    }

    /// Gives back what an entry of this directory cost.
    fn uncharge_entry(&self, cost: u64) {
        let mut c = self.names.borrow_mut();
        let now = c.bytes();
        let _ = c.set(now.saturating_sub(cost));
    }

    /// Sets the permission bits.
    pub(crate) fn chmod(&self, mode: u32) {
        self.mode.set(mode & 0o7777);
        let [a, m, _] = self.times.get();
        self.times.set([a, m, Time::now()]);
    }

    /// Sets access and modification times (`None` leaves one as is).
    pub(crate) fn set_times(&self, atime: Option<Time>, mtime: Option<Time>) {
        let [a, m, _] = self.times.get();
        self.times
            .set([atime.unwrap_or(a), mtime.unwrap_or(m), Time::now()]);
    }
}

impl crate::snap::Snap for TmpData {
    fn snap(&self, m: &mut crate::snap::Memo) -> Result<Self, crate::snap::SnapError> {
        Ok(match self {
            TmpData::Dir(d) => TmpData::Dir(crate::snap::Snap::snap(d, m)?),
            TmpData::File(d) => TmpData::File(d.clone()),
            TmpData::Link(t) => TmpData::Link(t.clone()),
            TmpData::Whiteout => TmpData::Whiteout,
            TmpData::Fifo(p) => {
                let p = crate::snap::Snap::snap(p, m)?;
                m.note_pipe(&p);
                TmpData::Fifo(p)
            }
            TmpData::Socket(k) => TmpData::Socket(*k),
        })
    }
}

impl crate::snap::Snap for TmpInode {
    fn snap(&self, m: &mut crate::snap::Memo) -> Result<Self, crate::snap::SnapError> {
        Ok(TmpInode {
            ino: self.ino,
            data: self.data.snap(m)?,
            mode: self.mode.snap(m)?,
            nlink: self.nlink.snap(m)?,
            times: self.times.snap(m)?,
            opaque: self.opaque.snap(m)?,
            seals: self.seals.snap(m)?,
            names: self.names.snap(m)?,
            fs: self.fs.snap(m)?,
        })
    }
}

impl crate::snap::Snap for TmpFs {
    fn snap(&self, m: &mut crate::snap::Memo) -> Result<Self, crate::snap::SnapError> {
        Ok(TmpFs {
            limit: self.limit,
            used: self.used.snap(m)?,
            next_ino: self.next_ino.snap(m)?,
            budget: self.budget.snap(m)?,
            owner: self.owner,
            dev: self.dev,
            noexec: self.noexec,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::Memory;

    /// A punched range reads as zeros and nothing else changes; whole pages inside go,
    /// for every placement of the range against page boundaries and the end.
    #[test]
    fn punch_zeroes_exactly_the_range_and_frees_whole_pages() {
        let len = 5 * PAGE_SIZE + 100;
        let p = PAGE_SIZE;
        for (off, n) in [
            (0, 1),
            (10, 20),
            (p - 1, 2),
            (p, p),
            (p - 1, p + 2),
            (100, 3 * p),
            (0, len),
            (2 * p + 5, 10 * p),
            (len, 10),
            (len - 1, 1),
            (4 * p, p + 100),
        ] {
            let mut d = FileData::default();
            let bytes: Vec<u8> = (0..len).map(|i| (i % 251 + 1) as u8).collect();
            d.write(0, &bytes);
            let before = d.held();
            let gone = d.punch(off, n);
            assert_eq!(d.len(), len);
            let mut now = vec![0u8; len as usize];
            assert_eq!(d.read(0, &mut now), len as usize);
            for i in 0..len {
                let want = if i >= off && i < off + n {
                    0
                } else {
                    bytes[i as usize]
                };
                assert_eq!(now[i as usize], want, "punch {off}+{n}: byte {i}");
            }
            let pages = len.div_ceil(p);
            let whole = if off < len {
                ((off + n) / p).min(pages).saturating_sub(off.div_ceil(p))
            } else {
                0
            };
            assert_eq!((gone, d.held()), (whole, before - whole), "punch {off}+{n}");
        }
    }

    #[test]
    fn size_limit_and_budget() {
        let mem = Memory::new(2 << 20).unwrap();
        let root = TmpFs::create(10_000, mem.budget(), (1000, 1000), TMP_DEV, false);
        let f = TmpFs::inode(root.fs(), TmpData::File(FileData::default()), 0o644);
        root.insert(b"f", Rc::clone(&f)).unwrap();
        assert_eq!(f.write_at(0, &[1u8; 8000]).unwrap(), 8000);
        assert_eq!(f.write_at(8000, &[1u8; 4000]), Err(errno::ENOSPC));
        let before = mem.used_bytes();
        assert_eq!(root.remove(b"f", false).unwrap().ino, f.ino);
        drop(f);
        assert_eq!(
            mem.used_bytes(),
            before - 3 * PAGE_SIZE,
            "data pages go back, and what the entry cost"
        );
        assert_eq!(root.fs().used(), 0);
    }

    /// A hole costs nothing and reads as zeros; shrinking gives pages back and zeroes
    /// the cut page's tail.
    #[test]
    fn sparse_files() {
        let mem = Memory::new(2 << 20).unwrap();
        let root = TmpFs::create(4 * PAGE_SIZE, mem.budget(), (1000, 1000), TMP_DEV, false);
        let f = TmpFs::inode(root.fs(), TmpData::File(FileData::default()), 0o644);
        root.insert(b"f", Rc::clone(&f)).unwrap();
        let big = (2u64 << 30) + 5;
        assert_eq!(f.write_at(big, b"xxx").unwrap(), 3);
        assert_eq!(f.meta().size, big + 3);
        assert_eq!(f.meta().blocks, PAGE_SIZE / 512);
        assert_eq!(root.fs().used(), PAGE_SIZE);
        let mut b = [7u8; 10];
        assert_eq!(f.read_at(big - 5, &mut b).unwrap(), 8);
        assert_eq!(&b[..8], b"\0\0\0\0\0xxx");
        assert_eq!(
            f.write_at(10, &[1u8; 2 * PAGE_SIZE as usize]).unwrap(),
            8192
        );
        assert_eq!(f.write_at(5 * PAGE_SIZE, b"y"), Err(errno::ENOSPC));
        f.truncate(12).unwrap();
        assert_eq!(root.fs().used(), PAGE_SIZE);
        f.truncate(100).unwrap();
        let mut b = [9u8; 100];
        assert_eq!(f.read_at(0, &mut b).unwrap(), 100);
        assert_eq!(b[10..12], [1, 1]);
        assert!(b[..10].iter().chain(&b[12..]).all(|x| *x == 0));
    }

    /// Names, inodes and symlink targets are charged to the memory budget while they
    /// are in a directory: creating entries until the budget is spent gives ENOSPC,
    /// and removing them gives it all back.
    #[test]
    fn entries_are_charged_to_the_budget() {
        let mem = Memory::new(2 << 20).unwrap();
        let root = TmpFs::create(1 << 20, mem.budget(), (1000, 1000), TMP_DEV, false);
        let start = mem.used_bytes();
        let target = vec![b'x'; 4000];
        let mut made = 0;
        let err = loop {
            let link = TmpFs::inode(root.fs(), TmpData::Link(target.clone()), 0o777);
            match root.insert(format!("l{made}").as_bytes(), link) {
                Ok(()) => made += 1,
                Err(e) => break e,
            }
        };
        assert_eq!(err, errno::ENOSPC);
        let free = (2 << 20) - start;
        assert!(made > 0 && (made as u64) * 4000 <= free, "{made} links");
        for i in 0..made {
            root.remove(format!("l{i}").as_bytes(), false).unwrap();
        }
        assert_eq!(mem.used_bytes(), start, "all of it went back");
    }

    #[test]
    fn directories_must_be_empty_to_go() {
        let mem = Memory::new(2 << 20).unwrap();
        let root = TmpFs::create(1 << 20, mem.budget(), (1000, 1000), TMP_DEV, false);
        let d = TmpFs::inode(root.fs(), TmpData::Dir(BTreeMap::new()), 0o755);
        root.insert(b"d", Rc::clone(&d)).unwrap();
        d.insert(
            b"x",
            TmpFs::inode(root.fs(), TmpData::File(FileData::default()), 0o644),
        )
        .unwrap();
        assert_eq!(root.remove(b"d", true).unwrap_err(), errno::ENOTEMPTY);
        assert_eq!(root.remove(b"d", false).unwrap_err(), errno::EISDIR);
        d.remove(b"x", false).unwrap();
        root.remove(b"d", true).unwrap();
    }
}

// Saving to and loading from a file (`savefile`).

/// Where the in-memory filesystems read back go: the roots of a sandbox built from the
/// same plan, in the order [`super::Vfs::tmp_roots`] gives.
#[derive(Debug)]
pub(crate) struct TmpLoad {
    pub(crate) roots: Vec<Rc<TmpInode>>,
    pub(crate) budget: Rc<Budget>,
}

impl TmpInode {
    /// Writes an inode (shared: once, referred to after). `root` numbers the roots.
    pub(crate) fn save(
        t: &Rc<TmpInode>,
        e: &mut crate::savefile::wire::Enc,
    ) -> Result<(), crate::snap::SnapError> {
        if !e.shared(Rc::as_ptr(t)) {
            return Ok(());
        }
        // Its filesystem first: shared by its inodes.
        if e.shared(Rc::as_ptr(&t.fs)) {
            let fs = &t.fs;
            e.u64(fs.limit);
            e.u64(fs.used.get());
            e.u64(fs.next_ino.get());
            e.u32(fs.owner.0);
            e.u32(fs.owner.1);
        }
        e.u64(t.ino);
        e.u32(t.mode.get());
        e.u64(t.nlink.get());
        for x in t.times.get() {
            e.i64(x.sec);
            e.i64(x.nsec);
        }
        e.bool(t.opaque.get());
        e.u32(t.seals.get());
        e.u64(t.names.borrow().bytes());
        let data = t.data.try_borrow().map_err(|_| {
            crate::snap::SnapError::new("a file of the in-memory filesystem is in use")
        })?;
        match &*data {
            TmpData::Dir(m) => {
                e.u8(0);
                e.usize(m.len());
                for (name, c) in m {
                    e.bytes(name);
                    TmpInode::save(c, e)?;
                }
            }
            TmpData::File(f) => {
                e.u8(1);
                e.u64(f.len);
                e.usize(f.pages.len());
                for (i, p) in &f.pages {
                    e.u64(*i);
                    e.bytes(p);
                }
            }
            TmpData::Link(l) => {
                e.u8(2);
                e.bytes(l);
            }
            TmpData::Whiteout => e.u8(3),
            TmpData::Fifo(p) => {
                e.u8(4);
                Pipe::save(p, e);
            }
            TmpData::Socket(_) => {
                return Err(crate::snap::SnapError::new(
                    "the in-memory filesystem holds a socket's name: saving sockets to a file is not supported",
                ))
            }
        }
        Ok(())
    }

    /// Reads an inode back. A filesystem's first appearance takes the next root of
    /// `to` (its limit and owner must be that root's); its root inode is that root.
    pub(crate) fn load(
        d: &mut crate::savefile::wire::Dec<'_>,
        to: &mut TmpLoad,
        depth: usize,
    ) -> Result<Rc<TmpInode>, crate::savefile::wire::WireError> {
        use crate::savefile::wire::{bad, Shared};
        let w = "a file of the in-memory filesystem";
        if depth > 4096 {
            return Err(bad("the in-memory filesystem is nested too deep"));
        }
        let id = match d.shared::<TmpInode>(w)? {
            Shared::Known(t) => return Ok(t),
            Shared::New(id) => id,
        };
        let (fs, root) = match d.shared::<TmpFs>(w)? {
            Shared::Known(fs) => (fs, None),
            Shared::New(fs_id) => {
                if to.roots.is_empty() {
                    return Err(bad(
                        "the snapshot has more in-memory filesystems than the sandbox",
                    ));
                }
                let root = to.roots.remove(0);
                let fs = Rc::clone(&root.fs);
                let (limit, used, next_ino) = (d.u64(w)?, d.u64(w)?, d.u64(w)?);
                let owner = (d.u32(w)?, d.u32(w)?);
                if limit != fs.limit || owner != fs.owner || used > limit.div_ceil(PAGE_SIZE) + 1 {
                    return Err(bad(
                        "an in-memory filesystem of the snapshot differs from the sandbox's (size limit or owner)",
                    ));
                }
                fs.used.set(used);
                fs.next_ino.set(next_ino);
                d.define(fs_id, Rc::clone(&fs));
                (fs, Some(root))
            }
        };
        let ino = d.u64(w)?;
        let mode = d.u32(w)? & 0o7777;
        let nlink = d.u64(w)?;
        let mut times = [Time { sec: 0, nsec: 0 }; 3];
        for t in &mut times {
            *t = Time {
                sec: d.i64(w)?,
                nsec: d.i64(w)?.clamp(0, 999_999_999),
            };
        }
        let opaque = d.bool(w)?;
        let seals = d.u32(w)?;
        let names = d.u64(w)?;
        let t = match root {
            Some(r) => r,
            None => Rc::new(TmpInode {
                ino,
                data: RefCell::new(TmpData::Whiteout),
                mode: Cell::new(mode),
                nlink: Cell::new(nlink),
                times: Cell::new(times),
                opaque: Cell::new(opaque),
                seals: Cell::new(seals),
                names: RefCell::new(HeapCharge::new(&to.budget)),
                fs,
            }),
        };
        t.mode.set(mode);
        t.nlink.set(nlink);
        t.times.set(times);
        t.opaque.set(opaque);
        t.seals.set(seals);
        let data = match d.u8(w)? {
            0 => {
                let n = d.len(1 << 20, w)?;
                let mut m = BTreeMap::new();
                for _ in 0..n {
                    let name = d.bytes(w)?;
                    if name.is_empty()
                        || name.len() > 255
                        || name.contains(&b'/')
                        || name.contains(&0)
                        || name == b"."
                        || name == b".."
                    {
                        return Err(bad(format!(
                            "{w}: a directory entry has an impossible name"
                        )));
                    }
                    let c = TmpInode::load(d, to, depth + 1)?;
                    m.insert(name, c);
                }
                TmpData::Dir(m)
            }
            1 => {
                let len = d.u64(w)?;
                let n = d.len(1 << 24, w)?;
                let mut pages = BTreeMap::new();
                for _ in 0..n {
                    let i = d.u64(w)?;
                    let p = d.bytes(w)?;
                    if p.len() != PAGE_SIZE as usize || i >= len.div_ceil(PAGE_SIZE) {
                        return Err(bad(format!("{w}: a page of a file is out of bounds")));
                    }
                    pages.insert(i, p.into_boxed_slice());
                }
                TmpData::File(FileData { len, pages })
            }
            2 => TmpData::Link(d.bytes(w)?),
            3 => TmpData::Whiteout,
            4 => TmpData::Fifo(Pipe::load(d, &to.budget)?),
            k => return Err(bad(format!("{w}: kind {k} is unknown"))),
        };
        *t.data.borrow_mut() = data;
        *t.names.borrow_mut() = HeapCharge::restored(&to.budget, names);
        // Defined once read: an entry naming an inode still being read (a directory
        // cycle) is not one read before, and refused.
        d.define(id, Rc::clone(&t));
        Ok(t)
    }
}
