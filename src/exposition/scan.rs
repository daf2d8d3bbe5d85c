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

/// End of the run of name bytes starting at `from`: the index of the first
/// byte that is not `[a-zA-Z0-9_]` (plus `:` when `colon`), or the length.
/// Eight bytes at a time: each byte's class is a few range checks done on
/// all eight lanes at once, where a table lookup per byte costs a load and
/// a branch that mispredicts at every name's end. Exporters' names are long
/// (node_exporter's average ~30 bytes), so this is the parser's hottest loop.
#[inline]
pub(super) fn name_run_end(bytes: &[u8], from: usize, colon: bool) -> usize {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    // Lanes of `x` (high bits clear) holding a value in lo..=hi. Neither sum
    // can carry into the next lane: x <= 0x7f and each constant <= 0x80.
    #[inline(always)]
    fn in_range(x: u64, lo: u8, hi: u8) -> u64 {
        let ge = x.wrapping_add(LO * u64::from(0x80 - lo)) & HI;
        let gt = x.wrapping_add(LO * u64::from(0x7f - hi)) & HI;
        ge & !gt
    }
    let digits_hi = if colon { b':' } else { b'9' };
    let mut i = from;
    while let Some(word) = bytes.get(i..i + 8) {
        let w = u64::from_le_bytes(word.try_into().expect("8 bytes"));
        let x = w & !HI;
        let ok = (in_range(x | (LO * 0x20), b'a', b'z')
            | in_range(x, b'0', digits_hi)
            | in_range(x, b'_', b'_'))
            & !w;
        let bad = !ok & HI;
        if bad != 0 {
            return i + (bad.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    let class = if colon { METRIC_CHAR } else { LABEL_CHAR };
    while i < bytes.len() && CLASS[bytes[i] as usize] & class != 0 {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_run_end_agrees_with_the_class_table_on_every_byte() {
        for colon in [false, true] {
            let class = if colon { METRIC_CHAR } else { LABEL_CHAR };
            for b in 0..=255u8 {
                // The byte at every position of a word and of the tail.
                for pos in 0..19 {
                    let mut line = vec![b'a'; 19];
                    line[pos] = b;
                    let want = if CLASS[b as usize] & class != 0 {
                        19
                    } else {
                        pos
                    };
                    assert_eq!(
                        name_run_end(&line, 0, colon),
                        want,
                        "byte {b:#04x} at {pos}, colon {colon}"
                    );
                }
            }
        }
        assert_eq!(name_run_end(b"node_cpu:rate5m{x", 0, true), 15);
        assert_eq!(name_run_end(b"node_cpu:rate5m{x", 0, false), 8);
        assert_eq!(name_run_end(b"ab", 2, true), 2);
    }
}
