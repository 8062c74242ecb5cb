//! The body of a live sandbox's vCPU thread, and how its end is told to the host.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use sandbox_core::{EnforcementReport, Plan, SpawnError};
use tokio::sync::{mpsc, oneshot, Notify};

use super::cmd::Hub;
use super::guest::Live;
use crate::kick::{self, Control};
use crate::linux::Stop;
use crate::stdio::{Input, Output};

/// The thread's end: `None` while it runs, then `Some(None)` for a kill (destroy) or
/// `Some(Some(why))` for a failure of the VMM.
#[derive(Debug, Default)]
pub(super) struct Ending {
    note: Mutex<Option<Option<String>>>,
    cv: Condvar,
    /// Wakes the watchdog.
    pub(super) notify: Notify,
}

impl Ending {
    fn finish(&self, note: Option<String>) {
        *crate::sync::locked(&self.note) = Some(note);
        self.cv.notify_all();
        self.notify.notify_one();
    }

    /// The end, once the thread ended.
    pub(super) fn ended(&self) -> Option<Option<String>> {
        crate::sync::locked(&self.note).clone()
    }

    /// Waits (blocking) until the thread ended, at most `limit`.
    pub(super) fn wait(&self, limit: Duration) {
        let until = Instant::now() + limit;
        let mut g = crate::sync::locked(&self.note);
        while g.is_none() {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            g = match self.cv.wait_timeout(g, left) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
    }
}

/// What the thread needs.
pub(super) struct Start {
    pub(super) plan: Plan,
    pub(super) ctl: Arc<Control>,
    pub(super) hub: Arc<Hub>,
    pub(super) ending: Arc<Ending>,
    pub(super) setup: oneshot::Sender<Result<EnforcementReport, SpawnError>>,
    /// Network `egress`: the broker and relay, started by the caller.
    pub(super) net: Option<Arc<crate::net::VmNet>>,
}

/// Builds the sandbox, then runs it until it is destroyed (or the VMM fails). A
/// panic (a VMM bug) ends the sandbox as failed, never the caller.
pub(super) fn body(s: Start) {
    let Start {
        plan,
        ctl,
        hub,
        ending,
        setup,
        net,
    } = s;
    ctl.register_thread();
    let queue = Arc::clone(&hub);
    let note = catch_unwind(AssertUnwindSafe(|| run(&plan, &ctl, hub, setup, net)))
        .unwrap_or_else(|p| Some(format!("VMM failure: {}", panic_message(&p))));
    queue.close();
    ctl.unregister_thread();
    ending.finish(note);
}

fn run(
    plan: &Plan,
    ctl: &Arc<Control>,
    hub: Arc<Hub>,
    setup: oneshot::Sender<Result<EnforcementReport, SpawnError>>,
    net: Option<Arc<crate::net::VmNet>>,
) -> Option<String> {
    // A run's own channel (0) is not used: nobody listens, nothing is kept.
    let (tx, _) = mpsc::unbounded_channel();
    let start = Instant::now();
    let prepared = match catch_unwind(AssertUnwindSafe(|| {
        crate::sandbox::prepare(
            plan,
            Arc::clone(ctl),
            Output::new(tx, Some(0)),
            Input::Null,
            start,
            true,
            net,
        )
    })) {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => {
            let _ = setup.send(Err(e));
            return Some("setup failed".into());
        }
        Err(p) => {
            let _ = setup.send(Err(SpawnError::Setup {
                step: "setting up the micro-VM".into(),
                source: std::io::Error::other(panic_message(&p)),
            }));
            return Some("setup failed".into());
        }
    };
    let report = prepared.enforcement(plan);
    let crate::sandbox::Prepared {
        vm,
        mut kernel,
        tick,
        ..
    } = prepared;
    kernel.become_live(Live::new(
        hub,
        plan.limits.file_size.map(|b| b.0),
        plan.limits.tmp_size.map(|b| b.0),
    ));
    if setup.send(Ok(report)).is_err() {
        ctl.kill(); // the caller went away during setup
    }
    serve(vm, kernel, tick, ctl, false, |_, _| {})
}

/// Where a sandbox started from a snapshot gets it.
pub(super) enum Source {
    /// A snapshot there is.
    Snapshot(Arc<super::snapshot::Snapshot>),
    /// A fork's, which its original is taking for it alone (moved whole into the
    /// fork): the thread makes its VM and confines itself with the original's mounts'
    /// rules (sent first) meanwhile. A sender dropped without sending: the snapshot
    /// failed (the thread ends).
    Coming {
        image: std::sync::mpsc::Receiver<super::snapshot::Image>,
        rules: std::sync::mpsc::Receiver<Vec<crate::confine::SourceRule>>,
    },
}

/// What a sandbox started from a snapshot needs.
pub(super) struct StartFrom {
    pub(super) source: Source,
    pub(super) plan: Plan,
    pub(super) host_fds: usize,
    pub(super) ctl: Arc<Control>,
    pub(super) hub: Arc<Hub>,
    pub(super) ending: Arc<Ending>,
    pub(super) setup:
        oneshot::Sender<Result<Option<sandbox_core::EnforcementReport>, sandbox_core::LiveError>>,
    /// A parked exec to take over (warm templates, `park.rs`).
    pub(super) adopt: Option<super::park::Adopt>,
}

/// A spare vCPU thread (`host.rs`): makes its VM, then waits for a fork's start and
/// runs it as [`body_from`] does; ends when its sender goes first.
pub(super) fn spare(jobs: std::sync::mpsc::Receiver<StartFrom>) {
    let blank = crate::vm::Blank::new(0).ok();
    if let Ok(start) = jobs.recv() {
        drop(jobs);
        // Named as every vCPU thread once it has a sandbox.
        // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes, which
        // this literal is; it names the calling thread only.
        unsafe { libc::prctl(libc::PR_SET_NAME, c"hsb-vcpu".as_ptr()) };
        body_from(start, blank);
    }
}

/// Builds a sandbox from a snapshot, then runs it as [`body`] does; a fork's over
/// `blank` if its thread made its VM already (a spare).
pub(super) fn body_from(s: StartFrom, blank: Option<crate::vm::Blank>) {
    let StartFrom {
        source,
        plan,
        host_fds,
        ctl,
        hub,
        ending,
        setup,
        adopt,
    } = s;
    ctl.register_thread();
    let queue = Arc::clone(&hub);
    let note = catch_unwind(AssertUnwindSafe(|| {
        let built = match source {
            Source::Snapshot(snap) => {
                super::snapshot::build(&snap, &plan, Arc::clone(&ctl), host_fds)
            }
            Source::Coming { image, rules } => {
                let blank = blank.or_else(|| crate::vm::Blank::new(0).ok());
                let settings = (&plan, Arc::clone(&ctl), host_fds);
                super::snapshot::build_fork(&image, &rules, blank, settings)
            }
        };
        let started = match built {
            Ok(s) => s,
            Err(e) => {
                let _ = setup.send(Err(e));
                return Some("setup failed".into());
            }
        };
        let super::snapshot::Started {
            vm,
            mut kernel,
            tick,
            report,
        } = started;
        kernel.attach_live(Live::new(
            hub,
            plan.limits.file_size.map(|b| b.0),
            plan.limits.tmp_size.map(|b| b.0),
        ));
        let mut warm = None;
        if let Some(a) = adopt {
            // A fork started ahead (its stdin not there yet) warms up while it waits.
            let ahead = matches!(a.input, Input::Stream(_)) && crate::warm::enabled();
            let touched = a.warm.as_ref().and_then(|w| w.touched()).filter(|_| ahead);
            let pid = a.pid;
            kernel.adopt_exec(a);
            warm = touched.and_then(|t| kernel.warm_plan(pid, &t));
        }
        let ready = |vm: &mut crate::vm::Vm, kernel: &mut crate::linux::Kernel| {
            // Warmed before it is told ready: a pool counts only warm forks.
            if let Some((root, list)) = warm {
                let t = std::time::Instant::now();
                let w = crate::warm::run(vm, &kernel.mm.mem, root, &list, &ctl);
                ctl.warmed
                    .store(w.pages, std::sync::atomic::Ordering::Relaxed);
                if crate::linux::stats_enabled() {
                    eprintln!(
                        "[hsb-vmm] warmed before the run: {w:?} of {} entries in {:?}",
                        list.len(),
                        t.elapsed()
                    );
                }
            }
            if setup.send(Ok(report)).is_err() {
                ctl.kill();
            }
        };
        serve(vm, kernel, tick, &ctl, true, ready)
    }))
    .unwrap_or_else(|p| Some(format!("VMM failure: {}", panic_message(&p))));
    queue.close();
    ctl.unregister_thread();
    ending.finish(note);
}

/// Runs the live sandbox until it is destroyed; its end in words (`None`: a kill).
/// `restored`: started from a snapshot. `ready` runs first, once kicks reach the
/// thread (a sandbox started from a snapshot warms up there, then says it is ready).
fn serve(
    vm: crate::vm::Vm,
    mut kernel: crate::linux::Kernel,
    tick: kick::Timer,
    ctl: &Arc<Control>,
    restored: bool,
    ready: impl FnOnce(&mut crate::vm::Vm, &mut crate::linux::Kernel),
) -> Option<String> {
    let mut vm = vm;
    let armed = kick::arm_thread(&mut vm.vcpu.get_kvm_run().immediate_exit);
    ready(&mut vm, &mut kernel);
    let watching = kick::watch(kick::Watch {
        ctl: Arc::clone(ctl),
        deadline: None,
        cpu: None,
    });
    let stop = if restored {
        crate::vcpu::run_restored(&mut vm, &mut kernel, Some(tick))
    } else {
        crate::vcpu::run(&mut vm, &mut kernel, Some(tick))
    };
    drop(watching);
    drop(armed);
    kernel.live_end();
    drop(vm);
    drop(kernel);
    let stop = match crate::trap::violation() {
        Some(nr) => Stop::Violation(nr),
        None => stop,
    };
    match stop {
        Stop::Killed => None,
        Stop::Violation(nr) => {
            let name = crate::linux::dispatch::syscall_name(nr as u64);
            tracing::error!(syscall = %name, "the VMM thread of a live sandbox made a host syscall off its allowlist");
            Some(format!(
                "policy violation: the VMM thread made host syscall {nr} ({name}), which its seccomp allowlist ({}) does not allow; the sandbox was ended",
                crate::confine::PROFILE
            ))
        }
        Stop::Internal(msg) => {
            tracing::error!(%msg, "live micro-VM failed");
            Some(msg)
        }
        other => Some(format!("the VMM stopped: {other:?}")),
    }
}

fn panic_message(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".into())
}
