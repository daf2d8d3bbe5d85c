//! The ES-API servers delivered to (osmem-server, noida-db, and the
//! in-bench mock-es), started as child processes.

use super::*;

pub(crate) struct Server {
    pub(crate) name: &'static str,
    pub(crate) version: String,
    pub(crate) child: Child,
    pub(crate) base: String,
    pub(crate) _dir: tempfile::TempDir,
}

impl Server {
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Starts the server on `port` and waits until it answers.
    pub(crate) async fn start(kind: &str, port: u16, http: &reqwest::Client) -> Server {
        let dir = tempdir(&std::env::temp_dir(), &format!("kg-bench-{kind}-"));
        let (name, bin, dist, args, ready): (_, _, _, Vec<String>, _) = match kind {
            "mock" => (
                "mock-es",
                std::env::current_exe().unwrap_or_else(|e| fail(&format!("current_exe: {e}"))),
                "",
                vec![format!("--mock-es=127.0.0.1:{port}")],
                "/",
            ),
            "osmem" => (
                "osmem-server",
                peer_path("OSMEM_SERVER"),
                "osmem_server",
                vec![
                    "-addr".into(),
                    format!("127.0.0.1:{port}"),
                    "-no-ja".into(),
                    "-no-stdin-watch".into(),
                    "-parent-pid".into(),
                    std::process::id().to_string(),
                ],
                "/_cluster/health",
            ),
            _ => (
                "noida-db",
                peer_path("NOIDA_DB"),
                "noida_db",
                vec![
                    "start".into(),
                    "--data-dir".into(),
                    dir.path().join("data").display().to_string(),
                    "--host".into(),
                    "127.0.0.1".into(),
                    "--only".into(),
                    "elasticsearch".into(),
                    "--elasticsearch-port".into(),
                    port.to_string(),
                ],
                "/",
            ),
        };
        let log = std::fs::File::create(dir.path().join("server.log"))
            .unwrap_or_else(|e| fail(&format!("server log: {e}")));
        let mut cmd = Command::new(&bin);
        cmd.args(&args)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log fd"))
            .stderr(log);
        // From the main thread (block_on), which lives as long as the bench.
        die_with_parent(&mut cmd);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| fail(&format!("cannot start {}: {e}", bin.display())));
        let mut s = Server {
            name,
            version: if dist.is_empty() {
                "(this bench, --mock-es)".into()
            } else {
                peer_version(&bin, dist)
            },
            child,
            base: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        };
        let url = format!("{}{ready}", s.base);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(st)) = s.child.try_wait() {
                let log =
                    std::fs::read_to_string(s._dir.path().join("server.log")).unwrap_or_default();
                fail(&format!("{name} exited with {st}:\n{log}"));
            }
            if let Ok(r) = http.get(&url).send().await
                && r.status().is_success()
            {
                return s;
            }
            if Instant::now() > deadline {
                fail(&format!("{name} on port {port} not ready within 30 s"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub(crate) async fn count(&self, http: &reqwest::Client, index: &str) -> u64 {
        let _ = http
            .post(format!("{}/{index}/_refresh", self.base))
            .send()
            .await;
        let v: serde_json::Value = http
            .get(format!("{}/{index}/_count", self.base))
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .unwrap_or_else(|e| fail(&format!("{} _count of {index}: {e}", self.name)))
            .json()
            .await
            .unwrap_or_else(|e| fail(&format!("{} _count of {index}: {e}", self.name)));
        v["count"].as_u64().unwrap_or(0)
    }

    pub(crate) async fn delete(&self, http: &reqwest::Client, index: &str) {
        let _ = http.delete(format!("{}/{index}", self.base)).send().await;
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------
// mock-es: the smallest ES-API server that keeps `create` semantics (201 for
// a new `_id` in an index, 409 for a known one), so the client side is what
// limits the rate. Run as a child process (`--mock-es=ADDR`), so its CPU is
// not this process's.

pub(crate) type MockIndices = Arc<std::sync::Mutex<std::collections::HashMap<String, MockIndex>>>;

#[derive(Default)]
pub(crate) struct MockIndex {
    pub(crate) ids: std::collections::HashSet<Box<[u8]>>,
}

pub(crate) fn mock_es_main(addr: &str) {
    use hyper_util::rt::TokioIo;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .unwrap_or_else(|e| fail(&format!("mock-es cannot bind {addr}: {e}")));
        let indices: MockIndices = Arc::default();
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let indices = indices.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let indices = indices.clone();
                    async move { Ok::<_, std::convert::Infallible>(mock_handle(req, &indices).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}

pub(crate) async fn mock_handle(
    req: hyper::Request<hyper::body::Incoming>,
    indices: &MockIndices,
) -> hyper::Response<http_body_util::Full<bytes::Bytes>> {
    use http_body_util::BodyExt;
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let gzip = req
        .headers()
        .get("content-encoding")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"));
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return mock_reply(400, r#"{"error":"body"}"#.into()),
    };
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method.as_str(), parts.as_slice()) {
        ("GET" | "HEAD", [""] | ["_cluster", "health"]) => mock_reply(
            200,
            r#"{"name":"mock-es","cluster_name":"bench","status":"green","version":{"number":"8.15.0"}}"#.into(),
        ),
        ("POST" | "PUT", ["_bulk"]) => {
            let raw = if gzip {
                let mut out = Vec::with_capacity(body.len() * 8);
                if std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&body[..]), &mut out)
                    .is_err()
                {
                    return mock_reply(400, r#"{"error":"gzip"}"#.into());
                }
                out
            } else {
                body.to_vec()
            };
            mock_bulk(&raw, indices)
        }
        ("POST" | "GET", [_, "_refresh"]) => mock_reply(200, r#"{"_shards":{"failed":0}}"#.into()),
        ("GET" | "POST", [index, "_count"]) => {
            let n = indices
                .lock()
                .expect("mock lock")
                .get(*index)
                .map_or(0, |i| i.ids.len());
            mock_reply(200, format!(r#"{{"count":{n}}}"#))
        }
        ("DELETE", [index]) => {
            indices.lock().expect("mock lock").remove(*index);
            mock_reply(200, r#"{"acknowledged":true}"#.into())
        }
        _ => mock_reply(404, r#"{"error":"not found"}"#.into()),
    }
}

pub(crate) fn mock_reply(
    status: u16,
    body: String,
) -> hyper::Response<http_body_util::Full<bytes::Bytes>> {
    hyper::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
        .expect("valid response")
}

/// The value of `"key":"..."` in an action line (no escapes in ids or
/// index names here).
pub(crate) fn json_str<'a>(line: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let at = memchr::memmem::find(line, key)? + key.len();
    let rest = &line[at..];
    let end = memchr::memchr(b'"', rest)?;
    Some(&rest[..end])
}

/// Items shaped as Elasticsearch 8 answers them, so the client parses a
/// realistic response.
pub(crate) fn mock_bulk(
    raw: &[u8],
    indices: &MockIndices,
) -> hyper::Response<http_body_util::Full<bytes::Bytes>> {
    match mock_bulk_body(raw, indices) {
        Ok(body) => mock_reply(200, body),
        Err(why) => mock_reply(400, format!(r#"{{"error":"{why}"}}"#)),
    }
}

pub(crate) fn mock_bulk_body(raw: &[u8], indices: &MockIndices) -> Result<String, &'static str> {
    use std::fmt::Write as _;
    let mut lines = raw.split(|&b| b == b'\n').filter(|l| !l.is_empty());
    let mut items = String::with_capacity(raw.len() / 5);
    let mut errors = false;
    let mut map = indices.lock().expect("mock lock");
    while let Some(action) = lines.next() {
        let Some(doc) = lines.next() else { break };
        let (Some(index), Some(id)) = (
            json_str(action, br#""_index":""#),
            json_str(action, br#""_id":""#),
        ) else {
            return Err("action line without _index and _id");
        };
        let (index, id_s) = (String::from_utf8_lossy(index), String::from_utf8_lossy(id));
        if !items.is_empty() {
            items.push(',');
        }
        if !map.contains_key(&*index) {
            map.insert(index.to_string(), MockIndex::default());
        }
        let ids = &mut map.get_mut(&*index).expect("just inserted").ids;
        if doc.first() == Some(&b'{') && ids.insert(id.into()) {
            let _ = write!(
                items,
                r#"{{"create":{{"_index":"{index}","_id":"{id_s}","_version":1,"result":"created","_shards":{{"total":1,"successful":1,"failed":0}},"_seq_no":0,"_primary_term":1,"status":201}}}}"#
            );
        } else {
            errors = true;
            let _ = write!(
                items,
                r#"{{"create":{{"_index":"{index}","_id":"{id_s}","status":409,"error":{{"type":"version_conflict_engine_exception","reason":"[{id_s}]: version conflict, document already exists"}}}}}}"#
            );
        }
    }
    Ok(format!(
        r#"{{"took":3,"errors":{errors},"items":[{items}]}}"#
    ))
}
