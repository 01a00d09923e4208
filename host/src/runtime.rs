//! The actor runtime: loading (admission, compile, cache) and invocation (fresh instance, limits, outcome).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use lattice_core::claims::{Claims, Policy, Rejection};
use lattice_core::link::LinkSpec;
use lattice_keyvalue_inmemory::InMemoryKeyValue;
use lattice_messaging_inmemory::InMemoryMessaging;
use lattice_provider_sdk::{KeyValue, Messaging};
use sha2::{Digest, Sha256};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Store, UpdateDeadline};
use wasmtime_wasi::WasiCtxBuilder;

use crate::admission;
use crate::bindings;
use crate::budget::Budget;
use crate::cache::{CacheError, CompiledCache};
use crate::engine::{EngineConfig, EngineError, EpochTicker};
use crate::limits::{ActorLimits, Limiter, LimitsError};
use crate::links::{LinkError, LinkSet, Providers};
use crate::messaging::{Message, ReplyTo};
use crate::output::CapturedOutput;
use crate::state::InvocationState;
use crate::subscriptions::{SubscribeError, Subscriptions};

/// Bytes of stdout (and, separately, stderr) kept per invocation.
const STDIO_CAPTURE_BYTES: usize = 64 << 10;

/// The name under which the built-in in-memory key-value and messaging providers are registered.
pub const INMEMORY_PROVIDER: &str = lattice_client::INMEMORY_PROVIDER;

/// Configures and builds a [`Runtime`].
#[derive(Debug, Clone)]
pub struct RuntimeBuilder {
    engine: EngineConfig,
    cache_dir: Option<PathBuf>,
    max_component_bytes: usize,
    providers: Providers,
    policy: Policy,
}

impl Default for RuntimeBuilder {
    fn default() -> Self {
        let mut providers = Providers::default();
        providers.insert_keyvalue(INMEMORY_PROVIDER, Arc::new(InMemoryKeyValue::new()));
        providers.insert_messaging(INMEMORY_PROVIDER, Arc::new(InMemoryMessaging::new()));
        Self {
            engine: EngineConfig::default(),
            cache_dir: None,
            max_component_bytes: crate::files::MAX_COMPONENT_BYTES,
            providers,
            policy: Policy::default(),
        }
    }
}

impl RuntimeBuilder {
    /// A builder with default sizes, no disk cache, the built-in `inmemory` key-value provider, and the default
    /// [`Policy`]: signed actors required and no issuer trusted, so nothing loads until [`RuntimeBuilder::policy`]
    /// trusts an issuer or allows unsigned actors.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sizes the engine (pool slots, host memory cap, stack, epoch tick).
    pub fn engine(&mut self, engine: EngineConfig) -> &mut Self {
        self.engine = engine;
        self
    }

    /// Where compiled components are cached; `None` compiles every load.
    pub fn cache_dir(&mut self, dir: Option<PathBuf>) -> &mut Self {
        self.cache_dir = dir;
        self
    }

    /// The largest component file accepted.
    pub fn max_component_bytes(&mut self, bytes: usize) -> &mut Self {
        self.max_component_bytes = bytes;
        self
    }

    /// Which actors may load: trusted issuers, whether unsigned actors are allowed (development only), clock skew.
    pub fn policy(&mut self, policy: Policy) -> &mut Self {
        self.policy = policy;
        self
    }

    /// Sets the per-bucket quota of the built-in `inmemory` key-value provider (replacing its instance, so call
    /// it before anything is stored).
    pub fn inmemory_keyvalue_quota(&mut self, quota: crate::KeyValueQuota) -> &mut Self {
        self.providers.insert_keyvalue(INMEMORY_PROVIDER, Arc::new(InMemoryKeyValue::with_quota(quota)));
        self
    }

    /// Registers a key-value provider instance actors can be linked to by `name`.
    pub fn keyvalue_provider(&mut self, name: impl Into<String>, provider: Arc<dyn KeyValue>) -> &mut Self {
        self.providers.insert_keyvalue(name, provider);
        self
    }

    /// Registers a messaging provider instance actors can be linked to by `name`.
    pub fn messaging_provider(&mut self, name: impl Into<String>, provider: Arc<dyn Messaging>) -> &mut Self {
        self.providers.insert_messaging(name, provider);
        self
    }

    /// Creates the engine, starts its epoch ticker and prepares the linker.
    pub fn build(&self) -> Result<Runtime, RuntimeError> {
        let (engine, ticker) = self.engine.build()?;
        let mut linker = Linker::<InvocationState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(RuntimeError::Linker)?;
        // Every actor gets wasi:http's types and outgoing-handler: requests leave only where an `http:outgoing`
        // link allows (see `crate::http`), so a component built with fetch support (componentize-js) starts.
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).map_err(RuntimeError::Linker)?;
        bindings::Actor::add_to_linker::<_, wasmtime::component::HasSelf<_>>(&mut linker, |s| s)
            .map_err(RuntimeError::Linker)?;
        let cache = match &self.cache_dir {
            Some(dir) => CompiledCache::open(dir, &engine)?,
            None => CompiledCache::disabled(),
        };
        Ok(Runtime {
            inner: Arc::new(RuntimeInner {
                engine,
                linker,
                cache,
                providers: ArcSwap::from_pointee(self.providers.clone()),
                policy: self.policy.clone(),
                max_component_bytes: self.max_component_bytes,
                host_memory_cap: self.engine.max_memory_bytes,
                max_instances: self.engine.max_instances,
                epoch_tick: self.engine.epoch_tick,
                _ticker: ticker,
                compiled: std::sync::Mutex::new(HashMap::new()),
            }),
        })
    }
}

/// Why a runtime could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// The engine could not be created.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The compiled-code cache could not be opened.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// The host interfaces could not be added to the linker (a bug).
    #[error("cannot link host interfaces: {0:#}")]
    Linker(wasmtime::Error),
}

/// One wasmtime engine with its linker, compiled-code cache and providers. Cheap to clone.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<RuntimeInner>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").field("providers", &self.inner.providers).finish_non_exhaustive()
    }
}

struct RuntimeInner {
    engine: Engine,
    linker: Linker<InvocationState>,
    cache: CompiledCache,
    /// Replaced whole when a provider is added at run time; readers take a snapshot.
    providers: ArcSwap<Providers>,
    policy: Policy,
    max_component_bytes: usize,
    host_memory_cap: usize,
    max_instances: u32,
    epoch_tick: Duration,
    _ticker: EpochTicker,
    /// Components compiled (or loaded from the disk cache) by digest, shared while an actor uses them: starting
    /// many actors from one component at once compiles it once (the others wait for that compile).
    compiled: std::sync::Mutex<HashMap<[u8; 32], Weak<Compiled>>>,
}

/// One component, compiled once and prepared for instantiation against the runtime's linker, shared by every
/// actor loaded from the same bytes (thousands of actors of one component cost one copy of its code and of its
/// import table).
type Compiled = tokio::sync::OnceCell<Prepared>;

/// A component ready to instantiate, and where its entry points are: the messaging handler, the HTTP handler,
/// or both (at least one).
#[derive(Clone)]
struct Prepared {
    pre: wasmtime::component::InstancePre<InvocationState>,
    messaging: Option<MessagingIndices>,
    http: Option<HttpIndices>,
}

type MessagingIndices = bindings::exports::wasi::messaging::incoming_handler::GuestIndices;
type HttpIndices = wasmtime_wasi_http::p2::bindings::exports::wasi::http::incoming_handler::GuestIndices;

impl Prepared {
    fn new(pre: wasmtime::component::InstancePre<InvocationState>) -> Result<Self, LoadError> {
        let messaging = MessagingIndices::new(&pre).ok();
        let http = HttpIndices::new(&pre).ok();
        if messaging.is_none() && http.is_none() {
            return Err(LoadError::World(
                "the component exports neither `wasi:messaging/incoming-handler@0.2.0-draft` (world \
                 lattice:actor/actor) nor `wasi:http/incoming-handler@0.2.x` (world lattice:actor/http-actor)"
                    .into(),
            ));
        }
        Ok(Self { pre, messaging, http })
    }
}

impl RuntimeInner {
    /// The shared slot of the component with `digest` (made if no live actor uses it).
    fn compiled(&self, digest: &[u8; 32]) -> Arc<Compiled> {
        let mut compiled = self.compiled.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(slot) = compiled.get(digest).and_then(Weak::upgrade) {
            return slot;
        }
        // A new digest: forget slots no actor holds any more.
        compiled.retain(|_, slot| slot.strong_count() > 0);
        let slot = Arc::new(Compiled::new());
        compiled.insert(*digest, Arc::downgrade(&slot));
        slot
    }
}

/// How an actor runs: its limits and links.
#[derive(Debug, Clone, Default)]
pub struct ActorConfig {
    /// Limits every invocation runs under.
    pub limits: ActorLimits,
    /// What the actor's imports resolve to.
    pub links: Vec<LinkSpec>,
}

/// Why an actor could not be loaded. Nothing runs when loading fails.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The component file is larger than the host accepts.
    #[error("component is {size} bytes, larger than the host's limit of {limit} bytes")]
    TooLarge {
        /// The component's size.
        size: usize,
        /// The host's limit.
        limit: usize,
    },
    /// The host's policy refused the actor's claims (or their absence), or the component imports a capability
    /// its claims do not allow. The message is the reason.
    #[error(transparent)]
    Rejected(#[from] Rejection),
    /// The actor's limits are invalid or above the host's caps.
    #[error(transparent)]
    Limits(#[from] LimitsError),
    /// A link names a provider that does not exist here, or an interface the actor's claims do not allow.
    #[error(transparent)]
    Links(#[from] LinkError),
    /// The bytes are not a valid component, or compilation failed.
    #[error("cannot compile component: {0}")]
    Compile(String),
    /// The component imports something the host does not provide, or does not export the handler.
    #[error("component does not fit the lattice actor world: {0}")]
    World(String),
}

/// What loading did, for logs and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadReport {
    /// sha256 of the component bytes, hex.
    pub digest: String,
    /// Whether the compiled code came from the on-disk cache (no compilation).
    pub from_cache: bool,
    /// Time from bytes to a ready `InstancePre`.
    pub elapsed: Duration,
}

impl Runtime {
    /// The provider instances actors can link to.
    pub fn providers(&self) -> Arc<Providers> {
        self.inner.providers.load_full()
    }

    /// Sets how links to key-value providers that do not run in this process are reached (see
    /// [`Providers::set_remote_keyvalue`]); the lattice host routes them over NATS.
    pub fn set_remote_keyvalue(&self, remote: crate::links::RemoteKeyValue) {
        self.inner.providers.rcu(|current| {
            let mut next = Providers::clone(current);
            next.set_remote_keyvalue(remote.clone());
            next
        });
    }

    /// Sets where messages delivered at least once go after their last failed delivery (see
    /// [`Providers::set_dead_letters`]); the lattice host keeps them in a stream.
    pub fn set_dead_letters(&self, sink: Arc<dyn crate::DeadLetters>) {
        self.inner.providers.rcu(|current| {
            let mut next = Providers::clone(current);
            next.set_dead_letters(sink.clone());
            next
        });
    }

    /// Adds (or replaces) a messaging provider instance at run time (same rules as key-value instances).
    pub fn insert_messaging_provider(&self, name: impl Into<String>, provider: Arc<dyn Messaging>) {
        let name = name.into();
        self.inner.providers.rcu(|current| {
            let mut next = Providers::clone(current);
            next.insert_messaging(name.clone(), provider.clone());
            next
        });
    }

    /// Adds (or replaces) a key-value provider instance at run time. Actors see it the next time their links
    /// are resolved (load or [`Actor::set_links`]); links already resolved keep the instance they have.
    pub fn insert_keyvalue_provider(&self, name: impl Into<String>, provider: Arc<dyn KeyValue>) {
        let name = name.into();
        self.inner.providers.rcu(|current| {
            let mut next = Providers::clone(current);
            next.insert_keyvalue(name.clone(), provider.clone());
            next
        });
    }

    /// Removes key-value provider instance `name` (links to it resolve remotely from the next re-link).
    pub fn remove_keyvalue_provider(&self, name: &str) {
        self.inner.providers.rcu(|current| {
            let mut next = Providers::clone(current);
            next.remove_keyvalue(name);
            next
        });
    }

    /// How many actor instances may be alive at once across the runtime (the engine's instance pool).
    pub fn max_instances(&self) -> u32 {
        self.inner.max_instances
    }

    /// The wasmtime engine (one per runtime).
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// Admits a component as actor `name`: size cap, claims verified against the host's policy, the imports and
    /// links checked against the capabilities the claims allow, limits validated, links resolved, then compile
    /// (or load from cache, off the async threads) and check it fits the actor world. Returns a ready actor.
    /// Nothing is compiled or instantiated for a refused actor.
    pub async fn load(&self, name: &str, bytes: Vec<u8>, config: ActorConfig) -> Result<Actor, LoadError> {
        let started = Instant::now();
        let rt = &self.inner;
        if bytes.len() > rt.max_component_bytes {
            return Err(LoadError::TooLarge { size: bytes.len(), limit: rt.max_component_bytes });
        }
        let claims = admission::admit(name, &bytes, &rt.policy)?;
        admission::check_links(name, claims.as_ref(), &config.links)?;
        config.limits.validate(rt.host_memory_cap)?;
        let links = LinkSet::resolve(name, &config.links, &rt.providers.load())?;

        let digest: [u8; 32] = Sha256::digest(&bytes).into();
        let compiled = rt.compiled(&digest);
        let mut compiled_here = false;
        let pre = compiled
            .get_or_try_init(|| async {
                let component = match rt.cache.load(&rt.engine, &digest) {
                    Some(component) => component,
                    None => {
                        compiled_here = true;
                        let engine = rt.engine.clone();
                        let cache = rt.cache.clone();
                        tokio::task::spawn_blocking(move || {
                            let component = Component::new(&engine, &bytes)?;
                            cache.store(&digest, &component);
                            Ok::<_, wasmtime::Error>(component)
                        })
                        .await
                        .map_err(|e| LoadError::Compile(format!("compiler task failed: {e}")))?
                        .map_err(|e| LoadError::Compile(format!("{e:#}")))?
                    }
                };
                let pre = rt.linker.instantiate_pre(&component).map_err(|e| LoadError::World(format!("{e:#}")))?;
                Prepared::new(pre)
            })
            .await?
            .clone();
        let from_cache = !compiled_here;

        let report = LoadReport { digest: hex::encode(digest), from_cache, elapsed: started.elapsed() };
        tracing::info!(
            actor = name,
            digest = %report.digest,
            from_cache,
            elapsed_us = report.elapsed.as_micros() as u64,
            "actor loaded"
        );
        let ticks = config.limits.cpu_time.as_nanos() / rt.epoch_tick.as_nanos().max(1);
        let warm = (config.limits.instance_reuse > 1).then(Arc::default);
        let actor = Actor {
            inner: Arc::new(ActorInner {
                _compiled: compiled,
                name: name.into(),
                runtime: self.clone(),
                pre,
                permits: Arc::new(Semaphore::new(config.limits.max_concurrency as usize)),
                max_concurrency: AtomicU32::new(config.limits.max_concurrency),
                cpu_ticks: u64::try_from(ticks).unwrap_or(u64::MAX).max(1),
                limits: config.limits,
                links: ArcSwap::from_pointee(links),
                report,
                claims,
                subscriptions: Subscriptions::default(),
                warm,
                queued: Arc::default(),
                unlinked_warned: std::sync::Mutex::default(),
            }),
        };
        // Messages published once `load` returns reach the actor (see `subscriptions`).
        actor.resubscribe().await.map_err(|e| LoadError::Links(LinkError::Subscribe(Box::new(e))))?;
        Ok(actor)
    }
}

/// A message delivered to an actor's `incoming-handler`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IncomingMessage {
    /// The topic it arrived on, if any.
    pub topic: Option<String>,
    /// The payload.
    pub data: Vec<u8>,
    /// Its content type, if known.
    pub content_type: Option<String>,
    /// Extra key-value pairs (headers).
    pub metadata: Vec<(String, String)>,
    /// Where `request-reply.reply` to this message goes (default: the invocation's reply).
    pub reply_to: ReplyTo,
    /// The message's id when it is delivered at least once (or a call carries `lattice-msg-id`): messages the
    /// actor sends durably while handling it get ids derived from it, so handling it again sends duplicates
    /// the stream drops.
    pub message_id: Option<String>,
}

impl IncomingMessage {
    /// A message with just a payload.
    pub fn new(data: impl Into<Vec<u8>>) -> Self {
        Self { data: data.into(), ..Self::default() }
    }

    /// Sets the topic.
    pub fn with_topic(mut self, topic: impl Into<String>) -> Self {
        self.topic = Some(topic.into());
        self
    }

    /// Sets where replies go.
    pub fn with_reply_to(mut self, reply_to: ReplyTo) -> Self {
        self.reply_to = reply_to;
        self
    }
}

/// What an actor replied with through `request-reply.reply`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The payload.
    pub data: Vec<u8>,
    /// Its content type, if the actor set one.
    pub content_type: Option<String>,
    /// Metadata the actor attached.
    pub metadata: Vec<(String, String)>,
}

/// Where a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogSource {
    /// `wasi:logging/logging.log`.
    Logging,
    /// The actor's stdout.
    Stdout,
    /// The actor's stderr.
    Stderr,
}

/// One line an actor logged during an invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// Where it came from.
    pub source: LogSource,
    /// Its level (stdout is `INFO`, stderr `WARN`).
    pub level: tracing::Level,
    /// The `context` argument of `wasi:logging` (empty for stdio).
    pub context: String,
    /// The text.
    pub message: String,
}

/// Why an invocation failed. Guest failures and exceeded limits are distinguished so callers can act.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InvokeError {
    /// The whole invocation took longer than the actor's wall-clock timeout.
    #[error("invocation timed out after {0:?}")]
    Timeout(Duration),
    /// Guest code ran longer than its CPU deadline.
    #[error("cpu deadline exceeded: the actor ran longer than {0:?}")]
    CpuDeadline(Duration),
    /// The guest tried to grow its memory past its cap.
    #[error("memory limit exceeded: the actor asked for {requested} bytes, its cap is {cap} bytes")]
    MemoryLimit {
        /// The size it asked for.
        requested: usize,
        /// Its cap.
        cap: usize,
    },
    /// The guest overflowed its stack (for example, unbounded recursion).
    #[error("stack overflow in the actor")]
    StackOverflow,
    /// The guest replied with more bytes than allowed.
    #[error("reply of {size} bytes refused: the limit is {limit} bytes")]
    ReplyTooLarge {
        /// The reply's size.
        size: usize,
        /// The actor's limit.
        limit: usize,
    },
    /// The guest made the host hold more for it than one invocation may (messages, their bytes, request
    /// options, by a call that cannot return an error value): at most [`MAX_RESOURCES`](crate::MAX_RESOURCES)
    /// resources and [`message_bytes_limit`](crate::message_bytes_limit) bytes held for the guest.
    #[error("host resource limit exceeded: the actor held more than {limit} {bound} in one invocation")]
    HostResources {
        /// What is bounded (`host resources alive`, `bytes held for the guest`, `metadata entries in one
        /// message`).
        bound: &'static str,
        /// The bound.
        limit: usize,
    },
    /// The handler returned an error value.
    #[error("actor returned an error: {0}")]
    Handler(String),
    /// The guest trapped (a panic, `unreachable`, an invalid access).
    #[error("actor trapped: {0}")]
    Trap(String),
    /// The component does not export the entry point this invocation needs (an HTTP request to an actor
    /// without `wasi:http/incoming-handler`, a message to one without the messaging handler).
    #[error("the actor does not export `{0}`")]
    NoHandler(&'static str),
    /// The HTTP request could not be handed over, or the actor's response not taken (it answered with an
    /// error code, set no response, or its body failed).
    #[error("http: {0}")]
    Http(String),
    /// The actor's HTTP response body is larger than its reply cap.
    #[error("response body refused: the limit is {limit} bytes")]
    ResponseTooLarge {
        /// The actor's limit (`max_reply_bytes`).
        limit: usize,
    },
    /// No instance could be created (for example, every pool slot is in use).
    #[error("cannot instantiate actor: {0}")]
    Instantiate(String),
}

/// The result of one invocation plus what the actor logged meanwhile. `T` is the answer: the messaging reply
/// (`None`: the actor did not reply), or an HTTP response.
#[derive(Debug)]
pub struct InvocationOutcome<T = Option<Reply>> {
    /// The answer, or why the invocation failed.
    pub result: Result<T, InvokeError>,
    /// What the actor logged (bounded; see [`InvocationOutcome::logs_dropped`]).
    pub logs: Vec<LogLine>,
    /// Log lines not kept because the bound was reached.
    pub logs_dropped: usize,
}

/// A loaded actor. Each invocation runs in a fresh instance. Cheap to clone.
#[derive(Clone)]
pub struct Actor {
    inner: Arc<ActorInner>,
}

impl std::fmt::Debug for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Actor")
            .field("name", &self.inner.name)
            .field("digest", &self.inner.report.digest)
            .finish_non_exhaustive()
    }
}

pub(crate) struct ActorInner {
    name: Arc<str>,
    runtime: Runtime,
    pre: Prepared,
    limits: ActorLimits,
    cpu_ticks: u64,
    permits: Arc<Semaphore>,
    /// The current permit count of `permits` (scale changes it).
    max_concurrency: AtomicU32,
    links: ArcSwap<LinkSet>,
    report: LoadReport,
    claims: Option<Claims>,
    /// Dropped with the actor, which stops its subscriptions.
    subscriptions: Subscriptions,
    /// Keeps the component shared with actors loaded from the same bytes (see `RuntimeInner::compiled`).
    _compiled: Arc<Compiled>,
    /// Idle instances kept for reuse; `None` when every invocation gets a fresh instance (the default).
    warm: Option<Arc<WarmInstances>>,
    /// Invocations waiting for a permit in the admission queue (see [`Actor::admit`]).
    queued: Arc<AtomicUsize>,
    /// The names `store.open` was refused for want of a link that were logged at WARN: once per name, at
    /// most [`MAX_UNLINKED_WARNINGS`] names.
    unlinked_warned: std::sync::Mutex<std::collections::HashSet<String>>,
}

/// How many distinct unlinked key-value names an actor is warned about; later ones are logged at debug.
const MAX_UNLINKED_WARNINGS: usize = 32;

/// The smallest per-actor admission queue: invocations that may wait for a permit on one host.
pub(crate) const MIN_ADMISSION_QUEUE: usize = 8;

/// How many invocations of an actor with `max_concurrency` may wait for a permit on one host, beyond those
/// running: `max(8, max_concurrency / 4)`. Past that, calls are refused at once with `unavailable`.
pub(crate) fn queue_limit(max_concurrency: u32) -> usize {
    (max_concurrency as usize / 4).max(MIN_ADMISSION_QUEUE)
}

/// A place in an actor's admission queue, given back when the invocation gets its permit (or is dropped).
pub(crate) struct QueueSlot(Arc<AtomicUsize>);

impl QueueSlot {
    fn take(queued: &Arc<AtomicUsize>, limit: usize) -> Option<Self> {
        queued.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < limit).then_some(n + 1)).ok()?;
        Some(Self(queued.clone()))
    }
}

impl Drop for QueueSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// How an invocation was admitted.
pub(crate) enum Admitted {
    /// A permit was free.
    Now(OwnedSemaphorePermit),
    /// It waits for a permit in the bounded queue.
    Queued(QueueSlot),
}

impl Admitted {
    /// The permit: at once, or after the wait in the queue (whose place is given back then).
    pub(crate) async fn permit(self, actor: &Actor) -> OwnedSemaphorePermit {
        match self {
            Admitted::Now(permit) => permit,
            Admitted::Queued(slot) => {
                let permit = actor.acquire_permit().await;
                drop(slot);
                permit
            }
        }
    }
}

/// An [`Actor`] that does not keep it alive (subscription readers hold one).
pub(crate) struct WeakActor(Weak<ActorInner>);

impl WeakActor {
    pub(crate) fn upgrade(&self) -> Option<Actor> {
        self.0.upgrade().map(|inner| Actor { inner })
    }
}

impl Actor {
    /// The actor's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// What loading did (digest, cache hit, time).
    pub fn load_report(&self) -> &LoadReport {
        &self.inner.report
    }

    /// The verified claims the actor was loaded with; `None` for an unsigned actor the policy allowed.
    pub fn claims(&self) -> Option<&Claims> {
        self.inner.claims.as_ref()
    }

    /// The limits every invocation runs under.
    pub fn limits(&self) -> &ActorLimits {
        &self.inner.limits
    }

    /// The current links.
    pub fn links(&self) -> Arc<LinkSet> {
        self.inner.links.load_full()
    }

    /// How many invocations may run at once on this host now.
    pub fn max_concurrency(&self) -> u32 {
        self.inner.max_concurrency.load(Ordering::Acquire)
    }

    /// Changes how many invocations may run at once (at least 1). Raising takes effect at once; lowering
    /// takes effect as running invocations finish (must be called within a tokio runtime).
    pub fn set_max_concurrency(&self, max_concurrency: u32) {
        let new = max_concurrency.max(1);
        let old = self.inner.max_concurrency.swap(new, Ordering::AcqRel);
        if new > old {
            self.inner.permits.add_permits((new - old) as usize);
        } else if new < old {
            // Take the surplus permits out of circulation as soon as they are free.
            let actor = self.clone();
            tokio::spawn(async move {
                if let Ok(permits) = actor.inner.permits.acquire_many(old - new).await {
                    permits.forget();
                }
            });
        }
    }

    /// Replaces the actor's links. The next invocation uses the new set; invocations already running keep
    /// the set they started with. A link to an interface the actor's claims do not allow is refused, and then
    /// the current links stay.
    ///
    /// When the messaging links that subscribe changed, the subscriptions are redone in the background (within
    /// a tokio runtime; errors are logged); await [`Actor::resubscribe`] to wait for them and see errors.
    pub fn set_links(&self, specs: &[LinkSpec]) -> Result<(), LinkError> {
        admission::check_links(&self.inner.name, self.claims(), specs)?;
        let set = LinkSet::resolve(&self.inner.name, specs, &self.inner.runtime.inner.providers.load())?;
        self.inner.links.store(Arc::new(set));
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                let actor = self.clone();
                handle.spawn(async move {
                    if let Err(error) = actor.resubscribe().await {
                        tracing::error!(actor = %actor.name(), %error, "messaging subscriptions not restored");
                    }
                });
            }
            Err(_) => tracing::warn!(
                actor = %self.inner.name,
                "links changed outside a tokio runtime: subscriptions change on the next Actor::resubscribe"
            ),
        }
        Ok(())
    }

    /// Makes the actor's messaging subscriptions match its current links, now: subscribes the links with
    /// `subscribe=…` (after stopping the ones that changed) and returns how many links subscribe. `load` does
    /// this before it returns; [`Actor::set_links`] starts it in the background. On error, no subscription of
    /// this actor is left running. See the `subscriptions` module docs.
    pub async fn resubscribe(&self) -> Result<usize, SubscribeError> {
        self.inner.subscriptions.sync(self).await
    }

    /// Stops the actor's messaging subscriptions for good (used when the host stops): no message is read from
    /// them afterwards, and no link change subscribes again. Invocations already running are not touched.
    pub(crate) async fn close_subscriptions(&self) {
        self.inner.subscriptions.close().await;
    }

    /// Waits until no invocation of this actor holds a concurrency permit (every instance torn down).
    ///
    /// # Cancel safety
    /// Cancel-safe: it only waits; the permits it briefly holds go back when the future is dropped.
    pub(crate) async fn idle(&self) {
        let all = self.max_concurrency();
        // The semaphore is never closed; holding every permit at once means none is in use.
        let _all = self.inner.permits.acquire_many(all).await;
    }

    pub(crate) fn downgrade(&self) -> WeakActor {
        WeakActor(Arc::downgrade(&self.inner))
    }

    /// How many invocations hold a concurrency permit now (approximate while a scale-down settles).
    pub(crate) fn in_flight(&self) -> usize {
        (self.max_concurrency() as usize).saturating_sub(self.inner.permits.available_permits())
    }

    /// Waits for one of the actor's concurrency permits.
    pub(crate) async fn acquire_permit(&self) -> OwnedSemaphorePermit {
        // The semaphore is never closed, so acquire cannot fail.
        self.inner.permits.clone().acquire_owned().await.expect("the permit semaphore is never closed")
    }

    /// Like [`Actor::invoke`] with a permit already held: the wall-clock timeout covers only the invocation.
    pub(crate) async fn invoke_with_permit(
        &self,
        permit: OwnedSemaphorePermit,
        message: IncomingMessage,
    ) -> InvocationOutcome {
        self.with_timeout(async move { self.inner.run(message, permit).await }).await.0
    }

    /// Delivers `message` to the actor's `incoming-handler` in a fresh instance, under the actor's limits:
    /// at most `max_concurrency` at once (later callers wait), a CPU deadline, a memory cap and a wall-clock
    /// timeout that covers the wait too.
    ///
    /// # Cancel safety
    /// Dropping the future drops the instance mid-call; the actor's state lives only in its providers, so
    /// nothing is left half-done except writes the actor already made.
    pub async fn invoke(&self, message: IncomingMessage) -> InvocationOutcome {
        self.invoke_retaining(message).await.0
    }

    /// Like [`Actor::invoke`], but the finished instance (and its permit) comes back to the caller, which
    /// sends the reply before it drops the [`Retired`]: tearing an instance down (resetting its memory for
    /// the pool) then happens after the reply is on its way, not before.
    pub(crate) async fn invoke_retaining(&self, message: IncomingMessage) -> (InvocationOutcome, Option<Retired>) {
        self.invoke_retaining_with(self.acquire_permit(), message).await
    }

    /// Like [`Actor::invoke_retaining`], with the permit coming from `permit` (one already held, or a wait the
    /// caller tracks); the wall-clock timeout covers that wait too.
    pub(crate) async fn invoke_retaining_with(
        &self,
        permit: impl Future<Output = OwnedSemaphorePermit>,
        message: IncomingMessage,
    ) -> (InvocationOutcome, Option<Retired>) {
        self.with_timeout(async {
            let permit = permit.await;
            self.inner.run(message, permit).await
        })
        .await
    }

    /// Admission, shared by every way an invocation arrives (NATS calls, HTTP): a free permit, else a place in
    /// the actor's bounded queue ([`queue_limit`]), else `None`, to be refused at once with `unavailable`, so
    /// callers get backpressure and the host never holds an unbounded pile of waiting invocations.
    pub(crate) fn admit(&self) -> Option<Admitted> {
        match self.try_acquire_permit() {
            Some(permit) => Some(Admitted::Now(permit)),
            None => QueueSlot::take(&self.inner.queued, queue_limit(self.max_concurrency())).map(Admitted::Queued),
        }
    }

    /// One of the actor's concurrency permits if one is free now; never waits.
    pub(crate) fn try_acquire_permit(&self) -> Option<OwnedSemaphorePermit> {
        self.inner.permits.clone().try_acquire_owned().ok()
    }

    /// Delivers an HTTP request to the actor's `wasi:http/incoming-handler` in a fresh instance, under the same
    /// limits and concurrency as [`Actor::invoke`]; the response's body is collected up to the actor's
    /// `max_reply_bytes`. An actor without that export fails with [`InvokeError::NoHandler`].
    pub async fn invoke_http(
        &self,
        request: lattice_core::http::HttpRequest,
    ) -> InvocationOutcome<lattice_core::http::HttpResponse> {
        self.invoke_http_with(self.acquire_permit(), request).await.0
    }

    /// Like [`Actor::invoke_retaining_with`], for an HTTP request to the actor's `wasi:http/incoming-handler`:
    /// the response's body is collected up to the actor's `max_reply_bytes`.
    pub(crate) async fn invoke_http_with(
        &self,
        permit: impl Future<Output = OwnedSemaphorePermit>,
        request: lattice_core::http::HttpRequest,
    ) -> (InvocationOutcome<lattice_core::http::HttpResponse>, Option<Retired>) {
        self.with_timeout(async {
            let permit = permit.await;
            self.inner.run(request, permit).await
        })
        .await
    }

    /// Whether the actor serves HTTP (exports `wasi:http/incoming-handler`).
    pub fn serves_http(&self) -> bool {
        self.inner.pre.http.is_some()
    }

    async fn with_timeout<T>(
        &self,
        run: impl Future<Output = (InvocationOutcome<T>, Retired)>,
    ) -> (InvocationOutcome<T>, Option<Retired>) {
        let inner = &*self.inner;
        match tokio::time::timeout(inner.limits.timeout, run).await {
            Ok((outcome, retired)) => (outcome, Some(retired)),
            Err(_) => {
                tracing::warn!(actor = %inner.name, timeout = ?inner.limits.timeout, "invocation timed out");
                let outcome = InvocationOutcome {
                    result: Err(InvokeError::Timeout(inner.limits.timeout)),
                    logs: Vec::new(),
                    logs_dropped: 0,
                };
                (outcome, None)
            }
        }
    }
}

/// A finished invocation's instance and concurrency permit. Dropping it frees the instance (resetting its
/// memory for the pool) or, when the actor reuses instances and this one may serve again, keeps it for the
/// actor's next invocation; then it releases the permit, so live instances never exceed the actor's
/// concurrency.
pub(crate) struct Retired {
    instance: Option<Instance>,
    /// Where a reusable instance goes back, and how many the actor may keep (its concurrency); `None` when
    /// the instance is not to be reused.
    keep: Option<(Arc<WarmInstances>, usize)>,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Retired {
    fn drop(&mut self) {
        if let (Some(instance), Some((warm, max))) = (self.instance.take(), self.keep.take()) {
            warm.put(instance, max);
        }
    }
}

/// A live instance of an actor: its store (memory, resources) and the handle to its exports.
struct Instance {
    store: Store<InvocationState>,
    /// `None` until instantiated (instantiation runs under the same limits as the handler).
    exports: Option<Exports>,
    /// Invocations it has served.
    uses: u32,
}

/// An instance's entry points (the ones its component exports).
pub(crate) struct Exports {
    messaging: Option<bindings::exports::wasi::messaging::incoming_handler::Guest>,
    pub(crate) http: Option<wasmtime_wasi_http::p2::bindings::exports::wasi::http::incoming_handler::Guest>,
}

/// What an invocation delivers to an actor, and how: a message to its messaging handler, or an HTTP request
/// to its `wasi:http/incoming-handler`.
pub(crate) trait Delivery: Send {
    /// What the actor answers with.
    type Answer: Send;

    /// The id a message delivered at least once carries (see [`IncomingMessage::message_id`]).
    fn take_message_id(&mut self) -> Option<String>;

    /// Calls the entry point in `instance`'s store.
    fn deliver(
        self,
        actor: &ActorInner,
        store: &mut Store<InvocationState>,
        exports: &Exports,
    ) -> impl Future<Output = Result<Self::Answer, InvokeError>> + Send;
}

impl Delivery for IncomingMessage {
    type Answer = Option<Reply>;

    fn take_message_id(&mut self) -> Option<String> {
        self.message_id.take()
    }

    async fn deliver(
        self,
        actor: &ActorInner,
        store: &mut Store<InvocationState>,
        exports: &Exports,
    ) -> Result<Option<Reply>, InvokeError> {
        let handler = exports.messaging.as_ref().ok_or(InvokeError::NoHandler("wasi:messaging/incoming-handler"))?;
        let message = Message {
            data: self.data,
            topic: self.topic,
            content_type: self.content_type,
            metadata: self.metadata,
            route: self.reply_to.into(),
            charged: 0,
        };
        let message =
            store.data_mut().push_invocation_message(message).map_err(|e| InvokeError::Instantiate(e.to_string()))?;
        match handler.call_handle(&mut *store, message).await {
            // What the actor sent with `request-reply.reply`, if anything.
            Ok(Ok(())) => Ok(store.data_mut().reply.take()),
            Ok(Err(error)) => Err(InvokeError::Handler(describe_messaging_error(&error))),
            Err(trap) => Err(actor.classify(store.data(), trap, false)),
        }
    }
}

/// An actor's idle instances kept for reuse (`ActorLimits::instance_reuse` above 1). Holds at most one per
/// concurrency permit: an instance comes back only from an invocation that held a permit.
#[derive(Default)]
struct WarmInstances {
    idle: std::sync::Mutex<Vec<Instance>>,
}

impl WarmInstances {
    fn take(&self) -> Option<Instance> {
        self.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner).pop()
    }

    /// Keeps `instance` for a later invocation, unless the actor already keeps `max`, as many as it may run at
    /// once (after a scale-down, the surplus kept goes too).
    fn put(&self, instance: Instance, max: usize) {
        let surplus = {
            let mut idle = self.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            idle.push(instance);
            let keep = max.min(idle.len());
            idle.split_off(keep)
        };
        // Torn down outside the lock.
        drop(surplus);
    }
}

impl ActorInner {
    /// A fresh store for one instance, with everything an invocation starts from.
    fn new_store(&self) -> Store<InvocationState> {
        let stdout = CapturedOutput::new(STDIO_CAPTURE_BYTES);
        let stderr = CapturedOutput::new(STDIO_CAPTURE_BYTES);
        let wasi = WasiCtxBuilder::new().stdout(stdout.clone()).stderr(stderr.clone()).build();
        let links = self.links.load_full();
        let state = InvocationState {
            actor: self.name.clone(),
            wasi,
            http: wasmtime_wasi_http::WasiHttpCtx::new(),
            outgoing: crate::http::OutgoingHttp::new(&links),
            table: wasmtime::component::ResourceTable::new(),
            limiter: Limiter::new(&self.limits),
            links,
            cpu_ticks_left: self.cpu_ticks,
            cpu_exceeded: false,
            max_reply_bytes: self.limits.max_reply_bytes,
            reply: None,
            reply_refused: None,
            resources: Budget::new(self.limits.max_reply_bytes),
            logs: Vec::new(),
            log_bytes: 0,
            logs_dropped: 0,
            stdout,
            stderr,
            message_id: None,
            durable_sends: 0,
            unlinked_store: None,
        };
        let mut store = Store::new(&self.runtime.inner.engine, state);
        store.limiter(|s| &mut s.limiter);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|mut ctx| {
            let state = ctx.data_mut();
            if state.cpu_ticks_left == 0 {
                state.cpu_exceeded = true;
                return Ok(UpdateDeadline::Interrupt);
            }
            state.cpu_ticks_left -= 1;
            // Yield every tick so a spinning guest never starves the async runtime.
            Ok(UpdateDeadline::Yield(1))
        });
        store
    }

    /// The instance this invocation runs in: a kept one when the actor reuses instances and one is idle (with
    /// the per-invocation state a fresh store starts from: CPU budget, links, counters), else a fresh store.
    fn instance(&self) -> Instance {
        let Some(mut instance) = self.warm.as_ref().and_then(|warm| warm.take()) else {
            return Instance { store: self.new_store(), exports: None, uses: 0 };
        };
        let state = instance.store.data_mut();
        state.links = self.links.load_full();
        state.outgoing = crate::http::OutgoingHttp::new(&state.links);
        state.cpu_ticks_left = self.cpu_ticks;
        state.durable_sends = 0;
        state.unlinked_store = None;
        state.log_bytes = 0;
        state.logs_dropped = 0;
        instance.store.set_epoch_deadline(1);
        instance
    }

    async fn run<D: Delivery>(
        &self,
        mut delivery: D,
        permit: OwnedSemaphorePermit,
    ) -> (InvocationOutcome<D::Answer>, Retired) {
        let mut instance = self.instance();
        instance.store.data_mut().message_id = delivery.take_message_id();
        let Instance { store, exports, .. } = &mut instance;
        let result = match self.exports(store, exports).await {
            Ok(exports) => delivery.deliver(self, store, exports).await,
            Err(error) => Err(error),
        };
        instance.uses += 1;
        let state = instance.store.data_mut();
        let result = match (state.reply_refused, result) {
            (Some(size), _) => Err(InvokeError::ReplyTooLarge { size, limit: self.limits.max_reply_bytes }),
            (None, Ok(answer)) => Ok(answer),
            (None, Err(error)) => Err(error),
        };
        let result = match state.unlinked_store.take() {
            Some(store) => {
                self.warn_unlinked(&store);
                result.map_err(|error| unlinked_hint(error, &self.name, &store))
            }
            None => result,
        };
        state.collect_stdio();
        if let Err(error) = &result {
            tracing::debug!(actor = %self.name, %error, "invocation failed");
        }
        let outcome =
            InvocationOutcome { result, logs: std::mem::take(&mut state.logs), logs_dropped: state.logs_dropped };
        // Only an instance that served cleanly may serve again: after a trap, a limit or an error its state is
        // not to be trusted.
        let keep = self
            .warm
            .clone()
            .filter(|_| outcome.result.is_ok() && instance.uses < self.limits.instance_reuse)
            .map(|warm| (warm, self.max_concurrency.load(Ordering::Acquire) as usize));
        (outcome, Retired { instance: Some(instance), keep, _permit: permit })
    }

    /// The instance's entry points, instantiating it first if it is fresh (under the same limits as the handler).
    async fn exports<'a>(
        &self,
        store: &mut Store<InvocationState>,
        exports: &'a mut Option<Exports>,
    ) -> Result<&'a Exports, InvokeError> {
        if let Some(exports) = exports {
            return Ok(exports);
        }
        let instantiated = match self.pre.pre.instantiate_async(&mut *store).await {
            Ok(instantiated) => instantiated,
            Err(error) => return Err(self.classify(store.data(), error, true)),
        };
        let load = |error: wasmtime::Error| InvokeError::Instantiate(format!("{error:#}"));
        let messaging = self.pre.messaging.as_ref().map(|i| i.load(&mut *store, &instantiated)).transpose();
        let http = self.pre.http.as_ref().map(|i| i.load(&mut *store, &instantiated)).transpose();
        Ok(exports.insert(Exports { messaging: messaging.map_err(load)?, http: http.map_err(load)? }))
    }

    /// Logs at WARN, once per name, that `store.open(store)` was refused for want of a link.
    fn warn_unlinked(&self, store: &str) {
        let first = {
            let mut warned = self.unlinked_warned.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            warned.len() < MAX_UNLINKED_WARNINGS && warned.insert(store.to_owned())
        };
        let actor = &*self.name;
        if first {
            tracing::warn!(
                actor,
                store,
                "store.open(\"{store}\") refused (access-denied): the actor has no keyvalue link `{store}`; grant \
                 one with `lattice link put {actor} keyvalue {store} --provider <provider>` (or `--link \
                 keyvalue:{store}=<provider>` on `lattice run` and `lattice start`)"
            );
        } else {
            tracing::debug!(actor, store, "store.open refused: no keyvalue link");
        }
    }

    /// The actor's limits.
    pub(crate) fn limits(&self) -> &ActorLimits {
        &self.limits
    }

    /// Why a trap happened: a limit this invocation hit, else the trap itself.
    pub(crate) fn classify(&self, state: &InvocationState, error: wasmtime::Error, instantiating: bool) -> InvokeError {
        if state.cpu_exceeded {
            return InvokeError::CpuDeadline(self.limits.cpu_time);
        }
        if let Some(requested) = state.limiter.memory_denied {
            return InvokeError::MemoryLimit { requested, cap: self.limits.memory_bytes };
        }
        if let Some(limit) = &state.resources.exceeded {
            return InvokeError::HostResources { bound: limit.bound, limit: limit.limit };
        }
        if let Some(wasmtime::Trap::StackOverflow) = error.downcast_ref::<wasmtime::Trap>() {
            return InvokeError::StackOverflow;
        }
        if instantiating {
            InvokeError::Instantiate(format!("{error:#}"))
        } else {
            InvokeError::Trap(format!("{error:#}"))
        }
    }
}

/// A failed invocation's error, with the link whose absence likely caused it: the actor's `store.open(store)`
/// was refused for want of a keyvalue link. Only the actor's own failures (an error value, a trap) get it.
fn unlinked_hint(error: InvokeError, actor: &str, store: &str) -> InvokeError {
    let hint = |message: String| {
        format!(
            "{message} (its store.open(\"{store}\") was refused: no keyvalue link `{store}`; grant one with \
             `lattice link put {actor} keyvalue {store} --provider <provider>` or `--link keyvalue:{store}=<provider>`)"
        )
    };
    match error {
        InvokeError::Handler(message) => InvokeError::Handler(hint(message)),
        InvokeError::Trap(message) => InvokeError::Trap(hint(message)),
        other => other,
    }
}

fn describe_messaging_error(error: &bindings::wasi::messaging::types::Error) -> String {
    use bindings::wasi::messaging::types::Error;
    match error {
        Error::Timeout => "timeout".into(),
        Error::Connection(m) => format!("connection: {m}"),
        Error::PermissionDenied(m) => format!("permission denied: {m}"),
        Error::Other(m) => m.clone(),
    }
}

impl InvocationState {
    /// Moves captured stdout/stderr into the log lines (one per line of text).
    fn collect_stdio(&mut self) {
        for (output, source, level) in [
            (self.stdout.clone(), LogSource::Stdout, tracing::Level::INFO),
            (self.stderr.clone(), LogSource::Stderr, tracing::Level::WARN),
        ] {
            let (bytes, dropped) = output.take();
            if bytes.is_empty() {
                continue;
            }
            for line in String::from_utf8_lossy(&bytes).lines() {
                self.push_log(source, level, String::new(), line.to_owned());
            }
            if dropped > 0 {
                self.push_log(source, level, String::new(), format!("[{dropped} bytes of output dropped]"));
            }
        }
    }
}
