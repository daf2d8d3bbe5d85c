//! Buffer throughput (issue 5): 1 KiB records pushed by a producer in
//! batches, read and acknowledged by a consumer task, end to end, for the
//! memory mode and the disk mode with each fsync policy; and the bytes on
//! disk per record.
//!
//! `cargo bench --bench buffer -- --warm-up-time 1 --measurement-time 5`
//!
//! The disk runs use a fresh directory under `KUBEGATE_BENCH_DIR` (default:
//! the system temp dir): point it at the disk kubegate would use, since
//! fsync on tmpfs costs nothing. Criterion reports records/s; a summary at
//! the end gives records/s and MiB/s of payload per case.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use kubegate::buffer::{self, BufferConfig, BufferMetrics, FsyncPolicy, Pushed, WhenFull};

const RECORD: usize = 1024;

struct Case {
    name: &'static str,
    disk: bool,
    fsync: FsyncPolicy,
    /// Records per `push` call (a pipeline pushes one document batch at once).
    batch: usize,
    /// Records per measured iteration.
    records: usize,
}

const CASES: &[Case] = &[
    Case {
        name: "memory",
        disk: false,
        fsync: FsyncPolicy::Always,
        batch: 100,
        records: 50_000,
    },
    Case {
        name: "disk_interval_500ms",
        disk: true,
        fsync: FsyncPolicy::Interval(Duration::from_millis(500)),
        batch: 100,
        records: 50_000,
    },
    Case {
        name: "disk_always",
        disk: true,
        fsync: FsyncPolicy::Always,
        batch: 100,
        records: 10_000,
    },
    Case {
        name: "disk_always_batch1",
        disk: true,
        fsync: FsyncPolicy::Always,
        batch: 1,
        records: 1_000,
    },
];

fn bench_dir() -> PathBuf {
    std::env::var_os("KUBEGATE_BENCH_DIR").map_or_else(std::env::temp_dir, PathBuf::from)
}

fn config(case: &Case, dir: Option<PathBuf>) -> BufferConfig {
    BufferConfig {
        dir: dir.filter(|_| case.disk),
        fsync: case.fsync,
        when_full: WhenFull::Block,
        ..BufferConfig::default()
    }
}

/// Pushes `case.records` records and waits until the consumer has read and
/// acknowledged all of them; returns the time that took.
async fn run(case: &Case) -> Duration {
    let tmp = tempfile::tempdir_in(bench_dir()).expect("bench dir");
    let (w, mut r) = buffer::open(
        config(case, Some(tmp.path().to_owned())),
        BufferMetrics::unregistered(),
    )
    .expect("open");
    let payload = vec![0xA5u8; RECORD];
    let start = Instant::now();
    let consumer = tokio::spawn(async move {
        let mut n = 0;
        while let Some(b) = r.next_batch(1000, 4 << 20).await {
            n += b.len();
            r.ack(b.last().expect("non-empty").0).expect("ack");
            black_box(&b);
        }
        n
    });
    for _ in 0..case.records / case.batch {
        let res = w
            .push(vec![payload.clone(); case.batch])
            .await
            .expect("push");
        assert_eq!(res, Pushed::Stored);
    }
    drop(w);
    assert_eq!(consumer.await.expect("consumer"), case.records);
    start.elapsed()
}

/// Segment bytes per record once `n` records are stored (nothing acked).
fn bytes_on_disk_per_record(rt: &tokio::runtime::Runtime, n: usize) -> f64 {
    let tmp = tempfile::tempdir_in(bench_dir()).expect("bench dir");
    let case = Case {
        name: "size",
        disk: true,
        fsync: FsyncPolicy::Interval(Duration::from_millis(500)),
        batch: 100,
        records: n,
    };
    rt.block_on(async {
        let (w, _r) = buffer::open(
            config(&case, Some(tmp.path().to_owned())),
            BufferMetrics::unregistered(),
        )
        .expect("open");
        for _ in 0..n / 100 {
            let _ = w.push(vec![vec![0x5Au8; RECORD]; 100]).await.expect("push");
        }
    });
    let total: u64 = std::fs::read_dir(tmp.path())
        .expect("read dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("segment-"))
        .map(|e| e.metadata().map_or(0, |m| m.len()))
        .sum();
    total as f64 / n as f64
}

fn buffer_throughput(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let per = bytes_on_disk_per_record(&rt, 100_000);
    println!(
        "buffer: {per:.1} bytes on disk per {RECORD}-byte record ({:.2}% overhead; 100000 records, 16 MiB segments)",
        (per / RECORD as f64 - 1.0) * 100.0
    );
    // Criterion reports one throughput unit per group (0.5 has no
    // "elements and bytes"): records/s there, both in the summary below,
    // from the same runs.
    let mut summary = Vec::new();
    let mut g = c.benchmark_group("buffer");
    g.sample_size(10);
    for case in CASES {
        g.throughput(Throughput::Elements(case.records as u64));
        let mut total = (0u64, Duration::ZERO);
        g.bench_with_input(
            BenchmarkId::new(case.name, format!("push{}", case.batch)),
            case,
            |b, case| {
                b.iter_custom(|iters| {
                    let t: Duration = (0..iters).map(|_| rt.block_on(run(case))).sum();
                    total.0 += iters * case.records as u64;
                    total.1 += t;
                    t
                });
            },
        );
        summary.push((case, total));
    }
    g.finish();
    println!("\nbuffer summary (1 KiB records, push + read + ack, all runs including warm-up):");
    for (case, (records, took)) in summary {
        let rps = records as f64 / took.as_secs_f64();
        println!(
            "  {:<22} push of {:>3}: {:>10.0} records/s {:>8.1} MiB/s",
            case.name,
            case.batch,
            rps,
            rps * RECORD as f64 / (1 << 20) as f64
        );
    }
}

criterion_group!(benches, buffer_throughput);
criterion_main!(benches);
