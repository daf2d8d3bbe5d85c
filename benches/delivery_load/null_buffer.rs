//! The buffer alone: documents pushed through kubegate's disk buffer into
//! a reader that drops them, the ceiling for delivery.

use super::*;

pub(crate) fn buffer_config(dir: &Path, max_size: u64) -> BufferConfig {
    BufferConfig {
        dir: Some(dir.to_owned()),
        max_size: max_size.max(1 << 30),
        segment_size: 16 << 20,
        fsync: FsyncPolicy::Interval(Duration::from_millis(500)),
        when_full: WhenFull::Block,
    }
}

/// What `run::pipeline` does with a batch of documents, minus building them.
pub(crate) async fn push_all(w: &buffer::Writer, docs: &[Encoded]) {
    for chunk in docs.chunks(PER_PUSH) {
        let records: Vec<Vec<u8>> = chunk.iter().map(record::encode).collect();
        match w.push(records).await {
            Ok(Pushed::Stored) => {}
            Ok(Pushed::Dropped) => fail("the buffer dropped records in block mode"),
            Err(e) => fail(&format!("push: {e}")),
        }
    }
}

/// A null sink: read, decode, ack, until the writers are gone.
pub(crate) async fn null_drain(mut r: buffer::Reader) -> usize {
    let mut n = 0;
    while let Some(b) = r.next_batch(5000, 5 << 20).await {
        let last = b.last().expect("next_batch returns at least one").0;
        for (_, rec) in &b {
            black_box(record::decode(rec).expect("a record the bench wrote"));
        }
        n += b.len();
        r.ack(last).expect("ack");
    }
    n
}

pub(crate) fn tempdir(base: &Path, prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(base)
        .unwrap_or_else(|e| fail(&format!("temp dir in {}: {e}", base.display())))
}

/// A new disk buffer of at most `max` bytes in its own temporary directory.
fn fresh_buffer(p: &Params, max: u64) -> (tempfile::TempDir, buffer::Writer, buffer::Reader) {
    let tmp = tempdir(&p.dir, "kg-bench-null-");
    let (w, r) = buffer::open(
        buffer_config(tmp.path(), max),
        BufferMetrics::unregistered(),
    )
    .unwrap_or_else(|e| fail(&format!("open buffer: {e}")));
    (tmp, w, r)
}

/// One pass of each null-sink figure: (push only, close, drain backlog,
/// push and drain at once) as (wall, CPU), and the segment bytes the push
/// left.
pub(crate) async fn null_pass(
    p: &Params,
    docs: &[Encoded],
    max: u64,
) -> ([(Duration, Duration); 4], u64) {
    let n = docs.len();
    // Push only, then drain the backlog.
    let (tmp, w, r) = fresh_buffer(p, max);
    let (t0, c0) = (Instant::now(), self_cpu());
    push_all(&w, docs).await;
    let push = (t0.elapsed(), self_cpu() - c0);
    let (t1, c1) = (Instant::now(), self_cpu());
    drop(w); // the last writer fsyncs what the interval task has not
    let close = (t1.elapsed(), self_cpu() - c1);
    let on_disk = segment_bytes(tmp.path());
    let (t2, c2) = (Instant::now(), self_cpu());
    let read = tokio::spawn(null_drain(r)).await.expect("drain task");
    let drain = (t2.elapsed(), self_cpu() - c2);
    assert_eq!(read, n, "backlog drain delivered every record");
    drop(tmp);

    // Both at once (the directory lives to the end).
    let (_tmp, w, r) = fresh_buffer(p, max);
    let (t3, c3) = (Instant::now(), self_cpu());
    let consumer = tokio::spawn(null_drain(r));
    push_all(&w, docs).await;
    drop(w);
    let read = consumer.await.expect("consumer task");
    let both = (t3.elapsed(), self_cpu() - c3);
    assert_eq!(read, n, "concurrent run delivered every record");
    ([push, close, drain, both], on_disk)
}

pub(crate) async fn null_phase(p: &Params, docs: &[Encoded]) {
    let n = docs.len();
    let json: usize = docs.iter().map(|d| d.json().len()).sum();
    let rec: usize = docs.iter().map(record_len).sum();
    let max = 2 * rec as u64 + (64 << 20);
    println!(
        "\n== null sink: disk buffer (fsync 500ms, 16 MiB segments), read + decode + ack; median of {} passes; load {} ==",
        p.null_reps,
        loadavg()
    );
    let mut passes = Vec::new();
    let mut on_disk = 0;
    for _ in 0..p.null_reps {
        let (f, d) = null_pass(p, docs, max).await;
        passes.push(f);
        on_disk = d;
    }
    let median = |i: usize| {
        let mut v: Vec<(Duration, Duration)> = passes.iter().map(|f| f[i]).collect();
        v.sort();
        v[v.len() / 2]
    };
    let line = |what: &str, (d, cpu): (Duration, Duration)| {
        println!(
            "  {what:<34} {:>9.0} docs/s {:>7.1} MiB/s of JSON  {:>6.3} s wall  {:>5.2} µs CPU/doc",
            n as f64 / d.as_secs_f64(),
            json as f64 / MIB / d.as_secs_f64(),
            d.as_secs_f64(),
            cpu.as_secs_f64() * 1e6 / n as f64
        )
    };
    line("push only (record::encode + push)", median(0));
    println!(
        "  {:<34} {:>6.0} ms (final fsync when the last writer drops; not in the line above)",
        "  then close",
        median(1).0.as_secs_f64() * 1e3
    );
    line("drain backlog (read+decode+ack)", median(2));
    line("push and drain at once", median(3));
    println!(
        "  bytes on disk: {:.1} per document ({n} docs: {:.1} MiB of segments); JSON {:.1} B, record {:.1} B (JSON + id + index name + 4 B of lengths), framing 8 B: +{:.1}% over the JSON",
        on_disk as f64 / n as f64,
        on_disk as f64 / MIB,
        json as f64 / n as f64,
        rec as f64 / n as f64,
        (on_disk as f64 / json as f64 - 1.0) * 100.0
    );
}
