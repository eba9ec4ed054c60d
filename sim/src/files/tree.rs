//! A writer's working tree (the "host directory" of the `fs` profile) and the comparison of a
//! committed tree with `FsSpec`.
//!
//! The working tree lives in memory (it stands for the user's files, not for the repository):
//! every random operation goes to both `cellar::fs` and `cellar_model::spec::fs::FsSpec`, and
//! they must accept or refuse it alike. What a commit publishes is judged later, read back from
//! the sector-engine repository, against the `FsSpec` recorded when it was made.

use crate::oracle::Violation;
use crate::rng::SimRng;
use cellar::fs::{Attrs, ChunkerParams, Fs, FsError, FsPath, Kind};
use cellar::storage::refs::Ref;
use cellar::storage::store::MemStore;
use cellar_model::spec::fs::{FsAttrs, FsNode, FsOp, FsSpec, SpecPath};

/// Chunker sizes of the profile: small, so a few hundred bytes make several extents and blobs.
pub const CHUNKS: ChunkerParams = ChunkerParams { min_bytes: 32, avg_bits: 7, max_bytes: 512 };
/// Names the writers use (three per level, three levels at most).
const NAMES: [&[u8]; 3] = [b"a", b"b", b"c"];
/// Largest single write.
const WRITE_BYTES_MAX: u64 = 700;

/// One mark's working tree: the implementation's and the spec's, always equal.
pub struct Workspace {
    store: MemStore,
    salt: [u8; 32],
    /// The implementation's root.
    pub root: Ref,
    /// The spec's tree.
    pub spec: FsSpec,
    tick: i64,
}

fn attrs(a: FsAttrs) -> Attrs {
    Attrs { mode: a.mode, uid: a.uid, gid: a.gid, mtime_ns: a.mtime_ns }
}

fn fs_path(p: &SpecPath) -> Result<FsPath, FsError> {
    let mut out = FsPath::root();
    for n in p {
        out = out.join(n)?;
    }
    Ok(out)
}

impl Workspace {
    /// An empty tree written under `salt` (the mark's).
    pub fn new(salt: [u8; 32]) -> Result<Workspace, Violation> {
        let store = MemStore::new();
        let a = FsAttrs { mode: 0o755, ..FsAttrs::default() };
        let root = Fs::with_chunker(&store, salt, CHUNKS)
            .mkfs(attrs(a))
            .map_err(|e| Violation::new("FS-9 mkfs", e.to_string()))?;
        Ok(Workspace { store, salt, root, spec: FsSpec::new(a), tick: 0 })
    }

    /// The working tree's file system handle (its store holds every blob of `root`).
    pub fn fs(&self) -> Fs<'_> {
        Fs::with_chunker(&self.store, self.salt, CHUNKS)
    }

    /// The store behind [`Workspace::fs`].
    pub fn store(&self) -> &MemStore {
        &self.store
    }

    fn pick(&self, rng: &mut SimRng, want: impl Fn(&FsNode) -> bool) -> Option<SpecPath> {
        let paths: Vec<&SpecPath> = self
            .spec
            .nodes()
            .iter()
            .filter(|(p, n)| !p.is_empty() && want(n))
            .map(|(p, _)| p)
            .collect();
        (!paths.is_empty()).then(|| paths[rng.below(paths.len() as u64) as usize].clone())
    }

    fn fresh(&self, rng: &mut SimRng) -> SpecPath {
        let dirs: Vec<&SpecPath> = self
            .spec
            .nodes()
            .iter()
            .filter(|(p, n)| p.len() < 3 && matches!(n, FsNode::Dir { .. }))
            .map(|(p, _)| p)
            .collect();
        let mut p = dirs[rng.below(dirs.len() as u64) as usize].clone();
        p.push(NAMES[rng.below(NAMES.len() as u64) as usize].to_vec());
        p
    }

    /// Applies one random operation to both trees; a disagreement is a violation. Returns a
    /// line for the trace.
    pub fn step(&mut self, rng: &mut SimRng) -> Result<String, Violation> {
        self.tick += 1;
        let a = FsAttrs { mode: 0o644, uid: 1, gid: 2, mtime_ns: self.tick * 1_000 };
        let is_file = |n: &FsNode| matches!(n, FsNode::File { .. });
        let op = match rng.below(11) {
            0 | 1 => FsOp::Create(self.fresh(rng), a),
            2 => FsOp::Mkdir(self.fresh(rng), FsAttrs { mode: 0o755, ..a }),
            3..=5 => match self.pick(rng, is_file) {
                Some(p) => {
                    let size = self.spec.size(&p).unwrap_or(0);
                    let off = rng.below(size + 64);
                    let len = 1 + rng.below(WRITE_BYTES_MAX);
                    let byte = rng.below(256) as u8;
                    let data: Vec<u8> =
                        (0..len).map(|i| byte.wrapping_add((i / 13) as u8)).collect();
                    FsOp::Write(p, off, data)
                }
                None => FsOp::Create(self.fresh(rng), a),
            },
            6 => match self.pick(rng, is_file) {
                Some(p) => {
                    let size = self.spec.size(&p).unwrap_or(0);
                    FsOp::Truncate(p, rng.below(size + 100))
                }
                None => FsOp::Mkdir(self.fresh(rng), a),
            },
            7 => match self.pick(rng, |_| true) {
                Some(p) => FsOp::Rename(p, self.fresh(rng)),
                None => FsOp::Create(self.fresh(rng), a),
            },
            8 => match self.pick(rng, |n| !matches!(n, FsNode::Dir { .. })) {
                Some(p) => FsOp::Remove(p),
                None => FsOp::Mkdir(self.fresh(rng), a),
            },
            9 => match self.pick(rng, |n| matches!(n, FsNode::Dir { .. })) {
                Some(p) => FsOp::Rmdir(p),
                None => FsOp::Create(self.fresh(rng), a),
            },
            // FS-12: a further name for a file, so commits, pushes and cleanups carry inodes.
            _ => match self.pick(rng, is_file) {
                Some(p) => FsOp::Link(p, self.fresh(rng)),
                None => FsOp::Create(self.fresh(rng), a),
            },
        };
        let want = self.spec.apply(&op);
        let got = self.apply(&op);
        let line = format!("{:?}", short(&op));
        match (got, want) {
            (Ok(root), Ok(())) => {
                self.root = root;
                Ok(line)
            }
            (Err(_), Err(_)) => Ok(format!("{line} refused")),
            (got, want) => Err(Violation::new(
                "FS-9..15 the working tree agrees with FsSpec",
                format!("{line}: implementation {:?}, spec {want:?}", got.map(|_| ())),
            )),
        }
    }

    fn apply(&self, op: &FsOp) -> Result<Ref, FsError> {
        let fs = self.fs();
        let r = &self.root;
        match op {
            FsOp::Create(p, a) => fs.create(r, &fs_path(p)?, attrs(*a)),
            FsOp::Mkdir(p, a) => fs.mkdir(r, &fs_path(p)?, attrs(*a)),
            FsOp::Write(p, off, data) => fs.write(r, &fs_path(p)?, *off, data),
            FsOp::Truncate(p, n) => fs.truncate(r, &fs_path(p)?, *n),
            FsOp::Remove(p) => fs.remove(r, &fs_path(p)?),
            FsOp::Rmdir(p) => fs.rmdir(r, &fs_path(p)?),
            FsOp::Rename(a, b) => fs.rename(r, &fs_path(a)?, &fs_path(b)?),
            FsOp::Link(a, b) => fs.link(r, &fs_path(a)?, &fs_path(b)?),
            _ => Err(FsError::Unsupported {
                operation: "sim",
                reason: "the fs profile does not generate this operation",
            }),
        }
    }
}

/// The operation without its data, for the trace.
fn short(op: &FsOp) -> String {
    let p = |p: &SpecPath| {
        let names: Vec<String> =
            p.iter().map(|n| String::from_utf8_lossy(n).into_owned()).collect();
        format!("/{}", names.join("/"))
    };
    match op {
        FsOp::Create(a, _) => format!("create {}", p(a)),
        FsOp::Mkdir(a, _) => format!("mkdir {}", p(a)),
        FsOp::Write(a, off, d) => format!("write {} @{off} +{}", p(a), d.len()),
        FsOp::Truncate(a, n) => format!("truncate {} {n}", p(a)),
        FsOp::Remove(a) => format!("remove {}", p(a)),
        FsOp::Rmdir(a) => format!("rmdir {}", p(a)),
        FsOp::Rename(a, b) => format!("rename {} {}", p(a), p(b)),
        FsOp::Link(a, b) => format!("link {} {}", p(a), p(b)),
        other => format!("{other:?}"),
    }
}

/// Why a committed tree did not read back as its spec.
pub enum Mismatch {
    /// A read failed (allowed only where a media fault was injected).
    Error(String),
    /// The tree read back differs: never allowed.
    Differs(String),
}

/// Reads the whole tree at `root` and compares it with `spec`: paths, kinds, attributes, sizes,
/// directory counts, bytes, targets and link counts (FS-12).
pub fn compare(fs: &Fs<'_>, root: &Ref, spec: &FsSpec) -> Result<(), Mismatch> {
    let err = |e: FsError| Mismatch::Error(e.to_string());
    let walked = fs.walk(root, &FsPath::root()).map_err(err)?;
    let got: Vec<SpecPath> =
        walked.iter().map(|(p, _)| p.names().map(<[u8]>::to_vec).collect()).collect();
    let want: Vec<&SpecPath> = spec.nodes().keys().collect();
    if got.len() != want.len() || got.iter().zip(&want).any(|(g, w)| g != *w) {
        return Err(Mismatch::Differs(format!(
            "paths differ: read {} paths, spec has {}",
            got.len(),
            want.len()
        )));
    }
    for ((path, info), sp) in walked.iter().zip(got) {
        let node = spec.get(&sp).ok_or_else(|| Mismatch::Differs(format!("{path} not in spec")))?;
        let a = node.attrs();
        let same_attrs = info.attrs() == attrs(a);
        let ok = match node {
            FsNode::Dir { .. } => info.kind == Kind::Dir && Some(info.size) == spec.size(&sp),
            FsNode::Symlink { target, .. } => info.kind == Kind::Symlink && info.target == *target,
            FsNode::File { data, .. } => {
                if info.kind != Kind::File || info.size != data.len() as u64 {
                    false
                } else {
                    fs.read(root, path, 0, info.size).map_err(err)? == *data
                }
            }
        };
        let links_ok =
            info.kind == Kind::Dir || Some(fs.nlink(root, path).map_err(err)?) == spec.nlink(&sp);
        if !ok || !same_attrs || !links_ok {
            return Err(Mismatch::Differs(format!("{path} reads back differently")));
        }
    }
    Ok(())
}
