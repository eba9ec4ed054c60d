//! The members of a gossip run, as the harness sees them: a Rust [`GossipNode`] hosted
//! in-process, or a foreign node (a process speaking CONF-7's JSON lines). Both are driven the
//! same way: ticks, deliveries, client writes and commits, key states read back.

use crate::conform::kinds::{hex, unhex};
use crate::conform::process::{Iut, ProcessError};
use cellar::db::gossip::{GossipConfig, GossipNode, PeerId, encode_message};
use cellar::db::hkv::Hkv;
use cellar::db::merge::{KeyState, MergePolicy, NodeId, VectorClock};
use cellar::env::DetEntropy;
use cellar::storage::store::{MemStore, Store};
use serde_json::{Value, json};
use std::sync::Arc;

/// A clock as `[(node, count)]`, nodes ascending.
pub type Clock = Vec<(u32, u64)>;

/// One version of a key as a node presents it: value (`None`: tombstone), writer, clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenVersion {
    /// The value; `None` is a delete.
    pub value: Option<Vec<u8>>,
    /// The node that wrote it.
    pub writer: u32,
    /// The key's clock at the writer right after the write.
    pub clock: Clock,
}

/// A key's state as a node presents it (`kv.state`, KV-9's JSON form).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SeenState {
    /// The key's clock.
    pub clock: Clock,
    /// Versions in precedence order.
    pub versions: Vec<SeenVersion>,
}

/// A value for people: its text if printable ASCII, else hex; `tombstone` for a delete.
pub fn show_value(v: Option<&[u8]>) -> String {
    match v {
        None => "tombstone".to_owned(),
        Some(b) if !b.is_empty() && b.iter().all(|c| c.is_ascii_graphic()) => {
            String::from_utf8_lossy(b).into_owned()
        }
        Some(b) => format!("0x{}", hex(b)),
    }
}

fn show_clock(c: &Clock) -> String {
    let parts: Vec<String> = c.iter().map(|(n, k)| format!("{n}:{k}")).collect();
    format!("[{}]", parts.join(","))
}

impl std::fmt::Display for SeenState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let versions: Vec<String> = self
            .versions
            .iter()
            .map(|v| {
                format!(
                    "{} by {} at {}",
                    show_value(v.value.as_deref()),
                    v.writer,
                    show_clock(&v.clock)
                )
            })
            .collect();
        write!(f, "clock {} versions [{}]", show_clock(&self.clock), versions.join("; "))
    }
}

/// What `kv.get` answers: the value a reader sees and every sibling.
pub type SeenRead = (Option<Vec<u8>>, Vec<Option<Vec<u8>>>);

/// A message a member sends: destination and GW-1 bytes.
pub type Outgoing = (u32, Vec<u8>);

/// How a member failed to be driven (not a judgement of its state).
#[derive(Debug, thiserror::Error)]
pub enum MemberError {
    /// Talking to the foreign process failed.
    #[error(transparent)]
    Process(#[from] ProcessError),
    /// It answered a request with an error it should not have, or a malformed answer.
    #[error("{0}")]
    Answer(String),
    /// It answered `gossip.start` with `unsupported` (CONF-2: the suite is skipped).
    #[error("the implementation does not support gossip (gossip.start: unsupported)")]
    Unsupported,
}

/// Everything `gossip.start` carries.
#[derive(Debug, Clone)]
pub struct Start {
    /// This member's node number.
    pub node: u32,
    /// Every other member.
    pub peers: Vec<u32>,
    /// The group's salt (KV-3, KV-8).
    pub salt: [u8; 32],
    /// `true`: last writer wins; `false`: keep both.
    pub lww: bool,
    /// Seeds the node's peer selection.
    pub seed: u64,
    /// GW-4, GW-7 tunables.
    pub config: GossipConfig,
}

/// One member of the run.
pub enum Member {
    /// A Rust node in this process.
    Rust(Box<GossipNode>),
    /// A foreign node: an implementation process.
    Foreign(Iut),
}

fn clock_of(c: &VectorClock) -> Clock {
    c.entries().map(|(n, k)| (n.0, k)).collect()
}

fn seen_of(s: &KeyState) -> SeenState {
    SeenState {
        clock: clock_of(s.clock()),
        versions: s
            .versions()
            .iter()
            .map(|v| SeenVersion {
                value: v.value.clone(),
                writer: v.writer.0,
                clock: clock_of(&v.clock),
            })
            .collect(),
    }
}

fn bad(what: &str, v: &Value) -> MemberError {
    MemberError::Answer(format!("{what}: unexpected answer {v}"))
}

fn ok(v: Value, what: &str) -> Result<Value, MemberError> {
    if v.get("ok") == Some(&Value::Bool(true)) { Ok(v) } else { Err(bad(what, &v)) }
}

fn opt_bytes(v: &Value) -> Option<Option<Vec<u8>>> {
    match v {
        Value::Null => Some(None),
        Value::String(s) => unhex(s).ok().map(Some),
        _ => None,
    }
}

fn parse_clock(v: &Value) -> Option<Clock> {
    v.as_array()?
        .iter()
        .map(|e| {
            let pair = e.as_array()?;
            Some((u32::try_from(pair.first()?.as_u64()?).ok()?, pair.get(1)?.as_u64()?))
        })
        .collect()
}

fn parse_state(v: &Value) -> Option<SeenState> {
    let clock = parse_clock(v.get("clock")?)?;
    let versions = v
        .get("versions")?
        .as_array()?
        .iter()
        .map(|x| {
            Some(SeenVersion {
                value: opt_bytes(x.get("value")?)?,
                writer: u32::try_from(x.get("writer")?.as_u64()?).ok()?,
                clock: parse_clock(x.get("clock")?)?,
            })
        })
        .collect::<Option<Vec<_>>>()?;
    Some(SeenState { clock, versions })
}

fn parse_sends(v: &Value, what: &str) -> Result<Vec<Outgoing>, MemberError> {
    let list = v.get("send").and_then(Value::as_array).ok_or_else(|| bad(what, v))?;
    list.iter()
        .map(|s| {
            let to = s.get("to").and_then(Value::as_u64).and_then(|t| u32::try_from(t).ok());
            let bytes = s.get("message").and_then(Value::as_str).and_then(|m| unhex(m).ok());
            to.zip(bytes).ok_or_else(|| bad(what, v))
        })
        .collect()
}

fn rust_sends(envs: Vec<cellar::db::gossip::Envelope>) -> Result<Vec<Outgoing>, MemberError> {
    envs.into_iter()
        .map(|e| {
            encode_message(&e.message)
                .map(|b| (e.to.0, b))
                .map_err(|e| MemberError::Answer(e.to_string()))
        })
        .collect()
}

impl Member {
    /// A fresh Rust node.
    pub fn rust(s: &Start) -> Member {
        let store = Arc::new(MemStore::new()) as Arc<dyn Store>;
        let policy = if s.lww { MergePolicy::LastWriteWins } else { MergePolicy::KeepBoth };
        let db = Hkv::new(store, s.salt, NodeId(s.node), policy, None);
        let peers = s.peers.iter().map(|p| PeerId(*p)).collect();
        let entropy = Arc::new(DetEntropy::new(s.seed));
        Member::Rust(Box::new(GossipNode::new(db, peers, entropy, s.config)))
    }

    /// A foreign node: starts `cmd` and sends it `gossip.start`.
    pub fn foreign(cmd: &str, dir: &std::path::Path, s: &Start) -> Result<Member, MemberError> {
        std::fs::create_dir_all(dir).map_err(ProcessError::Io)?;
        let mut iut = Iut::start(cmd, dir)?;
        let r = iut.call(json!({"type": "gossip.start", "node": s.node, "peers": s.peers,
            "salt": hex(&s.salt), "policy": if s.lww { "lww" } else { "keep_both" },
            "seed": s.seed, "announce_interval_ms": s.config.announce_interval_ms,
            "fanout": s.config.fanout, "fetch_timeout_ms": s.config.fetch_timeout_ms}))?;
        if r.pointer("/error/kind").and_then(Value::as_str) == Some("unsupported") {
            iut.finish();
            return Err(MemberError::Unsupported);
        }
        ok(r, "gossip.start")?;
        Ok(Member::Foreign(iut))
    }

    /// Is it a foreign node?
    pub fn is_foreign(&self) -> bool {
        matches!(self, Member::Foreign(_))
    }

    /// Advances its time: what it sends.
    pub fn tick(&mut self, now_ms: u64) -> Result<Vec<Outgoing>, MemberError> {
        match self {
            Member::Rust(n) => {
                rust_sends(n.tick(now_ms).map_err(|e| MemberError::Answer(e.to_string()))?)
            }
            Member::Foreign(p) => {
                let v =
                    ok(p.call(json!({"type": "gossip.tick", "now_ms": now_ms}))?, "gossip.tick")?;
                parse_sends(&v, "gossip.tick")
            }
        }
    }

    /// Hands it a message from `from`: what it sends back, or `None` if it refused the message
    /// (`rejected` or `bad_message`, CONF-7: counted, not judged; the network may have delayed
    /// it past its fetch).
    pub fn deliver(
        &mut self,
        from: u32,
        bytes: &[u8],
        now_ms: u64,
    ) -> Result<Option<Vec<Outgoing>>, MemberError> {
        match self {
            Member::Rust(n) => match n.handle_bytes(PeerId(from), bytes, now_ms) {
                Ok(h) => rust_sends(h.replies).map(Some),
                Err(_) => Ok(None),
            },
            Member::Foreign(p) => {
                let v = p.call(json!({"type": "gossip.deliver", "from": from,
                    "message": hex(bytes), "now_ms": now_ms}))?;
                let kind = v.pointer("/error/kind").and_then(Value::as_str);
                if matches!(kind, Some("rejected" | "bad_message")) {
                    return Ok(None);
                }
                parse_sends(&ok(v, "gossip.deliver")?, "gossip.deliver").map(Some)
            }
        }
    }

    /// A client writes `value` (`None`: deletes) at `key` and commits.
    pub fn write_commit(&mut self, key: &str, value: Option<&[u8]>) -> Result<(), MemberError> {
        match self {
            Member::Rust(n) => {
                let db = n.db_mut();
                let r = match value {
                    Some(v) => db.set(key, v),
                    None => db.delete(key),
                };
                r.map_err(|e| MemberError::Answer(e.to_string()))?;
                db.commit("write").map_err(|e| MemberError::Answer(e.to_string()))?;
                n.announce_soon();
                Ok(())
            }
            Member::Foreign(p) => {
                let req = match value {
                    Some(v) => json!({"type": "kv.set", "key": key, "value": hex(v)}),
                    None => json!({"type": "kv.delete", "key": key}),
                };
                ok(p.call(req)?, "kv.set/kv.delete")?;
                ok(p.call(json!({"type": "kv.commit", "message": "write"}))?, "kv.commit")?;
                Ok(())
            }
        }
    }

    /// The key's state (`None`: never written nor merged).
    pub fn state(&mut self, key: &str) -> Result<Option<SeenState>, MemberError> {
        match self {
            Member::Rust(n) => {
                let s = n.db().state(key).map_err(|e| MemberError::Answer(e.to_string()))?;
                Ok((!s.versions().is_empty()).then(|| seen_of(&s)))
            }
            Member::Foreign(p) => {
                let v = ok(p.call(json!({"type": "kv.state", "key": key}))?, "kv.state")?;
                match v.get("state") {
                    Some(Value::Null) => Ok(None),
                    Some(s) => parse_state(s).map(Some).ok_or_else(|| bad("kv.state", &v)),
                    None => Err(bad("kv.state", &v)),
                }
            }
        }
    }

    /// What a reader of `key` sees.
    pub fn read(&mut self, key: &str) -> Result<SeenRead, MemberError> {
        match self {
            Member::Rust(n) => {
                let e = |e: cellar::db::hkv::HkvError| MemberError::Answer(e.to_string());
                Ok((n.db().get(key).map_err(e)?, n.db().siblings(key).map_err(e)?))
            }
            Member::Foreign(p) => {
                let v = ok(p.call(json!({"type": "kv.get", "key": key}))?, "kv.get")?;
                let value = v.get("value").and_then(opt_bytes);
                let siblings = v
                    .get("siblings")
                    .and_then(Value::as_array)
                    .and_then(|a| a.iter().map(opt_bytes).collect::<Option<Vec<_>>>());
                value.zip(siblings).ok_or_else(|| bad("kv.get", &v))
            }
        }
    }

    /// Stops a foreign node (closes its input).
    pub fn finish(self) {
        if let Member::Foreign(p) = self {
            p.finish();
        }
    }
}
