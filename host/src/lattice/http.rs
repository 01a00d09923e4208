//! HTTP ingress: a host started with `--http ADDR` serves HTTP/1.1 (and HTTP/2, negotiated by hyper-util's
//! auto builder) and hands each request to the actor its route names.
//!
//! Routes live in the state bucket (`routes.<hash>` -> a [`LinkRecord`] whose text is `route:<route>`; signed
//! by an operator like a link when hosts trust operators) and every ingress host follows them ([`follow`]).
//! A request is served in process when the actor runs on this host, with the same admission as calls (a free
//! permit, or a place in the actor's bounded queue, else 503 with `Retry-After`); otherwise it is forwarded over
//! the lattice as a `Lattice-Http` invocation to a host that runs it ([`LatticeClient::http`]).
//!
//! Limits: the request body is read whole before the actor runs, up to `max_body` (413 past it, at once when
//! `content-length` says so) and within `read_timeout` (408); headers too must arrive within `read_timeout`
//! (HTTP/1), so a client sending a byte a second holds a connection no longer than that. The actor's response
//! body is capped by its `max_reply_bytes` (500 past it). Every response carries `x-lattice-host` (the host
//! that ran the actor, or answered the error); an error's short body says why: no route, actor not running,
//! limit hit.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::kv;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use lattice_core::http::{HttpRequest, HttpResponse, Route, RouteTable, SERVED_BY};
use lattice_core::subject::{Name, Subjects};
use lattice_core::wire::{self, ErrorCode, LinkRecord};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::links::{KeyFollower, LinkGuard};
use super::table::Table;
use crate::InvokeError;
use lattice_client::state::route_of_record;
use lattice_client::{ClientError, LatticeClient};

/// How a host serves HTTP (`lattice host --http`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngressConfig {
    /// Where to listen.
    pub addr: SocketAddr,
    /// The largest request body accepted (413 past it).
    pub max_body: usize,
    /// How long a client may take to send the request's headers, and, separately, its body (408 past it).
    pub read_timeout: Duration,
    /// How long a request forwarded to another host may take in all.
    pub forward_timeout: Duration,
    /// Connections open at once; one more is closed as soon as it is accepted.
    pub max_connections: usize,
}

impl IngressConfig {
    /// Defaults: 1 MiB bodies, 10 s to send headers and body, 35 s for a forwarded request, 10,000 connections.
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            max_body: 1 << 20,
            read_timeout: Duration::from_secs(10),
            forward_timeout: Duration::from_secs(35),
            max_connections: 10_000,
        }
    }
}

/// Follows the routes in the state bucket, publishing the whole table after each change.
pub(crate) struct Routes {
    by_key: BTreeMap<String, (Name, Route)>,
    subjects: Arc<Subjects>,
    guard: LinkGuard,
    out: watch::Sender<Arc<RouteTable>>,
}

impl Routes {
    pub(crate) fn new(subjects: Arc<Subjects>, guard: LinkGuard, out: watch::Sender<Arc<RouteTable>>) -> Self {
        Self { by_key: BTreeMap::new(), subjects, guard, out }
    }
}

impl KeyFollower for Routes {
    async fn apply(&mut self, entry: kv::Entry) -> bool {
        let changed = match entry.operation {
            kv::Operation::Put => {
                let record = wire::decode::<LinkRecord>(&entry.value).ok();
                let route = record.as_ref().and_then(route_of_record);
                match (record, route) {
                    (Some(record), Some(route)) => {
                        let expected = self.subjects.route_key(&route);
                        if self.guard.admit(&self.subjects, &entry.key, &record, &expected, "route").await {
                            tracing::info!(%route, actor = %record.actor, "route set");
                            self.by_key.insert(entry.key.clone(), (record.actor, route));
                        } else {
                            self.by_key.remove(&entry.key);
                        }
                        true
                    }
                    _ => {
                        tracing::warn!(key = %entry.key, "ignoring an invalid route record");
                        self.by_key.remove(&entry.key).is_some()
                    }
                }
            }
            kv::Operation::Delete | kv::Operation::Purge => self.by_key.remove(&entry.key).is_some(),
        };
        if changed {
            let routes = self.by_key.values().map(|(actor, route)| (actor.clone(), route.clone())).collect();
            self.out.send_replace(Arc::new(RouteTable::new(routes)));
        }
        true
    }
}

/// What every request handler of one ingress shares.
struct Ingress {
    host: Name,
    config: IngressConfig,
    routes: watch::Receiver<Arc<RouteTable>>,
    table: Table,
    client: LatticeClient,
}

/// Serves HTTP on `listener` until `stop`; connections in progress are asked to finish (graceful shutdown).
pub(crate) async fn serve(
    listener: TcpListener,
    host: Name,
    config: IngressConfig,
    routes: watch::Receiver<Arc<RouteTable>>,
    table: Table,
    client: LatticeClient,
    stop: CancellationToken,
) {
    let ingress = Arc::new(Ingress { host, config, routes, table, client });
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(ingress.config.read_timeout);
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(builder);
    let connections = Arc::new(tokio::sync::Semaphore::new(ingress.config.max_connections));
    loop {
        let (stream, peer) = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(%error, "http ingress: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(open) = connections.clone().try_acquire_owned() else {
            tracing::debug!(%peer, limit = ingress.config.max_connections, "http ingress: connection limit reached");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (ingress, builder, stop) = (ingress.clone(), builder.clone(), stop.clone());
        tokio::spawn(async move {
            let _open = open;
            let service = hyper::service::service_fn(move |request| {
                let ingress = ingress.clone();
                async move { Ok::<_, std::convert::Infallible>(ingress.handle(request).await) }
            });
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(error) = result {
                        tracing::debug!(%peer, %error, "http connection ended with an error");
                    }
                }
                () = stop.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
    }
    tracing::info!("http ingress stopped");
}

/// The body of every ingress response.
type Body = Full<Bytes>;

impl Ingress {
    async fn handle(&self, request: Request<Incoming>) -> Response<Body> {
        let authority = request
            .uri()
            .authority()
            .map(|a| a.as_str().to_owned())
            .or_else(|| request.headers().get(http::header::HOST).and_then(|h| h.to_str().ok()).map(str::to_owned))
            .unwrap_or_default();
        let path = request.uri().path_and_query().map_or("/", |p| p.as_str()).to_owned();
        let Some(actor) = self.routes.borrow().find(&authority, &path).cloned() else {
            return self.error(StatusCode::NOT_FOUND, format!("no route for {authority}{path}"));
        };
        let too_large = request
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
            .is_some_and(|length| length > self.config.max_body as u64);
        if too_large {
            return self.body_too_large();
        }
        let (parts, body) = request.into_parts();
        let body =
            match tokio::time::timeout(self.config.read_timeout, Limited::new(body, self.config.max_body).collect())
                .await
            {
                Err(_) => {
                    let mut response =
                        self.error(StatusCode::REQUEST_TIMEOUT, "request body not received in time".into());
                    closing(&mut response);
                    return response;
                }
                Ok(Err(error)) if error.is::<http_body_util::LengthLimitError>() => return self.body_too_large(),
                Ok(Err(error)) => {
                    return self.error(StatusCode::BAD_REQUEST, format!("cannot read the request body: {error}"));
                }
                Ok(Ok(collected)) => collected.to_bytes(),
            };
        let scheme = parts.uri.scheme_str().unwrap_or("http").to_owned();
        let headers = parts
            .headers
            .iter()
            .map(|(name, value)| (name.as_str().to_owned(), serde_bytes::ByteBuf::from(value.as_bytes().to_vec())))
            .collect();
        let forwarded = HttpRequest {
            method: parts.method.as_str().to_owned(),
            scheme,
            authority,
            path,
            headers,
            body: serde_bytes::ByteBuf::from(body.to_vec()),
        };
        match self.table.local(&actor).filter(crate::Actor::serves_http) {
            Some(local) => self.local(&local, forwarded).await,
            None => self.forward(&actor, &forwarded).await,
        }
    }

    /// Runs the actor here, admitted like a call.
    async fn local(&self, actor: &crate::Actor, request: HttpRequest) -> Response<Body> {
        let Some(admitted) = actor.admit() else {
            return self.error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("actor `{}` is at capacity: retry later", actor.name()),
            );
        };
        let (outcome, retired) = actor.invoke_http_with(admitted.permit(actor), request).await;
        let response = match outcome.result {
            Ok(response) => self.response(response, self.host.as_str()),
            Err(error) => self.invoke_error(actor.name(), &error),
        };
        // Tear the instance down (reset its memory for the pool) off this task, so hyper writes the response
        // first; the permit goes back only then, so live instances still never exceed the concurrency.
        if let Some(retired) = retired {
            tokio::spawn(async move { drop(retired) });
        }
        response
    }

    /// Sends the request to a host that runs the actor.
    async fn forward(&self, actor: &Name, request: &HttpRequest) -> Response<Body> {
        match self.client.http(actor, request, self.config.forward_timeout).await {
            Ok((response, host)) => self.response(response, host.as_deref().unwrap_or_default()),
            Err(ClientError::NoResponders(_)) => {
                self.error(StatusCode::SERVICE_UNAVAILABLE, format!("actor `{actor}` is not running"))
            }
            Err(ClientError::Timeout { .. }) => {
                self.error(StatusCode::GATEWAY_TIMEOUT, format!("actor `{actor}` did not answer in time"))
            }
            Err(ClientError::Remote(error)) => {
                let status = status_of(error.code);
                self.error(status, format!("actor `{actor}`: {}", error.message))
            }
            Err(error) => self.error(StatusCode::BAD_GATEWAY, format!("actor `{actor}`: {error}")),
        }
    }

    fn invoke_error(&self, actor: &str, error: &InvokeError) -> Response<Body> {
        let status = match error {
            InvokeError::NoHandler(_) => StatusCode::NOT_IMPLEMENTED,
            other => status_of(super::serve::error_code(other)),
        };
        self.error(status, format!("actor `{actor}`: {error}"))
    }

    /// The actor's response, with `x-lattice-host` (hop-by-hop and length headers are hyper's to set).
    fn response(&self, answer: HttpResponse, served_by: &str) -> Response<Body> {
        let mut response = Response::new(Full::new(Bytes::from(answer.body.into_vec())));
        *response.status_mut() = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let headers = response.headers_mut();
        for (name, value) in answer.headers {
            let (Ok(name), Ok(value)) =
                (http::HeaderName::from_bytes(name.as_bytes()), http::HeaderValue::from_bytes(&value))
            else {
                continue;
            };
            let hop = matches!(
                name.as_str(),
                "connection" | "keep-alive" | "transfer-encoding" | "upgrade" | "content-length" | "te" | "trailer"
            );
            if !hop && name.as_str() != SERVED_BY {
                headers.append(name, value);
            }
        }
        if let Ok(value) = http::HeaderValue::from_str(served_by) {
            headers.insert(SERVED_BY, value);
        }
        response
    }

    /// An error answered by the ingress: a one-line text body saying why.
    fn error(&self, status: StatusCode, message: String) -> Response<Body> {
        tracing::debug!(%status, %message, "http request not served");
        let mut response = Response::new(Full::new(Bytes::from(format!("{message}\n"))));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain; charset=utf-8"));
        if let Ok(value) = http::HeaderValue::from_str(self.host.as_str()) {
            headers.insert(SERVED_BY, value);
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(http::header::RETRY_AFTER, http::HeaderValue::from_static("1"));
        }
        response
    }

    fn body_too_large(&self) -> Response<Body> {
        let mut response = self.error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body over {} bytes (the host's --http-max-body)", self.config.max_body),
        );
        closing(&mut response);
        response
    }
}

/// Asks hyper to close the connection after this response (the rest of the request body is not read).
fn closing(response: &mut Response<Body>) {
    response.headers_mut().insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
}

/// The HTTP status an invocation's error code is answered with.
fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::Unavailable | ErrorCode::NotFound => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::Timeout => StatusCode::GATEWAY_TIMEOUT,
        ErrorCode::BadRequest => StatusCode::BAD_GATEWAY,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}
