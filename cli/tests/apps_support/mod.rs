//! What the app tests share: `lattice host` processes on a real nats-server, the `lattice` binary, and the
//! counter app's manifest. (A module of each test binary that uses it; not every binary uses every item.)
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use lattice_core::subject::Name;
use lattice_core::wire::HostInfo;
use lattice_host::lattice::{LatticeClient, NatsConfig};
use lattice_test_harness::{NatsServer, wait_for};

/// A `lattice host` process, killed (SIGKILL) when dropped so none outlives the test.
pub struct HostProcess {
    pub id: String,
    child: Child,
    log: PathBuf,
}

impl HostProcess {
    pub fn kill(&mut self) -> Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }

    pub fn log(&self) -> String {
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
pub struct Lattice {
    pub nats: NatsServer,
    pub name: Name,
    pub dir: tempfile::TempDir,
    pub hosts: Vec<HostProcess>,
    pub client: LatticeClient,
}

impl Lattice {
    pub async fn new(name: &str) -> Result<Self> {
        let nats = tokio::task::spawn_blocking(NatsServer::start).await??;
        let name = Name::new(name)?;
        let client = LatticeClient::connect(&NatsConfig::new([nats.url()]), name.clone()).await?;
        Ok(Self { nats, name, dir: tempfile::tempdir()?, hosts: Vec::new(), client })
    }

    /// Starts a host with the default heartbeat (1 s) and `extra` arguments.
    pub fn spawn(&mut self, id: &str, extra: &[&str]) -> Result<()> {
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
    pub async fn ready(&self, n: usize) -> Result<()> {
        wait_for(&format!("{n} hosts and a leader"), Duration::from_secs(60), || async {
            let hosts = self.client.ping(Duration::from_millis(200)).await.ok()?;
            let leader = self.client.leader().await.ok()??;
            (hosts.len() == n).then_some(leader)
        })
        .await
        .with_context(|| self.logs())?;
        Ok(())
    }

    pub fn logs(&self) -> String {
        self.hosts.iter().map(|h| format!("--- {} ---\n{}", h.id, h.log())).collect::<Vec<_>>().join("\n")
    }

    pub fn host(&mut self, id: &str) -> Result<&mut HostProcess> {
        self.hosts.iter_mut().find(|h| h.id == id).with_context(|| format!("no host {id}"))
    }

    pub fn write(&self, file: &str, text: &str) -> Result<PathBuf> {
        let path = self.dir.path().join(file);
        std::fs::write(&path, text)?;
        Ok(path)
    }

    /// Runs the `lattice` CLI against this lattice.
    pub fn cli(&self, args: &[&str]) -> Result<Output> {
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
    pub fn cli_ok(&self, args: &[&str]) -> Result<String> {
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
    pub async fn replicas(&self, app: &str, actor: &str) -> Result<BTreeMap<String, String>> {
        let hosts = self.client.ping(Duration::from_millis(300)).await?;
        Ok(replicas_in(&hosts, app, actor))
    }
}

pub fn replicas_in(hosts: &[HostInfo], app: &str, actor: &str) -> BTreeMap<String, String> {
    hosts
        .iter()
        .filter(|h| {
            h.actors.iter().any(|a| a.name.as_str() == actor && a.owner.as_ref().is_some_and(|o| o.app.as_str() == app))
        })
        .map(|h| (h.id.to_string(), h.labels.get("zone").cloned().unwrap_or_default()))
        .collect()
}

/// The counter app: kv-counter from `artifact`, `replicas` replicas, spread over zones.
pub fn counter_manifest(artifact: &Path, replicas: u32) -> String {
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

pub fn kv_counter() -> PathBuf {
    PathBuf::from(lattice_test_actors::KV_COUNTER)
}

/// Calls kv-counter until `stop`, `callers` at a time; counts calls and failures (printing the first few).
pub fn call_continuously(
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
