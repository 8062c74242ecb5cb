//! What the loader reads of an ELF file (header, program headers, `PT_INTERP`) and
//! how it maps the loadable segments: private file mappings read at first touch, the
//! `.bss` tail of a segment's last file page reading as zeros.

use std::mem::size_of;
use std::rc::Rc;

use zerocopy::{FromBytes, IntoBytes};

use super::{not_exec, read_full, Image, LoadError, STACK_RESERVE, STACK_TOP};
use crate::abi::{Elf64Ehdr, Elf64Phdr};
use crate::errno;
use crate::guest::layout::PAGE_SIZE;
use crate::mm::{AddressSpace, Fixed, VmaKind, PROT_EXEC, PROT_READ, PROT_WRITE};

pub(super) const PT_LOAD: u32 = 1;
/// Loadable file segments this small are mapped whole at load (see `map_segments`):
/// one group of entries KVM fills together.
const SMALL_FILE_PAGES: u64 = 8;
pub(super) const PT_INTERP: u32 = 3;
pub(super) const PT_PHDR: u32 = 6;
pub(super) const ET_EXEC: u16 = 2;
pub(super) const ET_DYN: u16 = 3;
pub(super) const PF_X: u32 = 1;
pub(super) const PF_W: u32 = 2;
pub(super) const PF_R: u32 = 4;

/// One program header.
#[derive(Debug, Clone, Copy)]
pub(super) struct Phdr {
    pub(super) ptype: u32,
    pub(super) flags: u32,
    pub(super) offset: u64,
    pub(super) vaddr: u64,
    pub(super) filesz: u64,
    pub(super) memsz: u64,
}

/// What the loader needs of an ELF file.
#[derive(Debug)]
pub(super) struct Elf {
    pub(super) etype: u16,
    pub(super) entry: u64,
    pub(super) phoff: u64,
    pub(super) phnum: u16,
    pub(super) phdrs: Vec<Phdr>,
}

pub(super) fn parse(img: &Image) -> Result<Elf, LoadError> {
    let path = &img.path;
    let h = match Elf64Ehdr::read_from_prefix(&img.head) {
        Ok((h, _)) if h.is_elf() => h,
        _ => {
            return Err(not_exec(
                path,
                "it is not an ELF executable",
                errno::ENOEXEC,
            ))
        }
    };
    if !h.is_x86_64() {
        return Err(not_exec(
            path,
            "it is not an x86-64 (64-bit) program",
            errno::ENOEXEC,
        ));
    }
    let etype = h.e_type;
    if etype != ET_EXEC && etype != ET_DYN {
        return Err(not_exec(path, "it is not an executable", errno::ENOEXEC));
    }
    let (phoff, phnum) = (h.e_phoff, h.e_phnum);
    if usize::from(h.e_phentsize) != size_of::<Elf64Phdr>() || phnum == 0 || phnum > 512 {
        return Err(not_exec(
            path,
            "its program headers are invalid",
            errno::ENOEXEC,
        ));
    }
    let mut raw = vec![Elf64Phdr::default(); usize::from(phnum)];
    let n = read_full(&*img.file, phoff, raw.as_mut_slice().as_mut_bytes())
        .map_err(|e| not_exec(path, "cannot read its program headers", e))?;
    if n != raw.as_bytes().len() {
        return Err(not_exec(
            path,
            "its program headers are truncated",
            errno::ENOEXEC,
        ));
    }
    let phdrs = raw
        .iter()
        .map(|p| Phdr {
            ptype: p.p_type,
            flags: p.p_flags,
            offset: p.p_offset,
            vaddr: p.p_vaddr,
            filesz: p.p_filesz,
            memsz: p.p_memsz,
        })
        .collect();
    Ok(Elf {
        etype,
        entry: h.e_entry,
        phoff,
        phnum,
        phdrs,
    })
}

fn prot_of(flags: u32) -> u32 {
    let mut p = 0;
    if flags & PF_R != 0 {
        p |= PROT_READ;
    }
    if flags & PF_W != 0 {
        p |= PROT_WRITE;
    }
    if flags & PF_X != 0 {
        p |= PROT_EXEC;
    }
    p
}

pub(super) fn page_down(v: u64) -> u64 {
    v & !(PAGE_SIZE - 1)
}

pub(super) fn page_up(v: u64) -> Option<u64> {
    v.checked_add(PAGE_SIZE - 1).map(page_down)
}

/// The page range the loadable segments span (before relocation).
pub(super) fn span(elf: &Elf, path: &[u8]) -> Result<(u64, u64), LoadError> {
    let bad = || not_exec(path, "its program headers are invalid", errno::ENOEXEC);
    let mut lo = u64::MAX;
    let mut hi = 0u64;
    for p in elf
        .phdrs
        .iter()
        .filter(|p| p.ptype == PT_LOAD && p.memsz > 0)
    {
        let end = p.vaddr.checked_add(p.memsz).ok_or_else(bad)?;
        lo = lo.min(page_down(p.vaddr));
        hi = hi.max(page_up(end).ok_or_else(bad)?);
    }
    if lo >= hi {
        return Err(not_exec(path, "it has nothing to load", errno::ENOEXEC));
    }
    if hi - lo > (64 << 30) {
        return Err(bad());
    }
    Ok((lo, hi))
}

/// Maps the loadable segments of `elf` at `bias`; returns the end of the last one.
pub(super) fn map_segments(
    mm: &mut AddressSpace,
    img: &Image,
    elf: &Elf,
    bias: u64,
) -> Result<u64, LoadError> {
    let path = &img.path;
    let bad = || not_exec(path, "its program headers are invalid", errno::ENOEXEC);
    let mut end = 0;
    for p in elf
        .phdrs
        .iter()
        .filter(|p| p.ptype == PT_LOAD && p.memsz > 0)
    {
        if p.filesz > p.memsz || p.vaddr % PAGE_SIZE != p.offset % PAGE_SIZE {
            return Err(bad());
        }
        let start = bias.checked_add(p.vaddr).ok_or_else(bad)?;
        let mem_end = start.checked_add(p.memsz).ok_or_else(bad)?;
        if start < crate::mm::MMAP_MIN_ADDR || mem_end > STACK_TOP - STACK_RESERVE {
            return Err(bad());
        }
        let prot = prot_of(p.flags);
        let page = page_down(start);
        let file_end = page_up(start + p.filesz).ok_or_else(bad)?;
        let mem_top = page_up(mem_end).ok_or_else(bad)?;
        let map = |mm: &mut AddressSpace, at: u64, to: u64, kind: VmaKind| {
            mm.mmap(at, to - at, prot, Fixed::Replace, false, kind)
                .map(|_| ())
                .map_err(|_| bad())
        };
        if p.filesz > 0 {
            map(
                mm,
                page,
                file_end,
                VmaKind::File {
                    backing: Rc::clone(&img.file),
                    offset: page_down(p.offset),
                    file_end: p.offset.checked_add(p.filesz).ok_or_else(bad)?,
                },
            )?;
            // A small segment is mapped whole now (best effort), the pages the program
            // never reads included: KVM's shadow paging fills a faulting entry's
            // aligned group of eight only up to the first entry not mapped, so one
            // hole (an unread `.rodata` page between the code and the data) costs
            // a fault for every page after it. Later runs find these pages cached.
            if file_end - page <= SMALL_FILE_PAGES * PAGE_SIZE {
                let _ = mm.populate(page, file_end);
            }
        }
        let anon_from = if p.filesz > 0 { file_end } else { page };
        if mem_top > anon_from {
            map(mm, anon_from, mem_top, VmaKind::Anon)?;
            // A small .bss is written at start-up: mapped now (best effort).
            if mem_top - anon_from <= crate::mm::SMALL_ANON_PAGES * PAGE_SIZE {
                let _ = mm.populate(anon_from, mem_top);
            }
        }
        end = end.max(mem_top);
    }
    Ok(end)
}

/// The address the program headers are at once loaded.
pub(super) fn phdr_addr(elf: &Elf, bias: u64) -> u64 {
    if let Some(p) = elf.phdrs.iter().find(|p| p.ptype == PT_PHDR) {
        return bias.wrapping_add(p.vaddr);
    }
    elf.phdrs
        .iter()
        .find(|p| {
            p.ptype == PT_LOAD
                && p.offset <= elf.phoff
                && elf.phoff < p.offset.saturating_add(p.filesz)
        })
        .map(|p| {
            bias.wrapping_add(p.vaddr)
                .wrapping_add(elf.phoff - p.offset)
        })
        .unwrap_or(0)
}

/// The `PT_INTERP` path of `elf`, if any.
pub(super) fn interp_path(img: &Image, elf: &Elf) -> Result<Option<Vec<u8>>, LoadError> {
    let Some(p) = elf.phdrs.iter().find(|p| p.ptype == PT_INTERP) else {
        return Ok(None);
    };
    if p.filesz == 0 || p.filesz > 4096 {
        return Err(not_exec(
            &img.path,
            "its PT_INTERP is invalid",
            errno::ENOEXEC,
        ));
    }
    let mut b = vec![0u8; p.filesz as usize];
    read_full(&*img.file, p.offset, &mut b)
        .map_err(|e| not_exec(&img.path, "cannot read its PT_INTERP", e))?;
    let n = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    b.truncate(n);
    Ok(Some(b))
}
