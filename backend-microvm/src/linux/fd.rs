//! Open files and the descriptor table.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use crate::errno::{self, Errno};
use crate::memory::HeapCharge;
use crate::pipe::PipeEnd;
use crate::vfs::host::HostFd;
use crate::vfs::tmpfs::TmpInode;
use crate::vfs::{DevKind, DirEntry, Location};

thread_local! {
    /// The next inode number of a pipe or socket of the sandbox the calling thread
    /// runs (each run has its thread: numbers count from the start for each sandbox,
    /// telling nothing of others, nor of the VMM's memory).
    static NEXT_INO: std::cell::Cell<u64> = const { std::cell::Cell::new(PIPEFS_FIRST_INO) };
}

/// The first pipe and socket inode number of a sandbox.
const PIPEFS_FIRST_INO: u64 = 0x2000;
/// The inode number eventfds and epoll instances share, as Linux's anonymous inodes.
pub(crate) const ANON_INODE_INO: u64 = 0x10;
/// The inode numbers of the sandbox's stdin, stdout and stderr (pipes from the host).
pub(crate) const STDIO_INO: [u64; 3] = [0x1001, 0x1002, 0x1003];

/// The inode number and type of an open file that has no file behind it (stdio, an
/// anonymous pipe, a socket, an eventfd or epoll), as `fstat` and `/proc/PID/fd`
/// show it; `None` for files reached by a path (FIFOs included).
pub(crate) fn anon_inode(f: &OpenFile) -> Option<(u32, u64)> {
    Some(match &f.kind {
        FileKind::Socket(s) => (libc::S_IFSOCK, s.ino),
        FileKind::Pipe(_) if f.loc.is_some() => return None,
        FileKind::Pipe(end) => (libc::S_IFIFO, end.pipe.borrow().ino),
        FileKind::Stdin(_) => (libc::S_IFIFO, STDIO_INO[0]),
        FileKind::Output(_, false) => (libc::S_IFIFO, STDIO_INO[1]),
        FileKind::Output(_, true) => (libc::S_IFIFO, STDIO_INO[2]),
        FileKind::EventFd(_)
        | FileKind::TimerFd(_)
        | FileKind::SignalFd(_)
        | FileKind::PidFd(_)
        | FileKind::Inotify(_)
        | FileKind::Epoll(..) => (0, ANON_INODE_INO),
        FileKind::Mqueue(q) => (
            libc::S_IFREG,
            0x7000_0000 + Rc::as_ptr(q) as u64 % 0x1000_0000,
        ),
        _ => return None,
    })
}

/// A fresh pipe or socket inode number.
pub(crate) fn next_ino() -> u64 {
    NEXT_INO.with(|n| {
        let v = n.get();
        n.set(v.wrapping_add(1).max(PIPEFS_FIRST_INO));
        v
    })
}

/// What an open file is.
#[derive(Debug)]
pub(crate) enum FileKind {
    /// The stdin of a run (channel 0) or of a live sandbox's exec (its channel).
    Stdin(u32),
    /// stdout (`true`: stderr) of a run (channel 0) or of an exec (its channel).
    Output(u32, bool),
    /// A host regular file.
    Host(HostFd),
    /// A directory (listed through the VFS).
    Dir,
    /// A tmpfs file (directories are `Dir`).
    Tmp(Rc<TmpInode>),
    /// A device.
    Dev(DevKind),
    /// A generated read-only file.
    Gen(Rc<[u8]>),
    /// A pipe end.
    Pipe(PipeEnd),
    /// A socket inside the guest: `AF_UNIX` (a `socketpair` end, or made by `socket`),
    /// or `AF_INET`/`AF_INET6` on the sandbox's own loopback (`inet.rs`).
    Socket(Socket),
    /// An `eventfd`.
    EventFd(EventFd),
    /// A `timerfd` (`timers.rs`).
    TimerFd(Rc<super::timers::TimerFd>),
    /// A `signalfd` and its mask (`sigfd.rs`).
    SignalFd(Cell<u64>),
    /// An `inotify` instance (`inotify.rs`).
    Inotify(Rc<super::inotify::Inotify>),
    /// An `epoll` instance: its interest list and what that costs the sandbox.
    Epoll(RefCell<Vec<Interest>>, RefCell<HeapCharge>),
    /// An `O_PATH` handle.
    Path,
    /// A terminal (`linux/tty.rs`).
    Tty(Rc<super::tty::Tty>),
    /// The master of a pseudo-terminal a program opened (`/dev/ptmx`).
    PtyMaster(super::tty::Master),
    /// A process descriptor (`pidfd.rs`).
    PidFd(super::pidfd::PidFd),
    /// A POSIX message queue (`mqueue.rs`).
    Mqueue(Rc<super::mqueue::Mq>),
}

/// An `AF_UNIX` socket: two pipes, one each way (either side may be shut down), the
/// descriptors and credentials in flight beside the bytes, and what names it (see
/// `unix.rs`, `scm.rs`).
#[derive(Debug)]
pub(crate) struct Socket {
    /// What the peer wrote (a datagram socket made by `socket`: its receive queue,
    /// written by every sender).
    pub(crate) rx: RefCell<Option<PipeEnd>>,
    /// Where this end writes.
    pub(crate) tx: RefCell<Option<PipeEnd>>,
    /// `SOCK_STREAM`, `SOCK_DGRAM` or `SOCK_SEQPACKET`.
    pub(crate) kind: i32,
    /// Its inode number (each end its own, as sockfs's).
    pub(crate) ino: u64,
    /// What came with the bytes of `rx` (descriptors, credentials, the sender's name).
    pub(crate) inbox: Rc<RefCell<super::scm::Inbox>>,
    /// The peer's inbox, which goes with `tx`.
    pub(crate) outbox: RefCell<Option<Rc<RefCell<super::scm::Inbox>>>>,
    /// Names, connection state, backlog.
    pub(crate) unix: RefCell<super::unix::UnixState>,
    /// An `AF_INET`/`AF_INET6` socket's addresses and options (`inet.rs`); `None` for
    /// `AF_UNIX`.
    pub(crate) inet: Option<Box<RefCell<super::inet::InetState>>>,
}

impl Drop for Socket {
    /// The last reference closed: a TCP connection may end with a reset.
    fn drop(&mut self) {
        super::inet::on_close(self);
    }
}

/// An `eventfd` counter.
#[derive(Debug)]
pub(crate) struct EventFd {
    /// The count.
    pub(crate) count: Cell<u64>,
    /// `EFD_SEMAPHORE`.
    pub(crate) semaphore: bool,
}

/// A descriptor an `epoll` instance watches.
#[derive(Debug, Clone)]
pub(crate) struct Interest {
    /// The descriptor number it was added as.
    pub(crate) fd: u32,
    /// The open file (the interest goes when it is closed everywhere).
    pub(crate) file: std::rc::Weak<OpenFile>,
    /// `EPOLL*` events wanted (with `EPOLLET`, `EPOLLONESHOT`).
    pub(crate) events: u32,
    /// The caller's data.
    pub(crate) data: u64,
    /// `EPOLLET`: the events last reported and the file's activity count then
    /// (see `epoll.rs`): reported again only when either changed.
    pub(crate) seen: Option<(u32, u64)>,
}

/// An open file description (shared by `dup`ed descriptors).
#[derive(Debug)]
pub(crate) struct OpenFile {
    /// What it is.
    pub(crate) kind: FileKind,
    /// Where it was opened (directories: base of `*at` calls).
    pub(crate) loc: Option<Location>,
    /// Access mode and status flags (`O_APPEND`, `O_NONBLOCK`).
    pub(crate) flags: Cell<i32>,
    /// File position.
    pub(crate) pos: Cell<u64>,
    /// A directory's entries, read at the first `getdents64`.
    pub(crate) listing: RefCell<Option<Vec<DirEntry>>>,
    /// `F_SETOWN`: who would get `SIGIO` (recorded: no I/O signal is sent).
    pub(crate) owner: Cell<i32>,
    /// `F_SETSIG`: the signal it would be.
    pub(crate) io_signal: Cell<i32>,
    /// What the listing costs the sandbox's memory (a directory of a million names,
    /// listed through many descriptors, is the sandbox's memory, not the caller's).
    pub(crate) listing_charge: RefCell<Option<HeapCharge>>,
    /// A host file's contents as its private mappings read them: made at its first
    /// `mmap` and shared by the later ones (a loader maps a library four or five
    /// times through one descriptor), so that the mappings hold one host descriptor,
    /// and a snapshot or a start from one copies one.
    pub(crate) mapped: RefCell<Option<Rc<dyn crate::mm::vma::Backing>>>,
}

impl OpenFile {
    /// A new open file.
    pub(crate) fn new(kind: FileKind, loc: Option<Location>, flags: i32) -> Rc<OpenFile> {
        Rc::new(OpenFile {
            kind,
            loc,
            flags: Cell::new(flags),
            pos: Cell::new(0),
            listing: RefCell::new(None),
            owner: Cell::new(0),
            io_signal: Cell::new(0),
            listing_charge: RefCell::new(None),
            mapped: RefCell::new(None),
        })
    }

    /// Opened for reading.
    pub(crate) fn readable(&self) -> bool {
        !matches!(self.kind, FileKind::Path) && self.flags.get() & libc::O_ACCMODE != libc::O_WRONLY
    }

    /// Opened for writing.
    pub(crate) fn writable(&self) -> bool {
        !matches!(self.kind, FileKind::Path) && self.flags.get() & libc::O_ACCMODE != libc::O_RDONLY
    }

    /// On a `noexec` mount: asked of where it was opened (`Node::noexec`); a file
    /// opened at no path (a memfd, a pipe, a socket) is on none.
    pub(crate) fn noexec(&self) -> bool {
        self.loc.as_ref().is_some_and(|l| l.node().noexec())
    }
}

#[derive(Debug, Clone)]
struct Slot {
    file: Rc<OpenFile>,
    cloexec: bool,
}

/// The descriptor table.
#[derive(Debug, Clone)]
pub(crate) struct FdTable {
    slots: Vec<Option<Slot>>,
    /// `RLIMIT_NOFILE`.
    pub(crate) limit: usize,
}

impl FdTable {
    /// An empty table of at most `limit` descriptors.
    pub(crate) fn new(limit: usize) -> FdTable {
        FdTable {
            slots: Vec::new(),
            limit,
        }
    }

    /// The file of `fd`.
    pub(crate) fn get(&self, fd: u64) -> Result<Rc<OpenFile>, Errno> {
        let i = usize::try_from(fd as i32).map_err(|_| errno::EBADF)?;
        self.slots
            .get(i)
            .and_then(Option::as_ref)
            .map(|s| Rc::clone(&s.file))
            .ok_or(errno::EBADF)
    }

    /// The size Linux's descriptor table would have now (`select` looks no further):
    /// 64 slots, grown to a power of two of 128 past the highest descriptor used.
    pub(crate) fn max_fds(&self) -> usize {
        let used = self.slots.len();
        if used <= 64 {
            64
        } else {
            ((used - 1) / 128 + 1).next_power_of_two() * 128
        }
    }

    /// Installs `file` at the lowest free descriptor at or above `min`.
    pub(crate) fn add(
        &mut self,
        file: Rc<OpenFile>,
        cloexec: bool,
        min: usize,
    ) -> Result<u64, Errno> {
        let mut i = min;
        while i < self.slots.len() && self.slots[i].is_some() {
            i += 1;
        }
        if i >= self.limit {
            return Err(errno::EMFILE);
        }
        self.put(i, file, cloexec);
        Ok(i as u64)
    }

    /// Installs `file` at `fd`, closing what was there.
    pub(crate) fn put(&mut self, fd: usize, file: Rc<OpenFile>, cloexec: bool) {
        if self.slots.len() <= fd {
            self.slots.resize(fd + 1, None);
        }
        self.slots[fd] = Some(Slot { file, cloexec });
    }

    /// Closes `fd`.
    pub(crate) fn close(&mut self, fd: u64) -> Result<(), Errno> {
        let i = usize::try_from(fd as i32).map_err(|_| errno::EBADF)?;
        match self.slots.get_mut(i) {
            Some(s @ Some(_)) => {
                *s = None;
                Ok(())
            }
            _ => Err(errno::EBADF),
        }
    }

    /// Every open descriptor.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u32, &Rc<OpenFile>)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().map(|s| (i as u32, &s.file)))
    }

    /// Closes the descriptors marked close-on-exec; their files.
    pub(crate) fn close_on_exec(&mut self) -> Vec<Rc<OpenFile>> {
        let mut gone = Vec::new();
        for s in self.slots.iter_mut() {
            if s.as_ref().is_some_and(|s| s.cloexec) {
                gone.extend(s.take().map(|s| s.file));
            }
        }
        gone
    }

    /// Closes the descriptors `first..=last` (`close_range`); with `cloexec`, marks
    /// them close-on-exec instead. The files closed.
    pub(crate) fn close_range(
        &mut self,
        first: usize,
        last: usize,
        cloexec: bool,
    ) -> Vec<Rc<OpenFile>> {
        let mut gone = Vec::new();
        let end = last.saturating_add(1).min(self.slots.len());
        for s in self.slots.iter_mut().take(end).skip(first) {
            if cloexec {
                if let Some(s) = s.as_mut() {
                    s.cloexec = true;
                }
            } else {
                gone.extend(s.take().map(|s| s.file));
            }
        }
        gone
    }

    /// The close-on-exec flag of `fd`.
    pub(crate) fn cloexec(&self, fd: u64) -> Result<bool, Errno> {
        let i = usize::try_from(fd as i32).map_err(|_| errno::EBADF)?;
        self.slots
            .get(i)
            .and_then(Option::as_ref)
            .map(|s| s.cloexec)
            .ok_or(errno::EBADF)
    }

    /// Sets the close-on-exec flag of `fd`.
    pub(crate) fn set_cloexec(&mut self, fd: u64, on: bool) -> Result<(), Errno> {
        let i = usize::try_from(fd as i32).map_err(|_| errno::EBADF)?;
        match self.slots.get_mut(i).and_then(Option::as_mut) {
            Some(s) => {
                s.cloexec = on;
                Ok(())
            }
            None => Err(errno::EBADF),
        }
    }
}

impl crate::snap::Snap for FileKind {
    fn snap(&self, m: &mut crate::snap::Memo) -> Result<Self, crate::snap::SnapError> {
        use crate::snap::SnapError;
        Ok(match self {
            FileKind::Stdin(c) => FileKind::Stdin(*c),
            FileKind::Output(c, e) => FileKind::Output(*c, *e),
            FileKind::Host(fd) => FileKind::Host(fd.snap(m)?),
            FileKind::Dir => FileKind::Dir,
            FileKind::Tmp(t) => FileKind::Tmp(t.snap(m)?),
            FileKind::Dev(d) => FileKind::Dev(*d),
            FileKind::Gen(b) => FileKind::Gen(m.bytes(b)),
            FileKind::Pipe(p) => FileKind::Pipe(p.snap(m)?),
            FileKind::Socket(s) => FileKind::Socket(s.snap(m)?),
            FileKind::EventFd(e) => FileKind::EventFd(EventFd {
                count: Cell::new(e.count.get()),
                semaphore: e.semaphore,
            }),
            FileKind::TimerFd(t) => FileKind::TimerFd(Rc::new(t.copy())),
            FileKind::SignalFd(m) => FileKind::SignalFd(Cell::new(m.get())),
            FileKind::PidFd(p) => FileKind::PidFd(*p),
            FileKind::Mqueue(q) => FileKind::Mqueue(m.rc(q, |_, q| Ok(q.copy()))?),
            FileKind::Inotify(i) => FileKind::Inotify(Rc::new(i.copy(m)?)),
            FileKind::Epoll(list, charge) => {
                // The interests' files are set once every open file is copied.
                let list = list
                    .try_borrow()
                    .map_err(|_| SnapError::new("an epoll instance is in use"))?
                    .clone();
                FileKind::Epoll(RefCell::new(list), charge.snap(m)?)
            }
            FileKind::Path => FileKind::Path,
            FileKind::Tty(_) | FileKind::PtyMaster(_) => {
                return Err(SnapError::new(
                    "a process holds a terminal (an exec with a tty, or /dev/ptmx): snapshots of terminals are not supported",
                ))
            }
        })
    }
}

impl crate::snap::Snap for Socket {
    fn snap(&self, m: &mut crate::snap::Memo) -> Result<Self, crate::snap::SnapError> {
        use crate::snap::SnapError;
        if self.inet.is_some() {
            return Err(SnapError::new(
                "a process holds an AF_INET/AF_INET6 socket: snapshots of inet sockets are not supported",
            ));
        }
        if self.unix.borrow().netlink.is_some() {
            return Err(SnapError::new(
                "a process holds an AF_NETLINK socket: snapshots of netlink sockets are not supported",
            ));
        }
        Ok(Socket {
            rx: self.rx.snap(m)?,
            tx: self.tx.snap(m)?,
            kind: self.kind,
            ino: self.ino,
            inbox: self.inbox.snap(m)?,
            outbox: self.outbox.snap(m)?,
            unix: self.unix.snap(m)?,
            inet: None,
        })
    }
}

impl crate::snap::Snap for OpenFile {
    fn snap(&self, m: &mut crate::snap::Memo) -> Result<Self, crate::snap::SnapError> {
        use crate::snap::{HeldFile, SnapError};
        use std::os::fd::AsRawFd;
        let kind = self.kind.snap(m)?;
        if let (FileKind::Host(old), FileKind::Host(new)) = (&self.kind, &kind) {
            let path = self.loc.as_ref().map(Location::path).ok_or_else(|| {
                SnapError::new("a host file is open with no path to reopen it by")
            })?;
            let flags = self.flags.get() & (libc::O_ACCMODE | libc::O_APPEND);
            let id = match m.fds {
                crate::snap::FdMode::Detached | crate::snap::FdMode::Moved => {
                    let st = crate::vfs::host::fstat(old.as_raw_fd()).map_err(|e| {
                        SnapError::new(format!(
                            "the host file {} cannot be looked at: {}",
                            String::from_utf8_lossy(&path),
                            std::io::Error::from_raw_os_error(e.0)
                        ))
                    })?;
                    (st.dev, st.ino, st.size, (st.mtime.sec, st.mtime.nsec))
                }
                crate::snap::FdMode::Charged => m
                    .held_from
                    .get(&old.as_raw_fd())
                    .map(|h| h.id)
                    .ok_or_else(|| SnapError::new("a host file of the snapshot is not recorded"))?,
            };
            m.held.push(HeldFile {
                path,
                flags,
                id,
                fd: new.as_raw_fd(),
            });
        }
        let listing = self
            .listing
            .try_borrow()
            .map_err(|_| SnapError::new("a directory listing is in use"))?
            .clone();
        Ok(OpenFile {
            kind,
            loc: self.loc.snap(m)?,
            flags: Cell::new(self.flags.get()),
            pos: Cell::new(self.pos.get()),
            listing: RefCell::new(listing),
            owner: Cell::new(self.owner.get()),
            io_signal: Cell::new(self.io_signal.get()),
            listing_charge: self.listing_charge.snap(m)?,
            mapped: RefCell::new(match &*self.mapped.borrow() {
                Some(b) => Some(crate::mm::vma::SnapBacking::snap_backing(b, m)?),
                None => None,
            }),
        })
    }
}

impl FdTable {
    /// A copy whose open files are `m`'s copies (see `snap.rs`).
    pub(crate) fn snap(
        &self,
        m: &mut crate::snap::Memo,
    ) -> Result<FdTable, crate::snap::SnapError> {
        use crate::snap::Snap;
        let mut slots = Vec::with_capacity(self.slots.len());
        for s in &self.slots {
            slots.push(match s {
                Some(s) => Some(Slot {
                    file: s.file.snap(m)?,
                    cloexec: s.cloexec,
                }),
                None => None,
            });
        }
        Ok(FdTable {
            slots,
            limit: self.limit,
        })
    }
}

/// Points the copied epoll instances' interests at the copied open files (run once
/// every open file is copied: an interest only holds its file weakly).
pub(crate) fn fix_epoll(file: &Rc<OpenFile>, m: &crate::snap::Memo) {
    if let FileKind::Epoll(list, _) = &file.kind {
        for i in list.borrow_mut().iter_mut() {
            i.file = m.weak(&i.file).unwrap_or_default();
        }
    }
}

// Saving to and loading from a file (`savefile`).
impl FdTable {
    /// Each slot: its open file and close-on-exec flag, or `None`.
    pub(crate) fn saved_slots(&self) -> Vec<Option<(&Rc<OpenFile>, bool)>> {
        self.slots
            .iter()
            .map(|s| s.as_ref().map(|s| (&s.file, s.cloexec)))
            .collect()
    }

    /// A table read back.
    pub(crate) fn restored(slots: Vec<Option<(Rc<OpenFile>, bool)>>, limit: usize) -> FdTable {
        FdTable {
            slots: slots
                .into_iter()
                .map(|s| s.map(|(file, cloexec)| Slot { file, cloexec }))
                .collect(),
            limit,
        }
    }
}
