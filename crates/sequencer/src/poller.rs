//! Polls every acceptor's status: followers learn from it whether the
//! leader is alive (elections) and where it is (forwarding).

use std::sync::Arc;
use std::time::{Duration, Instant};

use paxos_core::{AcceptorId, AcceptorStatus, Ballot};
use tokio::sync::{mpsc, watch};

use crate::driver::PeerEvent;
use crate::peers::Peers;

/// What the acceptors say about the cluster, as of the last poll.
#[derive(Clone, Debug, Default)]
pub struct ClusterView {
    /// The leader reported under the highest ballot, with its URL.
    pub leader: Option<(Ballot, String)>,
    /// How long ago the acceptors that report that leader last heard it
    /// (the most recent of them).
    pub leader_heard_ago_ms: Option<u64>,
    /// Acceptors that answered the last poll.
    pub reachable: usize,
    pub polled_at: Option<Instant>,
}

/// Starts the polling task; it runs as long as the process.
pub fn spawn(
    peers: Arc<Peers>,
    interval: Duration,
    events: mpsc::UnboundedSender<PeerEvent>,
) -> watch::Receiver<ClusterView> {
    let (view_tx, view_rx) = watch::channel(ClusterView::default());
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        // A status answer older than this is worthless for election timing.
        let timeout = interval.max(Duration::from_millis(250));
        loop {
            ticker.tick().await;
            let view = poll_once(&peers, timeout, &events).await;
            metrics::gauge!("paxid_sequencer_acceptors_reachable").set(view.reachable as f64);
            let _ = view_tx.send(view);
        }
    });
    view_rx
}

async fn poll_once(
    peers: &Peers,
    timeout: Duration,
    events: &mpsc::UnboundedSender<PeerEvent>,
) -> ClusterView {
    let table = peers.acceptors();
    let calls = table
        .urls
        .iter()
        .enumerate()
        .map(|(i, url)| async move { (AcceptorId(i), peers.status_at(url, timeout).await) });
    let answers = futures::future::join_all(calls).await;
    let mut view = ClusterView {
        polled_at: Some(Instant::now()),
        ..ClusterView::default()
    };
    for (from, answer) in answers {
        let Ok(status) = answer else { continue };
        view.reachable += 1;
        // An acceptor moved to a later configuration: ours has ended.
        if let Some(configuration) = status.configuration.as_ref().filter(|c| c.epoch > table.epoch) {
            match paxos_core::Configuration::try_from(configuration) {
                Ok(configuration) => {
                    let _ = events.send(PeerEvent::Configuration { configuration });
                }
                Err(bad) => tracing::warn!(acceptor = from.0, "unreadable configuration: {bad}"),
            }
        }
        let promised: Ballot = status.promised.into();
        let leader = status
            .leader
            .as_ref()
            .map(|l| (Ballot::from(l.ballot), l.url.clone(), l.heard_ago_ms));
        if let Some((ballot, url, ago)) = &leader {
            match &view.leader {
                Some((best, _)) if best == ballot => {
                    view.leader_heard_ago_ms = view.leader_heard_ago_ms.map(|seen| seen.min(*ago));
                }
                Some((best, _)) if best > ballot => {}
                _ => {
                    view.leader = Some((*ballot, url.clone()));
                    view.leader_heard_ago_ms = Some(*ago);
                }
            }
        }
        let leader_heard_ago_ms = leader.map(|(_, _, ago)| ago);
        let _ = events.send(PeerEvent::Status {
            from,
            epoch: table.epoch,
            status: AcceptorStatus {
                promised,
                leader_heard_ago_ms,
            },
        });
    }
    view
}
