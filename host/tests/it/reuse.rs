//! Opt-in instance reuse (`ActorLimits::instance_reuse`): one instance serves up to N invocations in a row,
//! is discarded after any failure, and every limit still applies to every invocation.

use std::time::Duration;

use lattice_host::{ActorConfig, ActorLimits, IncomingMessage, InvokeError};
use lattice_test_actors::{REUSE_PROBE, SPIN};

use crate::{call, load, runtime, tight_limits};

fn reuse(n: u32) -> ActorConfig {
    ActorConfig { limits: ActorLimits { instance_reuse: n, ..tight_limits() }, ..ActorConfig::default() }
}

#[tokio::test]
async fn the_default_is_a_fresh_instance_per_invocation() {
    let rt = runtime();
    let probe = load(&rt, REUSE_PROBE, ActorConfig::default()).await;
    for _ in 0..3 {
        assert_eq!(call(&probe, "").await, "1", "a fresh instance has served nothing before");
    }
}

#[tokio::test]
async fn one_instance_serves_up_to_n_invocations_then_a_fresh_one_takes_over() {
    let rt = runtime();
    let probe = load(&rt, REUSE_PROBE, reuse(3)).await;
    let replies = [call(&probe, "").await, call(&probe, "").await, call(&probe, "").await, call(&probe, "").await];
    assert_eq!(replies, ["1", "2", "3", "1"], "state carries over for 3 invocations, then a fresh instance");
}

#[tokio::test]
async fn an_instance_is_discarded_after_an_error_value_or_a_trap() {
    let rt = runtime();
    let probe = load(&rt, REUSE_PROBE, reuse(100)).await;
    assert_eq!(call(&probe, "").await, "1");
    assert_eq!(call(&probe, "").await, "2");
    let error = probe.invoke(IncomingMessage::new("error")).await.result;
    assert!(matches!(&error, Err(InvokeError::Handler(m)) if m == "error after 3"), "{error:?}");
    assert_eq!(call(&probe, "").await, "1", "the instance that returned an error is gone");
    let trap = probe.invoke(IncomingMessage::new("trap")).await.result;
    assert!(matches!(trap, Err(InvokeError::Trap(_))), "{trap:?}");
    assert_eq!(call(&probe, "").await, "1", "the instance that trapped is gone");
}

#[tokio::test]
async fn the_memory_cap_holds_across_the_invocations_of_one_instance() {
    let rt = runtime();
    let config = ActorConfig {
        limits: ActorLimits { instance_reuse: 100, memory_bytes: 24 << 20, ..tight_limits() },
        ..ActorConfig::default()
    };
    let probe = load(&rt, REUSE_PROBE, config).await;
    // Each invocation keeps 8 MiB more alive in the same instance: the third or fourth passes the 24 MiB cap.
    let mut served = 0;
    let error = loop {
        match probe.invoke(IncomingMessage::new("grow 8")).await.result {
            Ok(_) => served += 1,
            Err(error) => break error,
        }
        assert!(served < 4, "four invocations of 8 MiB each fit under a 24 MiB cap");
    };
    assert!(served >= 1, "one invocation fits");
    assert!(matches!(error, InvokeError::MemoryLimit { cap, .. } if cap == 24 << 20), "{error:?}");
    assert_eq!(call(&probe, "").await, "1", "the instance that hit its cap is gone");
}

#[tokio::test]
async fn every_invocation_of_a_reused_instance_gets_its_own_cpu_deadline_and_timeout() {
    let rt = runtime();
    let spin = load(&rt, SPIN, reuse(100)).await;
    for _ in 0..2 {
        let result = spin.invoke(IncomingMessage::new("")).await.result;
        assert!(matches!(result, Err(InvokeError::CpuDeadline(_))), "{result:?}");
    }
    let limits = ActorLimits {
        instance_reuse: 100,
        cpu_time: Duration::from_secs(30),
        timeout: Duration::from_millis(300),
        ..ActorLimits::default()
    };
    let spin = load(&rt, SPIN, ActorConfig { limits, ..ActorConfig::default() }).await;
    for _ in 0..2 {
        let result = spin.invoke(IncomingMessage::new("")).await.result;
        assert!(matches!(result, Err(InvokeError::Timeout(_))), "{result:?}");
    }
}

#[tokio::test]
async fn instance_reuse_of_zero_is_refused() {
    let rt = runtime();
    let bytes = crate::component(REUSE_PROBE);
    let error = rt.load("probe", bytes, reuse(0)).await.expect_err("instance_reuse 0");
    assert_eq!(error.to_string(), "instance reuse must be positive");
}
