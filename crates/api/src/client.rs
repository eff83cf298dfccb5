//! The client API of the sequencer: `POST /next-id`.

use serde::{Deserialize, Serialize};

/// Body of `POST /next-id`; both fields optional, unknown fields refused.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NextIdRequest {
    /// Default 1 (also when null); at most --count-max, 1000000 unless the
    /// operator set another maximum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 1_000_000, format = "uint64")]
    pub count: Option<u64>,
    /// Default `default` (also when null); with --sequences, one of those
    /// names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = r"^[A-Za-z0-9_.-]{1,64}$")]
    pub sequence: Option<String>,
}

/// IDs `id ..= id + count - 1` of `sequence`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NextIdResponse {
    /// The first ID. Unsigned 64-bit: beyond 2^53, JavaScript numbers lose
    /// precision.
    #[schema(minimum = 1, format = "uint64")]
    pub id: u64,
    #[schema(minimum = 1, format = "uint64")]
    pub count: u64,
    #[schema(pattern = r"^[A-Za-z0-9_.-]{1,64}$")]
    pub sequence: String,
}

/// `GET /v1/status` of a sequencer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SequencerStatus {
    pub node_id: u32,
    /// `leader`, `candidate` or `follower`.
    pub role: String,
    pub ballot: Option<crate::internal::Ballot>,
    pub advertise_url: String,
    /// The leader's URL as the acceptors report it, if any.
    pub leader_url: Option<String>,
    pub chosen_below: u64,
    pub slots_in_flight: usize,
    /// Acceptors that answered the last status poll.
    pub acceptors_reachable: usize,
    pub acceptors: usize,
    /// The configuration this replica works in (0: as founded, addressed
    /// by its `--acceptors`) and its acceptors' URLs, in seat order.
    #[serde(default)]
    pub epoch: u64,
    #[serde(default)]
    pub acceptor_urls: Vec<String>,
}

/// `POST /v1/acceptors` on the leader: the acceptors the cluster should
/// have, in order. The answer is the configuration chosen.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReconfigureRequest {
    pub acceptors: Vec<String>,
    /// The epoch the list was computed from: when given, the leader makes
    /// the change only if that is still the configuration in force (409
    /// otherwise), so that two changes computed from one list cannot
    /// undo each other.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<u64>,
}
