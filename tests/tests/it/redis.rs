//! Redis behind a link: a live swap from in-memory to Redis under load, and a Redis outage under load.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use lattice_core::link::LinkSpec;
use lattice_host::lattice::{ClientError, LatticeClient};
use lattice_test_harness::{RedisServer, wait_for};

use crate::provider_isolation::{host_allowing, loopback};
use crate::{TestLattice, call, kv_counter, name, text};

async fn raw_get(url: &str, key: &str) -> Result<Option<String>> {
    let client = redis::Client::open(url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    Ok(redis::cmd("GET").arg(key).query_async(&mut conn).await?)
}

/// Calls `actor` with `key` until `stop`, one at a time; counts successes and collects failures.
fn drive(
    client: LatticeClient,
    actor: lattice_core::subject::Name,
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
) -> tokio::task::JoinHandle<Vec<(Duration, String)>> {
    tokio::spawn(async move {
        let mut failures = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let started = Instant::now();
            match call(&client, &actor, "visits").await {
                Ok(_) => {
                    ok.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => failures.push((started.elapsed(), e.to_string())),
            }
        }
        failures
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_swap_from_inmemory_to_redis_fails_no_call() -> Result<()> {
    let redis = tokio::task::spawn_blocking(RedisServer::start).await??;
    let lattice = TestLattice::start("live-swap").await?;
    let host = host_allowing(&lattice, "h1", loopback()).await?;
    let client = lattice.client().await?;
    let actor = name("kv-counter");
    client.start_actor(host.id(), &kv_counter(&actor)).await?;
    client.start_provider(host.id(), "redis", "redis", BTreeMap::from([("url".to_owned(), redis.url())])).await?;

    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let drivers: Vec<_> = (0..4).map(|_| drive(client.clone(), actor.clone(), stop.clone(), ok.clone())).collect();
    wait_for("calls on the in-memory link", Duration::from_secs(10), || async {
        (ok.load(Ordering::Relaxed) >= 50).then_some(())
    })
    .await?;

    let link: LinkSpec = "keyvalue:default=redis".parse()?;
    client.put_link(&actor, &link).await?;
    // The swap has happened once a reply restarts from 1 (Redis starts empty) ...
    wait_for("the first call on Redis", Duration::from_secs(10), || async {
        raw_get(&redis.url(), "lattice:kv-counter/default:visits").await.ok().flatten()
    })
    .await?;
    // ... and keeps going there for a while.
    let after_swap = ok.load(Ordering::Relaxed);
    wait_for("calls on the Redis link", Duration::from_secs(10), || async {
        (ok.load(Ordering::Relaxed) >= after_swap + 50).then_some(())
    })
    .await?;
    stop.store(true, Ordering::Relaxed);
    for driver in drivers {
        let failures = driver.await?;
        assert!(failures.is_empty(), "calls failed during the swap: {failures:?}");
    }
    // The counter lives in Redis now, readable without lattice; the next call continues from it.
    let stored: u64 = raw_get(&redis.url(), "lattice:kv-counter/default:visits").await?.unwrap_or_default().parse()?;
    assert!(stored >= 50, "Redis holds {stored}");
    assert_eq!(text(&call(&client, &actor, "visits").await?)?, (stored + 1).to_string());
    host.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_fails_calls_promptly_and_loses_no_acknowledged_increment() -> Result<()> {
    // Persistence on, fsync on every write: what a restart brings back is what was acknowledged.
    let mut redis = tokio::task::spawn_blocking(|| {
        RedisServer::builder().arg("--appendonly").arg("yes").arg("--appendfsync").arg("always").start()
    })
    .await??;
    let lattice = TestLattice::start("redis-outage").await?;
    let host = host_allowing(&lattice, "h1", loopback()).await?;
    let client = lattice.client().await?;
    let timeout = Duration::from_millis(500);
    let config = BTreeMap::from([("url".to_owned(), redis.url()), ("timeout".to_owned(), "500ms".to_owned())]);
    client.start_provider(host.id(), "redis", "redis", config).await?;
    let actor = name("kv-counter");
    let mut request = kv_counter(&actor);
    request.links = vec!["keyvalue:default=redis".to_owned()];
    client.start_actor(host.id(), &request).await?;

    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let drivers: Vec<_> = (0..4).map(|_| drive(client.clone(), actor.clone(), stop.clone(), ok.clone())).collect();
    wait_for("calls before the outage", Duration::from_secs(10), || async {
        (ok.load(Ordering::Relaxed) >= 50).then_some(())
    })
    .await?;
    redis.kill()?;
    // During the outage calls fail, each promptly and naming the backend.
    let before_outage = ok.load(Ordering::Relaxed);
    let probe = client.clone();
    let failure = wait_for("a call to fail", Duration::from_secs(10), || async {
        match call(&probe, &actor, "visits").await {
            Err(ClientError::Remote(e)) => Some(e),
            Ok(_) => {
                ok.fetch_add(1, Ordering::Relaxed);
                None
            }
            Err(_) => None,
        }
    })
    .await?;
    assert!(failure.message.contains("redis"), "{}", failure.message);
    redis.restart()?;
    wait_for("calls after Redis is back", Duration::from_secs(15), || async {
        (ok.load(Ordering::Relaxed) >= before_outage + 50).then_some(())
    })
    .await?;
    stop.store(true, Ordering::Relaxed);
    let mut failures = Vec::new();
    for driver in drivers {
        failures.extend(driver.await?);
    }
    for (elapsed, message) in &failures {
        if *elapsed > timeout + Duration::from_secs(2) {
            bail!("a call took {elapsed:?} to fail: {message}");
        }
        assert!(message.contains("redis"), "{message}");
    }
    // Every acknowledged increment is in Redis; a call that failed may or may not have applied (its reply
    // was lost with the connection), so Redis holds at least the successes and at most all attempts.
    let stored: u64 = raw_get(&redis.url(), "lattice:kv-counter/default:visits").await?.unwrap_or_default().parse()?;
    let acknowledged = ok.load(Ordering::Relaxed);
    assert!(stored >= acknowledged, "Redis holds {stored}, but {acknowledged} increments were acknowledged");
    assert!(
        stored <= acknowledged + failures.len() as u64 + 1,
        "Redis holds {stored}: more than {acknowledged} acknowledged + {} failed calls",
        failures.len()
    );
    host.stop().await;
    Ok(())
}
