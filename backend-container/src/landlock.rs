//! Landlock for the workload: the parent creates the ruleset (with the `landlock` crate,
//! for exactly what the running kernel supports) and computes every rule's access mask;
//! the child adds the rules on the sandbox's own paths after `pivot_root` and restricts
//! itself, with raw syscalls.

use std::os::fd::OwnedFd;
use std::sync::OnceLock;

use landlock::{
    Access, AccessFs, AccessNet, CompatLevel, Compatible, Ruleset, RulesetAttr, Scope, ABI,
};
use sandbox_core::{EnforcementLevel, LandlockReport, Network};

/// The newest ABI whose features we use: filesystem (1), refer (2), truncate (3),
/// TCP (4), device ioctls (5), scopes (6).
const WANTED_ABI: i32 = 6;

/// The running kernel's Landlock ABI version (0 when absent or disabled).
pub(crate) fn kernel_abi() -> i32 {
    static ABI_VERSION: OnceLock<i32> = OnceLock::new();
    *ABI_VERSION.get_or_init(|| {
        const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
        // SAFETY: with a NULL attr and size 0, the VERSION flag only returns a number.
        let v = unsafe {
            libc::syscall(
                libc::SYS_landlock_create_ruleset,
                std::ptr::null::<libc::c_void>(),
                0usize,
                LANDLOCK_CREATE_RULESET_VERSION,
            )
        };
        v.max(0) as i32
    })
}

/// Access masks for one run, valid for the ruleset they were computed with.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Masks {
    /// Read-only mounts (directories): read, list, execute.
    pub(crate) ro_dir: u64,
    /// The sandbox's own writable filesystems (/tmp, an image's layer): everything handled.
    pub(crate) rw_dir: u64,
    /// Read-write mounts of host directories: everything but making FIFOs, sockets and
    /// device nodes, which would stay behind on the host (a FIFO can hang, and a bound
    /// socket serve, whoever opens it there later).
    pub(crate) rw_mount: u64,
    /// The sandbox root: read and list (the root itself is a read-only tmpfs).
    pub(crate) root: u64,
    /// Device nodes of /dev: write and ioctl (read comes from the root rule).
    pub(crate) device: u64,
    /// Accesses that apply to files (a rule on a file must stay within these).
    pub(crate) file_only: u64,
}

/// A created ruleset and what it enforces.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub(crate) fd: Option<OwnedFd>,
    pub(crate) masks: Masks,
    pub(crate) report: LandlockReport,
}

/// Why the ruleset could not be created.
#[derive(Debug, thiserror::Error)]
#[error("creating the Landlock ruleset failed")]
pub(crate) struct LandlockError(#[source] landlock::RulesetError);

/// Creates the ruleset for a run with `network`.
pub(crate) fn prepare(network: Network) -> Result<Prepared, LandlockError> {
    let kernel = kernel_abi();
    let abi = ABI::from(kernel.min(WANTED_ABI));
    let mut enforced = Vec::new();
    let mut missing = Vec::new();
    let mut note = |name: &str, since: i32| {
        if kernel >= since {
            enforced.push(name.to_string())
        } else {
            missing.push(name.to_string())
        }
    };
    note("filesystem", 1);
    note("refer", 2);
    note("truncate", 3);
    if network == Network::None {
        note("tcp_bind", 4);
        note("tcp_connect", 4);
    }
    note("ioctl_dev", 5);
    note("scope_abstract_unix", 6);
    note("scope_signal", 6);

    let level = if kernel <= 0 {
        EnforcementLevel::None
    } else if missing.is_empty() {
        EnforcementLevel::Full
    } else {
        EnforcementLevel::Partial
    };
    let report = LandlockReport {
        level,
        applies_to: "workload".into(),
        abi: kernel as u32,
        enforced: if kernel > 0 { enforced } else { Vec::new() },
        missing: if kernel > 0 {
            missing
        } else {
            vec!["landlock".into()]
        },
    };
    let empty = Masks {
        ro_dir: 0,
        rw_dir: 0,
        rw_mount: 0,
        root: 0,
        device: 0,
        file_only: 0,
    };
    if kernel <= 0 {
        return Ok(Prepared {
            fd: None,
            masks: empty,
            report,
        });
    }

    let all = AccessFs::from_all(abi);
    let read = AccessFs::from_read(abi);
    let file = AccessFs::from_file(abi);
    let masks = Masks {
        ro_dir: read.bits(),
        rw_dir: all.bits(),
        rw_mount: (all
            & !(AccessFs::MakeSock
                | AccessFs::MakeFifo
                | AccessFs::MakeChar
                | AccessFs::MakeBlock))
            .bits(),
        root: (read & !AccessFs::Execute).bits(),
        device: (file & (AccessFs::WriteFile | AccessFs::IoctlDev)).bits(),
        file_only: file.bits(),
    };

    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .handle_access(all)
        .map_err(LandlockError)?;
    if network == Network::None && kernel >= 4 {
        ruleset = ruleset
            .handle_access(AccessNet::from_all(abi))
            .map_err(LandlockError)?;
    }
    if kernel >= 6 {
        ruleset = ruleset.scope(Scope::from_all(abi)).map_err(LandlockError)?;
    }
    let created = ruleset.create().map_err(LandlockError)?;
    let fd: Option<OwnedFd> = created.into();
    Ok(Prepared { fd, masks, report })
}
