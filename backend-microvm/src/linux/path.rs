//! Calls that take paths: open, stat, access, links, directories, renames, permission
//! and time changes, the working directory.

use std::os::fd::AsRawFd;
use std::rc::Rc;

use super::fd::FileKind;
use super::fs::open_file;
use super::inotify::{IN_ACCESS, IN_ATTRIB, IN_CREATE, IN_DELETE, IN_MODIFY, IN_OPEN};
use super::stat::{stat_of, statx_of};
use super::{Kernel, SysErr, SysResult};
use crate::abi::{OpenHow, Stat, Statfs, Statx, Timespec, Timeval, UtimeSpec, OPEN_HOW_SIZE_VER0};
use crate::errno;
use crate::mm::UserPtr;
use crate::vfs::{host, DevKind, Location, Node, Opened, Time, PATH_MAX};

const AT_FDCWD: i32 = libc::AT_FDCWD;

impl Kernel {
    /// The directory relative paths start from: the working directory or `dirfd`'s.
    fn base(&self, dirfd: u64) -> Result<Location, SysErr> {
        if dirfd as i32 == AT_FDCWD {
            return Ok(self.proc.cwd.clone());
        }
        let f = self.proc.files.get(dirfd)?;
        match &f.loc {
            Some(l) if l.node().is_dir() => Ok(l.clone()),
            _ => Err(errno::ENOTDIR.into()),
        }
    }

    /// A path argument (a path into `/proc` brings its view up to date; a relative
    /// one the working directory's location).
    pub(crate) fn path_arg(&mut self, ptr: u64) -> Result<Vec<u8>, SysErr> {
        let p = self.mm.read_cstr(ptr, PATH_MAX - 1)?;
        if p.first() != Some(&b'/') {
            // A removed working directory stays where lookups fail (`ENOENT`).
            let _ = self.current_cwd();
        }
        // (`/dev/fd`, `/dev/stdin`... are links into `/proc/self/fd`.)
        let proc_path = |p: &[u8]| {
            p.starts_with(b"/proc") || p.starts_with(b"/dev/fd") || p.starts_with(b"/dev/std")
        };
        if proc_path(&p) || (p.first() != Some(&b'/') && proc_path(&self.proc.cwd.path())) {
            self.refresh_proc();
        }
        Ok(p)
    }

    /// Resolves `dirfd` + `path` with the `AT_*` flags (`AT_EMPTY_PATH` gives `dirfd`).
    fn resolve_at(
        &mut self,
        dirfd: u64,
        ptr: u64,
        flags: u64,
        follow_default: bool,
    ) -> Result<Location, SysErr> {
        let path = self.path_arg(ptr)?;
        if path.is_empty() {
            if flags & libc::AT_EMPTY_PATH as u64 != 0 {
                if dirfd as i32 == AT_FDCWD {
                    return Ok(self.proc.cwd.clone());
                }
                let f = self.proc.files.get(dirfd)?;
                return f.loc.clone().ok_or_else(|| errno::EBADF.into());
            }
            return Err(errno::ENOENT.into());
        }
        let follow = if follow_default {
            flags & libc::AT_SYMLINK_NOFOLLOW as u64 == 0
        } else {
            flags & libc::AT_SYMLINK_FOLLOW as u64 != 0
        };
        let base = self.base_for(&path, dirfd)?;
        Ok(self.vfs.resolve(&base, &path, follow)?)
    }

    pub(crate) fn base_for(&self, path: &[u8], dirfd: u64) -> Result<Location, SysErr> {
        if path.first() == Some(&b'/') {
            Ok(self.vfs.root())
        } else {
            self.base(dirfd)
        }
    }

    pub(crate) fn sys_openat(&mut self, dirfd: u64, ptr: u64, flags: u64, mode: u64) -> SysResult {
        self.open_at(dirfd, ptr, flags, mode, 0)
    }

    /// `openat`, and `openat2` with its `RESOLVE_*` restrictions.
    fn open_at(&mut self, dirfd: u64, ptr: u64, flags: u64, mode: u64, resolve: u64) -> SysResult {
        const RESOLVE_NO_XDEV: u64 = 0x01;
        const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
        const RESOLVE_NO_SYMLINKS: u64 = 0x04;
        const RESOLVE_BENEATH: u64 = 0x08;
        const RESOLVE_IN_ROOT: u64 = 0x10;
        let path = self.path_arg(ptr)?;
        let flags = flags as i32;
        let mode = mode as u32 & 0o7777 & !self.proc.umask;
        let rooted = resolve & (RESOLVE_BENEATH | RESOLVE_IN_ROOT) != 0;
        let base = if rooted {
            self.base(dirfd)?
        } else {
            self.base_for(&path, dirfd)?
        };
        let restrict = crate::vfs::Restrict {
            floor: rooted.then(|| base.clone()),
            in_root: resolve & RESOLVE_IN_ROOT != 0,
            no_symlinks: resolve & RESOLVE_NO_SYMLINKS != 0,
            no_magiclinks: resolve & RESOLVE_NO_MAGICLINKS != 0,
            no_xdev: resolve & RESOLVE_NO_XDEV != 0,
        };
        // Whether the open creates the file (`IN_CREATE`), looked at only when
        // something watches.
        let created = self.watched()
            && flags & libc::O_CREAT != 0
            && self
                .vfs
                .resolve(&base, &path, flags & libc::O_NOFOLLOW == 0)
                .is_err();
        let (loc, opened) = if resolve == 0 {
            self.vfs.open(&base, &path, flags, mode)?
        } else {
            self.vfs
                .restricted(restrict, |vfs| vfs.open(&base, &path, flags, mode))?
        };
        self.install_opened(loc, opened, flags, created)
    }

    /// `openat(dirfd, ptr, flags)` as a fast call (`fastcall.rs`, which admits only
    /// read-only opens without `O_CREAT`, `O_PATH` or `O_TRUNC`): the path is read and
    /// looked up once, and opened only when the lookup found what opens plainly
    /// (`Node::opens_plain`: no FIFO, terminal, `/proc` file...). `None`: nothing was
    /// done, the exit path makes the call. A failed lookup is answered (it did
    /// nothing), with the error the exit path gives.
    pub(crate) fn fast_openat(&mut self, dirfd: u64, ptr: u64, flags: u64) -> Option<SysResult> {
        let flags = flags as i32;
        let looked_up = self.path_arg(ptr).and_then(|path| {
            let base = self.base_for(&path, dirfd)?;
            let follow = flags & libc::O_NOFOLLOW == 0;
            Ok(self.vfs.resolve(&base, &path, follow)?)
        });
        let loc = match looked_up {
            Ok(loc) => loc,
            Err(e) => return Some(Err(e)),
        };
        if !loc.node().opens_plain() {
            return None;
        }
        Some(
            self.vfs
                .open_resolved(loc, flags)
                .map_err(SysErr::from)
                .and_then(|(loc, opened)| self.install_opened(loc, opened, flags, false)),
        )
    }

    /// Puts what an open opened in the descriptor table (and tells the watches: the
    /// file `created`, truncated, opened).
    fn install_opened(
        &mut self,
        loc: Location,
        opened: Opened,
        flags: i32,
        created: bool,
    ) -> SysResult {
        let cloexec = flags & libc::O_CLOEXEC != 0;
        if let Opened::Anon(pid, fd) = opened {
            let file = self.reopen(pid, fd, flags)?;
            return Ok(self.proc.files.add(file, cloexec, 0)?);
        }
        if let Opened::Dev(DevKind::Ptmx) = opened {
            let file = self.open_ptmx(loc, flags)?;
            return Ok(self.proc.files.add(file, cloexec, 0)?);
        }
        if let Opened::Dev(d @ (DevKind::Tty | DevKind::Pts(_))) = opened {
            let index = match d {
                DevKind::Pts(n) => Some(n),
                _ => None,
            };
            let file = self.open_tty(index, loc, flags)?;
            return Ok(self.proc.files.add(file, cloexec, 0)?);
        }
        let opened = match opened {
            Opened::Proc(pid, f) => Opened::Gen(self.proc_contents(pid, f).into()),
            other => other,
        };
        let file = open_file(opened, loc, flags);
        if self.watched() && flags & libc::O_PATH == 0 {
            let s = self.subject_of_file(&file);
            if created {
                self.notify_entry(&s, IN_CREATE, false, 0);
            }
            self.notify(&s, IN_OPEN);
            if !created && flags & libc::O_TRUNC != 0 && file.writable() {
                self.notify(&s, IN_MODIFY);
            }
        }
        Ok(self.proc.files.add(file, cloexec, 0)?)
    }

    pub(crate) fn sys_openat2(
        &mut self,
        dirfd: u64,
        ptr: u64,
        how: UserPtr<OpenHow>,
        size: u64,
    ) -> SysResult {
        let how = self
            .mm
            .read_sized(how, size, OPEN_HOW_SIZE_VER0)?
            .checked()?;
        self.open_at(dirfd, ptr, how.flags, how.mode, how.resolve)
    }

    fn meta_at(&mut self, dirfd: u64, ptr: u64, flags: u64) -> Result<crate::vfs::Meta, SysErr> {
        const AT_NO_AUTOMOUNT: u64 = 0x800;
        const AT_STATX_SYNC_TYPE: u64 = 0x6000;
        let known = AT_NO_AUTOMOUNT
            | AT_STATX_SYNC_TYPE
            | (libc::AT_SYMLINK_NOFOLLOW | libc::AT_EMPTY_PATH) as u64;
        if flags & !known != 0 || flags & AT_STATX_SYNC_TYPE == AT_STATX_SYNC_TYPE {
            return Err(errno::EINVAL.into());
        }
        if flags & libc::AT_EMPTY_PATH as u64 != 0 && dirfd as i32 != AT_FDCWD {
            // An open file of any kind (pipes included) when the path is empty.
            let empty = self.mm.read_cstr(ptr, 1).map(|p| p.is_empty());
            if empty == Ok(true) {
                let f = self.proc.files.get(dirfd)?;
                return self.file_meta(&f);
            }
        }
        let loc = self.resolve_at(dirfd, ptr, flags, true)?;
        if let Some(f) = self.fd_file(&loc)? {
            return self.file_meta(&f);
        }
        Ok(self.vfs.meta(&loc)?)
    }

    pub(crate) fn sys_newfstatat(
        &mut self,
        dirfd: u64,
        ptr: u64,
        buf: UserPtr<Stat>,
        flags: u64,
    ) -> SysResult {
        // newfstatat takes statx's sync bits and ignores them, both at once too
        // (Linux's vfs_fstatat); statx refuses both at once.
        let m = self.meta_at(dirfd, ptr, flags & !0x6000)?;
        self.mm.write(buf, &stat_of(&m))?;
        Ok(0)
    }

    pub(crate) fn sys_statx(
        &mut self,
        dirfd: u64,
        ptr: u64,
        flags: u64,
        mask: u64,
        buf: UserPtr<Statx>,
    ) -> SysResult {
        const STATX_RESERVED: u64 = 0x8000_0000;
        if mask as u32 as u64 & STATX_RESERVED != 0 {
            return Err(errno::EINVAL.into());
        }
        let m = self.meta_at(dirfd, ptr, flags)?;
        self.mm.write(buf, &statx_of(&m))?;
        Ok(0)
    }

    pub(crate) fn sys_faccessat(
        &mut self,
        dirfd: u64,
        ptr: u64,
        mode: u64,
        flags: u64,
    ) -> SysResult {
        const AT_EACCESS: u64 = 0x200;
        let known = AT_EACCESS | (libc::AT_SYMLINK_NOFOLLOW | libc::AT_EMPTY_PATH) as u64;
        if mode & !7 != 0 || flags & !known != 0 {
            return Err(errno::EINVAL.into());
        }
        let loc = self.resolve_at(dirfd, ptr, flags, true)?;
        // As Linux's do_faccessat, before the permission bits: a regular file on a
        // `noexec` mount is not executable, whoever asks.
        if mode & libc::X_OK as u64 != 0
            && loc.node().noexec()
            && self.vfs.meta(&loc)?.kind() == libc::S_IFREG
        {
            return Err(errno::EACCES.into());
        }
        if mode & libc::W_OK as u64 != 0 {
            loc.node().writable()?;
        }
        self.vfs.permission(&loc, mode as u32)?;
        Ok(0)
    }

    pub(crate) fn sys_readlinkat(
        &mut self,
        dirfd: u64,
        ptr: u64,
        buf: u64,
        size: u64,
    ) -> SysResult {
        if size as i64 <= 0 {
            return Err(errno::EINVAL.into());
        }
        let loc = self.resolve_at(dirfd, ptr, 0, false)?;
        if !loc.node().is_link() {
            return Err(errno::EINVAL.into());
        }
        let target = loc.node().link_target()?;
        let n = target.len().min(size as usize);
        self.mm.write_user(buf, &target[..n])?;
        Ok(n as u64)
    }

    pub(crate) fn sys_mkdirat(&mut self, dirfd: u64, ptr: u64, mode: u64) -> SysResult {
        let path = self.path_arg(ptr)?;
        let base = self.base_for(&path, dirfd)?;
        self.vfs
            .mkdir(&base, &path, mode as u32 & 0o7777 & !self.proc.umask)?;
        let s = self.subject_at(&base, &path);
        self.notify_entry(&s, IN_CREATE, true, 0);
        Ok(0)
    }

    pub(crate) fn sys_unlinkat(&mut self, dirfd: u64, ptr: u64, flags: u64) -> SysResult {
        if flags & !(libc::AT_REMOVEDIR as u64) != 0 {
            return Err(errno::EINVAL.into());
        }
        let path = self.path_arg(ptr)?;
        let base = self.base_for(&path, dirfd)?;
        let s = self.subject_at(&base, &path);
        // Its last name goes (a directory has one).
        let last = s.node.is_some_and(|(_, dir)| dir || s.links <= 1);
        self.vfs.unlink(&base, &path, flags != 0)?;
        if self.watched() {
            // Linux's order: the link count changed (the file's own watches), the
            // file went if that was its last name, then the directory hears of it.
            let dir = flags != 0;
            if !dir {
                self.notify_self(&s, IN_ATTRIB);
            }
            if last {
                self.notify_gone(&s);
            }
            self.notify_entry(&s, IN_DELETE, dir, 0);
        }
        Ok(0)
    }

    pub(crate) fn sys_renameat2(
        &mut self,
        olddir: u64,
        old: u64,
        newdir: u64,
        new: u64,
        flags: u64,
    ) -> SysResult {
        let (a, b) = (self.path_arg(old)?, self.path_arg(new)?);
        let (ba, bb) = (self.base_for(&a, olddir)?, self.base_for(&b, newdir)?);
        let (from, to) = (self.subject_at(&ba, &a), self.subject_at(&bb, &b));
        self.vfs.rename(&ba, &a, &bb, &b, flags as u32)?;
        // Two names of one file: Linux does nothing, and tells nobody.
        let same = from.node.is_some() && from.node == to.node;
        if self.watched() && !same {
            let exchange = flags & libc::RENAME_EXCHANGE as u64 != 0;
            self.notify_move(&from, &to, !exchange);
            if exchange {
                // Each moved to the other's name.
                self.notify_move(&to, &from, false);
            } else if to.node.is_some() && to.node != from.node {
                // What the new name replaced lost that name (its last, here).
                self.notify_gone(&to);
            }
        }
        Ok(0)
    }

    pub(crate) fn sys_linkat(
        &mut self,
        olddir: u64,
        old: u64,
        newdir: u64,
        new: u64,
        flags: u64,
    ) -> SysResult {
        if flags & !((libc::AT_SYMLINK_FOLLOW | libc::AT_EMPTY_PATH) as u64) != 0 {
            return Err(errno::EINVAL.into());
        }
        let src = self.resolve_at(olddir, old, flags, false)?;
        let path = self.path_arg(new)?;
        let base = self.base_for(&path, newdir)?;
        self.vfs.link(&src, &base, &path)?;
        if self.watched() {
            let s = self.subject_of(&src);
            self.notify_self(&s, IN_ATTRIB);
            let n = self.subject_at(&base, &path);
            self.notify_entry(&n, IN_CREATE, false, 0);
        }
        Ok(0)
    }

    pub(crate) fn sys_symlinkat(&mut self, target: u64, newdir: u64, ptr: u64) -> SysResult {
        let t = self.path_arg(target)?;
        if t.is_empty() {
            return Err(errno::ENOENT.into());
        }
        let path = self.path_arg(ptr)?;
        let base = self.base_for(&path, newdir)?;
        self.vfs.symlink(&t, &base, &path)?;
        self.created_at(&base, &path);
        Ok(0)
    }

    pub(crate) fn sys_fchmodat(
        &mut self,
        dirfd: u64,
        ptr: u64,
        mode: u64,
        flags: u64,
    ) -> SysResult {
        let loc = self.resolve_at(dirfd, ptr, flags, true)?;
        self.vfs.chmod(&loc, mode as u32)?;
        self.notify_loc(&loc, IN_ATTRIB);
        Ok(0)
    }

    pub(crate) fn sys_fchmod(&mut self, fd: u64, mode: u64) -> SysResult {
        let f = self.proc.files.get(fd)?;
        let loc = f.loc.clone().ok_or(errno::EBADF)?;
        self.vfs.chmod(&loc, mode as u32)?;
        self.notify_loc(&loc, IN_ATTRIB);
        Ok(0)
    }

    /// `chown`, `lchown`, `fchownat`: on `dirfd` + `path` (with `AT_SYMLINK_NOFOLLOW`
    /// and `AT_EMPTY_PATH`), following a final symlink unless asked not to.
    pub(crate) fn sys_fchownat(
        &mut self,
        dirfd: u64,
        ptr: u64,
        uid: u64,
        gid: u64,
        flags: u64,
    ) -> SysResult {
        let known = (libc::AT_SYMLINK_NOFOLLOW | libc::AT_EMPTY_PATH) as u64;
        if flags & !known != 0 {
            return Err(errno::EINVAL.into());
        }
        let loc = self.resolve_at(dirfd, ptr, flags, true)?;
        let meta = self.vfs.meta(&loc)?;
        loc.node().writable()?;
        self.chown_allowed(&meta, uid, gid)?;
        if (uid as u32, gid as u32) != (u32::MAX, u32::MAX) {
            self.notify_loc(&loc, IN_ATTRIB);
        }
        Ok(0)
    }

    /// `fchown`: as `chown`, on an open descriptor.
    pub(crate) fn sys_fchown(&mut self, fd: u64, uid: u64, gid: u64) -> SysResult {
        let f = self.proc.files.get(fd)?;
        if matches!(f.kind, FileKind::Path) {
            return Err(errno::EBADF.into());
        }
        let meta = self.file_meta(&f)?;
        if let Some(loc) = &f.loc {
            loc.node().writable()?;
        }
        self.chown_allowed(&meta, uid, gid)?;
        if (uid as u32, gid as u32) != (u32::MAX, u32::MAX) {
            if let Some(loc) = &f.loc {
                self.notify_loc(loc, IN_ATTRIB);
            }
        }
        Ok(0)
    }

    /// What an unprivileged owner may do, as Linux's `chown_ok`/`chgrp_ok`: keep the
    /// owner (`-1` or the same uid) of a file it owns, and set the group to its own or
    /// keep it; anything else is `EPERM`. Ownership never changes here (the sandbox has
    /// one user), so an allowed call changes nothing.
    fn chown_allowed(&self, meta: &crate::vfs::Meta, uid: u64, gid: u64) -> SysResult {
        let (uid, gid) = (uid as u32, gid as u32);
        let owner = self.user.0 == meta.uid;
        if uid != u32::MAX && !(owner && uid == meta.uid) {
            return Err(errno::EPERM.into());
        }
        if gid != u32::MAX && !(owner && (gid == self.user.1 || gid == meta.gid)) {
            return Err(errno::EPERM.into());
        }
        Ok(0)
    }

    pub(crate) fn sys_truncate(&mut self, ptr: u64, len: u64) -> SysResult {
        if (len as i64) < 0 {
            return Err(errno::EINVAL.into());
        }
        let loc = self.resolve_at(AT_FDCWD as u64, ptr, 0, true)?;
        if let Some(limit) = self.file_size_limit() {
            if len > limit {
                self.raise(25)?;
                return Err(errno::EFBIG.into());
            }
        }
        self.vfs.truncate(&loc, len)?;
        self.notify_loc(&loc, IN_MODIFY);
        Ok(0)
    }

    /// One time of `utimensat`: now, unchanged, or the one given.
    fn utime(t: &Timespec) -> Result<Option<Time>, SysErr> {
        Ok(match t.utime()? {
            UtimeSpec::Now => Some(Time::now()),
            UtimeSpec::Omit => None,
            UtimeSpec::At(sec, nsec) => Some(Time { sec, nsec }),
        })
    }

    pub(crate) fn sys_utimensat(
        &mut self,
        dirfd: u64,
        ptr: u64,
        times: UserPtr<[Timespec; 2]>,
        flags: u64,
    ) -> SysResult {
        if flags & !((libc::AT_SYMLINK_NOFOLLOW | libc::AT_EMPTY_PATH) as u64) != 0 {
            return Err(errno::EINVAL.into());
        }
        let loc = if ptr == 0 {
            if dirfd as i32 == AT_FDCWD {
                return Err(errno::EFAULT.into());
            }
            self.proc
                .files
                .get(dirfd)?
                .loc
                .clone()
                .ok_or(errno::EBADF)?
        } else {
            self.resolve_at(dirfd, ptr, flags, true)?
        };
        let (a, m) = if times.is_null() {
            (Some(Time::now()), Some(Time::now()))
        } else {
            let [a, m] = self.mm.read(times)?;
            (Self::utime(&a)?, Self::utime(&m)?)
        };
        self.vfs.utimens(&loc, a, m)?;
        // Both times is a change of attributes; one of them, an access or a change.
        let mask = match (a.is_some(), m.is_some()) {
            (true, true) => IN_ATTRIB,
            (true, false) => IN_ACCESS,
            (false, true) => IN_MODIFY,
            (false, false) => 0,
        };
        if mask != 0 {
            self.notify_loc(&loc, mask);
        }
        Ok(0)
    }

    pub(crate) fn sys_utimes(&mut self, ptr: u64, tv: UserPtr<[Timeval; 2]>) -> SysResult {
        let loc = self.resolve_at(AT_FDCWD as u64, ptr, 0, true)?;
        let (a, m) = self.timevals(tv)?;
        self.vfs.utimens(&loc, a, m)?;
        self.notify_loc(&loc, IN_ATTRIB);
        Ok(0)
    }

    /// The working directory's location brought up to date when a directory was
    /// renamed or removed since it was last looked at (the location's names may be
    /// stale; its directory is not, see `vfs/relocate.rs`): `ENOENT` once removed.
    fn current_cwd(&mut self) -> Result<(), SysErr> {
        let moves = self.vfs.moves();
        if self.proc.cwd_seen == moves {
            return Ok(());
        }
        // A removed directory is checked again at each call (it stays removed).
        if let Some(fresh) = self.vfs.relocate(&self.proc.cwd)? {
            self.proc.cwd = fresh;
        }
        self.proc.cwd_seen = moves;
        Ok(())
    }

    pub(crate) fn sys_getcwd(&mut self, buf: u64, size: u64) -> SysResult {
        self.current_cwd()?;
        let mut p = self.proc.cwd.path();
        p.push(0);
        if (size as usize) < p.len() {
            return Err(errno::ERANGE.into());
        }
        self.mm.write_user(buf, &p)?;
        Ok(p.len() as u64)
    }

    pub(crate) fn sys_chdir(&mut self, ptr: u64) -> SysResult {
        let loc = self.resolve_at(AT_FDCWD as u64, ptr, 0, true)?;
        if !loc.node().is_dir() {
            return Err(errno::ENOTDIR.into());
        }
        self.vfs.permission(&loc, 1)?;
        self.proc.cwd = loc;
        self.proc.cwd_seen = self.vfs.moves();
        Ok(0)
    }

    pub(crate) fn sys_fchdir(&mut self, fd: u64) -> SysResult {
        let f = self.proc.files.get(fd)?;
        match &f.loc {
            Some(l) if l.node().is_dir() => {
                self.proc.cwd = l.clone();
                // Its location is as old as the descriptor: checked at the next use.
                self.proc.cwd_seen = self.vfs.moves().wrapping_sub(1);
                Ok(0)
            }
            _ => Err(errno::ENOTDIR.into()),
        }
    }

    pub(crate) fn sys_statfs(
        &mut self,
        path: Option<u64>,
        fd: Option<u64>,
        buf: UserPtr<Statfs>,
    ) -> SysResult {
        let loc = match (path, fd) {
            (Some(p), _) => self.resolve_at(AT_FDCWD as u64, p, 0, true)?,
            (None, Some(fd)) => {
                let f = self.proc.files.get(fd)?;
                if let FileKind::Host(h) = &f.kind {
                    let st = host::fstatfs(h.as_raw_fd())?;
                    return self.put_statfs(buf, &st, false);
                }
                f.loc.clone().ok_or(errno::EBADF)?
            }
            (None, None) => return Err(errno::EINVAL.into()),
        };
        match loc.node() {
            Node::HostDir { fd, ro, .. } | Node::HostFile { fd, ro, .. } => {
                let st = host::fstatfs(fd.as_raw_fd())?;
                let ro = *ro;
                self.put_statfs(buf, &st, ro)
            }
            Node::Tmp(t) => {
                // SAFETY: statfs is plain data; zero is valid.
                let mut st: libc::statfs = unsafe { std::mem::zeroed() };
                let fs = Rc::clone(t.fs());
                st.f_type = 0x0102_1994; // TMPFS_MAGIC
                st.f_bsize = 4096;
                st.f_frsize = 4096;
                let limit = fs.limit().min(self.mm.mem.size());
                st.f_blocks = limit / 4096;
                st.f_bfree = limit.saturating_sub(fs.used()) / 4096;
                st.f_bavail = st.f_bfree;
                st.f_namelen = 255;
                self.put_statfs(buf, &st, false)
            }
            _ => {
                // SAFETY: statfs is plain data; zero is valid.
                let mut st: libc::statfs = unsafe { std::mem::zeroed() };
                st.f_type = 0x0102_1994;
                st.f_bsize = 4096;
                st.f_namelen = 255;
                self.put_statfs(buf, &st, true)
            }
        }
    }

    fn put_statfs(&mut self, buf: UserPtr<Statfs>, st: &libc::statfs, ro: bool) -> SysResult {
        let out = Statfs {
            f_type: st.f_type,
            f_bsize: st.f_bsize,
            f_blocks: st.f_blocks,
            f_bfree: st.f_bfree,
            f_bavail: st.f_bavail,
            f_files: st.f_files,
            f_ffree: st.f_ffree,
            // The host's filesystem id is not the workload's business.
            f_fsid: [0, 0],
            f_namelen: st.f_namelen,
            f_frsize: st.f_frsize,
            f_flags: if ro { libc::ST_RDONLY as i64 } else { 0 },
            ..Statfs::default()
        };
        self.mm.write(buf, &out)?;
        Ok(0)
    }
}
