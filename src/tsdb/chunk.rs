//! Gorilla-compressed sample chunks, as in Prometheus's XOR chunks:
//! delta-of-delta timestamps in variable-width buckets and XOR-ed float
//! values that store only the meaningful bits. A regular 15 s series costs
//! one bit per timestamp, and a value that did not change one bit more.

/// Samples per chunk. Prometheus uses 120: big enough to amortize the
/// per-chunk overhead, small enough that retention frees memory in steps.
pub const SAMPLES_PER_CHUNK: u16 = 120;

/// Appends bits to a byte vector, most significant bit first.
#[derive(Debug, Default)]
struct BitWriter {
    bytes: Vec<u8>,
    /// Bits used in the last byte (0 means the last byte is full or absent).
    used: u8,
}

impl BitWriter {
    fn write_bit(&mut self, bit: bool) {
        if self.used == 0 {
            self.push_byte();
        }
        if bit {
            let last = self.bytes.len() - 1;
            self.bytes[last] |= 0x80 >> self.used;
        }
        self.used = (self.used + 1) % 8;
    }

    /// Grows in small steps: a head chunk lives for 30 minutes, and doubling
    /// would leave half of every head buffer empty across a million series.
    fn push_byte(&mut self) {
        if self.bytes.len() == self.bytes.capacity() {
            self.bytes.reserve_exact(16);
        }
        self.bytes.push(0);
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
            let last = self.bytes.len() - 1;
            self.bytes[last] |= bits << (free - take);
            self.used = (self.used + take) % 8;
            n -= take;
        }
    }
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
}

/// The chunk being appended to.
#[derive(Debug, Default)]
pub struct HeadChunk {
    bits: BitWriter,
    count: u16,
    min_t: i64,
    last_t: i64,
    last_delta: i64,
    last_v: u64,
    leading: u8,
    trailing: u8,
}

/// A full chunk, immutable: one allocation holding a 6-byte header
/// (sample count, then the span from first to last timestamp, little
/// endian) and the bit stream, whose first 64 bits are the first timestamp.
#[derive(Debug)]
pub struct SealedChunk {
    data: Box<[u8]>,
}

const HEADER: usize = 6;

impl SealedChunk {
    pub fn count(&self) -> u16 {
        u16::from_le_bytes([self.data[0], self.data[1]])
    }

    pub fn min_t(&self) -> i64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.data[HEADER..HEADER + 8]);
        i64::from_be_bytes(b)
    }

    pub fn max_t(&self) -> i64 {
        let mut b = [0u8; 4];
        b.copy_from_slice(&self.data[2..6]);
        self.min_t() + u32::from_le_bytes(b) as i64
    }

    pub fn bytes(&self) -> usize {
        self.data.len()
    }

    pub fn decode_into(&self, mint: i64, maxt: i64, out: &mut Vec<(i64, f64)>) {
        decode(&self.data[HEADER..], self.count(), mint, maxt, out);
    }
}

/// The longest span a chunk may cover (its header stores it in 32 bits).
pub const MAX_CHUNK_SPAN_MS: i64 = u32::MAX as i64;

fn bucket_bits(dod: i64) -> Option<(u64, u8, u8)> {
    // (prefix, prefix length, payload bits), as Prometheus's XOR chunk.
    match dod {
        -8191..=8192 => Some((0b10, 2, 14)),
        -65535..=65536 => Some((0b110, 3, 17)),
        -524287..=524288 => Some((0b1110, 4, 20)),
        _ => None,
    }
}

impl HeadChunk {
    pub fn count(&self) -> u16 {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn min_t(&self) -> i64 {
        self.min_t
    }

    pub fn last_t(&self) -> i64 {
        self.last_t
    }

    pub fn last_value(&self) -> f64 {
        f64::from_bits(self.last_v)
    }

    pub fn bytes(&self) -> usize {
        self.bits.bytes.capacity()
    }

    pub fn append(&mut self, t: i64, v: f64) {
        let vb = v.to_bits();
        match self.count {
            0 => {
                self.min_t = t;
                self.bits.write_bits(t as u64, 64);
                self.bits.write_bits(vb, 64);
            }
            1 => {
                let delta = t - self.last_t;
                self.write_dod_raw(delta);
                self.last_delta = delta;
                self.write_value(vb);
            }
            _ => {
                let delta = t - self.last_t;
                let dod = delta - self.last_delta;
                if dod == 0 {
                    self.bits.write_bit(false);
                } else {
                    self.write_dod_raw(dod);
                }
                self.last_delta = delta;
                self.write_value(vb);
            }
        }
        self.last_t = t;
        self.last_v = vb;
        self.count += 1;
    }

    fn write_dod_raw(&mut self, dod: i64) {
        match bucket_bits(dod) {
            Some((prefix, plen, bits)) => {
                self.bits.write_bits(prefix, plen);
                self.bits.write_bits(dod as u64 & ((1 << bits) - 1), bits);
            }
            None => {
                self.bits.write_bits(0b1111, 4);
                self.bits.write_bits(dod as u64, 64);
            }
        }
    }

    fn write_value(&mut self, vb: u64) {
        let x = vb ^ self.last_v;
        if x == 0 {
            self.bits.write_bit(false);
            return;
        }
        self.bits.write_bit(true);
        let leading = (x.leading_zeros() as u8).min(31);
        let trailing = x.trailing_zeros() as u8;
        if self.count > 1 && leading >= self.leading && trailing >= self.trailing {
            self.bits.write_bit(false);
            let sig = 64 - self.leading - self.trailing;
            self.bits.write_bits(x >> self.trailing, sig);
        } else {
            self.leading = leading;
            self.trailing = trailing;
            self.bits.write_bit(true);
            self.bits.write_bits(leading as u64, 5);
            let sig = 64 - leading - trailing;
            // 64 significant bits do not fit 6 bits; 0 stands for 64.
            self.bits.write_bits((sig % 64) as u64, 6);
            self.bits.write_bits(x >> trailing, sig);
        }
    }

    pub fn decode_into(&self, mint: i64, maxt: i64, out: &mut Vec<(i64, f64)>) {
        decode(&self.bits.bytes, self.count, mint, maxt, out);
    }

    /// Turns the head into an immutable chunk with no spare capacity.
    pub fn seal(self) -> SealedChunk {
        let mut data = Vec::with_capacity(HEADER + self.bits.bytes.len());
        data.extend_from_slice(&self.count.to_le_bytes());
        let span = (self.last_t - self.min_t).clamp(0, MAX_CHUNK_SPAN_MS) as u32;
        data.extend_from_slice(&span.to_le_bytes());
        data.extend_from_slice(&self.bits.bytes);
        SealedChunk {
            data: data.into_boxed_slice(),
        }
    }
}

fn decode(bytes: &[u8], count: u16, mint: i64, maxt: i64, out: &mut Vec<(i64, f64)>) {
    let mut r = BitReader { bytes, pos: 0 };
    let mut t = 0i64;
    let mut delta = 0i64;
    let mut v = 0u64;
    let (mut leading, mut trailing) = (0u8, 0u8);
    for i in 0..count {
        let ok = (|| -> Option<()> {
            if i == 0 {
                t = r.read_bits(64)? as i64;
                v = r.read_bits(64)?;
                return Some(());
            }
            let dod = read_dod(&mut r, i == 1)?;
            if i == 1 {
                delta = dod;
            } else {
                delta += dod;
            }
            t += delta;
            if r.read_bit()? {
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
            }
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

fn read_dod(r: &mut BitReader<'_>, first_delta: bool) -> Option<i64> {
    if !first_delta && !r.read_bit()? {
        return Some(0);
    }
    // The first delta has no '0' shortcut: its prefix starts at "10".
    if first_delta && !r.read_bit()? {
        // Not produced by the encoder (first delta always uses a bucket).
        return None;
    }
    let bits = if !r.read_bit()? {
        14
    } else if !r.read_bit()? {
        17
    } else if !r.read_bit()? {
        20
    } else {
        return Some(r.read_bits(64)? as i64);
    };
    let raw = r.read_bits(bits)?;
    // Sign-extend the payload.
    let shift = 64 - bits as u32;
    Some(((raw << shift) as i64) >> shift)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(samples: &[(i64, f64)]) -> Vec<(i64, f64)> {
        let mut h = HeadChunk::default();
        for &(t, v) in samples {
            h.append(t, v);
        }
        let mut out = Vec::new();
        h.decode_into(i64::MIN, i64::MAX, &mut out);
        let mut sealed_out = Vec::new();
        h.seal().decode_into(i64::MIN, i64::MAX, &mut sealed_out);
        assert_eq!(
            out.iter()
                .map(|(t, v)| (*t, v.to_bits()))
                .collect::<Vec<_>>(),
            sealed_out
                .iter()
                .map(|(t, v)| (*t, v.to_bits()))
                .collect::<Vec<_>>()
        );
        out
    }

    #[test]
    fn chunk_roundtrips_bits_exactly_including_stale_nan_and_odd_deltas() {
        let stale = crate::model::stale_nan();
        let samples = vec![
            (1_700_000_000_000, 1.0),
            (1_700_000_015_000, 1.0),
            (1_700_000_030_000, 2.5),
            (1_700_000_030_001, -0.0),
            (1_700_000_045_000, f64::NAN),
            (1_700_000_060_000, stale),
            (1_700_000_060_500, f64::INFINITY),
            (1_700_009_000_000, 1e300),
            (1_710_000_000_000, f64::MIN_POSITIVE),
            (1_710_000_000_001, 123456.789),
            (1_710_000_070_000, 123456.789),
            (1_710_000_070_000 + (1 << 40), 5.0),
        ];
        let out = roundtrip(&samples);
        assert_eq!(out.len(), samples.len());
        for (a, b) in out.iter().zip(&samples) {
            assert_eq!(a.0, b.0);
            assert_eq!(a.1.to_bits(), b.1.to_bits());
        }
    }

    #[test]
    fn regular_constant_series_costs_about_two_bits_per_sample() {
        let mut h = HeadChunk::default();
        for i in 0..SAMPLES_PER_CHUNK as i64 {
            h.append(1_000_000 + i * 15_000, 42.0);
        }
        let s = h.seal();
        assert!(s.bytes() < 6 + 16 + 2 + 32 + 2, "{} bytes", s.bytes());
        assert_eq!(
            (s.count(), s.min_t(), s.max_t()),
            (120, 1_000_000, 1_000_000 + 119 * 15_000)
        );
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
}
