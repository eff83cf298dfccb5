//! The compose cluster of `deploy/docker-compose.yml` (plus the test
//! override `deploy/docker-compose.test.yml`) under a unique project name,
//! driven through the `docker` and `docker-compose` command lines.
//!
//! Host traffic goes only to the ports compose publishes on 127.0.0.1: the
//! test never connects to a container's own address. Dropping a [`Compose`]
//! tears everything down (`down -v`, the subscriber image), also when the
//! test panics, and prints every container's last log lines first if it does.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use api::client::{NextIdResponse, SequencerStatus};
use api::internal::AcceptorStatus;
use api::learner::{LearnerStatus, SubscriptionCreated};

/// The two sequencer services, in the order of their published ports.
pub const SEQUENCERS: [&str; 2] = ["sequencer-1", "sequencer-2"];
pub const ACCEPTORS: [&str; 3] = ["acceptor-0", "acceptor-1", "acceptor-2"];
/// A blank acceptor the suite seats in `acceptor-1`'s place at the end.
pub const SPARE_ACCEPTOR: &str = "acceptor-3";
pub const LEARNER: &str = "learner";
pub const SUBSCRIBER: &str = "subscriber";
/// The network every acceptor is on, and the only one (compose file).
pub const INTERNAL_NETWORK: &str = "internal";
/// Where the subscriber container listens, by its service name on `edge`.
pub const SUBSCRIBER_HOOK_URL: &str = "http://subscriber:9000/hook";

const SUBSCRIBER_BINARY: &str = "paxid-test-subscriber";
/// When set, every container's log is saved in this directory at teardown.
pub const LOGS_DIR_ENV: &str = "PAXID_CONTAINER_LOGS";
const STOP_TIMEOUT_S: &str = "5";
const LOG_TAIL_LINES: &str = "25";
/// Where the subscriber records what it receives (docker-compose.test.yml).
const SUBSCRIBER_RECORD: &str = "/data/received.jsonl";
const SUBSCRIBER_RECORD_NAME: &str = "received.jsonl";
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Where a paxid container keeps its data dir (docker-compose.yml).
const DATA_DIR: &str = "/data";
/// Every paxid service listens there inside its container.
const INSIDE_URL: &str = "http://127.0.0.1:8080";

pub struct Compose {
    pub project: String,
    pub sequencer_ports: [u16; 2],
    pub learner_port: u16,
    pub token: String,
    pub http: reqwest::Client,
    image: String,
    subscriber_image: String,
    root: PathBuf,
}

impl Compose {
    /// Builds the subscriber image on top of `image` and starts the whole
    /// cluster (`up -d`); does not wait for readiness. Panics, after tearing
    /// down what it created, when anything fails.
    pub async fn up(image: &str) -> Compose {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("tests/ has a parent")
            .to_path_buf();
        let project = std::env::var("PAXID_CONTAINER_PROJECT")
            .unwrap_or_else(|_| format!("paxidct{}", std::process::id()));
        let compose = Compose {
            sequencer_ports: [free_port(), free_port()],
            learner_port: free_port(),
            token: cluster_token(&root.join("deploy/paxid.env")),
            http: reqwest::Client::builder()
                .timeout(PROBE_TIMEOUT)
                .build()
                .expect("http client"),
            image: image.to_owned(),
            subscriber_image: format!("{SUBSCRIBER_BINARY}:{project}"),
            project,
            root,
        };
        let inspect = run("docker", &["image", "inspect", "--format", "{{.Id}}", image]).await;
        assert!(
            inspect.status.success(),
            "image {image} is missing: build it with deploy/build-image.sh (scripts/container-tests.sh does)"
        );
        compose.build_subscriber_image().await;
        compose.compose(&["up", "-d", "--no-build"]).await;
        compose
    }

    /// `<project>_<service>_1`, the name compose 1.x gives the container.
    pub fn container(&self, service: &str) -> String {
        format!("{}_{service}_1", self.project)
    }

    pub fn network(&self, name: &str) -> String {
        format!("{}_{name}", self.project)
    }

    pub fn sequencer_url(&self, index: usize) -> String {
        format!("http://127.0.0.1:{}", self.sequencer_ports[index])
    }

    pub fn sequencer_urls(&self) -> Vec<String> {
        (0..SEQUENCERS.len()).map(|i| self.sequencer_url(i)).collect()
    }

    pub fn learner_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.learner_port)
    }

    /// Cuts `service` off the internal network (for an acceptor: from
    /// everything; for a sequencer: from the acceptors, while its published
    /// port still takes clients).
    pub async fn disconnect_internal(&self, service: &str) {
        self.docker(&[
            "network",
            "disconnect",
            &self.network(INTERNAL_NETWORK),
            &self.container(service),
        ])
        .await;
    }

    /// Reattaches `service` to the internal network under its service name,
    /// which is how its peers address it (compose set that alias at `up`).
    pub async fn reconnect_internal(&self, service: &str) {
        let network = self.network(INTERNAL_NETWORK);
        self.docker(&[
            "network",
            "connect",
            "--alias",
            service,
            &network,
            &self.container(service),
        ])
        .await;
    }

    pub async fn pause(&self, service: &str) {
        self.docker(&["pause", &self.container(service)]).await;
    }

    pub async fn unpause(&self, service: &str) {
        self.docker(&["unpause", &self.container(service)]).await;
    }

    /// SIGKILL to the container's process: only what it synced survives.
    pub async fn kill(&self, service: &str) {
        self.docker(&["kill", &self.container(service)]).await;
    }

    /// `docker restart`: SIGTERM, up to the compose file's 30 s grace for
    /// the exit, then start; returns once started.
    pub async fn restart(&self, service: &str) {
        self.docker(&["restart", "--time", "30", &self.container(service)])
            .await;
    }

    pub async fn start(&self, service: &str) {
        self.docker(&["start", &self.container(service)]).await;
    }

    /// Loses the disk of a stopped `service`: removes its container and the
    /// named volume that held its data dir (`<project>_acceptor-1`). No
    /// image can be pulled and the paxid image has no shell, so the volume
    /// goes, not the files in it.
    pub async fn remove_with_data(&self, service: &str) {
        let container = self.container(service);
        let format = format!(
            "{{{{range .Mounts}}}}{{{{if eq .Destination \"{DATA_DIR}\"}}}}{{{{.Name}}}}{{{{end}}}}{{{{end}}}}"
        );
        let volume = self.docker(&["inspect", "--format", &format, &container]).await;
        let volume = volume.trim();
        assert!(
            !volume.is_empty(),
            "{container} mounts no named volume at {DATA_DIR}"
        );
        self.docker(&["rm", "--force", &container]).await;
        self.docker(&["volume", "rm", volume]).await;
    }

    /// `up -d` of `service` alone: creates its container again after
    /// [`Compose::remove_with_data`], on a fresh, empty named volume, at the
    /// same address (its service name on the networks).
    pub async fn recreate(&self, service: &str) {
        self.compose(&["up", "-d", "--no-deps", "--no-build", service])
            .await;
    }

    /// `GET /v1/status` of an acceptor. Acceptors publish no port, so it is
    /// asked from inside the acceptor's own container: `paxid --json status`
    /// by `docker exec`, which runs with the container's environment and so
    /// with the cluster token. `Err` says why there is no answer.
    pub async fn acceptor_status(&self, service: &str) -> Result<AcceptorStatus, String> {
        let container = self.container(service);
        let output = run(
            "docker",
            &[
                "exec",
                &container,
                "/usr/local/bin/paxid",
                "--json",
                "--timeout-ms",
                "2000",
                // The CLI also probes a sequencer at --url; the acceptor
                // itself answers that (and fails to parse as one): harmless.
                "--url",
                INSIDE_URL,
                "status",
                "--acceptors",
                INSIDE_URL,
            ],
        )
        .await;
        if !output.status.success() {
            return Err(format!("docker exec: {}", stderr(&output)));
        }
        let report: serde_json::Value = serde_json::from_slice(&output.stdout)
            .map_err(|e| format!("paxid status: {e}: {}", String::from_utf8_lossy(&output.stdout)))?;
        let probe = &report["acceptors"][0];
        match probe.get("status") {
            Some(status) => serde_json::from_value(status.clone()).map_err(|e| format!("{e}: {status}")),
            None => Err(probe["error"].as_str().unwrap_or("no answer").to_owned()),
        }
    }

    /// `paxid --json <args>` inside `service`'s container (with its
    /// environment, so with the cluster token), against its own port.
    pub async fn paxid(&self, service: &str, args: &[&str]) -> Result<serde_json::Value, String> {
        let container = self.container(service);
        let mut command = vec![
            "exec",
            &container,
            "/usr/local/bin/paxid",
            "--json",
            "--url",
            INSIDE_URL,
        ];
        command.extend_from_slice(args);
        let output = run("docker", &command).await;
        if !output.status.success() {
            return Err(format!(
                "paxid {}: {}{}",
                args.join(" "),
                String::from_utf8_lossy(&output.stdout),
                stderr(&output)
            ));
        }
        serde_json::from_slice(&output.stdout).map_err(|e| format!("paxid {}: {e}", args.join(" ")))
    }

    /// `running`, `paused`, `exited (137)`, ... as docker reports it.
    pub async fn state(&self, service: &str) -> String {
        let format =
            "{{.State.Status}} exit={{.State.ExitCode}} oom={{.State.OOMKilled}} restarts={{.RestartCount}}";
        let output = run(
            "docker",
            &["inspect", "--format", format, &self.container(service)],
        )
        .await;
        match output.status.success() {
            true => String::from_utf8_lossy(&output.stdout).trim().to_owned(),
            false => format!("unknown ({})", stderr(&output)),
        }
    }

    /// Every webhook the subscriber received: the `--record` file on its
    /// volume, copied out with `docker cp` (which works on a stopped
    /// container too). Empty until the first webhook arrives. Not `docker
    /// logs`: a daemon's log rotation can cut the start of a long run.
    pub async fn subscriber_record(&self) -> String {
        let copy = std::env::temp_dir().join(format!("{}-{SUBSCRIBER_RECORD_NAME}", self.project));
        let source = format!("{}:{SUBSCRIBER_RECORD}", self.container(SUBSCRIBER));
        let output = run(
            "docker",
            &["cp", &source, copy.to_str().expect("utf-8 temp path")],
        )
        .await;
        if !output.status.success() {
            let error = stderr(&output);
            assert!(
                error.contains("Could not find the file") || error.contains("No such"),
                "docker cp {source}: {error}"
            );
            return String::new();
        }
        let text = std::fs::read_to_string(&copy).unwrap_or_else(|e| panic!("{}: {e}", copy.display()));
        let _ = std::fs::remove_file(&copy);
        text
    }

    /// stdout and stderr of the container, interleaved by docker.
    pub async fn logs(&self, service: &str) -> String {
        let output = run("docker", &["logs", &self.container(service)]).await;
        let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stderr));
        text
    }

    pub async fn status(&self, index: usize) -> Option<SequencerStatus> {
        let url = format!("{}/v1/status", self.sequencer_url(index));
        let response = self.http.get(url).bearer_auth(&self.token).send().await.ok()?;
        response.json().await.ok()
    }

    /// The sequencer that says it leads and reaches a majority of acceptors;
    /// if two say so (a deposed leader that has not noticed yet), the one
    /// with the higher ballot.
    pub async fn leader(&self) -> Option<usize> {
        let mut best: Option<(usize, (u64, u32))> = None;
        for index in 0..SEQUENCERS.len() {
            let Some(status) = self.status(index).await else {
                continue;
            };
            let majority = status.acceptors_reachable * 2 > status.acceptors;
            let ballot = status.ballot.map(|b| (b.round, b.node)).unwrap_or_default();
            if status.role == "leader" && majority && best.is_none_or(|(_, b)| ballot > b) {
                best = Some((index, ballot));
            }
        }
        best.map(|(index, _)| index)
    }

    pub async fn wait_leader(&self, within: Duration) -> usize {
        let started = Instant::now();
        loop {
            if let Some(index) = self.leader().await {
                return index;
            }
            assert!(started.elapsed() < within, "no sequencer led within {within:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// One `POST /next-id` (count 1, sequence `default`) on a sequencer's
    /// published port.
    pub async fn next_id(&self, index: usize) -> Option<(String, u64, u64)> {
        let url = format!("{}/next-id", self.sequencer_url(index));
        let response = self.http.post(url).send().await.ok()?;
        if !response.status().is_success() {
            return None;
        }
        let answer: NextIdResponse = response.json().await.ok()?;
        Some((answer.sequence, answer.id, answer.count))
    }

    /// Subscribes the subscriber container to every sequence from slot 0,
    /// retrying until the learner answers.
    pub async fn subscribe(&self, within: Duration) -> SubscriptionCreated {
        let started = Instant::now();
        let body = serde_json::json!({"url": SUBSCRIBER_HOOK_URL, "from_slot": 0});
        loop {
            let request = self.http.post(format!("{}/v1/subscriptions", self.learner_url()));
            if let Ok(response) = request.bearer_auth(&self.token).json(&body).send().await {
                let status = response.status();
                let text = response.text().await.unwrap_or_default();
                if status.as_u16() == 201 {
                    return serde_json::from_str(&text).unwrap_or_else(|e| panic!("201 body {text:?}: {e}"));
                }
                assert!(status.is_server_error(), "subscribing answered {status}: {text}");
            }
            assert!(
                started.elapsed() < within,
                "the learner did not take a subscription within {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub async fn learner_status(&self) -> Option<LearnerStatus> {
        let url = format!("{}/v1/status", self.learner_url());
        let response = self.http.get(url).bearer_auth(&self.token).send().await.ok()?;
        response.json().await.ok()
    }

    /// Every service's state and last log lines, for failure messages.
    pub async fn report(&self) -> String {
        let mut text = String::new();
        for service in all_services() {
            let state = self.state(service).await;
            let logs = self.logs(service).await;
            let lines: Vec<&str> = logs.lines().collect();
            let tail = lines[lines.len().saturating_sub(25)..].join("\n");
            text.push_str(&format!("--- {service} ({state}) ---\n{tail}\n"));
        }
        text
    }

    async fn build_subscriber_image(&self) {
        let context = tempfile::Builder::new()
            .prefix("paxid-subscriber-image-")
            .tempdir()
            .expect("temp dir");
        let binary = Path::new(env!("CARGO_BIN_EXE_paxid-test-subscriber"));
        std::fs::copy(binary, context.path().join(SUBSCRIBER_BINARY)).expect("copy the subscriber binary");
        // The paxid image already holds the loader and the libraries a Rust
        // binary links (libc, libgcc_s, libm): only the program is added.
        let dockerfile = format!(
            "FROM {}\nCOPY {SUBSCRIBER_BINARY} /usr/local/bin/{SUBSCRIBER_BINARY}\n\
             CMD [\"/usr/local/bin/{SUBSCRIBER_BINARY}\"]\n",
            self.image
        );
        std::fs::write(context.path().join("Dockerfile"), dockerfile).expect("write Dockerfile");
        let path = context.path().to_str().expect("utf-8 temp path").to_owned();
        let output = tokio::process::Command::new("docker")
            .args(["build", "--quiet", "--tag", &self.subscriber_image, &path])
            .env("DOCKER_BUILDKIT", "0")
            .output()
            .await
            .expect("run docker build");
        assert!(
            output.status.success(),
            "docker build of the subscriber image: {}",
            stderr(&output)
        );
    }

    async fn docker(&self, args: &[&str]) -> String {
        let output = run("docker", args).await;
        assert!(
            output.status.success(),
            "docker {}: {}",
            args.join(" "),
            stderr(&output)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    async fn compose(&self, args: &[&str]) {
        let output = self
            .compose_command(args)
            .output()
            .await
            .expect("run docker-compose");
        assert!(
            output.status.success(),
            "docker-compose {}: {}",
            args.join(" "),
            stderr(&output)
        );
    }

    fn compose_command(&self, args: &[&str]) -> tokio::process::Command {
        let mut command = tokio::process::Command::new("docker-compose");
        command.current_dir(&self.root);
        for (key, value) in self.compose_env() {
            command.env(key, value);
        }
        command.args(self.compose_args()).args(args);
        command
    }

    fn compose_args(&self) -> Vec<String> {
        let files = ["deploy/docker-compose.yml", "deploy/docker-compose.test.yml"];
        let mut args = vec!["-p".to_owned(), self.project.clone()];
        for file in files {
            args.extend([
                "-f".to_owned(),
                self.root.join(file).to_str().expect("utf-8 path").to_owned(),
            ]);
        }
        args
    }

    fn compose_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("PAXID_IMAGE", self.image.clone()),
            ("PAXID_SUBSCRIBER_IMAGE", self.subscriber_image.clone()),
            ("PAXID_SEQUENCER_1_PORT", self.sequencer_ports[0].to_string()),
            ("PAXID_SEQUENCER_2_PORT", self.sequencer_ports[1].to_string()),
            ("PAXID_LEARNER_PORT", self.learner_port.to_string()),
        ]
    }

    /// Synchronous teardown for `Drop`; every step runs even if one fails.
    fn down(&self) {
        if std::thread::panicking() {
            self.print_tails();
        }
        if let Some(dir) = std::env::var_os(LOGS_DIR_ENV) {
            self.save_logs(Path::new(&dir));
        }
        for service in all_services() {
            let _ = quiet("docker", &["unpause", &self.container(service)]);
        }
        let mut command = std::process::Command::new("docker-compose");
        command.current_dir(&self.root);
        for (key, value) in self.compose_env() {
            command.env(key, value);
        }
        command
            .args(self.compose_args())
            .args(["down", "-v", "--remove-orphans", "-t", STOP_TIMEOUT_S]);
        match command.output() {
            Ok(output) if output.status.success() => {}
            Ok(output) => eprintln!("docker-compose down failed: {}", stderr(&output)),
            Err(error) => eprintln!("docker-compose down did not run: {error}"),
        }
        let _ = quiet("docker", &["image", "rm", "--force", &self.subscriber_image]);
    }

    /// Every container's whole log (stdout and stderr) into `dir/<service>.log`.
    fn save_logs(&self, dir: &Path) {
        for service in all_services() {
            self.save_log(dir, service, &format!("{service}.log"));
        }
        eprintln!("container logs saved in {}", dir.display());
    }

    /// `service`'s whole log into `<PAXID_CONTAINER_LOGS>/<file_name>` now,
    /// if that variable is set: for a container about to be removed, whose
    /// log the teardown cannot save.
    pub async fn save_log_now(&self, service: &str, file_name: &str) {
        let Some(dir) = std::env::var_os(LOGS_DIR_ENV) else {
            return;
        };
        let path = Path::new(&dir).join(file_name);
        let file = std::fs::create_dir_all(&dir).and_then(|()| std::fs::File::create(&path));
        let saved = match file.and_then(|file| Ok((file.try_clone()?, file))) {
            Ok((out, err)) => {
                tokio::process::Command::new("docker")
                    .args(["logs", "--timestamps", &self.container(service)])
                    .stdout(out)
                    .stderr(err)
                    .status()
                    .await
            }
            Err(error) => Err(error),
        };
        if let Err(error) = saved {
            eprintln!("cannot save the log of {service} to {}: {error}", path.display());
        }
    }

    fn save_log(&self, dir: &Path, service: &str, file_name: &str) {
        if let Err(error) = std::fs::create_dir_all(dir) {
            eprintln!("cannot create {}: {error}", dir.display());
            return;
        }
        let path = dir.join(file_name);
        let saved = std::fs::File::create(&path).and_then(|file| {
            let err = file.try_clone()?;
            std::process::Command::new("docker")
                .args(["logs", "--timestamps", &self.container(service)])
                .stdout(file)
                .stderr(err)
                .status()
        });
        if let Err(error) = saved {
            eprintln!("cannot save the log of {service} to {}: {error}", path.display());
        }
    }

    fn print_tails(&self) {
        for service in all_services() {
            let output = std::process::Command::new("docker")
                .args(["logs", "--tail", LOG_TAIL_LINES, &self.container(service)])
                .output();
            if let Ok(output) = output {
                eprintln!("--- {service}: last {LOG_TAIL_LINES} lines ---");
                eprintln!(
                    "{}{}",
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                );
            }
        }
    }
}

impl Drop for Compose {
    fn drop(&mut self) {
        self.down();
    }
}

pub fn all_services() -> impl Iterator<Item = &'static str> {
    ACCEPTORS
        .into_iter()
        .chain([SPARE_ACCEPTOR])
        .chain(SEQUENCERS)
        .chain([LEARNER, SUBSCRIBER])
}

/// Whether an engine answers `docker info`.
pub async fn docker_available() -> bool {
    matches!(tokio::process::Command::new("docker").arg("info").output().await, Ok(o) if o.status.success())
}

/// `PAXID_CLUSTER_TOKEN` from the compose env file, which is where every
/// container reads it.
fn cluster_token(env_file: &Path) -> String {
    let text = std::fs::read_to_string(env_file).unwrap_or_else(|e| panic!("{}: {e}", env_file.display()));
    text.lines()
        .filter_map(|line| line.trim().strip_prefix("PAXID_CLUSTER_TOKEN="))
        .map(|value| value.trim().trim_matches('"').to_owned())
        .next_back()
        .unwrap_or_else(|| panic!("{} sets no PAXID_CLUSTER_TOKEN", env_file.display()))
}

fn free_port() -> u16 {
    paxid_tests::cluster::free_port()
}

async fn run(program: &str, args: &[&str]) -> Output {
    tokio::process::Command::new(program)
        .args(args)
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
}

fn quiet(program: &str, args: &[&str]) -> std::io::Result<Output> {
    std::process::Command::new(program).args(args).output()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).trim().to_owned()
}
