//! A real `cellar node` on loopback under hostile connections (specs/channel.md CH-6..CH-8):
//! 60 connections that send garbage, half a handshake, or nothing are dropped by the node within
//! its socket timeout, its memory stays bounded, and an honest `cellar kv` client is served
//! throughout. A client with the wrong group secret or none is refused with one line. Bounded in
//! count and time; loopback only.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test reports failure by panicking"
)]

use cellar::env::{DetEntropy, Entropy};
use cellar::net::channel::{Channel, ChannelConfig, ChannelPsk, StaticKeys};
use cellar::storage::secret::VolumeSecret;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const HOSTILE_EACH: usize = 20;
/// The node's socket timeout is 3 s; every hostile connection must be gone well before this.
const DROPPED_WITHIN: Duration = Duration::from_secs(8);
/// Most the node's resident memory may grow under the hostile connections.
const RSS_GROWTH_MAX_KIB: u64 = 64 * 1024;

struct Node(Child);
impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn kv(addr: &str, secret: Option<&str>, args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cellar"));
    c.args(["kv", "--node", addr]).args(args).env_remove("CELLAR_SECRET");
    if let Some(s) = secret {
        c.env("CELLAR_SECRET", s);
    }
    c.output().unwrap()
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Half of a real first handshake message (with the right PSK: the worst case).
fn half_handshake(secret: &VolumeSecret) -> Vec<u8> {
    let e: Arc<dyn Entropy> = Arc::new(DetEntropy::new(1));
    let keys = StaticKeys::generate(e.clone()).unwrap();
    let psk = ChannelPsk::from_secret(secret);
    let mut i = Channel::initiator(&keys, &psk, e, ChannelConfig::default(), 0).unwrap();
    let m1 = i.take_output();
    m1[..m1.len() / 2].to_vec()
}

/// Has the node closed this connection (EOF or reset)?
fn closed(s: &mut TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let mut buf = [0u8; 256];
    match s.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => {
            !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)
        }
    }
}

#[test]
fn hostile_connections_are_dropped_and_honest_clients_served() {
    let dir = tempfile::tempdir().unwrap();
    let secret_bytes = [0x5a; 32];
    let secret_hex = hex::encode(secret_bytes);
    let secret_file = dir.path().join("group.secret");
    std::fs::write(&secret_file, &secret_hex).unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let node = Node(
        Command::new(env!("CARGO_BIN_EXE_cellar"))
            .args(["node", "--id", "0", "--listen", &addr, "--data"])
            .arg(dir.path().join("n0"))
            .arg("--secret-file")
            .arg(&secret_file)
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while kv(&addr, Some(&secret_hex), &["status"]).status.code() != Some(0) {
        assert!(Instant::now() < deadline, "the node never answered");
        std::thread::sleep(Duration::from_millis(100));
    }
    let rss_before = rss_kib(node.0.id());

    let half = half_handshake(&VolumeSecret::from_bytes(secret_bytes));
    let mut hostile = Vec::new();
    for i in 0..HOSTILE_EACH * 3 {
        let mut s = TcpStream::connect(&addr).unwrap();
        match i % 3 {
            0 => s.write_all(&[0xff; 4096]).unwrap_or(()), // garbage: a 65535-byte record never completes
            1 => s.write_all(&half).unwrap(),              // half a handshake, then silence
            _ => {}                                        // nothing at all
        }
        hostile.push(s);
    }
    let opened = Instant::now();

    // Honest clients are served while the hostile connections hang.
    let set = kv(&addr, Some(&secret_hex), &["set", "/k", "honest value"]);
    assert_eq!(set.status.code(), Some(0), "{}", String::from_utf8_lossy(&set.stderr));
    let get = kv(&addr, Some(&secret_hex), &["get", "/k"]);
    assert_eq!(String::from_utf8_lossy(&get.stdout).trim(), "honest value");
    let rss_during = rss_kib(node.0.id());
    assert!(
        rss_during.saturating_sub(rss_before) < RSS_GROWTH_MAX_KIB,
        "RSS grew from {rss_before} KiB to {rss_during} KiB"
    );

    // Clients without the group secret are refused with one line.
    let none = kv(&addr, None, &["get", "/k"]);
    assert_eq!(none.status.code(), Some(2));
    let err = String::from_utf8_lossy(&none.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("no credentials"), "{err}");
    let wrong = kv(&addr, Some(&hex::encode([1u8; 32])), &["get", "/k"]);
    assert_eq!(wrong.status.code(), Some(1));
    assert!(wrong.stdout.is_empty(), "nothing learned");
    assert_eq!(String::from_utf8_lossy(&wrong.stderr).lines().count(), 1);

    // Every hostile connection is dropped by the node, within its timeouts.
    let mut open: Vec<usize> = (0..hostile.len()).collect();
    while !open.is_empty() {
        assert!(opened.elapsed() < DROPPED_WITHIN, "{} hostile connections still open", open.len());
        open.retain(|&i| !closed(&mut hostile[i]));
    }
    let get = kv(&addr, Some(&secret_hex), &["get", "/k"]);
    assert_eq!(String::from_utf8_lossy(&get.stdout).trim(), "honest value", "still serving");
}
