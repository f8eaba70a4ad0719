//! The filter's config: what a key is made of, the TTL overrides and defaults, the stale
//! windows, and what the cache may store against the RFC's defaults.

use serde::Deserialize;

/// Which query parameters a key keeps.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum QueryKey {
    /// `"all"` (the default) or `"none"`.
    Word(String),
    /// Only these parameters (in name order).
    Only(Vec<String>),
}

impl Default for QueryKey {
    fn default() -> Self {
        Self::Word("all".into())
    }
}

/// What a cache key is made of besides the authority and the path.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// The query parameters in the key: `"all"` (default, sorted by name), `"none"`, or a
    /// list of names.
    #[serde(default)]
    pub query: QueryKey,
    /// Request headers whose values are part of the key (besides what `Vary` asks).
    #[serde(default)]
    pub headers: Vec<String>,
}

/// The filter's config; every field has a default.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// What a key is made of.
    pub key: KeyConfig,
    /// Freshness for every storable response, whatever the upstream said (an override).
    pub ttl_ms: Option<u64>,
    /// Freshness of a storable response that gives none and has no heuristic freshness
    /// (default 0: such a response is stored only to be revalidated).
    pub default_ttl_ms: u64,
    /// Freshness of a 404 or 410 that gives none (default 5000; 0 stores none): a cache
    /// penetration by missing keys costs one upstream request per key per interval.
    pub negative_ttl_ms: u64,
    /// At most this fraction of an entry's freshness is taken off, by a hash of its key
    /// (default 0.1), so that entries stored together do not expire together.
    pub jitter: f64,
    /// How long a stale entry may be served while one request revalidates it, when the
    /// response does not say (`stale-while-revalidate`; default 0).
    pub stale_while_revalidate_ms: u64,
    /// How long a stale entry may be served when the upstream fails, when the response
    /// does not say (`stale-if-error`; default 0).
    pub stale_if_error_ms: u64,
    /// How long an entry with a validator is kept past its freshness, to be revalidated
    /// (default 60 000).
    pub keep_for_revalidation_ms: u64,
    /// Store responses to requests with `Authorization` (default false; the RFC's shared
    /// cache stores them only when the response says `public`, `s-maxage` or
    /// `must-revalidate`, and this filter bypasses them unless told).
    pub cache_authorized: bool,
    /// Store responses that set cookies, without their `Set-Cookie` (default false: they
    /// are not stored).
    pub cache_set_cookie: bool,
    /// Let a client's `Cache-Control: no-cache` or `max-age=0` force a revalidation
    /// (default false: clients cannot make the cache go to the upstream on demand).
    pub honour_request_no_cache: bool,
    /// How long a request that missed waits for another request filling the same key
    /// (default 5000; capped by the gateway's `cache.max_wait_ms`).
    pub wait_ms: u32,
    /// How long a key whose response was not storable sends requests straight upstream,
    /// without waiting on each other (default 5000).
    pub pass_ms: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            key: KeyConfig::default(),
            ttl_ms: None,
            default_ttl_ms: 0,
            negative_ttl_ms: 5000,
            jitter: 0.1,
            stale_while_revalidate_ms: 0,
            stale_if_error_ms: 0,
            keep_for_revalidation_ms: 60_000,
            cache_authorized: false,
            cache_set_cookie: false,
            honour_request_no_cache: false,
            wait_ms: 5000,
            pass_ms: 5000,
        }
    }
}

impl Config {
    /// Checks the values; the message names the key.
    pub fn check(&self) -> Result<(), String> {
        if !(0.0..=0.5).contains(&self.jitter) {
            return Err("jitter must be between 0 and 0.5".into());
        }
        if let QueryKey::Word(word) = &self.key.query
            && word != "all"
            && word != "none"
        {
            return Err(format!(
                "key.query: {word:?} is not \"all\", \"none\" or a list of names"
            ));
        }
        for name in &self.key.headers {
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(format!("key.headers: {name:?} is not a header name"));
            }
        }
        Ok(())
    }
}
