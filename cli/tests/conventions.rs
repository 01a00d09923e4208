//! The CLI's conventions against a real nats-server and a `lattice host` process: connection flags after the
//! subcommand, contexts and their precedence, `-o json` results and errors with their exit codes, event kinds
//! spelled alike in text and JSON, and logging (filters, JSON lines, no colours off a terminal).

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};
use futures::StreamExt;
use lattice_core::subject::{Name, Subjects};
use lattice_test_harness::{NatsServer, wait_for};
use tempfile::TempDir;

const LATTICE: &str = "conventions";

/// A `lattice host` process, killed when dropped so none outlives the test.
struct HostProcess {
    child: Child,
    log: PathBuf,
}

impl HostProcess {
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

/// A scratch directory with its own config directory (so no context or key of the user's is read) and a NATS
/// server.
struct Env {
    dir: TempDir,
    nats: NatsServer,
}

impl Env {
    async fn new() -> Result<Env> {
        let nats = tokio::task::spawn_blocking(NatsServer::start).await??;
        let dir = tempfile::tempdir()?;
        std::fs::create_dir(dir.path().join("config"))?;
        Ok(Env { dir, nats })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `lattice <args>` with no connection settings in the environment: only flags and contexts apply.
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_lattice"));
        command
            .args(args)
            .current_dir(self.dir.path())
            .env("LATTICE_CONFIG_DIR", self.path("config"))
            .stdin(Stdio::null());
        for var in [
            "LATTICE_NATS",
            "LATTICE_NAME",
            "LATTICE_CONTEXT",
            "LATTICE_OPERATOR_KEY",
            "LATTICE_LOG",
            "LATTICE_LOG_FORMAT",
            "RUST_LOG",
            "NO_COLOR",
        ] {
            command.env_remove(var);
        }
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Runs and expects success; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "lattice {args:?} failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs and expects success; parses stdout as one JSON document.
    fn json(&self, args: &[&str]) -> serde_json::Value {
        let stdout = self.ok(args);
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("lattice {args:?}: {e}:\n{stdout}"))
    }

    /// Runs with `-o json`, expects exit code `exit` and `{"error": {"code": code, …}}` as the only stdout;
    /// returns the message.
    fn json_error(&self, args: &[&str], exit: i32, code: &str) -> String {
        let mut args = args.to_vec();
        args.extend_from_slice(&["-o", "json"]);
        let out = self.run(&args);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(exit),
            "lattice {args:?}: {stdout} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(stdout.lines().count(), 1, "one line: {stdout}");
        let doc: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(doc["error"]["code"], code, "{doc}");
        doc["error"]["message"].as_str().unwrap().to_owned()
    }

    /// Starts `lattice host` (its connection flags given after the verb) with `extra` flags.
    fn host(&self, id: &str, extra: &[&str]) -> Result<HostProcess> {
        let log = self.path(&format!("{id}.log"));
        let url = self.nats.url();
        let mut args = vec!["host", "--host-id", id, "--nats", url.as_str(), "--lattice", LATTICE];
        args.extend_from_slice(extra);
        let child = self.command(&args).stdout(Stdio::null()).stderr(std::fs::File::create(&log)?).spawn()?;
        Ok(HostProcess { child, log })
    }

    /// Waits until host `id` answers `lattice hosts`.
    async fn ready(&self, id: &str, host: &HostProcess) -> Result<()> {
        let url = self.nats.url();
        let args = ["hosts", "-o", "json", "--nats", url.as_str(), "--lattice", LATTICE];
        wait_for(&format!("host {id} to join"), Duration::from_secs(60), || async {
            let out = self.run(&args);
            String::from_utf8(out.stdout).ok().filter(|s| s.contains(&format!("\"{id}\"")))
        })
        .await
        .with_context(|| format!("host log:\n{}", host.log()))?;
        Ok(())
    }
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// A TCP port nothing listens on.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_flags_after_the_subcommand_json_everywhere_and_exit_codes() -> Result<()> {
    let env = Env::new().await?;
    let host = env.host("h1", &["--log-format", "json"])?;
    env.ready("h1", &host).await?;
    let url = env.nats.url();
    let at = |args: &[&'static str]| -> Vec<String> {
        let mut all: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        all.extend(["--nats".to_owned(), url.clone(), "--lattice".to_owned(), LATTICE.to_owned()]);
        all
    };

    // Flags after a nested subcommand (the example), and still before it.
    assert_eq!(env.json(&strs(&at(&["link", "list", "-o", "json"]))), serde_json::json!([]));
    let labels = env.json(&strs(&at(&["label", "put", "h1", "zone=a", "-o", "json"])));
    assert_eq!(labels["host"], "h1");
    assert_eq!(labels["labels"]["zone"], "a");
    let before = env.ok(&["label", "--nats", &url, "--lattice", LATTICE, "put", "h1", "zone=b"]);
    assert!(before.contains("zone=b"), "{before}");

    // Verbs that used to print text only.
    let stored =
        env.json(&strs(&at(&["link", "put", "a1", "keyvalue", "default", "--provider", "inmemory", "-o", "json"])));
    assert_eq!(stored, serde_json::json!({"actor": "a1", "link": "keyvalue:default=inmemory", "stored": true}));
    let deleted = env.json(&strs(&at(&["link", "del", "a1", "keyvalue", "default", "-o", "json"])));
    assert_eq!(deleted["deleted"], true);
    let route = env.json(&strs(&at(&["route", "put", "a1", "--path", "/v1", "-o", "json"])));
    assert_eq!(route, serde_json::json!({"host": null, "path": "/v1", "actor": "a1", "stored": true}));
    let provider =
        env.json(&strs(&at(&["provider", "start", "inmemory", "--host", "h1", "--name", "cache", "-o", "json"])));
    assert_eq!(provider, serde_json::json!({"name": "cache", "kind": "inmemory", "host": "h1"}));

    // Errors as JSON, each class with its exit code.
    let message = env.json_error(&strs(&at(&["stop", "nosuch"])), 3, "not_found");
    assert!(message.contains("no host in lattice `conventions` runs actor `nosuch`"), "{message}");
    env.json_error(&strs(&at(&["stop", "nosuch", "--host", "h1"])), 3, "not_found");
    env.json_error(&strs(&at(&["link", "del", "a1", "keyvalue", "default"])), 3, "not_found");
    let message = env.json_error(&strs(&at(&["start", "a1", "--path", "a1.wasm", "--host", "h1"])), 4, "refused");
    assert!(message.contains("--artifact-dir"), "{message}");
    let nowhere = format!("nats://127.0.0.1:{}", closed_port());
    let message = env.json_error(&["hosts", "--nats", &nowhere], 6, "unavailable");
    assert!(message.contains("cannot connect to NATS"), "{message}");
    // Text errors: one line on stderr, same exit code.
    let out = env.run(&["hosts", "--nats", &nowhere]);
    assert_eq!(out.status.code(), Some(6));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("error: cannot connect to NATS"));

    // Something listens on the actor's subject but never answers: a timeout.
    let nats = async_nats::connect(url.as_str()).await?;
    let mut silent = nats.subscribe(Subjects::new(Name::new(LATTICE)?).invoke(&Name::new("silent")?)).await?;
    nats.flush().await?;
    let waiting = tokio::spawn(async move { silent.next().await });
    let message = env.json_error(&strs(&at(&["call", "silent", "hi", "--timeout", "300ms"])), 5, "timeout");
    assert!(message.contains("timed out"), "{message}");
    assert!(waiting.await?.is_some(), "the call reached the subscriber");

    // Events: one compact JSON document per line, kinds spelled as in text and in their subjects.
    let events = env.ok(&strs(&at(&["events", "-o", "json"])));
    let docs: Vec<serde_json::Value> = events.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let started = docs.iter().find(|d| d["kind"] == "host.started").context("a host.started event")?;
    assert_eq!(started["host"], "h1");
    assert_eq!(started["data"]["id"], "h1", "{started}");
    assert!(started["time"].as_str().unwrap().ends_with('Z'), "{started}");
    assert!(!events.contains("HostStarted"), "no Rust variant names: {events}");
    let text = env.ok(&strs(&at(&["events"])));
    assert!(text.lines().any(|l| l.contains(" host.started ") && l.contains("h1")), "{text}");

    // The host logs JSON lines only, for log shippers; the final `Ctrl-C` notice among them.
    let log = host.log();
    assert!(!log.is_empty());
    for line in log.lines() {
        let line: serde_json::Value = serde_json::from_str(line).with_context(|| format!("not JSON: {line}"))?;
        assert!(line["level"].is_string() && line["fields"].is_object(), "{line}");
    }
    assert!(log.contains("host h1 joined lattice `conventions`"), "{log}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contexts_fill_what_flags_and_environment_leave_unset() -> Result<()> {
    let env = Env::new().await?;
    let host = env.host("ctx-host", &[])?;
    env.ready("ctx-host", &host).await?;
    let url = env.nats.url();
    let ids = |out: &str| -> Vec<String> {
        let hosts: serde_json::Value = serde_json::from_str(out).unwrap();
        hosts.as_array().unwrap().iter().map(|h| h["id"].as_str().unwrap().to_owned()).collect()
    };

    env.ok(&["ctx", "set", "here", "--nats", &url, "--lattice", LATTICE, "--use"]);
    // The current context alone reaches the host.
    assert_eq!(ids(&env.ok(&["hosts", "-o", "json"])), ["ctx-host"]);
    assert_eq!(env.json(&["link", "list", "-o", "json"]), serde_json::json!([]));
    // A flag wins over the context; so does the environment.
    assert_eq!(ids(&env.ok(&["hosts", "-o", "json", "--lattice", "elsewhere"])), Vec::<String>::new());
    let out = env.command(&["hosts", "-o", "json"]).env("LATTICE_NAME", "elsewhere").output()?;
    assert_eq!(ids(&String::from_utf8(out.stdout)?), Vec::<String>::new());
    let nowhere = format!("nats://127.0.0.1:{}", closed_port());
    let out = env.command(&["hosts"]).env("LATTICE_NATS", &nowhere).output()?;
    assert_eq!(out.status.code(), Some(6), "{}", String::from_utf8_lossy(&out.stderr));

    // --context (or LATTICE_CONTEXT) picks another one for one command.
    env.ok(&["ctx", "set", "broken", "--nats", &nowhere]);
    let out = env.run(&["hosts", "--context", "broken"]);
    assert_eq!(out.status.code(), Some(6));
    let out = env.command(&["hosts", "-o", "json"]).env("LATTICE_CONTEXT", "here").output()?;
    assert_eq!(ids(&String::from_utf8(out.stdout)?), ["ctx-host"]);
    env.json_error(&["hosts", "--context", "missing"], 3, "not_found");

    // A context's operator key signs changes: a key of the wrong kind is refused before connecting.
    env.ok(&["keys", "gen", "--kind", "issuer", "--out", "issuer.seed"]);
    let seed = env.path("issuer.seed");
    env.ok(&["ctx", "set", "here", "--operator-key", seed.to_str().unwrap()]);
    let out = env.run(&["label", "put", "ctx-host", "zone=x"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected an operator key"), "{out:?}");
    // …and the flag wins over it.
    env.ok(&["keys", "gen", "--kind", "operator", "--out", "op.seed"]);
    env.ok(&["label", "put", "ctx-host", "zone=x", "--operator-key", "op.seed"]);

    // Contexts never steer `lattice host`: without flags it would try the default NATS, not the context's.
    let help = env.ok(&["host", "--help"]);
    assert!(!help.contains("--context"), "{help}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logging_filters_raise_lattice_only_and_never_colour_a_pipe() -> Result<()> {
    let env = Env::new().await?;
    let url = env.nats.url();
    let hosts = ["hosts", "--nats", url.as_str(), "--lattice", LATTICE];
    let stderr = |out: Output| String::from_utf8(out.stderr).unwrap();

    // -vv raises lattice's crates only: the NATS client's debug lines stay out.
    let mut verbose = hosts.to_vec();
    verbose.push("-vv");
    let quiet = stderr(env.run(&verbose));
    assert!(!quiet.contains("async_nats"), "{quiet}");
    // RUST_LOG is honoured; LATTICE_LOG wins over it.
    let out = env.command(&hosts).env("RUST_LOG", "async_nats=debug").output()?;
    let logged = stderr(out);
    assert!(logged.contains("async_nats"), "{logged}");
    assert!(!logged.contains('\u{1b}'), "no colours on a pipe: {logged:?}");
    let out = env.command(&hosts).env("RUST_LOG", "async_nats=debug").env("LATTICE_LOG", "warn").output()?;
    let logged = stderr(out);
    assert!(!logged.contains("async_nats"), "{logged}");
    // An invalid filter is reported, not fatal.
    let out = env.command(&hosts).env("LATTICE_LOG", "=[").output()?;
    assert!(out.status.success());
    assert!(stderr(out).contains("ignoring LATTICE_LOG"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_uses_the_lattice_and_server_its_config_file_sets() -> Result<()> {
    let env = Env::new().await?;
    let url = env.nats.url();
    std::fs::write(env.path("host.toml"), format!("lattice = \"from-file\"\nnats = [\"{url}\"]\n"))?;
    let log = env.path("up.log");
    let child = env
        .command(&["up", "--config", "host.toml", "--host-id", "up1"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .spawn()?;
    let up = HostProcess { child, log };
    let hint = wait_for("`lattice up` to print its lattice", Duration::from_secs(60), || async {
        let log = up.log();
        log.contains("joined lattice").then_some(log)
    })
    .await
    .with_context(|| format!("up log:\n{}", up.log()))?;
    assert!(hint.contains(&format!("using the NATS server at {url}")), "not a server of its own: {hint}");
    assert!(hint.contains(&format!("lattice `from-file` on {url}")), "{hint}");
    assert!(hint.contains("--lattice from-file"), "{hint}");
    assert!(hint.contains("host up1 joined lattice `from-file`"), "{hint}");
    Ok(())
}
