//! `cellar node`: one gossip replica of the hierarchical KV over TCP (production wiring of the
//! sans-IO `cellar::db::gossip::GossipNode`).
//!
//! Layout of `--data DIR`: `DIR/secret` (the group secret, hex, mode 0600: every node of a group
//! must share it, since it salts the refs, keys the tree boundaries and yields the channel PSK),
//! `DIR/node.key` (the node's static channel key, mode 0600), `DIR/cell` (a sealed file cell
//! holding the head snapshot ref; `DIR/cell.seen` the highest counter read from it, CELL-6), `DIR/store/` (a directory store of encrypted blobs).
//!
//! Transport (`specs/node-protocol.md` NP-1, NP-4): every TCP connection is a secure channel
//! (`cellar::net::channel`, driven by [`crate::link`]); there is no plain-text mode. The
//! connecting side sends node-protocol bodies (`postcard(NetFrame)`,
//! `cellar::db::gossip::frame`), each one channel message, as many as it likes. Gossip is
//! one-way: replies go out on this node's own persistent channel to the sender's `reply_to`
//! address ([`crate::outbox`]); each client request (`cellar kv`) gets one `KvResponse` message
//! back, computed by `cellar::db::gossip::service::answer`. A connection that fails the
//! handshake (no group key) or sends a record that fails authentication is dropped before
//! anything reaches the node; so is one that idles or trickles past its limits (NP-4).
//! This module is only the TCP loop: it owns the threads, the sockets, the wall clock and the
//! data directory; the gossip logic and the key/value service see only `now_ms`, messages and
//! requests.

use crate::link::{Credentials, Link, given_secret, parse_secret};
use crate::outbox::Outbox;
use cellar::db::gossip::frame::{self, NetFrame};
use cellar::db::gossip::service::{self, KvResponse};
use cellar::db::gossip::{Envelope, GossipConfig, GossipNode, PeerId, encode_message};
use cellar::db::hkv::Hkv;
use cellar::db::merge::{MergePolicy, NodeId};
use cellar::db::snapshot;
use cellar::env::{Clock, Entropy, OsEntropy, SystemClock};
use cellar::net::channel::{ChannelPsk, StaticKeys};
use cellar::net::limits::{ConnectionLimits, IDLE_TIMEOUT_MS_DEFAULT, MESSAGE_DEADLINE_MS_DEFAULT};
use cellar::storage::cell::{Cell, FileCell, SealedCell, Seen};
use cellar::storage::secret::VolumeSecret;
use cellar::storage::store::{DirStore, Store};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often the node ticks its gossip state machine.
const TICK_INTERVAL_MS: u64 = 100;
/// Most connections served at once; more are closed on accept (NP-4: bounds threads and
/// memory; an unauthenticated connection holds at most two 64 KiB buffers, CH-6).
pub const CONNECTIONS_MAX: usize = 128;

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
    /// A file holding the group secret as 64 hex digits (needed the first time; stored in
    /// DATA/secret). Or set CELLAR_SECRET. Without either, a new group secret is generated.
    #[arg(long)]
    pub secret_file: Option<PathBuf>,
    /// Refused: a secret on the command line is visible to every user in `ps`.
    #[arg(long, hide = true)]
    pub secret: Option<String>,
    /// Merge policy: lww or keep-both.
    #[arg(long, default_value = "lww")]
    pub policy: String,
    /// Announce interval in milliseconds.
    #[arg(long, default_value_t = 300)]
    pub announce_ms: u64,
    /// Close a connection on which no message arrives for this long (NP-4).
    #[arg(long, default_value_t = IDLE_TIMEOUT_MS_DEFAULT)]
    pub idle_timeout_ms: u64,
    /// Close a connection whose message started this long ago and is still incomplete (NP-4).
    #[arg(long, default_value_t = MESSAGE_DEADLINE_MS_DEFAULT)]
    pub message_deadline_ms: u64,
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
    creds: Credentials,
    limits: ConnectionLimits,
    /// One persistent channel per peer for everything this node sends.
    outbox: Outbox,
    /// Connections being served.
    active: AtomicUsize,
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

fn load_secret(dir: &Path, given: Option<VolumeSecret>) -> Result<VolumeSecret, String> {
    let path = dir.join("secret");
    match (std::fs::read_to_string(&path), given) {
        (Ok(stored), Some(g)) if parse_secret(&stored)? != g => {
            Err("the given group secret differs from DATA/secret".into())
        }
        (Ok(stored), _) => parse_secret(&stored),
        (Err(_), given) => {
            let s = given.unwrap_or_else(|| VolumeSecret::generate(&OsEntropy));
            write_private(&path, &hex::encode(s.as_bytes()))?;
            Ok(s)
        }
    }
}

/// Writes a new file readable by its owner only.
fn write_private(path: &Path, text: &str) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()).and_then(|()| f.sync_all()))
        .map_err(|e| format!("{}: {e}", path.display()))
}

fn policy(name: &str) -> Result<MergePolicy, String> {
    match name {
        "lww" => Ok(MergePolicy::LastWriteWins),
        "keep-both" => Ok(MergePolicy::KeepBoth),
        other => Err(format!("unknown policy {other:?} (lww or keep-both)")),
    }
}

fn serve(args: &NodeArgs) -> Result<(), String> {
    if args.secret.is_some() {
        return Err("--secret is refused (other users can read it in `ps`): \
                    use --secret-file FILE or CELLAR_SECRET"
            .into());
    }
    let given = given_secret(args.secret_file.as_deref())?;
    std::fs::create_dir_all(&args.data).map_err(|e| format!("{}: {e}", args.data.display()))?;
    let secret = load_secret(&args.data, given)?;
    let entropy: Arc<dyn Entropy> = Arc::new(OsEntropy);
    let keys = StaticKeys::load_or_create(&args.data.join("node.key"), entropy.clone())
        .map_err(|e| e.to_string())?;
    let creds = Credentials { keys, psk: ChannelPsk::from_secret(&secret) };
    let file_cell = FileCell::open(args.data.join("cell")).map_err(|e| e.to_string())?;
    // CELL-6: the highest cell counter seen survives restarts in DATA/cell.seen.
    let seen = Seen::file(args.data.join("cell.seen")).map_err(|e| e.to_string())?;
    let cell: Box<dyn Cell> =
        Box::new(SealedCell::new(file_cell, &secret, entropy.clone()).with_seen(seen));
    let store: Arc<dyn Store> =
        Arc::new(DirStore::open(args.data.join("store")).map_err(|e| e.to_string())?);
    let head = snapshot::head_from_cell(&cell.read().map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    let db = Hkv::new(store, secret.ref_salt(), NodeId(args.id), policy(&args.policy)?, head);
    let peers = (0..args.peers.len() as u32).map(PeerId).collect();
    let config = GossipConfig { announce_interval_ms: args.announce_ms, ..GossipConfig::default() };
    let node = GossipNode::new(db, peers, entropy, config);
    let limits = ConnectionLimits {
        idle_timeout_ms: args.idle_timeout_ms,
        message_deadline_ms: args.message_deadline_ms,
    };
    let listener =
        TcpListener::bind(&args.listen).map_err(|e| format!("listen {}: {e}", args.listen))?;
    let shared = Arc::new(Shared {
        state: Mutex::new(State { node, cell, addrs: args.peers.clone() }),
        listen: args.listen.clone(),
        clock: SystemClock,
        outbox: Outbox::new(creds.clone(), limits),
        creds,
        limits,
        active: AtomicUsize::new(0),
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
                Ok(envs) => send_all(&ticker, envs),
                Err(e) => eprintln!("tick: {e}"),
            }
        }
    });
    for conn in listener.incoming() {
        let Ok(stream) = conn else { continue };
        if shared.active.fetch_add(1, Ordering::SeqCst) >= CONNECTIONS_MAX {
            shared.active.fetch_sub(1, Ordering::SeqCst);
            drop(stream);
            continue;
        }
        let shared = shared.clone();
        std::thread::spawn(move || {
            let peer = stream.peer_addr().map(|a| a.to_string()).unwrap_or_default();
            if let Err(e) = serve_connection(&shared, stream) {
                eprintln!("connection from {peer} dropped: {e}");
            }
            shared.active.fetch_sub(1, Ordering::SeqCst);
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

fn send_all(shared: &Shared, envs: Vec<(String, Vec<u8>)>) {
    for (addr, message) in envs {
        let body = NetFrame::Gossip { reply_to: shared.listen.clone(), message };
        let queued = frame::encode_body(&body)
            .map_err(|e| e.to_string())
            .and_then(|bytes| shared.outbox.send(&addr, bytes));
        if let Err(e) = queued {
            eprintln!("send to {addr}: {e}");
        }
    }
}

/// Serves one connection until the peer closes it or breaks a limit (NP-1, NP-4).
fn serve_connection(shared: &Shared, stream: TcpStream) -> std::io::Result<()> {
    let mut link = Link::accept(stream, &shared.creds, shared.limits)?;
    while let Some(body) = link.recv()? {
        match frame::decode_body::<NetFrame>(&body).map_err(std::io::Error::other)? {
            NetFrame::Gossip { reply_to, message } => {
                let out = {
                    let mut st = lock(shared);
                    let from = peer_id(&mut st, &reply_to);
                    let now = shared.clock.now_ms();
                    match st.node.handle_bytes(from, &message, now) {
                        Ok(h) => {
                            if h.merged.is_some()
                                && let Err(e) = persist_head(&mut st)
                            {
                                eprintln!("{e}");
                            }
                            addressed(&st, h.replies)
                        }
                        Err(e) => {
                            eprintln!("gossip from {reply_to}: {e}");
                            Vec::new()
                        }
                    }
                };
                send_all(shared, out);
            }
            NetFrame::Request(req) => {
                let resp = {
                    let mut st = lock(shared);
                    let resp = service::answer(&mut st.node, req);
                    // A head that did not reach the cell is not acknowledged (nothing
                    // acknowledged is lost): the client hears why. The next persist retries.
                    match persist_head(&mut st) {
                        Ok(()) => resp,
                        Err(e) => KvResponse::Error(format!(
                            "the commit is in this node's memory but its head was not saved: {e}"
                        )),
                    }
                };
                link.send(&frame::encode_body(&resp).map_err(std::io::Error::other)?)?;
            }
        }
    }
    Ok(())
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
fn persist_head(st: &mut State) -> Result<(), String> {
    let Some(head) = st.node.db().head() else { return Ok(()) };
    let new = head.to_bytes();
    let old = st.cell.read().map_err(|e| format!("reading the cell: {e}"))?;
    if old == new {
        return Ok(());
    }
    match st.cell.cas(&old, &new) {
        Ok(out) if out.swapped => Ok(()),
        Ok(_) => Err("the cell changed underneath (another process?)".into()),
        Err(e) => Err(format!("persisting head: {e}")),
    }
}
