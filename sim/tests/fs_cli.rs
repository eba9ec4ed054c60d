//! The Got-style commands end to end, as a new user runs them (`specs/fs.md`, `specs/marks.md`,
//! issue 10): init, commit a tree with nested folders, symlinks, empty files, a 20 MiB random
//! file and odd names; checkout and compare (`diff -r --no-dereference`, modes, mtimes); a
//! one-byte edit adds a few chunks; push to a second repository and check out there; pull merges
//! diverged histories; a flipped byte in a stored blob makes scrub report it and checkout fail
//! naming the file. Then marks (create, fork, rename, delete, commit `--mark`, merge), retention
//! (`gc --keep-last/--keep-within/--keep-newer`: a pruned history still verifies and merges),
//! one-line errors for bad input, and the upgrade of a repository written before marks.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test reports failure by panicking"
)]

use cellar::fs::host::host_attrs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cellar")).args(args).output().unwrap()
}

/// A command that must fail with exactly one line on stderr containing `needle`.
fn fails(args: &[&str], needle: &str) -> String {
    let out = run(args);
    assert!(!out.status.success(), "{args:?} succeeded");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(err.lines().count(), 1, "{args:?}: not one line: {err}");
    assert!(err.contains(needle), "{args:?}: {err:?} does not mention {needle:?}");
    err
}

/// `n` pseudo-random bytes from `seed` (SplitMix64), fast enough for tens of MiB.
fn random_bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut rng = cellar::env::SplitMix64::new(seed);
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        out.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    out.truncate(n);
    out
}

fn ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(out.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn blobs(repo: &Path) -> usize {
    walk_files(&repo.join("store"), &|_| 1) as usize
}

/// The sum of `per_file` over every file below `dir`.
fn walk_files(dir: &Path, per_file: &dyn Fn(&std::fs::Metadata) -> u64) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let m = e.metadata().unwrap();
            if m.is_dir() { walk_files(&e.path(), per_file) } else { per_file(&m) }
        })
        .sum()
}

/// Same names, kinds, bytes, targets, modes and mtimes below `a` and `b`.
fn same_tree(a: &Path, b: &Path) {
    let mut names: Vec<_> = std::fs::read_dir(a).unwrap().map(|e| e.unwrap().file_name()).collect();
    names.sort();
    let mut other: Vec<_> = std::fs::read_dir(b).unwrap().map(|e| e.unwrap().file_name()).collect();
    other.sort();
    assert_eq!(names, other, "{}", a.display());
    for n in names {
        let (x, y) = (a.join(&n), b.join(&n));
        let (mx, my) =
            (std::fs::symlink_metadata(&x).unwrap(), std::fs::symlink_metadata(&y).unwrap());
        assert_eq!(host_attrs(&mx), host_attrs(&my), "{}", x.display());
        if mx.is_dir() {
            same_tree(&x, &y);
        } else if mx.is_symlink() {
            assert_eq!(std::fs::read_link(&x).unwrap(), std::fs::read_link(&y).unwrap());
        } else {
            assert_eq!(std::fs::read(&x).unwrap(), std::fs::read(&y).unwrap(), "{}", x.display());
        }
    }
}

#[test]
fn got_workflow() {
    let t = tempfile::tempdir().unwrap();
    let (src, repo, out) = (t.path().join("src"), t.path().join("r"), t.path().join("out"));
    std::fs::create_dir_all(src.join("a/b/c/d")).unwrap();
    std::fs::create_dir_all(src.join("empty dir")).unwrap();
    std::fs::write(src.join("a/b/c/empty"), b"").unwrap();
    std::fs::write(src.join("a/b/c/d/also empty"), b"").unwrap();
    std::fs::write(src.join("a/odd name \u{e9}\n"), b"odd").unwrap();
    std::fs::write(src.join("a/-dash"), b"dash").unwrap();
    std::fs::write(src.join("a/tab\there"), b"tab").unwrap();
    std::fs::write(src.join("a/\u{1f600}.txt"), b"emoji").unwrap();
    std::fs::write(src.join("a/b/small.txt"), b"hello\n").unwrap();
    std::os::unix::fs::symlink("a/b", src.join("link")).unwrap();
    std::os::unix::fs::symlink("/nowhere/at/all", src.join("dangling")).unwrap();
    std::os::unix::fs::symlink("../small.txt", src.join("a/b/c/up")).unwrap();
    let big = random_bytes(7, 20 << 20);
    std::fs::write(src.join("big.bin"), &big).unwrap();
    std::fs::set_permissions(src.join("big.bin"), std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::set_permissions(src.join("a/b/small.txt"), std::fs::Permissions::from_mode(0o751))
        .unwrap();

    ok(&["init", s(&repo)]);
    let head1 = ok(&["commit", "-r", s(&repo), "-m", "one", s(&src)]);
    assert!(head1.starts_with("cellar:ref:v1:"), "{head1}");
    ok(&["checkout", "-r", s(&repo), "main", s(&out)]);
    let diff = Command::new("diff").args(["-r", "--no-dereference", s(&src), s(&out)]).output();
    let diff = diff.unwrap();
    assert!(
        diff.status.success() && diff.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&diff.stdout)
    );
    same_tree(&src, &out);
    assert!(ok(&["ls", "-r", s(&repo), "/a"]).contains("odd name"));
    assert!(ok(&["ls", "-r", s(&repo), "main:/a/b"]).contains("small.txt"));
    assert!(ok(&["ls", "-r", s(&repo), "main"]).contains("big.bin"));
    assert_eq!(ok(&["cat", "-r", s(&repo), "/a/odd name \u{e9}\n"]), "odd");
    assert_eq!(ok(&["cat", "-r", s(&repo), "main:/a/b/small.txt"]), "hello\n");

    // One byte edited in the 20 MiB file: a few chunks and nodes, not the file again.
    let before = blobs(&repo);
    let mut edited = big.clone();
    edited[10 << 20] ^= 0xff;
    std::fs::write(src.join("big.bin"), &edited).unwrap();
    ok(&["commit", "-r", s(&repo), "-m", "two", s(&src)]);
    let added = blobs(&repo) - before;
    eprintln!("one-byte edit of a 20 MiB file added {added} blobs");
    assert!(added <= 12, "{added} blobs added by a one-byte edit");
    assert_eq!(ok(&["diff", "-r", s(&repo), "HEAD~1", "HEAD"]).trim(), "M /big.bin");
    assert_eq!(ok(&["diff", "-r", s(&repo), "main~1", "main"]).trim(), "M /big.bin");
    assert_eq!(ok(&["log", "-r", s(&repo)]).lines().count(), 4);

    // Push to a second repository and check out there.
    let (remote, out2) = (t.path().join("remote"), t.path().join("out2"));
    ok(&["init", s(&remote)]);
    ok(&["push", "-r", s(&repo), s(&remote)]);
    ok(&["checkout", "-r", s(&remote), "main", s(&out2)]);
    same_tree(&src, &out2);
    // A mark the remote lacks is created there by the push, with its history.
    ok(&["mark", "-r", s(&repo), "fork", "main", "topic"]);
    ok(&["push", "-r", s(&repo), s(&remote), "topic"]);
    assert!(ok(&["mark", "list", "-r", s(&remote)]).contains("topic"));
    assert_eq!(ok(&["log", "-r", s(&remote), "--mark", "topic"]).lines().count(), 4);

    // Diverge and pull: a merge commit holds both changes.
    let side = t.path().join("side");
    std::fs::create_dir_all(&side).unwrap();
    ok(&["checkout", "-r", s(&remote), s(&side.join("w"))]);
    std::fs::write(side.join("w/theirs.txt"), b"theirs").unwrap();
    ok(&["commit", "-r", s(&remote), "-m", "theirs", s(&side.join("w"))]);
    std::fs::write(src.join("ours.txt"), b"ours").unwrap();
    ok(&["commit", "-r", s(&repo), "-m", "ours", s(&src)]);
    fails(&["push", "-r", s(&repo), s(&remote)], "pull first");
    ok(&["pull", "-r", s(&repo), s(&remote)]);
    assert_eq!(ok(&["cat", "-r", s(&repo), "/theirs.txt"]), "theirs");
    assert_eq!(ok(&["cat", "-r", s(&repo), "/ours.txt"]), "ours");
    ok(&["push", "-r", s(&repo), s(&remote)]);
    ok(&["gc", "-r", s(&repo)]);
    ok(&["scrub", "-r", s(&repo)]);

    // MARK-10: no mark name is readable in any stored file.
    let mut stack = vec![repo.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let bytes = std::fs::read(&p).unwrap();
                assert!(!bytes.windows(5).any(|w| w == b"topic"), "{} names a mark", p.display());
            }
        }
    }

    // Flip one byte of the largest stored blob: scrub reports it, checkout fails naming the file.
    let mut largest = (0, std::path::PathBuf::new());
    let mut stack = vec![repo.join("store")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let n = std::fs::metadata(&p).unwrap().len();
                if n > largest.0 {
                    largest = (n, p);
                }
            }
        }
    }
    let mut bytes = std::fs::read(&largest.1).unwrap();
    bytes[100] ^= 1;
    let mut perms = std::fs::metadata(&largest.1).unwrap().permissions();
    perms.set_mode(0o644);
    std::fs::set_permissions(&largest.1, perms).unwrap();
    std::fs::write(&largest.1, bytes).unwrap();
    let scrub = run(&["scrub", "-r", s(&repo)]);
    assert!(!scrub.status.success());
    let report = String::from_utf8_lossy(&scrub.stderr).into_owned();
    assert!(report.contains("big.bin"), "{report}");
    // The damaged chunk may belong to an older version only: check out the commit scrub named.
    let commit =
        report.split("commit ").nth(1).unwrap().split(':').take(4).collect::<Vec<_>>().join(":");
    let co = run(&["checkout", "-r", s(&repo), &commit, s(&t.path().join("out3"))]);
    assert!(!co.status.success());
    let err = String::from_utf8_lossy(&co.stderr);
    assert!(err.contains("/big.bin") && err.lines().count() == 1, "{err}");
}

#[test]
fn marks_and_retention() {
    let t = tempfile::tempdir().unwrap();
    let (src, repo) = (t.path().join("src"), t.path().join("r"));
    std::fs::create_dir_all(src.join("d")).unwrap();
    let r = s(&repo);
    ok(&["init", r]);
    for i in 0..4u8 {
        std::fs::write(src.join("d/main.txt"), format!("main {i}")).unwrap();
        std::fs::write(src.join(format!("f{i}")), random_bytes(u64::from(i), 50_000)).unwrap();
        ok(&["commit", "-r", r, "-m", &format!("main {i}"), s(&src)]);
        if i == 1 {
            ok(&["mark", "fork", "-r", r, "main", "feature"]);
        }
    }
    // The feature mark changes another file from the fork point.
    let side = t.path().join("side");
    ok(&["checkout", "-r", r, "feature", s(&side)]);
    std::fs::write(side.join("feature.txt"), b"feature work").unwrap();
    ok(&["commit", "-r", r, "--mark", "feature", "-m", "feature", s(&side)]);
    ok(&["mark", "create", "-r", r, "scratch"]);
    ok(&["mark", "rename", "-r", r, "scratch", "scratch2"]);
    let list = ok(&["mark", "list", "-r", r]);
    assert_eq!(list.lines().count(), 3, "{list}");
    assert!(list.contains("scratch2\t(no commits)"), "{list}");
    ok(&["mark", "delete", "-r", r, "scratch2"]);
    // A single file commits too.
    ok(&["mark", "create", "-r", r, "one-file"]);
    ok(&["commit", "-r", r, "--mark", "one-file", "-m", "f", s(&src.join("f0"))]);
    assert!(ok(&["ls", "-r", r, "one-file"]).contains("f0"));
    ok(&["mark", "delete", "-r", r, "one-file"]);

    // Bad input: one line naming the problem, non-zero exit.
    fails(&["commit", "-r", r, "--mark", "nope", "-m", "x", s(&src)], "no mark named nope");
    fails(&["mark", "fork", "-r", r, "nope", "x"], "no mark named nope");
    fails(&["mark", "create", "-r", r, "main"], "already exists");
    fails(&["mark", "create", "-r", r, "bad name"], "invalid mark name");
    fails(&["mark", "create", "-r", r, "HEAD"], "HEAD");
    fails(&["ls", "-r", r, "main:/no/such"], "no such file");
    fails(&["cat", "-r", r, "main~9:/f0"], "shorter");
    fails(&["checkout", "-r", r, "nope", s(&t.path().join("x"))], "no mark named nope");
    fails(&["log", "-r", s(&t.path().join("not-a-repo"))], "not a usable volume");
    fails(&["gc", "-r", r, "--keep-last", "0"], "at least 1");
    fails(&["gc", "-r", r, "--keep-within", "5x"], "bad duration");
    fails(&["gc", "-r", r, "--keep-newer", "2020-13-01"], "bad date");
    fails(&["commit", "-r", r, "-m", "x", s(&t.path().join("absent"))], "absent");
    fails(&["merge", "-r", r, "main", "nope"], "no mark named nope");

    // Everything is newer than an hour ago: nothing is pruned.
    let kept = ok(&["gc", "-r", r, "--keep-within", "1h"]);
    assert!(kept.contains("main: 4 of 4 commits keep their trees"), "{kept}");
    // Keep the last commit only: main's trees go back only to its merge base with feature.
    let before = blobs(&repo);
    let pruned = ok(&["gc", "-r", r, "--keep-last", "1"]);
    assert!(pruned.contains("main: 3 of 4 commits keep their trees"), "{pruned}");
    assert!(blobs(&repo) < before, "old trees were deleted");
    let log = ok(&["log", "-r", r]);
    assert_eq!(log.matches("(pruned)").count(), 1, "{log}");
    fails(&["checkout", "-r", r, "main~3", s(&t.path().join("old"))], "pruned");
    ok(&["scrub", "-r", r]);
    // The pruned history still merges three-way: no conflicts, both changes.
    ok(&["merge", "-r", r, "main", "feature"]);
    let merged = t.path().join("merged");
    ok(&["checkout", "-r", r, "main", s(&merged)]);
    assert_eq!(std::fs::read(merged.join("feature.txt")).unwrap(), b"feature work");
    assert_eq!(std::fs::read(merged.join("d/main.txt")).unwrap(), b"main 3");
    // With feature merged, nothing protects the old base: a date in the future keeps only heads.
    ok(&["mark", "delete", "-r", r, "feature"]);
    let out = ok(&["gc", "-r", r, "--keep-newer", "2999-01-01"]);
    assert!(out.contains("main: 1 of 6 commits keep their trees"), "{out}");
    ok(&["scrub", "-r", r]);
    let last = t.path().join("last");
    ok(&["checkout", "-r", r, s(&last)]);
    same_tree(&merged, &last);
}

#[test]
fn an_old_repository_is_upgraded() {
    use cellar::fs::Fs;
    use cellar::storage::volume::DirVolume;
    let t = tempfile::tempdir().unwrap();
    let (src, repo) = (t.path().join("src"), t.path().join("r"));
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("x"), b"old").unwrap();
    {
        // What `cellar init` + `cellar commit` wrote before marks: the head in the cell.
        let vol = DirVolume::init(&repo, std::sync::Arc::new(cellar::env::OsEntropy)).unwrap();
        let fs = Fs::new(vol.volume.store.as_ref(), vol.secret.ref_salt());
        let (tree, _) = cellar::fs::host::import_tree(&fs, &src).unwrap();
        let head = fs.commit(&tree, None, cellar::db::merge::NodeId(0), "old").unwrap();
        assert!(vol.volume.cell.cas(b"", &head.to_bytes()).unwrap().swapped);
    }
    let out = run(&["log", "-r", s(&repo)]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("upgraded"));
    assert!(String::from_utf8_lossy(&out.stdout).contains("old"));
    assert_eq!(ok(&["cat", "-r", s(&repo), "/x"]), "old");
    std::fs::write(src.join("x"), b"new").unwrap();
    ok(&["commit", "-r", s(&repo), "-m", "new", s(&src)]);
    assert_eq!(ok(&["cat", "-r", s(&repo), "/x"]), "new");
    assert_eq!(ok(&["log", "-r", s(&repo)]).lines().count(), 4);
}

/// FS-27's per-repository switch: `cellar init --compression none` stores every data blob
/// plain (a compressible file takes its full size), `zstd` (the default) compresses it; both
/// check out byte for byte; a bad setting names its file.
#[test]
fn compression_is_a_repository_setting() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    std::fs::create_dir(&src).unwrap();
    let text: Vec<u8> = b"the same line, again and again\n".repeat(64 * 1024); // ~2 MiB
    std::fs::write(src.join("text"), &text).unwrap();
    let mut sizes = Vec::new();
    for c in ["zstd", "none"] {
        let repo = t.path().join(c);
        assert!(ok(&["init", "--compression", c, s(&repo)]).contains(&format!("compression {c}")));
        ok(&["commit", "-r", s(&repo), "-m", "text", s(&src)]);
        sizes.push(walk_files(&repo.join("store"), &|m| m.len()));
        let out = t.path().join(format!("out-{c}"));
        ok(&["checkout", "-r", s(&repo), "main", s(&out)]);
        assert_eq!(std::fs::read(out.join("text")).unwrap(), text);
    }
    assert!(sizes[0] * 20 < text.len() as u64, "zstd should shrink the text: {sizes:?}");
    assert!(sizes[1] > text.len() as u64, "none must store the text plain: {sizes:?}");
    std::fs::write(t.path().join("none").join("compression"), "lz4\n").unwrap();
    fails(&["log", "-r", s(&t.path().join("none"))], "unknown compression \"lz4\"");
}
