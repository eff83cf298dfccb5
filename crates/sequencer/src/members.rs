//! Founding a new cluster and rebuilding lost members.
//!
//! Acceptors start blank and never vote until they are made members. Every
//! sequencer polls every acceptor's status; the core decides what to do
//! ([`paxos_core::upkeep::plan`]: found, join a founder that missed its
//! join, rebuild a lost member, or wait) and this task carries it out (a
//! rebuild only while this sequencer leads).
//!
//! All of that is epoch 0, the cluster as founded. Once a configuration
//! was chosen (see `reconfigure`), upkeep follows it instead
//! ([`keep_configuration`]): a seat that has not moved into it yet is
//! moved (its `transition` fetched from a seat that has), and a seat that
//! answers blank under a new identity (its disk was lost) is seated again
//! by the leader through the next configuration, as an operator's
//! `replace` would.
//!
//! A cluster whose acceptors are *all* wiped looks like a first start:
//! Paxos cannot tell. So a founding starts every sequence above a floor:
//! `--found-floor`, raised to the counters of every `--learners` learner,
//! and no cluster is founded while one of those learners does not answer
//! (it may remember IDs the new cluster must not hand out again).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use api::internal::{AcceptorStatus, InstallRequest, JoinRequest, PrepareRequest};
use futures::stream::{FuturesUnordered, StreamExt};
use paxos_core::upkeep::{aliases, plan, Observed, Plan};
use paxos_core::{AcceptorId, Ballot, MemberId, Membership, NodeId, Rebuild, RebuildStep, Replace};
use tracing::{error, info, warn};

use crate::driver::DriverHandle;
use crate::peers::{AcceptorTable, Peers};

/// Polls the acceptors and carries out [`plan`] every `interval`; a rebuild
/// only while this sequencer leads (one rebuild at a time in the cluster).
pub fn spawn(
    peers: Arc<Peers>,
    node: NodeId,
    interval: Duration,
    floor: BTreeMap<String, u64>,
    driver: DriverHandle,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut identities: HashMap<String, MemberId> = HashMap::new();
        let mut foreign: BTreeSet<String> = BTreeSet::new();
        let mut aliased: BTreeSet<MemberId> = BTreeSet::new();
        loop {
            ticker.tick().await;
            let table = peers.acceptors();
            let statuses = observe(&peers, &table, interval, &mut foreign).await;
            report_identity_changes(&mut identities, &table, &statuses);
            report_aliases(&mut aliased, &table, &statuses);
            if table.epoch > 0 {
                keep_configuration(&peers, &driver, &table, &statuses).await;
                continue;
            }
            if statuses.iter().flatten().any(|s| s.epoch > 0) {
                // A later configuration exists: the driver moves to it on
                // its next poll, and upkeep goes on there.
                continue;
            }
            match plan(&statuses) {
                Plan::Wait => {}
                Plan::Join {
                    acceptors,
                    membership,
                    founding,
                } => {
                    let floor = if founding {
                        founding_floor(&peers, &floor).await
                    } else {
                        Some(BTreeMap::new())
                    };
                    if let Some(floor) = floor {
                        join(&peers, &acceptors, &membership, floor).await;
                    }
                }
                Plan::Rebuild { .. } if !driver.view.borrow().is_leader() => {}
                Plan::Rebuild {
                    target,
                    replace,
                    round,
                } => rebuild(&peers, Ballot::new(round, node), target, replace).await,
            }
        }
    })
}

/// Upkeep in an epoch after 0: moves seats that lag behind into it, and
/// (on the leader) re-seats a seat whose disk was lost.
async fn keep_configuration(
    peers: &Peers,
    driver: &DriverHandle,
    table: &AcceptorTable,
    statuses: &[Option<Observed>],
) {
    let Some(configuration) = &table.configuration else {
        return;
    };
    let mut lagging = Vec::new();
    let mut source = None;
    let mut lost = false;
    for (seat, status) in configuration.seats.iter().zip(statuses) {
        let Some(status) = status else { continue };
        if status.member != seat.member {
            lost |= status.membership.is_none();
        } else if status.epoch < table.epoch {
            lagging.push(seat.address.clone());
        } else if status.epoch == table.epoch && source.is_none() {
            source = Some(seat.address.clone());
        }
    }
    if let (false, Some(source)) = (lagging.is_empty(), source) {
        move_lagging(peers, &source, &lagging).await;
    }
    if lost && driver.view.borrow().is_leader() {
        info!("a seat answers blank under a new identity (lost disk); seating it again");
        match crate::reconfigure::propose(peers, driver, table.urls.clone(), Some(table.epoch)).await {
            Ok(next) => {
                info!(epoch = next.epoch, "lost seat re-seated");
                outcome("reseated");
            }
            Err(error) => {
                warn!("re-seating a lost seat failed: {error:?}");
                outcome("reseat_failed");
            }
        }
    }
}

/// Sends each lagging seat what moves it to where `source` is.
async fn move_lagging(peers: &Peers, source: &str, lagging: &[String]) {
    let transition = match peers.transition_from(source).await {
        Ok(transition) => transition,
        Err(error) => return warn!(%source, "cannot read the transition of a moved seat: {error}"),
    };
    for url in lagging {
        match peers.transition(url, &transition).await {
            Ok(_) => {
                info!(acceptor = %url, epoch = transition.configuration.epoch, "moved a lagging seat into the configuration")
            }
            Err(error) => warn!(acceptor = %url, "moving a lagging seat failed: {error}"),
        }
    }
}

async fn observe(
    peers: &Peers,
    table: &AcceptorTable,
    timeout: Duration,
    foreign: &mut BTreeSet<String>,
) -> Vec<Option<Observed>> {
    let calls = table
        .urls
        .iter()
        .map(|url| async move { (url, peers.status_at(url, timeout).await) });
    let mut statuses = Vec::with_capacity(table.urls.len());
    for (url, answer) in futures::future::join_all(calls).await {
        report_foreign(foreign, url, &answer);
        statuses.push(answer.ok().and_then(|s| observed(&s)));
    }
    statuses
}

/// Logs once (and counts each time) an acceptor URL that belongs to
/// another cluster: it refuses every call, so it is never counted.
fn report_foreign(
    foreign: &mut BTreeSet<String>,
    url: &str,
    answer: &Result<AcceptorStatus, crate::peers::PeerError>,
) {
    let refused = matches!(answer, Err(crate::peers::PeerError::Status { status: 409, body, .. })
        if body.contains(api::problem::WRONG_CLUSTER));
    if !refused {
        foreign.remove(url);
        return;
    }
    metrics::counter!("paxid_sequencer_wrong_cluster_total").increment(1);
    if foreign.insert(url.to_owned()) {
        tracing::error!(acceptor = %url, "this acceptor belongs to another cluster (--cluster-id); it is never counted: fix --acceptors or --cluster-id");
    }
}

fn observed(status: &AcceptorStatus) -> Option<Observed> {
    let membership = match &status.membership {
        None => None,
        Some(m) => Some(Membership::try_from(m).ok()?),
    };
    Some(Observed {
        member: api::internal::member_id(&status.node_uuid).ok()?,
        epoch: status.configuration.as_ref().map_or(0, |c| c.epoch),
        membership,
        promised_round: status.promised.round,
    })
}

/// Logs and counts an acceptor URL that answers under a new identity.
fn report_identity_changes(
    identities: &mut HashMap<String, MemberId>,
    table: &AcceptorTable,
    statuses: &[Option<Observed>],
) {
    for (url, status) in table.urls.iter().zip(statuses) {
        let Some(status) = status else { continue };
        if let Some(before) = identities.insert(url.clone(), status.member) {
            if before != status.member {
                warn!(acceptor = %url, %before, now = %status.member, "an acceptor answers with a new identity (lost or replaced disk?)");
                metrics::counter!("paxid_sequencer_acceptor_identity_changes_total").increment(1);
            }
        }
    }
}

/// Logs once per member, and shows in a gauge, acceptors that answer at
/// two or more URLs of the list.
fn report_aliases(reported: &mut BTreeSet<MemberId>, table: &AcceptorTable, statuses: &[Option<Observed>]) {
    let aliases = aliases(statuses);
    metrics::gauge!("paxid_sequencer_acceptor_aliases").set(aliases.len() as f64);
    for (member, positions) in &aliases {
        if reported.insert(*member) {
            let urls: Vec<&str> = positions.iter().map(|&i| table.urls[i].as_str()).collect();
            error!(%member, ?urls, "one acceptor answers at several URLs of the list: its vote counts once, so the list holds fewer acceptors than it names; give every acceptor once");
        }
    }
}

async fn founding_floor(peers: &Peers, flag: &BTreeMap<String, u64>) -> Option<BTreeMap<String, u64>> {
    let mut floor = flag.clone();
    for learner in 0..peers.learner_count() {
        match peers.learner_status(learner).await {
            Ok(status) => {
                for (sequence, next) in status.counters {
                    let entry = floor.entry(sequence).or_insert(next);
                    *entry = (*entry).max(next);
                }
            }
            Err(error) => {
                warn!("not founding a new cluster yet: a learner does not answer, and it may remember IDs a new cluster must not hand out again: {error}");
                return None;
            }
        }
    }
    if !floor.is_empty() {
        info!(?floor, "founding a new cluster above a floor");
    }
    Some(floor)
}

async fn join(
    peers: &Peers,
    acceptors: &[AcceptorId],
    membership: &Membership,
    floor: BTreeMap<String, u64>,
) {
    let body = JoinRequest {
        membership: membership.into(),
        floor,
    };
    for to in acceptors {
        match peers.join(*to, &body).await {
            Ok(_) => info!(
                acceptor = to.0,
                members = membership.members.len(),
                "acceptor joined the cluster"
            ),
            Err(error) => warn!(acceptor = to.0, "join failed: {error}"),
        }
    }
}

/// One rebuild attempt; a later tick tries again if it does not complete.
async fn rebuild(peers: &Peers, ballot: Ballot, target: AcceptorId, replace: Replace) {
    info!(acceptor = target.0, retire = %replace.retire, admit = %replace.admit, %ballot, "rebuilding a blank acceptor in the place of a lost member");
    let mut rebuild = Rebuild::new(ballot, target, replace, peers.acceptor_count());
    let mut calls: FuturesUnordered<_> = rebuild
        .prepares()
        .into_iter()
        .map(|(to, prepare)| async move {
            let body = PrepareRequest::from_core(&prepare);
            (to, peers.prepare(to, &body).await)
        })
        .collect();
    while let Some((from, answer)) = calls.next().await {
        let Ok(Ok(reply)) = answer.map(|r| r.to_core()) else {
            continue;
        };
        match rebuild.handle_prepare_reply(from, reply) {
            RebuildStep::Waiting => {}
            RebuildStep::Rejected { promised } => {
                info!(%promised, "rebuild outbid; trying again on the next poll");
                outcome("outbid");
                return;
            }
            RebuildStep::Install(install) => {
                let body = InstallRequest::from_core(&install);
                match peers.install(target, &body).await {
                    Ok(_) => {
                        info!(acceptor = target.0, %ballot, "rebuilt acceptor installed; it votes again");
                        outcome("installed");
                    }
                    Err(error) => {
                        warn!(acceptor = target.0, "install failed: {error}");
                        outcome("install_failed");
                    }
                }
                return;
            }
        }
    }
    outcome("no_quorum");
}

fn outcome(outcome: &'static str) {
    metrics::counter!("paxid_sequencer_rebuilds_total", "outcome" => outcome).increment(1);
}
