//! The asynchronous buffer: a route mode that stores a write durably, answers `202
//! Accepted` with a ticket, and delivers the request to the route's upstream later, with a
//! configured concurrency and rate, retries with back-off and a dead-letter list.
//!
//! The store is embedded (`redb`, group-committed) by default, or Redis Streams with a
//! consumer group when the state backend is Redis, so that a fleet drains one queue. A
//! drainer per route lives as long as the route (across reloads) and follows its latest
//! settings and upstream.
//!
//! Delivery is at least once: a request whose delivery was under way when its instance
//! died (after the upstream's answer, before the outcome was stored) is delivered again,
//! with the same `Idempotency-Key` (its ticket) so that the upstream can tell.

mod drain;
pub mod embedded;
pub mod entry;
pub mod shared;
pub mod store;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use dashmap::DashMap;
use http::Method;
use tokio::sync::{Notify, watch};

use crate::config::buffer::{BufferConfig, BufferStoreConfig, StatusMatch};
use crate::config::{RedisConfig, RouteConfig, millis};
use crate::redis_link::RedisClient;
use crate::upstream::Upstream;
use store::{BufferStore, StoreError, TicketState};

/// A buffered route's settings, ready to serve (built with each snapshot).
pub struct BufferRoute {
    /// The route's `[routes.buffer]`.
    pub config: BufferConfig,
    /// Tickets are read at `<status_path>/<ticket>`.
    pub status_path: String,
    /// The methods buffered.
    pub methods: Vec<Method>,
    /// The statuses that count as failed deliveries.
    pub failures: Vec<StatusMatch>,
    /// The route's upstream.
    pub upstream: Arc<Upstream>,
    /// The time one delivery may take (the route's timeout).
    pub timeout: Duration,
}

impl BufferRoute {
    /// The buffer of `route` (validated with the config), delivering to `upstream` within
    /// `timeout`.
    pub fn new(
        route: &RouteConfig,
        config: &BufferConfig,
        upstream: Arc<Upstream>,
        timeout: Duration,
    ) -> Self {
        Self {
            config: config.clone(),
            status_path: config.status_path(route),
            methods: (config.methods.iter())
                .filter_map(|m| Method::from_bytes(m.as_bytes()).ok())
                .collect(),
            failures: config.failure_statuses(),
            upstream,
            timeout,
        }
    }

    /// The ticket a request for `path` asks about, if it is a status request (the ticket
    /// may be malformed: the caller checks).
    pub fn ticket_of<'a>(&self, path: &'a str) -> Option<&'a str> {
        path.strip_prefix(self.status_path.as_str())?
            .strip_prefix('/')
    }
}

/// What a route's buffer counted.
#[derive(Default)]
pub struct BufferCounts {
    /// Requests stored and answered `202`.
    pub accepted: AtomicU64,
    /// Writes refused because the route's buffer was full.
    pub refused: AtomicU64,
    /// Requests delivered (with a final status).
    pub delivered: AtomicU64,
    /// Failed attempts put back for a retry.
    pub retried: AtomicU64,
    /// Requests that became dead.
    pub dead: AtomicU64,
}

/// One route's lane: its counts, its drainer's wake-ups and deliveries in flight.
#[derive(Default)]
pub struct Lane {
    /// What happened so far.
    pub count: BufferCounts,
    /// Requests waiting, as the drainer last saw.
    pub pending: AtomicU64,
    /// Dead requests kept, as the drainer last saw.
    pub dead_kept: AtomicU64,
    in_flight: AtomicUsize,
    /// Woken by an accept here, or a delivery's end.
    wake: Notify,
    /// Woken when a delivery ends.
    settled: Notify,
}

/// Where the buffer keeps its requests.
pub enum BufferBackend<'a> {
    /// The embedded store, opened now when the flag is set (a route buffers: a store that
    /// cannot open then stops the start), else on first use.
    Embedded(bool),
    /// Redis, shared by a fleet; `usize` is the proxy's worker threads.
    Redis(&'a RedisConfig, usize),
}

/// The buffer of one gateway: its store, and a drainer per buffered route.
pub struct BufferService {
    store: OnceLock<Arc<dyn BufferStore>>,
    store_path: PathBuf,
    opening: Mutex<()>,
    poll: Duration,
    lanes: DashMap<String, Arc<Lane>>,
    drainers: Mutex<HashMap<String, watch::Sender<Option<Arc<BufferRoute>>>>>,
    stopping: watch::Sender<bool>,
}

/// Why a write was not accepted.
#[derive(Debug)]
pub enum Refusal {
    /// The route holds `max_pending` requests already.
    Full,
    /// The store failed.
    Store(StoreError),
}

impl BufferService {
    /// The buffer for `config` with its store in `backend`: embedded at `buffer.store`
    /// (default `<base_dir>/.weir-buffer.redb`), or in Redis; and its sweeper.
    pub fn start(
        config: &BufferStoreConfig,
        base_dir: &Path,
        backend: BufferBackend<'_>,
    ) -> anyhow::Result<Arc<Self>> {
        let store_path = match &config.store {
            Some(path) => base_dir.join(path),
            None => base_dir.join(".weir-buffer.redb"),
        };
        let service = Arc::new(Self {
            store: OnceLock::new(),
            store_path,
            opening: Mutex::new(()),
            poll: millis(config.poll_interval_ms.max(1)),
            lanes: DashMap::new(),
            drainers: Mutex::default(),
            stopping: watch::channel(false).0,
        });
        match backend {
            BufferBackend::Embedded(true) => drop(service.store().map_err(anyhow::Error::msg)?),
            BufferBackend::Embedded(false) => {}
            BufferBackend::Redis(redis, workers) => {
                let client = RedisClient::new(redis, base_dir, workers)?;
                let _ = service
                    .store
                    .set(Arc::new(shared::RedisBufferStore::new(client)));
            }
        }
        service.spawn_sweeper();
        Ok(service)
    }

    /// The store, opened now if it was not yet.
    fn store(&self) -> Result<&Arc<dyn BufferStore>, StoreError> {
        if let Some(store) = self.store.get() {
            return Ok(store);
        }
        let _opening = (self.opening.lock()).map_err(|_| StoreError("poisoned".into()))?;
        if let Some(store) = self.store.get() {
            return Ok(store);
        }
        let path = &self.store_path;
        let opened = embedded::EmbeddedStore::open(path)
            .map_err(|e| StoreError(format!("{}: {}", path.display(), e.0)))?;
        let _ = self.store.set(Arc::new(opened));
        (self.store.get()).ok_or_else(|| StoreError("not opened".into()))
    }

    /// The lane of route `name`.
    pub fn lane(&self, name: &str) -> Arc<Lane> {
        if let Some(lane) = self.lanes.get(name) {
            return lane.clone();
        }
        self.lanes.entry(name.to_string()).or_default().clone()
    }

    /// Stores `entry` (its stored form) under `ticket` for `route`, durably, and wakes the
    /// route's drainer.
    pub async fn accept(
        &self,
        route: &str,
        ticket: &str,
        entry: bytes::Bytes,
        max_pending: u64,
    ) -> Result<(), Refusal> {
        let store = self.store().map_err(Refusal::Store)?;
        let lane = self.lane(route);
        match store.accept(route, ticket, entry, max_pending).await {
            Ok(true) => {
                lane.count.accepted.fetch_add(1, Ordering::Relaxed);
                lane.wake.notify_one();
                Ok(())
            }
            Ok(false) => {
                lane.count.refused.fetch_add(1, Ordering::Relaxed);
                Err(Refusal::Full)
            }
            Err(e) => Err(Refusal::Store(e)),
        }
    }

    /// The status of `ticket` of `route` as JSON, if it is known.
    pub async fn status(
        &self,
        route: &str,
        ticket: &str,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        let store = self.store()?;
        Ok(match store.state(route, ticket).await? {
            None => None,
            Some(TicketState::Pending {
                attempts,
                last_error,
            }) => Some(serde_json::json!({
                "ticket": ticket,
                "status": "pending",
                "attempts": attempts,
                "last_error": last_error,
            })),
            Some(TicketState::Done(json)) => Some(
                serde_json::from_str(&json)
                    .map_err(|e| StoreError(format!("a stored status does not parse: {e}")))?,
            ),
        })
    }

    /// Runs a drainer for every buffered route of the live snapshot (`routes`), each with
    /// its latest settings; stops those of routes that are gone.
    pub fn follow(self: &Arc<Self>, routes: Vec<(String, Arc<BufferRoute>)>) {
        if *self.stopping.borrow() {
            return;
        }
        let Ok(mut drainers) = self.drainers.lock() else {
            return;
        };
        drainers.retain(|name, plan| {
            let kept = routes.iter().any(|(n, _)| n == name);
            if !kept {
                let _ = plan.send(None);
            }
            kept
        });
        for (name, route) in routes {
            if let Some(plan) = drainers.get(&name) {
                let _ = plan.send(Some(route));
                continue;
            }
            let store = match self.store() {
                Ok(store) => store.clone(),
                Err(e) => {
                    tracing::warn!(route = %name, error = %e, "buffer: no store, nothing drains");
                    continue;
                }
            };
            let (plan, follows) = watch::channel(Some(route));
            let drainer = drain::run(
                name.clone(),
                store,
                self.lane(&name),
                follows,
                self.stopping.subscribe(),
                self.poll,
            );
            tokio::spawn(drainer);
            drainers.insert(name, plan);
        }
    }

    /// Stops every drainer from claiming more (deliveries under way go on).
    pub fn stop(&self) {
        self.stopping.send_replace(true);
    }

    /// Waits up to `grace` for the deliveries under way to end; what is left is delivered
    /// again later (embedded: at the restart; Redis: once its lease lapses).
    pub async fn settled(&self, grace: Duration) {
        let lanes: Vec<Arc<Lane>> = self.lanes.iter().map(|l| l.value().clone()).collect();
        let all = async {
            for lane in lanes {
                loop {
                    let settled = lane.settled.notified();
                    if lane.in_flight.load(Ordering::Relaxed) == 0 {
                        break;
                    }
                    settled.await;
                }
            }
        };
        let _ = tokio::time::timeout(grace, all).await;
    }

    /// What the admin API's `GET /buffers` shows: per route, requests waiting and dead
    /// requests kept (read from the store now; null when it does not answer) and the counts.
    pub async fn stats(&self) -> serde_json::Value {
        let names: Vec<String> = self.lanes.iter().map(|l| l.key().clone()).collect();
        let mut routes = serde_json::Map::new();
        for name in names {
            let lane = self.lane(&name);
            let depth = match self.store.get() {
                Some(store) => store.depth(&name).await.ok(),
                None => Some((0, 0)),
            };
            let c = &lane.count;
            let load = |n: &AtomicU64| n.load(Ordering::Relaxed);
            routes.insert(
                name,
                serde_json::json!({
                    "pending": depth.map(|d| d.0),
                    "dead": depth.map(|d| d.1),
                    "in_flight": lane.in_flight.load(Ordering::Relaxed),
                    "accepted": load(&c.accepted),
                    "refused": load(&c.refused),
                    "delivered": load(&c.delivered),
                    "retried": load(&c.retried),
                    "died": load(&c.dead),
                }),
            );
        }
        serde_json::json!({ "routes": routes })
    }

    /// The buffer metrics in the Prometheus text format.
    pub fn render_metrics(&self, out: &mut String) {
        use std::fmt::Write;
        type Read = fn(&Lane) -> u64;
        let metrics: [(&str, &str, &str, Read); 7] = [
            (
                "accepted_total",
                "counter",
                "Writes stored and answered 202.",
                |l| l.count.accepted.load(Ordering::Relaxed),
            ),
            (
                "refused_total",
                "counter",
                "Writes refused because the route's buffer was full.",
                |l| l.count.refused.load(Ordering::Relaxed),
            ),
            (
                "delivered_total",
                "counter",
                "Buffered requests delivered to the upstream.",
                |l| l.count.delivered.load(Ordering::Relaxed),
            ),
            (
                "retried_total",
                "counter",
                "Failed deliveries put back for a retry.",
                |l| l.count.retried.load(Ordering::Relaxed),
            ),
            (
                "dead_total",
                "counter",
                "Buffered requests that became dead letters.",
                |l| l.count.dead.load(Ordering::Relaxed),
            ),
            (
                "pending",
                "gauge",
                "Buffered requests waiting for delivery (as the drainer last saw).",
                |l| l.pending.load(Ordering::Relaxed),
            ),
            (
                "in_flight",
                "gauge",
                "Deliveries under way on this instance.",
                |l| l.in_flight.load(Ordering::Relaxed) as u64,
            ),
        ];
        let mut lanes: Vec<(String, Arc<Lane>)> = (self.lanes.iter())
            .map(|l| (l.key().clone(), l.value().clone()))
            .collect();
        lanes.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, kind, help, read) in metrics {
            let _ = writeln!(
                out,
                "# HELP weir_buffer_{name} {help}\n# TYPE weir_buffer_{name} {kind}"
            );
            for (route, lane) in &lanes {
                let route = route.replace('\\', "\\\\").replace('"', "\\\"");
                let _ = writeln!(
                    out,
                    "weir_buffer_{name}{{route=\"{route}\"}} {}",
                    read(lane)
                );
            }
        }
    }

    /// Forgets statuses kept past their time, now and then.
    fn spawn_sweeper(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                let Some(service) = weak.upgrade() else {
                    return;
                };
                let Some(store) = service.store.get() else {
                    continue;
                };
                if let Err(e) = store.sweep(crate::time::now_ms()).await {
                    tracing::warn!(error = %e, "buffer store sweep failed");
                }
            }
        });
    }
}
