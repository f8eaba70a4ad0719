//! The HTTP endpoints of push routes: publish, the caller's devices, and the connect
//! endpoint's checks before a WebSocket or SSE session starts. Bad input is a 4xx with a
//! stable code and changes nothing.

use std::sync::Arc;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::decision::{Delivery, DeviceFacts, MessageFacts, Platform, Priority, PushRouter};
use super::store::{Device, Message, StoreError, Target};
use super::{Count, PushService};
use crate::body::{ProxyBody, full_body};
use crate::config::push::{PushConfig, PushEndpoint, VendorsConfig};

/// The longest device id, message id, topic or user.
const MAX_ID: usize = 128;
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

/// A publish.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Publish {
    id: String,
    target: Target,
    payload: serde_json::Value,
    #[serde(default)]
    ttl_ms: Option<u64>,
    #[serde(default)]
    priority: Priority,
    #[serde(default)]
    collapse_key: Option<String>,
}

/// A devices-endpoint `POST`: a registration, or an SSE client's ack.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum DevicesPost {
    Ack { device: String, ack: u64 },
    Register(Registration),
}

/// One device's delivery in a publish's answer.
#[derive(Debug, Serialize)]
struct Placed {
    device: String,
    delivery: Delivery,
    #[serde(skip_serializing_if = "Option::is_none")]
    offset: Option<u64>,
}

/// A refusal: a status, a stable code and a message.
pub(super) struct Refusal(StatusCode, pub(super) &'static str, pub(super) String);

impl Refusal {
    pub(super) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self(status, code, message.into())
    }

    /// The refusal in the gateway's error format: the code in the body and in
    /// `x-weir-error`, with the request id.
    pub(super) fn response(self, request_id: &str) -> Response<ProxyBody> {
        let body = json!({ "error": self.1, "message": self.2, "request_id": request_id });
        let mut response = json_response(self.0, body.to_string());
        let headers = response.headers_mut();
        headers.insert("x-weir-error", http::HeaderValue::from_static(self.1));
        if let Ok(id) = http::HeaderValue::from_str(request_id) {
            headers.insert("x-request-id", id);
        }
        response
    }
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Taken => Self::new(StatusCode::CONFLICT, "device_taken", e.to_string()),
            StoreError::Failed(_) => {
                tracing::error!(error = %e, "push store failed");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    "the push store failed",
                )
            }
        }
    }
}

pub(super) fn json_response(status: StatusCode, body: String) -> Response<ProxyBody> {
    let mut response = Response::new(full_body(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

/// A request to a push endpoint, as the route's request filters left it.
pub struct PushRequest<'a> {
    /// Method, URI and headers.
    pub parts: &'a http::request::Parts,
    /// The gateway's id for the request.
    pub request_id: &'a str,
    /// The body.
    pub body: ProxyBody,
    /// The user an auth filter identified (its `consumer` variable), if one did.
    pub consumer: Option<String>,
    /// The client's side of a WebSocket upgrade, if it asked for one.
    pub websocket: Option<hyper::upgrade::OnUpgrade>,
    /// The client connection's place under the connection caps, held by a session for
    /// as long as it lasts.
    pub place: Option<Arc<crate::admission::Admitted>>,
}

/// The user an auth filter identified.
pub(super) fn consumer(request: &PushRequest<'_>) -> Result<String, Refusal> {
    (request.consumer.clone())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            Refusal::new(
                StatusCode::UNAUTHORIZED,
                "no_consumer",
                "no filter on this route identified the caller (an auth filter sets `consumer`)",
            )
        })
}

/// An id: 1 to 128 bytes of letters, digits and `.`, `_`, `-`, `:`.
pub(super) fn check_id(what: &'static str, id: &str) -> Result<(), Refusal> {
    let fine = !id.is_empty()
        && id.len() <= MAX_ID
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-:".contains(&b));
    match fine {
        true => Ok(()),
        false => Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            what,
            format!("{what}: 1 to {MAX_ID} letters, digits or . _ - :"),
        )),
    }
}

async fn read_json<T: serde::de::DeserializeOwned>(
    request: &mut PushRequest<'_>,
    max: usize,
) -> Result<T, Refusal> {
    let body = std::mem::replace(&mut request.body, full_body(Bytes::new()));
    let bytes = match Limited::new(body, max).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(Refusal::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("the body is larger than {max} bytes"),
            ));
        }
        Err(e) => {
            return Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                "body_failed",
                format!("the body could not be read: {e}"),
            ));
        }
    };
    serde_json::from_slice(&bytes)
        .map_err(|e| Refusal::new(StatusCode::BAD_REQUEST, "malformed", e.to_string()))
}

impl PushService {
    /// Serves a push route's endpoint for `request` (the route's request filters ran
    /// already).
    pub async fn serve(
        self: &Arc<Self>,
        endpoint: PushEndpoint,
        request: PushRequest<'_>,
        config: &PushConfig,
        router: &dyn PushRouter,
    ) -> Response<ProxyBody> {
        let request_id = request.request_id;
        let served = match endpoint {
            PushEndpoint::Publish => self.publish(request, config, router).await,
            PushEndpoint::Devices => self.devices_endpoint(request, config).await,
            PushEndpoint::Connect => self.connect(request, config).await,
        };
        served.unwrap_or_else(|refusal| refusal.response(request_id))
    }

    async fn publish(
        &self,
        mut request: PushRequest<'_>,
        config: &PushConfig,
        router: &dyn PushRouter,
    ) -> Result<Response<ProxyBody>, Refusal> {
        if request.parts.method != http::Method::POST {
            return Err(method_not_allowed("POST"));
        }
        let publish: Publish = read_json(&mut request, config.max_payload_bytes + 4096).await?;
        check_id("bad_id", &publish.id)?;
        let payload_bytes = serde_json::to_string(&publish.payload)
            .map(|p| p.len())
            .unwrap_or(usize::MAX);
        if payload_bytes > config.max_payload_bytes {
            return Err(Refusal::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!(
                    "the payload is larger than {} bytes",
                    config.max_payload_bytes
                ),
            ));
        }
        let ttl_ms = publish.ttl_ms.unwrap_or(config.default_ttl_ms);
        if ttl_ms == 0 || ttl_ms > config.max_ttl_ms {
            return Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                "bad_ttl",
                format!("ttl_ms must be 1 to {}", config.max_ttl_ms),
            ));
        }
        if let Some(key) = &publish.collapse_key {
            check_id("bad_collapse_key", key)?;
        }
        // A repeated id gets the first answer, and nothing is delivered again.
        if let Some(answer) = self.store()?.answer(publish.id.clone()).await? {
            self.counters.add(Count::Duplicates, 1);
            return Ok(json_response(StatusCode::ACCEPTED, answer));
        }
        let devices = match &publish.target {
            Target::User(id) | Target::Topic(id) => {
                check_id("bad_target", id)?;
                self.store()?.targets(publish.target.clone()).await?
            }
            Target::Device(id) => {
                check_id("bad_target", id)?;
                let devices = self.store()?.targets(publish.target.clone()).await?;
                if devices.is_empty() {
                    return Err(Refusal::new(
                        StatusCode::NOT_FOUND,
                        "unknown_device",
                        format!("no device {id:?} is registered"),
                    ));
                }
                devices
            }
        };
        let facts = MessageFacts {
            id: publish.id.clone(),
            priority: publish.priority,
            ttl_ms,
            collapse_key: publish.collapse_key.clone(),
            payload_bytes: payload_bytes as u32,
        };
        let mut placed = Vec::with_capacity(devices.len());
        for device in &devices {
            let delivery = self.route(router, &facts, device).await;
            placed.push(Placed {
                device: device.id.clone(),
                delivery,
                offset: None,
            });
        }
        // A vendor delivery needs the platform's channel; without one it is the queue.
        for (p, device) in placed.iter_mut().zip(&devices) {
            if p.delivery == Delivery::Vendor && !has_channel(&config.vendors, device.platform) {
                p.delivery = Delivery::Queue;
            }
        }
        let kept: Vec<(String, bool)> = (placed.iter())
            .filter(|p| p.delivery != Delivery::Drop)
            .map(|p| (p.device.clone(), p.delivery == Delivery::Vendor))
            .collect();
        let message = Message {
            id: publish.id.clone(),
            payload: publish.payload,
            priority: publish.priority,
            expires_ms: crate::time::now_ms() + ttl_ms,
            collapse_key: publish.collapse_key,
        };
        let id = publish.id.clone();
        let answer = Box::new(move |offsets: &[(String, u64)]| {
            for p in &mut placed {
                p.offset = (offsets.iter())
                    .find(|(device, _)| *device == p.device)
                    .map(|(_, offset)| *offset);
            }
            json!({ "id": id, "deliveries": placed }).to_string()
        });
        let keep = config.idempotency_ms;
        let answer = self
            .store()?
            .publish(message, kept.clone(), keep, answer)
            .await?;
        self.counters.add(Count::Published, 1);
        for (device, by_vendor) in &kept {
            self.wake(device);
            if *by_vendor {
                self.vendor_wake.notify_one();
            }
        }
        Ok(json_response(StatusCode::ACCEPTED, answer))
    }

    /// Asks the router; a failed decision keeps the message (fail closed: the queue).
    async fn route(
        &self,
        router: &dyn PushRouter,
        message: &MessageFacts,
        device: &Device,
    ) -> Delivery {
        let facts = DeviceFacts {
            id: device.id.clone(),
            user: device.user.clone(),
            platform: device.platform,
            online: self.online(&device.id),
            has_token: device.token.is_some(),
        };
        match router.decide(message, &facts).await {
            Ok(delivery) => delivery,
            Err(reason) => {
                self.counters.add(Count::RouterFailures, 1);
                tracing::warn!(message = %message.id, device = %device.id, %reason, "push routing failed; the message is queued");
                Delivery::Queue
            }
        }
    }

    async fn devices_endpoint(
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
    pub(super) async fn register(&self, user: &str, r: Registration) -> Result<Device, Refusal> {
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
    pub(super) async fn owned(&self, user: &str, device: &str) -> Result<Device, Refusal> {
        check_id("bad_device", device)?;
        match self.store()?.device(device.to_string()).await? {
            Some(d) if d.user == user => Ok(d),
            _ => Err(unknown_device()),
        }
    }
}

/// Whether a vendor channel is configured for `platform`.
fn has_channel(vendors: &VendorsConfig, platform: Platform) -> bool {
    match platform {
        Platform::Ws => false,
        Platform::Apns => vendors.apns.is_some(),
        Platform::Fcm => vendors.fcm.is_some(),
        Platform::Hms => vendors.hms.is_some(),
        Platform::Mi => vendors.mi.is_some(),
    }
}

pub(super) fn unknown_device() -> Refusal {
    Refusal::new(
        StatusCode::NOT_FOUND,
        "unknown_device",
        "no such device of this user",
    )
}

fn method_not_allowed(allowed: &str) -> Refusal {
    Refusal::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("allowed: {allowed}"),
    )
}

/// The query parameter `name`, percent-decoding not needed for ids.
pub(super) fn query(parts: &http::request::Parts, name: &str) -> Option<String> {
    let query = parts.uri.query()?;
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == name).then(|| value.to_string())
    })
}
