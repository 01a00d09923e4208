//! wasi:keyvalue through real components: counters, batch, CAS, and links.

use std::collections::HashSet;

use lattice_host::{ActorConfig, IncomingMessage, KeyValueQuota, RuntimeBuilder};
use lattice_test_actors::{KV_COUNTER, KV_PROBE};

use crate::{call, kv_default, load, runtime};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_counter_1000_concurrent_invocations_count_exactly() {
    let rt = runtime();
    let actor = load(&rt, KV_COUNTER, kv_default()).await;
    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let actor = actor.clone();
            tokio::spawn(async move { call(&actor, "hits").await })
        })
        .collect();
    let mut replies = HashSet::new();
    for task in tasks {
        replies.insert(task.await.expect("task"));
    }
    // Every increment returned a distinct value, and the last one is 1000.
    assert_eq!(replies.len(), 1000);
    assert!(replies.contains("1000"));
    assert_eq!(call(&actor, "hits").await, "1001");
}

#[tokio::test]
async fn batch_get_set_delete_follow_the_wit() {
    let rt = runtime();
    let probe = load(&rt, KV_PROBE, kv_default()).await;
    assert_eq!(call(&probe, "batch").await, "a=1,b=2,none,c=3;none,none,none,c=3;c-exists=true");
}

#[tokio::test]
async fn cas_fails_on_a_changed_value_and_the_returned_handle_retries() {
    let rt = runtime();
    let probe = load(&rt, KV_PROBE, kv_default()).await;
    assert_eq!(call(&probe, "cas").await, "seen=v1;conflict-current=v2;final=v3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cas_retry_loops_converge_under_concurrency() {
    let rt = runtime();
    let probe = load(&rt, KV_PROBE, kv_default()).await;
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let probe = probe.clone();
            tokio::spawn(async move { call(&probe, "cas-increment").await })
        })
        .collect();
    let mut finals = HashSet::new();
    for task in tasks {
        let reply = task.await.expect("task");
        finals.insert(reply.split(' ').next().expect("value").to_owned());
    }
    assert_eq!(finals.len(), 200, "each CAS increment saw a distinct value");
    assert!(finals.contains("200"));
}

#[tokio::test]
async fn unlinked_identifier_is_access_denied_as_an_error_value() {
    let rt = runtime();
    let probe = load(&rt, KV_PROBE, kv_default()).await;
    // The guest got an error value (and replied about it), not a trap.
    assert_eq!(call(&probe, "unlinked").await, "access-denied");
}

#[tokio::test]
async fn actor_without_links_gets_access_denied_for_its_default_store() {
    let rt = runtime();
    let counter = load(&rt, KV_COUNTER, ActorConfig::default()).await;
    let outcome = counter.invoke(IncomingMessage::new("x")).await;
    let error = outcome.result.expect_err("no link, no store").to_string();
    assert!(error.contains("AccessDenied"), "{error}");
}

#[tokio::test]
async fn links_with_different_buckets_never_collide_and_same_bucket_shares() {
    let rt = runtime();
    let config = |spec: &str| ActorConfig { links: vec![spec.parse().expect("link")], ..ActorConfig::default() };
    let a = load(&rt, KV_COUNTER, config("keyvalue:default=inmemory,bucket=a")).await;
    let b = load(&rt, KV_COUNTER, config("keyvalue:default=inmemory,bucket=b")).await;
    let a2 = load(&rt, KV_COUNTER, config("keyvalue:default=inmemory,bucket=a")).await;
    assert_eq!(call(&a, "k").await, "1");
    assert_eq!(call(&b, "k").await, "1");
    assert_eq!(call(&a2, "k").await, "2");
}

#[tokio::test]
async fn two_actors_linking_default_do_not_share_keys_unless_they_name_a_bucket() {
    let rt = runtime();
    let config = |spec: &str| ActorConfig { links: vec![spec.parse().expect("link")], ..ActorConfig::default() };
    let start = |name: &'static str, spec: &'static str| {
        let rt = rt.clone();
        async move { rt.load(name, crate::component(KV_COUNTER), config(spec)).await.expect("load") }
    };
    // Both link `default` with no bucket: each counts in its own (`a/default`, `b/default`).
    let a = start("a", "keyvalue:default=inmemory").await;
    let b = start("b", "keyvalue:default=inmemory").await;
    assert_eq!(call(&a, "k").await, "1");
    assert_eq!(call(&a, "k").await, "2");
    assert_eq!(call(&b, "k").await, "1", "b saw a's key");
    // Another instance of `a` (a replica) shares a's data.
    let a_again = start("a", "keyvalue:default=inmemory").await;
    assert_eq!(call(&a_again, "k").await, "3");
    // `bucket=shared` shares deliberately, whichever actors say it.
    let c = start("c", "keyvalue:default=inmemory,bucket=shared").await;
    let d = start("d", "keyvalue:default=inmemory,bucket=shared").await;
    assert_eq!(call(&c, "k").await, "1");
    assert_eq!(call(&d, "k").await, "2");
}

#[tokio::test]
async fn relinking_applies_to_the_next_invocation() {
    let rt = runtime();
    let actor = load(&rt, KV_COUNTER, kv_default()).await;
    assert_eq!(call(&actor, "k").await, "1");
    actor.set_links(&["keyvalue:default=inmemory,bucket=fresh".parse().expect("link")]).expect("relink");
    assert_eq!(call(&actor, "k").await, "1");
}

#[tokio::test]
async fn link_to_an_unknown_provider_is_refused_at_load() {
    let rt = runtime();
    let error = rt
        .load(
            "c",
            crate::component(KV_COUNTER),
            ActorConfig { links: vec!["keyvalue:default=redis".parse().expect("link")], ..ActorConfig::default() },
        )
        .await
        .expect_err("no redis provider registered");
    assert_eq!(error.to_string(), "no keyvalue provider named `redis` on this host (available: inmemory)");
}

#[tokio::test]
async fn logs_from_wasi_logging_stdout_and_stderr_are_captured() {
    let rt = runtime();
    let probe = load(&rt, KV_PROBE, kv_default()).await;
    let outcome = probe.invoke(IncomingMessage::new("log")).await;
    assert!(outcome.result.is_ok());
    let messages: Vec<_> = outcome.logs.iter().map(|l| l.message.as_str()).collect();
    assert_eq!(messages, ["through wasi:logging", "through stdout", "through stderr"]);
}

#[tokio::test]
async fn over_quota_writes_are_error_values_and_the_host_keeps_serving() {
    let rt = RuntimeBuilder::new()
        .policy(crate::allow_unsigned())
        .inmemory_keyvalue_quota(KeyValueQuota { max_bytes: 1 << 20, max_keys: 2 })
        .build()
        .expect("runtime");
    // Both actors name one bucket, so the quota is shared between them.
    let shared = || ActorConfig {
        links: vec!["keyvalue:default=inmemory,bucket=quota".parse().expect("link")],
        ..ActorConfig::default()
    };
    let probe = load(&rt, KV_PROBE, shared()).await;
    // `batch` writes three keys at once: over a two-key quota, set-many gets an error value (which the guest
    // returns as its handler error), not a trap, and nothing is written.
    let outcome = probe.invoke(IncomingMessage::new("batch")).await;
    let error = outcome.result.expect_err("three keys over a two-key quota").to_string();
    assert!(error.contains("set-many") && error.contains("quota exceeded") && error.contains("2 keys"), "{error}");
    // The host keeps serving, within the quota: one key here, a second one from another actor.
    assert_eq!(call(&probe, "cas").await, "seen=v1;conflict-current=v2;final=v3");
    let counter = load(&rt, KV_COUNTER, shared()).await;
    assert_eq!(call(&counter, "hits").await, "1");
    assert_eq!(call(&counter, "hits").await, "2", "overwriting a key at the key limit is allowed");
    let third = counter.invoke(IncomingMessage::new("more")).await.result.expect_err("a third key").to_string();
    assert!(third.contains("quota exceeded"), "{third}");
}
