//! kv-counter: an example lattice actor.
//!
//! For each message it increments a counter in the key-value store linked as `default` and replies with the
//! new value as decimal text. The counter's key is the message payload (trimmed), or `counter` when the
//! payload is empty. It names no backend: link `keyvalue:default` to `inmemory` on a laptop, to Redis in
//! production.

// A wasm32-wasip2 component only: empty on other targets, so `cargo build --workspace` builds on the host.
#![cfg(target_family = "wasm")]

wit_bindgen::generate!({
    path: "../../wit",
    world: "lattice:actor/actor",
    generate_all,
});

use exports::wasi::messaging::incoming_handler::Guest;
use wasi::keyvalue::{atomics, store};
use wasi::logging::logging::{Level, log};
use wasi::messaging::request_reply;
use wasi::messaging::types::{Error, Message};

/// The link name this actor opens.
const STORE: &str = "default";

struct KvCounter;

impl Guest for KvCounter {
    fn handle(message: Message) -> Result<(), Error> {
        let payload = message.data();
        let key = std::str::from_utf8(&payload).map(str::trim).ok().filter(|k| !k.is_empty()).unwrap_or("counter");
        let bucket = store::open(STORE).map_err(|e| Error::Other(format!("open `{STORE}`: {e:?}")))?;
        let value =
            atomics::increment(&bucket, key, 1).map_err(|e| Error::Other(format!("increment `{key}`: {e:?}")))?;
        log(Level::Info, "kv-counter", &format!("{key} = {value}"));
        request_reply::reply(&message, Message::new(value.to_string().as_bytes()))
    }
}

export!(KvCounter);
