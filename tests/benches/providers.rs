//! Per-operation latency of the key-value providers an actor can be linked to, in one run: in-process
//! in-memory, in-process Redis (a real redis-server on loopback), and remote (the in-memory provider served
//! by another "host" over NATS). One operation = one `increment` through the `KeyValue` trait, as the host
//! calls it. Prints `BENCH <name> <value>` lines.
//!
//! `cargo bench -p lattice-tests --bench providers` (`LATTICE_BENCH_QUICK=1` for a short run).

use std::sync::Arc;
use std::time::{Duration, Instant};

use lattice_keyvalue_inmemory::InMemoryKeyValue;
use lattice_keyvalue_redis::{RedisConfig, RedisKeyValue};
use lattice_provider_sdk::KeyValue;
use lattice_provider_sdk::remote::{RemoteKeyValue, serve_keyvalue};
use lattice_test_harness::{NatsServer, RedisServer};

/// The allocator the `lattice` binary uses, so the host measured here is the host that ships.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

async fn median_us(provider: &dyn KeyValue, n: usize) -> anyhow::Result<f64> {
    for _ in 0..n / 10 {
        provider.increment("bench", "warm", 1).await?;
    }
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        provider.increment("bench", "n", 1).await?;
        samples.push(started.elapsed());
    }
    samples.sort();
    Ok(samples[samples.len() / 2].as_secs_f64() * 1e6)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let n = if std::env::var_os("LATTICE_BENCH_QUICK").is_some() { 500 } else { 5000 };
    let redis_server = RedisServer::start()?;
    let nats = NatsServer::start()?;

    let inmemory = InMemoryKeyValue::new();
    let redis = RedisKeyValue::connect(RedisConfig::new(redis_server.url()))?;
    let serving_client = async_nats::connect(nats.url()).await?;
    let calling_client = async_nats::connect(nats.url()).await?;
    let subject = "lattice.bench.provider.shared.keyvalue".to_owned();
    let _serving = serve_keyvalue(serving_client, subject.clone(), Arc::new(InMemoryKeyValue::new())).await?;
    let remote = RemoteKeyValue::new(calling_client, subject, Duration::from_secs(5));

    let mut results = [0.0; 3];
    // Interleave rounds so drift on a shared machine affects all three alike; report the median of rounds.
    let mut rounds: Vec<[f64; 3]> = Vec::new();
    for _ in 0..3 {
        rounds.push([median_us(&inmemory, n).await?, median_us(&redis, n).await?, median_us(&remote, n).await?]);
    }
    for (i, result) in results.iter_mut().enumerate() {
        let mut column: Vec<f64> = rounds.iter().map(|r| r[i]).collect();
        column.sort_by(f64::total_cmp);
        *result = column[column.len() / 2];
    }
    println!("BENCH provider_inmemory_op_us {:.2}", results[0]);
    println!("BENCH provider_redis_op_us {:.2}", results[1]);
    println!("BENCH provider_remote_op_us {:.2}", results[2]);
    Ok(())
}
