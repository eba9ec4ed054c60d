//! `PgError`: what can go wrong talking to PostgreSQL, and which of it is worth a retry.
//!
//! The storage traits' error enums (`CellError`, `StoreError`, `VolumeError`) carry I/O errors;
//! a `PgError` travels inside their `Io` variant as the source of a `std::io::Error`, so callers
//! that care can find it again with [`PgError::find`] and ask [`PgError::is_retryable`].

use std::error::Error as StdError;
use std::io;

/// Errors of the PostgreSQL backend.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PgError {
    /// The connection URL does not parse.
    #[error("bad PostgreSQL URL: {0}")]
    BadUrl(String),
    /// No connection could be made (server down, refused, timed out). Retryable.
    #[error("cannot connect to PostgreSQL at {target}: {detail}")]
    Connect {
        /// Host and port (never the password).
        target: String,
        /// The driver's message.
        detail: String,
    },
    /// The connection broke during an operation. Each operation is one statement or one
    /// transaction, so nothing was half-applied; whether a final commit landed before the break
    /// is unknown: re-read, then retry.
    #[error(
        "PostgreSQL connection lost during {op} (nothing half-applied; re-read and retry): {detail}"
    )]
    ConnectionLost {
        /// The operation that was running.
        op: &'static str,
        /// The driver's message.
        detail: String,
    },
    /// The server refused a statement (permissions, constraint, SQL error).
    #[error("PostgreSQL refused {op}: {detail}")]
    Query {
        /// The operation that was running.
        op: &'static str,
        /// The driver's message.
        detail: String,
        /// The SQLSTATE code, if the server sent one.
        code: Option<String>,
    },
    /// The database's Cellar schema is newer than this build understands.
    #[error("the database holds Cellar schema version {found}; this cellar knows up to {known}")]
    SchemaTooNew {
        /// Version found in `cellar_schema`.
        found: i32,
        /// Latest version this build can migrate to.
        known: i32,
    },
    /// A fenced write found that the volume's mode was taken over by the other mode since this
    /// process's holder began: its advisory lock session was lost while it kept running
    /// (`specs/volume.md` §6.1, VOL-7). Nothing was written.
    #[error(
        "volume {volume}: the {mode} mode lock was lost (fence moved from {held} to {found}); nothing written"
    )]
    ModeLost {
        /// The volume whose fence row was checked.
        volume: String,
        /// The mode this process believed it held.
        mode: &'static str,
        /// The fence value recorded when the mode began.
        held: i64,
        /// The fence value found.
        found: i64,
    },
}

/// SQLSTATE classes that mean "try again": connection exceptions (08), serialization failure
/// and deadlock (40), insufficient resources (53), operator intervention (57: admin shutdown,
/// crash shutdown, cannot connect now).
const RETRYABLE_SQLSTATE_CLASSES: [&str; 4] = ["08", "40", "53", "57"];

impl PgError {
    /// Whether the same operation may succeed if retried (after a re-read for CAS).
    pub fn is_retryable(&self) -> bool {
        match self {
            PgError::Connect { .. } | PgError::ConnectionLost { .. } => true,
            PgError::Query { code: Some(code), .. } => {
                RETRYABLE_SQLSTATE_CLASSES.iter().any(|class| code.starts_with(class))
            }
            _ => false,
        }
    }

    /// Classifies a driver error raised during `op`.
    pub fn from_driver(op: &'static str, e: &postgres::Error) -> PgError {
        let code = e.code().map(|c| c.code().to_owned());
        let lost = e.is_closed()
            || code.as_deref().is_some_and(|c| c.starts_with("08") || c.starts_with("57P"))
            || (code.is_none() && e.source().is_some_and(|s| s.is::<io::Error>()));
        if lost {
            PgError::ConnectionLost { op, detail: e.to_string() }
        } else {
            PgError::Query { op, detail: e.to_string(), code }
        }
    }

    /// Finds a `PgError` in `e` or its chain of sources (through `std::io::Error` wrappers).
    pub fn find<'a>(e: &'a (dyn StdError + 'static)) -> Option<&'a PgError> {
        let mut cur: Option<&'a (dyn StdError + 'static)> = Some(e);
        // Error chains are short; the bound only guards against a cyclic `source`.
        for _ in 0..16 {
            let err = cur?;
            if let Some(pg) = err.downcast_ref::<PgError>() {
                return Some(pg);
            }
            if let Some(pg) = err
                .downcast_ref::<io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<PgError>())
            {
                return Some(pg);
            }
            cur = err.source();
        }
        None
    }

    /// Whether `e` (a `CellError`, `StoreError`, `VolumeError`, ...) carries a retryable
    /// `PgError`.
    pub fn is_retryable_in(e: &(dyn StdError + 'static)) -> bool {
        PgError::find(e).is_some_and(PgError::is_retryable)
    }
}

impl From<PgError> for io::Error {
    fn from(e: PgError) -> io::Error {
        let kind = match &e {
            PgError::Connect { .. } => io::ErrorKind::ConnectionRefused,
            PgError::ConnectionLost { .. } => io::ErrorKind::ConnectionAborted,
            PgError::BadUrl(_) => io::ErrorKind::InvalidInput,
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, e)
    }
}

impl From<PgError> for crate::storage::cell::CellError {
    fn from(e: PgError) -> Self {
        Self::Io(e.into())
    }
}

impl From<PgError> for crate::storage::store::StoreError {
    fn from(e: PgError) -> Self {
        Self::Io(e.into())
    }
}

impl From<PgError> for crate::storage::volume::VolumeError {
    fn from(e: PgError) -> Self {
        Self::Io(e.into())
    }
}
