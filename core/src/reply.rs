//! Where an answer may be sent: the one check every host (and the provider SDK) applies to a reply subject
//! before publishing to it.
//!
//! Whoever sends a request picks its reply subject, and the answer is published with the answerer's NATS
//! permissions, not the sender's. Published to `$JS.API.STREAM.DELETE.KV_lattice_<l>`, an answer deletes the
//! lattice's state; published under `$KV.lattice_<l>.links.`, it becomes a link record. So a reply subject is
//! accepted only if it is an inbox:
//!
//! - a literal subject (no `*` or `>`, no empty token, no whitespace or control character) of at most
//!   [`MAX_REPLY_SUBJECT`] bytes;
//! - under `_INBOX.` (what NATS clients use by default, and where every custom inbox prefix a lattice client
//!   accepts lies, e.g. `_INBOX.alice` from `lattice nats-config`), with at least one token after it;
//! - never in a reserved namespace ([`crate::reserved`]: `lattice.>`, `$JS.>`, `$KV.>`, `$O.>`, `$SYS.>`…).
//!
//! ```
//! use lattice_core::reply::check;
//!
//! assert!(check("_INBOX.k3x9.1").is_ok());
//! assert!(check("_INBOX.alice.k3x9").is_ok());
//! assert!(check("$JS.API.STREAM.DELETE.KV_lattice_default").is_err());
//! assert!(check("orders.reply").is_err());
//! assert!(check("_INBOX.*").is_err());
//! ```

use crate::reserved::{self, RESERVED};

/// The prefix of NATS clients' default inboxes.
pub const INBOX_PREFIX: &str = "_INBOX";

/// The longest reply subject accepted, in bytes (async-nats' inboxes are about 30).
pub const MAX_REPLY_SUBJECT: usize = 256;

/// How much of a refused subject an error message repeats.
const SHOWN: usize = 80;

/// Why a reply subject was refused. The subject it carries is sanitised (control characters escaped, cut to
/// 80 characters), so it can be logged and published as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplyRefused {
    /// Longer than [`MAX_REPLY_SUBJECT`].
    #[error("reply subject `{subject}…` is refused: {len} bytes, more than {MAX_REPLY_SUBJECT}")]
    TooLong {
        /// The start of the subject.
        subject: String,
        /// Its length in bytes.
        len: usize,
    },
    /// Not one literal subject: an empty token, a wildcard, whitespace or a control character.
    #[error("reply subject `{subject}` is refused: not a literal subject (empty token, wildcard or control character)")]
    Malformed {
        /// The subject.
        subject: String,
    },
    /// In a reserved namespace.
    #[error("reply subject `{subject}` is refused: it is in the reserved namespace `{namespace}`")]
    Reserved {
        /// The subject.
        subject: String,
        /// The namespace (`$JS.>`…).
        namespace: &'static str,
    },
    /// A literal subject, but no inbox.
    #[error("reply subject `{subject}` is refused: replies go only to inboxes (`{INBOX_PREFIX}.>`)")]
    NotInbox {
        /// The subject.
        subject: String,
    },
}

/// Checks `subject` before an answer is published to it: `Ok` only for an inbox under `_INBOX.` or under
/// outside every reserved namespace. Cost: one pass
/// over the subject's bytes and a comparison with each reserved namespace.
pub fn check(subject: &str) -> Result<(), ReplyRefused> {
    if subject.len() > MAX_REPLY_SUBJECT {
        return Err(ReplyRefused::TooLong { subject: sanitise(subject), len: subject.len() });
    }
    let literal = !subject.is_empty()
        && subject.split('.').all(|token| !token.is_empty())
        && !subject.chars().any(|c| c == '*' || c == '>' || c.is_whitespace() || c.is_control());
    if !literal {
        return Err(ReplyRefused::Malformed { subject: sanitise(subject) });
    }
    let inbox_namespace = reserved::INBOX;
    if let Some(namespace) = RESERVED.iter().find(|n| **n != inbox_namespace && reserved::overlaps(subject, n)) {
        return Err(ReplyRefused::Reserved { subject: sanitise(subject), namespace });
    }
    if subject.strip_prefix(INBOX_PREFIX).is_some_and(|rest| rest.starts_with('.')) {
        return Ok(());
    }
    Err(ReplyRefused::NotInbox { subject: sanitise(subject) })
}

/// `text` fit for a log line or an event: control characters escaped, at most 80 characters.
pub fn sanitise(text: &str) -> String {
    text.chars().take(SHOWN).flat_map(char::escape_default).collect()
}

/// Rate-limits the warnings about refused reply subjects (anyone can send many): at most one per second, with
/// the count of those not logged in between. The caller passes the time, so this stays free of IO.
#[derive(Debug, Default)]
pub struct Warnings {
    last: Option<std::time::Instant>,
    suppressed: u64,
}

impl Warnings {
    /// `Some(refusals not logged since the last warning)` when a warning may be logged at `now`; `None` (and
    /// counted) otherwise.
    pub fn may_warn(&mut self, now: std::time::Instant) -> Option<u64> {
        if self.last.is_some_and(|last| now.saturating_duration_since(last) < std::time::Duration::from_secs(1)) {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_are_limited_to_one_a_second() {
        let start = std::time::Instant::now();
        let mut warnings = Warnings::default();
        assert_eq!(warnings.may_warn(start), Some(0));
        for ms in [1, 500, 999] {
            assert_eq!(warnings.may_warn(start + std::time::Duration::from_millis(ms)), None);
        }
        assert_eq!(warnings.may_warn(start + std::time::Duration::from_millis(1000)), Some(3));
    }

    #[test]
    fn inboxes_are_accepted() {
        for subject in ["_INBOX.a", "_INBOX.k3x9Zq.17", "_INBOX.inmemory.7", "_INBOX.a.b.c.d"] {
            assert_eq!(check(subject), Ok(()), "{subject}");
        }
    }

    #[test]
    fn everything_else_is_refused() {
        // (subject, the variant expected)
        let table: &[(&str, &str)] = &[
            ("$JS.API.STREAM.DELETE.KV_lattice_default", "reserved"),
            ("$JS.API.STREAM.DELETE.OBJ_lattice_default_artifacts", "reserved"),
            ("$KV.lattice_default.links.a.keyvalue.6b76", "reserved"),
            ("$O.lattice_default_artifacts.C.x", "reserved"),
            ("$SYS.REQ.SERVER.PING", "reserved"),
            ("$JSC.R.x", "reserved"),
            ("lattice.default.ctl.host.h.stop", "reserved"),
            ("orders.reply", "not-inbox"),
            ("_INBOX", "not-inbox"),
            ("_INBOXES.x", "not-inbox"),
            ("_inbox.x", "not-inbox"),
            ("_R_.alice.x1", "not-inbox"),
            ("", "malformed"),
            ("_INBOX.", "malformed"),
            ("_INBOX..x", "malformed"),
            ("_INBOX.*", "malformed"),
            ("_INBOX.>", "malformed"),
            ("_INBOX.a*b", "malformed"),
            ("_INBOX.a b", "malformed"),
            ("_INBOX.a\tb", "malformed"),
            ("_INBOX.a\r\nPUB x 1", "malformed"),
            ("_INBOX.a\0", "malformed"),
        ];
        for (subject, expected) in table {
            let refused = check(subject).expect_err(subject);
            let kind = match &refused {
                ReplyRefused::TooLong { .. } => "too-long",
                ReplyRefused::Malformed { .. } => "malformed",
                ReplyRefused::Reserved { .. } => "reserved",
                ReplyRefused::NotInbox { .. } => "not-inbox",
            };
            assert_eq!(kind, *expected, "{subject:?}: {refused}");
            let message = refused.to_string();
            assert!(!message.chars().any(char::is_control), "unsanitised: {message:?}");
            assert!(message.starts_with("reply subject `"), "{message}");
        }
    }

    #[test]
    fn long_subjects_are_refused_and_shown_cut() {
        let long = format!("_INBOX.{}", "a".repeat(MAX_REPLY_SUBJECT));
        let refused = check(&long).expect_err("too long");
        assert!(matches!(refused, ReplyRefused::TooLong { len, .. } if len == long.len()), "{refused:?}");
        assert!(refused.to_string().len() < 200, "{refused}");
        assert_eq!(check(&long[..MAX_REPLY_SUBJECT]), Ok(()));
    }

    #[test]
    fn every_reserved_lattice_subject_is_refused() {
        use crate::subject::{Name, Subjects};
        let s = Subjects::new(Name::new("x").expect("valid"));
        let host = Name::new("h").expect("valid");
        for subject in [
            format!("$JS.API.STREAM.DELETE.KV_{}", s.state_bucket()),
            format!("$JS.API.STREAM.DELETE.OBJ_{}", s.artifact_bucket()),
            format!("$JS.API.STREAM.DELETE.{}", s.events_stream()),
            format!("$KV.{}.{}", s.state_bucket(), s.link_key(&host, "messaging", "bus")),
            s.invoke(&host),
            s.ping(),
        ] {
            assert!(matches!(check(&subject), Err(ReplyRefused::Reserved { .. })), "{subject}");
        }
    }
}
