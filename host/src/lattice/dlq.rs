//! Dead letters in the lattice: the stream that keeps them and the host's sink (the client's `dlq list` and
//! `dlq replay` are in [`lattice_client::dlq`]).
//!
//! A message an actor failed to handle on its last allowed delivery is published (through JetStream, acked)
//! to `lattice.<l>.dlq.<actor>`, kept 7 days in the stream `lattice_<l>_dlq`, with the original payload and
//! metadata and `Lattice-Dlq-*` headers (subject, reason, attempts, link, host); then `message.dead` is
//! published. Replaying one publishes it again on its subject with its original `lattice-msg-id` (so an
//! idempotent handler still recognises it) and removes it from the stream.

use std::sync::Arc;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, stream};
use lattice_core::subject::{Name, Subjects};
use lattice_core::wire::{EventData, headers};

use super::HostError;
use super::events::Events;
use crate::{DeadLetter, DeadLetters};

/// How long dead letters are kept.
const KEEP: Duration = Duration::from_secs(7 * 24 * 3600);
/// Longest reason kept in a dead letter's header.
const MAX_REASON: usize = 1000;

/// Opens (creating if needed) the dead-letter stream.
pub(crate) async fn stream(js: &jetstream::Context, subjects: &Subjects) -> Result<(), HostError> {
    let config = stream::Config {
        name: subjects.dlq_stream(),
        description: Some("lattice dead letters: messages actors failed to handle at least once".into()),
        subjects: vec![subjects.dlq_wildcard()],
        max_age: KEEP,
        storage: stream::StorageType::File,
        num_replicas: lattice_messaging_nats::replicas(&js.client()),
        ..Default::default()
    };
    js.get_or_create_stream(config)
        .await
        .map(drop)
        .map_err(|e| HostError::Setup { what: "the dead-letter stream", message: e.to_string() })
}

/// The host's [`DeadLetters`] sink: the dead-letter stream, then a `message.dead` event.
pub(crate) struct Sink {
    pub(crate) js: jetstream::Context,
    pub(crate) subjects: Arc<Subjects>,
    pub(crate) host: Name,
    pub(crate) events: Events,
}

/// A header value NATS can carry: line breaks become spaces.
fn header_text(text: &str, max: usize) -> String {
    text.chars().map(|c| if c.is_control() { ' ' } else { c }).take(max).collect()
}

#[lattice_provider_sdk::async_trait]
impl DeadLetters for Sink {
    async fn dead_letter(&self, letter: DeadLetter) -> Result<(), String> {
        let actor = Name::new(letter.actor.as_str()).map_err(|e| e.to_string())?;
        let mut map = HeaderMap::new();
        for (key, value) in &letter.metadata {
            // The sender's metadata went through NATS already; anything it cannot carry is skipped.
            if let (Ok(key), Ok(value)) =
                (key.parse::<async_nats::HeaderName>(), value.parse::<async_nats::HeaderValue>())
            {
                map.append(key, value);
            }
        }
        if let Some(content_type) = &letter.content_type {
            map.insert(headers::CONTENT_TYPE, header_text(content_type, MAX_REASON).as_str());
        }
        map.insert(headers::DLQ_SUBJECT, letter.subject.as_str());
        map.insert(headers::DLQ_REASON, header_text(&letter.reason, MAX_REASON).as_str());
        map.insert(headers::DLQ_ATTEMPTS, letter.attempts.to_string().as_str());
        map.insert(headers::DLQ_LINK, header_text(&letter.link, MAX_REASON).as_str());
        map.insert(headers::DLQ_HOST, self.host.as_str());
        map.insert(headers::MESSAGE_ID, header_text(&letter.id, MAX_REASON).as_str());
        // A retried dead-lettering (its ack was lost) is stored once.
        let dedup = format!("dlq/{actor}/{}/{}", letter.link, letter.id);
        map.insert(headers::NATS_MSG_ID, header_text(&dedup, MAX_REASON).as_str());
        let ack = self
            .js
            .publish_with_headers(self.subjects.dlq(&actor), map, letter.data.into())
            .await
            .map_err(|e| format!("publishing the dead letter: {e}"))?
            .await
            .map_err(|e| format!("storing the dead letter: {e}"))?;
        self.events
            .publish(EventData::MessageDead {
                actor,
                link: letter.link,
                subject: letter.subject,
                id: letter.id,
                attempts: letter.attempts,
                reason: letter.reason,
                seq: ack.sequence,
            })
            .await;
        Ok(())
    }
}
