//! Providers and links under attack (issue 9, §3 "Providers" and "Link puts"): backend URLs outside the
//! host's allow-list, lookalike hosts, a second provider under a taken or built-in name, restarting a
//! provider whose supervisor gave up, and links to providers nobody serves. Each test fails if the attack
//! works: a refused start must leave nothing running and open no connection to the backend.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Result;
use futures::StreamExt;
use lattice_core::allow::{AllowList, LOOPBACK_REDIS};
use lattice_core::link::LinkSpec;
use lattice_core::wire::{ErrorCode, EventData};
use lattice_host::lattice::{self, ClientError, LatticeClient, RunningHost, Supervision};
use lattice_test_harness::RedisServer;

use crate::{GATHER, TestLattice, call, expect_event, kv_counter, name, runtime, text};

/// The allow-list `lattice up` uses: Redis on loopback. Every test host that starts a Redis provider needs it.
pub fn loopback() -> AllowList {
    AllowList::parse(LOOPBACK_REDIS).unwrap_or_else(|e| panic!("{e}"))
}

/// Host `id` allowing `allow`.
pub async fn host_allowing(lattice: &TestLattice, id: &str, allow: AllowList) -> Result<RunningHost> {
    let mut config = lattice.host_config(id, &[]);
    config.provider_allow = allow;
    Ok(lattice::start(config, runtime()).await?)
}

fn redis_config(url: &str) -> BTreeMap<String, String> {
    BTreeMap::from([("url".to_owned(), url.to_owned()), ("timeout".to_owned(), "200ms".to_owned())])
}

/// Connections the Redis server has accepted so far.
async fn connections_received(conn: &mut redis::aio::MultiplexedConnection) -> Result<u64> {
    let info: String = redis::cmd("INFO").arg("stats").query_async(conn).await?;
    let line = info
        .lines()
        .find_map(|l| l.strip_prefix("total_connections_received:"))
        .ok_or_else(|| anyhow::anyhow!("no total_connections_received in INFO"))?;
    Ok(line.trim().parse()?)
}

async fn has_provider(client: &LatticeClient, host: &RunningHost, provider: &str) -> Result<bool> {
    Ok(client.inventory(host.id()).await?.providers.contains(&format!("keyvalue:{provider}")))
}

fn remote(error: ClientError) -> lattice_core::wire::WireError {
    match error {
        ClientError::Remote(e) => e,
        other => panic!("expected an error reply from the host, got {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_url_outside_the_allow_list_is_refused_and_nothing_connects() -> Result<()> {
    let redis = tokio::task::spawn_blocking(RedisServer::start).await??;
    let lattice = TestLattice::start("prov-allow-default").await?;
    // The default: no pattern, so every URL-bearing provider is refused, loopback included.
    let host = lattice.host("h1", &[]).await?;
    let client = lattice.client().await?;
    let mut probe = redis::Client::open(redis.url())?.get_multiplexed_async_connection().await?;
    let before = connections_received(&mut probe).await?;

    let with_password = redis.url().replacen("redis://", "redis://admin:hunter2@", 1);
    let error = client
        .start_provider(host.id(), "cache", "redis", redis_config(&with_password))
        .await
        .map_err(remote)
        .expect_err("no pattern allows the url");
    assert_eq!(error.code, ErrorCode::InvalidConfig);
    let shown = format!("backend url redis://127.0.0.1:{} is not allowed on host h1", redis.port());
    assert!(error.message.starts_with(&shown), "{}", error.message);
    assert!(error.message.contains("--provider-allow"), "the refusal names the setting: {}", error.message);
    assert!(!error.message.contains("hunter2") && !error.message.contains("admin"), "{}", error.message);

    // Nothing was started: no instance in the inventory, and the host never connected to the backend.
    assert!(!has_provider(&client, &host, "cache").await?);
    assert_eq!(connections_received(&mut probe).await?, before, "the host connected to a refused backend");
    // The name stays free: the refusal claimed nothing.
    client.start_provider(host.id(), "cache", "inmemory", BTreeMap::new()).await?;
    host.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allowed_url_serves_and_lookalike_hosts_are_refused() -> Result<()> {
    let redis = tokio::task::spawn_blocking(RedisServer::start).await??;
    let lattice = TestLattice::start("prov-allow-lookalike").await?;
    let host = host_allowing(&lattice, "h1", AllowList::parse(["redis://127.0.0.1:*"])?).await?;
    let client = lattice.client().await?;
    let port = redis.port();

    for (i, lookalike) in [
        format!("redis://127.0.0.1.evil.invalid:{port}"),
        format!("redis://127.0.0.1@evil.invalid:{port}"),
        format!("redis://127.0.0.1:{port}@evil.invalid"),
        format!("rediss://127.0.0.1:{port}"),
        format!("redis://localhost:{port}"),
        format!("redis://127.0.0.1%2eevil.invalid:{port}"),
        "redis+unix:///tmp/redis.sock".to_owned(),
    ]
    .iter()
    .enumerate()
    {
        let name = format!("lookalike-{i}");
        let error = client
            .start_provider(host.id(), &name, "redis", redis_config(lookalike))
            .await
            .map_err(remote)
            .expect_err(lookalike);
        assert_eq!(error.code, ErrorCode::InvalidConfig, "{lookalike}");
        assert!(error.message.contains("--provider-allow"), "{lookalike}: {}", error.message);
        assert!(!has_provider(&client, &host, &name).await?, "{lookalike} started");
    }

    // The allowed URL works end to end: an actor linked to it counts in Redis.
    client.start_provider(host.id(), "cache", "redis", redis_config(&redis.url())).await?;
    let actor = name("kv-counter");
    let mut request = kv_counter(&actor);
    request.links = vec!["keyvalue:default=cache".to_owned()];
    client.start_actor(host.id(), &request).await?;
    assert_eq!(text(&call(&client, &actor, "n").await?)?, "1");
    assert_eq!(text(&call(&client, &actor, "n").await?)?, "2");
    host.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_provider_under_a_taken_name_is_refused_while_the_first_keeps_serving() -> Result<()> {
    let redis = tokio::task::spawn_blocking(RedisServer::start).await??;
    let lattice = TestLattice::start("prov-duplicate").await?;
    let host = host_allowing(&lattice, "h1", loopback()).await?;
    let client = lattice.client().await?;
    client.start_provider(host.id(), "cache", "inmemory", BTreeMap::new()).await?;
    let actor = name("kv-counter");
    let mut request = kv_counter(&actor);
    request.links = vec!["keyvalue:default=cache".to_owned()];
    client.start_actor(host.id(), &request).await?;
    assert_eq!(text(&call(&client, &actor, "n").await?)?, "1");

    // An allowed backend, but the name is taken: refused, naming the host and the running kind.
    let mut probe = redis::Client::open(redis.url())?.get_multiplexed_async_connection().await?;
    let before = connections_received(&mut probe).await?;
    let error = client
        .start_provider(host.id(), "cache", "redis", redis_config(&redis.url()))
        .await
        .map_err(remote)
        .expect_err("cache is taken");
    assert_eq!(error.code, ErrorCode::InvalidConfig);
    assert!(error.message.contains("provider `cache` already runs on host h1 (kind `inmemory`)"), "{}", error.message);
    assert_eq!(connections_received(&mut probe).await?, before, "the refused duplicate connected to Redis");
    // The first instance still serves, with its data: the count goes on.
    assert_eq!(text(&call(&client, &actor, "n").await?)?, "2");
    let again = client.start_provider(host.id(), "cache", "inmemory", BTreeMap::new()).await;
    assert_eq!(again.expect_err("same kind, same name").code(), Some(ErrorCode::InvalidConfig));
    assert_eq!(text(&call(&client, &actor, "n").await?)?, "3");

    // Two starts racing for one name: exactly one wins.
    let other = lattice.client().await?;
    let (a, b) = tokio::join!(
        client.start_provider(host.id(), "twin", "inmemory", BTreeMap::new()),
        other.start_provider(host.id(), "twin", "inmemory", BTreeMap::new()),
    );
    let winners = [a.is_ok(), b.is_ok()].iter().filter(|ok| **ok).count();
    assert_eq!(winners, 1, "both or neither of two racing starts won: {a:?} / {b:?}");
    let loser = a.err().or(b.err()).map(remote).expect("one start lost");
    assert!(loser.message.contains("already runs on host h1"), "{}", loser.message);
    host.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_names_that_shadow_a_built_in_are_refused() -> Result<()> {
    let lattice = TestLattice::start("prov-shadow").await?;
    let host = lattice.host("h1", &[]).await?;
    let client = lattice.client().await?;
    let actor = name("kv-counter");
    client.start_actor(host.id(), &kv_counter(&actor)).await?;
    assert_eq!(text(&call(&client, &actor, "n").await?)?, "1");
    for builtin in lattice::BUILTIN_PROVIDERS {
        let error = client
            .start_provider(host.id(), builtin, "inmemory", BTreeMap::new())
            .await
            .map_err(remote)
            .expect_err(builtin);
        assert_eq!(error.code, ErrorCode::InvalidConfig, "{builtin}");
        assert!(
            error.message.contains(&format!("provider name `{builtin}` is built into every host")),
            "{}",
            error.message
        );
    }
    // The built-in in-memory store was not replaced by an empty one.
    assert_eq!(text(&call(&client, &actor, "n").await?)?, "2");
    host.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_whose_supervisor_gave_up_is_restarted_on_request_and_serves_again() -> Result<()> {
    let mut redis = tokio::task::spawn_blocking(RedisServer::start).await??;
    let lattice = TestLattice::start("prov-restart").await?;
    let mut config = lattice.host_config("h1", &[]);
    config.provider_allow = loopback();
    config.supervision = Supervision {
        interval: Duration::from_millis(100),
        failures: 2,
        backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(200),
        intensity: 1,
        window: Duration::from_secs(60),
    };
    let host = lattice::start(config, runtime()).await?;
    let client = lattice.client().await?;
    let mut events = client.events().await?.boxed();
    client.start_provider(host.id(), "cache", "redis", redis_config(&redis.url())).await?;
    let actor = name("kv-counter");
    let mut request = kv_counter(&actor);
    request.links = vec!["keyvalue:default=cache".to_owned()];
    client.start_actor(host.id(), &request).await?;
    assert_eq!(text(&call(&client, &actor, "n").await?)?, "1");

    // Healthy, unknown and built-in providers are not restarted.
    let healthy = remote(client.restart_provider(host.id(), "cache").await.expect_err("cache is healthy"));
    assert_eq!(healthy.code, ErrorCode::BadRequest);
    assert!(healthy.message.contains("provider `cache` on host h1 has not failed"), "{}", healthy.message);
    for unknown in ["ghost", "inmemory"] {
        let error = remote(client.restart_provider(host.id(), unknown).await.expect_err(unknown));
        assert_eq!(error.code, ErrorCode::NotFound, "{unknown}");
        assert!(
            error.message.contains(&format!("cannot restart provider `{unknown}` on host h1")),
            "{}",
            error.message
        );
    }

    redis.kill()?;
    expect_event(
        &mut events,
        "provider.failed",
        Duration::from_secs(15),
        |e| matches!(&e.data, EventData::ProviderFailed { name, .. } if name == "cache"),
    )
    .await?;
    assert!(call(&client, &actor, "n").await.is_err(), "calls fail while the provider is down");

    redis.restart()?;
    let restarted = client.restart_provider(host.id(), "cache").await?;
    assert_eq!((restarted.name.as_str(), restarted.kind.as_str()), ("cache", "redis"));
    assert_eq!(restarted.unhealthy, None);
    expect_event(
        &mut events,
        "provider.recovered",
        Duration::from_secs(10),
        |e| matches!(&e.data, EventData::ProviderRecovered { name } if name == "cache"),
    )
    .await?;
    // Redis came back empty: the count starts over, through the rebuilt instance.
    assert_eq!(text(&call(&client, &actor, "n").await?)?, "1");
    // Supervised again: a second restart is refused, the provider has not failed.
    let again = remote(client.restart_provider(host.id(), "cache").await.expect_err("supervised again"));
    assert_eq!(again.code, ErrorCode::BadRequest);
    host.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_to_a_provider_nobody_serves_is_refused_unless_forced() -> Result<()> {
    let lattice = TestLattice::start("prov-link-put").await?;
    let host = lattice.host("h1", &[]).await?;
    let client = lattice.client().await?;
    let actor = name("kv-counter");
    let spec = |s: &str| s.parse::<LinkSpec>().unwrap_or_else(|e| panic!("{e}"));

    for unserved in ["keyvalue:default=ghost", "keyvalue:default=nats", "messaging:bus=ghost"] {
        let error = client.put_link_checked(&actor, &spec(unserved), GATHER).await.expect_err(unserved);
        assert!(matches!(error, ClientError::UnknownProvider { .. }), "{unserved}: {error}");
        assert!(error.to_string().starts_with("no host in lattice `prov-link-put` serves"), "{error}");
    }
    assert!(client.list_links().await?.is_empty(), "a refused link was stored");

    // Built-ins and started instances are served.
    for served in ["keyvalue:default=inmemory", "messaging:bus=nats", "messaging:bus=inmemory"] {
        client.put_link_checked(&actor, &spec(served), GATHER).await?;
    }
    client.start_provider(host.id(), "scratch", "inmemory", BTreeMap::new()).await?;
    client.put_link_checked(&actor, &spec("keyvalue:default=scratch"), GATHER).await?;
    // Forced (`put_link`, what `--force` does): stored before the provider exists.
    client.put_link(&actor, &spec("keyvalue:later=ghost")).await?;
    let links: Vec<String> = client.list_links().await?.into_iter().map(|l| l.link).collect();
    assert!(links.contains(&"keyvalue:later=ghost".to_owned()), "{links:?}");
    assert!(!links.iter().any(|l| l.contains("default=ghost") || l.contains("default=nats")), "{links:?}");

    // With no host at all, nothing is served.
    host.stop().await;
    let error = client.check_link_provider(&spec("keyvalue:default=inmemory"), GATHER).await.expect_err("no hosts");
    assert!(matches!(error, ClientError::UnknownProvider { .. }), "{error}");
    Ok(())
}
