//! Versioned-KV and gossip formats (`specs/kv.md` KV-1, KV-9, KV-12; `specs/gossip-wire.md`
//! GW-1), decoded by `cellar::db`.

use crate::conform::kinds::{Failure, Kind, Outcome, hex, postcard_kind};
use cellar::db::gossip::{MESSAGE_SIZE_MAX_BYTES, Message, decode_message};
use cellar::db::kv::{Node, NodeError, decode_node};
use cellar::db::merge::{CLOCK_ENTRIES_MAX, KeyState, VectorClock, Version};
use cellar::db::snapshot::Snapshot;
use cellar::{Hash, Ref};
use serde::Deserialize;
use serde_json::{Value, json};

/// A clock as the wire has it, not yet checked for canonical form.
type LooseClock = Vec<(u32, u64)>;

/// The gossip message with loose clocks: same tags and fields as [`Message`].
#[derive(Deserialize)]
enum LooseMessage {
    Announce { _head: Ref, clock: LooseClock },
    Want { _cids: Vec<Hash> },
    Objects { _blobs: Vec<Vec<u8>> },
}

#[derive(Deserialize)]
struct LooseVersion {
    _value: Option<Vec<u8>>,
    _writer: u32,
    clock: LooseClock,
}

#[derive(Deserialize)]
struct LooseKeyState {
    clock: LooseClock,
    versions: Vec<LooseVersion>,
}

#[derive(Deserialize)]
struct LooseSnapshot {
    _version: u8,
    _root: Option<Ref>,
    _parents: Vec<Ref>,
    clock: LooseClock,
}

/// The kind of the first clock, in wire order, that breaks KV-10.
fn clock_kind(clocks: &[&LooseClock]) -> Kind {
    for c in clocks {
        if c.len() > CLOCK_ENTRIES_MAX {
            return Kind::TooLarge;
        }
        if c.iter().any(|(_, n)| *n == 0) || c.windows(2).any(|w| w[0].0 >= w[1].0) {
            return Kind::NonCanonical;
        }
    }
    Kind::InvalidValue
}

/// Decodes one `T` exactly; a serde custom error is classified by `custom`.
fn exact<T: serde::de::DeserializeOwned>(bytes: &[u8], custom: impl Fn() -> Kind) -> Outcome<T> {
    let (v, rest) =
        postcard::take_from_bytes::<T>(bytes).map_err(|e| postcard_kind(&e, custom()))?;
    if !rest.is_empty() {
        return Err(Failure::new(Kind::TrailingBytes, format!("{} trailing bytes", rest.len())));
    }
    Ok(v)
}

/// JSON form of a clock: `[[node, count], …]`.
pub fn clock_json(c: &VectorClock) -> Value {
    Value::Array(c.entries().map(|(n, k)| json!([n.0, k])).collect())
}

fn version_json(v: &Version) -> Value {
    json!({"value": v.value.as_ref().map(|b| hex(b)), "writer": v.writer.0, "clock": clock_json(&v.clock)})
}

/// Decodes `bytes` as `format`; `None` if the format is not one of this module's.
pub fn decode(format: &str, bytes: &[u8]) -> Option<Outcome<Value>> {
    Some(match format {
        "kv.clock" => exact::<VectorClock>(bytes, || {
            postcard::take_from_bytes::<LooseClock>(bytes)
                .map_or(Kind::InvalidValue, |(c, _)| clock_kind(&[&c]))
        })
        .map(|c| clock_json(&c)),
        "kv.node" => kv_node(bytes),
        "kv.key_state" => key_state(bytes),
        "kv.snapshot" => snapshot(bytes),
        "gossip.message" => gossip(bytes),
        _ => return None,
    })
}

fn kv_node(bytes: &[u8]) -> Outcome<Value> {
    exact::<Node>(bytes, || Kind::InvalidValue)?;
    let node = decode_node(bytes).map_err(|e| {
        let kind = match &e {
            NodeError::Version(_) => Kind::UnsupportedVersion,
            NodeError::EntrySize { detail, .. } if !detail.starts_with("child ref") => {
                Kind::TooLarge
            }
            _ => Kind::InvalidValue,
        };
        Failure::new(kind, e.to_string())
    })?;
    let entries: Vec<Value> =
        node.entries.iter().map(|e| json!({"key": hex(&e.key), "value": hex(&e.value)})).collect();
    Ok(json!({"level": node.level, "entries": entries}))
}

fn key_state(bytes: &[u8]) -> Outcome<Value> {
    exact::<KeyState>(bytes, || match postcard::take_from_bytes::<LooseKeyState>(bytes) {
        Ok((s, _)) => {
            let mut clocks = vec![&s.clock];
            clocks.extend(s.versions.iter().map(|v| &v.clock));
            clock_kind(&clocks)
        }
        Err(_) => Kind::InvalidValue,
    })?;
    let s = KeyState::decode(bytes).map_err(|e| Failure::new(Kind::InvalidValue, e.to_string()))?;
    Ok(key_state_json(&s))
}

/// JSON form of a key state (`kv.key_state`, KV-9): `{"clock": CLOCK, "versions": […]}`.
pub fn key_state_json(s: &KeyState) -> Value {
    let versions: Vec<Value> = s.versions().iter().map(version_json).collect();
    json!({"clock": clock_json(s.clock()), "versions": versions})
}

fn snapshot(bytes: &[u8]) -> Outcome<Value> {
    exact::<Snapshot>(bytes, || {
        postcard::take_from_bytes::<LooseSnapshot>(bytes)
            .map_or(Kind::InvalidValue, |(s, _)| clock_kind(&[&s.clock]))
    })?;
    let s = Snapshot::decode(Hash::ZERO, bytes).map_err(|e| {
        let m = e.to_string();
        let kind = if m.contains("unknown snapshot version") {
            Kind::UnsupportedVersion
        } else if m.contains("too many parents") {
            Kind::TooLarge
        } else {
            Kind::InvalidValue
        };
        Failure::new(kind, m)
    })?;
    let parents: Vec<String> = s.parents.iter().map(|r| hex(&r.to_bytes())).collect();
    Ok(json!({
        "root": s.root.map(|r| hex(&r.to_bytes())), "parents": parents,
        "clock": clock_json(&s.clock), "author": s.author.0, "message": s.message,
        "lamport": s.lamport,
    }))
}

fn gossip(bytes: &[u8]) -> Outcome<Value> {
    if bytes.len() > MESSAGE_SIZE_MAX_BYTES {
        return Err(Failure::new(Kind::TooLarge, format!("{} bytes", bytes.len())));
    }
    let (version, m) = exact::<(u8, Message)>(bytes, || {
        match postcard::take_from_bytes::<(u8, LooseMessage)>(bytes) {
            Ok(((_, LooseMessage::Announce { clock, .. }), _)) => clock_kind(&[&clock]),
            _ => Kind::UnknownVariant,
        }
    })?;
    if version != 1 {
        return Err(Failure::new(Kind::UnsupportedVersion, format!("version {version}")));
    }
    let m2 = decode_message(bytes).map_err(|e| Failure::new(Kind::TooLarge, e.to_string()))?;
    debug_assert_eq!(m, m2);
    Ok(match m2 {
        Message::Announce { head, clock } => {
            json!({"type": "Announce", "head": hex(&head.to_bytes()), "clock": clock_json(&clock)})
        }
        Message::Want { cids } => {
            json!({"type": "Want", "cids": cids.iter().map(|c| hex(&c.0)).collect::<Vec<_>>()})
        }
        Message::Objects { blobs } => {
            json!({"type": "Objects", "blobs": blobs.iter().map(|b| hex(b)).collect::<Vec<_>>()})
        }
    })
}
