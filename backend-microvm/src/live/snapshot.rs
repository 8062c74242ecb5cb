//! Snapshots and forks of a live micro-VM.
//!
//! **Taking one.** The host side makes a memory file (`memfd`) and sends it with
//! [`Cmd::Snapshot`](super::cmd::Cmd). The vCPU thread takes the snapshot at its next
//! *boundary*, a point where every task's state is in the kernel (between guest
//! instructions, never mid-syscall; a task stopped inside the supervisor is first
//! brought back to user mode by a kick, a few instructions at most, paused or not):
//!
//! - guest memory: the pages in use are written to the file, which is then sealed,
//!   and the VM's own RAM becomes a private mapping of it
//!   ([`Memory::freeze`](crate::memory::Memory::freeze)): the VM and everything
//!   started from the snapshot share its pages, each copying a page only when it
//!   writes it (the host's copy-on-write). Pages that read as zero are holes.
//! - the personality: a deep copy of the kernel ([`Kernel::snap_over`], `snap.rs`):
//!   processes, threads with their registers (the loaded task's FS/GS bases and FPU
//!   state read from the vCPU), descriptor tables, open files, pipes and `AF_UNIX`
//!   sockets with their buffers and descriptors in flight, `epoll` and `eventfd`
//!   instances, the filesystem (mount table, the in-memory /tmp and an image's
//!   writable layer), signals (dispositions, pending, masks), timers (`ITIMER_REAL`,
//!   sleepers' deadlines), the address spaces and the page cache. Host descriptors are
//!   duplicated. A terminal or an inet socket held by a process makes the snapshot
//!   fail, naming it.
//!
//! **Starting from one.** Each start is a new live sandbox on its own vCPU thread: a
//! private mapping of the memory file as its RAM, a copy of the snapshot's kernel
//! (made on that thread), a new VM, the same seccomp filter and Landlock rules as the
//! original. Host regular files the guest held open are reopened by their sandbox
//! path (after the thread is confined) and must be the same file (device, inode,
//! size, modification time) as when the snapshot was taken, else the start fails
//! naming the file; the clone then goes on with a duplicate of the original's
//! descriptor (the same open file: the VMM's I/O on host files is positional). Each start gets a
//! new boot id (`/proc/sys/kernel/random/boot_id`: the VM identity the guest sees);
//! `getrandom` and `/dev/urandom` are the host's, read at each call, so they differ
//! in every clone. What clones share is what was in guest memory: ASLR layout, seeds
//! of in-process generators (Python's `random`, hash seeds), anything a program read
//! from `getrandom` before the snapshot.
//!
//! The execs running at the snapshot keep running in each clone, detached from any
//! caller: their stdin reads end of file, their output goes nowhere. The clone's own
//! execs get new ids.
//!
//! **Why the copy may cross threads.** The VMM's state is `Rc`-based (one thread
//! each). A copy made through a [`Memo`] shares no `Rc` with its original nor with
//! anything else: moving the whole copy to another thread, and using it from only one
//! thread at a time (behind a mutex), is sound. See [`Image`].

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex};

use sandbox_core::{EnforcementLevel, LandlockMode, LiveError, Plan};
use tokio::sync::{mpsc, oneshot};
use vm_memory::GuestMemoryMmap;

use crate::guest::layout::VVAR_GPA;
use crate::kick::Control;
use crate::linux::Kernel;
use crate::memory::Layer;
use crate::snap::{FdMode, HeldFile, Memo};
use crate::stdio::{Input, Output};
use crate::vm::Vm;

/// A request for a snapshot: the memory file to fill, and where to answer.
#[derive(Debug)]
pub(crate) struct SnapReq {
    pub(crate) memfd: OwnedFd,
    /// `/proc/self/pagemap` ([`crate::memory::pagemap`]), to find the pages that
    /// changed since the last snapshot.
    pub(crate) pagemap: Option<i32>,
    /// Seal the memory file (a `memfd`); `false` for a regular file on disk (pause to
    /// disk), which cannot be sealed: it is unnamed and only this process holds it.
    pub(crate) seal: bool,
    /// For a fork: the image is moved whole into the one new sandbox (its host
    /// descriptors counted for that sandbox's thread, `FdMode::Moved`) instead of
    /// kept for copies.
    pub(crate) moved: bool,
    /// For a fork: where the original's thread sends its mounts' Landlock rules as soon
    /// as it receives the request, before it takes the snapshot (the fork's thread
    /// confines itself with them meanwhile).
    pub(crate) rules: Option<std::sync::mpsc::SyncSender<Vec<crate::confine::SourceRule>>>,
    pub(crate) reply: oneshot::Sender<Result<Image, LiveError>>,
}

/// A snapshot: the kernel's copy, the memory file, and the host files held open.
pub(crate) struct Image {
    kernel: Kernel,
    layers: Vec<Layer>,
    size: u64,
    held: Vec<HeldFile>,
    /// Bytes of guest memory written to the file.
    pub(crate) written: u64,
    /// Host descriptors of a moved image (`SnapReq::moved`), which the thread it
    /// moves to takes over in its count.
    fds: usize,
}

impl std::fmt::Debug for Image {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Image")
            .field("size", &self.size)
            .field("held", &self.held)
            .finish_non_exhaustive()
    }
}

// SAFETY: an `Image` holds a deep copy of a kernel (`Memo`): none of its `Rc`s is
// shared with anything outside it, its host descriptors are its own and counted
// against no thread's budget (`FdMode::Detached`; a moved image's against the one
// thread it moves to, once there: `FdMode::Moved`), and its guest RAM is a mapping it
// owns. Moving it whole to another thread moves every reference to its `Rc`s with
// it; it is only ever used by one thread at a time (`Snapshot` keeps it behind a
// mutex, and copies made from it are again disjoint from it).
unsafe impl Send for Image {}

/// A snapshot as the host keeps it (any thread may start sandboxes from it): taken
/// in this process, or loaded from a file (`savefile`).
#[derive(Debug)]
pub(crate) enum Snapshot {
    Taken(Box<Mutex<Image>>),
    Loaded(crate::savefile::Loaded),
}

/// Where [`Snapshot::save`] writes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum SaveTo<'a> {
    /// A new file at this path (see `savefile::write`).
    Path(&'a std::path::Path),
    /// This file, empty and open for writing.
    File(&'a std::fs::File),
}

impl Snapshot {
    pub(crate) fn new(image: Image) -> Snapshot {
        Snapshot::Taken(Box::new(Mutex::new(image)))
    }

    /// Bytes of guest memory in the snapshot's memory file.
    pub(crate) fn memory_bytes(&self) -> u64 {
        match self {
            Snapshot::Taken(i) => crate::sync::locked(i).written,
            Snapshot::Loaded(l) => l.data_bytes(),
        }
    }

    /// Writes the snapshot to a file at `path` (see `savefile`); the bytes of guest
    /// memory written. What a file cannot hold is refused, naming it.
    pub(crate) fn save(&self, to: SaveTo<'_>, plan: &Plan, next_id: u32) -> Result<u64, LiveError> {
        let failed = |e: std::io::Error| {
            let what = match to {
                SaveTo::Path(p) => format!("saving the snapshot to {}", p.display()),
                SaveTo::File(_) => "saving the snapshot to a file".to_string(),
            };
            LiveError::Failed(what, e)
        };
        let img = match self {
            Snapshot::Taken(i) => crate::sync::locked(i),
            Snapshot::Loaded(_) => return Err(LiveError::Unsupported(
                "this snapshot was loaded from a file: copy that file instead of saving it again"
                    .into(),
            )),
        };
        let mut e = crate::savefile::wire::Enc::default();
        img.kernel.save_state(&mut e).map_err(|err| {
            LiveError::Unsupported(format!("this snapshot cannot be saved to a file: {err}"))
        })?;
        let mem = (img.size, img.kernel.mm.mem.high_water());
        let plan = plan.fingerprint();
        match to {
            SaveTo::Path(p) => crate::savefile::write(p, &img.layers, mem, &e.buf, plan, next_id),
            SaveTo::File(f) => {
                crate::savefile::write_file(f, &img.layers, mem, &e.buf, plan, next_id)
            }
        }
        .map_err(failed)
    }
}

fn failed(what: &str, e: impl std::fmt::Display) -> LiveError {
    LiveError::Failed(
        "taking a snapshot".into(),
        std::io::Error::other(format!("{what}: {e}")),
    )
}

/// Takes a snapshot on the vCPU thread (see the module's doc), answering `req`.
/// `loaded` is the task whose FS/GS bases and FPU state are `cpu` (on the vCPU).
pub(crate) fn take(
    k: &mut Kernel,
    loaded: u32,
    cpu: &Result<(u64, u64, kvm_bindings::kvm_xsave), String>,
    req: SnapReq,
) {
    let r = take_image(
        k,
        loaded,
        cpu,
        req.memfd,
        (req.pagemap, req.seal, req.moved),
    );
    let _ = req.reply.send(r);
}

fn take_image(
    k: &mut Kernel,
    loaded: u32,
    cpu: &Result<(u64, u64, kvm_bindings::kvm_xsave), String>,
    memfd: OwnedFd,
    (pagemap, seal, moved): (Option<i32>, bool, bool),
) -> Result<Image, LiveError> {
    let (fs, gs, fpu) = cpu.as_ref().map_err(|e| failed("the vCPU", e))?;
    let size = k.mm.mem.size();
    let fd = memfd.as_raw_fd();
    // SAFETY: ftruncate and fcntl on a descriptor this function owns.
    if unsafe { libc::ftruncate(fd, size as libc::off_t) } != 0 {
        return Err(failed(
            "sizing the memory file",
            std::io::Error::last_os_error(),
        ));
    }
    let written =
        k.mm.mem
            .freeze(Arc::new(memfd), pagemap, seal)
            .map_err(|e| failed("writing guest memory", e))?;
    let layers = k.mm.mem.layers();
    let ram = private_ram(size, &layers).map_err(|e| failed("mapping the memory file", e))?;
    let mut m = Memo::new(if moved {
        FdMode::Moved
    } else {
        FdMode::Detached
    });
    let (tx, _) = mpsc::unbounded_channel();
    let mut kernel = k
        .snap_over(
            &mut m,
            (ram, layers.clone()),
            (
                Output::new(tx, Some(0)),
                Input::Null,
                Arc::new(Control::default()),
            ),
        )
        .map_err(|e| LiveError::Unsupported(format!("this sandbox cannot be snapshotted: {e}")))?;
    let task = if kernel.task.tid == loaded {
        Some(&mut kernel.task)
    } else {
        kernel.tasks.get_mut(&loaded)
    };
    if let Some(t) = task {
        t.fs_base = *fs;
        t.gs_base = *gs;
        t.fpu = Some(crate::snap::xsave(fpu));
    }
    Ok(Image {
        kernel,
        layers,
        size,
        held: std::mem::take(&mut m.held),
        written,
        fds: m.moved_fds,
    })
}

/// What a start from a snapshot taken in this process is called in its errors.
const START: &str = "starting from a snapshot";

/// The error of `operation` (a start) that failed at `what`.
fn start_failed(operation: &str, what: &str, e: &dyn std::fmt::Display) -> LiveError {
    LiveError::Failed(
        operation.to_string(),
        std::io::Error::other(format!("{what}: {e}")),
    )
}

/// Guest RAM of `size` bytes: a private mapping of the memory files `layers`.
fn private_ram(size: u64, layers: &[Layer]) -> std::io::Result<GuestMemoryMmap> {
    let len = usize::try_from(size).map_err(|_| std::io::Error::from_raw_os_error(libc::ENOMEM))?;
    let ram = crate::memory::guest_ram(len)?;
    crate::memory::map_layers(&ram, size, layers)?;
    Ok(ram)
}

/// What a started sandbox's thread runs: its VM and kernel, ready.
pub(crate) struct Started {
    pub(crate) vm: Vm,
    pub(crate) kernel: Kernel,
    pub(crate) tick: crate::kick::Timer,
    /// What protects the host, for a sandbox started from a file (one taken in this
    /// process has its original's).
    pub(crate) report: Option<sandbox_core::EnforcementReport>,
}

/// Builds a sandbox from `snap` on the calling thread (the new sandbox's vCPU
/// thread) and confines the thread as the original's was.
pub(crate) fn build(
    snap: &Snapshot,
    plan: &Plan,
    ctl: Arc<Control>,
    host_fds: usize,
) -> Result<Started, LiveError> {
    let start_err = |what: &str, e: &dyn std::fmt::Display| start_failed(START, what, e);
    crate::vfs::host::set_fd_budget(host_fds);
    let img = match snap {
        Snapshot::Taken(i) => i,
        Snapshot::Loaded(l) => return build_loaded(l, plan, ctl, host_fds),
    };
    let (kernel, held) = {
        let img = crate::sync::locked(img);
        let ram = private_ram(img.size, &img.layers)
            .map_err(|e| start_err("mapping the snapshot's memory", &e))?;
        let mut m = Memo::new(FdMode::Charged);
        for h in &img.held {
            m.held_from.insert(h.fd, h.clone());
        }
        let (tx, _) = mpsc::unbounded_channel();
        let kernel = img
            .kernel
            .snap_over(
                &mut m,
                (ram, img.layers.clone()),
                (Output::new(tx, Some(0)), Input::Null, ctl),
            )
            .map_err(|e| start_err("copying the snapshot's state", &e))?;
        (kernel, std::mem::take(&mut m.held))
    };
    ready_to_run(kernel, &held, plan, None)
}

/// A fork's thread confined before its snapshot comes (see [`confine_ahead`]), with
/// what it made before: its blank VM and scheduler timer.
#[derive(Debug)]
pub(crate) struct Ahead {
    blank: crate::vm::Blank,
    tick: crate::kick::Timer,
}

/// Confines a fork's thread, which made `blank`, with its original's mounts' Landlock
/// rules (`SnapReq::rules`) while the original takes the snapshot: what a start does
/// before it confines itself (the timer, the probes) first, then seccomp and Landlock
/// as [`ready_to_run`] would, so that the snapshot, the guest's state, is handled
/// behind them.
fn confine_ahead(
    blank: crate::vm::Blank,
    plan: &Plan,
    rules: &std::sync::mpsc::Receiver<Vec<crate::confine::SourceRule>>,
) -> Result<Ahead, LiveError> {
    let start_err = |what: &str, e: &dyn std::fmt::Display| start_failed(START, what, e);
    let tick = timer_and_probes(START)?;
    let rules = rules
        .recv()
        .map_err(|_| start_err("the original's mounts", &"its snapshot failed"))?;
    let confinement = crate::confine::confine_thread_to(&rules)
        .map_err(|e| start_err("confining the VMM thread", &e))?;
    landlock_as_required(plan, &confinement)?;
    Ok(Ahead { blank, tick })
}

/// Builds a fork on the calling thread (the fork's vCPU thread, which made `blank` if
/// it could): confined ahead ([`confine_ahead`]) while its original takes the
/// snapshot, it takes the image taken for it (`SnapReq::moved`) over whole, with its
/// guest RAM and host descriptors (which this thread's count takes over), not a copy;
/// then as [`build`]. A VM that could not be made ahead is made (and its error told)
/// as at any start, the thread then confined after it.
pub(crate) fn build_fork(
    image: &std::sync::mpsc::Receiver<Image>,
    rules: &std::sync::mpsc::Receiver<Vec<crate::confine::SourceRule>>,
    blank: Option<crate::vm::Blank>,
    (plan, ctl, host_fds): (&Plan, Arc<Control>, usize),
) -> Result<Started, LiveError> {
    let ahead = blank.map(|b| confine_ahead(b, plan, rules)).transpose()?;
    let img = image.recv().map_err(|_| {
        LiveError::Failed(
            "starting a fork".into(),
            std::io::Error::other("its snapshot failed"),
        )
    })?;
    crate::vfs::host::set_fd_state((img.fds, host_fds));
    let Image {
        mut kernel, held, ..
    } = img;
    let (tx, _) = mpsc::unbounded_channel();
    kernel.take_over(Output::new(tx, Some(0)), Input::Null, ctl);
    ready_to_run(kernel, &held, plan, ahead)
}

/// Refuses a VMM thread whose Landlock is less than the policy requires.
fn landlock_as_required(
    plan: &Plan,
    confinement: &crate::confine::Confinement,
) -> Result<(), LiveError> {
    if plan.landlock == LandlockMode::Required
        && confinement.landlock.level != EnforcementLevel::Full
    {
        return Err(LiveError::Unsupported(format!(
            "the policy requires full Landlock, but this kernel enforces {:?} for the VMM",
            confinement.landlock.level
        )));
    }
    Ok(())
}

/// The end of a start from a snapshot taken in this process, on the new sandbox's
/// thread: its VM over `kernel`'s memory (`ahead`'s finished, when the thread made it
/// and confined itself ahead), the thread confined as the original's was, the host
/// files `held` reopened behind that.
fn ready_to_run(
    mut kernel: Kernel,
    held: &[HeldFile],
    plan: &Plan,
    ahead: Option<Ahead>,
) -> Result<Started, LiveError> {
    let start_err = |what: &str, e: &dyn std::fmt::Display| start_failed(START, what, e);
    let confined = ahead.is_some();
    let (vm, tick) = new_vm(&mut kernel, START, ahead)?;
    if !confined {
        let confinement = crate::confine::confine_thread(kernel.vfs.sources())
            .map_err(|e| start_err("confining the VMM thread", &e))?;
        landlock_as_required(plan, &confinement)?;
    }
    // Behind the thread's seccomp filter and Landlock, as the workload's own opens.
    reopen_held(&kernel, held)?;
    kernel.cpu_mark = crate::kick::thread_cpu_time();
    Ok(Started {
        vm,
        kernel,
        tick,
        report: None,
    })
}

/// Reopens each host file the snapshot's processes held open by its sandbox path
/// (through the sandbox's own filesystem, with the access it was opened with) and
/// checks it is the same file as at the snapshot: device, inode, size, modification
/// time; else the start fails, naming it.
fn reopen_held(kernel: &Kernel, held: &[HeldFile]) -> Result<(), LiveError> {
    for h in held {
        let path = String::from_utf8_lossy(&h.path).into_owned();
        let changed = |reason: String| LiveError::File {
            operation: "reopen",
            path: path.clone(),
            errno: libc::ESTALE,
            reason,
        };
        let root = kernel.vfs.root();
        let fd = match kernel.vfs.open(&root, &h.path, h.flags, 0) {
            Ok((_, crate::vfs::Opened::Host(fd))) => fd,
            Ok(_) => {
                return Err(changed(
                    "the host file held open at the snapshot is no longer a host file there".into(),
                ))
            }
            Err(e) => {
                return Err(changed(format!(
                    "the host file held open at the snapshot cannot be reopened: {}",
                    std::io::Error::from_raw_os_error(e.0)
                )))
            }
        };
        let st = crate::vfs::host::fstat(fd.as_raw_fd()).map_err(|e| {
            changed(format!(
                "the reopened host file cannot be looked at: {}",
                std::io::Error::from_raw_os_error(e.0)
            ))
        })?;
        let now = (st.dev, st.ino, st.size, (st.mtime.sec, st.mtime.nsec));
        if now != h.id {
            return Err(changed(format!(
                "the host file held open at the snapshot changed since (device, inode, size, modification time were {:?}, are {:?})",
                h.id, now
            )));
        }
        // The same file: the copy's descriptor (a duplicate of the snapshot's, so of
        // the original's open file: all I/O on it is positional) goes on; the one
        // opened to check is closed.
    }
    Ok(())
}

/// Builds a sandbox from a snapshot file on the calling thread (the new sandbox's
/// vCPU thread): a filesystem built from `plan` (its mounts opened and checked as at
/// any create), guest RAM mapped privately from the file, the state read back over
/// both (`linux::saved`), then the thread confined as at any create.
fn build_loaded(
    file: &crate::savefile::Loaded,
    plan: &Plan,
    ctl: Arc<Control>,
    host_fds: usize,
) -> Result<Started, LiveError> {
    let start_err = |what: &str, e: &dyn std::fmt::Display| {
        start_failed("starting from a snapshot file", what, e)
    };
    let requested = plan
        .limits
        .memory
        .map(|b| b.0)
        .unwrap_or(crate::sandbox::DEFAULT_MEMORY);
    let size = requested.next_multiple_of(2 << 20);
    if size != file.header.mem_size {
        return Err(LiveError::Unsupported(format!(
            "the snapshot's guest has {} bytes of memory, a sandbox of these settings {size}",
            file.header.mem_size
        )));
    }
    let pages = (requested / 4096).min(size / 4096);
    let budget = std::rc::Rc::new(crate::memory::Budget::detached(pages));
    let vfs = crate::vfs::build_with(plan, std::rc::Rc::clone(&budget), None)
        .map_err(|e| start_err(&format!("mounting {}", e.mount.target.display()), &e.error))?;
    let layers = vec![file.layer()];
    let ram =
        private_ram(size, &layers).map_err(|e| start_err("mapping the snapshot's memory", &e))?;
    let (tx, _) = mpsc::unbounded_channel();
    let settings = crate::linux::Settings {
        pids_limit: plan.limits.pids,
        limits: crate::linux::Limits {
            file_size: None,
            deadline: None,
            cpu: None,
            open_files: 0,
            memory: 0,
            stack: 0,
        },
        out: Output::new(tx, Some(0)),
        input: Input::Null,
        ctl,
        start: std::time::Instant::now(),
        hostname: plan.hostname.clone(),
        user: (0, 0),
        vdso: false,
        network: Default::default(),
        egress: None,
    };
    let mut kernel =
        crate::linux::Kernel::load_state(&file.state, (vfs, budget), (ram, layers), settings)
            .map_err(|e| match e {
                crate::linux::saved::LoadError::Corrupt(s) => LiveError::Failed(
                    "starting from a snapshot file".into(),
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("its state is corrupt: {s}"),
                    ),
                ),
                crate::linux::saved::LoadError::Changed { path, reason } => LiveError::File {
                    operation: "reopen",
                    path,
                    errno: libc::ESTALE,
                    reason,
                },
            })?;
    let (vm, tick) = new_vm(&mut kernel, "starting from a snapshot file", None)?;
    // Asked before the thread is confined (its filter does not allow them).
    // SAFETY: geteuid has no preconditions.
    let ids = (
        unsafe { libc::geteuid() },
        crate::confine::host_identity().0,
    );
    let confinement = crate::confine::confine_thread(kernel.vfs.sources())
        .map_err(|e| start_err("confining the VMM thread", &e))?;
    if plan.landlock == LandlockMode::Required
        && confinement.landlock.level != EnforcementLevel::Full
    {
        return Err(LiveError::Unsupported(format!(
            "the policy requires full Landlock, but this kernel enforces {:?} for the VMM",
            confinement.landlock.level
        )));
    }
    let mut report = crate::sandbox::report(
        plan,
        &confinement,
        size,
        kernel.vfs.sources().len(),
        ids,
        host_fds,
    );
    report.mounts = kernel.vfs.reports.clone();
    kernel.cpu_mark = crate::kick::thread_cpu_time();
    Ok(Started {
        vm,
        kernel,
        tick,
        report: Some(report),
    })
}

/// The new VM a start from a snapshot runs `kernel` in (before the thread is
/// confined, unless it made its VM and timer, `ahead`, before it confined itself): a
/// fresh boot id, the VM over its memory, the vDSO's clock counting from this VM's
/// TSC, the scheduler timer, and the probes the confined thread cannot make. Errors
/// name `operation`, the start's.
fn new_vm(
    kernel: &mut Kernel,
    operation: &str,
    ahead: Option<Ahead>,
) -> Result<(Vm, crate::kick::Timer), LiveError> {
    let start_err = |what: &str, e: &dyn std::fmt::Display| start_failed(operation, what, e);
    kernel.boot_id = crate::linux::new_boot_id();
    let (mem, cr3) = (&kernel.mm.mem, kernel.mm.cr3());
    let (vm, tick) = match ahead {
        Some(Ahead { blank, tick }) => (Vm::over(blank, mem, cr3, 0, 0), Some(tick)),
        None => (Vm::create(mem, cr3, 0, 0), None),
    };
    let vm = vm.map_err(|e| start_err("creating the VM", &e))?;
    if kernel.vdso {
        if let Some(base) = vm.time_base() {
            let _ = kernel
                .mm
                .mem
                .write(VVAR_GPA, &crate::guest::vdso::vvar(&base));
        }
    }
    let tick = match tick {
        Some(t) => t,
        None => timer_and_probes(operation)?,
    };
    Ok((vm, tick))
}

/// What a start makes before its thread confines itself, besides the VM: the
/// scheduler timer (aimed at the calling thread) and the probes the confined thread
/// cannot make.
fn timer_and_probes(operation: &str) -> Result<crate::kick::Timer, LiveError> {
    let tick = crate::kick::Timer::one_shot()
        .map_err(|e| start_failed(operation, "creating the scheduler timer", &e))?;
    crate::probe::kvm_kind();
    crate::linux::stats_enabled();
    Ok(tick)
}
