//! Reading the whole request body before the handler runs, so that no
//! answer leaves with part of the body still unread.
//!
//! A server that closes a connection while request bytes are still in its
//! receive buffer makes the kernel send a reset instead of a clean close;
//! the client may then lose the answer it was about to read. A client still
//! sending a body over the limit saw "broken pipe" or "connection reset"
//! instead of the 413. nginx's answer is the lingering close; ours is the
//! same idea: read and discard what the client sends, within bounds
//! ([`DRAIN_BYTES_MIN`], [`DRAIN_TIME_MAX`]), and only then answer. When the
//! bounds are hit the answer says `Connection: close`.
//!
//! A body within the limit is read here too (handlers read it whole
//! anyway), so a handler or layer that answers without reading it (401,
//! 404, 405) cannot leave bytes behind either.

use std::pin::Pin;
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{header, HeaderMap, HeaderValue};

use crate::layers::{HttpLimits, REQUEST_TIMEOUT_RETRY_AFTER_S};
use crate::ApiError;

/// An oversized body is read and discarded up to this many bytes, or four
/// times the body limit if that is more, before the 413 is sent.
pub const DRAIN_BYTES_MIN: usize = 4 * 1024 * 1024;
/// Longest an oversized body is drained; the 413 then leaves anyway.
pub const DRAIN_TIME_MAX: Duration = Duration::from_secs(5);

/// Middleware: reads the request body (at most `body_bytes_max`, within
/// `request_timeout`) before the rest of the stack runs; answers 413 after
/// draining a body over the limit.
pub(crate) async fn read_body_first(
    State(limits): State<HttpLimits>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    if body.is_end_stream() {
        return next.run(Request::from_parts(parts, body)).await;
    }
    let limit = limits.body_bytes_max;
    let drain_max = limit.saturating_mul(4).max(DRAIN_BYTES_MIN);
    if let Some(declared) = content_length(&parts.headers) {
        if declared > limit as u64 {
            // A client waiting for `100 Continue` has not sent the body: it
            // is never asked for. Past the drain bound, reading is wasted.
            let drained = !expects_continue(&parts.headers)
                && declared <= drain_max as u64
                && drain(body, 0, drain_max).await;
            return too_large(limit, drained);
        }
    }
    let read = tokio::time::timeout(limits.request_timeout, read_within(body, limit)).await;
    match read {
        Ok(Read::Complete(bytes)) => next.run(Request::from_parts(parts, Body::from(bytes))).await,
        Ok(Read::TooLarge { rest, seen }) => too_large(limit, drain(rest, seen, drain_max).await),
        Ok(Read::Failed(error)) => {
            close(ApiError::bad_request(format!("cannot read the request body: {error}")).into_response())
        }
        Err(_) => close(ApiError::timeout(REQUEST_TIMEOUT_RETRY_AFTER_S).into_response()),
    }
}

/// What reading a body within the limit gave.
enum Read {
    Complete(Bytes),
    /// Over the limit after `seen` bytes; `rest` is still unread.
    TooLarge {
        rest: Body,
        seen: usize,
    },
    Failed(axum::Error),
}

async fn read_within(mut body: Body, limit: usize) -> Read {
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut seen = 0usize;
    loop {
        match next_frame(&mut body).await {
            None => break,
            Some(Err(error)) => return Read::Failed(error),
            Some(Ok(data)) => {
                seen = seen.saturating_add(data.len());
                if seen > limit {
                    return Read::TooLarge { rest: body, seen };
                }
                if !data.is_empty() {
                    chunks.push(data);
                }
            }
        }
    }
    let bytes = match chunks.len() {
        0 => Bytes::new(),
        1 => chunks.swap_remove(0),
        _ => Bytes::from(chunks.concat()),
    };
    Read::Complete(bytes)
}

/// Reads and discards `body` to its end, while the total (counting `seen`
/// bytes already read) stays within `bytes_max` and [`DRAIN_TIME_MAX`]
/// has not passed. True if the end was reached.
async fn drain(mut body: Body, seen: usize, bytes_max: usize) -> bool {
    let read = async {
        let mut seen = seen;
        loop {
            match next_frame(&mut body).await {
                None => return true,
                Some(Err(_)) => return false,
                Some(Ok(data)) => {
                    seen = seen.saturating_add(data.len());
                    if seen > bytes_max {
                        return false;
                    }
                }
            }
        }
    };
    tokio::time::timeout(DRAIN_TIME_MAX, read).await.unwrap_or(false)
}

/// The next data frame's bytes (trailers count as empty data).
async fn next_frame(body: &mut Body) -> Option<Result<Bytes, axum::Error>> {
    let frame = std::future::poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx)).await?;
    Some(frame.map(|frame| frame.into_data().unwrap_or_default()))
}

/// The 413 problem; `Connection: close` unless the body was read to its end.
fn too_large(limit: usize, drained: bool) -> Response {
    let response =
        ApiError::payload_too_large(format!("the request body is larger than {limit} bytes")).into_response();
    if drained {
        response
    } else {
        close(response)
    }
}

/// Asks the server to close the connection after this answer: part of the
/// request may still be unread, so the connection cannot carry another.
fn close(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn expects_continue(headers: &HeaderMap) -> bool {
    headers
        .get(header::EXPECT)
        .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}
