//! The `# TYPE` declarations of one body as one table: the family names
//! back to back in one string, sorted, each with its type. A body with
//! hundreds of families (node_exporter has ~280) costs two allocations
//! instead of a string and a tree node each, and a body whose families
//! come sorted (every exporter's) is never sorted again.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use super::MetricType;

/// Declared types by family name. Tables handed out (by the exposition
/// parser's summary, [`FromIterator`] or [`TypeTable::overridden_by`]) are
/// sorted by name, one entry per name; the parser fills one in input order
/// and calls [`TypeTable::settle`] before anyone looks anything up.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TypeTable {
    names: String,
    /// Where each name starts and ends in `names`, and its type.
    entries: Vec<(usize, usize, MetricType)>,
    /// A name was pushed that does not sort after the one before it, so
    /// [`TypeTable::settle`] has work to do. Checked on push, where the
    /// previous name is at hand: exporters write families in order, and
    /// a second pass over the names only to find that cost as much as
    /// what the table saves.
    out_of_order: bool,
}

impl TypeTable {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, name: &str) -> Option<MetricType> {
        debug_assert!(!self.out_of_order, "lookup in an unsettled table");
        let i = self
            .entries
            .binary_search_by(|&(start, end, _)| self.names[start..end].cmp(name))
            .ok()?;
        Some(self.entries[i].2)
    }

    /// `(name, type)` pairs in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, MetricType)> + '_ {
        debug_assert!(!self.out_of_order, "iteration over an unsettled table");
        self.entries
            .iter()
            .map(|&(start, end, kind)| (&self.names[start..end], kind))
    }

    pub fn to_map(&self) -> BTreeMap<String, MetricType> {
        self.iter().map(|(k, v)| (k.to_owned(), v)).collect()
    }

    /// This table with `extra`'s declarations added, theirs winning over
    /// the table's own, in one merge pass: `extra` must be sorted by name,
    /// without repeats (checked in debug builds).
    pub fn overridden_by(&self, extra: &[(&str, MetricType)]) -> TypeTable {
        debug_assert!(extra.windows(2).all(|w| w[0].0 < w[1].0), "{extra:?}");
        debug_assert!(!self.out_of_order, "merge into an unsettled table");
        let mut out = TypeTable {
            names: String::with_capacity(
                self.names.len() + extra.iter().map(|(n, _)| n.len()).sum::<usize>(),
            ),
            entries: Vec::with_capacity(self.entries.len() + extra.len()),
            out_of_order: false,
        };
        let mut own = self.iter().peekable();
        for &(name, kind) in extra {
            while let Some((n, k)) = own.next_if(|&(n, _)| n < name) {
                out.push(n, k);
            }
            own.next_if(|&(n, _)| n == name);
            out.push(name, kind);
        }
        for (n, k) in own {
            out.push(n, k);
        }
        out
    }

    /// The declaration pushed last (before a settle, the latest one read).
    pub(crate) fn last(&self) -> Option<(&str, MetricType)> {
        let &(start, end, kind) = self.entries.last()?;
        Some((&self.names[start..end], kind))
    }

    /// Bytes held (names and entries), repeats included until the next
    /// settle.
    pub(crate) fn held_bytes(&self) -> usize {
        self.names.len() + self.entries.len() * size_of::<(usize, usize, MetricType)>()
    }

    /// Appends a declaration; the table is unsorted until [`TypeTable::settle`].
    #[inline]
    pub(crate) fn push(&mut self, name: &str, kind: MetricType) {
        if let Some(&(s, e, _)) = self.entries.last()
            && compare_bytes(&self.names.as_bytes()[s..e], name.as_bytes()) != Ordering::Less
        {
            self.out_of_order = true;
        }
        let start = self.names.len();
        self.names.push_str(name);
        self.entries.push((start, self.names.len(), kind));
    }

    /// Sorts by name, keeping the last declaration of a name repeated (as
    /// inserting each into a map would). Exporters write their families
    /// sorted and once each, so this is usually one pass that finds
    /// nothing to do.
    pub(crate) fn settle(&mut self) {
        if !self.out_of_order {
            return;
        }
        let mut order: Vec<usize> = (0..self.entries.len()).collect();
        // Stable, so equal names stay in input order and the last one wins.
        order.sort_by(|&a, &b| self.name_at(a).cmp(self.name_at(b)));
        let kept: Vec<usize> = (0..order.len())
            .filter(|&n| {
                order
                    .get(n + 1)
                    .is_none_or(|&next| self.name_at(next) != self.name_at(order[n]))
            })
            .map(|n| order[n])
            .collect();
        // Sized to what is kept: a body repeating its TYPE lines settles
        // down to a few names, and must not keep the room of all repeats.
        let mut sorted = TypeTable {
            names: String::with_capacity(kept.iter().map(|&i| self.name_at(i).len()).sum()),
            entries: Vec::with_capacity(kept.len()),
            out_of_order: false,
        };
        for i in kept {
            sorted.push(self.name_at(i), self.entries[i].2);
        }
        *self = sorted;
    }

    fn name_at(&self, i: usize) -> &str {
        let (start, end, _) = self.entries[i];
        &self.names[start..end]
    }
}

/// `a.cmp(b)` as byte strings (the order of `str`), eight bytes at a time
/// in line: metric names are short and share long prefixes (`node_...`),
/// and a libc `memcmp` call per TYPE line or per sample cost more than the
/// comparison. The parser's family match compares with it too.
pub(crate) fn compare_bytes(a: &[u8], b: &[u8]) -> Ordering {
    let common = a.len().min(b.len());
    let mut i = 0;
    while i + 8 <= common {
        let x = u64::from_be_bytes(a[i..i + 8].try_into().expect("8 bytes"));
        let y = u64::from_be_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        if x != y {
            return x.cmp(&y);
        }
        i += 8;
    }
    while i < common {
        if a[i] != b[i] {
            return a[i].cmp(&b[i]);
        }
        i += 1;
    }
    a.len().cmp(&b.len())
}

impl<S: AsRef<str>> FromIterator<(S, MetricType)> for TypeTable {
    fn from_iter<I: IntoIterator<Item = (S, MetricType)>>(iter: I) -> Self {
        let mut table = TypeTable::default();
        for (name, kind) in iter {
            table.push(name.as_ref(), kind);
        }
        table.settle();
        table
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use MetricType::*;

    const KINDS: [MetricType; 4] = [Counter, Gauge, Histogram, Summary];

    /// What inserting each declaration into a map gives: the reference.
    fn reference(decls: &[(String, MetricType)]) -> BTreeMap<String, MetricType> {
        decls.iter().cloned().collect()
    }

    /// Reproducible draws below `n` (a 64-bit LCG's high bits).
    fn draws(mut seed: u64) -> impl FnMut(u64) -> u64 {
        move |n| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) % n
        }
    }

    fn pairs(t: &TypeTable) -> Vec<(String, MetricType)> {
        t.iter().map(|(k, v)| (k.to_owned(), v)).collect()
    }

    #[test]
    fn settle_matches_a_map_insert_per_declaration() {
        let mut next = draws(0x9e37_79b9_7f4a_7c15u64);
        for round in 0..300 {
            let len = next(40) as usize;
            // Few distinct names, so repeats are common; names that are
            // prefixes of each other ("a", "a_b") test the ordering.
            let decls: Vec<(String, MetricType)> = (0..len)
                .map(|_| {
                    let name = ["a", "a_b", "a_bucket", "b", "ab", "z", "m:x", "é"]
                        [next(8) as usize]
                        .repeat(1 + next(2) as usize);
                    (name, KINDS[next(4) as usize])
                })
                .collect();
            let mut sorted_input = decls.clone();
            if round % 3 == 0 {
                sorted_input.sort_by(|a, b| a.0.cmp(&b.0));
                sorted_input.dedup_by(|later, earlier| later.0 == earlier.0);
            }
            for input in [&decls, &sorted_input] {
                let mut table = TypeTable::default();
                for (k, v) in input {
                    table.push(k, *v);
                }
                table.settle();
                let want = reference(input);
                assert_eq!(pairs(&table), want.clone().into_iter().collect::<Vec<_>>());
                assert_eq!(table.len(), want.len());
                assert_eq!(table.to_map(), want);
                for (k, _) in input {
                    assert_eq!(table.get(k), want.get(k).copied(), "{k}");
                }
                assert_eq!(table.get("absent"), None);
                assert_eq!(table.get(""), None);
                // Settling again changes nothing; a table built from the
                // same declarations is equal.
                let again = {
                    let mut t = table.clone();
                    t.settle();
                    t
                };
                assert_eq!(again, table);
                // Built from another order that keeps repeats of a name
                // in their input order (so the same one is last): equal.
                let mut by_name = input.clone();
                by_name.sort_by(|a, b| a.0.cmp(&b.0));
                assert_eq!(
                    by_name.iter().map(|(k, v)| (k, *v)).collect::<TypeTable>(),
                    table
                );
            }
        }
    }

    #[test]
    fn compare_bytes_is_the_byte_order_of_str() {
        let mut next = draws(7u64);
        for _ in 0..20_000 {
            // Two strings sharing a prefix of random length, over a small
            // alphabet with a high byte, so every word and tail case meets.
            let prefix: Vec<u8> = (0..next(20))
                .map(|_| b"ab_\xff"[next(4) as usize])
                .collect();
            let tail = |next: &mut dyn FnMut(u64) -> u64| -> Vec<u8> {
                (0..next(12))
                    .map(|_| b"ab_\xff"[next(4) as usize])
                    .collect()
            };
            let a = [prefix.clone(), tail(&mut next)].concat();
            let b = [prefix, tail(&mut next)].concat();
            assert_eq!(compare_bytes(&a, &b), a.cmp(&b), "{a:?} {b:?}");
            assert_eq!(compare_bytes(&b, &a), b.cmp(&a), "{b:?} {a:?}");
            assert_eq!(compare_bytes(&a, &a), Ordering::Equal);
        }
    }

    #[test]
    fn overridden_by_matches_map_inserts_after_the_table() {
        let own: TypeTable = [
            ("a", Counter),
            ("up", Counter),
            ("x", Histogram),
            ("zz", Summary),
        ]
        .into_iter()
        .collect();
        for extra in [
            &[][..],
            &[("up", Gauge)][..],
            &[("0", Gauge), ("a", Gauge), ("b", Gauge), ("zzz", Gauge)][..],
            &[("scrape_series_added", Gauge), ("up", Gauge)][..],
        ] {
            let mut want = own.to_map();
            for (k, v) in extra {
                want.insert((*k).to_owned(), *v);
            }
            let got = own.overridden_by(extra);
            assert_eq!(got.to_map(), want, "{extra:?}");
            // Already in order: settling finds nothing to do.
            let mut settled = got.clone();
            settled.settle();
            assert_eq!(settled, got);
        }
        assert_eq!(
            TypeTable::default()
                .overridden_by(&[("up", Gauge)])
                .get("up"),
            Some(Gauge)
        );
    }
}
