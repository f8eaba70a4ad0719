//! The registered claims (RFC 7519 §4.1) a verified token must satisfy: required claims
//! present, `exp`, `nbf` and `iat` against the clock with some leeway, `iss` and `aud`
//! among the accepted values.

use serde_json::{Map, Value};

use crate::failure::Failure;

/// The claim checks of one route.
pub struct ClaimRules {
    /// Accepted `iss` values; empty accepts any.
    pub issuers: Vec<String>,
    /// Accepted `aud` values (one must be in the token); empty accepts any.
    pub audiences: Vec<String>,
    /// Clock skew allowed on `exp`, `nbf` and `iat`, in seconds.
    pub leeway_s: f64,
    /// Claims that must be present.
    pub required: Vec<String>,
}

impl ClaimRules {
    /// Checks `claims` at `now_s` (seconds since the epoch).
    pub fn check(&self, claims: &Map<String, Value>, now_s: f64) -> Result<(), Failure> {
        let present = |name: &str| claims.get(name).is_some_and(|v| !v.is_null());
        if !self.required.iter().all(|name| present(name)) {
            return Err(Failure::InvalidToken("a required claim is missing"));
        }
        let leeway = self.leeway_s;
        // §4.1.4: the current time must be before `exp`.
        if let Some(exp) = numeric_date(claims, "exp")?
            && now_s >= exp + leeway
        {
            return Err(Failure::TokenExpired);
        }
        // §4.1.5: the current time must be after or equal to `nbf`.
        if let Some(nbf) = numeric_date(claims, "nbf")?
            && now_s + leeway < nbf
        {
            return Err(Failure::InvalidToken("the token is not valid yet"));
        }
        // §4.1.6: a token cannot be issued in the future.
        if let Some(iat) = numeric_date(claims, "iat")?
            && iat > now_s + leeway
        {
            return Err(Failure::InvalidToken("the token is issued in the future"));
        }
        // §4.1.1
        if !self.issuers.is_empty() {
            let iss = claims.get("iss").and_then(Value::as_str);
            if !iss.is_some_and(|iss| self.issuers.iter().any(|i| i == iss)) {
                return Err(Failure::InvalidToken("the issuer is not accepted"));
            }
        }
        // §4.1.3: `aud` is one string or an array of strings.
        if !self.audiences.is_empty() {
            let accepted = |aud: &str| self.audiences.iter().any(|a| a == aud);
            let fits = match claims.get("aud") {
                Some(Value::String(aud)) => accepted(aud),
                Some(Value::Array(auds)) => auds.iter().filter_map(Value::as_str).any(accepted),
                _ => false,
            };
            if !fits {
                return Err(Failure::InvalidToken("the audience is not accepted"));
            }
        }
        Ok(())
    }
}

/// A NumericDate claim (§2: seconds, possibly fractional), if present.
fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<Option<f64>, Failure> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => value
            .as_f64()
            .map(Some)
            .ok_or(Failure::InvalidToken("a time claim is not a number")),
    }
}
