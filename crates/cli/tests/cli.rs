//! The `paxid` binary against the real `paxid-ceiling` binary over TCP:
//! next-id, bench, and the one-line errors; `status` against components
//! that are down.
//!
//! The ceiling's binary is taken from next to `paxid`
//! (`<target>/<profile>/paxid-ceiling`); when it is not there (a
//! `cargo test -p paxid-cli` without `--workspace`), the test builds it with
//! the same cargo, target directory and profile first.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

// Compiled here so that it keeps building; the end-to-end tests call it.
#[allow(dead_code)]
#[path = "support/cluster.rs"]
mod cluster;

const PAXID: &str = env!("CARGO_BIN_EXE_paxid");

#[test]
fn next_id_prints_ids_and_ranges() {
    let ceiling = Ceiling::start();
    assert_eq!(stdout_ok(&ceiling.paxid(&["next-id"])), "1\n");
    assert_eq!(
        stdout_ok(&ceiling.paxid(&["next-id", "--count", "10"])),
        "2..11 (10 ids, sequence default)\n"
    );
    let answer = json_ok(&ceiling.paxid(&["--json", "next-id", "--count", "3", "--sequence", "orders"]));
    assert_eq!(
        answer,
        serde_json::json!({"id": 1, "count": 3, "sequence": "orders"})
    );

    // Flags also come from PAXID_<FLAG>.
    let from_env = paxid_with_env(&["next-id"], &[("PAXID_URL", &ceiling.url), ("PAXID_COUNT", "5")]);
    assert_eq!(stdout_ok(&from_env), "12..16 (5 ids, sequence default)\n");

    let refused = ceiling.paxid(&["next-id", "--count", "0"]);
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.starts_with(&format!("paxid: POST {}/next-id: 422 ", ceiling.url)),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
}

#[test]
fn bench_loads_the_server_and_reports() {
    let ceiling = Ceiling::start();
    let args = [
        "--json",
        "bench",
        "--clients",
        "4",
        "--requests",
        "2000",
        "--count",
        "5",
    ];
    let report = json_ok(&ceiling.paxid(&args));
    assert_eq!(report["requests"], 2000, "{report}");
    assert_eq!(report["errors"], 0, "{report}");
    assert_eq!(report["ids"], 10_000, "{report}");
    assert_eq!(report["order_violations"], 0, "{report}");
    let latency = &report["latency_ms"];
    let (p50, p99, max) = (
        number(&latency["p50"]),
        number(&latency["p99"]),
        number(&latency["max"]),
    );
    assert!(0.0 < p50 && p50 <= p99 && p99 <= max, "{latency}");
    assert!(number(&report["requests_per_s"]) > 0.0);

    // The server really handed those IDs out: 2000 requests plus the
    // uncounted first one, 5 IDs each.
    assert_eq!(stdout_ok(&ceiling.paxid(&["next-id"])), "10006\n");

    let timed = ceiling.paxid(&[
        "bench",
        "--clients",
        "2",
        "--duration",
        "1200ms",
        "--sequence",
        "timed",
    ]);
    let stdout = stdout_ok(&timed);
    assert!(
        stdout.contains("requests/s") && stdout.contains("p999"),
        "{stdout}"
    );
    let progress = String::from_utf8_lossy(&timed.stderr);
    assert!(progress.contains("requests/s"), "no progress line: {progress}");
}

#[test]
fn unreachable_servers_fail_with_one_line() {
    let url = format!("http://{}", closed_port_addr());
    let next_id = paxid_with_env(&["--url", &url, "next-id"], &[]);
    assert_eq!(next_id.status.code(), Some(1));
    let expected = format!("paxid: cannot reach {url}/next-id: connection refused\n");
    assert_eq!(String::from_utf8_lossy(&next_id.stderr), expected);

    let bench = paxid_with_env(&["--url", &url, "bench", "--requests", "10"], &[]);
    assert_eq!(bench.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bench.stderr).starts_with("paxid: cannot reach"));

    let subscribe = paxid_with_env(&["subscribe", "http://127.0.0.1:9/hook", "--learner", &url], &[]);
    assert_eq!(subscribe.status.code(), Some(1));
    let expected = format!("paxid: cannot reach {url}/v1/subscriptions: connection refused\n");
    assert_eq!(String::from_utf8_lossy(&subscribe.stderr), expected);
}

#[test]
fn status_shows_down_components_and_goes_on() {
    let ceiling = Ceiling::start();
    let acceptor = format!("http://{}", closed_port_addr());
    let learner = format!("http://{}", closed_port_addr());
    // The ceiling answers, but has no /v1/status: down, with its 404.
    let sequencers = format!(
        "{},{}",
        ceiling.url,
        format_args!("http://{}", closed_port_addr())
    );
    let args = [
        "status",
        "--acceptors",
        &acceptor,
        "--sequencers",
        &sequencers,
        "--learner",
        &learner,
    ];
    let table = stdout_ok(&paxid_with_env(&args, &[]));
    let line = |needle: &str| {
        table
            .lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no {needle} in\n{table}"))
            .to_owned()
    };
    assert!(line(&acceptor).contains("down (connection refused)"), "{table}");
    assert!(line(&learner).contains("down (connection refused)"), "{table}");
    assert!(
        line(&format!("{}  ", ceiling.url)).contains("down (404 Not found"),
        "{table}"
    );
    assert!(line("leader").contains("no acceptor reports a leader"), "{table}");

    let mut json_args = vec!["--json"];
    json_args.extend_from_slice(&args);
    let status = json_ok(&paxid_with_env(&json_args, &[]));
    assert_eq!(status["acceptors"][0]["up"], false);
    assert_eq!(status["acceptors"][0]["error"], "connection refused");
    assert_eq!(status["learner"]["up"], false);
    assert_eq!(status["leader"], Value::Null);
}

/// A running `paxid-ceiling`, killed on drop.
struct Ceiling {
    child: Child,
    url: String,
}

impl Ceiling {
    fn start() -> Ceiling {
        let binary = ceiling_binary();
        // A port that was free a moment ago may be taken by now: retry.
        for _ in 0..5 {
            let addr = closed_port_addr();
            let child = Command::new(&binary)
                .args(["--listen", &addr])
                .env_remove("PAXID_LISTEN")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("paxid-ceiling starts");
            let mut ceiling = Ceiling {
                child,
                url: format!("http://{addr}"),
            };
            if ceiling.wait_live() {
                return ceiling;
            }
        }
        panic!("paxid-ceiling did not come up");
    }

    /// Until `/livez` answers over TCP; false if the process exited.
    fn wait_live(&mut self) -> bool {
        let addr = self.url.trim_start_matches("http://").to_owned();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.child.try_wait().ok().flatten().is_some() {
                return false;
            }
            if std::net::TcpStream::connect(&addr).is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    fn paxid(&self, args: &[&str]) -> Output {
        let mut all = vec!["--url", self.url.as_str()];
        all.extend_from_slice(args);
        paxid_with_env(&all, &[])
    }
}

impl Drop for Ceiling {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `paxid` with only the given `PAXID_*` variables set.
fn paxid_with_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(PAXID);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("PAXID_") {
            command.env_remove(name);
        }
    }
    command
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("paxid runs")
}

fn stdout_ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "paxid failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).expect("UTF-8")
}

fn json_ok(output: &Output) -> Value {
    let stdout = stdout_ok(output);
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

fn number(value: &Value) -> f64 {
    value.as_f64().unwrap_or_else(|| panic!("not a number: {value}"))
}

/// A loopback address nothing listens on (bound, then released).
fn closed_port_addr() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    listener.local_addr().expect("local addr").to_string()
}

/// `paxid-ceiling` next to `paxid`, built first if it is missing.
fn ceiling_binary() -> PathBuf {
    let paxid = Path::new(PAXID);
    let binary = paxid.with_file_name("paxid-ceiling");
    if binary.exists() {
        return binary;
    }
    let profile_dir = paxid.parent().expect("paxid is in a profile directory");
    let target_dir = profile_dir
        .parent()
        .expect("the profile directory is in the target directory");
    let mut build = Command::new(env!("CARGO"));
    build
        .args(["build", "-p", "paxid-ceiling", "--target-dir"])
        .arg(target_dir);
    if profile_dir.ends_with("release") {
        build.arg("--release");
    }
    let status = build
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("cargo runs");
    assert!(
        status.success() && binary.exists(),
        "could not build {}",
        binary.display()
    );
    binary
}
