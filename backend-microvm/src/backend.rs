//! The `Backend` and `Execution` of the micro-VM: each run gets its own thread, which
//! builds the VM, confines itself and runs the guest; the async side waits, streams
//! output, feeds stdin and kills.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use sandbox_core::{
    Backend, BackendProbe, Execution, Isolation, KillHandle, Network, Outcome, OutputStream, Plan,
    RunError, SpawnError, Stdin, StdinWriter,
};
use tokio::sync::{mpsc, oneshot};

use crate::kick::{self, Control};
use crate::stdio::{Input, Output, StdinQueue};

/// The micro-VM backend: one KVM VM per run, the workload in guest user mode, the
/// Linux ABI answered by the VMM.
#[derive(Debug, Default)]
pub struct MicroVmBackend {
    _private: (),
}

impl MicroVmBackend {
    /// The backend (nothing is opened until a run starts).
    pub fn new() -> Self {
        MicroVmBackend::default()
    }
}

#[async_trait]
impl Backend for MicroVmBackend {
    fn isolation(&self) -> Isolation {
        Isolation::MicroVm
    }

    fn probe(&self) -> BackendProbe {
        crate::probe::probe()
    }

    fn availability(&self) -> Result<(), String> {
        crate::probe::availability().map(|_| ())
    }

    /// Looks at the program through the same file view the VM would have: a program the
    /// loader cannot run (not an x86-64 ELF, or dynamically linked with its loader
    /// missing from the sandbox) is refused here, so that `auto` can treat it as a need
    /// only the container meets.
    fn supports(&self, plan: &Plan) -> Result<(), String> {
        check_network(plan).map_err(|e| e.to_string())?;
        crate::sandbox::refuse_unenforceable(plan).map_err(|e| e.to_string())?;
        crate::loader::check_runnable(plan)
    }

    async fn create(
        &self,
        plan: Plan,
        options: sandbox_core::LiveOptions,
    ) -> Result<Arc<dyn sandbox_core::LiveSandbox>, SpawnError> {
        check_network(&plan)?;
        crate::probe::availability().map_err(|reason| SpawnError::Unavailable {
            isolation: Isolation::MicroVm,
            reason,
        })?;
        crate::live::create(plan, options).await
    }

    async fn spawn(&self, plan: Plan) -> Result<Box<dyn Execution>, SpawnError> {
        check_network(&plan)?;
        crate::probe::availability().map_err(|reason| SpawnError::Unavailable {
            isolation: Isolation::MicroVm,
            reason,
        })?;
        crate::confine::check().map_err(|e| SpawnError::Setup {
            step: "compiling the VMM seccomp filter".into(),
            source: std::io::Error::other(e),
        })?;
        kick::install_handler().map_err(|e| SpawnError::Setup {
            step: "installing the vCPU kick signal handler".into(),
            source: e,
        })?;
        crate::trap::install_handler().map_err(|e| SpawnError::Setup {
            step: "installing the VMM's SIGSYS handler".into(),
            source: e,
        })?;

        let (out_tx, out_rx) = mpsc::unbounded_channel();
        let output = Output::new(out_tx, plan.limits.output.map(|b| b.0));
        let ctl = Arc::new(Control::default());
        let mut stdin_writer = None;
        let input = match &plan.stdin {
            Stdin::Null => Input::Null,
            Stdin::Bytes(b) => Input::Bytes(b.clone(), 0),
            Stdin::Stream => {
                let (writer, rx) = StdinWriter::channel();
                stdin_writer = Some(writer);
                let queue = Arc::new(StdinQueue::default());
                let (q, c) = (Arc::clone(&queue), Arc::clone(&ctl));
                tokio::spawn(async move { q.pump(rx, || c.input_arrived()).await });
                Input::Stream(queue)
            }
        };

        // The egress broker and its relay start here, before the vCPU thread exists
        // (it confines itself: no socket call is left to it).
        let net = crate::net::VmNet::start(&plan, &ctl)?;
        let thread_net = net.clone();
        let (setup_tx, setup_rx) = oneshot::channel::<Result<(), SpawnError>>();
        let (done_tx, done_rx) = oneshot::channel::<Result<Outcome, RunError>>();
        let thread_ctl = Arc::clone(&ctl);
        let start = Instant::now();
        std::thread::Builder::new()
            .name("hsb-vcpu".into())
            .spawn(move || {
                thread_ctl.register_thread();
                vcpu_thread(
                    &plan,
                    &thread_ctl,
                    (output, input),
                    thread_net,
                    start,
                    setup_tx,
                    done_tx,
                );
                thread_ctl.unregister_thread();
            })
            .map_err(|e| SpawnError::Setup {
                step: "starting the vCPU thread".into(),
                source: e,
            })?;
        match setup_rx.await {
            Ok(Ok(())) => Ok(Box::new(MicroVmExecution {
                ctl,
                stdin: stdin_writer,
                output: Some(out_rx),
                done: Some(done_rx),
                net,
            })),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(SpawnError::Setup {
                step: "setting up the micro-VM".into(),
                source: std::io::Error::other("the vCPU thread ended during setup"),
            }),
        }
    }
}

/// The body of a run's thread. A panic (a VMM bug) becomes an error of the run, never
/// a crash of the caller.
fn vcpu_thread(
    plan: &Plan,
    ctl: &Arc<Control>,
    (output, input): (Output, Input),
    net: Option<Arc<crate::net::VmNet>>,
    start: Instant,
    setup_tx: oneshot::Sender<Result<(), SpawnError>>,
    done_tx: oneshot::Sender<Result<Outcome, RunError>>,
) {
    let prepared = catch_unwind(AssertUnwindSafe(|| {
        crate::sandbox::prepare(plan, Arc::clone(ctl), output, input, start, false, net)
    }));
    let prepared = match prepared {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => {
            let _ = setup_tx.send(Err(e));
            return;
        }
        Err(panic) => {
            let _ = setup_tx.send(Err(SpawnError::Setup {
                step: "setting up the micro-VM".into(),
                source: std::io::Error::other(panic_message(&panic)),
            }));
            return;
        }
    };
    if setup_tx.send(Ok(())).is_err() {
        ctl.kill();
    }
    let (outcome, kernel) = match catch_unwind(AssertUnwindSafe(|| {
        crate::sandbox::run(plan, prepared, start)
    })) {
        Ok((outcome, kernel)) => (outcome, Some(kernel)),
        Err(panic) => (
            Err(RunError::Supervision(
                "running the micro-VM".into(),
                std::io::Error::other(format!("VMM failure: {}", panic_message(&panic))),
            )),
            None,
        ),
    };
    let _ = done_tx.send(outcome);
    // The personality is freed once the outcome is out: the caller does not wait for
    // that teardown (a panic in it, after the outcome, is only logged).
    if let Err(panic) = catch_unwind(AssertUnwindSafe(move || drop(kernel))) {
        tracing::error!(message = %panic_message(&panic), "micro-VM teardown failed after the run's outcome");
    }
}

/// The micro-VM's networks: `none`, `loopback` (its own, inside the VM) and `egress`
/// (through the broker, `net.rs`). A network namespace to join (an OCI engine's) is
/// refused in words with egress: the namespace's owner makes that network.
fn check_network(plan: &Plan) -> Result<(), SpawnError> {
    if plan.network == Network::Egress && plan.netns.is_some() {
        return Err(SpawnError::Unsupported(
            "network `egress` in a joined network namespace: the namespace's owner (the engine) \
             makes its network"
                .into(),
        ));
    }
    Ok(())
}

fn panic_message(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".into())
}

/// A running micro-VM.
#[derive(Debug)]
struct MicroVmExecution {
    ctl: Arc<Control>,
    stdin: Option<StdinWriter>,
    output: Option<OutputStream>,
    done: Option<oneshot::Receiver<Result<Outcome, RunError>>>,
    /// Network `egress`: the broker and relay (stopped when the run ends).
    net: Option<Arc<crate::net::VmNet>>,
}

#[async_trait]
impl Execution for MicroVmExecution {
    fn exposed_ports(&self) -> Vec<sandbox_core::network::ExposedPort> {
        self.net.as_ref().map(|n| n.exposed()).unwrap_or_default()
    }

    fn network_events(
        &self,
    ) -> Option<tokio::sync::broadcast::Receiver<sandbox_core::network::NetworkEvent>> {
        self.net.as_ref().and_then(|n| n.events())
    }

    fn isolation(&self) -> Isolation {
        Isolation::MicroVm
    }

    fn take_stdin(&mut self) -> Option<StdinWriter> {
        self.stdin.take()
    }

    fn take_output(&mut self) -> Option<OutputStream> {
        self.output.take()
    }

    fn kill_handle(&self) -> KillHandle {
        let ctl = Arc::clone(&self.ctl);
        KillHandle::new(move || ctl.kill())
    }

    async fn wait(&mut self) -> Result<Outcome, RunError> {
        let done = self.done.take().ok_or(RunError::AlreadyWaited)?;
        let mut outcome = match done.await {
            Ok(r) => r,
            Err(_) => Err(RunError::Supervision(
                "waiting for the micro-VM".into(),
                std::io::Error::other("the vCPU thread ended without an outcome"),
            )),
        };
        // The run is over: its connections end and the broker's report is final.
        if let Some(net) = self.net.clone() {
            let report = tokio::task::spawn_blocking(move || net.stop())
                .await
                .ok()
                .flatten();
            if let Ok(o) = &mut outcome {
                o.network = report;
            }
        }
        outcome
    }
}

impl Drop for MicroVmExecution {
    fn drop(&mut self) {
        self.ctl.kill();
    }
}
