//! The filter's config: the methods it accepts, where the consumer goes, who may pass.

use serde::Deserialize;

use crate::api_key::ApiKeyConfig;
use crate::basic::BasicConfig;
use crate::credential::is_header_name;
use crate::jwt::JwtConfig;
use crate::oauth2::OAuth2Config;

/// The config of one `auth` filter.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The realm named in `WWW-Authenticate`.
    #[serde(default = "default_realm")]
    pub realm: String,
    /// Remove the credential that was used before the request goes upstream.
    #[serde(default)]
    pub hide_credentials: bool,
    /// The headers that carry the consumer upstream.
    #[serde(default)]
    pub consumer_headers: ConsumerHeaders,
    /// Consumer ids allowed on the route; empty allows every authenticated consumer.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Consumer ids refused on the route (checked after `allow`).
    #[serde(default)]
    pub deny: Vec<String>,
    /// API keys.
    #[serde(default)]
    pub api_key: Option<ApiKeyConfig>,
    /// HTTP Basic.
    #[serde(default)]
    pub basic: Option<BasicConfig>,
    /// JWT bearer tokens.
    #[serde(default)]
    pub jwt: Option<JwtConfig>,
    /// Opaque bearer tokens checked by introspection.
    #[serde(default)]
    pub oauth2: Option<OAuth2Config>,
}

fn default_realm() -> String {
    "weir".into()
}

/// Header names for the consumer's id, name and scopes; an empty name sends none.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsumerHeaders {
    #[serde(default = "default_id_header")]
    id: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    scope: String,
}

impl Default for ConsumerHeaders {
    fn default() -> Self {
        Self {
            id: default_id_header(),
            username: String::new(),
            scope: String::new(),
        }
    }
}

fn default_id_header() -> String {
    "x-consumer-id".into()
}

impl ConsumerHeaders {
    /// The configured (id, username, scope) header names, lower-cased, checked.
    pub fn names(&self) -> Result<[Option<String>; 3], String> {
        let check = |key: &str, name: &str| -> Result<Option<String>, String> {
            match name {
                "" => Ok(None),
                name if is_header_name(name) => Ok(Some(name.to_ascii_lowercase())),
                name => Err(format!(
                    "consumer_headers.{key}: {name:?} is not a header name"
                )),
            }
        };
        Ok([
            check("id", &self.id)?,
            check("username", &self.username)?,
            check("scope", &self.scope)?,
        ])
    }
}

impl Config {
    /// The realm, checked to be a valid quoted-string body that needs no escaping.
    pub fn checked_realm(&self) -> Result<String, String> {
        let fine = |c: char| (c == ' ' || c.is_ascii_graphic()) && c != '"' && c != '\\';
        if self.realm.is_empty() || !self.realm.chars().all(fine) {
            return Err(format!(
                "realm {:?} must be printable ASCII without '\"' or '\\'",
                self.realm
            ));
        }
        Ok(self.realm.clone())
    }
}
