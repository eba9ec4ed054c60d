//! Per-connection limits of the sector server as plain decisions (PROTO-13): how many reply
//! bytes may wait for a client that does not read, when a silent connection is idle, and when a
//! frame that started arriving has taken too long. No clock, no socket: the server shell
//! (`server.rs`, `conn.rs`) feeds in byte counts and `now_ms` from a [`crate::env::Clock`], and
//! acts on the answer, so every rule is tested here with plain numbers.

/// Default most reply bytes queued for one connection (PROTO-13). A reply is always accepted
/// into an empty queue, so one reply of any size (up to a whole frame) can always be sent.
pub const REPLY_BYTES_BUFFERED_MAX_DEFAULT: usize = 8 * 1024 * 1024;
/// Default time a connection with nothing in flight may send nothing before it is closed.
pub const IDLE_TIMEOUT_MS_DEFAULT: u64 = 60_000;
/// Default time a frame may take to arrive, from its first byte read to its last.
pub const FRAME_TIMEOUT_MS_DEFAULT: u64 = 10_000;

/// The limits of one connection (PROTO-13). Defaults: [`REPLY_BYTES_BUFFERED_MAX_DEFAULT`],
/// [`IDLE_TIMEOUT_MS_DEFAULT`], [`FRAME_TIMEOUT_MS_DEFAULT`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnLimits {
    /// Most reply bytes queued for the client; one more closes the connection.
    pub reply_bytes_buffered_max: usize,
    /// Silence after which a connection with nothing in flight is closed.
    pub idle_timeout_ms: u64,
    /// Most time between reading a frame's first byte and its last.
    pub frame_timeout_ms: u64,
}

impl Default for ConnLimits {
    fn default() -> Self {
        Self {
            reply_bytes_buffered_max: REPLY_BYTES_BUFFERED_MAX_DEFAULT,
            idle_timeout_ms: IDLE_TIMEOUT_MS_DEFAULT,
            frame_timeout_ms: FRAME_TIMEOUT_MS_DEFAULT,
        }
    }
}

/// Planted bugs of this file, captured on the thread that binds the server (planted bugs are
/// per thread and connections run on their own).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct LimitBugs {
    /// `sector_proto:unbounded-reply-buffer`: replies are queued whatever the total.
    pub unbounded_replies: bool,
    /// `sector_proto:no-idle-timeout`: idle connections stay open.
    pub no_idle_timeout: bool,
    /// `sector_proto:no-frame-timeout`: a frame may take forever.
    pub no_frame_timeout: bool,
}

impl LimitBugs {
    /// The planted bugs active on the calling thread.
    pub(crate) fn capture() -> Self {
        Self {
            unbounded_replies: crate::bugs::active("sector_proto:unbounded-reply-buffer"),
            no_idle_timeout: crate::bugs::active("sector_proto:no-idle-timeout"),
            no_frame_timeout: crate::bugs::active("sector_proto:no-frame-timeout"),
        }
    }
}

/// Why a connection is closed by a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitClose {
    /// More reply bytes than `reply_bytes_buffered_max` would wait for the client.
    RepliesUnread,
    /// Nothing in flight and nothing received for `idle_timeout_ms`.
    Idle,
    /// A frame started arriving more than `frame_timeout_ms` ago and is not complete.
    SlowFrame,
}

/// May a reply of `reply_bytes` join a queue already holding `queued_bytes`? A reply is
/// always accepted into an empty queue (PROTO-13).
pub(crate) fn reply_fits(
    limits: &ConnLimits,
    bugs: LimitBugs,
    queued: usize,
    reply: usize,
) -> bool {
    bugs.unbounded_replies
        || queued == 0
        || queued.saturating_add(reply) <= limits.reply_bytes_buffered_max
}

/// What the reading side of one connection knows about its activity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Activity {
    /// When a byte was last received or a reply last finished being sent (ms).
    pub last_ms: u64,
    /// When the first byte of the frame now arriving was read, if one is partly read.
    pub frame_started_ms: Option<u64>,
}

impl Activity {
    /// A connection that has just been accepted at `now_ms`.
    pub(crate) fn new(now_ms: u64) -> Self {
        Self { last_ms: now_ms, frame_started_ms: None }
    }

    /// Should the connection be closed at `now_ms`? `busy`: requests are in flight or replies
    /// wait to be written (the connection is then not idle; its writes have their own limits).
    pub(crate) fn verdict(
        &self,
        limits: &ConnLimits,
        bugs: LimitBugs,
        now_ms: u64,
        busy: bool,
    ) -> Option<LimitClose> {
        if let Some(started) = self.frame_started_ms {
            let late = now_ms.saturating_sub(started) >= limits.frame_timeout_ms;
            return (late && !bugs.no_frame_timeout).then_some(LimitClose::SlowFrame);
        }
        let idle = !busy && now_ms.saturating_sub(self.last_ms) >= limits.idle_timeout_ms;
        (idle && !bugs.no_idle_timeout).then_some(LimitClose::Idle)
    }
}

/// How often a reader with nothing to read checks its limits: a quarter of the shorter
/// timeout, between 5 ms and 1 s, so a limit fires at most a quarter late.
pub(crate) fn poll_interval_ms(limits: &ConnLimits) -> u64 {
    (limits.idle_timeout_ms.min(limits.frame_timeout_ms) / 4).clamp(5, 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: ConnLimits =
        ConnLimits { reply_bytes_buffered_max: 100, idle_timeout_ms: 1000, frame_timeout_ms: 50 };
    const NONE: LimitBugs =
        LimitBugs { unbounded_replies: false, no_idle_timeout: false, no_frame_timeout: false };

    #[test]
    fn replies_fit_up_to_the_cap_and_one_always_fits() {
        assert!(reply_fits(&L, NONE, 0, 10_000), "an empty queue takes any reply");
        assert!(reply_fits(&L, NONE, 60, 40));
        assert!(!reply_fits(&L, NONE, 60, 41));
        let bug = LimitBugs { unbounded_replies: true, ..NONE };
        assert!(reply_fits(&L, bug, 60, 41));
    }

    #[test]
    fn idle_only_when_nothing_is_in_flight() {
        let a = Activity::new(0);
        assert_eq!(a.verdict(&L, NONE, 999, false), None);
        assert_eq!(a.verdict(&L, NONE, 1000, false), Some(LimitClose::Idle));
        assert_eq!(a.verdict(&L, NONE, 5000, true), None, "busy is not idle");
        let bug = LimitBugs { no_idle_timeout: true, ..NONE };
        assert_eq!(a.verdict(&L, bug, 5000, false), None);
    }

    #[test]
    fn a_partial_frame_has_its_own_shorter_clock() {
        let a = Activity { last_ms: 100, frame_started_ms: Some(100) };
        assert_eq!(a.verdict(&L, NONE, 149, true), None);
        assert_eq!(a.verdict(&L, NONE, 150, true), Some(LimitClose::SlowFrame));
        assert_eq!(a.verdict(&L, NONE, 150, false), Some(LimitClose::SlowFrame));
        let bug = LimitBugs { no_frame_timeout: true, ..NONE };
        assert_eq!(a.verdict(&L, bug, 5000, false), None);
    }

    #[test]
    fn poll_interval_is_bounded() {
        assert_eq!(poll_interval_ms(&L), 12);
        assert_eq!(poll_interval_ms(&ConnLimits::default()), 1000);
        let tiny = ConnLimits { frame_timeout_ms: 1, ..L };
        assert_eq!(poll_interval_ms(&tiny), 5);
    }
}
