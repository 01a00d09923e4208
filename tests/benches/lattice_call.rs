//! Invocation through the lattice vs the physical floor, in one run, on this machine.
//!
//! Floor: a native Rust responder on async-nats that does the same key-value work kv-counter does (increment a
//! counter in a map, reply with the value). Lattice: kv-counter (signed, in-process in-memory key-value) on one
//! host, called through `LatticeClient::call` without trace context (the floor's request carries none either).
//! Both answer the same nats-server, from the same process, and are driven by a separate compiled async-nats
//! client connection. The process uses the `lattice` binary's allocator. Prints `BENCH <name> <value>` lines;
//! targets: `lattice_call_p50_ratio` at most 1.3, `lattice_call_rps_128_ratio` at least 0.5.
//!
//! Diagnostics (not targets): `lattice_call_traced_p50_us`, the same call with a W3C `traceparent` (one header
//! each way); `lattice_call_direct_invoke_p50_us`, kv-counter invoked behind a plain responder.
//!
//! `cargo bench -p lattice-tests --bench lattice_call` (`LATTICE_BENCH_QUICK=1` for a short run).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use bytes::Bytes;
use futures::StreamExt;
use lattice_core::claims::{self, Policy, SignOptions};
use lattice_core::keys::{KeyKind, SeedKey};
use lattice_core::subject::Name;
use lattice_core::wire::{ArtifactRef, LimitsSpec, StartActor};
use lattice_host::RuntimeBuilder;
use lattice_host::lattice::{self, HostConfig, LatticeClient, NatsConfig};
use lattice_test_harness::NatsServer;

/// The allocator the `lattice` binary uses, so the host measured here is the host that ships.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

type Call = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>> + Send + Sync>;

fn quick() -> bool {
    std::env::var_os("LATTICE_BENCH_QUICK").is_some()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// Sequential latency: appends one sample per call.
async fn latency(call: &Call, n: usize, samples: &mut Vec<Duration>) -> anyhow::Result<()> {
    for _ in 0..n {
        let started = Instant::now();
        call().await?;
        samples.push(started.elapsed());
    }
    Ok(())
}

/// Rounds each side is measured in, alternating, so drift on a shared machine hits both alike.
const ROUNDS: usize = 10;

/// Throughput with `in_flight` requests outstanding for `window`: (requests answered, time taken).
async fn throughput(call: &Call, in_flight: usize, window: Duration) -> anyhow::Result<(u64, Duration)> {
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + window;
    let started = Instant::now();
    let workers: Vec<_> = (0..in_flight)
        .map(|_| {
            let call = call.clone();
            let done = done.clone();
            tokio::spawn(async move {
                while Instant::now() < deadline {
                    call().await?;
                    done.fetch_add(1, Ordering::Relaxed);
                }
                Ok::<_, anyhow::Error>(())
            })
        })
        .collect();
    for worker in workers {
        worker.await??;
    }
    Ok((done.load(Ordering::Relaxed), started.elapsed()))
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let nats = NatsServer::start()?;
    let lattice_name = Name::new("bench")?;

    // Floor: a native responder doing the same key-value work.
    let responder = async_nats::connect(nats.url()).await?;
    let mut requests = responder.subscribe("bench.native").await?;
    let counters: Arc<Mutex<HashMap<String, i64>>> = Arc::default();
    tokio::spawn({
        let responder = responder.clone();
        async move {
            while let Some(message) = requests.next().await {
                let responder = responder.clone();
                let counters = counters.clone();
                tokio::spawn(async move {
                    let key = String::from_utf8_lossy(&message.payload).into_owned();
                    let value = {
                        let mut map = counters.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                        let v = map.entry(key).or_default();
                        *v += 1;
                        *v
                    };
                    if let Some(reply) = message.reply {
                        let _ = responder.publish(reply, value.to_string().into()).await;
                    }
                });
            }
        }
    });

    // Diagnostic: the same wasm invocation behind a plain NATS responder (no lattice serving path, no
    // headers), to tell the runtime's cost from the serving path's.
    let direct_runtime = RuntimeBuilder::new().policy(Policy { allow_unsigned: true, ..Policy::default() }).build()?;
    let direct_actor = direct_runtime
        .load(
            "kv-counter",
            std::fs::read(lattice_test_actors::KV_COUNTER)?,
            lattice_host::ActorConfig {
                links: vec!["keyvalue:default=inmemory".parse()?],
                ..lattice_host::ActorConfig::default()
            },
        )
        .await?;
    let mut direct_requests = responder.subscribe("bench.direct").await?;
    tokio::spawn({
        let responder = responder.clone();
        async move {
            while let Some(message) = direct_requests.next().await {
                let responder = responder.clone();
                let actor = direct_actor.clone();
                tokio::spawn(async move {
                    let outcome = actor.invoke(lattice_host::IncomingMessage::new(message.payload.to_vec())).await;
                    let data = outcome.result.ok().flatten().map(|r| r.data).unwrap_or_default();
                    if let Some(reply) = message.reply {
                        let _ = responder.publish(reply, data.into()).await;
                    }
                });
            }
        }
    });

    // Lattice: one host, kv-counter signed by an issuer the host trusts.
    let issuer = SeedKey::generate(KeyKind::Issuer)?;
    let subject = SeedKey::generate(KeyKind::Actor)?.public_key();
    let component = std::fs::read(lattice_test_actors::KV_COUNTER)?;
    let signed = claims::sign(
        &component,
        &issuer,
        &subject,
        SignOptions {
            name: "kv-counter".into(),
            version: "0.1.0".into(),
            interfaces: vec!["wasi:keyvalue".into()],
            issued_at: now_secs(),
            ..SignOptions::default()
        },
    )?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("kv_counter.signed.wasm");
    std::fs::write(&path, signed)?;
    let runtime = RuntimeBuilder::new()
        .policy(Policy { trusted_issuers: vec![issuer.public_key()], ..Policy::default() })
        .build()?;
    let mut config = HostConfig::new(NatsConfig::new([nats.url()]), lattice_name.clone());
    config.default_limits.max_concurrency = 256;
    config.artifact_dir = Some(dir.path().to_owned());
    let host = lattice::start(config, runtime).await?;
    let control = LatticeClient::connect(&NatsConfig::new([nats.url()]), lattice_name.clone()).await?;
    let actor = Name::new("kv-counter")?;
    control
        .start_actor(
            host.id(),
            &StartActor {
                name: actor.clone(),
                artifact: ArtifactRef::Path(path.display().to_string()),
                limits: LimitsSpec::default(),
                links: vec!["keyvalue:default=inmemory".into()],
                owner: None,
                digest: None,
            },
        )
        .await
        .context("starting kv-counter")?;

    // The driving client: its own connection.
    let driver = async_nats::connect(nats.url()).await?;
    let floor: Call = {
        let driver = driver.clone();
        Arc::new(move || {
            let driver = driver.clone();
            Box::pin(async move {
                let reply = driver.request("bench.native", Bytes::from_static(b"bench")).await?;
                anyhow::ensure!(!reply.payload.is_empty(), "empty floor reply");
                Ok(())
            })
        })
    };
    let direct: Call = {
        let driver = driver.clone();
        Arc::new(move || {
            let driver = driver.clone();
            Box::pin(async move {
                let reply = driver.request("bench.direct", Bytes::from_static(b"bench")).await?;
                anyhow::ensure!(!reply.payload.is_empty(), "empty direct reply");
                Ok(())
            })
        })
    };
    let client = LatticeClient::new(driver.clone(), lattice_name);
    let lattice_call: Call = {
        let client = client.clone();
        let actor = actor.clone();
        Arc::new(move || {
            let client = client.clone();
            let actor = actor.clone();
            Box::pin(async move {
                let reply =
                    client.call(&actor, None, Bytes::from_static(b"bench"), Duration::from_secs(10), None).await?;
                anyhow::ensure!(reply.data.is_some(), "kv-counter did not reply");
                Ok(())
            })
        })
    };

    let traced_call: Call = {
        let client = client.clone();
        let actor = actor.clone();
        let traceparent = lattice::new_traceparent();
        Arc::new(move || {
            let client = client.clone();
            let actor = actor.clone();
            let traceparent = traceparent.clone();
            Box::pin(async move {
                let payload = Bytes::from_static(b"bench");
                let reply = client.call(&actor, None, payload, Duration::from_secs(10), Some(&traceparent)).await?;
                anyhow::ensure!(reply.traceparent.is_some(), "traceparent not echoed");
                Ok(())
            })
        })
    };

    let (n, window) = if quick() { (300, Duration::from_millis(500)) } else { (3000, Duration::from_secs(3)) };
    // Warm up both paths (connections, pools, caches), then interleave rounds.
    latency(&floor, n / 3, &mut Vec::new()).await?;
    latency(&lattice_call, n / 3, &mut Vec::new()).await?;
    latency(&direct, n / 3, &mut Vec::new()).await?;
    let mut floor_samples = Vec::new();
    let mut lattice_samples = Vec::new();
    let mut direct_samples = Vec::new();
    let mut traced_samples = Vec::new();
    for _ in 0..ROUNDS {
        latency(&floor, n / ROUNDS, &mut floor_samples).await?;
        latency(&lattice_call, n / ROUNDS, &mut lattice_samples).await?;
        latency(&direct, n / ROUNDS, &mut direct_samples).await?;
        latency(&traced_call, n / ROUNDS, &mut traced_samples).await?;
    }
    traced_samples.sort();
    direct_samples.sort();
    floor_samples.sort();
    lattice_samples.sort();
    let floor_p50 = percentile(&floor_samples, 0.5);
    let floor_p99 = percentile(&floor_samples, 0.99);
    let lattice_p50 = percentile(&lattice_samples, 0.5);
    let lattice_p99 = percentile(&lattice_samples, 0.99);
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!("BENCH lattice_call_floor_p50_us {:.1}", us(floor_p50));
    println!("BENCH lattice_call_p50_us {:.1}", us(lattice_p50));
    println!("BENCH lattice_call_floor_p99_us {:.1}", us(floor_p99));
    println!("BENCH lattice_call_p99_us {:.1}", us(lattice_p99));
    println!("BENCH lattice_call_p50_ratio {:.3}", us(lattice_p50) / us(floor_p50));
    println!("BENCH lattice_call_traced_p50_us {:.1}", us(percentile(&traced_samples, 0.5)));
    println!("BENCH lattice_call_direct_invoke_p50_us {:.1}", us(percentile(&direct_samples, 0.5)));

    for in_flight in [32, 128] {
        let (mut floor_total, mut lattice_total) = ((0, Duration::ZERO), (0, Duration::ZERO));
        for _ in 0..ROUNDS {
            for (call, total) in [(&floor, &mut floor_total), (&lattice_call, &mut lattice_total)] {
                let (done, took) = throughput(call, in_flight, window / ROUNDS as u32).await?;
                total.0 += done;
                total.1 += took;
            }
        }
        let rps = |(done, took): (u64, Duration)| done as f64 / took.as_secs_f64();
        let (floor_rps, lattice_rps) = (rps(floor_total), rps(lattice_total));
        println!("BENCH lattice_call_floor_rps_{in_flight} {floor_rps:.0}");
        println!("BENCH lattice_call_rps_{in_flight} {lattice_rps:.0}");
        println!("BENCH lattice_call_rps_{in_flight}_ratio {:.3}", lattice_rps / floor_rps);
    }

    host.stop().await;
    drop(nats);
    Ok(())
}
