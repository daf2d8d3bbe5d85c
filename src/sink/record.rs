//! A document as a buffer record: `[json][id][index][u16 id len][u16 index len]`.
//! Routing travels with the body so a restart needs nothing else.
//!
//! The body comes first so a record is the document's own buffer with a
//! few bytes appended ([`encode_owned`]), and a record read back gives its
//! body up by truncation ([`decode_owned`]): each document is copied once
//! less on the way in and once less on the way out. Records of the
//! earlier layout, `[u16 id len][id][u16 index len][index][json]`, are
//! still read: theirs start with the id's length (32), never with `{`.

use super::Encoded;

#[derive(Debug, thiserror::Error)]
#[error("buffer record is not a document: {0}")]
pub struct RecordError(&'static str);

const TRAILER: usize = 4;

/// Room a document's buffer should leave for [`encode_owned`] to append
/// its routing without growing: an id (32 bytes), an index name, the lengths.
pub const ROUTING_ROOM: usize = 128;

pub fn encode(d: &Encoded) -> Vec<u8> {
    let mut out = Vec::with_capacity(d.json.len() + d.id.len() + d.index.len() + TRAILER);
    out.extend_from_slice(&d.json);
    append_routing(&mut out, &d.id, &d.index);
    out
}

/// [`encode`] without copying the body: the routing is appended to it.
pub fn encode_owned(d: Encoded) -> Vec<u8> {
    let mut out = d.json;
    append_routing(&mut out, &d.id, &d.index);
    out
}

fn append_routing(out: &mut Vec<u8>, id: &str, index: &str) {
    let id = &id.as_bytes()[..id.len().min(u16::MAX as usize)];
    let index = &index.as_bytes()[..index.len().min(u16::MAX as usize)];
    out.extend_from_slice(id);
    out.extend_from_slice(index);
    out.extend_from_slice(&(id.len() as u16).to_le_bytes());
    out.extend_from_slice(&(index.len() as u16).to_le_bytes());
}

pub fn decode(b: &[u8]) -> Result<Encoded, RecordError> {
    decode_owned(b.to_vec())
}

/// [`decode`] of a record the caller owns: the body is the record's own
/// buffer, truncated.
pub fn decode_owned(mut b: Vec<u8>) -> Result<Encoded, RecordError> {
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
    let text = |s: &[u8]| {
        std::str::from_utf8(s)
            .map(str::to_owned)
            .map_err(|_| RecordError("field is not UTF-8"))
    };
    let id = text(&b[json_len..json_len + id_len])?;
    let index = text(&b[json_len + id_len..lens])?;
    b.truncate(json_len);
    Ok(Encoded { id, index, json: b })
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
    Ok(Encoded {
        id,
        index,
        json: b.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> Encoded {
        Encoded {
            id: "abc".into(),
            index: "metrics-x-default".into(),
            json: b"{\"a\":1}".to_vec(),
        }
    }

    #[test]
    fn round_trip_borrowed_and_owned() {
        let d = doc();
        let back = decode(&encode(&d)).unwrap();
        assert_eq!(
            (back.id, back.index, back.json),
            (d.id.clone(), d.index.clone(), d.json.clone())
        );
        let rec = encode_owned(d.clone());
        assert_eq!(rec, encode(&d));
        let back = decode_owned(rec).unwrap();
        assert_eq!((back.id, back.index, back.json), (d.id, d.index, d.json));
    }

    #[test]
    fn records_of_the_first_layout_are_still_read() {
        let mut old = vec![3, 0];
        old.extend_from_slice(b"abc");
        old.extend_from_slice(&17u16.to_le_bytes());
        old.extend_from_slice(b"metrics-x-default{\"a\":1}");
        let back = decode(&old).unwrap();
        assert_eq!(
            (back.id.as_str(), back.index.as_str(), &back.json[..]),
            ("abc", "metrics-x-default", &b"{\"a\":1}"[..])
        );
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
        let mut bad_id = b"{}\xffx".to_vec();
        bad_id.extend_from_slice(&[2, 0, 0, 0]);
        assert!(reason(&bad_id).contains("UTF-8"));
    }
}
