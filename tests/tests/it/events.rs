//! Hosts publish events: host started, actor started/failed/stopped, heartbeats.

use std::time::Duration;

use anyhow::{Result, bail};
use lattice_core::wire::{ArtifactRef, ErrorCode, EventData};
use lattice_host::lattice::ClientError;

use crate::{HEARTBEAT, TestLattice, expect_event, kv_counter, name, start_request};

/// Events are published as things happen; this only bounds a wait on a loaded machine.
const EVENT_WAIT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_failures_stops_and_heartbeats_are_published() -> Result<()> {
    let lattice = TestLattice::start("events").await?;
    let control = lattice.client().await?;
    let mut events = control.events().await?;

    let host = lattice.host("host-1", &[("zone", "a")]).await?;
    let id = host.id().clone();
    let event =
        expect_event(&mut events, "host.started", EVENT_WAIT, |e| matches!(e.data, EventData::HostStarted(_))).await?;
    assert_eq!(event.host, id);
    let EventData::HostStarted(info) = event.data else { unreachable!() };
    assert_eq!(info.labels.get("zone").map(String::as_str), Some("a"));

    // A start publishes actor.started with what runs.
    let actor = name("kv-counter");
    let started = control.start_actor(&id, &kv_counter(&actor)).await?;
    let event =
        expect_event(&mut events, "actor.started", EVENT_WAIT, |e| matches!(e.data, EventData::ActorStarted(_)))
            .await?;
    assert_eq!(event.host, id);
    assert_eq!(event.data, EventData::ActorStarted(started.actor.clone()));

    // Junk bytes: the reply says why, and actor.failed carries the same error.
    let junk = tempfile::NamedTempFile::new_in(crate::guest_dir())?;
    std::fs::write(junk.path(), b"this is not a WebAssembly component")?;
    let broken = name("broken");
    let path = junk.path().to_string_lossy().into_owned();
    let error = match control.start_actor(&id, &start_request(&broken, ArtifactRef::Path(path))).await {
        Err(ClientError::Remote(error)) => error,
        other => bail!("starting junk: expected an error reply, got {other:?}"),
    };
    assert_eq!(error.code, ErrorCode::CompileFailed, "{error}");
    let event =
        expect_event(&mut events, "actor.failed", EVENT_WAIT, |e| matches!(e.data, EventData::ActorFailed { .. }))
            .await?;
    assert_eq!(event.host, id);
    assert_eq!(event.data, EventData::ActorFailed { name: broken, error });

    // Heartbeats arrive every interval and describe the host as it is now.
    let beat = |e: &lattice_core::wire::Event| e.host == id && matches!(e.data, EventData::HostHeartbeat(_));
    let first = expect_event(&mut events, "host.heartbeat", 4 * HEARTBEAT + EVENT_WAIT, beat).await?;
    let second = expect_event(&mut events, "host.heartbeat", 4 * HEARTBEAT + EVENT_WAIT, beat).await?;
    assert!(second.time_ms > first.time_ms);
    let EventData::HostHeartbeat(info) = second.data else { unreachable!() };
    assert_eq!(info.heartbeat_ms, 300);
    assert_eq!(info.actors, [started.actor]);

    // Stopping the actor publishes actor.stopped.
    control.stop_actor(&id, &actor).await?;
    let event =
        expect_event(&mut events, "actor.stopped", EVENT_WAIT, |e| matches!(e.data, EventData::ActorStopped { .. }))
            .await?;
    assert_eq!(event.data, EventData::ActorStopped { name: actor });
    Ok(())
}
