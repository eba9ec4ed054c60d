//! The Rust implementation behind the black-box protocol (`specs/conform.md`): `cellar conform
//! adapter` reads JSON-line requests and answers them through [`crate::conform::formats`], so
//! the Rust code is judged exactly like a stranger.
//!
//! Planted bugs ([`AdapterBug`]) make the adapter deliberately wrong; each must be caught by
//! `cellar conform` (tests in `sim/tests/conform_cli.rs`).

use crate::conform::formats;
use crate::conform::kinds::{Kind, hex, unhex};
use crate::conform::state::State;
use serde_json::{Value, json};
use std::io::{BufRead, Write};

/// Deliberately wrong behaviours of the adapter, to prove the harness catches them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdapterBug {
    /// `cell.sealed`: a value whose AEAD tag fails is accepted (as the empty plaintext).
    AcceptsFlippedTag,
    /// `ref.text`: upper-case hex digits are accepted (parsed case-insensitively).
    AcceptsUpperCaseRef,
    /// `cell.cas`: swaps whatever the cell holds (the expected value is ignored).
    CasIgnoresExpected,
    /// `store.put`: acknowledged, but kept only in the process's memory: lost on restart.
    PutLostOnRestart,
    /// `volume.cleanup`: takes Contract from a lock of its own process only, so it runs while
    /// another process holds Expand (VOL-2).
    CleanupIgnoresMode,
}

impl AdapterBug {
    /// Every planted bug with its name.
    pub const ALL: [(&'static str, AdapterBug); 5] = [
        ("accepts-flipped-tag", AdapterBug::AcceptsFlippedTag),
        ("accepts-upper-case-ref", AdapterBug::AcceptsUpperCaseRef),
        ("cas-ignores-expected", AdapterBug::CasIgnoresExpected),
        ("put-lost-on-restart", AdapterBug::PutLostOnRestart),
        ("cleanup-ignores-mode", AdapterBug::CleanupIgnoresMode),
    ];

    /// The bug called `name`.
    pub fn from_name(name: &str) -> Option<AdapterBug> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|(_, b)| *b)
    }
}

/// The formats the adapter decodes and the functions it derives (`hello`).
pub const FORMATS: &[&str] = &[
    "ref.binary",
    "ref.text",
    "cell.file",
    "cell.sealed",
    "volume.header",
    "file.index",
    "sector.superblock",
    "sector.zone_header",
    "sector.record_header",
    "sector.commit_payload",
    "sector.request_frame",
    "sector.response_frame",
    "gossip.message",
    "kv.clock",
    "kv.node",
    "kv.key_state",
    "kv.snapshot",
];
/// Functions the adapter derives.
pub const FUNCTIONS: &[&str] = &["ref.post", "ref.open", "volume.keys", "file.tree"];

fn error(id: &Value, kind: &str, message: &str) -> Value {
    json!({"id": id, "ok": false, "error": {"kind": kind, "definite": true, "message": message}})
}

fn str_field<'a>(req: &'a Value, name: &str) -> Option<&'a str> {
    req.get(name).and_then(Value::as_str)
}

/// Answers one request line.
pub fn answer(line: &str, bugs: &[AdapterBug], state: &mut State) -> Value {
    let Ok(req) = serde_json::from_str::<Value>(line) else {
        return error(&Value::Null, "bad_request", "not JSON");
    };
    let id = req.get("id").cloned().unwrap_or(Value::Null);
    let empty = json!({});
    let params = req.get("params").unwrap_or(&empty);
    let kind_error = |k: Kind, m: &str| error(&id, &k.name(), m);
    match str_field(&req, "type") {
        Some("hello") => {
            json!({"id": id, "ok": true, "name": "cellar (Rust) via cellar conform adapter",
                                "formats": FORMATS, "functions": FUNCTIONS})
        }
        Some("decode") => {
            let (Some(format), Some(bytes)) = (str_field(&req, "format"), str_field(&req, "bytes"))
            else {
                return error(&id, "bad_request", "decode needs format and bytes");
            };
            let Ok(bytes) = unhex(bytes) else {
                return error(&id, "bad_request", "bytes: bad hex");
            };
            if !FORMATS.contains(&format) {
                return error(&id, "unsupported", format);
            }
            match decode(format, params, &bytes, bugs) {
                Ok(v) => json!({"id": id, "ok": true, "value": v}),
                Err((k, m)) => kind_error(k, &m),
            }
        }
        Some("encode") => {
            let (Some(format), Some(value)) = (str_field(&req, "format"), req.get("value")) else {
                return error(&id, "bad_request", "encode needs format and value");
            };
            if !formats::can_encode(format) {
                return error(&id, "unsupported", format);
            }
            match formats::encode(format, params, value) {
                Ok(b) => json!({"id": id, "ok": true, "bytes": hex(&b)}),
                Err(f) => kind_error(f.kind, &f.message),
            }
        }
        Some("derive") => {
            let (Some(function), Some(input)) = (str_field(&req, "function"), req.get("input"))
            else {
                return error(&id, "bad_request", "derive needs function and input");
            };
            if !FUNCTIONS.contains(&function) {
                return error(&id, "unsupported", function);
            }
            match formats::derive(function, input) {
                Ok(v) => json!({"id": id, "ok": true, "value": v}),
                Err(f) => kind_error(f.kind, &f.message),
            }
        }
        Some(other) => match state.answer(other, &req, bugs) {
            Some(mut v) => {
                if let Some(o) = v.as_object_mut() {
                    o.insert("id".to_owned(), id);
                }
                v
            }
            None => error(&id, "unsupported", other),
        },
        None => error(&id, "bad_request", "no type"),
    }
}

fn decode(
    format: &str,
    params: &Value,
    bytes: &[u8],
    bugs: &[AdapterBug],
) -> Result<Value, (Kind, String)> {
    let bytes = if bugs.contains(&AdapterBug::AcceptsUpperCaseRef) && format == "ref.text" {
        bytes.to_ascii_lowercase()
    } else {
        bytes.to_vec()
    };
    match formats::decode(format, params, &bytes) {
        Err(f)
            if f.kind == Kind::AuthFailed
                && format == "cell.sealed"
                && bugs.contains(&AdapterBug::AcceptsFlippedTag) =>
        {
            Ok(json!({"counter": 0, "plaintext": ""}))
        }
        Ok(v) => Ok(v),
        Err(f) => Err((f.kind, f.message)),
    }
}

/// Serves requests from `input` until it ends, one response line per request.
pub fn serve(
    input: impl BufRead,
    mut output: impl Write,
    bugs: &[AdapterBug],
) -> std::io::Result<()> {
    let mut state = State::from_env();
    for line in input.lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let response = answer(&line, bugs, &mut state);
        writeln!(output, "{response}")?;
        output.flush()?;
    }
    Ok(())
}
