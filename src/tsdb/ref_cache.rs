//! Where each sample of a source's last batch went. A target lists the
//! same series in the same order scrape after scrape, so sample `i` almost
//! always belongs to the series sample `i` of the previous batch did:
//! checking that is one sequential read, where the series map costs two
//! cache misses a sample once the tsdb outgrows the CPU caches (the
//! `tsdb::append` profile). Prometheus's scrape cache plays the same role.
//!
//! A hint is trusted only while its shard has removed no series since it
//! was taken (`Shard::removals`): ids are unmapped only by removal, so
//! until then the id still names the series with that hash.

use std::collections::HashMap;
use std::sync::Mutex;

use super::index::SeriesId;
use crate::model::{SampleBatch, SourceKind};

/// 16 bytes a series: the low half of the series hash (a collision
/// between two series at the same position of two batches of one target
/// is a 2^-64 event), the id, and the shard's removal count.
#[derive(Clone, Copy)]
pub(super) struct Ref {
    pub hash: u64,
    pub id: SeriesId,
    pub removals: u32,
}

impl Ref {
    pub const NONE: Ref = Ref {
        hash: 0,
        id: SeriesId::MAX,
        removals: 0,
    };

    pub fn hint(&self, hash: u64) -> Option<(SeriesId, u32)> {
        (self.id != SeriesId::MAX && self.hash == hash).then_some((self.id, self.removals))
    }
}

/// Batch position -> series, per source (target and part). Emptied by
/// every `gc`, so it holds only sources seen since the last one.
#[derive(Default)]
pub(super) struct RefCache {
    by_source: Mutex<HashMap<(u64, u32), Vec<Ref>>>,
}

impl RefCache {
    /// The source's refs, sized to the batch; `None` for sources whose
    /// batches do not repeat their order (pushes, remote write, rules).
    pub fn take(&self, batch: &SampleBatch) -> Option<((u64, u32), Vec<Ref>)> {
        if !matches!(batch.kind, SourceKind::Scrape | SourceKind::Host) {
            return None;
        }
        let t = &batch.target;
        let source = xxhash_rust::xxh3::xxh3_64(
            format!("{:?}\u{0}{}\u{0}{}", batch.kind, t.job, t.instance).as_bytes(),
        );
        let key = (source, batch.part);
        let mut refs = self
            .by_source
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&key)
            .unwrap_or_default();
        refs.resize(batch.samples.len(), Ref::NONE);
        Some((key, refs))
    }

    pub fn put(&self, key: (u64, u32), refs: Vec<Ref>) {
        self.by_source
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, refs);
    }

    pub fn clear(&self) {
        let mut map = self.by_source.lock().unwrap_or_else(|e| e.into_inner());
        *map = HashMap::new();
    }
}
