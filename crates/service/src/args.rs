//! Flags every paxid binary accepts.

use std::time::Duration;

use clap::builder::{NonEmptyStringValueParser, RangedU64ValueParser};
use telemetry::LogFormat;

use crate::HttpLimits;

/// Flags shared by every paxid server; `#[command(flatten)]` them into the
/// binary's own `clap::Parser`. Each flag can also be set from its
/// `PAXID_<FLAG>` environment variable.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct CommonArgs {
    /// Address to listen on, HOST:PORT (for example 0.0.0.0:7000).
    #[arg(long, env = "PAXID_LISTEN", value_name = "HOST:PORT")]
    pub listen: String,

    /// Log line format on stderr.
    #[arg(long, env = "PAXID_LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty)]
    pub log_format: LogFormat,

    /// Shared secret of the cluster; when set, internal /v1/ endpoints
    /// require `Authorization: Bearer <token>`.
    #[arg(
        long,
        env = "PAXID_CLUSTER_TOKEN",
        hide_env_values = true,
        value_parser = NonEmptyStringValueParser::new()
    )]
    pub cluster_token: Option<String>,

    /// A file of cluster tokens (comma- or line-separated), read again when
    /// it changes: a mounted Secret can be rotated without a restart. The
    /// first token (of the flag, else of the file) is the one sent.
    #[arg(long, env = "PAXID_CLUSTER_TOKEN_FILE", value_name = "PATH")]
    pub cluster_token_file: Option<std::path::PathBuf>,

    /// The cluster this process belongs to. An acceptor records it in its
    /// data dir on first start and refuses a data dir of another cluster;
    /// sequencers and learners name it on every call to an acceptor, and
    /// an acceptor of another cluster refuses them (409 `wrong-cluster`).
    #[arg(long, env = "PAXID_CLUSTER_ID", default_value = "paxid", value_parser = parse_cluster_id)]
    pub cluster_id: String,

    /// Largest request body accepted, in bytes; larger ones get 413.
    #[arg(
        long,
        env = "PAXID_BODY_LIMIT_BYTES",
        default_value_t = HttpLimits::default().body_bytes_max,
        value_parser = RangedU64ValueParser::<usize>::new().range(1..)
    )]
    pub body_limit_bytes: usize,

    /// Longest a request may take on the server, in milliseconds; slower
    /// ones get 503 with Retry-After.
    #[arg(
        long,
        env = "PAXID_REQUEST_TIMEOUT_MS",
        default_value_t = default_request_timeout_ms(),
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub request_timeout_ms: u64,
}

/// 1..=64 characters of `[A-Za-z0-9_.-]`: it shows up in logs, status,
/// headers and error messages.
pub fn parse_cluster_id(id: &str) -> Result<String, String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
    if id.is_empty() || id.len() > 64 || !id.chars().all(allowed) {
        return Err(format!(
            "cluster id {id:?}: give 1 to 64 characters of A-Z a-z 0-9 _ . -"
        ));
    }
    Ok(id.to_owned())
}

impl CommonArgs {
    /// The cluster tokens internal routes accept (a comma-separated list,
    /// for rotation, and the file); the first is the one this process sends.
    pub fn cluster_tokens(&self) -> crate::Tokens {
        crate::Tokens::new(self.cluster_token.as_slice(), self.cluster_token_file.clone())
    }

    /// The HTTP limits these flags describe.
    pub fn limits(&self) -> HttpLimits {
        HttpLimits {
            body_bytes_max: self.body_limit_bytes,
            request_timeout: Duration::from_millis(self.request_timeout_ms),
        }
    }
}

fn default_request_timeout_ms() -> u64 {
    let timeout = HttpLimits::default().request_timeout;
    u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX)
}
