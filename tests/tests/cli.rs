//! The `paxid` CLI against a real local cluster: 3 acceptors, 2 sequencers,
//! the learner and a real webhook receiver, all separate processes. The
//! first test's checks live with the CLI (`crates/cli/tests/support`); the
//! others (subscriptions, health, --endpoints, 503 retries, status
//! discovery, completion; docs/cli.md) are here. Build the binaries first:
//! `cargo build --release --workspace --bins`.

// The test holds the cluster lock for its whole run on purpose.
#![allow(clippy::await_holding_lock)]

use std::time::Duration;

use paxid_tests::cluster::free_port;
use paxid_tests::{serial, Cluster, ClusterSpec};

#[path = "../../crates/cli/tests/support/cluster.rs"]
mod cli_cluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn next_id_status_and_subscribe_against_a_real_cluster() {
    let _serial = serial();
    let mut cluster = Cluster::start(ClusterSpec {
        sequencers: 2,
        learner: true,
        ..ClusterSpec::default()
    });
    cluster.wait_serving(Duration::from_secs(20)).await;
    let port = free_port();
    let receiver = cluster.spawn(
        "subscriber",
        "paxid-test-subscriber",
        port,
        vec!["--listen".into(), format!("127.0.0.1:{port}")],
    );
    let urls = cli_cluster::ClusterUrls {
        acceptors: cluster.acceptor_urls(),
        sequencers: cluster.sequencer_urls(),
        learner: cluster.learner.as_ref().expect("a learner").url(),
        webhook_url: format!("{}/hook", receiver.url()),
        cluster_token: None,
    };
    tokio::task::block_in_place(|| {
        cli_cluster::check_cli_against_cluster(&cli_cluster::paxid_binary(), &urls)
    });
}

// ---------------------------------------------------------------------------
// The commands of issue 15 (docs/cli.md): subscriptions, health, endpoints
// with failover and 503 retries, status discovery, completion. Every check
// runs the real `paxid` binary.

const SUBSCRIPTION_TOKEN: &str = "cli-subscription-token";

/// Runs `paxid` with only the given `PAXID_*` variables set.
fn paxid(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut command = paxid_command(args, env);
    command.output().expect("paxid runs")
}

fn paxid_command(args: &[&str], env: &[(&str, &str)]) -> std::process::Command {
    let mut command = std::process::Command::new(cli_cluster::paxid_binary());
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("PAXID_") {
            command.env_remove(name);
        }
    }
    command.args(args).envs(env.iter().copied());
    command
}

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Succeeded; its stdout.
fn ok(args: &[&str], env: &[(&str, &str)]) -> String {
    let output = paxid(args, env);
    assert!(
        output.status.success(),
        "paxid {args:?} failed ({:?}): {}{}",
        output.status.code(),
        stdout(&output),
        stderr(&output)
    );
    stdout(&output)
}

fn ok_json(args: &[&str], env: &[(&str, &str)]) -> serde_json::Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = ok(&all, env);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("paxid {args:?} printed non-JSON ({e}): {out}"))
}

/// Failed with exit `code` and exactly one line on stderr; that line.
fn fails(args: &[&str], env: &[(&str, &str)], code: i32) -> String {
    let output = paxid(args, env);
    let err = stderr(&output);
    assert_eq!(
        output.status.code(),
        Some(code),
        "paxid {args:?}: stdout {} stderr {err}",
        stdout(&output)
    );
    assert!(err.starts_with("paxid: "), "paxid {args:?}: {err}");
    assert_eq!(err.lines().count(), 1, "paxid {args:?}: not one line: {err}");
    err
}

fn closed_url() -> String {
    format!("http://127.0.0.1:{}", free_port())
}

/// Polls `paxid subscriptions get` until `done` holds for its JSON.
fn wait_subscription(
    learner: &str,
    id: &str,
    env: &[(&str, &str)],
    what: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let started = std::time::Instant::now();
    loop {
        let view = ok_json(&["subscriptions", "get", id, "--learner", learner], env);
        if done(&view) {
            return view;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "subscription never {what}: {view}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_health_endpoints_retries_and_discovery_against_a_real_cluster() {
    let _serial = serial();
    let mut cluster = Cluster::start(ClusterSpec {
        sequencers: 2,
        learner: true,
        learner_args: vec!["--subscription-token".into(), SUBSCRIPTION_TOKEN.into()],
        // A leader without a quorum answers 503 after 1 s instead of 5.
        sequencer_args: vec!["--id-timeout-ms".into(), "1000".into()],
        ..ClusterSpec::default()
    });
    cluster.wait_serving(Duration::from_secs(20)).await;
    tokio::task::block_in_place(|| check_health_endpoints_and_status(&cluster));
    tokio::task::block_in_place(|| check_subscriptions(&cluster));
    check_retries_through_an_outage(&mut cluster).await;
}

fn check_health_endpoints_and_status(cluster: &Cluster) {
    let learner = cluster.learner_url();
    let sequencers = cluster.sequencer_urls();
    let acceptors = cluster.acceptor_urls();

    // health: every kind of process, one line each, exit 0.
    let mut all: Vec<String> = acceptors.clone();
    all.extend(sequencers.iter().cloned());
    all.push(learner.clone());
    let mut args = vec!["health"];
    args.extend(all.iter().map(String::as_str));
    let lines = ok(&args, &[]);
    let expected: Vec<String> = all.iter().map(|u| format!("ready {u}")).collect();
    assert_eq!(lines.lines().collect::<Vec<_>>(), expected, "{lines}");
    // Without a URL: --url.
    assert_eq!(
        ok(&["--url", &sequencers[0], "health"], &[]),
        format!("ready {}\n", sequencers[0])
    );
    // Not ready: exit 1, the reason on stdout, nothing on stderr.
    let down = closed_url();
    let output = paxid(&["health", &sequencers[0], &down], &[]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stdout(&output),
        format!("ready {}\nnot ready {down}: connection refused\n", sequencers[0])
    );
    assert_eq!(stderr(&output), "");
    let output = paxid(&["--json", "health", &down], &[]);
    assert_eq!(output.status.code(), Some(1));
    let probe: serde_json::Value = serde_json::from_str(&stdout(&output)).expect("JSON");
    assert_eq!(probe["ready"], false);
    assert_eq!(probe["error"], "connection refused");
    let probe = ok_json(&["health", &learner], &[]);
    assert_eq!(
        (probe["ready"].clone(), probe["status"].clone()),
        (true.into(), 200.into())
    );
    fails(&["health", "not-a-url"], &[], 1);

    // --endpoints / PAXID_ENDPOINTS: a dead first endpoint is skipped.
    let endpoints = format!("{down},{}", sequencers[1]);
    let first = ok_json(&["--endpoints", &endpoints, "next-id"], &[]);
    let second = ok_json(&["next-id"], &[("PAXID_ENDPOINTS", &endpoints)]);
    assert!(second["id"].as_u64() > first["id"].as_u64(), "{first} {second}");
    // --idempotency-key: the same key prints the same IDs, through either
    // replica; another count under it is refused.
    let keyed = [
        "--endpoints",
        &endpoints,
        "next-id",
        "--count",
        "3",
        "--idempotency-key",
        "cli-1",
    ];
    let once = ok_json(&keyed, &[]);
    let again = ok_json(&keyed, &[("PAXID_ENDPOINTS", &sequencers[0])]);
    assert_eq!(once, again);
    let line = fails(
        &["--endpoints", &endpoints, "next-id", "--idempotency-key", "cli-1"],
        &[],
        1,
    );
    assert!(line.contains("Idempotency-Key"), "{line}");
    // --url still works alone, and --endpoints wins over it.
    ok(&["--url", &sequencers[0], "next-id"], &[]);
    ok(&["--url", &down, "--endpoints", &endpoints, "next-id"], &[]);
    let nowhere = format!("{down},{}", closed_url());
    let line = fails(&["--endpoints", &nowhere, "next-id"], &[], 1);
    assert!(line.starts_with("paxid: cannot reach any endpoint: "), "{line}");
    assert_eq!(line.matches("connection refused").count(), 2, "{line}");
    // acceptors list finds the configuration through the endpoints too.
    let members = ok_json(&["--endpoints", &endpoints, "acceptors", "list"], &[]);
    assert_eq!(
        members["acceptors"].as_array().map(Vec::len),
        Some(3),
        "{members}"
    );

    // status through one sequencer: the acceptors and the leader come from it.
    let status = ok_json(&["--url", &sequencers[0], "status", "--learner", &learner], &[]);
    let found: Vec<&str> = status["acceptors"]
        .as_array()
        .expect("acceptors")
        .iter()
        .map(|p| {
            assert_eq!(p["up"], true, "{p}");
            p["url"].as_str().expect("url")
        })
        .collect();
    assert_eq!(found, acceptors.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(
        status["discovered"]["through"],
        sequencers[0].as_str(),
        "{status}"
    );
    let leader = status["leader"]["url"].as_str().expect("a leader").to_owned();
    assert!(sequencers.contains(&leader), "{status}");
    let listed: Vec<&str> = status["sequencers"]
        .as_array()
        .expect("sequencers")
        .iter()
        .map(|p| p["url"].as_str().expect("url"))
        .collect();
    assert!(listed.contains(&leader.as_str()), "the leader is shown: {status}");
    assert_eq!(status["learner"]["up"], true, "{status}");
    let table = ok(&["--url", &sequencers[0], "status"], &[]);
    assert!(
        table.contains(&format!("acceptors found through {}", sequencers[0])),
        "{table}"
    );
    for acceptor in &acceptors {
        assert!(table.contains(acceptor.as_str()), "{table}");
    }
    // Given --acceptors: as before, nothing discovered.
    let given = ok_json(
        &["--url", &sequencers[0], "status", "--acceptors", &acceptors[0]],
        &[],
    );
    assert_eq!(given["acceptors"].as_array().map(Vec::len), Some(1));
    assert!(given.get("discovered").is_none(), "{given}");
}

fn check_subscriptions(cluster: &Cluster) {
    let learner = cluster.learner_url();
    let sequencer = cluster.sequencer_urls()[0].clone();
    let token = [("PAXID_SUBSCRIPTION_TOKEN", SUBSCRIPTION_TOKEN)];
    let port = free_port();
    let hook = format!("http://127.0.0.1:{port}/hook");

    // The subscription token is required, and taken from the flag or env.
    let line = fails(&["subscriptions", "list", "--learner", &learner], &[], 1);
    assert!(line.contains(": 401 "), "{line}");
    ok(
        &[
            "--subscription-token",
            SUBSCRIPTION_TOKEN,
            "subscriptions",
            "list",
            "--learner",
            &learner,
        ],
        &[],
    );

    // A receiver that answers 410: the subscription gets disabled.
    let mut gone = cluster.spawn(
        "subscriber-410",
        "paxid-test-subscriber",
        port,
        vec![
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--status".into(),
            "410".into(),
        ],
    );
    let created = ok(
        &[
            "subscriptions",
            "create",
            &hook,
            "--learner",
            &learner,
            "--from-slot",
            "0",
        ],
        &token,
    );
    let id = created
        .lines()
        .find_map(|l| l.strip_prefix("id      "))
        .unwrap_or_else(|| panic!("no id in {created}"))
        .to_owned();
    assert!(created.contains("secret  whsec_"), "{created}");
    ok(&["--url", &sequencer, "next-id", "--count", "3"], &[]);
    let disabled = wait_subscription(&learner, &id, &token, "disabled", |v| v["state"] == "disabled");
    assert!(disabled["disabled_reason"].is_string(), "{disabled}");
    let human = ok(&["subscriptions", "get", &id, "--learner", &learner], &token);
    assert!(human.contains("state            disabled"), "{human}");

    let list = ok_json(&["subscriptions", "list", "--learner", &learner], &token);
    let ids: Vec<&str> = list["subscriptions"]
        .as_array()
        .expect("subscriptions")
        .iter()
        .map(|s| s["id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, [id.as_str()], "{list}");
    let table = ok(&["subscriptions", "list", "--learner", &learner], &token);
    assert!(table.starts_with("ID "), "{table}");
    assert!(table.contains(&id) && table.contains("disabled"), "{table}");

    // A ping to the 410 receiver: reported, exit 1, nothing on stderr.
    let ping = [
        "subscriptions",
        "ping",
        id.as_str(),
        "--learner",
        learner.as_str(),
    ];
    let refused = paxid(&ping, &token);
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    assert!(
        stdout(&refused).starts_with("not delivered") && stdout(&refused).contains("410"),
        "{}",
        stdout(&refused)
    );

    // A receiver that acknowledges: a ping reaches it (once it listens) and
    // leaves the subscription disabled; then enable: delivery resumes.
    gone.kill9();
    let _receiver = cluster.spawn(
        "subscriber-204",
        "paxid-test-subscriber",
        port,
        vec!["--listen".into(), format!("127.0.0.1:{port}")],
    );
    let started = std::time::Instant::now();
    let pinged = loop {
        let output = paxid(&ping, &token);
        if output.status.success() {
            break stdout(&output);
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "no ping reached the new receiver: {}",
            stdout(&output)
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert!(pinged.starts_with("delivered 204 in "), "{pinged}");
    let view = ok_json(&["subscriptions", "get", &id, "--learner", &learner], &token);
    assert_eq!(view["state"], "disabled", "a ping changes nothing: {view}");
    let enabled = ok_json(&["subscriptions", "enable", &id, "--learner", &learner], &token);
    assert_eq!(enabled["state"], "active", "{enabled}");
    assert_eq!(enabled["disabled_reason"], serde_json::Value::Null, "{enabled}");
    ok(&["--url", &sequencer, "next-id"], &[]);
    let caught_up = wait_subscription(&learner, &id, &token, "caught up", |v| {
        v["state"] == "active" && v["lag_slots"] == 0 && v["delivered_below"].as_u64() > Some(0)
    });

    // replay moves the cursor back; above delivered_below is a 422.
    let replayed = ok_json(
        &[
            "subscriptions",
            "replay",
            &id,
            "--from-slot",
            "0",
            "--learner",
            &learner,
        ],
        &token,
    );
    assert_eq!(replayed["id"], id.as_str());
    assert_eq!(replayed["delivered_below"], 0, "{replayed}");
    let below = caught_up["delivered_below"].as_u64().expect("a slot");
    wait_subscription(&learner, &id, &token, "delivered again", |v| {
        v["delivered_below"].as_u64() >= Some(below)
    });
    let far = (below + 1_000_000).to_string();
    let line = fails(
        &[
            "subscriptions",
            "replay",
            &id,
            "--from-slot",
            &far,
            "--learner",
            &learner,
        ],
        &token,
        1,
    );
    assert!(line.contains(": 422 "), "{line}");
    let line = fails(
        &["subscriptions", "replay", &id, "--learner", &learner],
        &token,
        2,
    );
    assert!(line.contains("--from-slot"), "{line}");
    fails(
        &[
            "subscriptions",
            "replay",
            &id,
            "--from-slot",
            "-1",
            "--learner",
            &learner,
        ],
        &token,
        2,
    );

    // delete; then it is gone, and an id cannot name another route.
    assert_eq!(
        ok(&["subscriptions", "delete", &id, "--learner", &learner], &token),
        format!("deleted {id}\n")
    );
    let line = fails(&["subscriptions", "get", &id, "--learner", &learner], &token, 1);
    assert!(line.contains(": 404 "), "{line}");
    let line = fails(
        &["subscriptions", "delete", &id, "--learner", &learner],
        &token,
        1,
    );
    assert!(line.contains(": 404 "), "{line}");
    let line = fails(
        &["subscriptions", "enable", "../../readyz", "--learner", &learner],
        &token,
        1,
    );
    assert!(line.contains(": 404 "), "{line}");
    let empty = ok(&["subscriptions", "list", "--learner", &learner], &token);
    assert_eq!(empty, "no subscriptions\n");
    let line = fails(&["subscriptions", "get", &id], &token, 2);
    assert!(line.contains("--learner"), "{line}");
}

/// Two acceptors down: no quorum, every sequencer answers 503. Without
/// retries `next-id` fails at once; with them it outlasts the outage.
async fn check_retries_through_an_outage(cluster: &mut Cluster) {
    let endpoints = cluster.sequencer_urls().join(",");
    cluster.acceptors[0].kill9();
    cluster.acceptors[1].kill9();
    let endpoints_for_check = endpoints.clone();
    tokio::task::spawn_blocking(move || {
        let line = fails(
            &["--endpoints", &endpoints_for_check, "--retry-ms", "0", "next-id"],
            &[],
            1,
        );
        assert!(line.contains(": 503 "), "{line}");
    })
    .await
    .expect("no panic");
    let mut waiting = paxid_command(
        &["--endpoints", &endpoints, "--retry-ms", "40000", "next-id"],
        &[],
    )
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .expect("paxid starts");
    // Longer than a request's own wait (--id-timeout-ms 1000): only
    // retrying can get an ID.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        waiting.try_wait().expect("paxid runs").is_none(),
        "next-id did not wait for the quorum"
    );
    cluster.acceptors[0].start();
    cluster.acceptors[1].start();
    let output = tokio::task::spawn_blocking(move || waiting.wait_with_output().expect("paxid ends"))
        .await
        .expect("no panic");
    assert!(
        output.status.success(),
        "next-id did not outlast the outage: {}\n{}",
        stderr(&output),
        cluster.logs()
    );
    assert!(
        stdout(&output).trim().parse::<u64>().is_ok(),
        "{}",
        stdout(&output)
    );
}

#[test]
fn completion_scripts_for_bash_zsh_and_fish() {
    let bash = ok(&["completion", "bash"], &[]);
    assert!(
        bash.contains("_paxid()") && bash.contains("complete -F _paxid"),
        "{bash}"
    );
    assert!(bash.contains("subscriptions") && bash.contains("--endpoints"));
    let zsh = ok(&["completion", "zsh"], &[]);
    assert!(zsh.starts_with("#compdef paxid"), "{zsh}");
    let fish = ok(&["completion", "fish"], &[]);
    assert!(fish.contains("complete -c paxid"), "{fish}");
    assert!(fish.contains("replay"), "{fish}");
    let json = ok_json(&["completion", "bash"], &[]);
    assert_eq!(json["shell"], "bash");
    assert_eq!(json["script"].as_str(), Some(bash.as_str()));
    let line = fails(&["completion", "powershell"], &[], 2);
    assert!(line.contains("powershell"), "{line}");
    fails(&["completion"], &[], 2);
    fails(&["no-such-command"], &[], 2);
}

/// A stand-in server: the first call gets 503 with `Retry-After:
/// retry_after_s`, every later one a next-id answer. Returns its URL and
/// the number of calls so far.
async fn flaky_sequencer(retry_after_s: u64) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let calls = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let app = axum::Router::new().route(
        "/next-id",
        axum::routing::post(move || {
            let counter = counter.clone();
            async move {
                use axum::response::IntoResponse;
                if counter.fetch_add(1, Ordering::SeqCst) == 0 {
                    let problem = r#"{"type":"https://paxid.dev/problems/unavailable","title":"Service unavailable","status":503,"detail":"no leader"}"#;
                    (
                        axum::http::StatusCode::SERVICE_UNAVAILABLE,
                        [
                            ("retry-after", retry_after_s.to_string()),
                            ("content-type", "application/problem+json".to_owned()),
                        ],
                        problem,
                    )
                        .into_response()
                } else {
                    axum::Json(serde_json::json!({"id": 7, "count": 1, "sequence": "default"}))
                        .into_response()
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, calls)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_503_is_retried_after_its_retry_after_within_the_budget() {
    use std::sync::atomic::Ordering;
    let (url, calls) = flaky_sequencer(1).await;
    let started = std::time::Instant::now();
    let answer = tokio::task::spawn_blocking(move || ok(&["--url", &url, "next-id"], &[]))
        .await
        .expect("no panic");
    assert_eq!(answer, "7\n");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "retried before Retry-After: {:?}",
        started.elapsed()
    );

    // A Retry-After past the budget (5 s by default) is not waited for.
    let (url, calls) = flaky_sequencer(30).await;
    let started = std::time::Instant::now();
    let line = tokio::task::spawn_blocking(move || fails(&["--url", &url, "next-id"], &[], 1))
        .await
        .expect("no panic");
    assert!(line.contains(": 503 Service unavailable: no leader"), "{line}");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    // --retry-ms 0: never retried.
    let (url, calls) = flaky_sequencer(1).await;
    tokio::task::spawn_blocking(move || fails(&["--retry-ms", "0", "--url", &url, "next-id"], &[], 1))
        .await
        .expect("no panic");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}
