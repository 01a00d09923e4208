//! `wasi:messaging` for actors: messages, replies, and clients resolved through links.
//!
//! The message an invocation delivers to `incoming-handler.handle` carries the invocation's reply address;
//! `request-reply.reply(reply-to, response)` with that message as `reply-to` becomes the invocation's reply.
//! A reply larger than the actor's `max_reply_bytes` is refused: the guest gets an error value and the
//! invocation fails with [`InvokeError::ReplyTooLarge`](crate::InvokeError::ReplyTooLarge) whatever the guest
//! does next.
//!
//! `client.connect(name)` resolves `name` through the actor's messaging links. No messaging provider runs
//! in-process yet, so no link can resolve and every `connect` is refused with `permission-denied`; the
//! [`ClientHandle`] type is therefore uninhabited.

use wasmtime::component::Resource;

use crate::bindings::wasi::messaging::{producer, request_reply, types};
use crate::runtime::Reply;
use crate::state::InvocationState;

/// A connected messaging client. Uninhabited until a messaging provider can be linked.
pub enum ClientHandle {}

/// A message as the host holds it.
#[derive(Debug, Clone, Default)]
pub struct Message {
    pub(crate) data: Vec<u8>,
    pub(crate) topic: Option<String>,
    pub(crate) content_type: Option<String>,
    pub(crate) metadata: Vec<(String, String)>,
    /// Replying to this message answers the current invocation.
    pub(crate) answers_invocation: bool,
}

/// Options for `request-reply.request`.
#[derive(Debug, Clone, Default)]
pub struct RequestOptions {
    #[allow(dead_code)] // read once a messaging provider serves requests
    pub(crate) timeout_ms: Option<u32>,
    #[allow(dead_code)]
    pub(crate) expected_replies: Option<u32>,
}

type Fallible<T> = wasmtime::Result<Result<T, types::Error>>;

impl types::Host for InvocationState {}

impl types::HostClient for InvocationState {
    async fn connect(&mut self, name: String) -> Fallible<Resource<ClientHandle>> {
        tracing::debug!(actor = %self.actor, %name, "client.connect without a link: permission denied");
        Ok(Err(types::Error::PermissionDenied(format!("no messaging link named `{name}`"))))
    }

    async fn disconnect(&mut self, client: Resource<ClientHandle>) -> Fallible<()> {
        match *self.table.get(&client)? {}
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
        self.table.get_mut(&msg)?.metadata.push((key, value));
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
        _topic: types::Topic,
        _message: Resource<Message>,
    ) -> Fallible<()> {
        match *self.table.get(&client)? {}
    }
}

impl request_reply::Host for InvocationState {
    async fn request(
        &mut self,
        client: Resource<ClientHandle>,
        _topic: types::Topic,
        _message: Resource<Message>,
        _options: Option<Resource<RequestOptions>>,
    ) -> Fallible<Vec<Resource<Message>>> {
        match *self.table.get(&client)? {}
    }

    async fn reply(&mut self, reply_to: Resource<Message>, message: Resource<Message>) -> Fallible<()> {
        let answers_invocation = self.table.get(&reply_to)?.answers_invocation;
        let message = self.table.delete(message)?;
        if !answers_invocation {
            return Ok(Err(types::Error::Other("the message replied to has no reply address".into())));
        }
        if self.reply.is_some() {
            return Ok(Err(types::Error::Other("this message was already replied to".into())));
        }
        let size = message.data.len();
        if size > self.max_reply_bytes {
            self.reply_refused = Some(size);
            return Ok(Err(types::Error::Other(format!(
                "reply of {size} bytes exceeds the limit of {} bytes",
                self.max_reply_bytes
            ))));
        }
        self.reply = Some(Reply { data: message.data, content_type: message.content_type, metadata: message.metadata });
        Ok(Ok(()))
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
