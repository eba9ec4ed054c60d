//! A real `cellar node` keeps a connection open for many messages and closes it at its limits
//! (specs/node-protocol.md NP-1, NP-4): two requests on one channel get two answers in order;
//! an authenticated connection that goes quiet is closed after `--idle-timeout-ms`; one that
//! trickles a message is closed after `--message-deadline-ms`; an honest client is served
//! throughout. The limits' decisions are `cellar::net::limits` (unit tests there, with the
//! planted bugs `net:no-idle-timeout` and `net:no-message-deadline`); this test proves the
//! binary uses them. Loopback only, bounded in time.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test reports failure by panicking"
)]

use cellar::db::gossip::frame::{self, NetFrame};
use cellar::db::gossip::service::{KvRequest, KvResponse};
use cellar::env::{DetEntropy, Entropy};
use cellar::net::channel::{Channel, ChannelConfig, ChannelEvent, ChannelPsk, StaticKeys};
use cellar::storage::secret::VolumeSecret;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SECRET: [u8; 32] = [0x3c; 32];
const IDLE_MS: u64 = 1500;
const DEADLINE_MS: u64 = 1000;

struct Node(Child);
impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(dir: &std::path::Path) -> (Node, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let addr = format!("127.0.0.1:{port}");
    let secret_file = dir.join("group.secret");
    std::fs::write(&secret_file, hex::encode(SECRET)).unwrap();
    let node = Node(
        Command::new(env!("CARGO_BIN_EXE_cellar"))
            .args(["node", "--id", "0", "--listen", &addr, "--data"])
            .arg(dir.join("n0"))
            .arg("--secret-file")
            .arg(&secret_file)
            .args(["--idle-timeout-ms", &IDLE_MS.to_string()])
            .args(["--message-deadline-ms", &DEADLINE_MS.to_string()])
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let until = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(&addr).is_err() {
        assert!(Instant::now() < until, "the node never listened");
        std::thread::sleep(Duration::from_millis(50));
    }
    (node, addr)
}

/// An authenticated client connection driven by hand.
struct Client {
    s: TcpStream,
    ch: Channel,
}

impl Client {
    fn connect(addr: &str) -> Client {
        let e: Arc<dyn Entropy> = Arc::new(DetEntropy::new(7));
        let keys = StaticKeys::generate(e.clone()).unwrap();
        let psk = ChannelPsk::from_secret(&VolumeSecret::from_bytes(SECRET));
        let ch = Channel::initiator(&keys, &psk, e, ChannelConfig::default(), 0).unwrap();
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut c = Client { s, ch };
        c.flush();
        while !c.ch.is_open() {
            c.read();
        }
        c.flush();
        c
    }

    fn flush(&mut self) {
        let out = self.ch.take_output();
        self.s.write_all(&out).unwrap();
    }

    fn read(&mut self) -> Vec<ChannelEvent> {
        let mut buf = [0u8; 65536];
        let n = self.s.read(&mut buf).unwrap();
        assert!(n > 0, "the node closed the connection");
        let events = self.ch.receive(&buf[..n], 0).unwrap();
        self.flush();
        events
    }

    fn request(&mut self, req: KvRequest) -> KvResponse {
        let body = frame::encode_body(&NetFrame::Request(req)).unwrap();
        self.ch.send(&body).unwrap();
        self.flush();
        loop {
            for e in self.read() {
                if let ChannelEvent::Message(m) = e {
                    return frame::decode_body(&m).unwrap();
                }
            }
        }
    }

    /// Waits for the node to close the connection; how long it took.
    fn closed_within(&mut self, limit: Duration) -> Duration {
        let start = Instant::now();
        self.s.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        let mut buf = [0u8; 1024];
        loop {
            match self.s.read(&mut buf) {
                Ok(0) => return start.elapsed(),
                Err(e)
                    if !matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return start.elapsed();
                }
                _ => {}
            }
            assert!(start.elapsed() < limit, "the node kept the connection open for {limit:?}");
        }
    }
}

#[test]
fn one_connection_carries_many_requests_np1() {
    let dir = tempfile::tempdir().unwrap();
    let (_node, addr) = start(dir.path());
    let mut c = Client::connect(&addr);
    assert_eq!(c.request(KvRequest::Set("/a".into(), b"1".to_vec())), KvResponse::Ok);
    assert_eq!(c.request(KvRequest::Set("/b".into(), b"2".to_vec())), KvResponse::Ok);
    match c.request(KvRequest::Get("/a".into())) {
        KvResponse::Value(Some(v), _) => assert_eq!(v, b"1"),
        other => panic!("{other:?}"),
    }
    match c.request(KvRequest::Commit("two".into())) {
        KvResponse::Committed(_) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_quiet_connection_is_closed_after_the_idle_timeout_np4() {
    let dir = tempfile::tempdir().unwrap();
    let (_node, addr) = start(dir.path());
    let mut c = Client::connect(&addr);
    assert_eq!(c.request(KvRequest::Set("/a".into(), b"1".to_vec())), KvResponse::Ok);
    let took = c.closed_within(Duration::from_millis(IDLE_MS + 2000));
    assert!(took >= Duration::from_millis(IDLE_MS - 300), "closed too early: {took:?}");
    // Others are still served.
    let mut d = Client::connect(&addr);
    assert!(matches!(d.request(KvRequest::Get("/a".into())), KvResponse::Value(..)));
}

#[test]
fn a_trickled_message_is_closed_after_its_deadline_np4() {
    let dir = tempfile::tempdir().unwrap();
    let (_node, addr) = start(dir.path());
    let mut c = Client::connect(&addr);
    // A real, authenticated request, sent one byte every 200 ms: it would take far longer than
    // the deadline, and each byte would reset a naive idle timer.
    let body = frame::encode_body(&NetFrame::Request(KvRequest::Set("/slow".into(), vec![7; 100])))
        .unwrap();
    c.ch.send(&body).unwrap();
    let bytes = c.ch.take_output();
    let start = Instant::now();
    let mut closed = false;
    for b in &bytes[..bytes.len() - 1] {
        if c.s.write_all(&[*b]).is_err() {
            closed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
        if start.elapsed() > Duration::from_millis(DEADLINE_MS + 2500) {
            break;
        }
    }
    if !closed {
        c.closed_within(Duration::from_millis(500));
    }
    assert!(start.elapsed() < Duration::from_millis(DEADLINE_MS + 3000), "{:?}", start.elapsed());
    let mut d = Client::connect(&addr);
    match d.request(KvRequest::Get("/slow".into())) {
        KvResponse::Value(None, _) => {}
        other => panic!("the trickled request was applied: {other:?}"),
    }
}
