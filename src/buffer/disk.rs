//! Disk mode: recovery, the writer's segments, the reader's cursor and the
//! persisted reader position.

use std::collections::{BTreeMap, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::format::{
    self, HEADER_LEN, Header, RECORD_OVERHEAD, Window, check_header, encode_record,
    parse_record_header, record_crc, segment_header, segment_name,
};
use super::{BufferError, BufferMetrics, Shared, Store};

const POS_FILE: &str = "reader.pos";
const POS_TMP: &str = "reader.pos.tmp";
const POS_MAGIC: [u8; 4] = *b"KGRP";
const LOCK_FILE: &str = "lock";
/// A crash re-delivers at most this much of acknowledged work, and the
/// sink does not pay an fsync per ack.
const PERSIST_EVERY: Duration = Duration::from_millis(100);
/// Keep the encode buffer of a huge push from staying allocated.
const SCRATCH_KEEP: usize = 4 << 20;
/// Sequences beyond this in a file name or `reader.pos` are damage: a
/// billion records a second would take 146 years to get there, and
/// arithmetic on them must not overflow.
const MAX_SEQ: u64 = 1 << 62;

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> BufferError + '_ {
    move |e| BufferError::io(path, e)
}

/// A segment as the writer and the reader share it (under the lock).
#[derive(Debug, Clone, Copy)]
pub(super) struct SegMeta {
    pub first: u64,
    /// Record slots written, corrupt ones found by recovery included.
    pub slots: u64,
    /// Bytes of the file that hold whole records: the reader never reads
    /// past this, so it never sees a record the writer is still writing.
    pub len: u64,
    /// No longer appended to.
    pub sealed: bool,
}

pub(super) struct DiskWriter {
    dir: PathBuf,
    segment_size: u64,
    /// Oldest first; the last one is the one being appended to.
    segments: VecDeque<SegMeta>,
    current: (PathBuf, Arc<File>),
    /// Rolled segments whose last writes may not be fsynced yet.
    unsynced: Vec<(PathBuf, Arc<File>)>,
    /// Bumped when a segment file is created: the directory needs an fsync
    /// for the new name to survive a power loss.
    dir_gen: u64,
    dir_synced_gen: u64,
    scratch: Vec<u8>,
}

/// What one fsync round covers, taken under the lock and run without it.
pub(super) struct SyncJob {
    files: Vec<(PathBuf, Arc<File>)>,
    rolled: usize,
    pub dir: PathBuf,
    /// Set when the directory needs an fsync too (a segment was created).
    dir_gen: Option<u64>,
}

impl SyncJob {
    pub(super) fn run(&self) -> Result<(), BufferError> {
        for (path, f) in &self.files {
            f.sync_data().map_err(io_err(path))?;
        }
        if self.dir_gen.is_some() {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }
}

fn sync_dir(dir: &Path) -> Result<(), BufferError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

fn create_segment(dir: &Path, first: u64) -> Result<(PathBuf, File), BufferError> {
    let path = dir.join(segment_name(first));
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(io_err(&path))?;
    f.write_all_at(&segment_header(first), 0)
        .map_err(io_err(&path))?;
    Ok((path, f))
}

impl DiskWriter {
    /// Writes the records (to the page cache) and returns how many were
    /// written, with the error that stopped it, if any. Records written
    /// before an error stay: they are whole and the caller counts them.
    pub(super) fn append(
        &mut self,
        first_seq: u64,
        records: &[Vec<u8>],
    ) -> (usize, Result<(), BufferError>) {
        let mut i = 0;
        while i < records.len() {
            let back = *self
                .segments
                .back()
                .expect("there is always a current segment");
            let next = RECORD_OVERHEAD + records[i].len() as u64;
            // A record never straddles segments; a lone oversized one gets
            // a segment to itself.
            if back.slots > 0 && back.len + next > self.segment_size {
                if let Err(e) = self.roll(first_seq + i as u64) {
                    return (i, Err(e));
                }
                continue;
            }
            let start = i;
            let mut len = back.len;
            self.scratch.clear();
            while i < records.len() {
                let n = RECORD_OVERHEAD + records[i].len() as u64;
                if i > start && len + n > self.segment_size {
                    break;
                }
                encode_record(&mut self.scratch, &records[i]);
                len += n;
                i += 1;
            }
            // One write per segment chunk: whole records land in the page
            // cache before `push` returns, so a crash of kubegate keeps them.
            let (path, file) = &self.current;
            let res = file
                .write_all_at(&self.scratch, back.len)
                .map_err(io_err(path));
            if self.scratch.capacity() > SCRATCH_KEEP {
                self.scratch = Vec::new();
            }
            if let Err(e) = res {
                return (start, Err(e));
            }
            let seg = self.segments.back_mut().expect("current segment");
            seg.len = len;
            seg.slots += (i - start) as u64;
        }
        (i, Ok(()))
    }

    fn roll(&mut self, first: u64) -> Result<(), BufferError> {
        let (path, file) = create_segment(&self.dir, first)?;
        let old = std::mem::replace(&mut self.current, (path, Arc::new(file)));
        self.unsynced.push(old);
        if let Some(b) = self.segments.back_mut() {
            b.sealed = true;
        }
        self.segments.push_back(SegMeta {
            first,
            slots: 0,
            len: HEADER_LEN,
            sealed: false,
        });
        self.dir_gen += 1;
        Ok(())
    }

    pub(super) fn sync_job(&self) -> SyncJob {
        let mut files = self.unsynced.clone();
        files.push(self.current.clone());
        let dir_gen = (self.dir_gen > self.dir_synced_gen).then_some(self.dir_gen);
        SyncJob {
            files,
            rolled: self.unsynced.len(),
            dir: self.dir.clone(),
            dir_gen,
        }
    }

    pub(super) fn synced(&mut self, job: &SyncJob) {
        // Only those the job saw: segments rolled meanwhile still need it.
        self.unsynced.drain(..job.rolled.min(self.unsynced.len()));
        if let Some(g) = job.dir_gen {
            self.dir_synced_gen = self.dir_synced_gen.max(g);
        }
    }

    /// The segment holding `seq`, or the first one after it when `seq` falls
    /// in a gap; None when nothing at or after `seq` is written yet.
    pub(super) fn locate(&self, seq: u64) -> Option<SegMeta> {
        let i = self.segments.partition_point(|m| m.first + m.slots <= seq);
        self.segments.get(i).copied().filter(|m| m.slots > 0)
    }

    /// Forgets the sealed segments whose records are all acknowledged and
    /// returns their files, to delete once the position is persisted.
    pub(super) fn pop_acked(&mut self, acked: u64) -> Vec<PathBuf> {
        let mut doomed = Vec::new();
        while let Some(f) = self.segments.front()
            && f.sealed
            && f.first + f.slots <= acked
        {
            doomed.push(self.dir.join(segment_name(f.first)));
            self.segments.pop_front();
        }
        doomed
    }
}

/// A record slot delivered (or skipped) and not yet acknowledged.
struct Inflight {
    /// Last sequence this entry covers.
    seq: u64,
    bytes: u64,
    /// Records it counts in `used_records` (a corrupt slot found by
    /// recovery was never counted).
    records: u64,
    seg: u64,
    /// Offset just past it in segment `seg`.
    end: u64,
}

/// A known (sequence, offset) pair, so a rewind need not walk the segment.
#[derive(Clone, Copy)]
struct Mark {
    seq: u64,
    seg: u64,
    off: u64,
}

struct Cursor {
    seg: u64,
    path: PathBuf,
    file: File,
    /// Sequence and offset of the next slot to read.
    seq: u64,
    off: u64,
}

pub(super) struct DiskReader {
    dir: PathBuf,
    cur: Option<Cursor>,
    window: Window,
    inflight: VecDeque<Inflight>,
    mark: Option<Mark>,
    /// Corrupt slots at or past the ack position → whether they count in
    /// `used_records`.
    skip: BTreeMap<u64, bool>,
    metrics: BufferMetrics,
    persisted: u64,
    last_persist: Instant,
    /// Fully acknowledged segment files, deleted after the next persist.
    doomed: Vec<PathBuf>,
}

/// A failure that ends the reading of one segment.
enum SegFail {
    /// Framing broken or file gone: nothing more can be read from it.
    Broken(String),
    Io(BufferError),
}

impl DiskReader {
    /// Appends records from `*read_seq` on to `out`, within the limits.
    pub(super) fn read(
        &mut self,
        shared: &Shared,
        read_seq: &mut u64,
        max_records: usize,
        max_bytes: usize,
        out: &mut Vec<(u64, Vec<u8>)>,
    ) -> Result<(), BufferError> {
        let mut bytes = 0usize;
        loop {
            let meta = match &shared.lock().store {
                Store::Disk(w) => w.locate(*read_seq),
                Store::Memory(_) => None,
            };
            let Some(meta) = meta else { return Ok(()) };
            // A gap: records cut by an earlier recovery or removed by hand.
            *read_seq = (*read_seq).max(meta.first);
            match self.read_segment(&meta, read_seq, max_records, max_bytes, &mut bytes, out) {
                Ok(true) => continue,
                Ok(false) => return Ok(()),
                Err(SegFail::Io(e)) => return Err(e),
                Err(SegFail::Broken(why)) if meta.sealed => self.abandon(&meta, read_seq, &why),
                // The writer still appends here: nothing past the damage can
                // be reached until it rolls to a new segment.
                Err(SegFail::Broken(why)) => {
                    return Err(BufferError::BadSegment {
                        path: self.dir.join(segment_name(meta.first)),
                        reason: why,
                    });
                }
            }
        }
    }

    /// Reads from one segment; `Ok(true)` when it is exhausted and the
    /// limits leave room for more.
    fn read_segment(
        &mut self,
        meta: &SegMeta,
        read_seq: &mut u64,
        max_records: usize,
        max_bytes: usize,
        bytes: &mut usize,
        out: &mut Vec<(u64, Vec<u8>)>,
    ) -> Result<bool, SegFail> {
        self.position(meta, *read_seq)?;
        let cur = self.cur.as_mut().expect("positioned");
        let end = meta.first + meta.slots;
        while cur.seq < end {
            if out.len() >= max_records || (!out.is_empty() && *bytes >= max_bytes) {
                return Ok(false);
            }
            let (len, crc) = read_header(&mut self.window, cur, meta.len)?;
            if !out.is_empty() && *bytes + len as usize > max_bytes {
                return Ok(false);
            }
            let body = cur.off + RECORD_OVERHEAD;
            let payload = self
                .window
                .get(&cur.file, body, len as usize, meta.len)
                .map_err(|e| fail_io(cur, e))?;
            let seq = cur.seq;
            let records = if record_crc(payload) == crc {
                out.push((seq, payload.to_vec()));
                *bytes += len as usize;
                1
            } else {
                // Damaged since it was written or recovered: counted once.
                *self.skip.entry(seq).or_insert_with(|| {
                    self.metrics.corrupt.inc();
                    tracing::warn!(file = %cur.path.display(), offset = cur.off, seq, "skipping a corrupt buffer record");
                    true
                }) as u64
            };
            cur.off = body + u64::from(len);
            cur.seq += 1;
            *read_seq = cur.seq;
            self.inflight.push_back(Inflight {
                seq,
                bytes: RECORD_OVERHEAD + u64::from(len),
                records,
                seg: meta.first,
                end: cur.off,
            });
        }
        Ok(true)
    }

    /// Gives up the rest of a sealed segment that cannot be read, keeping
    /// the accounting right: its slots are freed when the ack passes them.
    fn abandon(&mut self, meta: &SegMeta, read_seq: &mut u64, why: &str) {
        let end = meta.first + meta.slots;
        let off = self
            .cur
            .as_ref()
            .filter(|c| c.seg == meta.first && c.seq == *read_seq)
            .map(|c| c.off);
        let uncounted = self
            .skip
            .range(*read_seq..end)
            .filter(|(_, c)| !**c)
            .count() as u64;
        // When the offset is unknown (the file is gone) these bytes stay
        // counted until the next start recomputes them.
        let bytes = off.map_or(0, |o| meta.len.saturating_sub(o));
        self.metrics.corrupt.inc();
        tracing::error!(
            file = %self.dir.join(segment_name(meta.first)).display(),
            reason = why,
            lost_records = end - *read_seq,
            "buffer segment damaged while kubegate runs; skipping the rest of it"
        );
        self.inflight.push_back(Inflight {
            seq: end - 1,
            bytes,
            records: end - *read_seq - uncounted,
            seg: meta.first,
            end: meta.len,
        });
        *read_seq = end;
        self.cur = None;
        self.window.invalidate();
    }

    /// Moves the cursor to `seq` in segment `meta`.
    fn position(&mut self, meta: &SegMeta, seq: u64) -> Result<(), SegFail> {
        if self.cur.as_ref().is_none_or(|c| c.seg != meta.first) {
            let path = self.dir.join(segment_name(meta.first));
            let file = match File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Err(SegFail::Broken("file is gone".into()));
                }
                Err(e) => return Err(SegFail::Io(BufferError::io(&path, e))),
            };
            self.window.invalidate();
            self.cur = Some(Cursor {
                seg: meta.first,
                path,
                file,
                seq: meta.first,
                off: HEADER_LEN,
            });
        }
        let cur = self.cur.as_mut().expect("just set");
        if cur.seq == seq {
            return Ok(());
        }
        match self.mark {
            Some(m)
                if m.seg == meta.first && m.seq <= seq && (m.seq > cur.seq || cur.seq > seq) =>
            {
                (cur.seq, cur.off) = (m.seq, m.off);
            }
            _ if cur.seq > seq => (cur.seq, cur.off) = (meta.first, HEADER_LEN),
            _ => {}
        }
        while cur.seq < seq {
            let (len, _) = read_header(&mut self.window, cur, meta.len)?;
            cur.off += RECORD_OVERHEAD + u64::from(len);
            cur.seq += 1;
        }
        Ok(())
    }

    pub(super) fn rewind(&mut self) {
        self.inflight.clear();
    }

    /// Takes the entries below `acked`; returns the bytes and records freed.
    pub(super) fn take_acked(&mut self, acked: u64) -> (u64, u64) {
        let (mut bytes, mut records) = (0, 0);
        while let Some(f) = self.inflight.front()
            && f.seq < acked
        {
            bytes += f.bytes;
            records += f.records;
            self.mark = Some(Mark {
                seq: f.seq + 1,
                seg: f.seg,
                off: f.end,
            });
            self.inflight.pop_front();
        }
        self.skip = self.skip.split_off(&acked);
        (bytes, records)
    }

    pub(super) fn after_ack(
        &mut self,
        acked: u64,
        doomed: Vec<PathBuf>,
    ) -> Result<(), BufferError> {
        self.doomed.extend(doomed);
        if self.doomed.is_empty() && self.last_persist.elapsed() < PERSIST_EVERY {
            return Ok(());
        }
        self.persist(acked)
    }

    /// Persists the position, then deletes the segments it made useless.
    /// In that order: a crash in between leaves a file that the next
    /// recovery deletes, never a position pointing at deleted records.
    pub(super) fn persist(&mut self, acked: u64) -> Result<(), BufferError> {
        if acked != self.persisted {
            write_pos(&self.dir, acked)?;
            self.persisted = acked;
        }
        self.last_persist = Instant::now();
        for path in self.doomed.drain(..) {
            if let Err(e) = fs::remove_file(&path)
                && e.kind() != io::ErrorKind::NotFound
            {
                tracing::warn!(file = %path.display(), error = %e, "cannot delete an acknowledged buffer segment");
            }
        }
        Ok(())
    }
}

fn fail_io(cur: &Cursor, e: io::Error) -> SegFail {
    // The file is shorter than the length recorded for it: it changed under us.
    if e.kind() == io::ErrorKind::UnexpectedEof {
        SegFail::Broken(format!("file shrank below offset {}", cur.off))
    } else {
        SegFail::Io(BufferError::io(&cur.path, e))
    }
}

/// The record header at the cursor, checked to fit in `limit`.
fn read_header(w: &mut Window, cur: &Cursor, limit: u64) -> Result<(u32, u32), SegFail> {
    if cur.off + RECORD_OVERHEAD > limit {
        return Err(SegFail::Broken(format!(
            "record header at offset {} runs past the end",
            cur.off
        )));
    }
    let h = parse_record_header(
        w.get(&cur.file, cur.off, RECORD_OVERHEAD as usize, limit)
            .map_err(|e| fail_io(cur, e))?,
    );
    if cur.off + RECORD_OVERHEAD + u64::from(h.0) > limit {
        return Err(SegFail::Broken(format!(
            "record length at offset {} runs past the end",
            cur.off
        )));
    }
    Ok(h)
}

pub(super) fn write_pos(dir: &Path, acked: u64) -> Result<(), BufferError> {
    let mut b = [0u8; 16];
    b[..4].copy_from_slice(&POS_MAGIC);
    b[4..12].copy_from_slice(&acked.to_le_bytes());
    let crc = crc32fast::hash(&b[..12]);
    b[12..].copy_from_slice(&crc.to_le_bytes());
    let tmp = dir.join(POS_TMP);
    let f = File::create(&tmp).map_err(io_err(&tmp))?;
    f.write_all_at(&b, 0).map_err(io_err(&tmp))?;
    // Without this a crash soon after the rename can leave an empty file
    // under the new name on some filesystems. The directory is not
    // fsynced: losing the rename only means re-delivering, never a loss.
    f.sync_data().map_err(io_err(&tmp))?;
    let path = dir.join(POS_FILE);
    fs::rename(&tmp, &path).map_err(io_err(&path))
}

/// The persisted position; None when there is none or it is damaged (then
/// everything still on disk is delivered again: at least once).
fn read_pos(dir: &Path) -> Result<Option<u64>, BufferError> {
    let path = dir.join(POS_FILE);
    let mut b = Vec::new();
    match File::open(&path) {
        // Bounded: a hostile huge file costs nothing.
        Ok(f) => f.take(64).read_to_end(&mut b).map_err(io_err(&path))?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(BufferError::io(&path, e)),
    };
    let valid = b.len() == 16
        && b[..4] == POS_MAGIC
        && crc32fast::hash(&b[..12]).to_le_bytes() == b[12..16];
    if !valid {
        tracing::warn!(file = %path.display(), "damaged buffer position; delivering every record still on disk again");
        return Ok(None);
    }
    let acked = u64::from_le_bytes(b[4..12].try_into().expect("8 bytes"));
    if acked > MAX_SEQ {
        tracing::warn!(file = %path.display(), position = acked, "buffer position out of range; delivering every record still on disk again");
        return Ok(None);
    }
    Ok(Some(acked))
}

/// Renames a file that is not a readable segment out of the way: not
/// deleted, someone may want to look at it.
fn set_aside(path: &Path, why: &str) -> Result<(), BufferError> {
    let aside = path.with_extension("log.corrupt");
    fs::rename(path, &aside).map_err(io_err(path))?;
    tracing::error!(file = %path.display(), moved_to = %aside.display(), reason = why, "not a buffer segment; set aside");
    Ok(())
}

pub(super) struct Recovered {
    pub writer: DiskWriter,
    pub reader: DiskReader,
    pub next_seq: u64,
    pub acked: u64,
    pub used_bytes: u64,
    pub used_records: u64,
    pub lock: File,
}

/// Opens the directory: takes the lock, reads the position, scans and
/// repairs the segments, and starts a new segment for this run's writes.
pub(super) fn recover(
    dir: &Path,
    segment_size: u64,
    metrics: &BufferMetrics,
) -> Result<Recovered, BufferError> {
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    let lock_path = dir.join(LOCK_FILE);
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io_err(&lock_path))?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            return Err(BufferError::Locked {
                path: dir.to_owned(),
            });
        }
        Err(fs::TryLockError::Error(e)) => return Err(BufferError::io(&lock_path, e)),
    }
    match fs::remove_file(dir.join(POS_TMP)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            return Err(BufferError::io(&dir.join(POS_TMP), e));
        }
        _ => {}
    }
    let pos = read_pos(dir)?;
    let live_from = pos.unwrap_or(0);

    let mut names = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        if let Some(first) = entry
            .file_name()
            .to_str()
            .and_then(format::parse_segment_name)
        {
            names.push((first, entry.path()));
        }
    }
    names.sort();

    let mut segments = VecDeque::new();
    let (mut used_bytes, mut used_records, mut corrupt) = (0, 0, 0);
    let mut skip = BTreeMap::new();
    let mut mark = None;
    // Past every sequence any segment file ever held, deleted ones too:
    // new records never reuse a number.
    let mut disk_end = 0;
    for (first, path) in &names {
        let first = *first;
        if first > MAX_SEQ {
            set_aside(path, "sequence number out of range")?;
            corrupt += 1;
            continue;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(io_err(path))?;
        let len = file.metadata().map_err(io_err(path))?.len();
        let mut head = vec![0u8; len.min(HEADER_LEN) as usize];
        file.read_exact_at(&mut head, 0).map_err(io_err(path))?;
        match check_header(&head, first) {
            Header::Valid => {}
            Header::Torn => {
                // Died while creating it: it never held a record.
                disk_end = disk_end.max(first);
                fs::remove_file(path).map_err(io_err(path))?;
                continue;
            }
            Header::NewerVersion(v) => {
                return Err(BufferError::BadSegment {
                    path: path.clone(),
                    reason: format!(
                        "format version {v}, this kubegate reads version {}; a newer kubegate wrote it",
                        format::VERSION
                    ),
                });
            }
            Header::Foreign(why) => {
                set_aside(path, &why)?;
                corrupt += 1;
                continue;
            }
        }
        let scan = format::scan_segment(&file, path, first, live_from)?;
        disk_end = disk_end.max(first + scan.slots);
        // Counted unless the cut record would have been acknowledged
        // already (acknowledged, then torn by a power loss).
        if scan.truncated > 0 && first + scan.slots >= live_from {
            corrupt += 1;
            tracing::warn!(file = %path.display(), offset = scan.len, bytes = scan.truncated, "cut a torn or corrupt tail off a buffer segment");
        }
        for &seq in &scan.corrupt {
            corrupt += 1;
            skip.insert(seq, false);
            tracing::warn!(file = %path.display(), seq, "skipping a corrupt buffer record");
        }
        // Judged from what the file holds, not from the next file's name,
        // which a stray file could fake.
        if scan.slots == 0 || pos.is_some_and(|p| first + scan.slots <= p) {
            // Empty, or all acknowledged and the last run died before
            // deleting it.
            fs::remove_file(path).map_err(io_err(path))?;
            continue;
        }
        // The last run may have died with these only in the page cache.
        file.sync_data().map_err(io_err(path))?;
        used_bytes += scan.live_bytes;
        used_records += scan.live_records;
        if let Some(off) = scan.live_off {
            mark = Some(Mark {
                seq: live_from,
                seg: first,
                off,
            });
        }
        segments.push_back(SegMeta {
            first,
            slots: scan.slots,
            len: scan.len,
            sealed: true,
        });
    }
    metrics.corrupt.inc_by(corrupt);

    let acked = match (pos, segments.front()) {
        (Some(p), Some(oldest)) if p < oldest.first => {
            tracing::warn!(
                from = p,
                to = oldest.first,
                "buffer records missing before the oldest segment (cut as corrupt earlier, or deleted by hand)"
            );
            oldest.first
        }
        (Some(p), _) => p,
        (None, Some(oldest)) => oldest.first,
        (None, None) => 0,
    };
    if acked > disk_end && disk_end > 0 {
        // Acknowledged, then lost from the segment (power loss with an
        // fsync interval): delivered already, so nothing is missing.
        tracing::warn!(
            position = acked,
            end = disk_end,
            "buffer position is past the last record on disk; continuing from the position"
        );
    }
    let next_seq = disk_end.max(acked);
    let (cur_path, cur_file) = create_segment(dir, next_seq)?;
    cur_file.sync_data().map_err(io_err(&cur_path))?;
    sync_dir(dir)?;
    segments.push_back(SegMeta {
        first: next_seq,
        slots: 0,
        len: HEADER_LEN,
        sealed: false,
    });

    let mut writer = DiskWriter {
        dir: dir.to_owned(),
        segment_size,
        segments,
        current: (cur_path, Arc::new(cur_file)),
        unsynced: Vec::new(),
        dir_gen: 0,
        dir_synced_gen: 0,
        scratch: Vec::new(),
    };
    let mut reader = DiskReader {
        dir: dir.to_owned(),
        cur: None,
        window: Window::default(),
        inflight: VecDeque::new(),
        mark,
        skip,
        metrics: metrics.clone(),
        persisted: u64::MAX,
        last_persist: Instant::now(),
        doomed: writer.pop_acked(acked),
    };
    reader.persist(acked)?;
    Ok(Recovered {
        writer,
        reader,
        next_seq,
        acked,
        used_bytes,
        used_records,
        lock,
    })
}
