//! The TCP side of the secure channel (`cellar::net::channel`, `specs/channel.md`): blocking
//! drivers that move bytes between a `TcpStream` and a [`Channel`], and the group secret's
//! sources for `cellar node` and `cellar kv`.
//!
//! There is no plain-text mode: every connection of the node protocol is a channel, and every
//! node-protocol body (`NetFrame` one way, `KvResponse` back) is one channel message. A
//! connection carries any number of messages (NP-1).
//!
//! Bounds (NP-4): the handshake has its deadline inside the channel (CH-8); after it, each
//! message must arrive within the message deadline of its first byte and a connection with no
//! message for the idle timeout is closed (`cellar::net::limits`, which decides; this file only
//! polls the socket every [`POLL_MS`] and asks). Each write gets [`IO_TIMEOUT_MS`]. The group
//! secret never comes from the command line, where other users could read it in `ps`: a file
//! (`--secret-file`) or the `CELLAR_SECRET` environment variable.

use cellar::env::{Clock, Entropy, OsEntropy, SystemClock};
use cellar::net::channel::{Channel, ChannelConfig, ChannelEvent, ChannelPsk, StaticKeys};
use cellar::net::limits::{ConnectionLimits, ConnectionTimer};
use cellar::storage::secret::VolumeSecret;
use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Connect and write timeout of one socket operation.
pub const IO_TIMEOUT_MS: u64 = 3000;
/// How often a blocked read wakes to check the connection's time limits.
pub const POLL_MS: u64 = 250;
/// Bytes read from the socket at a time.
const READ_CHUNK_BYTES: usize = 64 * 1024;
/// The environment variable that may hold the group secret (64 hex digits).
pub const SECRET_ENV: &str = "CELLAR_SECRET";

/// Parses a group secret: 64 hex digits, surrounding whitespace ignored.
pub fn parse_secret(text: &str) -> Result<VolumeSecret, String> {
    let bytes = hex::decode(text.trim()).map_err(|e| format!("secret is not hex: {e}"))?;
    let arr: [u8; 32] =
        bytes.try_into().map_err(|_| "secret must be 32 bytes (64 hex digits)".to_owned())?;
    Ok(VolumeSecret::from_bytes(arr))
}

/// The group secret from `--secret-file`, else from `CELLAR_SECRET`; `None` if neither is given.
pub fn given_secret(file: Option<&Path>) -> Result<Option<VolumeSecret>, String> {
    if let Some(f) = file {
        let text = std::fs::read_to_string(f).map_err(|e| format!("{}: {e}", f.display()))?;
        return parse_secret(&text).map(Some).map_err(|e| format!("{}: {e}", f.display()));
    }
    match std::env::var(SECRET_ENV) {
        Ok(text) => parse_secret(&text).map(Some).map_err(|e| format!("{SECRET_ENV}: {e}")),
        Err(_) => Ok(None),
    }
}

/// Everything a side needs to open channels: its static keys and the group PSK.
#[derive(Clone)]
pub struct Credentials {
    /// The static key pair.
    pub keys: StaticKeys,
    /// The group's PSK (derived from the group secret).
    pub psk: ChannelPsk,
}

/// One authenticated connection: a socket and the channel over it.
pub struct Link {
    stream: TcpStream,
    channel: Channel,
    timer: ConnectionTimer,
    /// Messages received but not yet returned by [`Link::recv`].
    inbox: VecDeque<Vec<u8>>,
}

fn now_ms() -> u64 {
    SystemClock.now_ms()
}

fn other(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

fn set_timeouts(s: &TcpStream) -> std::io::Result<()> {
    s.set_read_timeout(Some(Duration::from_millis(POLL_MS)))?;
    s.set_write_timeout(Some(Duration::from_millis(IO_TIMEOUT_MS)))?;
    s.set_nodelay(true)
}

impl Link {
    /// Connects to `addr` as the channel's initiator (the first handshake message is sent).
    pub fn connect(
        addr: &str,
        creds: &Credentials,
        limits: ConnectionLimits,
    ) -> std::io::Result<Link> {
        use std::net::ToSocketAddrs;
        let sock =
            addr.to_socket_addrs()?.next().ok_or_else(|| other("address resolves to nothing"))?;
        let stream = TcpStream::connect_timeout(&sock, Duration::from_millis(IO_TIMEOUT_MS))?;
        set_timeouts(&stream)?;
        let entropy: Arc<dyn Entropy> = Arc::new(OsEntropy);
        let now = now_ms();
        let channel =
            Channel::initiator(&creds.keys, &creds.psk, entropy, ChannelConfig::default(), now)
                .map_err(other)?;
        let timer = ConnectionTimer::new(limits, now);
        let mut link = Link { stream, channel, timer, inbox: VecDeque::new() };
        link.flush()?;
        Ok(link)
    }

    /// Accepts `stream` as the channel's responder.
    pub fn accept(
        stream: TcpStream,
        creds: &Credentials,
        limits: ConnectionLimits,
    ) -> std::io::Result<Link> {
        set_timeouts(&stream)?;
        let entropy: Arc<dyn Entropy> = Arc::new(OsEntropy);
        let now = now_ms();
        let channel =
            Channel::responder(&creds.keys, &creds.psk, entropy, ChannelConfig::default(), now)
                .map_err(other)?;
        let timer = ConnectionTimer::new(limits, now);
        Ok(Link { stream, channel, timer, inbox: VecDeque::new() })
    }

    /// Sends one message (queued until the handshake, which `establish` or `recv` drives,
    /// finishes).
    pub fn send(&mut self, message: &[u8]) -> std::io::Result<()> {
        self.channel.send(message).map_err(other)?;
        self.flush()?;
        self.timer.on_sent(now_ms());
        Ok(())
    }

    /// Writes whatever the channel has for the peer.
    fn flush(&mut self) -> std::io::Result<()> {
        let out = self.channel.take_output();
        if !out.is_empty() {
            self.stream.write_all(&out)?;
            self.stream.flush()?;
        }
        Ok(())
    }

    /// Reads until the channel is open (the initiator's last handshake message and anything
    /// queued with `send` are written).
    pub fn establish(&mut self) -> std::io::Result<()> {
        while !self.channel.is_open() {
            self.read_some()?;
        }
        self.flush()
    }

    /// The next whole, authenticated message, driving the handshake; `Ok(None)` when the peer
    /// closed the connection between messages.
    pub fn recv(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        loop {
            if let Some(m) = self.inbox.pop_front() {
                return Ok(Some(m));
            }
            match self.read_some() {
                Ok(()) => {}
                Err(e)
                    if e.kind() == std::io::ErrorKind::UnexpectedEof
                        && self.channel.is_open()
                        && !self.channel.mid_message() =>
                {
                    return Ok(None);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Like [`Link::recv`], but a close by the peer is an error (a reply was expected).
    pub fn recv_reply(&mut self) -> std::io::Result<Vec<u8>> {
        self.recv()?.ok_or_else(|| std::io::Error::from(std::io::ErrorKind::UnexpectedEof))
    }

    /// Is this link still worth sending on: the peer has not closed it, nothing unexpected
    /// arrived on it, and it has been idle for less than half the idle timeout (the peer
    /// closes it at the whole timeout, NP-4; a send racing that close would be lost)?
    pub fn usable(&mut self, idle_max_ms: u64) -> bool {
        if self.timer.idle_ms(now_ms()) >= idle_max_ms / 2 || self.channel.is_failed() {
            return false;
        }
        let mut probe = [0u8; 1];
        if self.stream.set_nonblocking(true).is_err() {
            return false;
        }
        let alive = matches!(self.stream.peek(&mut probe),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock);
        alive && self.stream.set_nonblocking(false).is_ok()
    }

    /// Waits for bytes, feeds them to the channel, queues the messages they complete and
    /// writes the channel's answer. Fails when a time limit passes (CH-8, NP-4).
    fn read_some(&mut self) -> std::io::Result<()> {
        let mut buf = vec![0u8; READ_CHUNK_BYTES];
        loop {
            let now = now_ms();
            self.channel.tick(now).map_err(other)?;
            self.timer.check(now).map_err(other)?;
            match self.stream.read(&mut buf) {
                Ok(0) => return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof)),
                Ok(n) => {
                    let now = now_ms();
                    let events = self
                        .channel
                        .receive(buf.get(..n).unwrap_or_default(), now)
                        .map_err(other)?;
                    let completed = events.len();
                    for e in events {
                        if let ChannelEvent::Message(m) = e {
                            self.inbox.push_back(m);
                        }
                    }
                    self.timer.on_bytes(now, completed, self.channel.mid_message());
                    return self.flush();
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => return Err(e),
            }
        }
    }
}
