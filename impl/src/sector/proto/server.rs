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
//! - PROTO-10: shutdown stops accepting, stops reading, answers every request already read,
//!   then flushes the backend before [`Server::run`] returns.

use super::codec::{self, FrameError, ReadFrame};
use super::{ErrorKind, ErrorReply, REQUEST_ID_NONE, Request, Response, ResponseFrame};
use std::collections::HashMap;
use std::io::{self, BufReader, Write};
use std::net::Shutdown;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
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

    /// Makes everything acknowledged so far durable. Called once on shutdown (PROTO-10).
    fn flush(&self) -> Result<(), ErrorReply>;
}

/// Server tuning. Defaults: [`WORKERS_DEFAULT`], [`REQUESTS_IN_FLIGHT_MAX_DEFAULT`],
/// [`CONNECTIONS_MAX_DEFAULT`].
#[derive(Debug, Clone, Copy)]
pub struct ServerConfig {
    workers: usize,
    requests_in_flight_max: usize,
    connections_max: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            workers: WORKERS_DEFAULT,
            requests_in_flight_max: REQUESTS_IN_FLIGHT_MAX_DEFAULT,
            connections_max: CONNECTIONS_MAX_DEFAULT,
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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServeReport {
    /// Connections accepted.
    pub connections: u64,
    /// Requests answered (error replies included).
    pub replies: u64,
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
#[derive(Debug)]
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
}

/// A request read from a connection, on its way to a worker.
struct Job {
    id: u64,
    request: Request,
    conn: Arc<Conn>,
}

/// One connection's shared state: its write half and its requests in flight.
struct Conn {
    writer: Mutex<UnixStream>,
    in_flight: Mutex<usize>,
    drained: Condvar,
    replies: Arc<AtomicU64>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Conn {
    /// Writes one reply. A client that went away just misses it (PROTO-8).
    fn reply(&self, id: u64, response: Response) {
        let frame = ResponseFrame { id, response };
        let bytes = match codec::encode_response_frame(&frame) {
            Ok(bytes) => bytes,
            Err(e) => {
                // A reply too large for a frame (a read_range over many big values): the
                // client must ask for fewer keys.
                let message = format!("reply does not fit in a frame, ask for less: {e}");
                let fallback = Response::Error(ErrorReply::new(ErrorKind::InvalidRequest, message));
                match codec::encode_response_frame(&ResponseFrame { id, response: fallback }) {
                    Ok(bytes) => bytes,
                    Err(_) => return,
                }
            }
        };
        let mut writer = lock(&self.writer);
        if writer.write_all(&bytes).is_err() {
            // The client is gone or stopped reading for REPLY_WRITE_TIMEOUT: close the
            // connection so its reader stops too; its requests still complete (PROTO-8).
            let _ = writer.shutdown(Shutdown::Both);
            return;
        }
        self.replies.fetch_add(1, Ordering::Relaxed);
    }

    fn error(&self, id: u64, kind: ErrorKind, message: String) {
        self.reply(id, Response::Error(ErrorReply::new(kind, message)));
    }

    /// Waits until fewer than `max` requests are in flight, then takes a slot (PROTO-9).
    fn acquire(&self, max: usize) {
        let mut n = lock(&self.in_flight);
        while *n >= max {
            n = self.drained.wait(n).unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        *n += 1;
    }

    fn release(&self) {
        let mut n = lock(&self.in_flight);
        debug_assert!(*n > 0, "PROTO-9: release without acquire");
        *n = n.saturating_sub(1);
        self.drained.notify_all();
    }

    fn wait_drained(&self) {
        let mut n = lock(&self.in_flight);
        while *n > 0 {
            n = self.drained.wait(n).unwrap_or_else(std::sync::PoisonError::into_inner);
        }
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
        })
    }

    /// Serves only peers running as one of `uids` (PROTO-12). The default is the server's own
    /// effective uid; an empty list refuses everyone.
    #[must_use]
    pub fn allow_uids(self, uids: Vec<u32>) -> Self {
        Self { allowed_uids: uids, ..self }
    }

    /// A handle that stops this server.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle { stopping: Arc::clone(&self.stopping), socket: self.socket.clone() }
    }

    /// Serves until shut down, then answers what was read, flushes the backend, removes the
    /// socket file and returns (PROTO-10).
    pub fn run(self) -> Result<ServeReport, ServerError> {
        let replies = Arc::new(AtomicU64::new(0));
        let (job_tx, job_rx) = sync_channel::<Job>(self.config.workers * 4);
        let job_rx = Arc::new(Mutex::new(job_rx));
        let workers: Vec<JoinHandle<()>> = (0..self.config.workers)
            .map(|_| {
                let rx = Arc::clone(&job_rx);
                let backend = Arc::clone(&self.backend);
                std::thread::spawn(move || worker_loop(&rx, &*backend))
            })
            .collect();
        let accepted = self.accept_loop(&job_tx, &replies);
        drop(job_tx);
        for w in workers {
            let _ = w.join();
        }
        let _ = std::fs::remove_file(&self.socket);
        let connections = accepted?;
        self.backend.flush().map_err(ServerError::Flush)?;
        Ok(ServeReport { connections, replies: replies.load(Ordering::Relaxed) })
    }

    /// Accepts until shutdown; on shutdown closes every connection's read side and joins
    /// its reader (which waits for its requests in flight). Returns connections accepted.
    fn accept_loop(
        &self,
        jobs: &SyncSender<Job>,
        replies: &Arc<AtomicU64>,
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
            if let Some(reader) = self.start_conn(stream, accepted, &open, jobs, replies) {
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
        replies: &Arc<AtomicU64>,
    ) -> Option<JoinHandle<()>> {
        let (Ok(writer), Ok(registered)) = (stream.try_clone(), stream.try_clone()) else {
            return None;
        };
        // PROTO-9: a client that stops reading replies is disconnected after the timeout.
        if writer.set_write_timeout(Some(REPLY_WRITE_TIMEOUT)).is_err() {
            return None;
        }
        let conn = Arc::new(Conn {
            writer: Mutex::new(writer),
            in_flight: Mutex::new(0),
            drained: Condvar::new(),
            replies: Arc::clone(replies),
        });
        {
            let mut open_now = lock(open);
            // PROTO-9: at most `connections_max` connections; more get `Busy` and are closed.
            if open_now.len() >= self.config.connections_max {
                conn.error(REQUEST_ID_NONE, ErrorKind::Busy, "too many connections".to_owned());
                return None;
            }
            open_now.insert(conn_id, registered);
        }
        let (open, jobs) = (Arc::clone(open), jobs.clone());
        let max = self.config.requests_in_flight_max;
        let close_on_malformed = self.close_on_malformed;
        Some(std::thread::spawn(move || {
            read_loop(stream, &conn, &jobs, max, close_on_malformed);
            conn.wait_drained();
            lock(&open).remove(&conn_id);
            let _ = lock(&conn.writer).shutdown(Shutdown::Both);
        }))
    }
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

/// Reads frames until the client leaves, the server stops reading, or a frame is too large.
fn read_loop(
    stream: UnixStream,
    conn: &Arc<Conn>,
    jobs: &SyncSender<Job>,
    max: usize,
    close_on_malformed: bool,
) {
    let mut reader = BufReader::new(stream);
    loop {
        let body = match codec::read_frame_body(&mut reader) {
            Ok(ReadFrame::Body(body)) => body,
            Ok(ReadFrame::TooLarge { length_bytes }) => {
                // PROTO-3: the stream cannot be resynchronised; answer and close.
                let e = FrameError::TooLarge { length_bytes };
                conn.error(REQUEST_ID_NONE, ErrorKind::FrameTooLarge, e.to_string());
                return;
            }
            // PROTO-5: a frame cut short by the end of the stream is the client leaving.
            Ok(ReadFrame::Eof | ReadFrame::Truncated) | Err(_) => return,
        };
        let frame = match codec::decode_request_body(&body) {
            Ok(frame) => frame,
            Err(e) => {
                // PROTO-4: the prefix was valid, so skipping this body resynchronises.
                let id = match &e {
                    FrameError::Undecodable { id: Some(id), .. } => *id,
                    _ => REQUEST_ID_NONE,
                };
                conn.error(id, ErrorKind::MalformedFrame, e.to_string());
                if close_on_malformed {
                    return; // planted bug: breaks PROTO-4
                }
                continue;
            }
        };
        if let Err(e) = frame.request.validate() {
            conn.reply(frame.id, Response::Error(e));
            continue;
        }
        // PROTO-9: back-pressure: stop reading until fewer than `max` requests are in flight.
        conn.acquire(max);
        let job = Job { id: frame.id, request: frame.request, conn: Arc::clone(conn) };
        if let Err(returned) = jobs.send(job) {
            // The workers are gone: the server is stopping.
            let job = returned.0;
            conn.error(job.id, ErrorKind::ShuttingDown, "the server is shutting down".to_owned());
            conn.release();
            return;
        }
    }
}
