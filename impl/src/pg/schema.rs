//! Cellar's tables in PostgreSQL, created and migrated by `cellar` itself.
//!
//! `cellar_schema` holds one row: the schema version. [`migrate`] takes a transaction-scoped
//! advisory lock (so two processes opening one database at once migrate it once), reads the
//! version, applies every newer migration in order and records the new version, all in one
//! transaction: a crash or lost connection mid-migration leaves the old version intact. A
//! database whose version is newer than [`SCHEMA_VERSION`] is refused, never downgraded.
//!
//! Version 1:
//! - `cellar_cells(name text PK, value bytea)`: one row per cell (`PgCell`); no row means the
//!   empty value.
//! - `cellar_blobs(store text, hash bytea(32), data bytea, PK (store, hash))`: blobs of every
//!   `PgStore`, namespaced by store; `data` is stored uncompressed (`STORAGE EXTERNAL`): blobs
//!   are ciphertext, which does not compress.
//! - `cellar_modes(volume text PK, expand_epoch bigint, contract_epoch bigint)`: the fence
//!   counters of `PgModeLock` (`specs/volume.md` §6.1).

use super::PgError;
use postgres::Client;

/// The schema version this build creates and understands.
pub const SCHEMA_VERSION: i32 = 1;

/// Advisory lock key serialising migrations (ASCII "cellarmg").
const MIGRATE_LOCK_KEY: i64 = 0x6365_6c6c_6172_6d67;

/// Migration `i` takes the schema from version `i` to `i + 1`.
const MIGRATIONS: [&str; SCHEMA_VERSION as usize] = [r"
CREATE TABLE cellar_cells (
    name  text  PRIMARY KEY,
    value bytea NOT NULL
);
CREATE TABLE cellar_blobs (
    store text  NOT NULL,
    hash  bytea NOT NULL CHECK (length(hash) = 32),
    data  bytea NOT NULL,
    PRIMARY KEY (store, hash)
);
ALTER TABLE cellar_blobs ALTER COLUMN data SET STORAGE EXTERNAL;
CREATE TABLE cellar_modes (
    volume         text   PRIMARY KEY,
    expand_epoch   bigint NOT NULL DEFAULT 0,
    contract_epoch bigint NOT NULL DEFAULT 0
);
"];

/// Creates or migrates the schema (see the module docs). Returns the version before.
pub fn migrate(client: &mut Client) -> Result<i32, PgError> {
    let q = |e: postgres::Error| PgError::from_driver("schema migration", &e);
    let mut tx = client.transaction().map_err(q)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATE_LOCK_KEY]).map_err(q)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS cellar_schema (
             id      int PRIMARY KEY CHECK (id = 1),
             version int NOT NULL
         )",
    )
    .map_err(q)?;
    let found: i32 = tx
        .query_opt("SELECT version FROM cellar_schema WHERE id = 1", &[])
        .map_err(q)?
        .map(|row| row.get(0))
        .unwrap_or(0);
    if found > SCHEMA_VERSION {
        return Err(PgError::SchemaTooNew { found, known: SCHEMA_VERSION });
    }
    let from = usize::try_from(found).unwrap_or(0);
    for sql in MIGRATIONS.iter().skip(from) {
        tx.batch_execute(sql).map_err(q)?;
    }
    tx.execute(
        "INSERT INTO cellar_schema (id, version) VALUES (1, $1)
         ON CONFLICT (id) DO UPDATE SET version = EXCLUDED.version",
        &[&SCHEMA_VERSION],
    )
    .map_err(q)?;
    tx.commit().map_err(q)?;
    Ok(found)
}
