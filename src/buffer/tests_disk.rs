//! Disk mode: restarts, crashes, damaged and hostile files.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::format::{HEADER_LEN, segment_header, segment_name};
use super::tests::{disk_cfg, read_all, read_n, rec, segment_files};
use super::*;

/// The files as a `kill -9` would leave them: copied while the handles are
/// still open (the copy has no lock, so it can be opened at once).
fn crash_copy(dir: &Path) -> tempfile::TempDir {
    let to = tempfile::tempdir().unwrap();
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.file_name().unwrap() != "lock" {
            fs::copy(&p, to.path().join(p.file_name().unwrap())).unwrap();
        }
    }
    to
}

/// Opens, returns everything delivered (writers closed) and the corrupt count.
async fn reopen_all(dir: &Path) -> (Vec<(u64, Vec<u8>)>, u64) {
    let m = BufferMetrics::unregistered();
    let (w, mut r) = open(disk_cfg(dir), m.clone()).unwrap();
    drop(w);
    (read_all(&mut r).await, m.corrupt.get())
}

async fn fill(dir: &Path, records: impl IntoIterator<Item = Vec<u8>>) {
    let (w, _r) = open(disk_cfg(dir), BufferMetrics::unregistered()).unwrap();
    for r in records {
        let _ = w.push(vec![r]).await.unwrap();
    }
}

fn seqs(v: &[(u64, Vec<u8>)]) -> Vec<u64> {
    v.iter().map(|x| x.0).collect()
}

/// xorshift: hostile bytes without a rand dependency.
fn garbage(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[tokio::test]
async fn restart_keeps_unacked_records_and_forgets_acked_ones() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let (w, mut r) = open(disk_cfg(tmp.path()), BufferMetrics::unregistered()).unwrap();
        let _ = w
            .push((0..100).map(|i| rec(i, 150)).collect())
            .await
            .unwrap();
        let got = read_n(&mut r, 60).await;
        r.ack(got[39].0).unwrap(); // 0..=39 delivered; 40..59 read, not acked
    }
    let m = BufferMetrics::unregistered();
    let (w, mut r) = open(disk_cfg(tmp.path()), m.clone()).unwrap();
    assert_eq!(r.pending(), (60, 60 * 158));
    assert_eq!((m.records.get(), m.bytes.get()), (60, 60 * 158));
    let _ = w.push(vec![rec(100, 150)]).await.unwrap();
    drop(w);
    let got = read_all(&mut r).await;
    assert_eq!(seqs(&got), (40..=100).collect::<Vec<_>>());
    assert!(got.iter().all(|(s, p)| *p == rec(*s, 150)));
    assert_eq!(m.corrupt.get(), 0);
}

#[tokio::test]
async fn a_crash_loses_at_most_100ms_of_acks_never_a_record() {
    let tmp = tempfile::tempdir().unwrap();
    let (w, mut r) = open(disk_cfg(tmp.path()), BufferMetrics::unregistered()).unwrap();
    let _ = w
        .push((0..50).map(|i| rec(i, 100)).collect())
        .await
        .unwrap();
    let _ = read_n(&mut r, 50).await;
    r.ack(9).unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    r.ack(19).unwrap(); // past the throttle: persisted now
    r.ack(29).unwrap(); // within 100 ms: not yet
    let crashed = crash_copy(tmp.path());
    let (got, _) = reopen_all(crashed.path()).await;
    assert_eq!(got[0].0, 20, "re-delivered from the last persisted ack");
    assert_eq!(got.len(), 30);
    r.sync().unwrap();
    let crashed = crash_copy(tmp.path());
    assert_eq!(
        reopen_all(crashed.path()).await.0[0].0,
        30,
        "sync persists at once"
    );
}

#[tokio::test]
async fn torn_last_record_at_every_offset_is_cut_and_counted() {
    let src = tempfile::tempdir().unwrap();
    fill(src.path(), (0..5).map(|i| rec(i, 40))).await;
    let seg = src.path().join(segment_name(0));
    let full = fs::metadata(&seg).unwrap().len();
    assert_eq!(full, HEADER_LEN + 5 * 48);
    let last = full - 48;
    for cut in last..full {
        let d = crash_copy(src.path());
        let f = fs::OpenOptions::new()
            .write(true)
            .open(d.path().join(segment_name(0)))
            .unwrap();
        f.set_len(cut).unwrap();
        let (got, corrupt) = reopen_all(d.path()).await;
        assert_eq!(seqs(&got), [0, 1, 2, 3], "cut at {cut}");
        assert!(got.iter().all(|(s, p)| *p == rec(*s, 40)));
        // Cutting exactly at the record boundary tears nothing.
        assert_eq!(corrupt, u64::from(cut > last), "cut at {cut}");
        if cut == last + 20 {
            // The repair is on disk: a second start finds nothing to count,
            // and the next record written takes the torn one's number.
            let m = BufferMetrics::unregistered();
            let (w, mut r) = open(disk_cfg(d.path()), m.clone()).unwrap();
            assert_eq!(m.corrupt.get(), 0);
            let _ = w.push(vec![rec(99, 3)]).await.unwrap();
            drop(w);
            assert_eq!(seqs(&read_all(&mut r).await), [0, 1, 2, 3, 4]);
        }
    }
}

#[tokio::test]
async fn a_corrupt_middle_record_is_skipped_and_counted() {
    let tmp = tempfile::tempdir().unwrap();
    fill(tmp.path(), (0..10).map(|i| rec(i, 40))).await;
    let seg = tmp.path().join(segment_name(0));
    let mut bytes = fs::read(&seg).unwrap();
    bytes[(HEADER_LEN + 3 * 48 + 8 + 5) as usize] ^= 0x40; // payload of record 3
    fs::write(&seg, &bytes).unwrap();

    let m = BufferMetrics::unregistered();
    let (w, mut r) = open(disk_cfg(tmp.path()), m.clone()).unwrap();
    assert_eq!(m.corrupt.get(), 1);
    // The corrupt slot keeps its bytes (and its number) until acked past.
    assert_eq!(r.pending(), (9, 10 * 48));
    drop(w);
    let got = read_all(&mut r).await;
    assert_eq!(seqs(&got), [0, 1, 2, 4, 5, 6, 7, 8, 9]);
    assert!(got.iter().all(|(s, p)| *p == rec(*s, 40)));
    assert_eq!(m.corrupt.get(), 1, "not counted again when read");
    r.rewind();
    let _ = r.next_batch(100, usize::MAX).await;
    assert_eq!(m.corrupt.get(), 1, "nor when read again");
    r.ack(9).unwrap();
    assert_eq!(r.pending(), (0, 0));
    drop(r);
    assert_eq!(reopen_all(tmp.path()).await, (vec![], 0));
}

#[tokio::test]
async fn a_corrupt_length_field_cuts_the_rest_of_the_segment() {
    // The documented limit of the rule: with the length untrustworthy, the
    // records after it cannot be found safely, so they are cut with it.
    for bad_len in [40_000u32, 10] {
        let tmp = tempfile::tempdir().unwrap();
        fill(tmp.path(), (0..10).map(|i| rec(i, 40))).await;
        let seg = tmp.path().join(segment_name(0));
        let mut bytes = fs::read(&seg).unwrap();
        let at = (HEADER_LEN + 3 * 48) as usize;
        bytes[at..at + 4].copy_from_slice(&bad_len.to_le_bytes());
        fs::write(&seg, &bytes).unwrap();
        let (got, corrupt) = reopen_all(tmp.path()).await;
        assert_eq!(
            (seqs(&got), corrupt),
            (vec![0, 1, 2], 1),
            "length {bad_len}"
        );
    }
}

#[tokio::test]
async fn hostile_segment_files_give_a_count_or_a_clear_error() {
    // Whole file random: not ours. Set aside (not deleted) and counted.
    let tmp = tempfile::tempdir().unwrap();
    fill(tmp.path(), (0..3).map(|i| rec(i, 40))).await;
    let stray = tmp.path().join(segment_name(100));
    fs::write(&stray, garbage(7, 4096)).unwrap();
    let (got, corrupt) = reopen_all(tmp.path()).await;
    assert_eq!((seqs(&got), corrupt), (vec![0, 1, 2], 1));
    assert!(!stray.exists());
    assert!(
        tmp.path()
            .join(format!("{}.corrupt", segment_name(100)))
            .exists()
    );

    // Our header, random body: the body is a corrupt tail, cut and counted.
    let bad = tmp.path().join(segment_name(200));
    let mut b = segment_header(200).to_vec();
    b.extend(garbage(9, 4000));
    fs::write(&bad, b).unwrap();
    let (got, corrupt) = reopen_all(tmp.path()).await;
    assert_eq!((seqs(&got), corrupt), (vec![0, 1, 2], 1));

    // Empty and half-written headers (died while creating): nothing lost.
    fs::write(tmp.path().join(segment_name(300)), b"").unwrap();
    fs::write(
        tmp.path().join(segment_name(301)),
        &segment_header(301)[..5],
    )
    .unwrap();
    let (got, corrupt) = reopen_all(tmp.path()).await;
    assert_eq!((seqs(&got), corrupt), (vec![0, 1, 2], 0));

    // A newer format: refuse, naming the file, and leave it alone.
    let newer = tmp.path().join(segment_name(400));
    let mut h = segment_header(400);
    h[4] = 9;
    fs::write(&newer, h).unwrap();
    let e = open(disk_cfg(tmp.path()), BufferMetrics::unregistered())
        .err()
        .expect("refused");
    assert!(
        e.to_string().contains(&segment_name(400)) && e.to_string().contains("version 9"),
        "{e}"
    );
    assert!(newer.exists());
}

#[tokio::test]
async fn random_segment_contents_never_panic() {
    for seed in 1..60u64 {
        let tmp = tempfile::tempdir().unwrap();
        let mut b = if seed % 2 == 0 {
            segment_header(0).to_vec()
        } else {
            Vec::new()
        };
        b.extend(garbage(seed, (seed * 97 % 3000) as usize));
        if seed % 3 == 0 {
            // A valid record in the middle of the garbage.
            let mut r = Vec::new();
            format::encode_record(&mut r, b"hello");
            let at = b.len() / 2;
            b.splice(at..at, r);
        }
        fs::write(tmp.path().join(segment_name(0)), &b).unwrap();
        fs::write(
            tmp.path().join("reader.pos"),
            garbage(seed + 1, (seed % 20) as usize),
        )
        .unwrap();
        match open(disk_cfg(tmp.path()), BufferMetrics::unregistered()) {
            Ok((w, mut r)) => {
                drop(w);
                let _ = read_all(&mut r).await;
            }
            Err(e) => assert!(e.to_string().contains(&segment_name(0)), "seed {seed}: {e}"),
        }
    }
}

#[tokio::test]
async fn reader_pos_past_the_end_continues_from_it() {
    // E.g. acked, then a power loss took the (not yet fsynced) records.
    let tmp = tempfile::tempdir().unwrap();
    fill(tmp.path(), (0..5).map(|i| rec(i, 40))).await;
    disk::write_pos(tmp.path(), 1000).unwrap();
    let m = BufferMetrics::unregistered();
    let (w, mut r) = open(disk_cfg(tmp.path()), m.clone()).unwrap();
    assert_eq!((r.pending(), m.corrupt.get()), ((0, 0), 0));
    let _ = w.push(vec![rec(7, 40)]).await.unwrap();
    drop(w);
    assert_eq!(
        seqs(&read_all(&mut r).await),
        [1000],
        "numbers never go back"
    );
    assert!(
        !tmp.path().join(segment_name(0)).exists(),
        "the acknowledged segment is gone"
    );
}

#[tokio::test]
async fn missing_segments_are_stepped_over() {
    let tmp = tempfile::tempdir().unwrap();
    fill(tmp.path(), (0..60).map(|i| rec(i, 300))).await; // ~13 per 4 KiB segment
    let segs = segment_files(tmp.path());
    assert!(segs.len() >= 4);
    let second =
        format::parse_segment_name(segs[1].file_name().unwrap().to_str().unwrap()).unwrap();
    let third = format::parse_segment_name(segs[2].file_name().unwrap().to_str().unwrap()).unwrap();
    fs::remove_file(&segs[1]).unwrap();
    let (got, _) = reopen_all(tmp.path()).await;
    let want: Vec<u64> = (0..second).chain(third..60).collect();
    assert_eq!(seqs(&got), want, "a hole in the middle");

    // The position inside the missing segment: start at the next one.
    disk::write_pos(tmp.path(), second + 2).unwrap();
    let (got, _) = reopen_all(tmp.path()).await;
    assert_eq!(seqs(&got), (third..60).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_damaged_position_redelivers_everything() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let (w, mut r) = open(disk_cfg(tmp.path()), BufferMetrics::unregistered()).unwrap();
        let _ = w.push((0..10).map(|i| rec(i, 40)).collect()).await.unwrap();
        let _ = read_n(&mut r, 10).await;
        r.ack(4).unwrap();
    }
    let mut pos = fs::read(tmp.path().join("reader.pos")).unwrap();
    pos[5] ^= 1;
    fs::write(tmp.path().join("reader.pos"), pos).unwrap();
    assert_eq!(
        seqs(&reopen_all(tmp.path()).await.0),
        (0..10).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn both_fsync_policies_survive_a_crash() {
    for fsync in [
        FsyncPolicy::Always,
        FsyncPolicy::Interval(Duration::from_millis(50)),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = BufferConfig {
            fsync,
            ..disk_cfg(tmp.path())
        };
        let (w, _r) = open(cfg, BufferMetrics::unregistered()).unwrap();
        let _ = w
            .push((0..40).map(|i| rec(i, 300)).collect())
            .await
            .unwrap();
        let durable = || w.shared.durable_end.load(Ordering::Acquire);
        match fsync {
            // Always: fsynced before push returned, segment rolls included.
            FsyncPolicy::Always => assert_eq!(durable(), 40),
            // Interval: written now, fsynced by the background task.
            FsyncPolicy::Interval(_) => {
                assert_eq!(durable(), 0);
                let t = std::time::Instant::now();
                while durable() < 40 && t.elapsed() < Duration::from_secs(5) {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                assert_eq!(durable(), 40);
            }
        }
        let crashed = crash_copy(tmp.path());
        let (got, corrupt) = reopen_all(crashed.path()).await;
        assert_eq!((got.len(), corrupt), (40, 0), "{fsync:?}");
    }
}

#[tokio::test]
async fn the_directory_is_locked_while_open() {
    let tmp = tempfile::tempdir().unwrap();
    let (w, r) = open(disk_cfg(tmp.path()), BufferMetrics::unregistered()).unwrap();
    let e = open(disk_cfg(tmp.path()), BufferMetrics::unregistered())
        .err()
        .expect("second open refused");
    assert!(matches!(e, BufferError::Locked { .. }), "{e}");
    drop((w, r));
    assert!(open(disk_cfg(tmp.path()), BufferMetrics::unregistered()).is_ok());
}

#[tokio::test]
async fn damage_while_running_is_skipped_and_counted() {
    let tmp = tempfile::tempdir().unwrap();
    let m = BufferMetrics::unregistered();
    let (w, mut r) = open(disk_cfg(tmp.path()), m.clone()).unwrap();
    let _ = w
        .push((0..40).map(|i| rec(i, 300)).collect())
        .await
        .unwrap();
    let segs: Vec<PathBuf> = segment_files(tmp.path());
    // A flipped payload byte in the first (sealed) segment: record 2.
    let mut b = fs::read(&segs[0]).unwrap();
    b[(HEADER_LEN + 2 * 308 + 8 + 1) as usize] ^= 1;
    fs::write(&segs[0], b).unwrap();
    // The second segment vanishes: its records are lost, counted once.
    fs::remove_file(&segs[1]).unwrap();
    drop(w);
    let got = read_all(&mut r).await;
    assert_eq!(m.corrupt.get(), 2);
    assert!(!seqs(&got).contains(&2));
    assert_eq!(got.last().unwrap().0, 39);
    r.ack(39).unwrap();
    assert_eq!(r.pending().0, 0, "the skipped records are freed by the ack");
}

#[tokio::test]
async fn sequence_numbers_near_the_limit_are_damage_not_overflow() {
    let tmp = tempfile::tempdir().unwrap();
    let huge = u64::MAX - 1;
    let mut b = segment_header(huge).to_vec();
    format::encode_record(&mut b, b"x");
    format::encode_record(&mut b, b"y");
    fs::write(tmp.path().join(segment_name(huge)), b).unwrap();
    disk::write_pos(tmp.path(), u64::MAX).unwrap();
    let m = BufferMetrics::unregistered();
    let (w, mut r) = open(disk_cfg(tmp.path()), m.clone()).unwrap();
    assert_eq!(m.corrupt.get(), 1, "set aside");
    let _ = w.push(vec![rec(0, 5)]).await.unwrap();
    drop(w);
    assert_eq!(seqs(&read_all(&mut r).await), [0]);
}
