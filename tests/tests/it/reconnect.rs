//! The NATS server restarts under a running host: the host reconnects and serves again, and applies link
//! changes again, without a restart.

use std::time::Duration;

use anyhow::{Result, bail};
use bytes::Bytes;
use lattice_core::wire::EventData;
use lattice_test_harness::wait_for;

use crate::{TestLattice, call, expect_event, kv_counter, name, text};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_serves_again_after_the_nats_server_restarts() -> Result<()> {
    let mut lattice = TestLattice::start("restart").await?;
    let host = lattice.host("host-1", &[]).await?;
    let control = lattice.client().await?;
    let actor = name("kv-counter");
    control.start_actor(host.id(), &kv_counter(&actor)).await?;
    assert_eq!(text(&call(&control, &actor, "n").await?)?, "1");
    let started_at = control.inventory(host.id()).await?.started_at_ms;

    // The server goes away: calls fail.
    tokio::task::block_in_place(|| lattice.nats.stop())?;
    let short = Duration::from_millis(300);
    if let Ok(reply) = control.call(&actor, None, Bytes::from_static(b"n"), short, None).await {
        bail!("a call succeeded with the server down: {reply:?}");
    }

    // Back on the same port, with the same JetStream store.
    tokio::task::block_in_place(|| lattice.nats.restart())?;
    let restarted = std::time::Instant::now();
    let first = wait_for("a call to succeed after the restart", Duration::from_secs(20), || async {
        control.call(&actor, None, Bytes::from_static(b"n"), Duration::from_millis(500), None).await.ok()
    })
    .await?;
    let reconnected_in = restarted.elapsed();

    // A run of calls succeeds, and the counter continues: the same host and actor, not restarted.
    let mut last = text(&first)?.parse::<u64>()?;
    assert!(last >= 2, "the counter restarted: {last}");
    for _ in 0..50 {
        let value = text(&call(&control, &actor, "n").await?)?.parse::<u64>()?;
        assert!(value > last, "{value} after {last}");
        last = value;
    }
    let inventory = control.inventory(host.id()).await?;
    assert_eq!(inventory.started_at_ms, started_at, "the host was restarted");
    assert_eq!(inventory.actors.len(), 1);

    // Link changes reach the host again: its watch of the state bucket was restarted after the reconnect.
    let moved = "keyvalue:default=inmemory,bucket=after-restart".parse()?;
    control.put_link(&actor, &moved).await?;
    wait_for("a link change made after the restart to apply", Duration::from_secs(20), || async {
        let reply = call(&control, &actor, "n").await.ok()?;
        (text(&reply).ok()? == "1").then_some(())
    })
    .await?;

    // Heartbeats resume, as events and in the host record.
    let mut events = control.events().await?;
    expect_event(&mut events, "host.heartbeat", Duration::from_secs(5), |e| {
        e.host == *host.id() && matches!(e.data, EventData::HostHeartbeat(_))
    })
    .await?;
    wait_for("the host record to be fresh", Duration::from_secs(5), || async {
        let hosts = control.hosts().await.ok()?;
        (hosts.len() == 1 && !hosts[0].lost).then_some(())
    })
    .await?;
    eprintln!("calls answered again {reconnected_in:?} after the server restarted");
    Ok(())
}
