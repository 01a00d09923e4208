//! Declarative apps end to end: `lattice host` processes (killed with SIGKILL where the test says so), a real
//! `nats-server` and `redis-server`, and the `lattice` binary's `apply`, `status` and `delete`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use lattice_core::subject::Name;
use lattice_core::wire::HostInfo;
use lattice_host::lattice::{LatticeClient, NatsConfig};
use lattice_test_harness::{NatsServer, RedisServer, wait_for};

/// A `lattice host` process, killed (SIGKILL) when dropped so none outlives the test.
struct HostProcess {
    id: String,
    child: Child,
    log: PathBuf,
}

impl HostProcess {
    fn kill(&mut self) -> Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for HostProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A lattice of host processes on one nats-server, and a directory for manifests and logs.
struct Lattice {
    nats: NatsServer,
    name: Name,
    dir: tempfile::TempDir,
    hosts: Vec<HostProcess>,
    client: LatticeClient,
}

impl Lattice {
    async fn new(name: &str) -> Result<Self> {
        let nats = tokio::task::spawn_blocking(NatsServer::start).await??;
        let name = Name::new(name)?;
        let client = LatticeClient::connect(&NatsConfig::new([nats.url()]), name.clone()).await?;
        Ok(Self { nats, name, dir: tempfile::tempdir()?, hosts: Vec::new(), client })
    }

    /// Starts a host with the default heartbeat (1 s) and `extra` arguments.
    fn spawn(&mut self, id: &str, extra: &[&str]) -> Result<()> {
        let log = self.dir.path().join(format!("{id}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_lattice"))
            .args(["host", "--nats", &self.nats.url(), "--lattice", self.name.as_str(), "--host-id", id])
            .args(["--allow-unsigned", "--grace", "2s"])
            .args(extra)
            .env("LATTICE_LOG", "info")
            .env("HOME", self.dir.path())
            .env_remove("LATTICE_OPERATOR_KEY")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .context("spawning `lattice host`")?;
        self.hosts.push(HostProcess { id: id.to_owned(), child, log });
        Ok(())
    }

    /// Waits until `n` hosts answer a ping, and one of them leads.
    async fn ready(&self, n: usize) -> Result<()> {
        wait_for(&format!("{n} hosts and a leader"), Duration::from_secs(60), || async {
            let hosts = self.client.ping(Duration::from_millis(200)).await.ok()?;
            let leader = self.client.leader().await.ok()??;
            (hosts.len() == n).then_some(leader)
        })
        .await
        .with_context(|| self.logs())?;
        Ok(())
    }

    fn logs(&self) -> String {
        self.hosts.iter().map(|h| format!("--- {} ---\n{}", h.id, h.log())).collect::<Vec<_>>().join("\n")
    }

    fn host(&mut self, id: &str) -> Result<&mut HostProcess> {
        self.hosts.iter_mut().find(|h| h.id == id).with_context(|| format!("no host {id}"))
    }

    fn write(&self, file: &str, text: &str) -> Result<PathBuf> {
        let path = self.dir.path().join(file);
        std::fs::write(&path, text)?;
        Ok(path)
    }

    /// Runs the `lattice` CLI against this lattice.
    fn cli(&self, args: &[&str]) -> Result<Output> {
        let output = Command::new(env!("CARGO_BIN_EXE_lattice"))
            .args(args)
            .env("LATTICE_NATS", self.nats.url())
            .env("LATTICE_NAME", self.name.as_str())
            .env("HOME", self.dir.path())
            .env_remove("LATTICE_OPERATOR_KEY")
            .current_dir(self.dir.path())
            .output()?;
        Ok(output)
    }

    /// Runs the CLI and fails (with its output and the hosts' logs) unless it succeeds; returns stdout.
    fn cli_ok(&self, args: &[&str]) -> Result<String> {
        let output = self.cli(args)?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if !output.status.success() {
            bail!(
                "`lattice {}` failed: {}\nstdout:\n{stdout}\nstderr:\n{}\n{}",
                args.join(" "),
                output.status,
                String::from_utf8_lossy(&output.stderr),
                self.logs()
            );
        }
        Ok(stdout)
    }

    /// Hosts answering a ping that run `actor` placed by `app`, with their zone label.
    async fn replicas(&self, app: &str, actor: &str) -> Result<BTreeMap<String, String>> {
        let hosts = self.client.ping(Duration::from_millis(300)).await?;
        Ok(replicas_in(&hosts, app, actor))
    }
}

fn replicas_in(hosts: &[HostInfo], app: &str, actor: &str) -> BTreeMap<String, String> {
    hosts
        .iter()
        .filter(|h| {
            h.actors.iter().any(|a| a.name.as_str() == actor && a.owner.as_ref().is_some_and(|o| o.app.as_str() == app))
        })
        .map(|h| (h.id.to_string(), h.labels.get("zone").cloned().unwrap_or_default()))
        .collect()
}

/// The counter app: kv-counter from `artifact`, `replicas` replicas, spread over zones.
fn counter_manifest(artifact: &Path, replicas: u32) -> String {
    format!(
        r#"[app]
name = "counter"
version = "0.1.0"

[[actor]]
name = "kv-counter"
artifact = "{}"
replicas = {replicas}
spread = "zone"
max_concurrency = 64
links = {{ "keyvalue:default" = "inmemory" }}
"#,
        artifact.display()
    )
}

fn kv_counter() -> PathBuf {
    PathBuf::from(lattice_test_actors::KV_COUNTER)
}

/// Calls kv-counter until `stop`, `callers` at a time; counts calls and failures (printing the first few).
fn call_continuously(
    client: &LatticeClient,
    callers: usize,
    stop: &Arc<AtomicBool>,
) -> (Arc<AtomicU64>, Arc<AtomicU64>, Vec<tokio::task::JoinHandle<()>>) {
    let (calls, failures) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let actor = Name::new("kv-counter").expect("name");
    let tasks = (0..callers)
        .map(|_| {
            let (client, stop, calls, failures, actor) =
                (client.clone(), stop.clone(), calls.clone(), failures.clone(), actor.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let reply = client.call(&actor, None, "visits".into(), Duration::from_secs(10), None).await;
                    calls.fetch_add(1, Ordering::Relaxed);
                    if let Err(error) = reply
                        && failures.fetch_add(1, Ordering::Relaxed) < 5
                    {
                        eprintln!("call failed: {error}");
                    }
                }
            })
        })
        .collect();
    (calls, failures, tasks)
}

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
            vec!["lattice.toml:5:", "cannot read artifact file", "missing/kv_counter.wasm"],
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

[env.test.actor.kv-counter]
links = {{ "keyvalue:default" = "inmemory" }}

[env.prod.actor.kv-counter]
links = {{ "keyvalue:default" = "redis" }}

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

    let stop = Arc::new(AtomicBool::new(false));
    let (calls, failures, callers) = call_continuously(&lattice.client, 4, &stop);
    let diff = lattice.cli_ok(&["diff", "--env", "prod"])?;
    assert!(diff.contains("+ provider redis: redis"), "{diff}");
    assert!(diff.contains("links: keyvalue:default=inmemory -> keyvalue:default=redis"), "{diff}");
    let swapped = lattice.cli_ok(&["apply", "--env", "prod"])?;
    assert!(swapped.contains("is reconciled"), "{swapped}");
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

/// The kv-counter component with a custom section appended: the same behaviour under another digest.
fn another_version(dir: &Path) -> Result<PathBuf> {
    let mut bytes = std::fs::read(kv_counter())?;
    let name = b"lattice-test-version";
    let payload = b"2";
    let body_len = 1 + name.len() + payload.len();
    bytes.push(0);
    bytes.push(u8::try_from(body_len)?);
    bytes.push(u8::try_from(name.len())?);
    bytes.extend_from_slice(name);
    bytes.extend_from_slice(payload);
    let path = dir.join("kv_counter_v2.wasm");
    std::fs::write(&path, bytes)?;
    Ok(path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_update_loses_no_call_at_32_in_flight() -> Result<()> {
    let mut lattice = Lattice::new("rolling").await?;
    lattice.spawn("h1", &["--label", "zone=a"])?;
    lattice.spawn("h2", &["--label", "zone=b"])?;
    lattice.ready(2).await?;
    let manifest = lattice.write("lattice.toml", &counter_manifest(&kv_counter(), 2))?;
    lattice.cli_ok(&["apply", manifest.to_str().context("path")?])?;
    let v1: BTreeSet<String> = lattice
        .client
        .ping(Duration::from_millis(300))
        .await?
        .iter()
        .flat_map(|h| h.actors.iter().map(|a| a.digest.clone()))
        .collect();
    assert_eq!(v1.len(), 1);

    let stop = Arc::new(AtomicBool::new(false));
    let (calls, failures, callers) = call_continuously(&lattice.client, 32, &stop);
    wait_for("calls before the update", Duration::from_secs(10), || async {
        (calls.load(Ordering::Relaxed) >= 200).then_some(())
    })
    .await?;
    let v2 = another_version(lattice.dir.path())?;
    std::fs::write(&manifest, counter_manifest(&v2, 2))?;
    let applied = lattice.cli_ok(&["apply", manifest.to_str().context("path")?, "--timeout", "60s"])?;
    assert!(applied.contains("~ actor kv-counter: artifact:"), "{applied}");
    let before = calls.load(Ordering::Relaxed);
    wait_for("calls after the update", Duration::from_secs(10), || async {
        (calls.load(Ordering::Relaxed) >= before + 200).then_some(())
    })
    .await?;
    stop.store(true, Ordering::Relaxed);
    for caller in callers {
        caller.await?;
    }
    let (total, failed) = (calls.load(Ordering::Relaxed), failures.load(Ordering::Relaxed));
    eprintln!("rolling update: {total} calls at 32 in flight, {failed} failed");
    assert_eq!(failed, 0, "calls failed during the rolling update");

    // Both replicas run the new version, still one per zone.
    let hosts = lattice.client.ping(Duration::from_millis(300)).await?;
    let digests: BTreeSet<String> = hosts.iter().flat_map(|h| h.actors.iter().map(|a| a.digest.clone())).collect();
    assert_eq!(digests.len(), 1, "{digests:?}");
    assert!(v1.is_disjoint(&digests), "still on the old version: {digests:?}");
    assert_eq!(replicas_in(&hosts, "counter", "kv-counter").len(), 2);
    Ok(())
}
