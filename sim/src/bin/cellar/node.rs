//! `cellar node`: one gossip replica of the hierarchical KV over TCP (production wiring of the
//! sans-IO `cellar::db::gossip::GossipNode`).
//!
//! Layout of `--data DIR`: `DIR/secret` (the group secret, hex: every node of a group must share
//! it, since it salts the refs and keys the tree boundaries), `DIR/cell` (a sealed file cell
//! holding the head snapshot ref), `DIR/store/` (a directory store of encrypted blobs).
//!
//! Transport: every TCP connection carries one frame of the node protocol
//! (`cellar::db::gossip::frame`: `u32 LE length ‖ postcard(NetFrame)`). Gossip frames are
//! one-way (replies travel on new connections to the sender's `reply_to` address); client
//! frames (`cellar kv`) get one response frame back, computed by
//! `cellar::db::gossip::service::answer`. This module is only the TCP loop: it owns the
//! threads, the sockets, the wall clock and the data directory; the gossip logic and the
//! key/value service see only `now_ms`, messages and requests.

use cellar::db::gossip::frame::{self, FRAME_PREFIX_BYTES, FrameBody, NetFrame};
use cellar::db::gossip::service;
use cellar::db::gossip::{Envelope, GossipConfig, GossipNode, PeerId, encode_message};
use cellar::db::hkv::Hkv;
use cellar::db::merge::{MergePolicy, NodeId};
use cellar::db::snapshot;
use cellar::env::{Clock, Entropy, OsEntropy, SystemClock};
use cellar::storage::cell::{Cell, FileCell, SealedCell};
use cellar::storage::secret::VolumeSecret;
use cellar::storage::store::{DirStore, Store};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often the node ticks its gossip state machine.
const TICK_INTERVAL_MS: u64 = 100;
/// Connect/read/write timeout for one frame.
const IO_TIMEOUT_MS: u64 = 3000;

/// `cellar node` arguments.
#[derive(clap::Args, Debug)]
pub struct NodeArgs {
    /// Address to listen on (gossip and `cellar kv` clients), e.g. 127.0.0.1:7001.
    #[arg(long)]
    pub listen: String,
    /// Peer addresses to gossip with.
    #[arg(long = "peer")]
    pub peers: Vec<String>,
    /// Data directory (created if absent).
    #[arg(long)]
    pub data: PathBuf,
    /// This node's id, unique in the group.
    #[arg(long)]
    pub id: u32,
    /// The group secret as 64 hex digits (needed the first time; stored in DATA/secret).
    #[arg(long)]
    pub secret: Option<String>,
    /// Merge policy: lww or keep-both.
    #[arg(long, default_value = "lww")]
    pub policy: String,
    /// Announce interval in milliseconds.
    #[arg(long, default_value_t = 300)]
    pub announce_ms: u64,
}

/// Writes one frame ([`frame::encode_frame`]) and flushes.
pub fn write_frame<T: FrameBody>(stream: &mut TcpStream, body: &T) -> std::io::Result<()> {
    let bytes = frame::encode_frame(body).map_err(std::io::Error::other)?;
    stream.write_all(&bytes)?;
    stream.flush()
}

/// Reads one frame, refusing an oversized one from its prefix, before allocating the body.
pub fn read_frame<T: FrameBody>(stream: &mut TcpStream) -> std::io::Result<T> {
    let mut prefix = [0u8; FRAME_PREFIX_BYTES];
    stream.read_exact(&mut prefix)?;
    let len = frame::frame_body_len(prefix).map_err(std::io::Error::other)?;
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body)?;
    frame::decode_body(&body).map_err(std::io::Error::other)
}

/// Opens a connection with timeouts.
pub fn connect(addr: &str) -> std::io::Result<TcpStream> {
    use std::net::ToSocketAddrs;
    let timeout = Duration::from_millis(IO_TIMEOUT_MS);
    let sock = addr
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::other("address resolves to nothing"))?;
    let s = TcpStream::connect_timeout(&sock, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    Ok(s)
}

/// Everything behind the node's lock.
struct State {
    node: GossipNode,
    cell: Box<dyn Cell>,
    /// PeerId(i) ↔ addrs[i].
    addrs: Vec<String>,
}

struct Shared {
    state: Mutex<State>,
    listen: String,
    clock: SystemClock,
}

/// Runs `cellar node` until killed.
pub fn run(args: &NodeArgs) -> ExitCode {
    match serve(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cellar node: {e}");
            ExitCode::FAILURE
        }
    }
}

fn load_secret(dir: &Path, given: Option<&str>) -> Result<VolumeSecret, String> {
    let path = dir.join("secret");
    let parse = |s: &str| -> Result<VolumeSecret, String> {
        let bytes = hex::decode(s.trim()).map_err(|e| format!("secret is not hex: {e}"))?;
        let arr: [u8; 32] =
            bytes.try_into().map_err(|_| "secret must be 32 bytes (64 hex digits)".to_owned())?;
        Ok(VolumeSecret::from_bytes(arr))
    };
    match (std::fs::read_to_string(&path), given) {
        (Ok(stored), Some(g)) if stored.trim() != g.trim() => {
            Err("--secret differs from DATA/secret".into())
        }
        (Ok(stored), _) => parse(&stored),
        (Err(_), Some(g)) => {
            let s = parse(g)?;
            std::fs::write(&path, hex::encode(s.as_bytes())).map_err(|e| e.to_string())?;
            Ok(s)
        }
        (Err(_), None) => {
            let s = VolumeSecret::generate(&OsEntropy);
            std::fs::write(&path, hex::encode(s.as_bytes())).map_err(|e| e.to_string())?;
            Ok(s)
        }
    }
}

fn policy(name: &str) -> Result<MergePolicy, String> {
    match name {
        "lww" => Ok(MergePolicy::LastWriteWins),
        "keep-both" => Ok(MergePolicy::KeepBoth),
        other => Err(format!("unknown policy {other:?} (lww or keep-both)")),
    }
}

fn serve(args: &NodeArgs) -> Result<(), String> {
    std::fs::create_dir_all(&args.data).map_err(|e| format!("{}: {e}", args.data.display()))?;
    let secret = load_secret(&args.data, args.secret.as_deref())?;
    let entropy: Arc<dyn Entropy> = Arc::new(OsEntropy);
    let file_cell = FileCell::open(args.data.join("cell")).map_err(|e| e.to_string())?;
    let cell: Box<dyn Cell> = Box::new(SealedCell::new(file_cell, &secret, entropy.clone()));
    let store: Arc<dyn Store> =
        Arc::new(DirStore::open(args.data.join("store")).map_err(|e| e.to_string())?);
    let head = snapshot::head_from_cell(&cell.read().map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    let db = Hkv::new(store, secret.ref_salt(), NodeId(args.id), policy(&args.policy)?, head);
    let peers = (0..args.peers.len() as u32).map(PeerId).collect();
    let config = GossipConfig { announce_interval_ms: args.announce_ms, ..GossipConfig::default() };
    let node = GossipNode::new(db, peers, entropy, config);
    let listener =
        TcpListener::bind(&args.listen).map_err(|e| format!("listen {}: {e}", args.listen))?;
    let shared = Arc::new(Shared {
        state: Mutex::new(State { node, cell, addrs: args.peers.clone() }),
        listen: args.listen.clone(),
        clock: SystemClock,
    });
    eprintln!(
        "cellar node {} listening on {} with {} peers",
        args.id,
        args.listen,
        args.peers.len()
    );
    let ticker = shared.clone();
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(Duration::from_millis(TICK_INTERVAL_MS));
            let out = {
                let mut st = lock(&ticker);
                let now = ticker.clock.now_ms();
                st.node.tick(now).map(|envs| addressed(&st, envs))
            };
            match out {
                Ok(envs) => send_all(&ticker.listen, envs),
                Err(e) => eprintln!("tick: {e}"),
            }
        }
    });
    for conn in listener.incoming() {
        let Ok(stream) = conn else { continue };
        let shared = shared.clone();
        std::thread::spawn(move || {
            if let Err(e) = serve_connection(&shared, stream) {
                eprintln!("connection: {e}");
            }
        });
    }
    Ok(())
}

fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, State> {
    shared.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn addressed(st: &State, envs: Vec<Envelope>) -> Vec<(String, Vec<u8>)> {
    envs.into_iter()
        .filter_map(|e| {
            let addr = st.addrs.get(e.to.0 as usize)?.clone();
            encode_message(&e.message).ok().map(|bytes| (addr, bytes))
        })
        .collect()
}

fn send_all(listen: &str, envs: Vec<(String, Vec<u8>)>) {
    for (addr, message) in envs {
        let sent = connect(&addr).and_then(|mut s| {
            write_frame(&mut s, &NetFrame::Gossip { reply_to: listen.to_owned(), message })
        });
        if let Err(e) = sent {
            eprintln!("send to {addr}: {e}");
        }
    }
}

fn serve_connection(shared: &Shared, mut stream: TcpStream) -> std::io::Result<()> {
    let timeout = Some(Duration::from_millis(IO_TIMEOUT_MS));
    stream.set_read_timeout(timeout)?;
    stream.set_write_timeout(timeout)?;
    match read_frame::<NetFrame>(&mut stream)? {
        NetFrame::Gossip { reply_to, message } => {
            let out = {
                let mut st = lock(shared);
                let from = peer_id(&mut st, &reply_to);
                let now = shared.clock.now_ms();
                let handled = st.node.handle_bytes(from, &message, now);
                match handled {
                    Ok(h) => {
                        if h.merged.is_some() {
                            persist_head(&mut st);
                        }
                        addressed(&st, h.replies)
                    }
                    Err(e) => {
                        eprintln!("gossip from {reply_to}: {e}");
                        Vec::new()
                    }
                }
            };
            send_all(&shared.listen, out);
            Ok(())
        }
        NetFrame::Request(req) => {
            let resp = {
                let mut st = lock(shared);
                service::answer(&mut st.node, req)
            };
            persist_head(&mut lock(shared));
            write_frame(&mut stream, &resp)
        }
    }
}

fn peer_id(st: &mut State, addr: &str) -> PeerId {
    let i = match st.addrs.iter().position(|a| a == addr) {
        Some(i) => i,
        None => {
            st.addrs.push(addr.to_owned());
            st.addrs.len() - 1
        }
    };
    PeerId(i as u32)
}

/// Publishes the node's head to its cell (compare-and-swap from the value read).
fn persist_head(st: &mut State) {
    let Some(head) = st.node.db().head() else { return };
    let new = head.to_bytes();
    match st.cell.read() {
        Ok(old) if old == new => {}
        Ok(old) => {
            if let Err(e) = st.cell.cas(&old, &new) {
                eprintln!("persisting head: {e}");
            }
        }
        Err(e) => eprintln!("reading cell: {e}"),
    }
}
