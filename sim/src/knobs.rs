//! Swarm knobs: every run draws its own workload mix and fault rates from its seed (swarm
//! testing: one run hammers crashes, the next corruption, the next the network), within the
//! bounds of a profile. Overrides (`--no-fault KIND`) switch single fault kinds off for the
//! minimizer and for replays.

use crate::rng::SimRng;
use crate::ssd::SsdConfig;

/// Sectors per zone of the simulated engines: the minimum, so zones fill, seal and compact
/// within a few dozen operations.
pub const ZONE_SECTOR_COUNT: u64 = 8;
/// Zones on the simulated engine's device.
pub const ZONE_COUNT: u64 = 128;
/// Sectors of the simulated device: two superblocks plus the zones.
pub const DEVICE_SECTOR_COUNT: u64 = 2 + ZONE_COUNT * ZONE_SECTOR_COUNT;
/// Fewest and most zones of the `full` profile's device: small enough that a few hundred
/// writes fill it, large enough that the SEC-16 reserve (3 zones) leaves room to work.
pub const FULL_ZONE_COUNT_MIN: u64 = 12;
/// See [`FULL_ZONE_COUNT_MIN`].
pub const FULL_ZONE_COUNT_MAX: u64 = 32;

/// Most marks with a writer in an `fs` run.
pub const FS_MARKS_MAX: u64 = 3;

/// Most gossip nodes in a run.
pub const GOSSIP_NODES_MAX: u64 = 4;

/// A named set of bounds for the swarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Profile {
    /// Everything: key/value clients, cells over the network, volumes, crashes and media faults
    /// within the fault atlas. `cellar verify` runs this one.
    Swarm,
    /// The sector engine only: key/value clients, crashes, media faults.
    Storage,
    /// Cells over a lossy network with engine crashes.
    Network,
    /// Volumes: syncers and cleaners interleaved on a sector-engine volume.
    Volume,
    /// Swarm with misdirected writes in every run, at up to 2 % of sector writes (the swarm
    /// draws them in about half its runs, at up to 0.5 %; `specs/sector.md` SEC-17).
    Hostile,
    /// Gossip nodes only ([`crate::gossip`], wired in `world/gossip.rs`): partitions, loss,
    /// duplication, crashes; every message over a secure channel ([`crate::channels`]) with a
    /// network attacker ([`crate::attacker`]).
    Gossip,
    /// The sector engine driven to full and back, again and again (SEC-16): a small device,
    /// key/value clients that fill it until writes are refused, then delete until it is empty,
    /// with power cuts always on and media faults as drawn.
    Full,
    /// File trees and marks (module `files`): writers, committers, pushers and cleanups on two
    /// sector-engine repositories under crashes and media faults, judged by `FsSpec`.
    Fs,
    /// The file-based layers (module `filesys`): processes sharing one `DirVolume` — the real
    /// `DirStore`, `FileCell`, `SealedCell`, `Seen` file and `FileModeLock` — on a simulated
    /// file system that loses unsynced bytes and directory entries at power cuts (also in the
    /// middle of an operation), fills up, and kills processes.
    Files,
}

/// Fault kinds that can be switched off one by one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub enum FaultKind {
    /// Power cuts of the engine (with lost, torn or reordered unflushed writes).
    Crash,
    /// Latent sector errors.
    Latent,
    /// Flipped payload bytes.
    Corrupt,
    /// Misdirected writes.
    Misdirect,
    /// Lost network messages.
    Drop,
    /// Duplicated network messages.
    Dup,
    /// Network partitions.
    Partition,
    /// The network attacker (`gossip` profile).
    Attack,
    /// Flipped bytes in record headers and packing sectors while running (header atlas).
    Header,
    /// One superblock copy or a free header flipped on the medium at a power cut (header
    /// atlas).
    Medium,
    /// A workload stress, not a fault: the gossip nodes build their trees with small nodes and
    /// write more keys, so trees reach depth 3 and more and edits rewrite interior nodes.
    DeepTrees,
    /// A workload stress, not a fault: gossip clients also write a path and a value of exactly
    /// the largest legal size (KV-15), and one byte past each (a typed refusal, no change).
    Limits,
    /// A scheduling stress, not a fault: a sync's or cleanup's first step (read the cell and
    /// plan) is its own event, so other processes run between its mode hold and its read.
    SplitJobs,
    /// A full file system: a step that needs space fails with `StorageFull` (`files` profile).
    Full,
}

/// Every profile, for listing and parsing.
pub const PROFILES: &[Profile] = &[
    Profile::Swarm,
    Profile::Storage,
    Profile::Network,
    Profile::Volume,
    Profile::Hostile,
    Profile::Gossip,
    Profile::Full,
    Profile::Fs,
    Profile::Files,
];

impl Profile {
    /// The profile's name on the command line (`swarm`, `storage`, …).
    pub fn name(self) -> &'static str {
        match self {
            Profile::Swarm => "swarm",
            Profile::Storage => "storage",
            Profile::Network => "network",
            Profile::Volume => "volume",
            Profile::Hostile => "hostile",
            Profile::Gossip => "gossip",
            Profile::Full => "full",
            Profile::Fs => "fs",
            Profile::Files => "files",
        }
    }
}

impl std::str::FromStr for Profile {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        PROFILES.iter().copied().find(|p| p.name() == s).ok_or_else(|| {
            let names: Vec<&str> = PROFILES.iter().map(|p| p.name()).collect();
            format!("unknown profile {s:?} (known: {})", names.join(", "))
        })
    }
}

impl FaultKind {
    /// The fault kind's name on the command line (`crash`, `latent`, …).
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Crash => "crash",
            FaultKind::Latent => "latent",
            FaultKind::Corrupt => "corrupt",
            FaultKind::Misdirect => "misdirect",
            FaultKind::Drop => "drop",
            FaultKind::Dup => "dup",
            FaultKind::Partition => "partition",
            FaultKind::Attack => "attack",
            FaultKind::Header => "header",
            FaultKind::Medium => "medium",
            FaultKind::DeepTrees => "deep-trees",
            FaultKind::Limits => "limits",
            FaultKind::SplitJobs => "split-jobs",
            FaultKind::Full => "full",
        }
    }
}

impl std::str::FromStr for FaultKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        FAULT_KINDS.iter().copied().find(|f| f.name() == s).ok_or_else(|| {
            let names: Vec<&str> = FAULT_KINDS.iter().map(|f| f.name()).collect();
            format!("unknown fault kind {s:?} (known: {})", names.join(", "))
        })
    }
}

/// Every fault kind, for listing and minimizing.
pub const FAULT_KINDS: &[FaultKind] = &[
    FaultKind::Crash,
    FaultKind::Latent,
    FaultKind::Corrupt,
    FaultKind::Misdirect,
    FaultKind::Drop,
    FaultKind::Dup,
    FaultKind::Partition,
    FaultKind::Attack,
    FaultKind::Header,
    FaultKind::Medium,
    FaultKind::DeepTrees,
    FaultKind::Limits,
    FaultKind::SplitJobs,
    FaultKind::Full,
];

/// The knobs of one run.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Knobs {
    /// Key/value clients driving the engine directly.
    pub kv_clients: u32,
    /// Keys they use (`0..kv_keys`).
    pub kv_keys: u64,
    /// Largest value they write, bytes (values past one sector span sectors).
    pub value_bytes_max: u64,
    /// Chance (ppm) that a write carries the `flush` option.
    pub write_flush_ppm: u32,
    /// Cell clients talking to the cell server over the network.
    pub cell_clients: u32,
    /// Cells on the engine.
    pub cells: u32,
    /// Operations each cell client issues at most (bounds the linearizability search).
    pub cell_ops_per_client_max: u32,
    /// Concurrent syncers on the volume (0: no volume processes).
    pub syncers: u32,
    /// Concurrent cleaners on the volume.
    pub cleaners: u32,
    /// The compactor's step size, sectors.
    pub compaction_step_sectors_max: u32,
    /// Mean simulated time between power cuts, µs (0: none).
    pub crash_every_us: u64,
    /// Chance (ppm) of a power cut right after a key/value operation (when crashes are on):
    /// lands crashes between an operation and the flush that would have made it durable.
    pub crash_after_op_ppm: u32,
    /// Mean simulated time between latent sector errors, µs (0: none).
    pub latent_every_us: u64,
    /// Mean simulated time between payload corruptions, µs (0: none).
    pub corrupt_every_us: u64,
    /// Mean simulated time between header faults while running (a flipped byte in a record
    /// header or a packing sector), µs (0: none; `world/headers.rs`).
    pub header_every_us: u64,
    /// Chance (ppm) that a power cut also flips a byte of one superblock copy or of a free
    /// header on the medium (`world/headers.rs`).
    pub medium_ppm: u32,
    /// Whether half as often the device first settles and a key's record flips on the medium
    /// (SEC-18, `world/headers.rs`). Not in `full`: that damage pins zones until the key is
    /// rewritten (SEC-6), which its capacity check does not model.
    pub medium_at_rest: bool,
    /// Chance (ppm) that a power cut is preceded by a clean shutdown: the engine writes its
    /// checkpoint (SEC-19), which the restart loads instead of scanning unless something
    /// changed the device since (`world/faults.rs`).
    pub clean_shutdown_ppm: u32,
    /// Chance (ppm) that a network message is lost.
    pub net_drop_ppm: u32,
    /// Chance (ppm) that a network message is delivered twice.
    pub net_dup_ppm: u32,
    /// Largest one-way network delay, µs (random delays reorder messages).
    pub net_delay_us_max: u64,
    /// Mean simulated time between partitions, µs (0: none).
    pub partition_every_us: u64,
    /// Gossip nodes (0: no gossip cluster).
    pub gossip_nodes: u32,
    /// The gossip cluster merges with KeepBoth (else LastWriteWins).
    pub gossip_keep_both: bool,
    /// Keys the gossip clients write (`/k/0..gossip_keys`).
    pub gossip_keys: u64,
    /// Mean simulated time between a gossip node's client writes, µs.
    pub gossip_write_every_us: u64,
    /// Expected tree node size of the gossip nodes' KV, bytes (0: the default,
    /// `NODE_TARGET_SIZE_BYTES`; small with the `deep-trees` stress).
    pub gossip_node_target_bytes: u64,
    /// Keys the gossip clients write beyond `gossip_keys` (the `deep-trees` stress).
    pub gossip_deep_keys: u64,
    /// Chance (ppm) that a gossip client write is at or one past a size limit (the `limits`
    /// stress).
    pub gossip_limit_ppm: u32,
    /// Volume jobs' first steps are their own events (the `split-jobs` stress).
    pub vol_split_jobs: bool,
    /// Chance (ppm) that a key/value client's write is of exactly the engine's largest value
    /// or one byte past it (the `limits` stress).
    pub kv_limit_ppm: u32,
    /// Gossip messages travel over secure channels (`gossip` profile only; elsewhere the
    /// gossip nodes exchange plain messages, so those profiles' runs are unchanged).
    pub gossip_channel: bool,
    /// Mean simulated time between the network attacker's actions, µs (0: no attacker).
    pub attack_every_us: u64,
    /// Marks with a writer in the `fs` profile (0 elsewhere).
    pub fs_marks: u32,
    /// Processes sharing the volume in the `files` profile (0 elsewhere).
    pub files_procs: u32,
    /// Chance (ppm) that a file-system step needing space fails with `StorageFull` (the
    /// `full` fault; `files` profile).
    pub files_full_ppm: u32,
    /// The simulated SSD.
    pub ssd: SsdConfig,
    /// Zones of the engine's device ([`ZONE_COUNT`] except in the `full` profile).
    pub zone_count: u64,
    /// The key/value clients alternate between filling the device (until writes are refused)
    /// and draining it (deletes until no key is left): the `full` profile.
    pub fill_drain: bool,
}

/// Draws `0` with probability `off_ppm`, else a value in `lo..=hi`.
fn maybe(rng: &mut SimRng, off_ppm: u32, lo: u64, hi: u64) -> u64 {
    if rng.chance_ppm(off_ppm) { 0 } else { rng.range(lo, hi) }
}

impl Knobs {
    /// Draws the knobs of a run of `profile` from `rng`, then applies `off`.
    pub fn draw(rng: &mut SimRng, profile: Profile, off: &[FaultKind]) -> Knobs {
        let (kv, cells, vols, gossip) = match profile {
            Profile::Swarm | Profile::Hostile => (true, true, true, true),
            Profile::Storage => (true, false, false, false),
            Profile::Network => (false, true, false, false),
            Profile::Volume => (false, false, true, false),
            Profile::Gossip => (false, false, false, true),
            Profile::Full => (true, false, false, false),
            Profile::Fs | Profile::Files => (false, false, false, false),
        };
        let mut k = Knobs {
            kv_clients: if kv { rng.range(1, 3) as u32 } else { 0 },
            kv_keys: rng.range(4, 40),
            value_bytes_max: [64, 600, 2000, 9000][rng.below(4) as usize],
            write_flush_ppm: rng.range(0, 300_000) as u32,
            cell_clients: if cells { rng.range(2, 4) as u32 } else { 0 },
            cells: rng.range(1, 2) as u32,
            cell_ops_per_client_max: rng.range(8, 20) as u32,
            syncers: if vols { rng.range(1, 2) as u32 } else { 0 },
            cleaners: if vols { rng.range(1, 2) as u32 } else { 0 },
            compaction_step_sectors_max: rng.range(1, 8) as u32,
            crash_every_us: maybe(rng, 150_000, 5_000, 100_000),
            crash_after_op_ppm: rng.range(0, 30_000) as u32,
            latent_every_us: maybe(rng, 400_000, 20_000, 300_000),
            corrupt_every_us: maybe(rng, 300_000, 10_000, 200_000),
            header_every_us: 0,
            medium_ppm: 0,
            medium_at_rest: false,
            clean_shutdown_ppm: 0,
            net_drop_ppm: maybe(rng, 300_000, 10_000, 300_000) as u32,
            net_dup_ppm: maybe(rng, 400_000, 10_000, 200_000) as u32,
            net_delay_us_max: rng.range(10, 3_000),
            partition_every_us: maybe(rng, 500_000, 50_000, 500_000),
            ssd: SsdConfig {
                read_latency_us_max: rng.range(5, 200),
                write_latency_us_max: rng.range(5, 300),
                flush_latency_us_max: rng.range(20, 3_000),
                misdirect_ppm: 0,
                trim_stale_ppm: rng.range(0, 1_000_000) as u32,
                zone_sector_count: ZONE_SECTOR_COUNT,
                zone_base_sector: 2,
            },
            gossip_nodes: 0,
            gossip_keep_both: false,
            gossip_keys: 0,
            gossip_write_every_us: 0,
            gossip_node_target_bytes: 0,
            gossip_deep_keys: 0,
            gossip_limit_ppm: 0,
            kv_limit_ppm: 0,
            vol_split_jobs: false,
            zone_count: ZONE_COUNT,
            fill_drain: false,
            gossip_channel: false,
            attack_every_us: 0,
            fs_marks: 0,
            files_procs: 0,
            files_full_ppm: 0,
        };
        if gossip {
            k.gossip_nodes = rng.range(2, GOSSIP_NODES_MAX) as u32;
            k.gossip_keep_both = rng.coin();
            k.gossip_keys = rng.range(1, 6);
            k.gossip_write_every_us = rng.range(500, 5_000);
        }
        if profile == Profile::Hostile {
            k.ssd.misdirect_ppm = rng.range(100, 20_000) as u32;
        }
        if profile == Profile::Full {
            k.draw_full(rng);
        }
        if profile == Profile::Gossip {
            // Drawn last, so no other profile's draws move.
            k.gossip_channel = true;
            k.attack_every_us = maybe(rng, 200_000, 100, 3_000);
        }
        if profile == Profile::Fs {
            // Drawn last, so no other profile's draws move.
            k.fs_marks = rng.range(1, FS_MARKS_MAX) as u32;
        }
        if profile == Profile::Swarm {
            // Drawn last, so no other profile's draws move. SEC-17: misdirected writes are in
            // the fault atlas the swarm (and so `cellar verify`) exercises.
            k.ssd.misdirect_ppm = maybe(rng, 500_000, 100, 5_000) as u32;
        }
        match profile {
            // Drawn last, so no other draw moves: the header fault atlas (issue 15).
            Profile::Storage | Profile::Hostile | Profile::Full => {
                k.header_every_us = maybe(rng, 200_000, 10_000, 200_000);
                k.medium_ppm = maybe(rng, 200_000, 50_000, 500_000) as u32;
                k.medium_at_rest = profile != Profile::Full;
            }
            Profile::Swarm => {
                k.header_every_us = maybe(rng, 500_000, 20_000, 300_000);
                k.medium_ppm = maybe(rng, 500_000, 50_000, 300_000) as u32;
                k.medium_at_rest = true;
            }
            _ => {}
        }
        if gossip && matches!(profile, Profile::Gossip | Profile::Swarm) {
            // Drawn last, so no other draw moves:
            // the workload stresses of issue 15 (trees of depth ≥ 3, size limits).
            k.draw_gossip_stresses(rng, profile);
        }
        if kv && matches!(profile, Profile::Storage | Profile::Swarm) {
            // Drawn last, so no other draw moves: the key/value clients' `limits` stress.
            let on_ppm = if profile == Profile::Storage { 500_000 } else { 250_000 };
            if rng.chance_ppm(on_ppm) {
                k.kv_limit_ppm_draw(rng);
            }
        }
        if vols && matches!(profile, Profile::Swarm | Profile::Volume) {
            // Drawn last, so no other draw moves: the `split-jobs` stress.
            k.vol_split_jobs = rng.coin();
        }
        if profile == Profile::Files {
            // Drawn last, so no other profile's draws move.
            k.files_procs = rng.range(2, 4) as u32;
            k.files_full_ppm = maybe(rng, 300_000, 1_000, 30_000) as u32;
        }
        if matches!(profile, Profile::Storage | Profile::Hostile | Profile::Swarm | Profile::Full) {
            // Drawn last, so no other draw moves: clean shutdowns and the checkpoint (SEC-19).
            k.clean_shutdown_ppm = maybe(rng, 300_000, 50_000, 400_000) as u32;
        }
        if !kv && !cells && !gossip && !matches!(profile, Profile::Fs | Profile::Files) {
            // Volume-only runs still crash nothing: the volume's engine is fault-free.
            k.crash_every_us = 0;
            k.latent_every_us = 0;
            k.corrupt_every_us = 0;
            k.header_every_us = 0;
            k.medium_ppm = 0;
        }
        for f in off {
            k.switch_off(*f);
        }
        k
    }

    /// The gossip workload stresses: in the `gossip` profile three runs in four build deep
    /// trees and half the runs write at the size limits; in the swarm, a quarter each. A node
    /// target of 96–320 bytes holds two to five entries (a key state is about 60 bytes, a child
    /// entry about 80), so 40–120 keys make trees of depth 3 to 6.
    fn draw_gossip_stresses(&mut self, rng: &mut SimRng, profile: Profile) {
        let (deep_ppm, limits_ppm) =
            if profile == Profile::Gossip { (750_000, 500_000) } else { (250_000, 250_000) };
        if rng.chance_ppm(deep_ppm) {
            self.gossip_node_target_bytes = rng.range(96, 320);
            self.gossip_deep_keys = rng.range(40, 120);
        }
        if rng.chance_ppm(limits_ppm) {
            self.gossip_limit_ppm = rng.range(30_000, 150_000) as u32;
        }
    }

    /// How often the key/value clients write at the value limit: 2–8 % of writes, each of a
    /// whole zone, so compaction has to move them too.
    fn kv_limit_ppm_draw(&mut self, rng: &mut SimRng) {
        self.kv_limit_ppm = rng.range(20_000, 80_000) as u32;
    }

    /// The `full` profile's own draws (after every other draw, so the other profiles' seeds
    /// are unchanged): a small device, enough keys to fill it several times over with values
    /// of up to a few sectors, and power cuts always on.
    fn draw_full(&mut self, rng: &mut SimRng) {
        self.fill_drain = true;
        self.zone_count = rng.range(FULL_ZONE_COUNT_MIN, FULL_ZONE_COUNT_MAX);
        let data_sectors = self.zone_count * (ZONE_SECTOR_COUNT - 1);
        self.kv_keys = rng.range(data_sectors, 3 * data_sectors);
        self.value_bytes_max = [2_000, 4_000, 9_000][rng.below(3) as usize];
        if self.crash_every_us == 0 {
            self.crash_every_us = rng.range(5_000, 100_000);
        }
    }

    /// Sectors of the engine's device: two superblocks plus [`Knobs::zone_count`] zones.
    pub fn device_sector_count(&self) -> u64 {
        2 + self.zone_count * ZONE_SECTOR_COUNT
    }

    /// Switches one fault kind off.
    pub fn switch_off(&mut self, f: FaultKind) {
        match f {
            FaultKind::Crash => self.crash_every_us = 0,
            FaultKind::Latent => self.latent_every_us = 0,
            FaultKind::Corrupt => self.corrupt_every_us = 0,
            FaultKind::Misdirect => self.ssd.misdirect_ppm = 0,
            FaultKind::Drop => self.net_drop_ppm = 0,
            FaultKind::Dup => self.net_dup_ppm = 0,
            FaultKind::Partition => self.partition_every_us = 0,
            FaultKind::Attack => self.attack_every_us = 0,
            FaultKind::Header => self.header_every_us = 0,
            FaultKind::Medium => self.medium_ppm = 0,
            FaultKind::DeepTrees => {
                self.gossip_node_target_bytes = 0;
                self.gossip_deep_keys = 0;
            }
            FaultKind::Limits => {
                self.gossip_limit_ppm = 0;
                self.kv_limit_ppm = 0;
            }
            FaultKind::SplitJobs => self.vol_split_jobs = false,
            FaultKind::Full => self.files_full_ppm = 0,
        }
    }

    /// Does anything in this run talk over the simulated network?
    pub fn networked(&self) -> bool {
        self.cell_clients > 0 || self.gossip_nodes > 0
    }

    /// Is this fault kind on in this run?
    pub fn is_on(&self, f: FaultKind) -> bool {
        match f {
            FaultKind::Crash => self.crash_every_us > 0,
            FaultKind::Latent => self.latent_every_us > 0,
            FaultKind::Corrupt => self.corrupt_every_us > 0,
            FaultKind::Misdirect => self.ssd.misdirect_ppm > 0,
            FaultKind::Drop => self.net_drop_ppm > 0 && self.networked(),
            FaultKind::Dup => self.net_dup_ppm > 0 && self.networked(),
            FaultKind::Partition => self.partition_every_us > 0 && self.networked(),
            FaultKind::Attack => self.attack_every_us > 0 && self.gossip_channel,
            FaultKind::Header => self.header_every_us > 0 && self.kv_clients > 0,
            FaultKind::Medium => self.medium_ppm > 0 && self.crash_every_us > 0,
            FaultKind::DeepTrees => self.gossip_node_target_bytes > 0 && self.gossip_nodes > 0,
            FaultKind::Limits => {
                (self.gossip_limit_ppm > 0 && self.gossip_nodes > 0)
                    || (self.kv_limit_ppm > 0 && self.kv_clients > 0)
            }
            FaultKind::SplitJobs => self.vol_split_jobs && self.syncers > 0,
            FaultKind::Full => self.files_full_ppm > 0 && self.files_procs > 0,
        }
    }
}
