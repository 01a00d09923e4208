//! Declarative apps end to end: `lattice host` processes (killed with SIGKILL where the test says so), a real
//! `nats-server` and `redis-server`, and the `lattice` binary's `apply`, `status` and `delete`.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use lattice_core::subject::Name;
use lattice_test_harness::{RedisServer, wait_for};

mod apps_support;
use apps_support::{Lattice, call_continuously, counter_manifest, kv_counter};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_spread_across_zones_and_come_back_within_5s_of_a_sigkill() -> Result<()> {
    let mut lattice = Lattice::new("spread").await?;
    for zone in ["a", "b", "c"] {
        lattice.spawn(&format!("host-{zone}"), &["--label", &format!("zone={zone}")])?;
    }
    lattice.ready(3).await?;
    let manifest = lattice.write("lattice.toml", &counter_manifest(&kv_counter(), 2))?;
    let applied = lattice.cli_ok(&["apply", manifest.to_str().context("path")?, "--timeout", "60s"])?;
    assert!(applied.contains("applied app counter revision 1"), "{applied}");
    assert!(applied.contains("app counter revision 1 is reconciled"), "{applied}");

    let placed = lattice.replicas("counter", "kv-counter").await?;
    assert_eq!(placed.len(), 2, "{placed:?}");
    let zones: BTreeSet<&String> = placed.values().collect();
    assert_eq!(zones.len(), 2, "replicas share a zone: {placed:?}");
    let reply =
        lattice.client.call(&Name::new("kv-counter")?, None, "visits".into(), Duration::from_secs(5), None).await?;
    assert_eq!(reply.data.as_deref(), Some(&b"1"[..]));

    // Applying the same file again changes nothing, and says so.
    let again = lattice.cli_ok(&["apply", manifest.to_str().context("path")?])?;
    assert!(again.contains("app counter is unchanged (revision 1): nothing to apply"), "{again}");

    // SIGKILL a host running a replica (not the leader, so this measures re-placement alone).
    let leader = lattice.client.leader().await?.context("a leader")?;
    let victim = placed.keys().find(|h| h.as_str() != leader.as_str()).context("a replica off the leader")?.clone();
    lattice.host(&victim)?.kill()?;
    let killed = Instant::now();
    let healed = wait_for("2 replicas on live hosts again", Duration::from_secs(15), || async {
        let placed = lattice.replicas("counter", "kv-counter").await.ok()?;
        (placed.len() == 2 && !placed.contains_key(&victim)).then_some(placed)
    })
    .await
    .with_context(|| lattice.logs())?;
    let after = killed.elapsed();
    eprintln!("re-placement after SIGKILL of {victim}: 2 replicas again after {after:?} ({healed:?})");
    assert!(after <= Duration::from_secs(5), "re-placed after {after:?}, more than 5 s");
    let zones: BTreeSet<&String> = healed.values().collect();
    assert_eq!(zones.len(), 2, "replicas share a zone after healing: {healed:?}");

    // The status says so too (json), and names the hosts.
    let status = lattice.cli_ok(&["status", "counter", "--wait", "10s", "-o", "json"])?;
    let status: serde_json::Value = serde_json::from_str(&status)?;
    assert_eq!(status["reconciled"], true, "{status}");
    let hosts = &status["status"]["actors"][0]["hosts"];
    assert_eq!(hosts.as_array().map(Vec::len), Some(2), "{status}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_leader_is_killed_another_host_takes_the_lease_and_reconciles_later_changes() -> Result<()> {
    let mut lattice = Lattice::new("leader").await?;
    // h1 alone first, so it is the leader; then two more.
    lattice.spawn("h1", &["--label", "zone=z"])?;
    lattice.ready(1).await?;
    for id in ["h2", "h3"] {
        lattice.spawn(id, &["--label", "zone=z"])?;
    }
    lattice.ready(3).await?;
    let old = lattice.client.leader().await?.context("a leader")?;
    assert_eq!(old.as_str(), "h1");
    // Equal load: replicas go to the lowest ids, so the leader runs one.
    let manifest = lattice.write("lattice.toml", &counter_manifest(&kv_counter(), 2))?;
    lattice.cli_ok(&["apply", manifest.to_str().context("path")?])?;
    let placed = lattice.replicas("counter", "kv-counter").await?;
    assert!(placed.contains_key("h1"), "{placed:?}");

    lattice.host("h1")?.kill()?;
    let killed = Instant::now();
    let new = wait_for("another host to take the lease", Duration::from_secs(15), || async {
        lattice.client.leader().await.ok()?.filter(|l| l != &old)
    })
    .await
    .with_context(|| lattice.logs())?;
    let took_over = killed.elapsed();
    let healed = wait_for("2 replicas on live hosts again", Duration::from_secs(15), || async {
        let placed = lattice.replicas("counter", "kv-counter").await.ok()?;
        (placed.len() == 2 && !placed.contains_key("h1")).then_some(placed)
    })
    .await
    .with_context(|| lattice.logs())?;
    let after = killed.elapsed();
    eprintln!(
        "leader h1 (running a replica) killed: {new} took the lease after {took_over:?}, 2 replicas again after {after:?} ({healed:?})"
    );
    assert!(after <= Duration::from_secs(5), "re-placed after {after:?}, more than 5 s");

    // A later change is reconciled by the new leader.
    std::fs::write(&manifest, counter_manifest(&kv_counter(), 1))?;
    let applied = lattice.cli_ok(&["apply", manifest.to_str().context("path")?, "--timeout", "30s"])?;
    assert!(applied.contains("~ actor kv-counter: replicas: 2 -> 1"), "{applied}");
    assert!(applied.contains("is reconciled"), "{applied}");
    let placed = lattice.replicas("counter", "kv-counter").await?;
    assert_eq!(placed.len(), 1, "{placed:?}");
    let status = lattice.client.app_status(&Name::new("counter")?).await?.context("a status")?;
    assert_eq!(status.leader, new);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_manifests_are_refused_with_located_errors_and_change_nothing() -> Result<()> {
    let mut lattice = Lattice::new("bad").await?;
    lattice.spawn("h1", &[])?;
    lattice.ready(1).await?;
    let artifact = kv_counter();
    let cases = [
        (
            "a bad field",
            format!(
                "[app]\nname = \"counter\"\nversion = \"0.1.0\"\n\n[[actor]]\nname = \"kv-counter\"\nartifact = \"{}\"\nreplica = 2\n",
                artifact.display()
            ),
            vec!["lattice.toml:8:", "replica"],
        ),
        (
            "a missing artifact",
            "[app]\nname = \"counter\"\nversion = \"0.1.0\"\n\n[[actor]]\nname = \"kv-counter\"\nartifact = \"missing/kv_counter.wasm\"\n"
                .to_owned(),
            vec!["lattice.toml:5:", "artifact file: cannot read", "missing/kv_counter.wasm"],
        ),
        (
            "an artifact that is not a component",
            "[app]\nname = \"counter\"\nversion = \"0.1.0\"\n\n[[actor]]\nname = \"kv-counter\"\nartifact = \"notes.wasm\"\n"
                .to_owned(),
            vec!["lattice.toml:5:", "notes.wasm` is not a WebAssembly component: it is a text file"],
        ),
        (
            "a pushed artifact the lattice lacks",
            "[app]\nname = \"counter\"\nversion = \"0.1.0\"\n\n[[actor]]\nname = \"kv-counter\"\nartifact = \"nothing-pushed\"\n"
                .to_owned(),
            vec!["lattice.toml:5:", "artifact `nothing-pushed` is not in the lattice's artifact store"],
        ),
        (
            "an unknown provider",
            format!(
                "[app]\nname = \"counter\"\nversion = \"0.1.0\"\n\n[[actor]]\nname = \"kv-counter\"\nartifact = \"{}\"\nlinks = {{ \"keyvalue:default\" = \"nowhere\" }}\n",
                artifact.display()
            ),
            vec!["lattice.toml:8:", "unknown provider `nowhere`"],
        ),
    ];
    lattice.write("notes.wasm", "not an actor\n")?;
    for (what, text, expected) in cases {
        lattice.write("lattice.toml", &text)?;
        let output = lattice.cli(&["apply"])?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{what}: accepted\n{stderr}");
        for needle in expected {
            assert!(stderr.contains(needle), "{what}: `{needle}` missing from:\n{stderr}");
        }
        assert!(stderr.contains("nothing was applied"), "{what}: {stderr}");
        // The lattice is unchanged: no app, nothing placed, no link.
        assert!(lattice.client.apps().await?.is_empty(), "{what}");
        assert!(lattice.client.list_links().await?.is_empty(), "{what}");
        let hosts = lattice.client.ping(Duration::from_millis(300)).await?;
        assert!(hosts.iter().all(|h| h.actors.is_empty()), "{what}: {hosts:?}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_env_swap_moves_the_counter_to_redis_live_and_delete_leaves_nothing() -> Result<()> {
    let redis = tokio::task::spawn_blocking(RedisServer::start).await??;
    let mut lattice = Lattice::new("envswap").await?;
    lattice.spawn("h1", &["--provider-allow", "redis://127.0.0.1:*"])?;
    lattice.ready(1).await?;
    let manifest = format!(
        r#"[app]
name = "counter"
version = "0.1.0"

[[actor]]
name = "kv-counter"
artifact = "{}"
replicas = 1
links = {{ "keyvalue:default" = "inmemory" }}
routes = ["counter.test/"]

[env.test.actor.kv-counter]
links = {{ "keyvalue:default" = "inmemory" }}

[env.prod.actor.kv-counter]
links = {{ "keyvalue:default" = "redis" }}
routes = ["counter.example.com/v1"]

[[env.prod.provider]]
name = "redis"
kind = "redis"
config = {{ url = "{}" }}
"#,
        kv_counter().display(),
        redis.url()
    );
    lattice.write("lattice.toml", &manifest)?;
    lattice.cli_ok(&["apply", "--env", "test"])?;
    let routes = |lattice: &Lattice| {
        let client = lattice.client.clone();
        async move {
            let listed = client.list_routes().await?;
            anyhow::Ok(listed.iter().map(|(route, actor)| format!("{actor} {route}")).collect::<Vec<_>>())
        }
    };
    assert_eq!(routes(&lattice).await?, ["kv-counter counter.test/"]);

    let stop = Arc::new(AtomicBool::new(false));
    let (calls, failures, callers) = call_continuously(&lattice.client, 4, &stop);
    let diff = lattice.cli_ok(&["diff", "--env", "prod"])?;
    assert!(diff.contains("+ provider redis: redis"), "{diff}");
    assert!(diff.contains("links: keyvalue:default=inmemory -> keyvalue:default=redis"), "{diff}");
    assert!(diff.contains("routes: counter.test/ -> counter.example.com/v1"), "{diff}");
    let swapped = lattice.cli_ok(&["apply", "--env", "prod"])?;
    assert!(swapped.contains("is reconciled"), "{swapped}");
    assert!(swapped.contains("removed route kv-counter counter.test/"), "{swapped}");
    assert_eq!(routes(&lattice).await?, ["kv-counter counter.example.com/v1"]);
    // Calls after the swap count in Redis.
    let before = calls.load(Ordering::Relaxed);
    wait_for("calls after the swap", Duration::from_secs(10), || async {
        (calls.load(Ordering::Relaxed) >= before + 20).then_some(())
    })
    .await?;
    stop.store(true, Ordering::Relaxed);
    for caller in callers {
        caller.await?;
    }
    assert_eq!(failures.load(Ordering::Relaxed), 0, "calls failed during the swap");

    let mut redis_conn = redis::Client::open(redis.url())?.get_multiplexed_async_connection().await?;
    let keys: Vec<String> = redis::cmd("KEYS").arg("*visits").query_async(&mut redis_conn).await?;
    assert_eq!(keys.len(), 1, "{keys:?}");
    let counted: u64 = redis::cmd("GET").arg(&keys[0]).query_async(&mut redis_conn).await?;
    assert!(counted >= 20, "only {counted} calls counted in Redis");
    let host = lattice.client.inventory(&Name::new("h1")?).await?;
    assert_eq!(host.actors[0].links, ["keyvalue:default=redis"]);
    assert!(host.provider_owners.contains_key("redis"), "{host:?}");

    // Status shows the link as stored, and a link changed by hand since as differing.
    let status: serde_json::Value = serde_json::from_str(&lattice.cli_ok(&["status", "counter", "-o", "json"])?)?;
    assert_eq!(status["links"][0]["link"], "keyvalue:default=redis", "{status}");
    assert_eq!(status["links"][0]["state"], "stored", "{status}");
    lattice.cli_ok(&["link", "put", "kv-counter", "keyvalue", "default", "--provider", "inmemory"])?;
    let status: serde_json::Value = serde_json::from_str(&lattice.cli_ok(&["status", "counter", "-o", "json"])?)?;
    assert_eq!(status["links"][0]["state"], "differs: keyvalue:default=inmemory", "{status}");

    // Both revisions are kept.
    let history: serde_json::Value =
        serde_json::from_str(&lattice.cli_ok(&["status", "counter", "--history", "-o", "json"])?)?;
    let envs: Vec<&str> =
        history.as_array().context("revisions")?.iter().filter_map(|r| r["spec"]["env"].as_str()).collect();
    assert_eq!(envs, ["test", "prod"], "{history}");

    // Delete: no actor, link or provider of the app remains.
    let deleted = lattice.cli_ok(&["delete", "counter"])?;
    assert!(deleted.contains("deleted app counter (revision 2)"), "{deleted}");
    assert!(deleted.contains("stopped actor kv-counter on h1"), "{deleted}");
    assert!(deleted.contains("stopped provider redis on h1"), "{deleted}");
    assert!(deleted.contains("removed link kv-counter keyvalue:default"), "{deleted}");
    assert!(deleted.contains("removed route kv-counter counter.example.com/v1"), "{deleted}");
    assert!(routes(&lattice).await?.is_empty());
    let host = lattice.client.inventory(&Name::new("h1")?).await?;
    assert!(host.actors.is_empty(), "{host:?}");
    assert!(!host.providers.iter().any(|p| p == "keyvalue:redis"), "{host:?}");
    assert!(lattice.client.list_links().await?.is_empty());
    assert!(lattice.client.apps().await?.is_empty());
    let gone = lattice.cli(&["status", "counter"])?;
    assert!(!gone.status.success());
    assert!(String::from_utf8_lossy(&gone.stderr).contains("no app `counter`"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_messaging_workflow_declared_in_a_manifest_runs_across_hosts() -> Result<()> {
    use lattice_provider_sdk::KeyValue;
    let mut lattice = Lattice::new("workflow").await?;
    lattice.spawn("h1", &[])?;
    lattice.spawn("h2", &[])?;
    lattice.ready(2).await?;
    // order-store on both hosts shares `orders.new` through a queue group and publishes `orders.stored`;
    // order-total adds them up in a provider the app places. Links in both forms: text and table.
    let manifest = format!(
        r#"[app]
name = "orders"
version = "1.0.0"

[[actor]]
name = "order-store"
artifact = "{}"
replicas = 2
links = {{ "keyvalue:default" = "inmemory", "messaging:events" = "nats", "messaging:orders" = {{ provider = "nats", subscribe = "orders.new", queue = "order-store" }} }}

[[actor]]
name = "order-total"
artifact = "{}"
links = {{ "keyvalue:default" = "totals", "messaging:stored" = "nats,subscribe=orders.stored" }}

[[provider]]
name = "totals"
kind = "inmemory"
"#,
        lattice_test_actors::ORDER_STORE,
        lattice_test_actors::ORDER_TOTAL
    );
    lattice.write("lattice.toml", &manifest)?;
    let applied = lattice.cli_ok(&["apply"])?;
    assert!(applied.contains("app orders revision 1 is reconciled"), "{applied}");
    assert_eq!(lattice.replicas("orders", "order-store").await?.len(), 2);

    const ORDERS: u64 = 200;
    let mut expected = 0;
    for i in 0..ORDERS {
        let amount = i % 97 + 1;
        expected += amount;
        lattice.client.nats().publish("orders.new", format!("o-{i} {amount}").into()).await?;
    }
    lattice.client.nats().flush().await?;
    let totals = lattice_provider_sdk::remote::RemoteKeyValue::new(
        lattice.client.nats().clone(),
        lattice.client.subjects().provider(&Name::new("totals")?, "keyvalue"),
        Duration::from_secs(5),
    );
    let text = |v: Option<Vec<u8>>| v.map(|v| String::from_utf8_lossy(&v).into_owned()).unwrap_or_default();
    wait_for("every order to be counted", Duration::from_secs(30), || async {
        (text(totals.get("order-total/default", "orders").await.ok()?) == ORDERS.to_string()).then_some(())
    })
    .await
    .with_context(|| lattice.logs())?;
    assert_eq!(text(totals.get("order-total/default", "total").await?), expected.to_string());
    Ok(())
}
