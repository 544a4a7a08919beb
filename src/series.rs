//! The series of one metric family: each label set, identified by its full key, and its values.
//!
//! A key is the label values joined by [`KEY_SEPARATOR`] (0xFF, which never occurs in UTF-8,
//! so two different label sets can never share a key). The table compares whole keys: a hash
//! only chooses where to look, never decides identity (the prometheus crate's `*Vec` trusted an
//! unseparated 64-bit hash, and `{a="ab",b="c"}` was the same series as `{a="a",b="bc"}`).
//!
//! Memory is laid out for many series: the keys sit back to back in one arena, the values in
//! one `Vec<f64>` (`width` slots per series), and the index holds 4-byte slot numbers. Removed
//! series leave a free slot (reused) and dead key bytes (compacted once they dominate). Slot
//! numbers are stable while a series lives, so callers may keep them across lock releases only
//! if they also know no removal happened (see [`SeriesTable::removals`]).
//!
//! Pure data: no locks, no clock, no metrics. The family that owns a table puts it behind its
//! lock; see [`crate::registry`].

use std::hash::BuildHasher;

use hashbrown::HashTable;

/// Separates label values in a series key. 0xFF never occurs in UTF-8, so keys are unambiguous.
pub const KEY_SEPARATOR: u8 = 0xFF;

/// A slot that holds no series.
const FREE: u32 = u32::MAX;

#[derive(Debug, Clone, Copy)]
struct Span {
    start: usize,
    len: u32,
}

/// Label-value keys to value slots. `S` hashes keys (seeded foldhash; tests swap in a
/// constant one to prove that lookups never trust a hash).
pub struct SeriesTable<S = foldhash::fast::RandomState> {
    hasher: S,
    index: HashTable<u32>,
    arena: Vec<u8>,
    spans: Vec<Span>,
    values: Vec<f64>,
    /// When each series last changed, on the owner's clock (for idle expiry).
    touched: Vec<u32>,
    free: Vec<u32>,
    width: usize,
    dead_bytes: usize,
    removals: u64,
}

impl<S> std::fmt::Debug for SeriesTable<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeriesTable")
            .field("series", &self.index.len())
            .field("width", &self.width)
            .finish()
    }
}

impl SeriesTable {
    /// An empty table whose series each hold `width` values.
    pub fn new(width: usize) -> SeriesTable {
        // Seeded per table: nobody can precompute keys that all land in one bucket.
        SeriesTable::with_hasher(width, foldhash::fast::RandomState::default())
    }
}

impl<S: BuildHasher + Clone> SeriesTable<S> {
    /// An empty table with its own key hasher.
    pub fn with_hasher(width: usize, hasher: S) -> SeriesTable<S> {
        SeriesTable {
            hasher,
            index: HashTable::new(),
            arena: Vec::new(),
            spans: Vec::new(),
            values: Vec::new(),
            touched: Vec::new(),
            free: Vec::new(),
            width,
            dead_bytes: 0,
            removals: 0,
        }
    }

    /// Values per series.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Series held.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether the table holds no series.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// How many series were ever removed: a slot number remembered from before a change of
    /// this count may name another series now.
    pub fn removals(&self) -> u64 {
        self.removals
    }

    /// The hash of `key`, computed once per lookup (it may be computed before taking a lock).
    pub fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    fn key_at(arena: &[u8], span: Span) -> &[u8] {
        &arena[span.start..span.start + span.len as usize]
    }

    /// The slot of `key`, if held. `hash` is [`SeriesTable::hash`] of `key`.
    pub fn find(&self, key: &[u8], hash: u64) -> Option<u32> {
        let (arena, spans) = (&self.arena, &self.spans);
        self.index
            .find(hash, |&slot| {
                Self::key_at(arena, spans[slot as usize]) == key
            })
            .copied()
    }

    /// The slot of `key`, inserting it with `initial` values (`width` of them) when new and
    /// fewer than `cap` series are held. Returns the slot and whether it was inserted; `None`
    /// when the key is new and the table is full.
    pub fn find_or_insert(
        &mut self,
        key: &[u8],
        hash: u64,
        cap: usize,
        initial: &[f64],
    ) -> Option<(u32, bool)> {
        if let Some(slot) = self.find(key, hash) {
            return Some((slot, false));
        }
        if self.len() >= cap {
            return None;
        }
        Some((self.insert_new(key, hash, initial), true))
    }

    /// Inserts a key known not to be held.
    fn insert_new(&mut self, key: &[u8], hash: u64, initial: &[f64]) -> u32 {
        debug_assert_eq!(initial.len(), self.width);
        let len = u32::try_from(key.len()).expect("label values are capped far below 4 GiB");
        let span = Span {
            start: self.arena.len(),
            len,
        };
        self.arena.extend_from_slice(key);
        let slot = match self.free.pop() {
            Some(slot) => {
                self.spans[slot as usize] = span;
                let at = slot as usize * self.width;
                self.values[at..at + self.width].copy_from_slice(initial);
                self.touched[slot as usize] = 0;
                slot
            }
            None => {
                let slot = u32::try_from(self.spans.len()).expect("fewer than 4 billion series");
                assert!(slot != FREE, "fewer than 4 billion series");
                self.spans.push(span);
                self.values.extend_from_slice(initial);
                self.touched.push(0);
                slot
            }
        };
        let (arena, spans, hasher) = (&self.arena, &self.spans, &self.hasher);
        self.index.insert_unique(hash, slot, |&s| {
            hasher.hash_one(Self::key_at(arena, spans[s as usize]))
        });
        slot
    }

    /// The key of a held slot.
    pub fn key(&self, slot: u32) -> &[u8] {
        Self::key_at(&self.arena, self.spans[slot as usize])
    }

    /// The values of a held slot.
    pub fn values(&self, slot: u32) -> &[f64] {
        let at = slot as usize * self.width;
        &self.values[at..at + self.width]
    }

    /// The values of a held slot, to change them.
    pub fn values_mut(&mut self, slot: u32) -> &mut [f64] {
        let at = slot as usize * self.width;
        &mut self.values[at..at + self.width]
    }

    /// Marks a held slot as changed at `when` (on the owner's clock).
    pub fn touch(&mut self, slot: u32, when: u32) {
        self.touched[slot as usize] = when;
    }

    /// When a held slot last changed (see [`SeriesTable::touch`]).
    pub fn touched(&self, slot: u32) -> u32 {
        self.touched[slot as usize]
    }

    /// Removes the series of a held slot.
    pub fn remove(&mut self, slot: u32) {
        let span = self.spans[slot as usize];
        debug_assert!(span.len != FREE, "slot {slot} is free");
        let hash = self.hash(Self::key_at(&self.arena, span));
        if let Ok(entry) = self.index.find_entry(hash, |&s| s == slot) {
            entry.remove();
        }
        self.spans[slot as usize] = Span {
            start: 0,
            len: FREE,
        };
        self.free.push(slot);
        self.dead_bytes += span.len as usize;
        self.removals += 1;
        if self.dead_bytes > 4096 && self.dead_bytes * 2 > self.arena.len() {
            self.compact();
        }
    }

    /// Removes every series for which `keep` returns false.
    pub fn retain(&mut self, mut keep: impl FnMut(&[u8], &[f64]) -> bool) {
        let doomed: Vec<u32> = self
            .iter()
            .filter(|(_, key, values)| !keep(key, values))
            .map(|(slot, ..)| slot)
            .collect();
        for slot in doomed {
            self.remove(slot);
        }
    }

    /// Removes every series.
    pub fn clear(&mut self) {
        let removals = self.removals + self.len() as u64;
        *self = SeriesTable::with_hasher(self.width, self.hasher.clone());
        self.removals = removals;
    }

    /// Rewrites the arena with the live keys only.
    fn compact(&mut self) {
        let mut arena = Vec::with_capacity(self.arena.len() - self.dead_bytes);
        for span in self.spans.iter_mut().filter(|s| s.len != FREE) {
            let start = arena.len();
            arena.extend_from_slice(Self::key_at(&self.arena, *span));
            span.start = start;
        }
        self.arena = arena;
        self.dead_bytes = 0;
    }

    /// Every held series: slot, key, values (in no particular order).
    pub fn iter(&self) -> impl Iterator<Item = (u32, &[u8], &[f64])> + '_ {
        self.spans
            .iter()
            .enumerate()
            .filter(|(_, s)| s.len != FREE)
            .map(move |(slot, &span)| {
                let slot = slot as u32;
                (slot, Self::key_at(&self.arena, span), self.values(slot))
            })
    }

    /// A copy of the keys and values, for rendering or a snapshot outside the owner's lock.
    pub fn copy(&self) -> TableCopy {
        let mut copy = TableCopy {
            width: self.width,
            keys: Vec::with_capacity(self.arena.len() - self.dead_bytes),
            spans: Vec::with_capacity(self.len()),
            values: Vec::with_capacity(self.len() * self.width),
        };
        for (_, key, values) in self.iter() {
            copy.push(key, values);
        }
        copy
    }

    /// Approximate heap bytes held, for the benchmark's accounting.
    pub fn heap_bytes(&self) -> usize {
        self.arena.capacity()
            + self.spans.capacity() * std::mem::size_of::<Span>()
            + self.values.capacity() * 8
            + self.touched.capacity() * 4
            + self.free.capacity() * 4
            + self.index.capacity() * 5
    }
}

/// Keys and values copied out of a [`SeriesTable`], compact and immutable.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TableCopy {
    width: usize,
    keys: Vec<u8>,
    spans: Vec<(usize, usize)>,
    values: Vec<f64>,
}

impl TableCopy {
    /// An empty copy of series `width` values wide.
    pub fn new(width: usize) -> TableCopy {
        TableCopy {
            width,
            ..TableCopy::default()
        }
    }

    /// Adds a series.
    pub fn push(&mut self, key: &[u8], values: &[f64]) {
        debug_assert_eq!(values.len(), self.width);
        self.spans.push((self.keys.len(), key.len()));
        self.keys.extend_from_slice(key);
        self.values.extend_from_slice(values);
    }

    /// Values per series.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Series held.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether no series is held.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// The key of the `i`-th series.
    pub fn key(&self, i: usize) -> &[u8] {
        let (start, len) = self.spans[i];
        &self.keys[start..start + len]
    }

    /// The values of the `i`-th series.
    pub fn values(&self, i: usize) -> &[f64] {
        &self.values[i * self.width..(i + 1) * self.width]
    }

    /// Series indexes in exposition order: by label values, label by label, where a value
    /// that is a prefix of another sorts first (as the prometheus crate sorts them).
    pub fn sorted(&self) -> Vec<u32> {
        // Sort keys in which every byte is raised by one and each separator becomes 0: plain
        // byte order of those is label-by-label order of the values. (UTF-8 never holds 0xFF,
        // so no byte overflows.)
        let mut sortable = Vec::with_capacity(self.keys.len());
        let mut spans = Vec::with_capacity(self.len());
        for i in 0..self.len() {
            let start = sortable.len();
            sortable.extend(self.key(i).iter().map(|&b| b.wrapping_add(1)));
            spans.push((start, sortable.len()));
        }
        let mut order: Vec<u32> = (0..self.len() as u32).collect();
        order.sort_unstable_by(|&a, &b| {
            let (a, b) = (spans[a as usize], spans[b as usize]);
            sortable[a.0..a.1].cmp(&sortable[b.0..b.1])
        });
        order
    }
}

/// Splits a key into its label values (`labels` of them; a key of no labels has none).
pub fn split_key(key: &[u8], labels: usize) -> impl Iterator<Item = &[u8]> {
    let mut parts = key.split(|b| *b == KEY_SEPARATOR);
    (0..labels).map(move |_| parts.next().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(values: &[&str]) -> Vec<u8> {
        let mut k = Vec::new();
        for (i, v) in values.iter().enumerate() {
            if i > 0 {
                k.push(KEY_SEPARATOR);
            }
            k.extend_from_slice(v.as_bytes());
        }
        k
    }

    /// Label sets whose values concatenate to the same text are different series.
    #[test]
    fn keys_are_compared_whole() {
        let mut t = SeriesTable::new(1);
        let a = key(&["ab", "c"]);
        let b = key(&["a", "bc"]);
        let (sa, _) = t.find_or_insert(&a, t.hash(&a), 10, &[0.0]).unwrap();
        t.values_mut(sa)[0] += 2.0;
        let (sb, inserted) = t.find_or_insert(&b, t.hash(&b), 10, &[0.0]).unwrap();
        assert!(inserted);
        assert_ne!(sa, sb);
        t.values_mut(sb)[0] += 1.0;
        assert_eq!(t.values(sa), [2.0]);
        assert_eq!(t.values(sb), [1.0]);
    }

    /// A hasher that sends every key to the same place.
    #[derive(Clone, Default)]
    struct Constant;
    impl std::hash::Hasher for Constant {
        fn finish(&self) -> u64 {
            42
        }
        fn write(&mut self, _: &[u8]) {}
    }
    impl BuildHasher for Constant {
        type Hasher = Constant;
        fn build_hasher(&self) -> Constant {
            Constant
        }
    }

    /// Even when every key lands on the same hash, lookups stay exact (through growth and
    /// removal).
    #[test]
    fn a_colliding_hash_never_merges_series() {
        let mut t = SeriesTable::with_hasher(1, Constant);
        for i in 0..200 {
            let k = format!("k{i}").into_bytes();
            let (s, inserted) = t.find_or_insert(&k, t.hash(&k), 1000, &[i as f64]).unwrap();
            assert!(inserted);
            assert_eq!(t.key(s), k);
        }
        t.retain(|k, _| k != b"k7");
        for i in 0..200 {
            let k = format!("k{i}").into_bytes();
            match t.find(&k, t.hash(&k)) {
                Some(s) => assert_eq!(t.values(s), [i as f64]),
                None => assert_eq!(i, 7),
            }
        }
        assert_eq!(t.len(), 199);
    }

    #[test]
    fn cap_refuses_new_keys_only() {
        let mut t = SeriesTable::new(2);
        for k in ["a", "b"] {
            assert!(t
                .find_or_insert(k.as_bytes(), t.hash(k.as_bytes()), 2, &[0.0, 0.0])
                .is_some());
        }
        assert!(t
            .find_or_insert(b"c", t.hash(b"c"), 2, &[0.0, 0.0])
            .is_none());
        assert_eq!(
            t.find_or_insert(b"a", t.hash(b"a"), 2, &[0.0, 0.0])
                .map(|x| x.1),
            Some(false)
        );
    }

    /// Removal frees the slot for reuse and the arena is compacted; survivors keep their
    /// keys and values.
    #[test]
    fn removal_reuses_slots_and_compacts() {
        let mut t = SeriesTable::new(1);
        let keys: Vec<Vec<u8>> = (0..5000)
            .map(|i| format!("key-{i:06}").into_bytes())
            .collect();
        for (i, k) in keys.iter().enumerate() {
            t.find_or_insert(k, t.hash(k), usize::MAX, &[i as f64])
                .unwrap();
        }
        let before = t.removals();
        t.retain(|key, _| key.ends_with(b"7"));
        assert_eq!(t.len(), 500);
        assert_eq!(t.removals() - before, 4500);
        assert!(
            t.arena.len() < 500 * 10 + 4096,
            "compacted: {}",
            t.arena.len()
        );
        for (i, k) in keys.iter().enumerate() {
            let found = t.find(k, t.hash(k));
            assert_eq!(found.is_some(), k.ends_with(b"7"), "{i}");
            if let Some(s) = found {
                assert_eq!(t.values(s), [i as f64]);
            }
        }
        let slots = t.spans.len();
        for k in &keys[..100] {
            t.find_or_insert(k, t.hash(k), usize::MAX, &[-1.0]);
        }
        assert_eq!(t.spans.len(), slots, "free slots were reused");
    }

    /// Exposition order: value by value, a prefix first, whatever the bytes.
    #[test]
    fn sorted_order_is_label_by_label() {
        let mut c = TableCopy::new(1);
        let rows: &[&[&str]] = &[
            &["ab", "a"],
            &["a", "z"],
            &["a", ""],
            &["", "x"],
            &["é", "a"],
            &["a\u{0}", "a"],
        ];
        for (i, r) in rows.iter().enumerate() {
            c.push(&key(r), &[i as f64]);
        }
        let order: Vec<Vec<&str>> = c
            .sorted()
            .into_iter()
            .map(|i| {
                split_key(c.key(i as usize), 2)
                    .map(|v| std::str::from_utf8(v).unwrap())
                    .collect()
            })
            .collect();
        let mut expected: Vec<Vec<&str>> = rows.iter().map(|r| r.to_vec()).collect();
        expected.sort();
        assert_eq!(order, expected);
    }
}
