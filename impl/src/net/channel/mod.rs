//! The secure channel (`specs/channel.md`, CH-1..CH-9): a sans-IO state machine over a byte
//! stream that authenticates both ends, encrypts and authenticates every record, and refuses
//! replayed, reordered, truncated and forged ones.
//!
//! A [`Channel`] is built as the initiator (the side that connects) or the responder. The
//! driver feeds it the bytes that arrive ([`Channel::receive`], with `now_ms`), hands it the
//! messages to send ([`Channel::send`]) and writes out what [`Channel::take_output`] returns.
//! It reports [`ChannelEvent::Established`] once the Noise handshake (XXpsk0, see
//! [`crypto`]) has finished, and [`ChannelEvent::Message`] for each whole message whose every
//! record verified. Any failure ends the channel for good (CH-7): the driver closes the
//! connection.
//!
//! Why a state machine: `cellar node`'s TCP loop, `cellar kv` and the simulator (which puts an
//! attacker on the wire) all drive this same code; time arrives as `now_ms`, randomness through
//! the injected [`crate::env::Entropy`].
//!
//! Never: deliver a byte of a record whose tag did not verify (CH-5); deliver a message before
//! the handshake has authenticated the peer (CH-3); hold more than one partial record plus one
//! partial message of input (CH-6); send anything in plain text — there is no plain mode.

pub mod crypto;
pub mod error;
pub mod keys;
pub mod record;
#[cfg(test)]
mod tests;

pub use crypto::{NOISE_PATTERN, PROLOGUE};
pub use error::ChannelError;
pub use keys::{ChannelPsk, KeyFileError, PURPOSE_CHANNEL_PSK, StaticKeys};

use crate::env::Entropy;
use crypto::{EntropyResolver, KEY_BYTES, params, setup};
use record::{Assembler, RECORD_BODY_MAX_BYTES, TAG_BYTES, chunk_plaintexts, parse_chunk};
use std::collections::VecDeque;
use std::sync::Arc;

/// Largest message a channel carries: a node protocol frame (16 MiB gossip message plus its
/// envelope, `db::gossip::frame::FRAME_SIZE_MAX_BYTES`).
pub const MESSAGE_SIZE_MAX_BYTES: usize = 16 * 1024 * 1024 + 64 * 1024;
/// Default time a handshake may take, from the channel's creation, ms.
pub const HANDSHAKE_TIMEOUT_MS_DEFAULT: u64 = 5_000;
/// Most messages [`Channel::send`] queues before the handshake finishes.
pub const PENDING_MESSAGES_MAX: usize = 64;

/// A channel's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelConfig {
    /// The handshake must finish within this many ms of the channel's creation (CH-8).
    /// Default [`HANDSHAKE_TIMEOUT_MS_DEFAULT`].
    pub handshake_timeout_ms: u64,
    /// Largest message sent or received (CH-6). Default and maximum
    /// [`MESSAGE_SIZE_MAX_BYTES`].
    pub message_size_max_bytes: usize,
}

impl Default for ChannelConfig {
    fn default() -> Self {
        Self {
            handshake_timeout_ms: HANDSHAKE_TIMEOUT_MS_DEFAULT,
            message_size_max_bytes: MESSAGE_SIZE_MAX_BYTES,
        }
    }
}

/// What a channel reports from [`Channel::receive`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelEvent {
    /// The handshake finished: the peer knows the group PSK and holds this static key.
    Established {
        /// The peer's static X25519 public key.
        peer_static: [u8; KEY_BYTES],
    },
    /// A whole message, every record of it authenticated, in order (CH-5).
    Message(Vec<u8>),
}

enum Phase {
    Handshake(Box<snow::HandshakeState>),
    Open(Box<snow::TransportState>),
    Failed,
}

/// One end of a secure channel. See the module documentation.
pub struct Channel {
    phase: Phase,
    /// Received bytes not yet parsed: at most one partial record.
    inbox: Vec<u8>,
    /// Bytes to write to the peer.
    outbox: Vec<u8>,
    /// Messages sent before the handshake finished.
    pending: VecDeque<Vec<u8>>,
    assembler: Assembler,
    deadline_ms: u64,
    peer_static: Option<[u8; KEY_BYTES]>,
    config: ChannelConfig,
    /// Scratch for one Noise message.
    scratch: Vec<u8>,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let phase = match self.phase {
            Phase::Handshake(_) => "handshake",
            Phase::Open(_) => "open",
            Phase::Failed => "failed",
        };
        write!(f, "Channel({phase})")
    }
}

impl Channel {
    /// The connecting side: its first handshake message is ready in [`Channel::take_output`].
    ///
    /// # Errors
    /// [`ChannelError::Setup`] (never for valid keys).
    pub fn initiator(
        keys: &StaticKeys,
        psk: &ChannelPsk,
        entropy: Arc<dyn Entropy>,
        config: ChannelConfig,
        now_ms: u64,
    ) -> Result<Self, ChannelError> {
        let hs = builder(keys, psk, entropy)?.build_initiator().map_err(setup)?;
        let mut c = Self::new(hs, config, now_ms);
        c.write_handshake()?;
        Ok(c)
    }

    /// The accepting side: waits for the initiator's first message.
    ///
    /// # Errors
    /// [`ChannelError::Setup`] (never for valid keys).
    pub fn responder(
        keys: &StaticKeys,
        psk: &ChannelPsk,
        entropy: Arc<dyn Entropy>,
        config: ChannelConfig,
        now_ms: u64,
    ) -> Result<Self, ChannelError> {
        let hs = builder(keys, psk, entropy)?.build_responder().map_err(setup)?;
        Ok(Self::new(hs, config, now_ms))
    }

    fn new(hs: snow::HandshakeState, config: ChannelConfig, now_ms: u64) -> Self {
        let config = ChannelConfig {
            message_size_max_bytes: config.message_size_max_bytes.min(MESSAGE_SIZE_MAX_BYTES),
            ..config
        };
        Self {
            phase: Phase::Handshake(Box::new(hs)),
            inbox: Vec::new(),
            outbox: Vec::new(),
            pending: VecDeque::new(),
            assembler: Assembler::default(),
            deadline_ms: now_ms.saturating_add(config.handshake_timeout_ms),
            peer_static: None,
            config,
            scratch: vec![0; RECORD_BODY_MAX_BYTES],
        }
    }

    /// Has the handshake finished (and the channel not failed)?
    pub fn is_open(&self) -> bool {
        matches!(self.phase, Phase::Open(_))
    }

    /// Has the channel failed?
    pub fn is_failed(&self) -> bool {
        matches!(self.phase, Phase::Failed)
    }

    /// The peer's static public key, once the handshake has authenticated it.
    pub fn peer_static(&self) -> Option<&[u8; KEY_BYTES]> {
        self.peer_static.as_ref()
    }

    /// Is a message partly received (a partial record buffered, or records of an unfinished
    /// message)? The node transport's message deadline (NP-4) runs while this holds.
    pub fn mid_message(&self) -> bool {
        !self.inbox.is_empty() || !self.assembler.is_empty()
    }

    /// Takes the bytes to write to the peer.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.outbox)
    }

    /// Bytes waiting in [`Channel::take_output`].
    pub fn output_len(&self) -> usize {
        self.outbox.len()
    }

    /// Checks the handshake deadline (CH-8).
    ///
    /// # Errors
    /// [`ChannelError::TimedOut`] once `now_ms` is past the deadline of an unfinished
    /// handshake; [`ChannelError::Closed`] after any earlier failure.
    pub fn tick(&mut self, now_ms: u64) -> Result<(), ChannelError> {
        match self.phase {
            Phase::Failed => Err(ChannelError::Closed),
            Phase::Handshake(_) if now_ms > self.deadline_ms => {
                self.fail(ChannelError::TimedOut { timeout_ms: self.config.handshake_timeout_ms })
            }
            _ => Ok(()),
        }
    }

    /// Queues `message` for the peer: encrypted at once when the channel is open, else sent as
    /// soon as the handshake finishes.
    ///
    /// # Errors
    /// Over the size limit, too many queued, or the channel failed.
    pub fn send(&mut self, message: &[u8]) -> Result<(), ChannelError> {
        let max_bytes = self.config.message_size_max_bytes;
        if message.len() > max_bytes {
            return Err(ChannelError::MessageTooLarge { size_bytes: message.len(), max_bytes });
        }
        match self.phase {
            Phase::Failed => Err(ChannelError::Closed),
            Phase::Handshake(_) if self.pending.len() >= PENDING_MESSAGES_MAX => {
                Err(ChannelError::Backlog)
            }
            Phase::Handshake(_) => {
                self.pending.push_back(message.to_vec());
                Ok(())
            }
            Phase::Open(_) => self.encrypt(message),
        }
    }

    /// Feeds bytes from the peer: the events they complete, in order.
    ///
    /// # Errors
    /// The first failure (the channel is then failed, and the events of earlier records in
    /// `bytes` are discarded with it).
    pub fn receive(
        &mut self,
        bytes: &[u8],
        now_ms: u64,
    ) -> Result<Vec<ChannelEvent>, ChannelError> {
        self.tick(now_ms)?;
        self.inbox.extend_from_slice(bytes);
        let mut events = Vec::new();
        let mut used_total = 0;
        loop {
            let rest = self.inbox.get(used_total..).unwrap_or_default();
            let (body, used) = match record::split_record(rest) {
                Ok(Some((body, used))) => (body.to_vec(), used),
                Ok(None) => break,
                // Planted bug net:record-error-not-fatal: a malformed record prefix is refused
                // but the channel stays open (CH-7).
                Err(e) if crate::bugs::active("net:record-error-not-fatal") => return Err(e),
                Err(e) => return self.fail(e),
            };
            used_total += used;
            if let Err(e) = self.on_record(&body, &mut events) {
                return self.fail(e);
            }
        }
        self.inbox.drain(..used_total);
        debug_assert!(self.inbox.len() < record::RECORD_PREFIX_BYTES + RECORD_BODY_MAX_BYTES);
        Ok(events)
    }

    fn fail<T>(&mut self, e: ChannelError) -> Result<T, ChannelError> {
        self.phase = Phase::Failed;
        self.inbox = Vec::new();
        self.pending.clear();
        self.assembler = Assembler::default();
        Err(e)
    }

    fn on_record(
        &mut self,
        body: &[u8],
        events: &mut Vec<ChannelEvent>,
    ) -> Result<(), ChannelError> {
        match &mut self.phase {
            Phase::Failed => Err(ChannelError::Closed),
            Phase::Handshake(hs) => {
                let n = hs
                    .read_message(body, &mut self.scratch)
                    .map_err(|e| ChannelError::Handshake(e.to_string()))?;
                if n != 0 {
                    return Err(ChannelError::Handshake("non-empty handshake payload".into()));
                }
                if hs.is_my_turn() && !hs.is_handshake_finished() {
                    self.write_handshake()?;
                }
                self.finish_handshake(events)
            }
            Phase::Open(ts) => {
                if body.len() < TAG_BYTES + record::FLAG_BYTES {
                    return Err(ChannelError::Malformed("transport record shorter than its tag"));
                }
                let n = match ts.read_message(body, &mut self.scratch) {
                    Ok(n) => n,
                    Err(_) if crate::bugs::active("gossip:accept-unauthenticated") => {
                        // Planted bug: the record is taken as plaintext, its tag unchecked.
                        let n = body.len() - TAG_BYTES;
                        self.scratch[..n].copy_from_slice(&body[..n]);
                        n
                    }
                    // CH-5: a tag that does not verify (tampering, forgery, or a nonce that is not
                    // the next one: replay, reordering, a dropped record) ends the channel.
                    Err(_) => return Err(ChannelError::Authentication),
                };
                let (last, chunk) = parse_chunk(self.scratch.get(..n).unwrap_or_default())?;
                if let Some(m) =
                    self.assembler.push(last, chunk, self.config.message_size_max_bytes)?
                {
                    events.push(ChannelEvent::Message(m));
                }
                Ok(())
            }
        }
    }

    /// Writes our next handshake message into the outbox.
    fn write_handshake(&mut self) -> Result<(), ChannelError> {
        let Phase::Handshake(hs) = &mut self.phase else { return Ok(()) };
        let n = hs.write_message(&[], &mut self.scratch).map_err(setup)?;
        record::put_record(&mut self.outbox, self.scratch.get(..n).unwrap_or_default())
    }

    /// Moves to transport mode once the handshake has finished (CH-3), then sends what was
    /// queued.
    fn finish_handshake(&mut self, events: &mut Vec<ChannelEvent>) -> Result<(), ChannelError> {
        let finished = matches!(&self.phase, Phase::Handshake(hs) if hs.is_handshake_finished());
        if !finished {
            return Ok(());
        }
        let Phase::Handshake(hs) = std::mem::replace(&mut self.phase, Phase::Failed) else {
            return Ok(());
        };
        let peer: [u8; KEY_BYTES] = hs
            .get_remote_static()
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| ChannelError::Handshake("no peer static key".into()))?;
        let ts = hs.into_transport_mode().map_err(setup)?;
        self.phase = Phase::Open(Box::new(ts));
        self.peer_static = Some(peer);
        events.push(ChannelEvent::Established { peer_static: peer });
        while let Some(m) = self.pending.pop_front() {
            self.encrypt(&m)?;
        }
        Ok(())
    }

    /// Encrypts one message as records into the outbox.
    fn encrypt(&mut self, message: &[u8]) -> Result<(), ChannelError> {
        let Phase::Open(ts) = &mut self.phase else { return Err(ChannelError::Closed) };
        for plain in chunk_plaintexts(message) {
            let n = ts.write_message(&plain, &mut self.scratch).map_err(setup)?;
            debug_assert_eq!(n, plain.len() + TAG_BYTES);
            record::put_record(&mut self.outbox, self.scratch.get(..n).unwrap_or_default())?;
        }
        Ok(())
    }
}

/// A snow builder with our suite, keys, PSK, prologue and randomness.
fn builder<'a>(
    keys: &'a StaticKeys,
    psk: &'a ChannelPsk,
    entropy: Arc<dyn Entropy>,
) -> Result<snow::Builder<'a>, ChannelError> {
    snow::Builder::with_resolver(params()?, Box::new(EntropyResolver::new(entropy)))
        .local_private_key(keys.private())
        .and_then(|b| b.psk(0, psk.as_bytes()))
        .and_then(|b| b.prologue(PROLOGUE))
        .map_err(setup)
}
