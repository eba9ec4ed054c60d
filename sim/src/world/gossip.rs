//! Gossip wiring: the world carries the cluster's packets over its own lossy network (loss,
//! duplication and delay from the same knobs as the cell network, plus one-way link cuts),
//! ticks the nodes, issues client writes, and crashes nodes. The nodes, their disks and the
//! GOS oracles are [`crate::gossip`]'s; this file only schedules them.

use super::{Ev, World};
use crate::gossip::{Broken, Packet};
use crate::oracle::Violation;
use cellar::db::gossip::GossipConfig;
use cellar::db::hkv::{PATH_SIZE_MAX_BYTES, VALUE_SIZE_MAX_BYTES};

/// Time between a gossip node's ticks, at most, µs.
pub const GOSSIP_TICK_US_MAX: u64 = 5_000;
/// The gossip nodes' configuration: simulated runs last a fraction of a simulated second, so
/// announces and fetch timeouts are scaled down from the defaults (500 ms, 10 s).
pub const GOSSIP_CONFIG: GossipConfig =
    GossipConfig { announce_interval_ms: 5, fanout: 2, fetch_timeout_ms: 50 };

impl World<'_> {
    /// Sends packets over the gossip network: cut links and loss drop them, some are
    /// duplicated, each arrives after a seeded delay.
    fn gossip_send(&mut self, packets: Vec<Packet>) -> Result<(), Violation> {
        if self.secure.is_some() {
            return self.secure_send(packets);
        }
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
        Ok(())
    }

    /// Node `i` ticks (announces when due, drops stalled fetches).
    pub(super) fn gossip_tick(&mut self, i: u32) -> Result<(), Violation> {
        let now_ms = self.now_us / 1_000;
        let Some(g) = self.gossip.as_mut() else { return Ok(()) };
        let out = g.tick(i, now_ms).map_err(gossip_violation)?;
        self.ops += 1;
        if let Some(s) = self.secure.as_mut() {
            s.net.tick(now_ms);
        }
        self.gossip_send(out)?;
        let d = 1 + self.rng.below(GOSSIP_TICK_US_MAX);
        self.at(d, Ev::GossipTick(i));
        Ok(())
    }

    /// A packet arrives at its node.
    pub(super) fn gossip_deliver(&mut self, p: Packet) -> Result<(), Violation> {
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
        self.gossip_send(out)
    }

    /// A client of node `i` writes one key and commits (through the node's service).
    pub(super) fn gossip_write(&mut self, i: u32) -> Result<(), Violation> {
        if self.liveness {
            return Ok(());
        }
        if self.gossip.is_none() {
            return Ok(());
        }
        // No draw when the stress is off: the old simulator's runs are unchanged.
        let limits = self.knobs.gossip_limit_ppm > 0;
        let line = if limits && self.rng.chance_ppm(self.knobs.gossip_limit_ppm) {
            self.gossip_limit_write(i)
        } else {
            let k = self.rng.below(self.knobs.gossip_keys + self.knobs.gossip_deep_keys);
            let value = (self.rng.below(5) != 0).then(|| self.rng.below(4).to_le_bytes());
            let Some(g) = self.gossip.as_mut() else { return Ok(()) };
            g.client_write(i, k, value.as_ref().map(|v| v.as_slice()))
        };
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

    /// The `limits` stress (KV-15): a path of exactly [`PATH_SIZE_MAX_BYTES`] or a value of
    /// exactly [`VALUE_SIZE_MAX_BYTES`], acknowledged like any write, or one byte past either,
    /// refused with a typed error and no change to the node.
    fn gossip_limit_write(&mut self, i: u32) -> Result<String, Broken> {
        let k = self.rng.below(2);
        let past = usize::from(self.rng.coin());
        let fill = self.rng.below(256) as u8;
        let long_path = self.rng.coin();
        let (path, value) = if long_path {
            // `/m/K/xxx…`: its own key space, so no other key is a prefix of it.
            let mut path = format!("/m/{k}/");
            path.extend(std::iter::repeat_n('x', PATH_SIZE_MAX_BYTES + past - path.len()));
            (path, vec![fill; 4])
        } else {
            (format!("/k/{k}"), vec![fill; VALUE_SIZE_MAX_BYTES + past])
        };
        let Some(g) = self.gossip.as_mut() else {
            return Err(Broken { rule: "simulator", detail: "no gossip cluster".into() });
        };
        if past == 1 {
            return g.client_write_refused(i, &path, &value);
        }
        let line = g.client_write_path(i, &path, Some(&value)).map_err(|b| Broken {
            rule: "KV-15 a path or a value of exactly its limit is accepted",
            detail: format!("{}: {}", b.rule, b.detail),
        })?;
        g.counts.limit_writes += 1;
        Ok(line)
    }

    /// A random node crashes and restarts from its disk.
    pub(super) fn gossip_crash(&mut self) -> Result<(), Violation> {
        if self.liveness || self.knobs.crash_every_us == 0 {
            return Ok(());
        }
        let Some(g) = self.gossip.as_mut() else { return Ok(()) };
        let n = self.rng.below(u64::from(g.node_count())) as u32;
        g.crash(n).map_err(gossip_violation)?;
        if let Some(s) = self.secure.as_mut() {
            s.net.crash(n);
        }
        self.trace.event(self.now_us, format_args!("FAULT gossip node {n} crashes and restarts"));
        let d = self.every(self.knobs.crash_every_us);
        self.at(d, Ev::GossipCrash);
        Ok(())
    }

    /// Isolates one node, or cuts random one-way links, until a heal.
    pub(super) fn gossip_partition(&mut self) -> Result<(), Violation> {
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

    /// The gossip links heal.
    pub(super) fn gossip_heal(&mut self) -> Result<(), Violation> {
        self.gossip_cut.clear();
        self.trace.event(self.now_us, format_args!("gossip links healed"));
        Ok(())
    }
}

/// A broken gossip rule as a simulator violation.
pub(super) fn gossip_violation(b: Broken) -> Violation {
    Violation::new(b.rule, b.detail)
}
