//! The deterministic world: one seed → knobs, processes and every scheduling decision; a
//! discrete-event scheduler over simulated microseconds; the fault phase, then the liveness
//! phase, then the final checks.
//!
//! Processes (each a stream of events on the queue): key/value clients, the engine's compactor
//! (`compact_step`), cell clients and the cell server (through [`super::net`]), volume syncers,
//! cleaners and the source writer (through [`super::volumes`]), gossip nodes (through
//! [`super::gossip`]: ticks, client commits, message deliveries, node crashes, link cuts), and
//! the fault injectors (power cuts with restart and recovery, latent errors, corruption,
//! partitions). Each event runs to completion (the engine is single-threaded); the device's
//! simulated latency decides when the process's next event happens. Ties are broken by insertion order, so a run is a pure
//! function of its seed and the code.
//!
//! Never spawns threads, reads the clock or draws OS randomness.

use super::gossip::{Broken, Cluster, Packet};
use super::knobs::{DEVICE_SECTOR_COUNT, Knobs, ZONE_SECTOR_COUNT};
use super::net::{
    Action, CLIENT_RETRY_TIMEOUT_US, CLIENT_THINK_US_MAX, Cells, Msg, Net, Payload, Reply,
};
use super::oracle::{KvModel, Violation};
use super::rng::SimRng;
use super::ssd::{CrashMode, SimSsd};
use super::trace::Trace;
use super::volumes::Volumes;
use super::workload::KvCtx;
use cellar::db::gossip::GossipConfig;
use cellar::db::merge::MergePolicy;
use cellar::sector::adapters::SharedEngine;
use cellar::sector::{
    CompactProgress, Engine, EngineConfig, Key, Record, SECTOR_SIZE_BYTES, SectorCell, SectorError,
};
use cellar::storage::cell::Cell;
use cellar_model::spec::{CasOp, CasRet};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

/// After the fault phase, every pending operation must finish within this much simulated time.
pub const LIVENESS_BOUND_US: u64 = 10_000_000;
/// Think time of a key/value client between operations, at most, µs.
pub const KV_THINK_US_MAX: u64 = 400;
/// Time between compactor steps, at most, µs.
pub const COMPACT_PERIOD_US_MAX: u64 = 300;
/// How long a crashed engine stays down, at most, µs.
pub const DOWNTIME_US_MAX: u64 = 30_000;
/// Time between a gossip node's ticks, at most, µs.
pub const GOSSIP_TICK_US_MAX: u64 = 5_000;
/// The gossip nodes' configuration: simulated runs last a fraction of a simulated second, so
/// announces and fetch timeouts are scaled down from the defaults (500 ms, 10 s).
pub const GOSSIP_CONFIG: GossipConfig =
    GossipConfig { announce_interval_ms: 5, fanout: 2, fetch_timeout_ms: 50 };

/// Locks a mutex; the simulator is single-threaded, so poisoning carries no information.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The events on the queue.
#[derive(Debug, Clone)]
pub enum Ev {
    /// Key/value client `i` issues an operation.
    Kv(u32),
    /// The compactor runs one step.
    Compact,
    /// Cell client `i` issues an operation.
    CellIssue(u32),
    /// Cell client's retry timer for a request.
    CellTimer(u32, u64),
    /// A message reaches the server.
    ToServer(Msg),
    /// A message reaches its client.
    ToClient(Msg),
    /// Volume process `p` steps.
    Vol(u32),
    /// Power cut.
    Crash,
    /// The engine restarts and recovers.
    Restart,
    /// Inject a latent sector error.
    Latent,
    /// Inject a payload corruption.
    Corrupt,
    /// Partition some clients.
    Partition,
    /// Heal the partition.
    Heal,
    /// Gossip node `i` ticks.
    GossipTick(u32),
    /// A client of gossip node `i` writes and commits.
    GossipWrite(u32),
    /// A gossip message arrives.
    GossipMsg(Packet),
    /// A gossip node crashes and restarts from its disk.
    GossipCrash,
    /// Cut some gossip links.
    GossipPartition,
    /// Heal the gossip links.
    GossipHeal,
}

/// Faults injected in one run, by kind.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct FaultCounts {
    /// Power cuts.
    pub crashes: u64,
    /// Unflushed sectors lost at power cuts.
    pub lost_sectors: u64,
    /// Unflushed sectors that landed (possibly out of order or torn) at power cuts.
    pub landed_sectors: u64,
    /// Latent sector errors injected.
    pub latent: u64,
    /// Payload corruptions injected.
    pub corrupt: u64,
    /// Misdirected sector writes.
    pub misdirected: u64,
    /// Network messages lost.
    pub net_dropped: u64,
    /// Network messages duplicated.
    pub net_duplicated: u64,
    /// Partitions.
    pub partitions: u64,
    /// Gossip node crashes (restarted from their store and persisted head).
    pub gossip_crashes: u64,
    /// Gossip messages rejected by their receiver (e.g. objects of a dropped fetch).
    pub gossip_rejected: u64,
    /// Acknowledged gossip client commits.
    pub gossip_writes: u64,
    /// Gossip messages delivered.
    pub gossip_delivered: u64,
}

impl FaultCounts {
    /// Adds another run's counts.
    pub fn add(&mut self, o: &FaultCounts) {
        self.crashes += o.crashes;
        self.lost_sectors += o.lost_sectors;
        self.landed_sectors += o.landed_sectors;
        self.latent += o.latent;
        self.corrupt += o.corrupt;
        self.misdirected += o.misdirected;
        self.net_dropped += o.net_dropped;
        self.net_duplicated += o.net_duplicated;
        self.partitions += o.partitions;
        self.gossip_crashes += o.gossip_crashes;
        self.gossip_rejected += o.gossip_rejected;
        self.gossip_writes += o.gossip_writes;
        self.gossip_delivered += o.gossip_delivered;
    }
}

/// The world of one run.
pub struct World<'a> {
    pub(super) now_us: u64,
    seq: u64,
    queue: BTreeMap<(u64, u64), Ev>,
    pub(super) rng: SimRng,
    pub(super) knobs: Knobs,
    pub(super) trace: Trace,
    pub(super) engine: Option<SharedEngine<SimSsd>>,
    down: Option<SimSsd>,
    engine_cfg: EngineConfig,
    pub(super) model: KvModel,
    cells: Cells,
    net: Net,
    vols: Option<Volumes<'a>>,
    vol_engine: Option<SharedEngine<SimSsd>>,
    pub(super) ops: u64,
    pub(super) faults: FaultCounts,
    uid: u64,
    liveness: bool,
    gossip: Option<Cluster>,
    /// Cut gossip links (from, to).
    gossip_cut: BTreeSet<(u32, u32)>,
}

/// Reads every key of the workload (after a recovery).
fn read_all(
    engine: &mut Engine<SimSsd>,
    keys: u64,
) -> BTreeMap<Key, Result<Option<Record>, SectorError>> {
    (0..keys).map(|k| (k, engine.read(k))).collect()
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
        let ssd = SimSsd::new(DEVICE_SECTOR_COUNT, knobs.ssd, rng.fork());
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
            Cluster::new(knobs.gossip_nodes, policy, GOSSIP_CONFIG, rng.next_u64())
        });
        let mut w = World {
            now_us: 0,
            seq: 0,
            queue: BTreeMap::new(),
            rng,
            model: KvModel::new(knobs.kv_keys),
            cells: Cells::new(knobs.cell_clients, knobs.cells, knobs.cell_ops_per_client_max),
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
        };
        w.schedule_start();
        Ok(w)
    }

    pub(super) fn at(&mut self, delay_us: u64, ev: Ev) {
        self.seq += 1;
        self.queue.insert((self.now_us + delay_us, self.seq), ev);
    }

    fn every(&mut self, mean_us: u64) -> u64 {
        1 + self.rng.below(2 * mean_us.max(1))
    }

    fn schedule_start(&mut self) {
        for i in 0..self.knobs.kv_clients {
            let d = self.rng.below(1_000);
            self.at(d, Ev::Kv(i));
        }
        if self.knobs.kv_clients > 0 || self.knobs.cell_clients > 0 {
            self.at(COMPACT_PERIOD_US_MAX, Ev::Compact);
        }
        for i in 0..self.knobs.cell_clients {
            let d = self.rng.below(1_000);
            self.at(d, Ev::CellIssue(i));
        }
        let procs = self.vols.as_ref().map_or(0, Volumes::processes);
        for p in 0..procs {
            let d = self.rng.below(1_000);
            self.at(d, Ev::Vol(p));
        }
        let k = self.knobs.clone();
        for i in 0..k.gossip_nodes {
            let d = self.rng.below(GOSSIP_TICK_US_MAX);
            self.at(d, Ev::GossipTick(i));
            let d = self.every(k.gossip_write_every_us);
            self.at(d, Ev::GossipWrite(i));
        }
        if k.gossip_nodes > 0 {
            for (mean, ev) in
                [(k.crash_every_us, Ev::GossipCrash), (k.partition_every_us, Ev::GossipPartition)]
            {
                if mean > 0 {
                    let d = self.every(mean);
                    self.at(d, ev);
                }
            }
        }
        for (mean, ev) in [
            (k.crash_every_us, Ev::Crash),
            (k.latent_every_us, Ev::Latent),
            (k.corrupt_every_us, Ev::Corrupt),
            (if k.cell_clients > 0 { k.partition_every_us } else { 0 }, Ev::Partition),
        ] {
            if mean > 0 && (k.kv_clients > 0 || k.cell_clients > 0) {
                let d = self.every(mean);
                self.at(d, ev);
            }
        }
    }

    /// Runs the fault phase for `ticks` events, then the liveness phase and the final checks.
    pub fn run(&mut self, ticks: u64) -> Result<(), Violation> {
        for _ in 0..ticks {
            let Some(((t, _), ev)) = self.queue.pop_first() else { break };
            self.now_us = t;
            self.handle(ev)?;
        }
        self.begin_liveness()?;
        let deadline = self.now_us + LIVENESS_BOUND_US;
        while !self.settled() {
            let Some(((t, _), ev)) = self.queue.pop_first() else {
                return Err(self.liveness_failure("nothing left to run"));
            };
            if t > deadline {
                return Err(self.liveness_failure("bound exceeded"));
            }
            self.now_us = t;
            self.handle(ev)?;
        }
        self.final_checks()
    }

    fn settled(&mut self) -> bool {
        self.cells.pending() == 0
            && self.vols.as_ref().is_none_or(|v| v.running() == 0)
            // An unreadable root is reported by the final checks.
            && self.gossip.as_mut().is_none_or(|g| g.converged().unwrap_or(true))
    }

    fn liveness_failure(&self, why: &str) -> Violation {
        Violation::new(
            "liveness: every pending operation completes once faults stop",
            format!(
                "{why} ({LIVENESS_BOUND_US} µs): {} cell ops and {} volume jobs pending{}",
                self.cells.pending(),
                self.vols.as_ref().map_or(0, Volumes::running),
                if self.gossip.is_some() { ", or gossip nodes not converged (GOS-5)" } else { "" }
            ),
        )
    }

    fn begin_liveness(&mut self) -> Result<(), Violation> {
        self.liveness = true;
        self.trace.event(self.now_us, format_args!("--- liveness phase: faults stop ---"));
        self.net.drop_ppm = 0;
        self.net.dup_ppm = 0;
        self.net.partitioned.clear();
        self.gossip_cut.clear();
        if self.down.is_some() {
            self.restart()?;
        }
        if let Some(e) = &self.engine {
            lock(e).device_mut().heal();
        }
        self.durability_check()
    }

    /// Flush, power cut, recover: everything acknowledged must come back (SEC-2, SEC-7).
    fn durability_check(&mut self) -> Result<(), Violation> {
        if self.knobs.kv_clients == 0 && self.knobs.cell_clients == 0 {
            return Ok(());
        }
        if let Some(e) = self.engine.clone() {
            lock(&e).flush().map_err(|e| Violation::new("flush", e.to_string()))?;
            self.model.on_flush();
        }
        let (liveness, saved) = (self.liveness, self.knobs.crash_every_us);
        self.liveness = false;
        self.knobs.crash_every_us = 0;
        let r = self.crash().and_then(|()| self.restart());
        self.knobs.crash_every_us = saved;
        self.liveness = liveness;
        r
    }

    fn handle(&mut self, ev: Ev) -> Result<(), Violation> {
        match ev {
            Ev::Kv(i) => self.kv(i),
            Ev::Compact => self.compact(),
            Ev::CellIssue(i) => {
                if !self.liveness {
                    let uid = self.next_uid();
                    let acts = self.cells.issue(i, &mut self.rng, uid, self.now_us);
                    if !acts.is_empty() {
                        self.trace.event(self.now_us, format_args!("cell client {i} issues"));
                    }
                    self.act(acts);
                }
                Ok(())
            }
            Ev::CellTimer(i, req) => {
                let acts = self.cells.timeout(i, req);
                if !acts.is_empty() {
                    self.trace
                        .event(self.now_us, format_args!("cell client {i} retries req {req}"));
                }
                self.act(acts);
                Ok(())
            }
            Ev::ToServer(msg) => self.serve(msg),
            Ev::ToClient(msg) => {
                if let Payload::Reply(r) = msg.payload {
                    self.trace.event(
                        self.now_us,
                        format_args!("cell client {} reply req {}: {r:?}", msg.client, msg.req),
                    );
                    let acts = self.cells.on_reply(msg.client, msg.req, r, self.now_us);
                    self.act(acts);
                }
                Ok(())
            }
            Ev::Vol(p) => self.vol(p),
            Ev::Crash => self.crash(),
            Ev::Restart => self.restart(),
            Ev::Latent => self.inject_latent(),
            Ev::Corrupt => self.inject_corrupt(),
            Ev::Partition => self.partition(),
            Ev::Heal => {
                self.net.partitioned.clear();
                self.trace.event(self.now_us, format_args!("partition healed"));
                Ok(())
            }
            Ev::GossipTick(i) => self.gossip_tick(i),
            Ev::GossipWrite(i) => self.gossip_write(i),
            Ev::GossipMsg(p) => self.gossip_deliver(p),
            Ev::GossipCrash => self.gossip_crash(),
            Ev::GossipPartition => self.gossip_partition(),
            Ev::GossipHeal => {
                self.gossip_cut.clear();
                self.trace.event(self.now_us, format_args!("gossip links healed"));
                Ok(())
            }
        }
    }

    pub(super) fn next_uid(&mut self) -> u64 {
        self.uid += 16;
        self.uid
    }

    fn act(&mut self, acts: Vec<Action>) {
        for a in acts {
            match a {
                Action::Send { msg, to_server } => {
                    for d in self.net.send(&mut self.rng, msg.client) {
                        let ev = if to_server {
                            Ev::ToServer(msg.clone())
                        } else {
                            Ev::ToClient(msg.clone())
                        };
                        self.at(d, ev);
                    }
                }
                Action::Timer { client, req } => {
                    self.at(CLIENT_RETRY_TIMEOUT_US, Ev::CellTimer(client, req))
                }
                Action::Think { client } => {
                    let d = self.rng.below(CLIENT_THINK_US_MAX);
                    self.at(d, Ev::CellIssue(client));
                }
            }
        }
    }

    fn kv(&mut self, i: u32) -> Result<(), Violation> {
        if self.liveness {
            return Ok(());
        }
        let Some(engine) = self.engine.clone() else {
            self.at(1_000, Ev::Kv(i));
            return Ok(());
        };
        let uid = self.next_uid();
        let mut e = lock(&engine);
        let ctx = KvCtx {
            engine: &mut e,
            model: &mut self.model,
            rng: &mut self.rng,
            keys: self.knobs.kv_keys,
            value_bytes_max: self.knobs.value_bytes_max,
            flush_ppm: self.knobs.write_flush_ppm,
            uid,
        };
        let line = ctx.run();
        let dt = e.device_mut().take_elapsed_us();
        drop(e);
        drop(engine); // a power cut below needs the only reference
        self.ops += 1;
        match &line {
            Ok(l) => self.trace.event(self.now_us, format_args!("kv{i} {l}")),
            Err(v) => self.trace.event(self.now_us, format_args!("kv{i} VIOLATION {v}")),
        }
        line?;
        let d = dt + self.rng.below(KV_THINK_US_MAX);
        self.at(d, Ev::Kv(i));
        if self.knobs.crash_every_us > 0 && self.rng.chance_ppm(self.knobs.crash_after_op_ppm) {
            self.crash()?;
        }
        Ok(())
    }

    fn compact(&mut self) -> Result<(), Violation> {
        let period = 1 + self.rng.below(COMPACT_PERIOD_US_MAX);
        let Some(engine) = self.engine.clone() else {
            self.at(period, Ev::Compact);
            return Ok(());
        };
        let mut e = lock(&engine);
        let before = e.device_mut().fault_hits();
        let r = e.compact_step();
        let hit = e.device_mut().fault_hits() > before;
        let dt = e.device_mut().take_elapsed_us();
        drop(e);
        self.ops += 1;
        self.trace.event(self.now_us, format_args!("compact {r:?}"));
        match r {
            Ok(CompactProgress::Abandoned { key, .. }) => {
                if !hit && !self.model.is_damaged(key) {
                    return Err(Violation::new(
                        "SEC-6 corruption only where injected",
                        format!("compactor abandoned key {key}"),
                    ));
                }
                self.model.damage(key);
            }
            Ok(_) | Err(SectorError::DeviceFull) => {}
            Err(SectorError::Device(_)) if hit => {}
            Err(e) => {
                return Err(Violation::new("compaction fails only for faults", e.to_string()));
            }
        }
        if !self.liveness || !self.settled() {
            self.at(dt + period, Ev::Compact);
        }
        Ok(())
    }

    fn serve(&mut self, msg: Msg) -> Result<(), Violation> {
        let Payload::Request { cell, op } = msg.payload else { return Ok(()) };
        let Some(engine) = self.engine.clone() else {
            self.trace.event(
                self.now_us,
                format_args!("server down: req {} of client {} lost", msg.req, msg.client),
            );
            return Ok(());
        };
        let reply: Reply = match self.cells.cached(msg.client, msg.req) {
            Some(r) => r,
            None => {
                let c = SectorCell::new(engine.clone(), u64::from(cell));
                let r = match &op {
                    CasOp::Read => c.read().map(CasRet::Read),
                    CasOp::Cas { expected, new } => c
                        .cas(expected, new)
                        .map(|o| CasRet::Cas { swapped: o.swapped, current: o.current }),
                };
                let r = r.map_err(|e| e.to_string());
                self.cells.served(msg.client, msg.req, &r);
                self.ops += 1;
                r
            }
        };
        let dt = lock(&engine).device_mut().take_elapsed_us();
        self.trace.event(
            self.now_us,
            format_args!(
                "server cell {cell} client {} req {} {op:?} -> {reply:?}",
                msg.client, msg.req
            ),
        );
        let out = Msg { client: msg.client, req: msg.req, payload: Payload::Reply(reply) };
        for d in self.net.send(&mut self.rng, msg.client) {
            self.at(dt + d, Ev::ToClient(out.clone()));
        }
        Ok(())
    }

    fn vol(&mut self, p: u32) -> Result<(), Violation> {
        let finish = self.liveness;
        let Some(v) = self.vols.as_mut() else { return Ok(()) };
        let r = v.step(p, &mut self.rng, finish);
        let running = v.running();
        self.ops += 1;
        let dt = self.vol_engine_step()?;
        match &r {
            Ok(l) => self.trace.event(self.now_us, format_args!("vol{p} {l}")),
            Err(v) => self.trace.event(self.now_us, format_args!("vol{p} VIOLATION {v}")),
        }
        r?;
        if !finish || running > 0 {
            let d = dt + 1 + self.rng.below(500);
            self.at(d, Ev::Vol(p));
        }
        Ok(())
    }

    /// The volume engine's compactor runs between volume steps; returns the I/O time spent.
    fn vol_engine_step(&mut self) -> Result<u64, Violation> {
        let Some(engine) = self.vol_engine.clone() else { return Ok(0) };
        let mut e = lock(&engine);
        {
            match e.compact_step() {
                Ok(CompactProgress::Idle) => {}
                Ok(p) => self.trace.event(self.now_us, format_args!("vol compact {p:?}")),
                Err(SectorError::DeviceFull) => {
                    let st = e.stat();
                    self.trace.event(self.now_us, format_args!("vol compact: device full {st:?}"));
                }
                Err(err) => {
                    return Err(Violation::new("volume engine compaction", err.to_string()));
                }
            }
            self.ops += 1;
        }
        Ok(e.device_mut().take_elapsed_us())
    }

    fn crash(&mut self) -> Result<(), Violation> {
        if self.liveness {
            return Ok(());
        }
        let Some(shared) = self.engine.take() else { return Ok(()) };
        let engine = match Arc::try_unwrap(shared) {
            Ok(m) => m.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner),
            Err(_) => {
                return Err(Violation::new("simulator", "engine still shared at a crash".into()));
            }
        };
        let mut ssd = engine.into_device();
        let mode = match self.rng.below(3) {
            0 => CrashMode::DropAll,
            1 => CrashMode::Prefix,
            _ => CrashMode::Subset,
        };
        let pending = ssd.pending_sectors();
        let (landed, lost) = ssd.crash(mode);
        self.faults.crashes += 1;
        self.faults.landed_sectors += landed;
        self.faults.lost_sectors += lost;
        self.cells.server_crashed();
        self.trace.event(
            self.now_us,
            format_args!(
                "CRASH {mode:?}: {pending} unflushed sectors, {landed} landed, {lost} lost"
            ),
        );
        self.down = Some(ssd);
        let d = 1 + self.rng.below(DOWNTIME_US_MAX);
        self.at(d, Ev::Restart);
        Ok(())
    }

    fn restart(&mut self) -> Result<(), Violation> {
        let Some(ssd) = self.down.take() else { return Ok(()) };
        let mut engine = self.open(ssd)?;
        let observed = read_all(&mut engine, self.knobs.kv_keys);
        self.model.check_recovered(&observed)?;
        if self.rng.below(4) == 0 {
            engine = self.reopen(engine, &observed)?;
        }
        let _ = engine.device_mut().take_elapsed_us();
        self.engine = Some(cellar::sector::adapters::share(engine));
        if !self.liveness && self.knobs.crash_every_us > 0 {
            let d = self.every(self.knobs.crash_every_us);
            self.at(d, Ev::Crash);
        }
        Ok(())
    }

    /// Opens the device and checks the recovery report (SEC-7).
    fn open(&mut self, ssd: SimSsd) -> Result<Engine<SimSsd>, Violation> {
        let engine = Engine::open(ssd, self.engine_cfg.clone())
            .map_err(|e| Violation::new("SEC-7 recovery opens the device", e.to_string()))?;
        let rep = engine.recovery_report();
        self.trace.event(self.now_us, format_args!("RESTART: {rep:?}"));
        if !rep.corrupt_sectors.is_empty()
            || !rep.corrupt_keys.is_empty()
            || !rep.corrupt_zone_headers.is_empty()
        {
            return Err(Violation::new(
                "SEC-7 recovery reports corruption only where durable faults were injected",
                format!("{rep:?}"),
            ));
        }
        Ok(engine)
    }

    /// SEC-7 "recovery is idempotent": a second power cut right after recovery, with no new
    /// operation, must recover the same state.
    fn reopen(
        &mut self,
        engine: Engine<SimSsd>,
        first: &BTreeMap<Key, Result<Option<Record>, SectorError>>,
    ) -> Result<Engine<SimSsd>, Violation> {
        let mut ssd = engine.into_device();
        let (landed, lost) = ssd.crash(CrashMode::DropAll);
        self.trace
            .event(self.now_us, format_args!("CRASH again at once ({landed} landed, {lost} lost)"));
        let mut engine = self.open(ssd)?;
        let again = read_all(&mut engine, self.knobs.kv_keys);
        for (k, a) in first {
            let va = a.as_ref().ok().map(|r| r.as_ref().map(|r| &r.value));
            let vb =
                again.get(k).and_then(|b| b.as_ref().ok()).map(|r| r.as_ref().map(|r| &r.value));
            if va != vb {
                return Err(Violation::new(
                    "SEC-7 recovery is idempotent",
                    format!(
                        "key {k}: first recovery {:?}, second {:?}",
                        va.map(|v| v.map(Vec::len)),
                        vb.map(|v| v.map(Vec::len))
                    ),
                ));
            }
        }
        Ok(engine)
    }

    fn final_checks(&mut self) -> Result<(), Violation> {
        self.trace.event(self.now_us, format_args!("--- final checks ---"));
        self.durability_check()?;
        self.cells.check_linearizable().map_err(|d| {
            Violation::new("CELL-1 cell histories are linearizable (CasRegister)", d)
        })?;
        if let Some(v) = &self.vols {
            v.check_end()?;
        }
        if let Some(g) = self.gossip.as_mut() {
            g.check().map_err(gossip_violation)?;
            self.faults.gossip_crashes = g.counts.crashes;
            self.faults.gossip_rejected = g.counts.rejected;
            self.faults.gossip_writes = g.counts.writes;
            self.faults.gossip_delivered = g.counts.delivered;
        }
        self.faults.net_dropped = self.net.dropped;
        self.faults.net_duplicated = self.net.duplicated;
        if let Some(e) = &self.engine {
            self.faults.misdirected += lock(e).device_mut().stats().misdirected;
        }
        self.trace
            .event(self.now_us, format_args!("all checks passed; cells {:?}", self.cells.stats));
        Ok(())
    }

    fn inject_latent(&mut self) -> Result<(), Violation> {
        if self.liveness {
            return Ok(());
        }
        if let Some(engine) = self.engine.clone() {
            let k = self.rng.below(self.knobs.kv_keys);
            let mut e = lock(&engine);
            let sector = match e.version(k) {
                Some(v) if self.rng.below(4) != 0 => u64::from(v.sector()),
                _ => 2 + self.rng.below(DEVICE_SECTOR_COUNT - 2),
            };
            e.device_mut().inject_latent(sector);
            drop(e);
            self.faults.latent += 1;
            self.trace.event(self.now_us, format_args!("FAULT latent sector error at {sector}"));
        }
        let d = self.every(self.knobs.latent_every_us);
        self.at(d, Ev::Latent);
        Ok(())
    }

    fn inject_corrupt(&mut self) -> Result<(), Violation> {
        if self.liveness {
            return Ok(());
        }
        let keys = self.model.plain_keys();
        if let (Some(engine), false) = (self.engine.clone(), keys.is_empty()) {
            let k = keys[self.rng.below(keys.len() as u64) as usize];
            let mut e = lock(&engine);
            // Only a record that has not moved since it was written: its payload starts right
            // after the 80-byte header of the version's sector (fault atlas).
            if let Some(v) = e.version(k).filter(|v| Some(*v) == self.model.version(k)) {
                let span = self.model.len_of(k).min(SECTOR_SIZE_BYTES - 80) as u64;
                let offset = 80 + self.rng.below(span) as usize;
                let mask = 1u8 << self.rng.below(8);
                e.device_mut().inject_corrupt(u64::from(v.sector()), offset, mask);
                drop(e);
                self.model.damage(k);
                self.faults.corrupt += 1;
                self.trace.event(
                    self.now_us,
                    format_args!("FAULT corrupt key {k} sector {} byte {offset}", v.sector()),
                );
            }
        }
        let d = self.every(self.knobs.corrupt_every_us);
        self.at(d, Ev::Corrupt);
        Ok(())
    }

    fn partition(&mut self) -> Result<(), Violation> {
        if self.liveness {
            return Ok(());
        }
        let cut: Vec<u32> = (0..self.knobs.cell_clients).filter(|_| self.rng.coin()).collect();
        self.trace
            .event(self.now_us, format_args!("FAULT partition clients {cut:?} from the server"));
        self.net.partitioned = cut.into_iter().collect();
        self.faults.partitions += 1;
        let heal = 1_000 + self.rng.below(100_000);
        self.at(heal, Ev::Heal);
        let d = heal + self.every(self.knobs.partition_every_us);
        self.at(d, Ev::Partition);
        Ok(())
    }

    fn gossip_send(&mut self, packets: Vec<Packet>) {
        for p in packets {
            if self.gossip_cut.contains(&(p.from, p.to)) || self.rng.chance_ppm(self.net.drop_ppm) {
                self.net.dropped += 1;
                continue;
            }
            let delay_max = self.net.delay_us_max.max(1);
            if self.rng.chance_ppm(self.net.dup_ppm) {
                self.net.duplicated += 1;
                let d = 1 + self.rng.below(delay_max * 2);
                self.at(d, Ev::GossipMsg(p.clone()));
            }
            let d = 1 + self.rng.below(delay_max);
            self.at(d, Ev::GossipMsg(p));
        }
    }

    fn gossip_tick(&mut self, i: u32) -> Result<(), Violation> {
        let now_ms = self.now_us / 1_000;
        let Some(g) = self.gossip.as_mut() else { return Ok(()) };
        let out = g.tick(i, now_ms).map_err(gossip_violation)?;
        self.ops += 1;
        self.gossip_send(out);
        let d = 1 + self.rng.below(GOSSIP_TICK_US_MAX);
        self.at(d, Ev::GossipTick(i));
        Ok(())
    }

    fn gossip_deliver(&mut self, p: Packet) -> Result<(), Violation> {
        let now_ms = self.now_us / 1_000;
        let Some(g) = self.gossip.as_mut() else { return Ok(()) };
        let (rejected, merges) = (g.counts.rejected, g.counts.merges);
        let out = g.deliver(&p, now_ms).map_err(gossip_violation)?;
        let what = if g.counts.rejected > rejected {
            "rejected"
        } else if g.counts.merges > merges {
            "merged"
        } else {
            "handled"
        };
        self.ops += 1;
        self.trace.event(
            self.now_us,
            format_args!("gossip {} -> {} ({} bytes) {what}", p.from, p.to, p.bytes.len()),
        );
        self.gossip_send(out);
        Ok(())
    }

    fn gossip_write(&mut self, i: u32) -> Result<(), Violation> {
        if self.liveness {
            return Ok(());
        }
        let Some(g) = self.gossip.as_mut() else { return Ok(()) };
        let k = self.rng.below(self.knobs.gossip_keys);
        let value = (self.rng.below(5) != 0).then(|| self.rng.below(4).to_le_bytes());
        let line = g.client_write(i, k, value.as_ref().map(|v| v.as_slice()));
        self.ops += 1;
        match &line {
            Ok(l) => self.trace.event(self.now_us, format_args!("gossip {l}")),
            Err(b) => self.trace.event(self.now_us, format_args!("gossip VIOLATION {b:?}")),
        }
        line.map_err(gossip_violation)?;
        let d = self.every(self.knobs.gossip_write_every_us);
        self.at(d, Ev::GossipWrite(i));
        Ok(())
    }

    fn gossip_crash(&mut self) -> Result<(), Violation> {
        if self.liveness || self.knobs.crash_every_us == 0 {
            return Ok(());
        }
        let Some(g) = self.gossip.as_mut() else { return Ok(()) };
        let n = self.rng.below(u64::from(g.node_count())) as u32;
        g.crash(n).map_err(gossip_violation)?;
        self.trace.event(self.now_us, format_args!("FAULT gossip node {n} crashes and restarts"));
        let d = self.every(self.knobs.crash_every_us);
        self.at(d, Ev::GossipCrash);
        Ok(())
    }

    fn gossip_partition(&mut self) -> Result<(), Violation> {
        if self.liveness || self.knobs.partition_every_us == 0 {
            return Ok(());
        }
        let n = self.knobs.gossip_nodes;
        // Either one node is isolated or random one-way links are cut.
        self.gossip_cut.clear();
        if self.rng.coin() {
            let lone = self.rng.below(u64::from(n)) as u32;
            for o in (0..n).filter(|o| *o != lone) {
                self.gossip_cut.insert((lone, o));
                self.gossip_cut.insert((o, lone));
            }
        } else {
            for a in 0..n {
                for b in (0..n).filter(|b| *b != a) {
                    if self.rng.coin() {
                        self.gossip_cut.insert((a, b));
                    }
                }
            }
        }
        self.faults.partitions += 1;
        self.trace.event(self.now_us, format_args!("FAULT gossip links cut {:?}", self.gossip_cut));
        let heal = 1_000 + self.rng.below(100_000);
        self.at(heal, Ev::GossipHeal);
        let d = heal + self.every(self.knobs.partition_every_us);
        self.at(d, Ev::GossipPartition);
        Ok(())
    }
}

/// A broken gossip rule as a simulator violation.
fn gossip_violation(b: Broken) -> Violation {
    Violation::new(b.rule, b.detail)
}
