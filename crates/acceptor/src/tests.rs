//! Service tests: the real router from [`app`] over a real RocksDB in a
//! temp dir, driven with `oneshot`.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{self as http_types, header, Method, Request, StatusCode};
use axum::Router;
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::*;

const TOKEN: &str = "t0ken";
const LEADER: &str = "http://10.0.0.7:7000";

struct Answer {
    status: StatusCode,
    content_type: Option<String>,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&self.body)))
    }

    fn ok(&self) -> Value {
        assert_eq!(
            self.status,
            StatusCode::OK,
            "{}",
            String::from_utf8_lossy(&self.body)
        );
        self.json()
    }

    fn assert_problem(&self, status: StatusCode, type_: &str) {
        assert_eq!(self.status, status, "{}", String::from_utf8_lossy(&self.body));
        assert_eq!(self.content_type.as_deref(), Some(api::problem::CONTENT_TYPE));
        let problem: api::problem::Problem = serde_json::from_slice(&self.body).expect("a problem body");
        assert_eq!(problem.type_, type_, "{problem:?}");
        assert_eq!(problem.status, status.as_u16());
    }
}

struct Harness {
    dir: tempfile::TempDir,
    config: Config,
    started: Option<Started>,
    app: Router,
}

impl Harness {
    async fn new(configure: impl FnOnce(&mut Config)) -> Harness {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config::new("127.0.0.1:0", dir.path());
        // The compaction tests count slots in tens; the one that checks the
        // window of keys sets it.
        config.key_window_slots = 0;
        configure(&mut config);
        let started = start(&config).expect("start");
        let app = app(started.state.clone());
        let harness = Harness {
            dir,
            config,
            started: Some(started),
            app,
        };
        harness.found_alone().await;
        harness
    }

    /// A new acceptor is blank and never votes: found a one-acceptor cluster.
    async fn found_alone(&self) {
        let uuid = self
            .started
            .as_ref()
            .expect("started")
            .state
            .identity
            .node_uuid
            .clone();
        self.post("/v1/join", json!({ "membership": { "members": [uuid] } }))
            .await
            .ok();
    }

    async fn with_token() -> Harness {
        Harness::new(|c| c.common.cluster_token = Some(TOKEN.to_owned())).await
    }

    /// Stops the acceptor (closing RocksDB) and starts it again on the same dir.
    async fn restart(&mut self) {
        if let Some(started) = self.started.take() {
            started.stop().await;
        }
        let started = start(&self.config).expect("restart");
        self.app = app(started.state.clone());
        self.started = Some(started);
    }

    async fn send(&self, request: Request<Body>) -> Answer {
        let response = self.app.clone().oneshot(request).await.expect("infallible");
        let (parts, body) = response.into_parts();
        let body = axum::body::to_bytes(body, usize::MAX).await.expect("body");
        let content_type = parts
            .headers
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().expect("ascii").to_owned());
        Answer {
            status: parts.status,
            content_type,
            body: body.to_vec(),
        }
    }

    fn request(&self, method: Method, uri: &str) -> http_types::request::Builder {
        let mut builder = Request::builder().method(method).uri(uri);
        if let Some(token) = &self.config.common.cluster_token {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        builder
    }

    async fn post_raw(&self, uri: &str, body: impl Into<Body>) -> Answer {
        let request = self
            .request(Method::POST, uri)
            .header(header::CONTENT_TYPE, "application/json");
        self.send(request.body(body.into()).expect("request")).await
    }

    async fn post(&self, uri: &str, body: Value) -> Answer {
        self.post_raw(uri, body.to_string()).await
    }

    async fn get(&self, uri: &str) -> Answer {
        self.send(
            self.request(Method::GET, uri)
                .body(Body::empty())
                .expect("request"),
        )
        .await
    }

    async fn status(&self) -> Value {
        self.get("/v1/status").await.ok()
    }

    /// Status and the whole log, without the clock-dependent field.
    async fn observable_state(&self) -> Value {
        let mut status = self.status().await;
        if let Some(leader) = status.get_mut("leader").and_then(Value::as_object_mut) {
            leader.remove("heard_ago_ms");
        }
        let log = self.get("/v1/log?from=0&limit=10000").await.ok();
        json!({ "status": status, "log": log })
    }

    async fn metrics(&self) -> String {
        let answer = self.get("/metrics").await;
        assert_eq!(answer.status, StatusCode::OK);
        String::from_utf8(answer.body).expect("utf-8")
    }
}

fn ballot(round: u64, node: u32) -> Value {
    json!({ "round": round, "node": node })
}

fn alloc(sequence: &str, id: u64, count: u64) -> Value {
    json!({ "kind": "allocations", "allocations": [{ "sequence": sequence, "id": id, "count": count }] })
}

fn accept_body(b: Value, chosen_below: u64, slots: &[(u64, Value)]) -> Value {
    let proposals: Vec<Value> = slots
        .iter()
        .map(|(slot, value)| json!({ "slot": slot, "value": value }))
        .collect();
    json!({ "ballot": b, "chosen_below": chosen_below, "proposals": proposals, "leader_url": LEADER })
}

/// A state worth protecting: a promise, three accepted slots, one chosen.
async fn seeded() -> Harness {
    let h = Harness::with_token().await;
    h.post("/v1/prepare", json!({ "ballot": ballot(2, 1), "from": 0 }))
        .await
        .ok();
    let slots = [
        (0, alloc("default", 1, 5)),
        (1, alloc("orders", 1, 2)),
        (2, json!({ "kind": "noop" })),
    ];
    h.post("/v1/accept", accept_body(ballot(2, 1), 0, &slots))
        .await
        .ok();
    h.post(
        "/v1/commit",
        json!({ "ballot": ballot(2, 1), "chosen_below": 1, "leader_url": LEADER }),
    )
    .await
    .ok();
    h
}

async fn wait_for(h: &Harness, what: &str, mut done: impl FnMut(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = h.status().await;
        if done(&status) {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {status}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn prepare_promises_a_higher_ballot_and_rejects_the_rest() {
    let h = Harness::with_token().await;
    let promised = h
        .post("/v1/prepare", json!({ "ballot": ballot(3, 1), "from": 0 }))
        .await
        .ok();
    let me = h
        .started
        .as_ref()
        .expect("started")
        .state
        .identity
        .node_uuid
        .clone();
    let membership = json!({ "members": [me.clone()], "retired": [] });
    assert_eq!(
        promised,
        json!({ "outcome": "promised", "ballot": ballot(3, 1), "member": me, "membership": membership,
                "snapshot": { "below": 0, "counters": {} }, "entries": [] })
    );
    for b in [ballot(3, 1), ballot(2, 9)] {
        let rejected = h
            .post("/v1/prepare", json!({ "ballot": b, "from": 0 }))
            .await
            .ok();
        assert_eq!(
            rejected,
            json!({ "outcome": "rejected", "promised": ballot(3, 1) })
        );
    }
    assert_eq!(h.status().await["promised"], ballot(3, 1));
    assert!(h
        .metrics()
        .await
        .contains("paxid_acceptor_rejections_total{reason=\"prepare_ballot_not_above_promise\"}"));
}

#[tokio::test]
async fn a_promise_reports_accepted_entries_and_the_chosen_snapshot() {
    let h = seeded().await;
    let promise = h
        .post("/v1/prepare", json!({ "ballot": ballot(3, 2), "from": 0 }))
        .await
        .ok();
    assert_eq!(promise["outcome"], "promised");
    assert_eq!(
        promise["snapshot"],
        json!({ "below": 1, "counters": { "default": 6 } })
    );
    let slots: Vec<u64> = promise["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["slot"].as_u64().expect("slot"))
        .collect();
    assert_eq!(slots, vec![1, 2]);
    assert_eq!(promise["entries"][0]["ballot"], ballot(2, 1));
}

#[tokio::test]
async fn accept_stores_many_slots_and_records_the_leader() {
    let h = seeded().await;
    let log = h.get("/v1/log?from=0").await.ok();
    assert_eq!(log["chosen_below"], 1);
    assert_eq!(log["compacted_below"], 0);
    assert_eq!(
        log["entries"][0],
        json!({ "slot": 0, "ballot": ballot(2, 1), "value": alloc("default", 1, 5), "chosen": true })
    );
    assert_eq!(
        log["entries"][2],
        json!({ "slot": 2, "ballot": ballot(2, 1), "value": { "kind": "noop" }, "chosen": false })
    );
    let status = h.status().await;
    assert_eq!(status["leader"]["url"], LEADER);
    assert_eq!(status["leader"]["ballot"], ballot(2, 1));
    assert!(status["leader"]["heard_ago_ms"].as_u64().expect("ms") < 10_000);
    assert_eq!(status["cluster_id"], "paxid");
    assert_eq!(status["node_uuid"].as_str().expect("uuid").len(), 36);
    assert_eq!(status["log_entries"], 3);
}

#[tokio::test]
async fn accept_below_the_promise_is_rejected_and_changes_nothing() {
    let h = seeded().await;
    let before = h.observable_state().await;
    let low = accept_body(ballot(1, 9), 3, &[(5, alloc("default", 100, 1))]);
    let answer = h.post("/v1/accept", low).await.ok();
    assert_eq!(answer, json!({ "outcome": "rejected", "promised": ballot(2, 1) }));
    assert_eq!(h.observable_state().await, before);
}

#[tokio::test]
async fn accept_above_the_promise_raises_it_and_carries_chosen_marks() {
    let h = seeded().await;
    let answer = h
        .post(
            "/v1/accept",
            accept_body(ballot(4, 2), 0, &[(3, alloc("default", 6, 1))]),
        )
        .await
        .ok();
    let me = h.status().await["node_uuid"].clone();
    assert!(me.is_string(), "the status names the acceptor");
    assert_eq!(
        answer,
        json!({ "outcome": "accepted", "chosen_below": 1, "node_uuid": me }),
        "the answer names who voted"
    );
    assert_eq!(h.status().await["promised"], ballot(4, 2));
    let answer = h
        .post(
            "/v1/accept",
            accept_body(
                ballot(4, 2),
                4,
                &[(1, alloc("orders", 1, 2)), (2, json!({"kind":"noop"}))],
            ),
        )
        .await
        .ok();
    assert_eq!(
        answer,
        json!({ "outcome": "accepted", "chosen_below": 4, "node_uuid": me }),
        "slots 1-3 are now of ballot 4.2 and chosen"
    );
}

#[tokio::test]
async fn a_second_value_for_a_slot_is_a_conflict_and_changes_nothing() {
    let h = seeded().await;
    let before = h.observable_state().await;
    let same_ballot = accept_body(ballot(2, 1), 0, &[(1, alloc("orders", 50, 2))]);
    h.post("/v1/accept", same_ballot)
        .await
        .assert_problem(StatusCode::CONFLICT, api::problem::CONFLICT);
    let chosen_slot = accept_body(ballot(5, 1), 0, &[(0, alloc("default", 99, 1))]);
    h.post("/v1/accept", chosen_slot)
        .await
        .assert_problem(StatusCode::CONFLICT, api::problem::CONFLICT);
    assert_eq!(h.observable_state().await, before);
    // Re-sending the same value is an ordinary, idempotent accept.
    let again = accept_body(ballot(2, 1), 0, &[(1, alloc("orders", 1, 2))]);
    assert_eq!(h.post("/v1/accept", again).await.ok()["outcome"], "accepted");
}

#[tokio::test]
async fn commit_marks_chosen_and_is_the_leaders_heartbeat() {
    let h = seeded().await;
    let answer = h
        .post(
            "/v1/commit",
            json!({ "ballot": ballot(2, 1), "chosen_below": 3, "leader_url": "http://seq-1:7000" }),
        )
        .await
        .ok();
    assert_eq!(answer, json!({ "promised": ballot(2, 1), "chosen_below": 3 }));
    assert_eq!(h.status().await["leader"]["url"], "http://seq-1:7000");
    // A deposed leader's heartbeat does not become the leader.
    h.post("/v1/prepare", json!({ "ballot": ballot(3, 2), "from": 3 }))
        .await
        .ok();
    assert_eq!(
        h.status().await["leader"],
        Value::Null,
        "no leader heard under the new promise yet"
    );
    let stale = h
        .post(
            "/v1/commit",
            json!({ "ballot": ballot(2, 1), "chosen_below": 3, "leader_url": LEADER }),
        )
        .await
        .ok();
    assert_eq!(stale["promised"], ballot(3, 2));
    assert_eq!(h.status().await["leader"], Value::Null);
    h.post(
        "/v1/commit",
        json!({ "ballot": ballot(3, 2), "chosen_below": 3, "leader_url": "http://seq-2:7000" }),
    )
    .await
    .ok();
    assert_eq!(h.status().await["leader"]["url"], "http://seq-2:7000");
}

#[tokio::test]
async fn commit_with_a_snapshot_installs_it_on_a_lagging_acceptor() {
    let h = Harness::with_token().await;
    let snapshot = json!({ "below": 50, "counters": { "default": 120 } });
    let body =
        json!({ "ballot": ballot(1, 1), "chosen_below": 50, "snapshot": snapshot, "leader_url": LEADER });
    assert_eq!(h.post("/v1/commit", body).await.ok()["chosen_below"], 50);
    let status = h.status().await;
    assert_eq!(
        (
            status["compacted_below"].as_u64(),
            status["chosen_below"].as_u64()
        ),
        (Some(50), Some(50))
    );
    let promise = h
        .post("/v1/prepare", json!({ "ballot": ballot(2, 1), "from": 0 }))
        .await
        .ok();
    assert_eq!(promise["snapshot"], snapshot);
}

#[tokio::test]
async fn log_pages_from_a_slot_with_a_limit() {
    let h = seeded().await;
    let page = h.get("/v1/log?from=1&limit=1").await.ok();
    let slots: Vec<u64> = page["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["slot"].as_u64().expect("slot"))
        .collect();
    assert_eq!(slots, vec![1]);
    assert_eq!(h.get("/v1/log?from=3").await.ok()["entries"], json!([]));
    assert_eq!(
        h.get("/v1/log").await.ok()["entries"].as_array().map(Vec::len),
        Some(3),
        "from defaults to 0"
    );
    assert_eq!(h.get("/v1/log?limit=10000").await.status, StatusCode::OK);
}

#[tokio::test]
async fn log_queries_out_of_range_or_malformed_are_problems() {
    let h = seeded().await;
    for uri in ["/v1/log?limit=0", "/v1/log?limit=10001"] {
        h.get(uri)
            .await
            .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, api::problem::INVALID_REQUEST);
    }
    for uri in [
        "/v1/log?limit=abc",
        "/v1/log?from=-1",
        "/v1/log?from=18446744073709551616",
        "/v1/log?frm=1",
    ] {
        h.get(uri)
            .await
            .assert_problem(StatusCode::BAD_REQUEST, api::problem::INVALID_REQUEST);
    }
}

#[tokio::test]
async fn learner_progress_drives_compaction_and_retention_bounds_it() {
    let mut h = Harness::new(|c| {
        c.compact_interval_ms = 5;
        c.retain_slots = 1000;
    })
    .await;
    let slots: Vec<(u64, Value)> = (0..10).map(|s| (s, alloc("default", s * 10 + 1, 10))).collect();
    h.post("/v1/accept", accept_body(ballot(1, 1), 10, &slots))
        .await
        .ok();
    assert_eq!(
        h.status().await["compacted_below"],
        0,
        "no learner reported: nothing is dropped"
    );
    let answer = h
        .post("/v1/learners/learner-0/progress", json!({ "learned_below": 6 }))
        .await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);
    let answer = h
        .post("/v1/learners/learner-1/progress", json!({ "learned_below": 8 }))
        .await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);
    let status = wait_for(&h, "compaction to the slowest learner", |s| {
        s["compacted_below"] == 6
    })
    .await;
    assert_eq!(status["log_entries"], 4);
    let log = h.get("/v1/log?from=0").await.ok();
    assert_eq!(
        (
            log["compacted_below"].as_u64(),
            log["entries"][0]["slot"].as_u64()
        ),
        (Some(6), Some(6))
    );
    let snapshot = h.get("/v1/snapshot").await.ok();
    assert_eq!(snapshot, json!({ "below": 6, "counters": { "default": 61 } }));
    let promise = h
        .post("/v1/prepare", json!({ "ballot": ballot(2, 1), "from": 0 }))
        .await
        .ok();
    assert_eq!(
        promise["snapshot"],
        json!({ "below": 10, "counters": { "default": 101 } })
    );

    // After a restart the learners are remembered, and a short retention
    // passes the slowest of them.
    h.config.retain_slots = 3;
    h.restart().await;
    let status = wait_for(&h, "compaction to the retention", |s| s["compacted_below"] == 7).await;
    assert_eq!(status["chosen_below"], 10);
}

#[tokio::test]
async fn compaction_keeps_the_window_of_idempotency_keys_after_every_learner_read_it() {
    let h = Harness::new(|c| {
        c.compact_interval_ms = 5;
        c.key_window_slots = 4;
    })
    .await;
    let slots: Vec<(u64, Value)> = (0..10).map(|s| (s, alloc("default", s * 10 + 1, 10))).collect();
    h.post("/v1/accept", accept_body(ballot(1, 1), 10, &slots))
        .await
        .ok();
    let answer = h
        .post("/v1/learners/learner-0/progress", json!({ "learned_below": 10 }))
        .await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);
    wait_for(&h, "compaction to the window", |s| s["compacted_below"] == 6).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let status = h.status().await;
    assert_eq!(
        (status["compacted_below"].as_u64(), status["log_entries"].as_u64()),
        (Some(6), Some(4)),
        "the last 4 chosen slots stay though the learner read them"
    );
}

#[tokio::test]
async fn learner_ids_and_bodies_are_validated() {
    let h = seeded().await;
    let before = h.observable_state().await;
    let long = format!("/v1/learners/{}/progress", "x".repeat(65));
    for uri in [
        "/v1/learners/a%20b/progress",
        "/v1/learners/%C3%A9/progress",
        long.as_str(),
    ] {
        let answer = h.post(uri, json!({ "learned_below": 1 })).await;
        answer.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, api::problem::INVALID_REQUEST);
    }
    for body in [
        json!({}),
        json!({ "learned_below": -1 }),
        json!({ "learned_below": 1, "x": 1 }),
    ] {
        let answer = h.post("/v1/learners/l1/progress", body).await;
        answer.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, api::problem::INVALID_REQUEST);
    }
    assert_eq!(h.observable_state().await, before);
}

#[tokio::test]
async fn too_many_learners_are_refused() {
    let h = Harness::new(|_| {}).await;
    for i in 0..driver::LEARNERS_MAX {
        let answer = h
            .post(
                &format!("/v1/learners/l{i}/progress"),
                json!({ "learned_below": 0 }),
            )
            .await;
        assert_eq!(answer.status, StatusCode::NO_CONTENT);
    }
    let answer = h
        .post("/v1/learners/one-more/progress", json!({ "learned_below": 0 }))
        .await;
    answer.assert_problem(StatusCode::CONFLICT, api::problem::CONFLICT);
    let known = h
        .post("/v1/learners/l0/progress", json!({ "learned_below": 3 }))
        .await;
    assert_eq!(
        known.status,
        StatusCode::NO_CONTENT,
        "known learners still report"
    );
}

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

/// Issue 12: an acceptor that missed an idle leader's prepare never named
/// that leader (a commit did not raise its promise, and status names a
/// leader only at the promised ballot), so one more acceptor loss caused a
/// needless election. A commit above the promise now raises it.
#[tokio::test]
async fn a_commit_above_the_promise_raises_it_and_names_the_leader() {
    let h = seeded().await;
    let answer = h
        .post(
            "/v1/commit",
            json!({ "ballot": ballot(5, 3), "chosen_below": 1, "leader_url": "http://seq-3:7000" }),
        )
        .await
        .ok();
    assert_eq!(answer["promised"], ballot(5, 3));
    let status = h.status().await;
    assert_eq!(status["promised"], ballot(5, 3));
    assert_eq!(status["leader"]["url"], "http://seq-3:7000", "{status}");
    // The raised promise fences lower ballots, and survives a restart.
    let mut h = h;
    h.restart().await;
    let rejected = h
        .post("/v1/prepare", json!({ "ballot": ballot(5, 2), "from": 0 }))
        .await
        .ok();
    assert_eq!(
        rejected,
        json!({ "outcome": "rejected", "promised": ballot(5, 3) })
    );
}

// ---------------------------------------------------------------------------
// Membership change: the stop sign and `/v1/transition`.

const OTHER: &str = "00000000-0000-4000-8000-0000000000b2";
const STRANGER: &str = "00000000-0000-4000-8000-0000000000c3";

fn epoch_ballot(epoch: u64, round: u64, node: u32) -> Value {
    json!({ "epoch": epoch, "round": round, "node": node })
}

/// Epoch `epoch` with these members, in order, on made-up URLs.
fn configuration(epoch: u64, members: &[&str]) -> Value {
    let seats: Vec<Value> = members
        .iter()
        .enumerate()
        .map(|(i, uuid)| json!({ "url": format!("http://acceptor-{i}:7100"), "node_uuid": uuid }))
        .collect();
    json!({ "epoch": epoch, "seats": seats })
}

fn transition_body(configuration: Value, below: u64, counters: Value) -> Value {
    json!({ "configuration": configuration, "snapshot": { "below": below, "counters": counters } })
}

impl Harness {
    /// A new acceptor that was never founded: blank.
    async fn blank() -> Harness {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = Config::new("127.0.0.1:0", dir.path());
        let started = start(&config).expect("start");
        let app = app(started.state.clone());
        Harness {
            dir,
            config,
            started: Some(started),
            app,
        }
    }

    fn uuid(&self) -> String {
        self.started
            .as_ref()
            .expect("started")
            .state
            .identity
            .node_uuid
            .clone()
    }
}

/// `seeded()` with slots 0 and 1 chosen and a vote at slot 5 too: the
/// stop sign is slot 1, so slots 2 and 5 are the void tail of epoch 0.
async fn seeded_for_transition() -> Harness {
    let h = seeded().await;
    h.post(
        "/v1/accept",
        accept_body(ballot(2, 1), 2, &[(5, alloc("default", 40, 1))]),
    )
    .await
    .ok();
    assert_eq!(h.status().await["chosen_below"], 2);
    h
}

/// Seeded, then moved alone into epoch 1 from the snapshot below slot 2.
async fn moved_to_epoch_1() -> Harness {
    let h = seeded_for_transition().await;
    let me = h.uuid();
    h.post(
        "/v1/transition",
        transition_body(configuration(1, &[&me]), 2, json!({ "default": 6, "orders": 3 })),
    )
    .await
    .ok();
    h
}

#[tokio::test]
async fn a_transition_drops_the_void_tail_and_survives_a_restart() {
    // Slot 1 holds the stop sign; 2 and 5 are the void tail (2 even marked
    // chosen, as an old leader may have left it).
    let mut h = Harness::with_token().await;
    let me = h.uuid();
    let config = configuration(1, &[&me, OTHER]);
    let counters = json!({ "default": 6 });
    h.post("/v1/prepare", json!({ "ballot": ballot(2, 1), "from": 0 }))
        .await
        .ok();
    let slots = [
        (0, alloc("default", 1, 5)),
        (1, json!({ "kind": "reconfigure", "configuration": config })),
        (2, alloc("default", 40, 1)),
        (5, alloc("default", 50, 1)),
    ];
    h.post("/v1/accept", accept_body(ballot(2, 1), 3, &slots))
        .await
        .ok();
    assert_eq!(h.status().await["chosen_below"], 3);
    let answer = h
        .post(
            "/v1/transition",
            transition_body(config.clone(), 2, counters.clone()),
        )
        .await
        .ok();
    assert_eq!(answer, json!({ "voting": true }));
    let check = |state: &Value| {
        let status = &state["status"];
        assert_eq!(status["state"], "voting", "{status}");
        assert_eq!(status["configuration"], config);
        let mut members = vec![me.clone(), OTHER.to_owned()];
        members.sort();
        assert_eq!(
            status["membership"],
            json!({ "members": members, "retired": [] }),
            "the configuration's seats"
        );
        assert_eq!(status["promised"], epoch_ballot(1, 0, 0));
        assert_eq!(status["chosen_below"], 2);
        assert_eq!(status["compacted_below"], 0, "the chosen votes below stay");
        let slots: Vec<u64> = state["log"]["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .map(|e| e["slot"].as_u64().expect("slot"))
            .collect();
        assert_eq!(slots, vec![0, 1], "slots 2 and 5 were the void tail");
    };
    let before = h.observable_state().await;
    check(&before);
    h.restart().await;
    let after = h.observable_state().await;
    check(&after);
    assert_eq!(after, before);
    assert_eq!(
        h.get("/v1/transition").await.ok(),
        json!({ "configuration": config, "snapshot": { "below": 2, "counters": counters } })
    );
    // It votes in the new epoch, from the next slot on.
    let promise = h
        .post(
            "/v1/prepare",
            json!({ "ballot": epoch_ballot(1, 1, 1), "from": 0 }),
        )
        .await
        .ok();
    assert_eq!(promise["outcome"], "promised");
    assert_eq!(promise["snapshot"], json!({ "below": 2, "counters": counters }));
    assert_eq!(promise["entries"], json!([]));
    let accepted = h
        .post(
            "/v1/accept",
            accept_body(epoch_ballot(1, 1, 1), 2, &[(2, alloc("default", 6, 4))]),
        )
        .await
        .ok();
    assert_eq!(accepted["outcome"], "accepted");
}

#[tokio::test]
async fn a_transition_past_the_chosen_point_takes_the_snapshot() {
    let h = seeded().await;
    let me = h.uuid();
    let counters = json!({ "default": 500 });
    h.post(
        "/v1/transition",
        transition_body(configuration(3, &[&me]), 40, counters.clone()),
    )
    .await
    .ok();
    let status = h.status().await;
    assert_eq!(
        (
            status["compacted_below"].as_u64(),
            status["chosen_below"].as_u64(),
            status["log_entries"].as_u64()
        ),
        (Some(40), Some(40), Some(0))
    );
    assert_eq!(
        h.get("/v1/snapshot").await.ok(),
        json!({ "below": 40, "counters": counters })
    );
}

#[tokio::test]
async fn a_blank_acceptor_seated_by_a_configuration_votes() {
    let mut h = Harness::blank().await;
    assert_eq!(h.status().await["state"], "blank");
    assert_eq!(h.get("/readyz").await.status, StatusCode::SERVICE_UNAVAILABLE);
    let me = h.uuid();
    let config = configuration(2, &[OTHER, &me]);
    let counters = json!({ "default": 51 });
    let answer = h
        .post(
            "/v1/transition",
            transition_body(config.clone(), 10, counters.clone()),
        )
        .await
        .ok();
    assert_eq!(answer, json!({ "voting": true }));
    h.restart().await;
    let status = h.status().await;
    assert_eq!(status["state"], "voting");
    assert_eq!(status["configuration"], config);
    assert_eq!(status["promised"], epoch_ballot(2, 0, 0));
    assert_eq!(
        (
            status["chosen_below"].as_u64(),
            status["compacted_below"].as_u64()
        ),
        (Some(10), Some(10))
    );
    assert_eq!(h.get("/readyz").await.ok(), json!({ "status": "ready" }));
    let promise = h
        .post(
            "/v1/prepare",
            json!({ "ballot": epoch_ballot(2, 1, 1), "from": 0 }),
        )
        .await
        .ok();
    assert_eq!(promise["outcome"], "promised");
    assert_eq!(promise["snapshot"], json!({ "below": 10, "counters": counters }));
}

#[tokio::test]
async fn a_second_transition_to_the_same_epoch_is_refused_and_changes_nothing() {
    let h = moved_to_epoch_1().await;
    let me = h.uuid();
    h.post(
        "/v1/accept",
        accept_body(epoch_ballot(1, 1, 1), 2, &[(2, alloc("default", 6, 4))]),
    )
    .await
    .ok();
    let before = h.observable_state().await;
    for (epoch, below) in [(1, 2), (1, 0), (1, 9)] {
        h.post(
            "/v1/transition",
            transition_body(configuration(epoch, &[&me, OTHER]), below, json!({})),
        )
        .await
        .assert_problem(StatusCode::CONFLICT, api::problem::CONFLICT);
    }
    assert_eq!(h.observable_state().await, before);
}

#[tokio::test]
async fn an_acceptor_not_seated_is_refused_and_changes_nothing() {
    for h in [seeded_for_transition().await, Harness::blank().await] {
        let before = h.observable_state().await;
        let answer = h
            .post(
                "/v1/transition",
                transition_body(configuration(1, &[OTHER, STRANGER]), 2, json!({})),
            )
            .await;
        answer.assert_problem(StatusCode::CONFLICT, api::problem::CONFLICT);
        assert!(
            answer.json()["detail"]
                .as_str()
                .is_some_and(|d| d.contains("does not seat")),
            "{}",
            answer.json()
        );
        assert_eq!(h.observable_state().await, before);
        h.get("/v1/transition")
            .await
            .assert_problem(StatusCode::NOT_FOUND, api::problem::NOT_FOUND);
    }
}

#[tokio::test]
async fn ballots_of_a_later_epoch_are_not_voted_on_before_the_transition() {
    let h = seeded().await;
    let before = h.observable_state().await;
    h.post(
        "/v1/prepare",
        json!({ "ballot": epoch_ballot(1, 1, 1), "from": 0 }),
    )
    .await
    .assert_problem(StatusCode::SERVICE_UNAVAILABLE, api::problem::NOT_VOTING);
    h.post(
        "/v1/accept",
        accept_body(epoch_ballot(1, 1, 1), 0, &[(3, alloc("default", 6, 1))]),
    )
    .await
    .assert_problem(StatusCode::SERVICE_UNAVAILABLE, api::problem::NOT_VOTING);
    h.post(
        "/v1/commit",
        json!({ "ballot": epoch_ballot(1, 1, 1), "chosen_below": 3, "leader_url": LEADER }),
    )
    .await
    .assert_problem(StatusCode::SERVICE_UNAVAILABLE, api::problem::NOT_VOTING);
    assert_eq!(h.observable_state().await, before);
}

#[tokio::test]
async fn ballots_of_an_older_epoch_are_fenced_after_the_transition() {
    let h = moved_to_epoch_1().await;
    let before = h.observable_state().await;
    let opening = epoch_ballot(1, 0, 0);
    for b in [ballot(2, 1), ballot(99, 9)] {
        let rejected = h
            .post("/v1/prepare", json!({ "ballot": b, "from": 0 }))
            .await
            .ok();
        assert_eq!(rejected, json!({ "outcome": "rejected", "promised": opening }));
        let rejected = h
            .post("/v1/accept", accept_body(b, 2, &[(2, alloc("default", 6, 1))]))
            .await
            .ok();
        assert_eq!(rejected, json!({ "outcome": "rejected", "promised": opening }));
    }
    assert_eq!(h.observable_state().await, before);
}

#[tokio::test]
async fn malformed_transitions_are_problems_and_change_nothing() {
    let h = seeded_for_transition().await;
    let me = h.uuid();
    let before = h.observable_state().await;
    let good_snapshot = json!({ "below": 2, "counters": {} });
    let seats = |pairs: &[(&str, &str)]| -> Value {
        pairs
            .iter()
            .map(|(url, uuid)| json!({ "url": url, "node_uuid": uuid }))
            .collect()
    };
    let too_many: Vec<Value> = (0..=api::internal::SEATS_MAX)
        .map(|i| json!({ "url": format!("http://a-{i}:1"), "node_uuid": if i == 0 { me.clone() } else { format!("00000000-0000-4000-8000-{i:012x}") } }))
        .collect();
    let unprocessable = [
        transition_body(configuration(0, &[&me]), 2, json!({})),
        json!({ "configuration": { "epoch": 1, "seats": [] }, "snapshot": good_snapshot }),
        json!({ "configuration": { "epoch": 1, "seats": seats(&[("http://a:1", &me), ("http://b:1", &me)]) }, "snapshot": good_snapshot }),
        json!({ "configuration": { "epoch": 1, "seats": seats(&[("http://a:1", &me), ("http://a:1", OTHER)]) }, "snapshot": good_snapshot }),
        json!({ "configuration": { "epoch": 1, "seats": seats(&[("ftp://a:1", &me)]) }, "snapshot": good_snapshot }),
        json!({ "configuration": { "epoch": 1, "seats": seats(&[("http://a:1", "not-a-uuid")]) }, "snapshot": good_snapshot }),
        json!({ "configuration": { "epoch": 1, "seats": too_many }, "snapshot": good_snapshot }),
        json!({ "configuration": { "epoch": -1, "seats": seats(&[("http://a:1", &me)]) }, "snapshot": good_snapshot }),
        transition_body(configuration(1, &[&me]), 2, json!({ "bad name": 3 })),
        json!({ "configuration": configuration(1, &[&me]) }),
        json!({ "snapshot": good_snapshot }),
        json!({ "configuration": configuration(1, &[&me]), "snapshot": good_snapshot, "extra": 1 }),
        json!({ "configuration": { "epoch": 1, "seats": [{ "url": "http://a:1", "node_uuid": me, "x": 1 }] }, "snapshot": good_snapshot }),
        json!([]),
    ];
    for body in unprocessable {
        let answer = h.post("/v1/transition", body.clone()).await;
        assert_eq!(
            answer.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {}",
            String::from_utf8_lossy(&answer.body)
        );
        answer.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, api::problem::INVALID_REQUEST);
    }
    h.post_raw("/v1/transition", "{]")
        .await
        .assert_problem(StatusCode::BAD_REQUEST, api::problem::MALFORMED_JSON);
    let request = h
        .request(Method::POST, "/v1/transition")
        .header(header::CONTENT_TYPE, "text/plain");
    let body = transition_body(configuration(1, &[&me]), 2, json!({})).to_string();
    h.send(request.body(Body::from(body)).expect("request"))
        .await
        .assert_problem(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            api::problem::UNSUPPORTED_MEDIA_TYPE,
        );
    assert_eq!(h.observable_state().await, before);
    h.get("/v1/transition")
        .await
        .assert_problem(StatusCode::NOT_FOUND, api::problem::NOT_FOUND);
}

#[tokio::test]
async fn get_transition_is_404_in_epoch_0_and_names_the_epoch_after() {
    let h = seeded_for_transition().await;
    let answer = h.get("/v1/transition").await;
    answer.assert_problem(StatusCode::NOT_FOUND, api::problem::NOT_FOUND);
    assert!(
        answer.json()["detail"]
            .as_str()
            .is_some_and(|d| d.contains("epoch 0")),
        "{}",
        answer.json()
    );
    assert_eq!(h.status().await.get("configuration"), None, "left out in epoch 0");
    let me = h.uuid();
    let config = configuration(1, &[&me, OTHER]);
    h.post(
        "/v1/transition",
        transition_body(config.clone(), 2, json!({ "default": 6, "orders": 3 })),
    )
    .await
    .ok();
    // Slot 2 chosen in the new epoch moves the snapshot on.
    h.post(
        "/v1/accept",
        accept_body(epoch_ballot(1, 1, 1), 3, &[(2, alloc("default", 6, 4))]),
    )
    .await
    .ok();
    assert_eq!(
        h.get("/v1/transition").await.ok(),
        json!({ "configuration": config,
                "snapshot": { "below": 3, "counters": { "default": 10, "orders": 3 } } })
    );
}

#[tokio::test]
async fn a_stop_sign_is_stored_as_a_vote_and_survives_a_restart() {
    let mut h = seeded().await;
    let me = h.uuid();
    let stop_sign = json!({ "kind": "reconfigure", "configuration": configuration(1, &[&me, OTHER]) });
    h.post(
        "/v1/accept",
        accept_body(ballot(2, 1), 0, &[(3, stop_sign.clone())]),
    )
    .await
    .ok();
    h.restart().await;
    let log = h.get("/v1/log?from=3").await.ok();
    assert_eq!(
        log["entries"],
        json!([{ "slot": 3, "ballot": ballot(2, 1), "value": stop_sign, "chosen": false }])
    );
    let bad = json!({ "kind": "reconfigure", "configuration": configuration(0, &[&me]) });
    h.post("/v1/accept", accept_body(ballot(2, 1), 0, &[(4, bad)]))
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, api::problem::INVALID_REQUEST);
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
