//! Spec agreement for file trees (`specs/fs.md` FS-9..FS-15): random operation sequences —
//! creates, writes at offsets, truncates across extent boundaries, renames of non-empty
//! directories, removals, hard links (FS-12) — go to both `cellar::fs` and `cellar_model::spec::fs::FsSpec`; after
//! every step the refusals must match and the whole tree (paths, kinds, attributes, sizes,
//! bytes, targets, directory counts, link counts) must be identical.
//!
//! The chunker runs with tiny sizes (16 B / 64 B / 128 B) so a few hundred bytes make many
//! extents. The planted bugs `fs:extent-keyed-by-start`, `fs:rename-leaves-old-subtree` and
//! `fs:unlink-drops-inode` must make this check fail.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test reports failure by panicking"
)]

use cellar::fs::{Attrs, ChunkerParams, Fs, FsError, FsPath, Kind};
use cellar::storage::refs::Ref;
use cellar::storage::store::MemStore;
use cellar_model::spec::fs::{FsAttrs, FsNode, FsOp, FsReject, FsSpec, SpecPath};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

const SALT: [u8; 32] = [0x42; 32];
const TINY: ChunkerParams = ChunkerParams { min_bytes: 16, avg_bits: 6, max_bytes: 128 };

/// A path chosen against the spec's current tree when the step runs: an existing path (any
/// kind) or a fresh name inside an existing directory; a small share are arbitrary paths, so
/// refusals are exercised too. Most steps therefore meet a parent that exists.
#[derive(Clone, Copy, Debug)]
enum Sel {
    Existing(u16),
    File(u16),
    NonEmptyDir(u16),
    Fresh(u16, u8),
    Any(u8, u8),
}

fn any_path() -> BoxedStrategy<Sel> {
    (0..4u8, 0..4u8).prop_map(|(a, b)| Sel::Any(a, b)).boxed()
}

fn existing() -> impl Strategy<Value = Sel> {
    prop_oneof![9 => any::<u16>().prop_map(Sel::Existing), 1 => any_path()]
}

fn file() -> impl Strategy<Value = Sel> {
    prop_oneof![9 => any::<u16>().prop_map(Sel::File), 1 => any_path()]
}

fn fresh() -> impl Strategy<Value = Sel> {
    prop_oneof![9 => (any::<u16>(), 0..4u8).prop_map(|(d, n)| Sel::Fresh(d, n)), 1 => any_path()]
}

const NAMES: [&str; 4] = ["a", "b", "c", "d"];

fn resolve(sel: Sel, spec: &FsSpec) -> SpecPath {
    let name = |n: u8| NAMES[usize::from(n) % NAMES.len()].as_bytes().to_vec();
    match sel {
        Sel::Existing(i) => {
            let paths: Vec<&SpecPath> = spec.nodes().keys().filter(|p| !p.is_empty()).collect();
            if paths.is_empty() {
                return vec![name(0)];
            }
            paths[usize::from(i) % paths.len()].clone()
        }
        Sel::File(i) => {
            let files: Vec<&SpecPath> = spec
                .nodes()
                .iter()
                .filter(|(_, node)| matches!(node, FsNode::File { .. }))
                .map(|(p, _)| p)
                .collect();
            if files.is_empty() {
                return vec![name(0)];
            }
            files[usize::from(i) % files.len()].clone()
        }
        Sel::NonEmptyDir(i) => {
            let dirs: Vec<&SpecPath> = spec
                .nodes()
                .keys()
                .filter(|p| !p.is_empty() && spec.children(p).next().is_some())
                .collect();
            if dirs.is_empty() {
                return vec![name(0)];
            }
            dirs[usize::from(i) % dirs.len()].clone()
        }
        Sel::Fresh(d, n) => {
            let dirs: Vec<&SpecPath> = spec
                .nodes()
                .iter()
                .filter(|(_, node)| matches!(node, FsNode::Dir { .. }))
                .map(|(p, _)| p)
                .collect();
            let mut p = dirs[usize::from(d) % dirs.len()].clone();
            p.push(name(n));
            p
        }
        Sel::Any(a, b) => vec![name(a), name(b)],
    }
}

fn attrs() -> impl Strategy<Value = FsAttrs> {
    (prop::sample::select(vec![0o644u32, 0o755, 0o600]), 0..3u32, -5..5i64)
        .prop_map(|(mode, uid, mtime_ns)| FsAttrs { mode, uid, gid: uid, mtime_ns })
}

/// An operation whose paths are resolved when it runs (see [`Sel`]).
#[derive(Clone, Debug)]
enum Step {
    Create(Sel, FsAttrs),
    Mkdir(Sel, FsAttrs),
    Symlink(Sel, FsAttrs),
    Write(Sel, u64, Vec<u8>),
    Truncate(Sel, u64),
    Remove(Sel),
    Rmdir(Sel),
    Rename(Sel, Sel),
    Chmod(Sel, u32),
    Utimens(Sel, i64),
    Link(Sel, Sel),
}

fn step() -> impl Strategy<Value = Step> {
    let data = prop::collection::vec(any::<u8>(), 0..300);
    prop_oneof![
        3 => (fresh(), attrs()).prop_map(|(p, a)| Step::Create(p, a)),
        3 => (fresh(), attrs()).prop_map(|(p, a)| Step::Mkdir(p, a)),
        1 => (fresh(), attrs()).prop_map(|(p, a)| Step::Symlink(p, a)),
        6 => (file(), 0..600u64, data).prop_map(|(p, o, d)| Step::Write(p, o, d)),
        3 => (file(), 0..700u64).prop_map(|(p, n)| Step::Truncate(p, n)),
        1 => existing().prop_map(Step::Remove),
        1 => existing().prop_map(Step::Rmdir),
        3 => (existing(), fresh()).prop_map(|(a, b)| Step::Rename(a, b)),
        2 => (any::<u16>(), fresh()).prop_map(|(a, b)| Step::Rename(Sel::NonEmptyDir(a), b)),
        1 => (existing(), 0..0o777u32).prop_map(|(p, m)| Step::Chmod(p, m)),
        1 => (existing(), -9..9i64).prop_map(|(p, t)| Step::Utimens(p, t)),
        2 => (file(), fresh()).prop_map(|(a, b)| Step::Link(a, b)),
        1 => (existing(), fresh()).prop_map(|(a, b)| Step::Link(a, b)),
    ]
}

fn to_op(step: &Step, spec: &FsSpec) -> FsOp {
    let r = |s: &Sel| resolve(*s, spec);
    match step {
        Step::Create(p, a) => FsOp::Create(r(p), *a),
        Step::Mkdir(p, a) => FsOp::Mkdir(r(p), *a),
        Step::Symlink(p, a) => FsOp::Symlink(r(p), b"../t".to_vec(), *a),
        Step::Write(p, o, d) => FsOp::Write(r(p), *o, d.clone()),
        Step::Truncate(p, n) => FsOp::Truncate(r(p), *n),
        Step::Remove(p) => FsOp::Remove(r(p)),
        Step::Rmdir(p) => FsOp::Rmdir(r(p)),
        Step::Rename(a, b) => FsOp::Rename(r(a), r(b)),
        Step::Chmod(p, m) => FsOp::Chmod(r(p), *m),
        Step::Utimens(p, t) => FsOp::Utimens(r(p), *t),
        Step::Link(a, b) => FsOp::Link(r(a), r(b)),
    }
}

fn run_steps(steps: &[Step]) -> Result<Stats, String> {
    let root_attrs = FsAttrs { mode: 0o755, ..FsAttrs::default() };
    let mut spec = FsSpec::new(root_attrs);
    let mut ops = Vec::new();
    for s in steps {
        let op = to_op(s, &spec);
        let _ = spec.apply(&op);
        ops.push(op);
    }
    check_sequence(&ops)
}

fn fs_path(p: &SpecPath) -> FsPath {
    p.iter().fold(FsPath::root(), |acc, n| acc.join(n).unwrap())
}

fn fs_attrs(a: FsAttrs) -> Attrs {
    Attrs { mode: a.mode, uid: a.uid, gid: a.gid, mtime_ns: a.mtime_ns }
}

fn reject(e: &FsError) -> Option<FsReject> {
    Some(match e {
        FsError::NotFound { .. } => FsReject::NotFound,
        FsError::AlreadyExists { .. } => FsReject::AlreadyExists,
        FsError::NotADirectory { .. } => FsReject::NotADirectory,
        FsError::IsADirectory { .. } => FsReject::IsADirectory,
        FsError::NotAFile { .. } => FsReject::NotAFile,
        FsError::NotEmpty { .. } => FsReject::NotEmpty,
        FsError::InvalidRename { .. } => FsReject::InvalidRename,
        FsError::InvalidPath { .. } => FsReject::InvalidPath,
        _ => return None,
    })
}

fn apply(fs: &Fs<'_>, root: &Ref, op: &FsOp) -> Result<Ref, FsError> {
    match op {
        FsOp::Create(p, a) => fs.create(root, &fs_path(p), fs_attrs(*a)),
        FsOp::Mkdir(p, a) => fs.mkdir(root, &fs_path(p), fs_attrs(*a)),
        FsOp::Symlink(p, t, a) => fs.symlink(root, &fs_path(p), t, fs_attrs(*a)),
        FsOp::Write(p, o, d) => fs.write(root, &fs_path(p), *o, d),
        FsOp::Truncate(p, n) => fs.truncate(root, &fs_path(p), *n),
        FsOp::Remove(p) => fs.remove(root, &fs_path(p)),
        FsOp::Rmdir(p) => fs.rmdir(root, &fs_path(p)),
        FsOp::Rename(a, b) => fs.rename(root, &fs_path(a), &fs_path(b)),
        FsOp::Chmod(p, m) => fs.chmod(root, &fs_path(p), *m),
        FsOp::Chown(p, u, g) => fs.chown(root, &fs_path(p), *u, *g),
        FsOp::Utimens(p, t) => fs.utimens(root, &fs_path(p), *t),
        FsOp::Link(a, b) => fs.link(root, &fs_path(a), &fs_path(b)),
    }
}

/// The whole tree must equal the spec's map (FS-9, FS-10, FS-14).
fn compare(fs: &Fs<'_>, root: &Ref, spec: &FsSpec) -> Result<(), String> {
    let walked = fs.walk(root, &FsPath::root()).map_err(|e| format!("walk: {e}"))?;
    let paths: Vec<SpecPath> =
        walked.iter().map(|(p, _)| p.names().map(<[u8]>::to_vec).collect()).collect();
    let want: Vec<SpecPath> = spec.nodes().keys().cloned().collect();
    if paths != want {
        return Err(format!("paths differ: impl {paths:?}\nspec {want:?}"));
    }
    for ((path, info), sp) in walked.iter().zip(&paths) {
        let node = &spec.nodes()[sp];
        let a = node.attrs();
        if info.attrs() != fs_attrs(a) || Some(info.size) != spec.size(sp) {
            return Err(format!("{path}: info {info:?} vs spec {node:?}"));
        }
        if info.kind != Kind::Dir {
            let n = fs.nlink(root, path).map_err(|e| format!("nlink {path}: {e}"))?;
            if Some(n) != spec.nlink(sp) {
                return Err(format!("{path}: {n} links, spec {:?}", spec.nlink(sp)));
            }
        }
        let same = match (node, info.kind) {
            (FsNode::Dir { .. }, Kind::Dir) => {
                let names: Vec<Vec<u8>> = fs
                    .readdir(root, path)
                    .map_err(|e| format!("readdir {path}: {e}"))?
                    .into_iter()
                    .map(|e| e.name)
                    .collect();
                names == spec.children(sp).map(<[u8]>::to_vec).collect::<Vec<_>>()
            }
            (FsNode::File { data, .. }, Kind::File) => {
                fs.read(root, path, 0, info.size).map_err(|e| format!("read {path}: {e}"))? == *data
            }
            (FsNode::Symlink { target, .. }, Kind::Symlink) => info.target == *target,
            _ => false,
        };
        if !same {
            return Err(format!("{path}: contents differ from the spec's {node:?}"));
        }
    }
    Ok(())
}

/// How much of a history the implementation accepted (to show the check is not vacuous).
#[derive(Debug, Default, Clone, Copy)]
struct Stats {
    accepted: usize,
    writes: usize,
    non_empty_dir_renames: usize,
    shrinking_truncates: usize,
    /// Accepted links, and accepted writes, truncates and removals of a linked name.
    links: usize,
    through_links: usize,
}

fn check_sequence(ops: &[FsOp]) -> Result<Stats, String> {
    let mut stats = Stats::default();
    let store = MemStore::new();
    let fs = Fs::with_chunker(&store, SALT, TINY);
    let root_attrs = FsAttrs { mode: 0o755, ..FsAttrs::default() };
    let mut root = fs.mkfs(fs_attrs(root_attrs)).unwrap();
    let mut spec = FsSpec::new(root_attrs);
    for (i, op) in ops.iter().enumerate() {
        let shrinks = matches!(op, FsOp::Truncate(p, n) if spec.size(p).is_some_and(|s| s > *n));
        let moves_tree = matches!(op, FsOp::Rename(a, _) if spec.children(a).next().is_some());
        let linked = match op {
            FsOp::Write(p, ..) | FsOp::Truncate(p, _) | FsOp::Remove(p) | FsOp::Rename(p, _) => {
                spec.nlink(p).is_some_and(|n| n > 1)
            }
            _ => false,
        };
        let want = spec.apply(op);
        match (apply(&fs, &root, op), want) {
            (Ok(r), Ok(())) => {
                stats.accepted += 1;
                match op {
                    FsOp::Write(_, _, d) if !d.is_empty() => stats.writes += 1,
                    FsOp::Rename(..) if moves_tree => stats.non_empty_dir_renames += 1,
                    FsOp::Truncate(..) if shrinks => stats.shrinking_truncates += 1,
                    FsOp::Link(..) => stats.links += 1,
                    _ => {}
                }
                stats.through_links += usize::from(linked);
                root = r;
            }
            (Err(e), Err(w)) if reject(&e) == Some(w) => {}
            (got, want) => {
                let got = got.map(|_| ());
                return Err(format!("step {i} {op:?}: impl {got:?}, spec {want:?}"));
            }
        }
        compare(&fs, &root, &spec).map_err(|e| format!("after step {i} {op:?}: {e}"))?;
    }
    Ok(stats)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn fs_agrees_with_spec(steps in prop::collection::vec(step(), 1..60)) {
        if let Err(e) = run_steps(&steps) {
            prop_assert!(false, "{}", e);
        }
    }
}

fn p(s: &str) -> SpecPath {
    s.split('/').filter(|n| !n.is_empty()).map(|n| n.as_bytes().to_vec()).collect()
}

/// A fixed history touching every rule the planted bugs break.
fn scripted() -> Vec<FsOp> {
    let a = FsAttrs { mode: 0o644, ..FsAttrs::default() };
    let bytes: Vec<u8> = (0..=255u8).cycle().take(700).collect();
    vec![
        FsOp::Mkdir(p("d"), a),
        FsOp::Mkdir(p("d/e"), a),
        FsOp::Create(p("d/e/f"), a),
        FsOp::Write(p("d/e/f"), 0, bytes.clone()),
        FsOp::Write(p("d/e/f"), 100, bytes[..50].to_vec()),
        FsOp::Truncate(p("d/e/f"), 333),
        FsOp::Truncate(p("d/e/f"), 900),
        FsOp::Rename(p("d"), p("x")),
        FsOp::Rmdir(p("x")),
        FsOp::Link(p("x/e/f"), p("x/g")),
        FsOp::Link(p("x/g"), p("h")),
        FsOp::Write(p("h"), 10, bytes[..40].to_vec()),
        FsOp::Rename(p("x"), p("y")),
        FsOp::Remove(p("y/e/f")),
        FsOp::Truncate(p("y/g"), 100),
        FsOp::Remove(p("y/g")),
        FsOp::Rmdir(p("y/e")),
        FsOp::Link(p("h"), p("y/e")),
    ]
}

fn deterministic_runner(cases: u32) -> TestRunner {
    let rng = TestRng::deterministic_rng(RngAlgorithm::ChaCha);
    TestRunner::new_with_rng(Config { cases, ..Config::default() }, rng)
}

/// The random histories exercise what they claim to: many accepted writes, truncates and
/// renames of non-empty directories (a vacuous generator would pass every check).
#[test]
fn random_histories_are_not_vacuous() {
    let mut runner = deterministic_runner(64);
    let total = std::sync::Mutex::new(Stats::default());
    runner
        .run(&prop::collection::vec(step(), 1..60), |steps| {
            let s = run_steps(&steps).map_err(TestCaseError::fail)?;
            let mut t = total.lock().unwrap();
            t.accepted += s.accepted;
            t.writes += s.writes;
            t.non_empty_dir_renames += s.non_empty_dir_renames;
            t.shrinking_truncates += s.shrinking_truncates;
            t.links += s.links;
            t.through_links += s.through_links;
            Ok(())
        })
        .unwrap();
    let t = *total.lock().unwrap();
    eprintln!("{t:?}");
    assert!(t.accepted >= 800 && t.writes >= 150, "{t:?}");
    assert!(t.non_empty_dir_renames >= 20 && t.shrinking_truncates >= 40, "{t:?}");
    assert!(t.links >= 40 && t.through_links >= 100, "FS-12 exercised: {t:?}");
}

#[test]
fn scripted_history_agrees() {
    check_sequence(&scripted()).unwrap();
}

/// Every checker must be seen to fail: each planted fs bug makes the random check fail.
#[cfg(feature = "planted-bugs")]
#[test]
fn planted_fs_bugs_are_caught() {
    for bug in ["fs:extent-keyed-by-start", "fs:rename-leaves-old-subtree", "fs:unlink-drops-inode"]
    {
        let _planted = cellar::bugs::plant(bug).unwrap();
        assert!(check_sequence(&scripted()).is_err(), "{bug}: the scripted history passed");
        let mut runner = deterministic_runner(256);
        let found = runner.run(&prop::collection::vec(step(), 1..60), |steps| {
            run_steps(&steps).map(|_| ()).map_err(TestCaseError::fail)
        });
        assert!(found.is_err(), "{bug}: 256 random histories did not catch it");
    }
}
