//! Operator keys: a host that trusts an operator accepts mutating control requests and link records only when
//! that operator signed them, fresh and not replayed. Each attack below fails the test if the host accepts it.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use async_nats::jetstream;
use bytes::Bytes;
use futures::Stream;
use lattice_core::control_auth::{self, MAX_SKEW_MS, OperatorPolicy, RequestAuth};
use lattice_core::keys::{KeyKind, SeedKey};
use lattice_core::link::LinkSpec;
use lattice_core::subject::HostVerb;
use lattice_core::wire::{self, ErrorCode, Event, EventData, Labels, LinkRecord, PutLabel, StopHost, WireError};
use lattice_host::lattice::{self, ClientError, HostConfig, LatticeClient, RunningHost};
use lattice_test_harness::wait_for;

use crate::{GATHER, TestLattice, call, credentialed, expect_event, kv_counter, name, runtime, text};

/// How long to wait for an event or a change to reach a host (generous for a loaded machine).
const SETTLE: Duration = Duration::from_secs(15);

fn operator() -> SeedKey {
    SeedKey::from_seed_bytes(KeyKind::Operator, &[21; 32])
}

fn stranger() -> SeedKey {
    SeedKey::from_seed_bytes(KeyKind::Operator, &[22; 32])
}

fn now_ms() -> u64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}

fn nonce() -> [u8; control_auth::NONCE_LEN] {
    control_auth::new_nonce().unwrap_or_else(|e| panic!("{e}"))
}

/// A host of `lattice` (lattice name `lattice_name`) trusting `operator`.
async fn guarded_host(lattice: &TestLattice, lattice_name: &str, id: &str, signed_reads: bool) -> Result<RunningHost> {
    let mut config: HostConfig = lattice.host_config(id, &[]);
    config.lattice = name(lattice_name);
    config.operators = OperatorPolicy { trusted: vec![operator().public_key()], require_signed_reads: signed_reads };
    lattice::start(credentialed(config, &operator()), runtime()).await.with_context(|| format!("starting host {id}"))
}

async fn client_of(lattice: &TestLattice, lattice_name: &str) -> Result<LatticeClient> {
    Ok(LatticeClient::connect(&lattice.nats_config(), name(lattice_name)).await?.with_timeout(crate::CONTROL_TIMEOUT))
}

/// Sends `payload` to `subject` with `auth`'s headers (if any) and returns the raw reply.
async fn send(client: &LatticeClient, subject: &str, payload: &[u8], auth: Option<&RequestAuth>) -> Result<Bytes> {
    let mut request = async_nats::Request::new().payload(Bytes::copy_from_slice(payload)).timeout(Some(SETTLE));
    if let Some(auth) = auth {
        let mut headers = async_nats::HeaderMap::new();
        for (header, value) in auth.headers() {
            headers.insert(header, value.as_str());
        }
        request = request.headers(headers);
    }
    Ok(client.nats().send_request(subject.to_owned(), request).await?.payload)
}

/// The reply must be an `unauthorized` error whose message contains `reason`.
fn refused<T: std::fmt::Debug>(reply: wire::Reply<T>, reason: &str) -> Result<WireError> {
    match reply {
        Err(error) if error.code == ErrorCode::Unauthorized && error.message.contains(reason) => Ok(error),
        other => bail!("expected an unauthorized refusal saying `{reason}`, got {other:?}"),
    }
}

fn client_refused<T: std::fmt::Debug>(result: Result<T, ClientError>, reason: &str) -> Result<WireError> {
    match result {
        Err(ClientError::Remote(error)) => refused::<()>(Err(error), reason),
        other => bail!("expected an unauthorized refusal saying `{reason}`, got {other:?}"),
    }
}

/// Waits for the `control.refused` event of `verb` whose reason starts with `reason`; returns its operator.
async fn refusal_event<S>(events: &mut S, verb: &str, reason: &str) -> Result<Option<String>>
where
    S: Stream<Item = Result<Event, WireError>> + Unpin,
{
    let event = expect_event(events, &format!("control.refused ({verb}: {reason})"), SETTLE, |e| {
        matches!(&e.data, EventData::ControlRefused { verb: v, reason: r, .. } if v == verb && r.starts_with(reason))
    })
    .await?;
    match event.data {
        EventData::ControlRefused { operator, .. } => Ok(operator),
        _ => bail!("not a control.refused event"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_forged_expired_future_and_replayed_requests_are_refused_signed_ones_work() -> Result<()> {
    let lattice = TestLattice::start("ops").await?;
    let host = guarded_host(&lattice, "ops", "h1", false).await?;
    let id = host.id().clone();
    let anonymous = client_of(&lattice, "ops").await?;
    let signed = client_of(&lattice, "ops").await?.with_operator_key(operator());
    let mut events = anonymous.events().await?;
    let subjects = anonymous.subjects().clone();
    let actor = name("kv-counter");

    // Unsigned: refused, and nothing started.
    client_refused(anonymous.start_actor(&id, &kv_counter(&actor)).await, "unsigned")?;
    assert_eq!(refusal_event(&mut events, "actor.start", "unsigned").await?, None);
    assert!(anonymous.inventory(&id).await?.actors.is_empty());

    // Signed by an operator the host does not trust.
    let untrusted = client_of(&lattice, "ops").await?.with_operator_key(stranger());
    let error = client_refused(untrusted.put_label(&id, "owner", "mallory").await, "untrusted operator")?;
    assert!(error.message.contains(&stranger().public_key().to_string()), "{error}");
    let named = refusal_event(&mut events, "label.put", "untrusted operator").await?;
    assert_eq!(named, Some(stranger().public_key().to_string()));

    // The trusted operator's signature over another body: the label it signed is not the one sent.
    let put_label = subjects.host_verb(&id, HostVerb::PutLabel);
    let signed_body = wire::encode(&PutLabel { key: "owner".into(), value: "alice".into() });
    let sent_body = wire::encode(&PutLabel { key: "owner".into(), value: "mallory".into() });
    let auth = RequestAuth::sign(&operator(), &put_label, &signed_body, now_ms(), nonce());
    let reply = send(&anonymous, &put_label, &sent_body, Some(&auth)).await?;
    refused(wire::decode_reply::<Labels>(&reply), "forged signature")?;
    refusal_event(&mut events, "label.put", "forged signature").await?;

    // The trusted operator's signature of a stop for another host, sent to this one.
    let stop_body = wire::encode(&StopHost::default());
    let elsewhere = subjects.host_verb(&name("h2"), HostVerb::Stop);
    let auth = RequestAuth::sign(&operator(), &elsewhere, &stop_body, now_ms(), nonce());
    let reply = send(&anonymous, &subjects.host_verb(&id, HostVerb::Stop), &stop_body, Some(&auth)).await?;
    refused(wire::decode_reply::<Labels>(&reply), "forged signature")?;
    refusal_event(&mut events, "stop", "forged signature").await?;

    // Expired and future-dated (just beyond the 60 s window each way), correctly signed otherwise.
    let old = RequestAuth::sign(&operator(), &put_label, &signed_body, now_ms() - MAX_SKEW_MS - 5_000, nonce());
    refused(wire::decode_reply::<Labels>(&send(&anonymous, &put_label, &signed_body, Some(&old)).await?), "expired")?;
    refusal_event(&mut events, "label.put", "expired").await?;
    let ahead = RequestAuth::sign(&operator(), &put_label, &signed_body, now_ms() + MAX_SKEW_MS + 5_000, nonce());
    let reply = send(&anonymous, &put_label, &signed_body, Some(&ahead)).await?;
    refused(wire::decode_reply::<Labels>(&reply), "from the future")?;
    refusal_event(&mut events, "label.put", "from the future").await?;

    // None of that changed anything.
    let labels = anonymous.inventory(&id).await?.labels;
    assert_eq!(labels.get("owner"), None, "{labels:?}");

    // A signed request works once; the same bytes again are a replay, even after a later change.
    let first = RequestAuth::sign(&operator(), &put_label, &signed_body, now_ms(), nonce());
    let labels = wire::decode_reply::<Labels>(&send(&anonymous, &put_label, &signed_body, Some(&first)).await?)?;
    assert_eq!(labels.labels.get("owner").map(String::as_str), Some("alice"));
    signed.put_label(&id, "owner", "bob").await?;
    let reply = send(&anonymous, &put_label, &signed_body, Some(&first)).await?;
    refused(wire::decode_reply::<Labels>(&reply), "replayed")?;
    assert_eq!(refusal_event(&mut events, "label.put", "replayed").await?, Some(operator().public_key().to_string()));
    assert_eq!(anonymous.inventory(&id).await?.labels.get("owner").map(String::as_str), Some("bob"));

    // Headers present but incomplete are refused as malformed, not treated as unsigned-but-open.
    let mut partial = async_nats::HeaderMap::new();
    partial.insert(wire::headers::OPERATOR, operator().public_key().to_string().as_str());
    let request = async_nats::Request::new().payload(signed_body.clone().into()).headers(partial).timeout(Some(SETTLE));
    let reply = anonymous.nats().send_request(put_label.clone(), request).await?.payload;
    refused(wire::decode_reply::<Labels>(&reply), "malformed")?;

    // The signed client runs the whole life cycle.
    signed.start_actor(&id, &kv_counter(&actor)).await?;
    assert_eq!(text(&call(&anonymous, &actor, "k").await?)?, "1");
    assert_eq!(signed.scale_actor(&id, &actor, 2).await?.max_concurrency, 2);
    client_refused(anonymous.stop_actor(&id, &actor).await, "unsigned")?;
    assert_eq!(text(&call(&anonymous, &actor, "k").await?)?, "2");
    signed.stop_actor(&id, &actor).await?;
    client_refused(anonymous.stop_host(&id, None).await, "unsigned")?;
    assert_eq!(anonymous.ping(GATHER).await?.len(), 1, "an unsigned stop must not stop the host");
    signed.stop_host(&id, None).await?;
    host.wait().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_verbs_are_open_unless_signed_reads_are_required() -> Result<()> {
    let lattice = TestLattice::start("ops-reads").await?;
    let open = guarded_host(&lattice, "ops-open", "open-1", false).await?;
    let strict = guarded_host(&lattice, "ops-strict", "strict-1", true).await?;

    let anonymous = client_of(&lattice, "ops-open").await?;
    assert_eq!(anonymous.ping(GATHER).await?.len(), 1);
    assert_eq!(anonymous.inventory(open.id()).await?.id, *open.id());
    assert_eq!(anonymous.auction(Default::default(), GATHER).await?.len(), 1);

    let anonymous = client_of(&lattice, "ops-strict").await?;
    let mut events = anonymous.events().await?;
    client_refused(anonymous.inventory(strict.id()).await, "unsigned")?;
    refusal_event(&mut events, "inventory", "unsigned").await?;
    client_refused(anonymous.ping(GATHER).await, "unsigned")?;
    refusal_event(&mut events, "ping", "unsigned").await?;
    client_refused(anonymous.auction(Default::default(), GATHER).await, "unsigned")?;
    refusal_event(&mut events, "auction", "unsigned").await?;

    let signed = client_of(&lattice, "ops-strict").await?.with_operator_key(operator());
    assert_eq!(signed.ping(GATHER).await?.len(), 1);
    assert_eq!(signed.inventory(strict.id()).await?.id, *strict.id());
    assert_eq!(signed.auction(Default::default(), GATHER).await?.len(), 1);
    open.stop().await;
    strict.stop().await;
    Ok(())
}

fn spec(s: &str) -> LinkSpec {
    s.parse().unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_link_records_signed_by_a_trusted_operator_are_applied() -> Result<()> {
    let lattice = TestLattice::start("ops-links").await?;
    let host = guarded_host(&lattice, "ops-links", "h1", false).await?;
    let anonymous = client_of(&lattice, "ops-links").await?;
    let signed = client_of(&lattice, "ops-links").await?.with_operator_key(operator());
    let mut events = anonymous.events().await?;
    let subjects = anonymous.subjects().clone();
    let actor = name("kv-counter");
    let bucket = jetstream::new(anonymous.nats().clone()).get_key_value(subjects.state_bucket()).await?;
    let key = subjects.link_key(&actor, "keyvalue", "default");
    let raw_put = |record: LinkRecord| {
        let bucket = bucket.clone();
        let key = key.clone();
        async move { bucket.put(key, wire::encode(&record).into()).await.map(drop) }
    };

    // A signed link, stored as `lattice start --link` does, then the actor started on it.
    signed.put_link(&actor, &spec("keyvalue:default=inmemory,bucket=first")).await?;
    let mut request = kv_counter(&actor);
    request.links.clear();
    wait_for("the signed link to be applied at start", SETTLE, || async {
        signed.start_actor(host.id(), &request).await.ok().filter(|s| !s.actor.links.is_empty())
    })
    .await?;
    assert_eq!(text(&call(&anonymous, &actor, "k").await?)?, "1");

    // An unsigned record written straight into the bucket is refused.
    raw_put(LinkRecord { actor: actor.clone(), link: "keyvalue:default=inmemory,bucket=evil".into(), signature: None })
        .await?;
    assert_eq!(refusal_event(&mut events, "link", "unsigned").await?, None);
    // Fail closed: the key no longer holds a trusted link, so the actor has none for `default`.
    let denied = wait_for("the overwritten link to be dropped", SETTLE, || async {
        match call(&anonymous, &actor, "k").await {
            Err(ClientError::Remote(e)) => Some(e),
            _ => None,
        }
    })
    .await?;
    assert!(denied.message.contains("AccessDenied"), "{denied}");

    // A record signed by an untrusted operator, and a trusted signature over another link text.
    let link = "keyvalue:default=inmemory,bucket=evil".to_owned();
    let lattice_name = subjects.lattice().as_str();
    let by_stranger = control_auth::sign_link(&stranger(), lattice_name, actor.as_str(), &link, now_ms(), nonce());
    raw_put(LinkRecord { actor: actor.clone(), link: link.clone(), signature: Some(by_stranger) }).await?;
    refusal_event(&mut events, "link", "untrusted operator").await?;
    let other_text = "keyvalue:default=inmemory,bucket=first";
    let misused = control_auth::sign_link(&operator(), lattice_name, actor.as_str(), other_text, now_ms(), nonce());
    raw_put(LinkRecord { actor: actor.clone(), link: link.clone(), signature: Some(misused) }).await?;
    refusal_event(&mut events, "link", "forged signature").await?;

    // A validly signed record copied under another key is refused too (it could never be deleted).
    let good = control_auth::sign_link(&operator(), lattice_name, actor.as_str(), other_text, now_ms(), nonce());
    let copied = LinkRecord { actor: actor.clone(), link: other_text.into(), signature: Some(good) };
    bucket.put(subjects.link_key(&actor, "keyvalue", "copy"), wire::encode(&copied).into()).await?;
    refusal_event(&mut events, "link", "malformed").await?;

    // None of those gave the actor a link: the refusals left it with none for `default`.
    let still_denied = call(&anonymous, &actor, "k").await.expect_err("no link after refused records");
    assert!(still_denied.to_string().contains("AccessDenied"), "{still_denied}");

    // The operator's signed record applies again.
    signed.put_link(&actor, &spec("keyvalue:default=inmemory,bucket=first")).await?;
    wait_for("the signed link to be applied", SETTLE, || async {
        call(&anonymous, &actor, "k").await.ok().and_then(|r| text(&r).ok()).filter(|t| t == "2")
    })
    .await?;
    let listed = anonymous.list_links().await?;
    assert!(listed.iter().any(|l| l.link.ends_with("bucket=first") && l.signature.is_some()), "{listed:?}");
    host.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_that_trust_no_operator_ignore_signatures() -> Result<()> {
    let lattice = TestLattice::start("ops-none").await?;
    let host = lattice.host("h1", &[]).await?;
    let anonymous = lattice.client().await?;
    let by_stranger = lattice.client().await?.with_operator_key(stranger());
    anonymous.put_label(host.id(), "a", "1").await?;
    by_stranger.put_label(host.id(), "b", "2").await?;
    let labels = anonymous.inventory(host.id()).await?.labels;
    assert_eq!((labels.get("a").map(String::as_str), labels.get("b").map(String::as_str)), (Some("1"), Some("2")));
    host.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_app_records_signed_by_a_trusted_operator_are_placed_and_provider_stop_needs_a_signature() -> Result<()> {
    use lattice_core::wire::{AppActor, AppSpec, LimitsSpec};
    let lattice = TestLattice::start("ops-apps").await?;
    // The host trusts the operator and signs its own placements with that key (`--reconciler-key`).
    let mut config: HostConfig = lattice.host_config("h1", &[]);
    config.lattice = name("ops-apps");
    config.operators = OperatorPolicy { trusted: vec![operator().public_key()], require_signed_reads: false };
    config.operator_key = Some(operator());
    let host = lattice::start(credentialed(config, &operator()), runtime()).await?;
    let anonymous = client_of(&lattice, "ops-apps").await?;
    let signed = client_of(&lattice, "ops-apps").await?.with_operator_key(operator());
    let mut events = anonymous.events().await?;
    let pushed = signed.push("kv-counter", std::fs::read(lattice_test_actors::KV_COUNTER)?.into(), |_| {}).await?;
    let app = |name_: &str| AppSpec {
        name: name(name_),
        version: "1".into(),
        env: None,
        actors: vec![AppActor {
            name: name(&format!("{name_}-counter")),
            artifact: pushed.name.clone(),
            digest: pushed.digest.clone(),
            replicas: 1,
            spread: None,
            constraints: Default::default(),
            limits: LimitsSpec::default(),
            links: vec!["keyvalue:default=inmemory".into()],
            routes: Vec::new(),
        }],
        providers: Vec::new(),
    };

    // An unsigned app record is refused by the leader (once, with an event) and nothing is placed.
    anonymous.apply_app(app("evil")).await?;
    assert_eq!(refusal_event(&mut events, "app", "unsigned").await?, None);
    // A signed one is placed, through the leader's signed control requests.
    signed.apply_app(app("good")).await?;
    wait_for("the signed app to be reconciled", SETTLE, || async {
        signed.app_status(&name("good")).await.ok()?.filter(|s| s.reconciled)
    })
    .await?;
    let running: Vec<String> =
        anonymous.inventory(host.id()).await?.actors.iter().map(|a| a.name.to_string()).collect();
    assert_eq!(running, ["good-counter"]);
    assert!(anonymous.app_status(&name("evil")).await?.is_none());

    // provider.stop is a mutating verb: refused unsigned, whatever it names.
    signed.start_provider(host.id(), "cache", "inmemory", Default::default()).await?;
    client_refused(anonymous.stop_provider(host.id(), "cache").await, "unsigned")?;
    signed.stop_provider(host.id(), "cache").await?;
    host.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecodable_link_record_drops_the_link_its_key_held() -> Result<()> {
    // Fail closed whatever the policy: a host that trusts no operator too.
    let lattice = TestLattice::start("ops-garbled").await?;
    let host = lattice.host("h1", &[]).await?;
    let client = lattice.client().await?;
    let mut events = client.events().await?;
    let subjects = client.subjects().clone();
    let actor = name("kv-counter");
    let bucket = jetstream::new(client.nats().clone()).get_key_value(subjects.state_bucket()).await?;
    let key = subjects.link_key(&actor, "keyvalue", "default");
    let denied = || async {
        match call(&client, &actor, "k").await {
            Err(ClientError::Remote(e)) if e.message.contains("AccessDenied") => Some(e),
            _ => None,
        }
    };

    for (garbage, reason) in [
        (Bytes::from_static(b"\xc1 not messagepack"), "undecodable link record"),
        (
            wire::encode(&LinkRecord { actor: actor.clone(), link: "nonsense".into(), signature: None }).into(),
            "invalid link",
        ),
    ] {
        client.put_link(&actor, &spec("keyvalue:default=inmemory,bucket=first")).await?;
        let mut request = kv_counter(&actor);
        request.links.clear();
        wait_for("the link to be applied", SETTLE, || async {
            client.start_actor(host.id(), &request).await.ok().filter(|s| !s.actor.links.is_empty())
        })
        .await?;
        call(&client, &actor, "k").await?;

        bucket.put(key.clone(), garbage).await?;
        refusal_event(&mut events, "link", reason).await?;
        let error = wait_for("the link under the garbled key to be dropped", SETTLE, denied).await?;
        assert!(error.message.contains("AccessDenied"), "{error}");
    }
    host.stop().await;
    Ok(())
}
