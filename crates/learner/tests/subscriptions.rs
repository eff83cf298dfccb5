//! The subscription API: create, list, view, enable, replay, ping and delete;
//! bad input refused with nothing stored; private webhook targets;
//! scoped tokens; the bound on subscriptions. Over a real learner (see
//! `support`).

mod support;

use api::learner::{PingResult, SubscriptionList, WebhookPingMessage};
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_crud() {
    let dir = tempfile::tempdir().expect("tempdir");
    let learner = start_learner(test_config(dir.path(), no_acceptors())).await;
    let http = client();

    let created = learner
        .subscribe(json!({"url": "http://127.0.0.1:1/hook", "sequences": ["a", "b", "a"]}))
        .await;
    assert!(created.id.starts_with("sub_"));
    let key = created.secret.strip_prefix("whsec_").expect("whsec_ prefix");
    assert_eq!(STANDARD.decode(key).expect("base64").len(), 32);

    let list = http
        .get(format!("{}/v1/subscriptions", learner.url))
        .send()
        .await
        .expect("list");
    assert_eq!(list.status(), 200);
    let text = list.text().await.expect("text");
    assert!(
        !text.contains(&created.secret),
        "the secret is shown only at creation"
    );
    let list: SubscriptionList = serde_json::from_str(&text).expect("list body");
    assert_eq!(list.subscriptions.len(), 1);

    let view = learner.view(&created.id).await;
    assert_eq!(view.url, "http://127.0.0.1:1/hook");
    assert_eq!(
        view.sequences,
        Some(vec!["a".to_owned(), "b".to_owned()]),
        "duplicates folded"
    );
    assert_eq!(view.state, "active");
    assert_eq!(view.delivered_below, 0);

    let enabled = http
        .post(format!("{}/v1/subscriptions/{}/enable", learner.url, created.id))
        .send()
        .await;
    assert_eq!(
        enabled.expect("enable").status(),
        200,
        "enabling an active subscription is a no-op"
    );

    let replay = http
        .post(format!("{}/v1/subscriptions/{}/replay", learner.url, created.id))
        .json(&json!({"from_slot": 5}))
        .send()
        .await
        .expect("replay");
    assert_eq!(replay.status(), 422, "replay cannot move the cursor forward");

    let status: api::learner::LearnerStatus = http
        .get(format!("{}/v1/status", learner.url))
        .send()
        .await
        .expect("status")
        .json()
        .await
        .expect("json");
    assert_eq!(status.subscriptions.len(), 1);

    let deleted = http
        .delete(format!("{}/v1/subscriptions/{}", learner.url, created.id))
        .send()
        .await;
    assert_eq!(deleted.expect("delete").status(), 204);
    let gone = http
        .get(format!("{}/v1/subscriptions/{}", learner.url, created.id))
        .send()
        .await
        .expect("get");
    assert_eq!(gone.status(), 404);
    assert_eq!(gone.headers()["content-type"], "application/problem+json");
    let again = http
        .delete(format!("{}/v1/subscriptions/{}", learner.url, created.id))
        .send()
        .await;
    assert_eq!(again.expect("delete").status(), 404);
    for path in ["enable", "replay"] {
        let response = http
            .post(format!("{}/v1/subscriptions/nope/{path}", learner.url))
            .json(&json!({"from_slot": 0}))
            .send()
            .await
            .expect("post");
        assert_eq!(response.status(), 404, "{path}");
    }
    learner.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_subscriptions_are_refused_and_nothing_is_stored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let learner = start_learner(test_config(dir.path(), no_acceptors())).await;
    let http = client();
    let long_name = "x".repeat(65);
    let many: Vec<String> = (0..101).map(|i| format!("s{i}")).collect();
    let cases: Vec<(serde_json::Value, u16)> = vec![
        (json!({"url": "not a url"}), 422),
        (json!({"url": "ftp://example.com/x"}), 422),
        (json!({"url": "http://user:pw@example.com/x"}), 422),
        (json!({"url": "file:///etc/passwd"}), 422),
        (
            json!({"url": format!("http://example.com/{}", "a".repeat(3000))}),
            422,
        ),
        (json!({"url": "http://example.com/", "sequences": []}), 422),
        (json!({"url": "http://example.com/", "sequences": ["a b"]}), 422),
        (
            json!({"url": "http://example.com/", "sequences": [long_name]}),
            422,
        ),
        (json!({"url": "http://example.com/", "sequences": many}), 422),
        (json!({"url": "http://example.com/", "color": "red"}), 422),
        (json!({"url": 5}), 422),
        (json!({}), 422),
    ];
    for (body, status) in cases {
        let response = http
            .post(format!("{}/v1/subscriptions", learner.url))
            .json(&body)
            .send()
            .await
            .expect("post");
        assert_eq!(response.status().as_u16(), status, "{body}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json",
            "{body}"
        );
    }
    let not_json = http
        .post(format!("{}/v1/subscriptions", learner.url))
        .header("content-type", "text/plain")
        .body("url=x")
        .send()
        .await
        .expect("post");
    assert_eq!(not_json.status(), 415);
    let malformed = http
        .post(format!("{}/v1/subscriptions", learner.url))
        .header("content-type", "application/json")
        .body("{\"url\":")
        .send()
        .await
        .expect("post");
    assert_eq!(malformed.status(), 400);
    let bad_push = http
        .post(format!("{}/v1/chosen", learner.url))
        .json(
            &json!({"slots": [{"slot": 0, "value": {"kind": "allocations", "allocations": [
            {"sequence": "no spaces", "id": 1, "count": 1}]}}]}),
        )
        .send()
        .await
        .expect("post");
    assert_eq!(bad_push.status(), 422);

    let list: SubscriptionList = http
        .get(format!("{}/v1/subscriptions", learner.url))
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert!(list.subscriptions.is_empty(), "nothing stored: {list:?}");
    assert_eq!(
        learner.state.learning().learned_below(),
        0,
        "the bad push changed nothing"
    );
    learner.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_webhook_targets_are_refused_without_the_flag() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = test_config(dir.path(), no_acceptors());
    config.allow_private_webhooks = false;
    let learner = start_learner(config).await;
    let http = client();
    for url in [
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/hook",
        "http://localhost:8080/hook",
        "http://[::ffff:127.0.0.1]/hook",
    ] {
        let response = http
            .post(format!("{}/v1/subscriptions", learner.url))
            .json(&json!({"url": url}))
            .send()
            .await
            .expect("post");
        assert_eq!(response.status(), 422, "{url}");
        let problem: api::problem::Problem = response.json().await.expect("problem");
        let detail = problem.detail.unwrap_or_default();
        assert!(
            detail.contains("may not target") && detail.contains("--allow-private-webhooks"),
            "{detail}"
        );
    }
    let list: SubscriptionList = http
        .get(format!("{}/v1/subscriptions", learner.url))
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert!(list.subscriptions.is_empty());
    learner.stop().await;

    let dir = tempfile::tempdir().expect("tempdir");
    let learner = start_learner(test_config(dir.path(), no_acceptors())).await;
    learner.subscribe(json!({"url": "http://10.0.0.1/hook"})).await;
    learner.stop().await;
}

/// A name that passes registration but resolves to loopback is refused at
/// connect time: nothing reaches the server behind it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_resolving_to_loopback_is_refused_at_connect_time() {
    let subscriber = Subscriber::start().await;
    let port = subscriber
        .url
        .split(':')
        .nth(2)
        .and_then(|p| p.split('/').next())
        .expect("port")
        .to_owned();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = test_config(dir.path(), no_acceptors());
    config.allow_private_webhooks = false;
    let learner = start_learner(config).await;
    // `localhost.` variants are refused by name; a name under a public
    // suffix that resolves to 127.0.0.1 is what rebinding looks like. The
    // resolver only sees names, so use one from /etc/hosts if present.
    let hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    let Some(name) = hosts
        .lines()
        .filter(|l| l.starts_with("127.") || l.starts_with("::1"))
        .flat_map(|l| l.split_whitespace().skip(1))
        .find(|n| !n.contains("localhost") && !n.starts_with('#'))
    else {
        eprintln!("SKIPPED: /etc/hosts has no non-localhost name for loopback");
        learner.stop().await;
        return;
    };
    let created = learner
        .subscribe(json!({"url": format!("http://{name}:{port}/hook")}))
        .await;
    learner.push(default_slots(0..1)).await;
    wait_for("the subscription to be failing", || {
        learner
            .state
            .subscriptions()
            .get(&created.id)
            .map(|v| v.state == "failing")
            .unwrap_or(false)
    })
    .await;
    assert_eq!(
        subscriber.count(),
        0,
        "the guarded resolver let a loopback connection through"
    );
    learner.stop().await;
}

/// Issue 15, scoped credentials: the cluster token guards the internal
/// routes only; the subscription API is open until a subscription token is
/// set, and then takes any of its tokens (rotation) and never the cluster's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_scope_takes_its_own_tokens_and_the_probes_none() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = test_config(dir.path(), no_acceptors());
    config.cluster_token = service::Tokens::new(&["s3cret,older".into()], None);
    let learner = start_learner(config.clone()).await;
    let http = client();
    let get = |path: &str, token: Option<&str>| {
        let mut request = http.get(format!("{}{path}", learner.url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    assert_eq!(get("/v1/status", None).await.expect("get").status(), 401);
    for token in ["s3cret", "older"] {
        assert_eq!(get("/v1/status", Some(token)).await.expect("get").status(), 200);
    }
    assert_eq!(
        get("/v1/subscriptions", None).await.expect("get").status(),
        200,
        "no subscription token: that scope is open"
    );
    let push = http
        .post(format!("{}/v1/chosen", learner.url))
        .json(&json!({"slots": []}))
        .send()
        .await;
    assert_eq!(push.expect("push").status(), 401);
    for path in ["/livez", "/healthz", "/readyz", "/metrics"] {
        let response = http
            .get(format!("{}{path}", learner.url))
            .send()
            .await
            .expect("get");
        assert_eq!(response.status(), 200, "{path}");
    }
    learner.stop().await;

    // With subscription tokens: any of them, and not the cluster's.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = test_config(dir.path(), no_acceptors());
    config.cluster_token = service::Tokens::new(&["s3cret".into()], None);
    config.subscription_token = service::Tokens::new(&["sub-new".into(), "sub-old".into()], None);
    let learner = start_learner(config).await;
    let get = |token: Option<&str>| {
        let mut request = http.get(format!("{}/v1/subscriptions", learner.url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    for (token, expected) in [
        (None, 401),
        (Some("s3cret"), 401),
        (Some("sub-new"), 200),
        (Some("sub-old"), 200),
    ] {
        assert_eq!(get(token).await.expect("get").status(), expected, "{token:?}");
    }
    learner.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_number_of_subscriptions_is_bounded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = test_config(dir.path(), no_acceptors());
    config.subscriptions_max = 2;
    let learner = start_learner(config).await;
    learner.subscribe(json!({"url": "http://127.0.0.1:1/a"})).await;
    learner.subscribe(json!({"url": "http://127.0.0.1:1/b"})).await;
    let response = client()
        .post(format!("{}/v1/subscriptions", learner.url))
        .json(&json!({"url": "http://127.0.0.1:1/c"}))
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), 409);
    learner.stop().await;
}

/// `POST /v1/subscriptions/{id}/ping`: one signed `ping` webhook, sent at
/// once and reported (status, latency, error), never retried, and the
/// subscription does not move.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ping_sends_one_signed_test_event_and_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let learner = start_learner(test_config(dir.path(), no_acceptors())).await;
    let receiver = Subscriber::start().await;
    // Nothing is learned, so the only webhooks it can get are pings.
    let created = learner.subscribe(json!({ "url": receiver.url })).await;
    let before = learner.view(&created.id).await;
    let http = client();
    let ping = |id: &str| {
        http.post(format!("{}/v1/subscriptions/{id}/ping", learner.url))
            .send()
    };

    let answer = ping(&created.id).await.expect("ping");
    assert_eq!(answer.status(), 200);
    let result: PingResult = answer.json().await.expect("a PingResult");
    assert!(result.delivered && result.error.is_none(), "{result:?}");
    assert_eq!(result.status, Some(200));
    assert!(result.webhook_id.starts_with("ping_"), "{result:?}");
    let got = receiver.received();
    assert_eq!(got.len(), 1);
    assert!(
        verify(&created.secret, &got[0]),
        "signed with the subscription's secret"
    );
    assert_eq!(got[0].header("webhook-id"), result.webhook_id);
    let message: WebhookPingMessage = serde_json::from_slice(&got[0].body).expect("a ping body");
    assert_eq!(message.type_, api::learner::WEBHOOK_PING_TYPE);
    assert_eq!(message.data.subscription, created.id);
    assert_eq!(learner.view(&created.id).await, before);

    // A receiver answering 500: reported, not retried, nothing moves.
    receiver.set_default(Reply::status(500));
    let result: PingResult = ping(&created.id).await.expect("ping").json().await.expect("json");
    assert!(!result.delivered, "{result:?}");
    assert_eq!(result.status, Some(500));
    assert!(
        result.error.as_deref().is_some_and(|e| e.contains("500")),
        "{result:?}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.received().len(), 2, "a failed ping is not retried");
    assert_eq!(
        learner.view(&created.id).await,
        before,
        "not failing, cursor unmoved"
    );

    let missing = ping("sub_nope").await.expect("ping");
    assert_eq!(missing.status(), 404);
    assert_eq!(missing.headers()["content-type"], "application/problem+json");
    learner.stop().await;
}
