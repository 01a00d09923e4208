//! Host bindings for the `lattice:actor/actor` world, generated once for the whole workspace.
//!
//! Imports are async and trappable: each host function returns `wasmtime::Result<Result<T, E>>`, where the
//! outer error is a trap (host fault or exceeded limit) and the inner one the WIT error value the guest sees.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "lattice:actor/actor",
    imports: { default: async | trappable },
    exports: { default: async },
    with: {
        "wasi:keyvalue/store.bucket": crate::keyvalue::BucketHandle,
        "wasi:keyvalue/atomics.cas": crate::keyvalue::CasHandle,
        "wasi:messaging/types.client": crate::messaging::ClientHandle,
        "wasi:messaging/types.message": crate::messaging::Message,
        "wasi:messaging/request-reply.request-options": crate::messaging::RequestOptions,
    },
});
