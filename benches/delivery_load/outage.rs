//! Outage: the ES server is stopped mid-run and started again; the bench
//! records memory, backlog and delivery over time and reports whether any
//! document was lost or stored twice.

use super::*;

pub(crate) struct Tick {
    pub(crate) t: u64,
    pub(crate) rss: u64,
    pub(crate) buf_bytes: i64,
    pub(crate) buf_records: i64,
    pub(crate) disk: u64,
    pub(crate) produced: u64,
}

pub(crate) async fn outage_phase(p: &Params, http: &reqwest::Client) {
    let (secs, rate) = (p.outage_secs, p.outage_rate);
    let hold = RefusingPort::new();
    let port = hold.port;
    let base = format!("http://127.0.0.1:{port}");
    let index = format!("bench-outage-{}", std::process::id());
    let (es_cfg, tmp, metrics, es) = es_sink(p, &base, &index, "kg-bench-outage-");
    let bm = BufferMetrics::unregistered();
    let (buf_bytes, buf_records) = (bm.bytes.clone(), bm.records.clone());
    let buf_dir = tmp.path().join("buffer");
    // Room for the whole outage (about 1.1 KB a record) plus a quarter.
    let max_size = rate * secs * 1100 * 5 / 4;
    let cfg = buffer_config(&buf_dir, max_size);
    println!(
        "\n== outage: {rate} docs/s for {secs} s into a sink whose server is down (port {port} refuses connections); buffer max_size {:.0} MiB on {}; load {} ==",
        cfg.max_size as f64 / MIB,
        p.dir.display(),
        loadavg()
    );
    let (w, r) = buffer::open(cfg, bm).unwrap_or_else(|e| fail(&format!("open buffer: {e}")));
    let (deadline_tx, deadline_rx) = watch::channel(None);
    let sink_task = tokio::spawn(sink::deliver(
        r,
        Sink::Elasticsearch(es),
        limits(&es_cfg),
        metrics.clone(),
        deadline_rx,
    ));
    let produced = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let producer = {
        let (produced, stop) = (produced.clone(), stop.clone());
        tokio::spawn(async move {
            let mut g = DocGen::new();
            let start = Instant::now();
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            let mut behind = Duration::ZERO;
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                let due = rate * start.elapsed().as_millis() as u64 / 1000;
                let mut have = produced.load(Ordering::Relaxed);
                while have < due {
                    let n = (due - have).min(5000) as usize;
                    let t = Instant::now();
                    let docs = g.scrape(n, kubegate::model::now_ms());
                    let records: Vec<Vec<u8>> = docs
                        .iter()
                        .map(|d| record::encode(&Encoded::new(d.clone())))
                        .collect();
                    drop(docs);
                    match w.push(records).await {
                        Ok(Pushed::Stored) => {}
                        other => fail(&format!("outage push: {other:?}")),
                    }
                    behind = behind.max(t.elapsed());
                    have += n as u64;
                    produced.store(have, Ordering::Relaxed);
                }
            }
            behind
        })
    };

    let mut ticks: Vec<Tick> = Vec::new();
    let sample = |t: u64| Tick {
        t,
        rss: status_kib("self", "VmRSS"),
        buf_bytes: buf_bytes.get(),
        buf_records: buf_records.get(),
        disk: segment_bytes(&buf_dir),
        produced: produced.load(Ordering::Relaxed),
    };
    let show = |k: &Tick, extra: &str| {
        println!(
            "  t={:>4}s  RSS {:>7.1} MiB  buffer {:>8.1} MiB {:>9} records  segments {:>8.1} MiB  produced {:>9}{extra}",
            k.t,
            k.rss as f64 / 1024.0,
            k.buf_bytes as f64 / MIB,
            k.buf_records,
            k.disk as f64 / MIB,
            k.produced
        )
    };
    let every = (secs / 20).max(1);
    let start = Instant::now();
    let mut next = start;
    for t in 1..=secs {
        next += Duration::from_secs(1);
        tokio::time::sleep_until(next.into()).await;
        let k = sample(t);
        if t.is_multiple_of(every) || t == 1 {
            show(&k, "");
        }
        ticks.push(k);
    }
    let rss: Vec<u64> = ticks.iter().map(|k| k.rss).collect();
    let settle = ticks.len().min(10);
    let steady = &rss[settle.min(rss.len().saturating_sub(1))..];
    let (lo, hi) = (
        *steady.iter().min().unwrap_or(&0),
        *steady.iter().max().unwrap_or(&0),
    );
    let slope = slope_kib_per_min(&ticks[settle.min(ticks.len().saturating_sub(1))..]);
    let last = ticks.last().expect("at least one second");
    println!(
        "  outage summary: {} docs buffered ({:.1} MiB of segments, {:.0} B/doc); RSS over the whole outage {:.1}..{:.1} MiB, after the first {settle} s {:.1}..{:.1} MiB (spread {:.1} MiB, trend {:+.1} KiB/min); sink retries {}",
        last.produced,
        last.disk as f64 / MIB,
        last.disk as f64 / last.produced.max(1) as f64,
        *rss.iter().min().unwrap_or(&0) as f64 / 1024.0,
        *rss.iter().max().unwrap_or(&0) as f64 / 1024.0,
        lo as f64 / 1024.0,
        hi as f64 / 1024.0,
        (hi - lo) as f64 / 1024.0,
        slope,
        metrics.sink_retries.get()
    );

    if !p.catch_up {
        stop.store(true, Ordering::Relaxed);
        let _ = producer.await;
        let _ = deadline_tx.send(Some(Instant::now()));
        let drained = sink_task.await.expect("sink task");
        println!(
            "  server not started (KG_CATCH_UP=0): delivery ended with {drained:?}, on disk for the next start"
        );
        return;
    }

    // The server comes back on the port the sink points at.
    let t_up = Instant::now();
    drop(hold.fd);
    let server = Server::start(&p.catch_up_server, port, http).await;
    println!(
        "  {} {} up on port {port} after {:.2} s; the producer keeps feeding {rate} docs/s",
        server.name,
        server.version,
        t_up.elapsed().as_secs_f64()
    );
    // The backlog: everything produced before the server came back. It is
    // delivered once `sent` reaches it (oldest first). Polled every 100 ms.
    let backlog = produced.load(Ordering::Relaxed);
    let mut first_sent = None;
    let mut caught_up = None;
    let mut rss_catch = (u64::MAX, 0u64);
    let limit = (secs * 2).max(120);
    let mut records_now = buf_records.get().max(0) as u64;
    let mut polls = 0u64;
    while polls < limit * 10 {
        polls += 1;
        tokio::time::sleep_until((next + Duration::from_millis(100 * polls)).into()).await;
        let sent = sink_count(&metrics, "sent");
        if first_sent.is_none() && sent > 0 {
            first_sent = Some((t_up.elapsed(), sent));
        }
        let done = sent >= backlog;
        if polls.is_multiple_of(10) || done {
            let t = polls.div_ceil(10);
            let k = sample(secs + t);
            rss_catch = (rss_catch.0.min(k.rss), rss_catch.1.max(k.rss));
            records_now = k.buf_records.max(0) as u64;
            if t.is_multiple_of(every) || t == 1 || done {
                show(&k, &format!("  delivered {sent}"));
            }
        }
        if done {
            caught_up = Some((t_up.elapsed(), sent));
            break;
        }
    }
    let sent_at_end = sink_count(&metrics, "sent");
    let waited = t_up.elapsed();
    stop.store(true, Ordering::Relaxed);
    let worst_push = producer.await.expect("producer task");
    let total = produced.load(Ordering::Relaxed);
    // What is left is a few seconds of feed when caught up; a server too
    // slow to catch up gets the shutdown deadline instead, as at SIGTERM.
    let mut sink_task = sink_task;
    let drain_for = if caught_up.is_some() {
        Duration::from_secs(60)
    } else {
        Duration::ZERO
    };
    let drained = match tokio::time::timeout(drain_for, &mut sink_task).await {
        Ok(d) => d.expect("sink task"),
        Err(_) => {
            let _ = deadline_tx.send(Some(Instant::now()));
            sink_task.await.expect("sink task")
        }
    };
    let (sent, dup) = (
        sink_count(&metrics, "sent"),
        sink_count(&metrics, "duplicate"),
    );
    let counted = server.count(http, &index).await;
    let left = match drained {
        Drained::All => 0,
        Drained::Left(n) => n,
    };
    let rss_line = format!(
        "RSS during catch-up {:.1}..{:.1} MiB",
        rss_catch.0 as f64 / 1024.0,
        rss_catch.1 as f64 / 1024.0
    );
    match (first_sent, caught_up) {
        (Some((f, s0)), Some((c, sent_then))) => {
            let drain = c.saturating_sub(f).as_secs_f64().max(1e-3);
            println!(
                "  catch-up: first bulk answered {:.1} s after the server came up (the sink's retry backoff, 100 ms to 30 s with jitter); the whole backlog of {backlog} docs delivered {drain:.1} s after that: {:.0} docs/s while {rate} docs/s kept arriving (100 ms polling); {records_now} records not yet acknowledged then; {rss_line}",
                f.as_secs_f64(),
                sent_then.saturating_sub(s0) as f64 / drain,
            );
        }
        (Some((f, _)), None) => {
            let d = waited.saturating_sub(f).as_secs_f64().max(1e-3);
            println!(
                "  catch-up: NOT caught up within {limit} s: {} delivered at {:.0} docs/s since the first accepted bulk ({:.1} s after the server came up), {rate} docs/s arriving; backlog {backlog} -> {records_now} docs; {rss_line}",
                sent_at_end,
                sent_at_end as f64 / d,
                f.as_secs_f64(),
            );
        }
        _ => println!("  catch-up: nothing delivered within {limit} s"),
    }
    println!(
        "  end: {drained:?}; {total} produced, {sent} sent + {left} left in the buffer, {dup} duplicate, {counted} in the index ({}); slowest build+push of one tick {:.0} ms",
        if counted == sent && sent + left == total && dup == 0 {
            "each delivered document stored exactly once, none lost"
        } else {
            "MISMATCH"
        },
        worst_push.as_secs_f64() * 1e3
    );
    drop(server);
}

/// Least-squares slope of RSS over time, KiB per minute.
pub(crate) fn slope_kib_per_min(ticks: &[Tick]) -> f64 {
    let n = ticks.len() as f64;
    if n < 2.0 {
        return 0.0;
    }
    let mx = ticks.iter().map(|k| k.t as f64).sum::<f64>() / n;
    let my = ticks.iter().map(|k| k.rss as f64).sum::<f64>() / n;
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for k in ticks {
        sxy += (k.t as f64 - mx) * (k.rss as f64 - my);
        sxx += (k.t as f64 - mx).powi(2);
    }
    sxy / sxx * 60.0
}

/// Runs the outage phase in a fresh copy of this binary, so its RSS is the
/// pipeline's alone (not the documents the other phases hold).
pub(crate) fn outage_in_child() {
    let exe = std::env::current_exe().unwrap_or_else(|e| fail(&format!("current_exe: {e}")));
    let mut cmd = Command::new(exe);
    cmd.args(std::env::args_os().skip(1))
        .env("KG_PHASES", "outage")
        .env("KG_CHILD", "1");
    die_with_parent(&mut cmd);
    match cmd.status() {
        Ok(s) if s.success() => {}
        Ok(s) => fail(&format!("outage child exited with {s}")),
        Err(e) => fail(&format!("outage child: {e}")),
    }
}
