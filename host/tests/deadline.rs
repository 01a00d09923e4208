//! The CPU deadline, in a test binary of its own: it asserts a wall-clock bound (deadline + 50 ms), so it runs
//! alone rather than beside the other runtime tests, which would compete for the same two cores.

use std::time::{Duration, Instant};

use lattice_core::claims::Policy;
use lattice_host::{ActorConfig, ActorLimits, IncomingMessage, InvokeError, RuntimeBuilder};
use lattice_test_actors::{KV_COUNTER, SPIN};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spinning_actor_stops_at_its_deadline_while_others_are_served() {
    let rt =
        RuntimeBuilder::new().policy(Policy { allow_unsigned: true, ..Policy::default() }).build().expect("runtime");
    let limits =
        ActorLimits { cpu_time: Duration::from_millis(200), timeout: Duration::from_secs(5), ..ActorLimits::default() };
    let read = |path: &str| std::fs::read(path).expect("component");
    let spin = rt
        .load("spin", read(SPIN), ActorConfig { limits: limits.clone(), ..ActorConfig::default() })
        .await
        .expect("load spin");
    let counter = rt
        .load(
            "kv-counter",
            read(KV_COUNTER),
            ActorConfig { links: vec!["keyvalue:default=inmemory".parse().expect("link")], ..ActorConfig::default() },
        )
        .await
        .expect("load kv-counter");

    let started = Instant::now();
    let spinning = tokio::spawn(async move {
        let outcome = spin.invoke(IncomingMessage::new("")).await;
        (outcome.result, started.elapsed())
    });
    // While it spins, another actor is served.
    let reply = counter.invoke(IncomingMessage::new("meanwhile")).await.result.expect("kv-counter").expect("reply");
    assert_eq!(reply.data, b"1");
    let (result, elapsed) = spinning.await.expect("task");
    assert!(matches!(result, Err(InvokeError::CpuDeadline(d)) if d == limits.cpu_time), "{result:?}");
    assert!(
        elapsed <= limits.cpu_time + Duration::from_millis(50),
        "stopped after {elapsed:?}, deadline {:?}",
        limits.cpu_time
    );
}
