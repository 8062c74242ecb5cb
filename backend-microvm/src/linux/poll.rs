//! `poll`, `ppoll`, `select`, `pselect6`: readiness of the workload's descriptors
//! (stdin, pipes, sockets, eventfds and epoll instances can be not ready; files always
//! are). A wait ends when something is ready, at the timeout, or with a signal.

use std::time::{Duration, Instant};

use super::fd::{FileKind, OpenFile};
use super::{Kernel, SysErr, SysResult};
use crate::errno;
use crate::pipe::{PipeEnd, PIPE_CAPACITY};
use crate::stdio::Input;

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
                (!p.buf.is_empty() || p.writers == 0, p.writers == 0)
            }
            None => (true, true),
        };
        let pipe_out = |end: Option<&PipeEnd>| match end {
            Some(e) => {
                let p = e.pipe.borrow();
                (p.readers > 0 && p.buf.len() < PIPE_CAPACITY, p.readers == 0)
            }
            None => (false, true),
        };
        let (r, w, extra) = match &f.kind {
            FileKind::Stdin => match &self.input {
                Input::Stream(q) => (q.ready(), false, 0),
                _ => (true, false, 0),
            },
            FileKind::Output(_) => (false, true, 0),
            FileKind::Pipe(end) if end.write => {
                let (w, broken) = pipe_out(Some(end));
                (false, w, if broken { POLLERR } else { 0 })
            }
            FileKind::Pipe(end) => {
                let p = end.pipe.borrow();
                (
                    !p.buf.is_empty(),
                    false,
                    if p.writers == 0 { POLLHUP } else { 0 },
                )
            }
            FileKind::Socket(s) => {
                let (r, eof) = pipe_in(s.rx.borrow().as_ref());
                let (w, broken) = pipe_out(s.tx.borrow().as_ref());
                let hup = if eof && broken { POLLHUP } else { 0 };
                let rdhup = if eof { POLLRDHUP } else { 0 };
                (r, w, hup | (rdhup & want))
            }
            FileKind::EventFd(e) => (e.count.get() > 0, e.count.get() < u64::MAX - 1, 0),
            FileKind::Epoll(_) => (self.epoll_any_ready(f), false, 0),
            FileKind::Path => (false, false, 0),
            _ => (f.readable(), f.writable(), 0),
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

    fn poll_loop(&mut self, fds: u64, nfds: u64, until: Option<Instant>) -> SysResult {
        if nfds > self.proc.files.limit as u64 {
            return Err(errno::EINVAL.into());
        }
        let mut raw = self.mm.read_user_vec(fds, nfds as usize * 8)?;
        loop {
            let mut n = 0;
            for c in raw.chunks_exact_mut(8) {
                let fd = i32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                let want = i16::from_le_bytes([c[4], c[5]]);
                let rev = if fd < 0 {
                    0
                } else {
                    self.ready(fd, want & !POLLPRI)
                };
                c[6..8].copy_from_slice(&rev.to_le_bytes());
                if rev != 0 {
                    n += 1;
                }
            }
            if n > 0 || until.is_some_and(|u| Instant::now() >= u) {
                self.mm.write_user(fds, &raw)?;
                return Ok(n);
            }
            self.block_until(until)?;
        }
    }

    pub(crate) fn sys_poll(&mut self, fds: u64, nfds: u64, timeout_ms: i64) -> SysResult {
        let until = if timeout_ms >= 0 {
            self.deadline_after(Duration::from_millis(timeout_ms as u64))
        } else {
            None
        };
        self.poll_loop(fds, nfds, until)
    }

    pub(crate) fn sys_ppoll(&mut self, fds: u64, nfds: u64, tsp: u64) -> SysResult {
        let until = if tsp == 0 {
            None
        } else {
            let d = self.timespec(tsp)?;
            self.deadline_after(d)
        };
        self.poll_loop(fds, nfds, until)
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
        if nfds > 1024 {
            return Err(errno::EINVAL.into());
        }
        let until = if tp == 0 {
            None
        } else if pselect {
            let d = self.timespec(tp)?;
            self.deadline_after(d)
        } else {
            let raw = self.mm.read_user_vec(tp, 16)?;
            let s = i64::from_le_bytes(raw[..8].try_into().unwrap_or_default());
            let us = i64::from_le_bytes(raw[8..].try_into().unwrap_or_default());
            if s < 0 || !(0..1_000_000).contains(&us) {
                return Err(errno::EINVAL.into());
            }
            self.deadline_after(Duration::new(s as u64, us as u32 * 1000))
        };
        let bytes = nfds.div_ceil(64) as usize * 8;
        let read_set = |k: &mut Kernel, p: u64| -> Result<Vec<u8>, SysErr> {
            if p == 0 {
                Ok(vec![0; bytes])
            } else {
                Ok(k.mm.read_user_vec(p, bytes)?)
            }
        };
        let (r, w) = (read_set(self, rset)?, read_set(self, wset)?);
        loop {
            let mut out_r = vec![0u8; bytes];
            let mut out_w = vec![0u8; bytes];
            let mut n = 0;
            for fd in 0..nfds as usize {
                let (byte, b) = (fd / 8, 1u8 << (fd % 8));
                let want_r = r[byte] & b != 0;
                let want_w = w[byte] & b != 0;
                if !want_r && !want_w {
                    continue;
                }
                let ev = self.ready(fd as i32, POLLIN | POLLOUT);
                if ev & POLLNVAL != 0 {
                    return Err(errno::EBADF.into());
                }
                if want_r && ev & (POLLIN | POLLHUP | POLLERR) != 0 {
                    out_r[byte] |= b;
                    n += 1;
                }
                if want_w && ev & (POLLOUT | POLLERR) != 0 {
                    out_w[byte] |= b;
                    n += 1;
                }
            }
            if n > 0 || until.is_some_and(|u| Instant::now() >= u) {
                if rset != 0 {
                    self.mm.write_user(rset, &out_r)?;
                }
                if wset != 0 {
                    self.mm.write_user(wset, &out_w)?;
                }
                if eset != 0 {
                    self.mm.write_user(eset, &vec![0u8; bytes])?;
                }
                return Ok(n);
            }
            self.block_until(until)?;
        }
    }
}
