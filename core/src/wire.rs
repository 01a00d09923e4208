//! Wire types of the lattice protocol: control requests and replies, events, invocation headers.
//!
//! Every control message is MessagePack (rmp-serde, maps with field names, so fields can be added) wrapped
//! in an [`Envelope`] carrying [`PROTOCOL_VERSION`]. [`decode`] reads the version first, so a message from a
//! newer or older peer gets [`ErrorCode::UnsupportedVersion`] rather than a confusing parse error, and garbage
//! gets [`ErrorCode::BadRequest`]. Replies are `Envelope<Result<T, WireError>>`: a reply reports the outcome
//! (started, with its capacity; or the exact error), not mere receipt.
//!
//! Invocations are not MessagePack: the NATS payload is the message data itself, with metadata in headers
//! ([`headers`]), so the hot path encodes nothing.
//!
//! **Invariant:** only types in this module derive `Serialize` for the wire.
//!
//! ```
//! use lattice_core::wire::{self, Envelope, StopActor, ErrorCode};
//! use lattice_core::subject::Name;
//!
//! let bytes = wire::encode(&StopActor { name: Name::new("kv-counter").unwrap() });
//! let back: StopActor = wire::decode(&bytes).unwrap();
//! assert_eq!(back.name.as_str(), "kv-counter");
//! assert_eq!(wire::decode::<StopActor>(b"garbage").unwrap_err().code, ErrorCode::BadRequest);
//! ```

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::keys::PublicKey;
use crate::subject::Name;

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u16 = 1;

/// A versioned message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope<T> {
    /// Protocol version of the sender.
    pub v: u16,
    /// The message.
    pub body: T,
}

/// What went wrong, as carried in error replies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct WireError {
    /// A machine-readable class.
    pub code: ErrorCode,
    /// One line a person can act on.
    pub message: String,
}

impl WireError {
    /// An error of class `code`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }
}

/// Classes of errors a host reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The request could not be decoded or is invalid.
    BadRequest,
    /// The request's protocol version is not spoken here.
    UnsupportedVersion,
    /// An actor, artifact or host that was named does not exist.
    NotFound,
    /// The actor's claims were refused by the host's policy.
    Rejected,
    /// The component did not compile or does not fit the actor world.
    CompileFailed,
    /// Limits or links are invalid.
    InvalidConfig,
    /// An artifact's bytes do not match its recorded digest.
    DigestMismatch,
    /// The host is stopping or a backend is unreachable.
    Unavailable,
    /// The invocation failed (trap, limit, handler error).
    InvocationFailed,
    /// The invocation timed out.
    Timeout,
    /// A bug or an unexpected failure on the host.
    Internal,
    /// The control request (or link record) is not signed by an operator the host trusts, or its signature is
    /// forged, expired, from the future or replayed; the message says which.
    Unauthorized,
}

impl ErrorCode {
    /// Stable text form, used in invocation headers.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad-request",
            ErrorCode::UnsupportedVersion => "unsupported-version",
            ErrorCode::NotFound => "not-found",
            ErrorCode::Rejected => "rejected",
            ErrorCode::CompileFailed => "compile-failed",
            ErrorCode::InvalidConfig => "invalid-config",
            ErrorCode::DigestMismatch => "digest-mismatch",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::InvocationFailed => "invocation-failed",
            ErrorCode::Timeout => "timeout",
            ErrorCode::Internal => "internal",
            ErrorCode::Unauthorized => "unauthorized",
        }
    }

    /// The code named by [`ErrorCode::as_str`]; unknown text maps to `Internal`.
    pub fn parse(text: &str) -> ErrorCode {
        [
            ErrorCode::BadRequest,
            ErrorCode::UnsupportedVersion,
            ErrorCode::NotFound,
            ErrorCode::Rejected,
            ErrorCode::CompileFailed,
            ErrorCode::InvalidConfig,
            ErrorCode::DigestMismatch,
            ErrorCode::Unavailable,
            ErrorCode::InvocationFailed,
            ErrorCode::Timeout,
            ErrorCode::Unauthorized,
        ]
        .into_iter()
        .find(|c| c.as_str() == text)
        .unwrap_or(ErrorCode::Internal)
    }
}

/// A reply to a control request.
pub type Reply<T> = Result<T, WireError>;

/// Encodes `body` in an envelope of the current version.
pub fn encode<T: Serialize>(body: &T) -> Vec<u8> {
    // Serializing our own plain structs to a Vec cannot fail: there are no maps with non-string keys and no
    // IO. Fall back to an empty body rather than panicking if that ever changes.
    rmp_serde::to_vec_named(&Envelope { v: PROTOCOL_VERSION, body }).unwrap_or_default()
}

#[derive(Deserialize)]
struct VersionOnly {
    v: u16,
}

/// Decodes an envelope of the current version.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, WireError> {
    let version: VersionOnly = rmp_serde::from_slice(bytes).map_err(|e| {
        WireError::new(ErrorCode::BadRequest, format!("malformed message: not a lattice envelope ({e})"))
    })?;
    if version.v != PROTOCOL_VERSION {
        return Err(WireError::new(
            ErrorCode::UnsupportedVersion,
            format!("unsupported protocol version {} (this peer speaks {PROTOCOL_VERSION})", version.v),
        ));
    }
    let envelope: Envelope<T> = rmp_serde::from_slice(bytes)
        .map_err(|e| WireError::new(ErrorCode::BadRequest, format!("malformed message body: {e}")))?;
    Ok(envelope.body)
}

/// Decodes a reply: transport-level decoding failures become `BadRequest` errors too.
pub fn decode_reply<T: DeserializeOwned>(bytes: &[u8]) -> Reply<T> {
    decode::<Reply<T>>(bytes)?
}

/// Header names of invocation messages.
pub mod headers {
    /// `ok` or `error` on every invocation reply.
    pub const STATUS: &str = "Lattice-Status";
    /// On error replies: the [`ErrorCode`](super::ErrorCode) text; the payload is the message.
    pub const ERROR_CODE: &str = "Lattice-Error-Code";
    /// On ok replies where the actor sent no reply: `none`.
    pub const REPLY: &str = "Lattice-Reply";
    /// On requests: the topic the message is delivered as.
    pub const TOPIC: &str = "Lattice-Topic";
    /// On requests and replies: the payload's content type.
    pub const CONTENT_TYPE: &str = "Content-Type";
    /// W3C trace context.
    pub const TRACEPARENT: &str = "traceparent";
    /// On replies: which host served the invocation.
    pub const HOST: &str = "Lattice-Host";
    /// On an invocation: the payload is an [`crate::http::HttpRequest`] for the actor's
    /// `wasi:http/incoming-handler`, and the reply's an [`crate::http::HttpResponse`].
    pub const HTTP: &str = "Lattice-Http";
    /// On signed control requests: the operator's public key (`O…`).
    pub const OPERATOR: &str = "Lattice-Operator";
    /// On signed control requests: when it was signed, unix milliseconds (decimal).
    pub const AUTH_IAT: &str = "Lattice-Auth-Iat";
    /// On signed control requests: a random 16-byte nonce, hex.
    pub const AUTH_NONCE: &str = "Lattice-Auth-Nonce";
    /// On signed control requests: the ed25519 signature, hex (see `control_auth::request_message`).
    pub const AUTH_SIG: &str = "Lattice-Auth-Sig";
    /// On what a host publishes (events, bids, ping answers, control replies, remote-provider calls): its
    /// signature and credential, `crate::host_auth::HostSeal::to_text`.
    pub const HOST_SEAL: &str = "Lattice-Host-Seal";
    /// A message's id, stable across deliveries (at-least-once delivery, `lattice call --retry`).
    pub const MESSAGE_ID: &str = "lattice-msg-id";
    /// The id JetStream deduplicates published messages on.
    pub const NATS_MSG_ID: &str = "Nats-Msg-Id";
    /// On dead letters: the subject the message was published on.
    pub const DLQ_SUBJECT: &str = "Lattice-Dlq-Subject";
    /// On dead letters: why its last delivery failed.
    pub const DLQ_REASON: &str = "Lattice-Dlq-Reason";
    /// On dead letters: how many times it was delivered.
    pub const DLQ_ATTEMPTS: &str = "Lattice-Dlq-Attempts";
    /// On dead letters: the actor's link it arrived through.
    pub const DLQ_LINK: &str = "Lattice-Dlq-Link";
    /// On dead letters: the host that dead-lettered it.
    pub const DLQ_HOST: &str = "Lattice-Dlq-Host";
}

/// Where a host gets an actor's component.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ArtifactRef {
    /// A file on the host's own disk.
    Path(String),
    /// An object pushed to the lattice's artifact store (`lattice push`).
    Lattice(String),
}

/// Optional overrides of an actor's limits; unset fields keep the host's defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitsSpec {
    /// Memory cap per instance, bytes.
    pub memory_bytes: Option<u64>,
    /// CPU time per invocation, milliseconds.
    pub cpu_time_ms: Option<u64>,
    /// Wall-clock timeout per invocation, milliseconds.
    pub timeout_ms: Option<u64>,
    /// Instances at once on this host.
    pub max_concurrency: Option<u32>,
    /// Largest reply, bytes.
    pub max_reply_bytes: Option<u64>,
    /// Invocations one instance may serve one after another (1, the default: a fresh instance each).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_reuse: Option<u32>,
}

/// `actor.start`: start an actor (or replace the running one of that name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartActor {
    /// The actor's name in the lattice (its invoke subject).
    pub name: Name,
    /// Where its component comes from.
    pub artifact: ArtifactRef,
    /// Limit overrides.
    pub limits: LimitsSpec,
    /// Link specs (`keyvalue:default=inmemory`…).
    pub links: Vec<String>,
    /// The app placing it (set by the reconciler).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<Owner>,
    /// The sha256 the component's bytes must have, lowercase hex: the host refuses any other bytes, whatever
    /// the artifact store holds under the name (`ErrorCode::DigestMismatch`). Part of the signed payload, so an
    /// operator's signature covers it. Absent (older clients): a host that trusts operators refuses to start an
    /// [`ArtifactRef::Lattice`] artifact without it; a path artifact needs none (it is on the host's own disk).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

/// What a host runs of one actor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActorInfo {
    /// The actor's name.
    pub name: Name,
    /// sha256 of its component, hex.
    pub digest: String,
    /// Instances that may run at once on this host.
    pub max_concurrency: u32,
    /// Whether its compiled code came from the cache.
    pub from_cache: bool,
    /// Milliseconds from request to ready.
    pub load_ms: u64,
    /// Its claims' subject (actor public key), when signed.
    pub subject: Option<String>,
    /// Its links.
    pub links: Vec<String>,
    /// The app that placed it; `None` when started by hand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<Owner>,
    /// Whether it serves HTTP (exports `wasi:http/incoming-handler`), so a route to it can work. `false` from
    /// hosts older than this field.
    #[serde(default)]
    pub http: bool,
}

/// Reply to `actor.start`: the actor is ready to serve.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActorStarted {
    /// The host that started it.
    pub host: Name,
    /// What now runs.
    pub actor: ActorInfo,
}

/// `actor.stop`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopActor {
    /// The actor to stop.
    pub name: Name,
}

/// Reply to `actor.stop`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActorStopped {
    /// The host.
    pub host: Name,
    /// The actor stopped.
    pub name: Name,
}

/// `actor.scale`: change how many instances may run at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScaleActor {
    /// The actor.
    pub name: Name,
    /// New max concurrency (at least 1).
    pub max_concurrency: u32,
}

/// `label.put`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutLabel {
    /// Label key.
    pub key: String,
    /// Label value.
    pub value: String,
}

/// `label.del`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteLabel {
    /// Label key.
    pub key: String,
}

/// Reply to label changes: the host's labels now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Labels {
    /// The host.
    pub host: Name,
    /// All its labels.
    pub labels: BTreeMap<String, String>,
}

/// `stop`: stop the host gracefully.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopHost {
    /// How long in-flight invocations may take to finish; the host's default when unset.
    pub grace_ms: Option<u64>,
}

/// Reply to `stop`: the host has stopped taking work and is draining.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostStopping {
    /// The host.
    pub host: Name,
    /// Invocations still in flight when it stopped taking work.
    pub in_flight: u64,
}

/// `ping` and `inventory` requests carry no fields.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {}

/// A host as it describes itself (ping, inventory, heartbeat).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostInfo {
    /// Its id.
    pub id: Name,
    /// The lattice it serves.
    pub lattice: Name,
    /// Its labels (automatic `os`, `arch`, `hostname` plus user labels).
    pub labels: BTreeMap<String, String>,
    /// lattice version of the host binary.
    pub version: String,
    /// Unix milliseconds when it started.
    pub started_at_ms: u64,
    /// Heartbeat interval, milliseconds (a host silent for 3 intervals is lost).
    pub heartbeat_ms: u64,
    /// Actors it runs.
    pub actors: Vec<ActorInfo>,
    /// Provider instances it can link actors to, as `<interface>:<name>`.
    #[serde(default)]
    pub providers: Vec<String>,
    /// Provider instances an app placed here, by instance name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub provider_owners: BTreeMap<String, Owner>,
}

/// `provider.start`: create a provider instance on a host that actors can then be linked to by `name`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartProvider {
    /// The instance's name, used as the provider in link specs.
    pub name: String,
    /// The built-in kind: `inmemory` or `redis` (key-value).
    pub kind: String,
    /// Kind-specific settings (for `redis`: `url`, `prefix`, `timeout`).
    pub config: BTreeMap<String, String>,
    /// The app placing it (set by the reconciler).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<Owner>,
}

/// Reply to `provider.start`: the instance is ready.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderStarted {
    /// The host.
    pub host: Name,
    /// The instance name.
    pub name: String,
    /// Its kind.
    pub kind: String,
}

/// `provider.restart`: rebuild a provider instance whose supervisor gave up (`provider.failed`), with a fresh
/// restart-intensity window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestartProvider {
    /// The instance's name.
    pub name: String,
}

/// Reply to `provider.restart`: the instance was rebuilt and is supervised again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderRestarted {
    /// The host.
    pub host: Name,
    /// The instance name.
    pub name: String,
    /// Its kind.
    pub kind: String,
    /// `None` when the rebuilt instance passed its first health check; otherwise that check's error (the
    /// supervisor keeps checking and restarting it as usual).
    pub unhealthy: Option<String>,
}

/// A link as stored in the lattice's state bucket (key from [`crate::subject::Subjects::link_key`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkRecord {
    /// The actor it belongs to.
    pub actor: Name,
    /// The link spec, `<interface>:<name>=<provider>[,k=v...]`.
    pub link: String,
    /// An operator's signature of the record; hosts that trust operators apply only records signed by one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<LinkSignature>,
}

/// An operator's signature of a [`LinkRecord`] (see `control_auth::link_message` for the signed bytes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkSignature {
    /// The operator's public key.
    pub operator: PublicKey,
    /// When it was signed, unix milliseconds.
    pub issued_at_ms: u64,
    /// A random 16-byte nonce, hex.
    pub nonce: String,
    /// The ed25519 signature, hex.
    pub signature: String,
}

/// An application's desired state in one environment: what `lattice apply` stores (see `docs/manifest.md`).
/// Hosts elect one leader per lattice, which keeps what runs equal to this.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppSpec {
    /// The app's name (unique in the lattice).
    pub name: Name,
    /// The version the manifest declares (free text, shown by `status`).
    pub version: String,
    /// The environment it was resolved for (`--env`), if any.
    pub env: Option<String>,
    /// Actors, by unique name.
    pub actors: Vec<AppActor>,
    /// Provider instances the app places.
    pub providers: Vec<AppProvider>,
}

/// One actor of an [`AppSpec`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppActor {
    /// Its name in the lattice (unique across apps and hand-started actors).
    pub name: Name,
    /// The artifact's name in the lattice's artifact store.
    pub artifact: String,
    /// sha256 of the artifact, hex: a change replaces the replicas one host at a time.
    pub digest: String,
    /// How many hosts run it (one replica per host).
    pub replicas: u32,
    /// Spread replicas across the values of this host label.
    pub spread: Option<String>,
    /// Only hosts whose labels include every `key=value` run it.
    pub constraints: BTreeMap<String, String>,
    /// Limit overrides.
    pub limits: LimitsSpec,
    /// Link specs (`keyvalue:default=inmemory`…), stored as the lattice's links of the actor.
    pub links: Vec<String>,
    /// HTTP routes to the actor (`[host]/path`, see [`crate::http::Route`]), stored as the lattice's routes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<String>,
}

impl AppActor {
    /// Fingerprint of what a replica is started from (artifact digest and limits): replicas whose
    /// [`Owner::spec`] differs are replaced. Links are not part of it: they change live.
    pub fn fingerprint(&self) -> String {
        fingerprint(&(&self.digest, &self.limits))
    }
}

impl AppProvider {
    /// Fingerprint of what an instance is started from (kind and config): a change restarts it.
    pub fn fingerprint(&self) -> String {
        fingerprint(&(&self.kind, &self.config))
    }
}

fn fingerprint<T: Serialize>(value: &T) -> String {
    use sha2::{Digest, Sha256};
    let bytes = rmp_serde::to_vec_named(value).unwrap_or_default();
    hex::encode(&Sha256::digest(&bytes)[..8])
}

/// A provider instance of an [`AppSpec`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppProvider {
    /// The instance name links refer to.
    pub name: Name,
    /// Its built-in kind (`inmemory`, `redis`).
    pub kind: String,
    /// Kind-specific settings.
    pub config: BTreeMap<String, String>,
    /// Only hosts whose labels include every `key=value` run it.
    pub constraints: BTreeMap<String, String>,
}

/// An app as stored in the state bucket: the current record under `apps.<name>`, and every revision under
/// `history.<name>.<revision>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppRecord {
    /// The desired state.
    pub spec: AppSpec,
    /// 1 for the first apply, then one more per apply that changed something.
    pub revision: u64,
    /// When it was applied, unix milliseconds.
    pub applied_at_ms: u64,
    /// An operator's signature of the record; hosts that trust operators reconcile only signed records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<LinkSignature>,
}

/// Which app placed an actor, and which spec of it ([`AppActor`] fingerprint); `None` for hand-started actors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    /// The app.
    pub app: Name,
    /// Fingerprint of the actor's spec it was started from (artifact digest and limits).
    pub spec: String,
}

/// How an app's reconciliation stands, written by the leader under `status.<app>` in the state bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppStatus {
    /// The app.
    pub app: Name,
    /// The revision the leader reconciles towards.
    pub revision: u64,
    /// Whether everything wanted runs, on current specs.
    pub reconciled: bool,
    /// When not reconciled: why, one line.
    pub reason: Option<String>,
    /// Per actor: replicas wanted and running, where, and the last placement error.
    pub actors: Vec<ActorStatus>,
    /// Per provider: the hosts that run it, and the last error.
    pub providers: Vec<ProviderStatus>,
    /// The leader host that wrote this.
    pub leader: Name,
    /// When, unix milliseconds.
    pub updated_at_ms: u64,
}

/// One actor in an [`AppStatus`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActorStatus {
    /// The actor.
    pub name: Name,
    /// Replicas wanted.
    pub wanted: u32,
    /// Hosts running it on the current spec.
    pub hosts: Vec<Name>,
    /// Hosts running it on an older spec (being replaced).
    pub outdated: Vec<Name>,
    /// The last placement error, if the last attempt failed.
    pub error: Option<String>,
}

/// One provider in an [`AppStatus`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderStatus {
    /// The instance name.
    pub name: Name,
    /// Hosts running it.
    pub hosts: Vec<Name>,
    /// The last error starting it, if any.
    pub error: Option<String>,
}

/// `provider.stop`: stop a provider instance started with `provider.start`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopProvider {
    /// The instance's name.
    pub name: String,
}

/// Reply to `provider.stop`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderStopped {
    /// The host.
    pub host: Name,
    /// The instance name.
    pub name: String,
}

/// `auction`: which hosts could run an actor with these label constraints?
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Auction {
    /// Every `key=value` must match the host's labels.
    pub constraints: BTreeMap<String, String>,
}

/// A host's answer to an auction it matches (hosts that do not match stay silent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bid {
    /// The host.
    pub host: Name,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// How many actors it already runs (bidders with fewer go first).
    pub actors: u32,
}

/// An event published on `lattice.<l>.evt.<kind>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// The host that published it.
    pub host: Name,
    /// Unix milliseconds.
    pub time_ms: u64,
    /// What happened.
    pub data: EventData,
}

/// What an event reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum EventData {
    /// A host joined.
    HostStarted(HostInfo),
    /// A host is alive (every heartbeat interval).
    HostHeartbeat(HostInfo),
    /// A host left gracefully.
    HostStopped {
        /// Why.
        reason: String,
    },
    /// An actor started on the host.
    ActorStarted(ActorInfo),
    /// An actor stopped on the host.
    ActorStopped {
        /// The actor.
        name: Name,
    },
    /// An actor could not be started.
    ActorFailed {
        /// The actor.
        name: Name,
        /// Why.
        error: WireError,
    },
    /// A provider instance failed its health check `failures` times in a row and is being restarted.
    ProviderRestarting {
        /// The instance.
        name: String,
        /// Restarts within the intensity window so far (1 for the first).
        attempt: u32,
        /// The last health check's error.
        reason: String,
    },
    /// A provider instance passed its health check again after failing.
    ProviderRecovered {
        /// The instance.
        name: String,
    },
    /// A provider instance was restarted too often within the window and is no longer restarted.
    ProviderFailed {
        /// The instance.
        name: String,
        /// The last health check's error.
        reason: String,
    },
    /// An actor was refused by the claims policy.
    ActorRejected {
        /// The actor.
        name: Name,
        /// Why, e.g. `claims hash mismatch: the component was modified after signing`.
        reason: String,
        /// The issuer its claims named, if any could be read.
        issuer: Option<String>,
    },
    /// A provider instance was stopped (`provider.stop`).
    ProviderStopped {
        /// The instance.
        name: String,
    },
    /// An app revision was stored and its leader began reconciling it.
    AppDeployed {
        /// The app.
        app: Name,
        /// Its revision.
        revision: u64,
        /// The version its manifest declares.
        version: String,
    },
    /// Everything an app wants runs, on current specs.
    AppReconciled {
        /// The app.
        app: Name,
        /// Its revision.
        revision: u64,
    },
    /// An app is not (or no longer) reconciled, and why.
    AppDegraded {
        /// The app.
        app: Name,
        /// Its revision.
        revision: u64,
        /// Why, e.g. `kv-counter: 1 of 2 replicas (no other host with label zone)`.
        reason: String,
    },
    /// An app was deleted and nothing of it runs any more.
    AppDeleted {
        /// The app.
        app: Name,
    },
    /// This host took the lattice's reconciler lease: it is the leader.
    LeaderElected {
        /// The leader before, if it was known.
        previous: Option<Name>,
    },
    /// A message delivered at least once failed its last allowed delivery and was dead-lettered.
    MessageDead {
        /// The actor that could not handle it.
        actor: Name,
        /// The actor's link it arrived through.
        link: String,
        /// The subject it was published on.
        subject: String,
        /// Its `lattice-msg-id`.
        id: String,
        /// How many times it was delivered.
        attempts: u64,
        /// Why the last delivery failed.
        reason: String,
        /// Its sequence number in the dead-letter stream (`lattice dlq replay <actor> --seq N`).
        seq: u64,
    },
    /// A control request or a link record was refused by the operator policy (unsigned, forged, untrusted,
    /// expired, from the future or replayed).
    ControlRefused {
        /// The request's subject, or the link record's key in the state bucket.
        subject: String,
        /// The verb (`actor.start`, `ping`, …), or `link` for a link record.
        verb: String,
        /// Why, e.g. `replayed: its nonce was already used within the last 60 s`.
        reason: String,
        /// The operator the signature named, if any.
        operator: Option<String>,
    },
    /// A request was refused unanswered because its reply subject is no inbox
    /// ([`crate::reply::check`]): answering would have published with the host's permissions wherever the
    /// sender chose (`$JS.API.STREAM.DELETE.…`, `$KV.…`). Live only, like `control.refused`.
    ReplyRefused {
        /// The subject the request came on (an actor's invoke subject, a control verb…).
        subject: String,
        /// Why, naming the reply subject (sanitised), e.g. ``reply subject `$JS.API…` is refused: …``.
        reason: String,
    },
    /// A message or record claiming to be a host's was ignored: its host signature or credential does not
    /// verify (see `crate::host_auth`). Published by the host that ignored it, rate-limited.
    HostRefused {
        /// The subject it came on, or the record's key.
        subject: String,
        /// The host it claimed to be from, if it said.
        host: Option<String>,
        /// Why, e.g. `unsigned: no host signature`.
        reason: String,
        /// How many more were ignored since the last such event (not published one by one).
        suppressed: u64,
    },
}

impl EventData {
    /// The event kind: the subject suffix it is published under.
    pub fn kind(&self) -> &'static str {
        match self {
            EventData::HostStarted(_) => "host.started",
            EventData::HostHeartbeat(_) => "host.heartbeat",
            EventData::HostStopped { .. } => "host.stopped",
            EventData::ActorStarted(_) => "actor.started",
            EventData::ActorStopped { .. } => "actor.stopped",
            EventData::ActorFailed { .. } => "actor.failed",
            EventData::ActorRejected { .. } => "actor.rejected",
            EventData::ProviderRestarting { .. } => "provider.restarting",
            EventData::ProviderRecovered { .. } => "provider.recovered",
            EventData::ProviderFailed { .. } => "provider.failed",
            EventData::ControlRefused { .. } => "control.refused",
            EventData::ReplyRefused { .. } => "reply.refused",
            EventData::HostRefused { .. } => "host.refused",
            EventData::ProviderStopped { .. } => "provider.stopped",
            EventData::AppDeployed { .. } => "app.deployed",
            EventData::AppReconciled { .. } => "app.reconciled",
            EventData::AppDegraded { .. } => "app.degraded",
            EventData::AppDeleted { .. } => "app.deleted",
            EventData::LeaderElected { .. } => "leader.elected",
            EventData::MessageDead { .. } => "message.dead",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_round_trip() {
        let start = StartActor {
            name: Name::new("a").expect("name"),
            artifact: ArtifactRef::Lattice("a".into()),
            limits: LimitsSpec { max_concurrency: Some(4), ..LimitsSpec::default() },
            links: vec!["keyvalue:default=inmemory".into()],
            owner: None,
            digest: None,
        };
        assert_eq!(decode::<StartActor>(&encode(&start)), Ok(start.clone()));
        // Without a digest the field is left out (older hosts read the request); with one it round-trips.
        let pinned = StartActor { digest: Some("ab".repeat(32)), ..start };
        assert_eq!(decode::<StartActor>(&encode(&pinned)), Ok(pinned));
        let reply: Reply<Empty> = Err(WireError::new(ErrorCode::NotFound, "no actor `x`"));
        assert_eq!(decode_reply::<Empty>(&encode(&reply)), reply);
    }

    #[test]
    fn unknown_versions_and_garbage_get_specific_errors() {
        let future = rmp_serde::to_vec_named(&Envelope { v: 99, body: Empty {} }).expect("encode");
        let err = decode::<Empty>(&future).expect_err("version 99");
        assert_eq!(err.code, ErrorCode::UnsupportedVersion);
        assert_eq!(err.message, "unsupported protocol version 99 (this peer speaks 1)");
        for garbage in [&b""[..], b"\xff\xff", b"hello", b"\x81\xa1v\x01"] {
            let err = decode::<StopActor>(garbage).expect_err("garbage");
            assert_eq!(err.code, ErrorCode::BadRequest, "{garbage:?}");
        }
    }

    #[test]
    fn invalid_names_inside_messages_are_bad_requests() {
        let sneaky =
            rmp_serde::to_vec_named(&Envelope { v: PROTOCOL_VERSION, body: BTreeMap::from([("name", "a.>")]) })
                .expect("encode");
        assert_eq!(decode::<StopActor>(&sneaky).expect_err("wildcard").code, ErrorCode::BadRequest);
    }

    #[test]
    fn error_codes_have_stable_text() {
        for code in [ErrorCode::NotFound, ErrorCode::Timeout, ErrorCode::InvocationFailed, ErrorCode::Unauthorized] {
            assert_eq!(ErrorCode::parse(code.as_str()), code);
        }
        assert_eq!(ErrorCode::parse("whatever"), ErrorCode::Internal);
    }
}
