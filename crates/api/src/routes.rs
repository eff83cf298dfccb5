//! Every route paxid serves, named once: the routers register these and
//! every client (sequencer, learner, CLI, `paxid-client`, the tests) builds
//! its URLs from them, so the two sides cannot drift.
//!
//! A constant with a `{name}` segment is an axum path template; the
//! function beside it fills it in (percent-encoding the segment).

// ---- every service ---------------------------------------------------------

pub const LIVEZ: &str = "/livez";
pub const HEALTHZ: &str = "/healthz";
pub const READYZ: &str = "/readyz";
pub const METRICS: &str = "/metrics";
pub const OPENAPI: &str = "/openapi.json";

/// Prefix of every `/v1` route: the internal ones and the learner's
/// subscription API.
pub const V1_PREFIX: &str = "/v1/";

/// Internal `GET`: every role answers its own status (behind the cluster
/// token on acceptors and sequencers).
pub const STATUS: &str = "/v1/status";

// ---- sequencer -------------------------------------------------------------

/// Public: allocate IDs.
pub const NEXT_ID: &str = "/next-id";
/// Internal `POST`: change the acceptor set (membership change).
pub const ACCEPTORS: &str = "/v1/acceptors";
/// Internal `GET` long poll: a follower waits to be named the successor
/// of a leader that is stopping.
pub const HANDOVER: &str = "/v1/handover";

// ---- acceptor --------------------------------------------------------------

pub const PREPARE: &str = "/v1/prepare";
pub const ACCEPT: &str = "/v1/accept";
pub const COMMIT: &str = "/v1/commit";
pub const JOIN: &str = "/v1/join";
pub const INSTALL: &str = "/v1/install";
/// `POST` moves the acceptor into a configuration; `GET` tells what moves
/// another acceptor to where this one is.
pub const TRANSITION: &str = "/v1/transition";
/// `GET ?from=&limit=`: a page of the log.
pub const LOG: &str = "/v1/log";
pub const SNAPSHOT: &str = "/v1/snapshot";
pub const LEARNER_PROGRESS: &str = "/v1/learners/{learner_id}/progress";

/// [`LOG`] from slot `from`, at most `limit` entries.
pub fn log_page(from: u64, limit: u64) -> String {
    format!("{LOG}?from={from}&limit={limit}")
}

/// [`LEARNER_PROGRESS`] of one learner.
pub fn learner_progress(learner_id: &str) -> String {
    format!("/v1/learners/{}/progress", segment(learner_id))
}

// ---- learner ---------------------------------------------------------------

/// Internal `POST`: the leader's hint that slots were chosen.
pub const CHOSEN: &str = "/v1/chosen";
/// Subscription API: `POST` creates, `GET` lists.
pub const SUBSCRIPTIONS: &str = "/v1/subscriptions";
/// `GET` shows, `DELETE` removes.
pub const SUBSCRIPTION: &str = "/v1/subscriptions/{id}";
pub const SUBSCRIPTION_ENABLE: &str = "/v1/subscriptions/{id}/enable";
pub const SUBSCRIPTION_REPLAY: &str = "/v1/subscriptions/{id}/replay";
/// `POST` sends one `ping` webhook now and says what became of it.
pub const SUBSCRIPTION_PING: &str = "/v1/subscriptions/{id}/ping";

/// [`SUBSCRIPTION`] of `id`.
pub fn subscription(id: &str) -> String {
    format!("{SUBSCRIPTIONS}/{}", segment(id))
}

/// [`SUBSCRIPTION_ENABLE`] of `id`.
pub fn subscription_enable(id: &str) -> String {
    format!("{}/enable", subscription(id))
}

/// [`SUBSCRIPTION_REPLAY`] of `id`.
pub fn subscription_replay(id: &str) -> String {
    format!("{}/replay", subscription(id))
}

/// [`SUBSCRIPTION_PING`] of `id`.
pub fn subscription_ping(id: &str) -> String {
    format!("{}/ping", subscription(id))
}

/// Whether `path` (no query) is one of the subscription API's routes.
pub fn is_subscription_api(path: &str) -> bool {
    path == SUBSCRIPTIONS || path.starts_with("/v1/subscriptions/")
}

/// One path segment, percent-encoded so that a name holding `/`, `?` or
/// `%` stays one segment (RFC 3986 unreserved characters pass as they are).
fn segment(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A filled-in path is its template with the segment in place.
    fn fills(template: &str, name: &str, value: &str, path: &str) {
        assert_eq!(template.replace(&format!("{{{name}}}"), value), path);
    }

    #[test]
    fn paths_fill_their_templates() {
        fills(SUBSCRIPTION, "id", "sub_1f", &subscription("sub_1f"));
        fills(
            SUBSCRIPTION_ENABLE,
            "id",
            "sub_1f",
            &subscription_enable("sub_1f"),
        );
        fills(
            SUBSCRIPTION_REPLAY,
            "id",
            "sub_1f",
            &subscription_replay("sub_1f"),
        );
        fills(LEARNER_PROGRESS, "learner_id", "l-1", &learner_progress("l-1"));
        assert_eq!(log_page(5, 100), "/v1/log?from=5&limit=100");
    }

    #[test]
    fn a_segment_cannot_leave_its_place() {
        assert_eq!(
            subscription_replay("a/../b"),
            "/v1/subscriptions/a%2F..%2Fb/replay"
        );
        assert_eq!(subscription("x?y#z%"), "/v1/subscriptions/x%3Fy%23z%25");
        assert!(is_subscription_api(&subscription("a")));
        assert!(is_subscription_api(SUBSCRIPTIONS));
        assert!(!is_subscription_api("/v1/subscriptionsx"));
        assert!(!is_subscription_api(NEXT_ID));
    }
}
