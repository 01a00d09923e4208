//! The wasmtime engine: one per process, with the pooling allocator and an epoch ticker on its own OS thread.

use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How the engine is sized. Every number is explicit so a host's footprint is predictable.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// How many actor instances may be alive at once across the whole host (pool slots).
    pub max_instances: u32,
    /// The largest linear memory any actor may have; per-actor caps are at most this.
    pub max_memory_bytes: usize,
    /// The largest wasm stack an invocation may use before it traps.
    pub max_wasm_stack: usize,
    /// How often the epoch advances: the granularity of CPU deadlines and cooperative yields.
    pub epoch_tick: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            max_instances: 1000,
            max_memory_bytes: 256 << 20,
            max_wasm_stack: 512 << 10,
            epoch_tick: Duration::from_millis(10),
        }
    }
}

/// Why the engine could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// A setting is out of range.
    #[error("invalid engine config: {0}")]
    Invalid(&'static str),
    /// wasmtime refused the configuration (for example, the pooling allocator could not reserve its memory).
    #[error("cannot create the wasmtime engine with the pooling allocator")]
    Create(#[source] wasmtime::Error),
    /// The epoch ticker thread could not be started.
    #[error("cannot start the epoch ticker thread")]
    Ticker(#[source] std::io::Error),
}

/// Dirty bytes per memory reset in place when an instance is freed; beyond this, pages are decommitted.
const KEEP_RESIDENT_BYTES: usize = 2 << 20;
/// Decommits (memory beyond the resident part, stacks) are batched, so one flush serves several instances.
const DECOMMIT_BATCH: usize = 16;

/// wasip2 Rust components hold several core instances and tables (main module plus shims).
const CORE_INSTANCES_PER_COMPONENT: u32 = 4;

impl EngineConfig {
    /// Builds the engine. Fails loudly rather than falling back to an unlimited allocator.
    pub fn build(&self) -> Result<(Engine, EpochTicker), EngineError> {
        if self.max_instances == 0 {
            return Err(EngineError::Invalid("max_instances must be at least 1"));
        }
        if self.max_memory_bytes < (1 << 16) {
            return Err(EngineError::Invalid("max_memory_bytes must be at least one wasm page"));
        }
        if self.epoch_tick.is_zero() {
            return Err(EngineError::Invalid("epoch_tick must be positive"));
        }
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(self.max_instances)
            .total_core_instances(self.max_instances * CORE_INSTANCES_PER_COMPONENT)
            .total_memories(self.max_instances)
            .total_tables(self.max_instances * CORE_INSTANCES_PER_COMPONENT)
            .total_stacks(self.max_instances)
            .max_memories_per_component(2)
            .max_tables_per_component(CORE_INSTANCES_PER_COMPONENT * 2)
            .max_core_instances_per_component(CORE_INSTANCES_PER_COMPONENT * 4)
            .max_memory_size(self.max_memory_bytes)
            .table_elements(20_000)
            // Reset a finished instance's dirty pages in place (found with the PAGEMAP_SCAN ioctl where the
            // kernel has it) instead of madvise: no page faults on the next use and, above all, no TLB
            // shootdowns across the host's threads for every instance.
            .pagemap_scan(wasmtime::Enabled::Auto)
            .linear_memory_keep_resident(KEEP_RESIDENT_BYTES)
            .table_keep_resident(KEEP_RESIDENT_BYTES / 16)
            .decommit_batch_size(DECOMMIT_BATCH);

        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(true)
            .max_wasm_stack(self.max_wasm_stack)
            // The async stack must hold the wasm stack plus host frames.
            .async_stack_size(self.max_wasm_stack + (1 << 20))
            .memory_init_cow(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config).map_err(EngineError::Create)?;
        let ticker = EpochTicker::start(engine.clone(), self.epoch_tick)?;
        Ok((engine, ticker))
    }
}

/// Advances the engine's epoch on a dedicated OS thread (never on the async runtime, which a spinning guest
/// could starve). Stops when dropped.
#[derive(Debug)]
pub struct EpochTicker {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    fn start(engine: Engine, tick: Duration) -> Result<Self, EngineError> {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("lattice-epoch".into())
            .spawn(move || {
                // `recv_timeout` doubles as the sleep and as the stop signal (a send, or the sender dropping).
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(tick) {
                    engine.increment_epoch();
                }
            })
            .map_err(EngineError::Ticker)?;
        Ok(Self { stop: Some(stop), thread: Some(thread) })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
