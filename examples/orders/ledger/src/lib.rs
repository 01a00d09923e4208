//! orders-ledger: the last step of the `orders` example app (`examples/orders/lattice.toml`).
//!
//! It takes priced orders `<order-id> <customer> <amount>` (amount in cents) from `orders.priced` (published by
//! `orders-price`) and keeps a running total per customer in the key-value link `ledger`, under
//! `customer:<customer>`. Each order counts exactly once even though it may be delivered more than once (a
//! redelivery after an error, a crash or a lost host): the record lists the `lattice-msg-id` of every message
//! applied, and the check and the update are one compare-and-swap (see `guard.rs`). A record reads:
//!
//! ```text
//! <total-cents> <orders>
//! <lattice-msg-id>
//! <lattice-msg-id>
//! …
//! ```
//!
//! A message without `lattice-msg-id` is refused with an error: the ledger needs at-least-once delivery.
//!
//! Called with no topic (`lattice call orders-ledger <query>`), it replies to:
//! - `totals`: one line `<customer> <total-cents> <orders>` per customer, sorted by customer;
//! - `total <customer>`: that customer's line (`<customer> 0 0` if it has no orders).
//!
//! Links (the bucket is the link's business, here `orders-ledger`):
//!
//! ```text
//! messaging:in=nats,subscribe=orders.priced,delivery=at-least-once,max_deliver=5
//! keyvalue:ledger=inmemory,bucket=orders-ledger
//! ```

// A wasm32-wasip2 component only: empty on other targets, so `cargo build --workspace` builds on the host.
#![cfg(target_family = "wasm")]

wit_bindgen::generate!({
    path: "../../../wit",
    world: "lattice:actor/actor",
    generate_all,
});

mod guard;

use exports::wasi::messaging::incoming_handler::Guest;
use wasi::keyvalue::{atomics, batch, store};
use wasi::logging::logging::{Level, log};
use wasi::messaging::request_reply;
use wasi::messaging::types::{Error, Message};

/// The key-value link the ledger lives in.
const STORE: &str = "ledger";
/// The topic this actor handles.
const PRICED: &str = "orders.priced";
/// Prefix of the customers' keys.
const CUSTOMER: &str = "customer:";

struct Ledger;

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

/// Adds a priced order to its customer's total, once per message id.
fn record(message: &Message) -> Result<(), Error> {
    let Some(id) = metadata(message, "lattice-msg-id") else {
        return Err(Error::Other("orders-ledger needs at-least-once delivery: no lattice-msg-id".into()));
    };
    let text = String::from_utf8_lossy(&message.data()).into_owned();
    let fields: Vec<&str> = text.split_whitespace().collect();
    let [order, customer, amount] = fields[..] else {
        return Err(Error::Other(format!("`{text}` is not `<order-id> <customer> <amount>`")));
    };
    let amount: i64 = amount.parse().map_err(fail("amount"))?;
    let bucket = store::open(STORE).map_err(fail("open `ledger`"))?;
    let cas = atomics::Cas::new(&bucket, &format!("{CUSTOMER}{customer}")).map_err(fail("compare-and-swap"))?;
    let applied = guard::apply_once(cas, &id, &[amount, 1]).map_err(|e| Error::Other(format!("order {order}: {e}")))?;
    if !applied {
        log(Level::Info, "orders-ledger", &format!("order {order} (message {id}) was already counted"));
    }
    Ok(())
}

/// `<customer> <total-cents> <orders>`.
fn line(customer: &str, value: Option<&[u8]>) -> Result<String, Error> {
    let record = guard::Record::parse(value).map_err(|e| Error::Other(format!("customer {customer}: {e}")))?;
    Ok(format!("{customer} {} {}", record.number(0), record.number(1)))
}

/// Every customer's line, sorted.
fn totals(bucket: &store::Bucket) -> Result<String, Error> {
    let mut keys = Vec::new();
    let mut cursor = None;
    loop {
        let page = bucket.list_keys(cursor.as_deref()).map_err(fail("list keys"))?;
        keys.extend(page.keys.into_iter().filter(|k| k.starts_with(CUSTOMER)));
        cursor = page.cursor;
        if cursor.is_none() {
            break;
        }
    }
    keys.sort();
    let records = batch::get_many(bucket, &keys).map_err(fail("read records"))?;
    let lines: Vec<String> = records
        .into_iter()
        .flatten()
        .map(|(key, value)| line(&key[CUSTOMER.len()..], Some(&value)))
        .collect::<Result<_, _>>()?;
    Ok(lines.join("\n"))
}

/// The answer to a `lattice call`.
fn query(message: &Message) -> Result<String, Error> {
    let text = String::from_utf8_lossy(&message.data()).into_owned();
    let bucket = store::open(STORE).map_err(fail("open `ledger`"))?;
    match text.split_whitespace().collect::<Vec<_>>()[..] {
        ["totals"] => totals(&bucket),
        ["total", customer] => {
            let value = bucket.get(&format!("{CUSTOMER}{customer}")).map_err(fail("read record"))?;
            line(customer, value.as_deref())
        }
        _ => Err(Error::Other(format!("unknown query `{}`: expected `totals` or `total <customer>`", text.trim()))),
    }
}

impl Guest for Ledger {
    fn handle(message: Message) -> Result<(), Error> {
        match message.topic().as_deref() {
            Some(PRICED) => record(&message),
            None => request_reply::reply(&message, Message::new(query(&message)?.as_bytes())),
            Some(other) => Err(Error::Other(format!("orders-ledger does not handle topic `{other}`"))),
        }
    }
}

export!(Ledger);
