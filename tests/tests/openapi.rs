//! `GET /openapi.json` on a real cluster: served without credentials while
//! every scope has a token, an OpenAPI 3.1 document naming every problem
//! type, and true to the services: each documented operation is called and
//! its answer must be one of the documented statuses, with a body that has
//! the documented required fields (and no undocumented ones where the schema
//! is closed).
//!
//! And without a cluster: each document lists every route its router
//! serves (read from the routers' source), except the internal routes each
//! service declares, so a new route cannot be left out of it.

// The test holds the cluster lock for its whole run on purpose (see
// tests/sequencer.rs).
#![allow(clippy::await_holding_lock)]

use std::collections::{BTreeMap, BTreeSet};
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
        let generated = if url == &sequencer {
            api::openapi::SEQUENCER
        } else {
            api::openapi::LEARNER
        };
        assert_eq!(
            document,
            serde_json::from_str::<Value>(generated).expect("JSON"),
            "{url} serves another document than the generated one"
        );
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

/// The answer's status must be documented, with its documented headers, and
/// a JSON body must carry the schema's required fields; returns the body.
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
    for header in documented["headers"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(h, _)| h)
    {
        assert!(
            answer.headers().contains_key(header.as_str()),
            "{path} {status}: the documented header {header} is missing"
        );
    }
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

/// The path constants of `api::routes`, by name: `pub const NAME: &str = "PATH";`.
fn route_constants() -> BTreeMap<String, String> {
    let path = format!("{}/../crates/api/src/routes.rs", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.lines()
        .filter_map(|line| line.trim().strip_prefix("pub const "))
        .filter_map(|rest| {
            let (name, value) = rest.split_once(": &str = \"")?;
            let (value, _) = value.split_once('"')?;
            Some((name.to_owned(), value.to_owned()))
        })
        .collect()
}

/// The path a `.route(` call registers, a literal or an `api::routes`
/// constant, and the source after it.
fn route_path<'a>(file: &str, source: &'a str, constants: &BTreeMap<String, String>) -> (String, &'a str) {
    if let Some(literal) = source.strip_prefix('"') {
        let (route, after) = literal.split_once('"').expect("a closed literal");
        return (route.to_owned(), after);
    }
    let end = source
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(source.len());
    let (name, after) = source.split_at(end);
    let constant = name
        .strip_prefix("api::")
        .unwrap_or(name)
        .strip_prefix("routes::");
    match constant.and_then(|constant| constants.get(constant)) {
        Some(route) => (route.clone(), after),
        None => panic!(
            "{file}: a route whose path is neither a literal nor an api::routes constant: {}",
            &source[..source.len().min(80)]
        ),
    }
}

/// Every `(method, path)` a router built from these source files serves:
/// each `.route("PATH", get(..).post(..))` call, comments left out.
fn routes_in_source(files: &[&str]) -> BTreeSet<(String, String)> {
    const METHODS: [&str; 7] = ["get", "post", "put", "delete", "patch", "head", "options"];
    let constants = route_constants();
    let mut routes = BTreeSet::new();
    for file in files {
        let path = format!("{}/../{file}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let code: String = text
            .lines()
            .filter(|line| !line.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let mut rest = code.as_str();
        while let Some(at) = rest.find(".route(") {
            rest = &rest[at + ".route(".len()..];
            let (route, after) = route_path(file, rest.trim_start(), &constants);
            // The method router: up to the parenthesis that closes `.route(`.
            let mut depth = 1;
            let end = after
                .char_indices()
                .find(|(_, c)| {
                    depth += match c {
                        '(' => 1,
                        ')' => -1,
                        _ => 0,
                    };
                    depth == 0
                })
                .map_or(after.len(), |(i, _)| i);
            let methods = &after[..end];
            let mut found = false;
            for (i, _) in methods.match_indices('(') {
                let word_start = methods[..i]
                    .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .map_or(0, |j| j + 1);
                let word = &methods[word_start..i];
                if METHODS.contains(&word) {
                    routes.insert((word.to_uppercase(), route.to_owned()));
                    found = true;
                }
            }
            assert!(found, "{file}: no method found for {route}: {methods}");
        }
    }
    routes
}

fn documented(document: &str) -> BTreeSet<(String, String)> {
    let document: Value = serde_json::from_str(document).expect("the document is JSON");
    assert_eq!(document["openapi"], "3.1.0");
    let mut routes = BTreeSet::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("a path item") {
            if operation.get("responses").is_some() {
                routes.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    routes
}

/// Every `$ref` of the document names a component it holds.
fn refs_resolve(document: &str) {
    fn walk(value: &Value, root: &Value) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(reference)) = map.get("$ref") {
                    let target = reference
                        .strip_prefix('#')
                        .and_then(|pointer| root.pointer(pointer));
                    assert!(target.is_some(), "{reference} does not resolve");
                }
                map.values().for_each(|v| walk(v, root));
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, root)),
            _ => {}
        }
    }
    let root: Value = serde_json::from_str(document).expect("JSON");
    walk(&root, &root);
}

#[test]
fn every_route_the_routers_serve_is_documented_or_declared_internal() {
    let health = "crates/service/src/health.rs";
    let services = [
        (
            "sequencer",
            routes_in_source(&["crates/sequencer/src/http.rs", health]),
            api::openapi::SEQUENCER,
            api::openapi::SEQUENCER_INTERNAL_ROUTES,
        ),
        (
            "learner",
            routes_in_source(&["crates/learner/src/http.rs", "crates/learner/src/lib.rs", health]),
            api::openapi::LEARNER,
            api::openapi::LEARNER_INTERNAL_ROUTES,
        ),
    ];
    for (name, served, document, internal) in services {
        refs_resolve(document);
        let documented = documented(document);
        let internal: BTreeSet<(String, String)> = internal
            .iter()
            .map(|(method, path)| ((*method).to_owned(), (*path).to_owned()))
            .collect();
        assert!(
            served.len() > internal.len(),
            "{name}: no routes found: {served:?}"
        );
        for route in &served {
            assert!(
                documented.contains(route) || internal.contains(route),
                "{name}: {route:?} is served but neither in its OpenAPI document nor declared internal"
            );
        }
        for route in documented.iter().chain(&internal) {
            assert!(
                served.contains(route),
                "{name}: {route:?} is documented or declared but not served"
            );
        }
        for route in &internal {
            assert!(
                !documented.contains(route),
                "{name}: internal {route:?} is in the public document"
            );
        }
        println!(
            "{name}: {} routes served, {} documented, {} internal",
            served.len(),
            documented.len(),
            internal.len()
        );
    }
}
