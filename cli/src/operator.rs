//! Operator keys on both sides: the key the control verbs sign with (`--operator-key`), and the operators a
//! host trusts (`--trusted-operator`, `--require-signed-reads`).

use anyhow::Context;
use clap::Args;
use lattice_core::control_auth::OperatorPolicy;
use lattice_core::keys::{KeyKind, PublicKey, SeedKey};

use crate::keys;

/// The key control verbs sign with.
#[derive(Debug, Clone, Default, Args)]
pub struct OperatorKeyArgs {
    /// Sign control requests and link records with this operator key: a seed (SO…), a seed file, or `dev`
    /// for this machine's development operator [the development operator, if this machine has one]
    #[arg(
        long,
        global = true,
        env = "LATTICE_OPERATOR_KEY",
        hide_env_values = true,
        value_name = "SEED|FILE|dev",
        help_heading = crate::connect::CONNECTION_HEADING
    )]
    pub operator_key: Option<String>,
}

impl OperatorKeyArgs {
    /// The signing key: the one given, else the development operator when it exists, else none.
    pub fn key(&self) -> anyhow::Result<Option<SeedKey>> {
        self.key_or(None)
    }

    /// The signing key: the one given, else `fallback` (a context's), else the development operator when it
    /// exists, else none.
    pub fn key_or(&self, fallback: Option<&str>) -> anyhow::Result<Option<SeedKey>> {
        let given = self.operator_key.as_deref().or(fallback);
        let Some(text) = given.map(str::trim).filter(|t| !t.is_empty()) else {
            return keys::existing_dev_operator();
        };
        if text == "dev" {
            return keys::dev_operator().map(Some);
        }
        keys::seed_or_file(text, KeyKind::Operator).context("--operator-key").map(Some)
    }
}

/// Which operators a host trusts with changes.
#[derive(Debug, Clone, Default, Args)]
pub struct TrustArgs {
    /// Accept mutating control requests and link records only when signed by this operator: its public key
    /// (O…), or `dev` for this machine's development operator (see `lattice keys dev --kind operator`).
    /// Repeatable; also comma-separated in LATTICE_TRUSTED_OPERATORS. Without any, nothing is checked
    #[arg(long = "trusted-operator", value_name = "KEY|dev", env = "LATTICE_TRUSTED_OPERATORS", value_delimiter = ',')]
    pub trusted_operators: Vec<String>,
    /// Also require a trusted operator's signature on read-only requests (ping, inventory, auction)
    #[arg(long, env = "LATTICE_REQUIRE_SIGNED_READS", value_parser = clap::builder::BoolishValueParser::new())]
    pub require_signed_reads: bool,
    /// Also trust the development operator (set by `lattice up`, not a flag).
    #[arg(skip)]
    pub trust_dev: bool,
}

impl TrustArgs {
    /// The policy of these flags, falling back to the host file's `trusted_operators` and
    /// `require_signed_reads` when flags and environment give none. Resolves `dev` (creating the development
    /// operator on first use).
    pub fn to_policy(&self, file_trusted: &[String], file_signed_reads: bool) -> anyhow::Result<OperatorPolicy> {
        let texts = if self.trusted_operators.is_empty() { file_trusted } else { &self.trusted_operators };
        let dev = self.trust_dev.then_some("dev");
        let mut trusted = Vec::with_capacity(texts.len() + 1);
        for text in texts.iter().map(|t| t.trim()).chain(dev).filter(|t| !t.is_empty()) {
            let key = if text == "dev" { keys::dev_operator()?.public_key() } else { parse_operator(text)? };
            if !trusted.contains(&key) {
                trusted.push(key);
            }
        }
        let require_signed_reads = self.require_signed_reads || file_signed_reads;
        if require_signed_reads && trusted.is_empty() {
            anyhow::bail!("--require-signed-reads needs at least one --trusted-operator");
        }
        Ok(OperatorPolicy { trusted, require_signed_reads })
    }
}

/// Parses an operator public key given to a host; a seed's text is never repeated in the error.
fn parse_operator(text: &str) -> anyhow::Result<PublicKey> {
    let shown = if text.starts_with('S') { "(a seed)" } else { text };
    PublicKey::parse_as(text, KeyKind::Operator)
        .with_context(|| format!("--trusted-operator `{shown}` is not an operator public key"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn trusted_operators_parse_fall_back_to_the_file_and_hide_seeds() {
        let operator = SeedKey::generate(KeyKind::Operator).unwrap();
        let public = operator.public_key().to_string();
        let args = TrustArgs { trusted_operators: vec![public.clone(), format!(" {public} ")], ..TrustArgs::default() };
        let policy = args.to_policy(&[], false).unwrap();
        assert_eq!(policy.trusted, [operator.public_key()]);
        let from_file = TrustArgs::default().to_policy(std::slice::from_ref(&public), true).unwrap();
        assert_eq!(from_file.trusted, [operator.public_key()]);
        assert!(from_file.require_signed_reads);

        let seed = operator.to_seed_string();
        let error = format!(
            "{:#}",
            TrustArgs { trusted_operators: vec![seed.clone()], ..TrustArgs::default() }
                .to_policy(&[], false)
                .unwrap_err()
        );
        assert!(!error.contains(&seed), "{error}");
        let issuer = SeedKey::generate(KeyKind::Issuer).unwrap().public_key().to_string();
        let error = format!(
            "{:#}",
            TrustArgs { trusted_operators: vec![issuer], ..TrustArgs::default() }.to_policy(&[], false).unwrap_err()
        );
        assert!(error.contains("expected an operator key"), "{error}");
        let error = TrustArgs { require_signed_reads: true, ..TrustArgs::default() }.to_policy(&[], false).unwrap_err();
        assert!(error.to_string().contains("needs at least one --trusted-operator"), "{error}");
    }

    #[test]
    fn operator_key_accepts_a_seed_and_refuses_other_kinds_without_echoing() {
        let operator = SeedKey::generate(KeyKind::Operator).unwrap();
        let args = OperatorKeyArgs { operator_key: Some(operator.to_seed_string()) };
        assert_eq!(args.key().unwrap().unwrap().public_key(), operator.public_key());
        let issuer_seed = SeedKey::generate(KeyKind::Issuer).unwrap().to_seed_string();
        let error = format!("{:#}", OperatorKeyArgs { operator_key: Some(issuer_seed.clone()) }.key().unwrap_err());
        assert!(error.contains("expected an operator key"), "{error}");
        assert!(!error.contains(&issuer_seed), "{error}");
    }
}
