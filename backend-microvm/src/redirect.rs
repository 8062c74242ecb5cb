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
/// The user-mode entry's offset in the stub page (supervisor.S `uentry`).
pub(crate) fn uentry_va() -> u64 {
    STUB_VA + crate::guest::UENTRY_OFFSET as u64
}

/// Whether a site returning to `ret` is within a `jmp rel32` of every trampoline (the
/// fast-call thread offers only those).
pub(crate) fn reachable(ret: u64) -> bool {
    let margin = (1 << 31) - 64;
    ret > (TRAMP_VA + TRAMPS * TRAMP_SIZE).saturating_sub(margin) && ret < TRAMP_VA + margin
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
    let Ok(nr32) = u32::try_from(nr) else {
        return false;
    };
    let at = ret.wrapping_sub(7);
    if at >= ret || at / PAGE_SIZE != (ret - 1) / PAGE_SIZE || !rewritable(&k.mm, at) {
        return false;
    }
    let Some(page) = k.mm.page_bytes(at & !(PAGE_SIZE - 1)) else {
        return false;
    };
    let off = (at % PAGE_SIZE) as usize;
    let site = &page[off..off + 7];
    if site[0] != 0xb8 || site[1..5] != nr32.to_le_bytes() || site[5..7] != [0x0f, 0x05] {
        return false;
    }
    let Some(t) = find_or_make(&k.mm, nr32, ret) else {
        return false;
    };
    let Ok(rel) = i32::try_from(t as i64 - (at as i64 + 5)) else {
        return false;
    };
    let mut jmp = [0xe9, 0, 0, 0, 0];
    jmp[1..].copy_from_slice(&rel.to_le_bytes());
    k.mm.patch_code(at, &jmp).is_some()
}

/// Puts back every redirected site in `start .. end` of the current address space (it
/// is about to become writable, or to move): the program finds its own bytes there.
pub(crate) fn restore(mm: &mut AddressSpace, start: u64, end: u64) {
    let mut page = start & !(PAGE_SIZE - 1);
    while page < end {
        let next = page.saturating_add(PAGE_SIZE);
        if !rewritable(mm, page) {
            // Only such pages are ever rewritten: skip to the next one.
            page = next;
            continue;
        }
        if let Some(bytes) = mm.page_bytes(page) {
            let mut puts = Vec::new();
            for off in 0..(PAGE_SIZE as usize - 6) {
                if bytes[off] != 0xe9 || bytes[off + 5..off + 7] != [0x0f, 0x05] {
                    continue;
                }
                let rel = i32::from_le_bytes(bytes[off + 1..off + 5].try_into().unwrap_or([0; 4]));
                let at = page + off as u64;
                let target = (at as i64 + 5 + rel as i64) as u64;
                let in_range = (TRAMP_VA..TRAMP_VA + TRAMPS * TRAMP_SIZE).contains(&target)
                    && (target - TRAMP_VA) % TRAMP_SIZE == 0;
                if !in_range {
                    continue;
                }
                let gpa = TRAMP_GPA + (target - TRAMP_VA);
                if let Some((nr, ret)) = read_trampoline(mm, gpa) {
                    if ret == at + 7 {
                        let mut mov = [0xb8, 0, 0, 0, 0];
                        mov[1..].copy_from_slice(&nr.to_le_bytes());
                        puts.push((at, mov));
                    }
                }
            }
            for (at, mov) in puts {
                let _ = mm.patch_code(at, &mov);
            }
        }
        page = next;
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

    /// tests/programs/redirect.c enters the user-mode entry by its address.
    #[test]
    fn the_entry_is_where_the_test_program_looks() {
        assert_eq!(uentry_va(), 0x7fff_ffff_d10c);
    }
}
