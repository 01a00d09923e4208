//! What one invocation's `Store` holds: WASI context, resource table, limits, links and the outcome so far.

use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::budget::Budget;
use crate::http::OutgoingHttp;
use crate::limits::Limiter;
use crate::links::LinkSet;
use crate::output::CapturedOutput;
use crate::runtime::{LogLine, Reply};

/// Store data of one invocation. Created fresh per invocation and dropped with the instance.
pub(crate) struct InvocationState {
    pub(crate) actor: Arc<str>,
    pub(crate) wasi: WasiCtx,
    pub(crate) http: WasiHttpCtx,
    /// Where outgoing HTTP requests may go (from `links`), and how many this invocation sent.
    pub(crate) outgoing: OutgoingHttp,
    pub(crate) table: ResourceTable,
    pub(crate) limiter: Limiter,
    pub(crate) links: Arc<LinkSet>,
    /// Epoch ticks of guest execution left before the CPU deadline.
    pub(crate) cpu_ticks_left: u64,
    pub(crate) cpu_exceeded: bool,
    pub(crate) max_reply_bytes: usize,
    pub(crate) reply: Option<Reply>,
    /// Set when the guest tried to reply with more than `max_reply_bytes`.
    pub(crate) reply_refused: Option<usize>,
    /// What the host holds for the guest (messaging resources, key-value buckets and compare-and-swap handles,
    /// and their bytes), against the per-invocation bounds: one budget for every interface.
    pub(crate) resources: Budget,
    pub(crate) logs: Vec<LogLine>,
    /// Bytes of `logs` (context and message), against the per-invocation bound.
    pub(crate) log_bytes: usize,
    pub(crate) logs_dropped: usize,
    pub(crate) stdout: CapturedOutput,
    pub(crate) stderr: CapturedOutput,
    /// The id of the message being handled, if it has one (see `IncomingMessage::message_id`).
    pub(crate) message_id: Option<String>,
    /// Durable sends so far that took an id derived from `message_id`.
    pub(crate) durable_sends: u32,
    /// The first name `store.open` refused in this invocation for want of a keyvalue link (at most
    /// [`lattice_core::link::MAX_NAME_LEN`] bytes: no link can have a longer name), for the warning and the
    /// failed invocation's error.
    pub(crate) unlinked_store: Option<String>,
}

impl WasiView for InvocationState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl WasiHttpView for InvocationState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { hooks: &mut self.outgoing, table: &mut self.table, ctx: &mut self.http }
    }
}
