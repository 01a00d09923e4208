//! The provider and link verbs through the `lattice` binary: a host process configured with
//! `provider_allow` in its TOML file refuses other backend URLs, `link put` refuses a provider nobody serves
//! unless `--force`, `provider restart` refuses a provider that has not failed, and an invalid
//! `--provider-allow` stops the host before it joins. Real `nats-server` and `redis-server`.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};
use lattice_core::subject::Name;
use lattice_host::lattice::{LatticeClient, NatsConfig};
use lattice_test_harness::{NatsServer, RedisServer, wait_for};

/// Kills the host process if the test ends early, so none outlives the test.
struct HostProcess(Child);

impl Drop for HostProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `lattice <args>` against lattice `provcli` on `nats` (given through the environment, as an operator might).
fn lattice(dir: &Path, nats: &str, args: &[&str]) -> Result<Output> {
    Ok(Command::new(env!("CARGO_BIN_EXE_lattice"))
        .args(args)
        .current_dir(dir)
        .env("LATTICE_NATS", nats)
        .env("LATTICE_NAME", "provcli")
        .env("LATTICE_CONFIG_DIR", dir.join("config"))
        .env("LATTICE_CACHE_DIR", dir.join("cache"))
        .env_remove("LATTICE_PROVIDER_ALLOW")
        .env_remove("LATTICE_LOG")
        .output()?)
}

/// The one `error:` line of a command that must exit with code 1.
fn error_line(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stdout {}\nstderr {stderr}", String::from_utf8_lossy(&out.stdout));
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "one error line expected:\n{stderr}");
    errors[0].to_owned()
}

fn stdout_ok(out: &Output) -> String {
    assert!(out.status.success(), "failed ({}):\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_allow_from_the_host_file_link_put_force_and_provider_restart() -> Result<()> {
    let nats = tokio::task::spawn_blocking(NatsServer::start).await??;
    let redis = tokio::task::spawn_blocking(RedisServer::start).await??;
    let dir = tempfile::tempdir()?;
    let dir = dir.path();
    std::fs::create_dir(dir.join("config"))?;
    std::fs::write(dir.join("host.toml"), "provider_allow = [\"redis://127.0.0.1:*\"]\n")?;
    let url = nats.url();
    let run = |args: &[&str]| lattice(dir, &url, args);

    // A bad pattern stops the host at once, naming the flag.
    let bad = run(&["host", "--provider-allow", "redis://127.0.0.1/0"])?;
    assert!(error_line(&bad).contains("--provider-allow: invalid url pattern"), "{bad:?}");

    let log = std::fs::File::create(dir.join("host.log"))?;
    let _host = HostProcess(
        Command::new(env!("CARGO_BIN_EXE_lattice"))
            .args(["host", "--host-id", "h1", "--config"])
            .arg(dir.join("host.toml"))
            .current_dir(dir)
            .env("LATTICE_NATS", &url)
            .env("LATTICE_NAME", "provcli")
            .env("LATTICE_CONFIG_DIR", dir.join("config"))
            .env("LATTICE_CACHE_DIR", dir.join("cache"))
            .env_remove("LATTICE_PROVIDER_ALLOW")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("spawning `lattice host`")?,
    );
    let client = LatticeClient::connect(&NatsConfig::new([url.clone()]), Name::new("provcli")?).await?;
    wait_for("the host to answer", Duration::from_secs(30), || async {
        client.ping(Duration::from_millis(200)).await.ok().filter(|hosts| !hosts.is_empty())
    })
    .await
    .with_context(|| std::fs::read_to_string(dir.join("host.log")).unwrap_or_default())?;

    let refused = run(&["provider", "start", "redis", "--host", "h1", "--config", "url=redis://10.0.0.5:6379"])?;
    let line = error_line(&refused);
    assert!(
        line.contains("backend url redis://10.0.0.5:6379 is not allowed on host h1: add a --provider-allow pattern"),
        "{line}"
    );
    let allowed = format!("url={}", redis.url());
    let started = run(&["provider", "start", "redis", "--host", "h1", "--name", "cache", "--config", &allowed])?;
    assert!(stdout_ok(&started).contains("started provider cache (redis) on host h1"));
    let shadow = run(&["provider", "start", "inmemory", "--host", "h1"])?;
    assert!(error_line(&shadow).contains("provider name `inmemory` is built into every host"), "{shadow:?}");

    let restart = run(&["provider", "restart", "cache", "--host", "h1"])?;
    assert!(error_line(&restart).contains("has not failed"), "{restart:?}");

    let put = ["link", "put", "kv-counter", "keyvalue", "default", "--provider", "ghost"];
    let line = error_line(&run(&put)?);
    assert!(line.contains("serves keyvalue provider `ghost`") && line.contains("--force"), "{line}");
    assert!(stdout_ok(&run(&[&put[..], &["--force"]].concat())?).contains("stored"));
    let served = run(&["link", "put", "kv-counter", "keyvalue", "b", "--provider", "cache"])?;
    assert!(stdout_ok(&served).contains("stored"));
    Ok(())
}
