//! orders-validate: the second step of the `orders` example app (`examples/orders/lattice.toml`).
//!
//! It takes normalised orders `<order-id> <customer> <sku> <qty>` from `orders.received` (published by
//! `orders-ingest`) and checks them: the quantity must be 1 to 1000 and the sku one of the catalogue, `apple`,
//! `pear`, `plum` or `fig`. A valid order is published unchanged on `orders.valid`; any other is published on
//! `orders.rejected` as `<reason>: <payload>` (for example `unknown sku `kiwi`: o-2 bob kiwi 1`) and the
//! message counts as handled.
//!
//! Links:
//!
//! ```text
//! messaging:in=nats,subscribe=orders.received,delivery=at-least-once,max_deliver=5
//! messaging:out=nats,publish=orders.valid,delivery=at-least-once
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
const RECEIVED: &str = "orders.received";
/// The messaging link good orders go through (durable: the send returns once a stream stored it).
const OUT: &str = "out";
/// The messaging link rejected orders go through (at most once: nothing is obliged to keep them).
const REJECTS: &str = "rejected";
/// Where valid orders go.
const VALID: &str = "orders.valid";
/// Where invalid orders go.
const REJECTED: &str = "orders.rejected";
/// The skus on sale.
const CATALOGUE: [&str; 4] = ["apple", "pear", "plum", "fig"];
/// The quantities one order may ask for.
const QUANTITY: std::ops::RangeInclusive<i64> = 1..=1000;

struct Validate;

/// Why the order is invalid, if it is.
fn check(text: &str) -> Result<(), String> {
    let fields: Vec<&str> = text.split_whitespace().collect();
    let [_id, _customer, sku, qty] = fields[..] else {
        return Err("malformed order (expected `<order-id> <customer> <sku> <qty>`)".into());
    };
    let qty: i64 = qty.parse().map_err(|_| format!("quantity `{qty}` is not an integer"))?;
    if !QUANTITY.contains(&qty) {
        return Err(format!("quantity {qty} is not between {} and {}", QUANTITY.start(), QUANTITY.end()));
    }
    if !CATALOGUE.contains(&sku) {
        return Err(format!("unknown sku `{sku}`"));
    }
    Ok(())
}

impl Guest for Validate {
    fn handle(message: Message) -> Result<(), Error> {
        match message.topic().as_deref() {
            Some(RECEIVED) | None => {}
            Some(other) => return Err(Error::Other(format!("orders-validate does not handle topic `{other}`"))),
        }
        let payload = message.data();
        let text = String::from_utf8_lossy(&payload);
        let text = text.trim();
        let (link, topic, out) = match check(text) {
            Ok(()) => (OUT, VALID, text.to_string()),
            Err(reason) => (REJECTS, REJECTED, format!("{reason}: {text}")),
        };
        producer::send(&Client::connect(link)?, topic, Message::new(out.as_bytes()))
    }
}

export!(Validate);
