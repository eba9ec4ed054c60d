//! `cellar config check` as a user runs it: a good file opens and every backend is listed, exit
//! 0; a typo is one line naming file, line and key, exit 1; a backend that does not answer
//! (a sector socket nobody serves) is refused at start-up.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test reports failure by panicking"
)]

use std::path::Path;
use std::process::{Command, Output};

fn check(dir: &Path, text: &str) -> Output {
    std::fs::write(dir.join("cellar.toml"), text).unwrap();
    Command::new(env!("CARGO_BIN_EXE_cellar"))
        .current_dir(dir)
        .args(["config", "check", "--config", "cellar.toml"])
        .output()
        .unwrap()
}

const GOOD: &str = r#"[stores.blobs]
kind = "dir"
path = "blobs"

[cells.root]
kind = "file"
path = "root"

[volumes.home]
cell = "root"
store = "blobs"

[shares.home]
volume = "home"
"#;

#[test]
fn a_good_file_is_checked_and_every_backend_listed() {
    let dir = tempfile::tempdir().unwrap();
    let out = check(dir.path(), GOOD);
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("store blobs: dir blobs: 0 blobs"), "{stdout}");
    assert!(stdout.contains("cell root: file root: value of 0 bytes"), "{stdout}");
    assert!(stdout.contains("volume home: cell root, store blobs"), "{stdout}");
    assert!(
        stdout.contains("share home: volume home, mark \"main\", adapters nfs+fuse"),
        "{stdout}"
    );
    assert!(stdout.contains("1 stores, 1 cells, 1 volumes, 1 shares; all backends answered"));
}

#[test]
fn a_typo_names_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = check(dir.path(), &GOOD.replace("store = \"blobs\"", "stor = \"blobs\""));
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("cellar config check: cellar.toml:11: volumes.home.stor: unknown field"),
        "{stderr}"
    );
}

#[test]
fn an_unreachable_backend_is_refused_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let text =
        GOOD.replace("kind = \"dir\"\npath = \"blobs\"", "kind = \"sector\"\nsocket = \"s.sock\"");
    let out = check(dir.path(), &text);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("cellar.toml:1: stores.blobs: "), "{stderr}");
    assert!(stderr.contains("is `cellar sector serve` running?"), "{stderr}");
}
