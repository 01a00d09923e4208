//! Test actor: drives wasi:keyvalue through a real component and replies with a transcript the tests check.
//!
//! The message payload is a command:
//! - `batch`: set-many, get-many (with a missing key), delete-many, get-many again;
//! - `cas`: a compare-and-swap that loses a race, then succeeds with the handle it got back;
//! - `cas-increment`: increments key `n` with a CAS retry loop (no atomics::increment);
//! - `unlinked`: opens a store no link covers and reports the error it got;
//! - `log`: logs through wasi:logging, stdout and stderr.
//! It uses the store linked as `default`.

wit_bindgen::generate!({
    path: "../../../../wit",
    world: "lattice:actor/actor",
    generate_all,
});

use exports::wasi::messaging::incoming_handler::Guest;
use wasi::keyvalue::{atomics, batch, store};
use wasi::logging::logging::{Level, log};
use wasi::messaging::request_reply;
use wasi::messaging::types::{Error, Message};

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

impl Guest for Probe {
    fn handle(message: Message) -> Result<(), Error> {
        let command = String::from_utf8_lossy(&message.data()).trim().to_string();
        let answer = match command.as_str() {
            "unlinked" => match store::open("not-linked") {
                Ok(_) => "opened".to_string(),
                Err(store::Error::AccessDenied) => "access-denied".to_string(),
                Err(e) => format!("other error: {e:?}"),
            },
            "log" => {
                log(Level::Warn, "probe", "through wasi:logging");
                println!("through stdout");
                eprintln!("through stderr");
                "logged".to_string()
            }
            _ => {
                let bucket = store::open("default").map_err(fail("open"))?;
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
