//! The subscription registry: validation, persistence, and one delivery
//! task per subscription.
//!
//! Each subscription's record sits behind its own mutex, and every change
//! to it is written to the store while that mutex is held, so the record on
//! disk and in memory never disagree and the API and the delivery task
//! cannot overwrite each other's changes. Replay and enable bump the
//! record's `epoch`; an attempt started under an older epoch cannot move the
//! cursor afterwards.

// `ApiError` is the service-wide error type and is 152 bytes; these
// functions run once per operator request, where the size costs nothing.
// TODO(service): box the problem inside `ApiError` and drop this allow.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use api::learner::{CreateSubscription, PingResult, SubscriptionCreated, SubscriptionView};
use paxos_core::SequenceName;
use rand::RngCore;
use reqwest::Url;
use service::ApiError;
use tokio::sync::Notify;

use crate::delivery::{self, DeliveryContext};
use crate::store::{DeliveryState, Store, StoreError, SubscriptionRecord};
use crate::{signing, ssrf, SERVICE_NAME};
use service::fatal;

/// Most sequence names in one subscription filter.
pub const SEQUENCES_MAX: usize = 100;
/// Longest accepted webhook URL, in bytes.
pub const URL_BYTES_MAX: usize = 2048;

/// Every subscription of this learner.
pub struct Subscriptions {
    context: Arc<DeliveryContext>,
    subscriptions_max: usize,
    handles: Mutex<BTreeMap<String, Arc<Handle>>>,
    tasks: Mutex<Vec<tokio::task::AbortHandle>>,
}

/// One subscription: its record and how to wake its delivery task.
pub struct Handle {
    record: Mutex<SubscriptionRecord>,
    /// Wakes the delivery task: the record changed under it.
    pub(crate) wake: Notify,
    deleted: AtomicBool,
}

impl Subscriptions {
    /// Loads every stored subscription and starts its delivery task.
    pub fn start(
        context: Arc<DeliveryContext>,
        subscriptions_max: usize,
    ) -> Result<Subscriptions, StoreError> {
        let records = context.store.subscriptions()?;
        let subscriptions = Subscriptions {
            context,
            subscriptions_max,
            handles: Mutex::new(BTreeMap::new()),
            tasks: Mutex::new(Vec::new()),
        };
        for record in records {
            subscriptions.insert_and_spawn(record);
        }
        Ok(subscriptions)
    }

    /// `POST /v1/subscriptions`: validates, persists (synced), starts delivery.
    pub fn create(&self, request: CreateSubscription) -> Result<SubscriptionCreated, ApiError> {
        let url = validate_url(&request.url, self.context.allow_private)?;
        let sequences = request.sequences.as_deref().map(validate_sequences).transpose()?;
        let mut handles = self.handles.lock().expect("subscriptions lock poisoned");
        if handles.len() >= self.subscriptions_max {
            return Err(ApiError::conflict(format!(
                "this learner already holds {} subscriptions, its maximum (--subscriptions-max)",
                handles.len()
            )));
        }
        if let Some(from_slot) = request.from_slot {
            self.check_retained(from_slot)?;
        }
        let secret = signing::generate_secret();
        let record = SubscriptionRecord {
            id: random_id("sub"),
            url: url.to_string(),
            sequences,
            secret: secret.clone(),
            state: DeliveryState::Active,
            failing_since_ms: None,
            disabled_reason: None,
            delivered_below: request
                .from_slot
                .unwrap_or_else(|| self.context.learning.learned_below()),
            pending: None,
            epoch: 0,
        };
        self.persist(&record);
        tracing::info!(subscription = %record.id, url = %record.url, from_slot = record.delivered_below, "subscription created");
        let id = record.id.clone();
        let handle = Arc::new(Handle::new(record));
        handles.insert(id.clone(), handle.clone());
        drop(handles);
        self.spawn(handle);
        Ok(SubscriptionCreated { id, secret })
    }

    pub fn list(&self) -> Vec<SubscriptionView> {
        let learned_below = self.context.learning.learned_below();
        let handles = self.handles.lock().expect("subscriptions lock poisoned");
        handles
            .values()
            .map(|handle| view(&handle.snapshot(), learned_below))
            .collect()
    }

    pub fn get(&self, id: &str) -> Result<SubscriptionView, ApiError> {
        let handle = self.handle(id)?;
        Ok(view(&handle.snapshot(), self.context.learning.learned_below()))
    }

    /// `DELETE`: the record goes, and its task stops at its next step.
    pub fn delete(&self, id: &str) -> Result<(), ApiError> {
        let handle = self
            .handles
            .lock()
            .expect("subscriptions lock poisoned")
            .remove(id);
        let handle = handle.ok_or_else(|| no_such_subscription(id))?;
        let _record = handle.record.lock().expect("subscription lock poisoned");
        handle.deleted.store(true, Ordering::SeqCst);
        if let Err(error) = self.context.store.delete_subscription(id) {
            fatal(
                SERVICE_NAME,
                &format!("deleting subscription {id} failed: {error}"),
            );
        }
        handle.wake.notify_one();
        metrics::gauge!(crate::metric::DELIVERY_LAG_SLOTS, "subscription" => id.to_owned()).set(0.0);
        tracing::info!(subscription = %id, "subscription deleted");
        Ok(())
    }

    /// Re-enables a disabled subscription; it resumes at its cursor.
    pub fn enable(&self, id: &str) -> Result<SubscriptionView, ApiError> {
        let handle = self.handle(id)?;
        handle.change(&self.context.store, |record| {
            if record.state == DeliveryState::Disabled {
                record.state = DeliveryState::Active;
                record.failing_since_ms = None;
                record.disabled_reason = None;
                record.epoch += 1;
            }
        });
        tracing::info!(subscription = %id, "subscription enabled");
        self.get(id)
    }

    /// Sends one `ping` webhook to the subscription's URL now and says what
    /// became of it; changes nothing (see [`delivery::ping`]).
    pub async fn ping(&self, id: &str) -> Result<PingResult, ApiError> {
        let record = self.handle(id)?.snapshot();
        Ok(delivery::ping(&self.context, &record).await)
    }

    /// Moves the cursor back to `from_slot`; the next message starts there.
    pub fn replay(&self, id: &str, from_slot: u64) -> Result<SubscriptionView, ApiError> {
        // Held until the cursor moved, so that pruning cannot pass it meanwhile.
        let handles = self.handles.lock().expect("subscriptions lock poisoned");
        let handle = handles.get(id).cloned().ok_or_else(|| no_such_subscription(id))?;
        self.check_retained(from_slot)?;
        let delivered_below = handle.snapshot().delivered_below;
        if from_slot > delivered_below {
            return Err(ApiError::unprocessable(format!(
                "replay moves the cursor back: from_slot {from_slot} is above delivered_below {delivered_below}"
            )));
        }
        handle.change(&self.context.store, |record| {
            record.delivered_below = from_slot;
            record.pending = None;
            record.epoch += 1;
        });
        drop(handles);
        tracing::info!(subscription = %id, from_slot, "subscription replays");
        self.get(id)
    }

    /// Deletes learned slots more than `retain` below the slowest cursor
    /// (every subscription counts, disabled ones too) and the learned
    /// point; returns the log's new start. Holds the subscriptions lock, so
    /// that no replay or creation moves a cursor below it meanwhile.
    pub fn prune_log(&self, retain: u64) -> Result<u64, StoreError> {
        let handles = self.handles.lock().expect("subscriptions lock poisoned");
        let slowest = handles
            .values()
            .map(|handle| handle.snapshot().delivered_below)
            .chain([self.context.learning.learned_below()])
            .min()
            .unwrap_or(0);
        self.context.store.prune_below(slowest.saturating_sub(retain))
    }

    /// Refuses a cursor below what the learned log still holds.
    fn check_retained(&self, from_slot: u64) -> Result<(), ApiError> {
        let start = self
            .context
            .store
            .log_start()
            .map_err(|e| ApiError::internal(format!("reading the learned log: {e}")))?;
        if from_slot < start {
            return Err(ApiError::unprocessable(format!(
                "from_slot {from_slot} was pruned: the learned log starts at slot {start} (--retain-slots)"
            ))
            .with_extension("field", "from_slot".into()));
        }
        Ok(())
    }

    /// Refreshes the per-subscription lag gauges.
    pub fn update_gauges(&self) {
        let learned_below = self.context.learning.learned_below();
        let handles = self.handles.lock().expect("subscriptions lock poisoned");
        for handle in handles.values() {
            let record = handle.snapshot();
            let lag = learned_below.saturating_sub(record.delivered_below);
            metrics::gauge!(crate::metric::DELIVERY_LAG_SLOTS, "subscription" => record.id).set(lag as f64);
        }
    }

    /// Stops every delivery task (at shutdown).
    pub fn stop(&self) {
        for task in self.tasks.lock().expect("tasks lock poisoned").drain(..) {
            task.abort();
        }
    }

    fn handle(&self, id: &str) -> Result<Arc<Handle>, ApiError> {
        let handles = self.handles.lock().expect("subscriptions lock poisoned");
        handles.get(id).cloned().ok_or_else(|| no_such_subscription(id))
    }

    fn insert_and_spawn(&self, record: SubscriptionRecord) {
        let handle = Arc::new(Handle::new(record));
        let id = handle.snapshot().id;
        self.handles
            .lock()
            .expect("subscriptions lock poisoned")
            .insert(id, handle.clone());
        self.spawn(handle);
    }

    fn spawn(&self, handle: Arc<Handle>) {
        let task = tokio::spawn(delivery::deliver(handle, self.context.clone()));
        let mut tasks = self.tasks.lock().expect("tasks lock poisoned");
        tasks.retain(|task| !task.is_finished());
        tasks.push(task.abort_handle());
    }

    fn persist(&self, record: &SubscriptionRecord) {
        if let Err(error) = self.context.store.put_subscription(record, true) {
            fatal(
                SERVICE_NAME,
                &format!("writing subscription {} failed: {error}", record.id),
            );
        }
    }
}

impl Handle {
    fn new(record: SubscriptionRecord) -> Handle {
        Handle {
            record: Mutex::new(record),
            wake: Notify::new(),
            deleted: AtomicBool::new(false),
        }
    }

    /// A copy of the current record.
    pub fn snapshot(&self) -> SubscriptionRecord {
        self.record.lock().expect("subscription lock poisoned").clone()
    }

    pub fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::SeqCst)
    }

    /// Applies `change` if the record is still at `epoch` and not deleted;
    /// persists it (synced if `sync`) before memory changes. False if the
    /// record moved on, in which case nothing changed.
    pub(crate) fn update(
        &self,
        store: &Store,
        epoch: u64,
        sync: bool,
        change: impl FnOnce(&mut SubscriptionRecord),
    ) -> bool {
        let mut record = self.record.lock().expect("subscription lock poisoned");
        if self.is_deleted() || record.epoch != epoch {
            return false;
        }
        let mut next = record.clone();
        change(&mut next);
        if let Err(error) = store.put_subscription(&next, sync) {
            fatal(
                SERVICE_NAME,
                &format!("writing subscription {} failed: {error}", next.id),
            );
        }
        *record = next;
        true
    }

    /// An operator's change: applied whatever the epoch, synced, and the
    /// delivery task is woken to act on it.
    fn change(&self, store: &Store, change: impl FnOnce(&mut SubscriptionRecord)) {
        let mut record = self.record.lock().expect("subscription lock poisoned");
        let mut next = record.clone();
        change(&mut next);
        if next != *record {
            if let Err(error) = store.put_subscription(&next, true) {
                fatal(
                    SERVICE_NAME,
                    &format!("writing subscription {} failed: {error}", next.id),
                );
            }
            *record = next;
        }
        drop(record);
        self.wake.notify_one();
    }
}

/// The public view of a record: no secret.
pub fn view(record: &SubscriptionRecord, learned_below: u64) -> SubscriptionView {
    let state = match record.state {
        DeliveryState::Active => "active",
        DeliveryState::Failing => "failing",
        DeliveryState::Disabled => "disabled",
    };
    SubscriptionView {
        id: record.id.clone(),
        url: record.url.clone(),
        sequences: record.sequences.clone(),
        state: state.to_owned(),
        failing_since: record.failing_since_ms.map(delivery::rfc3339),
        disabled_reason: record.disabled_reason.clone(),
        delivered_below: record.delivered_below,
        lag_slots: learned_below.saturating_sub(record.delivered_below),
    }
}

/// An http(s) URL with a host, no credentials, and (unless allowed) no
/// private or loopback IP literal.
pub fn validate_url(raw: &str, allow_private: bool) -> Result<Url, ApiError> {
    if raw.len() > URL_BYTES_MAX {
        return Err(ApiError::unprocessable(format!(
            "url is longer than {URL_BYTES_MAX} bytes"
        )));
    }
    let url = Url::parse(raw).map_err(|e| ApiError::unprocessable(format!("url is not a valid URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        let scheme = url.scheme();
        return Err(ApiError::unprocessable(format!(
            "url must be http or https, not {scheme:?}"
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(ApiError::unprocessable("url has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        // They would be shown by GET and logged; a path token is the usual way.
        return Err(ApiError::unprocessable(
            "url must not contain credentials (user:password@)",
        ));
    }
    if !allow_private {
        ssrf::check_url(&url).map_err(|reason| ApiError::unprocessable(format!("url refused: {reason}")))?;
    }
    Ok(url)
}

/// 1..=100 valid sequence names; duplicates are folded.
pub fn validate_sequences(names: &[String]) -> Result<Vec<String>, ApiError> {
    if names.is_empty() {
        return Err(ApiError::unprocessable(
            "sequences is empty, so nothing would be delivered; omit it to receive every sequence",
        ));
    }
    if names.len() > SEQUENCES_MAX {
        return Err(ApiError::unprocessable(format!(
            "sequences lists more than {SEQUENCES_MAX} names"
        )));
    }
    let mut out: Vec<String> = Vec::with_capacity(names.len());
    for name in names {
        SequenceName::parse(name).map_err(|e| ApiError::unprocessable(format!("sequences: {e}")))?;
        if !out.contains(name) {
            out.push(name.clone());
        }
    }
    Ok(out)
}

/// `prefix_` and 24 random hex digits: subscription ids (`sub`) and ping
/// `webhook-id`s (`ping`).
pub(crate) fn random_id(prefix: &str) -> String {
    let mut bytes = [0u8; 12];
    rand::rng().fill_bytes(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}_{hex}")
}

fn no_such_subscription(id: &str) -> ApiError {
    ApiError::not_found(format!("no subscription {id:?}"))
}
