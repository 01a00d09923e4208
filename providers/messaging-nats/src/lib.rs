//! NATS `wasi:messaging` provider: core NATS publish, request/reply and (queue) subscriptions.
//!
//! A [`NatsMessaging`] wraps one [`async_nats::Client`]; every actor linked to it shares that connection. The
//! host decides how the client is made (credentials, TLS: see `lattice_host::lattice::NatsConfig::connect`) and
//! passes it in; [`NatsMessaging::connect`] is a shortcut for a plain connection.
//!
//! Mapping to NATS:
//! - subjects are NATS subjects, checked with the shared rules of [`Messaging`] before anything is sent;
//! - `content_type` travels as the `Content-Type` header and `metadata` as the other headers (several values
//!   per key are kept in order; received headers are listed sorted by key). A metadata key or value NATS cannot
//!   carry (`:` or control characters in a key, a line break in a value) is refused with [`MsgError::Other`];
//! - `request` subscribes to a fresh inbox, publishes with it as the reply subject and collects replies; the
//!   server's "no responders" status becomes [`MsgError::Other`] at once;
//! - `subscribe` subscribes to every subject (in the queue group, if any) on the same connection, merges them
//!   into one stream, and returns only after a round trip through the server, so the subscription is in place
//!   on the server when it returns.
//!
//! At-least-once delivery (`subscribe_durable`, `send_durable`) goes through JetStream: see the `jetstream`
//! module's docs for the streams and consumers it makes and how messages are identified.
//!
//! Delivery of `send`/`subscribe` is core NATS: at most once, no persistence. A publish is queued in the client and written by its
//! connection task; a server-side refusal (permissions) is reported by the server asynchronously, not as the
//! result of `send`. Failures of the connection are [`MsgError::Connection`] with backend `nats`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use lattice_messaging_nats::NatsMessaging;
//! use lattice_provider_sdk::{Messaging, OutboundMessage};
//!
//! let nats = NatsMessaging::connect("nats://127.0.0.1:4222", "lattice-messaging").await?;
//! nats.send("orders.new", OutboundMessage::new("o-17 250")).await?;
//! # Ok(())
//! # }
//! ```

use std::str::FromStr;
use std::time::Duration;

use async_nats::header::{HeaderMap, HeaderName, HeaderValue};
use async_nats::{Client, ConnectOptions, StatusCode};
use bytes::Bytes;
use futures::StreamExt;
use lattice_provider_sdk::durable::{DurableConsumer, DurableSpec};
use lattice_provider_sdk::{
    InboundMessage, MessageStream, Messaging, MsgError, OutboundMessage, async_trait, validate_subject,
    validate_subscription,
};

mod jetstream;

pub use jetstream::replicas;

/// The backend name in [`MsgError::Connection`].
const BACKEND: &str = "nats";

/// The header that carries a message's content type.
pub const CONTENT_TYPE_HEADER: &str = "Content-Type";

/// How long [`NatsMessaging::connect`] and the subscription round trip may take.
const SERVER_TIMEOUT: Duration = Duration::from_secs(5);

/// `wasi:messaging` over one NATS connection. Cheap to clone (clones share the connection).
#[derive(Clone, Debug)]
pub struct NatsMessaging {
    client: Client,
    jetstream: async_nats::jetstream::Context,
    /// Prefix of the streams and consumers at-least-once delivery creates.
    namespace: std::sync::Arc<str>,
}

fn connection(error: impl std::fmt::Display) -> MsgError {
    MsgError::Connection { backend: BACKEND.into(), message: error.to_string() }
}

impl NatsMessaging {
    /// A provider over `client`. The streams and consumers of at-least-once delivery are named
    /// `lattice_…`; [`NatsMessaging::with_namespace`] changes that.
    pub fn new(client: Client) -> Self {
        let jetstream = async_nats::jetstream::new(client.clone());
        Self { client, jetstream, namespace: "lattice".into() }
    }

    /// Names the streams and consumers of at-least-once delivery `<namespace>_…` (a host uses
    /// `lattice_<lattice>`, so lattices sharing a NATS account never share consumers).
    pub fn with_namespace(mut self, namespace: &str) -> Self {
        self.namespace = jetstream::object_name(&[namespace]).into();
        self
    }

    /// Connects to `servers` (comma-separated URLs) without credentials, naming the connection `name`. Like
    /// every lattice connection: a 5 s first-connection timeout, then reconnection forever.
    pub async fn connect(servers: &str, name: &str) -> Result<Self, MsgError> {
        let servers: Vec<&str> = servers.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
        let client = ConnectOptions::new()
            .name(name)
            .connection_timeout(SERVER_TIMEOUT)
            .max_reconnects(None)
            .connect(servers.as_slice())
            .await
            .map_err(connection)?;
        Ok(Self::new(client))
    }

    /// The underlying client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Waits until the server has processed everything this connection sent so far: publishes to a fresh
    /// inbox this connection subscribes to and waits for the message to come back.
    async fn round_trip(&self) -> Result<(), MsgError> {
        let inbox = self.client.new_inbox();
        let mut echo = self.client.subscribe(inbox.clone()).await.map_err(connection)?;
        self.client.publish(inbox, Bytes::new()).await.map_err(connection)?;
        match tokio::time::timeout(SERVER_TIMEOUT, echo.next()).await {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(connection("connection closed while subscribing")),
            Err(_) => Err(connection(format!("the server did not confirm the subscription within {SERVER_TIMEOUT:?}"))),
        }
    }
}

/// The headers for `msg`'s content type and metadata (`None` when there are none).
fn headers(msg: &OutboundMessage) -> Result<Option<HeaderMap>, MsgError> {
    if msg.content_type.is_none() && msg.metadata.is_empty() {
        return Ok(None);
    }
    let mut headers = HeaderMap::new();
    let value = |v: &str| {
        HeaderValue::from_str(v).map_err(|_| MsgError::Other(format!("metadata value `{v}` has a line break")))
    };
    if let Some(content_type) = &msg.content_type {
        headers.insert(HeaderName::from_static(CONTENT_TYPE_HEADER), value(content_type)?);
    }
    for (key, v) in &msg.metadata {
        let name = HeaderName::from_str(key).map_err(|e| MsgError::Other(format!("metadata key `{key}`: {e}")))?;
        headers.append(name, value(v)?);
    }
    Ok(Some(headers))
}

fn inbound(message: async_nats::Message) -> InboundMessage {
    let mut content_type = None;
    let mut metadata = Vec::new();
    if let Some(headers) = &message.headers {
        for (name, values) in headers.iter() {
            let name = name.to_string();
            for value in values {
                if name.eq_ignore_ascii_case(CONTENT_TYPE_HEADER) && content_type.is_none() {
                    content_type = Some(value.as_str().to_owned());
                } else {
                    metadata.push((name.clone(), value.as_str().to_owned()));
                }
            }
        }
        // Header maps are unordered; a stable order keeps messages comparable. Values of one key keep theirs.
        metadata.sort_by(|a, b| a.0.cmp(&b.0));
    }
    InboundMessage {
        subject: message.subject.to_string(),
        data: message.payload.to_vec(),
        content_type,
        metadata,
        reply_to: message.reply.map(|r| r.to_string()),
    }
}

fn publish_error(error: async_nats::PublishError) -> MsgError {
    match error.kind() {
        async_nats::client::PublishErrorKind::MaxPayloadExceeded => {
            MsgError::Other("message larger than the NATS server's max payload".into())
        }
        async_nats::client::PublishErrorKind::InvalidSubject => MsgError::Other(error.to_string()),
        _ => connection(error),
    }
}

#[async_trait]
impl Messaging for NatsMessaging {
    async fn send(&self, subject: &str, msg: OutboundMessage) -> Result<(), MsgError> {
        validate_subject(subject, false)?;
        let headers = headers(&msg)?;
        let subject = subject.to_owned();
        let payload = Bytes::from(msg.data);
        match headers {
            Some(headers) => self.client.publish_with_headers(subject, headers, payload).await,
            None => self.client.publish(subject, payload).await,
        }
        .map_err(publish_error)
    }

    async fn request(
        &self,
        subject: &str,
        msg: OutboundMessage,
        timeout: Duration,
        expected_replies: u32,
    ) -> Result<Vec<InboundMessage>, MsgError> {
        validate_subject(subject, false)?;
        let headers = headers(&msg)?.unwrap_or_default();
        let deadline = tokio::time::Instant::now() + timeout;
        let inbox = self.client.new_inbox();
        let mut replies_sub = self.client.subscribe(inbox.clone()).await.map_err(connection)?;
        self.client
            .publish_with_reply_and_headers(subject.to_owned(), inbox, headers, Bytes::from(msg.data))
            .await
            .map_err(publish_error)?;
        let mut replies = Vec::new();
        while expected_replies == 0 || replies.len() < expected_replies as usize {
            match tokio::time::timeout_at(deadline, replies_sub.next()).await {
                Ok(Some(reply)) if reply.status == Some(StatusCode::NO_RESPONDERS) => {
                    if replies.is_empty() {
                        return Err(MsgError::Other(format!("no responders for subject `{subject}`")));
                    }
                }
                Ok(Some(reply)) => replies.push(inbound(reply)),
                Ok(None) if replies.is_empty() => return Err(connection("connection closed during the request")),
                Ok(None) | Err(_) => break,
            }
        }
        if replies.is_empty() { Err(MsgError::Timeout) } else { Ok(replies) }
    }

    async fn subscribe(&self, subjects: Vec<String>, queue: Option<String>) -> Result<MessageStream, MsgError> {
        validate_subscription(&subjects, queue.as_deref())?;
        let mut subscribers = Vec::with_capacity(subjects.len());
        for subject in subjects {
            let subscriber = match &queue {
                Some(queue) => self.client.queue_subscribe(subject, queue.clone()).await,
                None => self.client.subscribe(subject).await,
            }
            .map_err(connection)?;
            subscribers.push(subscriber);
        }
        self.round_trip().await?;
        Ok(Box::pin(futures::stream::select_all(subscribers).map(inbound)))
    }

    async fn subscribe_durable(&self, spec: DurableSpec) -> Result<Box<dyn DurableConsumer>, MsgError> {
        self.subscribe_durable_impl(spec).await
    }

    async fn send_durable(&self, subject: &str, msg: OutboundMessage, id: Option<&str>) -> Result<(), MsgError> {
        self.send_durable_impl(subject, msg, id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_carry_content_type_and_metadata_or_refuse_what_nats_cannot() {
        assert!(headers(&OutboundMessage::new("x")).expect("headers").is_none());
        let msg = OutboundMessage {
            data: Vec::new(),
            content_type: Some("text/plain".into()),
            metadata: vec![("a".into(), "1".into()), ("a".into(), "2".into())],
        };
        let map = headers(&msg).expect("headers").expect("some");
        assert_eq!(map.get(CONTENT_TYPE_HEADER).map(HeaderValue::as_str), Some("text/plain"));
        let values: Vec<_> = map.get_all("a").map(HeaderValue::as_str).collect();
        assert_eq!(values, ["1", "2"]);

        let bad_key = OutboundMessage { metadata: vec![("a:b".into(), "1".into())], ..OutboundMessage::default() };
        assert!(matches!(headers(&bad_key), Err(MsgError::Other(_))));
        let bad_value = OutboundMessage { metadata: vec![("a".into(), "1\r\n2".into())], ..OutboundMessage::default() };
        assert!(matches!(headers(&bad_value), Err(MsgError::Other(_))));
    }
}
