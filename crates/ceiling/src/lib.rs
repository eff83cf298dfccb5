//! The ceiling: a **bench-only** server that answers paxid's client API
//! (`POST /next-id`) from an in-memory atomic counter per sequence, with no
//! consensus, no disk and no replication.
//!
//! It exists to measure what the HTTP stack alone costs, so that `make bench`
//! can say how close the real sequencer comes to it. It serves the same
//! router plumbing as the sequencer (`paxid-service`'s problem+json errors,
//! JSON extractors, body limit, timeout, metrics and trace middleware), the
//! same wire types (`api::client`), and the same validation rules (count in
//! `1..=count_max`, sequence names per [`SequenceName::parse`], at most
//! `sequences_max` sequences).
//!
//! It is never part of a production configuration: its IDs restart at 1 on
//! every start, so they are neither durable nor unique across restarts.
//! Nothing in `make run`, `deploy/` or `k8s/` starts it; only
//! `scripts/bench/run.sh` and tests do.
//!
//! Like every paxid service it prints `listening on http://ADDR` to stderr
//! once bound, so `--listen 127.0.0.1:0` works.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use api::client::{NextIdRequest, NextIdResponse};
use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use paxos_core::{Counters, SequenceName, SequenceNameError};
use service::{ApiError, CommonArgs, Context, OptionalJsonBody, RunError};

/// The binary's name, as its log, its stderr lines and its exit say it.
pub const SERVICE_NAME: &str = "paxid-ceiling";

/// IDs one request may ask for, at most, unless `--count-max` says
/// otherwise; the sequencer's default.
pub const COUNT_MAX_DEFAULT: u64 = 1_000_000;
/// Distinct sequences, at most, unless `--sequences-max` says otherwise; the
/// sequencer's default.
pub const SEQUENCES_MAX_DEFAULT: usize = 1024;

/// Command line of `paxid-ceiling`.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "paxid-ceiling",
    version,
    about = "BENCH-ONLY: paxid's POST /next-id answered from an in-memory counter, with no consensus.",
    long_about = "BENCH-ONLY: paxid's POST /next-id answered from an in-memory counter, with no \
                  consensus, no disk and no replication. It measures the cost of the HTTP stack \
                  alone, as the ceiling of what paxid-sequencer can reach. Its IDs restart at 1 on \
                  every start: never use it in a production configuration."
)]
pub struct CeilingArgs {
    #[command(flatten)]
    pub common: CommonArgs,

    /// IDs one request may ask for, at most; more get 422.
    #[arg(long, env = "PAXID_COUNT_MAX", default_value_t = COUNT_MAX_DEFAULT,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub count_max: u64,

    /// Distinct sequence names, at most; a new one beyond gets 422.
    #[arg(long, env = "PAXID_SEQUENCES_MAX", default_value_t = SEQUENCES_MAX_DEFAULT)]
    pub sequences_max: usize,
}

/// The in-memory state: the next ID of each sequence.
#[derive(Debug)]
pub struct Ceiling {
    next_ids: RwLock<HashMap<SequenceName, AtomicU64>>,
    count_max: u64,
    sequences_max: usize,
}

/// Why a request gets no IDs; the same classes, statuses and details as the
/// sequencer's answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refused {
    /// `count` outside `1..=count_max`.
    Count { count: u64, count_max: u64 },
    /// An invalid sequence name.
    Sequence(SequenceNameError),
    /// A new sequence beyond `sequences_max`.
    TooManySequences,
    /// The sequence would pass `u64::MAX`.
    Exhausted,
}

impl Ceiling {
    pub fn new(count_max: u64, sequences_max: usize) -> Ceiling {
        assert!(count_max >= 1, "count_max must allow one ID");
        Ceiling {
            next_ids: RwLock::new(HashMap::new()),
            count_max,
            sequences_max,
        }
    }

    /// Hands out `count` IDs of `sequence` and returns the first.
    pub fn allocate(&self, sequence: &SequenceName, count: u64) -> Result<u64, Refused> {
        {
            // Atomics are consistent whatever a panicking holder was doing.
            let next_ids = self.next_ids.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(next_id) = next_ids.get(sequence) {
                return take(next_id, count);
            }
        }
        let mut next_ids = self.next_ids.write().unwrap_or_else(PoisonError::into_inner);
        if !next_ids.contains_key(sequence) && next_ids.len() >= self.sequences_max {
            return Err(Refused::TooManySequences);
        }
        let next_id = next_ids
            .entry(sequence.clone())
            .or_insert_with(|| AtomicU64::new(Counters::FIRST_ID));
        take(next_id, count)
    }

    /// Validates a `POST /next-id` body by the sequencer's rules.
    pub fn parse_request(&self, request: Option<NextIdRequest>) -> Result<(SequenceName, u64), Refused> {
        let request = request.unwrap_or_default();
        let count = request.count.unwrap_or(1);
        if count == 0 || count > self.count_max {
            return Err(Refused::Count {
                count,
                count_max: self.count_max,
            });
        }
        let sequence = match request.sequence {
            None => SequenceName::default_sequence(),
            Some(name) => SequenceName::parse(&name).map_err(Refused::Sequence)?,
        };
        Ok((sequence, count))
    }
}

impl From<Refused> for ApiError {
    fn from(refused: Refused) -> ApiError {
        match refused {
            Refused::Count { count, count_max } => {
                ApiError::unprocessable(format!("count must be between 1 and {count_max}, got {count}"))
                    .with_extension("field", "count".into())
            }
            Refused::Sequence(error) => {
                ApiError::unprocessable(error.to_string()).with_extension("field", "sequence".into())
            }
            Refused::TooManySequences => {
                ApiError::unprocessable("the cluster holds its maximum number of sequences")
                    .with_extension("field", "sequence".into())
            }
            Refused::Exhausted => ApiError::conflict("this sequence would pass 2^64 - 1"),
        }
    }
}

/// The ceiling's router with paxid's standard layers and health routes.
pub fn app(ceiling: Arc<Ceiling>, common: &CommonArgs) -> Router {
    let app = Router::new()
        .route(api::routes::NEXT_ID, post(next_id))
        .with_state(ceiling)
        .merge(service::health_routes(|| async { Ok(()) }));
    service::with_standard_layers(app, &common.limits())
}

/// Binds `--listen` and serves until `shutdown` resolves.
pub async fn run(
    args: CeilingArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let listener = service::listen(&args.common.listen).await?;
    service::announce_listener(&listener)?;
    let ceiling = Arc::new(Ceiling::new(args.count_max, args.sequences_max));
    service::serve(listener, app(ceiling, &args.common), shutdown)
        .await
        .context("serving failed")
}

async fn next_id(
    State(ceiling): State<Arc<Ceiling>>,
    OptionalJsonBody(request): OptionalJsonBody<NextIdRequest>,
) -> Result<Json<NextIdResponse>, ApiError> {
    let (sequence, count) = ceiling.parse_request(request)?;
    let id = ceiling.allocate(&sequence, count)?;
    Ok(Json(NextIdResponse {
        id,
        count,
        sequence: sequence.as_str().to_owned(),
    }))
}

fn take(next_id: &AtomicU64, count: u64) -> Result<u64, Refused> {
    next_id
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |next| {
            next.checked_add(count)
        })
        .map_err(|_| Refused::Exhausted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> SequenceName {
        SequenceName::parse(s).expect("valid name")
    }

    #[test]
    fn ranges_are_disjoint_and_increasing_per_sequence() {
        let ceiling = Ceiling::new(10, 4);
        assert_eq!(ceiling.allocate(&name("a"), 3).ok(), Some(1));
        assert_eq!(ceiling.allocate(&name("a"), 1).ok(), Some(4));
        assert_eq!(ceiling.allocate(&name("b"), 5).ok(), Some(1));
        assert_eq!(ceiling.allocate(&name("a"), 2).ok(), Some(5));
    }

    #[test]
    fn requests_are_validated_like_the_sequencer() {
        let ceiling = Ceiling::new(10, 4);
        let ok = ceiling.parse_request(None).expect("empty body is valid");
        assert_eq!(ok, (SequenceName::default_sequence(), 1));
        let zero = NextIdRequest {
            count: Some(0),
            sequence: None,
        };
        assert_eq!(
            ceiling.parse_request(Some(zero)),
            Err(Refused::Count {
                count: 0,
                count_max: 10
            })
        );
        let too_many = NextIdRequest {
            count: Some(11),
            sequence: None,
        };
        assert_eq!(
            ceiling.parse_request(Some(too_many)),
            Err(Refused::Count {
                count: 11,
                count_max: 10
            })
        );
        let ten = NextIdRequest {
            count: Some(10),
            sequence: Some("orders".into()),
        };
        assert_eq!(ceiling.parse_request(Some(ten)), Ok((name("orders"), 10)));
        let bad_name = NextIdRequest {
            count: None,
            sequence: Some("a b".into()),
        };
        let refused = Refused::Sequence(SequenceNameError::BadCharacter { character: ' ' });
        assert_eq!(ceiling.parse_request(Some(bad_name)), Err(refused));
    }

    #[test]
    fn sequences_are_bounded_and_overflow_is_refused() {
        let ceiling = Ceiling::new(u64::MAX, 1);
        assert!(ceiling.allocate(&name("a"), 1).is_ok());
        assert_eq!(ceiling.allocate(&name("b"), 1), Err(Refused::TooManySequences));
        assert_eq!(ceiling.allocate(&name("a"), u64::MAX), Err(Refused::Exhausted));
        assert_eq!(
            ceiling.allocate(&name("a"), 1).ok(),
            Some(2),
            "a refused request takes nothing"
        );
    }
}
