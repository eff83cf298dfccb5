//! The learner's public API: subscriptions and the webhook payload.

use serde::{Deserialize, Serialize};

/// `POST /v1/subscriptions`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSubscription {
    /// http or https; private and loopback addresses only with
    /// --allow-private-webhooks.
    #[schema(format = "uri")]
    pub url: String,
    /// Only these sequences (at least one); every sequence when absent or
    /// null.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = crate::openapi::sequence_filter_request)]
    pub sequences: Option<Vec<String>>,
    /// Deliver from this slot on (null: the learner's current point). A
    /// slot below the learner's retained log is refused with 422.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = "uint64")]
    pub from_slot: Option<u64>,
}

/// `201` answer: the only time the secret is shown.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SubscriptionCreated {
    pub id: String,
    #[schema(pattern = "^whsec_")]
    pub secret: String,
}

/// `GET /v1/subscriptions/{id}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = Subscription)]
pub struct SubscriptionView {
    pub id: String,
    #[schema(format = "uri")]
    pub url: String,
    /// Only these sequences; every sequence when null.
    #[schema(schema_with = crate::openapi::sequence_filter)]
    pub sequences: Option<Vec<String>>,
    /// `active`, `failing` or `disabled`.
    #[schema(schema_with = crate::openapi::subscription_state)]
    pub state: String,
    /// RFC 3339 time of the first failure of the current run of failures.
    pub failing_since: Option<String>,
    pub disabled_reason: Option<String>,
    /// Every slot below this was delivered (or filtered out).
    #[schema(format = "uint64")]
    pub delivered_below: u64,
    /// Slots learned but not yet delivered.
    #[schema(format = "uint64")]
    pub lag_slots: u64,
}

/// `POST /v1/subscriptions/{id}/replay`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplaySubscription {
    /// Deliver again from this slot on. A slot below the learner's
    /// retained log is refused with 422.
    #[schema(format = "uint64")]
    pub from_slot: u64,
}

/// `200` answer of `POST /v1/subscriptions/{id}/ping`: what became of the
/// one `ping` webhook sent to the subscription's URL. Sent once, never
/// retried, and it moves nothing: the subscription's cursor, state and
/// pending message stay as they were.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PingResult {
    /// The `webhook-id` it was sent under (`ping_...`).
    pub webhook_id: String,
    /// The receiver answered 2xx.
    pub delivered: bool,
    /// The receiver's status, if it answered.
    pub status: Option<u16>,
    /// From sending to the answer (or the failure), in milliseconds.
    #[schema(format = "uint64")]
    pub latency_ms: u64,
    /// Why it was not delivered: the status's reason, a timeout, a network
    /// error, or a URL the SSRF guard refuses.
    pub error: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SubscriptionList {
    pub subscriptions: Vec<SubscriptionView>,
}

/// `GET /v1/status` of a learner.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LearnerStatus {
    pub learned_below: u64,
    /// Next ID per sequence after every learned slot: what a re-created
    /// cluster must start above (sequencers read it before founding one).
    #[serde(default)]
    pub counters: std::collections::BTreeMap<String, u64>,
    pub subscriptions: Vec<SubscriptionView>,
    /// Slot ranges this learner skipped because every acceptor had
    /// compacted them away when it needed them (it started again from an
    /// acceptor's snapshot): the most recent ones, oldest first.
    #[serde(default)]
    pub gaps: Vec<LearnerGap>,
    /// Every slot skipped so far, over all gaps (also those no longer listed).
    #[serde(default)]
    pub skipped_slots: u64,
    /// The configuration it follows (0: as founded, its `--acceptors`) and
    /// the acceptors it reads.
    #[serde(default)]
    pub epoch: u64,
    #[serde(default)]
    pub acceptors: Vec<String>,
}

/// Slots `from_slot .. below_slot` were never learned: their allocations are
/// not in the learned log and are not delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LearnerGap {
    pub from_slot: u64,
    pub below_slot: u64,
}

/// Body of every webhook.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookMessage {
    #[serde(rename = "type")]
    pub type_: String,
    /// RFC 3339.
    pub timestamp: String,
    pub data: WebhookData,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookData {
    pub slots: Vec<WebhookSlot>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookSlot {
    pub slot: u64,
    pub allocations: Vec<crate::internal::Allocation>,
}

pub const WEBHOOK_TYPE: &str = "ids.allocated";

/// `type` of the message telling a subscriber that slots were skipped.
pub const WEBHOOK_GAP_TYPE: &str = "ids.gap";

/// `type` of the test event `POST /v1/subscriptions/{id}/ping` sends.
pub const WEBHOOK_PING_TYPE: &str = "ping";

/// Body of a `ping` webhook: signed like every webhook, carries no IDs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookPingMessage {
    #[serde(rename = "type")]
    pub type_: String,
    /// RFC 3339.
    pub timestamp: String,
    pub data: WebhookPingData,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookPingData {
    /// The subscription pinged.
    pub subscription: String,
}

/// Body of an `ids.gap` webhook: the allocations of slots
/// `data.from_slot .. data.below_slot` will never be delivered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookGapMessage {
    #[serde(rename = "type")]
    pub type_: String,
    /// RFC 3339.
    pub timestamp: String,
    pub data: LearnerGap,
}
