//! Learning from (stub) acceptors: a majority of one ballot or a chosen
//! mark, progress reports, pushes as hints, lost coverage after
//! compaction, stop signs and the epochs they move to, jumps past
//! compaction, readiness and a new identity at an acceptor URL. Over a
//! real learner (see `support`).

mod support;

use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn learns_from_a_majority_of_one_ballot_or_a_chosen_mark_and_reports_progress() {
    let mut stubs = Vec::new();
    let mut urls = Vec::new();
    for _ in 0..3 {
        let (stub, url) = StubAcceptor::start().await;
        stubs.push(stub);
        urls.push(url);
    }
    // Slot 0: a majority under ballot 1. Slot 1: two votes under different
    // ballots, not a majority. Slot 2: one acceptor marks it chosen.
    stubs[0].vote(0, 1, value("a", 1), false);
    stubs[1].vote(0, 1, value("a", 1), false);
    stubs[0].vote(1, 1, value("a", 2), false);
    stubs[1].vote(1, 2, value("a", 3), false);
    stubs[2].vote(2, 2, value("a", 4), true);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = test_config(dir.path(), urls);
    config.cluster_token = service::Tokens::new(&["tok".into()], None);
    let learner = start_learner(config).await;
    learner.wait_learned(1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        learner.state.learning().learned_below(),
        1,
        "slot 1 has no majority of one ballot"
    );

    stubs[2].vote(1, 2, value("a", 3), false);
    learner.wait_learned(3).await;
    let log = learner.state.store().read_log(0, 3, 3).expect("read");
    let values: Vec<wire::Value> = log.iter().map(|(_, v)| wire::Value::from(v)).collect();
    assert_eq!(
        values,
        vec![value("a", 1), value("a", 3), value("a", 4)],
        "ballot 2's value won slot 1"
    );

    let learner_id = learner.state.learner_id().to_owned();
    for stub in &stubs {
        let stub = stub.clone();
        wait_for("progress reported", move || {
            stub.last_progress().is_some_and(|(_, below, _)| below == 3)
        })
        .await;
    }
    for stub in &stubs {
        let (id, _, auth) = stub.last_progress().expect("reported");
        assert_eq!(id, learner_id);
        assert_eq!(auth, "Bearer tok");
    }
    learner.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_makes_the_learner_read_the_acceptors_at_once() {
    let (stub, url) = StubAcceptor::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = test_config(dir.path(), vec![url]);
    config.pull_interval = Duration::from_secs(3600);
    let learner = start_learner(config).await;
    let polls = stub.polls.clone();
    wait_for("the first poll", move || {
        polls.load(std::sync::atomic::Ordering::SeqCst) >= 1
    })
    .await;
    // The slots appear after the first poll; the next regular poll is an
    // hour away, so only the push below can make the learner read them.
    stub.vote(0, 1, value("a", 1), true);
    stub.vote(1, 1, value("a", 2), true);
    stub.vote(2, 1, value("a", 3), true);
    learner
        .push(vec![
            slot(1, vec![alloc("a", 2, 1)]),
            slot(2, vec![alloc("a", 3, 1)]),
        ])
        .await;
    learner.wait_learned(3).await;
    learner.stop().await;
}

/// A push is a hint (issue 12): whoever holds the cluster token can post
/// to `/v1/chosen`, so a pushed value is never released on its own word.
/// The learner releases what its acceptors confirm, and a push only makes
/// it read them now. (A push listing slot 50 twice with two values used to
/// stop the learning task; later the first value pushed was kept.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pushed_value_the_acceptors_do_not_confirm_is_never_released() {
    let (stub, url) = StubAcceptor::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let learner = start_learner(test_config(dir.path(), vec![url])).await;
    let subscriber = Subscriber::start().await;
    let created = learner.subscribe(json!({"url": subscriber.url})).await;
    // Forged: slots the acceptors never voted for, and slot 1 twice.
    let mut forged = default_slots(0..3);
    forged.push(slot(1, vec![alloc("default", 9001, 5)]));
    learner.push(forged).await;
    let polls = stub.polls();
    let polled = stub.polls.clone();
    wait_for("two polls after the push", move || {
        polled.load(std::sync::atomic::Ordering::SeqCst) >= polls + 2
    })
    .await;
    assert_eq!(
        learner.state.learning().learned_below(),
        0,
        "nothing pushed is released"
    );

    // What the acceptors did choose is learned, and only that.
    stub.vote(0, 1, value("default", 77), false);
    stub.vote(1, 1, value("default", 78), true);
    learner.wait_learned(2).await;
    let log = learner.state.store().read_log(0, 2, 2).expect("read");
    let firsts: Vec<u64> = log.iter().map(|(_, v)| v.allocations()[0].first).collect();
    assert_eq!(
        firsts,
        vec![77, 78],
        "the acceptors' values, not the pushed ones: {log:?}"
    );
    wait_for("both slots delivered", || {
        delivered(&subscriber, &created.secret).len() == 2
    })
    .await;
    let ids: Vec<u64> = delivered(&subscriber, &created.secret)
        .values()
        .flatten()
        .map(|a| a.id)
        .collect();
    assert_eq!(ids, vec![77, 78]);
    learner.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_above_the_learner_is_reported_as_lost_coverage() {
    let mut stubs = Vec::new();
    let mut urls = Vec::new();
    for _ in 0..3 {
        let (stub, url) = StubAcceptor::start().await;
        stub.log.lock().expect("lock").compacted_below = 10;
        stubs.push(stub);
        urls.push(url);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let learner = start_learner(test_config(dir.path(), urls)).await;
    let http = client();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let response = http
            .get(format!("{}/readyz", learner.url))
            .send()
            .await
            .expect("readyz");
        if response.status() == 503 {
            let problem: api::problem::Problem = response.json().await.expect("problem");
            assert!(problem.detail.unwrap_or_default().contains("lost coverage"));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "readyz never reported the lost coverage"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let metrics = http
        .get(format!("{}/metrics", learner.url))
        .send()
        .await
        .expect("metrics")
        .text()
        .await;
    // The recorder is process-wide and other tests' learners set the same
    // gauge, so only its presence is checked here; its value is checked by
    // the end-to-end tests against a learner process of its own.
    assert!(metrics.expect("text").contains("paxid_learner_coverage_lost"));

    // One acceptor still holding slot 0 is enough to learn again.
    stubs[0].log.lock().expect("lock").compacted_below = 0;
    wait_for("ready again", || learner.state.ready().is_ok()).await;
    learner.stop().await;
}

// ---- reconfiguration -----------------------------------------------------

/// Epoch 0 is read from three acceptors until the stop sign at slot 4,
/// which names two other acceptors; the learner delivers everything up to
/// it, then reads slots 5 on from the new acceptors only. The epoch-0 slots
/// above the stop sign are void: one marked chosen with another value, one
/// voted by every old acceptor; neither is ever delivered. After a restart
/// with the same (now stale) `--acceptors`, the learner still reads the new
/// acceptors: the epoch is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_sign_moves_the_learner_to_the_acceptors_it_names_and_a_restart_keeps_them() {
    let (old, old_urls) = stub_acceptors(3).await;
    let (new, new_urls) = stub_acceptors(2).await;
    let next = configuration(1, &new_urls);
    for s in 0..4 {
        for stub in &old[..2] {
            stub.vote(s, 1, value("a", s + 1), false);
        }
    }
    for stub in &old {
        stub.vote(4, 1, stop_sign(&next), true);
    }
    old[0].vote(5, 1, value("a", 900), true);
    for stub in &old {
        stub.vote(6, 1, value("a", 901), false);
    }
    new[0].vote_in(1, 5, 1, value("a", 6), true);
    for stub in &new {
        stub.vote_in(1, 6, 1, value("a", 7), false);
    }

    let subscriber = Subscriber::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let learner = start_learner(test_config(dir.path(), old_urls.clone())).await;
    let created = learner
        .subscribe(json!({"url": subscriber.url, "from_slot": 0}))
        .await;
    learner.wait_learned(7).await;
    assert_eq!(
        learner.state.learning().acceptor_set(),
        acceptor_set(1, &new_urls)
    );
    let recorded = learner
        .state
        .store()
        .configuration()
        .expect("read")
        .expect("recorded");
    assert_eq!(recorded.0, 5, "epoch 1 starts after the stop sign");
    assert_eq!(wire::Configuration::from(&recorded.1), next);
    wait_for("slots 0..=6 but the stop sign delivered", || {
        delivered(&subscriber, &created.secret).len() == 6
    })
    .await;
    let got = delivered(&subscriber, &created.secret);
    assert_eq!(got.keys().copied().collect::<Vec<_>>(), vec![0, 1, 2, 3, 5, 6]);
    for (slot, allocations) in &got {
        assert_eq!(allocations, &vec![alloc("a", slot + 1, 1)], "slot {slot}");
    }
    for stub in &new {
        let stub = stub.clone();
        wait_for("progress reported to the new acceptors", move || {
            stub.last_progress().is_some_and(|(_, below, _)| below == 7)
        })
        .await;
    }
    assert!(
        metrics_text(&learner)
            .await
            .contains(paxid_learner::metric::EPOCH),
        "the epoch gauge is exported"
    );
    // The old acceptors are not read any more (a poll under way at the
    // move may still land).
    tokio::time::sleep(Duration::from_millis(100)).await;
    let polls: Vec<usize> = old.iter().map(StubAcceptor::polls).collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(old.iter().map(StubAcceptor::polls).collect::<Vec<_>>(), polls);
    assert!(learner.state.ready().is_ok());
    learner.stop().await;

    new[1].vote_in(1, 7, 1, value("a", 8), true);
    old[0].vote(7, 1, value("a", 902), true);
    let polls: Vec<usize> = old.iter().map(StubAcceptor::polls).collect();
    let learner = start_learner(test_config(dir.path(), old_urls.clone())).await;
    assert_eq!(
        learner.state.learning().acceptor_set(),
        acceptor_set(1, &new_urls),
        "the stored epoch wins over --acceptors"
    );
    learner.wait_learned(8).await;
    wait_for("slot 7 delivered", || {
        delivered(&subscriber, &created.secret).contains_key(&7)
    })
    .await;
    assert_eq!(
        delivered(&subscriber, &created.secret)[&7],
        vec![alloc("a", 8, 1)]
    );
    assert_eq!(
        old.iter().map(StubAcceptor::polls).collect::<Vec<_>>(),
        polls,
        "the restarted learner never read the old acceptors"
    );
    learner.stop().await;
}

/// Every acceptor compacted past a new learner's slot 0. Two of them moved
/// to epoch 1 (seating a third, new acceptor) and hold its slots from 10;
/// the third old one stayed in epoch 0 with a snapshot at 8 that folded the
/// stop sign in. The learner takes a snapshot of a moved acceptor, records
/// the gap, adopts epoch 1 and learns the slots after it from the new
/// configuration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learner_behind_compaction_jumps_into_the_configuration_its_acceptors_moved_to() {
    let (old, old_urls) = stub_acceptors(3).await;
    let (added, added_urls) = stub_acceptors(1).await;
    let seats = vec![old_urls[0].clone(), old_urls[1].clone(), added_urls[0].clone()];
    let next = configuration(1, &seats);
    old[0].moved(Some(&next), 10, &[("a", 51)]);
    old[1].moved(Some(&next), 10, &[("a", 51)]);
    added[0].moved(Some(&next), 10, &[("a", 51)]);
    old[2].moved(None, 8, &[("a", 40)]);
    old[0].vote_in(1, 10, 1, value("a", 51), true);
    old[1].vote_in(1, 11, 1, value("a", 52), false);
    added[0].vote_in(1, 11, 1, value("a", 52), false);

    let dir = tempfile::tempdir().expect("tempdir");
    let learner = start_learner(test_config(dir.path(), old_urls.clone())).await;
    learner.wait_learned(12).await;
    assert_eq!(learner.state.learning().acceptor_set(), acceptor_set(1, &seats));
    let gaps = learner.state.gaps().expect("gaps");
    assert_eq!(
        gaps,
        vec![api::learner::LearnerGap {
            from_slot: 0,
            below_slot: 10
        }]
    );
    let store = learner.state.store().clone();
    assert_eq!(
        store.configuration().expect("read").map(|(from, _)| from),
        Some(10)
    );
    let log = store.read_log(0, 12, 12).expect("read");
    let values: Vec<wire::Value> = log.iter().map(|(_, v)| wire::Value::from(v)).collect();
    assert_eq!(values, vec![value("a", 51), value("a", 52)]);
    let counters = learner.state.counters().expect("counters");
    assert_eq!(
        counters.next_id(&paxos_core::SequenceName::parse("a").expect("name")),
        53
    );
    let stub = added[0].clone();
    wait_for("progress reported to the seated acceptor", move || {
        stub.last_progress().is_some_and(|(_, below, _)| below == 12)
    })
    .await;
    learner.stop().await;
}

/// As above, but the moved acceptors do not answer `/v1/status` at first,
/// so the learner takes the snapshot of the one left in epoch 0, which
/// folded the stop sign in: it jumps to slot 8 in epoch 0, where nobody
/// holds anything of epoch 0. Once the moved acceptors answer, it sees they
/// hold only epoch 1 from there and jumps into it, recording that gap too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learner_that_jumped_past_a_stop_sign_jumps_again_into_the_later_epoch() {
    let (old, old_urls) = stub_acceptors(3).await;
    let (added, added_urls) = stub_acceptors(1).await;
    let seats = vec![old_urls[0].clone(), old_urls[1].clone(), added_urls[0].clone()];
    let next = configuration(1, &seats);
    for stub in [&old[0], &old[1], &added[0]] {
        stub.moved(Some(&next), 10, &[("a", 51)]);
    }
    old[2].moved(None, 8, &[("a", 40)]);
    old[0].vote_in(1, 10, 1, value("a", 51), true);
    old[1].vote_in(1, 11, 1, value("a", 52), false);
    added[0].vote_in(1, 11, 1, value("a", 52), false);
    for stub in &old[..2] {
        stub.status_fails.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    let dir = tempfile::tempdir().expect("tempdir");
    let learner = start_learner(test_config(dir.path(), old_urls.clone())).await;
    learner.wait_learned(8).await;
    assert_eq!(learner.state.learning().acceptor_set().epoch, 0);
    for stub in &old[..2] {
        stub.status_fails
            .store(false, std::sync::atomic::Ordering::SeqCst);
    }
    learner.wait_learned(12).await;
    assert_eq!(learner.state.learning().acceptor_set(), acceptor_set(1, &seats));
    let gap = |from_slot, below_slot| api::learner::LearnerGap {
        from_slot,
        below_slot,
    };
    assert_eq!(learner.state.gaps().expect("gaps"), vec![gap(0, 8), gap(8, 10)]);
    let log = learner.state.store().read_log(0, 12, 12).expect("read");
    let values: Vec<wire::Value> = log.iter().map(|(_, v)| wire::Value::from(v)).collect();
    assert_eq!(values, vec![value("a", 51), value("a", 52)]);
    learner.stop().await;
}

/// A learner in epoch 0 at slot 5 whose acceptors moved to epoch 1 and
/// hold slot 5 in it (the stop sign was folded into their snapshot): it
/// follows epoch 1 from slot 5, with no gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learner_past_a_folded_stop_sign_follows_the_epoch_its_acceptors_hold_there() {
    let (stubs, urls) = stub_acceptors(2).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let learner = start_learner(test_config(dir.path(), urls.clone())).await;
    let slots = default_slots(0..5);
    for stub in &stubs {
        for proposal in &slots {
            stub.vote(proposal.slot, 1, proposal.value.clone(), true);
        }
    }
    learner.push(slots).await;
    learner.wait_learned(5).await;

    let next = configuration(1, &urls);
    for stub in &stubs {
        stub.moved(Some(&next), 3, &[("default", 51)]);
        stub.vote_in(1, 5, 1, value("default", 51), false);
        stub.vote_in(1, 6, 1, value("default", 52), false);
    }
    learner.wait_learned(7).await;
    assert_eq!(learner.state.learning().acceptor_set(), acceptor_set(1, &urls));
    assert!(learner.state.gaps().expect("gaps").is_empty(), "nothing skipped");
    let store = learner.state.store().clone();
    assert_eq!(
        store.configuration().expect("read").map(|(from, _)| from),
        Some(5)
    );
    let log = store.read_log(5, 7, 2).expect("read");
    let values: Vec<wire::Value> = log.iter().map(|(_, v)| wire::Value::from(v)).collect();
    assert_eq!(values, vec![value("default", 51), value("default", 52)]);
    learner.stop().await;
}

/// A push naming a bad configuration is refused with 422; a stop sign the
/// acceptors hold that does not name the next epoch is refused as a
/// conflict (the slots before it are learned); a good one moves the
/// learner to the acceptors it names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_signs_naming_the_wrong_epoch_are_refused() {
    let (stubs, urls) = stub_acceptors(1).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let learner = start_learner(test_config(dir.path(), no_acceptors())).await;
    let http = client();
    let mut duplicate = configuration(1, &[urls[0].clone(), urls[0].clone()]);
    duplicate.seats[1].node_uuid = "00000000-0000-0000-0000-000000000009".into();
    let bad = [
        configuration(0, &urls),
        configuration(1, &[]),
        configuration(1, &["ftp://127.0.0.1:1".to_owned()]),
        duplicate,
        wire::Configuration {
            epoch: 1,
            seats: vec![wire::Seat {
                url: urls[0].clone(),
                node_uuid: "not-a-uuid".into(),
            }],
        },
    ];
    for configuration in bad {
        let response = http
            .post(format!("{}/v1/chosen", learner.url))
            .json(&ChosenPush {
                slots: vec![Proposal {
                    slot: 0,
                    value: stop_sign(&configuration),
                }],
                epoch: 0,
            })
            .send()
            .await
            .expect("push");
        assert_eq!(response.status(), 422, "{configuration:?}");
    }

    let conflicts = |text: &str| -> f64 {
        text.lines()
            .filter(|line| line.starts_with("paxid_learner_conflicts_total"))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    let before = conflicts(&metrics_text(&learner).await);
    let mut wrong_epoch = default_slots(0..1);
    wrong_epoch.push(Proposal {
        slot: 1,
        value: stop_sign(&configuration(2, &urls)),
    });
    learner.push(wrong_epoch).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while conflicts(&metrics_text(&learner).await) <= before {
        assert!(Instant::now() < deadline, "the refusal was never counted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        learner.state.learning().learned_below(),
        1,
        "slot 0 is taken, the stop sign after it is not"
    );
    assert_eq!(learner.state.learning().acceptor_set().epoch, 0);

    let next = configuration(1, &urls);
    let mut slots = default_slots(0..2);
    slots.push(Proposal {
        slot: 2,
        value: stop_sign(&next),
    });
    learner.push(slots).await;
    learner.wait_learned(3).await;
    assert_eq!(learner.state.learning().acceptor_set(), acceptor_set(1, &urls));
    stubs[0].vote_in(1, 3, 1, value("default", 31), true);
    learner.wait_learned(4).await;
    learner.stop().await;
}

/// With no acceptor answering for longer than `acceptors_silent_max`,
/// `/readyz` says so; learning keeps retrying and is ready again as soon
/// as one answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_reports_acceptors_that_do_not_answer() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = test_config(dir.path(), vec![format!("http://{addr}")]);
    config.acceptors_silent_max = Duration::from_millis(300);
    let learner = start_learner(config).await;
    let http = client();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let response = http
            .get(format!("{}/readyz", learner.url))
            .send()
            .await
            .expect("readyz");
        if response.status() == 503 {
            let problem: api::problem::Problem = response.json().await.expect("problem");
            let detail = problem.detail.unwrap_or_default();
            assert!(
                detail.contains("no acceptor of configuration epoch 0 has answered"),
                "{detail}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "readyz never reported the silence");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let listener = tokio::net::TcpListener::bind(addr).await.expect("rebind");
    let (_stub, _) = StubAcceptor::start_on(listener);
    wait_for("ready again", || learner.state.ready().is_ok()).await;
    learner.stop().await;
}

/// Issue 11: the learner reports an acceptor URL that answers under a new
/// identity (its disk was lost or replaced): a log line and a counter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_identity_at_an_acceptor_url_is_reported() {
    let (stubs, urls) = stub_acceptors(3).await;
    for (i, stub) in stubs.iter().enumerate() {
        *stub.node_uuid.lock().expect("lock") = Some(format!("00000000-0000-0000-0000-00000000000{i}"));
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let learner = start_learner(test_config(dir.path(), urls)).await;
    let changes = |text: &str| {
        text.lines()
            .find(|l| l.starts_with("paxid_learner_acceptor_identity_changes_total"))
            .and_then(|l| l.split_whitespace().last()?.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // Seen at least once as it was: nothing to report.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = changes(&metrics_text(&learner).await);
    *stubs[1].node_uuid.lock().expect("lock") = Some("00000000-0000-0000-0000-0000000000ff".into());
    let started = Instant::now();
    while changes(&metrics_text(&learner).await) < before + 1.0 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no identity change reported"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    learner.stop().await;
}
