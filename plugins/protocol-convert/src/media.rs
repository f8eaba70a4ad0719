//! Media types of the bodies the filter converts.

/// The media type without parameters, lower-case (RFC 9110 §8.3.1).
pub fn essence(content_type: Option<&str>) -> Option<String> {
    let t = content_type?.split(';').next()?.trim();
    Some(t.to_ascii_lowercase())
}
