//! What a guest can make the host hold outside its linear memory is bounded per invocation (messages, their
//! bytes, request options, clients, logs), and the reserved subjects are refused whatever the provider: here
//! the in-memory one (the NATS scenario is in the lattice tests, `tests/tests/it/isolation.rs`).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;

use lattice_host::{
    Actor, ActorConfig, ActorLimits, IncomingMessage, InvokeError, LinkError, LoadError, MAX_LOG_BYTES,
    MAX_LOG_CONTEXT_BYTES, MAX_LOG_LINE_BYTES, MAX_METADATA_ENTRIES, MAX_RESOURCES, Runtime, RuntimeBuilder,
    message_bytes_limit,
};
use lattice_messaging_inmemory::InMemoryMessaging;
use lattice_provider_sdk::{Messaging, OutboundMessage};
use lattice_test_actors::MSG_PROBE;

use crate::{allow_unsigned, call, component, load};

fn bus() -> (Runtime, InMemoryMessaging) {
    let messaging = InMemoryMessaging::new();
    let runtime = RuntimeBuilder::new()
        .policy(allow_unsigned())
        .messaging_provider("inmemory", Arc::new(messaging.clone()))
        .build()
        .expect("runtime");
    (runtime, messaging)
}

fn links(specs: &[&str]) -> ActorConfig {
    ActorConfig { links: specs.iter().map(|s| s.parse().expect("link")).collect(), ..ActorConfig::default() }
}

/// The probe with room to run into the host's bounds before its CPU deadline, even on a loaded machine.
async fn probe(runtime: &Runtime) -> Actor {
    let limits =
        ActorLimits { cpu_time: Duration::from_secs(20), timeout: Duration::from_secs(60), ..ActorLimits::default() };
    load(runtime, MSG_PROBE, ActorConfig { limits, ..links(&["messaging:bus=inmemory"]) }).await
}

/// The invocation must fail with `HostResources` naming `bound` and `limit`, and the actor must serve the next
/// call normally.
async fn assert_bounded(actor: &Actor, command: &str, bound: &str, limit: usize) {
    let outcome = actor.invoke(IncomingMessage::new(command)).await;
    match outcome.result {
        Err(error @ InvokeError::HostResources { bound: got, limit: got_limit }) => {
            assert_eq!((got, got_limit), (bound, limit), "{command}: {error}");
            let message = error.to_string();
            assert!(message.contains(bound) && message.contains(&limit.to_string()), "{message}");
        }
        other => panic!("{command}: expected a host resource limit, got {other:?}"),
    }
    assert_eq!(call(actor, "send after.flood").await, "ok", "the actor serves the next call after `{command}`");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_floods_stop_at_the_per_invocation_bounds() {
    let (runtime, _bus) = bus();
    let actor = probe(&runtime).await;
    let bytes = message_bytes_limit(actor.limits().max_reply_bytes);
    // 64 KiB messages: the byte bound comes first (1024 of them would be 64 MiB).
    assert_bounded(&actor, "flood-messages", "bytes held for the guest", bytes).await;
    assert_bounded(&actor, "flood-metadata", "metadata entries in one message", MAX_METADATA_ENTRIES).await;
    assert_bounded(&actor, "flood-data", "bytes held for the guest", bytes).await;
    assert_bounded(&actor, "flood-options", "host resources alive", MAX_RESOURCES).await;
}

#[tokio::test]
async fn client_floods_get_an_error_value() {
    let (runtime, _bus) = bus();
    let actor = probe(&runtime).await;
    let answer = call(&actor, "flood-clients").await;
    // The invocation's own message holds one resource.
    let expected = format!("refused after {}: other: host resource limit exceeded", MAX_RESOURCES - 1);
    assert!(answer.starts_with(&expected), "{answer}");
}

#[tokio::test]
async fn log_floods_are_cut_and_capped() {
    let (runtime, _bus) = bus();
    let actor = probe(&runtime).await;
    // 500 lines of 64 KiB, each with a 64 KiB context.
    let outcome = actor.invoke(IncomingMessage::new("flood-log 500 65536")).await;
    let reply = outcome.result.expect("logging never fails an invocation").expect("a reply");
    assert_eq!(reply.data, b"logged");
    let kept: usize = outcome.logs.iter().map(|l| l.context.len() + l.message.len()).sum();
    assert!(kept <= MAX_LOG_BYTES, "{kept} bytes of logs kept");
    assert_eq!(outcome.logs.len() + outcome.logs_dropped, 500);
    assert!(outcome.logs_dropped > 0, "the byte cap did not apply");
    let first = &outcome.logs[0];
    assert!(first.context.len() <= MAX_LOG_CONTEXT_BYTES + 32, "context of {} bytes", first.context.len());
    assert!(first.message.len() <= MAX_LOG_LINE_BYTES + 32, "message of {} bytes", first.message.len());
    assert!(first.message.ends_with(&format!("…[{} bytes cut]", 65536 - MAX_LOG_LINE_BYTES)), "no marker");
    assert!(first.context.ends_with(&format!("…[{} bytes cut]", 65536 - MAX_LOG_CONTEXT_BYTES)), "no marker");
}

#[tokio::test]
async fn reserved_subjects_are_refused_with_the_in_memory_provider_too() {
    let (runtime, bus) = bus();
    let actor = probe(&runtime).await;
    for subject in ["lattice.default.ctl.ping", "$JS.API.STREAM.NAMES", "$KV.lattice_default.links.x", "_INBOX.x"] {
        let answer = call(&actor, &format!("send {subject}")).await;
        assert!(answer.starts_with("permission-denied:") && answer.contains(subject), "send {subject}: {answer}");
        let answer = call(&actor, &format!("request {subject}")).await;
        assert!(answer.starts_with("permission-denied:") && answer.contains(subject), "request {subject}: {answer}");
    }
    assert_eq!(
        call(&actor, "reply-forged lattice.default.ctl.ping").await.split(':').next(),
        Some("permission-denied")
    );

    // Replies to inboxes (the in-memory provider's requests use `_INBOX.inmemory.<n>`) still work.
    let replier = load(&runtime, MSG_PROBE, links(&["messaging:bus=inmemory,subscribe=probe.in"])).await;
    let mut out = bus.subscribe(vec!["probe.out".into()], None).await.expect("subscribe");
    let replies = bus.request("probe.in", OutboundMessage::new(""), Duration::from_secs(5), 1).await.expect("a reply");
    assert_eq!(replies.len(), 1);
    assert_eq!(out.next().await.expect("the reply's outcome").data, b"ok");
    drop(replier);

    // Subscriptions and allow-lists overlapping a reserved namespace are refused when links resolve.
    for link in [
        "messaging:bus=inmemory,subscribe=_INBOX.>",
        "messaging:bus=inmemory,subscribe=orders.new|>",
        "messaging:bus=inmemory,subscribe=*.*.ctl.>",
        "messaging:bus=inmemory,publish=$JS.API.>",
        "messaging:bus=inmemory,publish=orders.>|lattice.*",
    ] {
        let error = runtime.load("refused", component(MSG_PROBE), links(&[link])).await.expect_err(link);
        match &error {
            LoadError::Links(LinkError::Config { reason, .. }) => {
                assert!(reason.contains("reserved namespace"), "{link}: {reason}")
            }
            other => panic!("{link}: expected a link config error, got {other:?}"),
        }
    }
}
