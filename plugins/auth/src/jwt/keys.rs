//! The keys that may verify a token: fixed ones from the config (PEM public keys, HMAC
//! secrets, an inline JWKS) and a JWKS fetched from a named upstream, cached for a while
//! and fetched again when a token names a key it does not know (at most once per
//! `min_refetch`).
//!
//! Each key carries the algorithms it may verify, all of its own family: an RSA key never
//! verifies an HMAC signature, whatever a token's header claims (RFC 8725 §2.1).

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};
use serde::Deserialize;
use weir_plugin_sdk::host::http::{self, OutboundRequest};
use weir_plugin_sdk::host::secrets;
use weir_plugin_sdk::{Header, HostError, duration};

use crate::failure::Failure;

/// One key in `jwt.keys`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyEntry {
    /// Matched against the token's `kid`; a key without one is tried for any token.
    #[serde(default)]
    kid: Option<String>,
    /// The one algorithm this key verifies.
    alg: String,
    /// A PEM public key (RSA, EC or Ed25519), for the asymmetric algorithms.
    #[serde(default)]
    pem: Option<String>,
    /// The name of a secret holding the HMAC key, for HS256/384/512.
    #[serde(default)]
    secret: Option<String>,
}

/// `jwt.jwks_url` in the filter config.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteJwksConfig {
    /// The named upstream that serves the JWKS (grant `http:<upstream>`).
    upstream: String,
    /// Its path.
    path: String,
    /// How long a fetched JWKS is used before it is fetched again.
    #[serde(default = "ttl_5m", alias = "ttl_ms", with = "duration::ms")]
    ttl: Duration,
    /// The shortest time between two fetches caused by an unknown `kid`, and between a
    /// failed fetch and the next try.
    #[serde(
        default = "refetch_30s",
        alias = "min_refetch_ms",
        with = "duration::ms"
    )]
    min_refetch: Duration,
    /// The timeout of a fetch; the upstream's when absent.
    #[serde(default, alias = "timeout_ms", with = "duration::ms_opt")]
    timeout: Option<Duration>,
    /// Accept symmetric (`oct`) keys from the fetched JWKS (default false): an HMAC key
    /// that travels over the network is a shared secret anyone on the path may learn, and
    /// whoever holds it can mint tokens.
    #[serde(default)]
    allow_oct: bool,
}

fn ttl_5m() -> Duration {
    Duration::from_secs(300)
}

fn refetch_30s() -> Duration {
    Duration::from_secs(30)
}

/// A key and what it may verify.
pub struct VerifyingKey {
    kid: Option<String>,
    algorithms: Vec<Algorithm>,
    /// The key itself.
    pub key: DecodingKey,
}

impl VerifyingKey {
    fn fits(&self, kid: Option<&str>, alg: Algorithm) -> bool {
        let kid_fits = match (kid, self.kid.as_deref()) {
            (Some(wanted), Some(own)) => wanted == own,
            _ => true,
        };
        kid_fits && self.algorithms.contains(&alg)
    }
}

/// A key from `jwt.keys`.
pub fn from_entry(entry: KeyEntry) -> Result<VerifyingKey, String> {
    let name = entry.kid.as_deref().unwrap_or("(no kid)");
    let alg: Algorithm = entry
        .alg
        .parse()
        .map_err(|_| format!("jwt.keys {name}: unknown alg {:?}", entry.alg))?;
    let key = match (alg.family(), entry.pem, entry.secret) {
        (AlgorithmFamily::Hmac, None, Some(secret)) => {
            DecodingKey::from_secret(&secrets::require(&secret)?)
        }
        (AlgorithmFamily::Hmac, _, _) => {
            return Err(format!(
                "jwt.keys {name}: an {alg:?} key comes from `secret` (only)"
            ));
        }
        (_, Some(pem), None) => {
            let parsed = match alg.family() {
                AlgorithmFamily::Rsa => DecodingKey::from_rsa_pem(pem.as_bytes()),
                AlgorithmFamily::Ec => DecodingKey::from_ec_pem(pem.as_bytes()),
                _ => DecodingKey::from_ed_pem(pem.as_bytes()),
            };
            parsed.map_err(|e| format!("jwt.keys {name}: not an {alg:?} public key: {e}"))?
        }
        _ => {
            return Err(format!(
                "jwt.keys {name}: an {alg:?} key comes from `pem` (only)"
            ));
        }
    };
    Ok(VerifyingKey {
        kid: entry.kid,
        algorithms: vec![alg],
        key,
    })
}

/// The keys of a JWKS document (RFC 7517 §5). Keys for encryption, keys of unknown
/// types or algorithms and, unless `allow_oct`, symmetric keys are left out; `strict`
/// turns them into errors instead.
pub fn from_jwks(
    document: &[u8],
    strict: bool,
    allow_oct: bool,
) -> Result<Vec<VerifyingKey>, String> {
    #[derive(Deserialize)]
    struct JwkSet {
        keys: Vec<serde_json::Value>,
    }
    let set: JwkSet =
        serde_json::from_slice(document).map_err(|e| format!("not a JWKS document: {e}"))?;
    let mut keys = Vec::new();
    for (n, value) in set.keys.into_iter().enumerate() {
        match from_jwk(value, allow_oct) {
            Ok(Some(key)) => keys.push(key),
            Ok(None) => {}
            Err(e) if strict => return Err(format!("key {n}: {e}")),
            Err(_) => {}
        }
    }
    Ok(keys)
}

fn from_jwk(value: serde_json::Value, allow_oct: bool) -> Result<Option<VerifyingKey>, String> {
    let jwk: Jwk = serde_json::from_value(value).map_err(|e| e.to_string())?;
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return Ok(None);
    }
    if !allow_oct && matches!(jwk.algorithm, AlgorithmParameters::OctetKey(_)) {
        return Err("a symmetric (oct) key is not accepted here".into());
    }
    let key = DecodingKey::from_jwk(&jwk).map_err(|e| e.to_string())?;
    let family = key.family();
    // RFC 7517 §4.4: a key that names its `alg` verifies only that one.
    let algorithms = match jwk.common.key_algorithm {
        Some(named) => match named.to_string().parse::<Algorithm>() {
            Ok(alg) if alg.family() == family => vec![alg],
            _ => return Err(format!("alg {named} does not fit a {family:?} key")),
        },
        None => family.algorithms().to_vec(),
    };
    Ok(Some(VerifyingKey {
        kid: jwk.common.key_id,
        algorithms,
        key,
    }))
}

/// What is known of the remote JWKS.
#[derive(Default)]
struct RemoteState {
    keys: Vec<Rc<VerifyingKey>>,
    /// When the keys were fetched (ms), if ever.
    fetched_ms: Option<u64>,
    /// When a fetch was last tried (ms), if ever.
    tried_ms: Option<u64>,
    /// When an unknown `kid` last caused a fetch (ms), if ever.
    kid_refetch_ms: Option<u64>,
}

/// A JWKS served by a named upstream.
pub struct RemoteJwks {
    config: RemoteJwksConfig,
    state: RefCell<RemoteState>,
}

impl RemoteJwks {
    /// Checks the config; nothing is fetched before the first token.
    pub fn new(config: RemoteJwksConfig) -> Result<Self, String> {
        if config.upstream.is_empty() || !config.path.starts_with('/') {
            return Err("jwt.jwks_url needs an upstream and a path that starts with '/'".into());
        }
        Ok(Self {
            config,
            state: RefCell::default(),
        })
    }

    /// The keys, fetched first when there are none yet or they are older than `ttl`.
    /// A failed fetch keeps the keys already known.
    fn keys(&self, now_ms: u64) -> Result<Vec<Rc<VerifyingKey>>, Failure> {
        let stale = self
            .state
            .borrow()
            .fetched_ms
            .is_none_or(|at| now_ms.saturating_sub(at) >= duration::millis(self.config.ttl));
        if stale && self.may_try(now_ms) {
            self.refresh(now_ms);
        }
        let state = self.state.borrow();
        if state.fetched_ms.is_none() {
            return Err(Failure::Unavailable(
                "the token signing keys cannot be fetched",
            ));
        }
        Ok(state.keys.clone())
    }

    /// Fetches the keys again because a token names an unknown `kid` (keys rotate), at
    /// most once per `min_refetch` so that made-up `kid`s cannot flood the upstream.
    /// True if new keys were fetched.
    fn refetch_for_unknown_kid(&self, now_ms: u64) -> bool {
        let state = self.state.borrow();
        // A fetch made for this very request (stale keys) already has the newest keys.
        let just_tried = state.tried_ms == Some(now_ms);
        let last = state.kid_refetch_ms;
        drop(state);
        if just_tried || !self.waited(last, now_ms) {
            return false;
        }
        self.state.borrow_mut().kid_refetch_ms = Some(now_ms);
        self.refresh(now_ms)
    }

    /// Whether a fetch may be tried now: the last try (a failed one, say) is long enough ago.
    fn may_try(&self, now_ms: u64) -> bool {
        let last = self.state.borrow().tried_ms;
        self.waited(last, now_ms)
    }

    fn waited(&self, last_ms: Option<u64>, now_ms: u64) -> bool {
        let wait = duration::millis(self.config.min_refetch);
        last_ms.is_none_or(|at| now_ms.saturating_sub(at) >= wait)
    }

    /// One fetch; true on success.
    fn refresh(&self, now_ms: u64) -> bool {
        self.state.borrow_mut().tried_ms = Some(now_ms);
        let Ok(keys) = self.fetch() else {
            return false;
        };
        let mut state = self.state.borrow_mut();
        state.keys = keys.into_iter().map(Rc::new).collect();
        state.fetched_ms = Some(now_ms);
        true
    }

    fn fetch(&self) -> Result<Vec<VerifyingKey>, HostError> {
        let response = http::send(&OutboundRequest {
            upstream: self.config.upstream.clone(),
            method: "GET".into(),
            path: self.config.path.clone(),
            headers: vec![Header {
                name: "accept".into(),
                value: b"application/jwk-set+json, application/json".to_vec(),
            }],
            body: None,
            timeout_ms: self.config.timeout.map(duration::millis_u32),
        })?;
        if response.status != 200 {
            return Err(HostError::Unavailable(format!(
                "status {}",
                response.status
            )));
        }
        let document = response.body.unwrap_or_default();
        from_jwks(&document, false, self.config.allow_oct).map_err(HostError::Invalid)
    }
}

/// All the keys of a JWT verifier.
pub struct KeySet {
    fixed: Vec<Rc<VerifyingKey>>,
    remote: Option<RemoteJwks>,
}

impl KeySet {
    /// Fixed keys and, optionally, a remote JWKS.
    pub fn new(fixed: Vec<VerifyingKey>, remote: Option<RemoteJwks>) -> Result<Self, String> {
        if fixed.is_empty() && remote.is_none() {
            return Err("jwt: no keys (give `keys`, `jwks` or `jwks_url`)".into());
        }
        Ok(Self {
            fixed: fixed.into_iter().map(Rc::new).collect(),
            remote,
        })
    }

    /// The keys that may verify a token with this `kid` and `alg`; none is an unknown key.
    pub fn candidates(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
        now_ms: u64,
    ) -> Result<Vec<Rc<VerifyingKey>>, Failure> {
        let fitting = |keys: &[Rc<VerifyingKey>]| -> Vec<Rc<VerifyingKey>> {
            keys.iter().filter(|k| k.fits(kid, alg)).cloned().collect()
        };
        let mut found = fitting(&self.fixed);
        if let Some(remote) = &self.remote {
            let fetched = remote.keys(now_ms);
            match fetched {
                Ok(keys) => found.extend(fitting(&keys)),
                Err(failure) if found.is_empty() => return Err(failure),
                Err(_) => {}
            }
            if found.is_empty() && kid.is_some() && remote.refetch_for_unknown_kid(now_ms) {
                found = fitting(&remote.keys(now_ms)?);
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JWKS: &str = r#"{ "keys": [ { "kty": "oct", "kid": "h", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0" } ] }"#;

    #[test]
    fn oct_keys_only_when_allowed() {
        assert!(from_jwks(JWKS.as_bytes(), false, false).unwrap().is_empty());
        assert!(from_jwks(JWKS.as_bytes(), true, false).is_err());
        let keys = from_jwks(JWKS.as_bytes(), true, true).unwrap();
        assert_eq!(keys.len(), 1);
        assert!(keys[0].fits(Some("h"), Algorithm::HS256));
    }
}
