//! A host answers only inboxes (docs/security.md §10): a caller who may publish requests picks the reply subject,
//! and the host's answer is published with the host's permissions. Each test sends requests on one path
//! (invocation, at-capacity refusal, HTTP over NATS, control verb, control refusal, remote provider) with a raw
//! NATS client whose reply subjects delete the state bucket's stream, delete the artifact store's stream, or
//! plant a link record, then checks that the streams and the link table survived and (for the host's paths) that
//! a `reply.refused` event was published for each.

use std::collections::BTreeMap;

use anyhow::{Context, Result, ensure};
use async_nats::jetstream;
use bytes::Bytes;
use futures::Stream;
use lattice_core::keys::{KeyKind, SeedKey};
use lattice_core::link::LinkSpec;
use lattice_core::subject::HostVerb;
use lattice_core::wire::{ArtifactRef, ErrorCode, Event, EventData, WireError};
use lattice_host::lattice::{self, ClientError, LatticeClient, RunningHost};

use crate::{CALL_TIMEOUT, TestLattice, call, expect_event, kv_counter, name, runtime, start_request, text};

/// The actor whose link the planted record would replace.
const VICTIM: &str = "victim";

/// A host with a lattice worth destroying: pushed artifacts (the object store) and a link (the state bucket).
struct Target {
    host: RunningHost,
    client: LatticeClient,
    /// Last: the server outlives the host and the client.
    _lattice: TestLattice,
}

async fn target(lattice_name: &str, operators: bool) -> Result<Target> {
    let lattice = TestLattice::start(lattice_name).await?;
    let mut config = lattice.host_config("host-1", &[]);
    if operators {
        config = crate::credentialed(config, &SeedKey::from_seed_bytes(KeyKind::Operator, &[31; 32]));
    }
    let host = lattice::start(config, runtime()).await.context("starting host-1")?;
    let client = lattice.client().await?;
    let component = std::fs::read(lattice_test_actors::KV_COUNTER)?;
    client.push("kv-counter-v1", Bytes::from(component), |_| {}).await?;
    if !operators {
        client.put_link(&name(VICTIM), &"keyvalue:default=inmemory".parse::<LinkSpec>()?).await?;
    }
    Ok(Target { host, client, _lattice: lattice })
}

/// Reply subjects that would delete the state bucket's stream, delete the artifact store's stream, and write a
/// link record for a new actor.
fn hostile(client: &LatticeClient) -> [String; 3] {
    let s = client.subjects();
    [
        format!("$JS.API.STREAM.DELETE.KV_{}", s.state_bucket()),
        format!("$JS.API.STREAM.DELETE.OBJ_{}", s.artifact_bucket()),
        format!("$KV.{}.{}", s.state_bucket(), s.link_key(&name("planted"), "keyvalue", "default")),
    ]
}

/// Sends `payload` to `subject` once per hostile reply subject, with `headers` if any.
async fn attack(
    client: &LatticeClient,
    subject: &str,
    headers: Option<async_nats::HeaderMap>,
    payload: &[u8],
) -> Result<()> {
    let nats = client.nats();
    for reply in hostile(client) {
        let payload = Bytes::copy_from_slice(payload);
        match &headers {
            Some(headers) => {
                nats.publish_with_reply_and_headers(subject.to_owned(), reply, headers.clone(), payload).await?
            }
            None => nats.publish_with_reply(subject.to_owned(), reply, payload).await?,
        }
    }
    nats.flush().await?;
    Ok(())
}

/// Waits for one `reply.refused` event per hostile reply subject, each naming it and the request's subject, in
/// any order (control requests are handled concurrently).
async fn refusals<S>(client: &LatticeClient, events: &mut S, subject: &str) -> Result<()>
where
    S: Stream<Item = Result<Event, WireError>> + Unpin,
{
    let mut missing = hostile(client).to_vec();
    while !missing.is_empty() {
        let what = format!("reply.refused for {}", missing.join(", "));
        let event = expect_event(events, &what, CALL_TIMEOUT, |e| {
            matches!(&e.data, EventData::ReplyRefused { subject: s, reason }
                if s == subject && missing.iter().any(|r| reason.contains(r.as_str())))
        })
        .await?;
        if let EventData::ReplyRefused { reason, .. } = event.data {
            missing.retain(|r| !reason.contains(r.as_str()));
        }
    }
    Ok(())
}

/// The state bucket's and the artifact store's streams are there, the victim's link is intact and no link
/// record was planted.
async fn assert_intact(client: &LatticeClient) -> Result<()> {
    let js = jetstream::new(client.nats().clone());
    let s = client.subjects();
    for stream in [format!("KV_{}", s.state_bucket()), format!("OBJ_{}", s.artifact_bucket()), s.events_stream()] {
        js.get_stream(&stream).await.with_context(|| format!("stream {stream} is gone"))?;
    }
    let bucket = js.get_key_value(s.state_bucket()).await.context("the state bucket")?;
    let planted = bucket.get(s.link_key(&name("planted"), "keyvalue", "default")).await?;
    ensure!(planted.is_none(), "a link record was planted: {planted:?}");
    let links = client.list_links().await?;
    ensure!(!links.iter().any(|r| r.actor.as_str() == "planted"), "a link was planted: {links:?}");
    ensure!(client.artifact_digest("kv-counter-v1").await?.is_some(), "the pushed artifact is gone");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invocations_with_hostile_reply_subjects_are_refused_before_they_run() -> Result<()> {
    let t = target("reply-invoke", false).await?;
    let mut events = t.client.events().await?;
    let actor = name("counter");
    t.client.start_actor(t.host.id(), &kv_counter(&actor)).await?;
    let subject = t.client.subjects().invoke(&actor);

    attack(&t.client, &subject, None, b"k").await?;
    refusals(&t.client, &mut events, &subject).await?;
    assert_intact(&t.client).await?;
    // None of them ran: the first ordinary call is the counter's first.
    ensure!(text(&call(&t.client, &actor, "k").await?)? == "1", "a refused invocation ran");
    t.host.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_actor_at_capacity_does_not_answer_hostile_reply_subjects() -> Result<()> {
    let t = target("reply-busy", false).await?;
    let mut events = t.client.events().await?;
    let actor = name("sleepy");
    let mut request = start_request(&actor, ArtifactRef::Path(lattice_test_actors::SLEEP.to_owned()));
    request.limits.max_concurrency = Some(1);
    request.limits.timeout_ms = Some(120_000);
    t.client.start_actor(t.host.id(), &request).await?;
    // One running and a full admission queue (8), so of 20 long calls at least one is answered `unavailable`:
    // once one is, the actor is at capacity.
    let (refused, mut unavailable) = tokio::sync::mpsc::unbounded_channel();
    let sleepers: Vec<_> = (0..20)
        .map(|_| {
            let (client, actor, refused) = (t.client.clone(), actor.clone(), refused.clone());
            tokio::spawn(async move {
                if let Err(ClientError::Remote(e)) = call(&client, &actor, "60000").await
                    && e.code == ErrorCode::Unavailable
                {
                    let _ = refused.send(());
                }
            })
        })
        .collect();
    tokio::time::timeout(CALL_TIMEOUT, unavailable.recv()).await.context("the actor never reached capacity")?;

    let subject = t.client.subjects().invoke(&actor);
    attack(&t.client, &subject, None, b"0").await?;
    refusals(&t.client, &mut events, &subject).await?;
    assert_intact(&t.client).await?;
    for sleeper in sleepers {
        sleeper.abort();
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_over_nats_with_hostile_reply_subjects_is_refused() -> Result<()> {
    let t = target("reply-http", false).await?;
    let mut events = t.client.events().await?;
    let actor = name("echo");
    t.client
        .start_actor(t.host.id(), &start_request(&actor, ArtifactRef::Path(lattice_test_actors::HTTP_ECHO.to_owned())))
        .await?;
    let subject = t.client.subjects().invoke(&actor);
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(lattice_core::wire::headers::HTTP, "1");
    let request = lattice_core::http::HttpRequest {
        method: "GET".into(),
        scheme: "http".into(),
        authority: "example.com".into(),
        path: "/".into(),
        headers: Vec::new(),
        body: Default::default(),
    };
    attack(&t.client, &subject, Some(headers), &lattice_core::wire::encode(&request)).await?;
    refusals(&t.client, &mut events, &subject).await?;
    assert_intact(&t.client).await?;
    t.host.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_verbs_with_hostile_reply_subjects_are_refused() -> Result<()> {
    let t = target("reply-ctl", false).await?;
    let mut events = t.client.events().await?;
    let s = t.client.subjects().clone();
    for subject in [s.host_verb(t.host.id(), HostVerb::Inventory), s.ping()] {
        attack(&t.client, &subject, None, &lattice_core::wire::encode(&lattice_core::wire::Empty {})).await?;
        refusals(&t.client, &mut events, &subject).await?;
    }
    assert_intact(&t.client).await?;
    ensure!(t.client.ping(crate::GATHER).await?.len() == 1, "the host no longer answers ordinary requests");
    t.host.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_refusals_are_not_sent_to_hostile_reply_subjects() -> Result<()> {
    // A host that trusts an operator refuses an unsigned stop: that refusal is an answer too.
    let t = target("reply-refusal", true).await?;
    let mut events = t.client.events().await?;
    let subject = t.client.subjects().host_verb(t.host.id(), HostVerb::StopActor);
    attack(&t.client, &subject, None, b"unsigned").await?;
    refusals(&t.client, &mut events, &subject).await?;
    assert_intact(&t.client).await?;
    // Refused before the signature check: no `control.refused` for them, and the host still answers.
    ensure!(t.client.ping(crate::GATHER).await?.len() == 1, "the host no longer answers ordinary requests");
    t.host.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_providers_do_not_answer_hostile_reply_subjects() -> Result<()> {
    let t = target("reply-provider", false).await?;
    t.client.start_provider(t.host.id(), "shared", "inmemory", BTreeMap::new()).await?;
    let subject = t.client.subjects().provider(&name("shared"), "keyvalue");
    attack(&t.client, &subject, None, b"not a request").await?;
    // The provider serves calls in order of arrival: once an ordinary call is answered, the hostile ones were
    // taken (and, without the check, their answers sent before it).
    let answer = t.client.nats().request(subject.clone(), Bytes::from_static(b"not a request")).await?;
    ensure!(!answer.payload.is_empty(), "the provider does not answer ordinary calls");
    t.client.nats().flush().await?;
    assert_intact(&t.client).await?;
    // And it still serves actors linked to it.
    let actor = name("counter");
    let mut request = kv_counter(&actor);
    request.links = vec!["keyvalue:default=shared".into()];
    t.client.start_actor(t.host.id(), &request).await?;
    ensure!(text(&call(&t.client, &actor, "k").await?)? == "1", "the provider misbehaves");
    t.host.stop().await;
    Ok(())
}
