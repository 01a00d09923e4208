//! Per-actor limits and the store limiter that enforces memory and table caps.

use std::time::Duration;

/// Limits one actor runs under. Every invocation gets all of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActorLimits {
    /// Linear memory cap per instance (default 64 MiB; at most the host's cap).
    pub memory_bytes: usize,
    /// CPU time an invocation may spend running guest code, measured in epoch ticks (default 1 s).
    pub cpu_time: Duration,
    /// Wall-clock time for a whole invocation, host calls included (default 10 s).
    pub timeout: Duration,
    /// Instances of this actor that may run at once on this host (default 64).
    pub max_concurrency: u32,
    /// The largest reply payload an invocation may produce, and the largest payload it may send, request or
    /// reply with through a messaging provider (default 1 MiB).
    pub max_reply_bytes: usize,
    /// Table elements per table (default 20,000).
    pub table_elements: usize,
    /// How many invocations, one after another, one instance may serve (default 1: a fresh instance for every
    /// invocation). Above 1, an instance that finished an invocation cleanly is kept for the next one, so
    /// state in its memory carries over between invocations of this actor; one that trapped, hit a limit or
    /// returned an error is discarded. An operator's choice for an actor they trust (`--instance-reuse`),
    /// never the actor's: every other limit still applies to every invocation.
    pub instance_reuse: u32,
}

impl Default for ActorLimits {
    fn default() -> Self {
        Self {
            memory_bytes: 64 << 20,
            cpu_time: Duration::from_secs(1),
            timeout: Duration::from_secs(10),
            max_concurrency: 64,
            max_reply_bytes: 1 << 20,
            table_elements: 20_000,
            instance_reuse: 1,
        }
    }
}

/// Why a set of limits was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LimitsError {
    /// The memory cap is above what the host allows.
    #[error("memory limit of {requested} bytes exceeds the host's cap of {cap} bytes")]
    MemoryAboveHostCap {
        /// What the actor asked for.
        requested: usize,
        /// The host's cap.
        cap: usize,
    },
    /// A limit is zero where it must be positive.
    #[error("{0} must be positive")]
    Zero(&'static str),
}

impl ActorLimits {
    /// Checks the limits against the host's caps.
    pub fn validate(&self, host_memory_cap: usize) -> Result<(), LimitsError> {
        if self.memory_bytes > host_memory_cap {
            return Err(LimitsError::MemoryAboveHostCap { requested: self.memory_bytes, cap: host_memory_cap });
        }
        for (zero, what) in [
            (self.memory_bytes == 0, "memory limit"),
            (self.cpu_time.is_zero(), "cpu time limit"),
            (self.timeout.is_zero(), "timeout"),
            (self.max_concurrency == 0, "max concurrency"),
            (self.max_reply_bytes == 0, "reply size limit"),
            (self.instance_reuse == 0, "instance reuse"),
        ] {
            if zero {
                return Err(LimitsError::Zero(what));
            }
        }
        Ok(())
    }
}

/// Denies growth past the caps and remembers that it did, so the invocation reports "memory limit" rather
/// than whatever the guest did next (most guests abort on allocation failure).
#[derive(Debug)]
pub(crate) struct Limiter {
    memory_bytes: usize,
    table_elements: usize,
    pub(crate) memory_denied: Option<usize>,
}

impl Limiter {
    pub(crate) fn new(limits: &ActorLimits) -> Self {
        Self { memory_bytes: limits.memory_bytes, table_elements: limits.table_elements, memory_denied: None }
    }
}

/// The trap raised when a guest grows memory past its cap.
#[derive(Debug, thiserror::Error)]
#[error("memory limit exceeded: the actor asked for {desired} bytes, its cap is {cap} bytes")]
pub struct MemoryLimitExceeded {
    /// The size the guest asked for.
    pub desired: usize,
    /// The actor's cap.
    pub cap: usize,
}

impl wasmtime::ResourceLimiter for Limiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.memory_bytes {
            self.memory_denied = Some(desired);
            return Err(MemoryLimitExceeded { desired, cap: self.memory_bytes }.into());
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= self.table_elements)
    }

    fn instances(&self) -> usize {
        16
    }

    fn tables(&self) -> usize {
        16
    }

    fn memories(&self) -> usize {
        4
    }
}
