//! Delivery to real webhook subscribers: order and batches, the byte
//! limit, retries with the same id and body, Retry-After, redirects, 410
//! and enable, disabling a failing subscriber, sequence filters, replay,
//! pruning and a restart from disk. Over a real learner (see `support`).

mod support;

use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivers_every_slot_in_order_in_batches() {
    let subscriber = Subscriber::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = test_config(dir.path(), no_acceptors());
    config.message_slots_max = 7;
    let learner = start_learner(config).await;
    let created = learner
        .subscribe(json!({"url": subscriber.url, "from_slot": 0}))
        .await;

    // Out of order and with a no-op: the learner releases them in order.
    let mut slots = default_slots(0..40);
    slots[13] = slot(13, vec![]);
    slots.reverse();
    learner.push(slots[..20].to_vec()).await;
    learner.push(slots[20..].to_vec()).await;
    learner.wait_learned(40).await;
    wait_for("every slot delivered", || {
        delivered(&subscriber, &created.secret).len() == 39
    })
    .await;

    let got = delivered(&subscriber, &created.secret);
    let expected: Vec<u64> = (0..40).filter(|s| *s != 13).collect();
    assert_eq!(
        got.keys().copied().collect::<Vec<_>>(),
        expected,
        "no-op slot 13 left out, nothing else"
    );
    assert_eq!(got[&7], vec![alloc("default", 71, 10)]);
    let messages = subscriber.received();
    assert!(
        messages.len() < 39,
        "slots are batched: {} messages",
        messages.len()
    );
    for message in &messages {
        assert!(
            message.slots().len() <= 7,
            "at most --message-slots-max slots per message"
        );
        let body = message.message();
        assert_eq!(body.type_, "ids.allocated");
        assert!(
            body.timestamp.ends_with('Z') && body.timestamp.len() == 24,
            "{}",
            body.timestamp
        );
        assert_eq!(message.header("content-type"), "application/json");
        let slots = message.slots();
        let expected_id = format!("msg_{}_{}_{}", created.id, slots[0], slots[slots.len() - 1]);
        assert_eq!(message.header("webhook-id"), expected_id);
        let ts: u64 = message.header("webhook-timestamp").parse().expect("unix seconds");
        assert!(ts.abs_diff(paxid_learner::delivery::now_ms() / 1000) < 60);
    }
    let raw = String::from_utf8(messages[0].body.to_vec()).expect("utf8");
    assert!(
        raw.starts_with(r#"{"type":"ids.allocated","timestamp":""#),
        "{raw}"
    );
    assert!(raw
        .contains(r#""data":{"slots":[{"slot":0,"allocations":[{"sequence":"default","id":1,"count":10}]}"#));

    wait_for("the cursor to reach 40", || {
        learner
            .state
            .subscriptions()
            .get(&created.id)
            .map(|v| v.delivered_below == 40 && v.lag_slots == 0)
            .unwrap_or(false)
    })
    .await;
    python_verifies(&created.secret, &messages[0]);
    learner.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_respect_the_byte_limit() {
    let subscriber = Subscriber::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = test_config(dir.path(), no_acceptors());
    config.message_bytes_max = 600;
    let learner = start_learner(config).await;
    let created = learner.subscribe(json!({"url": subscriber.url})).await;
    learner.push(default_slots(0..30)).await;
    wait_for("every slot delivered", || {
        delivered(&subscriber, &created.secret).len() == 30
    })
    .await;
    for message in subscriber.received() {
        assert!(message.body.len() <= 600, "{} bytes", message.body.len());
        assert!(
            message.slots().len() > 1,
            "the limit still lets several slots through"
        );
    }
    learner.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_message_is_retried_with_the_same_id_and_body() {
    let subscriber = Subscriber::start().await;
    subscriber.script([Reply::status(500), Reply::status(503), Reply::status(429)]);
    let dir = tempfile::tempdir().expect("tempdir");
    let learner = start_learner(test_config(dir.path(), no_acceptors())).await;
    let created = learner.subscribe(json!({"url": subscriber.url})).await;
    learner.push(default_slots(0..3)).await;
    learner.wait_learned(3).await;
    wait_for("a first attempt", || subscriber.count() >= 1).await;
    // More slots learned while retrying must not change the message.
    learner.push(default_slots(3..6)).await;
    wait_for("all delivered", || {
        delivered(&subscriber, &created.secret).len() == 6
    })
    .await;

    let attempts = subscriber.received();
    let first = &attempts[0];
    for retry in &attempts[1..4] {
        assert_eq!(
            retry.header("webhook-id"),
            first.header("webhook-id"),
            "same id across retries"
        );
        assert_eq!(retry.body, first.body, "same body across retries");
        assert!(
            verify(&created.secret, retry),
            "each retry is signed with its own timestamp"
        );
    }
    assert_ne!(
        attempts[4].header("webhook-id"),
        first.header("webhook-id"),
        "the next message has a new id"
    );
    let view = learner.view(&created.id).await;
    assert_eq!(view.state, "active");
    assert_eq!(view.failing_since, None);
    learner.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_honoured() {
    let subscriber = Subscriber::start().await;
    subscriber.script([Reply {
        status: 503,
        headers: vec![("retry-after", "1".to_owned())],
    }]);
    let dir = tempfile::tempdir().expect("tempdir");
    let learner = start_learner(test_config(dir.path(), no_acceptors())).await;
    let created = learner.subscribe(json!({"url": subscriber.url})).await;
    learner.push(default_slots(0..1)).await;
    wait_for("delivery", || {
        delivered(&subscriber, &created.secret).len() == 1 && subscriber.count() == 2
    })
    .await;
    let attempts = subscriber.received();
    let gap = attempts[1].at - attempts[0].at;
    assert!(
        gap >= Duration::from_millis(950),
        "retried after {gap:?} despite Retry-After: 1"
    );
    learner.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_are_failures_and_are_not_followed() {
    let subscriber = Subscriber::start().await;
    let elsewhere = subscriber.url.replace("/hook", "/elsewhere");
    subscriber.set_default(Reply {
        status: 307,
        headers: vec![("location", elsewhere)],
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let learner = start_learner(test_config(dir.path(), no_acceptors())).await;
    let created = learner.subscribe(json!({"url": subscriber.url})).await;
    learner.push(default_slots(0..1)).await;
    wait_for("three attempts", || subscriber.count() >= 3).await;
    assert!(
        subscriber.received().iter().all(|r| r.path == "/hook"),
        "a redirect was followed"
    );
    let view = learner.view(&created.id).await;
    assert_eq!(view.state, "failing");
    assert!(view.failing_since.is_some());
    assert_eq!(view.delivered_below, 0);
    learner.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gone_disables_and_enable_resumes() {
    let subscriber = Subscriber::start().await;
    subscriber.script([Reply::status(410)]);
    let dir = tempfile::tempdir().expect("tempdir");
    let learner = start_learner(test_config(dir.path(), no_acceptors())).await;
    let created = learner.subscribe(json!({"url": subscriber.url})).await;
    learner.push(default_slots(0..2)).await;
    wait_for("disabled", || {
        learner
            .state
            .subscriptions()
            .get(&created.id)
            .map(|v| v.state == "disabled")
            .unwrap_or(false)
    })
    .await;
    let view = learner.view(&created.id).await;
    assert!(view.disabled_reason.unwrap_or_default().contains("410"));
    assert_eq!(view.delivered_below, 0);
    assert_eq!(view.lag_slots, 2);
    learner.push(default_slots(2..4)).await;
    learner.wait_learned(4).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(subscriber.count(), 1, "a disabled subscription gets nothing");

    let enabled = client()
        .post(format!("{}/v1/subscriptions/{}/enable", learner.url, created.id))
        .send()
        .await
        .expect("enable");
    assert_eq!(enabled.status(), 200);
    wait_for("all delivered", || {
        delivered(&subscriber, &created.secret).len() == 4
    })
    .await;
    let attempts = subscriber.received();
    assert_eq!(
        attempts[1].header("webhook-id"),
        attempts[0].header("webhook-id"),
        "resumes the same message"
    );
    learner.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_subscriber_is_disabled_in_time_while_a_healthy_one_keeps_up() {
    let healthy = Subscriber::start().await;
    let failing = Subscriber::start().await;
    failing.set_default(Reply::status(500));
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = test_config(dir.path(), no_acceptors());
    config.disable_after_failing = Duration::from_millis(1500);
    let learner = start_learner(config).await;
    let good = learner.subscribe(json!({"url": healthy.url})).await;
    let bad = learner.subscribe(json!({"url": failing.url})).await;

    let started = Instant::now();
    for batch in 0..10u64 {
        learner.push(default_slots(batch * 5..batch * 5 + 5)).await;
        let healthy_sub = healthy.clone();
        let secret = good.secret.clone();
        wait_for("the healthy subscriber to keep up", move || {
            delivered(&healthy_sub, &secret).len() as u64 == batch * 5 + 5
        })
        .await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(learner.view(&bad.id).await.state, "failing");
    wait_for("the failing subscription to be disabled", || {
        learner
            .state
            .subscriptions()
            .get(&bad.id)
            .map(|v| v.state == "disabled")
            .unwrap_or(false)
    })
    .await;
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(1500),
        "disabled after {elapsed:?}"
    );
    let view = learner.view(&bad.id).await;
    assert!(view
        .disabled_reason
        .unwrap_or_default()
        .contains("failing continuously"));
    assert!(failing.count() > 3, "it was retried meanwhile");
    assert_eq!(learner.view(&good.id).await.lag_slots, 0);
    learner.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequence_filters_select_allocations() {
    let only_a = Subscriber::start().await;
    let only_b = Subscriber::start().await;
    let all = Subscriber::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let learner = start_learner(test_config(dir.path(), no_acceptors())).await;
    let a = learner
        .subscribe(json!({"url": only_a.url, "sequences": ["a"]}))
        .await;
    let b = learner
        .subscribe(json!({"url": only_b.url, "sequences": ["b"]}))
        .await;
    let everything = learner.subscribe(json!({"url": all.url})).await;
    learner
        .push(vec![
            slot(0, vec![alloc("a", 1, 5)]),
            slot(1, vec![alloc("b", 1, 2)]),
            slot(2, vec![alloc("a", 6, 1), alloc("b", 3, 1), alloc("c", 1, 1)]),
            slot(3, vec![alloc("c", 2, 1)]),
            slot(4, vec![]),
            slot(5, vec![alloc("b", 4, 4)]),
        ])
        .await;
    wait_for("all delivered", || delivered(&all, &everything.secret).len() == 5).await;
    wait_for("a delivered", || delivered(&only_a, &a.secret).len() == 2).await;
    wait_for("b delivered", || delivered(&only_b, &b.secret).len() == 3).await;
    let got_a = delivered(&only_a, &a.secret);
    assert_eq!(got_a[&0], vec![alloc("a", 1, 5)]);
    assert_eq!(got_a[&2], vec![alloc("a", 6, 1)]);
    let got_b = delivered(&only_b, &b.secret);
    assert_eq!(got_b.keys().copied().collect::<Vec<_>>(), vec![1, 2, 5]);
    assert_eq!(got_b[&2], vec![alloc("b", 3, 1)]);
    for (learner_view, below) in [(learner.view(&a.id).await, 6), (learner.view(&b.id).await, 6)] {
        wait_for("cursor past filtered slots", || {
            learner
                .state
                .subscriptions()
                .get(&learner_view.id)
                .map(|v| v.delivered_below == below)
                .unwrap_or(false)
        })
        .await;
    }
    learner.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_sends_again_from_the_given_slot() {
    let subscriber = Subscriber::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let learner = start_learner(test_config(dir.path(), no_acceptors())).await;
    let created = learner.subscribe(json!({"url": subscriber.url})).await;
    learner.push(default_slots(0..5)).await;
    wait_for("delivered", || delivered(&subscriber, &created.secret).len() == 5).await;
    wait_for("cursor", || {
        learner
            .state
            .subscriptions()
            .get(&created.id)
            .map(|v| v.delivered_below == 5)
            .unwrap_or(false)
    })
    .await;
    let before = subscriber.count();
    let response = client()
        .post(format!("{}/v1/subscriptions/{}/replay", learner.url, created.id))
        .json(&json!({"from_slot": 2}))
        .send()
        .await
        .expect("replay");
    assert_eq!(response.status(), 200);
    let view: SubscriptionView = response.json().await.expect("view");
    assert_eq!(view.delivered_below, 2);
    wait_for("replayed", || {
        subscriber.received()[before..]
            .iter()
            .flat_map(Received::slots)
            .collect::<Vec<_>>()
            == vec![2, 3, 4]
    })
    .await;
    learner.stop().await;
}

fn cursor_at(learner: &TestLearner, id: &str, slot: u64) -> bool {
    learner
        .state
        .subscriptions()
        .get(id)
        .is_ok_and(|view| view.delivered_below == slot)
}

/// The learned log is pruned `retain` slots below the slowest cursor, never
/// above it; replays and new subscriptions below the log's start are
/// refused and change nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pruning_keeps_what_the_slowest_subscriber_needs() {
    let fast = Subscriber::start().await;
    let slow = Subscriber::start().await;
    slow.set_default(Reply::status(500));
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = test_config(dir.path(), no_acceptors());
    config.prune_interval = Duration::from_secs(3600); // pruned by hand below
    let learner = start_learner(config).await;
    let fast_sub = learner.subscribe(json!({"url": fast.url})).await;
    let slow_sub = learner.subscribe(json!({"url": slow.url})).await;
    learner.push(default_slots(0..20)).await;
    wait_for("fast cursor", || cursor_at(&learner, &fast_sub.id, 20)).await;
    let subscriptions = learner.state.subscriptions();
    assert_eq!(
        subscriptions.prune_log(5).expect("prune"),
        0,
        "the failing subscriber holds slot 0"
    );

    slow.set_default(Reply::status(204));
    wait_for("slow cursor", || cursor_at(&learner, &slow_sub.id, 20)).await;
    assert_eq!(subscriptions.prune_log(5).expect("prune"), 15);
    let replay = |from_slot: u64| {
        client()
            .post(format!("{}/v1/subscriptions/{}/replay", learner.url, slow_sub.id))
            .json(&json!({ "from_slot": from_slot }))
            .send()
    };
    let refused = replay(14).await.expect("replay");
    assert_eq!(refused.status(), 422);
    assert!(refused.text().await.expect("body").contains("pruned"));
    assert_eq!(
        learner.view(&slow_sub.id).await.delivered_below,
        20,
        "a refused replay changes nothing"
    );
    assert_eq!(replay(15).await.expect("replay").status(), 200);
    let create = client()
        .post(format!("{}/v1/subscriptions", learner.url))
        .json(&json!({"url": fast.url, "from_slot": 3}))
        .send()
        .await
        .expect("create");
    assert_eq!(create.status(), 422);
    learner.stop().await;
}

/// Kill the learner while a message is unacknowledged; the restarted one
/// resumes learning where it stopped and resends the same message id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_resumes_from_disk_with_the_same_message_ids() {
    let subscriber = Subscriber::start().await;
    subscriber.set_default(Reply::status(500));
    let dir = tempfile::tempdir().expect("tempdir");
    let learner = start_learner(test_config(dir.path(), no_acceptors())).await;
    let created = learner.subscribe(json!({"url": subscriber.url})).await;
    learner.push(default_slots(0..4)).await;
    learner.wait_learned(4).await;
    wait_for("an attempt", || subscriber.count() >= 1).await;
    let learner_id = learner.state.learner_id().to_owned();
    learner.stop().await;
    let first_id = subscriber.received()[0].header("webhook-id");

    subscriber.set_default(Reply::status(200));
    let learner = start_learner(test_config(dir.path(), no_acceptors())).await;
    assert_eq!(
        learner.state.learning().learned_below(),
        4,
        "learning resumes from the stored point"
    );
    assert_eq!(learner.state.learner_id(), learner_id, "the learner id is stable");
    learner.push(default_slots(4..8)).await;
    wait_for("all delivered", || {
        delivered(&subscriber, &created.secret).len() == 8
    })
    .await;
    let after: Vec<Received> = subscriber
        .received()
        .into_iter()
        .filter(|r| r.at > subscriber.received()[0].at)
        .collect();
    let resent = after
        .iter()
        .find(|r| r.slots().first() == Some(&0))
        .expect("slot 0 resent");
    assert_eq!(
        resent.header("webhook-id"),
        first_id,
        "same webhook-id after restart"
    );
    learner.stop().await;
}
