//! APNs (HTTP/2, token-based): `POST /3/device/<token>` with an ES256 provider token
//! (`kid`, `iss` = team id, `iat`), refreshed after 40 minutes (Apple accepts 20–60) or
//! once when APNs answers `ExpiredProviderToken`, and the `apns-*` headers.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http::{Request, Response};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use super::token::{Credential, Kind};
use super::{Channel, Http, Outcome, Sending, TokenCache, retry};
use crate::config::push::ApnsConfig;
use crate::push::decision::Priority;
use crate::push::store::{Device, Message};

/// How long a provider token is used (Apple: between 20 and 60 minutes).
const TOKEN_LIFE_MS: u64 = 40 * 60 * 1000;

/// The APNs channel.
pub(super) struct Apns {
    http: Http,
    config: ApnsConfig,
    key: EncodingKey,
    credential: Credential,
    /// The `iat` of the last token made: a new token always has a later one (ES256 here is
    /// deterministic, RFC 6979, so the same claims would make the very token APNs refused).
    last_iat: AtomicU64,
}

impl Apns {
    pub(super) fn new(
        config: &ApnsConfig,
        http: Http,
        pem: &[u8],
        tokens: Arc<TokenCache>,
    ) -> anyhow::Result<Self> {
        let key = EncodingKey::from_ec_pem(pem)
            .map_err(|e| anyhow::anyhow!("push.vendors.apns.key: not an EC P-256 PEM key: {e}"))?;
        Ok(Self {
            http,
            credential: Credential::new(
                tokens,
                format!("apns:{}/{}", config.team_id, config.key_id),
                Kind::Signed,
            ),
            config: config.clone(),
            key,
            last_iat: AtomicU64::new(0),
        })
    }

    /// The provider token: the cached one, or a new one.
    async fn provider_token(&self) -> Result<String, String> {
        let now = crate::time::now_ms();
        let make = || async {
            let mut header = Header::new(Algorithm::ES256);
            header.kid = Some(self.config.key_id.clone());
            let iat = (now / 1000).max(self.last_iat.load(Ordering::Relaxed) + 1);
            self.last_iat.store(iat, Ordering::Relaxed);
            let claims = json!({ "iss": self.config.team_id, "iat": iat });
            let token =
                jsonwebtoken::encode(&header, &claims, &self.key).map_err(|e| e.to_string())?;
            Ok((token, now + TOKEN_LIFE_MS))
        };
        self.credential.get_or_make(now, make).await
    }

    fn request(
        &self,
        provider: &str,
        token: &str,
        message: &Message,
    ) -> Result<Request<Bytes>, String> {
        let body = body(&message.payload);
        // A silent notification is a `background` push, which APNs takes at priority 5 only.
        let silent = !message.payload.get("aps").is_some_and(Value::is_object);
        let push_type = if silent {
            "background"
        } else {
            self.config.push_type.as_str()
        };
        let priority = match (push_type, message.priority) {
            ("background", _) | (_, Priority::Normal) => "5",
            (_, Priority::High) => "10",
        };
        let mut request = Request::post(format!("/3/device/{token}"))
            .header("authorization", format!("bearer {provider}"))
            .header("apns-topic", &self.config.topic)
            .header("apns-push-type", push_type)
            .header("apns-priority", priority)
            .header("apns-expiration", (message.expires_ms / 1000).to_string())
            .header("content-type", "application/json");
        if let Some(key) = &message.collapse_key {
            request = request.header("apns-collapse-id", key);
        }
        request
            .body(Bytes::from(body.to_string()))
            .map_err(|e| e.to_string())
    }
}

/// The notification: the payload itself when it carries its `aps` dictionary, else the
/// payload as `data` under a silent `aps`.
fn body(payload: &Value) -> Value {
    match payload {
        Value::Object(map) if map.contains_key("aps") => payload.clone(),
        _ => json!({ "aps": { "content-available": 1 }, "data": payload }),
    }
}

/// What APNs's answer means; `None` when it refused the provider token (expired or
/// invalid).
fn answer(response: &Response<Bytes>) -> Option<Outcome> {
    let status = response.status().as_u16();
    let reason = serde_json::from_slice::<Value>(response.body())
        .ok()
        .and_then(|v| v["reason"].as_str().map(str::to_string))
        .unwrap_or_default();
    Some(match (status, reason.as_str()) {
        (200, _) => Outcome::Sent,
        (403, "ExpiredProviderToken" | "InvalidProviderToken") => return None,
        (410, _) | (400, "BadDeviceToken" | "DeviceTokenNotForTopic") => {
            Outcome::Unregistered(format!("{status} {reason}"))
        }
        (429 | 500 | 502 | 503, _) => retry(Some(response), format!("{status} {reason}")),
        _ => Outcome::Refused(format!("{status} {reason}")),
    })
}

impl Channel for Apns {
    fn send<'a>(&'a self, _: &'a Device, token: &'a str, message: &'a Message) -> Sending<'a> {
        // A provider token APNs calls expired is replaced once, at once.
        Box::pin(self.credential.send(
            &self.http,
            || self.provider_token(),
            |provider| self.request(provider, token, message),
            answer,
        ))
    }
}
