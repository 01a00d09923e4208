//! `wasi:logging` for actors: each line goes to the host's tracing with the actor's id, and is kept (bounded)
//! in the invocation's outcome so `lattice run` can print what the actor logged.
//!
//! **Bounds.** A context longer than [`MAX_LOG_CONTEXT_BYTES`] and a message longer than [`MAX_LOG_LINE_BYTES`]
//! are cut (with a `…[N bytes cut]` marker) before they are logged or kept; an invocation keeps at most
//! [`MAX_LOG_LINES`] lines and [`MAX_LOG_BYTES`] bytes of them, and counts the rest in `logs_dropped`.

use crate::bindings::wasi::logging::logging::{self, Level};
use crate::runtime::{LogLine, LogSource};
use crate::state::InvocationState;

/// The tracing target of everything actors log, so subscribers can route or silence it.
pub const ACTOR_LOG_TARGET: &str = "lattice::actor";
/// Lines kept per invocation; later lines are counted, not stored.
pub(crate) const MAX_LOG_LINES: usize = 1000;
/// Bytes kept (and logged) per log message; the rest is cut, with a marker saying how much.
pub const MAX_LOG_LINE_BYTES: usize = 4096;
/// Bytes kept (and logged) per log context; the rest is cut, with a marker.
pub const MAX_LOG_CONTEXT_BYTES: usize = 256;
/// Bytes of log lines (context and message) kept per invocation; later lines are counted, not stored.
pub const MAX_LOG_BYTES: usize = 256 << 10;

/// Cuts `text` to at most `max` bytes (on a character boundary) and marks the cut.
fn truncate(text: &mut String, max: usize) {
    if text.len() <= max {
        return;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let cut = text.len() - end;
    text.truncate(end);
    text.push_str(&format!("…[{cut} bytes cut]"));
    // The guest's string may have been huge: keep only what is kept.
    text.shrink_to_fit();
}

impl InvocationState {
    pub(crate) fn push_log(
        &mut self,
        source: LogSource,
        level: tracing::Level,
        mut context: String,
        mut message: String,
    ) {
        truncate(&mut context, MAX_LOG_CONTEXT_BYTES);
        truncate(&mut message, MAX_LOG_LINE_BYTES);
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
        let bytes = context.len() + message.len();
        if self.logs.len() < MAX_LOG_LINES && self.log_bytes + bytes <= MAX_LOG_BYTES {
            self.log_bytes += bytes;
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
