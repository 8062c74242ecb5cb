//! Open files and the descriptor table.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::os::fd::OwnedFd;
use std::rc::Rc;

use crate::errno::{self, Errno};
use crate::vfs::tmpfs::TmpInode;
use crate::vfs::{DevKind, DirEntry, Location};

/// Capacity of a pipe, as Linux's default.
pub(crate) const PIPE_CAPACITY: usize = 64 * 1024;

/// A pipe's buffer and how many ends are open.
#[derive(Debug, Default)]
pub(crate) struct Pipe {
    /// Buffered bytes.
    pub(crate) buf: VecDeque<u8>,
    /// Open read ends.
    pub(crate) readers: usize,
    /// Open write ends.
    pub(crate) writers: usize,
}

/// One end of a pipe; dropping it closes that end.
#[derive(Debug)]
pub(crate) struct PipeEnd {
    /// The pipe.
    pub(crate) pipe: Rc<RefCell<Pipe>>,
    /// The write end (else the read end).
    pub(crate) write: bool,
}

impl PipeEnd {
    /// Opens an end.
    pub(crate) fn new(pipe: &Rc<RefCell<Pipe>>, write: bool) -> PipeEnd {
        {
            let mut p = pipe.borrow_mut();
            if write {
                p.writers += 1;
            } else {
                p.readers += 1;
            }
        }
        PipeEnd {
            pipe: Rc::clone(pipe),
            write,
        }
    }
}

impl Drop for PipeEnd {
    fn drop(&mut self) {
        let mut p = self.pipe.borrow_mut();
        if self.write {
            p.writers -= 1;
        } else {
            p.readers -= 1;
        }
    }
}

/// What an open file is.
#[derive(Debug)]
pub(crate) enum FileKind {
    /// The workload's stdin.
    Stdin,
    /// stdout (`true`: stderr).
    Output(bool),
    /// A host regular file.
    Host(OwnedFd),
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
    /// An `O_PATH` handle.
    Path,
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
}

#[derive(Debug, Clone)]
struct Slot {
    file: Rc<OpenFile>,
    cloexec: bool,
}

/// The descriptor table.
#[derive(Debug)]
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
