//! The personality state written to a snapshot file and read back (see `savefile`).
//!
//! Written from a snapshot's kernel copy; read back into a kernel whose filesystem
//! was built from the same plan (its mounts opened and checked as at any create):
//! the in-memory filesystems' contents go into that filesystem's roots, paths
//! (working directories, open files) are resolved in it again, host files held open
//! are reopened through it by their sandbox path and must be the same file, files
//! mapped from the host are reopened beneath the mount source they were under and
//! must be the same file. Nothing in the file names a host path the sandbox's own
//! mounts do not reach.
//!
//! What a snapshot file cannot hold is refused by name when saving: sockets, `epoll`
//! instances, terminals, shared mappings (`MAP_SHARED`, shared memory), a network of
//! the sandbox's own. (The in-memory snapshot refuses terminals and inet sockets too.)

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

use kvm_bindings::{kvm_regs, kvm_xsave};

use super::fd::{EventFd, FdTable, FileKind, OpenFile};
use super::signal::{Action, SigInfo};
use super::task::{Blocked, ExitStatus, FutexKey, Process, Task, TaskState, Wait};
use super::{Kernel, Limits, UserCtx};
use crate::memory::{Budget, HeapCharge};
use crate::mm::vma::{BackingIo, SavedBacking};
use crate::mm::{AddressSpace, Backing};
use crate::pipe::{Pipe, PipeEnd, Side};
use crate::savefile::wire::{bad, Dec, Enc, WireError};
use crate::snap::SnapError;
use crate::vfs::tmpfs::{TmpInode, TmpLoad};
use crate::vfs::{DevKind, Location, Vfs};

/// Why a saved state cannot be loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LoadError {
    /// The bytes are not a state this build wrote (corrupt or crafted).
    Corrupt(String),
    /// A host file the state names is not what it was at the save.
    Changed { path: String, reason: String },
}

impl From<WireError> for LoadError {
    fn from(e: WireError) -> Self {
        LoadError::Corrupt(e.0)
    }
}

/// The most tasks or processes a state may hold.
const MAX_TASKS: usize = 1 << 16;

/// The host path of a descriptor (`/proc/self/fd`), on the host side (never on a
/// confined thread).
fn host_path(fd: i32) -> Option<Vec<u8>> {
    use std::os::unix::ffi::OsStringExt;
    std::fs::read_link(format!("/proc/self/fd/{fd}"))
        .ok()
        .map(|p| p.into_os_string().into_vec())
}

fn identity(fd: i32) -> Result<(u64, u64, u64, (i64, i64)), String> {
    let st = crate::vfs::host::fstat(fd)
        .map_err(|e| std::io::Error::from_raw_os_error(e.0).to_string())?;
    Ok((st.dev, st.ino, st.size, (st.mtime.sec, st.mtime.nsec)))
}

fn save_id(e: &mut Enc, id: (u64, u64, u64, (i64, i64))) {
    e.u64(id.0);
    e.u64(id.1);
    e.u64(id.2);
    e.i64(id.3 .0);
    e.i64(id.3 .1);
}

fn load_id(d: &mut Dec<'_>) -> Result<(u64, u64, u64, (i64, i64)), WireError> {
    let w = "a file's identity";
    Ok((d.u64(w)?, d.u64(w)?, d.u64(w)?, (d.i64(w)?, d.i64(w)?)))
}

/// Opens the regular file at `rel` beneath the directory `dir`, a component at a
/// time, never following a symlink nor leaving `dir` (`..` and `.` are refused).
fn open_beneath(dir: i32, rel: &[u8]) -> Result<crate::vfs::host::HostFd, crate::errno::Errno> {
    let comps: Vec<&[u8]> = rel
        .split(|&c| c == b'/')
        .filter(|c| !c.is_empty())
        .collect();
    if comps.is_empty() || comps.iter().any(|c| *c == b"." || *c == b"..") {
        return Err(crate::errno::EINVAL);
    }
    let mut cur: Option<crate::vfs::host::HostFd> = None;
    for (i, c) in comps.iter().enumerate() {
        let at = cur.as_ref().map_or(dir, |f| f.as_raw_fd());
        if i + 1 == comps.len() {
            return crate::vfs::host::open_file(at, c, libc::O_RDONLY, 0);
        }
        cur = Some(crate::vfs::host::open_path(at, c)?);
    }
    Err(crate::errno::EINVAL)
}

/// Writes backings: host files as (mount source, path beneath it, identity).
struct SaveIo {
    /// The host path of each mount source.
    sources: Vec<Option<Vec<u8>>>,
}

impl BackingIo for SaveIo {
    fn save(&mut self, e: &mut Enc, b: &Rc<dyn Backing>) -> Result<(), SnapError> {
        match b.saved() {
            Some(SavedBacking::Host(fd)) => {
                e.u8(0);
                let raw = fd.as_raw_fd();
                let path = host_path(raw).unwrap_or_default();
                let found = self.sources.iter().enumerate().find_map(|(i, s)| {
                    let s = s.as_ref()?;
                    if path == *s {
                        return Some((i, Vec::new()));
                    }
                    let rest = path.strip_prefix(s.as_slice())?.strip_prefix(b"/")?;
                    Some((i, rest.to_vec()))
                });
                let (i, rel) = found.ok_or_else(|| {
                    SnapError::new(format!(
                        "a process maps the host file {}, which is under none of the sandbox's mounts (deleted or renamed since?)",
                        String::from_utf8_lossy(&path)
                    ))
                })?;
                e.usize(i);
                e.bytes(&rel);
                save_id(e, identity(raw).map_err(SnapError::new)?);
            }
            Some(SavedBacking::Tmp(t)) => {
                e.u8(1);
                TmpInode::save(t, e)?;
            }
            Some(SavedBacking::Gen(g)) => {
                e.u8(2);
                e.bytes(g);
            }
            Some(SavedBacking::Zero) => e.u8(3),
            None => {
                return Err(SnapError::new(format!(
                    "a mapping of {b:?} cannot be saved to a file"
                )))
            }
        }
        Ok(())
    }

    fn load(&mut self, _: &mut Dec<'_>) -> Result<Rc<dyn Backing>, WireError> {
        Err(bad("not reading"))
    }
}

/// Reads backings back (see [`SaveIo`]).
struct LoadIo<'a> {
    vfs: &'a Vfs,
    tmp: &'a mut TmpLoad,
    /// A host file that changed (the decoding error says only "changed").
    changed: Option<LoadError>,
}

impl BackingIo for LoadIo<'_> {
    fn save(&mut self, _: &mut Enc, _: &Rc<dyn Backing>) -> Result<(), SnapError> {
        Err(SnapError::new("not writing"))
    }

    fn load(&mut self, d: &mut Dec<'_>) -> Result<Rc<dyn Backing>, WireError> {
        let w = "a mapping's file";
        Ok(match d.u8(w)? {
            0 => {
                let i = d.usize(w)?;
                let rel = d.bytes(w)?;
                let id = load_id(d)?;
                let src = self
                    .vfs
                    .sources()
                    .get(i)
                    .ok_or_else(|| bad(format!("{w}: mount source {i} does not exist")))?;
                let name = String::from_utf8_lossy(&rel).into_owned();
                let opened = if rel.is_empty() {
                    // A file mounted by itself: its own handle, reopened for reading.
                    crate::vfs::host::open_file(
                        libc::AT_FDCWD,
                        format!("/proc/self/fd/{}", src.fd.as_raw_fd()).as_bytes(),
                        libc::O_RDONLY,
                        0,
                    )
                } else {
                    open_beneath(src.fd.as_raw_fd(), &rel)
                };
                let fd = match opened {
                    Ok(fd) => fd,
                    Err(e) => {
                        self.changed = Some(LoadError::Changed {
                            path: name,
                            reason: format!(
                                "a file mapped at the snapshot cannot be reopened beneath its mount: {}",
                                std::io::Error::from_raw_os_error(e.0)
                            ),
                        });
                        return Err(bad("a mapped file changed"));
                    }
                };
                let now = identity(fd.as_raw_fd()).map_err(bad)?;
                if now != id {
                    self.changed = Some(LoadError::Changed {
                        path: name,
                        reason: format!(
                            "the host file mapped at the snapshot changed since (device, inode, size, modification time were {id:?}, are {now:?})"
                        ),
                    });
                    return Err(bad("a mapped file changed"));
                }
                Rc::new(crate::vfs::backing::HostBacking(fd))
            }
            1 => Rc::new(crate::vfs::backing::TmpBacking(TmpInode::load(
                d, self.tmp, 0,
            )?)),
            2 => Rc::new(crate::vfs::backing::GenBacking(Rc::from(d.bytes(w)?))),
            3 => super::mm::zero_backing(),
            k => return Err(bad(format!("{w}: kind {k} is unknown"))),
        })
    }
}

fn save_regs(e: &mut Enc, r: &kvm_regs) {
    for v in [
        r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rsp, r.rbp, r.r8, r.r9, r.r10, r.r11, r.r12,
        r.r13, r.r14, r.r15, r.rip, r.rflags,
    ] {
        e.u64(v);
    }
}

fn load_regs(d: &mut Dec<'_>) -> Result<kvm_regs, WireError> {
    let mut v = [0u64; 18];
    for x in &mut v {
        *x = d.u64("registers")?;
    }
    Ok(kvm_regs {
        rax: v[0],
        rbx: v[1],
        rcx: v[2],
        rdx: v[3],
        rsi: v[4],
        rdi: v[5],
        rsp: v[6],
        rbp: v[7],
        r8: v[8],
        r9: v[9],
        r10: v[10],
        r11: v[11],
        r12: v[12],
        r13: v[13],
        r14: v[14],
        r15: v[15],
        rip: v[16],
        rflags: v[17],
    })
}

fn save_fpu(e: &mut Enc, x: &kvm_xsave) {
    for v in x.region {
        e.u32(v);
    }
}

fn load_fpu(d: &mut Dec<'_>) -> Result<Box<kvm_xsave>, WireError> {
    let mut x = crate::snap::xsave(&kvm_xsave::default());
    for v in x.region.iter_mut() {
        *v = d.u32("an FPU state")?;
    }
    Ok(x)
}

/// An instant as the time left until it (none past: zero), and back from now.
fn save_when(e: &mut Enc, t: Option<Instant>, now: Instant) {
    e.opt(t, |e, t| {
        let left = t.saturating_duration_since(now);
        e.u64(left.as_secs());
        e.u32(left.subsec_nanos());
    });
}

fn save_dur(e: &mut Enc, d: Duration) {
    e.u64(d.as_secs());
    e.u32(d.subsec_nanos());
}

fn load_dur(d: &mut Dec<'_>) -> Result<Duration, WireError> {
    let s = d.u64("a duration")?;
    let n = d.u32("a duration")?;
    if n >= 1_000_000_000 || s > 1 << 40 {
        return Err(bad("a duration is out of bounds"));
    }
    Ok(Duration::new(s, n))
}

fn load_when(d: &mut Dec<'_>, now: Instant) -> Result<Option<Instant>, WireError> {
    d.opt("a deadline", |d| {
        let left = load_dur(d)?;
        now.checked_add(left)
            .ok_or_else(|| bad("a deadline is out of bounds"))
    })
}

fn save_info(e: &mut Enc, info: &[Option<SigInfo>; 64]) {
    for i in info {
        e.opt(i.as_ref(), |e, s| {
            e.i32(s.signo);
            e.i32(s.code);
            e.u64(s.addr);
            e.u64(s.status);
        });
    }
}

fn load_info(d: &mut Dec<'_>) -> Result<[Option<SigInfo>; 64], WireError> {
    let mut info = [None; 64];
    for i in info.iter_mut() {
        *i = d.opt("a signal", |d| {
            Ok(SigInfo {
                signo: d.i32("a signal")?,
                code: d.i32("a signal")?,
                addr: d.u64("a signal")?,
                status: d.u64("a signal")?,
            })
        })?;
    }
    Ok(info)
}

fn save_task(e: &mut Enc, t: &Task, now: Instant) {
    e.u32(t.tid);
    e.u32(t.pid);
    e.u32(t.space);
    save_regs(e, &t.ctx.regs);
    e.u64(t.ctx.rip);
    e.u64(t.ctx.rflags);
    e.u64(t.fs_base);
    e.u64(t.gs_base);
    e.opt(t.fpu.as_deref(), save_fpu);
    match &t.state {
        TaskState::Runnable => e.u8(0),
        TaskState::Dead => e.u8(1),
        TaskState::Blocked(b) => {
            e.u8(2);
            e.u64(b.nr);
            for a in b.args {
                e.u64(a);
            }
            save_when(e, b.deadline, now);
            match b.wait {
                Wait::Retry => e.u8(0),
                Wait::Futex { key, bitset } => {
                    e.u8(1);
                    match key {
                        FutexKey::Private(s, a) => {
                            e.u8(0);
                            e.u32(s);
                            e.u64(a);
                        }
                        FutexKey::Shared(a) => {
                            e.u8(1);
                            e.u64(a);
                        }
                    }
                    e.u32(bitset);
                }
                Wait::Vfork(t) => {
                    e.u8(2);
                    e.u32(t);
                }
                Wait::Interrupted(sig) => {
                    e.u8(3);
                    e.u32(sig as u32);
                }
            }
        }
    }
    e.u64(t.mask);
    e.u64(t.pending);
    save_info(e, &t.info);
    e.opt(t.altstack, |e, (a, b)| {
        e.u64(a);
        e.u64(b);
    });
    e.seq(t.sig_fpu.iter(), |e, x| save_fpu(e, x));
    e.opt(t.suspend_mask, |e, m| e.u64(m));
    e.u64(t.clear_tid);
    e.opt(t.vfork_parent, |e, p| e.u32(p));
    save_dur(e, t.cpu);
    e.i32(t.nice);
    e.i32(t.policy);
    e.u32(u32::from(t.ioprio));
    e.i32(t.pdeathsig);
    e.u64(t.partial);
}

fn load_task(d: &mut Dec<'_>, now: Instant) -> Result<Task, WireError> {
    let w = "a thread";
    let (tid, pid, space) = (d.u32(w)?, d.u32(w)?, d.u32(w)?);
    let regs = load_regs(d)?;
    let ctx = UserCtx {
        regs,
        rip: d.u64(w)?,
        rflags: d.u64(w)?,
    };
    let mut t = Task::new(tid, pid, space, ctx);
    t.fs_base = d.u64(w)?;
    t.gs_base = d.u64(w)?;
    t.fpu = d.opt(w, load_fpu)?;
    t.state = match d.u8(w)? {
        0 => TaskState::Runnable,
        1 => TaskState::Dead,
        2 => {
            let nr = d.u64(w)?;
            let mut args = [0u64; 6];
            for a in &mut args {
                *a = d.u64(w)?;
            }
            let deadline = load_when(d, now)?;
            let wait = match d.u8(w)? {
                0 => Wait::Retry,
                1 => {
                    let key = match d.u8(w)? {
                        0 => FutexKey::Private(d.u32(w)?, d.u64(w)?),
                        1 => FutexKey::Shared(d.u64(w)?),
                        k => return Err(bad(format!("{w}: futex key kind {k} is unknown"))),
                    };
                    Wait::Futex {
                        key,
                        bitset: d.u32(w)?,
                    }
                }
                2 => Wait::Vfork(d.u32(w)?),
                3 => match d.u32(w)? {
                    s @ 1..=64 => Wait::Interrupted(s as i32),
                    s => return Err(bad(format!("{w}: signal {s} is unknown"))),
                },
                k => return Err(bad(format!("{w}: wait kind {k} is unknown"))),
            };
            TaskState::Blocked(Blocked {
                nr,
                args,
                deadline,
                wait,
            })
        }
        k => return Err(bad(format!("{w}: state {k} is unknown"))),
    };
    t.mask = d.u64(w)?;
    t.pending = d.u64(w)?;
    t.info = load_info(d)?;
    t.altstack = d.opt(w, |d| Ok((d.u64(w)?, d.u64(w)?)))?;
    t.sig_fpu = d.seq(1024, w, load_fpu)?;
    t.suspend_mask = d.opt(w, |d| d.u64(w))?;
    t.clear_tid = d.u64(w)?;
    t.vfork_parent = d.opt(w, |d| d.u32(w))?;
    t.cpu = load_dur(d)?;
    t.nice = d.i32(w)?.clamp(-20, 19);
    t.policy = d.i32(w)?;
    t.ioprio = d.u32(w)? as u16;
    t.pdeathsig = d.i32(w)?;
    t.partial = d.u64(w)?;
    Ok(t)
}

/// Writes open files (shared: once each), recording nothing else.
struct Files;

impl Files {
    fn save(e: &mut Enc, f: &Rc<OpenFile>) -> Result<(), SnapError> {
        if !e.shared(Rc::as_ptr(f)) {
            return Ok(());
        }
        let path = f.loc.as_ref().map(Location::path);
        match &f.kind {
            FileKind::Stdin(c) => {
                e.u8(0);
                e.u32(*c);
            }
            FileKind::Output(c, err) => {
                e.u8(1);
                e.u32(*c);
                e.bool(*err);
            }
            FileKind::Host(fd) => {
                e.u8(2);
                if path.is_none() {
                    return Err(SnapError::new("a host file is open with no path to reopen it by"));
                }
                save_id(e, identity(fd.as_raw_fd()).map_err(SnapError::new)?);
            }
            FileKind::Dir => e.u8(3),
            FileKind::Tmp(t) => {
                e.u8(4);
                TmpInode::save(t, e)?;
            }
            FileKind::Dev(k) => {
                e.u8(5);
                match k {
                    DevKind::Null => e.u8(0),
                    DevKind::Zero => e.u8(1),
                    DevKind::Full => e.u8(2),
                    DevKind::Random => e.u8(3),
                    DevKind::Tty | DevKind::Pts(_) | DevKind::Ptmx => {
                        return Err(SnapError::new(
                            "a process holds a terminal device: terminals cannot be saved to a file",
                        ))
                    }
                }
            }
            FileKind::Gen(b) => {
                e.u8(6);
                e.bytes(b);
            }
            FileKind::Pipe(p) => {
                e.u8(7);
                Pipe::save(&p.pipe, e);
                e.u8(p.side.code());
            }
            FileKind::EventFd(ev) => {
                e.u8(8);
                e.u64(ev.count.get());
                e.bool(ev.semaphore);
            }
            FileKind::Path => e.u8(9),
            FileKind::SignalFd(m) => {
                e.u8(10);
                e.u64(m.get());
            }
            FileKind::PidFd(p) => {
                e.u8(11);
                e.u32(p.pid);
                e.bool(p.thread);
            }
            FileKind::Socket(_) => {
                return Err(SnapError::new(
                    "a process holds a socket: sockets cannot be saved to a file (the in-memory snapshot keeps AF_UNIX sockets)",
                ))
            }
            FileKind::Epoll(..) => {
                return Err(SnapError::new(
                    "a process holds an epoll instance: epoll cannot be saved to a file (the in-memory snapshot keeps it)",
                ))
            }
            FileKind::Tty(_) | FileKind::PtyMaster(_) => {
                return Err(SnapError::new(
                    "a process holds a terminal (an exec with a tty, or /dev/ptmx): terminals cannot be saved",
                ))
            }
            FileKind::Inotify(_) => {
                return Err(SnapError::new(
                    "a process holds an inotify instance: it cannot be saved to a file (the in-memory snapshot keeps it)",
                ))
            }
            FileKind::Mqueue(_) => {
                return Err(SnapError::new(
                    "a process holds a POSIX message queue: it cannot be saved to a file (the in-memory snapshot keeps it)",
                ))
            }
            FileKind::TimerFd(_) => {
                return Err(SnapError::new(
                    "a process holds a timerfd: timerfds cannot be saved to a file (the in-memory snapshot keeps them)",
                ))
            }
        }
        e.opt(path.as_deref(), |e, p| e.bytes(p));
        e.i32(f.flags.get());
        e.u64(f.pos.get());
        e.i32(f.owner.get());
        e.i32(f.io_signal.get());
        Ok(())
    }
}

/// Reads the state back (see the module's doc).
struct Loader<'a, 'b> {
    d: Dec<'b>,
    io: LoadIo<'a>,
    budget: Rc<Budget>,
    now: Instant,
}

impl Loader<'_, '_> {
    fn location(&mut self, path: &[u8], what: &str) -> Result<Location, LoadError> {
        let vfs = self.io.vfs;
        vfs.resolve(&vfs.root(), path, false)
            .map_err(|e| LoadError::Changed {
                path: String::from_utf8_lossy(path).into_owned(),
                reason: format!(
                    "{what} at the snapshot cannot be found in the sandbox: {}",
                    std::io::Error::from_raw_os_error(e.0)
                ),
            })
    }

    fn pipe(&mut self) -> Result<Rc<RefCell<Pipe>>, LoadError> {
        Ok(Pipe::load(&mut self.d, &self.budget)?)
    }

    fn file(&mut self) -> Result<Rc<OpenFile>, LoadError> {
        use crate::savefile::wire::Shared;
        let w = "an open file";
        let id = match self.d.shared::<OpenFile>(w)? {
            Shared::Known(f) => return Ok(f),
            Shared::New(id) => id,
        };
        enum K {
            Ready(FileKind),
            Host((u64, u64, u64, (i64, i64))),
        }
        let k = match self.d.u8(w)? {
            0 => K::Ready(FileKind::Stdin(self.d.u32(w)?)),
            1 => K::Ready(FileKind::Output(self.d.u32(w)?, self.d.bool(w)?)),
            2 => K::Host(load_id(&mut self.d)?),
            3 => K::Ready(FileKind::Dir),
            4 => K::Ready(FileKind::Tmp(TmpInode::load(&mut self.d, self.io.tmp, 0)?)),
            5 => K::Ready(FileKind::Dev(match self.d.u8(w)? {
                0 => DevKind::Null,
                1 => DevKind::Zero,
                2 => DevKind::Full,
                3 => DevKind::Random,
                k => return Err(bad(format!("{w}: device {k} is unknown")).into()),
            })),
            6 => K::Ready(FileKind::Gen(Rc::from(self.d.bytes(w)?))),
            7 => {
                let p = self.pipe()?;
                let c = self.d.u8(w)?;
                let side = Side::from_code(c)
                    .ok_or_else(|| bad(format!("{w}: pipe end {c} is unknown")))?;
                K::Ready(FileKind::Pipe(PipeEnd::restored(p, side)))
            }
            8 => K::Ready(FileKind::EventFd(EventFd {
                count: Cell::new(self.d.u64(w)?),
                semaphore: self.d.bool(w)?,
            })),
            9 => K::Ready(FileKind::Path),
            10 => K::Ready(FileKind::SignalFd(Cell::new(self.d.u64(w)?))),
            11 => K::Ready(FileKind::PidFd(super::pidfd::PidFd {
                pid: self.d.u32(w)?,
                thread: self.d.bool(w)?,
            })),
            k => return Err(bad(format!("{w}: kind {k} is unknown")).into()),
        };
        let path = self.d.opt(w, |d| d.bytes(w))?;
        let flags = self.d.i32(w)?;
        let pos = self.d.u64(w)?;
        let owner = self.d.i32(w)?;
        let io_signal = self.d.i32(w)?;
        let kind = match k {
            K::Ready(k) => k,
            K::Host(id) => {
                let path = path
                    .as_deref()
                    .ok_or_else(|| LoadError::Corrupt(format!("{w}: a host file with no path")))?;
                let name = String::from_utf8_lossy(path).into_owned();
                let vfs = self.io.vfs;
                let access = flags & (libc::O_ACCMODE | libc::O_APPEND);
                let fd = match vfs.open(&vfs.root(), path, access, 0) {
                    Ok((_, crate::vfs::Opened::Host(fd))) => fd,
                    Ok(_) => return Err(LoadError::Changed {
                        path: name,
                        reason:
                            "the host file held open at the snapshot is no longer a host file there"
                                .into(),
                    }),
                    Err(e) => {
                        return Err(LoadError::Changed {
                            path: name,
                            reason: format!(
                                "the host file held open at the snapshot cannot be reopened: {}",
                                std::io::Error::from_raw_os_error(e.0)
                            ),
                        })
                    }
                };
                let now = identity(fd.as_raw_fd()).map_err(LoadError::Corrupt)?;
                if now != id {
                    return Err(LoadError::Changed {
                        path: name,
                        reason: format!(
                            "the host file held open at the snapshot changed since (device, inode, size, modification time were {id:?}, are {now:?})"
                        ),
                    });
                }
                FileKind::Host(fd)
            }
        };
        let needs_loc = matches!(kind, FileKind::Dir | FileKind::Path | FileKind::Host(_));
        let loc = match path {
            Some(p) if needs_loc => Some(self.location(&p, "a directory or file held open")?),
            // An in-memory file may have been removed since it was opened: its path
            // is only its name then.
            Some(p) => self.io.vfs.resolve(&self.io.vfs.root(), &p, false).ok(),
            None if needs_loc => {
                return Err(LoadError::Corrupt(format!("{w}: a directory with no path")))
            }
            None => None,
        };
        let f = Rc::new(OpenFile {
            kind,
            loc,
            flags: Cell::new(flags),
            pos: Cell::new(pos),
            listing: RefCell::new(None),
            owner: Cell::new(owner),
            io_signal: Cell::new(io_signal),
            listing_charge: RefCell::new(None),
            mapped: RefCell::new(None),
        });
        self.d.define(id, Rc::clone(&f));
        Ok(f)
    }

    fn process(&mut self) -> Result<Process, LoadError> {
        let w = "a process";
        let d = &mut self.d;
        let (pid, ppid, pgid, sid) = (d.u32(w)?, d.u32(w)?, d.u32(w)?, d.u32(w)?);
        let threads = d.seq(MAX_TASKS, w, |d| d.u32(w))?;
        let limit = d.usize(w)?.min(1 << 20);
        let n = d.len(limit.max(3), "a descriptor table")?;
        let mut slots = Vec::with_capacity(n);
        for _ in 0..n {
            let s = if self.d.bool(w)? {
                let f = self.file()?;
                Some((f, self.d.bool(w)?))
            } else {
                None
            };
            slots.push(s);
        }
        let files = FdTable::restored(slots, limit);
        let cwd_path = self.d.bytes(w)?;
        let cwd = self.location(&cwd_path, "the working directory")?;
        let d = &mut self.d;
        let umask = d.u32(w)? & 0o777;
        let mut act = [Action::default(); 64];
        for a in &mut act {
            *a = Action {
                handler: d.u64(w)?,
                flags: d.u64(w)?,
                restorer: d.u64(w)?,
                mask: d.u64(w)?,
            };
        }
        let pending = d.u64(w)?;
        let info = load_info(d)?;
        let exe = d.bytes(w)?;
        let comm = d.bytes(w)?;
        let argv = d.seq(1 << 16, w, |d| d.bytes(w))?;
        let budget = Rc::clone(&self.budget);
        let argv_charge = d.opt(w, |d| Ok(HeapCharge::restored(&budget, d.u64(w)?)))?;
        let exit = d.opt(w, |d| {
            Ok(match d.u8(w)? {
                0 => ExitStatus::Code(d.i32(w)?),
                _ => ExitStatus::Signal(d.i32(w)?),
            })
        })?;
        let exit_signal = d.i32(w)?;
        let now = self.now;
        let itimer = d.opt(w, |d| {
            let at = load_when(d, now)?.unwrap_or(now);
            Ok((at, load_dur(d)?))
        })?;
        let mut cpu_itimers = [None; 2];
        for t in &mut cpu_itimers {
            *t = d.opt(w, |d| Ok((load_dur(d)?, load_dur(d)?)))?;
        }
        let cpu_dead = load_dur(d)?;
        let cpu_children = load_dur(d)?;
        let stopped = d.opt(w, |d| d.i32(w))?;
        let stop_report = d.opt(w, |d| d.i32(w))?;
        let continued = d.bool(w)?;
        let pairs = d.seq(64, w, |d| Ok((d.u64(w)?, d.u64(w)?)))?;
        let rlimits = super::limits::Rlimits::from_pairs(&pairs)
            .ok_or_else(|| bad(format!("{w}: its resource limits are not valid")))?;
        let dumpable = d.bool(w)?;
        let subreaper = d.bool(w)?;
        let persona = d.u32(w)?;
        let membarrier = d.u32(w)?;
        let mut p = Process::first(files, cwd, exe, comm, argv);
        p.pid = pid;
        p.ppid = ppid;
        p.pgid = pgid;
        p.sid = sid;
        p.threads = threads;
        p.umask = umask;
        p.act = act;
        p.pending = pending;
        p.info = info;
        p.argv_charge = argv_charge;
        p.exit = exit;
        p.exit_signal = exit_signal;
        p.itimer = itimer;
        p.cpu_itimers = cpu_itimers;
        p.cpu_dead = cpu_dead;
        p.cpu_children = cpu_children;
        p.stopped = stopped;
        p.stop_report = stop_report;
        p.continued = continued;
        p.rlimits = rlimits;
        p.dumpable = dumpable;
        p.subreaper = subreaper;
        p.persona = persona;
        p.membarrier = membarrier;
        Ok(p)
    }
}

fn save_process(e: &mut Enc, p: &Process, now: Instant) -> Result<(), SnapError> {
    e.u32(p.pid);
    e.u32(p.ppid);
    e.u32(p.pgid);
    e.u32(p.sid);
    e.seq(p.threads.iter(), |e, t| e.u32(*t));
    e.usize(p.files.limit);
    let slots = p.files.saved_slots();
    e.usize(slots.len());
    for s in slots {
        match s {
            None => e.bool(false),
            Some((f, cloexec)) => {
                e.bool(true);
                Files::save(e, f)?;
                e.bool(cloexec);
            }
        }
    }
    e.bytes(&p.cwd.path());
    e.u32(p.umask);
    for a in &p.act {
        for v in [a.handler, a.flags, a.restorer, a.mask] {
            e.u64(v);
        }
    }
    e.u64(p.pending);
    save_info(e, &p.info);
    e.bytes(&p.exe);
    e.bytes(&p.comm);
    e.seq(p.argv.iter(), |e, a| e.bytes(a));
    e.opt(p.argv_charge.as_ref(), |e, c| e.u64(c.bytes()));
    e.opt(p.exit, |e, x| match x {
        ExitStatus::Code(c) => {
            e.u8(0);
            e.i32(c);
        }
        ExitStatus::Signal(s) => {
            e.u8(1);
            e.i32(s);
        }
    });
    e.i32(p.exit_signal);
    e.opt(p.itimer, |e, (at, every)| {
        save_when(e, Some(at), now);
        save_dur(e, every);
    });
    for t in p.cpu_itimers {
        e.opt(t, |e, (a, b)| {
            save_dur(e, a);
            save_dur(e, b);
        });
    }
    save_dur(e, p.cpu_dead);
    save_dur(e, p.cpu_children);
    e.opt(p.stopped, |e, s| e.i32(s));
    e.opt(p.stop_report, |e, s| e.i32(s));
    e.bool(p.continued);
    e.seq(p.rlimits.pairs().into_iter(), |e, (c, m)| {
        e.u64(c);
        e.u64(m);
    });
    e.bool(p.dumpable);
    e.bool(p.subreaper);
    e.u32(p.persona);
    e.u32(p.membarrier);
    Ok(())
}

impl Kernel {
    /// Writes the state of a snapshot's kernel copy (see the module's doc). Fails,
    /// naming it, on what a file cannot hold.
    pub(crate) fn save_state(&self, e: &mut Enc) -> Result<(), SnapError> {
        if self.egress.is_some()
            || !matches!(
                self.net,
                super::inet::NetMode::None | super::inet::NetMode::Loopback
            )
        {
            return Err(SnapError::new(
                "the sandbox has a network of its own (egress): it cannot be saved to a file",
            ));
        }
        if !self.shm.is_empty() {
            return Err(SnapError::new(
                "a process holds System V or POSIX shared memory: it cannot be saved to a file",
            ));
        }
        if !self.mqueue.is_empty() {
            return Err(SnapError::new(
                "the sandbox has POSIX message queues: they cannot be saved to a file; unlink them first (the in-memory snapshot keeps them)",
            ));
        }
        if !self.ipc.is_empty() {
            return Err(SnapError::new(
                "the sandbox has System V IPC objects (semaphores, message queues, shared memory): they cannot be saved to a file; remove them first (the in-memory snapshot keeps them)",
            ));
        }
        if self.locks.any_live() {
            return Err(SnapError::new(
                "a process holds a file lock (flock or fcntl): it cannot be saved to a file; release it first",
            ));
        }
        if self.timers.has_posix() {
            return Err(SnapError::new(
                "a process has a POSIX timer (timer_create): it cannot be saved to a file; delete it first (the in-memory snapshot keeps it)",
            ));
        }
        if self.ended.is_some() {
            return Err(SnapError::new("the sandbox's workload has ended"));
        }
        let now = Instant::now();
        self.mm.mem.budget().save(e);
        // The in-memory filesystems, from their roots (a sandbox built from the same
        // plan has as many, in the same order).
        let roots = self.vfs.tmp_roots();
        e.usize(roots.len());
        for r in &roots {
            TmpInode::save(r, e)?;
        }
        let mut io = SaveIo {
            sources: self
                .vfs
                .sources()
                .iter()
                .map(|s| host_path(s.fd.as_raw_fd()))
                .collect(),
        };
        self.mm.save(e, &mut io)?;
        // The current task and process, then the others.
        save_task(e, &self.task, now);
        save_process(e, &self.proc, now)?;
        e.usize(self.tasks.len());
        for t in self.tasks.values() {
            save_task(e, t, now);
        }
        e.usize(self.procs.len());
        for p in self.procs.values() {
            save_process(e, p, now)?;
        }
        e.u32(self.main_pid);
        e.u32(self.next_tid);
        e.bool(self.tids_wrapped);
        e.opt(self.pids_limit, |e, v| e.u64(v));
        e.seq(self.dead_spaces.iter(), |e, s| e.u32(*s));
        let l = &self.limits;
        e.opt(l.file_size, |e, v| e.u64(v));
        save_when(e, l.deadline, now);
        e.opt(l.cpu, save_dur);
        for v in [l.open_files, l.memory, l.stack] {
            e.u64(v);
        }
        e.seq(self.unimplemented.iter(), |e, (k, v)| {
            e.bytes(k.as_bytes());
            e.u64(*v);
        });
        e.bytes(self.hostname.as_bytes());
        e.u32(self.user.0);
        e.u32(self.user.1);
        e.bool(self.vdso);
        e.bool(matches!(self.net, super::inet::NetMode::Loopback));
        // /proc's view.
        e.u32(self.vfs.proc.me.get());
        let procs = self.vfs.proc.procs.borrow();
        e.usize(procs.len());
        for (pid, i) in procs.iter() {
            e.u32(*pid);
            e.bytes(&i.exe);
            e.bytes(&i.cwd);
            // The links' text only: the view is made again from the descriptors
            // before a path under /proc is looked up.
            e.seq(i.fds.iter(), |e, l| {
                e.u32(l.fd);
                e.bytes(&l.text);
            });
        }
        Ok(())
    }

    /// Reads a state back over `vfs` (built from the plan, over `budget`) and guest
    /// memory `ram` (mapped from the file as `layers`): the kernel, ready to run from
    /// where it was (see the module's doc).
    pub(crate) fn load_state(
        bytes: &[u8],
        (vfs, budget): (Vfs, Rc<Budget>),
        (ram, layers): (vm_memory::GuestMemoryMmap, Vec<crate::memory::Layer>),
        settings: super::Settings,
    ) -> Result<Kernel, LoadError> {
        let now = Instant::now();
        let mut d = Dec::new(bytes);
        let saved = Budget::load(&mut d, budget.total())?;
        budget.set_from(&saved);
        let n = d.len(64, "the in-memory filesystems")?;
        let roots = vfs.tmp_roots();
        if n != roots.len() {
            return Err(LoadError::Changed {
                path: "/".into(),
                reason: format!(
                    "the snapshot has {n} in-memory filesystems, the sandbox built from its settings {}",
                    roots.len()
                ),
            });
        }
        let mut tmp = TmpLoad {
            roots,
            budget: Rc::clone(&budget),
        };
        let mut expected = tmp.roots.clone();
        for _ in 0..n {
            let want = expected.remove(0);
            let got = TmpInode::load(&mut d, &mut tmp, 0)?;
            if !Rc::ptr_eq(&got, &want) {
                return Err(bad("an in-memory filesystem's root is out of order").into());
            }
        }
        let mut ld = Loader {
            d,
            io: LoadIo {
                vfs: &vfs,
                tmp: &mut tmp,
                changed: None,
            },
            budget: Rc::clone(&budget),
            now,
        };
        let mm = match AddressSpace::load(&mut ld.d, &mut ld.io, (ram, layers, Rc::clone(&budget)))
        {
            Ok(mm) => mm,
            Err(e) => return Err(ld.io.changed.take().unwrap_or(e.into())),
        };
        let task = load_task(&mut ld.d, now)?;
        let proc = ld.process()?;
        let nt = ld.d.len(MAX_TASKS, "the threads")?;
        let mut tasks = BTreeMap::new();
        for _ in 0..nt {
            let t = load_task(&mut ld.d, now)?;
            tasks.insert(t.tid, t);
        }
        let np = ld.d.len(MAX_TASKS, "the processes")?;
        let mut procs = BTreeMap::new();
        for _ in 0..np {
            let p = ld.process()?;
            procs.insert(p.pid, p);
        }
        let d = &mut ld.d;
        let w = "the kernel";
        let main_pid = d.u32(w)?;
        let next_tid = d.u32(w)?;
        let tids_wrapped = d.bool(w)?;
        let pids_limit = d.opt(w, |d| d.u64(w))?;
        let dead_spaces = d.seq(1 << 16, w, |d| d.u32(w))?;
        let limits = Limits {
            file_size: d.opt(w, |d| d.u64(w))?,
            deadline: load_when(d, now)?,
            cpu: d.opt(w, load_dur)?,
            open_files: d.u64(w)?,
            memory: d.u64(w)?,
            stack: d.u64(w)?,
        };
        let unimplemented = d
            .seq(1 << 12, w, |d| {
                Ok((
                    String::from_utf8_lossy(&d.bytes(w)?).into_owned(),
                    d.u64(w)?,
                ))
            })?
            .into_iter()
            .collect();
        let hostname = String::from_utf8_lossy(&d.bytes(w)?).into_owned();
        let user = (d.u32(w)?, d.u32(w)?);
        let vdso = d.bool(w)?;
        let loopback = d.bool(w)?;
        let me = d.u32(w)?;
        let nv = d.len(MAX_TASKS, "/proc's view")?;
        let mut view = BTreeMap::new();
        for _ in 0..nv {
            let pid = d.u32(w)?;
            let exe = d.bytes(w)?;
            let cwd = d.bytes(w)?;
            let fds = d.seq(1 << 20, w, |d| {
                Ok(crate::vfs::proc::FdLink {
                    fd: d.u32(w)?,
                    text: d.bytes(w)?,
                    file: None,
                })
            })?;
            view.insert(pid, crate::vfs::proc::ProcInfo { exe, cwd, fds });
        }
        ld.d.done()?;
        // (Each pipe counts the ends read back, `PipeEnd::restored`: a crafted count
        // never underflows.)
        drop(ld);
        // Consistency the scheduler relies on: every thread's process and address
        // space exist, every process's threads exist.
        let spaces: std::collections::BTreeSet<u32> = mm.space_ids().into_iter().collect();
        let all_tasks = || std::iter::once(&task).chain(tasks.values());
        let all_procs = || std::iter::once(&proc).chain(procs.values());
        for t in all_tasks() {
            if !all_procs().any(|p| p.pid == t.pid) || !spaces.contains(&t.space) {
                return Err(
                    bad(format!("thread {} has no process or address space", t.tid)).into(),
                );
            }
        }
        for p in all_procs() {
            if !p
                .threads
                .iter()
                .all(|tid| all_tasks().any(|t| t.tid == *tid))
            {
                return Err(bad(format!(
                    "process {} names a thread that does not exist",
                    p.pid
                ))
                .into());
            }
        }
        if task.pid != proc.pid || tasks.contains_key(&task.tid) || procs.contains_key(&proc.pid) {
            return Err(bad("the current thread and process are not consistent").into());
        }
        vfs.proc.me.set(me);
        *vfs.proc.procs.borrow_mut() = view;
        let super::Settings {
            out, input, ctl, ..
        } = settings;
        Ok(Kernel {
            mm,
            vfs,
            task,
            proc,
            tasks,
            procs,
            main_pid,
            next_tid,
            tids_wrapped,
            pids_limit,
            ended: None,
            stirred: true,
            slice_start: now,
            preempt: false,
            retrying: None,
            dead_spaces,
            shm: Vec::new(),
            cpu_mark: Duration::ZERO,
            limits,
            out,
            input,
            ctl,
            start: now,
            unimplemented,
            hostname,
            user,
            vdso,
            current: None,
            unix: super::unix::Names::default(),
            ttys: Vec::new(),
            inet: super::inet::Ports::default(),
            net: if loopback {
                super::inet::NetMode::Loopback
            } else {
                super::inet::NetMode::None
            },
            egress: None,
            netlink: super::netlink::Ports::default(),
            locks: super::locks::Locks::default(),
            timers: super::timers::Timers::default(),
            inotify: super::inotify::Instances::default(),
            ipc: super::ipc::Ipc::default(),
            mqueue: super::mqueue::Queues::default(),
            live: None,
            boot_id: super::new_boot_id(),
            boundary: false,
        })
    }
}
