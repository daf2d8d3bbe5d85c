//! Hostile Lumberjack input against the kubegate binary: each case closes
//! only its own connection with a clear, counted error, while the process
//! and a well-behaved connection opened before carry on.

mod common;

use common::beats::{Gate, raw, read_ack, send_expect_close, start_gate, wait_metric};
use kubegate::ingest::beats::frame::encode;
use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

const LIMITS: &str = "  max_frame_size: 64KiB\n  max_decompressed_size: 256KiB\n  max_window_size: 1000\n  max_connections: 8\n  keepalive: off\n";

/// A client that behaves: one event per window, numbering on.
struct Good {
    s: TcpStream,
    seq: u32,
}

impl Good {
    fn send(&mut self) {
        self.seq += 1;
        let mut b = Vec::new();
        encode::window(&mut b, 1);
        encode::json(&mut b, self.seq, br#"{"message":"good"}"#);
        self.s
            .write_all(&b)
            .expect("good connection still writable");
        let (_, seq) = read_ack(&mut self.s).expect("good connection still gets ACKs");
        assert_eq!(seq, self.seq);
    }
}

fn case(g: &mut Gate, good: &mut Good, bytes: &[u8], counter: &str, log: &str) {
    let before = g.metric(counter);
    assert!(
        send_expect_close(&g.beats, bytes),
        "kubegate did not close the connection for {log:?}"
    );
    wait_metric(g, counter, before + 1.0);
    g.child.wait_log_contains(Duration::from_secs(20), log);
    assert!(g.child.is_running());
    good.send();
}

fn proto(reason: &str) -> String {
    format!("kubegate_beats_protocol_errors_total{{reason=\"{reason}\"}}")
}

fn limit(name: &str) -> String {
    format!("kubegate_beats_limit_exceeded_total{{limit=\"{name}\"}}")
}

#[test]
fn hostile_frames_close_only_their_connection() {
    let mut g = start_gate(LIMITS, "");
    let mut good = Good {
        s: raw(&g.beats),
        seq: 0,
    };
    good.send();

    case(
        &mut g,
        &mut good,
        b"3W\0\0\0\x01",
        &proto("bad_version"),
        "unsupported protocol version byte 0x33",
    );
    case(
        &mut g,
        &mut good,
        b"2X\0\0\0\x01",
        &proto("bad_frame_type"),
        "unknown frame type 0x58",
    );
    case(
        &mut g,
        &mut good,
        b"2W\0\0\0\0",
        &proto("empty_window"),
        "window of 0 events",
    );
    let mut w = Vec::new();
    encode::window(&mut w, 1_000_000);
    case(
        &mut g,
        &mut good,
        &w,
        &limit("window_size"),
        "window of 1000000 events exceeds max_window_size 1000",
    );
    // A compressed frame that claims 1 GB: refused from its header, nothing
    // is buffered.
    let mut c = b"2W\0\0\0\x01".to_vec();
    c.extend_from_slice(b"2C");
    c.extend_from_slice(&(1u32 << 30).to_be_bytes());
    c.extend_from_slice(&[0x78, 0x9c, 0, 0]);
    case(
        &mut g,
        &mut good,
        &c,
        &limit("frame_size"),
        "compressed frame of 1073741824 bytes exceeds max_frame_size 65536",
    );
    // A zip bomb: 10 MB of one JSON string in ~10 KB.
    let mut inner = Vec::new();
    let big = format!("{{\"message\":\"{}\"}}", "A".repeat(10 << 20));
    encode::json(&mut inner, 1, big.as_bytes());
    let mut bomb = Vec::new();
    encode::window(&mut bomb, 1);
    encode::compressed(&mut bomb, &inner, 9);
    assert!(bomb.len() < 64 << 10, "bomb is {} bytes", bomb.len());
    case(
        &mut g,
        &mut good,
        &bomb,
        &limit("decompressed_size"),
        "compressed frame inflates past max_decompressed_size 262144 bytes",
    );
    let mut j = Vec::new();
    encode::json(&mut j, 1, br#"{"a":1}"#);
    let mut nested_inner = Vec::new();
    encode::compressed(&mut nested_inner, &j, 1);
    let mut nested = Vec::new();
    encode::window(&mut nested, 1);
    encode::compressed(&mut nested, &nested_inner, 1);
    case(
        &mut g,
        &mut good,
        &nested,
        &proto("nested_compression"),
        "compressed frame inside a compressed frame",
    );
    // A compressed frame whose content stops inside a J frame.
    let mut cut = Vec::new();
    encode::window(&mut cut, 1);
    encode::compressed(&mut cut, &j[..j.len() - 3], 1);
    case(
        &mut g,
        &mut good,
        &cut,
        &proto("truncated"),
        "compressed frame ends in the middle of a frame",
    );
    case(
        &mut g,
        &mut good,
        &j,
        &proto("no_window"),
        "outside a window: send a W frame first",
    );
    case(
        &mut g,
        &mut good,
        b"2A\0\0\0\x01",
        &proto("unexpected_ack"),
        "client sent an ACK frame",
    );

    // Truncated on the wire: the client goes away mid-frame.
    let before = g.metric(&proto("truncated"));
    let mut t = raw(&g.beats);
    let mut half = Vec::new();
    encode::window(&mut half, 2);
    encode::json(&mut half, 1, br#"{"message":"one"}"#);
    half.extend_from_slice(&j[..5]);
    t.write_all(&half).unwrap();
    t.shutdown(Shutdown::Write).unwrap();
    wait_metric(&g, &proto("truncated"), before + 1.0);
    g.child
        .wait_log_contains(Duration::from_secs(20), "connection closed inside a frame");
    good.send();

    // An event that is not JSON is skipped, counted, and the window still ACKed.
    let mut s = raw(&g.beats);
    let mut b = Vec::new();
    encode::window(&mut b, 2);
    encode::json(&mut b, 1, b"not json");
    encode::json(&mut b, 2, br#"{"message":"fine"}"#);
    s.write_all(&b).unwrap();
    assert_eq!(read_ack(&mut s).unwrap(), (b'2', 2));
    wait_metric(&g, "kubegate_beats_events_total{outcome=\"invalid\"}", 1.0);

    // Flood: the good connection and `s` hold 2 of 8 slots.
    let flood: Vec<TcpStream> = (0..20).map(|_| raw(&g.beats)).collect();
    wait_metric(&g, &limit("connections"), 10.0);
    g.child.wait_log_contains(
        Duration::from_secs(20),
        "beats connection refused: max_connections reached",
    );
    drop(flood);
    good.send();
    common::wait_until(Duration::from_secs(20), "slots to free up", || {
        g.metric("kubegate_beats_connections_active") <= 2.0
    });
    let mut again = Good {
        s: raw(&g.beats),
        seq: 0,
    };
    again.send();
    good.send();

    // Every error was logged once, with the peer's address.
    let log = g.child.log();
    let closes: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("beats connection closed:"))
        .collect();
    assert!(
        closes.iter().all(|l| l.contains("peer=127.0.0.1:")),
        "{closes:#?}"
    );
    assert_eq!(
        closes
            .iter()
            .filter(|l| l.contains("nested_compression"))
            .count(),
        1
    );
    assert!(g.child.is_running());
}

#[test]
fn idle_connections_are_closed_but_a_waiting_window_is_not_idle() {
    let g = start_gate("  idle_timeout: 1s\n  keepalive: off\n", "");
    let mut s = raw(&g.beats);
    let mut b = Vec::new();
    encode::window(&mut b, 2);
    encode::json(&mut b, 1, br#"{"message":"one"}"#);
    s.write_all(&b).unwrap();
    // Mid-window and silent: idle.
    let closed = send_expect_close(&g.beats, b"");
    assert!(closed, "a silent connection was not closed");
    wait_metric(&g, &limit("idle_timeout"), 2.0);
    assert!(
        g.child
            .log()
            .contains("no data for 1s (idle_timeout) with no window waiting on kubegate")
    );
}
