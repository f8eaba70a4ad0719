//! Vendors' access tokens (APNs provider tokens, OAuth2 bearer tokens), kept across
//! snapshots so that a reload does not make new ones (APNs refuses a provider token
//! refreshed more often than every 20 minutes).

use dashmap::DashMap;

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
