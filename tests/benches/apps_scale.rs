//! How long one host takes to reach "reconciled" for an app of N actors (one artifact under N names).
//!
//! A real nats-server, one host (in this process) and the leader it elects; the app is stored with
//! `LatticeClient::apply_app` and the clock runs from that call until the leader reports the revision
//! reconciled. Prints `BENCH apps_reconciled_<N>_s <seconds>` and the placement rate.
//!
//! `cargo bench -p lattice-tests --bench apps_scale` (N = 1000); `APPS_SCALE_N=10000
//! APPS_SCALE_MAX_PAYLOAD=8MB` for 10,000 (see below).

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use lattice_core::claims::Policy;
use lattice_core::subject::Name;
use lattice_core::wire::{AppActor, AppSpec, LimitsSpec};
use lattice_host::lattice::{self, HostConfig, LatticeClient, NatsConfig};
use lattice_host::{EngineConfig, RuntimeBuilder};
use lattice_test_harness::NatsServer;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let n: u32 = std::env::var("APPS_SCALE_N").ok().map(|v| v.parse()).transpose()?.unwrap_or(1000);
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(run(n))
}

async fn run(n: u32) -> anyhow::Result<()> {
    // An app record of N actors is one NATS message (about 250 bytes per actor), and so is a host's heartbeat
    // (about 150 per actor): past about 4,000 actors both exceed nats-server's default 1 MiB max payload.
    // `APPS_SCALE_MAX_PAYLOAD=8MB` raises it (nats-server's own upper recommendation) for a run at 10,000.
    let nats = match std::env::var("APPS_SCALE_MAX_PAYLOAD") {
        Ok(size) => NatsServer::builder().config(format!("max_payload: {size}\n")).start()?,
        Err(_) => NatsServer::start()?,
    };
    let lattice_name = Name::new("scale")?;
    // Every actor needs a slot of the instance pool; small instances keep the reservation modest.
    let engine = EngineConfig { max_instances: n.max(1000), max_memory_bytes: 16 << 20, ..EngineConfig::default() };
    let runtime = RuntimeBuilder::new()
        .policy(Policy { allow_unsigned: true, ..Policy::default() })
        .engine(engine)
        .cache_dir(Some(tempfile::tempdir()?.keep()))
        .build()?;
    let mut config = HostConfig::new(NatsConfig::new([nats.url()]), lattice_name.clone());
    config.default_limits.max_concurrency = 1;
    config.default_limits.memory_bytes = 16 << 20;
    let host = lattice::start(config, runtime).await?;
    let client = LatticeClient::connect(&NatsConfig::new([nats.url()]), lattice_name).await?;
    let component = std::fs::read(lattice_test_actors::KV_COUNTER)?;
    let pushed = client.push("kv-counter", component.into(), |_| {}).await?;
    let actors: Vec<AppActor> = (0..n)
        .map(|i| {
            Ok(AppActor {
                name: Name::new(format!("c-{i:05}"))?,
                artifact: pushed.name.clone(),
                digest: pushed.digest.clone(),
                replicas: 1,
                spread: None,
                constraints: Default::default(),
                limits: LimitsSpec { max_concurrency: Some(1), ..LimitsSpec::default() },
                links: vec!["keyvalue:default=inmemory".into()],
                routes: Vec::new(),
            })
        })
        .collect::<anyhow::Result<_>>()?;
    let app = Name::new("many")?;
    let spec = AppSpec { name: app.clone(), version: "1".into(), env: None, actors, providers: Vec::new() };
    // A leader first, so the clock measures reconciliation, not the election.
    let deadline = Instant::now() + Duration::from_secs(30);
    while client.leader().await?.is_none() {
        if Instant::now() > deadline {
            bail!("no leader after 30 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let started = Instant::now();
    let applied = client.apply_app(spec).await?;
    let deadline = started + Duration::from_secs(600);
    let mut reported = Instant::now();
    loop {
        if let Some(status) = client.app_status(&app).await?
            && status.revision == applied.revision
        {
            if status.reconciled {
                break;
            }
            if reported.elapsed() >= Duration::from_secs(5) {
                reported = Instant::now();
                let running = status.actors.iter().filter(|a| !a.hosts.is_empty()).count();
                eprintln!("{:>5.1}s: {running} of {n} running", started.elapsed().as_secs_f64());
            }
            if Instant::now() > deadline {
                bail!("not reconciled after 600 s: {:?}", status.reason);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let took = started.elapsed();
    let running = client.inventory(host.id()).await.context("inventory")?.actors.len();
    println!("BENCH apps_reconciled_{n}_s {:.2}", took.as_secs_f64());
    println!("BENCH apps_placements_per_s_{n} {:.0}", f64::from(n) / took.as_secs_f64());
    println!("({running} actors running on the host)");
    host.stop().await;
    Ok(())
}
