//! Publishing lattice events (`lattice.<l>.evt.<kind>`).

use std::sync::Arc;

use async_nats::Client;
use lattice_core::subject::{Name, Subjects};
use lattice_core::wire::{self, Event, EventData};

use super::now_ms;

/// A cloneable handle that publishes this host's events.
#[derive(Clone)]
pub(crate) struct Events {
    client: Client,
    subjects: Arc<Subjects>,
    host: Name,
}

impl Events {
    pub(crate) fn new(client: Client, subjects: Arc<Subjects>, host: Name) -> Self {
        Self { client, subjects, host }
    }

    /// Publishes an event. Events are best effort: a failure is logged, never propagated.
    pub(crate) async fn publish(&self, data: EventData) {
        let subject = self.subjects.event(data.kind());
        let event = Event { host: self.host.clone(), time_ms: now_ms(), data };
        if let Err(error) = self.client.publish(subject.clone(), wire::encode(&event).into()).await {
            tracing::warn!(%subject, %error, "cannot publish event");
        }
    }
}
