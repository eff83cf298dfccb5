//! Flags of `paxid-sequencer`; each also reads `PAXID_<FLAG>`.

use clap::Parser;
use paxos_core::{NodeId, ProposerConfig, SequenceName};
use reqwest::Url;
use service::CommonArgs;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "paxid-sequencer",
    version,
    about = "paxid sequencer: a Multi-Paxos proposer serving POST /next-id",
    long_about = "A Multi-Paxos proposer serving POST /next-id. Run one or more replicas with distinct \
                  --node-id values against the same acceptors; one is leader at a time and the others \
                  forward client requests to it."
)]
pub struct Config {
    #[command(flatten)]
    pub common: CommonArgs,

    /// This replica's node id; distinct among all sequencers of the cluster.
    #[arg(long, env = "PAXID_NODE_ID")]
    pub node_id: u32,

    /// Every acceptor's base URL, comma separated (3 or 5 of them).
    #[arg(long, env = "PAXID_ACCEPTORS", value_delimiter = ',', required = true, value_parser = parse_url)]
    pub acceptors: Vec<Url>,

    /// Tokens a client of `POST /next-id` must present
    /// (`Authorization: Bearer`), comma-separated for rotation; none: open.
    #[arg(
        long,
        env = "PAXID_CLIENT_TOKEN",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub client_token: Vec<String>,

    /// A file of client tokens (comma- or line-separated), read again when
    /// it changes.
    #[arg(long, env = "PAXID_CLIENT_TOKEN_FILE", value_name = "PATH")]
    pub client_token_file: Option<std::path::PathBuf>,

    /// How peers reach this replica (followers forward client requests here).
    #[arg(long, env = "PAXID_ADVERTISE_URL", value_parser = parse_url)]
    pub advertise_url: Url,

    /// Learners to push chosen slots to, comma separated (optional; they also pull).
    #[arg(long, env = "PAXID_LEARNERS", value_delimiter = ',', value_parser = parse_url)]
    pub learners: Vec<Url>,

    /// Largest `count` one request may ask for.
    #[arg(long, env = "PAXID_COUNT_MAX", default_value_t = ProposerConfig::COUNT_MAX, value_parser = clap::value_parser!(u64).range(1..))]
    pub count_max: u64,

    /// Distinct sequence names the cluster holds, at most.
    #[arg(long, env = "PAXID_SEQUENCES_MAX", default_value_t = ProposerConfig::SEQUENCES_MAX)]
    pub sequences_max: usize,

    /// The only sequence names clients may use besides `default`, comma
    /// separated; others get 422 and create nothing. Unset: any valid name
    /// is created on first use (up to --sequences-max, for good: a client
    /// that may call POST /next-id may use them all up).
    #[arg(long, env = "PAXID_SEQUENCES", value_delimiter = ',', value_parser = parse_sequence)]
    pub sequences: Vec<SequenceName>,

    /// Slots proposed and not yet chosen, at most. Requests that arrive
    /// while the pipeline is full share the next slot, so a short pipeline
    /// means bigger batches and fewer acceptor round trips per ID: on two
    /// cores, 2 served 16 clients about 1.5 times faster than 8 (see
    /// docs/benchmarks.md). Raise it when the acceptors are far away.
    #[arg(long, env = "PAXID_PIPELINE_SLOTS_MAX", default_value_t = ProposerConfig::PIPELINE_SLOTS_MAX)]
    pub pipeline_slots_max: usize,

    /// Client requests batched into one slot, at most.
    #[arg(long, env = "PAXID_BATCH_REQUESTS_MAX", default_value_t = ProposerConfig::BATCH_REQUESTS_MAX)]
    pub batch_requests_max: usize,

    /// Client requests waiting for a slot, at most; more get 503.
    #[arg(long, env = "PAXID_PENDING_REQUESTS_MAX", default_value_t = ProposerConfig::PENDING_REQUESTS_MAX)]
    pub pending_requests_max: usize,

    #[arg(long, env = "PAXID_HEARTBEAT_INTERVAL_MS", default_value_t = ProposerConfig::HEARTBEAT_INTERVAL_MS)]
    pub heartbeat_interval_ms: u64,

    /// A follower campaigns after the leader made no progress on a majority of
    /// acceptors for a random time between this and the max.
    #[arg(long, env = "PAXID_ELECTION_TIMEOUT_MIN_MS", default_value_t = ProposerConfig::ELECTION_TIMEOUT_MIN_MS)]
    pub election_timeout_min_ms: u64,

    #[arg(long, env = "PAXID_ELECTION_TIMEOUT_MAX_MS", default_value_t = ProposerConfig::ELECTION_TIMEOUT_MAX_MS)]
    pub election_timeout_max_ms: u64,

    /// The leader steps down when a majority of acceptors has not answered
    /// it for this long, so that its clients go to a new leader.
    #[arg(long, env = "PAXID_QUORUM_CONTACT_MS", default_value_t = ProposerConfig::QUORUM_CONTACT_MS)]
    pub quorum_contact_ms: u64,

    /// A client waits at most this long for its IDs before a 503.
    #[arg(long, env = "PAXID_ID_TIMEOUT_MS", default_value_t = ProposerConfig::ID_TIMEOUT_MS)]
    pub id_timeout_ms: u64,

    /// Timeout of one call to an acceptor or learner.
    #[arg(long, env = "PAXID_PEER_TIMEOUT_MS", default_value_t = 2_000)]
    pub peer_timeout_ms: u64,

    /// How often every acceptor's status is polled (leader discovery, elections).
    #[arg(long, env = "PAXID_STATUS_INTERVAL_MS", default_value_t = 50)]
    pub status_interval_ms: u64,

    /// Only when founding a new cluster (every acceptor blank): start each
    /// sequence at or above this next ID, as `name=ID,name=ID`. For the day
    /// every acceptor lost its disk; the counters of every `--learners`
    /// learner are added on top automatically.
    #[arg(long, env = "PAXID_FOUND_FLOOR", value_delimiter = ',', value_parser = parse_floor)]
    pub found_floor: Vec<(String, u64)>,
}

/// `name=ID`, with a valid sequence name and ID >= 1.
fn parse_sequence(name: &str) -> Result<SequenceName, String> {
    SequenceName::parse(name).map_err(|e| e.to_string())
}

fn parse_floor(item: &str) -> Result<(String, u64), String> {
    let (name, id) = item
        .split_once('=')
        .ok_or_else(|| format!("{item:?} is not name=ID"))?;
    paxos_core::SequenceName::parse(name).map_err(|e| e.to_string())?;
    let id: u64 = id.parse().map_err(|_| format!("{id:?} is not an ID"))?;
    if id == 0 {
        return Err("IDs start at 1".into());
    }
    Ok((name.to_owned(), id))
}

impl Config {
    /// The core's limits, checked for consistency.
    pub fn proposer_config(&self) -> Result<ProposerConfig, String> {
        if self.acceptors.is_empty() {
            return Err("--acceptors needs at least one URL".into());
        }
        if self.election_timeout_min_ms > self.election_timeout_max_ms {
            return Err("--election-timeout-min-ms is above --election-timeout-max-ms".into());
        }
        if self.heartbeat_interval_ms == 0 || self.heartbeat_interval_ms >= self.election_timeout_min_ms {
            return Err(
                "--heartbeat-interval-ms must be positive and below --election-timeout-min-ms".into(),
            );
        }
        if self.quorum_contact_ms <= self.heartbeat_interval_ms {
            return Err("--quorum-contact-ms must be above --heartbeat-interval-ms".into());
        }
        for (name, value) in [
            ("--pipeline-slots-max", self.pipeline_slots_max),
            ("--batch-requests-max", self.batch_requests_max),
            ("--pending-requests-max", self.pending_requests_max),
            ("--sequences-max", self.sequences_max),
        ] {
            if value == 0 {
                return Err(format!("{name} must be at least 1"));
            }
        }
        if self.sequences.len() >= self.sequences_max {
            return Err(format!(
                "--sequences names {} sequences; with `default` that is more than --sequences-max {}",
                self.sequences.len(),
                self.sequences_max
            ));
        }
        let mut config = ProposerConfig::new(NodeId(self.node_id), self.acceptors.len());
        config.pipeline_slots_max = self.pipeline_slots_max;
        config.batch_requests_max = self.batch_requests_max;
        config.pending_requests_max = self.pending_requests_max;
        config.count_max = self.count_max;
        config.sequences_max = self.sequences_max;
        config.heartbeat_interval_ms = self.heartbeat_interval_ms;
        config.election_timeout_min_ms = self.election_timeout_min_ms;
        config.election_timeout_max_ms = self.election_timeout_max_ms;
        config.quorum_contact_ms = self.quorum_contact_ms;
        config.accept_retry_ms = self
            .heartbeat_interval_ms
            .saturating_mul(ProposerConfig::ACCEPT_RETRY_HEARTBEATS);
        config.id_timeout_ms = self.id_timeout_ms;
        Ok(config)
    }
}

fn parse_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text.trim()).map_err(|e| format!("{text:?} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!("{text:?} is not an http(s) URL with a host"));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQUIRED: [&str; 9] = [
        "paxid-sequencer",
        "--listen",
        "127.0.0.1:0",
        "--node-id",
        "1",
        "--acceptors",
        "http://a0:7001,http://a1:7001,http://a2:7001",
        "--advertise-url",
        "http://s1:8080",
    ];

    fn parse(extra: &[&str]) -> Config {
        Config::try_parse_from(REQUIRED.iter().chain(extra)).expect("flags parse")
    }

    #[test]
    fn defaults_give_a_short_pipeline_prevote_and_a_one_second_quorum_window() {
        let core = parse(&[]).proposer_config().expect("valid");
        assert_eq!(core.acceptors, 3);
        assert_eq!(core.pipeline_slots_max, 2);
        assert!(core.prevote);
        assert_eq!(core.quorum_contact_ms, 1_000);
        assert_eq!(
            (core.election_timeout_min_ms, core.election_timeout_max_ms),
            (300, 600)
        );
    }

    #[test]
    fn inconsistent_timing_flags_are_refused() {
        let cases: [(&[&str], &str); 3] = [
            (&["--quorum-contact-ms", "50"], "--quorum-contact-ms"),
            (&["--election-timeout-min-ms", "700"], "--election-timeout-min-ms"),
            (&["--heartbeat-interval-ms", "300"], "--heartbeat-interval-ms"),
        ];
        for (flags, named) in cases {
            let error = parse(flags).proposer_config().expect_err("refused");
            assert!(error.contains(named), "{flags:?}: {error}");
        }
        let error = parse(&["--pipeline-slots-max", "0"])
            .proposer_config()
            .expect_err("refused");
        assert!(error.contains("--pipeline-slots-max"), "{error}");
    }
}
