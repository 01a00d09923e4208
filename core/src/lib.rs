//! lattice's protocol core.
//!
//! Plain functions over data, driven by unit tests without a server:
//! - [`link`]: link specifications (`(interface, name) -> (provider, config)`) and their parsing.
//! - [`keys`]: issuer, actor, operator and host ed25519 keys with checksummed, nkeys-compatible text forms (`A…`,
//!   `M…`, `O…`, `N…`, `S…`).
//! - [`control_auth`]: operator signatures on control requests and link records, freshness and replay checks.
//! - [`host_auth`]: host identity: operator-signed host credentials and host signatures on heartbeats, records,
//!   bids, replies, the lease and remote-provider calls.
//! - [`claims`]: signed actor claims in a component custom section: sign, inspect, verify against a policy,
//!   and check a component's imports against the capabilities its claims allow.
//! - [`subject`]: every NATS subject, queue group and bucket name, and validated [`subject::Name`]s.
//! - [`reserved`]: the subject namespaces actors may never publish, request or subscribe on.
//! - [`reply`]: the reply subjects an answer may be published to (inboxes only).
//! - [`wire`]: versioned MessagePack control messages, events and invocation headers.
//! - [`allow`]: the URL patterns a host allows provider backends to connect to.
//! - [`manifest`]: app manifests (`lattice.toml`): parsing, validation with located errors, environments.
//! - [`nats_config`]: the nats-server accounts and user permissions of a lattice (`lattice nats-config`).
//! - [`units`]: sizes (`64MiB`) and durations (`1.5s`) as written in manifests.
//!
//! **Invariant:** this crate does no IO and runs no async runtime.

pub mod allow;
pub mod claims;
pub mod control_auth;
pub mod host_auth;
pub mod http;
pub mod keys;
pub mod link;
pub mod manifest;
pub mod nats_config;
pub mod reply;
pub mod reserved;
pub mod subject;
pub mod units;
pub mod wire;
