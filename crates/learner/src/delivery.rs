//! Webhook delivery: one task per subscription, strictly in slot order.
//!
//! A message covers a fixed slot range. The range is chosen from the
//! learned log at the cursor and persisted (synced) before the first
//! attempt, and the body is rendered from that range alone, so every retry,
//! including after a restart, sends the same body under the same
//! `webhook-id`. The cursor moves past the range only after a 2xx.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use api::learner::{
    LearnerGap, PingResult, WebhookData, WebhookGapMessage, WebhookMessage, WebhookPingData,
    WebhookPingMessage, WebhookSlot, WEBHOOK_GAP_TYPE, WEBHOOK_PING_TYPE, WEBHOOK_TYPE,
};
use http::{HeaderMap, HeaderValue, StatusCode};
use paxos_core::Value;
use rand::Rng;
use tracing::Instrument;

use crate::learn::Learning;
use crate::signing::SigningKey;
use crate::store::{DeliveryState, PendingMessage, Store, StoreError, SubscriptionRecord};
use crate::subscriptions::Handle;
use crate::{metric, ssrf, SERVICE_NAME};
use service::fatal;

/// Most learned slots looked at while building one message; a longer run of
/// slots with nothing for a subscriber is skipped in steps of this size.
pub const SCAN_SLOTS_MAX: usize = 4096;
/// A `Retry-After` longer than this is cut to it.
pub const RETRY_AFTER_MAX: Duration = Duration::from_secs(3600);
/// JSON around the slots of a body: `{"type":...,"timestamp":...,"data":{"slots":[]}}`.
const ENVELOPE_BYTES: usize = 96;

/// What every delivery task shares.
pub struct DeliveryContext {
    pub store: Store,
    pub learning: Learning,
    pub client: reqwest::Client,
    pub allow_private: bool,
    pub limits: DeliveryLimits,
}

/// Batching and retry limits, from the flags.
#[derive(Debug, Clone, Copy)]
pub struct DeliveryLimits {
    pub message_slots_max: u64,
    pub message_bytes_max: usize,
    pub retry_initial: Duration,
    pub retry_max: Duration,
    pub disable_after_failing: Duration,
}

/// The HTTP client for webhooks: no redirects, no proxy (a proxy would
/// resolve names where the SSRF guard cannot see), and unless private
/// targets are allowed, a resolver that refuses them.
pub fn webhook_client(
    timeout: Duration,
    connect_timeout: Duration,
    allow_private: bool,
) -> Result<reqwest::Client, reqwest::Error> {
    paxid_client::install_tls_provider();
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(timeout)
        .connect_timeout(connect_timeout)
        .user_agent(concat!("paxid-learner/", env!("CARGO_PKG_VERSION")));
    if !allow_private {
        builder = builder.dns_resolver(ssrf::GuardedResolver);
    }
    builder.build()
}

/// The delivery task of one subscription; returns when it is deleted.
pub async fn deliver(handle: Arc<Handle>, context: Arc<DeliveryContext>) {
    let mut learned = context.learning.subscribe();
    let mut failures: u32 = 0;
    while !handle.is_deleted() {
        let record = handle.snapshot();
        if record.state == DeliveryState::Disabled {
            handle.wake.notified().await;
            continue;
        }
        let learned_below = *learned.borrow_and_update();
        let pending = match record.pending {
            Some(pending) => pending,
            None if record.delivered_below >= learned_below => {
                tokio::select! {
                    changed = learned.changed() => if changed.is_err() { return },
                    () = handle.wake.notified() => {}
                }
                continue;
            }
            None => match plan(&context, &record, learned_below) {
                Plan::Skip { end_slot } => {
                    handle.update(&context.store, record.epoch, false, |r| {
                        r.delivered_below = end_slot
                    });
                    continue;
                }
                Plan::Send(pending) => {
                    // Synced: after a crash the same range, hence the same
                    // webhook-id, is sent again.
                    handle.update(&context.store, record.epoch, true, |r| r.pending = Some(pending));
                    continue;
                }
            },
        };
        let outcome = tokio::select! {
            outcome = attempt(&context, &record, pending) => outcome,
            // The operator changed the record (replay, delete): start over.
            () = handle.wake.notified() => continue,
        };
        let retry_after = match settle(&handle, &context, &record, pending, outcome) {
            Settled::Done => {
                failures = 0;
                continue;
            }
            Settled::Retry { retry_after } => retry_after,
        };
        failures = failures.saturating_add(1);
        let delay = backoff(&context.limits, failures, retry_after);
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = handle.wake.notified() => failures = 0,
        }
    }
}

/// The `webhook-id` of a message: the same for every attempt at it.
pub fn message_id(subscription_id: &str, pending: &PendingMessage) -> String {
    if pending.gap {
        return format!(
            "msg_{subscription_id}_gap_{}_{}",
            pending.first_slot, pending.end_slot
        );
    }
    let last = pending.end_slot.saturating_sub(1);
    format!("msg_{subscription_id}_{}_{last}", pending.first_slot)
}

/// The body of a message, rendered from its slot range only.
pub fn render(
    store: &Store,
    record: &SubscriptionRecord,
    pending: &PendingMessage,
) -> Result<Vec<u8>, StoreError> {
    if pending.gap {
        let message = WebhookGapMessage {
            type_: WEBHOOK_GAP_TYPE.to_owned(),
            timestamp: rfc3339(pending.created_ms),
            data: LearnerGap {
                from_slot: pending.first_slot,
                below_slot: pending.end_slot,
            },
        };
        return Ok(serde_json::to_vec(&message).expect("webhook messages serialize"));
    }
    let span = pending.end_slot - pending.first_slot;
    let span = usize::try_from(span).unwrap_or(usize::MAX);
    let slots = store
        .read_log(pending.first_slot, pending.end_slot, span)?
        .into_iter()
        .filter_map(|(slot, value)| webhook_slot(record, slot, &value))
        .collect();
    let message = WebhookMessage {
        type_: WEBHOOK_TYPE.to_owned(),
        timestamp: rfc3339(pending.created_ms),
        data: WebhookData { slots },
    };
    Ok(serde_json::to_vec(&message).expect("webhook messages serialize"))
}

/// RFC 3339 UTC with milliseconds, from unix milliseconds.
pub fn rfc3339(unix_ms: u64) -> String {
    let seconds = unix_ms / 1000;
    let (days, secs_of_day) = (seconds / 86_400, seconds % 86_400);
    let (year, month, day) = civil_from_days(days);
    let (h, m, s) = (secs_of_day / 3600, secs_of_day % 3600 / 60, secs_of_day % 60);
    format!(
        "{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{:03}Z",
        unix_ms % 1000
    )
}

pub fn now_ms() -> u64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}

enum Plan {
    /// Nothing for this subscriber below `end_slot`.
    Skip {
        end_slot: u64,
    },
    Send(PendingMessage),
}

/// Result of one attempt.
#[derive(Debug)]
enum Outcome {
    Delivered,
    Gone,
    Failed {
        reason: String,
        label: &'static str,
        retry_after: Option<Duration>,
    },
}

enum Settled {
    Done,
    Retry { retry_after: Option<Duration> },
}

/// Chooses the next message's range at the cursor: consecutive learned
/// slots, skipping slots with nothing for this subscriber, within the slot
/// and byte limits.
///
/// A skipped range ([`Store::jump`]) holding the cursor is sent as one
/// `ids.gap` message; a range of learned slots stops before the next gap.
fn plan(context: &DeliveryContext, record: &SubscriptionRecord, learned_below: u64) -> Plan {
    let from = record.delivered_below;
    let mut until = learned_below;
    match context.store.next_gap(from) {
        Ok(Some(gap)) if gap.from_slot <= from => {
            return Plan::Send(PendingMessage {
                first_slot: from,
                end_slot: gap.below_slot,
                created_ms: now_ms(),
                gap: true,
            });
        }
        Ok(Some(gap)) => until = until.min(gap.from_slot),
        Ok(None) => {}
        Err(error) => fatal(
            SERVICE_NAME,
            &format!("reading the learner's gaps failed: {error}"),
        ),
    }
    let learned_below = until;
    let log = match context.store.read_log(from, learned_below, SCAN_SLOTS_MAX) {
        Ok(log) => log,
        Err(error) => fatal(SERVICE_NAME, &format!("reading the learned log failed: {error}")),
    };
    let limits = &context.limits;
    let mut first = None;
    let mut end = from;
    let mut slots = 0u64;
    let mut bytes = ENVELOPE_BYTES;
    for (slot, value) in &log {
        let Some(content) = webhook_slot(record, *slot, value) else {
            if first.is_none() {
                end = slot + 1;
            }
            continue;
        };
        let size = serde_json::to_vec(&content).map(|v| v.len() + 1).unwrap_or(0);
        if first.is_some() && (slots >= limits.message_slots_max || bytes + size > limits.message_bytes_max) {
            break;
        }
        first.get_or_insert(*slot);
        slots += 1;
        bytes += size;
        end = slot + 1;
    }
    if log.is_empty() {
        // Every slot below the learned point is in the log, so this is a
        // lost or damaged store: say so rather than spin on it.
        tracing::error!(subscription = %record.id, from, learned_below, "learned slots missing from the store");
        return Plan::Skip {
            end_slot: learned_below,
        };
    }
    match first {
        None => Plan::Skip { end_slot: end },
        Some(first_slot) => Plan::Send(PendingMessage {
            first_slot,
            end_slot: end,
            created_ms: now_ms(),
            gap: false,
        }),
    }
}

/// This subscriber's part of one slot, or `None` if it has nothing for it.
fn webhook_slot(record: &SubscriptionRecord, slot: u64, value: &Value) -> Option<WebhookSlot> {
    let allocations: Vec<api::internal::Allocation> = value
        .allocations()
        .iter()
        .filter(|a| {
            record
                .sequences
                .as_ref()
                .is_none_or(|names| names.iter().any(|n| n == a.sequence.as_str()))
        })
        .map(api::internal::Allocation::from)
        .collect();
    (!allocations.is_empty()).then_some(WebhookSlot { slot, allocations })
}

/// One signed POST of the pending message.
async fn attempt(context: &DeliveryContext, record: &SubscriptionRecord, pending: PendingMessage) -> Outcome {
    let msg_id = message_id(&record.id, &pending);
    let span = tracing::info_span!(
        "webhook_delivery",
        otel.kind = "client",
        subscription = %record.id,
        webhook_id = %msg_id,
        first_slot = pending.first_slot,
        end_slot = pending.end_slot,
        http.response.status_code = tracing::field::Empty,
    );
    let started = Instant::now();
    let outcome = send(context, record, &pending, &msg_id)
        .instrument(span.clone())
        .await;
    let label = match &outcome {
        Outcome::Delivered => "delivered",
        Outcome::Gone => "gone",
        Outcome::Failed { label, .. } => *label,
    };
    metrics::counter!(metric::DELIVERY_ATTEMPTS_TOTAL, "result" => label).increment(1);
    metrics::histogram!(metric::WEBHOOK_DURATION_SECONDS).record(started.elapsed().as_secs_f64());
    tracing::debug!(parent: &span, result = label, "webhook attempt finished");
    outcome
}

async fn send(
    context: &DeliveryContext,
    record: &SubscriptionRecord,
    pending: &PendingMessage,
    msg_id: &str,
) -> Outcome {
    let body = match render(&context.store, record, pending) {
        Ok(body) => body,
        Err(error) => fatal(SERVICE_NAME, &format!("reading the learned log failed: {error}")),
    };
    match post_signed(context, record, msg_id, body).await {
        Ok(response) => {
            let status = response.status();
            tracing::Span::current().record("http.response.status_code", status.as_u16());
            classify(status, response.headers())
        }
        Err(unsent) => Outcome::Failed {
            reason: unsent.reason,
            label: unsent.label,
            retry_after: None,
        },
    }
}

/// Why a webhook was not sent, or got no answer.
struct Unsent {
    reason: String,
    /// The `result` label of the attempt metrics.
    label: &'static str,
}

/// One signed POST of `body` under `msg_id` to the subscription's URL
/// (through the SSRF guard unless private targets are allowed): the answer,
/// whatever its status, or why there is none.
async fn post_signed(
    context: &DeliveryContext,
    record: &SubscriptionRecord,
    msg_id: &str,
    body: Vec<u8>,
) -> Result<reqwest::Response, Unsent> {
    let refused = |reason: String| Unsent {
        reason,
        label: "refused",
    };
    let url =
        reqwest::Url::parse(&record.url).map_err(|e| refused(format!("stored URL does not parse: {e}")))?;
    if !context.allow_private {
        // IP-literal hosts never reach the guarded resolver.
        ssrf::check_url(&url).map_err(refused)?;
    }
    let key = SigningKey::from_secret(&record.secret).map_err(refused)?;
    let timestamp_s = now_ms() / 1000;
    let headers = signed_headers(&key, msg_id, timestamp_s, &body).map_err(refused)?;
    let response = context.client.post(url).headers(headers).body(body).send().await;
    response.map_err(|error| Unsent {
        reason: describe(&error),
        label: if error.is_timeout() {
            "timeout"
        } else {
            "network_error"
        },
    })
}

/// Sends one `ping` webhook to the subscription now: signed like every
/// message, under a `webhook-id` of its own, never retried, and outside
/// the delivery order (the cursor, the pending message and the state stay
/// as they are, so a disabled subscription can be pinged before it is
/// enabled again).
pub async fn ping(context: &DeliveryContext, record: &SubscriptionRecord) -> PingResult {
    let webhook_id = crate::subscriptions::random_id("ping");
    let message = WebhookPingMessage {
        type_: WEBHOOK_PING_TYPE.to_owned(),
        timestamp: rfc3339(now_ms()),
        data: WebhookPingData {
            subscription: record.id.clone(),
        },
    };
    let body = serde_json::to_vec(&message).expect("webhook messages serialize");
    let started = Instant::now();
    let answer = post_signed(context, record, &webhook_id, body).await;
    let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let (status, error) = match answer {
        Ok(response) if response.status().is_success() => (Some(response.status().as_u16()), None),
        Ok(response) => (
            Some(response.status().as_u16()),
            Some(format!("the subscriber answered {}", response.status())),
        ),
        Err(unsent) => (None, Some(unsent.reason)),
    };
    let result = if error.is_none() { "delivered" } else { "failed" };
    metrics::counter!(metric::PINGS_TOTAL, "result" => result).increment(1);
    tracing::info!(subscription = %record.id, webhook_id, result, ?status, latency_ms, "ping sent");
    PingResult {
        webhook_id,
        delivered: error.is_none(),
        status,
        latency_ms,
        error,
    }
}

fn signed_headers(
    key: &SigningKey,
    msg_id: &str,
    timestamp_s: u64,
    body: &[u8],
) -> Result<HeaderMap, String> {
    let mut headers = telemetry::trace_headers();
    let value = |s: String| HeaderValue::from_str(&s).map_err(|e| format!("header value: {e}"));
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert("webhook-id", value(msg_id.to_owned())?);
    headers.insert("webhook-timestamp", HeaderValue::from(timestamp_s));
    headers.insert("webhook-signature", value(key.sign(msg_id, timestamp_s, body))?);
    Ok(headers)
}

fn classify(status: StatusCode, headers: &HeaderMap) -> Outcome {
    // Planted bug (scripts/planted-bugs.sh): the cursor moves past a range
    // the subscriber answered 5xx.
    if status.is_success() || (status.is_server_error() && service::planted::is("learner_cursor_before_2xx"))
    {
        return Outcome::Delivered;
    }
    if status == StatusCode::GONE {
        return Outcome::Gone;
    }
    let label = if status.is_redirection() {
        "redirect"
    } else if status.is_server_error() {
        "server_error"
    } else {
        "client_error"
    };
    let reason = if status.is_redirection() {
        format!("the subscriber answered {status}; redirects are not followed")
    } else {
        format!("the subscriber answered {status}")
    };
    Outcome::Failed {
        reason,
        label,
        retry_after: retry_after(headers),
    }
}

/// `Retry-After` in delay-seconds form; the HTTP-date form is ignored (the
/// backoff applies).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    paxid_client::retry_after(headers).map(|after| after.min(RETRY_AFTER_MAX))
}

/// Applies an attempt's outcome to the record.
fn settle(
    handle: &Handle,
    context: &DeliveryContext,
    record: &SubscriptionRecord,
    pending: PendingMessage,
    outcome: Outcome,
) -> Settled {
    let store = &context.store;
    match outcome {
        Outcome::Delivered => {
            if record.failing_since_ms.is_some() {
                tracing::info!(subscription = %record.id, "webhook delivery recovered");
            }
            // Not synced: a later synced write (the next pending range)
            // carries it to disk, and losing it only resends the same message.
            handle.update(store, record.epoch, false, |r| {
                r.delivered_below = pending.end_slot;
                r.pending = None;
                r.state = DeliveryState::Active;
                r.failing_since_ms = None;
            });
            Settled::Done
        }
        Outcome::Gone => {
            tracing::warn!(subscription = %record.id, "subscriber answered 410 Gone; subscription disabled");
            disable(
                handle,
                store,
                record,
                "the subscriber answered 410 Gone".to_owned(),
            );
            Settled::Done
        }
        Outcome::Failed {
            reason, retry_after, ..
        } => {
            let now = now_ms();
            let since = record.failing_since_ms.unwrap_or(now);
            let failing_for = Duration::from_millis(now.saturating_sub(since));
            if failing_for >= context.limits.disable_after_failing {
                let reason = format!(
                    "failing continuously since {} (longer than --disable-after-failing-ms); last error: {reason}",
                    rfc3339(since)
                );
                tracing::warn!(subscription = %record.id, %reason, "subscription disabled");
                disable(handle, store, record, reason);
                return Settled::Done;
            }
            if record.failing_since_ms.is_none() {
                tracing::warn!(subscription = %record.id, %reason, "webhook delivery failing; retrying with backoff");
                handle.update(store, record.epoch, true, |r| {
                    r.state = DeliveryState::Failing;
                    r.failing_since_ms = Some(now);
                });
            } else {
                tracing::debug!(subscription = %record.id, %reason, "webhook attempt failed");
            }
            Settled::Retry { retry_after }
        }
    }
}

fn disable(handle: &Handle, store: &Store, record: &SubscriptionRecord, reason: String) {
    handle.update(store, record.epoch, true, |r| {
        r.state = DeliveryState::Disabled;
        r.failing_since_ms = None;
        r.disabled_reason = Some(reason);
    });
}

/// Exponential backoff with jitter in [delay/2, delay]; a `Retry-After`
/// longer than that wins.
fn backoff(limits: &DeliveryLimits, failures: u32, retry_after: Option<Duration>) -> Duration {
    let exponent = failures.saturating_sub(1).min(20);
    let delay = limits
        .retry_initial
        .saturating_mul(1 << exponent)
        .min(limits.retry_max);
    let millis = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
    let jittered = Duration::from_millis(rand::rng().random_range(millis / 2..=millis));
    retry_after.map_or(jittered, |after| after.max(jittered))
}

fn describe(error: &reqwest::Error) -> String {
    // reqwest's Display stops at the outermost layer; the cause (refused
    // address, connection refused) is what an operator needs.
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(crate::delivery::rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            crate::delivery::rfc3339(1_649_367_553_123),
            "2022-04-07T21:39:13.123Z"
        );
        assert_eq!(
            crate::delivery::rfc3339(951_782_400_000),
            "2000-02-29T00:00:00.000Z"
        );
    }
}
