//! Test actor: replies with a payload of the size its message asks for (decimal bytes; default 8 MiB).

// A wasm32-wasip2 component only: empty on other targets, so `cargo build --workspace` builds on the host.
#![cfg(target_family = "wasm")]

wit_bindgen::generate!({
    path: "../../../../wit",
    world: "lattice:actor/actor",
    generate_all,
});

use exports::wasi::messaging::incoming_handler::Guest;
use wasi::messaging::request_reply;
use wasi::messaging::types::{Error, Message};

struct HugeReply;

impl Guest for HugeReply {
    fn handle(message: Message) -> Result<(), Error> {
        let size =
            std::str::from_utf8(&message.data()).ok().and_then(|s| s.trim().parse::<usize>().ok()).unwrap_or(8 << 20);
        request_reply::reply(&message, Message::new(&vec![b'x'; size]))
    }
}

export!(HugeReply);
