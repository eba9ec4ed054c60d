//! `CasRegister`: the sequential meaning of a cell (`specs/cells.md`, CELL-1, CELL-2).
//!
//! A cell holds one value; `Read` returns it; `Cas { expected, new }` replaces it with `new` only
//! if it equals `expected`, and always returns the value the cell holds afterwards. A lost swap
//! is an ordinary outcome (CELL-2), never an error. Implementations must be linearizable
//! against this register (CELL-1): the `cell` model checks a retrying client/server protocol
//! against it with stateright's `LinearizabilityTester`, and the simulator does the same with
//! real cells. Never does I/O.

use stateright::semantics::SequentialSpec;

/// An operation on a cell.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CasOp<V> {
    /// Return the current value.
    Read,
    /// Replace the value with `new` if it equals `expected`.
    Cas {
        /// The value the caller believes the cell holds.
        expected: V,
        /// The value to install.
        new: V,
    },
}

/// What an operation on a cell returns.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CasRet<V> {
    /// The value read.
    Read(V),
    /// The outcome of a compare-and-swap (mirrors `cellar::cell::CasOutcome`).
    Cas {
        /// True if the cell held `expected` and now holds `new` (CELL-2: false is not an error).
        swapped: bool,
        /// The cell's value after the operation.
        current: V,
    },
}

/// The reference register: one value, read and compare-and-swap.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CasRegister<V> {
    value: V,
}

impl<V: Clone + PartialEq> CasRegister<V> {
    /// A register holding `initial` (a never-written cell holds the empty value).
    pub fn new(initial: V) -> Self {
        Self { value: initial }
    }

    /// The current value.
    pub fn value(&self) -> &V {
        &self.value
    }

    /// `Read`: the current value.
    pub fn read(&self) -> V {
        self.value.clone()
    }

    /// `Cas`: swap if the value equals `expected`; report the value held afterwards (CELL-2).
    pub fn cas(&mut self, expected: &V, new: &V) -> CasRet<V> {
        let swapped = self.value == *expected;
        if swapped {
            self.value = new.clone();
        }
        debug_assert!(!swapped || self.value == *new, "CELL-2: a swap installs `new`");
        CasRet::Cas { swapped, current: self.value.clone() }
    }

    /// Applies any operation.
    pub fn apply(&mut self, op: &CasOp<V>) -> CasRet<V> {
        match op {
            CasOp::Read => CasRet::Read(self.read()),
            CasOp::Cas { expected, new } => self.cas(expected, new),
        }
    }
}

impl<V: Clone + PartialEq> SequentialSpec for CasRegister<V> {
    type Op = CasOp<V>;
    type Ret = CasRet<V>;

    fn invoke(&mut self, op: &CasOp<V>) -> CasRet<V> {
        self.apply(op)
    }

    fn is_valid_step(&mut self, op: &CasOp<V>, ret: &CasRet<V>) -> bool {
        // Avoids cloning on the hot path of the linearizability search.
        match (op, ret) {
            (CasOp::Read, CasRet::Read(v)) => self.value == *v,
            (CasOp::Cas { expected, new }, CasRet::Cas { swapped, current }) => {
                let would_swap = self.value == *expected;
                if would_swap {
                    self.value = new.clone();
                }
                would_swap == *swapped && self.value == *current
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stateright::semantics::{ConsistencyTester, LinearizabilityTester};

    #[test]
    fn cas_swaps_only_on_match() {
        // CELL-2: a lost swap reports the current value and changes nothing.
        let mut r = CasRegister::new(b"".to_vec());
        assert_eq!(
            r.cas(&b"x".to_vec(), &b"y".to_vec()),
            CasRet::Cas { swapped: false, current: b"".to_vec() }
        );
        assert_eq!(
            r.cas(&b"".to_vec(), &b"a".to_vec()),
            CasRet::Cas { swapped: true, current: b"a".to_vec() }
        );
        assert_eq!(r.apply(&CasOp::Read), CasRet::Read(b"a".to_vec()));
    }

    #[test]
    fn sequential_spec_rejects_wrong_returns() {
        let mut r = CasRegister::new(0u8);
        assert!(r.is_valid_step(
            &CasOp::Cas { expected: 0, new: 1 },
            &CasRet::Cas { swapped: true, current: 1 }
        ));
        // Swapping twice from 0 is impossible: the second must lose (the
        // `cell:cas-without-compare` mutant returns exactly this).
        assert!(!r.is_valid_step(
            &CasOp::Cas { expected: 0, new: 2 },
            &CasRet::Cas { swapped: true, current: 2 }
        ));
        assert!(!CasRegister::new(0u8).is_valid_step(&CasOp::Read, &CasRet::Read(1)));
        // A read of the value held is a valid step; a lost swap must report the value held,
        // and a swap that should have lost must not claim the value it failed to write.
        assert!(CasRegister::new(0u8).is_valid_step(&CasOp::Read, &CasRet::Read(0)));
        let lost = CasOp::Cas { expected: 5, new: 1 };
        assert!(
            CasRegister::new(0u8).is_valid_step(&lost, &CasRet::Cas { swapped: false, current: 0 })
        );
        assert!(
            !CasRegister::new(0u8)
                .is_valid_step(&lost, &CasRet::Cas { swapped: false, current: 7 })
        );
        assert!(
            !CasRegister::new(0u8).is_valid_step(&lost, &CasRet::Cas { swapped: true, current: 0 })
        );
    }

    #[test]
    fn linearizability_tester_uses_register() {
        // CELL-1: two overlapping swaps from the same expected value cannot both win.
        let mut t = LinearizabilityTester::new(CasRegister::new(0u8));
        t.on_invoke(0, CasOp::Cas { expected: 0, new: 1 }).unwrap();
        t.on_invoke(1, CasOp::Cas { expected: 0, new: 2 }).unwrap();
        t.on_return(0, CasRet::Cas { swapped: true, current: 1 }).unwrap();
        let mut ok = t.clone();
        ok.on_return(1, CasRet::Cas { swapped: false, current: 1 }).unwrap();
        assert!(ok.serialized_history().is_some());
        t.on_return(1, CasRet::Cas { swapped: true, current: 2 }).unwrap();
        assert!(t.serialized_history().is_none());
    }
}
