//! The simulator library's layering, checked from its source: every module refers only to
//! modules before it in the order `src/lib.rs` documents (no import circles, no arrows back
//! up), `lib.rs` only declares and re-exports, the library never names `clap` or `indicatif`
//! (the command line's), and no library file grows past 600 lines.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test reports failure by panicking"
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Lowest first; a module may use only modules before it.
const ORDER: &[&str] = &[
    "rng", "simfs", "trace", "oracle", "gossip", "channels", "attacker", "ssd", "net", "cells",
    "volumes", "knobs", "workload", "files", "filesys", "world", "run", "campaign", "minimize",
    "report", "conform",
];
const LINES_MAX: usize = 600;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Library source files (not `bin/`) by top-level module (`lib` for `lib.rs`).
fn files() -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![src()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                if p.file_name().unwrap() != "bin" {
                    dirs.push(p);
                }
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.insert(p.clone(), std::fs::read_to_string(&p).unwrap());
            }
        }
    }
    out
}

fn module_of(path: &Path) -> String {
    let rel = path.strip_prefix(src()).unwrap();
    let first = rel.components().next().unwrap().as_os_str().to_str().unwrap();
    first.trim_end_matches(".rs").to_owned()
}

/// Modules named as `crate::NAME` (and, in a top-level file, `super::NAME`).
fn references(path: &Path, text: &str) -> Vec<String> {
    let top_level = path.parent() == Some(src().as_path());
    let mut out = Vec::new();
    for (prefix, counts) in [("crate::", true), ("super::", top_level)] {
        if !counts {
            continue;
        }
        for (i, _) in text.match_indices(prefix) {
            let name: String = text[i + prefix.len()..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.push(name);
            }
        }
    }
    out
}

#[test]
fn modules_only_use_modules_below_them() {
    let rank = |m: &str| ORDER.iter().position(|o| *o == m);
    let mut broken = Vec::new();
    for (path, text) in files() {
        let m = module_of(&path);
        if m == "lib" {
            continue;
        }
        let own = rank(&m).unwrap_or_else(|| panic!("module {m} is missing from ORDER"));
        for r in references(&path, &text) {
            match rank(&r) {
                Some(dep) if dep >= own && r != m => {
                    broken.push(format!("{} uses {r}", path.display()));
                }
                None => broken.push(format!("{} uses {r} from lib.rs", path.display())),
                Some(_) => {}
            }
        }
    }
    assert!(broken.is_empty(), "arrows that point up or sideways:\n{}", broken.join("\n"));
}

#[test]
fn lib_rs_declares_documents_and_reexports_only() {
    let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap();
    let declared: Vec<&str> =
        lib.lines().filter_map(|l| l.strip_prefix("pub mod ")?.strip_suffix(';')).collect();
    let mut order = ORDER.to_vec();
    order.sort_unstable();
    assert_eq!(declared, order, "lib.rs declares exactly the modules of ORDER");
    let documented: String = lib
        .lines()
        .filter_map(|l| l.strip_prefix("//!"))
        .collect::<Vec<_>>()
        .join(" ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let order_text = format!("`{}`", ORDER.join(", "));
    assert!(documented.contains(&order_text), "the lib.rs doc states the order {order_text}");
    for line in lib.lines().filter(|l| !l.starts_with("//") && !l.trim().is_empty()) {
        assert!(
            line.starts_with("pub mod ") || line.starts_with("pub use "),
            "lib.rs only declares and re-exports: {line}"
        );
    }
}

#[test]
fn the_library_has_no_cli_dependencies_and_short_files() {
    for (path, text) in files() {
        for name in ["clap", "indicatif"] {
            assert!(!text.contains(name), "{} names {name} (the binary's)", path.display());
        }
        let lines = text.lines().count();
        assert!(lines <= LINES_MAX, "{} has {lines} lines (max {LINES_MAX})", path.display());
    }
}
