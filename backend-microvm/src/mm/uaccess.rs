//! Reaching the workload's memory from the VMM, the way the kernel's `copy_from_user`
//! does: through the workload's page tables and rights, faulting pages in on the way.
//! A pointer that is not mapped for the access is `EFAULT`, never a VMM error.

use super::pagetable::{PTE_ADDR, PTE_P, PTE_U, PTE_W};
use super::{Access, AddressSpace, FaultOutcome};
use crate::guest::layout::{PAGE_SIZE, USER_TOP};

/// A user pointer that cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UserError {
    /// Not mapped for the access: `EFAULT`.
    Fault,
    /// Mapping it needed a frame and none is left.
    Oom,
}

/// A string argument that cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CStrError {
    /// See [`UserError`].
    User(UserError),
    /// No NUL within the limit (`ENAMETOOLONG` or `E2BIG`).
    TooLong,
}

impl From<UserError> for CStrError {
    fn from(e: UserError) -> Self {
        CStrError::User(e)
    }
}

impl AddressSpace {
    /// The guest-physical address of `va`, mapped for the access.
    fn user_page(&mut self, va: u64, write: bool) -> Result<u64, UserError> {
        if va >= USER_TOP {
            return Err(UserError::Fault);
        }
        let page = va & !(PAGE_SIZE - 1);
        for attempt in 0..2 {
            if let Some((_, pte)) = self.pt.lookup(&mut self.mem, page) {
                let ok = pte & (PTE_P | PTE_U) == PTE_P | PTE_U && (!write || pte & PTE_W != 0);
                if ok {
                    return Ok((pte & PTE_ADDR) | (va & (PAGE_SIZE - 1)));
                }
            }
            if attempt == 1 {
                break;
            }
            match self.fault(va, if write { Access::Write } else { Access::Read }) {
                FaultOutcome::Mapped => {}
                FaultOutcome::Oom => return Err(UserError::Oom),
                FaultOutcome::Segv(_) | FaultOutcome::Bus => return Err(UserError::Fault),
            }
        }
        Err(UserError::Fault)
    }

    /// The guest-physical pieces of `va .. va + len`, all mapped for the access.
    pub(crate) fn user_chunks(
        &mut self,
        va: u64,
        len: u64,
        write: bool,
    ) -> Result<Vec<(u64, u64)>, UserError> {
        let end = va.checked_add(len).ok_or(UserError::Fault)?;
        if end > USER_TOP {
            return Err(UserError::Fault);
        }
        let mut out = Vec::new();
        let mut at = va;
        while at < end {
            let n = (PAGE_SIZE - (at & (PAGE_SIZE - 1))).min(end - at);
            let gpa = self.user_page(at, write)?;
            match out.last_mut() {
                Some((g, l)) if *g + *l == gpa => *l += n,
                _ => out.push((gpa, n)),
            }
            at += n;
        }
        Ok(out)
    }

    /// Copies `buf.len()` bytes from the workload's `va`.
    pub(crate) fn read_user(&mut self, va: u64, buf: &mut [u8]) -> Result<(), UserError> {
        let mut off = 0usize;
        for (gpa, len) in self.user_chunks(va, buf.len() as u64, false)? {
            let len = len as usize;
            self.mem
                .read(gpa, &mut buf[off..off + len])
                .ok_or(UserError::Fault)?;
            off += len;
        }
        Ok(())
    }

    /// Reads `len` bytes from the workload's `va`.
    pub(crate) fn read_user_vec(&mut self, va: u64, len: usize) -> Result<Vec<u8>, UserError> {
        let mut v = vec![0u8; len];
        self.read_user(va, &mut v)?;
        Ok(v)
    }

    /// Copies `data` to the workload's `va`.
    pub(crate) fn write_user(&mut self, va: u64, data: &[u8]) -> Result<(), UserError> {
        let mut off = 0usize;
        for (gpa, len) in self.user_chunks(va, data.len() as u64, true)? {
            let len = len as usize;
            self.mem
                .write(gpa, &data[off..off + len])
                .ok_or(UserError::Fault)?;
            off += len;
        }
        Ok(())
    }

    /// Reads a NUL-terminated string of at most `max` bytes (NUL excluded).
    pub(crate) fn read_cstr(&mut self, va: u64, max: usize) -> Result<Vec<u8>, CStrError> {
        let mut out = Vec::new();
        let mut at = va;
        loop {
            let gpa = self.user_page(at, false)?;
            let n = (PAGE_SIZE - (at & (PAGE_SIZE - 1))) as usize;
            let mut chunk = vec![0u8; n];
            self.mem.read(gpa, &mut chunk).ok_or(UserError::Fault)?;
            if let Some(nul) = chunk.iter().position(|&b| b == 0) {
                out.extend_from_slice(&chunk[..nul]);
                if out.len() > max {
                    return Err(CStrError::TooLong);
                }
                return Ok(out);
            }
            out.extend_from_slice(&chunk);
            if out.len() > max {
                return Err(CStrError::TooLong);
            }
            at = at.checked_add(n as u64).ok_or(UserError::Fault)?;
        }
    }

    /// Reads a little-endian u64.
    pub(crate) fn read_u64(&mut self, va: u64) -> Result<u64, UserError> {
        let mut b = [0u8; 8];
        self.read_user(va, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    /// Reads a little-endian u32.
    pub(crate) fn read_u32(&mut self, va: u64) -> Result<u32, UserError> {
        let mut b = [0u8; 4];
        self.read_user(va, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    /// Writes a little-endian u64.
    pub(crate) fn write_u64(&mut self, va: u64, v: u64) -> Result<(), UserError> {
        self.write_user(va, &v.to_le_bytes())
    }

    /// Writes a little-endian u32.
    pub(crate) fn write_u32(&mut self, va: u64, v: u32) -> Result<(), UserError> {
        self.write_user(va, &v.to_le_bytes())
    }
}
