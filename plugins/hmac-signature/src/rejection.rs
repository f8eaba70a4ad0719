//! Why a request is refused, and the one place that turns a refusal into a response.
//! Messages name what is wrong, never the expected signature or the signature base.

use weir_plugin_sdk::{Request, Response};

/// A refused request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// No signature in any accepted form (or none with the configured label).
    MissingSignature,
    /// The signature headers do not parse or lack a required parameter.
    Malformed(String),
    /// A covered component this filter cannot compute.
    UnsupportedComponent(String),
    /// The key id has no secret.
    UnknownKey,
    /// The algorithm is not accepted.
    UnsupportedAlgorithm(String),
    /// `created` (or `Date`) is too old, or `expires` has passed.
    Expired,
    /// `created` (or `Date`) is too far in the future.
    NotYetValid,
    /// A required component is not covered, or a covered one is absent from the request.
    MissingComponent(String),
    /// The body does not match its digest.
    DigestMismatch(String),
    /// The signature does not match.
    InvalidSignature,
    /// The signature was seen before.
    Replayed,
    /// The replay store could not be reached.
    ReplayCheckUnavailable,
    /// The secret store refused or failed (a grant is missing from the gateway config).
    KeyUnavailable,
}

impl Rejection {
    /// Status, stable code and message.
    fn parts(&self) -> (u16, &'static str, String) {
        match self {
            Self::MissingSignature => {
                (401, "missing_signature", "the request is not signed".into())
            }
            Self::Malformed(why) => (401, "malformed_signature", why.clone()),
            Self::UnsupportedComponent(name) => (
                401,
                "unsupported_component",
                format!("the covered component {name} is not supported"),
            ),
            Self::UnknownKey => (401, "unknown_key", "the key id is not known".into()),
            Self::UnsupportedAlgorithm(name) => (
                401,
                "unsupported_algorithm",
                format!("the algorithm {name:?} is not accepted"),
            ),
            Self::Expired => (401, "signature_expired", "the signature has expired".into()),
            Self::NotYetValid => (
                401,
                "signature_not_yet_valid",
                "the signature was created in the future".into(),
            ),
            Self::MissingComponent(name) => (
                401,
                "missing_component",
                format!("the signature must cover {name}, and the request must have it"),
            ),
            Self::DigestMismatch(why) => (401, "digest_mismatch", why.clone()),
            Self::InvalidSignature => (
                401,
                "invalid_signature",
                "the signature does not match".into(),
            ),
            Self::Replayed => (401, "replayed", "this signature was already used".into()),
            Self::ReplayCheckUnavailable => (
                503,
                "replay_check_unavailable",
                "the replay check is unavailable".into(),
            ),
            Self::KeyUnavailable => (
                503,
                "key_unavailable",
                "the signing key is unavailable".into(),
            ),
        }
    }

    /// The error response, with `hints` (such as `Accept-Signature`) on a 401.
    pub fn response(&self, request: &Request, hints: &[(&'static str, String)]) -> Response {
        let (status, code, message) = self.parts();
        let mut response = Response::error(status, code, &message, request);
        if status == 401 {
            for (name, value) in hints {
                response = response.header(name, value.as_bytes());
            }
        }
        response
    }
}
