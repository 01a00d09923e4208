//! The control server: answers ping, auction and this host's verbs. Every reply reports the outcome.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::Message;
use futures::StreamExt;
use lattice_core::claims::Rejection;
use lattice_core::link::LinkSpec;
use lattice_core::subject::{HostVerb, Name};
use lattice_core::wire::{
    self, ActorInfo, ActorStarted, ActorStopped, ArtifactRef, Auction, Bid, DeleteLabel, Empty, ErrorCode, EventData,
    HostInfo, HostStopping, Labels, LimitsSpec, ProviderRestarted, ProviderStarted, ProviderStopped, PutLabel, Reply,
    RestartProvider, ScaleActor, StartActor, StartProvider, StopActor, StopHost, StopProvider, WireError,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use super::artifact_dir::PathArtifactError;
use super::artifacts::{self, ArtifactError};
use super::{Shared, serve};
use crate::{ActorConfig, ActorLimits, LinkError, LoadError};

/// Subscribes to the control subjects and serves them until `stop` is cancelled. Each request is handled in
/// its own task, so a slow start never delays a ping.
pub(crate) async fn run(shared: Arc<Shared>, stop: CancellationToken) -> Result<(), async_nats::SubscribeError> {
    let client = &shared.client;
    let subjects = &shared.subjects;
    let mut verbs = client.subscribe(subjects.host_verbs_wildcard(&shared.id)).await?;
    let mut pings = client.subscribe(subjects.ping()).await?;
    let mut auctions = client.subscribe(subjects.auction()).await?;
    let in_flight = Arc::new(tokio::sync::Semaphore::new(MAX_CONTROL_IN_FLIGHT));
    tokio::spawn(async move {
        loop {
            let (kind, message) = tokio::select! {
                () = stop.cancelled() => break,
                Some(m) = verbs.next() => (Kind::Verb, m),
                Some(m) = pings.next() => (Kind::Ping, m),
                Some(m) = auctions.next() => (Kind::Auction, m),
                else => break,
            };
            // Admission: a bounded number of requests in flight; the excess is answered at once.
            let Ok(permit) = in_flight.clone().try_acquire_owned() else {
                refuse_busy(&shared, kind, message).await;
                continue;
            };
            let shared = shared.clone();
            tokio::spawn(async move {
                handle(shared, kind, message).await;
                drop(permit);
            });
        }
    });
    Ok(())
}

/// Control requests a host handles at once; more are answered at once with `unavailable`.
pub(crate) const MAX_CONTROL_IN_FLIGHT: usize = 64;

/// Answers a control request the host has no room for. Auctions stay unanswered (a busy host is no candidate).
async fn refuse_busy(shared: &Shared, kind: Kind, message: Message) {
    if matches!(kind, Kind::Auction) {
        return;
    }
    let Ok(Some(reply_to)) = shared.replies.inbox(&message).await else { return };
    tracing::debug!(subject = %message.subject, "control request refused: too many in flight");
    let error = WireError::new(
        ErrorCode::Unavailable,
        format!(
            "host {} is busy: {MAX_CONTROL_IN_FLIGHT} control requests in flight (the most it handles at once); \
             retry later",
            shared.id
        ),
    );
    shared.reply(&reply_to, wire::encode::<Reply<Empty>>(&Err(error))).await;
}

#[derive(Clone, Copy)]
enum Kind {
    Verb,
    Ping,
    Auction,
}

async fn handle(shared: Arc<Shared>, kind: Kind, message: Message) {
    // A reply subject that is no inbox is refused before the request is even authenticated.
    let Ok(Some(reply_to)) = shared.replies.inbox(&message).await else {
        tracing::debug!(subject = %message.subject, "control request without an inbox to answer ignored");
        return;
    };
    if let Err(refused) = check_operator(&shared, kind, &message).await {
        shared.reply(&reply_to, refused).await;
        return;
    }
    let payload = &message.payload;
    let reply: Option<Vec<u8>> = match kind {
        Kind::Ping => Some(respond(payload, |_: Empty| async { host_info(&shared).await }).await),
        Kind::Auction => auction(&shared, payload).await,
        Kind::Verb => Some(match shared.subjects.parse_host_verb(&shared.id, &message.subject) {
            Some(verb) => verb_reply(&shared, verb, payload).await,
            None => wire::encode::<Reply<Empty>>(&Err(WireError::new(
                ErrorCode::BadRequest,
                format!("unknown control verb on `{}`", message.subject),
            ))),
        }),
    };
    if let Some(reply) = reply {
        shared.reply(&reply_to, reply).await;
    }
}

/// Applies the operator policy to a request before its body is decoded. A refusal is logged, published as a
/// `control.refused` event and returned as the encoded `unauthorized` error reply. Ping, auction and the
/// read-only verbs are open unless signed reads are required; every other verb, including one this host does
/// not know, needs a signature.
async fn check_operator(shared: &Shared, kind: Kind, message: &Message) -> Result<(), Vec<u8>> {
    let subject = message.subject.as_str();
    let (verb, read_only) = match kind {
        Kind::Ping => ("ping", true),
        Kind::Auction => ("auction", true),
        Kind::Verb => match shared.subjects.parse_host_verb(&shared.id, subject) {
            Some(verb) => (verb.as_str(), verb.is_read_only()),
            None => ("unknown", false),
        },
    };
    let Err(refused) = shared.gate.check_request(message, read_only) else {
        return Ok(());
    };
    let reason = refused.refusal.to_string();
    let operator = refused.operator.map(|o| o.to_string());
    tracing::warn!(%subject, verb, operator = operator.as_deref().unwrap_or("none"), %reason, "control request refused");
    shared
        .events
        .publish(EventData::ControlRefused {
            subject: subject.to_owned(),
            verb: verb.to_owned(),
            reason: reason.clone(),
            operator,
        })
        .await;
    Err(wire::encode::<Reply<Empty>>(&Err(WireError::new(
        ErrorCode::Unauthorized,
        format!("control request `{verb}` refused by host {}: {reason}", shared.id),
    ))))
}

/// Decodes the request, runs `f`, and encodes its outcome; decoding errors become error replies.
async fn respond<Req, Resp, F, Fut>(payload: &[u8], f: F) -> Vec<u8>
where
    Req: DeserializeOwned,
    Resp: Serialize,
    F: FnOnce(Req) -> Fut,
    Fut: Future<Output = Reply<Resp>>,
{
    let reply = match wire::decode::<Req>(payload) {
        Ok(request) => f(request).await,
        Err(error) => {
            tracing::warn!(%error, "malformed control request");
            Err(error)
        }
    };
    wire::encode(&reply)
}

async fn verb_reply(shared: &Arc<Shared>, verb: HostVerb, payload: &[u8]) -> Vec<u8> {
    match verb {
        HostVerb::Inventory => respond(payload, |_: Empty| async { host_info(shared).await }).await,
        HostVerb::StartActor => respond(payload, |req: StartActor| start(shared, req)).await,
        HostVerb::StopActor => respond(payload, |req: StopActor| stop_actor(shared, req)).await,
        HostVerb::ScaleActor => respond(payload, |req: ScaleActor| scale(shared, req)).await,
        HostVerb::PutLabel => respond(payload, |req: PutLabel| label(shared, req.key, Some(req.value))).await,
        HostVerb::DeleteLabel => respond(payload, |req: DeleteLabel| label(shared, req.key, None)).await,
        HostVerb::Stop => respond(payload, |req: StopHost| stop_host(shared, req)).await,
        HostVerb::StartProvider => respond(payload, |req: StartProvider| start_provider(shared, req)).await,
        HostVerb::RestartProvider => respond(payload, |req: RestartProvider| restart_provider(shared, req)).await,
        HostVerb::StopProvider => respond(payload, |req: StopProvider| stop_provider(shared, req)).await,
        // Verbs added to core later than this host (the enum is non-exhaustive): say so, never stay silent.
        _ => wire::encode::<Reply<Empty>>(&Err(WireError::new(
            ErrorCode::BadRequest,
            format!("verb `{}` is not supported by this host", verb.as_str()),
        ))),
    }
}

fn shutting_down() -> WireError {
    WireError::new(ErrorCode::Unavailable, "the host is shutting down")
}

pub(crate) async fn host_info(shared: &Shared) -> Reply<HostInfo> {
    let (actors, labels) = shared.table.snapshot().await.map_err(|_| shutting_down())?;
    let owners = shared.table.provider_owners().await.map_err(|_| shutting_down())?;
    Ok(shared.info(actors, labels, owners))
}

async fn auction(shared: &Shared, payload: &[u8]) -> Option<Vec<u8>> {
    let request: Auction = match wire::decode(payload) {
        Ok(request) => request,
        Err(error) => return Some(wire::encode::<Reply<Bid>>(&Err(error))),
    };
    let (actors, labels) = shared.table.snapshot().await.ok()?;
    let matches = request.constraints.iter().all(|(k, v)| labels.get(k) == Some(v));
    // Hosts that do not match stay silent, so the caller only hears candidates.
    matches.then(|| {
        wire::encode::<Reply<Bid>>(&Ok(Bid {
            host: shared.id.clone(),
            labels,
            actors: u32::try_from(actors.len()).unwrap_or(u32::MAX),
        }))
    })
}

fn apply_limits(defaults: &ActorLimits, spec: &LimitsSpec) -> ActorLimits {
    let mut limits = defaults.clone();
    if let Some(v) = spec.memory_bytes {
        limits.memory_bytes = usize::try_from(v).unwrap_or(usize::MAX);
    }
    if let Some(v) = spec.cpu_time_ms {
        limits.cpu_time = Duration::from_millis(v);
    }
    if let Some(v) = spec.timeout_ms {
        limits.timeout = Duration::from_millis(v);
    }
    if let Some(v) = spec.max_concurrency {
        limits.max_concurrency = v;
    }
    if let Some(v) = spec.max_reply_bytes {
        limits.max_reply_bytes = usize::try_from(v).unwrap_or(usize::MAX);
    }
    if let Some(v) = spec.instance_reuse {
        limits.instance_reuse = v;
    }
    limits
}

fn artifact_error(error: ArtifactError) -> WireError {
    let code = match &error {
        ArtifactError::NotFound(_) => ErrorCode::NotFound,
        ArtifactError::NoDigest(_) | ArtifactError::DigestMismatch { .. } | ArtifactError::NotExpected { .. } => {
            ErrorCode::DigestMismatch
        }
        ArtifactError::TooLarge { .. } => ErrorCode::InvalidConfig,
        _ => ErrorCode::Unavailable,
    };
    WireError::new(code, error.to_string())
}

fn load_error_code(error: &LoadError) -> ErrorCode {
    match error {
        // Claims refused, or a link to an interface the claims do not list: both are policy refusals.
        // Bytes that are not a component at all: no claims were judged, it just cannot be compiled.
        LoadError::Rejected(Rejection::InvalidComponent(_)) => ErrorCode::CompileFailed,
        LoadError::Rejected(_) | LoadError::Links(LinkError::NotAllowed { .. }) => ErrorCode::Rejected,
        LoadError::TooLarge { .. } | LoadError::Limits(_) | LoadError::Links(_) => ErrorCode::InvalidConfig,
        LoadError::Compile(_) | LoadError::World(_) => ErrorCode::CompileFailed,
    }
}

/// A load error as the caller, on another machine, reads it: a refusal by this host's claims policy names the
/// setting of this host that would change it, not a flag of the caller's command.
fn load_error_message(host: &Name, error: &LoadError) -> String {
    match error {
        LoadError::Rejected(Rejection::Unsigned) => format!(
            "actor is not signed, and host {host} refuses unsigned actors: start it with --allow-unsigned or set \
             allow_unsigned = true in its config (development only), or sign the actor"
        ),
        LoadError::Rejected(Rejection::UntrustedIssuer { issuer }) => format!(
            "actor is signed by issuer {issuer}, which host {host} does not trust: add {issuer} to its trusted \
             issuers (--trusted-issuer {issuer}, or trusted_issuers in its config)"
        ),
        other => other.to_string(),
    }
}

/// Reads the component `artifact` names, refusing bytes whose sha256 is not `expected` (when given). A start
/// of a pushed artifact without an expected digest is refused on a host that trusts operators: the name alone
/// would let whoever can write the artifact store choose what runs under an operator's signature.
async fn read_artifact(shared: &Shared, artifact: &ArtifactRef, expected: Option<&str>) -> Result<Vec<u8>, WireError> {
    if let Some(expected) = expected
        && (expected.len() != 64 || !expected.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
    {
        return Err(WireError::new(
            ErrorCode::BadRequest,
            "the expected digest is not a sha256: 64 lowercase hex digits",
        ));
    }
    match artifact {
        ArtifactRef::Path(path) => {
            let bytes = read_path_artifact(shared, path).await?;
            if let Some(expected) = expected {
                let actual = hex::encode(Sha256::digest(&bytes));
                if actual != expected {
                    let (name, expected) = (path.clone(), expected.to_owned());
                    return Err(artifact_error(ArtifactError::NotExpected { name, expected, actual }));
                }
            }
            Ok(bytes)
        }
        ArtifactRef::Lattice(name) => {
            if expected.is_none() && shared.gate.policy().enforced() {
                return Err(WireError::new(
                    ErrorCode::BadRequest,
                    format!(
                        "start of artifact `{name}` names no digest, and host {} trusts operators: it runs pushed \
                         artifacts only by digest (`lattice start` resolves it; update the client)",
                        shared.id
                    ),
                ));
            }
            let bucket = shared.subjects.artifact_bucket();
            let recent = &shared.recent_artifacts;
            artifacts::fetch(&shared.jetstream, &bucket, name, expected, shared.max_component_bytes, recent)
                .await
                .map_err(artifact_error)
        }
        _ => Err(WireError::new(ErrorCode::BadRequest, "unsupported artifact reference")),
    }
}

/// Reads a component from a local path, only from inside the host's artifact directory (see `artifact_dir`).
async fn read_path_artifact(shared: &Shared, path: &str) -> Result<Vec<u8>, WireError> {
    let host = shared.id.to_string();
    let Some(dir) = shared.artifact_dir.clone() else {
        return Err(path_artifact_error(PathArtifactError::Disabled { host }));
    };
    let (path, limit) = (path.to_owned(), shared.max_component_bytes);
    tokio::task::spawn_blocking(move || dir.read(&path, &host, limit))
        .await
        .map_err(|e| WireError::new(ErrorCode::Internal, format!("artifact reader task failed: {e}")))?
        .map_err(path_artifact_error)
}

fn path_artifact_error(error: PathArtifactError) -> WireError {
    let code = match &error {
        PathArtifactError::Disabled { .. } => ErrorCode::Rejected,
        PathArtifactError::NotFound { .. } => ErrorCode::NotFound,
        PathArtifactError::NotAFile { .. } | PathArtifactError::TooLarge { .. } => ErrorCode::InvalidConfig,
        _ => ErrorCode::Unavailable,
    };
    WireError::new(code, error.to_string())
}

async fn start(shared: &Arc<Shared>, request: StartActor) -> Reply<ActorStarted> {
    let started = Instant::now();
    let name = request.name.clone();
    let result = start_inner(shared, request, started).await;
    if let Err(error) = &result
        && error.code != ErrorCode::Rejected
    {
        shared.events.publish(EventData::ActorFailed { name, error: error.clone() }).await;
    }
    result
}

async fn start_inner(shared: &Arc<Shared>, request: StartActor, started: Instant) -> Reply<ActorStarted> {
    let requested: Vec<LinkSpec> = request
        .links
        .iter()
        .map(|l| l.parse())
        .collect::<Result<_, _>>()
        .map_err(|e: lattice_core::link::LinkParseError| WireError::new(ErrorCode::InvalidConfig, e.to_string()))?;
    let links = actor_links(shared, &request.name, &requested);
    let link_texts: Vec<String> = links.iter().map(ToString::to_string).collect();
    check_remote_providers(shared, &links).await?;
    let limits = apply_limits(&shared.default_limits, &request.limits);
    check_pool(shared, limits.max_concurrency)?;
    let bytes = read_artifact(shared, &request.artifact, request.digest.as_deref()).await?;
    let issuer = lattice_core::claims::inspect(&bytes).ok().flatten().map(|signed| signed.claims.issuer.to_string());
    let config_links = links.clone();
    let config = ActorConfig { limits, links };
    let actor = match shared.runtime.load(request.name.as_str(), bytes, config).await {
        Ok(actor) => actor,
        Err(error) => {
            let code = load_error_code(&error);
            let message = load_error_message(&shared.id, &error);
            if code == ErrorCode::Rejected {
                shared
                    .events
                    .publish(EventData::ActorRejected { name: request.name.clone(), reason: message.clone(), issuer })
                    .await;
            }
            return Err(WireError::new(code, message));
        }
    };
    let info = ActorInfo {
        name: request.name.clone(),
        digest: actor.load_report().digest.clone(),
        max_concurrency: actor.max_concurrency(),
        from_cache: actor.load_report().from_cache,
        load_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        subject: actor.claims().map(|claims| claims.subject.to_string()),
        links: link_texts,
        owner: request.owner.clone(),
        http: actor.serves_http(),
    };
    // Replacing an actor that runs here keeps its subscription (no gap in its queue group); a new one gets a
    // serving task of its own.
    if !shared.table.replace(info.clone(), actor.clone()).await.map_err(|_| shutting_down())? {
        let subscription = shared
            .client
            .queue_subscribe(shared.subjects.invoke(&request.name), shared.subjects.invoke_queue(&request.name))
            .await
            .map_err(|e| WireError::new(ErrorCode::Unavailable, format!("cannot subscribe: {e}")))?;
        let stop = CancellationToken::new();
        let (serving, following) = tokio::sync::watch::channel(actor.clone());
        tokio::spawn(serve::serve(
            following,
            subscription,
            shared.replies.clone(),
            shared.id.clone(),
            shared.tracker.clone(),
            stop.clone(),
        ));
        let installed = shared.table.install(info.clone(), actor, stop.clone(), serving).await;
        if let Err(full) = installed.map_err(|_| shutting_down())? {
            stop.cancel();
            return Err(WireError::new(
                ErrorCode::InvalidConfig,
                format!("cannot start on host {}: {full}", shared.id),
            ));
        }
    }
    // A link change that arrived while the actor loaded found nothing to re-link: apply it now. (A change
    // published after this read finds the actor installed, so none is lost in between.)
    let current = actor_links(shared, &request.name, &requested);
    if current != config_links {
        match shared.table.relink(request.name.clone(), current).await {
            Ok(Some(Err(error))) => tracing::warn!(actor = %request.name, %error, "cannot apply changed links"),
            Ok(Some(Ok(()))) => tracing::info!(actor = %request.name, "links changed while the actor started"),
            Ok(None) | Err(_) => {}
        }
    }
    tracing::info!(actor = %info.name, digest = %info.digest, from_cache = info.from_cache, "actor started");
    shared.events.publish(EventData::ActorStarted(info.clone())).await;
    Ok(ActorStarted { host: shared.id.clone(), actor: info })
}

/// The links an actor starts with: the lattice's links for it, then the request's for any interface and name
/// the lattice has none for (the lattice's win).
fn actor_links(shared: &Shared, actor: &lattice_core::subject::Name, requested: &[LinkSpec]) -> Vec<LinkSpec> {
    let mut links = super::links::links_of(&shared.links.borrow(), actor);
    for spec in requested {
        if !links.iter().any(|l| l.interface == spec.interface && l.name == spec.name) {
            links.push(spec.clone());
        }
    }
    links
}

async fn stop_actor(shared: &Arc<Shared>, request: StopActor) -> Reply<ActorStopped> {
    if !shared.table.remove(request.name.clone()).await.map_err(|_| shutting_down())? {
        return Err(WireError::new(
            ErrorCode::NotFound,
            format!("actor `{}` does not run on host {}", request.name, shared.id),
        ));
    }
    shared.events.publish(EventData::ActorStopped { name: request.name.clone() }).await;
    Ok(ActorStopped { host: shared.id.clone(), name: request.name })
}

async fn scale(shared: &Arc<Shared>, request: ScaleActor) -> Reply<ActorInfo> {
    if request.max_concurrency == 0 {
        return Err(WireError::new(
            ErrorCode::InvalidConfig,
            "max concurrency must be at least 1 (stop the actor to run none)",
        ));
    }
    check_pool(shared, request.max_concurrency)?;
    shared.table.rescale(request.name.clone(), request.max_concurrency).await.map_err(|_| shutting_down())?.ok_or_else(
        || WireError::new(ErrorCode::NotFound, format!("actor `{}` does not run on host {}", request.name, shared.id)),
    )
}

/// Refuses a max concurrency the host's instance pool could never hold.
fn check_pool(shared: &Shared, max_concurrency: u32) -> Result<(), WireError> {
    let pool = shared.runtime.max_instances();
    if max_concurrency > pool {
        return Err(WireError::new(
            ErrorCode::InvalidConfig,
            format!(
                "max concurrency {max_concurrency} exceeds host {}'s instance pool of {pool} (--max-instances)",
                shared.id
            ),
        ));
    }
    Ok(())
}

async fn label(shared: &Arc<Shared>, key: String, value: Option<String>) -> Reply<Labels> {
    if key.is_empty() || key.len() > 128 || key.chars().any(|c| c.is_control() || c == '=') {
        return Err(WireError::new(ErrorCode::BadRequest, format!("invalid label key `{key}`")));
    }
    let labels: BTreeMap<String, String> = shared.table.put_label(key, value).await.map_err(|_| shutting_down())?;
    Ok(Labels { host: shared.id.clone(), labels })
}

async fn stop_host(shared: &Arc<Shared>, request: StopHost) -> Reply<HostStopping> {
    // The tracker also counts each actor's serving task (it holds a token while it drains): report invocations.
    let serving = shared.table.snapshot().await.map_or(0, |(actors, _)| actors.len());
    let in_flight = shared.tracker.len().saturating_sub(serving) as u64;
    shared.request_stop(request.grace_ms.map(Duration::from_millis));
    Ok(HostStopping { host: shared.id.clone(), in_flight })
}

/// Refuses a backend URL in `config` that the host's `--provider-allow` patterns do not allow.
fn check_backend_urls(shared: &Shared, kind: &str, config: &BTreeMap<String, String>) -> Result<(), WireError> {
    for (key, url) in super::providers::backend_urls(kind, config) {
        if let Err(refusal) = shared.provider_allow.check(url) {
            // The refusal shows the URL as scheme://host[:port] only: never a password.
            tracing::warn!(host = %shared.id, kind, %refusal, "provider backend url refused");
            let message = match refusal.url() {
                Some(url) => format!(
                    "backend url {url} is not allowed on host {}: add a --provider-allow pattern \
                     (LATTICE_PROVIDER_ALLOW, provider_allow in the host config)",
                    shared.id
                ),
                None => format!(
                    "config `{key}`: {refusal}; host {} accepts only urls matching a --provider-allow pattern",
                    shared.id
                ),
            };
            return Err(WireError::new(ErrorCode::InvalidConfig, message));
        }
    }
    Ok(())
}

async fn start_provider(shared: &Arc<Shared>, request: StartProvider) -> Reply<ProviderStarted> {
    let name = lattice_core::subject::Name::new(request.name.clone())
        .map_err(|e| WireError::new(ErrorCode::BadRequest, format!("invalid provider name: {e}")))?;
    if super::providers::BUILTIN_PROVIDERS.contains(&name.as_str()) {
        return Err(WireError::new(
            ErrorCode::InvalidConfig,
            format!("provider name `{name}` is built into every host and cannot be taken: choose another name"),
        ));
    }
    check_backend_urls(shared, &request.kind, &request.config)?;
    // Claim the name first, atomically in the table task: of two concurrent starts only one builds,
    // installs and supervises an instance.
    let (restart, requests) = tokio::sync::mpsc::channel(4);
    let stop = shared.stop_token().child_token();
    let slot = super::table::ProviderSlot {
        kind: request.kind.clone(),
        restart,
        stop: stop.clone(),
        owner: request.owner.clone(),
    };
    if let Err(kind) = shared.table.claim_provider(name.to_string(), slot).await.map_err(|_| shutting_down())? {
        return Err(WireError::new(
            ErrorCode::InvalidConfig,
            format!(
                "provider `{name}` already runs on host {} (kind `{kind}`): choose another name, or restart it \
                 with `lattice provider restart` if it failed",
                shared.id
            ),
        ));
    }
    // Names the runtime was built with are taken too (instances are added at run time only under a claim).
    if shared.runtime.providers().is_local_keyvalue(name.as_str()) {
        let _ = shared.table.release_provider(name.to_string()).await;
        return Err(WireError::new(
            ErrorCode::InvalidConfig,
            format!(
                "provider `{name}` already exists on host {} (built into its runtime): choose another name",
                shared.id
            ),
        ));
    }
    let started = async {
        let provider = super::providers::build_keyvalue(&request.kind, &request.config, shared.kv_quota)
            .await
            .map_err(|message| WireError::new(ErrorCode::InvalidConfig, message))?;
        // Registered here, served to the other hosts of the lattice, and supervised from now on.
        super::supervise::install(shared, &name, provider.clone())
            .await
            .map_err(|message| WireError::new(ErrorCode::Unavailable, message))?;
        Ok::<_, WireError>(provider)
    };
    let provider = match started.await {
        Ok(provider) => provider,
        Err(error) => {
            let _ = shared.table.release_provider(name.to_string()).await;
            return Err(error);
        }
    };
    tokio::spawn(super::supervise::supervise(
        shared.clone(),
        name,
        request.kind.clone(),
        request.config.clone(),
        provider,
        requests,
        stop,
    ));
    tracing::info!(provider = %request.name, kind = %request.kind, "provider started");
    Ok(ProviderStarted { host: shared.id.clone(), name: request.name, kind: request.kind })
}

async fn stop_provider(shared: &Arc<Shared>, request: StopProvider) -> Reply<ProviderStopped> {
    let name = request.name;
    let Some(slot) = shared.table.stop_provider(name.clone()).await.map_err(|_| shutting_down())? else {
        return Err(WireError::new(
            ErrorCode::NotFound,
            format!("no provider `{name}` was started on host {} (built-in ones cannot be stopped)", shared.id),
        ));
    };
    slot.stop.cancel();
    shared.runtime.remove_keyvalue_provider(&name);
    // Actors linked to it resolve the name again: to an instance another host serves, or to an error.
    if shared.table.relink_all().await.is_err() {
        return Err(shutting_down());
    }
    tracing::info!(provider = %name, kind = %slot.kind, "provider stopped");
    shared.events.publish(EventData::ProviderStopped { name: name.clone() }).await;
    Ok(ProviderStopped { host: shared.id.clone(), name })
}

async fn restart_provider(shared: &Arc<Shared>, request: RestartProvider) -> Reply<ProviderRestarted> {
    use super::supervise::{Restart, RestartError};
    let name = request.name;
    let Some(slot) = shared.table.provider(name.clone()).await.map_err(|_| shutting_down())? else {
        let why = if super::providers::BUILTIN_PROVIDERS.contains(&name.as_str()) {
            "it is built into the host and not supervised"
        } else {
            "no provider of that name was started there (see `lattice inventory`)"
        };
        return Err(WireError::new(
            ErrorCode::NotFound,
            format!("cannot restart provider `{name}` on host {}: {why}", shared.id),
        ));
    };
    // The supervisor is gone only when the host stops or the instance never started.
    let gone = || {
        WireError::new(
            ErrorCode::Unavailable,
            format!("provider `{name}` on host {} is no longer supervised (the host is stopping)", shared.id),
        )
    };
    let (done, outcome) = tokio::sync::oneshot::channel();
    slot.restart.send(Restart { done }).await.map_err(|_| gone())?;
    match outcome.await.map_err(|_| gone())? {
        Ok(unhealthy) => {
            tracing::info!(provider = %name, kind = %slot.kind, "provider restarted on request");
            Ok(ProviderRestarted { host: shared.id.clone(), name, kind: slot.kind, unhealthy })
        }
        Err(RestartError::NotFailed) => Err(WireError::new(
            ErrorCode::BadRequest,
            format!(
                "provider `{name}` on host {} has not failed: its supervisor still checks and restarts it \
                 (a restart is for a provider after `provider.failed`)",
                shared.id
            ),
        )),
        Err(RestartError::Rebuild(message)) => Err(WireError::new(
            ErrorCode::Unavailable,
            format!("cannot restart provider `{name}` on host {}: {message}; it stays failed", shared.id),
        )),
    }
}

/// Checks that every key-value link naming a provider not in this process names one some host serves, so a
/// start fails with the reason instead of every call failing later.
async fn check_remote_providers(shared: &Shared, links: &[LinkSpec]) -> Result<(), WireError> {
    let providers = shared.runtime.providers();
    for link in links {
        if link.interface != lattice_core::link::Interface::KeyValue || providers.is_local_keyvalue(&link.provider) {
            continue;
        }
        let missing = || {
            WireError::new(
                ErrorCode::InvalidConfig,
                format!(
                    "no keyvalue provider named `{}` on host {} or served in lattice `{}` (local: {})",
                    link.provider,
                    shared.id,
                    shared.lattice,
                    providers.keyvalue_names().collect::<Vec<_>>().join(", ")
                ),
            )
        };
        let name = lattice_core::subject::Name::new(link.provider.clone()).map_err(|_| missing())?;
        let remote = lattice_provider_sdk::remote::RemoteKeyValue::new(
            shared.client.clone(),
            shared.subjects.provider(&name, "keyvalue"),
            REMOTE_CHECK_TIMEOUT,
        )
        .with_signer(shared.signer.clone());
        remote.ping().await.map_err(|_| missing())?;
    }
    Ok(())
}

/// How long a start waits for a remote provider to answer its ping.
const REMOTE_CHECK_TIMEOUT: Duration = Duration::from_secs(2);
