//! Test actor: sleeps for the number of milliseconds its message gives (default 1000), using no CPU meanwhile,
//! then replies `slept`. It holds an instance and a concurrency permit for that long: an actor at its cap.

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

struct Sleep;

impl Guest for Sleep {
    fn handle(message: Message) -> Result<(), Error> {
        let ms = std::str::from_utf8(&message.data()).ok().and_then(|s| s.trim().parse::<u64>().ok()).unwrap_or(1000);
        std::thread::sleep(std::time::Duration::from_millis(ms));
        request_reply::reply(&message, Message::new(b"slept"))
    }
}

export!(Sleep);
