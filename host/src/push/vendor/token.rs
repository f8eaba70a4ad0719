//! Vendors' access tokens (APNs provider tokens, OAuth2 bearer tokens), kept across
//! snapshots so that a reload does not make new ones (APNs refuses a provider token
//! refreshed more often than every 20 minutes); and a send with one, which replaces a
//! token the vendor refuses once, at once.

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use dashmap::DashMap;
use http::{Request, Response};

use super::{Http, Outcome, retry};

/// One token and when it is stale.
#[derive(Debug, Clone)]
struct Token {
    value: String,
    stale_ms: u64,
}

/// Tokens by credential (`apns:<team>/<key id>`, `fcm:<client email>`, `hms:<app id>`).
#[derive(Debug, Default)]
pub struct TokenCache {
    tokens: DashMap<String, Token>,
    /// Held while a token is made, so that concurrent sends make one, not one each.
    making: tokio::sync::Mutex<()>,
}

impl TokenCache {
    /// The token under `key`, or one `make` makes (with the time it goes stale) when there
    /// is none fresh at `now_ms`; one maker at a time.
    pub async fn get_or_make<F, Fut>(
        &self,
        key: &str,
        now_ms: u64,
        make: F,
    ) -> Result<String, String>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<(String, u64), String>>,
    {
        if let Some(token) = self.get(key, now_ms) {
            return Ok(token);
        }
        let _making = self.making.lock().await;
        if let Some(token) = self.get(key, now_ms) {
            return Ok(token);
        }
        let (token, stale_ms) = make().await?;
        self.put(key, token.clone(), stale_ms);
        Ok(token)
    }

    /// The token under `key`, unless it is stale at `now_ms`.
    pub fn get(&self, key: &str, now_ms: u64) -> Option<String> {
        let token = self.tokens.get(key)?;
        (token.stale_ms > now_ms).then(|| token.value.clone())
    }

    /// Keeps `value` under `key` until `stale_ms`.
    pub fn put(&self, key: &str, value: String, stale_ms: u64) {
        self.tokens
            .insert(key.to_string(), Token { value, stale_ms });
    }

    /// Forgets `value` under `key` (a vendor refused it), unless a newer one replaced it
    /// already: concurrent refusals of one token make one new token.
    pub fn refused(&self, key: &str, value: &str) {
        self.tokens.remove_if(key, |_, token| token.value == value);
    }
}

/// How a channel's token is had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// Signed here (an APNs provider token): failing to make one is final for the send.
    Signed,
    /// Granted by the vendor's OAuth2 server: failing to get one is retried later.
    Granted,
}

impl Kind {
    /// What the token is called in outcomes.
    fn name(self) -> &'static str {
        match self {
            Self::Signed => "provider token",
            Self::Granted => "access token",
        }
    }
}

/// One channel's token: its place in the cache, and how it is had.
pub(super) struct Credential {
    tokens: Arc<TokenCache>,
    key: String,
    kind: Kind,
}

impl Credential {
    /// The token cached in `tokens` under `key`, had as `kind` says.
    pub(super) fn new(tokens: Arc<TokenCache>, key: String, kind: Kind) -> Self {
        Self { tokens, key, kind }
    }

    /// The cached token, or one `make` makes (with the time it goes stale) when there is
    /// none fresh at `now_ms`.
    pub(super) async fn get_or_make<F, Fut>(&self, now_ms: u64, make: F) -> Result<String, String>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(String, u64), String>>,
    {
        self.tokens.get_or_make(&self.key, now_ms, make).await
    }

    /// The cached OAuth2 token, or a new one from `fetch` (the token and its lifetime in
    /// seconds); kept until a minute before it expires.
    pub(super) async fn bearer<F, Fut>(&self, fetch: F) -> Result<String, String>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(String, u64), String>>,
    {
        let now = crate::time::now_ms();
        let stale = |life_s: u64| now + life_s.saturating_sub(60) * 1000;
        self.get_or_make(now, || async {
            fetch().await.map(|(t, life)| (t, stale(life)))
        })
        .await
    }

    /// Sends one message over `http` with the token `token` gives: `request` makes the
    /// request with it, and `answer` says what the vendor's answer means (`None`: the
    /// vendor refused the token). A refused token is forgotten and replaced once, at once;
    /// refused again, the send is retried later.
    pub(super) async fn send<Fut>(
        &self,
        http: &Http,
        token: impl Fn() -> Fut,
        request: impl Fn(&str) -> Result<Request<Bytes>, String>,
        answer: fn(&Response<Bytes>) -> Option<Outcome>,
    ) -> Outcome
    where
        Fut: Future<Output = Result<String, String>>,
    {
        let what = self.kind.name();
        for _ in 0..2 {
            let access = match token().await {
                Ok(access) => access,
                Err(e) if self.kind == Kind::Signed => {
                    return Outcome::Refused(format!("{what}: {e}"));
                }
                Err(e) => return retry(None, format!("{what}: {e}")),
            };
            let request = match request(&access) {
                Ok(request) => request,
                Err(e) => return Outcome::Refused(e),
            };
            let response = match http.call(request).await {
                Ok(response) => response,
                Err(e) => return retry(None, e),
            };
            match answer(&response) {
                Some(outcome) => return outcome,
                None => self.tokens.refused(&self.key, &access),
            }
        }
        retry(None, format!("{what} refused twice"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_token_is_forgotten_once() {
        let cache = TokenCache::default();
        cache.put("k", "old".into(), 100);
        assert_eq!(cache.get("k", 99).as_deref(), Some("old"));
        assert_eq!(cache.get("k", 100), None, "stale");
        cache.put("k", "new".into(), 200);
        cache.refused("k", "old");
        assert_eq!(cache.get("k", 150).as_deref(), Some("new"));
        cache.refused("k", "new");
        assert_eq!(cache.get("k", 150), None);
    }
}
