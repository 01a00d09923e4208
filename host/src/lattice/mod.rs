//! A lattice host: the runtime joined to a lattice over NATS.
//!
//! [`start`] connects, announces the host (`host.started`), and runs a few tasks that share one NATS client:
//! the control server ([`control`]), the actor table ([`table`]), one serving task per actor ([`serve`]) and
//! the heartbeat. [`RunningHost::stop`] drains it: stop taking invocations, let in-flight ones finish within a
//! grace period, publish `host.stopped`, remove the host record.
//!
//! **Invariant:** the runtime (`crate::runtime`) never sees NATS; everything NATS lives in this module.

mod artifact_dir;
mod artifacts;
mod auth;
mod control;
mod dlq;
mod events;
mod http;
mod lease;
mod links;
mod providers;
mod reconcile;
mod reply;
mod serve;
mod supervise;
mod table;

pub use artifact_dir::PathArtifactError;
pub use http::IngressConfig;
// The control client lives in its own crate (no wasmtime); these keep `lattice_host::lattice::…` paths working.
pub use lattice_client::{
    AppStateError, Applied, ArtifactError, ArtifactInfo, CallOptions, CallReply, ClientError, ConnectError, DIGEST_KEY,
    DeadLetterRecord, HostStatus, LatticeClient, NATS_MESSAGING_PROVIDER, NatsConfig, ProviderInstance, Published,
    Pushed, check_traceparent, new_traceparent,
};
pub use lease::Lease;
pub use providers::{BUILTIN_PROVIDERS, KEYVALUE_KINDS};
pub use supervise::Supervision;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::Client;
use async_nats::jetstream::{self, kv};
use lattice_core::allow::AllowList;
use lattice_core::control_auth::OperatorPolicy;
use lattice_core::host_auth::{CredentialError, HostCredential, HostRefusal, HostSigner, HostVerifier};
use lattice_core::keys::{KeyKind, SeedKey};
use lattice_core::subject::{Name, Subjects};
use lattice_core::wire::{self, ActorInfo, EventData, HostInfo};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::{ActorLimits, Runtime};
use events::Events;
use lattice_messaging_nats::NatsMessaging;
use table::Table;

/// Unix time in milliseconds.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// How a host joins a lattice.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// NATS servers and credentials.
    pub nats: NatsConfig,
    /// The lattice to join.
    pub lattice: Name,
    /// This host's id (unique in the lattice).
    pub id: Name,
    /// User labels; `os`, `arch` and `hostname` are added unless given.
    pub labels: BTreeMap<String, String>,
    /// Heartbeat interval (a host silent for 3 intervals is shown as lost).
    pub heartbeat: Duration,
    /// How long in-flight invocations may take to finish on a graceful stop.
    pub grace: Duration,
    /// Limits for actors started without overrides.
    pub default_limits: ActorLimits,
    /// Largest component accepted from the artifact store.
    pub max_component_bytes: usize,
    /// How provider instances started on this host are health-checked and restarted.
    pub supervision: Supervision,
    /// The only directory `start` may read components from by path (`--artifact-dir`); `None` refuses every
    /// path start.
    pub artifact_dir: Option<std::path::PathBuf>,
    /// Per-bucket quota of in-memory key-value providers started on this host (`provider start --kind
    /// inmemory`); the runtime's built-in `inmemory` instance gets its own from [`crate::RuntimeBuilder`].
    pub kv_quota: crate::KeyValueQuota,
    /// A separate NATS connection for actors' application messaging (the built-in `nats` messaging provider),
    /// typically in a NATS account that cannot see the lattice's subjects at all. `None`: actors' messaging
    /// shares the lattice's connection (the host still refuses the reserved subjects).
    pub app_nats: Option<NatsConfig>,
    /// Which operators may send mutating control requests and write link records (none: no check).
    pub operators: OperatorPolicy,
    /// Backend URLs `provider.start` may connect to (empty: every URL-bearing provider is refused).
    pub provider_allow: AllowList,
    /// The operator key this host signs its control requests with while it leads the lattice's reconciler
    /// (needed when hosts trust operators: they refuse unsigned placements).
    pub operator_key: Option<lattice_core::keys::SeedKey>,
    /// Timing of the reconciler's lease.
    pub lease: Lease,
    /// This host's key (`SN…`), which signs what it publishes; `None`: a fresh one is made at start (fine in a
    /// lattice that trusts no operator, where nobody checks it).
    pub host_key: Option<SeedKey>,
    /// The operator-signed credential for `host_key`, required when operators are trusted.
    pub host_credential: Option<HostCredential>,
    /// Serve HTTP for the lattice's routes (`--http`); `None`: no ingress on this host.
    pub http: Option<IngressConfig>,
}

impl HostConfig {
    /// A config with defaults: random id, 1 s heartbeat, 10 s grace.
    pub fn new(nats: NatsConfig, lattice: Name) -> Self {
        Self {
            nats,
            lattice,
            id: random_host_id(),
            labels: BTreeMap::new(),
            heartbeat: Duration::from_secs(1),
            grace: Duration::from_secs(10),
            default_limits: ActorLimits::default(),
            max_component_bytes: 64 << 20,
            supervision: Supervision::default(),
            artifact_dir: None,
            kv_quota: crate::KeyValueQuota::default(),
            app_nats: None,
            operators: OperatorPolicy::default(),
            provider_allow: AllowList::default(),
            operator_key: None,
            lease: Lease::default(),
            http: None,
            host_key: None,
            host_credential: None,
        }
    }
}

/// A fresh host id: `h-` and 12 hex digits from the operating system's randomness.
pub fn random_host_id() -> Name {
    let mut bytes = [0u8; 6];
    // Without OS randomness (never seen on supported systems), std's per-process random hasher keys instead.
    if getrandom::getrandom(&mut bytes).is_err() {
        use std::hash::{BuildHasher, Hasher};
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u32(std::process::id());
        bytes.copy_from_slice(&hasher.finish().to_le_bytes()[..6]);
    }
    // Hex digits and a dash always make a valid name.
    Name::new(format!("h-{}", hex::encode(bytes))).unwrap_or_else(|_| unreachable_name())
}

#[cold]
fn unreachable_name() -> Name {
    // `h-` plus hex always validates; this exists only so no `unwrap` sits in the path.
    Name::new("h-0").unwrap_or_else(|e| panic!("{e}"))
}

/// The automatic labels: `os`, `arch`, `hostname`.
pub fn automatic_labels() -> BTreeMap<String, String> {
    let mut labels = BTreeMap::from([
        ("os".to_owned(), std::env::consts::OS.to_owned()),
        ("arch".to_owned(), std::env::consts::ARCH.to_owned()),
    ]);
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .filter(|s| !s.is_empty());
    if let Some(hostname) = hostname {
        labels.insert("hostname".to_owned(), hostname);
    }
    labels
}

/// Per-call timeout of key-value calls to a provider served by another host.
const REMOTE_PROVIDER_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a host could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HostError {
    /// NATS could not be reached.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// A subscription or JetStream resource could not be set up.
    #[error("cannot set up {what}: {message}")]
    Setup {
        /// What failed.
        what: &'static str,
        /// Why.
        message: String,
    },
    /// The configuration contradicts itself.
    #[error("invalid host config: {0}")]
    InvalidConfig(String),
    /// The NATS server (or the account) has no JetStream, which holds the lattice's state.
    #[error("{0}")]
    NoJetStream(String),
    /// The host trusts operators but has no host credential.
    #[error(
        "host {host} trusts operators but has no host credential: issue one with `lattice keys host-credential` \
         and pass it with --host-credential"
    )]
    NoCredential {
        /// The host's id.
        host: Name,
    },
    /// The host's credential does not let it run as configured.
    #[error("host {host} cannot start with its credential: {error}")]
    Credential {
        /// The host's id.
        host: Name,
        /// What is wrong with it.
        #[source]
        error: CredentialError,
    },
}

/// The host's signer: its key (or a fresh one) and credential, which must fit its id, lattice and labels and be
/// signed by a trusted operator when any is trusted.
fn host_signer(config: &HostConfig, labels: &BTreeMap<String, String>) -> Result<HostSigner, HostError> {
    let key = match &config.host_key {
        Some(key) => key.clone(),
        None => SeedKey::generate(KeyKind::Host).map_err(|e| HostError::InvalidConfig(e.to_string()))?,
    };
    if key.kind() != KeyKind::Host {
        return Err(HostError::InvalidConfig(format!(
            "the host key is {} key, not a host key",
            key.kind().with_article()
        )));
    }
    if config.operators.enforced() {
        let credential =
            config.host_credential.as_ref().ok_or_else(|| HostError::NoCredential { host: config.id.clone() })?;
        let refused = |error| HostError::Credential { host: config.id.clone(), error };
        credential.verify(&config.operators.trusted, now_ms()).map_err(refused)?;
        credential.check_host(&config.id, &config.lattice, &key.public_key(), labels).map_err(refused)?;
    }
    Ok(HostSigner::new(key, config.host_credential.clone()))
}

/// What the host's tasks share (read-only after start, apart from handles).
pub(crate) struct Shared {
    pub(crate) id: Name,
    pub(crate) lattice: Name,
    pub(crate) client: Client,
    /// The connection actors' messaging uses (the lattice's own unless `app_nats` is set): flushed on stop, so
    /// the last acknowledgements of at-least-once deliveries leave.
    pub(crate) app_client: Client,
    pub(crate) jetstream: jetstream::Context,
    pub(crate) subjects: Arc<Subjects>,
    pub(crate) runtime: Runtime,
    pub(crate) table: Table,
    pub(crate) events: Events,
    /// Answers to requests: only to inboxes.
    pub(crate) replies: reply::Replies,
    pub(crate) tracker: TaskTracker,
    pub(crate) default_limits: ActorLimits,
    pub(crate) max_component_bytes: usize,
    pub(crate) started_at_ms: u64,
    pub(crate) heartbeat: Duration,
    pub(crate) supervision: Supervision,
    pub(crate) provider_allow: AllowList,
    /// Every actor's links in the lattice, kept current by the link watcher.
    pub(crate) links: tokio::sync::watch::Receiver<Arc<links::LinkTable>>,
    /// Where path artifacts may come from; `None`: path starts are refused.
    pub(crate) artifact_dir: Option<artifact_dir::ArtifactDir>,
    /// Per-bucket quota of in-memory key-value providers started on request.
    pub(crate) kv_quota: crate::KeyValueQuota,
    /// The operator policy applied to control requests.
    pub(crate) gate: auth::Gate,
    /// Artifacts fetched recently (digest-checked), so many starts of one artifact read the store once.
    pub(crate) recent_artifacts: artifacts::RecentArtifacts,
    /// Signs what the host publishes.
    pub(crate) signer: Arc<HostSigner>,
    /// Checks what other hosts publish (enforced when operators are trusted).
    pub(crate) hosts: HostVerifier,
    /// Rate limit of `host.refused` reports.
    pub(crate) reports: Arc<auth::ReportLimit>,
    grace: Duration,
    stop: CancellationToken,
    requested_grace: Mutex<Option<Duration>>,
}

impl Shared {
    pub(crate) fn info(
        &self,
        actors: Vec<ActorInfo>,
        labels: BTreeMap<String, String>,
        provider_owners: BTreeMap<String, wire::Owner>,
    ) -> HostInfo {
        HostInfo {
            id: self.id.clone(),
            lattice: self.lattice.clone(),
            labels,
            version: env!("CARGO_PKG_VERSION").to_owned(),
            started_at_ms: self.started_at_ms,
            heartbeat_ms: u64::try_from(self.heartbeat.as_millis()).unwrap_or(u64::MAX),
            actors,
            providers: self.runtime.providers().names(),
            provider_owners,
        }
    }

    /// Publishes a control reply to `to` (an inbox [`reply::Replies::inbox`] accepted), sealed with the host's
    /// key over that subject.
    pub(crate) async fn reply(&self, to: &reply::Inbox, payload: Vec<u8>) {
        let headers = events::seal_headers(&self.signer, to.as_str(), &payload, now_ms());
        if let Err(error) = self.replies.publish_with_headers(to, headers, payload.into()).await {
            tracing::warn!(%error, "cannot send control reply");
        }
    }

    /// Reports a message or record that claimed to be `host`'s and did not verify: a warning and a
    /// `host.refused` event, at most a few per second (the rest are counted in the next report).
    pub(crate) fn report_refused(&self, subject: &str, host: Option<&Name>, reason: &HostRefusal) {
        report_refused(&self.events, &self.reports, subject, host, reason);
    }

    /// Cancelled when the host begins to stop.
    pub(crate) fn stop_token(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Asks the host to stop gracefully (from the `stop` verb or a signal).
    pub(crate) fn request_stop(&self, grace: Option<Duration>) {
        if let Some(grace) = grace {
            *self.requested_grace.lock().unwrap_or_else(PoisonError::into_inner) = Some(grace);
        }
        self.stop.cancel();
    }
}

/// [`Shared::report_refused`], for tasks that hold the events and the limit rather than the host.
pub(crate) fn report_refused(
    events: &Events,
    limit: &auth::ReportLimit,
    subject: &str,
    host: Option<&Name>,
    reason: &HostRefusal,
) {
    let Some(suppressed) = limit.admit() else { return };
    let host = host.map(ToString::to_string);
    tracing::warn!(%subject, host = host.as_deref().unwrap_or("unknown"), %reason, suppressed, "ignored a message not verifiably from a host");
    let events = events.clone();
    let data = EventData::HostRefused { subject: subject.to_owned(), host, reason: reason.to_string(), suppressed };
    tokio::spawn(async move { events.publish(data).await });
}

/// A started host. Dropping it does not stop it; call [`RunningHost::stop`] or [`RunningHost::wait`].
pub struct RunningHost {
    shared: Arc<Shared>,
    done: JoinHandle<()>,
}

impl std::fmt::Debug for RunningHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningHost").field("id", &self.shared.id).finish_non_exhaustive()
    }
}

impl RunningHost {
    /// The host's id.
    pub fn id(&self) -> &Name {
        &self.shared.id
    }

    /// The NATS client the host uses.
    pub fn client(&self) -> &Client {
        &self.shared.client
    }

    /// Stops gracefully and waits until the host has stopped.
    pub async fn stop(self) {
        self.shared.request_stop(None);
        self.wait().await;
    }

    /// Waits until the host stops (through the `stop` verb or [`RunningHost::stop`]).
    pub async fn wait(self) {
        let _ = self.done.await;
    }

    /// A token cancelled when the host begins to stop; cancel it to stop the host (e.g. on a signal).
    pub fn stop_token(&self) -> CancellationToken {
        self.shared.stop.clone()
    }
}

/// Opens the key-value bucket `config.bucket`, creating it if it does not exist yet.
pub(crate) async fn kv_bucket(
    js: &jetstream::Context,
    config: kv::Config,
    what: &'static str,
) -> Result<kv::Store, HostError> {
    lattice_client::state::open_bucket(js, config).await.map_err(|message| HostError::Setup { what, message })
}

async fn hosts_bucket(
    js: &jetstream::Context,
    subjects: &Subjects,
    heartbeat: Duration,
) -> Result<kv::Store, HostError> {
    let config = kv::Config {
        bucket: subjects.hosts_bucket(),
        description: "lattice host records, rewritten every heartbeat".into(),
        history: 1,
        // Records of hosts that vanished expire after a while; live hosts rewrite theirs every beat.
        max_age: (heartbeat * 600).max(Duration::from_secs(600)),
        ..Default::default()
    };
    kv_bucket(js, config, "the hosts bucket").await
}

async fn events_stream(js: &jetstream::Context, subjects: &Subjects) -> Result<(), HostError> {
    let config = jetstream::stream::Config {
        name: subjects.events_stream(),
        description: Some("recent lattice events (heartbeats excluded) for `lattice events`".into()),
        subjects: subjects.stored_event_subjects(),
        max_messages: 10_000,
        max_age: Duration::from_secs(24 * 3600),
        num_replicas: lattice_messaging_nats::replicas(&js.client()),
        ..Default::default()
    };
    let setup = |e: &dyn std::fmt::Display| HostError::Setup { what: "the events stream", message: e.to_string() };
    let mut stream = js.get_or_create_stream(config.clone()).await.map_err(|e| setup(&e))?;
    // A lattice whose stream an older host created keeps only the kinds that host knew: add the new ones.
    let kept = stream.info().await.map_err(|e| setup(&e))?.config.subjects.clone();
    if config.subjects.iter().any(|s| !kept.contains(s)) {
        let mut subjects = kept;
        subjects.extend(config.subjects.iter().filter(|s| !subjects.contains(s)).cloned().collect::<Vec<_>>());
        let updated = jetstream::stream::Config { subjects, ..stream.cached_info().config.clone() };
        js.update_stream(updated).await.map_err(|e| setup(&e))?;
    }
    Ok(())
}

/// Joins the lattice and starts serving. Returns once the host has announced itself.
pub async fn start(config: HostConfig, runtime: Runtime) -> Result<RunningHost, HostError> {
    let artifact_dir = match &config.artifact_dir {
        Some(dir) => Some(
            artifact_dir::ArtifactDir::open(dir)
                .map_err(|e| HostError::Setup { what: "the artifact directory", message: e.to_string() })?,
        ),
        None => None,
    };
    if config.operators.require_signed_reads && !config.operators.enforced() {
        return Err(HostError::InvalidConfig(
            "signed reads are required but no operator is trusted: add at least one trusted operator".into(),
        ));
    }
    let mut labels = automatic_labels();
    labels.extend(config.labels.clone());
    // A host that may not run as configured says so before it touches NATS.
    let signer = Arc::new(host_signer(&config, &labels)?);
    let started_at_ms = now_ms();
    let client = config.nats.connect(&format!("lattice-host-{}", config.id)).await?;
    // Without JetStream every bucket below fails with a message that does not say why; say it first.
    if let Err(ClientError::NoJetStream(message)) =
        LatticeClient::new(client.clone(), config.lattice.clone()).check_jetstream().await
    {
        return Err(HostError::NoJetStream(message));
    }
    let jetstream = jetstream::new(client.clone());
    let subjects = Arc::new(Subjects::new(config.lattice.clone()));
    let hosts = hosts_bucket(&jetstream, &subjects, config.heartbeat).await?;
    events_stream(&jetstream, &subjects).await?;
    dlq::stream(&jetstream, &subjects).await?;
    let state = links::state_bucket(&jetstream, &subjects).await?;
    let (links_tx, links_rx) = tokio::sync::watch::channel(Arc::new(links::LinkTable::new()));

    // Messaging links to `nats` publish and subscribe on the application connection if there is one, else on
    // the lattice's own (the runtime refuses the reserved subjects either way).
    let app_client = match &config.app_nats {
        Some(app) => {
            let app_client = app.connect(&format!("lattice-host-app-{}", config.id)).await?;
            tracing::info!(host = %config.id, servers = %app.servers.join(","), "actors' messaging on its own NATS connection");
            app_client
        }
        None => client.clone(),
    };
    let messaging = NatsMessaging::new(app_client.clone()).with_namespace(&subjects.delivery_namespace());
    runtime.insert_messaging_provider(NATS_MESSAGING_PROVIDER, Arc::new(messaging));
    let events = Events::new(client.clone(), subjects.clone(), config.id.clone(), signer.clone());
    runtime.set_dead_letters(Arc::new(dlq::Sink {
        js: jetstream.clone(),
        subjects: subjects.clone(),
        host: config.id.clone(),
        events: events.clone(),
    }));
    // Links to providers no local instance has go to the host serving them, over the lattice.
    let remote_client = client.clone();
    let remote_subjects = subjects.clone();
    let remote_signer = signer.clone();
    runtime.set_remote_keyvalue(Arc::new(move |name: &str| {
        let name = Name::new(name).ok()?;
        let remote = lattice_provider_sdk::remote::RemoteKeyValue::new(
            remote_client.clone(),
            remote_subjects.provider(&name, "keyvalue"),
            REMOTE_PROVIDER_TIMEOUT,
        )
        .with_signer(remote_signer.clone());
        Some(Arc::new(remote) as Arc<dyn lattice_provider_sdk::KeyValue>)
    }));

    let pool = runtime.max_instances();
    let shared = Arc::new(Shared {
        id: config.id.clone(),
        lattice: config.lattice.clone(),
        client: client.clone(),
        jetstream,
        subjects: subjects.clone(),
        runtime,
        table: Table::spawn(labels, pool),
        // No custom inbox prefix is configured yet: answers go to `_INBOX.…` only.
        replies: reply::Replies::new(client.clone(), events.clone()),
        events,
        app_client,
        tracker: TaskTracker::new(),
        default_limits: config.default_limits.clone(),
        max_component_bytes: config.max_component_bytes,
        started_at_ms,
        heartbeat: config.heartbeat,
        supervision: config.supervision.clone(),
        provider_allow: config.provider_allow.clone(),
        links: links_rx,
        artifact_dir,
        kv_quota: config.kv_quota,
        gate: auth::Gate::new(config.operators.clone(), started_at_ms),
        recent_artifacts: artifacts::RecentArtifacts::default(),
        hosts: HostVerifier::new(config.lattice.clone(), config.operators.trusted.clone()),
        signer,
        reports: Arc::default(),
        grace: config.grace,
        stop: CancellationToken::new(),
        requested_grace: Mutex::new(None),
    });

    let tasks_stop = CancellationToken::new();
    let link_guard = links::LinkGuard::new(shared.gate.policy().clone(), shared.events.clone());
    if let Some(ingress) = &config.http {
        let listener = tokio::net::TcpListener::bind(ingress.addr)
            .await
            .map_err(|e| HostError::Setup { what: "the http listener", message: format!("{}: {e}", ingress.addr) })?;
        let (routes_tx, routes_rx) = tokio::sync::watch::channel(Arc::default());
        let routes = http::Routes::new(subjects.clone(), link_guard.clone(), routes_tx);
        let (watch_state, watch_client, watch_stop) = (state.clone(), client.clone(), tasks_stop.clone());
        let filter = subjects.routes_filter();
        tokio::spawn(async move {
            links::watch_keys(&watch_state, filter, "routes", &watch_client, &watch_stop, routes).await;
        });
        tracing::info!(host = %config.id, addr = %ingress.addr, "serving http");
        tokio::spawn(http::serve(
            listener,
            config.id.clone(),
            ingress.clone(),
            routes_rx,
            shared.table.clone(),
            LatticeClient::new(client.clone(), config.lattice.clone()),
            tasks_stop.clone(),
        ));
    }
    let app_store = lattice_client::apps::AppStore::new(state.clone(), (*subjects).clone());
    tokio::spawn(links::watch_links(
        state,
        subjects.clone(),
        client.clone(),
        shared.table.clone(),
        links_tx,
        link_guard,
        tasks_stop.clone(),
    ));
    control::run(shared.clone(), tasks_stop.clone())
        .await
        .map_err(|e| HostError::Setup { what: "control subscriptions", message: e.to_string() })?;
    let info =
        control::host_info(&shared).await.map_err(|e| HostError::Setup { what: "host info", message: e.message })?;
    put_record(&shared, &hosts, &info).await;
    shared.events.publish(EventData::HostStarted(info)).await;
    tracing::info!(host = %shared.id, lattice = %shared.lattice, "host joined the lattice");

    let heartbeat = tokio::spawn(heartbeat_loop(shared.clone(), hosts.clone(), tasks_stop.clone()));
    let election = elect(&shared, &config, app_store).await?;
    let done = tokio::spawn(shutdown(shared.clone(), hosts, heartbeat, election, tasks_stop));
    Ok(RunningHost { shared, done })
}

/// Takes part in the election of the lattice's reconciler until the host begins to stop (then releases the
/// lease, so another host leads while this one drains); leads while elected.
async fn elect(
    shared: &Arc<Shared>,
    config: &HostConfig,
    store: lattice_client::apps::AppStore,
) -> Result<JoinHandle<()>, HostError> {
    let bucket = lease::bucket(&shared.jetstream, &shared.subjects).await?;
    let mut client = LatticeClient::new(shared.client.clone(), shared.lattice.clone())
        .with_trusted_operators(shared.hosts.trusted().to_vec());
    if let Some(key) = &config.operator_key {
        client = client.with_operator_key(key.clone());
    }
    let election = lease::Election::new(bucket, shared.clone(), config.lease);
    let leading: Mutex<Option<CancellationToken>> = Mutex::new(None);
    let leader_shared = shared.clone();
    let on_change = move |change: lease::Change| {
        let mut leading = leading.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(previous) = leading.take() {
            previous.cancel();
        }
        if let lease::Change::Elected { previous } = change {
            let token = CancellationToken::new();
            let shared = leader_shared.clone();
            let (client, store) = (client.clone(), store.clone());
            let lead_token = token.clone();
            tokio::spawn(async move {
                shared.events.publish(EventData::LeaderElected { previous }).await;
                reconcile::lead(shared, client, store, lead_token).await;
            });
            *leading = Some(token);
        }
    };
    Ok(tokio::spawn(lease::run(election, shared.stop_token(), on_change)))
}

/// Writes the host's record, sealed over its key's subject (`$KV.<hosts bucket>.<id>`).
async fn put_record(shared: &Shared, hosts: &kv::Store, info: &HostInfo) {
    let value = shared.signer.seal_record(&shared.subjects.host_record(&info.id), &wire::encode(info), now_ms());
    if let Err(error) = hosts.put(info.id.as_str(), value.into()).await {
        tracing::warn!(host = %info.id, %error, bucket = %shared.subjects.hosts_bucket(), "cannot write host record");
    }
}

async fn heartbeat_loop(shared: Arc<Shared>, hosts: kv::Store, stop: CancellationToken) {
    let mut ticker = tokio::time::interval(shared.heartbeat);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let Ok(info) = control::host_info(&shared).await else { break };
        put_record(&shared, &hosts, &info).await;
        shared.events.publish(EventData::HostHeartbeat(info)).await;
    }
}

/// How much of the grace period is kept for leaving the lattice (host record, `host.stopped`, flush) after the
/// drain: a quarter of it, at most 1 s.
fn farewell_budget(grace: Duration) -> Duration {
    (grace / 4).min(Duration::from_secs(1))
}

/// Drains and leaves, within the grace period whatever NATS does: every step is bounded by what is left of it,
/// so a host whose NATS server is unreachable still exits on time (without removing its record or announcing
/// the stop; the others then see it as lost).
async fn shutdown(
    shared: Arc<Shared>,
    hosts: kv::Store,
    heartbeat: JoinHandle<()>,
    election: JoinHandle<()>,
    tasks_stop: CancellationToken,
) {
    shared.stop.cancelled().await;
    let grace = shared.requested_grace.lock().unwrap_or_else(PoisonError::into_inner).unwrap_or(shared.grace);
    let deadline = tokio::time::Instant::now() + grace;
    let drain_deadline = deadline - farewell_budget(grace);
    tracing::info!(host = %shared.id, in_flight = shared.tracker.len(), ?grace, "stopping: draining invocations");
    // Stop taking invocations, from the lattice and from messaging subscriptions, then let the ones in flight
    // finish.
    let actors = shared.table.stop_all().await.unwrap_or_default();
    shared.tracker.close();
    let drain = async {
        for actor in &actors {
            actor.close_subscriptions().await;
        }
        shared.tracker.wait().await;
        for actor in &actors {
            actor.idle().await;
        }
    };
    if tokio::time::timeout_at(drain_deadline, drain).await.is_err() {
        tracing::warn!(host = %shared.id, left = shared.tracker.len(), "grace period over: abandoning invocations");
    }
    tasks_stop.cancel();
    // A heartbeat may be stuck on an unreachable server: it has nothing left to say.
    heartbeat.abort();
    let _ = heartbeat.await;
    let farewell = async {
        // The lease was released when the stop began; make sure that write is done.
        let _ = election.await;
        if let Err(error) = hosts.delete(shared.id.as_str()).await {
            tracing::warn!(%error, "cannot remove host record");
        }
        shared.events.publish(EventData::HostStopped { reason: "stopped gracefully".into() }).await;
        if let Err(error) = shared.client.flush().await {
            tracing::warn!(%error, "flushing NATS on stop");
        }
        if let Err(error) = shared.app_client.flush().await {
            tracing::warn!(%error, "flushing the actors' NATS connection on stop");
        }
    };
    if tokio::time::timeout_at(deadline, farewell).await.is_err() {
        tracing::warn!(
            host = %shared.id,
            "NATS did not answer within the grace period: leaving without removing the host record"
        );
    }
    tracing::info!(host = %shared.id, "host stopped");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_ids_are_random_hex_names() {
        let (a, b) = (random_host_id(), random_host_id());
        assert_ne!(a, b);
        let digits = a.as_str().strip_prefix("h-").expect("prefix");
        assert!(digits.len() == 12 && digits.bytes().all(|c| c.is_ascii_hexdigit()), "{a}");
    }

    #[test]
    fn the_farewell_keeps_a_bounded_share_of_the_grace_period() {
        assert_eq!(farewell_budget(Duration::from_secs(10)), Duration::from_secs(1));
        assert_eq!(farewell_budget(Duration::from_secs(2)), Duration::from_millis(500));
        assert_eq!(farewell_budget(Duration::ZERO), Duration::ZERO);
    }
}
