//! Restarts, the data dir's identity, the probes and metrics, and joining. Over the real router and RocksDB (see `support`).

mod support;

use support::*;

#[tokio::test]
async fn everything_acknowledged_survives_a_restart() {
    let mut h = seeded().await;
    h.post("/v1/learners/l1/progress", json!({ "learned_below": 0 }))
        .await;
    let mut before = h.observable_state().await;
    h.restart().await;
    let mut after = h.observable_state().await;
    // The leader last heard is memory only: a restarted acceptor waits to hear it again.
    before["status"]["leader"] = Value::Null;
    assert_eq!(after["status"]["leader"], Value::Null);
    after["status"]["leader"] = Value::Null;
    assert_eq!(after, before);
    let stale = h
        .post("/v1/prepare", json!({ "ballot": ballot(2, 1), "from": 0 }))
        .await
        .ok();
    assert_eq!(stale["outcome"], "rejected", "the promise survived");
}

#[tokio::test]
async fn a_data_dir_of_another_cluster_is_refused() {
    let mut h = Harness::new(|_| {}).await;
    h.started.take().expect("running").stop().await;
    let mut other = Config::new("127.0.0.1:0", h.dir.path());
    other.common.cluster_id = "other".to_owned();
    let error = start(&other).err().expect("refused").to_string();
    assert!(
        error.contains("\"paxid\"") && error.contains("\"other\""),
        "{error}"
    );
    h.config.common.cluster_id = "paxid".to_owned();
    h.restart().await;
}

#[tokio::test]
async fn probes_and_metrics_answer() {
    let h = seeded().await;
    assert_eq!(h.get("/livez").await.ok(), json!({ "status": "live" }));
    assert_eq!(h.get("/healthz").await.ok(), json!({ "status": "live" }));
    assert_eq!(h.get("/readyz").await.ok(), json!({ "status": "ready" }));
    let metrics = h.metrics().await;
    for name in [
        "paxid_acceptor_fsync_seconds_bucket",
        "paxid_acceptor_write_batch_steps",
        "paxid_acceptor_promised_round",
        "paxid_acceptor_epoch",
        "paxid_acceptor_chosen_below",
        "paxid_acceptor_compacted_below",
        "paxid_http_requests_total{route=\"/v1/accept\",method=\"POST\",status=\"200\"}",
    ] {
        assert!(metrics.contains(name), "{name} missing from\n{metrics}");
    }
}

#[tokio::test]
async fn readyz_fails_once_the_driver_has_stopped() {
    let mut h = Harness::new(|_| {}).await;
    let app = h.app.clone();
    h.started.take().expect("running").stop().await;
    let response = app
        .oneshot(Request::get("/readyz").body(Body::empty()).expect("request"))
        .await
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    h.restart().await;
}

#[tokio::test]
async fn a_blank_acceptor_refuses_votes_and_is_not_ready_until_it_joins() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = Config::new("127.0.0.1:0", dir.path());
    let started = start(&config).expect("start");
    let app = app(started.state.clone());
    let call = |method: Method, uri: &str, body: Option<Value>| {
        let app = app.clone();
        let mut request = Request::builder().method(method).uri(uri);
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
            .expect("request");
        async move { app.oneshot(request).await.expect("infallible") }
    };
    let prepare = json!({ "ballot": ballot(1, 1), "from": 0 });
    let refused = call(Method::POST, "/v1/prepare", Some(prepare.clone())).await;
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body = axum::body::to_bytes(refused.into_body(), usize::MAX)
        .await
        .expect("body");
    let problem: api::problem::Problem = serde_json::from_slice(&body).expect("a problem");
    assert_eq!(problem.type_, api::problem::NOT_VOTING);
    let accept = accept_body(ballot(1, 1), 0, &[(0, alloc("default", 1, 1))]);
    assert_eq!(
        call(Method::POST, "/v1/accept", Some(accept)).await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(call(Method::GET, "/livez", None).await.status(), StatusCode::OK);
    assert_eq!(
        call(Method::GET, "/readyz", None).await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    // Not a member of the membership offered: refused, still blank.
    let stranger = json!({ "membership": { "members": ["00000000-0000-4000-8000-000000000009"] } });
    assert_eq!(
        call(Method::POST, "/v1/join", Some(stranger)).await.status(),
        StatusCode::CONFLICT
    );
    let me = started.state.identity.node_uuid.clone();
    let join = json!({ "membership": { "members": [me] } });
    assert_eq!(
        call(Method::POST, "/v1/join", Some(join)).await.status(),
        StatusCode::OK
    );
    assert_eq!(call(Method::GET, "/readyz", None).await.status(), StatusCode::OK);
    assert_eq!(
        call(Method::POST, "/v1/prepare", Some(prepare)).await.status(),
        StatusCode::OK
    );
    started.stop().await;
}
