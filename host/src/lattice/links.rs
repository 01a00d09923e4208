//! Links as lattice state: the JetStream key-value bucket `lattice_<l>` holds every actor's links
//! (`links.<actor>.<interface>.<hex name>` -> `LinkRecord`). Every host watches it and re-links the actors it
//! runs on every change, so `lattice link put` takes effect on the next invocation everywhere, without a
//! restart; invocations already running finish on the links they started with.
//!
//! A host that trusts operators applies only records signed by one of them ([`LinkGuard`]); a refused record,
//! and (whatever the policy) one that cannot be decoded, removes whatever link its key held (fail closed), with
//! a warning and a `control.refused` event.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_nats::Client;
use async_nats::jetstream::{self, kv};
use futures::StreamExt;
use lattice_core::control_auth::{OperatorPolicy, Refusal};
use lattice_core::link::LinkSpec;
use lattice_core::subject::{Name, Subjects};
use lattice_core::wire::{self, EventData, LinkRecord};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::HostError;
use super::events::Events;
use super::table::Table;

/// Every actor's links as last seen in the bucket, keyed by bucket key so deletes find their entry.
pub(crate) type LinkTable = HashMap<Name, BTreeMap<String, LinkSpec>>;

/// Opens (creating if needed) the lattice's state bucket.
pub(crate) async fn state_bucket(js: &jetstream::Context, subjects: &Subjects) -> Result<kv::Store, HostError> {
    lattice_client::state::state_bucket(js, subjects)
        .await
        .map_err(|message| HostError::Setup { what: "the state bucket", message })
}

/// The links of `actor` in `table`, in a stable order.
pub(crate) fn links_of(table: &LinkTable, actor: &Name) -> Vec<LinkSpec> {
    table.get(actor).map(|links| links.values().cloned().collect()).unwrap_or_default()
}

/// First delay before the link watch is retried after it failed or ended; doubles up to [`WATCH_MAX_BACKOFF`].
const WATCH_BACKOFF: Duration = Duration::from_millis(100);
/// Longest delay between two attempts to watch the links.
const WATCH_MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How often the watch checks whether the client reconnected (and so must replay the bucket).
const RECONNECT_CHECK: Duration = Duration::from_millis(500);

/// Why one watch of the bucket ended.
enum WatchEnd {
    /// The host is stopping (or the table task is gone).
    Stopped,
    /// The client reconnected: changes made while it was away may have been missed.
    Reconnected,
    /// The watch stream failed or ended.
    Ended,
}

/// Watches the bucket until `stop`; publishes the whole table on `out` after each change and re-links the
/// affected actor in `actors`.
pub(crate) async fn watch_links(
    store: kv::Store,
    subjects: Arc<Subjects>,
    client: Client,
    actors: Table,
    out: watch::Sender<Arc<LinkTable>>,
    guard: LinkGuard,
    stop: CancellationToken,
) {
    let filter = subjects.links_filter();
    let state = Applied { table: LinkTable::new(), subjects, actors, out, guard };
    watch_keys(&store, filter, "links", &client, &stop, state).await;
}

/// What follows a set of keys of the state bucket.
pub(crate) trait KeyFollower: Send {
    /// Applies one entry; false stops the watch (the host is stopping).
    fn apply(&mut self, entry: kv::Entry) -> impl Future<Output = bool> + Send;
}

impl KeyFollower for Applied {
    async fn apply(&mut self, entry: kv::Entry) -> bool {
        let Some(actor) = self.apply_entry(&entry).await else { return true };
        let links = links_of(&self.table, &actor);
        self.out.send_replace(Arc::new(self.table.clone()));
        match self.actors.relink(actor.clone(), links).await {
            Ok(Some(Err(error))) => tracing::warn!(%actor, %error, "cannot apply changed links"),
            Ok(Some(Ok(()))) => tracing::info!(%actor, "links changed"),
            Ok(None) => {}
            Err(_) => return false,
        }
        true
    }
}

/// Follows the keys of `store` matching `filter` until `stop`, handing every entry to `apply` (which returns
/// false to stop).
///
/// A watch that cannot start, fails or ends is retried with exponential backoff, and one is restarted after the
/// client reconnects to NATS. Each watch replays the bucket's current entries (deleted keys come back as delete
/// markers), so a change made while the host could not watch is applied when it can again.
pub(crate) async fn watch_keys(
    store: &kv::Store,
    filter: &str,
    what: &str,
    client: &Client,
    stop: &CancellationToken,
    mut follower: impl KeyFollower,
) {
    let mut backoff = WATCH_BACKOFF;
    loop {
        let connects = client.statistics().connects.load(Ordering::Relaxed);
        match store.watch_with_history(filter).await {
            Ok(watcher) => {
                let reconnected = || client.statistics().connects.load(Ordering::Relaxed) != connects;
                match follow(watcher, stop, reconnected, what, &mut follower).await {
                    WatchEnd::Stopped => return,
                    WatchEnd::Reconnected => {
                        tracing::info!("reconnected to NATS: watching {what} again");
                        backoff = WATCH_BACKOFF;
                        continue;
                    }
                    WatchEnd::Ended => tracing::warn!(retry_in = ?backoff, "the watch of {what} ended: watching again"),
                }
            }
            Err(error) => tracing::warn!(%error, retry_in = ?backoff, "cannot watch {what}: retrying"),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(WATCH_MAX_BACKOFF);
    }
}

/// Hands the entries of one watch to `apply` until it ends; `reconnected` says whether the client reconnected
/// since the watch started.
async fn follow(
    mut watcher: kv::Watch,
    stop: &CancellationToken,
    reconnected: impl Fn() -> bool,
    what: &str,
    follower: &mut impl KeyFollower,
) -> WatchEnd {
    let mut check = tokio::time::interval(RECONNECT_CHECK);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let entry = tokio::select! {
            () = stop.cancelled() => return WatchEnd::Stopped,
            _ = check.tick() => {
                if reconnected() {
                    return WatchEnd::Reconnected;
                }
                continue;
            }
            entry = watcher.next() => entry,
        };
        match entry {
            Some(Ok(entry)) => {
                if !follower.apply(entry).await {
                    return WatchEnd::Stopped;
                }
            }
            Some(Err(error)) => {
                tracing::warn!(%error, "watch error ({what})");
                return WatchEnd::Ended;
            }
            None => return WatchEnd::Ended,
        }
    }
}

/// What the watch has applied so far, and where changes go.
struct Applied {
    /// Every actor's links as last applied.
    table: LinkTable,
    subjects: Arc<Subjects>,
    /// The running actors to re-link.
    actors: Table,
    /// Where the whole table is published after each change.
    out: watch::Sender<Arc<LinkTable>>,
    guard: LinkGuard,
}

impl Applied {
    /// Applies one bucket entry to the table; returns the actor whose links it changed, if any. A record the
    /// guard refuses, or one that cannot be decoded, removes the link its key held.
    async fn apply_entry(&mut self, entry: &kv::Entry) -> Option<Name> {
        match entry.operation {
            kv::Operation::Put => {
                // A record that cannot be read says nothing about the link its key held: drop it (fail closed).
                let record = match wire::decode::<LinkRecord>(&entry.value) {
                    Ok(record) => record,
                    Err(error) => {
                        let reason = format!("undecodable link record: {error}");
                        self.guard.refused(&entry.key, None, "link", reason, None).await;
                        return forget_key(&mut self.table, &entry.key);
                    }
                };
                let spec = match record.link.parse::<LinkSpec>() {
                    Ok(spec) => spec,
                    Err(error) => {
                        let reason = format!("invalid link in its record: {error}");
                        self.guard.refused(&entry.key, Some(&record.actor), "link", reason, None).await;
                        return forget_key(&mut self.table, &entry.key);
                    }
                };
                let expected = self.subjects.link_key(&record.actor, spec.interface.as_str(), &spec.name);
                if !self.guard.admit(&self.subjects, &entry.key, &record, &expected, "link").await {
                    return forget_key(&mut self.table, &entry.key);
                }
                let links = self.table.entry(record.actor.clone()).or_default();
                // A replayed entry that changes nothing re-links nobody.
                (links.insert(entry.key.clone(), spec.clone()).as_ref() != Some(&spec)).then_some(record.actor)
            }
            kv::Operation::Delete | kv::Operation::Purge => forget_key(&mut self.table, &entry.key),
        }
    }
}

/// Removes the link stored under `key` from `table`; returns its actor, if the key held one.
fn forget_key(table: &mut LinkTable, key: &str) -> Option<Name> {
    let actor = table.iter().find(|(_, links)| links.contains_key(key)).map(|(a, _)| a.clone())?;
    if let Some(links) = table.get_mut(&actor) {
        links.remove(key);
    }
    Some(actor)
}

/// Which link records a host applies: all of them when it trusts no operator; otherwise only those signed by a
/// trusted operator and stored under the key their actor, interface and name give.
#[derive(Clone)]
pub(crate) struct LinkGuard {
    policy: OperatorPolicy,
    events: Events,
}

impl LinkGuard {
    pub(crate) fn new(policy: OperatorPolicy, events: Events) -> Self {
        Self { policy, events }
    }

    /// Whether the record (a link, or a route: `verb`) stored under `key`, which its content says belongs under
    /// `expected`, may be applied. A refusal is logged and published as a `control.refused` event.
    pub(crate) async fn admit(
        &self,
        subjects: &Subjects,
        key: &str,
        record: &LinkRecord,
        expected: &str,
        verb: &str,
    ) -> bool {
        if !self.policy.enforced() {
            return true;
        }
        let operator = record.signature.as_ref().map(|s| s.operator.to_string());
        let verdict = self.policy.verify_link(subjects.lattice().as_str(), record).map(drop).and_then(|()| {
            // A signed record copied under another key would make one that `del` cannot remove.
            if expected == key {
                Ok(())
            } else {
                Err(Refusal::Malformed(format!("record for `{expected}` stored under another key")))
            }
        });
        let Err(refusal) = verdict else { return true };
        self.refused(key, Some(&record.actor), verb, refusal.to_string(), operator).await;
        false
    }

    /// Reports a record refused (by the policy, or because it cannot be read): a warning and a
    /// `control.refused` event.
    pub(crate) async fn refused(
        &self,
        key: &str,
        actor: Option<&Name>,
        verb: &str,
        reason: String,
        operator: Option<String>,
    ) {
        tracing::warn!(
            %key,
            actor = actor.map(Name::as_str).unwrap_or("unknown"),
            operator = operator.as_deref().unwrap_or("none"),
            %reason,
            verb,
            "record refused: not applied, and what this key held is removed"
        );
        self.events
            .publish(EventData::ControlRefused { subject: key.to_owned(), verb: verb.into(), reason, operator })
            .await;
    }
}
