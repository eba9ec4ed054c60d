//! `cellar mount --config cellar.toml SHARE DIR`: the FUSE shell (`fuser`) around
//! `cellar::adapters::ShareFs` (`specs/adapters.md`, ADP-*). This file only translates kernel
//! requests into `ShareFs` calls and errno values back; everything that decides lives in the
//! library. fsync commits; SIGTERM/SIGINT commit, then unmount; an external `fusermount3 -u`
//! ends the session and the working tree is committed before exit.

use cellar::adapters::{Attr, Caller, Errno, SetAttr, SetTime, ShareFs, ShareOptions, open_mark};
use cellar::db::merge::NodeId;
use cellar::env::{Clock, OsEntropy, SystemClock, random_array};
use cellar::fs::Kind;
use cellar::marks::{MarkInfo, MarkName};
use cellar::registry::{Adapter, Registry};
use fuser::{
    FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, KernelConfig,
    LockOwner, MountOption, OpenAccMode, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow,
    WriteFlags,
};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long the kernel may cache attributes and entries: short, because a merge after a lost
/// CAS can change the tree under it (ADP-5).
const TTL: Duration = Duration::from_secs(1);
/// Largest write the kernel sends in one request.
const MAX_WRITE_BYTES: u32 = 1024 * 1024;
/// How often a commit that meets a running cleanup is retried, 100 ms apart.
const BUSY_RETRIES: u32 = 50;

/// `cellar mount` arguments.
#[derive(clap::Args, Debug)]
pub struct MountArgs {
    /// The configuration file.
    #[arg(long)]
    config: PathBuf,
    /// Where staged blobs wait for the next commit (default: a fresh directory under the
    /// system's temporary directory).
    #[arg(long)]
    spill_dir: Option<PathBuf>,
    /// The share to mount.
    share: String,
    /// The mount point (an existing directory).
    dir: PathBuf,
}

/// Opens the share `name` of `reg` for `adapter`: its mark's volume (ADP-1; a missing mark is
/// created with a fresh salt), the mark's salt and options.
pub fn open_share(
    reg: &Registry,
    name: &str,
    adapter: Adapter,
    spill_dir: Option<PathBuf>,
    label: &str,
) -> Result<ShareFs, String> {
    let spec = reg.share(name).ok_or_else(|| {
        let known: Vec<&String> = reg.shares().map(|(n, _)| n).collect();
        format!("{}: no share named {name:?} (shares: {known:?})", reg.file().display())
    })?;
    if !spec.adapters.contains(&adapter) {
        return Err(format!(
            "{}: shares.{name}.adapters does not enable {adapter:?}",
            reg.file().display()
        ));
    }
    let space = reg
        .space(&spec.volume)
        .ok_or_else(|| format!("share {name}: volume {} is not open", spec.volume))?;
    let mark = MarkName::new(&spec.mark).map_err(|e| format!("share {name}: {e}"))?;
    let clock = SystemClock;
    let created_ns = i64::try_from(clock.now_ms()).unwrap_or(i64::MAX).saturating_mul(1_000_000);
    let template = MarkInfo::new(random_array(&OsEntropy), created_ns);
    let opened = open_mark(&space, &mark, &template, spec.read_only)
        .map_err(|e| format!("share {name}: mark {mark}: {e}"))?;
    let spill_dir = spill_dir.unwrap_or_else(|| {
        std::env::temp_dir().join(format!("cellar-spill-{name}-{}", std::process::id()))
    });
    // SAFETY: getuid/getgid cannot fail and touch no memory.
    let owner = unsafe { (libc::getuid(), libc::getgid()) };
    let opts = ShareOptions {
        read_only: spec.read_only,
        spill_dir,
        author: NodeId(u32::from_le_bytes(random_array(&OsEntropy))),
        clock: Arc::new(SystemClock),
        root_owner: owner,
        label: format!("{label} {name}"),
        refresh_ms: spec.refresh_ms,
        compression: spec.compression,
    };
    ShareFs::open(opened.volume, opened.info.salt, opts).map_err(|e| format!("share {name}: {e}"))
}

/// Commits, retrying while a cleanup holds Contract. Prints what happened.
pub fn commit_retrying(share: &ShareFs, why: &str) -> Result<(), Errno> {
    let mut tries = 0;
    loop {
        match share.commit(why) {
            Ok(rep) => {
                if rep.published {
                    eprintln!(
                        "cellar: committed {} ({} blobs, {} bytes; {} merges)",
                        rep.head.map(|h| h.cid.to_string()).unwrap_or_default(),
                        rep.promoted.blobs,
                        rep.promoted.bytes,
                        rep.merges
                    );
                }
                for c in &rep.conflicts {
                    let copy =
                        c.copy.as_ref().map(|p| format!(" (theirs at {p})")).unwrap_or_default();
                    eprintln!("cellar: conflict {:?} at {}{copy}", c.kind, c.path);
                }
                return Ok(());
            }
            Err(cellar::adapters::AdapterError::Busy) if tries < BUSY_RETRIES => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => {
                eprintln!("cellar: commit failed: {e}");
                return Err(e.errno());
            }
        }
    }
}

/// Runs `cellar mount`.
pub fn run(args: &MountArgs) -> ExitCode {
    match mount(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cellar: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn mount(args: &MountArgs) -> Result<(), String> {
    let reg = Registry::open(&args.config).map_err(|e| e.to_string())?;
    let share = Arc::new(open_share(
        &reg,
        &args.share,
        Adapter::Fuse,
        args.spill_dir.clone(),
        "cellar mount",
    )?);
    let mut options = vec![
        MountOption::FSName(format!("cellar:{}", args.share)),
        MountOption::Subtype("cellar".into()),
        MountOption::DefaultPermissions,
    ];
    options.push(if share.read_only() { MountOption::RO } else { MountOption::RW });
    let mut config = fuser::Config::default();
    config.mount_options = options;
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        config.acl = fuser::SessionACL::All;
    }
    let mut session = fuser::Session::new(Shell { share: share.clone() }, &args.dir, &config)
        .map_err(|e| format!("mounting {}: {e}", args.dir.display()))?;
    let mut unmounter = session.unmount_callable();
    let sig_share = share.clone();
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
    ])
    .map_err(|e| format!("signal handlers: {e}"))?;
    std::thread::spawn(move || {
        if signals.forever().next().is_some() {
            // Commit first, then unmount (the session loop then ends).
            let _ = commit_retrying(&sig_share, "unmount (signal)");
            if let Err(e) = unmounter.unmount() {
                eprintln!("cellar: unmount: {e}");
            }
        }
    });
    eprintln!("cellar: share {} mounted on {}", args.share, args.dir.display());
    let ran = session.run();
    commit_retrying(&share, "unmount").map_err(|e| format!("final commit: {e}"))?;
    // Committed: nothing staged is needed any more.
    let _ = std::fs::remove_dir_all(share.spill_dir());
    ran.map_err(|e| format!("FUSE session: {e}"))?;
    eprintln!("cellar: unmounted {}", args.dir.display());
    Ok(())
}

struct Shell {
    share: Arc<ShareFs>,
}

fn errno(e: Errno) -> fuser::Errno {
    fuser::Errno::from_i32(e.0)
}

fn time(ns: i64) -> SystemTime {
    if ns >= 0 {
        UNIX_EPOCH + Duration::from_nanos(ns.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_nanos(ns.unsigned_abs())
    }
}

fn ns(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_nanos()).unwrap_or(i64::MAX),
    }
}

fn file_type(k: Kind) -> FileType {
    match k {
        Kind::File => FileType::RegularFile,
        Kind::Dir => FileType::Directory,
        Kind::Symlink => FileType::Symlink,
        Kind::Fifo => FileType::NamedPipe,
        Kind::Socket => FileType::Socket,
        Kind::CharDevice => FileType::CharDevice,
        Kind::BlockDevice => FileType::BlockDevice,
    }
}

fn fattr(a: &Attr) -> FileAttr {
    FileAttr {
        ino: INodeNo(a.ino),
        size: if a.kind.is_special() { 0 } else { a.size },
        blocks: if a.kind.is_special() { 0 } else { a.size.div_ceil(512) },
        atime: time(a.atime_ns),
        mtime: time(a.mtime_ns),
        ctime: time(a.ctime_ns),
        crtime: time(a.mtime_ns),
        kind: file_type(a.kind),
        perm: u16::try_from(a.mode & 0o7777).unwrap_or(0),
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        rdev: if a.kind.is_special() { u32::try_from(a.size).unwrap_or(0) } else { 0 },
        blksize: 4096,
        flags: 0,
    }
}

fn caller(req: &Request) -> Caller {
    Caller { uid: req.uid(), gid: req.gid() }
}

fn set_time(t: TimeOrNow) -> SetTime {
    match t {
        TimeOrNow::Now => SetTime::Now,
        TimeOrNow::SpecificTime(t) => SetTime::At(ns(t)),
    }
}

impl Filesystem for Shell {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        let _ = config.set_max_write(MAX_WRITE_BYTES);
        // Sequential reads in requests of up to 1 MiB instead of 128 KiB: a quarter of the
        // per-request tree walks (the kernel caps this at what it offered).
        let _ = config.set_max_readahead(MAX_WRITE_BYTES);
        Ok(())
    }

    fn destroy(&mut self) {
        let _ = commit_retrying(&self.share, "unmount");
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.share.lookup(parent.0, name.as_bytes()) {
            Ok(a) => reply.entry(&TTL, &fattr(&a), Generation(0)),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.share.getattr(ino.0) {
            Ok(a) => reply.attr(&TTL, &fattr(&a)),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let set = SetAttr {
            mode,
            uid,
            gid,
            size,
            atime: atime.map(set_time),
            mtime: mtime.map(set_time),
        };
        match self.share.setattr(ino.0, set) {
            Ok(a) => reply.attr(&TTL, &fattr(&a)),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.share.readlink(ino.0) {
            Ok(t) => reply.data(&t),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        let kind = match mode & libc::S_IFMT {
            0 | libc::S_IFREG => None,
            libc::S_IFIFO => Some(Kind::Fifo),
            libc::S_IFSOCK => Some(Kind::Socket),
            libc::S_IFCHR => Some(Kind::CharDevice),
            libc::S_IFBLK => Some(Kind::BlockDevice),
            _ => return reply.error(fuser::Errno::EINVAL),
        };
        let made = match kind {
            None => self.share.create(parent.0, name.as_bytes(), mode, caller(req)),
            Some(k) => {
                self.share.mknod(parent.0, name.as_bytes(), k, mode, u64::from(rdev), caller(req))
            }
        };
        match made {
            Ok(a) => reply.entry(&TTL, &fattr(&a), Generation(0)),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        match self.share.mkdir(parent.0, name.as_bytes(), mode, caller(req)) {
            Ok(a) => reply.entry(&TTL, &fattr(&a), Generation(0)),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.share.unlink(parent.0, name.as_bytes()) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.share.rmdir(parent.0, name.as_bytes()) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let t = target.as_os_str().as_bytes();
        match self.share.symlink(parent.0, link_name.as_bytes(), t, caller(req)) {
            Ok(a) => reply.entry(&TTL, &fattr(&a), Generation(0)),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        if flags.contains(RenameFlags::RENAME_EXCHANGE)
            || flags.contains(RenameFlags::RENAME_WHITEOUT)
        {
            return reply.error(fuser::Errno::EINVAL);
        }
        let noreplace = flags.contains(RenameFlags::RENAME_NOREPLACE);
        match self.share.rename(
            parent.0,
            name.as_bytes(),
            newparent.0,
            newname.as_bytes(),
            noreplace,
        ) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        match self.share.link(ino.0, newparent.0, newname.as_bytes()) {
            Ok(a) => reply.entry(&TTL, &fattr(&a), Generation(0)),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let write = !matches!(flags.acc_mode(), OpenAccMode::O_RDONLY);
        match self.share.open_cached(ino.0, write) {
            // ADP-14: close-to-open consistency (cached pages kept unless changed elsewhere).
            Ok((fh, true)) => reply.opened(FileHandle(fh), FopenFlags::FOPEN_KEEP_CACHE),
            Ok((fh, false)) => reply.opened(FileHandle(fh), FopenFlags::empty()),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self.share.read(ino.0, offset, size) {
            Ok(d) => reply.data(&d),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match self.share.write(ino.0, offset, data) {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // Buffered writes go into the working tree; durability is fsync's and unmount's. A
        // buffered write that failed is reported here or by fsync (ADP-12).
        match self.share.take_write_error() {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.share.release(fh.0);
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        match commit_retrying(&self.share, "fsync") {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.share.getattr(ino.0) {
            Ok(a) if a.kind == Kind::Dir => reply.opened(FileHandle(0), FopenFlags::empty()),
            Ok(_) => reply.error(fuser::Errno::ENOTDIR),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let entries = match self.share.readdir(ino.0) {
            Ok(e) => e,
            Err(e) => return reply.error(errno(e)),
        };
        let parent = self.share.parent(ino.0).unwrap_or(ino.0);
        let mut all: Vec<(u64, FileType, Vec<u8>)> = vec![
            (ino.0, FileType::Directory, b".".to_vec()),
            (parent, FileType::Directory, b"..".to_vec()),
        ];
        all.extend(entries.into_iter().map(|(n, i, k)| (i, file_type(k), n)));
        for (i, (e_ino, kind, name)) in all.into_iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(e_ino), i as u64 + 1, kind, OsStr::from_bytes(&name)) {
                break;
            }
        }
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        match commit_retrying(&self.share, "fsync") {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        // The backends do not report capacity: advertise a large, mostly free file system.
        let blocks = 1u64 << 32;
        reply.statfs(blocks, blocks / 2, blocks / 2, 1 << 32, 1 << 31, 4096, 255, 4096);
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let write = flags & libc::O_ACCMODE != libc::O_RDONLY;
        let made = self.share.create(parent.0, name.as_bytes(), mode, caller(req));
        match made.and_then(|a| self.share.open_cached(a.ino, write).map(|(fh, _)| (a, fh))) {
            Ok((a, fh)) => {
                reply.created(&TTL, &fattr(&a), Generation(0), FileHandle(fh), FopenFlags::empty())
            }
            Err(e) => reply.error(errno(e)),
        }
    }
}
