//! Actor density of one `lattice host` process: its memory idle and with N actors, how long starting them takes,
//! and whether they answer.
//!
//! A nats-server and `lattice host` (this package's binary, release profile; see `common/mod.rs`). Figures:
//! - `density_rss_idle_kb`: the host's resident set (`VmRSS`) once joined, no actor started;
//! - `density_rss_warm_kb`: after one actor was started (compiling kv-counter into the cache) and stopped, so the
//!   N starts all load compiled code from the cache;
//! - N actors `kv-0` … `kv-<N-1>` (kv-counter signed once, `keyvalue:default=inmemory`) started by this
//!   process through `LatticeClient::start_actor`, 32 requests in flight (`LATTICE_BENCH_DENSITY_CONC`):
//!   `density_start_<N>_s` (first request to last reply), `density_start_failures`;
//! - `density_rss_kb` with the actors, 2 s after the last start, `density_actors_running` (N less the failures)
//!   and `density_rss_per_actor_kb` (`(density_rss_kb - density_rss_warm_kb) / density_actors_running`);
//! - `density_ping_actors`: actors the host lists in its ping reply (-1 when the ping got no reply from it);
//!   `density_host_record_up`: 1 when `lattice hosts` still sees the host up 3 heartbeats later (its record is
//!   rewritten every heartbeat), 0 lost, -1 missing; `density_host_log_warnings`: WARN/ERROR lines in its log
//!   (the first 5 on stderr);
//! - `density_sample_ok` of `density_sample` (20) running actors picked at random, each called once on its invoke
//!   subject with a key of its own, that replied `Lattice-Status: ok` and `1`; `density_sample_p50_us`.
//!
//! N is 1,000 (`LATTICE_BENCH_DENSITY=n`; 100 with `LATTICE_BENCH_QUICK=1`). The target is 10,000. A host
//! runs at most `--max-instances` actors (each is owed a slot of the instance pool), so the host gets
//! `--max-instances` max(N, 1000) (`LATTICE_BENCH_DENSITY_MAX_INSTANCES` to choose; `density_max_instances`).
//!
//! `cargo bench -p lattice-cli --bench density`.

mod common;

use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use bytes::Bytes;
use common::{Bench, KV_CAPS, median, rss_kb};
use futures::StreamExt;
use lattice_core::subject::Name;
use lattice_core::wire::{ArtifactRef, LimitsSpec, StartActor};
use lattice_host::lattice::{LatticeClient, NatsConfig};

/// The allocator the `lattice` binary uses.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Actors called after the starts.
const SAMPLE: usize = 20;
/// How long the host is left alone before its memory is read.
const SETTLE: Duration = Duration::from_secs(2);

/// `line` without its terminal colour sequences (`ESC [ … m`).
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            chars.by_ref().find(|c| *c == 'm');
        } else {
            out.push(c);
        }
    }
    out
}

fn main() -> ExitCode {
    common::main(run)
}

fn run() -> Result<()> {
    let quick = common::quick();
    let n = common::env_usize("LATTICE_BENCH_DENSITY")?.unwrap_or(if quick { 100 } else { 1_000 });
    let conc = common::env_usize("LATTICE_BENCH_DENSITY_CONC")?.unwrap_or(32);
    // A host runs at most --max-instances actors (each is owed one slot of the instance pool).
    let max_instances = common::env_usize("LATTICE_BENCH_DENSITY_MAX_INSTANCES")?.unwrap_or(n.max(1_000));
    let mut bench = Bench::new("density")?;
    let signed = bench.sign(lattice_test_actors::KV_COUNTER.as_ref(), "kv-counter", KV_CAPS)?;
    let file = signed.file_name().context("signed file name")?.to_string_lossy().into_owned();
    bench.spawn_host(&["--max-instances", &max_instances.to_string()])?;
    common::print("density_max_instances", max_instances as f64, 0);
    let pid = bench.host_pid()?;
    std::thread::sleep(SETTLE);
    let idle = rss_kb(pid)?;
    common::print("density_rss_idle_kb", idle as f64, 0);

    // Compile once, so every start below loads from the cache.
    bench.cli(&[
        "start",
        "kv-warm",
        "--path",
        &file,
        "--host",
        &bench.host_id,
        "--link",
        "keyvalue:default=inmemory",
    ])?;
    bench.cli(&["stop", "kv-warm", "--host", &bench.host_id])?;
    std::thread::sleep(SETTLE);
    let warm = rss_kb(pid)?;
    common::print("density_rss_warm_kb", warm as f64, 0);

    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("tokio runtime")?;
    let lattice = Name::new(bench.lattice.as_str())?;
    let host = Name::new(bench.host_id.as_str())?;
    let client = runtime
        .block_on(LatticeClient::connect(&NatsConfig::new([bench.nats.url()]), lattice))
        .context("connecting the control client")?
        .with_timeout(Duration::from_secs(120));

    eprintln!("starting {n} actors, {conc} requests in flight");
    let started = Instant::now();
    let (running, failures, first_failure) = runtime.block_on(async {
        let outcomes = futures::stream::iter(0..n)
            .map(|i| {
                let (client, host, file) = (client.clone(), host.clone(), file.clone());
                async move {
                    let request = StartActor {
                        name: Name::new(format!("kv-{i}")).map_err(|e| e.to_string())?,
                        artifact: ArtifactRef::Path(file),
                        limits: LimitsSpec::default(),
                        links: vec!["keyvalue:default=inmemory".into()],
                        owner: None,
                        digest: None,
                    };
                    client.start_actor(&host, &request).await.map(|_| i).map_err(|e| format!("kv-{i}: {e}"))
                }
            })
            .buffer_unordered(conc);
        futures::pin_mut!(outcomes);
        let (mut running, mut failures, mut first) = (Vec::new(), 0usize, None);
        let mut done = 0usize;
        while let Some(outcome) = outcomes.next().await {
            done += 1;
            match outcome {
                Ok(i) => running.push(i),
                Err(e) => {
                    failures += 1;
                    first.get_or_insert(e);
                }
            }
            if done.is_multiple_of(1000) {
                eprintln!("  {done} answered after {:.1} s", started.elapsed().as_secs_f64());
            }
        }
        (running, failures, first)
    });
    let took = started.elapsed();
    common::print("density_actors", n as f64, 0);
    common::print(&format!("density_start_{n}_s"), took.as_secs_f64(), 2);
    common::print("density_start_per_actor_ms", took.as_secs_f64() * 1e3 / n as f64, 2);
    common::print("density_start_failures", failures as f64, 0);
    if let Some(error) = first_failure {
        println!("note: first start failure: {error}");
        eprintln!("first start failure: {error}");
    }
    if let Some(host) = bench.host.as_mut() {
        host.check_alive()?;
    }

    std::thread::sleep(SETTLE);
    let loaded = rss_kb(pid)?;
    common::print("density_rss_kb", loaded as f64, 0);
    common::print("density_actors_running", running.len() as f64, 0);
    common::print("density_rss_per_actor_kb", loaded.saturating_sub(warm) as f64 / running.len().max(1) as f64, 1);

    let listed = match runtime.block_on(client.ping(Duration::from_secs(2))) {
        Ok(hosts) => hosts.iter().find(|h| h.id == host).map_or(-1.0, |h| h.actors.len() as f64),
        Err(error) => {
            eprintln!("ping failed: {error}");
            -1.0
        }
    };
    common::print("density_ping_actors", listed, 0);
    // The host's record (rewritten every heartbeat, 1 s): is it still seen as up 3 heartbeats later?
    std::thread::sleep(Duration::from_secs(3));
    let hosts: serde_json::Value =
        serde_json::from_str(&bench.cli(&["hosts", "-o", "json"])?).context("parsing `lattice hosts -o json`")?;
    let record = hosts.as_array().and_then(|hosts| hosts.iter().find(|h| h["id"] == bench.host_id.as_str()));
    let up = match record {
        Some(record) if record["status"] == "up" => 1.0,
        Some(record) => {
            eprintln!(
                "the host's record: {}, {} ms since its last heartbeat",
                record["status"], record["since_heartbeat_ms"]
            );
            0.0
        }
        None => -1.0,
    };
    common::print("density_host_record_up", up, 0);

    // A few of them, picked at random, each called once on its invoke subject.
    let mut seed = SystemTime::now().duration_since(UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64) | 1;
    let mut picks = Vec::new();
    while picks.len() < SAMPLE.min(running.len()) {
        // xorshift64
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let i = running[(seed % running.len() as u64) as usize];
        if !picks.contains(&i) {
            picks.push(i);
        }
    }
    let nats = runtime
        .block_on(
            async_nats::ConnectOptions::new().request_timeout(Some(Duration::from_secs(10))).connect(bench.nats.url()),
        )
        .context("connecting to NATS")?;
    let (mut ok, mut latencies) = (0usize, Vec::new());
    for i in &picks {
        let subject = bench.invoke_subject(&format!("kv-{i}"))?;
        let t = Instant::now();
        // The in-memory store is the host's, shared by every actor: a key of its own per actor.
        let reply = runtime.block_on(nats.request(subject, Bytes::from(format!("sample-{i}"))));
        let elapsed = t.elapsed();
        match reply {
            Ok(reply) => {
                let status = reply.headers.as_ref().and_then(|h| h.get("Lattice-Status")).map(|v| v.as_str());
                if status == Some("ok") && reply.payload.as_ref() == b"1" {
                    ok += 1;
                    latencies.push(elapsed.as_secs_f64() * 1e6);
                } else {
                    eprintln!("kv-{i}: {status:?} {}", String::from_utf8_lossy(&reply.payload));
                }
            }
            Err(error) => eprintln!("kv-{i}: {error}"),
        }
    }
    common::print("density_sample", picks.len() as f64, 0);
    common::print("density_sample_ok", ok as f64, 0);
    common::print("density_sample_p50_us", median(&latencies), 1);
    if let Some(host) = bench.host.as_mut() {
        host.check_alive()?;
    }
    // What went wrong on the host's side, if anything (its log is deleted with the bench's tempdir).
    let log = bench.host.as_ref().map(|h| std::fs::read_to_string(&h.log).unwrap_or_default()).unwrap_or_default();
    let warnings: Vec<&str> = log.lines().filter(|l| l.contains("WARN") || l.contains("ERROR")).collect();
    common::print("density_host_log_warnings", warnings.len() as f64, 0);
    for line in warnings.iter().take(5) {
        eprintln!("host: {}", strip_ansi(line));
    }
    Ok(())
}
