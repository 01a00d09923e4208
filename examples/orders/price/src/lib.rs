//! orders-price: the third step of the `orders` example app (`examples/orders/lattice.toml`).
//!
//! It takes valid orders `<order-id> <customer> <sku> <qty>` from `orders.valid` (published by
//! `orders-validate`), prices them at quantity × unit price and publishes `<order-id> <customer> <amount>`, the
//! amount in cents, on `orders.priced`. Unit prices, in cents:
//!
//! | sku   | cents |
//! |-------|-------|
//! | apple | 50    |
//! | pear  | 75    |
//! | plum  | 30    |
//! | fig   | 120   |
//!
//! So `o-1 alice apple 3` becomes `o-1 alice 150`. An order it cannot price (malformed, unknown sku: never
//! after `orders-validate`) is an error: delivered again, then dead-lettered.
//!
//! Links:
//!
//! ```text
//! messaging:in=nats,subscribe=orders.valid,delivery=at-least-once,max_deliver=5
//! messaging:out=nats,publish=orders.priced,delivery=at-least-once
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
const VALID: &str = "orders.valid";
/// The messaging link it publishes through.
const OUT: &str = "out";
/// Where priced orders go.
const PRICED: &str = "orders.priced";
/// Unit prices in cents.
const PRICES: [(&str, i64); 4] = [("apple", 50), ("pear", 75), ("plum", 30), ("fig", 120)];

struct Price;

/// `<order-id> <customer> <amount>` for a valid order.
fn price(payload: &[u8]) -> Result<String, Error> {
    let text = String::from_utf8_lossy(payload);
    let fields: Vec<&str> = text.split_whitespace().collect();
    let malformed = || Error::Other(format!("cannot price order `{}`", text.trim()));
    let [id, customer, sku, qty] = fields[..] else { return Err(malformed()) };
    let qty: i64 = qty.parse().map_err(|_| malformed())?;
    let (_, unit) = PRICES.iter().find(|(name, _)| *name == sku).ok_or_else(malformed)?;
    let amount = qty.checked_mul(*unit).ok_or_else(malformed)?;
    Ok(format!("{id} {customer} {amount}"))
}

impl Guest for Price {
    fn handle(message: Message) -> Result<(), Error> {
        match message.topic().as_deref() {
            Some(VALID) | None => {}
            Some(other) => return Err(Error::Other(format!("orders-price does not handle topic `{other}`"))),
        }
        let priced = price(&message.data())?;
        producer::send(&Client::connect(OUT)?, PRICED, Message::new(priced.as_bytes()))
    }
}

export!(Price);
