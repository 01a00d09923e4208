//! order-store: an example lattice actor, the first step of an order pipeline.
//!
//! It handles messages on `orders.new` whose payload is an order as text, `<id> <amount>` (for example
//! `o-17 250`): it stores the payload in the key-value store linked as `default` under `order:<id>`, then
//! publishes the same payload on `orders.stored` through the messaging link `events`. It names no backend:
//!
//! ```text
//! --link keyvalue:default=inmemory
//! --link messaging:orders=inmemory,subscribe=orders.new,queue=order-store   # where orders come from
//! --link messaging:events=inmemory                                           # where stored orders go
//! ```
//!
//! A payload that is not an order is refused with an error value (the host logs it); nothing is stored.

// A wasm32-wasip2 component only: empty on other targets, so `cargo build --workspace` builds on the host.
#![cfg(target_family = "wasm")]

wit_bindgen::generate!({
    path: "../../wit",
    world: "lattice:actor/actor",
    generate_all,
});

use exports::wasi::messaging::incoming_handler::Guest;
use wasi::keyvalue::store;
use wasi::messaging::producer;
use wasi::messaging::types::{Client, Error, Message};

/// The key-value link orders are stored in.
const STORE: &str = "default";
/// The messaging link stored orders are announced on.
const EVENTS: &str = "events";
/// The topic this actor handles.
const NEW: &str = "orders.new";
/// The topic stored orders are published on.
const STORED: &str = "orders.stored";

struct OrderStore;

/// Parses `<id> <amount>`: a non-empty id without whitespace and a decimal integer amount.
fn parse(payload: &[u8]) -> Result<(&str, i64), Error> {
    let text = std::str::from_utf8(payload).map_err(|_| Error::Other("order is not utf-8 text".into()))?;
    let mut parts = text.split_whitespace();
    match (parts.next(), parts.next().map(str::parse::<i64>), parts.next()) {
        (Some(id), Some(Ok(amount)), None) => Ok((id, amount)),
        _ => Err(Error::Other(format!("order `{text}` is not `<id> <amount>`"))),
    }
}

impl Guest for OrderStore {
    fn handle(message: Message) -> Result<(), Error> {
        match message.topic().as_deref() {
            Some(NEW) | None => {}
            Some(other) => return Err(Error::Other(format!("order-store does not handle topic `{other}`"))),
        }
        let payload = message.data();
        let (id, _amount) = parse(&payload)?;
        let bucket = store::open(STORE).map_err(|e| Error::Other(format!("open `{STORE}`: {e:?}")))?;
        bucket.set(&format!("order:{id}"), &payload).map_err(|e| Error::Other(format!("store order {id}: {e:?}")))?;
        let events = Client::connect(EVENTS)?;
        producer::send(&events, STORED, Message::new(&payload))
    }
}

export!(OrderStore);
