//! `PgCell`: a cell that is one row of `cellar_cells` (CELL-1..3 over PostgreSQL).
//!
//! The swap is one conditional statement, so there is no read-modify-write race: the server's
//! row lock makes `UPDATE … WHERE name = $1 AND value = $expected` atomic, and for the empty
//! state (no row, or an empty value) `INSERT … ON CONFLICT DO UPDATE … WHERE value = ''`
//! installs the first value exactly once. A lost swap then reads the current value; if that
//! equals `expected` again (the value changed and changed back between the two statements) it
//! goes round, at most [`PG_CAS_FAST_ATTEMPTS_MAX`] times, and then settles the question in one
//! transaction under the row's lock (`SELECT … FOR UPDATE`). So every lost swap reports a
//! current value different from `expected` (CELL-2, no spurious failure), and every path is
//! bounded.
//!
//! Under a volume's Expand mode held through `PgModeLock`, the swap runs in a transaction that
//! first checks the fence (`specs/volume.md` §6.1): a swap by a holder whose lock was lost is
//! refused with `PgError::ModeLost`, and nothing changes.
//!
//! Never: return a value longer than the cell's maximum (it is `Corrupt`: every opener must
//! agree on the maximum, as for `FileCell`); half-apply a swap (one statement or one
//! transaction: a broken connection rolls it back).

use super::{PgError, PgFence, PgPool};
use crate::storage::cell::{CELL_SIZE_MAX_BYTES_DEFAULT, CasOutcome, Cell, CellError, check_size};
use crate::storage::volume::Mode;
use postgres::GenericClient;
use std::sync::{Arc, OnceLock};

/// Conditional-statement attempts before a lost swap whose re-read matches `expected` is
/// settled under the row lock.
pub const PG_CAS_FAST_ATTEMPTS_MAX: u32 = 4;

/// A compare-and-swap cell in PostgreSQL (see the module docs).
#[derive(Debug)]
pub struct PgCell {
    pool: Arc<PgPool>,
    name: String,
    max_size_bytes: usize,
    fence: OnceLock<Arc<PgFence>>,
}

fn q(op: &'static str) -> impl Fn(postgres::Error) -> PgError {
    move |e| PgError::from_driver(op, &e)
}

impl PgCell {
    /// The cell `name` (its row key) in the database of `pool`, with the default maximum size.
    /// No row is created until the first swap: a missing row reads as the empty value.
    pub fn new(pool: Arc<PgPool>, name: &str) -> Self {
        Self {
            pool,
            name: name.to_owned(),
            max_size_bytes: CELL_SIZE_MAX_BYTES_DEFAULT,
            fence: OnceLock::new(),
        }
    }

    /// Accepts values up to `max_size_bytes` (default 4096, CELL-3). Every opener of one cell
    /// must use the same maximum: a stored value over it reads as `Corrupt`.
    #[must_use]
    pub fn with_max_size(mut self, max_size_bytes: usize) -> Self {
        self.max_size_bytes = max_size_bytes;
        self
    }

    /// Makes every swap check `fence` while this process holds Expand on the fence's volume.
    /// Returns false if a fence was already attached (the first one stays).
    pub fn attach_fence(&self, fence: Arc<PgFence>) -> bool {
        self.fence.set(fence).is_ok()
    }

    /// The row key.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn check_stored(&self, value: Vec<u8>) -> Result<Vec<u8>, CellError> {
        if value.len() > self.max_size_bytes {
            return Err(CellError::Corrupt(format!(
                "cell {} holds {} bytes, more than its maximum of {}",
                self.name,
                value.len(),
                self.max_size_bytes
            )));
        }
        Ok(value)
    }
}

/// Reads the row (`None`: no row, the empty value).
fn select(c: &mut impl GenericClient, name: &str) -> Result<Vec<u8>, PgError> {
    let op = "cell read";
    match c.query_opt("SELECT value FROM cellar_cells WHERE name = $1", &[&name]).map_err(q(op))? {
        Some(row) => row.try_get(0).map_err(q(op)),
        None => Ok(Vec::new()),
    }
}

/// One conditional statement; true if it swapped.
fn conditional_write(
    c: &mut impl GenericClient,
    name: &str,
    expected: &[u8],
    new: &[u8],
) -> Result<bool, PgError> {
    let rows = if expected.is_empty() {
        c.execute(
            "INSERT INTO cellar_cells (name, value) VALUES ($1, $2)
             ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value
             WHERE cellar_cells.value = ''::bytea",
            &[&name, &new],
        )
    } else {
        c.execute(
            "UPDATE cellar_cells SET value = $3 WHERE name = $1 AND value = $2",
            &[&name, &expected, &new],
        )
    };
    Ok(rows.map_err(q("cell cas"))? == 1)
}

/// The definitive slow path: one transaction under the row's lock.
fn locked_cas(
    c: &mut impl GenericClient,
    name: &str,
    expected: &[u8],
    new: &[u8],
) -> Result<(bool, Vec<u8>), PgError> {
    let op = q("cell cas (locked)");
    let mut tx = c.transaction().map_err(&op)?;
    // An empty row reads like no row, so creating one changes no value; it gives FOR UPDATE a
    // row to lock.
    tx.execute(
        "INSERT INTO cellar_cells (name, value) VALUES ($1, ''::bytea)
         ON CONFLICT (name) DO NOTHING",
        &[&name],
    )
    .map_err(&op)?;
    let row = tx
        .query_one("SELECT value FROM cellar_cells WHERE name = $1 FOR UPDATE", &[&name])
        .map_err(&op)?;
    let current: Vec<u8> = row.try_get(0).map_err(&op)?;
    if current != expected {
        return Ok((false, current)); // dropping `tx` rolls back
    }
    tx.execute("UPDATE cellar_cells SET value = $2 WHERE name = $1", &[&name, &new])
        .map_err(&op)?;
    tx.commit().map_err(&op)?;
    Ok((true, new.to_vec()))
}

/// CELL-1/2: conditional statement, re-read on a loss, bounded, then the locked path.
fn cas_on(
    c: &mut impl GenericClient,
    name: &str,
    expected: &[u8],
    new: &[u8],
) -> Result<(bool, Vec<u8>), PgError> {
    for _ in 0..PG_CAS_FAST_ATTEMPTS_MAX {
        if conditional_write(c, name, expected, new)? {
            return Ok((true, new.to_vec()));
        }
        let current = select(c, name)?;
        if current != expected {
            return Ok((false, current));
        }
    }
    locked_cas(c, name, expected, new)
}

impl Cell for PgCell {
    fn max_size_bytes(&self) -> usize {
        self.max_size_bytes
    }

    fn read(&self) -> Result<Vec<u8>, CellError> {
        let value = self.pool.with(|c| select(c, &self.name))?;
        self.check_stored(value)
    }

    fn cas(&self, expected: &[u8], new: &[u8]) -> Result<CasOutcome, CellError> {
        check_size(new.len(), self.max_size_bytes)?;
        let fence = self.fence.get().filter(|f| f.token(Mode::Expand).is_some());
        let (swapped, current) = self.pool.with(|c| match fence {
            None => cas_on(c, &self.name, expected, new),
            Some(fence) => {
                let op = q("cell cas (fenced)");
                let mut tx = c.transaction().map_err(&op)?;
                fence.check(&mut tx, Mode::Expand)?;
                let outcome = cas_on(&mut tx, &self.name, expected, new)?;
                tx.commit().map_err(&op)?;
                Ok(outcome)
            }
        })?;
        let current = if swapped { current } else { self.check_stored(current)? };
        Ok(CasOutcome { swapped, current })
    }
}
