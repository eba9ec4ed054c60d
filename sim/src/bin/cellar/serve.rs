//! `cellar serve --config cellar.toml`: the NFSv3 shell (`nfsserve`) around
//! `cellar::adapters::ShareFs` (`specs/adapters.md`, ADP-*). One TCP port serves MOUNT and NFS;
//! the export root `/` is a read-only directory holding one entry per share whose `adapters`
//! include `nfs`, so `nfs://127.0.0.1/SHARE//file?version=3&nfsport=P&mountport=P` reaches a
//! file. Every request that changes a share is committed before its reply (ADP-9): nfsserve
//! answers every WRITE as FILE_SYNC, so an acknowledged write is a committed one and survives
//! `kill -9`. File handles are `CLR1` ‖ file id: the id is the share's tag and the path-derived
//! inode number (ADP-2), so handles stay valid across a restart. SIGTERM/SIGINT commit every
//! share and exit.
//!
//! What nfsserve cannot serve: MKNOD, LINK and COMMIT (answered PROC_UNAVAIL; COMMIT is never
//! needed because no WRITE is answered UNSTABLE), caller credentials (new files belong to the
//! server's user; no AUTH_SYS mapping), NLM locking, and anything beyond NFSv3 over TCP.

use crate::mount::{commit_retrying, open_share};
use cellar::adapters::{Attr, Caller, Errno, SetAttr, SetTime, ShareFs};
use cellar::fs::Kind;
use cellar::registry::{Adapter, Registry};
use nfsserve::nfs::{
    fattr3, fileid3, filename3, ftype3, nfs_fh3, nfspath3, nfsstat3, nfstime3, sattr3, set_atime,
    set_gid3, set_mode3, set_mtime, set_size3, set_uid3, specdata3,
};
use nfsserve::tcp::{NFSTcp, NFSTcpListener};
use nfsserve::vfs::{DirEntry, NFSFileSystem, ReadDirResult, VFSCapabilities};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// The export root's file id.
const EXPORT_ROOT: fileid3 = 1;
/// File handles begin with these bytes.
const FH_MAGIC: &[u8; 4] = b"CLR1";

/// `cellar serve` arguments.
#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// The configuration file.
    #[arg(long)]
    config: PathBuf,
    /// Address of the one port that serves MOUNT and NFS (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:11111")]
    listen: String,
    /// Directory under which each share spills staged blobs (default: the system's
    /// temporary directory).
    #[arg(long)]
    spill_dir: Option<PathBuf>,
    /// Switch on a planted bug (builds with the `planted-bugs` feature only; tests use it to
    /// see their checks fail). It acts on the thread that serves requests.
    #[arg(long, hide = true)]
    bug: Option<String>,
}

struct Served {
    name: String,
    tag: u64,
    fs: Arc<ShareFs>,
}

struct Nfs {
    shares: Vec<Served>,
    uid: u32,
    gid: u32,
}

/// A share's tag: 16 bits of BLAKE3 of its name, never 0 (the export root's).
fn share_tag(name: &str) -> u64 {
    let h = blake3::hash(name.as_bytes());
    let t = u64::from(u16::from_le_bytes([h.as_bytes()[0], h.as_bytes()[1]]));
    if t == 0 { 1 } else { t }
}

fn stat(e: Errno) -> nfsstat3 {
    match e.0 {
        libc::EPERM => nfsstat3::NFS3ERR_PERM,
        libc::ENOENT => nfsstat3::NFS3ERR_NOENT,
        libc::EACCES => nfsstat3::NFS3ERR_ACCES,
        libc::EEXIST => nfsstat3::NFS3ERR_EXIST,
        libc::ENOTDIR => nfsstat3::NFS3ERR_NOTDIR,
        libc::EISDIR => nfsstat3::NFS3ERR_ISDIR,
        libc::EINVAL => nfsstat3::NFS3ERR_INVAL,
        libc::EFBIG => nfsstat3::NFS3ERR_FBIG,
        libc::ENOSPC => nfsstat3::NFS3ERR_NOSPC,
        libc::EROFS => nfsstat3::NFS3ERR_ROFS,
        libc::ENAMETOOLONG => nfsstat3::NFS3ERR_NAMETOOLONG,
        libc::ENOTEMPTY => nfsstat3::NFS3ERR_NOTEMPTY,
        libc::ESTALE => nfsstat3::NFS3ERR_STALE,
        libc::EAGAIN => nfsstat3::NFS3ERR_JUKEBOX,
        _ => nfsstat3::NFS3ERR_IO,
    }
}

fn t3(ns: i64) -> nfstime3 {
    let ns = ns.max(0);
    nfstime3 {
        seconds: u32::try_from(ns / 1_000_000_000).unwrap_or(u32::MAX),
        nseconds: u32::try_from(ns % 1_000_000_000).unwrap_or(0),
    }
}

fn ns3(t: &nfstime3) -> i64 {
    i64::from(t.seconds) * 1_000_000_000 + i64::from(t.nseconds)
}

fn fattr(tag: u64, a: &Attr) -> fattr3 {
    let ftype = match a.kind {
        Kind::File => ftype3::NF3REG,
        Kind::Dir => ftype3::NF3DIR,
        Kind::Symlink => ftype3::NF3LNK,
        Kind::Fifo => ftype3::NF3FIFO,
        Kind::Socket => ftype3::NF3SOCK,
        Kind::CharDevice => ftype3::NF3CHR,
        Kind::BlockDevice => ftype3::NF3BLK,
    };
    let (size, rdev) = if a.kind.is_special() {
        let d = a.size;
        (0, specdata3 { specdata1: (d >> 8) as u32 & 0xfff, specdata2: (d & 0xff) as u32 })
    } else {
        (a.size, specdata3::default())
    };
    fattr3 {
        ftype,
        mode: a.mode,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        size,
        used: size,
        rdev,
        fsid: tag,
        fileid: (tag << 48) | a.ino,
        atime: t3(a.atime_ns),
        mtime: t3(a.mtime_ns),
        ctime: t3(a.ctime_ns),
    }
}

fn set_attr(s: &sattr3) -> SetAttr {
    let time = |t: Option<SetTime>| t;
    SetAttr {
        mode: match s.mode {
            set_mode3::mode(m) => Some(m & 0o7777),
            set_mode3::Void => None,
        },
        uid: match s.uid {
            set_uid3::uid(u) => Some(u),
            set_uid3::Void => None,
        },
        gid: match s.gid {
            set_gid3::gid(g) => Some(g),
            set_gid3::Void => None,
        },
        size: match s.size {
            set_size3::size(n) => Some(n),
            set_size3::Void => None,
        },
        atime: time(match s.atime {
            set_atime::DONT_CHANGE => None,
            set_atime::SET_TO_SERVER_TIME => Some(SetTime::Now),
            set_atime::SET_TO_CLIENT_TIME(t) => Some(SetTime::At(ns3(&t))),
        }),
        mtime: time(match s.mtime {
            set_mtime::DONT_CHANGE => None,
            set_mtime::SET_TO_SERVER_TIME => Some(SetTime::Now),
            set_mtime::SET_TO_CLIENT_TIME(t) => Some(SetTime::At(ns3(&t))),
        }),
    }
}

fn has_changes(s: &SetAttr) -> bool {
    s.mode.is_some() || s.uid.is_some() || s.gid.is_some() || s.size.is_some() || s.mtime.is_some()
}

impl Nfs {
    fn route(&self, id: fileid3) -> Result<(&Served, u64), nfsstat3> {
        let tag = id >> 48;
        let s = self.shares.iter().find(|s| s.tag == tag).ok_or(nfsstat3::NFS3ERR_STALE)?;
        Ok((s, id & ((1 << 48) - 1)))
    }

    fn caller(&self) -> Caller {
        Caller { uid: self.uid, gid: self.gid }
    }

    /// ADP-9: a change is committed before it is acknowledged.
    fn stable(&self, s: &Served) -> Result<(), nfsstat3> {
        commit_retrying(&s.fs, "nfs").map_err(stat)
    }

    fn root_attr(&self) -> fattr3 {
        fattr3 {
            ftype: ftype3::NF3DIR,
            mode: 0o555,
            nlink: 2,
            fileid: EXPORT_ROOT,
            ..fattr3::default()
        }
    }

    fn attr_of(&self, id: fileid3) -> Result<fattr3, nfsstat3> {
        if id == EXPORT_ROOT {
            return Ok(self.root_attr());
        }
        let (s, ino) = self.route(id)?;
        Ok(fattr(s.tag, &s.fs.getattr(ino).map_err(stat)?))
    }
}

#[async_trait::async_trait]
impl NFSFileSystem for Nfs {
    fn capabilities(&self) -> VFSCapabilities {
        VFSCapabilities::ReadWrite
    }

    fn root_dir(&self) -> fileid3 {
        EXPORT_ROOT
    }

    async fn lookup(&self, dirid: fileid3, filename: &filename3) -> Result<fileid3, nfsstat3> {
        blocking(|| -> Result<_, nfsstat3> {
            let name = filename.0.as_slice();
            if dirid == EXPORT_ROOT {
                if name == b"." || name == b".." {
                    return Ok(EXPORT_ROOT);
                }
                let s = self.shares.iter().find(|s| s.name.as_bytes() == name);
                return s.map(|s| (s.tag << 48) | s.fs.root_ino()).ok_or(nfsstat3::NFS3ERR_NOENT);
            }
            let (s, ino) = self.route(dirid)?;
            match name {
                b"." => Ok(dirid),
                b".." if ino == s.fs.root_ino() => Ok(EXPORT_ROOT),
                b".." => Ok((s.tag << 48) | s.fs.parent(ino).map_err(stat)?),
                _ => Ok((s.tag << 48) | s.fs.lookup(ino, name).map_err(stat)?.ino),
            }
        })
    }

    async fn getattr(&self, id: fileid3) -> Result<fattr3, nfsstat3> {
        blocking(|| -> Result<_, nfsstat3> { self.attr_of(id) })
    }

    async fn setattr(&self, id: fileid3, setattr: sattr3) -> Result<fattr3, nfsstat3> {
        blocking(|| -> Result<_, nfsstat3> {
            let (s, ino) = self.route(id)?;
            let set = set_attr(&setattr);
            let a = s.fs.setattr(ino, set).map_err(stat)?;
            if has_changes(&set) {
                self.stable(s)?;
            }
            Ok(fattr(s.tag, &a))
        })
    }

    async fn read(
        &self,
        id: fileid3,
        offset: u64,
        count: u32,
    ) -> Result<(Vec<u8>, bool), nfsstat3> {
        blocking(|| -> Result<_, nfsstat3> {
            let (s, ino) = self.route(id)?;
            let size = s.fs.getattr(ino).map_err(stat)?.size;
            let data = s.fs.read(ino, offset, count).map_err(stat)?;
            let eof = offset + data.len() as u64 >= size;
            Ok((data, eof))
        })
    }

    async fn write(&self, id: fileid3, offset: u64, data: &[u8]) -> Result<fattr3, nfsstat3> {
        blocking(|| -> Result<_, nfsstat3> {
            let (s, ino) = self.route(id)?;
            s.fs.write(ino, offset, data).map_err(stat)?;
            self.stable(s)?;
            Ok(fattr(s.tag, &s.fs.getattr(ino).map_err(stat)?))
        })
    }

    async fn create(
        &self,
        dirid: fileid3,
        filename: &filename3,
        attr: sattr3,
    ) -> Result<(fileid3, fattr3), nfsstat3> {
        blocking(|| -> Result<_, nfsstat3> {
            let (s, dir) = self.route(dirid)?;
            let mut set = set_attr(&attr);
            let mode = set.mode.take().unwrap_or(0o644);
            let a = match s.fs.create(dir, &filename.0, mode, self.caller()) {
                Ok(a) => a,
                // UNCHECKED (RFC 1813 3.3.8; nfsserve refused GUARDED already): an existing
                // regular file is no error and takes the attributes, as another server's commit
                // that this one just followed (ADP-13) must not make `nfs-cp` fail.
                Err(Errno(libc::EEXIST)) => match s.fs.lookup(dir, &filename.0).map_err(stat)? {
                    a if a.kind == Kind::File => a,
                    _ => return Err(nfsstat3::NFS3ERR_EXIST),
                },
                Err(e) => return Err(stat(e)),
            };
            let a = if has_changes(&set) { s.fs.setattr(a.ino, set).map_err(stat)? } else { a };
            self.stable(s)?;
            Ok(((s.tag << 48) | a.ino, fattr(s.tag, &a)))
        })
    }

    async fn create_exclusive(
        &self,
        dirid: fileid3,
        filename: &filename3,
    ) -> Result<fileid3, nfsstat3> {
        blocking(|| -> Result<_, nfsstat3> {
            let (s, dir) = self.route(dirid)?;
            let a = s.fs.create(dir, &filename.0, 0o644, self.caller()).map_err(stat)?;
            self.stable(s)?;
            Ok((s.tag << 48) | a.ino)
        })
    }

    async fn mkdir(
        &self,
        dirid: fileid3,
        dirname: &filename3,
    ) -> Result<(fileid3, fattr3), nfsstat3> {
        blocking(|| -> Result<_, nfsstat3> {
            let (s, dir) = self.route(dirid)?;
            let a = s.fs.mkdir(dir, &dirname.0, 0o755, self.caller()).map_err(stat)?;
            self.stable(s)?;
            Ok(((s.tag << 48) | a.ino, fattr(s.tag, &a)))
        })
    }

    async fn remove(&self, dirid: fileid3, filename: &filename3) -> Result<(), nfsstat3> {
        blocking(|| -> Result<_, nfsstat3> {
            let (s, dir) = self.route(dirid)?;
            // nfsserve sends RMDIR here too.
            match s.fs.unlink(dir, &filename.0) {
                Err(Errno(libc::EISDIR)) => s.fs.rmdir(dir, &filename.0).map_err(stat)?,
                other => other.map_err(stat)?,
            }
            self.stable(s)
        })
    }

    async fn rename(
        &self,
        from_dirid: fileid3,
        from_filename: &filename3,
        to_dirid: fileid3,
        to_filename: &filename3,
    ) -> Result<(), nfsstat3> {
        blocking(|| -> Result<_, nfsstat3> {
            let (s, from) = self.route(from_dirid)?;
            let (t, to) = self.route(to_dirid)?;
            if s.tag != t.tag {
                return Err(nfsstat3::NFS3ERR_XDEV);
            }
            s.fs.rename(from, &from_filename.0, to, &to_filename.0, false).map_err(stat)?;
            self.stable(s)
        })
    }

    async fn readdir(
        &self,
        dirid: fileid3,
        start_after: fileid3,
        max_entries: usize,
    ) -> Result<ReadDirResult, nfsstat3> {
        blocking(|| -> Result<_, nfsstat3> {
            let all: Vec<(Vec<u8>, fileid3)> = if dirid == EXPORT_ROOT {
                self.shares
                    .iter()
                    .map(|s| (s.name.as_bytes().to_vec(), (s.tag << 48) | s.fs.root_ino()))
                    .collect()
            } else {
                let (s, ino) = self.route(dirid)?;
                let entries = s.fs.readdir(ino).map_err(stat)?;
                entries.into_iter().map(|(n, i, _)| (n, (s.tag << 48) | i)).collect()
            };
            let skip = if start_after == 0 {
                0
            } else {
                all.iter()
                    .position(|(_, i)| *i == start_after)
                    .map(|p| p + 1)
                    .ok_or(nfsstat3::NFS3ERR_BAD_COOKIE)?
            };
            let mut out = ReadDirResult::default();
            for (name, id) in all.iter().skip(skip).take(max_entries) {
                out.entries.push(DirEntry {
                    fileid: *id,
                    name: name.clone().into(),
                    attr: self.attr_of(*id)?,
                });
            }
            out.end = skip + out.entries.len() >= all.len();
            Ok(out)
        })
    }

    async fn symlink(
        &self,
        dirid: fileid3,
        linkname: &filename3,
        symlink: &nfspath3,
        _attr: &sattr3,
    ) -> Result<(fileid3, fattr3), nfsstat3> {
        blocking(|| -> Result<_, nfsstat3> {
            let (s, dir) = self.route(dirid)?;
            let a = s.fs.symlink(dir, &linkname.0, &symlink.0, self.caller()).map_err(stat)?;
            self.stable(s)?;
            Ok(((s.tag << 48) | a.ino, fattr(s.tag, &a)))
        })
    }

    async fn readlink(&self, id: fileid3) -> Result<nfspath3, nfsstat3> {
        blocking(|| -> Result<_, nfsstat3> {
            let (s, ino) = self.route(id)?;
            Ok(s.fs.readlink(ino).map_err(stat)?.into())
        })
    }

    fn id_to_fh(&self, id: fileid3) -> nfs_fh3 {
        let mut data = FH_MAGIC.to_vec();
        data.extend_from_slice(&id.to_le_bytes());
        nfs_fh3 { data }
    }

    fn fh_to_id(&self, fh: &nfs_fh3) -> Result<fileid3, nfsstat3> {
        let Some(rest) = fh.data.strip_prefix(FH_MAGIC) else {
            return Err(nfsstat3::NFS3ERR_BADHANDLE);
        };
        let bytes: [u8; 8] = rest.try_into().map_err(|_| nfsstat3::NFS3ERR_BADHANDLE)?;
        Ok(u64::from_le_bytes(bytes))
    }
}

/// Runs a request's synchronous work on a runtime thread that leaves the runtime's context
/// first: the `ShareFs` calls block (a PostgreSQL cell or store runs its own runtime, which
/// refuses to start inside another one), so they may not run as plain async code.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// Runs `cellar serve`.
pub fn run(args: &ServeArgs) -> ExitCode {
    match serve(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cellar: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(args: &ServeArgs) -> Result<(), String> {
    let _planted =
        args.bug.as_deref().map(cellar::bugs::plant).transpose().map_err(|e| e.to_string())?;
    let reg = Registry::open(&args.config).map_err(|e| e.to_string())?;
    let mut shares: Vec<Served> = Vec::new();
    for (name, spec) in reg.shares() {
        if !spec.adapters.contains(&Adapter::Nfs) {
            continue;
        }
        let spill = args.spill_dir.as_ref().map(|d| d.join(name));
        let fs = Arc::new(open_share(&reg, name, Adapter::Nfs, spill, "cellar serve")?);
        let tag = share_tag(name);
        if let Some(other) = shares.iter().find(|s| s.tag == tag) {
            return Err(format!(
                "shares {} and {name} hash to one file-handle tag; rename one",
                other.name
            ));
        }
        shares.push(Served { name: name.clone(), tag, fs });
    }
    if shares.is_empty() {
        return Err(format!("{}: no share enables the nfs adapter", reg.file().display()));
    }
    // SAFETY: getuid/getgid cannot fail and touch no memory.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let all: Vec<Arc<ShareFs>> = shares.iter().map(|s| s.fs.clone()).collect();
    let names: Vec<String> = shares.iter().map(|s| s.name.clone()).collect();
    let nfs = Nfs { shares, uid, gid };
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
    ])
    .map_err(|e| format!("signal handlers: {e}"))?;
    std::thread::spawn(move || {
        if signals.forever().next().is_some() {
            let mut status = 0;
            for fs in &all {
                if commit_retrying(fs, "shutdown").is_err() {
                    status = 1;
                } else {
                    let _ = std::fs::remove_dir_all(fs.spill_dir());
                }
            }
            eprintln!("cellar: serve stopped");
            std::process::exit(status);
        }
    });
    // Multi-threaded, so that `blocking` may leave the runtime's context. A planted bug acts
    // on every thread that serves requests.
    let bug = args.bug.clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .on_thread_start(move || {
            if let Some(Ok(planted)) = bug.as_deref().map(cellar::bugs::plant) {
                std::mem::forget(planted);
            }
        })
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    rt.block_on(async {
        let listener = NFSTcpListener::bind(&args.listen, nfs)
            .await
            .map_err(|e| format!("listening on {}: {e}", args.listen))?;
        println!(
            "cellar: serving {} over NFSv3 (MOUNT and NFS) on {}:{}",
            names.join(", "),
            listener.get_listen_ip(),
            listener.get_listen_port()
        );
        use std::io::Write;
        let _ = std::io::stdout().flush();
        listener.handle_forever().await.map_err(|e| format!("serving: {e}"))
    })
}
