//! On-disk format of the buffer and the recovery scan.
//!
//! A segment file `segment-<20-digit first sequence>.log` is a 16-byte
//! header followed by records:
//!
//! ```text
//! header: b"KGBS" | u32 LE version (1) | u64 LE first sequence
//! record: u32 LE payload length | u32 LE crc32 | payload
//! ```
//!
//! The CRC (crc32/IEEE, as `crc32fast` computes it) covers the four length
//! bytes and then the payload. Covering the length is why a run of zero
//! bytes (what some filesystems leave after a power loss: the file grew but
//! its data never reached the disk) never reads as valid empty records:
//! crc32 of four zero bytes is not zero. It also catches a flipped bit in
//! the length field itself.
//!
//! Records carry no sequence number: the n-th record slot of a segment has
//! sequence `first + n`. A slot keeps its number even when its payload is
//! found corrupt, so sequence numbers never shift under the reader.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::BufferError;

pub(super) const MAGIC: [u8; 4] = *b"KGBS";
pub(super) const VERSION: u32 = 1;
pub(super) const HEADER_LEN: u64 = 16;
/// Length and CRC in front of every payload.
pub(super) const RECORD_OVERHEAD: u64 = 8;
/// How much the readers fetch at once; also the most a scan holds in memory.
const CHUNK: usize = 1 << 20;

pub(super) fn segment_name(first_seq: u64) -> String {
    format!("segment-{first_seq:020}.log")
}

/// The first sequence of a segment file name, or None for any other file.
pub(super) fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("segment-")?.strip_suffix(".log")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

pub(super) fn segment_header(first_seq: u64) -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    h[..4].copy_from_slice(&MAGIC);
    h[4..8].copy_from_slice(&VERSION.to_le_bytes());
    h[8..].copy_from_slice(&first_seq.to_le_bytes());
    h
}

pub(super) fn record_crc(payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&(payload.len() as u32).to_le_bytes());
    h.update(payload);
    h.finalize()
}

/// Appends one framed record; the caller has checked `payload.len()` fits a u32.
pub(super) fn encode_record(out: &mut Vec<u8>, payload: &[u8]) {
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&record_crc(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

pub(super) fn parse_record_header(h: &[u8]) -> (u32, u32) {
    let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
    let crc = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
    (len, crc)
}

/// What the first bytes of a segment file say.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Header {
    Valid,
    /// Shorter than a header and a prefix of the one we would write: the
    /// process died while creating the file, which holds no record.
    Torn,
    /// Not ours, or damaged: the file is set aside, never deleted.
    Foreign(String),
    /// Ours, from a newer kubegate: refuse to touch it.
    NewerVersion(u32),
}

pub(super) fn check_header(bytes: &[u8], first_seq: u64) -> Header {
    let expect = segment_header(first_seq);
    if bytes.len() < expect.len() {
        return if expect.starts_with(bytes) {
            Header::Torn
        } else {
            Header::Foreign(format!("{} bytes, not a segment header", bytes.len()))
        };
    }
    if bytes[..4] != MAGIC {
        return Header::Foreign("no segment magic".into());
    }
    let version = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    if version != VERSION {
        return Header::NewerVersion(version);
    }
    let seq = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes"));
    if seq != first_seq {
        return Header::Foreign(format!(
            "header says first sequence {seq}, the name says {first_seq}"
        ));
    }
    Header::Valid
}

/// A read-through cache over one file: consecutive small reads become one
/// `pread` of up to [`CHUNK`] bytes. Never reads past the `limit` it is
/// given, so a reader never sees bytes the writer has not finished.
#[derive(Default)]
pub(super) struct Window {
    buf: Vec<u8>,
    start: u64,
}

impl Window {
    pub(super) fn invalidate(&mut self) {
        self.buf.clear();
        self.start = 0;
    }

    /// `len` bytes at `off`; the caller guarantees `off + len <= limit`.
    pub(super) fn get(
        &mut self,
        file: &File,
        off: u64,
        len: usize,
        limit: u64,
    ) -> io::Result<&[u8]> {
        debug_assert!(off + len as u64 <= limit);
        let have = off >= self.start && off + len as u64 <= self.start + self.buf.len() as u64;
        if !have {
            let want = (len.max(CHUNK) as u64).min(limit - off) as usize;
            // A huge record grew the buffer once; do not keep that forever.
            if self.buf.capacity() > 4 * CHUNK && want <= CHUNK {
                self.buf = Vec::new();
            }
            // Only the length changes: the read overwrites every byte, so
            // zeroing the whole window first was one more pass per read.
            self.buf.resize(want, 0);
            self.start = off;
            if let Err(e) = file.read_exact_at(&mut self.buf, off) {
                self.invalidate();
                return Err(e);
            }
        }
        let s = (off - self.start) as usize;
        Ok(&self.buf[s..s + len])
    }
}

/// One record as the scan sees it.
enum Slot {
    /// Header or payload runs past the end of the file.
    Torn,
    Read {
        len: u64,
        crc_ok: bool,
    },
}

fn read_slot(file: &File, w: &mut Window, off: u64, file_len: u64) -> io::Result<Slot> {
    if off + RECORD_OVERHEAD > file_len {
        return Ok(Slot::Torn);
    }
    let (len, crc) = parse_record_header(w.get(file, off, RECORD_OVERHEAD as usize, file_len)?);
    let len = u64::from(len);
    let body = off + RECORD_OVERHEAD;
    if body + len > file_len {
        return Ok(Slot::Torn);
    }
    // The CRC goes chunk by chunk so a hostile length costs no memory.
    let mut h = crc32fast::Hasher::new();
    h.update(&(len as u32).to_le_bytes());
    let mut at = body;
    while at < body + len {
        let n = (body + len - at).min(CHUNK as u64) as usize;
        h.update(w.get(file, at, n, file_len)?);
        at += n as u64;
    }
    Ok(Slot::Read {
        len,
        crc_ok: h.finalize() == crc,
    })
}

/// What a segment holds after recovery.
#[derive(Debug, Default)]
pub(super) struct Scan {
    /// Record slots, corrupt ones included.
    pub slots: u64,
    /// Valid length of the file (after truncation).
    pub len: u64,
    /// Bytes cut off the end: a torn or corrupt tail.
    pub truncated: u64,
    /// Sequences of corrupt slots that were skipped, at or after `live_from`.
    pub corrupt: Vec<u64>,
    /// Framed bytes (overhead included) of slots at or after `live_from`.
    pub live_bytes: u64,
    /// Readable records at or after `live_from`.
    pub live_records: u64,
    /// File offset of the slot `live_from`, when it falls in this segment.
    pub live_off: Option<u64>,
}

/// Walks a segment from its header to its end, checking every CRC, and cuts
/// off a torn or corrupt tail. The rule, record by record at offset `o`:
///
/// 1. the header or the payload runs past the end of the file → torn tail:
///    truncate at `o`;
/// 2. the CRC matches → a record;
/// 3. the CRC does not match, and a record with a matching CRC starts right
///    where this one's length says it ends → this slot alone is corrupt:
///    skip it (its sequence number is kept, its payload never delivered)
///    and go on;
/// 4. otherwise (the last record of the file, or nothing valid follows, so
///    the length field itself cannot be trusted) → corrupt tail: truncate
///    at `o`. Records after a corrupt length are not searched for: a
///    resynchronising search could mistake payload bytes for a record.
///
/// A truncation counts as one corrupt record whatever it cut, because how
/// many records a damaged tail held cannot be known.
pub(super) fn scan_segment(
    file: &File,
    path: &Path,
    first_seq: u64,
    live_from: u64,
) -> Result<Scan, BufferError> {
    let io = |e| BufferError::io(path, e);
    let file_len = file.metadata().map_err(io)?.len();
    let mut w = Window::default();
    let mut s = Scan::default();
    let mut off = HEADER_LEN;
    while off < file_len {
        let seq = first_seq + s.slots;
        let (len, crc_ok) = match read_slot(file, &mut w, off, file_len).map_err(io)? {
            Slot::Torn => break,
            Slot::Read { len, crc_ok } => (len, crc_ok),
        };
        let next = off + RECORD_OVERHEAD + len;
        if !crc_ok {
            let follows = next < file_len
                && matches!(
                    read_slot(file, &mut w, next, file_len).map_err(io)?,
                    Slot::Read { crc_ok: true, .. }
                );
            if !follows {
                break;
            }
        }
        if seq == live_from {
            s.live_off = Some(off);
        }
        if seq >= live_from {
            s.live_bytes += next - off;
            if crc_ok {
                s.live_records += 1;
            } else {
                s.corrupt.push(seq);
            }
        }
        s.slots += 1;
        off = next;
    }
    if off < file_len {
        file.set_len(off).map_err(io)?;
        file.sync_data().map_err(io)?;
        s.truncated = file_len - off;
    }
    s.len = off;
    if s.live_off.is_none() && first_seq + s.slots == live_from {
        s.live_off = Some(off);
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_reject_others() {
        assert_eq!(segment_name(42), "segment-00000000000000000042.log");
        assert_eq!(parse_segment_name(&segment_name(u64::MAX)), Some(u64::MAX));
        for bad in [
            "segment-1.log",
            "segment-0000000000000000004x.log",
            "reader.pos",
            "segment-00000000000000000042.log.corrupt",
        ] {
            assert_eq!(parse_segment_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn header_checks() {
        let h = segment_header(7);
        assert_eq!(check_header(&h, 7), Header::Valid);
        assert_eq!(check_header(&h[..5], 7), Header::Torn);
        assert_eq!(check_header(&[], 7), Header::Torn);
        assert!(matches!(check_header(&[0; 3], 7), Header::Foreign(_)));
        assert!(matches!(check_header(&h, 8), Header::Foreign(_)));
        let mut newer = h;
        newer[4] = 2;
        assert_eq!(check_header(&newer, 7), Header::NewerVersion(2));
    }

    #[test]
    fn zero_bytes_are_not_a_record() {
        // Why the CRC covers the length: a zeroed tail must not parse.
        assert_ne!(record_crc(&[]), 0);
        let mut rec = Vec::new();
        encode_record(&mut rec, b"abc");
        assert_eq!(rec.len(), 11);
        assert_eq!(parse_record_header(&rec), (3, record_crc(b"abc")));
    }
}
