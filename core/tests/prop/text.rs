//! Names and subjects read from the network (a request's subject, names inside messages, a reply subject), URL
//! patterns (flags, host files) and error codes (an invocation reply's header): arbitrary and mutated text.

use lattice_core::allow::{AllowList, UrlPattern};
use lattice_core::reserved;
use lattice_core::subject::{Name, Subjects};
use lattice_core::wire::ErrorCode;
use proptest::prelude::*;

use crate::{config, mutated_text, within_bound};

const SUBJECTS: [&str; 4] = [
    "lattice.l.ctl.host.h1.actor.stop",
    "_INBOX.abc.1",
    "$JS.API.STREAM.DELETE.KV_lattice_l",
    "lattice.l.actor.a.invoke",
];
const PATTERNS: [&str; 4] = ["redis://10.0.0.5:6379", "redis://*.internal", "nats://[::1]:4222", "redis://h/*"];

fn check_subject(text: &str) -> Result<(), TestCaseError> {
    within_bound(text.len(), || {
        let _ = Name::new(text);
        let _ = ErrorCode::parse(text);
        let _ = (reserved::check_publish(text), reserved::check_subscribe(text), lattice_core::reply::check(text));
        let _ = reserved::overlaps(text, "lattice.>");
        let subjects = Subjects::new(Name::new("l").unwrap());
        let _ = subjects.parse_host_verb(&Name::new("h1").unwrap(), text);
    })
}

fn check_pattern(text: &str) -> Result<(), TestCaseError> {
    within_bound(text.len(), || {
        if let Ok(pattern) = text.parse::<UrlPattern>() {
            let _ = pattern.names_one_host();
            let mut list = AllowList::default();
            list.push(pattern);
            let _ = list.check(text);
            let _ = list.check("redis://10.0.0.5:6379/0");
        }
        let _ = AllowList::parse(PATTERNS).map(|list| list.check(text));
    })
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn arbitrary_subjects_are_judged(text in "(?s).{0,80}") {
        check_subject(&text)?;
    }

    #[test]
    fn subject_shaped_text_is_judged(text in r"[a-zA-Z0-9_$*>.-]{0,60}") {
        check_subject(&text)?;
    }

    #[test]
    fn mutated_subjects_are_judged(text in prop::sample::select(SUBJECTS.to_vec()).prop_flat_map(mutated_text)) {
        check_subject(&text)?;
    }

    #[test]
    fn arbitrary_url_patterns_parse_or_are_refused(text in "(?s).{0,80}") {
        check_pattern(&text)?;
    }

    #[test]
    fn mutated_url_patterns_parse_or_are_refused(text in prop::sample::select(PATTERNS.to_vec()).prop_flat_map(mutated_text)) {
        check_pattern(&text)?;
    }
}
