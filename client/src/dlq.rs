//! Reading and replaying dead letters (`lattice dlq list`, `lattice dlq replay`).
//!
//! A host dead-letters a message an actor failed to handle on its last allowed delivery: it is stored in the
//! stream `lattice_<l>_dlq` under `lattice.<l>.dlq.<actor>`, with the original payload and metadata and
//! `Lattice-Dlq-*` headers (subject, reason, attempts, link, host). Replaying one publishes it again on its
//! subject with its original `lattice-msg-id` (so an idempotent handler still recognises it) and removes it from
//! the stream.

use async_nats::HeaderMap;
use async_nats::jetstream::{self, stream};
use lattice_core::subject::Name;
use lattice_core::wire::headers;
use serde::Serialize;

use crate::{ClientError, LatticeClient};

/// One dead letter, as `lattice dlq list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeadLetterRecord {
    /// Its sequence in the dead-letter stream (`lattice dlq replay <actor> --seq N`).
    pub seq: u64,
    /// The actor that could not handle it.
    pub actor: String,
    /// The subject it was published on.
    pub subject: String,
    /// Its `lattice-msg-id`.
    pub id: String,
    /// Deliveries before it was dead-lettered.
    pub attempts: u64,
    /// Why its last delivery failed.
    pub reason: String,
    /// The actor's link it came through.
    pub link: String,
    /// The host that dead-lettered it.
    pub host: String,
    /// When it was dead-lettered, unix milliseconds.
    pub time_ms: u64,
    /// The payload (lossy UTF-8).
    pub payload: String,
    /// The sender's metadata.
    pub metadata: Vec<(String, String)>,
}

/// Why `lattice dlq` failed.
fn storage(what: &str, error: impl std::fmt::Display) -> ClientError {
    ClientError::Nats { what: what.to_owned(), message: error.to_string() }
}

fn is_dlq_header(name: &str) -> bool {
    name.starts_with("Lattice-Dlq-")
        || name.eq_ignore_ascii_case(headers::NATS_MSG_ID)
        || name.eq_ignore_ascii_case(headers::MESSAGE_ID)
        || name.eq_ignore_ascii_case(headers::CONTENT_TYPE)
}

impl LatticeClient {
    /// The dead letters kept for `actor` (every actor's when `None`), oldest first.
    pub async fn dead_letters(&self, actor: Option<&Name>) -> Result<Vec<DeadLetterRecord>, ClientError> {
        Ok(self.read_letters(actor, None).await?.1.into_iter().map(|(record, _)| record).collect())
    }

    /// The dead-letter stream (if any) and `actor`'s letters in it with their stored messages: only sequence
    /// `only` when given (one read), else every one (one read per sequence; replayed letters leave gaps).
    async fn read_letters(
        &self,
        actor: Option<&Name>,
        only: Option<u64>,
    ) -> Result<(Option<stream::Stream>, Vec<(DeadLetterRecord, jetstream::message::StreamMessage)>), ClientError> {
        let js = jetstream::new(self.nats().clone());
        let Ok(mut stream) = js.get_stream(self.subjects().dlq_stream()).await else {
            return Ok((None, Vec::new()));
        };
        let sequences = match only {
            Some(seq) => seq..=seq,
            None => {
                let state =
                    stream.info().await.map_err(|e| storage("reading the dead-letter stream", e))?.state.clone();
                if state.messages == 0 {
                    return Ok((Some(stream), Vec::new()));
                }
                state.first_sequence..=state.last_sequence
            }
        };
        let wanted = actor.map(|a| self.subjects().dlq(a));
        let prefix = self.subjects().dlq_wildcard().trim_end_matches('>').to_owned();
        let mut out = Vec::new();
        for seq in sequences {
            let Ok(message) = stream.get_raw_message(seq).await else { continue };
            let subject = message.subject.to_string();
            if wanted.as_ref().is_some_and(|w| *w != subject) {
                continue;
            }
            let header = |name: &str| message.headers.get(name).map(|v| v.as_str().to_owned()).unwrap_or_default();
            let metadata = message
                .headers
                .iter()
                .filter(|(name, _)| !is_dlq_header(AsRef::<str>::as_ref(*name)))
                .flat_map(|(name, values)| values.iter().map(move |v| (name.to_string(), v.as_str().to_owned())))
                .collect();
            let time_ms = u64::try_from(message.time.unix_timestamp_nanos() / 1_000_000).unwrap_or_default();
            let record = DeadLetterRecord {
                seq,
                actor: subject.strip_prefix(&prefix).unwrap_or(&subject).to_owned(),
                subject: header(headers::DLQ_SUBJECT),
                id: header(headers::MESSAGE_ID),
                attempts: header(headers::DLQ_ATTEMPTS).parse().unwrap_or_default(),
                reason: header(headers::DLQ_REASON),
                link: header(headers::DLQ_LINK),
                host: header(headers::DLQ_HOST),
                time_ms,
                payload: String::from_utf8_lossy(&message.payload).into_owned(),
                metadata,
            };
            out.push((record, message));
        }
        Ok((Some(stream), out))
    }

    /// Publishes `actor`'s dead letters (only sequence `seq`, when given) again on their subjects, each with
    /// its original `lattice-msg-id`, and removes each from the dead-letter stream once its stream acked it.
    /// Returns the letters replayed.
    pub async fn replay_dead_letters(
        &self,
        actor: &Name,
        seq: Option<u64>,
    ) -> Result<Vec<DeadLetterRecord>, ClientError> {
        let (stream, letters) = self.read_letters(Some(actor), seq).await?;
        if let Some(seq) = seq
            && letters.is_empty()
        {
            return Err(ClientError::Remote(lattice_core::wire::WireError::new(
                lattice_core::wire::ErrorCode::NotFound,
                format!("no dead letter {seq} for actor `{actor}`"),
            )));
        }
        let Some(stream) = stream else { return Ok(Vec::new()) };
        let js = jetstream::new(self.nats().clone());
        let mut replayed = Vec::with_capacity(letters.len());
        for (letter, message) in letters {
            let mut map = HeaderMap::new();
            for (name, values) in message.headers.iter() {
                let name_text: &str = name.as_ref();
                if !is_dlq_header(name_text) || name_text == headers::CONTENT_TYPE {
                    for value in values {
                        map.append(name.clone(), value.clone());
                    }
                }
            }
            map.insert(headers::MESSAGE_ID, letter.id.as_str());
            // Not the original's dedup id: the stream would drop the replay as a duplicate of it.
            map.insert(headers::NATS_MSG_ID, format!("{}/replay/{}", letter.id, letter.seq).as_str());
            js.publish_with_headers(letter.subject.clone(), map, message.payload)
                .await
                .map_err(|e| storage(&format!("replaying dead letter {} to `{}`", letter.seq, letter.subject), e))?
                .await
                .map_err(|e| storage(&format!("replaying dead letter {} to `{}`", letter.seq, letter.subject), e))?;
            stream
                .delete_message(letter.seq)
                .await
                .map_err(|e| storage(&format!("removing replayed dead letter {}", letter.seq), e))?;
            replayed.push(letter);
        }
        Ok(replayed)
    }
}
