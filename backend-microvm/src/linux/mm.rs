//! Memory calls: `brk`, `mmap` (anonymous and private file mappings), `munmap`,
//! `mprotect` with real page rights, `mremap`, `madvise`, `mincore`.

use std::rc::Rc;

use super::fd::FileKind;
use super::{Kernel, Stop, SysErr, SysResult};
use crate::errno;
use crate::guest::layout::PAGE_SIZE;
use crate::mm::{Backing, Fixed, VmaKind, PROT_EXEC, PROT_READ, PROT_WRITE};
use crate::vfs::backing::{GenBacking, HostBacking, TmpBacking};
use crate::vfs::DevKind;

const PROT_ALL: u64 = (PROT_READ | PROT_WRITE | PROT_EXEC) as u64;
const PROT_GROWS: u64 = (libc::PROT_GROWSDOWN | libc::PROT_GROWSUP) as u64;

impl Kernel {
    pub(crate) fn sys_brk(&mut self, addr: u64) -> SysResult {
        // Overcommit, as Linux: running out later ends the run at the fault.
        Ok(self.mm.set_brk(addr).unwrap_or_else(|_| self.mm.brk()))
    }

    pub(crate) fn sys_mmap(&mut self, a: [u64; 6]) -> SysResult {
        let [addr, len, prot, flags, fd, off] = a;
        let flags = flags as i32;
        if prot & !(PROT_ALL | PROT_GROWS) != 0 {
            return Err(errno::EINVAL.into());
        }
        let shared = match flags & libc::MAP_TYPE {
            libc::MAP_SHARED | libc::MAP_SHARED_VALIDATE => true,
            libc::MAP_PRIVATE => false,
            _ => return Err(errno::EINVAL.into()),
        };
        if flags & libc::MAP_HUGETLB != 0 {
            return Err(errno::EINVAL.into());
        }
        if len == 0 || off % PAGE_SIZE != 0 {
            return Err(errno::EINVAL.into());
        }
        let prot = (prot & PROT_ALL) as u32;
        let kind = if flags & libc::MAP_ANONYMOUS != 0 {
            if shared {
                VmaKind::SharedAnon
            } else {
                VmaKind::Anon
            }
        } else {
            let f = self.proc.files.get(fd)?;
            if !f.readable() {
                return Err(errno::EACCES.into());
            }
            if shared && prot & PROT_WRITE != 0 {
                if !f.writable() {
                    return Err(errno::EACCES.into());
                }
                // Writable shared file mappings would need write-back: not offered.
                return Err(errno::ENODEV.into());
            }
            let backing: Rc<dyn Backing> = match &f.kind {
                FileKind::Host(h) => Rc::new(HostBacking(
                    h.try_clone()
                        .map_err(|e| crate::errno::Errno::from_io(&e))?,
                )),
                FileKind::Tmp(t) => Rc::new(TmpBacking(Rc::clone(t))),
                FileKind::Gen(b) => Rc::new(GenBacking(Rc::clone(b))),
                FileKind::Dev(DevKind::Zero) => {
                    return self.map_anon(addr, len, prot, flags);
                }
                _ => return Err(errno::ENODEV.into()),
            };
            VmaKind::File {
                backing,
                offset: off,
                file_end: u64::MAX,
            }
        };
        if let VmaKind::Anon = kind {
            return self.map_anon(addr, len, prot, flags);
        }
        if let VmaKind::SharedAnon = kind {
            let start = self.mm.mmap(
                addr,
                len,
                prot,
                fixed(flags),
                flags & libc::MAP_32BIT != 0,
                kind,
            )?;
            self.populate_if(flags, start, len)?;
            return Ok(start);
        }
        let start = self.mm.mmap(
            addr,
            len,
            prot,
            fixed(flags),
            flags & libc::MAP_32BIT != 0,
            kind,
        )?;
        self.populate_if(flags, start, len)?;
        Ok(start)
    }

    fn map_anon(&mut self, addr: u64, len: u64, prot: u32, flags: i32) -> SysResult {
        let start = self.mm.mmap(
            addr,
            len,
            prot,
            fixed(flags),
            flags & libc::MAP_32BIT != 0,
            VmaKind::Anon,
        )?;
        self.populate_if(flags, start, len)?;
        Ok(start)
    }

    fn populate_if(&mut self, flags: i32, start: u64, len: u64) -> Result<(), SysErr> {
        if flags & libc::MAP_POPULATE != 0 {
            self.mm
                .populate(start, start.saturating_add(len))
                .map_err(|_| Stop::MemoryLimit)?;
        }
        Ok(())
    }

    pub(crate) fn sys_munmap(&mut self, addr: u64, len: u64) -> SysResult {
        self.mm.munmap(addr, len)?;
        Ok(0)
    }

    pub(crate) fn sys_mprotect(&mut self, addr: u64, len: u64, prot: u64) -> SysResult {
        if prot & !(PROT_ALL | PROT_GROWS) != 0 {
            return Err(errno::EINVAL.into());
        }
        self.mm.mprotect(addr, len, (prot & PROT_ALL) as u32)?;
        Ok(0)
    }

    pub(crate) fn sys_mremap(&mut self, a: [u64; 6]) -> SysResult {
        let [old, old_len, new_len, flags, _new_addr, _] = a;
        if flags & !(libc::MREMAP_MAYMOVE as u64) != 0 {
            // MREMAP_FIXED and MREMAP_DONTUNMAP are not offered.
            return Err(errno::EINVAL.into());
        }
        Ok(self.mm.mremap(old, old_len, new_len, flags != 0)?)
    }

    pub(crate) fn sys_madvise(&mut self, addr: u64, len: u64, advice: u64) -> SysResult {
        if addr % PAGE_SIZE != 0 {
            return Err(errno::EINVAL.into());
        }
        if len == 0 {
            return Ok(0);
        }
        match advice as i32 {
            libc::MADV_DONTNEED | libc::MADV_FREE => {
                self.mm.discard(addr, len)?;
                Ok(0)
            }
            libc::MADV_REMOVE | libc::MADV_HWPOISON => Err(errno::EINVAL.into()),
            _ => Ok(0),
        }
    }

    pub(crate) fn sys_mincore(&mut self, addr: u64, len: u64, vec: u64) -> SysResult {
        if addr % PAGE_SIZE != 0 {
            return Err(errno::EINVAL.into());
        }
        let pages = len.div_ceil(PAGE_SIZE);
        if pages > (1 << 24) {
            return Err(errno::ENOMEM.into());
        }
        let mut out = vec![0u8; pages as usize];
        for (i, b) in out.iter_mut().enumerate() {
            let va = addr.wrapping_add(i as u64 * PAGE_SIZE);
            if !self.mm.vmas().any(|(s, v)| s <= va && va < v.end) {
                return Err(errno::ENOMEM.into());
            }
            *b = 1;
        }
        self.mm.write_user(vec, &out)?;
        Ok(0)
    }
}

fn fixed(flags: i32) -> Fixed {
    if flags & libc::MAP_FIXED_NOREPLACE != 0 {
        Fixed::NoReplace
    } else if flags & libc::MAP_FIXED != 0 {
        Fixed::Replace
    } else {
        Fixed::Hint
    }
}
