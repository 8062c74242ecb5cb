//! Pipe buffers: anonymous pipes, named pipes (FIFOs, which the VFS creates) and each
//! direction of a socket pair. Only the buffer and its ends live here; what a blocked
//! reader or writer does (waiting, `SIGPIPE`) is the personality's (`linux/rw.rs`).
//! Neither `vfs` nor `linux` owns this module, so neither needs the other for it.
//!
//! A pipe holds its bytes in page-sized slots, as Linux's pipe ring does: a write of
//! `n` bytes first tops up the last slot with its `n % 4096` leading bytes when they
//! fit behind what that slot holds, then takes whole new slots; the pipe is full when
//! every slot is taken, whatever they hold. This is what makes a write of at most
//! `PIPE_BUF` bytes atomic, and what `F_SETPIPE_SZ` resizes. Socket pairs count bytes.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;

use crate::errno::{self, Errno};
use crate::memory::{Budget, HeapCharge, OutOfMemory};

/// Size of a slot (a page).
const PAGE: usize = 4096;
/// Default capacity of a pipe, as Linux's (16 pages).
pub(crate) const PIPE_CAPACITY: usize = 16 * PAGE;
/// Largest capacity an unprivileged process may set (`/proc/sys/fs/pipe-max-size`).
pub(crate) const PIPE_MAX_SIZE: usize = 1 << 20;

/// How a buffer is filled and emptied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// A pipe or FIFO: page slots.
    Paged,
    /// A stream socket direction: bytes, up to the capacity.
    Stream,
    /// A datagram or seqpacket socket direction: whole messages.
    Datagram,
}

/// One page of a pipe: where its bytes end in the page, and how many are left.
#[derive(Debug, Clone, Copy)]
struct Slot {
    end: usize,
    len: usize,
}

/// A pipe's buffer and how many ends are open (also one direction of a socket pair).
#[derive(Debug)]
pub(crate) struct Pipe {
    /// Buffered bytes.
    buf: VecDeque<u8>,
    mode: Mode,
    /// Paged mode: the slots holding `buf`, oldest first.
    slots: VecDeque<Slot>,
    /// Datagram mode: the length of each message in `buf`, in order.
    msgs: VecDeque<usize>,
    /// Capacity in bytes (paged: slots times the page size).
    capacity: usize,
    /// Open read ends.
    pub(crate) readers: usize,
    /// Open write ends.
    pub(crate) writers: usize,
    /// A named pipe (FIFO) not yet opened for writing (reads wait, not EOF).
    pub(crate) no_writer_yet: bool,
    /// A named pipe not yet opened for reading (writes wait, not EPIPE).
    pub(crate) no_reader_yet: bool,
    /// What the buffers cost the sandbox's memory (made at the first write).
    charge: Option<HeapCharge>,
    /// Its inode number (both ends show it, as pipefs's): the personality's
    /// `next_ino` for anonymous pipes, 0 for FIFOs (whose inode is their file's).
    pub(crate) ino: u64,
    /// What ever went in: messages (datagram mode) or bytes. A socket's ancillary data
    /// is placed by this count (see `linux/scm.rs`); epoll's edge triggering watches it.
    pub(crate) total_in: u64,
    /// What was ever taken out, in the same unit.
    pub(crate) total_out: u64,
    /// A TCP connection's direction whose writer closed abortively (a reset: it closed
    /// with bytes unread, or with `SO_LINGER` 0): 1 until the reader's socket has
    /// taken it as its error, then 2 (see `linux/inet.rs`, `take_reset`).
    pub(crate) reset: u8,
    /// A TCP direction sized by its ends' options: its receiver's share (`SO_RCVBUF`;
    /// 64 KiB until set, as Linux's initial window) and its sender's (`SO_SNDBUF`; the
    /// rest of the default until set, as Linux's send buffer grows); the capacity is
    /// their sum.
    shares: Option<[usize; 2]>,
    /// Set whenever the guest moves bytes through, resizes or closes an end of this
    /// pipe: a relayed connection's buffers tell the egress pump there is work (see
    /// `linux/egress.rs`), so idle connections cost nothing per syscall.
    pub(crate) watch: Option<Rc<Cell<bool>>>,
    /// A socket direction whose reader shut down (`SHUT_RD`): its writer is shut for
    /// sending (Linux's `SEND_SHUTDOWN` on a connected stream or seqpacket peer), so
    /// a send is refused before its bytes are read. Only sockets' pipes have it, and
    /// sockets are never saved to a file: the save format does not carry it.
    pub(crate) read_shut: bool,
    /// A `SOCK_SEQPACKET` direction (see [`Pipe::seqpacket`]).
    seqpacket: bool,
}

/// What each datagram costs of a socket's capacity besides its bytes (its length is
/// kept): a flood of empty datagrams fills the buffer as on Linux, instead of growing
/// the VMM's memory.
pub(crate) const MSG_OVERHEAD: usize = 32;

/// What a read found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Read {
    /// This many bytes were copied (for a datagram: of a message that had `full`).
    Data { n: usize, full: usize },
    /// Nothing, and no writer will come: end of file.
    Eof,
    /// Nothing yet: wait, or `EAGAIN`.
    Empty,
}

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Write {
    /// This many bytes went in (at least one).
    Wrote(usize),
    /// Nothing fits now: wait, or `EAGAIN`.
    Full,
    /// No reader: `EPIPE` (and `SIGPIPE`).
    Broken,
    /// A datagram larger than the buffer can ever hold: `EMSGSIZE`.
    TooBig,
}

impl Pipe {
    fn new(mode: Mode) -> Pipe {
        Pipe {
            buf: VecDeque::new(),
            mode,
            slots: VecDeque::new(),
            msgs: VecDeque::new(),
            capacity: PIPE_CAPACITY,
            readers: 0,
            writers: 0,
            no_writer_yet: false,
            no_reader_yet: false,
            charge: None,
            ino: 0,
            total_in: 0,
            total_out: 0,
            reset: 0,
            shares: None,
            watch: None,
            read_shut: false,
            seqpacket: false,
        }
    }

    /// Tells the watcher, if any, that this pipe changed.
    fn touch(&self) {
        if let Some(w) = &self.watch {
            w.set(true);
        }
    }

    /// Sets the receiver's (or the sender's) share of a socket direction's capacity.
    pub(crate) fn set_share(&mut self, receiver: bool, bytes: usize) {
        let rcv = self.capacity.min(64 << 10);
        let mut sh = self.shares.unwrap_or([rcv, self.capacity - rcv]);
        sh[usize::from(!receiver)] = bytes;
        self.shares = Some(sh);
        self.capacity = sh[0] + sh[1];
        self.touch();
    }

    /// Bytes of the capacity in use (datagrams count their overhead).
    pub(crate) fn used(&self) -> usize {
        self.buf.len() + self.msgs.len() * MSG_OVERHEAD
    }

    /// Charges what the buffers hold now to `budget`; an empty pipe gives its memory
    /// back to the host. Fails (nothing changed) when the budget has no room.
    pub(crate) fn account(&mut self, budget: &Rc<Budget>) -> Result<(), OutOfMemory> {
        if self.buf.is_empty() {
            self.buf = VecDeque::new();
        }
        if self.msgs.is_empty() {
            self.msgs = VecDeque::new();
        }
        if self.slots.is_empty() {
            self.slots = VecDeque::new();
        }
        let bytes = self.buf.capacity() as u64
            + self.msgs.capacity() as u64 * 8
            + self.slots.capacity() as u64 * std::mem::size_of::<Slot>() as u64;
        self.charge
            .get_or_insert_with(|| HeapCharge::new(budget))
            .set(bytes)
    }

    /// An anonymous pipe (`pipe2`), with inode number `ino`.
    pub(crate) fn shared(ino: u64) -> Rc<RefCell<Pipe>> {
        let mut p = Pipe::new(Mode::Paged);
        p.ino = ino;
        Rc::new(RefCell::new(p))
    }

    /// A named pipe: until both ends have been opened once, reads and writes wait.
    pub(crate) fn fifo() -> Rc<RefCell<Pipe>> {
        let mut p = Pipe::new(Mode::Paged);
        p.no_writer_yet = true;
        p.no_reader_yet = true;
        Rc::new(RefCell::new(p))
    }

    /// One direction of a socket pair: a byte stream, or messages kept apart.
    pub(crate) fn socket(datagrams: bool) -> Rc<RefCell<Pipe>> {
        Rc::new(RefCell::new(Pipe::new(if datagrams {
            Mode::Datagram
        } else {
            Mode::Stream
        })))
    }

    /// A `SOCK_SEQPACKET` direction of `capacity` bytes: messages kept apart, and
    /// (unlike a datagram socket's) an end of file once its writer has gone.
    pub(crate) fn seqpacket(capacity: usize) -> Rc<RefCell<Pipe>> {
        let p = Pipe::socket_sized(true, capacity);
        p.borrow_mut().seqpacket = true;
        p
    }

    /// Whether a read finds the end of file once empty with no writer left: not on a
    /// datagram socket (its peer's going or shutdown does not end the reader's; Linux
    /// propagates shutdown to stream and seqpacket peers only).
    fn ends(&self) -> bool {
        self.mode != Mode::Datagram || self.seqpacket
    }

    /// A socket direction of `capacity` bytes (an `AF_INET` socket's buffers are
    /// larger than a pair's: a UDP datagram may be 65,507 bytes).
    pub(crate) fn socket_sized(datagrams: bool, capacity: usize) -> Rc<RefCell<Pipe>> {
        let p = Pipe::socket(datagrams);
        p.borrow_mut().capacity = capacity;
        p
    }

    /// A stream socket direction (its counts are bytes, not messages).
    pub(crate) fn is_stream(&self) -> bool {
        self.mode == Mode::Stream
    }

    /// Bytes buffered (`FIONREAD`).
    pub(crate) fn len(&self) -> usize {
        self.buf.len()
    }

    /// The capacity in bytes (`F_GETPIPE_SZ`).
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// The length of the next message of a datagram buffer (0 when there is none or
    /// it is a stream).
    pub(crate) fn next_message(&self) -> usize {
        self.msgs.front().copied().unwrap_or(0)
    }

    /// A read would find something: data, or the end of file.
    pub(crate) fn readable(&self) -> bool {
        !self.is_empty() || (self.writers == 0 && !self.no_writer_yet && self.ends())
    }

    /// Nothing buffered: no byte, and (datagrams) no message, an empty one included.
    pub(crate) fn is_empty(&self) -> bool {
        match self.mode {
            Mode::Datagram => self.msgs.is_empty(),
            _ => self.buf.is_empty(),
        }
    }

    /// A write would take something now (a pipe: a free slot).
    pub(crate) fn writable(&self) -> bool {
        match self.mode {
            Mode::Paged => self.slots.len() < self.capacity / PAGE,
            // Room for an empty datagram at least.
            Mode::Datagram => self.used() + MSG_OVERHEAD <= self.capacity,
            Mode::Stream => self.buf.len() < self.capacity,
        }
    }

    /// Takes (or with `peek`, copies) what a read of `out.len()` bytes gets.
    pub(crate) fn read(&mut self, out: &mut [u8], peek: bool) -> Read {
        if self.is_empty() {
            return if self.writers == 0 && !self.no_writer_yet && self.ends() {
                Read::Eof
            } else {
                Read::Empty
            };
        }
        let avail = match self.mode {
            Mode::Datagram => self.next_message(),
            _ => self.buf.len(),
        };
        let n = out.len().min(avail);
        // The ring's two halves, each copied at once (a byte at a time cost ~40 µs a
        // 64 KiB read).
        let (a, b) = self.buf.as_slices();
        let first = n.min(a.len());
        out[..first].copy_from_slice(&a[..first]);
        out[first..n].copy_from_slice(&b[..n - first]);
        if !peek {
            // A datagram goes whole, the rest of a longer one dropped, as Linux does.
            let take = if self.mode == Mode::Datagram {
                avail
            } else {
                n
            };
            self.buf.drain(..take);
            match self.mode {
                Mode::Datagram => {
                    self.msgs.pop_front();
                    self.total_out += 1;
                }
                Mode::Paged => {
                    self.consume_slots(take);
                    self.total_out += take as u64;
                }
                Mode::Stream => self.total_out += take as u64,
            }
            self.touch();
        }
        Read::Data { n, full: avail }
    }

    fn consume_slots(&mut self, mut n: usize) {
        while n > 0 {
            let Some(s) = self.slots.front_mut() else {
                return;
            };
            let k = n.min(s.len);
            s.len -= k;
            n -= k;
            if s.len == 0 {
                self.slots.pop_front();
            }
        }
    }

    /// Puts what fits of `data` in (a datagram whole or nothing).
    pub(crate) fn write(&mut self, data: &[u8]) -> Write {
        if self.readers == 0 && !self.no_reader_yet {
            return Write::Broken;
        }
        if data.is_empty() && self.mode != Mode::Datagram {
            return Write::Wrote(0);
        }
        let n = match self.mode {
            Mode::Datagram => {
                if data.len() > self.capacity - MSG_OVERHEAD {
                    return Write::TooBig;
                }
                // An empty datagram is a message too (its reader gets 0): each message
                // costs MSG_OVERHEAD of the capacity besides its bytes.
                if self.capacity.saturating_sub(self.used()) < data.len() + MSG_OVERHEAD {
                    return Write::Full;
                }
                self.msgs.push_back(data.len());
                self.total_in += 1;
                if data.is_empty() {
                    return Write::Wrote(0);
                }
                data.len()
            }
            Mode::Stream => self.capacity.saturating_sub(self.buf.len()).min(data.len()),
            Mode::Paged => self.fill_slots(data.len()),
        };
        if n == 0 {
            return Write::Full;
        }
        if self.mode != Mode::Datagram {
            self.total_in += n as u64;
        }
        self.buf.extend(&data[..n]);
        self.touch();
        Write::Wrote(n)
    }

    /// Paged mode: takes slots for up to `total` bytes; how many fit.
    fn fill_slots(&mut self, total: usize) -> usize {
        let mut done = 0;
        let head = total % PAGE;
        if head != 0 {
            if let Some(last) = self.slots.back_mut() {
                if last.end + head <= PAGE {
                    last.end += head;
                    last.len += head;
                    done = head;
                }
            }
        }
        let slots = self.capacity / PAGE;
        while done < total && self.slots.len() < slots {
            let n = PAGE.min(total - done);
            self.slots.push_back(Slot { end: n, len: n });
            done += n;
        }
        done
    }

    /// `F_SETPIPE_SZ(arg)`: at least a page, rounded up to a power of two; more than
    /// [`PIPE_MAX_SIZE`] only if it is no larger than now (`EPERM`); never fewer slots
    /// than are in use (`EBUSY`). The new capacity.
    pub(crate) fn set_capacity(&mut self, arg: u64) -> Result<usize, Errno> {
        if self.mode != Mode::Paged {
            return Err(errno::EBADF);
        }
        // The argument is an unsigned int.
        let arg = arg as u32 as usize;
        if arg > 1 << 31 {
            return Err(errno::EINVAL);
        }
        let size = arg.max(PAGE).next_power_of_two();
        if size > self.capacity && size > PIPE_MAX_SIZE {
            return Err(errno::EPERM);
        }
        if self.slots.len() > size / PAGE {
            return Err(errno::EBUSY);
        }
        self.capacity = size;
        Ok(size)
    }
}

/// Which way an end of a pipe moves bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// A read end.
    Read,
    /// A write end.
    Write,
    /// A FIFO opened `O_RDWR`: a reader and a writer of its own, so its open never
    /// waits and its reads never find the end of file.
    Both,
    /// A FIFO's read end opened `O_NONBLOCK`: its open waited for no writer, so its
    /// reads find the end of file whenever no writer is open. (A blocking open's
    /// reads wait for the first writer instead, as the open itself would have.)
    ReadNow,
    /// A socket's receive side after `shutdown(SHUT_RD)`: what was queued is still
    /// read, then the end of file at once; it no longer counts as a reader, so the
    /// peer's writes fail (`EPIPE`), as Linux's `RCV_SHUTDOWN` makes them.
    ReadShut,
}

impl Side {
    /// Every side (its codes are 0..=4).
    pub(crate) const ALL: [Side; 5] = [
        Side::Read,
        Side::Write,
        Side::Both,
        Side::ReadNow,
        Side::ReadShut,
    ];

    /// Bytes can be read through it.
    pub(crate) fn reads(self) -> bool {
        self != Side::Write
    }
    pub(crate) fn writes(self) -> bool {
        matches!(self, Side::Write | Side::Both)
    }
    /// Counted among its pipe's readers (a writer without any fails).
    pub(crate) fn counts_as_reader(self) -> bool {
        self.reads() && self != Side::ReadShut
    }
    /// Its byte in a saved sandbox (0 and 1 are the `write` boolean of the format's
    /// first version).
    pub(crate) fn code(self) -> u8 {
        match self {
            Side::Read => 0,
            Side::Write => 1,
            Side::Both => 2,
            Side::ReadNow => 3,
            Side::ReadShut => 4,
        }
    }
    pub(crate) fn from_code(c: u8) -> Option<Side> {
        Side::ALL.into_iter().find(|s| s.code() == c)
    }
}

/// One end of a pipe; dropping it closes that end.
#[derive(Debug)]
pub(crate) struct PipeEnd {
    /// The pipe.
    pub(crate) pipe: Rc<RefCell<Pipe>>,
    pub(crate) side: Side,
}

impl PipeEnd {
    /// Opens a read end or (`write`) a write end.
    pub(crate) fn new(pipe: &Rc<RefCell<Pipe>>, write: bool) -> PipeEnd {
        PipeEnd::open(pipe, if write { Side::Write } else { Side::Read })
    }

    /// Opens an end of `side`: counted by its pipe, which no longer waits for its
    /// first reader or writer.
    pub(crate) fn open(pipe: &Rc<RefCell<Pipe>>, side: Side) -> PipeEnd {
        let end = PipeEnd::restored(Rc::clone(pipe), side);
        {
            let mut p = pipe.borrow_mut();
            if side.writes() {
                p.no_writer_yet = false;
            }
            if side.counts_as_reader() {
                p.no_reader_yet = false;
            }
        }
        end
    }

    /// Reads from the pipe.
    pub(crate) fn reads(&self) -> bool {
        self.side.reads()
    }

    /// Writes into the pipe.
    pub(crate) fn writes(&self) -> bool {
        self.side.writes()
    }

    /// An empty pipe read through this end ends the file even before its first
    /// writer: the end was opened without waiting for one, and none is open.
    pub(crate) fn eof_unwaited(&self, p: &Pipe) -> bool {
        (self.side == Side::ReadNow && p.writers == 0) || self.is_shut()
    }

    /// A read through this end would find something: data, or the end of file.
    pub(crate) fn readable(&self, p: &Pipe) -> bool {
        p.readable() || self.eof_unwaited(p)
    }

    /// Shuts this read end (`shutdown(SHUT_RD)`): it stops counting as a reader (the
    /// writers learn it at once) and reads what is queued, then the end of file.
    pub(crate) fn shut_read(&mut self) {
        if self.side.counts_as_reader() {
            let mut p = self.pipe.borrow_mut();
            p.readers -= 1;
            p.read_shut = true;
            p.touch();
        }
        if self.side.reads() {
            self.side = Side::ReadShut;
        }
    }

    /// Shut for reading (`shutdown(SHUT_RD)`).
    pub(crate) fn is_shut(&self) -> bool {
        self.side == Side::ReadShut
    }

    /// A stream read through this end is at its end once empty: every writer has
    /// gone, or the end is shut for reading.
    pub(crate) fn at_end(&self, p: &Pipe) -> bool {
        p.writers == 0 || self.is_shut()
    }

    /// Shut for reading and nothing left to read: as good as gone.
    pub(crate) fn drained(&self) -> bool {
        self.is_shut() && self.pipe.borrow().is_empty()
    }
}

impl Drop for PipeEnd {
    fn drop(&mut self) {
        let mut p = self.pipe.borrow_mut();
        if self.side.writes() {
            p.writers -= 1;
        }
        if self.side.counts_as_reader() {
            p.readers -= 1;
        }
        p.touch();
    }
}

impl Pipe {
    /// Sets how many read and write ends exist (a copy's, counted as they are made).
    pub(crate) fn set_ends(&mut self, readers: usize, writers: usize) {
        self.readers = readers;
        self.writers = writers;
    }
}

impl crate::snap::Snap for Pipe {
    fn snap(&self, m: &mut crate::snap::Memo) -> Result<Self, crate::snap::SnapError> {
        Ok(Pipe {
            buf: self.buf.clone(),
            mode: self.mode,
            slots: self.slots.clone(),
            msgs: self.msgs.clone(),
            capacity: self.capacity,
            readers: self.readers,
            writers: self.writers,
            no_writer_yet: self.no_writer_yet,
            no_reader_yet: self.no_reader_yet,
            charge: crate::snap::Snap::snap(&self.charge, m)?,
            ino: self.ino,
            total_in: self.total_in,
            total_out: self.total_out,
            reset: self.reset,
            shares: self.shares,
            // Only a relayed connection's pipes are watched, and a sandbox with
            // relayed connections takes no snapshot.
            watch: None,
            read_shut: self.read_shut,
            seqpacket: self.seqpacket,
        })
    }
}

impl crate::snap::Snap for PipeEnd {
    fn snap(&self, m: &mut crate::snap::Memo) -> Result<Self, crate::snap::SnapError> {
        let pipe = crate::snap::Snap::snap(&self.pipe, m)?;
        m.pipe_end(&pipe, self.side);
        Ok(PipeEnd {
            pipe,
            side: self.side,
        })
    }
}

// Saving to and loading from a file (`savefile`).
impl Pipe {
    /// A pipe (shared: written once, referred to after).
    pub(crate) fn save(p: &Rc<RefCell<Pipe>>, e: &mut crate::savefile::wire::Enc) {
        if !e.shared(Rc::as_ptr(p)) {
            return;
        }
        let p = p.borrow();
        e.seq(p.buf.iter(), |e, b| e.u8(*b));
        e.u8(match p.mode {
            Mode::Paged => 0,
            Mode::Stream => 1,
            Mode::Datagram => 2,
        });
        e.seq(p.slots.iter(), |e, s| {
            e.usize(s.end);
            e.usize(s.len);
        });
        e.seq(p.msgs.iter(), |e, m| e.usize(*m));
        e.usize(p.capacity);
        e.bool(p.no_writer_yet);
        e.bool(p.no_reader_yet);
        e.opt(p.charge.as_ref(), |e, c| e.u64(c.bytes()));
        for v in [p.ino, p.total_in, p.total_out] {
            e.u64(v);
        }
        e.u8(p.reset);
        e.opt(p.shares, |e, [a, b]| {
            e.usize(a);
            e.usize(b);
        });
    }

    /// A pipe read back, with no end open (the ends read back count themselves:
    /// [`Pipe::set_ends`]).
    pub(crate) fn load(
        d: &mut crate::savefile::wire::Dec<'_>,
        budget: &Rc<crate::memory::Budget>,
    ) -> Result<Rc<RefCell<Pipe>>, crate::savefile::wire::WireError> {
        use crate::savefile::wire::bad;
        let w = "a pipe";
        d.rc(w, |d| {
            let buf: VecDeque<u8> = d.seq(1 << 26, w, |d| d.u8(w))?.into();
            let mode = match d.u8(w)? {
                0 => Mode::Paged,
                1 => Mode::Stream,
                2 => Mode::Datagram,
                m => return Err(bad(format!("{w}: mode {m} is unknown"))),
            };
            let slots: VecDeque<Slot> = d
                .seq(1 << 16, w, |d| {
                    Ok(Slot {
                        end: d.usize(w)?,
                        len: d.usize(w)?,
                    })
                })?
                .into();
            let msgs: VecDeque<usize> = d.seq(1 << 20, w, |d| d.usize(w))?.into();
            let capacity = d.usize(w)?;
            // What the pipe's own code relies on: its slots and messages describe the
            // bytes it holds, within its capacity.
            let in_slots: usize = slots.iter().map(|s| s.len).sum();
            let in_msgs = msgs.iter().try_fold(0usize, |a, m| a.checked_add(*m));
            let consistent = match mode {
                Mode::Paged => {
                    in_slots == buf.len() && slots.iter().all(|s| s.len <= s.end && s.end <= 4096)
                }
                Mode::Stream => slots.is_empty() && msgs.is_empty(),
                Mode::Datagram => slots.is_empty() && in_msgs == Some(buf.len()),
            };
            if !consistent || capacity > 1 << 26 || buf.len() > capacity.max(1 << 16) {
                return Err(bad(format!("{w}: its buffer, slots and capacity disagree")));
            }
            let no_writer_yet = d.bool(w)?;
            let no_reader_yet = d.bool(w)?;
            let charge = d.opt(w, |d| {
                Ok(crate::memory::HeapCharge::restored(budget, d.u64(w)?))
            })?;
            let (ino, total_in, total_out) = (d.u64(w)?, d.u64(w)?, d.u64(w)?);
            let reset = d.u8(w)?;
            let shares = d.opt(w, |d| Ok([d.usize(w)?, d.usize(w)?]))?;
            Ok(RefCell::new(Pipe {
                buf,
                mode,
                slots,
                msgs,
                capacity,
                readers: 0,
                writers: 0,
                no_writer_yet,
                no_reader_yet,
                charge,
                ino,
                total_in,
                total_out,
                reset,
                shares,
                // Only a relayed connection's pipes are watched (never saved).
                watch: None,
                read_shut: false,
                // Sockets are never saved (see `read_shut`).
                seqpacket: false,
            }))
        })
    }
}

impl PipeEnd {
    /// An end read back: counted by its pipe (`set_ends` is not needed after).
    pub(crate) fn restored(pipe: Rc<RefCell<Pipe>>, side: Side) -> PipeEnd {
        {
            let mut p = pipe.borrow_mut();
            if side.writes() {
                p.writers += 1;
            }
            if side.counts_as_reader() {
                p.readers += 1;
            }
        }
        PipeEnd { pipe, side }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(p: &Rc<RefCell<Pipe>>) -> (PipeEnd, PipeEnd) {
        (PipeEnd::new(p, false), PipeEnd::new(p, true))
    }

    /// A FIFO's `O_RDWR` end counts as a reader and a writer, and gives both back;
    /// the save format's codes of the first version (the `write` boolean) still mean
    /// what they meant, and no other byte is a side.
    #[test]
    fn fifo_ends_count_their_sides() {
        let p = Pipe::fifo();
        let both = PipeEnd::open(&p, Side::Both);
        {
            let q = p.borrow();
            assert_eq!((q.readers, q.writers), (1, 1));
            assert!(!q.no_writer_yet && !q.no_reader_yet);
        }
        let now = PipeEnd::open(&p, Side::ReadNow);
        assert!(!now.eof_unwaited(&p.borrow()));
        drop(both);
        assert_eq!((p.borrow().readers, p.borrow().writers), (1, 0));
        assert!(now.eof_unwaited(&p.borrow()));
        assert!(!PipeEnd::new(&p, false).eof_unwaited(&p.borrow()));
        assert_eq!(Side::from_code(0), Some(Side::Read));
        assert_eq!(Side::from_code(1), Some(Side::Write));
        for s in Side::ALL {
            assert_eq!(Side::from_code(s.code()), Some(s));
        }
        assert_eq!(Side::from_code(5), None);
    }

    #[test]
    fn a_pipe_fills_page_slots_as_linux_does() {
        let p = Pipe::shared(1);
        let _ends = open(&p);
        let mut p = p.borrow_mut();
        assert_eq!(p.set_capacity(1), Ok(4096));
        assert_eq!(p.write(&[1; 5000]), Write::Wrote(4096));
        assert_eq!(p.write(&[2; 1]), Write::Full);
        assert_eq!(
            p.read(&mut [0; 100], false),
            Read::Data { n: 100, full: 4096 }
        );
        // 100 bytes are free in the page, but a write cannot merge behind its end.
        assert_eq!(p.write(&[3; 50]), Write::Full);
        assert!(!p.writable());
        let mut rest = [0u8; 8192];
        assert_eq!(
            p.read(&mut rest, false),
            Read::Data {
                n: 3996,
                full: 3996
            }
        );
        assert!(p.writable());
        // Small writes merge into the last slot while they fit behind it.
        assert_eq!(p.write(&[4; 10]), Write::Wrote(10));
        assert_eq!(p.write(&[5; 4086]), Write::Wrote(4086));
        assert_eq!(p.write(&[6; 1]), Write::Full);
    }

    #[test]
    fn resizing_is_checked() {
        let p = Pipe::shared(1);
        let _ends = open(&p);
        let mut p = p.borrow_mut();
        assert_eq!(p.set_capacity(0), Ok(4096));
        assert_eq!(p.set_capacity(100_000), Ok(131_072));
        assert_eq!(p.set_capacity(2 << 20), Err(errno::EPERM));
        assert_eq!(p.set_capacity(u64::from(u32::MAX)), Err(errno::EINVAL));
        assert_eq!(p.write(&[0; 200_000]), Write::Wrote(131_072));
        assert_eq!(p.set_capacity(4096), Err(errno::EBUSY));
        assert_eq!(p.capacity(), 131_072);
    }

    #[test]
    fn datagrams_go_whole() {
        let p = Pipe::socket(true);
        let _ends = open(&p);
        let mut p = p.borrow_mut();
        assert_eq!(p.write(b"abcdef"), Write::Wrote(6));
        assert_eq!(p.write(b"gh"), Write::Wrote(2));
        let mut b = [0u8; 3];
        assert_eq!(p.read(&mut b, false), Read::Data { n: 3, full: 6 });
        assert_eq!(p.read(&mut b, false), Read::Data { n: 2, full: 2 });
        assert_eq!(p.write(&[0; PIPE_CAPACITY + 1]), Write::TooBig);
    }

    /// Bytes come out in order whatever the ring's wrap point (its two halves copied
    /// in turn), peeked or taken, in reads shorter and longer than what is queued.
    #[test]
    fn reads_across_the_rings_wrap_keep_the_order() {
        let p = Pipe::socket(false);
        let _ends = open(&p);
        let mut p = p.borrow_mut();
        let mut next = 0u8;
        let mut want = 0u8;
        for round in 0..40usize {
            let chunk: Vec<u8> = (0..(round * 37) % 301 + 1)
                .map(|_| {
                    next = next.wrapping_add(1);
                    next
                })
                .collect();
            assert_eq!(p.write(&chunk), Write::Wrote(chunk.len()));
            let mut out = vec![0u8; (round * 53) % 257 + 1];
            let Read::Data { n, .. } = p.read(&mut out, true) else {
                panic!("nothing queued");
            };
            let mut taken = vec![0u8; out.len()];
            assert_eq!(
                p.read(&mut taken, false),
                Read::Data {
                    n,
                    full: p.len() + n
                }
            );
            assert_eq!(out[..n], taken[..n], "a peek gives what a read takes");
            for b in &taken[..n] {
                want = want.wrapping_add(1);
                assert_eq!(*b, want, "round {round}");
            }
        }
    }

    /// `shutdown(SHUT_RD)`'s end: what was queued is still read, then the end at once
    /// (writers remain); the writers see no reader; counts stay right as ends go.
    #[test]
    fn a_shut_read_end_drains_then_ends() {
        for datagrams in [false, true] {
            let p = Pipe::socket(datagrams);
            let (mut r, w) = open(&p);
            assert_eq!(p.borrow_mut().write(b"ab"), Write::Wrote(2));
            r.shut_read();
            r.shut_read(); // twice: counted once
            assert!(r.is_shut() && r.reads() && !r.writes());
            assert_eq!((p.borrow().readers, p.borrow().writers), (0, 1));
            assert_eq!(p.borrow_mut().write(b"c"), Write::Broken);
            assert!(r.readable(&p.borrow()) && !r.drained());
            let mut out = [0; 4];
            assert_eq!(
                p.borrow_mut().read(&mut out, false),
                Read::Data { n: 2, full: 2 }
            );
            assert!(r.drained() && r.eof_unwaited(&p.borrow()) && r.at_end(&p.borrow()));
            assert!(
                r.readable(&p.borrow()),
                "a read finds the end, it does not wait"
            );
            drop(w);
            drop(r);
            assert_eq!((p.borrow().readers, p.borrow().writers), (0, 0));
        }
    }

    #[test]
    fn ends_decide_eof_and_broken_pipes() {
        let p = Pipe::shared(1);
        let (r, w) = open(&p);
        drop(w);
        assert_eq!(p.borrow_mut().read(&mut [0; 4], false), Read::Eof);
        let w = PipeEnd::new(&p, true);
        drop(r);
        assert_eq!(p.borrow_mut().write(b"x"), Write::Broken);
        drop(w);
    }
}
