//! The in-memory index (`specs/sector.md` §6, SEC-11): key → first sector of the key's newest
//! record, in at most 16 bytes of RAM per live key.
//!
//! An open-addressing table with linear probing and backward-shift deletion (no tombstones).
//! A slot is 12 bytes (`u64` key + `u32` sector, packed); `u32::MAX` marks an empty slot. The
//! capacity is not a power of two: a slot is chosen by multiply-shift ("fastrange") and the
//! table grows by [`GROWTH_NUM`]/[`GROWTH_DEN`] when it passes [`LOAD_MAX_NUM`]/[`LOAD_MAX_DEN`],
//! so its load always stays between ~0.76 and 0.875 and the cost per key between 13.7 and
//! 15.8 bytes (SEC-11).
//!
//! Never does I/O; never stores values.

/// Bytes per slot.
pub const INDEX_SLOT_SIZE_BYTES: usize = std::mem::size_of::<Slot>();
/// Maximum load factor, numerator.
pub const LOAD_MAX_NUM: usize = 7;
/// Maximum load factor, denominator.
pub const LOAD_MAX_DEN: usize = 8;
/// Growth factor, numerator.
pub const GROWTH_NUM: usize = 115;
/// Growth factor, denominator.
pub const GROWTH_DEN: usize = 100;
/// Smallest capacity.
const CAPACITY_MIN: usize = 16;
const EMPTY: u32 = u32::MAX;

const _: () = assert!(INDEX_SLOT_SIZE_BYTES == 12);
// SEC-11: at the lowest load (just after growing) a key costs slot / (max load / growth)
// <= 16 bytes.
const _: () =
    assert!(INDEX_SLOT_SIZE_BYTES * LOAD_MAX_DEN * GROWTH_NUM <= 16 * LOAD_MAX_NUM * GROWTH_DEN);

#[repr(C, packed)]
#[derive(Clone, Copy)]
struct Slot {
    key: u64,
    sector: u32,
}

const EMPTY_SLOT: Slot = Slot { key: 0, sector: EMPTY };

/// Key → sector map in ≤ 16 bytes per key (SEC-11). Public so its memory cost can be
/// measured (`impl/tests/sector_index_size.rs`); the engine is its only real user.
pub struct Index {
    slots: Vec<Slot>,
    len: usize,
}

fn mix(key: u64) -> u64 {
    let mut z = key.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Default for Index {
    fn default() -> Self {
        Index::new()
    }
}

impl Index {
    /// An empty index.
    pub fn new() -> Index {
        Index { slots: vec![EMPTY_SLOT; CAPACITY_MIN], len: 0 }
    }

    /// An empty index that holds `keys` keys without growing. Loading a table in another
    /// table's order needs it: [`Index::iter`] yields keys in hash order, and inserting them in
    /// that order into a smaller table piles them into one ever longer probe run (quadratic;
    /// seen as a 7 s checkpoint load of 100,000 keys). Presized, each lands near its home.
    pub fn with_capacity(keys: usize) -> Index {
        let cap = (keys * LOAD_MAX_DEN).div_ceil(LOAD_MAX_NUM).max(CAPACITY_MIN);
        Index { slots: vec![EMPTY_SLOT; cap], len: 0 }
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the index is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes of RAM the table uses (slots only; the struct itself is constant).
    pub fn heap_bytes(&self) -> usize {
        self.slots.capacity() * INDEX_SLOT_SIZE_BYTES
    }

    fn home(&self, key: u64) -> usize {
        ((u128::from(mix(key)) * self.slots.len() as u128) >> 64) as usize
    }

    fn next(&self, i: usize) -> usize {
        if i + 1 == self.slots.len() { 0 } else { i + 1 }
    }

    /// Slot index holding `key`, or the empty slot where it would go.
    fn find(&self, key: u64) -> (usize, bool) {
        let mut i = self.home(key);
        loop {
            let s = self.slots[i];
            if s.sector == EMPTY {
                return (i, false);
            }
            if { s.key } == key {
                return (i, true);
            }
            i = self.next(i);
        }
    }

    /// The sector of `key`'s record.
    pub fn get(&self, key: u64) -> Option<u32> {
        let (i, found) = self.find(key);
        found.then(|| self.slots[i].sector)
    }

    /// Sets `key` → `sector`, returning the previous sector.
    pub fn insert(&mut self, key: u64, sector: u32) -> Option<u32> {
        debug_assert!(sector != EMPTY, "SEC-11: u32::MAX is the empty marker");
        let (i, found) = self.find(key);
        if found {
            let old = self.slots[i].sector;
            self.slots[i].sector = sector;
            return Some(old);
        }
        self.slots[i] = Slot { key, sector };
        self.len += 1;
        if self.len * LOAD_MAX_DEN > self.slots.len() * LOAD_MAX_NUM {
            self.grow();
        }
        None
    }

    /// Removes `key`, returning its sector. Backward-shift keeps every probe chain unbroken.
    pub fn remove(&mut self, key: u64) -> Option<u32> {
        let (mut hole, found) = self.find(key);
        if !found {
            return None;
        }
        let old = self.slots[hole].sector;
        let mut j = self.next(hole);
        loop {
            let s = self.slots[j];
            if s.sector == EMPTY {
                break;
            }
            let home = self.home(s.key);
            // Move `s` into the hole if its home is not cyclically within (hole, j].
            let between =
                if hole <= j { hole < home && home <= j } else { hole < home || home <= j };
            if !between {
                self.slots[hole] = s;
                hole = j;
            }
            j = self.next(j);
        }
        self.slots[hole] = EMPTY_SLOT;
        self.len -= 1;
        Some(old)
    }

    fn grow(&mut self) {
        let cap = (self.slots.len() * GROWTH_NUM / GROWTH_DEN).max(self.slots.len() + 1);
        let old = std::mem::take(&mut self.slots);
        let mut slots = Vec::with_capacity(cap);
        slots.resize(cap, EMPTY_SLOT);
        self.slots = slots;
        for s in old {
            if s.sector != EMPTY {
                let (i, _) = self.find(s.key);
                self.slots[i] = s;
            }
        }
    }

    /// Every (key, sector), in table order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, u32)> + '_ {
        self.slots.iter().filter(|s| s.sector != EMPTY).map(|s| (s.key, s.sector))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Mean distance of a key from its home slot.
    fn mean_probe(ix: &Index) -> f64 {
        let n = ix.slots.len();
        let total: usize = (0..n)
            .filter(|i| ix.slots[*i].sector != EMPTY)
            .map(|i| (i + n - ix.home(ix.slots[i].key)) % n)
            .sum();
        total as f64 / ix.len().max(1) as f64
    }

    #[test]
    fn a_table_loaded_in_another_tables_order_stays_short_when_presized() {
        let mut src = Index::new();
        for k in 0..40_000u64 {
            src.insert(mix(k), 1);
        }
        let mut presized = Index::with_capacity(src.len());
        let mut growing = Index::new();
        let half: Vec<(u64, u32)> = src.iter().take(src.len() / 2).collect();
        for (k, s) in &half {
            presized.insert(*k, *s);
            growing.insert(*k, *s);
        }
        // Half way: the keys so far are the lower half of the hash space. The presized table
        // holds them in its lower half at its usual load; a table grown to fit only them packs
        // them all into one run (the failure presizing avoids, shown).
        let (good, bad) = (mean_probe(&presized), mean_probe(&growing));
        assert!(good < 4.0, "presized: mean probe {good}");
        assert!(bad > 100.0, "grown in hash order: mean probe {bad}");
        for (k, s) in src.iter().skip(half.len()) {
            presized.insert(k, s);
        }
        assert_eq!(presized.len(), src.len());
        assert!(mean_probe(&presized) < 4.0, "presized, full: {}", mean_probe(&presized));
        assert!(presized.heap_bytes() <= 16 * presized.len(), "SEC-11");
    }

    #[test]
    fn matches_a_hashmap_under_inserts_and_removes() {
        let mut ix = Index::new();
        let mut model = HashMap::new();
        let mut x: u64 = 1;
        let mut removed = 0;
        for i in 0..20_000u32 {
            x = mix(x);
            // The key and the operation come from independent bits of `x`: drawing both from
            // `x % 3000` and `x % 3` made every removal target a key never inserted.
            let key = x % 3000;
            if (x >> 32).is_multiple_of(3) {
                let got = ix.remove(key);
                assert_eq!(got, model.remove(&key));
                removed += usize::from(got.is_some());
            } else {
                assert_eq!(ix.insert(key, i), model.insert(key, i));
            }
            assert_eq!(ix.len(), model.len());
            // Every key, present or absent, every 97 steps: a broken backward shift loses
            // a key that sat further along the removed key's probe chain.
            if i % 97 == 0 {
                for k in 0..3000 {
                    assert_eq!(ix.get(k), model.get(&k).copied(), "key {k} after step {i}");
                }
            }
        }
        assert!(removed > 1000, "the deletion path ran only {removed} times");
        for (k, v) in &model {
            assert_eq!(ix.get(*k), Some(*v));
        }
        assert_eq!(ix.iter().count(), model.len());
    }

    /// Mean distance of the present keys from their home slots.
    fn mean_displacement(ix: &Index) -> f64 {
        let n = ix.slots.len();
        let total: usize = (0..n)
            .filter(|&i| ix.slots[i].sector != EMPTY)
            .map(|i| (i + n - ix.home(ix.slots[i].key)) % n)
            .sum();
        total as f64 / ix.len() as f64
    }

    #[test]
    fn structured_keys_keep_probe_chains_short() {
        // Correctness never depends on `mix` (every lookup compares the whole key), so only
        // probe lengths show a weak one. Linear probing at the highest load (7/8) expects a
        // present key 3.5 slots from home; user keys are often sequential or strided, and a
        // mix that lets such keys cluster makes every lookup a scan.
        for (name, stride, shift) in [
            ("sequential", 1u64, 0u32),
            ("4 KiB apart", 4096, 0),
            ("high bits", 1, 32),
            ("top", 1, 48),
        ] {
            let mut ix = Index::new();
            for k in 0..50_000u64 {
                ix.insert(k.wrapping_mul(stride) << shift, 0);
            }
            let mean = mean_displacement(&ix);
            assert!(mean < 6.0, "{name} keys sit {mean:.1} slots from home on average");
        }
    }

    #[test]
    fn stays_under_sixteen_bytes_per_key_sec_11() {
        let mut ix = Index::new();
        for k in 0..200_000u64 {
            ix.insert(k.wrapping_mul(0x9E37_79B9), k as u32);
            if k > 1000 {
                assert!(ix.heap_bytes() <= 16 * ix.len(), "SEC-11 at {k} keys");
            }
        }
    }
}
