//! Two kubegate processes in cluster mode against the fake API server,
//! scraping one target: only the Lease holder scrapes. Each process asks
//! with its own URL parameter (`?who=a`), so the target knows who scraped.

mod common;

use common::fake_k8s::FakeK8s;
use common::static_target::StaticTarget;
use common::*;
use std::time::{Duration, Instant};

const LEASE_S: u64 = 6;
const RENEW_S: u64 = 3;
const SLACK: Duration = Duration::from_secs(3);

/// Scrapes by `who` (the `who=` URL parameter) since `since`.
fn scrapes_since(target: &StaticTarget, who: &str, since: Instant) -> usize {
    target.count_since(&format!("who={who} "), since)
        + target.count_since(&format!("who={who}&"), since)
}

struct Instance {
    child: Child,
    metrics: String,
}

fn start(who: &str, fake: &FakeK8s, target_port: u16) -> Instance {
    let b = Child::kubegate();
    let addr = format!("127.0.0.1:{}", free_port());
    let config = format!(
        "global:\n  scrape_interval: 500ms\n  scrape_timeout: 400ms\n  data_dir: data\n\
         server:\n  listen_address: {addr}\n  shutdown_grace_period: 2s\n\
         host_metrics:\n  enabled: false\n\
         cluster:\n  mode: cluster\n  lease_name: kg\n  lease_namespace: monitoring\n  identity: pod-{who}\n  \
         lease_duration: {LEASE_S}s\n  renew_deadline: {RENEW_S}s\n  retry_period: 500ms\n  kubeconfig_file: {kc}\n\
         scrape_configs:\n  - job_name: cluster\n    params:\n      who: [{who}]\n    static_configs:\n      - targets: ['127.0.0.1:{target_port}']\n",
        kc = fake.kubeconfig_path().display()
    );
    let path = b.dir().join("kubegate.yaml");
    std::fs::write(&path, config).unwrap();
    let child = b.arg("run").arg("--config").arg(&path).spawn();
    Instance {
        child,
        metrics: format!("http://{addr}/metrics"),
    }
}

fn leads(i: &Instance) -> bool {
    live_metric(&i.metrics, "kubegate_cluster_leader ") == 1.0
}

#[test]
fn only_the_lease_holder_scrapes_and_a_standby_takes_over() {
    let fake = FakeK8s::start();
    let target = StaticTarget::start("cluster_wide_metric 1\n");
    let port = target.port;
    let mut a = start("a", &fake, port);
    let mut b = start("b", &fake, port);
    let (ma, mb) = (a.metrics.clone(), b.metrics.clone());
    let leading = |m: &str| live_metric(m, "kubegate_cluster_leader ") == 1.0;
    a.child
        .wait_alive(Duration::from_secs(30), "one instance leads", |_| {
            leading(&ma) || leading(&mb)
        });
    let (leader, standby, lw, sw) = if leads(&a) {
        (&mut a, &mut b, "a", "b")
    } else {
        (&mut b, &mut a, "b", "a")
    };
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(3));
    assert!(scrapes_since(&target, lw, t0) >= 3, "the leader scrapes");
    assert_eq!(
        scrapes_since(&target, sw, t0),
        0,
        "the standby does not scrape"
    );
    assert!(
        leader.child.log().contains("became the leader"),
        "{}",
        leader.child.log()
    );

    // A crash: the standby starts within the lease duration.
    leader.child.kill();
    let killed = Instant::now();
    standby.child.wait_alive(
        Duration::from_secs(LEASE_S) + SLACK,
        "the standby scrapes after the leader died",
        |_| scrapes_since(&target, sw, killed) > 0,
    );
    let took = killed.elapsed();
    assert!(took <= Duration::from_secs(LEASE_S) + SLACK, "{took:?}");
    assert!(leads(standby));

    // The new leader loses the API server: it stops scraping by its renew
    // deadline, before the lease it last wrote would expire.
    fake.set_unavailable(true);
    let lost = Instant::now();
    let metrics = standby.metrics.clone();
    standby.child.wait_alive(
        Duration::from_secs(RENEW_S) + SLACK,
        "the leader steps down without the API server",
        |_| live_metric(&metrics, "kubegate_cluster_leader ") == 0.0,
    );
    let stepped_down = Instant::now();
    assert!(
        lost.elapsed() < Duration::from_secs(LEASE_S),
        "{:?}",
        lost.elapsed()
    );
    std::thread::sleep(Duration::from_secs(2));
    // A scrape already running when it stepped down is cut off, not finished.
    assert_eq!(
        scrapes_since(&target, sw, stepped_down + Duration::from_millis(200)),
        0,
        "scrapes after stepping down"
    );
    let log = standby.child.log();
    assert!(
        log.contains("could not renew the lease within renew_deadline"),
        "{}",
        log_tail(&log)
    );
    // Back online, it takes the lease again (nobody else is left).
    fake.set_unavailable(false);
    let back = Instant::now();
    standby.child.wait_alive(
        Duration::from_secs(LEASE_S) + SLACK * 2,
        "scraping again after the API server came back",
        |_| scrapes_since(&target, sw, back) > 0,
    );
    standby.child.terminate_ok(Duration::from_secs(15));
    assert!(
        standby.child.log().contains("lease released"),
        "{}",
        log_tail(&standby.child.log())
    );
}

/// Cluster mode without a usable API server configuration fails at start
/// with the reason, rather than running without ever scraping.
#[test]
fn cluster_mode_without_a_kubeconfig_fails_at_start_with_the_reason() {
    let b = Child::kubegate();
    let path = b.dir().join("kubegate.yaml");
    std::fs::write(
        &path,
        format!(
            "server:\n  listen_address: 127.0.0.1:{}\nhost_metrics:\n  enabled: false\n\
             cluster:\n  mode: cluster\n  kubeconfig_file: /nonexistent/kubeconfig\n",
            free_port()
        ),
    )
    .unwrap();
    let mut child = b.arg("run").arg("--config").arg(&path).spawn();
    let status = child
        .wait_timeout(Duration::from_secs(20))
        .expect("kubegate exits");
    assert!(!status.success());
    let log = child.log();
    assert!(
        log.contains("cluster mode: kubernetes client configuration")
            && log.contains("/nonexistent/kubeconfig"),
        "{log}"
    );
}
