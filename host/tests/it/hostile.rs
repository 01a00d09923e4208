//! Actors that misbehave on purpose: each is stopped by its limit while the host keeps serving.

use std::time::Duration;

use lattice_host::{ActorConfig, ActorLimits, IncomingMessage, InvokeError};
use lattice_test_actors::{HUGE_REPLY, MEM_BOMB, RECURSE, SPIN};

use crate::{load, runtime, tight_limits};

#[tokio::test]
async fn memory_bomb_traps_at_its_cap() {
    let rt = runtime();
    let limits = ActorLimits { memory_bytes: 16 << 20, ..tight_limits() };
    let bomb = load(&rt, MEM_BOMB, ActorConfig { limits, ..ActorConfig::default() }).await;
    let result = bomb.invoke(IncomingMessage::new("")).await.result;
    match result {
        Err(InvokeError::MemoryLimit { requested, cap }) => {
            assert_eq!(cap, 16 << 20);
            assert!(requested > cap);
        }
        other => panic!("expected a memory limit error, got {other:?}"),
    }
}

#[tokio::test]
async fn unbounded_recursion_traps_with_stack_overflow() {
    let rt = runtime();
    let recurse = load(&rt, RECURSE, ActorConfig::default()).await;
    let result = recurse.invoke(IncomingMessage::new("")).await.result;
    assert!(matches!(result, Err(InvokeError::StackOverflow)), "{result:?}");
}

#[tokio::test]
async fn huge_reply_is_refused_with_a_clear_error() {
    let rt = runtime();
    let huge = load(&rt, HUGE_REPLY, ActorConfig::default()).await;
    let limit = ActorLimits::default().max_reply_bytes;
    let result = huge.invoke(IncomingMessage::new("8388608")).await.result;
    assert_eq!(
        result.expect_err("8 MiB reply").to_string(),
        format!("reply of 8388608 bytes refused: the limit is {limit} bytes")
    );
    // A reply within the limit goes through.
    let ok = huge.invoke(IncomingMessage::new("1024")).await.result;
    assert_eq!(ok.expect("small reply").expect("a reply").data.len(), 1024);
}

#[tokio::test]
async fn wall_clock_timeout_bounds_the_whole_invocation() {
    let rt = runtime();
    // A CPU budget larger than the timeout: the timeout must fire first.
    let limits = ActorLimits {
        cpu_time: Duration::from_secs(30),
        timeout: Duration::from_millis(300),
        ..ActorLimits::default()
    };
    let spin = load(&rt, SPIN, ActorConfig { limits, ..ActorConfig::default() }).await;
    let result = spin.invoke(IncomingMessage::new("")).await.result;
    assert!(matches!(result, Err(InvokeError::Timeout(_))), "{result:?}");
}

fn rss_bytes() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kib: usize = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS line");
    kib * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_survives_1000_hostile_invocations_without_rss_growth() {
    let rt = runtime();
    let config = |limits: ActorLimits| ActorConfig { limits, ..ActorConfig::default() };
    let fast = ActorLimits { cpu_time: Duration::from_millis(20), memory_bytes: 8 << 20, ..ActorLimits::default() };
    let actors = [
        load(&rt, SPIN, config(fast.clone())).await,
        load(&rt, MEM_BOMB, config(fast.clone())).await,
        load(&rt, RECURSE, config(fast.clone())).await,
        load(&rt, HUGE_REPLY, config(fast)).await,
    ];
    let round = |n: usize| {
        let actors = actors.clone();
        async move {
            for i in 0..n {
                let outcome = actors[i % actors.len()].invoke(IncomingMessage::new("2000000")).await;
                assert!(outcome.result.is_err(), "hostile invocation {i} succeeded");
            }
        }
    };
    // Warm up so pools, caches and allocator arenas reach their steady size, then measure.
    round(100).await;
    let before = rss_bytes();
    round(1000).await;
    let after = rss_bytes();
    let growth = after.saturating_sub(before);
    assert!(growth < 32 << 20, "RSS grew by {} KiB over 1000 hostile invocations ({before} -> {after})", growth >> 10);
}
