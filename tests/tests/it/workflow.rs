//! A messaging workflow across two hosts: order-store on host A takes `orders.new`, stores each order and
//! publishes `orders.stored`; order-total on host B adds each amount to a total. Both use the hosts' built-in
//! `nats` messaging provider; the totals live in a provider instance on host B that the test reads over the
//! lattice, as any other host would.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Result;
use bytes::Bytes;
use lattice_core::wire::{ArtifactRef, LimitsSpec, StartActor};
use lattice_provider_sdk::KeyValue;
use lattice_provider_sdk::remote::RemoteKeyValue;
use lattice_test_harness::wait_for;

use crate::{TestLattice, name};

const ORDERS: u64 = 10_000;

fn start(actor: &str, path: &str, links: &[&str]) -> StartActor {
    StartActor {
        name: name(actor),
        artifact: ArtifactRef::Path(path.to_owned()),
        limits: LimitsSpec::default(),
        links: links.iter().map(|l| (*l).to_owned()).collect(),
        owner: None,
        digest: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_orders_flow_across_two_hosts_and_the_total_is_exact() -> Result<()> {
    let lattice = TestLattice::start("workflow").await?;
    let a = lattice.host("host-a", &[]).await?;
    let b = lattice.host("host-b", &[]).await?;
    let client = lattice.client().await?;
    client.start_provider(b.id(), "totals", "inmemory", BTreeMap::new()).await?;
    client
        .start_actor(
            a.id(),
            &start(
                "order-store",
                lattice_test_actors::ORDER_STORE,
                &[
                    "keyvalue:default=inmemory",
                    "messaging:orders=nats,subscribe=orders.new,queue=order-store",
                    "messaging:events=nats",
                ],
            ),
        )
        .await?;
    client
        .start_actor(
            b.id(),
            &start(
                "order-total",
                lattice_test_actors::ORDER_TOTAL,
                &["keyvalue:default=totals", "messaging:stored=nats,subscribe=orders.stored"],
            ),
        )
        .await?;

    let publisher = lattice.client().await?;
    let mut expected_total = 0u64;
    for i in 0..ORDERS {
        let amount = i % 97 + 1;
        expected_total += amount;
        publisher.nats().publish("orders.new", Bytes::from(format!("o-{i} {amount}"))).await?;
    }
    publisher.nats().flush().await?;

    let totals = RemoteKeyValue::new(
        client.nats().clone(),
        client.subjects().provider(&name("totals"), "keyvalue"),
        Duration::from_secs(5),
    );
    let text = |v: Option<Vec<u8>>| v.map(|v| String::from_utf8_lossy(&v).into_owned()).unwrap_or_default();
    wait_for("every order to be counted", Duration::from_secs(60), || async {
        let orders = text(totals.get("order-total/default", "orders").await.ok()?);
        (orders == ORDERS.to_string()).then_some(())
    })
    .await?;
    assert_eq!(text(totals.get("order-total/default", "total").await?), expected_total.to_string());
    a.stop().await;
    b.stop().await;
    Ok(())
}
