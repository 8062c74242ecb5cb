//! Warming a fork started ahead for a warm template: the shadow page tables filled
//! before the run, not during it.
//!
//! On PVM (no EPT) a new VM starts with empty shadow page tables: each page a
//! template's run touches first costs KVM a shadow-page fault (~10 µs here), so a
//! `print(6*7)` forked from a Python template spent 7–8 ms of its ~9 ms in ~680 of
//! them, whether its fork was started ahead or not. A fork started ahead (a pool's)
//! now takes those faults while it waits for its stdin:
//!
//! - **Recording.** A run that records (see [`Shared::wants_record`]) starts with the
//!   accessed and dirty bits of its process's user pages cleared ([`clear_marks`], on
//!   a fork that has not entered the guest yet, so that KVM holds no shadow of them).
//!   KVM's shadow paging sets them again as the run first reads or writes each page;
//!   when the run's process ends, the pages marked accessed are the ones it touched and
//!   those marked dirty the ones it wrote. That list (virtual addresses, read or
//!   written) is kept with the snapshot, replaced by each recording (a recording on a
//!   warmed fork also finds the pages its warming touched: the list only grows).
//! - **Warming.** A fork started ahead (its stdin not there yet) runs the stub page's
//!   `warm` pass in user mode, in its parked process's address space, with no task on
//!   the vCPU: it reads a byte of each listed page, and adds zero atomically to a byte
//!   of each written one, so KVM builds the same shadow entries the run would (a
//!   write needs a writable one). Only pages mapped present, user-accessible and (for
//!   a write) writable in that space are listed to it; the pass changes no byte the
//!   guest can see (page-table entries are the VMM's, never mapped for the guest). On
//!   the host it copies the pages the run would write (the host's copy-on-write), as
//!   the run would have. It runs in batches of what the frame page holds, before the
//!   fork says it is ready, and stops at a batch boundary once the sandbox is killed;
//!   any other exit (a fault, a kick) ends it too. The vCPU's registers are the VMM's
//!   own here: the run loop sets every one when it first enters a task.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use kvm_bindings::kvm_regs;
use kvm_ioctls::VcpuExit;

use crate::guest::layout::{FRAME_GPA, FRAME_VA, PAGE_SIZE, STUB_VA, USER_FRAME_VA, USER_TOP};
use crate::kick::Control;
use crate::memory::Memory;
use crate::mm::pagetable::{PageTables, PTE_A, PTE_D, PTE_P, PTE_U, PTE_W};
use crate::vm::Vm;

/// The doorbell offset the `warm` pass writes when done (supervisor.S).
pub(crate) const DONE_OFFSET: u64 = 2;
/// Where the pass's list sits in the frame page: after the fast-call slot, below the
/// user-mode entry's scratch stack (`USTACK`, 0x800, growing down a few words).
const LIST_OFFSET: u64 = 0x100;
const LIST_END: u64 = 0x700;
/// Entries of one batch.
const BATCH: usize = ((LIST_END - LIST_OFFSET) / 8) as usize;
// The fast-call slot ends before 0x60 (`SLOT_USP` + 8); `uentry`'s scratch stack
// (`USTACK`, 0x800) grows down by two words.
const _: () = assert!(LIST_OFFSET >= 0x60 && LIST_END <= 0x800 - 0x20 && BATCH >= 128);
/// Most pages one entry covers (its count has 11 bits).
const RUN_MAX: u64 = 2048;
/// Most pages recorded (64 MiB): a run that touched more is warmed in part.
const PAGES_MAX: usize = 16 << 10;
/// Once a run was recorded, one run in this many records again (what a template's
/// runs touch changes with their input).
const RECORD_EVERY: u64 = 32;

/// A page the run touched: its address, and whether it wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Touch {
    pub(crate) va: u64,
    pub(crate) write: bool,
}

/// What the forks of one snapshot share: the last recorded run's pages.
#[derive(Debug)]
pub(crate) struct Shared {
    touched: Mutex<Option<Arc<[Touch]>>>,
    /// Runs that asked whether to record (see [`Shared::wants_record`]).
    runs: AtomicU64,
    /// Set once a fork was started ahead from the snapshot (a template's pool): only
    /// then is a recording of any use.
    ahead: std::sync::atomic::AtomicBool,
}

/// Whether forks started ahead warm up: unless `HSB_MICROVM_WARM=0` (read once,
/// where a snapshot is made, before any vCPU thread of it is confined).
pub(crate) fn enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("HSB_MICROVM_WARM").is_none_or(|v| v != "0"))
}

impl Shared {
    pub(crate) fn new() -> Arc<Shared> {
        enabled();
        Arc::new(Shared {
            touched: Mutex::new(None),
            runs: AtomicU64::new(0),
            ahead: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// A fork is being started ahead from the snapshot (it will want a recording).
    pub(crate) fn started_ahead(&self) {
        self.ahead.store(true, Ordering::Relaxed);
    }

    /// Whether the run starting now records its pages: once forks are started ahead,
    /// the first runs until one did, then one in [`RECORD_EVERY`] (recording walks the
    /// run's page tables as its process ends, before its outcome is told).
    pub(crate) fn wants_record(&self) -> bool {
        if !enabled() || !self.ahead.load(Ordering::Relaxed) {
            return false;
        }
        let n = self.runs.fetch_add(1, Ordering::Relaxed);
        crate::sync::locked(&self.touched).is_none() || n % RECORD_EVERY == 0
    }

    /// The last recorded run's pages.
    pub(crate) fn touched(&self) -> Option<Arc<[Touch]>> {
        crate::sync::locked(&self.touched).clone()
    }

    /// Records the pages of the address space `pt` marked accessed since
    /// [`clear_marks`] (see the module's doc).
    pub(crate) fn record(&self, mem: &mut Memory, pt: PageTables) {
        let mut out = Vec::new();
        let walked = pt.for_each_mapped(mem, 0, USER_TOP, |_, va, _, pte| {
            let seen = PTE_P | PTE_U | PTE_A;
            if pte & seen != seen || out.len() >= PAGES_MAX {
                return;
            }
            let write = pte & (PTE_W | PTE_D) == PTE_W | PTE_D;
            out.push(Touch { va, write });
        });
        if walked.is_ok() {
            *crate::sync::locked(&self.touched) = Some(out.into());
        }
    }
}

/// Clears the accessed and dirty bits of the user pages mapped in `pt`, for a run
/// that records (see the module's doc). Only on a sandbox that has not entered the
/// guest yet: KVM then holds no shadow of these entries, which would go on without
/// setting the bits again. The VMM reads neither bit; a leaf entry it rewrites
/// (`mprotect`, a fault) gets both back, which only adds that page to the record.
pub(crate) fn clear_marks(mem: &mut Memory, pt: PageTables) {
    let _ = pt.for_each_mapped(mem, 0, USER_TOP, |m, _, slot, pte| {
        if pte & (PTE_P | PTE_U) == PTE_P | PTE_U && pte & (PTE_A | PTE_D) != 0 {
            m.write_u64(slot, pte & !(PTE_A | PTE_D));
        }
    });
}

/// One entry of the pass's list: `pages` pages from `va`.
fn entry(va: u64, pages: u64, write: bool) -> u64 {
    debug_assert!((1..=RUN_MAX).contains(&pages) && va % PAGE_SIZE == 0);
    va | ((pages - 1) << 1) | u64::from(write)
}

/// The pass's list for `touched` in the space `pt`: the pages mapped there as the
/// touch needs (present and user-accessible; writable for a write), in runs.
pub(crate) fn plan(mem: &mut Memory, pt: PageTables, touched: &[Touch]) -> Vec<u64> {
    let mut out: Vec<(u64, u64, bool)> = Vec::new();
    for t in touched {
        let Some((_, pte)) = pt.lookup(mem, t.va) else {
            continue;
        };
        let need = PTE_P | PTE_U | if t.write { PTE_W } else { 0 };
        if pte & need != need || t.va >= USER_TOP {
            continue;
        }
        match out.last_mut() {
            Some((va, n, w)) if *w == t.write && *va + *n * PAGE_SIZE == t.va && *n < RUN_MAX => {
                *n += 1;
            }
            _ => out.push((t.va, 1, t.write)),
        }
    }
    out.into_iter().map(|(va, n, w)| entry(va, n, w)).collect()
}

/// What a pass did.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Warmed {
    pub(crate) entries: usize,
    pub(crate) pages: u64,
    pub(crate) batches: usize,
    /// It stopped before the end (a kill, or an exit other than its own).
    pub(crate) cut: bool,
}

/// Runs the `warm` pass over `list` in the space whose root is `root` (see the
/// module's doc). The vCPU's segments and root are put back as they were; its
/// registers are left for the run loop to set.
pub(crate) fn run(vm: &mut Vm, mem: &Memory, root: u64, list: &[u64], ctl: &Control) -> Warmed {
    let mut done = Warmed::default();
    let Ok(saved) = vm.sregs() else {
        done.cut = true;
        return done;
    };
    let mut sregs = saved;
    sregs.cr3 = root;
    crate::vm::set_user_segments(&mut sregs);
    if vm.set_sregs(&sregs).is_err() {
        done.cut = true;
        return done;
    }
    for batch in list.chunks(BATCH) {
        if ctl.killed() || crate::kick::kicked() {
            done.cut = true;
            break;
        }
        for (i, e) in batch.iter().enumerate() {
            mem.write_u64(FRAME_GPA + LIST_OFFSET + 8 * i as u64, *e);
        }
        // Entered as the run loop enters a task: through the stub's `iretq` (on PVM
        // that is what puts the vCPU in user mode, whose shadow pages the run uses).
        let frame = crate::vcpu::iret_frame(STUB_VA + crate::guest::WARM_OFFSET as u64, 0x2, 0);
        for (i, v) in frame.iter().enumerate() {
            mem.write_u64(FRAME_GPA + (USER_FRAME_VA - FRAME_VA) + 8 * i as u64, *v);
        }
        let regs = kvm_regs {
            rip: STUB_VA + 6,
            rsp: USER_FRAME_VA,
            rsi: FRAME_VA + LIST_OFFSET,
            rcx: batch.len() as u64,
            rflags: 0x2,
            ..Default::default()
        };
        if vm.set_regs(&regs).is_err() {
            done.cut = true;
            break;
        }
        let ours = vm.doorbell_gpa + DONE_OFFSET;
        // Input that comes meanwhile kicks the pass out, as it kicks a task.
        ctl.entering();
        let ran = vm.vcpu.run();
        ctl.left();
        let finished = matches!(ran, Ok(VcpuExit::MmioWrite(a, _)) if a == ours);
        done.batches += 1;
        if !finished {
            done.cut = true;
            break;
        }
        done.entries += batch.len();
        done.pages += batch.iter().map(|e| ((e & 0xffe) >> 1) + 1).sum::<u64>();
    }
    for i in 0..BATCH as u64 {
        mem.write_u64(FRAME_GPA + LIST_OFFSET + 8 * i, 0);
    }
    if vm.set_sregs(&saved).is_err() {
        done.cut = true;
    }
    done
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_encode_address_count_and_write() {
        assert_eq!(entry(0x40_0000, 1, false), 0x40_0000);
        assert_eq!(entry(0x40_0000, 3, true), 0x40_0000 | 4 | 1);
        assert_eq!(entry(0x7000, RUN_MAX, false) & 0xffe, (RUN_MAX - 1) << 1);
    }

    /// tests/programs/redirect.c enters the pass by its address.
    #[test]
    fn the_pass_is_where_the_test_program_looks() {
        assert_eq!(STUB_VA + crate::guest::WARM_OFFSET as u64, 0x7fff_ffff_d187);
    }
}
