//! `paxid`, the command line of paxid: `next-id`, `status`, `health`,
//! `subscribe`, `subscriptions`, `acceptors`, `bench` and `completion`
//! (docs/cli.md).
//!
//! Every flag can also be set from its `PAXID_<FLAG>` environment variable.
//! Output is for people by default and JSON with `--json`.
//! Failures print one line, `paxid: <what went wrong>`, and exit non-zero.

pub mod bench;
pub mod health;
pub mod histogram;
pub mod http;
pub mod members;
pub mod status;
pub mod subscriptions;

use std::time::Duration;

use api::client::{NextIdRequest, NextIdResponse};
use api::learner::{CreateSubscription, SubscriptionCreated};
use clap::{Args, Parser, Subcommand, ValueEnum};
use reqwest::Method;
use serde::Serialize;

use crate::bench::{BenchConfig, Stop, Target, CLIENTS_MAX};
use crate::http::{Api, CliError, Retry};
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

    /// Sequencer URLs, comma-separated, used instead of --url: a call goes
    /// to the one that answered last and moves to the next on a connection
    /// error or a timeout.
    #[arg(long, global = true, env = "PAXID_ENDPOINTS", value_delimiter = ',')]
    pub endpoints: Vec<String>,

    /// How long calls that are safe to repeat keep retrying answers of 503
    /// (each wait as long as its Retry-After), in milliseconds; 0: never.
    #[arg(long, global = true, env = "PAXID_RETRY_MS", default_value_t = 5_000)]
    pub retry_ms: u64,

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
    /// Subscribe a webhook URL to allocations; prints its id and secret
    /// (the same as `subscriptions create`).
    Subscribe(SubscribeArgs),
    /// The learner's subscriptions: create, list, get, delete, enable,
    /// replay.
    #[command(subcommand)]
    Subscriptions(SubscriptionsCommand),
    /// Readiness (`GET /readyz`) of sequencers, acceptors or learners: one
    /// line each; exit 0 only if every one is ready.
    Health(HealthArgs),
    /// Print a shell completion script.
    Completion(CompletionArgs),
    /// Closed-loop load from concurrent keep-alive clients.
    Bench(BenchArgs),
    /// The acceptors and who may vote.
    #[command(subcommand)]
    Acceptors(AcceptorsCommand),
}

#[derive(Debug, Clone, Subcommand)]
pub enum SubscriptionsCommand {
    /// Subscribe a webhook URL; prints its id and secret (shown only now).
    Create(SubscribeArgs),
    /// Every subscription of the learner.
    List(LearnerArg),
    /// One subscription and its delivery state.
    Get(SubscriptionId),
    /// Remove a subscription; nothing more is delivered to it.
    Delete(SubscriptionId),
    /// Enable a disabled subscription again; delivery resumes at its cursor.
    Enable(SubscriptionId),
    /// Deliver again from a slot on (at or below its delivered_below).
    Replay(ReplayArgs),
    /// Send one signed `ping` webhook now; exit 1 unless the receiver
    /// answered 2xx. Changes nothing in the subscription.
    Ping(SubscriptionId),
}

#[derive(Debug, Clone, Args)]
pub struct LearnerArg {
    /// Learner URL.
    #[arg(long, env = "PAXID_LEARNER")]
    pub learner: String,
}

#[derive(Debug, Clone, Args)]
pub struct SubscriptionId {
    /// The subscription's id (`sub_...`).
    pub id: String,
    #[command(flatten)]
    pub learner: LearnerArg,
}

#[derive(Debug, Clone, Args)]
pub struct ReplayArgs {
    /// The subscription's id (`sub_...`).
    pub id: String,
    /// The first slot to deliver again.
    #[arg(long)]
    pub from_slot: u64,
    #[command(flatten)]
    pub learner: LearnerArg,
}

#[derive(Debug, Clone, Args)]
pub struct HealthArgs {
    /// Base URLs of any paxid processes (default: --endpoints, or --url).
    pub urls: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct CompletionArgs {
    pub shell: Shell,
}

/// The shells `paxid completion` writes for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
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
    /// Sent as `Idempotency-Key`: running the command again with the same
    /// key (and count and sequence) prints the same IDs, also after a
    /// leader change. 1..=255 visible ASCII characters.
    #[arg(long, value_name = "KEY")]
    pub idempotency_key: Option<String>,
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
    /// Every request carries a new Idempotency-Key: what keys cost.
    #[arg(long)]
    pub keyed: bool,
    /// What --url is: a paxid sequencer (or the ceiling), or etcd's JSON gateway.
    #[arg(long, env = "PAXID_TARGET", value_enum, default_value_t = Target::Paxid)]
    pub target: Target,
}

/// An HTTP client with every scope's token from the flags.
fn api(cli: &Cli, timeout: Duration, pool_idle_per_host: usize) -> Result<Api, CliError> {
    Ok(Api::new(timeout, cli.cluster_token.clone(), pool_idle_per_host)?
        .scoped(cli.client_token.clone(), cli.subscription_token.clone())
        .with_retry_budget(Duration::from_millis(cli.retry_ms)))
}

impl Cli {
    /// The sequencers to call: `--endpoints`, or `--url` alone.
    pub fn endpoints(&self) -> Vec<String> {
        let listed: Vec<String> = self
            .endpoints
            .iter()
            .map(|e| e.trim().to_owned())
            .filter(|e| !e.is_empty())
            .collect();
        if listed.is_empty() {
            vec![self.url.clone()]
        } else {
            listed
        }
    }
}

/// Runs one command and prints its result on stdout.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    let timeout = Duration::from_millis(cli.timeout_ms);
    match &cli.command {
        Command::NextId(args) => {
            let api = api(&cli, timeout, 1)?.with_idempotency_key(args.idempotency_key.clone());
            next_id(&cli, args, &api).await
        }
        Command::Status(args) => status(&cli, args, &api(&cli, timeout, 1)?).await,
        Command::Subscribe(args) => subscribe(&cli, args, &api(&cli, timeout, 1)?).await,
        Command::Subscriptions(command) => {
            subscriptions_command(&cli, command, &api(&cli, timeout, 1)?).await
        }
        Command::Health(args) => health(&cli, args, &api(&cli, timeout, 1)?).await,
        Command::Completion(args) => completion(&cli, args.shell),
        Command::Acceptors(AcceptorsCommand::List(args)) => {
            let api = api(&cli, timeout, 1)?;
            let acceptors = if args.acceptors.is_empty() {
                members::current(&api, &cli.endpoints()).await?.acceptor_urls
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
            let chosen = members::change(&api, &cli.endpoints(), change).await?;
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
    let answer: NextIdResponse = api
        .call_json(
            Method::POST,
            &cli.endpoints(),
            api::routes::NEXT_ID,
            body,
            Retry::On503,
        )
        .await?;
    print(cli.json, &answer, || render_range(&answer))
}

/// Without `--acceptors`, the acceptors (and a leader not listed) come
/// from the first sequencer that answers; without one, as before.
async fn status(cli: &Cli, args: &StatusArgs, api: &Api) -> Result<(), CliError> {
    let mut sequencers = if args.sequencers.is_empty() {
        cli.endpoints()
    } else {
        args.sequencers.clone()
    };
    let mut acceptors = args.acceptors.clone();
    let discovered = if acceptors.is_empty() {
        status::discover(api, &sequencers).await
    } else {
        None
    };
    if let Some(found) = &discovered {
        acceptors.clone_from(&found.acceptors);
        sequencers.extend(found.leader.iter().cloned());
    }
    let targets = StatusTargets {
        acceptors,
        sequencers,
        learner: args.learner.clone(),
    };
    let mut report = status::collect(api, &targets).await;
    report.discovered = discovered;
    print(cli.json, &report, || status::render_human(&report))
}

async fn subscribe(cli: &Cli, args: &SubscribeArgs, api: &Api) -> Result<(), CliError> {
    let request = CreateSubscription {
        url: args.webhook_url.clone(),
        sequences: (!args.sequences.is_empty()).then(|| args.sequences.clone()),
        from_slot: args.from_slot,
    };
    let created: SubscriptionCreated = subscriptions::create(api, &args.learner, &request).await?;
    print(cli.json, &created, || {
        format!("id      {}\nsecret  {}", created.id, created.secret)
    })
}

async fn subscriptions_command(cli: &Cli, command: &SubscriptionsCommand, api: &Api) -> Result<(), CliError> {
    use subscriptions::{render_view, Deleted};
    match command {
        SubscriptionsCommand::Create(args) => subscribe(cli, args, api).await,
        SubscriptionsCommand::List(args) => {
            let list = subscriptions::list(api, &args.learner).await?;
            print(cli.json, &list, || subscriptions::render_list(&list))
        }
        SubscriptionsCommand::Get(args) => {
            let view = subscriptions::get(api, &args.learner.learner, &args.id).await?;
            print(cli.json, &view, || render_view(&view))
        }
        SubscriptionsCommand::Delete(args) => {
            let deleted: Deleted = subscriptions::delete(api, &args.learner.learner, &args.id).await?;
            print(cli.json, &deleted, || format!("deleted {}", deleted.id))
        }
        SubscriptionsCommand::Enable(args) => {
            let view = subscriptions::enable(api, &args.learner.learner, &args.id).await?;
            print(cli.json, &view, || render_view(&view))
        }
        SubscriptionsCommand::Replay(args) => {
            let view = subscriptions::replay(api, &args.learner.learner, &args.id, args.from_slot).await?;
            print(cli.json, &view, || render_view(&view))
        }
        SubscriptionsCommand::Ping(args) => {
            let result = subscriptions::ping(api, &args.learner.learner, &args.id).await?;
            print(cli.json, &result, || subscriptions::render_ping(&result))?;
            // Printed either way; the exit code says whether it arrived.
            if result.delivered {
                Ok(())
            } else {
                Err(CliError::Silent)
            }
        }
    }
}

/// One line per URL (compact JSON with `--json`); an error when any is not
/// ready, so that the exit code is 1, with nothing more on stderr.
async fn health(cli: &Cli, args: &HealthArgs, api: &Api) -> Result<(), CliError> {
    let urls = if args.urls.is_empty() {
        cli.endpoints()
    } else {
        args.urls.clone()
    };
    let probes = futures::future::join_all(urls.iter().map(|url| health::probe(api, url))).await;
    let mut all_ready = true;
    for probe in probes {
        let probe = probe?;
        all_ready &= probe.ready;
        let line = if cli.json {
            serde_json::to_string(&probe).map_err(|e| CliError::Usage(e.to_string()))?
        } else {
            health::render(&probe)
        };
        println!("{line}");
    }
    if all_ready {
        Ok(())
    } else {
        Err(CliError::Silent)
    }
}

/// The completion script, or `{"shell": ..., "script": ...}`.
fn completion(cli: &Cli, shell: Shell) -> Result<(), CliError> {
    use clap::CommandFactory;
    let generator = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    let mut script = Vec::new();
    clap_complete::generate(generator, &mut Cli::command(), "paxid", &mut script);
    let script = String::from_utf8(script).map_err(|e| CliError::Usage(e.to_string()))?;
    if cli.json {
        let name = format!("{generator}");
        return print(
            true,
            &serde_json::json!({"shell": name, "script": script}),
            String::new,
        );
    }
    print!("{script}");
    Ok(())
}

async fn bench(cli: &Cli, args: &BenchArgs, api: &Api) -> Result<(), CliError> {
    let stop = match (args.requests, args.duration) {
        (Some(requests), _) => Stop::Requests(requests),
        (None, duration) => Stop::After(duration.unwrap_or(Duration::from_secs(10))),
    };
    let config = BenchConfig {
        // One target: the first endpoint.
        url: cli.endpoints().swap_remove(0),
        target: args.target,
        clients: usize::try_from(args.clients).unwrap_or(CLIENTS_MAX),
        stop,
        count: args.count,
        sequence: args.sequence.clone(),
        keyed: args.keyed,
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
