//! The durable queue between the producers (scrape, beats, push) and the
//! sinks. Records are opaque byte strings; the sink encodes documents into
//! them.
//!
//! # Guarantee
//!
//! At least once: a record stays in the buffer until the reader acknowledges
//! it, and everything not acknowledged is delivered again after a restart
//! (or after [`Reader::rewind`]). Delivery is oldest first.
//!
//! When `push` returns `Stored`, the records are
//! - with [`FsyncPolicy::Always`]: on disk (fsynced), so they survive a
//!   process crash and a power loss;
//! - with [`FsyncPolicy::Interval`]: written to the operating system, so they
//!   survive a crash of kubegate (the kernel's page cache still has them)
//!   but maybe not a power loss or kernel crash within the interval;
//! - in memory mode: only in this process.
//!
//! # Files (disk mode)
//!
//! `segment-<20-digit first sequence>.log` files of framed records (see
//! `format.rs`), rolled at `segment_size`; `reader.pos`, the first sequence
//! not yet acknowledged, replaced atomically (temp file, fsync, rename) at
//! most every 100 ms while acks come in, before any segment is deleted, on
//! [`Reader::sync`] and when the reader is dropped; `lock`, an advisory lock
//! so two processes never share a directory. On open the segments from the
//! reader position on are scanned and a torn or corrupt tail is cut off
//! (see [`format::scan_segment`] for the exact rule); each cut and each
//! skipped corrupt record counts in `kubegate_buffer_corrupt_records_total`.
//!
//! # Size
//!
//! `max_size` bounds the records not yet acknowledged, counted with their 8
//! bytes of framing, in both modes. On disk, up to one segment of
//! acknowledged records may linger until its last record is acknowledged,
//! so the directory can hold up to `max_size + segment_size`.

mod disk;
mod format;
mod memory;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_disk;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use prometheus::{IntCounter, IntGauge, Registry};
use tokio::sync::Notify;

use disk::{DiskReader, DiskWriter};
use format::RECORD_OVERHEAD;
use memory::MemStore;

#[derive(Debug, Clone)]
pub struct BufferConfig {
    /// Directory of the segment files; `None` keeps records in memory only.
    pub dir: Option<PathBuf>,
    /// Most bytes (records plus 8 bytes of framing each) not yet acknowledged.
    pub max_size: u64,
    /// A segment file is closed and a new one started past this size.
    pub segment_size: u64,
    pub fsync: FsyncPolicy,
    pub when_full: WhenFull,
}

impl Default for BufferConfig {
    fn default() -> Self {
        BufferConfig {
            dir: None,
            max_size: 1 << 30,
            segment_size: 16 << 20,
            fsync: FsyncPolicy::default(),
            when_full: WhenFull::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// fsync before `push` returns. Concurrent pushes share one fsync.
    Always,
    /// fsync from a background task when this much time has passed since the
    /// last one and something was written. A zero interval means `Always`.
    Interval(Duration),
}

impl Default for FsyncPolicy {
    fn default() -> Self {
        FsyncPolicy::Interval(Duration::from_millis(500))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WhenFull {
    /// `push` waits until acknowledgements free enough space.
    #[default]
    Block,
    /// `push` returns [`Pushed::Dropped`] at once, counted in
    /// `kubegate_buffer_dropped_total`.
    DropNewest,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Pushed {
    Stored,
    Dropped,
}

#[derive(Debug, thiserror::Error)]
pub enum BufferError {
    #[error("buffer file {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "a record of {size} bytes (payload plus 8 bytes of framing) is larger than the buffer can hold ({max} bytes)"
    )]
    RecordTooLarge { size: u64, max: u64 },
    #[error(
        "a push of {size} bytes is larger than the buffer's max_size of {max} bytes; push fewer records at once"
    )]
    BatchTooLarge { size: u64, max: u64 },
    #[error("buffer segment {}: {reason}", path.display())]
    BadSegment { path: PathBuf, reason: String },
    #[error("buffer directory {} is in use by another process", path.display())]
    Locked { path: PathBuf },
    #[error("invalid buffer configuration: {0}")]
    Config(String),
    #[error("cannot acknowledge sequence {seq}: only records before {next} have been delivered")]
    AckBeyondDelivered { seq: u64, next: u64 },
    #[error("the buffer's reader is gone, so nothing will free space for this push")]
    Closed,
}

impl BufferError {
    fn io(path: &Path, source: std::io::Error) -> Self {
        BufferError::Io {
            path: path.to_owned(),
            source,
        }
    }
}

#[derive(Clone)]
pub struct BufferMetrics {
    pub bytes: IntGauge,
    /// `max_size`, so "how full" is one division in a rule.
    pub max_bytes: IntGauge,
    pub records: IntGauge,
    pub dropped: IntCounter,
    pub corrupt: IntCounter,
}

impl BufferMetrics {
    /// The metrics, not yet registered anywhere (tests, benches).
    pub fn unregistered() -> Self {
        BufferMetrics {
            bytes: IntGauge::new(
                "kubegate_buffer_bytes",
                "Bytes in the buffer not yet acknowledged by the sink, framing included.",
            )
            .expect("valid metric"),
            max_bytes: IntGauge::new(
                "kubegate_buffer_max_bytes",
                "The buffer's capacity (buffer.max_size) in the units of kubegate_buffer_bytes.",
            )
            .expect("valid metric"),
            records: IntGauge::new(
                "kubegate_buffer_records",
                "Records in the buffer not yet acknowledged by the sink.",
            )
            .expect("valid metric"),
            dropped: IntCounter::new(
                "kubegate_buffer_dropped_total",
                "Records dropped because the buffer was full (when_full: drop_newest).",
            )
            .expect("valid metric"),
            corrupt: IntCounter::new(
                "kubegate_buffer_corrupt_records_total",
                "Torn or corrupt records found in the buffer's files and skipped.",
            )
            .expect("valid metric"),
        }
    }

    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let m = Self::unregistered();
        registry.register(Box::new(m.bytes.clone()))?;
        registry.register(Box::new(m.max_bytes.clone()))?;
        registry.register(Box::new(m.records.clone()))?;
        registry.register(Box::new(m.dropped.clone()))?;
        registry.register(Box::new(m.corrupt.clone()))?;
        Ok(m)
    }
}

/// What writers and the reader share.
struct Shared {
    state: Mutex<State>,
    disk: bool,
    max_size: u64,
    /// Largest single framed record: `max_size`, and the u32 length field.
    max_record: u64,
    when_full: WhenFull,
    fsync: FsyncPolicy,
    metrics: BufferMetrics,
    /// Writers → reader: records were added, or the last writer left. A
    /// single waiter, so `notify_one`'s stored permit closes the race
    /// between checking and waiting.
    data_ready: Notify,
    /// Reader → writers: acknowledgements freed space, or the reader left.
    space_freed: Notify,
    /// One fsync at a time; pushes that arrive meanwhile share the next one.
    sync_turn: tokio::sync::Mutex<()>,
    /// Records below this sequence are known to be fsynced.
    durable_end: AtomicU64,
    syncer_started: AtomicBool,
}

struct State {
    /// Sequence of the next record pushed.
    next_seq: u64,
    used_bytes: u64,
    used_records: u64,
    writers: usize,
    reader_alive: bool,
    /// The last push did not fit (it waited or was dropped); cleared by a
    /// push that fits or once acks free half the buffer. Readiness uses it:
    /// "below max_size" alone stays true while batches no longer fit.
    refused: bool,
    store: Store,
}

enum Store {
    Memory(MemStore),
    Disk(DiskWriter),
}

impl State {
    fn new(store: Store, next_seq: u64, used_bytes: u64, used_records: u64) -> Self {
        State {
            next_seq,
            used_bytes,
            used_records,
            writers: 1,
            reader_alive: true,
            refused: false,
            store,
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing under this lock leaves the state half-updated on a panic,
        // so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn publish(&self, st: &State) {
        self.metrics.bytes.set(st.used_bytes as i64);
        self.metrics.records.set(st.used_records as i64);
    }

    /// Returns once every record below `end` is fsynced (disk mode).
    async fn sync_through(&self, end: u64) -> Result<(), BufferError> {
        if self.durable_end.load(Ordering::Acquire) >= end {
            return Ok(());
        }
        let _turn = self.sync_turn.lock().await;
        // The fsync we waited behind may have covered us.
        if self.durable_end.load(Ordering::Acquire) >= end {
            return Ok(());
        }
        let (job, end_now) = {
            let st = self.lock();
            match &st.store {
                Store::Disk(w) => (w.sync_job(), st.next_seq),
                Store::Memory(_) => return Ok(()),
            }
        };
        // fsync takes milliseconds: keep it off the async worker threads.
        let dir = job.dir.clone();
        let (job, res) = tokio::task::spawn_blocking(move || {
            let r = job.run();
            (job, r)
        })
        .await
        .map_err(|e| BufferError::io(&dir, std::io::Error::other(e)))?;
        res?;
        if let Store::Disk(w) = &mut self.lock().store {
            w.synced(&job);
        }
        self.durable_end.fetch_max(end_now, Ordering::AcqRel);
        Ok(())
    }

    fn start_syncer(self: &Arc<Self>, every: Duration) {
        if self.syncer_started.swap(true, Ordering::AcqRel) {
            return;
        }
        // Weak: the task must not keep the buffer alive.
        let weak: Weak<Shared> = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(sh) = weak.upgrade() else { return };
                let end = {
                    let st = sh.lock();
                    if st.writers == 0 {
                        return; // the last writer's drop did the final fsync
                    }
                    st.next_seq
                };
                if let Err(e) = sh.sync_through(end).await {
                    tracing::error!(error = %e, "buffer fsync failed; retrying at the next interval");
                }
            }
        });
    }
}

/// Opens (and in disk mode recovers) the buffer. The disk recovery does
/// blocking I/O: call it at startup, not on a busy runtime thread.
pub fn open(cfg: BufferConfig, metrics: BufferMetrics) -> Result<(Writer, Reader), BufferError> {
    metrics.max_bytes.set(cfg.max_size as i64);
    if cfg.max_size <= RECORD_OVERHEAD {
        return Err(BufferError::Config(format!(
            "max_size {} is too small",
            cfg.max_size
        )));
    }
    let min_segment = format::HEADER_LEN + RECORD_OVERHEAD + 1;
    if cfg.dir.is_some() && cfg.segment_size < min_segment {
        return Err(BufferError::Config(format!(
            "segment_size {} is below the minimum of {min_segment}",
            cfg.segment_size
        )));
    }
    let fsync = match cfg.fsync {
        FsyncPolicy::Interval(d) if d.is_zero() => FsyncPolicy::Always,
        f => f,
    };
    let (st, side, acked, lock) = match &cfg.dir {
        None => {
            let store = Store::Memory(MemStore::default());
            (State::new(store, 0, 0, 0), Side::Memory, 0, None)
        }
        Some(dir) => {
            let r = disk::recover(dir, cfg.segment_size, &metrics)?;
            let st = State::new(
                Store::Disk(r.writer),
                r.next_seq,
                r.used_bytes,
                r.used_records,
            );
            let side = Side::Disk(Box::new(r.reader));
            (st, side, r.acked, Some(Arc::new(r.lock)))
        }
    };
    let next_seq = st.next_seq;
    let shared = Arc::new(Shared {
        disk: cfg.dir.is_some(),
        max_size: cfg.max_size,
        max_record: cfg.max_size.min(u64::from(u32::MAX) + RECORD_OVERHEAD),
        when_full: cfg.when_full,
        fsync,
        metrics,
        data_ready: Notify::new(),
        space_freed: Notify::new(),
        sync_turn: tokio::sync::Mutex::new(()),
        // Recovery fsynced what it found.
        durable_end: AtomicU64::new(next_seq),
        syncer_started: AtomicBool::new(false),
        state: Mutex::new(st),
    });
    shared.publish(&shared.lock());
    let writer = Writer {
        shared: shared.clone(),
        _dir_lock: lock.clone(),
    };
    let reader = Reader {
        shared,
        read_seq: acked,
        acked,
        side,
        _dir_lock: lock,
    };
    Ok((writer, reader))
}

/// The producers' handle; clone it for each. When every clone is dropped
/// the reader drains what is left and then sees the end.
pub struct Writer {
    shared: Arc<Shared>,
    /// Held by the handles, not by `Shared`, so that the directory is free
    /// again as soon as the handles are gone even if a background fsync
    /// still runs.
    _dir_lock: Option<Arc<std::fs::File>>,
}

impl Clone for Writer {
    fn clone(&self) -> Self {
        self.shared.lock().writers += 1;
        Writer {
            shared: self.shared.clone(),
            _dir_lock: self._dir_lock.clone(),
        }
    }
}

impl Writer {
    /// Stores all the records or none (`Dropped`, or an error before
    /// anything is written). Returns when they are stored as the fsync
    /// policy promises. Waits while the buffer is full in `Block` mode.
    ///
    /// On an I/O error some of the records may have been stored: treat the
    /// error as "maybe stored" and send again (at least once). Waiting
    /// pushes are not served in order: a small one may pass a large one.
    pub async fn push(&self, records: Vec<Vec<u8>>) -> Result<Pushed, BufferError> {
        let sh = &self.shared;
        let mut total = 0u64;
        for r in &records {
            let size = RECORD_OVERHEAD + r.len() as u64;
            if size > sh.max_record {
                return Err(BufferError::RecordTooLarge {
                    size,
                    max: sh.max_record,
                });
            }
            total += size;
        }
        if records.is_empty() {
            return Ok(Pushed::Stored);
        }
        if total > sh.max_size {
            return Err(BufferError::BatchTooLarge {
                size: total,
                max: sh.max_size,
            });
        }
        let end = loop {
            let freed = sh.space_freed.notified();
            tokio::pin!(freed);
            {
                let mut st = sh.lock();
                if st.used_bytes + total <= sh.max_size {
                    st.refused = false;
                    break store(sh, &mut st, records, total)?;
                }
                st.refused = true;
                if sh.when_full == WhenFull::DropNewest {
                    sh.metrics.dropped.inc_by(records.len() as u64);
                    return Ok(Pushed::Dropped);
                }
                if !st.reader_alive {
                    return Err(BufferError::Closed);
                }
                // Registered before the lock is released, so an ack in
                // between still wakes us.
                freed.as_mut().enable();
            }
            freed.await;
        };
        if sh.disk {
            match sh.fsync {
                FsyncPolicy::Always => sh.sync_through(end).await?,
                FsyncPolicy::Interval(every) => sh.start_syncer(every),
            }
        }
        Ok(Pushed::Stored)
    }

    /// True unless the last push did not fit (readiness).
    pub fn has_room(&self) -> bool {
        self.room_probe().has_room()
    }

    /// A handle that answers `has_room` without counting as a writer, so
    /// holding it does not keep the buffer open.
    pub fn room_probe(&self) -> RoomProbe {
        RoomProbe(self.shared.clone())
    }

    /// fsyncs everything pushed so far (no-op in memory mode).
    pub async fn sync(&self) -> Result<(), BufferError> {
        let end = self.shared.lock().next_seq;
        self.shared.sync_through(end).await
    }
}

#[derive(Clone)]
pub struct RoomProbe(Arc<Shared>);

impl RoomProbe {
    pub fn has_room(&self) -> bool {
        let st = self.0.lock();
        !st.refused && st.used_bytes < self.0.max_size
    }
}

/// Appends under the lock; returns the sequence after the last record.
fn store(
    sh: &Shared,
    st: &mut State,
    records: Vec<Vec<u8>>,
    total: u64,
) -> Result<u64, BufferError> {
    let first = st.next_seq;
    let (n, bytes, res) = match &mut st.store {
        Store::Memory(m) => {
            let n = records.len();
            m.append(records);
            (n, total, Ok(()))
        }
        Store::Disk(w) => {
            let (n, res) = w.append(first, &records);
            let bytes = records[..n]
                .iter()
                .map(|r| RECORD_OVERHEAD + r.len() as u64)
                .sum();
            (n, bytes, res)
        }
    };
    st.next_seq += n as u64;
    st.used_bytes += bytes;
    st.used_records += n as u64;
    sh.publish(st);
    if n > 0 {
        sh.data_ready.notify_one();
    }
    res.map(|()| st.next_seq)
}

impl Drop for Writer {
    fn drop(&mut self) {
        let sh = &self.shared;
        let job = {
            let mut st = sh.lock();
            st.writers -= 1;
            if st.writers > 0 {
                return;
            }
            sh.data_ready.notify_one();
            match &st.store {
                Store::Disk(w) if sh.durable_end.load(Ordering::Acquire) < st.next_seq => {
                    Some((w.sync_job(), st.next_seq))
                }
                _ => None,
            }
        };
        // The last writer fsyncs what the interval task has not yet, so a
        // clean shutdown leaves everything on disk.
        if let Some((job, end)) = job {
            match job.run() {
                Ok(()) => {
                    if let Store::Disk(w) = &mut sh.lock().store {
                        w.synced(&job);
                    }
                    sh.durable_end.fetch_max(end, Ordering::AcqRel);
                }
                Err(e) => tracing::error!(error = %e, "buffer fsync at close failed"),
            }
        }
    }
}

enum Side {
    Memory,
    Disk(Box<DiskReader>),
}

/// The sink's handle: there is exactly one.
pub struct Reader {
    shared: Arc<Shared>,
    /// Next sequence to deliver.
    read_seq: u64,
    /// First sequence not acknowledged.
    acked: u64,
    side: Side,
    _dir_lock: Option<Arc<std::fs::File>>,
}

impl Reader {
    /// Waits until at least one record is available, then returns up to
    /// `max_records` (at least 1) records, oldest first, with their
    /// sequence numbers, stopping before the payload bytes would pass
    /// `max_bytes` (a single larger record is still returned alone).
    /// Returns `None` once every writer is dropped and all is delivered.
    ///
    /// Cancel-safe: nothing is consumed unless records are returned.
    /// A read error is logged and retried every second; a corrupt record
    /// found now is skipped and counted.
    pub async fn next_batch(
        &mut self,
        max_records: usize,
        max_bytes: usize,
    ) -> Option<Vec<(u64, Vec<u8>)>> {
        let max_records = max_records.max(1);
        let mut failing = false;
        loop {
            // Taken before reading: once closed, no push can come after it,
            // so a read that then finds nothing has seen the end.
            let (end, closed) = {
                let st = self.shared.lock();
                (st.next_seq, st.writers == 0)
            };
            if self.read_seq < end {
                let before = self.read_seq;
                let mut out = Vec::new();
                let res = match &mut self.side {
                    Side::Memory => {
                        if let Store::Memory(m) = &self.shared.lock().store {
                            m.read(&mut self.read_seq, max_records, max_bytes, &mut out);
                        }
                        Ok(())
                    }
                    Side::Disk(d) => d.read(
                        &self.shared,
                        &mut self.read_seq,
                        max_records,
                        max_bytes,
                        &mut out,
                    ),
                };
                if !out.is_empty() {
                    return Some(out);
                }
                match res {
                    // Only corrupt slots were passed over: look again.
                    Ok(()) if self.read_seq > before => continue,
                    // Nothing readable: numbers skipped at the end (a damaged
                    // segment's) are not records.
                    Ok(()) => {}
                    Err(e) => {
                        if !failing {
                            tracing::error!(error = %e, "cannot read the buffer; retrying every second");
                            failing = true;
                        }
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                }
            }
            if closed {
                return None;
            }
            self.shared.data_ready.notified().await;
        }
    }

    /// Everything up to and including `seq` is delivered: frees its space,
    /// deletes segments with nothing left to deliver, and persists the
    /// position (at most every 100 ms, but always before a deletion).
    pub fn ack(&mut self, seq: u64) -> Result<(), BufferError> {
        if seq >= self.read_seq {
            return Err(BufferError::AckBeyondDelivered {
                seq,
                next: self.read_seq,
            });
        }
        if seq < self.acked {
            return Ok(());
        }
        let acked = seq + 1;
        let sh = self.shared.clone();
        let mut st = sh.lock();
        let (bytes, records, doomed) = match (&mut self.side, &mut st.store) {
            (Side::Memory, Store::Memory(m)) => {
                let (b, r) = m.ack(acked);
                (b, r, Vec::new())
            }
            (Side::Disk(d), Store::Disk(w)) => {
                let (b, r) = d.take_acked(acked);
                (b, r, w.pop_acked(acked))
            }
            _ => unreachable!("reader and store are of the same mode"),
        };
        st.used_bytes = st.used_bytes.saturating_sub(bytes);
        st.used_records = st.used_records.saturating_sub(records);
        if st.used_bytes <= sh.max_size / 2 {
            st.refused = false;
        }
        sh.publish(&st);
        drop(st);
        self.acked = acked;
        sh.space_freed.notify_waiters();
        match &mut self.side {
            Side::Disk(d) => d.after_ack(acked, doomed),
            Side::Memory => Ok(()),
        }
    }

    /// Delivers the unacknowledged records again, from the oldest (the sink
    /// calls this when a send failed and it wants to read them again).
    pub fn rewind(&mut self) {
        self.read_seq = self.acked;
        if let Side::Disk(d) = &mut self.side {
            d.rewind();
        }
    }

    /// Records and bytes (framing included) not yet acknowledged.
    pub fn pending(&self) -> (u64, u64) {
        let st = self.shared.lock();
        (st.used_records, st.used_bytes)
    }

    /// Persists the position now (the throttle otherwise leaves up to
    /// 100 ms of acknowledgements to be re-delivered after a crash).
    pub fn sync(&mut self) -> Result<(), BufferError> {
        match &mut self.side {
            Side::Disk(d) => d.persist(self.acked),
            Side::Memory => Ok(()),
        }
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        if let Err(e) = self.sync() {
            tracing::warn!(error = %e, "cannot persist the buffer position; some records will be delivered again");
        }
        self.shared.lock().reader_alive = false;
        self.shared.space_freed.notify_waiters();
    }
}
