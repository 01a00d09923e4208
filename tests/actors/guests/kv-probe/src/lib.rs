//! Test actor: drives wasi:keyvalue through a real component and replies with a transcript the tests check.
//!
//! The message payload is a command:
//! - `batch`: set-many, get-many (with a missing key), delete-many, get-many again;
//! - `cas`: a compare-and-swap that loses a race, then succeeds with the handle it got back;
//! - `cas-increment`: increments key `n` with a CAS retry loop (no atomics::increment);
//! - `unlinked`: opens a store no link covers and reports the error it got;
//! - `log`: logs through wasi:logging, stdout and stderr;
//! - `metadata`: replies with the message's metadata as `name=value` lines, sorted;
//! - `connect-unlinked`: connects a messaging client no link covers and reports the error it got;
//! - `send-big <bytes>`: sends a message of that many bytes through the messaging link `rpc`, reports the outcome;
//! - `disconnected`: connects `rpc`, disconnects, then sends, and reports the error;
//! - `request <subject> <payload> [timeout-ms] [expected]`: a request through `rpc` (options only when given);
//!   replies `<n>:<reply>|<reply>…;reply-to-reply=<outcome>`, where the last part is what replying to the
//!   first reply gave (it must be an error).
//!
//! - `amplify-get-many <bytes> <n>`: sets `big` to that many bytes, then asks get-many for `big` n times;
//!   replies `got <n>` or `error: <error>`;
//! - `amplify-cas <bytes> <n>`: sets `big`, then keeps n compare-and-swap handles on it alive at once; replies
//!   `held <n>` or `held <k>; error: <error>` for the first one refused;
//! - `open-many <n>`: keeps n handles of the store alive at once; replies like `amplify-cas`.
//!
//! It uses the store linked as `default`.

// A wasm32-wasip2 component only: empty on other targets, so `cargo build --workspace` builds on the host.
#![cfg(target_family = "wasm")]

wit_bindgen::generate!({
    path: "../../../../wit",
    world: "lattice:actor/actor",
    generate_all,
});

use exports::wasi::messaging::incoming_handler::Guest;
use wasi::keyvalue::{atomics, batch, store};
use wasi::logging::logging::{Level, log};
use wasi::messaging::types::{Client, Error, Message};
use wasi::messaging::{producer, request_reply};

struct Probe;

fn fail<E: std::fmt::Debug>(what: &str) -> impl FnOnce(E) -> Error + '_ {
    move |e| Error::Other(format!("{what}: {e:?}"))
}

fn show(pairs: Vec<Option<(String, Vec<u8>)>>) -> String {
    pairs
        .into_iter()
        .map(|p| match p {
            Some((k, v)) => format!("{k}={}", String::from_utf8_lossy(&v)),
            None => "none".to_string(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn batch(bucket: &store::Bucket) -> Result<String, Error> {
    let pairs =
        vec![("a".to_string(), b"1".to_vec()), ("b".to_string(), b"2".to_vec()), ("c".to_string(), b"3".to_vec())];
    batch::set_many(bucket, &pairs).map_err(fail("set-many"))?;
    let keys = ["a", "b", "missing", "c"].map(String::from).to_vec();
    let first = batch::get_many(bucket, &keys).map_err(fail("get-many"))?;
    batch::delete_many(bucket, &["a".to_string(), "b".to_string()]).map_err(fail("delete-many"))?;
    let second = batch::get_many(bucket, &keys).map_err(fail("get-many"))?;
    let exists = bucket.exists("c").map_err(fail("exists"))?;
    Ok(format!("{};{};c-exists={exists}", show(first), show(second)))
}

fn text(value: Option<Vec<u8>>) -> String {
    value.map_or("none".into(), |v| String::from_utf8_lossy(&v).into_owned())
}

fn cas(bucket: &store::Bucket) -> Result<String, Error> {
    bucket.set("k", b"v1").map_err(fail("set"))?;
    let handle = atomics::Cas::new(bucket, "k").map_err(fail("cas new"))?;
    let seen = text(handle.current().map_err(fail("current"))?);
    // Somebody else writes first: the swap must fail and hand back a fresh handle.
    bucket.set("k", b"v2").map_err(fail("set"))?;
    let retry = match atomics::swap(handle, b"v3") {
        Ok(()) => return Ok("swap succeeded on a stale value".into()),
        Err(atomics::CasError::CasFailed(retry)) => retry,
        Err(atomics::CasError::StoreError(e)) => return Err(fail("swap")(e)),
    };
    let seen_retry = text(retry.current().map_err(fail("current"))?);
    atomics::swap(retry, b"v3").map_err(fail("swap retry"))?;
    let last = text(bucket.get("k").map_err(fail("get"))?);
    Ok(format!("seen={seen};conflict-current={seen_retry};final={last}"))
}

/// The amplification commands: what the host must not hold for the guest past its per-invocation budget.
fn amplify(bucket: &store::Bucket, command: &str) -> Option<Result<String, Error>> {
    let words: Vec<&str> = command.split_whitespace().collect();
    let number = |i: usize| words.get(i).and_then(|w| w.parse::<usize>().ok()).unwrap_or(0);
    let held = |n: usize, error: Option<store::Error>| match error {
        None => format!("held {n}"),
        Some(e) => format!("held {n}; error: {e:?}"),
    };
    let set_big = || bucket.set("big", &vec![b'x'; number(1)]).map_err(fail("set big"));
    let result = match words.first().copied() {
        Some("amplify-get-many") => {
            set_big().map(|()| match batch::get_many(bucket, &vec!["big".to_string(); number(2)]) {
                Ok(values) => format!("got {}", values.len()),
                Err(e) => format!("error: {e:?}"),
            })
        }
        Some("amplify-cas") => set_big().map(|()| {
            let mut handles = Vec::new();
            let error = (0..number(2)).find_map(|_| atomics::Cas::new(bucket, "big").map(|h| handles.push(h)).err());
            held(handles.len(), error)
        }),
        Some("open-many") => {
            let mut handles = Vec::new();
            let error = (0..number(1)).find_map(|_| store::open("default").map(|h| handles.push(h)).err());
            Ok(held(handles.len(), error))
        }
        _ => return None,
    };
    Some(result)
}

fn cas_increment(bucket: &store::Bucket) -> Result<String, Error> {
    let mut handle = atomics::Cas::new(bucket, "n").map_err(fail("cas new"))?;
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let current: i64 = text(handle.current().map_err(fail("current"))?).parse().unwrap_or(0);
        match atomics::swap(handle, (current + 1).to_string().as_bytes()) {
            Ok(()) => return Ok(format!("{} after {attempts} attempts", current + 1)),
            Err(atomics::CasError::CasFailed(retry)) => handle = retry,
            Err(atomics::CasError::StoreError(e)) => return Err(fail("swap")(e)),
        }
    }
}

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

fn request(args: &[&str]) -> Result<String, Error> {
    let [subject, payload, rest @ ..] = args else { return Err(Error::Other("request <subject> <payload>".into())) };
    let client = Client::connect("rpc")?;
    let options = if rest.is_empty() {
        None
    } else {
        let options = request_reply::RequestOptions::new();
        if let Some(ms) = rest.first().and_then(|v| v.parse().ok()) {
            options.set_timeout_ms(ms);
        }
        if let Some(n) = rest.get(1).and_then(|v| v.parse().ok()) {
            options.set_expected_replies(n);
        }
        Some(options)
    };
    let replies = match request_reply::request(&client, subject, &Message::new(payload.as_bytes()), options) {
        Ok(replies) => replies,
        Err(e) => return Ok(describe(e)),
    };
    let mut texts: Vec<String> = replies.iter().map(|r| String::from_utf8_lossy(&r.data()).into_owned()).collect();
    texts.sort();
    let reply_to_reply = match replies.first() {
        Some(first) => outcome(request_reply::reply(first, Message::new(b"echo"))),
        None => "none".into(),
    };
    Ok(format!("{}:{};reply-to-reply={reply_to_reply}", replies.len(), texts.join("|")))
}

fn messaging(command: &str) -> Option<Result<String, Error>> {
    let words: Vec<&str> = command.split_whitespace().collect();
    let result = match words.as_slice() {
        ["connect-unlinked"] => Ok(Client::connect("not-linked").map_or_else(describe, |_| "connected".into())),
        ["send-big", bytes] => {
            let size: usize = bytes.parse().unwrap_or(0);
            Client::connect("rpc").map(|c| outcome(producer::send(&c, "probe.big", Message::new(&vec![b'x'; size]))))
        }
        ["disconnected"] => Client::connect("rpc").map(|client| {
            let disconnect = outcome(client.disconnect());
            format!("disconnect={disconnect};send={}", outcome(producer::send(&client, "probe", Message::new(b"x"))))
        }),
        ["request", args @ ..] => request(args),
        _ => return None,
    };
    Some(result)
}

impl Guest for Probe {
    fn handle(message: Message) -> Result<(), Error> {
        let command = String::from_utf8_lossy(&message.data()).trim().to_string();
        if let Some(answer) = messaging(&command) {
            return request_reply::reply(&message, Message::new(answer?.as_bytes()));
        }
        let answer = match command.as_str() {
            "unlinked" => match store::open("not-linked") {
                Ok(_) => "opened".to_string(),
                Err(store::Error::AccessDenied) => "access-denied".to_string(),
                Err(e) => format!("other error: {e:?}"),
            },
            "metadata" => {
                let mut lines: Vec<String> =
                    message.metadata().unwrap_or_default().into_iter().map(|(k, v)| format!("{k}={v}")).collect();
                lines.sort();
                lines.join("\n")
            }
            "log" => {
                log(Level::Warn, "probe", "through wasi:logging");
                println!("through stdout");
                eprintln!("through stderr");
                "logged".to_string()
            }
            _ => {
                let bucket = store::open("default").map_err(fail("open"))?;
                if let Some(answer) = amplify(&bucket, &command) {
                    return request_reply::reply(&message, Message::new(answer?.as_bytes()));
                }
                match command.as_str() {
                    "batch" => batch(&bucket)?,
                    "cas" => cas(&bucket)?,
                    "cas-increment" => cas_increment(&bucket)?,
                    other => return Err(Error::Other(format!("unknown command {other}"))),
                }
            }
        };
        request_reply::reply(&message, Message::new(answer.as_bytes()))
    }
}

export!(Probe);
