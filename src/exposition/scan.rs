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
#[inline(always)]
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
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    while let Some(block) = bytes.get(i..i + 16) {
        let bad = non_name_mask(block.try_into().expect("16 bytes"), digits_hi);
        if bad != 0 {
            return i + bad.trailing_zeros() as usize;
        }
        i += 16;
    }
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

/// Bit `i` set when `block[i]` is not a name byte (`[a-zA-Z0-9_]`, and
/// `:` when `digits_hi` is `:`): three range checks on sixteen lanes. The
/// signed compares reject every byte >= 0x80, as the grammar does.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[inline]
fn non_name_mask(block: &[u8; 16], digits_hi: u8) -> u32 {
    use std::arch::x86_64::{
        _mm_and_si128, _mm_cmpeq_epi8, _mm_cmpgt_epi8, _mm_loadu_si128, _mm_movemask_epi8,
        _mm_or_si128, _mm_set1_epi8,
    };
    // SAFETY: the cfg above guarantees SSE2; the load reads the 16 bytes of
    // `block`, and `loadu` takes any alignment.
    let ok = unsafe {
        let x = _mm_loadu_si128(block.as_ptr().cast());
        let lower = _mm_or_si128(x, _mm_set1_epi8(0x20));
        let alpha = _mm_and_si128(
            _mm_cmpgt_epi8(lower, _mm_set1_epi8((b'a' - 1) as i8)),
            _mm_cmpgt_epi8(_mm_set1_epi8((b'z' + 1) as i8), lower),
        );
        let digit = _mm_and_si128(
            _mm_cmpgt_epi8(x, _mm_set1_epi8((b'0' - 1) as i8)),
            _mm_cmpgt_epi8(_mm_set1_epi8((digits_hi + 1) as i8), x),
        );
        let underscore = _mm_cmpeq_epi8(x, _mm_set1_epi8(b'_' as i8));
        _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(alpha, digit), underscore))
    };
    !(ok as u32) & 0xffff
}

/// One line of a run: `bytes[start..end]`, `end` at its `\n`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Line {
    pub start: usize,
    pub end: usize,
    /// No byte of the line is >= 0x80. False when a block the line
    /// touches has one, even outside the line: callers then check the
    /// line's UTF-8 themselves.
    pub ascii: bool,
}

/// The lines of a run of bytes, in order. Each 64-byte block becomes two
/// bit masks, its `\n`s and its bytes >= 0x80, and each line end is the
/// lowest set bit: lines of a metrics body are ~50 bytes, and a `memchr`
/// call per line spent more on its setup than on the search, while the
/// high-byte mask spares an ASCII body its UTF-8 check.
pub(super) struct Lines<'a> {
    bytes: &'a [u8],
    /// Start of the block the masks cover.
    block: usize,
    /// Line ends not yet handed out, relative to `block`.
    newlines: u64,
    /// Bytes >= 0x80 in the block.
    high: u64,
    /// Where the next line starts.
    start: usize,
    /// The open line may hold a byte >= 0x80 in a block before `block`.
    high_before: bool,
}

impl<'a> Lines<'a> {
    pub(super) fn new(bytes: &'a [u8]) -> Self {
        let (newlines, high) = masks(bytes);
        Lines {
            bytes,
            block: 0,
            newlines,
            high,
            start: 0,
            high_before: false,
        }
    }
}

impl Iterator for Lines<'_> {
    type Item = Line;

    #[inline]
    fn next(&mut self) -> Option<Line> {
        while self.newlines == 0 {
            self.high_before |= self.high != 0;
            self.block += 64;
            if self.block >= self.bytes.len() {
                return None;
            }
            (self.newlines, self.high) = masks(&self.bytes[self.block..]);
        }
        let bit = self.newlines.trailing_zeros() as usize;
        self.newlines &= self.newlines - 1;
        let line = Line {
            start: self.start,
            end: self.block + bit,
            ascii: !self.high_before && self.high == 0,
        };
        self.start = line.end + 1;
        self.high_before = false;
        Some(line)
    }
}

/// The `\n` mask and the high-byte mask of the first 64 bytes.
#[inline]
fn masks(bytes: &[u8]) -> (u64, u64) {
    match bytes.first_chunk::<64>() {
        Some(block) => block_masks(block),
        None => {
            // The run's last partial block, padded with bytes that are
            // neither `\n` nor high.
            let mut block = [0u8; 64];
            block[..bytes.len()].copy_from_slice(bytes);
            block_masks(&block)
        }
    }
}

/// Bit `i` of the first mask set when `block[i]` is `\n`, of the second
/// when it is >= 0x80: four SSE2 loads, compares and movemasks (SSE2 is
/// part of every x86-64; other targets take the portable one).
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[inline]
fn block_masks(block: &[u8; 64]) -> (u64, u64) {
    use std::arch::x86_64::{_mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi8};
    let (mut newlines, mut high) = (0u64, 0u64);
    // SAFETY: the cfg above guarantees SSE2; each load reads 16 bytes of
    // `block` (`chunks_exact`), and `loadu` takes any alignment.
    unsafe {
        let nl = _mm_set1_epi8(b'\n' as i8);
        for (k, part) in block.chunks_exact(16).enumerate() {
            let v = _mm_loadu_si128(part.as_ptr().cast());
            let hits = _mm_movemask_epi8(_mm_cmpeq_epi8(v, nl)) as u16;
            newlines |= u64::from(hits) << (16 * k);
            high |= u64::from(_mm_movemask_epi8(v) as u16) << (16 * k);
        }
    }
    (newlines, high)
}

/// The portable [`block_masks`]: eight bytes at a time, exact zero-byte
/// flags for `\n` and the high bits, each gathered into eight bits by a
/// multiplication. Compiled everywhere, so the x86-64 build tests it
/// against the SSE2 one.
#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
#[inline]
fn block_masks(block: &[u8; 64]) -> (u64, u64) {
    block_masks_swar(block)
}

#[cfg_attr(all(target_arch = "x86_64", target_feature = "sse2"), allow(dead_code))]
#[inline]
fn block_masks_swar(block: &[u8; 64]) -> (u64, u64) {
    const LO7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const HI: u64 = 0x8080_8080_8080_8080;
    let gather = |flags: u64| (flags >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56;
    let (mut newlines, mut high) = (0u64, 0u64);
    for (k, word) in block.chunks_exact(8).enumerate() {
        let w = u64::from_le_bytes(word.try_into().expect("8 bytes"));
        let x = w ^ (0x0101_0101_0101_0101 * u64::from(b'\n'));
        let zero = !(((x & LO7) + LO7) | x | LO7);
        newlines |= gather(zero) << (8 * k);
        high |= gather(w & HI) << (8 * k);
    }
    (newlines, high)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_run_end_agrees_with_the_class_table_on_every_byte() {
        // Two 16-byte blocks, an 8-byte word and a tail of three.
        const LEN: usize = 16 * 2 + 8 + 3;
        for colon in [false, true] {
            let class = if colon { METRIC_CHAR } else { LABEL_CHAR };
            for b in 0..=255u8 {
                // The byte at every position of a word and of the tail.
                for pos in 0..LEN {
                    let mut line = vec![b'a'; LEN];
                    line[pos] = b;
                    let want = if CLASS[b as usize] & class != 0 {
                        LEN
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

    #[test]
    fn lines_are_every_newline_in_order_and_ascii_only_when_so() {
        // Lengths around the 64-byte blocks, newlines at every density,
        // high bytes now and then, lines across blocks.
        let mut rng = crate::exposition::testgen::Rng::new(7);
        let (mut non_ascii, mut ascii) = (0, 0);
        for len in (0..200).chain([255, 256, 257, 1000]) {
            for density in [0, 1, 4, 16, 64] {
                for high_rate in [0, 1, 8] {
                    let bytes: Vec<u8> = (0..len)
                        .map(|_| {
                            let r = rng.next();
                            if density > 0 && r % 64 < density {
                                b'\n'
                            } else if (r >> 8) % 256 < high_rate {
                                [0x80, 0x8a, 0xc3, 0xff][(r >> 20) as usize % 4]
                            } else {
                                // Never 0x0a, but its neighbours.
                                [b'\t', 0x0b, b'a', 0x7f, 0][(r >> 32) as usize % 5]
                            }
                        })
                        .collect();
                    let ends: Vec<usize> = memchr::memchr_iter(b'\n', &bytes).collect();
                    let lines: Vec<Line> = Lines::new(&bytes).collect();
                    assert_eq!(lines.iter().map(|l| l.end).collect::<Vec<_>>(), ends);
                    let mut start = 0;
                    for line in lines {
                        assert_eq!(line.start, start, "len {len}");
                        let raw = &bytes[line.start..line.end];
                        // Only ever too careful: a line of a block with a
                        // high byte may be checked although it has none.
                        assert!(!line.ascii || raw.is_ascii(), "len {len}, line {raw:?}");
                        non_ascii += usize::from(!raw.is_ascii());
                        ascii += usize::from(line.ascii);
                        if high_rate == 0 {
                            assert!(line.ascii, "len {len}, line {raw:?}");
                        }
                        start = line.end + 1;
                    }
                }
            }
        }
        assert!(non_ascii > 1000, "the high bytes reached {non_ascii} lines");
        assert!(ascii > 10_000, "{ascii} lines taken for ASCII");
        let edges = [b'\n'; 130];
        assert_eq!(Lines::new(&edges).count(), 130);
    }

    #[test]
    fn block_masks_portable_and_native_agree() {
        let mut rng = crate::exposition::testgen::Rng::new(11);
        let mut block = [0u8; 64];
        for round in 0..20_000 {
            for b in block.iter_mut() {
                let r = rng.next();
                // Mostly the bytes that matter (`\n`, its neighbours,
                // the high-bit edge), now and then any byte.
                *b = match r % 8 {
                    0 | 1 => b'\n',
                    2 => [0x09, 0x0b, 0x8a, 0x7f, 0x80, 0xff][(r >> 8) as usize % 6],
                    _ if round % 2 == 0 => (r >> 16) as u8,
                    _ => b'a',
                };
            }
            let (newlines, high) = block_masks_swar(&block);
            let want_nl = (0..64)
                .filter(|&i| block[i] == b'\n')
                .fold(0u64, |m, i| m | 1 << i);
            let want_hi = (0..64)
                .filter(|&i| block[i] >= 0x80)
                .fold(0u64, |m, i| m | 1 << i);
            assert_eq!((newlines, high), (want_nl, want_hi), "{block:?}");
            assert_eq!(block_masks(&block), (want_nl, want_hi), "{block:?}");
        }
    }
}
