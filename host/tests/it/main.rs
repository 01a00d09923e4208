//! Integration tests of the actor runtime with real components built from this workspace.

mod bounds;
mod cache;
mod claims;
mod hostile;
mod http;
mod keyvalue;
mod messaging;
mod outgoing;
mod reuse;
mod unlinked;

use std::time::Duration;

use lattice_core::claims::Policy;
use lattice_host::{Actor, ActorConfig, ActorLimits, IncomingMessage, Runtime, RuntimeBuilder};

/// A runtime that runs the unsigned test components (claims are tested in `claims.rs`).
pub fn runtime() -> Runtime {
    RuntimeBuilder::new().policy(allow_unsigned()).build().expect("runtime")
}

/// The development policy: unsigned actors allowed.
pub fn allow_unsigned() -> Policy {
    Policy { allow_unsigned: true, ..Policy::default() }
}

pub fn component(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

pub fn kv_default() -> ActorConfig {
    ActorConfig { links: vec!["keyvalue:default=inmemory".parse().expect("link")], ..ActorConfig::default() }
}

pub async fn load(runtime: &Runtime, path: &str, config: ActorConfig) -> Actor {
    runtime.load(path, component(path), config).await.expect("load actor")
}

/// Invokes and returns the reply text, panicking on failure.
pub async fn call(actor: &Actor, payload: &str) -> String {
    let outcome = actor.invoke(IncomingMessage::new(payload)).await;
    let reply = outcome.result.unwrap_or_else(|e| panic!("invoking with {payload:?}: {e}")).expect("a reply");
    String::from_utf8(reply.data).expect("utf-8 reply")
}

pub fn tight_limits() -> ActorLimits {
    ActorLimits { cpu_time: Duration::from_millis(200), timeout: Duration::from_secs(5), ..ActorLimits::default() }
}
