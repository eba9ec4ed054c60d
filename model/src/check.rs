//! An exhaustive, level-synchronous breadth-first checker for the models in [`crate::models`].
//!
//! Why not stateright's own `spawn_bfs`? In stateright 0.31 the BFS checker ignores
//! `symmetry()` (only DFS and simulation honour it) and a later violating state overwrites an
//! earlier discovery, so its counterexamples are not the shortest. This checker explores the
//! same [`Model`] (same `init_states`/`actions`/`next_state`/`properties`, same property
//! semantics) one depth level at a time, so the first discovery of each property is at the
//! smallest depth, and it deduplicates states by the fingerprint of their symmetry
//! representative ([`Explain::representative`]) while expanding the concrete state it met
//! first — so counterexamples read in the concrete holders' own names.
//!
//! Property semantics match stateright's: `always` fails at the first state where it is false;
//! `sometimes` is found at the first state where it is true; `eventually` fails at a terminal
//! state (no successor at all) reached by a path on which it never held.
//!
//! Owns no spec rules. Reads the clock only to report elapsed seconds; spawns only the scoped
//! worker threads the caller asks for.

use stateright::{Expectation, Model};
use std::collections::HashMap;
use std::fmt::Debug;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// Number of shards of the visited-state table (reduces lock contention between workers).
const SEEN_SHARDS_COUNT: usize = 64;
/// Worker threads accepted at most.
pub const THREADS_MAX: usize = 64;
/// Properties per model at most (eventually-bits live in a `u64`).
const PROPERTIES_MAX: usize = 64;

/// What the checker needs beyond [`Model`]: the model's own words for steps and states, and
/// its symmetry.
pub trait Explain: Model {
    /// The model's name (`cell`, `volume`, `gossip`).
    fn name(&self) -> &'static str;
    /// One counterexample step, e.g. "cleaner 2 deletes blob b0".
    fn describe_step(&self, state: &Self::State, action: &Self::Action) -> String;
    /// A one-paragraph summary of a state, shown after the last step.
    fn describe_state(&self, state: &Self::State) -> String;
    /// The representative of the state's symmetry class (identity when the model has none).
    fn representative(&self, state: &Self::State) -> Self::State;
}

/// How to run the checker.
#[derive(Clone, Copy, Debug)]
pub struct CheckOptions {
    /// Worker threads, 1..=[`THREADS_MAX`]. Results other than timing do not depend on it.
    pub threads: usize,
    /// Deduplicate by symmetry representative.
    pub symmetry: bool,
    /// Stop after the depth level at which this property is first violated (used for
    /// mutants: their counterexample stays the shortest, the rest of the space is skipped).
    pub stop_when_violated: Option<&'static str>,
}

impl Default for CheckOptions {
    fn default() -> Self {
        Self { threads: 1, symmetry: true, stop_when_violated: None }
    }
}

/// A path from an initial state, in the model's own words.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Trace {
    /// Steps, first to last.
    pub steps: Vec<String>,
    /// The last state reached.
    pub final_state: String,
}

/// One property's result.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Verdict {
    /// The property's name, starting with its spec ID.
    pub name: &'static str,
    /// `always`, `sometimes` or `eventually`.
    pub kind: &'static str,
    /// Always/eventually: no counterexample. Sometimes: an example was found.
    pub holds: bool,
    /// False if checking stopped before this property was settled either way.
    pub decided: bool,
    /// The shortest counterexample (always/eventually) or example (sometimes).
    pub trace: Option<Trace>,
}

/// The result of checking one model.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Report {
    /// The model's name.
    pub model: &'static str,
    /// States generated, including re-visits.
    pub states_generated: u64,
    /// Distinct states (after symmetry reduction).
    pub unique_states: u64,
    /// Steps on the longest shortest path from an initial state.
    pub max_depth: u64,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Per property, in the model's order.
    pub properties: Vec<Verdict>,
    /// False if checking stopped early (every property already decided, or the property in
    /// [`CheckOptions::stop_when_violated`] failed); unfound `sometimes` are then undecided.
    pub exhaustive: bool,
}

impl Report {
    /// True if no property is known to fail.
    pub fn passed(&self) -> bool {
        self.properties.iter().all(|v| v.holds || !v.decided)
    }

    /// States generated per second.
    pub fn states_per_second(&self) -> f64 {
        if self.seconds > 0.0 { self.states_generated as f64 / self.seconds } else { 0.0 }
    }

    /// The verdict of the property named `name`.
    pub fn verdict(&self, name: &str) -> Option<&Verdict> {
        self.properties.iter().find(|v| v.name == name)
    }
}

/// Where a state was first reached from.
#[derive(Clone, Copy)]
struct Parent {
    /// Fingerprint of the parent, or `None` for an initial state.
    parent: Option<u64>,
    /// Index of the action in the parent's `actions` (or of the initial state).
    index: u32,
}

struct Node<S> {
    state: S,
    fingerprint: u64,
    /// Eventually-properties not yet satisfied on the path to this node.
    pending: u64,
}

/// What one worker found in one level.
struct LevelOut<S> {
    next: Vec<Node<S>>,
    generated: u64,
    /// (property index, fingerprint of the state that discovered it).
    found: Vec<(usize, u64)>,
}

fn fingerprint<T: Hash>(value: &T) -> u64 {
    let mut hasher = DefaultHasher::new();
    value.hash(&mut hasher);
    hasher.finish()
}

struct Seen {
    shards: Vec<Mutex<HashMap<u64, Parent>>>,
}

impl Seen {
    fn new() -> Self {
        Self { shards: (0..SEEN_SHARDS_COUNT).map(|_| Mutex::new(HashMap::new())).collect() }
    }

    fn shard(&self, fp: u64) -> &Mutex<HashMap<u64, Parent>> {
        &self.shards[(fp % SEEN_SHARDS_COUNT as u64) as usize]
    }

    /// Records `fp` if new; true if it was.
    fn insert(&self, fp: u64, parent: Parent) -> bool {
        let mut shard = self.shard(fp).lock().unwrap_or_else(|e| e.into_inner());
        match shard.entry(fp) {
            std::collections::hash_map::Entry::Occupied(_) => false,
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(parent);
                true
            }
        }
    }

    fn get(&self, fp: u64) -> Option<Parent> {
        self.shard(fp).lock().unwrap_or_else(|e| e.into_inner()).get(&fp).copied()
    }

    fn len(&self) -> u64 {
        self.shards.iter().map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).len() as u64).sum()
    }
}

/// Explores every reachable state of `model` breadth first and reports each property.
///
/// # Panics
/// If the model has more than 64 properties (a programming error in this crate).
pub fn check<M>(model: &M, options: CheckOptions) -> Report
where
    M: Explain + Sync,
    M::State: Clone + Hash + Send + Sync + Debug,
    M::Action: Clone + Debug,
{
    let started = Instant::now();
    let properties = model.properties();
    assert!(properties.len() <= PROPERTIES_MAX, "at most {PROPERTIES_MAX} properties");
    let threads = options.threads.clamp(1, THREADS_MAX);
    let key = |s: &M::State| {
        if options.symmetry { fingerprint(&model.representative(s)) } else { fingerprint(s) }
    };
    let all_eventually = properties
        .iter()
        .enumerate()
        .filter(|(_, p)| p.expectation == Expectation::Eventually)
        .fold(0u64, |bits, (i, _)| bits | (1 << i));
    let seen = Seen::new();
    let mut frontier = Vec::new();
    for (index, state) in model.init_states().into_iter().enumerate() {
        let fp = key(&state);
        let index = u32::try_from(index).unwrap_or(u32::MAX);
        if seen.insert(fp, Parent { parent: None, index }) {
            frontier.push(Node { state, fingerprint: fp, pending: all_eventually });
        }
    }
    let mut generated = frontier.len() as u64;
    let mut discoveries: Vec<Option<u64>> = vec![None; properties.len()];
    let discovered: Vec<AtomicBool> = properties.iter().map(|_| AtomicBool::new(false)).collect();
    let mut depth = 0u64;
    let mut exhaustive = true;
    while !frontier.is_empty() {
        let outs = run_level(model, &properties, &frontier, threads, &seen, &discovered, &key);
        let mut next = Vec::new();
        let mut found: Vec<(usize, u64)> = Vec::new();
        for out in outs {
            generated += out.generated;
            next.extend(out.next);
            found.extend(out.found);
        }
        // Among discoveries at the same (smallest) depth, pick one that does not depend on
        // thread scheduling: the smallest fingerprint.
        found.sort_unstable();
        for (i, fp) in found {
            if discoveries[i].is_none() {
                discoveries[i] = Some(fp);
                discovered[i].store(true, Ordering::Relaxed);
            }
        }
        let target_found = options.stop_when_violated.is_some_and(|name| {
            properties.iter().zip(&discoveries).any(|(p, d)| {
                p.name == name && d.is_some() && p.expectation != Expectation::Sometimes
            })
        });
        if discoveries.iter().all(Option::is_some) || target_found {
            exhaustive = next.is_empty();
            break;
        }
        if !next.is_empty() {
            depth += 1;
        }
        frontier = next;
    }
    let verdicts = properties
        .iter()
        .zip(&discoveries)
        .map(|(p, d)| {
            let trace = d.map(|fp| trace(model, &seen, fp));
            let (kind, holds) = match p.expectation {
                Expectation::Always => ("always", d.is_none()),
                Expectation::Eventually => ("eventually", d.is_none()),
                Expectation::Sometimes => ("sometimes", d.is_some()),
            };
            Verdict { name: p.name, kind, holds, decided: exhaustive || d.is_some(), trace }
        })
        .collect();
    Report {
        model: model.name(),
        states_generated: generated,
        unique_states: seen.len(),
        max_depth: depth,
        seconds: started.elapsed().as_secs_f64(),
        properties: verdicts,
        exhaustive,
    }
}

fn run_level<M, K>(
    model: &M,
    properties: &[stateright::Property<M>],
    frontier: &[Node<M::State>],
    threads: usize,
    seen: &Seen,
    discovered: &[AtomicBool],
    key: &K,
) -> Vec<LevelOut<M::State>>
where
    M: Explain + Sync,
    M::State: Clone + Hash + Send + Sync,
    K: Fn(&M::State) -> u64 + Sync,
{
    let chunk = frontier.len().div_ceil(threads).max(1);
    if threads == 1 || frontier.len() < 2 * threads {
        return vec![expand_chunk(model, properties, frontier, seen, discovered, key)];
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = frontier
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || expand_chunk(model, properties, part, seen, discovered, key))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| match h.join() {
                Ok(out) => out,
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    })
}

fn expand_chunk<M, K>(
    model: &M,
    properties: &[stateright::Property<M>],
    part: &[Node<M::State>],
    seen: &Seen,
    discovered: &[AtomicBool],
    key: &K,
) -> LevelOut<M::State>
where
    M: Explain,
    M::State: Clone + Hash,
    K: Fn(&M::State) -> u64,
{
    let mut out = LevelOut { next: Vec::new(), generated: 0, found: Vec::new() };
    let mut actions = Vec::new();
    for node in part {
        let mut pending = node.pending;
        for (i, p) in properties.iter().enumerate() {
            if discovered[i].load(Ordering::Relaxed) && p.expectation != Expectation::Eventually {
                continue;
            }
            let holds = (p.condition)(model, &node.state);
            match p.expectation {
                Expectation::Always if !holds => out.found.push((i, node.fingerprint)),
                Expectation::Sometimes if holds => out.found.push((i, node.fingerprint)),
                Expectation::Eventually if holds => pending &= !(1 << i),
                _ => {}
            }
        }
        let mut terminal = true;
        model.actions(&node.state, &mut actions);
        for (index, action) in actions.drain(..).enumerate() {
            let Some(next) = model.next_state(&node.state, action) else { continue };
            terminal = false;
            out.generated += 1;
            let fp = key(&next);
            let index = u32::try_from(index).unwrap_or(u32::MAX);
            if seen.insert(fp, Parent { parent: Some(node.fingerprint), index }) {
                out.next.push(Node { state: next, fingerprint: fp, pending });
            }
        }
        if terminal {
            out.found.extend(
                (0..properties.len())
                    .filter(|i| pending & (1 << i) != 0)
                    .map(|i| (i, node.fingerprint)),
            );
        }
    }
    out
}

/// Rebuilds the path to `fp` by replaying recorded action indices from the initial state.
fn trace<M>(model: &M, seen: &Seen, fp: u64) -> Trace
where
    M: Explain,
    M::State: Clone + Hash,
    M::Action: Clone,
{
    let mut indices = Vec::new();
    let mut at = seen.get(fp);
    let mut init_index = 0u32;
    while let Some(p) = at {
        match p.parent {
            Some(parent) => {
                indices.push(p.index);
                at = seen.get(parent);
            }
            None => {
                init_index = p.index;
                at = None;
            }
        }
    }
    indices.reverse();
    let inits = model.init_states();
    let Some(mut state) = inits.into_iter().nth(init_index as usize) else {
        return Trace { steps: Vec::new(), final_state: String::from("(no initial state)") };
    };
    let mut steps = Vec::new();
    let mut actions = Vec::new();
    for index in indices {
        actions.clear();
        model.actions(&state, &mut actions);
        let Some(action) = actions.get(index as usize).cloned() else { break };
        steps.push(model.describe_step(&state, &action));
        match model.next_state(&state, action) {
            Some(next) => state = next,
            None => break,
        }
    }
    Trace { steps, final_state: model.describe_state(&state) }
}
