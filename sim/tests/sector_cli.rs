//! End-to-end test of `cellar sector`: format, serve, the client commands, a malformed frame on
//! a live connection (PROTO-4), SIGTERM (PROTO-10), restart and durability, offline verify,
//! and verify catching a flipped byte. Uses the built binary, as a shell script would.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test reports failure by panicking"
)]

use cellar::sector::proto::{ErrorKind, SectorClient, WriteOptions};
use std::path::{Path, PathBuf};

mod sector_common;
use sector_common::{Served, cellar, fails, ok, serve};

/// SIGTERM, then the server must exit 0 having removed its socket (PROTO-10).
fn terminate(server: Served) {
    let socket = PathBuf::from(server.sock());
    let (status, err) = server.stop();
    assert!(status.success(), "serve exit: {err}");
    assert!(err.contains("flushed"), "{err}");
    assert!(!socket.exists(), "socket removed on shutdown");
}

#[test]
fn sector_cli_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let dev = dir.path().join("dev.img");
    let socket = dir.path().join("s.sock");
    let devs = dev.to_str().unwrap();
    let out = ok(&["format", "--path", devs, "--size", "16MiB", "--zone-size", "256KiB"], b"");
    assert!(out.contains("formatted"), "{out}");

    let srv = serve(&dev, &socket);
    let s = srv.sock();
    let v1 = ok(&["put", "--socket", s, "1", "--flush"], b"hello");
    let v1: u64 = v1.trim().parse().unwrap();
    assert_eq!(ok(&["get", "--socket", s, "1"], b""), "hello");
    assert_eq!(ok(&["get", "--socket", s, "1", "--version"], b"").trim(), v1.to_string());

    // cas at the right version applies; at the stale one it is refused with one line.
    let v2 = ok(&["cas", "--socket", s, "1", &v1.to_string()], b"swapped");
    assert_ne!(v2.trim(), v1.to_string());
    let err = fails(&["cas", "--socket", s, "1", &v1.to_string()], b"nope");
    assert!(err.contains("conflict"), "{err}");
    ok(&["cas", "--socket", s, "2", "absent"], b"created");
    assert_eq!(ok(&["get", "--socket", s, "1"], b""), "swapped");

    ok(&["put", "--socket", s, "3"], b"doomed");
    ok(&["delete", "--socket", s, "3", "--flush"], b"");
    assert!(fails(&["get", "--socket", s, "3"], b"").contains("not found"));
    for k in 10..20u64 {
        ok(&["put", "--socket", s, &k.to_string()], format!("value {k}").as_bytes());
    }
    ok(&["flush", "--socket", s], b"");
    let stat = ok(&["stat", "--socket", s], b"");
    assert!(stat.contains("keys 12"), "{stat}");
    assert!(stat.contains("dead"), "{stat}");

    malformed_frame_keeps_connection(&socket);

    // Bad input: one line, non-zero exit.
    assert!(fails(&["get", "--socket", s, "99"], b"").contains("not found"));
    assert!(fails(&["cas", "--socket", s, "1", "soon"], b"x").contains("absent"));
    let missing = dir.path().join("nobody.sock");
    fails(&["flush", "--socket", missing.to_str().unwrap()], b"");
    assert!(!cellar(&["get", "--socket", s, "-5"], b"").status.success());

    terminate(srv);

    // Restart: everything acknowledged is there.
    let srv = serve(&dev, &socket);
    let s = srv.sock();
    assert_eq!(ok(&["get", "--socket", s, "1"], b""), "swapped");
    assert_eq!(ok(&["get", "--socket", s, "2"], b""), "created");
    for k in 10..20u64 {
        assert_eq!(ok(&["get", "--socket", s, &k.to_string()], b""), format!("value {k}"));
    }
    assert!(fails(&["get", "--socket", s, "3"], b"").contains("not found"));
    ok(&["put", "--socket", s, "4", "--flush"], b"UNIQUE-PAYLOAD-FOR-VERIFY");
    // A later flushed record vouches that key 4's record was durable: without it, damage to
    // the newest record is indistinguishable from a torn unflushed write (SEC-7 cuts it).
    ok(&["put", "--socket", s, "5", "--flush"], b"later");
    terminate(srv);

    let out = ok(&["verify", "--path", devs], b"");
    assert!(out.contains("0 problems"), "{out}");
    flip_byte_of(&dev, b"UNIQUE-PAYLOAD-FOR-VERIFY");
    let out = cellar(&["verify", "--path", devs], b"");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!out.status.success(), "verify must fail on a flipped byte: {text}");
    assert!(text.contains("key 4"), "verify names the key: {text}");
}

/// PROTO-4 through the real server: a frame with a valid length and a garbage body gets an
/// error reply, and the same connection then serves a normal request.
fn malformed_frame_keeps_connection(socket: &Path) {
    let mut c = SectorClient::connect(socket).unwrap();
    c.send_raw(&[1, 0, 0, 0, 0xff]).unwrap(); // an unterminated id varint
    assert_eq!(c.recv_unattributed().unwrap().kind, ErrorKind::MalformedFrame);
    let v = c.write(77, b"after".to_vec(), WriteOptions::default()).unwrap();
    let r = c.read(77).unwrap().unwrap();
    assert_eq!((r.version, r.value.as_slice()), (v, &b"after"[..]));
    assert!(c.delete(77, None, false).unwrap());
}

fn flip_byte_of(dev: &Path, needle: &[u8]) {
    let mut image = std::fs::read(dev).unwrap();
    let at = image.windows(needle.len()).position(|w| w == needle).expect("payload on disk");
    image[at + 3] ^= 0x20;
    std::fs::write(dev, image).unwrap();
}
