//! Lattice scenarios: hosts built in-process (each with its own runtime) joined over a real `nats-server`
//! started by `lattice_test_harness` on a free port, driven through `LatticeClient`. One module per topic.
//!
//! Every test starts its own server and uses its own lattice name, so tests are independent and run in
//! parallel. Nothing waits on a fixed sleep: tests wait for events, or poll with a deadline (`wait_for`).

mod artifacts;
mod cluster;
mod control;
mod delivery;
mod digests;
mod errors;
mod events;
mod exhaustion;
mod headers;
mod host_identity;
mod http;
mod ingress;
mod isolation;
mod links;
mod nats_accounts;
mod operators;
mod placement;
mod provider_isolation;
mod providers;
mod reconnect;
mod redis;
mod reply_subjects;
mod scale;
mod shutdown;
mod supervision;
mod trace;
mod workflow;

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use lattice_core::claims::Policy;
use lattice_core::subject::Name;
use lattice_core::wire::{ArtifactRef, Event, LimitsSpec, StartActor, WireError};
use lattice_host::lattice::{self, CallReply, ClientError, HostConfig, LatticeClient, NatsConfig, RunningHost};
use lattice_host::{EngineConfig, Runtime, RuntimeBuilder};
use lattice_test_harness::NatsServer;

/// Heartbeat of every test host: short, so "lost" and heartbeat events are quick to observe.
pub const HEARTBEAT: Duration = Duration::from_millis(300);
/// How long scatter/gather requests (ping, auction) collect answers. Hosts are on loopback and answer in
/// well under a millisecond; this only bounds how long the gather waits for stragglers.
pub const GATHER: Duration = Duration::from_millis(300);
/// Timeout of one call: generous, so a busy 2-core machine never fails a call that would succeed.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(15);
/// Timeout of control requests (a start compiles the component).
pub const CONTROL_TIMEOUT: Duration = Duration::from_secs(60);

/// A name, panicking if invalid (test literals only).
pub fn name(s: &str) -> Name {
    Name::new(s).unwrap_or_else(|e| panic!("{e}"))
}

/// A fresh runtime for one host: small pool (tests run many engines in one process), unsigned actors
/// allowed (the test actors are not signed).
pub fn runtime() -> Runtime {
    RuntimeBuilder::new()
        .engine(EngineConfig { max_instances: 128, max_memory_bytes: 64 << 20, ..EngineConfig::default() })
        .policy(Policy { allow_unsigned: true, ..Policy::default() })
        .build()
        .unwrap_or_else(|e| panic!("building a runtime: {e}"))
}

/// One test's lattice: its own `nats-server` (JetStream on) and lattice name.
pub struct TestLattice {
    pub nats: NatsServer,
    pub name: Name,
}

impl TestLattice {
    /// Starts a server (off the async threads: the harness blocks until it is ready).
    pub async fn start(lattice: &str) -> Result<Self> {
        let nats = tokio::task::spawn_blocking(NatsServer::start).await??;
        Ok(Self { nats, name: name(lattice) })
    }

    pub fn nats_config(&self) -> NatsConfig {
        NatsConfig::new([self.nats.url()])
    }

    pub fn host_config(&self, id: &str, pairs: &[(&str, &str)]) -> HostConfig {
        let mut config = HostConfig::new(self.nats_config(), self.name.clone());
        config.id = name(id);
        config.labels = labels(pairs);
        config.heartbeat = HEARTBEAT;
        config.artifact_dir = Some(guest_dir());
        config
    }

    /// Starts host `id` with `labels`; returns once it has announced itself.
    pub async fn host(&self, id: &str, labels: &[(&str, &str)]) -> Result<RunningHost> {
        lattice::start(self.host_config(id, labels), runtime()).await.with_context(|| format!("starting host {id}"))
    }

    /// A client on its own NATS connection.
    pub async fn client(&self) -> Result<LatticeClient> {
        Ok(LatticeClient::connect(&self.nats_config(), self.name.clone()).await?.with_timeout(CONTROL_TIMEOUT))
    }
}

/// The directory of the test actors' components: every test host's artifact directory.
pub fn guest_dir() -> std::path::PathBuf {
    std::path::Path::new(lattice_test_actors::KV_COUNTER)
        .parent()
        .unwrap_or_else(|| panic!("{} has a parent directory", lattice_test_actors::KV_COUNTER))
        .to_owned()
}

/// Starts `kv-counter` from the workspace's build, linked to the in-memory key-value store.
pub fn kv_counter(actor: &Name) -> StartActor {
    start_request(actor, ArtifactRef::Path(lattice_test_actors::KV_COUNTER.to_owned()))
}

/// A start request for `artifact`, linked to the in-memory key-value store.
pub fn start_request(actor: &Name, artifact: ArtifactRef) -> StartActor {
    StartActor {
        name: actor.clone(),
        artifact,
        limits: LimitsSpec::default(),
        links: vec!["keyvalue:default=inmemory".to_owned()],
        owner: None,
        digest: None,
    }
}

/// Calls `actor` with `payload`.
pub async fn call(client: &LatticeClient, actor: &Name, payload: &str) -> Result<CallReply, ClientError> {
    client.call(actor, None, Bytes::copy_from_slice(payload.as_bytes()), CALL_TIMEOUT, None).await
}

/// The reply's text; fails if the actor did not reply.
pub fn text(reply: &CallReply) -> Result<String> {
    let data = reply.data.as_ref().ok_or_else(|| anyhow!("the actor sent no reply"))?;
    Ok(String::from_utf8(data.to_vec())?)
}

/// Reads events until one satisfies `pred` (skipping others), failing after `deadline`.
pub async fn expect_event<S>(
    events: &mut S,
    what: &str,
    deadline: Duration,
    mut pred: impl FnMut(&Event) -> bool,
) -> Result<Event>
where
    S: Stream<Item = Result<Event, WireError>> + Unpin,
{
    let until = tokio::time::Instant::now() + deadline;
    loop {
        match tokio::time::timeout_at(until, events.next()).await {
            Err(_) => bail!("no {what} event within {deadline:?}"),
            Ok(None) => bail!("the event stream ended before a {what} event"),
            Ok(Some(Err(error))) => bail!("undecodable event while waiting for {what}: {error}"),
            Ok(Some(Ok(event))) if pred(&event) => return Ok(event),
            Ok(Some(Ok(_))) => {}
        }
    }
}

/// Makes `config` trust `operator` and gives it a fresh host key with a credential `operator` issued for its id,
/// lattice and labels (valid for an hour). Call it once the id, lattice and labels are set.
pub fn credentialed(mut config: HostConfig, operator: &lattice_core::keys::SeedKey) -> HostConfig {
    use lattice_core::keys::{KeyKind, SeedKey};
    let key = SeedKey::generate(KeyKind::Host).unwrap_or_else(|e| panic!("{e}"));
    let now = now_ms();
    config.host_credential = Some(lattice_core::host_auth::HostCredential::issue(
        operator,
        config.id.clone(),
        config.lattice.clone(),
        key.public_key(),
        config.labels.clone(),
        now,
        now + 3_600_000,
    ));
    config.host_key = Some(key);
    if !config.operators.trusted.contains(&operator.public_key()) {
        config.operators.trusted.push(operator.public_key());
    }
    config
}

/// Unix time in milliseconds.
pub fn now_ms() -> u64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}

/// `key=value` pairs as a map.
pub fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}
