//! Each webhook attempt runs in a `webhook_delivery` span whose context is
//! sent to the subscriber as `traceparent`.
//!
//! A binary of its own, because it installs the process-wide tracing
//! subscriber: a thread-local one races with other tests over tracing's
//! global callsite cache.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use axum::Router;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use paxid_learner::{app, AppState, Config};
use tracing_subscriber::layer::SubscriberExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_delivery_sends_the_traceparent_of_its_span() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("test"));
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer))
        .expect("first subscriber");

    // The subscriber: records the headers of every webhook, answers 200.
    let received: Arc<Mutex<Vec<HeaderMap>>> = Arc::default();
    let record = received.clone();
    let hook = Router::new().fallback(move |headers: HeaderMap| {
        record.lock().expect("lock").push(headers);
        async { "ok" }
    });
    let hook_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let hook_url = format!("http://{}/hook", hook_listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(hook_listener, hook).await });

    // One acceptor holding slot 0 as chosen: a learner releases only what
    // its acceptors confirm (the push below only makes it read them).
    let value = serde_json::json!({"kind": "allocations",
        "allocations": [{"sequence": "default", "id": 1, "count": 1}]});
    let log = serde_json::json!({"compacted_below": 0, "chosen_below": 1, "entries": [{"slot": 0,
        "ballot": {"epoch": 0, "round": 1, "node": 1}, "value": value, "chosen": true}]});
    let acceptor = Router::new()
        .route(
            "/v1/log",
            axum::routing::get(move || async move { axum::Json(log) }),
        )
        .route(
            "/v1/status",
            axum::routing::get(|| async {
                axum::Json(serde_json::json!({"state": "voting", "compacted_below": 0}))
            }),
        );
    let acceptor_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let acceptor_url = format!("http://{}", acceptor_listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(acceptor_listener, acceptor).await });

    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = Config::new("127.0.0.1:0", dir.path(), vec![acceptor_url]);
    config.allow_private_webhooks = true;
    let state = AppState::start(config).expect("learner starts");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app(state)).await });

    let http = reqwest::Client::new();
    let created = http
        .post(format!("{url}/v1/subscriptions"))
        // From slot 0: the stub acceptor holds the slot already, so the
        // learner may release it before the subscription exists.
        .json(&serde_json::json!({"url": hook_url, "from_slot": 0}))
        .send()
        .await
        .expect("create");
    assert_eq!(created.status(), 201);
    let push = serde_json::json!({"slots": [{"slot": 0, "value": value}]});
    let pushed = http
        .post(format!("{url}/v1/chosen"))
        .json(&push)
        .send()
        .await
        .expect("push");
    assert_eq!(pushed.status(), 204);

    let deadline = Instant::now() + Duration::from_secs(10);
    while received.lock().expect("lock").is_empty() {
        assert!(Instant::now() < deadline, "no webhook arrived");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let headers = received.lock().expect("lock")[0].clone();
    let traceparent = headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let fields: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(fields.len(), 4, "traceparent {traceparent:?}");
    // The span closes only after the learner has read the response, which
    // can be after the subscriber recorded the headers: wait for it too.
    let delivery = loop {
        provider.force_flush().expect("flush");
        let spans = exporter.get_finished_spans().expect("spans");
        if let Some(span) = spans.into_iter().find(|s| s.name == "webhook_delivery") {
            break span;
        }
        assert!(Instant::now() < deadline, "no webhook_delivery span closed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(fields[1], delivery.span_context.trace_id().to_string());
    assert_eq!(fields[2], delivery.span_context.span_id().to_string());
}
