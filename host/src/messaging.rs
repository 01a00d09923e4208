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
//! **Size.** Every outbound payload (send, request, reply through a provider) is capped by the actor's
//! `ActorLimits::max_reply_bytes` (default 1 MiB): a larger one is refused with an error value before it
//! reaches the provider.

use std::sync::Arc;
use std::time::Duration;

use lattice_provider_sdk::{InboundMessage, Messaging, MsgError, OutboundMessage};
use wasmtime::component::Resource;

use crate::bindings::wasi::messaging::{producer, request_reply, types};
use crate::runtime::Reply;
use crate::state::InvocationState;

/// How long `request-reply.request` waits when the guest sets no timeout.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// A connected messaging client: the provider its link resolved to.
pub struct ClientHandle {
    link: String,
    provider: Arc<dyn Messaging>,
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
}

impl Message {
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

impl InvocationState {
    /// The client's provider, or the error value for a disconnected client.
    fn provider(&self, client: &Resource<ClientHandle>) -> wasmtime::Result<Result<Arc<dyn Messaging>, types::Error>> {
        let handle = self.table.get(client)?;
        if !handle.connected {
            return Ok(Err(types::Error::Connection(format!("client `{}` is disconnected", handle.link))));
        }
        Ok(Ok(handle.provider.clone()))
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
        let handle = ClientHandle { link: name, provider: link.provider.clone(), connected: true };
        Ok(Ok(self.table.push(handle)?))
    }

    async fn disconnect(&mut self, client: Resource<ClientHandle>) -> Fallible<()> {
        self.table.get_mut(&client)?.connected = false;
        Ok(Ok(()))
    }

    async fn drop(&mut self, client: Resource<ClientHandle>) -> wasmtime::Result<()> {
        self.table.delete(client)?;
        Ok(())
    }
}

impl types::HostMessage for InvocationState {
    async fn new(&mut self, data: Vec<u8>) -> wasmtime::Result<Resource<Message>> {
        Ok(self.table.push(Message { data, ..Message::default() })?)
    }

    async fn topic(&mut self, msg: Resource<Message>) -> wasmtime::Result<Option<String>> {
        Ok(self.table.get(&msg)?.topic.clone())
    }

    async fn content_type(&mut self, msg: Resource<Message>) -> wasmtime::Result<Option<String>> {
        Ok(self.table.get(&msg)?.content_type.clone())
    }

    async fn set_content_type(&mut self, msg: Resource<Message>, content_type: String) -> wasmtime::Result<()> {
        self.table.get_mut(&msg)?.content_type = Some(content_type);
        Ok(())
    }

    async fn data(&mut self, msg: Resource<Message>) -> wasmtime::Result<Vec<u8>> {
        Ok(self.table.get(&msg)?.data.clone())
    }

    async fn set_data(&mut self, msg: Resource<Message>, data: Vec<u8>) -> wasmtime::Result<()> {
        self.table.get_mut(&msg)?.data = data;
        Ok(())
    }

    async fn metadata(&mut self, msg: Resource<Message>) -> wasmtime::Result<Option<types::Metadata>> {
        let metadata = &self.table.get(&msg)?.metadata;
        Ok((!metadata.is_empty()).then(|| metadata.clone()))
    }

    async fn add_metadata(&mut self, msg: Resource<Message>, key: String, value: String) -> wasmtime::Result<()> {
        let metadata = &mut self.table.get_mut(&msg)?.metadata;
        // The WIT says "replacing any existing value for `key`".
        metadata.retain(|(k, _)| *k != key);
        metadata.push((key, value));
        Ok(())
    }

    async fn set_metadata(&mut self, msg: Resource<Message>, meta: types::Metadata) -> wasmtime::Result<()> {
        self.table.get_mut(&msg)?.metadata = meta;
        Ok(())
    }

    async fn remove_metadata(&mut self, msg: Resource<Message>, key: String) -> wasmtime::Result<()> {
        self.table.get_mut(&msg)?.metadata.retain(|(k, _)| *k != key);
        Ok(())
    }

    async fn drop(&mut self, msg: Resource<Message>) -> wasmtime::Result<()> {
        self.table.delete(msg)?;
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
        let message = self.table.delete(message)?;
        let provider = match self.provider(&client)? {
            Ok(provider) => provider,
            Err(error) => return Ok(Err(error)),
        };
        if let Err(error) = self.check_size("message", message.data.len()) {
            return Ok(Err(error));
        }
        let result = provider.send(&topic, message.into_outbound()).await;
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
        let options = options.map(|options| self.table.delete(options)).transpose()?;
        let (timeout, expected) = RequestOptions::resolve(options.as_ref());
        let outbound = self.table.get(&message)?.outbound();
        let provider = match self.provider(&client)? {
            Ok(provider) => provider,
            Err(error) => return Ok(Err(error)),
        };
        if let Err(error) = self.check_size("request", outbound.data.len()) {
            return Ok(Err(error));
        }
        let replies = match provider.request(&topic, outbound, timeout, expected).await {
            Ok(replies) => replies,
            Err(error) => {
                tracing::debug!(actor = %self.actor, %topic, %error, "request-reply.request failed");
                return Ok(Err(to_wit(error)));
            }
        };
        let mut resources = Vec::with_capacity(replies.len());
        for reply in replies {
            resources.push(self.table.push(Message::reply(reply))?);
        }
        Ok(Ok(resources))
    }

    async fn reply(&mut self, reply_to: Resource<Message>, message: Resource<Message>) -> Fallible<()> {
        let route = self.table.get(&reply_to)?.route.clone();
        let message = self.table.delete(message)?;
        match route {
            Route::Invocation => Ok(self.reply_to_invocation(message)),
            Route::Subject(to) => {
                if let Err(error) = self.check_size("reply", message.data.len()) {
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
            Route::None => Ok(Err(types::Error::Other("the message replied to has no reply address".into()))),
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

impl request_reply::HostRequestOptions for InvocationState {
    async fn new(&mut self) -> wasmtime::Result<Resource<RequestOptions>> {
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
        self.table.delete(opts)?;
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
