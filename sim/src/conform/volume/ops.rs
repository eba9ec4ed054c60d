//! The operations of the volume workload, each judged by the steps it took.

use super::*;

impl Run<'_> {
    pub(super) fn put(&mut self, v: usize) -> Result<(), Stop> {
        let i = self.rng.below(self.pool.len() as u64) as usize;
        let data = self.pool[i].clone();
        let h = *blake3::hash(&data).as_bytes();
        let p = self.pick_proc(v);
        self.note(format!("volume {v} process {p}: store.put {}", short(&h)));
        let r = self.call(v, p, json!({"type": "store.put", "data": hex(&data)}))?;
        if !is_ok(&r) {
            return fail(format!("volume {v}: store.put failed: {r}"));
        }
        // A raw put is outside the volume protocol (no mode): the blob just appears.
        self.vols[v].spec.apply_unchecked(VolumeStep::PostBlob { holder: HolderId(0), blob: h });
        self.expect_unchanged(v, "store.put")
    }

    pub(super) fn publish(&mut self, v: usize) -> Result<(), Stop> {
        let before = self.model(v);
        let new = self.random_value(v);
        let expected =
            if self.rng.below(10) < 8 { before.cell.clone() } else { self.random_value(v) };
        let p = self.pick_proc(v);
        self.note(format!(
            "volume {v} process {p}: volume.publish {} -> {}",
            value_text(&expected),
            value_text(&new)
        ));
        let req = json!({"type": "volume.publish", "expected": hex(&expected), "new": hex(&new)});
        let r = self.call(v, p, req)?;
        let h = self.holder();
        let reach_new = reach(&new).unwrap_or_default();
        if is_ok(&r) {
            let swapped = r.get("swapped") == Some(&Value::Bool(true));
            let current = r.get("current").and_then(Value::as_str).and_then(|s| unhex(s).ok());
            let spec = &mut self.vols[v].spec;
            begin(spec, h, Mode::Expand, "volume.publish").map_err(Stop::Fail)?;
            if swapped != (before.cell == expected) {
                return fail(format!(
                    "CELL-2: volume.publish answered swapped={swapped} though the cell held {} and \
                     expected was {}",
                    value_text(&before.cell),
                    value_text(&expected)
                ));
            }
            let step = VolumeStep::Publish {
                holder: h,
                expected: expected.clone(),
                new: new.clone(),
                new_reachable: reach_new,
            };
            apply(spec, step).map_err(Stop::Fail)?;
            apply(spec, VolumeStep::EndExpand { holder: h }).map_err(Stop::Fail)?;
            let want_current = if swapped { new.clone() } else { before.cell.clone() };
            if current.as_deref() != Some(&want_current[..]) {
                return fail(format!(
                    "volume.publish answered current {r}, not {}",
                    value_text(&want_current)
                ));
            }
            return self.expect_unchanged(v, "volume.publish");
        }
        match error_kind(&r) {
            "mode_conflict" => self.check_conflict(v, Mode::Expand, "volume.publish")?,
            "missing_blob" => {
                let spec = &self.vols[v].spec;
                if conflict_justified(spec, Mode::Expand) && !self.only_dead(v, Mode::Expand) {
                    return fail(format!(
                        "VOL-6: volume.publish answered missing_blob, not mode_conflict, while a \
                         live holder holds contract: {r}"
                    ));
                }
                if reach_new.is_subset(spec.store()) {
                    return fail(format!(
                        "VOL-3: volume.publish refused with missing_blob though every blob of {} is \
                         stored",
                        value_text(&new)
                    ));
                }
            }
            _ => return fail(format!("volume.publish failed: {r}")),
        }
        self.expect_unchanged(v, "a refused volume.publish")
    }

    /// Are all holders of the mode opposing `mode` dead?
    pub(super) fn only_dead(&self, v: usize, mode: Mode) -> bool {
        self.vols[v].spec.holders().values().filter(|h| h.mode == other(mode)).all(|h| !h.alive)
    }

    pub(super) fn check_conflict(&mut self, v: usize, mode: Mode, what: &str) -> Result<(), Stop> {
        if !conflict_justified(&self.vols[v].spec, mode) {
            return fail(format!(
                "VOL-6: {what} answered mode_conflict though nobody (alive, or dead and not yet \
                 released) holds {} on volume {v}",
                mode_name(other(mode))
            ));
        }
        Ok(())
    }

    pub(super) fn sync(&mut self, dst: usize) -> Result<(), Stop> {
        let n = self.vols.len();
        if n < 2 {
            return Ok(());
        }
        let src = (dst + 1 + self.rng.below(n as u64 - 1) as usize) % n;
        let before = self.model(dst);
        let v_src = self.vols[src].spec.cell().clone();
        let src_reach = reach(&v_src).unwrap_or_default();
        let p = self.pick_proc(dst);
        self.note(format!(
            "volume {dst} process {p}: volume.sync from volume {src} ({})",
            value_text(&v_src)
        ));
        let from = self.vols[src].dir.display().to_string();
        let r = self.call(dst, p, json!({"type": "volume.sync", "from": from}))?;
        if !is_ok(&r) {
            if error_kind(&r) == "mode_conflict" {
                self.check_conflict(dst, Mode::Expand, "volume.sync")?;
                return self.expect_unchanged(dst, "a volume.sync refused with mode_conflict");
            }
            return fail(format!("volume.sync failed (the source is consistent): {r}"));
        }
        let after = self.observe(dst)?;
        let h = self.holder();
        self.sync_steps(dst, h, &before, &after, &v_src)?;
        let spec = &mut self.vols[dst].spec;
        apply(spec, VolumeStep::EndExpand { holder: h }).map_err(Stop::Fail)?;
        let published = r.get("published") == Some(&Value::Bool(true));
        if after.cell != v_src {
            return fail(format!(
                "volume.sync answered ok but volume {dst} holds {}, not the source's value {}",
                value_text(&after.cell),
                value_text(&v_src)
            ));
        }
        if published != (before.cell != v_src) {
            return fail(format!(
                "volume.sync answered published={published}; the cell went from {} to {}",
                value_text(&before.cell),
                value_text(&after.cell)
            ));
        }
        let want: BTreeSet<Blob> = before.store.union(&src_reach).copied().collect();
        if after.store != want {
            return fail(format!(
                "volume.sync: volume {dst}'s store should be its old blobs plus those the source \
                 value reaches, but it {}",
                describe_change(&Seen { cell: after.cell.clone(), store: want }, &after)
            ));
        }
        Ok(())
    }

    /// The steps of a sync on `dst` (holder `h`) that moved the volume from `before` to
    /// `after`: Expand, a post per new blob, a publish if the cell moved. Deletions and a value
    /// other than the source's are failures.
    pub(super) fn sync_steps(
        &mut self,
        dst: usize,
        h: HolderId,
        before: &Seen,
        after: &Seen,
        v_src: &[u8],
    ) -> Result<(), Stop> {
        let spec = &mut self.vols[dst].spec;
        begin(spec, h, Mode::Expand, "volume.sync").map_err(Stop::Fail)?;
        if let Some(b) = before.store.difference(&after.store).next() {
            return fail(format!("a volume.sync deleted blob {} from volume {dst}", short(b)));
        }
        for b in after.store.difference(&before.store) {
            apply(spec, VolumeStep::PostBlob { holder: h, blob: *b }).map_err(Stop::Fail)?;
        }
        if after.cell != before.cell {
            if after.cell != v_src {
                return fail(format!(
                    "a volume.sync set volume {dst}'s cell to {}, neither its old value nor the \
                     source's",
                    value_text(&after.cell)
                ));
            }
            let step = VolumeStep::Publish {
                holder: h,
                expected: before.cell.clone(),
                new: after.cell.clone(),
                new_reachable: reach(&after.cell).unwrap_or_default(),
            };
            apply(spec, step).map_err(Stop::Fail)?;
        }
        Ok(())
    }

    pub(super) fn cleanup(&mut self, v: usize) -> Result<(), Stop> {
        let before = self.model(v);
        let p = self.pick_proc(v);
        self.note(format!("volume {v} process {p}: volume.cleanup"));
        let r = self.call(v, p, json!({"type": "volume.cleanup"}))?;
        if !is_ok(&r) {
            if error_kind(&r) == "mode_conflict" {
                self.check_conflict(v, Mode::Contract, "volume.cleanup")?;
                return self.expect_unchanged(v, "a volume.cleanup refused with mode_conflict");
            }
            return fail(format!("volume.cleanup failed: {r}"));
        }
        let after = self.observe(v)?;
        let h = self.holder();
        self.cleanup_steps(v, h, &before, &after)?;
        apply(&mut self.vols[v].spec, VolumeStep::EndContract { holder: h }).map_err(Stop::Fail)?;
        let keep = reach(&before.cell).unwrap_or_default();
        let want: BTreeSet<Blob> = before.store.intersection(&keep).copied().collect();
        if after.store != want {
            return fail(format!(
                "volume.cleanup (specs/volume.md §5) must leave exactly the blobs the cell reaches, \
                 but volume {v}'s store {}",
                describe_change(&Seen { cell: after.cell.clone(), store: want }, &after)
            ));
        }
        let deleted = r.get("deleted").and_then(Value::as_u64);
        let n = before.store.difference(&after.store).count() as u64;
        if deleted != Some(n) {
            return fail(format!("volume.cleanup answered {r} but deleted {n} blobs"));
        }
        Ok(())
    }

    pub(super) fn cleanup_steps(
        &mut self,
        v: usize,
        h: HolderId,
        before: &Seen,
        after: &Seen,
    ) -> Result<(), Stop> {
        let spec = &mut self.vols[v].spec;
        begin(spec, h, Mode::Contract, "volume.cleanup").map_err(Stop::Fail)?;
        if after.cell != before.cell {
            return fail(format!(
                "a volume.cleanup changed volume {v}'s cell from {} to {} (only expand moves it)",
                value_text(&before.cell),
                value_text(&after.cell)
            ));
        }
        if let Some(b) = after.store.difference(&before.store).next() {
            return fail(format!("a volume.cleanup added blob {} to volume {v}", short(b)));
        }
        for b in before.store.difference(&after.store) {
            apply(spec, VolumeStep::DeleteBlob { holder: h, blob: *b }).map_err(Stop::Fail)?;
        }
        Ok(())
    }

    pub(super) fn begin_mode(&mut self, v: usize) -> Result<(), Stop> {
        let p = self.pick_proc(v);
        if self.vols[v].procs[p].holding.is_some() {
            return self.end_mode(v);
        }
        let mode = if self.rng.coin() { Mode::Expand } else { Mode::Contract };
        self.note(format!("volume {v} process {p}: volume.begin {}", mode_name(mode)));
        let r = self.call(v, p, json!({"type": "volume.begin", "mode": mode_name(mode)}))?;
        if is_ok(&r) {
            let h = self.holder();
            begin(&mut self.vols[v].spec, h, mode, "volume.begin").map_err(Stop::Fail)?;
            self.vols[v].procs[p].holding = Some((h, mode));
        } else if error_kind(&r) == "mode_conflict" {
            self.check_conflict(v, mode, "volume.begin")?;
        } else {
            return fail(format!("volume.begin failed: {r}"));
        }
        self.expect_unchanged(v, "volume.begin")
    }

    pub(super) fn end_mode(&mut self, v: usize) -> Result<(), Stop> {
        let Some(p) =
            (0..self.vols[v].procs.len()).find(|p| self.vols[v].procs[*p].holding.is_some())
        else {
            return Ok(());
        };
        self.note(format!("volume {v} process {p}: volume.end"));
        let r = self.call(v, p, json!({"type": "volume.end"}))?;
        if !is_ok(&r) {
            return fail(format!("volume.end failed: {r}"));
        }
        if let Some((h, mode)) = self.vols[v].procs[p].holding.take() {
            apply(&mut self.vols[v].spec, end_step(h, mode)).map_err(Stop::Fail)?;
        }
        self.expect_unchanged(v, "volume.end")
    }

    /// Sends a sync, cleanup or publish and kills the process while it runs (after a seeded
    /// delay); the steps it took are whatever the observation shows.
    pub(super) fn op_killed(&mut self, v: usize, p: usize) -> Result<(), Stop> {
        let before = self.model(v);
        let n = self.vols.len();
        let (req, kind, v_src) = match self.rng.below(3) {
            0 if n > 1 => {
                let src = (v + 1 + self.rng.below(n as u64 - 1) as usize) % n;
                let from = self.vols[src].dir.display().to_string();
                (
                    json!({"type": "volume.sync", "from": from}),
                    "sync",
                    self.vols[src].spec.cell().clone(),
                )
            }
            1 => (json!({"type": "volume.cleanup"}), "cleanup", Vec::new()),
            _ => {
                let new = self.random_value(v);
                let req = json!({"type": "volume.publish", "expected": hex(&before.cell), "new": hex(&new)});
                (req, "publish", new)
            }
        };
        let delay_us = self.rng.below(3000);
        self.note(format!("volume {v} process {p}: volume.{kind}, killed after {delay_us} µs"));
        self.proc(v, p)?.send(req)?;
        std::thread::sleep(Duration::from_micros(delay_us));
        self.open += 1;
        // The mode the process held (volume.begin) was alive while the operation ran: its
        // steps are judged first, then both holders die.
        let held = self.kill_process(v, p);
        let after = self.observe(v)?;
        let h = self.holder();
        if after == before {
            // It may not have begun at all; if it did, its mode is held by a dead holder.
            let mode = if kind == "cleanup" { Mode::Contract } else { Mode::Expand };
            if !conflict_justified(&self.vols[v].spec, mode) {
                apply(&mut self.vols[v].spec, begin_step(h, mode)).map_err(Stop::Fail)?;
                self.crash(v, h)?;
            }
        } else {
            match kind {
                "cleanup" => self.cleanup_steps(v, h, &before, &after)?,
                _ => self.sync_steps(v, h, &before, &after, &v_src)?,
            }
            self.crash(v, h)?;
        }
        match held {
            Some(b) => self.crash(v, b),
            None => Ok(()),
        }
    }

    /// The end of a seed: every process killed; a fresh one per volume must clean up (retrying
    /// while dead holders' modes are released) and read back every reachable blob, verified.
    pub(super) fn finish(&mut self) -> Result<(), Stop> {
        for v in 0..self.vols.len() {
            for p in 0..self.vols[v].procs.len() {
                self.kill(v, p)?;
            }
        }
        self.note("every process killed".to_owned());
        for v in 0..self.vols.len() {
            let mut attempt = 0;
            loop {
                attempt += 1;
                let r = self.call(v, 0, json!({"type": "volume.cleanup"}))?;
                if is_ok(&r) {
                    let before = self.model(v);
                    let after = self.observe(v)?;
                    let h = self.holder();
                    self.cleanup_steps(v, h, &before, &after)?;
                    apply(&mut self.vols[v].spec, VolumeStep::EndContract { holder: h })
                        .map_err(Stop::Fail)?;
                    break;
                }
                if error_kind(&r) != "mode_conflict" || attempt >= FINAL_CLEANUP_ATTEMPTS {
                    return fail(format!(
                        "VOL-4: with every process dead, volume.cleanup of volume {v} still fails \
                         after {attempt} attempts: {r} (a dead holder must not block a volume)"
                    ));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            for b in reach(&self.vols[v].spec.cell().clone()).unwrap_or_default() {
                let r = self.call(v, 0, json!({"type": "store.get", "hash": hex(&b)}))?;
                let data = r.get("data").and_then(Value::as_str).and_then(|s| unhex(s).ok());
                if data.as_deref().map(|d| *blake3::hash(d).as_bytes()) != Some(b) {
                    return fail(format!(
                        "VOL-1: volume {v}'s reachable blob {} does not read back verified: {r}",
                        short(&b)
                    ));
                }
            }
        }
        Ok(())
    }
}
