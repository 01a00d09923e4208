//! Workspace-level integration scenarios of the lattice: several hosts (each with its own runtime) joined
//! over a real `nats-server`, driven through `LatticeClient`. The scenarios live in `tests/it/`; this library
//! is empty and exists only because a package needs a library or binary target.
//!
//! Run them with `cargo test -p lattice-tests`.
