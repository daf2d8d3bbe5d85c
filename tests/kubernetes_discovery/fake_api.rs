//! The fake API server itself over raw HTTP, as any client sees it: list
//! and watch JSON, resourceVersion, BOOKMARK, 410 Gone and selectors.

use super::*;

async fn get(fake: &FakeK8s, path_query: &str, accept: Option<&str>) -> (u16, String) {
    let mut req = reqwest::Client::new().get(format!("{}{path_query}", fake.url()));
    if let Some(a) = accept {
        req = req.header("accept", a);
    }
    let resp = req.send().await.expect("request");
    (resp.status().as_u16(), resp.text().await.expect("body"))
}

fn lines(body: &str) -> Vec<Value> {
    body.lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_speaks_list_and_watch_like_the_api_server() {
    let fake = FakeK8s::start();
    let rv_a = fake.add(&pod("default", "a", "n1", "10.0.0.1", json!({})));
    fake.add(&pod("default", "b", "n2", "10.0.0.2", json!({})));
    fake.add(&pod("other", "c", "n1", "10.0.0.3", json!({})));

    let (status, body) = get(&fake, "/api/v1/pods", None).await;
    assert_eq!(status, 200);
    let list: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(list["kind"], "PodList");
    assert_eq!(
        list["metadata"]["resourceVersion"],
        fake.resource_version().to_string()
    );
    assert_eq!(list["items"].as_array().unwrap().len(), 3);
    assert!(
        list["items"][0].get("kind").is_none(),
        "list items carry no kind"
    );

    let names = |body: &str| -> Vec<String> {
        let v: Value = serde_json::from_str(body).unwrap();
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["metadata"]["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let (_, b) = get(&fake, "/api/v1/namespaces/default/pods", None).await;
    assert_eq!(names(&b), ["a", "b"]);
    let (_, b) = get(&fake, "/api/v1/pods?fieldSelector=spec.nodeName%3Dn1", None).await;
    assert_eq!(names(&b), ["a", "c"]);
    let (_, b) = get(
        &fake,
        "/api/v1/pods?labelSelector=app%20in%20(a%2Cc),app!%3Dc",
        None,
    )
    .await;
    assert_eq!(names(&b), ["a"]);
    let (status, b) = get(&fake, "/api/v1/pods?fieldSelector=spec.bogus%3Dx", None).await;
    assert_eq!(
        (status, b.contains("field label not supported: spec.bogus")),
        (400, true)
    );

    // Pagination over a snapshot, and an expired continue token.
    let (_, b) = get(&fake, "/api/v1/pods?limit=2", None).await;
    let page: Value = serde_json::from_str(&b).unwrap();
    let token = page["metadata"]["continue"].as_str().unwrap().to_owned();
    assert_eq!(names(&b), ["a", "b"]);
    let (_, b) = get(
        &fake,
        &format!("/api/v1/pods?limit=2&continue={token}"),
        None,
    )
    .await;
    assert_eq!(names(&b), ["c"]);
    let (_, b) = get(&fake, "/api/v1/pods?limit=1", None).await;
    let token: Value = serde_json::from_str(&b).unwrap();
    fake.update(&pod("default", "a", "n1", "10.0.0.1", json!({"x": "1"})));
    fake.compact();
    let (status, b) = get(
        &fake,
        &format!(
            "/api/v1/pods?limit=1&continue={}",
            token["metadata"]["continue"].as_str().unwrap()
        ),
        None,
    )
    .await;
    assert_eq!(status, 410, "{b}");

    // Watch from a resourceVersion: the events after it, then the timeout ends the stream.
    let rv = fake.resource_version();
    fake.update(&pod("default", "a", "n2", "10.0.0.1", json!({})));
    fake.delete::<Pod>(Some("default"), "b");
    let (status, b) = get(
        &fake,
        &format!("/api/v1/pods?watch=true&resourceVersion={rv}&timeoutSeconds=1"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let events: Vec<(String, String)> = lines(&b)
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap().to_owned(),
                e["object"]["metadata"]["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        events,
        [
            ("MODIFIED".into(), "a".into()),
            ("DELETED".into(), "b".into())
        ]
    );
    assert_eq!(
        lines(&b)[0]["object"]["kind"],
        "Pod",
        "watch objects carry their kind"
    );
    // A pod leaving a field selector is DELETED for that watch.
    let (_, b) = get(&fake, &format!("/api/v1/pods?watch=true&resourceVersion={rv}&timeoutSeconds=1&fieldSelector=spec.nodeName%3Dn1"), None).await;
    assert_eq!(
        lines(&b)
            .iter()
            .map(|e| e["type"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>(),
        ["DELETED"]
    );

    // Too old: HTTP 200 and one ERROR event with a 410 Status.
    let (status, b) = get(
        &fake,
        &format!("/api/v1/pods?watch=true&resourceVersion={rv_a}"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let events = lines(&b);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["type"], "ERROR");
    assert_eq!(events[0]["object"]["code"], 410);
    assert_eq!(events[0]["object"]["reason"], "Expired");

    // Bookmarks on an open watch.
    let mut resp = reqwest::Client::new()
        .get(format!(
            "{}/api/v1/pods?watch=true&resourceVersion={}&allowWatchBookmarks=true",
            fake.url(),
            fake.resource_version()
        ))
        .send()
        .await
        .unwrap();
    common::wait_for(Duration::from_secs(5), "the watch to open", || {
        (fake.open_watches() == 1).then_some(())
    });
    fake.send_bookmarks();
    let chunk = tokio::time::timeout(Duration::from_secs(5), resp.chunk())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let event: Value = serde_json::from_slice(&chunk).unwrap();
    assert_eq!(event["type"], "BOOKMARK");
    assert_eq!(
        event["object"]["metadata"]["resourceVersion"],
        fake.resource_version().to_string()
    );
    fake.cut_watches();
    assert!(
        tokio::time::timeout(Duration::from_secs(5), resp.chunk())
            .await
            .unwrap()
            .unwrap()
            .is_none()
    );

    // Metadata-only lists, and 403 on demand.
    let (_, b) = get(
        &fake,
        "/api/v1/pods",
        Some("application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"),
    )
    .await;
    let v: Value = serde_json::from_str(&b).unwrap();
    assert_eq!(v["kind"], "PartialObjectMetadataList");
    assert!(v["items"][0].get("spec").is_none());
    fake.forbid("pods");
    let (status, b) = get(&fake, "/api/v1/namespaces/default/pods", None).await;
    assert_eq!(status, 403);
    assert!(b.contains("cannot list resource \\\"pods\\\""), "{b}");
}
