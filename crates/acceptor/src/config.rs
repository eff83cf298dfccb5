//! Command-line flags of `paxid-acceptor`; each also reads `PAXID_<FLAG>`.

use std::path::PathBuf;
use std::time::Duration;

use service::{CommonArgs, HttpLimits};

/// A promise or an accept can carry many slots: larger than the 64 KiB
/// default of the client-facing services.
pub const BODY_LIMIT_BYTES_DEFAULT: usize = 16 * 1024 * 1024;
const BODY_LIMIT_BYTES_DEFAULT_TEXT: &str = "16777216";

/// paxid acceptor: stores Paxos votes durably in RocksDB and serves them
/// to sequencers and learners over the internal /v1 API.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "paxid-acceptor",
    version,
    mut_arg("body_limit_bytes", |arg| arg.default_value(BODY_LIMIT_BYTES_DEFAULT_TEXT))
)]
pub struct Config {
    #[command(flatten)]
    pub common: CommonArgs,

    /// Directory of the acceptor's RocksDB database (created on first start).
    #[arg(long, env = "PAXID_DATA_DIR", value_name = "DIR")]
    pub data_dir: PathBuf,

    /// Most chosen slots kept below the chosen point for lagging learners;
    /// compaction passes a learner that lags by more.
    #[arg(
        long,
        env = "PAXID_RETAIN_SLOTS",
        default_value_t = 1_000_000,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub retain_slots: u64,

    /// Fewest chosen slots kept below the chosen point, whatever learners
    /// have read: the window of `Idempotency-Key`s a new leader reads back
    /// (`paxos_core::idempotency`). Lower, and a retry after a failover may
    /// get new IDs for a key older than this many slots.
    #[arg(
        long,
        env = "PAXID_KEY_WINDOW_SLOTS",
        default_value_t = paxos_core::idempotency::WINDOW_SLOTS
    )]
    pub key_window_slots: u64,

    /// How often compaction runs, in milliseconds.
    #[arg(
        long,
        env = "PAXID_COMPACT_INTERVAL_MS",
        default_value_t = 1000,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub compact_interval_ms: u64,
}

impl Config {
    pub fn limits(&self) -> HttpLimits {
        self.common.limits()
    }

    pub fn compact_interval(&self) -> Duration {
        Duration::from_millis(self.compact_interval_ms)
    }

    /// A configuration for tests and embedding: every default, these places.
    pub fn new(listen: &str, data_dir: impl Into<PathBuf>) -> Config {
        Config {
            common: CommonArgs {
                listen: listen.to_owned(),
                log_format: telemetry::LogFormat::Pretty,
                cluster_token: None,
                cluster_token_file: None,
                cluster_id: "paxid".to_owned(),
                body_limit_bytes: BODY_LIMIT_BYTES_DEFAULT,
                request_timeout_ms: 10_000,
            },
            data_dir: data_dir.into(),
            retain_slots: 1_000_000,
            key_window_slots: paxos_core::idempotency::WINDOW_SLOTS,
            compact_interval_ms: 1000,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[test]
    fn flags_parse_with_their_defaults() {
        Config::command().debug_assert();
        let config =
            Config::try_parse_from(["paxid-acceptor", "--listen", "127.0.0.1:0", "--data-dir", "/d"])
                .expect("parses");
        assert_eq!(config.common.body_limit_bytes, BODY_LIMIT_BYTES_DEFAULT);
        assert_eq!(config.common.cluster_id, "paxid");
        assert_eq!(config.retain_slots, 1_000_000);
        assert_eq!(config.key_window_slots, 65_536);
        assert_eq!(config.compact_interval_ms, 1000);
        assert_eq!(config.common.request_timeout_ms, 10_000);
    }

    #[test]
    fn data_dir_is_required_and_cluster_ids_are_checked() {
        assert!(Config::try_parse_from(["paxid-acceptor", "--listen", "127.0.0.1:0"]).is_err());
        let bad = [
            "paxid-acceptor",
            "--listen",
            "x:1",
            "--data-dir",
            "/d",
            "--cluster-id",
            "a b",
        ];
        assert!(Config::try_parse_from(bad).is_err());
    }
}
