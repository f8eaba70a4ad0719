//! A route's place in an API's lifecycle: its version label, and when it is deprecated,
//! the fields that tell clients so — `Deprecation` (RFC 9745), `Sunset` (RFC 8594) and
//! `Link` relations to what to read about it.

use anyhow::Context;
use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// `deprecated = { ... }` on a route.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct DeprecationConfig {
    /// When the route was (or will be) deprecated, RFC 3339 (`2026-11-01T00:00:00Z`).
    pub since: String,
    /// When it stops answering, RFC 3339 (optional).
    pub sunset: Option<String>,
    /// A page about the deprecation (`Link: <...>; rel="deprecation"`).
    pub link: Option<String>,
    /// A page about the sunset (`Link: <...>; rel="sunset"`).
    pub sunset_link: Option<String>,
}

/// The response fields of a deprecated route, checked once at load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeprecationFields {
    /// `Deprecation: @<unix seconds>` (an RFC 9651 date).
    pub deprecation: String,
    /// `Sunset: <IMF-fixdate>`.
    pub sunset: Option<String>,
    /// `Link` values.
    pub links: Vec<String>,
}

/// An RFC 3339 timestamp, in seconds since the Unix epoch.
fn unix_seconds(what: &str, text: &str) -> anyhow::Result<i64> {
    let at = OffsetDateTime::parse(text, &Rfc3339)
        .with_context(|| format!("{what}: {text:?} is not an RFC 3339 timestamp"))?;
    Ok(at.unix_timestamp())
}

/// A link target that can stand inside `<...>` in a field value.
fn link(what: &str, url: &str, rel: &str) -> anyhow::Result<String> {
    let fits = url.starts_with("https://") || url.starts_with("http://");
    if !fits
        || url
            .bytes()
            .any(|b| b <= b' ' || b == b'>' || b == b'<' || b >= 0x7f)
    {
        anyhow::bail!("{what}: {url:?} is not an http(s) URL");
    }
    Ok(format!("<{url}>; rel=\"{rel}\""))
}

impl DeprecationConfig {
    /// The fields to send; `route` names the route in errors.
    pub fn fields(&self, route: &str) -> anyhow::Result<DeprecationFields> {
        let key = |k: &str| format!("route {route:?}: deprecated.{k}");
        let since = unix_seconds(&key("since"), &self.since)?;
        let sunset = match &self.sunset {
            Some(text) => {
                let at = unix_seconds(&key("sunset"), text)?;
                if at < since {
                    anyhow::bail!("{} is before {}", key("sunset"), key("since"));
                }
                let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(at.max(0) as u64);
                Some(httpdate::fmt_http_date(at))
            }
            None => None,
        };
        let mut links = Vec::new();
        if let Some(url) = &self.link {
            links.push(link(&key("link"), url, "deprecation")?);
        }
        if let Some(url) = &self.sunset_link {
            links.push(link(&key("sunset_link"), url, "sunset")?);
        }
        Ok(DeprecationFields {
            deprecation: format!("@{since}"),
            sunset,
            links,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fields_follow_rfc_9745_and_rfc_8594() {
        // RFC 9745 §2.1's example: `Deprecation: @1688169599`.
        let config = DeprecationConfig {
            since: "2023-06-30T23:59:59Z".into(),
            sunset: Some("2024-06-30T23:59:59Z".into()),
            link: Some("https://developer.example.com/deprecation".into()),
            sunset_link: None,
        };
        let fields = config.fields("v1").unwrap();
        assert_eq!(fields.deprecation, "@1688169599");
        assert_eq!(
            fields.sunset.as_deref(),
            Some("Sun, 30 Jun 2024 23:59:59 GMT")
        );
        assert_eq!(
            fields.links,
            ["<https://developer.example.com/deprecation>; rel=\"deprecation\""]
        );
    }

    #[test]
    fn bad_dates_and_links_are_refused_naming_the_key() {
        let mut config = DeprecationConfig {
            since: "yesterday".into(),
            sunset: None,
            link: None,
            sunset_link: None,
        };
        let e = config.fields("v1").unwrap_err().to_string();
        assert!(e.contains("deprecated.since"), "{e}");
        config.since = "2026-01-01T00:00:00Z".into();
        config.sunset = Some("2025-01-01T00:00:00Z".into());
        let e = config.fields("v1").unwrap_err().to_string();
        assert!(e.contains("deprecated.sunset"), "{e}");
        config.sunset = None;
        config.link = Some("javascript:alert(1)".into());
        let e = config.fields("v1").unwrap_err().to_string();
        assert!(e.contains("deprecated.link"), "{e}");
    }
}
