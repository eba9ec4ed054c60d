//! Synchronisation primitives, swapped for loom's under `--cfg loom` so the model checker can
//! explore every interleaving of the code that uses them.

#[cfg(loom)]
#[allow(unused_imports, reason = "Arc is used by some configurations only")]
pub(crate) use loom::sync::{Arc, Mutex, MutexGuard};
#[cfg(not(loom))]
#[allow(unused_imports, reason = "Arc is used by some configurations only")]
pub(crate) use std::sync::{Arc, Mutex, MutexGuard};

/// Locks a mutex, recovering the data from a poisoned lock: every critical section in this
/// crate leaves its data consistent before it can panic, so poisoning carries no information.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}
