//! Basic auth, API key and TLS with a custom CA, against a real nginx
//! (TLS termination and auth) in front of osmem-server, since neither
//! Elasticsearch-API emulator has TLS or auth of its own.

mod common;

use common::*;
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// base64("kgid:kgsecret"), what the Elasticsearch client must send as
/// `Authorization: ApiKey ...` for `api_key: "kgid:kgsecret"`.
const API_KEY_B64: &str = "a2dpZDprZ3NlY3JldA==";

fn openssl(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(peer("OPENSSL"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A CA, a server certificate for 127.0.0.1 signed by it, and a second
/// CA that signed nothing.
fn make_certs(dir: &Path) {
    let make_ca = |name: &str, cn: &str| {
        let (key, pem, subj) = (
            format!("{name}.key"),
            format!("{name}.pem"),
            format!("/CN={cn}"),
        );
        #[rustfmt::skip]
        let args = ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-keyout", &key, "-out", &pem, "-subj", &subj,
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"];
        openssl(dir, &args);
    };
    make_ca("ca", "kubegate test CA");
    make_ca("other-ca", "unrelated CA");
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(dir.join("ext.cnf"), "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n").unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
    );
}

struct Front {
    _nginx: Child,
    basic_port: u16,
    api_key_port: u16,
}

/// nginx with two TLS servers proxying to `upstream`: one wants basic
/// auth (kubegate/s3cret), the other the API key above.
fn start_front(dir: &Path, upstream: u16) -> Front {
    make_certs(dir);
    let hash = openssl(dir, &["passwd", "-apr1", "s3cret"]);
    std::fs::write(dir.join("htpasswd"), format!("kubegate:{hash}\n")).unwrap();
    let (basic_port, api_key_port) = (free_port(), free_port());
    let d = dir.display();
    let tls = format!("ssl_certificate {d}/server.pem; ssl_certificate_key {d}/server.key;");
    let proxy = format!(
        "proxy_pass http://127.0.0.1:{upstream}; proxy_http_version 1.1; proxy_set_header Connection \"\"; client_max_body_size 100m;"
    );
    let conf = format!(
        "daemon off; master_process off; pid {d}/nginx.pid; error_log {d}/error.log info;\n\
         events {{ worker_connections 64; }}\n\
         http {{ access_log {d}/access.log; client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;\n\
           server {{ listen 127.0.0.1:{basic_port} ssl; {tls} auth_basic \"es\"; auth_basic_user_file {d}/htpasswd; location / {{ {proxy} }} }}\n\
           server {{ listen 127.0.0.1:{api_key_port} ssl; {tls} location / {{ if ($http_authorization != \"ApiKey {API_KEY_B64}\") {{ return 401; }} {proxy} }} }}\n\
         }}\n"
    );
    std::fs::write(dir.join("nginx.conf"), conf).unwrap();
    let mut nginx = Child::program(peer("NGINX"))
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .arg("-e")
        .arg(dir.join("error.log"))
        .spawn();
    nginx.wait_alive(Duration::from_secs(10), "nginx listening", |_| {
        TcpStream::connect(("127.0.0.1", basic_port)).is_ok()
            && TcpStream::connect(("127.0.0.1", api_key_port)).is_ok()
    });
    Front {
        _nginx: nginx,
        basic_port,
        api_key_port,
    }
}

/// Starts kubegate scraping itself once, sending to `es_url` with `auth`
/// (YAML lines under `elasticsearch:`).
fn start_gateway(es_url: &str, auth: &str) -> (Child, String) {
    let port = free_port();
    let builder = Child::kubegate();
    let cfg = builder.dir().join("kubegate.yaml");
    std::fs::write(
        &cfg,
        format!(
            "global:\n  scrape_interval: 1s\nserver:\n  listen_address: 127.0.0.1:{port}\n  shutdown_grace_period: 2s\nhost_metrics:\n  enabled: false\n\
             scrape_configs:\n  - job_name: self\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n\
             output:\n  sink: elasticsearch\n  elasticsearch:\n    hosts: ['{es_url}']\n    batch_max_age: 100ms\n{auth}"
        ),
    )
    .unwrap();
    (
        builder.arg("run").arg("--config").arg(&cfg).spawn(),
        format!("http://127.0.0.1:{port}/metrics"),
    )
}

/// kubegate delivers through nginx: everything it counts as sent (its
/// shutdown summary) is in the server. Returns that count.
fn delivers(es: &Peer, es_url: &str, auth: &str) -> u64 {
    let before = es_count(&es.url(), "metrics-*");
    let (mut gw, metrics_url) = start_gateway(es_url, auth);
    gw.wait_alive(
        Duration::from_secs(30),
        "documents delivered through nginx",
        |_| live_metric(&metrics_url, ES_SENT) > 0.0,
    );
    gw.terminate_ok(Duration::from_secs(10));
    let sent = summary_count(&gw.log(), "sent");
    assert!(sent > 0);
    assert_eq!(es_count(&es.url(), "metrics-*"), before + sent);
    sent
}

/// The request is refused (auth or TLS): kubegate keeps the documents,
/// retries, says why in its log, and the server holds nothing.
fn refused(es: &Peer, es_url: &str, auth: &str, reason: &str, memory_buffer: bool) {
    let (mut gw, metrics_url) = start_gateway(es_url, auth);
    gw.wait_alive(
        Duration::from_secs(30),
        "bulk requests failing and being retried",
        |_| {
            let text = try_http_get(&metrics_url)
                .map(|(_, b)| b)
                .unwrap_or_default();
            metric_value(
                &text,
                "kubegate_sink_requests_total{outcome=\"failure\",sink=\"elasticsearch\"}",
            ) >= 2.0
                && metric_value(&text, "kubegate_sink_retries_total") >= 2.0
                && metric_value(&text, "kubegate_sink_pending_documents") > 0.0
        },
    );
    assert!(
        gw.log().contains(reason),
        "log should say {reason:?}:\n{}",
        gw.log()
    );
    assert_eq!(es_count(&es.url(), "metrics-*"), 0);
    gw.send_sigterm();
    let status = gw
        .wait_timeout(Duration::from_secs(10))
        .expect("exits after the grace period");
    if memory_buffer {
        // Nothing survives the process: exit 1 and say how much was lost.
        assert_eq!(status.code(), Some(1), "{}", gw.log());
        assert!(gw.log().contains("were lost"), "{}", gw.log());
    } else {
        // The disk buffer keeps them for the next start: a clean exit.
        assert!(status.success(), "{}", gw.log());
        assert!(gw.log().contains("stay in the disk buffer"), "{}", gw.log());
    }
}

#[test]
fn basic_auth_and_api_key_over_tls_with_a_custom_ca() {
    let es = start_osmem();
    let dir = tempfile::tempdir().unwrap();
    let front = start_front(dir.path(), es.port);
    let ca = dir.path().join("ca.pem");
    let basic = format!("https://127.0.0.1:{}", front.basic_port);
    let api = format!("https://127.0.0.1:{}", front.api_key_port);
    let ca_line = format!("    tls:\n      ca_file: {}\n", ca.display());

    delivers(
        &es,
        &basic,
        &format!("    username: kubegate\n    password: s3cret\n{ca_line}"),
    );
    // nginx lets only the right API key through to the server.
    delivers(&es, &api, &format!("    api_key: kgid:kgsecret\n{ca_line}"));
}

/// nginx in front of osmem; kubegate trusts `ca` (a file in the cert dir)
/// and logs in with `password`: the server must refuse, for `reason`.
fn refused_through_front(ca: &str, password: &str, reason: &str, memory_buffer: bool) {
    let es = start_osmem();
    let dir = tempfile::tempdir().unwrap();
    let front = start_front(dir.path(), es.port);
    // The YAML ends inside `output.elasticsearch`; a top-level key may follow.
    let buffer = if memory_buffer {
        "buffer:\n  type: memory\n"
    } else {
        ""
    };
    let auth = format!(
        "    username: kubegate\n    password: {password}\n    tls:\n      ca_file: {}\n{buffer}",
        dir.path().join(ca).display()
    );
    refused(
        &es,
        &format!("https://127.0.0.1:{}", front.basic_port),
        &auth,
        reason,
        memory_buffer,
    );
}

#[test]
fn wrong_password_is_retried_not_dropped() {
    refused_through_front("ca.pem", "wrong", "HTTP 401", false);
}

#[test]
fn a_server_certificate_from_another_ca_is_refused() {
    refused_through_front("other-ca.pem", "s3cret", "UnknownIssuer", true);
}
