//! Why a channel refused bytes or failed. A failed channel stays failed (CH-7): every later call
//! returns [`ChannelError::Closed`] and it never delivers another message.

/// A channel failure. Every variant ends the channel.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChannelError {
    /// A handshake message failed: wrong group key (PSK), wrong prologue or version, a damaged,
    /// replayed or out-of-turn message (CH-3).
    #[error("handshake failed: {0}")]
    Handshake(String),
    /// A transport record failed authentication: tampered, forged, replayed, reordered or
    /// truncated (its nonce is not the next one, so its tag does not verify) (CH-5).
    #[error("record failed authentication")]
    Authentication,
    /// A record of length 0, or a transport record shorter than its tag (CH-2).
    #[error("malformed record: {0}")]
    Malformed(&'static str),
    /// A message over the channel's size limit, sent or being received (CH-6).
    #[error("message of {size_bytes} bytes or more is over the limit of {max_bytes} bytes")]
    MessageTooLarge {
        /// The size reached (or asked for).
        size_bytes: usize,
        /// The limit.
        max_bytes: usize,
    },
    /// The handshake did not finish before its deadline (CH-8).
    #[error("handshake not finished within {timeout_ms} ms")]
    TimedOut {
        /// The configured handshake timeout.
        timeout_ms: u64,
    },
    /// More messages queued before the handshake finished than the channel holds.
    #[error("too many messages queued before the handshake finished")]
    Backlog,
    /// The channel failed earlier (the first error was returned then).
    #[error("channel closed after an earlier failure")]
    Closed,
    /// The Noise library refused to set up (a bug or a bad key, never peer input).
    #[error("channel setup: {0}")]
    Setup(String),
}
