//! Sizes and durations as people write them in manifests: `64MiB`, `512KiB`, `1.5s`, `500ms`.
//!
//! Both take a decimal number (integer or with a fraction: `1.5GiB`), optionally followed by spaces, then a
//! unit. The result must be exact: `1.5B` is not a whole number of bytes and is refused rather than rounded.
//!
//! ```
//! use std::time::Duration;
//! use lattice_core::units::{parse_bytes, parse_duration};
//!
//! assert_eq!(parse_bytes("64MiB"), Ok(64 * 1024 * 1024));
//! assert_eq!(parse_bytes("2kB"), Ok(2000));
//! assert_eq!(parse_bytes("4096"), Ok(4096));
//! assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
//! assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
//! ```

use std::time::Duration;

/// Size units [`parse_bytes`] accepts, and how many bytes each is.
pub const SIZE_UNITS: &[(&str, u64)] = &[
    ("B", 1),
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
    ("kB", 1_000),
    ("KB", 1_000),
    ("MB", 1_000_000),
    ("GB", 1_000_000_000),
];

/// Duration units [`parse_duration`] accepts, and how many nanoseconds each is.
pub const DURATION_UNITS: &[(&str, u64)] =
    &[("ms", 1_000_000), ("s", 1_000_000_000), ("m", 60_000_000_000), ("h", 3_600_000_000_000)];

/// Why a size or a duration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UnitError {
    /// The text does not start with a non-negative decimal number (`12`, `1.5`).
    #[error("`{0}` does not start with a number")]
    Number(String),
    /// A duration without a unit: `500` could mean anything.
    #[error("`{0}` has no unit (expected one of {units})", units = unit_list(DURATION_UNITS))]
    MissingUnit(String),
    /// The unit is not one of the accepted ones.
    #[error("unknown unit `{unit}` in `{text}` (expected one of {expected})")]
    Unit {
        /// The whole text.
        text: String,
        /// The unit as written.
        unit: String,
        /// The accepted units, comma-separated.
        expected: String,
    },
    /// The value is not a whole number of the smallest unit (bytes, nanoseconds).
    #[error("`{text}` is not a whole number of {smallest}")]
    Fraction {
        /// The whole text.
        text: String,
        /// `bytes` or `nanoseconds`.
        smallest: &'static str,
    },
    /// The value does not fit 64 bits.
    #[error("`{0}` is too large")]
    Overflow(String),
}

fn unit_list(units: &[(&str, u64)]) -> String {
    units.iter().map(|(unit, _)| *unit).collect::<Vec<_>>().join(", ")
}

/// Splits `text` into its number and unit, and returns the number times the unit's multiplier, exactly.
fn scaled(
    text: &str,
    units: &[(&str, u64)],
    default_unit: Option<u64>,
    smallest: &'static str,
) -> Result<u128, UnitError> {
    let trimmed = text.trim();
    let split = trimmed.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let unit = unit.trim_start();
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    // `12`, `1.5`; not `.5`, `1.`, `1.2.3` or ``.
    if !digits(whole) || (number.contains('.') && !digits(fraction)) {
        return Err(UnitError::Number(text.to_owned()));
    }
    let multiplier = match (unit, default_unit) {
        ("", Some(multiplier)) => multiplier,
        ("", None) => return Err(UnitError::MissingUnit(text.to_owned())),
        (unit, _) => match units.iter().find(|(name, _)| *name == unit) {
            Some((_, multiplier)) => *multiplier,
            None => {
                return Err(UnitError::Unit {
                    text: text.to_owned(),
                    unit: unit.to_owned(),
                    expected: unit_list(units),
                });
            }
        },
    };
    let overflow = || UnitError::Overflow(text.to_owned());
    // 38 digits always fit u128; anything longer overflows u64 anyway once scaled.
    if whole.len() > 38 || fraction.len() > 30 {
        return Err(overflow());
    }
    let whole: u128 = whole.parse().map_err(|_| overflow())?;
    let mut value = whole.checked_mul(u128::from(multiplier)).ok_or_else(overflow)?;
    if !fraction.is_empty() {
        let numerator: u128 = fraction.parse().map_err(|_| overflow())?;
        let denominator = 10u128.pow(fraction.len() as u32);
        let part = numerator.checked_mul(u128::from(multiplier)).ok_or_else(overflow)?;
        if part % denominator != 0 {
            return Err(UnitError::Fraction { text: text.to_owned(), smallest });
        }
        value = value.checked_add(part / denominator).ok_or_else(overflow)?;
    }
    Ok(value)
}

/// Parses a size: a number of bytes (`4096`, `4096B`), binary units `KiB`, `MiB`, `GiB` (powers of 1024) or
/// decimal units `kB` (also `KB`), `MB`, `GB` (powers of 1000). Fractions are allowed when the result is a
/// whole number of bytes (`1.5KiB` is 1536).
pub fn parse_bytes(text: &str) -> Result<u64, UnitError> {
    let bytes = scaled(text, SIZE_UNITS, Some(1), "bytes")?;
    u64::try_from(bytes).map_err(|_| UnitError::Overflow(text.to_owned()))
}

/// Parses a duration: a number and a unit among `ms`, `s`, `m` (minutes), `h`; fractions allowed (`1.5s`).
/// A bare number is refused: the unit is required.
pub fn parse_duration(text: &str) -> Result<Duration, UnitError> {
    let nanos = scaled(text, DURATION_UNITS, None, "nanoseconds")?;
    let seconds = u64::try_from(nanos / 1_000_000_000).map_err(|_| UnitError::Overflow(text.to_owned()))?;
    // The remainder is below 10^9, so it fits u32.
    let subsec = u32::try_from(nanos % 1_000_000_000).map_err(|_| UnitError::Overflow(text.to_owned()))?;
    Ok(Duration::new(seconds, subsec))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_in_every_unit() {
        let table: &[(&str, u64)] = &[
            ("0", 0),
            ("4096", 4096),
            ("4096B", 4096),
            ("512KiB", 512 * 1024),
            ("64MiB", 64 << 20),
            ("64 MiB", 64 << 20),
            (" 1GiB ", 1 << 30),
            ("1.5KiB", 1536),
            ("0.5MiB", 512 * 1024),
            ("2kB", 2000),
            ("2KB", 2000),
            ("3MB", 3_000_000),
            ("1.25GB", 1_250_000_000),
            ("18446744073709551615", u64::MAX),
        ];
        for (text, bytes) in table {
            assert_eq!(parse_bytes(text), Ok(*bytes), "{text:?}");
        }
    }

    #[test]
    fn bad_sizes_say_why() {
        assert!(matches!(parse_bytes(""), Err(UnitError::Number(_))));
        assert!(matches!(parse_bytes("MiB"), Err(UnitError::Number(_))));
        assert!(matches!(parse_bytes("-1MiB"), Err(UnitError::Number(_))));
        assert!(matches!(parse_bytes(".5MiB"), Err(UnitError::Number(_))));
        assert!(matches!(parse_bytes("1.MiB"), Err(UnitError::Number(_))));
        assert!(matches!(parse_bytes("1.2.3MiB"), Err(UnitError::Number(_))));
        assert!(matches!(parse_bytes("1.5B"), Err(UnitError::Fraction { smallest: "bytes", .. })));
        assert!(matches!(parse_bytes("18446744073709551616"), Err(UnitError::Overflow(_))));
        assert!(matches!(parse_bytes("99999999999GiB"), Err(UnitError::Overflow(_))));
        assert!(matches!(parse_bytes(&"9".repeat(60)), Err(UnitError::Overflow(_))));
        let error = parse_bytes("64Mb").expect_err("lower-case b");
        assert!(matches!(&error, UnitError::Unit { unit, .. } if unit == "Mb"), "{error:?}");
        assert_eq!(error.to_string(), "unknown unit `Mb` in `64Mb` (expected one of B, KiB, MiB, GiB, kB, KB, MB, GB)");
    }

    #[test]
    fn durations_in_every_unit() {
        let table: &[(&str, Duration)] = &[
            ("500ms", Duration::from_millis(500)),
            ("0ms", Duration::ZERO),
            ("1s", Duration::from_secs(1)),
            ("1.5s", Duration::from_millis(1500)),
            ("0.25ms", Duration::from_micros(250)),
            ("2m", Duration::from_secs(120)),
            ("1.5h", Duration::from_secs(5400)),
            ("30 s", Duration::from_secs(30)),
        ];
        for (text, duration) in table {
            assert_eq!(parse_duration(text), Ok(*duration), "{text:?}");
        }
    }

    #[test]
    fn bad_durations_say_why() {
        assert!(matches!(parse_duration("500"), Err(UnitError::MissingUnit(_))));
        assert_eq!(
            parse_duration("500").expect_err("no unit").to_string(),
            "`500` has no unit (expected one of ms, s, m, h)"
        );
        assert!(matches!(parse_duration("5d"), Err(UnitError::Unit { .. })));
        assert!(matches!(parse_duration("5 min"), Err(UnitError::Unit { .. })));
        assert!(matches!(parse_duration("s"), Err(UnitError::Number(_))));
        assert!(matches!(parse_duration("0.0000000001s"), Err(UnitError::Fraction { .. })));
        assert!(matches!(parse_duration("99999999999999999999h"), Err(UnitError::Overflow(_))));
    }
}
