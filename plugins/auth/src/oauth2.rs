//! Opaque bearer tokens checked by OAuth 2.0 token introspection (RFC 7662) at a named
//! upstream. An active token's answer is cached until its `exp`, and no longer than
//! `cache_ttl`.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::{Map, Value};
use weir_plugin_sdk::host::{clock, http, secrets};
use weir_plugin_sdk::{Header, duration};

use crate::cache::{Cache, sha256};
use crate::failure::Failure;
use crate::identity::Identity;

/// `oauth2` in the filter config.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuth2Config {
    /// The named upstream of the introspection endpoint (grant `http:<upstream>`).
    upstream: String,
    /// The endpoint's path.
    path: String,
    /// A secret `client_id:client_secret` sent with HTTP Basic (RFC 6749 §2.3.1).
    #[serde(default)]
    client_secret: Option<String>,
    /// The `token_type_hint` sent along (RFC 7662 §2.1), if any.
    #[serde(default)]
    token_type_hint: Option<String>,
    /// The timeout of an introspection call; the upstream's when absent.
    #[serde(default, alias = "timeout_ms", with = "duration::ms_opt")]
    timeout: Option<Duration>,
    /// The longest time an answer is used; 0 turns the cache off.
    #[serde(default = "ttl_60s", alias = "cache_ttl_ms", with = "duration::ms")]
    cache_ttl: Duration,
    #[serde(default = "default_cache_size")]
    cache_size: usize,
    /// The member of the answer that names the consumer; `client_id` when it is absent.
    #[serde(default = "default_consumer_field")]
    consumer_field: String,
    /// The member with the consumer's display name.
    #[serde(default = "default_username_field")]
    username_field: String,
}

fn ttl_60s() -> Duration {
    Duration::from_secs(60)
}

fn default_cache_size() -> usize {
    4096
}

fn default_consumer_field() -> String {
    "sub".into()
}

fn default_username_field() -> String {
    "username".into()
}

/// A configured introspection client.
pub struct Introspection {
    config: OAuth2Config,
    authorization: Option<Vec<u8>>,
    cache: Cache<Identity>,
}

impl Introspection {
    /// Checks the config and reads the client credentials.
    pub fn new(config: OAuth2Config) -> Result<Self, String> {
        if config.upstream.is_empty() || !config.path.starts_with('/') {
            return Err("oauth2 needs an upstream and a path that starts with '/'".into());
        }
        let authorization = match &config.client_secret {
            Some(name) => Some(
                client_authorization(&secrets::require_text(name)?)
                    .ok_or_else(|| format!("secret {name:?} is not `client_id:client_secret`"))?,
            ),
            None => None,
        };
        let size = if config.cache_ttl.is_zero() {
            0
        } else {
            config.cache_size
        };
        Ok(Self {
            config,
            authorization,
            cache: Cache::new(size),
        })
    }

    /// The consumer of an active `token`.
    pub fn verify(&self, token: &str) -> Result<Identity, Failure> {
        let now_ms = clock::now_ms();
        let key = sha256(token.as_bytes());
        if let Some(identity) = self.cache.get(&key, now_ms) {
            return Ok(identity);
        }
        let answer = self.introspect(token)?;
        // RFC 7662 §2.2: anything but `"active": true` is an inactive token.
        if answer.get("active") != Some(&Value::Bool(true)) {
            return Err(Failure::InvalidToken("the token is not active"));
        }
        let exp_ms = answer
            .get("exp")
            .and_then(Value::as_f64)
            .map(|s| s * 1000.0);
        if exp_ms.is_some_and(|exp| exp <= now_ms as f64) {
            return Err(Failure::TokenExpired);
        }
        let identity = self.identity(&answer)?;
        let max = now_ms.saturating_add(duration::millis(self.config.cache_ttl));
        let expires = exp_ms.map_or(max, |exp| max.min(exp as u64));
        self.cache.insert(key, identity.clone(), expires, now_ms);
        Ok(identity)
    }

    /// One introspection request (RFC 7662 §2.1) and its JSON answer.
    fn introspect(&self, token: &str) -> Result<Map<String, Value>, Failure> {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("token", token);
        if let Some(hint) = &self.config.token_type_hint {
            form.append_pair("token_type_hint", hint);
        }
        let mut headers = vec![
            header(
                "content-type",
                b"application/x-www-form-urlencoded".to_vec(),
            ),
            header("accept", b"application/json".to_vec()),
        ];
        if let Some(authorization) = &self.authorization {
            headers.push(header("authorization", authorization.clone()));
        }
        let unreachable =
            Failure::Unavailable("the token introspection endpoint cannot be reached");
        let response = http::send(&http::OutboundRequest {
            upstream: self.config.upstream.clone(),
            method: "POST".into(),
            path: self.config.path.clone(),
            headers,
            body: Some(form.finish().into_bytes()),
            timeout_ms: self.config.timeout.map(duration::millis_u32),
        })
        .map_err(|_| unreachable.clone())?;
        if response.status != 200 {
            return Err(unreachable);
        }
        serde_json::from_slice(&response.body.unwrap_or_default()).map_err(|_| {
            Failure::Unavailable("the token introspection endpoint answered with no JSON object")
        })
    }

    fn identity(&self, answer: &Map<String, Value>) -> Result<Identity, Failure> {
        let text = |name: &str| {
            answer
                .get(name)
                .and_then(Value::as_str)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        let id = text(&self.config.consumer_field)
            .or_else(|| text("client_id"))
            .ok_or(Failure::InvalidToken("the token names no consumer"))?;
        Ok(Identity {
            id,
            username: text(&self.config.username_field),
            scope: text("scope"),
        })
    }
}

/// `Basic base64(urlencode(id) ":" urlencode(secret))` from `id:secret` (RFC 6749 §2.3.1).
fn client_authorization(credentials: &str) -> Option<Vec<u8>> {
    let (id, secret) = credentials.trim().split_once(':')?;
    let encode = |part: &str| form_urlencoded::byte_serialize(part.as_bytes()).collect::<String>();
    let pair = format!("{}:{}", encode(id), encode(secret));
    Some(format!("Basic {}", STANDARD.encode(pair)).into_bytes())
}

fn header(name: &str, value: Vec<u8>) -> Header {
    Header {
        name: name.into(),
        value,
    }
}
