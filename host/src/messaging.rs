//! `wasi:messaging` for actors: messages, clients resolved through links, sends, requests and replies.
//!
//! **Clients.** `client.connect(name)` resolves `name` through the invocation's messaging links (taken when
//! the invocation started); without a link the guest gets `permission-denied`. A [`ClientHandle`] holds the
//! linked provider instance: `producer.send` publishes through it, `request-reply.request` sends a request and
//! collects the replies, and `disconnect` makes later calls on that client fail with `connection`. The host
//! only sees the provider through [`Messaging`], whatever the backend.
//!
//! **Requests.** Without options a request waits for one reply for at most [`DEFAULT_REQUEST_TIMEOUT`] (the
//! WIT's "no time limit" is bounded by the host; the invocation's wall-clock timeout bounds everything anyway).
//! `set-timeout-ms` alone gathers every reply until the timeout; `set-expected-replies` alone waits for that
//! many replies within the default timeout; both: whichever comes first. No reply in time is `timeout`.
//! Replies returned by `request` cannot be replied to (`reply` on them is an error value).
//!
//! **Replies.** `request-reply.reply(reply-to, response)` goes where `reply-to` came from ([`ReplyTo`]):
//! - the invocation's message, delivered by [`Actor::invoke`](crate::Actor::invoke) (`ReplyTo::Caller`): the
//!   response becomes the invocation's reply, once. A reply larger than the actor's `max_reply_bytes` is
//!   refused: the guest gets an error value and the invocation fails with
//!   [`InvokeError::ReplyTooLarge`](crate::InvokeError::ReplyTooLarge) whatever the guest does next;
//! - a message from a subscription that carried a reply subject (`ReplyTo::Subject`): the response is
//!   published to that subject through the provider the message came from (as often as the guest replies);
//! - a message without a reply address (published without one, created by the guest, or a reply from
//!   `request`): an error value.
//!
//! **Reserved subjects.** Whatever the provider, `producer.send` and `request-reply.request` to a subject in a
//! reserved namespace ([`lattice_core::reserved`]: `lattice.>`, `$JS.>`, `$JSC.>`, `$KV.>`, `$O.>`, `$SYS.>`,
//! `_INBOX.>`) get `permission-denied`, naming the subject and the namespace; so does a reply to a received
//! message whose reply subject is no inbox ([`lattice_core::reply::check`], the check the host applies to its
//! own answers), which keeps a sender from choosing, say, `$JS.API.STREAM.DELETE.…` as its reply subject and
//! having the actor send it. A link with
//! `publish=a|b` also refuses sends and requests to subjects no pattern matches (replies are not subject to
//! it). A guest cannot set a reply subject: replies go only through the route of a message it received.
//!
//! **Headers.** A send, request or reply whose metadata or content type cannot be a message header is refused
//! before it reaches the provider (so for every provider): an empty name, control characters (NUL, CR, LF…) in
//! a name or value, or a name outside printable ASCII get `other`; a `Nats-…` name (JetStream's `Nats-Msg-Id`,
//! `Nats-Expected-Stream`, `Nats-Rollup`…, any case) gets `permission-denied`. `lattice-msg-id` stays the
//! guest's to set (it names a durable send); the other `Lattice-…` headers mean something only on the
//! lattice's own subjects, where a guest cannot publish.
//!
//! **Host memory.** What the guest makes the host hold for it (messages, request options, clients) is bounded
//! per invocation: [`MAX_RESOURCES`](crate::MAX_RESOURCES) resources alive, [`message_bytes_limit`](crate::message_bytes_limit) bytes of messages (data,
//! metadata, topic and content type), and [`MAX_METADATA_ENTRIES`] metadata entries set on one message. Where the WIT function returns a `result` (`connect`, `request`),
//! exceeding a bound is an error value; where it does not (`message.new`, `set-data`, `add-metadata`,
//! request-options' constructor…), the invocation traps with
//! [`InvokeError::HostResources`](crate::InvokeError::HostResources).
//!
//! **Size.** Every outbound payload (send, request, reply through a provider) is capped by the actor's
//! `ActorLimits::max_reply_bytes` (default 1 MiB): a larger one is refused with an error value before it
//! reaches the provider.

use std::sync::Arc;
use std::time::Duration;

use lattice_provider_sdk::durable::MESSAGE_ID;
use lattice_provider_sdk::{InboundMessage, Messaging, MsgError, OutboundMessage, subject_matches};
use sha2::{Digest, Sha256};
use wasmtime::component::Resource;

use crate::bindings::wasi::messaging::{producer, request_reply, types};
use crate::budget::HostResourceLimit;
use crate::runtime::Reply;
use crate::state::InvocationState;

/// How long `request-reply.request` waits when the guest sets no timeout.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Metadata entries one message may carry when the guest sets them (each `add-metadata` looks through them).
pub const MAX_METADATA_ENTRIES: usize = 1024;

/// A connected messaging client: the provider its link resolved to.
pub struct ClientHandle {
    link: String,
    provider: Arc<dyn Messaging>,
    /// The link's `publish=` allow-list.
    publish: Option<Arc<[String]>>,
    /// Sends are durable (`delivery=at-least-once`).
    durable: bool,
    connected: bool,
}

/// Where replies to a delivered message go. See the [module docs](self).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ReplyTo {
    /// The reply becomes the invocation's reply, returned to the caller of [`Actor::invoke`](crate::Actor::invoke).
    #[default]
    Caller,
    /// Replies are published to a subject through a messaging provider (a request received on a subscription).
    Subject(ReplySubject),
    /// Nobody listens for a reply (a message published without a reply subject): `reply` is an error value.
    Nobody,
}

/// A reply subject and the provider to publish replies through.
#[derive(Clone)]
pub struct ReplySubject {
    provider: Arc<dyn Messaging>,
    subject: String,
}

impl ReplySubject {
    /// Replies go to `subject` through `provider`.
    pub fn new(provider: Arc<dyn Messaging>, subject: impl Into<String>) -> Self {
        Self { provider, subject: subject.into() }
    }

    /// The subject replies are published to.
    pub fn subject(&self) -> &str {
        &self.subject
    }
}

impl std::fmt::Debug for ReplySubject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplySubject").field("subject", &self.subject).finish_non_exhaustive()
    }
}

/// Equal when the subject and the provider instance are the same.
impl PartialEq for ReplySubject {
    fn eq(&self, other: &Self) -> bool {
        self.subject == other.subject
            && Arc::as_ptr(&self.provider).cast::<()>() == Arc::as_ptr(&other.provider).cast::<()>()
    }
}

impl Eq for ReplySubject {}

/// Where a reply to a message held by the guest goes.
#[derive(Debug, Clone, Default)]
pub(crate) enum Route {
    /// No reply address: created by the guest, or delivered without a reply subject.
    #[default]
    None,
    /// The invocation's message: the reply is the invocation's reply.
    Invocation,
    /// Published to a subject through a provider.
    Subject(ReplySubject),
    /// A reply returned by `request`.
    RequestReply,
}

impl From<ReplyTo> for Route {
    fn from(reply_to: ReplyTo) -> Self {
        match reply_to {
            ReplyTo::Caller => Route::Invocation,
            ReplyTo::Subject(subject) => Route::Subject(subject),
            ReplyTo::Nobody => Route::None,
        }
    }
}

/// A message as the host holds it.
#[derive(Debug, Clone, Default)]
pub struct Message {
    pub(crate) data: Vec<u8>,
    pub(crate) topic: Option<String>,
    pub(crate) content_type: Option<String>,
    pub(crate) metadata: Vec<(String, String)>,
    pub(crate) route: Route,
    /// The bytes this message is charged for in the invocation's [`Budget`].
    pub(crate) charged: usize,
}

impl Message {
    /// What the message makes the host hold: data, topic, content type and metadata (with each entry's own
    /// size, so many empty entries still count).
    fn footprint(&self) -> usize {
        self.data.len()
            + self.topic.as_ref().map_or(0, String::len)
            + self.content_type.as_ref().map_or(0, String::len)
            + self.metadata.iter().map(|(k, v)| k.len() + v.len() + size_of::<(String, String)>()).sum::<usize>()
    }

    fn outbound(&self) -> OutboundMessage {
        OutboundMessage {
            data: self.data.clone(),
            content_type: self.content_type.clone(),
            metadata: self.metadata.clone(),
        }
    }

    fn into_outbound(self) -> OutboundMessage {
        OutboundMessage { data: self.data, content_type: self.content_type, metadata: self.metadata }
    }

    fn reply(inbound: InboundMessage) -> Self {
        Message {
            data: inbound.data,
            topic: Some(inbound.subject),
            content_type: inbound.content_type,
            metadata: inbound.metadata,
            route: Route::RequestReply,
            charged: 0,
        }
    }
}

/// Options for `request-reply.request`.
#[derive(Debug, Clone, Default)]
pub struct RequestOptions {
    pub(crate) timeout_ms: Option<u32>,
    pub(crate) expected_replies: Option<u32>,
}

impl RequestOptions {
    /// The timeout and reply count the provider is asked for (count 0: no count limit).
    fn resolve(options: Option<&RequestOptions>) -> (Duration, u32) {
        let Some(options) = options else { return (DEFAULT_REQUEST_TIMEOUT, 1) };
        match (options.timeout_ms, options.expected_replies) {
            (None, None) => (DEFAULT_REQUEST_TIMEOUT, 1),
            (Some(ms), None) => (Duration::from_millis(ms.into()), 0),
            (None, Some(n)) => (DEFAULT_REQUEST_TIMEOUT, n),
            (Some(ms), Some(n)) => (Duration::from_millis(ms.into()), n),
        }
    }
}

type Fallible<T> = wasmtime::Result<Result<T, types::Error>>;

fn to_wit(error: MsgError) -> types::Error {
    match error {
        MsgError::Timeout => types::Error::Timeout,
        MsgError::Connection { backend, message } => types::Error::Connection(format!("{backend}: {message}")),
        MsgError::PermissionDenied(message) => types::Error::PermissionDenied(message),
        other => types::Error::Other(other.to_string()),
    }
}

/// Refuses a reply subject that is no inbox ([`lattice_core::reply::check`], as for the host's own answers).
fn check_reply_subject(actor: &str, subject: &str) -> Result<(), types::Error> {
    lattice_core::reply::check(subject).map_err(|refused| {
        tracing::debug!(%actor, reason = %refused, "reply refused: no inbox");
        types::Error::PermissionDenied(refused.to_string())
    })
}

/// Refuses a message whose metadata or content type cannot go out as headers, whatever the provider: an
/// empty name, a name or value with control characters (`other`), a `Nats-…` name (`permission-denied`:
/// JetStream acts on `Nats-Msg-Id`, `Nats-Expected-Stream`, `Nats-Rollup`…).
fn check_headers(actor: &str, content_type: Option<&str>, metadata: &[(String, String)]) -> Result<(), types::Error> {
    use lattice_core::reserved::{BadHeader, check_header, check_header_value};
    let checked = content_type
        .map_or(Ok(()), |value| check_header_value("content-type", value))
        .and_then(|()| metadata.iter().try_for_each(|(name, value)| check_header(name, value)));
    checked.map_err(|bad| {
        tracing::debug!(%actor, reason = %bad, "message refused: bad header");
        match bad {
            BadHeader::Reserved { .. } => types::Error::PermissionDenied(bad.to_string()),
            _ => types::Error::Other(bad.to_string()),
        }
    })
}

impl InvocationState {
    /// The client's provider for a send or request to `topic`; an error value for a disconnected client, a
    /// reserved subject, or a subject outside the link's `publish=` allow-list.
    fn provider(
        &self,
        client: &Resource<ClientHandle>,
        topic: &str,
    ) -> wasmtime::Result<Result<Arc<dyn Messaging>, types::Error>> {
        let handle = self.table.get(client)?;
        if !handle.connected {
            return Ok(Err(types::Error::Connection(format!("client `{}` is disconnected", handle.link))));
        }
        if let Err(reserved) = lattice_core::reserved::check_publish(topic) {
            tracing::debug!(actor = %self.actor, subject = %topic, namespace = reserved.namespace, "publish refused: reserved subject");
            return Ok(Err(types::Error::PermissionDenied(reserved.to_string())));
        }
        if let Some(allowed) = &handle.publish
            && !allowed.iter().any(|pattern| subject_matches(pattern, topic))
        {
            let allowed = allowed.join("|");
            tracing::debug!(actor = %self.actor, subject = %topic, link = %handle.link, %allowed, "publish refused: not allowed by the link");
            return Ok(Err(types::Error::PermissionDenied(format!(
                "publish to `{topic}` is refused: link `{}` allows only publish={allowed}",
                handle.link
            ))));
        }
        Ok(Ok(handle.provider.clone()))
    }

    /// The id of a durable send: the `lattice-msg-id` the actor set on the message, else, while handling a
    /// message with an id, one derived from that id and the send's position in the invocation (so handling
    /// the same message again sends messages the stream recognises as duplicates), else none.
    fn durable_send_id(&mut self, message: &OutboundMessage) -> Option<String> {
        if let Some((_, id)) = message.metadata.iter().find(|(k, _)| k.eq_ignore_ascii_case(MESSAGE_ID)) {
            return Some(id.clone());
        }
        let origin = self.message_id.as_deref()?;
        self.durable_sends += 1;
        let digest = Sha256::digest(format!("{origin}\n{}", self.durable_sends).as_bytes());
        Some(hex::encode(&digest[..16]))
    }

    /// Puts a message in the table, charged to the invocation's budget; traps past the bounds.
    fn push_message(&mut self, mut message: Message) -> wasmtime::Result<Resource<Message>> {
        let bytes = message.footprint();
        self.take_or_trap(1, bytes)?;
        message.charged = bytes;
        Ok(self.table.push(message)?)
    }

    /// Puts the invocation's own message in the table (charged, never refused: its transport bounded it).
    pub(crate) fn push_invocation_message(&mut self, mut message: Message) -> wasmtime::Result<Resource<Message>> {
        let bytes = message.footprint();
        self.resources.charge(1, bytes);
        message.charged = bytes;
        Ok(self.table.push(message)?)
    }

    /// Takes a message out of the table and releases what it was charged.
    fn delete_message(&mut self, message: Resource<Message>) -> wasmtime::Result<Message> {
        let message = self.table.delete(message)?;
        self.resources.release(1, message.charged);
        Ok(message)
    }

    /// Changes a message in place, charging the difference in size; traps past the bytes bound.
    fn update_message(&mut self, msg: &Resource<Message>, change: impl FnOnce(&mut Message)) -> wasmtime::Result<()> {
        let message = self.table.get_mut(msg)?;
        change(message);
        if message.metadata.len() > MAX_METADATA_ENTRIES {
            let limit = HostResourceLimit { bound: "metadata entries in one message", limit: MAX_METADATA_ENTRIES };
            return self.trap(limit);
        }
        let (before, after) = (message.charged, message.footprint());
        message.charged = after;
        self.resources.release(0, before);
        self.take_or_trap(0, after)
    }

    fn take_or_trap(&mut self, count: usize, bytes: usize) -> wasmtime::Result<()> {
        match self.resources.take(count, bytes) {
            Ok(()) => Ok(()),
            Err(limit) => self.trap(limit),
        }
    }

    /// Records the exceeded bound (so the invocation reports `HostResources`) and returns the trap.
    fn trap(&mut self, limit: HostResourceLimit) -> wasmtime::Result<()> {
        tracing::debug!(actor = %self.actor, bound = limit.bound, limit = limit.limit, "host resource limit exceeded");
        self.resources.exceeded = Some(limit.clone());
        Err(limit.into())
    }

    /// Refuses an outbound payload above the actor's size cap.
    fn check_size(&self, what: &str, size: usize) -> Result<(), types::Error> {
        if size > self.max_reply_bytes {
            tracing::debug!(actor = %self.actor, size, limit = self.max_reply_bytes, "{what} refused: too large");
            return Err(types::Error::Other(format!(
                "{what} of {size} bytes exceeds the limit of {} bytes",
                self.max_reply_bytes
            )));
        }
        Ok(())
    }
}

impl types::Host for InvocationState {}

impl types::HostClient for InvocationState {
    async fn connect(&mut self, name: String) -> Fallible<Resource<ClientHandle>> {
        let Some(link) = self.links.messaging(&name) else {
            tracing::debug!(actor = %self.actor, %name, "client.connect without a link: permission denied");
            return Ok(Err(types::Error::PermissionDenied(format!("no messaging link named `{name}`"))));
        };
        let handle = ClientHandle {
            link: name,
            provider: link.provider.clone(),
            publish: link.publish.clone(),
            durable: link.durable.is_some(),
            connected: true,
        };
        if let Err(limit) = self.resources.take(1, 0) {
            tracing::debug!(actor = %self.actor, bound = limit.bound, "client.connect refused: host resource limit");
            return Ok(Err(types::Error::Other(limit.to_string())));
        }
        Ok(Ok(self.table.push(handle)?))
    }

    async fn disconnect(&mut self, client: Resource<ClientHandle>) -> Fallible<()> {
        self.table.get_mut(&client)?.connected = false;
        Ok(Ok(()))
    }

    async fn drop(&mut self, client: Resource<ClientHandle>) -> wasmtime::Result<()> {
        self.table.delete(client)?;
        self.resources.release(1, 0);
        Ok(())
    }
}

impl types::HostMessage for InvocationState {
    async fn new(&mut self, data: Vec<u8>) -> wasmtime::Result<Resource<Message>> {
        self.push_message(Message { data, ..Message::default() })
    }

    async fn topic(&mut self, msg: Resource<Message>) -> wasmtime::Result<Option<String>> {
        Ok(self.table.get(&msg)?.topic.clone())
    }

    async fn content_type(&mut self, msg: Resource<Message>) -> wasmtime::Result<Option<String>> {
        Ok(self.table.get(&msg)?.content_type.clone())
    }

    async fn set_content_type(&mut self, msg: Resource<Message>, content_type: String) -> wasmtime::Result<()> {
        self.update_message(&msg, |m| m.content_type = Some(content_type))
    }

    async fn data(&mut self, msg: Resource<Message>) -> wasmtime::Result<Vec<u8>> {
        Ok(self.table.get(&msg)?.data.clone())
    }

    async fn set_data(&mut self, msg: Resource<Message>, data: Vec<u8>) -> wasmtime::Result<()> {
        self.update_message(&msg, |m| m.data = data)
    }

    async fn metadata(&mut self, msg: Resource<Message>) -> wasmtime::Result<Option<types::Metadata>> {
        let metadata = &self.table.get(&msg)?.metadata;
        Ok((!metadata.is_empty()).then(|| metadata.clone()))
    }

    async fn add_metadata(&mut self, msg: Resource<Message>, key: String, value: String) -> wasmtime::Result<()> {
        self.update_message(&msg, |m| {
            // The WIT says "replacing any existing value for `key`".
            m.metadata.retain(|(k, _)| *k != key);
            m.metadata.push((key, value));
        })
    }

    async fn set_metadata(&mut self, msg: Resource<Message>, meta: types::Metadata) -> wasmtime::Result<()> {
        self.update_message(&msg, |m| m.metadata = meta)
    }

    async fn remove_metadata(&mut self, msg: Resource<Message>, key: String) -> wasmtime::Result<()> {
        self.update_message(&msg, |m| m.metadata.retain(|(k, _)| *k != key))
    }

    async fn drop(&mut self, msg: Resource<Message>) -> wasmtime::Result<()> {
        self.delete_message(msg)?;
        Ok(())
    }
}

impl producer::Host for InvocationState {
    async fn send(
        &mut self,
        client: Resource<ClientHandle>,
        topic: types::Topic,
        message: Resource<Message>,
    ) -> Fallible<()> {
        let message = self.delete_message(message)?;
        let provider = match self.provider(&client, &topic)? {
            Ok(provider) => provider,
            Err(error) => return Ok(Err(error)),
        };
        if let Err(error) = self.check_size("message", message.data.len()) {
            return Ok(Err(error));
        }
        if let Err(error) = check_headers(&self.actor, message.content_type.as_deref(), &message.metadata) {
            return Ok(Err(error));
        }
        let result = if self.table.get(&client)?.durable {
            let outbound = message.into_outbound();
            let id = self.durable_send_id(&outbound);
            provider.send_durable(&topic, outbound, id.as_deref()).await
        } else {
            provider.send(&topic, message.into_outbound()).await
        };
        if let Err(error) = &result {
            tracing::debug!(actor = %self.actor, %topic, %error, "producer.send failed");
        }
        Ok(result.map_err(to_wit))
    }
}

impl request_reply::Host for InvocationState {
    async fn request(
        &mut self,
        client: Resource<ClientHandle>,
        topic: types::Topic,
        message: Resource<Message>,
        options: Option<Resource<RequestOptions>>,
    ) -> Fallible<Vec<Resource<Message>>> {
        let options = options.map(|options| self.delete_options(options)).transpose()?;
        let (timeout, expected) = RequestOptions::resolve(options.as_ref());
        // Never collect more replies than the invocation has room for (0 would mean "all within the timeout").
        let room = u32::try_from(self.resources.resources_left()).unwrap_or(u32::MAX).max(1);
        let expected = if expected == 0 { room } else { expected.min(room) };
        let outbound = self.table.get(&message)?.outbound();
        let provider = match self.provider(&client, &topic)? {
            Ok(provider) => provider,
            Err(error) => return Ok(Err(error)),
        };
        if let Err(error) = self.check_size("request", outbound.data.len()) {
            return Ok(Err(error));
        }
        if let Err(error) = check_headers(&self.actor, outbound.content_type.as_deref(), &outbound.metadata) {
            return Ok(Err(error));
        }
        let replies = match provider.request(&topic, outbound, timeout, expected).await {
            Ok(replies) => replies,
            Err(error) => {
                tracing::debug!(actor = %self.actor, %topic, %error, "request-reply.request failed");
                return Ok(Err(to_wit(error)));
            }
        };
        let replies: Vec<Message> = replies.into_iter().map(Message::reply).collect();
        let bytes = replies.iter().map(Message::footprint).sum();
        if let Err(limit) = self.resources.take(replies.len(), bytes) {
            tracing::debug!(actor = %self.actor, %topic, replies = replies.len(), bytes, "request replies refused: host resource limit");
            return Ok(Err(types::Error::Other(format!("{} replies refused: {limit}", replies.len()))));
        }
        let mut resources = Vec::with_capacity(replies.len());
        for mut reply in replies {
            reply.charged = reply.footprint();
            resources.push(self.table.push(reply)?);
        }
        Ok(Ok(resources))
    }

    async fn reply(&mut self, reply_to: Resource<Message>, message: Resource<Message>) -> Fallible<()> {
        let route = self.table.get(&reply_to)?.route.clone();
        let message = self.delete_message(message)?;
        match route {
            Route::Invocation => Ok(self.reply_to_invocation(message)),
            Route::Subject(to) => {
                if let Err(error) = check_reply_subject(&self.actor, &to.subject) {
                    return Ok(Err(error));
                }
                if let Err(error) = self.check_size("reply", message.data.len()) {
                    return Ok(Err(error));
                }
                if let Err(error) = check_headers(&self.actor, message.content_type.as_deref(), &message.metadata) {
                    return Ok(Err(error));
                }
                let result = to.provider.send(&to.subject, message.into_outbound()).await;
                if let Err(error) = &result {
                    tracing::debug!(actor = %self.actor, subject = %to.subject, %error, "reply failed");
                }
                Ok(result.map_err(to_wit))
            }
            Route::RequestReply => {
                Ok(Err(types::Error::Other("a reply received from `request` cannot be replied to".into())))
            }
            Route::None => {
                tracing::debug!(actor = %self.actor, "reply refused: the message has no reply address");
                Ok(Err(types::Error::PermissionDenied(
                    "the message replied to has no reply address: replies go only to messages the actor received \
                     with a reply subject"
                        .into(),
                )))
            }
        }
    }
}

impl InvocationState {
    fn reply_to_invocation(&mut self, message: Message) -> Result<(), types::Error> {
        if self.reply.is_some() {
            return Err(types::Error::Other("this message was already replied to".into()));
        }
        let size = message.data.len();
        if size > self.max_reply_bytes {
            self.reply_refused = Some(size);
            return Err(types::Error::Other(format!(
                "reply of {size} bytes exceeds the limit of {} bytes",
                self.max_reply_bytes
            )));
        }
        self.reply = Some(Reply { data: message.data, content_type: message.content_type, metadata: message.metadata });
        Ok(())
    }
}

impl InvocationState {
    fn delete_options(&mut self, options: Resource<RequestOptions>) -> wasmtime::Result<RequestOptions> {
        let options = self.table.delete(options)?;
        self.resources.release(1, 0);
        Ok(options)
    }
}

impl request_reply::HostRequestOptions for InvocationState {
    async fn new(&mut self) -> wasmtime::Result<Resource<RequestOptions>> {
        self.take_or_trap(1, 0)?;
        Ok(self.table.push(RequestOptions::default())?)
    }

    async fn set_timeout_ms(&mut self, opts: Resource<RequestOptions>, timeout_ms: u32) -> wasmtime::Result<()> {
        self.table.get_mut(&opts)?.timeout_ms = Some(timeout_ms);
        Ok(())
    }

    async fn set_expected_replies(&mut self, opts: Resource<RequestOptions>, expected: u32) -> wasmtime::Result<()> {
        self.table.get_mut(&opts)?.expected_replies = Some(expected);
        Ok(())
    }

    async fn drop(&mut self, opts: Resource<RequestOptions>) -> wasmtime::Result<()> {
        self.delete_options(opts)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_options_follow_the_wit() {
        let opts = |timeout_ms, expected_replies| RequestOptions { timeout_ms, expected_replies };
        assert_eq!(RequestOptions::resolve(None), (DEFAULT_REQUEST_TIMEOUT, 1));
        assert_eq!(RequestOptions::resolve(Some(&opts(None, None))), (DEFAULT_REQUEST_TIMEOUT, 1));
        assert_eq!(RequestOptions::resolve(Some(&opts(Some(250), None))), (Duration::from_millis(250), 0));
        assert_eq!(RequestOptions::resolve(Some(&opts(None, Some(3)))), (DEFAULT_REQUEST_TIMEOUT, 3));
        assert_eq!(RequestOptions::resolve(Some(&opts(Some(250), Some(3)))), (Duration::from_millis(250), 3));
    }
}
