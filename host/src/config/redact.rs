//! The effective config as `GET /config` shows it: every default filled in, secrets
//! redacted. `[secrets]`, `admin_token` and the Redis URL are [`SecretConfig`]s, which
//! serialize redacted; in plugin configs (free-form tables) a string under a key that
//! names a secret (`secret`, `password`, `token`, `private`, `credential`) is redacted too.

use serde_json::Value;

use super::{Config, REDACTED};

/// Key names whose string values are taken for secrets in free-form plugin configs.
const SECRET_WORDS: [&str; 5] = ["secret", "password", "token", "private", "credential"];

impl Config {
    /// The config with its defaults, as JSON, secrets redacted.
    pub fn redacted(&self) -> Value {
        let mut value = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Some(routes) = value.get_mut("routes").and_then(Value::as_array_mut) {
            for route in routes.iter_mut().filter_map(Value::as_object_mut) {
                for (key, table) in route.iter_mut() {
                    let tables: Vec<&mut Value> = match (key.as_str(), table) {
                        ("filters", Value::Array(filters)) => filters.iter_mut().collect(),
                        ("push_router", router) => vec![router],
                        _ => continue,
                    };
                    for config in tables.into_iter().filter_map(|t| t.get_mut("config")) {
                        redact_secret_keys(config);
                    }
                }
            }
        }
        value
    }
}

/// Replaces, anywhere in `value`, strings under keys that name a secret.
fn redact_secret_keys(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map.iter_mut() {
                let key = key.to_ascii_lowercase();
                if SECRET_WORDS.iter().any(|word| key.contains(word)) {
                    redact_strings(inner);
                } else {
                    redact_secret_keys(inner);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_secret_keys),
        _ => {}
    }
}

/// Replaces every string in `value`.
fn redact_strings(value: &mut Value) {
    match value {
        Value::String(text) => *text = REDACTED.to_string(),
        Value::Object(map) => map.values_mut().for_each(redact_strings),
        Value::Array(items) => items.iter_mut().for_each(redact_strings),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_and_defaults_shown() {
        let text = r#"
[server]
listen = ["127.0.0.1:0"]
plugins_dir = "."
admin_token = { value = "admin-secret" }
[secrets]
hmac = { value = "the-hmac-key" }
from_env = { env = "WEIR_KEY" }
[upstreams.u]
targets = ["127.0.0.1:1"]
[[routes]]
name = "r"
upstream = "u"
[[routes.filters]]
plugin = "auth.wasm"
config = { jwt = { client_secret = "s3cr3t", issuer = "me" }, api_tokens = ["t1"], mode = "strict" }
"#;
        let config = Config::parse(text, ".".into()).expect("a valid config");
        let shown = config.redacted();
        let text = shown.to_string();
        for secret in ["admin-secret", "the-hmac-key", "s3cr3t", "t1"] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
        assert_eq!(shown["secrets"]["from_env"]["env"], "WEIR_KEY");
        assert_eq!(
            shown["routes"][0]["filters"][0]["config"]["jwt"]["issuer"],
            "me"
        );
        assert_eq!(shown["routes"][0]["filters"][0]["config"]["mode"], "strict");
        assert_eq!(
            shown["server"]["shutdown_grace_ms"], 30_000,
            "defaults are filled in"
        );
    }
}
