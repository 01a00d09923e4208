//! App manifests (`lattice.toml`, read from a file the user names): arbitrary text, and mutations of the
//! repository's own manifests, parsed and, when valid, resolved for every environment.

use lattice_core::manifest::Manifest;
use proptest::prelude::*;

use crate::{config, mutated_text, within_bound};

/// Manifests that parse: the repository's demo and an example app.
const MANIFESTS: [&str; 2] =
    [include_str!("../../../lattice.toml"), include_str!("../../../examples/orders/lattice.toml")];

/// Parses `text` and resolves every environment it declares (and none), within the memory bound.
fn parse_and_resolve(text: &str) -> Result<(), TestCaseError> {
    within_bound(text.len(), || {
        if let Ok(manifest) = Manifest::parse("lattice.toml", text) {
            let _ = manifest.resolve(None);
            for env in manifest.envs() {
                let _ = manifest.resolve(Some(env)).map(|resolved| resolved.spec());
            }
        }
    })
}

#[test]
fn the_seeds_are_valid_manifests() {
    for text in MANIFESTS {
        let manifest = Manifest::parse("lattice.toml", text).expect("a valid manifest");
        assert!(manifest.resolve(None).is_ok());
    }
}

proptest! {
    #![proptest_config(config(128))]

    #[test]
    fn arbitrary_text_parses_or_is_refused(text in "(?s).{0,400}") {
        parse_and_resolve(&text)?;
    }

    #[test]
    fn toml_shaped_text_parses_or_is_refused(
        text in r#"(\[{1,2}(app|actor|provider|env\.[a-z]{1,3}(\.actor\.[a-z]{1,3})?)\]{1,2}\n([a-z_]{1,12} = ("[a-z0-9:./=-]{0,12}"|[0-9]{1,20}|\{ "[a-z:]{1,12}" = "[a-z]{0,6}" \}|\[\])\n){0,5}){0,6}"#
    ) {
        parse_and_resolve(&text)?;
    }

    #[test]
    fn mutated_manifests_parse_or_are_refused(
        text in prop::sample::select(MANIFESTS.to_vec()).prop_flat_map(mutated_text)
    ) {
        parse_and_resolve(&text)?;
    }
}
