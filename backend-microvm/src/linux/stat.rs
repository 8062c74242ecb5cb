//! `struct stat` and `struct statx` as x86-64 Linux lays them out.

use crate::vfs::Meta;

/// `struct stat` (144 bytes).
pub(crate) fn encode_stat(m: &Meta) -> Vec<u8> {
    let mut b = Vec::with_capacity(144);
    b.extend_from_slice(&m.dev.to_le_bytes());
    b.extend_from_slice(&m.ino.to_le_bytes());
    b.extend_from_slice(&m.nlink.to_le_bytes());
    b.extend_from_slice(&m.mode.to_le_bytes());
    b.extend_from_slice(&m.uid.to_le_bytes());
    b.extend_from_slice(&m.gid.to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes());
    b.extend_from_slice(&m.rdev.to_le_bytes());
    b.extend_from_slice(&m.size.to_le_bytes());
    b.extend_from_slice(&m.blksize.to_le_bytes());
    b.extend_from_slice(&m.blocks.to_le_bytes());
    for t in [m.atime, m.mtime, m.ctime] {
        b.extend_from_slice(&t.sec.to_le_bytes());
        b.extend_from_slice(&t.nsec.to_le_bytes());
    }
    b.resize(144, 0);
    b
}

/// `struct statx` (256 bytes), every basic field filled.
pub(crate) fn encode_statx(m: &Meta) -> Vec<u8> {
    let mut b = Vec::with_capacity(256);
    b.extend_from_slice(&0x7ffu32.to_le_bytes()); // STATX_BASIC_STATS
    b.extend_from_slice(&(m.blksize as u32).to_le_bytes());
    b.extend_from_slice(&0u64.to_le_bytes()); // attributes
    b.extend_from_slice(&(m.nlink as u32).to_le_bytes());
    b.extend_from_slice(&m.uid.to_le_bytes());
    b.extend_from_slice(&m.gid.to_le_bytes());
    b.extend_from_slice(&(m.mode as u16).to_le_bytes());
    b.extend_from_slice(&0u16.to_le_bytes());
    b.extend_from_slice(&m.ino.to_le_bytes());
    b.extend_from_slice(&m.size.to_le_bytes());
    b.extend_from_slice(&m.blocks.to_le_bytes());
    b.extend_from_slice(&0u64.to_le_bytes()); // attributes_mask
    for t in [m.atime, m.ctime, m.ctime, m.mtime] {
        // atime, btime (ctime stands in), ctime, mtime
        b.extend_from_slice(&t.sec.to_le_bytes());
        b.extend_from_slice(&(t.nsec as u32).to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
    }
    let major = |d: u64| (((d >> 8) & 0xfff) | ((d >> 32) & !0xfff)) as u32;
    let minor = |d: u64| ((d & 0xff) | ((d >> 12) & !0xff)) as u32;
    b.extend_from_slice(&major(m.rdev).to_le_bytes());
    b.extend_from_slice(&minor(m.rdev).to_le_bytes());
    b.extend_from_slice(&major(m.dev).to_le_bytes());
    b.extend_from_slice(&minor(m.dev).to_le_bytes());
    b.resize(256, 0);
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_matches_the_host_layout() {
        let st = std::fs::metadata("/").unwrap();
        // SAFETY: zeroed stat is valid; fstatat fills it.
        let mut host: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: valid path and buffer.
        assert_eq!(unsafe { libc::stat(c"/".as_ptr(), &mut host) }, 0);
        let m = Meta::from_host(&host);
        let enc = encode_stat(&m);
        assert_eq!(enc.len(), std::mem::size_of::<libc::stat>());
        // SAFETY: `host` is plain old data of exactly this size.
        let raw = unsafe {
            std::slice::from_raw_parts((&host as *const libc::stat).cast::<u8>(), enc.len())
        };
        assert_eq!(enc, raw);
        let _ = st;
        assert_eq!(encode_statx(&m).len(), 256);
    }
}
