//! Outgoing `https` goes to the address the host checked, with the request's host name as the TLS server name:
//! the name is not resolved a second time between the check and the connection.

use lattice_core::http::HttpRequest;
use lattice_host::ActorConfig;
use lattice_test_actors::HTTP_FETCH;
use tokio::io::AsyncReadExt;

use crate::{component, runtime};

fn get(path: &str) -> HttpRequest {
    HttpRequest {
        method: "GET".into(),
        scheme: "http".into(),
        authority: "fetch.test".into(),
        path: path.into(),
        headers: Vec::new(),
        body: Vec::new().into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_connects_to_the_checked_address_with_the_name_as_server_name() {
    // A TCP server on loopback that records the first bytes sent to it (a TLS ClientHello) and hangs up: no
    // certificate here would be trusted, and none is needed to see where the client went and what it asked for.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("address").port();
    let (hello_tx, hello_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.expect("accept");
        let mut hello = vec![0u8; 4096];
        let n = stream.read(&mut hello).await.expect("read");
        hello.truncate(n);
        let _ = hello_tx.send(hello);
    });

    // `localhost` is named exactly, so the link allows its loopback address.
    let link = format!("http:outgoing=allow,hosts=localhost:{port}");
    let config = ActorConfig { links: vec![link.parse().expect("link")], ..ActorConfig::default() };
    let actor = runtime().load("fetch", component(HTTP_FETCH), config).await.expect("load http-fetch");
    let url = format!("https%3A%2F%2Flocalhost%3A{port}%2Fsecret");
    let response = actor.invoke_http(get(&format!("/?url={url}"))).await.result.expect("the handler answers");
    // The handshake fails (the server hung up), and the actor sees an error value.
    assert_eq!(response.status, 502, "{response:?}");

    let hello = hello_rx.await.expect("the client connected to the checked loopback address");
    assert_eq!(hello.first(), Some(&0x16), "a TLS handshake record");
    assert!(hello.windows(b"localhost".len()).any(|w| w == b"localhost"), "SNI names the host: {hello:?}");
}

#[tokio::test]
async fn https_to_a_name_with_a_private_address_is_denied_behind_a_wildcard() {
    // A wildcard never reaches a non-public address, whatever certificate it might present.
    let config =
        ActorConfig { links: vec!["http:outgoing=allow,hosts=*".parse().expect("link")], ..ActorConfig::default() };
    let actor = runtime().load("fetch", component(HTTP_FETCH), config).await.expect("load http-fetch");
    let response =
        actor.invoke_http(get("/?url=https%3A%2F%2Flocalhost%2F")).await.result.expect("the handler answers");
    assert_eq!(response.status, 502, "{response:?}");
    assert!(String::from_utf8_lossy(&response.body).contains("HttpRequestDenied"), "{response:?}");
}
