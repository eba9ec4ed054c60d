//! The sector suite (`specs/conform.md`, CONF-6): a foreign sector server judged over its Unix
//! socket (`specs/sector-protocol.md`), by protocol probes and, when the harness may restart it,
//! a crash-durability workload.
//!
//! Probes (each a named case of the report):
//! - `PROTO-1/2 round trip`: write, read, compare, delete, stat; ids echoed.
//! - `PROTO-3 oversized frame`: two reads, then a length prefix over 16 MiB: both reads are
//!   answered, then `Error(FrameTooLarge)` with id `2^64 − 1`, then the connection closes.
//! - `PROTO-4 malformed bodies`: unknown variants, a short message, trailing bytes, a bool byte
//!   of 2, an empty body, an id that does not decode, the reserved id — each answered with
//!   `Error(MalformedFrame)` carrying the id when it decoded, and the connection stays usable
//!   (a read after each is answered); rule violations (`last < first`, an empty CAS, a value
//!   over 8 MiB) get `Error(InvalidRequest)` with their id.
//! - `PROTO-5/8 leaving mid-frame`: clients that leave inside a frame, or right after sending a
//!   flushed write, do not disturb the server.
//! - `PROTO-6/7 pipelining`: several connections at once, each with 256 requests in flight;
//!   every id answered exactly once with the reply that belongs to it, in whatever order.
//! - `PROTO-7 out-of-order replies`: flushed 512 KiB writes with small reads behind them;
//!   replies are matched by id (the report says how many came back out of order).
//!
//! Crash durability (`--restart CMD`, one case per seed): several connections run seeded,
//! pipelined writes, deletes, two-key CASes, reads and flushes on keys of their own; the
//! harness SIGKILLs the server at a seeded instant, restarts it with CMD and reads every key.
//! Judged per key: the value is the last *durable* write's (acknowledged with `flush`, or
//! acknowledged before a `Flush` that was answered was sent; PROTO-8, SEC-2) or a later write's,
//! whole (SEC-7), never anything else; the two keys of a CAS pair always agree (SEC-8); a read
//! on the live server returns the newest acknowledged value (SEC-6). The run ends with
//! `PROTO-10 shutdown`: acknowledged (unflushed) writes, SIGTERM, the socket file removed, and
//! after a restart every acknowledged write is there.
//!
//! A SIGKILL loses what the server process held in memory, not what it handed to the kernel:
//! this suite finds acknowledgements given before the data left the process, not missing
//! `fsync`s (power loss is the simulator's job, `specs/sector.md` SEC-2).

// The submodules share these through `use super::*`.
#[allow(unused_imports, reason = "used by the submodules")]
use crate::rng::SimRng;
#[allow(unused_imports, reason = "used by the submodules")]
use cellar::sector::proto::codec::{ReadFrame, decode_response_body, read_frame_body};
#[allow(unused_imports, reason = "used by the submodules")]
use cellar::sector::proto::{
    CasItem, CasReply, ErrorKind, Expected, FRAME_BODY_BYTES_MAX, KeyRange, REQUEST_ID_NONE,
    Request, RequestFrame, Response, ResponseFrame, VALUE_BYTES_MAX, WriteOptions,
    encode_request_frame,
};
#[allow(unused_imports, reason = "used by the submodules")]
use serde::Serialize;
#[allow(unused_imports, reason = "used by the submodules")]
use std::collections::{BTreeMap, BTreeSet, HashMap};
#[allow(unused_imports, reason = "used by the submodules")]
use std::io::Write;
#[allow(unused_imports, reason = "used by the submodules")]
use std::os::unix::net::UnixStream;
#[allow(unused_imports, reason = "used by the submodules")]
use std::os::unix::process::CommandExt;
#[allow(unused_imports, reason = "used by the submodules")]
use std::path::{Path, PathBuf};
#[allow(unused_imports, reason = "used by the submodules")]
use std::process::{Child, Command, Stdio};
#[allow(unused_imports, reason = "used by the submodules")]
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
#[allow(unused_imports, reason = "used by the submodules")]
use std::sync::{Arc, Mutex, PoisonError};
#[allow(unused_imports, reason = "used by the submodules")]
use std::time::{Duration, Instant};

/// How long a reply may take before the server counts as hung.
const REPLY_TIMEOUT_MS: u64 = 15_000;
/// How long a (re)started server may take to accept connections.
const START_TIMEOUT_MS: u64 = 20_000;
/// Keys the probes use: far from the workload's.
const PROBE_KEY_BASE: u64 = 1 << 62;
/// Single keys and CAS pairs per connection in the crash workload.
const SINGLE_KEYS: u64 = 12;
const PAIRS: u64 = 3;

/// How a run of the sector suite goes.
#[derive(Debug, Clone)]
pub struct SectorConfig {
    /// The server's socket.
    pub socket: PathBuf,
    /// The command that starts the server (in the foreground); without it only the probes run.
    pub restart: Option<String>,
    /// Connections of the crash workload.
    pub connections: usize,
    /// Crashes per seed.
    pub rounds: usize,
}

/// One judged case of a suite run (a probe, a seed, the shutdown check).
#[derive(Debug, Clone, Serialize)]
pub struct Case {
    /// What it is, e.g. `PROTO-4 malformed bodies` or `seed 3`.
    pub name: String,
    /// The seed, for workload cases.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// What it observed (counts, reorderings), for people.
    pub info: String,
    /// `None` if it passed, else why it failed.
    pub failure: Option<String>,
}

mod crash;
mod probes;
mod wire;

use crash::{crash_seed, shutdown_check};
pub use probes::probes;
use wire::ServerProc;

/// Runs the suite: probes, then (with `--restart`) the crash workload for every seed and the
/// shutdown check. Returns the cases in order.
pub fn run(cfg: &SectorConfig, seeds: &[u64]) -> Vec<Case> {
    let mut server = cfg.restart.as_ref().map(|cmd| ServerProc {
        cmd: cmd.clone(),
        socket: cfg.socket.clone(),
        log: std::env::temp_dir().join(format!("cellar-conform-sector-{}.log", std::process::id())),
        child: None,
    });
    if let Some(s) = server.as_mut()
        && let Err(e) = s.start()
    {
        return vec![Case {
            name: "start".into(),
            seed: None,
            info: String::new(),
            failure: Some(e),
        }];
    }
    let mut cases = probes(&cfg.socket);
    if let Some(s) = server.as_mut() {
        for seed in seeds {
            cases.push(crash_seed(cfg, s, *seed));
        }
        cases.push(shutdown_check(cfg, s));
        s.kill();
    }
    cases
}

/// The summary table of a run.
pub fn table(suite: &str, cases: &[Case]) -> String {
    let mut s = format!("{:<34} {:>7}  {}\n", "case", "result", "observed");
    for c in cases {
        let r = if c.failure.is_none() { "ok" } else { "FAILED" };
        s.push_str(&format!("{:<34} {r:>7}  {}\n", c.name, c.info));
    }
    let failed = cases.iter().filter(|c| c.failure.is_some()).count();
    s.push_str(&format!(
        "{suite}: {} cases, {} passed, {failed} failed\n",
        cases.len(),
        cases.len() - failed
    ));
    s
}
