//! The `gossip` model: N nodes write K keys and gossip over a lossy, reordering network
//! (GOS-1..GOS-7, `specs/gossip.md`).
//!
//! Every node keeps each key twice, once merged under `LastWriteWins` and once under
//! `KeepBoth` (`Custom` keeps the same siblings as `KeepBoth` and only reads them differently,
//! so it needs no separate copy). Both are functions of the set of writes seen, so checking them
//! side by side costs almost no extra states.
//!
//! Steps: a node writes a key (at most `writes` times per node; value = 10·(node+1) + n-th
//! write); a node starts a gossip round with a peer by sending an **announce** (its per-key
//! clocks) — modelled only when the peer lacks something and no round between them is in
//! flight, since a useless round changes nothing; the peer answers with a **want** listing the
//! keys whose announced clock it does not cover; the announcer answers with the **objects**
//! (its full state of those keys); the peer **merges** them. Any message may be delivered in any
//! order or lost (at most `losses` in total, so that gossip that "continues" eventually gets
//! through — the premise of GOS-5).
//!
//! Ghost state: every write ever made, so properties can ask "has this node seen w?" (its clock
//! covers w's clock). Keys are interchangeable: the symmetry representative is the least state
//! over all permutations of key indices.

use super::{ModelKind, SetupError, SizeKey, Sizes};
use crate::check::Explain;
use crate::spec::{ClockOrder, KeyState, MergePolicy, NodeId, VectorClock, Version, merge, write};
use stateright::{Model, Property};
use std::collections::BTreeSet;

/// `GOS-2` property name.
pub const PROP_GOS2: &str = "GOS-2 causality is respected";
/// `GOS-3` property name.
pub const PROP_GOS3: &str = "GOS-3 LWW picks the same winner at every node";
/// `GOS-4` property name.
pub const PROP_GOS4: &str = "GOS-4 nothing acknowledged is lost under KeepBoth";
/// `GOS-5` property name.
pub const PROP_GOS5: &str = "GOS-5 nodes converge once writes stop";

/// Size parameters.
pub const SIZE_KEYS: &[SizeKey] = &[
    SizeKey { key: "nodes", default: 3, min: 2, max: 4, what: "replicas" },
    SizeKey { key: "keys", default: 2, min: 1, max: 3, what: "keys" },
    SizeKey { key: "writes", default: 1, min: 0, max: 2, what: "local writes per node" },
    SizeKey { key: "losses", default: 1, min: 0, max: 2, what: "lost messages in total" },
    SizeKey { key: "rounds", default: 2, min: 1, max: 3, what: "gossip rounds in flight at once" },
];

/// Value written.
type Val = u8;

/// The gossip model's mutants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GossipMutant {
    /// `gossip:lww-by-arrival-order`.
    LwwByArrivalOrder,
    /// `gossip:lww-ignores-causality`.
    LwwIgnoresCausality,
    /// `gossip:keep-both-drops-sibling`.
    KeepBothDropsSibling,
}

/// The model's configuration.
#[derive(Clone, Debug)]
pub struct GossipModel {
    nodes: u8,
    keys: u8,
    writes: u8,
    losses: u8,
    rounds: u8,
    mutant: Option<GossipMutant>,
}

/// One key at one node, under both policies.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Replica {
    /// Merged under `LastWriteWins`.
    pub lww: KeyState<Val>,
    /// Merged under `KeepBoth`.
    pub both: KeyState<Val>,
}

impl Replica {
    fn clock(&self) -> VectorClock {
        self.lww.clock().join(self.both.clock())
    }
}

/// One node.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Node {
    /// Per key index.
    pub keys: Vec<Replica>,
    /// Local writes left.
    pub writes_left: u8,
}

/// A gossip message.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum GMsg {
    /// "Here is what I have seen": per key, the sender's clock.
    Announce {
        /// Sender.
        from: u8,
        /// Addressee.
        to: u8,
        /// Per key index, the sender's clock.
        digest: Vec<VectorClock>,
    },
    /// "Send me these keys."
    Want {
        /// Sender (the announce's addressee).
        from: u8,
        /// Addressee (the announcer).
        to: u8,
        /// Key indices, ascending.
        keys: Vec<u8>,
    },
    /// "Here they are."
    Objects {
        /// Sender (the announcer).
        from: u8,
        /// Addressee.
        to: u8,
        /// (key index, state), ascending by key.
        entries: Vec<(u8, Replica)>,
    },
}

impl GMsg {
    /// The (announcer, peer) pair of the round the message belongs to.
    fn round(&self) -> (u8, u8) {
        match self {
            GMsg::Announce { from, to, .. } | GMsg::Objects { from, to, .. } => (*from, *to),
            GMsg::Want { from, to, .. } => (*to, *from),
        }
    }
}

/// A state of the model.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GossipState {
    /// The replicas.
    pub nodes: Vec<Node>,
    /// Messages in flight.
    pub network: BTreeSet<GMsg>,
    /// Losses still allowed.
    pub losses_left: u8,
    /// Ghost: every write made, as (key index, version), ascending.
    pub writes: Vec<(u8, Version<Val>)>,
}

/// A step.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum GossipAction {
    /// Node writes key.
    Write(u8, u8),
    /// Node starts a gossip round with a peer.
    Announce(u8, u8),
    /// The network delivers a message.
    Deliver(GMsg),
    /// The network loses a message.
    Lose(GMsg),
}

fn show_versions(state: &KeyState<Val>) -> String {
    let vs: Vec<String> =
        state.versions().iter().map(|v| format!("{}@n{}", v.value, v.writer.0)).collect();
    if vs.is_empty() { "∅".to_string() } else { vs.join("|") }
}

fn show_clock(clock: &VectorClock) -> String {
    let es: Vec<String> = clock.entries().map(|(n, c)| format!("n{}:{c}", n.0)).collect();
    format!("[{}]", es.join(" "))
}

fn key_name(k: u8) -> char {
    char::from(b'x' + k)
}

impl GossipModel {
    /// The model at `sizes`, optionally mutated.
    ///
    /// # Errors
    /// [`SetupError::UnknownMutant`] for a mutant of another model.
    pub fn new(sizes: &Sizes, mutant: Option<&str>) -> Result<Self, SetupError> {
        let mutant = match mutant {
            None => None,
            Some("gossip:lww-by-arrival-order") => Some(GossipMutant::LwwByArrivalOrder),
            Some("gossip:lww-ignores-causality") => Some(GossipMutant::LwwIgnoresCausality),
            Some("gossip:keep-both-drops-sibling") => Some(GossipMutant::KeepBothDropsSibling),
            Some(other) => return Err(SetupError::UnknownMutant(other.to_string())),
        };
        debug_assert_eq!(sizes.kind(), ModelKind::Gossip);
        Ok(Self {
            nodes: sizes.get("nodes"),
            keys: sizes.get("keys"),
            writes: sizes.get("writes"),
            losses: sizes.get("losses"),
            rounds: sizes.get("rounds"),
            mutant,
        })
    }

    /// Merges `theirs` into `ours` under both policies (or the mutant's broken rule).
    fn merge(&self, ours: &Replica, theirs: &Replica) -> Replica {
        let concurrent = ours.lww.clock().compare(theirs.lww.clock()) == ClockOrder::Concurrent;
        let lww = match self.mutant {
            Some(GossipMutant::LwwByArrivalOrder) if concurrent => {
                // Take the arriving version, keep the joined clock.
                let joined = merge(&MergePolicy::KeepBoth, &ours.lww, &theirs.lww);
                joined.with_versions(theirs.lww.versions().to_vec())
            }
            Some(GossipMutant::LwwIgnoresCausality) => {
                let joined = merge(&MergePolicy::KeepBoth, &ours.lww, &theirs.lww);
                let best = ours
                    .lww
                    .versions()
                    .iter()
                    .chain(theirs.lww.versions())
                    .max_by(|a, b| (a.writer, a.value).cmp(&(b.writer, b.value)))
                    .cloned();
                joined.with_versions(best.into_iter().collect())
            }
            _ => merge(&MergePolicy::LastWriteWins, &ours.lww, &theirs.lww),
        };
        let both_concurrent =
            ours.both.clock().compare(theirs.both.clock()) == ClockOrder::Concurrent;
        let both = match self.mutant {
            Some(GossipMutant::KeepBothDropsSibling) if both_concurrent => {
                let joined = merge(&MergePolicy::KeepBoth, &ours.both, &theirs.both);
                joined.with_versions(ours.both.versions().to_vec())
            }
            _ => merge(&MergePolicy::KeepBoth, &ours.both, &theirs.both),
        };
        Replica { lww, both }
    }

    fn useful(s: &GossipState, from: u8, to: u8) -> bool {
        let (a, b) = (&s.nodes[usize::from(from)], &s.nodes[usize::from(to)]);
        a.keys.iter().zip(&b.keys).any(|(x, y)| !x.clock().is_covered_by(&y.clock()))
    }

    fn deliver(&self, s: &mut GossipState, msg: GMsg) {
        match msg {
            GMsg::Announce { from, to, digest } => {
                let local = &s.nodes[usize::from(to)];
                // GOS-6: want exactly the keys whose announced clock we do not cover.
                let keys: Vec<u8> = (0..self.keys)
                    .filter(|k| {
                        !digest[usize::from(*k)].is_covered_by(&local.keys[usize::from(*k)].clock())
                    })
                    .collect();
                if !keys.is_empty() {
                    s.network.insert(GMsg::Want { from: to, to: from, keys });
                }
            }
            GMsg::Want { from, to, keys } => {
                let node = &s.nodes[usize::from(to)];
                let entries =
                    keys.iter().map(|k| (*k, node.keys[usize::from(*k)].clone())).collect();
                s.network.insert(GMsg::Objects { from: to, to: from, entries });
            }
            GMsg::Objects { to, entries, .. } => {
                for (k, theirs) in entries {
                    let ours = &s.nodes[usize::from(to)].keys[usize::from(k)];
                    let merged = self.merge(ours, &theirs);
                    s.nodes[usize::from(to)].keys[usize::from(k)] = merged;
                }
            }
        }
    }

    fn seen<'a>(
        s: &'a GossipState,
        k: usize,
        clock: &'a VectorClock,
    ) -> impl Iterator<Item = &'a Version<Val>> {
        s.writes
            .iter()
            .filter(move |(wk, w)| usize::from(*wk) == k && w.clock.is_covered_by(clock))
            .map(|(_, w)| w)
    }

    fn permute(s: &GossipState, perm: &[u8]) -> GossipState {
        let map = |k: u8| perm[usize::from(k)];
        let mut out = s.clone();
        for (node, orig) in out.nodes.iter_mut().zip(&s.nodes) {
            for (k, replica) in orig.keys.iter().enumerate() {
                node.keys[usize::from(map(k as u8))] = replica.clone();
            }
        }
        out.network = s
            .network
            .iter()
            .map(|m| match m {
                GMsg::Announce { from, to, digest } => {
                    let mut d = digest.clone();
                    for (k, c) in digest.iter().enumerate() {
                        d[usize::from(map(k as u8))] = c.clone();
                    }
                    GMsg::Announce { from: *from, to: *to, digest: d }
                }
                GMsg::Want { from, to, keys } => {
                    let mut ks: Vec<u8> = keys.iter().map(|k| map(*k)).collect();
                    ks.sort_unstable();
                    GMsg::Want { from: *from, to: *to, keys: ks }
                }
                GMsg::Objects { from, to, entries } => {
                    let mut es: Vec<(u8, Replica)> =
                        entries.iter().map(|(k, r)| (map(*k), r.clone())).collect();
                    es.sort();
                    GMsg::Objects { from: *from, to: *to, entries: es }
                }
            })
            .collect();
        out.writes = s.writes.iter().map(|(k, w)| (map(*k), w.clone())).collect();
        out.writes.sort();
        out
    }
}

fn permutations(n: u8) -> Vec<Vec<u8>> {
    if n == 0 {
        return vec![Vec::new()];
    }
    let mut out = Vec::new();
    for p in permutations(n - 1) {
        for pos in 0..=p.len() {
            let mut q = p.clone();
            q.insert(pos, n - 1);
            out.push(q);
        }
    }
    out
}

impl Model for GossipModel {
    type State = GossipState;
    type Action = GossipAction;

    fn init_states(&self) -> Vec<GossipState> {
        let node = Node {
            keys: vec![Replica::default(); usize::from(self.keys)],
            writes_left: self.writes,
        };
        vec![GossipState {
            nodes: vec![node; usize::from(self.nodes)],
            network: BTreeSet::new(),
            losses_left: self.losses,
            writes: Vec::new(),
        }]
    }

    fn actions(&self, s: &GossipState, out: &mut Vec<GossipAction>) {
        // Each message belongs to exactly one round, so this counts rounds in flight.
        let room = s.network.len() < usize::from(self.rounds);
        for n in 0..self.nodes {
            if s.nodes[usize::from(n)].writes_left > 0 {
                out.extend((0..self.keys).map(|k| GossipAction::Write(n, k)));
            }
            for peer in (0..self.nodes).filter(|p| *p != n && room) {
                let busy = s.network.iter().any(|m| m.round() == (n, peer));
                if !busy && Self::useful(s, n, peer) {
                    out.push(GossipAction::Announce(n, peer));
                }
            }
        }
        for m in &s.network {
            out.push(GossipAction::Deliver(m.clone()));
            if s.losses_left > 0 {
                out.push(GossipAction::Lose(m.clone()));
            }
        }
    }

    fn next_state(&self, last: &GossipState, action: GossipAction) -> Option<GossipState> {
        let mut s = last.clone();
        match action {
            GossipAction::Write(n, k) => {
                let node = &mut s.nodes[usize::from(n)];
                let value = 10 * (n + 1) + (self.writes - node.writes_left);
                node.writes_left -= 1;
                let replica = &mut node.keys[usize::from(k)];
                let id = NodeId(u32::from(n));
                replica.lww = write(&replica.lww, id, value);
                replica.both = write(&replica.both, id, value);
                let version = replica.both.versions()[0].clone();
                s.writes.push((k, version));
                s.writes.sort();
            }
            GossipAction::Announce(from, to) => {
                let digest = s.nodes[usize::from(from)].keys.iter().map(Replica::clock).collect();
                s.network.insert(GMsg::Announce { from, to, digest });
            }
            GossipAction::Deliver(m) => {
                s.network.remove(&m);
                self.deliver(&mut s, m);
            }
            GossipAction::Lose(m) => {
                s.network.remove(&m);
                s.losses_left -= 1;
            }
        }
        Some(s)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always(PROP_GOS2, |_, s: &GossipState| {
                // No node presents a version causally before a write it has seen.
                s.nodes.iter().all(|node| {
                    node.keys.iter().enumerate().all(|(k, r)| {
                        [&r.lww, &r.both].iter().all(|st| {
                            st.versions().iter().all(|v| {
                                Self::seen(s, k, st.clock())
                                    .all(|w| v.clock.compare(&w.clock) != ClockOrder::Before)
                            })
                        })
                    })
                })
            }),
            Property::always(PROP_GOS3, |_, s: &GossipState| {
                s.nodes.iter().all(|node| {
                    node.keys.iter().enumerate().all(|(k, r)| {
                        // The winner is the seen write of greatest precedence…
                        let best = Self::seen(s, k, r.lww.clock()).max();
                        let ok = r.lww.versions().last() == best;
                        // …so nodes that have seen the same writes agree.
                        ok && s.nodes.iter().all(|other| {
                            let o = &other.keys[k].lww;
                            o.clock() != r.lww.clock() || o.versions() == r.lww.versions()
                        })
                    })
                })
            }),
            Property::always(PROP_GOS4, |_, s: &GossipState| {
                s.nodes.iter().all(|node| {
                    node.keys
                        .iter()
                        .enumerate()
                        .all(|(k, r)| Self::seen(s, k, r.both.clock()).all(|w| r.both.retains(w)))
                })
            }),
            Property::eventually(PROP_GOS5, |_, s: &GossipState| {
                s.network.is_empty()
                    && s.nodes.iter().all(|n| n.writes_left == 0)
                    && s.nodes.windows(2).all(|w| w[0].keys == w[1].keys)
            }),
            Property::sometimes("GOS-4 concurrent writes become siblings", |_, s: &GossipState| {
                s.nodes.iter().any(|n| n.keys.iter().any(|r| r.both.versions().len() > 1))
            }),
            Property::sometimes(
                "GOS-1 a write supersedes another node's write",
                |_, s: &GossipState| {
                    s.writes.iter().any(|(k1, a)| {
                        s.writes.iter().any(|(k2, b)| {
                            k1 == k2
                                && a.writer != b.writer
                                && a.clock.compare(&b.clock) == ClockOrder::Before
                        })
                    })
                },
            ),
        ]
    }
}

impl Explain for GossipModel {
    fn name(&self) -> &'static str {
        "gossip"
    }

    fn describe_step(&self, s: &GossipState, action: &GossipAction) -> String {
        match action {
            GossipAction::Write(n, k) => {
                let value = 10 * (n + 1) + (self.writes - s.nodes[usize::from(*n)].writes_left);
                format!("node {n} writes {}={value}", key_name(*k))
            }
            GossipAction::Announce(a, b) => format!("node {a} announces its clocks to node {b}"),
            GossipAction::Deliver(GMsg::Announce { from, to, digest }) => {
                let d: Vec<String> = digest.iter().map(show_clock).collect();
                format!("node {to} receives node {from}'s announce {}", d.join(" "))
            }
            GossipAction::Deliver(GMsg::Want { from, to, keys }) => {
                let ks: String = keys.iter().map(|k| key_name(*k)).collect();
                format!("node {to} receives node {from}'s want for keys {ks}")
            }
            GossipAction::Deliver(GMsg::Objects { from, to, entries }) => {
                let es: Vec<String> = entries
                    .iter()
                    .map(|(k, r)| {
                        let merged =
                            self.merge(&s.nodes[usize::from(*to)].keys[usize::from(*k)], r);
                        format!(
                            "{}: LWW {} + {} → {}, KeepBoth {} + {} → {}",
                            key_name(*k),
                            show_versions(&s.nodes[usize::from(*to)].keys[usize::from(*k)].lww),
                            show_versions(&r.lww),
                            show_versions(&merged.lww),
                            show_versions(&s.nodes[usize::from(*to)].keys[usize::from(*k)].both),
                            show_versions(&r.both),
                            show_versions(&merged.both),
                        )
                    })
                    .collect();
                format!("node {to} merges node {from}'s objects: {}", es.join("; "))
            }
            GossipAction::Lose(m) => {
                let (a, b) = m.round();
                let kind = match m {
                    GMsg::Announce { .. } => "announce",
                    GMsg::Want { .. } => "want",
                    GMsg::Objects { .. } => "objects",
                };
                format!("the network loses the {kind} of round node {a} → node {b}")
            }
        }
    }

    fn describe_state(&self, s: &GossipState) -> String {
        let nodes: Vec<String> = s
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let ks: Vec<String> = n
                    .keys
                    .iter()
                    .enumerate()
                    .map(|(k, r)| {
                        format!(
                            "{}: LWW {} KeepBoth {} clock {}",
                            key_name(k as u8),
                            show_versions(&r.lww),
                            show_versions(&r.both),
                            show_clock(&r.clock())
                        )
                    })
                    .collect();
                format!("node {i} {{{}}}", ks.join(", "))
            })
            .collect();
        format!("{}; {} message(s) in flight", nodes.join("; "), s.network.len())
    }

    fn representative(&self, s: &GossipState) -> GossipState {
        permutations(self.keys)
            .iter()
            .map(|p| Self::permute(s, p))
            .min()
            .unwrap_or_else(|| s.clone())
    }
}
