//! The vector files of `specs/vectors/` are exactly what the committed generator produces
//! from the Rust implementation (`CELLAR_REGEN=1` rewrites them), the generator found no
//! disagreement between the spec's intent and the implementation, and every vector file is
//! valid against its JSON schema in `specs/vectors/schema/`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code")]

use cellar_sim::conform::vectors::{self, SCHEMA};
use serde_json::Value;
use std::path::{Path, PathBuf};

fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../specs/vectors")
}

#[test]
fn vector_files_match_the_generator() {
    let (files, problems) = vectors::generate();
    assert!(
        problems.is_empty(),
        "the generator disagrees with the implementation:\n{}",
        problems.join("\n")
    );
    let regen = std::env::var_os("CELLAR_REGEN").is_some();
    let mut stale = Vec::new();
    let mut total = 0;
    for f in &files {
        total += f.number_of_tests;
        let path = vectors_dir().join(vectors::file_name(f));
        let text = vectors::to_text(f);
        if regen {
            std::fs::write(&path, &text).unwrap();
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "stale vector files (regenerate: {}):\n{}",
        vectors::REGENERATE,
        stale.join("\n")
    );
    assert!(total >= 500, "only {total} vectors");
}

/// Which schema a file is linted against: its own `schema` field, or the v1 schemas of the
/// older single-format files (refs, kv, fs).
fn schema_of(name: &str, v: &Value) -> String {
    match (name, v.get("schema").and_then(Value::as_str)) {
        (_, Some(s)) => s.to_owned(),
        ("refs.json", None) => "schema/refs-v1.schema.json".to_owned(),
        ("kv.json", None) => "schema/kv-v1.schema.json".to_owned(),
        ("fs.json", None) => "schema/fs-v1.schema.json".to_owned(),
        (other, None) => panic!("{other} names no schema"),
    }
}

#[test]
fn every_vector_file_is_valid_against_its_schema() {
    let mut linted = 0;
    for entry in std::fs::read_dir(vectors_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let instance: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let schema_path = vectors_dir().join(schema_of(&name, &instance));
        let schema: Value =
            serde_json::from_str(&std::fs::read_to_string(&schema_path).unwrap()).unwrap();
        let validator = jsonschema::validator_for(&schema).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&instance)
            .take(5)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{name} breaks {}:\n{}",
            schema_path.display(),
            errors.join("\n")
        );
        if let Some(tests) = instance.get("tests").and_then(Value::as_array) {
            let ids: Vec<u64> = tests.iter().filter_map(|t| t["tcId"].as_u64()).collect();
            let want: Vec<u64> = (1..=tests.len() as u64).collect();
            assert_eq!(ids, want, "{name}: tcIds are 1..=n in order");
            assert_eq!(instance["numberOfTests"].as_u64(), Some(tests.len() as u64), "{name}");
        }
        linted += 1;
    }
    assert!(linted >= 3, "only {linted} vector files linted");
}

#[test]
fn the_schema_refuses_a_broken_vector() {
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(vectors_dir().join(SCHEMA)).unwrap())
            .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let (files, _) = vectors::generate();
    let mut v = serde_json::to_value(&files[0]).unwrap();
    assert!(validator.is_valid(&v));
    // An invalid test without its error kind.
    let t =
        v["tests"].as_array_mut().unwrap().iter_mut().find(|t| t["result"] == "invalid").unwrap();
    t.as_object_mut().unwrap().remove("error");
    assert!(!validator.is_valid(&v), "the schema must require an error kind for invalid tests");
}
