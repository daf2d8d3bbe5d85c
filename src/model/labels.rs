//! [`Labels`]: a sorted label set in two allocations.

use std::cmp::Ordering;
use std::fmt;
use std::sync::OnceLock;

use super::PieceHasher;

/// A label set, sorted by name, without `__name__` (metric names travel
/// beside it in [`super::Sample::name`]). Sorted so equality and hashing
/// are order-independent and documents group deterministically.
///
/// Names and values sit back to back in one string, with their end offsets
/// beside it: a scraped sample's label set costs two allocations, where a
/// vector of owned pairs cost one per name and per value plus the vector
/// (the allocator was a tenth of a scrape's CPU, and as much again went to
/// freeing). Changes in the middle shift bytes; label sets are small and
/// are built in order or sorted once.
///
/// Carries its [`Labels::digest128`] once computed: a scraped sample's
/// label set is keyed by the scrape's stale tracking, the series window,
/// document grouping and the document id, and hashing the pairs once
/// instead of four times was ~10% of a scrape's CPU.
#[derive(Clone, Default)]
pub struct Labels {
    /// `name0 value0 name1 value1 ...`, in name order.
    text: String,
    /// Where each name and each value ends in `text`: `[n0, v0, n1, v1, ...]`.
    ends: Vec<u32>,
    /// `[low, high]` 64 bits of the digest; reset by every change.
    digest: OnceLock<[u64; 2]>,
}

/// The representation is canonical (sorted, unique names), so equal sets
/// have equal text and offsets; the kept digest is never compared.
impl PartialEq for Labels {
    fn eq(&self, other: &Self) -> bool {
        self.ends == other.ends && self.text == other.text
    }
}

impl Eq for Labels {}

impl std::hash::Hash for Labels {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.text.hash(state);
        self.ends.hash(state);
    }
}

impl PartialOrd for Labels {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Pair by pair, name before value: the order of a sorted vector of pairs.
impl Ord for Labels {
    fn cmp(&self, other: &Self) -> Ordering {
        self.iter().cmp(other.iter())
    }
}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Labels")
            .field(&self.iter().collect::<Vec<_>>())
            .finish()
    }
}

impl fmt::Display for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, (k, v)) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{k}={v:?}")?;
        }
        f.write_str("}")
    }
}

/// xxh3-128 of label pairs as a [`Labels`] holds them: the names and values
/// back to back, then where each ends (u32 LE), then how many pairs there
/// are. Read from its end, that input gives back the pairs, so no two
/// label sets hash the same bytes. What
/// [`Labels::digest128`] returns for a set holding these pairs in this
/// order, for callers that hold the pairs in another form (the series
/// window's symbol tables).
pub fn digest_pairs<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)> + Clone) -> u128 {
    let mut h = PieceHasher::new();
    let mut count = 0u32;
    for (k, v) in pairs.clone() {
        h.update(k.as_bytes());
        h.update(v.as_bytes());
        count += 1;
    }
    let mut end = 0usize;
    for (k, v) in pairs {
        end += k.len();
        h.update(&offset(end).to_le_bytes());
        end += v.len();
        h.update(&offset(end).to_le_bytes());
    }
    h.update(&count.to_le_bytes());
    h.digest128()
}

impl Labels {
    pub fn new() -> Self {
        Labels::default()
    }

    /// An empty set with room for `n` labels.
    pub fn with_capacity(n: usize) -> Self {
        Labels {
            text: String::with_capacity(n * 24),
            ends: Vec::with_capacity(2 * n),
            digest: OnceLock::new(),
        }
    }

    /// Builds a label set; a later pair with the same name wins.
    pub fn from_pairs<K: AsRef<str>, V: AsRef<str>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        let mut l = Labels::new();
        for (k, v) in pairs {
            l.set(k, v);
        }
        l
    }

    /// Builds a label set from pairs in any order with one sort, where
    /// [`Labels::from_pairs`] inserts pair by pair. Empty values are
    /// dropped; of pairs with the same name the later wins, as there.
    /// `spare` labels more fit without growing (a scrape adds its target's).
    /// Sorts `pairs` in place, so a caller can gather them on the stack.
    pub fn from_unsorted<K: AsRef<str>, V: AsRef<str>>(pairs: &mut [(K, V)], spare: usize) -> Self {
        Labels::sorted_disjoint(pairs, spare).unwrap_or_else(|| {
            // Rare (exposition rejects duplicate names): pair by pair; the
            // stable sort kept each name's pairs in input order.
            Labels::from_pairs(pairs.iter().map(|(k, v)| (k.as_ref(), v.as_ref())))
        })
    }

    /// Builds a label set from pairs in any order whose names are all
    /// distinct; `None`, building nothing, when two pairs share a name.
    /// Empty values are dropped. Sorts `pairs` in place.
    pub fn from_unsorted_disjoint<K: AsRef<str>, V: AsRef<str>>(
        pairs: &mut [(K, V)],
    ) -> Option<Self> {
        Labels::sorted_disjoint(pairs, 0)
    }

    /// Sorts `pairs` by name (stable, so equal names keep their input
    /// order) and builds the set when no two share a name.
    fn sorted_disjoint<K: AsRef<str>, V: AsRef<str>>(
        pairs: &mut [(K, V)],
        spare: usize,
    ) -> Option<Self> {
        pairs.sort_by(|a, b| a.0.as_ref().cmp(b.0.as_ref()));
        if pairs.windows(2).any(|w| w[0].0.as_ref() == w[1].0.as_ref()) {
            return None;
        }
        let bytes: usize = pairs
            .iter()
            .map(|(k, v)| k.as_ref().len() + v.as_ref().len())
            .sum();
        let mut l = Labels {
            text: String::with_capacity(bytes + spare * 24),
            ends: Vec::with_capacity(2 * (pairs.len() + spare)),
            digest: OnceLock::new(),
        };
        for (k, v) in pairs.iter() {
            if !v.as_ref().is_empty() {
                l.push_unchecked(k.as_ref(), v.as_ref());
            }
        }
        Some(l)
    }

    /// Adds every label of `other` when none of its names is already set;
    /// returns false, changing nothing, when a name is in both.
    pub fn merge_disjoint(&mut self, other: &Labels) -> bool {
        let (mut i, mut j) = (0, 0);
        let (n, m) = (self.len(), other.len());
        while i < n && j < m {
            match self.name(i).cmp(other.name(j)) {
                Ordering::Less => i += 1,
                Ordering::Greater => j += 1,
                Ordering::Equal => return false,
            }
        }
        // In place: a scraped set was built with room for its target's
        // labels, so this moves a few bytes and allocates nothing.
        for (k, v) in other.iter() {
            let at = self.find(k).expect_err("names are disjoint");
            self.insert_at(at, k, v);
        }
        true
    }

    /// xxh3-128 of the pairs (see [`digest_pairs`]), computed once per
    /// label set and kept until the set changes: the key every stage
    /// identifies a series or a document by starts from it.
    pub fn digest128(&self) -> u128 {
        let [lo, hi] = *self.digest.get_or_init(|| {
            // [`digest_pairs`]' bytes, which this set already holds in two
            // runs: two copies instead of one per name and value.
            let mut h = PieceHasher::new();
            h.update(self.text.as_bytes());
            for end in &self.ends {
                h.update(&end.to_le_bytes());
            }
            h.update(&offset(self.len()).to_le_bytes());
            let d = h.digest128();
            [d as u64, (d >> 64) as u64]
        });
        u128::from(lo) | (u128::from(hi) << 64)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.find(name).ok().map(|i| self.value(i))
    }

    /// Sets a label; an empty value removes it, as in Prometheus.
    pub fn set(&mut self, name: impl AsRef<str>, value: impl AsRef<str>) {
        let (name, value) = (name.as_ref(), value.as_ref());
        match self.find(name) {
            Ok(i) if value.is_empty() => self.remove_at(i),
            Ok(i) => {
                let (start, end) = (self.start(2 * i + 1), self.ends[2 * i + 1] as usize);
                self.text.replace_range(start..end, value);
                let delta = value.len() as i64 - (end - start) as i64;
                self.shift_ends(2 * i + 1, delta);
            }
            Err(_) if value.is_empty() => {}
            Err(i) => self.insert_at(i, name, value),
        }
    }

    pub fn remove(&mut self, name: &str) -> Option<String> {
        let i = self.find(name).ok()?;
        let value = self.value(i).to_owned();
        self.remove_at(i);
        Some(value)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> + Clone {
        (0..self.len()).map(|i| (self.name(i), self.value(i)))
    }

    pub fn len(&self) -> usize {
        self.ends.len() / 2
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Appends a pair whose name sorts after every name in the set.
    fn push_unchecked(&mut self, name: &str, value: &str) {
        debug_assert!(self.is_empty() || self.name(self.len() - 1) < name);
        self.digest.take();
        self.text.push_str(name);
        self.ends.push(offset(self.text.len()));
        self.text.push_str(value);
        self.ends.push(offset(self.text.len()));
    }

    /// Inserts a pair as the `i`th, where its name sorts.
    fn insert_at(&mut self, i: usize, name: &str, value: &str) {
        if i == self.len() {
            self.push_unchecked(name, value);
            return;
        }
        let at = self.start(2 * i);
        self.text.insert_str(at, value);
        self.text.insert_str(at, name);
        let (n, v) = (at + name.len(), at + name.len() + value.len());
        self.ends.splice(2 * i..2 * i, [offset(n), offset(v)]);
        self.shift_ends(2 * i + 2, (name.len() + value.len()) as i64);
    }

    fn remove_at(&mut self, i: usize) {
        let (start, end) = (self.start(2 * i), self.ends[2 * i + 1] as usize);
        self.text.replace_range(start..end, "");
        self.ends.drain(2 * i..2 * i + 2);
        self.shift_ends(2 * i, -((end - start) as i64));
    }

    /// Moves the ends from slot `from` on by `delta` bytes; every change
    /// goes through here or [`Labels::push_unchecked`], so both drop the
    /// kept digest.
    fn shift_ends(&mut self, from: usize, delta: i64) {
        self.digest.take();
        for end in &mut self.ends[from..] {
            *end = offset((i64::from(*end) + delta) as usize);
        }
    }

    fn find(&self, name: &str) -> Result<usize, usize> {
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            match self.name(mid).cmp(name) {
                Ordering::Less => lo = mid + 1,
                Ordering::Greater => hi = mid,
                Ordering::Equal => return Ok(mid),
            }
        }
        Err(lo)
    }

    fn start(&self, slot: usize) -> usize {
        if slot == 0 {
            0
        } else {
            self.ends[slot - 1] as usize
        }
    }

    fn name(&self, i: usize) -> &str {
        &self.text[self.start(2 * i)..self.ends[2 * i] as usize]
    }

    fn value(&self, i: usize) -> &str {
        &self.text[self.ends[2 * i] as usize..self.ends[2 * i + 1] as usize]
    }
}

/// Label sets come from lines capped at 1 MiB and from configuration; one
/// past 4 GiB is a bug, not input.
fn offset(len: usize) -> u32 {
    u32::try_from(len).expect("a label set under 4 GiB")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_digest_follows_every_change_and_not_equality() {
        let fresh = |l: &Labels| digest_pairs(l.iter());
        let mut l = Labels::from_pairs([("b", "2"), ("a", "1")]);
        let first = l.digest128();
        assert_eq!(first, fresh(&l));
        // Equality, ordering and Hash ignore whether the digest is kept.
        let uncached = Labels::from_pairs([("a", "1"), ("b", "2")]);
        assert_eq!(l, uncached);
        assert_eq!(l.cmp(&uncached), std::cmp::Ordering::Equal);
        let state = std::hash::RandomState::new();
        use std::hash::BuildHasher;
        assert_eq!(state.hash_one(&l), state.hash_one(&uncached));
        l.set("c", "3");
        assert_ne!(l.digest128(), first);
        assert_eq!(l.digest128(), fresh(&l));
        l.set("c", "4");
        assert_eq!(l.digest128(), fresh(&l));
        l.set("c", "");
        assert_eq!(l.digest128(), first);
        l.remove("b");
        assert_eq!(l.digest128(), fresh(&l));
        assert!(l.merge_disjoint(&Labels::from_pairs([("z", "9")])));
        assert_eq!(l.digest128(), fresh(&l));
        // A clone keeps the digest of the pairs it copied.
        let c = l.clone();
        assert_eq!(c.digest128(), fresh(&l));
        // The pair separators keep names and values apart.
        assert_ne!(
            Labels::from_pairs([("ab", "c")]).digest128(),
            Labels::from_pairs([("a", "bc")]).digest128()
        );
    }

    #[test]
    fn from_unsorted_and_merge_disjoint_agree_with_set_pair_by_pair() {
        let cases: [&[(&str, &str)]; 5] = [
            &[],
            &[("b", "2"), ("a", "1"), ("c", "3")],
            &[("a", "1"), ("a", "2")],
            &[("a", "1"), ("a", ""), ("b", "")],
            &[("z", ""), ("a", "1"), ("z", "9"), ("m", "5")],
        ];
        for pairs in cases {
            let mut owned: Vec<(String, String)> = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            assert_eq!(
                Labels::from_unsorted(&mut owned, 0),
                Labels::from_pairs(pairs.iter().copied()),
                "{pairs:?}"
            );
        }
        let target = Labels::from_pairs([("instance", "a:1"), ("job", "j")]);
        for sample in [
            Labels::new(),
            Labels::from_pairs([("a", "1"), ("k", "2"), ("z", "3")]),
            Labels::from_pairs([("zz", "1")]),
            Labels::from_pairs([("aa", "1")]),
        ] {
            let mut merged = sample.clone();
            assert!(merged.merge_disjoint(&target));
            let mut by_set = sample.clone();
            for (k, v) in target.iter() {
                by_set.set(k, v);
            }
            assert_eq!(merged, by_set);
        }
        let mut clash = Labels::from_pairs([("a", "1"), ("job", "other")]);
        assert!(!clash.merge_disjoint(&target));
        assert_eq!(clash, Labels::from_pairs([("a", "1"), ("job", "other")]));
    }

    #[test]
    fn labels_stay_sorted_and_empty_value_removes() {
        let mut l = Labels::from_pairs([("b", "2"), ("a", "1"), ("c", "3")]);
        assert_eq!(
            l.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            ["a", "b", "c"]
        );
        l.set("b", "");
        assert_eq!(l.get("b"), None);
        l.set("a", "9");
        assert_eq!(l.get("a"), Some("9"));
        assert_eq!(l.to_string(), r#"{a="9",c="3"}"#);
    }

    /// Every change, in any order, against a sorted map of owned pairs:
    /// the set's pairs, lookups, digest, ordering and display agree.
    #[test]
    fn labels_behave_like_a_sorted_map_under_any_changes() {
        use std::collections::BTreeMap;
        let names = ["", "a", "ab", "b", "job", "instance", "zz", "é"];
        let values = ["", "1", "x y", "é\"q", "long-value-0123456789"];
        // A small deterministic generator: no proptest dependency in the lib.
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        for _ in 0..300 {
            let mut l = Labels::new();
            let mut model: BTreeMap<String, String> = BTreeMap::new();
            for _ in 0..12 {
                let (k, v) = (names[next(names.len())], values[next(values.len())]);
                match next(4) {
                    0 | 1 => {
                        l.set(k, v);
                        if v.is_empty() {
                            model.remove(k);
                        } else {
                            model.insert(k.to_owned(), v.to_owned());
                        }
                    }
                    2 => assert_eq!(l.remove(k), model.remove(k)),
                    _ => {
                        let other = Labels::from_pairs([(k, v)]);
                        let clash = !v.is_empty() && model.contains_key(k);
                        assert_eq!(l.merge_disjoint(&other), !clash);
                        if !clash && !v.is_empty() {
                            model.insert(k.to_owned(), v.to_owned());
                        }
                    }
                }
                let pairs: Vec<(&str, &str)> = model
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                assert_eq!(l.iter().collect::<Vec<_>>(), pairs);
                assert_eq!(l.len(), pairs.len());
                for name in names {
                    assert_eq!(l.get(name), model.get(name).map(String::as_str));
                }
                assert_eq!(l.digest128(), digest_pairs(pairs.iter().copied()));
                let rebuilt =
                    Labels::from_unsorted(&mut pairs.iter().rev().copied().collect::<Vec<_>>(), 1);
                assert_eq!(l, rebuilt);
                assert_eq!(l.to_string(), rebuilt.to_string());
            }
        }
    }

    #[test]
    fn labels_order_as_sorted_pairs_do() {
        let sets: Vec<Vec<(&str, &str)>> = vec![
            vec![],
            vec![("a", "1")],
            vec![("a", "1"), ("b", "0")],
            vec![("a", "12")],
            vec![("a", "2")],
            vec![("ab", "1")],
            vec![("b", "")],
            vec![("b", "1")],
        ];
        for x in &sets {
            for y in &sets {
                let (lx, ly) = (Labels::from_pairs(x.clone()), Labels::from_pairs(y.clone()));
                let (wx, wy): (Vec<_>, Vec<_>) = (
                    x.iter().filter(|(_, v)| !v.is_empty()).collect(),
                    y.iter().filter(|(_, v)| !v.is_empty()).collect(),
                );
                assert_eq!(lx.cmp(&ly), wx.cmp(&wy), "{x:?} vs {y:?}");
                assert_eq!(lx == ly, wx == wy, "{x:?} vs {y:?}");
            }
        }
    }
}
