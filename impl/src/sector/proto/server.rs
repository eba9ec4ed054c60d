//! The sector server's production shell: a Unix domain socket, one reader thread per
//! connection, a pool of worker threads calling a [`Backend`], replies written back as they
//! complete (PROTO-5..PROTO-10).
//!
//! This is the one place in `cellar` that spawns threads on its own: it is the production shell
//! around the engine, not deterministic logic, and the simulator never runs it (it drives the
//! engine directly). It never decides anything about data: every request goes to the backend,
//! and a reply is written only once the backend has returned it.
//!
//! Rules it enforces:
//! - PROTO-4: a frame whose length prefix is valid but whose body is not a request gets an
//!   [`ErrorKind::MalformedFrame`] reply (with the request id if it could be read) and the
//!   connection stays open: the prefix says where the next frame starts.
//! - PROTO-3: a prefix above [`FRAME_BODY_BYTES_MAX`](super::FRAME_BODY_BYTES_MAX) gets an
//!   [`ErrorKind::FrameTooLarge`] reply with [`REQUEST_ID_NONE`] and the connection is closed
//!   once its requests in flight have been answered.
//! - PROTO-5: a frame cut short by the end of the stream is the client leaving.
//! - PROTO-6: every request read completely gets exactly one reply, an error reply included.
//! - PROTO-7: replies carry their request's id and may be sent in any order.
//! - PROTO-8: a client that disconnects does not cancel its requests in flight: they run to
//!   completion in the backend, so nothing the server acknowledged (or would have) is lost.
//! - PROTO-9: at most [`ServerConfig::requests_in_flight_max`] requests per connection are in
//!   the backend at once; the reader stops reading until one completes (back-pressure).
//! - PROTO-12: the socket file is mode 0600 and a peer whose uid (`SO_PEERCRED`) is not on the
//!   allow list ([`Server::allow_uids`], default the server's own uid) is closed unread
//!   (`access.rs`).
//! - PROTO-13: a connection is closed when more than [`ConnLimits::reply_bytes_buffered_max`]
//!   reply bytes wait for a client that does not read, when it has had nothing in flight and
//!   sent nothing for [`ConnLimits::idle_timeout_ms`], or when a frame it started has not
//!   arrived whole within [`ConnLimits::frame_timeout_ms`]. The decisions are `limits.rs`'s;
//!   time comes from the server's [`Clock`] (default [`SystemClock`]); `conn.rs` acts on them.
//! - PROTO-10: shutdown stops accepting, stops reading, answers every request already read,
//!   then flushes the backend before [`Server::run`] returns.

use super::conn::{Conn, Counters, Job, ReadCtx, lock, read_loop};
use super::limits::{ConnLimits, LimitBugs};
use super::{ErrorKind, ErrorReply, REQUEST_ID_NONE, Request, Response, ResponseFrame, codec};
use crate::env::{Clock, SystemClock};
use std::collections::HashMap;
use std::io::{self, Write};
use std::net::Shutdown;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Default number of worker threads calling the backend.
pub const WORKERS_DEFAULT: usize = 16;
/// Default most requests one connection may have in the backend at once.
pub const REQUESTS_IN_FLIGHT_MAX_DEFAULT: usize = 256;
/// How long a worker waits for a client to take a reply before dropping the connection, so
/// one client that stops reading cannot hold every worker.
pub const REPLY_WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// Default most connections served at once; more are answered [`ErrorKind::Busy`] and closed.
pub const CONNECTIONS_MAX_DEFAULT: usize = 1024;

/// What the server asks of the engine.
pub trait Backend: Send + Sync + 'static {
    /// Executes one request that passed [`Request::validate`]. Called from many worker threads
    /// at once; may block (a flushed write waits for durability). Failures are
    /// [`Response::Error`] replies.
    fn handle(&self, request: Request) -> Response;

    /// Makes everything acknowledged so far durable.
    fn flush(&self) -> Result<(), ErrorReply>;

    /// Called once on shutdown (PROTO-10): makes everything acknowledged durable, and may
    /// leave the store quick to reopen (the engine's checkpoint, SEC-19). Returns a line for
    /// the operator, if any. Default: [`Backend::flush`].
    fn shutdown(&self) -> Result<Option<String>, ErrorReply> {
        self.flush().map(|()| None)
    }
}

/// Server tuning. Defaults: [`WORKERS_DEFAULT`], [`REQUESTS_IN_FLIGHT_MAX_DEFAULT`],
/// [`CONNECTIONS_MAX_DEFAULT`] and [`ConnLimits::default`] (PROTO-13).
#[derive(Debug, Clone, Copy)]
pub struct ServerConfig {
    workers: usize,
    requests_in_flight_max: usize,
    connections_max: usize,
    limits: ConnLimits,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            workers: WORKERS_DEFAULT,
            requests_in_flight_max: REQUESTS_IN_FLIGHT_MAX_DEFAULT,
            connections_max: CONNECTIONS_MAX_DEFAULT,
            limits: ConnLimits::default(),
        }
    }
}

impl ServerConfig {
    /// Worker threads calling the backend. More workers let more flushed writes wait for the
    /// same group commit; each costs a thread stack.
    ///
    /// # Panics
    /// If `workers` is 0.
    #[must_use]
    pub fn workers(mut self, workers: usize) -> Self {
        assert!(workers > 0, "a server needs at least one worker");
        self.workers = workers;
        self
    }

    /// Most requests one connection may have in the backend at once (PROTO-9).
    ///
    /// # Panics
    /// If `max` is 0.
    #[must_use]
    pub fn requests_in_flight_max(mut self, max: usize) -> Self {
        assert!(max > 0, "a connection needs at least one request in flight");
        self.requests_in_flight_max = max;
        self
    }

    /// Most connections served at once.
    ///
    /// # Panics
    /// If `max` is 0.
    #[must_use]
    pub fn connections_max(mut self, max: usize) -> Self {
        assert!(max > 0, "a server needs at least one connection");
        self.connections_max = max;
        self
    }

    /// Most reply bytes queued for one client before it is closed (PROTO-13).
    #[must_use]
    pub fn reply_bytes_buffered_max(mut self, max: usize) -> Self {
        self.limits.reply_bytes_buffered_max = max;
        self
    }

    /// Silence after which a connection with nothing in flight is closed (PROTO-13).
    #[must_use]
    pub fn idle_timeout_ms(mut self, ms: u64) -> Self {
        self.limits.idle_timeout_ms = ms;
        self
    }

    /// Most time a frame may take from its first byte read to its last (PROTO-13).
    #[must_use]
    pub fn frame_timeout_ms(mut self, ms: u64) -> Self {
        self.limits.frame_timeout_ms = ms;
        self
    }

    /// The per-connection limits (PROTO-13).
    pub fn limits(&self) -> ConnLimits {
        self.limits
    }

    /// The number of worker threads.
    pub fn worker_count(&self) -> usize {
        self.workers
    }
}

/// Errors that stop the server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The socket could not be bound or accepting failed.
    #[error("socket {path}: {source}")]
    Socket {
        /// The socket path.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// Another server is already listening on the socket path.
    #[error("another server is already listening on {0}")]
    InUse(PathBuf),
    /// The final flush on shutdown failed: acknowledged unflushed writes may be lost.
    #[error("final flush failed: {0}")]
    Flush(ErrorReply),
}

/// What a server did, returned by [`Server::run`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServeReport {
    /// Connections accepted.
    pub connections: u64,
    /// Requests answered (error replies included).
    pub replies: u64,
    /// Connections closed by a PROTO-13 limit (unread replies, idle, slow frame).
    pub limit_closes: u64,
    /// What the backend's shutdown said (the engine: its checkpoint, SEC-19).
    pub shutdown: Option<String>,
}

/// Stops a running server from another thread (a signal handler's thread, a test).
#[derive(Debug, Clone)]
pub struct ShutdownHandle {
    stopping: Arc<AtomicBool>,
    socket: PathBuf,
}

impl ShutdownHandle {
    /// Asks the server to shut down (PROTO-10) and wakes its accept loop. Returns at once;
    /// [`Server::run`] returns when the shutdown is complete.
    pub fn shutdown(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        // Wake the blocking accept(); failure means the listener is already gone.
        let _ = UnixStream::connect(&self.socket);
    }
}

/// A bound, not yet running server.
pub struct Server<B: Backend> {
    listener: UnixListener,
    /// PROTO-12: peers whose uid is not here are closed unread.
    allowed_uids: Vec<u32>,
    socket: PathBuf,
    backend: Arc<B>,
    config: ServerConfig,
    stopping: Arc<AtomicBool>,
    /// Planted bug `sector_proto:close-on-malformed`, captured on the binding thread because
    /// planted bugs are per thread and readers run on their own.
    close_on_malformed: bool,
    /// Planted PROTO-13 bugs, captured on the binding thread likewise.
    limit_bugs: LimitBugs,
    /// Where PROTO-13's timeouts get the time.
    clock: Arc<dyn Clock>,
}

impl<B: Backend> std::fmt::Debug for Server<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("socket", &self.socket)
            .field("config", &self.config)
            .field("allowed_uids", &self.allowed_uids)
            .finish_non_exhaustive()
    }
}

impl<B: Backend> Server<B> {
    /// Binds `socket`. A stale socket file nobody listens on (left by a crash) is replaced;
    /// a live one is [`ServerError::InUse`].
    pub fn bind(
        socket: impl AsRef<Path>,
        backend: B,
        config: ServerConfig,
    ) -> Result<Self, ServerError> {
        let socket = socket.as_ref().to_path_buf();
        let sock_err = |source| ServerError::Socket { path: socket.clone(), source };
        if socket.exists() {
            if UnixStream::connect(&socket).is_ok() {
                return Err(ServerError::InUse(socket));
            }
            std::fs::remove_file(&socket).map_err(sock_err)?;
        }
        let listener = UnixListener::bind(&socket).map_err(sock_err)?;
        super::access::restrict_socket_file(&socket).map_err(sock_err)?; // PROTO-12
        Ok(Self {
            listener,
            allowed_uids: vec![super::access::own_uid()],
            socket,
            backend: Arc::new(backend),
            config,
            stopping: Arc::new(AtomicBool::new(false)),
            close_on_malformed: crate::bugs::active("sector_proto:close-on-malformed"),
            limit_bugs: LimitBugs::capture(),
            clock: Arc::new(SystemClock),
        })
    }

    /// Serves only peers running as one of `uids` (PROTO-12). The default is the server's own
    /// effective uid; an empty list refuses everyone.
    #[must_use]
    pub fn allow_uids(self, uids: Vec<u32>) -> Self {
        Self { allowed_uids: uids, ..self }
    }

    /// Reads the time for PROTO-13's timeouts from `clock` instead of the system clock.
    #[must_use]
    pub fn with_clock(self, clock: Arc<dyn Clock>) -> Self {
        Self { clock, ..self }
    }

    /// A handle that stops this server.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle { stopping: Arc::clone(&self.stopping), socket: self.socket.clone() }
    }

    /// Serves until shut down, then answers what was read, flushes the backend, removes the
    /// socket file and returns (PROTO-10).
    pub fn run(self) -> Result<ServeReport, ServerError> {
        let counters = Arc::new(Counters::default());
        let (job_tx, job_rx) = sync_channel::<Job>(self.config.workers * 4);
        let job_rx = Arc::new(Mutex::new(job_rx));
        let workers: Vec<JoinHandle<()>> = (0..self.config.workers)
            .map(|_| {
                let rx = Arc::clone(&job_rx);
                let backend = Arc::clone(&self.backend);
                std::thread::spawn(move || worker_loop(&rx, &*backend))
            })
            .collect();
        let accepted = self.accept_loop(&job_tx, &counters);
        drop(job_tx);
        for w in workers {
            let _ = w.join();
        }
        let _ = std::fs::remove_file(&self.socket);
        let connections = accepted?;
        let shutdown = self.backend.shutdown().map_err(ServerError::Flush)?;
        Ok(ServeReport {
            connections,
            replies: counters.replies.load(Ordering::Relaxed),
            limit_closes: counters.limit_closes.load(Ordering::Relaxed),
            shutdown,
        })
    }

    /// Accepts until shutdown; on shutdown closes every connection's read side and joins
    /// its reader (which waits for its requests in flight). Returns connections accepted.
    fn accept_loop(
        &self,
        jobs: &SyncSender<Job>,
        counters: &Arc<Counters>,
    ) -> Result<u64, ServerError> {
        let open: Arc<Mutex<HashMap<u64, UnixStream>>> = Arc::default();
        let mut readers: Vec<JoinHandle<()>> = Vec::new();
        let mut accepted: u64 = 0;
        let mut result = Ok(());
        for incoming in self.listener.incoming() {
            if self.stopping.load(Ordering::SeqCst) {
                break;
            }
            let stream = match incoming {
                Ok(s) => s,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    result = Err(ServerError::Socket { path: self.socket.clone(), source });
                    break;
                }
            };
            if !super::access::peer_allowed(&stream, &self.allowed_uids) {
                continue; // PROTO-12: dropped, so closed, before anything is read
            }
            readers.retain(|r| !r.is_finished());
            if let Some(reader) = self.start_conn(stream, accepted, &open, jobs, counters) {
                readers.push(reader);
            }
            accepted += 1;
        }
        for stream in lock(&open).values() {
            let _ = stream.shutdown(Shutdown::Read);
        }
        for r in readers {
            let _ = r.join();
        }
        result.map(|()| accepted)
    }

    fn start_conn(
        &self,
        stream: UnixStream,
        conn_id: u64,
        open: &Arc<Mutex<HashMap<u64, UnixStream>>>,
        jobs: &SyncSender<Job>,
        counters: &Arc<Counters>,
    ) -> Option<JoinHandle<()>> {
        let (Ok(conn_stream), Ok(registered)) = (stream.try_clone(), stream.try_clone()) else {
            return None;
        };
        {
            let mut open_now = lock(open);
            // PROTO-9: at most `connections_max` connections; more get `Busy` and are closed.
            if open_now.len() >= self.config.connections_max {
                refuse_busy(&stream);
                return None;
            }
            open_now.insert(conn_id, registered);
        }
        let limits = self.config.limits;
        let conn = Arc::new(Conn::new(conn_stream, Arc::clone(counters), limits, self.limit_bugs));
        let (open, jobs, clock) = (Arc::clone(open), jobs.clone(), Arc::clone(&self.clock));
        let in_flight_max = self.config.requests_in_flight_max;
        let close_on_malformed = self.close_on_malformed;
        Some(std::thread::spawn(move || {
            let writer = {
                let conn = Arc::clone(&conn);
                std::thread::spawn(move || conn.write_loop())
            };
            let ctx = ReadCtx { jobs: &jobs, in_flight_max, close_on_malformed, clock: &*clock };
            read_loop(stream, &conn, &ctx);
            conn.wait_drained();
            lock(&open).remove(&conn_id);
            conn.finish(); // the writer sends what is queued, then closes
            let _ = writer.join();
        }))
    }
}

/// Answers a connection beyond `connections_max` with `Busy` (PROTO-9), best effort.
fn refuse_busy(stream: &UnixStream) {
    let frame = ResponseFrame {
        id: REQUEST_ID_NONE,
        response: Response::Error(ErrorReply::new(ErrorKind::Busy, "too many connections")),
    };
    if let (Ok(bytes), Ok(())) =
        (codec::encode_response_frame(&frame), stream.set_write_timeout(Some(REPLY_WRITE_TIMEOUT)))
    {
        let _ = (&*stream).write_all(&bytes);
    }
    let _ = stream.shutdown(Shutdown::Both);
}

fn worker_loop(jobs: &Mutex<Receiver<Job>>, backend: &dyn Backend) {
    loop {
        let job = match lock(jobs).recv() {
            Ok(job) => job,
            Err(_) => return,
        };
        // PROTO-6: each request read gets exactly one reply; PROTO-7: with its own id, as soon
        // as it is ready, whatever the order.
        let response = backend.handle(job.request);
        job.conn.reply(job.id, response);
        job.conn.release();
    }
}
