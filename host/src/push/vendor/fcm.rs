//! FCM HTTP v1: `POST /v1/projects/<id>/messages:send` with an OAuth2 bearer token that a
//! service-account JWT grant (RS256, RFC 7523) obtains from the account's `token_uri`.

use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::token::{Credential, Kind};
use super::{Channel, Http, Outcome, Sending, TokenCache, grant, retry, ttl_seconds};
use crate::config::push::FcmConfig;
use crate::push::decision::Priority;
use crate::push::store::{Device, Message};

const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";

#[derive(Deserialize)]
struct ServiceAccount {
    client_email: String,
    private_key: String,
    token_uri: String,
}

/// The FCM channel.
pub(super) struct Fcm {
    send: Http,
    token_http: Http,
    project_id: String,
    account: ServiceAccount,
    token_path: String,
    key: EncodingKey,
    credential: Credential,
}

impl Fcm {
    pub(super) fn new(
        config: &FcmConfig,
        send: Http,
        token_http: Http,
        json: &[u8],
        tokens: Arc<TokenCache>,
    ) -> anyhow::Result<Self> {
        let account: ServiceAccount = serde_json::from_slice(json)
            .map_err(|e| anyhow::anyhow!("push.vendors.fcm.service_account: {e}"))?;
        let key = EncodingKey::from_rsa_pem(account.private_key.as_bytes())
            .map_err(|e| anyhow::anyhow!("push.vendors.fcm.service_account: private_key: {e}"))?;
        let token_path = account
            .token_uri
            .parse::<http::Uri>()
            .ok()
            .and_then(|uri| uri.path_and_query().map(|p| p.to_string()))
            .ok_or_else(|| {
                anyhow::anyhow!("push.vendors.fcm.service_account: token_uri is not a URL")
            })?;
        Ok(Self {
            send,
            token_http,
            project_id: config.project_id.clone(),
            credential: Credential::new(
                tokens,
                format!("fcm:{}", account.client_email),
                Kind::Granted,
            ),
            token_path,
            account,
            key,
        })
    }

    async fn access_token(&self) -> Result<String, String> {
        self.credential
            .bearer(|| async {
                let now = crate::time::now_ms() / 1000;
                let claims = json!({
                    "iss": self.account.client_email,
                    "scope": SCOPE,
                    "aud": self.account.token_uri,
                    "iat": now,
                    "exp": now + 3600,
                });
                let assertion =
                    jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &self.key)
                        .map_err(|e| e.to_string())?;
                let fields = [
                    ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                    ("assertion", assertion.as_str()),
                ];
                grant(&self.token_http, &self.token_path, &fields).await
            })
            .await
    }

    fn request(
        &self,
        bearer: &str,
        token: &str,
        message: &Message,
    ) -> Result<Request<Bytes>, String> {
        let priority = match message.priority {
            Priority::High => "high",
            Priority::Normal => "normal",
        };
        let mut android =
            json!({ "priority": priority, "ttl": format!("{}s", ttl_seconds(message)) });
        if let Some(key) = &message.collapse_key {
            android["collapse_key"] = json!(key);
        }
        let body = json!({ "message": { "token": token, "data": data(&message.payload), "android": android } });
        Request::post(format!("/v1/projects/{}/messages:send", self.project_id))
            .header("authorization", format!("Bearer {bearer}"))
            .header("content-type", "application/json")
            .body(Bytes::from(body.to_string()))
            .map_err(|e| e.to_string())
    }
}

/// FCM's `data` is a map of strings: an object's values as text, anything else under
/// `payload`.
fn data(payload: &Value) -> Map<String, Value> {
    match payload {
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| {
                let text = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                (k.clone(), Value::String(text))
            })
            .collect(),
        other => Map::from_iter([("payload".to_string(), Value::String(other.to_string()))]),
    }
}

/// The FCM error code of an error answer (`details[].errorCode`), or its `status`.
fn error_code(body: &[u8]) -> String {
    let answer: Value = serde_json::from_slice(body).unwrap_or_default();
    let error = &answer["error"];
    error["details"]
        .as_array()
        .and_then(|d| d.iter().find_map(|d| d["errorCode"].as_str()))
        .or_else(|| error["status"].as_str())
        .unwrap_or_default()
        .to_string()
}

/// What FCM's answer means; `None` when it refused the access token.
fn answer(response: &Response<Bytes>) -> Option<Outcome> {
    let status = response.status().as_u16();
    let code = error_code(response.body());
    Some(match (status, code.as_str()) {
        (200, _) => Outcome::Sent,
        (401, _) => return None,
        (_, "UNREGISTERED" | "SENDER_ID_MISMATCH") | (404, _) => {
            Outcome::Unregistered(format!("{status} {code}"))
        }
        (429 | 500 | 502 | 503, _) => retry(Some(response), format!("{status} {code}")),
        _ => Outcome::Refused(format!("{status} {code}")),
    })
}

impl Channel for Fcm {
    fn send<'a>(&'a self, _: &'a Device, token: &'a str, message: &'a Message) -> Sending<'a> {
        Box::pin(self.credential.send(
            &self.send,
            || self.access_token(),
            |bearer| self.request(bearer, token, message),
            answer,
        ))
    }
}
