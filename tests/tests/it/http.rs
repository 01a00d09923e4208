//! HTTP ingress: routes to actors here and on other hosts, per-request limits, outgoing HTTP under a link, and
//! components built by other toolchains (componentize-js). Requests are plain HTTP/1.1 over TCP.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use lattice_core::http::Route;
use lattice_core::wire::{ArtifactRef, LimitsSpec, StartActor};
use lattice_host::lattice::{IngressConfig, RunningHost};
use lattice_test_harness::wait_for;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::{TestLattice, name, runtime};

/// A response as the test reads it.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    headers: Vec<(String, String)>,
    pub(crate) body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Sends one request (`Connection: close`) and reads the whole response.
async fn request(addr: SocketAddr, method: &str, host: &str, path: &str, body: &[u8]) -> Result<Answer> {
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let stream = TcpStream::connect(addr).await?;
    exchange(stream, &[head.as_bytes(), body].concat()).await
}

/// Writes `raw` (a whole request that ends the connection after it) to `stream` and reads the response.
pub(crate) async fn exchange(mut stream: TcpStream, raw: &[u8]) -> Result<Answer> {
    stream.write_all(raw).await?;
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut raw)).await.context("response")??;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").context("no end of headers")?;
    let mut lines = head.lines();
    let status = lines.next().and_then(|l| l.split(' ').nth(1)).context("status line")?.parse()?;
    let headers =
        lines.filter_map(|l| l.split_once(':')).map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned())).collect();
    Ok(Answer { status, headers, body: body.to_owned() })
}

async fn get(addr: SocketAddr, host: &str, path: &str) -> Result<Answer> {
    request(addr, "GET", host, path, b"").await
}

/// A free loopback address for an ingress.
pub(crate) fn free_addr() -> Result<SocketAddr> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// Starts host `id` serving HTTP with `tune` applied to its ingress settings.
pub(crate) async fn ingress_host(
    lattice: &TestLattice,
    id: &str,
    tune: impl FnOnce(&mut IngressConfig),
) -> Result<(RunningHost, SocketAddr)> {
    let addr = free_addr()?;
    let mut ingress = IngressConfig::new(addr);
    tune(&mut ingress);
    let mut config = lattice.host_config(id, &[]);
    config.http = Some(ingress);
    let host = lattice_host::lattice::start(config, runtime()).await?;
    Ok((host, addr))
}

fn start(actor: &str, path: &str, links: &[&str], limits: LimitsSpec) -> StartActor {
    StartActor {
        name: name(actor),
        artifact: ArtifactRef::Path(path.to_owned()),
        limits,
        links: links.iter().map(|l| (*l).to_owned()).collect(),
        owner: None,
        digest: None,
    }
}

fn route(text: &str) -> Route {
    text.parse().unwrap_or_else(|e| panic!("{e}"))
}

/// Waits until `host` `path` answers `status`.
async fn until_status(addr: SocketAddr, host: &str, path: &str, status: u16) -> Result<Answer> {
    wait_for(&format!("{host}{path} to answer {status}"), Duration::from_secs(15), || async {
        get(addr, host, path).await.ok().filter(|a| a.status == status)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_reach_actors_here_and_on_other_hosts() -> Result<()> {
    let lattice = TestLattice::start("http-routes").await?;
    let (edge, addr) = ingress_host(&lattice, "edge", |_| {}).await?;
    let worker = lattice.host("worker", &[]).await?;
    let client = lattice.client().await?;
    let hello = ["keyvalue:default=inmemory"];
    client
        .start_actor(edge.id(), &start("hello", lattice_test_actors::HTTP_HELLO, &hello, LimitsSpec::default()))
        .await?;
    client.start_actor(worker.id(), &start("echo", lattice_test_actors::HTTP_ECHO, &[], LimitsSpec::default())).await?;
    client.put_route(&name("hello"), &route("hello.test/")).await?;
    client.put_route(&name("echo"), &route("echo.test/")).await?;
    client.put_route(&name("ghost"), &route("ghost.test/")).await?;

    // Here: served in process.
    let answer = until_status(addr, "hello.test", "/?name=edge", 200).await?;
    assert_eq!(answer.body, "hello, edge\n");
    assert_eq!(answer.header("x-lattice-host"), Some("edge"));
    let count = get(addr, "hello.test", "/count").await?;
    assert_eq!((count.status, count.body.as_str()), (200, "1\n"), "{count:?}");

    // Elsewhere: forwarded over the lattice, body and headers intact, served by the worker.
    let answer = until_status(addr, "echo.test", "/x?y=1", 200).await?;
    assert_eq!(answer.header("x-lattice-host"), Some("worker"));
    let posted = request(addr, "POST", "echo.test", "/submit", b"payload bytes").await?;
    assert_eq!(posted.status, 200);
    assert_eq!(posted.body, "POST /submit\npayload bytes");

    // No route: 404 saying so. A route to an actor that runs nowhere: 503 with Retry-After.
    let none = get(addr, "nowhere.test", "/").await?;
    assert_eq!(none.status, 404);
    assert!(none.body.contains("no route"), "{}", none.body);
    let ghost = get(addr, "ghost.test", "/").await?;
    assert_eq!(ghost.status, 503);
    assert!(ghost.body.contains("not running"), "{}", ghost.body);
    assert_eq!(ghost.header("retry-after"), Some("1"));

    // Stopping the actor: 503; deleting the route: 404.
    client.stop_actor(worker.id(), &name("echo")).await?;
    until_status(addr, "echo.test", "/", 503).await?;
    assert!(client.delete_route(&route("echo.test/")).await?);
    until_status(addr, "echo.test", "/", 404).await?;
    let listed = client.list_routes().await?;
    assert_eq!(listed.len(), 2, "{listed:?}");

    worker.stop().await;
    edge.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_apply_per_request() -> Result<()> {
    let lattice = TestLattice::start("http-limits").await?;
    let read_timeout = Duration::from_secs(2);
    let (host, addr) = ingress_host(&lattice, "edge", |c| {
        c.max_body = 1024;
        c.read_timeout = read_timeout;
    })
    .await?;
    let client = lattice.client().await?;
    let spin_limits = LimitsSpec { cpu_time_ms: Some(200), ..LimitsSpec::default() };
    client.start_actor(host.id(), &start("spin", lattice_test_actors::HTTP_SPIN, &[], spin_limits)).await?;
    client.start_actor(host.id(), &start("echo", lattice_test_actors::HTTP_ECHO, &[], LimitsSpec::default())).await?;
    client.put_route(&name("spin"), &route("spin.test/")).await?;
    client.put_route(&name("echo"), &route("echo.test/")).await?;
    until_status(addr, "echo.test", "/", 200).await?;

    // A body over the cap: 413, and the actor never runs.
    let big = request(addr, "POST", "echo.test", "/", &[b'x'; 2048]).await?;
    assert_eq!(big.status, 413, "{big:?}");
    let fits = request(addr, "POST", "echo.test", "/", &[b'x'; 1000]).await?;
    assert_eq!(fits.status, 200);

    // A client sending its headers a byte a second is cut off within the read timeout, and others are served
    // meanwhile.
    let mut slow = TcpStream::connect(addr).await?;
    let started = Instant::now();
    let dribble = tokio::spawn(async move {
        for byte in b"GET / HTTP/1.1\r\nHost: echo.test\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n" {
            if slow.write_all(&[*byte]).await.is_err() {
                return Ok::<_, anyhow::Error>(started.elapsed());
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            let mut probe = [0u8; 1];
            // A closed connection reads as end of file (or an error) instead of waiting.
            if let Ok(read) = tokio::time::timeout(Duration::from_millis(1), slow.read(&mut probe)).await {
                let _ = read;
                return Ok(started.elapsed());
            }
        }
        bail!("the slow client was never cut off")
    });
    let other = get(addr, "echo.test", "/meanwhile").await?;
    assert_eq!(other.status, 200);
    let cut_after = dribble.await??;
    assert!(cut_after < read_timeout + Duration::from_secs(3), "cut off after {cut_after:?}");

    // A spinning handler is stopped at its CPU deadline with 500; the next request is fine.
    let spun = get(addr, "spin.test", "/spin").await?;
    assert_eq!(spun.status, 500, "{spun:?}");
    assert!(spun.body.contains("cpu deadline"), "{}", spun.body);
    let fine = get(addr, "spin.test", "/").await?;
    assert_eq!((fine.status, fine.body.as_str()), (200, "ok"));
    host.stop().await;
    Ok(())
}

/// A one-response HTTP server on loopback: answers every request `200 upstream says hi`.
async fn upstream() -> Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let _ = stream.read(&mut buf).await;
                let body = "upstream says hi";
                let response =
                    format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    });
    Ok(addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outgoing_requests_go_only_where_a_link_allows() -> Result<()> {
    let lattice = TestLattice::start("http-outgoing").await?;
    let (host, addr) = ingress_host(&lattice, "edge", |_| {}).await?;
    let client = lattice.client().await?;
    let allowed = upstream().await?;
    let unlisted = upstream().await?;
    let link = format!("http:outgoing=allow,hosts={allowed}|*.example.com");
    client
        .start_actor(
            host.id(),
            &start("fetch", lattice_test_actors::HTTP_FETCH, &[link.as_str()], LimitsSpec::default()),
        )
        .await?;
    client.put_route(&name("fetch"), &route("/")).await?;

    let ok = until_status(addr, "x", &format!("/?url=http://{allowed}/x"), 200).await?;
    assert_eq!(ok.body, "status 200\nupstream says hi");
    // Another port of the same loopback address is not listed: denied, and the actor sees the error value.
    let denied = get(addr, "x", &format!("/?url=http://{unlisted}/x")).await?;
    assert_eq!(denied.status, 502, "{denied:?}");
    assert!(denied.body.contains("HttpRequestDenied"), "{}", denied.body);

    // A wildcard never reaches a private or loopback address, even when the name matches.
    client.put_link(&name("fetch"), &"http:outgoing=allow,hosts=*".parse()?).await?;
    let loopback = wait_for("the wildcard link to apply", Duration::from_secs(10), || async {
        get(addr, "x", &format!("/?url=http://{allowed}/x")).await.ok().filter(|a| a.status == 502)
    })
    .await?;
    assert!(loopback.body.contains("HttpRequestDenied"), "{}", loopback.body);

    // No link at all: denied.
    client.delete_link(&name("fetch"), lattice_core::link::Interface::Http, "outgoing").await?;
    let none = wait_for("the link deletion to apply", Duration::from_secs(10), || async {
        get(addr, "x", "/?url=http://example.com/").await.ok().filter(|a| a.body.contains("HttpRequestDenied"))
    })
    .await?;
    assert_eq!(none.status, 502);
    host.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_componentize_js_component_with_default_fetch_support_serves_http() -> Result<()> {
    let out = tempfile::tempdir()?;
    let wasm = out.path().join("js-http.wasm");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("actors/js-http/build.sh");
    let (script_arg, wasm_arg) = (script.clone(), wasm.clone());
    let built = tokio::task::spawn_blocking(move || {
        std::process::Command::new("bash").arg(&script_arg).arg(&wasm_arg).status()
    })
    .await??;
    if !built.success() {
        bail!(
            "building the componentize-js component failed ({built}): it needs node >= 20 and npm with the npm \
             registry reachable (see tests/actors/js-http/README.md)"
        );
    }
    let lattice = TestLattice::start("http-js").await?;
    let mut config = lattice.host_config("edge", &[]);
    let addr = free_addr()?;
    config.http = Some(IngressConfig::new(addr));
    config.artifact_dir = Some(out.path().to_owned());
    let host = lattice_host::lattice::start(config, runtime()).await?;
    let client = lattice.client().await?;
    let path = wasm.to_string_lossy().into_owned();
    client.start_actor(host.id(), &start("js", &path, &[], LimitsSpec::default())).await?;
    client.put_route(&name("js"), &route("/")).await?;
    let answer = until_status(addr, "x", "/from/js?q=1", 200).await?;
    assert_eq!(answer.body, "hello from js /from/js?q=1");
    host.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_limit_are_closed_and_others_keep_being_served() -> Result<()> {
    let lattice = TestLattice::start("http-conns").await?;
    let (host, addr) = ingress_host(&lattice, "edge", |c| c.max_connections = 1).await?;
    let client = lattice.client().await?;
    client.start_actor(host.id(), &start("echo", lattice_test_actors::HTTP_ECHO, &[], LimitsSpec::default())).await?;
    client.put_route(&name("echo"), &route("/")).await?;
    until_status(addr, "x", "/", 200).await?;

    // A keep-alive connection that was served holds the only place.
    let mut held = TcpStream::connect(addr).await?;
    held.write_all(b"GET /held HTTP/1.1\r\nHost: x\r\n\r\n").await?;
    let mut buf = vec![0u8; 4096];
    let read = tokio::time::timeout(Duration::from_secs(10), held.read(&mut buf)).await??;
    assert!(String::from_utf8_lossy(&buf[..read]).starts_with("HTTP/1.1 200"));

    // Another is closed at once, unanswered.
    let mut refused = TcpStream::connect(addr).await?;
    let _ = refused.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), refused.read_to_end(&mut rest)).await?;
    assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));

    // Once the held connection goes, requests are served again.
    drop(held);
    until_status(addr, "x", "/again", 200).await?;
    host.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_forwarded_request_is_refused_and_the_actor_keeps_serving() -> Result<()> {
    use lattice_core::wire::headers;
    let lattice = TestLattice::start("http-malformed").await?;
    let (host, addr) = ingress_host(&lattice, "edge", |_| {}).await?;
    let client = lattice.client().await?;
    client.start_actor(host.id(), &start("echo", lattice_test_actors::HTTP_ECHO, &[], LimitsSpec::default())).await?;
    client.put_route(&name("echo"), &route("/")).await?;
    until_status(addr, "x", "/", 200).await?;

    // Anyone who can publish on the actor's subject may send `Lattice-Http` with any payload.
    let mut request_headers = async_nats::HeaderMap::new();
    request_headers.insert(headers::HTTP, "1");
    let subject = client.subjects().invoke(&name("echo"));
    let reply = client.nats().request_with_headers(subject, request_headers, "not msgpack".into()).await?;
    let header = |n: &str| reply.headers.as_ref().and_then(|h| h.get(n)).map(|v| v.as_str().to_owned());
    assert_eq!(header(headers::STATUS).as_deref(), Some("error"));
    assert_eq!(header(headers::ERROR_CODE).as_deref(), Some("bad-request"));
    assert!(String::from_utf8_lossy(&reply.payload).contains("malformed http request"));
    assert_eq!(get(addr, "x", "/after").await?.status, 200);
    host.stop().await;
    Ok(())
}
