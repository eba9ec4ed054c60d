//! The Wycheproof-style vector files of `specs/vectors/` (schema
//! `specs/vectors/schema/vectors.schema.json`): their types, the builder the generator uses,
//! and reading and writing them.
//!
//! Each file covers one format (`op: decode`) or one function (`op: derive`) of
//! `specs/encoding.md` ENC-6. A test has an id (`tcId`), a comment, flags (explained in the
//! file's `notes`), its input, and `result`: `valid` (the output is pinned), `invalid` (the
//! error kind is pinned) or `acceptable` (a conforming implementation may accept, with the
//! pinned output, or refuse). The generator ([`generate`]) derives every expected value from
//! the Rust implementation and checks every deliberate defect is refused with the kind the
//! spec names, so a generator run that finds a disagreement fails instead of writing it.

mod gen_db;
mod gen_sector;
mod gen_storage;
mod mutate;

use crate::conform::formats;
use crate::conform::kinds::{Kind, hex};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// The schema every file of this module's shape names.
pub const SCHEMA: &str = "schema/vectors.schema.json";
/// How to regenerate the files.
pub const REGENERATE: &str = "CELLAR_REGEN=1 cargo test -p cellar-sim --test conform_vectors";

/// What a file's tests do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// Bytes (hex) in, a JSON value or an error kind out.
    Decode,
    /// A JSON object in, a JSON value or an error kind out.
    Derive,
}

/// A test's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Must be accepted, with exactly `output`.
    Valid,
    /// Must be refused; `error` is the kind the spec's order of checks yields.
    Invalid,
    /// May be accepted (with `output`) or refused.
    Acceptable,
}

/// One test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestCase {
    /// Unique in the file, from 1.
    #[serde(rename = "tcId")]
    pub tc_id: u32,
    /// What the test is about.
    pub comment: String,
    /// Flags, each explained in the file's `notes`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<String>,
    /// Format parameters (e.g. a key, a size limit).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub params: Value,
    /// Hex bytes (`decode`) or an object (`derive`).
    pub input: Value,
    /// The expected value (`valid`, and `acceptable` when accepted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    /// The verdict.
    pub result: Verdict,
    /// The error kind (`invalid`, and `acceptable` when the reference refuses).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Kind>,
}

/// One vector file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VectorFile {
    /// [`SCHEMA`].
    pub schema: String,
    /// The format or function name (ENC-6).
    pub format: String,
    /// What the tests do.
    pub op: Op,
    /// The normative spec section.
    pub spec: String,
    /// Whether valid decode tests also pin the canonical encoding (`encode(output) = input`).
    pub encode: bool,
    /// How the file was made.
    pub generator: String,
    /// Number of tests.
    #[serde(rename = "numberOfTests")]
    pub number_of_tests: usize,
    /// Flag → what it means.
    pub notes: BTreeMap<String, String>,
    /// The tests.
    pub tests: Vec<TestCase>,
}

/// Collects the tests of one file and checks them against the Rust implementation as they are
/// added; disagreements are collected in `problems` rather than written.
pub struct Builder {
    file: VectorFile,
    params: Value,
    /// Disagreements between the generator's intent and the implementation.
    pub problems: Vec<String>,
}

fn note(flag: &str) -> &'static str {
    match flag {
        "Truncated" => "the input is cut short",
        "BitFlip" => "one bit of a valid input is flipped",
        "TrailingBytes" => "bytes are appended after a complete structure",
        "BadChecksum" => "a CRC-32C does not match",
        "BadMagic" => "the magic bytes are wrong",
        "BadVersion" => "a version field holds an undefined version",
        "UnknownVariant" => "an enum tag or kind outside its variant table",
        "InvalidValue" => "a field holds a value the spec forbids",
        "Oversize" => "a length, count or size above its limit",
        "NonCanonical" => "a non-canonical encoding (ENC-2): decoders may accept or refuse it",
        "Auth" => "an AEAD tag or CID that does not verify",
        "Lenient" => "a value the reference reader accepts though no conforming writer writes it",
        "Edge" => "a boundary value (empty, zero, maximum)",
        "Random" => "deterministic pseudo-random contents",
        _ => "see the comment",
    }
}

impl Builder {
    /// A builder for `format`.
    pub fn new(format: &str, op: Op, spec: &str) -> Self {
        let file = VectorFile {
            schema: SCHEMA.to_owned(),
            format: format.to_owned(),
            op,
            spec: spec.to_owned(),
            encode: op == Op::Decode && formats::can_encode(format),
            generator: REGENERATE.to_owned(),
            number_of_tests: 0,
            notes: BTreeMap::new(),
            tests: Vec::new(),
        };
        Self { file, params: Value::Null, problems: Vec::new() }
    }

    /// Parameters for the tests added from now on.
    pub fn params(&mut self, params: Value) {
        self.params = params;
    }

    fn push(&mut self, mut t: TestCase) {
        t.tc_id = u32::try_from(self.file.tests.len() + 1).unwrap_or(u32::MAX);
        for f in &t.flags {
            self.file.notes.entry(f.clone()).or_insert_with(|| note(f).to_owned());
        }
        self.file.tests.push(t);
    }

    fn case(&self, comment: &str, flags: &[&str], input: Value) -> TestCase {
        TestCase {
            tc_id: 0,
            comment: comment.to_owned(),
            flags: flags.iter().map(|f| (*f).to_owned()).collect(),
            params: self.params.clone(),
            input,
            output: None,
            result: Verdict::Valid,
            error: None,
        }
    }

    fn decode(&self, bytes: &[u8]) -> Result<Value, Kind> {
        formats::decode(&self.file.format, &self.params, bytes).map_err(|f| f.kind)
    }

    /// A valid decode test: `bytes` must decode, and (for encodable formats) re-encode to
    /// exactly `bytes`.
    pub fn valid(&mut self, comment: &str, flags: &[&str], bytes: &[u8]) {
        let mut t = self.case(comment, flags, Value::String(hex(bytes)));
        match self.decode(bytes) {
            Ok(v) => {
                if self.file.encode {
                    match formats::encode(&self.file.format, &self.params, &v) {
                        Ok(b) if b == bytes => {}
                        other => self.problems.push(format!(
                            "{}: {comment}: re-encoding gives {other:?}",
                            self.file.format
                        )),
                    }
                }
                t.output = Some(v);
                self.push(t);
            }
            Err(k) => {
                self.problems.push(format!("{}: {comment}: refused as {k:?}", self.file.format))
            }
        }
    }

    /// An invalid decode test that must be refused with `kind`.
    pub fn invalid(&mut self, comment: &str, flags: &[&str], bytes: &[u8], kind: Kind) {
        match self.decode(bytes) {
            Err(k) if k == kind => {
                let mut t = self.case(comment, flags, Value::String(hex(bytes)));
                t.result = Verdict::Invalid;
                t.error = Some(k);
                self.push(t);
            }
            other => self
                .problems
                .push(format!("{}: {comment}: want {kind:?}, got {other:?}", self.file.format)),
        }
    }

    /// A test whose verdict is whatever the reference decides (generic mutations: a flipped
    /// bit may still be a valid input).
    pub fn observed(&mut self, comment: &str, flags: &[&str], bytes: &[u8]) {
        let mut t = self.case(comment, flags, Value::String(hex(bytes)));
        match self.decode(bytes) {
            Ok(v) => {
                let canonical = !self.file.encode
                    || formats::encode(&self.file.format, &self.params, &v)
                        .is_ok_and(|b| b == bytes);
                if !canonical {
                    let f = &self.file.format;
                    self.problems.push(format!("{f}: {comment}: accepted but not canonical"));
                }
                t.output = Some(v);
            }
            Err(k) => {
                t.result = Verdict::Invalid;
                t.error = Some(k);
            }
        }
        self.push(t);
    }

    /// An acceptable test (ENC-2): the reference's answer is pinned, either may conform.
    pub fn acceptable(&mut self, comment: &str, flags: &[&str], bytes: &[u8]) {
        let mut t = self.case(comment, flags, Value::String(hex(bytes)));
        t.result = Verdict::Acceptable;
        match self.decode(bytes) {
            Ok(v) => t.output = Some(v),
            Err(k) => t.error = Some(k),
        }
        self.push(t);
    }

    /// A derive test: the reference's answer to `input` is pinned (valid or invalid).
    pub fn derive(&mut self, comment: &str, flags: &[&str], input: Value, want: Option<Kind>) {
        let mut t = self.case(comment, flags, input.clone());
        match (formats::derive(&self.file.format, &input), want) {
            (Ok(v), None) => t.output = Some(v),
            (Err(f), Some(k)) if f.kind == k => {
                t.result = Verdict::Invalid;
                t.error = Some(k);
            }
            (got, _) => {
                let m = format!("{}: {comment}: want {want:?}, got {got:?}", self.file.format);
                self.problems.push(m);
                return;
            }
        }
        self.push(t);
    }

    /// The finished file.
    pub fn finish(mut self) -> (VectorFile, Vec<String>) {
        self.file.number_of_tests = self.file.tests.len();
        (self.file, self.problems)
    }
}

/// Every vector file, generated from the Rust implementation, and any disagreement between
/// the generator's intent and the implementation (which must be empty).
pub fn generate() -> (Vec<VectorFile>, Vec<String>) {
    let builders = [gen_storage::all(), gen_sector::all(), gen_db::all()].into_iter().flatten();
    let mut files = Vec::new();
    let mut problems = Vec::new();
    for b in builders {
        let (f, p) = b.finish();
        files.push(f);
        problems.extend(p);
    }
    (files, problems)
}

/// The file name of a vector file: `FORMAT.json`.
pub fn file_name(f: &VectorFile) -> String {
    format!("{}.json", f.format)
}

/// The text a file is written as (pretty JSON, trailing newline).
pub fn to_text(f: &VectorFile) -> String {
    let mut s = serde_json::to_string_pretty(f).unwrap_or_default();
    s.push('\n');
    s
}

/// Reads every Wycheproof-style vector file in `dir` (files whose `schema` is [`SCHEMA`]).
pub fn read_dir(dir: &Path) -> std::io::Result<Vec<VectorFile>> {
    let mut out = Vec::new();
    let mut paths: Vec<_> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    for p in paths {
        let text = std::fs::read_to_string(&p)?;
        let v: Value = serde_json::from_str(&text).map_err(std::io::Error::other)?;
        if v.get("schema").and_then(Value::as_str) == Some(SCHEMA) {
            out.push(serde_json::from_value(v).map_err(std::io::Error::other)?);
        }
    }
    Ok(out)
}
