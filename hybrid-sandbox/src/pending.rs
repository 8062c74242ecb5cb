//! Stands in for the micro-VM backend until it is wired in: reports itself unavailable
//! with the reason, so that selection fails closed.

use async_trait::async_trait;
use sandbox_core::{Backend, BackendProbe, Execution, Isolation, Plan, SpawnError};

const REASON: &str = "the micro-VM backend is not part of this build yet";

#[derive(Debug)]
pub(crate) struct PendingMicroVm;

#[async_trait]
impl Backend for PendingMicroVm {
    fn isolation(&self) -> Isolation {
        Isolation::MicroVm
    }
    fn probe(&self) -> BackendProbe {
        BackendProbe {
            isolation: Isolation::MicroVm,
            available: false,
            reason: Some(REASON.into()),
            details: Default::default(),
        }
    }
    async fn spawn(&self, _plan: Plan) -> Result<Box<dyn Execution>, SpawnError> {
        Err(SpawnError::Unavailable {
            isolation: Isolation::MicroVm,
            reason: REASON.into(),
        })
    }
}
