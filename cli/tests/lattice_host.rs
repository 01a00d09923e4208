//! `lattice host` as a separate OS process: killed with SIGKILL (no goodbye), it is reported lost within 3
//! heartbeats.
//!
//! A real `nats-server` (from `lattice_test_harness`) on a free port; the host is this package's `lattice`
//! binary; the test watches it through `LatticeClient`.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use lattice_core::subject::Name;
use lattice_core::wire::EventData;
use lattice_host::lattice::{HostStatus, LatticeClient, NatsConfig};
use lattice_test_harness::{NatsServer, terminate, wait_for};

/// The host's heartbeat: short, so the test is quick.
const HEARTBEAT: Duration = Duration::from_millis(300);

/// Slack on top of 3 heartbeats. The host record's age is measured from the last heartbeat the host wrote,
/// which is at or before the kill, so a killed host is reported lost at most 3 heartbeats after the kill;
/// what the test adds is how often it looks (`wait_for` polls every 20 ms) and how long one look takes (a
/// JetStream key listing plus one read per host: milliseconds, more on a loaded 2-core machine). 500 ms
/// covers both with room to spare while still failing a host that needs a 4th missed heartbeat (+300 ms)
/// plus any real delay.
const MARGIN: Duration = Duration::from_millis(500);

/// Kills the host process if the test ends early, so none outlives the test.
struct HostProcess(Child);

impl Drop for HostProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `lattice host` with the test heartbeat and `extra` arguments, logging to `log`.
fn spawn_host(nats: &NatsServer, lattice: &str, id: &str, log: &Path, extra: &[&str]) -> Result<HostProcess> {
    let heartbeat = format!("{}ms", HEARTBEAT.as_millis());
    let child = Command::new(env!("CARGO_BIN_EXE_lattice"))
        .args(["host", "--nats", &nats.url(), "--lattice", lattice, "--host-id", id])
        .args(["--heartbeat", &heartbeat])
        .args(extra)
        .env("LATTICE_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log)?)
        .spawn()
        .context("spawning `lattice host`")?;
    Ok(HostProcess(child))
}

fn find<'a>(hosts: &'a [HostStatus], id: &str) -> Option<&'a HostStatus> {
    hosts.iter().find(|h| h.info.id.as_str() == id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_killed_with_sigkill_is_reported_lost_within_three_heartbeats() -> Result<()> {
    let nats = tokio::task::spawn_blocking(NatsServer::start).await??;
    let dir = tempfile::tempdir()?;
    let log = dir.path().join("host.log");
    let lattice = Name::new("sigkill")?;
    let client = LatticeClient::connect(&NatsConfig::new([nats.url()]), lattice.clone()).await?;
    let mut events = client.events().await?;

    let mut host = spawn_host(&nats, lattice.as_str(), "victim", &log, &["--label", "role=victim"])?;
    let host_log = || std::fs::read_to_string(&log).unwrap_or_default();

    // The host joins and beats: a heartbeat event, and a fresh record with its labels.
    let joined = async {
        while let Some(event) = events.next().await {
            let event = event?;
            if event.host.as_str() == "victim" && matches!(event.data, EventData::HostHeartbeat(_)) {
                return Ok(());
            }
        }
        bail!("the event stream ended")
    };
    tokio::time::timeout(Duration::from_secs(30), joined)
        .await
        .with_context(|| format!("no heartbeat from the host process; its log:\n{}", host_log()))??;
    let hosts = client.hosts().await?;
    let status = find(&hosts, "victim").context("the host has no record")?;
    assert!(!status.lost, "{status:#?}");
    assert_eq!(status.info.heartbeat_ms, 300);
    assert_eq!(status.info.labels.get("role").map(String::as_str), Some("victim"));

    // SIGKILL: no `host.stopped`, no record removal; only the heartbeats stop.
    host.0.kill()?;
    let killed = Instant::now();
    host.0.wait()?;
    let deadline = 3 * HEARTBEAT + MARGIN;
    let lost = wait_for("the killed host to be reported lost", deadline, || async {
        let hosts = client.hosts().await.ok()?;
        find(&hosts, "victim").filter(|h| h.lost).cloned()
    })
    .await
    .with_context(|| format!("host log:\n{}", host_log()))?;
    let after = killed.elapsed();
    eprintln!(
        "reported lost {after:?} after SIGKILL ({} ms since its last heartbeat; deadline {deadline:?})",
        lost.since_heartbeat_ms
    );
    assert!(after <= deadline, "lost after {after:?}, deadline {deadline:?}");
    assert!(lost.since_heartbeat_ms > 3 * 300, "{lost:#?}");

    // It no longer answers, and it is still listed (as lost), not silently forgotten.
    assert!(client.ping(Duration::from_millis(300)).await?.is_empty());
    let hosts = client.hosts().await?;
    assert!(find(&hosts, "victim").is_some_and(|h| h.lost), "{hosts:#?}");
    Ok(())
}

/// Regression: with its NATS server gone, a host told to stop used to wait on the server (`cannot remove host
/// record: timed out`, then a flush that never returned) and was still running long after its grace period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_whose_nats_server_is_gone_still_stops_within_its_grace_period() -> Result<()> {
    /// Grace given to the host; it must have exited by then plus `SLACK` (signal delivery, process teardown,
    /// polling on a loaded 2-core machine). Before the fix it ran on for more than 30 s.
    const GRACE: Duration = Duration::from_secs(2);
    const SLACK: Duration = Duration::from_millis(1500);
    let mut nats = tokio::task::spawn_blocking(NatsServer::start).await??;
    let dir = tempfile::tempdir()?;
    let log = dir.path().join("host.log");
    let lattice = Name::new("unreachable")?;
    let client = LatticeClient::connect(&NatsConfig::new([nats.url()]), lattice.clone()).await?;
    let grace = format!("{}s", GRACE.as_secs());
    let mut host = spawn_host(&nats, lattice.as_str(), "stranded", &log, &["--grace", &grace])?;
    let host_log = || std::fs::read_to_string(&log).unwrap_or_default();
    wait_for("the host to join", Duration::from_secs(30), || async {
        let hosts = client.hosts().await.ok()?;
        find(&hosts, "stranded").map(drop)
    })
    .await
    .with_context(|| format!("host log:\n{}", host_log()))?;

    tokio::task::block_in_place(|| nats.stop())?;
    terminate(&host.0)?;
    let told = Instant::now();
    let deadline = GRACE + SLACK;
    let exited = wait_for("the host process to exit", deadline + Duration::from_secs(10), || {
        let exited = host.0.try_wait().ok().flatten();
        async move { exited }
    })
    .await
    .with_context(|| format!("host log:\n{}", host_log()))?;
    let took = told.elapsed();
    eprintln!("host exited {took:?} after SIGTERM with NATS down ({exited}); grace {GRACE:?}");
    assert!(took <= deadline, "the host took {took:?} to stop (grace {GRACE:?}); log:\n{}", host_log());
    assert!(exited.success(), "{exited}; log:\n{}", host_log());
    Ok(())
}
