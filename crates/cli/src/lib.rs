//! `paxid`, the command line of paxid: `next-id`, `status`, `subscribe` and
//! `bench`.
//!
//! Every flag can also be set from its `PAXID_<FLAG>` environment variable.
//! Output is for people by default and one JSON document with `--json`.
//! Failures print one line, `paxid: <what went wrong>`, and exit non-zero.

pub mod bench;
pub mod histogram;
pub mod http;
pub mod members;
pub mod status;

use std::time::Duration;

use api::client::{NextIdRequest, NextIdResponse};
use api::learner::{CreateSubscription, SubscriptionCreated};
use clap::{Args, Parser, Subcommand};
use serde::Serialize;

use crate::bench::{BenchConfig, Stop, Target, CLIENTS_MAX};
use crate::http::{Api, CliError};
use crate::status::StatusTargets;

/// The sequencer `--url` points at unless told otherwise.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8080";

#[derive(Debug, Clone, Parser)]
#[command(
    name = "paxid",
    version,
    about = "Command line of paxid, the Paxos-replicated transaction-ID sequencer."
)]
pub struct Cli {
    /// Client URL of a sequencer (any replica).
    #[arg(long, global = true, env = "PAXID_URL", default_value = DEFAULT_URL)]
    pub url: String,

    /// Print one JSON document instead of text.
    #[arg(long, global = true, env = "PAXID_JSON")]
    pub json: bool,

    /// Shared secret of the cluster, sent as `Authorization: Bearer` on
    /// internal /v1 calls (status, subscribe).
    #[arg(long, global = true, env = "PAXID_CLUSTER_TOKEN", hide_env_values = true)]
    pub cluster_token: Option<String>,

    /// Token for `POST /next-id`, when the sequencers require one.
    #[arg(long, global = true, env = "PAXID_CLIENT_TOKEN", hide_env_values = true)]
    pub client_token: Option<String>,

    /// Token for the learner's subscription API, when it requires one.
    #[arg(long, global = true, env = "PAXID_SUBSCRIPTION_TOKEN", hide_env_values = true)]
    pub subscription_token: Option<String>,

    /// Longest any one HTTP request may take, in milliseconds.
    #[arg(long, global = true, env = "PAXID_TIMEOUT_MS", default_value_t = 5_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout_ms: u64,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Allocate IDs: prints the first, or the range.
    NextId(NextIdArgs),
    /// One table of every acceptor, the leader, every sequencer and the
    /// learner with its subscriptions.
    Status(StatusArgs),
    /// Subscribe a webhook URL to allocations; prints its id and secret.
    Subscribe(SubscribeArgs),
    /// Closed-loop load from concurrent keep-alive clients.
    Bench(BenchArgs),
    /// The acceptors and who may vote.
    #[command(subcommand)]
    Acceptors(AcceptorsCommand),
}

#[derive(Debug, Clone, Subcommand)]
pub enum AcceptorsCommand {
    /// Each acceptor's state (voting, blank, retired, unreachable) and the
    /// membership they report; a member answering at no URL is flagged.
    List(AcceptorsListArgs),
    /// Seat a new, blank acceptor (grow the cluster by one).
    Add(AcceptorUrl),
    /// Take an acceptor out of the cluster (shrink by one).
    Remove(AcceptorUrl),
    /// Seat a new, blank acceptor in the place of another (dead or alive).
    Replace(ReplaceArgs),
}

#[derive(Debug, Clone, Args)]
pub struct AcceptorsListArgs {
    /// Acceptor URLs, comma-separated (default: the configuration the
    /// sequencer at --url works in).
    #[arg(long, env = "PAXID_ACCEPTORS", value_delimiter = ',')]
    pub acceptors: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct AcceptorUrl {
    /// The acceptor's base URL, as every sequencer and learner reaches it.
    pub acceptor: String,
}

#[derive(Debug, Clone, Args)]
pub struct ReplaceArgs {
    /// The acceptor leaving its seat.
    pub old: String,
    /// The blank acceptor taking it.
    pub new: String,
}

#[derive(Debug, Clone, Args)]
pub struct NextIdArgs {
    /// How many consecutive IDs.
    #[arg(long, env = "PAXID_COUNT")]
    pub count: Option<u64>,
    /// Sequence name (default: `default`).
    #[arg(long, env = "PAXID_SEQUENCE")]
    pub sequence: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// Acceptor URLs, comma-separated.
    #[arg(long, env = "PAXID_ACCEPTORS", value_delimiter = ',')]
    pub acceptors: Vec<String>,
    /// Sequencer URLs, comma-separated (default: --url).
    #[arg(long, env = "PAXID_SEQUENCERS", value_delimiter = ',')]
    pub sequencers: Vec<String>,
    /// Learner URL.
    #[arg(long, env = "PAXID_LEARNER")]
    pub learner: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct SubscribeArgs {
    /// Where the learner POSTs the signed webhooks.
    pub webhook_url: String,
    /// Only these sequences (repeat, or comma-separate); all when absent.
    #[arg(long = "sequence", env = "PAXID_SEQUENCE", value_delimiter = ',')]
    pub sequences: Vec<String>,
    /// Deliver from this slot on (default: the learner's current point).
    #[arg(long, env = "PAXID_FROM_SLOT")]
    pub from_slot: Option<u64>,
    /// Learner URL.
    #[arg(long, env = "PAXID_LEARNER")]
    pub learner: String,
}

#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Concurrent clients, each with its own keep-alive connection.
    #[arg(long, env = "PAXID_CLIENTS", default_value_t = 16,
          value_parser = clap::value_parser!(u64).range(1..=CLIENTS_MAX as u64))]
    pub clients: u64,
    /// How long to load, like 10s, 500ms or 2m (default 10s).
    #[arg(long, env = "PAXID_DURATION", value_parser = parse_duration, conflicts_with = "requests")]
    pub duration: Option<Duration>,
    /// Stop after this many requests instead of after --duration.
    #[arg(long, env = "PAXID_REQUESTS", value_parser = clap::value_parser!(u64).range(1..))]
    pub requests: Option<u64>,
    /// IDs per request.
    #[arg(long, env = "PAXID_COUNT", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub count: u64,
    /// Sequence name (default: `default`).
    #[arg(long, env = "PAXID_SEQUENCE")]
    pub sequence: Option<String>,
    /// What --url is: a paxid sequencer (or the ceiling), or etcd's JSON gateway.
    #[arg(long, env = "PAXID_TARGET", value_enum, default_value_t = Target::Paxid)]
    pub target: Target,
}

/// An HTTP client with every scope's token from the flags.
fn api(cli: &Cli, timeout: Duration, pool_idle_per_host: usize) -> Result<Api, CliError> {
    Ok(Api::new(timeout, cli.cluster_token.clone(), pool_idle_per_host)?
        .scoped(cli.client_token.clone(), cli.subscription_token.clone()))
}

/// Runs one command and prints its result on stdout.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    let timeout = Duration::from_millis(cli.timeout_ms);
    match &cli.command {
        Command::NextId(args) => next_id(&cli, args, &api(&cli, timeout, 1)?).await,
        Command::Status(args) => status(&cli, args, &api(&cli, timeout, 1)?).await,
        Command::Subscribe(args) => subscribe(&cli, args, &api(&cli, timeout, 1)?).await,
        Command::Acceptors(AcceptorsCommand::List(args)) => {
            let api = api(&cli, timeout, 1)?;
            let acceptors = if args.acceptors.is_empty() {
                members::current(&api, &cli.url).await?.acceptor_urls
            } else {
                args.acceptors.clone()
            };
            let report = members::collect(&api, &acceptors).await;
            print(cli.json, &report, || members::render_human(&report))
        }
        Command::Acceptors(change) => {
            // The stop sign may take a few seconds to be chosen.
            let timeout = timeout.max(members::CHANGE_TIMEOUT);
            let api = api(&cli, timeout, 1)?;
            let chosen = members::change(&api, &cli.url, change).await?;
            print(cli.json, &chosen, || members::render_configuration(&chosen))
        }
        Command::Bench(args) => {
            let clients = usize::try_from(args.clients).unwrap_or(CLIENTS_MAX);
            bench(&cli, args, &api(&cli, timeout, clients)?).await
        }
    }
}

/// `12345`, or `12345..12354 (10 ids, sequence default)`.
pub fn render_range(answer: &NextIdResponse) -> String {
    if answer.count == 1 {
        return answer.id.to_string();
    }
    let last = answer.id.saturating_add(answer.count - 1);
    format!(
        "{}..{last} ({} ids, sequence {})",
        answer.id, answer.count, answer.sequence
    )
}

/// `10s`, `500ms`, `2m`, `1.5s`, or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 10s or 500ms"))?;
    let seconds = match unit.trim() {
        "" | "s" => number,
        "ms" => number / 1e3,
        "m" | "min" => number * 60.0,
        "h" => number * 3600.0,
        other => return Err(format!("unknown unit {other:?} in {text:?}; use ms, s, m or h")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("{text:?}: {e}"))
}

async fn next_id(cli: &Cli, args: &NextIdArgs, api: &Api) -> Result<(), CliError> {
    let request = NextIdRequest {
        count: args.count,
        sequence: args.sequence.clone(),
    };
    let body = (request != NextIdRequest::default()).then_some(&request);
    let answer: NextIdResponse = api.post_json(&cli.url, "/next-id", body).await?;
    print(cli.json, &answer, || render_range(&answer))
}

async fn status(cli: &Cli, args: &StatusArgs, api: &Api) -> Result<(), CliError> {
    let sequencers = if args.sequencers.is_empty() {
        vec![cli.url.clone()]
    } else {
        args.sequencers.clone()
    };
    let targets = StatusTargets {
        acceptors: args.acceptors.clone(),
        sequencers,
        learner: args.learner.clone(),
    };
    let report = status::collect(api, &targets).await;
    print(cli.json, &report, || status::render_human(&report))
}

async fn subscribe(cli: &Cli, args: &SubscribeArgs, api: &Api) -> Result<(), CliError> {
    let request = CreateSubscription {
        url: args.webhook_url.clone(),
        sequences: (!args.sequences.is_empty()).then(|| args.sequences.clone()),
        from_slot: args.from_slot,
    };
    let created: SubscriptionCreated = api
        .post_json(&args.learner, "/v1/subscriptions", Some(&request))
        .await?;
    print(cli.json, &created, || {
        format!("id      {}\nsecret  {}", created.id, created.secret)
    })
}

async fn bench(cli: &Cli, args: &BenchArgs, api: &Api) -> Result<(), CliError> {
    let stop = match (args.requests, args.duration) {
        (Some(requests), _) => Stop::Requests(requests),
        (None, duration) => Stop::After(duration.unwrap_or(Duration::from_secs(10))),
    };
    let config = BenchConfig {
        url: cli.url.clone(),
        target: args.target,
        clients: usize::try_from(args.clients).unwrap_or(CLIENTS_MAX),
        stop,
        count: args.count,
        sequence: args.sequence.clone(),
        progress: true,
    };
    let report = bench::run(api, &config).await?;
    print(cli.json, &report, || bench::render_human(&report))?;
    if report.requests == 0 {
        return Err(CliError::Usage(format!(
            "no request succeeded; first error: {}",
            report.first_error.as_deref().unwrap_or("none")
        )));
    }
    if report.order_violations > 0 {
        return Err(CliError::Usage(format!(
            "{} answers were not above the same client's previous ID",
            report.order_violations
        )));
    }
    Ok(())
}

fn print<T: Serialize>(json: bool, value: &T, human: impl FnOnce() -> String) -> Result<(), CliError> {
    let text = if json {
        serde_json::to_string_pretty(value).map_err(|e| CliError::Usage(e.to_string()))?
    } else {
        human()
    };
    println!("{text}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5 parsecs").is_err());
    }

    #[test]
    fn ranges_render_for_people() {
        let one = NextIdResponse {
            id: 12345,
            count: 1,
            sequence: "default".into(),
        };
        assert_eq!(render_range(&one), "12345");
        let ten = NextIdResponse {
            id: 12345,
            count: 10,
            sequence: "default".into(),
        };
        assert_eq!(render_range(&ten), "12345..12354 (10 ids, sequence default)");
    }

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
