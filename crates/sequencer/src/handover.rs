//! A leader asked to stop hands leadership over (issue 14: zero failed
//! calls through a rolling restart).
//!
//! On SIGTERM, before the HTTP server stops, [`hand_over`] runs:
//!
//! 1. the driver resigns (`Proposer::resign`): no new slot is opened and
//!    new requests are held, not refused; the slots in flight are chosen
//!    and answered as usual;
//! 2. once drained (bounded by [`DRAIN_MAX`]), the leader names one
//!    follower its successor by answering that follower's waiting
//!    `GET /v1/handover` (a long poll every follower keeps open to the
//!    leader the acceptors name, behind the cluster token);
//! 3. the successor campaigns at once (`Proposer::campaign_now`), without
//!    an election timeout or pre-vote; its higher ballot deposes the old
//!    leader, which releases the requests it held as `NotLeader`; they were
//!    never in a slot, so the HTTP layer forwards them to the new leader;
//! 4. for [`LINGER`] every answer then says `Connection: close`, so that
//!    clients leave their keep-alive connections after their answer
//!    rather than race the server closing them idle; then the server
//!    shuts down gracefully, waiting for the forwards in progress. A client
//!    that connects after that is refused a connection (nothing sent).
//!
//! Why a long poll from followers rather than a call from the leader:
//! sequencers are not configured with each other's addresses (only the
//! acceptors', and followers learn the leader's from them), so the leader
//! cannot call a follower; a follower can always call the leader. Why not
//! acceptors reporting a resignation: that would change the acceptors'
//! state and wire format for something only sequencers need, and every
//! follower would campaign at once instead of one.
//!
//! Every step is bounded; when one fails (no follower waiting, no quorum
//! to drain), the process stops as before and the next leader is elected
//! after a timeout. Nothing here decides what is safe: a campaign is always
//! safe, and held requests are never in a slot.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use api::routes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use tokio::sync::{oneshot, watch};
use tracing::{info, warn};

use crate::driver::{Command, DriverHandle, DriverView};
use crate::peers::{PeerError, Peers};
use crate::poller::ClusterView;

/// The leader answers a long poll `204 No Content` after this long without
/// a handover; the follower asks again. Below the server's default request
/// timeout (10 s), which would answer 503 instead (also asked again).
const WAIT_MAX: Duration = Duration::from_secs(5);
/// The slots in flight get this long to be chosen after SIGTERM.
pub const DRAIN_MAX: Duration = Duration::from_secs(2);
/// The successor gets this long to depose the old leader.
pub const TAKEOVER_MAX: Duration = Duration::from_secs(2);
/// After the handover, answers close their connections for this long
/// before the server stops accepting.
pub const LINGER: Duration = Duration::from_millis(300);
/// A follower whose long poll failed waits this long before the next.
const RETRY: Duration = Duration::from_millis(500);

/// Followers waiting on this replica's `GET /v1/handover`, oldest first.
#[derive(Default)]
pub struct Successors {
    state: Mutex<Waiting>,
    /// Set when this replica is about to stop: answers close their
    /// connections.
    closing: AtomicBool,
}

#[derive(Default)]
struct Waiting {
    followers: Vec<oneshot::Sender<bool>>,
    /// Set once this replica stops: later polls are answered at once, so
    /// that none holds up the graceful shutdown.
    closed: bool,
}

impl Successors {
    fn wait(&self) -> oneshot::Receiver<bool> {
        let (tx, rx) = oneshot::channel();
        let mut state = self.state.lock().expect("successors lock");
        if state.closed {
            let _ = tx.send(false);
            return rx;
        }
        // A follower whose poll ended (timed out, or gone) left a closed sender.
        state.followers.retain(|w| !w.is_closed());
        state.followers.push(tx);
        rx
    }

    /// Tells the most recent follower still waiting to campaign (when
    /// `choose`), and every other one that it is not the successor; later
    /// polls are answered at once. True if a follower was told to campaign.
    fn close(&self, choose: bool) -> bool {
        let mut followers = {
            let mut state = self.state.lock().expect("successors lock");
            state.closed = true;
            std::mem::take(&mut state.followers)
        };
        followers.retain(|w| !w.is_closed());
        let chosen = choose && followers.pop().is_some_and(|w| w.send(true).is_ok());
        for other in followers {
            let _ = other.send(false);
        }
        chosen
    }
}

/// `GET /v1/handover`, behind the cluster token.
pub fn routes(successors: Arc<Successors>, cluster_token: service::Tokens) -> Router {
    Router::new()
        .route(routes::HANDOVER, get(wait_for_handover))
        .route_layer(service::require_bearer(cluster_token))
        .with_state(successors)
}

/// Wraps every route: once the replica is about to stop, each answer asks
/// the client to close its connection (see the module docs, step 4).
pub fn close_connections_when_stopping(router: Router, successors: Arc<Successors>) -> Router {
    router.layer(axum::middleware::map_response(
        move |mut response: axum::response::Response| {
            let closing = successors.closing.load(Ordering::Relaxed);
            async move {
                if closing {
                    response.headers_mut().insert(
                        axum::http::header::CONNECTION,
                        axum::http::HeaderValue::from_static("close"),
                    );
                }
                response
            }
        },
    ))
}

/// 200: campaign now, you are the successor. 204: no handover (yet).
async fn wait_for_handover(State(successors): State<Arc<Successors>>) -> StatusCode {
    match tokio::time::timeout(WAIT_MAX, successors.wait()).await {
        Ok(Ok(true)) => StatusCode::OK,
        _ => StatusCode::NO_CONTENT,
    }
}

/// The SIGTERM path (see the module docs); returns when the server may
/// stop. Bounded by [`DRAIN_MAX`] + [`TAKEOVER_MAX`] + [`LINGER`].
pub async fn hand_over(driver: &DriverHandle, successors: &Successors) {
    if !drain_and_name_a_successor(driver, successors).await {
        successors.close(false);
    }
    successors.closing.store(true, Ordering::Relaxed);
    tokio::time::sleep(LINGER).await;
}

/// Steps 1 to 3; false when no successor was named.
async fn drain_and_name_a_successor(driver: &DriverHandle, successors: &Successors) -> bool {
    let mut view = driver.view.clone();
    if driver.commands.send(Command::Resign).await.is_err() {
        return false;
    }
    let _ = view.wait_for(|v| v.resigned).await;
    if !view.borrow().is_leader() {
        return false;
    }
    let drained = tokio::time::timeout(DRAIN_MAX, view.wait_for(|v| v.drained || !v.is_leader()))
        .await
        .is_ok();
    let still_leader = view.borrow().is_leader();
    if !still_leader {
        return false;
    }
    if !drained {
        warn!(
            slots_in_flight = view.borrow().slots_in_flight,
            "slots still in flight after {DRAIN_MAX:?}: stopping without a handover"
        );
        return false;
    }
    if !successors.close(true) {
        warn!("no follower waits to take over: stopping, and the next leader is elected after a timeout");
        return false;
    }
    info!("drained; a follower was asked to take over");
    let deposed = tokio::time::timeout(TAKEOVER_MAX, view.wait_for(|v| !v.is_leader()))
        .await
        .is_ok();
    match deposed {
        true => info!("the successor leads: stopping"),
        false => warn!("the successor did not take over within {TAKEOVER_MAX:?}: stopping anyway"),
    }
    true
}

/// A campaign under way gets this long to end before a forwarded request
/// is answered or refused.
const CAMPAIGN_WAIT_MAX: Duration = Duration::from_secs(1);

/// Waits (bounded) while this replica is a candidate.
pub async fn wait_for_campaign(view: &watch::Receiver<DriverView>) {
    let mut view = view.clone();
    let _ = tokio::time::timeout(CAMPAIGN_WAIT_MAX, view.wait_for(|v| !v.is_candidate())).await;
}

/// A resigned replica forwards what it gets to its successor: waits
/// (bounded) until the acceptors name another leader. Not until this
/// replica's own view changes: the driver answers the requests it held
/// before it publishes that it stepped down, so a handler can still read
/// "leader" here (and found "no leader is known yet" when forwarding: the
/// container suite's rolling restart saw it).
pub async fn wait_for_successor(state: &crate::http::AppState) {
    let mut cluster = state.cluster.clone();
    let own = state.advertise_url.as_str();
    let named = cluster.wait_for(|view| view.leader.as_ref().is_some_and(|(_, url)| url != own));
    let _ = tokio::time::timeout(TAKEOVER_MAX, named).await;
}

/// A follower's side: keeps a `GET /v1/handover` open to the leader the
/// acceptors name, while it reaches a quorum (a successor must be able to
/// win its campaign), and campaigns when the answer names it.
pub fn spawn_watcher(
    peers: Arc<Peers>,
    mut cluster: watch::Receiver<ClusterView>,
    driver: DriverHandle,
    advertise_url: String,
) {
    tokio::spawn(async move {
        loop {
            let leader = {
                let view: DriverView = driver.view.borrow().clone();
                let cluster = cluster.borrow_and_update();
                let quorum = paxos_core::quorum(peers.acceptor_count());
                let url = cluster.leader.as_ref().map(|(_, url)| url.clone());
                url.filter(|url| {
                    !view.is_leader()
                        && !view.resigned
                        && cluster.reachable >= quorum
                        && *url != advertise_url
                })
            };
            let Some(leader) = leader else {
                if cluster.changed().await.is_err() {
                    return;
                }
                continue;
            };
            match peers
                .internal()
                .handover_poll(&leader, WAIT_MAX + Duration::from_secs(5))
                .await
            {
                Ok(true) => {
                    if driver.commands.send(Command::CampaignNow).await.is_err() {
                        return;
                    }
                    // Give the campaign time before polling anyone again.
                    tokio::time::sleep(RETRY).await;
                }
                // No handover yet, or the poll outlived the leader's
                // request timeout: ask again at once, so as to be waiting.
                Ok(false) | Err(PeerError::Status { status: 503, .. }) => {}
                Err(error) => {
                    tracing::debug!(%leader, "handover poll refused or failed: {error}");
                    tokio::time::sleep(RETRY).await;
                }
            }
        }
    });
}
