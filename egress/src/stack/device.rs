//! The TUN device as smoltcp sees it: packets read from the descriptor wait in a queue
//! (after the broker looked at them); packets smoltcp sends are written at once.

use std::collections::VecDeque;
use std::os::fd::RawFd;

use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

/// The largest IP packet on the link (the TUN device's MTU, set the same inside).
pub const MTU: usize = 65535;

#[derive(Debug)]
pub(crate) struct TunDevice {
    pub(crate) fd: RawFd,
    pub(crate) rx: VecDeque<Vec<u8>>,
    /// Packets that could not be written (the kernel's queue was full).
    pub(crate) tx_dropped: u64,
}

pub(crate) struct Rx(Vec<u8>);
pub(crate) struct Tx<'a> {
    fd: RawFd,
    dropped: &'a mut u64,
}

impl phy::RxToken for Rx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl phy::TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut buf = vec![0u8; len];
        let r = f(&mut buf);
        // SAFETY: writes `len` bytes from a live buffer of that length to a descriptor
        // the stack owns for its whole life.
        let n = unsafe { libc::write(self.fd, buf.as_ptr().cast(), len) };
        if n != len as isize {
            // A full queue: TCP sends again; a DNS answer is asked again.
            *self.dropped += 1;
        }
        r
    }
}

impl phy::Device for TunDevice {
    type RxToken<'a> = Rx;
    type TxToken<'a> = Tx<'a>;

    fn receive(&mut self, _now: Instant) -> Option<(Rx, Tx<'_>)> {
        let pkt = self.rx.pop_front()?;
        Some((
            Rx(pkt),
            Tx {
                fd: self.fd,
                dropped: &mut self.tx_dropped,
            },
        ))
    }

    fn transmit(&mut self, _now: Instant) -> Option<Tx<'_>> {
        Some(Tx {
            fd: self.fd,
            dropped: &mut self.tx_dropped,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ip;
        caps.max_transmission_unit = MTU;
        caps
    }
}
