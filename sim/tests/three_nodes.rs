//! Three `cellar node` processes on loopback converge after concurrent writes (issue 6): runs
//! `docs/three-nodes.sh` against the freshly built binary, under both merge policies.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test reports failure by panicking"
)]

use std::path::PathBuf;
use std::process::Command;

fn run_script(policy: &str) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new("bash")
        .arg(root.join("docs/three-nodes.sh"))
        .env("CELLAR", env!("CARGO_BIN_EXE_cellar"))
        .env("POLICY", policy)
        .env("CONVERGE_SECS", "60")
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{policy}: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("converged"), "{stdout}");
    assert!(stdout.contains("/users/user2/name = User 2"), "{stdout}");
    if policy == "keep-both" {
        assert!(
            stdout.contains("written by node 0 | written by node 1 | written by node 2"),
            "{stdout}"
        );
    } else {
        assert!(
            stdout.contains("/shared = written by node 2\n"),
            "LWW: highest writer wins the tie\n{stdout}"
        );
    }
}

#[test]
fn three_nodes_converge_lww() {
    run_script("lww");
}

#[test]
fn three_nodes_converge_keep_both() {
    run_script("keep-both");
}
