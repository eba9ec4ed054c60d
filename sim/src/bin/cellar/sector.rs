//! `cellar sector ...`: format a device file, serve it on a Unix socket, verify it offline, and
//! the client commands scripts use (`put`, `get`, `delete`, `cas`, `flush`, `stat`).
//!
//! Protocol: `specs/sector-protocol.md` (PROTO-*); engine: `specs/sector.md`. Every failure is
//! one line on stderr naming the problem and a non-zero exit; nothing here panics on user input.

mod overlay;
mod size;

use cellar::sector::proto::backend::EngineBackend;
use cellar::sector::proto::server::{Backend, Server, ServerConfig, WORKERS_DEFAULT};
use cellar::sector::proto::{
    CasItem, CasReply, ClientError, Expected, SectorClient, VALUE_BYTES_MAX, WriteOptions,
};
use cellar::sector::{Engine, EngineConfig, FileDevice, SECTOR_SIZE_BYTES};
use cellar_sim::conform::sector_adapter::{SectorBug, WriteBack};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Subcommands of `cellar sector`.
#[derive(clap::Subcommand, Debug)]
pub enum SectorCommand {
    /// Create (or overwrite) a device file and format it.
    Format {
        /// The device file.
        #[arg(long)]
        path: PathBuf,
        /// Device size with a unit: 1GiB, 512MiB, 64M, 4096...
        #[arg(long)]
        size: String,
        /// Zone size (unit of allocation and compaction); caps the largest value.
        #[arg(long, default_value = "1MiB")]
        zone_size: String,
        /// Leave the file sparse instead of writing zeros through it first (quicker to format;
        /// each flush into fresh space then also commits file-system metadata).
        #[arg(long)]
        sparse: bool,
    },
    /// Serve a formatted device on a Unix socket until SIGTERM or SIGINT.
    Serve {
        /// The device file.
        #[arg(long)]
        path: PathBuf,
        /// The Unix socket to listen on.
        #[arg(long)]
        socket: PathBuf,
        /// Worker threads calling the engine.
        #[arg(long, default_value_t = WORKERS_DEFAULT)]
        workers: usize,
        /// Bypass the page cache (O_DIRECT).
        #[arg(long)]
        direct: bool,
        /// Also serve clients running as this uid (repeatable; the server's own uid always is).
        #[arg(long = "allow-uid")]
        allow_uids: Vec<u32>,
    },
    /// Scan the whole device and report every CRC failure; exits non-zero if there is any.
    Verify {
        /// The device file.
        #[arg(long)]
        path: PathBuf,
    },
    /// Write stdin as KEY's value; prints the new version.
    Put {
        /// The server's socket.
        #[arg(long)]
        socket: PathBuf,
        /// The key (unsigned 64-bit integer).
        key: u64,
        /// Make the write durable before it is acknowledged.
        #[arg(long)]
        flush: bool,
    },
    /// Print KEY's value (or, with --version, its version).
    Get {
        /// The server's socket.
        #[arg(long)]
        socket: PathBuf,
        /// The key.
        key: u64,
        /// Print the version instead of the value.
        #[arg(long)]
        version: bool,
    },
    /// Delete KEY.
    Delete {
        /// The server's socket.
        #[arg(long)]
        socket: PathBuf,
        /// The key.
        key: u64,
        /// Make the delete durable before it is acknowledged.
        #[arg(long)]
        flush: bool,
    },
    /// Replace KEY's value with stdin if KEY is at EXPECTED_VERSION ("absent": if it does not
    /// exist); prints the new version.
    Cas {
        /// The server's socket.
        #[arg(long)]
        socket: PathBuf,
        /// The key.
        key: u64,
        /// The version KEY must be at, or "absent".
        expected_version: String,
        /// Make the swap durable before it is acknowledged.
        #[arg(long)]
        flush: bool,
    },
    /// Make everything acknowledged so far durable.
    Flush {
        /// The server's socket.
        #[arg(long)]
        socket: PathBuf,
    },
    /// Print keys, live bytes and the dead share of every zone in use.
    Stat {
        /// The server's socket.
        #[arg(long)]
        socket: PathBuf,
    },
}

/// A failed command: the one line to print.
#[derive(Debug, thiserror::Error)]
enum CmdError {
    #[error("{0}")]
    Msg(String),
    #[error("{0}")]
    Client(#[from] ClientError),
    #[error("{0}")]
    Engine(#[from] cellar::sector::SectorError),
    #[error("{0}")]
    Size(#[from] size::SizeError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

fn msg(m: impl Into<String>) -> CmdError {
    CmdError::Msg(m.into())
}

/// Runs a `cellar sector` subcommand.
pub fn run(cmd: SectorCommand) -> ExitCode {
    let name = command_name(&cmd);
    match dispatch(cmd) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("cellar sector {name}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn command_name(cmd: &SectorCommand) -> &'static str {
    match cmd {
        SectorCommand::Format { .. } => "format",
        SectorCommand::Serve { .. } => "serve",
        SectorCommand::Verify { .. } => "verify",
        SectorCommand::Put { .. } => "put",
        SectorCommand::Get { .. } => "get",
        SectorCommand::Delete { .. } => "delete",
        SectorCommand::Cas { .. } => "cas",
        SectorCommand::Flush { .. } => "flush",
        SectorCommand::Stat { .. } => "stat",
    }
}

fn dispatch(cmd: SectorCommand) -> Result<ExitCode, CmdError> {
    match cmd {
        SectorCommand::Format { path, size, zone_size, sparse } => {
            format(&path, &size, &zone_size, sparse)
        }
        SectorCommand::Serve { path, socket, workers, direct, allow_uids } => {
            serve(&path, &socket, workers, direct, allow_uids)
        }
        SectorCommand::Verify { path } => verify(&path),
        SectorCommand::Put { socket, key, flush } => {
            let value = read_stdin()?;
            let options = WriteOptions { flush, ..WriteOptions::default() };
            let version = SectorClient::connect(&socket)?.write(key, value, options)?;
            println!("{version}");
            Ok(ExitCode::SUCCESS)
        }
        SectorCommand::Get { socket, key, version } => get(&socket, key, version),
        SectorCommand::Delete { socket, key, flush } => {
            if !SectorClient::connect(&socket)?.delete(key, None, flush)? {
                return Err(msg(format!("key {key} not found")));
            }
            Ok(ExitCode::SUCCESS)
        }
        SectorCommand::Cas { socket, key, expected_version, flush } => {
            cas(&socket, key, &expected_version, flush)
        }
        SectorCommand::Flush { socket } => {
            SectorClient::connect(&socket)?.flush()?;
            Ok(ExitCode::SUCCESS)
        }
        SectorCommand::Stat { socket } => stat(&socket),
    }
}

fn format(path: &Path, size: &str, zone_size: &str, sparse: bool) -> Result<ExitCode, CmdError> {
    let size_bytes = size::parse_size(size)?;
    let zone_bytes = size::parse_size(zone_size)?;
    let sector = SECTOR_SIZE_BYTES as u64;
    if size_bytes % sector != 0 || size_bytes == 0 {
        return Err(msg(format!("size {size_bytes} is not a positive multiple of {sector} bytes")));
    }
    let zone_ok = zone_bytes % sector == 0
        && zone_bytes >= cellar::sector::ZONE_SIZE_BYTES_MIN as u64
        && zone_bytes <= size_bytes;
    let zone = usize::try_from(zone_bytes).ok().filter(|_| zone_ok).ok_or_else(|| {
        msg(format!(
            "zone size {zone_bytes} must be a multiple of {sector}, at least {} and at most the \
             device size",
            cellar::sector::ZONE_SIZE_BYTES_MIN
        ))
    })?;
    let create = if sparse { FileDevice::create_sparse } else { FileDevice::create };
    let dev = create(path, size_bytes / sector).map_err(cellar::sector::SectorError::from)?;
    let engine = Engine::format(dev, EngineConfig::default().zone_size_bytes(zone))?;
    let zones = engine.stat().free_zones;
    let kind = if sparse { "sparse" } else { "preallocated" };
    println!(
        "formatted {}: {size_bytes} bytes ({kind}), {zones} zones of {zone_bytes} bytes",
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn serve(
    path: &Path,
    socket: &Path,
    workers: usize,
    direct: bool,
    mut allow_uids: Vec<u32>,
) -> Result<ExitCode, CmdError> {
    if workers == 0 {
        return Err(msg("--workers must be at least 1"));
    }
    let backend = open_backend(path, direct)?;
    allow_uids.push(cellar::sector::proto::access::own_uid());
    run_server(socket, backend, ServerConfig::default().workers(workers), allow_uids, path)
}

fn open_backend(
    path: &Path,
    direct: bool,
) -> Result<EngineBackend<Box<dyn cellar::sector::BlockDevice>>, CmdError> {
    let dev = cellar::sector::device::open_best(path, direct)
        .map_err(|e| msg(format!("{}: {e}", path.display())))?;
    let engine = Engine::open(dev, EngineConfig::default())
        .map_err(|e| msg(format!("{}: {e}", path.display())))?;
    report_recovery(engine.recovery_report());
    Ok(EngineBackend::new(engine))
}

/// `cellar conform sector-adapter`: `serve` with the defaults, optionally behind a planted bug.
pub fn serve_with(path: &Path, socket: &Path, bug: Option<SectorBug>) -> Result<ExitCode, String> {
    let run = || -> Result<ExitCode, CmdError> {
        let backend = open_backend(path, false)?;
        let uids = vec![cellar::sector::proto::access::own_uid()];
        let config = ServerConfig::default();
        match bug {
            None => run_server(socket, backend, config, uids, path),
            Some(SectorBug::FlushedWriteLostOnCrash) => {
                run_server(socket, WriteBack::new(backend), config, uids, path)
            }
        }
    };
    run().map_err(|e| e.to_string())
}

fn run_server<B: Backend>(
    socket: &Path,
    backend: B,
    config: ServerConfig,
    allow_uids: Vec<u32>,
    path: &Path,
) -> Result<ExitCode, CmdError> {
    let server = Server::bind(socket, backend, config)
        .map_err(|e| msg(e.to_string()))?
        .allow_uids(allow_uids); // PROTO-12
    // signal-hook: the well-kept way to turn SIGTERM into an ordinary event on a thread of our
    // own (a raw handler may not lock or connect a socket; this thread may).
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
    ])?;
    let handle = server.shutdown_handle();
    let signal_handle = signals.handle();
    let watcher = std::thread::spawn(move || {
        if signals.forever().next().is_some() {
            handle.shutdown();
        }
    });
    println!("serving {} on {}", path.display(), socket.display());
    std::io::stdout().flush()?;
    let result = server.run();
    signal_handle.close();
    let _ = watcher.join();
    let report = result.map_err(|e| msg(e.to_string()))?;
    eprintln!(
        "cellar sector serve: stopped after {} connections, {} replies; flushed; {}",
        report.connections,
        report.replies,
        report.shutdown.as_deref().unwrap_or("no checkpoint")
    );
    Ok(ExitCode::SUCCESS)
}

fn report_recovery(r: &cellar::sector::RecoveryReport) {
    for (zone, sector) in &r.torn_tails {
        eprintln!("recovery: zone {zone}: unflushed tail cut at sector {sector}");
    }
    for s in &r.corrupt_sectors {
        eprintln!("recovery: corrupt sector {s}");
    }
    for k in &r.corrupt_keys {
        eprintln!("recovery: key {k}: newest record corrupt; reads of it report an error");
    }
    for z in &r.corrupt_zone_headers {
        eprintln!("recovery: zone {z}: header corrupt, zone ignored");
    }
    if let Some(epoch) = r.checkpoint {
        eprintln!("recovery: loaded the clean-shutdown checkpoint {epoch} (no scan)");
    }
    if let Some(why) = &r.checkpoint_refused {
        eprintln!("recovery: checkpoint not used ({why}); scanned every zone in use");
    }
}

/// Opens the device through a discardable overlay (recovery's seal writes never reach the
/// file), then re-reads every live key. Every problem is one line; non-zero exit if any.
fn verify(path: &Path) -> Result<ExitCode, CmdError> {
    let dev = FileDevice::open(path, false).map_err(|e| msg(format!("{}: {e}", path.display())))?;
    // A verify scans every zone even after a clean shutdown: it reports what a scan finds.
    let cfg = EngineConfig::default().ignore_checkpoint();
    let mut engine = Engine::open(overlay::Overlay::new(dev), cfg)
        .map_err(|e| msg(format!("{}: {e}", path.display())))?;
    let report = engine.recovery_report().clone();
    let mut problems: Vec<String> = Vec::new();
    problems.extend(report.corrupt_sectors.iter().map(|s| format!("sector {s}: CRC failure")));
    problems.extend(
        report.corrupt_zone_headers.iter().map(|z| format!("zone {z}: header CRC failure")),
    );
    let live_keys = engine.keys().len() as u64;
    let failures = engine.verify_all()?;
    let sound = live_keys.saturating_sub(failures.len() as u64);
    problems.extend(failures.iter().map(|(key, detail)| format!("key {key}: {detail}")));
    for (zone, sector) in &report.torn_tails {
        println!("note: zone {zone}: unflushed tail from sector {sector} (not an error)");
    }
    for p in &problems {
        println!("{p}");
    }
    println!("{}: {sound} keys verified, {} problems", path.display(), problems.len());
    Ok(if problems.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn read_stdin() -> Result<Vec<u8>, CmdError> {
    let mut value = Vec::new();
    std::io::stdin().take(u64::from(VALUE_BYTES_MAX) + 1).read_to_end(&mut value)?;
    if value.len() > VALUE_BYTES_MAX as usize {
        return Err(msg(format!("value on stdin exceeds {VALUE_BYTES_MAX} bytes")));
    }
    Ok(value)
}

fn get(socket: &Path, key: u64, version: bool) -> Result<ExitCode, CmdError> {
    let record = SectorClient::connect(socket)?
        .read(key)?
        .ok_or_else(|| msg(format!("key {key} not found")))?;
    let mut out = std::io::stdout().lock();
    if version {
        writeln!(out, "{}", record.version)?;
    } else {
        out.write_all(&record.value)?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn cas(socket: &Path, key: u64, expected: &str, flush: bool) -> Result<ExitCode, CmdError> {
    let expected = match expected {
        "absent" => Expected::Absent,
        v => Expected::Version(v.parse().map_err(|_| {
            msg(format!("expected version {v:?} is neither an unsigned integer nor \"absent\""))
        })?),
    };
    let value = read_stdin()?;
    let item = CasItem { key, expected, new_value: Some(value) };
    match SectorClient::connect(socket)?.cas(vec![item], flush)? {
        CasReply::Applied { versions } => {
            let v =
                versions.first().copied().flatten().ok_or_else(|| msg("no version returned"))?;
            println!("{v}");
            Ok(ExitCode::SUCCESS)
        }
        CasReply::Conflict { current, .. } => Err(msg(match current {
            Some(v) => format!("conflict: key {key} is at version {v}"),
            None => format!("conflict: key {key} does not exist"),
        })),
    }
}

fn stat(socket: &Path) -> Result<ExitCode, CmdError> {
    let s = SectorClient::connect(socket)?.stat()?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "keys {}", s.keys)?;
    writeln!(out, "live_bytes {}", s.live_bytes)?;
    writeln!(out, "corrupt_keys {}", s.corrupt_keys)?;
    writeln!(out, "index_bytes {}", s.index_bytes)?;
    writeln!(out, "free_zones {}", s.free_zones)?;
    for z in &s.zones {
        writeln!(
            out,
            "zone {} used_bytes {} records {} live_records {} dead {}%",
            z.zone, z.used_bytes, z.records, z.live_records, z.dead_percent
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
