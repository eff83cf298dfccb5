//! A client request is one trace: the sequencer's server span continues the
//! caller's `traceparent`, and the accept round to each acceptor is a child
//! span of it. The sequencer runs in-process (so its spans can be captured
//! with the SDK's in-memory exporter); the acceptors are real processes.

// Each test holds the cluster lock for its whole run on purpose: tests run
// on separate threads with separate runtimes, so a std mutex is right here.
#![allow(clippy::await_holding_lock)]

use std::time::Duration;

use clap::Parser;
use opentelemetry::trace::{SpanId, TraceId, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use paxid_tests::cluster::free_port;
use paxid_tests::{serial, Cluster, ClusterSpec};
use tracing_subscriber::layer::SubscriberExt;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN_ID: &str = "00f067aa0ba902b7";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_calls_are_child_spans_of_the_client_request() {
    let _serial = serial();
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("test"));
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer))
        .expect("first subscriber");

    let cluster = Cluster::start(ClusterSpec {
        sequencers: 0,
        ..ClusterSpec::default()
    });
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let args = [
        "paxid-sequencer".to_owned(),
        "--listen".into(),
        format!("127.0.0.1:{port}"),
        "--node-id".into(),
        "1".into(),
        "--acceptors".into(),
        cluster.acceptor_urls().join(","),
        "--advertise-url".into(),
        url.clone(),
    ];
    let config = sequencer::Config::try_parse_from(args).expect("flags");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(sequencer::run(config, async move {
        let _ = stopped.await;
    }));

    paxid_client::install_tls_provider();
    let http = reqwest::Client::new();
    let traceparent = format!("00-{TRACE_ID}-{CALLER_SPAN_ID}-01");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let answer = http
            .post(format!("{url}/next-id"))
            .header("traceparent", &traceparent)
            .send()
            .await;
        if answer.is_ok_and(|r| r.status().is_success()) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the sequencer never served\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Accept calls to the slowest acceptor may end after the reply.
    tokio::time::sleep(Duration::from_millis(500)).await;
    provider.force_flush().expect("flush");
    let spans = exporter.get_finished_spans().expect("spans");
    let _ = stop.send(());
    let _ = server.await;

    let trace_id = TraceId::from_hex(TRACE_ID).expect("hex");
    let in_trace: Vec<&SpanData> = spans
        .iter()
        .filter(|s| s.span_context.trace_id() == trace_id)
        .collect();
    let names: Vec<&str> = in_trace.iter().map(|s| s.name.as_ref()).collect();
    // Every attempt until the one that succeeded carried the same trace id;
    // take the server span of the successful one (the last).
    let server = in_trace
        .iter()
        .filter(|s| {
            s.name == "POST /next-id" && s.parent_span_id == SpanId::from_hex(CALLER_SPAN_ID).expect("hex")
        })
        .max_by_key(|s| s.end_time)
        .unwrap_or_else(|| panic!("no server span in the caller's trace: {names:?}"));
    let accepts: Vec<&&SpanData> = in_trace
        .iter()
        .filter(|s| s.name == "accept" && s.parent_span_id == server.span_context.span_id())
        .collect();
    assert!(
        accepts.len() >= 2,
        "expected an accept span per acceptor under the request span, got {names:?}"
    );
}
