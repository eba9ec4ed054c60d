//! The registry (`cellar.toml`): every refusal names its key and line; a good file opens every
//! backend kind and probes it. PostgreSQL parts need `CELLAR_TEST_PG` and print a `SKIPPED`
//! line without it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test reports failure by panicking"
)]

use cellar::registry::{ConfigError, ConfigErrorKind as K, ModeLockSpec, Registry, StoreSpec};
use cellar::storage::volume::{HashList, check_vol1, cleanup};
use std::path::{Path, PathBuf};

mod pg_support;

fn parse(text: &str) -> Result<cellar::registry::Config, ConfigError> {
    Registry::parse(Path::new("/etc/cellar/cellar.toml"), text)
}

/// Checks that `text` is refused with `kind`, on `line`, about `key`.
fn refused(text: &str, kind: K, line: usize, key: &str) -> ConfigError {
    let e = parse(text).expect_err("the file should be refused");
    assert_eq!((e.kind, e.line, e.key.as_str()), (kind, Some(line), key), "{e}");
    assert!(e.to_string().starts_with(&format!("/etc/cellar/cellar.toml:{line}: {key}: ")), "{e}");
    e
}

const GOOD: &str = r#"
[stores.blobs]
kind = "dir"
path = "blobs"

[cells.root]
kind = "file"
path = "/var/lib/cellar/root"

[volumes.home]
cell = "root"
store = "blobs"

[shares.photos]
volume = "home"
adapters = ["fuse"]
read_only = true
"#;

#[test]
fn a_good_file_validates_with_defaults_and_relative_paths() {
    let c = parse(GOOD).unwrap();
    assert_eq!(
        c.stores["blobs"].spec,
        StoreSpec::Dir { path: PathBuf::from("/etc/cellar/blobs"), max_blob_size_bytes: 4 << 20 }
    );
    assert_eq!(c.stores["blobs"].line, 2, "the line of the table header");
    assert_eq!(c.volumes["home"].spec.mode_lock, ModeLockSpec::Process);
    let share = &c.shares["photos"].spec;
    assert_eq!(share.mark, "main");
    assert!(share.read_only);
    assert_eq!(share.adapters.iter().map(|a| a.name()).collect::<Vec<_>>(), ["fuse"]);
}

#[test]
fn unknown_keys_are_refused_with_their_line() {
    let typo = GOOD.replace("path = \"blobs\"", "pth = \"blobs\"");
    let e = refused(&typo, K::UnknownKey, 4, "stores.blobs.pth");
    assert!(e.message.contains("unknown field `pth`"), "{e}");
    // After a table header a key belongs to that table; before any, to the top level.
    refused(&format!("{GOOD}\nbogus = 1\n"), K::UnknownKey, 19, "shares.photos.bogus");
    refused(&format!("bogus = 1\n{GOOD}"), K::UnknownKey, 1, "bogus");
    // A real key, but not of this kind.
    let wrong_kind =
        GOOD.replace("path = \"blobs\"", "path = \"blobs\"\nurl = \"postgres://x@y/z\"");
    refused(&wrong_kind, K::UnknownKey, 5, "stores.blobs.url");
    refused(&GOOD.replace("\"dir\"", "\"dirr\""), K::Syntax, 3, "stores.blobs.kind");
}

#[test]
fn duplicate_names_are_refused() {
    let dup = format!("{GOOD}\n[stores.blobs]\nkind = \"mem\"\n");
    let e = parse(&dup).unwrap_err();
    assert_eq!((e.kind, e.line), (K::Duplicate, Some(19)), "{e}");
    let twice = GOOD.replace("[\"fuse\"]", "[\"fuse\", \"nfs\", \"fuse\"]");
    refused(&twice, K::Duplicate, 16, "shares.photos.adapters");
}

#[test]
fn dangling_references_are_refused() {
    refused(
        &GOOD.replace("cell = \"root\"", "cell = \"roof\""),
        K::Dangling,
        11,
        "volumes.home.cell",
    );
    refused(
        &GOOD.replace("store = \"blobs\"", "store = \"blob\""),
        K::Dangling,
        12,
        "volumes.home.store",
    );
    refused(
        &GOOD.replace("volume = \"home\"", "volume = \"away\""),
        K::Dangling,
        15,
        "shares.photos.volume",
    );
    let sealed =
        format!("{GOOD}\n[cells.s]\nkind = \"sealed\"\ninner = \"nope\"\nsecret_file = \"k\"\n");
    refused(&sealed, K::Dangling, 21, "cells.s.inner");
}

#[test]
fn sharing_and_cycles_and_ranges_are_refused() {
    let second = format!(
        "{GOOD}\n[cells.other]\nkind = \"mem\"\n\n[volumes.work]\ncell = \"other\"\nstore = \"blobs\"\n"
    );
    let e = refused(&second, K::Invalid, 24, "volumes.work.store");
    assert!(e.message.contains("already belongs to volume \"home\""), "{e}");
    let cycle = "[cells.a]\nkind = \"sealed\"\ninner = \"b\"\nsecret_file = \"k\"\n\n\
                 [cells.b]\nkind = \"sealed\"\ninner = \"a\"\nsecret_file = \"k\"\n";
    refused(cycle, K::Invalid, 3, "cells.a.inner");
    refused(
        "[cells.c]\nkind = \"mem\"\nmax_size_bytes = 0\n",
        K::Invalid,
        3,
        "cells.c.max_size_bytes",
    );
    refused("[stores.s]\nkind = \"sector\"\n", K::Invalid, 2, "stores.s");
    refused(
        "[stores.s]\nkind = \"postgres\"\nurl = \"postgres://a@b:notaport/c\"\n",
        K::Invalid,
        3,
        "stores.s.url",
    );
    refused("[stores.\"a b\"]\nkind = \"mem\"\n", K::Invalid, 1, "stores.a b");
    let lock = GOOD.replace("store = \"blobs\"", "store = \"blobs\"\nmode_lock = \"postgres\"");
    refused(&lock, K::Invalid, 13, "volumes.home.mode_lock");
    refused(&GOOD.replace("[\"fuse\"]", "[]"), K::Invalid, 16, "shares.photos.adapters");
    // ADP-1: a share's mark is a one-component mark name of its volume's space (MARK-1).
    for bad in ["a/b", "bad name", ".hidden", ""] {
        let mark = GOOD.replace("volume = \"home\"", &format!("volume = \"home\"\nmark = {bad:?}"));
        refused(&mark, K::Invalid, 16, "shares.photos.mark");
    }
    let good = GOOD.replace("volume = \"home\"", "volume = \"home\"\nmark = \"photos-2026\"");
    assert_eq!(parse(&good).unwrap().shares["photos"].spec.mark, "photos-2026");
    // ADP-13: how often a share follows its mark; at most an hour, 1 s by default.
    let slow = GOOD.replace("volume = \"home\"", "volume = \"home\"\nrefresh_ms = 3600001");
    refused(&slow, K::Invalid, 16, "shares.photos.refresh_ms");
    assert_eq!(parse(GOOD).unwrap().shares["photos"].spec.refresh_ms, 1000);
    let fast = GOOD.replace("volume = \"home\"", "volume = \"home\"\nrefresh_ms = 0");
    assert_eq!(parse(&fast).unwrap().shares["photos"].spec.refresh_ms, 0);
    // FS-27: a share encodes its data blobs with zstd unless told `none`.
    let shares = |text: &str| parse(text).unwrap().shares["photos"].spec.compression;
    assert_eq!(shares(GOOD), cellar::fs::Compression::Zstd);
    let plain = GOOD.replace("volume = \"home\"", "volume = \"home\"\ncompression = \"none\"");
    assert_eq!(shares(&plain), cellar::fs::Compression::Off);
    let typo = GOOD.replace("volume = \"home\"", "volume = \"home\"\ncompression = \"zsdt\"");
    refused(&typo, K::Invalid, 16, "shares.photos.compression");
}

fn write_config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("cellar.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn unreachable_backends_are_refused_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let open = |text: &str| Registry::open(&write_config(dir.path(), text)).unwrap_err();
    let e = open("[stores.s]\nkind = \"sector\"\ndevice = \"missing.img\"\n");
    assert_eq!((e.kind, e.line, e.key.as_str()), (K::Unreachable, Some(1), "stores.s"), "{e}");
    let e = open("[cells.c]\nkind = \"sector\"\nsocket = \"nobody.sock\"\n");
    assert_eq!((e.kind, e.key.as_str()), (K::Unreachable, "cells.c"), "{e}");
    assert!(e.message.contains("cellar sector serve"), "{e}");
    let e = open(
        "[stores.p]\nkind = \"postgres\"\nurl = \"postgres://x@127.0.0.1:1/db?connect_timeout=2\"\n",
    );
    assert_eq!((e.kind, e.key.as_str()), (K::Unreachable, "stores.p"), "{e}");
    // A secret file others can read is refused; so is a wrong secret for an existing value.
    let key = dir.path().join("key");
    std::fs::write(&key, "ab".repeat(32)).unwrap();
    let sealed = "[cells.f]\nkind = \"file\"\npath = \"cell\"\n\n[cells.s]\nkind = \"sealed\"\ninner = \"f\"\nsecret_file = \"key\"\n";
    let e = open(sealed);
    assert_eq!((e.kind, e.line, e.key.as_str()), (K::Unreachable, Some(5), "cells.s"), "{e}");
    assert!(e.message.contains("chmod 600"), "{e}");
    let e = Registry::open(Path::new("/nonexistent/cellar.toml")).unwrap_err();
    assert_eq!(e.kind, K::Io);
}

fn secret(dir: &Path, name: &str, byte: u8) {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, hex::encode([byte; 32])).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// Every non-PostgreSQL kind opened from one file: a volume works end to end, and the probe
/// reports every backend.
#[test]
fn every_local_kind_opens_and_probes() {
    let dir = tempfile::tempdir().unwrap();
    secret(dir.path(), "key", 1);
    secret(dir.path(), "wrong", 2);
    let dev = dir.path().join("dev.img");
    {
        let d = cellar::sector::FileDevice::create(&dev, 2 + 8 * 256).unwrap();
        cellar::sector::Engine::format(d, cellar::sector::EngineConfig::default()).unwrap();
    }
    let text = r#"
[stores.m]
kind = "mem"
[stores.d]
kind = "dir"
path = "store"
[stores.s]
kind = "sector"
device = "dev.img"
[cells.m]
kind = "mem"
[cells.f]
kind = "file"
path = "cell"
[cells.s]
kind = "sector"
device = "dev.img"
id = 3
[cells.sealed]
kind = "sealed"
inner = "f"
secret_file = "key"
[volumes.v]
cell = "sealed"
store = "d"
mode_lock = "dir"
mode_lock_path = "modes"
[volumes.w]
cell = "s"
store = "s"
[shares.main]
volume = "v"
"#;
    let path = write_config(dir.path(), text);
    let reg = Registry::open(&path).unwrap();
    let v = reg.volume("v").unwrap();
    let h = v.store.post(b"hello").unwrap();
    assert!(v.cell.cas(b"", &HashList::encode(&[h])).unwrap().swapped);
    assert_eq!(check_vol1(v, &HashList).unwrap(), None);
    let w = reg.volume("w").unwrap();
    w.store.post(b"garbage").unwrap();
    assert_eq!(cleanup(w, &HashList).unwrap().blobs_deleted, 1);
    let probe = reg.probe();
    assert!(probe.iter().all(|l| l.ok), "{probe:?}");
    assert_eq!(probe.len(), 3 + 4 + 2 + 1, "{probe:?}");
    assert!(
        probe.iter().any(|l| l.text.starts_with("store d: dir") && l.text.ends_with(": 1 blobs")),
        "{probe:?}"
    );
    drop(reg);
    // Reopen with the wrong secret: the sealed value does not open, and start-up says so.
    let wrong = text.replace("secret_file = \"key\"", "secret_file = \"wrong\"");
    let e = Registry::open(&write_config(dir.path(), &wrong)).unwrap_err();
    assert_eq!((e.kind, e.key.as_str()), (K::Unreachable, "cells.sealed"), "{e}");
    assert!(e.message.contains("corrupt"), "{e}");
}

#[test]
fn a_postgres_volume_opens_with_postgres_mode_lock() {
    let Some(url) = pg_support::pg_url("registry::a_postgres_volume_opens_with_postgres_mode_lock")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let ns = format!("registry-{}", std::process::id());
    let text = format!(
        "[stores.pg]\nkind = \"postgres\"\nurl = \"{url}\"\nnamespace = \"{ns}\"\n\n\
         [cells.pg]\nkind = \"postgres\"\nurl = \"{url}\"\nname = \"{ns}\"\n\n\
         [volumes.shared]\ncell = \"pg\"\nstore = \"pg\"\n"
    );
    let path = write_config(dir.path(), &text);
    let reg = Registry::open(&path).unwrap();
    assert!(matches!(reg.config().volumes["shared"].spec.mode_lock, ModeLockSpec::Postgres(_)));
    let v = reg.volume("shared").unwrap();
    let h = v.store.post(b"in postgres").unwrap();
    let before = v.cell.read().unwrap();
    assert!(v.cell.cas(&before, &HashList::encode(&[h])).unwrap().swapped);
    assert_eq!(check_vol1(v, &HashList).unwrap(), None);
    let probe = reg.probe();
    assert!(probe.iter().all(|l| l.ok), "{probe:?}");
    assert!(!probe.iter().any(|l| l.text.contains(":postgres@") || l.text.contains("password")));
}
