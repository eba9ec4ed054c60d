//! `PgModeLock`: VOL-2's mode exclusion across processes and machines, through PostgreSQL
//! session advisory locks, plus the fence that keeps a holder whose session was lost from
//! acting (`specs/volume.md` §6.1, VOL-7).
//!
//! Same protocol as `FileModeLock`, with advisory locks for `flock`s. Each `begin` opens its
//! own session (connection), which the [`ModeHold`] owns for its whole life. In one
//! transaction it takes the volume's *gate* key with a transaction-scoped exclusive lock, its
//! mode's key with a **session** shared lock, and probes the other mode's key with a
//! non-blocking exclusive lock; on success it bumps its mode's counter in `cellar_modes` and
//! reads the other mode's counter — the *fence token*. Dropping the hold closes the session;
//! the server then releases its locks. So does the server when the session dies with its
//! process (VOL-4): no timeout, no lease.
//!
//! The fence: a session can also end while its process lives on (a network partition long
//! enough for the server's TCP keepalive to drop it, `pg_terminate_backend`). The process's
//! cell and store use other connections, so without a fence they could still publish or delete
//! after another machine began the other mode. Every fenced write (`PgCell::cas` under Expand,
//! `PgStore::delete` under Contract) therefore runs in a transaction that first reads the other
//! mode's counter `FOR SHARE` and writes only if it still equals the token: if the other mode
//! began since, the write is refused with [`PgError::ModeLost`]; and a `begin` of the other
//! mode, which must update that row, waits until the fenced write has committed.
//!
//! Never: keep a session after its hold is dropped; write under a token the counters moved
//! past.

use super::{PgError, PgPool};
use crate::storage::volume::{Mode, ModeHold, ModeLock, VolumeError};
use postgres::GenericClient;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Domain-separation context for deriving advisory lock keys from a volume name.
const LOCK_KEY_CONTEXT: &str = "cellar 2026 pg mode lock key v1";

/// Server-side TCP keepalive for a holder's session: the server notices a vanished holder
/// machine after about idle + interval × count = 10 + 5 × 3 = 25 seconds, and releases its locks.
const HOLD_SESSION_SETTINGS: &str =
    "SET tcp_keepalives_idle = 10; SET tcp_keepalives_interval = 5; SET tcp_keepalives_count = 3";

/// The fence tokens of the holds this process has on one volume (see the module docs).
#[derive(Debug)]
pub struct PgFence {
    volume: String,
    holds: Mutex<BTreeMap<u64, (Mode, i64)>>,
    next_id: Mutex<u64>,
}

impl PgFence {
    fn new(volume: &str) -> Self {
        Self { volume: volume.to_owned(), holds: Mutex::default(), next_id: Mutex::new(0) }
    }

    /// The volume's name (its row in `cellar_modes`).
    pub fn volume(&self) -> &str {
        &self.volume
    }

    /// The token writes in `mode` must check: the smallest token of this process's live holds
    /// of `mode` (if any hold's token is stale, every write of that mode is refused — the
    /// conservative choice), or `None` when this process holds no `mode`.
    pub fn token(&self, mode: Mode) -> Option<i64> {
        let holds = lock(&self.holds);
        holds.values().filter(|(m, _)| *m == mode).map(|(_, t)| *t).min()
    }

    fn register(&self, mode: Mode, token: i64) -> u64 {
        let mut next = lock(&self.next_id);
        let id = *next;
        *next = next.wrapping_add(1);
        lock(&self.holds).insert(id, (mode, token));
        id
    }

    fn release(&self, id: u64) {
        lock(&self.holds).remove(&id);
    }

    /// Inside a caller's transaction: reads the counter of the mode opposite to `mode` with a
    /// row share lock and refuses unless it equals this process's token. Does nothing (returns
    /// `Ok`) when this process holds no `mode`: such a write is outside the volume protocol.
    pub fn check(&self, tx: &mut impl GenericClient, mode: Mode) -> Result<(), PgError> {
        let Some(held) = self.token(mode) else { return Ok(()) };
        if crate::bugs::active("pg:no-fence") {
            return Ok(());
        }
        let sql = match mode {
            Mode::Expand => "SELECT contract_epoch FROM cellar_modes WHERE volume = $1 FOR SHARE",
            Mode::Contract => "SELECT expand_epoch FROM cellar_modes WHERE volume = $1 FOR SHARE",
        };
        let q = |e: postgres::Error| PgError::from_driver("fence check", &e);
        let found: i64 = match tx.query_opt(sql, &[&self.volume]).map_err(q)? {
            Some(row) => row.try_get(0).map_err(q)?,
            None => -1,
        };
        if found != held {
            return Err(PgError::ModeLost {
                volume: self.volume.clone(),
                mode: mode_name(mode),
                held,
                found,
            });
        }
        Ok(())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Expand => "expand",
        Mode::Contract => "contract",
    }
}

/// Advisory lock keys of one volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PgModeKeys {
    /// Serialises begins (transaction-scoped, exclusive).
    pub gate: i64,
    /// Held shared by every Expand holder's session.
    pub expand: i64,
    /// Held shared by every Contract holder's session.
    pub contract: i64,
}

impl PgModeKeys {
    /// The keys of `volume`: 64-bit BLAKE3 derivations of its name, one per role. (A collision
    /// with another volume's key can only cause spurious conflicts, never an overlap.)
    pub fn of(volume: &str) -> Self {
        let key = |role: &str| {
            let d = blake3::derive_key(LOCK_KEY_CONTEXT, format!("{role}\0{volume}").as_bytes());
            let mut b = [0u8; 8];
            b.copy_from_slice(&d[..8]);
            i64::from_le_bytes(b)
        };
        Self { gate: key("gate"), expand: key("expand"), contract: key("contract") }
    }

    fn of_mode(&self, mode: Mode) -> i64 {
        match mode {
            Mode::Expand => self.expand,
            Mode::Contract => self.contract,
        }
    }
}

/// Mode exclusion for one volume through PostgreSQL (see the module docs).
#[derive(Debug, Clone)]
pub struct PgModeLock {
    pool: Arc<PgPool>,
    keys: PgModeKeys,
    fence: Arc<PgFence>,
}

impl PgModeLock {
    /// The lock of the volume named `volume` in the database `pool` connects to. Every process
    /// (on any machine) that names the same volume in the same database shares it.
    pub fn new(pool: Arc<PgPool>, volume: &str) -> Self {
        Self { pool, keys: PgModeKeys::of(volume), fence: Arc::new(PgFence::new(volume)) }
    }

    /// The fence that this process's `PgCell` and `PgStore` of the volume must check.
    pub fn fence(&self) -> Arc<PgFence> {
        Arc::clone(&self.fence)
    }

    /// The advisory lock keys in use.
    pub fn keys(&self) -> PgModeKeys {
        self.keys
    }

    /// `application_name` of a holder's session, so an operator (or a test watching VOL-2
    /// from outside) can find it in `pg_stat_activity`. A session is given it only once its
    /// begin succeeded; until then (and for good when the begin meets the other mode) it is
    /// [`PgModeLock::pending_name`].
    pub fn session_name(&self, mode: Mode) -> String {
        format!("cellar {} {}", mode_name(mode), self.fence.volume)
    }

    /// `application_name` of a session whose begin has not (yet) succeeded.
    pub fn pending_name(&self, mode: Mode) -> String {
        format!("cellar begin {} {}", mode_name(mode), self.fence.volume)
    }

    /// Runs the begin transaction on `client`; `Ok(None)` is a conflict.
    fn try_begin(&self, client: &mut postgres::Client, mode: Mode) -> Result<Option<i64>, PgError> {
        let q = |e: postgres::Error| PgError::from_driver("mode lock begin", &e);
        let volume = self.fence.volume.as_str();
        let mine = self.keys.of_mode(mode);
        let other = self.keys.of_mode(mode.other());
        let mut tx = client.transaction().map_err(q)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&self.keys.gate]).map_err(q)?;
        tx.execute("SELECT pg_advisory_lock_shared($1)", &[&mine]).map_err(q)?;
        let free: bool = tx
            .query_one("SELECT pg_try_advisory_lock($1)", &[&other])
            .map_err(q)?
            .try_get(0)
            .map_err(q)?;
        if free {
            tx.execute("SELECT pg_advisory_unlock($1)", &[&other]).map_err(q)?;
        } else if !crate::bugs::active("volume:no-mode-exclusion") {
            // Refused (VOL-6). Give the shared lock back while the gate is still held: the
            // session ends only later, when the connection drops, and a begin of the other mode
            // that passed the gate in between would see this refused begin as a holder and be
            // refused too, spuriously (seen between two `cellar serve` and `cellar gc`).
            tx.execute("SELECT pg_advisory_unlock_shared($1)", &[&mine]).map_err(q)?;
            return Ok(None);
        }
        tx.execute(
            "INSERT INTO cellar_modes (volume) VALUES ($1) ON CONFLICT (volume) DO NOTHING",
            &[&volume],
        )
        .map_err(q)?;
        let bump = match mode {
            Mode::Expand => {
                "UPDATE cellar_modes SET expand_epoch = expand_epoch + 1 WHERE volume = $1 \
                 RETURNING contract_epoch"
            }
            Mode::Contract => {
                "UPDATE cellar_modes SET contract_epoch = contract_epoch + 1 WHERE volume = $1 \
                 RETURNING expand_epoch"
            }
        };
        let token: i64 = tx.query_one(bump, &[&volume]).map_err(q)?.try_get(0).map_err(q)?;
        tx.commit().map_err(q)?;
        Ok(Some(token))
    }
}

/// Owns a holder's session: dropping it ends the session, and the server releases the locks.
struct PgHoldGuard {
    _session: Mutex<postgres::Client>,
    fence: Arc<PgFence>,
    id: u64,
}

impl Drop for PgHoldGuard {
    fn drop(&mut self) {
        // Forget the token first; the session closes right after, when `_session` drops.
        self.fence.release(self.id);
    }
}

impl ModeLock for PgModeLock {
    fn begin(&self, mode: Mode) -> Result<ModeHold, VolumeError> {
        let mut client = self.pool.connect_dedicated()?;
        let setup = format!(
            "{HOLD_SESSION_SETTINGS}; SET application_name = '{}'",
            self.pending_name(mode).replace('\'', "''")
        );
        client
            .batch_execute(&setup)
            .map_err(|e| PgError::from_driver("mode lock session setup", &e))?;
        let Some(token) = self.try_begin(&mut client, mode)? else {
            return Err(VolumeError::ModeConflict { wanted: mode, held: mode.other() });
        };
        let named =
            format!("SET application_name = '{}'", self.session_name(mode).replace('\'', "''"));
        client
            .batch_execute(&named)
            .map_err(|e| PgError::from_driver("mode lock session name", &e))?;
        let id = self.fence.register(mode, token);
        let guard =
            PgHoldGuard { _session: Mutex::new(client), fence: Arc::clone(&self.fence), id };
        Ok(ModeHold::with_guard(mode, Box::new(guard)))
    }
}
