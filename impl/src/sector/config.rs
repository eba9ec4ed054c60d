//! Configuration and limits of the sector engine (`specs/sector.md` §14): the constants every
//! other file sizes its loops, buffers and on-disk fields by, checked against each other at
//! compile time, and [`EngineConfig`], the builder `format` and `open` take.
//!
//! Never holds state: geometry chosen here is fixed at `format` and read back from the
//! superblock by `open` (SEC-3).

/// Size of a device sector, the unit of every device I/O (SEC-1).
pub const SECTOR_SIZE_BYTES: usize = 4096;
/// Default size of a zone, the unit of allocation, compaction and trim.
pub const ZONE_SIZE_BYTES_DEFAULT: usize = 1024 * 1024;
/// Smallest zone the engine accepts: a header sector plus at least seven data sectors.
pub const ZONE_SIZE_BYTES_MIN: usize = 8 * SECTOR_SIZE_BYTES;
/// Largest zone the engine accepts (recovery and compaction buffer whole zones).
pub const ZONE_SIZE_BYTES_MAX: usize = 256 * 1024 * 1024;
/// Largest value a single record may hold (before compression).
pub const VALUE_SIZE_MAX_BYTES_DEFAULT: usize = 16 * 1024 * 1024;
/// Most sectors a device may have: locations are `u32` in the index, `u32::MAX` is "empty".
pub const DEVICE_SECTOR_COUNT_MAX: u64 = u32::MAX as u64 - 1;
/// Most keys one `read_range` call may touch (ranges are expanded key by key).
pub const READ_RANGE_KEYS_MAX: u64 = 65_536;
/// Most records one `read_follow` call may return.
pub const READ_FOLLOW_RECORDS_MAX: usize = 4096;
/// Most operations in one `cas` (all records plus the commit record must fit in one zone).
pub const CAS_OPS_MAX: usize = 256;
/// Free zones only the compactor may open (SEC-16, `specs/sector.md` §5.5): one for the copies
/// of the zone it is emptying, one more for a crash in the middle of that (recovery seals the
/// half-filled zone, §8 step 6, so its rest is lost until it is compacted in turn).
pub const COMPACTION_RESERVE_ZONES_DEFAULT: u32 = 2;
/// Free zones, above the compactor's, that deletes may open but ordinary writes may not
/// (SEC-16): one zone of packed tombstones holds `(zone sectors - 1) * 51` deletes before a
/// delete has to reclaim space itself.
pub const DELETE_RESERVE_ZONES_DEFAULT: u32 = 1;

const _: () = assert!(ZONE_SIZE_BYTES_DEFAULT.is_multiple_of(SECTOR_SIZE_BYTES));
const _: () = assert!(ZONE_SIZE_BYTES_MIN.is_multiple_of(SECTOR_SIZE_BYTES));
const _: () = assert!(ZONE_SIZE_BYTES_DEFAULT >= ZONE_SIZE_BYTES_MIN);
const _: () = assert!(ZONE_SIZE_BYTES_MAX >= ZONE_SIZE_BYTES_DEFAULT);
const _: () = assert!(SECTOR_SIZE_BYTES.is_power_of_two());

/// [`SECTOR_SIZE_BYTES`] as a `u64`, for byte offsets on the device.
pub(crate) const SECTOR_SIZE_BYTES_U64: u64 = SECTOR_SIZE_BYTES as u64;

/// Engine configuration. Setters are `#[must_use]` builders; geometry is fixed at `format`.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub(crate) zone_size_bytes: usize,
    pub(crate) value_size_max_bytes: usize,
    pub(crate) compaction_dead_percent_min: u8,
    pub(crate) compaction_step_sectors_max: u32,
    pub(crate) compaction_reserve_zones: u32,
    pub(crate) delete_reserve_zones: u32,
    pub(crate) checkpoint_load: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            zone_size_bytes: ZONE_SIZE_BYTES_DEFAULT,
            value_size_max_bytes: VALUE_SIZE_MAX_BYTES_DEFAULT,
            compaction_dead_percent_min: 50,
            compaction_step_sectors_max: 256,
            compaction_reserve_zones: COMPACTION_RESERVE_ZONES_DEFAULT,
            delete_reserve_zones: DELETE_RESERVE_ZONES_DEFAULT,
            checkpoint_load: true,
        }
    }
}

impl EngineConfig {
    /// Zone size used by `format` (ignored by `open`, which reads it from the superblock).
    /// Default 1 MiB. Smaller zones compact in smaller steps but cap the value size (a record
    /// never spans zones).
    ///
    /// # Panics
    /// If `bytes` is not a multiple of 4096 or outside [`ZONE_SIZE_BYTES_MIN`]..=
    /// [`ZONE_SIZE_BYTES_MAX`].
    #[must_use]
    pub fn zone_size_bytes(mut self, bytes: usize) -> Self {
        assert!(
            bytes.is_multiple_of(SECTOR_SIZE_BYTES)
                && (ZONE_SIZE_BYTES_MIN..=ZONE_SIZE_BYTES_MAX).contains(&bytes),
            "zone size"
        );
        self.zone_size_bytes = bytes;
        self
    }

    /// Largest value accepted (before compression). Default 16 MiB; the zone size caps it too.
    #[must_use]
    pub fn value_size_max_bytes(mut self, bytes: usize) -> Self {
        self.value_size_max_bytes = bytes;
        self
    }

    /// Dead share (percent of a zone's records) past which the compactor picks a zone.
    /// Default 50. Lower reclaims space sooner at the cost of more relocation writes.
    ///
    /// # Panics
    /// If `percent` is above 100.
    #[must_use]
    pub fn compaction_dead_percent_min(mut self, percent: u8) -> Self {
        assert!(percent <= 100, "a percentage");
        self.compaction_dead_percent_min = percent;
        self
    }

    /// Most sectors one compaction step reads. Default 256 (1 MiB). Bounds how long a
    /// foreground operation can wait behind a step.
    ///
    /// # Panics
    /// If `sectors` is zero.
    #[must_use]
    pub fn compaction_step_sectors_max(mut self, sectors: u32) -> Self {
        assert!(sectors > 0, "a step must make progress");
        self.compaction_step_sectors_max = sectors;
        self
    }

    /// Free zones only the compactor may open (SEC-16). Default 2 (see
    /// [`COMPACTION_RESERVE_ZONES_DEFAULT`]). More tolerates more crashes in a row while a
    /// full device is being compacted, at the cost of capacity.
    ///
    /// # Panics
    /// If `zones` is zero: the compactor always needs a zone to move live records into.
    #[must_use]
    pub fn compaction_reserve_zones(mut self, zones: u32) -> Self {
        assert!(zones > 0, "SEC-16: the compactor needs a zone of its own");
        self.compaction_reserve_zones = zones;
        self
    }

    /// Free zones, above the compactor's, that deletes and delete-only CASes may open but
    /// ordinary writes may not (SEC-16). Default 1 (see [`DELETE_RESERVE_ZONES_DEFAULT`]). More
    /// lets more deletes through before a delete has to run compaction steps itself.
    ///
    /// # Panics
    /// If `zones` is zero: a delete on a full device would then always wait for compaction.
    #[must_use]
    pub fn delete_reserve_zones(mut self, zones: u32) -> Self {
        assert!(zones > 0, "SEC-16: deletes need room of their own");
        self.delete_reserve_zones = zones;
        self
    }

    /// `open` scans every zone in use even when a clean shutdown left a checkpoint that still
    /// describes the device (SEC-19). Default: the checkpoint is loaded. For tests that compare
    /// the two, and for `cellar sector verify`-style audits that want the scan's report.
    #[must_use]
    pub fn ignore_checkpoint(mut self) -> Self {
        self.checkpoint_load = false;
        self
    }
}
