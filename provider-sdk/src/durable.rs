//! At-least-once delivery: durable consumers shared by every host that runs an actor, explicit
//! acknowledgement, and stable message ids.
//!
//! A provider with persistence (NATS JetStream) implements [`Messaging::subscribe_durable`] and
//! [`Messaging::send_durable`](crate::Messaging::send_durable). The host drives a [`DurableConsumer`]: it
//! [fetches](DurableConsumer::fetch) at most as many messages as it has free concurrency permits (so a slow
//! actor slows its consumer and loses nothing), handles each in a fresh instance, then settles it through its
//! [`Acknowledge`]: `ack` after the handler returned Ok, `nak` with a delay after a failure (the backend
//! delivers it again, to this subscriber or another), `term` once it has been dead-lettered.
//!
//! A message not settled within [`DurableSpec::ack_wait`] (its subscriber crashed) is delivered again;
//! [`Acknowledge::progress`] extends the wait for a handler that is still running.
//!
//! [`Messaging::subscribe_durable`]: crate::Messaging::subscribe_durable

use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use futures::Stream;

use crate::{InboundMessage, MsgError};

/// Message metadata key carrying a delivered message's [`Delivery::id`].
pub const MESSAGE_ID: &str = lattice_core::wire::headers::MESSAGE_ID;
/// Message metadata key carrying a delivered message's [`Delivery::attempt`] (`1` for the first delivery).
pub const DELIVERY_ATTEMPT: &str = "lattice-delivery";

/// What a durable subscription consumes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DurableSpec {
    /// The actor the consumer delivers to. With [`DurableSpec::link`] it names the consumer: subscribers with
    /// the same pair share one.
    pub actor: String,
    /// The actor's link.
    pub link: String,
    /// The subjects consumed (wildcards allowed).
    pub subjects: Vec<String>,
    /// The stream holding the messages: `None` lets the provider find or create one that captures `subjects`.
    pub stream: Option<String>,
    /// How long a delivered message may stay unsettled before the backend delivers it again.
    pub ack_wait: Duration,
}

/// One delivered message and how to settle it.
pub struct Delivery {
    /// The message. Its reply subject, if any, belongs to the backend (acknowledgements), not to a requester.
    pub message: InboundMessage,
    /// Identifies the message, the same on every delivery of it: the id it was sent with
    /// ([`Messaging::send_durable`](crate::Messaging::send_durable)), else one the backend assigns (for
    /// JetStream, `<stream>:<sequence>`).
    pub id: String,
    /// How many times it has been delivered, this one included (`1` the first time).
    pub attempt: u64,
    /// Settles it.
    pub ack: Box<dyn Acknowledge>,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("subject", &self.message.subject)
            .field("id", &self.id)
            .field("attempt", &self.attempt)
            .finish_non_exhaustive()
    }
}

/// Settles one delivered message.
#[async_trait]
pub trait Acknowledge: Send + Sync {
    /// Handled: never deliver it again.
    async fn ack(&self) -> Result<(), MsgError>;
    /// Not handled: deliver it again after `delay`.
    async fn nak(&self, delay: Duration) -> Result<(), MsgError>;
    /// Still being handled: restart the acknowledgement wait.
    async fn progress(&self) -> Result<(), MsgError>;
    /// Never deliver it again, unhandled (it has been dead-lettered).
    async fn term(&self) -> Result<(), MsgError>;
}

/// The messages of one fetch, yielded as they arrive. It ends after the requested count or the wait.
pub type DeliveryStream = Pin<Box<dyn Stream<Item = Result<Delivery, MsgError>> + Send>>;

/// A subscriber's handle on a durable consumer. Dropping it stops fetching; unsettled messages are delivered
/// again after their acknowledgement wait.
#[async_trait]
pub trait DurableConsumer: Send {
    /// Asks for at most `max` messages, waiting up to `wait` for them to arrive.
    async fn fetch(&mut self, max: usize, wait: Duration) -> Result<DeliveryStream, MsgError>;

    /// The stream the consumer reads (for logs and dead letters).
    fn stream(&self) -> &str;
}
