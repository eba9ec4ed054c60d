//! The engine's API types: what callers pass in ([`WriteOptions`], [`Expect`], [`KeyRange`],
//! [`CasOp`]) and get back ([`Record`], [`Version`], [`CasResult`], [`EngineStats`],
//! [`RecoveryReport`]). Plain data, serde-serialisable so the simulator can trace them.
//!
//! Holds no behaviour beyond [`Version`]'s encoding (SEC-9); the operations live in `read.rs`
//! and `write.rs`.

/// A key: any unsigned 64-bit integer.
pub type Key = u64;

/// The version of a key's value: names one physical copy of one write, never reused (SEC-9).
///
/// Encoding: the high 32 bits are the epoch of the zone the record lives in (zone epochs are
/// never reused), the low 32 bits the record's first sector. Two writes of the same key never
/// share a version. Compaction moves a record and therefore changes its version (SEC-10): a
/// `compare` against a version taken before the move reports `false`, and the caller re-reads.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct Version(pub u64);

impl Version {
    /// Builds a version from a zone epoch and a sector index.
    pub fn new(zone_epoch: u32, sector: u32) -> Version {
        Version((u64::from(zone_epoch) << 32) | u64::from(sector))
    }

    /// The zone epoch part.
    pub fn zone_epoch(self) -> u32 {
        (self.0 >> 32) as u32
    }

    /// The sector part.
    pub fn sector(self) -> u32 {
        self.0 as u32
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A value read back, with the version naming this copy.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Record {
    /// The value (decompressed if it was written compressed).
    pub value: Vec<u8>,
    /// The version to pass to `compare` or a conditional write.
    pub version: Version,
    /// The read-follow pointer, if the write set one.
    pub next: Option<Key>,
}

/// What a conditional write or CAS member expects to find.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum Expect {
    /// No condition.
    #[default]
    Any,
    /// The key must be absent.
    Absent,
    /// The key must be at exactly this version.
    Version(Version),
}

/// Options of `write`, `append` and `delete`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WriteOptions {
    /// Store the value LZ4-compressed (transparent to readers).
    pub compressed: bool,
    /// Pack a small record into a shared sector with other small records.
    pub compact: bool,
    /// Keep the previous version restorable by `revert` until `commit` (volatile, SEC-12).
    pub revertible: bool,
    /// Condition on the key's current state; a mismatch is `SectorError::VersionMismatch`.
    pub expected: Expect,
    /// Make the write durable before returning (SEC-2).
    pub flush: bool,
    /// Read-follow pointer stored with the record.
    pub next: Option<Key>,
}

/// A key or an inclusive span of keys, for `read_range`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum KeyRange {
    /// One key.
    One(Key),
    /// Every present key in `start..=end`.
    Span {
        /// First key.
        start: Key,
        /// Last key (inclusive).
        end: Key,
    },
}

/// The new state of one CAS member.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CasNew {
    /// Store this value.
    Put(Vec<u8>),
    /// Delete the key.
    Delete,
}

/// One member of a multi-key CAS.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CasOp {
    /// The key.
    pub key: Key,
    /// What the key must be at.
    pub expected: Expect,
    /// What it becomes.
    pub new: CasNew,
}

/// Outcome of a CAS: all members applied, or none.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CasResult {
    /// Every member was applied; new versions in member order (`None` for deletes).
    Committed(Vec<Option<Version>>),
    /// Member `index` did not match; nothing was written.
    Mismatch {
        /// Position of the first failing member.
        index: usize,
        /// That key's current version.
        current: Option<Version>,
    },
}

/// Per-zone figures for `stat`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ZoneStat {
    /// Zone index.
    pub zone: u32,
    /// Epoch (0: free).
    pub epoch: u32,
    /// Records written into the zone (values, tombstones, commits, seals).
    pub records: u32,
    /// Records still live.
    pub live_records: u32,
    /// Current tombstones (deleted keys whose newest record is here).
    pub live_tombstones: u32,
    /// Sectors used.
    pub used_sectors: u32,
    /// Dead share of the zone's records, percent.
    pub dead_percent: u8,
}

/// Figures for `stat`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EngineStats {
    /// Live keys.
    pub keys: u64,
    /// Keys whose newest record is known corrupt.
    pub corrupt_keys: u64,
    /// Estimated live bytes (used bytes × live share, per zone).
    pub live_bytes_estimate: u64,
    /// Bytes of RAM the index uses.
    pub index_bytes: u64,
    /// Free zones.
    pub free_zones: u32,
    /// Free zones ordinary writes leave alone (SEC-16): while `free_zones` is at or below it,
    /// writes get `DeviceFull` once the head is full, deletes and compaction still run.
    pub reserved_zones: u32,
    /// Every zone in use.
    pub zones: Vec<ZoneStat>,
}

/// What recovery found (SEC-7): nothing here is silent.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RecoveryReport {
    /// Valid superblock copies (1 or 2).
    pub superblock_copies_valid: u8,
    /// Zones holding data.
    pub zones_in_use: u32,
    /// Valid records applied or superseded.
    pub records_scanned: u64,
    /// Zones whose unflushed tail was cut: (zone, first cut sector).
    pub torn_tails: Vec<(u32, u64)>,
    /// Sectors below the durable mark that failed their checks (corruption, SEC-6).
    pub corrupt_sectors: Vec<u64>,
    /// Keys whose newest record failed its payload CRC; reads of them report corruption.
    pub corrupt_keys: Vec<Key>,
    /// Zones whose header is damaged (their records are ignored).
    pub corrupt_zone_headers: Vec<u32>,
    /// CAS transactions found incomplete and rolled back (SEC-8).
    pub txns_rolled_back: u64,
    /// The epoch of the clean-shutdown checkpoint `open` loaded instead of scanning (SEC-19);
    /// `None`: it scanned.
    #[serde(default)]
    pub checkpoint: Option<u32>,
    /// Why a checkpoint found on the device was not used (stale, torn, damaged); the scan ran.
    #[serde(default)]
    pub checkpoint_refused: Option<String>,
}
