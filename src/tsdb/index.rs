//! Interned label strings and the postings index (label pair → series ids).
//! Strings are stored once however many series carry them; series hold
//! pairs of 4-byte symbol ids.

use std::collections::HashMap;
use std::sync::Arc;

pub type Sym = u32;
pub type SeriesId = u32;
/// A deleted series: its id and its label pairs.
pub type Removed = (SeriesId, Box<[(Sym, Sym)]>);

/// Reference-counted string table; symbols of deleted series are freed.
#[derive(Default)]
pub struct Symbols {
    ids: HashMap<Arc<str>, Sym>,
    strings: Vec<(Option<Arc<str>>, u32)>,
    free: Vec<Sym>,
}

impl Symbols {
    pub fn lookup(&self, s: &str) -> Option<Sym> {
        self.ids.get(s).copied()
    }

    pub fn get(&self, id: Sym) -> &str {
        self.strings[id as usize].0.as_deref().unwrap_or("")
    }

    pub fn intern(&mut self, s: &str) -> Sym {
        if let Some(&id) = self.ids.get(s) {
            self.strings[id as usize].1 += 1;
            return id;
        }
        let a: Arc<str> = Arc::from(s);
        let id = match self.free.pop() {
            Some(id) => {
                self.strings[id as usize] = (Some(a.clone()), 1);
                id
            }
            None => {
                self.strings.push((Some(a.clone()), 1));
                (self.strings.len() - 1) as Sym
            }
        };
        self.ids.insert(a, id);
        id
    }

    pub fn release(&mut self, id: Sym) {
        let slot = &mut self.strings[id as usize];
        slot.1 -= 1;
        if slot.1 == 0
            && let Some(s) = slot.0.take()
        {
            self.ids.remove(&s);
            self.free.push(id);
        }
    }

    pub fn bytes(&self) -> usize {
        self.strings
            .iter()
            .map(|(s, _)| s.as_ref().map_or(0, |s| s.len() + 16))
            .sum::<usize>()
            + self.strings.capacity() * 16
            + self.ids.capacity() * 24
    }
}

/// label name → label value → sorted series ids.
#[derive(Default)]
pub struct Postings {
    pub map: HashMap<Sym, HashMap<Sym, Vec<SeriesId>>>,
}

impl Postings {
    pub fn add(&mut self, name: Sym, value: Sym, id: SeriesId) {
        let list = self.map.entry(name).or_default().entry(value).or_default();
        // Ids are reused after deletion, so an insert is not always at the end.
        if list.len() == list.capacity() {
            // An eighth more, not double: these lists hold most of the index.
            list.reserve_exact(list.capacity() / 8 + 2);
        }
        match list.last() {
            Some(&last) if last > id => {
                let pos = list.partition_point(|&x| x < id);
                list.insert(pos, id);
            }
            _ => list.push(id),
        }
    }

    /// Removes many series at once: one pass per touched list.
    pub fn remove_all(&mut self, removed: &[Removed]) {
        let dead: std::collections::HashSet<SeriesId> = removed.iter().map(|(id, _)| *id).collect();
        let mut touched: std::collections::HashSet<(Sym, Sym)> = Default::default();
        for (_, labels) in removed {
            touched.extend(labels.iter().copied());
        }
        for (n, v) in touched {
            if let Some(values) = self.map.get_mut(&n) {
                if let Some(list) = values.get_mut(&v) {
                    list.retain(|id| !dead.contains(id));
                    if list.is_empty() {
                        values.remove(&v);
                    } else if list.capacity() > list.len() * 2 + 8 {
                        list.shrink_to_fit();
                    }
                }
                if values.is_empty() {
                    self.map.remove(&n);
                }
            }
        }
    }

    pub fn bytes(&self) -> usize {
        self.map
            .values()
            .map(|vals| {
                vals.values().map(|l| l.capacity() * 4 + 40).sum::<usize>() + vals.capacity() * 8
            })
            .sum()
    }
}

/// Sorted intersection of two sorted id lists.
pub fn intersect(a: &[SeriesId], b: &[SeriesId]) -> Vec<SeriesId> {
    let mut out = Vec::with_capacity(a.len().min(b.len()));
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}
