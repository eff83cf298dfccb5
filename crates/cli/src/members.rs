//! `paxid acceptors list|add|remove|replace`: who may vote, as the
//! acceptors themselves say, and membership changes through the leader.

use std::time::Duration;

use api::client::{ReconfigureRequest, SequencerStatus};
use api::internal::{AcceptorStatus, Configuration, MemberState, Membership};
use serde::Serialize;

use reqwest::Method;

use crate::http::{Api, CliError, Retry};
use crate::AcceptorsCommand;

/// Longest a membership change may take (the leader waits up to 10 s for
/// its stop sign to be chosen).
pub const CHANGE_TIMEOUT: Duration = Duration::from_secs(15);

/// The status of the leader, found through the first of `endpoints` (any
/// sequencers) that answers: the configuration in force is the leader's (a
/// follower learns a new one a poll later).
pub async fn current(api: &Api, endpoints: &[String]) -> Result<SequencerStatus, CliError> {
    let status: SequencerStatus = api
        .call_json::<(), _>(Method::GET, endpoints, api::routes::STATUS, None, Retry::On503)
        .await?;
    match &status.leader_url {
        Some(leader) if status.role != "leader" && *leader != status.advertise_url => {
            api.get_json(leader, api::routes::STATUS).await
        }
        _ => Ok(status),
    }
}

/// The acceptor list after `change`, from the current one.
pub fn wanted(current: &[String], change: &AcceptorsCommand) -> Result<Vec<String>, CliError> {
    let base = |u: &str| u.trim_end_matches('/').to_owned();
    let mut list: Vec<String> = current.iter().map(|u| base(u)).collect();
    let position = |list: &[String], url: &str| list.iter().position(|u| *u == base(url));
    match change {
        AcceptorsCommand::List(_) => {}
        AcceptorsCommand::Add(add) => {
            if position(&list, &add.acceptor).is_some() {
                return Err(CliError::Usage(format!("{} is seated already", add.acceptor)));
            }
            list.push(base(&add.acceptor));
        }
        AcceptorsCommand::Remove(remove) => {
            let at = position(&list, &remove.acceptor)
                .ok_or_else(|| CliError::Usage(format!("{} is not seated", remove.acceptor)))?;
            list.remove(at);
        }
        AcceptorsCommand::Replace(replace) => {
            let at = position(&list, &replace.old)
                .ok_or_else(|| CliError::Usage(format!("{} is not seated", replace.old)))?;
            if base(&replace.old) != base(&replace.new) && position(&list, &replace.new).is_some() {
                return Err(CliError::Usage(format!("{} is seated already", replace.new)));
            }
            list[at] = base(&replace.new);
        }
    }
    Ok(list)
}

/// Asks the leader (found through `endpoints`) for the change. The change
/// itself is sent once: a 503 may come after the stop sign was proposed.
pub async fn change(
    api: &Api,
    endpoints: &[String],
    change: &AcceptorsCommand,
) -> Result<Configuration, CliError> {
    let status = current(api, endpoints).await?;
    let acceptors = wanted(&status.acceptor_urls, change)?;
    if status.role != "leader" {
        return Err(CliError::Usage(
            "no leader is known yet; retry in a moment".into(),
        ));
    }
    // The change applies only to the configuration it was computed from.
    let request = ReconfigureRequest {
        acceptors,
        epoch: Some(status.epoch),
    };
    let leader = status.advertise_url;
    api.post_json(&leader, api::routes::ACCEPTORS, Some(&request))
        .await
}

pub fn render_configuration(configuration: &Configuration) -> String {
    let mut lines = vec![format!("configuration epoch {}", configuration.epoch)];
    for seat in &configuration.seats {
        lines.push(format!("{:<32} {}", seat.url, seat.node_uuid));
    }
    lines.join("\n")
}

/// One acceptor as it answered (or did not).
#[derive(Debug, Clone, Serialize)]
pub struct AcceptorRow {
    pub url: String,
    /// `voting`, `blank`, `retired`, or `unreachable`.
    pub state: String,
    pub node_uuid: Option<String>,
    pub error: Option<String>,
}

/// The acceptors and the membership merged from every answer.
#[derive(Debug, Clone, Serialize)]
pub struct MembershipReport {
    pub acceptors: Vec<AcceptorRow>,
    pub membership: Membership,
    /// Voting members that answer at no URL: down, or lost and not yet replaced.
    pub unaccounted: Vec<String>,
}

pub async fn collect(api: &Api, urls: &[String]) -> MembershipReport {
    let calls = urls.iter().map(|url| async move {
        let answer: Result<AcceptorStatus, _> = api.get_json(url, api::routes::STATUS).await;
        (url.clone(), answer)
    });
    let answers = futures::future::join_all(calls).await;
    let mut members = std::collections::BTreeSet::new();
    let mut retired = std::collections::BTreeSet::new();
    let mut rows = Vec::new();
    for (url, answer) in answers {
        match answer {
            Ok(status) => {
                if let Some(m) = &status.membership {
                    members.extend(m.members.iter().cloned());
                    retired.extend(m.retired.iter().cloned());
                }
                let state = match status.state {
                    MemberState::Voting => "voting",
                    MemberState::Blank => "blank",
                    MemberState::Retired => "retired",
                };
                rows.push(AcceptorRow {
                    url,
                    state: state.to_owned(),
                    node_uuid: Some(status.node_uuid),
                    error: None,
                });
            }
            Err(error) => rows.push(AcceptorRow {
                url,
                state: "unreachable".to_owned(),
                node_uuid: None,
                error: Some(error.to_string()),
            }),
        }
    }
    let seen: Vec<&String> = rows.iter().filter_map(|r| r.node_uuid.as_ref()).collect();
    let unaccounted = members
        .iter()
        .filter(|m| !retired.contains(*m) && !seen.contains(m))
        .cloned()
        .collect();
    MembershipReport {
        acceptors: rows,
        membership: Membership {
            members: members.into_iter().collect(),
            retired: retired.into_iter().collect(),
        },
        unaccounted,
    }
}

pub fn render_human(report: &MembershipReport) -> String {
    let mut lines = vec![format!("{:<32} {:<12} node_uuid", "acceptor", "state")];
    for row in &report.acceptors {
        let detail = row
            .node_uuid
            .clone()
            .or_else(|| row.error.clone())
            .unwrap_or_default();
        lines.push(format!("{:<32} {:<12} {detail}", row.url, row.state));
    }
    let voters = report.membership.members.len()
        - report
            .membership
            .retired
            .len()
            .min(report.membership.members.len());
    lines.push(format!(
        "members: {} voting, {} retired",
        voters,
        report.membership.retired.len()
    ));
    for member in &report.unaccounted {
        lines.push(format!(
            "member {member} answers at no URL (down, or lost and not yet rebuilt)"
        ));
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AcceptorUrl, ReplaceArgs};

    fn list(urls: &[&str]) -> Vec<String> {
        urls.iter().map(|u| (*u).to_owned()).collect()
    }

    #[test]
    fn changes_edit_the_current_list_in_place() {
        let current = list(&["http://a", "http://b/", "http://c"]);
        let add = AcceptorsCommand::Add(AcceptorUrl {
            acceptor: "http://d".into(),
        });
        assert_eq!(
            wanted(&current, &add).expect("ok"),
            list(&["http://a", "http://b", "http://c", "http://d"])
        );
        let remove = AcceptorsCommand::Remove(AcceptorUrl {
            acceptor: "http://b".into(),
        });
        assert_eq!(
            wanted(&current, &remove).expect("ok"),
            list(&["http://a", "http://c"])
        );
        let replace = AcceptorsCommand::Replace(ReplaceArgs {
            old: "http://a".into(),
            new: "http://x".into(),
        });
        assert_eq!(
            wanted(&current, &replace).expect("ok"),
            list(&["http://x", "http://b", "http://c"])
        );
    }

    #[test]
    fn seating_twice_or_removing_a_stranger_is_a_usage_error() {
        let current = list(&["http://a", "http://b"]);
        let twice = AcceptorsCommand::Add(AcceptorUrl {
            acceptor: "http://a/".into(),
        });
        assert!(matches!(wanted(&current, &twice), Err(CliError::Usage(_))));
        let stranger = AcceptorsCommand::Remove(AcceptorUrl {
            acceptor: "http://z".into(),
        });
        assert!(matches!(wanted(&current, &stranger), Err(CliError::Usage(_))));
    }
}
