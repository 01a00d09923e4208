//! The workflow verbs through the `lattice` binary, against `lattice host` processes on a real nats-server:
//! `publish` (durable, `--count` as a load generator, errors), `dlq list|replay` errors, and `call --retry`
//! surviving the SIGKILL of the host that was handling the call.

mod apps_support;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use apps_support::Lattice;
use lattice_core::subject::Name;
use lattice_test_harness::wait_for;

async fn count(lattice: &Lattice, key: &str) -> Option<u64> {
    let reply = lattice
        .client
        .call(&Name::new("probe").ok()?, None, format!("count {key}").into(), Duration::from_secs(5), None)
        .await
        .ok()?;
    String::from_utf8(reply.data?.to_vec()).ok()?.trim().parse().ok()
}

fn start_probe(lattice: &Lattice, host: &str, links: &[&str]) -> Result<()> {
    let mut args = vec!["start", "probe", "--path", lattice_test_actors::WORKFLOW_PROBE, "--host", host];
    for link in links {
        args.extend(["--link", link]);
    }
    lattice.cli_ok(&args)?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_feeds_an_at_least_once_link_and_refuses_what_no_stream_keeps() -> Result<()> {
    let mut lattice = Lattice::new("cli-publish").await?;
    lattice.spawn("h1", &["--artifact-dir", "/"])?;
    lattice.ready(1).await?;
    start_probe(
        &lattice,
        "h1",
        &["keyvalue:default=inmemory", "messaging:jobs=nats,subscribe=jobs.cli,delivery=at-least-once"],
    )?;

    let out = lattice.cli_ok(&["publish", "jobs.cli", "k 0", "--msg-id", "m-{n}", "--count", "5"])?;
    ensure!(out.contains("published 5 messages to jobs.cli"), "{out}");
    // The same ids again: duplicates the stream drops.
    let out = lattice.cli_ok(&["publish", "jobs.cli", "k 0", "--msg-id", "m-{n}", "--count", "5", "-o", "json"])?;
    let json: serde_json::Value = serde_json::from_str(&out)?;
    ensure!(json["duplicates"] == 5, "{json}");
    wait_for("5 jobs counted", Duration::from_secs(20), || async { (count(&lattice, "k").await? >= 5).then_some(()) })
        .await?;
    ensure!(count(&lattice, "k").await == Some(5), "counted once each");

    for (args, expected) in [
        (vec!["publish", "nothing.here", "x"], "no stream captures `nothing.here`"),
        (vec!["publish", "lattice.cli-publish.ctl.ping", "x"], "reserved"),
        (vec!["publish", "jobs.*", "x"], "wildcards"),
        (vec!["dlq", "replay", "probe", "--seq", "99"], "no dead letter 99 for actor `probe`"),
    ] {
        let output = lattice.cli(&args)?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        ensure!(!output.status.success(), "{args:?} succeeded");
        ensure!(stderr.contains(expected) && stderr.lines().count() == 1, "{args:?}: {stderr}");
    }
    ensure!(lattice.cli_ok(&["dlq", "list"])?.contains("no dead letters"), "empty dead letters");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_retry_survives_the_kill_of_the_host_handling_the_call_and_an_id_applies_once() -> Result<()> {
    let mut lattice = Lattice::new("cli-retry").await?;
    for host in ["h1", "h2", "store"] {
        lattice.spawn(host, &["--artifact-dir", "/"])?;
    }
    lattice.ready(3).await?;
    // The counts live on a host that stays up.
    lattice.client.start_provider(&Name::new("store")?, "shared", "inmemory", BTreeMap::new()).await?;
    start_probe(&lattice, "h1", &["keyvalue:default=shared"])?;

    // The same id twice: one effect.
    for _ in 0..2 {
        ensure!(lattice.cli_ok(&["call", "probe", "d 0", "--msg-id", "once"])?.trim() == "ok", "reply");
    }
    ensure!(count(&lattice, "d").await == Some(1), "an id applies once");

    // A slow call to h1, which dies mid-call; the retry reaches the replica started on h2.
    let call = Command::new(env!("CARGO_BIN_EXE_lattice"))
        .args(["call", "probe", "r 0 1500", "--retry", "10", "--timeout", "3s"])
        .env("LATTICE_NATS", lattice.nats.url())
        .env("LATTICE_NAME", lattice.name.as_str())
        .env("HOME", lattice.dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("spawning lattice call")?;
    let attempts = || async {
        let reply = lattice
            .client
            .call(&Name::new("probe").ok()?, None, "attempts r".into(), Duration::from_secs(5), None)
            .await
            .ok()?;
        let n: u64 = String::from_utf8(reply.data?.to_vec()).ok()?.trim().parse().ok()?;
        (n >= 1).then_some(())
    };
    wait_for("the call to start on h1", Duration::from_secs(20), attempts).await?;
    lattice.host("h1")?.kill()?;
    start_probe(&lattice, "h2", &["keyvalue:default=shared"])?;
    let output = tokio::task::spawn_blocking(move || call.wait_with_output()).await??;
    let stdout = String::from_utf8_lossy(&output.stdout);
    ensure!(output.status.success(), "call failed: {stdout} {}", String::from_utf8_lossy(&output.stderr));
    ensure!(stdout.trim() == "ok", "{stdout}");
    ensure!(count(&lattice, "r").await == Some(1), "applied once");
    Ok(())
}
