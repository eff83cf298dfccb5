//! Tests of the whole stack as a service sees it: a router built with
//! [`with_standard_layers`], driven with `oneshot` or over real TCP.

use std::time::Duration;

use axum::body::Body;
use axum::routing::{get, post};
use axum::{Json, Router};
use clap::{CommandFactory, Parser};
use http::{header, HeaderMap, Request, StatusCode};
use serde::Deserialize;
use serde_json::Value;
use tower::ServiceExt;

use crate::*;

const TOKEN: &str = "s3cret-token";
const BODY_BYTES_MAX: usize = 1024;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NextIdRequest {
    count: Option<u64>,
}

/// A miniature service: public JSON routes, an internal route behind the
/// cluster token, a slow route, and the health routes.
fn test_app(token: Option<&str>) -> Router {
    let internal = Router::new()
        .route("/v1/ping", get(|| async { "pong" }))
        .route_layer(require_bearer(token.map(str::to_owned)));
    let app = Router::new()
        .route("/echo", post(echo))
        .route("/next-id", post(next_id))
        .route("/slow", get(slow))
        .merge(internal)
        .merge(health_routes(|| async { Ok(()) }));
    let limits = HttpLimits {
        body_bytes_max: BODY_BYTES_MAX,
        request_timeout: Duration::from_millis(200),
    };
    with_standard_layers(app, &limits)
}

async fn echo(JsonBody(request): JsonBody<NextIdRequest>) -> Json<Option<u64>> {
    Json(request.count)
}

async fn next_id(OptionalJsonBody(request): OptionalJsonBody<NextIdRequest>) -> Json<Value> {
    let count = request.map(|request| request.count.unwrap_or(1));
    Json(serde_json::json!({ "count": count }))
}

async fn slow() -> &'static str {
    // Far beyond the test app's request timeout: the timeout answers first.
    tokio::time::sleep(Duration::from_secs(30)).await;
    "late"
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }

    /// Asserts the answer is a problem with this status and type.
    fn assert_problem(&self, status: StatusCode, type_: &str) {
        assert_eq!(self.status, status, "{}", String::from_utf8_lossy(&self.body));
        assert_eq!(self.headers[header::CONTENT_TYPE], api::problem::CONTENT_TYPE);
        let problem: api::problem::Problem = serde_json::from_slice(&self.body).expect("problem");
        assert_eq!(problem.type_, type_);
        assert_eq!(problem.status, status.as_u16());
    }
}

async fn send(app: &Router, request: Request<Body>) -> Answer {
    let response = app.clone().oneshot(request).await.expect("infallible");
    let (parts, body) = response.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.expect("body");
    Answer {
        status: parts.status,
        headers: parts.headers,
        body: body.to_vec(),
    }
}

fn post_json(uri: &str, content_type: Option<&str>, body: impl Into<Body>) -> Request<Body> {
    let mut request = Request::post(uri);
    if let Some(content_type) = content_type {
        request = request.header(header::CONTENT_TYPE, content_type);
    }
    request.body(body.into()).expect("request")
}

fn get_request(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).expect("request")
}

#[tokio::test]
async fn json_body_accepts_valid_json() {
    let answer = send(
        &test_app(None),
        post_json("/echo", Some("application/json"), r#"{"count":3}"#),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json(), serde_json::json!(3));
}

#[tokio::test]
async fn json_body_without_json_content_type_is_415() {
    let app = test_app(None);
    for content_type in [None, Some("text/plain")] {
        let answer = send(&app, post_json("/echo", content_type, r#"{"count":3}"#)).await;
        answer.assert_problem(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            api::problem::UNSUPPORTED_MEDIA_TYPE,
        );
    }
}

#[tokio::test]
async fn json_body_with_bad_syntax_is_400() {
    let answer = send(
        &test_app(None),
        post_json("/echo", Some("application/json"), "{\"count\":"),
    )
    .await;
    answer.assert_problem(StatusCode::BAD_REQUEST, api::problem::MALFORMED_JSON);
}

#[tokio::test]
async fn json_body_with_wrong_types_or_unknown_fields_is_422() {
    let app = test_app(None);
    for body in [r#"{"count":"three"}"#, r#"{"count":1,"extra":true}"#, "[]"] {
        let answer = send(&app, post_json("/echo", Some("application/json"), body)).await;
        answer.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, api::problem::INVALID_REQUEST);
    }
}

#[tokio::test]
async fn body_over_the_limit_is_413_with_or_without_content_length() {
    let app = test_app(None);
    let big = format!(r#"{{"count":1,"pad":"{}"}}"#, "x".repeat(BODY_BYTES_MAX));
    // Declared length: refused by tower-http before the handler runs.
    let mut declared = post_json("/echo", Some("application/json"), big.clone());
    declared
        .headers_mut()
        .insert(header::CONTENT_LENGTH, big.len().into());
    send(&app, declared)
        .await
        .assert_problem(StatusCode::PAYLOAD_TOO_LARGE, api::problem::PAYLOAD_TOO_LARGE);
    // Undeclared length: refused while the extractor reads the body.
    let streamed = post_json("/echo", Some("application/json"), big);
    send(&app, streamed)
        .await
        .assert_problem(StatusCode::PAYLOAD_TOO_LARGE, api::problem::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn optional_json_body_is_none_for_an_empty_body_whatever_the_content_type() {
    let app = test_app(None);
    for content_type in [None, Some("text/plain"), Some("application/json")] {
        let answer = send(&app, post_json("/next-id", content_type, Body::empty())).await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.json(), serde_json::json!({ "count": null }));
    }
}

#[tokio::test]
async fn optional_json_body_parses_a_json_body() {
    let app = test_app(None);
    let content_type = Some("application/json; charset=utf-8");
    let answer = send(&app, post_json("/next-id", content_type, r#"{"count":5}"#)).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json(), serde_json::json!({ "count": 5 }));
}

#[tokio::test]
async fn optional_json_body_rejects_like_json_body() {
    let app = test_app(None);
    let answer = send(&app, post_json("/next-id", Some("text/plain"), "count=5")).await;
    answer.assert_problem(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        api::problem::UNSUPPORTED_MEDIA_TYPE,
    );
    let answer = send(&app, post_json("/next-id", Some("application/json"), "{")).await;
    answer.assert_problem(StatusCode::BAD_REQUEST, api::problem::MALFORMED_JSON);
    let answer = send(
        &app,
        post_json("/next-id", Some("application/json"), r#"{"count":-1}"#),
    )
    .await;
    answer.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, api::problem::INVALID_REQUEST);
}

/// serde's derived structs accept arrays (`[]` = every field defaulted);
/// both extractors take only objects, and still call broken JSON a 400.
#[tokio::test]
async fn only_json_objects_are_bodies() {
    let app = test_app(None);
    for uri in ["/echo", "/next-id"] {
        for body in ["[]", "[1]", "null", "\"count\"", "7", " [ ] "] {
            let answer = send(&app, post_json(uri, Some("application/json"), body)).await;
            answer.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, api::problem::INVALID_REQUEST);
        }
        for body in ["[", "nul", "{} {}", "xyz"] {
            let answer = send(&app, post_json(uri, Some("application/json"), body)).await;
            answer.assert_problem(StatusCode::BAD_REQUEST, api::problem::MALFORMED_JSON);
        }
    }
}

#[tokio::test]
async fn unknown_route_is_404_problem() {
    let answer = send(&test_app(None), get_request("/no/such/route")).await;
    answer.assert_problem(StatusCode::NOT_FOUND, api::problem::NOT_FOUND);
}

#[tokio::test]
async fn wrong_method_is_405_problem_with_allow() {
    let request = Request::delete("/echo").body(Body::empty()).expect("request");
    let answer = send(&test_app(None), request).await;
    answer.assert_problem(StatusCode::METHOD_NOT_ALLOWED, api::problem::METHOD_NOT_ALLOWED);
    assert_eq!(answer.headers[header::ALLOW], "POST");
}

#[tokio::test]
async fn slow_request_is_503_timeout_with_retry_after() {
    let answer = send(&test_app(None), get_request("/slow")).await;
    answer.assert_problem(StatusCode::SERVICE_UNAVAILABLE, api::problem::TIMEOUT);
    assert_eq!(answer.headers[header::RETRY_AFTER], "1");
}

#[tokio::test]
async fn internal_route_requires_the_token_when_configured() {
    let app = test_app(Some(TOKEN));
    let answer = send(&app, get_request("/v1/ping")).await;
    answer.assert_problem(StatusCode::UNAUTHORIZED, api::problem::UNAUTHORIZED);
    assert_eq!(answer.headers[header::WWW_AUTHENTICATE], "Bearer");

    for authorization in ["Bearer wrong-token!", "Basic czNjcmV0LXRva2Vu", TOKEN, "Bearer "] {
        let request = Request::get("/v1/ping").header(header::AUTHORIZATION, authorization);
        let answer = send(&app, request.body(Body::empty()).expect("request")).await;
        answer.assert_problem(StatusCode::UNAUTHORIZED, api::problem::UNAUTHORIZED);
    }

    for authorization in [format!("Bearer {TOKEN}"), format!("bearer {TOKEN}")] {
        let request = Request::get("/v1/ping").header(header::AUTHORIZATION, authorization);
        let answer = send(&app, request.body(Body::empty()).expect("request")).await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.body, b"pong");
    }
}

#[tokio::test]
async fn token_guards_only_internal_routes() {
    let app = test_app(Some(TOKEN));
    assert_eq!(send(&app, get_request("/livez")).await.status, StatusCode::OK);
    let answer = send(&app, get_request("/v1/no-such-route")).await;
    answer.assert_problem(StatusCode::NOT_FOUND, api::problem::NOT_FOUND);
}

#[tokio::test]
async fn without_a_token_internal_routes_are_open() {
    let answer = send(&test_app(None), get_request("/v1/ping")).await;
    assert_eq!(answer.status, StatusCode::OK);
}

#[tokio::test]
async fn livez_and_healthz_answer_200() {
    let app = test_app(None);
    for path in ["/livez", "/healthz"] {
        let answer = send(&app, get_request(path)).await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.json(), serde_json::json!({ "status": "live" }));
    }
}

#[tokio::test]
async fn readyz_reports_the_check() {
    let answer = send(&test_app(None), get_request("/readyz")).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json(), serde_json::json!({ "status": "ready" }));

    let not_ready = health_routes(|| async { Err("no quorum: 1 of 3 acceptors reachable".to_owned()) });
    let answer = send(&not_ready, get_request("/readyz")).await;
    answer.assert_problem(StatusCode::SERVICE_UNAVAILABLE, api::problem::UNAVAILABLE);
    assert_eq!(answer.json()["detail"], "no quorum: 1 of 3 acceptors reachable");
    assert!(answer.headers.contains_key(header::RETRY_AFTER));
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_render_histograms() {
    let app = test_app(None);
    send(
        &app,
        post_json("/echo", Some("application/json"), r#"{"count":1}"#),
    )
    .await;
    send(&app, get_request("/no/such/route/42")).await;

    let answer = send(&app, get_request("/metrics")).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(answer.headers[header::CONTENT_TYPE]
        .to_str()
        .expect("ascii")
        .starts_with("text/plain"));
    let text = String::from_utf8(answer.body).expect("utf-8");
    let has_line = |parts: &[&str]| {
        text.lines()
            .any(|line| parts.iter().all(|part| line.contains(part)))
    };
    assert!(
        has_line(&[
            "paxid_http_requests_total{",
            r#"route="/echo""#,
            r#"method="POST""#,
            r#"status="200""#
        ]),
        "{text}"
    );
    assert!(
        has_line(&[
            "paxid_http_requests_total{",
            r#"route="unmatched""#,
            r#"status="404""#
        ]),
        "{text}"
    );
    assert!(
        !text.contains("/no/such/route/42"),
        "raw paths must not become labels"
    );
    assert!(
        has_line(&[
            "paxid_http_request_duration_seconds_bucket{",
            r#"route="/echo""#,
            r#"le="0.005""#
        ]),
        "{text}"
    );
    assert!(
        text.contains("# TYPE paxid_http_request_duration_seconds histogram"),
        "{text}"
    );
}

#[test]
fn install_metrics_is_idempotent() {
    let first = install_metrics();
    metrics::counter!("paxid_test_idempotent_total").increment(1);
    assert!(install_metrics()
        .render()
        .contains("paxid_test_idempotent_total 1"));
    assert!(first.render().contains("paxid_test_idempotent_total"));
}

#[tokio::test]
async fn serves_over_tcp_and_shuts_down_gracefully() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, test_app(Some(TOKEN)), async {
        let _ = stopped.await;
    }));

    paxid_client::install_tls_provider();
    let client = reqwest::Client::new();
    let base = format!("http://{addr}");
    let live = client.get(format!("{base}/livez")).send().await.expect("livez");
    assert_eq!(live.status(), StatusCode::OK);
    let denied = client.get(format!("{base}/v1/ping")).send().await.expect("ping");
    assert_eq!(denied.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(denied.headers()[header::CONTENT_TYPE], api::problem::CONTENT_TYPE);
    let allowed = client
        .get(format!("{base}/v1/ping"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("ping");
    assert_eq!(allowed.status(), StatusCode::OK);
    let empty = client
        .post(format!("{base}/next-id"))
        .send()
        .await
        .expect("next-id");
    assert_eq!(empty.status(), StatusCode::OK);

    stop.send(()).expect("server still running");
    let stopped = tokio::time::timeout(Duration::from_secs(10), server).await;
    stopped
        .expect("shut down in time")
        .expect("no panic")
        .expect("no I/O error");
}

#[derive(Debug, Parser)]
struct TestCli {
    #[command(flatten)]
    common: CommonArgs,
}

#[test]
fn common_args_parse_flags_and_defaults() {
    let cli = TestCli::try_parse_from(["paxid-test", "--listen", "0.0.0.0:7000", "--log-format", "json"])
        .expect("parses");
    assert_eq!(cli.common.listen, "0.0.0.0:7000");
    assert_eq!(cli.common.log_format, telemetry::LogFormat::Json);
    assert_eq!(cli.common.cluster_token, None);
    assert_eq!(cli.common.limits(), HttpLimits::default());
}

#[test]
fn common_args_refuse_an_empty_token_and_zero_limits() {
    for bad in [
        ["--cluster-token", ""],
        ["--body-limit-bytes", "0"],
        ["--request-timeout-ms", "0"],
    ] {
        let args = ["paxid-test", "--listen", "127.0.0.1:1"].into_iter().chain(bad);
        assert!(TestCli::try_parse_from(args).is_err(), "{bad:?} accepted");
    }
}

#[test]
fn every_common_flag_names_its_env_var_and_hides_the_token() {
    let help = TestCli::command().render_long_help().to_string();
    for env in [
        "PAXID_LISTEN",
        "PAXID_LOG_FORMAT",
        "PAXID_CLUSTER_TOKEN",
        "PAXID_BODY_LIMIT_BYTES",
        "PAXID_REQUEST_TIMEOUT_MS",
    ] {
        assert!(
            help.contains(&format!("env: {env}")),
            "{env} missing from:\n{help}"
        );
    }
    for arg in TestCli::command().get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        if long == "help" {
            continue;
        }
        let expected = format!("PAXID_{}", long.to_uppercase().replace('-', "_"));
        assert_eq!(
            arg.get_env().and_then(|env| env.to_str()),
            Some(expected.as_str())
        );
    }
}

#[test]
fn api_error_display_and_accessors() {
    let error = ApiError::unavailable("no leader", 2).with_extension("leader", Value::Null);
    assert_eq!(error.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(error.problem().extensions["leader"], Value::Null);
    assert_eq!(error.to_string(), "503 Service Unavailable: no leader");
}

// ---- a body far over the limit, over real TCP ----------------------------

/// Serves the test app on a loopback port until the test ends.
async fn serve_test_app() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(serve(listener, test_app(None), std::future::pending()));
    addr
}

/// What a client sending a body far over the limit went through.
#[derive(Debug)]
struct Oversized {
    /// The first write that failed (a reset or broken pipe).
    write_error: Option<String>,
    /// The status line read back, or why none was.
    status_line: Result<String, String>,
}

/// Sends `POST /next-id` with a declared body of `body_bytes` in 64 KiB
/// writes with short pauses, as a client on a real link does, then reads
/// the status line. A write error does not end the attempt: a careful
/// client still tries to read the answer (many clients give up there).
async fn post_oversized(addr: std::net::SocketAddr, body_bytes: usize) -> Oversized {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST /next-id HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {body_bytes}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.expect("write the head");
    let chunk = vec![b' '; 64 * 1024];
    let mut sent = 0;
    let mut write_error = None;
    while sent < body_bytes {
        let n = chunk.len().min(body_bytes - sent);
        if let Err(error) = stream.write_all(&chunk[..n]).await {
            write_error = Some(format!("{error} after {sent} body bytes"));
            break;
        }
        sent += n;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let mut answer = Vec::new();
    let mut buffer = [0u8; 1024];
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        while !answer.windows(2).any(|w| w == b"\r\n") {
            match stream.read(&mut buffer).await {
                Ok(0) => return Err("end of stream".to_owned()),
                Ok(n) => answer.extend_from_slice(&buffer[..n]),
                Err(error) => return Err(error.to_string()),
            }
        }
        Ok(())
    })
    .await;
    let line = String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned();
    let status_line = match read {
        Ok(Ok(())) => Ok(line),
        Ok(Err(error)) => Err(format!("{error} (read {line:?})")),
        Err(_) => Err("nothing within 10 s".to_owned()),
    };
    Oversized {
        write_error,
        status_line,
    }
}

/// Issue 12: a client still sending a 2 MiB body sometimes got a broken
/// pipe or a reset instead of the 413, because the server closed the
/// connection with the body unread. Every write must go through and the
/// 413 must be read back, every time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_still_sending_2_mib_reads_the_413_every_time() {
    let addr = serve_test_app().await;
    for attempt in 0..20 {
        let outcome = post_oversized(addr, 2 * 1024 * 1024).await;
        let answered = outcome
            .status_line
            .as_deref()
            .is_ok_and(|line| line.starts_with("HTTP/1.1 413"));
        assert!(
            answered && outcome.write_error.is_none(),
            "attempt {attempt}: {outcome:?}"
        );
    }
}

/// The same through an ordinary HTTP client sending as fast as it can.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reqwest_sending_2_mib_gets_the_413_problem_every_time() {
    let addr = serve_test_app().await;
    paxid_client::install_tls_provider();
    let client = reqwest::Client::new();
    let body = vec![b' '; 2 * 1024 * 1024];
    for attempt in 0..20 {
        let response = client
            .post(format!("http://{addr}/next-id"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(body.clone())
            .send()
            .await;
        let status = response.as_ref().map(reqwest::Response::status);
        assert!(
            matches!(status, Ok(StatusCode::PAYLOAD_TOO_LARGE)),
            "attempt {attempt}: {response:?}"
        );
        let problem: api::problem::Problem = response.expect("checked").json().await.expect("a problem body");
        assert_eq!(problem.type_, api::problem::PAYLOAD_TOO_LARGE);
    }
}

/// Reads one response (head and `Content-Length` body) from `stream`;
/// returns the head, lowercased.
async fn read_response(stream: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut data = Vec::new();
    let mut buffer = [0u8; 4096];
    let read = async {
        loop {
            if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&data[..end]).to_ascii_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|line| line.strip_prefix("content-length:"))
                    .and_then(|value| value.trim().parse().ok())
                    .unwrap_or(0);
                if data.len() >= end + 4 + length {
                    return head;
                }
            }
            let n = stream.read(&mut buffer).await.expect("read");
            assert!(
                n > 0,
                "the connection closed: {:?}",
                String::from_utf8_lossy(&data)
            );
            data.extend_from_slice(&buffer[..n]);
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("a response within 10 s")
}

/// A drained 413 leaves the connection usable: the next request on it is
/// answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_drained_413_the_connection_carries_the_next_request() {
    use tokio::io::AsyncWriteExt;
    let addr = serve_test_app().await;
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let body = vec![b' '; 256 * 1024];
    let head = format!(
        "POST /next-id HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("head");
    stream.write_all(&body).await.expect("body");
    let first = read_response(&mut stream).await;
    assert!(first.starts_with("http/1.1 413"), "{first}");
    assert!(!first.contains("connection: close"), "{first}");
    stream
        .write_all(b"POST /next-id HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        .await
        .expect("second request");
    let second = read_response(&mut stream).await;
    assert!(second.starts_with("http/1.1 200"), "{second}");
}

/// A chunked body (no `Content-Length`) over the limit is found out while
/// reading, and drained too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_body_over_the_limit_is_drained_before_the_413() {
    use tokio::io::AsyncWriteExt;
    let addr = serve_test_app().await;
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(
            b"POST /next-id HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
              Transfer-Encoding: chunked\r\n\r\n",
        )
        .await
        .expect("head");
    let chunk = format!("10000\r\n{}\r\n", " ".repeat(0x10000));
    for _ in 0..32 {
        stream
            .write_all(chunk.as_bytes())
            .await
            .expect("no reset while sending");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    stream.write_all(b"0\r\n\r\n").await.expect("last chunk");
    let answer = read_response(&mut stream).await;
    assert!(answer.starts_with("http/1.1 413"), "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");
}

/// Bodies past the drain bound, and bodies the client has not sent yet
/// (`Expect: 100-continue`), are not read: the 413 comes at once and
/// closes the connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_not_worth_draining_get_413_and_connection_close_at_once() {
    use tokio::io::AsyncWriteExt;
    let addr = serve_test_app().await;
    let huge = DRAIN_BYTES_MIN.max(4 * BODY_BYTES_MAX) + 1;
    for extra in ["", "Expect: 100-continue\r\n"] {
        let length = if extra.is_empty() {
            huge
        } else {
            2 * BODY_BYTES_MAX
        };
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let head = format!(
            "POST /next-id HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{extra}\
             Content-Length: {length}\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).await.expect("head");
        let answer = read_response(&mut stream).await;
        assert!(answer.starts_with("http/1.1 413"), "{extra:?}: {answer}");
        assert!(answer.contains("connection: close"), "{extra:?}: {answer}");
        assert!(!answer.contains("100 continue"), "{extra:?}: {answer}");
    }
}

/// A body that stops coming is bounded by the request timeout, as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_body_gets_the_timeout_503() {
    use tokio::io::AsyncWriteExt;
    let addr = serve_test_app().await;
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
              Content-Length: 100\r\n\r\n{\"count\":",
        )
        .await
        .expect("head");
    let answer = read_response(&mut stream).await;
    assert!(answer.starts_with("http/1.1 503"), "{answer}");
    assert!(answer.contains("retry-after"), "{answer}");
}
