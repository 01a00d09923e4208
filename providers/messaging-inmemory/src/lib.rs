//! In-memory `wasi:messaging` provider.
//!
//! One [`InMemoryMessaging`] is a message bus inside one process: every actor and invocation of a host linked
//! to it (and the host itself) publish and subscribe on the same subjects, with the NATS rules of
//! [`Messaging`]: dot-separated subjects, `*` / `>` wildcards in subscriptions, queue groups (each message goes
//! to one member of each group, round-robin), and request/reply through a fresh `_INBOX.…` subject per request.
//! Nothing leaves the process; for messaging between hosts use the NATS provider.
//!
//! **Buffers and backpressure.** Every subscription has a bounded buffer ([`Config::buffer`], default 1024
//! messages). A publisher whose message meets a full buffer waits for room, up to [`Config::max_wait`]
//! (default 2 s); if the subscriber has not made room by then the message is dropped *for that subscriber*,
//! with a warning, and counted in [`InMemoryMessaging::dropped`]. So a slow subscriber slows its publishers
//! down (no loss in a steady pipeline) but can never block them forever (an actor that publishes to its own
//! full subscription would otherwise wait on itself).
//!
//! Delivery is at most once: a message published while nothing subscribes to its subject is gone. Matching a
//! published subject costs one pass over the subscriptions.
//!
//! ```
//! use std::time::Duration;
//!
//! use futures::StreamExt;
//! use lattice_messaging_inmemory::InMemoryMessaging;
//! use lattice_provider_sdk::{Messaging, OutboundMessage};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! let bus = InMemoryMessaging::new();
//! let mut orders = bus.subscribe(vec!["orders.>".into()], None).await.unwrap();
//! bus.send("orders.eu.new", OutboundMessage::new("o-1 250")).await.unwrap();
//! let message = orders.next().await.unwrap();
//! assert_eq!(message.subject, "orders.eu.new");
//! assert_eq!(message.data, b"o-1 250");
//!
//! // Nobody answers requests on `prices`: the requester learns it at once.
//! let error = bus.request("prices", OutboundMessage::new("?"), Duration::from_secs(1), 1).await.unwrap_err();
//! assert!(error.to_string().contains("no responders"));
//! # });
//! ```

use std::collections::{BTreeMap, HashMap};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use lattice_provider_sdk::{
    InboundMessage, MessageStream, Messaging, MsgError, OutboundMessage, async_trait, subject_matches,
    validate_subject, validate_subscription,
};
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::SendTimeoutError;

/// Sizes of an [`InMemoryMessaging`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Messages buffered per subscription before publishers have to wait (at least 1).
    pub buffer: usize,
    /// How long a publisher waits for room in a full buffer before dropping the message for that subscriber.
    pub max_wait: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self { buffer: 1024, max_wait: Duration::from_secs(2) }
    }
}

/// An in-memory message bus; cheap to clone (clones share subscriptions).
#[derive(Clone, Default)]
pub struct InMemoryMessaging {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for InMemoryMessaging {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InMemoryMessaging")
            .field("subscriptions", &self.subscriptions())
            .field("dropped", &self.dropped())
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Inner {
    config: Config,
    registry: Mutex<Registry>,
    next_id: AtomicU64,
    dropped: AtomicU64,
}

#[derive(Default)]
struct Registry {
    /// By id, so iteration (and so queue-group member order) is stable.
    subscriptions: BTreeMap<u64, Subscriber>,
    /// Round-robin position per queue group.
    next_member: HashMap<String, usize>,
}

struct Subscriber {
    subjects: Vec<String>,
    queue: Option<String>,
    sender: mpsc::Sender<InboundMessage>,
}

impl Inner {
    fn registry(&self) -> MutexGuard<'_, Registry> {
        // A poisoned lock means a panic elsewhere mid-operation; every operation leaves the registry consistent.
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn add(self: &Arc<Self>, subjects: Vec<String>, queue: Option<String>) -> Subscription {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (sender, receiver) = mpsc::channel(self.config.buffer.max(1));
        self.registry().subscriptions.insert(id, Subscriber { subjects, queue, sender });
        Subscription { id, inner: Arc::downgrade(self), receiver }
    }

    /// Delivers `message` to every matching subscription without a queue and to one member of each matching
    /// queue group; returns how many subscriptions took it.
    async fn publish(&self, message: InboundMessage) -> usize {
        // Decide the targets under the lock, deliver without it.
        let targets: Vec<Vec<mpsc::Sender<InboundMessage>>> = {
            let mut registry = self.registry();
            let mut plain = Vec::new();
            let mut groups: BTreeMap<&str, Vec<mpsc::Sender<InboundMessage>>> = BTreeMap::new();
            for subscriber in registry.subscriptions.values() {
                if !subscriber.subjects.iter().any(|pattern| subject_matches(pattern, &message.subject)) {
                    continue;
                }
                match &subscriber.queue {
                    None => plain.push(vec![subscriber.sender.clone()]),
                    Some(queue) => groups.entry(queue.as_str()).or_default().push(subscriber.sender.clone()),
                }
            }
            let groups: Vec<(String, Vec<_>)> = groups.into_iter().map(|(q, m)| (q.to_owned(), m)).collect();
            for (queue, mut members) in groups {
                // Round-robin: start at this group's next member, fall back to the others if it is gone.
                let position = registry.next_member.entry(queue).or_default();
                let start = *position % members.len();
                *position = position.wrapping_add(1);
                members.rotate_left(start);
                plain.push(members);
            }
            plain
        };
        let mut delivered = 0;
        for candidates in targets {
            for sender in candidates {
                match sender.send_timeout(message.clone(), self.config.max_wait).await {
                    Ok(()) => {
                        delivered += 1;
                        break;
                    }
                    // Unsubscribed meanwhile: a queue group tries its next member.
                    Err(SendTimeoutError::Closed(_)) => continue,
                    Err(SendTimeoutError::Timeout(_)) => {
                        self.dropped.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(
                            subject = %message.subject,
                            buffer = self.config.buffer,
                            waited = ?self.config.max_wait,
                            "in-memory messaging: subscriber buffer full, message dropped for that subscriber"
                        );
                        break;
                    }
                }
            }
        }
        delivered
    }
}

/// The stream of one subscription; unsubscribes on drop.
struct Subscription {
    id: u64,
    inner: std::sync::Weak<Inner>,
    receiver: mpsc::Receiver<InboundMessage>,
}

impl Stream for Subscription {
    type Item = InboundMessage;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.receiver.poll_recv(cx)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.upgrade() {
            let mut registry = inner.registry();
            if let Some(Subscriber { queue: Some(queue), .. }) = registry.subscriptions.remove(&self.id) {
                let still_used = registry.subscriptions.values().any(|s| s.queue.as_ref() == Some(&queue));
                if !still_used {
                    registry.next_member.remove(&queue);
                }
            }
        }
    }
}

impl InMemoryMessaging {
    /// An empty bus with the default [`Config`].
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty bus with `config`.
    pub fn with_config(config: Config) -> Self {
        Self { inner: Arc::new(Inner { config, ..Inner::default() }) }
    }

    /// How many subscriptions are active (request inboxes included).
    pub fn subscriptions(&self) -> usize {
        self.inner.registry().subscriptions.len()
    }

    /// How many subscriptions currently match `subject`.
    pub fn interest(&self, subject: &str) -> usize {
        self.inner
            .registry()
            .subscriptions
            .values()
            .filter(|s| s.subjects.iter().any(|pattern| subject_matches(pattern, subject)))
            .count()
    }

    /// Messages dropped so far because a subscriber's buffer stayed full for [`Config::max_wait`].
    pub fn dropped(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }
}

fn inbound(subject: &str, msg: OutboundMessage, reply_to: Option<String>) -> InboundMessage {
    InboundMessage {
        subject: subject.to_owned(),
        data: msg.data,
        content_type: msg.content_type,
        metadata: msg.metadata,
        reply_to,
    }
}

#[async_trait]
impl Messaging for InMemoryMessaging {
    async fn send(&self, subject: &str, msg: OutboundMessage) -> Result<(), MsgError> {
        validate_subject(subject, false)?;
        self.inner.publish(inbound(subject, msg, None)).await;
        Ok(())
    }

    async fn request(
        &self,
        subject: &str,
        msg: OutboundMessage,
        timeout: Duration,
        expected_replies: u32,
    ) -> Result<Vec<InboundMessage>, MsgError> {
        validate_subject(subject, false)?;
        let deadline = tokio::time::Instant::now() + timeout;
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let inbox = format!("_INBOX.inmemory.{id}");
        let mut replies_stream = self.inner.add(vec![inbox.clone()], None);
        if self.inner.publish(inbound(subject, msg, Some(inbox))).await == 0 {
            return Err(MsgError::Other(format!("no responders for subject `{subject}`")));
        }
        let mut replies = Vec::new();
        while expected_replies == 0 || replies.len() < expected_replies as usize {
            match tokio::time::timeout_at(deadline, replies_stream.receiver.recv()).await {
                Ok(Some(reply)) => replies.push(reply),
                Ok(None) | Err(_) => break,
            }
        }
        if replies.is_empty() { Err(MsgError::Timeout) } else { Ok(replies) }
    }

    async fn subscribe(&self, subjects: Vec<String>, queue: Option<String>) -> Result<MessageStream, MsgError> {
        validate_subscription(&subjects, queue.as_deref())?;
        Ok(Box::pin(self.inner.add(subjects, queue)))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use futures::{FutureExt, StreamExt};

    use super::*;

    fn subjects(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    async fn next(stream: &mut MessageStream) -> InboundMessage {
        tokio::time::timeout(Duration::from_secs(5), stream.next()).await.expect("a message in time").expect("open")
    }

    /// Drains what is already buffered (unconstrained: tokio's cooperative budget must not cut it short).
    fn buffered(stream: &mut MessageStream) -> Vec<InboundMessage> {
        let mut out = Vec::new();
        while let Some(Some(m)) = tokio::task::unconstrained(stream.next()).now_or_never() {
            out.push(m);
        }
        out
    }

    #[tokio::test]
    async fn wildcards_route_like_nats() {
        let bus = InMemoryMessaging::new();
        let mut star = bus.subscribe(subjects(&["orders.*"]), None).await.expect("sub");
        let mut tail = bus.subscribe(subjects(&["orders.>"]), None).await.expect("sub");
        let mut exact = bus.subscribe(subjects(&["orders.new", "refunds.new"]), None).await.expect("sub");
        for subject in ["orders.new", "orders.eu.new", "refunds.new", "other"] {
            bus.send(subject, OutboundMessage::new(subject)).await.expect("send");
        }
        let names = |v: Vec<InboundMessage>| v.into_iter().map(|m| m.subject).collect::<Vec<_>>();
        assert_eq!(names(buffered(&mut star)), ["orders.new"]);
        assert_eq!(names(buffered(&mut tail)), ["orders.new", "orders.eu.new"]);
        assert_eq!(names(buffered(&mut exact)), ["orders.new", "refunds.new"]);
    }

    #[tokio::test]
    async fn a_subscription_matching_twice_gets_one_copy() {
        let bus = InMemoryMessaging::new();
        let mut sub = bus.subscribe(subjects(&["a.*", "a.>", "a.b"]), None).await.expect("sub");
        bus.send("a.b", OutboundMessage::new("x")).await.expect("send");
        assert_eq!(buffered(&mut sub).len(), 1);
    }

    #[tokio::test]
    async fn queue_groups_share_round_robin_and_plain_subscribers_get_everything() {
        let bus = InMemoryMessaging::new();
        let mut workers: Vec<_> = Vec::new();
        for _ in 0..3 {
            workers.push(bus.subscribe(subjects(&["jobs.>"]), Some("workers".into())).await.expect("sub"));
        }
        let mut other_group = bus.subscribe(subjects(&["jobs.*"]), Some("auditors".into())).await.expect("sub");
        let mut watcher = bus.subscribe(subjects(&["jobs.run"]), None).await.expect("sub");
        for i in 0..30 {
            bus.send("jobs.run", OutboundMessage::new(i.to_string())).await.expect("send");
        }
        let counts: Vec<usize> = workers.iter_mut().map(|w| buffered(w).len()).collect();
        assert_eq!(counts, [10, 10, 10], "round-robin over the group");
        assert_eq!(buffered(&mut other_group).len(), 30, "each group gets every message once");
        assert_eq!(buffered(&mut watcher).len(), 30);

        // A member that leaves stops getting messages; the others share them.
        drop(workers.pop());
        for i in 0..10 {
            bus.send("jobs.run", OutboundMessage::new(i.to_string())).await.expect("send");
        }
        let counts: Vec<usize> = workers.iter_mut().map(|w| buffered(w).len()).collect();
        assert_eq!(counts.iter().sum::<usize>(), 10);
        assert_eq!(counts, [5, 5]);
    }

    #[tokio::test]
    async fn metadata_and_content_type_pass_through() {
        let bus = InMemoryMessaging::new();
        let mut sub = bus.subscribe(subjects(&["m"]), None).await.expect("sub");
        let msg = OutboundMessage {
            data: b"{}".to_vec(),
            content_type: Some("application/json".into()),
            metadata: vec![("trace".into(), "1".into()), ("trace".into(), "2".into())],
        };
        bus.send("m", msg.clone()).await.expect("send");
        let got = next(&mut sub).await;
        assert_eq!(
            (got.data, got.content_type, got.metadata, got.reply_to),
            (msg.data, msg.content_type, msg.metadata, None)
        );
    }

    #[tokio::test]
    async fn request_reply_collects_replies_until_count_or_timeout() {
        let bus = InMemoryMessaging::new();
        for name in ["one", "two"] {
            let mut sub = bus.subscribe(subjects(&["echo"]), None).await.expect("sub");
            let responder = bus.clone();
            tokio::spawn(async move {
                while let Some(request) = sub.next().await {
                    let reply_to = request.reply_to.expect("a reply subject");
                    let mut data = name.as_bytes().to_vec();
                    data.extend_from_slice(&request.data);
                    responder.send(&reply_to, OutboundMessage::new(data)).await.expect("reply");
                }
            });
        }
        let replies = bus.request("echo", OutboundMessage::new(":hi"), Duration::from_secs(5), 1).await.expect("req");
        assert_eq!(replies.len(), 1);
        let mut replies: Vec<_> = bus
            .request("echo", OutboundMessage::new(":hi"), Duration::from_secs(5), 2)
            .await
            .expect("request")
            .into_iter()
            .map(|m| String::from_utf8(m.data).expect("utf-8"))
            .collect();
        replies.sort();
        assert_eq!(replies, ["one:hi", "two:hi"]);
        // The inbox is gone once the request returns; only the two responders remain.
        assert_eq!(bus.subscriptions(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn request_without_reply_times_out_and_without_subscriber_fails_at_once() {
        let bus = InMemoryMessaging::new();
        let err = bus.request("nobody", OutboundMessage::new("?"), Duration::from_secs(5), 1).await.expect_err("none");
        assert!(matches!(&err, MsgError::Other(m) if m.contains("no responders")), "{err}");

        let _silent = bus.subscribe(subjects(&["silent"]), None).await.expect("sub");
        let started = tokio::time::Instant::now();
        let err = bus.request("silent", OutboundMessage::new("?"), Duration::from_millis(300), 1).await.expect_err("");
        assert_eq!(err, MsgError::Timeout);
        assert_eq!(started.elapsed(), Duration::from_millis(300));
    }

    #[tokio::test(start_paused = true)]
    async fn expected_zero_gathers_until_the_timeout() {
        let bus = InMemoryMessaging::new();
        let mut sub = bus.subscribe(subjects(&["gather"]), None).await.expect("sub");
        let responder = bus.clone();
        tokio::spawn(async move {
            let request = sub.next().await.expect("request");
            let reply_to = request.reply_to.expect("reply subject");
            for i in 0..3 {
                responder.send(&reply_to, OutboundMessage::new(vec![i])).await.expect("reply");
            }
        });
        let replies = bus.request("gather", OutboundMessage::new("?"), Duration::from_secs(1), 0).await.expect("req");
        assert_eq!(replies.len(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_buffer_makes_publishers_wait_then_drops_with_a_count() {
        let bus = InMemoryMessaging::with_config(Config { buffer: 2, max_wait: Duration::from_millis(100) });
        let mut sub = bus.subscribe(subjects(&["s"]), None).await.expect("sub");
        bus.send("s", OutboundMessage::new("1")).await.expect("send");
        bus.send("s", OutboundMessage::new("2")).await.expect("send");

        // Backpressure: the third send waits until the subscriber makes room.
        let publisher = bus.clone();
        let third = tokio::spawn(async move { publisher.send("s", OutboundMessage::new("3")).await });
        tokio::task::yield_now().await;
        assert!(!third.is_finished());
        assert_eq!(next(&mut sub).await.data, b"1");
        third.await.expect("task").expect("send");
        assert_eq!(bus.dropped(), 0);

        // Nobody reads: after max_wait the message is dropped for this subscriber, and counted.
        bus.send("s", OutboundMessage::new("4")).await.expect("send returns");
        assert_eq!(bus.dropped(), 1);
        let got: Vec<_> = buffered(&mut sub).into_iter().map(|m| m.data).collect();
        assert_eq!(got, [b"2".to_vec(), b"3".to_vec()]);
    }

    #[tokio::test]
    async fn dropping_the_stream_unsubscribes() {
        let bus = InMemoryMessaging::new();
        let sub = bus.subscribe(subjects(&["a.>"]), Some("q".into())).await.expect("sub");
        assert_eq!(bus.interest("a.b"), 1);
        drop(sub);
        assert_eq!(bus.interest("a.b"), 0);
        assert_eq!(bus.subscriptions(), 0);
    }

    #[tokio::test]
    async fn invalid_subjects_and_queues_are_errors() {
        let bus = InMemoryMessaging::new();
        assert!(bus.send("a.*", OutboundMessage::new("")).await.is_err());
        assert!(bus.send("", OutboundMessage::new("")).await.is_err());
        assert!(bus.subscribe(subjects(&["a..b"]), None).await.is_err());
        assert!(bus.subscribe(vec![], None).await.is_err());
        assert!(bus.subscribe(subjects(&["a"]), Some("two words".into())).await.is_err());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_publishers_lose_nothing_under_backpressure() {
        let bus = InMemoryMessaging::with_config(Config { buffer: 16, ..Config::default() });
        let mut sub = bus.subscribe(subjects(&["n.*"]), None).await.expect("sub");
        let publishers: Vec<_> = (0..8)
            .map(|p| {
                let bus = bus.clone();
                tokio::spawn(async move {
                    for i in 0..500 {
                        bus.send(&format!("n.{p}"), OutboundMessage::new(format!("{i}"))).await.expect("send");
                    }
                })
            })
            .collect();
        let mut per_publisher: HashMap<String, usize> = HashMap::new();
        for _ in 0..4000 {
            *per_publisher.entry(next(&mut sub).await.subject).or_default() += 1;
        }
        for p in publishers {
            p.await.expect("publisher");
        }
        assert_eq!(per_publisher.len(), 8);
        assert!(per_publisher.values().all(|&n| n == 500));
        assert_eq!(bus.dropped(), 0);
    }
}
