//! The actor that owns the proposer: it feeds it inputs, runs its timers
//! and carries out its effects over HTTP.
//!
//! One task owns `paxos_core::Proposer`. Client requests and peer answers
//! arrive on channels; after each burst of inputs the driver calls `flush`,
//! so every request that arrived while earlier slots were in flight shares
//! the next slot, and each acceptor gets one HTTP request carrying every
//! slot ready at that moment.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use api::internal::{AcceptRequest, ChosenPush, CommitRequest, PrepareRequest, Proposal, TransitionRequest};
use paxos_core::{
    Accept, AcceptReply, AcceptorId, AcceptorStatus, Allocation, Ballot, CommitReply, Configuration, Effect,
    IdRequest, PrepareReply, Proposer, ProposerConfig, Refusal, RequestId, Role, Slot, Snapshot, Transition,
    Value,
};
use rand::{Rng, SeedableRng};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{info, warn, Instrument, Span};

use crate::peers::{AcceptorTable, Peers};

/// Calls to one acceptor that may be outstanding at once. Past it, a new
/// message is dropped like a lost one: timers resend what matters, and a
/// stopped acceptor cannot pile up unbounded requests.
const ACCEPTOR_CALLS_MAX: usize = 64;
/// Pushes to learners outstanding at once; past it, pushes are skipped
/// (learners also pull).
const LEARNER_PUSHES_MAX: usize = 16;
/// An accept serialized once, shared by every acceptor it goes to.
#[derive(Clone)]
struct EncodedAccept {
    ballot: Ballot,
    slots: Arc<[Slot]>,
    body: axum::body::Bytes,
}

/// Inputs handled before the driver flushes and runs its timers.
const BURST_EVENTS_MAX: usize = 4096;
/// Calls counted per acceptor index: the most seats a configuration has.
const SEATS_MAX: usize = api::internal::SEATS_MAX;
/// A transition is sent to each new seat this often, this many times at
/// most; a seat still behind afterwards is moved by the members task.
const TRANSITION_RETRY: Duration = Duration::from_millis(250);
const TRANSITION_ATTEMPTS_MAX: usize = 40;

/// A client's request as the HTTP layer hands it over.
pub struct ClientRequest {
    pub sequence: paxos_core::SequenceName,
    pub count: u64,
    pub key: Option<paxos_core::IdempotencyKey>,
    pub reply: oneshot::Sender<Result<Allocation, Refusal>>,
    pub span: Span,
}

/// Answers from peers, fed back to the proposer.
pub enum PeerEvent {
    Prepared {
        from: AcceptorId,
        ballot: Ballot,
        reply: PrepareReply,
    },
    Accepted {
        from: AcceptorId,
        ballot: Ballot,
        slots: Arc<[Slot]>,
        reply: AcceptReply,
    },
    Committed {
        from: AcceptorId,
        ballot: Ballot,
        reply: CommitReply,
    },
    /// Polled under the acceptor table of `epoch`.
    Status {
        from: AcceptorId,
        epoch: u64,
        status: AcceptorStatus,
    },
    /// An acceptor reports a configuration later than ours.
    Configuration { configuration: Configuration },
    /// A seat took the transition into `epoch` that this driver sent.
    Moved { epoch: u64 },
    /// The keys a leadership asked for ([`Proposer::keys_wanted`]), read
    /// back from the acceptors; None if no acceptor could give them.
    KeysRead {
        epoch: u64,
        below: Slot,
        parts: Option<Vec<(Slot, paxos_core::KeyedPart)>>,
    },
}

/// Asked of the driver by the rest of the sequencer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// This sequencer is stopping: open no slot, hold new requests, never
    /// campaign again (`Proposer::resign`; see `crate::handover`).
    Resign,
    /// A resigning leader named this follower its successor: campaign now,
    /// without waiting for an election timeout.
    CampaignNow,
}

/// An operator's request for a new configuration, for the leader.
pub struct ReconfigureRequest {
    pub configuration: Configuration,
    pub reply: oneshot::Sender<Result<Configuration, Refusal>>,
}

/// What the HTTP layer may read of the proposer.
#[derive(Clone, Debug)]
pub struct DriverView {
    /// The core's role, with its ballot when it has one.
    pub role: Role,
    pub epoch: u64,
    pub chosen_below: u64,
    pub slots_in_flight: usize,
    /// Stopping: asked to resign (see [`Command::Resign`]).
    pub resigned: bool,
    /// Resigned with nothing left in a slot (`Proposer::is_drained`).
    pub drained: bool,
}

impl DriverView {
    /// A proposer that has not started: a follower of epoch 0.
    fn starting() -> Self {
        DriverView {
            role: Role::Follower,
            epoch: 0,
            chosen_below: 0,
            slots_in_flight: 0,
            resigned: false,
            drained: false,
        }
    }

    pub fn is_leader(&self) -> bool {
        matches!(self.role, Role::Leader { .. })
    }

    pub fn is_candidate(&self) -> bool {
        matches!(self.role, Role::Candidate { .. })
    }

    /// The ballot a candidate campaigns with or a leader leads under.
    pub fn ballot(&self) -> Option<Ballot> {
        match self.role {
            Role::Follower => None,
            Role::Candidate { ballot } | Role::Leader { ballot } => Some(ballot),
        }
    }

    /// The role as `GET /v1/status` names it.
    pub fn role_name(&self) -> &'static str {
        match self.role {
            Role::Follower => "follower",
            Role::Candidate { .. } => "candidate",
            Role::Leader { .. } => "leader",
        }
    }
}

pub struct Driver {
    proposer: Proposer,
    /// Limits and timings; each epoch's proposer gets these.
    base_config: ProposerConfig,
    peers: Arc<Peers>,
    advertise_url: String,
    loopback: mpsc::UnboundedSender<PeerEvent>,
    waiting: HashMap<RequestId, (oneshot::Sender<Result<Allocation, Refusal>>, Span)>,
    reconfiguring: HashMap<RequestId, ReconfigureRequest>,
    /// Seats that took our transition into the current epoch.
    moved: usize,
    /// The list-against-membership error was logged (once per epoch).
    warned_list: bool,
    next_request: u64,
    acceptor_calls: Arc<Vec<AtomicUsize>>,
    learner_pushes: Arc<AtomicUsize>,
    view: watch::Sender<DriverView>,
    started: Instant,
    rng: rand::rngs::StdRng,
    /// The span of the first client request of the current burst: the parent
    /// of the accept calls that burst causes.
    burst_span: Option<Span>,
    /// The keys being read back for the leadership (see `crate::keys`):
    /// the chosen point they end at.
    reading_keys: Option<Slot>,
}

/// Channels into a running driver.
#[derive(Clone)]
pub struct DriverHandle {
    pub requests: mpsc::Sender<ClientRequest>,
    pub reconfigure: mpsc::Sender<ReconfigureRequest>,
    pub commands: mpsc::Sender<Command>,
    pub peer_events: mpsc::UnboundedSender<PeerEvent>,
    pub view: watch::Receiver<DriverView>,
}

/// How many client requests share a slot: the clients answered in one
/// driver step over the slots chosen in it (a leader answers a slot's
/// clients in the step that sees it chosen, in slot order).
fn record_batching(answered: usize, chosen: usize) {
    if answered == 0 || chosen == 0 {
        return;
    }
    let per_slot = answered as f64 / chosen as f64;
    let histogram = metrics::histogram!("paxid_sequencer_requests_per_slot");
    for _ in 0..chosen {
        histogram.record(per_slot);
    }
}

impl Driver {
    /// Starts the driver task; `request_queue_max` bounds the client channel.
    pub fn spawn(
        config: paxos_core::ProposerConfig,
        peers: Arc<Peers>,
        advertise_url: String,
        request_queue_max: usize,
    ) -> DriverHandle {
        let (requests_tx, requests_rx) = mpsc::channel(request_queue_max);
        let (reconfigure_tx, reconfigure_rx) = mpsc::channel(4);
        let (commands_tx, commands_rx) = mpsc::channel(4);
        let (peer_tx, peer_rx) = mpsc::unbounded_channel();
        let (view_tx, view_rx) = watch::channel(DriverView::starting());
        let mut rng = rand::rngs::StdRng::from_os_rng();
        let proposer = Proposer::new(config.clone(), 0, rng.random());
        let driver = Driver {
            proposer,
            base_config: config,
            peers,
            advertise_url,
            loopback: peer_tx.clone(),
            waiting: HashMap::new(),
            reconfiguring: HashMap::new(),
            moved: 0,
            warned_list: false,
            next_request: 0,
            acceptor_calls: Arc::new((0..SEATS_MAX).map(|_| AtomicUsize::new(0)).collect()),
            learner_pushes: Arc::new(AtomicUsize::new(0)),
            view: view_tx,
            started: Instant::now(),
            rng,
            burst_span: None,
            reading_keys: None,
        };
        tokio::spawn(driver.run(requests_rx, reconfigure_rx, commands_rx, peer_rx));
        DriverHandle {
            requests: requests_tx,
            reconfigure: reconfigure_tx,
            commands: commands_tx,
            peer_events: peer_tx,
            view: view_rx,
        }
    }

    async fn run(
        mut self,
        mut requests: mpsc::Receiver<ClientRequest>,
        mut reconfigure: mpsc::Receiver<ReconfigureRequest>,
        mut commands: mpsc::Receiver<Command>,
        mut peers: mpsc::UnboundedReceiver<PeerEvent>,
    ) {
        let mut next_tick = tokio::time::Instant::now();
        loop {
            tokio::select! {
                Some(request) = requests.recv() => self.on_request(request),
                Some(request) = reconfigure.recv() => self.on_reconfigure(request),
                Some(command) = commands.recv() => self.on_command(command),
                Some(event) = peers.recv() => self.on_peer_event(event),
                _ = tokio::time::sleep_until(next_tick) => {}
            }
            self.drain_burst(&mut requests, &mut peers);
            if tokio::time::Instant::now() >= next_tick {
                let (now, random) = (self.now_ms(), self.rng.random());
                self.proposer.tick(now, random);
            }
            let wait = Duration::from_millis(self.proposer.poll_timeout_ms(self.now_ms()));
            next_tick = tokio::time::Instant::now() + wait;
            self.proposer.flush(self.now_ms());
            self.execute();
            self.read_keys_if_wanted();
            self.publish_view();
            self.burst_span = None;
        }
    }

    fn drain_burst(
        &mut self,
        requests: &mut mpsc::Receiver<ClientRequest>,
        peers: &mut mpsc::UnboundedReceiver<PeerEvent>,
    ) {
        for _ in 0..BURST_EVENTS_MAX {
            match peers.try_recv() {
                Ok(event) => self.on_peer_event(event),
                Err(_) => match requests.try_recv() {
                    Ok(request) => self.on_request(request),
                    Err(_) => break,
                },
            }
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn on_request(&mut self, request: ClientRequest) {
        self.next_request += 1;
        let id = RequestId(self.next_request);
        if self.burst_span.is_none() {
            self.burst_span = Some(request.span.clone());
        }
        self.waiting.insert(id, (request.reply, request.span));
        let now = self.now_ms();
        self.proposer.handle_request(
            now,
            IdRequest {
                id,
                sequence: request.sequence,
                count: request.count,
                key: request.key,
            },
        );
    }

    /// Starts reading back the keys this leadership lacks, once per
    /// chosen point; the answer comes back as [`PeerEvent::KeysRead`].
    fn read_keys_if_wanted(&mut self) {
        let Some(wanted) = self.proposer.keys_wanted() else {
            return;
        };
        if self.reading_keys == Some(wanted.below) {
            return;
        }
        self.reading_keys = Some(wanted.below);
        let (peers, events, epoch) = (self.peers.clone(), self.loopback.clone(), self.base_config.epoch);
        tokio::spawn(async move {
            let parts = crate::keys::read_back(&peers, wanted).await;
            if parts.is_none() {
                tokio::time::sleep(crate::keys::RETRY_AFTER_FAILURE).await;
            }
            let _ = events.send(PeerEvent::KeysRead {
                epoch,
                below: wanted.below,
                parts,
            });
        });
    }

    fn on_command(&mut self, command: Command) {
        let now = self.now_ms();
        match command {
            Command::Resign => {
                info!(
                    leader = self.proposer.is_leader(),
                    "resigning: no new slot, requests held until a successor leads"
                );
                self.proposer.resign(now);
            }
            Command::CampaignNow => {
                info!("named successor by the resigning leader: campaigning now");
                self.proposer.campaign_now(now);
            }
        }
    }

    fn on_reconfigure(&mut self, request: ReconfigureRequest) {
        self.next_request += 1;
        let id = RequestId(self.next_request);
        let configuration = request.configuration.clone();
        self.reconfiguring.insert(id, request);
        self.proposer.handle_reconfigure(self.now_ms(), id, configuration);
    }

    /// The epoch a peer event belongs to, when it tells: answers to an
    /// earlier epoch's proposer are dropped with it.
    fn epoch_of(event: &PeerEvent) -> Option<u64> {
        match event {
            PeerEvent::Prepared { ballot, .. }
            | PeerEvent::Accepted { ballot, .. }
            | PeerEvent::Committed { ballot, .. } => Some(ballot.epoch),
            PeerEvent::Status { epoch, .. }
            | PeerEvent::Moved { epoch }
            | PeerEvent::KeysRead { epoch, .. } => Some(*epoch),
            PeerEvent::Configuration { .. } => None,
        }
    }

    fn on_peer_event(&mut self, event: PeerEvent) {
        let now = self.now_ms();
        let epoch = self.base_config.epoch;
        if Self::epoch_of(&event).is_some_and(|e| e != epoch) {
            return;
        }
        match event {
            PeerEvent::Prepared { from, ballot, reply } => {
                self.proposer.handle_prepare_reply(now, from, ballot, reply);
                self.check_list_against_membership();
            }
            PeerEvent::Accepted {
                from,
                ballot,
                slots,
                reply,
            } => self
                .proposer
                .handle_accept_reply(now, from, ballot, &slots, reply),
            PeerEvent::Committed { from, ballot, reply } => {
                self.proposer.handle_commit_reply(now, from, ballot, Ok(reply))
            }
            PeerEvent::Status { from, status, .. } => self.proposer.handle_status(now, from, status),
            PeerEvent::Configuration { configuration } if configuration.epoch > epoch => {
                info!(
                    epoch = configuration.epoch,
                    "an acceptor moved to a later configuration; following it"
                );
                self.switch(configuration, Snapshot::default());
            }
            PeerEvent::Configuration { .. } => {}
            PeerEvent::KeysRead { below, parts, .. } => {
                // A failed read is tried again at the next step, if still wanted.
                self.reading_keys = None;
                if let Some(parts) = parts {
                    self.proposer.load_keys(below, parts);
                }
            }
            PeerEvent::Moved { .. } => {
                // We ended the last epoch: once a majority of the new seats
                // moved, nobody can lead there yet, so campaign at once.
                self.moved += 1;
                if self.moved == paxos_core::quorum(self.base_config.acceptors) {
                    self.proposer.campaign_now(now);
                }
            }
        }
    }

    /// Says once, loudly, when the acceptors reached name more voters than
    /// this sequencer addresses: its `--acceptors` is not the cluster's (a
    /// subset, or members a change removed), and it cannot lead with it.
    fn check_list_against_membership(&mut self) {
        let voters = self.proposer.membership().voters().count();
        if voters > self.base_config.acceptors && !self.warned_list {
            self.warned_list = true;
            tracing::error!(
                voters,
                addressed = self.base_config.acceptors,
                epoch = self.base_config.epoch,
                "the acceptors name more voting members than this sequencer addresses: its --acceptors \
                 is not the cluster's configuration (a subset, or removed members); it cannot lead. \
                 Give it the acceptors of `paxid acceptors list`"
            );
        }
    }

    /// Goes on in `configuration` with a new proposer that knows
    /// `known_chosen`. Clients the old one still held get a retryable
    /// refusal: it can no longer get anything chosen.
    fn switch(&mut self, configuration: Configuration, known_chosen: Snapshot) {
        self.peers.set_acceptors(AcceptorTable::of(&configuration));
        self.base_config.epoch = configuration.epoch;
        self.base_config.acceptors = configuration.seats.len();
        self.moved = 0;
        self.warned_list = false;
        self.reading_keys = None;
        let (now, random) = (self.now_ms(), self.rng.random());
        let resigned = self.proposer.is_resigned();
        self.proposer = Proposer::resume(self.base_config.clone(), known_chosen, now, random);
        if resigned {
            // Stopping still: the next epoch's proposer must not lead either.
            self.proposer.resign(now);
        }
        for request in self.waiting.keys().copied().collect::<Vec<_>>() {
            self.reply(request, Err(Refusal::Reconfiguring));
        }
        for (_, request) in self.reconfiguring.drain() {
            let _ = request.reply.send(Err(Refusal::Reconfiguring));
        }
        metrics::gauge!("paxid_sequencer_epoch").set(configuration.epoch as f64);
    }

    /// Moves every seat of the new configuration into it; seats that miss
    /// every attempt are moved later by the members task.
    fn send_transitions(&self, transition: &Transition, tail: &Accept) {
        let body = Arc::new(TransitionRequest::from_core(transition, Some(tail)));
        let epoch = transition.configuration.epoch;
        for seat in &transition.configuration.seats {
            let (peers, body, url) = (self.peers.clone(), body.clone(), seat.address.clone());
            let loopback = self.loopback.clone();
            tokio::spawn(async move {
                for _ in 0..TRANSITION_ATTEMPTS_MAX {
                    match peers.transition(&url, &body).await {
                        Ok(_) => {
                            let _ = loopback.send(PeerEvent::Moved { epoch });
                            return info!(acceptor = %url, "acceptor moved to the new configuration");
                        }
                        // Moved already (by us or another sequencer): done.
                        Err(crate::peers::PeerError::Status { status: 409, .. }) => return,
                        Err(error) => tracing::debug!(acceptor = %url, "transition failed: {error}"),
                    }
                    tokio::time::sleep(TRANSITION_RETRY).await;
                }
                warn!(acceptor = %url, "transition not taken; the members task will retry");
            });
        }
    }

    fn execute(&mut self) {
        // Chosen slots go to learners tagged with the epoch they were chosen
        // in, even when a stop sign among them moves us to the next one.
        let epoch = self.base_config.epoch;
        // The acceptors of the proposer that emitted these effects.
        let acceptors = self.base_config.acceptors;
        let mut chosen = Vec::new();
        let mut answered = 0usize;
        for effect in self.proposer.drain_effects() {
            match effect {
                Effect::Prepare { to, prepare } => self.send_prepare(to, prepare),
                Effect::Accept { to, accept } => self.send_accept(to, self.encode_accept(&accept)),
                Effect::AcceptAll { accept } => {
                    // Encoded once; every acceptor gets the same bytes.
                    let body = self.encode_accept(&accept);
                    for to in (0..acceptors).map(AcceptorId) {
                        self.send_accept(to, body.clone());
                    }
                }
                Effect::Commit { to, commit } => self.send_commit(to, commit),
                Effect::Reply { request, result } => {
                    answered += usize::from(result.is_ok());
                    self.reply(request, result)
                }
                Effect::Chosen { slot, value } => chosen.push((slot, value)),
                Effect::BecameLeader { ballot } => {
                    info!(%ballot, "became leader");
                    metrics::counter!("paxid_sequencer_leader_changes_total").increment(1);
                }
                Effect::SteppedDown { ballot, seen } => {
                    warn!(%ballot, seen = ?seen, "stepped down");
                }
                Effect::Reconfigured {
                    configuration,
                    snapshot,
                    tail,
                    request,
                } => self.reconfigured(configuration, snapshot, &tail, request),
                Effect::Superseded { epoch } => {
                    info!(
                        epoch,
                        "a later configuration exists; waiting to learn it from the acceptors"
                    );
                }
            }
        }
        record_batching(answered, chosen.len());
        self.push_to_learners(epoch, chosen);
    }

    /// The stop sign was chosen: move the seats, go on in the new epoch,
    /// and answer the operator who asked for it.
    fn reconfigured(
        &mut self,
        configuration: Configuration,
        snapshot: Snapshot,
        tail: &Accept,
        request: Option<RequestId>,
    ) {
        info!(
            epoch = configuration.epoch,
            seats = configuration.seats.len(),
            below = snapshot.below.0,
            "stop sign chosen; moving to the new configuration"
        );
        metrics::counter!("paxid_sequencer_reconfigurations_total").increment(1);
        let transition = Transition {
            configuration: configuration.clone(),
            snapshot: snapshot.clone(),
        };
        self.send_transitions(&transition, tail);
        let asked = request.and_then(|id| self.reconfiguring.remove(&id));
        self.switch(configuration.clone(), snapshot);
        if let Some(asked) = asked {
            let _ = asked.reply.send(Ok(configuration));
        }
    }

    fn reply(&mut self, request: RequestId, result: Result<Allocation, Refusal>) {
        if let Some(asked) = self.reconfiguring.remove(&request) {
            let _ = asked.reply.send(result.map(|_| asked.configuration));
            return;
        }
        let Some((reply, span)) = self.waiting.remove(&request) else {
            return;
        };
        match &result {
            Ok(allocation) => {
                metrics::counter!("paxid_sequencer_ids_issued_total").increment(allocation.count);
                span.in_scope(|| {
                    tracing::debug!(first = allocation.first, count = allocation.count, "chosen")
                });
            }
            Err(refusal) => {
                metrics::counter!("paxid_sequencer_refusals_total", "reason" => format!("{refusal:?}"))
                    .increment(1)
            }
        }
        // The client may have gone away; its IDs are then a gap.
        let _ = reply.send(result);
    }

    fn send_prepare(&self, to: AcceptorId, prepare: paxos_core::Prepare) {
        metrics::counter!("paxid_sequencer_prepares_total").increment(1);
        let body = PrepareRequest::from_core(&prepare);
        let ballot = prepare.ballot;
        self.call(
            to,
            tracing::info_span!("prepare", acceptor = to.0, %ballot),
            move |peers, loopback| async move {
                match peers.prepare(to, &body).await.map(|r| r.to_core()) {
                    Ok(Ok(reply)) => {
                        let _ = loopback.send(PeerEvent::Prepared {
                            from: to,
                            ballot,
                            reply,
                        });
                    }
                    Ok(Err(bad)) => warn!(acceptor = to.0, "unreadable promise: {bad}"),
                    Err(error) => tracing::debug!(acceptor = to.0, "prepare failed: {error}"),
                }
            },
        );
    }

    fn encode_accept(&self, accept: &paxos_core::Accept) -> EncodedAccept {
        let request = AcceptRequest::from_core(accept, Some(self.advertise_url.clone()));
        EncodedAccept {
            ballot: accept.ballot,
            slots: accept.entries.iter().map(|(slot, _)| *slot).collect(),
            body: serde_json::to_vec(&request)
                .expect("an accept request always serializes")
                .into(),
        }
    }

    fn send_accept(&self, to: AcceptorId, accept: EncodedAccept) {
        let EncodedAccept { ballot, slots, body } = accept;
        let parent = self.burst_span.clone().unwrap_or_else(Span::current);
        let span =
            tracing::info_span!(parent: &parent, "accept", acceptor = to.0, %ballot, slots = slots.len());
        self.call(to, span, move |peers, loopback| async move {
            let started = Instant::now();
            match peers.accept(to, body).await {
                Ok(response) => {
                    metrics::histogram!("paxid_sequencer_accept_rtt_seconds")
                        .record(started.elapsed().as_secs_f64());
                    let reply = response.to_core();
                    let _ = loopback.send(PeerEvent::Accepted {
                        from: to,
                        ballot,
                        slots,
                        reply,
                    });
                }
                Err(error) => tracing::debug!(acceptor = to.0, "accept failed: {error}"),
            }
        });
    }

    fn send_commit(&self, to: AcceptorId, commit: paxos_core::Commit) {
        let ballot = commit.ballot;
        let body = CommitRequest::from_core(&commit, self.advertise_url.clone());
        self.call(to, Span::none(), move |peers, loopback| async move {
            match peers.commit(to, &body).await {
                Ok(response) => {
                    let _ = loopback.send(PeerEvent::Committed {
                        from: to,
                        ballot,
                        reply: response.to_core(),
                    });
                }
                Err(error) => tracing::debug!(acceptor = to.0, "commit failed: {error}"),
            }
        });
    }

    /// Spawns one call to an acceptor unless too many are outstanding.
    fn call<F, Fut>(&self, to: AcceptorId, span: Span, make: F)
    where
        F: FnOnce(Arc<Peers>, mpsc::UnboundedSender<PeerEvent>) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let counter = &self.acceptor_calls[to.0];
        if counter.load(Ordering::Relaxed) >= ACCEPTOR_CALLS_MAX {
            metrics::counter!("paxid_sequencer_calls_dropped_total").increment(1);
            return;
        }
        counter.fetch_add(1, Ordering::Relaxed);
        let calls = self.acceptor_calls.clone();
        let future = make(self.peers.clone(), self.loopback.clone());
        tokio::spawn(
            async move {
                future.await;
                calls[to.0].fetch_sub(1, Ordering::Relaxed);
            }
            .instrument(span),
        );
    }

    fn push_to_learners(&self, epoch: u64, chosen: Vec<(Slot, Value)>) {
        if chosen.is_empty() || self.peers.learner_count() == 0 {
            return;
        }
        if self.learner_pushes.load(Ordering::Relaxed) >= LEARNER_PUSHES_MAX {
            return;
        }
        let push = Arc::new(ChosenPush {
            slots: chosen.iter().map(|(s, v)| Proposal::from_core(*s, v)).collect(),
            epoch,
        });
        for learner in 0..self.peers.learner_count() {
            let (peers, push, pushes) = (self.peers.clone(), push.clone(), self.learner_pushes.clone());
            pushes.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                if let Err(error) = peers.push_chosen(learner, &push).await {
                    tracing::debug!("push to learner failed: {error}");
                }
                pushes.fetch_sub(1, Ordering::Relaxed);
            });
        }
    }

    fn publish_view(&self) {
        let view = DriverView {
            role: self.proposer.role(),
            epoch: self.base_config.epoch,
            chosen_below: self.proposer.chosen_below().0,
            slots_in_flight: self.proposer.slots_in_flight(),
            resigned: self.proposer.is_resigned(),
            drained: self.proposer.is_drained(),
        };
        metrics::gauge!("paxid_sequencer_slots_in_flight").set(view.slots_in_flight as f64);
        metrics::gauge!("paxid_sequencer_is_leader").set(if view.is_leader() { 1.0 } else { 0.0 });
        self.view.send_if_modified(|current| {
            let changed = current.role != view.role || current.epoch != view.epoch;
            let moved = current.chosen_below != view.chosen_below
                || current.slots_in_flight != view.slots_in_flight
                || (current.resigned, current.drained) != (view.resigned, view.drained);
            if changed || moved {
                *current = view.clone();
            }
            changed || moved
        });
    }
}
