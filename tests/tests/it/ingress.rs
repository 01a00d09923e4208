//! Ingress connections as a hostile client holds them: silent sockets (HTTP/1, and HTTP/2 after its preface)
//! are closed within the read timeout, one client address cannot fill the host's connection budget, and a
//! request whose `Host` is repeated, holds userinfo or disagrees with its target gets 400 before routing.
//! HTTP/2 is spoken by hand (prior knowledge, h2c): a few frames are all these attacks need.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, Result};
use lattice_test_harness::wait_for;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;

use crate::TestLattice;
use crate::http::{Answer, exchange, ingress_host};

/// The HTTP/2 connection preface a client starts with.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// A TCP connection to `addr` from `source`: any address in 127.0.0.0/8, all of it loopback on Linux.
async fn connect_from(source: Ipv4Addr, addr: SocketAddr) -> Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(IpAddr::V4(source), 0)).with_context(|| format!("binding {source}"))?;
    Ok(socket.connect(addr).await?)
}

/// Reads until the server closes (or resets) the connection, by `deadline`; what it sent until then.
async fn closed_by(stream: &mut TcpStream, deadline: Instant) -> Result<Vec<u8>> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout_at(deadline, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .context("the server did not close the connection in time")?;
    Ok(seen)
}

/// One HTTP/2 frame: length, type, flags, stream id, payload.
fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let length = u32::try_from(payload.len()).expect("a small frame").to_be_bytes();
    let mut frame = vec![length[1], length[2], length[3], kind, flags];
    frame.extend_from_slice(&stream.to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// The preface and an empty SETTINGS frame: what an h2c client sends before any request.
fn h2_start() -> Vec<u8> {
    [H2_PREFACE, &h2_frame(0x4, 0, 0, &[])].concat()
}

/// A HEADERS frame (END_STREAM, END_HEADERS) on stream 1 whose HPACK block is `fields` as literals without
/// indexing or Huffman coding (every name and value under 127 bytes).
fn h2_request(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut block = Vec::new();
    for (name, value) in fields {
        block.push(0);
        for text in [name, value] {
            block.push(u8::try_from(text.len()).expect("a short field"));
            block.extend_from_slice(text.as_bytes());
        }
    }
    h2_frame(0x1, 0x5, 1, &block)
}

/// Whether `haystack` contains `needle` (a response's bytes, HTTP/2 DATA frames being uncompressed).
fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_are_closed_within_the_read_timeout() -> Result<()> {
    let lattice = TestLattice::start("ingress-silent").await?;
    let read_timeout = Duration::from_secs(2);
    let (host, addr) = ingress_host(&lattice, "edge", |c| c.read_timeout = read_timeout).await?;
    let local = Ipv4Addr::LOCALHOST;

    // Nothing at all; the HTTP/2 preface and settings, then nothing; one request over each protocol, then
    // an idle keep-alive connection.
    let opened = Instant::now();
    let silent = connect_from(local, addr).await?;
    let mut h2_silent = connect_from(local, addr).await?;
    h2_silent.write_all(&h2_start()).await?;
    let mut h1_idle = connect_from(local, addr).await?;
    h1_idle.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await?;
    let mut h2_idle = connect_from(local, addr).await?;
    h2_idle
        .write_all(
            &[h2_start(), h2_request(&[(":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "x")])]
                .concat(),
        )
        .await?;

    // Each is closed within the read timeout (plus slack for a busy machine); the served ones were answered
    // first (404: no route).
    let deadline = opened + read_timeout + Duration::from_secs(3);
    for (what, mut stream) in [("silent", silent), ("h2 silent", h2_silent), ("h1 idle", h1_idle), ("h2 idle", h2_idle)]
    {
        let seen = closed_by(&mut stream, deadline).await.context(what)?;
        if what.ends_with("idle") {
            assert!(contains(&seen, "no route"), "{what}: {}", String::from_utf8_lossy(&seen));
        }
    }
    host.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_address_cannot_take_every_connection() -> Result<()> {
    let lattice = TestLattice::start("ingress-per-client").await?;
    // A read timeout far past the test's length: the held connections stay open while it runs.
    let (host, addr) = ingress_host(&lattice, "edge", |c| {
        c.read_timeout = Duration::from_secs(120);
        c.max_connections = 4;
        c.max_connections_per_client = 3;
    })
    .await?;
    let (hostile, other) = (Ipv4Addr::new(127, 0, 0, 1), Ipv4Addr::new(127, 0, 0, 2));
    let get = "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

    // One address opens one more silent connection than its cap (accepted in order, before the next ones):
    // the last is closed at once, so the host's budget (4) is not full...
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(connect_from(hostile, addr).await?);
    }

    // ...and another address is still served.
    let served = exchange(connect_from(other, addr).await?, get.as_bytes()).await?;
    assert_eq!(served.status, 404, "{served:?}");
    assert!(served.body.contains("no route"), "{}", served.body);
    let mut over = held.pop().context("four connections")?;
    let seen = closed_by(&mut over, Instant::now() + Duration::from_secs(10)).await?;
    assert!(seen.is_empty(), "{}", String::from_utf8_lossy(&seen));

    // The same address past its cap is closed at once, unanswered, even with a request ready.
    let mut refused = connect_from(hostile, addr).await?;
    let _ = refused.write_all(get.as_bytes()).await;
    let seen = closed_by(&mut refused, Instant::now() + Duration::from_secs(10)).await?;
    assert!(seen.is_empty(), "{}", String::from_utf8_lossy(&seen));

    // Once it lets one go, it is served again.
    held.pop();
    let again: Answer = wait_for("the hostile address to be served again", Duration::from_secs(10), || async {
        exchange(connect_from(hostile, addr).await.ok()?, get.as_bytes()).await.ok()
    })
    .await?;
    assert_eq!(again.status, 404, "{again:?}");
    host.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ambiguous_hosts_are_answered_400_before_routing() -> Result<()> {
    let lattice = TestLattice::start("ingress-host").await?;
    let (host, addr) = ingress_host(&lattice, "edge", |_| {}).await?;
    let local = Ipv4Addr::LOCALHOST;
    let cases = [
        ("GET / HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n", "more than one host header"),
        ("GET / HTTP/1.1\r\nHost: user@a.test\r\n", "userinfo"),
        ("GET http://user@a.test/ HTTP/1.1\r\nHost: a.test\r\n", "userinfo"),
        ("GET http://a.test/ HTTP/1.1\r\nHost: b.test\r\n", "disagrees with the host header `b.test`"),
    ];
    for (head, why) in cases {
        let raw = format!("{head}Connection: close\r\n\r\n");
        let answer = exchange(connect_from(local, addr).await?, raw.as_bytes()).await?;
        assert_eq!(answer.status, 400, "{head:?}: {answer:?}");
        assert!(answer.body.contains(why), "{head:?}: {}", answer.body);
    }
    // The same target and host reach routing (no route here: 404).
    let agreeing = "GET http://a.test/ HTTP/1.1\r\nHost: A.test\r\nConnection: close\r\n\r\n";
    let answer = exchange(connect_from(local, addr).await?, agreeing.as_bytes()).await?;
    assert_eq!(answer.status, 404, "{answer:?}");

    // HTTP/2: `:authority` and `host` under the same rule.
    let mut h2 = connect_from(local, addr).await?;
    let fields =
        [(":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "a.test"), ("host", "b.test")];
    h2.write_all(&[h2_start(), h2_request(&fields)].concat()).await?;
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let why = "disagrees with the host header `b.test`";
    tokio::time::timeout(Duration::from_secs(10), async {
        while !contains(&seen, why) {
            match h2.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .context("no answer over HTTP/2")?;
    assert!(contains(&seen, why), "{}", String::from_utf8_lossy(&seen));
    host.stop().await;
    Ok(())
}
