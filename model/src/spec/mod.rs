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
pub use sector::{SectorOp, SpaceClass, may_refuse_for_space, space_class};
pub use space::{SpaceOp, SpaceReject, SpaceRet, SpaceSpec, SpecMark};
pub use volume::{Effect, HolderId, Holding, Mode, VolumeReject, VolumeSpec, VolumeStep};
