//! The cell and store suites (`specs/conform.md`, CONF-5): seeded client workloads against
//! several processes of the implementation sharing one directory, SIGKILL and restart between
//! (and during) operations, histories judged by `cellar-model`.
//!
//! - `cell`: several clients at once, each operation recorded in a stateright
//!   `LinearizabilityTester` over [`CasRegister`] (CELL-1, CELL-2); a killed request is left
//!   open (it may or may not have happened) and its client continues as a new thread. The run
//!   ends by killing every process and reading through a fresh one, so an acknowledged swap
//!   lost across a restart makes the history unlinearizable.
//! - `store`: puts, gets, deletes and lists against a model of what was acknowledged: an
//!   acknowledged put stays readable until deleted, whatever was killed (STORE-1, nothing
//!   acknowledged lost); `get` returns only bytes that hash to the hash asked for (STORE-2);
//!   `list` is strictly ascending and holds exactly the blobs known present (STORE-4).
//!
//! Every choice the harness makes comes from the seed ([`SimRng`]).

use crate::conform::kinds::{hex, unhex};
use crate::conform::process::{Iut, ProcessError};
use crate::rng::SimRng;
use cellar_model::spec::{CasOp, CasRegister, CasRet};
use serde::Serialize;
use serde_json::{Value, json};
use stateright::semantics::{ConsistencyTester, LinearizabilityTester};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// How one seed of a suite runs.
#[derive(Debug, Clone)]
pub struct SuiteConfig {
    /// The implementation's command.
    pub cmd: String,
    /// Processes (clients) sharing the state directory.
    pub clients: usize,
    /// Operations per seed.
    pub ops: usize,
    /// Chance of a kill at each step, parts per million.
    pub kill_ppm: u32,
}

/// Most requests left open by kills in one cell history (bounds the linearizability search).
const OPEN_REQUESTS_MAX: usize = 4;

/// What one seed did and whether it passed.
#[derive(Debug, Clone, Serialize)]
pub struct SeedOutcome {
    /// The seed.
    pub seed: u64,
    /// Operations answered.
    pub ops: usize,
    /// Processes killed.
    pub kills: usize,
    /// Requests left open by a kill.
    pub open: usize,
    /// `None` if the seed passed, else why it failed.
    pub failure: Option<String>,
}

fn state_dir(suite: &str, seed: u64) -> PathBuf {
    std::env::temp_dir().join(format!("cellar-conform-{suite}-{}-{seed}", std::process::id()))
}

fn is_ok(v: &Value) -> bool {
    v.get("ok") == Some(&Value::Bool(true))
}

fn bytes_of(v: &Value, name: &str) -> Option<Vec<u8>> {
    v.get(name).and_then(Value::as_str).and_then(|s| unhex(s).ok())
}

struct Clients {
    cmd: String,
    dir: PathBuf,
    procs: Vec<Option<Iut>>,
    kills: usize,
}

impl Clients {
    fn start(cmd: &str, dir: &Path, n: usize) -> Result<Self, ProcessError> {
        std::fs::create_dir_all(dir)?;
        let mut procs = Vec::with_capacity(n);
        for _ in 0..n {
            procs.push(Some(Iut::start(cmd, dir)?));
        }
        Ok(Self { cmd: cmd.to_owned(), dir: dir.to_path_buf(), procs, kills: 0 })
    }

    fn get(&mut self, c: usize) -> Result<&mut Iut, ProcessError> {
        let slot = self.procs.get_mut(c).ok_or(ProcessError::Closed)?;
        if slot.is_none() {
            *slot = Some(Iut::start(&self.cmd, &self.dir)?);
        }
        slot.as_mut().ok_or(ProcessError::Closed)
    }

    /// SIGKILL client `c`; it is restarted on its next use.
    fn kill(&mut self, c: usize) {
        if let Some(p) = self.procs.get_mut(c).and_then(Option::take) {
            p.kill();
            self.kills += 1;
        }
    }

    fn finish(self) {
        for p in self.procs.into_iter().flatten() {
            p.finish();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs one seed of the cell suite.
pub fn cell_seed(cfg: &SuiteConfig, seed: u64) -> Result<SeedOutcome, ProcessError> {
    let mut rng = SimRng::new(seed);
    let dir = state_dir("cell", seed);
    let _ = std::fs::remove_dir_all(&dir);
    let n = cfg.clients.max(1);
    let mut clients = Clients::start(&cfg.cmd, &dir, n)?;
    let mut tester = LinearizabilityTester::new(CasRegister::new(Vec::new()));
    let mut thread: Vec<u64> = (0..n as u64).collect();
    let mut next_thread = n as u64;
    let mut seen: Vec<Vec<u8>> = vec![Vec::new(); n];
    let mut written: Vec<Vec<u8>> = vec![Vec::new()];
    let (mut ops, mut open) = (0usize, 0usize);
    let mut failure = None;
    for step in 0..cfg.ops {
        let mut batch: Vec<usize> = (0..n).collect();
        for i in (1..batch.len()).rev() {
            batch.swap(i, rng.below(i as u64 + 1) as usize);
        }
        batch.truncate(1 + rng.below(n as u64) as usize);
        let mut sent = Vec::new();
        for &c in &batch {
            let op = if rng.below(10) < 3 {
                CasOp::Read
            } else {
                let expected = if rng.below(10) < 7 {
                    seen[c].clone()
                } else {
                    written[rng.below(written.len() as u64) as usize].clone()
                };
                let new = format!("s{seed}-{step}-{c}").into_bytes();
                written.push(new.clone());
                CasOp::Cas { expected, new }
            };
            let req = match &op {
                CasOp::Read => json!({"type": "cell.read"}),
                CasOp::Cas { expected, new } => {
                    json!({"type": "cell.cas", "expected": hex(expected), "new": hex(new)})
                }
            };
            let _ = tester.on_invoke(thread[c], op);
            let id = clients.get(c)?.send(req)?;
            sent.push((c, id));
        }
        for (i, (c, id)) in sent.into_iter().enumerate() {
            if i == 0 && open < OPEN_REQUESTS_MAX && rng.chance_ppm(cfg.kill_ppm) {
                // Killed with the request in flight: it may or may not have happened.
                clients.kill(c);
                open += 1;
                thread[c] = next_thread;
                next_thread += 1;
                continue;
            }
            let answer = clients.get(c)?.receive(id)?;
            ops += 1;
            let ret = if is_ok(&answer) {
                match (bytes_of(&answer, "value"), bytes_of(&answer, "current")) {
                    (Some(v), _) => Some(CasRet::Read(v)),
                    (None, Some(cur)) => Some(CasRet::Cas {
                        swapped: answer.get("swapped") == Some(&Value::Bool(true)),
                        current: cur,
                    }),
                    _ => None,
                }
            } else {
                None
            };
            match ret {
                Some(r) => {
                    seen[c] = match &r {
                        CasRet::Read(v) | CasRet::Cas { current: v, .. } => v.clone(),
                    };
                    let _ = tester.on_return(thread[c], r);
                }
                None => {
                    // A refusal: treated as open (sound for definite errors too).
                    open += 1;
                    thread[c] = next_thread;
                    next_thread += 1;
                }
            }
        }
        if rng.chance_ppm(cfg.kill_ppm) {
            clients.kill(rng.below(n as u64) as usize);
        }
    }
    // Durability: kill everything, read through a fresh process.
    for c in 0..n {
        clients.kill(c);
    }
    let final_thread = next_thread;
    let _ = tester.on_invoke(final_thread, CasOp::Read);
    let answer = clients.get(0)?.call(json!({"type": "cell.read"}))?;
    match bytes_of(&answer, "value") {
        Some(v) => {
            let _ = tester.on_return(final_thread, CasRet::Read(v));
        }
        None => failure = Some(format!("the final read failed: {answer}")),
    }
    clients.kills = clients.kills.saturating_sub(n);
    let kills = clients.kills;
    clients.finish();
    if failure.is_none() && tester.serialized_history().is_none() {
        failure = Some(format!(
            "CELL-1: the history of {} operations is not linearizable against CasRegister \
             (or an acknowledged swap was lost across a restart)",
            tester.len()
        ));
    }
    Ok(SeedOutcome { seed, ops, kills, open, failure })
}

/// What the store model knows of a blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Known {
    Present,
    Absent,
    Unknown,
}

/// Runs one seed of the store suite.
pub fn store_seed(cfg: &SuiteConfig, seed: u64) -> Result<SeedOutcome, ProcessError> {
    let mut rng = SimRng::new(seed);
    let dir = state_dir("store", seed);
    let _ = std::fs::remove_dir_all(&dir);
    let n = cfg.clients.max(1);
    let mut clients = Clients::start(&cfg.cmd, &dir, n)?;
    let pool: Vec<Vec<u8>> = (0..12u64)
        .map(|i| {
            let mut b = vec![0u8; (i * 37 % 300) as usize];
            SimRng::new(seed ^ (i << 32)).fill(&mut b);
            b
        })
        .collect();
    let mut model: BTreeMap<[u8; 32], Known> = BTreeMap::new();
    let (mut ops, mut open) = (0usize, 0usize);
    let mut failure = None;
    for _ in 0..cfg.ops {
        let c = rng.below(n as u64) as usize;
        let data = &pool[rng.below(pool.len() as u64) as usize];
        let hash = *blake3::hash(data).as_bytes();
        let (req, what) = match rng.below(10) {
            0..=3 => (json!({"type": "store.put", "data": hex(data)}), "put"),
            4..=6 => (json!({"type": "store.get", "hash": hex(&hash)}), "get"),
            7 | 8 => (json!({"type": "store.delete", "hash": hex(&hash)}), "delete"),
            _ => (json!({"type": "store.list", "from": null, "limit": 100_000}), "list"),
        };
        let id = clients.get(c)?.send(req)?;
        if what != "get" && what != "list" && rng.chance_ppm(cfg.kill_ppm) {
            clients.kill(c);
            open += 1;
            model.insert(hash, Known::Unknown);
            continue;
        }
        let answer = clients.get(c)?.receive(id)?;
        ops += 1;
        failure = judge_store(what, &hash, data, &answer, &mut model);
        if failure.is_some() {
            break;
        }
        if rng.chance_ppm(cfg.kill_ppm) {
            clients.kill(rng.below(n as u64) as usize);
        }
    }
    let kills = clients.kills;
    clients.finish();
    Ok(SeedOutcome { seed, ops, kills, open, failure })
}

/// Checks one store answer against the model and updates it.
fn judge_store(
    what: &str,
    hash: &[u8; 32],
    data: &[u8],
    answer: &Value,
    model: &mut BTreeMap<[u8; 32], Known>,
) -> Option<String> {
    let known = model.get(hash).copied().unwrap_or(Known::Absent);
    let definite = answer.pointer("/error/definite") == Some(&Value::Bool(true));
    let kind = answer.pointer("/error/kind").and_then(Value::as_str).unwrap_or("");
    let h = hex(hash);
    match (what, is_ok(answer)) {
        ("put", true) => {
            if bytes_of(answer, "hash").as_deref() != Some(&hash[..]) {
                return Some(format!("STORE-1: put answered hash {answer}, not {h}"));
            }
            model.insert(*hash, Known::Present);
        }
        ("get", true) => {
            let got = bytes_of(answer, "data").unwrap_or_default();
            if blake3::hash(&got).as_bytes() != hash || got != data {
                return Some(format!("STORE-2: get {h} returned bytes that do not hash to it"));
            }
            if known == Known::Absent {
                return Some(format!("get {h} returned a blob that was deleted or never put"));
            }
        }
        ("get", false) if kind == "not_found" && known == Known::Present => {
            return Some(format!("acknowledged put of {h} lost: get answers not_found"));
        }
        ("delete", true) => {
            model.insert(*hash, Known::Absent);
        }
        ("list", true) => return judge_list(answer, model),
        (_, false) if !definite => {
            model.insert(*hash, Known::Unknown);
        }
        _ => {}
    }
    None
}

fn judge_list(answer: &Value, model: &BTreeMap<[u8; 32], Known>) -> Option<String> {
    let hashes: Vec<Vec<u8>> = answer
        .get("hashes")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|v| v.as_str().and_then(|s| unhex(s).ok())).collect())
        .unwrap_or_default();
    if hashes.windows(2).any(|w| w[0] >= w[1]) {
        return Some("STORE-4: list is not strictly ascending".to_owned());
    }
    for (h, k) in model {
        let listed = hashes.iter().any(|x| x[..] == h[..]);
        if *k == Known::Present && !listed {
            return Some(format!("acknowledged put of {} lost: not listed", hex(h)));
        }
        if *k == Known::Absent && listed {
            return Some(format!("deleted blob {} still listed", hex(h)));
        }
    }
    None
}

/// The summary table of a suite run.
pub fn table(suite: &str, outcomes: &[SeedOutcome]) -> String {
    let mut s = format!(
        "{:<8} {:>6} {:>6} {:>6} {:>6} {:>7}\n",
        "suite", "seed", "ops", "kills", "open", "result"
    );
    for o in outcomes {
        let r = if o.failure.is_none() { "ok" } else { "FAILED" };
        s.push_str(&format!(
            "{suite:<8} {:>6} {:>6} {:>6} {:>6} {r:>7}\n",
            o.seed, o.ops, o.kills, o.open
        ));
    }
    let failed = outcomes.iter().filter(|o| o.failure.is_some()).count();
    s.push_str(&format!(
        "{suite}: {} seeds, {} passed, {failed} failed\n",
        outcomes.len(),
        outcomes.len() - failed
    ));
    s
}
