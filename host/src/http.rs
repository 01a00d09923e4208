//! `wasi:http` for actors: delivering a request to an actor's `wasi:http/incoming-handler` (the response
//! collected up to the actor's reply cap), and the actor's outgoing requests under its `http:outgoing` link.
//!
//! Outgoing requests ([`OutgoingHttp`], the store's `WasiHttpHooks`): a request leaves only when the actor's
//! link allows its scheme, host and port ([`OutgoingPolicy`]); anything else fails with the interface's
//! `HTTP-request-denied`. The host name is resolved here and every address checked: a non-public address
//! (loopback, private, link-local…) is denied unless the link names the host exactly. Both schemes connect to
//! the addresses checked, never to a second lookup a rebinding DNS server could answer differently: plain
//! `http` by rewriting the request to the address, `https` through [`send_https`], which opens TCP to a checked
//! address and does TLS with the request's host name as the server name (SNI, and the name the certificate must
//! match), so a name with a valid public certificate cannot lead to a private address. Each invocation may send [`MAX_OUTGOING_REQUESTS`], each with
//! bounded connect and read timeouts, and reads at most [`MAX_OUTGOING_RESPONSE_BYTES`] of each response.

use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::uri::Scheme;
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use lattice_core::http::{HttpRequest, HttpResponse, OutgoingPolicy, Reach, is_public};
use wasmtime::Store;
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Scheme as WasiScheme};
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks, WasiHttpView};

use crate::InvokeError;
use crate::links::LinkSet;
use crate::runtime::{ActorInner, Delivery, Exports};
use crate::state::InvocationState;

/// Outgoing requests one invocation may send.
pub const MAX_OUTGOING_REQUESTS: u32 = 16;
/// Bytes of one outgoing response's body an actor may read.
pub const MAX_OUTGOING_RESPONSE_BYTES: u64 = 16 << 20;
/// Longest connect (and TLS handshake) an outgoing request may wait for.
pub const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for the first byte, and between two bytes, of an outgoing response.
pub const MAX_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest DNS lookup of an outgoing request's host.
const DNS_TIMEOUT: Duration = Duration::from_secs(5);

/// The store's `wasi:http` hooks: where this invocation's outgoing requests may go, and how many it sent.
pub(crate) struct OutgoingHttp {
    policy: Option<Arc<OutgoingPolicy>>,
    sent: u32,
}

type SendFuture = Box<
    dyn Future<
            Output = Result<
                (http::Response<WasiBody>, Box<dyn Future<Output = Result<(), HttpError>> + Send>),
                HttpError,
            >,
        > + Send,
>;

impl OutgoingHttp {
    /// An invocation's hooks: the policy of `links`' `http:outgoing` link (none: every request denied).
    pub(crate) fn new(links: &LinkSet) -> Self {
        Self { policy: links.http().cloned(), sent: 0 }
    }

    /// Whether a request to `uri` may go out now: `Err` is what the guest sees.
    fn admit(&mut self, uri: &http::Uri) -> Result<Reach, HttpError> {
        let reach = self.policy.as_ref().and_then(|policy| policy.check(&uri.to_string()));
        let Some(reach) = reach else {
            tracing::info!(%uri, "outgoing http request denied: no http:outgoing link allows this host");
            return Err(HttpError::HttpRequestDenied);
        };
        self.sent += 1;
        if self.sent > MAX_OUTGOING_REQUESTS {
            tracing::info!(%uri, limit = MAX_OUTGOING_REQUESTS, "outgoing http request denied: per-invocation limit");
            return Err(HttpError::ConnectionLimitReached);
        }
        Ok(reach)
    }
}

impl WasiHttpHooks for OutgoingHttp {
    fn send_request(
        &mut self,
        mut request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> SendFuture {
        let admitted = self.admit(request.uri());
        Box::new(async move {
            let reach = admitted?;
            let checked = pin_address(&mut request, reach).await?;
            let options = RequestOptions {
                connect_timeout: Some(bounded(options.and_then(|o| o.connect_timeout), MAX_CONNECT_TIMEOUT)),
                first_byte_timeout: Some(bounded(options.and_then(|o| o.first_byte_timeout), MAX_READ_TIMEOUT)),
                between_bytes_timeout: Some(bounded(options.and_then(|o| o.between_bytes_timeout), MAX_READ_TIMEOUT)),
            };
            let (response, io): (_, IoFuture) = match checked {
                Checked::Http => {
                    let (response, io) = wasmtime_wasi_http::default_send_request(request, Some(options)).await?;
                    (response.map(|body| body.boxed_unsync()), Box::new(io))
                }
                Checked::Https(addresses) => send_https(request, &addresses, &options).await?,
            };
            let response = response.map(|body| Capped { body, left: MAX_OUTGOING_RESPONSE_BYTES }.boxed_unsync());
            Ok((response, io))
        })
    }
}

fn bounded(asked: Option<Duration>, max: Duration) -> Duration {
    asked.map_or(max, |asked| asked.min(max))
}

/// The future that drives an outgoing request's connection after its response head came.
type IoFuture = Box<dyn Future<Output = Result<(), HttpError>> + Send>;

/// Where a request may connect, once its addresses are checked.
#[derive(Debug, PartialEq, Eq)]
enum Checked {
    /// A plain `http` request, rewritten to the checked address.
    Http,
    /// An `https` request: connect to one of these, in order, with the request's host as the TLS server name.
    Https(Vec<SocketAddr>),
}

/// Resolves the request's host and checks every address against `reach`; a plain `http` request is rewritten
/// to the first address checked, an `https` one gets the checked addresses to connect to.
async fn pin_address(request: &mut http::Request<WasiBody>, reach: Reach) -> Result<Checked, HttpError> {
    let uri = request.uri().clone();
    let host = uri.host().ok_or(HttpError::HttpRequestUriInvalid)?;
    let https = uri.scheme() == Some(&Scheme::HTTPS);
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addresses: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::time::timeout(DNS_TIMEOUT, tokio::net::lookup_host((bare, port)))
            .await
            .map_err(|_| HttpError::DnsTimeout)?
            .map_err(|e| HttpError::DnsError { rcode: Some(e.to_string()), info_code: None })?
            .collect(),
    };
    let first = *addresses.first().ok_or(HttpError::DestinationNotFound)?;
    if reach == Reach::Public && addresses.iter().any(|a| !is_public(a.ip())) {
        tracing::info!(%uri, "outgoing http request denied: the host resolves to a non-public address");
        return Err(HttpError::HttpRequestDenied);
    }
    if https {
        return Ok(Checked::Https(addresses));
    }
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    *request.uri_mut() = http::Uri::builder()
        .scheme(Scheme::HTTP)
        .authority(first.to_string())
        .path_and_query(path)
        .build()
        .map_err(|_| HttpError::HttpRequestUriInvalid)?;
    Ok(Checked::Http)
}

/// The TLS client of outgoing `https`: the webpki roots and the ring provider, as wasmtime-wasi-http's default
/// sender has, built once. rustls 0.23.48 deprecates the ring provider (it lacks post-quantum key exchange);
/// it stays until wasmtime-wasi-http's sender moves off ring too, since the alternative (aws-lc-rs) would add a
/// second TLS stack and a C build.
#[allow(deprecated)]
fn tls_connector() -> Result<tokio_rustls::TlsConnector, HttpError> {
    static CONFIG: std::sync::OnceLock<Result<Arc<rustls::ClientConfig>, String>> = std::sync::OnceLock::new();
    let config = CONFIG.get_or_init(|| {
        let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.into() };
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map(|builder| Arc::new(builder.with_root_certificates(roots).with_no_client_auth()))
            .map_err(|e| e.to_string())
    });
    match config {
        Ok(config) => Ok(tokio_rustls::TlsConnector::from(config.clone())),
        Err(error) => {
            tracing::warn!(%error, "cannot build the TLS client configuration");
            Err(HttpError::TlsProtocolError)
        }
    }
}

/// The TLS server name of a request's host: a DNS name, or an IP address (bracketed for IPv6 in the URI).
fn server_name(host: &str) -> Result<rustls::pki_types::ServerName<'static>, HttpError> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<IpAddr>() {
        Ok(ip) => Ok(rustls::pki_types::ServerName::from(ip)),
        Err(_) => Ok(rustls::pki_types::ServerName::try_from(bare.to_owned())?),
    }
}

/// Sends an `https` request to one of `addresses` (checked by [`pin_address`], tried in order): TCP to the
/// address, TLS with the request's host as the server name, then HTTP/1.1, under `options`' timeouts. This is
/// what `default_send_request` does, except that it never resolves the name again.
async fn send_https(
    mut request: http::Request<WasiBody>,
    addresses: &[SocketAddr],
    options: &RequestOptions,
) -> Result<(http::Response<WasiBody>, IoFuture), HttpError> {
    let connect_timeout = options.connect_timeout.unwrap_or(MAX_CONNECT_TIMEOUT);
    let first_byte_timeout = options.first_byte_timeout.unwrap_or(MAX_READ_TIMEOUT);
    let between_bytes = options.between_bytes_timeout.unwrap_or(MAX_READ_TIMEOUT).max(Duration::from_millis(1));
    let name = server_name(request.uri().host().ok_or(HttpError::HttpRequestUriInvalid)?)?;
    let connector = tls_connector()?;
    let connect = async {
        let mut last = HttpError::DestinationNotFound;
        for address in addresses {
            match tokio::net::TcpStream::connect(address).await {
                Ok(stream) => return connector.connect(name, stream).await.map_err(HttpError::Tls),
                Err(error) => last = HttpError::Connect(error),
            }
        }
        Err(last)
    };
    let stream = tokio::time::timeout(connect_timeout, connect).await.map_err(|_| HttpError::ConnectionTimeout)??;
    let (mut sender, connection) =
        tokio::time::timeout(connect_timeout, hyper::client::conn::http1::handshake(TokioIo::new(stream)))
            .await
            .map_err(|_| HttpError::ConnectionTimeout)??;
    // Origin form on the wire: the scheme and authority are only for a proxy (the Host header names the host).
    let path = request.uri().path_and_query().map_or("/", |p| p.as_str()).to_owned();
    *request.uri_mut() = http::Uri::try_from(path).map_err(|_| HttpError::HttpRequestUriInvalid)?;

    // The connection is driven while the response head is awaited, then handed back to be driven by the caller.
    let mut connection = Some(Box::pin(connection));
    let send = sender.send_request(request);
    tokio::pin!(send);
    let head = async {
        loop {
            let Some(driving) = connection.as_mut() else {
                return send.as_mut().await.map_err(HttpError::from);
            };
            tokio::select! {
                response = send.as_mut() => return response.map_err(HttpError::from),
                ended = driving => {
                    connection = None;
                    ended?;
                }
            }
        }
    };
    let response =
        tokio::time::timeout(first_byte_timeout, head).await.map_err(|_| HttpError::ConnectionReadTimeout)??;
    let io: IoFuture = Box::new(async move {
        match connection {
            Some(connection) => connection.await.map_err(HttpError::from),
            None => Ok(()),
        }
    });
    let response = response.map(|incoming| {
        Paced { incoming, gap: between_bytes, deadline: Box::pin(tokio::time::sleep(between_bytes)) }.boxed_unsync()
    });
    Ok((response, io))
}

/// A response body that fails when the next bytes take longer than `gap` to come.
struct Paced {
    incoming: hyper::body::Incoming,
    gap: Duration,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl http_body::Body for Paced {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, HttpError>>> {
        match Pin::new(&mut self.incoming).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let next = tokio::time::Instant::now() + self.gap;
                self.deadline.as_mut().reset(next);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(error))) => Poll::Ready(Some(Err(HttpError::from(error)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match self.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(HttpError::ConnectionReadTimeout))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }
}

/// A response body that fails once more than `left` bytes came.
struct Capped {
    body: WasiBody,
    left: u64,
}

impl http_body::Body for Capped {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, HttpError>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            let len = data.len() as u64;
            if len > self.left {
                return Poll::Ready(Some(Err(HttpError::HttpResponseBodySize(Some(MAX_OUTGOING_RESPONSE_BYTES)))));
            }
            self.left -= len;
        }
        polled
    }
}

/// Why a request could not be handed to the actor, or its response not taken.
#[derive(Debug, thiserror::Error)]
enum HttpFault {
    /// The request is not a valid HTTP request (a forwarded one from a broken peer).
    #[error("invalid http request: {0}")]
    BadRequest(String),
    /// The actor answered with an error code instead of a response.
    #[error("the actor answered with an http error: {0:?}")]
    Guest(ErrorCode),
    /// The actor returned without setting a response.
    #[error("the actor returned without a response")]
    NoResponse,
    /// The response body failed while it was written.
    #[error("the actor's response body failed: {0}")]
    Body(String),
    /// The response body is larger than the actor's reply cap.
    #[error("response body over {limit} bytes")]
    TooLarge {
        /// The cap.
        limit: usize,
    },
}

/// `request` as the hyper request `wasmtime-wasi-http` makes an `incoming-request` of.
fn to_hyper(request: HttpRequest) -> Result<(WasiScheme, hyper::Request<http_body_util::Full<Bytes>>), HttpFault> {
    let bad = |e: &dyn std::fmt::Display| HttpFault::BadRequest(e.to_string());
    let (scheme, wasi_scheme) = if request.scheme.eq_ignore_ascii_case("https") {
        (Scheme::HTTPS, WasiScheme::Https)
    } else {
        (Scheme::HTTP, WasiScheme::Http)
    };
    let authority = if request.authority.is_empty() { "localhost" } else { request.authority.as_str() };
    let uri = http::Uri::builder()
        .scheme(scheme)
        .authority(authority)
        .path_and_query(if request.path.is_empty() { "/" } else { request.path.as_str() })
        .build()
        .map_err(|e| bad(&e))?;
    let mut builder = hyper::Request::builder().method(request.method.as_str()).uri(uri);
    for (name, value) in &request.headers {
        builder = builder.header(name.as_str(), value.as_slice());
    }
    let body = http_body_util::Full::new(Bytes::from(request.body.into_vec()));
    Ok((wasi_scheme, builder.body(body).map_err(|e| bad(&e))?))
}

/// Reads the response the actor set, its body up to `limit` bytes.
async fn collect_response(
    response: tokio::sync::oneshot::Receiver<
        Result<hyper::Response<wasmtime_wasi_http::p2::body::HyperOutgoingBody>, ErrorCode>,
    >,
    limit: usize,
) -> Result<HttpResponse, HttpFault> {
    let response = response.await.map_err(|_| HttpFault::NoResponse)?.map_err(HttpFault::Guest)?;
    let (parts, mut body) = response.into_parts();
    let mut bytes = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| HttpFault::Body(e.to_string()))?;
        if let Ok(data) = frame.into_data() {
            if bytes.len() + data.len() > limit {
                return Err(HttpFault::TooLarge { limit });
            }
            bytes.extend_from_slice(&data);
        }
    }
    let headers = parts
        .headers
        .iter()
        .map(|(name, value)| (name.as_str().to_owned(), serde_bytes::ByteBuf::from(value.as_bytes().to_vec())))
        .collect();
    Ok(HttpResponse { status: parts.status.as_u16(), headers, body: serde_bytes::ByteBuf::from(bytes) })
}

/// An HTTP request delivered to `wasi:http/incoming-handler`: the request and response-outparam resources are
/// made in the store, and the response body is read while the handler runs (a guest writing a large body waits
/// for it to be read), up to the actor's `max_reply_bytes`.
impl Delivery for HttpRequest {
    type Answer = HttpResponse;

    fn take_message_id(&mut self) -> Option<String> {
        None
    }

    async fn deliver(
        self,
        actor: &ActorInner,
        store: &mut Store<InvocationState>,
        exports: &Exports,
    ) -> Result<Self::Answer, InvokeError> {
        let handler = exports.http.as_ref().ok_or(InvokeError::NoHandler("wasi:http/incoming-handler"))?;
        let (scheme, request) = to_hyper(self).map_err(|e| InvokeError::Http(e.to_string()))?;
        let (sender, response) = tokio::sync::oneshot::channel();
        let mut view = store.data_mut().http();
        let resources = view
            .new_incoming_request(scheme, request)
            .and_then(|request| Ok((request, view.new_response_outparam(sender)?)));
        let (request, outparam) = resources.map_err(|e| InvokeError::Http(format!("{e:#}")))?;
        let limit = actor.limits().max_reply_bytes;
        // The body is read while the handler runs: a guest writing a large body waits for it to be read.
        let trapped = {
            let call = handler.call_handle(&mut *store, request, outparam);
            let collect = collect_response(response, limit);
            tokio::pin!(call, collect);
            tokio::select! {
                collected = &mut collect => match call.await {
                    Ok(()) => return collected.map_err(|e| fault(e, limit)),
                    Err(trap) => trap,
                },
                called = &mut call => match called {
                    Ok(()) => return collect.await.map_err(|e| fault(e, limit)),
                    Err(trap) => trap,
                },
            }
        };
        Err(actor.classify(store.data(), trapped, false))
    }
}

fn fault(fault: HttpFault, limit: usize) -> InvokeError {
    match fault {
        HttpFault::TooLarge { .. } => InvokeError::ResponseTooLarge { limit },
        other => InvokeError::Http(other.to_string()),
    }
}
