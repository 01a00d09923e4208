//! A real 3-node NATS cluster with JetStream, and leaf nodes of it: needs nats-server (scripts/setup.sh).

use std::future::Future;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, ensure};
use async_nats::jetstream::consumer::{AckPolicy, pull};
use async_nats::jetstream::context::AccountErrorKind;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::publish::PublishAck;
use async_nats::jetstream::{self, kv, stream};
use futures::StreamExt;
use lattice_test_harness::{HUB_DOMAIN, NatsCluster, wait_for};

/// Deadline for anything that waits on an election (a killed leader's followers wait 4-9 s before one
/// of them campaigns).
const EVENTUALLY: Duration = Duration::from_secs(30);

fn process_exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Calls `f` until it returns `Ok` (see [`wait_for`]); on timeout the error quotes `f`'s last error.
async fn eventually<T, F, Fut>(what: &str, mut f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let last_error = Mutex::new(None::<String>);
    let last = &last_error;
    let result = wait_for(what, EVENTUALLY, || {
        let attempt = f();
        async move {
            match attempt.await {
                Ok(value) => Some(value),
                Err(e) => {
                    if let Ok(mut last) = last.lock() {
                        *last = Some(format!("{e:#}"));
                    }
                    None
                }
            }
        }
    })
    .await;
    result.with_context(|| match last_error.lock().ok().and_then(|mut last| last.take()) {
        Some(error) => format!("last error: {error}"),
        None => "no attempt finished".to_owned(),
    })
}

async fn connect(urls: &[String]) -> Result<async_nats::Client> {
    async_nats::ConnectOptions::new()
        .retain_servers_order()
        .connect(urls)
        .await
        .with_context(|| format!("connecting to {urls:?}"))
}

fn replicated_stream(name: &str, subjects: &str) -> stream::Config {
    stream::Config {
        name: name.to_owned(),
        subjects: vec![subjects.to_owned()],
        num_replicas: 3,
        storage: stream::StorageType::File,
        ..Default::default()
    }
}

/// Publishes with a message id until JetStream acks it; a retried publish whose first ack was lost is
/// deduplicated by the stream (at-least-once publishing, exactly-once storage within the window).
async fn publish_until_acked(js: &jetstream::Context, subject: &str, id: &str, payload: &str) -> Result<PublishAck> {
    eventually(&format!("an ack for message {id} on {subject}"), || async move {
        let publish = PublishMessage::build().payload(payload.to_owned().into()).message_id(id);
        let ack = js.send_publish(subject.to_owned(), publish).await.context("publishing")?;
        ack.await.context("waiting for the ack")
    })
    .await
}

/// Fetches up to `n` messages from a durable pull consumer, acking each (double ack: the server confirmed).
async fn fetch_and_ack(consumer: &jetstream::consumer::Consumer<pull::Config>, n: usize) -> Result<Vec<String>> {
    let mut batch =
        consumer.fetch().max_messages(n).expires(Duration::from_secs(2)).messages().await.context("fetching")?;
    let mut payloads = Vec::new();
    while let Some(message) = batch.next().await {
        let message = message.map_err(|e| anyhow!("{e}")).context("reading a fetched message")?;
        payloads.push(String::from_utf8_lossy(&message.payload).into_owned());
        message.double_ack().await.map_err(|e| anyhow!("{e}")).context("acking")?;
    }
    Ok(payloads)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_node_cluster_takes_a_replicated_stream_and_dies_on_drop() -> Result<()> {
    assert!(NatsCluster::start(1).is_err(), "a one-node cluster is refused");

    let started = Instant::now();
    let mut cluster = NatsCluster::start(3)?;
    eprintln!("3-node cluster ready for JetStream in {:?}", started.elapsed());
    assert_eq!(cluster.len(), 3);
    assert_eq!(cluster.urls().len(), 3);
    for i in 0..3 {
        assert_eq!(cluster.url(i), cluster.node(i).url());
        assert!(cluster.node_mut(i).is_running());
        assert!(cluster.node(i).jetstream());
        assert!(cluster.leafnode_url(i).starts_with("nats-leaf://127.0.0.1:"), "{}", cluster.leafnode_url(i));
        assert_eq!(cluster.index_of(cluster.server_name(i)), Some(i));
    }
    let leader = cluster.meta_leader()?;
    assert!(cluster.index_of(&leader).is_some(), "meta leader {leader}");
    assert!(cluster.kill(3).is_err(), "there is no node 3");

    let client = connect(&cluster.urls()).await?;
    let js = jetstream::new(client);
    let mut orders = js.create_stream(replicated_stream("ORDERS", "orders.>")).await.context("creating ORDERS")?;
    let info = orders.info().await.context("ORDERS info")?;
    let placement = info.cluster.clone().context("ORDERS has no cluster info")?;
    assert_eq!(placement.name.as_deref(), Some(cluster.name()), "{placement:?}");
    assert!(placement.leader.is_some(), "{placement:?}");
    assert_eq!(placement.replicas.len(), 2, "{placement:?}");

    let ack = js.publish("orders.1", "one".into()).await.context("publishing")?.await.context("ack")?;
    assert_eq!((ack.stream.as_str(), ack.sequence, ack.domain.as_str()), ("ORDERS", 1, HUB_DOMAIN), "{ack:?}");
    let stored = orders.get_raw_message(1).await.context("reading message 1")?;
    assert_eq!(&stored.payload[..], b"one");

    let pids: Vec<u32> = (0..3).map(|i| cluster.node(i).pid().context("node running")).collect::<Result<_>>()?;
    drop(cluster);
    for pid in pids {
        assert!(!process_exists(pid), "pid {pid} survived drop");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replicated_stream_survives_losing_its_leader_and_the_node_rejoins() -> Result<()> {
    let mut cluster = NatsCluster::start(3)?;
    let js = jetstream::new(connect(&cluster.urls()).await?);
    let mut stream = js.create_stream(replicated_stream("JOBS", "jobs.>")).await.context("creating JOBS")?;
    publish_until_acked(&js, "jobs.1", "job-1", "one").await?;

    // A second client, connected first to the stream leader (the other nodes are its fallbacks).
    let leader_name = stream.info().await?.cluster.clone().and_then(|c| c.leader).context("JOBS has no leader")?;
    let leader = cluster.index_of(&leader_name).with_context(|| format!("leader {leader_name} is no node"))?;
    let mut urls = cluster.urls();
    urls.rotate_left(leader);
    let edge = connect(&urls).await?;
    assert_eq!(edge.server_info().server_name, leader_name);
    let edge_js = jetstream::new(edge);

    cluster.kill(leader)?;
    assert!(!cluster.node_mut(leader).is_running());

    // The client reconnects to a survivor and publishes once JOBS has a new leader.
    let ack = publish_until_acked(&edge_js, "jobs.2", "job-2", "two").await?;
    assert_eq!((ack.stream.as_str(), ack.sequence), ("JOBS", 2), "{ack:?}");
    assert_ne!(edge_js.client().server_info().server_name, leader_name);

    let consumer_config =
        pull::Config { durable_name: Some("worker".to_owned()), ack_policy: AckPolicy::Explicit, ..Default::default() };
    let consumer = eventually("a durable consumer on JOBS", || {
        let edge_js = edge_js.clone();
        let config = consumer_config.clone();
        async move {
            let stream = edge_js.get_stream("JOBS").await.context("getting JOBS")?;
            stream.create_consumer(config).await.context("creating the consumer")
        }
    })
    .await?;
    let mut payloads = Vec::new();
    while payloads.len() < 2 {
        let batch = eventually("messages of JOBS", || fetch_and_ack(&consumer, 2 - payloads.len())).await?;
        payloads.extend(batch);
    }
    assert_eq!(payloads, ["one", "two"]);

    // Back with the same ports and store: it rejoins and catches up as a current replica of JOBS.
    let port = cluster.node(leader).port();
    cluster.restart(leader)?;
    assert_eq!(cluster.node(leader).port(), port);
    let (js_ref, leader_ref) = (&js, leader_name.as_str());
    eventually(&format!("{leader_name} to be a current replica of JOBS"), || async move {
        let info = js_ref.get_stream("JOBS").await.context("JOBS info")?.cached_info().clone();
        let placement = info.cluster.clone().context("no cluster info")?;
        let members: Vec<(&str, bool)> = placement
            .leader
            .iter()
            .map(|leader| (leader.as_str(), true))
            .chain(placement.replicas.iter().map(|peer| (peer.name.as_str(), peer.current && !peer.offline)))
            .collect();
        ensure!(members.len() == 3 && members.iter().all(|(_, current)| *current), "JOBS members: {members:?}");
        ensure!(members.iter().any(|(name, _)| *name == leader_ref), "JOBS members: {members:?}");
        ensure!(info.state.messages == 2, "JOBS holds {} messages", info.state.messages);
        Ok(())
    })
    .await?;
    let ack = publish_until_acked(&js, "jobs.3", "job-3", "three").await?;
    assert_eq!(ack.sequence, 3, "{ack:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_of_a_leaf_node_uses_the_hubs_jetstream() -> Result<()> {
    let cluster = NatsCluster::start(3)?;
    let mut leaf = cluster.start_leaf()?;
    assert!(!leaf.jetstream());
    let leaf_client = connect(&[leaf.url()]).await?;
    let js = jetstream::new(leaf_client);

    let mut edge = js.create_stream(replicated_stream("EDGE", "edge.>")).await.context("creating EDGE via the leaf")?;
    assert_eq!(edge.info().await?.cluster.as_ref().and_then(|c| c.name.as_deref()), Some(cluster.name()));
    let ack = js.publish("edge.1", "from the edge".into()).await.context("publishing")?.await.context("ack")?;
    assert_eq!((ack.stream.as_str(), ack.sequence, ack.domain.as_str()), ("EDGE", 1, HUB_DOMAIN), "{ack:?}");

    let bucket = js
        .create_key_value(kv::Config { bucket: "settings".to_owned(), num_replicas: 3, ..Default::default() })
        .await
        .context("creating a key-value bucket via the leaf")?;
    bucket.put("greeting", "hello".into()).await.context("put")?;
    assert_eq!(bucket.get("greeting").await.context("get")?.as_deref(), Some(&b"hello"[..]));

    // It is the hub's JetStream: a client of the cluster sees the same stream and bucket.
    let hub = jetstream::new(connect(&cluster.urls()).await?);
    let hub_bucket = hub.get_key_value("settings").await.context("the bucket on the hub")?;
    assert_eq!(hub_bucket.get("greeting").await.context("get on the hub")?.as_deref(), Some(&b"hello"[..]));
    let mut hub_edge = hub.get_stream("EDGE").await.context("EDGE on the hub")?;
    assert_eq!(hub_edge.info().await?.state.messages, 1);

    // A leaf restart keeps working (same port, same config).
    leaf.restart()?;
    let ack = publish_until_acked(&js, "edge.2", "edge-2", "again").await?;
    assert_eq!(ack.sequence, 2, "{ack:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_mapping_a_leaf_client_must_name_the_hubs_domain() -> Result<()> {
    let cluster = NatsCluster::start(3)?;
    let leaf = cluster.leaf().map_jetstream_to_hub(false).start()?;
    let leaf_client = connect(&[leaf.url()]).await?;

    // nats-server denies $JS.API.> across the leaf connection: no responders, which async-nats reports as
    // "JetStream unavailable".
    let plain = jetstream::new(leaf_client.clone());
    let err = plain.query_account().await.expect_err("the leaf has no JetStream of its own");
    assert_eq!(err.kind(), AccountErrorKind::JetStreamUnavailable, "{err}");

    let js = jetstream::with_domain(leaf_client, HUB_DOMAIN);
    js.create_stream(replicated_stream("DOMAIN", "domain.>")).await.context("creating a stream in domain hub")?;
    let ack = js.publish("domain.1", "hi".into()).await.context("publishing")?.await.context("ack")?;
    assert_eq!((ack.stream.as_str(), ack.sequence), ("DOMAIN", 1), "{ack:?}");
    let bucket = js
        .create_key_value(kv::Config { bucket: "domain-kv".to_owned(), num_replicas: 3, ..Default::default() })
        .await
        .context("creating a key-value bucket in domain hub")?;
    bucket.put("k", "v".into()).await.context("put")?;
    assert_eq!(bucket.get("k").await.context("get")?.as_deref(), Some(&b"v"[..]));
    Ok(())
}
