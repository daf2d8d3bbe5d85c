//! A scrape target for tests: one 127.0.0.1 port that answers every
//! request with the same exposition body and remembers the request lines
//! (`GET /path?query HTTP/1.1`) and when they came.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Instant;

pub struct StaticTarget {
    pub port: u16,
    requests: Arc<Mutex<Vec<(Instant, String)>>>,
}

impl StaticTarget {
    pub fn start(body: &'static str) -> StaticTarget {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local addr").port();
        let requests: Arc<Mutex<Vec<(Instant, String)>>> = Default::default();
        let log = requests.clone();
        std::thread::spawn(move || {
            for mut s in listener.incoming().flatten() {
                let mut buf = [0u8; 4096];
                let n = s.read(&mut buf).unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]);
                let line = head.lines().next().unwrap_or_default().to_owned();
                log.lock().unwrap().push((Instant::now(), line));
                let _ = write!(
                    s,
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        StaticTarget { port, requests }
    }

    /// Every request line so far.
    pub fn request_lines(&self) -> Vec<String> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .map(|(_, l)| l.clone())
            .collect()
    }

    /// Requests since `since` whose line contains `needle`.
    pub fn count_since(&self, needle: &str, since: Instant) -> usize {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|(t, l)| *t >= since && l.contains(needle))
            .count()
    }
}
