//! The TUN device as smoltcp sees it: packets read from the descriptor wait in a queue
//! (after the broker looked at them); packets smoltcp sends are written at once.

use std::collections::VecDeque;
use std::os::fd::RawFd;

use smoltcp::phy::{self, Checksum, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

/// The largest IP packet on the link (the TUN device's MTU, set the same inside).
pub const MTU: usize = 65535;

/// The virtio-net header before each packet on the TUN device (`IFF_VNET_HDR`, size set
/// with `TUNSETVNETHDRSZ`): flags, GSO type, header length, GSO size, checksum start and
/// offset.
pub const VNET_HDR_LEN: usize = 10;
/// `VIRTIO_NET_HDR_F_NEEDS_CSUM`: the checksum is partial (`CHECKSUM_PARTIAL`), which a
/// kernel delivering the packet locally takes as checked, as on veth.
const VNET_NEEDS_CSUM: u8 = 1;

#[derive(Debug)]
pub(crate) struct TunDevice {
    pub(crate) fd: RawFd,
    pub(crate) rx: VecDeque<Vec<u8>>,
    /// One buffer for every packet sent (they are written at once).
    pub(crate) tx_buf: Vec<u8>,
    /// Packets that could not be written (the kernel's queue was full).
    pub(crate) tx_dropped: u64,
}

/// A packet as read, its virtio-net header first.
pub(crate) struct Rx(Vec<u8>);
pub(crate) struct Tx<'a> {
    fd: RawFd,
    buf: &'a mut [u8],
    dropped: &'a mut u64,
}

impl phy::RxToken for Rx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(self.0.get(VNET_HDR_LEN..).unwrap_or_default())
    }
}

impl phy::TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let total = (len + VNET_HDR_LEN).min(self.buf.len());
        let buf = &mut self.buf[..total];
        buf[..VNET_HDR_LEN].fill(0);
        let r = f(&mut buf[VNET_HDR_LEN..]);
        // TCP and UDP go without a computed checksum: mark it partial, with where the
        // transport header starts and where its checksum field is.
        let ip = &buf[VNET_HDR_LEN..];
        if ip.len() >= 20 && ip[0] >> 4 == 4 {
            let start = usize::from(ip[0] & 0x0f) * 4;
            let field = match ip[9] {
                6 => Some(16u16),
                17 => Some(6u16),
                _ => None,
            };
            if let Some(off) = field.filter(|o| start + usize::from(*o) + 2 <= ip.len()) {
                buf[0] = VNET_NEEDS_CSUM;
                buf[6..8].copy_from_slice(&(start as u16).to_le_bytes());
                buf[8..10].copy_from_slice(&off.to_le_bytes());
            }
        }
        // SAFETY: writes `total` bytes from a live buffer of that length to a descriptor
        // the stack owns for its whole life.
        let n = unsafe { libc::write(self.fd, buf.as_ptr().cast(), total) };
        if n != total as isize {
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
        // Packets from the TUN device come from the sandbox's kernel (no wire in
        // between), which leaves their TCP/UDP checksums to the device: do not check them;
        // ours are marked partial, so the kernel does not check them either. The IP
        // header's checksum (20 bytes) is still computed: the kernel always checks it.
        caps.checksum.ipv4 = Checksum::Tx;
        caps.checksum.tcp = Checksum::None;
        caps.checksum.udp = Checksum::None;
        caps
    }
}
