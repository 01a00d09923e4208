//! The NATS messaging provider against a real nats-server: provider semantics, then the order pipeline on two
//! runtimes ("hosts") in one process that only share the server.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use lattice_core::claims::Policy;
use lattice_host::{Actor, ActorConfig, Runtime, RuntimeBuilder};
use lattice_keyvalue_inmemory::InMemoryKeyValue;
use lattice_messaging_nats::NatsMessaging;
use lattice_provider_sdk::{InboundMessage, KeyValue, MessageStream, Messaging, MsgError, OutboundMessage};
use lattice_test_actors::{KV_COUNTER, ORDER_STORE, ORDER_TOTAL};
use lattice_test_harness::{NatsServer, wait_for};

fn server() -> NatsServer {
    NatsServer::builder().jetstream(false).start().expect("nats-server")
}

async fn provider(server: &NatsServer, name: &str) -> NatsMessaging {
    NatsMessaging::connect(&server.url(), name).await.expect("connect")
}

async fn next(stream: &mut MessageStream) -> InboundMessage {
    tokio::time::timeout(Duration::from_secs(5), stream.next()).await.expect("a message in time").expect("open")
}

#[tokio::test]
async fn publish_subscribe_with_wildcards_headers_and_queue_groups() {
    let server = server();
    let publisher = provider(&server, "publisher").await;
    let subscriber = provider(&server, "subscriber").await;

    let mut orders = subscriber.subscribe(vec!["orders.*".into(), "refunds.>".into()], None).await.expect("sub");
    let msg = OutboundMessage {
        data: b"o-1 250".to_vec(),
        content_type: Some("text/plain".into()),
        metadata: vec![("trace".into(), "a".into()), ("trace".into(), "b".into()), ("from".into(), "test".into())],
    };
    publisher.send("orders.new", msg.clone()).await.expect("send");
    publisher.send("orders.eu.new", OutboundMessage::new("not matched")).await.expect("send");
    publisher.send("refunds.eu.new", OutboundMessage::new("r-1")).await.expect("send");
    let got = next(&mut orders).await;
    assert_eq!(got.subject, "orders.new");
    assert_eq!(got.data, msg.data);
    assert_eq!(got.content_type.as_deref(), Some("text/plain"));
    assert_eq!(
        got.metadata,
        [("from".into(), "test".into()), ("trace".into(), "a".into()), ("trace".into(), "b".into())]
    );
    assert_eq!(got.reply_to, None);
    assert_eq!(next(&mut orders).await.subject, "refunds.eu.new", "orders.eu.new does not match orders.*");

    // A queue group: each message to one member, all messages to the group.
    let mut members = Vec::new();
    for _ in 0..2 {
        members.push(subscriber.subscribe(vec!["jobs".into()], Some("workers".into())).await.expect("sub"));
    }
    for i in 0..100 {
        publisher.send("jobs", OutboundMessage::new(i.to_string())).await.expect("send");
    }
    let mut seen = Vec::new();
    let mut merged = futures::stream::select_all(members);
    while seen.len() < 100 {
        let message = tokio::time::timeout(Duration::from_secs(5), merged.next()).await.expect("in time");
        seen.push(String::from_utf8(message.expect("open").data).expect("utf-8").parse::<u32>().expect("n"));
    }
    seen.sort_unstable();
    assert_eq!(seen, (0..100).collect::<Vec<_>>(), "every job exactly once across the group");

    assert!(matches!(publisher.send("orders.*", OutboundMessage::new("")).await, Err(MsgError::Other(_))));
    let bad = OutboundMessage { metadata: vec![("a:b".into(), "v".into())], ..OutboundMessage::default() };
    assert!(matches!(publisher.send("orders.new", bad).await, Err(MsgError::Other(_))));
}

#[tokio::test]
async fn request_reply_collects_replies_and_reports_no_responders_and_timeouts() {
    let server = server();
    let requester = provider(&server, "requester").await;
    for name in ["one", "two"] {
        let responder = provider(&server, name).await;
        let mut requests = responder.subscribe(vec!["echo".into()], None).await.expect("sub");
        tokio::spawn(async move {
            while let Some(request) = requests.next().await {
                let mut data = name.as_bytes().to_vec();
                data.extend_from_slice(&request.data);
                let reply_to = request.reply_to.expect("a reply subject");
                responder.send(&reply_to, OutboundMessage::new(data)).await.expect("reply");
            }
        });
    }
    let one = requester.request("echo", OutboundMessage::new(":hi"), Duration::from_secs(5), 1).await.expect("req");
    assert_eq!(one.len(), 1);
    let mut both: Vec<_> = requester
        .request("echo", OutboundMessage::new(":hi"), Duration::from_secs(5), 2)
        .await
        .expect("request")
        .into_iter()
        .map(|m| String::from_utf8(m.data).expect("utf-8"))
        .collect();
    both.sort();
    assert_eq!(both, ["one:hi", "two:hi"]);

    let started = Instant::now();
    let error = requester.request("nobody", OutboundMessage::new("?"), Duration::from_secs(5), 1).await;
    assert!(matches!(&error, Err(MsgError::Other(m)) if m.contains("no responders")), "{error:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "no responders is reported at once");

    let silent = provider(&server, "silent").await;
    let _silent = silent.subscribe(vec!["silent".into()], None).await.expect("sub");
    let error = requester.request("silent", OutboundMessage::new("?"), Duration::from_millis(200), 1).await;
    assert_eq!(error, Err(MsgError::Timeout));
}

#[tokio::test]
async fn a_stopped_server_is_a_connection_error_or_buffered_never_a_panic() {
    let mut server = server();
    let nats = provider(&server, "doomed").await;
    server.stop().expect("stop");
    // async-nats buffers publishes while reconnecting; requests time out. Neither panics nor hangs.
    let _ = nats.send("a", OutboundMessage::new("x")).await;
    let error = nats.request("a", OutboundMessage::new("x"), Duration::from_millis(200), 1).await;
    assert!(error.is_err());
}

fn config(links: &[&str]) -> ActorConfig {
    ActorConfig { links: links.iter().map(|s| s.parse().expect("link")).collect(), ..ActorConfig::default() }
}

/// One "host": a runtime whose `nats` messaging provider has its own connection to the server.
async fn host(server: &NatsServer, name: &str, kv: &InMemoryKeyValue) -> Runtime {
    let nats = provider(server, name).await;
    RuntimeBuilder::new()
        .policy(Policy { allow_unsigned: true, ..Policy::default() })
        .messaging_provider("nats", Arc::new(nats))
        .keyvalue_provider("inmemory", Arc::new(kv.clone()))
        .build()
        .expect("runtime")
}

async fn load(runtime: &Runtime, path: &str, config: ActorConfig) -> Actor {
    let bytes = std::fs::read(path).expect("component");
    runtime.load(path, bytes, config).await.expect("load")
}

async fn counter(kv: &InMemoryKeyValue, key: &str) -> i64 {
    let value = kv.get("default", key).await.expect("get");
    value.map_or(0, |v| String::from_utf8(v).expect("utf-8").parse().expect("a counter"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_pipeline_across_two_hosts_counts_10000_orders_exactly() {
    let server = server();
    let (store_kv, total_kv) = (InMemoryKeyValue::new(), InMemoryKeyValue::new());
    let host_a = host(&server, "host-a", &store_kv).await;
    let host_b = host(&server, "host-b", &total_kv).await;
    let _store = load(
        &host_a,
        ORDER_STORE,
        config(&[
            "keyvalue:default=inmemory,bucket=default",
            "messaging:orders=nats,subscribe=orders.new,queue=order-store",
            "messaging:events=nats",
        ]),
    )
    .await;
    let _total = load(
        &host_b,
        ORDER_TOTAL,
        config(&["keyvalue:default=inmemory,bucket=default", "messaging:stored=nats,subscribe=orders.stored"]),
    )
    .await;

    let publisher = provider(&server, "publisher").await;
    const ORDERS: i64 = 10_000;
    let started = Instant::now();
    let mut sum = 0;
    for i in 0..ORDERS {
        let amount = i % 997 + 1;
        sum += amount;
        publisher.send("orders.new", OutboundMessage::new(format!("o-{i} {amount}"))).await.expect("publish");
    }
    publisher.client().flush().await.expect("flush");
    let published = started.elapsed();
    wait_for("every order to be counted on host b", Duration::from_secs(120), || {
        let kv = total_kv.clone();
        async move { (counter(&kv, "orders").await == ORDERS).then_some(()) }
    })
    .await
    .expect("orders counted");
    eprintln!(
        "{ORDERS} orders over NATS through two hosts: published in {published:?}, counted in {:?}",
        started.elapsed()
    );
    assert_eq!(counter(&total_kv, "total").await, sum);
    assert_eq!(store_kv.get("default", "order:o-17").await.expect("get"), Some(b"o-17 18".to_vec()));
    assert_eq!(total_kv.get("default", "order:o-17").await.expect("get"), None, "each host has its own store");
}

#[tokio::test]
async fn an_actor_answers_requests_over_nats_through_the_provider_it_came_from() {
    let server = server();
    let kv = InMemoryKeyValue::new();
    let runtime = host(&server, "host", &kv).await;
    let _counter = load(
        &runtime,
        KV_COUNTER,
        config(&["keyvalue:default=inmemory,bucket=default", "messaging:in=nats,subscribe=counter.*"]),
    )
    .await;
    let requester = provider(&server, "requester").await;
    for expected in ["1", "2"] {
        let replies = requester
            .request("counter.hit", OutboundMessage::new("visits"), Duration::from_secs(5), 1)
            .await
            .expect("a reply from the actor");
        assert_eq!(replies.len(), 1);
        assert_eq!(replies[0].data, expected.as_bytes());
    }
}
