//! The one way plugin configs write a duration: a number and a unit, `"250ms"`, `"1s"`,
//! `"5m"`, `"1h"`, `"1d"`, or several such parts, largest first (`"1m30s"`, `"1h 30m"`).
//!
//! Config keys that used to take a bare number in their name's unit (`open_ms = 5000`,
//! `clock_skew_secs = 300`) keep working as serde aliases: [`ms`] and [`secs`] read a
//! string as above and a bare number in that unit.
//!
//! ```ignore
//! #[derive(serde::Deserialize)]
//! struct Config {
//!     #[serde(alias = "ttl_ms", with = "weir_plugin_sdk::duration::ms")]
//!     ttl: std::time::Duration,
//! }
//! ```

use std::fmt;
use std::time::Duration;

use serde::Deserializer;
use serde::de::{self, Visitor};

/// The units, as written, with their length in milliseconds.
const UNITS: [(&str, u64); 5] = [
    ("ms", 1),
    ("s", 1_000),
    ("m", 60_000),
    ("h", 3_600_000),
    ("d", 86_400_000),
];

/// Parses `"250ms"`, `"1s"`, `"5m"`, `"1h"`, `"1d"` or a sum of such parts (`"1m30s"`).
pub fn parse(text: &str) -> Result<Duration, String> {
    let bad =
        || format!("{text:?} is not a duration: write a number and a unit (250ms, 1s, 5m, 1h, 1d)");
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let number: u64 = rest[..digits].parse().map_err(|_| bad())?;
        let after = rest[digits..].trim_start();
        let unit_len = after
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(after.len());
        let (_, per) = UNITS
            .iter()
            .find(|(unit, _)| *unit == &after[..unit_len])
            .ok_or_else(bad)?;
        total = number
            .checked_mul(*per)
            .and_then(|ms| total.checked_add(ms))
            .ok_or_else(bad)?;
        rest = after[unit_len..].trim_start();
    }
    Ok(Duration::from_millis(total))
}

/// Whole milliseconds of `duration`, at most `u64::MAX`.
pub fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Whole milliseconds of `duration`, at most `u32::MAX` (a timeout in the `http`
/// interface).
pub fn millis_u32(duration: Duration) -> u32 {
    u32::try_from(millis(duration)).unwrap_or(u32::MAX)
}

/// Whole seconds of `duration`, rounded up.
pub fn ceil_secs(duration: Duration) -> u64 {
    millis(duration).div_ceil(1000)
}

/// Reads a duration string, or a bare number of `legacy_ms` milliseconds each.
struct DurationVisitor {
    legacy_ms: u64,
}

impl Visitor<'_> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration such as \"250ms\", \"1s\" or \"5m\"")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Duration, E> {
        parse(text).map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Duration, E> {
        n.checked_mul(self.legacy_ms)
            .map(Duration::from_millis)
            .ok_or_else(|| E::custom(format!("the duration {n} is too long")))
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Duration, E> {
        let n = u64::try_from(n).map_err(|_| E::custom("a duration cannot be negative"))?;
        self.visit_u64(n)
    }
}

/// For `#[serde(with = "duration::ms")]`: a duration string, or a bare number of
/// milliseconds (the unit of a legacy `*_ms` key).
pub mod ms {
    use super::*;

    /// Reads the duration.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        d.deserialize_any(DurationVisitor { legacy_ms: 1 })
    }
}

/// For `#[serde(with = "duration::secs")]`: a duration string, or a bare number of seconds
/// (the unit of a legacy `*_s` or `*_secs` key).
pub mod secs {
    use super::*;

    /// Reads the duration.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        d.deserialize_any(DurationVisitor { legacy_ms: 1_000 })
    }
}

/// [`ms`] for an optional key (with `#[serde(default)]`).
pub mod ms_opt {
    use super::*;

    /// Reads the duration.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        super::ms::deserialize(d).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_forms_parse() {
        let ms = |text: &str| parse(text).map(millis);
        assert_eq!(ms("250ms"), Ok(250));
        assert_eq!(ms("1s"), Ok(1_000));
        assert_eq!(ms("5m"), Ok(300_000));
        assert_eq!(ms("1h"), Ok(3_600_000));
        assert_eq!(ms("1d"), Ok(86_400_000));
        assert_eq!(ms("1m30s"), Ok(90_000));
        assert_eq!(ms(" 1h 30m "), Ok(5_400_000));
        assert_eq!(ms("0ms"), Ok(0));
    }

    #[test]
    fn anything_else_is_refused_with_the_forms() {
        for text in [
            "",
            "1",
            "s",
            "fortnight",
            "1.5s",
            "-1s",
            "1 fortnight",
            "1s2",
            "99999999999999999999d",
        ] {
            let error = parse(text).unwrap_err();
            assert!(error.contains("250ms, 1s"), "{text}: {error}");
        }
    }

    #[derive(Debug, serde::Deserialize)]
    struct Keys {
        #[serde(alias = "open_ms", with = "ms")]
        open: Duration,
        #[serde(alias = "skew_secs", with = "secs")]
        skew: Duration,
    }

    #[test]
    fn legacy_keys_read_bare_numbers_in_their_unit() {
        let old: Keys = serde_json::from_str(r#"{"open_ms": 5000, "skew_secs": 300}"#).unwrap();
        let new: Keys = serde_json::from_str(r#"{"open": "5s", "skew": "5m"}"#).unwrap();
        assert_eq!((old.open, old.skew), (new.open, new.skew));
        assert_eq!(new.open, Duration::from_secs(5));
        let negative = serde_json::from_str::<Keys>(r#"{"open": -1, "skew": "1s"}"#);
        assert!(negative.is_err());
    }
}
