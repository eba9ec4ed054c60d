//! ADP-14 (`specs/adapters.md`): an open lets the kernel keep a file's cached pages only when
//! nothing reached the working tree from elsewhere (a refresh to another process's commit, a
//! merge at commit) since the file's previous open, and never for a number a new file took.
#![cfg(not(loom))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

mod share_support;
use share_support::*;

/// Runs the ADP-14 scenario; `Err` names the first open that answered wrongly.
fn scenario() -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let vol = volume();
    let (a, b) = (share(&vol, &dir, "a", 1), share(&vol, &dir, "b", 2));
    let root = a.root_ino();
    let f = file(&a, root, "f", b"one");
    a.commit("one").unwrap();
    let expect = |what: &str, got: bool, want: bool| {
        if got == want { Ok(()) } else { Err(format!("{what}: keep {got}, want {want}")) }
    };
    let open = |ino| {
        let (fh, keep) = a.open_cached(ino, false).unwrap();
        a.release(fh);
        keep
    };
    expect("first open", open(f), false)?;
    a.write(f, 0, b"ONE").unwrap();
    expect("reopen after this kernel's own write", open(f), true)?;
    a.commit("own").unwrap();
    expect("reopen after our own commit", open(f), true)?;

    // Another process commits a change; a's clean tree follows it (ADP-13).
    let g = b.lookup(b.root_ino(), b"f").unwrap().ino;
    b.write(g, 0, b"two").unwrap();
    b.commit("two").unwrap();
    expect("reopen after a refresh to another commit", open(f), false)?;
    expect("the open after that", open(f), true)?;

    // A lost CAS merges the other side's files in (ADP-5).
    file(&a, root, "mine", b"m");
    b.write(g, 0, b"three").unwrap();
    b.commit("three").unwrap();
    a.commit("merge").unwrap();
    expect("reopen after a merge at commit", open(f), false)?;

    // A new file that takes the number of a removed one.
    a.unlink(root, b"f").unwrap();
    let f2 = file(&a, root, "f", b"new");
    if f2 != f {
        return Err("the path-derived number was not reused: the check below is vacuous".into());
    }
    expect("first open of a new file under an old number", open(f2), false)?;
    Ok(())
}

#[test]
fn adp14_an_open_keeps_the_cache_only_without_outside_changes() {
    scenario().unwrap();
}

#[cfg(feature = "planted-bugs")]
#[test]
fn adp14_planted_keep_cache_always_is_caught() {
    let _bug = cellar::bugs::plant("adapters:keep-cache-always").unwrap();
    let err = scenario().unwrap_err();
    assert!(err.contains("first open"), "{err}");
}
