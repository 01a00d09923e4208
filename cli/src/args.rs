//! Argument types shared by several verbs.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use lattice_host::{ActorLimits, KeyValueQuota};

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum Output {
    /// For people.
    #[default]
    Text,
    /// JSON for machines: one pretty-printed document per command, one compact document per line for streams
    /// (events); errors as {"error": {"code", "message"}}
    Json,
}

/// Format of the log lines on stderr (`lattice host --log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One line per event, for people (colours only on a terminal, never with NO_COLOR)
    #[default]
    Text,
    /// One JSON object per line, for log shippers
    Json,
}

/// Parses `key=value` (labels, constraints, provider config); the key must not be empty.
pub fn parse_label(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("`{s}` is not key=value"))
}

/// A message payload given inline or read from a file.
#[derive(Debug, Clone, Args)]
pub struct PayloadArgs {
    /// The payload (or use --file)
    #[arg(conflicts_with = "file")]
    pub payload: Option<String>,
    /// Read the payload from a file (- for stdin)
    #[arg(long)]
    pub file: Option<PathBuf>,
}

impl PayloadArgs {
    /// The payload's bytes (empty when neither is given).
    pub async fn read(&self) -> anyhow::Result<Vec<u8>> {
        use anyhow::Context;
        Ok(match (&self.payload, &self.file) {
            (Some(p), _) => p.clone().into_bytes(),
            (None, Some(f)) if f.as_os_str() == "-" => {
                let mut buf = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf).context("reading stdin")?;
                buf
            }
            (None, Some(f)) => lattice_host::files::read_file(f, lattice_host::files::MAX_COMPONENT_BYTES)?,
            (None, None) => Vec::new(),
        })
    }
}

/// Limits an actor runs under (defaults in brackets).
#[derive(Debug, Clone, Args)]
pub struct LimitArgs {
    /// Memory cap per instance, e.g. 64MiB [64MiB]
    #[arg(long, value_parser = parse_bytes, value_name = "SIZE")]
    pub memory: Option<usize>,
    /// CPU time one invocation may use, e.g. 500ms [1s]
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub cpu_time: Option<Duration>,
    /// Wall-clock timeout of one invocation [10s]
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub timeout: Option<Duration>,
    /// Instances that may run at once [64]
    #[arg(long, value_name = "N")]
    pub max_concurrency: Option<u32>,
    /// Largest reply accepted, e.g. 1MiB [1MiB]
    #[arg(long, value_parser = parse_bytes, value_name = "SIZE")]
    pub max_reply: Option<usize>,
    /// Let one instance serve up to N invocations in a row instead of a fresh instance for each [1]. For
    /// actors you trust: state in the instance's memory carries over between invocations. An instance that
    /// traps, hits a limit or returns an error is discarded; every limit still applies to every invocation
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub instance_reuse: Option<u32>,
}

impl LimitArgs {
    /// The defaults with every given flag applied.
    pub fn to_limits(&self) -> ActorLimits {
        let mut limits = ActorLimits::default();
        if let Some(v) = self.memory {
            limits.memory_bytes = v;
        }
        if let Some(v) = self.cpu_time {
            limits.cpu_time = v;
        }
        if let Some(v) = self.timeout {
            limits.timeout = v;
        }
        if let Some(v) = self.max_concurrency {
            limits.max_concurrency = v;
        }
        if let Some(v) = self.max_reply {
            limits.max_reply_bytes = v;
        }
        if let Some(v) = self.instance_reuse {
            limits.instance_reuse = v;
        }
        limits
    }
}

/// Where compiled components are cached.
#[derive(Debug, Clone, Args)]
pub struct CacheArgs {
    /// Directory of the compiled-component cache [the user cache dir, e.g. ~/.cache/lattice/compiled]
    #[arg(long, env = "LATTICE_CACHE_DIR", value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Compile every time; read and write no cache
    #[arg(long, conflicts_with = "cache_dir")]
    pub no_cache: bool,
}

impl CacheArgs {
    /// The cache directory to use, if any.
    pub fn dir(&self) -> Option<PathBuf> {
        if self.no_cache {
            return None;
        }
        self.cache_dir.clone().or_else(crate::dirs::compiled_cache_dir)
    }
}

/// Per-bucket quotas of the built-in in-memory key-value store (and of `provider start --kind inmemory`).
#[derive(Debug, Clone, Args)]
pub struct KvQuotaArgs {
    /// Bytes (keys plus values) one in-memory key-value bucket may hold; writes past it fail [64MiB]
    #[arg(long, env = "LATTICE_KV_MAX_BYTES", value_parser = parse_bytes, value_name = "SIZE")]
    pub kv_max_bytes: Option<usize>,
    /// Keys one in-memory key-value bucket may hold; writes past it fail [100000]
    #[arg(long, env = "LATTICE_KV_MAX_KEYS", value_name = "N")]
    pub kv_max_keys: Option<u64>,
}

impl KvQuotaArgs {
    /// The quota: flags (or environment) first, then `file_bytes`/`file_keys` (the host config), then defaults.
    pub fn quota(&self, file_bytes: Option<&str>, file_keys: Option<u64>) -> Result<KeyValueQuota, String> {
        let mut quota = KeyValueQuota::default();
        match (self.kv_max_bytes, file_bytes) {
            (Some(bytes), _) => quota.max_bytes = bytes as u64,
            (None, Some(text)) => {
                quota.max_bytes =
                    parse_bytes(text).map_err(|e| format!("invalid kv_max_bytes in host config: {e}"))? as u64
            }
            (None, None) => {}
        }
        if let Some(keys) = self.kv_max_keys.or(file_keys) {
            quota.max_keys = keys;
        }
        if quota.max_bytes == 0 || quota.max_keys == 0 {
            return Err("the in-memory key-value quotas (--kv-max-bytes, --kv-max-keys) must be positive".into());
        }
        Ok(quota)
    }
}

/// Parses a size the way `lattice.toml` does ([`lattice_core::units::parse_bytes`]): `65536`, binary units
/// `64KiB`, `64MiB`, `1GiB` (powers of 1024) or decimal units `64kB`, `64MB`, `1GB` (powers of 1000: `MB` is
/// 10^6 bytes, `MiB` is 2^20).
pub fn parse_bytes(s: &str) -> Result<usize, String> {
    let bytes = lattice_core::units::parse_bytes(s).map_err(|e| e.to_string())?;
    usize::try_from(bytes).map_err(|_| format!("`{s}` is too large"))
}

#[cfg(test)]
mod tests {
    use super::parse_bytes;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_bytes("65536"), Ok(65536));
        assert_eq!(parse_bytes("64MiB"), Ok(64 << 20));
        assert_eq!(parse_bytes("2KiB"), Ok(2048));
        assert_eq!(parse_bytes("64MB"), Ok(64_000_000));
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("5 parsecs").is_err());
    }
}
