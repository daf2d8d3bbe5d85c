//! A loopback HTTP proxy in front of an Elasticsearch-API server that can
//! misbehave on demand: refuse connections, answer 429 or 503, delay, cut
//! a response in the middle, or answer some `_bulk` items 429 or 400
//! itself. It understands HTTP/1.1 framing (Content-Length) so one client
//! connection carries many requests, as the Elasticsearch client's does.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
    /// Forward everything.
    None,
    /// Accept and close at once: the server looks down.
    Refuse,
    /// Answer every request with this status, forwarding nothing.
    Status(u16),
    /// Forward, but hold the response this long.
    Delay(Duration),
    /// Forward, then close after half of the response.
    CutResponse,
    /// For `_bulk`: about 1 item in 7 (by its id) is answered 400 and never
    /// forwarded; about 1 in 3 is forwarded but answered 429 the first time,
    /// so its retry meets a 409; the rest pass. Responses then mix 201,
    /// 409, 429 and 400.
    MixedItems,
}

pub struct FaultProxy {
    pub port: u16,
    fault: Arc<Mutex<Fault>>,
    /// Requests seen, for tests that want to know a fault was exercised.
    pub requests: Arc<AtomicU64>,
    /// Items the proxy answered 400 itself, by `_id`.
    pub rejected_ids: Arc<Mutex<Vec<String>>>,
}

impl FaultProxy {
    pub fn start(upstream_port: u16) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind fault proxy");
        let port = listener.local_addr().unwrap().port();
        let fault = Arc::new(Mutex::new(Fault::None));
        let requests = Arc::new(AtomicU64::new(0));
        let rejected_ids = Arc::new(Mutex::new(Vec::new()));
        let (f, r, rej) = (fault.clone(), requests.clone(), rejected_ids.clone());
        std::thread::spawn(move || {
            let told_429 = Arc::new(Mutex::new(std::collections::HashSet::new()));
            for client in listener.incoming().flatten() {
                let (f, r, rej, told) = (f.clone(), r.clone(), rej.clone(), told_429.clone());
                std::thread::spawn(move || serve(client, upstream_port, f, r, rej, told));
            }
        });
        FaultProxy {
            port,
            fault,
            requests,
            rejected_ids,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn set(&self, fault: Fault) {
        *self.fault.lock().unwrap() = fault;
    }
}

struct Request {
    head: String,
    body: Vec<u8>,
}

fn read_request(r: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let end = line == "\r\n";
        head.push_str(&line);
        if end {
            break;
        }
    }
    let len = content_length(&head);
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).ok()?;
    Some(Request { head, body })
}

fn content_length(head: &str) -> usize {
    head.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0)
}

/// Sends `req` upstream on a fresh connection and returns the raw response.
fn forward(upstream: u16, req: &Request) -> Option<Vec<u8>> {
    let mut up = TcpStream::connect(("127.0.0.1", upstream)).ok()?;
    up.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    // One request per upstream connection keeps framing simple.
    let head: String = req
        .head
        .lines()
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .map(|l| format!("{l}\r\n"))
        .collect::<String>();
    let head = head.trim_end_matches("\r\n").to_owned() + "\r\nConnection: close\r\n\r\n";
    up.write_all(head.as_bytes()).ok()?;
    up.write_all(&req.body).ok()?;
    let mut resp = Vec::new();
    up.read_to_end(&mut resp).ok()?;
    Some(resp)
}

fn split_response(resp: &[u8]) -> (String, Vec<u8>) {
    let pos = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 4)
        .unwrap_or(resp.len());
    (
        String::from_utf8_lossy(&resp[..pos]).into_owned(),
        resp[pos..].to_vec(),
    )
}

fn respond(client: &mut TcpStream, status: u16, content_type: &str, body: &[u8]) -> bool {
    let head = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    client.write_all(head.as_bytes()).is_ok() && client.write_all(body).is_ok()
}

/// Plain body of an upstream response, gzip or not.
fn plain_body(head: &str, body: Vec<u8>) -> Vec<u8> {
    if head.to_ascii_lowercase().contains("content-encoding: gzip") {
        let mut out = Vec::new();
        let _ = flate2::read::GzDecoder::new(&body[..]).read_to_end(&mut out);
        out
    } else {
        body
    }
}

fn request_ndjson(req: &Request) -> Vec<u8> {
    plain_body(&req.head, req.body.clone())
}

type Told = Arc<Mutex<std::collections::HashSet<String>>>;

fn serve(
    client: TcpStream,
    upstream: u16,
    fault: Arc<Mutex<Fault>>,
    requests: Arc<AtomicU64>,
    rejected: Arc<Mutex<Vec<String>>>,
    told_429: Told,
) {
    let mut writer = client.try_clone().expect("clone socket");
    let mut reader = BufReader::new(client);
    if *fault.lock().unwrap() == Fault::Refuse {
        return;
    }
    while let Some(req) = read_request(&mut reader) {
        requests.fetch_add(1, Ordering::Relaxed);
        let current = fault.lock().unwrap().clone();
        let is_bulk = req.head.starts_with("POST /_bulk") || req.head.contains("/_bulk ");
        let ok = match current {
            Fault::Refuse => return,
            Fault::Status(code) => respond(
                &mut writer,
                code,
                "application/json",
                format!(r#"{{"error":"injected {code}","status":{code}}}"#).as_bytes(),
            ),
            Fault::None => forward(upstream, &req).is_some_and(|r| writer.write_all(&r).is_ok()),
            Fault::Delay(d) => match forward(upstream, &req) {
                Some(r) => {
                    std::thread::sleep(d);
                    writer.write_all(&r).is_ok()
                }
                None => false,
            },
            Fault::CutResponse => {
                if let Some(r) = forward(upstream, &req) {
                    let _ = writer.write_all(&r[..r.len() / 2]);
                }
                return;
            }
            Fault::MixedItems if is_bulk => {
                mixed_items(&mut writer, upstream, &req, &rejected, &told_429)
            }
            Fault::MixedItems => {
                forward(upstream, &req).is_some_and(|r| writer.write_all(&r).is_ok())
            }
        };
        if !ok {
            return;
        }
    }
}

fn mixed_items(
    client: &mut TcpStream,
    upstream: u16,
    req: &Request,
    rejected: &Mutex<Vec<String>>,
    told_429: &Told,
) -> bool {
    let body = request_ndjson(req);
    let lines: Vec<&[u8]> = body
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let pairs: Vec<(&[u8], &[u8])> = lines
        .chunks(2)
        .filter(|c| c.len() == 2)
        .map(|c| (c[0], c[1]))
        .collect();
    // Decide each item's fate: forward, 429 or 400.
    let mut fate = Vec::new();
    let mut forward_body = Vec::new();
    for (action, source) in &pairs {
        let id = serde_json::from_slice::<serde_json::Value>(action)
            .ok()
            .and_then(|v| v["create"]["_id"].as_str().map(str::to_owned))
            .unwrap_or_default();
        // By id, so a document's fate does not change between attempts.
        let h = id
            .bytes()
            .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(b as u64));
        let f = if h.is_multiple_of(7) {
            400
        } else if h.is_multiple_of(3) && told_429.lock().unwrap().insert(id.clone()) {
            429
        } else {
            0
        };
        if f != 400 {
            forward_body.extend_from_slice(action);
            forward_body.push(b'\n');
            forward_body.extend_from_slice(source);
            forward_body.push(b'\n');
        }
        fate.push((f, id));
    }
    let mut upstream_items: std::collections::VecDeque<serde_json::Value> = Default::default();
    if !forward_body.is_empty() {
        let head: String = req
            .head
            .lines()
            .filter(|l| {
                let l = l.to_ascii_lowercase();
                !l.starts_with("content-length:") && !l.starts_with("content-encoding:")
            })
            .map(|l| format!("{l}\r\n"))
            .collect();
        let head = head.trim_end_matches("\r\n").to_owned()
            + &format!("\r\nContent-Length: {}\r\n\r\n", forward_body.len());
        let Some(resp) = forward(
            upstream,
            &Request {
                head,
                body: forward_body,
            },
        ) else {
            return false;
        };
        let (rhead, rbody) = split_response(&resp);
        let v: serde_json::Value =
            serde_json::from_slice(&plain_body(&rhead, rbody)).unwrap_or_default();
        upstream_items = v["items"].as_array().cloned().unwrap_or_default().into();
    }
    let mut items = Vec::new();
    for (f, id) in fate {
        items.push(match f {
            0 => match upstream_items.pop_front() {
                Some(i) => i,
                None => serde_json::json!({"create": {"_id": id, "status": 503, "error": {"type": "proxy", "reason": "upstream gave no item"}}}),
            },
            429 => {
                // Stored upstream, but the client is told to retry.
                upstream_items.pop_front();
                serde_json::json!({"create": {"_id": id, "status": 429, "error": {"type": "es_rejected_execution_exception", "reason": "injected 429"}}})
            }
            _ => {
                rejected.lock().unwrap().push(id.clone());
                serde_json::json!({"create": {"_id": id, "status": 400, "error": {"type": "mapper_parsing_exception", "reason": "injected mapping error"}}})
            }
        });
    }
    let resp = serde_json::json!({"took": 1, "errors": true, "items": items});
    respond(client, 200, "application/json", resp.to_string().as_bytes())
}
