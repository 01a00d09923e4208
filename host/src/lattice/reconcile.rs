//! The reconciler: the leader host keeps what runs equal to the apps stored in the lattice.
//!
//! Every host takes part in the election ([`super::lease`]); the one holding the lease runs [`lead`]. The
//! leader knows the desired state from the app records (`apps.*` in the state bucket, watched, and re-read
//! every [`RESYNC`]) and the actual state from the hosts' heartbeats and events. Every [`TICK`] it compares the
//! two and acts:
//! - **Placement.** Replicas missing (a new app, a scale-up, a host lost) are placed by auction: one auction
//!   round gathers bids from every host with room (a busy or dead host does not bid), and each replica goes to
//!   the bidder matching the actor's constraints that runs it nowhere yet, spreading across the values of the
//!   `spread` label (fewest replicas in that value first), then the least loaded. A placement counts once its
//!   host replied that the actor started; until then it is pending and not placed again.
//! - **Liveness.** A host is lost when it has been silent for 2.5 heartbeat intervals: one missed heartbeat
//!   never empties a host, two and a half do. Its replicas are then placed again elsewhere.
//! - **Back-off.** A placement that fails excludes that host for that actor for 1 s, doubling up to 30 s; the
//!   error is shown in the app's status.
//! - **Rolling update.** Replicas started from another spec (artifact digest or limits) are replaced one at a
//!   time, in place: the host swaps the new version in behind the same subscription, so calls in flight finish
//!   on the old one and none is lost.
//! - **Clean-up.** Replicas beyond the wanted count, and anything an app placed that no app declares any more
//!   (deleted apps, removed actors or providers), are stopped.
//!
//! The leader writes each app's [`AppStatus`] when it changes and publishes `app.deployed`, `app.reconciled`,
//! `app.degraded` and `app.deleted`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use lattice_core::control_auth::{MAX_SKEW_MS, OperatorPolicy};
use lattice_core::host_auth::{self, HostRefusal};
use lattice_core::link::LinkSpec;
use lattice_core::subject::Name;
use lattice_core::wire::{
    self, ActorInfo, ActorStatus, AppActor, AppRecord, AppStatus, ArtifactRef, Bid, Event, EventData, HostInfo, Owner,
    ProviderStatus, StartActor, StartProvider,
};
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{LatticeClient, Shared};
use lattice_client::apps::AppStore;

/// How often the leader compares desired and actual state.
const TICK: Duration = Duration::from_millis(200);
/// How long a new leader gathers ping replies for its first view of the hosts (heartbeats follow).
const FIRST_LOOK: Duration = Duration::from_millis(250);
/// How often the leader re-reads every app record (the watch delivers changes in between).
const RESYNC: Duration = Duration::from_secs(10);
/// How long an auction gathers bids.
const AUCTION_WAIT: Duration = Duration::from_millis(150);
/// How long bids are used before a new auction is held.
const BIDS_FRESH: Duration = Duration::from_secs(2);
/// Control requests the leader has in flight at once, across hosts.
const MAX_ACTIONS: usize = 48;
/// First back-off after a failed placement on a host; doubles up to [`MAX_BACKOFF`].
const BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long a placement request may take (fetch, verify, compile).
const ACTION_TIMEOUT: Duration = Duration::from_secs(60);

/// Whether a host silent since `seen` is lost: 2.5 heartbeat intervals without one.
fn is_lost(seen: Instant, heartbeat_ms: u64, now: Instant) -> bool {
    now.duration_since(seen) > Duration::from_millis(heartbeat_ms.saturating_mul(5) / 2)
}

/// The actual state one reconciliation works from: live hosts, fresh bids, and indexes built once per tick.
struct View<'a> {
    now: Instant,
    alive: BTreeMap<Name, &'a HostView>,
    bids: BTreeMap<Name, Bid>,
    /// Per actor name, where it runs on live hosts.
    running: HashMap<&'a Name, Vec<(&'a Name, &'a ActorInfo)>>,
    /// Per (app, item), the hosts with an action pending and what it is.
    pending: HashMap<(&'a Name, &'a Name), Vec<(&'a Name, Verb)>>,
}

impl<'a> View<'a> {
    fn pending_for(&self, app: &'a Name, item: &'a Name) -> &[(&'a Name, Verb)] {
        self.pending.get(&(app, item)).map_or(&[], Vec::as_slice)
    }

    fn label(&self, host: &Name, label: &str) -> Option<&String> {
        self.alive.get(host).and_then(|view| view.info.labels.get(label))
    }
}

/// What the leader is doing to one item (an actor or provider of an app) on one host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    StartActor,
    StopActor,
    StartProvider,
    StopProvider,
}

/// One pending or finished action.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Target {
    app: Name,
    /// The actor's or provider's name.
    item: Name,
    host: Name,
}

struct Outcome {
    target: Target,
    verb: Verb,
    result: Result<Option<ActorInfo>, String>,
    /// For provider starts: the owner marker it was started with.
    owner: Option<Owner>,
}

/// What the leader knows about one host: its last `HostInfo` (its actors moved into `actors`, by name, so
/// events update it in constant time), and when it was last heard of.
struct HostView {
    info: HostInfo,
    actors: HashMap<Name, ActorInfo>,
    seen: Instant,
}

impl HostView {
    fn new(mut info: HostInfo, seen: Instant) -> Self {
        let actors = std::mem::take(&mut info.actors).into_iter().map(|a| (a.name.clone(), a)).collect();
        Self { info, actors, seen }
    }
}

struct Backoff {
    until: Instant,
    next: Duration,
}

/// The reconciliation events last published for an app, so each is published once per change.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Published {
    Reconciled(u64),
    Degraded(u64, String),
}

struct Leader {
    shared: Arc<Shared>,
    client: LatticeClient,
    store: AppStore,
    policy: OperatorPolicy,
    apps: BTreeMap<Name, AppRecord>,
    hosts: BTreeMap<Name, HostView>,
    pending: HashMap<Target, Verb>,
    backoff: HashMap<(Target, bool), Backoff>,
    errors: HashMap<(Name, Name), String>,
    bids: Option<(Instant, BTreeMap<Name, Bid>)>,
    written: HashMap<Name, AppStatus>,
    published: HashMap<Name, Published>,
    deployed: HashMap<Name, u64>,
    /// Apps deleted while this host led: published `app.deleted` once nothing of them runs.
    deleted: BTreeSet<Name>,
    /// App revisions refused by the operator policy (reported once).
    refused: BTreeSet<(Name, u64)>,
    /// Per host, when its last accepted heartbeat (or start) was signed: an older one is a replay.
    beats: HashMap<Name, u64>,
    actions: Arc<Semaphore>,
    outcomes: mpsc::UnboundedSender<Outcome>,
}

/// Leads until `stop`: watches the apps and the hosts and reconciles every [`TICK`].
pub(crate) async fn lead(shared: Arc<Shared>, client: LatticeClient, store: AppStore, stop: CancellationToken) {
    let mut events = match shared.client.subscribe(shared.subjects.events_wildcard()).await {
        Ok(events) => events,
        Err(error) => {
            tracing::error!(%error, "leader cannot subscribe to events: not reconciling");
            return;
        }
    };
    let (outcomes, mut results) = mpsc::unbounded_channel();
    let mut leader = Leader {
        policy: shared.gate.policy().clone(),
        shared: shared.clone(),
        client,
        store,
        apps: BTreeMap::new(),
        hosts: BTreeMap::new(),
        pending: HashMap::new(),
        backoff: HashMap::new(),
        errors: HashMap::new(),
        bids: None,
        written: HashMap::new(),
        published: HashMap::new(),
        deployed: HashMap::new(),
        deleted: BTreeSet::new(),
        refused: BTreeSet::new(),
        beats: HashMap::new(),
        actions: Arc::new(Semaphore::new(MAX_ACTIONS)),
        outcomes,
    };
    // What runs now, from every host that answers; heartbeats keep it current from here on.
    match leader.client.ping(FIRST_LOOK).await {
        Ok(hosts) => {
            let now = Instant::now();
            for info in hosts {
                leader.hosts.insert(info.id.clone(), HostView::new(info, now));
            }
        }
        Err(error) => tracing::warn!(%error, "leader cannot ping the hosts; waiting for heartbeats"),
    }
    leader.report_client_refusals();
    leader.resync().await;
    for app in leader.apps.keys().cloned().collect::<Vec<_>>() {
        if let Ok(Some(status)) = leader.store.status(&app).await {
            leader.deployed.insert(app.clone(), status.revision);
            leader.written.insert(app, status);
        }
    }
    let mut watch = leader.store.kv().watch(leader.shared.subjects.apps_filter()).await.ok();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut resync = tokio::time::interval(RESYNC);
    resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    resync.tick().await;
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            Some(message) = events.next() => leader.event(&message),
            Some(outcome) = results.recv() => leader.outcome(outcome),
            entry = next_entry(&mut watch) => match entry {
                Some(entry) => leader.app_entry(entry),
                None => watch = None,
            },
            _ = tick.tick() => leader.reconcile().await,
            _ = resync.tick() => {
                leader.resync().await;
                if watch.is_none() {
                    watch = leader.store.kv().watch(leader.shared.subjects.apps_filter()).await.ok();
                }
            }
        }
    }
    tracing::info!(host = %leader.shared.id, "no longer reconciling");
}

async fn next_entry(watch: &mut Option<async_nats::jetstream::kv::Watch>) -> Option<async_nats::jetstream::kv::Entry> {
    match watch {
        Some(watch) => match watch.next().await {
            Some(Ok(entry)) => Some(entry),
            Some(Err(error)) => {
                tracing::debug!(%error, "app watch failed; the next resync restarts it");
                None
            }
            None => None,
        },
        None => std::future::pending().await,
    }
}

impl Leader {
    /// Re-reads every app record.
    async fn resync(&mut self) {
        match self.store.list().await {
            Ok(records) => {
                let names: BTreeSet<Name> = records.iter().map(|r| r.spec.name.clone()).collect();
                for gone in self.apps.keys().filter(|a| !names.contains(*a)).cloned().collect::<Vec<_>>() {
                    self.remove_app(&gone);
                }
                for record in records {
                    self.put_app(record);
                }
            }
            Err(error) => tracing::warn!(%error, "leader cannot read the apps"),
        }
    }

    fn app_entry(&mut self, entry: async_nats::jetstream::kv::Entry) {
        let Some(name) = entry.key.strip_prefix("apps.").and_then(|n| Name::new(n).ok()) else { return };
        if entry.operation != async_nats::jetstream::kv::Operation::Put {
            self.remove_app(&name);
            return;
        }
        match wire::decode::<AppRecord>(&entry.value) {
            Ok(record) if record.spec.name == name => self.put_app(record),
            Ok(_) | Err(_) => tracing::warn!(key = %entry.key, "ignoring a malformed app record"),
        }
    }

    fn put_app(&mut self, record: AppRecord) {
        if self.policy.enforced()
            && let Err(refusal) = self.policy.verify_app(self.shared.lattice.as_str(), &record)
        {
            // Once per revision: resyncs see the same record again.
            if !self.refused.insert((record.spec.name.clone(), record.revision)) {
                return;
            }
            tracing::warn!(app = %record.spec.name, %refusal, "app record refused by the operator policy");
            let events = self.shared.events.clone();
            let subject = self.shared.subjects.app_key(&record.spec.name);
            tokio::spawn(async move {
                events
                    .publish(EventData::ControlRefused {
                        subject,
                        verb: "app".into(),
                        reason: refusal.to_string(),
                        operator: record.signature.map(|s| s.operator.to_string()),
                    })
                    .await;
            });
            return;
        }
        let name = record.spec.name.clone();
        self.deleted.remove(&name);
        if self.apps.get(&name).is_some_and(|current| current.revision == record.revision) {
            return;
        }
        if self.deployed.get(&name) != Some(&record.revision) {
            self.deployed.insert(name.clone(), record.revision);
            self.publish(EventData::AppDeployed {
                app: name.clone(),
                revision: record.revision,
                version: record.spec.version.clone(),
            });
        }
        // A new revision starts with a clean slate of errors.
        self.errors.retain(|(app, _), _| app != &name);
        self.apps.insert(name, record);
    }

    fn remove_app(&mut self, name: &Name) {
        if self.apps.remove(name).is_some() {
            self.deleted.insert(name.clone());
            self.written.remove(name);
            self.published.remove(name);
            self.deployed.remove(name);
        }
    }

    fn publish(&self, data: EventData) {
        let events = self.shared.events.clone();
        tokio::spawn(async move { events.publish(data).await });
    }

    /// Reports what the leader's client ignored as not verifiably a host's (bids, ping answers, replies).
    fn report_client_refusals(&self) {
        let (refused, _) = self.client.take_host_refusals();
        for refusal in refused {
            self.shared.report_refused(&refusal.subject, refusal.host.as_ref(), &refusal.reason);
        }
    }

    /// Whether an event is its host's (always, without trusted operators): sealed by the host it names, signed
    /// within the allowed skew, and for heartbeats and starts signed after the last one accepted from that host
    /// (so a replayed old one changes nothing). What does not verify is reported and ignored.
    fn believe(&mut self, event: &Event, message: &async_nats::Message) -> bool {
        let verifier = &self.shared.hosts;
        if !verifier.enforced() {
            return true;
        }
        let (subject, headers) = (message.subject.as_str(), message.headers.as_ref());
        let now = super::now_ms();
        let checked =
            host_auth::seal_from_headers(|name| headers.and_then(|h| h.get(name)).map(|v| v.as_str().to_owned()))
                .and_then(|seal| {
                    verifier.verify_as(
                        &event.host,
                        subject,
                        &message.payload,
                        seal.as_ref(),
                        now,
                        Some(MAX_SKEW_MS),
                    )?;
                    Ok(seal.map_or(0, |seal| seal.issued_at_ms))
                })
                .and_then(|issued_at_ms| {
                    if !matches!(event.data, EventData::HostHeartbeat(_) | EventData::HostStarted(_)) {
                        return Ok(());
                    }
                    let last = self.beats.entry(event.host.clone()).or_default();
                    if issued_at_ms <= *last {
                        return Err(HostRefusal::Replayed { issued_at_ms, last_ms: *last });
                    }
                    *last = issued_at_ms;
                    Ok(())
                });
        match checked {
            Ok(()) => true,
            Err(reason) => {
                self.shared.report_refused(subject, Some(&event.host), &reason);
                false
            }
        }
    }

    fn event(&mut self, message: &async_nats::Message) {
        let Ok(event) = wire::decode::<Event>(&message.payload) else { return };
        if !self.believe(&event, message) {
            return;
        }
        let now = Instant::now();
        match event.data {
            EventData::HostHeartbeat(info) | EventData::HostStarted(info) => {
                self.hosts.insert(event.host, HostView::new(info, now));
            }
            EventData::HostStopped { .. } => {
                self.hosts.remove(&event.host);
            }
            EventData::ActorStarted(info) => {
                if let Some(view) = self.hosts.get_mut(&event.host) {
                    view.actors.insert(info.name.clone(), info);
                }
            }
            EventData::ActorStopped { name } => {
                if let Some(view) = self.hosts.get_mut(&event.host) {
                    view.actors.remove(&name);
                }
            }
            EventData::ProviderStopped { name } => {
                if let Some(view) = self.hosts.get_mut(&event.host) {
                    view.info.provider_owners.remove(&name);
                    view.info.providers.retain(|p| p.split_once(':').map(|(_, n)| n) != Some(name.as_str()));
                }
            }
            _ => {}
        }
    }

    fn outcome(&mut self, outcome: Outcome) {
        let Outcome { target, verb, result, owner } = outcome;
        self.pending.remove(&target);
        let provider = matches!(verb, Verb::StartProvider | Verb::StopProvider);
        let key = (target.clone(), provider);
        match result {
            Ok(started) => {
                self.backoff.remove(&key);
                self.errors.remove(&(target.app.clone(), target.item.clone()));
                let Some(view) = self.hosts.get_mut(&target.host) else { return };
                match verb {
                    Verb::StartActor => {
                        if let Some(info) = started {
                            view.actors.insert(info.name.clone(), info);
                        }
                    }
                    Verb::StopActor => {
                        view.actors.remove(&target.item);
                    }
                    Verb::StartProvider => {
                        if let Some(owner) = owner {
                            view.info.provider_owners.insert(target.item.to_string(), owner);
                        }
                    }
                    Verb::StopProvider => {
                        view.info.provider_owners.remove(target.item.as_str());
                        view.info.providers.retain(|p| p != &format!("keyvalue:{}", target.item));
                    }
                }
            }
            Err(error) => {
                tracing::warn!(app = %target.app, item = %target.item, host = %target.host, ?verb, %error, "placement failed");
                let next = self.backoff.get(&key).map_or(BACKOFF, |b| (b.next * 2).min(MAX_BACKOFF));
                self.backoff.insert(key, Backoff { until: Instant::now() + next, next });
                self.errors.insert((target.app.clone(), target.item.clone()), format!("host {}: {error}", target.host));
            }
        }
    }

    fn backed_off(&self, target: &Target, provider: bool, now: Instant) -> bool {
        self.backoff.get(&(target.clone(), provider)).is_some_and(|b| b.until > now)
    }

    /// One comparison of desired and actual state, and the actions it calls for.
    async fn reconcile(&mut self) {
        if self.pass().await {
            // Hold the auction the plan needs, then place with its bids at once rather than a tick later.
            let auction = self.client.auction(BTreeMap::new(), AUCTION_WAIT).await;
            self.report_client_refusals();
            match auction {
                Ok(bids) => {
                    self.bids = Some((Instant::now(), bids.into_iter().map(|b| (b.host.clone(), b)).collect()));
                    self.pass().await;
                }
                Err(error) => tracing::warn!(%error, "placement auction failed"),
            }
        }
    }

    /// Plans from the current view, starts the actions and reports; true when placements wait for bids.
    async fn pass(&mut self) -> bool {
        let now = Instant::now();
        // Lost hosts are skipped below; forgotten after a minute of silence.
        self.hosts.retain(|_, view| now.duration_since(view.seen) < Duration::from_secs(60));
        let (plan, statuses, owning) = {
            let alive: BTreeMap<Name, &HostView> = self
                .hosts
                .iter()
                .filter(|(_, view)| !is_lost(view.seen, view.info.heartbeat_ms, now))
                .map(|(id, view)| (id.clone(), view))
                .collect();
            let mut running: HashMap<&Name, Vec<(&Name, &ActorInfo)>> = HashMap::new();
            for (id, view) in &self.hosts {
                if alive.contains_key(id) {
                    for actor in view.actors.values() {
                        running.entry(&actor.name).or_default().push((id, actor));
                    }
                }
            }
            let mut pending: HashMap<(&Name, &Name), Vec<(&Name, Verb)>> = HashMap::new();
            for (target, verb) in &self.pending {
                pending.entry((&target.app, &target.item)).or_default().push((&target.host, *verb));
            }
            let bids: BTreeMap<Name, Bid> = match &self.bids {
                Some((at, bids)) if now.duration_since(*at) < BIDS_FRESH => bids.clone(),
                _ => BTreeMap::new(),
            };
            let view = View { now, alive, bids, running, pending };
            let mut plan = Plan::default();
            let statuses: Vec<_> = self.apps.values().map(|record| self.plan_app(record, &view, &mut plan)).collect();
            self.plan_orphans(&view, &mut plan);
            // Apps that still have something placed on a live host.
            let owning: BTreeSet<Name> = view
                .alive
                .values()
                .flat_map(|host| {
                    let actors = host.actors.values().filter_map(|a| a.owner.as_ref().map(|o| o.app.clone()));
                    actors.chain(host.info.provider_owners.values().map(|o| o.app.clone()))
                })
                .collect();
            (plan, statuses, owning)
        };
        let need_bids = plan.need_bids;
        for (target, verb, action) in plan.actions {
            self.spawn(target, verb, action);
        }
        for (status, problem) in statuses {
            self.report(status, problem).await;
        }
        self.finish_deletions(&owning).await;
        need_bids
    }

    /// Plans one app and returns its status and, when it is degraded, why.
    fn plan_app(&self, record: &AppRecord, view: &View<'_>, plan: &mut Plan) -> (AppStatus, Option<String>) {
        let app = &record.spec.name;
        let mut problems: Vec<String> = Vec::new();
        let mut progressing: Vec<String> = Vec::new();
        let mut providers = Vec::new();
        let mut provider_up: BTreeSet<String> = BTreeSet::new();
        for provider in &record.spec.providers {
            let owner = Owner { app: app.clone(), spec: provider.fingerprint() };
            let running: Vec<Name> = view
                .alive
                .iter()
                .filter(|(_, host)| host.info.provider_owners.get(provider.name.as_str()) == Some(&owner))
                .map(|(id, _)| id.clone())
                .collect();
            let pending = view.pending_for(app, &provider.name);
            // Instances started from another config of this app are stopped; the next tick starts a fresh one.
            for (host, hv) in &view.alive {
                if let Some(other) = hv.info.provider_owners.get(provider.name.as_str())
                    && other.app == *app
                    && other.spec != owner.spec
                    && pending.is_empty()
                {
                    plan.push(target(app, &provider.name, host), Verb::StopProvider, Action::StopProvider);
                }
            }
            let error = self.errors.get(&(app.clone(), provider.name.clone())).cloned();
            if !running.is_empty() {
                provider_up.insert(provider.name.to_string());
            } else if pending.is_empty() {
                // Hosts that already run an instance of that name (started by hand, or an old config of this
                // app being stopped) cannot take another.
                let listed = format!("keyvalue:{}", provider.name);
                let taken: BTreeSet<Name> = view
                    .alive
                    .iter()
                    .filter(|(_, hv)| hv.info.providers.contains(&listed))
                    .map(|(id, _)| id.clone())
                    .collect();
                match choose(view, &provider.constraints, None, &taken, &BTreeMap::new(), |host| {
                    self.backed_off(&target(app, &provider.name, host), true, view.now)
                }) {
                    Choice::Host(host) => {
                        let request = StartProvider {
                            name: provider.name.to_string(),
                            kind: provider.kind.clone(),
                            config: provider.config.clone(),
                            owner: Some(owner.clone()),
                        };
                        plan.push(
                            target(app, &provider.name, &host),
                            Verb::StartProvider,
                            Action::StartProvider(request),
                        );
                        progressing.push(format!("provider {}: starting on {host}", provider.name));
                    }
                    Choice::NeedBids => {
                        plan.need_bids = true;
                        progressing.push(format!("provider {}: placing", provider.name));
                    }
                    Choice::None(why) => {
                        problems.push(format!("provider {}: {}", provider.name, error.clone().unwrap_or(why)))
                    }
                }
            } else {
                progressing.push(format!("provider {}: starting", provider.name));
            }
            providers.push(ProviderStatus { name: provider.name.clone(), hosts: running, error });
        }
        let mut actors = Vec::new();
        for actor in &record.spec.actors {
            let status = self.plan_actor(app, actor, &provider_up, &record.spec, view, plan);
            if status.hosts.len() < actor.replicas as usize || !status.outdated.is_empty() {
                let summary = format!(
                    "{}: {} of {} replicas{}",
                    actor.name,
                    status.hosts.len(),
                    actor.replicas,
                    if status.outdated.is_empty() {
                        String::new()
                    } else {
                        format!(", {} outdated", status.outdated.len())
                    }
                );
                match &status.error {
                    Some(error) => problems.push(format!("{summary} ({error})")),
                    None => progressing.push(summary),
                }
            }
            actors.push(status);
        }
        let reconciled = problems.is_empty() && progressing.is_empty() && self.pending.keys().all(|t| &t.app != app);
        let reason = (!reconciled).then(|| {
            if problems.is_empty() { format!("progressing: {}", progressing.join("; ")) } else { problems.join("; ") }
        });
        let problem = (!problems.is_empty()).then(|| problems.join("; "));
        let status = AppStatus {
            app: app.clone(),
            revision: record.revision,
            reconciled,
            reason,
            actors,
            providers,
            leader: self.shared.id.clone(),
            updated_at_ms: super::now_ms(),
        };
        (status, problem)
    }

    fn plan_actor(
        &self,
        app: &Name,
        actor: &AppActor,
        provider_up: &BTreeSet<String>,
        spec: &wire::AppSpec,
        view: &View<'_>,
        plan: &mut Plan,
    ) -> ActorStatus {
        let fingerprint = actor.fingerprint();
        let mut current = Vec::new();
        let mut outdated = Vec::new();
        // Hosts where an actor of this name runs that this app does not own: never touched, never chosen.
        let mut foreign = BTreeSet::new();
        for (id, running) in view.running.get(&actor.name).map_or(&[][..], Vec::as_slice) {
            let id = *id;
            match &running.owner {
                Some(owner) if owner.app == *app && owner.spec == fingerprint => current.push(id.clone()),
                Some(owner) if owner.app == *app => outdated.push(id.clone()),
                _ => {
                    foreign.insert(id.clone());
                }
            }
        }
        let pending = view.pending_for(app, &actor.name);
        let starting: Vec<Name> = pending
            .iter()
            .filter(|(host, verb)| *verb == Verb::StartActor && !current.contains(host) && !outdated.contains(host))
            .map(|(host, _)| (*host).clone())
            .collect();
        let mut error = self.errors.get(&(app.clone(), actor.name.clone())).cloned();
        let status = |current: Vec<Name>, outdated: Vec<Name>, error: Option<String>| ActorStatus {
            name: actor.name.clone(),
            wanted: actor.replicas,
            hosts: current,
            outdated,
            error,
        };
        // Links to a provider of this app wait for it: a start would fail without it.
        let waiting: Vec<String> = actor
            .links
            .iter()
            .filter_map(|l| l.parse::<LinkSpec>().ok())
            .map(|l| l.provider)
            .filter(|p| spec.providers.iter().any(|d| d.name.as_str() == p) && !provider_up.contains(p))
            .collect();
        if !waiting.is_empty() && current.is_empty() && outdated.is_empty() {
            return status(current, outdated, error);
        }
        let wanted = actor.replicas as usize;
        let have = current.len() + outdated.len() + starting.len();
        let start = |host: &Name, plan: &mut Plan| {
            let request = StartActor {
                name: actor.name.clone(),
                artifact: ArtifactRef::Lattice(actor.artifact.clone()),
                limits: actor.limits.clone(),
                links: actor.links.clone(),
                owner: Some(Owner { app: app.clone(), spec: fingerprint.clone() }),
                // The digest `apply` recorded: a host refuses whatever else the store holds under the name.
                digest: Some(actor.digest.clone()).filter(|d| !d.is_empty()),
            };
            plan.push(target(app, &actor.name, host), Verb::StartActor, Action::StartActor(request));
        };
        if have < wanted {
            let mut taken: BTreeSet<Name> = current.iter().chain(&outdated).chain(&starting).cloned().collect();
            taken.extend(foreign.iter().cloned());
            let mut per_value: BTreeMap<String, usize> = BTreeMap::new();
            if let Some(label) = &actor.spread {
                for host in current.iter().chain(&outdated).chain(&starting) {
                    if let Some(value) = view.label(host, label) {
                        *per_value.entry(value.clone()).or_default() += 1;
                    }
                }
            }
            for _ in have..wanted {
                match choose(view, &actor.constraints, actor.spread.as_deref(), &taken, &per_value, |host| {
                    self.backed_off(&target(app, &actor.name, host), false, view.now)
                }) {
                    Choice::Host(host) => {
                        start(&host, plan);
                        if let Some(label) = &actor.spread
                            && let Some(value) = view.label(&host, label)
                        {
                            *per_value.entry(value.clone()).or_default() += 1;
                        }
                        taken.insert(host);
                    }
                    Choice::NeedBids => {
                        plan.need_bids = true;
                        break;
                    }
                    Choice::None(why) => {
                        error.get_or_insert(why);
                        break;
                    }
                }
            }
        } else if pending.is_empty() && current.len() + outdated.len() > wanted {
            // Too many: stop outdated ones first, then those sharing their spread value with most others.
            let value = |h: &Name| actor.spread.as_ref().and_then(|l| view.label(h, l));
            let sharing = |h: &Name| current.iter().chain(&outdated).filter(|o| value(o) == value(h)).count();
            let mut victims: Vec<Name> = current.iter().chain(&outdated).cloned().collect();
            victims.sort_by_key(|h| (!outdated.contains(h), std::cmp::Reverse(sharing(h)), h.clone()));
            for host in victims.into_iter().take(current.len() + outdated.len() - wanted) {
                plan.push(target(app, &actor.name, &host), Verb::StopActor, Action::StopActor(actor.name.clone()));
            }
        } else if pending.is_empty() && current.len() + outdated.len() == wanted && !outdated.is_empty() {
            // Rolling update: one host at a time, in place.
            start(&outdated[0], plan);
        }
        status(current, outdated, error)
    }

    /// Stops what apps placed that no app declares any more.
    fn plan_orphans(&self, view: &View<'_>, plan: &mut Plan) {
        let actors: BTreeSet<(&Name, &Name)> =
            self.apps.iter().flat_map(|(app, r)| r.spec.actors.iter().map(move |a| (app, &a.name))).collect();
        let providers: BTreeSet<(&Name, &str)> = self
            .apps
            .iter()
            .flat_map(|(app, r)| r.spec.providers.iter().map(move |p| (app, p.name.as_str())))
            .collect();
        for (host, hv) in &view.alive {
            for actor in hv.actors.values() {
                let Some(owner) = &actor.owner else { continue };
                let target = target(&owner.app, &actor.name, host);
                if !actors.contains(&(&owner.app, &actor.name)) && !self.pending.contains_key(&target) {
                    plan.push(target, Verb::StopActor, Action::StopActor(actor.name.clone()));
                }
            }
            for (name, owner) in &hv.info.provider_owners {
                let Ok(item) = Name::new(name.clone()) else { continue };
                let target = target(&owner.app, &item, host);
                if !providers.contains(&(&owner.app, name.as_str())) && !self.pending.contains_key(&target) {
                    plan.push(target, Verb::StopProvider, Action::StopProvider);
                }
            }
        }
    }

    /// Publishes `app.deleted` for deleted apps once nothing they placed runs on a live host (`owning`: the apps
    /// that still have something placed).
    async fn finish_deletions(&mut self, owning: &BTreeSet<Name>) {
        let done: Vec<Name> = self
            .deleted
            .iter()
            .filter(|app| !owning.contains(*app) && !self.pending.keys().any(|t| &t.app == *app))
            .cloned()
            .collect();
        for app in done {
            self.deleted.remove(&app);
            if let Err(error) = self.store.clear_status(&app).await {
                tracing::debug!(%error, "clearing a deleted app's status");
            }
            tracing::info!(%app, "app deleted: nothing of it runs any more");
            self.publish(EventData::AppDeleted { app });
        }
    }

    /// Writes the status when it changed and publishes `app.reconciled` / `app.degraded` on changes.
    async fn report(&mut self, status: AppStatus, problem: Option<String>) {
        let app = status.app.clone();
        let timeless = |s: &AppStatus| AppStatus { updated_at_ms: 0, ..s.clone() };
        let changed = self.written.get(&app).is_none_or(|old| timeless(old) != timeless(&status));
        let event = if status.reconciled {
            Some(Published::Reconciled(status.revision))
        } else {
            // Degraded: a hard problem, or an app that was reconciled and is short now.
            let was_reconciled =
                matches!(self.published.get(&app), Some(Published::Reconciled(r)) if *r == status.revision);
            problem
                .or_else(|| was_reconciled.then(|| status.reason.clone().unwrap_or_default()))
                .map(|reason| Published::Degraded(status.revision, reason))
        };
        if let Some(event) = event
            && self.published.get(&app) != Some(&event)
        {
            match &event {
                Published::Reconciled(revision) => {
                    tracing::info!(%app, revision, "app reconciled");
                    self.publish(EventData::AppReconciled { app: app.clone(), revision: *revision });
                }
                Published::Degraded(revision, reason) => {
                    tracing::warn!(%app, revision, %reason, "app degraded");
                    self.publish(EventData::AppDegraded {
                        app: app.clone(),
                        revision: *revision,
                        reason: reason.clone(),
                    });
                }
            }
            self.published.insert(app.clone(), event);
        }
        if changed {
            if let Err(error) = self.store.put_status(&status).await {
                tracing::warn!(%error, "cannot write app status");
                return;
            }
            self.written.insert(app, status);
        }
    }

    /// Sends one control request in its own task; its outcome comes back through `outcomes`.
    fn spawn(&mut self, target: Target, verb: Verb, action: Action) {
        if self.pending.contains_key(&target) {
            return;
        }
        self.pending.insert(target.clone(), verb);
        let client = self.client.clone();
        let permits = self.actions.clone();
        let outcomes = self.outcomes.clone();
        tokio::spawn(async move {
            let _permit = permits.acquire_owned().await;
            let host = target.host.clone();
            let owner = match &action {
                Action::StartProvider(request) => request.owner.clone(),
                _ => None,
            };
            let result = tokio::time::timeout(ACTION_TIMEOUT, async {
                match action {
                    Action::StartActor(request) => {
                        client.start_actor(&host, &request).await.map(|s| Some(s.actor)).map_err(|e| e.to_string())
                    }
                    Action::StopActor(name) => match client.stop_actor(&host, &name).await {
                        Ok(_) => Ok(None),
                        // Already gone: what was wanted.
                        Err(e) if e.code() == Some(wire::ErrorCode::NotFound) => Ok(None),
                        Err(e) => Err(e.to_string()),
                    },
                    Action::StartProvider(request) => {
                        client.start_provider_request(&host, &request).await.map(|_| None).map_err(|e| e.to_string())
                    }
                    Action::StopProvider => match client.stop_provider(&host, target.item.as_str()).await {
                        Ok(_) => Ok(None),
                        Err(e) if e.code() == Some(wire::ErrorCode::NotFound) => Ok(None),
                        Err(e) => Err(e.to_string()),
                    },
                }
            })
            .await
            .unwrap_or_else(|_| Err(format!("no outcome within {ACTION_TIMEOUT:?}")));
            let _ = outcomes.send(Outcome { target, verb, result, owner });
        });
    }
}

fn target(app: &Name, item: &Name, host: &Name) -> Target {
    Target { app: app.clone(), item: item.clone(), host: host.clone() }
}

enum Action {
    StartActor(StartActor),
    StopActor(Name),
    StartProvider(StartProvider),
    StopProvider,
}

#[derive(Default)]
struct Plan {
    actions: Vec<(Target, Verb, Action)>,
    planned: std::collections::HashSet<Target>,
    need_bids: bool,
}

impl Plan {
    /// Adds an action unless one for the same target is planned already.
    fn push(&mut self, target: Target, verb: Verb, action: Action) {
        if self.planned.insert(target.clone()) {
            self.actions.push((target, verb, action));
        }
    }
}

enum Choice {
    Host(Name),
    /// No bids yet: hold an auction first.
    NeedBids,
    /// No host qualifies, and why.
    None(String),
}

/// Picks a host for one replica: among the bidders that are alive, match `constraints`, carry the `spread`
/// label (when set), are not `taken` and not backed off, the one whose spread value has the fewest replicas,
/// then the one running the fewest actors, then by id.
fn choose(
    view: &View<'_>,
    constraints: &BTreeMap<String, String>,
    spread: Option<&str>,
    taken: &BTreeSet<Name>,
    per_value: &BTreeMap<String, usize>,
    backed_off: impl Fn(&Name) -> bool,
) -> Choice {
    if view.bids.is_empty() {
        return Choice::NeedBids;
    }
    let matching: Vec<&Bid> = view
        .bids
        .values()
        .filter(|bid| view.alive.contains_key(&bid.host))
        .filter(|bid| constraints.iter().all(|(k, v)| bid.labels.get(k) == Some(v)))
        .filter(|bid| spread.is_none_or(|label| bid.labels.contains_key(label)))
        .collect();
    if matching.is_empty() {
        let mut why = String::from("no live host matches");
        if !constraints.is_empty() {
            let wanted: Vec<String> = constraints.iter().map(|(k, v)| format!("{k}={v}")).collect();
            why.push_str(&format!(" constraints {}", wanted.join(",")));
        }
        if let Some(label) = spread {
            why.push_str(&format!("{}has label `{label}`", if constraints.is_empty() { " (" } else { " and " }));
            if constraints.is_empty() {
                why.push(')');
            }
        }
        return Choice::None(why);
    }
    let free: Vec<&&Bid> = matching.iter().filter(|bid| !taken.contains(&bid.host) && !backed_off(&bid.host)).collect();
    let Some(best) = free.into_iter().min_by_key(|bid| {
        let spread_count = spread.and_then(|l| bid.labels.get(l)).map_or(0, |v| per_value.get(v).copied().unwrap_or(0));
        (spread_count, bid.actors, bid.host.clone())
    }) else {
        return Choice::None(format!(
            "every eligible host ({}) already runs it or is backing off after a failure",
            matching.iter().map(|b| b.host.as_str()).collect::<Vec<_>>().join(", ")
        ));
    };
    Choice::Host(best.host.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> Name {
        Name::new(s).expect("name")
    }

    fn bid(host: &str, zone: &str, actors: u32) -> Bid {
        Bid { host: name(host), labels: BTreeMap::from([("zone".to_owned(), zone.to_owned())]), actors }
    }

    fn info(host: &str) -> HostInfo {
        HostInfo {
            id: name(host),
            lattice: name("l"),
            labels: BTreeMap::new(),
            version: String::new(),
            started_at_ms: 0,
            heartbeat_ms: 1000,
            actors: Vec::new(),
            providers: Vec::new(),
            provider_owners: BTreeMap::new(),
        }
    }

    #[test]
    fn spread_prefers_a_zone_without_a_replica_then_the_least_loaded_host() {
        let hosts: Vec<HostView> =
            ["a1", "b1", "b2"].into_iter().map(|h| HostView::new(info(h), Instant::now())).collect();
        let view = View {
            now: Instant::now(),
            alive: hosts.iter().map(|h| (h.info.id.clone(), h)).collect(),
            bids: [bid("a1", "a", 0), bid("b1", "b", 5), bid("b2", "b", 1)]
                .into_iter()
                .map(|b| (b.host.clone(), b))
                .collect(),
            running: HashMap::new(),
            pending: HashMap::new(),
        };
        let taken = BTreeSet::from([name("a1")]);
        let per_value = BTreeMap::from([("a".to_owned(), 1)]);
        let none = BTreeMap::new();
        match choose(&view, &none, Some("zone"), &taken, &per_value, |_| false) {
            Choice::Host(host) => assert_eq!(host.as_str(), "b2"),
            _ => panic!("expected a host"),
        }
        // Constraints nobody matches: the reason names them.
        let eu = BTreeMap::from([("zone".to_owned(), "eu".to_owned())]);
        match choose(&view, &eu, None, &BTreeSet::new(), &per_value, |_| false) {
            Choice::None(why) => assert!(why.contains("zone=eu"), "{why}"),
            _ => panic!("expected no host"),
        }
        // Every matching host taken or backing off.
        match choose(&view, &none, None, &taken, &per_value, |h| h.as_str() != "a1") {
            Choice::None(why) => assert!(why.contains("already runs it"), "{why}"),
            _ => panic!("expected no host"),
        }
        let no_bids = View { bids: BTreeMap::new(), ..view };
        assert!(matches!(choose(&no_bids, &none, None, &taken, &per_value, |_| false), Choice::NeedBids));
    }

    #[test]
    fn a_host_is_lost_after_two_and_a_half_silent_heartbeats_not_one() {
        let seen = Instant::now();
        assert!(!is_lost(seen, 1000, seen + Duration::from_millis(1500)));
        assert!(!is_lost(seen, 1000, seen + Duration::from_millis(2500)));
        assert!(is_lost(seen, 1000, seen + Duration::from_millis(2501)));
    }
}
