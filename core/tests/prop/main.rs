//! Property tests at every boundary where `lattice-core` reads bytes from the network or a file: each decoder
//! is fed fully arbitrary input and mutations of valid encodings (truncation, byte flips, insertions,
//! deletions) and must return a value or an error, never panic, and allocate at most [`bound`] while it runs
//! (measured by the counting allocator below, per thread).
//!
//! Each `proptest!` block sets a small case count so the whole binary runs in seconds in a debug build; set
//! `PROPTEST_CASES` to run longer (`PROPTEST_CASES=100000 cargo test -p lattice-core --test prop`). A failure
//! prints the shrunk input: keep it as a named regression test next to the decoder it broke.
#![allow(unsafe_code)] // The counting global allocator: a thin wrapper around `System`.
#![allow(clippy::unwrap_used)]

mod claims;
mod control_auth;
mod http;
mod keys;
mod link;
mod manifest;
mod text;
mod units;
mod wire;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use proptest::prelude::*;
use proptest::test_runner::Config;

/// Counts the bytes allocated by the thread it runs on, while [`peak_during`] measures.
struct Counting;

thread_local! {
    /// Bytes allocated minus bytes freed since the measurement started (frees of older memory go negative).
    static LIVE: Cell<isize> = const { Cell::new(0) };
    /// The most `LIVE` reached.
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn note(delta: isize) {
    // `try_with`: the thread may be tearing its locals down.
    let _ = LIVE.try_with(|live| {
        let now = live.get().saturating_add(delta);
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

fn signed(size: usize) -> isize {
    isize::try_from(size).unwrap_or(isize::MAX)
}

// SAFETY: every call is passed to `System` unchanged; the wrapper only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        let pointer = unsafe { System.alloc(layout) };
        if !pointer.is_null() {
            note(signed(layout.size()));
        }
        pointer
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(pointer, layout) };
        note(-signed(layout.size()));
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        let moved = unsafe { System.realloc(pointer, layout, new_size) };
        if !moved.is_null() {
            note(signed(new_size) - signed(layout.size()));
        }
        moved
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `f` and returns what it returned and the most memory it held at once on this thread.
fn peak_during<R>(f: impl FnOnce() -> R) -> (R, usize) {
    LIVE.with(|live| live.set(0));
    PEAK.with(|peak| peak.set(0));
    let result = f();
    let peak = PEAK.with(Cell::get);
    (result, usize::try_from(peak).unwrap_or(0))
}

/// The most a decoder may allocate for `input_len` bytes of input: a multiple of the input, plus a fixed
/// allowance (serde preallocates at most 1 MiB per sequence a message nests, whatever length it claims).
fn bound(input_len: usize) -> usize {
    64 * input_len + (8 << 20)
}

/// Runs decoder `f` over `input_len` bytes of input and fails the case if it held more than [`bound`] at once.
fn within_bound<R>(input_len: usize, f: impl FnOnce() -> R) -> Result<R, TestCaseError> {
    let (result, peak) = peak_during(f);
    prop_assert!(peak <= bound(input_len), "{peak} bytes held decoding {input_len} bytes of input");
    Ok(result)
}

/// A `proptest!` configuration running `cases` cases, unless `PROPTEST_CASES` says otherwise, and writing no
/// regression files (found cases become named unit tests instead).
fn config(cases: u32) -> Config {
    let mut config = Config { failure_persistence: None, ..Config::default() };
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = cases;
    }
    config
}

/// One change to an input.
#[derive(Debug, Clone)]
enum Mutation {
    /// Cut it short at an index.
    Truncate(prop::sample::Index),
    /// Flip one bit of one byte.
    Flip(prop::sample::Index, u8),
    /// Insert bytes at an index.
    Insert(prop::sample::Index, Vec<u8>),
    /// Remove up to 8 bytes at an index.
    Delete(prop::sample::Index, usize),
    /// Set one byte to an interesting value (a length or type marker).
    Set(prop::sample::Index, u8),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let interesting = prop_oneof![
        Just(0u8),
        Just(0xff),
        Just(0x7f),
        Just(0x80),
        Just(0xc0),
        Just(0xdc),
        Just(0xdd),
        Just(0xde),
        Just(0xdf),
        Just(0xce),
        Just(0xcf),
        any::<u8>()
    ];
    prop_oneof![
        any::<prop::sample::Index>().prop_map(Mutation::Truncate),
        (any::<prop::sample::Index>(), 0u8..8).prop_map(|(at, bit)| Mutation::Flip(at, bit)),
        (any::<prop::sample::Index>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(at, bytes)| Mutation::Insert(at, bytes)),
        (any::<prop::sample::Index>(), 1usize..8).prop_map(|(at, n)| Mutation::Delete(at, n)),
        (any::<prop::sample::Index>(), interesting).prop_map(|(at, byte)| Mutation::Set(at, byte)),
    ]
}

/// `seed` with 1 to 4 mutations applied.
fn mutated(seed: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(mutation(), 1..5).prop_map(move |mutations| {
        let mut bytes = seed.clone();
        for mutation in mutations {
            apply(&mut bytes, mutation);
        }
        bytes
    })
}

fn apply(bytes: &mut Vec<u8>, mutation: Mutation) {
    let len = bytes.len();
    match mutation {
        Mutation::Truncate(at) => bytes.truncate(at.index(len + 1)),
        Mutation::Insert(at, inserted) => {
            let at = at.index(len + 1);
            bytes.splice(at..at, inserted);
        }
        Mutation::Flip(..) | Mutation::Delete(..) | Mutation::Set(..) if len == 0 => {}
        Mutation::Flip(at, bit) => bytes[at.index(len)] ^= 1 << bit,
        Mutation::Delete(at, n) => {
            let at = at.index(len);
            bytes.drain(at..(at + n).min(len));
        }
        Mutation::Set(at, byte) => bytes[at.index(len)] = byte,
    }
}

/// `seed` text mutated as bytes, read back lossily (what a file or header holding invalid UTF-8 becomes).
fn mutated_text(seed: &str) -> impl Strategy<Value = String> + use<> {
    mutated(seed.as_bytes().to_vec()).prop_map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
}

/// Fully arbitrary bytes, up to `max` long.
fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..max)
}

#[test]
fn the_bound_catches_an_unbounded_allocation() {
    let input = [0u8; 5];
    let (_, peak) = peak_during(|| vec![0u8; bound(input.len()) + 1]);
    assert!(peak > bound(input.len()), "the counting allocator sees allocations ({peak} bytes)");
}
