//! The cells' histories and their judge (CELL-1): every operation a cell client completes, with
//! simulated invoke and return times, in a stateright `LinearizabilityTester` over the
//! executable spec's `CasRegister`, behind a polynomial screen that needs no search.

use cellar_model::spec::{CasOp, CasRegister, CasRet};
use stateright::semantics::{ConsistencyTester, LinearizabilityTester};
use std::collections::BTreeMap;

/// One operation of a cell's history, with simulated invoke and return times.
#[derive(Debug, Clone)]
struct Entry {
    invoked_us: u64,
    returned_us: Option<u64>,
    op: CasOp<Vec<u8>>,
    ret: Option<CasRet<Vec<u8>>>,
}

/// Where an invoked operation sits, to record its return.
#[derive(Debug, Clone, Copy)]
pub struct Invoked {
    cell: u32,
    entry: usize,
    thread: u32,
}

/// Every cell's history.
pub struct Histories {
    entries: Vec<Vec<Entry>>,
    testers: Vec<LinearizabilityTester<u32, CasRegister<Vec<u8>>>>,
}

impl Histories {
    /// Empty histories of `cells` cells, each starting empty.
    pub fn new(cells: u32) -> Histories {
        Histories {
            entries: (0..cells).map(|_| Vec::new()).collect(),
            testers: (0..cells)
                .map(|_| LinearizabilityTester::new(CasRegister::new(Vec::new())))
                .collect(),
        }
    }

    /// Number of cells.
    pub fn cells(&self) -> u32 {
        self.entries.len() as u32
    }

    /// History thread `thread` invokes `op` on `cell` at `now_us`.
    pub fn invoke(&mut self, cell: u32, thread: u32, op: &CasOp<Vec<u8>>, now_us: u64) -> Invoked {
        let mut entry = 0;
        if let Some(h) = self.entries.get_mut(cell as usize) {
            h.push(Entry { invoked_us: now_us, returned_us: None, op: op.clone(), ret: None });
            entry = h.len() - 1;
        }
        if let Some(t) = self.testers.get_mut(cell as usize) {
            let _ = t.on_invoke(thread, op.clone());
        }
        Invoked { cell, entry, thread }
    }

    /// The operation `at` returns `ret` at `now_us`.
    pub fn ret(&mut self, at: Invoked, ret: CasRet<Vec<u8>>, now_us: u64) {
        if let Some(e) = self.entries.get_mut(at.cell as usize).and_then(|h| h.get_mut(at.entry)) {
            e.returned_us = Some(now_us);
            e.ret = Some(ret.clone());
        }
        if let Some(t) = self.testers.get_mut(at.cell as usize) {
            let _ = t.on_return(at.thread, ret);
        }
    }

    /// CELL-1: every cell's history is linearizable against `CasRegister`.
    ///
    /// First a polynomial screen that needs no search because values are unique (each value
    /// is installed by one operation): a value swapped away twice, a value read before the
    /// operation installing it was invoked, a value read after a completed swap replaced it,
    /// or a value nobody wrote, cannot be linearized. Only histories passing the screen go to
    /// stateright's `LinearizabilityTester`, whose search is exponential on histories that
    /// are not linearizable. The screen only ever says "not linearizable" when that is true.
    pub fn check_linearizable(&self) -> Result<(), String> {
        for (cell, h) in self.entries.iter().enumerate() {
            screen(h).map_err(|e| format!("cell {cell}: {e}"))?;
        }
        for (cell, t) in self.testers.iter().enumerate() {
            if t.serialized_history().is_none() {
                return Err(format!(
                    "cell {cell}: history of {} operations is not linearizable: {t:?}",
                    t.len()
                ));
            }
        }
        Ok(())
    }
}

/// The unique-value screen described at [`Histories::check_linearizable`].
fn screen(h: &[Entry]) -> Result<(), String> {
    // Who installs each value, and which completed swaps consume each value.
    let mut installer: BTreeMap<&[u8], &Entry> = BTreeMap::new();
    let mut consumed: BTreeMap<&[u8], &Entry> = BTreeMap::new();
    for e in h {
        if let CasOp::Cas { new, .. } = &e.op {
            installer.insert(new.as_slice(), e);
        }
        if let (CasOp::Cas { expected, .. }, Some(CasRet::Cas { swapped: true, .. })) =
            (&e.op, &e.ret)
            && let Some(first) = consumed.insert(expected.as_slice(), e)
        {
            return Err(format!(
                "two completed swaps from the same value {}: {:?} and {:?}",
                hex::encode(expected),
                first.op,
                e.op
            ));
        }
    }
    for e in h {
        let (Some(ret), Some(returned)) = (&e.ret, e.returned_us) else { continue };
        let seen: &[u8] = match ret {
            CasRet::Read(v) | CasRet::Cas { swapped: false, current: v } => v,
            CasRet::Cas { swapped: true, .. } => continue,
        };
        if !seen.is_empty() {
            match installer.get(seen) {
                None => {
                    return Err(format!(
                        "{:?} returned {} which no operation wrote",
                        e.op,
                        hex::encode(seen)
                    ));
                }
                Some(w) if w.invoked_us > returned => {
                    return Err(format!(
                        "{:?} returned {} before its writer was invoked",
                        e.op,
                        hex::encode(seen)
                    ));
                }
                _ => {}
            }
        }
        if let Some(c) = consumed.get(seen)
            && c.returned_us.is_some_and(|t| t < e.invoked_us)
        {
            return Err(format!(
                "{:?} invoked after {:?} had replaced {} returned it (stale: a completed swap was lost)",
                e.op,
                c.op,
                hex::encode(seen)
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cas(e: u8, n: u8) -> CasOp<Vec<u8>> {
        CasOp::Cas { expected: if e == 0 { vec![] } else { vec![e] }, new: vec![n] }
    }

    /// Thread `t` runs `op` on cell 0 from `t0` to `t1` and gets `ret`.
    fn record(
        h: &mut Histories,
        t: u32,
        op: CasOp<Vec<u8>>,
        ret: CasRet<Vec<u8>>,
        t0: u64,
        t1: u64,
    ) {
        let at = h.invoke(0, t, &op, t0);
        h.ret(at, ret, t1);
    }

    #[test]
    fn linearizable_history_passes() {
        let mut h = Histories::new(1);
        record(&mut h, 0, cas(0, 1), CasRet::Cas { swapped: true, current: vec![1] }, 0, 10);
        record(&mut h, 1, cas(1, 2), CasRet::Cas { swapped: true, current: vec![2] }, 20, 30);
        record(&mut h, 0, CasOp::Read, CasRet::Read(vec![2]), 40, 50);
        assert!(h.check_linearizable().is_ok());
    }

    #[test]
    fn double_swap_and_stale_read_are_caught() {
        // CELL-1: two completed swaps from the same value (a lost acknowledged swap).
        let mut h = Histories::new(1);
        record(&mut h, 0, cas(0, 1), CasRet::Cas { swapped: true, current: vec![1] }, 0, 10);
        record(&mut h, 1, cas(0, 2), CasRet::Cas { swapped: true, current: vec![2] }, 20, 30);
        assert!(h.check_linearizable().unwrap_err().contains("two completed swaps"));
        // A read after a completed swap still returning the old value.
        let mut h = Histories::new(1);
        record(&mut h, 0, cas(0, 1), CasRet::Cas { swapped: true, current: vec![1] }, 0, 10);
        record(&mut h, 1, CasOp::Read, CasRet::Read(vec![]), 20, 30);
        assert!(h.check_linearizable().is_err());
    }

    #[test]
    fn stateright_decides_what_the_screen_lets_through() {
        // Overlapping swap and read: the read may see either value.
        let mut h = Histories::new(1);
        let w = h.invoke(0, 0, &cas(0, 1), 0);
        let r = h.invoke(0, 1, &CasOp::Read, 1);
        h.ret(r, CasRet::Read(vec![]), 2);
        h.ret(w, CasRet::Cas { swapped: true, current: vec![1] }, 3);
        assert!(h.check_linearizable().is_ok());
        // A swap reporting a current value it did not install cannot be linearized.
        let mut h = Histories::new(1);
        record(&mut h, 0, cas(0, 1), CasRet::Cas { swapped: true, current: vec![9] }, 0, 10);
        assert!(h.check_linearizable().is_err(), "stateright rejects a wrong return");
    }
}
