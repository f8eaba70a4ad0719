//! Xiaomi Mi Push: `POST /v3/message/regid`, a form body, `Authorization: key=<app
//! secret>`; the answer's `result`/`code` say what happened and `data.badRegIds` lists dead
//! tokens.

use bytes::Bytes;
use http::Request;
use serde_json::Value;

use super::{Channel, Http, Outcome, Sending, retry};
use crate::config::push::MiConfig;
use crate::push::store::{Device, Message};

/// The Mi Push channel.
pub(super) struct Mi {
    http: Http,
    authorization: String,
    package_name: String,
}

impl Mi {
    pub(super) fn new(config: &MiConfig, http: Http, secret: &[u8]) -> anyhow::Result<Self> {
        let secret = String::from_utf8(secret.to_vec())
            .map_err(|_| anyhow::anyhow!("push.vendors.mi.app_secret is not UTF-8"))?;
        Ok(Self {
            http,
            authorization: format!("key={secret}"),
            package_name: config.package_name.clone(),
        })
    }

    fn request(&self, token: &str, message: &Message) -> Result<Request<Bytes>, String> {
        let ttl_ms = message
            .expires_ms
            .saturating_sub(crate::time::now_ms())
            .max(1);
        let payload = message.payload.to_string();
        let form = form_urlencoded::Serializer::new(String::new())
            .append_pair("registration_id", token)
            .append_pair("restricted_package_name", &self.package_name)
            .append_pair("payload", &payload)
            .append_pair("pass_through", "1")
            .append_pair("time_to_live", &ttl_ms.to_string())
            .finish();
        Request::post("/v3/message/regid")
            .header("authorization", &self.authorization)
            .header(
                "content-type",
                "application/x-www-form-urlencoded;charset=UTF-8",
            )
            .body(Bytes::from(form))
            .map_err(|e| e.to_string())
    }
}

impl Channel for Mi {
    fn send<'a>(&'a self, _: &'a Device, token: &'a str, message: &'a Message) -> Sending<'a> {
        Box::pin(async move {
            let request = match self.request(token, message) {
                Ok(request) => request,
                Err(e) => return Outcome::Refused(e),
            };
            let response = match self.http.call(request).await {
                Ok(response) => response,
                Err(e) => return retry(None, e),
            };
            let status = response.status().as_u16();
            let answer: Value = serde_json::from_slice(response.body()).unwrap_or_default();
            let bad = answer["data"]["badRegIds"]
                .as_str()
                .is_some_and(|ids| ids.split(',').any(|id| id.trim() == token));
            let code = answer["code"].as_i64().unwrap_or(-1);
            match status {
                _ if bad => Outcome::Unregistered(format!("badRegIds ({code})")),
                200 if answer["result"] == "ok" && code == 0 => Outcome::Sent,
                429 | 500 | 502 | 503 => retry(Some(&response), format!("{status} {code}")),
                _ => Outcome::Refused(format!(
                    "{status} {code} {}",
                    answer["description"].as_str().unwrap_or_default()
                )),
            }
        })
    }
}
