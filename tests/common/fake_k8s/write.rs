//! Writes through the API: `POST` creates (409 `AlreadyExists` when the
//! name is taken), `PUT` replaces (404 when missing; 409 `Conflict` when
//! the body's `metadata.resourceVersion` is not the stored one, as
//! optimistic concurrency on the real server). Enough for a
//! `coordination.k8s.io` Lease election; any registered resource works.

use bytes::Bytes;
use hyper::StatusCode;
use serde_json::{Value, json};

use super::http::{Body, failure, respond};
use super::{ResInfo, ResKey, State};

/// Faults for the next writes, set by tests.
#[derive(Default)]
pub(super) struct WriteFaults {
    /// Answer this many coming PUTs with 409 Conflict.
    pub(super) conflicts: usize,
}

/// What a write did: the response, and whether watchers must look again.
pub(super) struct Written {
    pub(super) response: hyper::Response<Body>,
    pub(super) changed: bool,
}

fn refused(response: hyper::Response<Body>) -> Written {
    Written {
        response,
        changed: false,
    }
}

fn qualified(res: &ResKey) -> String {
    if res.group.is_empty() {
        res.plural.clone()
    } else {
        format!("{}.{}", res.plural, res.group)
    }
}

impl State {
    /// `POST .../{plural}` or `PUT .../{plural}/{name}`.
    pub(super) fn write_request(
        &mut self,
        method: &str,
        res: ResKey,
        info: &ResInfo,
        namespace: Option<&str>,
        name: Option<&str>,
        body: &Bytes,
    ) -> Written {
        let mut object: Value = match serde_json::from_slice(body) {
            Ok(v @ Value::Object(_)) => v,
            Ok(_) => return refused(failure(400, "BadRequest", "the body is not an object")),
            Err(e) => {
                return refused(failure(
                    400,
                    "BadRequest",
                    &format!("cannot decode the body: {e}"),
                ));
            }
        };
        let Some(body_name) = object["metadata"]["name"].as_str().map(str::to_owned) else {
            return refused(failure(422, "Invalid", "metadata.name: Required value"));
        };
        if let Some(path_name) = name
            && path_name != body_name
        {
            return refused(failure(
                400,
                "BadRequest",
                "the name of the object does not match the name on the URL",
            ));
        }
        let ns = if info.namespaced {
            namespace.unwrap_or("default").to_owned()
        } else {
            String::new()
        };
        let key = (res.clone(), ns.clone(), body_name.clone());
        let prev = self.objects.get(&key).cloned();
        let what = format!("{} \"{body_name}\"", qualified(&res));
        match (method, &prev) {
            ("POST", Some(_)) => {
                return refused(failure(
                    409,
                    "AlreadyExists",
                    &format!("{what} already exists"),
                ));
            }
            ("PUT", None) => {
                return refused(failure(404, "NotFound", &format!("{what} not found")));
            }
            ("PUT", Some(stored)) => {
                let wanted = object["metadata"]["resourceVersion"].as_str();
                let forced = self.write_faults.conflicts > 0;
                if forced {
                    self.write_faults.conflicts -= 1;
                }
                let stale = wanted
                    .is_some_and(|rv| Some(rv) != stored["metadata"]["resourceVersion"].as_str());
                if forced || stale {
                    return refused(failure(
                        409,
                        "Conflict",
                        &format!(
                            "Operation cannot be fulfilled on {what}: the object has been modified; please apply your changes to the latest version and try again"
                        ),
                    ));
                }
            }
            _ => {}
        }
        self.rv += 1;
        let rv = self.rv;
        let meta = &mut object["metadata"];
        if !ns.is_empty() {
            meta["namespace"] = json!(ns);
        }
        for field in ["uid", "creationTimestamp"] {
            meta[field] = match prev.as_ref().map(|p| &p["metadata"][field]) {
                Some(v) if !v.is_null() => v.clone(),
                _ if field == "uid" => json!(format!("uid-{}-{rv}", res.plural)),
                _ => json!("2024-01-01T00:00:00Z"),
            };
        }
        meta["resourceVersion"] = json!(rv.to_string());
        object["kind"] = json!(info.kind);
        object["apiVersion"] = json!(res.api_version());
        self.objects.insert(key, object.clone());
        let (status, kind) = if prev.is_some() {
            (StatusCode::OK, "MODIFIED")
        } else {
            (StatusCode::CREATED, "ADDED")
        };
        self.push_event(rv, res, kind, object.clone(), prev);
        Written {
            response: respond(status, &object),
            changed: true,
        }
    }
}
