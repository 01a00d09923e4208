//! Messaging subscriptions: delivering messages from an actor's messaging links to its `incoming-handler`.
//!
//! A messaging link with `subscribe=<subject>[|<subject>…]` (and optionally `queue=<group>`) asks the host to
//! deliver every message on those subjects to the actor. The runtime owns this; callers never start anything:
//!
//! - **Lifecycle.** [`Runtime::load`](crate::Runtime::load) subscribes before it returns the actor (a
//!   subscription the provider refuses fails the load with [`LinkError::Subscribe`](crate::LinkError::Subscribe)), so a
//!   message published after `load` returns is delivered. [`Actor::set_links`](crate::Actor::set_links)
//!   re-subscribes in the background when the subscribing links changed (links that only open stores or send
//!   leave the subscriptions alone); [`Actor::resubscribe`](crate::Actor::resubscribe) does it now and reports
//!   errors. Subscriptions stop when the last clone of the [`Actor`] is dropped: the reader tasks hold the
//!   actor weakly and are cancelled with it.
//! - **Changes.** Re-subscribing stops the old subscriptions, and waits until they are gone, before it starts the
//!   new ones (at most once: a
//!   message published in between, or still buffered in a dropped subscription, is not delivered; none is
//!   delivered twice). Invocations already running finish.
//! - **Delivery.** One task per subscribing link reads the provider's stream. For each message it waits for
//!   one of the actor's concurrency permits (the same `max_concurrency` permits [`Actor::invoke`] uses), then
//!   runs the invocation in its own task: a fresh instance under all the actor's limits, the wall-clock timeout
//!   starting once the permit is held. So at most `max_concurrency` messages are handled at once; while all
//!   permits are busy the reader stops reading and the provider's buffering or backpressure applies. With
//!   `max_concurrency` 1, messages are handled one at a time in arrival order; otherwise order is not kept.
//! - **Replies.** A message that arrived with a reply subject (a request) carries
//!   [`ReplyTo::Subject`](crate::ReplyTo): `request-reply.reply` publishes through the provider it came from.
//!   A message without one carries [`ReplyTo::Nobody`](crate::ReplyTo) and `reply` is an error value.
//! - **Failures.** An invocation that fails (trap, limit, error value returned by the handler) is logged at
//!   `warn` with the actor, link and subject; the message is not retried.
//!
//! This module sees only the [`Messaging`] trait: it works the same over the in-memory bus and NATS.

use std::sync::Arc;

use futures::StreamExt;
use lattice_provider_sdk::{InboundMessage, MessageStream, Messaging, MsgError};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::messaging::{ReplySubject, ReplyTo};
use crate::runtime::{Actor, IncomingMessage, WeakActor};

/// Why an actor's subscriptions could not be started.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("actor `{actor}` cannot subscribe through link `{link}` (provider `{provider}`) to `{subjects}`: {source}")]
#[non_exhaustive]
pub struct SubscribeError {
    /// The actor.
    pub actor: String,
    /// The messaging link.
    pub link: String,
    /// The provider instance the link names.
    pub provider: String,
    /// The subjects, `|`-separated as in the link.
    pub subjects: String,
    /// What the provider said.
    #[source]
    pub source: MsgError,
}

/// The subscriptions of one actor; dropping it stops them.
#[derive(Default)]
pub(crate) struct Subscriptions {
    running: Mutex<Running>,
}

#[derive(Default)]
struct Running {
    /// Set by [`Subscriptions::close`]: the actor is being stopped, nothing subscribes again.
    closed: bool,
    /// What is subscribed now, to skip re-subscribing when a link change leaves it alone.
    keys: Vec<Key>,
    /// Cancels the reader tasks when dropped (replaced, or the actor dropped).
    stop: Option<DropGuard>,
    /// The reader tasks, awaited when re-subscribing so the old subscriptions are gone before `sync` returns.
    readers: Vec<JoinHandle<()>>,
}

impl Running {
    /// Stops the readers and waits until they have dropped their subscriptions.
    async fn stop(&mut self) {
        self.keys.clear();
        drop(self.stop.take());
        for reader in self.readers.drain(..) {
            // A reader only ends by returning; a panic there is already reported by tokio.
            let _ = reader.await;
        }
    }
}

/// Identifies one subscribing link: same name, provider instance, subjects and queue means same subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Key {
    link: String,
    provider: usize,
    subjects: Vec<String>,
    queue: Option<String>,
}

impl Subscriptions {
    /// Makes the running subscriptions match `actor`'s current links; returns how many links subscribe.
    pub(crate) async fn sync(&self, actor: &Actor) -> Result<usize, SubscribeError> {
        let mut running = self.running.lock().await;
        // Read the links under the lock: concurrent syncs serialise and the last one sees the newest links.
        let links = actor.links();
        let wanted = links.subscriptions();
        let keys: Vec<Key> = wanted
            .iter()
            .map(|(name, link)| Key {
                link: (*name).to_owned(),
                provider: Arc::as_ptr(&link.provider).cast::<()>() as usize,
                subjects: link.subscribe.clone(),
                queue: link.queue.clone(),
            })
            .collect();
        // A failed sync leaves `keys` empty, so the next one retries.
        if running.closed || running.keys == keys {
            return Ok(keys.len());
        }
        // Stop first, then start: at most once across the change.
        running.stop().await;
        if keys.is_empty() {
            tracing::debug!(actor = %actor.name(), "messaging subscriptions stopped");
            return Ok(0);
        }
        let stop = CancellationToken::new();
        let mut streams = Vec::with_capacity(wanted.len());
        for (name, link) in &wanted {
            let stream =
                link.provider.subscribe(link.subscribe.clone(), link.queue.clone()).await.map_err(|source| {
                    SubscribeError {
                        actor: actor.name().to_owned(),
                        link: (*name).to_owned(),
                        provider: link.provider_name.to_string(),
                        subjects: link.subscribe.join("|"),
                        source,
                    }
                })?;
            streams.push(stream);
        }
        for ((name, link), stream) in wanted.iter().zip(streams) {
            tracing::info!(
                actor = %actor.name(),
                link = name,
                provider = %link.provider_name,
                subjects = %link.subscribe.join("|"),
                queue = link.queue.as_deref().unwrap_or(""),
                "messaging subscription started"
            );
            let reader = Reader {
                actor: actor.downgrade(),
                actor_name: actor.name().into(),
                link: (*name).into(),
                provider: link.provider.clone(),
                stop: stop.clone(),
            };
            running.readers.push(tokio::spawn(reader.run(stream)));
        }
        running.keys = keys;
        running.stop = Some(stop.drop_guard());
        Ok(wanted.len())
    }
}

impl Subscriptions {
    /// Stops reading every subscription for good (a later link change subscribes nothing) and waits until the
    /// readers have dropped them. Invocations already started keep running; they hold concurrency permits,
    /// so [`Actor::idle`](crate::Actor) tells when they are done.
    pub(crate) async fn close(&self) {
        let mut running = self.running.lock().await;
        running.closed = true;
        running.stop().await;
    }
}

/// Reads one link's subscription and starts an invocation per message.
struct Reader {
    actor: WeakActor,
    actor_name: Arc<str>,
    link: Arc<str>,
    provider: Arc<dyn Messaging>,
    stop: CancellationToken,
}

impl Reader {
    async fn run(self, mut stream: MessageStream) {
        loop {
            let message = tokio::select! {
                biased;
                () = self.stop.cancelled() => break,
                message = stream.next() => match message {
                    Some(message) => message,
                    None => {
                        tracing::warn!(
                            actor = %self.actor_name,
                            link = %self.link,
                            "messaging subscription ended by the provider: no more messages are delivered on it"
                        );
                        break;
                    }
                },
            };
            let Some(actor) = self.actor.upgrade() else { break };
            let permit = tokio::select! {
                biased;
                () = self.stop.cancelled() => break,
                permit = actor.acquire_permit() => permit,
            };
            let subject = message.subject.clone();
            let incoming = self.incoming(message);
            let link = self.link.clone();
            tokio::spawn(async move {
                let outcome = actor.invoke_with_permit(permit, incoming).await;
                match outcome.result {
                    Ok(_) => tracing::trace!(actor = %actor.name(), %link, %subject, "message handled"),
                    Err(error) => tracing::warn!(
                        actor = %actor.name(),
                        %link,
                        %subject,
                        %error,
                        "message from a subscription not handled"
                    ),
                }
            });
        }
        tracing::debug!(actor = %self.actor_name, link = %self.link, "messaging subscription stopped");
    }

    fn incoming(&self, message: InboundMessage) -> IncomingMessage {
        let reply_to = match message.reply_to {
            Some(subject) => ReplyTo::Subject(ReplySubject::new(self.provider.clone(), subject)),
            None => ReplyTo::Nobody,
        };
        IncomingMessage {
            topic: Some(message.subject),
            data: message.data,
            content_type: message.content_type,
            metadata: message.metadata,
            reply_to,
        }
    }
}
