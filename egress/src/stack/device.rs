//! The TUN device as smoltcp sees it: packets read from the descriptor wait in a queue
//! (after the broker looked at them); packets smoltcp sends are written at once.

use std::collections::VecDeque;
use std::os::fd::RawFd;

use smoltcp::phy::{self, Checksum, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

/// The largest IP packet on the link (the TUN device's MTU, set the same inside).
pub const MTU: usize = 65535;

#[derive(Debug)]
pub(crate) struct TunDevice {
    pub(crate) fd: RawFd,
    pub(crate) rx: VecDeque<Vec<u8>>,
    /// One buffer for every packet sent (they are written at once).
    pub(crate) tx_buf: Vec<u8>,
    /// Packets that could not be written (the kernel's queue was full).
    pub(crate) tx_dropped: u64,
}

pub(crate) struct Rx(Vec<u8>);
pub(crate) struct Tx<'a> {
    fd: RawFd,
    buf: &'a mut [u8],
    dropped: &'a mut u64,
}

impl phy::RxToken for Rx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl phy::TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let len = len.min(self.buf.len());
        let buf = &mut self.buf[..len];
        let r = f(buf);
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
                buf: &mut self.tx_buf,
                dropped: &mut self.tx_dropped,
            },
        ))
    }

    fn transmit(&mut self, _now: Instant) -> Option<Tx<'_>> {
        Some(Tx {
            fd: self.fd,
            buf: &mut self.tx_buf,
            dropped: &mut self.tx_dropped,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ip;
        caps.max_transmission_unit = MTU;
        // Packets from the TUN device come from the sandbox's kernel, which computed
        // their checksums (no wire in between): do not verify them again; compute ours
        // (the kernel checks what it receives).
        caps.checksum.ipv4 = Checksum::Tx;
        caps.checksum.tcp = Checksum::Tx;
        caps.checksum.udp = Checksum::Tx;
        caps
    }
}
