//! lattice's actor runtime.
//!
//! A [`Runtime`] owns one wasmtime engine (component model, async, pooling allocator, epoch interruption with
//! its ticker on a dedicated OS thread), a linker with the host side of the actor world, an on-disk cache of
//! compiled components, and the provider instances actors can be linked to. [`Runtime::load`] admits a
//! component and returns an [`Actor`]; [`Actor::invoke`] delivers one message to a fresh instance under the
//! actor's [`ActorLimits`].
//!
//! **Invariant:** this crate knows nothing about NATS: an actor here runs with in-process providers only.
//!
//! ```no_run
//! # async fn demo(component: Vec<u8>) -> Result<(), Box<dyn std::error::Error>> {
//! use lattice_core::claims::Policy;
//! use lattice_core::keys::{KeyKind, PublicKey};
//! use lattice_host::{ActorConfig, IncomingMessage, RuntimeBuilder};
//!
//! // Only actors signed by a trusted issuer load (`lattice claims sign` signs a component).
//! let issuer = PublicKey::parse_as(&std::env::var("TRUSTED_ISSUER")?, KeyKind::Issuer)?;
//! let runtime = RuntimeBuilder::new()
//!     .policy(Policy { trusted_issuers: vec![issuer], ..Policy::default() })
//!     .build()?;
//! let config = ActorConfig {
//!     links: vec!["keyvalue:default=inmemory".parse()?],
//!     ..ActorConfig::default()
//! };
//! let actor = runtime.load("kv-counter", component, config).await?;
//! let outcome = actor.invoke(IncomingMessage::new("visits")).await;
//! let reply = outcome.result?.expect("kv-counter always replies");
//! println!("{}", String::from_utf8_lossy(&reply.data));
//! # Ok(())
//! # }
//! ```

mod admission;
mod bindings;
mod budget;
mod cache;
mod deadletter;
mod engine;
pub mod files;
mod http;
mod keyvalue;
pub mod lattice;
mod limits;
mod links;
mod logging;
mod messaging;
mod output;
mod runtime;
mod state;
mod subscriptions;

pub use budget::{MAX_RESOURCES, MIN_MESSAGE_BYTES, message_bytes_limit};
pub use cache::CacheError;
pub use deadletter::{DeadLetter, DeadLetters};
pub use engine::{EngineConfig, EngineError};
pub use lattice_keyvalue_inmemory::Quota as KeyValueQuota;
pub use limits::{ActorLimits, LimitsError};
pub use links::{LinkError, LinkSet, Providers, RemoteKeyValue};
pub use logging::{ACTOR_LOG_TARGET, MAX_LOG_BYTES, MAX_LOG_CONTEXT_BYTES, MAX_LOG_LINE_BYTES};
pub use messaging::{DEFAULT_REQUEST_TIMEOUT, MAX_METADATA_ENTRIES, ReplySubject, ReplyTo};
pub use runtime::{
    Actor, ActorConfig, INMEMORY_PROVIDER, IncomingMessage, InvocationOutcome, InvokeError, LoadError, LoadReport,
    LogLine, LogSource, Reply, Runtime, RuntimeBuilder, RuntimeError,
};
pub use subscriptions::SubscribeError;
