//! Pipe buffers: anonymous pipes, named pipes (FIFOs, which the VFS creates) and each
//! direction of a socket pair. Only the buffer and its ends live here; what a blocked
//! reader or writer does (waiting, `SIGPIPE`) is the personality's (`linux/rw.rs`).
//! Neither `vfs` nor `linux` owns this module, so neither needs the other for it.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

/// Default capacity of a pipe, as Linux's (16 pages).
pub(crate) const PIPE_CAPACITY: usize = 64 * 1024;

/// A pipe's buffer and how many ends are open (also one direction of a socket pair).
#[derive(Debug, Default)]
pub(crate) struct Pipe {
    /// Buffered bytes.
    pub(crate) buf: VecDeque<u8>,
    /// Datagram sockets: the length of each message in `buf`, in order.
    pub(crate) msgs: Option<VecDeque<usize>>,
    /// Open read ends.
    pub(crate) readers: usize,
    /// Open write ends.
    pub(crate) writers: usize,
    /// A named pipe (FIFO) not yet opened for writing (reads wait, not EOF).
    pub(crate) no_writer_yet: bool,
    /// A named pipe not yet opened for reading (writes wait, not EPIPE).
    pub(crate) no_reader_yet: bool,
}

impl Pipe {
    /// An anonymous pipe (`pipe2`).
    pub(crate) fn shared() -> Rc<RefCell<Pipe>> {
        Rc::new(RefCell::new(Pipe::default()))
    }

    /// A named pipe: until both ends have been opened once, reads and writes wait.
    pub(crate) fn fifo() -> Rc<RefCell<Pipe>> {
        Rc::new(RefCell::new(Pipe {
            no_writer_yet: true,
            no_reader_yet: true,
            ..Pipe::default()
        }))
    }

    /// One direction of a socket pair: a byte stream, or messages kept apart.
    pub(crate) fn socket(datagrams: bool) -> Rc<RefCell<Pipe>> {
        Rc::new(RefCell::new(Pipe {
            msgs: datagrams.then(VecDeque::new),
            ..Pipe::default()
        }))
    }
}

/// One end of a pipe; dropping it closes that end.
#[derive(Debug)]
pub(crate) struct PipeEnd {
    /// The pipe.
    pub(crate) pipe: Rc<RefCell<Pipe>>,
    /// The write end (else the read end).
    pub(crate) write: bool,
}

impl PipeEnd {
    /// Opens an end.
    pub(crate) fn new(pipe: &Rc<RefCell<Pipe>>, write: bool) -> PipeEnd {
        {
            let mut p = pipe.borrow_mut();
            if write {
                p.writers += 1;
                p.no_writer_yet = false;
            } else {
                p.readers += 1;
                p.no_reader_yet = false;
            }
        }
        PipeEnd {
            pipe: Rc::clone(pipe),
            write,
        }
    }
}

impl Drop for PipeEnd {
    fn drop(&mut self) {
        let mut p = self.pipe.borrow_mut();
        if self.write {
            p.writers -= 1;
        } else {
            p.readers -= 1;
        }
    }
}
