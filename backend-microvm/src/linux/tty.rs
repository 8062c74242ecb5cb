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

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
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

/// Most terminals a sandbox has at once (its execs' and the pseudo-terminals its
/// programs open), as the container's devpts instance.
const MAX_TTYS: usize = 64;
/// What a pseudo-terminal's slave showed, held for its master's reader (writers to
/// the slave wait past it).
const PAIR_MAX: usize = 64 * 1024;
/// `TIOCGPTN`, `TIOCSPTLCK`, `TIOCGPTLCK`, `TIOCGPTPEER`.
const TIOCGPTN: u64 = 0x8004_5430;
const TIOCSPTLCK: u64 = 0x4004_5431;
const TIOCGPTLCK: u64 = 0x8004_5439;
const TIOCGPTPEER: u64 = 0x5441;
/// The channel of a pseudo-terminal a program opened (its far end is its master).
const NO_CHAN: u32 = u32::MAX;

/// A terminal.
#[derive(Debug)]
pub(crate) struct Tty {
    /// `N` of `/dev/pts/N`.
    pub(crate) index: u32,
    /// The exec channel its host end is (stdin in, stdout out); [`NO_CHAN`] for a
    /// pseudo-terminal opened through `/dev/ptmx`.
    pub(crate) chan: u32,
    /// Its state.
    pub(crate) st: RefCell<TtyState>,
    /// A pseudo-terminal's master side, when it is one.
    pub(crate) pair: Option<Pair>,
}

/// The master side of a pseudo-terminal a program opened (`/dev/ptmx`).
#[derive(Debug, Default)]
pub(crate) struct Pair {
    /// What the slave showed, for the master's reader.
    out: RefCell<VecDeque<u8>>,
    /// `TIOCSPTLCK`: the slave cannot be opened yet.
    locked: Cell<bool>,
    /// The slave was opened once (the master reads `EIO` once no one has it open).
    slave_opened: Cell<bool>,
}

/// An open master of a pseudo-terminal: when it goes (its last descriptor closed),
/// the slave hangs up (reads find the end, writes `EIO`).
#[derive(Debug)]
pub(crate) struct Master(pub(crate) Rc<Tty>);

impl Drop for Master {
    fn drop(&mut self) {
        if let Ok(mut st) = self.0.st.try_borrow_mut() {
            st.hung_up = true;
            st.session = None;
        }
    }
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
    /// The end of the host's input was typed (^D).
    pub(crate) input_ended: bool,
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
                input_ended: false,
            }),
            pair: None,
        })
    }

    /// A pseudo-terminal's slave, its master a program's (`/dev/ptmx`): locked, of no
    /// session, 0x0 as Linux makes it.
    fn new_pair(index: u32) -> Rc<Tty> {
        let pair = Pair::default();
        pair.locked.set(true);
        Rc::new(Tty {
            index,
            chan: NO_CHAN,
            st: RefCell::new(TtyState {
                ld: Ldisc::new(Winsize::default()),
                session: None,
                pgrp: 0,
                hung_up: false,
                exclusive: false,
                input_ended: false,
            }),
            pair: Some(pair),
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

    /// What a terminal shows goes to its far end: the exec's stdout (a run's, for
    /// channel 0), or its master's reader.
    fn tty_output(&mut self, tty: &Tty, data: &[u8]) -> Result<(), SysErr> {
        if let Some(p) = &tty.pair {
            p.out.borrow_mut().extend(data);
            return Ok(());
        }
        let chan = tty.chan;
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
            if let Some(p) = &tty.pair {
                if p.locked.get() {
                    return Err(errno::EIO.into());
                }
                p.slave_opened.set(true);
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
        if tty.pair.is_some() {
            return Ok(()); // its master writes straight through the line discipline
        }
        loop {
            let room = tty.st.borrow().ld.room();
            if room == 0 || tty.st.borrow().hung_up {
                return Ok(());
            }
            let data = match self.input_of(tty.chan) {
                Some(Input::Stream(q)) => match q.take(room) {
                    Some(d) if !d.is_empty() => d,
                    Some(_) => return self.tty_input_ended(tty),
                    None => return Ok(()), // nothing yet
                },
                Some(Input::Bytes(d, pos)) if *pos < d.len() => {
                    let n = room.min(d.len() - *pos);
                    let v = d[*pos..*pos + n].to_vec();
                    *pos += n;
                    v
                }
                Some(Input::Bytes(..) | Input::Null) => return self.tty_input_ended(tty),
                None => return Ok(()),
            };
            self.tty_feed(tty, &data)?;
        }
    }

    /// The host's input ended (the bytes given, the stream closed, or no stdin): a
    /// terminal has no end of file of its own, so it is typed as a user would, ^D
    /// ([`crate::tty::Ldisc::end_of_input`]), once.
    fn tty_input_ended(&mut self, tty: &Rc<Tty>) -> Result<(), SysErr> {
        let eof = {
            let mut st = tty.st.borrow_mut();
            if st.input_ended {
                return Ok(());
            }
            st.input_ended = true;
            st.ld.end_of_input()
        };
        self.tty_feed(tty, &eof).map(|_| ())
    }

    /// Bytes typed at the terminal's far end (the host, or its master), through its
    /// line discipline as far as its buffer has room: echo goes out, signal
    /// characters signal the foreground group, waiting readers are woken. Answers how
    /// many were taken.
    fn tty_feed(&mut self, tty: &Rc<Tty>, data: &[u8]) -> Result<usize, SysErr> {
        let now = Instant::now();
        let mut signals = Vec::new();
        let (n, out, pgrp, controls) = {
            let mut st = tty.st.borrow_mut();
            let n = st.ld.room().min(data.len());
            for &c in &data[..n] {
                if let Some(sig) = st.ld.receive(c, now) {
                    signals.push(sig);
                }
            }
            (n, st.ld.take_out(), st.pgrp, st.session.is_some())
        };
        match &tty.pair {
            // Echo nobody reads is dropped past the master's buffer, as Linux drops it.
            Some(p) => {
                let mut o = p.out.borrow_mut();
                let room = PAIR_MAX.saturating_sub(o.len());
                o.extend(&out[..out.len().min(room)]);
            }
            None if !out.is_empty() => self.tty_output(tty, &out)?,
            None => {}
        }
        if controls {
            for sig in signals {
                self.signal_group(pgrp, sig);
            }
        }
        self.stirred = true;
        Ok(n)
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
        let full = tty
            .pair
            .as_ref()
            .is_some_and(|p| p.out.borrow().len() >= PAIR_MAX);
        if stopped || full {
            if file.flags.get() & libc::O_NONBLOCK != 0 {
                return Err(errno::EAGAIN.into());
            }
            return Err(self.park(None));
        }
        let out = tty.st.borrow_mut().ld.write(data);
        self.tty_output(tty, &out)?;
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
                            self.tty_output(tty, &[c])?;
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

impl Kernel {
    /// Opens `/dev/ptmx`: a new pseudo-terminal, its slave `/dev/pts/N` locked until
    /// `unlockpt`. At most [`MAX_TTYS`] terminals at once (`ENOSPC`, as a full devpts).
    pub(crate) fn open_ptmx(&mut self, loc: Location, flags: i32) -> Result<Rc<OpenFile>, SysErr> {
        // Terminals nothing refers to any more (their master and slaves closed) go.
        self.ttys.retain(|t| Rc::strong_count(t) > 1);
        if self.ttys.len() >= MAX_TTYS {
            return Err(errno::ENOSPC.into());
        }
        let index = self.free_pts();
        self.vfs.add_dev(
            &format!("/dev/pts/{index}"),
            crate::vfs::DevKind::Pts(index),
        );
        let tty = Tty::new_pair(index);
        self.ttys.push(Rc::clone(&tty));
        let keep = libc::O_ACCMODE | libc::O_NONBLOCK;
        Ok(OpenFile::new(
            FileKind::PtyMaster(Master(tty)),
            Some(loc),
            flags & keep,
        ))
    }

    /// Open descriptions of `tty`'s slave, in every process.
    fn slaves_open(&self, tty: &Rc<Tty>) -> bool {
        self.pids().into_iter().any(|p| {
            self.proc_ref(p).is_some_and(|x| {
                x.files
                    .iter()
                    .any(|(_, f)| matches!(&f.kind, FileKind::Tty(t) if Rc::ptr_eq(t, tty)))
            })
        })
    }

    /// The master's far end is gone: the slave was opened and no one has it now.
    fn master_hung(&self, tty: &Rc<Tty>) -> bool {
        tty.pair
            .as_ref()
            .is_some_and(|p| p.slave_opened.get() && !self.slaves_open(tty))
    }

    /// A read of a pseudo-terminal's master: what its slave showed; `EIO` once the
    /// slave was opened and closed everywhere, as Linux's.
    pub(crate) fn master_read(
        &mut self,
        file: &OpenFile,
        tty: &Rc<Tty>,
        buf: &mut [u8],
        partial: bool,
    ) -> Result<usize, SysErr> {
        let Some(p) = &tty.pair else {
            return Err(errno::EBADF.into());
        };
        {
            let mut o = p.out.borrow_mut();
            if !o.is_empty() {
                let n = buf.len().min(o.len());
                for (d, s) in buf.iter_mut().zip(o.drain(..n)) {
                    *d = s;
                }
                self.stirred = true; // a writer waiting for room goes on
                return Ok(n);
            }
        }
        if self.master_hung(tty) {
            return Err(errno::EIO.into());
        }
        if file.flags.get() & libc::O_NONBLOCK != 0 || partial {
            return Err(errno::EAGAIN.into());
        }
        Err(self.park(None))
    }

    /// A write to a pseudo-terminal's master: typed at its slave, as far as the line
    /// discipline has room (then the writer waits).
    pub(crate) fn master_write(
        &mut self,
        file: &OpenFile,
        tty: &Rc<Tty>,
        data: &[u8],
    ) -> Result<usize, SysErr> {
        if tty.st.borrow().hung_up {
            return Err(errno::EIO.into());
        }
        let n = self.tty_feed(tty, data)?;
        if n == 0 && !data.is_empty() {
            if file.flags.get() & libc::O_NONBLOCK != 0 {
                return Err(errno::EAGAIN.into());
            }
            return Err(self.park(None));
        }
        Ok(n)
    }

    /// `poll` readiness of a master: (readable, writable, hung up).
    pub(crate) fn master_ready(&self, tty: &Rc<Tty>) -> (bool, bool, bool) {
        let hung = self.master_hung(tty);
        let data = tty
            .pair
            .as_ref()
            .is_some_and(|p| !p.out.borrow().is_empty());
        let room = tty.st.borrow().ld.room() > 0;
        (data || hung, room, hung)
    }

    /// A master's `ioctl`s: its number, the slave's lock, the slave opened from it,
    /// and the settings and size of the pair (as the slave's).
    pub(crate) fn master_ioctl(
        &mut self,
        tty: &Rc<Tty>,
        file: &OpenFile,
        req: u64,
        arg: u64,
    ) -> SysResult {
        let Some(p) = &tty.pair else {
            return Err(errno::ENOTTY.into());
        };
        match req {
            TIOCGPTN => {
                self.mm.write(UserPtr::<u32>::new(arg), &tty.index)?;
                Ok(0)
            }
            TIOCSPTLCK => {
                let v = self.mm.read(UserPtr::<i32>::new(arg))?;
                p.locked.set(v != 0);
                Ok(0)
            }
            TIOCGPTLCK => {
                self.mm
                    .write(UserPtr::<i32>::new(arg), &i32::from(p.locked.get()))?;
                Ok(0)
            }
            TIOCGPTPEER => {
                let flags = arg as i32;
                let known = libc::O_ACCMODE | libc::O_NOCTTY | libc::O_NONBLOCK | libc::O_CLOEXEC;
                if flags & !known != 0 {
                    return Err(errno::EINVAL.into());
                }
                let path = format!("/dev/pts/{}", tty.index);
                let root = self.vfs.root();
                let loc = self.vfs.resolve(&root, path.as_bytes(), true)?;
                let slave = self.open_tty(Some(tty.index), loc, flags)?;
                let fd = self
                    .proc
                    .files
                    .add(slave, flags & libc::O_CLOEXEC != 0, 0)?;
                Ok(fd)
            }
            FIONREAD => {
                let n = i32::try_from(p.out.borrow().len()).unwrap_or(i32::MAX);
                self.mm.write(UserPtr::<i32>::new(arg), &n)?;
                Ok(0)
            }
            TCGETS | TCSETS | TCSETSW | TCSETSF | TCGETS2 | TCSETS2 | TCSETSW2 | TCSETSF2
            | TCGETA | TCSETA | TCSETAW | TCSETAF | TIOCGWINSZ | TIOCSWINSZ | TCFLSH | TCSBRK
            | TCSBRKP | TIOCOUTQ | TIOCGETD => self.tty_ioctl(tty, file, req, arg),
            _ => Err(errno::ENOTTY.into()),
        }
    }
}

/// What a read found.
enum Got {
    Bytes(usize),
    Fail(Errno),
    Wait(Option<Instant>),
}
