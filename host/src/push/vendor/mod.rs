//! Vendor channels: a message routed to `vendor` is sent through the device's platform —
//! APNs, FCM, Huawei Push Kit or Xiaomi Mi Push — each a named upstream speaking the
//! vendor's documented format. Sends are queued durably in the store and made by a
//! dispatcher that claims due jobs (so two dispatchers, during a reload, never send one
//! job twice); a temporary failure is retried with back-off (the vendor's `Retry-After`
//! when it gives one), a dead token is pruned from its device and reported to the
//! feedback hook, and nothing is retried past the message's TTL or the attempt limit.

mod apns;
mod fcm;
mod hms;
mod mi;
mod token;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};

use super::decision::Platform;
use super::store::{Device, Message, PushStore, VendorDone, VendorJob};
use super::{Count, PushService};
use crate::body::full_body;
use crate::config::push::PushConfig;
use crate::config::{Config, millis};
use crate::upstream::Upstream;

pub use token::TokenCache;

/// The longest `Retry-After` honoured, in seconds (an hour); longer is taken as an hour.
const MAX_RETRY_AFTER_S: u64 = 3600;

/// What a vendor said about one send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted.
    Sent,
    /// Not now: try again, after this long if the vendor said.
    Retry {
        /// The vendor's `Retry-After`, if any.
        after: Option<Duration>,
        /// Why.
        reason: String,
    },
    /// The token is dead (uninstalled app, bad token): prune it, never retry.
    Unregistered(String),
    /// This message is refused for good (too big, bad topic): do not retry it.
    Refused(String),
}

/// A future outcome.
pub type Sending<'a> = Pin<Box<dyn Future<Output = Outcome> + Send + 'a>>;

/// One vendor's channel.
pub trait Channel: Send + Sync {
    /// Sends `message` to `device` (whose token is set).
    fn send<'a>(&'a self, device: &'a Device, token: &'a str, message: &'a Message) -> Sending<'a>;
}

/// The channels and hooks of one snapshot.
pub struct Vendors {
    channels: BTreeMap<&'static str, Box<dyn Channel>>,
    feedback: Option<(Arc<Upstream>, String)>,
    config: PushConfig,
}

/// A vendor's HTTP exchange: the upstream, and how long a call may take.
pub(super) struct Http {
    upstream: Arc<Upstream>,
    timeout: Duration,
}

impl Http {
    /// Sends `request` and reads the answer (at most 64 KiB of it).
    async fn call(&self, request: Request<Bytes>) -> Result<Response<Bytes>, String> {
        let (mut parts, body) = request.into_parts();
        if let Some(Ok(host)) = self.upstream.tls_name().map(http::HeaderValue::from_str) {
            parts.headers.insert(http::header::HOST, host);
        }
        let request = Request::from_parts(parts, full_body(body));
        (self.upstream.call(request, self.timeout, 64 << 10).await).map_err(|e| e.to_string())
    }
}

/// A failed exchange or a 429/5xx: try again, honouring `Retry-After` (seconds).
fn retry(response: Option<&Response<Bytes>>, reason: impl Into<String>) -> Outcome {
    let after = response
        .and_then(|r| r.headers().get(http::header::RETRY_AFTER))
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|s| Duration::from_secs(s.min(MAX_RETRY_AFTER_S)));
    Outcome::Retry {
        after,
        reason: reason.into(),
    }
}

fn platform_key(platform: Platform) -> &'static str {
    match platform {
        Platform::Ws => "ws",
        Platform::Apns => "apns",
        Platform::Fcm => "fcm",
        Platform::Hms => "hms",
        Platform::Mi => "mi",
    }
}

impl Vendors {
    /// The channels `config` configures, over the snapshot's `upstreams`; `None` when it
    /// configures none. Tokens live in `tokens`, which outlives snapshots.
    pub fn build(
        config: &Config,
        upstreams: &BTreeMap<String, Arc<Upstream>>,
        tokens: &Arc<TokenCache>,
    ) -> anyhow::Result<Option<Arc<Self>>> {
        let push = &config.push;
        let timeout = millis(push.vendor_timeout_ms);
        let http = |name: &str| -> anyhow::Result<Http> {
            let upstream = upstreams.get(name).cloned();
            let upstream = upstream.ok_or_else(|| anyhow::anyhow!("unknown upstream {name:?}"))?;
            Ok(Http { upstream, timeout })
        };
        let secret = |name: &str| -> anyhow::Result<Vec<u8>> {
            let secret = config.secrets.get(name);
            let secret = secret.ok_or_else(|| anyhow::anyhow!("unknown secret {name:?}"))?;
            secret
                .resolve(&format!("secret {name:?}"))
                .map_err(anyhow::Error::msg)
        };
        let v = &push.vendors;
        let mut channels: BTreeMap<&'static str, Box<dyn Channel>> = BTreeMap::new();
        if let Some(c) = &v.apns {
            let channel = apns::Apns::new(c, http(&c.upstream)?, &secret(&c.key)?, tokens.clone())?;
            channels.insert("apns", Box::new(channel));
        }
        if let Some(c) = &v.fcm {
            let (send, grant) = (http(&c.upstream)?, http(&c.token_upstream)?);
            let account = secret(&c.service_account)?;
            channels.insert(
                "fcm",
                Box::new(fcm::Fcm::new(c, send, grant, &account, tokens.clone())?),
            );
        }
        if let Some(c) = &v.hms {
            let (send, grant) = (http(&c.upstream)?, http(&c.token_upstream)?);
            let client_secret = secret(&c.client_secret)?;
            channels.insert(
                "hms",
                Box::new(hms::Hms::new(
                    c,
                    send,
                    grant,
                    &client_secret,
                    tokens.clone(),
                )?),
            );
        }
        if let Some(c) = &v.mi {
            channels.insert(
                "mi",
                Box::new(mi::Mi::new(c, http(&c.upstream)?, &secret(&c.app_secret)?)?),
            );
        }
        if channels.is_empty() {
            return Ok(None);
        }
        let feedback = match &push.feedback {
            Some(f) => Some((http(&f.upstream)?.upstream, f.path.clone())),
            None => None,
        };
        Ok(Some(Arc::new(Self {
            channels,
            feedback,
            config: push.clone(),
        })))
    }

    /// Runs the dispatcher for these channels until they are dropped (their snapshot
    /// replaced).
    pub fn spawn(self: &Arc<Self>, push: Arc<PushService>) {
        let weak: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let Some(vendors) = weak.upgrade() else {
                    return;
                };
                let busy = vendors.dispatch(&push).await;
                drop(vendors);
                if !busy {
                    // New jobs wake the dispatcher; retries come due on the tick.
                    let _ = tokio::time::timeout(
                        Duration::from_millis(250),
                        push.vendor_wake.notified(),
                    )
                    .await;
                }
            }
        });
    }

    /// Sends the jobs due now; true if there may be more.
    async fn dispatch(&self, push: &PushService) -> bool {
        let c = &self.config;
        let lease = c.vendor_timeout_ms * 2;
        let now = crate::time::now_ms();
        let Ok(store) = push.store() else {
            return false;
        };
        let jobs = match store.claim_vendor(now, c.vendor_concurrency, lease).await {
            Ok(jobs) => jobs,
            Err(e) => {
                tracing::warn!(error = %e, "push store: claiming vendor jobs failed");
                return false;
            }
        };
        let full = jobs.len() == c.vendor_concurrency;
        let sends = jobs
            .into_iter()
            .map(|job| self.attempt(push, store.as_ref(), job));
        futures_util::future::join_all(sends).await;
        full
    }

    /// One attempt at one job, and its bookkeeping.
    async fn attempt(&self, push: &PushService, store: &dyn PushStore, job: VendorJob) {
        let counters = &push.counters;
        let key = platform_key(job.device.platform);
        let (Some(channel), Some(token)) = (self.channels.get(key), job.device.token.as_deref())
        else {
            // No channel for the platform (any more): the device reads its stream instead.
            let _ = store
                .vendor_done(job.device.id.clone(), job.offset, VendorDone::Finished)
                .await;
            return;
        };
        let outcome = channel.send(&job.device, token, &job.message).await;
        let (device, offset) = (job.device.id.clone(), job.offset);
        let done = match &outcome {
            Outcome::Sent => {
                counters.add(Count::VendorSent, 1);
                VendorDone::Finished
            }
            Outcome::Refused(reason) => {
                counters.add(Count::VendorFailed, 1);
                tracing::warn!(%device, platform = key, %reason, "vendor refused a message");
                VendorDone::Finished
            }
            Outcome::Unregistered(reason) => {
                counters.add(Count::VendorPruned, 1);
                tracing::info!(%device, platform = key, %reason, "vendor token is dead; pruned");
                self.report(&job.device, token, reason).await;
                VendorDone::Unregistered
            }
            Outcome::Retry { after, reason } => {
                let attempts = job.attempts + 1;
                let first = millis(self.config.vendor_retry_ms);
                let backoff = (first * (1u32 << attempts.min(12).saturating_sub(1)))
                    .min(Duration::from_secs(300));
                let wait = after.unwrap_or(backoff);
                let at = crate::time::now_ms() + wait.as_millis() as u64;
                if attempts >= self.config.vendor_max_attempts || at >= job.message.expires_ms {
                    counters.add(Count::VendorFailed, 1);
                    tracing::warn!(%device, platform = key, %reason, attempts, "vendor send given up");
                    VendorDone::Finished
                } else {
                    counters.add(Count::VendorRetried, 1);
                    tracing::debug!(%device, platform = key, %reason, attempts, "vendor send retried later");
                    VendorDone::RetryAt(at)
                }
            }
        };
        if let Err(e) = store.vendor_done(device, offset, done).await {
            tracing::warn!(error = %e, "push store: recording a vendor outcome failed");
        }
    }

    /// Tells the feedback hook that `device`'s token was pruned.
    async fn report(&self, device: &Device, token: &str, reason: &str) {
        let Some((upstream, path)) = &self.feedback else {
            return;
        };
        let body = serde_json::json!({
            "device": device.id,
            "user": device.user,
            "platform": device.platform,
            "token": token,
            "reason": reason,
        });
        let request = Request::post(path.as_str())
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(full_body(Bytes::from(body.to_string())));
        let Ok(request) = request else { return };
        let timeout = millis(self.config.vendor_timeout_ms);
        if let Err(e) = upstream.call(request, timeout, 4096).await {
            tracing::warn!(error = %e, device = %device.id, "push feedback hook failed");
        }
    }
}

/// An OAuth2 token request (RFC 6749 §4.4, RFC 7523 §2.1): a form `POST` to `path`;
/// returns the access token and its lifetime in seconds.
async fn grant(http: &Http, path: &str, fields: &[(&str, &str)]) -> Result<(String, u64), String> {
    let form = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish();
    let request = Request::post(path)
        .header(
            http::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(Bytes::from(form))
        .map_err(|e| e.to_string())?;
    let response = http.call(request).await?;
    let answer: serde_json::Value = serde_json::from_slice(response.body()).unwrap_or_default();
    match (response.status().as_u16(), answer["access_token"].as_str()) {
        (200, Some(token)) => Ok((
            token.to_string(),
            answer["expires_in"].as_u64().unwrap_or(3600),
        )),
        (status, _) => Err(format!("token endpoint answered {status}")),
    }
}

/// Seconds left to live, at least 1 (what vendors take as a TTL).
fn ttl_seconds(message: &Message) -> u64 {
    (message.expires_ms.saturating_sub(crate::time::now_ms()) / 1000).max(1)
}
