//! HTTP as a user drives it: `lattice host --http` (a separate process), `lattice start`, `lattice route
//! put|list|del`, a request to the ingress, and `lattice call --http` through the lattice.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use lattice_test_harness::{NatsServer, wait_for};

/// Kills the host process if the test ends early, so none outlives the test.
struct HostProcess(Child);

impl Drop for HostProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `lattice <args>` against the test's server and lattice (through the environment).
fn lattice(nats: &NatsServer, args: &[&str]) -> Result<Output> {
    Ok(Command::new(env!("CARGO_BIN_EXE_lattice"))
        .args(args)
        .env("LATTICE_NATS", nats.url())
        .env("LATTICE_NAME", "http-cli")
        .stdin(Stdio::null())
        .output()?)
}

fn ok(output: Output) -> Result<String> {
    if !output.status.success() {
        bail!("lattice failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    Ok(String::from_utf8(output.stdout)?)
}

/// One `GET` with `Connection: close`; the raw response text.
fn get(addr: &str, path: &str) -> Result<String> {
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(20)))?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
    let mut text = String::new();
    stream.read_to_string(&mut text)?;
    Ok(text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_put_then_curl_and_call_http() -> Result<()> {
    let nats = tokio::task::spawn_blocking(NatsServer::start).await??;
    let addr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.to_string();
    let component = lattice_test_actors::HTTP_HELLO;
    let dir = Path::new(component).parent().context("component dir")?.display().to_string();
    let log = tempfile::NamedTempFile::new()?;
    let child = Command::new(env!("CARGO_BIN_EXE_lattice"))
        .args(["host", "--host-id", "web", "--allow-unsigned", "--http", &addr, "--artifact-dir", &dir])
        .env("LATTICE_NATS", nats.url())
        .env("LATTICE_NAME", "http-cli")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log.reopen()?)
        .spawn()?;
    let _host = HostProcess(child);
    wait_for("the host to join", Duration::from_secs(30), || async {
        ok(lattice(&nats, &["hosts", "-o", "json"]).ok()?).ok().filter(|out| out.contains("\"web\""))
    })
    .await?;

    ok(lattice(
        &nats,
        &["start", "http-hello", "--path", component, "--host", "web", "--link", "keyvalue:default=inmemory"],
    )?)?;
    let put = ok(lattice(&nats, &["route", "put", "http-hello", "--path", "/"])?)?;
    assert!(put.contains("route / -> http-hello stored"), "{put}");
    let listed = ok(lattice(&nats, &["route", "list", "-o", "json"])?)?;
    let routes: serde_json::Value = serde_json::from_str(&listed)?;
    assert_eq!(routes, serde_json::json!([{ "host": null, "path": "/", "actor": "http-hello" }]));

    let response = wait_for("the route to serve", Duration::from_secs(15), || async {
        get(&addr, "/?name=curl").ok().filter(|r| r.starts_with("HTTP/1.1 200"))
    })
    .await?;
    assert!(response.to_ascii_lowercase().contains("x-lattice-host: web"), "{response}");
    assert!(response.ends_with("hello, curl\n"), "{response}");

    let called = ok(lattice(&nats, &["call", "--http", "http-hello", "--path", "/?name=cli"])?)?;
    assert!(called.starts_with("HTTP 200\n"), "{called}");
    assert!(called.ends_with("\n\nhello, cli\n"), "{called}");

    let bad = lattice(&nats, &["route", "put", "http-hello", "--path", "no-slash"])?;
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("the path must start with `/`"));
    ok(lattice(&nats, &["route", "del", "--path", "/"])?)?;
    let gone = wait_for("the route to go", Duration::from_secs(15), || async {
        get(&addr, "/").ok().filter(|r| r.starts_with("HTTP/1.1 404"))
    })
    .await?;
    assert!(gone.contains("no route"), "{gone}");
    let missing = lattice(&nats, &["route", "del", "--path", "/"])?;
    assert!(!missing.status.success());
    Ok(())
}
