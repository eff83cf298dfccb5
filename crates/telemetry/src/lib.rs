//! Logging and distributed tracing shared by every paxid binary.
//!
//! [`init`] installs the process-wide `tracing` subscriber: human or JSON
//! logs on stderr, filtered by `RUST_LOG`, and, when the standard
//! `OTEL_EXPORTER_OTLP_ENDPOINT` variable is set, span export over
//! OTLP/HTTP. [`trace_http`] and [`inject_trace_headers`] carry the W3C
//! `traceparent` across service hops, so one client call to the sequencer
//! shows up as one trace spanning the acceptors it reached.

use std::str::FromStr;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// The standard OpenTelemetry variable that turns span export on.
pub const OTLP_ENDPOINT_ENV: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable, for terminals.
    #[default]
    Pretty,
    /// One JSON object per line, for log collectors.
    Json,
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        <Self as clap::ValueEnum>::from_str(s, true)
    }
}

/// Keeps span export alive; dropping it flushes and shuts the exporter down.
///
/// Hold it in `main` until the server has stopped, so that the spans of the
/// last requests are exported.
#[must_use = "dropping the guard stops span export"]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

/// Installs the global subscriber and the W3C trace-context propagator.
///
/// Logging is best effort: if a subscriber is already installed (a second
/// call, or a test harness), the existing one is kept.
pub fn init(service_name: &str, format: LogFormat) -> TelemetryGuard {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let provider = std::env::var_os(OTLP_ENDPOINT_ENV).and_then(|_| otlp_provider(service_name));
    let otel_layer = provider
        .as_ref()
        .map(|provider| tracing_opentelemetry::layer().with_tracer(provider.tracer(service_name.to_owned())));
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt_layer = match format {
        LogFormat::Pretty => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .boxed(),
    };
    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(fmt_layer)
        .with(otel_layer)
        .try_init();
    if let Err(error) = installed {
        eprintln!("telemetry: keeping the existing tracing subscriber: {error}");
    }
    TelemetryGuard { provider }
}

/// Axum middleware: one span per request, named `METHOD /matched/route`,
/// child of the caller's span when the request carries a `traceparent`.
///
/// Add it with `Router::layer(axum::middleware::from_fn(trace_http))` so the
/// matched route is known when it runs.
pub async fn trace_http(request: Request, next: Next) -> Response {
    let span = request_span(&request);
    let response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    span.record("http.response.status_code", status);
    if response.status().is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
    tracing::debug!(parent: &span, status, "request finished");
    response
}

/// The server span for `request`, with its parent taken from the request's
/// `traceparent` header. Usable on its own as a `tower_http` `make_span_with`.
pub fn request_span<B>(request: &http::Request<B>) -> tracing::Span {
    let method = request.method().as_str();
    let route = request.extensions().get::<MatchedPath>().map(MatchedPath::as_str);
    // Raw paths would make one span name per ID or subscription; OTel asks
    // for the route template, or the bare method when nothing matched.
    let name = match route {
        Some(route) => format!("{method} {route}"),
        None => method.to_owned(),
    };
    let span = tracing::info_span!(
        "http_request",
        otel.name = %name,
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        http.request.method = %method,
        http.route = route.unwrap_or(""),
        url.path = %request.uri().path(),
        http.response.status_code = tracing::field::Empty,
    );
    // An error here means no OpenTelemetry layer is installed (export is
    // off); the span is still a useful log context.
    let _ = span.set_parent(extract_context(request.headers()));
    span
}

/// Writes the current span's context into `headers` as `traceparent` (and
/// `tracestate`), so the next hop joins this trace.
pub fn inject_trace_headers(headers: &mut HeaderMap) {
    let context = tracing::Span::current().context();
    TraceContextPropagator::new().inject_context(&context, &mut HeaderInjector(headers));
}

/// The trace headers for an outgoing call made inside the current span, for
/// `reqwest::RequestBuilder::headers`.
pub fn trace_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    inject_trace_headers(&mut headers);
    headers
}

/// The remote parent context carried by `headers`, empty if there is none
/// or it does not parse.
pub fn extract_context(headers: &HeaderMap) -> opentelemetry::Context {
    // The W3C propagator is used directly rather than the global one, so the
    // wire format does not depend on whether `init` ran.
    TraceContextPropagator::new().extract(&HeaderExtractor(headers))
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        let Some(provider) = self.provider.take() else {
            return;
        };
        // The exporter's blocking HTTP client panics when used on an async
        // runtime thread, and drop may run on one: shut down on a plain thread.
        let shutdown = std::thread::spawn(move || provider.shutdown());
        match shutdown.join() {
            Ok(Ok(())) => {}
            Ok(Err(error)) => eprintln!("telemetry: span export shutdown failed: {error}"),
            Err(_) => eprintln!("telemetry: span export shutdown panicked"),
        }
    }
}

fn otlp_provider(service_name: &str) -> Option<SdkTracerProvider> {
    // The endpoint and headers come from the standard OTEL_* variables.
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .build();
    let exporter = match exporter {
        Ok(exporter) => exporter,
        Err(error) => {
            // Tracing is an aid, not a dependency: run without it.
            eprintln!("telemetry: span export disabled: {error}");
            return None;
        }
    };
    let resource = resource(
        service_name,
        std::env::var("OTEL_SERVICE_NAME").ok(),
        std::env::var("OTEL_RESOURCE_ATTRIBUTES").ok(),
    );
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build();
    opentelemetry::global::set_tracer_provider(provider.clone());
    Some(provider)
}

/// The resource every span carries, from the standard variables as the
/// OpenTelemetry specification says: `OTEL_RESOURCE_ATTRIBUTES` (`k=v,...`),
/// then `OTEL_SERVICE_NAME` over its `service.name`; the binary's name only
/// when neither names the service. `service.version` is this build's, and
/// `service.instance.id` (unless given) the host name and process id,
/// unique per pod.
fn resource(
    default_name: &str,
    otel_service_name: Option<String>,
    resource_attributes: Option<String>,
) -> Resource {
    let mut attributes: Vec<(String, String)> = resource_attributes
        .as_deref()
        .unwrap_or("")
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .filter(|(k, _)| !k.is_empty())
        .collect();
    let mut set =
        |key: &str, value: String, replace: bool| match attributes.iter_mut().find(|(k, _)| k == key) {
            Some(entry) if replace => entry.1 = value,
            Some(_) => {}
            None => attributes.push((key.to_owned(), value)),
        };
    match otel_service_name.filter(|name| !name.is_empty()) {
        Some(name) => set("service.name", name, true),
        None => set("service.name", default_name.to_owned(), false),
    }
    set("service.version", env!("CARGO_PKG_VERSION").to_owned(), false);
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    set(
        "service.instance.id",
        format!("{}-{}", host.trim(), std::process::id()),
        false,
    );
    Resource::builder_empty()
        .with_attributes(
            attributes
                .into_iter()
                .map(|(k, v)| opentelemetry::KeyValue::new(k, v)),
        )
        .build()
}

struct HeaderInjector<'a>(&'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        // The propagator writes `tracestate` even when it has no entries.
        if value.is_empty() {
            return;
        }
        let name = HeaderName::from_bytes(key.as_bytes());
        let value = HeaderValue::from_str(&value);
        if let (Ok(name), Ok(value)) = (name, value) {
            self.0.insert(name, value);
        }
    }
}

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

#[cfg(test)]
mod tests {
    fn attribute(resource: &Resource, key: &str) -> Option<String> {
        resource
            .get(&opentelemetry::Key::from(key.to_owned()))
            .map(|v| v.to_string())
    }

    /// OTEL_SERVICE_NAME wins over the binary's name (the code used to
    /// override it) and over OTEL_RESOURCE_ATTRIBUTES; the binary's name is
    /// the default; given attributes are kept.
    #[test]
    fn the_standard_variables_name_the_service_and_the_binary_is_the_default() {
        let named = resource(
            "paxid-sequencer",
            Some("orders-ids".into()),
            Some("service.name=x".into()),
        );
        assert_eq!(attribute(&named, "service.name").as_deref(), Some("orders-ids"));
        let default = resource("paxid-sequencer", None, None);
        assert_eq!(
            attribute(&default, "service.name").as_deref(),
            Some("paxid-sequencer")
        );
        assert_eq!(
            attribute(&default, "service.version").as_deref(),
            Some(env!("CARGO_PKG_VERSION"))
        );
        let instance = attribute(&default, "service.instance.id").unwrap_or_default();
        assert!(
            instance.ends_with(&format!("-{}", std::process::id())),
            "{instance}"
        );
        let given = resource(
            "paxid-sequencer",
            None,
            Some("service.name=ids, service.instance.id=pod-7,deployment.environment=prod".into()),
        );
        assert_eq!(attribute(&given, "service.name").as_deref(), Some("ids"));
        assert_eq!(attribute(&given, "service.instance.id").as_deref(), Some("pod-7"));
        assert_eq!(
            attribute(&given, "deployment.environment").as_deref(),
            Some("prod")
        );
    }

    use super::*;
    use axum::routing::get;
    use axum::Router;
    use opentelemetry::trace::{SpanId, TraceContextExt, TraceId};
    use opentelemetry_sdk::trace::{InMemorySpanExporter, SpanData};
    use tower::ServiceExt;

    const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const PARENT_SPAN_ID: &str = "00f067aa0ba902b7";

    /// A subscriber that exports every finished span to memory, installed
    /// for the current thread only so tests do not share global state.
    fn capture() -> (
        InMemorySpanExporter,
        SdkTracerProvider,
        tracing::subscriber::DefaultGuard,
    ) {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("test"));
        let guard = tracing_subscriber::registry().with(layer).set_default();
        (exporter, provider, guard)
    }

    fn finished(exporter: &InMemorySpanExporter, provider: &SdkTracerProvider) -> Vec<SpanData> {
        provider.force_flush().expect("flush");
        exporter.get_finished_spans().expect("spans")
    }

    #[tokio::test(flavor = "current_thread")]
    async fn server_span_continues_the_incoming_trace() {
        let (exporter, provider, _guard) = capture();
        let app = Router::new()
            .route("/items/{id}", get(|| async { "ok" }))
            .layer(axum::middleware::from_fn(trace_http));
        let request = http::Request::get("/items/42")
            .header("traceparent", format!("00-{TRACE_ID}-{PARENT_SPAN_ID}-01"))
            .body(axum::body::Body::empty())
            .expect("request");

        let response = app.oneshot(request).await.expect("infallible");

        assert_eq!(response.status(), 200);
        let spans = finished(&exporter, &provider);
        assert_eq!(spans.len(), 1, "{spans:?}");
        let span = &spans[0];
        assert_eq!(span.name, "GET /items/{id}");
        assert_eq!(
            span.span_context.trace_id(),
            TraceId::from_hex(TRACE_ID).expect("hex")
        );
        assert_eq!(
            span.parent_span_id,
            SpanId::from_hex(PARENT_SPAN_ID).expect("hex")
        );
        assert!(span.parent_span_is_remote);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn server_span_without_traceparent_starts_a_new_trace() {
        let (exporter, provider, _guard) = capture();
        let app = Router::new()
            .route("/", get(|| async { "ok" }))
            .layer(axum::middleware::from_fn(trace_http));
        let request = http::Request::get("/")
            .body(axum::body::Body::empty())
            .expect("request");

        app.oneshot(request).await.expect("infallible");

        let spans = finished(&exporter, &provider);
        assert_eq!(spans.len(), 1);
        assert_eq!(spans[0].parent_span_id, SpanId::INVALID);
        assert_ne!(spans[0].span_context.trace_id(), TraceId::INVALID);
    }

    #[test]
    fn injected_traceparent_carries_the_current_trace() {
        let (exporter, provider, _guard) = capture();
        let span = tracing::info_span!("client_call");
        let headers = span.in_scope(trace_headers);
        let expected = span.context().span().span_context().trace_id();
        drop(span);

        assert!(headers.get("tracestate").is_none(), "empty tracestate sent");
        let traceparent = headers["traceparent"].to_str().expect("ascii");
        let fields: Vec<&str> = traceparent.split('-').collect();
        assert_eq!(fields.len(), 4, "{traceparent}");
        assert_eq!(fields[1], expected.to_string());
        let spans = finished(&exporter, &provider);
        assert_eq!(spans.len(), 1);
        assert_eq!(spans[0].span_context.trace_id(), expected);
        assert_eq!(fields[2], spans[0].span_context.span_id().to_string());
    }

    #[test]
    fn no_span_injects_nothing() {
        let mut headers = HeaderMap::new();
        inject_trace_headers(&mut headers);
        assert!(headers.get("traceparent").is_none());
    }

    #[test]
    fn log_format_parses_case_insensitively() {
        assert_eq!("JSON".parse::<LogFormat>(), Ok(LogFormat::Json));
        assert_eq!("pretty".parse::<LogFormat>(), Ok(LogFormat::Pretty));
        assert!("xml".parse::<LogFormat>().is_err());
    }
}
