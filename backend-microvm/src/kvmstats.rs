//! KVM's own counters of the vCPU (`KVM_GET_STATS_FD`, Linux 5.14): how many page
//! faults KVM handled inside `KVM_RUN` (shadow paging), how many exits it took. Read
//! only for `HSB_MICROVM_STATS=1` (a developer's aid): the descriptor is opened before
//! the VMM thread is confined, and read (`pread64`) at the end of the run.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// `KVM_GET_STATS_FD`: `_IO(KVMIO, 0xce)`.
const KVM_GET_STATS_FD: libc::c_ulong = 0xae_ce;
/// Counters worth a line in the stats.
const WANTED: &[&str] = &[
    "pf_taken",
    "pf_fixed",
    "pf_emulate",
    "pf_spurious",
    "pf_fast",
    "pf_guest",
    "tlb_flush",
    "exits",
    "mmio_exits",
    "io_exits",
    "irq_exits",
    "signal_exits",
    "insn_emulation",
];

/// The vCPU's statistics descriptor.
pub(crate) struct KvmStats {
    fd: OwnedFd,
}

impl KvmStats {
    /// Opens the statistics of the vCPU `vcpu` (`None` when KVM has none).
    pub(crate) fn open(vcpu: &impl AsRawFd) -> Option<Self> {
        // SAFETY: KVM_GET_STATS_FD takes no argument and returns a new descriptor (or
        // -1); `vcpu` is a live vCPU descriptor.
        let fd = unsafe { libc::ioctl(vcpu.as_raw_fd(), KVM_GET_STATS_FD, 0) };
        if fd < 0 {
            return None;
        }
        // SAFETY: `fd` was just returned by the kernel and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Some(Self { fd })
    }

    fn pread(&self, at: u64, len: usize) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; len];
        let mut done = 0;
        while done < len {
            // SAFETY: the buffer has `len - done` writable bytes from `done`.
            let n = unsafe {
                libc::pread64(
                    self.fd.as_raw_fd(),
                    buf[done..].as_mut_ptr().cast(),
                    len - done,
                    (at + done as u64) as i64,
                )
            };
            if n <= 0 {
                return None;
            }
            done += n as usize;
        }
        Some(buf)
    }

    /// The wanted counters, by name (those this KVM has).
    pub(crate) fn read(&self) -> Vec<(String, u64)> {
        self.read_all().unwrap_or_default()
    }

    fn read_all(&self) -> Option<Vec<(String, u64)>> {
        let u32_at = |b: &[u8], at: usize| -> Option<u32> {
            Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
        };
        // struct kvm_stats_header { flags, name_size, num_desc, id_offset,
        // desc_offset, data_offset } (all u32).
        let h = self.pread(0, 24)?;
        let name_size = u32_at(&h, 4)? as usize;
        let num_desc = u32_at(&h, 8)? as usize;
        let desc_offset = u64::from(u32_at(&h, 16)?);
        let data_offset = u64::from(u32_at(&h, 20)?);
        // struct kvm_stats_desc { u32 flags; s16 exponent; u16 size; u32 offset;
        // u32 bucket_size; char name[name_size]; }
        let desc_len = 16 + name_size;
        let descs = self.pread(desc_offset, desc_len.checked_mul(num_desc)?)?;
        let mut out = Vec::new();
        for d in descs.chunks_exact(desc_len) {
            let name = &d[16..];
            let name = &name[..name.iter().position(|&c| c == 0).unwrap_or(name.len())];
            let name = String::from_utf8_lossy(name).into_owned();
            if !WANTED.contains(&name.as_str()) {
                continue;
            }
            let offset = u64::from(u32_at(d, 8)?);
            let v = self.pread(data_offset + offset, 8)?;
            out.push((name, u64::from_le_bytes(v.try_into().ok()?)));
        }
        Some(out)
    }
}
