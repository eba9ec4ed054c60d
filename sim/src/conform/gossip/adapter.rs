//! The adapter's gossip node (`specs/conform.md`, CONF-7): `gossip.start`, `gossip.tick`,
//! `gossip.deliver` and the `kv.*` requests answered by the same sans-IO
//! `cellar::db::gossip::GossipNode` that `cellar node` runs, over an in-memory store; the
//! harness is its network. Two planted bugs (`lww-by-arrival-order`, `drops-deletes`) make it
//! deliberately wrong for `cellar conform gossip` to catch.

use crate::conform::adapter::AdapterBug;
use crate::conform::formats::key_state_json;
use crate::conform::kinds::{hex, unhex};
use cellar::db::gossip::{Envelope, GossipConfig, GossipError, GossipNode, PeerId, encode_message};
use cellar::db::hkv::{Hkv, HkvError};
use cellar::db::merge::{MergeOutcome, MergePolicy, NodeId};
use cellar::db::snapshot;
use cellar::env::DetEntropy;
use cellar::storage::store::{MemStore, Store};
use serde_json::{Value, json};
use std::sync::Arc;

/// The adapter's gossip node, once `gossip.start` made it.
#[derive(Default)]
pub struct GossipState {
    node: Option<GossipNode>,
}

fn err(kind: &str, definite: bool, message: String) -> Value {
    json!({"ok": false, "error": {"kind": kind, "definite": definite, "message": message}})
}

fn bad(message: &str) -> Value {
    err("bad_request", true, message.to_owned())
}

fn u64_field(req: &Value, name: &str) -> Result<u64, Value> {
    req.get(name).and_then(Value::as_u64).ok_or_else(|| bad(&format!("{name}: an integer")))
}

fn u32_field(req: &Value, name: &str) -> Result<u32, Value> {
    u32::try_from(u64_field(req, name)?).map_err(|_| bad(&format!("{name}: over u32")))
}

fn str_field<'a>(req: &'a Value, name: &str) -> Result<&'a str, Value> {
    req.get(name).and_then(Value::as_str).ok_or_else(|| bad(&format!("{name}: a string")))
}

fn bytes_field(req: &Value, name: &str) -> Result<Vec<u8>, Value> {
    unhex(str_field(req, name)?).map_err(|f| bad(&format!("{name}: {}", f.message)))
}

/// CONF-7's error kinds of the KV: `bad_path` (KV-15), `too_large`, `io` otherwise.
fn hkv_err(e: &HkvError) -> Value {
    match e {
        HkvError::BadPath { .. } => err("bad_path", true, e.to_string()),
        HkvError::ValueTooLarge { .. } | HkvError::TooManyUncommitted => {
            err("too_large", true, e.to_string())
        }
        _ => err("io", false, e.to_string()),
    }
}

/// CONF-7's error kinds of `gossip.deliver`: a message that does not decode (GW-1..GW-3) is
/// `bad_message`, one the node refuses (GW-5) `rejected`; both definite.
fn gossip_err(e: &GossipError) -> Value {
    match e {
        GossipError::Wire(_) => err("bad_message", true, e.to_string()),
        GossipError::UnwantedBlob(_) | GossipError::Corrupt { .. } => {
            err("rejected", true, e.to_string())
        }
        _ => err("io", false, e.to_string()),
    }
}

fn sends(envs: Vec<Envelope>) -> Result<Value, Value> {
    let mut out = Vec::with_capacity(envs.len());
    for e in envs {
        let bytes = encode_message(&e.message).map_err(|e| err("io", true, e.to_string()))?;
        out.push(json!({"to": e.to.0, "message": hex(&bytes)}));
    }
    Ok(json!({"send": out}))
}

impl GossipState {
    fn node(&mut self) -> Result<&mut GossipNode, Value> {
        self.node.as_mut().ok_or_else(|| bad("no gossip.start yet"))
    }

    /// Answers a gossip or kv request (`None`: not one of them). The caller adds the id.
    pub fn answer(&mut self, kind: &str, req: &Value, bugs: &[AdapterBug]) -> Option<Value> {
        let r = match kind {
            "gossip.start" => self.start(req),
            "gossip.tick" => u64_field(req, "now_ms")
                .and_then(|now| self.node()?.tick(now).map_err(|e| gossip_err(&e)))
                .and_then(sends),
            "gossip.deliver" => self.deliver(req, bugs),
            "kv.set" => str_field(req, "key").and_then(|k| {
                let v = bytes_field(req, "value")?;
                self.node()?.db_mut().set(k, &v).map_err(|e| hkv_err(&e)).map(|()| json!({}))
            }),
            "kv.delete" => str_field(req, "key").and_then(|k| {
                self.node()?.db_mut().delete(k).map_err(|e| hkv_err(&e)).map(|()| json!({}))
            }),
            "kv.get" => str_field(req, "key").and_then(|k| {
                let db = self.node()?.db();
                let value = db.get(k).map_err(|e| hkv_err(&e))?;
                let siblings = db.siblings(k).map_err(|e| hkv_err(&e))?;
                let hexes: Vec<Value> = siblings
                    .iter()
                    .map(|s| s.as_deref().map_or(Value::Null, |b| hex(b).into()))
                    .collect();
                Ok(json!({"value": value.as_deref().map(hex), "siblings": hexes}))
            }),
            "kv.state" => str_field(req, "key").and_then(|k| {
                let s = self.node()?.db().state(k).map_err(|e| hkv_err(&e))?;
                let state = if s.versions().is_empty() { Value::Null } else { key_state_json(&s) };
                Ok(json!({"state": state}))
            }),
            "kv.commit" => str_field(req, "message").and_then(|m| {
                let node = self.node()?;
                let head = node.db_mut().commit(m).map_err(|e| hkv_err(&e))?;
                node.announce_soon();
                Ok(json!({"head": head.to_string()}))
            }),
            _ => return None,
        };
        Some(r.map_or_else(
            |e| e,
            |mut v| {
                if let Some(o) = v.as_object_mut() {
                    o.insert("ok".to_owned(), Value::Bool(true));
                }
                v
            },
        ))
    }

    fn start(&mut self, req: &Value) -> Result<Value, Value> {
        let me = u32_field(req, "node")?;
        let peers = req
            .get("peers")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("peers: an array"))?
            .iter()
            .map(|p| p.as_u64().and_then(|p| u32::try_from(p).ok()).map(PeerId))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| bad("peers: node numbers"))?;
        let salt: [u8; 32] =
            bytes_field(req, "salt")?.try_into().map_err(|_| bad("salt: 32 bytes"))?;
        let policy = match str_field(req, "policy")? {
            "lww" => MergePolicy::LastWriteWins,
            "keep_both" => MergePolicy::KeepBoth,
            other => return Err(err("unsupported", true, format!("policy {other}"))),
        };
        let config = GossipConfig {
            announce_interval_ms: u64_field(req, "announce_interval_ms")?,
            fanout: usize::try_from(u64_field(req, "fanout")?).map_err(|_| bad("fanout"))?,
            fetch_timeout_ms: u64_field(req, "fetch_timeout_ms")?,
        };
        let seed = u64_field(req, "seed")?;
        let store = Arc::new(MemStore::new()) as Arc<dyn Store>;
        let db = Hkv::new(store, salt, NodeId(me), policy, None);
        self.node = Some(GossipNode::new(db, peers, Arc::new(DetEntropy::new(seed)), config));
        Ok(json!({}))
    }

    fn deliver(&mut self, req: &Value, bugs: &[AdapterBug]) -> Result<Value, Value> {
        let from = PeerId(u32_field(req, "from")?);
        let now = u64_field(req, "now_ms")?;
        let bytes = bytes_field(req, "message")?;
        let node = self.node()?;
        let drops_deletes = bugs.contains(&AdapterBug::DropsDeletes);
        let live = if drops_deletes {
            live_values(node.db()).map_err(|e| hkv_err(&e))?
        } else {
            Vec::new()
        };
        let handled = node.handle_bytes(from, &bytes, now).map_err(|e| gossip_err(&e))?;
        if let Some(outcome) = &handled.merged {
            if bugs.contains(&AdapterBug::LwwByArrivalOrder) {
                adopt_theirs(node, outcome).map_err(|e| hkv_err(&e))?;
            }
            if drops_deletes {
                resurrect(node, &live).map_err(|e| hkv_err(&e))?;
            }
        }
        sends(handled.replies)
    }
}

/// Every live key with the value a reader sees.
fn live_values(db: &Hkv) -> Result<Vec<(String, Vec<u8>)>, HkvError> {
    let mut out = Vec::new();
    for k in db.list_recursive("/")? {
        if let Some(v) = db.get(&k)? {
            out.push((k, v));
        }
    }
    Ok(out)
}

/// Planted `lww-by-arrival-order`: after a merge, the node keeps the head that just arrived
/// (a merge snapshot's second parent), whatever it held: every key takes "theirs".
fn adopt_theirs(node: &mut GossipNode, outcome: &MergeOutcome) -> Result<(), HkvError> {
    if let MergeOutcome::Merged(r) = outcome {
        let s = snapshot::get(node.db().store().as_ref(), r)?;
        if let Some(theirs) = s.parents.get(1) {
            node.db_mut().set_head(Some(*theirs));
        }
    }
    Ok(())
}

/// Planted `drops-deletes`: a key a merge deleted (a tombstone that arrived) gets the value it
/// had back, so the tombstone goes no further than this node.
fn resurrect(node: &mut GossipNode, live: &[(String, Vec<u8>)]) -> Result<(), HkvError> {
    let mut wrote = false;
    for (k, v) in live {
        if node.db().get(k)?.is_none() {
            node.db_mut().set(k, v)?;
            wrote = true;
        }
    }
    if wrote {
        node.db_mut().commit("resurrect")?;
    }
    Ok(())
}
