//! Membership change: from the acceptor URLs an operator wants to the next
//! configuration, which the leader puts into the log as a stop sign.
//!
//! [`next_configuration`] is the pure rule; [`propose`] gathers what it
//! needs (each acceptor's status) and hands the result to the driver.
//! ARCHITECTURE.md, "Membership change", has the protocol and its safety
//! argument.

use std::time::Duration;

use api::internal::{AcceptorStatus, MemberState};
use paxos_core::{Configuration, MemberId, Refusal, Seat};
use tokio::sync::oneshot;

use crate::driver::{DriverHandle, ReconfigureRequest};
use crate::peers::{AcceptorTable, Peers};

/// How long one status call may take while planning.
const STATUS_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the stop sign may take to be chosen.
const CHOSEN_TIMEOUT: Duration = Duration::from_secs(10);

/// Why no configuration was proposed.
#[derive(Debug, PartialEq, Eq)]
pub enum Rejected {
    /// The request itself is wrong (4xx): nothing was changed.
    Invalid(String),
    /// An acceptor is not fit for a seat (409): nothing was changed.
    Unfit(String),
    /// The cluster could not do it now (503): retry.
    Unavailable(String),
}

/// The configuration after `current` that seats `wanted`, in that order.
///
/// Each wanted URL must answer its status: a seat of `current` that votes
/// keeps its member; an acceptor that answers blank (a new one, or a
/// seat whose disk was lost) is seated as the new member it is. A seat of
/// the current configuration that does not answer keeps its recorded
/// member (epochs after 0 record them); anything else is refused, so that
/// nobody is seated who could bring stale votes. Returns None when the
/// wanted seats are the current ones.
pub fn next_configuration(
    current: &AcceptorTable,
    wanted: &[String],
    statuses: &[Option<AcceptorStatus>],
) -> Result<Option<Configuration>, Rejected> {
    check_list(wanted)?;
    // A configuration most of whose acceptors are down could never choose
    // anything again, not even the change that would undo it.
    let answering = statuses.iter().filter(|s| s.is_some()).count();
    if answering < paxos_core::quorum(wanted.len()) {
        return Err(Rejected::Unfit(format!(
            "only {answering} of the {} acceptors answer; a configuration needs a majority of them up",
            wanted.len()
        )));
    }
    let mut seats = Vec::with_capacity(wanted.len());
    for (url, status) in wanted.iter().zip(statuses) {
        seats.push(Seat {
            address: url.clone(),
            member: seat_member(current, url, status.as_ref())?,
        });
    }
    let unchanged = current.configuration.as_ref().is_some_and(|c| c.seats == seats)
        || (current.epoch == 0 && current.urls == wanted && statuses.iter().all(voting));
    if unchanged {
        return Ok(None);
    }
    Ok(Some(Configuration {
        epoch: current.epoch + 1,
        seats,
    }))
}

fn voting(status: &Option<AcceptorStatus>) -> bool {
    status.as_ref().is_some_and(|s| s.state == MemberState::Voting)
}

fn check_list(wanted: &[String]) -> Result<(), Rejected> {
    if wanted.is_empty() || wanted.len() > api::internal::SEATS_MAX {
        return Err(Rejected::Invalid(format!(
            "give between 1 and {} acceptor URLs",
            api::internal::SEATS_MAX
        )));
    }
    for (i, url) in wanted.iter().enumerate() {
        if wanted[..i].contains(url) {
            return Err(Rejected::Invalid(format!("{url} is listed twice")));
        }
    }
    Ok(())
}

fn seat_member(
    current: &AcceptorTable,
    url: &str,
    status: Option<&AcceptorStatus>,
) -> Result<MemberId, Rejected> {
    let seated = current.urls.iter().any(|u| u == url);
    let recorded = current
        .configuration
        .as_ref()
        .and_then(|c| c.seats.iter().find(|s| s.address == url))
        .map(|s| s.member);
    let Some(status) = status else {
        return recorded.ok_or_else(|| {
            Rejected::Unfit(format!(
                "{url} does not answer, and no configuration records who sits there; \
                 start it (blank) or leave it out"
            ))
        });
    };
    let member = api::internal::member_id(&status.node_uuid)
        .map_err(|e| Rejected::Unfit(format!("{url} answers with a bad identity: {e}")))?;
    match status.state {
        MemberState::Blank => Ok(member),
        MemberState::Voting if seated => Ok(member),
        MemberState::Voting => Err(Rejected::Unfit(format!(
            "{url} already holds a membership (another cluster's, or a removed member's); \
             only a blank acceptor (empty data dir) can take a new seat"
        ))),
        MemberState::Retired => Err(Rejected::Unfit(format!(
            "{url} was retired; empty its data dir to seat it again"
        ))),
    }
}

/// Plans the configuration that seats `wanted` and has this leader put it
/// into the log; answers with the configuration once its stop sign is chosen.
pub async fn propose(
    peers: &Peers,
    driver: &DriverHandle,
    wanted: Vec<String>,
    from_epoch: Option<u64>,
) -> Result<Configuration, Rejected> {
    let wanted: Vec<String> = wanted
        .iter()
        .map(|u| u.trim_end_matches('/').to_owned())
        .collect();
    check_list(&wanted)?;
    let current = peers.acceptors();
    if let Some(epoch) = from_epoch.filter(|e| *e != current.epoch) {
        return Err(Rejected::Unfit(format!(
            "the list was computed from epoch {epoch}, but epoch {} is in force: list the acceptors again",
            current.epoch
        )));
    }
    let calls = wanted
        .iter()
        .map(|url| async move { peers.status_at(url, STATUS_TIMEOUT).await.ok() });
    let statuses = futures::future::join_all(calls).await;
    let Some(configuration) = next_configuration(&current, &wanted, &statuses)? else {
        return Ok(current.configuration.clone().unwrap_or_else(|| Configuration {
            epoch: 0,
            seats: Vec::new(),
        }));
    };
    let (reply, answer) = oneshot::channel();
    let request = ReconfigureRequest {
        configuration: configuration.clone(),
        reply,
    };
    driver
        .reconfigure
        .send(request)
        .await
        .map_err(|_| Rejected::Unavailable("the sequencer is shutting down".into()))?;
    match tokio::time::timeout(CHOSEN_TIMEOUT, answer).await {
        Ok(Ok(Ok(chosen))) => Ok(chosen),
        Ok(Ok(Err(Refusal::NotLeader))) => Err(Rejected::Unavailable(
            "this replica is not the leader; send it to the leader_url of /v1/status".into(),
        )),
        Ok(Ok(Err(refusal))) => Err(Rejected::Unavailable(format!(
            "the configuration was not chosen ({refusal:?}); look at `paxid acceptors list` and retry"
        ))),
        Ok(Err(_)) | Err(_) => Err(Rejected::Unavailable(
            "the stop sign was not chosen in time; it may still be: look at `paxid acceptors list` before retrying"
                .into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(uuid: u128, state: MemberState) -> Option<AcceptorStatus> {
        Some(AcceptorStatus {
            cluster_id: "paxid".into(),
            node_uuid: api::internal::node_uuid(MemberId(uuid)),
            state,
            membership: None,
            configuration: None,
            promised: Default::default(),
            leader: None,
            chosen_below: 0,
            compacted_below: 0,
            log_entries: 0,
        })
    }

    fn urls(list: &[&str]) -> Vec<String> {
        list.iter().map(|u| (*u).to_owned()).collect()
    }

    fn epoch_0() -> AcceptorTable {
        AcceptorTable {
            epoch: 0,
            urls: urls(&["http://a", "http://b", "http://c"]),
            configuration: None,
        }
    }

    fn seat(url: &str, member: u128) -> Seat {
        Seat {
            address: url.into(),
            member: MemberId(member),
        }
    }

    #[test]
    fn growing_seats_voters_as_they_are_and_blank_acceptors_as_new_members() {
        let wanted = urls(&["http://a", "http://b", "http://c", "http://d", "http://e"]);
        let statuses = [
            status(1, MemberState::Voting),
            status(2, MemberState::Voting),
            status(3, MemberState::Voting),
            status(4, MemberState::Blank),
            status(5, MemberState::Blank),
        ];
        let next = next_configuration(&epoch_0(), &wanted, &statuses)
            .expect("fit")
            .expect("a change");
        assert_eq!(next.epoch, 1);
        let expected: Vec<Seat> = (1..=5)
            .zip(&wanted)
            .map(|(m, url)| seat(url, m as u128))
            .collect();
        assert_eq!(next.seats, expected);
    }

    #[test]
    fn a_voting_stranger_a_retired_member_and_a_silent_newcomer_are_refused() {
        let wanted = urls(&["http://a", "http://b", "http://x"]);
        let base = [status(1, MemberState::Voting), status(2, MemberState::Voting)];
        for (third, why) in [
            (status(9, MemberState::Voting), "already holds a membership"),
            (status(9, MemberState::Retired), "was retired"),
            (None, "does not answer"),
        ] {
            let statuses = [base[0].clone(), base[1].clone(), third];
            match next_configuration(&epoch_0(), &wanted, &statuses) {
                Err(Rejected::Unfit(detail)) => assert!(detail.contains(why), "{detail}"),
                other => panic!("expected a refusal for {why}, got {other:?}"),
            }
        }
    }

    #[test]
    fn a_lost_disk_at_a_seat_is_seated_again_as_a_new_member_and_a_dead_seat_keeps_its_member() {
        let configuration = Configuration {
            epoch: 3,
            seats: vec![seat("http://a", 1), seat("http://b", 2), seat("http://c", 3)],
        };
        let current = AcceptorTable::of(&configuration);
        let wanted = urls(&["http://a", "http://b", "http://c"]);
        let statuses = [
            status(1, MemberState::Voting),
            None,
            status(7, MemberState::Blank),
        ];
        let next = next_configuration(&current, &wanted, &statuses)
            .expect("fit")
            .expect("a change");
        assert_eq!(next.epoch, 4);
        assert_eq!(
            next.seats,
            vec![seat("http://a", 1), seat("http://b", 2), seat("http://c", 7)]
        );
        let same = [
            status(1, MemberState::Voting),
            None,
            status(3, MemberState::Voting),
        ];
        assert_eq!(next_configuration(&current, &wanted, &same), Ok(None));
    }

    #[test]
    fn a_configuration_most_of_whose_acceptors_are_down_is_refused() {
        let configuration = Configuration {
            epoch: 3,
            seats: vec![seat("http://a", 1), seat("http://b", 2), seat("http://c", 3)],
        };
        let current = AcceptorTable::of(&configuration);
        // Removing a live seat while another is dead would leave one of two up.
        let wanted = urls(&["http://a", "http://b"]);
        match next_configuration(&current, &wanted, &[None, status(2, MemberState::Voting)]) {
            Err(Rejected::Unfit(detail)) => assert!(detail.contains("majority"), "{detail}"),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn lists_are_checked_before_anything_is_asked() {
        assert!(matches!(
            next_configuration(&epoch_0(), &[], &[]),
            Err(Rejected::Invalid(_))
        ));
        let twice = urls(&["http://a", "http://a"]);
        assert!(matches!(
            next_configuration(&epoch_0(), &twice, &[None, None]),
            Err(Rejected::Invalid(_))
        ));
    }
}
