//! HTTP through the lattice ingress vs a native hyper server answering the same bytes, each side its own
//! process, in one run.
//!
//! **Processes.** A nats-server (`lattice_test_harness`); `lattice host --http 127.0.0.1:<port>` (this package's
//! binary, release profile) with the actor `http-hello` (`examples/http-hello`, signed by the development issuer
//! for `wasi:keyvalue` and `wasi:http`, `--max-concurrency 128`, a fresh instance per request: the default)
//! started and routed (`lattice route put http-hello --path /`) by the `lattice` CLI; the native floor, this
//! executable re-executed as `--role http-native` (a hyper HTTP/1.1 server on a multi-thread tokio runtime
//! answering every request 200, `content-type: text/plain; charset=utf-8`, `hello, world\n`: what http-hello
//! answers `GET /`); and for every measurement a fresh load client, this executable as `--role http-load ADDR
//! CONNS SECS WARMUP_MS`: CONNS keep-alive HTTP/1.1 connections (hyper's client), each sending `GET /`
//! back-to-back, WARMUP_MS of warm-up and then SECS measured. A response that is not 200 `hello, world\n`, a
//! connection error or no response within 5 s is an error (the connection is opened again); errors are counted
//! over the whole run, warm-up included, and printed. Nothing measured shares a process or a runtime.
//!
//! **Method.** 1, 32 and 64 connections (32 for comparison with wasmCloud's published 9.8k-11.6k req/s at 32);
//! rounds alternate the order of the sides (native first, then lattice; the next round the other way round),
//! 3 rounds (`LATTICE_BENCH_ROUNDS=n`; `LATTICE_BENCH_QUICK=1`: one short round). Each measurement is 1 s of
//! warm-up and 5 s measured (`LATTICE_BENCH_HTTP_SECS=n`; quick: 0.3 s and 1 s). Before measuring, `GET /`
//! through the ingress must answer 200 with an `x-lattice-host` header (polled for up to 30 s). Figures are
//! medians over rounds; ratios are taken per round against the same round's native run, reported as the median
//! and the spread (`_min`, `_max`).
//!
//! **Output** (`BENCH <name> <value>`), `<side>` being `native` or `lattice`:
//! - `http_<side>_c<conns>_rps|p50_us|p90_us|p99_us|errors` (req/s: answered requests per measured second;
//!   latency: request sent to the whole body read);
//! - `http_ratio_c<conns>` (lattice req/s over native), with `_min` and `_max`; at 1 connection also
//!   `http_p50_ratio_c1` (lattice p50 latency over native: above 1 is slower), with `_min` and `_max`.
//!
//! `cargo bench -p lattice-cli --bench http` (`LATTICE_BENCH_QUICK=1` for a short run).

mod common;

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use bytes::Bytes;
use common::{Bench, Load, median, spread};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

/// The allocator the `lattice` binary uses, in the native server and the load client too.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The actor's lattice name.
const ACTOR: &str = "http-hello";
/// Capabilities it is signed for: its key-value store (`GET /count`) and HTTP.
const CAPS: &[&str] = &["wasi:keyvalue", "wasi:http"];
/// What http-hello answers `GET /`, and so the native server too.
const BODY: &[u8] = b"hello, world\n";
const CONTENT_TYPE_TEXT: &str = "text/plain; charset=utf-8";
/// Connections of the load client.
const CONNECTIONS: [usize; 3] = [1, 32, 64];
/// How long a response may take before it is an error.
const REQUEST_TIMEOUT: Duration = Duration::from_millis(common::REQUEST_TIMEOUT_MS);
/// How long the route gets to answer 200 once set.
const ROUTE_READY: Duration = Duration::from_secs(30);
const NATIVE: &str = "native";
const LATTICE: &str = "lattice";

fn main() -> ExitCode {
    common::main_with_roles(run, roles)
}

/// This bench's roles: `http-native` and `http-load ADDR CONNS SECS WARMUP_MS`.
fn roles(role: &str, args: &[String]) -> Option<Result<()>> {
    let run = |args: &[String]| -> Result<()> {
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("tokio runtime")?;
        let arg = |i: usize, what: &str| args.get(i).cloned().with_context(|| format!("role {role}: missing {what}"));
        match role {
            "http-native" => runtime.block_on(native_server()),
            _ => {
                let addr: SocketAddr = arg(0, "ADDR")?.parse().context("ADDR")?;
                let conns: usize = arg(1, "CONNS")?.parse().context("CONNS")?;
                let secs: f64 = arg(2, "SECS")?.parse().context("SECS")?;
                let warmup: u64 = arg(3, "WARMUP_MS")?.parse().context("WARMUP_MS")?;
                let (measure, warmup) = (Duration::from_secs_f64(secs), Duration::from_millis(warmup));
                runtime.block_on(http_load(addr, conns, measure, warmup))
            }
        }
    };
    matches!(role, "http-native" | "http-load").then(|| run(args))
}

/// The native floor: hello-world over HTTP/1.1 on 127.0.0.1 (a port of its own, printed after `ready`).
async fn native_server() -> Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.context("binding 127.0.0.1:0")?;
    println!("ready {}", listener.local_addr().context("the bound address")?);
    loop {
        let (stream, _) = listener.accept().await.context("accepting a connection")?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(hello);
            if let Err(error) =
                hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await
            {
                eprintln!("connection: {error}");
            }
        });
    }
}

async fn hello(_request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut response = Response::new(Full::new(Bytes::from_static(BODY)));
    response.headers_mut().insert(CONTENT_TYPE, hyper::header::HeaderValue::from_static(CONTENT_TYPE_TEXT));
    Ok(response)
}

/// What one connection of the load client saw.
#[derive(Default)]
struct Tally {
    /// Latencies of the requests sent and answered within the measured window.
    latencies: Vec<Duration>,
    errors: usize,
    first_error: Option<String>,
}

impl Tally {
    fn error(&mut self, error: String) {
        self.errors += 1;
        self.first_error.get_or_insert(error);
    }
}

/// The load client: `conns` connections sending `GET /` back-to-back, `warmup` and then `measure`.
async fn http_load(addr: SocketAddr, conns: usize, measure: Duration, warmup: Duration) -> Result<()> {
    let start = Instant::now() + warmup;
    let end = start + measure;
    let tasks: Vec<_> = (0..conns).map(|_| tokio::spawn(connection(addr, start, end))).collect();
    let mut total = Tally::default();
    for task in tasks {
        let tally = task.await.context("a connection task")?;
        total.latencies.extend(tally.latencies);
        total.errors += tally.errors;
        if let Some(error) = tally.first_error {
            total.first_error.get_or_insert(error);
        }
    }
    common::print_load(total.latencies, measure, total.errors, total.first_error);
    Ok(())
}

/// One keep-alive connection until `end`, opened again after an error; latencies count from `start`.
async fn connection(addr: SocketAddr, start: Instant, end: Instant) -> Tally {
    let mut tally = Tally::default();
    let authority = addr.to_string();
    while Instant::now() < end {
        let mut sender = match tokio::time::timeout(REQUEST_TIMEOUT, connect(addr)).await {
            Ok(Ok(sender)) => sender,
            Ok(Err(error)) => {
                tally.error(format!("connecting: {error:#}"));
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
            Err(_) => {
                tally.error("connecting: timed out".into());
                continue;
            }
        };
        while Instant::now() < end {
            let sent = Instant::now();
            match tokio::time::timeout(REQUEST_TIMEOUT, get(&mut sender, &authority)).await {
                Ok(Ok(())) => {
                    let answered = Instant::now();
                    if sent >= start && answered <= end {
                        tally.latencies.push(answered - sent);
                    }
                }
                Ok(Err(error)) => {
                    let fatal = error.is::<hyper::Error>();
                    tally.error(format!("{error:#}"));
                    if fatal {
                        break;
                    }
                }
                Err(_) => {
                    tally.error(format!("no response within {REQUEST_TIMEOUT:?}"));
                    break;
                }
            }
        }
    }
    tally
}

type Sender = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

async fn connect(addr: SocketAddr) -> Result<Sender> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

/// `GET /` on `sender`, the whole body read: `Ok` for 200 `hello, world\n`. A `hyper::Error` means the
/// connection is unusable.
async fn get(sender: &mut Sender, authority: &str) -> Result<()> {
    sender.ready().await?;
    let request = Request::get("/").header(HOST, authority).body(Empty::new())?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    if status != StatusCode::OK {
        bail!("status {status}: {}", String::from_utf8_lossy(&body[..body.len().min(200)]).trim());
    }
    ensure!(body == BODY, "status 200 with body {:?}", String::from_utf8_lossy(&body[..body.len().min(200)]));
    Ok(())
}

/// One blocking `GET /` on a connection of its own (`connection: close`): status and the response's head.
fn probe(addr: &str) -> Result<(u16, String)> {
    let addr: SocketAddr = addr.parse().with_context(|| format!("address `{addr}`"))?;
    let mut stream =
        TcpStream::connect_timeout(&addr, Duration::from_secs(2)).with_context(|| format!("connecting to {addr}"))?;
    stream.set_read_timeout(Some(REQUEST_TIMEOUT)).context("setting a read timeout")?;
    write!(stream, "GET / HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n").context("sending GET /")?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).context("reading the response")?;
    let text = String::from_utf8_lossy(&response);
    let head = text.split("\r\n\r\n").next().unwrap_or_default().to_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("no status line in `{}`", text.trim()))?;
    Ok((status, head))
}

/// Polls `GET /` on the ingress until it answers 200; returns the response's head.
fn wait_routed(bench: &Bench, ingress: &str) -> Result<String> {
    let deadline = Instant::now() + ROUTE_READY;
    loop {
        let last = match probe(ingress) {
            Ok((200, head)) => return Ok(head),
            Ok((status, head)) => format!("status {status}: {head}"),
            Err(error) => format!("{error:#}"),
        };
        if Instant::now() > deadline {
            bail!("GET / through the ingress did not answer 200 within {ROUTE_READY:?}: {last}\n{}", bench.host_log());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The head's header lines, `date` left out, one line.
fn headers(head: &str) -> String {
    head.lines().skip(1).filter(|l| !l.to_ascii_lowercase().starts_with("date:")).collect::<Vec<_>>().join("; ")
}

fn note(text: &str) {
    println!("note: {text}");
    eprintln!("note: {text}");
}

fn run() -> Result<()> {
    let quick = common::quick();
    let rounds = common::env_usize("LATTICE_BENCH_ROUNDS")?.unwrap_or(if quick { 1 } else { 3 });
    let secs = common::env_usize("LATTICE_BENCH_HTTP_SECS")?.unwrap_or(if quick { 1 } else { 5 });
    let warmup_ms: u64 = if quick { 300 } else { 1000 };

    let component = Path::new(lattice_test_actors::HTTP_HELLO);
    ensure!(component.is_file(), "the http-hello component {} is not built", component.display());
    let mut bench = Bench::new("http")?;
    let signed = bench.sign(component, ACTOR, CAPS)?.display().to_string();
    let ingress = format!("127.0.0.1:{}", common::free_port()?);
    bench.spawn_host(&["--http", &ingress])?;
    bench.cli(&["start", ACTOR, "--path", &signed, "--host", &bench.host_id, "--max-concurrency", "128"])?;
    bench.cli(&["route", "put", ACTOR, "--path", "/"])?;
    let lattice_head = wait_routed(&bench, &ingress)?;
    ensure!(
        lattice_head.to_ascii_lowercase().contains("\r\nx-lattice-host:"),
        "GET / on {ingress} answered without x-lattice-host: {lattice_head}"
    );

    let (native, native_addr) = bench.spawn_role("http-native", &[])?;
    let (status, native_head) = probe(&native_addr)?;
    ensure!(status == 200, "the native server answered {status}: {native_head}");
    note(&format!("lattice answers: {}", headers(&lattice_head)));
    note(&format!("native answers: {}", headers(&native_head)));

    let sides = [(NATIVE, native_addr.as_str()), (LATTICE, ingress.as_str())];
    let (secs_text, warmup_text) = (secs.to_string(), warmup_ms.to_string());
    let mut results: HashMap<(&str, usize), Vec<Load>> = HashMap::new();
    let started_at = Instant::now();
    for round in 0..rounds {
        for conns in CONNECTIONS {
            let order: Vec<_> =
                if round.is_multiple_of(2) { sides.iter().collect() } else { sides.iter().rev().collect() };
            for &(side, addr) in order {
                let conns_text = conns.to_string();
                let load = common::run_load_client("http-load", &[addr, &conns_text, &secs_text, &warmup_text])?;
                load.log(round, rounds, conns, side);
                results.entry((side, conns)).or_default().push(load);
            }
        }
        if let Some(host) = bench.host.as_mut() {
            host.check_alive()?;
        }
    }
    eprintln!("measured in {:.1} s", started_at.elapsed().as_secs_f64());

    for conns in CONNECTIONS {
        let runs = |side: &'static str| results.get(&(side, conns)).map(Vec::as_slice).unwrap_or_default();
        for side in [NATIVE, LATTICE] {
            let loads = runs(side);
            let prefix = format!("http_{side}_c{conns}");
            let figure = |f: fn(&Load) -> f64| median(&loads.iter().map(f).collect::<Vec<_>>());
            common::print(&format!("{prefix}_rps"), figure(|l| l.rps), 0);
            common::print(&format!("{prefix}_p50_us"), figure(|l| l.p50_us), 1);
            common::print(&format!("{prefix}_p90_us"), figure(|l| l.p90_us), 1);
            common::print(&format!("{prefix}_p99_us"), figure(|l| l.p99_us), 1);
            common::print(&format!("{prefix}_errors"), loads.iter().map(|l| l.errors as f64).sum(), 0);
        }
        let per_round = |f: fn(&Load, &Load) -> f64| -> Vec<f64> {
            runs(LATTICE).iter().zip(runs(NATIVE)).map(|(lattice, native)| f(lattice, native)).collect()
        };
        let mut ratios = vec![(format!("http_ratio_c{conns}"), per_round(|l, n| l.rps / n.rps))];
        if conns == 1 {
            ratios.push((format!("http_p50_ratio_c{conns}"), per_round(|l, n| l.p50_us / n.p50_us)));
        }
        for (name, values) in ratios {
            let (lo, hi) = spread(&values);
            common::print(&name, median(&values), 3);
            common::print(&format!("{name}_min"), lo, 3);
            common::print(&format!("{name}_max"), hi, 3);
        }
    }
    drop(native);
    Ok(())
}
