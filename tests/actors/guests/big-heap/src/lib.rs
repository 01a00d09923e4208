//! big-heap: kv-counter with a large initialised heap, for benchmarks of large components.
//!
//! Components built by interpreter toolchains (componentize-py, jco) carry a snapshot of an initialised heap of
//! 10 MB or more. This actor stands in for them with 12 MiB of data in its linear memory. Per message it does
//! what kv-counter does (increment the counter named by the payload in the `default` store, reply with the new
//! value), and like an interpreter it reads part of its heap (a word from each of 64 pages, at an offset that
//! moves with the counter) and dirties some fresh memory (a 64 KiB scratch buffer).

// A wasm32-wasip2 component only: empty on other targets, so `cargo build --workspace` builds on the host.
#![cfg(target_family = "wasm")]

wit_bindgen::generate!({
    path: "../../../../wit",
    world: "lattice:actor/actor",
    generate_all,
});

use exports::wasi::messaging::incoming_handler::Guest;
use wasi::keyvalue::{atomics, store};
use wasi::messaging::request_reply;
use wasi::messaging::types::{Error, Message};

/// The initialised heap (a data segment of the component's linear memory).
static HEAP: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/heap.bin"));

/// Pages of the heap read per message, one word from each.
const READ_PAGES: usize = 64;
const PAGE: usize = 4096;
const SCRATCH_BYTES: usize = 64 << 10;

struct BigHeap;

impl Guest for BigHeap {
    fn handle(message: Message) -> Result<(), Error> {
        let payload = message.data();
        let key = std::str::from_utf8(&payload).map(str::trim).ok().filter(|k| !k.is_empty()).unwrap_or("counter");
        let bucket = store::open("default").map_err(|e| Error::Other(format!("open `default`: {e:?}")))?;
        let value =
            atomics::increment(&bucket, key, 1).map_err(|e| Error::Other(format!("increment `{key}`: {e:?}")))?;
        let first = (value as usize).wrapping_mul(READ_PAGES) % (HEAP.len() / PAGE - READ_PAGES);
        let sum = (first..first + READ_PAGES).fold(0u64, |acc, page| acc.wrapping_add(u64::from(HEAP[page * PAGE])));
        let scratch = vec![sum as u8 | 1; SCRATCH_BYTES];
        // Keeps the reads and the writes from being optimised away; the reply is the counter, as kv-counter's.
        std::hint::black_box(&scratch);
        request_reply::reply(&message, Message::new(value.to_string().as_bytes()))
    }
}

export!(BigHeap);
