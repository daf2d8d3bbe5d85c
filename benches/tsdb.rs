//! Series-window bench (issue 7): memory per sample and per series, and
//! ingest rate, at 100k and 1M series scraped every 15 s over 2 h.
//!
//! ```sh
//! cargo bench --bench tsdb                    # 100k and 1M series, 480 samples each (2 h at 15 s)
//! KG_SERIES=100000 KG_SAMPLES=120 cargo bench --bench tsdb
//! KG_SERIES=100000 KG_LABELS=unique cargo bench --bench tsdb
//! KG_SERIES=1000000 KG_REFERENCE=0 cargo bench --bench tsdb   # no reference run
//! ```
//!
//! Each scale runs in a child process of its own (the bench re-executes
//! itself), so resident memory is measured from a clean heap: RSS after
//! the fill minus RSS before it, and `VmHWM`. Values are shaped like real
//! scrapes: half counters that grow by small integers, 30% gauges that
//! rarely change, 20% gauges with two decimals; timestamps every 15 s with
//! a few milliseconds of jitter on one scrape in ten. Labels are shaped like
//! pods' scrapes: 100 series a target (25 families, 4 `code` values), the
//! target's job, instance, namespace, pod and container. `KG_LABELS=unique`
//! gives every series a pod name of its own instead, the worst case for
//! the string table and postings.
//!
//! The reference, in the same child: the same samples kept as
//! `Vec<(i64, f64)>` per series (16 B/sample uncompressed) with the label
//! sets in a `HashMap<Labels, usize>`, the naive window.
//!
//! Does nothing unless run with `--bench` (so `cargo test` skips it).

use kubegate::model::Labels;
use kubegate::tsdb::Tsdb;
use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

#[path = "support/proc_status.rs"]
mod proc_status;
use proc_status::status_kib;

// The allocator the kubegate binary runs with: RSS per series depends on it.
#[path = "support/counting_alloc.rs"]
mod counting_alloc;

#[global_allocator]
static GLOBAL: counting_alloc::Counting = counting_alloc::Counting;

/// RSS (KiB) once the allocator returned the pages the fill left empty,
/// and the live heap (bytes).
fn settled_rss_kb() -> (u64, usize) {
    counting_alloc::collect();
    (status_kib("self", "VmRSS"), counting_alloc::live_bytes())
}

fn labels_for(i: usize, unique: bool) -> (String, Labels) {
    if unique {
        return unique_labels_for(i);
    }
    let target = i / 100;
    let k = i % 100;
    let name = format!("app_metric_family_{}_total", k % 25);
    let l = Labels::from_pairs([
        ("job", format!("job-{}", target % 20)),
        (
            "instance",
            format!(
                "10.{}.{}.{}:8080",
                target >> 16,
                (target >> 8) & 255,
                target & 255
            ),
        ),
        ("namespace", format!("ns-{}", target % 50)),
        (
            "pod",
            format!(
                "app-{}-{:x}",
                target % 20,
                (target as u64).wrapping_mul(0x9e37_79b9) % 0xfffff
            ),
        ),
        ("container", format!("c{}", target % 3)),
        ("code", format!("{}", 200 + k / 25)),
    ]);
    (name, l)
}

/// The earlier shape: nearly every series has its own instance and pod.
fn unique_labels_for(i: usize) -> (String, Labels) {
    let name = format!("app_metric_family_{}_total", i % 200);
    let l = Labels::from_pairs([
        ("job", format!("job-{}", i % 20)),
        (
            "instance",
            format!("10.1.{}.{}:9100", (i / 1000) % 256, i % 1000 / 4),
        ),
        ("namespace", format!("ns-{}", i % 50)),
        (
            "pod",
            format!(
                "pod-{}-{:x}",
                i / 200,
                (i as u64).wrapping_mul(0x9e37_79b9) % 0xfffff
            ),
        ),
        ("container", format!("c{}", i % 3)),
    ]);
    (name, l)
}

struct Gen {
    state: u64,
}

impl Gen {
    fn next(&mut self) -> u64 {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        self.state
    }
}

fn value(kind: usize, step: usize, prev: f64, g: &mut Gen) -> f64 {
    match kind {
        0..=4 => prev + (g.next() % 20) as f64,
        5..=7 => {
            if step.is_multiple_of(10) {
                (g.next() % 100) as f64
            } else {
                prev
            }
        }
        _ => ((g.next() % 10_000) as f64) / 100.0,
    }
}

fn child(series: usize, samples: usize, reference: bool) {
    let unique = std::env::var("KG_LABELS").is_ok_and(|v| v == "unique");
    let names: Vec<(String, Labels)> = (0..series).map(|i| labels_for(i, unique)).collect();
    let (base_kb, base_live) = settled_rss_kb();
    let t0 = 1_700_000_000_000i64;
    let mut g = Gen { state: 0x1234_5678 };
    let mut last = vec![0.0f64; series];
    let started = Instant::now();
    let mut decode_rate = 0.0;
    let secs;
    let (stats, (rss_kb, live)) = if reference {
        let mut index: HashMap<Labels, usize> = HashMap::new();
        let mut data: Vec<Vec<(i64, f64)>> = Vec::new();
        for step in 0..samples {
            for (i, (name, l)) in names.iter().enumerate() {
                let t = t0 + step as i64 * 15_000 + jitter(&mut g);
                let v = value(i % 10, step, last[i], &mut g);
                last[i] = v;
                let mut key = l.clone();
                key.set("__name__", name.as_str());
                let n = index.len();
                let id = *index.entry(key).or_insert(n);
                if id == data.len() {
                    data.push(Vec::new());
                }
                data[id].push((t, v));
            }
        }
        secs = started.elapsed().as_secs_f64();
        let rss = settled_rss_kb();
        std::hint::black_box(&data);
        (None, rss)
    } else {
        let db = Tsdb::new(Duration::from_secs(2 * 3600));
        for step in 0..samples {
            for (i, (name, l)) in names.iter().enumerate() {
                let t = t0 + step as i64 * 15_000 + jitter(&mut g);
                let v = value(i % 10, step, last[i], &mut g);
                last[i] = v;
                db.append(name, l, t, v);
            }
        }
        secs = started.elapsed().as_secs_f64();
        let rss = settled_rss_kb();
        // Query side: decode every sample of a twentyfifth of the series.
        let m = kubegate::tsdb::Matcher::new(
            kubegate::tsdb::MatchOp::Equal,
            "__name__",
            "app_metric_family_3_total",
        );
        let q = Instant::now();
        let selected = db.select(&[m], i64::MIN, i64::MAX);
        let decoded: usize = selected.iter().map(|s| s.samples.len()).sum();
        decode_rate = decoded as f64 / q.elapsed().as_secs_f64();
        (Some(db.stats()), rss)
    };

    let total = (series * samples) as f64;
    let rss_bytes = (rss_kb.saturating_sub(base_kb) * 1024) as f64;
    let live = live.saturating_sub(base_live) as f64;
    print!(
        "{:>9} {:>7} {:>10.0} {:>12.1} {:>10.2} {:>10.1} {:>10}",
        series,
        samples,
        total / secs,
        rss_bytes / series as f64,
        rss_bytes / total,
        live / series as f64,
        status_kib("self", "VmHWM") / 1024,
    );
    match stats {
        Some(s) => {
            let chunk_per_sample = s.chunk_bytes as f64 / s.samples as f64;
            let overhead = (rss_bytes - s.chunk_bytes as f64).max(0.0) / series as f64;
            println!(
                "  {chunk_per_sample:>6.2} B/sample in chunks + {overhead:>5.0} B/series (labels, index, maps); \
                 select decodes {:.1} M samples/s",
                decode_rate / 1e6
            );
        }
        None => println!("  reference: Vec<(i64, f64)> per series"),
    }
}

fn jitter(g: &mut Gen) -> i64 {
    if g.next().is_multiple_of(10) {
        (g.next() % 5) as i64
    } else {
        0
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(pos) = args.iter().position(|a| a == "--child") {
        let series: usize = args[pos + 1].parse().unwrap();
        let samples: usize = args[pos + 2].parse().unwrap();
        child(series, samples, args[pos + 3] == "reference");
        return;
    }
    if !args.iter().any(|a| a == "--bench") {
        return;
    }
    let scales: Vec<usize> = match std::env::var("KG_SERIES") {
        Ok(s) => s
            .split(',')
            .map(|n| n.trim().parse().expect("KG_SERIES"))
            .collect(),
        Err(_) => vec![100_000, 1_000_000],
    };
    let samples: usize = std::env::var("KG_SAMPLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(480);
    println!(
        "tsdb window: {samples} samples/series at 15 s, labels {} (target: <= 1.5 B/sample + <= 200 B/series)\n\
         {:>9} {:>7} {:>10} {:>12} {:>10} {:>10} {:>10}",
        if std::env::var("KG_LABELS").is_ok_and(|v| v == "unique") {
            "unique per series"
        } else {
            "100 series per target"
        },
        "series",
        "samples",
        "samples/s",
        "RSS B/series",
        "RSS B/smpl",
        "heap B/ser",
        "peak MiB"
    );
    let me = std::env::current_exe().expect("own path");
    for &series in &scales {
        // KG_REFERENCE=0 skips the reference (16 B/sample: 9 GB at 1M series).
        let modes: &[&str] = if std::env::var("KG_REFERENCE").is_ok_and(|v| v == "0") {
            &["tsdb"]
        } else {
            &["tsdb", "reference"]
        };
        for &mode in modes {
            let status = Command::new(&me)
                .args(["--child", &series.to_string(), &samples.to_string(), mode])
                .status()
                .expect("run child");
            assert!(status.success(), "child {series} {mode} failed");
        }
    }
}
