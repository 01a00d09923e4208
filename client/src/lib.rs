//! The control client of a lattice: call actors and drive the lattice (start and stop actors and providers,
//! links, routes, apps, artifacts, dead letters, events) over NATS, without compiling a WebAssembly runtime.
//!
//! `lattice` (the CLI), the hosts' reconciler and ingress, and the integration tests all use
//! [`LatticeClient`]. Every call reports the host's outcome: a typed result or the exact error the host replied
//! with ([`ClientError::Remote`]).
//!
//! # Example
//!
//! Connect to the lattice `default` on a local NATS (`lattice up` starts one with a host) and call an actor:
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use lattice_client::{LatticeClient, NatsConfig};
//! use lattice_core::subject::Name;
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let nats = NatsConfig::new(["nats://127.0.0.1:4222"]);
//! let client = LatticeClient::connect(&nats, Name::new("default")?).await?;
//! let reply = client
//!     .call(&Name::new("counter")?, Some("count"), "hello".into(), Duration::from_secs(5), None)
//!     .await?;
//! println!("{:?} (served by {:?})", reply.data, reply.host);
//! # Ok(())
//! # }
//! ```
//!
//! Hosts that trust operators refuse unsigned control requests: give the client the operator's key with
//! [`LatticeClient::with_operator_key`].

pub mod apps;
pub mod artifacts;
mod client;
pub mod dlq;
mod nats;
pub mod state;

pub use apps::AppStateError;
pub use artifacts::{ArtifactError, ArtifactInfo, DIGEST_KEY};
pub use client::{
    Applied, CallOptions, CallReply, ClientError, HostRefused, HostStatus, LatticeClient, ProviderInstance, Published,
    Pushed, check_traceparent, lease_holder, new_traceparent,
};
pub use dlq::DeadLetterRecord;
pub use nats::{ConnectError, NatsConfig};

/// The key-value and messaging provider every host runs in-process (links name it `inmemory`).
pub const INMEMORY_PROVIDER: &str = "inmemory";

/// The messaging provider every host offers on its NATS connection (links name it `nats`).
pub const NATS_MESSAGING_PROVIDER: &str = "nats";

/// Unix time in milliseconds.
pub(crate) fn now_ms() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
