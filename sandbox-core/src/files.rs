//! Host files the backends and the server write for snapshots: a new file put in place
//! only once complete, unnamed files that vanish with their last descriptor, and the
//! data extents of a sparse file.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;

/// Writes a new file at `path` with `write`, through a temporary name beside it
/// (mode 600) renamed over `path` once `write` succeeded: a failed write leaves
/// nothing, and an existing file is replaced only by a complete one.
pub fn write_replacing<T>(
    path: &Path,
    write: impl FnOnce(&File) -> std::io::Result<T>,
) -> std::io::Result<T> {
    use std::os::unix::fs::OpenOptionsExt;
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file name"))?;
    let tmp = path.with_file_name(format!(
        ".{}.{}.partial",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC)
            .open(&tmp)?;
        let out = write(&f)?;
        std::fs::rename(&tmp, path)?;
        Ok(out)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// An unnamed regular file in `dir`, open for reading and writing (`O_TMPFILE`, mode
/// 600): gone when its last descriptor closes, even after `kill -9`.
pub fn unnamed_file(dir: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_TMPFILE | libc::O_CLOEXEC)
        .open(dir)
}

/// The next byte at or after `at` (before `end`) of `f` that holds data (`SEEK_DATA`),
/// and the end of that data (`SEEK_HOLE`), clamped to `end`; `None`: only holes. A
/// file system without `SEEK_DATA` gives the whole rest (holes read as zero).
pub fn data_extent(f: &impl AsRawFd, at: u64, end: u64) -> Option<(u64, u64)> {
    if at >= end {
        return None;
    }
    let fd = f.as_raw_fd();
    // SAFETY: lseek on a descriptor the caller holds open; it moves no memory.
    let d = unsafe { libc::lseek(fd, at as libc::off_t, libc::SEEK_DATA) };
    if d < 0 {
        // ENXIO: no data past `at`; any other error: read it all (holes read as zero).
        return match std::io::Error::last_os_error().raw_os_error() {
            Some(libc::ENXIO) => None,
            _ => Some((at, end)),
        };
    }
    let d = d as u64;
    if d >= end {
        return None;
    }
    // SAFETY: as above.
    let h = unsafe { libc::lseek(fd, d as libc::off_t, libc::SEEK_HOLE) };
    let h = if h < 0 { end } else { (h as u64).min(end) };
    Some((d, h))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    #[test]
    fn replacing_leaves_the_old_file_when_the_write_fails() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        std::fs::write(&p, "old").unwrap();
        let e = write_replacing(&p, |f| {
            f.write_all_at(b"new", 0)?;
            Err::<(), _>(std::io::Error::other("failed"))
        });
        assert!(e.is_err());
        assert_eq!(std::fs::read(&p).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
        write_replacing(&p, |f| f.write_all_at(b"new", 0)).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"new");
    }

    #[test]
    fn extents_of_a_sparse_unnamed_file() {
        let d = tempfile::tempdir().unwrap();
        let f = unnamed_file(d.path()).unwrap();
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 0);
        f.write_all_at(&[1; 4096], 1 << 20).unwrap();
        f.set_len(4 << 20).unwrap();
        let (s, e) = data_extent(&f, 0, 4 << 20).unwrap();
        assert!(s <= 1 << 20 && e >= (1 << 20) + 4096, "{s} {e}");
        assert_eq!(data_extent(&f, e, 4 << 20), None);
    }
}
