//! Compressed sample chunks, after Prometheus's XOR chunks (Gorilla) with
//! two changes measured on scrape-shaped data (`cargo bench --bench tsdb`):
//! - delta-of-delta timestamps have a 5-bit bucket, so the few
//!   milliseconds of jitter a scrape loop has cost 7 bits, not 16;
//! - a value that is a short decimal (an integer counter, a gauge with two
//!   decimals) is stored as the difference of its decimal mantissa from the
//!   previous one, at the previous value's scale: 9 bits for a counter
//!   that grew by less than 32, 19 for a random two-decimal gauge that XOR
//!   would store in about 64. Anything else (NaN, stale markers, -0.0,
//!   values with many digits) falls back to XOR, bit-exact.
//!
//! The encoding lives only in memory, so it is free to differ from
//! Prometheus's on-disk format.

/// Samples per chunk. Prometheus uses 120: big enough to amortize the
/// per-chunk overhead, small enough that retention frees memory in steps.
pub const SAMPLES_PER_CHUNK: u16 = 120;

/// The longest span a chunk may cover (its header stores it in 32 bits).
pub const MAX_CHUNK_SPAN_MS: i64 = u32::MAX as i64;

/// Powers of ten that are exact doubles, one per decimal scale tried.
const POW10: [f64; 10] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9];
/// Mantissas stay within the integers a double holds exactly.
const MAX_MANTISSA: i64 = 1 << 53;
const NOT_DECIMAL: u8 = u8::MAX;
/// NOT_DECIMAL in the 4 bits a stream gives a scale.
const NO_SCALE_CODE: u8 = 15;
const NO_WINDOW: u8 = u8::MAX;

/// `v` as `m / 10^scale`, when dividing back gives `v` bit for bit: the
/// decoder computes exactly that division.
fn mantissa_at(v: f64, scale: u8) -> Option<i64> {
    let p = *POW10.get(scale as usize)?;
    let m = (v * p).round();
    if m.is_nan() || m.abs() > MAX_MANTISSA as f64 {
        return None;
    }
    let m = m as i64;
    ((m as f64 / p).to_bits() == v.to_bits()).then_some(m)
}

/// The smallest scale at which `v` is an exact short decimal.
fn decimal_of(v: f64) -> (u8, i64) {
    (0..POW10.len() as u8)
        .find_map(|s| mantissa_at(v, s).map(|m| (s, m)))
        .unwrap_or((NOT_DECIMAL, 0))
}

// (prefix, prefix length, payload bits) for timestamp delta-of-deltas; 0 is
// the one-bit '0'.
const DOD_BUCKETS: [(u64, u8, u8); 3] = [(0b10, 2, 5), (0b110, 3, 14), (0b1110, 4, 20)];
// The same for decimal mantissa deltas, after the value's '1' (changed) bit;
// '1111' + XOR is the fallback.
const DELTA_BUCKETS: [(u64, u8, u8); 3] = [(0b0, 1, 6), (0b10, 2, 15), (0b110, 3, 32)];
const XOR_PREFIX: (u64, u8) = (0b111, 3);

fn fits(v: i64, bits: u8) -> bool {
    let half = 1i64 << (bits - 1);
    (-half..half).contains(&v)
}

struct BitReader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl BitReader<'_> {
    fn read_bit(&mut self) -> Option<bool> {
        let byte = *self.bytes.get(self.pos / 8)?;
        let bit = byte & (0x80 >> (self.pos % 8)) != 0;
        self.pos += 1;
        Some(bit)
    }

    fn read_bits(&mut self, mut n: u8) -> Option<u64> {
        let mut v = 0u64;
        while n > 0 {
            let byte = *self.bytes.get(self.pos / 8)?;
            let off = (self.pos % 8) as u8;
            let avail = 8 - off;
            let take = avail.min(n);
            let bits = (byte >> (avail - take)) & ((1u16 << take) - 1) as u8;
            v = (v << take) | bits as u64;
            self.pos += take as usize;
            n -= take;
        }
        Some(v)
    }

    fn read_signed(&mut self, bits: u8) -> Option<i64> {
        let raw = self.read_bits(bits)?;
        let shift = 64 - bits as u32;
        Some(((raw << shift) as i64) >> shift)
    }

    /// Counts leading '1' bits, up to `max`, consuming the terminating '0'.
    fn read_ones(&mut self, max: u8) -> Option<u8> {
        let mut n = 0;
        while n < max && self.read_bit()? {
            n += 1;
        }
        Some(n)
    }
}

/// The chunk being appended to. Its bit stream starts with the first
/// timestamp (64 bits) and value. One lives in every series, so its fields
/// are packed by hand: 48 bytes, the bit writer's state included.
#[derive(Debug)]
pub struct HeadChunk {
    /// The bit stream, most significant bit first; `len` bytes are used.
    buf: Box<[u8]>,
    last_t: i64,
    last_delta: i64,
    last_v: u64,
    len: u16,
    /// Bits used in the last byte (0 means the last byte is full or absent).
    used: u8,
    count: u16,
    /// The last value's decimal scale, or NOT_DECIMAL; its mantissa is
    /// recomputed when needed rather than kept (8 bytes a series).
    scale: u8,
    leading: u8,
    trailing: u8,
}

impl Default for HeadChunk {
    fn default() -> Self {
        HeadChunk {
            buf: Box::default(),
            last_t: 0,
            last_delta: 0,
            last_v: 0,
            len: 0,
            used: 0,
            count: 0,
            scale: NOT_DECIMAL,
            leading: NO_WINDOW,
            trailing: 0,
        }
    }
}

impl HeadChunk {
    fn stream(&self) -> &[u8] {
        &self.buf[..self.len as usize]
    }

    fn write_bit(&mut self, bit: bool) {
        if self.used == 0 {
            self.push_byte();
        }
        if bit {
            self.buf[self.len as usize - 1] |= 0x80 >> self.used;
        }
        self.used = (self.used + 1) % 8;
    }

    /// Grows in 16-byte steps: a head chunk lives for 30 minutes, and
    /// doubling would leave half of every head buffer empty across a million
    /// series.
    fn push_byte(&mut self) {
        let len = self.len as usize;
        if len == self.buf.len() {
            let mut grown = vec![0u8; len + 16].into_boxed_slice();
            grown[..len].copy_from_slice(&self.buf);
            self.buf = grown;
        }
        self.buf[len] = 0;
        self.len += 1;
    }

    /// Writes the low `n` bits of `value`, a byte's worth at a time.
    fn write_bits(&mut self, value: u64, mut n: u8) {
        while n > 0 {
            if self.used == 0 {
                self.push_byte();
            }
            let free = 8 - self.used;
            let take = free.min(n);
            let bits = ((value >> (n - take)) & ((1u64 << take) - 1)) as u8;
            self.buf[self.len as usize - 1] |= bits << (free - take);
            self.used = (self.used + take) % 8;
            n -= take;
        }
    }

    /// A signed value in a bucket: its prefix, then `bits` two's-complement bits.
    fn write_bucketed(&mut self, v: i64, buckets: &[(u64, u8, u8)]) -> bool {
        for &(prefix, plen, bits) in buckets {
            if fits(v, bits) {
                self.write_bits(prefix, plen);
                self.write_bits(v as u64 & ((1u64 << bits) - 1), bits);
                return true;
            }
        }
        false
    }

    pub fn count(&self) -> u16 {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn min_t(&self) -> i64 {
        first_timestamp(self.stream())
    }

    pub fn last_t(&self) -> i64 {
        self.last_t
    }

    pub fn last_value(&self) -> f64 {
        f64::from_bits(self.last_v)
    }

    pub fn bytes(&self) -> usize {
        self.buf.len()
    }

    pub fn append(&mut self, t: i64, v: f64) {
        let vb = v.to_bits();
        if self.count == 0 {
            self.write_bits(t as u64, 64);
            let m;
            (self.scale, m) = decimal_of(v);
            // A short decimal opens the chunk in about 25 bits instead of 65.
            if self.scale != NOT_DECIMAL && fits(m, 32) {
                self.write_bit(false);
                self.write_bits(self.scale as u64, 4);
                self.write_bucketed(m, &DELTA_BUCKETS);
            } else {
                self.write_bit(true);
                self.write_bits(vb, 64);
                self.write_scale();
            }
        } else {
            let delta = t - self.last_t;
            let dod = delta - self.last_delta;
            if dod == 0 {
                self.write_bit(false);
            } else if !self.write_bucketed(dod, &DOD_BUCKETS) {
                self.write_bits(0b1111, 4);
                self.write_bits(dod as u64, 64);
            }
            self.last_delta = delta;
            self.write_value(v);
        }
        self.last_t = t;
        self.last_v = vb;
        self.count += 1;
    }

    fn write_value(&mut self, v: f64) {
        let vb = v.to_bits();
        if vb == self.last_v {
            self.write_bit(false);
            return;
        }
        self.write_bit(true);
        if self.scale != NOT_DECIMAL
            && let Some(m) = mantissa_at(v, self.scale)
            && let Some(last_m) = mantissa_at(f64::from_bits(self.last_v), self.scale)
            && self.write_bucketed(m - last_m, &DELTA_BUCKETS)
        {
            return;
        }
        self.write_bits(XOR_PREFIX.0, XOR_PREFIX.1);
        let x = vb ^ self.last_v;
        let leading = (x.leading_zeros() as u8).min(31);
        let trailing = x.trailing_zeros() as u8;
        if self.leading != NO_WINDOW && leading >= self.leading && trailing >= self.trailing {
            self.write_bit(false);
            let sig = 64 - self.leading - self.trailing;
            self.write_bits(x >> self.trailing, sig);
        } else {
            self.leading = leading;
            self.trailing = trailing;
            self.write_bit(true);
            self.write_bits(leading as u64, 5);
            let sig = 64 - leading - trailing;
            // 64 significant bits do not fit 6 bits; 0 stands for 64.
            self.write_bits((sig % 64) as u64, 6);
            self.write_bits(x >> trailing, sig);
        }
        self.scale = decimal_of(v).0;
        self.write_scale();
    }

    /// After a value stored whole, its decimal scale: the decoder would
    /// otherwise search for it at every such sample.
    fn write_scale(&mut self) {
        let code = if self.scale == NOT_DECIMAL {
            NO_SCALE_CODE
        } else {
            self.scale
        };
        self.write_bits(code as u64, 4);
    }

    pub fn decode_into(&self, mint: i64, maxt: i64, out: &mut Vec<(i64, f64)>) {
        decode(self.stream(), self.count, mint, maxt, out);
    }
}

fn first_timestamp(stream: &[u8]) -> i64 {
    let mut b = [0u8; 8];
    let n = stream.len().min(8);
    b[..n].copy_from_slice(&stream[..n]);
    i64::from_be_bytes(b)
}

/// Per sealed chunk: sample count (u16), span from first to last timestamp
/// (u32) and stream length in bytes (u16), little endian.
const HEADER: usize = 8;

/// What a series keeps besides its head chunk, in one allocation: an
/// opaque prefix its owner stores with it (the series' label pairs), then
/// every sealed chunk, oldest first. One pointer and one allocator rounding
/// per series instead of one per chunk and another for the labels.
/// Layout: prefix length (u16 LE), prefix, chunks.
#[derive(Debug)]
pub struct SealedChunks {
    data: Box<[u8]>,
}

/// One sealed chunk, borrowed.
#[derive(Clone, Copy)]
pub struct ChunkRef<'a> {
    count: u16,
    span: u32,
    stream: &'a [u8],
}

impl ChunkRef<'_> {
    pub fn count(&self) -> u16 {
        self.count
    }

    pub fn min_t(&self) -> i64 {
        first_timestamp(self.stream)
    }

    pub fn max_t(&self) -> i64 {
        self.min_t() + self.span as i64
    }

    pub fn decode_into(&self, mint: i64, maxt: i64, out: &mut Vec<(i64, f64)>) {
        decode(self.stream, self.count, mint, maxt, out);
    }
}

impl SealedChunks {
    pub fn new(prefix: &[u8]) -> SealedChunks {
        let len = u16::try_from(prefix.len()).expect("series prefix under 64 KiB");
        let mut data = Vec::with_capacity(2 + prefix.len());
        data.extend_from_slice(&len.to_le_bytes());
        data.extend_from_slice(prefix);
        SealedChunks {
            data: data.into_boxed_slice(),
        }
    }

    fn chunks_start(&self) -> usize {
        2 + u16::from_le_bytes([self.data[0], self.data[1]]) as usize
    }

    pub fn prefix(&self) -> &[u8] {
        &self.data[2..self.chunks_start()]
    }

    pub fn is_empty(&self) -> bool {
        self.data.len() == self.chunks_start()
    }

    /// Bytes of chunks (headers included), without the prefix.
    pub fn bytes(&self) -> usize {
        self.data.len() - self.chunks_start()
    }

    pub fn iter(&self) -> impl Iterator<Item = ChunkRef<'_>> {
        let mut rest: &[u8] = &self.data[self.chunks_start()..];
        std::iter::from_fn(move || {
            if rest.len() < HEADER {
                return None;
            }
            let count = u16::from_le_bytes([rest[0], rest[1]]);
            let span = u32::from_le_bytes([rest[2], rest[3], rest[4], rest[5]]);
            let len = u16::from_le_bytes([rest[6], rest[7]]) as usize;
            let stream = rest.get(HEADER..HEADER + len)?;
            rest = &rest[HEADER + len..];
            Some(ChunkRef {
                count,
                span,
                stream,
            })
        })
    }

    pub fn last_max_t(&self) -> Option<i64> {
        self.iter().last().map(|c| c.max_t())
    }

    /// Seals `head` (non-empty) after the existing chunks. The copy happens
    /// once per chunk, every 120 samples.
    pub fn push(&mut self, head: HeadChunk) {
        let stream = head.stream();
        // 120 samples of at most 151 bits each stay far below 64 KiB.
        let len = u16::try_from(stream.len()).expect("chunk stream under 64 KiB");
        let span = (head.last_t - head.min_t()).clamp(0, MAX_CHUNK_SPAN_MS) as u32;
        let mut data = Vec::with_capacity(self.data.len() + HEADER + stream.len());
        data.extend_from_slice(&self.data);
        data.extend_from_slice(&head.count.to_le_bytes());
        data.extend_from_slice(&span.to_le_bytes());
        data.extend_from_slice(&len.to_le_bytes());
        data.extend_from_slice(stream);
        self.data = data.into_boxed_slice();
    }

    /// Drops the chunks that end before `cutoff`; says whether any went.
    pub fn drop_before(&mut self, cutoff: i64) -> bool {
        let start = self.chunks_start();
        let mut keep_from = start;
        let mut offset = start;
        for c in self.iter() {
            offset += HEADER + c.stream.len();
            if c.max_t() >= cutoff {
                break;
            }
            keep_from = offset;
        }
        if keep_from == start {
            return false;
        }
        let mut data = Vec::with_capacity(start + self.data.len() - keep_from);
        data.extend_from_slice(&self.data[..start]);
        data.extend_from_slice(&self.data[keep_from..]);
        self.data = data.into_boxed_slice();
        true
    }
}

fn read_scale(r: &mut BitReader<'_>, v: u64) -> Option<(u8, i64)> {
    match r.read_bits(4)? as u8 {
        NO_SCALE_CODE => Some((NOT_DECIMAL, 0)),
        scale => Some((scale, mantissa_at(f64::from_bits(v), scale)?)),
    }
}

fn decode(bytes: &[u8], count: u16, mint: i64, maxt: i64, out: &mut Vec<(i64, f64)>) {
    let mut r = BitReader { bytes, pos: 0 };
    let mut t = 0i64;
    let mut delta = 0i64;
    let mut v = 0u64;
    let (mut scale, mut m) = (NOT_DECIMAL, 0i64);
    let (mut leading, mut trailing) = (0u8, 0u8);
    for i in 0..count {
        let ok = (|| -> Option<()> {
            if i == 0 {
                t = r.read_bits(64)? as i64;
                if r.read_bit()? {
                    v = r.read_bits(64)?;
                    (scale, m) = read_scale(&mut r, v)?;
                } else {
                    scale = r.read_bits(4)? as u8;
                    let bucket = r.read_ones(3)?;
                    let bits = DELTA_BUCKETS.get(bucket as usize)?.2;
                    m = r.read_signed(bits)?;
                    v = (m as f64 / POW10.get(scale as usize)?).to_bits();
                }
                return Some(());
            }
            delta += match r.read_ones(4)? {
                0 => 0,
                4 => r.read_bits(64)? as i64,
                k => r.read_signed(DOD_BUCKETS[k as usize - 1].2)?,
            };
            t += delta;
            if !r.read_bit()? {
                return Some(());
            }
            let bucket = r.read_ones(3)?;
            if bucket < 3 {
                m += r.read_signed(DELTA_BUCKETS[bucket as usize].2)?;
                v = (m as f64 / POW10.get(scale as usize)?).to_bits();
                return Some(());
            }
            if r.read_bit()? {
                leading = r.read_bits(5)? as u8;
                let mut sig = r.read_bits(6)? as u8;
                if sig == 0 {
                    sig = 64;
                }
                trailing = 64 - leading - sig;
            }
            let sig = 64 - leading - trailing;
            v ^= r.read_bits(sig)? << trailing;
            (scale, m) = read_scale(&mut r, v)?;
            Some(())
        })();
        if ok.is_none() {
            // A truncated chunk cannot come from this encoder; stop rather
            // than invent samples.
            return;
        }
        if t > maxt {
            return;
        }
        if t >= mint {
            out.push((t, f64::from_bits(v)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bits_of(samples: &[(i64, f64)]) -> Vec<(i64, u64)> {
        samples.iter().map(|(t, v)| (*t, v.to_bits())).collect()
    }

    /// Encodes, decodes from the head and from a sealed copy; both must
    /// give the input back bit for bit.
    fn roundtrip(samples: &[(i64, f64)]) -> SealedChunks {
        let mut h = HeadChunk::default();
        for &(t, v) in samples {
            h.append(t, v);
        }
        let mut out = Vec::new();
        h.decode_into(i64::MIN, i64::MAX, &mut out);
        assert_eq!(bits_of(&out), bits_of(samples));
        let mut sealed = SealedChunks::new(b"labels");
        sealed.push(h);
        let mut sealed_out = Vec::new();
        for c in sealed.iter() {
            c.decode_into(i64::MIN, i64::MAX, &mut sealed_out);
        }
        assert_eq!(bits_of(&sealed_out), bits_of(samples));
        sealed
    }

    #[test]
    fn chunk_roundtrips_bits_exactly_including_stale_nan_and_odd_deltas() {
        let stale = crate::model::stale_nan();
        let samples = vec![
            (1_700_000_000_000, 1.0),
            (1_700_000_015_000, 1.0),
            (1_700_000_030_000, 2.5),
            (1_700_000_030_001, -0.0),
            (1_700_000_030_002, 0.0),
            (1_700_000_045_000, f64::NAN),
            (1_700_000_060_000, stale),
            (1_700_000_060_500, f64::INFINITY),
            (1_700_000_060_501, 3.0),
            (1_700_000_060_502, f64::NEG_INFINITY),
            (1_700_009_000_000, 1e300),
            (1_710_000_000_000, f64::MIN_POSITIVE),
            (1_710_000_000_001, 123456.789),
            (1_710_000_070_000, 123456.789),
            (1_710_000_070_001, 123456.78),
            (1_710_000_070_002, 9007199254740993.0),
            (1_710_000_070_003, 9007199254740992.0),
            (1_710_000_070_004, -9007199254740992.0),
            (1_710_000_070_005, 0.1 + 0.2),
            (1_710_000_070_006, 5e-324),
            (1_710_000_070_000 + (1 << 40), 5.0),
        ];
        roundtrip(&samples);
    }

    #[test]
    fn random_mixes_of_every_value_shape_roundtrip() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..300 {
            let mut t = 1_700_000_000_000i64;
            let mut v = 0.0f64;
            let samples: Vec<(i64, f64)> = (0..SAMPLES_PER_CHUNK)
                .map(|_| {
                    t += [15_000, 15_001, 14_990, 1, 600_000, 1 << 33][(next() % 6) as usize];
                    v = match next() % 9 {
                        0 => v,
                        1 => v + (next() % 40) as f64,
                        2 => (next() % 100_000) as f64 / 100.0,
                        3 => f64::from_bits(next()),
                        4 => -((next() % 1000) as f64) / 1e7,
                        5 => (next() % 3) as f64 * 1e15,
                        6 => [f64::NAN, -0.0, f64::INFINITY, crate::model::stale_nan()]
                            [(next() % 4) as usize],
                        7 => v * 1.000_001,
                        _ => (next() as i64 >> (next() % 64)) as f64,
                    };
                    (t, v)
                })
                .collect();
            roundtrip(&samples);
        }
    }

    fn stream_bits(samples: impl Iterator<Item = (i64, f64)>) -> usize {
        let mut h = HeadChunk::default();
        for (t, v) in samples {
            h.append(t, v);
        }
        h.len as usize * 8
    }

    #[test]
    fn scrape_shaped_series_stay_small() {
        let ts = |i: i64| 1_000_000 + i * 15_000 + if i % 7 == 3 { 3 } else { 0 };
        let n = SAMPLES_PER_CHUNK as i64;
        // Beyond the first timestamp's 64 bits.
        let per_sample = |bits: usize| (bits - 64) as f64 / n as f64;
        let constant = stream_bits((0..n).map(|i| (ts(i), 42.0)));
        let counter =
            stream_bits((0..n).map(|i| (ts(i), (0..i).map(|k| k * 7 % 20).sum::<i64>() as f64)));
        let gauge = stream_bits((0..n).map(|i| (ts(i), ((i * 7919) % 10_000) as f64 / 100.0)));
        // Jitter costs three 7-bit delta-of-deltas (+3, -6, +3) every 7 samples.
        assert!(per_sample(constant) < 5.0, "{}", per_sample(constant));
        assert!(per_sample(counter) < 12.5, "{}", per_sample(counter));
        assert!(per_sample(gauge) < 22.5, "{}", per_sample(gauge));
    }

    #[test]
    fn a_head_chunk_packs_into_48_bytes() {
        // One per series: a million series pay for every byte here.
        assert!(std::mem::size_of::<HeadChunk>() <= 48);
        assert_eq!(std::mem::size_of::<SealedChunks>(), 16);
    }

    #[test]
    fn decode_honours_bounds() {
        let samples: Vec<_> = (0..50).map(|i| (i * 10, i as f64)).collect();
        let mut h = HeadChunk::default();
        for &(t, v) in &samples {
            h.append(t, v);
        }
        let mut out = Vec::new();
        h.decode_into(100, 200, &mut out);
        assert_eq!(out.first(), Some(&(100, 10.0)));
        assert_eq!(out.last(), Some(&(200, 20.0)));
    }

    #[test]
    fn sealed_chunks_keep_order_bounds_and_drop_from_the_front() {
        let mut sealed = SealedChunks::new(b"labels");
        assert!(sealed.is_empty() && sealed.last_max_t().is_none());
        for c in 0..4i64 {
            let mut h = HeadChunk::default();
            for i in 0..SAMPLES_PER_CHUNK as i64 {
                h.append((c * 120 + i) * 15_000, (c * 1000 + i) as f64);
            }
            sealed.push(h);
        }
        let bounds: Vec<(u16, i64, i64)> = sealed
            .iter()
            .map(|c| (c.count(), c.min_t(), c.max_t()))
            .collect();
        assert_eq!(
            bounds,
            (0..4i64)
                .map(|c| (120, c * 1_800_000, c * 1_800_000 + 119 * 15_000))
                .collect::<Vec<_>>()
        );
        assert_eq!(sealed.last_max_t(), Some(3 * 1_800_000 + 119 * 15_000));
        // A cutoff inside the second chunk drops only the first.
        assert!(sealed.drop_before(1_800_000 + 15_000));
        assert_eq!(sealed.iter().count(), 3);
        assert!(!sealed.drop_before(1_800_000 + 15_000));
        let mut out = Vec::new();
        sealed
            .iter()
            .next()
            .unwrap()
            .decode_into(i64::MIN, i64::MAX, &mut out);
        assert_eq!(out[0], (1_800_000, 1000.0));
        assert!(sealed.drop_before(i64::MAX));
        assert!(sealed.is_empty());
        assert_eq!(sealed.prefix(), b"labels");
    }
}
