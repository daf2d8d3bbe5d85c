//! TLS and mutual TLS on the beats listener with pylogbeat as the client;
//! certificates made by openssl; files replaced while kubegate runs are
//! picked up without a restart.

mod common;

use common::beats::{python, show, start_gate, wait_metric};
use common::peer;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new(peer("OPENSSL"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn ca(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
        ],
    );
}

fn leaf(dir: &Path, name: &str, ca: &str, usage: &str) {
    let ext = format!("{name}.ext");
    std::fs::write(
        dir.join(&ext),
        format!("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage={usage}\nbasicConstraints=CA:FALSE\n"),
    )
    .unwrap();
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/CN={name}"),
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-out",
            &format!("{name}.pem"),
            "-days",
            "2",
            "-extfile",
            &ext,
        ],
    );
}

const CLIENT: &str = r#"
import sys, pylogbeat
host, port, ca, cert, key, tag = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
c = pylogbeat.PyLogBeatClient(host, port, timeout=10, ssl_enable=True, ssl_verify=True,
        ca_certs=ca, certfile=cert or None, keyfile=key or None)
c.send([{"message": "tls %s %d" % (tag, i)} for i in range(5)])
c.close()
print("ok")
"#;

fn send(port: u16, dir: &Path, ca: &str, client: Option<&str>, tag: &str) -> std::process::Output {
    let p = |f: String| dir.join(f).display().to_string();
    let (cert, key) = match client {
        Some(c) => (p(format!("{c}.pem")), p(format!("{c}.key"))),
        None => (String::new(), String::new()),
    };
    python(
        CLIENT,
        &[
            "127.0.0.1",
            &port.to_string(),
            &p(format!("{ca}.pem")),
            &cert,
            &key,
            tag,
        ],
        Duration::from_secs(60),
    )
}

#[test]
fn mutual_tls_refuses_bad_client_certificates_and_reloads_server_certificates() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    ca(dir, "ca");
    ca(dir, "evil");
    leaf(dir, "server", "ca", "serverAuth");
    leaf(dir, "filebeat", "ca", "clientAuth");
    leaf(dir, "intruder", "evil", "clientAuth");
    // The live files kubegate reads; replaced later.
    std::fs::copy(dir.join("server.pem"), dir.join("live.pem")).unwrap();
    std::fs::copy(dir.join("server.key"), dir.join("live.key")).unwrap();
    let tls = format!(
        "  tls:\n    cert_file: {0}/live.pem\n    key_file: {0}/live.key\n    client_ca_file: {0}/ca.pem\n    reload_interval: 1s\n",
        dir.display()
    );
    let mut g = start_gate(&tls, "");
    let port = g.beats_port;

    let ok = send(port, dir, "ca", Some("filebeat"), "good");
    assert!(ok.status.success(), "mTLS client refused: {}", show(&ok));
    g.wait_documents(5, |d| {
        d["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("tls good"))
    });

    let failures = "kubegate_beats_tls_handshake_failures_total";
    let before = g.metric(failures);
    let bad = send(port, dir, "ca", Some("intruder"), "bad");
    assert!(!bad.status.success(), "a client of another CA got in");
    let none = send(port, dir, "ca", None, "none");
    assert!(
        !none.status.success(),
        "a client without a certificate got in"
    );
    wait_metric(&g, failures, before + 2.0);
    // Plain TCP on the TLS port is a failed handshake, nothing worse.
    assert!(common::beats::send_expect_close(&g.beats, b"2W\0\0\0\x01"));
    wait_metric(&g, failures, before + 3.0);
    g.child
        .wait_log_contains(Duration::from_secs(10), "beats TLS handshake failed");
    assert!(
        g.documents()
            .iter()
            .all(|d| !d["message"].as_str().unwrap_or("").starts_with("tls bad"))
    );

    // A new server certificate from a new CA, written over the live files.
    ca(dir, "ca2");
    leaf(dir, "server2", "ca2", "serverAuth");
    std::fs::copy(dir.join("server2.key"), dir.join("live.key")).unwrap();
    std::fs::copy(dir.join("server2.pem"), dir.join("live.pem")).unwrap();
    wait_metric(
        &g,
        "kubegate_beats_tls_reloads_total{outcome=\"success\"}",
        1.0,
    );
    let old_trust = send(port, dir, "ca", Some("filebeat"), "old");
    assert!(
        !old_trust.status.success(),
        "the old certificate is still served"
    );
    let new_trust = send(port, dir, "ca2", Some("filebeat"), "new");
    assert!(new_trust.status.success(), "{}", show(&new_trust));
    g.wait_documents(5, |d| {
        d["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("tls new"))
    });

    // A broken file is reported and the working certificate stays.
    std::fs::write(dir.join("live.pem"), "not a certificate").unwrap();
    wait_metric(
        &g,
        "kubegate_beats_tls_reloads_total{outcome=\"failure\"}",
        1.0,
    );
    let still = send(port, dir, "ca2", Some("filebeat"), "still");
    assert!(still.status.success(), "{}", show(&still));
    assert!(g.child.is_running());
}
