//! Test HTTP actor: answers 200 with `<METHOD> <path-with-query>\n<request body bytes>`, and copies the request
//! header `x-echo` (every value) into the response. Used for body-size and forwarding tests.

// A wasm32-wasip2 component only: empty on other targets, so `cargo build --workspace` builds on the host.
#![cfg(target_family = "wasm")]

wit_bindgen::generate!({
    path: "../../../../wit",
    world: "lattice:actor/http-actor",
    generate_all,
});

use exports::wasi::http::incoming_handler::Guest;
use wasi::http::types::{
    Fields, IncomingBody, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
};
use wasi::io::streams::StreamError;

struct HttpEcho;

impl Guest for HttpEcho {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let method = match request.method() {
            Method::Get => "GET".to_string(),
            Method::Head => "HEAD".to_string(),
            Method::Post => "POST".to_string(),
            Method::Put => "PUT".to_string(),
            Method::Delete => "DELETE".to_string(),
            Method::Connect => "CONNECT".to_string(),
            Method::Options => "OPTIONS".to_string(),
            Method::Trace => "TRACE".to_string(),
            Method::Patch => "PATCH".to_string(),
            Method::Other(other) => other,
        };
        let echo = request.headers().get("x-echo");
        let mut body = format!("{method} {}\n", request.path_with_query().unwrap_or_default()).into_bytes();
        let Ok(incoming) = request.consume() else {
            return respond(out, 500, b"request body already consumed", &[]);
        };
        if let Err(e) = read_all(&incoming, &mut body) {
            return respond(out, 500, format!("reading the request body: {e:?}").as_bytes(), &[]);
        }
        let _ = IncomingBody::finish(incoming);
        respond(out, 200, &body, &echo);
    }
}

/// Append the whole body to `buf`.
fn read_all(body: &IncomingBody, buf: &mut Vec<u8>) -> Result<(), StreamError> {
    let Ok(stream) = body.stream() else { return Ok(()) };
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(bytes) => buf.extend_from_slice(&bytes),
            Err(StreamError::Closed) => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

fn respond(out: ResponseOutparam, status: u16, body: &[u8], echo: &[Vec<u8>]) {
    let headers = Fields::new();
    let _ = headers.append("content-type", b"application/octet-stream");
    for value in echo {
        let _ = headers.append("x-echo", value);
    }
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

export!(HttpEcho);
