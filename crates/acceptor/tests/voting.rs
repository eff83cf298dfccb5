//! Prepare, accept and commit: the votes and the leader's heartbeat. Over the real router and RocksDB (see `support`).

mod support;

use support::*;

#[tokio::test]
async fn prepare_promises_a_higher_ballot_and_rejects_the_rest() {
    let h = Harness::with_token().await;
    let promised = h
        .post("/v1/prepare", json!({ "ballot": ballot(3, 1), "from": 0 }))
        .await
        .ok();
    let me = h.node_uuid();
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
