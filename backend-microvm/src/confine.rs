//! The VMM confines its own vCPU thread before the first guest instruction: a seccomp
//! allowlist (`seccomp/vmm.json`, one comment per syscall) and Landlock rules limited to
//! the plan's mounts. Both apply to the calling thread only: the caller's other threads
//! are never touched. A bug in the personality then still meets a second wall.
//!
//! A syscall off the allowlist is trapped (`SECCOMP_RET_TRAP`): `trap` records it, the
//! call fails with `EPERM`, and the run ends as `policy_violation` (the report's
//! seccomp action is `kill`: what the caller sees is the run ending).
//!
//! A second filter (`vmm_libc` in the same file) answers `ENOSYS` to the few calls
//! glibc makes on its own inside the VMM's code, whatever the VMM does: `openat` of
//! `/proc/sys/vm/overcommit_memory` when malloc trims a thread arena's heap (freeing a
//! few full socket buffers is enough), of `/sys/devices/system/cpu/online`,
//! `sched_getaffinity` and `sysinfo` for sizing decisions, and `clone3`, which
//! `pthread_create` tries before `clone` (the fast-call thread: `clone` is allowed
//! with a thread's flags only, which a filter can check for `clone` and not for
//! `clone3`). Each has a fallback for a failure (a missing /proc, a container, an
//! older kernel), so the call fails and the run goes on; no
//! file is opened. The VMM never needs them (host files are opened with `openat2`
//! only), so this narrows nothing it does, and it holds for any libc-internal call
//! of that kind, whichever thread warmed libc's caches first. (The alternatives were
//! weaker: warming the caches before confining depends on which paths glibc takes and
//! when; another allocator for one thread is not possible within one process's
//! malloc.)

use std::sync::OnceLock;

use landlock::{
    Access, AccessFs, AccessNet, CompatLevel, Compatible, PathBeneath, Ruleset, RulesetAttr,
    RulesetCreatedAttr, RulesetStatus, Scope, ABI,
};
use sandbox_core::{EnforcementLevel, LandlockReport, SeccompAction, SeccompReport};
use seccompiler::BpfProgram;

use crate::vfs::HostSource;

/// The VMM's seccomp allowlist, reviewable data.
const VMM_FILTER_JSON: &str = include_str!("../seccomp/vmm.json");
/// The name reports give it.
pub(crate) const PROFILE: &str = "hybrid-sandbox-vmm";

/// Confinement failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConfineError {
    /// The allowlist does not compile (a bug in `vmm.json`).
    #[error("the VMM seccomp allowlist does not compile: {0}")]
    Compile(String),
    /// Installing the filter failed.
    #[error("installing the VMM seccomp filter failed")]
    Seccomp(#[source] std::io::Error),
    /// Landlock failed (beyond "not supported").
    #[error("restricting the VMM thread with Landlock failed")]
    Landlock(#[source] std::io::Error),
    /// The thread's filesystem identity could not be changed.
    #[error("making the VMM thread reach files as the unprivileged host identity failed")]
    Identity(#[source] std::io::Error),
}

// `VMM_TREE` (the allowlist) and `VMM_LIBC` (the errno filter), built from
// `VMM_FILTER_JSON` by build.rs.
include!(concat!(env!("OUT_DIR"), "/vmm_filters.rs"));

/// A generated program as seccompiler's type.
fn program(insns: &[libc::sock_filter]) -> BpfProgram {
    insns
        .iter()
        .map(|f| seccompiler::sock_filter {
            code: f.code,
            jt: f.jt,
            jf: f.jf,
            k: f.k,
        })
        .collect()
}

/// The compiled filter (the libc-internal calls' errno filter chained into the
/// allowlist, see [`chain`]) and how many syscalls the VMM may really make.
struct Filters {
    program: BpfProgram,
    allowed: usize,
}

/// `SECCOMP_RET_ACTION_FULL`: the action bits of a filter's answer.
const RET_ACTION: u32 = 0xffff_0000;

/// One program that answers as the kernel would for `first` and `then` installed
/// both: the stricter answer. `first` may answer only ALLOW, ERRNO or KILL, and every
/// call it answers ERRNO `then` must allow (the caller checks that by name), so the
/// stricter answer is `first`'s unless it allows; there `then` decides. Each of
/// `first`'s `ret ALLOW` becomes a jump to `then`'s first instruction (a filter loads
/// what it tests itself). Installing a filter costs about as much again as running
/// it on every syscall number (the kernel's action cache) and compiling it: one
/// fewer filter is ~70 µs less at every VM start on PVM.
fn chain(first: &BpfProgram, then: &BpfProgram) -> Result<BpfProgram, String> {
    /// An instruction's class (`BPF_CLASS`).
    const CLASS: u32 = 0x07;
    const RET_K: u32 = libc::BPF_RET | libc::BPF_K;
    const JA: u32 = libc::BPF_JMP | libc::BPF_JA;
    let n = first.len();
    let mut out = BpfProgram::with_capacity(n + then.len());
    for (i, ins) in first.iter().enumerate() {
        let code = u32::from(ins.code);
        if code & CLASS == libc::BPF_RET {
            if code != RET_K {
                return Err("the errno filter returns a register".into());
            }
            match ins.k & RET_ACTION {
                libc::SECCOMP_RET_ALLOW => {
                    out.push(seccompiler::sock_filter {
                        code: JA as u16,
                        jt: 0,
                        jf: 0,
                        k: u32::try_from(n - i - 1).map_err(|e| e.to_string())?,
                    });
                    continue;
                }
                libc::SECCOMP_RET_ERRNO
                | libc::SECCOMP_RET_KILL_PROCESS
                | libc::SECCOMP_RET_KILL_THREAD => {}
                other => return Err(format!("the errno filter answers {other:#x}")),
            }
        }
        out.push(ins.clone());
    }
    out.extend(then.iter().cloned());
    Ok(out)
}

fn compiled() -> Result<&'static Filters, ConfineError> {
    static FILTERS: OnceLock<Result<Filters, String>> = OnceLock::new();
    FILTERS
        .get_or_init(|| {
            let value: serde_json::Value =
                serde_json::from_str(VMM_FILTER_JSON).map_err(|e| e.to_string())?;
            let names = |filter: &str| -> std::collections::BTreeSet<String> {
                value[filter]["filter"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|r| r["syscall"].as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default()
            };
            let refused = names("vmm_libc");
            let listed = names("vmm");
            // `chain`'s condition: the allowlist allows every refused call, whatever
            // its arguments.
            let unconditional = |c: &String| {
                value["vmm"]["filter"].as_array().is_some_and(|rules| {
                    rules
                        .iter()
                        .any(|r| r["syscall"] == c.as_str() && r.get("args").is_none())
                })
            };
            if let Some(c) = refused.iter().find(|c| !unconditional(c)) {
                return Err(format!(
                    "`{c}` is in `vmm_libc` but not allowed unconditionally in `vmm`"
                ));
            }
            let allowed = listed.difference(&refused).count();
            Ok(Filters {
                program: chain(&program(&VMM_LIBC), &program(&VMM_TREE))?,
                allowed,
            })
        })
        .as_ref()
        .map_err(|e| ConfineError::Compile(e.clone()))
}

/// Checks that the allowlist compiles (at spawn, before anything runs).
pub(crate) fn check() -> Result<(), ConfineError> {
    compiled().map(|_| ())
}

/// The running kernel's Landlock ABI (0 without Landlock).
pub(crate) fn landlock_abi() -> u32 {
    // SAFETY: LANDLOCK_CREATE_RULESET_VERSION with a null attribute only queries.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            1u32,
        )
    };
    u32::try_from(v).unwrap_or(0)
}

/// What the VMM thread runs under.
#[derive(Debug, Clone)]
pub(crate) struct Confinement {
    /// The seccomp filter.
    pub(crate) seccomp: SeccompReport,
    /// Landlock.
    pub(crate) landlock: LandlockReport,
}

/// Landlock features wanted, with the ABI that brought each.
const FEATURES: [(&str, u32); 8] = [
    ("filesystem", 1),
    ("refer", 2),
    ("truncate", 3),
    ("tcp_bind", 4),
    ("tcp_connect", 4),
    ("ioctl_dev", 5),
    ("scope_abstract_unix", 6),
    ("scope_signal", 6),
];

/// A host source the VMM thread's Landlock rules allow, apart from the sandbox whose
/// sources they are (a fork's thread confines itself with its original's before it
/// has its own copy): a descriptor of it, whether it is read-only and a directory.
#[derive(Debug)]
pub(crate) struct SourceRule {
    pub(crate) fd: std::os::fd::OwnedFd,
    pub(crate) ro: bool,
    pub(crate) dir: bool,
}

impl SourceRule {
    /// Rules for `sources` (each descriptor duplicated).
    pub(crate) fn of(sources: &[HostSource]) -> std::io::Result<Vec<SourceRule>> {
        use std::os::fd::AsFd;
        sources
            .iter()
            .map(|s| {
                Ok(SourceRule {
                    fd: s.fd.as_fd().try_clone_to_owned()?,
                    ro: s.ro,
                    dir: s.dir,
                })
            })
            .collect()
    }
}

fn restrict_landlock<'a>(
    sources: impl Iterator<Item = (std::os::fd::BorrowedFd<'a>, bool, bool)>,
) -> Result<LandlockReport, ConfineError> {
    let abi = ABI::V6;
    let kernel_abi = landlock_abi();
    let err =
        |e: landlock::RulesetError| ConfineError::Landlock(std::io::Error::other(e.to_string()));
    // The VMM never executes host files: no rule grants Execute.
    let read = AccessFs::from_read(abi) & !AccessFs::Execute;
    let all = AccessFs::from_all(abi) & !AccessFs::Execute;
    let file_ro = AccessFs::from_file(abi) & read;
    let file_rw = AccessFs::from_file(abi) & !AccessFs::Execute;
    let mut created = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(AccessFs::from_all(abi))
        .map_err(err)?
        .handle_access(AccessNet::BindTcp | AccessNet::ConnectTcp)
        .map_err(err)?
        .scope(Scope::AbstractUnixSocket | Scope::Signal)
        .map_err(err)?
        .create()
        .map_err(err)?;
    for (fd, ro, dir) in sources {
        let access = match (dir, ro) {
            (true, true) => read,
            (true, false) => all,
            (false, true) => file_ro,
            (false, false) => file_rw,
        };
        created = created
            .add_rule(PathBeneath::new(fd, access))
            .map_err(err)?;
    }
    let status = created.restrict_self().map_err(err)?;
    let level = match status.ruleset {
        RulesetStatus::FullyEnforced => EnforcementLevel::Full,
        RulesetStatus::PartiallyEnforced => EnforcementLevel::Partial,
        RulesetStatus::NotEnforced => EnforcementLevel::None,
    };
    let (enforced, missing): (Vec<_>, Vec<_>) = FEATURES
        .iter()
        .partition(|(_, need)| level != EnforcementLevel::None && kernel_abi >= *need);
    Ok(LandlockReport {
        level,
        applies_to: "vmm".into(),
        abi: kernel_abi,
        enforced: enforced.iter().map(|(n, _)| (*n).to_string()).collect(),
        missing: missing.iter().map(|(n, _)| (*n).to_string()).collect(),
    })
}

/// The host uid and gid the VMM thread reaches files as: the caller's, or, when the
/// caller is root, the unprivileged id the container backend's workload runs as
/// (`ROOT_MODE_HOST_ID`), so that both backends may do the same to the host's files.
pub(crate) fn host_identity() -> (u32, u32) {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    // SAFETY: getegid has no preconditions.
    let egid = unsafe { libc::getegid() };
    if euid == 0 {
        (
            sandbox_core::ROOT_MODE_HOST_ID,
            sandbox_core::ROOT_MODE_HOST_ID,
        )
    } else {
        (euid, egid)
    }
}

/// True when the caller is root: mounts are then detached trees, idmapped to their
/// sources' owners (`sandbox_core::mount_source::idmap`).
pub(crate) fn root_caller() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Drops every capability of the calling thread, from the effective, permitted and
/// inheritable sets (this thread only: the raw syscall).
fn drop_caps() -> Result<(), ConfineError> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const VERSION_3: u32 = 0x2008_0522;
    let data = [Data::default(); 2];
    let header = Header {
        version: VERSION_3,
        pid: 0,
    };
    // SAFETY: capset reads a v3 header and two data structs, both valid for the call;
    // pid 0 is the calling thread.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &header as *const Header, data.as_ptr()) };
    if rc != 0 {
        return Err(ConfineError::Identity(std::io::Error::last_os_error()));
    }
    Ok(())
}

/// Makes the calling thread reach files as `(uid, gid)` (its filesystem ids: only
/// this thread, and the filesystem capabilities of a root caller are dropped with
/// them: permission bits and ownership on the host now apply to the workload's files).
fn act_as(uid: u32, gid: u32) -> Result<(), ConfineError> {
    let set = |nr: libc::c_long, id: u32| -> Result<(), ConfineError> {
        // SAFETY: setfsgid/setfsuid change only the calling thread's filesystem ids
        // (the raw syscalls, unlike setuid, are not broadcast to other threads).
        unsafe { libc::syscall(nr, id) };
        // SAFETY: as above; -1 only asks the current value.
        let now = unsafe { libc::syscall(nr, u32::MAX) } as u32;
        if now == id {
            Ok(())
        } else {
            Err(ConfineError::Identity(std::io::Error::from_raw_os_error(
                libc::EPERM,
            )))
        }
    };
    set(libc::SYS_setfsgid, gid)?;
    set(libc::SYS_setfsuid, uid)
}

/// Confines the calling (vCPU) thread: files reached as the unprivileged host
/// identity (a root caller's mounts are idmapped trees: their owners' files are that
/// identity's), no supplementary groups, no capability, Landlock to `sources`, then the
/// seccomp filter.
pub(crate) fn confine_thread(sources: &[HostSource]) -> Result<Confinement, ConfineError> {
    use std::os::fd::AsFd;
    confine_to(sources.iter().map(|s| (s.fd.as_fd(), s.ro, s.dir)))
}

/// [`confine_thread`] to `rules` (see [`SourceRule`]).
pub(crate) fn confine_thread_to(rules: &[SourceRule]) -> Result<Confinement, ConfineError> {
    use std::os::fd::AsFd;
    confine_to(rules.iter().map(|r| (r.fd.as_fd(), r.ro, r.dir)))
}

fn confine_to<'a>(
    sources: impl Iterator<Item = (std::os::fd::BorrowedFd<'a>, bool, bool)>,
) -> Result<Confinement, ConfineError> {
    let filters = compiled()?;
    // Decided while the CPU count can still be read.
    crate::fastcall::enabled();
    let (uid, gid) = host_identity();
    act_as(uid, gid)?;
    if root_caller() {
        // The caller's groups (root's) must not open group-readable files for the
        // workload; the raw syscall changes this thread only (glibc's setgroups would
        // change every thread of the caller).
        // SAFETY: setgroups with a count of 0 reads no memory.
        if unsafe { libc::syscall(libc::SYS_setgroups, 0, std::ptr::null::<libc::gid_t>()) } != 0 {
            return Err(ConfineError::Identity(std::io::Error::last_os_error()));
        }
    }
    drop_caps()?;
    let landlock = restrict_landlock(sources)?;
    // SAFETY: prctl(PR_SET_NO_NEW_PRIVS) only sets a flag of the calling thread (seccomp
    // needs it when unprivileged; Landlock usually set it already).
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(ConfineError::Seccomp(std::io::Error::last_os_error()));
    }
    // From here on a syscall off the allowlist traps (SIGSYS): it is recorded, fails
    // with EPERM, and the run ends as a policy violation (see `trap`).
    crate::trap::watch_thread();
    // ERRNO for the libc-internal calls, TRAP for everything the allowlist does not
    // name, both in one program (see `chain`).
    seccompiler::apply_filter(&filters.program)
        .map_err(|e| ConfineError::Seccomp(std::io::Error::other(e.to_string())))?;
    Ok(Confinement {
        seccomp: SeccompReport {
            enforced: true,
            applies_to: "vmm".into(),
            profile: PROFILE.into(),
            // A call off the allowlist ends the run (`policy_violation`).
            action: SeccompAction::Kill,
            allowed_syscalls: filters.allowed,
        },
        landlock,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// seccompiler's linear programs for `vmm.json`, chained as `compiled` chains
    /// the generated ones.
    fn linear() -> BpfProgram {
        let mut map = seccompiler::compile_from_json(
            VMM_FILTER_JSON.as_bytes(),
            seccompiler::TargetArch::x86_64,
        )
        .unwrap();
        let allow = map.remove("vmm").unwrap();
        let libc = map.remove("vmm_libc").unwrap();
        chain(&libc, &allow).unwrap()
    }

    fn insns(p: &BpfProgram) -> Vec<seccomp_tree::eval::Insn> {
        p.iter().map(|f| (f.code, f.jt, f.jf, f.k)).collect()
    }

    /// The installed program answers every call as seccompiler's linear one: every
    /// syscall number (and a few out of range), both architectures, argument values
    /// the allowlist names and others; and every lookup is short.
    #[test]
    fn the_tree_answers_as_seccompilers_linear_program() {
        let ours = insns(&compiled().unwrap().program);
        let reference = insns(&linear());
        seccomp_tree::eval::check_like_the_kernel(&ours);
        let v: serde_json::Value = serde_json::from_str(VMM_FILTER_JSON).unwrap();
        let mut vals: Vec<u64> = vec![0, 1, 0xffff_ffff, u64::MAX];
        for r in v["vmm"]["filter"].as_array().unwrap() {
            for a in r["args"].as_array().into_iter().flatten() {
                let x = a["val"].as_u64().unwrap();
                vals.extend([x, x ^ 1, x | (1 << 32)]);
            }
        }
        for nr in (0..600).chain([0x4000_0000, 0x4000_0010, u32::MAX]) {
            for arch in [0xC000_003E, 0x4000_0003] {
                for &x in &vals {
                    for i in 0..6 {
                        let mut args = [0u64; 6];
                        args[i] = x;
                        assert_eq!(
                            seccomp_tree::eval::run(&ours, nr, arch, args),
                            seccomp_tree::eval::run(&reference, nr, arch, args),
                            "nr {nr} arch {arch:#x} args {args:?}"
                        );
                    }
                }
            }
        }
        let longest = (0..600)
            .map(|nr| seccomp_tree::eval::run_counted(&ours, nr, 0xC000_003E, [0; 6]).1)
            .max()
            .unwrap();
        assert!(longest < 80, "longest lookup {longest} instructions");
    }
    use std::os::fd::AsRawFd;
    use std::rc::Rc;

    /// The walls are real: on a confined thread, host access outside the mounts fails
    /// (Landlock), and syscalls outside the allowlist fail (seccomp), while the mount
    /// still works. Other threads are untouched.
    #[test]
    fn a_confined_thread_reaches_only_its_mounts() {
        let dir = std::env::temp_dir().join(format!("hsb-confine-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("inside"), b"ok").unwrap();
        let d2 = dir.clone();
        crate::trap::install_handler().unwrap();
        let r = std::thread::spawn(move || {
            let mount = crate::vfs::host::open_source(&d2).unwrap();
            let root = crate::vfs::host::open_source(std::path::Path::new("/")).unwrap();
            let src = crate::vfs::HostSource {
                fd: Rc::new(mount),
                ro: true,
                dir: true,
            };
            let c = confine_thread(std::slice::from_ref(&src)).unwrap();
            let inside =
                crate::vfs::host::openat2(src.fd.as_raw_fd(), b"inside", libc::O_RDONLY, 0)
                    .map(|_| ());
            let write_inside =
                crate::vfs::host::openat2(src.fd.as_raw_fd(), b"inside", libc::O_WRONLY, 0)
                    .map(|_| ());
            let etc = crate::vfs::host::open_path(root.as_raw_fd(), b"etc").unwrap();
            let outside =
                crate::vfs::host::openat2(etc.as_raw_fd(), b"hostname", libc::O_RDONLY, 0)
                    .map(|_| ());
            let plain_open = std::fs::read("/etc/hostname").map_err(|e| e.raw_os_error());
            // clone3 with no arguments: refused before the kernel reads them (ENOSYS);
            // allowed, it would fail with EFAULT or EINVAL instead.
            // SAFETY: clone3 with a null, zero-sized argument creates nothing.
            let clone3 = unsafe { libc::syscall(libc::SYS_clone3, std::ptr::null::<u8>(), 0usize) };
            let clone3_err = std::io::Error::last_os_error().raw_os_error();
            // A thread is still made, with `clone` and a thread's flags.
            let spawned = std::thread::spawn(|| 7).join().ok();
            // SAFETY: plain socket(2) call; the result is only inspected.
            let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) };
            let sock_err = std::io::Error::last_os_error().raw_os_error();
            (
                c,
                inside,
                write_inside,
                outside,
                plain_open.err(),
                (clone3, clone3_err, spawned),
                sock,
                sock_err,
                crate::trap::violation(),
            )
        })
        .join()
        .unwrap();
        let (c, inside, write_inside, outside, plain_open, clone3, sock, sock_err, violation) = r;
        assert_eq!(
            clone3,
            (-1, Some(libc::ENOSYS), Some(7)),
            "clone3 answered ENOSYS, threads made with clone"
        );
        assert!(c.seccomp.enforced);
        assert_eq!(
            c.seccomp.action,
            SeccompAction::Kill,
            "a violation ends the run"
        );
        // The first call off the allowlist is the one recorded: socket (openat, which
        // libc makes on its own, is answered ENOSYS without ending anything).
        assert_eq!(violation, Some(libc::SYS_socket as i32));
        assert_eq!(
            crate::trap::violation(),
            None,
            "other threads are not watched"
        );
        assert_eq!(inside, Ok(()));
        if c.landlock.level != EnforcementLevel::None {
            assert_eq!(write_inside, Err(crate::errno::EACCES), "read-only mount");
            assert_eq!(outside, Err(crate::errno::EACCES), "outside the mounts");
        }
        assert_eq!(
            plain_open,
            Some(Some(libc::ENOSYS)),
            "openat(2) fails with ENOSYS (the vmm_libc filter), opening nothing"
        );
        assert_eq!(
            (sock, sock_err),
            (-1, Some(libc::EPERM)),
            "no sockets for the VMM"
        );
        // This thread was not confined.
        assert!(std::fs::read("/proc/self/status").is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The chained program keeps the errno filter's own answers, sends what it
    /// allowed to the allowlist's first instruction, and refuses a first filter that
    /// could answer anything else.
    #[test]
    fn one_program_for_two_filters() {
        let json = |m: &str| {
            format!(
                r#"{{"f": {{"mismatch_action": "allow", "match_action": {m}, "filter": [{{"syscall": "open"}}]}},
                    "g": {{"mismatch_action": "trap", "match_action": "allow", "filter": [{{"syscall": "open"}}, {{"syscall": "read"}}]}}}}"#
            )
        };
        let compile = |m: &str| {
            seccompiler::compile_from_json(json(m).as_bytes(), seccompiler::TargetArch::x86_64)
                .unwrap()
        };
        let mut p = compile(r#"{"errno": 38}"#);
        let (first, then) = (p.remove("f").unwrap(), p.remove("g").unwrap());
        let one = chain(&first, &then).unwrap();
        assert_eq!(one.len(), first.len() + then.len());
        assert_eq!(&one[first.len()..], &then[..]);
        let mut jumps = 0;
        for (i, (a, b)) in first.iter().zip(&one).enumerate() {
            if a.code == 0x06 && a.k == libc::SECCOMP_RET_ALLOW {
                assert_eq!((b.code, i as u32 + 1 + b.k), (0x05, first.len() as u32));
                jumps += 1;
            } else {
                assert_eq!(a, b);
            }
        }
        assert!(jumps > 0, "the errno filter allows something");
        assert!(one[..first.len()]
            .iter()
            .any(|i| i.code == 0x06 && i.k == libc::SECCOMP_RET_ERRNO | 38));
        let mut p = compile(r#""trap""#);
        assert!(chain(&p.remove("f").unwrap(), &then).is_err());
    }

    #[test]
    fn allowlist_compiles_and_names_kvm_ioctls_right() {
        let n = compiled().unwrap().allowed;
        assert!(n > 30);
        // _IOW/_IOR('Q'=0xAE, nr, struct): direction << 30 | size << 16 | 0xAE << 8 | nr.
        let ioc =
            |dir: u64, nr: u64, size: usize| (dir << 30) | ((size as u64) << 16) | (0xae << 8) | nr;
        let v: serde_json::Value = serde_json::from_str(VMM_FILTER_JSON).unwrap();
        let vals: Vec<u64> = v["vmm"]["filter"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["syscall"] == "ioctl")
            .map(|r| r["args"][0]["val"].as_u64().unwrap())
            .collect();
        let want = [
            ioc(0, 0x80, 0),
            ioc(2, 0x81, std::mem::size_of::<kvm_bindings::kvm_regs>()),
            ioc(1, 0x82, std::mem::size_of::<kvm_bindings::kvm_regs>()),
            ioc(
                2,
                0x9f,
                std::mem::size_of::<kvm_bindings::kvm_vcpu_events>(),
            ),
            ioc(2, 0x83, std::mem::size_of::<kvm_bindings::kvm_sregs>()),
            ioc(1, 0x84, std::mem::size_of::<kvm_bindings::kvm_sregs>()),
            ioc(2, 0xa4, std::mem::size_of::<kvm_bindings::kvm_xsave>()),
            ioc(1, 0xa5, std::mem::size_of::<kvm_bindings::kvm_xsave>()),
            ioc(
                1,
                0x46,
                std::mem::size_of::<kvm_bindings::kvm_userspace_memory_region>(),
            ),
        ];
        assert_eq!(vals, want);
    }
}
