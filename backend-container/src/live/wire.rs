//! What the host and a live sandbox's init (and its file server) say to each other.
//!
//! Every message is a fixed-size record on a `SOCK_SEQPACKET` socket, descriptors riding
//! along as `SCM_RIGHTS`; variable-length data (an exec's argv and environment) travels
//! in a memfd that the exec's process maps. The sandbox's side decodes records with no
//! allocation (it is a fork of a possibly multithreaded caller: see `child.rs`).

/// A control record, host to init or init to host.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Msg {
    pub(crate) kind: u32,
    pub(crate) a: u32,
    pub(crate) id: u64,
    pub(crate) b: u64,
    pub(crate) c: u64,
}

impl Msg {
    pub(crate) const SIZE: usize = 32;

    pub(crate) fn to_bytes(self) -> [u8; Self::SIZE] {
        let mut out = [0u8; Self::SIZE];
        out[0..4].copy_from_slice(&self.kind.to_le_bytes());
        out[4..8].copy_from_slice(&self.a.to_le_bytes());
        out[8..16].copy_from_slice(&self.id.to_le_bytes());
        out[16..24].copy_from_slice(&self.b.to_le_bytes());
        out[24..32].copy_from_slice(&self.c.to_le_bytes());
        out
    }

    pub(crate) fn from_bytes(b: &[u8; Self::SIZE]) -> Msg {
        Msg {
            kind: u32_at(b, 0),
            a: u32_at(b, 4),
            id: u64_at(b, 8),
            b: u64_at(b, 16),
            c: u64_at(b, 24),
        }
    }
}

pub(crate) fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(w)
}

pub(crate) fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

/// Host to init: start an exec. `a`: [`EXEC_STDIN`] | [`EXEC_TTY`] | [`EXEC_CGROUP`].
/// Descriptors: the exec's memfd, its channel, then stdin (with `EXEC_STDIN`), stdout
/// and stderr (without `EXEC_TTY`), then the exec's own `cgroup.procs` (with
/// `EXEC_CGROUP`), which its process joins before anything else.
pub(crate) const MSG_EXEC: u32 = 1;
/// Host to init: send signal `a` to exec `id` (`b` = 1: to its whole process group).
pub(crate) const MSG_SIGNAL: u32 = 2;
/// Host to init: start a file server on the one descriptor passed.
pub(crate) const MSG_FILES: u32 = 3;
/// Init to host: exec `id` ended with wait status `a`, `b` µs of CPU, `c` KiB peak RSS.
pub(crate) const MSG_EXITED: u32 = 16;

pub(crate) const EXEC_STDIN: u32 = 1;
pub(crate) const EXEC_TTY: u32 = 2;
pub(crate) const EXEC_CGROUP: u32 = 4;

/// The id init reports its file server under.
pub(crate) const FILES_ID: u64 = u64::MAX;

/// The most execs (file server included) one sandbox runs at once.
pub(crate) const MAX_EXECS: usize = 512;

/// On an exec's channel: the pty master rides along (a failure is a 12-byte
/// [`crate::child::ErrorRecord`] instead).
pub(crate) const CHAN_PTY: u8 = 2;

/// The head of an exec's memfd. Then NUL-terminated strings: cwd, `ncand` program
/// candidates, `argc` arguments, `envc` variables; then room for the argv and envp
/// pointer arrays, which the exec's process fills in its private mapping.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ExecHeader {
    pub(crate) ncand: u32,
    pub(crate) argc: u32,
    pub(crate) envc: u32,
    pub(crate) rows: u16,
    pub(crate) cols: u16,
    /// RLIMIT_CPU soft and hard seconds, or `u64::MAX` for none.
    pub(crate) cpu_soft: u64,
    pub(crate) cpu_hard: u64,
    pub(crate) strings_len: u32,
    /// Offset of the pointer area (8-aligned).
    pub(crate) ptrs_off: u32,
    /// Size of the whole memfd.
    pub(crate) total: u32,
}

pub(crate) const EXEC_MAGIC: u32 = 0x4853_4245;

impl ExecHeader {
    pub(crate) const SIZE: usize = 48;

    pub(crate) fn to_bytes(self) -> [u8; Self::SIZE] {
        let mut o = [0u8; Self::SIZE];
        o[0..4].copy_from_slice(&EXEC_MAGIC.to_le_bytes());
        o[4..8].copy_from_slice(&self.ncand.to_le_bytes());
        o[8..12].copy_from_slice(&self.argc.to_le_bytes());
        o[12..16].copy_from_slice(&self.envc.to_le_bytes());
        o[16..18].copy_from_slice(&self.rows.to_le_bytes());
        o[18..20].copy_from_slice(&self.cols.to_le_bytes());
        o[20..28].copy_from_slice(&self.cpu_soft.to_le_bytes());
        o[28..36].copy_from_slice(&self.cpu_hard.to_le_bytes());
        o[36..40].copy_from_slice(&self.strings_len.to_le_bytes());
        o[40..44].copy_from_slice(&self.ptrs_off.to_le_bytes());
        o[44..48].copy_from_slice(&self.total.to_le_bytes());
        o
    }

    /// Decodes and checks that every part lies inside `len` bytes.
    pub(crate) fn parse(b: &[u8]) -> Option<ExecHeader> {
        if b.len() < Self::SIZE || u32_at(b, 0) != EXEC_MAGIC {
            return None;
        }
        let h = ExecHeader {
            ncand: u32_at(b, 4),
            argc: u32_at(b, 8),
            envc: u32_at(b, 12),
            rows: u16::from_le_bytes([b[16], b[17]]),
            cols: u16::from_le_bytes([b[18], b[19]]),
            cpu_soft: u64_at(b, 20),
            cpu_hard: u64_at(b, 28),
            strings_len: u32_at(b, 36),
            ptrs_off: u32_at(b, 40),
            total: u32_at(b, 44),
        };
        let strings_end = (Self::SIZE as u64).checked_add(h.strings_len as u64)?;
        let ptrs = (h.argc as u64 + 1 + h.envc as u64 + 1) * 8;
        let ok = h.total as usize == b.len()
            && strings_end <= h.ptrs_off as u64
            && h.ptrs_off % 8 == 0
            && h.ptrs_off as u64 + ptrs <= h.total as u64;
        ok.then_some(h)
    }

    /// The strings block of a mapped memfd.
    pub(crate) fn strings<'a>(&self, b: &'a [u8]) -> &'a [u8] {
        &b[Self::SIZE..Self::SIZE + self.strings_len as usize]
    }
}

/// Iterates over NUL-terminated strings of a block, without allocating.
#[derive(Debug)]
pub(crate) struct CStrs<'a> {
    rest: &'a [u8],
}

impl<'a> CStrs<'a> {
    pub(crate) fn new(block: &'a [u8]) -> Self {
        CStrs { rest: block }
    }
}

impl<'a> Iterator for CStrs<'a> {
    type Item = &'a std::ffi::CStr;
    fn next(&mut self) -> Option<Self::Item> {
        let end = self.rest.iter().position(|&c| c == 0)?;
        let (s, rest) = self.rest.split_at(end + 1);
        self.rest = rest;
        std::ffi::CStr::from_bytes_with_nul(s).ok()
    }
}

/// Encodes an exec's memfd contents (host side).
pub(crate) fn encode_exec(
    cwd: &[u8],
    candidates: &[Vec<u8>],
    argv: &[Vec<u8>],
    env: &[Vec<u8>],
    tty: Option<(u16, u16)>,
    cpu: Option<(u64, u64)>,
) -> Vec<u8> {
    let mut strings = Vec::new();
    for s in std::iter::once(cwd)
        .chain(candidates.iter().map(Vec::as_slice))
        .chain(argv.iter().map(Vec::as_slice))
        .chain(env.iter().map(Vec::as_slice))
    {
        strings.extend_from_slice(s);
        strings.push(0);
    }
    let ptrs_off = (ExecHeader::SIZE + strings.len()).next_multiple_of(8);
    let total = ptrs_off + (argv.len() + env.len() + 2) * 8;
    let (rows, cols) = tty.unwrap_or((0, 0));
    let (cpu_soft, cpu_hard) = cpu.unwrap_or((u64::MAX, u64::MAX));
    let h = ExecHeader {
        ncand: candidates.len() as u32,
        argc: argv.len() as u32,
        envc: env.len() as u32,
        rows,
        cols,
        cpu_soft,
        cpu_hard,
        strings_len: strings.len() as u32,
        ptrs_off: ptrs_off as u32,
        total: total as u32,
    };
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&h.to_bytes());
    out.extend_from_slice(&strings);
    out.resize(total, 0);
    out
}

/// A file-server request: op, flags, mode, then two NUL-terminated paths.
pub(crate) const FS_REQ_MAX: usize = 16 + 2 * 4097;

pub(crate) const FS_OPEN_READ: u32 = 1;
pub(crate) const FS_OPEN_WRITE: u32 = 2;
pub(crate) const FS_STAT: u32 = 3;
pub(crate) const FS_LIST: u32 = 4;
pub(crate) const FS_MKDIR: u32 = 5;
pub(crate) const FS_REMOVE: u32 = 6;
pub(crate) const FS_RENAME: u32 = 7;
pub(crate) const FS_STATFS: u32 = 8;
/// Request flag: `mkdir` with parents, `remove` recursively.
pub(crate) const FS_FLAG_DEEP: u32 = 1;

/// A file-server reply: errno (0: success), then a stat, then a symlink's target.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct FsReply {
    pub(crate) errno: i32,
    /// `S_IFMT` bits and permissions.
    pub(crate) mode: u32,
    pub(crate) size: u64,
    pub(crate) mtime: i64,
    /// Bytes of link target that follow (stat), or records written (list), or
    /// bytes used (statfs).
    pub(crate) extra: u64,
}

impl FsReply {
    pub(crate) const SIZE: usize = 32;
    /// A reply and a symlink target of up to PATH_MAX.
    pub(crate) const MAX: usize = Self::SIZE + 4096;

    pub(crate) fn to_bytes(self) -> [u8; Self::SIZE] {
        let mut o = [0u8; Self::SIZE];
        o[0..4].copy_from_slice(&self.errno.to_le_bytes());
        o[4..8].copy_from_slice(&self.mode.to_le_bytes());
        o[8..16].copy_from_slice(&self.size.to_le_bytes());
        o[16..24].copy_from_slice(&self.mtime.to_le_bytes());
        o[24..32].copy_from_slice(&self.extra.to_le_bytes());
        o
    }

    pub(crate) fn from_bytes(b: &[u8]) -> Option<FsReply> {
        (b.len() >= Self::SIZE).then(|| FsReply {
            errno: u32_at(b, 0) as i32,
            mode: u32_at(b, 4),
            size: u64_at(b, 8),
            mtime: u64_at(b, 16) as i64,
            extra: u64_at(b, 24),
        })
    }
}

/// One directory entry in a listing memfd: this head, then the name, then the link
/// target.
pub(crate) const ENTRY_HEAD: usize = 32;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_memfd_round_trip() {
        let v = encode_exec(
            b"/tmp",
            &[b"/bin/sh".to_vec()],
            &[b"sh".to_vec(), b"-c".to_vec(), b"true".to_vec()],
            &[b"A=1".to_vec()],
            Some((24, 80)),
            None,
        );
        let h = ExecHeader::parse(&v).unwrap();
        assert_eq!((h.ncand, h.argc, h.envc, h.rows, h.cols), (1, 3, 1, 24, 80));
        let all: Vec<_> = CStrs::new(h.strings(&v)).map(|c| c.to_bytes()).collect();
        assert_eq!(
            all,
            [&b"/tmp"[..], b"/bin/sh", b"sh", b"-c", b"true", b"A=1"]
        );
        // Truncated or inconsistent memfds are refused.
        assert!(ExecHeader::parse(&v[..v.len() - 1]).is_none());
        let m = Msg {
            kind: 1,
            a: 2,
            id: 3,
            b: 4,
            c: 5,
        };
        assert_eq!(Msg::from_bytes(&m.to_bytes()), m);
    }
}
