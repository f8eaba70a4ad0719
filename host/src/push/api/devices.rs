//! A devices endpoint: registering, listing and unbinding the caller's devices, and the
//! acks of SSE clients (which have no frames to ack with).

use http::{Response, StatusCode};
use serde::Deserialize;
use serde_json::json;

use super::PushRequest;
use super::input::{check_id, consumer, query, read_json};
use super::refusal::{Refusal, json_response, method_not_allowed, unknown_device};
use crate::body::ProxyBody;
use crate::config::push::PushConfig;
use crate::push::PushService;
use crate::push::decision::Platform;
use crate::push::store::Device;

/// The longest vendor token.
const MAX_TOKEN: usize = 4096;
/// The most topics a device follows.
const MAX_TOPICS: usize = 64;

/// A registration, from the devices endpoint or a connection.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    /// The device id.
    pub device: String,
    /// Its platform.
    pub platform: Platform,
    /// Its vendor token.
    #[serde(default)]
    pub token: Option<String>,
    /// Topics it follows.
    #[serde(default)]
    pub topics: Vec<String>,
}

/// A devices-endpoint `POST`: a registration, or an SSE client's ack.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum DevicesPost {
    Ack { device: String, ack: u64 },
    Register(Registration),
}

impl PushService {
    /// The caller's devices: `GET` lists them, `POST` registers one (or takes an SSE
    /// client's ack), `DELETE ?device=<id>` unbinds one.
    pub(super) async fn devices_endpoint(
        &self,
        mut request: PushRequest<'_>,
        config: &PushConfig,
    ) -> Result<Response<ProxyBody>, Refusal> {
        let user = consumer(&request)?;
        match request.parts.method {
            http::Method::GET => {
                let devices = self.store()?.devices(user).await?;
                Ok(json_response(
                    StatusCode::OK,
                    json!({ "devices": devices }).to_string(),
                ))
            }
            http::Method::POST => match read_json(&mut request, config.max_frame_bytes).await? {
                DevicesPost::Register(registration) => {
                    let device = self.register(&user, registration).await?;
                    Ok(json_response(
                        StatusCode::CREATED,
                        json!({ "device": device }).to_string(),
                    ))
                }
                DevicesPost::Ack { device, ack } => {
                    self.owned(&user, &device).await?;
                    let acked = self.store()?.ack(device, ack).await?;
                    Ok(json_response(
                        StatusCode::OK,
                        json!({ "acked": acked }).to_string(),
                    ))
                }
            },
            http::Method::DELETE => {
                let device = query(request.parts, "device").ok_or_else(|| {
                    Refusal::new(StatusCode::BAD_REQUEST, "no_device", "give ?device=<id>")
                })?;
                match self.store()?.unbind(user, device).await? {
                    true => Ok(json_response(StatusCode::OK, "{}".into())),
                    false => Err(unknown_device()),
                }
            }
            _ => Err(method_not_allowed("GET, POST, DELETE")),
        }
    }

    /// Registers a device of `user`.
    pub(in crate::push) async fn register(
        &self,
        user: &str,
        r: Registration,
    ) -> Result<Device, Refusal> {
        check_id("bad_device", &r.device)?;
        let bad =
            |message: &str| Refusal::new(StatusCode::BAD_REQUEST, "bad_registration", message);
        if r.token
            .as_ref()
            .is_some_and(|t| t.is_empty() || t.len() > MAX_TOKEN)
        {
            return Err(bad("token: 1 to 4096 bytes"));
        }
        if r.platform != Platform::Ws && r.token.is_none() {
            return Err(bad("a vendor platform needs its token"));
        }
        if r.topics.len() > MAX_TOPICS {
            return Err(bad("at most 64 topics"));
        }
        for topic in &r.topics {
            check_id("bad_topic", topic)?;
        }
        let device = Device {
            id: r.device,
            user: user.to_string(),
            platform: r.platform,
            token: r.token,
            topics: r.topics,
        };
        self.store()?.register(device.clone()).await?;
        Ok(device)
    }

    /// `device`, if `user` owns it; 404 otherwise (whether another user has it or nobody).
    pub(in crate::push) async fn owned(&self, user: &str, device: &str) -> Result<Device, Refusal> {
        check_id("bad_device", device)?;
        match self.store()?.device(device.to_string()).await? {
            Some(d) if d.user == user => Ok(d),
            _ => Err(unknown_device()),
        }
    }
}
