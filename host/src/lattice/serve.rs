//! Serving an actor's invocations from its NATS queue subscription.
//!
//! The request payload is the message data; headers carry topic, content type, trace context and metadata.
//! The reply carries `Lattice-Status: ok` and the actor's reply as payload, or `Lattice-Status: error` with
//! `Lattice-Error-Code` and the error message as payload.

use async_nats::{Client, HeaderMap, Message, Subscriber};
use futures::StreamExt;
use lattice_core::subject::Name;
use lattice_core::wire::{ErrorCode, headers};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::{Actor, IncomingMessage, InvokeError};

/// How long a stopping actor keeps serving what was already delivered to it while its subscription drains
/// (bounded in case the connection is down and the drain cannot complete).
const DRAIN_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Serves invocations until `stop` is cancelled or the subscription ends, then drains. Each invocation runs
/// in its own task on `tracker`, so stopping never cuts one short.
///
/// Stopping drains rather than unsubscribes: calls the queue group already routed to this host and that sit
/// in the subscription's buffer are served, not dropped (dropped, their callers would time out). The serving
/// task holds a `tracker` token until the drain ends, so a graceful stop, which waits for the tracker, waits
/// for those calls too. Known gap: async-nats 0.51 ends a drained subscription right after sending UNSUB,
/// without waiting for the server's PONG, so a call still on the wire at that moment is dropped.
pub(crate) async fn serve(
    actor: Actor,
    mut subscription: Subscriber,
    client: Client,
    host: Name,
    tracker: TaskTracker,
    stop: CancellationToken,
) {
    let _serving = tracker.token();
    let spawn = |message: Message| {
        let (actor, client, host) = (actor.clone(), client.clone(), host.clone());
        tracker.spawn(async move { invoke(actor, client, host, message).await });
    };
    loop {
        let message = tokio::select! {
            () = stop.cancelled() => break,
            message = subscription.next() => match message {
                Some(message) => message,
                None => break,
            },
        };
        spawn(message);
    }
    match subscription.drain().await {
        Ok(()) => {
            // The stream ends once the client has dropped the subscription.
            let drained = tokio::time::timeout(DRAIN_LIMIT, async {
                while let Some(message) = subscription.next().await {
                    spawn(message);
                }
            })
            .await;
            if drained.is_err() {
                tracing::warn!(actor = actor.name(), "unsubscribe not confirmed in time: stopped draining");
            }
        }
        Err(error) => tracing::debug!(actor = actor.name(), %error, "draining invocations"),
    }
    tracing::info!(actor = actor.name(), "stopped serving invocations");
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
                    _ => incoming.metadata.push((name.to_owned(), value)),
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

async fn invoke(actor: Actor, client: Client, host: Name, message: Message) {
    let traceparent = message.headers.as_ref().and_then(|h| h.get(headers::TRACEPARENT)).map(|v| v.as_str().to_owned());
    let span = tracing::debug_span!("invoke", actor = actor.name(), traceparent = traceparent.as_deref());
    // The instance is torn down after the reply is sent.
    let (outcome, retired) = actor.invoke_retaining(incoming(&message)).instrument(span).await;
    let Some(reply_to) = message.reply else {
        if let Err(error) = outcome.result {
            tracing::warn!(actor = actor.name(), %error, "invocation without a reply subject failed");
        }
        drop(retired);
        return;
    };
    let mut reply_headers = HeaderMap::new();
    reply_headers.insert(headers::HOST, host.as_str());
    if let Some(traceparent) = traceparent {
        reply_headers.insert(headers::TRACEPARENT, traceparent.as_str());
    }
    let payload = match outcome.result {
        Ok(Some(reply)) => {
            reply_headers.insert(headers::STATUS, "ok");
            if let Some(content_type) = &reply.content_type {
                reply_headers.insert(headers::CONTENT_TYPE, content_type.as_str());
            }
            reply.data.into()
        }
        Ok(None) => {
            reply_headers.insert(headers::STATUS, "ok");
            reply_headers.insert(headers::REPLY, "none");
            bytes::Bytes::new()
        }
        Err(error) => {
            reply_headers.insert(headers::STATUS, "error");
            reply_headers.insert(headers::ERROR_CODE, error_code(&error).as_str());
            error.to_string().into()
        }
    };
    if let Err(error) = client.publish_with_headers(reply_to.clone(), reply_headers, payload).await {
        tracing::warn!(actor = actor.name(), %error, "cannot send invocation reply");
        // Tell the caller rather than leaving it to time out (e.g. the reply exceeded the server's max payload).
        let mut headers_err = HeaderMap::new();
        headers_err.insert(headers::STATUS, "error");
        headers_err.insert(headers::ERROR_CODE, ErrorCode::InvocationFailed.as_str());
        let _ =
            client.publish_with_headers(reply_to, headers_err, format!("cannot send the reply: {error}").into()).await;
    }
    // Alone, let the connection task (woken by the publish, queued behind this task) write the reply before
    // the instance is torn down. Under load, tear down at once: instances waiting to be torn down would
    // only grow the working set.
    if actor.in_flight() == 1 {
        tokio::task::yield_now().await;
    }
    drop(retired);
}
