//! Writes the actor's initialised heap: 12 MiB of deterministic pseudo-random bytes (incompressible, so the
//! component really is that large and every page of the data segment is distinct).

use std::path::PathBuf;

const HEAP_BYTES: usize = 12 << 20;

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo")).join("heap.bin");
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut heap = Vec::with_capacity(HEAP_BYTES);
    while heap.len() < HEAP_BYTES {
        // xorshift64*
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        heap.extend_from_slice(&state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    std::fs::write(out, heap).expect("writing the heap image");
    println!("cargo:rerun-if-changed=build.rs");
}
