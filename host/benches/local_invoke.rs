//! Local invocation bar: lattice's `Actor::invoke` of kv-counter against the floor, bare wasmtime.
//!
//! Run: `cargo bench -p lattice-host --bench local_invoke` (`LATTICE_BENCH_QUICK=1` cuts iterations 10x for
//! smoke runs). Prints `BENCH <name> <value>` lines; values in microseconds, the ratio is lattice p50 over
//! floor p50 (target: at most 1.3).
//!
//! Both sides run the same component, `lattice_test_actors::KV_COUNTER`, per iteration in a fresh store and
//! instance: instantiate, deliver one message, the guest opens link `default`, increments a counter, logs a
//! line and replies with the value.
//!
//! - **floor**: bare wasmtime: an engine configured like lattice's (component model, epoch interruption,
//!   pooling allocator with the same sizes), one `ActorPre` made once, and a minimal host of the same world
//!   whose key-value is a `HashMap` behind a mutex shared across iterations. No limits, no timeout, no stdio
//!   capture, no logging.
//! - **lattice**: `RuntimeBuilder::new().build()`, `load` with `keyvalue:default=inmemory`, `invoke`.
//!
//! Then the same for `big-heap` (a 12.6 MB component with 12 MiB of initialised data, standing in for
//! interpreter builds), with a fresh instance per call and with `instance_reuse` 1000 on the lattice side, and,
//! when `LATTICE_BENCH_COMPONENT` names one, any other component of the actor world (see
//! `docs/performance.md`). `LATTICE_BENCH_ONLY=<label>` runs one case.
//!
//! Both run on one current-thread tokio runtime, warm up, then alternate rounds (floor, lattice, floor, ...)
//! so drift on a shared machine hits both alike. Per-iteration times are pooled across rounds for p50/p99.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use lattice_core::claims::Policy;
use lattice_host::{ActorConfig, ActorLimits, IncomingMessage, RuntimeBuilder};
use lattice_keyvalue_inmemory::InMemoryKeyValue;
use lattice_provider_sdk::KeyValue;
use wasmtime::component::{Component, HasSelf, Linker, Resource, ResourceTable};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

/// The allocator the `lattice` binary uses (both sides of this benchmark run on it).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod floor {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "lattice:actor/actor",
        imports: { default: async | trappable },
        exports: { default: async },
        with: {
            "wasi:keyvalue/store.bucket": super::FloorBucket,
            "wasi:keyvalue/atomics.cas": super::FloorCas,
            "wasi:messaging/types.client": super::FloorClient,
            "wasi:messaging/types.message": super::FloorMessage,
            "wasi:messaging/request-reply.request-options": super::FloorRequestOptions,
        },
    });
}

use floor::wasi::keyvalue::{atomics, batch, store};
use floor::wasi::logging::logging;
use floor::wasi::messaging::{producer, request_reply, types};

/// The payload (and so the counter key) of every invocation.
const KEY: &str = "bench";

// ---------------------------------------------------------------------------------------------------------
// The floor: bare wasmtime with a HashMap-backed host of the same world.
// ---------------------------------------------------------------------------------------------------------

/// An opened bucket (the floor has one store, linked as `default`).
pub struct FloorBucket;
/// A compare-and-swap handle (unused by kv-counter).
pub struct FloorCas;
/// A messaging client (never created).
pub enum FloorClient {}
/// A message.
pub struct FloorMessage {
    data: Vec<u8>,
}
/// Request options (unused by kv-counter).
pub struct FloorRequestOptions;

type Kv = Arc<Mutex<HashMap<String, Vec<u8>>>>;

struct FloorState {
    wasi: WasiCtx,
    table: ResourceTable,
    kv: Kv,
    reply: Option<Vec<u8>>,
}

impl WasiView for FloorState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

type KvResult<T> = wasmtime::Result<Result<T, store::Error>>;
type MsgResult<T> = wasmtime::Result<Result<T, types::Error>>;

fn unsupported() -> store::Error {
    store::Error::Other("not supported by the floor host".into())
}

fn unsupported_trap<T>() -> wasmtime::Result<T> {
    Err(wasmtime::Error::msg("not supported by the floor host"))
}

impl FloorState {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<u8>>> {
        self.kv.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl store::Host for FloorState {
    async fn open(&mut self, identifier: String) -> KvResult<Resource<FloorBucket>> {
        if identifier != "default" {
            return Ok(Err(store::Error::AccessDenied));
        }
        Ok(Ok(self.table.push(FloorBucket)?))
    }
}

impl store::HostBucket for FloorState {
    async fn get(&mut self, bucket: Resource<FloorBucket>, key: String) -> KvResult<Option<Vec<u8>>> {
        self.table.get(&bucket)?;
        Ok(Ok(self.map().get(&key).cloned()))
    }

    async fn set(&mut self, bucket: Resource<FloorBucket>, key: String, value: Vec<u8>) -> KvResult<()> {
        self.table.get(&bucket)?;
        self.map().insert(key, value);
        Ok(Ok(()))
    }

    async fn delete(&mut self, _: Resource<FloorBucket>, _: String) -> KvResult<()> {
        Ok(Err(unsupported()))
    }

    async fn exists(&mut self, _: Resource<FloorBucket>, _: String) -> KvResult<bool> {
        Ok(Err(unsupported()))
    }

    async fn list_keys(&mut self, _: Resource<FloorBucket>, _: Option<String>) -> KvResult<store::KeyResponse> {
        Ok(Err(unsupported()))
    }

    async fn drop(&mut self, bucket: Resource<FloorBucket>) -> wasmtime::Result<()> {
        self.table.delete(bucket)?;
        Ok(())
    }
}

impl atomics::Host for FloorState {
    async fn increment(&mut self, bucket: Resource<FloorBucket>, key: String, delta: i64) -> KvResult<i64> {
        self.table.get(&bucket)?;
        let mut map = self.map();
        // Decimal text, like lattice's providers.
        let current = match map.get(&key) {
            None => 0,
            Some(bytes) => match std::str::from_utf8(bytes).ok().and_then(|s| s.trim().parse::<i64>().ok()) {
                Some(n) => n,
                None => {
                    return Ok(Err(store::Error::Other(format!("`{key}` is not an integer"))));
                }
            },
        };
        let Some(next) = current.checked_add(delta) else {
            return Ok(Err(store::Error::Other(format!("`{key}` overflowed"))));
        };
        map.insert(key, next.to_string().into_bytes());
        Ok(Ok(next))
    }

    async fn swap(&mut self, _: Resource<FloorCas>, _: Vec<u8>) -> wasmtime::Result<Result<(), atomics::CasError>> {
        Ok(Err(atomics::CasError::StoreError(unsupported())))
    }
}

impl atomics::HostCas for FloorState {
    async fn new(&mut self, _: Resource<FloorBucket>, _: String) -> KvResult<Resource<FloorCas>> {
        Ok(Err(unsupported()))
    }

    async fn current(&mut self, _: Resource<FloorCas>) -> KvResult<Option<Vec<u8>>> {
        Ok(Err(unsupported()))
    }

    async fn drop(&mut self, cas: Resource<FloorCas>) -> wasmtime::Result<()> {
        self.table.delete(cas)?;
        Ok(())
    }
}

impl batch::Host for FloorState {
    async fn get_many(&mut self, _: Resource<FloorBucket>, _: Vec<String>) -> KvResult<Vec<Option<(String, Vec<u8>)>>> {
        Ok(Err(unsupported()))
    }

    async fn set_many(&mut self, _: Resource<FloorBucket>, _: Vec<(String, Vec<u8>)>) -> KvResult<()> {
        Ok(Err(unsupported()))
    }

    async fn delete_many(&mut self, _: Resource<FloorBucket>, _: Vec<String>) -> KvResult<()> {
        Ok(Err(unsupported()))
    }
}

impl types::Host for FloorState {}

impl types::HostClient for FloorState {
    async fn connect(&mut self, _: String) -> MsgResult<Resource<FloorClient>> {
        Ok(Err(types::Error::PermissionDenied("no messaging in the floor host".into())))
    }

    async fn disconnect(&mut self, client: Resource<FloorClient>) -> MsgResult<()> {
        match *self.table.get(&client)? {}
    }

    async fn drop(&mut self, client: Resource<FloorClient>) -> wasmtime::Result<()> {
        self.table.delete(client)?;
        Ok(())
    }
}

impl types::HostMessage for FloorState {
    async fn new(&mut self, data: Vec<u8>) -> wasmtime::Result<Resource<FloorMessage>> {
        Ok(self.table.push(FloorMessage { data })?)
    }

    async fn topic(&mut self, _: Resource<FloorMessage>) -> wasmtime::Result<Option<String>> {
        Ok(None)
    }

    async fn content_type(&mut self, _: Resource<FloorMessage>) -> wasmtime::Result<Option<String>> {
        Ok(None)
    }

    async fn set_content_type(&mut self, _: Resource<FloorMessage>, _: String) -> wasmtime::Result<()> {
        unsupported_trap()
    }

    async fn data(&mut self, msg: Resource<FloorMessage>) -> wasmtime::Result<Vec<u8>> {
        Ok(self.table.get(&msg)?.data.clone())
    }

    async fn set_data(&mut self, msg: Resource<FloorMessage>, data: Vec<u8>) -> wasmtime::Result<()> {
        self.table.get_mut(&msg)?.data = data;
        Ok(())
    }

    async fn metadata(&mut self, _: Resource<FloorMessage>) -> wasmtime::Result<Option<types::Metadata>> {
        Ok(None)
    }

    async fn add_metadata(&mut self, _: Resource<FloorMessage>, _: String, _: String) -> wasmtime::Result<()> {
        unsupported_trap()
    }

    async fn set_metadata(&mut self, _: Resource<FloorMessage>, _: types::Metadata) -> wasmtime::Result<()> {
        unsupported_trap()
    }

    async fn remove_metadata(&mut self, _: Resource<FloorMessage>, _: String) -> wasmtime::Result<()> {
        unsupported_trap()
    }

    async fn drop(&mut self, msg: Resource<FloorMessage>) -> wasmtime::Result<()> {
        self.table.delete(msg)?;
        Ok(())
    }
}

impl producer::Host for FloorState {
    async fn send(&mut self, client: Resource<FloorClient>, _: String, _: Resource<FloorMessage>) -> MsgResult<()> {
        match *self.table.get(&client)? {}
    }
}

impl request_reply::Host for FloorState {
    async fn request(
        &mut self,
        client: Resource<FloorClient>,
        _: String,
        _: Resource<FloorMessage>,
        _: Option<Resource<FloorRequestOptions>>,
    ) -> MsgResult<Vec<Resource<FloorMessage>>> {
        match *self.table.get(&client)? {}
    }

    async fn reply(&mut self, reply_to: Resource<FloorMessage>, message: Resource<FloorMessage>) -> MsgResult<()> {
        self.table.get(&reply_to)?;
        let message = self.table.delete(message)?;
        self.reply = Some(message.data);
        Ok(Ok(()))
    }
}

impl request_reply::HostRequestOptions for FloorState {
    async fn new(&mut self) -> wasmtime::Result<Resource<FloorRequestOptions>> {
        Ok(self.table.push(FloorRequestOptions)?)
    }

    async fn set_timeout_ms(&mut self, _: Resource<FloorRequestOptions>, _: u32) -> wasmtime::Result<()> {
        Ok(())
    }

    async fn set_expected_replies(&mut self, _: Resource<FloorRequestOptions>, _: u32) -> wasmtime::Result<()> {
        Ok(())
    }

    async fn drop(&mut self, opts: Resource<FloorRequestOptions>) -> wasmtime::Result<()> {
        self.table.delete(opts)?;
        Ok(())
    }
}

impl logging::Host for FloorState {
    async fn log(&mut self, _: logging::Level, _: String, _: String) -> wasmtime::Result<()> {
        Ok(())
    }
}

/// The engine as lattice configures it (host/src/engine.rs, default `EngineConfig`), minus the epoch ticker:
/// the floor sets a deadline no invocation reaches.
fn floor_engine() -> Engine {
    const MAX_INSTANCES: u32 = 1000;
    const CORE_PER_COMPONENT: u32 = 4;
    const MAX_WASM_STACK: usize = 512 << 10;
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(MAX_INSTANCES)
        .total_core_instances(MAX_INSTANCES * CORE_PER_COMPONENT)
        .total_memories(MAX_INSTANCES)
        .total_tables(MAX_INSTANCES * CORE_PER_COMPONENT)
        .total_stacks(MAX_INSTANCES)
        .max_memories_per_component(2)
        .max_tables_per_component(CORE_PER_COMPONENT * 2)
        .max_core_instances_per_component(CORE_PER_COMPONENT * 4)
        .max_memory_size(256 << 20)
        .table_elements(20_000)
        // The same slot reuse as lattice's engine (dirty pages reset in place): the floor gets the best
        // bare-wasmtime configuration, not a slower one.
        .pagemap_scan(wasmtime::Enabled::Auto)
        .linear_memory_keep_resident(2 << 20)
        .table_keep_resident((2 << 20) / 16)
        .decommit_batch_size(16);
    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .epoch_interruption(true)
        .max_wasm_stack(MAX_WASM_STACK)
        .async_stack_size(MAX_WASM_STACK + (1 << 20))
        .memory_init_cow(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&config).expect("floor engine")
}

struct Floor {
    engine: Engine,
    pre: floor::ActorPre<FloorState>,
    kv: Kv,
}

impl Floor {
    fn new(bytes: &[u8]) -> Self {
        let engine = floor_engine();
        let component = Component::new(&engine, bytes).expect("compile kv-counter");
        let mut linker = Linker::<FloorState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).expect("link wasi");
        floor::Actor::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s).expect("link the actor world");
        let pre = linker.instantiate_pre(&component).expect("instantiate_pre");
        let pre = floor::ActorPre::new(pre).expect("ActorPre");
        Self { engine, pre, kv: Kv::default() }
    }

    /// One invocation; returns the reply.
    async fn invoke(&self, payload: &[u8]) -> Vec<u8> {
        let state = FloorState {
            wasi: WasiCtxBuilder::new().build(),
            table: ResourceTable::new(),
            kv: self.kv.clone(),
            reply: None,
        };
        let mut store = Store::new(&self.engine, state);
        store.set_epoch_deadline(u64::MAX / 2);
        let actor = self.pre.instantiate_async(&mut store).await.expect("instantiate");
        let message = store.data_mut().table.push(FloorMessage { data: payload.to_vec() }).expect("push message");
        actor
            .wasi_messaging_incoming_handler()
            .call_handle(&mut store, message)
            .await
            .expect("no trap")
            .expect("handler succeeds");
        store.data_mut().reply.take().expect("a reply")
    }

    fn counter(&self) -> i64 {
        let map = self.kv.lock().unwrap_or_else(PoisonError::into_inner);
        parse(map.get(KEY).expect("the floor's counter exists"))
    }
}

// ---------------------------------------------------------------------------------------------------------
// Measurement
// ---------------------------------------------------------------------------------------------------------

fn parse(bytes: &[u8]) -> i64 {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| panic!("not a counter: {:?}", String::from_utf8_lossy(bytes)))
}

/// Quantile `q` (0..=1) of sorted durations, nearest rank.
fn quantile(sorted: &[Duration], q: f64) -> Duration {
    let rank = ((sorted.len() as f64) * q).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn main() {
    let quick = std::env::var("LATTICE_BENCH_QUICK").is_ok_and(|v| v == "1");
    let scale = if quick { 10 } else { 1 };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    rt.block_on(async {
        let small = Sizes { warmup: 2_000 / scale, rounds: 10, per_round: 2_000 / scale };
        compare("local_invoke", lattice_test_actors::KV_COUNTER, 1, small).await;
        // The large component: a fresh instance per call (what the pool's copy-on-write images make cheap),
        // then one instance kept for up to 1,000 calls (`--instance-reuse`).
        let large = Sizes { warmup: 200 / scale, rounds: 4, per_round: 500 / scale };
        compare("local_invoke_big_heap", lattice_test_actors::BIG_HEAP, 1, large).await;
        compare("local_invoke_big_heap_reuse", lattice_test_actors::BIG_HEAP, 1000, large).await;
        // Any other component of the same world, e.g. a componentize-py counter (see docs/performance.md).
        if let Ok(path) = std::env::var("LATTICE_BENCH_COMPONENT") {
            compare("local_invoke_component", &path, 1, large).await;
            compare("local_invoke_component_reuse", &path, 1000, large).await;
        }
    });
}

/// How many invocations each side runs.
#[derive(Clone, Copy)]
struct Sizes {
    warmup: usize,
    rounds: usize,
    per_round: usize,
}

/// Floor and lattice on the component at `path`, alternating rounds; prints `BENCH <label>_…` lines.
async fn compare(label: &str, path: &str, instance_reuse: u32, sizes: Sizes) {
    if std::env::var("LATTICE_BENCH_ONLY").is_ok_and(|only| only != label) {
        return;
    }
    let Sizes { warmup, rounds, per_round } = sizes;
    {
        let bytes = std::fs::read(path).expect("reading the component");
        let floor = Floor::new(&bytes);

        // Our own handle on lattice's in-memory store, to check the counter at the end. The components are
        // built unsigned; admission happens once at load and is not part of what this measures.
        let kv = InMemoryKeyValue::new();
        let runtime = RuntimeBuilder::new()
            .keyvalue_provider(lattice_host::INMEMORY_PROVIDER, Arc::new(kv.clone()))
            .policy(Policy { allow_unsigned: true, ..Policy::default() })
            .build()
            .expect("lattice runtime");
        let config = ActorConfig {
            links: vec!["keyvalue:default=inmemory".parse().expect("link spec")],
            limits: ActorLimits { instance_reuse, ..ActorLimits::default() },
        };
        let actor = runtime.load("actor", bytes, config).await.expect("load the actor");

        let mut floor_calls: i64 = 0;
        let mut lattice_calls: i64 = 0;
        let mut floor_times = Vec::with_capacity(rounds * per_round);
        let mut lattice_times = Vec::with_capacity(rounds * per_round);

        // Each invocation is timed alone; checking the reply is outside the timed part.
        macro_rules! floor_once {
            () => {{
                let started = Instant::now();
                let reply = floor.invoke(KEY.as_bytes()).await;
                let elapsed = started.elapsed();
                floor_calls += 1;
                assert_eq!(parse(&reply), floor_calls, "floor reply");
                elapsed
            }};
        }
        macro_rules! lattice_once {
            () => {{
                let started = Instant::now();
                let outcome = actor.invoke(IncomingMessage::new(KEY)).await;
                let elapsed = started.elapsed();
                lattice_calls += 1;
                let reply = outcome
                    .result
                    .unwrap_or_else(|e| panic!("lattice invocation failed: {e}"))
                    .expect("kv-counter replies");
                assert_eq!(parse(&reply.data), lattice_calls, "lattice reply");
                elapsed
            }};
        }

        for _ in 0..warmup {
            floor_once!();
        }
        for _ in 0..warmup {
            lattice_once!();
        }
        for round in 0..rounds {
            // Alternate which side goes first so neither always runs right after the other.
            let floor_first = round % 2 == 0;
            for side in 0..2 {
                if (side == 0) == floor_first {
                    for _ in 0..per_round {
                        floor_times.push(floor_once!());
                    }
                } else {
                    for _ in 0..per_round {
                        lattice_times.push(lattice_once!());
                    }
                }
            }
        }

        // Correctness: every invocation incremented its counter exactly once.
        assert_eq!(floor.counter(), floor_calls, "floor counter");
        let stored = kv.get("default", KEY).await.expect("lattice kv get").expect("lattice counter exists");
        assert_eq!(parse(&stored), lattice_calls, "lattice counter");

        floor_times.sort_unstable();
        lattice_times.sort_unstable();
        let floor_p50 = quantile(&floor_times, 0.5);
        let lattice_p50 = quantile(&lattice_times, 0.5);
        let floor_p99 = quantile(&floor_times, 0.99);
        let lattice_p99 = quantile(&lattice_times, 0.99);
        eprintln!(
            "{label}: {warmup} warm-up + {rounds} rounds x {per_round} iterations per side; \
             {floor_calls} floor and {lattice_calls} lattice invocations, counters checked"
        );
        println!("BENCH {label}_floor_p50_us {:.2}", micros(floor_p50));
        println!("BENCH {label}_lattice_p50_us {:.2}", micros(lattice_p50));
        println!("BENCH {label}_floor_p99_us {:.2}", micros(floor_p99));
        println!("BENCH {label}_lattice_p99_us {:.2}", micros(lattice_p99));
        println!("BENCH {label}_ratio {:.3}", lattice_p50.as_secs_f64() / floor_p50.as_secs_f64());
    }
}
