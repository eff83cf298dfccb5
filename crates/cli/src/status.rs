//! `paxid status`: one table of every component, probed concurrently. A
//! component that does not answer is shown `down (<reason>)`; it never
//! aborts the command.

use api::client::SequencerStatus;
use api::internal::{AcceptorStatus, Ballot};
use api::learner::{LearnerStatus, SubscriptionView};
use futures::future::join_all;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::http::Api;

/// Which components to probe.
#[derive(Clone, Debug, Default)]
pub struct StatusTargets {
    pub acceptors: Vec<String>,
    pub sequencers: Vec<String>,
    pub learner: Option<String>,
}

/// Everything `paxid status --json` prints.
#[derive(Clone, Debug, Serialize)]
pub struct ClusterStatus {
    pub acceptors: Vec<Probe<AcceptorStatus>>,
    /// The leader as the acceptors (or, failing them, a sequencer) know it.
    pub leader: Option<LeaderView>,
    pub sequencers: Vec<Probe<SequencerStatus>>,
    pub learner: Option<Probe<LearnerStatus>>,
    /// Where the acceptors (and the leader) were found when no
    /// `--acceptors` were given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discovered: Option<Discovery>,
}

/// What one sequencer told about the rest of the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Discovery {
    /// The sequencer that answered.
    pub through: String,
    /// Its configuration's acceptors, as the cluster addresses them.
    pub acceptors: Vec<String>,
    /// The leader it knows, when not among the sequencers given.
    pub leader: Option<String>,
}

/// The acceptors and the leader as the first of `sequencers` that answers
/// knows them (the learners are not known to sequencers: give `--learner`).
pub async fn discover(api: &Api, sequencers: &[String]) -> Option<Discovery> {
    let (through, response) = api
        .call(
            reqwest::Method::GET,
            sequencers,
            api::routes::STATUS,
            None,
            crate::http::Retry::On503,
        )
        .await
        .ok()?;
    let status: SequencerStatus = response.json().await.ok()?;
    let base = |u: &str| u.trim_end_matches('/').to_owned();
    let known: Vec<String> = sequencers.iter().map(|u| base(u)).collect();
    let leader = status
        .leader_url
        .filter(|l| status.role != "leader" && !known.contains(&base(l)));
    Some(Discovery {
        through: through
            .strip_suffix(api::routes::STATUS)
            .unwrap_or(&through)
            .to_owned(),
        acceptors: status.acceptor_urls,
        leader,
    })
}

/// One component's answer, or why there was none.
#[derive(Clone, Debug, Serialize)]
pub struct Probe<T> {
    pub url: String,
    pub up: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<T>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LeaderView {
    pub url: String,
    pub ballot: Ballot,
    /// Acceptors whose last heard leader is this one, under this ballot.
    pub reported_by_acceptors: usize,
    pub acceptors_up: usize,
}

/// Probes every target at once.
pub async fn collect(api: &Api, targets: &StatusTargets) -> ClusterStatus {
    let acceptors = join_all(
        targets
            .acceptors
            .iter()
            .map(|url| probe::<AcceptorStatus>(api, url)),
    );
    let sequencers = join_all(
        targets
            .sequencers
            .iter()
            .map(|url| probe::<SequencerStatus>(api, url)),
    );
    let learner = async {
        match &targets.learner {
            Some(url) => Some(probe::<LearnerStatus>(api, url).await),
            None => None,
        }
    };
    let (acceptors, sequencers, learner) = tokio::join!(acceptors, sequencers, learner);
    let leader = leader(&acceptors, &sequencers);
    ClusterStatus {
        acceptors,
        leader,
        sequencers,
        learner,
        discovered: None,
    }
}

/// The table, for people.
pub fn render_human(status: &ClusterStatus) -> String {
    let mut rows: Vec<Row> = Vec::new();
    for probe in &status.acceptors {
        rows.push(row("acceptor", probe, acceptor_details));
    }
    rows.push(leader_row(status.leader.as_ref(), status.acceptors.is_empty()));
    for probe in &status.sequencers {
        rows.push(row("sequencer", probe, sequencer_details));
    }
    if let Some(probe) = &status.learner {
        rows.push(row("learner", probe, learner_details));
        for subscription in probe.status.iter().flat_map(|s| &s.subscriptions) {
            rows.push(subscription_row(subscription));
        }
    }
    let mut table = render_table(&rows);
    if let Some(found) = &status.discovered {
        table.push_str(&format!(
            "\nacceptors found through {} (no --acceptors given)",
            found.through
        ));
    }
    table
}

/// COMPONENT, URL, STATE, DETAILS.
type Row = [String; 4];

async fn probe<T: DeserializeOwned>(api: &Api, url: &str) -> Probe<T> {
    match api.get_json::<T>(url, api::routes::STATUS).await {
        Ok(status) => Probe {
            url: url.to_owned(),
            up: true,
            status: Some(status),
            error: None,
        },
        Err(error) => Probe {
            url: url.to_owned(),
            up: false,
            status: None,
            error: Some(short_reason(&error)),
        },
    }
}

/// The reason without the URL, which the table shows already.
fn short_reason(error: &crate::http::CliError) -> String {
    use crate::http::CliError;
    match error {
        CliError::Unreachable { reason, .. } | CliError::BadAnswer { reason, .. } => reason.clone(),
        CliError::Status { status, detail, .. } => format!("{status} {detail}"),
        CliError::Usage(reason) | CliError::NoEndpoint(reason) => reason.clone(),
        CliError::Silent => "failed".to_owned(),
    }
}

fn leader(acceptors: &[Probe<AcceptorStatus>], sequencers: &[Probe<SequencerStatus>]) -> Option<LeaderView> {
    let up: Vec<&AcceptorStatus> = acceptors.iter().filter_map(|p| p.status.as_ref()).collect();
    let heard = up.iter().filter_map(|s| s.leader.as_ref());
    if let Some(best) = heard.clone().max_by_key(|l| (l.ballot.round, l.ballot.node)) {
        let reported_by_acceptors = heard
            .filter(|l| l.ballot == best.ballot && l.url == best.url)
            .count();
        let (url, ballot) = (best.url.clone(), best.ballot);
        return Some(LeaderView {
            url,
            ballot,
            reported_by_acceptors,
            acceptors_up: up.len(),
        });
    }
    // No acceptor answered with a leader: believe a sequencer that says so.
    let claimed = sequencers
        .iter()
        .filter_map(|p| p.status.as_ref())
        .find(|s| s.role == "leader")?;
    Some(LeaderView {
        url: claimed.advertise_url.clone(),
        ballot: claimed.ballot?,
        reported_by_acceptors: 0,
        acceptors_up: up.len(),
    })
}

fn row<T>(component: &str, probe: &Probe<T>, details: impl Fn(&T) -> String) -> Row {
    let (state, details) = match (&probe.status, &probe.error) {
        (Some(status), _) => ("up".to_owned(), details(status)),
        (None, error) => (
            format!("down ({})", error.as_deref().unwrap_or("no answer")),
            String::new(),
        ),
    };
    [component.to_owned(), probe.url.clone(), state, details]
}

fn acceptor_details(s: &AcceptorStatus) -> String {
    let leader = match &s.leader {
        Some(l) => format!(
            "{} ({}, heard {} ms ago)",
            l.url,
            ballot(Some(l.ballot)),
            l.heard_ago_ms
        ),
        None => "none heard".to_owned(),
    };
    let member = match s.state {
        api::internal::MemberState::Voting => "voting",
        api::internal::MemberState::Blank => "BLANK (not voting: not founded or not rebuilt yet)",
        api::internal::MemberState::Retired => "RETIRED (not voting: replaced after a lost disk)",
    };
    format!(
        "{member}, node {}, promised {}, chosen below {}, compacted below {}, leader {leader}",
        s.node_uuid,
        ballot(Some(s.promised)),
        s.chosen_below,
        s.compacted_below
    )
}

fn leader_row(leader: Option<&LeaderView>, no_acceptors: bool) -> Row {
    match leader {
        Some(l) => [
            "leader".to_owned(),
            l.url.clone(),
            "elected".to_owned(),
            format!(
                "ballot {}, reported by {} of {} acceptors up",
                ballot(Some(l.ballot)),
                l.reported_by_acceptors,
                l.acceptors_up
            ),
        ],
        None if no_acceptors => [
            "leader".into(),
            "-".into(),
            "unknown".into(),
            "no --acceptors given".into(),
        ],
        None => [
            "leader".into(),
            "-".into(),
            "none".into(),
            "no acceptor reports a leader".into(),
        ],
    }
}

fn sequencer_details(s: &SequencerStatus) -> String {
    format!(
        "{}, ballot {}, node {}, chosen below {}, {} slots in flight, {}/{} acceptors reachable",
        s.role,
        ballot(s.ballot),
        s.node_id,
        s.chosen_below,
        s.slots_in_flight,
        s.acceptors_reachable,
        s.acceptors
    )
}

fn learner_details(s: &LearnerStatus) -> String {
    format!(
        "learned below {}, {} subscriptions",
        s.learned_below,
        s.subscriptions.len()
    )
}

fn subscription_row(s: &SubscriptionView) -> Row {
    let mut details = format!(
        "{}, lag {} slots, delivered below {}",
        s.id, s.lag_slots, s.delivered_below
    );
    if let Some(sequences) = &s.sequences {
        details.push_str(&format!(", sequences {}", sequences.join(",")));
    }
    if let Some(since) = &s.failing_since {
        details.push_str(&format!(", failing since {since}"));
    }
    if let Some(reason) = &s.disabled_reason {
        details.push_str(&format!(", disabled: {reason}"));
    }
    [
        "  subscription".to_owned(),
        s.url.clone(),
        s.state.clone(),
        details,
    ]
}

fn ballot(b: Option<Ballot>) -> String {
    match b {
        Some(b) => format!("{}.{}", b.round, b.node),
        None => "none".to_owned(),
    }
}

/// Aligned columns. A `down (...)` state can be long and its row has no
/// details, so it does not widen the STATE column.
fn render_table(rows: &[Row]) -> String {
    let header: Row = ["COMPONENT".into(), "URL".into(), "STATE".into(), "DETAILS".into()];
    let all: Vec<&Row> = std::iter::once(&header).chain(rows).collect();
    let width = |column: usize| all.iter().map(|r| r[column].len()).max().unwrap_or(0);
    let state_width = all
        .iter()
        .filter(|r| !r[3].is_empty())
        .map(|r| r[2].len())
        .max()
        .unwrap_or(0);
    let (component_width, url_width) = (width(0), width(1));
    let lines: Vec<String> = all
        .iter()
        .map(|[component, url, state, details]| {
            let line =
                format!("{component:component_width$}  {url:url_width$}  {state:state_width$}  {details}");
            line.trim_end().to_owned()
        })
        .collect();
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use api::internal::LeaderInfo;

    use super::*;

    fn acceptor(url: &str, leader: Option<(u64, &str)>) -> Probe<AcceptorStatus> {
        let status = AcceptorStatus {
            cluster_id: "c".into(),
            node_uuid: "n".into(),
            state: api::internal::MemberState::Voting,
            membership: None,
            configuration: None,
            promised: Ballot {
                epoch: 0,
                round: 2,
                node: 1,
            },
            leader: leader.map(|(round, url)| LeaderInfo {
                ballot: Ballot {
                    epoch: 0,
                    round,
                    node: 1,
                },
                url: url.into(),
                heard_ago_ms: 5,
            }),
            chosen_below: 10,
            compacted_below: 0,
            log_entries: 10,
        };
        Probe {
            url: url.into(),
            up: true,
            status: Some(status),
            error: None,
        }
    }

    fn down<T>(url: &str) -> Probe<T> {
        Probe {
            url: url.into(),
            up: false,
            status: None,
            error: Some("connection refused".into()),
        }
    }

    #[test]
    fn the_leader_is_the_highest_ballot_acceptors_report() {
        let acceptors = vec![
            acceptor("a1", Some((2, "s1"))),
            acceptor("a2", Some((1, "s2"))),
            acceptor("a3", Some((2, "s1"))),
            down("a4"),
        ];
        let leader = leader(&acceptors, &[]).expect("a leader");
        assert_eq!(leader.url, "s1");
        assert_eq!(leader.reported_by_acceptors, 2);
        assert_eq!(leader.acceptors_up, 3);
    }

    #[test]
    fn down_components_show_their_reason() {
        let status = ClusterStatus {
            acceptors: vec![acceptor("http://a1", None), down("http://a2")],
            leader: None,
            sequencers: vec![down("http://s1")],
            learner: None,
            discovered: None,
        };
        let table = render_human(&status);
        assert!(table.contains("http://a2  down (connection refused)"), "{table}");
        assert!(
            table.contains("sequencer  http://s1  down (connection refused)"),
            "{table}"
        );
        assert!(table.contains("no acceptor reports a leader"), "{table}");
        assert!(table.contains("promised 2.1, chosen below 10"), "{table}");
    }
}
