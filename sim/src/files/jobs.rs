//! The `fs` profile's jobs and checks: pushes (the real `SyncJob`, one blob per step), cleanups
//! (the real `CleanupJob` after a retention pass, one delete per step), and the read-back checks
//! that judge a repository against the `FsSpec` recorded at commit time (module docs in
//! `files/mod.rs`).

use super::*;

/// What a space cleanup keeps: every mark's file-tree history (a job borrows it for its life).
static SPACE_REACH: SpaceReachability<FsSnapshotReachability> =
    SpaceReachability { marks: FsSnapshotReachability };

impl FsSim<'_> {
    /// Begins or steps the push of a mark from A to B.
    pub(super) fn push_step(&mut self, m: usize) -> Result<(), Violation> {
        let Some((pm, mut job, disturbed)) = self.push.take() else {
            if self.acked[A][m].head.is_none() {
                return Ok(());
            }
            let fx = self.fx;
            let decide: &Decide = fx.decides[m].as_ref();
            // The plan (the job's first step) runs in the begin's event here.
            let begun = SyncJob::begin(&fx.a.marks[m], &fx.b.marks[m], Some(&fx.reach), decide)
                .and_then(|mut job| job.step().map(|_| job));
            match begun {
                Ok(job) => {
                    self.event(format_args!(
                        "push {} begins: {} blobs",
                        mark_name(m),
                        job.blobs_remaining()
                    ));
                    self.push = Some((m, job, false));
                }
                Err(VolumeError::ModeConflict { .. }) if self.clean[B].is_some() => {
                    self.event(format_args!("push refused: B is being cleaned up (VOL-6)"));
                }
                Err(e) => self.allowed("push begin", &e, &[A, B])?,
            }
            return Ok(());
        };
        // A few blobs per step, so pushes finish between crashes.
        let mut step = job.step();
        for _ in 0..self.rng.below(8) {
            if !matches!(step, Ok(SyncStep::Copied(_))) {
                break;
            }
            step = job.step();
        }
        match step {
            Ok(SyncStep::Done(SyncOutcome::Published { value, blobs_copied })) => {
                let h = History::decode(&value).map_err(|e| {
                    Violation::new("FS-23 a pushed value is a history", e.to_string())
                })?;
                self.event(format_args!("push {} published ({blobs_copied} blobs)", mark_name(pm)));
                self.acked[B][pm] = h;
                let vol = &self.fx.b.marks[pm];
                match check_vol1(vol, &self.fx.reach) {
                    Ok(None) => {}
                    Ok(Some(h)) => {
                        return Err(Violation::new(
                            "VOL-1 after a push (MARK-9)",
                            format!("{h} missing"),
                        ));
                    }
                    Err(e) => self.allowed("VOL-1 check", &e, &[B])?,
                }
                self.check_mark(B, pm, true)?;
            }
            Ok(SyncStep::Done(SyncOutcome::Declined { .. })) => {
                self.allowed("push (declined)", &"not a fast forward", &[A, B])?;
            }
            Ok(_) => self.push = Some((pm, job, disturbed)),
            // A cleanup of A may delete what the push still had to copy: the push fails and B is
            // never harmed (specs/volume.md §4).
            Err(e) if disturbed => self.event(format_args!("push failed after A's cleanup: {e}")),
            Err(e) => self.allowed("push", &e, &[A, B])?,
        }
        Ok(())
    }

    /// Begins (after a retention pass on A) or steps a cleanup of a repository's space.
    pub(super) fn clean_step(&mut self, r: usize) -> Result<(), Violation> {
        let fx = self.fx;
        let repo = fx.repo(r);
        let Some(mut job) = self.clean[r].take() else {
            if r == A && self.rng.coin() {
                self.retain()?;
            }
            // The plan (the job's first step) runs in the begin's event here.
            let begun = CleanupJob::begin(repo.space.volume(), &SPACE_REACH)
                .and_then(|mut job| job.step().map(|_| job));
            match begun {
                Ok(job) => {
                    self.event(format_args!(
                        "cleanup {} begins: {} to delete",
                        repo.name,
                        job.blobs_remaining()
                    ));
                    self.clean[r] = Some(job);
                }
                Err(VolumeError::ModeConflict { .. }) if r == B && self.push.is_some() => {
                    self.event(format_args!("cleanup B refused: a push runs (VOL-6)"));
                }
                Err(e) => self.allowed("cleanup begin", &e, &[r])?,
            }
            return Ok(());
        };
        let mut step = job.step();
        for _ in 0..self.rng.below(8) {
            if !matches!(step, Ok(CleanupStep::Deleted(_))) {
                break;
            }
            step = job.step();
        }
        match step {
            Ok(CleanupStep::Planned { .. }) => self.clean[r] = Some(job),
            Ok(CleanupStep::Deleted(_)) => {
                if r == A
                    && let Some(p) = &mut self.push
                {
                    p.2 = true;
                }
                self.clean[r] = Some(job);
            }
            Ok(CleanupStep::Done(out)) => {
                drop(job);
                self.event(format_args!("cleanup {} done: {out:?}", repo.name));
                for (m, vol) in repo.marks.iter().enumerate() {
                    match check_vol1(vol, &fx.reach) {
                        Ok(None) => {}
                        Ok(Some(h)) => {
                            return Err(Violation::new(
                                "MARK-8 a space cleanup keeps every mark whole (VOL-1)",
                                format!("{} mark {}: blob {h} is gone", repo.name, mark_name(m)),
                            ));
                        }
                        Err(e) => self.allowed("VOL-1 check", &e, &[r])?,
                    }
                }
                self.check_repo(r, false)?;
            }
            Err(e) => self.allowed("cleanup", &e, &[r])?,
        }
        Ok(())
    }

    /// Retention on A (FS-25): keep the last 1..=3 commits' trees of every mark.
    pub(super) fn retain(&mut self) -> Result<(), Violation> {
        let keep = 1 + self.rng.below(3) as usize;
        let policy = Retention { keep_last: Some(keep), ..Retention::default() };
        let repo = &self.fx.a;
        for m in 0..self.work.len() {
            let old = self.acked[A][m];
            if old.head.is_none() {
                continue;
            }
            let fs = Fs::new(repo.space.store(), self.fx.salts[m]);
            let pruned = match fs.prune(&old, &policy, 0, &[]) {
                Ok(p) => p.history,
                Err(e) => return self.allowed("retention", &e, &[A]),
            };
            if pruned == old {
                continue;
            }
            match repo.marks[m].cell.cas(&old.encode(), &pruned.encode()) {
                Ok(c) if c.swapped => {
                    self.acked[A][m] = pruned;
                    self.event(format_args!("retain {}: horizon {}", mark_name(m), pruned.horizon));
                }
                Ok(_) => self.allowed("retention", &"lost its CAS", &[A])?,
                Err(e) => self.allowed("retention", &e, &[A])?,
            }
        }
        Ok(())
    }

    /// Every mark of a repository (see [`FsSim::check_mark`]).
    pub(super) fn check_repo(&mut self, r: usize, deep: bool) -> Result<(), Violation> {
        for m in 0..self.work.len() {
            self.check_mark(r, m, deep)?;
        }
        Ok(())
    }

    /// The mark's value is the one last acknowledged, its head's tree reads back as recorded,
    /// and so does one older kept commit (every kept one if `deep`). A failed read is allowed
    /// only after a media fault on that repository; a wrong one never is.
    pub(super) fn check_mark(&mut self, r: usize, m: usize, deep: bool) -> Result<(), Violation> {
        let repo = self.fx.repo(r);
        let want = self.acked[r][m];
        let value = match repo.marks[m].cell.read() {
            Ok(v) => v,
            Err(e) => return self.allowed("reading a mark", &e, &[r]),
        };
        if value != want.encode() {
            return Err(Violation::new(
                "nothing acknowledged is lost",
                format!(
                    "{} mark {} holds {} bytes, not the acknowledged {want:?}",
                    repo.name,
                    mark_name(m),
                    value.len()
                ),
            ));
        }
        let Some(head) = want.head else { return Ok(()) };
        let store = repo.space.store();
        let hist = match snapshot::history(store, &head, usize::MAX) {
            Ok(h) => h,
            Err(e) => return self.allowed("reading a history", &e, &[r]),
        };
        let kept: Vec<Ref> =
            hist.iter().filter(|(_, s)| want.keeps(s.lamport)).map(|(c, _)| *c).collect();
        let mut check: Vec<Ref> = vec![head];
        if deep {
            check = kept;
        } else if kept.len() > 1 {
            check.push(kept[self.rng.below(kept.len() as u64) as usize]);
        }
        let fs = Fs::new(store, self.fx.salts[m]);
        for c in check {
            let Some(spec) = self.specs.get(&c) else {
                return Err(Violation::new("simulator", format!("no spec recorded for {c}")));
            };
            let tree = match fs.tree_in(&want, &c) {
                Ok(t) => t,
                Err(e) => return self.allowed("reading a commit", &e, &[r]),
            };
            match tree::compare(&fs, &tree, spec) {
                Ok(()) => {}
                Err(tree::Mismatch::Error(e)) => self.allowed("reading a tree", &e, &[r])?,
                Err(tree::Mismatch::Differs(d)) => {
                    return Err(Violation::new(
                        "a committed snapshot reads back exactly (FsSpec); corruption is never returned",
                        format!("{} mark {} commit {c}: {d}", repo.name, mark_name(m)),
                    ));
                }
            }
        }
        Ok(())
    }
}
