//! orders-ingest: the first step of the `orders` example app (`examples/orders/lattice.toml`).
//!
//! It takes raw orders from `orders.in`, one per message, as text `<order-id> <customer> <sku> <qty>` (for
//! example `o-1 alice Apple 3`). It normalises them (whitespace trimmed, fields separated by one space, the sku
//! lower-cased: `o-1 alice apple 3`) and publishes them on `orders.received`. An order that is not utf-8 text
//! of four fields with an integer quantity is published on `orders.rejected` as `<reason>: <payload>` and the
//! message counts as handled: delivering a malformed order again cannot fix it.
//!
//! Links (the subscribing link is durable: each order is handled until this actor returns `Ok`):
//!
//! ```text
//! messaging:in=nats,subscribe=orders.in,delivery=at-least-once,max_deliver=5
//! messaging:out=nats,publish=orders.received,delivery=at-least-once
//! messaging:rejected=nats,publish=orders.rejected
//! ```

// A wasm32-wasip2 component only: empty on other targets, so `cargo build --workspace` builds on the host.
#![cfg(target_family = "wasm")]

wit_bindgen::generate!({
    path: "../../../wit",
    world: "lattice:actor/actor",
    generate_all,
});

use exports::wasi::messaging::incoming_handler::Guest;
use wasi::messaging::producer;
use wasi::messaging::types::{Client, Error, Message};

/// The topic this actor handles.
const IN: &str = "orders.in";
/// The messaging link good orders go through (durable: the send returns once a stream stored it).
const OUT: &str = "out";
/// The messaging link rejected orders go through (at most once: nothing is obliged to keep them).
const REJECTS: &str = "rejected";
/// Where normalised orders go.
const RECEIVED: &str = "orders.received";
/// Where malformed orders go.
const REJECTED: &str = "orders.rejected";

struct Ingest;

/// The normalised order, or why it is malformed.
fn normalise(payload: &[u8]) -> Result<String, String> {
    let text = std::str::from_utf8(payload).map_err(|_| "order is not utf-8 text".to_string())?;
    let fields: Vec<&str> = text.split_whitespace().collect();
    let [id, customer, sku, qty] = fields[..] else {
        return Err("malformed order (expected `<order-id> <customer> <sku> <qty>`)".into());
    };
    let qty: i64 = qty.parse().map_err(|_| format!("quantity `{qty}` is not an integer"))?;
    Ok(format!("{id} {customer} {} {qty}", sku.to_lowercase()))
}

impl Guest for Ingest {
    fn handle(message: Message) -> Result<(), Error> {
        match message.topic().as_deref() {
            Some(IN) | None => {}
            Some(other) => return Err(Error::Other(format!("orders-ingest does not handle topic `{other}`"))),
        }
        let payload = message.data();
        let (link, topic, out) = match normalise(&payload) {
            Ok(order) => (OUT, RECEIVED, order),
            Err(reason) => (REJECTS, REJECTED, format!("{reason}: {}", String::from_utf8_lossy(&payload).trim())),
        };
        producer::send(&Client::connect(link)?, topic, Message::new(out.as_bytes()))
    }
}

export!(Ingest);
