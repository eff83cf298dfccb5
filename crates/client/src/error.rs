//! What a call can fail with. Every variant is `Clone`: a failed call fails
//! every caller that shared it with the same error.

pub use api::problem::Problem;

/// The error of [`crate::Client::next_id`].
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server refused the request: a 4xx other than 429, with its RFC
    /// 9457 problem document (`type`, `title`, `status`, `detail`). Never
    /// retried: the same request would be refused again. A 401 means the
    /// token is missing or wrong; a 422 a bad `sequence` or `count`.
    #[error("refused with {}: {} ({})", .0.status, .0.title, .0.detail.as_deref().unwrap_or(.0.type_.as_str()))]
    Refused(Problem),
    /// Every attempt within the retry budget failed with something worth
    /// retrying (connection errors, timeouts, 503, 429, other 5xx).
    /// After a timeout IDs may have been consumed: a gap, never a
    /// duplicate.
    #[error("no endpoint served the call in {attempts} attempts over {elapsed_ms} ms; last: {last}")]
    Unavailable {
        attempts: u32,
        elapsed_ms: u64,
        /// The last failure.
        last: Failure,
    },
    /// `count` is 0 or above the client's `count_max`; nothing was sent.
    #[error("count must be between 1 and {count_max}, got {count}")]
    InvalidCount { count: u64, count_max: u64 },
    /// Too many callers are waiting for this sequence already
    /// (`waiting_max`); nothing was sent for this one.
    #[error("{waiting} callers are waiting for sequence {sequence:?} already")]
    Overloaded { sequence: String, waiting: usize },
    /// The server answered 200 with something that is not the allocation
    /// asked for. Its IDs are handed to nobody (a gap).
    #[error("the answer is not the allocation asked for: {0}")]
    InvalidAnswer(String),
    /// The task that made the call went away (the runtime shut down).
    #[error("the client's call task ended without an answer")]
    Closed,
}

impl Error {
    /// The problem document the server sent, for refusals and for the last
    /// failure of an exhausted retry budget when it was an HTTP error.
    pub fn problem(&self) -> Option<&Problem> {
        match self {
            Error::Refused(problem) => Some(problem),
            Error::Unavailable {
                last: Failure::Status { problem, .. },
                ..
            } => problem.as_ref(),
            _ => None,
        }
    }
}

/// One failed attempt that is worth retrying.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Failure {
    /// The endpoint did not answer within the request timeout. The call
    /// may have taken effect: its IDs are then skipped.
    #[error("{endpoint}: timed out")]
    Timeout { endpoint: String },
    /// No connection, or the connection broke.
    #[error("{endpoint}: {message}")]
    Transport { endpoint: String, message: String },
    /// 503, 429 or another 5xx; the problem document when the body was one.
    #[error("{endpoint}: {status}{}", problem.as_ref().and_then(|p| p.detail.as_deref()).map(|d| format!(" ({d})")).unwrap_or_default())]
    Status {
        endpoint: String,
        status: u16,
        problem: Option<Problem>,
    },
}
