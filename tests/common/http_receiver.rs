//! A local HTTP receiver for webhook and Slack tests: records every
//! request's path and body, answers with scripted status codes (then 200).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;

#[derive(Clone, Debug)]
pub struct Received {
    pub path: String,
    pub body: String,
}

pub struct HttpReceiver {
    pub port: u16,
    received: Arc<Mutex<Vec<Received>>>,
}

impl HttpReceiver {
    /// Starts on 127.0.0.1, port 0. The first requests get `statuses` in
    /// order, later ones 200.
    pub fn start(statuses: Vec<u16>) -> HttpReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind receiver");
        let port = listener.local_addr().expect("local addr").port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(statuses.into_iter()));
        let rec = received.clone();
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let rec = rec.clone();
                let script = script.clone();
                thread::spawn(move || serve(stream, rec, script));
            }
        });
        HttpReceiver { port, received }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

fn serve(
    stream: TcpStream,
    rec: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<std::vec::IntoIter<u16>>>,
) {
    let mut writer = stream.try_clone().expect("clone stream");
    let mut reader = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let path = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or("/")
            .to_owned();
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                length = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0u8; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let status = script.lock().unwrap().next().unwrap_or(200);
        if status == 200 {
            rec.lock().unwrap().push(Received {
                path,
                body: String::from_utf8_lossy(&body).into_owned(),
            });
        }
        let reason = if status == 200 { "OK" } else { "Error" };
        let _ = write!(
            writer,
            "HTTP/1.1 {status} {reason}\r\ncontent-length: 2\r\ncontent-type: text/plain\r\n\r\nok"
        );
    }
}
