//! edge-api: an example lattice HTTP actor (world `lattice:actor/http-actor`) serving per-user preferences
//! behind ed25519-signed bearer tokens. See README.md for the token format.
//!
//! - `GET /v1/prefs` → 200 `{"user":"<sub>","prefs":{...}}` from key `prefs:<sub>` of the store linked as
//!   `prefs` (absent → `{}`).
//! - `PUT /v1/prefs` with a JSON object body (≤ 16 KiB) stores it there and answers the same shape.
//! - Missing, malformed, badly signed or expired token → 401; anything else → 404. Errors are `{"error":"..."}`.
//!
//! The token verification key is the hex text under `token-public-key` in the store linked as `config`.

// A wasm32-wasip2 component only: empty on other targets, so `cargo build --workspace` builds on the host.
#![cfg(target_family = "wasm")]

wit_bindgen::generate!({
    path: "../../wit",
    world: "lattice:actor/http-actor",
    generate_all,
});

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signature, VerifyingKey};
use exports::wasi::http::incoming_handler::Guest;
use serde_json::{Value, json};
use wasi::clocks::wall_clock;
use wasi::http::types::{
    Fields, IncomingBody, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
};
use wasi::io::streams::StreamError;
use wasi::keyvalue::store;

/// Largest accepted `PUT` body.
const MAX_BODY: usize = 16 * 1024;

/// A response: status and JSON body.
type Reply = (u16, Value);

fn error(status: u16, message: &str) -> Reply {
    (status, json!({ "error": message }))
}

struct EdgeApi;

impl Guest for EdgeApi {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let (status, body) = route(request).unwrap_or_else(|reply| reply);
        respond(out, status, body.to_string().as_bytes());
    }
}

fn route(request: IncomingRequest) -> Result<Reply, Reply> {
    let path_with_query = request.path_with_query().unwrap_or_default();
    let path = path_with_query.split('?').next().unwrap_or_default();
    let method = request.method();
    if path != "/v1/prefs" || !matches!(method, Method::Get | Method::Put) {
        return Err(error(404, "not found"));
    }
    let authorization = request.headers().get("authorization");
    let user = authenticate(authorization.first().map(Vec::as_slice))?;
    let bucket = open("prefs")?;
    let key = format!("prefs:{user}");
    let prefs = if matches!(method, Method::Put) {
        let body = read_body(request)?;
        let prefs: Value = serde_json::from_slice(&body).map_err(|_| error(400, "body is not valid JSON"))?;
        if !prefs.is_object() {
            return Err(error(400, "body must be a JSON object"));
        }
        bucket.set(&key, prefs.to_string().as_bytes()).map_err(|e| error(500, &format!("storing prefs: {e:?}")))?;
        prefs
    } else {
        match bucket.get(&key).map_err(|e| error(500, &format!("reading prefs: {e:?}")))? {
            None => json!({}),
            Some(bytes) => serde_json::from_slice(&bytes).map_err(|_| error(500, "stored prefs are not valid JSON"))?,
        }
    };
    Ok((200, json!({ "user": user, "prefs": prefs })))
}

/// Check `Bearer <payload-b64url>.<sig-b64url>` and return the token's `sub`.
fn authenticate(header: Option<&[u8]>) -> Result<String, Reply> {
    let header = header.ok_or_else(|| error(401, "missing bearer token"))?;
    let header = std::str::from_utf8(header).map_err(|_| error(401, "malformed authorization header"))?;
    let token = match header.trim().split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
        _ => return Err(error(401, "missing bearer token")),
    };
    let (payload_b64, sig_b64) = token.split_once('.').ok_or_else(|| error(401, "malformed token"))?;
    let signature: [u8; 64] = URL_SAFE_NO_PAD
        .decode(sig_b64)
        .ok()
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| error(401, "malformed token signature"))?;
    let payload = URL_SAFE_NO_PAD.decode(payload_b64).map_err(|_| error(401, "malformed token payload"))?;
    // The signature covers the payload segment exactly as it appears in the token (as in JWS).
    let key = public_key()?;
    key.verify_strict(payload_b64.as_bytes(), &Signature::from_bytes(&signature))
        .map_err(|_| error(401, "bad token signature"))?;
    let claims: Value = serde_json::from_slice(&payload).map_err(|_| error(401, "malformed token payload"))?;
    let sub = claims["sub"].as_str().filter(|s| !s.is_empty() && s.len() <= 256);
    let sub = sub.ok_or_else(|| error(401, "token has no valid `sub`"))?;
    let exp = claims["exp"].as_u64().ok_or_else(|| error(401, "token has no valid `exp`"))?;
    if exp < wall_clock::now().seconds {
        return Err(error(401, "token expired"));
    }
    Ok(sub.to_string())
}

/// The verification key: 64 hex digits under `token-public-key` in the `config` store.
fn public_key() -> Result<VerifyingKey, Reply> {
    let config = open("config")?;
    let value = config.get("token-public-key").map_err(|e| error(500, &format!("reading config: {e:?}")))?;
    let not_configured = || error(500, "config `token-public-key` is missing or not 32 hex-encoded bytes");
    let text = value.ok_or_else(not_configured)?;
    let text = std::str::from_utf8(&text).map_err(|_| not_configured())?.trim();
    let digits: Option<Vec<u8>> = text.chars().map(|c| c.to_digit(16).map(|d| d as u8)).collect();
    let bytes: Vec<u8> = digits
        .filter(|d| d.len() == 64)
        .ok_or_else(not_configured)?
        .chunks(2)
        .map(|pair| (pair[0] << 4) | pair[1])
        .collect();
    let bytes: [u8; 32] = bytes.try_into().map_err(|_| not_configured())?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| not_configured())
}

fn open(link: &str) -> Result<store::Bucket, Reply> {
    store::open(link).map_err(|e| match e {
        store::Error::AccessDenied | store::Error::NoSuchStore => error(500, &format!("missing link: keyvalue:{link}")),
        other => error(500, &format!("opening keyvalue:{link}: {other:?}")),
    })
}

/// The request body, at most `MAX_BODY` bytes (else 413).
fn read_body(request: IncomingRequest) -> Result<Vec<u8>, Reply> {
    let body = request.consume().map_err(|()| error(500, "request body already consumed"))?;
    let mut buf = Vec::new();
    {
        let stream = body.stream().map_err(|()| error(500, "request body already consumed"))?;
        loop {
            match stream.blocking_read((MAX_BODY + 1 - buf.len()) as u64) {
                Ok(bytes) => buf.extend_from_slice(&bytes),
                Err(StreamError::Closed) => break,
                Err(StreamError::LastOperationFailed(e)) => {
                    return Err(error(400, &format!("reading the body: {}", e.to_debug_string())));
                }
            }
            if buf.len() > MAX_BODY {
                return Err(error(413, "body larger than 16 KiB"));
            }
        }
    }
    let _ = IncomingBody::finish(body);
    Ok(buf)
}

fn respond(out: ResponseOutparam, status: u16, body: &[u8]) {
    let headers = Fields::new();
    let _ = headers.append("content-type", b"application/json");
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

export!(EdgeApi);
