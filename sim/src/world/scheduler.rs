//! The scheduler: a queue of events keyed by (simulated µs, insertion sequence), the start
//! schedule that seeds every process and fault injector, the run loop (fault phase, liveness
//! phase, final checks) and the dispatch of each event to its process.
//!
//! Why insertion order breaks ties: with equal times the queue then pops events in the order
//! the seeded generator scheduled them, so a run is a pure function of its seed. Time only
//! moves when an event is popped; nothing here reads a clock.

use super::{COMPACT_PERIOD_US_MAX, GOSSIP_TICK_US_MAX, LIVENESS_BOUND_US, World};
use crate::channels::Segment;
use crate::gossip::Packet;
use crate::net::Msg;
use crate::oracle::Violation;
use crate::volumes::Volumes;

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
    /// A header fault while running (`headers.rs`).
    Header,
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
    /// Secure-channel bytes arrive at one end of a connection (`gossip` profile).
    GossipSeg(Segment),
    /// The network attacker acts (`gossip` profile).
    Attack,
}

impl World<'_> {
    /// Schedules `ev` `delay_us` from now (after every event already due at that time).
    pub(super) fn at(&mut self, delay_us: u64, ev: Ev) {
        self.seq += 1;
        self.queue.insert((self.now_us + delay_us, self.seq), ev);
    }

    /// A delay drawn uniformly from 1..=2·`mean_us` (so its mean is about `mean_us`).
    pub(super) fn every(&mut self, mean_us: u64) -> u64 {
        1 + self.rng.below(2 * mean_us.max(1))
    }

    /// Schedules the first event of every process and fault injector the knobs switch on.
    pub(super) fn schedule_start(&mut self) {
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
            for (mean, ev) in [
                (k.crash_every_us, Ev::GossipCrash),
                (k.partition_every_us, Ev::GossipPartition),
                (if k.gossip_channel { k.attack_every_us } else { 0 }, Ev::Attack),
            ] {
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
            (if k.kv_clients > 0 { k.header_every_us } else { 0 }, Ev::Header),
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

    /// Runs one event to completion.
    pub(super) fn handle(&mut self, ev: Ev) -> Result<(), Violation> {
        match ev {
            Ev::Kv(i) => self.kv(i),
            Ev::Compact => self.compact(),
            Ev::CellIssue(i) => self.cell_issue(i),
            Ev::CellTimer(i, req) => self.cell_timer(i, req),
            Ev::ToServer(msg) => self.serve(msg),
            Ev::ToClient(msg) => self.cell_reply(msg),
            Ev::Vol(p) => self.vol(p),
            Ev::Crash => self.crash(),
            Ev::Restart => self.restart(),
            Ev::Latent => self.inject_latent(),
            Ev::Corrupt => self.inject_corrupt(),
            Ev::Header => self.inject_header(),
            Ev::Partition => self.partition(),
            Ev::Heal => self.heal(),
            Ev::GossipTick(i) => self.gossip_tick(i),
            Ev::GossipWrite(i) => self.gossip_write(i),
            Ev::GossipMsg(p) => self.gossip_deliver(p),
            Ev::GossipCrash => self.gossip_crash(),
            Ev::GossipPartition => self.gossip_partition(),
            Ev::GossipHeal => self.gossip_heal(),
            Ev::GossipSeg(seg) => self.segment_deliver(seg),
            Ev::Attack => self.attack(),
        }
    }
}
