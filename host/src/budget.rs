//! The one budget of what the host holds for a guest during one invocation, outside its linear memory:
//! resources alive (messages, request options, clients, key-value buckets, compare-and-swap handles) and the
//! bytes they and key-value results hold. Messaging (`messaging.rs`) and key-value (`keyvalue.rs`) both take
//! from it; past it a call returns its interface's error value, or traps with [`HostResourceLimit`] where the
//! interface has none.

/// Host resources (messages, request options, clients, key-value buckets and compare-and-swap handles) one
/// invocation may hold at once.
pub const MAX_RESOURCES: usize = 1024;

/// The least [`message_bytes_limit`] is, whatever the actor's `max_reply_bytes`.
pub const MIN_MESSAGE_BYTES: usize = 16 << 20;

/// Bytes one invocation may make the host hold for it at once (messages' data, metadata, topic and content
/// type; values held by compare-and-swap handles; and, while a call returns them, key-value results): four
/// times the actor's `max_reply_bytes`, at least [`MIN_MESSAGE_BYTES`] (so a reply too large to send is still
/// refused as [`InvokeError::ReplyTooLarge`](crate::InvokeError::ReplyTooLarge)).
pub fn message_bytes_limit(max_reply_bytes: usize) -> usize {
    max_reply_bytes.saturating_mul(4).max(MIN_MESSAGE_BYTES)
}

/// A per-invocation bound on host memory was exceeded by a call that cannot return an error value: the trap
/// that ends the invocation (reported as [`InvokeError::HostResources`](crate::InvokeError::HostResources)).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("host resource limit exceeded: at most {limit} {bound} per invocation")]
pub(crate) struct HostResourceLimit {
    /// What is bounded.
    pub(crate) bound: &'static str,
    /// The bound.
    pub(crate) limit: usize,
}

/// What the host holds for one invocation now (messaging and key-value resources, and their bytes), against
/// the bounds: one budget per invocation, whichever interface takes from it.
#[derive(Debug)]
pub(crate) struct Budget {
    alive: usize,
    bytes: usize,
    max_bytes: usize,
    /// Set when a bound was exceeded by a call that traps.
    pub(crate) exceeded: Option<HostResourceLimit>,
}

impl Budget {
    pub(crate) fn new(max_reply_bytes: usize) -> Self {
        Self { alive: 0, bytes: 0, max_bytes: message_bytes_limit(max_reply_bytes), exceeded: None }
    }

    /// Takes `count` more resources and `bytes` more bytes, or refuses (and takes nothing).
    pub(crate) fn take(&mut self, count: usize, bytes: usize) -> Result<(), HostResourceLimit> {
        if self.alive.saturating_add(count) > MAX_RESOURCES {
            return Err(HostResourceLimit { bound: "host resources alive", limit: MAX_RESOURCES });
        }
        self.fits(bytes)?;
        self.alive += count;
        self.bytes += bytes;
        Ok(())
    }

    /// Whether `bytes` more fit beside what is held, taking nothing (a result handed to the guest at once).
    pub(crate) fn fits(&self, bytes: usize) -> Result<(), HostResourceLimit> {
        if self.bytes.saturating_add(bytes) > self.max_bytes {
            return Err(HostResourceLimit { bound: "bytes held for the guest", limit: self.max_bytes });
        }
        Ok(())
    }

    /// Takes them without checking (the invocation's own message, which the transport already bounded).
    pub(crate) fn charge(&mut self, count: usize, bytes: usize) {
        self.alive = self.alive.saturating_add(count);
        self.bytes = self.bytes.saturating_add(bytes);
    }

    /// How many more resources may be taken.
    pub(crate) fn resources_left(&self) -> usize {
        MAX_RESOURCES.saturating_sub(self.alive)
    }

    pub(crate) fn release(&mut self, count: usize, bytes: usize) {
        self.alive = self.alive.saturating_sub(count);
        self.bytes = self.bytes.saturating_sub(bytes);
    }
}
