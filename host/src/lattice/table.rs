//! The host's table of running actors and its labels, owned by one task and reached through a handle.
//!
//! Loading an actor (fetch, verify, compile) happens outside the task; the table only installs, swaps and
//! removes finished actors, so it always answers at once (heartbeats and inventory never wait on a compile).

use std::collections::{BTreeMap, HashMap};

use lattice_core::subject::Name;
use lattice_core::wire::ActorInfo;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use lattice_core::link::LinkSpec;

use crate::{Actor, LinkError};

use super::supervise::Restart;

/// One actor running on this host.
struct Running {
    actor: Actor,
    /// The max concurrency asked for (start or scale); the actor runs with its share of the pool (`shares`).
    cap: u32,
    /// Cancelled to make the serving task unsubscribe and stop taking invocations.
    stop: CancellationToken,
    /// The serving task follows this: a replacement is swapped in here, keeping the subscription.
    serving: watch::Sender<Actor>,
    info: ActorInfo,
}

enum Command {
    Install {
        info: ActorInfo,
        actor: Actor,
        stop: CancellationToken,
        serving: watch::Sender<Actor>,
        done: oneshot::Sender<Result<(), PoolFull>>,
    },
    Replace {
        info: ActorInfo,
        actor: Actor,
        done: oneshot::Sender<bool>,
    },
    Remove {
        name: Name,
        done: oneshot::Sender<bool>,
    },
    Rescale {
        name: Name,
        max_concurrency: u32,
        done: oneshot::Sender<Option<ActorInfo>>,
    },
    Relink {
        name: Name,
        links: Vec<LinkSpec>,
        done: oneshot::Sender<Option<Result<(), LinkError>>>,
    },
    Snapshot {
        done: oneshot::Sender<(Vec<ActorInfo>, BTreeMap<String, String>)>,
    },
    PutLabel {
        key: String,
        value: Option<String>,
        done: oneshot::Sender<BTreeMap<String, String>>,
    },
    RelinkAll {
        done: oneshot::Sender<()>,
    },
    KeepServing {
        name: String,
        serving: lattice_provider_sdk::remote::Serving,
        done: oneshot::Sender<()>,
    },
    StopAll {
        done: oneshot::Sender<Vec<Actor>>,
    },
    ClaimProvider {
        name: String,
        slot: ProviderSlot,
        done: oneshot::Sender<Result<(), String>>,
    },
    ReleaseProvider {
        name: String,
        done: oneshot::Sender<()>,
    },
    Provider {
        name: String,
        done: oneshot::Sender<Option<ProviderSlot>>,
    },
    StopProvider {
        name: String,
        done: oneshot::Sender<Option<ProviderSlot>>,
    },
    ProviderOwners {
        done: oneshot::Sender<BTreeMap<String, lattice_core::wire::Owner>>,
    },
}

/// A provider instance started with `provider.start`: its kind, and the channel to its supervisor.
#[derive(Clone)]
pub(crate) struct ProviderSlot {
    pub(crate) kind: String,
    pub(crate) restart: mpsc::Sender<Restart>,
    /// Cancelled to end its supervisor (`provider.stop`).
    pub(crate) stop: CancellationToken,
    /// The app that placed it, if any.
    pub(crate) owner: Option<lattice_core::wire::Owner>,
}

/// Handle to the actor table task. Cheap to clone; the task ends when every handle is dropped.
#[derive(Clone)]
pub(crate) struct Table {
    tx: mpsc::Sender<Command>,
    /// The actors running here, changed in place by the task with every install, replace and remove: the HTTP
    /// ingress reads it per request without a round trip to the task.
    local: watch::Receiver<HashMap<Name, Actor>>,
}

/// Every slot of the host's instance pool already belongs to a running actor: one more could get none.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "host's instance pool of {pool} (--max-instances) is fully shared: {actors} actors run and each needs at least \
     one instance; stop an actor or raise --max-instances"
)]
pub(crate) struct PoolFull {
    pub(crate) pool: u32,
    pub(crate) actors: usize,
}

/// The table task is gone: the host is shutting down.
#[derive(Debug, thiserror::Error)]
#[error("the host is shutting down")]
pub(crate) struct TableClosed;

impl Table {
    /// The table task; `pool` is the runtime's instance pool, shared among the actors (see [`shares`]).
    pub(crate) fn spawn(labels: BTreeMap<String, String>, pool: u32) -> Self {
        let (tx, rx) = mpsc::channel(64);
        let (local_tx, local) = watch::channel(HashMap::new());
        tokio::spawn(run(rx, labels, pool, local_tx));
        Self { tx, local }
    }

    /// The running actor `name`, if it runs here.
    pub(crate) fn local(&self, name: &Name) -> Option<Actor> {
        self.local.borrow().get(name).cloned()
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, TableClosed> {
        let (done, answer) = oneshot::channel();
        self.tx.send(make(done)).await.map_err(|_| TableClosed)?;
        answer.await.map_err(|_| TableClosed)
    }

    /// Installs an actor served by a new serving task (`stop`, `serving`), replacing (and stopping) one of the
    /// same name; refused when the pool has no slot left to give a new actor.
    pub(crate) async fn install(
        &self,
        info: ActorInfo,
        actor: Actor,
        stop: CancellationToken,
        serving: watch::Sender<Actor>,
    ) -> Result<Result<(), PoolFull>, TableClosed> {
        self.ask(|done| Command::Install { info, actor, stop, serving, done }).await
    }

    /// Swaps `actor` in for the running actor of the same name, in its serving task (same subscription):
    /// false when none runs here (then [`Table::install`] it).
    pub(crate) async fn replace(&self, info: ActorInfo, actor: Actor) -> Result<bool, TableClosed> {
        self.ask(|done| Command::Replace { info, actor, done }).await
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

    /// Stops every actor's serving task (they stop taking invocations; in-flight ones finish) and returns the
    /// actors, so the caller can stop their subscriptions and wait for their invocations.
    pub(crate) async fn stop_all(&self) -> Result<Vec<Actor>, TableClosed> {
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

    /// Forgets the instance started under `name` and stops serving it to the lattice; its slot, if there was
    /// one (the caller ends its supervisor and unregisters it).
    pub(crate) async fn stop_provider(&self, name: String) -> Result<Option<ProviderSlot>, TableClosed> {
        self.ask(|done| Command::StopProvider { name, done }).await
    }

    /// The provider instances apps placed here, by name.
    pub(crate) async fn provider_owners(&self) -> Result<BTreeMap<String, lattice_core::wire::Owner>, TableClosed> {
        self.ask(|done| Command::ProviderOwners { done }).await
    }

    /// The instance started under `name`, if any.
    pub(crate) async fn provider(&self, name: String) -> Result<Option<ProviderSlot>, TableClosed> {
        self.ask(|done| Command::Provider { name, done }).await
    }
}

/// Each actor's share of an instance pool of `pool` slots, from the caps asked for: the caps themselves when
/// they fit; otherwise every actor gets one slot plus a part of the remaining slots in proportion to its cap
/// beyond one. Shares never exceed the caps and never sum above the pool (given at most `pool` actors), so
/// a saturated actor can never hold the slots another actor's share needs.
pub(crate) fn shares(caps: &[u32], pool: u32) -> Vec<u32> {
    let total: u64 = caps.iter().map(|&c| u64::from(c)).sum();
    if total <= u64::from(pool) {
        return caps.to_vec();
    }
    let n = caps.len() as u64;
    let spare = u64::from(pool).saturating_sub(n);
    let beyond_one = total - n;
    caps.iter()
        .map(|&cap| {
            let extra = u64::from(cap.saturating_sub(1)) * spare / beyond_one.max(1);
            u32::try_from(1 + extra).unwrap_or(cap).min(cap.max(1))
        })
        .collect()
}

/// The sum of the running actors' caps, kept as they change, so the O(actors) [`rebalance`] runs only when the
/// caps do not all fit the pool, or just stopped not fitting. While they fit, every actor runs at its own cap:
/// a loaded actor starts at it, and a rescale sets it.
struct Caps {
    pool: u32,
    total: u64,
    oversubscribed: bool,
}

impl Caps {
    /// Records a cap leaving (`old`) and one arriving (`new`), then rebalances if needed; whether it did.
    fn change(&mut self, actors: &HashMap<Name, Running>, old: Option<u32>, new: Option<u32>) -> bool {
        self.total = self.total - old.map_or(0, u64::from) + new.map_or(0, u64::from);
        if self.total <= u64::from(self.pool) && !self.oversubscribed {
            return false;
        }
        rebalance(actors, self.pool);
        self.oversubscribed = self.total > u64::from(self.pool);
        true
    }
}

/// Gives every running actor its share of the pool (takes effect as running invocations finish).
fn rebalance(actors: &HashMap<Name, Running>, pool: u32) {
    let running: Vec<&Running> = actors.values().collect();
    let caps: Vec<u32> = running.iter().map(|r| r.cap).collect();
    for (running, share) in running.iter().zip(shares(&caps, pool)) {
        if running.actor.max_concurrency() != share {
            tracing::info!(
                actor = %running.info.name,
                cap = running.cap,
                share,
                pool,
                "instance pool oversubscribed: actor runs with its share"
            );
            running.actor.set_max_concurrency(share);
        }
    }
}

async fn run(
    mut rx: mpsc::Receiver<Command>,
    mut labels: BTreeMap<String, String>,
    pool: u32,
    local: watch::Sender<HashMap<Name, Actor>>,
) {
    let mut actors: HashMap<Name, Running> = HashMap::new();
    let mut served: HashMap<String, lattice_provider_sdk::remote::Serving> = HashMap::new();
    let mut providers: HashMap<String, ProviderSlot> = HashMap::new();
    let mut caps = Caps { pool, total: 0, oversubscribed: false };
    while let Some(command) = rx.recv().await {
        match command {
            Command::Install { info, actor, stop, serving, done } => {
                if !actors.contains_key(&info.name) && actors.len() >= pool as usize {
                    let _ = done.send(Err(PoolFull { pool, actors: actors.len() }));
                    continue;
                }
                let cap = actor.max_concurrency();
                local.send_modify(|local| {
                    local.insert(info.name.clone(), actor.clone());
                });
                let old = actors.insert(info.name.clone(), Running { actor, cap, stop, serving, info });
                if let Some(old) = &old {
                    old.stop.cancel();
                }
                caps.change(&actors, old.map(|o| o.cap), Some(cap));
                let _ = done.send(Ok(()));
            }
            Command::Replace { info, actor, done } => {
                let replaced = actors.get_mut(&info.name).map(|running| {
                    let old_cap = std::mem::replace(&mut running.cap, actor.max_concurrency());
                    running.actor = actor.clone();
                    local.send_modify(|local| {
                        local.insert(running.info.name.clone(), actor.clone());
                    });
                    running.info = info;
                    // The old version's messaging subscriptions end now; its admitted calls finish.
                    let old = running.serving.send_replace(actor);
                    tokio::spawn(async move { old.close_subscriptions().await });
                    (old_cap, running.cap)
                });
                if let Some((old_cap, cap)) = replaced {
                    caps.change(&actors, Some(old_cap), Some(cap));
                }
                let _ = done.send(replaced.is_some());
            }
            Command::Remove { name, done } => {
                let removed = actors.remove(&name);
                local.send_if_modified(|local| local.remove(&name).is_some());
                if let Some(running) = &removed {
                    running.stop.cancel();
                    // Its messaging subscriptions end now, not when the last clone of the actor is dropped
                    // (the serving task keeps one while it leaves the queue group): a stopped actor takes no
                    // more messages. Invocations already started finish.
                    let actor = running.actor.clone();
                    tokio::spawn(async move { actor.close_subscriptions().await });
                    caps.change(&actors, Some(running.cap), None);
                }
                let _ = done.send(removed.is_some());
            }
            Command::Rescale { name, max_concurrency, done } => {
                let changed = actors.get_mut(&name).map(|running| {
                    let old_cap = std::mem::replace(&mut running.cap, max_concurrency.max(1));
                    running.info.max_concurrency = max_concurrency;
                    (old_cap, running.cap, running.info.clone())
                });
                let info = changed.map(|(old_cap, cap, info)| {
                    // Unless the pool is oversubscribed (then it runs with its share), it runs at its own cap.
                    if !caps.change(&actors, Some(old_cap), Some(cap))
                        && let Some(running) = actors.get(&name)
                    {
                        running.actor.set_max_concurrency(cap);
                    }
                    info
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
                let _ = done.send(actors.values().map(|running| running.actor.clone()).collect());
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
            Command::ProviderOwners { done } => {
                let owners =
                    providers.iter().filter_map(|(name, slot)| Some((name.clone(), slot.owner.clone()?))).collect();
                let _ = done.send(owners);
            }
            Command::StopProvider { name, done } => {
                let slot = providers.remove(&name);
                if slot.is_some() {
                    served.remove(&name);
                }
                let _ = done.send(slot);
            }
        }
    }
    // Every handle is gone: stop serving whatever is left.
    for running in actors.values() {
        running.stop.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::shares;

    #[test]
    fn shares_are_the_caps_when_they_fit() {
        assert_eq!(shares(&[4, 4], 8), vec![4, 4]);
        assert_eq!(shares(&[1, 2, 3], 100), vec![1, 2, 3]);
    }

    #[test]
    fn oversubscribed_shares_fit_the_pool_and_give_everyone_a_slot() {
        for (caps, pool) in [(vec![8, 8], 8), (vec![64; 20], 1000), (vec![1000, 1, 1], 10), (vec![5, 5, 5], 3)] {
            let shares = shares(&caps, pool);
            assert!(shares.iter().sum::<u32>() <= pool, "{caps:?} in {pool}: {shares:?}");
            assert!(shares.iter().zip(&caps).all(|(s, c)| *s >= 1 && s <= c), "{caps:?} in {pool}: {shares:?}");
        }
        assert_eq!(shares(&[8, 8], 8), vec![4, 4]);
    }
}
