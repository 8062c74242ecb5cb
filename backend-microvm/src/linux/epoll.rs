//! `epoll` (level-triggered; `EPOLLONESHOT` honoured; `EPOLLET` reports a file again
//! only after something happened to it: its ready events changed, or bytes came in or
//! went out of its buffers, as Linux's wake-ups) and `eventfd`.

use std::cell::RefCell;
use std::rc::Rc;

use super::fd::{EventFd, FileKind, Interest, OpenFile};
use zerocopy::{FromBytes, IntoBytes};

use super::{Kernel, SysErr, SysResult};
use crate::abi::{EpollEvent, Timespec};
use crate::errno;
use crate::memory::HeapCharge;
use crate::mm::UserPtr;

const EPOLL_CTL_ADD: u64 = 1;
const EPOLL_CTL_DEL: u64 = 2;
const EPOLL_CTL_MOD: u64 = 3;
const EPOLLONESHOT: u32 = 1 << 30;
const EPOLLET: u32 = 1 << 31;
/// Events `epoll_wait` can report (the poll bits).
const EPOLL_EVENTS: u32 = 0x3fff;
const EFD_SEMAPHORE: u64 = 1;
const EFD_NONBLOCK: u64 = 0x800;
const EFD_CLOEXEC: u64 = 0x8_0000;
/// Most events one `epoll_wait` returns.
const MAX_EVENTS: u64 = 1 << 16;

impl Kernel {
    pub(crate) fn sys_epoll_create1(&mut self, flags: u64) -> SysResult {
        if flags & !EFD_CLOEXEC != 0 {
            return Err(errno::EINVAL.into());
        }
        let charge = RefCell::new(HeapCharge::new(&self.mm.mem.budget()));
        let f = OpenFile::new(
            FileKind::Epoll(Default::default(), charge),
            None,
            libc::O_RDWR,
        );
        Ok(self.proc.files.add(f, flags != 0, 0)?)
    }

    /// `epoll_create(size)`: a size above zero, otherwise unused.
    pub(crate) fn sys_epoll_create(&mut self, size: u64) -> SysResult {
        if size as i32 <= 0 {
            return Err(errno::EINVAL.into());
        }
        self.sys_epoll_create1(0)
    }

    /// `epoll_wait`/`epoll_pwait` with a timeout in milliseconds (negative: none).
    pub(crate) fn sys_epoll_wait_ms(
        &mut self,
        epfd: u64,
        events: UserPtr<EpollEvent>,
        max: u64,
        timeout_ms: u64,
    ) -> SysResult {
        let ms = timeout_ms as i32;
        let t = (ms >= 0).then(|| std::time::Duration::from_millis(ms as u64));
        self.sys_epoll_wait(epfd, events, max, t)
    }

    /// `epoll_pwait2` with a `struct timespec` timeout (NULL: none).
    pub(crate) fn sys_epoll_pwait2(
        &mut self,
        epfd: u64,
        events: UserPtr<EpollEvent>,
        max: u64,
        timeout: UserPtr<Timespec>,
    ) -> SysResult {
        let t = if timeout.is_null() {
            None
        } else {
            Some(self.timespec(timeout)?)
        };
        self.sys_epoll_wait(epfd, events, max, t)
    }

    fn epoll(&self, epfd: u64) -> Result<Rc<OpenFile>, SysErr> {
        let f = self.proc.files.get(epfd)?;
        match f.kind {
            FileKind::Epoll(..) => Ok(f),
            _ => Err(errno::EINVAL.into()),
        }
    }

    pub(crate) fn sys_epoll_ctl(
        &mut self,
        epfd: u64,
        op: u64,
        fd: u64,
        event: UserPtr<EpollEvent>,
    ) -> SysResult {
        let ep = self.epoll(epfd)?;
        let target = self.proc.files.get(fd)?;
        if epfd == fd || Rc::ptr_eq(&ep, &target) {
            return Err(errno::EINVAL.into());
        }
        if matches!(
            target.kind,
            FileKind::Host(_) | FileKind::Tmp(_) | FileKind::Dir | FileKind::Gen(_)
        ) {
            return Err(errno::EPERM.into()); // regular files are always ready
        }
        let (events, data) = if op == EPOLL_CTL_DEL {
            (0, 0)
        } else {
            let e = self.mm.read(event)?;
            (e.events, e.data)
        };
        let FileKind::Epoll(set, charge) = &ep.kind else {
            return Err(errno::EINVAL.into());
        };
        let mut set = set.borrow_mut();
        set.retain(|i| i.file.strong_count() > 0);
        let at = set.iter().position(|i| {
            i.fd == fd as u32 && i.file.upgrade().is_some_and(|f| Rc::ptr_eq(&f, &target))
        });
        match (op, at) {
            (EPOLL_CTL_ADD, Some(_)) => return Err(errno::EEXIST.into()),
            (EPOLL_CTL_ADD, None) => set.push(Interest {
                fd: fd as u32,
                file: Rc::downgrade(&target),
                events,
                data,
                seen: None,
            }),
            (EPOLL_CTL_MOD, Some(i)) => {
                set[i].events = events;
                set[i].data = data;
                set[i].seen = None;
            }
            (EPOLL_CTL_DEL, Some(i)) => {
                set.remove(i);
            }
            (EPOLL_CTL_MOD | EPOLL_CTL_DEL, None) => return Err(errno::ENOENT.into()),
            _ => return Err(errno::EINVAL.into()),
        }
        // What the interest list costs the VMM is the sandbox's memory (ENOMEM, as
        // Linux answers when it cannot allocate an epitem).
        let bytes = (set.capacity() * std::mem::size_of::<Interest>()) as u64;
        if charge.borrow_mut().set(bytes).is_err() {
            if op == EPOLL_CTL_ADD {
                set.pop();
            }
            return Err(errno::ENOMEM.into());
        }
        self.stirred = true;
        Ok(0)
    }

    /// What happened to `f` so far that matters to `events`, as a count that changes
    /// whenever Linux would wake such a waiter: bytes coming in, or an end closing, for
    /// `EPOLLIN`; bytes going out of what it writes into (room made), or a reader
    /// leaving, for `EPOLLOUT`; an eventfd's count. `None` for files whose wake-ups are
    /// not counted (terminals, listening sockets...): they are reported while ready, as
    /// level-triggered, which a correct edge-triggered program tolerates.
    fn activity(f: &OpenFile, events: u32) -> Option<u64> {
        let (want_in, want_out) = (events & 0x1 != 0, events & 0x4 != 0);
        let incoming = |e: &crate::pipe::PipeEnd| {
            let p = e.pipe.borrow();
            p.total_in.wrapping_add(p.writers as u64)
        };
        let outgoing = |e: &crate::pipe::PipeEnd| {
            let p = e.pipe.borrow();
            p.total_out.wrapping_add(p.readers as u64)
        };
        let (i, o) = match &f.kind {
            FileKind::Pipe(e) => (
                if e.reads() { incoming(e) } else { 0 },
                if e.writes() { outgoing(e) } else { 0 },
            ),
            FileKind::Socket(s) if s.unix.borrow().listen.is_none() => {
                let i = s.rx.borrow().as_ref().map_or(0, incoming);
                let o = s.tx.borrow().as_ref().map_or(0, outgoing);
                (i, o)
            }
            FileKind::EventFd(ev) => (ev.count.get(), ev.count.get()),
            FileKind::TimerFd(t) => (t.activity(), 0),
            FileKind::Inotify(i) => (i.activity(), 0),
            _ => return None,
        };
        Some((if want_in { i } else { 0 }).wrapping_add(if want_out {
            o.rotate_left(32)
        } else {
            0
        }))
    }

    /// The ready events of an epoll instance: (events, data, interest's index, the
    /// file's activity), at most `max`; an edge-triggered interest only when something
    /// happened since it was last reported.
    fn epoll_ready(&self, ep: &OpenFile, max: usize) -> Vec<(u32, u64, usize, Option<u64>)> {
        let FileKind::Epoll(set, _) = &ep.kind else {
            return Vec::new();
        };
        let set = set.borrow();
        let mut out = Vec::new();
        for (k, i) in set.iter().enumerate() {
            if out.len() >= max {
                break;
            }
            let Some(f) = i.file.upgrade() else {
                continue;
            };
            let want = (i.events & EPOLL_EVENTS) as u16 as i16;
            let ev = self.ready_file(&f, want) as u16 as u32;
            if ev == 0 || i.events & EPOLL_EVENTS == 0 {
                continue;
            }
            let act = if i.events & EPOLLET != 0 {
                Self::activity(&f, i.events)
            } else {
                None
            };
            if act.is_some_and(|a| i.seen == Some((ev, a))) {
                continue;
            }
            out.push((ev, i.data, k, act));
        }
        out
    }

    /// True when something an epoll instance watches is ready (the instance itself is
    /// then readable).
    pub(crate) fn epoll_any_ready(&self, ep: &OpenFile) -> bool {
        !self.epoll_ready(ep, 1).is_empty()
    }

    pub(crate) fn sys_epoll_wait(
        &mut self,
        epfd: u64,
        events: UserPtr<EpollEvent>,
        max: u64,
        timeout: Option<std::time::Duration>,
    ) -> SysResult {
        let max = max as i32;
        if max <= 0 || max as u64 > MAX_EVENTS {
            return Err(errno::EINVAL.into());
        }
        let ep = self.epoll(epfd)?;
        let until = match timeout {
            Some(d) => self.deadline_after(d),
            None => None,
        };
        let size = std::mem::size_of::<EpollEvent>() as u64;
        self.mm
            .user_chunks(events.addr(), max as u64 * size, true)?;
        let ready = self.epoll_ready(&ep, max as usize);
        if ready.is_empty() {
            if until.is_some_and(|u| std::time::Instant::now() >= u) {
                return Ok(0);
            }
            return Err(self.park(until));
        }
        let out: Vec<EpollEvent> = ready
            .iter()
            .map(|&(events, data, ..)| EpollEvent { events, data })
            .collect();
        self.mm.write_array(events, &out)?;
        // One-shot interests are disabled once reported; edge-triggered ones remember
        // what they reported.
        if let FileKind::Epoll(set, _) = &ep.kind {
            let mut set = set.borrow_mut();
            for &(ev, _, k, act) in &ready {
                let Some(i) = set.get_mut(k) else {
                    continue;
                };
                if i.events & EPOLLONESHOT != 0 {
                    i.events &= !EPOLL_EVENTS;
                }
                if let Some(a) = act {
                    i.seen = Some((ev, a));
                }
            }
        }
        Ok(ready.len() as u64)
    }

    pub(crate) fn sys_eventfd2(&mut self, initval: u64, flags: u64) -> SysResult {
        if flags & !(EFD_SEMAPHORE | EFD_NONBLOCK | EFD_CLOEXEC) != 0 {
            return Err(errno::EINVAL.into());
        }
        let ev = EventFd {
            count: std::cell::Cell::new(initval & 0xffff_ffff),
            semaphore: flags & EFD_SEMAPHORE != 0,
        };
        self.add_anon(FileKind::EventFd(ev), libc::O_RDWR, flags)
    }

    /// `read` of an eventfd: the count (or 1, as a semaphore), waiting while it is 0.
    pub(crate) fn read_eventfd(
        &mut self,
        ev: &EventFd,
        buf: &mut [u8],
        nonblock: bool,
    ) -> Result<usize, SysErr> {
        if buf.len() < 8 {
            return Err(errno::EINVAL.into());
        }
        let c = ev.count.get();
        if c == 0 {
            return Err(if nonblock {
                errno::EAGAIN.into()
            } else {
                self.park(None)
            });
        }
        let v = if ev.semaphore { 1 } else { c };
        ev.count.set(c - v);
        buf[..8].copy_from_slice(v.as_bytes());
        Ok(8)
    }

    /// `write` of an eventfd: adds to the count, waiting while it would overflow.
    pub(crate) fn write_eventfd(
        &mut self,
        ev: &EventFd,
        data: &[u8],
        nonblock: bool,
    ) -> Result<usize, SysErr> {
        let Ok((v, _)) = u64::read_from_prefix(data) else {
            return Err(errno::EINVAL.into());
        };
        if v == u64::MAX {
            return Err(errno::EINVAL.into());
        }
        let c = ev.count.get();
        if c.checked_add(v).is_none_or(|s| s == u64::MAX) {
            return Err(if nonblock {
                errno::EAGAIN.into()
            } else {
                self.park(None)
            });
        }
        ev.count.set(c + v);
        Ok(8)
    }
}
