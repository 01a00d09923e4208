//! Sizes (`64MiB`) and durations (`1.5s`) as written in manifests, host files and flags: arbitrary, number-shaped
//! and mutated text.

use lattice_core::units::{parse_bytes, parse_duration};
use proptest::prelude::*;

use crate::{config, mutated_text, within_bound};

const SEEDS: [&str; 8] = ["64MiB", "1.5s", "250ms", "2GiB", "10", "1m30s", "0.25KiB", "18446744073709551615B"];

fn parse(text: &str) -> Result<(), TestCaseError> {
    within_bound(text.len(), || {
        let _ = parse_bytes(text);
        let _ = parse_duration(text);
    })
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn arbitrary_text_is_a_unit_or_refused(text in "(?s).{0,40}") {
        parse(&text)?;
    }

    #[test]
    fn number_shaped_text_is_a_unit_or_refused(text in r"[-+ ]?[0-9]{0,30}(\.[0-9]{0,30})?(e[0-9]{1,4})? ?(B|KiB|MiB|GiB|TiB|kB|MB|GB|ns|us|ms|s|m|h|d)?") {
        parse(&text)?;
    }

    #[test]
    fn mutated_units_are_units_or_refused(text in prop::sample::select(SEEDS.to_vec()).prop_flat_map(mutated_text)) {
        parse(&text)?;
    }
}
