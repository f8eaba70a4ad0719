//! `POST` on a publish endpoint: the message checked, each target device's delivery
//! decided, and the message stored for them before the publisher hears `202 Accepted`.

use futures_util::StreamExt;
use http::{Response, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::PushRequest;
use super::input::{check_id, read_json};
use super::refusal::{Refusal, json_response, method_not_allowed};
use crate::body::ProxyBody;
use crate::config::push::{PushConfig, VendorsConfig};
use crate::push::decision::{Delivery, DeviceFacts, MessageFacts, Platform, Priority, PushRouter};
use crate::push::store::{Device, Message, Publication, Target};
use crate::push::{Count, PushService};

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

/// One device's delivery in a publish's answer.
#[derive(Debug, Serialize)]
struct Placed {
    device: String,
    delivery: Delivery,
    #[serde(skip_serializing_if = "Option::is_none")]
    offset: Option<u64>,
}

impl PushService {
    /// Checks and stores a publish for its target devices; a repeated id gets the first
    /// answer.
    pub(super) async fn publish(
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
        // Whether each is online (in a fleet, a Redis read each: made concurrently).
        type Check<'a> = std::pin::Pin<Box<dyn Future<Output = bool> + Send + 'a>>;
        let checks: Vec<Check<'_>> = (devices.iter())
            .map(|device| Box::pin(self.online(&device.id)) as Check<'_>)
            .collect();
        let online: Vec<bool> = futures_util::stream::iter(checks)
            .buffered(32)
            .collect()
            .await;
        let mut placed = Vec::with_capacity(devices.len());
        for (device, online) in devices.iter().zip(online) {
            let delivery = self.route(router, &facts, device, online).await;
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
        let publication = Publication {
            message,
            devices: kept.clone(),
            keep_ms: config.idempotency_ms,
            answer,
        };
        let answer = self.store()?.publish(publication).await?;
        self.counters.add(Count::Published, 1);
        self.wake(&kept);
        if kept.iter().any(|(_, by_vendor)| *by_vendor) {
            self.vendor_wake.notify_one();
        }
        Ok(json_response(StatusCode::ACCEPTED, answer))
    }

    /// Asks the router; a failed decision keeps the message (fail closed: the queue).
    async fn route(
        &self,
        router: &dyn PushRouter,
        message: &MessageFacts,
        device: &Device,
        online: bool,
    ) -> Delivery {
        let facts = DeviceFacts {
            id: device.id.clone(),
            user: device.user.clone(),
            platform: device.platform,
            online,
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
