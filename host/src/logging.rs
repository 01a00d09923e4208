//! `wasi:logging` for actors: each line goes to the host's tracing with the actor's id, and is kept (bounded)
//! in the invocation's outcome so `lattice run` can print what the actor logged.

use crate::bindings::wasi::logging::logging::{self, Level};
use crate::runtime::{LogLine, LogSource};
use crate::state::InvocationState;

/// The tracing target of everything actors log, so subscribers can route or silence it.
pub const ACTOR_LOG_TARGET: &str = "lattice::actor";
/// Lines kept per invocation; later lines are counted, not stored.
pub(crate) const MAX_LOG_LINES: usize = 1000;
/// Bytes kept per log message.
const MAX_LINE_BYTES: usize = 4096;

impl InvocationState {
    pub(crate) fn push_log(&mut self, source: LogSource, level: tracing::Level, context: String, mut message: String) {
        if message.len() > MAX_LINE_BYTES {
            let mut end = MAX_LINE_BYTES;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
            message.push('…');
        }
        match level {
            tracing::Level::ERROR => {
                tracing::error!(target: ACTOR_LOG_TARGET, actor = %self.actor, %context, "{message}")
            }
            tracing::Level::WARN => {
                tracing::warn!(target: ACTOR_LOG_TARGET, actor = %self.actor, %context, "{message}")
            }
            tracing::Level::INFO => {
                tracing::info!(target: ACTOR_LOG_TARGET, actor = %self.actor, %context, "{message}")
            }
            tracing::Level::DEBUG => {
                tracing::debug!(target: ACTOR_LOG_TARGET, actor = %self.actor, %context, "{message}")
            }
            _ => tracing::trace!(target: ACTOR_LOG_TARGET, actor = %self.actor, %context, "{message}"),
        }
        if self.logs.len() < MAX_LOG_LINES {
            self.logs.push(LogLine { source, level, context, message });
        } else {
            self.logs_dropped += 1;
        }
    }
}

impl logging::Host for InvocationState {
    async fn log(&mut self, level: Level, context: String, message: String) -> wasmtime::Result<()> {
        let level = match level {
            Level::Trace => tracing::Level::TRACE,
            Level::Debug => tracing::Level::DEBUG,
            Level::Info => tracing::Level::INFO,
            Level::Warn => tracing::Level::WARN,
            Level::Error | Level::Critical => tracing::Level::ERROR,
        };
        self.push_log(LogSource::Logging, level, context, message);
        Ok(())
    }
}
