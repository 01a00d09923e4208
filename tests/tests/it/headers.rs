//! Headers a guest chooses (docs/security.md §10): metadata with control characters, an empty name or a
//! `Nats-…` name is refused as an error value before any provider sees it, so nothing reaches a subscriber; a
//! reply whose content type holds CR/LF is an error reply, not a panic and a caller's timeout.

use anyhow::{Result, ensure};
use futures::StreamExt;
use lattice_core::wire::{ArtifactRef, ErrorCode, LimitsSpec, StartActor};
use lattice_host::lattice::ClientError;

use crate::{CALL_TIMEOUT, TestLattice, call, name, text};

/// (case of the probe's `send-bad`, the error kind it must get).
const CASES: [(&str, &str); 8] = [
    ("nul", "other:"),
    ("crlf", "other:"),
    ("control-name", "other:"),
    ("empty-name", "other:"),
    ("content-type", "other:"),
    ("nats-msg-id", "permission-denied:"),
    ("nats-expected-stream", "permission-denied:"),
    ("nats-rollup", "permission-denied:"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_guest_metadata_is_refused_for_every_provider_and_reaches_nobody() -> Result<()> {
    let lattice = TestLattice::start("headers").await?;
    let host = lattice.host("host-1", &[]).await?;
    let client = lattice.client().await?;
    let mut seen = client.nats().subscribe("hdr.>").await?;
    client.nats().flush().await?;
    for bus in ["nats", "inmemory"] {
        let actor = name(&format!("probe-{bus}"));
        let request = StartActor {
            name: actor.clone(),
            artifact: ArtifactRef::Path(lattice_test_actors::MSG_PROBE.to_owned()),
            limits: LimitsSpec::default(),
            links: vec![format!("messaging:bus={bus}")],
            owner: None,
            digest: None,
        };
        client.start_actor(host.id(), &request).await?;
        for verb in ["send-bad", "request-bad"] {
            for (case, kind) in CASES {
                let answer = text(&call(&client, &actor, &format!("{verb} {case} hdr.{case}")).await?)?;
                ensure!(answer.starts_with(kind), "{bus}: `{verb} {case}` got `{answer}`, expected {kind}");
            }
        }
        // A good send still goes out, and is the first message any subscriber sees.
        ensure!(text(&call(&client, &actor, &format!("send hdr.ok.{bus}")).await?)? == "ok", "the good send failed");
    }
    let first = tokio::time::timeout(CALL_TIMEOUT, seen.next()).await?;
    let subject = first.map(|m| m.subject.to_string()).unwrap_or_default();
    ensure!(subject == "hdr.ok.nats", "a refused message reached a subscriber first: {subject}");
    host.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_content_type_with_crlf_is_an_error_reply() -> Result<()> {
    let lattice = TestLattice::start("headers-reply").await?;
    let host = lattice.host("host-1", &[]).await?;
    let client = lattice.client().await?;
    let actor = name("probe");
    let request = StartActor {
        name: actor.clone(),
        artifact: ArtifactRef::Path(lattice_test_actors::MSG_PROBE.to_owned()),
        limits: LimitsSpec::default(),
        links: vec!["messaging:bus=nats".to_owned()],
        owner: None,
        digest: None,
    };
    client.start_actor(host.id(), &request).await?;
    match call(&client, &actor, "reply-bad-content-type").await {
        Err(ClientError::Remote(error)) => {
            ensure!(error.code == ErrorCode::InvocationFailed, "{error:?}");
            ensure!(error.message.contains("content type"), "{error}");
        }
        other => anyhow::bail!("expected an error reply, got {other:?}"),
    }
    // The host's serving task is alive: the next call is answered.
    ensure!(text(&call(&client, &actor, "send hdr.after").await?)? == "ok", "the actor no longer answers");
    host.stop().await;
    Ok(())
}
