//! Behaviours both modes share, run against each; helpers for tests_disk.

use std::path::Path;
use std::time::Duration;

use super::*;

pub(super) fn disk_cfg(dir: &Path) -> BufferConfig {
    BufferConfig {
        dir: Some(dir.to_owned()),
        max_size: 1 << 20,
        segment_size: 4096,
        fsync: FsyncPolicy::Interval(Duration::from_millis(50)),
        when_full: WhenFull::Block,
    }
}

fn mem_cfg() -> BufferConfig {
    BufferConfig {
        dir: None,
        ..disk_cfg(Path::new("/nonexistent"))
    }
}

/// Deterministic content, different for every `i`, of any length.
pub(super) fn rec(i: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|k| (i.wrapping_mul(31).wrapping_add(k as u64 * 7) % 251) as u8)
        .collect()
}

/// Reads until `None` (every writer must be dropped).
pub(super) async fn read_all(r: &mut Reader) -> Vec<(u64, Vec<u8>)> {
    let mut all = Vec::new();
    while let Some(b) = tokio::time::timeout(Duration::from_secs(5), r.next_batch(64, 1 << 20))
        .await
        .expect("next_batch hung")
    {
        all.extend(b);
    }
    all
}

/// Reads exactly `n` records (writers may still be alive).
pub(super) async fn read_n(r: &mut Reader, n: usize) -> Vec<(u64, Vec<u8>)> {
    let mut all = Vec::new();
    while all.len() < n {
        let b = tokio::time::timeout(Duration::from_secs(5), r.next_batch(n - all.len(), 1 << 20))
            .await
            .expect("next_batch hung")
            .expect("buffer closed early");
        all.extend(b);
    }
    all
}

/// Both modes: a temp dir kept alive for the disk one.
fn modes() -> Vec<(&'static str, BufferConfig, Option<tempfile::TempDir>)> {
    let tmp = tempfile::tempdir().unwrap();
    vec![
        ("memory", mem_cfg(), None),
        ("disk", disk_cfg(tmp.path()), Some(tmp)),
    ]
}

#[tokio::test]
async fn round_trip_many_records_across_segment_rolls() {
    for (mode, cfg, tmp) in modes() {
        let (w, mut r) = open(cfg, BufferMetrics::unregistered()).unwrap();
        let mut expect = Vec::new();
        let mut i = 0u64;
        // Batches of 1..9 records, 0..300 bytes: ~ 150 KiB over 4 KiB segments.
        for batch in 0..200u64 {
            let recs: Vec<_> = (0..1 + batch % 9)
                .map(|k| rec(i + k, ((i + k) * 37 % 300) as usize))
                .collect();
            i += recs.len() as u64;
            expect.extend(recs.clone());
            assert_eq!(w.push(recs).await.unwrap(), Pushed::Stored);
        }
        if let Some(t) = &tmp {
            let segs = segment_files(t.path()).len();
            assert!(segs > 20, "{mode}: expected many segments, got {segs}");
        }
        assert_eq!(r.pending().0, expect.len() as u64);
        drop(w);
        let got = read_all(&mut r).await;
        assert_eq!(got.len(), expect.len(), "{mode}");
        for (n, ((seq, payload), want)) in got.iter().zip(&expect).enumerate() {
            assert_eq!(*seq, n as u64, "{mode}: oldest first, numbered from 0");
            assert_eq!(payload, want, "{mode}: record {n}");
        }
        r.ack(got.last().unwrap().0).unwrap();
        assert_eq!(r.pending(), (0, 0), "{mode}");
        if let Some(t) = &tmp {
            // Acknowledged segments are deleted; the current one stays.
            assert_eq!(segment_files(t.path()).len(), 1, "{mode}");
        }
    }
}

pub(super) fn segment_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .and_then(format::parse_segment_name)
                .is_some()
        })
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn batch_limits_and_at_least_one_record() {
    for (mode, cfg, _tmp) in modes() {
        let (w, mut r) = open(cfg, BufferMetrics::unregistered()).unwrap();
        let _ = w
            .push(vec![rec(0, 100), rec(1, 100), rec(2, 100), rec(3, 5000)])
            .await
            .unwrap();
        let b = r.next_batch(10, 250).await.unwrap();
        assert_eq!(
            b.iter().map(|x| x.0).collect::<Vec<_>>(),
            [0, 1],
            "{mode}: stops before passing max_bytes"
        );
        let b = r.next_batch(0, 250).await.unwrap();
        assert_eq!(b.len(), 1, "{mode}: max_records 0 still makes progress");
        let b = r.next_batch(10, 10).await.unwrap();
        assert_eq!(
            (b.len(), b[0].1.len()),
            (1, 5000),
            "{mode}: a record larger than max_bytes comes alone"
        );
    }
}

#[tokio::test]
async fn block_mode_push_waits_until_an_ack_frees_space() {
    for (mode, mut cfg, _tmp) in modes() {
        cfg.max_size = 10 * 108;
        let (w, mut r) = open(cfg, BufferMetrics::unregistered()).unwrap();
        assert_eq!(
            w.push((0..10).map(|i| rec(i, 100)).collect())
                .await
                .unwrap(),
            Pushed::Stored
        );
        assert!(!w.has_room(), "{mode}");
        let w2 = w.clone();
        let blocked = tokio::spawn(async move { w2.push(vec![rec(10, 100)]).await });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            !blocked.is_finished(),
            "{mode}: push must wait while the buffer is full"
        );
        // Reading alone frees nothing: only an ack does.
        let b = r.next_batch(2, usize::MAX).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!blocked.is_finished(), "{mode}: a read is not an ack");
        r.ack(b[0].0).unwrap();
        let res = tokio::time::timeout(Duration::from_secs(2), blocked)
            .await
            .expect("push still blocked")
            .unwrap();
        assert_eq!(res.unwrap(), Pushed::Stored, "{mode}");
        assert_eq!(r.pending(), (10, 10 * 108), "{mode}");
        assert!(!w.has_room(), "{mode}");
    }
}

#[tokio::test]
async fn room_probe_is_not_a_writer_and_reports_refusals() {
    let mut cfg = mem_cfg();
    cfg.max_size = 10 * 108;
    cfg.when_full = WhenFull::DropNewest;
    let (w, mut r) = open(cfg, BufferMetrics::unregistered()).unwrap();
    let room = w.room_probe();
    let _ = w.push((0..8).map(|i| rec(i, 100)).collect()).await.unwrap();
    assert!(room.has_room());
    // Below max_size, but a push just did not fit: not ready.
    assert_eq!(
        w.push((8..11).map(|i| rec(i, 100)).collect())
            .await
            .unwrap(),
        Pushed::Dropped
    );
    assert!(!room.has_room() && !w.has_room());
    let got = read_n(&mut r, 8).await;
    r.ack(got[2].0).unwrap(); // 5 of 10 left: half free
    assert!(room.has_room());
    drop(w);
    assert_eq!(
        read_all(&mut r).await.len(),
        0,
        "the probe does not keep the buffer open"
    );
}

#[test]
fn handles_can_move_between_tasks() {
    fn send_sync<T: Send + Sync + 'static>() {}
    fn send<T: Send + 'static>() {}
    send_sync::<Writer>();
    send_sync::<RoomProbe>();
    send::<Reader>();
    send_sync::<BufferError>();
}

#[tokio::test]
async fn drop_newest_drops_whole_pushes_and_counts_them() {
    for (mode, mut cfg, _tmp) in modes() {
        cfg.max_size = 10 * 108;
        cfg.when_full = WhenFull::DropNewest;
        let m = BufferMetrics::unregistered();
        let (w, mut r) = open(cfg, m.clone()).unwrap();
        assert_eq!(
            w.push((0..8).map(|i| rec(i, 100)).collect()).await.unwrap(),
            Pushed::Stored
        );
        // 3 do not fit: all-or-nothing, so all 3 are dropped.
        assert_eq!(
            w.push((8..11).map(|i| rec(i, 100)).collect())
                .await
                .unwrap(),
            Pushed::Dropped
        );
        assert_eq!(m.dropped.get(), 3, "{mode}");
        assert_eq!(
            w.push((8..10).map(|i| rec(i, 100)).collect())
                .await
                .unwrap(),
            Pushed::Stored
        );
        assert_eq!(w.push(vec![rec(10, 1)]).await.unwrap(), Pushed::Dropped);
        assert_eq!(m.dropped.get(), 4, "{mode}");
        assert_eq!((m.records.get(), m.bytes.get()), (10, 1080), "{mode}");
        drop(w);
        let got = read_all(&mut r).await;
        assert_eq!(
            got.iter().map(|x| x.0).collect::<Vec<_>>(),
            (0..10).collect::<Vec<_>>(),
            "{mode}"
        );
    }
}

#[tokio::test]
async fn too_large_records_and_pushes_are_errors_not_hangs() {
    for (mode, mut cfg, _tmp) in modes() {
        cfg.max_size = 1000;
        let (w, _r) = open(cfg, BufferMetrics::unregistered()).unwrap();
        let e = w.push(vec![vec![0; 993]]).await.unwrap_err();
        assert!(
            matches!(
                e,
                BufferError::RecordTooLarge {
                    size: 1001,
                    max: 1000
                }
            ),
            "{mode}: {e}"
        );
        let e = w.push(vec![vec![0; 500], vec![0; 500]]).await.unwrap_err();
        assert!(
            matches!(e, BufferError::BatchTooLarge { size: 1016, .. }),
            "{mode}: {e}"
        );
        // Exactly max_size fits.
        assert_eq!(
            w.push(vec![vec![0; 992]]).await.unwrap(),
            Pushed::Stored,
            "{mode}"
        );
        assert_eq!(w.push(vec![]).await.unwrap(), Pushed::Stored, "{mode}");
    }
}

#[tokio::test]
async fn rewind_redelivers_unacked_records() {
    for (mode, cfg, _tmp) in modes() {
        let (w, mut r) = open(cfg, BufferMetrics::unregistered()).unwrap();
        let _ = w
            .push((0..100).map(|i| rec(i, 200)).collect())
            .await
            .unwrap();
        let first = read_n(&mut r, 60).await;
        r.ack(29).unwrap();
        r.rewind();
        let again = read_n(&mut r, 70).await;
        assert_eq!(again[0].0, 30, "{mode}");
        assert_eq!(&again[..30], &first[30..], "{mode}: same records again");
        assert_eq!(again.last().unwrap().0, 99, "{mode}");
        // Rewind without acks, twice in a row, lands on the same record.
        r.rewind();
        r.rewind();
        assert_eq!(
            r.next_batch(1, usize::MAX).await.unwrap()[0].0,
            30,
            "{mode}"
        );
        assert_eq!(r.pending().0, 70, "{mode}");
        // Acking below the position is a no-op; beyond what was read, an error.
        r.ack(5).unwrap();
        assert!(
            matches!(
                r.ack(31),
                Err(BufferError::AckBeyondDelivered { seq: 31, next: 31 })
            ),
            "{mode}"
        );
    }
}

#[tokio::test]
async fn closing_every_writer_drains_then_ends() {
    for (mode, cfg, _tmp) in modes() {
        let (w, mut r) = open(cfg, BufferMetrics::unregistered()).unwrap();
        let w2 = w.clone();
        let _ = w.push(vec![rec(0, 10)]).await.unwrap();
        drop(w);
        let waiting = tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(b) = r.next_batch(10, usize::MAX).await {
                got.extend(b);
            }
            got
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "{mode}: one writer is still alive");
        let _ = w2.push(vec![rec(1, 10)]).await.unwrap();
        drop(w2);
        let got = tokio::time::timeout(Duration::from_secs(2), waiting)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.len(), 2, "{mode}");
    }
}

#[tokio::test]
async fn a_dropped_reader_fails_blocked_pushes() {
    for (mode, mut cfg, _tmp) in modes() {
        cfg.max_size = 108;
        let (w, r) = open(cfg, BufferMetrics::unregistered()).unwrap();
        let _ = w.push(vec![rec(0, 100)]).await.unwrap();
        let w2 = w.clone();
        let blocked = tokio::spawn(async move { w2.push(vec![rec(1, 100)]).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(r);
        let res = tokio::time::timeout(Duration::from_secs(2), blocked)
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(res, Err(BufferError::Closed)), "{mode}: {res:?}");
    }
}

/// Many producers, a small buffer so they block, a reader acking as it
/// goes: every record arrives once, each producer's in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_producers_lose_nothing() {
    for (mode, mut cfg, _tmp) in modes() {
        cfg.max_size = 16 << 10;
        cfg.fsync = FsyncPolicy::Always;
        let (w, mut r) = open(cfg, BufferMetrics::unregistered()).unwrap();
        let mut tasks = Vec::new();
        for p in 0..4u64 {
            let w = w.clone();
            tasks.push(tokio::spawn(async move {
                for n in 0..300u64 {
                    let recs = (0..1 + n % 4)
                        .map(|k| {
                            format!("{p}:{n}:{k}:{}", "x".repeat((n % 50) as usize)).into_bytes()
                        })
                        .collect();
                    assert_eq!(w.push(recs).await.unwrap(), Pushed::Stored);
                }
            }));
        }
        drop(w);
        let mut last_seq = None;
        let mut next: [(u64, u64); 4] = [(0, 0); 4];
        let mut count = 0;
        while let Some(b) = tokio::time::timeout(Duration::from_secs(10), r.next_batch(50, 1 << 20))
            .await
            .expect("hung")
        {
            for (seq, payload) in &b {
                assert!(
                    last_seq.is_none_or(|l| *seq == l + 1),
                    "{mode}: sequences are contiguous"
                );
                last_seq = Some(*seq);
                let s = String::from_utf8(payload.clone()).unwrap();
                let f: Vec<u64> = s.split(':').take(3).map(|x| x.parse().unwrap()).collect();
                let (p, n, k) = (f[0] as usize, f[1], f[2]);
                assert_eq!((n, k), next[p], "{mode}: producer {p} in order");
                next[p] = if k + 1 == 1 + n % 4 {
                    (n + 1, 0)
                } else {
                    (n, k + 1)
                };
                count += 1;
            }
            r.ack(b.last().unwrap().0).unwrap();
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(
            count,
            4 * (0..300u64).map(|n| 1 + n % 4).sum::<u64>(),
            "{mode}"
        );
        assert_eq!(r.pending(), (0, 0), "{mode}");
    }
}

#[test]
fn metrics_register_under_their_names() {
    let reg = prometheus::Registry::new();
    let m = BufferMetrics::register(&reg).unwrap();
    m.dropped.inc();
    let mut names: Vec<_> = reg.gather().iter().map(|f| f.name().to_owned()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "kubegate_buffer_bytes",
            "kubegate_buffer_corrupt_records_total",
            "kubegate_buffer_dropped_total",
            "kubegate_buffer_max_bytes",
            "kubegate_buffer_records"
        ]
    );
    assert!(
        BufferMetrics::register(&reg).is_err(),
        "registering twice is refused"
    );
}

#[test]
fn bad_config_is_refused() {
    let cfg = BufferConfig {
        max_size: 8,
        ..mem_cfg()
    };
    assert!(matches!(
        open(cfg, BufferMetrics::unregistered()),
        Err(BufferError::Config(_))
    ));
    let tmp = tempfile::tempdir().unwrap();
    let cfg = BufferConfig {
        segment_size: 10,
        ..disk_cfg(tmp.path())
    };
    assert!(matches!(
        open(cfg, BufferMetrics::unregistered()),
        Err(BufferError::Config(_))
    ));
    let d = BufferConfig::default();
    assert_eq!(
        (d.max_size, d.segment_size, d.fsync, d.when_full),
        (
            1 << 30,
            16 << 20,
            FsyncPolicy::Interval(Duration::from_millis(500)),
            WhenFull::Block
        )
    );
}
