//! Smaller calls: the old `getdents`, `mknod` (regular files and FIFOs), `utime`,
//! scheduling parameters, memory locking, syncs, capabilities, extended attributes
//! (a filesystem without any), `memfd_create`, `preadv2`/`pwritev2`, `splice`,
//! `recvmmsg`/`sendmmsg`, queued signals, `umask`, `set_tid_address`.

use std::rc::Rc;

use super::fd::{FileKind, OpenFile};
use super::signal::SigInfo;
use super::{Kernel, SysErr, SysResult};
use crate::abi::{self, CapData, CapHeader, MMsgHdr, MsgHdr, Timeval, Utimbuf};
use crate::errno::{self, Errno};
use crate::mm::UserPtr;
use crate::vfs::tmpfs::{TmpData, TmpFs};
use crate::vfs::Time;

/// `_LINUX_CAPABILITY_VERSION_1` (one set of 32 bits).
const CAP_V1: u32 = 0x1998_0330;
/// `_LINUX_CAPABILITY_VERSION_2` (two sets).
const CAP_V2: u32 = 0x2007_1026;
/// `_LINUX_CAPABILITY_VERSION_3` (two sets).
const CAP_V3: u32 = 0x2008_0522;

impl Kernel {
    /// The old `getdents`: `struct linux_dirent` (type in the record's last byte).
    pub(crate) fn sys_getdents(&mut self, fd: u64, dirp: u64, count: u64) -> SysResult {
        self.getdents(fd, dirp, count, super::fs::Dirent::Old)
    }

    /// `mknod`/`mknodat`: regular files and FIFOs (devices are refused).
    pub(crate) fn sys_mknodat(&mut self, dirfd: u64, ptr: u64, mode: u64) -> SysResult {
        let mode = mode as u32;
        let perm = mode & 0o7777 & !self.proc.umask;
        match mode & libc::S_IFMT {
            0 | libc::S_IFREG => {
                // Made as an exclusive create whose opened file is dropped at once: no
                // descriptor is taken (no EMFILE), no open or close is seen by watches.
                let path = self.path_arg(ptr)?;
                let base = self.base_for(&path, dirfd)?;
                let flags = libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY;
                drop(self.vfs.open(&base, &path, flags, perm)?);
                self.created_at(&base, &path);
                Ok(0)
            }
            libc::S_IFIFO => {
                let path = self.path_arg(ptr)?;
                let base = self.base_for(&path, dirfd)?;
                self.vfs.mkfifo(&base, &path, perm)?;
                self.created_at(&base, &path);
                Ok(0)
            }
            libc::S_IFCHR | libc::S_IFBLK => Err(errno::EPERM.into()),
            libc::S_IFSOCK => {
                // A node no socket is bound to (connecting to it is ECONNREFUSED).
                let path = self.path_arg(ptr)?;
                let base = self.base_for(&path, dirfd)?;
                match self.vfs.mksock(&base, &path, perm, u64::MAX) {
                    Err(e) if e == errno::EADDRINUSE => Err(errno::EEXIST.into()),
                    r => {
                        r?;
                        self.created_at(&base, &path);
                        Ok(0)
                    }
                }
            }
            _ => Err(errno::EINVAL.into()),
        }
    }

    /// `utime(path, times)`: seconds only.
    pub(crate) fn sys_utime(&mut self, ptr: u64, times: UserPtr<Utimbuf>) -> SysResult {
        let path = self.path_arg(ptr)?;
        let base = self.base_for(&path, libc::AT_FDCWD as u64)?;
        let loc = self.vfs.resolve(&base, &path, true)?;
        let (a, m) = if times.is_null() {
            (Some(Time::now()), Some(Time::now()))
        } else {
            let t = self.mm.read(times)?;
            (
                Some(Time {
                    sec: t.actime,
                    nsec: 0,
                }),
                Some(Time {
                    sec: t.modtime,
                    nsec: 0,
                }),
            )
        };
        self.vfs.utimens(&loc, a, m)?;
        Ok(0)
    }

    /// `futimesat(dirfd, path, timeval[2])`.
    pub(crate) fn sys_futimesat(
        &mut self,
        dirfd: u64,
        ptr: u64,
        tv: UserPtr<[Timeval; 2]>,
    ) -> SysResult {
        if ptr == 0 {
            return Err(errno::EFAULT.into());
        }
        let path = self.path_arg(ptr)?;
        let base = self.base_for(&path, dirfd)?;
        let loc = self.vfs.resolve(&base, &path, true)?;
        let (a, m) = self.timevals(tv)?;
        self.vfs.utimens(&loc, a, m)?;
        Ok(0)
    }

    /// The access and modification times of `utimes`/`futimesat` (NULL: now).
    pub(crate) fn timevals(
        &mut self,
        tv: UserPtr<[Timeval; 2]>,
    ) -> Result<(Option<Time>, Option<Time>), SysErr> {
        if tv.is_null() {
            return Ok((Some(Time::now()), Some(Time::now())));
        }
        let [a, m] = self.mm.read(tv)?;
        let ((asec, ansec), (msec, mnsec)) = (a.time()?, m.time()?);
        Ok((
            Some(Time {
                sec: asec,
                nsec: ansec,
            }),
            Some(Time {
                sec: msec,
                nsec: mnsec,
            }),
        ))
    }

    /// `sched_get_priority_max`/`_min`: 1..=99 for the real-time policies, 0 for the others.
    pub(crate) fn sys_sched_priority_range(&mut self, policy: u64, max: bool) -> SysResult {
        match policy {
            // OTHER, BATCH, IDLE, DEADLINE, EXT
            0 | 3 | 5 | 6 | 7 => Ok(0),
            1 | 2 => Ok(if max { 99 } else { 1 }),
            _ => Err(errno::EINVAL.into()),
        }
    }

    /// `getcpu`: the one vCPU, node 0.
    pub(crate) fn sys_getcpu(&mut self, cpu: UserPtr<u32>, node: UserPtr<u32>) -> SysResult {
        if !cpu.is_null() {
            self.mm.write(cpu, &0)?;
        }
        if !node.is_null() {
            self.mm.write(node, &0)?;
        }
        Ok(0)
    }

    /// `capget`: no capabilities (version 3 header asked, or told).
    pub(crate) fn sys_capget(
        &mut self,
        hdr: UserPtr<CapHeader>,
        data: UserPtr<CapData>,
    ) -> SysResult {
        let mut h = self.mm.read(hdr)?;
        if h.pid < 0 || (h.pid > 0 && self.task_ref(h.pid as u32).is_none()) {
            return Err(errno::ESRCH.into());
        }
        let sets = match h.version {
            CAP_V1 => 1,
            CAP_V2 | CAP_V3 => 2,
            _ => {
                h.version = CAP_V3;
                self.mm.write(hdr, &h)?;
                return if data.is_null() {
                    Ok(0)
                } else {
                    Err(errno::EINVAL.into())
                };
            }
        };
        if !data.is_null() {
            self.mm
                .write_array(data, &[CapData::default(); 2][..sets])?;
        }
        Ok(0)
    }

    /// `capset`: only to no capabilities.
    pub(crate) fn sys_capset(&mut self, data: UserPtr<[CapData; 2]>) -> SysResult {
        let sets = self.mm.read(data)?;
        if sets != [CapData::default(); 2] {
            return Err(errno::EPERM.into());
        }
        Ok(0)
    }

    /// Extended attributes: a filesystem that has none (`name` given: `ENODATA`;
    /// listing: empty; setting: `ENOTSUP`). `path`: by path (else by descriptor).
    pub(crate) fn sys_xattr(
        &mut self,
        which: &str,
        target: u64,
        follow: bool,
        by_fd: bool,
    ) -> SysResult {
        if by_fd {
            self.proc.files.get(target)?;
        } else {
            let path = self.path_arg(target)?;
            let base = self.base_for(&path, libc::AT_FDCWD as u64)?;
            self.vfs.resolve(&base, &path, follow)?;
        }
        match which {
            "get" => Err(Errno(libc::ENODATA).into()),
            "list" => Ok(0),
            _ => Err(errno::ENOTSUP.into()),
        }
    }

    /// `memfd_create`: an anonymous file in memory (charged like /tmp).
    pub(crate) fn sys_memfd_create(&mut self, name: u64, flags: u64) -> SysResult {
        const MFD_CLOEXEC: u64 = 1;
        const MFD_ALLOW_SEALING: u64 = 2;
        const MFD_HUGETLB: u64 = 4;
        const MFD_NOEXEC_SEAL: u64 = 8;
        const MFD_EXEC: u64 = 0x10;
        const HUGE_SIZES: u64 = 0x3f << 26;
        let known = MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_HUGETLB | MFD_NOEXEC_SEAL | MFD_EXEC;
        let sizes = if flags & MFD_HUGETLB != 0 {
            HUGE_SIZES
        } else {
            0
        };
        if flags & !(known | sizes) != 0
            || flags & (MFD_NOEXEC_SEAL | MFD_EXEC) == MFD_NOEXEC_SEAL | MFD_EXEC
        {
            return Err(errno::EINVAL.into());
        }
        // Linux: a name longer than 249 bytes is EINVAL.
        let n = self.mm.read_cstr(name, 249).map_err(|e| match e {
            crate::mm::CStrError::TooLong => SysErr::Errno(errno::EINVAL),
            other => other.into(),
        })?;
        let Some(fs) = self.vfs.tmp_fs() else {
            return Err(errno::ENOMEM.into());
        };
        // As Linux's: mode 0777 (0666 and sealed against exec with MFD_NOEXEC_SEAL),
        // no link, sealable only when asked. Huge pages are plain pages here.
        let noexec = flags & MFD_NOEXEC_SEAL != 0;
        let mode = if noexec { 0o666 } else { 0o777 };
        let inode = TmpFs::inode(&fs, TmpData::File(Default::default()), mode);
        inode.nlink.set(0);
        if noexec {
            inode.seals.set(crate::vfs::tmpfs::F_SEAL_EXEC);
        } else if flags & MFD_ALLOW_SEALING != 0 {
            inode.seals.set(0);
        }
        let _ = n;
        let f = OpenFile::new(FileKind::Tmp(inode), None, libc::O_RDWR);
        Ok(self.proc.files.add(f, flags & MFD_CLOEXEC != 0, 0)?)
    }

    /// `preadv2`/`pwritev2` (offset -1: the file position; flags beyond `RWF_HIPRI`
    /// ignored, as hints).
    pub(crate) fn sys_prwv2(&mut self, write: bool, a: [u64; 6]) -> SysResult {
        let off = (a[3] as i64 != -1).then_some(a[3]);
        let iov = UserPtr::new(a[1]);
        if write {
            self.sys_writev(a[0], iov, a[2], off)
        } else {
            self.sys_readv(a[0], iov, a[2], off)
        }
    }

    /// `splice`: moves up to `len` bytes between two descriptors, one of them a pipe.
    pub(crate) fn sys_splice(&mut self, a: [u64; 6]) -> SysResult {
        let [fd_in, off_in, fd_out, off_out, len, _flags] = a;
        let input = self.proc.files.get(fd_in)?;
        let output = self.proc.files.get(fd_out)?;
        let pipe = |f: &OpenFile| matches!(f.kind, FileKind::Pipe(_));
        if !pipe(&input) && !pipe(&output) {
            return Err(errno::EINVAL.into());
        }
        // A pipe has no offset to give.
        if (pipe(&input) && off_in != 0) || (pipe(&output) && off_out != 0) {
            return Err(errno::ESPIPE.into());
        }
        // From `input` (at `*off_in`, if given) to `output` (at `*off_out`, if given).
        self.transfer(
            fd_out,
            fd_in,
            UserPtr::new(off_in),
            UserPtr::new(off_out),
            len.min(1 << 20),
        )
    }

    /// `sendmmsg`/`recvmmsg`: one `sendmsg`/`recvmsg` per message.
    pub(crate) fn sys_mmsg(
        &mut self,
        send: bool,
        fd: u64,
        vec: UserPtr<MMsgHdr>,
        n: u64,
        flags: u64,
    ) -> SysResult {
        let mut done = 0u64;
        for i in 0..n.min(1024) {
            let at = vec
                .addr()
                .wrapping_add(i * std::mem::size_of::<MMsgHdr>() as u64);
            let hdr = UserPtr::<MsgHdr>::new(at);
            // After the first message, only those already waiting (MSG_WAITFORONE).
            const MSG_DONTWAIT: u64 = 0x40;
            let flags = if done > 0 && !send {
                flags | MSG_DONTWAIT
            } else {
                flags
            };
            let r = if send {
                self.sys_sendmsg(fd, hdr, flags)
            } else {
                self.sys_recvmsg(fd, hdr, flags)
            };
            match r {
                Ok(len) => {
                    let mut m = self.mm.read(UserPtr::<MMsgHdr>::new(at))?;
                    m.msg_len = len as u32;
                    self.mm.write(UserPtr::<MMsgHdr>::new(at), &m)?;
                    done += 1;
                }
                Err(SysErr::Errno(_) | SysErr::Block(_)) if done > 0 => break,
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }

    /// `rt_sigqueueinfo`/`rt_tgsigqueueinfo`: a signal with the caller's `siginfo`.
    pub(crate) fn sys_sigqueue(
        &mut self,
        tgid: u64,
        tid: Option<u64>,
        sig: u64,
        info: UserPtr<abi::SigInfo>,
    ) -> SysResult {
        let si = self.mm.read(info)?;
        let code = si.si_code;
        if code >= 0 && tgid as u32 != self.proc.pid {
            return Err(errno::EPERM.into()); // only negative codes may be forged
        }
        if !(1..=64).contains(&sig) {
            return Err(errno::EINVAL.into());
        }
        let info = SigInfo {
            signo: sig as i32,
            code,
            addr: si.who,
            status: si.value,
        };
        match tid {
            Some(t) => {
                let t = t as u32;
                if self.task_ref(t).is_none_or(|x| x.pid != tgid as u32) {
                    return Err(errno::ESRCH.into());
                }
                self.signal_task(t, info);
            }
            None => {
                let p = tgid as u32;
                if self.proc_ref(p).is_none_or(|x| x.exit.is_some()) {
                    return Err(errno::ESRCH.into());
                }
                self.signal_process(p, info);
            }
        }
        Ok(0)
    }

    /// `unshare`: nothing to unshare is accepted; namespaces are refused.
    pub(crate) fn sys_unshare(&mut self, flags: u64) -> SysResult {
        const CLONE_VM: u64 = 0x100;
        const CLONE_FS: u64 = 0x200;
        const CLONE_FILES: u64 = 0x400;
        const CLONE_SIGHAND: u64 = 0x800;
        const CLONE_THREAD: u64 = 0x1_0000;
        const CLONE_SYSVSEM: u64 = 0x4_0000;
        const NAMESPACES: u64 = 0x0200_0000
            | 0x0002_0000
            | 0x0400_0000
            | 0x0800_0000
            | 0x1000_0000
            | 0x2000_0000
            | 0x4000_0000
            | 0x80;
        let known = CLONE_VM
            | CLONE_FS
            | CLONE_FILES
            | CLONE_SIGHAND
            | CLONE_THREAD
            | CLONE_SYSVSEM
            | NAMESPACES;
        if flags & !known != 0 {
            return Err(errno::EINVAL.into());
        }
        if flags & NAMESPACES != 0 {
            // As the container's filter: no namespaces from inside a sandbox.
            return Err(errno::EPERM.into());
        }
        let alone = self.proc.threads.len() == 1;
        if flags & (CLONE_VM | CLONE_SIGHAND | CLONE_THREAD) != 0 && !alone {
            return Err(errno::EINVAL.into());
        }
        if flags & (CLONE_FILES | CLONE_FS) != 0 && !alone {
            // A thread's own descriptor table or working directory is not offered.
            return Err(self.unsupported(
                "unshare(CLONE_FILES/CLONE_FS in a threaded process)",
                errno::EINVAL,
            ));
        }
        // A process with one thread shares none of these: nothing to do.
        Ok(0)
    }

    /// `personality`: the process's persona (a query with `0xffffffff`); the old one.
    pub(crate) fn sys_personality(&mut self, p: u64) -> SysResult {
        let old = self.proc.persona;
        if p as u32 != 0xffff_ffff {
            self.proc.persona = p as u32;
        }
        Ok(u64::from(old))
    }

    /// `ioprio_get`: a task's own I/O priority (0: none set); for a group or a user,
    /// the best among the tasks, one without its own counting as the default
    /// (best effort, level 4), as Linux's `ioprio_best`.
    pub(crate) fn sys_ioprio_get(&mut self, which: u64, who: u64) -> SysResult {
        const DEFAULT: u16 = (2 << 13) | 4;
        let tasks = self.ioprio_targets(which, who)?;
        let prios = tasks
            .iter()
            .filter_map(|t| self.task_ref(*t).map(|t| t.ioprio));
        Ok(if which == 1 {
            prios.max().unwrap_or(0)
        } else {
            prios
                .map(|p| if p >> 13 == 0 { DEFAULT } else { p })
                .min()
                .unwrap_or(DEFAULT)
        }
        .into())
    }

    /// `ioprio_set`: best effort and idle classes; the real-time one needs privilege.
    pub(crate) fn sys_ioprio_set(&mut self, which: u64, who: u64, prio: u64) -> SysResult {
        let (class, level) = (prio >> 13, prio & 0x1fff);
        match class {
            0 if level == 0 => {}
            2 if level < 8 => {}
            3 => {}
            1 if level < 8 => return Err(errno::EPERM.into()),
            _ => return Err(errno::EINVAL.into()),
        }
        for t in self.ioprio_targets(which, who)? {
            if let Some(task) = self.task_mut(t) {
                task.ioprio = prio as u16;
            }
        }
        Ok(0)
    }

    fn ioprio_targets(&self, which: u64, who: u64) -> Result<Vec<u32>, SysErr> {
        const WHO_PROCESS: u64 = 1;
        const WHO_PGRP: u64 = 2;
        const WHO_USER: u64 = 3;
        let who = who as u32;
        let tids = self.tids();
        let v: Vec<u32> = match which {
            WHO_PROCESS => {
                let t = if who == 0 { self.task.tid } else { who };
                tids.into_iter().filter(|x| *x == t).collect()
            }
            WHO_PGRP => {
                let g = if who == 0 { self.proc.pgid } else { who };
                tids.into_iter()
                    .filter(|t| {
                        self.task_ref(*t)
                            .and_then(|t| self.proc_ref(t.pid))
                            .is_some_and(|p| p.pgid == g)
                    })
                    .collect()
            }
            WHO_USER if who == 0 || who == self.user.0 => tids,
            WHO_USER => Vec::new(),
            _ => return Err(errno::EINVAL.into()),
        };
        if v.is_empty() {
            return Err(errno::ESRCH.into());
        }
        Ok(v)
    }

    /// `membarrier`: with one vCPU every barrier is already one; the commands and
    /// their registrations are checked as Linux does.
    pub(crate) fn sys_membarrier(&mut self, cmd: u64, flags: u64) -> SysResult {
        const GLOBAL: u64 = 1;
        const GLOBAL_EXPEDITED: u64 = 2;
        const REGISTER_GLOBAL_EXPEDITED: u64 = 4;
        const PRIVATE_EXPEDITED: u64 = 8;
        const REGISTER_PRIVATE_EXPEDITED: u64 = 16;
        const PRIVATE_EXPEDITED_SYNC_CORE: u64 = 32;
        const REGISTER_PRIVATE_EXPEDITED_SYNC_CORE: u64 = 64;
        const SUPPORTED: u64 = GLOBAL
            | GLOBAL_EXPEDITED
            | REGISTER_GLOBAL_EXPEDITED
            | PRIVATE_EXPEDITED
            | REGISTER_PRIVATE_EXPEDITED
            | PRIVATE_EXPEDITED_SYNC_CORE
            | REGISTER_PRIVATE_EXPEDITED_SYNC_CORE;
        if flags != 0 {
            return Err(errno::EINVAL.into());
        }
        let registered = |k: &Kernel, r: u64| u64::from(k.proc.membarrier) & r != 0;
        match cmd {
            0 => Ok(SUPPORTED),
            GLOBAL | GLOBAL_EXPEDITED => Ok(0),
            REGISTER_GLOBAL_EXPEDITED
            | REGISTER_PRIVATE_EXPEDITED
            | REGISTER_PRIVATE_EXPEDITED_SYNC_CORE => {
                self.proc.membarrier |= cmd as u32;
                Ok(0)
            }
            PRIVATE_EXPEDITED if registered(self, REGISTER_PRIVATE_EXPEDITED) => Ok(0),
            PRIVATE_EXPEDITED_SYNC_CORE
                if registered(self, REGISTER_PRIVATE_EXPEDITED_SYNC_CORE) =>
            {
                Ok(0)
            }
            PRIVATE_EXPEDITED | PRIVATE_EXPEDITED_SYNC_CORE => Err(errno::EPERM.into()),
            _ => Err(errno::EINVAL.into()),
        }
    }

    /// `set_robust_list`: the head's size must be `struct robust_list_head`'s (the
    /// list is never walked: futexes of a dead thread's robust list are not released).
    pub(crate) fn sys_set_robust_list(&mut self, len: u64) -> SysResult {
        if len != 24 {
            return Err(errno::EINVAL.into());
        }
        Ok(0)
    }

    /// `get_robust_list`: the caller's (never recorded: empty).
    pub(crate) fn sys_get_robust_list(
        &mut self,
        pid: u64,
        head: UserPtr<u64>,
        len: UserPtr<u64>,
    ) -> SysResult {
        if pid != 0 && self.task_ref(pid as u32).is_none() {
            return Err(errno::ESRCH.into());
        }
        self.mm.write(head, &0)?;
        self.mm.write(len, &24)?;
        Ok(0)
    }

    /// `umask`: sets the mask, answers the old one.
    pub(crate) fn sys_umask(&mut self, mask: u64) -> SysResult {
        let old = self.proc.umask;
        self.proc.umask = mask as u32 & 0o777;
        Ok(u64::from(old))
    }

    /// `set_tid_address`: where the thread's id is cleared when it ends.
    pub(crate) fn sys_set_tid_address(&mut self, at: u64) -> SysResult {
        self.task.clear_tid = at;
        Ok(u64::from(self.task.tid))
    }

    /// A descriptor that must be open (syncs, `readahead`).
    pub(crate) fn fd_ok(&self, fd: u64) -> SysResult {
        self.proc.files.get(fd).map(|_| 0).map_err(Into::into)
    }

    /// Ensures the listing of a directory is read.
    pub(crate) fn fill_listing(&mut self, f: &Rc<OpenFile>) -> Result<(), SysErr> {
        if f.listing.borrow().is_none() {
            let loc = f.loc.clone().ok_or(errno::EBADF)?;
            if loc.path().starts_with(b"/proc") {
                self.refresh_proc();
            }
            let list = self.vfs.list(&loc)?;
            let bytes = list.iter().map(|e| e.name.len() as u64 + 48).sum();
            let charge = crate::memory::HeapCharge::of(&self.mm.mem.budget(), bytes)
                .map_err(|_| errno::ENOMEM)?;
            *f.listing_charge.borrow_mut() = Some(charge);
            *f.listing.borrow_mut() = Some(list);
        }
        Ok(())
    }
}
