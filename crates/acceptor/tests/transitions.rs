//! Membership change: the stop sign and `/v1/transition`. Over the real router and RocksDB (see `support`).

mod support;

use support::*;

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
