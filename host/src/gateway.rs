//! The gateway: the live snapshot behind an `ArcSwap`, and the long-lived services that
//! snapshots are built with and requests use (plugin runtime, health, resilience, metrics,
//! state, budgets). Nothing else: reloads are the [`Reloader`](crate::reload::Reloader)'s.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use arc_swap::ArcSwap;

use crate::access_log::AccessLog;
use crate::admission::Admission;
use crate::body::BufferBudget;
use crate::buffer::{BufferBackend, BufferService};
use crate::config::{Config, StateBackendKind};
use crate::headers::RequestIds;
use crate::http_cache::ResponseCache;
use crate::httpdns::HttpDnsCounters;
use crate::metrics::Metrics;
use crate::plugin::PluginRuntime;
use crate::push::{PushBackend, PushService};
use crate::redis_link::RedisClient;
use crate::resilience::Resilience;
use crate::snapshot::Snapshot;
use crate::state::StateBackend;
use crate::telemetry::Tracer;
use crate::tls::{Resumption, TlsCounters};
use crate::upstream::health::HealthRegistry;

/// A running gateway's state. Cheap to share: handlers hold an `Arc<Gateway>`.
pub struct Gateway {
    /// The live snapshot; each request loads it once.
    snapshot: ArcSwap<Snapshot>,
    pub(crate) runtime: PluginRuntime,
    pub(crate) health: HealthRegistry,
    /// Upstream outcomes, circuits and load, kept across snapshots.
    pub(crate) resilience: Arc<Resilience>,
    /// All metrics.
    pub metrics: Metrics,
    pub(crate) state: Arc<dyn StateBackend>,
    pub(crate) request_ids: RequestIds,
    /// Body bytes buffered for filters, all requests together.
    pub(crate) buffers: Arc<BufferBudget>,
    /// Upgraded connections spliced through now.
    pub(crate) tunnels: Arc<AtomicU64>,
    /// Open client connections of the proxy listeners.
    pub(crate) connections: Arc<Admission>,
    /// Push: devices' connections and the message store.
    pub push: Arc<PushService>,
    /// The response cache that caching filters store into.
    pub cache: Arc<ResponseCache>,
    /// HttpDNS answers and refusals, kept across snapshots.
    pub httpdns: HttpDnsCounters,
    /// TLS session resumption state, shared by every snapshot's terminator.
    pub(crate) tls_resumption: Resumption,
    /// TLS handshakes on the `[tls]` listeners, by outcome.
    pub tls: TlsCounters,
    /// Buffered routes' store and drainers.
    pub buffer: Arc<BufferService>,
    /// The access log's writer.
    pub access_log: Arc<AccessLog>,
    /// Where sampled requests' spans go (`[tracing]` with an `otlp_endpoint`).
    pub tracer: Option<Arc<Tracer>>,
}

impl Gateway {
    /// Starts the long-lived services `config` asks for (the plugin runtime, the state
    /// backend); the snapshot is empty (no routes) until the first [`Gateway::swap`].
    /// These services are read from the config once: changing them needs a restart.
    pub async fn new(config: &Config) -> anyhow::Result<Self> {
        Ok(Self {
            snapshot: ArcSwap::from_pointee(Snapshot::empty()),
            runtime: PluginRuntime::new(&config.runtime, config.cache_paths()?)?,
            health: HealthRegistry::default(),
            resilience: Arc::default(),
            metrics: Metrics::default(),
            state: crate::state::start(&config.state, (&config.base_dir, config.server.workers()))
                .await?,
            request_ids: RequestIds::default(),
            buffers: Arc::default(),
            tunnels: Arc::default(),
            connections: Arc::default(),
            push: PushService::start(&config.push, &config.base_dir, push_backend(config))?,
            cache: ResponseCache::start(&config.cache, shared_cache(config)?),
            httpdns: HttpDnsCounters::default(),
            tls_resumption: Resumption::new()?,
            tls: TlsCounters::default(),
            buffer: BufferService::start(&config.buffer, &config.base_dir, buffer_backend(config))?,
            access_log: Arc::new(AccessLog::start(&config.access_log, &config.base_dir)?),
            tracer: Tracer::start(&config.tracing, config.server.log_repeat_interval_ms)?,
        })
    }

    /// The live snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// Makes `snapshot` the live one; requests in flight finish on the one they loaded.
    pub(crate) fn swap(&self, snapshot: Arc<Snapshot>) {
        self.snapshot.store(snapshot);
    }
}

/// The Redis the response cache shares its entries through: the state backend's, unless
/// `cache.shared` is off.
fn shared_cache(config: &Config) -> anyhow::Result<Option<RedisClient>> {
    match (config.state.backend, &config.state.redis) {
        (StateBackendKind::Redis, Some(redis)) if config.cache.shared => Ok(Some(
            RedisClient::new(redis, &config.base_dir, config.server.workers())?,
        )),
        _ => Ok(None),
    }
}

/// Where push keeps its state: in Redis with the Redis state backend (a fleet), else in
/// the embedded store, opened at start when a route serves push.
fn push_backend(config: &Config) -> PushBackend<'_> {
    match (config.state.backend, &config.state.redis) {
        (StateBackendKind::Redis, Some(redis)) => {
            PushBackend::Redis(redis, config.server.workers())
        }
        _ => PushBackend::Embedded(config.routes.iter().any(|r| r.push.is_some())),
    }
}

/// Where buffered routes keep their requests: in Redis with the Redis state backend (a
/// fleet drains one queue), else in the embedded store, opened at start when a route
/// buffers.
fn buffer_backend(config: &Config) -> BufferBackend<'_> {
    match (config.state.backend, &config.state.redis) {
        (StateBackendKind::Redis, Some(redis)) => {
            BufferBackend::Redis(redis, config.server.workers())
        }
        _ => BufferBackend::Embedded(config.routes.iter().any(|r| r.buffer.is_some())),
    }
}
