//! At-least-once delivery over JetStream: streams that capture a link's subjects, one durable pull consumer
//! per (actor, link) shared by every host, stable message ids.
//!
//! - **Streams.** A durable subscription reads the stream named by [`DurableSpec::stream`], or else the one
//!   stream that already captures every subscribed subject (so links that subscribe to the same subjects, or
//!   to a part of what one stream captures, share it), or else a stream this provider creates:
//!   `<namespace>_<hash of the subjects>`, file storage, messages kept 24 hours, replicated on up to 3 servers
//!   (as many as the cluster the connection sees has). Subjects split over several streams, or a new stream
//!   whose subjects would overlap an existing one, are refused with an error naming the stream to pass as
//!   `stream=`.
//! - **Consumers.** `<namespace>_<actor>_<link>` (characters NATS does not allow in a name become `_`, and a
//!   hash keeps such names distinct): a pull consumer with explicit acknowledgement, unlimited deliveries (the
//!   host dead-letters after its own `max_deliver`), filtered on the link's subjects, delivering everything the
//!   stream holds. Every host running the actor creates or updates the same consumer, so they share its
//!   messages.
//! - **Ids.** A delivered message's id is its `lattice-msg-id` header, else its `Nats-Msg-Id`, else
//!   `<stream>:<sequence>`. [`Messaging::send_durable`](lattice_provider_sdk::Messaging::send_durable) with an
//!   id sets both headers, so the stream's deduplication window (2 minutes) stores a re-sent message once.

use std::str::FromStr;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, AckKind, consumer, stream};
use bytes::Bytes;
use futures::StreamExt;
use lattice_provider_sdk::durable::{Acknowledge, Delivery, DeliveryStream, DurableConsumer, DurableSpec, MESSAGE_ID};
use lattice_provider_sdk::{MsgError, OutboundMessage, async_trait, validate_subject, validate_subscription};
use sha2::{Digest, Sha256};

use crate::{NatsMessaging, connection, headers, inbound};

/// The header JetStream deduplicates on.
const NATS_MSG_ID: &str = "Nats-Msg-Id";
/// How long a stream this provider creates keeps messages.
const STREAM_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// A name NATS accepts for a stream or consumer: `[A-Za-z0-9_-]`, bounded; changed names get a hash suffix so
/// two different inputs never collide.
pub(crate) fn object_name(parts: &[&str]) -> String {
    let joined = parts.join("_");
    let clean: String =
        joined.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' }).collect();
    if clean == joined && clean.len() <= 120 {
        return clean;
    }
    let digest = Sha256::digest(parts.join("\0").as_bytes());
    let short: String = clean.chars().take(100).collect();
    format!("{short}_{}", &hex::encode(digest)[..12])
}

/// Whether every subject `pattern` matches is also matched by `by` (both may hold wildcards).
pub(crate) fn covers(by: &str, pattern: &str) -> bool {
    let mut tokens = pattern.split('.');
    for token in by.split('.') {
        match (token, tokens.next()) {
            (">", Some(_)) => return true,
            (_, None) | (_, Some(">")) => return false,
            ("*", Some(_)) => {}
            (a, Some(b)) if a == b && b != "*" => {}
            _ => return false,
        }
    }
    tokens.next().is_none()
}

/// How many replicas a stream made through `client` gets: as many servers as its cluster advertises, 1 to 3.
pub fn replicas(client: &async_nats::Client) -> usize {
    client.server_info().connect_urls.len().clamp(1, 3)
}

fn js_error(what: &str, error: impl std::fmt::Display) -> MsgError {
    connection(format!("{what}: {error}"))
}

impl NatsMessaging {
    /// The stream `spec` reads: named, found, or created.
    async fn durable_stream(&self, spec: &DurableSpec) -> Result<stream::Stream, MsgError> {
        let js = &self.jetstream;
        if let Some(name) = &spec.stream {
            return js.get_stream(name).await.map_err(|e| {
                MsgError::Other(format!("stream `{name}` (named by the link's `stream=`) is not available: {e}"))
            });
        }
        let mut captured = Vec::new();
        for subject in &spec.subjects {
            match js.stream_by_subject(subject.clone()).await {
                Ok(name) => captured.push(Some(name)),
                Err(e) if matches!(e.kind(), jetstream::context::GetStreamByNameErrorKind::NotFound) => {
                    captured.push(None)
                }
                Err(e) => return Err(js_error("looking up the stream that captures the subjects", e)),
            }
        }
        let mut names: Vec<&String> = captured.iter().flatten().collect();
        names.dedup();
        match (names.as_slice(), captured.iter().all(Option::is_some)) {
            ([one], true) => {
                let one = (*one).clone();
                let stream = js.get_stream(&one).await.map_err(|e| js_error(&format!("opening stream `{one}`"), e))?;
                // The server names streams whose subjects overlap; use it only if it keeps every message.
                let kept = &stream.cached_info().config.subjects;
                if spec.subjects.iter().all(|s| kept.iter().any(|k| covers(k, s))) {
                    return Ok(stream);
                }
                return Err(MsgError::Other(format!(
                    "subjects `{}` are captured only in part by stream `{one}` ({}): name a stream that \
                     captures all of them with `stream=NAME`",
                    spec.subjects.join("|"),
                    kept.join(" ")
                )));
            }
            ([], _) => {}
            (some, _) => {
                let some: Vec<&str> = some.iter().map(|s| s.as_str()).collect();
                return Err(MsgError::Other(format!(
                    "subjects `{}` are captured in part by stream(s) `{}`: name one stream that captures all of \
                     them with `stream=NAME`",
                    spec.subjects.join("|"),
                    some.join("`, `")
                )));
            }
        }
        let mut subjects = spec.subjects.clone();
        subjects.sort();
        subjects.dedup();
        let digest = hex::encode(Sha256::digest(subjects.join(" ").as_bytes()));
        let name = object_name(&[&self.namespace, &digest[..16]]);
        let config = stream::Config {
            name: name.clone(),
            description: Some(format!("lattice at-least-once delivery of {}", subjects.join(" "))),
            subjects,
            storage: stream::StorageType::File,
            max_age: STREAM_MAX_AGE,
            num_replicas: replicas(&self.client),
            ..Default::default()
        };
        js.get_or_create_stream(config).await.map_err(|e| {
            if e.to_string().contains("overlap") {
                MsgError::Other(format!(
                    "subjects `{}` overlap a stream that captures other subjects: name a stream that captures all \
                     of them with `stream=NAME` ({e})",
                    spec.subjects.join("|")
                ))
            } else {
                js_error(&format!("creating stream `{name}`"), e)
            }
        })
    }
}

/// Settles a JetStream delivery.
struct Acker(jetstream::message::Acker);

#[async_trait]
impl Acknowledge for Acker {
    async fn ack(&self) -> Result<(), MsgError> {
        self.0.ack_with(AckKind::Ack).await.map_err(|e| js_error("ack", e))
    }

    async fn nak(&self, delay: Duration) -> Result<(), MsgError> {
        self.0.ack_with(AckKind::Nak(Some(delay))).await.map_err(|e| js_error("nak", e))
    }

    async fn progress(&self) -> Result<(), MsgError> {
        self.0.ack_with(AckKind::Progress).await.map_err(|e| js_error("progress", e))
    }

    async fn term(&self) -> Result<(), MsgError> {
        self.0.ack_with(AckKind::Term).await.map_err(|e| js_error("term", e))
    }
}

/// A host's handle on a shared pull consumer.
struct PullConsumer {
    consumer: consumer::PullConsumer,
    stream: String,
}

/// A delivered JetStream message as a [`Delivery`].
fn delivery(stream: &str, message: jetstream::Message) -> Result<Delivery, MsgError> {
    let (seq, attempt) = {
        let info = message.info().map_err(|e| js_error("reading a delivery's metadata", e))?;
        (info.stream_sequence, u64::try_from(info.delivered).unwrap_or(1).max(1))
    };
    let (message, acker) = message.split();
    let mut inbound = inbound(message);
    inbound.reply_to = None;
    let header =
        |name: &str| inbound.metadata.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone());
    let id = header(MESSAGE_ID).or_else(|| header(NATS_MSG_ID)).unwrap_or_else(|| format!("{stream}:{seq}"));
    // JetStream's own headers are transport, not the sender's metadata.
    inbound.metadata.retain(|(k, _)| !k.starts_with("Nats-"));
    Ok(Delivery { message: inbound, id, attempt, ack: Box::new(Acker(acker)) })
}

#[async_trait]
impl DurableConsumer for PullConsumer {
    async fn fetch(&mut self, max: usize, wait: Duration) -> Result<DeliveryStream, MsgError> {
        let batch = self
            .consumer
            .batch()
            .max_messages(max.max(1))
            .expires(wait)
            .messages()
            .await
            .map_err(|e| js_error("fetching from the consumer", e))?;
        let stream = self.stream.clone();
        Ok(Box::pin(batch.map(move |message| match message {
            Ok(message) => delivery(&stream, message),
            Err(e) => Err(js_error("receiving from the consumer", e)),
        })))
    }

    fn stream(&self) -> &str {
        &self.stream
    }
}

impl NatsMessaging {
    pub(crate) async fn subscribe_durable_impl(&self, spec: DurableSpec) -> Result<Box<dyn DurableConsumer>, MsgError> {
        validate_subscription(&spec.subjects, None)?;
        let stream = self.durable_stream(&spec).await?;
        let stream_name = stream.cached_info().config.name.clone();
        let name = object_name(&[&self.namespace, &spec.actor, &spec.link]);
        let mut config = consumer::pull::Config {
            durable_name: Some(name.clone()),
            description: Some(format!("lattice: actor {} link {}", spec.actor, spec.link)),
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait: spec.ack_wait,
            max_deliver: -1,
            deliver_policy: consumer::DeliverPolicy::All,
            ..Default::default()
        };
        match spec.subjects.as_slice() {
            [one] => config.filter_subject = one.clone(),
            many => config.filter_subjects = many.to_vec(),
        }
        let consumer = stream
            .create_consumer(config)
            .await
            .map_err(|e| js_error(&format!("creating consumer `{name}` on stream `{stream_name}`"), e))?;
        Ok(Box::new(PullConsumer { consumer, stream: stream_name }))
    }

    pub(crate) async fn send_durable_impl(
        &self,
        subject: &str,
        msg: OutboundMessage,
        id: Option<&str>,
    ) -> Result<(), MsgError> {
        validate_subject(subject, false)?;
        let mut map = headers(&msg)?.unwrap_or_else(HeaderMap::new);
        if let Some(id) = id {
            let value = |v: &str| {
                async_nats::HeaderValue::from_str(v)
                    .map_err(|_| MsgError::Other(format!("message id `{v}` has a line break")))
            };
            map.insert(NATS_MSG_ID, value(id)?);
            map.insert(MESSAGE_ID, value(id)?);
        }
        let ack = self
            .jetstream
            .publish_with_headers(subject.to_owned(), map, Bytes::from(msg.data))
            .await
            .map_err(|e| publish_ack_error(subject, e))?;
        ack.await.map_err(|e| publish_ack_error(subject, e))?;
        Ok(())
    }
}

fn publish_ack_error(subject: &str, error: jetstream::context::PublishError) -> MsgError {
    use jetstream::context::PublishErrorKind as Kind;
    match error.kind() {
        Kind::StreamNotFound => MsgError::Other(format!(
            "no stream captures subject `{subject}`: nothing subscribes to it at least once yet"
        )),
        Kind::MaxPayloadExceeded => MsgError::Other("message larger than the NATS server's max payload".into()),
        Kind::TimedOut => MsgError::Timeout,
        _ => js_error(&format!("publishing to `{subject}`"), error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn covering_means_every_matching_subject_is_kept() {
        for (by, pattern, expected) in [
            ("orders.new", "orders.new", true),
            ("orders.*", "orders.new", true),
            ("orders.>", "orders.eu.new", true),
            ("orders.*", "orders.*", true),
            (">", "orders.*", true),
            ("orders.new", "orders.*", false),
            ("orders.*", "orders.>", false),
            ("orders.*", "orders.eu.new", false),
            ("orders.new", "orders.old", false),
            ("orders.>", "orders", false),
        ] {
            assert_eq!(covers(by, pattern), expected, "{by} covers {pattern}");
        }
    }

    #[test]
    fn object_names_are_what_nats_accepts_and_distinct() {
        assert_eq!(object_name(&["lattice_default", "ledger", "in"]), "lattice_default_ledger_in");
        let a = object_name(&["l", "a.b", "c"]);
        let b = object_name(&["l", "a_b", "c"]);
        assert_ne!(a, b);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'), "{a}");
        let long = object_name(&["l", &"x".repeat(300), "c"]);
        assert!(long.len() <= 120, "{}", long.len());
    }
}
