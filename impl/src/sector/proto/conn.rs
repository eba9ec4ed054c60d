//! One connection of the sector server: its reader (frames in, requests to the workers), its
//! writer thread (replies out, in the order they complete) and the limits between them
//! (PROTO-4..PROTO-9, PROTO-13). Part of the production shell (`server.rs`): threads and
//! sockets live here; what the bytes mean is the [`ServerSession`]'s (the same state machine the
//! simulator drives), and every limit decision is `limits.rs`'s.

use super::limits::{self, Activity, ConnLimits, LimitBugs, LimitClose};
use super::server::REPLY_WRITE_TIMEOUT;
use super::server_session::{ServerEvent, ServerSession};
use super::{ErrorKind, ErrorReply, Request, Response};
use crate::env::Clock;
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// Bytes asked of the socket per read.
const READ_CHUNK_BYTES: usize = 64 * 1024;

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A request read from a connection, on its way to a worker.
pub(super) struct Job {
    pub(super) id: u64,
    pub(super) request: Request,
    pub(super) conn: Arc<Conn>,
}

/// Counters shared by every connection of a server.
#[derive(Debug, Default)]
pub(super) struct Counters {
    /// Replies written.
    pub(super) replies: AtomicU64,
    /// Connections closed by a PROTO-13 limit.
    pub(super) limit_closes: AtomicU64,
}

/// Replies waiting for the writer thread.
#[derive(Default)]
struct Outbox {
    queue: VecDeque<Vec<u8>>,
    /// Bytes in `queue` plus the reply being written (PROTO-13).
    queued_bytes: usize,
    /// No more replies: the writer sends what is queued, then closes.
    finished: bool,
    /// Closed by a limit or a failed write: nothing more is sent.
    aborted: bool,
}

/// One connection's shared state.
pub(super) struct Conn {
    stream: UnixStream,
    outbox: Mutex<Outbox>,
    outbox_ready: Condvar,
    in_flight: Mutex<usize>,
    drained: Condvar,
    counters: Arc<Counters>,
    limits: ConnLimits,
    bugs: LimitBugs,
}

impl Conn {
    pub(super) fn new(
        stream: UnixStream,
        counters: Arc<Counters>,
        limits: ConnLimits,
        bugs: LimitBugs,
    ) -> Self {
        Self {
            stream,
            outbox: Mutex::default(),
            outbox_ready: Condvar::new(),
            in_flight: Mutex::new(0),
            drained: Condvar::new(),
            counters,
            limits,
            bugs,
        }
    }

    /// Queues one reply for the writer thread. A client that went away just misses it
    /// (PROTO-8); one that lets more than `reply_bytes_buffered_max` wait is closed (PROTO-13).
    pub(super) fn reply(&self, id: u64, response: Response) {
        let Some(bytes) = ServerSession::reply(id, response) else { return };
        self.send(bytes);
    }

    /// Queues one reply frame for the writer thread (see [`Conn::reply`]).
    pub(super) fn send(&self, bytes: Vec<u8>) {
        let mut out = lock(&self.outbox);
        if out.aborted {
            return;
        }
        // PROTO-13: a slow reader must not grow the server's memory without bound.
        if !limits::reply_fits(&self.limits, self.bugs, out.queued_bytes, bytes.len()) {
            drop(out);
            self.abort(Some(LimitClose::RepliesUnread));
            return;
        }
        out.queued_bytes += bytes.len();
        out.queue.push_back(bytes);
        self.outbox_ready.notify_all();
    }

    pub(super) fn error(&self, id: u64, kind: ErrorKind, message: String) {
        self.reply(id, Response::Error(ErrorReply::new(kind, message)));
    }

    /// Closes the connection at once, dropping queued replies; counts it if a limit did it.
    fn abort(&self, limit: Option<LimitClose>) {
        let mut out = lock(&self.outbox);
        if !out.aborted && limit.is_some() {
            self.counters.limit_closes.fetch_add(1, Ordering::Relaxed);
        }
        out.aborted = true;
        out.queue.clear();
        self.outbox_ready.notify_all();
        drop(out);
        let _ = self.stream.shutdown(Shutdown::Both);
    }

    /// No more replies will come: the writer sends what is queued, then closes.
    pub(super) fn finish(&self) {
        lock(&self.outbox).finished = true;
        self.outbox_ready.notify_all();
    }

    /// The writer thread: sends queued replies in order until finished or aborted.
    pub(super) fn write_loop(&self) {
        let mut writer = match self.stream.try_clone() {
            Ok(w) => w,
            Err(_) => return self.abort(None),
        };
        // A client that stops reading altogether is dropped after the timeout (PROTO-9).
        if writer.set_write_timeout(Some(REPLY_WRITE_TIMEOUT)).is_err() {
            return self.abort(None);
        }
        loop {
            let bytes = {
                let mut out = lock(&self.outbox);
                loop {
                    if out.aborted {
                        return;
                    }
                    if let Some(b) = out.queue.pop_front() {
                        break b;
                    }
                    if out.finished {
                        drop(out);
                        let _ = self.stream.shutdown(Shutdown::Both);
                        return;
                    }
                    out = self.outbox_ready.wait(out).unwrap_or_else(|e| e.into_inner());
                }
            };
            if writer.write_all(&bytes).is_err() {
                // Gone, or not reading for REPLY_WRITE_TIMEOUT: close so the reader stops
                // too; requests in flight still complete (PROTO-8).
                return self.abort(None);
            }
            let mut out = lock(&self.outbox);
            out.queued_bytes = out.queued_bytes.saturating_sub(bytes.len());
            self.counters.replies.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Requests in flight, or replies not yet written: the connection is not idle.
    fn busy(&self) -> bool {
        *lock(&self.in_flight) > 0 || lock(&self.outbox).queued_bytes > 0
    }

    /// Waits until fewer than `max` requests are in flight, then takes a slot (PROTO-9).
    fn acquire(&self, max: usize) {
        let mut n = lock(&self.in_flight);
        while *n >= max {
            n = self.drained.wait(n).unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        *n += 1;
    }

    pub(super) fn release(&self) {
        let mut n = lock(&self.in_flight);
        debug_assert!(*n > 0, "PROTO-9: release without acquire");
        *n = n.saturating_sub(1);
        self.drained.notify_all();
    }

    pub(super) fn wait_drained(&self) {
        let mut n = lock(&self.in_flight);
        while *n > 0 {
            n = self.drained.wait(n).unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }
}

/// What the reader needs besides the connection.
pub(super) struct ReadCtx<'a> {
    pub(super) jobs: &'a SyncSender<Job>,
    pub(super) in_flight_max: usize,
    pub(super) close_on_malformed: bool,
    pub(super) clock: &'a dyn Clock,
}

/// Reads frames until the client leaves, the server stops reading, a frame is too large, or a
/// PROTO-13 limit closes the connection.
pub(super) fn read_loop(mut stream: UnixStream, conn: &Arc<Conn>, ctx: &ReadCtx<'_>) {
    let poll = Duration::from_millis(limits::poll_interval_ms(&conn.limits));
    if stream.set_read_timeout(Some(poll)).is_err() {
        return;
    }
    let mut session = ServerSession::with_close_on_malformed(ctx.close_on_malformed);
    let mut buf = vec![0u8; READ_CHUNK_BYTES];
    let mut activity = Activity::new(ctx.clock.now_ms());
    loop {
        let n = match stream.read(&mut buf) {
            // PROTO-5: the end of the stream, mid-frame or not, is the client leaving.
            Ok(0) => return,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                // PROTO-13: nothing arrived for a while; is a limit reached?
                let (now, busy) = (ctx.clock.now_ms(), conn.busy());
                if busy {
                    activity.last_ms = now; // idle time counts from when the work is done
                }
                if let Some(why) = activity.verdict(&conn.limits, conn.bugs, now, busy) {
                    return conn.abort(Some(why));
                }
                continue;
            }
            Err(_) => return,
        };
        activity.last_ms = ctx.clock.now_ms();
        let events = session.receive(buf.get(..n).unwrap_or_default());
        let completed = !events.is_empty();
        for event in events {
            let go_on = match event {
                ServerEvent::Request { id, request } => dispatch(id, request, conn, ctx),
                ServerEvent::Send(bytes) => {
                    conn.send(bytes);
                    true
                }
                ServerEvent::Close => false,
            };
            if !go_on {
                return;
            }
        }
        // PROTO-13: a frame's clock starts when the server reads its first byte (a reader held
        // up by back-pressure does not count against the client).
        activity.frame_started_ms = match (session.frame_in_progress(), activity.frame_started_ms) {
            (false, _) => None,
            (true, Some(started)) if !completed => Some(started),
            (true, _) => Some(ctx.clock.now_ms()),
        };
        // A client dribbling a frame byte by byte never lets a read time out: check here too
        // (`busy`: it has just sent something, so it is not idle).
        if let Some(why) = activity.verdict(&conn.limits, conn.bugs, ctx.clock.now_ms(), true) {
            return conn.abort(Some(why));
        }
    }
}

/// Hands one request to the workers; `false` when the connection must stop.
fn dispatch(id: u64, request: Request, conn: &Arc<Conn>, ctx: &ReadCtx<'_>) -> bool {
    // PROTO-9: back-pressure: stop reading until fewer than `max` requests are in flight.
    conn.acquire(ctx.in_flight_max);
    let job = Job { id, request, conn: Arc::clone(conn) };
    if let Err(returned) = ctx.jobs.send(job) {
        // The workers are gone: the server is stopping.
        let job = returned.0;
        conn.error(job.id, ErrorKind::ShuttingDown, "the server is shutting down".to_owned());
        conn.release();
        return false;
    }
    true
}
