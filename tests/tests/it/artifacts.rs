//! Components pushed to the lattice's artifact store: started by name anywhere, refused when corrupt.

use std::collections::HashMap;

use anyhow::{Context, Result, bail};
use async_nats::jetstream::{self, object_store::ObjectMetadata};
use bytes::Bytes;
use lattice_core::wire::{ArtifactRef, ErrorCode};
use lattice_host::lattice::{ClientError, DIGEST_KEY};
use sha2::{Digest, Sha256};

use crate::{GATHER, TestLattice, call, name, start_request, text};

fn kv_counter_bytes() -> Result<Vec<u8>> {
    std::fs::read(lattice_test_actors::KV_COUNTER).context("reading the kv-counter component")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pushed_component_starts_by_name_on_a_host_that_never_saw_the_file() -> Result<()> {
    let lattice = TestLattice::start("pushed").await?;
    let host = lattice.host("host-1", &[]).await?;
    let control = lattice.client().await?;

    let bytes = kv_counter_bytes()?;
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let progress = sent.clone();
    let pushed = control
        .push("kv-counter-v1", Bytes::from(bytes.clone()), move |n| {
            progress.store(n, std::sync::atomic::Ordering::Relaxed);
        })
        .await?;
    let digest = hex::encode(Sha256::digest(&bytes));
    assert_eq!(pushed.digest, digest);
    assert_eq!(pushed.size, bytes.len() as u64);
    assert_eq!(sent.load(std::sync::atomic::Ordering::Relaxed), bytes.len() as u64);

    // The host gets the component from the lattice, not from a path.
    let actor = name("counter");
    let started =
        control.start_actor(host.id(), &start_request(&actor, ArtifactRef::Lattice("kv-counter-v1".into()))).await?;
    assert_eq!(started.actor.digest, digest);
    let reply = call(&control, &actor, "pushed").await?;
    assert_eq!(text(&reply)?, "1");
    assert_eq!(reply.host.as_deref(), Some("host-1"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_and_missing_artifacts_are_refused_and_the_host_keeps_serving() -> Result<()> {
    let lattice = TestLattice::start("corrupt").await?;
    let host = lattice.host("host-1", &[]).await?;
    let control = lattice.client().await?;
    let bytes = kv_counter_bytes()?;
    // A good push creates the store (and is used below to show the host still works).
    control.push("good", Bytes::from(bytes.clone()), |_| {}).await?;

    // Store an object whose recorded digest is that of different bytes, bypassing `push`.
    let store = jetstream::new(control.nats().clone()).get_object_store(control.subjects().artifact_bucket()).await?;
    let wrong = hex::encode(Sha256::digest(b"some other component"));
    let meta = ObjectMetadata {
        name: "tampered".into(),
        metadata: HashMap::from([(DIGEST_KEY.to_owned(), wrong.clone())]),
        ..ObjectMetadata::default()
    };
    store.put(meta, &mut bytes.as_slice()).await?;

    let actor = name("counter");
    let tampered = start_request(&actor, ArtifactRef::Lattice("tampered".into()));
    match control.start_actor(host.id(), &tampered).await {
        Err(ClientError::Remote(error)) => {
            assert_eq!(error.code, ErrorCode::DigestMismatch, "{error}");
            assert!(error.message.contains("corrupt"), "{error}");
            assert!(error.message.contains(&wrong), "names the expected digest: {error}");
        }
        other => bail!("starting a tampered artifact: expected a digest mismatch, got {other:?}"),
    }

    let missing = start_request(&actor, ArtifactRef::Lattice("no-such-artifact".into()));
    match control.start_actor(host.id(), &missing).await {
        Err(ClientError::Remote(error)) => {
            assert_eq!(error.code, ErrorCode::NotFound, "{error}");
            assert!(error.message.contains("no-such-artifact"), "{error}");
        }
        other => bail!("starting a missing artifact: expected NotFound, got {other:?}"),
    }

    // Nothing was started, and the host keeps serving.
    let pinged = control.ping(GATHER).await?;
    assert_eq!(pinged.len(), 1);
    assert!(pinged[0].actors.is_empty(), "{pinged:#?}");
    control.start_actor(host.id(), &start_request(&actor, ArtifactRef::Lattice("good".into()))).await?;
    assert_eq!(text(&call(&control, &actor, "after").await?)?, "1");
    Ok(())
}
