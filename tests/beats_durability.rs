//! ACK semantics under pressure: keep-alives while a window waits on a
//! full buffer (the client does not time out), and no acknowledged event
//! lost across a crash of kubegate.

mod common;

use common::beats::{filebeat_event, python, raw, read_ack, show, start_gate, start_gate_in};
use common::fault_proxy::{Fault, FaultProxy};
use common::{Child, wait_until};
use kubegate::ingest::beats::frame::encode;
use std::io::Write;
use std::time::{Duration, Instant};

const PYLOGBEAT: &str = r#"
import sys, time, pylogbeat
host, port = sys.argv[1], int(sys.argv[2])
pad = "x" * 2000
# A 3 s read timeout stands in for filebeat's 30 s at a tenth of the scale.
with pylogbeat.PyLogBeatClient(host, port, timeout=3) as c:
    for w in range(2):
        t = time.time()
        c.send([{"message": "py %d %s" % (w * 20 + i, pad), "n": w * 20 + i} for i in range(20)])
        print("window", w, "acked after", round(time.time() - t, 1), "s", flush=True)
"#;

#[test]
fn keepalives_while_a_window_waits_on_a_full_buffer() {
    let es = common::start_osmem();
    let proxy = FaultProxy::start(es.port);
    proxy.set(Fault::Status(503));
    let g = start_gate(
        "  keepalive_interval: 1s\n",
        &format!(
            "buffer:\n  max_size: 64KiB\n  segment_size: 32KiB\noutput:\n  sink: elasticsearch\n  elasticsearch:\n    hosts: ['{}']\n    logs_index: kubegate-logs\n    batch_max_age: 100ms\n    bootstrap: false\n",
            proxy.url()
        ),
    );
    let port = g.beats_port.to_string();
    let py = std::thread::spawn(move || {
        python(PYLOGBEAT, &["127.0.0.1", &port], Duration::from_secs(120))
    });
    // A filebeat-style client: each window numbered from 1, reading ACKs
    // until the window's last, with the same 3 s read timeout.
    let addr = g.beats.clone();
    let fb = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(500));
        let mut s = raw(&addr);
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let mut b = Vec::new();
        encode::window(&mut b, 20);
        let mut inner = Vec::new();
        for i in 0..20 {
            encode::json(
                &mut inner,
                i + 1,
                filebeat_event(1000 + i as usize, 2000).as_bytes(),
            );
        }
        encode::compressed(&mut b, &inner, 3);
        s.write_all(&b).unwrap();
        let mut acks = Vec::new();
        loop {
            let (_, seq) = read_ack(&mut s).expect("an ACK within 3 s");
            acks.push(seq);
            if seq == 20 {
                return acks;
            }
        }
    });
    let waited = Instant::now();
    wait_until(Duration::from_secs(30), "keep-alives to flow", || {
        g.metric("kubegate_beats_acks_total{kind=\"keepalive\"}") >= 6.0
    });
    assert!(g.metric("kubegate_buffer_bytes") > 40_000.0);
    proxy.set(Fault::None);
    let out = py.join().unwrap();
    assert!(out.status.success(), "pylogbeat timed out: {}", show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("window 1 acked"), "{stdout}");
    let acks = fb.join().unwrap();
    // Keep-alives say 0 (nothing of this window is durable yet), then 20.
    assert!(acks.len() >= 3, "{acks:?}");
    assert!(acks[..acks.len() - 1].iter().all(|s| *s == 0), "{acks:?}");
    assert!(waited.elapsed() > Duration::from_secs(3));
    wait_until(Duration::from_secs(60), "all 60 events in osmem", || {
        common::es_count(&es.url(), "kubegate-logs") == 60
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_mid_stream_loses_no_acknowledged_event() {
    let es = common::start_osmem();
    let proxy = FaultProxy::start(es.port);
    // Nothing reaches Elasticsearch before the crash: every ACKed event is
    // only in the disk buffer when kubegate is killed.
    proxy.set(Fault::Status(503));
    let output = format!(
        "output:\n  sink: elasticsearch\n  elasticsearch:\n    hosts: ['{}']\n    logs_index: kubegate-logs\n    batch_max_age: 100ms\n    bootstrap: false\n",
        proxy.url()
    );
    let out2 = output.clone();
    let g = tokio::task::spawn_blocking(move || start_gate("  keepalive: off\n", &out2))
        .await
        .unwrap();
    let addr = g.beats.clone();
    let port = g.beats_port;
    let connect = |addr: String| async move {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match ferro_lumberjack::client::ClientBuilder::new()
                .add_host(addr.clone())
                .timeout(Duration::from_secs(10))
                .connect()
                .await
            {
                Ok(c) => return c,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("cannot reconnect: {e}"),
            }
        }
    };
    let window = |w: usize| -> Vec<Vec<u8>> {
        (0..50)
            .map(|i| filebeat_event(w * 50 + i, 500).into_bytes())
            .collect()
    };
    let mut client = connect(addr.clone()).await;
    let mut acked = 0usize;
    for w in 0..10 {
        assert_eq!(client.send_json(window(w)).await.unwrap(), 50);
        acked += 50;
    }
    // Crash (SIGKILL) with a window in flight.
    let inflight = tokio::spawn(async move {
        let r = client.send_json(window(10)).await;
        (client, r)
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    let dir = tokio::task::spawn_blocking(move || g.child.into_dir())
        .await
        .unwrap();
    let (_, r) = inflight.await.unwrap();
    let resend_from = if r.is_ok() { 11 } else { 10 };
    if r.is_ok() {
        acked += 50;
    }
    proxy.set(Fault::None);
    let g = tokio::task::spawn_blocking(move || {
        start_gate_in(
            Child::kubegate_in(dir),
            "  keepalive: off\n",
            &output,
            Some(port),
        )
    })
    .await
    .unwrap();
    let mut client = connect(addr).await;
    for w in resend_from..20 {
        assert_eq!(client.send_json(window(w)).await.unwrap(), 50);
    }
    let url = es.url();
    tokio::task::spawn_blocking(move || {
        wait_until(Duration::from_secs(60), "all 1000 events in osmem", || {
            common::es_count(&url, "kubegate-logs") >= 1000
        });
        // Deterministic ids: resent events did not duplicate.
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(common::es_count(&url, "kubegate-logs"), 1000);
        drop(g);
    })
    .await
    .unwrap();
    assert!(acked >= 500);
}
