//! The gossip suite (`specs/conform.md`, CONF-7): the harness is the network. It hosts Rust
//! `GossipNode`s in this process and one or more foreign nodes (implementation processes
//! speaking JSON lines), carries every GW-1 message between them with seeded delays, drops,
//! duplicates and hence reorderings, and drives a seeded client workload (writes, deletes,
//! hierarchical keys, concurrent writes of one key on different nodes). Then the faults stop
//! and every member must present the same state of every written key within a bound (GOS-5),
//! and that state must be `GossipSpec`'s join of the acknowledged writes (`judge.rs`).
//!
//! - [`adapter`]: the Rust adapter's gossip node behind the protocol, with planted bugs.
//! - [`members`]: a member as the harness drives it (in-process or foreign).
//! - [`judge`]: the spec's verdict.
//!
//! Every choice the harness makes comes from the seed ([`SimRng`]); a foreign node that is
//! deterministic in its inputs replays the same run.

pub mod adapter;
pub mod judge;
pub mod members;

use crate::conform::sector::Case;
use crate::gossip::GROUP_SALT;
use crate::rng::SimRng;
use cellar::db::gossip::GossipConfig;
use judge::Observer;
use members::{Member, MemberError, Outgoing, Start};
use std::collections::{BTreeMap, BTreeSet};

/// How a skipped case's `info` starts (the implementation does not support gossip, CONF-2).
pub const SKIPPED: &str = "skipped";

/// How a run goes.
#[derive(Debug, Clone)]
pub struct GossipSuiteConfig {
    /// The implementation's command.
    pub cmd: String,
    /// Rust nodes hosted in-process.
    pub rust_nodes: u32,
    /// Foreign nodes (implementation processes).
    pub foreign_nodes: u32,
    /// Virtual milliseconds of workload under faults.
    pub workload_ms: u64,
    /// Virtual milliseconds after the faults stop within which all must converge.
    pub bound_ms: u64,
}

/// Virtual time per step.
const STEP_MS: u64 = 50;
/// Under faults: a message is dropped with this chance (ppm)…
const DROP_PPM: u32 = 100_000;
/// …or duplicated with this one (ppm)…
const DUP_PPM: u32 = 50_000;
/// …and each copy is delayed up to this long (so messages overtake each other).
const DELAY_MAX_MS: u64 = 600;
/// After the faults: delays up to this long, nothing lost.
const CALM_DELAY_MAX_MS: u64 = 20;
/// A single client write per step, chance in ppm.
const WRITE_PPM: u32 = 150_000;
/// Two nodes writing one key in the same step (concurrent writes), chance in ppm.
const CONCURRENT_PPM: u32 = 50_000;
/// A client write is a delete with this chance (ppm).
const DELETE_PPM: u32 = 250_000;
/// How often convergence is looked at after the faults stop.
const CHECK_EVERY_MS: u64 = 500;
/// The keys the workload writes: hierarchical paths, some prefixes of others (KV-15).
const KEYS: &[&str] = &["/a", "/a/b", "/a/b/c", "/a/d", "/m/n/o/p", "/z"];
/// The nodes' tunables (GW-4, GW-7), sent to foreign nodes in `gossip.start`.
pub const CONFIG: GossipConfig =
    GossipConfig { announce_interval_ms: 300, fanout: 2, fetch_timeout_ms: 2_000 };

/// The network: messages in flight by (due time, sequence).
struct Net {
    queue: BTreeMap<(u64, u64), (u32, u32, Vec<u8>)>,
    seq: u64,
    members: u32,
    faults: bool,
    rng: SimRng,
    sent: u64,
    dropped: u64,
    duplicated: u64,
    refused: u64,
}

impl Net {
    fn send(&mut self, now: u64, from: u32, msgs: Vec<Outgoing>) {
        for (to, bytes) in msgs {
            self.sent += 1;
            if to >= self.members || to == from || (self.faults && self.rng.chance_ppm(DROP_PPM)) {
                self.dropped += 1;
                continue;
            }
            let copies = if self.faults && self.rng.chance_ppm(DUP_PPM) {
                self.duplicated += 1;
                2
            } else {
                1
            };
            for _ in 0..copies {
                let max = if self.faults { DELAY_MAX_MS } else { CALM_DELAY_MAX_MS };
                let due = now + self.rng.range(1, max);
                self.queue.insert((due, self.seq), (from, to, bytes.clone()));
                self.seq += 1;
            }
        }
    }

    fn due(&mut self, now: u64) -> Option<(u32, u32, Vec<u8>)> {
        let (&key, _) = self.queue.first_key_value()?;
        if key.0 > now {
            return None;
        }
        self.queue.remove(&key)
    }
}

/// One run: the members, the network, the spec's view.
struct Run {
    members: Vec<Member>,
    net: Net,
    observer: Observer,
    written: BTreeSet<&'static str>,
    writes: u64,
}

fn misbehaved(node: u32, e: &MemberError) -> String {
    format!("node {node} misbehaved: {e}")
}

impl Run {
    fn step(&mut self, now: u64) -> Result<(), String> {
        for i in 0..self.members.len() as u32 {
            let out = self.members[i as usize].tick(now).map_err(|e| misbehaved(i, &e))?;
            self.net.send(now, i, out);
        }
        while let Some((from, to, bytes)) = self.net.due(now) {
            match self.members[to as usize].deliver(from, &bytes, now) {
                Ok(Some(out)) => self.net.send(now, to, out),
                Ok(None) => self.net.refused += 1,
                Err(e) => return Err(misbehaved(to, &e)),
            }
        }
        Ok(())
    }

    fn write(&mut self, node: u32, key: &'static str, delete: bool) -> Result<(), String> {
        self.writes += 1;
        let value = format!("n{node}-w{}", self.writes).into_bytes();
        let value = (!delete).then_some(value.as_slice());
        let m = &mut self.members[node as usize];
        m.write_commit(key, value).map_err(|e| misbehaved(node, &e))?;
        let state = m.state(key).map_err(|e| misbehaved(node, &e))?;
        self.written.insert(key);
        self.observer.acknowledged(node, key, value, state)
    }

    fn client_ops(&mut self, rng: &mut SimRng) -> Result<(), String> {
        let n = self.members.len() as u64;
        if rng.chance_ppm(WRITE_PPM) {
            let key = KEYS[rng.below(KEYS.len() as u64) as usize];
            let delete = rng.chance_ppm(DELETE_PPM);
            self.write(rng.below(n) as u32, key, delete)?;
        }
        if n >= 2 && rng.chance_ppm(CONCURRENT_PPM) {
            let key = KEYS[rng.below(KEYS.len() as u64) as usize];
            let a = rng.below(n);
            let b = (a + 1 + rng.below(n - 1)) % n;
            let delete = rng.chance_ppm(DELETE_PPM);
            self.write(a as u32, key, false)?;
            self.write(b as u32, key, delete)?;
        }
        Ok(())
    }

    /// Do all members present the same state of every written key?
    fn converged(&mut self) -> Result<bool, String> {
        for key in &self.written {
            let mut first = None;
            for (i, m) in self.members.iter_mut().enumerate() {
                let s = m.state(key).map_err(|e| misbehaved(i as u32, &e))?;
                match &first {
                    None => first = Some(s),
                    Some(f) if *f != s => return Ok(false),
                    Some(_) => {}
                }
            }
        }
        Ok(true)
    }

    fn judge(&mut self) -> Result<(), String> {
        for key in self.written.clone() {
            for (i, m) in self.members.iter_mut().enumerate() {
                let state = m.state(key).map_err(|e| misbehaved(i as u32, &e))?;
                let read = m.read(key).map_err(|e| misbehaved(i as u32, &e))?;
                let who = if m.is_foreign() { "foreign" } else { "Rust" };
                self.observer
                    .judge(i as u32, key, state.as_ref(), &read)
                    .map_err(|f| format!("{f} (node {i} is {who})"))?;
            }
        }
        Ok(())
    }
}

fn state_dir(seed: u64, node: u32) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("cellar-conform-gossip-{}-{seed}-{node}", std::process::id()))
}

/// Runs one seed; the case says what happened and, on failure, the broken rule.
pub fn gossip_seed(cfg: &GossipSuiteConfig, seed: u64) -> Case {
    let mut rng = SimRng::new(seed);
    let total = (cfg.rust_nodes + cfg.foreign_nodes).max(1);
    let lww = rng.coin();
    // Which node numbers are foreign: a seeded choice, so foreign nodes win ties sometimes.
    let mut ids: Vec<u32> = (0..total).collect();
    for i in (1..ids.len()).rev() {
        ids.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let foreign: BTreeSet<u32> = ids.into_iter().take(cfg.foreign_nodes as usize).collect();
    let mut members = Vec::new();
    let mut failure = None;
    for i in 0..total {
        let start = Start {
            node: i,
            peers: (0..total).filter(|p| *p != i).collect(),
            salt: GROUP_SALT,
            lww,
            seed: seed.wrapping_mul(1_000).wrapping_add(u64::from(i)),
            config: CONFIG,
        };
        if foreign.contains(&i) {
            let dir = state_dir(seed, i);
            match Member::foreign(&cfg.cmd, &dir, &start) {
                Ok(m) => members.push(m),
                Err(MemberError::Unsupported) => {
                    for m in members {
                        m.finish();
                    }
                    let _ = std::fs::remove_dir_all(&dir);
                    let info = format!("{SKIPPED}: gossip.start answered unsupported");
                    return Case {
                        name: format!("seed {seed}"),
                        seed: Some(seed),
                        info,
                        failure: None,
                    };
                }
                Err(e) => {
                    failure = Some(misbehaved(i, &e));
                    break;
                }
            }
        } else {
            members.push(Member::rust(&start));
        }
    }
    let net = Net {
        queue: BTreeMap::new(),
        seq: 0,
        members: total,
        faults: true,
        rng: rng.fork(),
        sent: 0,
        dropped: 0,
        duplicated: 0,
        refused: 0,
    };
    let mut run =
        Run { members, net, observer: Observer::new(lww), written: BTreeSet::new(), writes: 0 };
    let mut converged_after = None;
    if failure.is_none() {
        failure = drive(cfg, &mut run, &mut rng, &mut converged_after).err();
    }
    let info = format!(
        "{} {} writes, {} msgs ({} dropped, {} dup, {} refused), {}",
        if lww { "lww" } else { "keep-both" },
        run.observer.writes,
        run.net.sent,
        run.net.dropped,
        run.net.duplicated,
        run.net.refused,
        converged_after
            .map_or_else(|| "not converged".to_owned(), |ms| format!("converged in {ms} ms"))
    );
    for m in run.members {
        m.finish();
    }
    for i in &foreign {
        let _ = std::fs::remove_dir_all(state_dir(seed, *i));
    }
    Case { name: format!("seed {seed}"), seed: Some(seed), info, failure }
}

fn drive(
    cfg: &GossipSuiteConfig,
    run: &mut Run,
    rng: &mut SimRng,
    converged_after: &mut Option<u64>,
) -> Result<(), String> {
    let mut now = 0;
    while now < cfg.workload_ms {
        run.client_ops(rng)?;
        run.step(now)?;
        now += STEP_MS;
    }
    run.net.faults = false;
    let calm = now;
    loop {
        run.step(now)?;
        if (now - calm) % CHECK_EVERY_MS == 0 && run.converged()? {
            *converged_after = Some(now - calm);
            break;
        }
        if now - calm > cfg.bound_ms {
            return Err(format!(
                "GOS-5 all gossip nodes converge after the faults stop: not within {} ms",
                cfg.bound_ms
            ));
        }
        now += STEP_MS;
    }
    run.judge()
}
