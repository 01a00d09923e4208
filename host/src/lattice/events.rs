//! Publishing lattice events (`lattice.<l>.evt.<kind>`), each sealed with the host's key (the
//! `Lattice-Host-Seal` header, see `lattice_core::host_auth`) so the leader can tell them from forgeries.

use std::sync::Arc;

use async_nats::{Client, HeaderMap};
use lattice_core::host_auth::HostSigner;
use lattice_core::subject::{Name, Subjects};
use lattice_core::wire::{self, Event, EventData, headers};

use super::now_ms;

/// A cloneable handle that publishes this host's events.
#[derive(Clone)]
pub(crate) struct Events {
    client: Client,
    subjects: Arc<Subjects>,
    host: Name,
    signer: Arc<HostSigner>,
}

impl Events {
    pub(crate) fn new(client: Client, subjects: Arc<Subjects>, host: Name, signer: Arc<HostSigner>) -> Self {
        Self { client, subjects, host, signer }
    }

    /// Publishes an event, sealed. Events are best effort: a failure is logged, never propagated.
    pub(crate) async fn publish(&self, data: EventData) {
        let subject = self.subjects.event(data.kind());
        let now = now_ms();
        let event = Event { host: self.host.clone(), time_ms: now, data };
        let payload = wire::encode(&event);
        let result = self
            .client
            .publish_with_headers(subject.clone(), seal_headers(&self.signer, &subject, &payload, now), payload.into())
            .await;
        if let Err(error) = result {
            tracing::warn!(%subject, %error, "cannot publish event");
        }
    }
}

/// The header that carries `signer`'s seal of `payload` on `subject`.
pub(crate) fn seal_headers(signer: &HostSigner, subject: &str, payload: &[u8], now_ms: u64) -> HeaderMap {
    let mut map = HeaderMap::new();
    map.insert(headers::HOST_SEAL, signer.seal(subject, payload, now_ms).to_text().as_str());
    map
}
