//! Closed-loop clients that record every call for the checker.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use crate::checker::Op;

/// What the clients do.
#[derive(Clone, Debug)]
pub struct LoadSpec {
    /// Sequencer URLs; client `i` starts on `urls[i % len]` and moves to the
    /// next URL after a failure, as a client behind a load balancer would.
    pub urls: Vec<String>,
    pub clients: usize,
    /// Counts drawn round-robin per client.
    pub counts: Vec<u64>,
    /// Sequence names drawn round-robin per client (`None` = no body field).
    pub sequences: Vec<Option<String>>,
    pub call_timeout: Duration,
}

impl Default for LoadSpec {
    fn default() -> Self {
        LoadSpec {
            urls: Vec::new(),
            clients: 8,
            counts: vec![1],
            sequences: vec![None],
            call_timeout: Duration::from_secs(1),
        }
    }
}

/// A running load; `stop` ends it and returns the history.
pub struct Load {
    stop: Arc<std::sync::atomic::AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    history: Arc<Mutex<Vec<Op>>>,
    epoch: Instant,
}

/// Starts the clients; they run until `Load::stop`.
pub fn run_load(spec: LoadSpec) -> Load {
    assert!(!spec.urls.is_empty(), "at least one URL");
    let epoch = Instant::now();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let history = Arc::new(Mutex::new(Vec::new()));
    paxid_client::install_tls_provider();
    let http = reqwest::Client::builder()
        .timeout(spec.call_timeout)
        .build()
        .expect("client");
    let tasks = (0..spec.clients)
        .map(|client| {
            let (spec, stop, history, http) = (spec.clone(), stop.clone(), history.clone(), http.clone());
            tokio::spawn(async move { client_loop(client, spec, stop, history, http, epoch).await })
        })
        .collect();
    Load {
        stop,
        tasks,
        history,
        epoch,
    }
}

impl Load {
    pub async fn stop(self) -> Vec<Op> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for task in self.tasks {
            let _ = task.await;
        }
        let history = self.history.lock().await;
        history.clone()
    }

    /// Every call recorded so far (the clients go on).
    pub async fn history(&self) -> Vec<Op> {
        self.history.lock().await.clone()
    }

    /// Successful calls so far.
    pub async fn successes(&self) -> usize {
        self.history
            .lock()
            .await
            .iter()
            .filter(|op| op.result.is_some())
            .count()
    }

    /// The history's clock starts here.
    pub fn epoch(&self) -> Instant {
        self.epoch
    }

    /// Nanoseconds on the history's clock.
    pub fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// Waits until a call that started after `since_ns` succeeded; returns
    /// how long after `since_ns` it completed.
    pub async fn wait_success_after(&self, since_ns: u64, within: Duration) -> Duration {
        let started = Instant::now();
        loop {
            {
                let history = self.history.lock().await;
                let first = history
                    .iter()
                    .filter(|op| op.result.is_some() && op.invoked_ns >= since_ns)
                    .map(|op| op.completed_ns)
                    .min();
                if let Some(done) = first {
                    return Duration::from_nanos(done - since_ns);
                }
            }
            assert!(started.elapsed() < within, "no successful call within {within:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

async fn client_loop(
    client: usize,
    spec: LoadSpec,
    stop: Arc<std::sync::atomic::AtomicBool>,
    history: Arc<Mutex<Vec<Op>>>,
    http: reqwest::Client,
    epoch: Instant,
) {
    let mut url_index = client % spec.urls.len();
    let mut call = 0usize;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let count = spec.counts[(client + call) % spec.counts.len()];
        let sequence = spec.sequences[(client + call) % spec.sequences.len()].clone();
        call += 1;
        let invoked_ns = epoch.elapsed().as_nanos() as u64;
        let outcome = next_id(&http, &spec.urls[url_index], count, sequence.as_deref()).await;
        let completed_ns = epoch.elapsed().as_nanos() as u64;
        let result = match &outcome {
            Outcome::Ids(ids) => Some(ids.clone()),
            Outcome::Refused | Outcome::Unreachable => None,
        };
        history.lock().await.push(Op {
            invoked_ns,
            completed_ns,
            result,
        });
        match outcome {
            Outcome::Ids(_) => {}
            // A replica that answers (503 while an election runs) will know
            // the new leader soon: retry it after a pause.
            Outcome::Refused => tokio::time::sleep(Duration::from_millis(20)).await,
            // A replica that does not answer may be down: try the next one.
            Outcome::Unreachable => url_index = (url_index + 1) % spec.urls.len(),
        }
    }
}

enum Outcome {
    Ids((String, u64, u64)),
    Refused,
    Unreachable,
}

async fn next_id(http: &reqwest::Client, url: &str, count: u64, sequence: Option<&str>) -> Outcome {
    let mut body = serde_json::Map::new();
    if count != 1 {
        body.insert("count".into(), count.into());
    }
    if let Some(sequence) = sequence {
        body.insert("sequence".into(), sequence.into());
    }
    let mut request = http.post(format!("{url}/next-id"));
    if !body.is_empty() {
        request = request.json(&body);
    }
    let Ok(response) = request.send().await else {
        return Outcome::Unreachable;
    };
    if !response.status().is_success() {
        return Outcome::Refused;
    }
    let Ok(answer) = response.json::<api::client::NextIdResponse>().await else {
        return Outcome::Unreachable;
    };
    assert_eq!(answer.count, count, "the answer's count is the request's");
    assert_eq!(
        answer.sequence,
        sequence.unwrap_or("default"),
        "the answer's sequence is the request's"
    );
    Outcome::Ids((answer.sequence, answer.id, answer.count))
}
