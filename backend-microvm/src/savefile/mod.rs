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
//! (else "truncated"), the CRC of the state and of the run table, and that every run
//! lies inside guest memory; the state is then read on the new sandbox's thread,
//! every length, count, frame, address and reference bounded (a crafted state is
//! refused, never trusted). Guest memory is not read into the process: the file's
//! memory part is mapped privately as guest RAM (pages come in from the page cache
//! when the guest touches them, copied only when it writes them; holes read as zero).
//!
//! **The memory's checksum** is checked by a thread of its own, started by the load,
//! while sandboxes already start and run from the file: reading every byte of guest
//! memory first would make a load cost as much as the memory is large. Guest memory
//! is the guest's own data (the VMM never trusts what it reads there), so a bad page
//! can mislead only the guest; when the check fails, every sandbox started from the
//! file is ended as failed, with the file named and the reason, and further starts
//! are refused (see [`MemCheck`]).
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
/// The version of the personality state's encoding (`linux::saved`; 2: the frames
/// after the supervisor's hold the trampolines of redirected syscall sites; 3: the
/// stub page holds the `warm` pass, which a sandbox started from the file may run;
/// 4: the trampolines moved up to the frame page, `layout::TRAMP_VA`; each mapping
/// carries its fork advice and lock, `mm::vma::{OnFork, Lock}`, and each address
/// space how its later mappings are locked; 5: a pending signal's `si_value` is 64
/// bits; 6: whether task ids wrapped around).
const STATE_VERSION: u32 = 6;
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
    /// The check of its guest memory against the checksum (see the module's doc).
    pub(crate) check: std::sync::Arc<MemCheck>,
}

/// Writes a snapshot file at `path` (through a temporary name beside it, renamed
/// once complete: a failed save leaves nothing): guest memory read from the
/// snapshot's memory files `layers` (`mem_size` bytes of RAM, of which frames past
/// `used` were never handed out), `state` the encoded personality. Returns the bytes
/// of guest memory written.
///
/// The file is not synced to the disk: it stands in for memory (a paused VM's, a
/// snapshot's), which a host crash loses too, and a file a crash cut short or left
/// with missing pages is refused by the load's checks (its length, its checksums).
pub(crate) fn write(
    path: &Path,
    layers: &[crate::memory::Layer],
    (mem_size, used): (u64, u64),
    state: &[u8],
    plan: [u8; 32],
    next_id: u32,
) -> std::io::Result<u64> {
    sandbox_core::files::write_replacing(path, |f| {
        write_file(f, layers, (mem_size, used), state, plan, next_id)
    })
}

/// Writes a snapshot file into `f` (empty, open for writing: a file the caller made,
/// such as an unnamed one), as [`write`] does at a path.
pub(crate) fn write_file(
    mut f: &std::fs::File,
    layers: &[crate::memory::Layer],
    (mem_size, used): (u64, u64),
    state: &[u8],
    plan: [u8; 32],
    next_id: u32,
) -> std::io::Result<u64> {
    use std::os::unix::fs::FileExt;
    // Frames past `used` were never handed out: zero, holes.
    let used = used.next_multiple_of(PAGE).min(mem_size);
    let (runs, written, mem_crc) = write_memory(f, layers, used)?;
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
        mem_crc,
        plan,
        next_id,
    };
    f.set_len(runs_off + table.len() as u64)?;
    f.seek(SeekFrom::Start(0))?;
    f.write_all(&h.encode())?;
    Ok(written)
}

/// Which memory file holds each page below `used`: the index in `layers` of the last
/// one that has it (a later layer's runs are over the earlier ones), by page.
fn page_owners(layers: &[crate::memory::Layer], used: u64) -> Vec<Option<u16>> {
    let pages = (used / PAGE) as usize;
    let mut owner = vec![None; pages];
    for (i, l) in layers.iter().enumerate() {
        let i = u16::try_from(i).ok();
        if l.whole {
            owner.iter_mut().for_each(|o| *o = i);
        }
        for &(gpa, len) in &l.runs {
            let from = ((gpa / PAGE) as usize).min(pages);
            let to = (gpa.saturating_add(len).div_ceil(PAGE) as usize).min(pages);
            owner[from..to].iter_mut().for_each(|o| *o = i);
        }
    }
    owner
}

/// What [`write_memory`] wrote: the data runs (guest address, length), their bytes
/// in all, and their CRC-32.
type Written = (Vec<(u64, u64)>, u64, u32);

/// A piece of guest memory read, for the writer: its bytes, the guest address of the
/// first, and its runs of pages not all zero (start, end within `buf`).
struct Piece {
    buf: Vec<u8>,
    gpa: u64,
    runs: Vec<(usize, usize)>,
}

/// Writes guest memory below `used` (read from the memory files `layers`, by
/// `pread`: mapping it would cost a page fault or a page-table entry per page) into
/// `f`, each page at `HEADER` plus its address; pages that read as zero are left as
/// holes. Two threads: this one writes while a reader reads the next pieces, finds
/// their zero pages and sums the checksum. Returns the data runs (address, length),
/// the bytes written and their CRC-32.
fn write_memory(
    f: &std::fs::File,
    layers: &[crate::memory::Layer],
    used: u64,
) -> std::io::Result<Written> {
    use std::os::unix::fs::FileExt;
    /// Pieces in flight between the reader and the writer.
    const BUFFERS: usize = 3;
    std::thread::scope(|scope| {
        let (full_tx, full_rx) = std::sync::mpsc::sync_channel::<Piece>(BUFFERS);
        let (free_tx, free_rx) = std::sync::mpsc::channel::<Vec<u8>>();
        for _ in 0..BUFFERS {
            let _ = free_tx.send(Vec::new());
        }
        let reader = scope.spawn(move || read_memory(layers, used, &full_tx, &free_rx));
        // The writer: on an error both channels go (dropped here), which ends the
        // reader too.
        let wrote = (move || -> std::io::Result<()> {
            for piece in full_rx {
                for &(s, e) in &piece.runs {
                    f.write_all_at(&piece.buf[s..e], HEADER + piece.gpa + s as u64)?;
                }
                let _ = free_tx.send(piece.buf);
            }
            Ok(())
        })();
        let read = reader
            .join()
            .map_err(|_| std::io::Error::other("the memory reader panicked"))?;
        wrote?;
        read
    })
}

/// The reader of [`write_memory`]: reads guest memory below `used` from `layers` in
/// pieces, into buffers from `free`, and sends each with its data runs to `full`.
fn read_memory(
    layers: &[crate::memory::Layer],
    used: u64,
    full: &std::sync::mpsc::SyncSender<Piece>,
    free: &std::sync::mpsc::Receiver<Vec<u8>>,
) -> std::io::Result<Written> {
    use std::os::unix::fs::FileExt;
    /// The most read and written in one call.
    const PIECE: u64 = 2 << 20;
    let gone = || std::io::Error::other("the snapshot file's writer stopped");
    let owner = page_owners(layers, used);
    let mut runs: Vec<(u64, u64)> = Vec::new();
    let mut crc = crc32fast::Hasher::new();
    let mut page = 0usize;
    while page < owner.len() {
        let Some(o) = owner[page] else {
            page += 1;
            continue;
        };
        let start = page;
        while page < owner.len() && owner[page] == Some(o) {
            page += 1;
        }
        // Guest memory [start, page) is in layer `o`.
        let layer = &layers[usize::from(o)];
        let src = std::fs::File::from(layer.fd.try_clone()?);
        let (gpa_from, gpa_to) = (start as u64 * PAGE, page as u64 * PAGE);
        let mut at = layer.base + gpa_from;
        let end = layer.base + gpa_to;
        while let Some((d, h)) = sandbox_core::files::data_extent(&src, at, end) {
            // Whole pages of guest memory around the data.
            let mut off = d - (d - layer.base) % PAGE;
            let h = (h - layer.base).next_multiple_of(PAGE) + layer.base;
            let h = h.min(end);
            while off < h {
                let n = (h - off).min(PIECE) as usize;
                let mut buf = free.recv().map_err(|_| gone())?;
                buf.resize(n, 0);
                src.read_exact_at(&mut buf, off)?;
                let gpa = off - layer.base;
                let mut piece_runs = Vec::new();
                let mut i = 0usize;
                while i < n {
                    if crate::memory::is_zero(&buf[i..i + PAGE as usize]) {
                        i += PAGE as usize;
                        continue;
                    }
                    let s = i;
                    i += PAGE as usize;
                    while i < n && !crate::memory::is_zero(&buf[i..i + PAGE as usize]) {
                        i += PAGE as usize;
                    }
                    crc.update(&buf[s..i]);
                    piece_runs.push((s, i));
                    let run_at = gpa + s as u64;
                    let len = (i - s) as u64;
                    match runs.last_mut() {
                        Some((rs, rl)) if *rs + *rl == run_at => *rl += len,
                        _ => runs.push((run_at, len)),
                    }
                }
                full.send(Piece {
                    buf,
                    gpa,
                    runs: piece_runs,
                })
                .map_err(|_| gone())?;
                off += n as u64;
            }
            at = h;
        }
    }
    let written = runs.iter().map(|r| r.1).sum();
    Ok((runs, written, crc.finalize()))
}

/// Checks the snapshot file open as `f` (see the module's doc; opened by the caller);
/// the error says what is wrong with it, in words. `name` names it in what the memory's
/// check reports.
pub(crate) fn read_file(mut f: std::fs::File, name: String) -> Result<Loaded, String> {
    use std::os::unix::fs::FileExt;
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
    // The memory's runs: every one inside guest memory, in order. Their bytes are
    // checked against the checksum by a thread of its own (see the module's doc).
    let mut last = 0u64;
    let mut runs_bytes = 0u64;
    let mut runs = Vec::with_capacity(table.len() / 16);
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
        runs.push((s, l));
    }
    let _ = f.seek(SeekFrom::Start(0));
    let file = std::sync::Arc::new(OwnedFd::from(f));
    let check = MemCheck::start(std::sync::Arc::clone(&file), runs, h.mem_crc, name)
        .map_err(|e| format!("cannot start checking its guest memory: {e}"))?;
    Ok(Loaded {
        file,
        header: h,
        state,
        runs_bytes,
        check,
    })
}

/// What fails when the memory check fails: a sandbox started from the file.
pub(crate) type OnBad = Box<dyn FnOnce(&str) + Send>;

/// The check of a loaded file's guest memory against its checksum, made by a thread
/// of its own while sandboxes start and run from the file (see the module's doc).
pub(crate) struct MemCheck {
    inner: std::sync::Mutex<CheckState>,
    done: std::sync::Condvar,
}

#[derive(Default)]
struct CheckState {
    /// `None` while checking; then the outcome (the error names the file).
    outcome: Option<Result<(), String>>,
    /// What to fail if the check fails: called once, with the error.
    watchers: Vec<OnBad>,
    /// The outcome is known and the watchers were called: [`MemCheck::wait`] returns.
    reported: bool,
}

impl std::fmt::Debug for MemCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = crate::sync::locked(&self.inner);
        f.debug_struct("MemCheck")
            .field("outcome", &s.outcome)
            .field("watchers", &s.watchers.len())
            .finish()
    }
}

impl MemCheck {
    /// Starts the check of `runs` of `file` (offsets from guest address 0) against
    /// `want`; `name` is the file's, for the error.
    fn start(
        file: std::sync::Arc<OwnedFd>,
        runs: Vec<(u64, u64)>,
        want: u32,
        name: String,
    ) -> std::io::Result<std::sync::Arc<MemCheck>> {
        let check = std::sync::Arc::new(MemCheck {
            inner: std::sync::Mutex::new(CheckState::default()),
            done: std::sync::Condvar::new(),
        });
        // Weak: when neither the loaded snapshot nor any sandbox started from it is
        // left, nobody waits for the outcome and the check stops.
        let c = std::sync::Arc::downgrade(&check);
        std::thread::Builder::new()
            .name("hsb-snapcheck".into())
            .spawn(move || {
                // Behind the sandboxes' own threads: they run meanwhile (best effort;
                // per thread on Linux).
                // SAFETY: gettid has no preconditions.
                let me = unsafe { libc::gettid() } as libc::id_t;
                // SAFETY: setpriority on this thread's own id; no memory is passed.
                let _ = unsafe { libc::setpriority(libc::PRIO_PROCESS, me, 10) };
                let wanted = || c.strong_count() > 0;
                let outcome = match memory_crc(&file, &runs, &wanted) {
                    Ok(None) => return,
                    Ok(Some(crc)) if crc == want => Ok(()),
                    Ok(_) => Err(format!(
                        "the snapshot file {name}: corrupt: its guest memory's checksum does not match"
                    )),
                    Err(e) => Err(format!(
                        "the snapshot file {name}: its guest memory could not be read: {e}"
                    )),
                };
                if let Some(c) = c.upgrade() {
                    c.finish(outcome);
                }
            })?;
        Ok(check)
    }

    fn finish(&self, outcome: Result<(), String>) {
        let watchers = {
            let mut s = crate::sync::locked(&self.inner);
            s.outcome = Some(outcome.clone());
            std::mem::take(&mut s.watchers)
        };
        if let Err(e) = outcome {
            for w in watchers {
                w(&e);
            }
        }
        crate::sync::locked(&self.inner).reported = true;
        self.done.notify_all();
    }

    /// Fails `on_bad` if the check fails later; an error at once if it failed
    /// already (the start is then refused). Nothing is kept once the check passed.
    pub(crate) fn watch(&self, on_bad: OnBad) -> Result<(), String> {
        let mut s = crate::sync::locked(&self.inner);
        match &s.outcome {
            Some(Err(e)) => Err(e.clone()),
            Some(Ok(())) => Ok(()),
            None => {
                s.watchers.push(on_bad);
                Ok(())
            }
        }
    }

    /// The check's outcome, if known yet.
    pub(crate) fn outcome(&self) -> Option<Result<(), String>> {
        crate::sync::locked(&self.inner).outcome.clone()
    }

    /// The check's outcome: waits until it is known.
    pub(crate) fn wait(&self) -> Result<(), String> {
        let mut s = crate::sync::locked(&self.inner);
        loop {
            if let (true, Some(o)) = (s.reported, &s.outcome) {
                return o.clone();
            }
            s = self
                .done
                .wait(s)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }
}

/// The CRC-32 of the file's memory `runs`, read in pieces (by `pread`: a file cut
/// short meanwhile is an error here, not a fault); `None` as soon as `wanted` says
/// nobody waits for it any more.
fn memory_crc(
    file: &OwnedFd,
    runs: &[(u64, u64)],
    wanted: &dyn Fn() -> bool,
) -> std::io::Result<Option<u32>> {
    use std::os::unix::fs::FileExt;
    const PIECE: u64 = 1 << 20;
    let file = std::fs::File::from(file.try_clone()?);
    let mut crc = crc32fast::Hasher::new();
    let mut buf = vec![0u8; PIECE as usize];
    for &(s, l) in runs {
        let mut off = 0;
        while off < l {
            if !wanted() {
                return Ok(None);
            }
            let n = (l - off).min(PIECE) as usize;
            file.read_exact_at(&mut buf[..n], HEADER + s + off)?;
            crc.update(&buf[..n]);
            off += n as u64;
        }
    }
    Ok(Some(crc.finalize()))
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
