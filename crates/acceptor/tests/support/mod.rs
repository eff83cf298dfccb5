//! Service tests of the acceptor: the real router from
//! [`paxid_acceptor::app`] over a real RocksDB in a temp dir, driven in
//! process with `oneshot`. Shared by the test files named after what they
//! cover (voting, log_and_compaction, input_validation, lifecycle,
//! transitions).

#![allow(dead_code)]

pub use std::time::{Duration, Instant};

pub use axum::body::Body;
pub use axum::http::{self as http_types, header, Method, Request, StatusCode};
pub use axum::Router;
pub use paxid_acceptor::*;
pub use serde_json::{json, Value};
pub use tower::ServiceExt;

pub const TOKEN: &str = "t0ken";
pub const LEADER: &str = "http://10.0.0.7:7000";

pub struct Answer {
    pub status: StatusCode,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn ok(&self) -> Value {
        assert_eq!(
            self.status,
            StatusCode::OK,
            "{}",
            String::from_utf8_lossy(&self.body)
        );
        self.json()
    }

    pub fn assert_problem(&self, status: StatusCode, type_: &str) {
        assert_eq!(self.status, status, "{}", String::from_utf8_lossy(&self.body));
        assert_eq!(self.content_type.as_deref(), Some(api::problem::CONTENT_TYPE));
        let problem: api::problem::Problem = serde_json::from_slice(&self.body).expect("a problem body");
        assert_eq!(problem.type_, type_, "{problem:?}");
        assert_eq!(problem.status, status.as_u16());
    }
}

pub struct Harness {
    pub dir: tempfile::TempDir,
    pub config: Config,
    pub started: Option<Started>,
    pub app: Router,
}

impl Drop for Harness {
    /// Closes RocksDB before the test returns (see `Started::stop_blocking`).
    fn drop(&mut self) {
        if let Some(started) = self.started.take() {
            started.stop_blocking();
        }
    }
}

impl Harness {
    pub async fn new(configure: impl FnOnce(&mut Config)) -> Harness {
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

    /// This acceptor's node UUID: its member id in memberships.
    pub fn node_uuid(&self) -> String {
        let started = self.started.as_ref().expect("started");
        started.state.identity.node_uuid.clone()
    }

    /// A new acceptor is blank and never votes: found a one-acceptor cluster.
    pub async fn found_alone(&self) {
        let uuid = self.node_uuid();
        self.post("/v1/join", json!({ "membership": { "members": [uuid] } }))
            .await
            .ok();
    }

    pub async fn with_token() -> Harness {
        Harness::new(|c| c.common.cluster_token = Some(TOKEN.to_owned())).await
    }

    /// Stops the acceptor (closing RocksDB) and starts it again on the same dir.
    pub async fn restart(&mut self) {
        if let Some(started) = self.started.take() {
            started.stop().await;
        }
        let started = start(&self.config).expect("restart");
        self.app = app(started.state.clone());
        self.started = Some(started);
    }

    pub async fn send(&self, request: Request<Body>) -> Answer {
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

    pub fn request(&self, method: Method, uri: &str) -> http_types::request::Builder {
        let mut builder = Request::builder().method(method).uri(uri);
        if let Some(token) = &self.config.common.cluster_token {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        builder
    }

    pub async fn post_raw(&self, uri: &str, body: impl Into<Body>) -> Answer {
        let request = self
            .request(Method::POST, uri)
            .header(header::CONTENT_TYPE, "application/json");
        self.send(request.body(body.into()).expect("request")).await
    }

    pub async fn post(&self, uri: &str, body: Value) -> Answer {
        self.post_raw(uri, body.to_string()).await
    }

    pub async fn get(&self, uri: &str) -> Answer {
        self.send(
            self.request(Method::GET, uri)
                .body(Body::empty())
                .expect("request"),
        )
        .await
    }

    pub async fn status(&self) -> Value {
        self.get("/v1/status").await.ok()
    }

    /// Status and the whole log, without the clock-dependent field.
    pub async fn observable_state(&self) -> Value {
        let mut status = self.status().await;
        if let Some(leader) = status.get_mut("leader").and_then(Value::as_object_mut) {
            leader.remove("heard_ago_ms");
        }
        let log = self.get("/v1/log?from=0&limit=10000").await.ok();
        json!({ "status": status, "log": log })
    }

    pub async fn metrics(&self) -> String {
        let answer = self.get("/metrics").await;
        assert_eq!(answer.status, StatusCode::OK);
        String::from_utf8(answer.body).expect("utf-8")
    }
}

pub fn ballot(round: u64, node: u32) -> Value {
    json!({ "round": round, "node": node })
}

pub fn alloc(sequence: &str, id: u64, count: u64) -> Value {
    json!({ "kind": "allocations", "allocations": [{ "sequence": sequence, "id": id, "count": count }] })
}

pub fn accept_body(b: Value, chosen_below: u64, slots: &[(u64, Value)]) -> Value {
    let proposals: Vec<Value> = slots
        .iter()
        .map(|(slot, value)| json!({ "slot": slot, "value": value }))
        .collect();
    json!({ "ballot": b, "chosen_below": chosen_below, "proposals": proposals, "leader_url": LEADER })
}

/// A state worth protecting: a promise, three accepted slots, one chosen.
pub async fn seeded() -> Harness {
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

pub async fn wait_for(h: &Harness, what: &str, mut done: impl FnMut(&Value) -> bool) -> Value {
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

pub const OTHER: &str = "00000000-0000-4000-8000-0000000000b2";
pub const STRANGER: &str = "00000000-0000-4000-8000-0000000000c3";

pub fn epoch_ballot(epoch: u64, round: u64, node: u32) -> Value {
    json!({ "epoch": epoch, "round": round, "node": node })
}

/// Epoch `epoch` with these members, in order, on made-up URLs.
pub fn configuration(epoch: u64, members: &[&str]) -> Value {
    let seats: Vec<Value> = members
        .iter()
        .enumerate()
        .map(|(i, uuid)| json!({ "url": format!("http://acceptor-{i}:7100"), "node_uuid": uuid }))
        .collect();
    json!({ "epoch": epoch, "seats": seats })
}

pub fn transition_body(configuration: Value, below: u64, counters: Value) -> Value {
    json!({ "configuration": configuration, "snapshot": { "below": below, "counters": counters } })
}

impl Harness {
    /// A new acceptor that was never founded: blank.
    pub async fn blank() -> Harness {
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

    pub fn uuid(&self) -> String {
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
pub async fn seeded_for_transition() -> Harness {
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
pub async fn moved_to_epoch_1() -> Harness {
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
