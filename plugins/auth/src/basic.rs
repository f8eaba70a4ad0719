//! HTTP Basic (RFC 7617): users with password hashes in PHC form (Argon2) or bcrypt form
//! (`$2b$`, `$2y$`, `$2a$`). A verified credential is cached for a short while, under its
//! SHA-256, so that a busy client does not pay for the hash on every request.
//!
//! An unknown user name costs the same hash as a wrong password (the password is checked
//! against a configured user's hash and the answer thrown away), so that the time of a
//! refusal does not tell which user names exist.

use std::time::Duration;

use argon2::{Argon2, PasswordHash, PasswordVerifier};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use weir_plugin_sdk::duration;
use weir_plugin_sdk::host::clock;

use crate::cache::{Cache, sha256};
use crate::identity::Identity;

/// `basic` in the filter config.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicConfig {
    users: Vec<UserEntry>,
    /// How long a verified credential is remembered (`cache_ttl_ms`, a number of ms, is
    /// the older spelling); 0 turns the cache off.
    #[serde(default = "ttl_30s", alias = "cache_ttl_ms", with = "duration::ms")]
    cache_ttl: Duration,
    /// How many verified credentials are remembered.
    #[serde(default = "default_cache_size")]
    cache_size: usize,
}

fn ttl_30s() -> Duration {
    Duration::from_secs(30)
}

fn default_cache_size() -> usize {
    1024
}

/// One user in the config.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserEntry {
    username: String,
    password_hash: String,
    /// The consumer id; the user name when absent.
    #[serde(default)]
    consumer: Option<String>,
}

/// A password hash in one of the accepted forms.
enum PasswordHashKind {
    Argon2(String),
    Bcrypt(String),
}

impl PasswordHashKind {
    fn parse(hash: &str) -> Option<Self> {
        if hash.starts_with("$argon2") {
            PasswordHash::new(hash).ok()?;
            Some(Self::Argon2(hash.to_string()))
        } else if ["$2a$", "$2b$", "$2y$"].iter().any(|p| hash.starts_with(p)) {
            hash.parse::<bcrypt::HashParts>().ok()?;
            Some(Self::Bcrypt(hash.to_string()))
        } else {
            None
        }
    }

    fn verify(&self, password: &str) -> bool {
        #[cfg(test)]
        tests::HASHES_RUN.with(|n| n.set(n.get() + 1));
        match self {
            Self::Argon2(hash) => Argon2::default()
                .verify_password(password.as_bytes(), hash.as_str())
                .is_ok(),
            Self::Bcrypt(hash) => bcrypt::verify(password, hash).unwrap_or(false),
        }
    }
}

/// The configured users and the cache of verified credentials.
pub struct BasicUsers {
    /// Never empty: the first user's hash is also the decoy for unknown user names.
    users: Vec<(String, PasswordHashKind, Identity)>,
    cache_ttl_ms: u64,
    cache: Cache<Identity>,
}

impl BasicUsers {
    /// Checks every user's hash.
    pub fn new(config: BasicConfig) -> Result<Self, String> {
        let mut users: Vec<(String, PasswordHashKind, Identity)> = Vec::new();
        for user in config.users {
            if user.username.is_empty() || user.username.contains(':') {
                return Err(format!(
                    "basic.users: user name {:?} must be non-empty and without ':' (RFC 7617)",
                    user.username
                ));
            }
            if users.iter().any(|(name, _, _)| *name == user.username) {
                return Err(format!(
                    "basic.users: user {:?} is listed twice",
                    user.username
                ));
            }
            let hash = PasswordHashKind::parse(&user.password_hash).ok_or_else(|| {
                format!(
                    "basic.users: the password_hash of {:?} is neither an Argon2 PHC string nor a bcrypt hash",
                    user.username
                )
            })?;
            let identity = Identity {
                username: Some(user.username.clone()),
                ..Identity::new(user.consumer.unwrap_or_else(|| user.username.clone()))
            };
            users.push((user.username, hash, identity));
        }
        if users.is_empty() {
            return Err("basic.users: no users".into());
        }
        let cache_ttl_ms = duration::millis(config.cache_ttl);
        let cache_size = if cache_ttl_ms == 0 {
            0
        } else {
            config.cache_size
        };
        Ok(Self {
            users,
            cache_ttl_ms,
            cache: Cache::new(cache_size),
        })
    }

    /// The consumer for the credentials of a `Basic` authorization (the part after the
    /// scheme), or `None` when they are malformed or wrong.
    pub fn verify(&self, token68: &str) -> Option<Identity> {
        // RFC 7617 §2: base64 of user-id ":" password, UTF-8 with charset="UTF-8".
        let decoded = STANDARD.decode(token68.trim()).ok()?;
        let key = sha256(&decoded);
        let now = (self.cache_ttl_ms > 0).then(clock::now_ms);
        if let Some(now) = now
            && let Some(identity) = self.cache.get(&key, now)
        {
            return Some(identity);
        }
        let text = String::from_utf8(decoded).ok()?;
        let (username, password) = text.split_once(':')?;
        let Some((_, hash, identity)) = self.users.iter().find(|(name, _, _)| name == username)
        else {
            // The same work as a wrong password (same algorithm and cost as the configured
            // hashes, when they share one), then the same refusal.
            let (_, decoy, _) = &self.users[0];
            let _ = decoy.verify(password);
            return None;
        };
        if !hash.verify(password) {
            return None;
        }
        if let Some(now) = now {
            let expires = now.saturating_add(self.cache_ttl_ms);
            self.cache.insert(key, identity.clone(), expires, now);
        }
        Some(identity.clone())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::cell::Cell;

    use super::*;

    thread_local! {
        /// Password hashes checked on this thread.
        pub(crate) static HASHES_RUN: Cell<u32> = const { Cell::new(0) };
    }

    fn users() -> BasicUsers {
        // bcrypt of "secret" at cost 4 (the smallest, to keep the test fast).
        let hash = bcrypt::hash_with_salt("secret", 4, [7; 16])
            .unwrap()
            .format_for_version(bcrypt::Version::TwoB);
        let config: BasicConfig = serde_json::from_value(serde_json::json!({
            "users": [{ "username": "alice", "password_hash": hash }],
            "cache_ttl": "0s",
        }))
        .unwrap();
        BasicUsers::new(config).unwrap()
    }

    /// How many password hashes `f` checked.
    pub(crate) fn hashes_run_by(f: impl FnOnce()) -> u32 {
        let before = HASHES_RUN.with(Cell::get);
        f();
        HASHES_RUN.with(Cell::get) - before
    }

    #[test]
    fn an_unknown_user_costs_a_hash_like_a_wrong_password() {
        let users = users();
        let basic = |credentials: &str| STANDARD.encode(credentials);
        assert!(users.verify(&basic("alice:secret")).is_some());
        assert_eq!(
            hashes_run_by(|| assert!(users.verify(&basic("alice:wrong")).is_none())),
            1
        );
        assert_eq!(
            hashes_run_by(|| assert!(users.verify(&basic("mallory:wrong")).is_none())),
            1
        );
        // Even with the decoy's own password, an unknown user is refused.
        assert!(users.verify(&basic("mallory:secret")).is_none());
    }
}
