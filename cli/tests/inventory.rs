//! Inventory verbs (`artifact list/rm`, `provider list`, `link get`) and the connection errors a person can act
//! on (no NATS server, a server without JetStream), through the `lattice` binary against a real `nats-server`
//! and a `lattice host` process.

use std::ffi::OsStr;
use std::fmt::Debug;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use lattice_core::subject::Name;
use lattice_host::lattice::{LatticeClient, NatsConfig};
use lattice_test_harness::{NatsServer, wait_for};

/// Kills the host process if the test ends early, so none outlives the test.
struct HostProcess(Child);

impl Drop for HostProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `lattice` with `args`.
fn lattice<S: AsRef<OsStr> + Debug>(args: &[S]) -> Result<Output> {
    let config = tempfile::tempdir()?;
    Command::new(env!("CARGO_BIN_EXE_lattice"))
        .args(args)
        .env("LATTICE_CONFIG_DIR", config.path())
        .env("LATTICE_CACHE_DIR", config.path().join("cache"))
        .env_remove("LATTICE_LOG")
        .env_remove("LATTICE_NATS")
        .env_remove("LATTICE_NAME")
        .output()
        .context("running lattice")
}

/// Runs `lattice` and expects success; returns stdout.
fn ok<S: AsRef<OsStr> + Debug>(args: &[S]) -> Result<String> {
    let out = lattice(args)?;
    if !out.status.success() {
        bail!("lattice {args:?} failed ({}):\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8(out.stdout)?)
}

/// Runs `lattice` and expects it to fail with exactly one `error:` line; returns that line.
fn fails<S: AsRef<OsStr> + Debug>(args: &[S]) -> Result<String> {
    let out = lattice(args)?;
    let stderr = String::from_utf8(out.stderr)?;
    if out.status.success() {
        bail!("lattice {args:?} succeeded:\n{}", String::from_utf8_lossy(&out.stdout));
    }
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    match errors[..] {
        [line] => Ok(line.to_owned()),
        _ => bail!("one error line expected from lattice {args:?}:\n{stderr}"),
    }
}

/// `args` with the connection flags `common` after the verb's group and before its subcommand.
fn with_flags(common: &[&str], args: &[&str]) -> Vec<String> {
    [&args[..1], common, &args[1..]].concat().into_iter().map(str::to_owned).collect()
}

fn json(text: &str) -> Result<serde_json::Value> {
    serde_json::from_str(text).with_context(|| format!("not JSON: {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn artifacts_are_listed_and_removed_by_name_or_digest() -> Result<()> {
    let nats = tokio::task::spawn_blocking(NatsServer::start).await??;
    let url = nats.url();
    let client = LatticeClient::connect(&NatsConfig::new([url.clone()]), Name::new("inv-artifacts")?).await?;
    let common = ["--nats", url.as_str(), "--lattice", "inv-artifacts"];
    let with = |args: &[&str]| with_flags(&common, args);

    // Nothing pushed yet: an empty list, not an error.
    assert_eq!(json(&ok(&with(&["artifact", "list", "-o", "json"]))?)?, serde_json::json!([]));

    let bytes = std::fs::read(lattice_test_actors::KV_COUNTER)?;
    let first = client.push("counter", bytes.clone().into(), |_| {}).await?;
    let second = client.push("counter-copy", bytes.into(), |_| {}).await?;
    client.push("other", bytes::Bytes::from_static(b"not the same bytes"), |_| {}).await?;
    assert_eq!(first.digest, second.digest);

    let listed = json(&ok(&with(&["artifact", "list", "-o", "json"]))?)?;
    let names: Vec<&str> = listed.as_array().context("a list")?.iter().filter_map(|a| a["name"].as_str()).collect();
    assert_eq!(names, ["counter", "counter-copy", "other"]);
    assert_eq!(listed[0]["digest"], first.digest.as_str());
    assert_eq!(listed[0]["size"], first.size);
    assert!(listed[0]["modified_ms"].as_u64().is_some_and(|ms| ms > 0), "{listed:#}");
    let text = ok(&with(&["artifact", "list"]))?;
    assert!(text.contains("counter-copy") && text.contains(&first.digest), "{text}");

    // By name: only that one.
    let removed = json(&ok(&with(&["artifact", "rm", "other", "-o", "json"]))?)?;
    assert_eq!(removed[0]["name"], "other");
    // By digest prefix: every artifact with those bytes.
    let out = ok(&with(&["artifact", "rm", &first.digest[..12]]))?;
    assert!(out.contains("removed artifact counter (") && out.contains("removed artifact counter-copy ("), "{out}");
    assert_eq!(json(&ok(&with(&["artifact", "list", "-o", "json"]))?)?, serde_json::json!([]));

    // Nothing matches: one line naming what was asked for; a short prefix is never taken for a digest.
    let error = fails(&with(&["artifact", "rm", "counter"]))?;
    assert!(error.contains("no artifact named `counter`") && error.contains("lattice artifact list"), "{error}");
    let error = fails(&with(&["artifact", "rm", &first.digest[..4]]))?;
    assert!(error.contains("no artifact named"), "{error}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn providers_are_listed_from_the_hosts_and_links_of_one_actor_are_shown() -> Result<()> {
    let nats = tokio::task::spawn_blocking(NatsServer::start).await??;
    let url = nats.url();
    let client = LatticeClient::connect(&NatsConfig::new([url.clone()]), Name::new("inv-providers")?).await?;
    let dir = tempfile::tempdir()?;
    let log = dir.path().join("host.log");
    let _host = HostProcess(
        Command::new(env!("CARGO_BIN_EXE_lattice"))
            .args(["host", "--nats", &url, "--lattice", "inv-providers", "--host-id", "h1"])
            .env("LATTICE_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .context("spawning `lattice host`")?,
    );
    wait_for("the host to answer", Duration::from_secs(30), || async {
        client.ping(Duration::from_millis(200)).await.ok().filter(|hosts| !hosts.is_empty())
    })
    .await
    .with_context(|| std::fs::read_to_string(&log).unwrap_or_default())?;
    let common = ["--nats", url.as_str(), "--lattice", "inv-providers"];
    let with = |args: &[&str]| with_flags(&common, args);

    ok(&with(&["provider", "start", "inmemory", "--host", "h1", "--name", "cache"]))?;
    let listed = json(&ok(&with(&["provider", "list", "-o", "json"]))?)?;
    let rows: Vec<(String, String, bool)> = listed
        .as_array()
        .context("a list")?
        .iter()
        .map(|p| {
            assert_eq!(p["host"], "h1", "{p}");
            (
                p["interface"].as_str().unwrap_or_default().to_owned(),
                p["name"].as_str().unwrap_or_default().to_owned(),
                p["builtin"] == true,
            )
        })
        .collect();
    assert!(rows.contains(&("keyvalue".into(), "cache".into(), false)), "{listed:#}");
    assert!(rows.contains(&("keyvalue".into(), "inmemory".into(), true)), "{listed:#}");
    assert!(rows.contains(&("messaging".into(), "nats".into(), true)), "{listed:#}");
    let text = ok(&with(&["provider", "list"]))?;
    assert!(text.contains("cache") && text.contains("provider start") && text.contains("built in"), "{text}");

    // Stopped, it is gone from the list.
    ok(&with(&["provider", "stop", "cache", "--host", "h1"]))?;
    let listed = ok(&with(&["provider", "list", "-o", "json"]))?;
    assert!(!listed.contains("\"cache\""), "{listed}");

    // Links of one actor, not the others'.
    ok(&with(&["link", "put", "counter", "keyvalue", "default", "--provider", "inmemory"]))?;
    ok(&with(&["link", "put", "counter", "messaging", "events", "--provider", "nats", "--config", "subscribe=ev.>"]))?;
    ok(&with(&["link", "put", "other", "keyvalue", "default", "--provider", "inmemory"]))?;
    let links = json(&ok(&with(&["link", "get", "counter", "-o", "json"]))?)?;
    let texts: Vec<&str> = links.as_array().context("a list")?.iter().filter_map(|l| l["link"].as_str()).collect();
    assert_eq!(texts.len(), 2, "{links:#}");
    assert!(texts.contains(&"keyvalue:default=inmemory"), "{links:#}");
    assert!(links.as_array().context("a list")?.iter().all(|l| l["actor"] == "counter"), "{links:#}");
    let text = ok(&with(&["link", "get", "counter"]))?;
    assert!(text.contains("keyvalue:default=inmemory") && !text.contains("other"), "{text}");
    assert_eq!(json(&ok(&with(&["link", "get", "nobody", "-o", "json"]))?)?, serde_json::json!([]));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_nats_server_says_the_cause_once_and_how_to_start_one() -> Result<()> {
    // A port where a server just was and no longer is: the connection is refused.
    let url = {
        let nats = tokio::task::spawn_blocking(NatsServer::start).await??;
        nats.url()
    };
    let error = fails(&["hosts", "--nats", &url])?;
    assert!(error.contains(&format!("cannot connect to NATS at {url}")), "{error}");
    assert!(error.contains("start one with `lattice up`"), "{error}");
    // The cause once, not once per layer of the error chain.
    let cause = "Connection refused";
    assert_eq!(error.matches(cause).count(), 1, "{error}");
    assert!(!error.contains("IO error"), "{error}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_jetstream_is_named_not_hidden_behind_no_hosts() -> Result<()> {
    let nats = tokio::task::spawn_blocking(|| NatsServer::builder().jetstream(false).start()).await??;
    let url = nats.url();
    for args in [
        &["hosts", "--nats", url.as_str()][..],
        &["link", "--nats", url.as_str(), "list"],
        &["artifact", "--nats", url.as_str(), "list"],
    ] {
        let error = fails(args)?;
        assert!(error.contains("without JetStream") && error.contains("`-js`"), "{args:?}: {error}");
    }
    // A host does not start there, and says why.
    let error = fails(&["host", "--nats", url.as_str(), "--host-id", "h1"])?;
    assert!(error.contains("without JetStream") && error.contains("`-js`"), "{error}");
    Ok(())
}
