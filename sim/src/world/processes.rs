//! The processes under test, one event at a time: key/value clients against the sector engine
//! (through [`crate::workload`], judged by the key/value model), the engine's compactor, cell
//! clients and the cell server over the lossy network (through [`crate::net`]), and the volume
//! syncers, cleaners and source writer (through [`crate::volumes`]) with their engine's
//! compactor.
//!
//! Each handler does one operation, records it in the trace, counts it, and schedules the
//! process's next event after the device time the operation took plus a seeded think time.

use super::{Ev, World, lock};
use crate::net::{Action, CLIENT_RETRY_TIMEOUT_US, CLIENT_THINK_US_MAX, Msg, Payload, Reply};
use crate::oracle::Violation;
use crate::workload::{KvCtx, KvTally};
use cellar::sector::{CompactProgress, SectorCell, SectorError};
use cellar::storage::cell::Cell;
use cellar_model::spec::{CasOp, CasRet};

/// Think time of a key/value client between operations, at most, µs.
pub const KV_THINK_US_MAX: u64 = 400;
/// Time between compactor steps, at most, µs.
pub const COMPACT_PERIOD_US_MAX: u64 = 300;

impl World<'_> {
    /// A fresh request id (in steps of 16, so ids of different processes never collide).
    pub(super) fn next_uid(&mut self) -> u64 {
        self.uid += 16;
        self.uid
    }

    /// Carries out a cell client's actions: sends over the network, timers, think times.
    pub(super) fn act(&mut self, acts: Vec<Action>) {
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

    /// Key/value client `i` runs one operation against the engine (checked by the model).
    pub(super) fn kv(&mut self, i: u32) -> Result<(), Violation> {
        if self.liveness {
            return Ok(());
        }
        let Some(engine) = self.engine.clone() else {
            self.at(1_000, Ev::Kv(i));
            return Ok(());
        };
        let uid = self.next_uid();
        let mode = self.kv_mode();
        let mut tally = KvTally::default();
        let mut e = lock(&engine);
        let ctx = KvCtx {
            engine: &mut e,
            model: &mut self.model,
            rng: &mut self.rng,
            keys: self.knobs.kv_keys,
            value_bytes_max: self.knobs.value_bytes_max,
            flush_ppm: self.knobs.write_flush_ppm,
            limit_ppm: self.knobs.kv_limit_ppm,
            uid,
            mode,
            tally: &mut tally,
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
        self.after_kv(tally)?;
        let d = dt + self.rng.below(KV_THINK_US_MAX);
        self.at(d, Ev::Kv(i));
        if self.knobs.crash_every_us > 0 && self.rng.chance_ppm(self.knobs.crash_after_op_ppm) {
            self.crash()?;
        }
        Ok(())
    }

    /// The compactor runs one step; abandoning a key is only allowed where a fault hit it.
    pub(super) fn compact(&mut self) -> Result<(), Violation> {
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
        let free = e.stat().free_zones;
        drop(e);
        self.ops += 1;
        self.trace.event(self.now_us, format_args!("compact {r:?} ({free} free zones)"));
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
            Ok(CompactProgress::Damaged { zone, .. }) => {
                // The scan missed a live record: only a media fault met since the last power
                // cycle (a misdirected write, typically, seen in an earlier step), or a record
                // flipped on the medium at rest in the zone (SEC-18), explains it.
                if before == 0 && !hit && !self.damaged_at_rest(zone) {
                    return Err(Violation::new(
                        "SEC-17 compaction finds every live record",
                        format!("zone {zone} left alone with no media fault met"),
                    ));
                }
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

    /// Cell client `i` issues its next operation (none once faults stop).
    pub(super) fn cell_issue(&mut self, i: u32) -> Result<(), Violation> {
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

    /// Cell client `i`'s retry timer for request `req` fires.
    pub(super) fn cell_timer(&mut self, i: u32, req: u64) -> Result<(), Violation> {
        let acts = self.cells.timeout(i, req);
        if !acts.is_empty() {
            self.trace.event(self.now_us, format_args!("cell client {i} retries req {req}"));
        }
        self.act(acts);
        Ok(())
    }

    /// A message from the server reaches its client.
    pub(super) fn cell_reply(&mut self, msg: Msg) -> Result<(), Violation> {
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

    /// The cell server answers a request (from its reply cache for a retry).
    pub(super) fn serve(&mut self, msg: Msg) -> Result<(), Violation> {
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

    /// Volume process `p` steps (judged by `VolumeSpec` in [`crate::volumes`]).
    pub(super) fn vol(&mut self, p: u32) -> Result<(), Violation> {
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
}
