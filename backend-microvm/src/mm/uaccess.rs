//! Reaching the workload's memory from the VMM, the way the kernel's `copy_from_user`
//! does: through the workload's page tables and rights, faulting pages in on the way.
//! A pointer that is not mapped for the access is `EFAULT`, never a VMM error.

use std::marker::PhantomData;

use zerocopy::IntoBytes;

use super::pagetable::{PTE_ADDR, PTE_P, PTE_U, PTE_W};
use super::{Access, AddressSpace, FaultOutcome};
use crate::abi::Abi;
use crate::guest::layout::{PAGE_SIZE, USER_TOP};

/// The address of a `T` in the workload's memory, as a syscall argument names it.
/// Only an address: nothing is read until the kernel asks, and then only through the
/// checked accessors below.
pub(crate) struct UserPtr<T> {
    addr: u64,
    _t: PhantomData<fn() -> T>,
}

impl<T> UserPtr<T> {
    /// The pointer at `addr`.
    pub(crate) const fn new(addr: u64) -> Self {
        UserPtr {
            addr,
            _t: PhantomData,
        }
    }

    /// Its address.
    pub(crate) const fn addr(self) -> u64 {
        self.addr
    }

    /// NULL.
    pub(crate) const fn is_null(self) -> bool {
        self.addr == 0
    }
}

impl<T> Clone for UserPtr<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for UserPtr<T> {}

impl<T> std::fmt::Debug for UserPtr<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "UserPtr<{}>({:#x})",
            std::any::type_name::<T>(),
            self.addr
        )
    }
}

/// A user pointer that cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UserError {
    /// Not mapped for the access: `EFAULT`.
    Fault,
    /// Mapping it needed a frame and none is left.
    Oom,
}

/// An array argument that cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ArrayError {
    /// More elements than the call allows (each call says which errno that is).
    TooMany,
    /// See [`UserError`].
    User(UserError),
}

impl From<UserError> for ArrayError {
    fn from(e: UserError) -> Self {
        ArrayError::User(e)
    }
}

/// An extensible structure (`open_how`, `clone_args`...) that cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SizedError {
    /// Smaller than its first version: `EINVAL`.
    TooSmall,
    /// Larger than a page, or nonzero bytes beyond what the VMM knows: `E2BIG`.
    TooBig,
    /// See [`UserError`].
    User(UserError),
}

impl From<UserError> for SizedError {
    fn from(e: UserError) -> Self {
        SizedError::User(e)
    }
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
        for attempt in 0..2 {
            if let Some(gpa) = self.mapped_gpa(va, write) {
                return Ok(gpa);
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

    /// The guest-physical address of `va` if its page is mapped for the access now
    /// (no fault taken, no page-table entry changed).
    fn mapped_gpa(&mut self, va: u64, write: bool) -> Option<u64> {
        if va >= USER_TOP {
            return None;
        }
        let (_, pte) = self.pt.lookup(&mut self.mem, va & !(PAGE_SIZE - 1))?;
        let ok = pte & (PTE_P | PTE_U) == PTE_P | PTE_U && (!write || pte & PTE_W != 0);
        ok.then_some((pte & PTE_ADDR) | (va & (PAGE_SIZE - 1)))
    }

    /// Whether `va .. va + len` is mapped for the access now, without a fault to
    /// take (no page-table entry would change): what a fast call needs.
    pub(crate) fn user_mapped(&mut self, va: u64, len: u64, write: bool) -> bool {
        let Some(end) = va.checked_add(len) else {
            return false;
        };
        if end > USER_TOP {
            return false;
        }
        let mut page = va & !(PAGE_SIZE - 1);
        while page < end {
            if self.mapped_gpa(page, write).is_none() {
                return false;
            }
            page += PAGE_SIZE;
        }
        true
    }

    /// Whether a NUL-terminated string at `va` lies, NUL included and within `max`
    /// bytes, in pages mapped for reading now (no fault to take).
    pub(crate) fn user_cstr_mapped(&mut self, va: u64, max: u64) -> bool {
        let mut at = va;
        let mut page = [0u8; PAGE_SIZE as usize];
        while at.saturating_sub(va) <= max {
            let Some(gpa) = self.mapped_gpa(at, false) else {
                return false;
            };
            let chunk = &mut page[..(PAGE_SIZE - (at & (PAGE_SIZE - 1))) as usize];
            if self.mem.read(gpa, chunk).is_none() {
                return false;
            }
            if chunk.contains(&0) {
                return true;
            }
            at += chunk.len() as u64;
        }
        false
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

    /// Reads the `T` at `p`: one copy of exactly its size, all of it mapped readable.
    pub(crate) fn read<T: Abi>(&mut self, p: UserPtr<T>) -> Result<T, UserError> {
        let mut v = T::new_zeroed();
        self.read_user(p.addr(), v.as_mut_bytes())?;
        Ok(v)
    }

    /// Writes `v` at `p`: all of it mapped writable, or nothing is written.
    pub(crate) fn write<T: Abi>(&mut self, p: UserPtr<T>, v: &T) -> Result<(), UserError> {
        self.write_user(p.addr(), v.as_bytes())
    }

    /// Reads `n` consecutive `T`s at `p`, refusing more than `max` before reading (or
    /// allocating) anything.
    pub(crate) fn read_array<T: Abi>(
        &mut self,
        p: UserPtr<T>,
        n: u64,
        max: usize,
    ) -> Result<Vec<T>, ArrayError> {
        let n = usize::try_from(n)
            .ok()
            .filter(|n| *n <= max)
            .ok_or(ArrayError::TooMany)?;
        let mut v: Vec<T> = (0..n).map(|_| T::new_zeroed()).collect();
        self.read_user(p.addr(), v.as_mut_slice().as_mut_bytes())?;
        Ok(v)
    }

    /// Writes the `T`s of `v` consecutively at `p`.
    pub(crate) fn write_array<T: Abi>(&mut self, p: UserPtr<T>, v: &[T]) -> Result<(), UserError> {
        self.write_user(p.addr(), v.as_bytes())
    }

    /// Reads an extensible structure whose caller says it is `size` bytes long, as
    /// Linux's `copy_struct_from_user`: smaller than `first` (its first version) is
    /// `TooSmall`; larger than a page, or larger than `T` with a nonzero byte beyond
    /// it, `TooBig`; a shorter (older) one leaves the newer fields zero.
    pub(crate) fn read_sized<T: Abi>(
        &mut self,
        p: UserPtr<T>,
        size: u64,
        first: usize,
    ) -> Result<T, SizedError> {
        if size < first as u64 {
            return Err(SizedError::TooSmall);
        }
        if size > PAGE_SIZE {
            return Err(SizedError::TooBig);
        }
        let known = std::mem::size_of::<T>();
        let mut v = T::new_zeroed();
        let n = (size as usize).min(known);
        self.read_user(p.addr(), &mut v.as_mut_bytes()[..n])?;
        if size as usize > known {
            let tail =
                self.read_user_vec(p.addr().wrapping_add(known as u64), size as usize - known)?;
            if tail.iter().any(|b| *b != 0) {
                return Err(SizedError::TooBig);
            }
        }
        Ok(v)
    }
}
