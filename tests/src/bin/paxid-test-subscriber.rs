//! A webhook receiver for the container fault tests: it answers every POST
//! with 204 and writes what it received as one JSON line on stdout, where
//! `docker logs` collects it:
//!
//! ```text
//! {"path":"/hook","webhook-id":"msg_…","webhook-timestamp":"…","webhook-signature":"v1,…","body":"{…}","received-unix-ns":…}
//! ```
//!
//! The body is kept as the exact string received so that the test can check
//! the signature over the same bytes. The line is written before the answer,
//! so a message the learner saw acknowledged is always in the log; a killed
//! receiver may log a message it never acknowledged, which the learner then
//! sends again under the same `webhook-id`.
//!
//! Usage: `paxid-test-subscriber [--listen HOST:PORT] [--status CODE]
//! [--record FILE]` (listen default `0.0.0.0:9000`, or `PAXID_LISTEN`).
//! `--status` makes it answer every webhook with that status instead of 204,
//! to play a broken subscriber; it still logs what it received. `--record`
//! also appends every line to FILE (before answering), a record that no log
//! rotation can cut: the container tests read it from a volume.

use std::io::Write;
use std::sync::OnceLock;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::Router;

const LISTEN_DEFAULT: &str = "0.0.0.0:9000";
/// The status every webhook gets (`--status`); 204 unless told otherwise.
static ANSWER: OnceLock<StatusCode> = OnceLock::new();
/// The `--record` file, if any, shared by every request.
static RECORD: OnceLock<Option<std::sync::Mutex<std::fs::File>>> = OnceLock::new();
/// Webhook bodies are at most 256 KiB by the learner's default; leave room.
const BODY_BYTES_MAX: usize = 16 * 1024 * 1024;
const LOGGED_HEADERS: [&str; 4] = [
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "content-type",
];

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let (listen, answer, record) = parse_args()?;
    ANSWER.set(answer).expect("set once");
    let record = match record {
        Some(path) => Some(std::sync::Mutex::new(
            std::fs::OpenOptions::new().create(true).append(true).open(path)?,
        )),
        None => None,
    };
    RECORD.set(record).expect("set once");
    // Every request is a webhook to log, whatever its path.
    let app = Router::new()
        .fallback(receive)
        .layer(axum::extract::DefaultBodyLimit::max(BODY_BYTES_MAX));
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    eprintln!("paxid-test-subscriber listening on {}", listener.local_addr()?);
    // PID 1 in a container gets no default SIGTERM handling: without this,
    // `docker stop` would wait for its grace period and then SIGKILL.
    axum::serve(listener, app)
        .with_graceful_shutdown(terminated())
        .await
}

fn parse_args() -> std::io::Result<(String, StatusCode, Option<String>)> {
    let mut args = std::env::args().skip(1);
    let mut listen = std::env::var("PAXID_LISTEN").unwrap_or_else(|_| LISTEN_DEFAULT.to_owned());
    let mut answer = StatusCode::NO_CONTENT;
    let mut record = None;
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) => (name.to_owned(), Some(value.to_owned())),
            None => (arg, None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| usage(&format!("{name} needs a value")))
        };
        match name.as_str() {
            "--listen" => listen = value()?,
            "--status" => {
                answer = value()?
                    .parse::<u16>()
                    .ok()
                    .and_then(|code| StatusCode::from_u16(code).ok())
                    .ok_or_else(|| usage("--status needs an HTTP status code"))?
            }
            "--record" => record = Some(value()?),
            other => return Err(usage(&format!("unknown argument {other:?}"))),
        }
    }
    Ok((listen, answer, record))
}

fn usage(problem: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidInput,
        format!(
            "{problem}; usage: paxid-test-subscriber [--listen HOST:PORT] [--status CODE] [--record FILE]"
        ),
    )
}

async fn receive(uri: Uri, headers: HeaderMap, body: Bytes) -> StatusCode {
    let mut line = serde_json::Map::new();
    line.insert("path".into(), uri.path().into());
    for name in LOGGED_HEADERS {
        if let Some(value) = headers.get(name).and_then(|v| v.to_str().ok()) {
            line.insert(name.into(), value.into());
        }
    }
    line.insert("body".into(), String::from_utf8_lossy(&body).into_owned().into());
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    line.insert(
        "received-unix-ns".into(),
        now.map_or(0, |d| d.as_nanos() as u64).into(),
    );
    let text = serde_json::Value::Object(line).to_string();
    // One write of the whole line under the lock, flushed before answering:
    // what the learner sees acknowledged is already in the log.
    let mut out = std::io::stdout().lock();
    let written = writeln!(out, "{text}")
        .and_then(|()| out.flush())
        .and_then(|()| append_record(&text));
    match written {
        Ok(()) => *ANSWER.get().unwrap_or(&StatusCode::NO_CONTENT),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Appends the line to the `--record` file (one write, so that lines never
/// interleave); the page cache keeps it across a kill of this process.
fn append_record(line: &str) -> std::io::Result<()> {
    let Some(Some(file)) = RECORD.get() else {
        return Ok(());
    };
    let mut file = file.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    file.write_all(format!("{line}\n").as_bytes())
}

async fn terminated() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(stream) => stream,
        Err(error) => {
            eprintln!("cannot listen for SIGTERM: {error}");
            return std::future::pending().await;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
