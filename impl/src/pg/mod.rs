//! The PostgreSQL backend (`specs/postgres.md`, `specs/volume.md` §6.1): a [`PgCell`] is a row
//! whose compare-and-swap is one conditional statement, a [`PgStore`] is a table of
//! (hash, bytes) verified on every read, and a [`PgModeLock`] keeps Expand and Contract apart
//! across processes and machines with session advisory locks (VOL-2, VOL-4) plus a fence
//! (VOL-7).
//!
//! Files: `pool` (bounded connections, lazy reconnect), `schema` (tables, created and migrated
//! by cellar with a version table), `cell`, `store`, `mode`, `error`.
//!
//! Why the synchronous `postgres` crate: Cellar's core is synchronous and sans-async; every
//! other backend is a blocking call. (It drives `tokio-postgres` on a private runtime inside the
//! client; no async type crosses this module's boundary.)
//!
//! Failure model: every operation is one statement or one transaction, so a lost connection
//! never leaves half of it applied; it is reported as [`PgError::ConnectionLost`] inside the
//! trait's `Io` error, which [`PgError::is_retryable_in`] recognises, and the next operation
//! reconnects. TLS is not supported yet (`sslmode=require` fails to connect).

mod cell;
mod error;
mod mode;
mod pool;
pub mod schema;
mod store;

pub use cell::{PG_CAS_FAST_ATTEMPTS_MAX, PgCell};
pub use error::PgError;
pub use mode::{PgFence, PgModeKeys, PgModeLock};
pub use pool::{
    CONNECT_TIMEOUT_S_DEFAULT, POOL_CONNECTIONS_MAX_DEFAULT, POOL_CONNECTIONS_MAX_LIMIT, PgPool,
};
pub use store::PgStore;
