//! POSIX message queues (`mq_open`, `mq_unlink`, `mq_timedsend`, `mq_timedreceive`,
//! `mq_notify`, `mq_getsetattr`), in the sandbox's own IPC namespace as a container
//! has them: named queues that outlive their descriptors until unlinked, messages taken
//! highest priority first (oldest first within one), waits for room or for a message
//! until an absolute `CLOCK_REALTIME` timeout, and one process notified (a signal, or
//! nothing) when a message arrives in an empty queue nobody waits on. Linux's default
//! limits hold: 10 messages of 8 KiB at most per queue for a sandbox (no
//! `CAP_SYS_RESOURCE`), 256 queues, and `RLIMIT_MSGQUEUE` (819,200 bytes, counted as
//! Linux counts a queue's size). `SIGEV_THREAD` notification (a netlink message glibc
//! reads) is not offered (`EINVAL`, counted).

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::{Rc, Weak};
use std::time::Instant;

use super::fd::{FileKind, OpenFile};
use super::signal::SigInfo;
use super::task::{TaskState, Tid};
use super::{Kernel, SysErr, SysResult};
use crate::abi::{MqAttr, Sigevent, Timespec};
use crate::errno;
use crate::mm::UserPtr;

/// `MQ_PRIO_MAX`.
const MQ_PRIO_MAX: u64 = 32768;
/// `/proc/sys/fs/mqueue/{msg_default,msgsize_default,msg_max,msgsize_max,queues_max}`.
const MSG_DEFAULT: i64 = 10;
const MSGSIZE_DEFAULT: i64 = 8192;
const MSG_MAX: i64 = 10;
const MSGSIZE_MAX: i64 = 8192;
const QUEUES_MAX: usize = 256;
/// What Linux counts per message and per priority in a queue's size
/// (`sizeof(struct msg_msg)`, `sizeof(struct posix_msg_tree_node)` on x86-64).
const MSG_HEADER: i64 = 48;
const TREE_NODE: i64 = 48;
/// `SI_MESGQ`.
const SI_MESGQ: i32 = -3;
const SIGEV_SIGNAL: i32 = 0;
const SIGEV_NONE: i32 = 1;
const SIGEV_THREAD: i32 = 2;
/// `mq_timedreceive`, whose blocked callers count as waiting receivers.
const SYS_MQ_TIMEDRECEIVE: u64 = 243;

/// Where a message stands in its queue: highest priority first, then oldest.
type Order = (std::cmp::Reverse<u32>, u64);

/// Who is notified of a message arriving in the empty queue, and how.
#[derive(Debug, Clone, Copy)]
struct Notify {
    pid: Tid,
    /// The signal (`None`: `SIGEV_NONE`) and its value.
    signal: Option<(i32, u64)>,
}

/// A queue.
#[derive(Debug)]
pub(crate) struct Mq {
    /// Its name (what `/proc/PID/fd` shows, after a slash).
    pub(crate) name: Vec<u8>,
    maxmsg: i64,
    msgsize: i64,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) mode: u32,
    /// Messages by (highest priority first, then arrival).
    msgs: RefCell<BTreeMap<Order, Vec<u8>>>,
    next: Cell<u64>,
    notify: Cell<Option<Notify>>,
}

impl Mq {
    /// What Linux charges to `RLIMIT_MSGQUEUE` for it.
    fn cost(&self) -> u64 {
        let tree = self.maxmsg * MSG_HEADER + self.maxmsg.min(MQ_PRIO_MAX as i64) * TREE_NODE;
        (tree + self.maxmsg * self.msgsize) as u64
    }

    fn len(&self) -> i64 {
        self.msgs.borrow().len() as i64
    }

    pub(crate) fn readable(&self) -> bool {
        self.len() > 0
    }

    pub(crate) fn writable(&self) -> bool {
        self.len() < self.maxmsg
    }

    /// A process closed a descriptor of it: its notification goes (Linux's flush).
    pub(crate) fn flush(&self, pid: Tid) {
        if self.notify.get().is_some_and(|n| n.pid == pid) {
            self.notify.set(None);
        }
    }

    /// What `read` of its descriptor shows.
    fn status(&self) -> String {
        let bytes: usize = self.msgs.borrow().values().map(Vec::len).sum();
        let (notify, signo, pid) = match self.notify.get() {
            None => (0, 0, 0),
            Some(n) => match n.signal {
                Some((s, _)) => (SIGEV_SIGNAL, s, n.pid),
                None => (SIGEV_NONE, 0, n.pid),
            },
        };
        format!("QSIZE:{bytes:<10} NOTIFY:{notify:<5} SIGNO:{signo:<5} NOTIFY_PID:{pid:<6}\n")
    }

    /// A copy for a snapshot.
    pub(crate) fn copy(&self) -> Mq {
        Mq {
            name: self.name.clone(),
            maxmsg: self.maxmsg,
            msgsize: self.msgsize,
            uid: self.uid,
            gid: self.gid,
            mode: self.mode,
            msgs: RefCell::new(self.msgs.borrow().clone()),
            next: Cell::new(self.next.get()),
            notify: Cell::new(self.notify.get()),
        }
    }
}

/// The sandbox's queues: by name, and every one alive (named or only open).
#[derive(Debug, Default)]
pub(crate) struct Queues {
    names: BTreeMap<Vec<u8>, Rc<Mq>>,
    all: Vec<Weak<Mq>>,
}

impl Queues {
    fn alive(&mut self) -> Vec<Rc<Mq>> {
        self.all.retain(|w| w.strong_count() > 0);
        self.all.iter().filter_map(Weak::upgrade).collect()
    }

    /// A copy for a snapshot: the queues the copied descriptors hold (`files`) and the
    /// named ones, each once.
    pub(crate) fn copy<'a>(
        &self,
        m: &mut crate::snap::Memo,
        files: impl Iterator<Item = &'a Rc<OpenFile>>,
    ) -> Result<Queues, crate::snap::SnapError> {
        let mut names = BTreeMap::new();
        for (n, q) in &self.names {
            names.insert(n.clone(), m.rc(q, |_, q| Ok(q.copy()))?);
        }
        let mut all: Vec<Weak<Mq>> = names.values().map(Rc::downgrade).collect();
        for f in files {
            if let FileKind::Mqueue(q) = &f.kind {
                all.push(Rc::downgrade(q));
            }
        }
        Ok(Queues { names, all })
    }

    /// True when no queue has a name (what a snapshot file could not hold).
    pub(crate) fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// A queue's name as `mq_open` and `mq_unlink` take it (glibc drops the leading
/// slash): one path component.
fn check_name(name: &[u8]) -> Result<(), SysErr> {
    if name.is_empty() {
        return Err(errno::ENOENT.into());
    }
    if name.contains(&b'/') || name == b"." || name == b".." {
        return Err(errno::EACCES.into());
    }
    if name.len() > 255 {
        return Err(errno::ENAMETOOLONG.into());
    }
    Ok(())
}

impl Kernel {
    /// `mode` (`MAY_READ` 4, `MAY_WRITE` 2) is granted on `q` (root has
    /// `CAP_DAC_OVERRIDE` in the sandbox's namespace).
    fn mq_permits(&self, q: &Mq, want: u32) -> bool {
        let (uid, gid) = self.user;
        if uid == 0 {
            return true;
        }
        let bits = if uid == q.uid {
            q.mode >> 6
        } else if gid == q.gid {
            q.mode >> 3
        } else {
            q.mode
        } & 7;
        want & !bits == 0
    }

    pub(crate) fn sys_mq_open(&mut self, name: u64, oflag: u64, mode: u64, attr: u64) -> SysResult {
        // Linux's order: the attributes copied, the name read and looked up, then
        // (do_mq_open's prepare_open) creation or the open's checks.
        let attr = if attr == 0 {
            None
        } else {
            Some(self.mm.read(UserPtr::<MqAttr>::new(attr))?)
        };
        let name = self.mm.read_cstr(name, 4095)?;
        check_name(&name)?;
        let oflag = oflag as i32;
        let q = match self.mqueue.names.get(&name) {
            Some(_) if oflag & libc::O_CREAT != 0 && oflag & libc::O_EXCL != 0 => {
                return Err(errno::EEXIST.into())
            }
            Some(q) => {
                let q = Rc::clone(q);
                let want = match oflag & libc::O_ACCMODE {
                    libc::O_RDONLY => 4,
                    libc::O_WRONLY => 2,
                    libc::O_RDWR => 6,
                    _ => return Err(errno::EINVAL.into()),
                };
                if !self.mq_permits(&q, want) {
                    return Err(errno::EACCES.into());
                }
                q
            }
            None if oflag & libc::O_CREAT == 0 => return Err(errno::ENOENT.into()),
            None => self.mq_create(&name, mode as u32, attr)?,
        };
        let flags = (oflag & libc::O_CLOEXEC) as u64;
        let access = (oflag & libc::O_ACCMODE) | (oflag & libc::O_NONBLOCK);
        self.add_anon(
            FileKind::Mqueue(q),
            access,
            flags | (oflag & libc::O_NONBLOCK) as u64,
        )
    }

    fn mq_create(
        &mut self,
        name: &[u8],
        mode: u32,
        attr: Option<MqAttr>,
    ) -> Result<Rc<Mq>, SysErr> {
        let (maxmsg, msgsize) = if let Some(a) = attr {
            if a.maxmsg <= 0 || a.msgsize <= 0 || a.maxmsg > MSG_MAX || a.msgsize > MSGSIZE_MAX {
                return Err(errno::EINVAL.into());
            }
            (a.maxmsg, a.msgsize)
        } else {
            (MSG_DEFAULT, MSGSIZE_DEFAULT)
        };
        let alive = self.mqueue.alive();
        if alive.len() >= QUEUES_MAX {
            return Err(errno::ENOSPC.into());
        }
        let (uid, gid) = self.user;
        let q = Rc::new(Mq {
            name: name.to_vec(),
            maxmsg,
            msgsize,
            uid,
            gid,
            mode: mode & 0o777 & !self.proc.umask,
            msgs: RefCell::new(BTreeMap::new()),
            next: Cell::new(0),
            notify: Cell::new(None),
        });
        let used: u64 = alive.iter().map(|q| q.cost()).sum();
        let limit = self
            .proc
            .rlimits
            .soft(libc::RLIMIT_MSGQUEUE)
            .unwrap_or(u64::MAX);
        if used.saturating_add(q.cost()) > limit {
            return Err(errno::EMFILE.into());
        }
        self.mqueue.all.push(Rc::downgrade(&q));
        self.mqueue.names.insert(name.to_vec(), Rc::clone(&q));
        Ok(q)
    }

    pub(crate) fn sys_mq_unlink(&mut self, name: u64) -> SysResult {
        let name = self.mm.read_cstr(name, 4095)?;
        check_name(&name)?;
        self.mqueue.names.remove(&name).ok_or(errno::ENOENT)?;
        Ok(0)
    }

    /// The queue `fd` is open on, and the descriptor.
    fn mq_of(&self, fd: u64) -> Result<(Rc<Mq>, Rc<OpenFile>), SysErr> {
        let f = self.proc.files.get(fd)?;
        match &f.kind {
            FileKind::Mqueue(q) => Ok((Rc::clone(q), Rc::clone(&f))),
            _ => Err(errno::EBADF.into()),
        }
    }

    /// The absolute `CLOCK_REALTIME` timeout at `ts` (read and checked before
    /// anything, as Linux's `prepare_timeout`), as a deadline.
    fn mq_deadline(&mut self, ts: u64) -> Result<Option<Instant>, SysErr> {
        if ts == 0 {
            return Ok(None);
        }
        let t = self.mm.read(UserPtr::<Timespec>::new(ts))?;
        let d = t.duration()?;
        Ok(Some(match self.retrying {
            Some(Some(dl)) => dl,
            _ => self.realtime_to_instant(d),
        }))
    }

    /// Waits for room or a message (`EAGAIN` without waiting, `ETIMEDOUT` past the
    /// deadline).
    fn mq_wait(&self, f: &OpenFile, deadline: Option<Instant>) -> SysErr {
        if f.flags.get() & libc::O_NONBLOCK != 0 {
            return errno::EAGAIN.into();
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return errno::ETIMEDOUT.into();
        }
        self.park(deadline)
    }

    pub(crate) fn sys_mq_timedsend(
        &mut self,
        fd: u64,
        msg: u64,
        len: u64,
        prio: u64,
        ts: u64,
    ) -> SysResult {
        let deadline = self.mq_deadline(ts)?;
        if u64::from(prio as u32) >= MQ_PRIO_MAX {
            return Err(errno::EINVAL.into());
        }
        let (q, f) = self.mq_of(fd)?;
        if !f.writable() {
            return Err(errno::EBADF.into());
        }
        if len > q.msgsize as u64 {
            return Err(errno::EMSGSIZE.into());
        }
        let data = if len == 0 {
            Vec::new()
        } else {
            self.mm.read_user_vec(msg, len as usize)?
        };
        if !q.writable() {
            return Err(self.mq_wait(&f, deadline));
        }
        let was_empty = q.len() == 0;
        let n = q.next.get();
        q.next.set(n + 1);
        q.msgs
            .borrow_mut()
            .insert((std::cmp::Reverse(prio as u32), n), data);
        self.stirred = true;
        // A message in an empty queue that no receiver waits for: its registered
        // process is told, once.
        if was_empty && !self.mq_receiver_waits(&q) {
            if let Some(n) = q.notify.take() {
                if let Some((sig, value)) = n.signal.filter(|(s, _)| *s != 0) {
                    let info = SigInfo {
                        signo: sig,
                        code: SI_MESGQ,
                        addr: u64::from(self.proc.pid) | (u64::from(self.user.0) << 32),
                        status: value,
                    };
                    if self.proc_ref(n.pid).is_some_and(|p| p.exit.is_none()) {
                        self.signal_process(n.pid, info);
                    }
                }
            }
        }
        Ok(0)
    }

    /// Whether a task waits in `mq_timedreceive` on `q`.
    fn mq_receiver_waits(&self, q: &Rc<Mq>) -> bool {
        self.tids().into_iter().any(|t| {
            let Some(task) = self.task_ref(t) else {
                return false;
            };
            let TaskState::Blocked(b) = &task.state else {
                return false;
            };
            b.nr == SYS_MQ_TIMEDRECEIVE
                && self
                    .proc_ref(task.pid)
                    .and_then(|p| p.files.get(b.args[0]).ok())
                    .is_some_and(|f| matches!(&f.kind, FileKind::Mqueue(o) if Rc::ptr_eq(o, q)))
        })
    }

    pub(crate) fn sys_mq_timedreceive(
        &mut self,
        fd: u64,
        msg: u64,
        len: u64,
        prio: UserPtr<u32>,
        ts: u64,
    ) -> SysResult {
        let deadline = self.mq_deadline(ts)?;
        let (q, f) = self.mq_of(fd)?;
        if !f.readable() {
            return Err(errno::EBADF.into());
        }
        if len < q.msgsize as u64 {
            return Err(errno::EMSGSIZE.into());
        }
        let first = q.msgs.borrow_mut().pop_first();
        let Some(((std::cmp::Reverse(p), _), data)) = first else {
            return Err(self.mq_wait(&f, deadline));
        };
        self.stirred = true;
        if !prio.is_null() {
            self.mm.write(prio, &p)?;
        }
        if !data.is_empty() {
            self.mm.write_user(msg, &data)?;
        }
        Ok(data.len() as u64)
    }

    pub(crate) fn sys_mq_notify(&mut self, fd: u64, sevp: UserPtr<Sigevent>) -> SysResult {
        let ev = if sevp.is_null() {
            None
        } else {
            let ev = self.mm.read(sevp)?;
            match ev.sigev_notify {
                SIGEV_NONE => {}
                // Signal 0 is accepted, and then nothing is sent (Linux's valid_signal).
                SIGEV_SIGNAL if (0..=64).contains(&ev.sigev_signo) => {}
                SIGEV_THREAD => {
                    return Err(self.unsupported("mq_notify(SIGEV_THREAD)", errno::EINVAL))
                }
                _ => return Err(errno::EINVAL.into()),
            }
            Some(ev)
        };
        let (q, _) = self.mq_of(fd)?;
        let pid = self.proc.pid;
        match ev {
            None => q.flush(pid),
            Some(_) if q.notify.get().is_some() => return Err(errno::EBUSY.into()),
            Some(ev) => q.notify.set(Some(Notify {
                pid,
                signal: (ev.sigev_notify == SIGEV_SIGNAL)
                    .then_some((ev.sigev_signo, ev.sigev_value)),
            })),
        }
        Ok(0)
    }

    pub(crate) fn sys_mq_getsetattr(
        &mut self,
        fd: u64,
        new: UserPtr<MqAttr>,
        old: UserPtr<MqAttr>,
    ) -> SysResult {
        let new = if new.is_null() {
            None
        } else {
            let a = self.mm.read(new)?;
            if a.flags & !(libc::O_NONBLOCK as i64) != 0 {
                return Err(errno::EINVAL.into());
            }
            Some(a)
        };
        let (q, f) = self.mq_of(fd)?;
        let was = MqAttr {
            flags: i64::from(f.flags.get() & libc::O_NONBLOCK),
            maxmsg: q.maxmsg,
            msgsize: q.msgsize,
            curmsgs: q.len(),
            reserved: [0; 4],
        };
        if let Some(a) = new {
            let fl = f.flags.get() & !libc::O_NONBLOCK;
            f.flags.set(fl | (a.flags as i32 & libc::O_NONBLOCK));
        }
        if !old.is_null() {
            self.mm.write(old, &was)?;
        }
        Ok(0)
    }

    /// `read` of a queue's descriptor: its status line, from the file position.
    pub(crate) fn read_mqueue(&self, q: &Mq, f: &OpenFile, buf: &mut [u8]) -> usize {
        let s = q.status();
        let at = (f.pos.get() as usize).min(s.len());
        let n = buf.len().min(s.len() - at);
        buf[..n].copy_from_slice(&s.as_bytes()[at..at + n]);
        f.pos.set((at + n) as u64);
        n
    }

    /// A process ended: its notifications go.
    pub(crate) fn mq_process_gone(&mut self, pid: Tid) {
        for q in self.mqueue.alive() {
            q.flush(pid);
        }
    }
}
