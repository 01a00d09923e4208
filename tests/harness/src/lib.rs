//! Real servers on loopback for lattice's integration tests.
//!
//! [`NatsServer`] and [`RedisServer`] each run the real binary as a child process
//! listening on 127.0.0.1 only, with everything it writes (JetStream store, log) in a
//! fresh tempdir owned by the value. `start()` returns once the server is ready (TCP
//! connect plus a protocol-level check; 10 s deadline, no fixed sleeps). `stop()` and
//! `restart()` bring the same server down and back up on the same port (NATS: with the
//! same JetStream store). Dropping the value kills the child by its own PID and waits for
//! it, so a test leaves no server behind (unless the test process itself is killed).
//!
//! Binaries: `nats-server` from `$LATTICE_NATS_SERVER`, else
//! `<workspace>/.venv/bin/nats-server`, else `PATH`; `redis-server` from
//! `$LATTICE_REDIS_SERVER`, else `PATH`. `scripts/setup.sh` installs both.
//!
//! [`wait_for`] polls an async condition with a deadline, for "eventually" assertions.
//!
//! [`NatsCluster`] runs `n` such NATS servers as one cluster (JetStream domain [`HUB_DOMAIN`], full-mesh
//! routes, a leafnode listener and a monitoring port per node; the generated config is on
//! [`NatsCluster`]). `start(n)` returns once the cluster is ready for JetStream (routes up, one meta
//! leader that sees every node current, `$JS.API.INFO` answered; 30 s deadline). `kill(i)` crashes one
//! node, `restart(i)` brings it back on the same ports and store and waits until it has rejoined.
//! [`NatsCluster::start_leaf`] starts a [`NatsServer`] without JetStream as a leaf node of the cluster and
//! returns once its clients reach the hub's JetStream. That takes a mapping: nats-server denies `$JS.API.>`
//! and `$KV.>` across a leaf connection, so the leaf maps them to the hub's domain
//! (`default_js_domain: { "$G": "hub" }`) and plain `async_nats::jetstream::new` works there; a leaf from
//! `cluster.leaf().map_jetstream_to_hub(false).start()` has no mapping, and its clients must use
//! `async_nats::jetstream::with_domain(client, "hub")`. See [`LeafBuilder`].
//!
//! ```
//! use std::io::{BufRead, BufReader};
//! use std::net::TcpStream;
//! use std::time::Duration;
//!
//! use lattice_test_harness::{NatsServer, RedisServer, wait_for};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> anyhow::Result<()> {
//! let mut nats = NatsServer::start()?; // JetStream on; or NatsServer::builder()...start()
//! println!("nats at {} (log: {})", nats.url(), nats.log_path().display());
//!
//! // A NATS server greets every client with INFO.
//! let mut greeting = String::new();
//! BufReader::new(TcpStream::connect(nats.addr())?).read_line(&mut greeting)?;
//! assert!(greeting.starts_with("INFO "), "{}", nats.log_contents());
//!
//! // Take it down and bring it back: same port, same JetStream store.
//! let port = nats.port();
//! nats.stop()?;
//! assert!(TcpStream::connect(nats.addr()).is_err());
//! nats.restart()?;
//! assert_eq!(nats.port(), port);
//!
//! // Wait (up to a deadline) for something that becomes true eventually.
//! let addr = nats.addr();
//! let stream = wait_for("nats to accept connections", Duration::from_secs(5), || async move {
//!     TcpStream::connect(addr).ok()
//! })
//! .await?;
//! drop(stream);
//!
//! let redis = RedisServer::start()?;
//! assert!(redis.url().starts_with("redis://127.0.0.1:"));
//! # Ok(())
//! # } // both servers are killed here, on drop
//! ```
//!
//! A cluster and a leaf node:
//!
//! ```
//! use lattice_test_harness::NatsCluster;
//!
//! # fn main() -> anyhow::Result<()> {
//! let mut cluster = NatsCluster::start(3)?; // ready for R3 streams
//! let urls = cluster.urls(); // connect a client with all of them to fail over
//! assert_eq!(urls.len(), 3);
//!
//! let leaf = cluster.start_leaf()?; // no JetStream of its own; its clients use the hub's
//! println!("leaf at {}, hub leafnode listeners {:?}", leaf.url(), cluster.leafnode_urls());
//!
//! // Crash a node that is not the JetStream meta leader (killing the leader costs a 4-9 s election).
//! let leader = cluster.meta_leader()?;
//! let follower = if cluster.server_name(0) == leader { 1 } else { 0 };
//! cluster.kill(follower)?; // SIGKILL; the other two keep the quorum
//! cluster.restart(follower)?; // same ports and store; returns once it has rejoined
//! # Ok(())
//! # } // every node and the leaf are killed here, on drop
//! ```

use std::future::Future;
use std::time::Duration;

use anyhow::bail;

mod cluster;
mod nats;
mod process;
mod redis;

pub use cluster::{CLUSTER_READY_TIMEOUT, HUB_DOMAIN, LeafBuilder, NatsCluster};
pub use nats::{NATS_SERVER_ENV, NatsServer, NatsServerBuilder, find_nats_server};
pub use redis::{REDIS_SERVER_ENV, RedisServer, RedisServerBuilder, find_redis_server};

/// Sends SIGTERM to `child` (a graceful stop request), by its own PID: `std` can only SIGKILL. The PID cannot
/// have been reused while `child` is not reaped. Fails when the signal cannot be sent (the process is gone, or
/// this is not a Unix system).
pub fn terminate(child: &std::process::Child) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use rustix::process::{Pid, Signal, kill_process};
        kill_process(Pid::from_child(child), Signal::TERM)
            .map_err(|e| anyhow::anyhow!("sending SIGTERM to process {}: {e}", child.id()))
    }
    #[cfg(not(unix))]
    {
        anyhow::bail!("cannot send SIGTERM to process {}: not a Unix system", child.id())
    }
}

/// How often [`wait_for`] polls.
pub const WAIT_FOR_INTERVAL: Duration = Duration::from_millis(20);

/// Calls `f` every ~20 ms until it yields `Some(value)`, and returns that value; fails,
/// naming `what`, if none came within `deadline`.
///
/// `f` is always called at least once. An attempt still running at the deadline is
/// abandoned (dropped), so a hanging check cannot outlast the deadline. Needs a tokio
/// runtime with the time driver enabled.
pub async fn wait_for<F, Fut, T>(what: &str, deadline: Duration, mut f: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let until = tokio::time::Instant::now() + deadline;
    loop {
        let remaining = until.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(remaining, f()).await {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => {}
            Err(_) => {
                bail!("timed out after {deadline:?} waiting for {what} (last check still running)")
            }
        }
        let now = tokio::time::Instant::now();
        if now >= until {
            bail!("timed out after {deadline:?} waiting for {what}");
        }
        tokio::time::sleep(WAIT_FOR_INTERVAL.min(until - now)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workspace_root_holds_the_workspace_manifest() {
        let root = process::workspace_root();
        let manifest = std::fs::read_to_string(root.join("Cargo.toml")).expect("read the workspace Cargo.toml");
        assert!(manifest.contains("[workspace]"), "{}", root.display());
    }

    #[tokio::test]
    async fn wait_for_returns_the_first_some() {
        let mut calls = 0;
        let value = wait_for("the third call", Duration::from_secs(5), || {
            calls += 1;
            let n = calls;
            async move { (n >= 3).then_some(n) }
        })
        .await
        .expect("wait_for");
        assert_eq!(value, 3);
    }

    #[tokio::test]
    async fn wait_for_times_out_naming_what() {
        let started = std::time::Instant::now();
        let err =
            wait_for("a miracle", Duration::from_millis(100), || async { None::<()> }).await.expect_err("never ready");
        assert!(err.to_string().contains("a miracle"), "{err}");
        assert!(started.elapsed() >= Duration::from_millis(100));
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn wait_for_abandons_a_hanging_check() {
        let err = wait_for("a hanging check", Duration::from_millis(100), std::future::pending::<Option<()>>)
            .await
            .expect_err("never ready");
        assert!(err.to_string().contains("a hanging check"), "{err}");
    }

    #[tokio::test]
    async fn wait_for_calls_at_least_once() {
        let value = wait_for("an immediate value", Duration::ZERO, || async { Some(7) }).await.expect("wait_for");
        assert_eq!(value, 7);
    }
}
