//! Test HTTP actor: `GET /?url=<percent-encoded url>` makes an outgoing GET to `url` through
//! `wasi:http/outgoing-handler` and answers 200 `status <code>\n<first 64 KiB of the body>`, or 502
//! `error <ErrorCode>` (e.g. `error HttpRequestDenied`) when `handle`, the response future or the body fails.

// A wasm32-wasip2 component only: empty on other targets, so `cargo build --workspace` builds on the host.
#![cfg(target_family = "wasm")]

wit_bindgen::generate!({
    path: "../../../../wit",
    world: "lattice:actor/http-actor",
    generate_all,
});

use exports::wasi::http::incoming_handler::Guest;
use wasi::http::outgoing_handler;
use wasi::http::types::{
    ErrorCode, Fields, IncomingRequest, OutgoingBody, OutgoingRequest, OutgoingResponse, ResponseOutparam, Scheme,
};
use wasi::io::streams::StreamError;

/// How much of the fetched body the reply carries.
const MAX_BODY: usize = 64 * 1024;

struct HttpFetch;

impl Guest for HttpFetch {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let path_with_query = request.path_with_query().unwrap_or_default();
        let query = path_with_query.split_once('?').map_or("", |(_, q)| q);
        let url = query.split('&').find_map(|pair| pair.strip_prefix("url=")).map(percent_decode);
        let (status, body) = match url {
            None => (400, b"missing query parameter `url`".to_vec()),
            Some(url) => match fetch(&url) {
                Ok(body) => (200, body),
                Err(e) => (502, format!("error {e}").into_bytes()),
            },
        };
        respond(out, status, &body);
    }
}

/// GET `url`; `status <code>\n<body>` or the error's name.
fn fetch(url: &str) -> Result<Vec<u8>, String> {
    let (scheme, rest) = url.split_once("://").ok_or_else(|| format!("bad url {url:?}"))?;
    let rest = rest.split('#').next().unwrap_or_default();
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) if rest[i..].starts_with('/') => (&rest[..i], rest[i..].to_string()),
        Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
        None => (rest, "/".to_string()),
    };
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        other => Scheme::Other(other.to_string()),
    };
    let request = OutgoingRequest::new(Fields::new());
    request.set_scheme(Some(&scheme)).map_err(|()| "bad scheme".to_string())?;
    request.set_authority(Some(authority)).map_err(|()| format!("bad authority {authority:?}"))?;
    request.set_path_with_query(Some(&path)).map_err(|()| format!("bad path {path:?}"))?;

    let future = outgoing_handler::handle(request, None).map_err(name)?;
    {
        let pollable = future.subscribe();
        pollable.block();
    }
    let response = match future.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(code))) => return Err(name(code)),
        Some(Err(())) => return Err("response already taken".to_string()),
        None => return Err("response not ready after block".to_string()),
    };
    let mut out = format!("status {}\n", response.status()).into_bytes();
    let body = response.consume().map_err(|()| "response body already taken".to_string())?;
    let stream = body.stream().map_err(|()| "response stream already taken".to_string())?;
    let limit = out.len() + MAX_BODY;
    while out.len() < limit {
        match stream.blocking_read((limit - out.len()) as u64) {
            Ok(bytes) => out.extend_from_slice(&bytes),
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(e)) => {
                return Err(wasi::http::types::http_error_code(&e).map_or_else(|| e.to_debug_string(), name));
            }
        }
    }
    Ok(out)
}

/// `ErrorCode::HttpRequestDenied` → `HttpRequestDenied` (payloads kept).
fn name(code: ErrorCode) -> String {
    let debug = format!("{code:?}");
    debug.strip_prefix("ErrorCode::").unwrap_or(&debug).to_string()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |j: usize| bytes.get(j).and_then(|b| (*b as char).to_digit(16));
        match (bytes[i], hex(i + 1), hex(i + 2)) {
            (b'%', Some(hi), Some(lo)) => {
                out.push((hi * 16 + lo) as u8);
                i += 2;
            }
            (b'+', _, _) => out.push(b' '),
            (b, _, _) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn respond(out: ResponseOutparam, status: u16, body: &[u8]) {
    let headers = Fields::new();
    let _ = headers.append("content-type", b"text/plain; charset=utf-8");
    let response = OutgoingResponse::new(headers);
    let _ = response.set_status_code(status);
    let outgoing = response.body();
    ResponseOutparam::set(out, Ok(response));
    let Ok(outgoing) = outgoing else { return };
    if let Ok(stream) = outgoing.write() {
        for chunk in body.chunks(4096) {
            if stream.blocking_write_and_flush(chunk).is_err() {
                break;
            }
        }
    }
    let _ = OutgoingBody::finish(outgoing, None);
}

export!(HttpFetch);
