//! `RedisKeyValue` against a real `redis-server` (started by `lattice_test_harness` on a free loopback port).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use lattice_keyvalue_redis::{RedisConfig, RedisKeyValue};
use lattice_provider_sdk::{CasOutcome, KeyValue, KvError, LIST_PAGE_SIZE, parse_counter};
use lattice_test_harness::{RedisServer, wait_for};
use redis::aio::MultiplexedConnection;

/// Short, so the outage tests stay fast.
const TIMEOUT: Duration = Duration::from_millis(500);
/// What a failing call may take beyond the timeout.
const SLACK: Duration = Duration::from_secs(1);
/// How long Redis may take to be usable again after a restart.
const RECOVERY: Duration = Duration::from_secs(10);

fn provider(server: &RedisServer, prefix: &str) -> RedisKeyValue {
    let config = RedisConfig { prefix: prefix.to_owned(), timeout: TIMEOUT, ..RedisConfig::new(server.url()) };
    RedisKeyValue::connect(config).expect("connect")
}

/// A plain connection, to look at what the provider really stored.
async fn raw(server: &RedisServer) -> MultiplexedConnection {
    let client = redis::Client::open(server.url()).expect("client");
    client.get_multiplexed_async_connection().await.expect("raw connection")
}

async fn raw_get(conn: &mut MultiplexedConnection, key: &str) -> Option<Vec<u8>> {
    redis::cmd("GET").arg(key).query_async(conn).await.expect("raw GET")
}

async fn raw_keys(conn: &mut MultiplexedConnection) -> Vec<String> {
    let mut keys: Vec<String> = redis::cmd("KEYS").arg("*").query_async(conn).await.expect("raw KEYS");
    keys.sort();
    keys
}

fn assert_redis_error(result: Result<impl std::fmt::Debug, KvError>, what: &str) {
    match result {
        Err(KvError::Backend { backend, message }) => {
            assert_eq!(backend, "redis", "{what}: {message}");
            assert!(!message.is_empty(), "{what}");
        }
        other => panic!("{what}: expected a redis backend error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_set_delete_exists() {
    let server = RedisServer::start().expect("redis-server");
    let kv = provider(&server, "lattice");
    let mut conn = raw(&server).await;

    assert_eq!(kv.get("b", "k").await, Ok(None));
    assert_eq!(kv.exists("b", "k").await, Ok(false));
    kv.set("b", "k", b"v1".to_vec()).await.expect("set");
    assert_eq!(kv.get("b", "k").await, Ok(Some(b"v1".to_vec())));
    assert_eq!(kv.exists("b", "k").await, Ok(true));
    assert_eq!(raw_get(&mut conn, "lattice:b:k").await, Some(b"v1".to_vec()));

    // Binary and empty values round-trip exactly.
    let binary: Vec<u8> = (0..=255).collect();
    kv.set("b", "bin", binary.clone()).await.expect("set binary");
    assert_eq!(kv.get("b", "bin").await, Ok(Some(binary)));
    kv.set("b", "empty", Vec::new()).await.expect("set empty");
    assert_eq!(kv.get("b", "empty").await, Ok(Some(Vec::new())));
    assert_eq!(kv.exists("b", "empty").await, Ok(true));

    kv.set("b", "k", b"v2".to_vec()).await.expect("overwrite");
    assert_eq!(kv.get("b", "k").await, Ok(Some(b"v2".to_vec())));
    kv.delete("b", "k").await.expect("delete");
    assert_eq!(kv.get("b", "k").await, Ok(None));
    assert_eq!(kv.exists("b", "k").await, Ok(false));
    kv.delete("b", "k").await.expect("deleting a missing key succeeds");
    kv.ping().await.expect("ping");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_increments_are_exact() {
    let server = RedisServer::start().expect("redis-server");
    let kv = provider(&server, "lattice");
    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let kv = kv.clone();
            tokio::spawn(async move { kv.increment("b", "n", 1).await })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.expect("task").expect("increment"));
    }
    // Every increment saw a distinct value: none was lost or duplicated.
    results.sort_unstable();
    assert_eq!(results, (1..=1000).collect::<Vec<i64>>());

    let mut conn = raw(&server).await;
    assert_eq!(raw_get(&mut conn, "lattice:b:n").await, Some(b"1000".to_vec()));
    assert_eq!(kv.increment("b", "n", -1001).await, Ok(-1));
    assert_eq!(kv.increment("b", "fresh", 5).await, Ok(5));
    // Redis's decimal text is the SDK's counter convention.
    let stored = kv.get("b", "n").await.expect("get");
    assert_eq!(parse_counter("n", stored.as_deref()), Ok(-1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn increment_refuses_non_integers_and_overflow() {
    let server = RedisServer::start().expect("redis-server");
    let kv = provider(&server, "lattice");
    kv.set("b", "s", b"text".to_vec()).await.expect("set");
    assert_eq!(kv.increment("b", "s", 1).await, Err(KvError::NotAnInteger { key: "s".into() }));
    assert_eq!(kv.get("b", "s").await, Ok(Some(b"text".to_vec())), "a refused increment changes nothing");
    kv.set("b", "m", i64::MAX.to_string().into_bytes()).await.expect("set");
    assert_eq!(kv.increment("b", "m", 1).await, Err(KvError::Overflow { key: "m".into() }));
    kv.set("b", "min", i64::MIN.to_string().into_bytes()).await.expect("set");
    assert_eq!(kv.increment("b", "min", -1).await, Err(KvError::Overflow { key: "min".into() }));

    // A key of another type (written behind the provider's back) is not an integer either.
    let mut conn = raw(&server).await;
    let _: i64 = redis::cmd("LPUSH").arg("lattice:b:list").arg("x").query_async(&mut conn).await.expect("LPUSH");
    assert_eq!(kv.increment("b", "list", 1).await, Err(KvError::NotAnInteger { key: "list".into() }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_and_swap_semantics_and_convergence() {
    let server = RedisServer::start().expect("redis-server");
    let kv = provider(&server, "lattice");

    // Expecting absence.
    assert_eq!(kv.compare_and_swap("b", "k", None, b"a".to_vec()).await, Ok(CasOutcome::Swapped));
    assert_eq!(
        kv.compare_and_swap("b", "k", None, b"b".to_vec()).await,
        Ok(CasOutcome::Conflict { current: Some(b"a".to_vec()) })
    );
    // Expecting a value.
    assert_eq!(
        kv.compare_and_swap("b", "k", Some(b"x".to_vec()), b"b".to_vec()).await,
        Ok(CasOutcome::Conflict { current: Some(b"a".to_vec()) })
    );
    assert_eq!(kv.compare_and_swap("b", "k", Some(b"a".to_vec()), b"b".to_vec()).await, Ok(CasOutcome::Swapped));
    assert_eq!(kv.get("b", "k").await, Ok(Some(b"b".to_vec())));
    // Expecting a value of a missing key; the empty value is a value, not absence.
    assert_eq!(
        kv.compare_and_swap("b", "gone", Some(Vec::new()), b"z".to_vec()).await,
        Ok(CasOutcome::Conflict { current: None })
    );
    kv.set("b", "empty", Vec::new()).await.expect("set");
    assert_eq!(
        kv.compare_and_swap("b", "empty", None, b"z".to_vec()).await,
        Ok(CasOutcome::Conflict { current: Some(Vec::new()) })
    );
    assert_eq!(kv.compare_and_swap("b", "empty", Some(Vec::new()), b"z".to_vec()).await, Ok(CasOutcome::Swapped));
    // Binary values compare byte for byte.
    kv.set("b", "bin", vec![0, 255, 0]).await.expect("set");
    assert_eq!(
        kv.compare_and_swap("b", "bin", Some(vec![0, 255, 1]), vec![1]).await,
        Ok(CasOutcome::Conflict { current: Some(vec![0, 255, 0]) })
    );
    assert_eq!(kv.compare_and_swap("b", "bin", Some(vec![0, 255, 0]), vec![1]).await, Ok(CasOutcome::Swapped));

    // 64 concurrent retry loops each add one.
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let kv = kv.clone();
            tokio::spawn(async move {
                let mut seen = kv.get("b", "n").await?;
                loop {
                    let next = parse_counter("n", seen.as_deref())? + 1;
                    match kv.compare_and_swap("b", "n", seen, next.to_string().into_bytes()).await? {
                        CasOutcome::Swapped => return Ok::<_, KvError>(()),
                        CasOutcome::Conflict { current } => seen = current,
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task").expect("cas loop");
    }
    let mut conn = raw(&server).await;
    assert_eq!(raw_get(&mut conn, "lattice:b:n").await, Some(b"64".to_vec()));

    // The script is loaded again by itself after Redis forgets it.
    let _: () = redis::cmd("SCRIPT").arg("FLUSH").query_async(&mut conn).await.expect("SCRIPT FLUSH");
    assert_eq!(kv.compare_and_swap("b", "n", Some(b"64".to_vec()), b"65".to_vec()).await, Ok(CasOutcome::Swapped));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_operations() {
    let server = RedisServer::start().expect("redis-server");
    let kv = provider(&server, "lattice");

    assert_eq!(kv.get_many("b", Vec::new()).await, Ok(Vec::new()));
    kv.set_many("b", Vec::new()).await.expect("empty set_many");
    kv.delete_many("b", Vec::new()).await.expect("empty delete_many");

    let pairs: Vec<(String, Vec<u8>)> = (0..100).map(|i| (format!("k{i}"), format!("v{i}").into_bytes())).collect();
    kv.set_many("b", pairs).await.expect("set_many");
    let got = kv.get_many("b", vec!["k3".into(), "missing".into(), "k99".into(), "k3".into()]).await.expect("get_many");
    assert_eq!(
        got,
        vec![
            ("k3".to_owned(), Some(b"v3".to_vec())),
            ("missing".to_owned(), None),
            ("k99".to_owned(), Some(b"v99".to_vec())),
            ("k3".to_owned(), Some(b"v3".to_vec())),
        ]
    );
    kv.delete_many("b", (0..50).map(|i| format!("k{i}")).chain(["missing".to_owned()]).collect())
        .await
        .expect("delete_many");
    assert_eq!(kv.exists("b", "k49").await, Ok(false));
    assert_eq!(kv.exists("b", "k50").await, Ok(true));
    let mut conn = raw(&server).await;
    assert_eq!(raw_keys(&mut conn).await.len(), 50);
    assert_eq!(raw_get(&mut conn, "lattice:b:k50").await, Some(b"v50".to_vec()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_keys_pages_through_every_key() {
    let server = RedisServer::start().expect("redis-server");
    let kv = provider(&server, "lattice");
    let expected: HashSet<String> = (0..2500).map(|i| format!("key:{i}")).collect();
    for chunk in expected.iter().cloned().collect::<Vec<_>>().chunks(500) {
        kv.set_many("big", chunk.iter().map(|k| (k.clone(), b"x".to_vec())).collect()).await.expect("set_many");
    }
    // Neighbours that must not be listed: another bucket, a bucket that is a prefix of ours, another prefix.
    kv.set("other", "key:0", Vec::new()).await.expect("set");
    kv.set("bi", "g:x", Vec::new()).await.expect("set");
    provider(&server, "elsewhere").set("big", "stranger", Vec::new()).await.expect("set");

    let mut listed = HashSet::new();
    let mut pages = 0;
    let mut max_page = 0;
    let mut cursor = None;
    loop {
        let page = kv.list_keys("big", cursor).await.expect("list_keys");
        pages += 1;
        max_page = max_page.max(page.keys.len());
        assert!(pages < 100, "list_keys does not terminate");
        // SCAN may repeat a key across pages: deduplicate.
        listed.extend(page.keys);
        match page.cursor {
            Some(next) => {
                assert!(next.parse::<u64>().is_ok_and(|n| n != 0), "cursor {next:?}");
                cursor = Some(next);
            }
            None => break,
        }
    }
    assert!(pages >= 3, "2,500 keys in {pages} page(s)");
    assert_eq!(listed, expected);

    // A page may exceed LIST_PAGE_SIZE a little (SCAN's COUNT is a hint), never by much.
    assert!(max_page <= LIST_PAGE_SIZE + LIST_PAGE_SIZE / 10, "a page of {max_page} keys");
    let empty = kv.list_keys("nothing-here", None).await.expect("list empty bucket");
    assert!(empty.keys.is_empty(), "{empty:?}");
    let err = kv.list_keys("big", Some("not-a-cursor".into())).await.expect_err("bad cursor");
    assert!(err.to_string().contains("cursor"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buckets_and_prefixes_never_collide() {
    let server = RedisServer::start().expect("redis-server");
    let one = provider(&server, "one");
    let two = provider(&server, "two");
    for (kv, name) in [(&one, "one"), (&two, "two")] {
        for bucket in ["a", "b"] {
            kv.set(bucket, "k", format!("{name}/{bucket}").into_bytes()).await.expect("set");
            assert_eq!(kv.increment(bucket, "n", 1).await, Ok(1), "{name}/{bucket}");
        }
    }
    for (kv, name) in [(&one, "one"), (&two, "two")] {
        for bucket in ["a", "b"] {
            assert_eq!(kv.get(bucket, "k").await, Ok(Some(format!("{name}/{bucket}").into_bytes())));
            let page = kv.list_keys(bucket, None).await.expect("list");
            let mut keys = page.keys;
            keys.sort();
            assert_eq!(keys, ["k", "n"], "{name}/{bucket}");
        }
    }
    // Separators inside names cannot make two (prefix, bucket, key) triples meet.
    let nested = provider(&server, "one:a");
    nested.set("k", "x", b"nested".to_vec()).await.expect("set");
    one.set("a:k", "x", b"colon bucket".to_vec()).await.expect("set");
    one.set("a", "k:x", b"colon key".to_vec()).await.expect("set");
    assert_eq!(nested.get("k", "x").await, Ok(Some(b"nested".to_vec())));
    assert_eq!(one.get("a:k", "x").await, Ok(Some(b"colon bucket".to_vec())));
    assert_eq!(one.get("a", "k:x").await, Ok(Some(b"colon key".to_vec())));
    let mut keys = one.list_keys("a", None).await.expect("list").keys;
    keys.sort();
    assert_eq!(keys, ["k", "k:x", "n"]);
    assert_eq!(one.list_keys("a*", None).await.expect("glob bucket").keys, Vec::<String>::new());

    let mut conn = raw(&server).await;
    assert_eq!(
        raw_keys(&mut conn).await,
        [
            "one%3Aa:k:x",
            "one:a%3Ak:x",
            "one:a:k",
            "one:a:k:x",
            "one:a:n",
            "one:b:k",
            "one:b:n",
            "two:a:k",
            "two:a:n",
            "two:b:k",
            "two:b:n",
        ]
    );
    assert_eq!(one.redis_key("a:k", "x"), "one:a%3Ak:x");
}

/// Runs every operation once against a Redis that is down and checks each fails promptly, naming redis.
async fn assert_every_call_fails_promptly(kv: &RedisKeyValue) {
    async fn timed<T: std::fmt::Debug>(what: &str, call: impl std::future::Future<Output = Result<T, KvError>>) {
        let started = Instant::now();
        let result = call.await;
        let elapsed = started.elapsed();
        assert!(elapsed < TIMEOUT + SLACK, "{what} took {elapsed:?}");
        assert_redis_error(result, what);
    }
    timed("get", kv.get("b", "k")).await;
    timed("set", kv.set("b", "k", b"v".to_vec())).await;
    timed("delete", kv.delete("b", "k")).await;
    timed("exists", kv.exists("b", "k")).await;
    timed("list_keys", kv.list_keys("b", None)).await;
    timed("increment", kv.increment("b", "n", 1)).await;
    timed("compare_and_swap", kv.compare_and_swap("b", "k", None, b"v".to_vec())).await;
    timed("get_many", kv.get_many("b", vec!["k".into()])).await;
    timed("set_many", kv.set_many("b", vec![("k".into(), b"v".to_vec())])).await;
    timed("delete_many", kv.delete_many("b", vec!["k".into()])).await;
    timed("ping", kv.ping()).await;
}

async fn wait_until_usable(kv: &RedisKeyValue) {
    wait_for("the provider to reach redis again", RECOVERY, || {
        let kv = kv.clone();
        async move { kv.get("b", "probe").await.ok() }
    })
    .await
    .expect("provider recovers");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_fail_promptly_while_redis_is_down_and_recover_after() {
    let mut server = RedisServer::start().expect("redis-server");
    let kv = provider(&server, "lattice");
    kv.set("b", "k", b"before".to_vec()).await.expect("set while up");

    server.stop().expect("stop redis");
    for _ in 0..2 {
        assert_every_call_fails_promptly(&kv).await;
    }
    let err = kv.get("b", "k").await.expect_err("down");
    assert!(err.to_string().starts_with("redis: GET on 127.0.0.1:"), "{err}");

    server.restart().expect("restart redis");
    wait_until_usable(&kv).await;
    // No persistence: the restarted server is empty. Everything works again on the same provider.
    assert_eq!(kv.get("b", "k").await, Ok(None));
    kv.set("b", "k", b"after".to_vec()).await.expect("set after restart");
    assert_eq!(kv.increment("b", "n", 2).await, Ok(2));
    assert_eq!(kv.compare_and_swap("b", "k", Some(b"after".to_vec()), b"x".to_vec()).await, Ok(CasOutcome::Swapped));
    assert_eq!(kv.list_keys("b", None).await.map(|p| p.keys.len()), Ok(2));

    // And once more, killed hard this time.
    server.kill().expect("kill redis");
    assert_every_call_fails_promptly(&kv).await;
    server.restart().expect("restart redis");
    wait_until_usable(&kv).await;
    kv.set("b", "k", b"again".to_vec()).await.expect("set after second restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_created_while_redis_is_down_works_once_it_is_up() {
    let mut server = RedisServer::start().expect("redis-server");
    server.stop().expect("stop redis");

    let started = Instant::now();
    let kv = provider(&server, "lattice");
    assert!(started.elapsed() < Duration::from_millis(100), "connect must not wait for redis");
    assert_every_call_fails_promptly(&kv).await;

    server.restart().expect("start redis");
    wait_until_usable(&kv).await;
    kv.set("b", "k", b"v".to_vec()).await.expect("set");
    assert_eq!(kv.increment("b", "n", 1).await, Ok(1));
    let mut conn = raw(&server).await;
    assert_eq!(raw_get(&mut conn, "lattice:b:k").await, Some(b"v".to_vec()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unresponsive_redis_times_out() {
    // A listener that accepts connections but never answers: calls must end with the timeout, not hang.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let accept = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let config = RedisConfig { timeout: TIMEOUT, ..RedisConfig::new(format!("redis://{addr}")) };
    let kv = RedisKeyValue::connect(config).expect("connect");
    for _ in 0..2 {
        let started = Instant::now();
        let result = kv.get("b", "k").await;
        assert!(started.elapsed() < TIMEOUT + SLACK, "took {:?}", started.elapsed());
        assert_redis_error(result, "get against a silent server");
    }
    accept.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovers_once_a_refused_password_is_accepted() {
    let server = RedisServer::start().expect("redis-server");
    let mut conn = raw(&server).await;
    // This connection stays authenticated; new ones need the password from now on.
    let _: () =
        redis::cmd("CONFIG").arg("SET").arg("requirepass").arg("old").query_async(&mut conn).await.expect("CONFIG");

    let url = format!("redis://:new@127.0.0.1:{}", server.port());
    let kv = RedisKeyValue::connect(RedisConfig { timeout: TIMEOUT, ..RedisConfig::new(url) }).expect("connect");
    for _ in 0..2 {
        let started = Instant::now();
        let result = kv.get("b", "k").await;
        assert!(started.elapsed() < TIMEOUT + SLACK, "took {:?}", started.elapsed());
        assert_redis_error(result, "get with a refused password");
    }
    let err = kv.get("b", "k").await.expect_err("refused");
    assert!(!err.to_string().contains(":new@"), "the password stays out of errors: {err}");

    // The operator rotates Redis's password to the one the provider has: the same provider recovers.
    let _: () =
        redis::cmd("CONFIG").arg("SET").arg("requirepass").arg("new").query_async(&mut conn).await.expect("CONFIG");
    wait_until_usable(&kv).await;
    kv.set("b", "k", b"v".to_vec()).await.expect("set");
}
