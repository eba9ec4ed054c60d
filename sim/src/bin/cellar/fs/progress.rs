//! Progress bars for long commits, checkouts and scrubs: on stderr, and only when stderr is a
//! terminal (otherwise hidden, so scripts and tests see clean output).

use cellar::fs::host::HostProgress;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;

fn bar(len: Option<u64>, template: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let b = match len {
        Some(n) => ProgressBar::new(n),
        None => ProgressBar::new_spinner(),
    };
    let style =
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar());
    b.set_style(style);
    b.enable_steady_tick(std::time::Duration::from_millis(200));
    b
}

/// Bytes of a commit (total unknown) or a checkout (total sent first).
pub(super) struct Bytes(ProgressBar);

impl Bytes {
    pub(super) fn new(what: &'static str) -> Self {
        let b = bar(None, "{spinner} {msg} {bytes} ({bytes_per_sec}) {elapsed}");
        b.set_message(what);
        Self(b)
    }

    pub(super) fn update(&self, p: HostProgress) {
        match p {
            HostProgress::Total(n) => {
                self.0.set_length(n);
                if let Ok(s) = ProgressStyle::with_template(
                    "{msg} [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
                ) {
                    self.0.set_style(s.progress_chars("=> "));
                }
            }
            HostProgress::Bytes(n) => self.0.inc(n),
        }
    }
}

impl Drop for Bytes {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}

/// A count of blobs verified (scrub).
pub(super) struct Count(pub(super) ProgressBar);

impl Count {
    pub(super) fn new(what: &'static str) -> Self {
        let b = bar(None, "{spinner} {msg} {pos} blobs ({per_sec}) {elapsed}");
        b.set_message(what);
        Self(b)
    }
}

impl Drop for Count {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}
