//! File contents behind a mapping (`mmap`, an ELF segment): read on demand at page
//! faults.

use std::os::fd::AsRawFd;
use std::rc::Rc;

use super::host::{self, HostFd};
use super::ops::Opened;
use super::tmpfs::TmpInode;
use crate::memory::FileKey;
use crate::mm::Backing;

/// A host file's contents.
#[derive(Debug)]
pub(crate) struct HostBacking(pub(crate) HostFd);

impl Backing for HostBacking {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
        host::pread(self.0.as_raw_fd(), buf, offset)
            .map_err(|e| std::io::Error::from_raw_os_error(e.0))
    }

    /// One `preadv` straight into the frames (a fault window is up to 256 pages: a
    /// read per page cost a host syscall each), repeated while it reads part.
    fn read_pages_at(
        &self,
        offset: u64,
        pages: &[vm_memory::VolatileSlice<'_, ()>],
    ) -> std::io::Result<usize> {
        let guards: Vec<_> = pages.iter().map(|p| p.ptr_guard_mut()).collect();
        let mut iov: Vec<libc::iovec> = guards
            .iter()
            .zip(pages)
            .map(|(g, p)| libc::iovec {
                iov_base: g.as_ptr().cast(),
                iov_len: p.len(),
            })
            .collect();
        let (mut first, mut total) = (0usize, 0usize);
        while first < iov.len() {
            let cnt = (iov.len() - first).min(1024) as libc::c_int;
            let at = libc::off_t::try_from(offset.saturating_add(total as u64))
                .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
            // SAFETY: each iovec covers a page of the guest memory mapping, kept mapped
            // by `guards` for the call; the frames are held by the caller and mapped
            // nowhere yet, so nothing else reads or writes them meanwhile.
            let n = unsafe { libc::preadv(self.0.as_raw_fd(), iov[first..].as_ptr(), cnt, at) };
            let n = match n {
                n if n > 0 => n as usize,
                0 => break,
                _ => {
                    let e = std::io::Error::last_os_error();
                    if e.kind() == std::io::ErrorKind::Interrupted {
                        continue;
                    }
                    if total == 0 {
                        return Err(e);
                    }
                    break;
                }
            };
            total += n;
            // Past what was read: the rest of a partly read page, then the next ones.
            let mut left = n;
            while first < iov.len() && left >= iov[first].iov_len {
                left -= iov[first].iov_len;
                first += 1;
            }
            if first < iov.len() && left > 0 {
                // SAFETY: `left` < this iovec's length: the pointer stays in its page.
                iov[first].iov_base = unsafe { iov[first].iov_base.cast::<u8>().add(left) }.cast();
                iov[first].iov_len -= left;
            }
        }
        Ok(total)
    }

    /// Device, inode, size, mtime and ctime, asked of the host now: a file written
    /// since (by the sandbox or on the host) has another ctime, a file replaced another
    /// inode, so stale pages are never found again.
    fn copy(&self, m: &mut crate::snap::Memo) -> Result<Rc<dyn Backing>, crate::snap::SnapError> {
        Ok(Rc::new(HostBacking(self.0.snap_fd(m)?)))
    }

    fn saved(&self) -> Option<crate::mm::vma::SavedBacking<'_>> {
        Some(crate::mm::vma::SavedBacking::Host(&self.0))
    }

    fn cache_key(&self) -> Option<FileKey> {
        let m = host::fstat(self.0.as_raw_fd()).ok()?;
        (m.kind() == libc::S_IFREG).then_some(FileKey {
            dev: m.dev,
            ino: m.ino,
            size: m.size,
            mtime: (m.mtime.sec, m.mtime.nsec),
            ctime: (m.ctime.sec, m.ctime.nsec),
        })
    }
}

/// A tmpfs file's contents.
#[derive(Debug)]
pub(crate) struct TmpBacking(pub(crate) Rc<TmpInode>);

impl Backing for TmpBacking {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0
            .read_at(offset, buf)
            .map_err(|e| std::io::Error::from_raw_os_error(e.0))
    }

    fn copy(&self, m: &mut crate::snap::Memo) -> Result<Rc<dyn Backing>, crate::snap::SnapError> {
        Ok(Rc::new(TmpBacking(crate::snap::Snap::snap(&self.0, m)?)))
    }

    fn saved(&self) -> Option<crate::mm::vma::SavedBacking<'_>> {
        Some(crate::mm::vma::SavedBacking::Tmp(&self.0))
    }
}

/// A generated file's contents.
#[derive(Debug)]
pub(crate) struct GenBacking(pub(crate) Rc<[u8]>);

impl Backing for GenBacking {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(self.0.len());
        let n = buf.len().min(self.0.len() - start);
        buf[..n].copy_from_slice(&self.0[start..start + n]);
        Ok(n)
    }

    fn copy(&self, m: &mut crate::snap::Memo) -> Result<Rc<dyn Backing>, crate::snap::SnapError> {
        Ok(Rc::new(GenBacking(m.bytes(&self.0))))
    }

    fn saved(&self) -> Option<crate::mm::vma::SavedBacking<'_>> {
        Some(crate::mm::vma::SavedBacking::Gen(&self.0))
    }
}

impl Opened {
    /// The contents of what was opened, for mapping (regular files only).
    pub(crate) fn into_backing(self) -> Option<Rc<dyn Backing>> {
        match self {
            Opened::Host(fd) => Some(Rc::new(HostBacking(fd))),
            Opened::Tmp(t) if !t.is_dir() => Some(Rc::new(TmpBacking(t))),
            Opened::Gen(b) => Some(Rc::new(GenBacking(b))),
            _ => None,
        }
    }
}
