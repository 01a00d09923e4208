//! Messages per second through one subscribing actor vs a native Rust subscriber, at most once and at least once,
//! in one run on this machine.
//!
//! **Subscribers.** Each side is its own OS process, re-executed from this binary (`LATTICE_BENCH_WORKFLOW_ROLE`),
//! with the same allocator (mimalloc) and the same tokio runtime as the `lattice` binary (multi-threaded, one worker
//! per core):
//! - *lattice*: a lattice host (`lattice::start`, the same code `lattice host` runs) with one actor, started by
//!   this process through `LatticeClient::start_actor` for each round and stopped after it. It handles every
//!   message in a fresh instance under `max_concurrency` 64 (the host default), with the key-value link
//!   `keyvalue:default=inmemory` (in-process) and `messaging:in=nats,subscribe=<subject>` (at most once) or
//!   `…,delivery=at-least-once` (at least once).
//! - *native*: async-nats doing the same key-value work in a `HashMap` behind a mutex, inline on its reader task:
//!   a core subscription (at most once), or a durable pull consumer with explicit acks, configured as the host
//!   configures its own, fetching batches of 64 (the actor's concurrency) and acking each message after its work
//!   (at least once).
//!
//! **Actor.** `order-total` (examples/order-total): for each message `<id> <amount>` on `orders.stored` it makes two
//! in-process key-value increments (`total` by the amount, `orders` by 1); the native side makes the same two.
//! Not `kv-counter`: it replies to every message, and a message from a subscription has no reply address, so its
//! handler returns an error value: harmless at most once (counted, then logged), but at least once every message
//! is nak'ed, delivered 5 times and dead-lettered. `LATTICE_BENCH_WORKFLOW_ACTOR=kv-counter` measures it anyway
//! (one increment of key `bench` per message, subjects `bench.amo` / `bench.alo`); its at-least-once rounds then
//! fail the exactly-once check below.
//!
//! **Method.** Both modes measure the rate from the first handled message to the last, as seen by the subscriber
//! process itself: it polls its own counter every millisecond (the actor's in-memory store through the `KeyValue`
//! trait, the native map under its lock) and reports `(last - first count) / (last - first time)`. This process
//! (the driver) publishes from its own connection and its own process, and owns nats-server (JetStream on, file
//! storage in a tempdir). Sides alternate within each round, the first side alternating between rounds, after a
//! warm-up round each (N/4); 5 rounds per side and mode (2 with `LATTICE_BENCH_QUICK`), reported as the median per
//! side. Only one side consumes at a time: the native side unsubscribes (or stops fetching) at the end of its
//! round, and after `stop_actor` the driver waits 2 s for the host to finish leaving the actor's queue group (1 s).
//! - *At most once* (`amo`, N = 50,000; 10,000 quick): N messages published on a core subject at full speed (the
//!   client buffers them, N fits in a subscription's 64 Ki buffer), so the rate is how fast the subscriber drains
//!   them, i.e. its sustainable throughput; publishing overlaps the first part of it, for both sides alike. The
//!   native rate is bounded by how fast this process publishes and nats-server delivers. A message dropped by a
//!   slow consumer is never handled: `workflow_amo_*_dropped` is N minus handled, summed over rounds (a round ends
//!   2 s after the count last changed); more than N handled fails the run.
//! - *At least once* (`alo`, N = 20,000; 5,000 quick): before each round the stream `BENCH_WORKFLOW` (capturing
//!   the subject, file storage, like the one the host would create) is purged and its consumers deleted, N
//!   messages are stored (JetStream publishes, acks awaited 1000 at a time), then the side starts consuming: the
//!   actor is started (its host creates its durable consumer) or the native process creates its own. After the
//!   last message the consumer must have nothing pending or unacknowledged and the count must be exactly N.
//!
//! Prints `BENCH <name> <value>`; targets: `workflow_amo_ratio` and `workflow_alo_ratio` at least 0.5 (lattice
//! over native). Diagnostics, per message handled over the rounds: CPU time and read/write system calls of the
//! subscriber process and of nats-server (`/proc`; CPU in 100 Hz ticks, so coarse for short rounds); for at least
//! once also the pull requests per round, messages per pull request (counted by a driver subscription on
//! `$JS.API.CONSUMER.MSG.NEXT.BENCH_WORKFLOW.>`) and deliveries per message (the consumer's delivery sequence).
//!
//! `cargo bench -p lattice-tests --bench workflow` (`LATTICE_BENCH_QUICK=1` for a short run). Also:
//! `LATTICE_BENCH_WORKFLOW_MODES=amo|alo` (one mode), `LATTICE_BENCH_WORKFLOW_NATIVE_FETCH=<n>` (the native
//! consumer's fetch size, default 64), `LATTICE_BENCH_WORKFLOW_ACTOR=kv-counter` (see above).

use std::collections::HashMap;
use std::future::Future;
use std::io::{BufRead, BufReader, Read, Write};
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail, ensure};
use async_nats::jetstream::{self, consumer, stream};
use bytes::Bytes;
use futures::StreamExt;
use lattice_core::claims::{self, Policy, SignOptions};
use lattice_core::keys::{KeyKind, PublicKey, SeedKey};
use lattice_core::subject::Name;
use lattice_core::wire::{ArtifactRef, LimitsSpec, StartActor};
use lattice_host::RuntimeBuilder;
use lattice_host::lattice::{self, HostConfig, LatticeClient, NatsConfig};
use lattice_keyvalue_inmemory::InMemoryKeyValue;
use lattice_provider_sdk::KeyValue;
use lattice_test_harness::NatsServer;

/// The allocator the `lattice` binary uses, in every process of this benchmark.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Selects what a re-executed process of this binary is: `lattice` or `native`; unset, the driver.
const ROLE: &str = "LATTICE_BENCH_WORKFLOW_ROLE";
const NATS_URL: &str = "LATTICE_BENCH_WORKFLOW_NATS";
const ISSUER: &str = "LATTICE_BENCH_WORKFLOW_ISSUER";
const ARTIFACTS: &str = "LATTICE_BENCH_WORKFLOW_ARTIFACTS";
/// `order-total` (default) or `kv-counter`.
const ACTOR: &str = "LATTICE_BENCH_WORKFLOW_ACTOR";
/// The native consumer's fetch size (default [`CONCURRENCY`]), to compare fetch patterns.
const NATIVE_FETCH: &str = "LATTICE_BENCH_WORKFLOW_NATIVE_FETCH";
/// `amo`, `alo` or `amo,alo` (default).
const MODES: &str = "LATTICE_BENCH_WORKFLOW_MODES";

const LATTICE: &str = "bench";
const HOST_ID: &str = "workflow-host";
const STREAM: &str = "BENCH_WORKFLOW";
const NATIVE_CONSUMER: &str = "native";
/// The actor's concurrency (the host default) and the native consumer's fetch size.
const CONCURRENCY: u32 = 64;
/// How long the native consumer's fetch waits for messages (the host's `FETCH_WAIT`).
const FETCH_WAIT: Duration = Duration::from_secs(1);
/// How often a subscriber process reads its own counter.
const POLL: Duration = Duration::from_millis(1);
/// A round ends this long after the count last changed, if it never reaches N.
const IDLE: Duration = Duration::from_secs(2);
/// How long a stopped actor may keep handling messages from its subscriptions (the host's 1 s `LEAVE_WINDOW`,
/// and some).
const ACTOR_LEAVE: Duration = Duration::from_secs(2);
/// How long a subscriber may take to handle its first message (includes the first compilation).
const FIRST_WITHIN: Duration = Duration::from_secs(120);

fn quick() -> bool {
    std::env::var_os("LATTICE_BENCH_QUICK").is_some()
}

/// The modes measured: `LATTICE_BENCH_WORKFLOW_MODES` (`amo`, `alo`, comma-separated), by default both.
fn modes() -> anyhow::Result<Vec<Mode>> {
    let text = std::env::var(MODES).unwrap_or_else(|_| "amo,alo".into());
    text.split(',')
        .map(|m| match m.trim() {
            "amo" => Ok(Mode::Amo),
            "alo" => Ok(Mode::Alo),
            other => bail!("{MODES}: `{other}` is not amo or alo"),
        })
        .collect()
}

fn env(name: &str) -> anyhow::Result<String> {
    std::env::var(name).with_context(|| format!("{name} is not set"))
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Mode {
    /// At most once: core NATS.
    Amo,
    /// At least once: JetStream.
    Alo,
}

impl Mode {
    fn label(self) -> &'static str {
        match self {
            Mode::Amo => "amo",
            Mode::Alo => "alo",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Side {
    Lattice,
    Native,
}

impl Side {
    fn label(self) -> &'static str {
        match self {
            Side::Lattice => "lattice",
            Side::Native => "native",
        }
    }

    fn control_subject(self) -> String {
        format!("bench.ctl.{}", self.label())
    }
}

/// The actor measured and the key-value work the native subscriber does in its place.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Workload {
    OrderTotal,
    KvCounter,
}

impl Workload {
    fn from_env() -> anyhow::Result<Self> {
        match std::env::var(ACTOR).as_deref() {
            Err(_) | Ok("order-total") => Ok(Workload::OrderTotal),
            Ok("kv-counter") => Ok(Workload::KvCounter),
            Ok(other) => bail!("{ACTOR}=`{other}`: expected order-total or kv-counter"),
        }
    }

    fn actor(self) -> &'static str {
        match self {
            Workload::OrderTotal => "order-total",
            Workload::KvCounter => "kv-counter",
        }
    }

    fn component(self) -> &'static str {
        match self {
            Workload::OrderTotal => lattice_test_actors::ORDER_TOTAL,
            Workload::KvCounter => lattice_test_actors::KV_COUNTER,
        }
    }

    /// order-total handles only `orders.stored`; the stream that captures it exists only for the `alo` rounds,
    /// which run after every `amo` round.
    fn subject(self, mode: Mode) -> &'static str {
        match (self, mode) {
            (Workload::OrderTotal, _) => "orders.stored",
            (Workload::KvCounter, Mode::Amo) => "bench.amo",
            (Workload::KvCounter, Mode::Alo) => "bench.alo",
        }
    }

    fn payload(self, i: u64) -> Bytes {
        match self {
            Workload::OrderTotal => Bytes::from(format!("o-{i} 1")),
            Workload::KvCounter => Bytes::from_static(b"bench"),
        }
    }

    /// The key whose value counts the messages handled.
    fn counter(self) -> &'static str {
        match self {
            Workload::OrderTotal => "orders",
            Workload::KvCounter => "bench",
        }
    }

    /// The native side's key-value work for one message: what the actor does, in a map.
    fn apply(self, payload: &[u8], map: &mut HashMap<String, i64>) {
        match self {
            Workload::OrderTotal => {
                let text = std::str::from_utf8(payload).unwrap_or_default();
                let mut parts = text.split_whitespace();
                if let (Some(_id), Some(Ok(amount)), None) =
                    (parts.next(), parts.next().map(str::parse::<i64>), parts.next())
                {
                    *map.entry("total".to_owned()).or_default() += amount;
                    *map.entry("orders".to_owned()).or_default() += 1;
                }
            }
            Workload::KvCounter => {
                let key =
                    std::str::from_utf8(payload).map(str::trim).ok().filter(|k| !k.is_empty()).unwrap_or("counter");
                *map.entry(key.to_owned()).or_default() += 1;
            }
        }
    }
}

fn main() -> anyhow::Result<()> {
    let role = std::env::var(ROLE).ok();
    if role.is_some() {
        // A subscriber exits when the driver goes away (its stdin closes), even if the driver was killed.
        std::thread::spawn(|| {
            let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
            std::process::exit(0);
        });
    }
    match role.as_deref() {
        None => tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?.block_on(driver()),
        // The `lattice` binary's runtime: multi-threaded, one worker per core.
        Some(role) => {
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            match role {
                "lattice" => runtime.block_on(lattice_subscriber()),
                "native" => runtime.block_on(native_subscriber()),
                other => bail!("{ROLE}=`{other}`"),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Subscriber processes.

type CountFn = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = u64> + Send>> + Send + Sync>;

/// What the watcher saw between `arm` and the end of the round.
struct Watched {
    /// Messages handled since `arm`.
    handled: u64,
    /// Messages per second from the first count seen to the last change.
    rate: f64,
}

/// Reads the counter every [`POLL`] until it grew by `n` since `base` or stopped growing.
async fn watch(count: CountFn, base: u64, n: u64) -> Watched {
    let armed = Instant::now();
    let mut ticks = tokio::time::interval(POLL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut first: Option<(Instant, u64)> = None;
    let mut last = (armed, 0);
    loop {
        ticks.tick().await;
        let seen = count().await.saturating_sub(base);
        let now = Instant::now();
        if seen != last.1 {
            last = (now, seen);
            first.get_or_insert((now, seen));
        }
        let quiet = now - last.0;
        if seen >= n || (first.is_some() && quiet > IDLE) || (first.is_none() && quiet > FIRST_WITHIN) {
            break;
        }
    }
    let rate = match first {
        Some((at, count)) if last.1 > count => (last.1 - count) as f64 / (last.0 - at).as_secs_f64(),
        _ => 0.0,
    };
    Watched { handled: last.1, rate }
}

/// The native subscriber's state.
struct Native {
    client: async_nats::Client,
    js: jetstream::Context,
    workload: Workload,
    map: Arc<Mutex<HashMap<String, i64>>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Native {
    async fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
        self.client.flush().await?;
        Ok(())
    }

    async fn command(&mut self, words: &[&str]) -> anyhow::Result<String> {
        let (workload, map) = (self.workload, self.map.clone());
        match words {
            ["amo-start", subject] => {
                self.stop().await?;
                let mut messages = self.client.subscribe((*subject).to_owned()).await?;
                self.client.flush().await?;
                self.task = Some(tokio::spawn(async move {
                    while let Some(message) = messages.next().await {
                        workload.apply(&message.payload, &mut map.lock().unwrap_or_else(PoisonError::into_inner));
                    }
                }));
            }
            ["alo-start", stream, subject, fetch] => {
                let fetch: usize = fetch.parse()?;
                self.stop().await?;
                let stream = self.js.get_stream(*stream).await?;
                // What the host's `subscribe_durable` creates.
                let consumer = stream
                    .create_consumer(consumer::pull::Config {
                        durable_name: Some(NATIVE_CONSUMER.to_owned()),
                        ack_policy: consumer::AckPolicy::Explicit,
                        ack_wait: Duration::from_secs(30),
                        max_deliver: -1,
                        deliver_policy: consumer::DeliverPolicy::All,
                        filter_subject: (*subject).to_owned(),
                        ..Default::default()
                    })
                    .await?;
                self.task = Some(tokio::spawn(async move {
                    loop {
                        let batch = consumer.batch().max_messages(fetch).expires(FETCH_WAIT).messages().await;
                        let mut batch = match batch {
                            Ok(batch) => batch,
                            Err(error) => {
                                eprintln!("native: fetch failed: {error}");
                                tokio::time::sleep(Duration::from_millis(100)).await;
                                continue;
                            }
                        };
                        while let Some(message) = batch.next().await {
                            let Ok(message) = message else { break };
                            workload.apply(&message.payload, &mut map.lock().unwrap_or_else(PoisonError::into_inner));
                            if let Err(error) = message.ack().await {
                                eprintln!("native: ack failed: {error}");
                            }
                        }
                    }
                }));
            }
            ["stop"] => self.stop().await?,
            other => bail!("unknown command {other:?}"),
        }
        Ok("ok".into())
    }
}

/// Answers the driver on the side's control subject: `arm <n>`, `wait`, `count`, and the native side's own
/// commands. Prints `ready` once it listens.
async fn serve_control(
    client: async_nats::Client,
    side: Side,
    count: CountFn,
    mut native: Option<Native>,
) -> anyhow::Result<()> {
    let mut requests = client.subscribe(side.control_subject()).await?;
    client.flush().await?;
    println!("ready");
    std::io::stdout().flush()?;
    let mut base = 0;
    let mut watcher = None;
    while let Some(request) = requests.next().await {
        let text = String::from_utf8_lossy(&request.payload).into_owned();
        let words: Vec<&str> = text.split_whitespace().collect();
        let answer = match (words.as_slice(), native.as_mut()) {
            (["arm", n], _) => match n.parse() {
                Ok(n) => {
                    base = count().await;
                    watcher = Some(tokio::spawn(watch(count.clone(), base, n)));
                    "ok".to_owned()
                }
                Err(_) => format!("error: `{n}` is not a number"),
            },
            (["wait"], _) => match watcher.take() {
                Some(watcher) => match watcher.await {
                    Ok(watched) => format!("{} {}", watched.handled, watched.rate),
                    Err(error) => format!("error: {error}"),
                },
                None => "error: not armed".to_owned(),
            },
            (["count"], _) => count().await.saturating_sub(base).to_string(),
            (_, Some(native)) => native.command(&words).await.unwrap_or_else(|e| format!("error: {e:#}")),
            (_, None) => format!("error: unknown command `{text}`"),
        };
        if let Some(reply) = request.reply {
            client.publish(reply, answer.into()).await?;
        }
    }
    Ok(())
}

/// A lattice host whose built-in `inmemory` store this process can read.
async fn lattice_subscriber() -> anyhow::Result<()> {
    let url = env(NATS_URL)?;
    let workload = Workload::from_env()?;
    let issuer = PublicKey::parse_as(&env(ISSUER)?, KeyKind::Issuer)?;
    let kv = Arc::new(InMemoryKeyValue::new());
    let runtime = RuntimeBuilder::new()
        .policy(Policy { trusted_issuers: vec![issuer], ..Policy::default() })
        .keyvalue_provider(lattice_host::INMEMORY_PROVIDER, kv.clone())
        .build()?;
    let mut config = HostConfig::new(NatsConfig::new([url.clone()]), Name::new(LATTICE)?);
    config.id = Name::new(HOST_ID)?;
    config.artifact_dir = Some(env(ARTIFACTS)?.into());
    let host = lattice::start(config, runtime).await?;
    let key = workload.counter();
    let count: CountFn = Arc::new(move || {
        let kv = kv.clone();
        Box::pin(async move {
            let value = kv.get("default", key).await.ok().flatten();
            value.and_then(|v| String::from_utf8(v).ok()?.parse().ok()).unwrap_or(0)
        })
    });
    // The benchmark's own connection, not the host's.
    let client = async_nats::connect(&url).await?;
    serve_control(client, Side::Lattice, count, None).await?;
    host.stop().await;
    Ok(())
}

async fn native_subscriber() -> anyhow::Result<()> {
    let url = env(NATS_URL)?;
    let workload = Workload::from_env()?;
    let client = async_nats::connect(&url).await?;
    let map: Arc<Mutex<HashMap<String, i64>>> = Arc::default();
    let key = workload.counter();
    let count: CountFn = {
        let map = map.clone();
        Arc::new(move || {
            let value = map.lock().unwrap_or_else(PoisonError::into_inner).get(key).copied().unwrap_or(0);
            Box::pin(std::future::ready(u64::try_from(value).unwrap_or(0)))
        })
    };
    let native = Native { client: client.clone(), js: jetstream::new(client.clone()), workload, map, task: None };
    serve_control(client, Side::Native, count, Some(native)).await
}

// ---------------------------------------------------------------------------------------------------------------
// The driver.

/// A subscriber process, killed on drop.
struct Process {
    child: Child,
}

impl Process {
    /// Starts this binary as `side` and waits until it prints `ready`.
    fn spawn(side: Side, envs: &[(&str, String)]) -> anyhow::Result<Self> {
        let mut command = Command::new(std::env::current_exe()?);
        command.env(ROLE, side.label()).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit());
        for (name, value) in envs {
            command.env(name, value);
        }
        let mut child = command.spawn().with_context(|| format!("starting the {} subscriber", side.label()))?;
        let stdout = child.stdout.take().context("stdout is piped")?;
        let process = Process { child };
        let mut line = String::new();
        let mut reader = BufReader::new(stdout);
        reader.read_line(&mut line)?;
        ensure!(line.trim() == "ready", "the {} subscriber did not start (it said {line:?})", side.label());
        // Nothing else is printed; keep the pipe drained anyway.
        std::thread::spawn(move || {
            let _ = reader.read_to_end(&mut Vec::new());
        });
        Ok(process)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a process used so far (Linux `/proc`), or over a round.
#[derive(Clone, Copy, Default)]
struct Usage {
    /// CPU time, user + system, seconds (100 Hz ticks).
    cpu: f64,
    /// Read and write system calls.
    reads: u64,
    writes: u64,
}

impl Usage {
    fn of(pid: u32) -> Option<Usage> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let rest = stat.get(stat.rfind(')')? + 2..)?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        let io = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
        let field = |name: &str| io.lines().find_map(|l| l.strip_prefix(name)?.trim().parse::<u64>().ok());
        Some(Usage { cpu: ticks as f64 / 100.0, reads: field("syscr:")?, writes: field("syscw:")? })
    }

    fn since(self, before: Usage) -> Usage {
        Usage { cpu: self.cpu - before.cpu, reads: self.reads - before.reads, writes: self.writes - before.writes }
    }

    fn add(self, other: Usage) -> Usage {
        Usage { cpu: self.cpu + other.cpu, reads: self.reads + other.reads, writes: self.writes + other.writes }
    }
}

/// Counts the pull requests made on the benchmark's stream and the messages they asked for.
#[derive(Default)]
struct Pulls {
    requests: AtomicU64,
    asked: AtomicU64,
}

impl Pulls {
    fn snapshot(&self) -> (u64, u64) {
        (self.requests.load(Ordering::Relaxed), self.asked.load(Ordering::Relaxed))
    }
}

/// `"batch":<n>` in a pull request.
fn batch_size(payload: &[u8]) -> u64 {
    let text = String::from_utf8_lossy(payload);
    text.split_once("\"batch\":")
        .map(|(_, rest)| rest.chars().take_while(char::is_ascii_digit).collect::<String>())
        .and_then(|digits| digits.parse().ok())
        .unwrap_or(0)
}

/// One measured round of one side.
struct Round {
    handled: u64,
    rate: f64,
    subscriber: Option<Usage>,
    server: Option<Usage>,
    pulls: (u64, u64),
    /// Deliveries the consumer made (at least once).
    deliveries: u64,
}

struct Driver {
    workload: Workload,
    control: LatticeClient,
    driver: async_nats::Client,
    publisher: async_nats::Client,
    js: jetstream::Context,
    host: Name,
    actor: Name,
    artifact: String,
    lattice: Process,
    native: Process,
    server_pid: Option<u32>,
    pulls: Arc<Pulls>,
    /// Messages per fetch of the native consumer.
    native_fetch: u32,
}

impl Driver {
    /// Sends a control command to a subscriber process and returns its answer.
    async fn ctl(&self, side: Side, command: &str) -> anyhow::Result<String> {
        let request = async_nats::Request::new()
            .payload(Bytes::copy_from_slice(command.as_bytes()))
            .timeout(Some(Duration::from_secs(600)));
        let reply = self.driver.send_request(side.control_subject(), request).await?;
        let answer = String::from_utf8_lossy(&reply.payload).into_owned();
        ensure!(!answer.starts_with("error"), "{} subscriber, `{command}`: {answer}", side.label());
        Ok(answer)
    }

    async fn start_actor(&self, mode: Mode) -> anyhow::Result<()> {
        let subject = self.workload.subject(mode);
        let messaging = match mode {
            Mode::Amo => format!("messaging:in=nats,subscribe={subject}"),
            Mode::Alo => format!("messaging:in=nats,subscribe={subject},delivery=at-least-once"),
        };
        let request = StartActor {
            name: self.actor.clone(),
            artifact: ArtifactRef::Path(self.artifact.clone()),
            limits: LimitsSpec { max_concurrency: Some(CONCURRENCY), ..LimitsSpec::default() },
            links: vec!["keyvalue:default=inmemory".into(), messaging],
            owner: None,
            digest: None,
        };
        self.control.start_actor(&self.host, &request).await.context("starting the actor")?;
        Ok(())
    }

    async fn start(&self, side: Side, mode: Mode) -> anyhow::Result<()> {
        let subject = self.workload.subject(mode);
        match (side, mode) {
            (Side::Lattice, _) => self.start_actor(mode).await,
            (Side::Native, Mode::Amo) => self.ctl(side, &format!("amo-start {subject}")).await.map(drop),
            (Side::Native, Mode::Alo) => {
                self.ctl(side, &format!("alo-start {STREAM} {subject} {}", self.native_fetch)).await.map(drop)
            }
        }
    }

    async fn stop(&self, side: Side) -> anyhow::Result<()> {
        match side {
            Side::Lattice => {
                self.control.stop_actor(&self.host, &self.actor).await.context("stopping the actor")?;
                // The stopped actor keeps its messaging subscriptions until its last clone is dropped, which its
                // invocation-serving task holds while it leaves the queue group (up to 1 s).
                tokio::time::sleep(ACTOR_LEAVE).await;
                Ok(())
            }
            Side::Native => self.ctl(side, "stop").await.map(drop),
        }
    }

    fn process(&self, side: Side) -> &Process {
        match side {
            Side::Lattice => &self.lattice,
            Side::Native => &self.native,
        }
    }

    /// Arms the side's watcher, runs `load`, waits for the side to handle `n` messages (or stop handling).
    async fn measure(
        &self,
        side: Side,
        n: u64,
        load: impl Future<Output = anyhow::Result<()>>,
    ) -> anyhow::Result<Round> {
        let pid = self.process(side).pid();
        self.ctl(side, &format!("arm {n}")).await?;
        let (usage, server, pulls) = (Usage::of(pid), self.server_pid.and_then(Usage::of), self.pulls.snapshot());
        load.await?;
        let answer = self.ctl(side, "wait").await?;
        let (handled, rate) = answer.split_once(' ').context("a `wait` answer")?;
        let after = self.pulls.snapshot();
        let delta = |before: Option<Usage>, after: Option<Usage>| Some(after?.since(before?));
        Ok(Round {
            handled: handled.parse()?,
            rate: rate.parse()?,
            subscriber: delta(usage, Usage::of(pid)),
            server: delta(server, self.server_pid.and_then(Usage::of)),
            pulls: (after.0 - pulls.0, after.1 - pulls.1),
            deliveries: 0,
        })
    }

    async fn amo_round(&self, side: Side, n: u64) -> anyhow::Result<Round> {
        let subject = self.workload.subject(Mode::Amo);
        self.start(side, Mode::Amo).await?;
        let round = self
            .measure(side, n, async {
                for i in 0..n {
                    self.publisher.publish(subject, self.workload.payload(i)).await?;
                }
                self.publisher.flush().await?;
                Ok(())
            })
            .await?;
        self.stop(side).await?;
        // Only N were published: more means a subscription of an earlier round still handled them.
        let count: u64 = self.ctl(side, "count").await?.parse()?;
        ensure!(count <= n, "{}: {count} messages handled for {n} published", side.label());
        Ok(round)
    }

    /// Empties the stream and deletes its consumers, so a round starts from a fresh consumer on N messages.
    async fn reset_stream(&self) -> anyhow::Result<stream::Stream> {
        let stream = self.js.get_stream(STREAM).await?;
        let names: Vec<String> =
            stream.consumer_names().collect::<Vec<_>>().await.into_iter().collect::<Result<_, _>>()?;
        for name in names {
            stream.delete_consumer(&name).await?;
        }
        stream.purge().await?;
        Ok(stream)
    }

    async fn preload(&self, n: u64) -> anyhow::Result<()> {
        let subject = self.workload.subject(Mode::Alo);
        let mut acks = Vec::with_capacity(1000);
        for i in 0..n {
            acks.push(self.js.publish(subject, self.workload.payload(i)).await?);
            if acks.len() == 1000 || i + 1 == n {
                for ack in acks.drain(..) {
                    ack.await?;
                }
            }
        }
        Ok(())
    }

    async fn alo_round(&self, side: Side, n: u64) -> anyhow::Result<Round> {
        let stream = self.reset_stream().await?;
        self.preload(n).await?;
        let mut round = self.measure(side, n, self.start(side, Mode::Alo)).await?;
        // Everything acknowledged, nothing delivered twice.
        let names: Vec<String> =
            stream.consumer_names().collect::<Vec<_>>().await.into_iter().collect::<Result<_, _>>()?;
        let [name] = names.as_slice() else { bail!("expected one consumer on {STREAM}, found {names:?}") };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let info = stream.consumer_info(name).await?;
            if info.num_ack_pending == 0 && info.num_pending == 0 {
                round.deliveries = info.delivered.consumer_sequence;
                break;
            }
            ensure!(Instant::now() < deadline, "{}: consumer `{name}` never settled: {info:?}", side.label());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let count: u64 = self.ctl(side, "count").await?.parse()?;
        ensure!(
            count == n,
            "{}: {count} messages handled for {n} stored: the handler failed and messages were delivered again",
            side.label()
        );
        self.stop(side).await?;
        Ok(round)
    }

    async fn round(&self, mode: Mode, side: Side, n: u64) -> anyhow::Result<Round> {
        match mode {
            Mode::Amo => self.amo_round(side, n).await,
            Mode::Alo => self.alo_round(side, n).await,
        }
    }
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => 0.0,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

async fn driver() -> anyhow::Result<()> {
    let workload = Workload::from_env()?;
    let (rounds, sizes) = if quick() {
        (2, [(Mode::Amo, 10_000), (Mode::Alo, 5_000)])
    } else {
        (5, [(Mode::Amo, 50_000), (Mode::Alo, 20_000)])
    };
    let modes = modes()?;
    let nats = NatsServer::start()?;
    let url = nats.url();

    let issuer = SeedKey::generate(KeyKind::Issuer)?;
    let subject = SeedKey::generate(KeyKind::Actor)?.public_key();
    let signed = claims::sign(
        &std::fs::read(workload.component())?,
        &issuer,
        &subject,
        SignOptions {
            name: workload.actor().into(),
            version: "0.1.0".into(),
            interfaces: vec!["wasi:keyvalue".into(), "wasi:messaging".into()],
            issued_at: now_secs(),
            ..SignOptions::default()
        },
    )?;
    let dir = tempfile::tempdir()?;
    let artifact = dir.path().join(format!("{}.signed.wasm", workload.actor()));
    std::fs::write(&artifact, signed)?;

    let envs = [
        (NATS_URL, url.clone()),
        (ISSUER, issuer.public_key().to_string()),
        (ARTIFACTS, dir.path().display().to_string()),
        (ACTOR, workload.actor().to_owned()),
    ];
    let lattice = Process::spawn(Side::Lattice, &envs)?;
    let native = Process::spawn(Side::Native, &envs)?;

    let driver = async_nats::connect(&url).await?;
    let publisher = async_nats::connect(&url).await?;
    let pulls = Arc::new(Pulls::default());
    let mut pull_requests = driver.subscribe(format!("$JS.API.CONSUMER.MSG.NEXT.{STREAM}.>")).await?;
    tokio::spawn({
        let pulls = pulls.clone();
        async move {
            while let Some(request) = pull_requests.next().await {
                pulls.requests.fetch_add(1, Ordering::Relaxed);
                pulls.asked.fetch_add(batch_size(&request.payload), Ordering::Relaxed);
            }
        }
    });
    let bench = Driver {
        workload,
        control: LatticeClient::new(driver.clone(), Name::new(LATTICE)?),
        driver,
        js: jetstream::new(publisher.clone()),
        publisher,
        host: Name::new(HOST_ID)?,
        actor: Name::new(workload.actor())?,
        artifact: artifact.display().to_string(),
        lattice,
        native,
        server_pid: nats.pid(),
        pulls,
        native_fetch: match std::env::var(NATIVE_FETCH) {
            Ok(text) => text.parse().with_context(|| format!("{NATIVE_FETCH}=`{text}`"))?,
            Err(_) => CONCURRENCY,
        },
    };

    let mut results: HashMap<(Mode, Side), Vec<Round>> = HashMap::new();
    for (mode, n) in sizes {
        if !modes.contains(&mode) {
            continue;
        }
        if mode == Mode::Alo {
            // Like the stream the host would create for the link.
            bench
                .js
                .create_stream(stream::Config {
                    name: STREAM.into(),
                    subjects: vec![workload.subject(Mode::Alo).into()],
                    storage: stream::StorageType::File,
                    max_age: Duration::from_secs(24 * 3600),
                    ..Default::default()
                })
                .await?;
        }
        for side in [Side::Lattice, Side::Native] {
            bench
                .round(mode, side, n / 4)
                .await
                .with_context(|| format!("{} warm-up, {}", mode.label(), side.label()))?;
        }
        for r in 0..rounds {
            let order = if r % 2 == 0 { [Side::Lattice, Side::Native] } else { [Side::Native, Side::Lattice] };
            for side in order {
                let round = bench
                    .round(mode, side, n)
                    .await
                    .with_context(|| format!("{} round {r}, {}", mode.label(), side.label()))?;
                eprintln!(
                    "{} {} round {r}: {} handled, {:.0} msgs/s",
                    mode.label(),
                    side.label(),
                    round.handled,
                    round.rate
                );
                results.entry((mode, side)).or_default().push(round);
            }
        }
    }

    for (mode, n) in sizes {
        if !modes.contains(&mode) {
            continue;
        }
        let m = mode.label();
        let mut medians = HashMap::new();
        for side in [Side::Lattice, Side::Native] {
            let s = side.label();
            let rounds = results.remove(&(mode, side)).unwrap_or_default();
            let rate = median(rounds.iter().map(|r| r.rate).collect());
            medians.insert(side, rate);
            println!("BENCH workflow_{m}_{s}_msgs_per_s {rate:.0}");
            let handled: u64 = rounds.iter().map(|r| r.handled).sum();
            if mode == Mode::Amo {
                let dropped = (n * rounds.len() as u64).saturating_sub(handled);
                println!("BENCH workflow_{m}_{s}_dropped {dropped}");
            }
            let per_msg = |x: f64| x / handled.max(1) as f64;
            let total = |f: fn(&Round) -> Option<Usage>| {
                rounds.iter().try_fold(Usage::default(), |sum, round| Some(sum.add(f(round)?)))
            };
            if let Some(usage) = total(|r| r.subscriber) {
                println!("BENCH workflow_{m}_{s}_cpu_us_per_msg {:.1}", per_msg(usage.cpu * 1e6));
                println!("BENCH workflow_{m}_{s}_write_syscalls_per_msg {:.3}", per_msg(usage.writes as f64));
                println!("BENCH workflow_{m}_{s}_read_syscalls_per_msg {:.3}", per_msg(usage.reads as f64));
            }
            if let Some(usage) = total(|r| r.server) {
                println!("BENCH workflow_{m}_{s}_server_cpu_us_per_msg {:.1}", per_msg(usage.cpu * 1e6));
                println!("BENCH workflow_{m}_{s}_server_read_syscalls_per_msg {:.3}", per_msg(usage.reads as f64));
            }
            if mode == Mode::Alo {
                let requests: u64 = rounds.iter().map(|r| r.pulls.0).sum();
                let asked: u64 = rounds.iter().map(|r| r.pulls.1).sum();
                println!(
                    "BENCH workflow_{m}_{s}_pull_requests_per_round {:.0}",
                    requests as f64 / rounds.len().max(1) as f64
                );
                println!("BENCH workflow_{m}_{s}_msgs_per_pull {:.1}", handled as f64 / requests.max(1) as f64);
                println!("BENCH workflow_{m}_{s}_asked_per_pull {:.1}", asked as f64 / requests.max(1) as f64);
                let deliveries: u64 = rounds.iter().map(|r| r.deliveries).sum();
                println!("BENCH workflow_{m}_{s}_deliveries_per_msg {:.3}", per_msg(deliveries as f64));
            }
        }
        let ratio = medians[&Side::Lattice] / medians[&Side::Native];
        println!("BENCH workflow_{m}_ratio {ratio:.3}");
    }
    drop(bench);
    drop(nats);
    Ok(())
}
