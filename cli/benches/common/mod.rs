//! What the `serving` and `density` benches share: a nats-server, a `lattice host` child process driven by the
//! `lattice` CLI, signed components, and the roles this bench executable plays when it re-executes itself
//! (`--role echo|kv-echo|load`), so the floors and the load client are processes of their own.
//!
//! Roles (the method of `shared/bench/natsbench`):
//! - `--role echo URL SUBJECT`: a native async-nats responder answering each request with its payload.
//! - `--role kv-echo URL SUBJECT`: the same, doing kv-counter's work per call: increment the counter named by
//!   the trimmed payload (`counter` when empty) in a `HashMap` behind a mutex, reply with the value as decimal.
//! - `--role load URL SUBJECT N CONC [BYTES] [TIMEOUT_MS]`: N requests of BYTES bytes keeping CONC in flight on
//!   one connection, after a warm-up of 50; a reply with `Lattice-Status: error` (or none in time) is an error.
//!   Prints `LOAD <metric> <value>` lines: `p50_us`, `p90_us`, `p99_us`, `req_per_s`, `errors`.
//!
//! The responders print `ready` on stdout once subscribed (and flushed), so the driver never measures a
//! responder that is not there yet. A bench may add roles of its own ([`main_with_roles`]); a role of its own
//! that serves prints `ready [WHERE]` the same way ([`Bench::spawn_role`]), a load client of its own prints
//! the same `LOAD` lines ([`print_load`]), read back by [`run_load_client`].
// Each bench binary uses its own part of this module.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use lattice_test_harness::NatsServer;

/// The `lattice` binary of this package (release profile under `cargo bench`).
pub const LATTICE_BIN: &str = env!("CARGO_BIN_EXE_lattice");
/// Capabilities the benched components are signed for.
pub const KV_CAPS: &[&str] = &["wasi:keyvalue", "wasi:messaging"];
/// Payload of every measured request (natsbench's default).
pub const PAYLOAD_BYTES: usize = 100;
/// How long the load client waits for one reply.
pub const REQUEST_TIMEOUT_MS: u64 = 5000;
/// How long a host gets to join.
const HOST_READY: Duration = Duration::from_secs(60);

/// `LATTICE_BENCH_QUICK` is set: one short round.
pub fn quick() -> bool {
    std::env::var_os("LATTICE_BENCH_QUICK").is_some()
}

/// A positive integer from the environment, if set.
pub fn env_usize(name: &str) -> Result<Option<usize>> {
    match std::env::var(name) {
        Ok(text) => {
            let n: usize = text.trim().parse().with_context(|| format!("{name}=`{text}` is not a number"))?;
            ensure!(n > 0, "{name} must be positive");
            Ok(Some(n))
        }
        Err(_) => Ok(None),
    }
}

/// A bench's own roles: given the role's name and its arguments, runs it, or `None` when the name is not one of
/// them (then the shared roles are tried).
pub type Roles = fn(&str, &[String]) -> Option<Result<()>>;

/// A bench's `main`: the role named on the command line if any, else the driver `run`; errors as one line.
pub fn main(run: fn() -> Result<()>) -> std::process::ExitCode {
    main_with_roles(run, |_, _| None)
}

/// [`main`] for a bench with roles of its own, tried before the shared ones.
pub fn main_with_roles(run: fn() -> Result<()>, roles: Roles) -> std::process::ExitCode {
    match role(roles).unwrap_or_else(run) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Prints one `BENCH <name> <value>` line.
pub fn print(name: &str, value: f64, decimals: usize) {
    println!("BENCH {name} {value:.decimals$}");
}

/// Runs the role named on the command line (`--role ROLE ARGS…`), the bench's own `roles` first, if any;
/// `None` when this is the driver.
pub fn role(roles: Roles) -> Option<Result<()>> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) != Some("--role") {
        return None;
    }
    let own = args.get(2).and_then(|name| roles(name, &args[3..]));
    Some(own.unwrap_or_else(|| run_role(&args[2..])))
}

fn run_role(args: &[String]) -> Result<()> {
    let arg = |i: usize, what: &str| args.get(i).cloned().with_context(|| format!("role {args:?}: missing {what}"));
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("tokio runtime")?;
    match arg(0, "the role")?.as_str() {
        "echo" => runtime.block_on(responder(arg(1, "URL")?, arg(2, "SUBJECT")?, false)),
        "kv-echo" => runtime.block_on(responder(arg(1, "URL")?, arg(2, "SUBJECT")?, true)),
        "load" => {
            let n: usize = arg(3, "N")?.parse().context("N")?;
            let conc: usize = arg(4, "CONC")?.parse().context("CONC")?;
            let size = args.get(5).map(|s| s.parse()).transpose().context("BYTES")?.unwrap_or(PAYLOAD_BYTES);
            let timeout = args.get(6).map(|s| s.parse()).transpose().context("TIMEOUT_MS")?.unwrap_or(5000);
            runtime.block_on(load(&arg(1, "URL")?, &arg(2, "SUBJECT")?, n, conc, size, timeout))
        }
        other => bail!("unknown role `{other}` (echo, kv-echo, load)"),
    }
}

/// The floors: echo the payload, or do kv-counter's key-value work and reply with the count.
async fn responder(url: String, subject: String, kv: bool) -> Result<()> {
    let client = async_nats::connect(&url).await.with_context(|| format!("connecting to {url}"))?;
    let mut requests = client.subscribe(subject.clone()).await.with_context(|| format!("subscribing {subject}"))?;
    client.flush().await.context("flushing the subscription")?;
    println!("ready");
    let counters: Mutex<HashMap<String, i64>> = Mutex::default();
    while let Some(message) = requests.next().await {
        let Some(reply) = message.reply else { continue };
        let payload = if kv {
            let key = std::str::from_utf8(&message.payload).map(str::trim).ok().filter(|k| !k.is_empty());
            let value = {
                let mut map = counters.lock().unwrap_or_else(PoisonError::into_inner);
                let value = map.entry(key.unwrap_or("counter").to_owned()).or_default();
                *value += 1;
                *value
            };
            value.to_string().into()
        } else {
            message.payload
        };
        client.publish(reply, payload).await.context("publishing a reply")?;
    }
    Ok(())
}

/// natsbench's load client.
async fn load(url: &str, subject: &str, n: usize, conc: usize, size: usize, timeout_ms: u64) -> Result<()> {
    let client = async_nats::ConnectOptions::new()
        .request_timeout(Some(Duration::from_millis(timeout_ms)))
        .connect(url)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    let payload = bytes::Bytes::from(vec![b'x'; size]);
    for _ in 0..50.min(n) {
        let _ = client.request(subject.to_owned(), payload.clone()).await;
    }
    let mut latencies = Vec::with_capacity(n);
    let mut errors = 0usize;
    let mut first_error: Option<String> = None;
    let started = Instant::now();
    let mut in_flight = FuturesUnordered::new();
    let mut sent = 0usize;
    while sent < n || !in_flight.is_empty() {
        while sent < n && in_flight.len() < conc {
            let (client, payload) = (client.clone(), payload.clone());
            in_flight.push(async move {
                let t = Instant::now();
                let result =
                    client.request(subject.to_owned(), payload).await.map_err(|e| e.to_string()).and_then(|reply| {
                        match reply.headers.as_ref().and_then(|h| h.get("Lattice-Status")).map(|v| v.as_str()) {
                            Some("error") => Err(format!("error reply: {}", String::from_utf8_lossy(&reply.payload))),
                            _ => Ok(()),
                        }
                    });
                (t.elapsed(), result)
            });
            sent += 1;
        }
        if let Some((latency, result)) = in_flight.next().await {
            match result {
                Ok(()) => latencies.push(latency),
                Err(e) => {
                    errors += 1;
                    first_error.get_or_insert(e);
                }
            }
        }
    }
    print_load(latencies, started.elapsed(), errors, first_error);
    Ok(())
}

/// Prints a load client's figures as `LOAD` lines ([`Load::parse`] reads them): percentiles of the answered
/// requests' `latencies`, those requests per second of `wall`, the errors and the first error.
pub fn print_load(mut latencies: Vec<Duration>, wall: Duration, errors: usize, first_error: Option<String>) {
    latencies.sort();
    let pct = |p: f64| -> f64 {
        if latencies.is_empty() {
            return f64::NAN;
        }
        let i = ((p / 100.0) * (latencies.len() - 1) as f64).round() as usize;
        latencies[i].as_secs_f64() * 1e6
    };
    println!("LOAD p50_us {:.1}", pct(50.0));
    println!("LOAD p90_us {:.1}", pct(90.0));
    println!("LOAD p99_us {:.1}", pct(99.0));
    println!("LOAD req_per_s {:.0}", latencies.len() as f64 / wall.as_secs_f64());
    println!("LOAD errors {errors}");
    if let Some(e) = first_error {
        println!("LOAD first_error {}", e.replace('\n', " "));
    }
}

/// One load run's figures.
#[derive(Debug, Clone, Default)]
pub struct Load {
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub rps: f64,
    pub errors: u64,
    pub first_error: Option<String>,
}

impl Load {
    /// One progress line on stderr for round `round` (0-based) of `rounds`, `conc` in flight, `label`.
    pub fn log(&self, round: usize, rounds: usize, conc: usize, label: &str) {
        eprintln!(
            "round {}/{rounds} c{conc:<3} {label:<24} {:>8.0} req/s  p50 {:>8.1} µs  p99 {:>8.1} µs  errors {}",
            round + 1,
            self.rps,
            self.p50_us,
            self.p99_us,
            self.errors
        );
        if let Some(error) = &self.first_error {
            eprintln!("  first error: {error}");
        }
    }

    pub fn parse(stdout: &str) -> Result<Self> {
        let mut load = Load::default();
        let mut seen = 0;
        for line in stdout.lines() {
            let Some(rest) = line.strip_prefix("LOAD ") else { continue };
            let (key, value) = rest.split_once(' ').with_context(|| format!("bad load line `{line}`"))?;
            let number = || value.parse::<f64>().with_context(|| format!("bad load line `{line}`"));
            match key {
                "p50_us" => load.p50_us = number()?,
                "p90_us" => load.p90_us = number()?,
                "p99_us" => load.p99_us = number()?,
                "req_per_s" => load.rps = number()?,
                "errors" => load.errors = number()? as u64,
                "first_error" => load.first_error = Some(value.to_owned()),
                _ => continue,
            }
            seen += 1;
        }
        ensure!(seen >= 5, "the load client printed no figures:\n{stdout}");
        Ok(load)
    }
}

/// A child process, killed (SIGKILL, by its own PID) and reaped on drop.
pub struct Proc {
    pub name: String,
    pub child: Child,
    pub log: PathBuf,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The last lines of its log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(30)..].join("\n");
        format!("--- last lines of {} ({}) ---\n{tail}", self.name, self.log.display())
    }

    /// Fails (with its log) if it has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait().context("checking a child process")? {
            bail!("{} exited: {status}\n{}", self.name, self.log_tail());
        }
        Ok(())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP port of 127.0.0.1 that was free a moment ago (bound, then released), for a child process to listen on.
pub fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
    Ok(listener.local_addr().context("the bound address")?.port())
}

/// The resident set of process `pid`, in KiB (`VmRSS` of `/proc/<pid>/status`).
pub fn rss_kb(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no VmRSS in {path}"))
}

/// The median of `values` (NaN when empty).
pub fn median(values: &[f64]) -> f64 {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len() % 2 == 1 { sorted[mid] } else { (sorted[mid - 1] + sorted[mid]) / 2.0 }
}

/// The smallest and largest of `values`.
pub fn spread(values: &[f64]) -> (f64, f64) {
    values.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(*v), hi.max(*v)))
}

/// A nats-server, a scratch directory (config with the development issuer, compiled cache, artifacts, logs) and
/// at most one `lattice host` on it.
pub struct Bench {
    pub nats: NatsServer,
    pub dir: tempfile::TempDir,
    pub lattice: String,
    pub host_id: String,
    pub host: Option<Proc>,
}

impl Bench {
    pub fn new(lattice: &str) -> Result<Self> {
        let nats = NatsServer::start().context("starting nats-server")?;
        let dir = tempfile::Builder::new().prefix("lattice-bench-").tempdir().context("creating a tempdir")?;
        for sub in ["config", "cache", "artifacts", "logs"] {
            std::fs::create_dir_all(dir.path().join(sub)).with_context(|| format!("creating {sub}"))?;
        }
        Ok(Self { nats, dir, lattice: lattice.to_owned(), host_id: format!("{lattice}-host"), host: None })
    }

    pub fn path(&self, sub: &str) -> PathBuf {
        self.dir.path().join(sub)
    }

    /// `lattice` with this bench's config dir, NATS and lattice name, and nothing from the caller's environment
    /// that would change what it does.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(LATTICE_BIN);
        cmd.current_dir(self.dir.path())
            .env("HOME", self.dir.path())
            .env("LATTICE_CONFIG_DIR", self.path("config"))
            .env("LATTICE_CACHE_DIR", self.path("cache"))
            .env("LATTICE_NATS", self.nats.url())
            .env("LATTICE_NAME", &self.lattice)
            .stdin(Stdio::null());
        for var in ["LATTICE_LOG", "LATTICE_OPERATOR_KEY", "LATTICE_TRUSTED_ISSUERS", "LATTICE_TRUSTED_OPERATORS"] {
            cmd.env_remove(var);
        }
        cmd
    }

    /// Runs a CLI verb; fails with its stderr (and the host's log) unless it succeeds. Returns stdout.
    pub fn cli(&self, args: &[&str]) -> Result<String> {
        let output = self.command().args(args).output().context("running lattice")?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if !output.status.success() {
            bail!(
                "`lattice {}` failed ({}): {}{}",
                args.join(" "),
                output.status,
                String::from_utf8_lossy(&output.stderr).trim(),
                self.host.as_ref().map(|h| format!("\n{}", h.log_tail())).unwrap_or_default()
            );
        }
        Ok(stdout)
    }

    /// Signs `component` with the development issuer (created in this bench's config dir) as actor `name`;
    /// the signed copy goes to the artifact dir. Returns its path.
    pub fn sign(&self, component: &Path, name: &str, caps: &[&str]) -> Result<PathBuf> {
        let out = self.path("artifacts").join(format!("{name}.signed.wasm"));
        let (component, out_text) = (component.display().to_string(), out.display().to_string());
        let mut args = vec!["claims", "sign", &component, "--issuer", "dev", "--name", name, "--version", "0.1.0"];
        for cap in caps {
            args.extend(["--cap", cap]);
        }
        args.extend(["--out", &out_text]);
        self.cli(&args).with_context(|| format!("signing {component}"))?;
        Ok(out)
    }

    /// Starts `lattice host` (trusting the development issuer, components from the artifact dir, the compiled
    /// cache in the scratch dir) and waits until it has joined.
    pub fn spawn_host(&mut self, extra: &[&str]) -> Result<()> {
        let log = self.path("logs").join("host.log");
        let child = self
            .command()
            .args(["host", "--host-id", &self.host_id, "--trusted-issuer", "dev", "--grace", "2s"])
            .arg("--artifact-dir")
            .arg(self.path("artifacts"))
            .arg("--cache-dir")
            .arg(self.path("cache"))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).context("creating the host log")?)
            .spawn()
            .context("spawning `lattice host`")?;
        self.host = Some(Proc { name: "lattice host".into(), child, log });
        let deadline = Instant::now() + HOST_READY;
        loop {
            if let Some(host) = self.host.as_mut() {
                host.check_alive()?;
            }
            let hosts: serde_json::Value = serde_json::from_str(&self.cli(&["hosts", "-o", "json"])?)
                .context("parsing `lattice hosts -o json`")?;
            let up = hosts
                .as_array()
                .is_some_and(|hosts| hosts.iter().any(|h| h["id"] == self.host_id.as_str() && h["status"] == "up"));
            if up {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("the host did not join within {HOST_READY:?}\n{}", self.host_log());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn host_pid(&self) -> Result<u32> {
        self.host.as_ref().map(Proc::pid).context("no host running")
    }

    pub fn host_log(&self) -> String {
        self.host.as_ref().map(Proc::log_tail).unwrap_or_default()
    }

    /// Starts one of this executable's responder roles on `subject`; returns once it is subscribed.
    pub fn spawn_responder(&self, role: &str, subject: &str) -> Result<Proc> {
        let (proc, _) = self.spawn_role(role, &[&self.nats.url(), subject])?;
        Ok(proc)
    }

    /// Starts this executable as `--role ROLE ARGS…` (its stderr to `logs/<role>.log`) and waits for its first
    /// line, `ready [WHERE]`; returns the process and WHERE (empty when none).
    pub fn spawn_role(&self, role: &str, args: &[&str]) -> Result<(Proc, String)> {
        let log = self.path("logs").join(format!("{role}.log"));
        let mut child = Command::new(std::env::current_exe().context("this executable's path")?)
            .args(["--role", role])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).context("creating a role's log")?)
            .spawn()
            .with_context(|| format!("spawning the {role} role"))?;
        let stdout = child.stdout.take().context("the role's stdout")?;
        let mut proc = Proc { name: format!("{role} role"), child, log };
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).context("reading the role's first line")?;
        match line.trim().split_once(' ').unwrap_or((line.trim(), "")) {
            ("ready", rest) => Ok((proc, rest.trim().to_owned())),
            _ => {
                proc.check_alive()?;
                bail!("the {role} role said `{}` instead of ready", line.trim());
            }
        }
    }

    /// Runs the load client (its own process) against `subject`: `n` requests, `conc` in flight.
    pub fn run_load(&self, subject: &str, n: usize, conc: usize) -> Result<Load> {
        let (n, conc) = (n.to_string(), conc.to_string());
        let (bytes, timeout) = (PAYLOAD_BYTES.to_string(), REQUEST_TIMEOUT_MS.to_string());
        run_load_client("load", &[&self.nats.url(), subject, &n, &conc, &bytes, &timeout])
    }

    /// `lattice.<l>.actor.<actor>.invoke`.
    pub fn invoke_subject(&self, actor: &str) -> Result<String> {
        let subjects = lattice_core::subject::Subjects::new(lattice_core::subject::Name::new(self.lattice.as_str())?);
        Ok(subjects.invoke(&lattice_core::subject::Name::new(actor)?))
    }
}

/// Runs this executable as the load client `--role ROLE ARGS…` (its own process) and reads its `LOAD` lines.
pub fn run_load_client(role: &str, args: &[&str]) -> Result<Load> {
    let output = Command::new(std::env::current_exe().context("this executable's path")?)
        .args(["--role", role])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("running the load client")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    ensure!(
        output.status.success(),
        "the load client failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Load::parse(&stdout)
}
