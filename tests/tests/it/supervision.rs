//! Provider supervision: failed health checks restart an instance with backoff, up to an intensity limit,
//! then mark it failed; a backend that comes back is reported recovered and serves calls again.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Result;
use futures::StreamExt;
use lattice_core::wire::EventData;
use lattice_host::lattice::{self, RunningHost, Supervision};
use lattice_test_harness::{RedisServer, wait_for};

use crate::provider_isolation::loopback;
use crate::{TestLattice, call, expect_event, kv_counter, name, runtime, text};

fn quick_supervision() -> Supervision {
    Supervision {
        interval: Duration::from_millis(100),
        failures: 2,
        backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(200),
        intensity: 2,
        window: Duration::from_secs(60),
    }
}

async fn host(lattice: &TestLattice) -> Result<RunningHost> {
    let mut config = lattice.host_config("h1", &[]);
    config.provider_allow = loopback();
    config.supervision = quick_supervision();
    Ok(lattice::start(config, runtime()).await?)
}

fn redis_config(redis: &RedisServer) -> BTreeMap<String, String> {
    BTreeMap::from([("url".to_owned(), redis.url()), ("timeout".to_owned(), "200ms".to_owned())])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_failing_its_health_checks_is_restarted_then_marked_failed() -> Result<()> {
    let mut redis = tokio::task::spawn_blocking(RedisServer::start).await??;
    let lattice = TestLattice::start("supervise-fail").await?;
    let host = host(&lattice).await?;
    let client = lattice.client().await?;
    let mut events = client.events().await?;
    client.start_provider(host.id(), "cache", "redis", redis_config(&redis)).await?;
    redis.kill()?;

    for expected in 1..=2 {
        let event = expect_event(
            &mut events,
            "provider.restarting",
            Duration::from_secs(10),
            |e| matches!(&e.data, EventData::ProviderRestarting { name, .. } if name == "cache"),
        )
        .await?;
        let EventData::ProviderRestarting { attempt, reason, .. } = event.data else { unreachable!() };
        assert_eq!(attempt, expected);
        assert!(reason.contains("redis"), "{reason}");
    }
    let failed = expect_event(
        &mut events,
        "provider.failed",
        Duration::from_secs(10),
        |e| matches!(&e.data, EventData::ProviderFailed { name, .. } if name == "cache"),
    )
    .await?;
    assert!(matches!(failed.data, EventData::ProviderFailed { .. }));
    host.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_whose_backend_returns_recovers_and_serves_again() -> Result<()> {
    let mut redis = tokio::task::spawn_blocking(RedisServer::start).await??;
    let lattice = TestLattice::start("supervise-recover").await?;
    let mut config = lattice.host_config("h1", &[]);
    config.provider_allow = loopback();
    config.supervision = Supervision { intensity: 1000, ..quick_supervision() };
    let host = lattice::start(config, runtime()).await?;
    let client = lattice.client().await?;
    let mut events = client.events().await?.boxed();
    client.start_provider(host.id(), "cache", "redis", redis_config(&redis)).await?;
    let actor = name("kv-counter");
    let mut request = kv_counter(&actor);
    request.links = vec!["keyvalue:default=cache".to_owned()];
    client.start_actor(host.id(), &request).await?;
    assert_eq!(text(&call(&client, &actor, "n").await?)?, "1");

    redis.kill()?;
    expect_event(&mut events, "provider.restarting", Duration::from_secs(10), |e| {
        matches!(e.data, EventData::ProviderRestarting { .. })
    })
    .await?;
    redis.restart()?;
    expect_event(
        &mut events,
        "provider.recovered",
        Duration::from_secs(10),
        |e| matches!(&e.data, EventData::ProviderRecovered { name } if name == "cache"),
    )
    .await?;
    // Redis came back empty (no persistence in this test): the counter starts over, through the new instance.
    wait_for("calls to succeed again", Duration::from_secs(10), || async {
        call(&client, &actor, "n").await.ok().and_then(|r| text(&r).ok())
    })
    .await?;
    host.stop().await;
    Ok(())
}
