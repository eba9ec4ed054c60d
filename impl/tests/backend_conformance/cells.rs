//! The cell half of the suite: each function takes a fixture and checks one CELL-* behaviour.

use super::fixtures::CellFixture;
use cellar::storage::cell::{Cell, CellError};
use std::sync::{Arc, Barrier};

/// A cell never written reads as the empty value; a swap expecting anything else loses and
/// reports the empty value (CELL-2).
pub fn empty_state(f: &dyn CellFixture) {
    let c = f.handle();
    assert_eq!(c.read().unwrap(), b"");
    let o = c.cas(b"not there", b"x").unwrap();
    assert!(!o.swapped);
    assert_eq!(o.current, b"");
    assert_eq!(c.read().unwrap(), b"", "a lost swap changes nothing");
}

/// CELL-1/2: swaps only on an exact match; a lost swap returns the current value, which differs
/// from `expected`; writing the empty value returns the cell to the empty state.
pub fn cas_semantics(f: &dyn CellFixture) {
    let c = f.handle();
    let o = c.cas(b"", b"alpha").unwrap();
    assert!(o.swapped);
    assert_eq!(o.current, b"alpha");
    assert_eq!(c.read().unwrap(), b"alpha");
    let o = c.cas(b"", b"beta").unwrap();
    assert!(!o.swapped, "expected empty, cell holds alpha");
    assert_eq!(o.current, b"alpha");
    let o = c.cas(b"alph", b"beta").unwrap();
    assert!(!o.swapped, "a prefix is not a match");
    assert_eq!(o.current, b"alpha");
    assert!(c.cas(b"alpha", b"beta").unwrap().swapped);
    // Another handle sees the swap (a second connection, file handle or engine client).
    assert_eq!(f.handle().read().unwrap(), b"beta");
    assert!(c.cas(b"beta", b"").unwrap().swapped);
    assert_eq!(c.read().unwrap(), b"");
    assert!(c.cas(b"", b"gamma").unwrap().swapped, "empty again after writing the empty value");
    let binary: Vec<u8> = (0..=255u8).collect();
    assert!(c.cas(b"gamma", &binary).unwrap().swapped);
    assert_eq!(c.read().unwrap(), binary, "every byte value round-trips");
}

/// CELL-3: a value of exactly the maximum is accepted; one byte more is refused before any
/// change.
pub fn size_limits(f: &dyn CellFixture) {
    let c = f.handle();
    let max = c.max_size_bytes();
    let full = vec![0xa5; max];
    assert!(c.cas(b"", &full).unwrap().swapped);
    let over = vec![0x5a; max + 1];
    match c.cas(&full, &over) {
        Err(CellError::TooLarge { size_bytes, max_bytes }) => {
            assert_eq!((size_bytes, max_bytes), (max + 1, max));
        }
        other => panic!("{}: oversized swap gave {other:?}", f.name()),
    }
    assert_eq!(c.read().unwrap(), full, "CELL-3: nothing changed");
}

/// CELL-1 under contention: threads, each with its own handle, race to swap from the same
/// expected value; in every round exactly one wins and every loser reports the winner's value.
pub fn concurrent_cas(f: &dyn CellFixture) {
    const THREADS: usize = 4;
    let rounds = f.rounds();
    let handles: Vec<Arc<dyn Cell>> = (0..THREADS).map(|_| f.handle()).collect();
    let barrier = Barrier::new(THREADS);
    let mut expected = Vec::new();
    for round in 0..rounds {
        let outcomes: Vec<_> = std::thread::scope(|s| {
            let joins: Vec<_> = handles
                .iter()
                .enumerate()
                .map(|(t, c)| {
                    let (barrier, expected) = (&barrier, &expected);
                    s.spawn(move || {
                        let new = format!("round {round} thread {t}").into_bytes();
                        barrier.wait();
                        (new.clone(), c.cas(expected, &new).unwrap())
                    })
                })
                .collect();
            joins.into_iter().map(|j| j.join().unwrap()).collect()
        });
        let winners: Vec<_> = outcomes.iter().filter(|(_, o)| o.swapped).collect();
        assert_eq!(winners.len(), 1, "{} round {round}: {outcomes:?}", f.name());
        let won = winners[0].0.clone();
        for (_, o) in &outcomes {
            assert_eq!(o.current, won, "{} round {round}: a loser saw another value", f.name());
        }
        assert_eq!(handles[0].read().unwrap(), won);
        expected = won;
    }
}

/// A value damaged through the backend's side door reads as `Corrupt`, never as data.
pub fn corruption_is_detected(f: &dyn CellFixture) {
    let c = f.handle();
    assert!(c.cas(b"", b"precious").unwrap().swapped);
    if !f.corrupt() {
        super::skip(f.name(), "corruption_is_detected", f.why_no_side_door());
        return;
    }
    match c.read() {
        Err(CellError::Corrupt(_)) => {}
        other => panic!("{}: damaged cell read as {other:?}", f.name()),
    }
    match c.cas(b"precious", b"x") {
        Err(CellError::Corrupt(_)) => {}
        other => panic!("{}: swap over a damaged cell gave {other:?}", f.name()),
    }
}
