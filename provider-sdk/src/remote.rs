//! Providers over the lattice: [`serve_keyvalue`] serves any [`KeyValue`] implementation on a NATS subject,
//! and [`RemoteKeyValue`] is a [`KeyValue`] that calls one served elsewhere.
//!
//! Wire: request/reply on the provider's subject (a queue group, so several hosts can serve one provider),
//! MessagePack bodies `{ v: 1, call }` and `{ v: 1, result }` where `result` carries the provider's typed
//! error. Every remote call has a timeout; "nobody serves this provider" and "timed out" are
//! [`KvError::Backend`] errors naming the provider, never a hang.
//!
//! **Authentication.** A host calls with its host signature ([`RemoteKeyValue::with_signer`]: the
//! `Lattice-Host-Seal` header, over the subject, the payload and the time, with its credential); a server given
//! a [`CallerCheck`] ([`serve_keyvalue_checked`]) answers only calls whose seal a trusted operator's host
//! credential for this lattice vouches for, signed within `MAX_SKEW_MS`, and refuses the others with the typed
//! error `Unauthorized` (the caller sees [`KvError::AccessDenied`]) without decoding them. [`serve_keyvalue`]
//! checks nothing: for standalone providers in lattices that trust no operator.
//!
//! ```no_run
//! # async fn demo(client: async_nats::Client) -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use std::time::Duration;
//! use lattice_provider_sdk::KeyValue;
//! use lattice_provider_sdk::remote::{RemoteKeyValue, serve_keyvalue};
//!
//! # let provider: Arc<dyn KeyValue> = unimplemented!();
//! // On the host that runs the provider:
//! let serving = serve_keyvalue(client.clone(), "lattice.default.provider.cache.keyvalue".into(), provider).await?;
//! // On any other host:
//! let remote = RemoteKeyValue::new(client, "lattice.default.provider.cache.keyvalue".into(), Duration::from_secs(2));
//! remote.set("bucket", "key", b"value".to_vec()).await?;
//! # drop(serving);
//! # Ok(())
//! # }
//! ```

use std::sync::Arc;
use std::time::Duration;

use async_nats::{Client, HeaderMap, RequestErrorKind};
use futures::StreamExt;
use lattice_core::control_auth::MAX_SKEW_MS;
use lattice_core::host_auth::{self, HostRefusal, HostSigner, HostVerifier};
use lattice_core::wire::headers;
use serde::{Deserialize, Serialize};

use crate::{CasOutcome, KeyPage, KeyValue, KvError, async_trait};

/// Version of the remote provider wire format.
pub const REMOTE_VERSION: u16 = 1;

/// The queue group every server of one provider subject shares.
const QUEUE: &str = "lattice-providers";

#[derive(Debug, Serialize, Deserialize)]
enum Call {
    Ping,
    Get { bucket: String, key: String },
    Set { bucket: String, key: String, value: Vec<u8> },
    Delete { bucket: String, key: String },
    Exists { bucket: String, key: String },
    ListKeys { bucket: String, cursor: Option<String> },
    Increment { bucket: String, key: String, delta: i64 },
    Cas { bucket: String, key: String, expected: Option<Vec<u8>>, new: Vec<u8> },
    GetMany { bucket: String, keys: Vec<String> },
    SetMany { bucket: String, pairs: Vec<(String, Vec<u8>)> },
    DeleteMany { bucket: String, keys: Vec<String> },
}

#[derive(Debug, Serialize, Deserialize)]
enum Answer {
    Unit,
    Value(Option<Vec<u8>>),
    Bool(bool),
    Page { keys: Vec<String>, cursor: Option<String> },
    Int(i64),
    Swapped,
    Conflict(Option<Vec<u8>>),
    Many(Vec<(String, Option<Vec<u8>>)>),
}

/// [`KvError`] on the wire.
#[derive(Debug, Serialize, Deserialize)]
enum WireError {
    NoSuchStore,
    AccessDenied,
    NotAnInteger(String),
    Overflow(String),
    Backend(String, String),
    Other(String),
    /// The call is not signed by a host the server trusts (the reason).
    Unauthorized(String),
}

impl From<KvError> for WireError {
    fn from(e: KvError) -> Self {
        match e {
            KvError::NoSuchStore => WireError::NoSuchStore,
            KvError::AccessDenied => WireError::AccessDenied,
            KvError::NotAnInteger { key } => WireError::NotAnInteger(key),
            KvError::Overflow { key } => WireError::Overflow(key),
            KvError::Backend { backend, message } => WireError::Backend(backend, message),
            other => WireError::Other(other.to_string()),
        }
    }
}

impl From<WireError> for KvError {
    fn from(e: WireError) -> Self {
        match e {
            WireError::NoSuchStore => KvError::NoSuchStore,
            WireError::AccessDenied => KvError::AccessDenied,
            WireError::NotAnInteger(key) => KvError::NotAnInteger { key },
            WireError::Overflow(key) => KvError::Overflow { key },
            WireError::Backend(backend, message) => KvError::Backend { backend, message },
            WireError::Other(message) => KvError::Other(message),
            WireError::Unauthorized(reason) => {
                tracing::warn!(%reason, "remote provider refused the call");
                KvError::AccessDenied
            }
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Request {
    v: u16,
    call: Call,
}

#[derive(Debug, Serialize, Deserialize)]
struct Response {
    v: u16,
    result: Result<Answer, WireError>,
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Plain enums and structs of strings and bytes always serialize.
    rmp_serde::to_vec_named(value).unwrap_or_default()
}

async fn answer(provider: &dyn KeyValue, call: Call) -> Result<Answer, KvError> {
    Ok(match call {
        Call::Ping => Answer::Unit,
        Call::Get { bucket, key } => Answer::Value(provider.get(&bucket, &key).await?),
        Call::Set { bucket, key, value } => {
            provider.set(&bucket, &key, value).await?;
            Answer::Unit
        }
        Call::Delete { bucket, key } => {
            provider.delete(&bucket, &key).await?;
            Answer::Unit
        }
        Call::Exists { bucket, key } => Answer::Bool(provider.exists(&bucket, &key).await?),
        Call::ListKeys { bucket, cursor } => {
            let page = provider.list_keys(&bucket, cursor).await?;
            Answer::Page { keys: page.keys, cursor: page.cursor }
        }
        Call::Increment { bucket, key, delta } => Answer::Int(provider.increment(&bucket, &key, delta).await?),
        Call::Cas { bucket, key, expected, new } => {
            match provider.compare_and_swap(&bucket, &key, expected, new).await? {
                CasOutcome::Swapped => Answer::Swapped,
                CasOutcome::Conflict { current } => Answer::Conflict(current),
            }
        }
        Call::GetMany { bucket, keys } => Answer::Many(provider.get_many(&bucket, keys).await?),
        Call::SetMany { bucket, pairs } => {
            provider.set_many(&bucket, pairs).await?;
            Answer::Unit
        }
        Call::DeleteMany { bucket, keys } => {
            provider.delete_many(&bucket, keys).await?;
            Answer::Unit
        }
    })
}

/// Calls one [`serve_keyvalue`] handles at once; more are answered at once with an `unavailable` backend error.
pub const MAX_SERVED_IN_FLIGHT: usize = 256;

fn busy(subject: &str) -> WireError {
    WireError::Backend(
        format!("provider on {subject}"),
        format!("unavailable: {MAX_SERVED_IN_FLIGHT} calls in flight (the most it serves at once); retry later"),
    )
}

/// A provider being served; dropping it stops serving (calls in flight finish).
#[derive(Debug)]
pub struct Serving {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Serving {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Which callers a server answers: those whose host signature `verifier` accepts. `on_refused` hears about
/// every refused call (the host reports them, rate-limited).
#[derive(Clone)]
pub struct CallerCheck {
    /// Checks the caller's seal and credential.
    pub verifier: HostVerifier,
    /// Called with the subject and the reason for each refused call.
    pub on_refused: OnRefused,
}

/// What a [`CallerCheck`] calls for each refused call: the subject and why.
pub type OnRefused = Arc<dyn Fn(&str, &HostRefusal) + Send + Sync>;

impl std::fmt::Debug for CallerCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallerCheck").field("verifier", &self.verifier).finish_non_exhaustive()
    }
}

impl CallerCheck {
    /// `Ok` when `message` carries a fresh host seal the verifier accepts.
    fn check(&self, message: &async_nats::Message) -> Result<(), HostRefusal> {
        let headers = message.headers.as_ref();
        let seal =
            host_auth::seal_from_headers(|name| headers.and_then(|h| h.get(name)).map(|v| v.as_str().to_owned()))?;
        let now = now_ms();
        self.verifier
            .verify(message.subject.as_str(), &message.payload, seal.as_ref(), now, Some(MAX_SKEW_MS))
            .map(drop)
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Serves `provider` on `subject` (in a queue group shared with other servers of the same subject) until the
/// returned [`Serving`] is dropped, answering every caller (see [`serve_keyvalue_checked`] for a server that
/// answers only hosts). A call whose reply subject is no inbox ([`lattice_core::reply::check`]) is refused
/// unanswered, with a rate-limited warning. Malformed requests and unknown versions get an error answer. At most
/// [`MAX_SERVED_IN_FLIGHT`] calls run at once; the excess is answered at once with a [`KvError::Backend`] error
/// whose message starts with `unavailable:`.
pub async fn serve_keyvalue(
    client: Client,
    subject: String,
    provider: Arc<dyn KeyValue>,
) -> Result<Serving, async_nats::SubscribeError> {
    serve_keyvalue_checked(client, subject, provider, None).await
}

/// [`serve_keyvalue`], answering only the calls `check` accepts (with `Some`); a refused call gets the error
/// `Unauthorized` before its body is decoded, and the provider never sees it.
pub async fn serve_keyvalue_checked(
    client: Client,
    subject: String,
    provider: Arc<dyn KeyValue>,
    check: Option<CallerCheck>,
) -> Result<Serving, async_nats::SubscribeError> {
    let mut requests = client.queue_subscribe(subject.clone(), QUEUE.to_owned()).await?;
    let in_flight = Arc::new(tokio::sync::Semaphore::new(MAX_SERVED_IN_FLIGHT));
    let mut warnings = lattice_core::reply::Warnings::default();
    let task = tokio::spawn(async move {
        while let Some(message) = requests.next().await {
            let Some(reply) = message.reply.clone() else { continue };
            // Answers go only to inboxes: a reply subject such as `$JS.API.STREAM.DELETE.…` would have this
            // server act with its own permissions wherever the caller chose.
            if let Err(refused) = lattice_core::reply::check(&reply) {
                if let Some(suppressed) = warnings.may_warn(std::time::Instant::now()) {
                    tracing::warn!(%subject, reason = %refused, suppressed, "remote provider call refused unanswered");
                }
                continue;
            }
            // Admission: a bounded number of calls in flight; the excess is answered at once.
            let Ok(permit) = in_flight.clone().try_acquire_owned() else {
                tracing::debug!(%subject, "remote provider call refused: too many in flight");
                let refusal = Response { v: REMOTE_VERSION, result: Err(busy(&subject)) };
                if let Err(error) = client.publish(reply, encode(&refusal).into()).await {
                    tracing::warn!(%error, "cannot answer a remote provider call");
                }
                continue;
            };
            let provider = provider.clone();
            let client = client.clone();
            let check = check.clone();
            tokio::spawn(async move {
                let _permit = permit;
                let refused = check.as_ref().and_then(|check| {
                    let reason = check.check(&message).err()?;
                    (check.on_refused)(message.subject.as_str(), &reason);
                    Some(reason)
                });
                let result = match (refused, rmp_serde::from_slice::<Request>(&message.payload)) {
                    (Some(reason), _) => {
                        Err(WireError::Unauthorized(format!("remote provider call refused: {reason}")))
                    }
                    (None, Ok(request)) if request.v == REMOTE_VERSION => {
                        answer(provider.as_ref(), request.call).await.map_err(WireError::from)
                    }
                    (None, Ok(request)) => Err(WireError::Other(format!(
                        "unsupported remote provider protocol version {} (this provider speaks {REMOTE_VERSION})",
                        request.v
                    ))),
                    (None, Err(error)) => Err(WireError::Other(format!("malformed remote provider request: {error}"))),
                };
                let response = Response { v: REMOTE_VERSION, result };
                if let Err(error) = client.publish(reply, encode(&response).into()).await {
                    tracing::warn!(%error, "cannot answer a remote provider call");
                }
            });
        }
        tracing::debug!(%subject, "stopped serving provider");
    });
    Ok(Serving { task })
}

/// Serves `provider` as key-value provider instance `name` of lattice `lattice`: what a standalone provider
/// process calls. Actors on any host of the lattice linked to `name` reach it (hosts without a local instance
/// of that name route their calls here).
pub async fn serve_keyvalue_in(
    client: Client,
    lattice: &lattice_core::subject::Name,
    name: &lattice_core::subject::Name,
    provider: Arc<dyn KeyValue>,
) -> Result<Serving, async_nats::SubscribeError> {
    let subject = lattice_core::subject::Subjects::new(lattice.clone()).provider(name, "keyvalue");
    serve_keyvalue(client, subject, provider).await
}

/// A [`KeyValue`] served by another host (see [`serve_keyvalue`]).
#[derive(Debug, Clone)]
pub struct RemoteKeyValue {
    client: Client,
    subject: String,
    timeout: Duration,
    signer: Option<Arc<HostSigner>>,
}

impl RemoteKeyValue {
    /// Calls the provider served on `subject`, each call bounded by `timeout`.
    pub fn new(client: Client, subject: String, timeout: Duration) -> Self {
        Self { client, subject, timeout, signer: None }
    }

    /// Signs every call with this host's key and credential, for servers that answer only hosts.
    pub fn with_signer(mut self, signer: Arc<HostSigner>) -> Self {
        self.signer = Some(signer);
        self
    }

    fn backend(&self, message: String) -> KvError {
        KvError::Backend { backend: format!("remote provider on {}", self.subject), message }
    }

    async fn call(&self, call: Call) -> Result<Answer, KvError> {
        let payload = encode(&Request { v: REMOTE_VERSION, call });
        let mut request = async_nats::Request::new().timeout(Some(self.timeout));
        if let Some(signer) = &self.signer {
            let mut map = HeaderMap::new();
            map.insert(headers::HOST_SEAL, signer.seal(&self.subject, &payload, now_ms()).to_text().as_str());
            request = request.headers(map);
        }
        let request = request.payload(payload.into());
        let reply = self.client.send_request(self.subject.clone(), request).await.map_err(|e| match e.kind() {
            RequestErrorKind::NoResponders => self.backend("no host serves this provider".into()),
            RequestErrorKind::TimedOut => self.backend(format!("timed out after {:?}", self.timeout)),
            _ => self.backend(e.to_string()),
        })?;
        let response: Response =
            rmp_serde::from_slice(&reply.payload).map_err(|e| self.backend(format!("malformed answer: {e}")))?;
        response.result.map_err(KvError::from)
    }

    fn unexpected(&self, answer: Answer) -> KvError {
        self.backend(format!("unexpected answer {answer:?}"))
    }

    /// Whether some host serves the provider (a round trip with no effect).
    pub async fn ping(&self) -> Result<(), KvError> {
        self.call(Call::Ping).await.map(drop)
    }
}

#[async_trait]
impl KeyValue for RemoteKeyValue {
    async fn get(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        match self.call(Call::Get { bucket: bucket.into(), key: key.into() }).await? {
            Answer::Value(v) => Ok(v),
            other => Err(self.unexpected(other)),
        }
    }

    async fn set(&self, bucket: &str, key: &str, value: Vec<u8>) -> Result<(), KvError> {
        self.call(Call::Set { bucket: bucket.into(), key: key.into(), value }).await.map(drop)
    }

    async fn delete(&self, bucket: &str, key: &str) -> Result<(), KvError> {
        self.call(Call::Delete { bucket: bucket.into(), key: key.into() }).await.map(drop)
    }

    async fn exists(&self, bucket: &str, key: &str) -> Result<bool, KvError> {
        match self.call(Call::Exists { bucket: bucket.into(), key: key.into() }).await? {
            Answer::Bool(b) => Ok(b),
            other => Err(self.unexpected(other)),
        }
    }

    async fn list_keys(&self, bucket: &str, cursor: Option<String>) -> Result<KeyPage, KvError> {
        match self.call(Call::ListKeys { bucket: bucket.into(), cursor }).await? {
            Answer::Page { keys, cursor } => Ok(KeyPage { keys, cursor }),
            other => Err(self.unexpected(other)),
        }
    }

    async fn increment(&self, bucket: &str, key: &str, delta: i64) -> Result<i64, KvError> {
        match self.call(Call::Increment { bucket: bucket.into(), key: key.into(), delta }).await? {
            Answer::Int(v) => Ok(v),
            other => Err(self.unexpected(other)),
        }
    }

    async fn compare_and_swap(
        &self,
        bucket: &str,
        key: &str,
        expected: Option<Vec<u8>>,
        new: Vec<u8>,
    ) -> Result<CasOutcome, KvError> {
        match self.call(Call::Cas { bucket: bucket.into(), key: key.into(), expected, new }).await? {
            Answer::Swapped => Ok(CasOutcome::Swapped),
            Answer::Conflict(current) => Ok(CasOutcome::Conflict { current }),
            other => Err(self.unexpected(other)),
        }
    }

    async fn get_many(&self, bucket: &str, keys: Vec<String>) -> Result<Vec<(String, Option<Vec<u8>>)>, KvError> {
        match self.call(Call::GetMany { bucket: bucket.into(), keys }).await? {
            Answer::Many(v) => Ok(v),
            other => Err(self.unexpected(other)),
        }
    }

    async fn set_many(&self, bucket: &str, pairs: Vec<(String, Vec<u8>)>) -> Result<(), KvError> {
        self.call(Call::SetMany { bucket: bucket.into(), pairs }).await.map(drop)
    }

    async fn delete_many(&self, bucket: &str, keys: Vec<String>) -> Result<(), KvError> {
        self.call(Call::DeleteMany { bucket: bucket.into(), keys }).await.map(drop)
    }
}
