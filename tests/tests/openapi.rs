//! `GET /openapi.json` on a real cluster: served without credentials while
//! every scope has a token, an OpenAPI 3.1 document naming every problem
//! type, and true to the services: each documented operation is called and
//! its answer must be one of the documented statuses, with a body that has
//! the documented required fields (and no undocumented ones where the schema
//! is closed).

// The test holds the cluster lock for its whole run on purpose (see
// tests/sequencer.rs).
#![allow(clippy::await_holding_lock)]

use std::time::Duration;

use paxid_tests::{serial, Cluster, ClusterSpec};
use serde_json::{json, Value};

const CLIENT_TOKEN: &str = "client-secret";
const SUBSCRIPTION_TOKEN: &str = "subscription-secret";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documents_are_open_complete_and_true_to_the_services() {
    let _serial = serial();
    let spec = ClusterSpec {
        sequencers: 1,
        learner: true,
        cluster_token: Some("cluster-secret".into()),
        sequencer_args: vec!["--client-token".into(), CLIENT_TOKEN.into()],
        learner_args: vec!["--subscription-token".into(), SUBSCRIPTION_TOKEN.into()],
        ..ClusterSpec::default()
    };
    let mut cluster = Cluster::start(spec);
    let sequencer = cluster.sequencer_urls()[0].clone();
    let learner = cluster.learner.as_ref().expect("a learner").url();
    let http = cluster.http.clone();
    // Serving needs the client token now; wait for the leader first.
    let started = std::time::Instant::now();
    loop {
        let answer = http
            .post(format!("{sequencer}/next-id"))
            .bearer_auth(CLIENT_TOKEN)
            .send()
            .await;
        if answer.is_ok_and(|a| a.status().is_success()) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no service\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = &mut cluster;

    for (url, token) in [(&sequencer, CLIENT_TOKEN), (&learner, SUBSCRIPTION_TOKEN)] {
        let answer = http
            .get(format!("{url}/openapi.json"))
            .send()
            .await
            .expect("openapi");
        assert_eq!(answer.status(), 200, "{url}/openapi.json needs no credential");
        assert_eq!(
            answer.headers()["content-type"].to_str().ok(),
            Some("application/json")
        );
        let document: Value = answer.json().await.expect("JSON");
        assert_eq!(document["openapi"], "3.1.0");
        for problem in api::problem::PUBLIC_TYPES {
            assert!(
                document["x-problem-types"].get(*problem).is_some(),
                "{url}: problem type {problem} is not documented"
            );
        }
        let checked = exercise(&http, url, token, &document).await;
        println!("{url}: {checked} documented operations called, every answer as documented");
    }
}

/// Calls every operation of `document` (with and without the token where it
/// takes one) and checks each answer against it; returns how many.
async fn exercise(http: &reqwest::Client, base: &str, token: &str, document: &Value) -> usize {
    let mut subscription_id: Option<String> = None;
    let mut checked = 0;
    let paths = document["paths"].as_object().expect("paths");
    // Creation first, so that the `{id}` paths have a real subscription;
    // deletion last.
    let mut operations: Vec<(String, String)> = paths
        .iter()
        .flat_map(|(path, item)| {
            ["post", "get", "delete"]
                .into_iter()
                .filter(|m| item.get(*m).is_some())
                .map(move |m| (path.clone(), m.to_owned()))
        })
        .collect();
    operations.sort_by_key(|(path, method)| (method == "delete", path.contains('{'), path.clone()));
    for (path, method) in operations {
        let operation = &paths[&path][&method];
        let secured = operation["security"]
            .as_array()
            .is_some_and(|s| s.iter().any(|r| r.get("bearer").is_some()));
        let concrete = match (&subscription_id, path.contains("{id}")) {
            (Some(id), true) => path.replace("{id}", id),
            (None, true) => panic!("{path}: no subscription to address"),
            _ => path.clone(),
        };
        let body = example_body(&path, &method);
        let call = |with_token: bool| {
            let mut request = match method.as_str() {
                "post" => http.post(format!("{base}{concrete}")),
                "delete" => http.delete(format!("{base}{concrete}")),
                _ => http.get(format!("{base}{concrete}")),
            };
            if with_token {
                request = request.bearer_auth(token);
            }
            if let Some(body) = &body {
                request = request.json(body);
            }
            request.send()
        };
        if secured {
            let refused = call(false).await.expect("answer");
            assert_eq!(refused.status(), 401, "{method} {path} without the token");
            check_answer(document, operation, &path, refused).await;
        }
        let answer = call(true).await.expect("answer");
        let status = answer.status().as_u16();
        let value = check_answer(document, operation, &path, answer).await;
        if path == "/v1/subscriptions" && method == "post" {
            assert_eq!(status, 201, "{value}");
            subscription_id = value["id"].as_str().map(str::to_owned);
        }
        checked += 1;
    }
    checked
}

fn example_body(path: &str, method: &str) -> Option<Value> {
    match (path, method) {
        ("/next-id", "post") => Some(json!({"count": 3, "sequence": "orders"})),
        ("/v1/subscriptions", "post") => Some(json!({"url": "http://127.0.0.1:9/hook"})),
        ("/v1/subscriptions/{id}/replay", "post") => Some(json!({"from_slot": 0})),
        _ => None,
    }
}

/// The answer's status must be documented, and a JSON body must carry the
/// schema's required fields; returns the body.
async fn check_answer(document: &Value, operation: &Value, path: &str, answer: reqwest::Response) -> Value {
    let status = answer.status().as_u16().to_string();
    let Some(documented) = operation["responses"].get(&status) else {
        panic!(
            "{path}: answered {status}, documented {:?}",
            operation["responses"]
                .as_object()
                .map(|r| r.keys().collect::<Vec<_>>())
        );
    };
    let content_type = answer
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let text = answer.text().await.unwrap_or_default();
    let Some(content) = documented.get("content") else {
        return Value::Null;
    };
    let Some((media, media_doc)) = content.as_object().and_then(|c| c.iter().next()) else {
        return Value::Null;
    };
    assert!(
        content_type.starts_with(media.as_str()),
        "{path} {status}: {content_type}, documented {media}"
    );
    if !media.contains("json") {
        return Value::Null;
    }
    let value: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path} {status}: {e}: {text}"));
    conforms(
        document,
        &media_doc["schema"],
        &value,
        &format!("{path} {status}"),
    );
    value
}

/// A small structural check: `$ref`, `required`, closed objects, array
/// items, string `enum`s and primitive types.
fn conforms(document: &Value, schema: &Value, value: &Value, at: &str) {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.trim_start_matches("#/components/schemas/");
        return conforms(document, &document["components"]["schemas"][name], value, at);
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    let kind = match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_u64() || n.is_i64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    assert!(
        types.is_empty() || types.contains(&kind) || (kind == "integer" && types.contains(&"number")),
        "{at}: {value} is {kind}, documented {types:?}"
    );
    if let (Some(allowed), Value::String(s)) = (schema["enum"].as_array(), value) {
        assert!(allowed.iter().any(|a| a == s), "{at}: {s:?} not in {allowed:?}");
    }
    if let Value::Object(fields) = value {
        for required in schema["required"].as_array().into_iter().flatten() {
            let name = required.as_str().unwrap_or("");
            assert!(fields.contains_key(name), "{at}: {name} missing in {value}");
        }
        let properties = schema["properties"].as_object();
        for (name, field) in fields {
            match properties.and_then(|p| p.get(name)) {
                Some(property) => conforms(document, property, field, &format!("{at}.{name}")),
                None => assert!(
                    schema["additionalProperties"] != false,
                    "{at}: {name} is not documented"
                ),
            }
        }
    }
    if let Value::Array(items) = value {
        for (i, item) in items.iter().enumerate() {
            conforms(document, &schema["items"], item, &format!("{at}[{i}]"));
        }
    }
}
