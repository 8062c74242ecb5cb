//! A terminal's line discipline (Linux's `n_tty`), in Rust, as plain data: the bytes
//! the host types go in through [`Ldisc::receive`] (input modes, signals characters,
//! canonical line editing with its echo), the workload's writes come out through
//! [`Ldisc::write`] (output processing). Nothing here touches a host terminal: the
//! host end of a sandbox's terminal is a byte stream, and every terminal rule is
//! applied here. Which process gets a signal, who may read, and blocking are the
//! personality's (`linux/tty.rs`).

use std::collections::VecDeque;
use std::time::Instant;

use crate::abi::{Termios, Winsize, NCCS};

/// Bytes a terminal holds for its reader (Linux's `N_TTY_BUF_SIZE`).
pub(crate) const BUF_SIZE: usize = 4096;

// Indexes of `c_cc`.
const VINTR: usize = 0;
const VQUIT: usize = 1;
const VERASE: usize = 2;
const VKILL: usize = 3;
const VEOF: usize = 4;
pub(crate) const VTIME: usize = 5;
pub(crate) const VMIN: usize = 6;
const VSTART: usize = 8;
const VSTOP: usize = 9;
const VSUSP: usize = 10;
const VEOL: usize = 11;
const VREPRINT: usize = 12;
const VWERASE: usize = 14;
const VLNEXT: usize = 15;
const VEOL2: usize = 16;

// Input modes.
const ISTRIP: u32 = 0o40;
const INLCR: u32 = 0o100;
const IGNCR: u32 = 0o200;
const ICRNL: u32 = 0o400;
const IUCLC: u32 = 0o1000;
const IXON: u32 = 0o2000;
const IXANY: u32 = 0o4000;
const IMAXBEL: u32 = 0o20000;
const IUTF8: u32 = 0o40000;
// Output modes.
const OPOST: u32 = 0o1;
const OLCUC: u32 = 0o2;
const ONLCR: u32 = 0o4;
const OCRNL: u32 = 0o10;
const ONOCR: u32 = 0o20;
const ONLRET: u32 = 0o40;
const TABDLY: u32 = 0o14000;
const XTABS: u32 = 0o14000;
// Control modes.
const B38400: u32 = 0o17;
const CS8: u32 = 0o60;
const CREAD: u32 = 0o200;
const HUPCL: u32 = 0o2000;
// Local modes.
const ISIG: u32 = 0o1;
pub(crate) const ICANON: u32 = 0o2;
const ECHO: u32 = 0o10;
const ECHOE: u32 = 0o20;
const ECHOK: u32 = 0o40;
const ECHONL: u32 = 0o100;
const NOFLSH: u32 = 0o200;
pub(crate) const TOSTOP: u32 = 0o400;
const ECHOCTL: u32 = 0o1000;
const ECHOKE: u32 = 0o4000;
const IEXTEN: u32 = 0o100000;

/// `SIGINT`, `SIGQUIT`, `SIGTSTP`.
const SIGINT: i32 = 2;
const SIGQUIT: i32 = 3;
const SIGTSTP: i32 = 20;

/// The settings of a new terminal, as Linux's `tty_std_termios` for a pty: canonical
/// input with echo and signals, `ICRNL`, `IXON`, `OPOST | ONLCR`, 38400 baud, 8 bits.
pub(crate) fn std_termios() -> Termios {
    let mut cc = [0u8; NCCS];
    // INIT_C_CC: ^C ^\ DEL ^U ^D, TIME 0, MIN 1, ^Q ^S ^Z, ^R ^O ^W ^V.
    let init: [(usize, u8); 14] = [
        (VINTR, 0x03),
        (VQUIT, 0x1c),
        (VERASE, 0x7f),
        (VKILL, 0x15),
        (VEOF, 0x04),
        (VTIME, 0),
        (VMIN, 1),
        (VSTART, 0x11),
        (VSTOP, 0x13),
        (VSUSP, 0x1a),
        (VREPRINT, 0x12),
        (13, 0x0f),
        (VWERASE, 0x17),
        (VLNEXT, 0x16),
    ];
    for (i, v) in init {
        cc[i] = v;
    }
    Termios {
        c_iflag: ICRNL | IXON,
        c_oflag: OPOST | ONLCR,
        c_cflag: B38400 | CS8 | CREAD | HUPCL,
        c_lflag: ISIG | ICANON | ECHO | ECHOE | ECHOK | ECHOCTL | ECHOKE | IEXTEN,
        c_line: 0,
        c_cc: cc,
    }
}

/// A control character as `ECHOCTL` shows it (`^C`).
fn is_ctrl(c: u8) -> bool {
    c < 0x20 || c == 0x7f
}

/// A terminal's line discipline and settings.
#[derive(Debug, Clone)]
pub(crate) struct Ldisc {
    /// `c_*flag` and `c_cc`.
    pub(crate) termios: Termios,
    /// Input and output speeds (`termios2`).
    pub(crate) speeds: (u32, u32),
    /// The window size.
    pub(crate) winsize: Winsize,
    /// Canonical mode: complete lines (a line ended by `EOF` holds no terminator; an
    /// empty one is an end of file for one read).
    lines: VecDeque<Vec<u8>>,
    /// Canonical mode: the line being edited.
    line: Vec<u8>,
    /// Non-canonical mode: the bytes to read.
    raw: VecDeque<u8>,
    /// The next byte is taken literally (`VLNEXT`).
    lnext: bool,
    /// Bytes for the host end (echo and processed output), taken by [`Ldisc::take_out`].
    out: Vec<u8>,
    /// The output column (for tabs and erasing).
    column: usize,
    /// The column where the line being edited started.
    line_column: usize,
    /// Output stopped (`IXON`, `VSTOP`, `TCOOFF`).
    pub(crate) stopped: bool,
    /// When the last byte came (`VTIME` between bytes).
    pub(crate) last_rx: Option<Instant>,
}

impl Ldisc {
    /// A new terminal of `size`.
    pub(crate) fn new(winsize: Winsize) -> Ldisc {
        Ldisc {
            termios: std_termios(),
            speeds: (38400, 38400),
            winsize,
            lines: VecDeque::new(),
            line: Vec::new(),
            raw: VecDeque::new(),
            lnext: false,
            out: Vec::new(),
            column: 0,
            line_column: 0,
            stopped: false,
            last_rx: None,
        }
    }

    fn l(&self, f: u32) -> bool {
        self.termios.c_lflag & f != 0
    }

    fn i(&self, f: u32) -> bool {
        self.termios.c_iflag & f != 0
    }

    fn o(&self, f: u32) -> bool {
        self.termios.c_oflag & f != 0
    }

    /// `c_cc[i]` when enabled (0 is `_POSIX_VDISABLE`).
    fn cc_is(&self, i: usize, c: u8) -> bool {
        let v = self.termios.c_cc[i];
        v != 0 && v == c
    }

    /// Canonical mode.
    pub(crate) fn canonical(&self) -> bool {
        self.l(ICANON)
    }

    /// The bytes a read may take now (canonical: complete lines only).
    pub(crate) fn available(&self) -> usize {
        if self.canonical() {
            self.lines.iter().map(Vec::len).sum()
        } else {
            self.raw.len()
        }
    }

    /// Whether a read would find something (a line, an end of file, or bytes).
    pub(crate) fn has_input(&self) -> bool {
        if self.canonical() {
            !self.lines.is_empty()
        } else {
            !self.raw.is_empty()
        }
    }

    fn held(&self) -> usize {
        self.lines.iter().map(Vec::len).sum::<usize>() + self.line.len() + self.raw.len()
    }

    /// How many host bytes may be taken now: the buffer's free room; in canonical
    /// mode with no complete line, any number (characters past a full line are
    /// dropped, as Linux does, but a line end still gets in: the reader is never
    /// starved by a line too long).
    pub(crate) fn room(&self) -> usize {
        if self.canonical() && self.lines.is_empty() {
            return BUF_SIZE;
        }
        BUF_SIZE.saturating_sub(self.held())
    }

    /// What the end of the host's input types: the end-of-file character (^D), twice
    /// in canonical mode when a line is being edited (the first hands the line over,
    /// the second reads as end of file); in raw mode one ^D byte.
    pub(crate) fn end_of_input(&self) -> Vec<u8> {
        let eof = self.termios.c_cc[VEOF];
        if self.canonical() && !self.line.is_empty() {
            vec![eof, eof]
        } else {
            vec![eof]
        }
    }

    /// Empties the input (`TCIFLUSH`, a signal character without `NOFLSH`).
    pub(crate) fn flush_input(&mut self) {
        self.lines.clear();
        self.line.clear();
        self.raw.clear();
        self.lnext = false;
    }

    /// New settings: switching canonical mode moves what is buffered, as Linux does
    /// (to non-canonical: every byte becomes readable; to canonical: the bytes become
    /// the line being edited).
    pub(crate) fn set_termios(&mut self, t: Termios) {
        let was = self.canonical();
        self.termios = t;
        let now = self.canonical();
        if was && !now {
            for l in self.lines.drain(..) {
                self.raw.extend(l);
            }
            self.raw.extend(self.line.drain(..));
        } else if !was && now {
            self.line.extend(self.raw.drain(..));
            self.line_column = self.column;
        }
        if !self.i(IXON) {
            self.stopped = false;
        }
    }

    /// Takes the bytes for the host end.
    pub(crate) fn take_out(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    /// One output byte through the output modes (`OPOST`).
    fn put(&mut self, c: u8) {
        if !self.o(OPOST) {
            self.out.push(c);
            return;
        }
        match c {
            b'\n' => {
                if self.o(ONLRET) {
                    self.column = 0;
                }
                if self.o(ONLCR) {
                    self.column = 0;
                    self.out.extend_from_slice(b"\r\n");
                    return;
                }
                self.out.push(c);
            }
            b'\r' => {
                if self.o(ONOCR) && self.column == 0 {
                    return;
                }
                if self.o(OCRNL) {
                    if self.o(ONLRET) {
                        self.column = 0;
                    }
                    self.out.push(b'\n');
                    return;
                }
                self.column = 0;
                self.out.push(c);
            }
            b'\t' => {
                let spaces = 8 - (self.column & 7);
                if self.termios.c_oflag & TABDLY == XTABS {
                    self.column += spaces;
                    self.out.extend(std::iter::repeat_n(b' ', spaces));
                    return;
                }
                self.column += spaces;
                self.out.push(c);
            }
            8 => {
                self.column = self.column.saturating_sub(1);
                self.out.push(c);
            }
            _ => {
                let c = if self.o(OLCUC) {
                    c.to_ascii_uppercase()
                } else {
                    c
                };
                if !(is_ctrl(c) || (self.i(IUTF8) && c & 0xc0 == 0x80)) {
                    self.column += 1;
                }
                self.out.push(c);
            }
        }
    }

    /// The workload's write: what goes to the host end.
    pub(crate) fn write(&mut self, data: &[u8]) -> Vec<u8> {
        for &c in data {
            self.put(c);
        }
        self.take_out()
    }

    /// Echoes an input byte (`ECHOCTL` shows control characters as `^X`).
    fn echo(&mut self, c: u8) {
        if !self.l(ECHO) {
            return;
        }
        if self.l(ECHOCTL) && is_ctrl(c) && c != b'\t' && c != b'\n' {
            self.out.push(b'^');
            self.out.push(c ^ 0o100);
            self.column += 2;
        } else {
            self.put(c);
        }
    }

    /// Columns `self.line` takes on screen, from where it started.
    fn line_width(&self) -> usize {
        let mut col = self.line_column;
        for &c in &self.line {
            if c == b'\t' {
                col = (col | 7) + 1;
            } else if is_ctrl(c) && self.l(ECHOCTL) {
                col += 2;
            } else if !(self.i(IUTF8) && c & 0xc0 == 0x80) {
                col += 1;
            }
        }
        col
    }

    /// The length of the line being edited without its last character (a whole
    /// UTF-8 sequence with `IUTF8`).
    fn char_start(&self) -> usize {
        let mut n = self.line.len().saturating_sub(1);
        if self.i(IUTF8) {
            while n > 0 && self.line[n] & 0xc0 == 0x80 {
                n -= 1;
            }
        }
        n
    }

    /// The length of the line being edited without its last word (and the blanks
    /// after it).
    fn word_start(&self) -> usize {
        let mut n = self.line.len();
        while n > 0 && self.line[n - 1].is_ascii_whitespace() {
            n -= 1;
        }
        while n > 0 && {
            let b = self.line[n - 1];
            b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
        } {
            n -= 1;
        }
        n
    }

    /// Cuts the line being edited to `len` bytes and rubs the rest out on screen
    /// (one pass over the line, whatever is cut).
    fn rub_to(&mut self, len: usize) {
        if len >= self.line.len() {
            return;
        }
        self.line.truncate(len);
        if !self.l(ECHO) {
            return;
        }
        let before = self.column;
        let after = self.line_width();
        for _ in 0..before.saturating_sub(after).clamp(1, 2 * BUF_SIZE) {
            self.out.extend_from_slice(b"\x08 \x08");
        }
        self.column = after;
    }

    /// `VERASE`, `VWERASE`, `VKILL` in canonical mode.
    fn erase(&mut self, which: usize, c: u8) {
        if self.line.is_empty() {
            return;
        }
        let visual = self.l(ECHO) && self.l(ECHOE);
        if which == VKILL && !(visual && self.l(ECHOKE)) {
            self.line.clear();
            self.echo(c);
            if self.l(ECHOK) && self.l(ECHO) {
                self.put(b'\n');
            }
            self.line_column = self.column;
            return;
        }
        let keep = match which {
            VERASE => self.char_start(),
            VWERASE => self.word_start(),
            _ => 0,
        };
        if visual {
            self.rub_to(keep);
        } else {
            // Without ECHOE the erase character itself is echoed.
            self.line.truncate(keep);
            self.echo(c);
        }
    }

    /// Ends the line being edited (with its terminator, if any).
    fn commit(&mut self) {
        let l = std::mem::take(&mut self.line);
        self.lines.push_back(l);
        self.line_column = self.column;
    }

    /// One byte from the host end. Answers the signal it raises for the terminal's
    /// foreground group (`ISIG`: `VINTR`, `VQUIT`, `VSUSP`), if any. The caller took
    /// no more than [`Ldisc::room`].
    pub(crate) fn receive(&mut self, c: u8, now: Instant) -> Option<i32> {
        let mut c = c;
        if self.i(ISTRIP) {
            c &= 0x7f;
        }
        if self.i(IUCLC) && self.l(IEXTEN) {
            c = c.to_ascii_lowercase();
        }
        if self.lnext {
            self.lnext = false;
            return self.ordinary(c, now);
        }
        if self.i(IXON) {
            if self.cc_is(VSTOP, c) {
                self.stopped = true;
                return None;
            }
            if self.cc_is(VSTART, c) {
                self.stopped = false;
                return None;
            }
            if self.i(IXANY) {
                self.stopped = false;
            }
        }
        if self.l(ISIG) {
            let sig = if self.cc_is(VINTR, c) {
                Some(SIGINT)
            } else if self.cc_is(VQUIT, c) {
                Some(SIGQUIT)
            } else if self.cc_is(VSUSP, c) {
                Some(SIGTSTP)
            } else {
                None
            };
            if let Some(sig) = sig {
                if !self.l(NOFLSH) {
                    self.flush_input();
                }
                self.stopped = false;
                self.echo(c);
                self.line_column = self.column;
                return Some(sig);
            }
        }
        if c == b'\r' {
            if self.i(IGNCR) {
                return None;
            }
            if self.i(ICRNL) {
                c = b'\n';
            }
        } else if c == b'\n' && self.i(INLCR) {
            c = b'\r';
        }
        if self.canonical() {
            if self.cc_is(VERASE, c) {
                self.erase(VERASE, c);
                return None;
            }
            if self.cc_is(VKILL, c) {
                self.erase(VKILL, c);
                return None;
            }
            if self.l(IEXTEN) {
                if self.cc_is(VWERASE, c) {
                    self.erase(VWERASE, c);
                    return None;
                }
                if self.cc_is(VLNEXT, c) {
                    self.lnext = true;
                    if self.l(ECHO) && self.l(ECHOCTL) {
                        self.out.extend_from_slice(b"^\x08");
                    }
                    return None;
                }
                if self.cc_is(VREPRINT, c) {
                    if self.l(ECHO) {
                        self.echo(c);
                        self.put(b'\n');
                        self.line_column = self.column;
                        let line = self.line.clone();
                        for b in line {
                            self.echo(b);
                        }
                    }
                    return None;
                }
            }
            if self.cc_is(VEOF, c) {
                self.commit();
                return None;
            }
            if c == b'\n' || self.cc_is(VEOL, c) || self.cc_is(VEOL2, c) {
                self.line.push(c);
                if self.l(ECHO) || (c == b'\n' && self.l(ECHONL)) {
                    if c == b'\n' {
                        self.put(b'\n');
                    } else {
                        self.echo(c);
                    }
                }
                self.commit();
                return None;
            }
        }
        self.ordinary(c, now)
    }

    /// A byte that is data.
    fn ordinary(&mut self, c: u8, now: Instant) -> Option<i32> {
        if self.canonical() {
            if self.line.len() >= BUF_SIZE - 1 || self.held() >= BUF_SIZE {
                if self.i(IMAXBEL) && self.l(ECHO) {
                    self.out.push(7);
                }
                return None; // dropped, as Linux drops past a full line
            }
            self.line.push(c);
        } else {
            self.raw.push_back(c);
            self.last_rx = Some(now);
        }
        self.echo(c);
        None
    }

    /// A read of at most `buf.len()` bytes: canonical mode gives at most one line
    /// (`Some(0)`: an end of file typed at the start of a line); `None` when nothing
    /// is there.
    pub(crate) fn read(&mut self, buf: &mut [u8]) -> Option<usize> {
        if self.canonical() {
            let first = self.lines.front_mut()?;
            let n = buf.len().min(first.len());
            buf[..n].copy_from_slice(&first[..n]);
            if n == first.len() {
                self.lines.pop_front();
            } else {
                first.drain(..n);
            }
            Some(n)
        } else {
            if self.raw.is_empty() {
                return None;
            }
            let n = buf.len().min(self.raw.len());
            for (d, s) in buf.iter_mut().zip(self.raw.drain(..n)) {
                *d = s;
            }
            Some(n)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ld() -> Ldisc {
        Ldisc::new(Winsize {
            ws_row: 24,
            ws_col: 80,
            ..Winsize::default()
        })
    }

    fn feed(l: &mut Ldisc, s: &[u8]) -> Vec<i32> {
        let now = Instant::now();
        s.iter().filter_map(|&c| l.receive(c, now)).collect()
    }

    fn read_all(l: &mut Ldisc) -> Vec<u8> {
        let mut buf = [0u8; 8192];
        let n = l.read(&mut buf).unwrap_or(0);
        buf[..n].to_vec()
    }

    #[test]
    fn canonical_lines_echo_with_crlf_and_edit() {
        let mut l = ld();
        feed(&mut l, b"ecxo\x7f\x7fho hi\r");
        assert_eq!(read_all(&mut l), b"echo hi\n");
        let out = l.take_out();
        assert!(out.starts_with(b"ecxo\x08 \x08\x08 \x08ho hi"), "{out:?}");
        assert!(out.ends_with(b"\r\n"));
        // Nothing is readable before the line ends.
        feed(&mut l, b"abc");
        assert!(!l.has_input());
        // Kill erases the line; word erase a word.
        feed(&mut l, b"\x15one two\x17three\n");
        assert_eq!(read_all(&mut l), b"one three\n");
    }

    #[test]
    fn eof_at_line_start_reads_zero_and_ends_a_line_otherwise() {
        let mut l = ld();
        feed(&mut l, b"ab\x04\x04");
        assert_eq!(read_all(&mut l), b"ab");
        let mut buf = [0u8; 4];
        assert_eq!(l.read(&mut buf), Some(0));
        assert_eq!(l.read(&mut buf), None);
    }

    #[test]
    fn the_end_of_input_ends_an_unfinished_line_first() {
        let mut l = ld();
        assert_eq!(l.end_of_input(), b"\x04");
        feed(&mut l, b"ab");
        let eof = l.end_of_input();
        assert_eq!(eof, b"\x04\x04");
        feed(&mut l, &eof);
        assert_eq!(read_all(&mut l), b"ab");
        let mut buf = [0u8; 4];
        assert_eq!(l.read(&mut buf), Some(0));
        // Raw mode: one ^D, a byte like any other.
        let mut t = l.termios;
        t.c_lflag &= !ICANON;
        l.set_termios(t);
        assert_eq!(l.end_of_input(), b"\x04");
    }

    #[test]
    fn a_read_takes_one_line_at_most_and_can_take_it_in_pieces() {
        let mut l = ld();
        feed(&mut l, b"first\nsecond\n");
        let mut b3 = [0u8; 3];
        assert_eq!(l.read(&mut b3), Some(3));
        assert_eq!(&b3, b"fir");
        assert_eq!(read_all(&mut l), b"st\n");
        assert_eq!(read_all(&mut l), b"second\n");
    }

    #[test]
    fn signal_characters_flush_and_echo() {
        let mut l = ld();
        assert_eq!(feed(&mut l, b"partial\x03"), vec![SIGINT]);
        assert!(!l.has_input());
        assert!(l.take_out().ends_with(b"^C"));
        assert_eq!(feed(&mut l, b"\x1c\x1a"), vec![SIGQUIT, SIGTSTP]);
        // Without ISIG they are data.
        let mut t = l.termios;
        t.c_lflag &= !ISIG;
        l.set_termios(t);
        assert!(feed(&mut l, b"\x03\n").is_empty());
        assert_eq!(read_all(&mut l), b"\x03\n");
    }

    #[test]
    fn raw_mode_passes_bytes_unchanged_without_echo() {
        let mut l = ld();
        let mut t = l.termios;
        // cfmakeraw
        t.c_iflag &= !(0o1 | 0o2 | 0o10 | ISTRIP | INLCR | IGNCR | ICRNL | IXON);
        t.c_oflag &= !OPOST;
        t.c_lflag &= !(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
        l.set_termios(t);
        let bytes: Vec<u8> = (0u8..=255).collect();
        assert!(feed(&mut l, &bytes).is_empty());
        assert!(l.take_out().is_empty());
        assert_eq!(read_all(&mut l), bytes);
        assert_eq!(l.write(b"a\nb"), b"a\nb");
    }

    #[test]
    fn output_processing() {
        let mut l = ld();
        assert_eq!(l.write(b"a\nb\n"), b"a\r\nb\r\n");
        let mut t = l.termios;
        t.c_oflag |= XTABS;
        l.set_termios(t);
        assert_eq!(l.write(b"ab\tc"), b"ab      c");
    }

    #[test]
    fn switching_modes_keeps_typed_bytes() {
        let mut l = ld();
        feed(&mut l, b"line\npart");
        let mut t = l.termios;
        t.c_lflag &= !ICANON;
        l.set_termios(t);
        assert_eq!(read_all(&mut l), b"line\npart");
        feed(&mut l, b"xy");
        t.c_lflag |= ICANON;
        l.set_termios(t);
        feed(&mut l, b"z\n");
        assert_eq!(read_all(&mut l), b"xyz\n");
    }

    #[test]
    fn a_full_line_drops_characters_but_not_its_end() {
        let mut l = ld();
        let long = vec![b'x'; BUF_SIZE * 2];
        feed(&mut l, &long);
        assert!(l.room() > 0);
        feed(&mut l, b"\n");
        let got = read_all(&mut l);
        assert_eq!(got.len(), BUF_SIZE);
        assert_eq!(got.last(), Some(&b'\n'));
        // Non-canonical: the room is what is free.
        let mut t = l.termios;
        t.c_lflag &= !ICANON;
        l.set_termios(t);
        feed(&mut l, &[b'y'; 100]);
        assert_eq!(l.room(), BUF_SIZE - 100);
    }

    #[test]
    fn flow_control_stops_and_starts_output() {
        let mut l = ld();
        feed(&mut l, b"\x13");
        assert!(l.stopped);
        feed(&mut l, b"\x11");
        assert!(!l.stopped);
    }

    #[test]
    fn literal_next_takes_a_control_character_as_data() {
        let mut l = ld();
        assert!(feed(&mut l, b"\x16\x03\n").is_empty());
        assert_eq!(read_all(&mut l), b"\x03\n");
    }
}
