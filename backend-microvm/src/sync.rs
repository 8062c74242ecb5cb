//! Locks shared between the VMM thread, the relay and the host side.

use std::sync::{Mutex, MutexGuard};

/// Takes `m`, also after a holder panicked: every critical section in this crate
/// leaves its state whole at each step, so a poisoned lock still guards valid state,
/// and tearing a sandbox down must go on after a thread of it failed.
pub(crate) fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
