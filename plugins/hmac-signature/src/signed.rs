//! What a signature says once its headers are parsed, in either format: the claims to check
//! and the exact bytes that were signed.

/// The header format a signature came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `Signature-Input` and `Signature` (RFC 9421).
    Rfc9421,
    /// draft-cavage-http-signatures-12, in this header (`authorization` or `signature`).
    Cavage(&'static str),
}

impl Format {
    /// The component that carries the body digest in this format.
    pub fn digest_component(self) -> &'static str {
        match self {
            Self::Rfc9421 => "content-digest",
            Self::Cavage(_) => "digest",
        }
    }

    /// The headers that carry the signature.
    pub fn signature_headers(self) -> &'static [&'static str] {
        match self {
            Self::Rfc9421 => &["signature-input", "signature"],
            Self::Cavage("authorization") => &["authorization"],
            Self::Cavage(_) => &["signature"],
        }
    }
}

/// A parsed signature with its signature base.
#[derive(Debug)]
pub struct Signed {
    /// The format it came in.
    pub format: Format,
    /// The key id.
    pub key_id: String,
    /// The algorithm the signer named, if any.
    pub algorithm: Option<String>,
    /// The covered component names, lower-case.
    pub covered: Vec<String>,
    /// Creation time, seconds since the Unix epoch (`created`, or a covered `Date`).
    pub created: Option<i64>,
    /// Expiry time, seconds since the Unix epoch.
    pub expires: Option<i64>,
    /// The signer's nonce.
    pub nonce: Option<String>,
    /// The signature base: the bytes the signer computed the MAC over.
    pub base: Vec<u8>,
    /// The signature.
    pub signature: Vec<u8>,
}

impl Signed {
    /// Whether the signature covers the component `name`.
    pub fn covers(&self, name: &str) -> bool {
        self.covered.iter().any(|c| c == name)
    }
}
