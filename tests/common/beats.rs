//! Helpers for the beats tests: kubegate with a `beats:` section, the
//! documents it wrote, and the Beats clients written by others (pylogbeat,
//! python-logstash-async, the npm lumberjack-client) run as programs.

use super::{Child, free_port, live_metric, peer, wait_for};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub struct Gate {
    pub child: Child,
    /// `127.0.0.1:PORT` of the beats listener.
    pub beats: String,
    pub beats_port: u16,
    pub metrics_url: String,
}

/// kubegate with the file sink (unless `extra` sets `output:`), host
/// metrics and self-scrape off, and `beats:` on a free port. `beats_extra`
/// goes inside the `beats:` section (two-space indented lines); `extra` is
/// appended at the top level.
pub fn start_gate(beats_extra: &str, extra: &str) -> Gate {
    start_gate_in(Child::kubegate(), beats_extra, extra, None)
}

/// As [`start_gate`] in a given builder (data dir) and on a given port.
pub fn start_gate_in(
    b: super::ChildBuilder,
    beats_extra: &str,
    extra: &str,
    port: Option<u16>,
) -> Gate {
    let http = free_port();
    let beats_port = port.unwrap_or_else(free_port);
    let mut cfg = format!(
        "global:\n  data_dir: {dir}\nserver:\n  listen_address: 127.0.0.1:{http}\n  log_level: info,kubegate::ingest=debug\nhost_metrics:\n  enabled: false\nbeats:\n  listen_address: 127.0.0.1:{beats_port}\n",
        dir = b.dir().display()
    );
    cfg.push_str(beats_extra);
    if !beats_extra.ends_with('\n') {
        cfg.push('\n');
    }
    if !extra.contains("output:") {
        cfg.push_str("output:\n  file:\n    path: documents\n");
    }
    cfg.push_str(extra);
    let path = b.dir().join("kubegate.yaml");
    std::fs::write(&path, &cfg).expect("write config");
    let mut child = b.arg("run").arg("--config").arg(&path).spawn();
    child.wait_log_contains(Duration::from_secs(30), "beats listener is running");
    let metrics_url = format!("http://127.0.0.1:{http}/metrics");
    child.wait_http_ok(Duration::from_secs(30), &metrics_url);
    Gate {
        child,
        beats: format!("127.0.0.1:{beats_port}"),
        beats_port,
        metrics_url,
    }
}

impl Gate {
    pub fn metric(&self, prefix: &str) -> f64 {
        live_metric(&self.metrics_url, prefix)
    }

    /// Every document in the NDJSON output so far.
    pub fn documents(&self) -> Vec<Value> {
        let dir = self.child.dir().join("documents");
        let mut out = Vec::new();
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let text = std::fs::read_to_string(e.path()).unwrap_or_default();
            // The last line may still be half-written.
            out.extend(
                text.lines()
                    .filter_map(|l| serde_json::from_str::<Value>(l).ok()),
            );
        }
        out
    }

    /// Waits until `n` documents satisfy `f`; returns them.
    pub fn wait_documents(&mut self, n: usize, f: impl Fn(&Value) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let docs: Vec<Value> = self.documents().into_iter().filter(|d| f(d)).collect();
            if docs.len() >= n {
                return docs;
            }
            assert!(
                self.child.is_running(),
                "kubegate exited\n{}",
                super::log_tail(&self.child.log())
            );
            assert!(
                Instant::now() < deadline,
                "only {} of {n} documents after 30 s\n{}",
                docs.len(),
                super::log_tail(&self.child.log())
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Runs the venv's Python on `script` with `args`; the output is returned
/// whatever the exit status.
pub fn python(script: &str, args: &[&str], timeout: Duration) -> Output {
    run_with_timeout(
        Command::new(peer("PYTHON"))
            .arg("-c")
            .arg(script)
            .args(args),
        timeout,
    )
}

/// Runs Node on `script` with the npm peers on its module path.
pub fn node(script: &str, args: &[&str], timeout: Duration) -> Output {
    let modules = peers_value("NODE_PATH");
    run_with_timeout(
        Command::new(peer("NODE"))
            .arg("-e")
            .arg(script)
            .arg("--")
            .args(args)
            .env("NODE_PATH", modules),
        timeout,
    )
}

fn peers_value(key: &str) -> PathBuf {
    let env_file = Path::new(env!("CARGO_MANIFEST_DIR")).join(".peers/paths.env");
    let text = std::fs::read_to_string(&env_file).unwrap_or_default();
    text.lines()
        .filter_map(|l| l.split_once('='))
        .find(|(k, _)| k.trim() == key)
        .map(|(_, v)| PathBuf::from(v.trim()))
        .filter(|p| p.exists())
        .unwrap_or_else(|| {
            panic!("test peer {key} is missing: run tests/setup-peers.sh (no {key}= in .peers/paths.env)")
        })
}

fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let deadline = Instant::now() + timeout;
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let o = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let e = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: o.join().unwrap(),
        stderr: e.join().unwrap(),
    }
}

pub fn show(o: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A raw connection for hand-made frames.
pub fn raw(addr: &str) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect to beats");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

/// Reads one 6-byte ACK: (version, seq).
pub fn read_ack(s: &mut TcpStream) -> std::io::Result<(u8, u32)> {
    let mut b = [0u8; 6];
    s.read_exact(&mut b)?;
    assert_eq!(b[1], b'A', "not an ACK frame: {b:?}");
    Ok((b[0], u32::from_be_bytes([b[2], b[3], b[4], b[5]])))
}

/// Writes `bytes`, then waits for the server to close: returns true once
/// a read sees EOF or a reset (within 20 s).
pub fn send_expect_close(addr: &str, bytes: &[u8]) -> bool {
    let mut s = raw(addr);
    let _ = s.write_all(bytes);
    let mut buf = [0u8; 64];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return false,
            Err(_) => return true,
        }
    }
}

/// Waits until the counter at `prefix` reaches `n`.
pub fn wait_metric(g: &Gate, prefix: &str, n: f64) {
    wait_for(Duration::from_secs(30), &format!("{prefix} >= {n}"), || {
        (g.metric(prefix) >= n).then_some(())
    });
}

/// A filebeat-style event of about `size` bytes.
pub fn filebeat_event(i: usize, size: usize) -> String {
    let head = format!(
        r#"{{"@timestamp":"2026-11-26T10:00:00.000Z","@metadata":{{"beat":"filebeat","type":"_doc","version":"8.17.0"}},"log":{{"offset":{off},"file":{{"path":"/var/log/app/app.log"}}}},"input":{{"type":"filestream"}},"agent":{{"type":"filebeat","version":"8.17.0","name":"node-a"}},"host":{{"name":"node-a"}},"ecs":{{"version":"8.0.0"}},"n":{i},"message":""#,
        off = i * 100
    );
    let mut s = head;
    const TEXT: &str =
        "GET /api/v1/items?page=2 HTTP/1.1 200 1532 0.004 lorem ipsum dolor sit amet ";
    let pad = size.saturating_sub(s.len() + 2);
    s.extend(TEXT.chars().cycle().take(pad));
    s.push_str("\"}");
    s
}
