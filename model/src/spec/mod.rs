//! The executable spec: pure state machines, no I/O, no clock, no randomness.
//!
//! What these functions accept, reject and return is what an implementation must accept,
//! reject and return. The stateright models in [`crate::models`] explore them exhaustively; the
//! simulator replays the real implementation's steps through them and reports the first step
//! they reject.

mod cas;
pub mod fs;
mod gossip;
mod sector;
pub mod space;
mod volume;

pub use cas::{CasOp, CasRegister, CasRet};
pub use gossip::{
    ClockOrder, GossipSpec, KeyState, MergePolicy, NodeId, VectorClock, Version, merge, write,
};
pub use sector::{
    RULE_CAS_ATOMIC, RULE_CAS_COMMIT, RULE_CAS_MISMATCH, RULE_ERRORS, RULE_RANGE, RULE_READ,
    RULE_RECOVERED, RULE_RECOVERED_CLEAN, RULE_RECOVERED_PREFIX, SectorExpect, SectorFailure,
    SectorKey, SectorOp, SectorRead, SectorRecord, SectorSpec, SectorValue, SectorVersion,
    SpaceClass, Violation, may_refuse_for_space, show, space_class,
};
pub use space::{SpaceOp, SpaceReject, SpaceRet, SpaceSpec, SpecMark};
pub use volume::{Effect, HolderId, Holding, Mode, VolumeReject, VolumeSpec, VolumeStep};
