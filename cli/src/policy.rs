//! Which actors a host runs: the signing policy flags shared by the verbs that run actors.

use anyhow::Context;
use clap::Args;
use lattice_core::claims::Policy;
use lattice_core::keys::{KeyKind, PublicKey};

use crate::keys;

/// Signing policy: actors must be signed by a trusted issuer unless --allow-unsigned is given.
#[derive(Debug, Clone, Default, Args)]
pub struct PolicyArgs {
    /// Run actors signed by this issuer: its public key (A…), or `dev` for this machine's development issuer
    /// (see `lattice keys dev`). Repeatable; also comma-separated in LATTICE_TRUSTED_ISSUERS
    #[arg(long = "trusted-issuer", value_name = "KEY|dev", env = "LATTICE_TRUSTED_ISSUERS", value_delimiter = ',')]
    pub trusted_issuers: Vec<String>,
    /// Also run unsigned actors, with no issuer, hash or capability check (development only; signed actors
    /// are still verified)
    #[arg(long)]
    pub allow_unsigned: bool,
}

impl PolicyArgs {
    /// The host policy these flags describe. Resolves `dev` to the development issuer (creating it on first
    /// use) and logs a warning when unsigned actors are allowed.
    pub fn to_policy(&self) -> anyhow::Result<Policy> {
        let mut trusted_issuers = Vec::with_capacity(self.trusted_issuers.len());
        for text in self.trusted_issuers.iter().map(|t| t.trim()).filter(|t| !t.is_empty()) {
            let key = if text == "dev" { keys::dev_issuer()?.public_key() } else { parse_issuer(text)? };
            if !trusted_issuers.contains(&key) {
                trusted_issuers.push(key);
            }
        }
        if self.allow_unsigned {
            tracing::warn!("running unsigned actors: development only");
        }
        Ok(Policy { trusted_issuers, allow_unsigned: self.allow_unsigned, ..Policy::default() })
    }
}

/// Parses an issuer public key given on the command line; a seed's text is never repeated in the error.
fn parse_issuer(text: &str) -> anyhow::Result<PublicKey> {
    let shown = if text.starts_with('S') { "(a seed)" } else { text };
    PublicKey::parse_as(text, KeyKind::Issuer)
        .with_context(|| format!("--trusted-issuer `{shown}` is not an issuer public key"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use lattice_core::keys::SeedKey;

    use super::*;

    #[test]
    fn keys_parse_deduplicate_and_errors_hide_seeds() {
        let issuer = SeedKey::generate(KeyKind::Issuer).unwrap();
        let args = PolicyArgs {
            trusted_issuers: vec![issuer.public_key().to_string(), format!(" {} ", issuer.public_key())],
            allow_unsigned: false,
        };
        let policy = args.to_policy().unwrap();
        assert_eq!(policy.trusted_issuers, [issuer.public_key()]);
        assert!(!policy.allow_unsigned);

        let seed = issuer.to_seed_string();
        let error = format!(
            "{:#}",
            PolicyArgs { trusted_issuers: vec![seed.clone()], ..PolicyArgs::default() }.to_policy().unwrap_err()
        );
        assert!(!error.contains(&seed), "{error}");
        assert!(error.contains("this is a seed"), "{error}");

        let actor = SeedKey::generate(KeyKind::Actor).unwrap().public_key().to_string();
        let error = format!(
            "{:#}",
            PolicyArgs { trusted_issuers: vec![actor], ..PolicyArgs::default() }.to_policy().unwrap_err()
        );
        assert!(error.contains("expected an issuer key"), "{error}");
    }
}
