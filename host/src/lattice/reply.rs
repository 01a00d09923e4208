//! Answering requests: every answer the host publishes to a reply subject it was given (invocation replies,
//! `unavailable` refusals, HTTP-over-NATS replies, control replies and refusals) goes through [`Replies`],
//! which publishes only to an [`Inbox`], and an [`Inbox`] exists only for a reply subject that passed
//! [`lattice_core::reply::check`].
//!
//! A request whose reply subject is no inbox is refused before any work is done for it: no answer, a
//! rate-limited warning naming the (sanitised) subject, and a live `reply.refused` event. A request without a
//! reply subject is no refusal: callers decide what that means (an invocation still runs, unanswered).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use async_nats::client::PublishError;
use async_nats::{Client, HeaderMap, Message, Subject};
use lattice_core::reply::Warnings;
use lattice_core::wire::EventData;

use super::events::Events;

/// A reply subject that passed [`lattice_core::reply::check`].
#[derive(Debug, Clone)]
pub(crate) struct Inbox(Subject);

impl Inbox {
    /// The subject.
    pub(crate) fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

/// The request's reply subject was refused (already logged and reported as an event).
#[derive(Debug)]
pub(crate) struct Refused;

/// The host's one way of answering requests. Cloneable: every clone shares the warning rate limit.
#[derive(Clone)]
pub(crate) struct Replies {
    client: Client,
    events: Events,
    warnings: Arc<Mutex<Warnings>>,
}

impl Replies {
    /// Answers on `client`, to `_INBOX.…` subjects only.
    pub(crate) fn new(client: Client, events: Events) -> Self {
        Self { client, events, warnings: Arc::default() }
    }

    /// Where the answer to `message` may go: `Ok(None)` when it has no reply subject, `Err` when its reply
    /// subject is refused (after the warning and the event).
    pub(crate) async fn inbox(&self, message: &Message) -> Result<Option<Inbox>, Refused> {
        let Some(reply) = &message.reply else { return Ok(None) };
        let Err(refused) = lattice_core::reply::check(reply) else {
            return Ok(Some(Inbox(reply.clone())));
        };
        let subject = lattice_core::reply::sanitise(&message.subject);
        let reason = refused.to_string();
        let may_warn = self.warnings.lock().unwrap_or_else(PoisonError::into_inner).may_warn(Instant::now());
        if let Some(suppressed) = may_warn {
            tracing::warn!(%subject, %reason, suppressed, "request refused unanswered: its reply subject is no inbox");
        }
        self.events.publish(EventData::ReplyRefused { subject, reason }).await;
        Err(Refused)
    }

    /// Publishes an answer with headers to `to`.
    pub(crate) async fn publish_with_headers(
        &self,
        to: &Inbox,
        headers: HeaderMap,
        payload: bytes::Bytes,
    ) -> Result<(), PublishError> {
        self.client.publish_with_headers(to.0.clone(), headers, payload).await
    }
}
