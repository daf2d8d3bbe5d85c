//! Lumberjack frames (versions `1` and `2`), decoded from a byte buffer
//! without copying payloads. Every length a peer claims is checked against
//! the limits before kubegate waits for (or allocates) that many bytes.
//!
//! ```text
//! W: ver 'W' u32 window-size
//! J: ver 'J' u32 seq u32 len  <len bytes of JSON>
//! D: ver 'D' u32 seq u32 pairs (u32 klen key u32 vlen value)*
//! C: ver 'C' u32 len  <len bytes of zlib, holding more frames>
//! A: ver 'A' u32 seq            (server → client)
//! ```

use flate2::{Decompress, FlushDecompress, Status};

pub const V1: u8 = b'1';
pub const V2: u8 = b'2';

#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    Window {
        version: u8,
        size: u32,
    },
    Json {
        version: u8,
        seq: u32,
        payload: &'a [u8],
    },
    /// v1 key/value pairs, kept encoded (see [`data_pairs`]).
    Data {
        version: u8,
        seq: u32,
        count: u32,
        body: &'a [u8],
    },
    Compressed {
        version: u8,
        payload: &'a [u8],
    },
    Ack {
        version: u8,
        seq: u32,
    },
}

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_frame: u64,
    pub max_decompressed: u64,
}

/// What was wrong with the bytes; `reason()` is the metric label.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("unsupported protocol version byte 0x{0:02x} (expected '1' or '2')")]
    BadVersion(u8),
    #[error("unknown frame type 0x{0:02x} (expected W, J, D, C or A)")]
    BadType(u8),
    #[error("{kind} frame of {size} bytes exceeds max_frame_size {max}")]
    FrameTooLarge {
        kind: &'static str,
        size: u64,
        max: u64,
    },
    #[error("compressed frame inflates past max_decompressed_size {max} bytes")]
    DecompressedTooLarge { max: u64 },
    #[error("compressed frame inside a compressed frame (only one level is allowed)")]
    NestedCompression,
    #[error("invalid zlib data in compressed frame: {0}")]
    BadZlib(String),
    #[error("compressed frame ends in the middle of a frame")]
    TruncatedInner,
    #[error("zlib stream ends before the compressed frame's {0} bytes")]
    TrailingData(usize),
}

impl FrameError {
    pub fn reason(&self) -> &'static str {
        match self {
            FrameError::BadVersion(_) => "bad_version",
            FrameError::BadType(_) => "bad_frame_type",
            FrameError::FrameTooLarge { .. } => "frame_size",
            FrameError::DecompressedTooLarge { .. } => "decompressed_size",
            FrameError::NestedCompression => "nested_compression",
            FrameError::BadZlib(_) | FrameError::TrailingData(_) => "bad_zlib",
            FrameError::TruncatedInner => "truncated",
        }
    }

    /// Limit breaches count as limits, the rest as protocol errors.
    pub fn is_limit(&self) -> bool {
        matches!(
            self,
            FrameError::FrameTooLarge { .. } | FrameError::DecompressedTooLarge { .. }
        )
    }
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4)
        .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

/// Decodes one frame from the start of `buf`. `Ok(None)`: more bytes are
/// needed; `Ok(Some((frame, used)))`: the frame and its length.
pub fn decode<'a>(
    buf: &'a [u8],
    limits: &Limits,
) -> Result<Option<(Frame<'a>, usize)>, FrameError> {
    let Some(&version) = buf.first() else {
        return Ok(None);
    };
    if version != V1 && version != V2 {
        return Err(FrameError::BadVersion(version));
    }
    let Some(&kind) = buf.get(1) else {
        return Ok(None);
    };
    let check = |kind: &'static str, size: u64| {
        if size > limits.max_frame {
            Err(FrameError::FrameTooLarge {
                kind,
                size,
                max: limits.max_frame,
            })
        } else {
            Ok(())
        }
    };
    match kind {
        b'W' | b'A' => {
            let Some(n) = u32_at(buf, 2) else {
                return Ok(None);
            };
            let f = if kind == b'W' {
                Frame::Window { version, size: n }
            } else {
                Frame::Ack { version, seq: n }
            };
            Ok(Some((f, 6)))
        }
        b'J' => {
            let (Some(seq), Some(len)) = (u32_at(buf, 2), u32_at(buf, 6)) else {
                return Ok(None);
            };
            check("JSON", len as u64)?;
            let end = 10 + len as usize;
            Ok(buf.get(10..end).map(|payload| {
                (
                    Frame::Json {
                        version,
                        seq,
                        payload,
                    },
                    end,
                )
            }))
        }
        b'C' => {
            let Some(len) = u32_at(buf, 2) else {
                return Ok(None);
            };
            check("compressed", len as u64)?;
            let end = 6 + len as usize;
            Ok(buf
                .get(6..end)
                .map(|payload| (Frame::Compressed { version, payload }, end)))
        }
        b'D' => {
            let (Some(seq), Some(count)) = (u32_at(buf, 2), u32_at(buf, 6)) else {
                return Ok(None);
            };
            // Walk the pairs to find the end; each length is checked before
            // it is waited for, and so is the running total.
            let mut at = 10usize;
            for _ in 0..count.saturating_mul(2) {
                let Some(n) = u32_at(buf, at) else {
                    return Ok(None);
                };
                at += 4 + n as usize;
                check("data", (at - 10) as u64)?;
                if buf.len() < at {
                    return Ok(None);
                }
            }
            Ok(Some((
                Frame::Data {
                    version,
                    seq,
                    count,
                    body: &buf[10..at],
                },
                at,
            )))
        }
        other => Err(FrameError::BadType(other)),
    }
}

/// The key/value pairs of a `D` frame body (already length-checked).
pub fn data_pairs(body: &[u8], count: u32) -> impl Iterator<Item = (&[u8], &[u8])> {
    let mut at = 0usize;
    (0..count).map_while(move |_| {
        let mut next = || {
            let n = u32_at(body, at)? as usize;
            let s = body.get(at + 4..at + 4 + n)?;
            at += 4 + n;
            Some(s)
        };
        Some((next()?, next()?))
    })
}

/// Inflates a `C` payload into `out` (cleared first), failing as soon as
/// the output would pass `max` — a zip bomb costs at most `max` bytes.
pub fn inflate(payload: &[u8], max: u64, out: &mut Vec<u8>) -> Result<(), FrameError> {
    out.clear();
    let mut z = Decompress::new(true);
    // Most batches inflate 3–10x; start there and grow in steps.
    let first = (payload.len() as u64 * 4).max(4096).min(max + 1) as usize;
    out.reserve(first);
    loop {
        if out.len() as u64 > max {
            return Err(FrameError::DecompressedTooLarge { max });
        }
        if out.capacity() == out.len() {
            let room = (max + 1 - out.len() as u64) as usize;
            out.reserve_exact(out.len().max(4096).min(room));
        }
        let (in0, out0) = (z.total_in(), z.total_out());
        let status = z
            .decompress_vec(&payload[in0 as usize..], out, FlushDecompress::None)
            .map_err(|e| FrameError::BadZlib(e.to_string()))?;
        if status == Status::StreamEnd {
            if out.len() as u64 > max {
                return Err(FrameError::DecompressedTooLarge { max });
            }
            let used = z.total_in() as usize;
            if used < payload.len() {
                return Err(FrameError::TrailingData(payload.len() - used));
            }
            return Ok(());
        }
        let stuck = z.total_in() == in0 && z.total_out() == out0;
        if stuck && out.len() < out.capacity() {
            return Err(FrameError::BadZlib("zlib stream is truncated".into()));
        }
    }
}

/// `ver 'A' seq`.
pub fn ack(version: u8, seq: u32) -> [u8; 6] {
    let s = seq.to_be_bytes();
    [version, b'A', s[0], s[1], s[2], s[3]]
}

/// Encoders, for tests, benches and hostile-input generators.
pub mod encode {
    use std::io::Write;

    pub fn window(out: &mut Vec<u8>, size: u32) {
        out.extend_from_slice(b"2W");
        out.extend_from_slice(&size.to_be_bytes());
    }

    pub fn json(out: &mut Vec<u8>, seq: u32, payload: &[u8]) {
        out.extend_from_slice(b"2J");
        out.extend_from_slice(&seq.to_be_bytes());
        out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        out.extend_from_slice(payload);
    }

    pub fn data(out: &mut Vec<u8>, seq: u32, pairs: &[(&str, &str)]) {
        out.extend_from_slice(b"1D");
        out.extend_from_slice(&seq.to_be_bytes());
        out.extend_from_slice(&(pairs.len() as u32).to_be_bytes());
        for (k, v) in pairs {
            for s in [k, v] {
                out.extend_from_slice(&(s.len() as u32).to_be_bytes());
                out.extend_from_slice(s.as_bytes());
            }
        }
    }

    pub fn compressed(out: &mut Vec<u8>, inner: &[u8], level: u32) {
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(level));
        z.write_all(inner).expect("writing to a Vec");
        let body = z.finish().expect("writing to a Vec");
        out.extend_from_slice(b"2C");
        out.extend_from_slice(&(body.len() as u32).to_be_bytes());
        out.extend_from_slice(&body);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: Limits = Limits {
        max_frame: 1 << 20,
        max_decompressed: 1 << 20,
    };

    #[test]
    fn every_prefix_of_a_frame_asks_for_more() {
        let mut b = Vec::new();
        encode::json(&mut b, 7, br#"{"a":1}"#);
        for n in 0..b.len() {
            assert_eq!(decode(&b[..n], &L), Ok(None), "prefix {n}");
        }
        let (f, used) = decode(&b, &L).unwrap().unwrap();
        assert_eq!(used, b.len());
        assert_eq!(
            f,
            Frame::Json {
                version: V2,
                seq: 7,
                payload: br#"{"a":1}"#
            }
        );
        let mut d = Vec::new();
        encode::data(&mut d, 3, &[("line", "hello"), ("host", "h")]);
        for n in 0..d.len() {
            assert_eq!(decode(&d[..n], &L), Ok(None), "D prefix {n}");
        }
        let Some((
            Frame::Data {
                seq, count, body, ..
            },
            _,
        )) = decode(&d, &L).unwrap()
        else {
            panic!("not a data frame");
        };
        assert_eq!(seq, 3);
        let pairs: Vec<_> = data_pairs(body, count).collect();
        assert_eq!(
            pairs,
            vec![(&b"line"[..], &b"hello"[..]), (&b"host"[..], &b"h"[..])]
        );
    }

    #[test]
    fn hostile_headers_fail_before_the_payload_arrives() {
        assert_eq!(decode(b"3W", &L), Err(FrameError::BadVersion(b'3')));
        assert_eq!(decode(b"2X", &L), Err(FrameError::BadType(b'X')));
        let mut huge = b"2C".to_vec();
        huge.extend_from_slice(&(1u32 << 30).to_be_bytes());
        assert!(matches!(
            decode(&huge, &L),
            Err(FrameError::FrameTooLarge { size, .. }) if size == 1 << 30
        ));
        let mut j = b"2J\0\0\0\x01".to_vec();
        j.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(decode(&j, &L).unwrap_err().is_limit());
        let mut d = b"1D\0\0\0\x01\0\0\0\x01".to_vec();
        d.extend_from_slice(&(2u32 << 20).to_be_bytes());
        assert!(decode(&d, &L).unwrap_err().is_limit());
    }

    #[test]
    fn inflate_round_trip_and_zip_bomb() {
        let inner = vec![b'x'; 100_000];
        let mut c = Vec::new();
        encode::compressed(&mut c, &inner, 6);
        let Some((Frame::Compressed { payload, .. }, _)) = decode(&c, &L).unwrap() else {
            panic!("not compressed");
        };
        let mut out = Vec::new();
        inflate(payload, 1 << 20, &mut out).unwrap();
        assert_eq!(out, inner);
        // 100 kB of zeros compress to ~100 bytes; a 10 kB cap stops it
        // without ever holding more than the cap plus one step.
        let mut out = Vec::new();
        let err = inflate(payload, 10_000, &mut out).unwrap_err();
        assert_eq!(err, FrameError::DecompressedTooLarge { max: 10_000 });
        assert!(out.capacity() <= 20_001, "capacity {}", out.capacity());
        assert!(matches!(
            inflate(&payload[..payload.len() / 2], 1 << 20, &mut out),
            Err(FrameError::BadZlib(_))
        ));
        assert!(matches!(
            inflate(b"not zlib at all", 1 << 20, &mut out),
            Err(FrameError::BadZlib(_))
        ));
        let mut trailing = payload.to_vec();
        trailing.extend_from_slice(b"junk");
        assert_eq!(
            inflate(&trailing, 1 << 20, &mut out),
            Err(FrameError::TrailingData(4))
        );
    }

    #[test]
    fn ack_bytes() {
        assert_eq!(ack(V2, 258), [b'2', b'A', 0, 0, 1, 2]);
    }
}
