//! Path normalisation before routing (RFC 3986 §6.2.2): percent-encoded unreserved
//! characters decoded, hex digits of the other escapes upper-cased, dot segments removed
//! (§5.2.4), repeated slashes merged. Spellings that servers behind the gateway read in
//! different ways — encoded slashes and backslashes, a literal backslash, `;` path
//! parameters — follow a policy, refused by default. The result is the one path that the
//! router, the filters and the upstream see, so no spelling of a protected path reaches
//! another route.

use std::borrow::Cow;

use crate::config::{EscapedSlashes, PathParameters, PathPolicy};

/// Why a path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    /// Not origin-form: it does not start with `/`.
    NotAbsolute,
    /// A `%` not followed by two hex digits.
    BadEscape,
    /// `%2F`, `%5C` or `\` under the `reject` policy.
    EscapedSlash,
    /// A `;` parameter under the `reject` policy.
    Parameter,
    /// A character no URI may hold.
    BadCharacter,
}

impl PathError {
    /// A short reason for the client.
    pub fn reason(self) -> &'static str {
        match self {
            Self::NotAbsolute => "the path must start with /",
            Self::BadEscape => "a % in the path is not followed by two hex digits",
            Self::EscapedSlash => "encoded slashes and backslashes are not accepted in the path",
            Self::Parameter => "; path parameters are not accepted",
            Self::BadCharacter => "the path holds a character a URI may not hold",
        }
    }
}

impl PathPolicy {
    /// The normalised form of `path` (no query); borrowed when it is already normal, which
    /// is the common case and costs one scan.
    pub fn normalize<'a>(&self, path: &'a str) -> Result<Cow<'a, str>, PathError> {
        if !path.starts_with('/') {
            return Err(PathError::NotAbsolute);
        }
        if self.is_normal(path)? {
            return Ok(Cow::Borrowed(path));
        }
        let decoded = self.decode(path)?;
        let (segments, trailing_slash) = self.segments(&decoded);
        Ok(Cow::Owned(join(&segments, trailing_slash)))
    }

    /// True when nothing would change; an error for what the policy refuses outright.
    fn is_normal(&self, path: &str) -> Result<bool, PathError> {
        let bytes = path.as_bytes();
        let mut normal = true;
        for (i, &b) in bytes.iter().enumerate() {
            match b {
                b'%' | b'\\' => normal = false,
                b';' => match self.path_parameters {
                    PathParameters::Reject => return Err(PathError::Parameter),
                    PathParameters::Strip => normal = false,
                    PathParameters::Keep => {}
                },
                b'/' => {
                    let next = &bytes[i + 1..];
                    let dot_segment = next == b"."
                        || next == b".."
                        || next.starts_with(b"./")
                        || next.starts_with(b"../");
                    if dot_segment || (self.merge_slashes && next.first() == Some(&b'/')) {
                        normal = false;
                    }
                }
                b'#' | b'?' => return Err(PathError::BadCharacter),
                _ if b <= b' ' || b == 0x7f => return Err(PathError::BadCharacter),
                _ => {}
            }
        }
        Ok(normal)
    }

    /// Percent-decoding of unreserved characters (§6.2.2.2), upper-case hex for the rest
    /// (§6.2.2.1), and the slash policy; `/` in the output separates segments.
    fn decode(&self, path: &str) -> Result<String, PathError> {
        let bytes = path.as_bytes();
        let mut out = String::with_capacity(path.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'%' => {
                    let byte = bytes
                        .get(i + 1..i + 3)
                        .and_then(|hex| std::str::from_utf8(hex).ok())
                        .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                        .ok_or(PathError::BadEscape)?;
                    match byte {
                        b'/' | b'\\' => match self.escaped_slashes {
                            EscapedSlashes::Reject => return Err(PathError::EscapedSlash),
                            EscapedSlashes::Decode => out.push('/'),
                            EscapedSlashes::Keep => push_escape(&mut out, byte),
                        },
                        _ if is_unreserved(byte) => out.push(char::from(byte)),
                        _ => push_escape(&mut out, byte),
                    }
                    i += 3;
                }
                b'\\' => {
                    match self.escaped_slashes {
                        EscapedSlashes::Reject => return Err(PathError::EscapedSlash),
                        EscapedSlashes::Decode => out.push('/'),
                        EscapedSlashes::Keep => out.push_str("%5C"),
                    }
                    i += 1;
                }
                _ => {
                    // Multi-byte characters are copied whole; `path` is valid UTF-8.
                    let start = i;
                    i += 1;
                    while i < bytes.len() && !matches!(bytes[i], b'%' | b'\\') {
                        i += 1;
                    }
                    out.push_str(&path[start..i]);
                }
            }
        }
        Ok(out)
    }

    /// The segments after `;` parameters, dot segments (§5.2.4) and empty segments are
    /// dealt with, and whether the path ends with a slash (as it does after a last dot
    /// segment). Leading `..` never climbs above the root.
    fn segments<'a>(&self, decoded: &'a str) -> (Vec<&'a str>, bool) {
        let mut kept: Vec<&str> = Vec::new();
        let mut raw = decoded[1..].split('/').peekable();
        let mut trailing_slash = false;
        while let Some(raw_segment) = raw.next() {
            let segment = match self.path_parameters {
                PathParameters::Strip => {
                    raw_segment.split_once(';').map_or(raw_segment, |(s, _)| s)
                }
                _ => raw_segment,
            };
            let last = raw.peek().is_none();
            match segment {
                "." | ".." => {
                    if segment == ".." {
                        kept.pop();
                    }
                    trailing_slash |= last;
                }
                "" if last => trailing_slash = true,
                "" if self.merge_slashes => {}
                _ => kept.push(segment),
            }
        }
        (kept, trailing_slash)
    }
}

/// `/` followed by the segments; a trailing slash (or a last dot segment) is kept.
fn join(segments: &[&str], trailing_slash: bool) -> String {
    let mut out = String::with_capacity(segments.iter().map(|s| s.len() + 1).sum::<usize>() + 1);
    for segment in segments {
        out.push('/');
        out.push_str(segment);
    }
    if out.is_empty() || trailing_slash {
        out.push('/');
    }
    out
}

/// RFC 3986 §2.3.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn push_escape(out: &mut String, byte: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push('%');
    out.push(char::from(HEX[usize::from(byte >> 4)]));
    out.push(char::from(HEX[usize::from(byte & 0xf)]));
}
