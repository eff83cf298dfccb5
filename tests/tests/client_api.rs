//! The client API's contract on a real cluster: answers, errors, and that
//! bad input never consumes an ID.

// Each test holds the cluster lock for its whole run on purpose: tests run
// on separate threads with separate runtimes, so a std mutex is right here.
#![allow(clippy::await_holding_lock)]

use std::time::Duration;

use paxid_tests::{serial, Cluster, ClusterSpec};
use serde_json::Value;

async fn next_id(http: &reqwest::Client, url: &str, body: Option<&str>) -> (u16, Option<String>, Value) {
    let mut request = http.post(format!("{url}/next-id"));
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_owned());
    }
    let response = request.send().await.expect("sequencer answers");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap_or("").to_owned());
    let json = response.json().await.unwrap_or(Value::Null);
    (status, content_type, json)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_and_problems_follow_the_contract() {
    let _serial = serial();
    let spec = ClusterSpec {
        sequencers: 2,
        sequencer_args: vec!["--count-max".into(), "1000".into()],
        ..ClusterSpec::default()
    };
    let mut cluster = Cluster::start(spec);
    cluster.wait_serving(Duration::from_secs(20)).await;
    let http = cluster.http.clone();
    let url = cluster.sequencer_urls()[0].clone();

    let (status, _, first) = next_id(&http, &url, None).await;
    assert_eq!(status, 200);
    assert_eq!(first["count"], 1);
    assert_eq!(first["sequence"], "default");
    let first_id = first["id"].as_u64().expect("id");

    let bad: &[(&str, Option<&str>, u16)] = &[
        ("malformed JSON", Some("{\"count\": "), 400),
        ("not an object", Some("[1,2]"), 422),
        ("count as string", Some(r#"{"count": "5"}"#), 422),
        ("negative count", Some(r#"{"count": -1}"#), 422),
        ("zero count", Some(r#"{"count": 0}"#), 422),
        ("count above the maximum", Some(r#"{"count": 1001}"#), 422),
        ("fractional count", Some(r#"{"count": 1.5}"#), 422),
        ("unknown field", Some(r#"{"cuont": 1}"#), 422),
        ("empty sequence", Some(r#"{"sequence": ""}"#), 422),
        ("sequence with a space", Some(r#"{"sequence": "a b"}"#), 422),
        (
            "sequence too long",
            Some(&*Box::leak(
                format!(r#"{{"sequence": "{}"}}"#, "x".repeat(65)).into_boxed_str(),
            )),
            422,
        ),
        ("sequence not a string", Some(r#"{"sequence": 5}"#), 422),
        ("null", Some("null"), 422),
    ];
    for (what, body, expected) in bad {
        let (status, content_type, problem) = next_id(&http, &url, *body).await;
        assert_eq!(status, *expected, "{what}: {problem}");
        assert_eq!(
            content_type.as_deref(),
            Some("application/problem+json"),
            "{what}"
        );
        assert!(
            problem["type"].as_str().is_some_and(|t| !t.is_empty()),
            "{what}: {problem}"
        );
        assert_eq!(problem["status"], *expected, "{what}");
    }

    // Wrong content type, oversized body, wrong method, unknown route.
    let response = http
        .post(format!("{url}/next-id"))
        .header("content-type", "text/plain")
        .body("count=1")
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status(), 415);
    let huge = format!(r#"{{"sequence": "{}"}}"#, "y".repeat(200_000));
    let response = http
        .post(format!("{url}/next-id"))
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status(), 413);
    let response = http.get(format!("{url}/next-id")).send().await.expect("answer");
    assert_eq!(response.status(), 405);
    let response = http
        .post(format!("{url}/no-such-thing"))
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status(), 404);
    // A malformed Idempotency-Key is refused, at the leader and through a
    // follower: empty, too long, not visible ASCII, sent twice.
    let too_long = "k".repeat(256);
    let bad_keys: [&[&[u8]]; 5] = [
        &[b""],
        &[too_long.as_bytes()],
        &[b"a b"],
        &[b"caf\xc3\xa9"],
        &[b"a", b"b"],
    ];
    for replica in cluster.sequencer_urls() {
        for keys in bad_keys {
            let mut request = http.post(format!("{replica}/next-id"));
            for key in keys {
                let value = reqwest::header::HeaderValue::from_bytes(key).expect("a header value");
                request = request.header("idempotency-key", value);
            }
            let response = request.send().await.expect("answer");
            assert_eq!(response.status(), 422, "{replica} {keys:?}");
            let problem: Value = response.json().await.expect("problem");
            assert_eq!(problem["field"], "idempotency-key", "{problem}");
        }
    }

    // Nothing above consumed an ID.
    let (status, _, next) = next_id(&http, &url, Some("{}")).await;
    assert_eq!(status, 200);
    assert_eq!(
        next["id"].as_u64(),
        Some(first_id + 1),
        "rejected requests must not consume IDs"
    );

    // Counts and named sequences.
    let (_, _, block) = next_id(&http, &url, Some(r#"{"count": 1000, "sequence": "orders"}"#)).await;
    assert_eq!(
        (
            block["id"].as_u64(),
            block["count"].as_u64(),
            block["sequence"].as_str()
        ),
        (Some(1), Some(1000), Some("orders"))
    );
    let (_, _, after) = next_id(&http, &url, Some(r#"{"sequence": "orders"}"#)).await;
    assert_eq!(after["id"].as_u64(), Some(1001));

    // The follower forwards to the leader.
    let other = cluster.sequencer_urls()[1].clone();
    let (status, _, forwarded) = next_id(&http, &other, None).await;
    assert_eq!(status, 200, "{forwarded}");
    assert_eq!(forwarded["id"].as_u64(), Some(first_id + 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_endpoints_require_the_cluster_token() {
    let _serial = serial();
    let spec = ClusterSpec {
        sequencers: 1,
        cluster_token: Some("s3cret-token".into()),
        ..ClusterSpec::default()
    };
    let mut cluster = Cluster::start(spec);
    cluster.wait_serving(Duration::from_secs(20)).await;
    let http = cluster.http.clone();
    for url in cluster
        .acceptor_urls()
        .iter()
        .chain(cluster.sequencer_urls().iter())
    {
        let response = http.get(format!("{url}/v1/status")).send().await.expect("answer");
        assert_eq!(response.status(), 401, "{url}/v1/status without a token");
        let response = http
            .get(format!("{url}/v1/status"))
            .bearer_auth("wrong")
            .send()
            .await
            .expect("answer");
        assert_eq!(response.status(), 401, "{url}/v1/status with a wrong token");
        let response = http
            .get(format!("{url}/v1/status"))
            .bearer_auth("s3cret-token")
            .send()
            .await
            .expect("answer");
        assert_eq!(response.status(), 200, "{url}/v1/status with the token");
        for probe in ["/livez", "/healthz", "/readyz", "/metrics"] {
            let response = http.get(format!("{url}{probe}")).send().await.expect("answer");
            assert_eq!(response.status(), 200, "{url}{probe} needs no token");
        }
    }
    let forged = http
        .post(format!("{}/v1/prepare", cluster.acceptor_urls()[0]))
        .json(&serde_json::json!({"ballot": {"round": 999, "node": 9}, "from": 0}))
        .send()
        .await
        .expect("answer");
    assert_eq!(forged.status(), 401);
}

/// Issue 15, scoped credentials: with `--client-token` (a list, for
/// rotation) and `--client-token-file` (re-read when it changes), `POST
/// /next-id` needs one of those tokens, through any replica (a follower
/// forwards the caller's credential); the cluster token is no client token,
/// and a client token opens no internal route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn next_id_takes_only_client_tokens_and_a_rotated_file_takes_effect() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("client-tokens");
    std::fs::write(&file, "from-file-1\n").expect("write");
    let spec = ClusterSpec {
        sequencers: 2,
        cluster_token: Some("internal".into()),
        sequencer_args: vec![
            "--client-token".into(),
            "c-new,c-old".into(),
            "--client-token-file".into(),
            file.to_str().expect("utf-8").into(),
        ],
        ..ClusterSpec::default()
    };
    let cluster = Cluster::start(spec);
    let http = cluster.http.clone();
    let call = |url: String, token: Option<&'static str>| {
        let mut request = http.post(format!("{url}/next-id"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        async move { request.send().await.map(|r| r.status().as_u16()).unwrap_or(0) }
    };
    // Serving: every replica answers a caller with a client token.
    let started = std::time::Instant::now();
    for url in cluster.sequencer_urls() {
        while call(url.clone(), Some("c-new")).await != 200 {
            assert!(started.elapsed() < Duration::from_secs(20), "{}", cluster.logs());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    for url in cluster.sequencer_urls() {
        assert_eq!(call(url.clone(), None).await, 401, "no token");
        assert_eq!(
            call(url.clone(), Some("internal")).await,
            401,
            "the cluster token"
        );
        for token in ["c-new", "c-old", "from-file-1"] {
            assert_eq!(call(url.clone(), Some(token)).await, 200, "{token}");
        }
        let status = http
            .get(format!("{url}/v1/status"))
            .bearer_auth("c-new")
            .send()
            .await
            .expect("status");
        assert_eq!(status.status(), 401, "a client token opens no internal route");
    }
    // The mounted Secret is rotated: the file's new token works within
    // seconds, the one it replaced no longer does; no restart.
    std::fs::write(&file, "from-file-2,from-file-3\n").expect("rotate");
    let url = cluster.sequencer_urls()[1].clone();
    let started = std::time::Instant::now();
    while call(url.clone(), Some("from-file-2")).await != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the rotated file was not read"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let leader = cluster.sequencer_urls()[0].clone();
    let started = std::time::Instant::now();
    while call(leader.clone(), Some("from-file-1")).await != 401 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the old file token still works"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(call(leader, Some("from-file-3")).await, 200);
}

/// `--sequences` closes the set of names: a client cannot use up
/// `--sequences-max` with random names. Any other valid name gets 422 and
/// creates nothing: with `--sequences-max 3`, `default` and the two listed
/// names still serve after the refused ones (through a follower too).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequences_outside_the_configured_list_are_refused_and_create_nothing() {
    let _serial = serial();
    let spec = ClusterSpec {
        sequencers: 2,
        sequencer_args: vec![
            "--sequences".into(),
            "orders,users.v2".into(),
            "--sequences-max".into(),
            "3".into(),
        ],
        ..ClusterSpec::default()
    };
    let mut cluster = Cluster::start(spec);
    cluster.wait_serving(Duration::from_secs(20)).await;
    let http = cluster.http.clone();
    for url in cluster.sequencer_urls() {
        for name in ["x1", "orders2", "Orders", "random-9f3a"] {
            let body = format!(r#"{{"sequence": "{name}"}}"#);
            let (status, content_type, problem) = next_id(&http, &url, Some(&body)).await;
            assert_eq!(status, 422, "{name} at {url}: {problem}");
            assert_eq!(content_type.as_deref(), Some("application/problem+json"));
            assert_eq!(problem["field"], "sequence", "{problem}");
        }
    }
    for (i, url) in cluster.sequencer_urls().iter().enumerate() {
        for (body, name) in [
            (None, "default"),
            (Some(r#"{"sequence": "orders"}"#), "orders"),
            (Some(r#"{"sequence": "users.v2"}"#), "users.v2"),
        ] {
            let (status, _, answer) = next_id(&http, url, body).await;
            assert_eq!(status, 200, "{name} at {url}: {answer}");
            assert_eq!(answer["sequence"], name);
            assert!(answer["id"].as_u64() > Some(i as u64), "{answer}");
        }
    }
}
