//! Planted bugs: named, deliberately wrong behaviours that the tests, models and simulator must
//! catch ("every checker must be seen to fail").
//!
//! With the `planted-bugs` cargo feature off (the default, and every release artifact) [`active`]
//! is a constant `false` and the optimiser removes every planted branch. With it on, a bug is
//! switched on for the current thread only, so tests running in parallel cannot disturb each
//! other and a simulation run stays deterministic.

/// Every bug name this crate knows. Planting an unknown name is refused.
pub const ALL: &[&str] = &[
    "volume:no-mode-exclusion",
    "volume:cleanup-holds-late",
    "store:dir-skip-verify",
    "store:deferred-named-early",
    "store:dir-entry-unsynced",
    "refs:skip-cid-check",
    "refs:skip-tag-check",
    "cell:file-skip-crc",
    "cell:file-cas-unlocked",
    "cell:file-temp-unsynced",
    "cell:sealed-ignore-version",
    "cell:sealed-cas-reread",
    "cell:sealed-ignore-rollback",
    "sector:ack-before-flush",
    "sector:skip-crc-on-read",
    "sector:compactor-resurrects",
    "sector:cas-not-atomic",
    "sector:no-reserve",
    "sector:ignore-record-address",
    "sector:drain-ignores-live-count",
    "sector:header-crc-unchecked",
    "sector:superblock-needs-both-copies",
    "sector:damaged-zone-header-fails-open",
    "sector:value-limit-off-by-one",
    "sector:no-flush-mark",
    "sector:no-header-repair",
    "sector:no-seal-at-cut",
    "sector:blank-header-is-fresh",
    "sector:checkpoint-trusted-blindly",
    "gossip:lww-by-arrival-order",
    "gossip:store-unwanted-blob",
    "gossip:accept-unauthenticated",
    "net:no-idle-timeout",
    "net:no-message-deadline",
    "kv:no-run-extension",
    "kv:cache-by-cid",
    "kv:successor-stays-in-parent",
    "kv:node-order-unchecked",
    "fs:backref-value-unchecked",
    "hkv:value-limit-off-by-one",
    "sector_proto:accept-trailing-bytes",
    "sector_proto:close-on-malformed",
    "sector_proto:ack-before-group-flush",
    "sector_proto:unbounded-reply-buffer",
    "sector_proto:no-idle-timeout",
    "sector_proto:no-frame-timeout",
    "fs:extent-keyed-by-start",
    "fs:rename-leaves-old-subtree",
    "fs:reuse-ignores-size",
    "fs:blob-size-unchecked",
    "fs:refs-in-arrival-order",
    "fs:unlink-drops-inode",
    "marks:rename-keeps-old",
    "refs:text-accepts-upper-case",
    "sector_proto:accept-reserved-id",
    "sector_proto:assembler-drops-split-prefix",
    "gossip:decode-skips-counts",
    "net:record-error-not-fatal",
    "marks:gc-skips-marks",
    "pg:no-fence",
    "adapters:orphan-dropped-at-commit",
    "adapters:write-buffer-skips-flush",
    "adapters:no-refresh",
    "adapters:keep-cache-always",
];

#[cfg(feature = "planted-bugs")]
mod imp {
    use std::cell::RefCell;

    thread_local! {
        static ACTIVE: RefCell<Vec<&'static str>> = const { RefCell::new(Vec::new()) };
    }

    pub fn active(name: &str) -> bool {
        ACTIVE.with(|a| a.borrow().contains(&name))
    }

    pub fn plant(name: &str) -> Result<super::Planted, super::UnknownBug> {
        let known = super::ALL
            .iter()
            .find(|n| **n == name)
            .ok_or_else(|| super::UnknownBug(name.to_owned()))?;
        ACTIVE.with(|a| a.borrow_mut().push(known));
        Ok(super::Planted { name: known })
    }

    pub fn unplant(name: &str) {
        ACTIVE.with(|a| a.borrow_mut().retain(|n| *n != name));
    }
}

/// Is the planted bug `name` switched on for this thread? Always `false` without the
/// `planted-bugs` feature.
#[inline(always)]
pub fn active(name: &str) -> bool {
    #[cfg(feature = "planted-bugs")]
    {
        imp::active(name)
    }
    #[cfg(not(feature = "planted-bugs"))]
    {
        let _ = name;
        false
    }
}

/// The bug name was not one of [`ALL`].
#[derive(Debug, thiserror::Error)]
#[error("unknown planted bug {0:?}")]
pub struct UnknownBug(pub String);

/// Keeps a planted bug switched on for this thread until dropped.
#[derive(Debug)]
pub struct Planted {
    #[cfg_attr(not(feature = "planted-bugs"), allow(dead_code))]
    name: &'static str,
}

/// Switches the bug `name` on for this thread until the returned guard is dropped.
///
/// Without the `planted-bugs` feature every name is refused, so a release build can never be
/// talked into a planted bug.
pub fn plant(name: &str) -> Result<Planted, UnknownBug> {
    #[cfg(feature = "planted-bugs")]
    {
        imp::plant(name)
    }
    #[cfg(not(feature = "planted-bugs"))]
    {
        Err(UnknownBug(name.to_owned()))
    }
}

impl Drop for Planted {
    fn drop(&mut self) {
        #[cfg(feature = "planted-bugs")]
        imp::unplant(self.name);
    }
}
