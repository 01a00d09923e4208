//! Dead letters: messages delivered at least once that failed every allowed delivery.
//!
//! When the handler fails (error value, trap, limit, timeout) on a message's `max_deliver`-th delivery, the
//! runtime hands the message to the [`DeadLetters`] sink set with
//! [`Runtime::set_dead_letters`](crate::Runtime::set_dead_letters) and, only once the sink has stored it,
//! tells the backend never to deliver it again. A sink that fails leaves the message to be delivered again
//! later, so a message is never lost between its stream and the dead-letter store. The lattice host's sink
//! keeps dead letters in a JetStream stream (`lattice.<l>.dlq.<actor>`) and publishes `message.dead`.

use lattice_provider_sdk::async_trait;

/// A message that failed its last allowed delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The actor that could not handle it.
    pub actor: String,
    /// The actor's link it arrived through.
    pub link: String,
    /// The subject it was published on.
    pub subject: String,
    /// Its id (`lattice-msg-id`), stable across deliveries.
    pub id: String,
    /// How many times it was delivered.
    pub attempts: u64,
    /// Why the last delivery failed.
    pub reason: String,
    /// The payload.
    pub data: Vec<u8>,
    /// Its content type, if any.
    pub content_type: Option<String>,
    /// The sender's metadata (without the delivery's own `lattice-msg-id` and `lattice-delivery`).
    pub metadata: Vec<(String, String)>,
}

/// Stores dead letters.
#[async_trait]
pub trait DeadLetters: Send + Sync + 'static {
    /// Stores `letter`; Ok only once it is safe (the original is then dropped from its stream).
    async fn dead_letter(&self, letter: DeadLetter) -> Result<(), String>;
}
