//! `SpaceSpec`: what a space of marks holds after a sequence of operations (`specs/marks.md`
//! MARK-4, MARK-5, MARK-6, MARK-8).
//!
//! A plain map name → mark (creation time, salt, value), nothing else: no map nodes, no cells,
//! no blobs. The rules, restated so this file reads alone:
//!
//! - `Create(n, salt, t)`: `AlreadyExists` if `n` is taken; else `n` ↦ (t, salt, ε).
//! - `Delete(n)`: `NotFound` if absent; else removes it.
//! - `Rename(a, b)`: `NotFound` if `a` is absent; `a == b` changes nothing; `AlreadyExists` if
//!   `b` is taken; else `b` ↦ `a`'s mark unchanged and `a` is gone.
//! - `Fork(a, b, t)`: `NotFound` if `a` is absent; `AlreadyExists` if `b` is taken; else
//!   `b` ↦ (t, `a`'s salt, `a`'s value).
//! - `Cas(n, expected, new)`: `NotFound` if absent; if `n`'s value equals `expected` it becomes
//!   `new` (swapped), else nothing changes; either way the value after is returned.
//! - `Cleanup`: changes no mark (MARK-8: every mark's value still reads back and still has every
//!   blob it needs — the harness checks the blobs, the spec the values).
//!
//! Names and values are opaque here; time and salts arrive in the operations.

use std::collections::BTreeMap;

/// One mark as the spec sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecMark {
    /// Creation time, ns since the epoch.
    pub created_ns: i64,
    /// Salt.
    pub salt: [u8; 32],
    /// The mark volume's cell value.
    pub value: Vec<u8>,
}

/// One operation on a space.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SpaceOp {
    /// Create an empty mark.
    Create(String, [u8; 32], i64),
    /// Remove a mark.
    Delete(String),
    /// Rename a mark.
    Rename(String, String),
    /// Fork a mark: same salt and value, own creation time.
    Fork(String, String, i64),
    /// Compare-and-swap a mark's value.
    Cas(String, Vec<u8>, Vec<u8>),
    /// Clean up the space's store.
    Cleanup,
}

/// Why an operation was refused (the implementation must refuse with the same kind).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SpaceReject {
    /// No such mark.
    NotFound,
    /// The name is taken.
    AlreadyExists,
}

/// What an accepted operation returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SpaceRet {
    /// Nothing to report.
    Done,
    /// A compare-and-swap: whether it swapped and the value after.
    Cas {
        /// Did it swap?
        swapped: bool,
        /// The mark's value after the operation.
        current: Vec<u8>,
    },
}

/// The executable spec of a space.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SpaceSpec {
    marks: BTreeMap<String, SpecMark>,
}

impl SpaceSpec {
    /// An empty space.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every mark, in byte order of name.
    pub fn marks(&self) -> &BTreeMap<String, SpecMark> {
        &self.marks
    }

    /// Applies one operation, or refuses it leaving the space unchanged.
    pub fn apply(&mut self, op: &SpaceOp) -> Result<SpaceRet, SpaceReject> {
        match op {
            SpaceOp::Create(n, salt, t) => {
                self.absent(n)?;
                let mark = SpecMark { created_ns: *t, salt: *salt, value: Vec::new() };
                self.marks.insert(n.clone(), mark);
            }
            SpaceOp::Delete(n) => {
                self.marks.remove(n).ok_or(SpaceReject::NotFound)?;
            }
            SpaceOp::Rename(a, b) => {
                self.present(a)?;
                if a != b {
                    self.absent(b)?;
                    let m = self.marks.remove(a).ok_or(SpaceReject::NotFound)?;
                    self.marks.insert(b.clone(), m);
                }
            }
            SpaceOp::Fork(a, b, t) => {
                let origin = self.present(a)?.clone();
                self.absent(b)?;
                self.marks.insert(b.clone(), SpecMark { created_ns: *t, ..origin });
            }
            SpaceOp::Cas(n, expected, new) => {
                let m = self.marks.get_mut(n).ok_or(SpaceReject::NotFound)?;
                let swapped = m.value == *expected;
                if swapped {
                    m.value.clone_from(new);
                }
                return Ok(SpaceRet::Cas { swapped, current: m.value.clone() });
            }
            SpaceOp::Cleanup => {}
        }
        Ok(SpaceRet::Done)
    }

    fn present(&self, n: &str) -> Result<&SpecMark, SpaceReject> {
        self.marks.get(n).ok_or(SpaceReject::NotFound)
    }

    fn absent(&self, n: &str) -> Result<(), SpaceReject> {
        if self.marks.contains_key(n) { Err(SpaceReject::AlreadyExists) } else { Ok(()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fork_keeps_salt_and_value_rename_keeps_everything() {
        let mut s = SpaceSpec::new();
        s.apply(&SpaceOp::Create("a".into(), [1; 32], 5)).unwrap();
        let cas = s.apply(&SpaceOp::Cas("a".into(), vec![], vec![9])).unwrap();
        assert_eq!(cas, SpaceRet::Cas { swapped: true, current: vec![9] });
        s.apply(&SpaceOp::Fork("a".into(), "b".into(), 7)).unwrap();
        assert_eq!(s.marks()["b"], SpecMark { created_ns: 7, salt: [1; 32], value: vec![9] });
        assert_eq!(
            s.apply(&SpaceOp::Rename("a".into(), "b".into())),
            Err(SpaceReject::AlreadyExists)
        );
        s.apply(&SpaceOp::Rename("a".into(), "c".into())).unwrap();
        assert_eq!(s.marks()["c"].created_ns, 5);
        assert!(!s.marks().contains_key("a"));
        assert_eq!(s.apply(&SpaceOp::Delete("a".into())), Err(SpaceReject::NotFound));
        let lost = s.apply(&SpaceOp::Cas("c".into(), vec![], vec![1])).unwrap();
        assert_eq!(lost, SpaceRet::Cas { swapped: false, current: vec![9] });
    }
}
