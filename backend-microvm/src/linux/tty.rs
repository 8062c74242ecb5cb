//! Terminals of the personality: a live sandbox's exec started with a tty gets one
//! (`/dev/pts/N`) as its descriptors 0, 1 and 2, and as the controlling terminal of
//! its session. The line discipline is `crate::tty` (plain data); here is what the
//! kernel adds: reads and writes (blocking, `VMIN`/`VTIME`), `poll` readiness, the
//! `ioctl`s (termios, window size, sessions and job control), the signals it sends
//! to the foreground process group, and the host end: the exec's stdin stream is
//! taken in by [`Kernel::tty_pump`] as the buffer has room, and everything shown goes
//! to the exec's stdout. No host terminal and no host syscall is involved.
//!
//! A controlling terminal belongs to a session (`TtyState::session`): a process's
//! controlling terminal is the one of its session, so `fork` inherits it and `setsid`
//! leaves it, as on Linux.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use sandbox_core::StreamKind;

use super::fd::{FileKind, OpenFile};
use super::signal::{bit, SigInfo, SIG_IGN};
use super::task::Tid;
use super::{Kernel, SysErr, SysResult};
use crate::abi::{Termios, Termios2, Winsize};
use crate::errno::{self, Errno};
use crate::mm::UserPtr;
use crate::stdio::Input;
use crate::tty::{Ldisc, TOSTOP, VMIN, VTIME};
use crate::vfs::Location;

const SIGHUP: i32 = 1;
const SIGCONT: i32 = 18;
const SIGTTIN: i32 = 21;
const SIGTTOU: i32 = 22;
const SIGWINCH: i32 = 28;
/// `si_code` of a signal the kernel sends.
const SI_KERNEL: i32 = 0x80;

// Requests (x86-64 numbers).
const TCGETS: u64 = 0x5401;
const TCSETS: u64 = 0x5402;
const TCSETSW: u64 = 0x5403;
const TCSETSF: u64 = 0x5404;
const TCGETA: u64 = 0x5405;
const TCSETA: u64 = 0x5406;
const TCSETAW: u64 = 0x5407;
const TCSETAF: u64 = 0x5408;
const TCSBRK: u64 = 0x5409;
const TCXONC: u64 = 0x540a;
const TCFLSH: u64 = 0x540b;
const TIOCEXCL: u64 = 0x540c;
const TIOCNXCL: u64 = 0x540d;
const TIOCSCTTY: u64 = 0x540e;
const TIOCGPGRP: u64 = 0x540f;
const TIOCSPGRP: u64 = 0x5410;
const TIOCOUTQ: u64 = 0x5411;
const TIOCSTI: u64 = 0x5412;
const TIOCGWINSZ: u64 = 0x5413;
const TIOCSWINSZ: u64 = 0x5414;
const FIONREAD: u64 = 0x541b;
const TIOCCONS: u64 = 0x541d;
const TIOCNOTTY: u64 = 0x5422;
const TIOCSETD: u64 = 0x5423;
const TIOCGETD: u64 = 0x5424;
const TCSBRKP: u64 = 0x5425;
const TIOCSBRK: u64 = 0x5427;
const TIOCCBRK: u64 = 0x5428;
const TIOCGSID: u64 = 0x5429;
const TCGETS2: u64 = 0x802c_542a;
const TCSETS2: u64 = 0x402c_542b;
const TCSETSW2: u64 = 0x402c_542c;
const TCSETSF2: u64 = 0x402c_542d;
const TIOCVHANGUP: u64 = 0x5437;
const TIOCGEXCL: u64 = 0x8004_5440;
const TIOCGLCKTRMIOS: u64 = 0x5456;
const TIOCSLCKTRMIOS: u64 = 0x5457;
/// `CBAUD`, `BOTHER`.
const CBAUD: u32 = 0o10017;
const BOTHER: u32 = 0o10000;

/// The old `struct termio` (`TCGETA`/`TCSETA*`): 16-bit flags, 8 control characters.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    zerocopy::FromBytes,
    zerocopy::IntoBytes,
    zerocopy::Immutable,
    zerocopy::KnownLayout,
)]
#[repr(C)]
struct Termio {
    c_iflag: u16,
    c_oflag: u16,
    c_cflag: u16,
    c_lflag: u16,
    c_line: u8,
    c_cc: [u8; 8],
    _pad: u8,
}
crate::abi::assert_size!(Termio, 18);

/// A terminal.
#[derive(Debug)]
pub(crate) struct Tty {
    /// `N` of `/dev/pts/N`.
    pub(crate) index: u32,
    /// The exec channel its host end is (stdin in, stdout out).
    pub(crate) chan: u32,
    /// Its state.
    pub(crate) st: RefCell<TtyState>,
}

/// What changes of a terminal.
#[derive(Debug)]
pub(crate) struct TtyState {
    /// Line discipline, settings, window size.
    pub(crate) ld: Ldisc,
    /// The session it controls.
    pub(crate) session: Option<Tid>,
    /// Its foreground process group.
    pub(crate) pgrp: Tid,
    /// Its host end is gone (the exec ended): reads find the end, writes `EIO`.
    pub(crate) hung_up: bool,
    /// `TIOCEXCL`.
    pub(crate) exclusive: bool,
}

impl Tty {
    /// A terminal of `size`, controlling the session `sid` (foreground group `sid`).
    pub(crate) fn new(index: u32, chan: u32, size: Winsize, sid: Tid) -> Rc<Tty> {
        Rc::new(Tty {
            index,
            chan,
            st: RefCell::new(TtyState {
                ld: Ldisc::new(size),
                session: Some(sid),
                pgrp: sid,
                hung_up: false,
                exclusive: false,
            }),
        })
    }
}

/// Baud rates of `CBAUD` values (`B0`..`B38400`, then `B57600`..`B4000000`).
fn baud(cflag: u32) -> Option<u32> {
    const LOW: [u32; 16] = [
        0, 50, 75, 110, 134, 150, 200, 300, 600, 1200, 1800, 2400, 4800, 9600, 19200, 38400,
    ];
    const HIGH: [u32; 15] = [
        57600, 115200, 230400, 460800, 500000, 576000, 921600, 1000000, 1152000, 1500000, 2000000,
        2500000, 3000000, 3500000, 4000000,
    ];
    let b = cflag & CBAUD;
    if b & BOTHER == 0 {
        return LOW.get(b as usize).copied();
    }
    let i = (b & 0o17) as usize;
    if i == 0 {
        return None; // BOTHER: the speed fields say
    }
    HIGH.get(i - 1).copied()
}

impl Kernel {
    /// The terminals whose host end is there.
    fn ttys(&self) -> Vec<Rc<Tty>> {
        self.ttys.clone()
    }

    /// What a terminal shows goes to its host end: the exec's stdout (a run's, for
    /// channel 0).
    fn tty_output(&mut self, chan: u32, data: &[u8]) -> Result<(), SysErr> {
        if chan == 0 {
            self.out.write(StreamKind::Stdout, data)?;
        } else {
            self.live_output(chan, StreamKind::Stdout, data);
        }
        Ok(())
    }

    /// The controlling terminal of session `sid`.
    pub(crate) fn ctty_of(&self, sid: Tid) -> Option<Rc<Tty>> {
        self.ttys()
            .into_iter()
            .find(|t| t.st.borrow().session == Some(sid))
    }

    /// The lowest `/dev/pts` number no terminal uses.
    pub(crate) fn free_pts(&self) -> u32 {
        let used: Vec<u32> = self.ttys().iter().map(|t| t.index).collect();
        (0..).find(|i| !used.contains(i)).unwrap_or(0)
    }

    /// Opens `/dev/tty` (`index` `None`: the caller's controlling terminal) or
    /// `/dev/pts/N`; without `O_NOCTTY`, a session leader with no controlling terminal
    /// gets this one, if it controls no session.
    pub(crate) fn open_tty(
        &mut self,
        index: Option<u32>,
        loc: Location,
        flags: i32,
    ) -> Result<Rc<OpenFile>, SysErr> {
        let tty = match index {
            None => self.ctty_of(self.proc.sid).ok_or(errno::ENXIO)?,
            Some(n) => self
                .ttys()
                .into_iter()
                .find(|t| t.index == n)
                .ok_or(errno::EIO)?,
        };
        {
            let mut st = tty.st.borrow_mut();
            if st.hung_up {
                return Err(errno::EIO.into());
            }
            if st.exclusive && index.is_some() {
                return Err(errno::EBUSY.into());
            }
            let leader = self.proc.pid == self.proc.sid;
            if flags & libc::O_NOCTTY == 0
                && leader
                && st.session.is_none()
                && self.ctty_of(self.proc.sid).is_none()
            {
                st.session = Some(self.proc.sid);
                st.pgrp = self.proc.pgid;
            }
        }
        let keep = libc::O_ACCMODE | libc::O_NONBLOCK | libc::O_APPEND;
        Ok(OpenFile::new(FileKind::Tty(tty), Some(loc), flags & keep))
    }

    /// Sends `sig` to every process of group `pgrp`.
    fn signal_group(&mut self, pgrp: Tid, sig: i32) {
        let members: Vec<Tid> = self
            .pids()
            .into_iter()
            .filter(|p| {
                self.proc_ref(*p)
                    .is_some_and(|x| x.pgid == pgrp && x.exit.is_none())
            })
            .collect();
        for p in members {
            self.signal_process(
                p,
                SigInfo {
                    signo: sig,
                    code: SI_KERNEL,
                    addr: 0,
                    status: 0,
                },
            );
        }
    }

    /// Takes what the host typed into `tty`, as its buffer has room: echo goes out,
    /// signal characters signal the foreground group, waiting readers are woken.
    pub(crate) fn tty_pump(&mut self, tty: &Rc<Tty>) -> Result<(), SysErr> {
        loop {
            let room = tty.st.borrow().ld.room();
            if room == 0 || tty.st.borrow().hung_up {
                return Ok(());
            }
            let data = match self.input_of(tty.chan) {
                Some(Input::Stream(q)) => match q.take(room) {
                    Some(d) if !d.is_empty() => d,
                    // Nothing yet, or the host's end of input: a terminal has no end
                    // of file of its own (^D is one), as a pty whose writer is idle.
                    _ => return Ok(()),
                },
                Some(Input::Bytes(d, pos)) if *pos < d.len() => {
                    let n = room.min(d.len() - *pos);
                    let v = d[*pos..*pos + n].to_vec();
                    *pos += n;
                    v
                }
                _ => return Ok(()),
            };
            let now = Instant::now();
            let mut signals = Vec::new();
            let (out, pgrp) = {
                let mut st = tty.st.borrow_mut();
                for c in data {
                    if let Some(sig) = st.ld.receive(c, now) {
                        signals.push(sig);
                    }
                }
                (st.ld.take_out(), st.pgrp)
            };
            if !out.is_empty() {
                self.tty_output(tty.chan, &out)?;
            }
            let controls = tty.st.borrow().session.is_some();
            for sig in signals {
                if controls {
                    self.signal_group(pgrp, sig);
                }
            }
            self.stirred = true;
        }
    }

    /// A new window size from the host: `SIGWINCH` to the foreground group when it
    /// changed.
    pub(crate) fn tty_resize(&mut self, tty: &Rc<Tty>, size: Winsize) {
        let changed = {
            let mut st = tty.st.borrow_mut();
            let changed = st.ld.winsize != size;
            st.ld.winsize = size;
            changed.then_some((st.pgrp, st.session.is_some()))
        };
        if let Some((pgrp, true)) = changed {
            self.signal_group(pgrp, SIGWINCH);
        }
    }

    /// The host end of `tty` is gone: readers find the end, writers `EIO`; its
    /// foreground group gets `SIGHUP` and `SIGCONT`, as when a terminal hangs up.
    pub(crate) fn tty_hangup(&mut self, tty: &Rc<Tty>) {
        let (pgrp, had) = {
            let mut st = tty.st.borrow_mut();
            st.hung_up = true;
            (st.pgrp, st.session.take().is_some())
        };
        self.ttys.retain(|t| !Rc::ptr_eq(t, tty));
        if had {
            self.signal_group(pgrp, SIGHUP);
            self.signal_group(pgrp, SIGCONT);
        }
        self.stirred = true;
    }

    /// A session leader ended: its session loses its controlling terminal, whose
    /// foreground group gets `SIGHUP` and `SIGCONT` (Linux's `disassociate_ctty`).
    pub(crate) fn tty_leader_exited(&mut self, pid: Tid) {
        if let Some(tty) = self.ctty_of(pid) {
            let pgrp = {
                let mut st = tty.st.borrow_mut();
                st.session = None;
                st.pgrp
            };
            self.signal_group(pgrp, SIGHUP);
            self.signal_group(pgrp, SIGCONT);
        }
    }

    /// Job control: a process of a background group of the terminal's session that
    /// reads (`SIGTTIN`), writes with `TOSTOP` or changes settings (`SIGTTOU`) gets
    /// the signal, its whole group, and waits; ignored or blocked, a read fails with
    /// `EIO` and the rest go on, as on Linux.
    fn tty_job_check(&mut self, tty: &Tty, sig: i32) -> Result<(), SysErr> {
        {
            let st = tty.st.borrow();
            if st.session != Some(self.proc.sid) || self.proc.pgid == st.pgrp {
                return Ok(());
            }
        }
        let refused =
            self.proc.act[(sig - 1) as usize].handler == SIG_IGN || self.task.mask & bit(sig) != 0;
        if refused {
            return if sig == SIGTTIN {
                Err(errno::EIO.into())
            } else {
                Ok(())
            };
        }
        let me = self.proc.pgid;
        self.signal_group(me, sig);
        Err(self.park(None))
    }

    /// A read of the terminal.
    pub(crate) fn tty_read(
        &mut self,
        file: &OpenFile,
        tty: &Rc<Tty>,
        buf: &mut [u8],
        partial: bool,
    ) -> Result<usize, SysErr> {
        self.tty_job_check(tty, SIGTTIN)?;
        if partial && tty.st.borrow().ld.canonical() {
            // A call that moved a line already (`sendfile`) stops there: one line a
            // read, and an end of file typed next is the next call's.
            return Err(errno::EAGAIN.into());
        }
        self.tty_pump(tty)?;
        let nonblock = file.flags.get() & libc::O_NONBLOCK != 0 || partial;
        let got = {
            let mut st = tty.st.borrow_mut();
            if st.ld.canonical() {
                match st.ld.read(buf) {
                    Some(n) => Got::Bytes(n),
                    None if st.hung_up => Got::Bytes(0),
                    None if nonblock => Got::Fail(errno::EAGAIN),
                    None => Got::Wait(None),
                }
            } else {
                let min = usize::from(st.ld.termios.c_cc[VMIN]);
                let time = Duration::from_millis(100 * u64::from(st.ld.termios.c_cc[VTIME]));
                let avail = st.ld.available();
                let now = Instant::now();
                let want = min.min(buf.len());
                let (done, deadline) = match (min, time.is_zero()) {
                    // MIN 0, TIME 0: what is there, at once.
                    (0, true) => (true, None),
                    // MIN bytes (or the count), however long it takes.
                    (_, true) => (avail >= want, None),
                    // A byte, or TIME from the call.
                    (0, false) => {
                        let dl = self.deadline_after(time);
                        (avail > 0 || dl.is_some_and(|d| now >= d), dl)
                    }
                    // MIN bytes, or TIME since the last one once one came.
                    (_, false) => {
                        let dl = st.ld.last_rx.filter(|_| avail > 0).map(|t| t + time);
                        (avail >= want || dl.is_some_and(|d| now >= d), dl)
                    }
                };
                if done || st.hung_up || (nonblock && avail > 0) {
                    Got::Bytes(st.ld.read(buf).unwrap_or(0))
                } else if nonblock {
                    Got::Fail(errno::EAGAIN)
                } else {
                    Got::Wait(deadline)
                }
            }
        };
        match got {
            Got::Bytes(n) => {
                self.tty_pump(tty)?; // room was made
                Ok(n)
            }
            Got::Fail(e) => Err(e.into()),
            Got::Wait(deadline) => Err(self.park(deadline)),
        }
    }

    /// A write to the terminal: through its output modes to the host end.
    pub(crate) fn tty_write(
        &mut self,
        file: &OpenFile,
        tty: &Rc<Tty>,
        data: &[u8],
    ) -> Result<usize, SysErr> {
        let (hung, tostop, stopped) = {
            let st = tty.st.borrow();
            (
                st.hung_up,
                st.ld.termios.c_lflag & TOSTOP != 0,
                st.ld.stopped,
            )
        };
        if hung {
            return Err(errno::EIO.into());
        }
        if tostop {
            self.tty_job_check(tty, SIGTTOU)?;
        }
        if stopped {
            if file.flags.get() & libc::O_NONBLOCK != 0 {
                return Err(errno::EAGAIN.into());
            }
            return Err(self.park(None));
        }
        let out = tty.st.borrow_mut().ld.write(data);
        self.tty_output(tty.chan, &out)?;
        Ok(data.len())
    }

    /// `poll` readiness of a terminal: (readable, writable, hung up).
    pub(crate) fn tty_ready(&self, tty: &Tty) -> (bool, bool, bool) {
        let st = tty.st.borrow();
        let readable = if st.ld.canonical() {
            st.ld.has_input()
        } else {
            let min = usize::from(st.ld.termios.c_cc[VMIN]).max(1);
            let time = st.ld.termios.c_cc[VTIME] != 0;
            st.ld.available() >= if time { 1 } else { min }
        };
        (
            readable || st.hung_up,
            !st.ld.stopped && !st.hung_up,
            st.hung_up,
        )
    }

    /// Whether `tty` is the caller's controlling terminal.
    fn is_ctty(&self, tty: &Tty) -> bool {
        tty.st.borrow().session == Some(self.proc.sid)
    }

    /// New settings, after job control; `TCSETSF` forms flush the input first.
    fn tty_set(
        &mut self,
        tty: &Rc<Tty>,
        t: Termios,
        speeds: Option<(u32, u32)>,
        flush: bool,
    ) -> SysResult {
        self.tty_job_check(tty, SIGTTOU)?;
        {
            let mut st = tty.st.borrow_mut();
            if flush {
                st.ld.flush_input();
            }
            let speeds = speeds.or_else(|| baud(t.c_cflag).map(|b| (b, b)));
            if let Some(s) = speeds {
                st.ld.speeds = s;
            }
            st.ld.set_termios(t);
        }
        self.tty_pump(tty)?;
        self.stirred = true;
        Ok(0)
    }

    /// The terminal `ioctl`s. Requests no terminal knows are `ENOTTY`, as Linux's.
    pub(crate) fn tty_ioctl(
        &mut self,
        tty: &Rc<Tty>,
        file: &OpenFile,
        req: u64,
        arg: u64,
    ) -> SysResult {
        let termios = || tty.st.borrow().ld.termios;
        match req {
            TCGETS => {
                self.mm.write(UserPtr::<Termios>::new(arg), &termios())?;
                Ok(0)
            }
            TCSETS | TCSETSW | TCSETSF => {
                let t = self.mm.read(UserPtr::<Termios>::new(arg))?;
                self.tty_set(tty, t, None, req == TCSETSF)
            }
            TCGETS2 => {
                let s = tty.st.borrow().ld.speeds;
                let v = Termios2 {
                    t: termios(),
                    c_ispeed: s.0,
                    c_ospeed: s.1,
                };
                self.mm.write(UserPtr::<Termios2>::new(arg), &v)?;
                Ok(0)
            }
            TCSETS2 | TCSETSW2 | TCSETSF2 => {
                let v = self.mm.read(UserPtr::<Termios2>::new(arg))?;
                let speeds = (v.t.c_cflag & CBAUD == BOTHER).then_some((v.c_ispeed, v.c_ospeed));
                self.tty_set(tty, v.t, speeds, req == TCSETSF2)
            }
            TCGETA => {
                let t = termios();
                let mut cc = [0u8; 8];
                cc.copy_from_slice(&t.c_cc[..8]);
                let v = Termio {
                    c_iflag: t.c_iflag as u16,
                    c_oflag: t.c_oflag as u16,
                    c_cflag: t.c_cflag as u16,
                    c_lflag: t.c_lflag as u16,
                    c_line: t.c_line,
                    c_cc: cc,
                    _pad: 0,
                };
                self.mm.write(UserPtr::<Termio>::new(arg), &v)?;
                Ok(0)
            }
            TCSETA | TCSETAW | TCSETAF => {
                let v = self.mm.read(UserPtr::<Termio>::new(arg))?;
                let mut t = termios();
                let low = |old: u32, new: u16| (old & 0xffff_0000) | u32::from(new);
                t.c_iflag = low(t.c_iflag, v.c_iflag);
                t.c_oflag = low(t.c_oflag, v.c_oflag);
                t.c_cflag = low(t.c_cflag, v.c_cflag);
                t.c_lflag = low(t.c_lflag, v.c_lflag);
                t.c_line = v.c_line;
                t.c_cc[..8].copy_from_slice(&v.c_cc);
                self.tty_set(tty, t, None, req == TCSETAF)
            }
            // Output is delivered as it is written: nothing to drain; a break is no
            // byte on a pty.
            TCSBRK | TCSBRKP | TIOCSBRK | TIOCCBRK => Ok(0),
            TCXONC => {
                self.tty_job_check(tty, SIGTTOU)?;
                match arg as i32 {
                    // TCOOFF, TCOON
                    0 => tty.st.borrow_mut().ld.stopped = true,
                    1 => tty.st.borrow_mut().ld.stopped = false,
                    // TCIOFF, TCION: a STOP or START character to the other end.
                    2 | 3 => {
                        let c = termios().c_cc[if arg == 2 { 9 } else { 8 }];
                        if c != 0 {
                            self.tty_output(tty.chan, &[c])?;
                        }
                    }
                    _ => return Err(errno::EINVAL.into()),
                }
                self.stirred = true;
                Ok(0)
            }
            TCFLSH => {
                self.tty_job_check(tty, SIGTTOU)?;
                match arg as i32 {
                    0 | 2 => tty.st.borrow_mut().ld.flush_input(),
                    1 => {}
                    _ => return Err(errno::EINVAL.into()),
                }
                self.tty_pump(tty)?;
                Ok(0)
            }
            TIOCEXCL | TIOCNXCL => {
                tty.st.borrow_mut().exclusive = req == TIOCEXCL;
                Ok(0)
            }
            TIOCGEXCL => {
                let v = i32::from(tty.st.borrow().exclusive);
                self.mm.write(UserPtr::<i32>::new(arg), &v)?;
                Ok(0)
            }
            TIOCSCTTY => self.tiocsctty(tty, file, arg),
            TIOCNOTTY => {
                if !self.is_ctty(tty) {
                    return Err(errno::ENOTTY.into());
                }
                if self.proc.pid == self.proc.sid {
                    self.tty_leader_exited(self.proc.pid);
                }
                // A member that is not the leader keeps the session's terminal here:
                // terminals belong to sessions, not to single processes.
                Ok(0)
            }
            TIOCGPGRP => {
                if !self.is_ctty(tty) {
                    return Err(errno::ENOTTY.into());
                }
                let v = tty.st.borrow().pgrp as i32;
                self.mm.write(UserPtr::<i32>::new(arg), &v)?;
                Ok(0)
            }
            TIOCSPGRP => {
                let pgrp = self.mm.read(UserPtr::<i32>::new(arg))?;
                if !self.is_ctty(tty) {
                    return Err(errno::ENOTTY.into());
                }
                self.tty_job_check(tty, SIGTTOU)?;
                if pgrp < 0 {
                    return Err(errno::EINVAL.into());
                }
                let sid = self.proc.sid;
                let mut exists = false;
                let mut in_session = false;
                for p in self.pids() {
                    if let Some(x) = self.proc_ref(p) {
                        if x.pgid == pgrp as Tid && x.exit.is_none() {
                            exists = true;
                            in_session |= x.sid == sid;
                        }
                    }
                }
                if !exists {
                    return Err(errno::ESRCH.into());
                }
                if !in_session {
                    return Err(errno::EPERM.into());
                }
                tty.st.borrow_mut().pgrp = pgrp as Tid;
                self.stirred = true;
                Ok(0)
            }
            TIOCGSID => {
                let sid = tty.st.borrow().session;
                match sid {
                    Some(s) if self.is_ctty(tty) => {
                        self.mm.write(UserPtr::<i32>::new(arg), &(s as i32))?;
                        Ok(0)
                    }
                    _ => Err(errno::ENOTTY.into()),
                }
            }
            TIOCOUTQ => {
                self.mm.write(UserPtr::<i32>::new(arg), &0)?;
                Ok(0)
            }
            FIONREAD => {
                let n = i32::try_from(tty.st.borrow().ld.available()).unwrap_or(i32::MAX);
                self.mm.write(UserPtr::<i32>::new(arg), &n)?;
                Ok(0)
            }
            TIOCGWINSZ => {
                let ws = tty.st.borrow().ld.winsize;
                self.mm.write(UserPtr::<Winsize>::new(arg), &ws)?;
                Ok(0)
            }
            TIOCSWINSZ => {
                let ws = self.mm.read(UserPtr::<Winsize>::new(arg))?;
                self.tty_resize(tty, ws);
                Ok(0)
            }
            TIOCGETD => {
                self.mm.write(UserPtr::<i32>::new(arg), &0)?;
                Ok(0)
            }
            // N_TTY is the only line discipline.
            TIOCSETD => match self.mm.read(UserPtr::<i32>::new(arg))? {
                0 => Ok(0),
                _ => Err(errno::EINVAL.into()),
            },
            TIOCGLCKTRMIOS => {
                self.mm
                    .write(UserPtr::<Termios>::new(arg), &Termios::default())?;
                Ok(0)
            }
            // Typing into a terminal (TIOCSTI) is refused as Linux does without
            // CAP_SYS_ADMIN when dev.tty.legacy_tiocsti is off; locking settings,
            // redirecting the console and hanging up need CAP_SYS_ADMIN.
            TIOCSTI => Err(errno::EIO.into()),
            TIOCSLCKTRMIOS | TIOCCONS | TIOCVHANGUP => Err(errno::EPERM.into()),
            _ => Err(errno::ENOTTY.into()),
        }
    }

    /// `TIOCSCTTY`: a session leader with no controlling terminal takes this one, if
    /// no session has it (taking it from another session needs `CAP_SYS_ADMIN`).
    fn tiocsctty(&mut self, tty: &Rc<Tty>, file: &OpenFile, _steal: u64) -> SysResult {
        let sid = self.proc.sid;
        if tty.st.borrow().session == Some(sid) {
            return Ok(0);
        }
        if self.proc.pid != sid || self.ctty_of(sid).is_some() {
            return Err(errno::EPERM.into());
        }
        if !file.readable() {
            return Err(errno::EPERM.into());
        }
        let mut st = tty.st.borrow_mut();
        if st.session.is_some() || st.hung_up {
            return Err(errno::EPERM.into());
        }
        st.session = Some(sid);
        st.pgrp = self.proc.pgid;
        Ok(0)
    }
}

/// What a read found.
enum Got {
    Bytes(usize),
    Fail(Errno),
    Wait(Option<Instant>),
}
