//! Test actor: replies with how many invocations this instance has served, counting this one (state in its
//! linear memory). With a fresh instance per invocation the reply is always 1. Payload `error` returns an
//! error value and `trap` aborts, both after counting; `grow N` also keeps N MiB more memory alive (leaked),
//! so memory use accumulates across the invocations one instance serves.

// A wasm32-wasip2 component only: empty on other targets, so `cargo build --workspace` builds on the host.
#![cfg(target_family = "wasm")]

wit_bindgen::generate!({
    path: "../../../../wit",
    world: "lattice:actor/actor",
    generate_all,
});

use std::sync::atomic::{AtomicU64, Ordering};

use exports::wasi::messaging::incoming_handler::Guest;
use wasi::messaging::request_reply;
use wasi::messaging::types::{Error, Message};

static SERVED: AtomicU64 = AtomicU64::new(0);

struct ReuseProbe;

impl Guest for ReuseProbe {
    fn handle(message: Message) -> Result<(), Error> {
        let served = SERVED.fetch_add(1, Ordering::Relaxed) + 1;
        let payload = String::from_utf8(message.data()).unwrap_or_default();
        match payload.split_whitespace().collect::<Vec<_>>().as_slice() {
            ["error"] => return Err(Error::Other(format!("error after {served}"))),
            ["trap"] => std::process::abort(),
            ["grow", mib] => {
                let mib: usize = mib.parse().map_err(|_| Error::Other("grow N".into()))?;
                std::mem::forget(vec![1u8; mib << 20]);
            }
            _ => {}
        }
        request_reply::reply(&message, Message::new(served.to_string().as_bytes()))
    }
}

export!(ReuseProbe);
