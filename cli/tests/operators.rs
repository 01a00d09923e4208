//! `lattice up` trusts the development operator, and the plain control verbs sign with it: the demo works
//! unchanged, while a machine without that operator key (or with another one) is refused.
//!
//! A real `nats-server` (from `lattice_test_harness`); `lattice up` runs as a separate process pointed at it;
//! every command has its own config and cache directories, so the user's keys are never touched.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use lattice_core::subject::Name;
use lattice_host::lattice::{LatticeClient, NatsConfig};
use lattice_test_harness::{NatsServer, wait_for};

/// Kills the `lattice up` process if the test ends early, so none outlives the test.
struct UpProcess(Child);

impl Drop for UpProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Machine {
    config: PathBuf,
    cache: PathBuf,
    cwd: PathBuf,
    nats: String,
}

impl Machine {
    fn new(root: &Path, name: &str, nats: &NatsServer) -> Machine {
        let config = root.join(name).join("config");
        std::fs::create_dir_all(&config).unwrap();
        Machine { config, cache: root.join(name).join("cache"), cwd: root.to_owned(), nats: nats.url() }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_lattice"));
        command
            .args(args)
            .current_dir(&self.cwd)
            .env("LATTICE_CONFIG_DIR", &self.config)
            .env("LATTICE_CACHE_DIR", &self.cache)
            .env("LATTICE_NATS", &self.nats)
            .env("LATTICE_NAME", "demo")
            .env_remove("LATTICE_OPERATOR_KEY")
            .env_remove("LATTICE_TRUSTED_OPERATORS")
            .env_remove("LATTICE_TRUSTED_ISSUERS")
            .env_remove("LATTICE_LOG");
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "lattice {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    /// Expects exit code 4 (refused) and one `error:` line; returns it.
    fn refused(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(out.status.code(), Some(4), "lattice {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        let stderr = String::from_utf8(out.stderr).unwrap();
        let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
        assert_eq!(errors.len(), 1, "one error line expected:\n{stderr}");
        errors[0].to_owned()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lattice_up_trusts_the_development_operator_the_plain_verbs_sign_with() {
    let nats = tokio::task::spawn_blocking(NatsServer::start).await.unwrap().unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(lattice_test_actors::KV_COUNTER, dir.path().join("kv_counter.wasm")).unwrap();
    let dev = Machine::new(dir.path(), "dev", &nats);
    let other = Machine::new(dir.path(), "other", &nats);

    dev.ok(&[
        "claims",
        "sign",
        "kv_counter.wasm",
        "--issuer",
        "dev",
        "--name",
        "kv-counter",
        "--version",
        "0.1.0",
        "--cap",
        "wasi:keyvalue",
    ]);
    let log = std::fs::File::create(dir.path().join("up.log")).unwrap();
    let _up = UpProcess(
        dev.command(&["up", "--trusted-issuer", "dev", "--host-id", "dev-host"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let client = LatticeClient::connect(&NatsConfig::new([nats.url()]), Name::new("demo").unwrap()).await.unwrap();
    let up_log = || std::fs::read_to_string(dir.path().join("up.log")).unwrap_or_default();
    wait_for("`lattice up` to start its host", Duration::from_secs(60), || async {
        client.ping(Duration::from_millis(200)).await.ok().filter(|hosts| !hosts.is_empty())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}; lattice up log:\n{}", up_log()));
    assert!(dev.config.join("dev-operator.seed").is_file(), "`lattice up` creates the development operator");
    let dev_operator = dev.ok(&["keys", "dev", "--kind", "operator"]);
    assert!(dev_operator.trim().starts_with('O'), "{dev_operator}");

    // The demo, unchanged: push, start with a link, call.
    dev.ok(&["push", "kv_counter.signed.wasm", "--name", "kv-counter"]);
    let started = dev.ok(&["start", "kv-counter", "--link", "keyvalue:default=inmemory"]);
    assert!(started.contains("started kv-counter on host dev-host"), "{started}");
    assert_eq!(dev.ok(&["call", "kv-counter", "visits"]).trim(), "1");
    dev.ok(&["label", "put", "dev-host", "zone=lab"]);

    // Another machine has no development operator: reads work, changes are refused as unsigned.
    let inventory = other.ok(&["inventory", "dev-host"]);
    assert!(inventory.contains("kv-counter"), "{inventory}");
    let error = other.refused(&["label", "put", "dev-host", "zone=elsewhere"]);
    assert!(error.contains("unsigned"), "{error}");
    let error = other.refused(&["stop", "kv-counter"]);
    assert!(error.contains("unsigned"), "{error}");
    // Its own operator key is not trusted either.
    other.ok(&["keys", "gen", "--kind", "operator", "--out", "other/op.seed"]);
    let error = other.refused(&["label", "put", "dev-host", "zone=elsewhere", "--operator-key", "other/op.seed"]);
    assert!(error.contains("untrusted operator"), "{error}");
    assert_eq!(dev.ok(&["call", "kv-counter", "visits"]).trim(), "2");

    // With the development operator's seed the other machine may change things.
    let seed = dev.config.join("dev-operator.seed");
    other.ok(&["label", "put", "dev-host", "zone=shared", "--operator-key", seed.to_str().unwrap()]);
    let labels = client.inventory(&Name::new("dev-host").unwrap()).await.unwrap().labels;
    assert_eq!(labels.get("zone").map(String::as_str), Some("shared"));
    dev.ok(&["stop", "kv-counter"]);
}

/// Host keys and credentials from the command line: a host whose credential does not fit refuses to start with
/// one line; one that fits joins; `lattice hosts --trusted-operator` lists only hosts that prove who they are and
/// says how many records it ignored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_run_only_with_a_fitting_credential_and_the_cli_ignores_forged_host_records() {
    let nats = tokio::task::spawn_blocking(NatsServer::start).await.unwrap().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ops = Machine::new(dir.path(), "ops", &nats);
    let host_key = ops.ok(&["keys", "gen", "--kind", "host", "--out", "ops/edge.nk"]);
    let host_key = host_key.lines().last().unwrap().trim().to_owned();
    assert!(host_key.starts_with('N'), "{host_key}");
    let operator = ops.ok(&["keys", "gen", "--kind", "operator", "--out", "ops/op.seed"]);
    let operator = operator.lines().last().unwrap().trim().to_owned();
    let issued = ops.ok(&[
        "keys",
        "host-credential",
        "--host-key-public",
        &host_key,
        "--id",
        "edge-1",
        "--lattice",
        "demo",
        "--label",
        "zone=eu",
        "--expires",
        "1h",
        "--operator-key",
        "ops/op.seed",
        "--out",
        "ops/edge-1.credential",
    ]);
    assert!(issued.contains("edge-1"), "{issued}");
    let host = |label: &str| {
        let args = [
            "host",
            "--host-id",
            "edge-1",
            "--host-key",
            "ops/edge.nk",
            "--host-credential",
            "ops/edge-1.credential",
            "--trusted-operator",
            operator.as_str(),
            "--label",
            label,
        ];
        args.map(str::to_owned)
    };
    let refused = host("zone=us");
    let error = ops.refused(&refused.each_ref().map(String::as_str));
    assert!(error.contains("does not allow label `zone=us`"), "{error}");

    let log = std::fs::File::create(dir.path().join("host.log")).unwrap();
    let fitting = host("zone=eu");
    let _host = UpProcess(
        ops.command(&fitting.each_ref().map(String::as_str))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let client = LatticeClient::connect(&NatsConfig::new([nats.url()]), Name::new("demo").unwrap()).await.unwrap();
    let host_log = || std::fs::read_to_string(dir.path().join("host.log")).unwrap_or_default();
    wait_for("the host to join", Duration::from_secs(60), || async {
        client.hosts().await.ok().filter(|hosts| !hosts.is_empty())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}; host log:\n{}", host_log()));

    // A forged record of a host that does not exist.
    let mut ghost = client.hosts().await.unwrap().remove(0).info;
    ghost.id = Name::new("ghost").unwrap();
    let js = async_nats::jetstream::new(client.nats().clone());
    let bucket = js.get_key_value(client.subjects().hosts_bucket()).await.unwrap();
    bucket.put("ghost", lattice_core::wire::encode(&ghost).into()).await.unwrap();

    let out = ops.run(&["hosts", "--trusted-operator", &operator]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (stdout, stderr) = (String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap());
    assert!(stdout.contains("edge-1") && !stdout.contains("ghost"), "{stdout}");
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.contains("ignored 1 host record")).collect();
    assert_eq!(warnings.len(), 1, "one warning line: {stderr}");
    // Without trusting the operator, nothing is checked.
    assert!(ops.ok(&["hosts"]).contains("ghost"));
}
