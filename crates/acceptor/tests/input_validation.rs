//! Tokens, bad bodies, limits, unknown routes and other clusters: refused, and nothing changes. Over the real router and RocksDB (see `support`).

mod support;

use support::*;

#[tokio::test]
async fn every_internal_endpoint_requires_the_token_when_set() {
    let h = seeded().await;
    let before = h.observable_state().await;
    let calls = [
        (
            Method::POST,
            "/v1/prepare",
            json!({ "ballot": ballot(9, 9), "from": 0 }).to_string(),
        ),
        (
            Method::POST,
            "/v1/accept",
            accept_body(ballot(9, 9), 0, &[(7, json!({"kind":"noop"}))]).to_string(),
        ),
        (
            Method::POST,
            "/v1/commit",
            json!({ "ballot": ballot(9, 9), "chosen_below": 3, "leader_url": LEADER }).to_string(),
        ),
        (Method::GET, "/v1/log", String::new()),
        (Method::GET, "/v1/status", String::new()),
        (Method::GET, "/v1/snapshot", String::new()),
        (
            Method::POST,
            "/v1/learners/l1/progress",
            json!({ "learned_below": 3 }).to_string(),
        ),
        (
            Method::POST,
            "/v1/transition",
            transition_body(configuration(1, &[&h.uuid()]), 0, json!({})).to_string(),
        ),
        (Method::GET, "/v1/transition", String::new()),
    ];
    for (method, uri, body) in calls {
        for authorization in [None, Some("Bearer wrong"), Some("Basic dDBrZW4=")] {
            let mut request = Request::builder().method(method.clone()).uri(uri);
            request = request.header(header::CONTENT_TYPE, "application/json");
            if let Some(value) = authorization {
                request = request.header(header::AUTHORIZATION, value);
            }
            let answer = h
                .send(request.body(Body::from(body.clone())).expect("request"))
                .await;
            answer.assert_problem(StatusCode::UNAUTHORIZED, api::problem::UNAUTHORIZED);
        }
    }
    assert_eq!(h.observable_state().await, before);
    // Probes and metrics are for the platform, not for peers: no token.
    for uri in ["/livez", "/healthz", "/readyz", "/metrics"] {
        let answer = h
            .send(Request::get(uri).body(Body::empty()).expect("request"))
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{uri}");
    }
}

#[tokio::test]
async fn without_a_token_internal_endpoints_are_open() {
    let h = Harness::new(|_| {}).await;
    assert_eq!(h.get("/v1/status").await.status, StatusCode::OK);
}

#[tokio::test]
async fn bad_bodies_are_problems_and_change_nothing() {
    let h = seeded().await;
    let before = h.observable_state().await;
    let unprocessable = [
        ("/v1/prepare", json!({ "ballot": ballot(9, 1) })),
        (
            "/v1/prepare",
            json!({ "ballot": { "round": "nine", "node": 1 }, "from": 0 }),
        ),
        (
            "/v1/prepare",
            json!({ "ballot": ballot(9, 1), "from": 0, "extra": 1 }),
        ),
        (
            "/v1/prepare",
            json!({ "ballot": { "round": 9, "node": 4294967296u64 }, "from": 0 }),
        ),
        (
            "/v1/accept",
            accept_body(ballot(9, 1), 0, &[(7, alloc("a b", 1, 1))]),
        ),
        (
            "/v1/accept",
            accept_body(ballot(9, 1), 0, &[(7, alloc("", 1, 1))]),
        ),
        (
            "/v1/accept",
            accept_body(ballot(9, 1), 0, &[(7, alloc("default", 1, 0))]),
        ),
        (
            "/v1/accept",
            accept_body(ballot(9, 1), 0, &[(7, alloc("default", u64::MAX, 1))]),
        ),
        (
            "/v1/accept",
            accept_body(ballot(9, 1), 0, &[(u64::MAX, json!({ "kind": "noop" }))]),
        ),
        (
            "/v1/accept",
            accept_body(
                ballot(9, 1),
                0,
                &[(7, json!({ "kind": "noop" })), (7, json!({ "kind": "noop" }))],
            ),
        ),
        (
            "/v1/accept",
            accept_body(ballot(9, 1), 0, &[(7, json!({ "kind": "maybe" }))]),
        ),
        (
            "/v1/accept",
            json!({ "ballot": ballot(9, 1), "chosen_below": 0, "proposals": [], "leader_url": "ftp://x" }),
        ),
        (
            "/v1/accept",
            json!({ "ballot": ballot(9, 1), "chosen_below": 0, "proposals": {} }),
        ),
        ("/v1/commit", json!({ "ballot": ballot(9, 1), "chosen_below": 3 })),
        (
            "/v1/commit",
            json!({ "ballot": ballot(9, 1), "chosen_below": 3, "leader_url": "not a url" }),
        ),
        (
            "/v1/commit",
            json!({ "ballot": ballot(9, 1), "chosen_below": 3, "leader_url": LEADER, "snapshot": { "below": 9, "counters": { "bad name": 3 } } }),
        ),
    ];
    for (uri, body) in unprocessable {
        let answer = h.post(uri, body.clone()).await;
        assert_eq!(
            answer.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{uri} {body}: {}",
            String::from_utf8_lossy(&answer.body)
        );
        answer.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, api::problem::INVALID_REQUEST);
    }
    for uri in [
        "/v1/prepare",
        "/v1/accept",
        "/v1/commit",
        "/v1/learners/l1/progress",
    ] {
        h.post_raw(uri, "{]")
            .await
            .assert_problem(StatusCode::BAD_REQUEST, api::problem::MALFORMED_JSON);
        let request = h
            .request(Method::POST, uri)
            .header(header::CONTENT_TYPE, "text/plain");
        let answer = h.send(request.body(Body::from("{}")).expect("request")).await;
        answer.assert_problem(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            api::problem::UNSUPPORTED_MEDIA_TYPE,
        );
    }
    assert_eq!(h.observable_state().await, before);
    assert!(h
        .metrics()
        .await
        .contains("paxid_acceptor_rejections_total{reason=\"invalid_request\"}"));
}

#[tokio::test]
async fn a_body_over_the_limit_is_413_and_changes_nothing() {
    let h = Harness::new(|c| c.common.body_limit_bytes = 4096).await;
    let before = h.observable_state().await;
    let slots: Vec<(u64, Value)> = (0..200).map(|s| (s, alloc("default", s + 1, 1))).collect();
    let answer = h.post("/v1/accept", accept_body(ballot(1, 1), 0, &slots)).await;
    answer.assert_problem(StatusCode::PAYLOAD_TOO_LARGE, api::problem::PAYLOAD_TOO_LARGE);
    assert_eq!(h.observable_state().await, before);
}

#[tokio::test]
async fn the_default_body_limit_takes_a_large_accept() {
    let h = Harness::new(|_| {}).await;
    let slots: Vec<(u64, Value)> = (0..20_000).map(|s| (s, alloc("default", s + 1, 1))).collect();
    let answer = h
        .post("/v1/accept", accept_body(ballot(1, 1), 0, &slots))
        .await
        .ok();
    assert_eq!(answer["outcome"], "accepted");
    assert_eq!(h.status().await["log_entries"], 20_000);
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problems() {
    let h = Harness::new(|_| {}).await;
    h.get("/v1/nope")
        .await
        .assert_problem(StatusCode::NOT_FOUND, api::problem::NOT_FOUND);
    h.get("/v1/accept")
        .await
        .assert_problem(StatusCode::METHOD_NOT_ALLOWED, api::problem::METHOD_NOT_ALLOWED);
}

/// Issue 11: a sequencer or learner of another cluster pointed at this
/// acceptor gets nothing from it (so it never counts it); callers that name
/// no cluster, or this one, are served.
#[tokio::test]
async fn callers_naming_another_cluster_are_refused_and_change_nothing() {
    let h = seeded().await;
    let before = h.observable_state().await;
    let prepare = json!({ "ballot": ballot(9, 1), "from": 0 });
    let response = h
        .app
        .clone()
        .oneshot(
            Request::post("/v1/prepare")
                .header("authorization", format!("Bearer {TOKEN}"))
                .header("content-type", "application/json")
                .header(api::CLUSTER_ID_HEADER, "other")
                .body(Body::from(prepare.to_string()))
                .expect("request"),
        )
        .await
        .expect("response");
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    let problem: Value = serde_json::from_slice(&body).expect("problem");
    assert_eq!(problem["type"], api::problem::WRONG_CLUSTER, "{problem}");
    assert!(problem["detail"].as_str().expect("detail").contains("\"other\""));
    assert_eq!(h.observable_state().await, before, "nothing changed");
    // Naming this cluster, or none, is served.
    let response = h
        .app
        .clone()
        .oneshot(
            Request::get("/v1/status")
                .header("authorization", format!("Bearer {TOKEN}"))
                .header(api::CLUSTER_ID_HEADER, "paxid")
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("response");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(h.status().await["cluster_id"], "paxid");
}
