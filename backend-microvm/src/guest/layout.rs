//! The fixed layout of guest-physical memory and of the guest's virtual address space.
//!
//! Guest-physical memory starts with the supervisor's own frames (below `FIXED_END`);
//! everything after is handed out by the frame allocator. Virtual addresses:
//!
//! | range | what | access |
//! | --- | --- | --- |
//! | `0 .. USER_TOP` | the workload | user, as the workload maps it |
//! | `VVAR_VA`, `VDSO_VA` | the vDSO's data and code | user, read-only |
//! | `TRAMP_VA` | trampolines of redirected syscall sites | user, read-only |
//! | `FRAME_VA`, `STUB_VA`, `DOORBELL_VA` | syscall return frame, syscall stub, doorbell | user (the LSTAR handler runs with user privilege on PVM) |
//! | `DIRECT_MAP_VA ..` | all guest RAM, 2 MiB pages | supervisor |
//! | `SUP_VA + gpa` | GDT/TSS, IDT, exception handlers, data, work list, IST stack | supervisor |
//!
//! On PVM, user-privileged code cannot run from the upper half, so the stub lives at the
//! top of the lower half (like a vDSO, the workload cannot map over it).

/// Size of a small page.
pub(crate) const PAGE_SIZE: u64 = 4096;

/// The root page table (PML4).
pub(crate) const PML4_GPA: u64 = 0x1000;
/// The GDT; the TSS follows at `TSS_OFFSET`.
pub(crate) const GDT_GPA: u64 = 0x2000;
/// Offset of the TSS in the GDT's page.
pub(crate) const TSS_OFFSET: u64 = 0x800;
/// The IDT.
pub(crate) const IDT_GPA: u64 = 0x3000;
/// The exception handlers (`HANDLER_CODE`).
pub(crate) const HANDLER_GPA: u64 = 0x4000;
/// The syscall stub (`STUB_CODE`).
pub(crate) const STUB_GPA: u64 = 0x5000;
/// The user-return frame of the syscall stub's `iretq`.
pub(crate) const FRAME_GPA: u64 = 0x6000;
/// Supervisor data: CR2, work count, return frame of the flush path.
pub(crate) const DATA_GPA: u64 = 0x7000;
/// The work list: the runs of page-table entries to rewrite after the first (which
/// goes in registers), each as two words (the guest virtual address of its first
/// entry, and its length).
pub(crate) const WORK_GPA: u64 = 0x8000;
/// Pages of the work list.
pub(crate) const WORK_PAGES: u64 = 8;
/// The exception stack (IST1).
pub(crate) const IST_GPA: u64 = 0x10000;
/// Pages of the exception stack.
pub(crate) const IST_PAGES: u64 = 2;
/// The vDSO's data page (clock parameters the VMM writes).
pub(crate) const VVAR_GPA: u64 = 0x12000;
/// The vDSO's ELF image (one page).
pub(crate) const VDSO_GPA: u64 = 0x13000;
/// The trampolines of redirected syscall sites (`redirect.rs`), shared by every
/// address space.
pub(crate) const TRAMP_GPA: u64 = 0x14000;
/// Pages of trampolines.
pub(crate) const TRAMP_PAGES: u64 = 8;
/// First frame the allocator hands out.
pub(crate) const FIXED_END: u64 = TRAMP_GPA + TRAMP_PAGES * PAGE_SIZE;

/// Offsets in the data page (must match supervisor.S).
/// Number of armed work-list runs; the guest zeroes it when done.
pub(crate) const DATA_COUNT: u64 = 0x8;
/// The flush path's return frame: rip, cs, rflags, rsp, ss.
pub(crate) const DATA_FRAME: u64 = 0x10;
/// The registers the flush restores when done: rax, rcx, rdx, rsi, rdi.
pub(crate) const DATA_SAVED: u64 = 0x40;
/// Runs the work list holds.
pub(crate) const WORK_RUNS: usize = (WORK_PAGES * PAGE_SIZE / 16) as usize;
/// Most entries a flush has the guest rewrite; a larger one reloads the memory slot
/// instead (every shadow page dropped at once).
pub(crate) const WORK_ENTRIES: usize = 4096;

/// Where the supervisor frames are mapped: `SUP_VA + gpa`.
pub(crate) const SUP_VA: u64 = 0xffff_ffff_ffe0_0000;
/// Where all guest RAM is mapped for the supervisor.
pub(crate) const DIRECT_MAP_VA: u64 = 0xffff_ff00_0000_0000;
/// Largest guest RAM the direct map (one PDPT) covers.
pub(crate) const MAX_RAM: u64 = 512 << 30;
/// The vDSO's data page (read-only for the workload; vdso.S reads it here).
pub(crate) const VVAR_VA: u64 = 0x7fff_fff8_0000;
/// The vDSO (`AT_SYSINFO_EHDR`).
pub(crate) const VDSO_VA: u64 = 0x7fff_fff8_1000;
/// The trampolines of redirected syscall sites: above what the workload may map, below
/// `USER_CODE_TOP` (a signal may interrupt one), within 2 GiB of the shared libraries
/// (a `jmp rel32` reaches them). They end where the frame page starts: the eight
/// entries from `FRAME_VA - 4 pages` are then all mapped and accessed, and KVM's
/// shadow paging, which fills an entry's aligned group of eight up to the first
/// entry it cannot (here: the doorbell's), maps the frame page with the stub at a
/// new address space's first syscall instead of taking a second fault for it.
pub(crate) const TRAMP_VA: u64 = FRAME_VA - TRAMP_PAGES * PAGE_SIZE;
/// The syscall stub's user-return frame page.
pub(crate) const FRAME_VA: u64 = 0x7fff_ffff_c000;
/// The syscall stub (`LSTAR`).
pub(crate) const STUB_VA: u64 = 0x7fff_ffff_d000;
/// The stub's flush entry (`ud2`).
pub(crate) const FLUSH_ENTRY_VA: u64 = STUB_VA + 8;
/// The doorbell page, mapped to `doorbell_gpa` (outside RAM: every write exits).
pub(crate) const DOORBELL_VA: u64 = 0x7fff_ffff_e000;
const _: () = assert!(TRAMP_VA > VDSO_VA && TRAMP_PAGES >= 4 && (FRAME_VA >> 12) % 8 == 4);
/// End of what the workload may map (the vDSO and the stub pages are above).
pub(crate) const USER_TOP: u64 = VVAR_VA;
/// Below this, instructions are the workload's (its own or the vDSO's).
pub(crate) const USER_CODE_TOP: u64 = FRAME_VA;
/// Where the iretq frame sits in the frame page.
pub(crate) const USER_FRAME_VA: u64 = FRAME_VA + PAGE_SIZE - 40;
/// Top of the exception stack (virtual).
pub(crate) const IST_TOP_VA: u64 = SUP_VA + IST_GPA + IST_PAGES * PAGE_SIZE;
/// Top of the exception stack (physical).
pub(crate) const IST_TOP_GPA: u64 = IST_GPA + IST_PAGES * PAGE_SIZE;
/// The exception handlers write to port `EXC_PORT_BASE + vector`.
pub(crate) const EXC_PORT_BASE: u16 = 0xc0;
/// Where the VMM resumes the code an exception interrupted (the handler's `iretq`,
/// with rsp at the CPU's frame), and where it does so after the armed flush.
pub(crate) const RESUME_VA: u64 = SUP_VA + HANDLER_GPA + super::code::RESUME_OFFSET as u64;
/// See [`RESUME_VA`].
pub(crate) const RESUME_FLUSH_VA: u64 =
    SUP_VA + HANDLER_GPA + super::code::RESUME_FLUSH_OFFSET as u64;

/// True for the exception vectors whose frame the CPU gives an error code.
pub(crate) fn has_error_code(vector: u8) -> bool {
    matches!(vector, 8 | 10..=14 | 17 | 21 | 29 | 30)
}

/// GDT selectors, as Linux lays them out.
pub(crate) const KERNEL_CS: u16 = 0x10;
/// User data selector.
pub(crate) const USER_DS: u16 = 0x2b;
/// User 64-bit code selector.
pub(crate) const USER_CS: u16 = 0x33;
/// The TSS selector.
pub(crate) const TSS_SEL: u16 = 0x40;

/// The guest-physical address of the doorbell for a guest of `ram` bytes: the first
/// 2 MiB boundary after RAM.
pub(crate) fn doorbell_gpa(ram: u64) -> u64 {
    ram.next_multiple_of(2 << 20)
}

/// The supervisor's virtual address of a guest-physical address (direct map).
pub(crate) fn direct_map(gpa: u64) -> u64 {
    DIRECT_MAP_VA + gpa
}
