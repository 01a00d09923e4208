//! The host's table of running actors and its labels, owned by one task and reached through a handle.
//!
//! Loading an actor (fetch, verify, compile) happens outside the task; the table only installs, swaps and
//! removes finished actors, so it always answers at once (heartbeats and inventory never wait on a compile).

use std::collections::{BTreeMap, HashMap};

use lattice_core::subject::Name;
use lattice_core::wire::ActorInfo;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use lattice_core::link::LinkSpec;

use crate::{Actor, LinkError};

use super::supervise::Restart;

/// One actor running on this host.
struct Running {
    actor: Actor,
    /// Cancelled to make the serving task unsubscribe and stop taking invocations.
    stop: CancellationToken,
    info: ActorInfo,
}

enum Command {
    Install { info: ActorInfo, actor: Actor, stop: CancellationToken, done: oneshot::Sender<()> },
    Remove { name: Name, done: oneshot::Sender<bool> },
    Rescale { name: Name, max_concurrency: u32, done: oneshot::Sender<Option<ActorInfo>> },
    Relink { name: Name, links: Vec<LinkSpec>, done: oneshot::Sender<Option<Result<(), LinkError>>> },
    Snapshot { done: oneshot::Sender<(Vec<ActorInfo>, BTreeMap<String, String>)> },
    PutLabel { key: String, value: Option<String>, done: oneshot::Sender<BTreeMap<String, String>> },
    RelinkAll { done: oneshot::Sender<()> },
    KeepServing { name: String, serving: lattice_provider_sdk::remote::Serving, done: oneshot::Sender<()> },
    StopAll { done: oneshot::Sender<()> },
    ClaimProvider { name: String, slot: ProviderSlot, done: oneshot::Sender<Result<(), String>> },
    ReleaseProvider { name: String, done: oneshot::Sender<()> },
    Provider { name: String, done: oneshot::Sender<Option<ProviderSlot>> },
}

/// A provider instance started with `provider.start`: its kind, and the channel to its supervisor.
#[derive(Clone)]
pub(crate) struct ProviderSlot {
    pub(crate) kind: String,
    pub(crate) restart: mpsc::Sender<Restart>,
}

/// Handle to the actor table task. Cheap to clone; the task ends when every handle is dropped.
#[derive(Clone)]
pub(crate) struct Table {
    tx: mpsc::Sender<Command>,
}

/// The table task is gone: the host is shutting down.
#[derive(Debug, thiserror::Error)]
#[error("the host is shutting down")]
pub(crate) struct TableClosed;

impl Table {
    pub(crate) fn spawn(labels: BTreeMap<String, String>) -> Self {
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(run(rx, labels));
        Self { tx }
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, TableClosed> {
        let (done, answer) = oneshot::channel();
        self.tx.send(make(done)).await.map_err(|_| TableClosed)?;
        answer.await.map_err(|_| TableClosed)
    }

    /// Installs an actor, replacing (and stopping) one of the same name.
    pub(crate) async fn install(
        &self,
        info: ActorInfo,
        actor: Actor,
        stop: CancellationToken,
    ) -> Result<(), TableClosed> {
        self.ask(|done| Command::Install { info, actor, stop, done }).await
    }

    /// Stops and removes an actor; false if none ran under that name.
    pub(crate) async fn remove(&self, name: Name) -> Result<bool, TableClosed> {
        self.ask(|done| Command::Remove { name, done }).await
    }

    /// Changes an actor's max concurrency; `None` if it does not run here.
    pub(crate) async fn rescale(&self, name: Name, max_concurrency: u32) -> Result<Option<ActorInfo>, TableClosed> {
        self.ask(|done| Command::Rescale { name, max_concurrency, done }).await
    }

    /// Replaces the links of a running actor; `None` if it does not run here.
    pub(crate) async fn relink(
        &self,
        name: Name,
        links: Vec<LinkSpec>,
    ) -> Result<Option<Result<(), LinkError>>, TableClosed> {
        self.ask(|done| Command::Relink { name, links, done }).await
    }

    /// What runs, and the labels.
    pub(crate) async fn snapshot(&self) -> Result<(Vec<ActorInfo>, BTreeMap<String, String>), TableClosed> {
        self.ask(|done| Command::Snapshot { done }).await
    }

    /// Sets (`Some`) or deletes (`None`) a label; returns all labels.
    pub(crate) async fn put_label(
        &self,
        key: String,
        value: Option<String>,
    ) -> Result<BTreeMap<String, String>, TableClosed> {
        self.ask(|done| Command::PutLabel { key, value, done }).await
    }

    /// Re-resolves every running actor's links (after a provider instance was replaced).
    pub(crate) async fn relink_all(&self) -> Result<(), TableClosed> {
        self.ask(|done| Command::RelinkAll { done }).await
    }

    /// Keeps a provider instance served to the lattice until the host stops (replacing one of that name).
    pub(crate) async fn keep_serving(
        &self,
        name: String,
        serving: lattice_provider_sdk::remote::Serving,
    ) -> Result<(), TableClosed> {
        self.ask(|done| Command::KeepServing { name, serving, done }).await
    }

    /// Stops every actor's serving task (they stop taking invocations; in-flight ones finish).
    pub(crate) async fn stop_all(&self) -> Result<(), TableClosed> {
        self.ask(|done| Command::StopAll { done }).await
    }

    /// Claims provider name `name` for a new instance, atomically: `Err(kind)` of the instance that already
    /// holds it. The claim lasts until the host stops, or until [`Table::release_provider`] if the instance
    /// could not be built.
    pub(crate) async fn claim_provider(
        &self,
        name: String,
        slot: ProviderSlot,
    ) -> Result<Result<(), String>, TableClosed> {
        self.ask(|done| Command::ClaimProvider { name, slot, done }).await
    }

    /// Gives up a claim whose instance could not be started.
    pub(crate) async fn release_provider(&self, name: String) -> Result<(), TableClosed> {
        self.ask(|done| Command::ReleaseProvider { name, done }).await
    }

    /// The instance started under `name`, if any.
    pub(crate) async fn provider(&self, name: String) -> Result<Option<ProviderSlot>, TableClosed> {
        self.ask(|done| Command::Provider { name, done }).await
    }
}

async fn run(mut rx: mpsc::Receiver<Command>, mut labels: BTreeMap<String, String>) {
    let mut actors: HashMap<Name, Running> = HashMap::new();
    let mut served: HashMap<String, lattice_provider_sdk::remote::Serving> = HashMap::new();
    let mut providers: HashMap<String, ProviderSlot> = HashMap::new();
    while let Some(command) = rx.recv().await {
        match command {
            Command::Install { info, actor, stop, done } => {
                if let Some(old) = actors.insert(info.name.clone(), Running { actor, stop, info }) {
                    old.stop.cancel();
                }
                let _ = done.send(());
            }
            Command::Remove { name, done } => {
                let removed = actors.remove(&name);
                if let Some(running) = &removed {
                    running.stop.cancel();
                }
                let _ = done.send(removed.is_some());
            }
            Command::Rescale { name, max_concurrency, done } => {
                let info = actors.get_mut(&name).map(|running| {
                    running.actor.set_max_concurrency(max_concurrency);
                    running.info.max_concurrency = max_concurrency;
                    running.info.clone()
                });
                let _ = done.send(info);
            }
            Command::Relink { name, links, done } => {
                let result = actors.get_mut(&name).map(|running| {
                    running.actor.set_links(&links)?;
                    running.info.links = links.iter().map(ToString::to_string).collect();
                    Ok(())
                });
                let _ = done.send(result);
            }
            Command::Snapshot { done } => {
                let mut infos: Vec<_> = actors.values().map(|r| r.info.clone()).collect();
                infos.sort_by(|a, b| a.name.cmp(&b.name));
                let _ = done.send((infos, labels.clone()));
            }
            Command::PutLabel { key, value, done } => {
                match value {
                    Some(value) => labels.insert(key, value),
                    None => labels.remove(&key),
                };
                let _ = done.send(labels.clone());
            }
            Command::RelinkAll { done } => {
                for running in actors.values() {
                    let links = running.actor.links();
                    if let Err(error) = running.actor.set_links(links.specs()) {
                        tracing::warn!(actor = %running.info.name, %error, "cannot re-resolve links");
                    }
                }
                let _ = done.send(());
            }
            Command::KeepServing { name, serving, done } => {
                served.insert(name, serving);
                let _ = done.send(());
            }
            Command::StopAll { done } => {
                for running in actors.values() {
                    running.stop.cancel();
                }
                served.clear();
                let _ = done.send(());
            }
            Command::ClaimProvider { name, slot, done } => {
                let claimed = match providers.get(&name) {
                    Some(existing) => Err(existing.kind.clone()),
                    None => {
                        providers.insert(name, slot);
                        Ok(())
                    }
                };
                let _ = done.send(claimed);
            }
            Command::ReleaseProvider { name, done } => {
                providers.remove(&name);
                let _ = done.send(());
            }
            Command::Provider { name, done } => {
                let _ = done.send(providers.get(&name).cloned());
            }
        }
    }
    // Every handle is gone: stop serving whatever is left.
    for running in actors.values() {
        running.stop.cancel();
    }
}
