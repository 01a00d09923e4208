//! The orders example app (`examples/orders/lattice.toml`, `--env prod`) on three `lattice host` processes,
//! a real nats-server and a real redis-server: 10,000 orders flow ingest → validate → price → ledger, every
//! hop at least once over JetStream, while one host is SIGKILLed mid-stream. Every order reaches the ledger
//! and the per-customer totals are exact: nothing lost, nothing applied twice.

mod apps_support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use apps_support::Lattice;
use lattice_core::subject::Name;
use lattice_test_harness::{RedisServer, wait_for};

const ORDERS: u64 = 10_000;
const CUSTOMERS: u64 = 100;
/// The catalogue of `orders-price`, in cents.
const PRICES: [(&str, u64); 4] = [("apple", 50), ("pear", 75), ("plum", 30), ("fig", 120)];

/// Order `n`: its payload and what it adds to its customer's total.
fn order(n: u64) -> (String, String, u64) {
    let customer = format!("c{}", n % CUSTOMERS);
    let (sku, price) = PRICES[(n % 4) as usize];
    let qty = n % 7 + 1;
    (format!("o-{n} {customer} {sku} {qty}"), customer, price * qty)
}

/// The ledger's `totals`: customer → (total cents, orders).
async fn totals(lattice: &Lattice) -> Result<BTreeMap<String, (u64, u64)>> {
    let reply =
        lattice.client.call(&Name::new("orders-ledger")?, None, "totals".into(), Duration::from_secs(10), None).await?;
    let text = String::from_utf8(reply.data.unwrap_or_default().to_vec())?;
    text.lines()
        .map(|line| {
            let mut words = line.split_whitespace();
            let (Some(customer), Some(total), Some(orders)) = (words.next(), words.next(), words.next()) else {
                anyhow::bail!("ledger line `{line}`");
            };
            Ok((customer.to_owned(), (total.parse()?, orders.parse()?)))
        })
        .collect()
}

/// The example manifest with this test's Redis and the workspace's guest builds.
fn manifest(redis: &RedisServer) -> Result<String> {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/orders/lattice.toml"))?;
    let guests = Path::new(lattice_test_actors::ORDERS_LEDGER).parent().context("guest dir")?;
    ensure!(text.contains("redis://127.0.0.1:6379"), "the example's Redis URL moved");
    Ok(text
        .replace("../../target/guests/wasm32-wasip2/guest", &guests.display().to_string())
        .replace("redis://127.0.0.1:6379", &redis.url()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_orders_survive_a_host_kill_with_exact_totals() -> Result<()> {
    let redis = tokio::task::spawn_blocking(RedisServer::start).await??;
    let mut lattice = Lattice::new("orders").await?;
    for (host, zone) in [("h1", "a"), ("h2", "b"), ("h3", "c")] {
        lattice.spawn(host, &["--label", &format!("zone={zone}"), "--provider-allow", "redis://127.0.0.1:*"])?;
    }
    lattice.ready(3).await?;
    let path = lattice.write("orders.toml", &manifest(&redis)?)?;
    lattice.cli_ok(&["apply", path.to_str().context("utf-8 path")?, "--env", "prod", "--timeout", "120s"])?;

    let mut expected: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for n in 0..ORDERS {
        let (_, customer, amount) = order(n);
        let entry = expected.entry(customer).or_default();
        entry.0 += amount;
        entry.1 += 1;
    }
    let client = lattice.client.clone();
    let publisher = tokio::spawn(async move {
        for n in 0..ORDERS {
            let (payload, _, _) = order(n);
            client.publish("orders.in", payload.into(), &[], Some(&format!("order-{n}"))).await?;
        }
        anyhow::Ok(())
    });

    // Kill a host once the ledger is well into the stream.
    let counted = |t: &BTreeMap<String, (u64, u64)>| t.values().map(|(_, n)| n).sum::<u64>();
    wait_for("2,000 orders in the ledger", Duration::from_secs(120), || async {
        (counted(&totals(&lattice).await.ok()?) >= 2_000).then_some(())
    })
    .await
    .with_context(|| lattice.logs())?;
    lattice.host("h2")?.kill()?;
    publisher.await??;

    wait_for("every order in the ledger", Duration::from_secs(240), || async {
        (counted(&totals(&lattice).await.ok()?) >= ORDERS).then_some(())
    })
    .await
    .with_context(|| lattice.logs())?;
    let ledger = totals(&lattice).await?;
    ensure!(ledger == expected, "totals differ: {} customers, {} orders", ledger.len(), counted(&ledger));
    let dead = lattice.cli_ok(&["dlq", "list"])?;
    ensure!(dead.contains("no dead letters"), "{dead}");
    Ok(())
}
