//! JWT bearer tokens (RFC 7519) signed as a JWS (RFC 7515): HS256/384/512, RS256/384/512,
//! PS256/384/512, ES256/384 and EdDSA. The signature is checked by `jsonwebtoken`; the
//! claims by [`claims`], with the gateway's clock.

mod claims;
mod keys;

use std::time::Duration;

use jsonwebtoken::{Algorithm, Validation, decode, decode_header, errors::ErrorKind};
use serde::Deserialize;
use serde_json::{Map, Value};
use weir_plugin_sdk::duration;
use weir_plugin_sdk::host::clock;

use crate::failure::Failure;
use crate::identity::Identity;
use claims::ClaimRules;
use keys::{KeyEntry, KeySet, RemoteJwks, RemoteJwksConfig};

/// `jwt` in the filter config.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    #[serde(default)]
    keys: Vec<KeyEntry>,
    /// An inline JWKS document: a table, or its JSON text.
    #[serde(default)]
    jwks: Option<Value>,
    #[serde(default)]
    jwks_url: Option<RemoteJwksConfig>,
    /// Accepted algorithms; all supported ones when absent.
    #[serde(default)]
    algorithms: Option<Vec<String>>,
    #[serde(default)]
    issuer: OneOrMany,
    #[serde(default)]
    audience: OneOrMany,
    /// Clock skew allowed on `exp`, `nbf` and `iat` (`leeway_s`, a number of seconds, is
    /// the older spelling).
    #[serde(default = "leeway_60s", alias = "leeway_s", with = "duration::secs")]
    leeway: Duration,
    #[serde(default = "default_required_claims")]
    required_claims: Vec<String>,
    /// The claim that names the consumer.
    #[serde(default = "default_consumer_claim")]
    consumer_claim: String,
    /// A claim with the consumer's display name, if any.
    #[serde(default)]
    username_claim: Option<String>,
}

fn leeway_60s() -> Duration {
    Duration::from_secs(60)
}

fn default_required_claims() -> Vec<String> {
    vec!["exp".into()]
}

fn default_consumer_claim() -> String {
    "sub".into()
}

/// A string or a list of strings.
#[derive(Debug, Default, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    #[default]
    None,
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            Self::None => Vec::new(),
            Self::One(one) => vec![one],
            Self::Many(many) => many,
        }
    }
}

/// Every algorithm this filter verifies.
const SUPPORTED: [Algorithm; 12] = [
    Algorithm::HS256,
    Algorithm::HS384,
    Algorithm::HS512,
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// A configured JWT verifier.
pub struct Jwt {
    keys: KeySet,
    /// The accepted algorithms, each with its signature-only `Validation`, built once.
    algorithms: Vec<(Algorithm, Validation)>,
    rules: ClaimRules,
    consumer_claim: String,
    username_claim: Option<String>,
}

impl Jwt {
    /// Loads the keys (and the secrets they name) and checks the rest of the config.
    pub fn new(config: JwtConfig) -> Result<Self, String> {
        let mut fixed = config
            .keys
            .into_iter()
            .map(keys::from_entry)
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(jwks) = config.jwks {
            let document = match jwks {
                Value::String(text) => text.into_bytes(),
                table => table.to_string().into_bytes(),
            };
            fixed.extend(
                keys::from_jwks(&document, true, true).map_err(|e| format!("jwt.jwks: {e}"))?,
            );
        }
        let remote = config.jwks_url.map(RemoteJwks::new).transpose()?;
        let algorithms: Vec<Algorithm> = match config.algorithms {
            None => SUPPORTED.to_vec(),
            Some(names) => names
                .iter()
                .map(|name| {
                    name.parse::<Algorithm>()
                        .map_err(|_| format!("jwt.algorithms: unknown algorithm {name:?}"))
                })
                .collect::<Result<_, _>>()?,
        };
        let algorithms = algorithms
            .into_iter()
            .map(|alg| (alg, signature_only(alg)))
            .collect();
        if config.consumer_claim.is_empty() {
            return Err("jwt.consumer_claim must not be empty".into());
        }
        Ok(Self {
            keys: KeySet::new(fixed, remote)?,
            algorithms,
            rules: ClaimRules {
                issuers: config.issuer.into_vec(),
                audiences: config.audience.into_vec(),
                leeway_s: config.leeway.as_secs_f64(),
                required: config.required_claims,
            },
            consumer_claim: config.consumer_claim,
            username_claim: config.username_claim,
        })
    }

    /// The consumer of a valid `token`.
    pub fn verify(&self, token: &str) -> Result<Identity, Failure> {
        self.verify_at(token, clock::now_ms())
    }

    /// [`verify`](Self::verify) at `now_ms`.
    fn verify_at(&self, token: &str, now_ms: u64) -> Result<Identity, Failure> {
        let header =
            decode_header(token).map_err(|_| Failure::InvalidToken("the token is malformed"))?;
        // RFC 8725 §3.1: only the algorithms configured here, never `none` (which
        // `jsonwebtoken` cannot even parse).
        let Some((_, validation)) = self.algorithms.iter().find(|(alg, _)| *alg == header.alg)
        else {
            return Err(Failure::InvalidToken(
                "the token's algorithm is not accepted",
            ));
        };
        // RFC 7515 §4.1.11: no header extension is understood here, so none may be critical.
        if header.crit.is_some() {
            return Err(Failure::InvalidToken(
                "the token has critical header parameters",
            ));
        }
        let candidates = self
            .keys
            .candidates(header.kid.as_deref(), header.alg, now_ms)?;
        if candidates.is_empty() {
            return Err(Failure::InvalidToken("no key is known for the token"));
        }
        let claims = verified_claims(token, validation, &candidates)?;
        self.rules.check(&claims, now_ms as f64 / 1000.0)?;
        self.identity(&claims)
    }

    fn identity(&self, claims: &Map<String, Value>) -> Result<Identity, Failure> {
        let text = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_string);
        let id = text(&self.consumer_claim)
            .filter(|id| !id.is_empty())
            .ok_or(Failure::InvalidToken("the token names no consumer"))?;
        Ok(Identity {
            id,
            username: self.username_claim.as_deref().and_then(text),
            scope: scope(claims),
        })
    }
}

/// A `Validation` that checks only the signature under `alg`: the claims are checked by
/// `ClaimRules` with the gateway's clock.
fn signature_only(alg: Algorithm) -> Validation {
    let mut validation = Validation::new(alg);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation
}

/// The claims of `token` once one of `candidates` verifies its signature.
fn verified_claims(
    token: &str,
    validation: &Validation,
    candidates: &[std::rc::Rc<keys::VerifyingKey>],
) -> Result<Map<String, Value>, Failure> {
    for candidate in candidates {
        match decode::<Map<String, Value>>(token, &candidate.key, validation) {
            Ok(data) => return Ok(data.claims),
            Err(e) if matches!(e.kind(), ErrorKind::InvalidSignature) => continue,
            Err(_) => return Err(Failure::InvalidToken("the token is malformed")),
        }
    }
    Err(Failure::InvalidToken("the signature is not valid"))
}

/// The granted scopes: `scope` (RFC 8693 §4.2, space-separated) or `scp` (a list).
fn scope(claims: &Map<String, Value>) -> Option<String> {
    match claims.get("scope").or_else(|| claims.get("scp"))? {
        Value::String(scope) => Some(scope.clone()),
        Value::Array(items) => Some(
            items
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(" "),
        ),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use proptest::prelude::*;

    use super::*;

    const NOW_MS: u64 = 1_700_000_000_000;

    /// A verifier with one inline HMAC key (no host call is needed to verify).
    fn jwt() -> Jwt {
        let config = serde_json::json!({
            "jwks": { "keys": [ { "kty": "oct", "kid": "k", "alg": "HS256",
                                  "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0" } ] },
            "algorithms": ["HS256", "RS256"],
        });
        Jwt::new(serde_json::from_value(config).unwrap()).unwrap()
    }

    /// A well-signed token with these header and payload JSON texts.
    fn signed(header: &str, payload: &str) -> String {
        let head = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let mac = hmac_sha256(b"secret-secret-secret-secret", head.as_bytes());
        format!("{head}.{}", URL_SAFE_NO_PAD.encode(mac))
    }

    /// HMAC-SHA256 (RFC 2104) from the SHA-256 the crate already has; `key` fits a block.
    fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
        use sha2::{Digest, Sha256};
        let mut block = [0u8; 64];
        block[..key.len()].copy_from_slice(key);
        let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
        let inner = Sha256::new()
            .chain_update(pad(0x36))
            .chain_update(message)
            .finalize();
        Sha256::new()
            .chain_update(pad(0x5c))
            .chain_update(inner)
            .finalize()
            .to_vec()
    }

    #[test]
    fn a_good_token_passes_and_a_tampered_one_does_not() {
        let jwt = jwt();
        let exp = NOW_MS / 1000 + 60;
        let token = signed(
            r#"{"alg":"HS256","kid":"k"}"#,
            &format!(r#"{{"sub":"ann","exp":{exp}}}"#),
        );
        assert_eq!(
            jwt.verify_at(&token, NOW_MS).map(|i| i.id),
            Ok("ann".to_string())
        );
        let tampered = token.replacen('.', ".e", 1);
        assert!(jwt.verify_at(&tampered, NOW_MS).is_err());
    }

    /// A refusal that blames the token: a 401, never a 5xx.
    fn is_client_error(failure: &Failure) -> bool {
        matches!(failure, Failure::InvalidToken(_) | Failure::TokenExpired)
    }

    /// JSON-ish header texts: real algorithms and kids, odd types, junk.
    fn header_like() -> impl Strategy<Value = String> {
        let alg = prop_oneof![
            Just("\"HS256\"".to_string()),
            Just("\"RS256\"".to_string()),
            Just("\"none\"".to_string()),
            Just("null".to_string()),
            Just("1".to_string()),
            "\"[A-Za-z0-9]{0,8}\"",
        ];
        let extra = prop_oneof![
            Just(String::new()),
            Just(r#","kid":"k""#.to_string()),
            Just(r#","kid":7"#.to_string()),
            Just(r#","crit":["b64"]"#.to_string()),
            Just(r#","jku":"http://x""#.to_string()),
            ".{0,16}",
        ];
        (alg, extra).prop_map(|(alg, extra)| format!(r#"{{"alg":{alg}{extra}}}"#))
    }

    proptest! {
        #[test]
        fn junk_text_is_refused_not_a_panic(token in ".{0,300}") {
            if let Err(failure) = jwt().verify_at(&token, NOW_MS) {
                prop_assert!(is_client_error(&failure), "{failure:?}");
            }
        }

        #[test]
        fn junk_segments_are_refused_not_a_panic(
            segments in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 1..5),
        ) {
            let token = segments
                .iter()
                .map(|s| URL_SAFE_NO_PAD.encode(s))
                .collect::<Vec<_>>()
                .join(".");
            if let Err(failure) = jwt().verify_at(&token, NOW_MS) {
                prop_assert!(is_client_error(&failure), "{failure:?}");
            }
        }

        #[test]
        fn signed_junk_claims_are_refused_not_a_panic(
            header in header_like(),
            payload in prop_oneof![
                ".{0,64}",
                "\\{\"sub\":(\"[a-z]{0,4}\"|1|null|\\[\\]),\"exp\":(-?[0-9]{1,22}|\"x\"|1e400|null)\\}",
            ],
        ) {
            if let Err(failure) = jwt().verify_at(&signed(&header, &payload), NOW_MS) {
                prop_assert!(is_client_error(&failure), "{failure:?}");
            }
        }
    }
}
