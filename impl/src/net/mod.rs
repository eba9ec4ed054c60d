//! The network layer's building blocks that are not tied to one protocol: [`channel`], the
//! authenticated, encrypted channel every `cellar node` and `cellar kv` connection speaks
//! (`specs/channel.md`, CH-*), and [`limits`], the time limits of one node-transport connection
//! (`specs/node-protocol.md`, NP-4).
//!
//! Sans-IO: nothing here opens a socket, reads the clock or draws OS randomness. The TCP shells
//! (`cellar node`, `cellar kv`) and the simulator drive the same state machines.

pub mod channel;
pub mod limits;
