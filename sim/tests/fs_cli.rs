//! The Got-style commands end to end, as a new user runs them (`specs/fs.md`, issue 10): init,
//! commit a tree with nested folders, symlinks, empty files, a multi-chunk file and odd names;
//! checkout and compare (bytes, modes, mtimes, symlinks); a one-byte edit adds few blobs; push
//! to a second repository and check out there; pull merges diverged histories; a flipped byte in
//! a stored blob makes scrub and checkout fail naming the problem.
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

fn ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(out.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn blobs(repo: &Path) -> usize {
    walk_files(&repo.join("store"))
}

fn walk_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            if p.is_dir() { walk_files(&p) } else { 1 }
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
    std::fs::create_dir_all(src.join("a/b/c")).unwrap();
    std::fs::write(src.join("a/b/c/empty"), b"").unwrap();
    std::fs::write(src.join("a/odd name \u{e9}\n"), b"odd").unwrap();
    std::os::unix::fs::symlink("a/b", src.join("link")).unwrap();
    std::os::unix::fs::symlink("/nowhere/at/all", src.join("dangling")).unwrap();
    let big: Vec<u8> =
        (0..6_000_000u64).map(|i| (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8).collect();
    std::fs::write(src.join("big.bin"), &big).unwrap();
    std::fs::set_permissions(src.join("big.bin"), std::fs::Permissions::from_mode(0o600)).unwrap();

    ok(&["init", s(&repo)]);
    let head1 = ok(&["commit", "-r", s(&repo), "-m", "one", s(&src)]);
    assert!(head1.starts_with("cellar:ref:v1:"), "{head1}");
    ok(&["checkout", "-r", s(&repo), s(&out)]);
    same_tree(&src, &out);
    assert!(ok(&["ls", "-r", s(&repo), "/a"]).contains("odd name"));
    assert_eq!(ok(&["cat", "-r", s(&repo), "/a/odd name \u{e9}\n"]), "odd");

    // One byte edited in the 6 MB file: a few chunks and nodes, not the file again.
    let before = blobs(&repo);
    let mut edited = big.clone();
    edited[3_000_000] ^= 0xff;
    std::fs::write(src.join("big.bin"), &edited).unwrap();
    ok(&["commit", "-r", s(&repo), "-m", "two", s(&src)]);
    let added = blobs(&repo) - before;
    eprintln!("one-byte edit of a 6 MB file added {added} blobs");
    assert!(added <= 12, "{added} blobs added by a one-byte edit");
    assert_eq!(ok(&["diff", "-r", s(&repo), "HEAD~1", "HEAD"]).trim(), "M /big.bin");
    assert_eq!(ok(&["log", "-r", s(&repo)]).lines().count(), 4);

    // Push to a second repository and check out there.
    let (remote, out2) = (t.path().join("remote"), t.path().join("out2"));
    ok(&["init", s(&remote)]);
    ok(&["push", "-r", s(&repo), s(&remote)]);
    ok(&["checkout", "-r", s(&remote), s(&out2)]);
    same_tree(&src, &out2);

    // Diverge and pull: a merge commit holds both changes.
    let side = t.path().join("side");
    std::fs::create_dir_all(&side).unwrap();
    ok(&["checkout", "-r", s(&remote), s(&side.join("w"))]);
    std::fs::write(side.join("w/theirs.txt"), b"theirs").unwrap();
    ok(&["commit", "-r", s(&remote), "-m", "theirs", s(&side.join("w"))]);
    std::fs::write(src.join("ours.txt"), b"ours").unwrap();
    ok(&["commit", "-r", s(&repo), "-m", "ours", s(&src)]);
    ok(&["pull", "-r", s(&repo), s(&remote)]);
    assert_eq!(ok(&["cat", "-r", s(&repo), "/theirs.txt"]), "theirs");
    assert_eq!(ok(&["cat", "-r", s(&repo), "/ours.txt"]), "ours");
    ok(&["gc", "-r", s(&repo)]);
    ok(&["scrub", "-r", s(&repo)]);

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
    let co = run(&["checkout", "-r", s(&repo), "--commit", &commit, s(&t.path().join("out3"))]);
    assert!(!co.status.success());
    let err = String::from_utf8_lossy(&co.stderr);
    assert!(err.contains("/big.bin") && err.lines().count() == 1, "{err}");
}
