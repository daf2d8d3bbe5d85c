//! Byte-level scanning shared by the line parser: character classes for
//! names and the quoted-string scan, the two loops every sample line runs.

pub(super) const METRIC_START: u8 = 1;
pub(super) const METRIC_CHAR: u8 = 2;
pub(super) const LABEL_START: u8 = 4;
pub(super) const LABEL_CHAR: u8 = 8;

/// Character classes of the legacy name grammars: metric names are
/// `[a-zA-Z_:][a-zA-Z0-9_:]*`, label names `[a-zA-Z_][a-zA-Z0-9_]*`. A
/// table lookup per byte is what makes name scanning cheap.
pub(super) static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        let alpha = c.is_ascii_alphabetic() || c == b'_';
        let mut class = 0;
        if alpha || c == b':' {
            class |= METRIC_START | METRIC_CHAR;
        }
        if c.is_ascii_digit() {
            class |= METRIC_CHAR | LABEL_CHAR;
        }
        if alpha {
            class |= LABEL_START | LABEL_CHAR;
        }
        t[b] = class;
        b += 1;
    }
    t
};

pub(super) fn is_metric_name(s: &str) -> bool {
    is_name(s, METRIC_START, METRIC_CHAR)
}

fn is_name(s: &str, start: u8, rest: u8) -> bool {
    match s.as_bytes().split_first() {
        Some((&first, tail)) => {
            CLASS[first as usize] & start != 0
                && tail.iter().all(|&b| CLASS[b as usize] & rest != 0)
        }
        None => false,
    }
}

/// Index of the first `"` or `\\` in `bytes[from..]`. Eight bytes at a
/// time with the classic "has zero byte" bit trick: label values are
/// mostly 2-40 bytes, too short for `memchr2`'s setup to pay off, too long
/// for a byte loop to be cheap. Exact, not a prefilter: a byte flagged by
/// `(x - 0x01..) & !x & 0x80..` can be a false positive only above a true
/// zero byte, and the lowest set bit is taken.
#[inline]
pub(super) fn find_quote_or_backslash(bytes: &[u8], from: usize) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    const QUOTES: u64 = LO * b'"' as u64;
    const BACKSLASHES: u64 = LO * b'\\' as u64;
    let mut i = from;
    while let Some(word) = bytes.get(i..i + 8) {
        let w = u64::from_le_bytes(word.try_into().expect("8 bytes"));
        let (q, b) = (w ^ QUOTES, w ^ BACKSLASHES);
        let hits = ((q.wrapping_sub(LO) & !q) | (b.wrapping_sub(LO) & !b)) & HI;
        if hits != 0 {
            return Some(i + (hits.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    let tail = bytes.get(i..)?;
    tail.iter()
        .position(|&b| b == b'"' || b == b'\\')
        .map(|p| i + p)
}
