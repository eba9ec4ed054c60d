//! The deterministic world: one seed → knobs, processes and every scheduling decision; a
//! discrete-event scheduler over simulated microseconds; the fault phase, then the liveness
//! phase, then the final checks.
//!
//! One [`World`] holds the whole run; its behaviour is split by idea, one file each (several
//! `impl World` blocks):
//! - `scheduler.rs`: the event queue and simulated time, the start schedule, the run loop and
//!   the dispatch of each [`Ev`];
//! - `processes.rs`: key/value clients, the engine's compactor (`compact_step`), cell clients
//!   and the cell server (through [`crate::net`]), volume syncers, cleaners and the source
//!   writer (through [`crate::volumes`]);
//! - `faults.rs`: the fault injectors (power cuts with restart and recovery, latent errors,
//!   corruption, partitions) and their counts;
//! - `headers.rs`: the header fault atlas (record headers and packing sectors while running;
//!   a superblock copy or a free header on the medium at a power cut) and what recovery must
//!   report about it;
//! - `gossip.rs`: the gossip nodes (through [`crate::gossip`]: ticks, client commits, message
//!   deliveries, node crashes, link cuts);
//! - `space.rs`: the `full` profile's fill/drain cycle and its SEC-16 checks;
//! - `secure.rs`: in the `gossip` profile, gossip over secure channels with the network
//!   attacker (through [`crate::channels`] and [`crate::attacker`]);
//! - `phases.rs`: what must hold once faults stop (the liveness phase, the durability check,
//!   the final checks).
//!
//! Each event runs to completion (the engine is single-threaded); the device's simulated
//! latency decides when the process's next event happens. Ties are broken by insertion order,
//! so a run is a pure function of its seed and the code.
//!
//! Never spawns threads, reads the clock or draws OS randomness.

mod faults;
mod gossip;
mod headers;
mod phases;
mod processes;
mod proto_judge;
mod scheduler;
mod secure;
mod space;

pub use faults::{DOWNTIME_US_MAX, FaultCounts};
pub use gossip::{GOSSIP_CONFIG, GOSSIP_TICK_US_MAX};
pub use phases::LIVENESS_BOUND_US;
pub use processes::{COMPACT_PERIOD_US_MAX, KV_THINK_US_MAX};
pub use scheduler::Ev;
pub use space::{FillDrain, REFILL_PERCENT_MIN, RULE_WRITES_COME_BACK};

use crate::cells::Cells;
use crate::cells::server::CellServer;
use crate::gossip::Cluster;
use crate::knobs::{Knobs, ZONE_SECTOR_COUNT};
use crate::net::{Net, Streams};
use crate::oracle::{KvModel, Violation};
use crate::rng::SimRng;
use crate::ssd::SimSsd;
use crate::trace::Trace;
use crate::volumes::Volumes;
use cellar::db::merge::MergePolicy;
use cellar::sector::adapters::SharedEngine;
use cellar::sector::{Engine, EngineConfig, SECTOR_SIZE_BYTES};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, MutexGuard};

/// Locks a mutex; the simulator is single-threaded, so poisoning carries no information.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The world of one run.
pub struct World<'a> {
    /// Simulated time, µs.
    pub(crate) now_us: u64,
    seq: u64,
    queue: BTreeMap<(u64, u64), Ev>,
    rng: SimRng,
    knobs: Knobs,
    /// The event trace.
    pub(crate) trace: Trace,
    engine: Option<SharedEngine<SimSsd>>,
    down: Option<SimSsd>,
    engine_cfg: EngineConfig,
    model: KvModel,
    cells: Cells,
    /// The cell server, while the engine is up (built at its first request after a start).
    cell_server: Option<CellServer>,
    /// The cell service's connections.
    streams: Streams,
    net: Net,
    vols: Option<Volumes<'a>>,
    vol_engine: Option<SharedEngine<SimSsd>>,
    /// Simulated operations so far.
    pub(crate) ops: u64,
    /// Faults injected so far.
    pub(crate) faults: FaultCounts,
    uid: u64,
    liveness: bool,
    gossip: Option<Cluster>,
    /// Cut gossip links (from, to).
    gossip_cut: BTreeSet<(u32, u32)>,
    /// The `full` profile's clients are deleting (else filling).
    draining: bool,
    /// The `full` profile's fill/drain counts.
    pub(crate) fill_drain: FillDrain,
    /// Secure channels and the attacker (`gossip` profile only).
    secure: Option<secure::Secure>,
    /// Header damage on the medium that recovery must report.
    medium: headers::MediumDamage,
}

/// The engine configuration every simulated engine uses.
pub fn engine_config(knobs: &Knobs) -> EngineConfig {
    EngineConfig::default()
        .zone_size_bytes(ZONE_SECTOR_COUNT as usize * SECTOR_SIZE_BYTES)
        .compaction_step_sectors_max(knobs.compaction_step_sectors_max)
}

impl<'a> World<'a> {
    /// A world for `knobs` whose engine is formatted on a fresh `SimSsd`.
    pub fn new(
        mut rng: SimRng,
        knobs: Knobs,
        trace: Trace,
        vols: Option<(Volumes<'a>, SharedEngine<SimSsd>)>,
    ) -> Result<World<'a>, Violation> {
        let engine_cfg = engine_config(&knobs);
        let ssd = SimSsd::new(knobs.device_sector_count(), knobs.ssd, rng.fork());
        let engine = Engine::format(ssd, engine_cfg.clone())
            .map_err(|e| Violation::new("format", e.to_string()))?;
        let net = Net {
            drop_ppm: knobs.net_drop_ppm,
            dup_ppm: knobs.net_dup_ppm,
            delay_us_max: knobs.net_delay_us_max,
            partitioned: Default::default(),
            dropped: 0,
            duplicated: 0,
        };
        let (vols, vol_engine) = match vols {
            Some((v, e)) => (Some(v), Some(e)),
            None => (None, None),
        };
        let gossip = (knobs.gossip_nodes > 0).then(|| {
            let policy = if knobs.gossip_keep_both {
                MergePolicy::KeepBoth
            } else {
                MergePolicy::LastWriteWins
            };
            let c = Cluster::new(knobs.gossip_nodes, policy, GOSSIP_CONFIG, rng.next_u64());
            match knobs.gossip_node_target_bytes {
                0 => c,
                bytes => c.with_node_target_size(bytes),
            }
        });
        // Drawn only when channels are on, so other profiles' draws do not move.
        let secure = match &gossip {
            Some(g) if knobs.gossip_channel => {
                Some(secure::Secure::new(g, knobs.attack_every_us > 0, &mut rng)?)
            }
            _ => None,
        };
        let mut w = World {
            now_us: 0,
            seq: 0,
            queue: BTreeMap::new(),
            rng,
            model: KvModel::new(knobs.kv_keys),
            cells: Cells::new(
                knobs.cell_clients,
                knobs.cells,
                knobs.cell_ops_per_client_max,
                knobs.kv_keys,
            ),
            cell_server: None,
            streams: Streams::default(),
            knobs,
            trace,
            engine: Some(cellar::sector::adapters::share(engine)),
            down: None,
            engine_cfg,
            net,
            vols,
            vol_engine,
            ops: 0,
            faults: FaultCounts::default(),
            uid: 16,
            liveness: false,
            gossip,
            gossip_cut: BTreeSet::new(),
            draining: false,
            fill_drain: FillDrain::default(),
            secure,
            medium: headers::MediumDamage::default(),
        };
        w.schedule_start();
        Ok(w)
    }
}
