//! Test actor for at-least-once delivery: redeliveries, dead letters, lost hosts. Each message is a job
//! `<key> <fail-times|always> [sleep-ms]`, and each delivery of it:
//! 1. records the highest `lattice-delivery` seen for `<key>` under `attempts:<key>` (decimal; a message without
//!    `lattice-delivery` is attempt 1), before anything else, so a test can wait for a delivery to start;
//! 2. sleeps `sleep-ms` milliseconds if given, using no CPU (a delivery in flight, e.g. while its host is killed);
//! 3. fails with an error value naming the attempt while the attempt is at most `fail-times`, or, with `always`,
//!    on every attempt until the key `fixed` exists;
//! 4. counts the job under `count:<key>` exactly once per `lattice-msg-id`: one compare-and-swap checks and adds
//!    the id (the guard of `examples/orders/ledger/src/guard.rs`; the record is `<count>` then one id per line).
//!    A message without `lattice-msg-id` (at-most-once delivery) is counted with a plain `atomics::increment`.
//!
//! Called with no topic (`lattice call`), it answers queries: `count <key>` replies the count (decimal, `0` when
//! none), `attempts <key>` the highest attempt (`0` when none), `fix` sets `fixed` and replies `fixed`. Any
//! other call payload is a job, answered `ok` once counted.
//!
//! It uses the key-value link `default`; jobs come from whichever subscribing messaging link the test gives it.

// A wasm32-wasip2 component only: empty on other targets, so `cargo build --workspace` builds on the host.
#![cfg(target_family = "wasm")]

wit_bindgen::generate!({
    path: "../../../../wit",
    world: "lattice:actor/actor",
    generate_all,
});

#[path = "../../../../../examples/orders/ledger/src/guard.rs"]
mod guard;

use exports::wasi::messaging::incoming_handler::Guest;
use wasi::keyvalue::{atomics, store};
use wasi::messaging::request_reply;
use wasi::messaging::types::{Error, Message};

/// The key-value link the counts live in.
const STORE: &str = "default";
/// While this key exists, `always` jobs succeed.
const FIXED: &str = "fixed";

struct WorkflowProbe;

fn fail<E: std::fmt::Debug>(what: &str) -> impl FnOnce(E) -> Error + '_ {
    move |e| Error::Other(format!("{what}: {e:?}"))
}

impl guard::Cas for atomics::Cas {
    fn value(&self) -> Result<Option<Vec<u8>>, String> {
        self.current().map_err(|e| format!("read: {e:?}"))
    }

    fn swap(self, value: &[u8]) -> Result<Option<Self>, String> {
        match atomics::swap(self, value) {
            Ok(()) => Ok(None),
            Err(atomics::CasError::CasFailed(fresh)) => Ok(Some(fresh)),
            Err(atomics::CasError::StoreError(e)) => Err(format!("swap: {e:?}")),
        }
    }
}

/// The value of metadata entry `key`.
fn metadata(message: &Message, key: &str) -> Option<String> {
    message.metadata()?.into_iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

/// The first number of the record under `key`, 0 when absent.
fn read(bucket: &store::Bucket, key: &str) -> Result<i64, Error> {
    let value = bucket.get(key).map_err(fail("get"))?;
    guard::Record::parse(value.as_deref()).map(|r| r.number(0)).map_err(Error::Other)
}

/// One delivery of the job `words`.
fn run(message: &Message, bucket: &store::Bucket, words: &[&str]) -> Result<(), Error> {
    let usage = || Error::Other(format!("job `{}` is not `<key> <fail-times|always> [sleep-ms]`", words.join(" ")));
    let (key, fail_times, sleep_ms) = match words {
        [key, fail_times] => (key, fail_times, None),
        [key, fail_times, ms] => (key, fail_times, Some(ms.parse().map_err(|_| usage())?)),
        _ => return Err(usage()),
    };
    let fail_times: Option<i64> = match *fail_times {
        "always" => None,
        n => Some(n.parse().map_err(|_| usage())?),
    };
    let attempt: i64 = metadata(message, "lattice-delivery").and_then(|v| v.parse().ok()).unwrap_or(1);
    let cas = atomics::Cas::new(bucket, &format!("attempts:{key}")).map_err(fail("compare-and-swap"))?;
    guard::update(cas, |value| {
        let highest = guard::Record::parse(value)?.number(0);
        Ok((attempt > highest).then(|| attempt.to_string().into_bytes()))
    })
    .map_err(Error::Other)?;
    if let Some(ms) = sleep_ms {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
    let failing = match fail_times {
        Some(n) => attempt <= n,
        None => !bucket.exists(FIXED).map_err(fail("exists"))?,
    };
    if failing {
        return Err(Error::Other(format!("attempt {attempt} of job `{key}` fails on purpose")));
    }
    let count = format!("count:{key}");
    match metadata(message, "lattice-msg-id") {
        Some(id) => {
            let cas = atomics::Cas::new(bucket, &count).map_err(fail("compare-and-swap"))?;
            guard::apply_once(cas, &id, &[1]).map_err(Error::Other)?;
        }
        None => {
            atomics::increment(bucket, &count, 1).map_err(fail("increment"))?;
        }
    }
    Ok(())
}

impl Guest for WorkflowProbe {
    fn handle(message: Message) -> Result<(), Error> {
        let text = String::from_utf8_lossy(&message.data()).into_owned();
        let words: Vec<&str> = text.split_whitespace().collect();
        let bucket = store::open(STORE).map_err(fail("open `default`"))?;
        if message.topic().is_some() {
            return run(&message, &bucket, &words);
        }
        let answer = match words[..] {
            ["count", key] => read(&bucket, &format!("count:{key}"))?.to_string(),
            ["attempts", key] => read(&bucket, &format!("attempts:{key}"))?.to_string(),
            ["fix"] => {
                bucket.set(FIXED, b"1").map_err(fail("set"))?;
                "fixed".to_string()
            }
            _ => {
                run(&message, &bucket, &words)?;
                "ok".to_string()
            }
        };
        request_reply::reply(&message, Message::new(answer.as_bytes()))
    }
}

export!(WorkflowProbe);
