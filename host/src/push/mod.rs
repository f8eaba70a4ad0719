//! Push: devices' long connections, the durable message store, delivery with offsets and
//! acks, and the routing decision for each message and device.
//!
//! A publish is stored (fsync'd) in every target device's stream before its `202`; the
//! devices online on this gateway are then woken, and each connection reads its stream
//! from the store at its own pace (at most `push.window` messages unacked): nothing is
//! queued in memory per message, so a slow device costs no memory, and a restart loses
//! nothing accepted.

pub mod api;
mod counters;
pub mod decision;
pub mod embedded;
mod fleet;
mod frames;
mod session;
pub mod shared;
pub mod store;
pub mod vendor;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use dashmap::DashMap;
use tokio::sync::Notify;

use crate::config::RedisConfig;
use crate::config::push::PushConfig;
use crate::redis_link::RedisClient;
pub use counters::{Count, PushCounters};
use fleet::Fleet;
use shared::RedisPushStore;
use store::{PushStore, StoreError};

/// One device's live connection on this gateway.
pub struct Live {
    /// Woken when a message is stored for the device.
    pub wake: Notify,
    /// Woken when a newer connection of the same device replaces this one.
    pub replaced: Notify,
    id: u64,
    /// When it started (ms since the Unix epoch), to tell it from a newer one elsewhere.
    since_ms: u64,
}

/// The push subsystem of one gateway.
pub struct PushService {
    /// Opened on first use (or at start when a route serves push), so that a gateway
    /// without push routes holds no store file, and two such gateways can share a config
    /// directory.
    store: OnceLock<Arc<dyn PushStore>>,
    store_path: PathBuf,
    history: u64,
    opening: Mutex<()>,
    live: DashMap<String, Arc<Live>>,
    next_id: AtomicU64,
    /// Vendors' access tokens, kept across snapshots.
    pub tokens: Arc<vendor::TokenCache>,
    /// Woken when a message is queued for a vendor channel.
    pub(crate) vendor_wake: Notify,
    /// What happened so far.
    pub counters: PushCounters,
    /// With a shared store: presences and wake-ups across the fleet.
    fleet: Option<Arc<Fleet>>,
    /// Failed reads of devices' streams, logged once per interval.
    read_failures: crate::repeats::Repeats,
}

/// Where push keeps its state.
pub enum PushBackend<'a> {
    /// The embedded store, opened now when the flag is set (a route serves push: a store
    /// that cannot open then stops the start), else on first use.
    Embedded(bool),
    /// Redis, shared by a fleet; `usize` is the proxy's worker threads.
    Redis(&'a RedisConfig, usize),
}

impl PushService {
    /// The push subsystem for `config` with its store in `backend`: embedded at
    /// `push.store` (default `<base_dir>/.weir-push.redb`), or in Redis with the fleet's
    /// presences and wake-ups; and its sweeper.
    pub fn start(
        config: &PushConfig,
        base_dir: &Path,
        backend: PushBackend<'_>,
    ) -> anyhow::Result<Arc<Self>> {
        let store_path = match &config.store {
            Some(path) => base_dir.join(path),
            None => base_dir.join(".weir-push.redb"),
        };
        let mut service = Arc::new(Self {
            store: OnceLock::new(),
            store_path,
            history: config.history,
            opening: Mutex::new(()),
            live: DashMap::new(),
            next_id: AtomicU64::new(1),
            vendor_wake: Notify::new(),
            tokens: Arc::default(),
            counters: PushCounters::default(),
            fleet: None,
            read_failures: crate::repeats::Repeats::default(),
        });
        match backend {
            PushBackend::Embedded(true) => drop(service.store()?),
            PushBackend::Embedded(false) => {}
            PushBackend::Redis(redis, workers) => {
                let client = RedisClient::new(redis, base_dir, workers)?;
                let store = Arc::new(RedisPushStore::new(client, config.history));
                let _ = service.store.set(store.clone());
                // Not shared yet: the fleet is set before anyone else holds the service.
                if let Some(service) = Arc::get_mut(&mut service) {
                    service.fleet = Some(Arc::new(Fleet::new(store)));
                }
                tokio::spawn(fleet::listen(Arc::downgrade(&service)));
            }
        }
        service.spawn_sweeper();
        Ok(service)
    }

    /// The store, opened now if it was not yet.
    pub fn store(&self) -> Result<&Arc<dyn PushStore>, StoreError> {
        if let Some(store) = self.store.get() {
            return Ok(store);
        }
        let _opening = self
            .opening
            .lock()
            .map_err(|_| StoreError::Failed("poisoned".into()))?;
        if let Some(store) = self.store.get() {
            return Ok(store);
        }
        let path = &self.store_path;
        let opened = embedded::EmbeddedStore::open(path, self.history)
            .map_err(|e| StoreError::Failed(format!("{}: {e}", path.display())))?;
        let _ = self.store.set(Arc::new(opened));
        self.store
            .get()
            .ok_or_else(|| StoreError::Failed("not opened".into()))
    }

    /// Whether `device` holds a live connection here or, in a fleet, on any instance.
    pub async fn online(&self, device: &str) -> bool {
        if self.live.contains_key(device) {
            return true;
        }
        match &self.fleet {
            Some(fleet) => fleet.present(device).await,
            None => false,
        }
    }

    /// Live connections on this gateway.
    pub fn connections(&self) -> usize {
        self.live.len()
    }

    /// Wakes the connections of `devices` here (a shared store wakes the fleet's other
    /// instances itself, within the publish).
    fn wake(&self, devices: &[(String, bool)]) {
        for (device, _) in devices {
            if let Some(live) = self.live.get(device) {
                live.wake.notify_one();
            }
        }
    }

    /// Wakes every connection on this instance (they read their streams again).
    fn wake_all_local(&self) {
        for live in &self.live {
            live.wake.notify_one();
        }
    }

    /// The devices connected here, with their connections' ids.
    fn live_connections(&self) -> Vec<(String, u64)> {
        (self.live.iter())
            .map(|entry| (entry.key().clone(), entry.id))
            .collect()
    }

    /// A line from the fleet (see [`fleet`]): wakes the devices named, or closes the
    /// connection of a device that connected to another instance.
    fn on_fleet_line(&self, me: &str, line: &str) {
        let mut parts = line.split('\n');
        match parts.next() {
            Some("w") => {
                for device in parts {
                    if let Some(live) = self.live.get(device) {
                        live.wake.notify_one();
                    }
                }
            }
            Some("r") => {
                let (Some(instance), Some(device)) = (parts.next(), parts.next()) else {
                    return;
                };
                // A connection newer than the one announced stays (a late line).
                let since = parts.next().and_then(|s| s.parse::<u64>().ok());
                let older = |live: &Arc<Live>| since.is_none_or(|since| live.since_ms <= since);
                if instance != me
                    && let Some((_, old)) = self.live.remove_if(device, |_, live| older(live))
                {
                    old.replaced.notify_one();
                }
            }
            _ => {}
        }
    }

    /// Makes a new connection the device's live one; the one it replaces is told to go.
    fn attach(&self, device: &str) -> Arc<Live> {
        let live = Arc::new(Live {
            wake: Notify::new(),
            replaced: Notify::new(),
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            since_ms: crate::time::now_ms(),
        });
        if let Some(old) = self.live.insert(device.to_string(), live.clone()) {
            old.replaced.notify_one();
        }
        if let Some(fleet) = self.fleet.clone() {
            let (device, id, since) = (device.to_string(), live.id, live.since_ms);
            tokio::spawn(async move { fleet.announce(&device, id, since).await });
        }
        live
    }

    /// Forgets `live` as the device's connection, unless a newer one took its place.
    fn detach(&self, device: &str, live: &Live) {
        let removed = self
            .live
            .remove_if(device, |_, current| current.id == live.id);
        if let (Some(fleet), Some(_)) = (self.fleet.clone(), removed) {
            let (device, id) = (device.to_string(), live.id);
            tokio::spawn(async move { fleet.release(&device, id).await });
        }
    }

    /// What the admin API's `GET /push` shows: live connections, what waits in the store
    /// (`queued`: messages not yet acked; `vendor_queued`: vendor sends to make; null when
    /// the store does not answer) and the counters.
    pub async fn stats(&self) -> serde_json::Value {
        let mut stats = serde_json::Map::new();
        stats.insert("connections".into(), self.connections().into());
        let depths = match self.store.get() {
            Some(store) => store.depths().await.ok(),
            None => Some((Some(0), 0)),
        };
        stats.insert("queued".into(), depths.and_then(|d| d.0).into());
        stats.insert("vendor_queued".into(), depths.map(|d| d.1).into());
        for (name, _, value) in self.counters.all() {
            stats.insert(name.into(), value.into());
        }
        stats.into()
    }

    /// The push metrics in the Prometheus text format.
    pub fn render_metrics(&self, out: &mut String) {
        use std::fmt::Write;
        let _ = writeln!(
            out,
            "# HELP weir_push_connections Devices connected to this gateway now.\n\
             # TYPE weir_push_connections gauge\nweir_push_connections {}",
            self.connections()
        );
        for (name, help, value) in self.counters.all() {
            let _ = writeln!(
                out,
                "# HELP weir_push_{name}_total {help}\n# TYPE weir_push_{name}_total counter\n\
                 weir_push_{name}_total {value}"
            );
        }
    }

    /// Forgets old idempotency answers, now and then (expired messages leave a stream when
    /// its device reads it, or with the device).
    fn spawn_sweeper(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
            loop {
                tick.tick().await;
                let Some(service) = weak.upgrade() else {
                    return;
                };
                let Some(store) = service.store.get() else {
                    continue;
                };
                if let Err(e) = store.sweep(crate::time::now_ms()).await {
                    tracing::warn!(error = %e, "push store sweep failed");
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_late_announcement_never_closes_a_newer_connection() {
        let dir = std::env::temp_dir();
        let config = PushConfig::default();
        let service = PushService::start(&config, &dir, PushBackend::Embedded(false))
            .expect("a push service");
        let live = service.attach("phone");
        let since = live.since_ms;
        // Another instance announces a connection that started before this one.
        service.on_fleet_line("me", &format!("r\nother\nphone\n{}", since - 1));
        assert!(service.online("phone").await, "the newer connection stays");
        // This instance's own announcement is not a replacement.
        service.on_fleet_line("me", &format!("r\nme\nphone\n{}", since + 1));
        assert!(service.online("phone").await);
        // A connection that started later elsewhere replaces this one.
        service.on_fleet_line("me", &format!("r\nother\nphone\n{}", since + 1));
        assert!(!service.online("phone").await, "replaced");
        live.replaced.notified().await;
    }
}
