//! A lattice on a 3-node NATS cluster (JetStream replicated 3 ways), and a host at the edge through a leaf
//! node. Hosts connect with every cluster URL; one node is SIGKILLed under at-least-once load.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use async_nats::jetstream;
use bytes::Bytes;
use lattice_core::subject::{Name, Subjects};
use lattice_core::wire::{ArtifactRef, LimitsSpec, StartActor};
use lattice_host::lattice::{self, HostConfig, LatticeClient, NatsConfig, RunningHost};
use lattice_test_harness::{NatsCluster, wait_for};

use crate::{CONTROL_TIMEOUT, HEARTBEAT, call, guest_dir, name, runtime, text};

async fn host(nats: NatsConfig, lattice: &Name, id: &str) -> Result<RunningHost> {
    let mut config = HostConfig::new(nats, lattice.clone());
    config.id = name(id);
    config.heartbeat = HEARTBEAT;
    config.artifact_dir = Some(guest_dir());
    lattice::start(config, runtime()).await.with_context(|| format!("starting host {id}"))
}

fn probe(links: &[&str]) -> StartActor {
    StartActor {
        name: name("probe"),
        artifact: ArtifactRef::Path(lattice_test_actors::WORKFLOW_PROBE.to_owned()),
        limits: LimitsSpec { max_concurrency: Some(8), ..LimitsSpec::default() },
        links: links.iter().map(|l| (*l).to_owned()).collect(),
        owner: None,
        digest: None,
    }
}

async fn count(client: &LatticeClient, key: &str) -> Option<u64> {
    text(&call(client, &name("probe"), &format!("count {key}")).await.ok()?).ok()?.trim().parse().ok()
}

/// Publishes until a stream acknowledges it: across a node failure a publish may fail or time out, and the
/// same id makes a retry of one that was in fact stored a duplicate the stream drops.
async fn publish_until_acked(client: &LatticeClient, subject: &str, payload: &str, id: &str) -> Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        match client.publish(subject, Bytes::copy_from_slice(payload.as_bytes()), &[], Some(id)).await {
            Ok(_) => return Ok(()),
            Err(error) if tokio::time::Instant::now() > deadline => return Err(error.into()),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_three_node_cluster_state_is_replicated_and_a_node_kill_loses_nothing_acked() -> Result<()> {
    const MESSAGES: u64 = 1_000;
    let mut cluster = tokio::task::spawn_blocking(|| NatsCluster::start(3)).await??;
    let nats = NatsConfig::new(cluster.urls());
    let lattice_name = name("cluster");
    let a = host(nats.clone(), &lattice_name, "host-a").await?;
    let b = host(nats.clone(), &lattice_name, "host-b").await?;
    let client = LatticeClient::connect(&nats, lattice_name.clone()).await?.with_timeout(CONTROL_TIMEOUT);

    // The lattice's own streams and buckets, and the stream at-least-once delivery makes, have 3 replicas.
    client.start_provider(b.id(), "shared", "inmemory", BTreeMap::new()).await?;
    let link = "messaging:jobs=nats,subscribe=jobs.cluster,delivery=at-least-once,ack_wait=5s";
    for h in [&a, &b] {
        client.start_actor(h.id(), &probe(&["keyvalue:default=shared", link])).await?;
    }
    let js = jetstream::new(client.nats().clone());
    let subjects = Subjects::new(lattice_name.clone());
    let mut streams = vec![
        subjects.events_stream(),
        subjects.dlq_stream(),
        format!("KV_{}", subjects.state_bucket()),
        format!("KV_{}", subjects.hosts_bucket()),
        format!("KV_{}", subjects.leader_bucket()),
    ];
    streams.push(js.stream_by_subject("jobs.cluster").await?);
    for stream in &streams {
        let replicas = js.get_stream(stream).await?.cached_info().config.num_replicas;
        ensure!(replicas == 3, "stream {stream} has {replicas} replicas");
    }

    // Publish under load and SIGKILL one node (the one serving the at-least-once stream's leader) midway.
    let publisher = {
        let client = client.clone();
        tokio::spawn(async move {
            for n in 0..MESSAGES {
                publish_until_acked(&client, "jobs.cluster", "n 0 2", &format!("cluster-{n}")).await?;
            }
            anyhow::Ok(())
        })
    };
    wait_for("200 messages handled", Duration::from_secs(60), || async {
        (count(&client, "n").await? >= 200).then_some(())
    })
    .await?;
    let job_stream = streams.last().context("the job stream")?.clone();
    let leader = js.get_stream(&job_stream).await?.info().await?.cluster.as_ref().and_then(|c| c.leader.clone());
    let victim = leader.as_deref().and_then(|l| cluster.index_of(l)).unwrap_or(0);
    tokio::task::block_in_place(|| cluster.kill(victim))?;
    publisher.await??;

    wait_for("every acked message handled once", Duration::from_secs(120), || async {
        (count(&client, "n").await? >= MESSAGES).then_some(())
    })
    .await?;
    ensure!(count(&client, "n").await == Some(MESSAGES), "counted once each");
    // Both hosts are still in the lattice, on the remaining nodes.
    let hosts = client.ping(Duration::from_millis(500)).await?;
    ensure!(hosts.len() == 2, "{} hosts answer", hosts.len());
    a.stop().await;
    b.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_at_the_edge_runs_through_a_leaf_node() -> Result<()> {
    let cluster = tokio::task::spawn_blocking(|| NatsCluster::start(3)).await??;
    let leaf = tokio::task::block_in_place(|| cluster.start_leaf())?;
    let lattice_name = name("edge");
    let core = host(NatsConfig::new(cluster.urls()), &lattice_name, "core").await?;
    let edge = host(NatsConfig::new([leaf.url()]), &lattice_name, "edge").await?;
    let client = LatticeClient::connect(&NatsConfig::new(cluster.urls()), lattice_name.clone())
        .await?
        .with_timeout(CONTROL_TIMEOUT);
    let link = "messaging:jobs=nats,subscribe=jobs.edge,delivery=at-least-once";
    client.start_actor(edge.id(), &probe(&["keyvalue:default=inmemory", link])).await?;
    ensure!(client.ping(Duration::from_millis(500)).await?.len() == 2, "both hosts answer");
    // Published at the hub, stored in the hub's JetStream, handled at the edge; calls cross the leaf too.
    for n in 0..20 {
        publish_until_acked(&client, "jobs.edge", "e 0", &format!("edge-{n}")).await?;
    }
    wait_for("the edge handled every message", Duration::from_secs(30), || async {
        (count(&client, "e").await? >= 20).then_some(())
    })
    .await?;
    ensure!(count(&client, "e").await == Some(20), "once each");
    let reply = call(&client, &name("probe"), "count e").await?;
    ensure!(reply.host.as_deref() == Some("edge"), "served by the edge host: {:?}", reply.host);
    edge.stop().await;
    core.stop().await;
    Ok(())
}
