//! Membership change on a live cluster (issue 11, item 4), over real
//! processes and under load, as an operator does it: `paxid acceptors add`
//! twice (3 → 5), `remove` twice (5 → 3, then the removed processes are
//! killed), `replace` a seat by a blank acceptor at a new URL (then the old
//! one is killed). A sequencer started afterwards with the original, stale
//! `--acceptors` list finds the configuration and serves. Every call of
//! the load goes into one history, checked for duplicates and reversals.

// The test holds the cluster lock for its whole run on purpose (see
// tests/sequencer.rs).
#![allow(clippy::await_holding_lock)]

use std::time::Duration;

use paxid_tests::cluster::{bin, free_port};
use paxid_tests::{check_history, run_load, serial, Cluster, ClusterSpec, LoadSpec, Proc};

const SERVE_WITHIN: Duration = Duration::from_secs(20);
/// After each change, a call must succeed within this long.
const RESUME_WITHIN: Duration = Duration::from_secs(15);

/// A blank acceptor started as the contract says: only `--listen --data-dir`.
fn spare(cluster: &Cluster, name: &str) -> Proc {
    let port = free_port();
    let data = cluster.data_dir().join(name);
    cluster.spawn(
        name,
        "paxid-acceptor",
        port,
        vec![
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--data-dir".into(),
            data.to_str().expect("utf-8").into(),
        ],
    )
}

/// Runs `paxid --json --url <sequencer> acceptors <args>`; returns stdout.
fn paxid(sequencer: &str, args: &[&str]) -> Result<serde_json::Value, String> {
    let output = std::process::Command::new(bin("paxid"))
        .args(["--json", "--url", sequencer, "acceptors"])
        .args(args)
        .output()
        .expect("run paxid");
    if !output.status.success() {
        return Err(format!(
            "paxid acceptors {args:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    serde_json::from_slice(&output.stdout).map_err(|e| format!("unreadable output of paxid: {e}"))
}

/// One membership change with the CLI; retried while the cluster is busy
/// electing (503), as an operator would.
async fn change(sequencer: &str, args: &[&str]) -> serde_json::Value {
    let mut last = String::new();
    for _ in 0..20 {
        let sequencer = sequencer.to_owned();
        let owned: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        let answer = tokio::task::spawn_blocking(move || {
            let borrowed: Vec<&str> = owned.iter().map(String::as_str).collect();
            paxid(&sequencer, &borrowed)
        })
        .await
        .expect("join");
        match answer {
            Ok(configuration) => return configuration,
            Err(error) if error.contains("503") || error.contains("no leader") => last = error,
            Err(error) => panic!("{error}"),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("the change {args:?} never went through: {last}");
}

/// The URLs of a configuration as the CLI printed it.
fn seats(configuration: &serde_json::Value) -> Vec<String> {
    configuration["seats"]
        .as_array()
        .expect("seats")
        .iter()
        .map(|s| s["url"].as_str().expect("url").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn grow_shrink_and_replace_under_load_with_no_duplicate() {
    let _serial = serial();
    let mut cluster = Cluster::start(ClusterSpec {
        acceptors: 3,
        sequencers: 2,
        learner: true,
        ..ClusterSpec::default()
    });
    cluster.wait_serving(SERVE_WITHIN).await;
    let founders = cluster.acceptor_urls();
    let mut spares: Vec<Proc> = ["spare-0", "spare-1", "spare-2"]
        .iter()
        .map(|name| spare(&cluster, name))
        .collect();
    let sequencer = cluster.sequencer_urls()[0].clone();
    // The runbook's first step: each new acceptor answers, blank.
    for proc in &spares {
        wait_state(&sequencer, &[proc.url()], "blank", RESUME_WITHIN).await;
    }
    let load = run_load(LoadSpec {
        urls: cluster.sequencer_urls(),
        clients: 4,
        counts: vec![1, 3],
        call_timeout: Duration::from_secs(2),
        ..LoadSpec::default()
    });
    load.wait_success_after(load.now_ns(), RESUME_WITHIN).await;

    let mut pauses = Vec::new();
    let grow = [spares[0].url(), spares[1].url()];
    for url in &grow {
        let configuration = change(&sequencer, &["add", url]).await;
        assert!(seats(&configuration).contains(url), "{configuration}");
        let since = load.now_ns();
        pauses.push((
            format!("add {url}"),
            load.wait_success_after(since, RESUME_WITHIN).await,
        ));
    }
    let five = paxid(&sequencer, &[]).err();
    assert!(
        five.is_some(),
        "`paxid acceptors` without a subcommand is a usage error"
    );
    let listed = tokio::task::spawn_blocking({
        let sequencer = sequencer.clone();
        move || paxid(&sequencer, &["list"])
    })
    .await
    .expect("join")
    .expect("list");
    let states: Vec<&str> = listed["acceptors"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| r["state"].as_str().expect("state"))
        .collect();
    assert_eq!(states, vec!["voting"; 5], "after growing: {listed}");
    // A change computed from an older configuration is refused and
    // changes nothing (two operators cannot undo each other's change).
    let leader = cluster.sequencer_urls()[cluster.wait_leader(RESUME_WITHIN).await].clone();
    let stale = cluster
        .http
        .post(format!("{leader}/v1/acceptors"))
        .json(&serde_json::json!({ "acceptors": founders, "epoch": 0 }))
        .send()
        .await
        .expect("answer");
    assert_eq!(stale.status(), 409, "{:?}", stale.text().await);
    let after = paxid(&sequencer, &["list"]).expect("list");
    assert_eq!(after["acceptors"].as_array().map(Vec::len), Some(5), "{after}");

    for url in &founders[..2] {
        let configuration = change(&sequencer, &["remove", url]).await;
        assert!(!seats(&configuration).contains(url), "{configuration}");
        let since = load.now_ns();
        pauses.push((
            format!("remove {url}"),
            load.wait_success_after(since, RESUME_WITHIN).await,
        ));
    }
    // The removed acceptors are shut down: the three left carry the cluster.
    for proc in &mut cluster.acceptors[..2] {
        proc.kill9();
    }
    let since = load.now_ns();
    pauses.push((
        "kill the removed".into(),
        load.wait_success_after(since, RESUME_WITHIN).await,
    ));

    // A sequencer started now with the original list (two of its three
    // URLs dead, the third moved on) finds the configuration and serves.
    let port = free_port();
    let stale = cluster.spawn(
        "sequencer-stale",
        "paxid-sequencer",
        port,
        vec![
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--node-id".into(),
            "9".into(),
            "--acceptors".into(),
            founders.join(","),
            "--advertise-url".into(),
            format!("http://127.0.0.1:{port}"),
        ],
    );
    let served = serve_once(&cluster, &stale.url(), RESUME_WITHIN).await;
    println!("a sequencer with the stale list served after {served:?}");

    let configuration = change(&sequencer, &["replace", &founders[2], &spares[2].url()]).await;
    assert_eq!(
        seats(&configuration),
        vec![spares[2].url(), spares[0].url(), spares[1].url()],
        "the new acceptor takes the old one's seat"
    );
    cluster.acceptors[2].kill9();
    let since = load.now_ns();
    pauses.push((
        "replace and kill the old".into(),
        load.wait_success_after(since, RESUME_WITHIN).await,
    ));
    // A seat of the new configuration loses its disk: started again blank
    // at its URL, it is re-seated by the leader with no one touching it.
    spares[1].kill9();
    std::fs::remove_dir_all(cluster.data_dir().join("spare-1")).expect("wipe");
    spares[1].start();
    let reseated = wait_state(&sequencer, &[], "voting", RESUME_WITHIN).await;
    println!("the wiped seat votes again after {reseated:?}");
    // Then the other new seat goes: the re-seated one carries a quorum.
    spares[0].kill9();
    let since = load.now_ns();
    pauses.push((
        "wiped seat re-seated, another one down".into(),
        load.wait_success_after(since, RESUME_WITHIN).await,
    ));
    tokio::time::sleep(Duration::from_millis(500)).await;

    let history = load.stop().await;
    for (step, pause) in &pauses {
        println!("{step}: first success after {pause:?}");
    }
    let summary = check_history(&history).unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
    println!("history: {summary:?}");
    assert!(summary.ok_ops > 100, "the load made progress: {summary:?}");

    // The learner, started with the founders' list, followed every stop
    // sign: it reads the acceptors in force and learned every ID handed out.
    let highest = history
        .iter()
        .filter_map(|op| op.result.as_ref())
        .map(|(_, first, count)| first + count)
        .max()
        .expect("IDs were handed out");
    let learner = cluster.learner.as_ref().expect("a learner").url();
    let in_force = paxid(&sequencer, &["list"]).expect("list");
    let urls: Vec<String> = in_force["acceptors"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| r["url"].as_str().expect("url").to_owned())
        .collect();
    let started = std::time::Instant::now();
    loop {
        let status: api::learner::LearnerStatus = cluster
            .http
            .get(format!("{learner}/v1/status"))
            .send()
            .await
            .expect("learner status")
            .json()
            .await
            .expect("learner status json");
        let learned = status.counters.get("default").copied().unwrap_or(1);
        if learned >= highest && status.acceptors == urls {
            println!("the learner follows epoch {} and learned every ID", status.epoch);
            assert!(status.gaps.is_empty(), "no gap: {status:?}\n{}", cluster.logs());
            break;
        }
        assert!(
            started.elapsed() < RESUME_WITHIN,
            "the learner did not follow: {status:?}, expected {urls:?} and IDs below {highest}\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until `paxid acceptors list` (of `acceptors`, or of the
/// configuration in force when empty) shows every acceptor in `state`.
async fn wait_state(sequencer: &str, acceptors: &[String], state: &str, within: Duration) -> Duration {
    let started = std::time::Instant::now();
    let mut args = vec!["list".to_owned()];
    if !acceptors.is_empty() {
        args.extend(["--acceptors".to_owned(), acceptors.join(",")]);
    }
    loop {
        let (sequencer_url, owned) = (sequencer.to_owned(), args.clone());
        let listed = tokio::task::spawn_blocking(move || {
            let borrowed: Vec<&str> = owned.iter().map(String::as_str).collect();
            paxid(&sequencer_url, &borrowed)
        })
        .await
        .expect("join");
        let rows = listed
            .as_ref()
            .ok()
            .and_then(|l| l["acceptors"].as_array().cloned());
        if rows.is_some_and(|rows| !rows.is_empty() && rows.iter().all(|r| r["state"] == state)) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "not all {state} within {within:?}: {listed:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until `POST /next-id` at `url` succeeds; returns how long it took.
async fn serve_once(cluster: &Cluster, url: &str, within: Duration) -> Duration {
    let started = std::time::Instant::now();
    loop {
        let answer = cluster.http.post(format!("{url}/next-id")).send().await;
        if answer.is_ok_and(|r| r.status().is_success()) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "the sequencer at {url} did not serve within {within:?}\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Issue 11, identities: a sequencer of another cluster (`--cluster-id`)
/// pointed at these acceptors counts none of them (each refuses it with
/// 409 `wrong-cluster`), serves nothing, and says why in its log; the
/// cluster's own sequencer goes on serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sequencer_of_another_cluster_counts_no_acceptor() {
    let _serial = serial();
    let mut cluster = Cluster::start(ClusterSpec {
        acceptors: 3,
        sequencers: 1,
        ..ClusterSpec::default()
    });
    cluster.wait_serving(SERVE_WITHIN).await;
    let stranger = extra_sequencer(
        &cluster,
        "sequencer-other-cluster",
        &cluster.acceptor_urls(),
        &["--cluster-id", "other"],
    );
    let started = std::time::Instant::now();
    while !stranger.log_text().contains("belongs to another cluster") {
        assert!(
            started.elapsed() < RESUME_WITHIN,
            "no wrong-cluster report:\n{}",
            stranger.log_tail(20)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for _ in 0..10 {
        let status: api::client::SequencerStatus = cluster
            .http
            .get(format!("{}/v1/status", stranger.url()))
            .send()
            .await
            .expect("status")
            .json()
            .await
            .expect("status json");
        assert_eq!(status.acceptors_reachable, 0, "{status:?}");
        assert_ne!(status.role, "leader");
        let answer = cluster
            .http
            .post(format!("{}/next-id", stranger.url()))
            .send()
            .await
            .expect("next-id");
        assert_eq!(answer.status(), 503);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let own = serve_once(&cluster, &cluster.sequencer_urls()[0], RESUME_WITHIN).await;
    println!("the cluster's own sequencer still serves (after {own:?})");
}

/// A sequencer given one acceptor at two URLs (`127.0.0.1:P` and
/// `localhost:P`) beside a second one: while both acceptors answer it
/// leads; once the second stops, the one acceptor left is one vote, not two,
/// so nothing is chosen (before votes were counted per member, this
/// sequencer went on serving IDs chosen by a single acceptor of three).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_acceptor_listed_twice_is_one_vote() {
    let _serial = serial();
    let mut cluster = Cluster::start(ClusterSpec {
        acceptors: 3,
        sequencers: 1,
        ..ClusterSpec::default()
    });
    cluster.wait_serving(SERVE_WITHIN).await;
    cluster.sequencers[0].terminate();
    let urls = cluster.acceptor_urls();
    let alias = urls[0].replace("127.0.0.1", "localhost");
    let aliased = extra_sequencer(
        &cluster,
        "sequencer-aliased-list",
        &[urls[0].clone(), alias, urls[1].clone()],
        &["--id-timeout-ms", "1000"],
    );
    let took = serve_once(&cluster, &aliased.url(), RESUME_WITHIN).await;
    println!("the aliased sequencer serves with acceptors 0 and 1 up (after {took:?})");
    let started = std::time::Instant::now();
    while !aliased.log_text().contains("answers at several URLs") {
        assert!(
            started.elapsed() < RESUME_WITHIN,
            "no alias report:\n{}",
            aliased.log_tail(20)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    cluster.acceptors[1].terminate();
    let mut served = Vec::new();
    let mut refused = 0;
    for _ in 0..15 {
        let answer = cluster
            .http
            .post(format!("{}/next-id", aliased.url()))
            .timeout(Duration::from_secs(2))
            .send()
            .await;
        match answer {
            Ok(response) if response.status().is_success() => {
                served.push(response.text().await.unwrap_or_default())
            }
            _ => refused += 1,
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "with acceptor 1 down: {} served, {refused} refused or timed out",
        served.len()
    );
    assert!(
        served.is_empty(),
        "IDs chosen by one acceptor of three: {served:?}\n{}",
        aliased.log_tail(30)
    );
}

/// A sequencer (node 7) outside the cluster's own, on a free port, given
/// `acceptors` and `extra` flags.
fn extra_sequencer(cluster: &Cluster, name: &str, acceptors: &[String], extra: &[&str]) -> Proc {
    let port = free_port();
    let mut args: Vec<String> = vec![
        "--listen".into(),
        format!("127.0.0.1:{port}"),
        "--node-id".into(),
        "7".into(),
        "--acceptors".into(),
        acceptors.join(","),
        "--advertise-url".into(),
        format!("http://127.0.0.1:{port}"),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    cluster.spawn(name, "paxid-sequencer", port, args)
}
