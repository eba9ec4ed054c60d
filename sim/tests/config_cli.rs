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

fn cellar(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_cellar")).current_dir(dir).args(args).output();
    let out = out.unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// ADP-1: `cellar cat/ls/log --config --share` read the share's mark of its volume's space —
/// what `cellar mount` and `cellar serve` commit (here through the same library calls they
/// make) — and a mark beside it stays separate.
#[test]
fn cat_ls_log_of_a_share_read_its_mark() {
    use cellar::adapters::{Caller, ShareFs, ShareOptions, open_mark};
    use cellar::marks::{MarkInfo, MarkName};
    let dir = tempfile::tempdir().unwrap();
    let text = format!("{GOOD}mark = \"photos\"\n\n[shares.other]\nvolume = \"home\"\n");
    std::fs::write(dir.path().join("cellar.toml"), text).unwrap();
    let reg = cellar::registry::Registry::open(&dir.path().join("cellar.toml")).unwrap();
    let space = reg.space("home").unwrap();
    let commit = |mark: &str, file: &str, data: &[u8]| {
        let name = MarkName::new(mark).unwrap();
        let opened = open_mark(&space, &name, &MarkInfo::new([3; 32], 1), false).unwrap();
        let opts = ShareOptions {
            read_only: false,
            spill_dir: dir.path().join(format!("spill-{mark}")),
            author: cellar::db::merge::NodeId(1),
            clock: std::sync::Arc::new(cellar::env::SystemClock),
            root_owner: (0, 0),
            label: format!("cellar mount {mark}"),
            refresh_ms: 0,
            compression: cellar::fs::Compression::Zstd,
        };
        let fs = ShareFs::open(opened.volume, opened.info.salt, opts).unwrap();
        let me = Caller { uid: 0, gid: 0 };
        let f = fs.create(fs.root_ino(), file.as_bytes(), 0o644, me).unwrap();
        fs.write(f.ino, 0, data).unwrap();
        assert!(fs.commit("fsync").unwrap().published);
    };
    commit("photos", "cat.jpg", b"meow");
    commit("main", "readme", b"the other share");
    drop(reg);
    let d = dir.path();
    assert_eq!(
        cellar(d, &["cat", "--config", "cellar.toml", "--share", "home", "/cat.jpg"]),
        "meow"
    );
    let ls = cellar(d, &["ls", "--config", "cellar.toml", "--share", "home"]);
    assert!(ls.contains("cat.jpg") && !ls.contains("readme"), "{ls}");
    let ls = cellar(d, &["ls", "--config", "cellar.toml", "--share", "other"]);
    assert!(ls.contains("readme") && !ls.contains("cat.jpg"), "{ls}");
    let log = cellar(d, &["log", "--config", "cellar.toml", "--share", "home"]);
    assert!(log.contains("cellar mount photos: fsync"), "{log}");
    assert!(log.contains(" UTC "), "FS-24: the commit time is shown: {log}");
    // Another mark of the same space, named explicitly.
    let cat = cellar(d, &["cat", "--config", "cellar.toml", "--share", "home", "main:/readme"]);
    assert_eq!(cat, "the other share");
}
