//! Configured push routers: a `push-router` plugin with its settings and its warm
//! instances (`pool.rs`, as a filter's), asked where each message goes for each device.
//! A call that traps, runs out of time or memory is no decision: it comes back as an
//! error, and the push subsystem applies the router's failure policy.

use std::sync::Arc;
use std::time::Instant;

use super::backoff::BackoffStatus;
use super::bindings::router as wit;
use super::failure::FilterFailure;
use super::imports::HostServices;
use super::loader::{LoadedPlugin, PluginKind};
use super::pool::Instances;
use super::slot::FilterSettings;
use crate::metrics::{CallPhase, Decision, FilterMetrics};
use crate::push::decision::{
    Decided, Delivery, DeviceFacts, MessageFacts, Platform, Priority, PushRouter,
};

/// A push router: a plugin, its config, and a pool of configured instances.
pub struct RouterSlot {
    /// The plugin.
    pub plugin: Arc<LoadedPlugin>,
    /// The settings (`failure` is the push subsystem's to apply; `max_body` is unused).
    pub settings: Arc<FilterSettings>,
    /// Call counts and times.
    pub metrics: Arc<FilterMetrics>,
    instances: Instances,
}

impl RouterSlot {
    /// Configures the plugin with `settings` on a first instance, which is kept warm, for
    /// the publish route `route`. An error here refuses the snapshot; so does a plugin that
    /// is not a push router (a filter).
    pub async fn new(
        plugin: Arc<LoadedPlugin>,
        route: &str,
        settings: FilterSettings,
        services: Arc<HostServices>,
        metrics: Arc<FilterMetrics>,
    ) -> anyhow::Result<Self> {
        let (instances, mut warm) = Instances::start(
            (plugin.clone(), PluginKind::Router),
            (route, ""),
            settings,
            services,
            metrics.clone(),
        )
        .await?;
        let (deadline, limits) = instances.setup();
        if let Err(f) = warm.router_metadata(deadline, &limits).await {
            anyhow::bail!("metadata after configure: {}", f.message);
        }
        instances.release(warm);
        Ok(Self {
            settings: instances.settings().clone(),
            plugin,
            metrics,
            instances,
        })
    }

    /// Calls `decide` under the router's deadline and memory cap; a failed call is dropped
    /// with its instance and counts towards the router's back-off.
    pub async fn delivery(
        &self,
        message: &MessageFacts,
        device: &DeviceFacts,
    ) -> Result<Delivery, FilterFailure> {
        let started = Instant::now();
        let mut warm = self.instances.checkout().await?;
        warm.serve(&message.id);
        let facts = (&message_to_wit(message), &device_to_wit(device));
        let (deadline, limits) = (self.settings.deadline, &self.settings.limits);
        let result = warm.decide(deadline, limits, facts).await;
        let delivery = self.instances.finish(warm, result).map(delivery_from_wit)?;
        self.instances
            .record_success(started.elapsed(), Decision::Continue, CallPhase::Route);
        Ok(delivery)
    }

    /// Warm instances waiting in the pools.
    pub fn idle_instances(&self) -> usize {
        self.instances.idle_instances()
    }

    /// The router's back-off: failures in a row, backed off until, calls not run.
    pub fn backoff_status(&self) -> BackoffStatus {
        self.instances.backoff_status()
    }
}

impl PushRouter for RouterSlot {
    /// The router's answer, or why there is none: `"<kind>: <message>"` (`deadline: stopped
    /// after its 5 ms deadline`, `trap: ...`, `memory: ...`, `backed-off: ...`).
    fn decide<'a>(&'a self, message: &'a MessageFacts, device: &'a DeviceFacts) -> Decided<'a> {
        Box::pin(async move {
            self.delivery(message, device)
                .await
                .map_err(|f| format!("{}: {}", f.kind.label(), f.message))
        })
    }
}

fn message_to_wit(m: &MessageFacts) -> wit::MessageFacts {
    wit::MessageFacts {
        id: m.id.clone(),
        priority: match m.priority {
            Priority::Normal => wit::Priority::Normal,
            Priority::High => wit::Priority::High,
        },
        ttl_ms: m.ttl_ms,
        collapse_key: m.collapse_key.clone(),
        payload_bytes: m.payload_bytes,
    }
}

fn device_to_wit(d: &DeviceFacts) -> wit::DeviceFacts {
    wit::DeviceFacts {
        id: d.id.clone(),
        user: d.user.clone(),
        platform: match d.platform {
            Platform::Ws => wit::Platform::Ws,
            Platform::Apns => wit::Platform::Apns,
            Platform::Fcm => wit::Platform::Fcm,
            Platform::Hms => wit::Platform::Hms,
            Platform::Mi => wit::Platform::Mi,
        },
        online: d.online,
        has_token: d.has_token,
    }
}

fn delivery_from_wit(d: wit::Delivery) -> Delivery {
    match d {
        wit::Delivery::Live => Delivery::Live,
        wit::Delivery::Vendor => Delivery::Vendor,
        wit::Delivery::Queue => Delivery::Queue,
        wit::Delivery::Drop => Delivery::Drop,
    }
}
