//! Index templates (and an ILM policy where the server has ILM) installed
//! at start, so numbers map as numbers and labels as keywords. A missing
//! privilege is reported by name and delivery carries on.

use super::elasticsearch::EsSink;
use elasticsearch::http::Method;
use elasticsearch::http::headers::HeaderMap;
use serde_json::{Value, json};

pub const ILM_POLICY: &str = "kubegate";

/// What the server is, as far as the templates care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flavor {
    /// Elasticsearch 7.9+ has data streams and `constant_keyword`;
    /// OpenSearch-compatible servers get plain indices.
    pub data_streams: bool,
}

async fn call(
    sink: &EsSink,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Result<(u16, String), String> {
    let body = body.map(|b| b.to_string());
    let mut headers = HeaderMap::new();
    headers.insert(
        elasticsearch::http::headers::CONTENT_TYPE,
        elasticsearch::http::headers::HeaderValue::from_static("application/json"),
    );
    let r = sink
        .client
        .transport()
        .send(method, path, headers, None::<&()>, body, None)
        .await
        .map_err(|e| crate::error_chain(&e))?;
    let status = r.status_code().as_u16();
    Ok((status, r.text().await.unwrap_or_default()))
}

pub async fn detect(sink: &EsSink) -> Result<Flavor, String> {
    let (status, text) = call(sink, Method::Get, "/", None).await?;
    if status != 200 {
        return Err(format!(
            "GET / answered HTTP {status}: {}",
            text.chars().take(200).collect::<String>()
        ));
    }
    let v: Value = serde_json::from_str(&text).map_err(|e| format!("GET / is not JSON: {e}"))?;
    let opensearch =
        v.pointer("/version/distribution").and_then(Value::as_str) == Some("opensearch");
    let version = v
        .pointer("/version/number")
        .and_then(Value::as_str)
        .unwrap_or("0");
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    Ok(Flavor {
        data_streams: !opensearch && (major > 7 || (major == 7 && minor >= 9)),
    })
}

fn privilege_hint(status: u16, what: &str, privilege: &str) -> String {
    if status == 403 {
        format!("{what}: permission denied; the user needs the cluster privilege `{privilege}`")
    } else {
        what.to_owned()
    }
}

fn common_mappings(flavor: Flavor) -> Value {
    let ds = if flavor.data_streams {
        "constant_keyword"
    } else {
        "keyword"
    };
    json!({
        "dynamic_templates": [
            {"labels": {"path_match": "labels.*", "match_mapping_type": "string", "mapping": {"type": "keyword"}}},
            {"prometheus_labels": {"path_match": "prometheus.labels.*", "match_mapping_type": "string", "mapping": {"type": "keyword"}}},
            // A gauge that is 0 in its first document must not become `long`.
            {"prometheus_metrics": {"path_match": "prometheus.metrics.*", "mapping": {"type": "double"}}},
            {"pct": {"path_match": "system.*.pct", "mapping": {"type": "double"}}},
            {"kubernetes_labels": {"path_match": "kubernetes.labels.*", "match_mapping_type": "string", "mapping": {"type": "keyword"}}},
            {"strings": {"match_mapping_type": "string", "mapping": {"type": "keyword", "ignore_above": 1024}}}
        ],
        "properties": {
            "@timestamp": {"type": "date"},
            "message": {"type": "text"},
            "ecs": {"properties": {"version": {"type": "keyword"}}},
            "agent": {"properties": {"type": {"type": "keyword"}, "name": {"type": "keyword"}, "version": {"type": "keyword"}, "id": {"type": "keyword"}, "ephemeral_id": {"type": "keyword"}}},
            "host": {"properties": {"name": {"type": "keyword"}, "hostname": {"type": "keyword"}}},
            "event": {"properties": {"kind": {"type": "keyword"}, "dataset": {"type": "keyword"}, "module": {"type": "keyword"}, "duration": {"type": "long"}, "ingested": {"type": "date"}}},
            "metricset": {"properties": {"name": {"type": "keyword"}, "period": {"type": "long"}}},
            "service": {"properties": {"type": {"type": "keyword"}, "address": {"type": "keyword"}}},
            "data_stream": {"properties": {"type": {"type": ds}, "dataset": {"type": ds}, "namespace": {"type": ds}}}
        }
    })
}

/// The composable template for one document kind (`metrics` or `logs`).
pub fn template(kind: &str, flavor: Flavor, ilm: bool) -> Value {
    let mut settings = json!({});
    if ilm {
        settings["index.lifecycle.name"] = json!(ILM_POLICY);
    }
    let mut t = json!({
        // Above Elasticsearch's built-in `metrics-*-*`/`logs-*-*` (100).
        "priority": 200,
        "index_patterns": [format!("{kind}-*-*")],
        "template": {"settings": settings, "mappings": common_mappings(flavor)},
        "_meta": {"managed_by": "kubegate", "version": env!("CARGO_PKG_VERSION")}
    });
    if flavor.data_streams {
        t["data_stream"] = json!({});
    }
    t
}

/// Installs what it can; every failure is logged with its cause, never fatal.
pub async fn run(sink: &EsSink) {
    let flavor = match detect(sink).await {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!(error = %e, "index template bootstrap skipped: cannot tell what the server is");
            return;
        }
    };
    let policy = json!({"policy": {"phases": {"hot": {"actions": {"rollover": {"max_primary_shard_size": "50gb", "max_age": "30d"}}}, "delete": {"min_age": "90d", "actions": {"delete": {}}}}}});
    let ilm = match call(
        sink,
        Method::Put,
        &format!("/_ilm/policy/{ILM_POLICY}"),
        Some(policy),
    )
    .await
    {
        Ok((200, _)) => true,
        Ok((status, text)) if status == 403 => {
            tracing::warn!(status, reason = %privilege_hint(status, "ILM policy not installed", "manage_ilm"), detail = %text.chars().take(200).collect::<String>());
            false
        }
        Ok((status, _)) => {
            tracing::info!(
                status,
                "the server has no ILM; templates are installed without a lifecycle policy"
            );
            false
        }
        Err(e) => {
            tracing::warn!(error = %e, "ILM policy not installed");
            false
        }
    };
    for kind in ["metrics", "logs"] {
        let path = format!("/_index_template/kubegate-{kind}");
        match call(sink, Method::Put, &path, Some(template(kind, flavor, ilm))).await {
            Ok((200, _)) => {
                tracing::info!(template = %path, data_streams = flavor.data_streams, ilm, "index template installed")
            }
            Ok((status, text)) => {
                tracing::warn!(status, reason = %privilege_hint(status, "index template not installed", "manage_index_templates"), detail = %text.chars().take(300).collect::<String>(), template = %path)
            }
            Err(e) => tracing::warn!(error = %e, template = %path, "index template not installed"),
        }
    }
}
