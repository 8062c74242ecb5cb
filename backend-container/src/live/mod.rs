//! Live container sandboxes: created once, then execs, files, pause and resume, stats,
//! destroy. The sandbox is built exactly as a run's (`crate::boot`); its init then
//! serves requests over a control socket (`init.rs`) instead of forking one workload.
//! Every exec and the file server are processes forked by init inside the sandbox and
//! confined by the same steps as a run's workload: nothing of the host joins the
//! sandbox's namespaces.

mod exec;
mod files;
pub(crate) mod fileserver;
pub(crate) mod init;
mod life;
mod park;
mod snapshot;
#[cfg(feature = "fuzzing")]
pub(crate) use snapshot::fuzz_decode as fuzz_decode_snapshot;
pub(crate) use snapshot::load as load_snapshot;
pub(crate) mod sock;
mod supervise;
pub(crate) mod wire;

use std::ffi::CString;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;
use std::sync::Arc;

use sandbox_core::{LiveOptions, LiveSandbox, Plan, SpawnError, Stdin};

use crate::blueprint::Blueprint;
use crate::child::Op;
use crate::landlock::Masks;
use crate::sys::{MOUNT_ATTR_NOEXEC, MOUNT_ATTR_NOSUID};

/// What a sandbox is made for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// A live sandbox: terminals, a freezer, a file server on demand.
    Live,
    /// A one-shot run: one exec, then destroyed.
    Run,
}

/// Creates a live sandbox from `plan` (its program, argv and stdin are not used).
pub(crate) async fn create(
    plan: Plan,
    options: LiveOptions,
) -> Result<Arc<dyn LiveSandbox>, SpawnError> {
    let live = life::ContainerLive::create(plan, options, Mode::Live).await?;
    Ok(live)
}

/// A run: a sandbox created for the plan's program, which runs as its one exec; the
/// sandbox is destroyed when the exec ends (and when the execution is dropped).
pub(crate) async fn run(plan: Plan) -> Result<Box<dyn sandbox_core::Execution>, SpawnError> {
    let started = std::time::Instant::now();
    let request = sandbox_core::ExecRequest {
        argv: plan.argv.clone(),
        env: Default::default(),
        cwd: None,
        stdin: plan.stdin.clone(),
        tty: None,
        limits: Default::default(),
    };
    let program = plan.program.clone();
    let live = life::ContainerLive::create(plan, LiveOptions::default(), Mode::Run).await?;
    let exec = exec::start(&live.shared, request, exec::Owner::Run { started, program })
        .await
        .map_err(|e| match e {
            sandbox_core::LiveError::Exec(e) => e,
            sandbox_core::LiveError::Failed(step, source) => SpawnError::Setup { step, source },
            e => SpawnError::Setup {
                step: "starting the workload".into(),
                source: std::io::Error::other(e.to_string()),
            },
        })?;
    Ok(Box::new(exec))
}

fn setup(step: &str, source: std::io::Error) -> SpawnError {
    SpawnError::Setup {
        step: step.to_string(),
        source,
    }
}

/// The control socket pair: (host's end, init's end).
pub(crate) fn control_pair() -> Result<(OwnedFd, OwnedFd), SpawnError> {
    let (a, b) = sock::seqpacket_pair().map_err(|e| {
        setup(
            "creating the control socket",
            std::io::Error::from_raw_os_error(e),
        )
    })?;
    // SAFETY: socketpair just returned this descriptor; nothing else owns it.
    let a = unsafe { OwnedFd::from_raw_fd(a) };
    // SAFETY: as above.
    let b = unsafe { OwnedFd::from_raw_fd(b) };
    Ok((a, b))
}

/// The most terminals one sandbox may hold at once.
pub(crate) const PTY_MAX: u32 = 64;

/// A private devpts instance (with /dev/ptmx): terminals for execs on a tty, and for
/// the workload's own `openpty` (a run's too: shells, `script`, pexpect, CPython's pty
/// tests). Its own instance holds only this sandbox's terminals.
pub(crate) fn prepare_spec(bp: &mut Blueprint, masks: Masks) -> Result<(), SpawnError> {
    let c = |s: &str| CString::new(s).map_err(|_| SpawnError::Unsupported("NUL in a path".into()));
    let comps = |p: &str| -> Result<Vec<CString>, SpawnError> {
        Path::new(p)
            .iter()
            .skip(1)
            .map(|s| c(&s.to_string_lossy()))
            .collect()
    };
    bp.labels.ops.push(("devpts".into(), "/dev/pts".into()));
    bp.spec.ops.push(Op::Fs {
        path: comps("/dev/pts")?,
        fstype: c("devpts")?,
        // At most PTY_MAX terminals: the kernel's pool (kernel.pty.max less the host's
        // reserve) is shared by every container on the host.
        options: vec![
            (c("mode")?, c("0620")?),
            (c("ptmxmode")?, c("0666")?),
            (c("max")?, c(&PTY_MAX.to_string())?),
        ],
        // Its own instance: only this sandbox's terminals, so device nodes are allowed.
        attrs: MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC,
    });
    bp.labels.ops.push(("symlink".into(), "/dev/ptmx".into()));
    bp.spec.ops.push(Op::Symlink {
        path: comps("/dev/ptmx")?,
        target: c("pts/ptmx")?,
    });
    if masks.device != 0 && bp.spec.ruleset.is_some() {
        bp.labels.rules.push("/dev/pts".into());
        bp.spec.rules.push(crate::child::Rule {
            path: c("/dev/pts")?,
            access: masks.device | masks.ro_dir,
        });
    }
    Ok(())
}

/// A live sandbox's plan as the blueprint sees it: nothing to run yet.
pub(crate) fn boot_plan(plan: &Plan) -> Plan {
    let mut p = plan.clone();
    p.stdin = Stdin::Null;
    p.program = String::new();
    p.argv = Vec::new();
    p
}
