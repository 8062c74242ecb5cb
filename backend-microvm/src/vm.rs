//! Creating the VM: KVM handles, the memory slot, the vCPU and its first state (long
//! mode, paging, descriptor tables, syscall MSRs, CPUID, XCR0).

use std::sync::OnceLock;

use kvm_bindings::{
    kvm_msr_entry, kvm_regs, kvm_segment, kvm_userspace_memory_region, kvm_xcrs, CpuId, Msrs,
    KVM_MAX_CPUID_ENTRIES,
};
use kvm_ioctls::{Cap, Kvm, SyncReg, VcpuFd, VmFd};
use vm_memory::{GuestAddress, GuestMemoryBackend};

use crate::guest::layout::*;
use crate::guest::IDT_ENTRIES;
use crate::memory::Memory;

/// The VM could not be created.
#[derive(Debug, thiserror::Error)]
pub(crate) enum VmError {
    /// `/dev/kvm` cannot be opened.
    #[error("cannot open /dev/kvm")]
    Open(#[source] std::io::Error),
    /// A KVM call failed.
    #[error("KVM call failed: {0}")]
    Kvm(&'static str, #[source] std::io::Error),
}

fn kvm_err(what: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> VmError {
    move |e| VmError::Kvm(what, std::io::Error::from_raw_os_error(e.errno()))
}

/// The process's handle on `/dev/kvm` and what it supports, opened once.
pub(crate) struct KvmHost {
    kvm: Kvm,
    cpuid: CpuId,
}

impl std::fmt::Debug for KvmHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KvmHost")
    }
}

/// `/dev/kvm`, opened and queried on first use.
pub(crate) fn kvm_host() -> Result<&'static KvmHost, VmError> {
    static HOST: OnceLock<KvmHost> = OnceLock::new();
    if let Some(h) = HOST.get() {
        return Ok(h);
    }
    let kvm =
        Kvm::new().map_err(|e| VmError::Open(std::io::Error::from_raw_os_error(e.errno())))?;
    let cached = crate::cpuid_cache::load().and_then(|e| CpuId::from_entries(&e).ok());
    let cpuid = match cached {
        Some(c) => c,
        None => {
            let c = kvm
                .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
                .map_err(kvm_err("KVM_GET_SUPPORTED_CPUID"))?;
            crate::cpuid_cache::store(c.as_slice());
            c
        }
    };
    Ok(HOST.get_or_init(|| KvmHost { kvm, cpuid }))
}

/// XSAVE components offered to the guest: x87, SSE, AVX and the AVX-512 state.
const XCR0_WANTED: u64 = 0xe7;

impl KvmHost {
    /// The CPUID the guest sees, and the XCR0 that matches it.
    fn guest_cpuid(&self) -> (CpuId, u64) {
        let mut cpuid = self.cpuid.clone();
        let mut xcr0_supported = 0x3u64;
        for e in cpuid.as_mut_slice() {
            match (e.function, e.index) {
                (0xd, 0) => xcr0_supported = u64::from(e.eax) | (u64::from(e.edx) << 32),
                // The hypervisor bit: the workload may know it is virtualized.
                (1, _) => e.ecx |= 1 << 31,
                _ => {}
            }
        }
        let mut xcr0 = xcr0_supported & XCR0_WANTED;
        if xcr0 & 0xe0 != 0xe0 {
            xcr0 &= 0x7; // AVX-512 needs all three of its components
        }
        if xcr0 & 0x4 == 0 {
            xcr0 &= 0x3;
        }
        (cpuid, xcr0 | 0x3)
    }
}

/// What the guest's timestamp counter shows, in words, for the enforcement report:
/// `kvm_kind` is `vmx`, `svm` or `pvm` (see `probe::kvm_kind`).
pub(crate) fn tsc_note(kvm_kind: &str) -> String {
    if kvm_kind == "pvm" {
        "the host's: PVM runs the guest's rdtsc and rdtscp on the host's counter and TSC_AUX (the host CPU number) and has no offset for them (the VMM's per-VM offset and TSC_AUX 0 apply on VT-x and AMD-V)".into()
    } else {
        "per VM: counts from zero at VM start (KVM's TSC offset), rdtscp's TSC_AUX is 0".into()
    }
}

/// A created VM with its one vCPU.
pub(crate) struct Vm {
    vm: VmFd,
    /// The vCPU. Its special registers are read and set only through [`Vm::sregs`] and
    /// [`Vm::set_sregs`]: with `sync_sregs`, a `KVM_SET_SREGS` made around them would be
    /// undone by the copy waiting in `kvm_run`, and a `KVM_GET_SREGS` would miss it.
    pub(crate) vcpu: VcpuFd,
    /// The memory slots, covering guest RAM from 0 up to where the last ends (see
    /// [`Vm::cover`]).
    slots: Vec<kvm_userspace_memory_region>,
    /// The guest RAM mapping's host address and length.
    ram: (u64, u64),
    /// Where the doorbell is in guest-physical memory.
    pub(crate) doorbell_gpa: u64,
    /// Registers travel through `kvm_run` (`KVM_CAP_SYNC_REGS`): no ioctl per exit.
    sync_regs: bool,
    /// The special registers travel through `kvm_run` too (`KVM_SYNC_X86_SREGS`): a
    /// task switch, a page fault's CR2 and an address-space switch make no ioctl for
    /// them. Every vCPU ioctl loads and puts the vCPU, which on PVM reads host MSRs
    /// (a trip to the hypervisor below when the host is itself a VM): on the
    /// machines measured, most of a task switch's cost in the VMM.
    sync_sregs: bool,
    /// KVM's counters of the vCPU, for `HSB_MICROVM_STATS=1`.
    pub(crate) kvm_stats: Option<crate::kvmstats::KvmStats>,
    /// Where the vDSO's clocks start (see [`Vm::time_base`]).
    time: Option<crate::guest::vdso::TimeBase>,
}

impl std::fmt::Debug for Vm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vm")
            .field("doorbell_gpa", &self.doorbell_gpa)
            .finish_non_exhaustive()
    }
}

/// A flat user-mode (DPL 3) segment: 64-bit code, or data.
pub(crate) fn user_segment(selector: u16, code: bool) -> kvm_segment {
    kvm_segment {
        base: 0,
        limit: 0xffff_ffff,
        selector,
        type_: if code { 11 } else { 3 },
        present: 1,
        dpl: 3,
        db: u8::from(!code),
        s: 1,
        l: u8::from(code),
        g: 1,
        avl: 0,
        unusable: 0,
        padding: 0,
    }
}

/// Sets `sregs`' code, data and stack segments for user mode (`USER_CS`, `USER_DS`).
pub(crate) fn set_user_segments(sregs: &mut kvm_bindings::kvm_sregs) {
    sregs.cs = user_segment(USER_CS, true);
    let ds = user_segment(USER_DS, false);
    (sregs.ds, sregs.es, sregs.ss) = (ds, ds, ds);
}

const MSR_STAR: u32 = 0xc000_0081;
const MSR_LSTAR: u32 = 0xc000_0082;
const MSR_CSTAR: u32 = 0xc000_0083;
const MSR_SYSCALL_MASK: u32 = 0xc000_0084;
const MSR_IA32_TSC: u32 = 0x10;
const MSR_TSC_AUX: u32 = 0xc000_0103;
/// RFLAGS cleared on `syscall`: TF, IF, DF, IOPL, NT, AC (as Linux).
const SYSCALL_MASK: u64 = 0x47700;

/// An MSR to set.
fn msr(index: u32, data: u64) -> kvm_msr_entry {
    kvm_msr_entry {
        index,
        data,
        ..Default::default()
    }
}

/// Gives the VM an in-kernel local APIC (`KVM_CAP_SPLIT_IRQCHIP`: no PIC, no I/O APIC),
/// before its vCPU is made; best effort.
///
/// The guest never uses it: nothing programs its timer and nothing is routed to it
/// (the VMM stops the vCPU with `immediate_exit`, and the guest never halts; its
/// registers are reachable only by `wrmsr`, which guest user mode cannot run). It is
/// there for what a vCPU *without* one costs: Linux counts those in a static key
/// (`kvm_has_noapic_vcpu`), and the first such vCPU on the host and the last one to go
/// each patch the kernel's text, with an IPI to every CPU: ~0.3 ms of a one-shot run
/// on PVM (`perf record -g`: `smp_text_poke_batch_finish` under `kvm_create_lapic` and
/// `kvm_arch_vcpu_destroy`). An in-kernel APIC counts in another key whose decrement
/// is deferred by a second, so back-to-back VMs (one-shot runs, forks) patch nothing.
/// Where the capability is missing the VM goes on without it, as before.
fn in_kernel_lapic(vm: &VmFd) {
    let cap = kvm_bindings::kvm_enable_cap {
        cap: kvm_bindings::KVM_CAP_SPLIT_IRQCHIP,
        // No I/O APIC pins reserved: no interrupt is ever routed.
        args: [0; 4],
        ..Default::default()
    };
    if let Err(e) = vm.enable_cap(&cap) {
        tracing::debug!("KVM_CAP_SPLIT_IRQCHIP: {e}; the vCPU has no in-kernel APIC");
    }
}

/// The first memory slot covers at least this much guest RAM (see [`Vm::cover`]).
const FIRST_SLOT: u64 = 64 << 20;

/// A VM and its vCPU made before the memory they will run over: everything of
/// [`Vm::create`] that needs no guest memory (`KVM_CREATE_VM`, `KVM_CREATE_VCPU`,
/// CPUID, the control registers but `CR3`, MSRs, XCR0, the clocks' base), about half
/// of a VM's start, and every call of it that the VMM thread's seccomp filter does not
/// allow: [`Vm::over`] finishes it with calls the filter allows, so a thread may
/// confine itself in between. A fork makes it on the new sandbox's thread while its
/// original takes the snapshot (`live/host.rs`).
pub(crate) struct Blank {
    vm: VmFd,
    vcpu: VcpuFd,
    sregs: kvm_bindings::kvm_sregs,
    /// `KVM_CAP_SYNC_REGS`: the registers KVM can pass through `kvm_run`.
    sync_regs: i32,
    kvm_stats: Option<crate::kvmstats::KvmStats>,
    time: Option<crate::guest::vdso::TimeBase>,
}

impl std::fmt::Debug for Blank {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Blank").finish_non_exhaustive()
    }
}

impl Blank {
    /// Creates the VM and sets up its vCPU (see [`Blank`]); `cr3` for now (0: none yet).
    pub(crate) fn new(cr3: u64) -> Result<Blank, VmError> {
        let host = kvm_host()?;
        let vm = host.kvm.create_vm().map_err(kvm_err("KVM_CREATE_VM"))?;
        in_kernel_lapic(&vm);
        let vcpu = vm.create_vcpu(0).map_err(kvm_err("KVM_CREATE_VCPU"))?;
        let (cpuid, xcr0) = host.guest_cpuid();
        vcpu.set_cpuid2(&cpuid).map_err(kvm_err("KVM_SET_CPUID2"))?;

        let mut sregs = vcpu.get_sregs().map_err(kvm_err("KVM_GET_SREGS"))?;
        sregs.cs = user_segment(USER_CS, true);
        let ds = user_segment(USER_DS, false);
        (sregs.ds, sregs.es, sregs.fs, sregs.gs, sregs.ss) = (ds, ds, ds, ds, ds);
        sregs.tr = kvm_segment {
            base: SUP_VA + GDT_GPA + TSS_OFFSET,
            limit: 0x67,
            selector: TSS_SEL,
            type_: 11,
            present: 1,
            ..Default::default()
        };
        sregs.gdt.base = SUP_VA + GDT_GPA;
        sregs.gdt.limit = 10 * 8 - 1;
        sregs.idt.base = SUP_VA + IDT_GPA;
        sregs.idt.limit = (IDT_ENTRIES * 16 - 1) as u16;
        // A fork's address space comes with the memory (`Vm::over`).
        sregs.cr3 = cr3;
        // PAE, OSFXSR, OSXMMEXCPT, FSGSBASE, OSXSAVE.
        sregs.cr4 = (1 << 5) | (1 << 9) | (1 << 10) | (1 << 16) | (1 << 18);
        // SCE, LME, LMA, NXE.
        sregs.efer = (1 << 0) | (1 << 8) | (1 << 10) | (1 << 11);
        // PE, MP, ET, NE, WP, PG.
        sregs.cr0 = (1 << 0) | (1 << 1) | (1 << 4) | (1 << 5) | (1 << 16) | (1 << 31);
        vcpu.set_sregs(&sregs).map_err(kvm_err("KVM_SET_SREGS"))?;

        let msrs = Msrs::from_entries(&[
            msr(
                MSR_STAR,
                (u64::from(USER_CS - 16) << 48) | (u64::from(KERNEL_CS) << 32),
            ),
            msr(MSR_LSTAR, STUB_VA),
            // Compatibility-mode syscalls have no code segment to come from; be safe.
            msr(MSR_CSTAR, FLUSH_ENTRY_VA),
            msr(MSR_SYSCALL_MASK, SYSCALL_MASK),
        ])
        .map_err(|_| VmError::Kvm("MSR list", std::io::Error::from_raw_os_error(libc::EINVAL)))?;
        let n = vcpu.set_msrs(&msrs).map_err(kvm_err("KVM_SET_MSRS"))?;
        if n != 4 {
            return Err(VmError::Kvm(
                "KVM_SET_MSRS",
                std::io::Error::from_raw_os_error(libc::EINVAL),
            ));
        }
        let mut xcrs = kvm_xcrs {
            nr_xcrs: 1,
            ..Default::default()
        };
        xcrs.xcrs[0].xcr = 0;
        xcrs.xcrs[0].value = xcr0;
        if vcpu.set_xcrs(&xcrs).is_err() {
            xcrs.xcrs[0].value = 0x7;
            vcpu.set_xcrs(&xcrs).map_err(kvm_err("KVM_SET_XCRS"))?;
        }
        // The guest's timestamp counter counts from zero when the VM is made (KVM turns
        // the write into a per-VM offset) and `rdtscp`'s TSC_AUX is 0, not the number
        // of the host CPU the vCPU runs on. VT-x and AMD-V apply both; PVM runs the
        // guest on the host's counter and MSR (see `tsc_note`). Best effort: a host
        // that refuses one leaves the guest as PVM does.
        let clock =
            Msrs::from_entries(&[msr(MSR_IA32_TSC, 0), msr(MSR_TSC_AUX, 0)]).map_err(|_| {
                VmError::Kvm("MSR list", std::io::Error::from_raw_os_error(libc::EINVAL))
            })?;
        let _ = vcpu.set_msrs(&clock);
        let time = time_base(&vcpu);
        let sync_regs = host.kvm.check_extension_int(Cap::SyncRegs);
        let kvm_stats = crate::linux::stats_enabled()
            .then(|| crate::kvmstats::KvmStats::open(&vcpu))
            .flatten();
        Ok(Blank {
            vm,
            vcpu,
            sregs,
            sync_regs,
            kvm_stats,
            time,
        })
    }
}

impl Vm {
    /// Creates the VM over `mem` (whose supervisor tables are built) and sets the vCPU
    /// to enter user mode at `entry` with stack `rsp`, in the address space `cr3`.
    pub(crate) fn create(mem: &Memory, cr3: u64, entry: u64, rsp: u64) -> Result<Vm, VmError> {
        Vm::over(Blank::new(cr3)?, mem, cr3, entry, rsp)
    }

    /// Finishes `blank` as [`Vm::create`] would have made it.
    pub(crate) fn over(
        blank: Blank,
        mem: &Memory,
        cr3: u64,
        entry: u64,
        rsp: u64,
    ) -> Result<Vm, VmError> {
        let Blank {
            vm,
            vcpu,
            mut sregs,
            sync_regs,
            kvm_stats,
            time,
        } = blank;
        let userspace_addr = mem.ram().get_host_address(GuestAddress(0)).map_err(|_| {
            VmError::Kvm(
                "guest memory",
                std::io::Error::from_raw_os_error(libc::EFAULT),
            )
        })? as u64;
        if sregs.cr3 != cr3 {
            sregs.cr3 = cr3;
            vcpu.set_sregs(&sregs).map_err(kvm_err("KVM_SET_SREGS"))?;
        }
        let regs = kvm_regs {
            rip: entry,
            rsp,
            rflags: 0x202,
            ..Default::default()
        };
        vcpu.set_regs(&regs).map_err(kvm_err("KVM_SET_REGS"))?;
        let mut vcpu = vcpu;
        let sync_sregs = sync_regs & kvm_bindings::KVM_SYNC_X86_SREGS as i32 != 0;
        let sync_regs = sync_regs & kvm_bindings::KVM_SYNC_X86_REGS as i32 != 0;
        if sync_regs {
            vcpu.set_sync_valid_reg(SyncReg::Register);
        }
        if sync_sregs {
            // `kvm_run` holds them only after a KVM_RUN: start it from the vCPU's.
            let now = vcpu.get_sregs().map_err(kvm_err("KVM_GET_SREGS"))?;
            vcpu.sync_regs_mut().sregs = now;
            vcpu.set_sync_valid_reg(SyncReg::SystemRegister);
        }
        let mut vm = Vm {
            vm,
            vcpu,
            slots: Vec::new(),
            ram: (userspace_addr, mem.size()),
            doorbell_gpa: doorbell_gpa(mem.size()),
            sync_regs,
            sync_sregs,
            kvm_stats,
            time,
        };
        vm.cover(mem.high_water())?;
        Ok(vm)
    }

    /// Guest RAM up to `end` (at least) is in the VM's memory slots: the slots grow
    /// with the frames the VMM has handed out (every frame the guest can reach lies
    /// below [`Memory::high_water`]), each new one at least doubling what they cover.
    /// KVM sizes a slot's reverse maps by its length, so a VM pays for the RAM it uses,
    /// not for its limit (a 1 GiB slot costs about 0.6 ms to add on PVM, at each VM
    /// start and each slot reload). Called before every entry into the guest.
    pub(crate) fn cover(&mut self, end: u64) -> Result<(), VmError> {
        let covered = self
            .slots
            .last()
            .map_or(0, |s| s.guest_phys_addr + s.memory_size);
        let (host, size) = self.ram;
        if end <= covered || covered >= size {
            return Ok(());
        }
        let to = end
            .max(covered * 2)
            .max(FIRST_SLOT)
            .next_multiple_of(2 << 20)
            .min(size);
        let slot = kvm_userspace_memory_region {
            slot: self.slots.len() as u32,
            flags: 0,
            guest_phys_addr: covered,
            memory_size: to - covered,
            userspace_addr: host + covered,
        };
        // SAFETY: the region is part of the guest RAM mapping (`covered < to <= size`,
        // at the same offset from its start), owned by the `Memory` this VM was
        // created over, which the caller keeps alive (and mapped) as long as this VM:
        // the run drops the VM before the memory.
        unsafe { self.vm.set_user_memory_region(slot) }
            .map_err(kvm_err("KVM_SET_USER_MEMORY_REGION"))?;
        self.slots.push(slot);
        Ok(())
    }

    /// The general registers at the last exit.
    pub(crate) fn regs(&self) -> Result<kvm_regs, VmError> {
        if self.sync_regs {
            Ok(self.vcpu.sync_regs().regs)
        } else {
            self.vcpu.get_regs().map_err(kvm_err("KVM_GET_REGS"))
        }
    }

    /// Sets the general registers for the next entry.
    pub(crate) fn set_regs(&mut self, regs: &kvm_regs) -> Result<(), VmError> {
        if self.sync_regs {
            self.vcpu.sync_regs_mut().regs = *regs;
            self.vcpu.set_sync_dirty_reg(SyncReg::Register);
            Ok(())
        } else {
            self.vcpu.set_regs(regs).map_err(kvm_err("KVM_SET_REGS"))
        }
    }

    /// The special registers at the last exit, with what was set since (through
    /// [`Vm::set_sregs`]: the only way they are set once the VM is made, so a read
    /// never misses a write still waiting for the next entry).
    pub(crate) fn sregs(&self) -> Result<kvm_bindings::kvm_sregs, VmError> {
        if self.sync_sregs {
            Ok(self.vcpu.sync_regs().sregs)
        } else {
            self.vcpu.get_sregs().map_err(kvm_err("KVM_GET_SREGS"))
        }
    }

    /// Sets the special registers for the next entry.
    pub(crate) fn set_sregs(&mut self, sregs: &kvm_bindings::kvm_sregs) -> Result<(), VmError> {
        if self.sync_sregs {
            self.vcpu.sync_regs_mut().sregs = *sregs;
            self.vcpu.set_sync_dirty_reg(SyncReg::SystemRegister);
            Ok(())
        } else {
            self.vcpu.set_sregs(sregs).map_err(kvm_err("KVM_SET_SREGS"))
        }
    }

    /// Where the vDSO's clocks start: the guest's TSC and the host's clocks when the
    /// VM was made, and the TSC's frequency. `None` when KVM cannot tell (then no
    /// vDSO is offered).
    pub(crate) fn time_base(&self) -> Option<crate::guest::vdso::TimeBase> {
        self.time
    }

    /// Sets the registers the first task starts with.
    pub(crate) fn set_entry(&mut self, rip: u64, rsp: u64) -> Result<(), VmError> {
        let regs = kvm_regs {
            rip,
            rsp,
            rflags: 0x202,
            ..Default::default()
        };
        self.set_regs(&regs)
    }

    /// Deletes and re-adds the memory slots: KVM drops every translation of guest
    /// memory (shadow pages on PVM, EPT/NPT and TLB entries on VT-x/AMD-V).
    pub(crate) fn reload_slot(&self) -> Result<(), VmError> {
        for slot in &self.slots {
            let empty = kvm_userspace_memory_region {
                memory_size: 0,
                ..*slot
            };
            // SAFETY: deleting a slot (size 0) maps nothing.
            unsafe { self.vm.set_user_memory_region(empty) }
                .map_err(kvm_err("KVM_SET_USER_MEMORY_REGION"))?;
        }
        for slot in &self.slots {
            // SAFETY: re-adding a slot maps the same part of guest RAM as before, which
            // is still alive (see `cover`).
            unsafe { self.vm.set_user_memory_region(*slot) }
                .map_err(kvm_err("KVM_SET_USER_MEMORY_REGION"))?;
        }
        Ok(())
    }
}

/// The guest's TSC and the host's clocks now, and the TSC's frequency (see
/// [`Vm::time_base`]).
fn time_base(vcpu: &VcpuFd) -> Option<crate::guest::vdso::TimeBase> {
    let tsc_khz = vcpu.get_tsc_khz().ok()?;
    let mut msrs = Msrs::from_entries(&[msr(MSR_IA32_TSC, 0)]).ok()?;
    if vcpu.get_msrs(&mut msrs).ok()? != 1 {
        return None;
    }
    let clock = |id| {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: valid timespec pointer; the clock ids are constants.
        unsafe { libc::clock_gettime(id, &mut ts) };
        (ts.tv_sec.max(0) as u64) * 1_000_000_000 + ts.tv_nsec.max(0) as u64
    };
    let tsc = msrs.as_slice()[0].data;
    Some(crate::guest::vdso::TimeBase {
        tsc,
        tsc_khz,
        mono_ns: clock(libc::CLOCK_MONOTONIC),
        real_ns: clock(libc::CLOCK_REALTIME),
        boot_ns: clock(libc::CLOCK_BOOTTIME),
    })
}
