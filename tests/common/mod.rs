//! Shared integration-test harness. Use it with `mod common;` from a file in
//! `tests/`.
//!
//! - Peers (third-party programs) are located through `.peers/paths.env`,
//!   written by `tests/setup-peers.sh`. A missing peer fails the test and
//!   names that script; tests never skip.
//! - Every process started here binds 127.0.0.1 only, gets its own temp dir,
//!   writes stdout and stderr to a log file in a temp dir, and is killed and
//!   reaped by PID when its handle drops. If the handle drops while the test
//!   is panicking, the tail of its log is printed first (cargo shows it with
//!   the failure).
//! - HTTP helpers use `reqwest::blocking`, each call on its own short-lived
//!   thread, so they are safe from a plain `#[test]` and from inside a tokio
//!   runtime alike (use `#[tokio::test(flavor = "multi_thread")]` there, since
//!   the helpers and `wait_until` block the calling thread).
//!
//! Peer differences worth knowing (see `tests/harness_selftest.rs`):
//! - noida-db is near-real-time like real Elasticsearch: a document becomes
//!   searchable about one second after indexing unless something refreshes.
//!   osmem-server makes writes visible at once. `es_count`, `es_search` and
//!   `es_ids` refresh first, so they see every acknowledged write on both.
//! - osmem-server refuses writes to data streams (per-item 400,
//!   `unsupported_operation_exception`); noida-db accepts them but stores a
//!   plain index named after the stream (hits report `_index` as the stream
//!   name, not `.ds-…`) and has no `_data_stream` API.
//! - noida-db snapshots its data to `--data-dir` only now and then and on
//!   SIGTERM: [`Peer::stop`] (graceful) keeps the data for
//!   [`Peer::restart`]; [`Peer::kill`] and `Drop` (SIGKILL) may lose it.
//!   osmem-server keeps nothing across a restart.
#![allow(dead_code)]

pub mod beats;
pub mod ecs_fields;
pub mod fake_k8s;
pub mod fault_proxy;
pub mod helm;
pub mod http_receiver;
pub mod prometheus_peers;
pub mod promql_peer;
pub mod push_peers;
pub mod static_target;

use std::collections::BTreeSet;
use std::ffi::{OsStr, OsString};
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tempfile::TempDir;

/// How long a peer may take to become ready. They are ready in 10–50 ms on
/// an idle machine; the margin is for a loaded 2-core CI runner.
pub const PEER_READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long [`Peer::stop`] waits after SIGTERM before it sends SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(5);
/// Timeout of each HTTP request made by the helpers here.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest `size` the Elasticsearch API accepts without scrolling.
pub const ES_MAX_SIZE: usize = 10_000;

const POLL: Duration = Duration::from_millis(20);
const LOG_TAIL_BYTES: usize = 4_000;
/// Attempts at a fresh port when a peer exits because its port was taken.
const PORT_ATTEMPTS: usize = 5;

// ---------------------------------------------------------------------------
// Locating peers and ports

/// Path of the test peer `key` (`OSMEM_SERVER`, `NOIDA_DB`, `NODE_EXPORTER`,
/// `PROMTOOL`) from `<crate>/.peers/paths.env`. Panics, naming the setup
/// script, when the file or key is missing or the file is not executable.
pub fn peer(key: &str) -> PathBuf {
    let env_file = Path::new(env!("CARGO_MANIFEST_DIR")).join(".peers/paths.env");
    let text = match fs::read_to_string(&env_file) {
        Ok(text) => text,
        Err(e) => peer_missing(key, &format!("{}: {e}", env_file.display())),
    };
    let value = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .find(|(k, _)| k.trim() == key)
        .map(|(_, v)| v.trim().trim_matches('"').to_owned())
        .filter(|v| !v.is_empty());
    let Some(value) = value else {
        peer_missing(key, &format!("no {key}= line in {}", env_file.display()));
    };
    let path = PathBuf::from(value);
    match fs::metadata(&path) {
        Ok(meta) if meta.is_file() && meta.permissions().mode() & 0o111 != 0 => path,
        Ok(_) => peer_missing(
            key,
            &format!("{} is not an executable file", path.display()),
        ),
        Err(e) => peer_missing(key, &format!("{}: {e}", path.display())),
    }
}

fn peer_missing(key: &str, why: &str) -> ! {
    panic!(
        "test peer {key} is missing: run tests/setup-peers.sh (or the README's test command)\n  ({why})"
    )
}

/// A port that was free a moment ago on 127.0.0.1 (bound to port 0, then
/// released). Never the same port twice within one test process: the kernel
/// does hand a just-released port out again, and tests run in parallel.
/// Another process may still take the port before it is used; the peer
/// starters retry on a new port when that happens.
pub fn free_port() -> u16 {
    static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    for _ in 0..1000 {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("bind 127.0.0.1:0")
            .port();
        let mut handed_out = HANDED_OUT.lock().unwrap_or_else(PoisonError::into_inner);
        if handed_out.insert(port) {
            return port;
        }
    }
    panic!("no unused port on 127.0.0.1 after 1000 tries");
}

/// The kubegate binary built by cargo for this test run.
/// The value of the first exposition line starting with `prefix` (name and
/// labels as kubegate renders them, sorted); 0 when there is none.
pub fn metric_value(text: &str, prefix: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// kubegate's counter of documents Elasticsearch stored.
pub const ES_SENT: &str = "kubegate_sink_documents_total{outcome=\"sent\",sink=\"elasticsearch\"}";

/// [`metric_value`] of a live `/metrics` endpoint; 0 while it does not answer.
pub fn live_metric(metrics_url: &str, prefix: &str) -> f64 {
    metric_value(
        &try_http_get(metrics_url)
            .map(|(_, b)| b)
            .unwrap_or_default(),
        prefix,
    )
}

/// A count from the "delivery summary" line kubegate logs at a clean
/// shutdown, e.g. `summary_count(&log, "sent")`.
pub fn summary_count(log: &str, field: &str) -> u64 {
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains("delivery summary"))
        .unwrap_or_else(|| panic!("no delivery summary in the log:\n{}", log_tail(log)));
    let key = format!(" {field}=");
    line.split(&key)
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in {line}"))
}

/// kubegate on its embedded default config, as the README runs it, with
/// only the listener, self-scrape target and data dir set from outside.
pub fn kubegate_on_default(addr: &str, data_dir: &Path) -> ChildBuilder {
    Child::kubegate()
        .arg("run")
        .env("KUBEGATE_LISTEN_ADDRESS", addr)
        .env("KUBEGATE_SELF_TARGET", addr)
        .env("KUBEGATE_DATA_DIR", data_dir)
        // Tests run in parallel: no fixed beats port.
        .env("KUBEGATE_BEATS_LISTEN_ADDRESS", "127.0.0.1:0")
        // Hermetic: a kubeconfig on the developer's machine must not turn
        // the default config's Kubernetes jobs on.
        .env("HOME", data_dir)
        .env_remove("KUBECONFIG")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("NODE_NAME")
}

pub fn kubegate_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_kubegate"))
}

// ---------------------------------------------------------------------------
// Polling

/// Calls `f` every 20 ms until it returns true; panics naming `what` when
/// `timeout` passes first. `f` is always called at least once.
pub fn wait_until(timeout: Duration, what: &str, mut f: impl FnMut() -> bool) {
    wait_for(timeout, what, || f().then_some(()));
}

/// Like [`wait_until`], returning the first `Some` value `f` produces.
pub fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = f() {
            return value;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        thread::sleep(POLL);
    }
}

// ---------------------------------------------------------------------------
// Logs and signals

fn open_log(path: &Path) -> (Stdio, Stdio) {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open log {}: {e}", path.display()));
    let err = file
        .try_clone()
        .unwrap_or_else(|e| panic!("dup log {}: {e}", path.display()));
    (Stdio::from(file), Stdio::from(err))
}

fn read_log(path: &Path) -> String {
    fs::read(path)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default()
}

/// The last few KB of `text`, cut at a line start when possible.
pub fn log_tail(text: &str) -> &str {
    if text.len() <= LOG_TAIL_BYTES {
        return text;
    }
    let mut start = text.len() - LOG_TAIL_BYTES;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    let tail = &text[start..];
    match tail.find('\n') {
        Some(nl) if nl + 1 < tail.len() => &tail[nl + 1..],
        _ => tail,
    }
}

/// Removes ANSI escape sequences (colours) from log text.
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        // CSI: ESC [ parameters... final byte in @..~
        if chars.clone().next() == Some('[') {
            chars.next();
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        }
    }
    out
}

/// Sends SIGTERM to `pid` with the `kill` program (no libc needed).
fn sigterm(pid: u32) {
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run kill -TERM");
    assert!(status.success(), "kill -TERM {pid} failed: {status}");
}

fn wait_child_timeout(child: &mut std::process::Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait on child") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// SIGKILL the child and every process it started (so a wrapper such as
/// `sh -c` leaves no orphans), then reap the child. A no-op when the child
/// has already been reaped.
fn kill_and_reap(child: &mut std::process::Child) {
    if let Ok(None) = child.try_wait() {
        // Collect before the kill: afterwards they are re-parented to init.
        let descendants = descendants(child.id());
        let _ = child.kill();
        if !descendants.is_empty() {
            let _ = Command::new("kill")
                .arg("-KILL")
                .args(descendants.iter().map(u32::to_string))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let _ = child.wait();
    }
}

/// PIDs of all live descendants of `pid`, read from /proc.
fn descendants(pid: u32) -> Vec<u32> {
    let mut parent_of = Vec::new();
    for entry in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // "<pid> (<comm>) <state> <ppid> ..."; comm may hold spaces and ')'.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if let Some(ppid) = ppid {
            parent_of.push((child, ppid));
        }
    }
    let mut found = Vec::new();
    let mut frontier = vec![pid];
    while let Some(parent) = frontier.pop() {
        for &(child, ppid) in &parent_of {
            if ppid == parent && !found.contains(&child) {
                found.push(child);
                frontier.push(child);
            }
        }
    }
    found
}

// ---------------------------------------------------------------------------
// Peers

/// A running third-party server (osmem-server, noida-db, node_exporter).
/// Dropping it sends SIGKILL to the PID and reaps it.
pub struct Peer {
    pub name: &'static str,
    pub child: std::process::Child,
    pub port: u16,
    /// The peer's own temp dir (its working dir; holds its log and data).
    pub dir: TempDir,
    log_path: PathBuf,
    program: PathBuf,
    args: Vec<OsString>,
    /// GET path that answers 200 once the peer serves.
    ready_path: &'static str,
    /// Text the peer logs only after it bound its port.
    ready_marker: String,
}

struct PeerSpec {
    name: &'static str,
    key: &'static str,
    ready_path: &'static str,
    /// Builds (args, ready marker) for a port and the peer's temp dir.
    make: fn(u16, &Path) -> (Vec<OsString>, String),
}

fn start_peer(spec: PeerSpec) -> Peer {
    let program = peer(spec.key);
    for attempt in 1..=PORT_ATTEMPTS {
        let dir = tempfile::Builder::new()
            .prefix(&format!("kubegate-test-{}-", spec.name))
            .tempdir()
            .expect("create peer temp dir");
        let port = free_port();
        let (args, ready_marker) = (spec.make)(port, dir.path());
        let log_path = dir.path().join(format!("{}.log", spec.name));
        let child = spawn_peer_process(&program, &args, dir.path(), &log_path);
        let mut peer = Peer {
            name: spec.name,
            child,
            port,
            dir,
            log_path,
            program: program.clone(),
            args,
            ready_path: spec.ready_path,
            ready_marker,
        };
        match peer.wait_ready() {
            Ok(()) => return peer,
            Err(why) => {
                let log = peer.log();
                let port_taken = peer.child.try_wait().ok().flatten().is_some()
                    && log.contains("already in use");
                if port_taken && attempt < PORT_ATTEMPTS {
                    continue; // `peer` drops here; its process has exited.
                }
                panic!(
                    "{} on port {port} did not become ready: {why}\n--- {} log tail ---\n{}",
                    spec.name,
                    spec.name,
                    log_tail(&log)
                );
            }
        }
    }
    unreachable!("the last attempt either returns or panics")
}

fn spawn_peer_process(
    program: &Path,
    args: &[OsString],
    dir: &Path,
    log_path: &Path,
) -> std::process::Child {
    let (stdout, stderr) = open_log(log_path);
    Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", program.display()))
}

impl Peer {
    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the peer wrote to stdout and stderr so far (all runs, when
    /// it was restarted).
    pub fn log(&self) -> String {
        read_log(&self.log_path)
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Graceful stop: SIGTERM, then SIGKILL after [`STOP_GRACE`]; reaps the
    /// process. noida-db saves its data on SIGTERM.
    pub fn stop(&mut self) {
        if !self.is_running() {
            return;
        }
        sigterm(self.pid());
        if wait_child_timeout(&mut self.child, STOP_GRACE).is_none() {
            kill_and_reap(&mut self.child);
        }
    }

    /// Hard stop: SIGKILL and reap (simulates a crash).
    pub fn kill(&mut self) {
        kill_and_reap(&mut self.child);
    }

    /// Stops the peer (gracefully) if it runs, then starts it again with
    /// the same arguments, port and temp dir, and waits until it is ready.
    /// The log file keeps the earlier runs' output.
    pub fn restart(&mut self) {
        self.stop();
        // Only accept a ready marker from this run's output.
        let earlier = self.log().matches(self.ready_marker.as_str()).count();
        self.child = spawn_peer_process(&self.program, &self.args, self.dir.path(), &self.log_path);
        if let Err(why) = self.wait_ready_after(earlier) {
            panic!(
                "{} did not come back on port {}: {why}\n--- {} log tail ---\n{}",
                self.name,
                self.port,
                self.name,
                log_tail(&self.log())
            );
        }
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        self.wait_ready_after(0)
    }

    fn wait_ready_after(&mut self, earlier_markers: usize) -> Result<(), String> {
        let url = format!("{}{}", self.url(), self.ready_path);
        let deadline = Instant::now() + PEER_READY_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().map_err(|e| e.to_string())? {
                return Err(format!("it exited with {status}"));
            }
            // The marker proves this process bound the port, so a 200 cannot
            // come from some other server that happened to take it.
            let bound = self.log().matches(self.ready_marker.as_str()).count() > earlier_markers;
            if bound && matches!(try_http_get(&url), Ok((200, _))) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "no 200 from GET {url} within {PEER_READY_TIMEOUT:?} (log shows bound port: {bound})"
                ));
            }
            thread::sleep(POLL);
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!(
                "--- {} (pid {}, port {}) log tail ---\n{}",
                self.name,
                self.pid(),
                self.port,
                log_tail(&self.log())
            );
        }
        kill_and_reap(&mut self.child);
    }
}

/// osmem-server (OpenSearch 3.8 API, in memory). Ready when
/// `GET /_cluster/health` answers 200 (~15 ms). Besides the flags of
/// PEERS.md it gets `-parent-pid <this test process>`, so it exits by itself
/// even if the test process dies without running destructors.
pub fn start_osmem() -> Peer {
    start_peer(PeerSpec {
        name: "osmem",
        key: "OSMEM_SERVER",
        ready_path: "/_cluster/health",
        make: |port, _dir| {
            let args = [
                "-addr".to_owned(),
                format!("127.0.0.1:{port}"),
                "-no-ja".to_owned(),
                "-no-stdin-watch".to_owned(),
                "-parent-pid".to_owned(),
                std::process::id().to_string(),
            ];
            // First line it prints once listening: {"url":"http://127.0.0.1:PORT",...}
            let marker = format!("\"url\":\"http://127.0.0.1:{port}\"");
            (args.into_iter().map(OsString::from).collect(), marker)
        },
    })
}

/// noida-db (Elasticsearch 8.15 API), the binary itself run in the
/// foreground with its data in `<dir>/data`. Ready when `GET /` answers 200
/// (~30 ms). It is a single process (no fork; checked: SIGKILL of the PID
/// leaves nothing listening), so `Drop` stops it for good. It also listens
/// on a random 127.0.0.1 control port and prints a harmless
/// `GLIBC_2.39 not found` warning.
pub fn start_noida() -> Peer {
    start_peer(PeerSpec {
        name: "noida",
        key: "NOIDA_DB",
        ready_path: "/",
        make: |port, dir| {
            let args = vec![
                OsString::from("start"),
                OsString::from("--data-dir"),
                dir.join("data").into_os_string(),
                OsString::from("--host"),
                OsString::from("127.0.0.1"),
                OsString::from("--only"),
                OsString::from("elasticsearch"),
                OsString::from("--elasticsearch-port"),
                OsString::from(port.to_string()),
            ];
            // Printed only after the port is bound ("elasticsearch  http://...").
            let marker = format!("http://127.0.0.1:{port}");
            (args, marker)
        },
    })
}

/// prometheus-node-exporter 1.5 with its default collectors, except:
/// `--no-collector.systemd` (no systemd here; it logs an error on every
/// scrape) and `--collector.textfile.directory=<dir>/textfile`, an empty
/// dir of its own instead of /var/lib/prometheus/node-exporter. Drop `*.prom`
/// files there (see [`Peer::node_exporter_textfile_dir`]) to add series.
/// Ready when `GET /metrics` answers 200 (~20 ms). Its output is NOT
/// promtool-lint clean (camelCase names, `_bits` units: exit 3).
pub fn start_node_exporter() -> Peer {
    start_peer(PeerSpec {
        name: "node_exporter",
        key: "NODE_EXPORTER",
        ready_path: "/metrics",
        make: |port, dir| {
            let textfile = dir.join("textfile");
            fs::create_dir_all(&textfile).expect("create textfile dir");
            let mut textfile_flag = OsString::from("--collector.textfile.directory=");
            textfile_flag.push(&textfile);
            let args = vec![
                OsString::from(format!("--web.listen-address=127.0.0.1:{port}")),
                OsString::from("--no-collector.systemd"),
                textfile_flag,
            ];
            let marker = format!("msg=\"Listening on\" address=127.0.0.1:{port}");
            (args, marker)
        },
    })
}

impl Peer {
    /// node_exporter's textfile collector dir (`*.prom` files there are
    /// served on the next scrape).
    pub fn node_exporter_textfile_dir(&self) -> PathBuf {
        self.dir.path().join("textfile")
    }
}

// ---------------------------------------------------------------------------
// HTTP

fn http_client() -> &'static reqwest::blocking::Client {
    static CLIENT: OnceLock<reqwest::blocking::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::blocking::Client::builder()
            .timeout(HTTP_TIMEOUT)
            // No keep-alive reuse: peers get killed and restarted on the
            // same port, and a stale pooled connection would make flakes.
            .pool_max_idle_per_host(0)
            .build()
            .expect("build reqwest blocking client")
    })
}

/// Runs `f` on a fresh thread: `reqwest::blocking` panics when used on a
/// thread that is inside a tokio runtime.
fn off_runtime<T: Send>(f: impl FnOnce(&reqwest::blocking::Client) -> T + Send) -> T {
    thread::scope(|scope| match scope.spawn(|| f(http_client())).join() {
        Ok(value) => value,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

/// One HTTP request; `Err` only when no response arrived (connection
/// refused, timeout, ...). Returns status and body text.
pub fn try_http(
    method: &str,
    url: &str,
    content_type: Option<&str>,
    body: Option<Vec<u8>>,
) -> Result<(u16, String), String> {
    let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
    off_runtime(|client| {
        let mut request = client.request(method, url);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        let response = request.send().map_err(|e| format!("{e:#}"))?;
        let status = response.status().as_u16();
        let text = response.text().map_err(|e| format!("{e:#}"))?;
        Ok((status, text))
    })
}

/// Like [`try_http`], panicking when no response arrives.
pub fn http(
    method: &str,
    url: &str,
    content_type: Option<&str>,
    body: Option<Vec<u8>>,
) -> (u16, String) {
    try_http(method, url, content_type, body)
        .unwrap_or_else(|e| panic!("{method} {url}: no response: {e}"))
}

pub fn try_http_get(url: &str) -> Result<(u16, String), String> {
    try_http("GET", url, None, None)
}

/// GET `url`; panics when no response arrives.
pub fn http_get(url: &str) -> (u16, String) {
    http("GET", url, None, None)
}

/// Waits until GET `url` answers 200 and returns the body.
pub fn wait_http_ok(timeout: Duration, url: &str) -> String {
    wait_for(
        timeout,
        &format!("GET {url} to answer 200"),
        || match try_http_get(url) {
            Ok((200, body)) => Some(body),
            _ => None,
        },
    )
}

// ---------------------------------------------------------------------------
// Elasticsearch API (osmem-server and noida-db). `base` is
// `http://127.0.0.1:PORT` (see `Peer::url`).

/// One search hit.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub id: String,
    pub index: String,
    pub source: Value,
}

fn es_json(method: &str, url: &str, body: Option<&Value>) -> (u16, String) {
    let body = body.map(|b| serde_json::to_vec(b).expect("serialize request body"));
    http(method, url, body.as_ref().map(|_| "application/json"), body)
}

fn parse_json(what: &str, text: &str) -> Value {
    serde_json::from_str(text)
        .unwrap_or_else(|e| panic!("{what}: response is not JSON ({e}): {text}"))
}

fn is_index_not_found(status: u16, body: &str) -> bool {
    status == 404 && body.contains("index_not_found_exception")
}

/// `POST /_refresh`: makes every acknowledged write searchable. Needed for
/// noida-db (about 1 s refresh interval); a no-op in effect for osmem-server.
pub fn es_refresh(base: &str) {
    let url = format!("{base}/_refresh");
    let (status, body) = http("POST", &url, None, None);
    assert_eq!(status, 200, "POST {url} answered {status}: {body}");
}

/// Number of documents in `index_pattern` after a refresh. A pattern that
/// matches nothing, or a missing concrete index, counts 0.
pub fn es_count(base: &str, index_pattern: &str) -> u64 {
    es_refresh(base);
    let url = format!("{base}/{index_pattern}/_count");
    let (status, body) = http_get(&url);
    if is_index_not_found(status, &body) {
        return 0;
    }
    assert_eq!(status, 200, "GET {url} answered {status}: {body}");
    parse_json(&url, &body)["count"]
        .as_u64()
        .unwrap_or_else(|| panic!("GET {url}: no count in {body}"))
}

/// Runs a full `_search` request body after a refresh and returns the whole
/// response (for aggregations and the like). Panics on a non-200 answer.
pub fn es_search_body(base: &str, index_pattern: &str, body: &Value) -> Value {
    es_refresh(base);
    let url = format!("{base}/{index_pattern}/_search");
    let (status, text) = es_json("POST", &url, Some(body));
    assert_eq!(status, 200, "POST {url} {body} answered {status}: {text}");
    parse_json(&url, &text)
}

/// Hits of `{"query": query, "size": size}` on `index_pattern`, after a
/// refresh, in the server's order. A missing concrete index gives no hits.
pub fn es_search(base: &str, index_pattern: &str, query: &Value, size: usize) -> Vec<Hit> {
    es_refresh(base);
    let url = format!("{base}/{index_pattern}/_search");
    let body = json!({ "query": query, "size": size });
    let (status, text) = es_json("POST", &url, Some(&body));
    if is_index_not_found(status, &text) {
        return Vec::new();
    }
    assert_eq!(status, 200, "POST {url} {body} answered {status}: {text}");
    let response = parse_json(&url, &text);
    let hits = response["hits"]["hits"]
        .as_array()
        .unwrap_or_else(|| panic!("POST {url}: no hits.hits in {text}"));
    hits.iter()
        .map(|hit| Hit {
            id: hit["_id"].as_str().unwrap_or_default().to_owned(),
            index: hit["_index"].as_str().unwrap_or_default().to_owned(),
            source: hit["_source"].clone(),
        })
        .collect()
}

/// Sorted `_id`s of all documents in `index_pattern` (up to 10 000).
pub fn es_ids(base: &str, index_pattern: &str) -> Vec<String> {
    let mut ids: Vec<String> = es_search(
        base,
        index_pattern,
        &json!({ "match_all": {} }),
        ES_MAX_SIZE,
    )
    .into_iter()
    .map(|hit| hit.id)
    .collect();
    ids.sort();
    ids
}

/// `POST /_bulk` with an NDJSON body (must end with a newline); asserts an
/// HTTP 200 and returns the parsed response (check `errors` and `items`
/// yourself).
pub fn es_bulk(base: &str, ndjson: &str) -> Value {
    let url = format!("{base}/_bulk");
    let (status, text) = http(
        "POST",
        &url,
        Some("application/x-ndjson"),
        Some(ndjson.as_bytes().to_vec()),
    );
    assert_eq!(status, 200, "POST {url} answered {status}: {text}");
    parse_json(&url, &text)
}

// ---------------------------------------------------------------------------
// promtool

/// Pipes `text` to `promtool check metrics`; returns its exit code and its
/// stdout and stderr together. Exit codes (promtool 2.42): 0 clean,
/// 1 parse error, 3 lint problems (e.g. a counter without `_total`, a
/// missing HELP, camelCase names).
pub fn promtool_check_metrics(text: &str) -> (i32, String) {
    let promtool = peer("PROMTOOL");
    let mut child = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", promtool.display()));
    let mut stdin = child.stdin.take().expect("promtool stdin");
    let output = thread::scope(|scope| {
        // Write on another thread so a large input cannot deadlock against
        // promtool's output; promtool may stop reading after a parse error.
        scope.spawn(move || {
            let _ = stdin.write_all(text.as_bytes());
        });
        child.wait_with_output().expect("wait for promtool")
    });
    let mut out = String::from_utf8_lossy(&output.stdout).into_owned();
    out.push_str(&String::from_utf8_lossy(&output.stderr));
    (output.status.code().unwrap_or(-1), out)
}

// ---------------------------------------------------------------------------
// The kubegate binary (or any program) as a child process

/// A child process with its own temp data dir (also its working dir) and a
/// log file (stdout and stderr) in a separate temp dir. Dropping it sends
/// SIGKILL to the PID and reaps it.
///
/// ```ignore
/// let b = Child::kubegate();
/// std::fs::write(b.dir().join("kubegate.yaml"), CONFIG).unwrap();
/// let cfg = b.dir().join("kubegate.yaml");
/// let mut gw = b.arg("--config").arg(&cfg).env("KUBECONFIG", &kubeconfig).spawn();
/// gw.wait_log_contains(Duration::from_secs(10), "listening");
/// gw.send_sigterm();
/// assert!(gw.wait_timeout(Duration::from_secs(10)).expect("exit").success());
/// ```
pub struct Child {
    pub child: std::process::Child,
    dir: Option<TempDir>,
    log_path: PathBuf,
    _log_dir: TempDir,
    name: String,
}

/// Builds a [`Child`]: program, arguments, environment, data dir.
pub struct ChildBuilder {
    command: Command,
    dir: TempDir,
    name: String,
}

impl ChildBuilder {
    fn new(program: &Path, dir: TempDir) -> ChildBuilder {
        let mut command = Command::new(program);
        command
            .current_dir(dir.path())
            .stdin(Stdio::null())
            // tracing-subscriber honours NO_COLOR; logs stay greppable.
            .env("NO_COLOR", "1");
        let name = program
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| program.display().to_string());
        ChildBuilder { command, dir, name }
    }

    /// The data dir the child will get (write config files here first).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.command.arg(arg);
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.command.args(args);
        self
    }

    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.command.env(key, value);
        self
    }

    /// The child's working directory (default: the test's, the repository).
    #[allow(dead_code)] // not every test binary changes it
    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.command.current_dir(dir);
        self
    }

    pub fn envs<I, K, V>(mut self, vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        self.command.envs(vars);
        self
    }

    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Self {
        self.command.env_remove(key);
        self
    }

    pub fn spawn(mut self) -> Child {
        let log_dir = tempfile::Builder::new()
            .prefix(&format!("kubegate-test-{}-log-", self.name))
            .tempdir()
            .expect("create log temp dir");
        let log_path = log_dir.path().join(format!("{}.log", self.name));
        let (stdout, stderr) = open_log(&log_path);
        let child = self
            .command
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {:?}: {e}", self.command.get_program()));
        Child {
            child,
            dir: Some(self.dir),
            log_path,
            _log_dir: log_dir,
            name: self.name,
        }
    }
}

impl Child {
    /// The kubegate binary in a fresh temp data dir.
    pub fn kubegate() -> ChildBuilder {
        Child::kubegate_in(new_data_dir())
    }

    /// The kubegate binary in a given data dir (e.g. one kept from an earlier
    /// run with [`Child::into_dir`]).
    pub fn kubegate_in(dir: TempDir) -> ChildBuilder {
        ChildBuilder::new(&kubegate_bin(), dir)
    }

    /// Any program, in a fresh temp data dir.
    pub fn program(program: impl AsRef<Path>) -> ChildBuilder {
        ChildBuilder::new(program.as_ref(), new_data_dir())
    }

    /// Shorthand: kubegate with `args` and extra `envs`, fresh data dir.
    pub fn spawn(args: &[&str], envs: &[(&str, &str)]) -> Child {
        Child::kubegate()
            .args(args)
            .envs(envs.iter().copied())
            .spawn()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The child's data dir (its working dir).
    pub fn dir(&self) -> &Path {
        self.dir.as_ref().expect("data dir").path()
    }

    /// stdout and stderr so far, ANSI colours removed.
    pub fn log(&self) -> String {
        strip_ansi(&read_log(&self.log_path))
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Sends SIGTERM (via `kill -TERM <pid>`). Call it before the child has
    /// been reaped (`wait_timeout` returned `Some`), not after.
    pub fn send_sigterm(&self) {
        sigterm(self.pid());
    }

    /// Waits up to `timeout` for the child to exit; `None` if it still runs.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        wait_child_timeout(&mut self.child, timeout)
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGTERM, then asserts a clean exit (status 0) within `timeout`.
    pub fn terminate_ok(&mut self, timeout: Duration) {
        self.send_sigterm();
        let status = self.wait_timeout(timeout).unwrap_or_else(|| {
            panic!(
                "no exit within {timeout:?} of SIGTERM\n{}",
                log_tail(&self.log())
            )
        });
        assert!(
            status.success(),
            "exit status {status:?}\n{}",
            log_tail(&self.log())
        );
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        kill_and_reap(&mut self.child);
    }

    /// Waits until the log contains `needle`. Panics with the log tail on
    /// timeout or when the child exits first.
    pub fn wait_log_contains(&mut self, timeout: Duration, needle: &str) {
        let what = format!("{} log to contain {needle:?}", self.name);
        self.wait_alive(timeout, &what, |child| child.log().contains(needle));
    }

    /// Waits until GET `url` answers 200 and returns the body. Panics with
    /// the log tail on timeout or when the child exits first.
    pub fn wait_http_ok(&mut self, timeout: Duration, url: &str) -> String {
        let what = format!("GET {url} to answer 200");
        let mut body = None;
        self.wait_alive(timeout, &what, |_| match try_http_get(url) {
            Ok((200, text)) => {
                body = Some(text);
                true
            }
            _ => false,
        });
        body.unwrap_or_default()
    }

    /// Polls `f` until true; fails fast (with the log) if the child exits.
    pub fn wait_alive(&mut self, timeout: Duration, what: &str, mut f: impl FnMut(&Child) -> bool) {
        let deadline = Instant::now() + timeout;
        loop {
            if f(self) {
                return;
            }
            if let Some(status) = self.child.try_wait().expect("try_wait on child") {
                if f(self) {
                    return;
                }
                panic!(
                    "{} exited with {status} while waiting for {what}\n--- {} log tail ---\n{}",
                    self.name,
                    self.name,
                    log_tail(&self.log())
                );
            }
            if Instant::now() >= deadline {
                panic!(
                    "timed out after {timeout:?} waiting for {what}\n--- {} log tail ---\n{}",
                    self.name,
                    log_tail(&self.log())
                );
            }
            thread::sleep(POLL);
        }
    }

    /// Kills the child and hands back its data dir, to start another run on
    /// the same data with [`Child::kubegate_in`].
    pub fn into_dir(mut self) -> TempDir {
        kill_and_reap(&mut self.child);
        self.dir.take().expect("data dir")
    }
}

fn new_data_dir() -> TempDir {
    tempfile::Builder::new()
        .prefix("kubegate-test-data-")
        .tempdir()
        .expect("create data temp dir")
}

impl Drop for Child {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!(
                "--- {} (pid {}) log tail ---\n{}",
                self.name,
                self.pid(),
                log_tail(&self.log())
            );
        }
        kill_and_reap(&mut self.child);
    }
}
