//! What `cellar config check` prints: one line per store, cell, volume and share, after
//! reading each backend once (a store lists up to [`PROBE_LIST_HASHES_MAX`] hashes, a cell
//! reads its value, a sealed cell opens it).

use super::Registry;
use super::config::{CellSpec, ModeLockSpec, SectorTarget, StoreSpec};
use crate::storage::store::ALL_HASHES;

/// Most hashes a probe lists per store (more is printed as "N+").
pub const PROBE_LIST_HASHES_MAX: usize = 1000;

/// One line of a probe: what was found, or what failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeLine {
    /// False if reading the backend failed.
    pub ok: bool,
    /// The line.
    pub text: String,
}

fn line(ok: bool, text: String) -> ProbeLine {
    ProbeLine { ok, text }
}

fn sector(t: &SectorTarget) -> String {
    match t {
        SectorTarget::Device(d) => format!("sector device {} (in-process)", d.display()),
        SectorTarget::Socket(s) => format!("sector server {}", s.display()),
    }
}

fn describe_store(spec: &StoreSpec) -> String {
    match spec {
        StoreSpec::Mem { max_blob_size_bytes } => {
            format!("mem, blobs up to {max_blob_size_bytes} bytes")
        }
        StoreSpec::Dir { path, .. } => format!("dir {}", path.display()),
        StoreSpec::Sector(t) => sector(t),
        StoreSpec::Postgres { target, namespace, .. } => {
            format!("postgres {}, namespace {namespace:?}", redact(&target.url))
        }
    }
}

fn describe_cell(spec: &CellSpec) -> String {
    match spec {
        CellSpec::Mem { .. } => "mem".to_owned(),
        CellSpec::File { path, .. } => format!("file {}", path.display()),
        CellSpec::Sector { target, id } => format!("{}, cell id {id}", sector(target)),
        CellSpec::Postgres { target, name, .. } => {
            format!("postgres {}, row {name:?}", redact(&target.url))
        }
        CellSpec::Sealed { inner, secret_file } => {
            format!("sealed over cell {inner:?}, secret {}", secret_file.display())
        }
    }
}

/// The URL without its password.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}{}", &url[..s + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

pub(super) fn probe(r: &Registry) -> Vec<ProbeLine> {
    let mut out = Vec::new();
    for (name, e) in &r.config.stores {
        let what = describe_store(&e.spec);
        match r.stores.get(name).map(|s| s.list(ALL_HASHES, PROBE_LIST_HASHES_MAX + 1)) {
            Some(Ok(hs)) if hs.len() > PROBE_LIST_HASHES_MAX => {
                out.push(line(
                    true,
                    format!("store {name}: {what}: {PROBE_LIST_HASHES_MAX}+ blobs"),
                ));
            }
            Some(Ok(hs)) => {
                out.push(line(true, format!("store {name}: {what}: {} blobs", hs.len())))
            }
            Some(Err(err)) => out.push(line(false, format!("store {name}: {what}: {err}"))),
            None => out.push(line(false, format!("store {name}: {what}: not opened"))),
        }
    }
    for (name, e) in &r.config.cells {
        let what = describe_cell(&e.spec);
        match r.cells.get(name).map(|c| c.read()) {
            Some(Ok(v)) => {
                out.push(line(true, format!("cell {name}: {what}: value of {} bytes", v.len())))
            }
            Some(Err(err)) => out.push(line(false, format!("cell {name}: {what}: {err}"))),
            None => out.push(line(false, format!("cell {name}: {what}: not opened"))),
        }
    }
    for (name, e) in &r.config.volumes {
        let lock = match &e.spec.mode_lock {
            ModeLockSpec::Process => "in this process only".to_owned(),
            ModeLockSpec::Dir(p) => format!("flock files in {}", p.display()),
            ModeLockSpec::Postgres(t) => format!("postgres advisory locks at {}", redact(&t.url)),
        };
        let v = &e.spec;
        out.push(line(
            true,
            format!("volume {name}: cell {}, store {}, mode lock {lock}", v.cell, v.store),
        ));
    }
    for (name, e) in &r.config.shares {
        let s = &e.spec;
        let adapters: Vec<&str> = s.adapters.iter().map(|a| a.name()).collect();
        let rw = if s.read_only { "read-only" } else { "read-write" };
        out.push(line(
            true,
            format!(
                "share {name}: volume {}, mark {:?}, adapters {}, {rw}",
                s.volume,
                s.mark,
                adapters.join("+")
            ),
        ));
    }
    out
}
