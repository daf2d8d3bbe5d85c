//! Lease-based leader election against the fake API server: in-process
//! electors (precise timing), each with its own HTTP client, some behind a
//! fault proxy so only their requests fail.

mod common;

use common::fake_k8s::FakeK8s;
use common::fault_proxy::{Fault, FaultProxy};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kubegate::leader::{self, LeaderMetrics, Leadership, LeaseSettings};
use std::time::{Duration, Instant};

const LEASE: Duration = Duration::from_secs(6);
const RENEW: Duration = Duration::from_secs(3);
const RETRY: Duration = Duration::from_millis(400);
/// Timer and scheduling delay allowed on a busy machine.
const SLACK: Duration = Duration::from_millis(1500);

fn settings(identity: &str) -> LeaseSettings {
    LeaseSettings {
        name: "kubegate-cluster".into(),
        namespace: "monitoring".into(),
        identity: identity.into(),
        lease_duration: LEASE,
        renew_deadline: RENEW,
        retry_period: RETRY,
    }
}

async fn client_at(url: &str) -> kube::Client {
    let mut config = kube::Config::new(url.parse().expect("url"));
    config.default_namespace = "monitoring".into();
    config.read_timeout = Some(Duration::from_secs(60));
    kube::Client::try_from(config).expect("client")
}

async fn elector(url: &str, identity: &str) -> Leadership {
    let api: Api<Lease> = Api::namespaced(client_at(url).await, "monitoring");
    leader::spawn(api, settings(identity), LeaderMetrics::unregistered())
}

fn leads(l: &Leadership) -> bool {
    *l.leading.borrow()
}

fn holder(fake: &FakeK8s) -> Option<String> {
    fake.get_json(
        "coordination.k8s.io/v1",
        "leases",
        "monitoring",
        "kubegate-cluster",
    )
    .and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_owned))
}

/// Polls every 10 ms until `f` holds; fails with `what` after `timeout`.
/// Also fails at once if both electors ever lead together.
async fn wait(timeout: Duration, what: &str, pair: &[&Leadership], f: impl Fn() -> bool) {
    let until = Instant::now() + timeout;
    loop {
        assert!(
            pair.iter().filter(|l| leads(l)).count() <= 1,
            "two leaders at once while waiting for: {what}"
        );
        if f() {
            return;
        }
        assert!(
            Instant::now() < until,
            "timed out after {timeout:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_leads_and_a_standby_takes_over_within_the_lease_duration_when_it_dies() {
    let fake = FakeK8s::start();
    let a = elector(&fake.url(), "pod-a").await;
    let b = elector(&fake.url(), "pod-b").await;
    wait(Duration::from_secs(20), "a leader", &[&a, &b], || {
        leads(&a) || leads(&b)
    })
    .await;
    // The standby keeps standing by while the leader renews.
    let watch_from = Instant::now();
    while watch_from.elapsed() < LEASE + RETRY * 2 {
        assert!(leads(&a) != leads(&b), "exactly one leader");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (dead, standby, standby_id) = if leads(&a) {
        (a, b, "pod-b")
    } else {
        (b, a, "pod-a")
    };
    let dead_id = holder(&fake).expect("a holder");
    assert_ne!(dead_id, standby_id);
    let renewals_before = fake
        .requests()
        .iter()
        .filter(|r| r.method == "PUT" && r.path.ends_with("/leases/kubegate-cluster"))
        .count();
    assert!(renewals_before >= 2, "the leader renews every retry period");

    dead.abort();
    let killed = Instant::now();
    let until = killed + LEASE + RETRY + SLACK;
    while !leads(&standby) {
        assert!(
            Instant::now() < until,
            "no takeover within {:?}",
            LEASE + RETRY + SLACK
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let took = killed.elapsed();
    // Not before the dead leader's last renewal (at most one retry period
    // before the kill) could have expired.
    assert!(
        took + RETRY >= LEASE - Duration::from_millis(100),
        "took over after only {took:?}"
    );
    assert_eq!(holder(&fake).as_deref(), Some(standby_id));
    let lease = fake
        .get_json(
            "coordination.k8s.io/v1",
            "leases",
            "monitoring",
            "kubegate-cluster",
        )
        .unwrap();
    assert_eq!(lease["spec"]["leaseTransitions"], 1, "{lease}");
    assert_eq!(lease["spec"]["leaseDurationSeconds"], 6);
    standby.shutdown().await;
    // A clean shutdown hands the lease back: a new candidate takes it at
    // its first tries, not after a lease duration.
    assert_eq!(holder(&fake), None);
    let c = elector(&fake.url(), "pod-c").await;
    wait(
        RETRY * 2 + SLACK,
        "pod-c takes the released lease",
        &[&c],
        || leads(&c),
    )
    .await;
    c.abort();
}

/// Only the leader's requests fail (503 from a proxy in front of the
/// fake); the standby talks to the fake directly and takes over. The
/// leader must have stopped before: at its renew deadline, which comes
/// before the lease expires.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_whose_renewals_fail_steps_down_before_the_lease_expires() {
    for fault in [Fault::Status(503), Fault::Delay(Duration::from_secs(60))] {
        let fake = FakeK8s::start();
        let proxy = FaultProxy::start(fake.port());
        let a = elector(&proxy.url(), "pod-a").await;
        wait(Duration::from_secs(20), "pod-a leads", &[&a], || leads(&a)).await;
        let b = elector(&fake.url(), "pod-b").await;
        // Let pod-b see a few renewals, so it is a real standby.
        tokio::time::sleep(RETRY * 4).await;
        assert!(leads(&a) && !leads(&b));

        proxy.set(fault.clone());
        let failed = Instant::now();
        wait(RENEW + SLACK, "pod-a steps down", &[&a, &b], || !leads(&a)).await;
        let stepped_down = failed.elapsed();
        assert!(
            stepped_down <= RENEW + SLACK,
            "{fault:?}: stepped down after {stepped_down:?}"
        );
        assert!(
            !leads(&b),
            "{fault:?}: pod-b took over before pod-a stopped"
        );
        wait(LEASE + RETRY + SLACK, "pod-b takes over", &[&a, &b], || {
            leads(&b)
        })
        .await;
        let took_over = failed.elapsed();
        assert!(
            took_over > stepped_down,
            "{fault:?}: stopped at {stepped_down:?}, standby started at {took_over:?}"
        );
        assert_eq!(holder(&fake).as_deref(), Some("pod-b"));
        // Back online, pod-a sees pod-b's lease and stays a standby.
        proxy.set(Fault::None);
        tokio::time::sleep(RETRY * 5).await;
        assert!(!leads(&a) && leads(&b), "{fault:?}");
        a.abort();
        b.abort();
    }
}

/// A 409 on renewal is not a loss: the leader tries again next period and
/// keeps the lease if it succeeds within the renew deadline, and stops if
/// conflicts outlast it. Two candidates creating the Lease at once: one
/// create wins, the other gets 409 and stands by.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicts_are_retried_and_never_make_two_leaders() {
    let fake = FakeK8s::start();
    let mut electors = Vec::new();
    for id in ["pod-a", "pod-b", "pod-c"] {
        electors.push(elector(&fake.url(), id).await);
    }
    let until = Instant::now() + Duration::from_secs(20);
    while electors.iter().filter(|e| leads(e)).count() != 1 {
        assert!(
            electors.iter().filter(|e| leads(e)).count() <= 1,
            "two leaders"
        );
        assert!(Instant::now() < until, "no leader");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let creates = fake
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/leases"))
        .count();
    assert!(creates >= 1);
    let leader = electors.iter().position(leads).unwrap();

    // Two renewals refused: still the leader (2 x 400 ms < 3 s).
    fake.conflict_next_updates(2);
    let start = Instant::now();
    while start.elapsed() < RENEW + RETRY * 2 {
        assert!(leads(&electors[leader]), "stepped down after two conflicts");
        assert_eq!(electors.iter().filter(|e| leads(e)).count(), 1);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Conflicts for longer than the renew deadline: it stops.
    fake.conflict_next_updates(1000);
    let start = Instant::now();
    while leads(&electors[leader]) {
        assert!(
            start.elapsed() < RENEW + SLACK,
            "kept leading through conflicts"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Everyone's updates conflict now, so nobody leads.
    tokio::time::sleep(LEASE + RETRY).await;
    assert_eq!(electors.iter().filter(|e| leads(e)).count(), 0);
    fake.conflict_next_updates(0);
    let until = Instant::now() + LEASE + SLACK * 2;
    while electors.iter().filter(|e| leads(e)).count() != 1 {
        assert!(
            electors.iter().filter(|e| leads(e)).count() <= 1,
            "two leaders"
        );
        assert!(Instant::now() < until, "no leader after conflicts ended");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for e in electors {
        e.abort();
    }
}

/// The fake's optimistic concurrency, as the real server's: a PUT with a
/// stale resourceVersion gets 409 Conflict; POST of an existing name gets
/// 409 AlreadyExists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fake_refuses_stale_updates_and_duplicate_creates() {
    let fake = FakeK8s::start();
    let api: Api<Lease> = Api::namespaced(client_at(&fake.url()).await, "monitoring");
    let lease: Lease = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "l"}, "spec": {"holderIdentity": "x"}
    }))
    .unwrap();
    let pp = kube::api::PostParams::default();
    let created = api.create(&pp, &lease).await.expect("create");
    let err = api.create(&pp, &lease).await.unwrap_err();
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 409 && s.reason == "AlreadyExists"),
        "{err}"
    );
    let mut first = created.clone();
    first.spec.as_mut().unwrap().holder_identity = Some("y".into());
    let updated = api.replace("l", &pp, &first).await.expect("update");
    assert_ne!(
        updated.metadata.resource_version,
        created.metadata.resource_version
    );
    // `created` still carries the old resourceVersion.
    let err = api.replace("l", &pp, &created).await.unwrap_err();
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 409 && s.reason == "Conflict"),
        "{err}"
    );
    assert!(
        err.to_string().contains("the object has been modified"),
        "{err}"
    );
    let got = api.get("l").await.unwrap();
    assert_eq!(got.spec.unwrap().holder_identity.as_deref(), Some("y"));
    let err = api
        .replace("missing", &pp, &{
            let mut l = lease.clone();
            l.metadata.name = Some("missing".into());
            l
        })
        .await
        .unwrap_err();
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 404),
        "{err}"
    );
}

/// Writes a Lease as raw JSON (`POST` when it does not exist yet, else an
/// unconditional `PUT`), so it can hold what no typed client would write.
async fn write_raw(fake: &FakeK8s, spec: serde_json::Value) {
    let exists = fake
        .get_json(
            "coordination.k8s.io/v1",
            "leases",
            "monitoring",
            "kubegate-cluster",
        )
        .is_some();
    let base = format!(
        "{}/apis/coordination.k8s.io/v1/namespaces/monitoring/leases",
        fake.url()
    );
    let body = serde_json::json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "kubegate-cluster", "namespace": "monitoring"},
        "spec": spec,
    });
    let client = reqwest::Client::new();
    let req = if exists {
        client.put(format!("{base}/kubegate-cluster"))
    } else {
        client.post(base)
    };
    let status = req.json(&body).send().await.expect("write lease").status();
    assert!(status.is_success(), "{status}");
}

fn lease_gets(fake: &FakeK8s) -> usize {
    fake.requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path.ends_with("/leases/kubegate-cluster"))
        .count()
}

/// Leases as other writers (or a bad actor) may leave them: the elector
/// neither panics nor stops trying, and takes over only when it may.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_and_malformed_leases_neither_crash_nor_fool_the_elector() {
    // A holder with a duration too large to add to a clock: held forever.
    let fake = FakeK8s::start();
    write_raw(
        &fake,
        serde_json::json!({"holderIdentity": "other", "leaseDurationSeconds": 2147483647}),
    )
    .await;
    let a = elector(&fake.url(), "pod-a").await;
    tokio::time::sleep(LEASE / 2).await;
    let gets = lease_gets(&fake);
    tokio::time::sleep(RETRY * 3).await;
    assert!(lease_gets(&fake) > gets, "the elector stopped trying");
    assert!(!leads(&a));
    a.abort();

    // Zero and negative durations count as one second.
    for seconds in [0, -5] {
        let fake = FakeK8s::start();
        write_raw(
            &fake,
            serde_json::json!({"holderIdentity": "other", "leaseDurationSeconds": seconds}),
        )
        .await;
        let a = elector(&fake.url(), "pod-a").await;
        wait(
            Duration::from_secs(1) + RETRY * 2 + SLACK,
            "takeover of a 1 s lease",
            &[&a],
            || leads(&a),
        )
        .await;
        a.abort();
    }

    // No spec at all: nobody holds it.
    let fake = FakeK8s::start();
    write_raw(&fake, serde_json::Value::Null).await;
    let a = elector(&fake.url(), "pod-a").await;
    wait(
        RETRY * 2 + SLACK,
        "takeover of an empty lease",
        &[&a],
        || leads(&a),
    )
    .await;
    assert_eq!(holder(&fake).as_deref(), Some("pod-a"));
    a.abort();

    // A renewTime no client can read: the elector reports and retries, and
    // takes the lease once it is readable again.
    let fake = FakeK8s::start();
    write_raw(
        &fake,
        serde_json::json!({"holderIdentity": "other", "renewTime": "yesterday"}),
    )
    .await;
    let a = elector(&fake.url(), "pod-a").await;
    tokio::time::sleep(RETRY * 4).await;
    let gets = lease_gets(&fake);
    assert!(gets >= 2 && !leads(&a), "gets {gets}");
    write_raw(&fake, serde_json::json!({"holderIdentity": ""})).await;
    wait(
        RETRY * 2 + SLACK,
        "takeover once the lease is readable",
        &[&a],
        || leads(&a),
    )
    .await;
    a.abort();
}

/// Hostile writes to the fake get the real server's answers, and the
/// server keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fake_answers_malformed_writes_with_statuses() {
    let fake = FakeK8s::start();
    let base = format!(
        "{}/apis/coordination.k8s.io/v1/namespaces/monitoring/leases",
        fake.url()
    );
    let client = reqwest::Client::new();
    let cases: Vec<(reqwest::RequestBuilder, u16)> = vec![
        (client.post(&base).body("{not json"), 400),
        (client.post(&base).body("[1, 2]"), 400),
        (client.post(&base).body(r#"{"metadata": {}}"#), 422),
        (
            client
                .put(format!("{base}/a"))
                .body(r#"{"metadata": {"name": "b"}}"#),
            400,
        ),
        (
            client
                .put(format!("{base}/nothing"))
                .body(r#"{"metadata": {"name": "nothing"}}"#),
            404,
        ),
        (
            client.put(&base).body(r#"{"metadata": {"name": "x"}}"#),
            405,
        ),
        (client.delete(format!("{base}/x")), 405),
    ];
    for (req, want) in cases {
        let resp = req.send().await.expect("the fake answers");
        assert_eq!(resp.status().as_u16(), want);
        let status: serde_json::Value = resp.json().await.expect("a Status object");
        assert_eq!(status["kind"], "Status");
        assert_eq!(status["code"], want);
    }
    let api: Api<Lease> = Api::namespaced(client_at(&fake.url()).await, "monitoring");
    assert!(api.get_opt("x").await.expect("still serving").is_none());
}
