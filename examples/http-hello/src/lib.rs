//! http-hello: an example lattice HTTP actor (world `lattice:actor/http-actor`).
//!
//! - `GET /count` increments the key `hits` in the key-value store linked as `default` and answers the new
//!   count as text. Without that link it answers 500 naming the missing link (`keyvalue:default`).
//! - Every other request answers 200 `hello, <name>\n`, where `<name>` is the `name` query parameter
//!   (percent-decoded) or `world`.

// A wasm32-wasip2 component only: empty on other targets, so `cargo build --workspace` builds on the host.
#![cfg(target_family = "wasm")]

wit_bindgen::generate!({
    path: "../../wit",
    world: "lattice:actor/http-actor",
    generate_all,
});

use exports::wasi::http::incoming_handler::Guest;
use wasi::http::types::{Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam};
use wasi::keyvalue::{atomics, store};

/// The key-value link this actor opens.
const STORE: &str = "default";

struct HttpHello;

impl Guest for HttpHello {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let path_with_query = request.path_with_query().unwrap_or_else(|| "/".to_string());
        let (path, query) = path_with_query.split_once('?').unwrap_or((&path_with_query, ""));
        let (status, body) = if path == "/count" && matches!(request.method(), Method::Get) {
            count()
        } else {
            let name = query_param(query, "name").filter(|n| !n.is_empty()).unwrap_or_else(|| "world".to_string());
            (200, format!("hello, {name}\n"))
        };
        respond(out, status, &body);
    }
}

/// Increment `hits` in the `default` store; (status, body).
fn count() -> (u16, String) {
    let bucket = match store::open(STORE) {
        Ok(bucket) => bucket,
        Err(store::Error::AccessDenied | store::Error::NoSuchStore) => {
            return (500, format!("missing link: keyvalue:{STORE}\n"));
        }
        Err(e) => return (500, format!("opening keyvalue:{STORE}: {e:?}\n")),
    };
    match atomics::increment(&bucket, "hits", 1) {
        Ok(n) => (200, format!("{n}\n")),
        Err(e) => (500, format!("incrementing `hits`: {e:?}\n")),
    }
}

/// The first value of `key` in a `a=b&c=d` query string, percent-decoded (`+` as space).
fn query_param(query: &str, key: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
        .find_map(|(k, v)| (percent_decode(k) == key).then(|| percent_decode(v)))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match (bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) {
                (Some(hi), Some(lo)) => {
                    out.push((hi << 4) | lo);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Answer `status` with a plain-text `body`.
fn respond(out: ResponseOutparam, status: u16, body: &str) {
    let headers = Fields::new();
    let _ = headers.append("content-type", b"text/plain; charset=utf-8");
    let response = OutgoingResponse::new(headers);
    let _ = response.set_status_code(status);
    let Ok(outgoing) = response.body() else {
        ResponseOutparam::set(out, Ok(response));
        return;
    };
    ResponseOutparam::set(out, Ok(response));
    if let Ok(stream) = outgoing.write() {
        for chunk in body.as_bytes().chunks(4096) {
            if stream.blocking_write_and_flush(chunk).is_err() {
                break;
            }
        }
    }
    let _ = OutgoingBody::finish(outgoing, None);
}

export!(HttpHello);
