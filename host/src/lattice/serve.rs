//! Serving an actor's invocations from its NATS queue subscription.
//!
//! The request payload is the message data; headers carry topic, content type, trace context and metadata.
//! The reply carries `Lattice-Status: ok` and the actor's reply as payload, or `Lattice-Status: error` with
//! `Lattice-Error-Code` and the error message as payload.
//!
//! Reply subjects: a call whose reply subject is no inbox is refused before it is admitted (it never runs):
//! see [`super::reply`]. A call without a reply subject runs, unanswered.
//!
//! Admission: a call is taken into work only when the actor has a free concurrency permit or room in its small
//! bounded queue ([`crate::runtime::queue_limit`]); otherwise it is answered at once with `unavailable`, so callers get
//! backpressure and the host never holds an unbounded pile of waiting tasks.

use async_nats::{HeaderMap, HeaderValue, Message, Subscriber};
use futures::StreamExt;
use lattice_core::subject::Name;
use lattice_core::wire::{ErrorCode, headers};
use lattice_provider_sdk::durable::MESSAGE_ID;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::reply::{Inbox, Replies};
use crate::runtime::Admitted;
use crate::{Actor, IncomingMessage, InvokeError};

/// How long a stopping actor keeps serving what was already delivered to it while its subscription drains
/// (bounded in case the connection is down and the drain cannot complete).
const DRAIN_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Serves invocations until `stop` is cancelled or the subscription ends, then drains. Each invocation runs
/// in its own task on `tracker`, so stopping never cuts one short.
///
/// Stopping leaves the queue group without dropping a call the server already routed here: see [`leave`]. The
/// serving task holds a `tracker` token until it has left, so a graceful stop, which waits for the tracker,
/// waits for those calls too.
///
/// `actor` is followed, not fixed: a start that replaces the actor on this host (a new version, new limits)
/// swaps it in here, keeping the subscription, so calls switch to the new version with no gap in the queue
/// group, while calls already admitted finish on the old one.
pub(crate) async fn serve(
    mut actor_rx: watch::Receiver<Actor>,
    mut subscription: Subscriber,
    replies: Replies,
    host: Name,
    tracker: TaskTracker,
    stop: CancellationToken,
) {
    let _serving = tracker.token();
    let mut actor = actor_rx.borrow_and_update().clone();
    let mut received = 0u64;
    // Admission: run at once with a free permit, else wait in the bounded queue, else hand the reply subject
    // back to be refused (in this task, so refusals never pile up as tasks either).
    let spawn = |actor: &Actor, message: Message, reply: Option<Inbox>| -> Result<(), Option<Inbox>> {
        let Some(admitted) = actor.admit() else { return Err(reply) };
        let (actor, replies, host) = (actor.clone(), replies.clone(), host.clone());
        tracker.spawn(async move { invoke(actor, replies, host, message, reply, admitted).await });
        Ok(())
    };
    loop {
        let message = tokio::select! {
            biased;
            () = stop.cancelled() => break,
            changed = actor_rx.changed() => {
                // The table dropped the actor's entry: it no longer runs here.
                if changed.is_err() {
                    break;
                }
                // A new version: new calls go to it (with its own admission queue).
                actor = actor_rx.borrow_and_update().clone();
                continue;
            }
            message = subscription.next() => match message {
                Some(message) => message,
                None => break,
            },
        };
        received += 1;
        take(&actor, &replies, &host, message, &spawn).await;
    }
    leave(&mut subscription, received, actor.name(), |message| take(&actor, &replies, &host, message, &spawn)).await;
    tracing::info!(actor = actor.name(), "stopped serving invocations");
}

/// Takes one call: refused unanswered if its reply subject is no inbox, else run through `spawn`, else (no
/// room) answered `unavailable`.
async fn take<F>(actor: &Actor, replies: &Replies, host: &Name, message: Message, spawn: &F)
where
    F: Fn(&Actor, Message, Option<Inbox>) -> Result<(), Option<Inbox>>,
{
    let Ok(reply) = replies.inbox(&message).await else { return };
    if let Err(reply) = spawn(actor, message, reply) {
        refuse(actor, replies, host, reply).await;
    }
}

/// Calls the server may still route here after a stop began, over and above those received: more than can
/// be on the wire in one round trip or waiting in the subscription's buffer.
const LEAVE_MARGIN: u64 = 1024;
/// How long a stopping actor keeps taking its share of calls while it leaves the queue group.
const LEAVE_WINDOW: std::time::Duration = std::time::Duration::from_secs(1);

/// Leaves the queue group without dropping a call the server routed here, serving each call that still comes
/// with `serve`.
///
/// A plain unsubscribe (or async-nats 0.51's drain) forgets the subscription as soon as UNSUB is written, so a
/// call the server routed here before it read the UNSUB (about one round trip) would arrive for a subscription
/// the client no longer knows, be dropped, and time out at its caller. Instead the subscription is told to end
/// after `received + LEAVE_MARGIN` messages in all (`UNSUB <sid> <max>`): the server and the client count the
/// same messages, so both end it at the same one and every call routed here is served. The server keeps
/// routing calls here until then, so after [`LEAVE_WINDOW`] (a quiet actor may never see that many) the
/// subscription is drained the plain way; that leaves a gap only for a call on the wire at that moment.
async fn leave<F, Fut>(subscription: &mut Subscriber, received: u64, actor: &str, mut serve: F)
where
    F: FnMut(Message) -> Fut,
    Fut: Future<Output = ()>,
{
    if let Err(error) = subscription.unsubscribe_after(received + LEAVE_MARGIN).await {
        tracing::debug!(actor, %error, "leaving the queue group");
        return;
    }
    if serve_until_end(subscription, LEAVE_WINDOW, &mut serve).await {
        return;
    }
    if let Err(error) = subscription.drain().await {
        tracing::debug!(actor, %error, "draining invocations");
        return;
    }
    // The stream ends once the client has dropped the subscription.
    if !serve_until_end(subscription, DRAIN_LIMIT, &mut serve).await {
        tracing::warn!(actor, "unsubscribe not confirmed in time: stopped draining");
    }
}

/// Serves what the subscription still delivers until it ends (true) or `limit` passes (false).
async fn serve_until_end<F, Fut>(subscription: &mut Subscriber, limit: std::time::Duration, serve: &mut F) -> bool
where
    F: FnMut(Message) -> Fut,
    Fut: Future<Output = ()>,
{
    tokio::time::timeout(limit, async {
        while let Some(message) = subscription.next().await {
            serve(message).await;
        }
    })
    .await
    .is_ok()
}

fn incoming(message: &Message) -> IncomingMessage {
    let mut incoming = IncomingMessage::new(message.payload.to_vec());
    if let Some(map) = &message.headers {
        for (name, values) in map.iter() {
            let name: &str = name.as_ref();
            for value in values {
                let value = value.as_str().to_owned();
                match name {
                    headers::TOPIC => incoming.topic = Some(value),
                    headers::CONTENT_TYPE => incoming.content_type = Some(value),
                    _ => {
                        // A call's id (`lattice call --retry`) also seeds the ids of the actor's durable sends.
                        if name.eq_ignore_ascii_case(MESSAGE_ID) && incoming.message_id.is_none() {
                            incoming.message_id = Some(value.clone());
                        }
                        incoming.metadata.push((name.to_owned(), value))
                    }
                }
            }
        }
    }
    incoming
}

/// The error code an invocation failure is reported with.
pub(crate) fn error_code(error: &InvokeError) -> ErrorCode {
    match error {
        InvokeError::Timeout(_) => ErrorCode::Timeout,
        InvokeError::Instantiate(_) => ErrorCode::Unavailable,
        _ => ErrorCode::InvocationFailed,
    }
}

/// Answers a call the actor has no room for: `unavailable`, at once.
async fn refuse(actor: &Actor, replies: &Replies, host: &Name, reply: Option<Inbox>) {
    let Some(reply_to) = reply else {
        tracing::debug!(actor = actor.name(), "call without a reply subject dropped: actor at capacity");
        return;
    };
    let max_concurrency = actor.max_concurrency();
    let text = format!(
        "actor `{}` on host {host} is at capacity: {max_concurrency} running (max concurrency) and {} waiting \
         (its queue is full); retry later",
        actor.name(),
        crate::runtime::queue_limit(max_concurrency)
    );
    tracing::debug!(actor = actor.name(), "call refused: actor at capacity");
    let mut reply_headers = HeaderMap::new();
    reply_headers.insert(headers::HOST, host.as_str());
    let payload = failed(&mut reply_headers, ErrorCode::Unavailable, text);
    if let Err(error) = replies.publish_with_headers(&reply_to, reply_headers, payload).await {
        tracing::warn!(actor = actor.name(), %error, "cannot send the at-capacity reply");
    }
}

async fn invoke(
    actor: Actor,
    replies: Replies,
    host: Name,
    message: Message,
    reply: Option<Inbox>,
    admitted: Admitted,
) {
    let traceparent = message.headers.as_ref().and_then(|h| h.get(headers::TRACEPARENT)).cloned();
    let span = tracing::debug_span!(
        "invoke",
        actor = actor.name(),
        traceparent = traceparent.as_ref().map(HeaderValue::as_str)
    );
    if message.headers.as_ref().is_some_and(|h| h.get(headers::HTTP).is_some()) {
        return invoke_http(actor, replies, host, message, reply, admitted).instrument(span).await;
    }
    let permit = admitted.permit(&actor);
    // The instance is torn down after the reply is sent.
    let (outcome, retired) = actor.invoke_retaining_with(permit, incoming(&message)).instrument(span).await;
    let Some(reply_to) = reply else {
        if let Err(error) = outcome.result {
            tracing::warn!(actor = actor.name(), %error, "invocation without a reply subject failed");
        }
        drop(retired);
        return;
    };
    let mut reply_headers = HeaderMap::new();
    reply_headers.insert(headers::HOST, host.as_str());
    if let Some(traceparent) = traceparent {
        reply_headers.insert(headers::TRACEPARENT, traceparent);
    }
    let payload = match outcome.result {
        Ok(Some(reply)) => {
            match reply.content_type.as_deref().map(str::parse::<HeaderValue>).transpose() {
                Ok(content_type) => {
                    reply_headers.insert(headers::STATUS, "ok");
                    if let Some(content_type) = content_type {
                        reply_headers.insert(headers::CONTENT_TYPE, content_type);
                    }
                    reply.data.into()
                }
                // A guest-chosen content type with CR or LF cannot be a header: the caller gets an error.
                Err(error) => failed(
                    &mut reply_headers,
                    ErrorCode::InvocationFailed,
                    format!("the actor's reply has an invalid content type: {error}"),
                ),
            }
        }
        Ok(None) => {
            reply_headers.insert(headers::STATUS, "ok");
            reply_headers.insert(headers::REPLY, "none");
            bytes::Bytes::new()
        }
        Err(error) => failed(&mut reply_headers, error_code(&error), error.to_string()),
    };
    send_reply(&replies, actor.name(), &reply_to, reply_headers, payload).await;
    // Alone, let the connection task (woken by the publish, queued behind this task) write the reply before
    // the instance is torn down. Under load, tear down at once: instances waiting to be torn down would
    // only grow the working set.
    if actor.in_flight() == 1 {
        tokio::task::yield_now().await;
    }
    drop(retired);
}

/// Serves an HTTP request forwarded by another host's ingress (`Lattice-Http`): the payload is an
/// [`HttpRequest`](lattice_core::http::HttpRequest), the reply an [`HttpResponse`](lattice_core::http::HttpResponse)
/// (`Lattice-Status: ok`) or the invocation's error, as for any call.
async fn invoke_http(
    actor: Actor,
    replies: Replies,
    host: Name,
    message: Message,
    reply: Option<Inbox>,
    admitted: Admitted,
) {
    let Some(reply_to) = reply else {
        tracing::debug!(actor = actor.name(), "http request without a reply subject dropped");
        return;
    };
    let mut reply_headers = HeaderMap::new();
    reply_headers.insert(headers::HOST, host.as_str());
    let (payload, retired) = match lattice_core::wire::decode::<lattice_core::http::HttpRequest>(&message.payload) {
        Err(error) => {
            (failed(&mut reply_headers, ErrorCode::BadRequest, format!("malformed http request: {error}")), None)
        }
        Ok(request) => {
            let (outcome, retired) = actor.invoke_http_with(admitted.permit(&actor), request).await;
            let payload = match outcome.result {
                Ok(response) => {
                    reply_headers.insert(headers::STATUS, "ok");
                    lattice_core::wire::encode(&response).into()
                }
                Err(error) => failed(&mut reply_headers, error_code(&error), error.to_string()),
            };
            (payload, retired)
        }
    };
    send_reply(&replies, actor.name(), &reply_to, reply_headers, payload).await;
    drop(retired);
}

/// Marks `reply_headers` as an error reply with `code`; returns `message` as its payload.
fn failed(reply_headers: &mut HeaderMap, code: ErrorCode, message: String) -> bytes::Bytes {
    reply_headers.insert(headers::STATUS, "error");
    reply_headers.insert(headers::ERROR_CODE, code.as_str());
    message.into()
}

/// Sends an invocation's reply. One that cannot be sent (for example, larger than the server's max payload) is
/// replaced by an error reply saying so, rather than leaving the caller to time out.
async fn send_reply(replies: &Replies, actor: &str, reply_to: &Inbox, reply_headers: HeaderMap, payload: bytes::Bytes) {
    if let Err(error) = replies.publish_with_headers(reply_to, reply_headers, payload).await {
        tracing::warn!(actor, %error, "cannot send invocation reply");
        let mut error_headers = HeaderMap::new();
        let text = failed(&mut error_headers, ErrorCode::InvocationFailed, format!("cannot send the reply: {error}"));
        let _ = replies.publish_with_headers(reply_to, error_headers, text).await;
    }
}
