//! A paxid cluster of real processes on loopback ports.

use std::collections::BTreeMap;
use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The release binaries cargo built next to this test binary.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary has a path");
    // target/release/deps/<test> -> target/release/<name>
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the binaries first (`cargo build --release --workspace --bins` or `make build`)",
        path.display()
    );
    path
}

/// A free loopback port (bound and released; races are rare and visible).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    listener.local_addr().expect("local addr").port()
}

/// One server process that can be killed, paused and restarted with the
/// same arguments (and so the same port and data dir).
pub struct Proc {
    pub name: String,
    pub port: u16,
    program: PathBuf,
    args: Vec<String>,
    log: PathBuf,
    child: Option<Child>,
}

impl Proc {
    /// Starts `program` (a binary built next to the tests), logging to
    /// `<log_dir>/<name>.log`.
    pub fn launch(log_dir: &Path, name: &str, program: &str, port: u16, args: Vec<String>) -> Proc {
        let mut proc = Proc {
            log: log_dir.join(format!("{name}.log")),
            name: name.to_owned(),
            port,
            program: bin(program),
            args,
            child: None,
        };
        proc.start();
        proc
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn start(&mut self) {
        assert!(self.child.is_none(), "{} is already running", self.name);
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open log");
        let child = Command::new(&self.program)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.name));
        self.child = Some(child);
    }

    /// SIGKILL: no shutdown, no flush; only what was synced survives.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        signal(child.id(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        child.wait().ok()
    }

    /// SIGTERM without waiting (see [`Proc::exit_status`]).
    pub fn sigterm(&self) {
        signal(self.pid(), "TERM");
    }

    /// The exit status once the process has exited (it is then stopped,
    /// as after `kill9`); None while it runs.
    pub fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        let status = self.child.as_mut()?.try_wait().ok()??;
        self.child = None;
        Some(status)
    }

    pub fn pause(&self) {
        signal(self.pid(), "STOP");
    }

    pub fn resume(&self) {
        signal(self.pid(), "CONT");
    }

    pub fn restart(&mut self) {
        self.kill9();
        self.start();
    }

    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .map(Child::id)
            .unwrap_or_else(|| panic!("{} is not running", self.name))
    }

    /// Everything the process wrote to stdout and stderr, over all its runs.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last lines of the process's log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = self.log_text();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(child) = &self.child {
            signal(child.id(), "CONT");
        }
        self.kill9();
    }
}

fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status();
}

/// Shape of a cluster.
#[derive(Clone, Debug)]
pub struct ClusterSpec {
    pub acceptors: usize,
    pub sequencers: usize,
    pub learner: bool,
    pub cluster_token: Option<String>,
    /// Extra flags for every acceptor.
    pub acceptor_args: Vec<String>,
    /// Extra flags for every sequencer.
    pub sequencer_args: Vec<String>,
    /// Extra flags for the learner.
    pub learner_args: Vec<String>,
    /// Starts the learner with `--allow-private-webhooks`, so that test
    /// subscribers on loopback are allowed (true by default).
    pub allow_private_webhooks: bool,
    /// The URL the sequencers and the learner are given for acceptor `i`
    /// instead of its own (a test's proxy in front of it,
    /// [`crate::interpose`]); the test itself still talks to it directly.
    pub acceptor_aliases: BTreeMap<usize, String>,
}

impl Default for ClusterSpec {
    fn default() -> Self {
        ClusterSpec {
            acceptors: 3,
            sequencers: 3,
            learner: false,
            cluster_token: None,
            acceptor_args: Vec::new(),
            sequencer_args: Vec::new(),
            learner_args: Vec::new(),
            allow_private_webhooks: true,
            acceptor_aliases: BTreeMap::new(),
        }
    }
}

pub struct Cluster {
    pub acceptors: Vec<Proc>,
    pub sequencers: Vec<Proc>,
    pub learner: Option<Proc>,
    pub spec: ClusterSpec,
    pub http: reqwest::Client,
    dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts every process; does not wait for readiness.
    pub fn start(spec: ClusterSpec) -> Cluster {
        let dir = tempfile::Builder::new()
            .prefix("paxid-e2e-")
            .tempdir()
            .expect("temp dir");
        let token_args: Vec<String> = match &spec.cluster_token {
            Some(token) => vec!["--cluster-token".into(), token.clone()],
            None => Vec::new(),
        };
        let make = |name: String, program: &str, port: u16, mut args: Vec<String>| {
            args.extend(token_args.iter().cloned());
            Proc::launch(dir.path(), &name, program, port, args)
        };
        let acceptors: Vec<Proc> = (0..spec.acceptors)
            .map(|i| {
                let port = free_port();
                let data = dir.path().join(format!("acceptor-{i}"));
                let mut args = vec![
                    "--listen".into(),
                    format!("127.0.0.1:{port}"),
                    "--data-dir".into(),
                    path(&data),
                ];
                args.extend(spec.acceptor_args.iter().cloned());
                make(format!("acceptor-{i}"), "paxid-acceptor", port, args)
            })
            .collect();
        let acceptor_urls = acceptors
            .iter()
            .enumerate()
            .map(|(i, proc)| {
                spec.acceptor_aliases
                    .get(&i)
                    .cloned()
                    .unwrap_or_else(|| proc.url())
            })
            .collect::<Vec<_>>()
            .join(",");
        let learner = spec.learner.then(|| {
            let port = free_port();
            let mut args = vec![
                "--listen".into(),
                format!("127.0.0.1:{port}"),
                "--data-dir".into(),
                path(&dir.path().join("learner")),
                "--acceptors".into(),
                acceptor_urls.clone(),
            ];
            if spec.allow_private_webhooks {
                args.push("--allow-private-webhooks".into());
            }
            args.extend(spec.learner_args.iter().cloned());
            make("learner".into(), "paxid-learner", port, args)
        });
        let sequencers = (0..spec.sequencers)
            .map(|i| {
                let port = free_port();
                let mut args = vec![
                    "--listen".into(),
                    format!("127.0.0.1:{port}"),
                    "--node-id".into(),
                    (i + 1).to_string(),
                    "--acceptors".into(),
                    acceptor_urls.clone(),
                    "--advertise-url".into(),
                    format!("http://127.0.0.1:{port}"),
                ];
                if let Some(learner) = &learner {
                    args.extend(["--learners".into(), learner.url()]);
                }
                args.extend(spec.sequencer_args.iter().cloned());
                make(format!("sequencer-{}", i + 1), "paxid-sequencer", port, args)
            })
            .collect();
        paxid_client::install_tls_provider();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("client");
        Cluster {
            acceptors,
            sequencers,
            learner,
            spec,
            http,
            dir,
        }
    }

    /// Starts another process (a test subscriber, say) that logs into this
    /// cluster's directory and dies with the test.
    pub fn spawn(&self, name: &str, program: &str, port: u16, args: Vec<String>) -> Proc {
        Proc::launch(self.dir.path(), name, program, port, args)
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn sequencer_urls(&self) -> Vec<String> {
        self.sequencers.iter().map(Proc::url).collect()
    }

    pub fn acceptor_urls(&self) -> Vec<String> {
        self.acceptors.iter().map(Proc::url).collect()
    }

    /// Waits until `POST /next-id` succeeds on every running sequencer
    /// (followers too: they must know the leader to forward).
    pub async fn wait_serving(&mut self, within: Duration) -> Duration {
        let started = Instant::now();
        loop {
            let mut all = true;
            for proc in self.sequencers.iter().filter(|p| p.child.is_some()) {
                let url = format!("{}/next-id", proc.url());
                let served = self
                    .http
                    .post(&url)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                all &= served;
            }
            if all {
                return started.elapsed();
            }
            if started.elapsed() > within {
                panic!("the cluster did not serve within {within:?}\n{}", self.logs());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Index of the sequencer whose status says it leads, if any.
    pub async fn leader(&self) -> Option<usize> {
        for (i, proc) in self.sequencers.iter().enumerate() {
            if proc.child.is_none() {
                continue;
            }
            let mut request = self.http.get(format!("{}/v1/status", proc.url()));
            if let Some(token) = &self.spec.cluster_token {
                request = request.bearer_auth(token);
            }
            let Ok(response) = request.timeout(Duration::from_millis(500)).send().await else {
                continue;
            };
            let Ok(status) = response.json::<api::client::SequencerStatus>().await else {
                continue;
            };
            if status.role == "leader" {
                return Some(i);
            }
        }
        None
    }

    /// Waits for a leader and returns its index.
    pub async fn wait_leader(&self, within: Duration) -> usize {
        let started = Instant::now();
        loop {
            if let Some(i) = self.leader().await {
                return i;
            }
            assert!(
                started.elapsed() < within,
                "no leader within {within:?}\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The learner's base URL (the cluster must have one).
    pub fn learner_url(&self) -> String {
        self.learner.as_ref().expect("a learner").url()
    }

    /// The learner loses its disk: its data dir is removed and it is
    /// started again, blank; returns once it answers `/livez`.
    pub async fn restart_learner_blank(&mut self, within: Duration) {
        std::fs::remove_dir_all(self.data_dir().join("learner")).expect("wipe the learner");
        self.learner.as_mut().expect("a learner").start();
        let started = std::time::Instant::now();
        while self
            .http
            .get(format!("{}/livez", self.learner_url()))
            .send()
            .await
            .is_err()
        {
            assert!(started.elapsed() < within, "the learner never answered");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The sum of every sample of metric `name` (all label sets) that the
    /// process at `base_url` exports on `/metrics`.
    pub async fn metric(&self, base_url: &str, name: &str) -> f64 {
        let text = self
            .http
            .get(format!("{base_url}/metrics"))
            .send()
            .await
            .expect("metrics answer")
            .text()
            .await
            .expect("metrics body");
        text.lines()
            .filter(|line| line.split(['{', ' ']).next() == Some(name))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// Every process's last log lines, for failure messages.
    pub fn logs(&self) -> String {
        let all = self
            .acceptors
            .iter()
            .chain(&self.sequencers)
            .chain(self.learner.iter());
        all.map(|p| format!("--- {} ---\n{}", p.name, p.log_tail(15)))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn path(p: &Path) -> String {
    p.to_str().expect("utf-8 temp path").to_owned()
}
