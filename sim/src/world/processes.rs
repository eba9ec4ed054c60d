//! The processes under test, one event at a time: key/value clients against the sector engine
//! (through [`crate::workload`], judged by the key/value model), the engine's compactor, cell
//! clients and the cell server over the lossy network (through [`crate::net`]), and the volume
//! syncers, cleaners and source writer (through [`crate::volumes`]) with their engine's
//! compactor.
//!
//! Each handler does one operation, records it in the trace, counts it, and schedules the
//! process's next event after the device time the operation took plus a seeded think time.

use super::{Ev, World, lock};
use crate::cells::server::CellServer;
use crate::cells::{Action, CLIENT_RETRY_TIMEOUT_US, CLIENT_THINK_US_MAX};
use crate::net::Msg;
use crate::oracle::Violation;
use crate::workload::{KvCtx, KvTally};
use cellar::sector::proto::Request;
use cellar::sector::{CompactProgress, SectorError};

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

    /// Carries out a cell client's actions: bytes onto its connections, timers, think times.
    pub(super) fn act(&mut self, acts: Vec<Action>) {
        for a in acts {
            match a {
                Action::Send(msg) => self.send_stream(msg),
                Action::Timer { client, timer } => {
                    self.at(CLIENT_RETRY_TIMEOUT_US, Ev::CellTimer(client, timer))
                }
                Action::Think { client } => {
                    let d = self.rng.below(CLIENT_THINK_US_MAX);
                    self.at(d, Ev::CellIssue(client));
                }
            }
        }
    }

    /// Puts bytes on a cell service connection (FIFO; a loss breaks the connection).
    fn send_stream(&mut self, msg: Msg) {
        self.send_stream_after(0, msg);
    }

    fn send_stream_after(&mut self, dt: u64, msg: Msg) {
        let now = self.now_us + dt;
        if let Some(d) = self.streams.send(&mut self.net, &mut self.rng, now, &msg) {
            let ev = if msg.to_server { Ev::ToServer(msg) } else { Ev::ToClient(msg) };
            self.at(dt + d, ev);
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
            let hedge = self.net.dup_ppm;
            let acts = self.cells.issue(i, &mut self.rng, uid, self.now_us, hedge);
            if !acts.is_empty() {
                self.trace.event(self.now_us, format_args!("cell client {i} issues"));
            }
            self.act(acts);
        }
        Ok(())
    }

    /// Cell client `i`'s retry timer `timer` fires.
    pub(super) fn cell_timer(&mut self, i: u32, timer: u64) -> Result<(), Violation> {
        let hedge = self.net.dup_ppm;
        let acts = self.cells.timeout(i, timer, &mut self.rng, hedge);
        if !acts.is_empty() {
            self.trace
                .event(self.now_us, format_args!("cell client {i} retries on a new connection"));
        }
        self.act(acts);
        Ok(())
    }

    /// Bytes from the server reach a cell client (unless the connection broke meanwhile).
    pub(super) fn cell_reply(&mut self, msg: Msg) -> Result<(), Violation> {
        if !self.streams.deliverable(&msg) {
            return Ok(());
        }
        let hedge = self.net.dup_ppm;
        let acts = self
            .cells
            .on_bytes(msg.conn, &msg.bytes, self.now_us, &mut self.rng, hedge)
            .map_err(|e| Violation::new("sector protocol", e))?;
        self.act(acts);
        Ok(())
    }

    /// Bytes from a cell client reach the server: the real protocol server executes every
    /// complete request in them and answers on the same connection.
    pub(super) fn serve(&mut self, msg: Msg) -> Result<(), Violation> {
        if !self.streams.deliverable(&msg) {
            return Ok(());
        }
        let Some(engine) = self.engine.clone() else {
            // Nobody listens: the connection is refused.
            self.streams.break_conn(msg.conn);
            self.trace
                .event(self.now_us, format_args!("server down: connection {:?} refused", msg.conn));
            return Ok(());
        };
        let server = self.cell_server.get_or_insert_with(|| CellServer::new(engine.clone()));
        let served = server.receive(msg.conn, &msg.bytes);
        let dt = lock(&engine).device_mut().take_elapsed_us();
        for e in &served.executed {
            self.cells.served();
            self.ops += 1;
            self.trace.event(
                self.now_us,
                format_args!("server conn {:?}: {}", msg.conn, brief(&e.request)),
            );
            self.judge_executed(e)?;
        }
        for bytes in served.replies {
            self.send_stream_after(dt, Msg { conn: msg.conn, to_server: false, bytes });
        }
        if served.closed {
            self.streams.break_conn(msg.conn);
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

/// A request for the trace: a write's value by its length only.
fn brief(r: &Request) -> String {
    match r {
        Request::Write { key, value, options } => {
            format!("Write {{ key: {key}, {} bytes, flush: {} }}", value.len(), options.flush)
        }
        other => format!("{other:?}"),
    }
}
