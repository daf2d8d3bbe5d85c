//! A document as a buffer record: `[u16 id len][id][u16 index len][index][json]`.
//! Routing travels with the body so a restart needs nothing else.

use super::Encoded;

#[derive(Debug, thiserror::Error)]
#[error("buffer record is not a document: {0}")]
pub struct RecordError(&'static str);

pub fn encode(d: &Encoded) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + d.id.len() + d.index.len() + d.json.len());
    for part in [d.id.as_bytes(), d.index.as_bytes()] {
        out.extend_from_slice(&(part.len().min(u16::MAX as usize) as u16).to_le_bytes());
        out.extend_from_slice(&part[..part.len().min(u16::MAX as usize)]);
    }
    out.extend_from_slice(&d.json);
    out
}

pub fn decode(mut b: &[u8]) -> Result<Encoded, RecordError> {
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

    #[test]
    fn round_trip_and_hostile_records() {
        let d = Encoded {
            id: "abc".into(),
            index: "metrics-x-default".into(),
            json: b"{\"a\":1}".to_vec(),
        };
        let back = decode(&encode(&d)).unwrap();
        assert_eq!((back.id, back.index, back.json), (d.id, d.index, d.json));
        assert!(decode(b"").is_err());
        assert!(decode(&[5, 0, b'a']).is_err());
        assert!(
            decode(&[0, 0, 0, 0, b'x'])
                .unwrap_err()
                .to_string()
                .contains("JSON object")
        );
        assert!(
            decode(&[1, 0, 0xff, 0, 0, b'{'])
                .unwrap_err()
                .to_string()
                .contains("UTF-8")
        );
    }
}
