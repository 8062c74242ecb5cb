//! Descriptor tables and the fixed mappings of a fresh guest.

use super::code::{HANDLER_CODE, STUB_CODE};
use super::layout::*;
use crate::memory::{Memory, OutOfMemory};
use crate::mm::pagetable::{PageTables, PTE_A, PTE_D, PTE_NX, PTE_P, PTE_U, PTE_W};

/// The guest's fixed structures could not be written.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SupervisorError {
    /// Guest RAM is too small for them.
    #[error("guest memory is too small for the supervisor's tables")]
    NoMemory(#[source] OutOfMemory),
    /// A write outside guest RAM (a layout bug).
    #[error("supervisor layout does not fit guest memory")]
    Layout,
}

impl From<OutOfMemory> for SupervisorError {
    fn from(e: OutOfMemory) -> Self {
        SupervisorError::NoMemory(e)
    }
}

/// A 64-bit segment descriptor.
const fn segment(access: u64, flags: u64) -> u64 {
    0xffff | (access << 40) | (0xf << 48) | (flags << 52)
}

/// The GDT, Linux's layout: 0x10 kernel code, 0x18 kernel data, 0x2b user data,
/// 0x33 user code, 0x40 the TSS. There is no 32-bit user code segment: compatibility
/// mode is not offered.
fn gdt(tss_va: u64) -> [u64; 10] {
    let tss_limit = 0x67u64;
    let tss_low =
        tss_limit | ((tss_va & 0xff_ffff) << 16) | (0x89 << 40) | (((tss_va >> 24) & 0xff) << 56);
    [
        0,
        segment(0x9b, 0xc), // 0x08: kernel code, 32-bit (unused)
        segment(0x9b, 0xa), // 0x10: kernel code, 64-bit
        segment(0x93, 0xc), // 0x18: kernel data
        0,                  // 0x20: no 32-bit user code
        segment(0xf3, 0xc), // 0x28: user data (DPL 3)
        segment(0xfb, 0xa), // 0x30: user code, 64-bit (DPL 3)
        0,
        tss_low,      // 0x40: TSS, low half
        tss_va >> 32, // TSS, high half
    ]
}

/// An interrupt gate to `handler` on IST1.
fn gate(handler: u64, dpl: u64) -> [u64; 2] {
    let low = (handler & 0xffff)
        | (u64::from(KERNEL_CS) << 16)
        | (1 << 32) // IST1
        | ((0x8e | (dpl << 5)) << 40)
        | (((handler >> 16) & 0xffff) << 48);
    [low, handler >> 32]
}

/// Number of IDT entries: the CPU exceptions. `int n` for anything else faults.
pub(crate) const IDT_ENTRIES: u64 = 32;

/// Writes the GDT, TSS, IDT, supervisor code and the fixed page-table entries.
/// Returns the page tables (root at `PML4_GPA`).
pub(crate) fn build_supervisor(mem: &mut Memory) -> Result<PageTables, SupervisorError> {
    let put = |mem: &Memory, gpa: u64, v: u64| mem.write_u64(gpa, v).ok_or(SupervisorError::Layout);
    let tss_va = SUP_VA + GDT_GPA + TSS_OFFSET;
    for (i, d) in gdt(tss_va).iter().enumerate() {
        put(mem, GDT_GPA + 8 * i as u64, *d)?;
    }
    // TSS: rsp0 and ist1 at the exception stack's top, no I/O bitmap.
    let tss = GDT_GPA + TSS_OFFSET;
    put(mem, tss + 4, IST_TOP_VA)?;
    put(mem, tss + 0x24, IST_TOP_VA)?;
    mem.write(tss + 0x66, &104u16.to_le_bytes())
        .ok_or(SupervisorError::Layout)?;
    for v in 0..IDT_ENTRIES {
        // #BP and #OF may be raised from user mode (int3, into), as on Linux.
        let dpl = if v == 3 || v == 4 { 3 } else { 0 };
        let [lo, hi] = gate(SUP_VA + HANDLER_GPA + 16 * v, dpl);
        put(mem, IDT_GPA + 16 * v, lo)?;
        put(mem, IDT_GPA + 16 * v + 8, hi)?;
    }
    mem.write(HANDLER_GPA, HANDLER_CODE)
        .ok_or(SupervisorError::Layout)?;
    mem.write(STUB_GPA, STUB_CODE)
        .ok_or(SupervisorError::Layout)?;
    mem.write(
        STUB_GPA + super::FAST_MAP_OFFSET as u64,
        &crate::fastcall::FAST_MAP,
    )
    .ok_or(SupervisorError::Layout)?;
    mem.write(VDSO_GPA, &super::vdso::image())
        .ok_or(SupervisorError::Layout)?;

    let pt = PageTables::new(PML4_GPA);
    // Supervisor frames at SUP_VA + gpa.
    let rw = PTE_P | PTE_W | PTE_NX;
    let mut sup = vec![
        (GDT_GPA, rw),
        (IDT_GPA, PTE_P | PTE_NX),
        (HANDLER_GPA, PTE_P),
        (DATA_GPA, rw),
    ];
    sup.extend((0..WORK_PAGES).map(|i| (WORK_GPA + i * PAGE_SIZE, rw)));
    sup.extend((0..IST_PAGES).map(|i| (IST_GPA + i * PAGE_SIZE, rw)));
    for (gpa, flags) in sup {
        pt.map(mem, SUP_VA + gpa, gpa | flags)?;
    }
    // The direct map of all RAM.
    let mut gpa = 0;
    while gpa < mem.size() {
        pt.map_large(mem, direct_map(gpa), gpa | PTE_P | PTE_W | PTE_NX)?;
        gpa += 2 << 20;
    }
    map_stub_pages(mem, &pt)?;
    Ok(pt)
}

/// Maps the user-visible stub pages (syscall return frame, stub, doorbell) in the
/// address space of `pt`: every address space has them.
pub(crate) fn map_stub_pages(mem: &mut Memory, pt: &PageTables) -> Result<(), OutOfMemory> {
    // Accessed (and, where writable, dirty) from the start, as the workload's own
    // entries (`mm::pte_flags`): every new address space's first syscall then costs
    // one shadow-page fault for the stub, which also fills the frame page's entry
    // (KVM prefetches neighbouring entries only when they were accessed), not three
    // (the stub, the frame page read, then written).
    const RO: u64 = PTE_P | PTE_U | PTE_A;
    const RW: u64 = RO | PTE_W | PTE_D;
    pt.map(mem, VVAR_VA, VVAR_GPA | RO | PTE_NX)?;
    pt.map(mem, VDSO_VA, VDSO_GPA | RO)?;
    for i in 0..TRAMP_PAGES {
        pt.map(
            mem,
            TRAMP_VA + i * PAGE_SIZE,
            (TRAMP_GPA + i * PAGE_SIZE) | RO,
        )?;
    }
    pt.map(mem, FRAME_VA, FRAME_GPA | RW | PTE_NX)?;
    pt.map(mem, STUB_VA, STUB_GPA | RO)?;
    pt.map(mem, DOORBELL_VA, doorbell_gpa(mem.size()) | RW | PTE_NX)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptors_encode_like_linux() {
        let g = gdt(0xffff_ffff_ffe0_2800);
        assert_eq!(g[2], 0x00af_9b00_0000_ffff);
        assert_eq!(g[3], 0x00cf_9300_0000_ffff);
        assert_eq!(g[5], 0x00cf_f300_0000_ffff);
        assert_eq!(g[6], 0x00af_fb00_0000_ffff);
        assert_eq!(g[9], 0xffff_ffff);
        let [lo, hi] = gate(0xffff_ffff_ffe0_4010, 0);
        assert_eq!(lo, 0xffe0_8e01_0010_4010);
        assert_eq!(hi, 0xffff_ffff);
    }

    #[test]
    fn supervisor_builds_in_small_ram() {
        let mut mem = Memory::new(4 << 20).unwrap();
        let mut pt = build_supervisor(&mut mem).unwrap();
        let (_, pte) = pt.lookup(&mut mem, STUB_VA).unwrap();
        assert_eq!(pte, STUB_GPA | PTE_P | PTE_U | PTE_A);
        // The frame page is writable and already dirty (see `map_stub_pages`).
        let (_, pte) = pt.lookup(&mut mem, FRAME_VA).unwrap();
        assert_eq!(
            pte,
            FRAME_GPA | PTE_P | PTE_U | PTE_A | PTE_W | PTE_D | PTE_NX
        );
        let _ = &mut pt;
    }
}
