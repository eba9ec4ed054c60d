//! The TCP side of the secure channel (`cellar::net::channel`, `specs/channel.md`): blocking
//! drivers that move bytes between a `TcpStream` and a [`Channel`], and the group secret's
//! sources for `cellar node` and `cellar kv`.
//!
//! There is no plain-text mode: every connection of the node protocol is a channel, and every
//! node-protocol body (`NetFrame` one way, `KvResponse` back) is one channel message.
//!
//! Bounds: a connection is given [`CONNECTION_DEADLINE_MS`] in all to deliver a message (the
//! handshake has its own, shorter deadline inside the channel), each read or write
//! [`IO_TIMEOUT_MS`]. The group secret never comes from the command line, where other users
//! could read it in `ps`: a file (`--secret-file`) or the `CELLAR_SECRET` environment variable.

use cellar::env::{Clock, Entropy, OsEntropy, SystemClock};
use cellar::net::channel::{Channel, ChannelConfig, ChannelEvent, ChannelPsk, StaticKeys};
use cellar::storage::secret::VolumeSecret;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Connect, read and write timeout of one socket operation.
pub const IO_TIMEOUT_MS: u64 = 3000;
/// A connection must deliver its message within this long of its start, whatever it sends.
pub const CONNECTION_DEADLINE_MS: u64 = 10_000;
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
    started_ms: u64,
}

fn now_ms() -> u64 {
    SystemClock.now_ms()
}

fn other(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

fn set_timeouts(s: &TcpStream) -> std::io::Result<()> {
    let timeout = Some(Duration::from_millis(IO_TIMEOUT_MS));
    s.set_read_timeout(timeout)?;
    s.set_write_timeout(timeout)
}

impl Link {
    /// Connects to `addr` as the channel's initiator (the first handshake message is sent).
    pub fn connect(addr: &str, creds: &Credentials) -> std::io::Result<Link> {
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
        let mut link = Link { stream, channel, started_ms: now };
        link.flush()?;
        Ok(link)
    }

    /// Accepts `stream` as the channel's responder.
    pub fn accept(stream: TcpStream, creds: &Credentials) -> std::io::Result<Link> {
        set_timeouts(&stream)?;
        let entropy: Arc<dyn Entropy> = Arc::new(OsEntropy);
        let now = now_ms();
        let channel =
            Channel::responder(&creds.keys, &creds.psk, entropy, ChannelConfig::default(), now)
                .map_err(other)?;
        Ok(Link { stream, channel, started_ms: now })
    }

    /// Sends one message (after the handshake, which `recv` drives).
    pub fn send(&mut self, message: &[u8]) -> std::io::Result<()> {
        self.channel.send(message).map_err(other)?;
        self.flush()
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
            let events = self.read_some()?;
            debug_assert!(events.iter().all(|e| matches!(e, ChannelEvent::Established { .. })));
        }
        self.flush()
    }

    /// Reads until one whole, authenticated message has arrived, driving the handshake.
    pub fn recv(&mut self) -> std::io::Result<Vec<u8>> {
        loop {
            for e in self.read_some()? {
                if let ChannelEvent::Message(m) = e {
                    return Ok(m);
                }
            }
        }
    }

    /// One socket read fed to the channel; writes the channel's answer.
    fn read_some(&mut self) -> std::io::Result<Vec<ChannelEvent>> {
        if now_ms().saturating_sub(self.started_ms) > CONNECTION_DEADLINE_MS {
            return Err(other("connection deadline passed"));
        }
        let mut buf = vec![0u8; READ_CHUNK_BYTES];
        let n = self.stream.read(&mut buf)?;
        if n == 0 {
            return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
        }
        let events = self.channel.receive(buf.get(..n).unwrap_or_default(), now_ms());
        let events = events.map_err(other)?;
        self.flush()?;
        Ok(events)
    }
}
