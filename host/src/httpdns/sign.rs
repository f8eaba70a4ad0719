//! Signed requests: `s = hex(HMAC-SHA256(key, dn + ":" + t))`, where `dn` is the parameter
//! as sent and `t` the expiry in Unix seconds, with the key `kid` names. Aliyun's v1
//! signature has the same parts (the names, an expiry, a secret) with MD5; this one uses
//! an HMAC so that the key cannot be recovered from signatures.

use std::collections::BTreeMap;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::query::SignatureParams;

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Signatures are required and the request has none.
    Required,
    /// Unknown key, malformed parameters, a wrong signature, or an expiry too far ahead.
    Invalid,
    /// The expiry has passed.
    Expired,
}

impl Refusal {
    /// Every refusal, in metrics order.
    pub const ALL: [Self; 3] = [Self::Required, Self::Invalid, Self::Expired];

    /// A label for metrics.
    pub fn label(self) -> &'static str {
        match self {
            Self::Required => "required",
            Self::Invalid => "invalid",
            Self::Expired => "expired",
        }
    }
}

/// The signing keys and the rules.
#[derive(Debug, Default)]
pub struct Signing {
    /// Key id → key.
    pub keys: BTreeMap<String, Vec<u8>>,
    /// Refuse unsigned requests.
    pub required: bool,
    /// The latest expiry accepted, in seconds from now.
    pub max_expiry_s: u64,
}

impl Signing {
    /// Checks a request's signature at `now` (Unix seconds). An unsigned request passes
    /// unless signatures are required; a signed one must be valid either way.
    pub fn check(&self, dn: &str, params: &SignatureParams, now: u64) -> Result<(), Refusal> {
        if !params.present() {
            return match self.required {
                true => Err(Refusal::Required),
                false => Ok(()),
            };
        }
        let key = match &params.kid {
            Some(kid) => self.keys.get(kid),
            // One key: its id may be left out.
            None if self.keys.len() == 1 => self.keys.values().next(),
            None => None,
        };
        let (Some(key), Some(expiry), Some(signature)) = (key, &params.expiry, &params.signature)
        else {
            return Err(Refusal::Invalid);
        };
        let t: u64 = expiry.parse().map_err(|_| Refusal::Invalid)?;
        let signature = hex_decode(signature).ok_or(Refusal::Invalid)?;
        let mut mac = Hmac::<Sha256>::new_from_slice(key).map_err(|_| Refusal::Invalid)?;
        mac.update(dn.as_bytes());
        mac.update(b":");
        mac.update(expiry.as_bytes());
        // `verify_slice` compares in constant time (`subtle`).
        mac.verify_slice(&signature).map_err(|_| Refusal::Invalid)?;
        if t < now {
            return Err(Refusal::Expired);
        }
        if t > now.saturating_add(self.max_expiry_s) {
            return Err(Refusal::Invalid);
        }
        Ok(())
    }
}

/// Hex (either case) to bytes; `None` when it is not hex.
fn hex_decode(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    let digit = |b: u8| (b as char).to_digit(16);
    (text.as_bytes().chunks(2))
        .map(|pair| Some((digit(pair[0])? * 16 + digit(pair[1])?) as u8))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(key: &[u8], message: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
        mac.update(message.as_bytes());
        let bytes = mac.finalize().into_bytes();
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn signing(required: bool) -> Signing {
        let keys = [("k1".to_string(), b"secret".to_vec())].into();
        Signing {
            keys,
            required,
            max_expiry_s: 600,
        }
    }

    fn params(kid: Option<&str>, t: &str, s: &str) -> SignatureParams {
        SignatureParams {
            kid: kid.map(String::from),
            expiry: Some(t.into()),
            signature: Some(s.into()),
        }
    }

    #[test]
    fn the_recipe_matches_an_independent_hmac() {
        // The docs' recipe: printf 'api.example:1000' | openssl dgst -sha256 -hmac secret
        let s = "072f83908873e967a02db2223267e3bc586437a8e10c3949fd96313fed2dc907";
        assert_eq!(sign(b"secret", "api.example:1000"), s);
        let at = 900;
        let signing = signing(false);
        assert_eq!(
            signing.check("api.example", &params(Some("k1"), "1000", s), at),
            Ok(())
        );
        let upper = s.to_ascii_uppercase();
        assert_eq!(
            signing.check("api.example", &params(None, "1000", &upper), at),
            Ok(())
        );
    }

    #[test]
    fn refusals() {
        let signing = signing(true);
        let s = sign(b"secret", "a:1000");
        let check = |dn: &str, p: SignatureParams, now| signing.check(dn, &p, now);
        assert_eq!(
            check("a", SignatureParams::default(), 900),
            Err(Refusal::Required)
        );
        assert_eq!(
            check("b", params(Some("k1"), "1000", &s), 900),
            Err(Refusal::Invalid)
        );
        assert_eq!(
            check("a", params(Some("k2"), "1000", &s), 900),
            Err(Refusal::Invalid)
        );
        assert_eq!(
            check("a", params(Some("k1"), "1000", "zz"), 900),
            Err(Refusal::Invalid)
        );
        assert_eq!(
            check("a", params(Some("k1"), "1000", &s), 1001),
            Err(Refusal::Expired)
        );
        assert_eq!(
            check("a", params(Some("k1"), "1000", &s), 399),
            Err(Refusal::Invalid)
        );
        assert_eq!(check("a", params(Some("k1"), "1000", &s), 400), Ok(()));
        let t = SignatureParams {
            signature: None,
            ..params(Some("k1"), "1000", &s)
        };
        assert_eq!(check("a", t, 900), Err(Refusal::Invalid), "t without s");
    }
}
