//! `poll`, `ppoll`, `select`, `pselect6`: readiness of the workload's descriptors
//! (stdin, pipes, sockets, eventfds and epoll instances can be not ready; files always
//! are). A wait ends when something is ready, at the timeout, or with a signal.

use std::time::{Duration, Instant};

use super::fd::{FileKind, OpenFile};
use super::{too_many, Kernel, SysErr, SysResult};
use crate::abi::{PollFd, Timespec, Timeval};
use crate::errno;
use crate::mm::UserPtr;
use crate::pipe::PipeEnd;
use crate::stdio::Input;

/// The most words of an `fd_set` read: a table of `NR_OPEN` descriptors.
const MAX_FD_WORDS: usize = (1 << 20) / 64;
const POLLIN: i16 = 0x1;
const POLLPRI: i16 = 0x2;
const POLLOUT: i16 = 0x4;
const POLLERR: i16 = 0x8;
const POLLHUP: i16 = 0x10;
const POLLNVAL: i16 = 0x20;
const POLLRDNORM: i16 = 0x40;
const POLLWRNORM: i16 = 0x100;
const POLLRDHUP: i16 = 0x2000;

impl Kernel {
    /// The events of `fd` that are ready, among `want` (`POLLNVAL` for a bad fd).
    fn ready(&self, fd: i32, want: i16) -> i16 {
        let Ok(f) = self.proc.files.get(fd as u64) else {
            return POLLNVAL;
        };
        self.ready_file(&f, want)
    }

    /// The events of the open file `f` that are ready, among `want` (`POLLERR` and
    /// `POLLHUP` always count).
    pub(crate) fn ready_file(&self, f: &OpenFile, want: i16) -> i16 {
        let pipe_in = |end: Option<&PipeEnd>| match end {
            Some(e) => {
                let p = e.pipe.borrow();
                (e.readable(&p), e.at_end(&p))
            }
            None => (true, true),
        };
        let pipe_out = |end: Option<&PipeEnd>| match end {
            Some(e) => {
                let p = e.pipe.borrow();
                (p.readers > 0 && p.writable(), p.readers == 0)
            }
            None => (false, true),
        };
        let (r, w, extra) = match &f.kind {
            FileKind::Stdin(chan) => match self.input_ref(*chan) {
                Some(Input::Stream(q)) => (q.ready(), false, 0),
                _ => (true, false, 0),
            },
            FileKind::Output(..) => (false, true, 0),
            // As Linux's pipe_poll: a write end is writable while a slot is free
            // (readers or not) and in error without readers; a read end hangs up
            // once every writer has gone (a FIFO opened `O_RDWR` is both ends).
            FileKind::Pipe(end) => {
                let p = end.pipe.borrow();
                let w = end.writes();
                let err = w && p.readers == 0;
                let hup = end.reads() && p.writers == 0 && !p.no_writer_yet;
                (
                    end.reads() && !p.is_empty(),
                    w && p.writable(),
                    if err { POLLERR } else { 0 } | if hup { POLLHUP } else { 0 },
                )
            }
            FileKind::Socket(s) if s.inet.is_some() => super::inet::poll(s),
            FileKind::Socket(s) if super::unix::poll_state(s).is_some() => {
                let (r, w, hup) = super::unix::poll_state(s).unwrap_or_default();
                (r, w, if hup { POLLHUP } else { 0 })
            }
            FileKind::Socket(s) => {
                let (r, eof) = pipe_in(s.rx.borrow().as_ref());
                // As unix_poll: writable while its own send buffer has room, whatever
                // the peer did (a write then fails at once instead of waiting).
                let (w, broken) = pipe_out(s.tx.borrow().as_ref());
                let w = w || broken;
                let hup = if eof && broken { POLLHUP } else { 0 };
                let rdhup = if eof { POLLRDHUP } else { 0 };
                (r, w, hup | (rdhup & want))
            }
            FileKind::EventFd(e) => (e.count.get() > 0, e.count.get() < u64::MAX - 1, 0),
            FileKind::TimerFd(t) => (t.readable(), false, 0),
            FileKind::SignalFd(m) => (self.signalfd_ready(m.get()), false, 0),
            FileKind::Mqueue(q) => (q.readable(), q.writable(), 0),
            FileKind::PidFd(p) => {
                let (exited, reaped) = self.pidfd_state(*p);
                (exited, false, if reaped { POLLHUP } else { 0 })
            }
            FileKind::Inotify(i) => (i.readable(), false, 0),
            FileKind::Tty(t) => {
                let (r, w, hup) = self.tty_ready(t);
                (r, w, if hup { POLLHUP } else { 0 })
            }
            FileKind::PtyMaster(m) => {
                let (r, w, hup) = self.master_ready(&m.0);
                (r, w, if hup { POLLHUP } else { 0 })
            }
            FileKind::Epoll(..) => (self.epoll_any_ready(f), false, 0),
            FileKind::Path => return POLLNVAL,
            // Files, directories and devices have no poll method: Linux answers its
            // DEFAULT_POLLMASK (readable and writable) whatever the access mode.
            _ => (true, true, 0),
        };
        let mut ev = extra;
        if r {
            ev |= want & (POLLIN | POLLRDNORM);
        }
        if w {
            ev |= want & (POLLOUT | POLLWRNORM);
        }
        ev & (want | POLLERR | POLLHUP)
    }

    fn poll_loop(&mut self, fds: UserPtr<PollFd>, nfds: u64, until: Option<Instant>) -> SysResult {
        // At most RLIMIT_NOFILE entries (EINVAL), as Linux.
        let limit = self.proc.files.limit;
        let mut v = self
            .mm
            .read_array(fds, nfds, limit)
            .map_err(too_many(errno::EINVAL))?;
        loop {
            let mut n = 0;
            for p in v.iter_mut() {
                p.revents = if p.fd < 0 {
                    0
                } else {
                    self.ready(p.fd, p.events & !POLLPRI)
                };
                if p.revents != 0 {
                    n += 1;
                }
            }
            if n > 0 || until.is_some_and(|u| Instant::now() >= u) {
                self.mm.write_array(fds, &v)?;
                return Ok(n);
            }
            self.block_until(until)?;
        }
    }

    pub(crate) fn sys_poll(
        &mut self,
        fds: UserPtr<PollFd>,
        nfds: u64,
        timeout_ms: i64,
    ) -> SysResult {
        let until = if timeout_ms >= 0 {
            self.deadline_after(Duration::from_millis(timeout_ms as u64))
        } else {
            None
        };
        self.poll_loop(fds, nfds, until)
    }

    pub(crate) fn sys_ppoll(
        &mut self,
        fds: UserPtr<PollFd>,
        nfds: u64,
        tsp: UserPtr<Timespec>,
    ) -> SysResult {
        let until = if tsp.is_null() {
            None
        } else {
            let d = self.timespec(tsp)?;
            self.deadline_after(d)
        };
        self.poll_loop(fds, nfds, until)
    }

    /// `pselect6`: `select` with a `timespec` and, through a `{ sigset_t *, size_t }`
    /// pair at the last argument, a signal mask for the wait.
    pub(crate) fn sys_pselect6(&mut self, a: [u64; 6]) -> SysResult {
        let [nfds, r, w, e, tp, sig] = a;
        let (set, size) = if sig == 0 {
            (0, 0)
        } else {
            let [set, size] = self.mm.read(UserPtr::<[u64; 2]>::new(sig))?;
            (set, size)
        };
        self.with_sigmask(UserPtr::new(set), size, |k| {
            k.sys_select(nfds, r, w, e, tp, true)
        })
    }

    /// `select` (timeout a `timeval`) and `pselect6` (a `timespec`).
    pub(crate) fn sys_select(
        &mut self,
        nfds: u64,
        rset: u64,
        wset: u64,
        eset: u64,
        tp: u64,
        pselect: bool,
    ) -> SysResult {
        // An int; descriptors past the table's size are not looked at (Linux caps
        // `nfds` at its fdtable's `max_fds`).
        let nfds = nfds as i32;
        if nfds < 0 {
            return Err(errno::EINVAL.into());
        }
        let nfds = (nfds as u64).min(self.proc.files.max_fds() as u64);
        let until = if tp == 0 {
            None
        } else if pselect {
            let d = self.timespec(UserPtr::new(tp))?;
            self.deadline_after(d)
        } else {
            // select folds whole seconds out of the microseconds, as Linux does.
            let tv = self.mm.read(UserPtr::<Timeval>::new(tp))?;
            let ts = Timespec {
                tv_sec: tv
                    .tv_sec
                    .checked_add(tv.tv_usec / 1_000_000)
                    .ok_or(errno::EINVAL)?,
                tv_nsec: (tv.tv_usec % 1_000_000) * 1000,
            };
            self.deadline_after(ts.duration()?)
        };
        // An `fd_set` is an array of `unsigned long`, one bit per descriptor.
        let words = nfds.div_ceil(64);
        let read_set = |k: &mut Kernel, p: u64| -> Result<Vec<u64>, SysErr> {
            if p == 0 {
                Ok(vec![0; words as usize])
            } else {
                k.mm.read_array(UserPtr::<u64>::new(p), words, MAX_FD_WORDS)
                    .map_err(too_many(errno::EINVAL))
            }
        };
        let (r, w) = (read_set(self, rset)?, read_set(self, wset)?);
        loop {
            let mut out_r = vec![0u64; words as usize];
            let mut out_w = vec![0u64; words as usize];
            let mut n = 0;
            for fd in 0..nfds as usize {
                let (word, b) = (fd / 64, 1u64 << (fd % 64));
                let want_r = r[word] & b != 0;
                let want_w = w[word] & b != 0;
                if !want_r && !want_w {
                    continue;
                }
                let ev = self.ready(fd as i32, POLLIN | POLLOUT);
                if ev & POLLNVAL != 0 {
                    return Err(errno::EBADF.into());
                }
                if want_r && ev & (POLLIN | POLLHUP | POLLERR) != 0 {
                    out_r[word] |= b;
                    n += 1;
                }
                if want_w && ev & (POLLOUT | POLLERR) != 0 {
                    out_w[word] |= b;
                    n += 1;
                }
            }
            if n > 0 || until.is_some_and(|u| Instant::now() >= u) {
                if rset != 0 {
                    self.mm.write_array(UserPtr::new(rset), &out_r)?;
                }
                if wset != 0 {
                    self.mm.write_array(UserPtr::new(wset), &out_w)?;
                }
                if eset != 0 {
                    self.mm
                        .write_array(UserPtr::new(eset), &vec![0u64; words as usize])?;
                }
                return Ok(n);
            }
            self.block_until(until)?;
        }
    }
}
