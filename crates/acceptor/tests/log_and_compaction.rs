//! Reading the log, learner progress, compaction and retention. Over the real router and RocksDB (see `support`).

mod support;

use support::*;

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
