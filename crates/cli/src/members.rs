//! `paxid acceptors list`: who may vote, as the acceptors themselves say.

use api::internal::{AcceptorStatus, MemberState, Membership};
use serde::Serialize;

use crate::http::Api;

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
        let answer: Result<AcceptorStatus, _> = api.get_json(url, "/v1/status").await;
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
