//! Hosts join, are listed, bid in auctions by label, and serve an actor to any client.

use anyhow::Result;

use crate::{GATHER, TestLattice, call, kv_counter, labels, name, text};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_zones_join_and_an_auction_places_the_actor_on_the_matching_host() -> Result<()> {
    let lattice = TestLattice::start("zones").await?;
    let mut hosts = Vec::new();
    for zone in ["a", "b", "c"] {
        hosts.push(lattice.host(&format!("host-{zone}"), &[("zone", zone)]).await?);
    }
    let control = lattice.client().await?;

    // Every host answers a ping, with its labels and heartbeat.
    let pinged = control.ping(GATHER).await?;
    let ids: Vec<&str> = pinged.iter().map(|h| h.id.as_str()).collect();
    assert_eq!(ids, ["host-a", "host-b", "host-c"], "{pinged:#?}");
    for info in &pinged {
        let zone = info.id.as_str().trim_start_matches("host-");
        assert_eq!(info.labels.get("zone").map(String::as_str), Some(zone), "{info:#?}");
        assert!(info.labels.contains_key("os") && info.labels.contains_key("arch"), "{info:#?}");
        assert_eq!(info.heartbeat_ms, 300);
        assert_eq!(info.lattice, lattice.name);
    }

    // Every host is recorded, none lost.
    let recorded = control.hosts().await?;
    let ids: Vec<&str> = recorded.iter().map(|h| h.info.id.as_str()).collect();
    assert_eq!(ids, ["host-a", "host-b", "host-c"], "{recorded:#?}");
    assert!(recorded.iter().all(|h| !h.lost), "{recorded:#?}");

    // Only the zone-b host bids.
    let bids = control.auction(labels(&[("zone", "b")]), GATHER).await?;
    assert_eq!(bids.len(), 1, "{bids:#?}");
    let winner = bids[0].host.clone();
    assert_eq!(winner.as_str(), "host-b");
    assert_eq!(bids[0].actors, 0);
    // A constraint nobody matches gets no bids; no constraint gets every host.
    assert!(control.auction(labels(&[("zone", "z")]), GATHER).await?.is_empty());
    assert_eq!(control.auction(labels(&[]), GATHER).await?.len(), 3);

    let actor = name("kv-counter");
    let started = control.start_actor(&winner, &kv_counter(&actor)).await?;
    assert_eq!(started.host, winner);
    assert_eq!(started.actor.name, actor);
    assert_eq!(started.actor.links, ["keyvalue:default=inmemory"]);

    // A caller on its own connection reaches it without knowing where it runs.
    let caller = lattice.client().await?;
    let reply = call(&caller, &actor, "visits").await?;
    assert_eq!(reply.host.as_deref(), Some("host-b"));
    assert_eq!(text(&reply)?, "1");
    assert_eq!(text(&call(&caller, &actor, "visits").await?)?, "2");

    // Inventories agree: only the winner runs it.
    for host in &hosts {
        let inventory = control.inventory(host.id()).await?;
        let runs: Vec<&str> = inventory.actors.iter().map(|a| a.name.as_str()).collect();
        let expected: &[&str] = if *host.id() == winner { &["kv-counter"] } else { &[] };
        assert_eq!(runs, expected, "inventory of {}", host.id());
    }
    // The winner now runs one actor, so it bids with that count.
    let bids = control.auction(labels(&[("zone", "b")]), GATHER).await?;
    assert_eq!(bids.iter().map(|b| b.actors).collect::<Vec<_>>(), [1]);
    Ok(())
}
