//! {{name}}: a lattice actor.
//!
//! For each message it increments a counter in the key-value store linked as `default` and replies with the new
//! value. The counter's key is the message payload (trimmed), or `counter` when it is empty. When the actor has
//! a messaging link named `events`, it also publishes `<key> <value>` on the subject `{{name}}.counted`.
//!
//! It never names a backend: links decide at deploy time, e.g. `--link keyvalue:default=inmemory` on a laptop,
//! Redis in production.

wit_bindgen::generate!({
    path: "wit",
    world: "lattice:actor/actor",
    generate_all,
});

use exports::wasi::messaging::incoming_handler::Guest;
use wasi::keyvalue::{atomics, store};
use wasi::logging::logging::{Level, log};
use wasi::messaging::types::{Client, Error, Message};
use wasi::messaging::{producer, request_reply};

/// The key-value link this actor opens.
const STORE: &str = "default";
/// The messaging link it publishes on, when it has one.
const EVENTS: &str = "events";

struct Actor;

impl Guest for Actor {
    fn handle(message: Message) -> Result<(), Error> {
        let payload = message.data();
        let key = std::str::from_utf8(&payload)
            .map(str::trim)
            .ok()
            .filter(|k| !k.is_empty())
            .unwrap_or("counter");
        let bucket =
            store::open(STORE).map_err(|e| Error::Other(format!("open `{STORE}`: {e:?}")))?;
        let value = atomics::increment(&bucket, key, 1)
            .map_err(|e| Error::Other(format!("increment `{key}`: {e:?}")))?;
        log(Level::Info, "{{name}}", &format!("{key} = {value}"));

        // Publishing is optional: without an `events` link, connecting is refused and the actor only replies.
        if let Ok(client) = Client::connect(EVENTS) {
            let event = Message::new(format!("{key} {value}").as_bytes());
            producer::send(&client, "{{name}}.counted", event)?;
        }
        request_reply::reply(&message, Message::new(value.to_string().as_bytes()))
    }
}

export!(Actor);
