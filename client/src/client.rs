//! [`LatticeClient`]: control requests, invocations and lattice state.
//!
//! Every call reports the host's outcome: a typed result or the exact [`WireError`] the host replied with.
//!
//! With an operator key ([`LatticeClient::with_operator_key`]) every control request carries the operator's
//! signature in headers and every link record it stores is signed; hosts that trust no operator ignore both.
//!
//! With trusted operators ([`LatticeClient::with_trusted_operators`]) the client believes only hosts that prove
//! it: ping answers, bids, control replies, host records and the lease must carry a host signature whose
//! credential a trusted operator signed (`lattice_core::host_auth`). What does not verify is ignored, logged as
//! one warning per call with the count, and kept for [`LatticeClient::take_host_refusals`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_nats::jetstream::{self, kv, object_store};
use async_nats::{Client, HeaderMap, RequestErrorKind};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use lattice_core::control_auth::{self, MAX_SKEW_MS, RequestAuth};
use lattice_core::host_auth::{self, HostRefusal, HostVerifier};
use lattice_core::keys::{PublicKey, SeedKey};
use lattice_core::link::{Interface, LinkSpec};
use lattice_core::subject::{HostVerb, Name, Subjects};
use lattice_core::wire::{
    self, ActorInfo, ActorStarted, ActorStopped, AppRecord, AppSpec, AppStatus, Auction, Bid, DeleteLabel, Empty,
    ErrorCode, Event, HostInfo, HostStopping, Labels, LinkRecord, ProviderRestarted, ProviderStarted, ProviderStopped,
    PutLabel, Reply, RestartProvider, ScaleActor, StartActor, StartProvider, StopActor, StopHost, StopProvider,
    WireError, headers,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::artifacts::{self, ArtifactInfo, DIGEST_KEY};
use crate::{ConnectError, NatsConfig, now_ms};

/// The value of header `name` (one the lattice names) from the caller's input: refused, not a panic, when it
/// holds a control character.
fn header_value(name: &str, value: &str) -> Result<async_nats::HeaderValue, lattice_core::reserved::BadHeader> {
    let bad = || lattice_core::reserved::BadHeader::Value { name: name.to_owned() };
    lattice_core::reserved::check_header_value(name, value)?;
    value.parse().map_err(|_| bad())
}

/// Why a control call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// NATS could not be reached.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// Nobody answers on the subject (no such host, or no host runs the actor); the message says what to do.
    #[error("{0}")]
    NoResponders(String),
    /// The NATS server runs without JetStream, where lattice keeps its state (hosts, links, apps, artifacts).
    #[error("{0}")]
    NoJetStream(String),
    /// The request timed out.
    #[error("{what} timed out after {after:?}")]
    Timeout {
        /// What was asked.
        what: String,
        /// How long we waited.
        after: Duration,
    },
    /// The host answered with an error.
    #[error("{0}")]
    Remote(WireError),
    /// The request could not be signed with the operator key.
    #[error("cannot sign the request: {0}")]
    Sign(String),
    /// A reply claiming to be from a host does not carry that host's valid signature (the client trusts
    /// operators, see [`LatticeClient::with_trusted_operators`]); it was ignored.
    #[error("the reply from host `{host}` was ignored: {reason}")]
    UnverifiedHost {
        /// The host that was asked.
        host: Name,
        /// Why its reply did not verify.
        reason: HostRefusal,
    },
    /// Reading or writing apps in the state bucket failed.
    #[error(transparent)]
    State(#[from] crate::apps::AppStateError),
    /// Another app already declares an actor or provider of that name.
    #[error("{0}")]
    Conflict(String),
    /// NATS failed otherwise.
    #[error("{what}: {message}")]
    Nats {
        /// What was being done.
        what: String,
        /// The failure.
        message: String,
    },
    /// A messaging link subscribes or publishes in a namespace reserved for the lattice (no host would apply it).
    #[error("link `{link}`: {reason}")]
    ReservedLink {
        /// The link, as written.
        link: String,
        /// Which pattern and namespace.
        reason: lattice_core::reserved::Reserved,
    },
    /// A header built from the caller's input (`--topic`, `--msg-id`…) cannot be sent: it holds a control
    /// character (CR, LF, NUL…).
    #[error(transparent)]
    BadHeader(#[from] lattice_core::reserved::BadHeader),
    /// A link names a provider no host (or provider process) in the lattice serves.
    #[error(
        "no host in lattice `{lattice}` serves {interface} provider `{provider}` (served: {})",
        if served.is_empty() { "none".to_owned() } else { served.join(", ") }
    )]
    UnknownProvider {
        /// The lattice.
        lattice: Name,
        /// The link's interface.
        interface: Interface,
        /// The provider the link names.
        provider: String,
        /// The providers of that interface the hosts that answered serve, sorted.
        served: Vec<String>,
    },
}

impl ClientError {
    /// The remote error code, when a host replied with an error.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Remote(e) => Some(e.code),
            _ => None,
        }
    }
}

/// The reply to [`LatticeClient::call`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallReply {
    /// What the actor replied (`None`: it handled the message without replying).
    pub data: Option<Bytes>,
    /// The host that served the call.
    pub host: Option<String>,
    /// The call's `traceparent`, as the host echoed it (`None` when the call carried none).
    pub traceparent: Option<String>,
}

/// A host as last recorded in the lattice (see [`LatticeClient::hosts`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostStatus {
    /// What the host said about itself at its last heartbeat.
    pub info: HostInfo,
    /// Milliseconds since that heartbeat reached NATS.
    pub since_heartbeat_ms: u64,
    /// Whether it missed 3 heartbeats.
    pub lost: bool,
}

/// A provider instance a host serves (see [`LatticeClient::providers`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProviderInstance {
    /// The host serving it.
    pub host: Name,
    /// Its interface (`keyvalue`, `messaging`).
    pub interface: String,
    /// The name links give as their provider.
    pub name: String,
    /// Built into every host (`inmemory`, `nats`): it cannot be stopped.
    pub builtin: bool,
    /// The app that placed it, if an app did.
    pub app: Option<Name>,
}

/// The outcome of [`LatticeClient::apply_app`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The app's revision now.
    pub revision: u64,
    /// False when the spec equals the current revision's (nothing was stored).
    pub changed: bool,
    /// The spec of the revision before (for [`LatticeClient::sync_app_links`]).
    pub previous: Option<AppSpec>,
}

/// A pushed artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// Its name in the artifact store.
    pub name: String,
    /// sha256 of its bytes, hex.
    pub digest: String,
    /// Its size.
    pub size: u64,
}

/// A message claiming to be a host's that the client ignored (see [`LatticeClient::take_host_refusals`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRefused {
    /// The subject it came on, or the record's key.
    pub subject: String,
    /// The host it claimed to be from.
    pub host: Option<Name>,
    /// Why it did not verify.
    pub reason: HostRefusal,
}

/// Host refusals kept for [`LatticeClient::take_host_refusals`] at most (the rest are only counted).
const MAX_KEPT_REFUSALS: usize = 64;

/// What the client ignored since the last [`LatticeClient::take_host_refusals`].
#[derive(Debug, Default)]
struct Refusals {
    kept: Vec<HostRefused>,
    dropped: u64,
}

/// A connection to one lattice for control and invocation.
#[derive(Debug, Clone)]
pub struct LatticeClient {
    client: Client,
    subjects: Subjects,
    timeout: Duration,
    /// Signs control requests and link records when set.
    operator: Option<SeedKey>,
    /// Checks what hosts say, when operators are trusted.
    hosts: Option<Arc<HostVerifier>>,
    refusals: Arc<Mutex<Refusals>>,
}

impl LatticeClient {
    /// Connects to NATS and addresses lattice `lattice`.
    pub async fn connect(nats: &NatsConfig, lattice: Name) -> Result<Self, ClientError> {
        let client = nats.connect("lattice-cli").await?;
        Ok(Self::new(client, lattice))
    }

    /// Uses an existing NATS connection.
    pub fn new(client: Client, lattice: Name) -> Self {
        Self {
            client,
            subjects: Subjects::new(lattice),
            timeout: Duration::from_secs(30),
            operator: None,
            hosts: None,
            refusals: Arc::default(),
        }
    }

    /// Believes only hosts whose credential one of `trusted` signed: answers, bids, replies, host records and
    /// the lease that do not verify are ignored (see the module docs). Empty: nothing is checked.
    pub fn with_trusted_operators(mut self, trusted: Vec<PublicKey>) -> Self {
        let verifier = HostVerifier::new(self.subjects.lattice().clone(), trusted);
        self.hosts = verifier.enforced().then(|| Arc::new(verifier));
        self
    }

    /// The host verifier, when operators are trusted.
    pub fn host_verifier(&self) -> Option<&HostVerifier> {
        self.hosts.as_deref()
    }

    /// What was ignored as not verifiably a host's since the last call (at most 64 kept), and how many more.
    pub fn take_host_refusals(&self) -> (Vec<HostRefused>, u64) {
        let mut refusals = self.refusals.lock().unwrap_or_else(PoisonError::into_inner);
        let taken = std::mem::take(&mut *refusals);
        (taken.kept, taken.dropped)
    }

    /// Whether a message on `subject` with `payload` and `headers` is host `claimed`'s (always true when no
    /// operator is trusted); records what does not verify. `max_age_ms` bounds how old its signature may be.
    fn believe(
        &self,
        claimed: &Name,
        subject: &str,
        payload: &[u8],
        headers: Option<&HeaderMap>,
        max_age_ms: Option<u64>,
    ) -> Result<(), HostRefusal> {
        let Some(verifier) = &self.hosts else { return Ok(()) };
        let checked =
            host_auth::seal_from_headers(|name| headers.and_then(|h| h.get(name)).map(|v| v.as_str().to_owned()))
                .and_then(|seal| verifier.verify_as(claimed, subject, payload, seal.as_ref(), now_ms(), max_age_ms));
        if let Err(reason) = &checked {
            self.refused(subject, Some(claimed), reason.clone());
        }
        checked
    }

    /// Records one ignored message.
    fn refused(&self, subject: &str, host: Option<&Name>, reason: HostRefusal) {
        let mut refusals = self.refusals.lock().unwrap_or_else(PoisonError::into_inner);
        if refusals.kept.len() < MAX_KEPT_REFUSALS {
            refusals.kept.push(HostRefused { subject: subject.to_owned(), host: host.cloned(), reason });
        } else {
            refusals.dropped += 1;
        }
    }

    /// Signs every control request (and every link record stored) with this operator key, so hosts that
    /// trust the operator accept them.
    pub fn with_operator_key(mut self, key: SeedKey) -> Self {
        self.operator = Some(key);
        self
    }

    /// The signature headers of a control request, when an operator key is set.
    fn auth_headers(&self, subject: &str, payload: &[u8]) -> Result<Option<HeaderMap>, ClientError> {
        let Some(key) = &self.operator else { return Ok(None) };
        let nonce = control_auth::new_nonce().map_err(|e| ClientError::Sign(e.to_string()))?;
        let auth = RequestAuth::sign(key, subject, payload, now_ms(), nonce);
        let mut map = HeaderMap::new();
        for (name, value) in auth.headers() {
            map.insert(name, value.as_str());
        }
        Ok(Some(map))
    }

    /// Sets how long control requests wait for their outcome (default 30 s: starts may compile).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The lattice's subjects.
    pub fn subjects(&self) -> &Subjects {
        &self.subjects
    }

    /// The underlying NATS client.
    pub fn nats(&self) -> &Client {
        &self.client
    }

    /// Fails with [`ClientError::NoJetStream`] when the server (or this account) has no JetStream.
    pub async fn check_jetstream(&self) -> Result<(), ClientError> {
        let request = async_nats::Request::new().timeout(Some(self.timeout.min(Duration::from_secs(5))));
        match self.client.send_request("$JS.API.INFO", request).await {
            Err(e) if e.kind() == RequestErrorKind::NoResponders => Err(ClientError::NoJetStream(
                "the NATS server runs without JetStream, where lattice keeps its state: restart nats-server with \
                 `-js`, or start a local lattice with `lattice up`"
                    .into(),
            )),
            Err(e) => {
                Err(ClientError::Nats { what: "asking the server about JetStream".into(), message: e.to_string() })
            }
            // A server with JetStream answers every account; one the account may not use answers with an error.
            Ok(reply) if String::from_utf8_lossy(&reply.payload).contains("\"error\"") => {
                Err(ClientError::NoJetStream(format!(
                    "JetStream is not enabled for this NATS account ({}): enable it for the account lattice uses",
                    String::from_utf8_lossy(&reply.payload).trim()
                )))
            }
            Ok(_) => Ok(()),
        }
    }

    /// `error`, or [`ClientError::NoJetStream`] when that is why it happened.
    async fn jetstream_or(&self, error: ClientError) -> ClientError {
        match self.check_jetstream().await {
            Err(no_jetstream @ ClientError::NoJetStream(_)) => no_jetstream,
            _ => error,
        }
    }

    fn request_error(what: &str, timeout: Duration, error: async_nats::RequestError) -> ClientError {
        match error.kind() {
            RequestErrorKind::NoResponders => ClientError::NoResponders(format!(
                "nothing answered {what}: start a host with `lattice up` or `lattice host`, and check --lattice"
            )),
            RequestErrorKind::TimedOut => ClientError::Timeout { what: what.to_owned(), after: timeout },
            _ => ClientError::Nats { what: what.to_owned(), message: error.to_string() },
        }
    }

    /// Sends raw bytes to a control subject and returns the raw reply (for tools and tests).
    pub async fn request_raw(&self, subject: String, payload: Bytes) -> Result<Bytes, ClientError> {
        let request = async_nats::Request::new().payload(payload).timeout(Some(self.timeout));
        self.client
            .send_request(subject.clone(), request)
            .await
            .map(|m| m.payload)
            .map_err(|e| Self::request_error(&subject, self.timeout, e))
    }

    async fn host_request<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        host: &Name,
        verb: HostVerb,
        request: &Req,
    ) -> Result<Resp, ClientError> {
        let subject = self.subjects.host_verb(host, verb);
        let what = format!("{} on host {host}", verb.as_str());
        let payload = wire::encode(request);
        let auth = self.auth_headers(&subject, &payload)?;
        let mut request = async_nats::Request::new().payload(payload.into()).timeout(Some(self.timeout));
        if let Some(auth) = auth {
            request = request.headers(auth);
        }
        let reply = self.client.send_request(subject, request).await.map_err(|e| match e.kind() {
            RequestErrorKind::NoResponders => ClientError::NoResponders(format!(
                "host `{host}` is not in lattice `{}`: `lattice hosts` lists the hosts that are",
                self.subjects.lattice()
            )),
            _ => Self::request_error(&what, self.timeout, e),
        })?;
        self.believe(host, reply.subject.as_str(), &reply.payload, reply.headers.as_ref(), Some(MAX_SKEW_MS)).map_err(
            |reason| {
                tracing::warn!(%host, %reason, "ignored a control reply that is not verifiably the host's");
                ClientError::UnverifiedHost { host: host.clone(), reason }
            },
        )?;
        wire::decode_reply(&reply.payload).map_err(ClientError::Remote)
    }

    /// Publishes `request` on `subject` and gathers every reply until `wait` passes. With trusted operators, an
    /// answer counts only when signed by the host `host_of` says it is from; the others are ignored with one
    /// warning for the call.
    async fn gather<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        subject: String,
        request: &Req,
        wait: Duration,
        host_of: fn(&Resp) -> &Name,
    ) -> Result<Vec<Reply<Resp>>, ClientError> {
        let nats =
            |what: &str, e: &dyn std::fmt::Display| ClientError::Nats { what: what.to_owned(), message: e.to_string() };
        let inbox = self.client.new_inbox();
        let mut replies = self.client.subscribe(inbox.clone()).await.map_err(|e| nats("subscribing to replies", &e))?;
        let payload = wire::encode(request);
        match self.auth_headers(&subject, &payload)? {
            Some(auth) => {
                self.client.publish_with_reply_and_headers(subject.clone(), inbox, auth, payload.into()).await
            }
            None => self.client.publish_with_reply(subject.clone(), inbox, payload.into()).await,
        }
        .map_err(|e| nats(&subject, &e))?;
        let deadline = tokio::time::Instant::now() + wait;
        let mut out = Vec::new();
        let mut ignored: Vec<HostRefusal> = Vec::new();
        while let Ok(Some(message)) = tokio::time::timeout_at(deadline, replies.next()).await {
            let reply = wire::decode_reply::<Resp>(&message.payload);
            if let Ok(answer) = &reply {
                let headers = message.headers.as_ref();
                let checked = self.believe(
                    host_of(answer),
                    message.subject.as_str(),
                    &message.payload,
                    headers,
                    Some(MAX_SKEW_MS),
                );
                if let Err(reason) = checked {
                    ignored.push(reason);
                    continue;
                }
            }
            out.push(reply);
        }
        if let Some(first) = ignored.first() {
            tracing::warn!(
                %subject,
                ignored = ignored.len(),
                "ignored {} answer(s) not verifiably from a host of the lattice (first: {first})",
                ignored.len()
            );
        }
        Ok(out)
    }

    /// Every live host, answering a ping within `wait`.
    pub async fn ping(&self, wait: Duration) -> Result<Vec<HostInfo>, ClientError> {
        let replies = self.gather(self.subjects.ping(), &Empty {}, wait, |info: &HostInfo| &info.id).await?;
        let mut hosts: Vec<HostInfo> = only_answers(replies)?;
        hosts.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(hosts)
    }

    /// Every host recorded in the lattice, with those that missed 3 heartbeats marked lost.
    pub async fn hosts(&self) -> Result<Vec<HostStatus>, ClientError> {
        let js = jetstream::new(self.client.clone());
        let storage = |e: &dyn std::fmt::Display| ClientError::Nats {
            what: "reading host records".into(),
            message: e.to_string(),
        };
        let Ok(bucket) = js.get_key_value(self.subjects.hosts_bucket()).await else {
            // No bucket: no host ever joined, unless the server cannot keep one at all.
            self.check_jetstream().await?;
            return Ok(Vec::new());
        };
        let mut keys = match bucket.keys().await {
            Ok(keys) => keys,
            Err(e) => return Err(self.jetstream_or(storage(&e)).await),
        };
        let mut out = Vec::new();
        let mut ignored = 0usize;
        let now = time::OffsetDateTime::now_utc();
        while let Some(key) = keys.next().await {
            let key = key.map_err(|e| storage(&e))?;
            let Some(entry) = bucket.entry(key).await.map_err(|e| storage(&e))? else {
                continue;
            };
            let (body, seal) = host_auth::split_seal(&entry.value);
            let Ok(info) = wire::decode::<HostInfo>(body) else {
                continue;
            };
            if let Err(reason) = self.check_record(&entry, &info, body, seal) {
                ignored += 1;
                tracing::debug!(key = %entry.key, %reason, "ignored a host record");
                continue;
            }
            let since = u64::try_from((now - entry.created).whole_milliseconds().max(0)).unwrap_or(u64::MAX);
            out.push(HostStatus { lost: since > 3 * info.heartbeat_ms, since_heartbeat_ms: since, info });
        }
        if ignored > 0 {
            tracing::warn!(ignored, "ignored {ignored} host record(s) not verifiably written by their host");
        }
        out.sort_by(|a, b| a.info.id.cmp(&b.info.id));
        Ok(out)
    }

    /// Whether a host record is its host's (always, without trusted operators): stored under its id, sealed
    /// by that host, and sealed when it was written (a record put back later is a replay).
    fn check_record(
        &self,
        entry: &kv::Entry,
        info: &HostInfo,
        body: &[u8],
        seal: Result<Option<host_auth::HostSeal>, HostRefusal>,
    ) -> Result<(), HostRefusal> {
        let Some(verifier) = &self.hosts else { return Ok(()) };
        let subject = self.subjects.host_record(&info.id);
        let checked = seal.and_then(|seal| {
            if entry.key != info.id.as_str() {
                return Err(HostRefusal::Malformed(format!("stored under `{}`, not its id", entry.key)));
            }
            let written_ms = u64::try_from(entry.created.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
            verifier.verify_as(&info.id, &subject, body, seal.as_ref(), written_ms, Some(MAX_SKEW_MS))
        });
        if let Err(reason) = &checked {
            self.refused(&subject, Some(&info.id), reason.clone());
        }
        checked
    }

    /// What `host` runs.
    pub async fn inventory(&self, host: &Name) -> Result<HostInfo, ClientError> {
        self.host_request(host, HostVerb::Inventory, &Empty {}).await
    }

    /// Hosts matching `constraints`, fewest actors first.
    pub async fn auction(
        &self,
        constraints: BTreeMap<String, String>,
        wait: Duration,
    ) -> Result<Vec<Bid>, ClientError> {
        let replies =
            self.gather(self.subjects.auction(), &Auction { constraints }, wait, |bid: &Bid| &bid.host).await?;
        let mut bids: Vec<Bid> = only_answers(replies)?;
        bids.sort_by(|a, b| a.actors.cmp(&b.actors).then_with(|| a.host.cmp(&b.host)));
        Ok(bids)
    }

    /// Starts an actor on `host`; returns once it is ready to serve (or with the exact error).
    pub async fn start_actor(&self, host: &Name, request: &StartActor) -> Result<ActorStarted, ClientError> {
        self.host_request(host, HostVerb::StartActor, request).await
    }

    /// Stops an actor on `host`.
    pub async fn stop_actor(&self, host: &Name, name: &Name) -> Result<ActorStopped, ClientError> {
        self.host_request(host, HostVerb::StopActor, &StopActor { name: name.clone() }).await
    }

    /// Changes an actor's max concurrency on `host`.
    pub async fn scale_actor(&self, host: &Name, name: &Name, max_concurrency: u32) -> Result<ActorInfo, ClientError> {
        let request = ScaleActor { name: name.clone(), max_concurrency };
        self.host_request(host, HostVerb::ScaleActor, &request).await
    }

    /// Sets a label on `host`.
    pub async fn put_label(&self, host: &Name, key: &str, value: &str) -> Result<Labels, ClientError> {
        let request = PutLabel { key: key.to_owned(), value: value.to_owned() };
        self.host_request(host, HostVerb::PutLabel, &request).await
    }

    /// Removes a label from `host`.
    pub async fn delete_label(&self, host: &Name, key: &str) -> Result<Labels, ClientError> {
        let request = DeleteLabel { key: key.to_owned() };
        self.host_request(host, HostVerb::DeleteLabel, &request).await
    }

    /// Asks `host` to stop gracefully.
    pub async fn stop_host(&self, host: &Name, grace: Option<Duration>) -> Result<HostStopping, ClientError> {
        let request = StopHost { grace_ms: grace.map(|g| u64::try_from(g.as_millis()).unwrap_or(u64::MAX)) };
        self.host_request(host, HostVerb::Stop, &request).await
    }

    /// Starts a provider instance on `host` (built-in kinds: see `KEYVALUE_KINDS`).
    pub async fn start_provider(
        &self,
        host: &Name,
        name: &str,
        kind: &str,
        config: BTreeMap<String, String>,
    ) -> Result<ProviderStarted, ClientError> {
        let request = StartProvider { name: name.to_owned(), kind: kind.to_owned(), config, owner: None };
        self.start_provider_request(host, &request).await
    }

    /// Starts a provider instance on `host` from a full request (an app's reconciler sets its owner).
    pub async fn start_provider_request(
        &self,
        host: &Name,
        request: &StartProvider,
    ) -> Result<ProviderStarted, ClientError> {
        self.host_request(host, HostVerb::StartProvider, request).await
    }

    /// Stops a provider instance started on `host` (`NotFound` when none of that name was started there).
    pub async fn stop_provider(&self, host: &Name, name: &str) -> Result<ProviderStopped, ClientError> {
        self.host_request(host, HostVerb::StopProvider, &StopProvider { name: name.to_owned() }).await
    }

    /// Restarts a provider instance on `host` whose supervisor gave up (`provider.failed`): rebuilt, and
    /// supervised again with a fresh restart-intensity window. Refused when no such instance was started
    /// there (`NotFound`) or it has not failed (`BadRequest`).
    pub async fn restart_provider(&self, host: &Name, name: &str) -> Result<ProviderRestarted, ClientError> {
        self.host_request(host, HostVerb::RestartProvider, &RestartProvider { name: name.to_owned() }).await
    }

    /// Checks that some host in the lattice serves the provider `link` names for its interface: a host lists
    /// it as `<interface>:<name>` (built-ins `inmemory` and `nats` count as soon as any host answers), or,
    /// for key-value, a provider process answers on its subject. Hosts answer within `wait`.
    pub async fn check_link_provider(&self, link: &LinkSpec, wait: Duration) -> Result<(), ClientError> {
        let hosts = self.ping(wait).await?;
        let prefix = format!("{}:", link.interface.as_str());
        let builtin = match link.interface {
            Interface::KeyValue => link.provider == crate::INMEMORY_PROVIDER,
            Interface::Messaging => {
                link.provider == crate::INMEMORY_PROVIDER || link.provider == crate::NATS_MESSAGING_PROVIDER
            }
            // Outgoing HTTP has no provider to serve: the host itself sends what the link allows.
            Interface::Http => link.provider == lattice_core::http::ALLOW,
            _ => false,
        };
        if builtin && !hosts.is_empty() {
            return Ok(());
        }
        let mut served: Vec<String> = hosts
            .iter()
            .flat_map(|h| h.providers.iter())
            .filter_map(|p| p.strip_prefix(&prefix))
            .map(str::to_owned)
            .collect();
        served.sort();
        served.dedup();
        if served.contains(&link.provider) {
            return Ok(());
        }
        // A provider in its own process (no host) serves key-value on the lattice's provider subject.
        if link.interface == Interface::KeyValue
            && let Ok(name) = Name::new(link.provider.clone())
        {
            let remote = lattice_provider_sdk::remote::RemoteKeyValue::new(
                self.client.clone(),
                self.subjects.provider(&name, "keyvalue"),
                wait,
            );
            if remote.ping().await.is_ok() {
                return Ok(());
            }
        }
        Err(ClientError::UnknownProvider {
            lattice: self.subjects.lattice().clone(),
            interface: link.interface,
            provider: link.provider.clone(),
            served,
        })
    }

    /// [`LatticeClient::put_link`] after [`LatticeClient::check_link_provider`]: refuses a link to a provider
    /// nobody serves (use `put_link` to link before the provider starts).
    pub async fn put_link_checked(&self, actor: &Name, link: &LinkSpec, wait: Duration) -> Result<(), ClientError> {
        self.check_link_provider(link, wait).await?;
        self.put_link(actor, link).await
    }

    async fn state(&self) -> Result<kv::Store, ClientError> {
        let js = jetstream::new(self.client.clone());
        match crate::state::state_bucket(&js, &self.subjects).await {
            Ok(store) => Ok(store),
            Err(message) => {
                Err(self.jetstream_or(ClientError::Nats { what: "opening the state bucket".into(), message }).await)
            }
        }
    }

    /// Stores a link of `actor` in the lattice; every host running the actor applies it to the next invocation.
    /// A messaging link whose `subscribe=` or `publish=` overlaps a reserved namespace is refused here.
    pub async fn put_link(&self, actor: &Name, link: &LinkSpec) -> Result<(), ClientError> {
        lattice_core::reserved::check_link(link)
            .map_err(|reason| ClientError::ReservedLink { link: link.to_string(), reason })?;
        let key = self.subjects.link_key(actor, link.interface.as_str(), &link.name);
        self.put_record(key, actor, link.to_string(), "storing the link").await
    }

    /// Removes a link of `actor` (interface and name); false if there was none.
    pub async fn delete_link(&self, actor: &Name, interface: Interface, name: &str) -> Result<bool, ClientError> {
        self.delete_record(&self.subjects.link_key(actor, interface.as_str(), name), "deleting the link").await
    }

    /// Every link stored in the lattice, by actor.
    pub async fn list_links(&self) -> Result<Vec<LinkRecord>, ClientError> {
        let mut out = self.list_records(self.subjects.links_filter(), "listing links").await?;
        out.sort_by(|a, b| (&a.actor, &a.link).cmp(&(&b.actor, &b.link)));
        Ok(out)
    }

    /// The links of one actor stored in the lattice, sorted.
    pub async fn links_of(&self, actor: &Name) -> Result<Vec<LinkRecord>, ClientError> {
        let mut out = self.list_links().await?;
        out.retain(|record| &record.actor == actor);
        Ok(out)
    }

    /// Every provider instance the hosts answering within `wait` serve (built-in ones included), sorted by
    /// host, interface and name.
    pub async fn providers(&self, wait: Duration) -> Result<Vec<ProviderInstance>, ClientError> {
        let mut out = Vec::new();
        for host in self.ping(wait).await? {
            for provider in &host.providers {
                let Some((interface, name)) = provider.split_once(':') else { continue };
                out.push(ProviderInstance {
                    host: host.id.clone(),
                    interface: interface.to_owned(),
                    name: name.to_owned(),
                    builtin: name == crate::INMEMORY_PROVIDER || name == crate::NATS_MESSAGING_PROVIDER,
                    app: host.provider_owners.get(name).map(|owner| owner.app.clone()),
                });
            }
        }
        out.sort_by(|a, b| (&a.host, &a.interface, &a.name).cmp(&(&b.host, &b.interface, &b.name)));
        Ok(out)
    }

    /// Routes HTTP requests matching `route` to `actor` on every host's ingress (replacing the route's actor).
    pub async fn put_route(&self, actor: &Name, route: &lattice_core::http::Route) -> Result<(), ClientError> {
        let key = self.subjects.route_key(route);
        self.put_record(key, actor, crate::state::route_record_text(route), "storing the route").await
    }

    /// Removes `route`; false if there was none.
    pub async fn delete_route(&self, route: &lattice_core::http::Route) -> Result<bool, ClientError> {
        self.delete_record(&self.subjects.route_key(route), "deleting the route").await
    }

    /// Every HTTP route of the lattice and its actor, sorted by route.
    pub async fn list_routes(&self) -> Result<Vec<(lattice_core::http::Route, Name)>, ClientError> {
        let records = self.list_records(self.subjects.routes_filter(), "listing routes").await?;
        let mut out: Vec<_> = records
            .into_iter()
            .filter_map(|record| Some((crate::state::route_of_record(&record)?, record.actor)))
            .collect();
        out.sort();
        Ok(out)
    }

    /// Stores a link-shaped record (a link, or a route: `text`) of `actor` under `key` in the state bucket,
    /// signed with the operator key when there is one.
    async fn put_record(&self, key: String, actor: &Name, text: String, what: &str) -> Result<(), ClientError> {
        let signature = match &self.operator {
            Some(operator) => {
                let nonce = control_auth::new_nonce().map_err(|e| ClientError::Sign(e.to_string()))?;
                let lattice = self.subjects.lattice().as_str();
                Some(control_auth::sign_link(operator, lattice, actor.as_str(), &text, now_ms(), nonce))
            }
            None => None,
        };
        let record = LinkRecord { actor: actor.clone(), link: text, signature };
        self.state()
            .await?
            .put(key, wire::encode(&record).into())
            .await
            .map(drop)
            .map_err(|e| ClientError::Nats { what: what.into(), message: e.to_string() })
    }

    /// Deletes `key` from the state bucket; false if it held nothing.
    async fn delete_record(&self, key: &str, what: &str) -> Result<bool, ClientError> {
        let store = self.state().await?;
        let nats = |e: &dyn std::fmt::Display| ClientError::Nats { what: what.into(), message: e.to_string() };
        if store.get(key).await.map_err(|e| nats(&e))?.is_none() {
            return Ok(false);
        }
        store.delete(key).await.map_err(|e| nats(&e))?;
        Ok(true)
    }

    /// The link-shaped records under the keys `filter` (`prefix.>`) matches.
    async fn list_records(&self, filter: &str, what: &str) -> Result<Vec<LinkRecord>, ClientError> {
        let store = self.state().await?;
        let nats = |e: &dyn std::fmt::Display| ClientError::Nats { what: what.into(), message: e.to_string() };
        let mut keys = store.keys().await.map_err(|e| nats(&e))?;
        // The bucket holds apps, their history and status too: read only the keys asked for.
        let prefix = filter.trim_end_matches('>');
        let mut out = Vec::new();
        while let Some(key) = keys.next().await {
            let key = key.map_err(|e| nats(&e))?;
            if !key.starts_with(prefix) {
                continue;
            }
            if let Some(value) = store.get(&key).await.map_err(|e| nats(&e))?
                && let Ok(record) = wire::decode::<LinkRecord>(&value)
            {
                out.push(record);
            }
        }
        Ok(out)
    }

    async fn app_store(&self) -> Result<crate::apps::AppStore, ClientError> {
        Ok(crate::apps::AppStore::new(self.state().await?, self.subjects.clone()))
    }

    /// Every app's current record.
    pub async fn apps(&self) -> Result<Vec<AppRecord>, ClientError> {
        Ok(self.app_store().await?.list().await?)
    }

    /// An app's current record.
    pub async fn app(&self, name: &Name) -> Result<Option<AppRecord>, ClientError> {
        Ok(self.app_store().await?.current(name).await?.map(|(record, _)| record))
    }

    /// Every stored revision of an app, oldest first.
    pub async fn app_history(&self, name: &Name) -> Result<Vec<AppRecord>, ClientError> {
        Ok(self.app_store().await?.history(name).await?)
    }

    /// How the lattice's leader last saw an app (`None` before it reconciled it once).
    pub async fn app_status(&self, name: &Name) -> Result<Option<AppStatus>, ClientError> {
        Ok(self.app_store().await?.status(name).await?)
    }

    /// The host holding the reconciler's lease, if any.
    pub async fn leader(&self) -> Result<Option<Name>, ClientError> {
        let js = jetstream::new(self.client.clone());
        let Ok(bucket) = js.get_key_value(self.subjects.leader_bucket()).await else {
            return Ok(None);
        };
        let value = bucket
            .get(lattice_core::subject::LEADER_KEY)
            .await
            .map_err(|e| ClientError::Nats { what: "reading the leader lease".into(), message: e.to_string() })?;
        let Some(value) = value else { return Ok(None) };
        match lease_holder(&self.subjects, self.hosts.as_deref(), &value, now_ms()) {
            Ok(holder) => Ok(holder),
            Err(reason) => {
                tracing::warn!(%reason, "ignored a reconciler lease not verifiably written by its holder");
                self.refused(&self.subjects.leader_record(), None, reason);
                Ok(None)
            }
        }
    }

    /// Stores `spec` as the app's next revision (signed with the operator key, if set); a spec equal to the
    /// current one stores nothing. Refused when another app declares one of its actors or providers. The
    /// app's links are not touched: call [`LatticeClient::sync_app_links`] once its providers run (a link to a
    /// provider that does not run yet would fail calls in between).
    pub async fn apply_app(&self, spec: AppSpec) -> Result<Applied, ClientError> {
        let store = self.app_store().await?;
        for other in store.list().await? {
            if other.spec.name == spec.name {
                continue;
            }
            if let Some(actor) = spec.actors.iter().find(|a| other.spec.actors.iter().any(|o| o.name == a.name)) {
                return Err(ClientError::Conflict(format!(
                    "actor `{}` belongs to app `{}`: rename it or delete that app",
                    actor.name, other.spec.name
                )));
            }
            if let Some(provider) =
                spec.providers.iter().find(|p| other.spec.providers.iter().any(|o| o.name == p.name))
            {
                return Err(ClientError::Conflict(format!(
                    "provider `{}` belongs to app `{}`: rename it or delete that app",
                    provider.name, other.spec.name
                )));
            }
        }
        let current = store.current(&spec.name).await?;
        if let Some((record, _)) = &current
            && record.spec == spec
        {
            return Ok(Applied { revision: record.revision, changed: false, previous: Some(record.spec.clone()) });
        }
        let kv_revision = current.as_ref().map_or(0, |(_, r)| *r);
        let revision = current.as_ref().map_or(1, |(record, _)| record.revision + 1);
        let signature = match &self.operator {
            Some(operator) => {
                let nonce = control_auth::new_nonce().map_err(|e| ClientError::Sign(e.to_string()))?;
                let lattice = self.subjects.lattice().as_str();
                Some(control_auth::sign_app(operator, lattice, &spec, revision, now_ms(), nonce))
            }
            None => None,
        };
        let previous = current.map(|(record, _)| record);
        let record = AppRecord { spec, revision, applied_at_ms: now_ms(), signature };
        store.put(&record, previous.as_ref().map(|_| kv_revision)).await?;
        Ok(Applied { revision, changed: true, previous: previous.map(|r| r.spec) })
    }

    /// Makes the lattice's links of an app's actors match `next`: links it declares are written where the
    /// lattice's differ, links `previous` declared and `next` does not are removed. Returns the links written
    /// (`<actor> <link>`) and removed (`<actor> <interface>:<name>`).
    pub async fn sync_app_links(
        &self,
        previous: Option<&AppSpec>,
        next: Option<&AppSpec>,
    ) -> Result<(Vec<String>, Vec<String>), ClientError> {
        let existing: std::collections::BTreeSet<(Name, String)> =
            self.list_links().await?.into_iter().map(|r| (r.actor, r.link)).collect();
        let parse = |text: &str| {
            text.parse::<LinkSpec>().map_err(|e| {
                ClientError::Remote(WireError::new(ErrorCode::InvalidConfig, format!("link `{text}`: {e}")))
            })
        };
        let mut wanted = std::collections::BTreeSet::new();
        let mut put = Vec::new();
        for actor in next.map(|s| s.actors.as_slice()).unwrap_or_default() {
            for text in &actor.links {
                let link = parse(text)?;
                wanted.insert((actor.name.clone(), link.interface, link.name.clone()));
                if !existing.contains(&(actor.name.clone(), link.to_string())) {
                    self.put_link(&actor.name, &link).await?;
                    put.push(format!("{} {link}", actor.name));
                }
            }
        }
        let mut removed = Vec::new();
        for actor in previous.map(|s| s.actors.as_slice()).unwrap_or_default() {
            for text in &actor.links {
                let link = parse(text)?;
                if !wanted.contains(&(actor.name.clone(), link.interface, link.name.clone()))
                    && self.delete_link(&actor.name, link.interface, &link.name).await?
                {
                    removed.push(format!("{} {}:{}", actor.name, link.interface.as_str(), link.name));
                }
            }
        }
        Ok((put, removed))
    }

    /// Deletes an app: its record, history and status go at once (the leader then stops everything the app
    /// placed); its actors' links are removed too. Returns the record it had, `None` if there was no such app.
    pub async fn delete_app(&self, name: &Name) -> Result<Option<(AppRecord, Vec<String>)>, ClientError> {
        let store = self.app_store().await?;
        let Some((record, _)) = store.current(name).await? else {
            return Ok(None);
        };
        store.delete(name).await?;
        let (_, removed) = self.sync_app_links(Some(&record.spec), None).await?;
        Ok(Some((record, removed)))
    }

    /// The sha256 an artifact in the lattice's store was pushed with (`None`: no such artifact).
    pub async fn artifact_digest(&self, name: &str) -> Result<Option<String>, ClientError> {
        let js = jetstream::new(self.client.clone());
        let store = artifacts::store(&js, &self.subjects.artifact_bucket(), true)
            .await
            .map_err(|e| ClientError::Nats { what: "opening the artifact store".into(), message: e.to_string() })?;
        match store.info(name).await {
            Ok(info) => Ok(info.metadata.get(DIGEST_KEY).cloned()),
            Err(error) if error.kind() == object_store::InfoErrorKind::NotFound => Ok(None),
            Err(error) => {
                Err(ClientError::Nats { what: format!("looking up artifact `{name}`"), message: error.to_string() })
            }
        }
    }

    /// The lattice's artifact store (`None`: nothing was ever pushed).
    async fn artifact_store(&self) -> Result<Option<object_store::ObjectStore>, ClientError> {
        let js = jetstream::new(self.client.clone());
        match js.get_object_store(self.subjects.artifact_bucket()).await {
            Ok(store) => Ok(Some(store)),
            Err(error) => match self.check_jetstream().await {
                Err(no_jetstream @ ClientError::NoJetStream(_)) => Err(no_jetstream),
                _ if error.kind() == jetstream::context::ObjectStoreErrorKind::GetStore => Ok(None),
                _ => Err(ClientError::Nats { what: "opening the artifact store".into(), message: error.to_string() }),
            },
        }
    }

    /// Every artifact pushed to the lattice, sorted by name.
    pub async fn artifacts(&self) -> Result<Vec<ArtifactInfo>, ClientError> {
        let Some(store) = self.artifact_store().await? else { return Ok(Vec::new()) };
        artifacts::list(&store)
            .await
            .map_err(|e| ClientError::Nats { what: "listing artifacts".into(), message: e.to_string() })
    }

    /// Removes the artifact named `what`, or every artifact whose digest starts with `what` (at least
    /// [`artifacts::MIN_DIGEST_PREFIX`] hex digits). Actors already started from it keep running. Returns what
    /// was removed; `NotFound` when nothing matches.
    pub async fn remove_artifact(&self, what: &str) -> Result<Vec<ArtifactInfo>, ClientError> {
        let not_found = || {
            ClientError::Remote(WireError::new(
                ErrorCode::NotFound,
                format!("no artifact named `{what}` or with a digest starting with it (see `lattice artifact list`)"),
            ))
        };
        let Some(store) = self.artifact_store().await? else { return Err(not_found()) };
        let all = artifacts::list(&store)
            .await
            .map_err(|e| ClientError::Nats { what: "listing artifacts".into(), message: e.to_string() })?;
        let matching: Vec<ArtifactInfo> = artifacts::matching(&all, what).into_iter().cloned().collect();
        if matching.is_empty() {
            return Err(not_found());
        }
        for artifact in &matching {
            store.delete(&artifact.name).await.map_err(|e| ClientError::Nats {
                what: format!("removing artifact `{}`", artifact.name),
                message: e.to_string(),
            })?;
        }
        Ok(matching)
    }

    /// Invokes `actor` wherever it runs. A W3C `traceparent`, when given, travels with the call, reaches the
    /// actor as message metadata and comes back in [`CallReply::traceparent`]; without one, no trace context
    /// is sent (see [`new_traceparent`] to start a trace).
    pub async fn call(
        &self,
        actor: &Name,
        topic: Option<&str>,
        payload: Bytes,
        timeout: Duration,
        traceparent: Option<&str>,
    ) -> Result<CallReply, ClientError> {
        let options = CallOptions { topic, traceparent, ..CallOptions::new(timeout) };
        self.call_once(actor, payload, &options, None).await
    }

    /// Invokes `actor` as `options` say: with a `lattice-msg-id` the actor sees in the message's metadata (and
    /// from which the ids of its durable sends are derived), and, with `retries`, again when no reply comes
    /// (timeout, no host runs it, every instance busy), with the same id (a new random one unless given), up to
    /// `retries` more times, waiting 200 ms, doubling, between attempts. Retrying is safe only when handling the
    /// same message twice has the effect of handling it once (the actor guards its effects with the id, or has
    /// none): the first call may have been handled even though its reply was lost. Returns the reply and how
    /// many calls were made.
    pub async fn call_with(
        &self,
        actor: &Name,
        payload: Bytes,
        options: &CallOptions<'_>,
    ) -> Result<(CallReply, u32), ClientError> {
        let generated;
        let message_id = match options.message_id {
            Some(id) => Some(id),
            None if options.retries > 0 => {
                let nonce = control_auth::new_nonce().map_err(|e| ClientError::Sign(e.to_string()))?;
                generated = hex::encode(nonce);
                Some(generated.as_str())
            }
            None => None,
        };
        let mut wait = Duration::from_millis(200);
        let mut attempt = 1;
        loop {
            let result = self.call_once(actor, payload.clone(), options, message_id).await;
            let retry = match &result {
                Err(ClientError::Timeout { .. } | ClientError::NoResponders(_)) => true,
                Err(ClientError::Remote(error)) => error.code == ErrorCode::Unavailable,
                _ => false,
            };
            if !retry || attempt > options.retries {
                return result.map(|reply| (reply, attempt));
            }
            tracing::info!(%actor, attempt, id = message_id.unwrap_or_default(), "no reply: calling again with the same id");
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(5));
            attempt += 1;
        }
    }

    async fn call_once(
        &self,
        actor: &Name,
        payload: Bytes,
        options: &CallOptions<'_>,
        message_id: Option<&str>,
    ) -> Result<CallReply, ClientError> {
        let (topic, timeout, traceparent) = (options.topic, options.timeout, options.traceparent);
        let mut request_headers = HeaderMap::new();
        for (name, value) in
            [(headers::TOPIC, topic), (headers::TRACEPARENT, traceparent), (headers::MESSAGE_ID, message_id)]
        {
            if let Some(value) = value {
                request_headers.insert(name, header_value(name, value)?);
            }
        }
        let reply = self.invocation(actor, payload, request_headers, timeout).await?;
        let header = |name: &str| reply.headers.as_ref().and_then(|h| h.get(name)).map(|v| v.as_str().to_owned());
        Ok(CallReply {
            data: (header(headers::REPLY).as_deref() != Some("none")).then_some(reply.payload),
            host: header(headers::HOST),
            traceparent: header(headers::TRACEPARENT),
        })
    }

    /// Sends an HTTP request to `actor`'s `wasi:http/incoming-handler` wherever the actor runs (what an ingress
    /// does for an actor that runs on another host, and `lattice call --http`). Returns the response and the
    /// host that served it.
    pub async fn http(
        &self,
        actor: &Name,
        request: &lattice_core::http::HttpRequest,
        timeout: Duration,
    ) -> Result<(lattice_core::http::HttpResponse, Option<String>), ClientError> {
        let mut request_headers = HeaderMap::new();
        request_headers.insert(headers::HTTP, "1");
        let reply = self.invocation(actor, wire::encode(request).into(), request_headers, timeout).await?;
        let host = reply.headers.as_ref().and_then(|h| h.get(headers::HOST)).map(|v| v.as_str().to_owned());
        let response = wire::decode(&reply.payload).map_err(ClientError::Remote)?;
        Ok((response, host))
    }

    /// One invocation of `actor` on its subject: the reply when its status is ok, else the error it carries.
    async fn invocation(
        &self,
        actor: &Name,
        payload: Bytes,
        request_headers: HeaderMap,
        timeout: Duration,
    ) -> Result<async_nats::Message, ClientError> {
        let mut request = async_nats::Request::new().payload(payload).timeout(Some(timeout));
        if !request_headers.is_empty() {
            request = request.headers(request_headers);
        }
        let reply =
            self.client.send_request(self.subjects.invoke(actor), request).await.map_err(|e| match e.kind() {
                RequestErrorKind::NoResponders => ClientError::NoResponders(format!(
                    "no host in lattice `{}` runs actor `{actor}`: start it with `lattice start` or `lattice apply`",
                    self.subjects.lattice()
                )),
                _ => Self::request_error(&format!("call to `{actor}`"), timeout, e),
            })?;
        let header = |name: &str| reply.headers.as_ref().and_then(|h| h.get(name)).map(|v| v.as_str().to_owned());
        match header(headers::STATUS).as_deref() {
            Some("ok") => Ok(reply),
            Some("error") => Err(ClientError::Remote(WireError::new(
                ErrorCode::parse(&header(headers::ERROR_CODE).unwrap_or_default()),
                String::from_utf8_lossy(&reply.payload).into_owned(),
            ))),
            _ => Err(ClientError::Remote(WireError::new(
                ErrorCode::BadRequest,
                "reply without a Lattice-Status header: is something else listening on the actor's subject?",
            ))),
        }
    }

    /// Publishes `payload` on `subject` through JetStream and returns once a stream stored it: the stream and
    /// the message's sequence in it. `message_id` sets `lattice-msg-id` and the deduplication id (a second
    /// publish with the same id within the stream's window is stored once: `duplicate` is then true).
    pub async fn publish(
        &self,
        subject: &str,
        payload: Bytes,
        metadata: &[(String, String)],
        message_id: Option<&str>,
    ) -> Result<Published, ClientError> {
        let mut map = HeaderMap::new();
        for (key, value) in metadata {
            let name = key
                .parse::<async_nats::HeaderName>()
                .map_err(|e| ClientError::Nats { what: format!("header `{key}`"), message: e.to_string() })?;
            let value = value
                .parse::<async_nats::HeaderValue>()
                .map_err(|e| ClientError::Nats { what: format!("header `{key}`"), message: e.to_string() })?;
            map.append(name, value);
        }
        if let Some(id) = message_id {
            let id = header_value(headers::MESSAGE_ID, id)?;
            map.insert(headers::MESSAGE_ID, id.clone());
            map.insert(headers::NATS_MSG_ID, id);
        }
        let js = jetstream::new(self.client.clone());
        let failed = |e: &dyn std::fmt::Display| {
            let message = e.to_string();
            let message = if message.contains("no stream") {
                format!("no stream captures `{subject}`: nothing subscribes to it at least once yet ({message})")
            } else {
                message
            };
            ClientError::Nats { what: format!("publishing to `{subject}`"), message }
        };
        let ack = js
            .publish_with_headers(subject.to_owned(), map, payload)
            .await
            .map_err(|e| failed(&e))?
            .await
            .map_err(|e| failed(&e))?;
        Ok(Published { stream: ack.stream, seq: ack.sequence, duplicate: ack.duplicate })
    }

    /// Stores a component in the lattice's artifact store under `name`, recording its sha256. `progress` is
    /// told how many bytes have been sent so far.
    pub async fn push(
        &self,
        name: &str,
        bytes: Bytes,
        progress: impl Fn(u64) + Send + Sync + Unpin + 'static,
    ) -> Result<Pushed, ClientError> {
        let js = jetstream::new(self.client.clone());
        let store = artifacts::store(&js, &self.subjects.artifact_bucket(), true)
            .await
            .map_err(|e| ClientError::Nats { what: "opening the artifact store".into(), message: e.to_string() })?;
        let digest = hex::encode(Sha256::digest(&bytes));
        let size = bytes.len() as u64;
        let meta = object_store::ObjectMetadata {
            name: name.to_owned(),
            description: Some("lattice actor component".into()),
            metadata: [(DIGEST_KEY.to_owned(), digest.clone())].into(),
            ..Default::default()
        };
        let mut reader = ProgressReader { inner: std::io::Cursor::new(bytes), sent: 0, progress };
        store
            .put(meta, &mut reader)
            .await
            .map_err(|e| ClientError::Nats { what: format!("pushing `{name}`"), message: e.to_string() })?;
        Ok(Pushed { name: name.to_owned(), digest, size })
    }

    /// The events the lattice kept (every kind but heartbeats, newest last), up to `limit`.
    pub async fn recent_events(&self, limit: usize) -> Result<Vec<Event>, ClientError> {
        let storage = |e: &dyn std::fmt::Display| ClientError::Nats {
            what: "reading recent events".into(),
            message: e.to_string(),
        };
        let js = jetstream::new(self.client.clone());
        let Ok(mut stream) = js.get_stream(self.subjects.events_stream()).await else {
            return Ok(Vec::new());
        };
        let state = stream.info().await.map_err(|e| storage(&e))?.state.clone();
        let mut out = Vec::new();
        if state.messages == 0 {
            return Ok(out);
        }
        let first = state.last_sequence.saturating_sub(limit.max(1) as u64 - 1).max(state.first_sequence);
        for seq in first..=state.last_sequence {
            // Sequences can have gaps (deleted or expired messages): skip those.
            if let Ok(message) = stream.get_raw_message(seq).await
                && let Ok(event) = wire::decode::<Event>(&message.payload)
            {
                out.push(event);
            }
        }
        Ok(out)
    }

    /// A stream of the lattice's events (every kind). Undecodable events are yielded as errors.
    pub async fn events(&self) -> Result<impl Stream<Item = Result<Event, WireError>> + use<>, ClientError> {
        let subscriber = self
            .client
            .subscribe(self.subjects.events_wildcard())
            .await
            .map_err(|e| ClientError::Nats { what: "subscribing to events".into(), message: e.to_string() })?;
        Ok(subscriber.map(|m| wire::decode::<Event>(&m.payload)))
    }
}

/// How [`LatticeClient::call_with`] calls.
#[derive(Debug, Clone, Copy)]
pub struct CallOptions<'a> {
    /// The topic the actor sees.
    pub topic: Option<&'a str>,
    /// How long to wait for the reply of each call.
    pub timeout: Duration,
    /// W3C trace context to send.
    pub traceparent: Option<&'a str>,
    /// The call's `lattice-msg-id`.
    pub message_id: Option<&'a str>,
    /// Calls again after no reply, at most this many times.
    pub retries: u32,
}

impl CallOptions<'_> {
    /// One call, no topic, trace context or id.
    pub fn new(timeout: Duration) -> Self {
        Self { topic: None, timeout, traceparent: None, message_id: None, retries: 0 }
    }
}

/// Where [`LatticeClient::publish`] stored a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Published {
    /// The stream that captured the subject.
    pub stream: String,
    /// The message's sequence in it.
    pub seq: u64,
    /// The stream already had a message with this id: this one was not stored again.
    pub duplicate: bool,
}

/// The successful replies of a scatter/gather; when there is none but some host refused the request as
/// unauthorized, that refusal (so a caller learns why nobody answered).
/// The holder a lease value names (`None`: free). With a verifier, the value must be sealed by the host it
/// names within [`MAX_SKEW_MS`] of `now_ms` (the leader renews it every few hundred ms), else it is refused.
pub fn lease_holder(
    subjects: &Subjects,
    verifier: Option<&HostVerifier>,
    value: &[u8],
    now_ms: u64,
) -> Result<Option<Name>, HostRefusal> {
    let (body, seal) = host_auth::split_seal(value);
    if body.is_empty() {
        return Ok(None);
    }
    let holder = std::str::from_utf8(body)
        .ok()
        .and_then(|text| Name::new(text).ok())
        .ok_or_else(|| HostRefusal::Malformed("the lease does not name a host".into()))?;
    if let Some(verifier) = verifier {
        verifier.verify_as(&holder, &subjects.leader_record(), body, seal?.as_ref(), now_ms, Some(MAX_SKEW_MS))?;
    }
    Ok(Some(holder))
}

fn only_answers<T>(replies: Vec<Reply<T>>) -> Result<Vec<T>, ClientError> {
    let mut refusal = None;
    let mut out = Vec::new();
    for reply in replies {
        match reply {
            Ok(answer) => out.push(answer),
            Err(error) if error.code == ErrorCode::Unauthorized => refusal = Some(error),
            Err(_) => {}
        }
    }
    match refusal {
        Some(error) if out.is_empty() => Err(ClientError::Remote(error)),
        _ => Ok(out),
    }
}

/// Checks that `value` is a W3C `traceparent` (`00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`,
/// lowercase, ids not all zero); the error says what is wrong.
pub fn check_traceparent(value: &str) -> Result<(), String> {
    let parts: Vec<&str> = value.split('-').collect();
    let [version, trace_id, parent_id, flags] = parts[..] else {
        return Err(format!("`{value}` is not a traceparent: expected version-traceid-parentid-flags"));
    };
    let hex = |part: &str, len: usize, what: &str| {
        if part.len() == len && part.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            Ok(())
        } else {
            Err(format!("traceparent `{value}`: the {what} must be {len} lowercase hex digits"))
        }
    };
    hex(version, 2, "version")?;
    hex(trace_id, 32, "trace id")?;
    hex(parent_id, 16, "parent id")?;
    hex(flags, 2, "flags")?;
    if version == "ff" {
        return Err(format!("traceparent `{value}`: version ff is invalid"));
    }
    if trace_id.bytes().all(|b| b == b'0') || parent_id.bytes().all(|b| b == b'0') {
        return Err(format!("traceparent `{value}`: an all-zero id is invalid"));
    }
    Ok(())
}

/// A W3C trace context with fresh random ids (from the operating system's randomness).
pub fn new_traceparent() -> String {
    let mut ids = [0u8; 24];
    // Without OS randomness (never seen on supported systems) the ids come from the clock: still valid.
    if getrandom::getrandom(&mut ids).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos())
            .to_le_bytes();
        for (i, byte) in ids.iter_mut().enumerate() {
            *byte = nanos[i % nanos.len()] ^ (i as u8);
        }
    }
    // An all-zero id is invalid: force a bit in each.
    ids[0] |= 1;
    ids[16] |= 1;
    format!("00-{}-{}-01", hex::encode(&ids[..16]), hex::encode(&ids[16..]))
}

struct ProgressReader<F> {
    inner: std::io::Cursor<Bytes>,
    sent: u64,
    progress: F,
}

impl<F: Fn(u64) + Unpin> tokio::io::AsyncRead for ProgressReader<F> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        let read = (buf.filled().len() - before) as u64;
        if read > 0 {
            self.sent += read;
            (self.progress)(self.sent);
        }
        polled
    }
}

#[cfg(test)]
mod tests {
    use super::{check_traceparent, new_traceparent};

    #[test]
    fn fresh_traceparents_are_valid_and_distinct() {
        let (a, b) = (new_traceparent(), new_traceparent());
        assert_eq!(check_traceparent(&a), Ok(()));
        assert_ne!(a, b);
    }

    #[test]
    fn malformed_traceparents_are_refused_with_the_reason() {
        let ok = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(check_traceparent(ok), Ok(()));
        for (bad, reason) in [
            ("", "expected version-traceid-parentid-flags"),
            ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7", "expected version-traceid-parentid-flags"),
            ("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", "trace id must be 32 lowercase hex"),
            ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902-01", "parent id must be 16 lowercase hex"),
            ("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "version ff is invalid"),
            ("00-00000000000000000000000000000000-00f067aa0ba902b7-01", "all-zero id"),
        ] {
            let error = check_traceparent(bad).expect_err(bad);
            assert!(error.contains(reason), "{bad}: {error}");
        }
    }
}
