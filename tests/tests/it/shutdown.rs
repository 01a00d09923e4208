//! Graceful stop: in-flight calls and messages finish, `host.stopped` is announced, the host leaves.

use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use bytes::Bytes;
use futures::{FutureExt, StreamExt};
use lattice_core::wire::{ArtifactRef, EventData};
use lattice_host::lattice::ClientError;
use lattice_test_harness::wait_for;

use crate::{GATHER, TestLattice, call, expect_event, name, start_request, text};

/// The sleeping actor's concurrency in this test.
const CONCURRENCY: u32 = 16;
/// Calls in flight on the host when it is told to stop: every permit taken, and the admission queue full
/// (`max(8, concurrency / 4)`; more would be refused with `unavailable`).
const QUEUED_CALLS: usize = CONCURRENCY as usize + 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_finishes_in_flight_calls_then_announces_and_leaves() -> Result<()> {
    let lattice = TestLattice::start("graceful").await?;
    let host = lattice.host("host-1", &[]).await?;
    let id = host.id().clone();
    let control = lattice.client().await?;
    let actor = name("sleep");
    let mut request = start_request(&actor, ArtifactRef::Path(lattice_test_actors::SLEEP.to_owned()));
    // Every call sleeps, so all of them are still in flight (running or queued) when the host is told to stop.
    request.limits.max_concurrency = Some(CONCURRENCY);
    control.start_actor(&id, &request).await?;
    let mut events = control.events().await?;

    // A plain (non-queue) subscriber on the invoke subject gets a copy of every call the server routes. Once it
    // has seen them all, the server has also routed them all to the host, ahead of the stop request below
    // (the server keeps the order of what it sends one connection).
    let mut spy = control.nats().subscribe(control.subjects().invoke(&actor)).await?;
    control.nats().flush().await?;

    let caller = lattice.client().await?;
    let calls: Vec<_> = (0..QUEUED_CALLS)
        .map(|_| {
            let caller = caller.clone();
            let actor = actor.clone();
            tokio::spawn(async move { call(&caller, &actor, "300").await })
        })
        .collect();
    let mut seen = 0;
    while seen < QUEUED_CALLS {
        tokio::time::timeout(Duration::from_secs(10), spy.next())
            .await
            .map_err(|_| anyhow!("only {seen} of {QUEUED_CALLS} calls reached the server"))?
            .ok_or_else(|| anyhow!("spy subscription ended"))?;
        seen += 1;
    }
    drop(spy);

    let stop_sent = Instant::now();
    let stopping = control.stop_host(&id, Some(Duration::from_secs(30))).await?;
    assert_eq!(stopping.host, id);
    assert!(stopping.in_flight > 0, "the stop should find calls in flight: {stopping:?}");

    let stopped = expect_event(&mut events, "host.stopped", Duration::from_secs(30), |e| {
        e.host == id && matches!(e.data, EventData::HostStopped { .. })
    })
    .await?;
    let drained_in = stop_sent.elapsed();

    // Every call that was in flight completed successfully.
    for call in calls {
        let reply = call.await??;
        assert_eq!(reply.host.as_deref(), Some("host-1"));
        assert_eq!(text(&reply)?, "slept");
    }
    eprintln!(
        "stop found {} of {QUEUED_CALLS} calls in flight; host.stopped after {drained_in:?} ({stopped:?})",
        stopping.in_flight
    );

    // The host is gone: the stop completes, no ping answer, no record, no responder for its actor.
    tokio::time::timeout(Duration::from_secs(10), host.wait()).await?;
    wait_for("the stopped host to stop answering pings", Duration::from_secs(5), || async {
        control.ping(GATHER).await.ok().filter(Vec::is_empty)
    })
    .await?;
    assert!(control.hosts().await?.is_empty());
    match call(&control, &actor, "late").await {
        Err(ClientError::NoResponders(_)) => {}
        other => bail!("a call after the stop: expected NoResponders, got {other:?}"),
    }
    Ok(())
}

/// Regression: a graceful stop stopped only the invocations that came through the lattice; messages from an
/// actor's messaging subscriptions kept being read, and one being handled when the host stopped was cut off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_finishes_invocations_from_subscriptions_and_stops_reading_them() -> Result<()> {
    let lattice = TestLattice::start("drain-subscriptions").await?;
    let host = lattice.host("host-1", &[]).await?;
    let control = lattice.client().await?;
    let actor = name("kv-probe");
    let mut request = start_request(&actor, ArtifactRef::Path(lattice_test_actors::KV_PROBE.to_owned()));
    request.links = ["keyvalue:default=inmemory", "messaging:rpc=nats", "messaging:in=nats,subscribe=drain.in"]
        .map(str::to_owned)
        .to_vec();
    control.start_actor(host.id(), &request).await?;

    // The probe's handler makes a request to `drain.target`, which the test receives and never answers: the
    // invocation is in flight for the request's 1.5 s timeout, then replies to the message it handles.
    let nats = control.nats();
    let mut target = nats.subscribe("drain.target").await?;
    let inbox = nats.new_inbox();
    let mut replies = nats.subscribe(inbox.clone()).await?;
    nats.flush().await?;
    nats.publish_with_reply("drain.in", inbox, Bytes::from_static(b"request drain.target x 1500")).await?;
    tokio::time::timeout(Duration::from_secs(10), target.next())
        .await
        .map_err(|_| anyhow!("the probe's request never arrived"))?
        .ok_or_else(|| anyhow!("subscription ended"))?;

    host.stop().await;
    // Everything the host published before it stopped has reached this connection once a round trip is done.
    nats.flush().await?;
    let reply = replies
        .next()
        .now_or_never()
        .flatten()
        .ok_or_else(|| anyhow!("the stop returned before the invocation from the subscription finished"))?;
    let reply = String::from_utf8_lossy(&reply.payload).into_owned();
    assert!(reply.contains("imeout"), "the probe's request should have timed out: {reply}");

    // Nothing reads the subscription any more.
    match nats.request("drain.in", Bytes::from_static(b"request drain.target y 10")).await {
        Err(error) if error.kind() == async_nats::RequestErrorKind::NoResponders => {}
        other => bail!("a message after the stop: expected no responders, got {other:?}"),
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_an_actor_on_one_of_two_hosts_under_load_drops_no_call() -> Result<()> {
    const CALLERS: usize = 32;
    let lattice = TestLattice::start("leave-group").await?;
    let a = lattice.host("host-a", &[]).await?;
    let b = lattice.host("host-b", &[]).await?;
    let client = lattice.client().await?;
    let actor = name("kv-counter");
    for host in [&a, &b] {
        let mut request = crate::kv_counter(&actor);
        request.limits.max_concurrency = Some(64);
        client.start_actor(host.id(), &request).await?;
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let callers: Vec<_> = (0..CALLERS)
        .map(|_| {
            let (client, actor, stop) = (client.clone(), actor.clone(), stop.clone());
            tokio::spawn(async move {
                let (mut ok, mut failed) = (0u64, Vec::new());
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    match call(&client, &actor, "visits").await {
                        Ok(_) => ok += 1,
                        Err(error) => failed.push(error.to_string()),
                    }
                }
                (ok, failed)
            })
        })
        .collect();
    // Calls flow to both hosts; then host A leaves the actor's queue group mid-stream.
    wait_for("calls answered by host A", Duration::from_secs(10), || async {
        let reply = call(&client, &actor, "visits").await.ok()?;
        (reply.host.as_deref() == Some("host-a")).then_some(())
    })
    .await?;
    client.stop_actor(a.id(), &actor).await?;
    wait_for("calls answered by host B only", Duration::from_secs(10), || async {
        let reply = call(&client, &actor, "visits").await.ok()?;
        (reply.host.as_deref() == Some("host-b")).then_some(())
    })
    .await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut ok, mut failed) = (0, Vec::new());
    for caller in callers {
        let (n, errors) = caller.await?;
        ok += n;
        failed.extend(errors);
    }
    if !failed.is_empty() {
        bail!("{} of {} calls failed across the stop, e.g. {}", failed.len(), ok + failed.len() as u64, failed[0]);
    }
    a.stop().await;
    b.stop().await;
    Ok(())
}
