//! The sector engine's space rule (`specs/sector.md` SEC-16, §5.5): which operations a full
//! device may refuse with "device full", and which it never may.
//!
//! Ordinary operations (write, append, a CAS with a Put member) may be refused once only the
//! reserve is left; shrinking ones (delete, a CAS whose members all delete) never are, and
//! neither are flush and recovery, which take no space. The compactor may meet a device with no
//! free zone at all only after crashes used up its reserve (§13), so a refused compaction step
//! is allowed but must not last (the simulator's liveness check).
//!
//! Beside it, in `sector/`, [`SectorSpec`]: the executable spec of the engine's observable
//! behaviour (SEC-2, SEC-6, SEC-7, SEC-8, SEC-9) that the simulator's oracle judges the real
//! engine with.

mod judge;
mod outcome;
mod state;
#[cfg(test)]
mod tests_spec;

pub use judge::{
    RULE_CAS_ATOMIC, RULE_CAS_COMMIT, RULE_CAS_MISMATCH, RULE_ERRORS, RULE_RANGE, RULE_READ,
    RULE_RECOVERED, RULE_RECOVERED_CLEAN, RULE_RECOVERED_PREFIX,
};
pub use outcome::{
    SectorExpect, SectorFailure, SectorKey, SectorRead, SectorRecord, SectorValue, SectorVersion,
    Violation, show,
};
pub use state::SectorSpec;

/// A sector-engine operation, as far as space is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SectorOp {
    /// `write` (any options).
    Write,
    /// `append`.
    Append,
    /// `delete`.
    Delete,
    /// A multi-key CAS; `puts`: at least one member stores a value.
    Cas {
        /// Does any member store a value?
        puts: bool,
    },
    /// `flush`.
    Flush,
    /// `open` (recovery).
    Open,
    /// One compaction step.
    CompactStep,
}

/// How SEC-16 admits an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpaceClass {
    /// May grow the live data: stops where the reserve begins.
    Ordinary,
    /// Makes a record dead for each record it writes: may use the delete reserve and reclaims
    /// space itself beyond it.
    Shrinking,
    /// Takes no space.
    Free,
    /// The compactor: may use every free zone.
    Compactor,
}

/// The class SEC-16 puts `op` in.
pub fn space_class(op: SectorOp) -> SpaceClass {
    match op {
        SectorOp::Write | SectorOp::Append | SectorOp::Cas { puts: true } => SpaceClass::Ordinary,
        SectorOp::Delete | SectorOp::Cas { puts: false } => SpaceClass::Shrinking,
        SectorOp::Flush | SectorOp::Open => SpaceClass::Free,
        SectorOp::CompactStep => SpaceClass::Compactor,
    }
}

/// May the engine answer `op` with "device full"? Never for shrinking operations, flush or
/// recovery (SEC-16).
pub fn may_refuse_for_space(op: SectorOp) -> bool {
    matches!(space_class(op), SpaceClass::Ordinary | SpaceClass::Compactor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deletes_flush_and_recovery_are_never_refused() {
        for op in [SectorOp::Delete, SectorOp::Cas { puts: false }, SectorOp::Flush, SectorOp::Open]
        {
            assert!(!may_refuse_for_space(op), "{op:?}");
        }
        for op in [SectorOp::Write, SectorOp::Append, SectorOp::Cas { puts: true }] {
            assert!(may_refuse_for_space(op), "{op:?}");
        }
    }
}
