//! Links as lattice state: the JetStream key-value bucket `lattice_<l>` holds every actor's links
//! (`links.<actor>.<interface>.<hex name>` -> `LinkRecord`). Every host watches it and re-links the actors it
//! runs on every change, so `lattice link put` takes effect on the next invocation everywhere, without a
//! restart; invocations already running finish on the links they started with.
//!
//! A host that trusts operators applies only records signed by one of them ([`LinkGuard`]); a refused record
//! removes whatever link its key held (fail closed), with a warning and a `control.refused` event.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

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
    let config = kv::Config {
        bucket: subjects.state_bucket(),
        description: "lattice state: links".into(),
        history: 5,
        ..Default::default()
    };
    super::kv_bucket(js, config, "the state bucket").await
}

/// The links of `actor` in `table`, in a stable order.
pub(crate) fn links_of(table: &LinkTable, actor: &Name) -> Vec<LinkSpec> {
    table.get(actor).map(|links| links.values().cloned().collect()).unwrap_or_default()
}

/// Watches the bucket until `stop`; publishes the whole table on `out` after each change and re-links the
/// affected actor in `actors`.
pub(crate) async fn watch_links(
    store: kv::Store,
    subjects: Arc<Subjects>,
    actors: Table,
    out: watch::Sender<Arc<LinkTable>>,
    guard: LinkGuard,
    stop: CancellationToken,
) {
    let mut watcher = match store.watch_with_history(subjects.links_filter()).await {
        Ok(watcher) => watcher,
        Err(error) => {
            tracing::error!(%error, "cannot watch links: link changes will not reach this host");
            return;
        }
    };
    let mut table = LinkTable::new();
    loop {
        let entry = tokio::select! {
            () = stop.cancelled() => break,
            entry = watcher.next() => entry,
        };
        let entry = match entry {
            Some(Ok(entry)) => entry,
            Some(Err(error)) => {
                tracing::warn!(%error, "link watch error");
                continue;
            }
            None => break,
        };
        let actor = match entry.operation {
            kv::Operation::Put => match wire::decode::<LinkRecord>(&entry.value) {
                Ok(record) => match record.link.parse::<LinkSpec>() {
                    Ok(spec) if !guard.admit(&subjects, &entry.key, &record, &spec).await => {
                        match forget_key(&mut table, &entry.key) {
                            Some(actor) => actor,
                            None => continue,
                        }
                    }
                    Ok(spec) => {
                        table.entry(record.actor.clone()).or_default().insert(entry.key.clone(), spec);
                        record.actor
                    }
                    Err(error) => {
                        tracing::warn!(key = %entry.key, %error, "ignoring invalid link in the state bucket");
                        continue;
                    }
                },
                Err(error) => {
                    tracing::warn!(key = %entry.key, %error, "ignoring undecodable link record");
                    continue;
                }
            },
            kv::Operation::Delete | kv::Operation::Purge => {
                let Some(actor) =
                    table.iter().find(|(_, links)| links.contains_key(&entry.key)).map(|(a, _)| a.clone())
                else {
                    continue;
                };
                if let Some(links) = table.get_mut(&actor) {
                    links.remove(&entry.key);
                }
                actor
            }
        };
        let links = links_of(&table, &actor);
        out.send_replace(Arc::new(table.clone()));
        match actors.relink(actor.clone(), links).await {
            Ok(Some(Err(error))) => tracing::warn!(%actor, %error, "cannot apply changed links"),
            Ok(Some(Ok(()))) => tracing::info!(%actor, "links changed"),
            Ok(None) => {}
            Err(_) => break,
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
pub(crate) struct LinkGuard {
    policy: OperatorPolicy,
    events: Events,
}

impl LinkGuard {
    pub(crate) fn new(policy: OperatorPolicy, events: Events) -> Self {
        Self { policy, events }
    }

    /// Whether the record stored under `key` may be applied. A refusal is logged and published as a
    /// `control.refused` event.
    async fn admit(&self, subjects: &Subjects, key: &str, record: &LinkRecord, spec: &LinkSpec) -> bool {
        if !self.policy.enforced() {
            return true;
        }
        let operator = record.signature.as_ref().map(|s| s.operator.to_string());
        let verdict = self.policy.verify_link(subjects.lattice().as_str(), record).map(drop).and_then(|()| {
            // A signed record copied under another key would make a link that `link del` cannot remove.
            let expected = subjects.link_key(&record.actor, spec.interface.as_str(), &spec.name);
            if expected == key {
                Ok(())
            } else {
                Err(Refusal::Malformed(format!("record for `{expected}` stored under another key")))
            }
        });
        let Err(refusal) = verdict else { return true };
        let reason = refusal.to_string();
        tracing::warn!(
            %key,
            actor = %record.actor,
            operator = operator.as_deref().unwrap_or("none"),
            %reason,
            "link record refused: not applied, and the link this key held is removed"
        );
        self.events
            .publish(EventData::ControlRefused { subject: key.to_owned(), verb: "link".into(), reason, operator })
            .await;
        false
    }
}
