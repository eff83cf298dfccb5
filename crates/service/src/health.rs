//! Probes and Prometheus metrics.

use std::future::Future;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use api::routes;
use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use http::{header, HeaderValue, Method};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::ApiError;

/// Longest `/readyz` waits for the service's readiness check before it
/// answers 503, so a probe never hangs on an unreachable peer. Probes
/// should allow at least this long (Kubernetes `timeoutSeconds` ≥ 3).
pub const READY_CHECK_TIMEOUT_MS: u64 = 2_000;

/// `GET /livez` and its alias `/healthz` (200 whenever the process
/// answers), `GET /readyz` (200 when `ready` resolves `Ok`, else 503
/// problem+json with the reason), and `GET /metrics` (Prometheus text).
///
/// `ready` is the service's own check: for an acceptor, the store is open
/// and writable; for a sequencer, the leader and a quorum are reachable.
///
/// Generic over the router state so it can be merged before or after
/// `with_state`; its handlers use no state.
pub fn health_routes<S, F, Fut>(ready: F) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    F: Fn() -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    // Installed now rather than at the first scrape, so that metrics
    // recorded before it are not lost.
    install_metrics();
    Router::new()
        .route(routes::LIVEZ, get(livez))
        .route(routes::HEALTHZ, get(livez))
        .route(routes::READYZ, get(move || readyz(ready())))
        .route(routes::METRICS, get(render_metrics))
}

/// `GET /openapi.json`: the service's OpenAPI document (static JSON),
/// open to every caller like the probes.
pub fn openapi_route<S>(document: &'static str) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let json = HeaderValue::from_static("application/json");
    Router::new().route(
        routes::OPENAPI,
        get(move || async move { ([(header::CONTENT_TYPE, json)], document) }),
    )
}

/// Installs the process-wide Prometheus recorder on the first call and
/// returns its handle on every call.
///
/// Every histogram whose name ends in `_seconds` renders as a Prometheus
/// histogram with latency buckets from 0.5 ms to 10 s.
pub fn install_metrics() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(build_and_install).clone()
}

/// Axum middleware recording `paxid_http_requests_total{route,method,status}`
/// and `paxid_http_request_duration_seconds{route}`.
///
/// `route` is the matched route template (`/v1/subscriptions/{id}`), or
/// `unmatched`: raw paths would create a series per ID.
pub async fn track_metrics(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = match request.extensions().get::<MatchedPath>() {
        Some(path) => path.as_str().to_owned(),
        None => "unmatched".to_owned(),
    };
    let method = method_label(request.method());
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!(HTTP_REQUESTS_TOTAL, "route" => route.clone(), "method" => method, "status" => status)
        .increment(1);
    metrics::histogram!(HTTP_REQUEST_DURATION_SECONDS, "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

const HTTP_REQUESTS_TOTAL: &str = "paxid_http_requests_total";
const HTTP_REQUEST_DURATION_SECONDS: &str = "paxid_http_request_duration_seconds";
const SECONDS_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// How often histogram samples are folded into buckets when nobody scrapes,
/// so their buffers stay bounded.
const METRICS_UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

async fn livez() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "live" }))
}

async fn readyz(check: impl Future<Output = Result<(), String>>) -> Result<Response, ApiError> {
    let timeout = Duration::from_millis(READY_CHECK_TIMEOUT_MS);
    match tokio::time::timeout(timeout, check).await {
        Ok(Ok(())) => Ok(Json(serde_json::json!({ "status": "ready" })).into_response()),
        Ok(Err(reason)) => Err(ApiError::unavailable(reason, 1)),
        Err(_) => Err(ApiError::unavailable("the readiness check timed out", 1)),
    }
}

async fn render_metrics() -> Response {
    let mut body = install_metrics().render();
    crate::process_metrics::render(&mut body);
    let content_type = HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8");
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

fn build_and_install() -> PrometheusHandle {
    let builder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), SECONDS_BUCKETS);
    let builder = match builder {
        Ok(builder) => builder,
        // Only an empty bucket list fails, and ours is a non-empty constant.
        Err(error) => unreachable!("invalid histogram buckets: {error}"),
    };
    let recorder = builder.build_recorder();
    let handle = recorder.handle();
    if let Err(error) = metrics::set_global_recorder(recorder) {
        // Another recorder was installed first (an embedding test harness);
        // ours then renders only what it was given.
        tracing::warn!(%error, "metrics recorder already installed; /metrics will be empty");
    }
    spawn_upkeep(handle.clone());
    describe_http_metrics();
    record_build_info();
    handle
}

fn spawn_upkeep(handle: PrometheusHandle) {
    // A plain thread, because the first call may come before any runtime.
    let spawned = std::thread::Builder::new()
        .name("metrics-upkeep".to_owned())
        .spawn(move || loop {
            std::thread::sleep(METRICS_UPKEEP_INTERVAL);
            handle.run_upkeep();
        });
    if let Err(error) = spawned {
        tracing::warn!(%error, "no metrics upkeep thread; histograms drain only when scraped");
    }
}

fn describe_http_metrics() {
    metrics::describe_counter!(
        HTTP_REQUESTS_TOTAL,
        "HTTP requests answered, by route, method and status."
    );
    metrics::describe_histogram!(
        HTTP_REQUEST_DURATION_SECONDS,
        metrics::Unit::Seconds,
        "Time from request received to response headers ready, by route."
    );
}

/// `paxid_build_info{version, binary} 1`: which build answers, for
/// dashboards and `count by (version)` during a rolling upgrade.
fn record_build_info() {
    let binary = std::env::args()
        .next()
        .and_then(|arg0| {
            std::path::Path::new(&arg0)
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
        })
        .unwrap_or_default();
    metrics::describe_gauge!("paxid_build_info", "Always 1; the labels name the build.");
    metrics::gauge!("paxid_build_info", "version" => env!("CARGO_PKG_VERSION"), "binary" => binary).set(1.0);
}

/// Standard methods by name; anything else is one `OTHER` label, so a
/// client cannot create unbounded series.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "OTHER",
    }
}
