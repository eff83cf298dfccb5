//! `paxid subscriptions create|list|get|delete|enable|replay|ping`: the
//! learner's subscription API (`/v1/subscriptions`), with the
//! `--subscription-token` scope.
//!
//! The learner has no route for rotating a secret, so there is no
//! `rotate-secret` command.

use api::learner::{
    CreateSubscription, PingResult, ReplaySubscription, SubscriptionCreated, SubscriptionList,
    SubscriptionView,
};
use api::routes;
use reqwest::Method;
use serde::Serialize;

use crate::http::{Api, CliError, Retry};

/// What `delete` prints with `--json`.
#[derive(Clone, Debug, Serialize)]
pub struct Deleted {
    pub id: String,
    pub deleted: bool,
}

/// An id must be given: an empty one would name the collection.
fn checked(id: &str) -> Result<&str, CliError> {
    if id.trim().is_empty() {
        return Err(CliError::Usage("a subscription id is required".into()));
    }
    Ok(id)
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
        routes::SUBSCRIPTIONS,
        Some(request),
        Retry::Never,
    )
    .await
}

pub async fn list(api: &Api, learner: &str) -> Result<SubscriptionList, CliError> {
    api.call_json::<(), _>(
        Method::GET,
        &[learner.to_owned()],
        routes::SUBSCRIPTIONS,
        None,
        Retry::On503,
    )
    .await
}

pub async fn get(api: &Api, learner: &str, id: &str) -> Result<SubscriptionView, CliError> {
    api.call_json::<(), _>(
        Method::GET,
        &[learner.to_owned()],
        &routes::subscription(checked(id)?),
        None,
        Retry::On503,
    )
    .await
}

pub async fn delete(api: &Api, learner: &str, id: &str) -> Result<Deleted, CliError> {
    api.call(
        Method::DELETE,
        &[learner.to_owned()],
        &routes::subscription(checked(id)?),
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
        &routes::subscription_enable(checked(id)?),
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
        &routes::subscription_replay(checked(id)?),
        Some(&ReplaySubscription { from_slot }),
        Retry::On503,
    )
    .await
}

/// Never repeated: a second ping would be a second event at the receiver.
pub async fn ping(api: &Api, learner: &str, id: &str) -> Result<PingResult, CliError> {
    api.call_json::<(), _>(
        Method::POST,
        &[learner.to_owned()],
        &routes::subscription_ping(checked(id)?),
        None,
        Retry::Never,
    )
    .await
}

/// `delivered 204 in 3 ms (ping_...)`, or why not.
pub fn render_ping(result: &PingResult) -> String {
    match (&result.error, result.status) {
        (None, status) => format!(
            "delivered {} in {} ms ({})",
            status.map_or_else(|| "-".to_owned(), |s| s.to_string()),
            result.latency_ms,
            result.webhook_id
        ),
        (Some(error), _) => format!(
            "not delivered after {} ms ({}): {error}",
            result.latency_ms, result.webhook_id
        ),
    }
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
    fn an_empty_id_is_a_usage_error() {
        assert!(matches!(checked(" "), Err(CliError::Usage(_))));
        assert_eq!(checked("sub_1f").expect("ok"), "sub_1f");
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
