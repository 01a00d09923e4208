//! The subject namespaces actors may never use: the one list every check in lattice applies.
//!
//! Actors' application messaging shares NATS with the lattice itself (unless the host puts it on its own
//! connection, see docs/security.md). Whatever the provider, a host refuses an actor's publish, request or
//! subscription on a subject in a reserved namespace:
//!
//! | namespace | what lives there |
//! |-----------|------------------|
//! | `lattice.>` | control verbs, invocations, events, remote providers |
//! | `$JS.>` | the JetStream API (streams, consumers: list, delete…) |
//! | `$JSC.>` | JetStream internal subjects |
//! | `$KV.>` | JetStream key-value puts (links, host records) |
//! | `$O.>` | JetStream object store (artifacts) |
//! | `$SYS.>` | the server's system account |
//! | `_INBOX.>` | other clients' replies |
//!
//! A reply goes to the reply subject of a message the actor (or the host) received: replies are checked with
//! [`crate::reply::check`], which allows only inboxes (a sender could otherwise pick
//! `$JS.API.STREAM.DELETE.…` as its reply subject and have the actor or the host send it).
//!
//! A subscription pattern (or an allow-list pattern) is refused when it could match any subject in a reserved
//! namespace: `>`, `*.>`, `lattice.*`, `*.default.ctl.>` all overlap `lattice.>`. NATS subjects are
//! case-sensitive: `Lattice.x` is not reserved.
//!
//! ```
//! use lattice_core::reserved::{check_publish, check_subscribe};
//!
//! assert!(check_publish("orders.new").is_ok());
//! assert!(check_publish("$JS.API.STREAM.NAMES").is_err());
//! assert!(check_subscribe("orders.>").is_ok());
//! assert!(check_subscribe("*.>").is_err());
//! ```

/// The reserved namespaces, as subscription patterns.
pub const RESERVED: &[&str] = &["lattice.>", "$JS.>", "$JSC.>", "$KV.>", "$O.>", "$SYS.>", INBOX];

/// Reply subjects of requests. Reserved, except as the reply subject of a received message.
pub const INBOX: &str = "_INBOX.>";

/// An actor's subject (or pattern) that falls in a reserved namespace.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{action} `{subject}` is refused: it is in the reserved namespace `{namespace}`")]
pub struct Reserved {
    /// What the subject was used for: `publish to`, `subscription to`.
    pub action: &'static str,
    /// The subject or pattern, as given.
    pub subject: String,
    /// The reserved namespace it overlaps (`$JS.>`…).
    pub namespace: &'static str,
}

/// Checks a subject an actor publishes or sends a request to.
pub fn check_publish(subject: &str) -> Result<(), Reserved> {
    check(subject, RESERVED, "publish to")
}

/// Checks a subscription pattern (wildcards allowed): refused when it could match any reserved subject.
pub fn check_subscribe(pattern: &str) -> Result<(), Reserved> {
    check(pattern, RESERVED, "subscription to")
}

/// The header-name prefix reserved for NATS and JetStream (`Nats-Msg-Id`, `Nats-Expected-Stream`,
/// `Nats-Rollup`…), compared case-insensitively.
pub const NATS_HEADERS: &str = "nats-";

/// A message header (a guest's metadata or content type, a CLI flag) that must not be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BadHeader {
    /// The name is empty.
    #[error("a header name is empty")]
    EmptyName,
    /// The name holds something other than printable ASCII, or `:`.
    #[error("header name `{name}` is refused: only printable ASCII without `:` is allowed")]
    Name {
        /// The name (control characters escaped, cut to 80 characters).
        name: String,
    },
    /// The value holds a control character (NUL, CR, LF…; a tab is allowed).
    #[error("header `{name}` is refused: its value holds a control character (NUL, CR, LF…)")]
    Value {
        /// The header's name (escaped and cut as above).
        name: String,
    },
    /// The name is in NATS's reserved `Nats-` namespace.
    #[error(
        "header `{name}` is refused: `Nats-` headers are reserved for NATS and JetStream (`Nats-Msg-Id`, \
         `Nats-Expected-Stream`, `Nats-Rollup`…)"
    )]
    Reserved {
        /// The name (escaped and cut as above).
        name: String,
    },
}

/// Checks a header the sender chose, name and value: a non-empty printable-ASCII name without `:`, outside
/// `Nats-…`, and a value without control characters. What passes is accepted by async-nats' fallible
/// constructors (`HeaderName::from_str`, `HeaderValue::from_str`).
///
/// ```
/// use lattice_core::reserved::{BadHeader, check_header};
///
/// assert_eq!(check_header("order-id", "42"), Ok(()));
/// assert!(matches!(check_header("NATS-Msg-Id", "x"), Err(BadHeader::Reserved { .. })));
/// assert!(matches!(check_header("a", "1\r\nNats-Rollup: all"), Err(BadHeader::Value { .. })));
/// assert_eq!(check_header("", "x"), Err(BadHeader::EmptyName));
/// ```
pub fn check_header(name: &str, value: &str) -> Result<(), BadHeader> {
    if name.is_empty() {
        return Err(BadHeader::EmptyName);
    }
    if name.chars().any(|c| !c.is_ascii_graphic() || c == ':') {
        return Err(BadHeader::Name { name: crate::reply::sanitise(name) });
    }
    if name.get(..NATS_HEADERS.len()).is_some_and(|start| start.eq_ignore_ascii_case(NATS_HEADERS)) {
        return Err(BadHeader::Reserved { name: name.to_owned() });
    }
    check_header_value(name, value)
}

/// Checks the value of a header whose name the lattice chose (`Lattice-Topic`, `Content-Type`…): no control
/// character but tab.
pub fn check_header_value(name: &str, value: &str) -> Result<(), BadHeader> {
    if value.chars().any(|c| c.is_control() && c != '\t') {
        return Err(BadHeader::Value { name: crate::reply::sanitise(name) });
    }
    Ok(())
}

/// Checks a messaging link's `subscribe=` and `publish=` patterns (`|`-separated), as a host resolving the link
/// does: lets a client refuse such a link before storing it.
pub fn check_link(spec: &crate::link::LinkSpec) -> Result<(), Reserved> {
    if spec.interface != crate::link::Interface::Messaging {
        return Ok(());
    }
    for key in ["subscribe", "publish"] {
        for pattern in spec.config.get(key).into_iter().flat_map(|patterns| patterns.split('|')) {
            check_subscribe(pattern)?;
        }
    }
    Ok(())
}

fn check(subject: &str, namespaces: &[&'static str], action: &'static str) -> Result<(), Reserved> {
    match namespaces.iter().find(|namespace| overlaps(subject, namespace)) {
        Some(namespace) => Err(Reserved { action, subject: subject.to_owned(), namespace }),
        None => Ok(()),
    }
}

/// Whether some concrete subject matches both patterns (NATS wildcards: `*` is exactly one token, `>` as the
/// last token is one or more tokens). A literal subject is a pattern without wildcards, so this is also "does
/// `a` match `b`". Tokens are compared case-sensitively, as NATS does.
///
/// ```
/// use lattice_core::reserved::overlaps;
///
/// assert!(overlaps("*.default.ctl.>", "lattice.>"));
/// assert!(!overlaps("*", "lattice.>")); // `lattice.>` needs at least two tokens
/// assert!(!overlaps("orders.*", "orders.a.b"));
/// ```
pub fn overlaps(a: &str, b: &str) -> bool {
    let mut a = a.split('.');
    let mut b = b.split('.');
    loop {
        match (a.next(), b.next()) {
            (None, None) => return true,
            // One ran out of tokens: `>` on the other side needs at least one more.
            (None, Some(_)) | (Some(_), None) => return false,
            // `>` matches the rest of the other side, which has at least this token.
            (Some(">"), Some(_)) | (Some(_), Some(">")) => return true,
            (Some(x), Some(y)) => {
                if x != "*" && y != "*" && x != y {
                    return false;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlap_follows_nats_wildcards() {
        // (a, b, overlap)
        let table = [
            ("a.b", "a.b", true),
            ("a.b", "a.c", false),
            ("a.b", "a", false),
            ("a", "a.b", false),
            ("a.*", "a.b", true),
            ("a.*", "a.b.c", false),
            ("a.>", "a", false),
            ("a.>", "a.b", true),
            ("a.>", "a.b.c", true),
            (">", "a", true),
            (">", "a.b.c", true),
            ("*", "a", true),
            ("*", "a.b", false),
            ("*", "a.>", false),
            ("*.*", "a.>", true),
            ("*.>", "a.>", true),
            ("*.b", "a.*", true),
            ("*.b", "a.c", false),
            ("a.*.c", "*.b.>", true),
            ("a.*.c", "*.b.d", false),
            ("a.b.>", "a.*.c", true),
            ("a.b.>", "a.*", false),
            ("A.b", "a.b", false),
        ];
        for (a, b, expected) in table {
            assert_eq!(overlaps(a, b), expected, "overlaps({a:?}, {b:?})");
            assert_eq!(overlaps(b, a), expected, "overlaps({b:?}, {a:?}) (symmetric)");
        }
    }

    #[test]
    fn reserved_subjects_are_refused_for_publish_and_subscribe() {
        // (subject or pattern, the namespace it must be refused for; None: allowed)
        let table: &[(&str, Option<&str>)] = &[
            ("orders.new", None),
            ("orders.>", None),
            ("orders.*", None),
            ("*.new", Some("lattice.>")),
            ("lattice", None),
            ("latticex.y", None),
            ("Lattice.default.ctl.ping", None),
            ("$js.API.STREAM.NAMES", None),
            ("JS.API.x", None),
            ("$JSX.y", None),
            ("_INBOX", None),
            ("_inbox.x", None),
            ("*", None),
            ("lattice.default.ctl.ping", Some("lattice.>")),
            ("lattice.x.ctl.host.h.stop", Some("lattice.>")),
            ("lattice.x.provider.p.keyvalue", Some("lattice.>")),
            ("lattice.*", Some("lattice.>")),
            ("lattice.>", Some("lattice.>")),
            ("*.default.ctl.>", Some("lattice.>")),
            ("*.*", Some("lattice.>")),
            ("*.>", Some("lattice.>")),
            (">", Some("lattice.>")),
            ("$JS.API.STREAM.NAMES", Some("$JS.>")),
            ("$JS.API.STREAM.DELETE.KV_lattice_x", Some("$JS.>")),
            ("$JS.API.>", Some("$JS.>")),
            ("$JS.*.*", Some("$JS.>")),
            ("$JSC.R.x", Some("$JSC.>")),
            ("$KV.lattice_x.links.foo", Some("$KV.>")),
            ("$KV.*.>", Some("$KV.>")),
            ("$O.lattice_x_artifacts.C.abc", Some("$O.>")),
            ("$SYS.REQ.SERVER.PING", Some("$SYS.>")),
            ("_INBOX.abc", Some("_INBOX.>")),
            ("_INBOX.*", Some("_INBOX.>")),
            ("_INBOX.>", Some("_INBOX.>")),
            ("*.abc.1", Some("lattice.>")),
        ];
        for (subject, namespace) in table {
            for (check, action) in
                [(check_publish as fn(&str) -> _, "publish to"), (check_subscribe, "subscription to")]
            {
                match (check(subject), namespace) {
                    (Ok(()), None) => {}
                    (Err(reserved), Some(namespace)) => {
                        assert_eq!(reserved.namespace, *namespace, "{subject}");
                        assert_eq!(reserved.action, action);
                        let message = reserved.to_string();
                        assert!(message.contains(subject) && message.contains(namespace), "{message}");
                    }
                    (result, _) => panic!("{action} {subject:?}: {result:?}, expected {namespace:?}"),
                }
            }
        }
    }

    #[test]
    fn headers_are_checked() {
        for (name, value) in [
            ("order-id", "42"),
            ("Content-Type", "text/plain; charset=utf-8"),
            ("a", "x\ty"),
            ("lattice-msg-id", "m1"),
            ("natsx", "1"),
        ] {
            assert_eq!(check_header(name, value), Ok(()), "{name}: {value}");
        }
        let table: &[(&str, &str, &str)] = &[
            ("", "x", "empty"),
            ("a b", "x", "name"),
            ("a:b", "x", "name"),
            ("a\0", "x", "name"),
            ("é", "x", "name"),
            ("Nats-Msg-Id", "x", "reserved"),
            ("nats-expected-stream", "x", "reserved"),
            ("NATS-ROLLUP", "all", "reserved"),
            ("a", "x\0", "value"),
            ("a", "x\r\ny", "value"),
            ("a", "x\ny", "value"),
            ("a", "\u{1b}[2J", "value"),
        ];
        for (name, value, expected) in table {
            let bad = check_header(name, value).expect_err(name);
            let kind = match &bad {
                BadHeader::EmptyName => "empty",
                BadHeader::Name { .. } => "name",
                BadHeader::Value { .. } => "value",
                BadHeader::Reserved { .. } => "reserved",
            };
            assert_eq!(kind, *expected, "{name:?}: {value:?}: {bad}");
            assert!(!bad.to_string().chars().any(char::is_control), "{bad:?}");
        }
    }

    #[test]
    fn links_with_reserved_patterns_are_refused() {
        let link = |s: &str| s.parse::<crate::link::LinkSpec>().expect("link");
        assert_eq!(check_link(&link("messaging:bus=nats,subscribe=orders.new|orders.*,publish=audit.>")), Ok(()));
        assert_eq!(check_link(&link("keyvalue:default=inmemory,subscribe=>")), Ok(()));
        let refused = check_link(&link("messaging:bus=nats,subscribe=orders.new|_INBOX.>")).expect_err("inbox");
        assert_eq!(refused.namespace, "_INBOX.>");
        let refused = check_link(&link("messaging:bus=nats,publish=orders.>|*.>")).expect_err("wildcard");
        assert_eq!((refused.subject.as_str(), refused.namespace), ("*.>", "lattice.>"));
    }

    #[test]
    fn the_reserved_list_covers_every_lattice_subject() {
        use crate::subject::{HostVerb, Name, Subjects};
        let s = Subjects::new(Name::new("x").expect("valid"));
        let host = Name::new("h").expect("valid");
        let mut subjects =
            vec![s.ping(), s.auction(), s.events_wildcard(), s.invoke(&host), s.host_verbs_wildcard(&host)];
        subjects.extend(HostVerb::ALL.map(|verb| s.host_verb(&host, verb)));
        subjects.push(s.provider(&host, "keyvalue"));
        subjects.push(format!("$KV.{}.{}", s.state_bucket(), s.link_key(&host, "messaging", "bus")));
        subjects.push(format!("$KV.{}.h", s.hosts_bucket()));
        subjects.push(format!("$O.{}.C.x", s.artifact_bucket()));
        subjects.push(format!("$JS.API.STREAM.DELETE.{}", s.events_stream()));
        for subject in subjects {
            assert!(check_publish(&subject).is_err(), "{subject}");
            assert!(check_subscribe(&subject).is_err(), "{subject}");
            assert!(crate::reply::check(&subject).is_err(), "{subject}");
        }
    }
}
