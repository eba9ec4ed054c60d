//! The vocabulary of the sector spec: model-owned keys, values, versions, read outcomes, CAS
//! expectations and the [`Violation`] a judge returns. `cellar-model` never depends on
//! `cellar`; the simulator converts the engine's types into these (`sim/src/oracle.rs`).

/// A key (the engine's keys are `u64`).
pub type SectorKey = u64;
/// A value: `None` is absent (never written, or deleted).
pub type SectorValue = Option<Vec<u8>>;
/// A version as the engine reports it (SEC-9: two writes of a key never share one).
pub type SectorVersion = u64;

/// What a read of one key returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectorRecord {
    /// The value's bytes.
    pub value: Vec<u8>,
    /// The version the engine reported with it.
    pub version: SectorVersion,
}

/// Why an operation failed, as far as the spec is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SectorFailure {
    /// The engine reported `key`'s record corrupt (SEC-6).
    Corrupt {
        /// The key the error names.
        key: SectorKey,
        /// The engine's words.
        detail: String,
    },
    /// The device refused an I/O.
    Device(String),
    /// Any other error (never explained by a media fault).
    Other(String),
}

impl std::fmt::Display for SectorFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SectorFailure::Corrupt { key, detail } => {
                write!(f, "record for key {key} is corrupt: {detail}")
            }
            SectorFailure::Device(e) => write!(f, "device error: {e}"),
            SectorFailure::Other(e) => f.write_str(e),
        }
    }
}

/// The outcome of reading one key: a record, absent, or a failure.
pub type SectorRead = Result<Option<SectorRecord>, SectorFailure>;

/// What a CAS member expected (SEC-8, SEC-9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SectorExpect {
    /// No condition.
    Any,
    /// The key must be absent.
    Absent,
    /// The key's current version must be this one.
    Version(SectorVersion),
}

/// A broken promise: the run fails with this.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Violation {
    /// The rule broken (a spec ID and a short name).
    pub rule: String,
    /// What happened.
    pub detail: String,
}

impl Violation {
    /// A violation of `rule`.
    pub fn new(rule: &str, detail: String) -> Violation {
        Violation { rule: rule.to_owned(), detail }
    }
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.rule, self.detail)
    }
}

/// Short text for a value in reports: its write id (the first 8 bytes, little-endian; the
/// simulator starts every value with its write's id) and length, or the bytes in hex.
pub fn show(v: &SectorValue) -> String {
    match v {
        None => "absent".into(),
        Some(b) => match b.first_chunk::<8>() {
            Some(id) => format!("w{}/{}B", u64::from_le_bytes(*id), b.len()),
            None => {
                let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
                format!("{}B:{hex}", b.len())
            }
        },
    }
}
