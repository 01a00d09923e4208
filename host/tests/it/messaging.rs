//! wasi:messaging through real components and the in-memory provider: subscriptions, an order pipeline of two
//! actors, request/reply from a guest, link checks, size caps.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use lattice_host::{Actor, ActorConfig, ActorLimits, LinkError, LoadError, Runtime, RuntimeBuilder};
use lattice_keyvalue_inmemory::InMemoryKeyValue;
use lattice_messaging_inmemory::InMemoryMessaging;
use lattice_provider_sdk::{KeyValue, Messaging, OutboundMessage};
use lattice_test_actors::{KV_COUNTER, KV_PROBE, ORDER_STORE, ORDER_TOTAL};
use lattice_test_harness::wait_for;

use crate::{allow_unsigned, call, component, load};

/// A runtime whose `inmemory` providers are instances the test can look into.
struct Bus {
    runtime: Runtime,
    messaging: InMemoryMessaging,
    kv: InMemoryKeyValue,
}

fn bus() -> Bus {
    let messaging = InMemoryMessaging::new();
    let kv = InMemoryKeyValue::new();
    let runtime = RuntimeBuilder::new()
        .policy(allow_unsigned())
        .messaging_provider("inmemory", Arc::new(messaging.clone()))
        .keyvalue_provider("inmemory", Arc::new(kv.clone()))
        .build()
        .expect("runtime");
    Bus { runtime, messaging, kv }
}

fn links(specs: &[&str]) -> ActorConfig {
    ActorConfig { links: specs.iter().map(|s| s.parse().expect("link")).collect(), ..ActorConfig::default() }
}

async fn counter(kv: &InMemoryKeyValue, bucket: &str, key: &str) -> i64 {
    let value = kv.get(bucket, key).await.expect("get");
    value.map_or(0, |v| String::from_utf8(v).expect("utf-8").parse().expect("a counter"))
}

async fn publish(bus: &InMemoryMessaging, subject: &str, payload: &str) {
    bus.send(subject, OutboundMessage::new(payload)).await.expect("publish");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_pipeline_counts_10000_orders_exactly() {
    let Bus { runtime, messaging, kv } = bus();
    let _store = load(
        &runtime,
        ORDER_STORE,
        links(&[
            "keyvalue:default=inmemory,bucket=orders",
            "messaging:orders=inmemory,subscribe=orders.new",
            "messaging:events=inmemory",
        ]),
    )
    .await;
    let _total = load(
        &runtime,
        ORDER_TOTAL,
        links(&["keyvalue:default=inmemory,bucket=totals", "messaging:stored=inmemory,subscribe=orders.stored"]),
    )
    .await;

    const ORDERS: i64 = 10_000;
    let started = Instant::now();
    let mut sum = 0;
    for i in 0..ORDERS {
        let amount = i % 997 + 1;
        sum += amount;
        publish(&messaging, "orders.new", &format!("o-{i} {amount}")).await;
    }
    let published = started.elapsed();
    wait_for("every order to be counted", Duration::from_secs(120), || {
        let kv = kv.clone();
        async move { (counter(&kv, "totals", "orders").await == ORDERS).then_some(()) }
    })
    .await
    .expect("orders counted");
    eprintln!(
        "{ORDERS} orders through order-store and order-total: published in {published:?}, counted in {:?}",
        started.elapsed()
    );
    assert_eq!(counter(&kv, "totals", "total").await, sum);
    assert_eq!(messaging.dropped(), 0);
    assert_eq!(kv.get("orders", "order:o-9999").await.expect("get"), Some(b"o-9999 30".to_vec()));
    let mut stored = 0;
    let mut cursor = None;
    loop {
        let page = kv.list_keys("orders", cursor).await.expect("list");
        stored += page.keys.len();
        match page.cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(stored, ORDERS as usize);
}

#[tokio::test]
async fn a_guest_requests_and_actors_reply_through_the_provider() {
    let Bus { runtime, messaging, kv } = bus();
    let probe = load(&runtime, KV_PROBE, links(&["messaging:rpc=inmemory"])).await;
    let _a = load(
        &runtime,
        KV_COUNTER,
        links(&["keyvalue:default=inmemory,bucket=a", "messaging:in=inmemory,subscribe=counter.*"]),
    )
    .await;

    // One responder, default options: one reply. A reply from `request` cannot be replied to.
    assert_eq!(
        call(&probe, "request counter.hit visits").await,
        "1:1;reply-to-reply=other: a reply received from `request` cannot be replied to"
    );

    // Two responders: expected 2 returns both as soon as they are in; timeout alone gathers until it ends.
    let _b = load(
        &runtime,
        KV_COUNTER,
        links(&["keyvalue:default=inmemory,bucket=b", "messaging:in=inmemory,subscribe=counter.hit"]),
    )
    .await;
    assert!(call(&probe, "request counter.hit visits 5000 2").await.starts_with("2:1|2;"));
    let started = Instant::now();
    assert!(call(&probe, "request counter.hit visits 300").await.starts_with("2:2|3;"));
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(counter(&kv, "a", "visits").await, 3);

    // The host side can request from actors too.
    let replies = messaging
        .request("counter.other", OutboundMessage::new("k"), Duration::from_secs(5), 1)
        .await
        .expect("request to an actor");
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0].data, b"1");

    // Nobody subscribed: at once; a silent subscriber: timeout.
    assert_eq!(call(&probe, "request nobody.home x").await, "other: no responders for subject `nobody.home`");
    let _silent = messaging.subscribe(vec!["silent".into()], None).await.expect("subscribe");
    assert_eq!(call(&probe, "request silent x 200").await, "timeout");
}

#[tokio::test]
async fn queue_groups_deliver_each_message_to_one_actor_of_the_group() {
    let Bus { runtime, messaging, kv } = bus();
    let config =
        links(&["keyvalue:default=inmemory,bucket=shared", "messaging:in=inmemory,subscribe=work,queue=workers"]);
    let _one = load(&runtime, KV_COUNTER, config.clone()).await;
    let _two = load(&runtime, KV_COUNTER, config).await;
    for _ in 0..4 {
        let replies = messaging.request("work", OutboundMessage::new("jobs"), Duration::from_millis(200), 0).await;
        assert_eq!(replies.expect("a reply").len(), 1, "one member of the group answers");
    }
    assert_eq!(counter(&kv, "shared", "jobs").await, 4);
}

#[tokio::test]
async fn unlinked_connect_is_permission_denied_as_an_error_value() {
    let Bus { runtime, .. } = bus();
    let probe = load(&runtime, KV_PROBE, links(&["messaging:rpc=inmemory"])).await;
    assert_eq!(call(&probe, "connect-unlinked").await, "permission-denied: no messaging link named `not-linked`");
}

#[tokio::test]
async fn sends_above_the_size_cap_are_refused_as_error_values() {
    let Bus { runtime, messaging, .. } = bus();
    let limits = ActorLimits { max_reply_bytes: 1000, ..ActorLimits::default() };
    let config = ActorConfig { limits, ..links(&["messaging:rpc=inmemory"]) };
    let probe = load(&runtime, KV_PROBE, config).await;
    let mut big = messaging.subscribe(vec!["probe.big".into()], None).await.expect("subscribe");

    assert_eq!(call(&probe, "send-big 1000").await, "ok");
    assert_eq!(big.next().await.expect("a message").data.len(), 1000);
    assert_eq!(call(&probe, "send-big 1001").await, "other: message of 1001 bytes exceeds the limit of 1000 bytes");
    assert_eq!(call(&probe, "send-big 7").await, "ok");
    assert_eq!(big.next().await.expect("a message").data.len(), 7, "the refused message never went out");
}

#[tokio::test]
async fn a_disconnected_client_fails_with_connection() {
    let Bus { runtime, .. } = bus();
    let probe = load(&runtime, KV_PROBE, links(&["messaging:rpc=inmemory"])).await;
    assert_eq!(call(&probe, "disconnected").await, "disconnect=ok;send=connection: client `rpc` is disconnected");
}

#[tokio::test]
async fn subscriptions_follow_link_changes_and_stop_with_the_actor() {
    let Bus { runtime, messaging, kv } = bus();
    let subscribed = ["keyvalue:default=inmemory,bucket=default", "messaging:in=inmemory,subscribe=hits.*|misses.>"];
    let actor: Actor = load(&runtime, KV_COUNTER, links(&subscribed)).await;
    assert_eq!((messaging.interest("hits.a"), messaging.interest("misses.a.b")), (1, 1));
    publish(&messaging, "hits.a", "seen").await;
    let kv2 = kv.clone();
    wait_for("the message to be handled", Duration::from_secs(10), || {
        let kv = kv2.clone();
        async move { (counter(&kv, "default", "seen").await == 1).then_some(()) }
    })
    .await
    .expect("handled");

    // A link change that leaves the subscribing links alone keeps the subscription.
    let same = ["keyvalue:default=inmemory,bucket=other", subscribed[1]];
    actor.set_links(&links(&same).links).expect("relink");
    assert_eq!(actor.resubscribe().await.expect("resubscribe"), 1);
    assert_eq!(messaging.subscriptions(), 1);

    // Dropping the subscribing link stops it.
    actor.set_links(&links(&["keyvalue:default=inmemory", "messaging:in=inmemory"]).links).expect("relink");
    assert_eq!(actor.resubscribe().await.expect("resubscribe"), 0);
    assert_eq!(messaging.interest("hits.a"), 0);

    // Adding it back subscribes in the background.
    actor.set_links(&links(&subscribed).links).expect("relink");
    let bus2 = messaging.clone();
    wait_for("the subscription to come back", Duration::from_secs(10), || {
        let bus = bus2.clone();
        async move { (bus.interest("hits.a") == 1).then_some(()) }
    })
    .await
    .expect("resubscribed");

    // The subscription ends with the actor.
    drop(actor);
    wait_for("the subscription to stop", Duration::from_secs(10), || {
        let bus = messaging.clone();
        async move { (bus.subscriptions() == 0).then_some(()) }
    })
    .await
    .expect("unsubscribed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_deliveries_share_the_actors_concurrency_permits() {
    let Bus { runtime, messaging, .. } = bus();
    let limits = ActorLimits { max_concurrency: 1, ..ActorLimits::default() };
    let config =
        ActorConfig { limits, ..links(&["keyvalue:default=inmemory", "messaging:in=inmemory,subscribe=probe"]) };
    // kv-probe's `cas-increment` reports its CAS attempts: with one instance at a time, every increment takes
    // exactly one attempt, however many requests arrive at once.
    let _probe = load(&runtime, KV_PROBE, config).await;
    let requests: Vec<_> = (0..50)
        .map(|_| {
            let messaging = messaging.clone();
            tokio::spawn(async move {
                let replies = messaging
                    .request("probe", OutboundMessage::new("cas-increment"), Duration::from_secs(30), 1)
                    .await
                    .expect("a reply");
                String::from_utf8(replies[0].data.clone()).expect("utf-8")
            })
        })
        .collect();
    let mut values = Vec::new();
    for request in requests {
        let reply = request.await.expect("task");
        let (value, attempts) = reply.split_once(" after ").expect("`<n> after <k> attempts`");
        assert_eq!(attempts, "1 attempts", "{reply}");
        values.push(value.parse::<u32>().expect("a number"));
    }
    values.sort_unstable();
    assert_eq!(values, (1..=50).collect::<Vec<_>>());
}

#[tokio::test]
async fn bad_messaging_links_are_refused_at_load() {
    let Bus { runtime, .. } = bus();
    let refuse = |spec: &'static str| {
        let runtime = runtime.clone();
        async move { runtime.load("c", component(KV_COUNTER), links(&[spec])).await.expect_err(spec) }
    };
    let error = refuse("messaging:in=inmemory,subscribe=a..b").await;
    assert!(matches!(error, LoadError::Links(LinkError::Config { .. })), "{error}");
    assert!(error.to_string().contains("invalid subject `a..b`"), "{error}");
    let error = refuse("messaging:in=inmemory,queue=q").await;
    assert!(error.to_string().contains("`queue` needs `subscribe`"), "{error}");
    let error = refuse("messaging:in=nats").await;
    assert_eq!(error.to_string(), "no messaging provider named `nats` on this host (available: inmemory)");
}

#[tokio::test]
async fn the_builtin_inmemory_messaging_provider_is_registered() {
    let runtime = crate::runtime();
    assert!(runtime.providers().messaging("inmemory").is_some());
    assert!(runtime.providers().names().contains(&"messaging:inmemory".to_string()));
}
