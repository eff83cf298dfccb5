//! How every service starts, says where it listens, and ends: one error
//! shape for `run`, one way to exit on an error the process cannot survive,
//! and the exit code and panic logging of `main`.

use std::error::Error;
use std::fmt;
use std::net::SocketAddr;
use std::process::ExitCode;

use tokio::net::TcpListener;

/// Any error, as the source of a [`RunError`].
pub type BoxError = Box<dyn Error + Send + Sync + 'static>;

/// Why a service could not start, or stopped with an error: what it was
/// doing (`context`) and what went wrong (`source`). Displayed as
/// `{context}: {source}`, for example `cannot listen on 127.0.0.1:1:
/// Address in use (os error 98)`.
#[derive(Debug)]
pub struct RunError {
    context: String,
    source: BoxError,
}

impl RunError {
    /// `source` is any error, or a message (`String`, `&str`).
    pub fn new(context: impl Into<String>, source: impl Into<BoxError>) -> RunError {
        RunError {
            context: context.into(),
            source: source.into(),
        }
    }

    /// What the service was doing.
    pub fn context(&self) -> &str {
        &self.context
    }
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.context, self.source)
    }
}

impl Error for RunError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&*self.source)
    }
}

/// Turns any `Result` into one with a [`RunError`], in one line:
/// `store.open().context("cannot open the data dir")?`.
pub trait Context<T> {
    fn context(self, context: impl Into<String>) -> Result<T, RunError>;

    /// As [`Context::context`], with the context built only on an error.
    fn with_context<C: Into<String>>(self, context: impl FnOnce() -> C) -> Result<T, RunError>;
}

impl<T, E: Into<BoxError>> Context<T> for Result<T, E> {
    fn context(self, context: impl Into<String>) -> Result<T, RunError> {
        self.map_err(|source| RunError::new(context, source))
    }

    fn with_context<C: Into<String>>(self, context: impl FnOnce() -> C) -> Result<T, RunError> {
        self.map_err(|source| RunError::new(context(), source))
    }
}

/// Binds `addr` (`HOST:PORT`; port 0 picks a free one).
pub async fn listen(addr: &str) -> Result<TcpListener, RunError> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))
}

/// Prints `listening on http://ADDR` to stderr, whatever the log level or
/// format, and returns the address. Tests and scripts that start a service
/// with port 0 read the port from this exact line; every service prints it
/// once it is about to serve.
pub fn announce_listener(listener: &TcpListener) -> Result<SocketAddr, RunError> {
    let addr = listener.local_addr().context("no local address")?;
    eprintln!("listening on http://{addr}");
    Ok(addr)
}

/// Ends the process at once, with exit code 1, after logging `message` at
/// error level and printing `{service}: fatal: {message}` to stderr. For
/// an error the process cannot go on from; each caller says why a restart
/// (by the supervisor) is the way out.
pub fn fatal(service: &str, message: &str) -> ! {
    tracing::error!("fatal: {message}");
    eprintln!("{service}: fatal: {message}");
    std::process::exit(1)
}

/// The exit code of a service's `main` from what its `run` returned; an
/// error is logged (`{service} stopped`) and printed as `{service}: {error}`
/// to stderr.
pub fn exit_code(service: &str, result: Result<(), RunError>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "{service} stopped");
            eprintln!("{service}: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Logs every panic at error level (in the JSON log too), then prints it as
/// the default hook does. Every `main` calls it once logging is set up; a
/// panic in an essential task then also ends the process (see the
/// sequencer's `watch_essential`).
pub fn log_panics() {
    let print = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        tracing::error!(panic = %info, "panicked");
        print(info);
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_error_shows_its_context_then_its_source() {
        let io = std::io::Error::new(std::io::ErrorKind::AddrInUse, "Address in use");
        let error = RunError::new("cannot listen on 127.0.0.1:1", io);
        assert_eq!(error.to_string(), "cannot listen on 127.0.0.1:1: Address in use");
        assert_eq!(error.context(), "cannot listen on 127.0.0.1:1");
        assert_eq!(
            error.source().map(ToString::to_string).as_deref(),
            Some("Address in use")
        );

        let message = RunError::new("the learning task stopped", "it returned".to_owned());
        assert_eq!(message.to_string(), "the learning task stopped: it returned");
    }

    #[test]
    fn context_wraps_only_an_error() {
        let ok: Result<u8, std::io::Error> = Ok(7);
        assert_eq!(ok.context("never shown").ok(), Some(7));

        let failed: Result<(), String> = Err("--acceptors needs at least one URL".into());
        let error = failed.context("invalid configuration").expect_err("an error");
        assert_eq!(
            error.to_string(),
            "invalid configuration: --acceptors needs at least one URL"
        );

        let mut built = false;
        let ok: Result<(), &str> = Ok(());
        let _ = ok.with_context(|| {
            built = true;
            "never built"
        });
        assert!(!built, "the context of a success is not built");
        let failed: Result<(), &str> = Err("refused");
        let error = failed
            .with_context(|| format!("cannot open {}", "/data"))
            .expect_err("an error");
        assert_eq!(error.to_string(), "cannot open /data: refused");
    }

    #[tokio::test]
    async fn listen_names_the_address_it_cannot_bind() {
        let taken = listen("127.0.0.1:0").await.expect("a free port");
        let addr = announce_listener(&taken).expect("a local address");
        let error = listen(&addr.to_string()).await.expect_err("the port is taken");
        assert!(
            error
                .to_string()
                .starts_with(&format!("cannot listen on {addr}: ")),
            "{error}"
        );
        let error = listen("not an address").await.expect_err("not an address");
        assert_eq!(error.context(), "cannot listen on not an address");
    }

    #[test]
    fn exit_code_is_success_only_for_ok() {
        let code = |result| format!("{:?}", exit_code("paxid-test", result));
        assert_eq!(code(Ok(())), format!("{:?}", ExitCode::SUCCESS));
        let failed = Err(RunError::new("serving failed", "connection reset"));
        assert_eq!(code(failed), format!("{:?}", ExitCode::FAILURE));
        assert_ne!(
            format!("{:?}", ExitCode::SUCCESS),
            format!("{:?}", ExitCode::FAILURE)
        );
    }
}
