//! Push across a fleet of gateway instances sharing one Redis: which instance holds each
//! device's connection (its presence, a lease refreshed while the connection lives), and
//! wake-ups through Redis pub/sub, so that a message published on one instance is sent
//! by the instance that holds the device's connection, and a device that connects to
//! another instance closes its connection on the first.
//!
//! On the channel `<prefix>push:wake`, lines separated by `\n`:
//! - `w`, then device ids: messages were stored for these devices (published by the
//!   store, within each publish, before its answer is kept);
//! - `r`, an instance's id, a device id, when the connection started (ms since the Unix
//!   epoch): the device connected to that instance; older connections elsewhere close.
//!
//! Pub/sub loses what is published while an instance is not subscribed; every
//! (re)subscription is followed by a wake of every connection on this instance, which
//! then reads its stream: nothing waits in the message.

use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use redis::{AsyncCommands, Script};

use super::PushService;
use super::shared::RedisPushStore;

/// How long a connection's presence lasts without a refresh.
const PRESENCE_MS: u64 = 30_000;
/// How often the presences of this instance's connections are refreshed, and its
/// subscription pinged.
const REFRESH: Duration = Duration::from_secs(10);
/// The longest wait between two attempts to subscribe.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// This instance's part of the fleet.
pub struct Fleet {
    store: Arc<RedisPushStore>,
    /// A random id of this instance, for presences and `r` lines.
    instance: String,
    release: Script,
    refresh: Script,
}

impl Fleet {
    /// This instance's part, through `store`'s Redis.
    pub fn new(store: Arc<RedisPushStore>) -> Self {
        Self {
            store,
            instance: format!("{:016x}", fastrand::u64(..)),
            release: Script::new(include_str!("shared/scripts/release.lua")),
            refresh: Script::new(include_str!("shared/scripts/refresh.lua")),
        }
    }

    /// Whether `device` holds a connection to some instance.
    pub async fn present(&self, device: &str) -> bool {
        let key = &self.store.presence_key(device);
        let client = self.store.client();
        let found = client
            .call(true, |mut c| async move { c.exists::<_, bool>(key).await })
            .await;
        found.unwrap_or(false)
    }

    /// Records that connection `id` of this instance, started at `since_ms`, holds `device`,
    /// and tells the other instances to close older ones. (Two calls: in a cluster the
    /// channel and the presence key route to different nodes.)
    pub async fn announce(&self, device: &str, id: u64, since_ms: u64) {
        let (key, holder) = (&self.store.presence_key(device), &self.holder(id));
        let line = &format!("r\n{}\n{device}\n{since_ms}", self.instance);
        let channel = &self.store.channel();
        let client = self.store.client();
        let held = client
            .call(true, |mut c| async move {
                c.pset_ex::<_, _, ()>(key, holder, PRESENCE_MS).await
            })
            .await;
        let told = client
            .call(true, |mut c| async move {
                c.publish::<_, _, ()>(channel, line).await
            })
            .await;
        if let Err(e) = held.and(told) {
            tracing::warn!(device, error = %e, "push: announcing a connection to the fleet failed");
        }
    }

    /// Forgets connection `id`'s presence, unless another connection took its place.
    pub async fn release(&self, device: &str, id: u64) {
        let (key, holder) = (&self.store.presence_key(device), &self.holder(id));
        let script = &self.release;
        let _ = (self.store.client())
            .call(true, |mut c| async move {
                script.key(key).arg(holder).invoke_async::<u8>(&mut c).await
            })
            .await;
    }

    fn holder(&self, id: u64) -> String {
        format!("{}:{id}", self.instance)
    }

    /// Refreshes the presences of `live` connections of this instance (a presence another
    /// connection holds now is left alone).
    async fn refresh(&self, live: Vec<(String, u64)>) {
        let writes = live.into_iter().map(|(device, id)| async move {
            let (key, holder) = (&self.store.presence_key(&device), &self.holder(id));
            let script = &self.refresh;
            let _ = (self.store.client())
                .call(true, |mut c| async move {
                    script
                        .key(key)
                        .arg(holder)
                        .arg(PRESENCE_MS)
                        .invoke_async::<u8>(&mut c)
                        .await
                })
                .await;
        });
        futures_util::stream::iter(writes)
            .buffer_unordered(32)
            .collect::<()>()
            .await;
    }
}

/// Listens for the fleet's lines while `service` lives: subscribes (again after any
/// failure, with a growing pause), wakes every local connection after each
/// subscription, refreshes presences and pings the subscription every [`REFRESH`].
pub(super) async fn listen(service: Weak<PushService>) {
    let mut attempt = 0usize;
    loop {
        let Some(fleet) = service.upgrade().and_then(|s| s.fleet.clone()) else {
            return;
        };
        let channel = fleet.store.channel();
        match fleet.store.client().pubsub(attempt).await {
            Ok(pubsub) => {
                let (mut sink, mut lines) = pubsub.split();
                if sink.subscribe(&channel).await.is_ok() {
                    attempt = 0;
                    if let Some(service) = service.upgrade() {
                        service.wake_all_local();
                    }
                    let mut tick = tokio::time::interval(REFRESH);
                    tick.tick().await;
                    loop {
                        tokio::select! {
                            line = lines.next() => {
                                let Some(line) = line else { break };
                                let Some(service) = service.upgrade() else { return };
                                if let Ok(text) = line.get_payload::<String>() {
                                    service.on_fleet_line(&fleet.instance, &text);
                                }
                            }
                            _ = tick.tick() => {
                                let Some(service) = service.upgrade() else { return };
                                // In a task of its own: lines keep being read meanwhile.
                                let (fleet, live) = (fleet.clone(), service.live_connections());
                                tokio::spawn(async move { fleet.refresh(live).await });
                                let pong = tokio::time::timeout(
                                    REFRESH,
                                    sink.ping::<String>(),
                                );
                                if !matches!(pong.await, Ok(Ok(_))) {
                                    break;
                                }
                            }
                        }
                    }
                    tracing::warn!("push: the fleet's subscription ended; subscribing again");
                }
            }
            Err(e) => tracing::warn!(error = %e, "push: subscribing to the fleet failed"),
        }
        attempt += 1;
        let pause = Duration::from_millis(50u64 << attempt.min(6)).min(MAX_BACKOFF);
        tokio::time::sleep(pause).await;
    }
}
