//! The in-memory series window: every scraped, pushed and rule-made series
//! for the retention period (2 h by default).
//!
//! Public API (stable; `promql`, `rules` and `api` build on it):
//! - [`Tsdb::new`]`(retention)`, [`Tsdb::with_limits`]`(retention, max_series)`;
//!   cheap to clone (an `Arc` inside), `Send + Sync`.
//! - [`Tsdb::append`]`(name, labels, t_ms, v)`, [`Tsdb::append_batch`]`(&SampleBatch)`;
//!   `v` may be [`crate::model::stale_nan`] (a stale marker, kept as is).
//!   Samples older than or equal to the series' last one are dropped, as
//!   Prometheus drops out-of-order and duplicate samples.
//! - [`Tsdb::select`]`(matchers, mint, maxt)`: series (labels including
//!   `__name__`) with their samples in `[mint, maxt]`, stale markers included.
//! - [`Tsdb::series`], [`Tsdb::label_names`], [`Tsdb::label_values`]: for the API.
//! - [`Tsdb::gc`]: applies retention; call it periodically. It works shard by
//!   shard, so appends and queries never wait for a whole sweep.
//!
//! Layout: series live in [`SHARDS`] mutex-guarded shards picked by a
//! 128-bit hash of their label set (collisions are not checked: at 128 bits
//! they do not happen); the postings index and the string table sit behind
//! one `RwLock` that appends take only when a series is new. Samples sit in
//! compressed chunks of 120 (Gorilla with decimal deltas, see [`chunk`]).

pub mod chunk;
mod index;
mod ref_cache;
#[cfg(test)]
mod tests;

use crate::model::{Labels, MetricType, SampleBatch, digest_pairs};
use chunk::{HeadChunk, SAMPLES_PER_CHUNK, SealedChunks};
use index::{Postings, SeriesId, Sym, Symbols, intersect};
pub use promql_parser::label::{MatchOp, Matcher};
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

pub const SHARDS: usize = 64;
pub const METRIC_NAME: &str = "__name__";
/// Enough for a large node; protects the process from a label explosion.
pub const DEFAULT_MAX_SERIES: usize = 2_000_000;

#[derive(Clone)]
pub struct Tsdb {
    inner: Arc<Inner>,
}

struct Inner {
    retention_ms: i64,
    max_series: usize,
    index: RwLock<Index>,
    shards: Box<[Mutex<Shard>]>,
    /// Newest timestamp appended: the reference for retention.
    max_t: AtomicI64,
    series_count: AtomicU64,
    pub out_of_order: AtomicU64,
    pub over_limit: AtomicU64,
    /// Declared family types, for `/api/v1/metadata`; pruned by `gc`.
    types: RwLock<std::collections::BTreeMap<String, MetricType>>,
    refs: ref_cache::RefCache,
}

#[derive(Default)]
struct Index {
    symbols: Symbols,
    postings: Postings,
}

/// Keys are already xxh3 hashes: hashing them again would only cost time.
#[derive(Default, Clone, Copy)]
struct PassThrough(u64);

impl std::hash::Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    /// A `[u64; 2]` key arrives as its 16 bytes: both halves of an xxh3
    /// digest, folded by XOR (a byte-by-byte mix here cost more than the
    /// rest of a lookup that hits the cache).
    fn write(&mut self, bytes: &[u8]) {
        for word in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..word.len()].copy_from_slice(word);
            self.0 ^= u64::from_le_bytes(w);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 ^= n;
    }
    /// The slice length `[u64; 2]` hashes first: always 2, so no information.
    fn write_usize(&mut self, _: usize) {}
}

type HashKey = [u64; 2];
type ByHash = HashMap<HashKey, SeriesId, std::hash::BuildHasherDefault<PassThrough>>;

#[derive(Default)]
struct Shard {
    by_hash: ByHash,
    slots: Vec<Option<Series>>,
    free: Vec<SeriesId>,
    /// Series removed so far: a [`ref_cache::Ref`] taken at another count
    /// may name a freed (or reused) id.
    removals: u32,
}

/// 64 bytes, plus one allocation holding the label pairs and the sealed
/// chunks, plus the head chunk's buffer.
struct Series {
    /// Prefix: the label pairs (`__name__` included, sorted by name), as
    /// LEB128 symbol ids: label names are among the first symbols interned,
    /// so a pair takes 3 to 4 bytes instead of 8.
    sealed: SealedChunks,
    head: HeadChunk,
}

impl Series {
    fn new(labels: &[(Sym, Sym)]) -> Series {
        let mut prefix = Vec::with_capacity(labels.len() * 5);
        for &(n, v) in labels {
            put_varint(&mut prefix, n);
            put_varint(&mut prefix, v);
        }
        Series {
            sealed: SealedChunks::new(&prefix),
            head: HeadChunk::default(),
        }
    }

    fn labels(&self) -> impl Iterator<Item = (Sym, Sym)> + Clone + '_ {
        let mut rest = self.sealed.prefix();
        std::iter::from_fn(move || Some((take_varint(&mut rest)?, take_varint(&mut rest)?)))
    }

    fn last_t(&self) -> Option<i64> {
        if !self.head.is_empty() {
            Some(self.head.last_t())
        } else {
            self.sealed.last_max_t()
        }
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u32) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn take_varint(rest: &mut &[u8]) -> Option<u32> {
    let mut v = 0u32;
    for (i, &b) in rest.iter().enumerate().take(5) {
        v |= ((b & 0x7f) as u32) << (7 * i);
        if b & 0x80 == 0 {
            *rest = &rest[i + 1..];
            return Some(v);
        }
    }
    None
}

/// One selected series.
#[derive(Clone, Debug, PartialEq)]
pub struct SeriesData {
    /// Including `__name__`.
    pub labels: Labels,
    pub samples: Vec<(i64, f64)>,
}

/// Memory accounting, for the bench and `/metrics`.
#[derive(Clone, Debug, Default)]
pub struct TsdbStats {
    pub series: u64,
    pub samples: u64,
    pub chunk_bytes: u64,
    pub index_bytes: u64,
}

fn shard_of(id: SeriesId) -> usize {
    id as usize % SHARDS
}

fn slot_of(id: SeriesId) -> usize {
    id as usize / SHARDS
}

/// A series' key: its name and its label set's digest, which a scraped
/// sample's label set has already computed for stale tracking, so the key
/// costs one short hash. `__name__` among the labels is left out (`name`
/// wins).
fn series_hash(name: &str, labels: &Labels) -> HashKey {
    let digest = if labels.get(METRIC_NAME).is_some() {
        digest_pairs(labels.iter().filter(|(k, _)| *k != METRIC_NAME))
    } else {
        labels.digest128()
    };
    key_of(name, digest)
}

/// [`series_hash`] from the name and the digest of the other labels.
fn key_of(name: &str, labels_digest: u128) -> HashKey {
    let d = crate::model::series_digest(name, labels_digest);
    [d as u64, (d >> 64) as u64]
}

/// Grows a vector by an eighth instead of doubling: index vectors of a
/// million series would otherwise carry up to half their size as slack.
fn push_compact<T>(v: &mut Vec<T>, item: T) {
    if v.len() == v.capacity() {
        v.reserve_exact(v.capacity() / 8 + 4);
    }
    v.push(item);
}

impl Tsdb {
    pub fn new(retention: Duration) -> Tsdb {
        Tsdb::with_limits(retention, DEFAULT_MAX_SERIES)
    }

    pub fn with_limits(retention: Duration, max_series: usize) -> Tsdb {
        Tsdb {
            inner: Arc::new(Inner {
                retention_ms: retention.as_millis().min(i64::MAX as u128) as i64,
                max_series,
                index: RwLock::new(Index::default()),
                shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
                max_t: AtomicI64::new(i64::MIN),
                series_count: AtomicU64::new(0),
                out_of_order: AtomicU64::new(0),
                over_limit: AtomicU64::new(0),
                types: Default::default(),
                refs: Default::default(),
            }),
        }
    }

    pub fn retention(&self) -> Duration {
        Duration::from_millis(self.inner.retention_ms as u64)
    }

    /// Appends one sample. `labels` must not carry `__name__` (one that
    /// does is ignored: `name` wins).
    pub fn append(&self, name: &str, labels: &Labels, t_ms: i64, v: f64) {
        let hash = series_hash(name, labels);
        self.append_hashed(name, labels, hash, None, t_ms, v);
    }

    /// Appends to the series `hash` names, trying `hint` (an id and the
    /// shard's removal count when it was taken) before the series map.
    /// Returns the series' id and the shard's removal count, for the next
    /// hint; `None` when the series could not be created (series limit).
    fn append_hashed(
        &self,
        name: &str,
        labels: &Labels,
        hash: HashKey,
        hint: Option<(SeriesId, u32)>,
        t_ms: i64,
        v: f64,
    ) -> Option<(SeriesId, u32)> {
        let shard_ix = (hash[1] as usize) % SHARDS;
        {
            let mut shard = lock(&self.inner.shards[shard_ix]);
            let removals = shard.removals;
            let id = match hint {
                Some((id, at)) if at == removals && shard_of(id) == shard_ix => Some(id),
                _ => shard.by_hash.get(&hash).copied(),
            };
            if let Some(id) = id
                && let Some(Some(series)) = shard.slots.get_mut(slot_of(id))
            {
                self.push_sample(series, t_ms, v);
                return Some((id, removals));
            }
        }
        self.create_and_append(name, labels, hash, shard_ix, t_ms, v)
    }

    pub fn append_batch(&self, batch: &SampleBatch) {
        let known = {
            let types = self.inner.types.read().unwrap_or_else(|e| e.into_inner());
            batch.types.iter().all(|(k, t)| types.get(k) == Some(&t))
        };
        if !known {
            let mut types = self.inner.types.write().unwrap_or_else(|e| e.into_inner());
            for (k, t) in batch.types.iter() {
                if types.len() < self.inner.max_series || types.contains_key(k) {
                    types.insert(k.to_owned(), t);
                }
            }
        }
        let mut refs = self.inner.refs.take(batch);
        for (i, s) in batch.samples.iter().enumerate() {
            let hash = series_hash(&s.name, &s.labels);
            let slot = refs.as_mut().map(|(_, r)| &mut r[i]);
            let hint = slot.as_ref().and_then(|r| r.hint(hash[0]));
            let t = s.timestamp_ms.unwrap_or(batch.timestamp_ms);
            let at = self.append_hashed(&s.name, &s.labels, hash, hint, t, s.value);
            if let Some(slot) = slot {
                *slot = match at {
                    Some((id, removals)) => ref_cache::Ref {
                        hash: hash[0],
                        id,
                        removals,
                    },
                    None => ref_cache::Ref::NONE,
                };
            }
        }
        if let Some((key, refs)) = refs {
            self.inner.refs.put(key, refs);
        }
    }

    fn push_sample(&self, series: &mut Series, t: i64, v: f64) {
        if let Some(last) = series.last_t()
            && t <= last
        {
            self.inner.out_of_order.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if !series.head.is_empty() && t - series.head.min_t() > chunk::MAX_CHUNK_SPAN_MS {
            let head = std::mem::take(&mut series.head);
            series.sealed.push(head);
        }
        series.head.append(t, v);
        self.inner.max_t.fetch_max(t, Ordering::Relaxed);
        if series.head.count() >= SAMPLES_PER_CHUNK {
            let head = std::mem::take(&mut series.head);
            series.sealed.push(head);
            // Retention for live series happens here, a chunk at a time.
            series.sealed.drop_before(self.cutoff());
        }
    }

    fn cutoff(&self) -> i64 {
        self.inner
            .max_t
            .load(Ordering::Relaxed)
            .saturating_sub(self.inner.retention_ms)
    }

    #[cold]
    fn create_and_append(
        &self,
        name: &str,
        labels: &Labels,
        hash: HashKey,
        shard_ix: usize,
        t: i64,
        v: f64,
    ) -> Option<(SeriesId, u32)> {
        let mut index = self.inner.index.write().unwrap_or_else(|e| e.into_inner());
        let mut shard = lock(&self.inner.shards[shard_ix]);
        if let Some(&id) = shard.by_hash.get(&hash) {
            // Another appender created it meanwhile.
            let series = shard.slots[slot_of(id)].as_mut().expect("mapped slot");
            self.push_sample(series, t, v);
            return Some((id, shard.removals));
        }
        if self.inner.series_count.load(Ordering::Relaxed) as usize >= self.inner.max_series {
            self.inner.over_limit.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let mut pairs: Vec<(&str, &str)> =
            labels.iter().filter(|(k, _)| *k != METRIC_NAME).collect();
        pairs.push((METRIC_NAME, name));
        pairs.sort_unstable();
        let syms: Vec<(Sym, Sym)> = pairs
            .iter()
            .map(|(k, v)| (index.symbols.intern(k), index.symbols.intern(v)))
            .collect();
        let id = match shard.free.pop() {
            Some(id) => id,
            None => {
                push_compact(&mut shard.slots, None);
                ((shard.slots.len() - 1) * SHARDS + shard_ix) as SeriesId
            }
        };
        for &(n, val) in syms.iter() {
            index.postings.add(n, val, id);
        }
        let mut series = Series::new(&syms);
        self.push_sample(&mut series, t, v);
        shard.slots[slot_of(id)] = Some(series);
        shard.by_hash.insert(hash, id);
        self.inner.series_count.fetch_add(1, Ordering::Relaxed);
        Some((id, shard.removals))
    }

    /// Drops chunks that ended before `newest - retention` and series with
    /// no sample left. Each shard is locked on its own, briefly.
    pub fn gc(&self) {
        // Sources gone since the last gc leave nothing behind.
        self.inner.refs.clear();
        let cutoff = self.cutoff();
        let mut removed: Vec<index::Removed> = Vec::new();
        for (shard_ix, shard) in self.inner.shards.iter().enumerate() {
            // Index before shard, as when series are created.
            let index = self.inner.index.read().unwrap_or_else(|e| e.into_inner());
            let mut shard = lock(shard);
            let Shard {
                by_hash,
                slots,
                removals,
                ..
            } = &mut *shard;
            for (slot, entry) in slots.iter_mut().enumerate() {
                let Some(series) = entry else { continue };
                series.sealed.drop_before(cutoff);
                if series.last_t().is_none_or(|t| t < cutoff) {
                    *removals = removals.wrapping_add(1);
                    let series = entry.take().expect("checked above");
                    let pairs = series
                        .labels()
                        .map(|(n, v)| (index.symbols.get(n), index.symbols.get(v)));
                    let name = pairs
                        .clone()
                        .find(|(n, _)| *n == METRIC_NAME)
                        .map_or("", |(_, v)| v);
                    let others = pairs.filter(|(n, _)| *n != METRIC_NAME);
                    by_hash.remove(&key_of(name, digest_pairs(others)));
                    removed.push((
                        (slot * SHARDS + shard_ix) as SeriesId,
                        series.labels().collect(),
                    ));
                }
            }
        }
        if removed.is_empty() {
            return;
        }
        let mut index = self.inner.index.write().unwrap_or_else(|e| e.into_inner());
        index.postings.remove_all(&removed);
        for (_, labels) in &removed {
            for &(n, v) in labels.iter() {
                index.symbols.release(n);
                index.symbols.release(v);
            }
        }
        let names: std::collections::HashSet<&str> = index
            .symbols
            .lookup(METRIC_NAME)
            .and_then(|n| index.postings.map.get(&n))
            .map(|vals| vals.keys().map(|&v| index.symbols.get(v)).collect())
            .unwrap_or_default();
        // A family is named by its series' prefix (`x` for `x_bucket`).
        self.inner
            .types
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|family, _| names.iter().any(|n| n.starts_with(family.as_str())));
        // Ids become reusable only now that no posting names them.
        for (id, _) in &removed {
            lock(&self.inner.shards[shard_of(*id)]).free.push(*id);
        }
        self.inner
            .series_count
            .fetch_sub(removed.len() as u64, Ordering::Relaxed);
    }

    /// Series matching all `matchers` that have samples in `[mint, maxt]`.
    pub fn select(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Vec<SeriesData> {
        self.collect(matchers, mint, maxt, true)
    }

    /// Label sets (with `__name__`) of matching series with samples in range.
    pub fn series(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Vec<Labels> {
        self.collect(matchers, mint, maxt, false)
            .into_iter()
            .map(|s| s.labels)
            .collect()
    }

    fn collect(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        samples: bool,
    ) -> Vec<SeriesData> {
        let index = self.inner.index.read().unwrap_or_else(|e| e.into_inner());
        let candidates = candidates(&index, matchers);
        let mut by_shard: Vec<Vec<SeriesId>> = vec![Vec::new(); SHARDS];
        let all = candidates.is_none();
        if let Some(ids) = candidates {
            for id in ids {
                by_shard[shard_of(id)].push(id);
            }
        }
        let mut out = Vec::new();
        let mut buf = Vec::new();
        for (shard_ix, ids) in by_shard.iter().enumerate() {
            if !all && ids.is_empty() {
                continue;
            }
            let shard = lock(&self.inner.shards[shard_ix]);
            let mut visit = |series: &Series| {
                let resolved: Vec<(&str, &str)> = series
                    .labels()
                    .map(|(n, v)| (index.symbols.get(n), index.symbols.get(v)))
                    .collect();
                let ok = matchers.iter().all(|m| {
                    let val = resolved
                        .iter()
                        .find(|(n, _)| *n == m.name)
                        .map_or("", |(_, v)| *v);
                    m.is_match(val)
                });
                if !ok {
                    return;
                }
                buf.clear();
                for c in series.sealed.iter() {
                    if c.max_t() >= mint && c.min_t() <= maxt {
                        c.decode_into(mint, maxt, &mut buf);
                    }
                }
                if !series.head.is_empty()
                    && series.head.last_t() >= mint
                    && series.head.min_t() <= maxt
                {
                    series.head.decode_into(mint, maxt, &mut buf);
                }
                if buf.is_empty() {
                    return;
                }
                let mut labels = Labels::with_capacity(resolved.len());
                for (n, v) in resolved {
                    labels.set(n, v);
                }
                out.push(SeriesData {
                    labels,
                    samples: if samples { buf.clone() } else { Vec::new() },
                });
            };
            if all {
                shard.slots.iter().flatten().for_each(&mut visit);
            } else {
                for &id in ids {
                    if let Some(Some(series)) = shard.slots.get(slot_of(id)) {
                        visit(series);
                    }
                }
            }
        }
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        out
    }

    /// Declared metric family types (family name, type), sorted by name.
    pub fn metadata(&self) -> Vec<(String, MetricType)> {
        let types = self.inner.types.read().unwrap_or_else(|e| e.into_inner());
        types.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }

    pub fn label_names(&self) -> Vec<String> {
        let index = self.inner.index.read().unwrap_or_else(|e| e.into_inner());
        let mut names: Vec<String> = index
            .postings
            .map
            .keys()
            .map(|&n| index.symbols.get(n).to_owned())
            .collect();
        names.sort();
        names
    }

    pub fn label_values(&self, name: &str) -> Vec<String> {
        let index = self.inner.index.read().unwrap_or_else(|e| e.into_inner());
        let Some(values) = index
            .symbols
            .lookup(name)
            .and_then(|n| index.postings.map.get(&n))
        else {
            return Vec::new();
        };
        let mut out: Vec<String> = values
            .keys()
            .map(|&v| index.symbols.get(v).to_owned())
            .collect();
        out.sort();
        out
    }

    pub fn stats(&self) -> TsdbStats {
        let mut st = TsdbStats::default();
        for shard in self.inner.shards.iter() {
            let shard = lock(shard);
            st.index_bytes += (shard.by_hash.capacity() * 24
                + shard.slots.capacity() * std::mem::size_of::<Option<Series>>())
                as u64;
            for s in shard.slots.iter().flatten() {
                st.series += 1;
                st.samples += s.head.count() as u64;
                st.chunk_bytes += (s.head.bytes() + s.sealed.bytes()) as u64;
                st.index_bytes += s.sealed.prefix().len() as u64;
                for c in s.sealed.iter() {
                    st.samples += c.count() as u64;
                }
            }
        }
        let index = self.inner.index.read().unwrap_or_else(|e| e.into_inner());
        st.index_bytes += (index.symbols.bytes() + index.postings.bytes()) as u64;
        st
    }

    /// Samples dropped for being out of order or duplicates.
    pub fn out_of_order_total(&self) -> u64 {
        self.inner.out_of_order.load(Ordering::Relaxed)
    }

    /// Samples of new series dropped because `max_series` was reached.
    pub fn over_limit_total(&self) -> u64 {
        self.inner.over_limit.load(Ordering::Relaxed)
    }

    pub fn series_count(&self) -> u64 {
        self.inner.series_count.load(Ordering::Relaxed)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Ids that may match: the intersection of the postings of every matcher
/// that does not match the empty string. `None` means "every series" (all
/// matchers match empty); the caller checks every matcher on each candidate.
fn candidates(index: &Index, matchers: &[Matcher]) -> Option<Vec<SeriesId>> {
    let mut result: Option<Vec<SeriesId>> = None;
    for m in matchers {
        if m.is_match("") {
            continue;
        }
        let ids = match (&m.op, index.symbols.lookup(&m.name)) {
            (_, None) => Vec::new(),
            (MatchOp::Equal, Some(n)) => index
                .symbols
                .lookup(&m.value)
                .and_then(|v| index.postings.map.get(&n)?.get(&v))
                .cloned()
                .unwrap_or_default(),
            (_, Some(n)) => {
                let mut ids: Vec<SeriesId> = index
                    .postings
                    .map
                    .get(&n)
                    .map(|vals| {
                        vals.iter()
                            .filter(|(v, _)| m.is_match(index.symbols.get(**v)))
                            .flat_map(|(_, l)| l.iter().copied())
                            .collect()
                    })
                    .unwrap_or_default();
                ids.sort_unstable();
                ids
            }
        };
        result = Some(match result {
            None => ids,
            Some(prev) => intersect(&prev, &ids),
        });
        if result.as_ref().is_some_and(|r| r.is_empty()) {
            break;
        }
    }
    result
}

/// How often retention runs.
pub const GC_INTERVAL: Duration = Duration::from_secs(60);

/// Registers `kubegate_tsdb_*` gauges and runs retention every
/// [`GC_INTERVAL`] on the blocking pool. Needs a tokio runtime.
pub fn spawn_maintenance(db: Tsdb, registry: &prometheus::Registry) {
    let series =
        prometheus::IntGauge::new("kubegate_tsdb_series", "Series in the in-memory window.")
            .expect("valid metric");
    let ooo = prometheus::IntGauge::new(
        "kubegate_tsdb_out_of_order_samples",
        "Samples dropped since start for being older than or as old as their series' last sample.",
    )
    .expect("valid metric");
    let over = prometheus::IntGauge::new(
        "kubegate_tsdb_over_limit_samples",
        "Samples of new series dropped since start because tsdb.max_series was reached.",
    )
    .expect("valid metric");
    for g in [&series, &ooo, &over] {
        if let Err(e) = registry.register(Box::new(g.clone())) {
            tracing::warn!(error = %e, "cannot register tsdb metrics");
        }
    }
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(15));
        let mut last_gc = std::time::Instant::now();
        loop {
            tick.tick().await;
            if last_gc.elapsed() >= GC_INTERVAL {
                let d = db.clone();
                let _ = tokio::task::spawn_blocking(move || d.gc()).await;
                last_gc = std::time::Instant::now();
            }
            series.set(db.series_count() as i64);
            ooo.set(db.out_of_order_total() as i64);
            over.set(db.over_limit_total() as i64);
        }
    });
}
