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
//! `content-length` says so) and within `read_timeout` (408). A connection with no request in progress is
//! closed once it has been so for `read_timeout`: from accept until its first request's headers are complete
//! (HTTP/1, and HTTP/2's preface and first HEADERS), and again after each response ([`Activity`]), so a
//! client sending a byte a second, or nothing at all, holds a connection no longer than that. One client
//! address holds at most `max_connections_per_client` connections ([`PerClient`]). The actor's response body
//! is capped by its `max_reply_bytes` (500 past it).
//!
//! Before routing, the request's authority is checked ([`authority_of`]): a duplicate `Host`, userinfo in it,
//! or a request target (HTTP/1 absolute form, HTTP/2 `:authority`) whose authority disagrees with `Host` is
//! answered 400. Every response carries `x-lattice-host` (the host that ran the actor, or answered the error);
//! an error's short body says why: bad host, no route, actor not running, limit hit.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
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
use tokio::time::Instant;
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
    /// How long a client may take to send the request's headers, and, separately, its body (408 past it); and
    /// how long a connection may stay open with no request in progress (from accept, and after each response).
    pub read_timeout: Duration,
    /// How long a request forwarded to another host may take in all.
    pub forward_timeout: Duration,
    /// Connections open at once; one more is closed as soon as it is accepted.
    pub max_connections: usize,
    /// Connections open at once from one client address (an IPv6 client: its /64); one more is closed as soon
    /// as it is accepted.
    pub max_connections_per_client: usize,
}

impl IngressConfig {
    /// Defaults: 1 MiB bodies, 10 s to send headers and body, 35 s for a forwarded request, 10,000 connections,
    /// 64 of them per client address.
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            max_body: 1 << 20,
            read_timeout: Duration::from_secs(10),
            forward_timeout: Duration::from_secs(35),
            max_connections: 10_000,
            max_connections_per_client: 64,
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
    let clients = Arc::new(PerClient::new(ingress.config.max_connections_per_client));
    let mut refused = Refused::default();
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
        let Some(client) = clients.admit(peer.ip()) else {
            refused.count(peer, "per-client connection limit (--http-max-connections-per-client) reached");
            drop(stream);
            continue;
        };
        let Ok(open) = connections.clone().try_acquire_owned() else {
            refused.count(peer, "connection limit (--http-max-connections) reached");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (ingress, builder, stop) = (ingress.clone(), builder.clone(), stop.clone());
        tokio::spawn(async move {
            let (_open, _client) = (open, client);
            let activity = Arc::new(Activity::new());
            let idle_after = ingress.config.read_timeout;
            let busy = activity.clone();
            let service = hyper::service::service_fn(move |request| {
                let (ingress, busy) = (ingress.clone(), busy.begin());
                async move {
                    let response = ingress.handle(request).await;
                    drop(busy);
                    Ok::<_, std::convert::Infallible>(response)
                }
            });
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(error) = result {
                        tracing::debug!(%peer, %error, "http connection ended with an error");
                    }
                }
                () = activity.idle(idle_after) => {
                    tracing::debug!(%peer, "http connection closed: no request in progress for the read timeout");
                }
                () = stop.cancelled() => {
                    // A client that never answers HTTP/2's shutdown ping is not waited for past the read timeout.
                    connection.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(idle_after, connection).await;
                }
            }
        });
    }
    tracing::info!("http ingress stopped");
}

/// Connections open per client address, against [`IngressConfig::max_connections_per_client`].
struct PerClient {
    limit: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl PerClient {
    fn new(limit: usize) -> Self {
        Self { limit: limit.max(1), open: Mutex::new(HashMap::new()) }
    }

    /// A place for one more connection from `peer`, or `None` when its address holds its limit.
    fn admit(self: &Arc<Self>, peer: IpAddr) -> Option<ClientSlot> {
        let key = client_key(peer);
        let mut open = self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = open.entry(key).or_default();
        if *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(ClientSlot { clients: self.clone(), key })
    }
}

/// One connection's place in [`PerClient`], given back on drop.
struct ClientSlot {
    clients: Arc<PerClient>,
    key: IpAddr,
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut open = self.clients.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// What counts as one client: an IPv4 address (also when mapped into IPv6), or an IPv6 address's /64, the
/// smallest block one party is usually given.
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(v6.to_bits() & !u128::from(u64::MAX))),
        },
    }
}

/// Connections refused at accept: counted, and logged at most once per [`Refused::EVERY`] with the count since.
#[derive(Default)]
struct Refused {
    total: u64,
    unlogged: u64,
    logged_at: Option<Instant>,
}

impl Refused {
    const EVERY: Duration = Duration::from_secs(10);

    fn count(&mut self, peer: SocketAddr, why: &'static str) {
        self.total += 1;
        self.unlogged += 1;
        let now = Instant::now();
        if self.logged_at.is_none_or(|at| now.duration_since(at) >= Self::EVERY) {
            tracing::warn!(%peer, refused = self.unlogged, total = self.total, "http ingress: connection refused: {why}");
            self.unlogged = 0;
            self.logged_at = Some(now);
        }
    }
}

/// Whether a connection has a request in progress, and since when it has had none.
struct Activity {
    /// Requests in progress, and when the last one ended (or the connection was accepted).
    state: Mutex<(usize, Instant)>,
}

impl Activity {
    fn new() -> Self {
        Self { state: Mutex::new((0, Instant::now())) }
    }

    /// Marks a request in progress until the guard drops.
    fn begin(self: &Arc<Self>) -> Busy {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner).0 += 1;
        Busy(self.clone())
    }

    /// Since when no request has been in progress; `None` while one is.
    fn idle_since(&self) -> Option<Instant> {
        let (busy, since) = *self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        (busy == 0).then_some(since)
    }

    /// Returns once the connection has had no request in progress for `limit`.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads the state.
    async fn idle(&self, limit: Duration) {
        let mut deadline = Instant::now() + limit;
        loop {
            tokio::time::sleep_until(deadline).await;
            deadline = match self.idle_since() {
                Some(since) if since + limit <= Instant::now() => return,
                Some(since) => since + limit,
                None => Instant::now() + limit,
            };
        }
    }
}

/// A request in progress on a connection ([`Activity::begin`]).
struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        let mut state = self.0.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *state = (state.0.saturating_sub(1), Instant::now());
    }
}

/// Why a request's authority is refused before routing (400).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum BadHost {
    /// More than one `Host` header.
    #[error("more than one host header")]
    Duplicate,
    /// A `Host` header that is not an authority (`name[:port]`).
    #[error("the host header is not a host name and port")]
    Invalid,
    /// Userinfo (`user@host`) in `Host` or in the request target.
    #[error("userinfo (`user@`) in the host is not accepted")]
    Userinfo,
    /// The request target's authority (HTTP/1 absolute form, HTTP/2 `:authority`) disagrees with `Host`.
    #[error("the request target's authority `{target}` disagrees with the host header `{host}`")]
    Mismatch {
        /// The request target's authority.
        target: String,
        /// The `Host` header.
        host: String,
    },
}

/// The authority a request is routed by: the request target's (absolute form, `:authority`), else `Host`, else
/// empty; refused when `Host` is repeated, holds userinfo, or disagrees with the target.
pub(crate) fn authority_of(uri: &http::Uri, headers: &http::HeaderMap) -> Result<String, BadHost> {
    let mut hosts = headers.get_all(http::header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err(BadHost::Duplicate);
    }
    let host = match host.map(http::HeaderValue::to_str) {
        None => None,
        Some(Err(_)) => return Err(BadHost::Invalid),
        Some(Ok("")) => None,
        Some(Ok(text)) => match text.parse::<http::uri::Authority>() {
            Ok(authority) if authority.as_str().contains('@') => return Err(BadHost::Userinfo),
            Ok(authority) => Some(authority),
            Err(_) => return Err(BadHost::Invalid),
        },
    };
    let target = uri.authority();
    if target.is_some_and(|t| t.as_str().contains('@')) {
        return Err(BadHost::Userinfo);
    }
    match (target, host) {
        (Some(target), Some(host)) if !target.as_str().eq_ignore_ascii_case(host.as_str()) => {
            Err(BadHost::Mismatch { target: target.to_string(), host: host.to_string() })
        }
        (Some(target), _) => Ok(target.as_str().to_owned()),
        (None, Some(host)) => Ok(host.as_str().to_owned()),
        (None, None) => Ok(String::new()),
    }
}

/// The body of every ingress response.
type Body = Full<Bytes>;

impl Ingress {
    async fn handle(&self, request: Request<Incoming>) -> Response<Body> {
        let authority = match authority_of(request.uri(), request.headers()) {
            Ok(authority) => authority,
            Err(error) => return self.error(StatusCode::BAD_REQUEST, format!("bad request: {error}")),
        };
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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn authority(target: &str, hosts: &[&[u8]]) -> Result<String, BadHost> {
        let uri: http::Uri = target.parse().expect("a valid request target");
        let mut headers = http::HeaderMap::new();
        for host in hosts {
            headers.append(http::header::HOST, http::HeaderValue::from_bytes(host).expect("a header value"));
        }
        authority_of(&uri, &headers)
    }

    #[test]
    fn the_authority_is_the_targets_else_the_host_header() {
        assert_eq!(authority("/x", &[b"a.test"]).as_deref(), Ok("a.test"));
        assert_eq!(authority("/x", &[b"a.test:8080"]).as_deref(), Ok("a.test:8080"));
        assert_eq!(authority("http://a.test/x", &[]).as_deref(), Ok("a.test"));
        assert_eq!(authority("http://A.test/x", &[b"a.TEST"]).as_deref(), Ok("A.test"));
        assert_eq!(authority("/x", &[]).as_deref(), Ok(""));
        assert_eq!(authority("/x", &[b""]).as_deref(), Ok(""));
    }

    #[test]
    fn duplicate_userinfo_and_disagreeing_hosts_are_refused() {
        assert_eq!(authority("/x", &[b"a.test", b"b.test"]), Err(BadHost::Duplicate));
        assert_eq!(authority("/x", &[b"a.test", b"a.test"]), Err(BadHost::Duplicate));
        assert_eq!(authority("/x", &[b"user@a.test"]), Err(BadHost::Userinfo));
        assert_eq!(authority("/x", &[b"user:pw@a.test:80"]), Err(BadHost::Userinfo));
        assert_eq!(authority("http://user@a.test/x", &[b"a.test"]), Err(BadHost::Userinfo));
        assert_eq!(authority("http://user@a.test/x", &[]), Err(BadHost::Userinfo));
        assert_eq!(
            authority("http://a.test/x", &[b"b.test"]),
            Err(BadHost::Mismatch { target: "a.test".into(), host: "b.test".into() })
        );
        assert_eq!(authority("/x", &[b"a b"]), Err(BadHost::Invalid));
        assert_eq!(authority("/x", &[b"\xff"]), Err(BadHost::Invalid));
    }

    proptest! {
        #![proptest_config(proptest::test_runner::Config { failure_persistence: None, ..Default::default() })]

        /// Whatever a client sends as the target and `Host` headers: an authority or a refusal, never a
        /// panic; an accepted one carries no userinfo and agrees with `Host`.
        #[test]
        fn any_target_and_host_headers_give_an_authority_or_a_refusal(
            target in prop_oneof![
                "(/|\\*|https?://)[a-zA-Z0-9.:@\\[\\]%_-]{0,24}(/[a-z?=&]{0,8})?",
                "(?s).{0,40}",
            ],
            hosts in prop::collection::vec(
                prop_oneof![
                    "[a-zA-Z0-9.:@\\[\\]%_-]{0,24}".prop_map(String::into_bytes),
                    prop::collection::vec(any::<u8>(), 0..24),
                ],
                0..3,
            ),
        ) {
            let Ok(uri) = target.parse::<http::Uri>() else { return Ok(()) };
            let mut headers = http::HeaderMap::new();
            for host in &hosts {
                if let Ok(value) = http::HeaderValue::from_bytes(host) {
                    headers.append(http::header::HOST, value);
                }
            }
            if let Ok(authority) = authority_of(&uri, &headers) {
                prop_assert!(!authority.contains('@'), "{authority}");
                let host = headers.get(http::header::HOST).and_then(|h| h.to_str().ok()).unwrap_or_default();
                prop_assert!(host.is_empty() || host.eq_ignore_ascii_case(&authority), "{authority} vs {host}");
            }
        }
    }

    #[test]
    fn clients_are_ipv4_addresses_and_ipv6_prefixes() {
        let v4: IpAddr = "10.1.2.3".parse().expect("ip");
        assert_eq!(client_key(v4), v4);
        assert_eq!(client_key("::ffff:10.1.2.3".parse().expect("ip")), v4);
        let a = client_key("2001:db8:1:2:aaaa::1".parse().expect("ip"));
        assert_eq!(a, client_key("2001:db8:1:2:bbbb::9".parse().expect("ip")));
        assert_ne!(a, client_key("2001:db8:1:3::1".parse().expect("ip")));
    }

    #[test]
    fn a_client_holds_at_most_its_limit_and_gets_places_back() {
        let clients = Arc::new(PerClient::new(2));
        let (a, b): (IpAddr, IpAddr) = ("127.0.0.1".parse().expect("ip"), "127.0.0.2".parse().expect("ip"));
        let first = clients.admit(a).expect("first");
        let _second = clients.admit(a).expect("second");
        assert!(clients.admit(a).is_none(), "a third from the same address");
        let _other = clients.admit(b).expect("another address");
        drop(first);
        assert!(clients.admit(a).is_some(), "a place came back");
    }
}
