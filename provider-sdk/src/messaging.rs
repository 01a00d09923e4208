//! The `wasi:messaging` provider trait, its message types and errors, and the subject rules every backend
//! shares.

use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use futures::Stream;

#[cfg(doc)]
use crate::durable::Delivery;
use crate::durable::{DurableConsumer, DurableSpec};

/// Longest subject (or queue group name) accepted, in bytes.
pub const MAX_SUBJECT_LEN: usize = 1024;

/// A messaging failure. The host maps it to `wasi:messaging/types.error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MsgError {
    /// A request got no reply in time.
    #[error("timed out")]
    Timeout,
    /// The backend failed or could not be reached.
    #[error("{backend}: {message}")]
    Connection {
        /// Which backend failed (for example `nats`), so callers know where to look.
        backend: String,
        /// What went wrong, in the backend's terms.
        message: String,
    },
    /// The backend refused the operation (for example, the account may not publish on the subject).
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    /// The provider does not offer this operation (for example at-least-once delivery on a backend without
    /// persistence).
    #[error("not supported: {0}")]
    Unsupported(String),
    /// Any other failure: an invalid subject, no responders for a request…
    #[error("{0}")]
    Other(String),
}

/// A message to publish.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboundMessage {
    /// The payload.
    pub data: Vec<u8>,
    /// The media type of the payload, if known.
    pub content_type: Option<String>,
    /// Key-value pairs carried with the message (NATS headers). Passed through uninterpreted.
    pub metadata: Vec<(String, String)>,
}

impl OutboundMessage {
    /// A message with just a payload.
    pub fn new(data: impl Into<Vec<u8>>) -> Self {
        Self { data: data.into(), ..Self::default() }
    }
}

/// A message received from a subscription or as a reply to a request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InboundMessage {
    /// The subject it was published on.
    pub subject: String,
    /// The payload.
    pub data: Vec<u8>,
    /// The media type of the payload, if the sender set one.
    pub content_type: Option<String>,
    /// Key-value pairs the sender attached.
    pub metadata: Vec<(String, String)>,
    /// Where replies go: answer with [`Messaging::send`] to this subject.
    pub reply_to: Option<String>,
}

/// The messages of one subscription, in the order the backend delivered them. Dropping it unsubscribes.
pub type MessageStream = Pin<Box<dyn Stream<Item = InboundMessage> + Send>>;

/// The `wasi:messaging` semantics a messaging provider implements, over NATS-style subjects.
///
/// **Subjects** are dot-separated tokens (`orders.new`): not empty, no empty tokens, no whitespace or control
/// characters, at most [`MAX_SUBJECT_LEN`] bytes. Subscriptions may use wildcards as whole tokens: `*` matches
/// exactly one token, `>` (last token only) matches one or more. Published subjects have no wildcards.
/// [`validate_subject`] and [`subject_matches`] implement these rules so every backend agrees.
///
/// **Queue groups**: subscriptions that give the same queue name share the messages that match them: each
/// message goes to one member of each group (and to every subscription without a queue).
///
/// **Delivery** is at most once, as in core NATS: a message published while nobody subscribes is gone. A
/// backend with persistence may also offer at-least-once delivery: [`Messaging::subscribe_durable`] and
/// [`Messaging::send_durable`] (the defaults refuse with [`MsgError::Unsupported`]); see [`crate::durable`].
///
/// **Replies**: a message received with a `reply_to` subject is answered by [`Messaging::send`] to that subject.
///
/// Implementations must be safe to share between tasks and callable concurrently.
///
/// ```
/// use lattice_provider_sdk::{subject_matches, validate_subject};
///
/// assert!(subject_matches("orders.*", "orders.new"));
/// assert!(subject_matches("orders.>", "orders.eu.new"));
/// assert!(!subject_matches("orders.*", "orders.eu.new"));
/// assert!(validate_subject("orders.>", true).is_ok());
/// assert!(validate_subject("orders.>", false).is_err()); // no wildcards when publishing
/// ```
#[async_trait]
pub trait Messaging: Send + Sync + 'static {
    /// Publishes `msg` on `subject` (no wildcards).
    async fn send(&self, subject: &str, msg: OutboundMessage) -> Result<(), MsgError>;

    /// Publishes `msg` on `subject` with a fresh reply subject and collects the replies: returns once
    /// `expected_replies` have arrived (0: no count limit, wait for the whole `timeout`), or at `timeout` with
    /// what arrived by then. No reply at all by `timeout` is [`MsgError::Timeout`]; nobody subscribed to
    /// `subject` is reported at once as [`MsgError::Other`] ("no responders") where the backend can tell.
    async fn request(
        &self,
        subject: &str,
        msg: OutboundMessage,
        timeout: Duration,
        expected_replies: u32,
    ) -> Result<Vec<InboundMessage>, MsgError>;

    /// Subscribes to `subjects` (wildcards allowed), in queue group `queue` if given. When this returns, the
    /// subscription is active: messages published afterwards are delivered. Dropping the stream unsubscribes.
    ///
    /// Overlapping subjects in one call may deliver a message once per matching subject on some backends
    /// (NATS); the in-memory provider delivers it once.
    async fn subscribe(&self, subjects: Vec<String>, queue: Option<String>) -> Result<MessageStream, MsgError>;

    /// Starts (or joins) the durable consumer `spec` describes: every subscriber with the same
    /// [`DurableSpec::actor`] and [`DurableSpec::link`] shares it, so each message is handled by one of them at a
    /// time, and a message is delivered again until it is acknowledged. See [`crate::durable`].
    async fn subscribe_durable(&self, spec: DurableSpec) -> Result<Box<dyn DurableConsumer>, MsgError> {
        let _ = spec;
        Err(MsgError::Unsupported("at-least-once delivery (this provider has no persistence)".into()))
    }

    /// Publishes `msg` on `subject` durably: returns Ok only once the backend has stored it. `id`, when given,
    /// identifies the message: a second send with the same id within the backend's deduplication window is
    /// stored once, and subscribers see it as the message's [`Delivery::id`].
    async fn send_durable(&self, subject: &str, msg: OutboundMessage, id: Option<&str>) -> Result<(), MsgError> {
        let _ = (subject, msg, id);
        Err(MsgError::Unsupported("at-least-once delivery (this provider has no persistence)".into()))
    }
}

/// Checks `subject` against the subject rules of [`Messaging`]; `wildcards` allows `*` and `>` (subscriptions).
pub fn validate_subject(subject: &str, wildcards: bool) -> Result<(), MsgError> {
    let invalid = |why: &str| Err(MsgError::Other(format!("invalid subject `{subject}`: {why}")));
    if subject.is_empty() {
        return invalid("empty");
    }
    if subject.len() > MAX_SUBJECT_LEN {
        return invalid("too long");
    }
    if subject.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return invalid("whitespace or control characters");
    }
    let tokens: Vec<&str> = subject.split('.').collect();
    for (i, token) in tokens.iter().enumerate() {
        match *token {
            "" => return invalid("empty token"),
            "*" | ">" if !wildcards => return invalid("wildcards are only allowed when subscribing"),
            ">" if i + 1 != tokens.len() => return invalid("`>` must be the last token"),
            _ => {}
        }
    }
    Ok(())
}

/// Checks the arguments of [`Messaging::subscribe`]: at least one subject, every subject valid with wildcards
/// allowed, and the queue group (if any) valid. Every backend calls this first, so they refuse the same input.
pub fn validate_subscription(subjects: &[String], queue: Option<&str>) -> Result<(), MsgError> {
    if subjects.is_empty() {
        return Err(MsgError::Other("subscribe needs at least one subject".into()));
    }
    for subject in subjects {
        validate_subject(subject, true)?;
    }
    if let Some(queue) = queue {
        validate_queue(queue)?;
    }
    Ok(())
}

/// Checks a queue group name: not empty, no whitespace or control characters, at most [`MAX_SUBJECT_LEN`] bytes.
pub fn validate_queue(queue: &str) -> Result<(), MsgError> {
    if queue.is_empty() || queue.len() > MAX_SUBJECT_LEN || queue.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(MsgError::Other(format!("invalid queue group `{queue}`")));
    }
    Ok(())
}

/// Whether `subject` (a published subject) matches `pattern` (a subscription subject, wildcards allowed).
pub fn subject_matches(pattern: &str, subject: &str) -> bool {
    let mut subject_tokens = subject.split('.');
    for pattern_token in pattern.split('.') {
        match (pattern_token, subject_tokens.next()) {
            (">", Some(_)) => return true,
            (_, None) => return false,
            ("*", Some(_)) => {}
            (p, Some(s)) if p == s => {}
            _ => return false,
        }
    }
    subject_tokens.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trait_is_object_safe() {
        fn takes(_: Option<std::sync::Arc<dyn Messaging>>) {}
        takes(None);
    }

    #[test]
    fn wildcards_match_like_nats() {
        for (pattern, subject, expected) in [
            ("a.b", "a.b", true),
            ("a.b", "a.c", false),
            ("a.b", "a.b.c", false),
            ("a.b.c", "a.b", false),
            ("a.*", "a.b", true),
            ("a.*", "a.b.c", false),
            ("*.b", "a.b", true),
            ("a.>", "a.b", true),
            ("a.>", "a.b.c", true),
            ("a.>", "a", false),
            (">", "a", true),
            (">", "a.b", true),
            ("*", "a.b", false),
            ("a.*.c", "a.x.c", true),
            ("a.*.c", "a.x.d", false),
        ] {
            assert_eq!(subject_matches(pattern, subject), expected, "{pattern} ~ {subject}");
        }
    }

    #[test]
    fn subjects_are_validated() {
        for ok in ["a", "a.b", "orders.new", "_INBOX.x.1"] {
            assert!(validate_subject(ok, false).is_ok(), "{ok}");
        }
        for ok in ["a.*", "a.>", ">", "*.b.*"] {
            assert!(validate_subject(ok, true).is_ok(), "{ok}");
            assert!(validate_subject(ok, false).is_err(), "{ok}");
        }
        for bad in ["", "a..b", ".a", "a.", "a b", "a.>.c", "a\n"] {
            assert!(validate_subject(bad, true).is_err(), "{bad:?}");
        }
        assert!(validate_queue("workers").is_ok());
        assert!(validate_queue("").is_err());
        assert!(validate_queue("a b").is_err());
    }
}
