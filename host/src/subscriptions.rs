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
//! - **At least once.** A link with `delivery=at-least-once` reads a durable consumer instead
//!   ([`Messaging::subscribe_durable`]): the reader takes every free permit, fetches at most that many
//!   messages (so a slow actor slows its consumer and nothing is dropped), and settles each after its
//!   invocation: ack on Ok, nak with [`redelivery_delay`] on a failure, and on the last allowed delivery
//!   (`max_deliver`) dead-letter it through the [`DeadLetters`] sink, then term it once stored. The permit is
//!   held until the message is settled. Stopping hands back messages fetched but not started.
//!
//! This module sees only the [`Messaging`] trait: it works the same over the in-memory bus and NATS.

use std::sync::Arc;

use std::time::Duration;

use futures::{FutureExt, StreamExt};
use lattice_provider_sdk::durable::{
    DELIVERY_ATTEMPT, Delivery, DeliveryStream, DurableConsumer, DurableSpec, MESSAGE_ID,
};
use lattice_provider_sdk::{InboundMessage, MessageStream, Messaging, MsgError};
use tokio::sync::{Mutex, OwnedSemaphorePermit};
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::deadletter::{DeadLetter, DeadLetters};
use crate::links::Durable;
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

/// Where one subscribing link's messages come from.
enum Source {
    /// At most once: the provider's message stream.
    Stream(MessageStream),
    /// At least once: a durable consumer, fetched as permits free up.
    Durable(Box<dyn DurableConsumer>, Durable),
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
    durable: Option<Durable>,
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
                durable: link.durable.clone(),
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
        let mut sources = Vec::with_capacity(wanted.len());
        for (name, link) in &wanted {
            let error = |source| SubscribeError {
                actor: actor.name().to_owned(),
                link: (*name).to_owned(),
                provider: link.provider_name.to_string(),
                subjects: link.subscribe.join("|"),
                source,
            };
            let source = match &link.durable {
                None => Source::Stream(
                    link.provider.subscribe(link.subscribe.clone(), link.queue.clone()).await.map_err(error)?,
                ),
                Some(durable) => {
                    let spec = DurableSpec {
                        actor: actor.name().to_owned(),
                        link: (*name).to_owned(),
                        subjects: link.subscribe.clone(),
                        stream: durable.stream.clone(),
                        ack_wait: durable.ack_wait,
                    };
                    Source::Durable(link.provider.subscribe_durable(spec).await.map_err(error)?, durable.clone())
                }
            };
            sources.push(source);
        }
        for ((name, link), source) in wanted.iter().zip(sources) {
            tracing::info!(
                actor = %actor.name(),
                link = name,
                provider = %link.provider_name,
                subjects = %link.subscribe.join("|"),
                queue = link.queue.as_deref().unwrap_or(""),
                delivery = if link.durable.is_some() { "at-least-once" } else { "at-most-once" },
                "messaging subscription started"
            );
            let reader = Reader {
                actor: actor.downgrade(),
                actor_name: actor.name().into(),
                link: (*name).into(),
                provider: link.provider.clone(),
                stop: stop.clone(),
            };
            let task = match source {
                Source::Stream(stream) => tokio::spawn(reader.run(stream)),
                Source::Durable(consumer, durable) => tokio::spawn(
                    DurableReader { reader, durable, dead_letters: link.dead_letters.clone() }.run(consumer),
                ),
            };
            running.readers.push(task);
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
            message_id: None,
        }
    }
}

/// Most messages one fetch asks for (and permits it holds while waiting).
const MAX_FETCH: usize = 256;
/// How long one fetch waits for messages before the reader asks again.
const FETCH_WAIT: Duration = Duration::from_secs(1);
/// First wait after a failed fetch (doubling up to [`FETCH_RETRY_MAX`]).
const FETCH_RETRY: Duration = Duration::from_millis(100);
const FETCH_RETRY_MAX: Duration = Duration::from_secs(5);

/// The delay before a message whose handler failed on delivery `attempt` is delivered again: 100 ms, doubling,
/// at most 10 s.
pub(crate) fn redelivery_delay(attempt: u64) -> Duration {
    let shift = u32::try_from(attempt.saturating_sub(1)).unwrap_or(u32::MAX).min(7);
    (Duration::from_millis(100) * (1 << shift)).min(Duration::from_secs(10))
}

/// Reads one at-least-once link's durable consumer: fetches as many messages as the actor has free permits,
/// handles each in a fresh instance, then settles it.
struct DurableReader {
    reader: Reader,
    durable: Durable,
    dead_letters: Option<Arc<dyn DeadLetters>>,
}

impl DurableReader {
    async fn run(self, mut consumer: Box<dyn DurableConsumer>) {
        let stop = self.reader.stop.clone();
        let this = Arc::new(self);
        let mut retry = FETCH_RETRY;
        'fetching: loop {
            let Some(actor) = this.reader.actor.upgrade() else { break };
            // Backpressure: ask only for what there are permits for, and wait for the first one.
            let first = tokio::select! {
                biased;
                () = stop.cancelled() => break,
                permit = actor.acquire_permit() => permit,
            };
            let mut permits = vec![first];
            while permits.len() < MAX_FETCH {
                match actor.try_acquire_permit() {
                    Some(permit) => permits.push(permit),
                    None => break,
                }
            }
            // Not kept alive by its reader while waiting for messages: an actor dropped meanwhile stops here.
            drop(actor);
            let fetched = tokio::select! {
                biased;
                () = stop.cancelled() => break,
                fetched = consumer.fetch(permits.len(), FETCH_WAIT) => fetched,
            };
            let mut batch = match fetched {
                Ok(batch) => {
                    retry = FETCH_RETRY;
                    batch
                }
                Err(error) => {
                    tracing::warn!(actor = %this.reader.actor_name, link = %this.reader.link, %error, "fetching messages failed; retrying");
                    drop(permits);
                    tokio::select! {
                        biased;
                        () = stop.cancelled() => break,
                        () = tokio::time::sleep(retry) => {}
                    }
                    retry = (retry * 2).min(FETCH_RETRY_MAX);
                    continue;
                }
            };
            loop {
                let next = tokio::select! {
                    biased;
                    () = stop.cancelled() => {
                        release_unstarted(&mut batch).await;
                        break 'fetching;
                    }
                    next = batch.next() => next,
                };
                match next {
                    None => break,
                    Some(Err(error)) => {
                        tracing::debug!(actor = %this.reader.actor_name, link = %this.reader.link, %error, "fetch ended early");
                        break;
                    }
                    Some(Ok(delivery)) => match (permits.pop(), this.reader.actor.upgrade()) {
                        (Some(permit), Some(actor)) => {
                            tokio::spawn(this.clone().handle(actor, permit, delivery));
                        }
                        // The actor is gone, or the backend sent more than was asked for: let another
                        // subscriber (or fetch) take it at once.
                        _ => settle(delivery.ack.nak(Duration::ZERO).await, "nak", &delivery.id),
                    },
                }
            }
        }
        tracing::debug!(actor = %this.reader.actor_name, link = %this.reader.link, "at-least-once subscription stopped");
    }

    /// Handles one delivery with `permit` held, then acks it, or naks it with a delay, or dead-letters it
    /// after its last allowed delivery. The permit is released only once the message is settled, so a
    /// graceful stop that waits for the actor's permits waits for the acknowledgements too.
    async fn handle(self: Arc<Self>, actor: Actor, permit: OwnedSemaphorePermit, delivery: Delivery) {
        let Delivery { message, id, attempt, ack } = delivery;
        let last = attempt >= self.durable.max_deliver;
        // Kept only when a failure would dead-letter it.
        let original = last.then(|| message.clone());
        let subject = message.subject.clone();
        let mut metadata: Vec<(String, String)> = message
            .metadata
            .into_iter()
            .filter(|(k, _)| !k.eq_ignore_ascii_case(MESSAGE_ID) && !k.eq_ignore_ascii_case(DELIVERY_ATTEMPT))
            .collect();
        metadata.push((MESSAGE_ID.to_owned(), id.clone()));
        metadata.push((DELIVERY_ATTEMPT.to_owned(), attempt.to_string()));
        let incoming = IncomingMessage {
            topic: Some(message.subject),
            data: message.data,
            content_type: message.content_type,
            metadata,
            reply_to: ReplyTo::Nobody,
            message_id: Some(id.clone()),
        };
        let invocation = actor.invoke_retaining_with(std::future::ready(permit), incoming);
        tokio::pin!(invocation);
        // Keep the delivery ours while the handler runs longer than half the acknowledgement wait.
        let mut progress = tokio::time::interval_at(
            tokio::time::Instant::now() + self.durable.ack_wait / 2,
            self.durable.ack_wait / 2,
        );
        let (outcome, retired) = loop {
            tokio::select! {
                done = &mut invocation => break done,
                _ = progress.tick() => settle(ack.progress().await, "progress", &id),
            }
        };
        let (actor_name, link) = (&self.reader.actor_name, &self.reader.link);
        match outcome.result {
            Ok(_) => settle(ack.ack().await, "ack", &id),
            Err(error) => match original {
                Some(original) => {
                    let reason = error.to_string();
                    tracing::warn!(actor = %actor_name, %link, %subject, %id, attempt, %reason, "message failed its last delivery: dead-lettering it");
                    let stored = match &self.dead_letters {
                        Some(sink) => {
                            let letter = DeadLetter {
                                actor: actor_name.to_string(),
                                link: link.to_string(),
                                subject: original.subject,
                                id: id.clone(),
                                attempts: attempt,
                                reason,
                                data: original.data,
                                content_type: original.content_type,
                                metadata: original.metadata,
                            };
                            sink.dead_letter(letter).await
                        }
                        None => {
                            tracing::error!(actor = %actor_name, %link, %id, "no dead-letter store: the message is dropped");
                            Ok(())
                        }
                    };
                    match stored {
                        Ok(()) => settle(ack.term().await, "term", &id),
                        Err(error) => {
                            tracing::warn!(actor = %actor_name, %link, %id, %error, "storing a dead letter failed: the message will be delivered again");
                            settle(ack.nak(redelivery_delay(attempt)).await, "nak", &id);
                        }
                    }
                }
                None => {
                    tracing::debug!(actor = %actor_name, %link, %subject, %id, attempt, %error, "message not handled: delivering it again later");
                    settle(ack.nak(redelivery_delay(attempt)).await, "nak", &id);
                }
            },
        }
        drop(retired);
    }
}

/// Hands back the messages a stopping reader received but did not start, so another subscriber takes them
/// at once instead of after their acknowledgement wait.
async fn release_unstarted(batch: &mut DeliveryStream) {
    while let Some(Some(next)) = batch.next().now_or_never() {
        if let Ok(delivery) = next {
            settle(delivery.ack.nak(Duration::ZERO).await, "nak", &delivery.id);
        }
    }
}

/// Logs a failed acknowledgement: the backend delivers the message again after its acknowledgement wait.
fn settle(result: Result<(), MsgError>, what: &str, id: &str) {
    if let Err(error) = result {
        tracing::warn!(%id, %error, "{what} failed: the message will be delivered again after its acknowledgement wait");
    }
}
