//! Gossip nodes in the simulator (issue 6 item 6): a cluster of the real
//! `cellar::db::gossip::GossipNode`s, each with its own store and its own cell (the persisted head),
//! driven by `tick(now)` and `handle_bytes` exactly as `docs/kv.md` ("Driving gossip from a
//! simulator") prescribes, and the oracles from the executable spec (`cellar_model::spec`).
//! Clients write and commit through the node's key/value service
//! (`cellar::db::gossip::service::answer`, what `cellar node` serves over TCP), so the
//! simulator checks the service too.
//!
//! The cluster owns the nodes, their disks and the record of acknowledged writes; the caller
//! owns time and the network: it carries the [`Packet`]s this module hands out (losing,
//! duplicating, delaying, partitioning them) and calls [`Cluster::deliver`] on arrival.
//! The world (`world/gossip.rs`) drives it from the simulator's event queue;
//! `sim/tests/gossip_network.rs` drives it from its own chaos loop through the library. It
//! depends only on `cellar` and `cellar-model`, no other module of this crate.
//!
//! Oracles ([`Cluster::check`]): every node's state of every written key is the spec's join of
//! all acknowledged writes of that key: under KeepBoth every acknowledged version not
//! causally superseded is retained (GOS-4), under LWW every node presents the same single
//! winner, the spec's greatest (GOS-3); and [`Cluster::converged`] (equal roots, GOS-5, KV-4)
//! must hold after the liveness phase.
//!
//! Never: reads the clock, draws OS randomness or spawns threads; seeds come from the caller.

use cellar::db::gossip::service::{KvRequest, KvResponse, answer};
use cellar::db::gossip::{Envelope, GossipConfig, GossipNode, PeerId, encode_message};
use cellar::db::hkv::Hkv;
use cellar::db::merge::{KeyState, MergePolicy, NodeId, VectorClock};
use cellar::db::snapshot::head_from_cell;
use cellar::env::DetEntropy;
use cellar::storage::cell::{Cell, MemCell};
use cellar::storage::store::{MemStore, Store};
use cellar_model::spec;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// The salt every node of the group shares (equal contents ⇒ equal roots, KV-4).
pub const GROUP_SALT: [u8; 32] = [8; 32];

/// One encoded gossip message in flight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// Sending node.
    pub from: u32,
    /// Receiving node.
    pub to: u32,
    /// `gossip::encode_message` of the message.
    pub bytes: Vec<u8>,
}

/// A broken rule: the rule's name and what happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    /// The rule (spec ID and text).
    pub rule: &'static str,
    /// What happened.
    pub detail: String,
}

impl Broken {
    fn new(rule: &'static str, detail: String) -> Self {
        Self { rule, detail }
    }
}

type SpecVersion = spec::Version<Option<Vec<u8>>>;

/// What survives a node's crash: its store and its cell.
struct Disk {
    store: Arc<dyn Store>,
    cell: MemCell,
}

/// Counters of one cluster.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GossipCounts {
    /// Acknowledged (committed) client writes.
    pub writes: u64,
    /// Node crashes (each followed by a restart from the disk).
    pub crashes: u64,
    /// Messages handled.
    pub delivered: u64,
    /// Messages a node rejected (e.g. objects of a fetch dropped by a crash or a timeout).
    pub rejected: u64,
    /// Heads merged from peers.
    pub merges: u64,
    /// The highest tree level a committed head reached (0: every tree a single leaf; depth is
    /// level + 1).
    pub tree_level_max: u8,
    /// Acknowledged writes of a path or a value of exactly the largest legal size (KV-15).
    pub limit_writes: u64,
    /// Writes one byte past a limit, refused with a typed error and no change (KV-15).
    pub limit_refusals: u64,
}

/// N gossip nodes with their disks and the record of acknowledged writes.
pub struct Cluster {
    nodes: Vec<GossipNode>,
    disks: Vec<Disk>,
    policy: MergePolicy,
    config: GossipConfig,
    /// The nodes' expected tree node size (0: the KV's default).
    node_target_bytes: u64,
    seed: u64,
    /// Acknowledged writes per key, as the spec's versions.
    written: BTreeMap<String, Vec<SpecVersion>>,
    /// The key half (`dek`) of every head any node has persisted: what must never show on the
    /// wire (CH-10, the secret scan of `channels.rs`).
    secrets: BTreeSet<[u8; 32]>,
    /// Whether the roots may have changed since [`Cluster::converged`] last looked.
    dirty: bool,
    converged: bool,
    /// Counters.
    pub counts: GossipCounts,
}

/// The spec's clock of an implementation clock.
pub fn spec_clock(c: &VectorClock) -> spec::VectorClock {
    spec::VectorClock::from_entries(c.entries().map(|(n, v)| (spec::NodeId(n.0), v)))
}

/// The spec's join of a set of acknowledged writes of one key: the join of their clocks, and
/// the writes no other write follows in precedence order (under LWW only the greatest).
pub fn expected(
    policy: &MergePolicy,
    writes: &[SpecVersion],
) -> (spec::VectorClock, Vec<SpecVersion>) {
    let clock = writes.iter().fold(spec::VectorClock::new(), |c, w| c.join(&w.clock));
    let mut max: Vec<_> = writes
        .iter()
        .filter(|v| !writes.iter().any(|w| v.clock.compare(&w.clock) == spec::ClockOrder::Before))
        .cloned()
        .collect();
    max.sort();
    max.dedup();
    if matches!(policy, MergePolicy::LastWriteWins) {
        max.drain(..max.len().saturating_sub(1));
    }
    (clock, max)
}

/// Is the implementation's key state the spec's?
pub fn same(state: &KeyState, want: &(spec::VectorClock, Vec<SpecVersion>)) -> bool {
    spec_clock(state.clock()) == want.0
        && state.versions().len() == want.1.len()
        && state.versions().iter().zip(&want.1).all(|(a, b)| {
            a.value == b.value
                && spec::NodeId(a.writer.0) == b.writer
                && spec_clock(&a.clock) == b.clock
        })
}

/// A client write or commit must get the response `want` accepts.
fn expect_response(r: KvResponse, want: impl Fn(&KvResponse) -> bool) -> Result<(), Broken> {
    match r {
        KvResponse::Error(e) => Err(Broken::new("gossip: client writes succeed", e)),
        r if want(&r) => Ok(()),
        r => Err(Broken::new("gossip: client writes succeed", format!("unexpected {r:?}"))),
    }
}

fn packets(from: u32, envs: Vec<Envelope>) -> Result<Vec<Packet>, Broken> {
    envs.into_iter()
        .map(|e| {
            encode_message(&e.message)
                .map(|bytes| Packet { from, to: e.to.0, bytes })
                .map_err(|e| Broken::new("gossip messages encode", e.to_string()))
        })
        .collect()
}

impl Cluster {
    /// `n` fresh nodes under `policy`; `seed` derives each node's peer-selection entropy.
    pub fn new(n: u32, policy: MergePolicy, config: GossipConfig, seed: u64) -> Self {
        let disks = (0..n)
            .map(|_| Disk {
                store: Arc::new(MemStore::new()) as Arc<dyn Store>,
                cell: MemCell::new(),
            })
            .collect();
        let mut c = Self {
            nodes: Vec::new(),
            disks,
            policy,
            config,
            node_target_bytes: 0,
            seed,
            written: BTreeMap::new(),
            secrets: BTreeSet::new(),
            dirty: true,
            converged: false,
            counts: GossipCounts::default(),
        };
        for i in 0..n {
            // A fresh cell is empty: `boot` cannot fail on it.
            if let Ok(node) = c.boot(i) {
                c.nodes.push(node);
            }
        }
        c
    }

    /// The same fresh cluster with every node building its trees with `bytes`-sized nodes
    /// (`Hkv::with_node_target_size`): a few dozen keys then make trees of depth 3 and more.
    #[must_use]
    pub fn with_node_target_size(mut self, bytes: u64) -> Self {
        self.node_target_bytes = bytes;
        let n = self.node_count();
        self.nodes = (0..n).filter_map(|i| self.boot(i).ok()).collect();
        self
    }

    /// The key half of every head any node has persisted.
    pub fn secrets(&self) -> &BTreeSet<[u8; 32]> {
        &self.secrets
    }

    /// Number of nodes.
    pub fn node_count(&self) -> u32 {
        self.nodes.len() as u32
    }

    /// Starts node `i` from its disk: the store and the head its cell holds.
    fn boot(&self, i: u32) -> Result<GossipNode, Broken> {
        let disk = &self.disks[i as usize];
        let bytes =
            disk.cell.read().map_err(|e| Broken::new("gossip: the cell reads", e.to_string()))?;
        let head = head_from_cell(&bytes)
            .map_err(|e| Broken::new("gossip: the persisted head decodes", e.to_string()))?;
        let mut db = Hkv::new(disk.store.clone(), GROUP_SALT, NodeId(i), self.policy, head);
        if self.node_target_bytes > 0 {
            db = db.with_node_target_size(self.node_target_bytes);
        }
        let peers = (0..self.node_count().max(i + 1)).filter(|p| *p != i).map(PeerId).collect();
        let entropy_seed =
            self.seed.wrapping_mul(31).wrapping_add(u64::from(i) + 1000 * self.counts.crashes);
        Ok(GossipNode::new(db, peers, Arc::new(DetEntropy::new(entropy_seed)), self.config))
    }

    /// Persists node `n`'s head to its cell (what a crash keeps).
    fn persist(&mut self, n: usize) -> Result<(), Broken> {
        let head = self.nodes[n].db().head();
        if let Some(r) = head {
            self.secrets.insert(r.dek);
        }
        let new = head.map(|r| r.to_bytes().to_vec()).unwrap_or_default();
        let cell = &self.disks[n].cell;
        let old = cell.read().map_err(|e| Broken::new("gossip: the cell reads", e.to_string()))?;
        let out = cell
            .cas(&old, &new)
            .map_err(|e| Broken::new("gossip: the head persists", e.to_string()))?;
        if !out.swapped {
            return Err(Broken::new(
                "gossip: the head persists",
                "CAS lost with one writer".into(),
            ));
        }
        self.dirty = true;
        Ok(())
    }

    /// Node `n` ticks at `now_ms`: the messages it sends.
    ///
    /// # Errors
    /// The node failed (its store is in memory: any error is a bug).
    pub fn tick(&mut self, n: u32, now_ms: u64) -> Result<Vec<Packet>, Broken> {
        let envs = self.nodes[n as usize]
            .tick(now_ms)
            .map_err(|e| Broken::new("gossip: tick succeeds", e.to_string()))?;
        packets(n, envs)
    }

    /// Delivers `p` at `now_ms`; returns the replies. A rejected message is counted, not fatal.
    ///
    /// # Errors
    /// The merged head could not be persisted.
    pub fn deliver(&mut self, p: &Packet, now_ms: u64) -> Result<Vec<Packet>, Broken> {
        self.counts.delivered += 1;
        match self.nodes[p.to as usize].handle_bytes(PeerId(p.from), &p.bytes, now_ms) {
            Ok(h) => {
                if h.merged.is_some() {
                    self.counts.merges += 1;
                    self.persist(p.to as usize)?;
                }
                packets(p.to, h.replies)
            }
            Err(_) => {
                self.counts.rejected += 1;
                Ok(Vec::new())
            }
        }
    }

    /// A client of node `n` writes `value` (`None`: delete) at key `k` and commits; the write
    /// is acknowledged and recorded. Returns a line for the trace.
    ///
    /// # Errors
    /// The write, the commit or the persist failed.
    pub fn client_write(&mut self, n: u32, k: u64, value: Option<&[u8]>) -> Result<String, Broken> {
        self.client_write_path(n, &format!("/k/{k}"), value)
    }

    /// Like [`Cluster::client_write`] at any legal `path`.
    ///
    /// # Errors
    /// The write, the commit or the persist failed.
    pub fn client_write_path(
        &mut self,
        n: u32,
        path: &str,
        value: Option<&[u8]>,
    ) -> Result<String, Broken> {
        let path = path.to_owned();
        let n = n as usize;
        // Through the node's key/value service, as a `cellar kv` client over TCP would.
        let write = match value {
            Some(v) => KvRequest::Set(path.clone(), v.to_vec()),
            None => KvRequest::Delete(path.clone()),
        };
        expect_response(answer(&mut self.nodes[n], write), |r| matches!(r, KvResponse::Ok))?;
        let commit = answer(&mut self.nodes[n], KvRequest::Commit("write".into()));
        expect_response(commit, |r| matches!(r, KvResponse::Committed(_)))?;
        self.persist(n)?;
        self.counts.writes += 1;
        // Acknowledged: the single version the write left (its clock is the key's clock).
        let state = self.nodes[n]
            .db()
            .state(&path)
            .map_err(|e| Broken::new("gossip: committed keys read back", e.to_string()))?;
        let Some(v) = state.versions().iter().find(|v| v.clock == *state.clock()) else {
            return Err(Broken::new(
                "GOS-2 a write supersedes what its node saw",
                format!("node {n} key {path}: no version carries the key's clock: {state:?}"),
            ));
        };
        let version = SpecVersion {
            value: v.value.clone(),
            writer: spec::NodeId(v.writer.0),
            clock: spec_clock(&v.clock),
        };
        self.written.entry(path.clone()).or_default().push(version);
        self.note_tree_level(n)?;
        let shown: String = path.chars().take(40).collect();
        let value = value
            .map(|v| if v.len() > 16 { format!("{} bytes", v.len()) } else { format!("{v:?}") });
        Ok(format!("node {n} commits {shown} = {value:?}"))
    }

    /// Records the level of node `n`'s committed tree.
    fn note_tree_level(&mut self, n: usize) -> Result<(), Broken> {
        let db = self.nodes[n].db();
        let read = |e: cellar::db::hkv::HkvError| {
            Broken::new("gossip: committed trees read back", e.to_string())
        };
        if let Some(root) = db.head_root().map_err(read)? {
            let level = db.kv().read_node(&root).map_err(|e| read(e.into()))?.level;
            self.counts.tree_level_max = self.counts.tree_level_max.max(level);
        }
        Ok(())
    }

    /// A client of node `n` writes past a size limit (KV-15): the service must refuse it with
    /// a typed error and the node must be unchanged (nothing uncommitted, the same head).
    ///
    /// # Errors
    /// The write was accepted, or it changed the node.
    pub fn client_write_refused(
        &mut self,
        n: u32,
        path: &str,
        value: &[u8],
    ) -> Result<String, Broken> {
        const RULE: &str = "KV-15 a path or value past its limit is refused with a typed error and changes nothing";
        let node = &mut self.nodes[n as usize];
        let (head, uncommitted) = (node.db().head(), node.db().uncommitted());
        let answer = answer(node, KvRequest::Set(path.to_owned(), value.to_vec()));
        let KvResponse::Error(e) = answer else {
            return Err(Broken::new(
                RULE,
                format!(
                    "node {n}: a {}-byte path with a {}-byte value got {answer:?}",
                    path.len(),
                    value.len()
                ),
            ));
        };
        if node.db().head() != head || node.db().uncommitted() != uncommitted {
            return Err(Broken::new(
                RULE,
                format!("node {n}: the refused write changed the node ({e})"),
            ));
        }
        self.counts.limit_refusals += 1;
        Ok(format!(
            "node {n} refuses a {}-byte path with a {}-byte value: {e}",
            path.len(),
            value.len()
        ))
    }

    /// Node `n` crashes and restarts from its disk: uncommitted writes and in-flight fetches
    /// are lost.
    ///
    /// # Errors
    /// The persisted head could not be read back.
    pub fn crash(&mut self, n: u32) -> Result<(), Broken> {
        self.counts.crashes += 1;
        self.nodes[n as usize] = self.boot(n)?;
        self.dirty = true;
        Ok(())
    }

    /// Do all nodes have equal roots (GOS-5)?
    ///
    /// # Errors
    /// A node's root could not be read.
    pub fn converged(&mut self) -> Result<bool, Broken> {
        if self.dirty {
            let roots = self
                .nodes
                .iter()
                .map(|n| n.db().head_root())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| Broken::new("gossip: roots read", e.to_string()))?;
            self.converged = roots.windows(2).all(|w| w[0] == w[1]);
            self.dirty = false;
        }
        Ok(self.converged)
    }

    /// The final oracles (after the liveness phase): convergence, and every node's state of
    /// every written key is the spec's join of the acknowledged writes.
    ///
    /// # Errors
    /// The first broken rule.
    pub fn check(&mut self) -> Result<(), Broken> {
        if !self.converged()? {
            return Err(Broken::new(
                "GOS-5 all gossip nodes converge after the liveness phase",
                format!("{} nodes with different roots", self.node_count()),
            ));
        }
        let rule = match self.policy {
            MergePolicy::LastWriteWins => {
                "GOS-3 every node presents the spec's LWW winner of the acknowledged writes"
            }
            _ => "GOS-4 every acknowledged write not superseded is retained at every node",
        };
        for (path, writes) in &self.written {
            let want = expected(&self.policy, writes);
            for (i, n) in self.nodes.iter().enumerate() {
                let got = n
                    .db()
                    .state(path)
                    .map_err(|e| Broken::new("gossip: keys read", e.to_string()))?;
                if !same(&got, &want) {
                    return Err(Broken::new(
                        rule,
                        format!("node {i} key {path}: {got:?} is not the spec's join {want:?}"),
                    ));
                }
            }
        }
        Ok(())
    }
}
