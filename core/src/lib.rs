//! lattice's protocol core.
//!
//! - [`link`]: link specifications (`(interface, name) -> (provider, config)`) and their parsing.
//!
//! **Invariant:** this crate does no IO and runs no async runtime.

pub mod link;
