//! The sector model in its own words: counterexample steps and state summaries.

use super::{Sector, SectorAction, SectorModel, SectorState};
use crate::check::Explain;

fn show_sector(s: Sector) -> String {
    match s {
        Sector::Empty => "empty".into(),
        Sector::ZoneHeader(e) => format!("zone header e{e}"),
        Sector::FreeHeader(e) => format!("free header e{e}"),
        Sector::Record { key, seq, epoch } => format!("k{key}=w{seq} e{epoch}"),
    }
}

impl SectorModel {
    fn where_is(&self, sector: u8) -> String {
        let per_zone = self.slots + 1;
        let (zone, offset) = (sector / per_zone, sector % per_zone);
        if offset == 0 {
            format!("zone {zone} header")
        } else {
            format!("zone {zone} slot {}", offset - 1)
        }
    }

    fn show_pending(&self, s: &SectorState, mask: Option<u32>) -> Vec<String> {
        s.pending
            .iter()
            .enumerate()
            .filter(|(i, _)| mask.is_none_or(|m| m & (1 << i) != 0))
            .map(|(_, (sector, c))| format!("{}: {}", self.where_is(*sector), show_sector(*c)))
            .collect()
    }

    fn describe_write(&self, s: &SectorState, key: u8) -> String {
        let opens = s.head.is_none_or(|h| h.next_slot >= self.slots);
        let mut text = String::new();
        if opens {
            let zone = (0..self.zones).find(|z| s.zone_epochs[usize::from(*z)].is_none());
            let how = if self.header_first() {
                "header flushed first"
            } else {
                "header submitted, NOT flushed"
            };
            match zone {
                Some(z) => {
                    text.push_str(&format!("open zone {z} with epoch e{} ({how}); ", s.next_epoch))
                }
                None => text.push_str("no free zone; "),
            }
        }
        text.push_str(&format!("write k{key}=w{} (acknowledged, not flushed)", s.next_seq));
        text
    }
}

impl Explain for SectorModel {
    fn name(&self) -> &'static str {
        "sector"
    }

    fn describe_step(&self, s: &SectorState, action: &SectorAction) -> String {
        let mut text = match action {
            SectorAction::Write(k) => self.describe_write(s, *k),
            SectorAction::Flush => format!("flush: {} pending writes durable", s.pending.len()),
            SectorAction::Free(z) => format!(
                "free zone {z}: flush, then free header e{} durable",
                s.zone_epochs[usize::from(*z)].unwrap_or(0)
            ),
            SectorAction::Crash(mask) => {
                let landed = self.show_pending(s, Some(*mask));
                let lost = self.show_pending(s, Some(!*mask));
                format!(
                    "power cut: landed [{}], lost [{}]; recovery",
                    landed.join(", "),
                    lost.join(", ")
                )
            }
        };
        if let Some(next) = self.next(s, *action) {
            if let SectorAction::Crash(_) = action {
                text.push_str(&format!(" → next epoch e{}", next.next_epoch));
            }
            if s.reused_epoch.is_none()
                && let Some(e) = next.reused_epoch
            {
                text.push_str(&format!(" — SEC-4: epoch e{e} already reached the device"));
            }
            if s.lost.is_none()
                && let Some(v) = &next.lost
            {
                text.push_str(&format!(" — {v}"));
            }
        }
        text
    }

    fn describe_state(&self, s: &SectorState) -> String {
        let device: Vec<String> = s
            .durable
            .iter()
            .enumerate()
            .filter(|(_, c)| **c != Sector::Empty)
            .map(|(i, c)| {
                format!(
                    "{}: {}",
                    self.where_is(u8::try_from(i).unwrap_or(u8::MAX)),
                    show_sector(*c)
                )
            })
            .collect();
        let keys: Vec<String> = (0..self.keys)
            .map(|k| match s.spec.current(u64::from(k)) {
                Some(v) => format!("k{k}=w{}", v.first().copied().unwrap_or(0)),
                None => format!("k{k} absent"),
            })
            .collect();
        let mut text = format!(
            "durable [{}]; pending [{}]; next epoch e{}; spec holds {}",
            device.join(", "),
            self.show_pending(s, None).join(", "),
            s.next_epoch,
            keys.join(", ")
        );
        if let Some(e) = s.reused_epoch {
            text.push_str(&format!("; SEC-4 broken: e{e} handed out again"));
        }
        if let Some(v) = &s.lost {
            text.push_str(&format!("; {v}"));
        }
        text
    }

    fn representative(&self, s: &SectorState) -> SectorState {
        s.clone()
    }
}
