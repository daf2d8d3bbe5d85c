//! A document as a buffer record: `[json][id][index][u16 id len][u16 index len]`.
//! Routing travels with the body so a restart needs nothing else.
//!
//! The body comes first so a record is the document's own buffer with a
//! few bytes appended ([`Encoded::new`], [`Encoded::into_record`]), and a
//! record read back becomes an [`Encoded`] as it is ([`decode_owned`]):
//! each document is copied once less on the way in and once less on the
//! way out. Records of the
//! earlier layout, `[u16 id len][id][u16 index len][index][json]`, are
//! still read: theirs start with the id's length (32), never with `{`.

use super::Encoded;

#[derive(Debug, thiserror::Error)]
#[error("buffer record is not a document: {0}")]
pub struct RecordError(&'static str);

const TRAILER: usize = 4;

/// Room a document's buffer should leave for [`Encoded::new`] to append
/// its routing without growing: an id (32 bytes), an index name, the lengths.
pub const ROUTING_ROOM: usize = 128;

pub fn encode(d: &Encoded) -> Vec<u8> {
    d.record().to_vec()
}

/// Appends `id` and `index` and their lengths; returns the lengths.
pub(super) fn append_routing(out: &mut Vec<u8>, id: &str, index: &str) -> (usize, usize) {
    let (id, index) = (capped(id), capped(index));
    out.extend_from_slice(id.as_bytes());
    out.extend_from_slice(index.as_bytes());
    out.extend_from_slice(&(id.len() as u16).to_le_bytes());
    out.extend_from_slice(&(index.len() as u16).to_le_bytes());
    (id.len(), index.len())
}

/// At most what a u16 length can say, cut on a character boundary.
fn capped(s: &str) -> &str {
    let mut n = s.len().min(u16::MAX as usize);
    while !s.is_char_boundary(n) {
        n -= 1;
    }
    &s[..n]
}

pub fn decode(b: &[u8]) -> Result<Encoded, RecordError> {
    decode_owned(b.to_vec())
}

/// [`decode`] of a record the caller owns: the record becomes the
/// [`Encoded`] as it is, once its routing is checked.
pub fn decode_owned(b: Vec<u8>) -> Result<Encoded, RecordError> {
    if b.first() != Some(&b'{') {
        return decode_first_layout(&b);
    }
    let Some(lens) = b.len().checked_sub(TRAILER) else {
        return Err(RecordError("truncated trailer"));
    };
    let id_len = u16::from_le_bytes([b[lens], b[lens + 1]]) as usize;
    let index_len = u16::from_le_bytes([b[lens + 2], b[lens + 3]]) as usize;
    let Some(json_len) = lens.checked_sub(id_len + index_len) else {
        return Err(RecordError("routing longer than the record"));
    };
    // The first byte may belong to the id: the body must be an object too.
    if b[..json_len].first() != Some(&b'{') {
        return Err(RecordError("body is not a JSON object"));
    }
    // Each on its own: a character split across the two would pass as one.
    let id_end = json_len + id_len;
    if std::str::from_utf8(&b[json_len..id_end]).is_err()
        || std::str::from_utf8(&b[id_end..lens]).is_err()
    {
        return Err(RecordError("field is not UTF-8"));
    }
    Ok(Encoded {
        record: b,
        json_len,
        id_len,
        index_len,
    })
}

fn decode_first_layout(mut b: &[u8]) -> Result<Encoded, RecordError> {
    let mut take = || -> Result<String, RecordError> {
        if b.len() < 2 {
            return Err(RecordError("truncated header"));
        }
        let n = u16::from_le_bytes([b[0], b[1]]) as usize;
        let s = b.get(2..2 + n).ok_or(RecordError("truncated field"))?;
        let s = std::str::from_utf8(s)
            .map_err(|_| RecordError("field is not UTF-8"))?
            .to_owned();
        b = &b[2 + n..];
        Ok(s)
    };
    let id = take()?;
    let index = take()?;
    if b.first() != Some(&b'{') {
        return Err(RecordError("body is not a JSON object"));
    }
    Ok(Encoded::from_parts(&id, &index, b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> Encoded {
        Encoded::from_parts("abc", "metrics-x-default", b"{\"a\":1}")
    }

    #[test]
    fn round_trip_borrowed_and_owned() {
        let d = doc();
        assert_eq!(
            (d.id(), d.index(), d.json()),
            ("abc", "metrics-x-default", &b"{\"a\":1}"[..])
        );
        assert_eq!(decode(&encode(&d)).unwrap(), d);
        let rec = d.clone().into_record();
        assert_eq!(rec, encode(&d));
        assert_eq!(decode_owned(rec).unwrap(), d);
        let built = Encoded::new(crate::model::Document {
            id: "abc".into(),
            index: "metrics-x-default".into(),
            dataset: "x",
            json: b"{\"a\":1}".to_vec(),
        });
        assert_eq!(built, d);
    }

    #[test]
    fn routing_longer_than_a_length_can_say_is_cut_on_a_character_boundary() {
        let long = "é".repeat(40_000);
        let d = Encoded::from_parts(&long, "i", b"{}");
        assert_eq!(d.id().len(), 65_534);
        assert_eq!(d.index(), "i");
        assert_eq!(decode(d.record()).unwrap(), d);
    }

    #[test]
    fn records_of_the_first_layout_are_still_read() {
        let mut old = vec![3, 0];
        old.extend_from_slice(b"abc");
        old.extend_from_slice(&17u16.to_le_bytes());
        old.extend_from_slice(b"metrics-x-default{\"a\":1}");
        assert_eq!(decode(&old).unwrap(), doc());
    }

    #[test]
    fn hostile_records_are_refused_with_a_reason() {
        let reason = |b: &[u8]| decode(b).unwrap_err().to_string();
        assert!(reason(b"").contains("truncated header"));
        assert!(reason(&[5, 0, b'a']).contains("truncated field"));
        assert!(reason(&[0, 0, 0, 0, b'x']).contains("JSON object"));
        assert!(reason(&[1, 0, 0xff, 0, 0, b'{']).contains("UTF-8"));
        assert!(reason(b"{\"a").contains("truncated trailer"));
        // Lengths that claim more routing than the record holds.
        assert!(reason(b"{}\xff\xff\x00\x00").contains("longer than the record"));
        // A body that is only the id's first byte.
        assert!(reason(b"{\x01\x00\x00\x00").contains("JSON object"));
        // A character split between the id and the index.
        assert!(reason(b"{}\xc3\xa9\x01\x00\x01\x00").contains("UTF-8"));
        let mut bad_id = b"{}\xffx".to_vec();
        bad_id.extend_from_slice(&[2, 0, 0, 0]);
        assert!(reason(&bad_id).contains("UTF-8"));
    }
}
