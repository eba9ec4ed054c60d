//! Tests of the server shell and client against a small in-memory backend (the engine-backed
//! end-to-end tests live in `sim/tests/sector_cli.rs`).

use super::client::SectorClient;
use super::codec::{self, ReadFrame};
use super::server::{Backend, Server, ServerConfig, ShutdownHandle};
use super::*;
use std::collections::HashMap;
use std::io::{self, Write};
use std::os::unix::net::UnixStream;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// Reads of this key take a while, so replies to later requests overtake them.
const SLOW_KEY: Key = 1_000_000;
const SLOW: Duration = Duration::from_millis(300);

#[derive(Default)]
struct TestBackend {
    map: Mutex<HashMap<Key, (Version, Vec<u8>)>>,
    seq: AtomicU64,
    flushes: AtomicU64,
    /// Requests inside `handle` now, and the most ever at once.
    active: AtomicU64,
    active_max: AtomicU64,
}

impl Backend for std::sync::Arc<TestBackend> {
    fn handle(&self, request: Request) -> Response {
        let now = self.active.fetch_add(1, Ordering::SeqCst) + 1;
        self.active_max.fetch_max(now, Ordering::SeqCst);
        let response = self.answer(request);
        self.active.fetch_sub(1, Ordering::SeqCst);
        response
    }

    fn flush(&self) -> Result<(), ErrorReply> {
        self.flushes.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

impl TestBackend {
    fn answer(&self, request: Request) -> Response {
        match request {
            Request::Read { key } => {
                if key == SLOW_KEY {
                    std::thread::sleep(SLOW);
                }
                let map = self.map.lock().unwrap();
                Response::Record(map.get(&key).map(|(v, b)| Record {
                    key,
                    version: *v,
                    value: b.clone(),
                    next: None,
                }))
            }
            Request::Write { key, value, options } => {
                if key == SLOW_KEY {
                    std::thread::sleep(SLOW);
                }
                let version = self.seq.fetch_add(1, Ordering::SeqCst) + 1;
                self.map.lock().unwrap().insert(key, (version, value));
                if options.flush {
                    self.flushes.fetch_add(1, Ordering::SeqCst);
                }
                Response::Written { version }
            }
            Request::Flush => {
                self.flushes.fetch_add(1, Ordering::SeqCst);
                Response::Flushed
            }
            _ => Response::Error(ErrorReply::new(ErrorKind::Unsupported, "test backend")),
        }
    }
}

struct Running {
    backend: std::sync::Arc<TestBackend>,
    socket: std::path::PathBuf,
    handle: ShutdownHandle,
    thread: JoinHandle<Result<server::ServeReport, server::ServerError>>,
    _dir: tempfile::TempDir,
}

fn start() -> Running {
    start_with(ServerConfig::default().workers(4))
}

fn start_with(config: ServerConfig) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("s.sock");
    let backend = std::sync::Arc::new(TestBackend::default());
    let server = Server::bind(&socket, backend.clone(), config).unwrap();
    let handle = server.shutdown_handle();
    let thread = std::thread::spawn(move || server.run());
    Running { backend, socket, handle, thread, _dir: dir }
}

impl Running {
    fn stop(self) -> server::ServeReport {
        self.handle.shutdown();
        self.thread.join().unwrap().unwrap()
    }
}

fn read_response(stream: &mut UnixStream) -> Option<ResponseFrame> {
    match codec::read_frame_body(stream).unwrap() {
        ReadFrame::Body(body) => Some(codec::decode_response_body(&body).unwrap()),
        _ => None,
    }
}

fn write_request(stream: &mut UnixStream, id: u64, request: Request) {
    stream.write_all(&encode_request_frame(&RequestFrame { id, request }).unwrap()).unwrap();
}

#[test]
fn pipelined_replies_come_back_out_of_order_proto_7() {
    let srv = start();
    let mut s = UnixStream::connect(&srv.socket).unwrap();
    write_request(&mut s, 10, Request::Read { key: SLOW_KEY });
    write_request(&mut s, 11, Request::Read { key: 5 });
    let first = read_response(&mut s).unwrap();
    let second = read_response(&mut s).unwrap();
    assert_eq!((first.id, second.id), (11, 10), "the fast reply overtakes the slow one");
    assert_eq!(first.response, Response::Record(None));
    drop(s);
    srv.stop();
}

#[test]
fn client_pipelines_many_requests() {
    let srv = start();
    let mut c = SectorClient::connect(&srv.socket).unwrap();
    let ids: Vec<u64> = (0..100u64)
        .map(|k| {
            let value = k.to_le_bytes().to_vec();
            c.send(Request::Write { key: k, value, options: WriteOptions::default() }).unwrap()
        })
        .collect();
    assert_eq!(c.in_flight(), 100);
    for id in ids.iter().rev() {
        assert!(matches!(c.recv(*id).unwrap(), Response::Written { .. }));
    }
    assert_eq!(c.in_flight(), 0);
    assert_eq!(c.read(42).unwrap().unwrap().value, 42u64.to_le_bytes());
    srv.stop();
}

/// PROTO-4: a frame with a valid prefix and a bad body gets an error reply; the connection
/// stays usable. Returns what went wrong, for the planted-bug test.
fn check_malformed_frame_keeps_connection(srv: &Running) -> Result<(), String> {
    let mut c = SectorClient::connect(&srv.socket).map_err(|e| e.to_string())?;
    // Prefix 3, body: id 77, variant 250 (no such request), one more byte.
    c.send_raw(&[3, 0, 0, 0, 77, 250, 1]).map_err(|e| e.to_string())?;
    // A body whose id itself is broken (an unterminated varint).
    c.send_raw(&[2, 0, 0, 0, 0xff, 0xff]).map_err(|e| e.to_string())?;
    let e = c.recv_unattributed().map_err(|e| format!("no reply to a broken id: {e}"))?;
    if e.kind != ErrorKind::MalformedFrame {
        return Err(format!("unattributed reply {e:?}"));
    }
    let version = c
        .write(3, b"after".to_vec(), WriteOptions::default())
        .map_err(|e| format!("connection unusable after a malformed frame: {e}"))?;
    match c.read(3) {
        Ok(Some(r)) if r.version == version && r.value == b"after" => Ok(()),
        other => Err(format!("read after malformed frame: {other:?}")),
    }
}

#[test]
fn malformed_frame_gets_error_and_connection_survives_proto_4() {
    let srv = start();
    check_malformed_frame_keeps_connection(&srv).unwrap();
    // The reply to the body with a readable id names it.
    let mut s = UnixStream::connect(&srv.socket).unwrap();
    s.write_all(&[2, 0, 0, 0, 77, 250]).unwrap();
    let reply = read_response(&mut s).unwrap();
    assert_eq!(reply.id, 77);
    assert!(matches!(
        reply.response,
        Response::Error(ErrorReply { kind: ErrorKind::MalformedFrame, .. })
    ));
    drop(s);
    srv.stop();
}

#[cfg(feature = "planted-bugs")]
#[test]
fn planted_close_on_malformed_is_caught() {
    let _bug = crate::bugs::plant("sector_proto:close-on-malformed").unwrap();
    let srv = start();
    assert!(check_malformed_frame_keeps_connection(&srv).is_err());
    srv.stop();
}

#[test]
fn oversize_prefix_gets_error_then_close_proto_3() {
    let srv = start();
    let mut s = UnixStream::connect(&srv.socket).unwrap();
    s.write_all(&(FRAME_BODY_BYTES_MAX + 1).to_le_bytes()).unwrap();
    let reply = read_response(&mut s).unwrap();
    assert_eq!(reply.id, REQUEST_ID_NONE);
    assert!(matches!(
        reply.response,
        Response::Error(ErrorReply { kind: ErrorKind::FrameTooLarge, .. })
    ));
    assert!(read_response(&mut s).is_none(), "the connection is closed");
    srv.stop();
}

#[test]
fn invalid_request_is_refused_before_the_backend() {
    let srv = start();
    let mut c = SectorClient::connect(&srv.socket).unwrap();
    let err = c.cas(vec![], false).unwrap_err();
    assert_eq!(err.server_kind(), Some(ErrorKind::InvalidRequest));
    let ranges = vec![KeyRange { first: 5, last: 4 }];
    assert_eq!(c.read_range(ranges).unwrap_err().server_kind(), Some(ErrorKind::InvalidRequest));
    srv.stop();
}

#[test]
fn disconnect_mid_request_loses_nothing_proto_8() {
    let srv = start();
    let mut s = UnixStream::connect(&srv.socket).unwrap();
    let options = WriteOptions { flush: true, ..WriteOptions::default() };
    write_request(&mut s, 1, Request::Write { key: SLOW_KEY, value: b"v".to_vec(), options });
    std::thread::sleep(Duration::from_millis(50));
    drop(s); // gone before the reply
    std::thread::sleep(SLOW * 2);
    let mut c = SectorClient::connect(&srv.socket).unwrap();
    assert_eq!(c.read(SLOW_KEY).unwrap().unwrap().value, b"v");
    srv.stop();
}

#[test]
fn shutdown_answers_in_flight_then_flushes_proto_10() {
    let srv = start();
    let mut s = UnixStream::connect(&srv.socket).unwrap();
    write_request(
        &mut s,
        5,
        Request::Write { key: SLOW_KEY, value: b"late".to_vec(), options: WriteOptions::default() },
    );
    std::thread::sleep(Duration::from_millis(50));
    let backend = srv.backend.clone();
    let socket = srv.socket.clone();
    let flushes_before = backend.flushes.load(Ordering::SeqCst);
    let report = srv.stop();
    assert!(report.replies >= 1);
    let reply = read_response(&mut s).unwrap();
    assert_eq!(reply.id, 5);
    assert!(matches!(reply.response, Response::Written { .. }));
    assert!(backend.flushes.load(Ordering::SeqCst) > flushes_before, "flushed on shutdown");
    assert!(!socket.exists(), "socket file removed");
}

#[test]
fn second_server_on_same_socket_is_refused() {
    let srv = start();
    let other = Server::bind(
        &srv.socket,
        std::sync::Arc::new(TestBackend::default()),
        ServerConfig::default(),
    );
    assert!(matches!(other, Err(server::ServerError::InUse(_))));
    srv.stop();
}

/// PROTO-6: every request read completely gets exactly one reply, whatever it is: answered by
/// the backend, refused before it (invalid), malformed but attributable, or unsupported. After
/// the client stops sending, every reply arrives and then the server closes the connection.
#[test]
fn every_request_gets_exactly_one_reply_proto_6() {
    let srv = start();
    let mut s = UnixStream::connect(&srv.socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut sent = Vec::new();
    for id in 0..30u64 {
        let request = match id % 4 {
            0 => Request::Read { key: id },
            1 => Request::Write { key: id, value: vec![1; 10], options: WriteOptions::default() },
            2 => Request::Flush,
            _ => Request::Stat, // unsupported by the test backend: an error reply
        };
        write_request(&mut s, id, request);
        sent.push(id);
    }
    write_request(&mut s, 100, Request::Cas { items: vec![], flush: false }); // invalid
    sent.push(100);
    s.write_all(&[2, 0, 0, 0, 101, 250]).unwrap(); // malformed, id 101 readable
    sent.push(101);
    write_request(&mut s, 102, Request::Read { key: SLOW_KEY });
    sent.push(102);
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut got = Vec::new();
    while let Some(reply) = read_response(&mut s) {
        got.push(reply.id);
    }
    got.sort_unstable();
    assert_eq!(got, sent, "one reply per request, none extra");
    srv.stop();
}

/// PROTO-9: with `requests_in_flight_max(1)` one connection never has two requests in the
/// backend at once, though workers are free; a connection beyond `connections_max` gets
/// `Busy` with `REQUEST_ID_NONE` and is closed.
#[test]
fn back_pressure_and_connection_limit_proto_9() {
    let config = ServerConfig::default().workers(4).requests_in_flight_max(1).connections_max(1);
    let srv = start_with(config);
    let mut s = UnixStream::connect(&srv.socket).unwrap();
    for id in 0..3 {
        write_request(&mut s, id, Request::Read { key: SLOW_KEY });
    }
    for _ in 0..3 {
        assert!(matches!(read_response(&mut s).unwrap().response, Response::Record(None)));
    }
    assert_eq!(srv.backend.active_max.load(Ordering::SeqCst), 1, "PROTO-9: back-pressure");

    let mut other = UnixStream::connect(&srv.socket).unwrap();
    other.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let reply = read_response(&mut other).unwrap();
    assert_eq!(reply.id, REQUEST_ID_NONE);
    assert!(matches!(reply.response, Response::Error(ErrorReply { kind: ErrorKind::Busy, .. })));
    assert!(read_response(&mut other).is_none(), "the extra connection is closed");
    drop(s);
    srv.stop();
}

// ---- PROTO-13: per-connection limits --------------------------------------------------------

/// Reads replies until the server closes the connection; `Err` if it is still open after
/// `within`. Returns how many replies came first.
fn replies_until_closed(s: &mut UnixStream, within: Duration) -> Result<usize, String> {
    let deadline = std::time::Instant::now() + within;
    s.set_read_timeout(Some(Duration::from_millis(50))).map_err(|e| e.to_string())?;
    let mut got = 0;
    loop {
        match codec::read_frame_body(s) {
            Ok(ReadFrame::Body(_)) => got += 1,
            Ok(_) => return Ok(got),
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
            Err(_) => return Ok(got), // reset by the server: closed too
        }
        if std::time::Instant::now() > deadline {
            return Err(format!("still open after {within:?} ({got} replies read)"));
        }
    }
}

const BIG_KEY: Key = 5;
const BIG_READS: usize = 64;

/// PROTO-13: a client that sends 64 reads of a 1 MiB value and reads nothing has its
/// connection closed once more than `reply_bytes_buffered_max` (256 KiB) of replies wait;
/// another client is served meanwhile. Returns what went wrong, for the planted-bug test.
fn check_slow_reader_is_closed(srv: &Running) -> Result<(), String> {
    let mut c = SectorClient::connect(&srv.socket).map_err(|e| e.to_string())?;
    c.write(BIG_KEY, vec![7u8; 1 << 20], WriteOptions::default()).map_err(|e| e.to_string())?;
    let mut s = UnixStream::connect(&srv.socket).map_err(|e| e.to_string())?;
    for id in 0..BIG_READS as u64 {
        let frame = encode_request_frame(&RequestFrame { id, request: Request::Read { key: 5 } });
        if s.write_all(&frame.map_err(|e| e.to_string())?).is_err() {
            break; // already closed by the server
        }
    }
    std::thread::sleep(Duration::from_millis(300)); // the replies pile up unread
    match c.read(BIG_KEY) {
        Ok(Some(r)) if r.value.len() == 1 << 20 => {}
        other => return Err(format!("an honest client is not served: {other:?}")),
    }
    let got = replies_until_closed(&mut s, Duration::from_secs(3))?;
    if got >= BIG_READS {
        return Err(format!("all {got} replies were buffered for a client that did not read"));
    }
    Ok(())
}

fn slow_reader_config() -> ServerConfig {
    ServerConfig::default().workers(4).reply_bytes_buffered_max(256 * 1024)
}

#[test]
fn slow_reader_is_closed_proto_13() {
    let srv = start_with(slow_reader_config());
    check_slow_reader_is_closed(&srv).unwrap();
    assert_eq!(srv.stop().limit_closes, 1, "one connection closed by a limit");
}

#[cfg(feature = "planted-bugs")]
#[test]
fn planted_unbounded_reply_buffer_is_caught() {
    let _bug = crate::bugs::plant("sector_proto:unbounded-reply-buffer").unwrap();
    let srv = start_with(slow_reader_config());
    assert!(check_slow_reader_is_closed(&srv).is_err());
    srv.stop();
}

/// PROTO-13: with `idle_timeout_ms(200)`, a request in flight longer than that keeps its
/// connection open (it is not idle), and the connection is closed within a second once it has
/// sat silent with nothing in flight.
fn check_idle_connection_is_closed(srv: &Running) -> Result<(), String> {
    let mut s = UnixStream::connect(&srv.socket).map_err(|e| e.to_string())?;
    write_request(&mut s, 1, Request::Read { key: SLOW_KEY }); // 300 ms in the backend
    match read_response(&mut s) {
        Some(r) if r.id == 1 => {}
        other => return Err(format!("busy connection closed as idle: {other:?}")),
    }
    let silent = std::time::Instant::now();
    replies_until_closed(&mut s, Duration::from_secs(2))?;
    if silent.elapsed() < Duration::from_millis(150) {
        return Err(format!("closed after {:?}, before the idle timeout", silent.elapsed()));
    }
    Ok(())
}

fn idle_config() -> ServerConfig {
    ServerConfig::default().workers(4).idle_timeout_ms(200)
}

#[test]
fn idle_connection_is_closed_proto_13() {
    let srv = start_with(idle_config());
    check_idle_connection_is_closed(&srv).unwrap();
    assert_eq!(srv.stop().limit_closes, 1);
}

#[cfg(feature = "planted-bugs")]
#[test]
fn planted_no_idle_timeout_is_caught() {
    let _bug = crate::bugs::plant("sector_proto:no-idle-timeout").unwrap();
    let srv = start_with(idle_config());
    assert!(check_idle_connection_is_closed(&srv).is_err());
    srv.stop();
}

/// PROTO-13: with `frame_timeout_ms(200)`, a frame dribbled in a byte every 20 ms (so the
/// connection is never silent) is cut off within a second; a frame sent in two pieces 50 ms
/// apart is served.
fn check_slow_frame_is_closed(srv: &Running) -> Result<(), String> {
    let mut ok = UnixStream::connect(&srv.socket).map_err(|e| e.to_string())?;
    let frame = encode_request_frame(&RequestFrame { id: 9, request: Request::Flush })
        .map_err(|e| e.to_string())?;
    let (a, b) = frame.split_at(3);
    ok.write_all(a).map_err(|e| e.to_string())?;
    std::thread::sleep(Duration::from_millis(50));
    ok.write_all(b).map_err(|e| e.to_string())?;
    match read_response(&mut ok) {
        Some(r) if r.id == 9 => {}
        other => return Err(format!("a frame in two pieces was not served: {other:?}")),
    }
    let mut s = UnixStream::connect(&srv.socket).map_err(|e| e.to_string())?;
    s.write_all(&1000u32.to_le_bytes()).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_millis(20))).map_err(|e| e.to_string())?;
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(2) {
        if s.write_all(&[0]).is_err() {
            return Ok(()); // closed
        }
        let mut buf = [0u8; 16];
        match io::Read::read(&mut s, &mut buf) {
            Ok(0) => return Ok(()),
            Ok(_) => return Err("a reply to half a frame".to_owned()),
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
            Err(_) => return Ok(()),
        }
    }
    Err("a frame dribbled for 2 s is still being read".to_owned())
}

fn slow_frame_config() -> ServerConfig {
    ServerConfig::default().workers(4).frame_timeout_ms(200)
}

#[test]
fn slow_frame_is_closed_proto_13() {
    let srv = start_with(slow_frame_config());
    check_slow_frame_is_closed(&srv).unwrap();
    assert_eq!(srv.stop().limit_closes, 1);
}

#[cfg(feature = "planted-bugs")]
#[test]
fn planted_no_frame_timeout_is_caught() {
    let _bug = crate::bugs::plant("sector_proto:no-frame-timeout").unwrap();
    let srv = start_with(slow_frame_config());
    assert!(check_slow_frame_is_closed(&srv).is_err());
    srv.stop();
}
