//! `paxid subscriptions create|list|get|delete|enable|replay`: the
//! learner's subscription API (`/v1/subscriptions`), with the
//! `--subscription-token` scope.
//!
//! The learner has no routes for rotating a secret or sending a test event,
//! so there are no `rotate-secret` or `ping` commands.

use api::learner::{CreateSubscription, SubscriptionCreated, SubscriptionList, SubscriptionView};
use reqwest::Method;
use serde::{Deserialize, Serialize};

use crate::http::{Api, CliError, Retry};

/// The collection, as the learner routes it.
pub const SUBSCRIPTIONS_PATH: &str = "/v1/subscriptions";

/// `POST /v1/subscriptions/{id}/replay`. The learner declares this body in
/// its own crate (`ReplaySubscription`, marked to move to `api`), which the
/// CLI does not depend on; the shape is the same one-field object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayRequest {
    pub from_slot: u64,
}

/// What `delete` prints with `--json`.
#[derive(Clone, Debug, Serialize)]
pub struct Deleted {
    pub id: String,
    pub deleted: bool,
}

/// `/v1/subscriptions/{id}` with the id as one path segment.
pub fn path(id: &str, action: Option<&str>) -> Result<String, CliError> {
    if id.trim().is_empty() {
        return Err(CliError::Usage("a subscription id is required".into()));
    }
    let mut path = format!("{SUBSCRIPTIONS_PATH}/{}", encode_segment(id));
    if let Some(action) = action {
        path.push('/');
        path.push_str(action);
    }
    Ok(path)
}

/// Percent-encodes everything but RFC 3986's unreserved characters, so an
/// id can never name another route (`a/../b`).
fn encode_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

pub async fn create(
    api: &Api,
    learner: &str,
    request: &CreateSubscription,
) -> Result<SubscriptionCreated, CliError> {
    // Never repeated: a 503 may come after the learner stored it.
    api.call_json(
        Method::POST,
        &[learner.to_owned()],
        SUBSCRIPTIONS_PATH,
        Some(request),
        Retry::Never,
    )
    .await
}

pub async fn list(api: &Api, learner: &str) -> Result<SubscriptionList, CliError> {
    api.call_json::<(), _>(
        Method::GET,
        &[learner.to_owned()],
        SUBSCRIPTIONS_PATH,
        None,
        Retry::On503,
    )
    .await
}

pub async fn get(api: &Api, learner: &str, id: &str) -> Result<SubscriptionView, CliError> {
    api.call_json::<(), _>(
        Method::GET,
        &[learner.to_owned()],
        &path(id, None)?,
        None,
        Retry::On503,
    )
    .await
}

pub async fn delete(api: &Api, learner: &str, id: &str) -> Result<Deleted, CliError> {
    api.call(
        Method::DELETE,
        &[learner.to_owned()],
        &path(id, None)?,
        None,
        Retry::On503,
    )
    .await?;
    Ok(Deleted {
        id: id.to_owned(),
        deleted: true,
    })
}

pub async fn enable(api: &Api, learner: &str, id: &str) -> Result<SubscriptionView, CliError> {
    api.call_json::<(), _>(
        Method::POST,
        &[learner.to_owned()],
        &path(id, Some("enable"))?,
        None,
        Retry::On503,
    )
    .await
}

pub async fn replay(
    api: &Api,
    learner: &str,
    id: &str,
    from_slot: u64,
) -> Result<SubscriptionView, CliError> {
    api.call_json(
        Method::POST,
        &[learner.to_owned()],
        &path(id, Some("replay"))?,
        Some(&ReplayRequest { from_slot }),
        Retry::On503,
    )
    .await
}

/// One subscription, a field a line.
pub fn render_view(s: &SubscriptionView) -> String {
    let or_dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_owned());
    let rows = [
        ("id", s.id.clone()),
        ("url", s.url.clone()),
        ("sequences", sequences(s)),
        ("state", s.state.clone()),
        ("failing_since", or_dash(&s.failing_since)),
        ("disabled_reason", or_dash(&s.disabled_reason)),
        ("delivered_below", s.delivered_below.to_string()),
        ("lag_slots", s.lag_slots.to_string()),
    ];
    rows.iter()
        .map(|(name, value)| format!("{name:<16} {value}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// ID, STATE, DELIVERED_BELOW, LAG, SEQUENCES, URL.
pub fn render_list(list: &SubscriptionList) -> String {
    if list.subscriptions.is_empty() {
        return "no subscriptions".to_owned();
    }
    let header = ["ID", "STATE", "DELIVERED_BELOW", "LAG", "SEQUENCES", "URL"].map(str::to_owned);
    let rows: Vec<[String; 6]> = std::iter::once(header)
        .chain(list.subscriptions.iter().map(|s| {
            [
                s.id.clone(),
                s.state.clone(),
                s.delivered_below.to_string(),
                s.lag_slots.to_string(),
                sequences(s),
                s.url.clone(),
            ]
        }))
        .collect();
    let widths: Vec<usize> = (0..6)
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    rows.iter()
        .map(|row| {
            let cells: Vec<String> = row
                .iter()
                .zip(&widths)
                .map(|(cell, width)| format!("{cell:width$}"))
                .collect();
            cells.join("  ").trim_end().to_owned()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn sequences(s: &SubscriptionView) -> String {
    match &s.sequences {
        Some(names) => names.join(","),
        None => "all".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_one_path_segment() {
        assert_eq!(path("sub_1f", None).expect("ok"), "/v1/subscriptions/sub_1f");
        assert_eq!(
            path("a/../b", Some("replay")).expect("ok"),
            "/v1/subscriptions/a%2F..%2Fb/replay"
        );
        assert!(matches!(path(" ", None), Err(CliError::Usage(_))));
    }

    #[test]
    fn the_replay_body_is_what_the_learner_reads() {
        let body = serde_json::to_value(ReplayRequest { from_slot: 12 }).expect("json");
        assert_eq!(body, serde_json::json!({"from_slot": 12}));
    }

    #[test]
    fn lists_render_as_a_table() {
        let view = SubscriptionView {
            id: "sub_1".into(),
            url: "http://h/hook".into(),
            sequences: Some(vec!["a".into(), "b".into()]),
            state: "active".into(),
            failing_since: None,
            disabled_reason: None,
            delivered_below: 7,
            lag_slots: 0,
        };
        let table = render_list(&SubscriptionList {
            subscriptions: vec![view.clone()],
        });
        assert!(table.starts_with("ID     STATE   DELIVERED_BELOW"), "{table}");
        assert!(table.contains("sub_1  active  7"), "{table}");
        assert!(render_view(&view).contains("sequences        a,b"));
        let empty = SubscriptionList {
            subscriptions: Vec::new(),
        };
        assert_eq!(render_list(&empty), "no subscriptions");
    }
}
