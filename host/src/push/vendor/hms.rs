//! Huawei Push Kit: `POST /v1/<app id>/messages:send` with a bearer token from the
//! client-credentials grant; the answer's `code` says what happened (`80000000` success).

use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use serde_json::{Value, json};

use super::token::{Credential, Kind};
use super::{Channel, Http, Outcome, Sending, TokenCache, grant, retry, ttl_seconds};
use crate::config::push::HmsConfig;
use crate::push::decision::Priority;
use crate::push::store::{Device, Message};

/// Where the OAuth server takes client-credentials grants.
const TOKEN_PATH: &str = "/oauth2/v3/token";

/// The Push Kit channel.
pub(super) struct Hms {
    send: Http,
    token_http: Http,
    app_id: String,
    client_secret: String,
    credential: Credential,
}

impl Hms {
    pub(super) fn new(
        config: &HmsConfig,
        send: Http,
        token_http: Http,
        secret: &[u8],
        tokens: Arc<TokenCache>,
    ) -> anyhow::Result<Self> {
        let client_secret = String::from_utf8(secret.to_vec())
            .map_err(|_| anyhow::anyhow!("push.vendors.hms.client_secret is not UTF-8"))?;
        Ok(Self {
            send,
            token_http,
            credential: Credential::new(tokens, format!("hms:{}", config.app_id), Kind::Granted),
            app_id: config.app_id.clone(),
            client_secret,
        })
    }

    async fn access_token(&self) -> Result<String, String> {
        self.credential
            .bearer(|| async {
                let fields = [
                    ("grant_type", "client_credentials"),
                    ("client_id", self.app_id.as_str()),
                    ("client_secret", self.client_secret.as_str()),
                ];
                grant(&self.token_http, TOKEN_PATH, &fields).await
            })
            .await
    }

    fn request(
        &self,
        bearer: &str,
        token: &str,
        message: &Message,
    ) -> Result<Request<Bytes>, String> {
        let urgency = match message.priority {
            Priority::High => "HIGH",
            Priority::Normal => "NORMAL",
        };
        let body = json!({
            "validate_only": false,
            "message": {
                "data": message.payload.to_string(),
                "android": { "urgency": urgency, "ttl": format!("{}s", ttl_seconds(message)) },
                "token": [token],
            }
        });
        Request::post(format!("/v1/{}/messages:send", self.app_id))
            .header("authorization", format!("Bearer {bearer}"))
            .header("content-type", "application/json;charset=utf-8")
            .body(Bytes::from(body.to_string()))
            .map_err(|e| e.to_string())
    }
}

/// What Push Kit's answer means; `None` when it refused the access token.
fn answer(response: &Response<Bytes>) -> Option<Outcome> {
    let status = response.status().as_u16();
    let answer: Value = serde_json::from_slice(response.body()).unwrap_or_default();
    let code = answer["code"].as_str().unwrap_or_default().to_string();
    Some(match (status, code.as_str()) {
        (200, "80000000") => Outcome::Sent,
        (_, "80200001" | "80200003") | (401, _) => return None,
        (_, "80300007") => Outcome::Unregistered(format!("{status} {code}")),
        (429 | 500 | 502 | 503, _) => retry(Some(response), format!("{status} {code}")),
        _ => Outcome::Refused(format!("{status} {code}")),
    })
}

impl Channel for Hms {
    fn send<'a>(&'a self, _: &'a Device, token: &'a str, message: &'a Message) -> Sending<'a> {
        Box::pin(self.credential.send(
            &self.send,
            || self.access_token(),
            |bearer| self.request(bearer, token, message),
            answer,
        ))
    }
}
