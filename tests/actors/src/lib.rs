//! Paths of the actor components built from this workspace's sources (wasm32-wasip2, profile `guest`).
//!
//! Example actors live in `examples/`; actors that misbehave on purpose live in `tests/actors/guests/`. The
//! build script compiles them all with a nested cargo; depend on this crate (usually as a dev-dependency) and
//! read the components from the constants:
//!
//! ```
//! let bytes = std::fs::read(lattice_test_actors::KV_COUNTER).unwrap();
//! assert_eq!(&bytes[..4], b"\0asm");
//! ```

include!(concat!(env!("OUT_DIR"), "/actors.rs"));
