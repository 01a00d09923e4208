//! Test actor: tries what a hostile actor would try through `wasi:messaging` and `wasi:logging`, and replies
//! with what it got, so the tests can check that every attempt is refused and every flood stays bounded.
//!
//! The message payload is a command (messaging through the link named `bus`):
//! - `send <subject>`: sends `x` to the subject; replies `ok` or the error value (`permission-denied: …`);
//! - `request <subject> [timeout-ms]`: a request; replies `ok:<n>:<first reply>` or the error value;
//! - `reply-forged <subject>`: makes a message of its own that names `subject` every way a guest can (topic
//!   metadata, `reply-to` metadata) and replies to it; replies with the error value it got;
//! - `send-bad <case> <subject>`, `request-bad <case> <subject>`: a send or request of a message whose metadata
//!   or content type is bad (`case`: `nul`, `crlf`, `control-name`, `empty-name`, `nats-msg-id`,
//!   `nats-expected-stream`, `nats-rollup`, `content-type`); replies `ok` or the error value;
//! - `reply-bad-content-type`: replies to the invocation with a content type holding CR/LF (the host must turn
//!   it into an error reply);
//! - `flood-messages`: creates 64 KiB messages and keeps them all, forever (the host must stop it);
//! - `flood-metadata`: adds 4 KiB metadata entries under fresh keys to one message, forever;
//! - `flood-data`: sets ever larger data (1 MiB more each time) on many messages, forever;
//! - `flood-options`: creates request options and keeps them, forever;
//! - `flood-clients`: connects `bus` until the host refuses, then replies `refused after <n>: <error>`;

// A wasm32-wasip2 component only: empty on other targets, so `cargo build --workspace` builds on the host.
#![cfg(target_family = "wasm")]

//! - `flood-log <lines> <bytes>`: logs `lines` lines of `bytes` bytes each, with a context as long, then replies
//!   `logged`.
//!
//! A message without one of these commands (for example one delivered by a subscription) is answered with
//! `pong` through `request-reply.reply`, and what that reply gave (`ok` or the error value) is sent to
//! `probe.out` through the link `bus`: that is how a test sees the outcome of a reply the actor could not make.

wit_bindgen::generate!({
    path: "../../../../wit",
    world: "lattice:actor/actor",
    generate_all,
});

use exports::wasi::messaging::incoming_handler::Guest;
use wasi::logging::logging::{Level, log};
use wasi::messaging::types::{Client, Error, Message};
use wasi::messaging::{producer, request_reply};

struct Probe;

/// A messaging error as `kind: detail`.
fn describe(error: Error) -> String {
    match error {
        Error::Timeout => "timeout".into(),
        Error::Connection(m) => format!("connection: {m}"),
        Error::PermissionDenied(m) => format!("permission-denied: {m}"),
        Error::Other(m) => format!("other: {m}"),
    }
}

fn outcome(result: Result<(), Error>) -> String {
    result.map_or_else(describe, |()| "ok".into())
}

fn bus() -> Result<Client, Error> {
    Client::connect("bus")
}

fn send(subject: &str) -> Result<String, Error> {
    Ok(outcome(producer::send(&bus()?, subject, Message::new(b"x"))))
}

fn request(subject: &str, timeout_ms: Option<u32>, expected: Option<u32>) -> Result<String, Error> {
    let options = (timeout_ms.is_some() || expected.is_some()).then(|| {
        let options = request_reply::RequestOptions::new();
        if let Some(ms) = timeout_ms {
            options.set_timeout_ms(ms);
        }
        if let Some(n) = expected {
            options.set_expected_replies(n);
        }
        options
    });
    Ok(match request_reply::request(&bus()?, subject, &Message::new(b"{}"), options) {
        Ok(replies) => {
            let first = replies.first().map(|r| String::from_utf8_lossy(&r.data()).into_owned()).unwrap_or_default();
            format!("ok:{}:{first}", replies.len())
        }
        Err(e) => describe(e),
    })
}

fn reply_forged(subject: &str) -> String {
    let forged = Message::new(b"forged");
    forged.add_metadata("reply-to", subject);
    forged.add_metadata("Nats-Reply", subject);
    forged.set_content_type(subject);
    outcome(request_reply::reply(&forged, Message::new(b"{}")))
}

/// A message whose metadata or content type is bad in the way `case` names.
fn bad_message(case: &str) -> Option<Message> {
    let message = Message::new(b"x");
    match case {
        "nul" => message.add_metadata("a", "x\0y"),
        "crlf" => message.add_metadata("a", "x\r\nNats-Rollup: all"),
        "control-name" => message.add_metadata("a\u{1}b", "x"),
        "empty-name" => message.add_metadata("", "x"),
        "nats-msg-id" => message.add_metadata("Nats-Msg-Id", "dup"),
        "nats-expected-stream" => message.add_metadata("nats-expected-stream", "other"),
        "nats-rollup" => message.add_metadata("NATS-ROLLUP", "all"),
        "content-type" => message.set_content_type("text/plain\r\nNats-Rollup: all"),
        _ => return None,
    }
    Some(message)
}

fn send_bad(case: &str, subject: &str) -> Option<Result<String, Error>> {
    let message = bad_message(case)?;
    Some(bus().map(|bus| outcome(producer::send(&bus, subject, message))))
}

fn request_bad(case: &str, subject: &str) -> Option<Result<String, Error>> {
    let message = bad_message(case)?;
    let options = request_reply::RequestOptions::new();
    options.set_timeout_ms(200);
    Some(bus().map(|bus| match request_reply::request(&bus, subject, &message, Some(options)) {
        Ok(replies) => format!("ok:{}", replies.len()),
        Err(e) => describe(e),
    }))
}

fn flood_messages() -> String {
    let mut kept = Vec::new();
    loop {
        kept.push(Message::new(&[b'm'; 64 << 10]));
    }
}

fn flood_metadata() -> String {
    let message = Message::new(b"");
    let value = "v".repeat(4 << 10);
    let mut n = 0u64;
    loop {
        message.add_metadata(&format!("k{n}"), &value);
        n += 1;
    }
}

fn flood_data() -> String {
    let mut kept = Vec::new();
    let mut size = 1 << 20;
    loop {
        let message = Message::new(b"");
        message.set_data(&vec![b'd'; size]);
        kept.push(message);
        size += 1 << 20;
        if size > 8 << 20 {
            size = 1 << 20;
        }
    }
}

fn flood_options() -> String {
    let mut kept = Vec::new();
    loop {
        kept.push(request_reply::RequestOptions::new());
    }
}

fn flood_clients() -> String {
    let mut kept = Vec::new();
    loop {
        match bus() {
            Ok(client) => kept.push(client),
            Err(e) => return format!("refused after {}: {}", kept.len(), describe(e)),
        }
    }
}

fn flood_log(lines: usize, bytes: usize) -> String {
    let context = "c".repeat(bytes);
    let line = "l".repeat(bytes);
    for _ in 0..lines {
        log(Level::Info, &context, &line);
    }
    "logged".into()
}

fn command(words: &[&str]) -> Option<Result<String, Error>> {
    let number = |w: &&str| w.parse().ok();
    Some(match words {
        ["send", subject] => send(subject),
        ["request", subject] => request(subject, None, None),
        ["request", subject, ms] => request(subject, number(ms), None),
        ["reply-forged", subject] => Ok(reply_forged(subject)),
        ["send-bad", case, subject] => send_bad(case, subject)?,
        ["request-bad", case, subject] => request_bad(case, subject)?,
        ["flood-messages"] => Ok(flood_messages()),
        ["flood-metadata"] => Ok(flood_metadata()),
        ["flood-data"] => Ok(flood_data()),
        ["flood-options"] => Ok(flood_options()),
        ["flood-clients"] => Ok(flood_clients()),
        ["flood-log", lines, bytes] => Ok(flood_log(number(lines)? as usize, number(bytes)? as usize)),
        _ => return None,
    })
}

impl Guest for Probe {
    fn handle(message: Message) -> Result<(), Error> {
        let text = String::from_utf8_lossy(&message.data()).trim().to_string();
        let words: Vec<&str> = text.split_whitespace().collect();
        if words == ["reply-bad-content-type"] {
            let reply = Message::new(b"bad");
            reply.set_content_type("text/plain\r\nNats-Rollup: all");
            return request_reply::reply(&message, reply);
        }
        match command(&words) {
            Some(answer) => request_reply::reply(&message, Message::new(answer?.as_bytes())),
            None => {
                let replied = outcome(request_reply::reply(&message, Message::new(b"")));
                producer::send(&bus()?, "probe.out", Message::new(replied.as_bytes()))
            }
        }
    }
}

export!(Probe);
