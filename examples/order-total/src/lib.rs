//! order-total: an example lattice actor, the second step of an order pipeline.
//!
//! It handles messages on `orders.stored` (published by `order-store`) whose payload is `<id> <amount>`, and
//! adds them to running totals in the key-value store linked as `default`: key `total` grows by the amount and
//! key `orders` by one, both with `atomics::increment`, so any number of concurrent instances count exactly.
//!
//! ```text
//! --link keyvalue:default=inmemory
//! --link messaging:stored=inmemory,subscribe=orders.stored
//! ```

// A wasm32-wasip2 component only: empty on other targets, so `cargo build --workspace` builds on the host.
#![cfg(target_family = "wasm")]

wit_bindgen::generate!({
    path: "../../wit",
    world: "lattice:actor/actor",
    generate_all,
});

use exports::wasi::messaging::incoming_handler::Guest;
use wasi::keyvalue::{atomics, store};
use wasi::messaging::types::{Error, Message};

/// The key-value link the totals live in.
const STORE: &str = "default";
/// The topic this actor handles.
const STORED: &str = "orders.stored";

struct OrderTotal;

/// The amount of an `<id> <amount>` order.
fn amount(payload: &[u8]) -> Result<i64, Error> {
    let text = std::str::from_utf8(payload).map_err(|_| Error::Other("order is not utf-8 text".into()))?;
    let mut parts = text.split_whitespace();
    match (parts.next(), parts.next().map(str::parse::<i64>), parts.next()) {
        (Some(_id), Some(Ok(amount)), None) => Ok(amount),
        _ => Err(Error::Other(format!("order `{text}` is not `<id> <amount>`"))),
    }
}

impl Guest for OrderTotal {
    fn handle(message: Message) -> Result<(), Error> {
        match message.topic().as_deref() {
            Some(STORED) | None => {}
            Some(other) => return Err(Error::Other(format!("order-total does not handle topic `{other}`"))),
        }
        let amount = amount(&message.data())?;
        let bucket = store::open(STORE).map_err(|e| Error::Other(format!("open `{STORE}`: {e:?}")))?;
        atomics::increment(&bucket, "total", amount).map_err(|e| Error::Other(format!("increment total: {e:?}")))?;
        atomics::increment(&bucket, "orders", 1).map_err(|e| Error::Other(format!("increment orders: {e:?}")))?;
        Ok(())
    }
}

export!(OrderTotal);
