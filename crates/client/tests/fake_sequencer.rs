//! The client against a scripted fake sequencer (plain HTTP/1.1 over
//! loopback TCP): coalescing, slicing, `Retry-After`, refusals, exactly.
//! The real cluster is in `tests/tests/client.rs`.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use paxid_client::{Backoff, Client, Error};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// A scripted answer; once the script is used up, the fake allocates.
enum Scripted {
    Status {
        status: u16,
        retry_after_s: Option<u64>,
        problem_type: &'static str,
    },
}

#[derive(Default)]
struct State {
    script: VecDeque<Scripted>,
    /// Next ID per sequence.
    next: HashMap<String, u64>,
    /// `(sequence, count)` of every request, in order.
    requests: Vec<(String, u64)>,
}

struct Fake {
    url: String,
    state: Arc<Mutex<State>>,
    /// Each allocation takes a permit: the test decides when calls return.
    gate: Arc<Semaphore>,
}

impl Fake {
    async fn start(script: Vec<Scripted>, gate_open: bool) -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let state = Arc::new(Mutex::new(State {
            script: script.into(),
            ..State::default()
        }));
        let gate = Arc::new(Semaphore::new(if gate_open { Semaphore::MAX_PERMITS } else { 0 }));
        let (s, g) = (state.clone(), gate.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, s.clone(), g.clone()));
            }
        });
        Fake { url, state, gate }
    }

    fn requests(&self) -> Vec<(String, u64)> {
        self.state.lock().expect("state").requests.clone()
    }
}

async fn serve(mut stream: TcpStream, state: Arc<Mutex<State>>, gate: Arc<Semaphore>) {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let (head_len, body_len) = loop {
        let Ok(n) = stream.read(&mut chunk).await else {
            return;
        };
        if n == 0 {
            return;
        }
        buffer.extend_from_slice(&chunk[..n]);
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buffer[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            break (end + 4, length);
        }
    };
    while buffer.len() < head_len + body_len {
        let Ok(n) = stream.read(&mut chunk).await else {
            return;
        };
        if n == 0 {
            return;
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
    let body: serde_json::Value =
        serde_json::from_slice(&buffer[head_len..head_len + body_len]).expect("a JSON body");
    let sequence = body["sequence"].as_str().expect("sequence").to_owned();
    let count = body["count"].as_u64().expect("count");
    let scripted = {
        let mut state = state.lock().expect("state");
        state.requests.push((sequence.clone(), count));
        state.script.pop_front()
    };
    let (status, extra, json) = match scripted {
        Some(Scripted::Status {
            status,
            retry_after_s,
            problem_type,
        }) => {
            let extra = retry_after_s
                .map(|s| format!("retry-after: {s}\r\n"))
                .unwrap_or_default();
            let problem = serde_json::json!({
                "type": problem_type, "title": "scripted", "status": status, "detail": "from the fake"
            });
            (status, extra, problem)
        }
        None => {
            gate.acquire().await.expect("gate").forget();
            let first = {
                let mut state = state.lock().expect("state");
                let next = state.next.entry(sequence.clone()).or_insert(1);
                let first = *next;
                *next += count;
                first
            };
            let answer = serde_json::json!({"id": first, "count": count, "sequence": sequence});
            (200, String::new(), answer)
        }
    };
    let text = json.to_string();
    let content_type = if status == 200 {
        "application/json"
    } else {
        "application/problem+json"
    };
    let response = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n{extra}connection: close\r\n\r\n{text}",
        text.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

fn fast_backoff() -> Backoff {
    Backoff {
        initial: Duration::from_millis(1),
        max: Duration::from_millis(100),
    }
}

/// Yields until `done` holds; the fakes answer on this runtime.
async fn until(mut done: impl FnMut() -> bool) {
    while !done() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_arriving_during_a_call_share_the_next_one_in_slices() {
    let fake = Fake::start(Vec::new(), false).await;
    let client = Client::builder().endpoints([fake.url.clone()]).build();
    let spawn = |count: u64| {
        let client = client.clone();
        tokio::spawn(async move { client.next_id("orders", count).await })
    };
    // The first caller's call is held by the fake.
    let first = spawn(2);
    until(|| fake.requests().len() == 1).await;
    // Nine more arrive while it is in flight: they wait, with no call.
    let later: Vec<_> = (1..=9).map(spawn).collect();
    until(|| client.stats().callers == 10).await;
    assert_eq!(fake.requests().len(), 1, "no second call while one is in flight");
    fake.gate.add_permits(2);
    let first = first.await.expect("task").expect("served");
    assert_eq!((first.first, first.count), (1, 2));
    let mut slices: Vec<(u64, u64)> = Vec::new();
    for (i, caller) in later.into_iter().enumerate() {
        let ids = caller.await.expect("task").expect("served");
        assert_eq!(ids.count, i as u64 + 1);
        slices.push((ids.first, ids.count));
    }
    // One call for the nine, of the sum of their counts, cut without
    // overlap or hole right after the first call's IDs.
    assert_eq!(fake.requests(), vec![("orders".into(), 2), ("orders".into(), 45)]);
    slices.sort_unstable();
    let mut next = 3;
    for (first, count) in slices {
        assert_eq!(first, next);
        next += count;
    }
    assert_eq!(next, 3 + 45);
    let stats = client.stats();
    assert_eq!((stats.callers, stats.calls, stats.http_requests), (10, 2, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_above_count_max_goes_in_several_calls_one_at_a_time() {
    let fake = Fake::start(Vec::new(), false).await;
    let client = Client::builder()
        .endpoints([fake.url.clone()])
        .count_max(10)
        .build();
    let spawn = |count: u64| {
        let client = client.clone();
        tokio::spawn(async move { client.next_id("default", count).await })
    };
    let held = spawn(1);
    until(|| fake.requests().len() == 1).await;
    let later: Vec<_> = [6, 6, 6].into_iter().map(spawn).collect();
    until(|| client.stats().callers == 4).await;
    fake.gate.add_permits(10);
    held.await.expect("task").expect("served");
    for caller in later {
        caller.await.expect("task").expect("served");
    }
    // 6 + 6 is over 10: each 6 goes alone, in turn.
    assert_eq!(
        fake.requests().iter().map(|r| r.1).collect::<Vec<_>>(),
        vec![1, 6, 6, 6]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_503_with_retry_after_is_retried_after_the_capped_wait() {
    let script = vec![Scripted::Status {
        status: 503,
        retry_after_s: Some(1),
        problem_type: "https://paxid.dev/problems/unavailable",
    }];
    let fake = Fake::start(script, true).await;
    let client = Client::builder()
        .endpoints([fake.url.clone()])
        .backoff(fast_backoff())
        .build();
    let started = Instant::now();
    let ids = client.next_id_default(3).await.expect("served after a retry");
    let waited = started.elapsed();
    assert_eq!((ids.first, ids.count), (1, 3));
    assert_eq!(client.stats().http_requests, 2);
    // Retry-After 1 s, cut to the 100 ms cap (only a lower bound is safe to
    // assert on a busy machine).
    assert!(waited >= Duration::from_millis(100), "{waited:?}");
    println!("503 + Retry-After: 1 with a 100 ms cap: served after {waited:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_422_is_returned_at_once_with_its_problem() {
    let script = vec![Scripted::Status {
        status: 422,
        retry_after_s: None,
        problem_type: "https://paxid.dev/problems/invalid-request",
    }];
    let fake = Fake::start(script, true).await;
    let client = Client::builder().endpoints([fake.url.clone()]).build();
    let error = client.next_id("x", 1).await.expect_err("refused");
    match &error {
        Error::Refused(problem) => {
            assert_eq!(problem.status, 422);
            assert_eq!(problem.type_, "https://paxid.dev/problems/invalid-request");
            assert_eq!(problem.detail.as_deref(), Some("from the fake"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(client.stats().http_requests, 1);
    // The next caller starts a fresh call.
    assert!(client.next_id("x", 1).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_endpoint_moves_the_client_to_the_next_and_it_stays_there() {
    let fake = Fake::start(Vec::new(), true).await;
    // Port 9 on loopback refuses connections.
    let client = Client::builder()
        .endpoints(["http://127.0.0.1:9".to_owned(), fake.url.clone()])
        .backoff(fast_backoff())
        .build();
    client.next_id_default(1).await.expect("served by the second");
    assert_eq!(client.stats().http_requests, 2);
    assert_eq!(client.current_endpoint(), fake.url);
    client.next_id_default(1).await.expect("served");
    assert_eq!(client.stats().http_requests, 3, "no new attempt on the dead one");
}
