//! Redirected syscall sites: a fast call without the `syscall` instruction.
//!
//! A fast call (`fastcall.rs`) still enters the stub through `syscall` and leaves it
//! through `iretq`: on PVM those two instructions alone cost about 2.7 µs, most of a
//! fast call. A syscall site of a library that the fast-call thread has answered is
//! therefore rewritten, once, to jump to a trampoline that enters the stub page's
//! user-mode entry (`uentry` in supervisor.S) with a plain `jmp`: the call is posted
//! in the same slot and answered by the same thread, from the same table, and the
//! entry returns with a `jmp`. What the thread does not answer rings the doorbell from
//! there, as a `syscall` would have.
//!
//! What is rewritten, and how:
//! - only the 7 bytes `mov $nr, %eax; syscall` (`b8 imm32 0f 05`, how the C libraries
//!   make a call of a fixed number) whose number is a fast call, in one page of a
//!   private, read-only, executable mapping of a file (a library's or program's text:
//!   never a writable mapping, a JIT's code, or a shared one);
//! - the `mov` becomes `jmp rel32` to a trampoline and the `syscall` stays, so a jump
//!   to the `syscall` itself still makes the call, with whatever `eax` holds;
//! - the page gets a private copy first (never the VM's page cache's frame, never a
//!   frame another process shares);
//! - the trampoline (32 bytes, in pages above what the workload can map, shared by
//!   every address space) sets `eax` as the `mov` did and `rcx` to its continuation,
//!   enters the stub; its continuation sets `rcx` to the instruction after the
//!   `syscall` (as `syscall` leaves it) and jumps back there. The entry leaves `r11`
//!   as `syscall` does (the flags), restores the flags and writes nothing on the user
//!   stack (no red zone is touched).
//!
//! A site is reachable only within 2 GiB of the trampolines: shared libraries (mapped
//! from the top of the address space down), where a dynamically linked program's C
//! library makes its calls. A static program's sites keep the fast call.
//!
//! Self-modifying code: before a mapping holding rewritten sites becomes writable
//! (`mprotect`) or moves (`mremap`), its sites are put back as they were, so a program
//! that writes its own code finds (and changes) its own bytes. A program that reads its
//! own text sees the jump (the one difference left; gVisor's syscall patching has the
//! same). Nothing about a site is remembered outside guest memory: a rewritten site is
//! recognised by its bytes and its trampoline's, so forks, snapshots and snapshot files
//! carry everything.

use crate::guest::layout::{PAGE_SIZE, STUB_VA, TRAMP_GPA, TRAMP_PAGES, TRAMP_VA};
use crate::linux::Kernel;
use crate::mm::{AddressSpace, VmaKind};

/// Bytes per trampoline.
const TRAMP_SIZE: u64 = 32;
/// Trampolines there is room for.
const TRAMPS: u64 = TRAMP_PAGES * PAGE_SIZE / TRAMP_SIZE;
/// The end of the trampolines' pages.
const TRAMP_END: u64 = TRAMP_VA + TRAMPS * TRAMP_SIZE;
/// The user-mode entry's offset in the stub page (supervisor.S `uentry`).
pub(crate) fn uentry_va() -> u64 {
    STUB_VA + crate::guest::UENTRY_OFFSET as u64
}

/// Whether a site returning to `ret` is within a `jmp rel32` of every trampoline (the
/// fast-call thread offers only those).
pub(crate) fn reachable(ret: u64) -> bool {
    let margin = (1 << 31) - 64;
    ret > TRAMP_END.saturating_sub(margin) && ret < TRAMP_VA + margin
}

/// The trampoline for a call `nr` returning to `ret` at `va`.
fn trampoline(va: u64, nr: u32, ret: u64) -> Option<[u8; TRAMP_SIZE as usize]> {
    let mut t = [0u8; TRAMP_SIZE as usize];
    // mov $nr, %eax
    t[0] = 0xb8;
    t[1..5].copy_from_slice(&nr.to_le_bytes());
    // lea 5(%rip), %rcx: the continuation at +17
    t[5..12].copy_from_slice(&[0x48, 0x8d, 0x0d, 5, 0, 0, 0]);
    // jmp uentry
    t[12] = 0xe9;
    let rel = i32::try_from(uentry_va() as i64 - (va as i64 + 17)).ok()?;
    t[13..17].copy_from_slice(&rel.to_le_bytes());
    // movabs $ret, %rcx
    t[17] = 0x48;
    t[18] = 0xb9;
    t[19..27].copy_from_slice(&ret.to_le_bytes());
    // jmp ret
    t[27] = 0xe9;
    let rel = i32::try_from(ret as i64 - (va as i64 + 32)).ok()?;
    t[28..32].copy_from_slice(&rel.to_le_bytes());
    Some(t)
}

/// The number and return address a trampoline at guest-physical `gpa` serves, if one
/// is there.
fn read_trampoline(mm: &AddressSpace, gpa: u64) -> Option<(u32, u64)> {
    let mut t = [0u8; TRAMP_SIZE as usize];
    mm.mem.read(gpa, &mut t)?;
    if t[0] != 0xb8 || t[17..19] != [0x48, 0xb9] {
        return None;
    }
    let nr = u32::from_le_bytes(t[1..5].try_into().ok()?);
    let ret = u64::from_le_bytes(t[19..27].try_into().ok()?);
    Some((nr, ret))
}

/// The trampoline (virtual address) for `nr` returning to `ret`: an existing one, or a
/// new one in the first free place.
fn find_or_make(mm: &AddressSpace, nr: u32, ret: u64) -> Option<u64> {
    let mut free = None;
    for i in 0..TRAMPS {
        let gpa = TRAMP_GPA + i * TRAMP_SIZE;
        match read_trampoline(mm, gpa) {
            Some(t) if t == (nr, ret) => return Some(TRAMP_VA + i * TRAMP_SIZE),
            Some(_) => {}
            None => {
                free.get_or_insert(i);
            }
        }
    }
    let i = free?;
    let va = TRAMP_VA + i * TRAMP_SIZE;
    let code = trampoline(va, nr, ret)?;
    mm.mem.write(TRAMP_GPA + i * TRAMP_SIZE, &code)?;
    Some(va)
}

/// Whether the mapping at `va` may have its code rewritten: private, read-only,
/// executable, a file's.
fn rewritable(mm: &AddressSpace, va: u64) -> bool {
    mm.vma_at(va).is_some_and(|(_, v)| {
        v.prot & crate::mm::PROT_WRITE == 0
            && v.prot & crate::mm::PROT_EXEC != 0
            && matches!(v.kind, VmaKind::File { .. })
    })
}

/// Redirects the site that made call `nr` and returns to `ret` (the `syscall`
/// instruction ends there), in the current address space, if it is one this module
/// rewrites. True when it is redirected now.
pub(crate) fn redirect(k: &mut Kernel, nr: u64, ret: u64) -> bool {
    redirect_in(&mut k.mm, nr, ret)
}

fn redirect_in(mm: &mut AddressSpace, nr: u64, ret: u64) -> bool {
    let Ok(nr32) = u32::try_from(nr) else {
        return false;
    };
    let at = ret.wrapping_sub(7);
    if at >= ret || at / PAGE_SIZE != (ret - 1) / PAGE_SIZE || !rewritable(mm, at) {
        return false;
    }
    let Some(page) = mm.page_bytes(at & !(PAGE_SIZE - 1)) else {
        return false;
    };
    let off = (at % PAGE_SIZE) as usize;
    let site = &page[off..off + 7];
    if site[0] != 0xb8 || site[1..5] != nr32.to_le_bytes() || site[5..7] != [0x0f, 0x05] {
        return false;
    }
    let Some(t) = find_or_make(mm, nr32, ret) else {
        return false;
    };
    let Ok(rel) = i32::try_from(t as i64 - (at as i64 + 5)) else {
        return false;
    };
    let mut jmp = [0xe9, 0, 0, 0, 0];
    jmp[1..].copy_from_slice(&rel.to_le_bytes());
    mm.patch_code(at, &jmp).is_some()
}

/// The redirected sites in `page` (its bytes `bytes`): where each begins, and its
/// call's number.
fn sites_in(mm: &AddressSpace, page: u64, bytes: &[u8; PAGE_SIZE as usize]) -> Vec<(u64, u32)> {
    let mut found = Vec::new();
    for off in 0..(PAGE_SIZE as usize - 6) {
        if bytes[off] != 0xe9 || bytes[off + 5..off + 7] != [0x0f, 0x05] {
            continue;
        }
        let rel = i32::from_le_bytes([
            bytes[off + 1],
            bytes[off + 2],
            bytes[off + 3],
            bytes[off + 4],
        ]);
        let at = page + off as u64;
        let target = (at as i64 + 5 + i64::from(rel)) as u64;
        if !(TRAMP_VA..TRAMP_END).contains(&target) || (target - TRAMP_VA) % TRAMP_SIZE != 0 {
            continue;
        }
        if let Some((nr, ret)) = read_trampoline(mm, TRAMP_GPA + (target - TRAMP_VA)) {
            if ret == at + 7 {
                found.push((at, nr));
            }
        }
    }
    found
}

/// The redirected sites in `start .. end` of the current address space: where each
/// begins, and its call's number. Only pages of mappings this module rewrites, and
/// only those holding a frame, are read.
pub(crate) fn sites(mm: &mut AddressSpace, start: u64, end: u64) -> Vec<(u64, u32)> {
    let spans: Vec<(u64, u64)> = mm
        .vmas_overlapping(start, end)
        .filter(|(s, _)| rewritable(mm, *s))
        .map(|(s, v)| (s.max(start), v.end.min(end)))
        .collect();
    let mut found = Vec::new();
    for (lo, hi) in spans {
        for page in mm.framed_pages(lo & !(PAGE_SIZE - 1), hi) {
            if let Some(bytes) = mm.page_bytes(page) {
                found.extend(sites_in(mm, page, &bytes));
            }
        }
    }
    found
}

/// Puts back every redirected site in `start .. end` of the current address space (it
/// is about to become writable, or to move): the program finds its own bytes there.
pub(crate) fn restore(mm: &mut AddressSpace, start: u64, end: u64) {
    for (at, nr) in sites(mm, start, end) {
        let mut mov = [0xb8, 0, 0, 0, 0];
        mov[1..].copy_from_slice(&nr.to_le_bytes());
        let _ = mm.patch_code(at, &mov);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trampoline_sets_the_number_and_comes_back() {
        let va = TRAMP_VA + 3 * TRAMP_SIZE;
        let ret = 0x7fff_f7a1_2345;
        let t = trampoline(va, 39, ret).unwrap();
        assert_eq!(&t[..5], &[0xb8, 39, 0, 0, 0]);
        let lea = i32::from_le_bytes(t[8..12].try_into().unwrap());
        assert_eq!(
            va as i64 + 12 + lea as i64,
            va as i64 + 17,
            "rcx = the continuation"
        );
        let to_entry = i32::from_le_bytes(t[13..17].try_into().unwrap());
        assert_eq!((va as i64 + 17 + to_entry as i64) as u64, uentry_va());
        assert_eq!(u64::from_le_bytes(t[19..27].try_into().unwrap()), ret);
        let back = i32::from_le_bytes(t[28..32].try_into().unwrap());
        assert_eq!((va as i64 + 32 + back as i64) as u64, ret);
        // Out of reach: a static program's text at 4 MiB.
        assert!(trampoline(va, 39, 0x40_1000).is_none());
        assert!(!reachable(0x40_1000));
        assert!(reachable(ret));
        assert!(!reachable(TRAMP_VA + (1 << 40)));
    }

    use crate::memory::Memory;
    use crate::mm::{Access, Fixed, PROT_EXEC, PROT_READ, PROT_WRITE};

    const CODE: u64 = 0x7fff_f000_0000;

    /// An address space with `code` mapped at `CODE` from a file, with `prot`.
    fn space_with(code: &[u8], prot: u32) -> AddressSpace {
        let mut mem = Memory::new(8 << 20).unwrap();
        let pt = crate::guest::build_supervisor(&mut mem).unwrap();
        let mut a = AddressSpace::new(mem, pt);
        a.set_layout(0x100_0000, crate::guest::layout::USER_TOP);
        let backing: std::rc::Rc<dyn crate::mm::Backing> =
            std::rc::Rc::new(crate::vfs::backing::GenBacking(code.into()));
        let kind = VmaKind::File {
            backing,
            offset: 0,
            file_end: u64::MAX,
        };
        let len = (code.len() as u64).next_multiple_of(PAGE_SIZE);
        let at = a
            .mmap(CODE, len, prot, Fixed::Replace, false, kind)
            .unwrap();
        assert_eq!(at, CODE);
        let mut p = CODE;
        while p < CODE + len {
            assert_eq!(a.fault(p, Access::Read), crate::mm::FaultOutcome::Mapped);
            p += PAGE_SIZE;
        }
        a
    }

    fn bytes(a: &mut AddressSpace, va: u64, n: usize) -> Vec<u8> {
        let mut b = vec![0u8; n];
        a.read_user(va, &mut b).unwrap();
        b
    }

    /// getppid at 0x10, getpid at 0x20, a site straddling the page end, and a
    /// `syscall` after another instruction.
    fn code() -> Vec<u8> {
        let mut c = vec![0x90u8; 2 * PAGE_SIZE as usize];
        c[0x10..0x18].copy_from_slice(&[0xb8, 110, 0, 0, 0, 0x0f, 0x05, 0xc3]);
        c[0x20..0x28].copy_from_slice(&[0xb8, 39, 0, 0, 0, 0x0f, 0x05, 0xc3]);
        let edge = PAGE_SIZE as usize - 3;
        c[edge..edge + 7].copy_from_slice(&[0xb8, 110, 0, 0, 0, 0x0f, 0x05]);
        c[0x40..0x47].copy_from_slice(&[0x48, 0x89, 0xc8, 0x90, 0x90, 0x0f, 0x05]);
        c
    }

    #[test]
    fn sites_are_rewritten_checked_and_put_back() {
        let code = code();
        let mut a = space_with(&code, PROT_READ | PROT_EXEC);
        // The wrong number, a site across pages, another instruction, a number that is
        // not the site's: nothing changes.
        assert!(!redirect_in(&mut a, 39, CODE + 0x17));
        assert!(!redirect_in(&mut a, 110, CODE + PAGE_SIZE + 4));
        assert!(!redirect_in(&mut a, 0, CODE + 0x47));
        assert!(!redirect_in(&mut a, 110, CODE + 0x18));
        assert!(!redirect_in(&mut a, 110, u64::MAX));
        assert_eq!(bytes(&mut a, CODE, 2 * PAGE_SIZE as usize), code);
        // Both real sites.
        assert!(redirect_in(&mut a, 110, CODE + 0x17));
        assert!(redirect_in(&mut a, 39, CODE + 0x27));
        let got = bytes(&mut a, CODE + 0x10, 8);
        assert_eq!((got[0], &got[5..]), (0xe9, &[0x0f, 0x05, 0xc3][..]));
        let rel = i32::from_le_bytes(got[1..5].try_into().unwrap());
        let t = (CODE as i64 + 0x15 + i64::from(rel)) as u64;
        assert!((TRAMP_VA..TRAMP_END).contains(&t));
        let gpa = TRAMP_GPA + (t - TRAMP_VA);
        assert_eq!(read_trampoline(&a, gpa), Some((110, CODE + 0x17)));
        // Again: nothing to do (the bytes are a jump now); the same trampoline serves
        // the same site in another space.
        assert!(!redirect_in(&mut a, 110, CODE + 0x17));
        assert_eq!(find_or_make(&a, 110, CODE + 0x17), Some(t));
        let found = sites(&mut a, CODE, CODE + 2 * PAGE_SIZE);
        assert_eq!(found, vec![(CODE + 0x10, 110), (CODE + 0x20, 39)]);
        // Put back: the file's bytes, exactly.
        restore(&mut a, CODE, CODE + 2 * PAGE_SIZE);
        assert_eq!(bytes(&mut a, CODE, 2 * PAGE_SIZE as usize), code);
        assert!(sites(&mut a, CODE, CODE + 2 * PAGE_SIZE).is_empty());
    }

    #[test]
    fn writable_or_anonymous_code_is_never_rewritten() {
        let code = code();
        let mut a = space_with(&code, PROT_READ | PROT_WRITE | PROT_EXEC);
        assert!(!redirect_in(&mut a, 110, CODE + 0x17));
        assert_eq!(bytes(&mut a, CODE, 0x20), code[..0x20]);
        let mut b = space_with(&code, PROT_READ);
        assert!(!redirect_in(&mut b, 110, CODE + 0x17));
        let at = 0x7fff_e000_0000;
        let mut c = space_with(&code, PROT_READ | PROT_EXEC);
        c.mmap(
            at,
            PAGE_SIZE,
            PROT_READ | PROT_WRITE,
            Fixed::Replace,
            false,
            VmaKind::Anon,
        )
        .unwrap();
        c.write_user(at + 0x10, &code[0x10..0x18]).unwrap();
        c.mprotect(at, PAGE_SIZE, PROT_READ | PROT_EXEC).unwrap();
        assert!(!redirect_in(&mut c, 110, at + 0x17));
    }

    #[test]
    fn the_page_is_copied_before_it_is_rewritten() {
        let code = code();
        let mut a = space_with(&code, PROT_READ | PROT_EXEC);
        let frame = |a: &mut AddressSpace| {
            let (_, pte) = a.pt.lookup(&mut a.mem, CODE).unwrap();
            pte & crate::mm::pagetable::PTE_ADDR
        };
        let before = frame(&mut a);
        a.mem.share(before);
        assert!(redirect_in(&mut a, 110, CODE + 0x17));
        assert_ne!(frame(&mut a), before, "a shared frame is never written");
        let mut orig = [0u8; 8];
        a.mem.read(before + 0x10, &mut orig).unwrap();
        assert_eq!(orig, code[0x10..0x18]);
        assert!(
            !a.take_flush().is_empty(),
            "the guest drops the old translation"
        );
    }

    /// tests/programs/redirect.c enters the user-mode entry by its address.
    #[test]
    fn the_entry_is_where_the_test_program_looks() {
        assert_eq!(uentry_va(), 0x7fff_ffff_d146);
    }
}
