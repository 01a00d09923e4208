//! Host memory a guest can make the host hold through key-value, in a test binary of its own: it reads this
//! process's resident set size (`/proc/self/status`), so no other test may allocate beside it.
//!
//! The amplifications of issue 22: one `get-many` of a 1 MiB value asked for 800 times (the host copied it
//! 800 times), 600 compare-and-swap handles on it (each held a copy), and buckets opened without end. Each must
//! stop at the invocation's budget with an error value, and the host's peak resident set must grow by less
//! than [`MAX_GROWTH`].

use std::time::Duration;

use lattice_core::claims::Policy;
use lattice_host::{ActorConfig, ActorLimits, IncomingMessage, MAX_RESOURCES, RuntimeBuilder, message_bytes_limit};
use lattice_test_actors::KV_PROBE;

/// How much the host's resident set may grow while the guest tries.
const MAX_GROWTH: u64 = 64 << 20;

const MIB: usize = 1 << 20;

/// A `/proc/self/status` field in bytes (`VmRSS`, `VmHWM`).
fn status_bytes(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status.lines().find(|l| l.starts_with(field)).unwrap_or_else(|| panic!("no {field} in {status}"));
    let kib: u64 = line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).expect("a size in kB");
    kib * 1024
}

/// Resets the peak resident set (`VmHWM`) to the current one, so the peak reached from now on can be read.
/// Where the kernel refuses, the current resident set is read instead of the peak.
fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_value_amplification_stops_at_the_invocation_budget_and_host_memory_stays_bounded() {
    let runtime =
        RuntimeBuilder::new().policy(Policy { allow_unsigned: true, ..Policy::default() }).build().expect("runtime");
    let limits =
        ActorLimits { cpu_time: Duration::from_secs(20), timeout: Duration::from_secs(60), ..ActorLimits::default() };
    let budget = message_bytes_limit(limits.max_reply_bytes);
    let config = ActorConfig { links: vec!["keyvalue:default=inmemory".parse().expect("link")], limits };
    let bytes = std::fs::read(KV_PROBE).expect("component");
    let probe = runtime.load("probe", bytes, config).await.expect("load");
    let call = |command: String| {
        let probe = probe.clone();
        async move {
            let outcome = probe.invoke(IncomingMessage::new(command.clone())).await;
            let reply = outcome.result.unwrap_or_else(|e| panic!("{command}: {e}")).expect("a reply");
            String::from_utf8(reply.data).expect("utf-8")
        }
    };
    // Warm up (instances, the 1 MiB value in the store), and check what fits still works.
    assert_eq!(call(format!("amplify-get-many {MIB} 4")).await, "got 4");
    assert_eq!(call("amplify-cas 1024 100".into()).await, "held 100");

    let before = status_bytes("VmRSS:");
    let peak_readable = reset_peak();
    let refused = format!("host resource limit exceeded: at most {budget} bytes held for the guest per invocation");

    let get_many = call(format!("amplify-get-many {MIB} 800")).await;
    assert_eq!(get_many, format!("error: Error::Other({refused:?})"));

    let cas = call(format!("amplify-cas {MIB} 600")).await;
    let fitting = budget / (MIB + "big".len());
    assert_eq!(cas, format!("held {fitting}; error: Error::Other({refused:?})"));

    let open = call(format!("open-many {}", 2 * MAX_RESOURCES)).await;
    let (held, error) = open.split_once("; error: ").unwrap_or_else(|| panic!("bucket handles unbounded: {open}"));
    assert!(held.strip_prefix("held ").and_then(|n| n.parse::<usize>().ok()).is_some_and(|n| n < MAX_RESOURCES));
    assert!(error.contains(&format!("at most {MAX_RESOURCES} host resources alive")), "{error}");

    let after = if peak_readable { status_bytes("VmHWM:") } else { status_bytes("VmRSS:") };
    let growth = after.saturating_sub(before);
    assert!(growth < MAX_GROWTH, "the host's resident set grew by {} MiB", growth >> 20);
    // The actor keeps serving.
    assert_eq!(call(format!("amplify-get-many {MIB} 2")).await, "got 2");
}
