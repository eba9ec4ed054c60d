//! The harness of `pg_two_servers.rs`: a share on a PostgreSQL volume (`cellar.toml`), `cellar
//! serve` processes on loopback ports, Debian's libnfs-utils as their clients, VOL-1 checked
//! through the library, and a watcher that observes VOL-2 from outside through PostgreSQL's
//! own lock table.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    dead_code,
    reason = "a test reports failure by panicking; not every test uses every helper"
)]

use cellar::fs::FsSnapshotReachability;
use cellar::marks::SpaceReachability;
use cellar::registry::Registry;
use cellar::storage::volume::check_vol1;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The share every server exports, and how often a clean tree looks for other commits (ms).
pub const SHARE: &str = "home";
pub const REFRESH_MS: u64 = 100;

pub fn cellar() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cellar"))
}

/// `CELLAR_TEST_PG` when it is set and libnfs-utils' commands are installed; otherwise `None`
/// after a SKIPPED line naming what is missing — or, with `CI` set, a failure.
pub fn prerequisites(test: &str) -> Option<String> {
    let url = std::env::var("CELLAR_TEST_PG").ok().filter(|u| !u.is_empty());
    let nfs = ["nfs-cp", "nfs-ls", "nfs-cat"].iter().all(|t| {
        Command::new("sh")
            .args(["-c", &format!("command -v {t}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    let missing = match (&url, nfs) {
        (Some(url), true) => return Some(url.clone()),
        (None, _) => "CELLAR_TEST_PG is not set: start PostgreSQL (bash .ci/postgres.sh start)",
        (Some(_), false) => "libnfs-utils is not installed (apt-get install libnfs-utils)",
    };
    assert!(std::env::var_os("CI").is_none(), "CI is set but {missing}");
    let _ = writeln!(std::io::stderr(), "SKIPPED pg_two_servers::{test}: {missing}");
    None
}

/// A volume of its own in the test database: its name is also its lock's name (short: it is
/// part of the holders' `application_name`, at most 63 bytes).
pub struct Setup {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub volume: String,
    pub url: String,
}

pub fn setup(url: &str, tag: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() % 1_000_000_000_000);
    let volume = format!("{tag}{}x{nanos}", std::process::id());
    let text = format!(
        "[stores.pg]\nkind = \"postgres\"\nurl = \"{url}\"\nnamespace = \"{volume}\"\n\n\
         [cells.pg]\nkind = \"postgres\"\nurl = \"{url}\"\nname = \"{volume}\"\n\n\
         [volumes.{volume}]\ncell = \"pg\"\nstore = \"pg\"\n\n\
         [shares.{SHARE}]\nvolume = \"{volume}\"\nadapters = [\"nfs\"]\nrefresh_ms = {REFRESH_MS}\n"
    );
    let config = dir.path().join("cellar.toml");
    std::fs::write(&config, text).unwrap();
    Setup { dir, config, volume, url: url.to_owned() }
}

/// One `cellar serve` process; killed when dropped.
pub struct Server {
    pub name: &'static str,
    pub port: u16,
    child: Child,
    err: PathBuf,
}

impl Server {
    /// Starts `cellar serve` on a free loopback port (`bug`: a planted bug to switch on).
    pub fn start(s: &Setup, name: &'static str, bug: Option<&str>) -> Self {
        let err = s.dir.path().join(format!("{name}.err"));
        let mut cmd = cellar();
        cmd.args(["serve", "--config"]).arg(&s.config).args(["--listen", "127.0.0.1:0"]);
        cmd.arg("--spill-dir").arg(s.dir.path().join(format!("spill-{name}")));
        if let Some(b) = bug {
            cmd.args(["--bug", b]);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let port = line
            .rsplit_once("127.0.0.1:")
            .and_then(|(_, p)| p.trim().parse().ok())
            .unwrap_or_else(|| {
                panic!("server {name} did not listen: {line:?} {}", read(&err));
            });
        Server { name, port, child, err }
    }

    pub fn url(&self, path: &str) -> String {
        let p = self.port;
        format!("nfs://127.0.0.1/{SHARE}/{path}?version=3&nfsport={p}&mountport={p}")
    }

    /// The server's stderr so far (commits, merges, conflicts).
    pub fn log(&self) -> String {
        read(&self.err)
    }

    /// Writes `bytes` to `/name` through this server with `nfs-cp`.
    pub fn put(&self, tmp: &Path, name: &str, bytes: &[u8]) {
        if let Err(e) = self.try_put(tmp, name, bytes) {
            panic!("{e}\nserver {} log:\n{}", self.name, self.log());
        }
    }

    /// [`Server::put`], failing with `nfs-cp`'s message.
    pub fn try_put(&self, tmp: &Path, name: &str, bytes: &[u8]) -> Result<(), String> {
        let local = tmp.join(format!("{}-{name}", self.name));
        std::fs::write(&local, bytes).unwrap();
        let url = self.url(&format!("/{name}"));
        let out = Command::new("nfs-cp").arg(&local).arg(&url).output().unwrap();
        if out.status.success() {
            return Ok(());
        }
        Err(format!("nfs-cp to {url}: {}", String::from_utf8_lossy(&out.stderr)))
    }

    /// The root's entries (`nfs-ls`): name → contents (`nfs-cat`) of each regular file.
    pub fn files(&self) -> Result<BTreeMap<String, Vec<u8>>, String> {
        let out = Command::new("nfs-ls").arg(self.url("/")).output().unwrap();
        if !out.status.success() {
            return Err(format!("nfs-ls: {}", String::from_utf8_lossy(&out.stderr)));
        }
        let mut files = BTreeMap::new();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let Some(name) = line.split_whitespace().last() else { continue };
            if !line.starts_with('-') || name == "." || name == ".." {
                continue;
            }
            let c = Command::new("nfs-cat").arg(self.url(&format!("/{name}"))).output().unwrap();
            if !c.status.success() {
                return Err(format!("nfs-cat {name}: {}", String::from_utf8_lossy(&c.stderr)));
            }
            files.insert(name.to_owned(), c.stdout);
        }
        Ok(files)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

pub fn ok(cmd: &mut Command, what: &str) -> Output {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{what}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

/// Waits until every server lists the same files with the same contents and `expected` (name
/// → contents) is among them; returns how long that took, or what still differed.
pub fn converge(
    servers: &[&Server],
    expected: &BTreeMap<String, Vec<u8>>,
    deadline: Duration,
) -> Result<Duration, String> {
    let t0 = Instant::now();
    loop {
        let views: Result<Vec<_>, String> = servers.iter().map(|s| s.files()).collect();
        let why = match views {
            Err(e) => e,
            Ok(v) => match differs(servers, &v, expected) {
                None => return Ok(t0.elapsed()),
                Some(why) => why,
            },
        };
        if t0.elapsed() > deadline {
            return Err(why);
        }
        std::thread::sleep(Duration::from_millis(REFRESH_MS / 2));
    }
}

fn differs(
    servers: &[&Server],
    views: &[BTreeMap<String, Vec<u8>>],
    expected: &BTreeMap<String, Vec<u8>>,
) -> Option<String> {
    for (s, v) in servers.iter().zip(views) {
        for (name, bytes) in expected {
            match v.get(name) {
                None => return Some(format!("server {} does not list {name}", s.name)),
                Some(b) if b != bytes => {
                    return Some(format!("server {}: {name} has other contents", s.name));
                }
                Some(_) => {}
            }
        }
    }
    let first = views.first()?;
    for (s, v) in servers.iter().zip(views).skip(1) {
        if v != first {
            let names = |m: &BTreeMap<String, Vec<u8>>| m.keys().cloned().collect::<Vec<_>>();
            return Some(format!(
                "server {} lists {:?}, server {} lists {:?} (or contents differ)",
                servers[0].name,
                names(first),
                s.name,
                names(v)
            ));
        }
    }
    None
}

/// VOL-1 on the share's volume: every blob its space cell reaches (the map of marks and every
/// mark's history) is in its store. `Some(hash)` names a missing one.
pub fn vol1(reg: &Registry, volume: &str) -> Option<String> {
    let space = reg.space(volume).expect("the volume is open");
    let reach = SpaceReachability::new(FsSnapshotReachability);
    check_vol1(space.volume(), &reach).unwrap().map(|h| h.to_string())
}

/// Watches VOL-2 from outside: polls PostgreSQL for sessions that hold the volume's Expand and
/// Contract modes at once. A session is counted as a holder only if it carries the holder's
/// `application_name` (given once its begin succeeded, `PgModeLock::session_name`) in a first
/// read AND still holds a granted shared advisory lock in a second, later read of `pg_locks`:
/// it then held its mode during the whole interval between the two reads, so two holders of
/// different modes counted in one sample overlapped.
pub struct Watcher {
    stop: Arc<AtomicBool>,
    pub samples: Arc<AtomicU64>,
    pub expand_seen: Arc<AtomicU64>,
    pub contract_seen: Arc<AtomicU64>,
    pub overlaps: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watcher {
    pub fn start(url: &str, volume: &str) -> Self {
        let (e_name, c_name) =
            (format!("cellar expand {volume}"), format!("cellar contract {volume}"));
        let mut client = postgres::Client::connect(url, postgres::NoTls).unwrap();
        let w = Watcher {
            stop: Arc::default(),
            samples: Arc::default(),
            expand_seen: Arc::default(),
            contract_seen: Arc::default(),
            overlaps: Arc::default(),
            thread: None,
        };
        let (stop, samples, es, cs, ov) = (
            w.stop.clone(),
            w.samples.clone(),
            w.expand_seen.clone(),
            w.contract_seen.clone(),
            w.overlaps.clone(),
        );
        let thread = std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let named = |name: &str, c: &mut postgres::Client| -> Vec<i32> {
                    c.query(
                        "SELECT pid FROM pg_stat_activity WHERE application_name = $1",
                        &[&name],
                    )
                    .unwrap()
                    .iter()
                    .map(|r| r.get(0))
                    .collect()
                };
                let (e1, c1) = (named(&e_name, &mut client), named(&c_name, &mut client));
                let locked: Vec<i32> = client
                    .query(
                        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted \
                         AND mode = 'ShareLock'",
                        &[],
                    )
                    .unwrap()
                    .iter()
                    .map(|r| r.get(0))
                    .collect();
                let e = e1.iter().filter(|p| locked.contains(p)).count();
                let c = c1.iter().filter(|p| locked.contains(p)).count();
                samples.fetch_add(1, Ordering::SeqCst);
                if e > 0 {
                    es.fetch_add(1, Ordering::SeqCst);
                }
                if c > 0 {
                    cs.fetch_add(1, Ordering::SeqCst);
                }
                if e > 0 && c > 0 {
                    ov.fetch_add(1, Ordering::SeqCst);
                }
                // Holds last tens of ms; leave the server (and the machine's 2 cores) room.
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        Watcher { thread: Some(thread), ..w }
    }

    /// Stops polling; returns (samples, samples with an Expand holder, with a Contract holder,
    /// with both).
    pub fn stop(mut self) -> (u64, u64, u64, u64) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().expect("the watcher thread");
        }
        let g = |a: &AtomicU64| a.load(Ordering::SeqCst);
        (g(&self.samples), g(&self.expand_seen), g(&self.contract_seen), g(&self.overlaps))
    }
}
