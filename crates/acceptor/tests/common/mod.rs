//! Running the real `paxid-acceptor` binary and talking to it over HTTP;
//! shared by the integration tests and the benchmark.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use api::internal::{
    AcceptRequest, AcceptResponse, Ballot, LogResponse, PrepareRequest, PrepareResponse, Proposal,
};

pub const TOKEN: &str = "crash-test-token";
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// A running acceptor process; killed when dropped.
pub struct Process {
    child: Child,
    pub url: String,
}

impl Process {
    /// Starts the binary on a free port and waits for its
    /// `listening on http://ADDR` line on stderr.
    pub fn start(data_dir: &Path, extra_args: &[&str]) -> Process {
        Process::start_under(&[], data_dir, extra_args)
    }

    /// As [`Process::start`], with the binary run by `wrapper` (for example
    /// `["strace", "-f", ...]`): the wrapper is the child, the acceptor its.
    pub fn start_under(wrapper: &[&str], data_dir: &Path, extra_args: &[&str]) -> Process {
        let bin = env!("CARGO_BIN_EXE_paxid-acceptor");
        let mut command = match wrapper.split_first() {
            None => Command::new(bin),
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(bin);
                command
            }
        };
        let mut child = command
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--cluster-token")
            .arg(TOKEN)
            .args(extra_args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the acceptor binary starts");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        // Keeps draining stderr so the process never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                match line.strip_prefix("listening on ") {
                    Some(url) => {
                        let _ = tx.send(url.to_owned());
                    }
                    None => eprintln!("[acceptor] {line}"),
                }
            }
        });
        let url = match rx.recv_timeout(STARTUP_TIMEOUT) {
            Ok(url) => url,
            Err(_) => {
                let status = child.try_wait().ok().flatten();
                let _ = child.kill();
                panic!("the acceptor did not print its address (exit status {status:?})");
            }
        };
        Process { child, url }
    }

    /// SIGKILL: no chance to flush or finish anything.
    pub fn kill_9(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
    }

    /// SIGTERM, then waits for the exit status.
    pub fn terminate(mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill runs");
        assert!(sent.success());
        self.child.wait().expect("exit status")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM to the acceptor started by [`Process::start_under`] (the
    /// wrapper's child), then waits for the wrapper to exit.
    pub fn terminate_traced(mut self) {
        let wrapper = self.child.id();
        let children = std::fs::read_to_string(format!("/proc/{wrapper}/task/{wrapper}/children"))
            .expect("the wrapper's children");
        let acceptor = children
            .split_whitespace()
            .next()
            .expect("the acceptor runs under the wrapper");
        let sent = Command::new("kill")
            .args(["-TERM", acceptor])
            .status()
            .expect("kill runs");
        assert!(sent.success());
        self.child.wait().expect("the wrapper exits");
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the binary to completion (for start-up failures).
pub fn run_to_exit(data_dir: &Path, extra_args: &[&str]) -> (ExitStatus, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_paxid-acceptor"))
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .args(extra_args)
        .output()
        .expect("runs");
    (
        output.status,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A small client of the acceptor's /v1 API.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    url: String,
}

impl Client {
    pub fn new(url: &str) -> Client {
        paxid_client::install_tls_provider();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        Client {
            http,
            url: url.to_owned(),
        }
    }

    pub async fn prepare(&self, ballot: Ballot, from: u64) -> reqwest::Result<PrepareResponse> {
        let request = PrepareRequest {
            ballot,
            from,
            replace: None,
        };
        self.post("/v1/prepare", &request).await
    }

    /// Founds a one-acceptor cluster on a blank acceptor, so that it votes;
    /// an acceptor that is a member already answers 409, which is fine.
    pub async fn found_alone(&self) {
        let status = self.status().await.expect("status");
        let join = api::internal::JoinRequest {
            membership: api::internal::Membership {
                members: vec![status.node_uuid],
                retired: Vec::new(),
            },
            floor: Default::default(),
        };
        let answer = self
            .http
            .post(format!("{}/v1/join", self.url))
            .bearer_auth(TOKEN)
            .json(&join)
            .send()
            .await
            .expect("join");
        assert!(
            answer.status().is_success() || answer.status() == reqwest::StatusCode::CONFLICT,
            "join answered {}",
            answer.status()
        );
    }

    pub async fn accept(&self, ballot: Ballot, proposals: Vec<Proposal>) -> reqwest::Result<AcceptResponse> {
        let request = AcceptRequest {
            ballot,
            chosen_below: 0,
            proposals,
            leader_url: None,
        };
        self.post("/v1/accept", &request).await
    }

    pub async fn status(&self) -> reqwest::Result<api::internal::AcceptorStatus> {
        self.get("/v1/status").await
    }

    pub async fn log(&self, from: u64, limit: usize) -> reqwest::Result<LogResponse> {
        self.get(&format!("/v1/log?from={from}&limit={limit}")).await
    }

    pub async fn metrics(&self) -> reqwest::Result<String> {
        self.http
            .get(format!("{}/metrics", self.url))
            .send()
            .await?
            .error_for_status()?
            .text()
            .await
    }

    async fn post<B: serde::Serialize, R: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> reqwest::Result<R> {
        let response = self
            .http
            .post(format!("{}{path}", self.url))
            .bearer_auth(TOKEN)
            .json(body)
            .send()
            .await?;
        response.error_for_status()?.json().await
    }

    async fn get<R: serde::de::DeserializeOwned>(&self, path: &str) -> reqwest::Result<R> {
        let response = self
            .http
            .get(format!("{}{path}", self.url))
            .bearer_auth(TOKEN)
            .send()
            .await?;
        response.error_for_status()?.json().await
    }
}

/// A one-allocation value with distinct ids per slot.
pub fn value_for(slot: u64) -> api::internal::Value {
    let allocation = api::internal::Allocation {
        sequence: "default".into(),
        id: slot * 10 + 1,
        count: 10,
    };
    api::internal::Value::Allocations {
        allocations: vec![allocation],
        keys: Vec::new(),
    }
}

/// The value of an unlabelled series (a counter or a histogram's `_count`).
pub fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// The sum of a series over all its label sets.
pub fn metric_sum(text: &str, name_with_brace: &str) -> f64 {
    text.lines()
        .filter(|line| line.starts_with(name_with_brace))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
