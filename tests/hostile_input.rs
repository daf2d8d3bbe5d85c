//! Targets that misbehave and clients that send garbage: the process stays
//! up, the error says what was wrong, and good data still arrives.

mod common;

use common::*;
use flate2::Compression;
use flate2::write::GzEncoder;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

const MIXED: &str = "# TYPE good_metric gauge\ngood_metric 1\nthis line is not exposition\ngood_other{a=\"x\"} 2\nbroken{a=\"unterminated 3\ngood_third{path=\"/a,b=c}\"} 3\n";

/// A scrape target that answers by path: exposition with bad lines mixed
/// in, gzip, HTTP 500, bytes that are not HTTP, and no answer at all.
fn start_fixture() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || answer(stream));
        }
    });
    port
}

fn answer(mut s: TcpStream) {
    let mut buf = [0u8; 4096];
    let n = s.read(&mut buf).unwrap_or(0);
    let req = String::from_utf8_lossy(&buf[..n]);
    let path = req.split_whitespace().nth(1).unwrap_or("").to_owned();
    let reply = |s: &mut TcpStream, status: &str, headers: &str, body: &[u8]| {
        let head = format!(
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n{headers}\r\n",
            body.len()
        );
        let _ = s.write_all(head.as_bytes());
        let _ = s.write_all(body);
    };
    match path.as_str() {
        "/mixed" => reply(
            &mut s,
            "200 OK",
            "Content-Type: text/plain; version=0.0.4\r\n",
            MIXED.as_bytes(),
        ),
        "/gzip" => {
            let mut gz = GzEncoder::new(Vec::new(), Compression::default());
            gz.write_all(b"zipped_metric{z=\"1\"} 7\n").unwrap();
            reply(
                &mut s,
                "200 OK",
                "Content-Type: text/plain\r\nContent-Encoding: gzip\r\n",
                &gz.finish().unwrap(),
            );
        }
        "/error" => reply(&mut s, "500 Internal Server Error", "", b"boom"),
        "/garbage" => {
            let _ = s.write_all(b"\x00\x01\x02 this is not HTTP at all\r\n\r\n");
        }
        "/hang" => std::thread::sleep(Duration::from_secs(20)),
        _ => reply(&mut s, "404 Not Found", "", b""),
    }
}

fn docs(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("every line is JSON"))
        .collect()
}

#[test]
fn bad_targets_are_down_once_and_good_lines_are_kept() {
    let fixture = start_fixture();
    let port = free_port();
    let builder = Child::kubegate();
    let data = builder.dir().to_owned();
    let job = |name: &str, path: &str| {
        format!(
            "  - job_name: {name}\n    metrics_path: {path}\n    static_configs:\n      - targets: ['127.0.0.1:{fixture}']\n"
        )
    };
    let config = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 500ms\n  data_dir: {}\nserver:\n  listen_address: 127.0.0.1:{port}\nhost_metrics:\n  enabled: false\nscrape_configs:\n{}{}{}{}{}",
        data.display(),
        job("mixed", "/mixed"),
        job("gzip", "/gzip"),
        job("error", "/error"),
        job("garbage", "/garbage"),
        job("hang", "/hang"),
    );
    let cfg = data.join("kubegate.yaml");
    std::fs::write(&cfg, config).unwrap();
    let mut gw = builder.arg("run").arg("--config").arg(&cfg).spawn();
    let file = data.join("documents/kubegate.ndjson");
    let up_of = |docs: &[serde_json::Value], job: &str| -> Vec<i64> {
        docs.iter()
            .filter(|d| d["prometheus"]["labels"]["job"] == job)
            .filter_map(|d| d["prometheus"]["metrics"]["up"].as_i64())
            .collect()
    };
    gw.wait_alive(
        Duration::from_secs(20),
        "three scrapes of every target",
        |_| {
            let d = docs(&file);
            ["mixed", "gzip", "error", "garbage", "hang"]
                .iter()
                .all(|j| up_of(&d, j).len() >= 3)
        },
    );
    let d = docs(&file);
    assert!(up_of(&d, "mixed").iter().all(|&u| u == 1));
    assert!(up_of(&d, "gzip").iter().all(|&u| u == 1));
    for job in ["error", "garbage", "hang"] {
        assert!(
            up_of(&d, job).iter().all(|&u| u == 0),
            "{job} should be down"
        );
    }
    // Valid lines around invalid ones arrive, with exact values and labels.
    let value = |name: &str| {
        d.iter()
            .find_map(|doc| doc["prometheus"]["metrics"].get(name).cloned())
    };
    assert_eq!(value("good_metric"), Some(serde_json::json!(1)));
    assert_eq!(value("good_other"), Some(serde_json::json!(2)));
    assert_eq!(value("good_third"), Some(serde_json::json!(3)));
    assert_eq!(value("zipped_metric"), Some(serde_json::json!(7)));
    assert_eq!(value("broken"), None);
    let third = d
        .iter()
        .find(|doc| doc["prometheus"]["metrics"].get("good_third").is_some())
        .unwrap();
    assert_eq!(third["prometheus"]["labels"]["path"], "/a,b=c}");
    let scraped = d
        .iter()
        .filter(|doc| doc["prometheus"]["labels"]["job"] == "mixed")
        .find_map(|doc| doc["prometheus"]["metrics"]["scrape_samples_scraped"].as_i64());
    assert_eq!(scraped, Some(3), "three valid samples of five lines");

    // One log line per target going down, not one per scrape; each says why.
    let log = gw.log();
    let down = |job: &str| {
        log.lines()
            .filter(|l| l.contains("target is down") && l.contains(&format!("job={job} ")))
            .count()
    };
    for job in ["error", "garbage", "hang"] {
        assert_eq!(down(job), 1, "{job} down lines:\n{log}");
    }
    assert!(
        log.lines()
            .any(|l| l.contains("job=error ") && l.contains("HTTP status 500")),
        "{log}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains("job=hang ") && l.contains("deadline exceeded")),
        "{log}"
    );
    assert_eq!(down("mixed"), 0);

    gw.terminate_ok(Duration::from_secs(10));
}

#[test]
fn garbage_on_the_http_port_leaves_the_server_up() {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut gw = kubegate_on_default(&addr, std::path::Path::new(".")).spawn();
    gw.wait_http_ok(Duration::from_secs(10), &format!("http://{addr}/-/ready"));
    let hostile: Vec<Vec<u8>> = vec![
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03".to_vec(), // a TLS ClientHello on a plain port
        b"GET /metrics HTTP/1.1\r\nHost: x\r\n".to_vec(),         // truncated, then closed
        format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(200_000)).into_bytes(),
        format!("GET / HTTP/1.1\r\nX-Big: {}\r\n\r\n", "b".repeat(1 << 20)).into_bytes(),
        b"\xff\xfe\xfd\r\n\r\n".to_vec(),
        b"POST /-/ready HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n".to_vec(),
    ];
    for bytes in hostile {
        if let Ok(mut s) = TcpStream::connect(&addr) {
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let _ = s.write_all(&bytes);
            let mut sink = Vec::new();
            let _ = s.read_to_end(&mut sink);
        }
    }
    assert_eq!(http_get(&format!("http://{addr}/-/healthy")).0, 200);
    assert_eq!(
        http("POST", &format!("http://{addr}/metrics"), None, None).0,
        405
    );
    assert!(gw.is_running(), "{}", gw.log());
}
