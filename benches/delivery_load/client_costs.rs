//! Client-side cost of each step the ES sink takes per batch, timed here on
//! one batch (best of 5), next to a cheaper way of doing it. The kubegate
//! column repeats what `EsSink::send` and the elasticsearch crate's
//! transport do (sink/elasticsearch.rs; elasticsearch 8.17.0-alpha.1
//! `Transport::request_builder`; reqwest `Response::text`), so the profile's
//! figures get a per-document price.

use super::*;

#[derive(serde::Deserialize)]
pub(crate) struct TypedBulk {
    pub(crate) errors: bool,
    pub(crate) items: Vec<TypedItem>,
}

#[derive(serde::Deserialize)]
pub(crate) struct TypedItem {
    #[serde(alias = "index", alias = "update", alias = "delete")]
    pub(crate) create: TypedResult,
}

#[derive(serde::Deserialize)]
pub(crate) struct TypedResult {
    pub(crate) status: u16,
    #[serde(default)]
    pub(crate) error: Option<serde_json::Value>,
}

pub(crate) fn best_of<T>(reps: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut best = Duration::MAX;
    let mut out = None;
    for _ in 0..reps {
        let t = Instant::now();
        let v = black_box(f());
        best = best.min(t.elapsed());
        out = Some(v);
    }
    (best, out.expect("reps >= 1"))
}

pub(crate) fn gzip(body: &[u8], level: u32) -> Vec<u8> {
    // As the transport does: a growing Vec, flate2's default backend.
    let mut enc = GzEncoder::new(Vec::new(), Compression::new(level));
    enc.write_all(body).expect("in memory");
    enc.finish().expect("in memory")
}

pub(crate) fn client_costs(docs: &[Encoded], range: Range<usize>) {
    const REPS: usize = 5;
    let batch = &docs[range];
    let n = batch.len() as f64;
    let us = |d: Duration| d.as_secs_f64() * 1e6 / n;
    let index = "bench-costs";
    println!(
        "\n== client-side cost per document of each sink step (one batch of {} docs, best of {REPS}) ==",
        batch.len()
    );
    // Read side: a buffer record decoded back into an Encoded.
    let records: Vec<Vec<u8>> = batch.iter().map(record::encode).collect();
    let (t_enc, _) = best_of(REPS, || {
        batch.iter().map(record::encode).collect::<Vec<_>>()
    });
    let (t_dec, _) = best_of(REPS, || {
        records
            .iter()
            .map(|r| record::decode(r).expect("valid"))
            .collect::<Vec<_>>()
    });
    println!(
        "  record::encode {:.2} µs, record::decode {:.2} µs (allocations and copies only; the null-sink lines give the buffer's whole cost)",
        us(t_enc),
        us(t_dec)
    );
    // Body: EsSink::send's json! action lines vs bytes written directly.
    let (t_json, kg_body) = best_of(REPS, || {
        let mut body = Vec::with_capacity(
            batch
                .iter()
                .map(|d| d.json().len() + d.id().len() + d.index().len() + 48)
                .sum(),
        );
        for d in batch {
            serde_json::to_writer(
                &mut body,
                &serde_json::json!({"create": {"_index": index, "_id": d.id()}}),
            )
            .expect("serializable");
            body.push(b'\n');
            body.extend_from_slice(d.json());
            body.push(b'\n');
        }
        body
    });
    let (t_direct, _) = best_of(REPS, || loader_body(index, batch));
    println!(
        "  bulk body, action lines via json! + to_writer (EsSink::send) {:.2} µs | written as bytes {:.2} µs",
        us(t_json),
        us(t_direct)
    );
    // The transport copies an NdBody into a BytesMut that starts at 1 KiB.
    let (t_copy, _) = best_of(REPS, || {
        let mut b = bytes::BytesMut::with_capacity(1024);
        b.extend_from_slice(&kg_body);
        b.split().freeze()
    });
    println!(
        "  copy of the body into the transport's BytesMut (NdBody has no bytes()) {:.2} µs | a Bytes body is passed as is: 0",
        us(t_copy)
    );
    let mut gz_line = String::from("  gzip (flate2, miniz_oxide backend):");
    for level in [6u32, 1] {
        let (t, out) = best_of(REPS, || gzip(&kg_body, level));
        gz_line.push_str(&format!(
            " level {level}{} {:.2} µs, {:.1}x;",
            if level == 6 {
                " (Compression::default, the transport's)"
            } else {
                ""
            },
            us(t),
            kg_body.len() as f64 / out.len() as f64
        ));
    }
    println!("{}", gz_line.trim_end_matches(';'));
    // Response: what EsSink::send does with it vs a typed parse.
    let fresh: MockIndices = Arc::default();
    let response = mock_bulk_body(&loader_body(index, batch), &fresh)
        .expect("mock response")
        .into_bytes();
    let (t_value, ok) = best_of(REPS, || {
        let text = String::from_utf8_lossy(&response).into_owned();
        let parsed: serde_json::Value = serde_json::from_str(&text).expect("json");
        let items = parsed["items"].as_array().expect("items");
        items
            .iter()
            .filter(|item| {
                let result = item.as_object().and_then(|o| o.values().next());
                result
                    .and_then(|r| r.get("status"))
                    .and_then(|s| s.as_u64())
                    == Some(201)
            })
            .count()
    });
    let (t_typed, ok_typed) = best_of(REPS, || {
        let parsed: TypedBulk = serde_json::from_slice(&response).expect("json");
        let bad = parsed
            .items
            .iter()
            .filter(|i| i.create.status != 201 || i.create.error.is_some())
            .count();
        (parsed.errors, parsed.items.len() - bad)
    });
    let (t_fast, _) = best_of(REPS, || {
        memchr::memmem::find(&response[..response.len().min(256)], br#""errors":false"#).is_some()
    });
    assert_eq!(ok, batch.len());
    assert_eq!(ok_typed, (false, batch.len()));
    println!(
        "  bulk response ({:.0} B/doc): text() + serde_json::Value + items walk (EsSink::send) {:.2} µs | typed serde struct from bytes {:.2} µs | \"errors\":false check only {:.3} µs",
        response.len() as f64 / n,
        us(t_value),
        us(t_typed),
        us(t_fast)
    );
}
