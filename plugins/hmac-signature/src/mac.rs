//! The HMAC algorithms of the HTTP Signature Algorithms registry (RFC 9421 §3.3.3, §6.2.2)
//! and a constant-time check of a signature.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Sha256, Sha512};

/// An accepted HMAC algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// `hmac-sha256` (RFC 9421 §3.3.3).
    HmacSha256,
    /// `hmac-sha512`, the same construction with SHA-512 (as named by draft-cavage).
    HmacSha512,
}

impl Algorithm {
    /// The algorithm with this registered name.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "hmac-sha256" => Some(Self::HmacSha256),
            "hmac-sha512" => Some(Self::HmacSha512),
            _ => None,
        }
    }

    /// Its registered name.
    pub fn name(self) -> &'static str {
        match self {
            Self::HmacSha256 => "hmac-sha256",
            Self::HmacSha512 => "hmac-sha512",
        }
    }

    /// Whether `signature` is this algorithm's MAC of `base` under `key`, compared in
    /// constant time (`verify_slice` also refuses a truncated signature).
    pub fn verify(self, key: &[u8], base: &[u8], signature: &[u8]) -> bool {
        match self {
            Self::HmacSha256 => check::<Hmac<Sha256>>(key, base, signature),
            Self::HmacSha512 => check::<Hmac<Sha512>>(key, base, signature),
        }
    }
}

fn check<M: Mac + KeyInit>(key: &[u8], base: &[u8], signature: &[u8]) -> bool {
    // HMAC takes keys of any length, so `new_from_slice` cannot fail; a failure still
    // counts as a mismatch rather than a panic.
    let Ok(mut mac) = <M as KeyInit>::new_from_slice(key) else {
        return false;
    };
    mac.update(base);
    mac.verify_slice(signature).is_ok()
}
