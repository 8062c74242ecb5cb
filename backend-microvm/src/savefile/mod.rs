//! Snapshots saved to a file and loaded in another process on the same host.
//!
//! **The file** (all integers little-endian):
//!
//! ```text
//! 0      header, one page: magic "HSBSNAP\0", format version, a CRC-32 of the rest
//!        of the header, the build identity (ABI) of the personality state, the
//!        guest memory's size, where each section is, its length and CRC-32, a
//!        fingerprint of the sandbox's settings (plan)
//! 4096   guest memory, page for page at its guest address: pages that read as zero
//!        are holes (a sparse file), so a 64 MiB guest using 20 MiB takes 20 MiB
//! ...    the personality state (`linux::saved`), then the table of the memory's data
//!        runs (address, length), whose bytes a CRC-32 covers
//! ```
//!
//! **Loading** checks, before anything starts: the magic (else "not a snapshot
//! file"), the format version, the build identity (a file from another build is
//! refused, naming both), the header's CRC, that every section lies inside the file
//! (else "truncated"), the CRC of the state, of the run table and of the memory's
//! data; the state is then read on the new sandbox's thread, every length, count,
//! frame, address and reference bounded (a crafted state is refused, never trusted).
//! Guest memory is not read into the process: the file's memory part is mapped
//! privately as guest RAM (pages come in from the page cache when the guest touches
//! them, copied only when it writes them; holes read as zero).
//!
//! **The build identity** names the crate version, the state's layout version and
//! the sizes of the structures the state is made of: a build whose state differs
//! refuses the file rather than misreading it.

pub(crate) mod wire;

use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::OwnedFd;
use std::path::Path;

use sha2::{Digest, Sha256};

/// The first bytes of every snapshot file.
pub(crate) const MAGIC: &[u8; 8] = b"HSBSNAP\0";
/// The version of the file's layout this build writes and reads.
pub(crate) const FORMAT: u32 = 1;
/// The version of the personality state's encoding (`linux::saved`).
const STATE_VERSION: u32 = 1;
/// The header's size; guest memory starts there.
pub(crate) const HEADER: u64 = 4096;
const PAGE: u64 = 4096;

/// The identity of the state this build writes: crate version, state version, and a
/// fingerprint of the sizes of the structures in it.
pub(crate) fn abi() -> String {
    use std::mem::size_of;
    let sizes = [
        size_of::<crate::linux::Kernel>(),
        size_of::<crate::linux::task::Task>(),
        size_of::<crate::linux::task::Process>(),
        size_of::<crate::mm::AddressSpace>(),
        size_of::<crate::memory::Memory>(),
        size_of::<crate::pipe::Pipe>(),
        size_of::<crate::vfs::tmpfs::TmpInode>(),
        size_of::<kvm_bindings::kvm_regs>(),
        size_of::<kvm_bindings::kvm_xsave>(),
    ];
    let mut h = Sha256::new();
    for s in sizes {
        h.update((s as u64).to_le_bytes());
    }
    let d = h.finalize();
    format!(
        "hsb {} state {STATE_VERSION} layout {:02x}{:02x}{:02x}{:02x}",
        env!("CARGO_PKG_VERSION"),
        d[0],
        d[1],
        d[2],
        d[3]
    )
}

/// A fingerprint of what a sandbox is built from (mounts, image, limits, network,
/// identity): a snapshot loads only into a sandbox whose plan has the same.
pub(crate) fn plan_fingerprint(plan: &sandbox_core::Plan) -> [u8; 32] {
    let v = serde_json::json!({
        "mounts": plan.mounts,
        "tmpfs": plan.tmpfs,
        "limits": plan.limits,
        "network": plan.network,
        "image": plan.image,
        "root": plan.root,
        "hostname": plan.hostname,
        "seccomp": plan.seccomp_action,
        "landlock": plan.landlock,
        "env": plan.env,
        "cwd": plan.cwd,
    });
    let mut h = Sha256::new();
    h.update(v.to_string().as_bytes());
    h.finalize().into()
}

/// The header's fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) abi: String,
    pub(crate) mem_size: u64,
    pub(crate) state_off: u64,
    pub(crate) state_len: u64,
    pub(crate) state_crc: u32,
    pub(crate) runs_off: u64,
    pub(crate) runs_len: u64,
    pub(crate) runs_crc: u32,
    pub(crate) mem_crc: u32,
    pub(crate) plan: [u8; 32],
    pub(crate) next_id: u32,
}

impl Header {
    fn encode(&self) -> Vec<u8> {
        let mut b = vec![0u8; HEADER as usize];
        b[..8].copy_from_slice(MAGIC);
        b[8..12].copy_from_slice(&FORMAT.to_le_bytes());
        let abi = self.abi.as_bytes();
        let n = abi.len().min(64);
        b[16..16 + n].copy_from_slice(&abi[..n]);
        let mut at = 80;
        for v in [
            self.mem_size,
            self.state_off,
            self.state_len,
            self.runs_off,
            self.runs_len,
        ] {
            b[at..at + 8].copy_from_slice(&v.to_le_bytes());
            at += 8;
        }
        for v in [self.state_crc, self.runs_crc, self.mem_crc, self.next_id] {
            b[at..at + 4].copy_from_slice(&v.to_le_bytes());
            at += 4;
        }
        b[at..at + 32].copy_from_slice(&self.plan);
        let crc = crc32fast::hash(&b[16..]);
        b[12..16].copy_from_slice(&crc.to_le_bytes());
        b
    }

    fn decode(b: &[u8]) -> Result<Header, String> {
        if b.len() < 16 || &b[..8] != MAGIC {
            return Err("not a snapshot file (its first bytes are not \"HSBSNAP\")".into());
        }
        let format = u32::from_le_bytes([b[8], b[9], b[10], b[11]]);
        if format != FORMAT {
            return Err(format!(
                "format version {format}, but this build reads version {FORMAT} (saved by another version of hybrid-sandbox)"
            ));
        }
        if b.len() < HEADER as usize {
            return Err(format!(
                "truncated: {} bytes, shorter than its header",
                b.len()
            ));
        }
        let crc = u32::from_le_bytes([b[12], b[13], b[14], b[15]]);
        if crc32fast::hash(&b[16..HEADER as usize]) != crc {
            return Err("corrupt: its header's checksum does not match".into());
        }
        let abi_raw = &b[16..80];
        let end = abi_raw.iter().position(|&c| c == 0).unwrap_or(64);
        let abi = String::from_utf8_lossy(&abi_raw[..end]).into_owned();
        let u64_at = |at: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[at..at + 8]);
            u64::from_le_bytes(a)
        };
        let u32_at = |at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        let mut plan = [0u8; 32];
        plan.copy_from_slice(&b[136..168]);
        Ok(Header {
            abi,
            mem_size: u64_at(80),
            state_off: u64_at(88),
            state_len: u64_at(96),
            runs_off: u64_at(104),
            runs_len: u64_at(112),
            state_crc: u32_at(120),
            runs_crc: u32_at(124),
            mem_crc: u32_at(128),
            next_id: u32_at(132),
            plan,
        })
    }
}

/// A snapshot file checked and ready to start sandboxes from.
#[derive(Debug)]
pub(crate) struct Loaded {
    /// The file, open for reading (its memory part is mapped from it).
    pub(crate) file: std::sync::Arc<OwnedFd>,
    pub(crate) header: Header,
    /// The personality state (checked against its CRC; read on each start).
    pub(crate) state: Vec<u8>,
    /// Bytes of guest memory in its data runs.
    pub(crate) runs_bytes: u64,
}

/// Writes a snapshot file at `path` (through a temporary name beside it, renamed
/// once complete: a failed save leaves nothing): guest memory read from `ram` (the
/// snapshot's own private mapping), `state` the encoded personality. Returns the
/// bytes of guest memory written.
pub(crate) fn write(
    path: &Path,
    ram: &vm_memory::GuestMemoryMmap,
    (mem_size, used): (u64, u64),
    state: &[u8],
    plan: [u8; 32],
    next_id: u32,
) -> std::io::Result<u64> {
    use vm_memory::{GuestAddress, GuestMemoryBackend};
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file name"))?;
    let tmp = dir.join(format!(
        ".{}.{}.partial",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        use std::os::unix::fs::{FileExt, OpenOptionsExt};
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC)
            .open(&tmp)?;
        let base = ram
            .get_host_address(GuestAddress(0))
            .map_err(std::io::Error::other)?;
        // SAFETY: `ram` maps `mem_size` bytes from guest address 0 (one region); the
        // snapshot's guest does not run (it is a snapshot): nothing writes them while
        // they are read here.
        let mem = unsafe { std::slice::from_raw_parts(base.cast_const(), mem_size as usize) };
        let mut runs: Vec<(u64, u64)> = Vec::new();
        let mut crc = crc32fast::Hasher::new();
        let mut written = 0u64;
        // Frames past `used` were never handed out: zero, holes.
        let used = used.min(mem_size);
        let mut at = 0u64;
        while at < used {
            let page = &mem[at as usize..(at + PAGE) as usize];
            if page.iter().all(|&b| b == 0) {
                at += PAGE;
                continue;
            }
            let start = at;
            while at < used
                && mem[at as usize..(at + PAGE) as usize]
                    .iter()
                    .any(|&b| b != 0)
            {
                at += PAGE;
            }
            let data = &mem[start as usize..at as usize];
            f.write_all_at(data, HEADER + start)?;
            crc.update(data);
            written += at - start;
            runs.push((start, at - start));
        }
        let state_off = HEADER + mem_size;
        f.write_all_at(state, state_off)?;
        let mut table = Vec::with_capacity(runs.len() * 16);
        for (s, l) in &runs {
            table.extend_from_slice(&s.to_le_bytes());
            table.extend_from_slice(&l.to_le_bytes());
        }
        let runs_off = state_off + state.len() as u64;
        f.write_all_at(&table, runs_off)?;
        let h = Header {
            abi: abi(),
            mem_size,
            state_off,
            state_len: state.len() as u64,
            state_crc: crc32fast::hash(state),
            runs_off,
            runs_len: table.len() as u64,
            runs_crc: crc32fast::hash(&table),
            mem_crc: crc.finalize(),
            plan,
            next_id,
        };
        f.set_len(runs_off + table.len() as u64)?;
        f.seek(SeekFrom::Start(0))?;
        f.write_all(&h.encode())?;
        f.sync_data()?;
        std::fs::rename(&tmp, path)?;
        Ok(written)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Opens and checks a snapshot file (see the module's doc); the error says what is
/// wrong with it, in words.
pub(crate) fn read(path: &Path) -> Result<Loaded, String> {
    use std::os::unix::fs::{FileExt, OpenOptionsExt};
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| format!("cannot open it: {e}"))?;
    let len = f.metadata().map_err(|e| e.to_string())?.len();
    let mut head = vec![0u8; HEADER.min(len) as usize];
    f.read_exact(&mut head).map_err(|e| e.to_string())?;
    let h = Header::decode(&head)?;
    if h.abi != abi() {
        return Err(format!(
            "saved by another build (its state is \"{}\", this build's \"{}\"): load it with the build that saved it",
            h.abi,
            abi()
        ));
    }
    let bad = |what: &str| format!("corrupt: {what}");
    if h.mem_size == 0 || h.mem_size % PAGE != 0 || h.mem_size > 1 << 40 {
        return Err(bad("its guest memory size is not a whole number of pages"));
    }
    let end = |off: u64, n: u64| off.checked_add(n);
    let state_end = end(h.state_off, h.state_len);
    let runs_end = end(h.runs_off, h.runs_len);
    if h.state_off != HEADER + h.mem_size || state_end != Some(h.runs_off) || h.runs_len % 16 != 0 {
        return Err(bad("its sections are not where its header says"));
    }
    match runs_end {
        Some(e) if e == len => {}
        Some(e) if e > len => {
            return Err(format!("truncated: {len} bytes, its header says {e}"));
        }
        _ => return Err(bad("it is longer than its header says")),
    }
    if h.state_len > 1 << 32 {
        return Err(bad("its state is too large"));
    }
    let mut state = vec![0u8; h.state_len as usize];
    f.read_exact_at(&mut state, h.state_off)
        .map_err(|e| e.to_string())?;
    if crc32fast::hash(&state) != h.state_crc {
        return Err(bad("its state's checksum does not match"));
    }
    let mut table = vec![0u8; h.runs_len as usize];
    f.read_exact_at(&mut table, h.runs_off)
        .map_err(|e| e.to_string())?;
    if crc32fast::hash(&table) != h.runs_crc {
        return Err(bad("its memory table's checksum does not match"));
    }
    // The memory's data: every run inside guest memory, in order, and its bytes
    // those the checksum covers.
    let mut crc = crc32fast::Hasher::new();
    let mut last = 0u64;
    let mut runs_bytes = 0u64;
    let mut buf = Vec::new();
    for r in table.chunks_exact(16) {
        let mut a = [0u8; 8];
        a.copy_from_slice(&r[..8]);
        let s = u64::from_le_bytes(a);
        a.copy_from_slice(&r[8..]);
        let l = u64::from_le_bytes(a);
        if s < last
            || s % PAGE != 0
            || l % PAGE != 0
            || l == 0
            || end(s, l).is_none_or(|e| e > h.mem_size)
        {
            return Err(bad("its memory table names memory out of bounds"));
        }
        last = s + l;
        runs_bytes += l;
        let mut off = 0;
        while off < l {
            let n = (l - off).min(8 << 20);
            buf.resize(n as usize, 0);
            f.read_exact_at(&mut buf, HEADER + s + off)
                .map_err(|e| e.to_string())?;
            crc.update(&buf);
            off += n;
        }
    }
    if crc.finalize() != h.mem_crc {
        return Err(bad("its guest memory's checksum does not match"));
    }
    let _ = f.seek(SeekFrom::Start(0));
    Ok(Loaded {
        file: std::sync::Arc::new(OwnedFd::from(f)),
        header: h,
        state,
        runs_bytes,
    })
}

impl Loaded {
    /// The memory file as a snapshot layer: the whole RAM, from the header on.
    pub(crate) fn layer(&self) -> crate::memory::Layer {
        crate::memory::Layer {
            fd: std::sync::Arc::clone(&self.file),
            whole: true,
            runs: Vec::new(),
            base: HEADER,
        }
    }

    /// Bytes of guest memory the file holds (its data runs).
    pub(crate) fn data_bytes(&self) -> u64 {
        self.runs_bytes
    }
}
