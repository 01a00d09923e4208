//! Test actor: recurses without bound. The host must trap it on stack overflow.

// A wasm32-wasip2 component only: empty on other targets, so `cargo build --workspace` builds on the host.
#![cfg(target_family = "wasm")]

wit_bindgen::generate!({
    path: "../../../../wit",
    world: "lattice:actor/actor",
    generate_all,
});

use exports::wasi::messaging::incoming_handler::Guest;
use wasi::messaging::types::{Error, Message};

struct Recurse;

#[inline(never)]
#[allow(unconditional_recursion)] // the point of this actor
fn descend(depth: u64) -> u64 {
    // A frame with a local the optimiser cannot drop, and work after the call, so no tail call.
    let frame = std::hint::black_box([depth; 8]);
    descend(depth + 1).wrapping_add(frame[7])
}

impl Guest for Recurse {
    fn handle(_message: Message) -> Result<(), Error> {
        std::hint::black_box(descend(0));
        Ok(())
    }
}

export!(Recurse);
