//! Descriptor calls: close, seek, dup, fcntl, ioctl, pipes, directory listing,
//! `fstat`, sync and truncation.

use std::mem::size_of;
use std::os::fd::AsRawFd;
use std::rc::Rc;

use zerocopy::IntoBytes;

use super::fd::{FileKind, OpenFile};
use super::locks::{self, FlockOp, Owner};
use super::stat::stat_of;
use super::{Kernel, SysErr, SysResult};
use crate::abi::{DirentHead, Flock, Stat};
use crate::errno::{self, Errno};
use crate::mm::UserPtr;
use crate::pipe::{Pipe, PipeEnd, Side};
use crate::stdio::Input;
use crate::vfs::{host, tmpfs, Meta, Opened};

/// `SIGXFSZ`.
const SIGXFSZ: i32 = 25;

/// Wraps what the VFS opened into an open file.
pub(crate) fn open_file(opened: Opened, loc: crate::vfs::Location, flags: i32) -> Rc<OpenFile> {
    let kind = match opened {
        Opened::Host(fd) => FileKind::Host(fd),
        Opened::HostDir | Opened::Virtual => FileKind::Dir,
        Opened::Tmp(t) if t.is_dir() => FileKind::Dir,
        Opened::Tmp(t) => FileKind::Tmp(t),
        Opened::Dev(d) => FileKind::Dev(d),
        Opened::Gen(b) => FileKind::Gen(b),
        Opened::Path => FileKind::Path,
        Opened::Fifo(pipe) => FileKind::Pipe(PipeEnd::open(&pipe, fifo_side(flags))),
        // Opened by `sys_openat`, which makes the contents first.
        Opened::Proc(..) => FileKind::Gen(Rc::from(&b""[..])),
        // Opened by `install_opened`, which opens the process's file anew first.
        Opened::Anon(..) => FileKind::Path,
    };
    let status = flags
        & (libc::O_ACCMODE | libc::O_APPEND | libc::O_NONBLOCK | libc::O_PATH | libc::O_DIRECTORY);
    OpenFile::new(kind, Some(loc), status)
}

/// The end a FIFO's open makes: `O_RDWR` is a reader and a writer, a read-only open
/// with `O_NONBLOCK` waited for no writer (see [`Side::ReadNow`]).
pub(crate) fn fifo_side(flags: i32) -> Side {
    match flags & libc::O_ACCMODE {
        libc::O_WRONLY => Side::Write,
        libc::O_RDWR => Side::Both,
        _ if flags & libc::O_NONBLOCK != 0 => Side::ReadNow,
        _ => Side::Read,
    }
}

/// The record layout of a directory listing.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Dirent {
    /// `struct linux_dirent64` (`getdents64`).
    Linux64,
    /// `struct linux_dirent` (the old `getdents`): the type in the record's last byte.
    Old,
}

impl Kernel {
    /// Installs an open file with no path (an eventfd, timerfd, signalfd, inotify
    /// instance) opened for `access`: its `*_NONBLOCK` and `*_CLOEXEC` flags are
    /// `O_NONBLOCK` and `O_CLOEXEC`, taken from `flags`.
    pub(crate) fn add_anon(&mut self, kind: FileKind, access: i32, flags: u64) -> SysResult {
        let nb = flags as i32 & libc::O_NONBLOCK;
        let f = OpenFile::new(kind, None, access | nb);
        Ok(self
            .proc
            .files
            .add(f, flags & libc::O_CLOEXEC as u64 != 0, 0)?)
    }

    pub(crate) fn sys_close(&mut self, fd: u64) -> SysResult {
        let f = self.proc.files.get(fd)?;
        self.proc.files.close(fd)?;
        self.closed(&[f]);
        Ok(0)
    }

    /// `close_range(first, last, flags)`.
    pub(crate) fn sys_close_range(&mut self, first: u64, last: u64, flags: u64) -> SysResult {
        const CLOSE_RANGE_UNSHARE: u64 = 2;
        const CLOSE_RANGE_CLOEXEC: u64 = 4;
        let (first, last) = (first as u32, last as u32);
        if flags & !(CLOSE_RANGE_UNSHARE | CLOSE_RANGE_CLOEXEC) != 0 || first > last {
            return Err(errno::EINVAL.into());
        }
        let gone = self.proc.files.close_range(
            first as usize,
            last as usize,
            flags & CLOSE_RANGE_CLOEXEC != 0,
        );
        self.closed(&gone);
        Ok(0)
    }

    /// The size of a seekable file.
    pub(crate) fn file_size(&self, f: &OpenFile) -> Result<u64, SysErr> {
        Ok(match &f.kind {
            FileKind::Host(fd) => host::fstat(fd.as_raw_fd())?.size,
            FileKind::Tmp(t) => t.meta().size,
            FileKind::Gen(b) => b.len() as u64,
            _ => 0,
        })
    }

    pub(crate) fn sys_lseek(&mut self, fd: u64, off: i64, whence: u64) -> SysResult {
        let f = self.proc.files.get(fd)?;
        if matches!(f.kind, FileKind::Path) {
            return Err(errno::EBADF.into());
        }
        if whence > libc::SEEK_HOLE as u64 {
            return Err(errno::EINVAL.into());
        }
        match f.kind {
            FileKind::Host(_) | FileKind::Tmp(_) | FileKind::Gen(_) => {}
            // A directory seeks from its start or its position only.
            FileKind::Dir if matches!(whence as i32, libc::SEEK_SET | libc::SEEK_CUR) => {}
            FileKind::Dir => return Err(errno::EINVAL.into()),
            // Devices, eventfds and epoll instances ignore seeks (Linux's noop_llseek).
            FileKind::Dev(_) => return Ok(0),
            FileKind::EventFd(_)
            | FileKind::TimerFd(_)
            | FileKind::SignalFd(_)
            | FileKind::Inotify(_)
            | FileKind::Epoll(..) => return Ok(f.pos.get()),
            _ => return Err(errno::ESPIPE.into()),
        }
        let base = match whence as i32 {
            libc::SEEK_SET => 0,
            libc::SEEK_CUR => f.pos.get() as i64,
            libc::SEEK_END => self.file_size(&f)? as i64,
            libc::SEEK_DATA | libc::SEEK_HOLE => {
                let size = self.file_size(&f)? as i64;
                if off < 0 || off >= size {
                    return Err(Errno(libc::ENXIO).into());
                }
                if whence as i32 == libc::SEEK_DATA {
                    0
                } else {
                    size - off
                }
            }
            _ => return Err(errno::EINVAL.into()),
        };
        let new = base
            .checked_add(off)
            .filter(|n| *n >= 0)
            .ok_or(errno::EINVAL)?;
        if matches!(f.kind, FileKind::Dir) {
            // Directory offsets are entry indexes; rewinding re-reads the directory.
            if new == 0 {
                *f.listing.borrow_mut() = None;
                *f.listing_charge.borrow_mut() = None;
            }
        }
        f.pos.set(new as u64);
        Ok(new as u64)
    }

    pub(crate) fn sys_dup(&mut self, fd: u64) -> SysResult {
        let f = self.proc.files.get(fd)?;
        Ok(self.proc.files.add(f, false, 0)?)
    }

    /// `dup2`/`dup3`, checked in Linux's order: the flags, the same descriptor twice,
    /// the new number within `RLIMIT_NOFILE` (`EBADF`), then the old descriptor.
    pub(crate) fn sys_dup3(&mut self, old: u64, new: u64, flags: u64, dup2: bool) -> SysResult {
        let (old, new) = (u64::from(old as u32), u64::from(new as u32));
        if dup2 && old == new {
            self.proc.files.get(old)?;
            return Ok(new);
        }
        if flags & !(libc::O_CLOEXEC as u64) != 0 || old == new {
            return Err(errno::EINVAL.into());
        }
        let n = usize::try_from(new).map_err(|_| errno::EBADF)?;
        if n >= self.proc.files.limit {
            return Err(errno::EBADF.into());
        }
        let f = self.proc.files.get(old)?;
        let gone = self.proc.files.get(new).ok();
        self.proc.files.put(n, f, flags != 0);
        if let Some(g) = gone {
            self.closed(&[g]);
        }
        Ok(new)
    }

    pub(crate) fn sys_fcntl(&mut self, fd: u64, cmd: u64, arg: u64) -> SysResult {
        const F_SETSIG: i32 = 10;
        const F_GETSIG: i32 = 11;
        const F_SETOWN_EX: i32 = 15;
        const F_GETOWN_EX: i32 = 16;
        const DN_MULTISHOT: u64 = 0x8000_0000;
        const O_LARGEFILE: i32 = 0o100000;
        const SETFL: i32 =
            libc::O_APPEND | libc::O_NONBLOCK | libc::O_ASYNC | libc::O_DIRECT | libc::O_NOATIME;
        const SEALS: u32 = tmpfs::F_SEAL_SEAL
            | tmpfs::F_SEAL_SHRINK
            | tmpfs::F_SEAL_GROW
            | tmpfs::F_SEAL_WRITE
            | tmpfs::F_SEAL_FUTURE_WRITE
            | tmpfs::F_SEAL_EXEC;
        let f = self.proc.files.get(fd)?;
        let cmd = cmd as i32;
        // An O_PATH descriptor takes only these (Linux's check_fcntl_cmd).
        let path_ok = matches!(
            cmd,
            libc::F_DUPFD | libc::F_DUPFD_CLOEXEC | libc::F_GETFD | libc::F_SETFD | libc::F_GETFL
        );
        if matches!(f.kind, FileKind::Path) && !path_ok {
            return Err(errno::EBADF.into());
        }
        match cmd {
            libc::F_DUPFD | libc::F_DUPFD_CLOEXEC => {
                // The lowest number is an unsigned int, below RLIMIT_NOFILE (EINVAL).
                let min = arg as u32 as usize;
                if min >= self.proc.files.limit {
                    return Err(errno::EINVAL.into());
                }
                Ok(self.proc.files.add(f, cmd == libc::F_DUPFD_CLOEXEC, min)?)
            }
            libc::F_GETFD => Ok(u64::from(self.proc.files.cloexec(fd)?)),
            libc::F_SETFD => {
                self.proc.files.set_cloexec(fd, arg & 1 != 0)?;
                Ok(0)
            }
            libc::F_GETFL => {
                // Linux forces O_LARGEFILE on what open() opens (64-bit), not on pipes,
                // sockets, eventfds or epoll instances, nor on O_PATH descriptors.
                let opened = match f.kind {
                    FileKind::Path => false,
                    // memfd_create's file is opened O_LARGEFILE too.
                    FileKind::Stdin(_) | FileKind::Output(..) | FileKind::Tmp(_) => true,
                    _ => f.loc.is_some(),
                };
                let large = if opened { O_LARGEFILE } else { 0 };
                Ok((f.flags.get() | large) as u64)
            }
            libc::F_SETFL => {
                f.flags.set((f.flags.get() & !SETFL) | (arg as i32 & SETFL));
                Ok(0)
            }
            libc::F_GETLK
            | libc::F_OFD_GETLK
            | libc::F_SETLK
            | libc::F_SETLKW
            | libc::F_OFD_SETLK
            | libc::F_OFD_SETLKW => self.record_lock(&f, cmd, arg),
            libc::F_GETPIPE_SZ => match &f.kind {
                FileKind::Pipe(end) => Ok(end.pipe.borrow().capacity() as u64),
                _ => Err(errno::EBADF.into()),
            },
            libc::F_SETPIPE_SZ => match &f.kind {
                FileKind::Pipe(end) => Ok(end.pipe.borrow_mut().set_capacity(arg)? as u64),
                _ => Err(errno::EBADF.into()),
            },
            libc::F_NOTIFY => {
                if (arg as u32 as u64) & !DN_MULTISHOT == 0 {
                    return Ok(0);
                }
                if !matches!(f.kind, FileKind::Dir) {
                    return Err(errno::ENOTDIR.into());
                }
                // Accepted, but no change is ever signalled: counted.
                self.note_unsupported("fcntl(F_NOTIFY)");
                Ok(0)
            }
            libc::F_GETOWN => Ok(f.owner.get() as i64 as u64),
            libc::F_SETOWN => {
                f.owner.set(arg as i32);
                Ok(0)
            }
            F_GETOWN_EX => {
                let owner = f.owner.get();
                // struct f_owner_ex { int type; pid_t pid; }: F_OWNER_PGRP (2) for a group.
                let ex = if owner < 0 { [2, -owner] } else { [1, owner] };
                self.mm.write(UserPtr::<[i32; 2]>::new(arg), &ex)?;
                Ok(0)
            }
            F_SETOWN_EX => {
                let [kind, pid] = self.mm.read(UserPtr::<[i32; 2]>::new(arg))?;
                match kind {
                    0 | 1 => f.owner.set(pid),
                    2 => f.owner.set(-pid),
                    _ => return Err(errno::EINVAL.into()),
                }
                Ok(0)
            }
            F_GETSIG => Ok(f.io_signal.get() as u64),
            F_SETSIG => {
                if arg > 64 {
                    return Err(errno::EINVAL.into());
                }
                f.io_signal.set(arg as i32);
                Ok(0)
            }
            libc::F_GETLEASE => Ok(libc::F_UNLCK as u64),
            libc::F_SETLEASE => {
                if arg as i32 == libc::F_UNLCK {
                    return Ok(0);
                }
                // Leases are not offered: counted, answered as for a file others have open.
                Err(self.unsupported("fcntl(F_SETLEASE)", errno::EAGAIN))
            }
            libc::F_GET_SEALS => match &f.kind {
                FileKind::Tmp(t) => Ok(u64::from(t.seals.get())),
                _ => Err(errno::EINVAL.into()),
            },
            libc::F_ADD_SEALS => match &f.kind {
                FileKind::Tmp(t) => {
                    let seals = arg as u32;
                    if seals & !SEALS != 0 {
                        return Err(errno::EINVAL.into());
                    }
                    if !f.writable() {
                        return Err(errno::EPERM.into());
                    }
                    t.add_seals(seals)?;
                    Ok(0)
                }
                _ => Err(errno::EINVAL.into()),
            },
            _ => Err(errno::EINVAL.into()),
        }
    }

    /// `fcntl`'s record-lock commands (`locks.rs`). The `struct flock` is checked as
    /// Linux does: a known type (`F_GETLK` asks of a read or write lock), a known
    /// `whence`, no pid for open-file-description locks; setting a read lock needs the
    /// file open for reading, a write lock for writing (`EBADF`).
    fn record_lock(&mut self, f: &Rc<OpenFile>, cmd: i32, arg: u64) -> SysResult {
        let at = UserPtr::<Flock>::new(arg);
        let mut l = self.mm.read(at)?;
        let ofd = matches!(
            cmd,
            libc::F_OFD_GETLK | libc::F_OFD_SETLK | libc::F_OFD_SETLKW
        );
        let get = matches!(cmd, libc::F_GETLK | libc::F_OFD_GETLK);
        let kind = i32::from(l.l_type);
        let known = if get {
            matches!(kind, libc::F_RDLCK | libc::F_WRLCK)
        } else {
            matches!(kind, libc::F_RDLCK | libc::F_WRLCK | libc::F_UNLCK)
        };
        if !known || (ofd && l.l_pid != 0) {
            return Err(errno::EINVAL.into());
        }
        if !get
            && ((kind == libc::F_RDLCK && !f.readable())
                || (kind == libc::F_WRLCK && !f.writable()))
        {
            return Err(errno::EBADF.into());
        }
        let meta = self.file_meta(f)?;
        let size = i64::try_from(meta.size).unwrap_or(i64::MAX);
        let pos = i64::try_from(f.pos.get()).unwrap_or(i64::MAX);
        let (start, end) = locks::range_of(l.l_whence, l.l_start, l.l_len, pos, size)?;
        let key = (meta.dev, meta.ino);
        let owner = if ofd {
            Owner::File(Rc::downgrade(f))
        } else {
            Owner::Process(self.proc.pid)
        };
        let write = kind == libc::F_WRLCK;
        if get {
            match self.locks.conflict(key, &owner, write, start, end) {
                Some(r) => {
                    l.l_type = if r.write {
                        libc::F_WRLCK
                    } else {
                        libc::F_RDLCK
                    } as i16;
                    l.l_whence = libc::SEEK_SET as i16;
                    l.l_start = r.start;
                    l.l_len = if r.end == locks::OFFSET_MAX {
                        0
                    } else {
                        r.end - r.start + 1
                    };
                    // An open file description's lock has no process (-1).
                    l.l_pid = match r.owner {
                        Owner::Process(p) => p as i32,
                        Owner::File(_) => -1,
                    };
                }
                None => l.l_type = libc::F_UNLCK as i16,
            }
            self.mm.write(at, &l)?;
            return Ok(0);
        }
        let lock = (kind != libc::F_UNLCK).then_some(write);
        let tid = self.task.tid;
        self.locks.unwait(tid);
        if let Some(blocker) = lock
            .and_then(|_| self.locks.conflict(key, &owner, write, start, end))
            .cloned()
        {
            if !matches!(cmd, libc::F_SETLKW | libc::F_OFD_SETLKW) {
                return Err(errno::EAGAIN.into());
            }
            if !ofd {
                let pid = self.proc.pid;
                if self
                    .locks
                    .deadlock(pid, &blocker, |t| self.waits_for_lock(t))
                {
                    return Err(errno::EDEADLK.into());
                }
                let w = locks::Waiter {
                    tid,
                    pid,
                    key,
                    write,
                    start,
                    end,
                };
                self.locks.wait(w);
            }
            return Err(self.park(None));
        }
        self.locks.set(key, &owner, lock, start, end)?;
        // A lock given up (or narrowed, or made shared) may let a waiter on.
        self.stirred = true;
        Ok(0)
    }

    /// Task `tid` (not the current one) is parked in `fcntl(F_SETLKW)`.
    fn waits_for_lock(&self, tid: super::task::Tid) -> bool {
        self.tasks.get(&tid).is_some_and(|t| {
            matches!(&t.state, super::task::TaskState::Blocked(b)
                if b.nr == libc::SYS_fcntl as u64 && b.args[1] as i32 == libc::F_SETLKW)
        })
    }

    /// `flock(fd, op)` (`locks.rs`): `LOCK_SH`, `LOCK_EX` or `LOCK_UN`, with
    /// `LOCK_NB` not to wait (`EWOULDBLOCK`). `LOCK_MAND` is ignored, as Linux ignores it.
    pub(crate) fn sys_flock(&mut self, fd: u64, op: u64) -> SysResult {
        const LOCK_MAND: u32 = 32;
        let op = op as u32;
        if op & LOCK_MAND != 0 {
            return Ok(0);
        }
        let what = match (op & !(libc::LOCK_NB as u32)) as i32 {
            libc::LOCK_SH => FlockOp::Shared,
            libc::LOCK_EX => FlockOp::Exclusive,
            libc::LOCK_UN => FlockOp::Unlock,
            _ => return Err(errno::EINVAL.into()),
        };
        let f = self.proc.files.get(fd)?;
        if matches!(f.kind, FileKind::Path)
            || (what != FlockOp::Unlock && !f.readable() && !f.writable())
        {
            return Err(errno::EBADF.into());
        }
        let meta = self.file_meta(&f)?;
        let granted = self.locks.flock((meta.dev, meta.ino), &f, what)?;
        // A lock given up (an unlock, or a conversion's old lock, which goes even when
        // the new one must wait) may let others go on.
        self.stirred = true;
        if granted {
            return Ok(0);
        }
        if op & libc::LOCK_NB as u32 != 0 {
            return Err(errno::EAGAIN.into());
        }
        Err(self.park(None))
    }

    /// Descriptors of the current process closed (by `close`, `dup2` over one,
    /// `close_range`, `execve`): its POSIX locks on each of those files go, whatever
    /// other descriptor of the file it still has; a `flock` or OFD lock goes with the
    /// last descriptor of its open file description, and waiters may go on.
    pub(crate) fn closed(&mut self, files: &[Rc<OpenFile>]) {
        self.notify_last_close(files);
        for f in files {
            if let FileKind::Mqueue(q) = &f.kind {
                q.flush(self.proc.pid);
            }
        }
        if self.locks.is_empty() {
            return;
        }
        self.stirred = true;
        let pid = self.proc.pid;
        if !self.locks.held_by(pid) {
            return;
        }
        for f in files {
            if let Ok(m) = self.file_meta(f) {
                self.locks.release(pid, Some((m.dev, m.ino)));
            }
        }
    }

    pub(crate) fn sys_ioctl(&mut self, fd: u64, req: u64, arg: u64) -> SysResult {
        let f = self.proc.files.get(fd)?;
        if matches!(f.kind, FileKind::Path) {
            return Err(errno::EBADF.into());
        }
        match req {
            // FIOCLEX / FIONCLEX
            0x5451 | 0x5450 => {
                self.proc.files.set_cloexec(fd, req == 0x5451)?;
                Ok(0)
            }
            // FIONBIO
            0x5421 => {
                let on = self.mm.read(UserPtr::<i32>::new(arg))? != 0;
                let fl = f.flags.get();
                f.flags.set(if on {
                    fl | libc::O_NONBLOCK
                } else {
                    fl & !libc::O_NONBLOCK
                });
                Ok(0)
            }
            _ if matches!(f.kind, FileKind::PtyMaster(_)) => {
                let FileKind::PtyMaster(m) = &f.kind else {
                    return Err(errno::ENOTTY.into());
                };
                let t = std::rc::Rc::clone(&m.0);
                self.master_ioctl(&t, &f, req, arg)
            }
            _ if matches!(f.kind, FileKind::Tty(_)) => {
                let FileKind::Tty(t) = &f.kind else {
                    return Err(errno::ENOTTY.into());
                };
                let t = std::rc::Rc::clone(t);
                self.tty_ioctl(&t, &f, req, arg)
            }
            // The interface requests every socket answers (`netlink.rs`).
            0x8910..=0x89ff if matches!(f.kind, FileKind::Socket(_)) => {
                match self.netdev_ioctl(&f, req, arg) {
                    Some(r) => r,
                    None => Err(errno::ENOTTY.into()),
                }
            }
            // FIONREAD
            0x541b => {
                let n = match &f.kind {
                    FileKind::Pipe(end) if end.reads() => end.pipe.borrow().len() as u64,
                    FileKind::Socket(sk) => sk
                        .rx
                        .borrow()
                        .as_ref()
                        .map_or(0, |e| e.pipe.borrow().len() as u64),
                    FileKind::Stdin(chan) => match self.input_ref(*chan) {
                        Some(Input::Bytes(d, p)) => (d.len() - *p) as u64,
                        _ => 0,
                    },
                    FileKind::Host(_) | FileKind::Tmp(_) | FileKind::Gen(_) => {
                        self.file_size(&f)?.saturating_sub(f.pos.get())
                    }
                    FileKind::Inotify(i) => i.pending_bytes() as u64,
                    _ => return Err(errno::ENOTTY.into()),
                };
                let n = i32::try_from(n).unwrap_or(i32::MAX);
                self.mm.write(UserPtr::<i32>::new(arg), &n)?;
                Ok(0)
            }
            // Terminal requests: nothing here is a terminal.
            _ => Err(errno::ENOTTY.into()),
        }
    }

    pub(crate) fn sys_pipe2(&mut self, fds: UserPtr<[i32; 2]>, flags: u64) -> SysResult {
        let allowed = (libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_DIRECT) as u64;
        if flags & !allowed != 0 {
            return Err(errno::EINVAL.into());
        }
        self.mm.user_chunks(fds.addr(), 8, true)?;
        let pipe = Pipe::shared(super::fd::next_ino());
        let nb = flags as i32 & libc::O_NONBLOCK;
        let r = OpenFile::new(
            FileKind::Pipe(PipeEnd::new(&pipe, false)),
            None,
            libc::O_RDONLY | nb,
        );
        let w = OpenFile::new(
            FileKind::Pipe(PipeEnd::new(&pipe, true)),
            None,
            libc::O_WRONLY | nb,
        );
        let cloexec = flags & libc::O_CLOEXEC as u64 != 0;
        let rfd = self.proc.files.add(r, cloexec, 0)?;
        let wfd = match self.proc.files.add(w, cloexec, 0) {
            Ok(w) => w,
            Err(e) => {
                let _ = self.proc.files.close(rfd);
                return Err(e.into());
            }
        };
        self.mm.write(fds, &[rfd as i32, wfd as i32])?;
        Ok(0)
    }

    pub(crate) fn sys_getdents64(&mut self, fd: u64, dirp: u64, count: u64) -> SysResult {
        self.getdents(fd, dirp, count, Dirent::Linux64)
    }

    /// Fills `dirp` with as many directory entries of `fd` as fit in `count` bytes,
    /// from its position on, in the `layout` of `getdents64` or the old `getdents`.
    pub(crate) fn getdents(&mut self, fd: u64, dirp: u64, count: u64, layout: Dirent) -> SysResult {
        let f = self.proc.files.get(fd)?;
        if !matches!(f.kind, FileKind::Dir) {
            return Err(errno::ENOTDIR.into());
        }
        self.fill_listing(&f)?;
        let listing = f.listing.borrow();
        let entries = listing.as_deref().unwrap_or_default();
        let mut out = Vec::new();
        let mut i = f.pos.get() as usize;
        while i < entries.len() {
            let e = &entries[i];
            // The head; then (new) type, name, NUL padding or (old) name, NUL padding,
            // type in the record's last byte.
            let reclen = (size_of::<DirentHead>() + 1 + e.name.len() + 1).next_multiple_of(8);
            if out.len() + reclen > count as usize {
                break;
            }
            let end = out.len() + reclen;
            let head = DirentHead {
                d_ino: e.ino,
                d_off: (i + 1) as i64,
                d_reclen: reclen as u16,
            };
            out.extend_from_slice(head.as_bytes());
            match layout {
                Dirent::Linux64 => {
                    out.push(e.dtype);
                    out.extend_from_slice(&e.name);
                    out.resize(end, 0);
                }
                Dirent::Old => {
                    out.extend_from_slice(&e.name);
                    out.resize(end - 1, 0);
                    out.push(e.dtype);
                }
            }
            i += 1;
        }
        if out.is_empty() && i < entries.len() {
            return Err(errno::EINVAL.into());
        }
        drop(listing);
        self.mm.write_user(dirp, &out)?;
        f.pos.set(i as u64);
        Ok(out.len() as u64)
    }

    /// Metadata of an open file.
    pub(crate) fn file_meta(&self, f: &OpenFile) -> Result<Meta, SysErr> {
        if let (FileKind::Mqueue(q), Some((kind, ino))) = (&f.kind, super::fd::anon_inode(f)) {
            let mut m = Meta::synthetic(ino, kind | q.mode, 0, 0);
            (m.uid, m.gid) = (q.uid, q.gid);
            m.blksize = 4096;
            return Ok(m);
        }
        if let Some((kind, ino)) = super::fd::anon_inode(f) {
            // Numbers of the sandbox's own (never from the VMM's memory).
            let mut m = Meta::synthetic(ino, kind | 0o600, 0, 0);
            (m.uid, m.gid) = self.user;
            m.blksize = 4096;
            return Ok(m);
        }
        Ok(match &f.kind {
            FileKind::Host(fd) => self.vfs.show_owner(host::fstat(fd.as_raw_fd())?),
            FileKind::Tmp(t) => t.meta(),
            _ => match &f.loc {
                Some(loc) => match self.fd_file(loc)? {
                    // An `O_PATH` handle of `/proc/<pid>/fd/<n>` of a pipe: the pipe's.
                    Some(target) => return self.file_meta(&target),
                    None => self.vfs.meta(loc)?,
                },
                None => return Err(errno::EBADF.into()),
            },
        })
    }

    pub(crate) fn sys_fstat(&mut self, fd: u64, buf: UserPtr<Stat>) -> SysResult {
        let f = self.proc.files.get(fd)?;
        let m = self.file_meta(&f)?;
        self.mm.write(buf, &stat_of(&m))?;
        Ok(0)
    }

    pub(crate) fn sys_fsync(&mut self, fd: u64, data_only: bool) -> SysResult {
        let f = self.proc.files.get(fd)?;
        match &f.kind {
            FileKind::Host(h) => {
                if !self.shm.is_empty() {
                    self.host_to_file(h, 0, u64::MAX);
                }
                host::fsync(h.as_raw_fd(), data_only)?
            }
            FileKind::Path => return Err(errno::EBADF.into()),
            // Nothing to sync on a pipe, socket or event counter: EINVAL, as Linux.
            FileKind::Pipe(_)
            | FileKind::Socket(_)
            | FileKind::EventFd(_)
            | FileKind::TimerFd(_)
            | FileKind::SignalFd(_)
            | FileKind::PidFd(_)
            | FileKind::Inotify(_)
            | FileKind::Epoll(..) => return Err(errno::EINVAL.into()),
            // The queue's inode is in memory: nothing to write.
            FileKind::Mqueue(_) => return Ok(0),
            _ => {}
        }
        Ok(0)
    }

    /// `fadvise64`: advice is a hint, but checked: a pipe is `ESPIPE`, an unknown
    /// advice `EINVAL`.
    pub(crate) fn sys_fadvise(&mut self, fd: u64, advice: u64) -> SysResult {
        let f = self.proc.files.get(fd)?;
        match f.kind {
            FileKind::Path => Err(errno::EBADF.into()),
            FileKind::Pipe(_) => Err(errno::ESPIPE.into()),
            _ if advice as i32 > libc::POSIX_FADV_NOREUSE || (advice as i32) < 0 => {
                Err(errno::EINVAL.into())
            }
            _ => Ok(0),
        }
    }

    pub(crate) fn sys_ftruncate(&mut self, fd: u64, len: u64) -> SysResult {
        let f = self.proc.files.get(fd)?;
        if (len as i64) < 0 {
            return Err(errno::EINVAL.into());
        }
        // Only a regular file open for writing (before the size limit, as Linux).
        let regular = match &f.kind {
            FileKind::Host(h) => host::fstat(h.as_raw_fd())?.mode & libc::S_IFMT == libc::S_IFREG,
            FileKind::Tmp(t) => t.is_file(),
            _ => false,
        };
        if !f.writable() || !regular {
            return Err(errno::EINVAL.into());
        }
        if let Some(limit) = self.file_size_limit() {
            if len > limit {
                self.raise(SIGXFSZ)?;
                return Err(errno::EFBIG.into());
            }
        }
        match &f.kind {
            FileKind::Host(h) => host::ftruncate(h.as_raw_fd(), len)?,
            FileKind::Tmp(t) => t.truncate(len)?,
            _ => return Err(errno::EINVAL.into()),
        }
        self.notify_file(&f, super::inotify::IN_MODIFY);
        Ok(0)
    }

    /// `fallocate`: in the checks' order of Linux's `vfs_fallocate`, then tmpfs's
    /// (`shmem_fallocate`: allocation, `KEEP_SIZE`, `PUNCH_HOLE`) or the host file
    /// system's own.
    pub(crate) fn sys_fallocate(&mut self, fd: u64, mode: u64, off: u64, len: u64) -> SysResult {
        const KEEP_SIZE: u64 = 0x01;
        const PUNCH_HOLE: u64 = 0x02;
        const COLLAPSE_RANGE: u64 = 0x08;
        const ZERO_RANGE: u64 = 0x10;
        const INSERT_RANGE: u64 = 0x20;
        const UNSHARE_RANGE: u64 = 0x40;
        const MODES: u64 = PUNCH_HOLE | COLLAPSE_RANGE | ZERO_RANGE | INSERT_RANGE | UNSHARE_RANGE;
        let f = self.proc.files.get(fd)?;
        let mode = mode as u32 as u64;
        if (off as i64) < 0 || (len as i64) <= 0 {
            return Err(errno::EINVAL.into());
        }
        // One mode at most, KEEP_SIZE where it makes sense (Linux 6.12's table).
        let fits = match mode & MODES {
            0 | UNSHARE_RANGE | ZERO_RANGE => true,
            PUNCH_HOLE => mode & KEEP_SIZE != 0,
            COLLAPSE_RANGE | INSERT_RANGE => mode & KEEP_SIZE == 0,
            _ => false,
        };
        if mode & !(MODES | KEEP_SIZE) != 0 || !fits {
            return Err(errno::ENOTSUP.into());
        }
        if !f.writable() {
            return Err(errno::EBADF.into());
        }
        match &f.kind {
            FileKind::Pipe(_) => return Err(errno::ESPIPE.into()),
            FileKind::Tmp(t) if t.is_dir() => return Err(errno::EISDIR.into()),
            FileKind::Tmp(_) | FileKind::Host(_) => {}
            _ => return Err(errno::ENODEV.into()),
        }
        let end = off
            .checked_add(len)
            .filter(|e| *e <= i64::MAX as u64)
            .ok_or(errno::EFBIG)?;
        match &f.kind {
            FileKind::Tmp(t) => {
                if mode & !(KEEP_SIZE | PUNCH_HOLE) != 0 {
                    return Err(errno::ENOTSUP.into());
                }
                if mode & PUNCH_HOLE != 0 {
                    if !self.shm.is_empty() {
                        self.shm_to_file(t);
                    }
                    t.punch_hole(off, len)?;
                    if !self.shm.is_empty() {
                        self.shm_from_file(t);
                    }
                } else if mode & KEEP_SIZE == 0 && self.file_size(&f)? < end {
                    // Holes hold nothing in this tmpfs: allocating is growing.
                    self.sys_ftruncate(fd, end)?;
                }
            }
            FileKind::Host(h) => {
                if mode & KEEP_SIZE == 0 && mode & (COLLAPSE_RANGE | INSERT_RANGE) == 0 {
                    if let Some(limit) = self.file_size_limit() {
                        if end > limit && end > self.file_size(&f)? {
                            self.raise(SIGXFSZ)?;
                            return Err(errno::EFBIG.into());
                        }
                    }
                }
                if !self.shm.is_empty() {
                    self.host_to_file(h, 0, u64::MAX);
                }
                let done = host::fallocate(h.as_raw_fd(), mode as i32, off, len);
                if !self.shm.is_empty() {
                    self.host_from_file(h, 0, u64::MAX);
                }
                done?;
            }
            _ => unreachable!("checked above"),
        }
        self.notify_file(&f, super::inotify::IN_MODIFY);
        Ok(0)
    }
}
