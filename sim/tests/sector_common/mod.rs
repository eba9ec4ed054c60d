//! Shared by the `cellar sector` end-to-end tests (`sector_cli.rs`, `sector_full_cli.rs`): run
//! the built binary's `sector` commands, and serve a device with `cellar sector serve`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    dead_code,
    reason = "a test reports failure by panicking; not every test binary uses every helper"
)]

use cellar::sector::proto::SectorClient;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_cellar");

pub fn cellar(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(BIN)
        .arg("sector")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A command that fails before reading stdin closes it: not the test's concern.
    let _ = child.stdin.take().unwrap().write_all(stdin);
    child.wait_with_output().unwrap()
}

pub fn ok(args: &[&str], stdin: &[u8]) -> String {
    let out = cellar(args, stdin);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Runs a command that must fail with one line on stderr; returns that line.
pub fn fails(args: &[&str], stdin: &[u8]) -> String {
    let out = cellar(args, stdin);
    assert!(!out.status.success(), "{args:?} should fail");
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err:?}");
    err
}

pub struct Served {
    child: Child,
    socket: PathBuf,
}

pub fn serve(dev: &Path, socket: &Path) -> Served {
    let child = Command::new(BIN)
        .args(["sector", "serve", "--path"])
        .arg(dev)
        .arg("--socket")
        .arg(socket)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while SectorClient::connect(socket).is_err() {
        assert!(Instant::now() < deadline, "server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Served { child, socket: socket.to_path_buf() }
}

impl Served {
    pub fn sock(&self) -> &str {
        self.socket.to_str().unwrap()
    }

    /// The server's socket.
    pub fn client(&self) -> SectorClient {
        SectorClient::connect(&self.socket).unwrap()
    }

    /// Sends SIGTERM and waits: the server's exit status and stderr.
    pub fn stop(mut self) -> (std::process::ExitStatus, String) {
        let status =
            Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
        let out = std::mem::replace(&mut self.child, Command::new("true").spawn().unwrap())
            .wait_with_output()
            .unwrap();
        (out.status, String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
