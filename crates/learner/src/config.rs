//! Command-line flags and the configuration they describe.

use std::path::PathBuf;
use std::time::Duration;

use clap::builder::NonEmptyStringValueParser;
use service::{CommonArgs, HttpLimits};

/// `paxid-learner`: learns chosen slots from the acceptors and delivers
/// every allocation to webhook subscribers, signed and in slot order.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "paxid-learner", version)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,

    /// Directory of the RocksDB store (learned log, subscriptions, cursors).
    #[arg(long, env = "PAXID_DATA_DIR", value_name = "DIR")]
    pub data_dir: PathBuf,

    /// Tokens the subscription API requires (`Authorization: Bearer`),
    /// comma-separated for rotation; none: open. Consumers need only this,
    /// never the cluster token.
    #[arg(
        long,
        env = "PAXID_SUBSCRIPTION_TOKEN",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub subscription_token: Vec<String>,

    /// A file of subscription tokens (comma- or line-separated), read again
    /// when it changes.
    #[arg(long, env = "PAXID_SUBSCRIPTION_TOKEN_FILE", value_name = "PATH")]
    pub subscription_token_file: Option<PathBuf>,

    /// Base URLs of every acceptor, comma-separated.
    #[arg(
        long,
        env = "PAXID_ACCEPTORS",
        value_delimiter = ',',
        required = true,
        value_parser = NonEmptyStringValueParser::new()
    )]
    pub acceptors: Vec<String>,

    /// Let subscriptions target loopback, private and link-local addresses
    /// (refused by default, at registration and at connect time).
    #[arg(long, env = "PAXID_ALLOW_PRIVATE_WEBHOOKS")]
    pub allow_private_webhooks: bool,

    /// Longest one webhook attempt may take, in milliseconds.
    #[arg(long, env = "PAXID_WEBHOOK_TIMEOUT_MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub webhook_timeout_ms: u64,

    /// Longest the TCP/TLS connect of a webhook may take, in milliseconds.
    #[arg(long, env = "PAXID_WEBHOOK_CONNECT_TIMEOUT_MS", default_value_t = 2_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub webhook_connect_timeout_ms: u64,

    /// A subscription failing continuously for longer than this is disabled,
    /// in milliseconds (default 3 days).
    #[arg(long, env = "PAXID_DISABLE_AFTER_FAILING_MS", default_value_t = 259_200_000)]
    pub disable_after_failing_ms: u64,

    /// Most slots in one webhook message.
    #[arg(long, env = "PAXID_MESSAGE_SLOTS_MAX", default_value_t = 100,
          value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub message_slots_max: u64,

    /// Most bytes in one webhook body (a single slot larger than this is
    /// still sent, alone).
    #[arg(long, env = "PAXID_MESSAGE_BYTES_MAX", default_value_t = 256 * 1024,
          value_parser = clap::value_parser!(u64).range(256..))]
    pub message_bytes_max: u64,

    /// First retry delay of a failing webhook, in milliseconds; doubles per
    /// failure up to --retry-max-ms.
    #[arg(long, env = "PAXID_RETRY_INITIAL_MS", default_value_t = 500,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub retry_initial_ms: u64,

    /// Longest retry delay, in milliseconds (a larger Retry-After still wins).
    #[arg(long, env = "PAXID_RETRY_MAX_MS", default_value_t = 60_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub retry_max_ms: u64,

    /// Most subscriptions this learner holds.
    #[arg(long, env = "PAXID_SUBSCRIPTIONS_MAX", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub subscriptions_max: u64,

    /// Learned slots kept below the slowest subscription's cursor, for
    /// replays; older ones are deleted. A subscription, even a disabled one,
    /// holds back pruning at its cursor: nothing undelivered is deleted.
    #[arg(long, env = "PAXID_RETAIN_SLOTS", default_value_t = 1_000_000)]
    pub retain_slots: u64,
}

/// Everything [`crate::run`] and [`crate::AppState`] need, independent of clap.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: String,
    pub data_dir: PathBuf,
    pub acceptors: Vec<String>,
    /// Internal routes (`/v1/chosen`, `/v1/status`); the current one is sent
    /// to acceptors.
    pub cluster_token: service::Tokens,
    /// The subscription API; open when none is configured.
    pub subscription_token: service::Tokens,
    /// Named on every call to an acceptor; one of another cluster refuses.
    pub cluster_id: String,
    pub limits: HttpLimits,
    pub allow_private_webhooks: bool,
    pub webhook_timeout: Duration,
    pub webhook_connect_timeout: Duration,
    pub disable_after_failing: Duration,
    pub message_slots_max: u64,
    pub message_bytes_max: usize,
    pub retry_initial: Duration,
    pub retry_max: Duration,
    pub subscriptions_max: usize,
    /// Learned slots kept below the slowest cursor (see `--retain-slots`).
    pub retain_slots: u64,
    /// How often the learned log is pruned.
    pub prune_interval: Duration,
    /// How often every acceptor's log is polled when nothing else asks.
    pub pull_interval: Duration,
    /// How often learned progress is reported to the acceptors.
    pub progress_interval: Duration,
    /// `/readyz` fails once no acceptor of the followed configuration has
    /// answered for this long (learning keeps retrying).
    pub acceptors_silent_max: Duration,
}

impl Config {
    /// Defaults for everything but the addresses; tests start from here.
    pub fn new(listen: impl Into<String>, data_dir: impl Into<PathBuf>, acceptors: Vec<String>) -> Config {
        Config {
            listen: listen.into(),
            data_dir: data_dir.into(),
            acceptors,
            cluster_token: service::Tokens::open(),
            subscription_token: service::Tokens::open(),
            cluster_id: "paxid".to_owned(),
            limits: HttpLimits {
                body_bytes_max: BODY_BYTES_MAX_DEFAULT,
                ..HttpLimits::default()
            },
            allow_private_webhooks: false,
            webhook_timeout: Duration::from_millis(10_000),
            webhook_connect_timeout: Duration::from_millis(2_000),
            disable_after_failing: Duration::from_millis(259_200_000),
            message_slots_max: 100,
            message_bytes_max: 256 * 1024,
            retry_initial: Duration::from_millis(500),
            retry_max: Duration::from_millis(60_000),
            subscriptions_max: 1000,
            retain_slots: 1_000_000,
            prune_interval: Duration::from_secs(10),
            pull_interval: Duration::from_millis(75),
            progress_interval: Duration::from_millis(500),
            acceptors_silent_max: Duration::from_secs(30),
        }
    }
}

/// The service-wide body limit defaults to 64 KiB; a leader's push of a
/// full pipeline can be larger, so the learner starts higher unless the
/// operator chose a value.
const BODY_BYTES_MAX_DEFAULT: usize = 1024 * 1024;

impl From<Args> for Config {
    fn from(args: Args) -> Config {
        let mut config = Config::new(args.common.listen.clone(), args.data_dir, args.acceptors);
        config.cluster_token = args.common.cluster_tokens();
        config.subscription_token =
            service::Tokens::new(&args.subscription_token, args.subscription_token_file.clone());
        config.cluster_id = args.common.cluster_id.clone();
        config.limits = args.common.limits();
        if args.common.body_limit_bytes == HttpLimits::default().body_bytes_max {
            config.limits.body_bytes_max = BODY_BYTES_MAX_DEFAULT;
        }
        config.allow_private_webhooks = args.allow_private_webhooks;
        config.webhook_timeout = Duration::from_millis(args.webhook_timeout_ms);
        config.webhook_connect_timeout = Duration::from_millis(args.webhook_connect_timeout_ms);
        config.disable_after_failing = Duration::from_millis(args.disable_after_failing_ms);
        config.message_slots_max = args.message_slots_max;
        config.message_bytes_max = usize::try_from(args.message_bytes_max).unwrap_or(usize::MAX);
        config.retry_initial = Duration::from_millis(args.retry_initial_ms);
        config.retry_max = Duration::from_millis(args.retry_max_ms.max(args.retry_initial_ms));
        config.subscriptions_max = usize::try_from(args.subscriptions_max).unwrap_or(usize::MAX);
        config.retain_slots = args.retain_slots;
        config
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn flags_parse_with_defaults() {
        let args = Args::try_parse_from([
            "paxid-learner",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            "/tmp/x",
            "--acceptors",
            "http://a:1,http://b:2,http://c:3",
        ])
        .expect("parses");
        let config = Config::from(args);
        assert_eq!(config.acceptors.len(), 3);
        assert_eq!(config.disable_after_failing, Duration::from_millis(259_200_000));
        assert_eq!(config.message_slots_max, 100);
        assert_eq!(config.message_bytes_max, 262_144);
        assert!(!config.allow_private_webhooks);
        assert_eq!(config.retain_slots, 1_000_000);
    }

    #[test]
    fn acceptors_and_data_dir_are_required() {
        assert!(Args::try_parse_from(["paxid-learner", "--listen", "x:1", "--data-dir", "/d"]).is_err());
        assert!(
            Args::try_parse_from(["paxid-learner", "--listen", "x:1", "--acceptors", "http://a"]).is_err()
        );
    }
}
