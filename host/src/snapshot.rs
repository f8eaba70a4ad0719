//! A snapshot: one validated, immutable view of the config and the plugins. Requests take
//! the current one once and finish on it, however many reloads happen meanwhile.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::config::push::PushEndpoint;
use crate::config::{Config, FailurePolicy, FilterConfig, HashOn, millis};
use crate::httpdns::HttpDns;
use crate::metrics::{Metrics, RouteMetrics, UpstreamCallMetrics};
use crate::plugin::{
    CallLimits, FilterSettings, FilterSlot, Grants, HostServices, LoadedPlugin, RouterSlot,
};
use crate::push::decision::{FailOpen, PushRouter};
use crate::push::vendor::{TokenCache, Vendors};
use crate::resilience::{Bulkhead, Record, Resilience, ScopeKind};
use crate::router::Router;
use crate::state::StateBackend;
use crate::tls::{Resumption, Terminator};
use crate::upstream::Upstream;
use crate::upstream::health::HealthRegistry;

/// A route, ready to serve.
pub struct Route {
    /// The route's name.
    pub name: String,
    /// Its upstream (none on a push route).
    pub upstream: Option<Arc<Upstream>>,
    /// The push endpoint that serves it instead of an upstream.
    pub push: Option<PushEndpoint>,
    /// Whether the snapshot's HttpDNS endpoint serves it instead of an upstream.
    pub httpdns: bool,
    /// A publish route's router (the default policy when none is configured).
    pub push_router: Option<Arc<dyn PushRouter>>,
    /// What consistent hashing hashes on this route's upstream.
    pub hash_on: HashOn,
    /// Time to the upstream's response headers.
    pub timeout: Duration,
    /// The `Host` sent upstream instead of the routed authority.
    pub host_rewrite: Option<String>,
    /// The filter chain, in order.
    pub filters: Vec<Arc<FilterSlot>>,
    /// How often its repeated warnings are logged (`server.log_repeat_interval_ms`).
    pub log_repeat_interval_ms: u64,
    /// Requests and latency.
    pub metrics: Arc<RouteMetrics>,
    /// Its calls to each upstream of the config, by name (a filter may choose any).
    pub upstream_calls: BTreeMap<String, Arc<UpstreamCallMetrics>>,
    /// The outcomes of its upstream calls and its circuit.
    pub record: Arc<Record>,
    /// The bulkhead that caps its requests in flight, if it names one.
    pub bulkhead: Option<Arc<Bulkhead>>,
    /// Its retries of failed upstream calls, if it has a policy.
    pub retry: Option<crate::resilience::RetryPolicy>,
    /// The fields its responses carry while it is deprecated.
    pub deprecation: Vec<(http::HeaderName, http::HeaderValue)>,
    /// Whether its requests are logged (`access_log`, or the route's own switch).
    pub access_log: bool,
    /// Its buffer, when it answers writes with `202` and a ticket.
    pub buffer: Option<Arc<crate::buffer::BufferRoute>>,
}

/// Everything a request needs, immutable.
pub struct Snapshot {
    /// Increases by one with every snapshot swapped in.
    pub generation: u64,
    /// The config it was built from.
    pub config: Arc<Config>,
    /// The compiled route matcher.
    pub router: Router,
    /// The routes, in the router's order.
    pub routes: Vec<Route>,
    /// The upstreams by name.
    pub upstreams: BTreeMap<String, Arc<Upstream>>,
    /// The push vendor channels, when any is configured.
    pub push_vendors: Option<Arc<Vendors>>,
    /// The HttpDNS endpoint (`[httpdns]`), for routes with `httpdns = true`.
    pub httpdns: HttpDns,
    /// What terminates TLS on the `[tls]` listeners, with the certificates read for this
    /// snapshot.
    pub tls: Option<Arc<Terminator>>,
    /// The plugin files it uses, by file name.
    pub plugins: BTreeMap<String, Arc<LoadedPlugin>>,
    /// When it was built.
    pub created_at: SystemTime,
}

/// Why a snapshot could not be built, with the plugin file to blame if there is one.
#[derive(Debug)]
pub struct SnapshotError {
    /// The plugin file at fault.
    pub plugin_file: Option<String>,
    /// The reason.
    pub message: String,
}

impl std::fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// The long-lived parts a snapshot is built with.
pub struct BuildContext<'a> {
    /// Plugin files that loaded, by file name; failures by file name.
    pub plugins: &'a BTreeMap<String, Result<Arc<LoadedPlugin>, String>>,
    /// Target health kept across snapshots.
    pub health: &'a HealthRegistry,
    /// Upstream outcomes and circuits kept across snapshots.
    pub resilience: &'a Arc<Resilience>,
    /// Metrics kept across snapshots.
    pub metrics: &'a Metrics,
    /// The `kv`/`limits` backend.
    pub state: Arc<dyn StateBackend>,
    /// Push vendors' access tokens, kept across snapshots.
    pub push_tokens: Arc<TokenCache>,
    /// The response cache, for `cache`.
    pub cache: Arc<crate::http_cache::ResponseCache>,
    /// TLS session resumption state, kept across snapshots.
    pub tls_resumption: &'a Resumption,
}

impl Snapshot {
    /// The snapshot before the first load: no routes.
    pub(crate) fn empty() -> Self {
        Self {
            generation: 0,
            config: Arc::new(Config::empty()),
            router: Router::default(),
            routes: Vec::new(),
            upstreams: BTreeMap::new(),
            plugins: BTreeMap::new(),
            push_vendors: None,
            httpdns: HttpDns::default(),
            tls: None,
            created_at: SystemTime::now(),
        }
    }

    /// Builds and validates a snapshot: resolves upstreams, configures every filter of
    /// every route on a first instance. Nothing is shared with the live snapshot but
    /// compiled plugins, health and metrics.
    pub async fn build(
        config: Config,
        generation: u64,
        cx: BuildContext<'_>,
    ) -> Result<Self, SnapshotError> {
        let fail = |message: String| SnapshotError {
            plugin_file: None,
            message,
        };
        let router = Router::new(&config.routes).map_err(|e| fail(format!("{e:#}")))?;

        let mut upstreams = BTreeMap::new();
        for (name, upstream) in &config.upstreams {
            let record = cx.resilience.record(ScopeKind::Upstream, name);
            let bulkhead = (upstream.bulkhead()).map(|limits| {
                cx.resilience
                    .bulkheads
                    .get(&format!("upstream:{name}"), limits)
            });
            let built = Upstream::new(
                name,
                upstream,
                cx.health,
                (record, bulkhead),
                (config.server.workers(), &config.base_dir),
            )
            .await
            .map_err(|e| fail(format!("{e:#}")))?;
            upstreams.insert(name.clone(), Arc::new(built));
        }
        let secrets = config
            .secrets
            .iter()
            .map(|(name, secret)| Ok((name.clone(), secret.resolve(&format!("secret {name:?}"))?)))
            .collect::<Result<BTreeMap<_, _>, String>>()
            .map_err(fail)?;
        let services = Arc::new(HostServices {
            state: cx.state.clone(),
            secrets,
            upstreams: upstreams.clone(),
            resilience: cx.resilience.clone(),
            cache: cx.cache.clone(),
            http_max_response_bytes: config.runtime.http_max_response_bytes,
        });

        let mut routes = Vec::with_capacity(config.routes.len());
        let mut used = BTreeMap::new();
        for route in &config.routes {
            let upstream = route.upstream.as_ref().map(|name| upstreams[name].clone());
            let upstream_name = route.upstream.as_deref().unwrap_or_default();
            let mut filters = Vec::with_capacity(route.filters.len());
            for filter in &route.filters {
                let (plugin, settings, refuse) = resolve(&cx, &config, &route.name, filter)?;
                let metrics = cx.metrics.filter(&route.name, &plugin.info.name);
                let slot = FilterSlot::new(
                    plugin.clone(),
                    (&route.name, upstream_name),
                    settings,
                    services.clone(),
                    metrics,
                )
                .await
                .map_err(|e| refuse(format!("{e:#}")))?;
                used.insert(filter.plugin.clone(), plugin);
                filters.push(Arc::new(slot));
            }
            let push_router: Option<Arc<dyn PushRouter>> = match &route.push_router {
                None => None,
                Some(table) => {
                    let (plugin, settings, refuse) = resolve(&cx, &config, &route.name, table)?;
                    let failure = settings.failure;
                    let metrics = cx.metrics.filter(&route.name, &plugin.info.name);
                    let slot = RouterSlot::new(
                        plugin.clone(),
                        &route.name,
                        settings,
                        services.clone(),
                        metrics,
                    )
                    .await
                    .map_err(|e| refuse(format!("{e:#}")))?;
                    used.insert(table.plugin.clone(), plugin);
                    Some(match failure {
                        FailurePolicy::FailClosed => Arc::new(slot),
                        FailurePolicy::FailOpen => Arc::new(FailOpen(slot)),
                    })
                }
            };
            let hash_on = (route.upstream.as_ref())
                .map(|name| config.upstreams[name].hash_on.clone())
                .unwrap_or_default();
            let timeout = upstream
                .as_ref()
                .map_or(Duration::ZERO, |u| u.request_timeout);
            let timeout = route.timeout_ms.map_or(timeout, millis);
            let buffer =
                match (&route.buffer, &upstream) {
                    (Some(buffer), Some(upstream)) => Some(Arc::new(
                        crate::buffer::BufferRoute::new(route, buffer, upstream.clone(), timeout),
                    )),
                    _ => None,
                };
            routes.push(Route {
                name: route.name.clone(),
                timeout,
                push: route.push,
                httpdns: route.httpdns,
                push_router,
                host_rewrite: route.host_rewrite.clone(),
                upstream,
                hash_on,
                filters,
                log_repeat_interval_ms: config.server.log_repeat_interval_ms,
                metrics: cx.metrics.route(&route.name),
                upstream_calls: (upstreams.keys())
                    .map(|name| (name.clone(), cx.metrics.upstream_calls(&route.name, name)))
                    .collect(),
                record: cx.resilience.record(ScopeKind::Route, &route.name),
                bulkhead: (route.bulkhead.as_ref())
                    .map(|name| cx.resilience.bulkheads.get(name, config.bulkheads[name])),
                retry: route
                    .retry
                    .as_ref()
                    .map(crate::resilience::RetryPolicy::new),
                deprecation: deprecation_fields(route).map_err(fail)?,
                access_log: route.access_log.unwrap_or(config.access_log.enabled),
                buffer,
            });
        }
        let push_vendors = Vendors::build(&config, &upstreams, &cx.push_tokens)
            .map_err(|e| fail(format!("{e:#}")))?;
        let httpdns =
            HttpDns::build(&config.httpdns, &upstreams, &services.secrets).map_err(fail)?;
        let tls = Terminator::build(&config.tls, &config.base_dir, cx.tls_resumption)
            .map_err(|e| fail(format!("{e:#}")))?;
        Ok(Self {
            generation,
            push_vendors,
            httpdns,
            tls,
            config: Arc::new(config),
            router,
            routes,
            upstreams,
            plugins: used,
            created_at: SystemTime::now(),
        })
    }
}

/// The response fields of a deprecated route, ready to send.
fn deprecation_fields(
    route: &crate::config::RouteConfig,
) -> Result<Vec<(http::HeaderName, http::HeaderValue)>, String> {
    let Some(deprecated) = &route.deprecated else {
        return Ok(Vec::new());
    };
    let fields = deprecated
        .fields(&route.name)
        .map_err(|e| format!("{e:#}"))?;
    let named = |name: &'static str, value: &str| {
        http::HeaderValue::from_str(value)
            .map(|v| (http::HeaderName::from_static(name), v))
            .map_err(|e| format!("route {:?}: {name}: {e}", route.name))
    };
    let mut out = vec![named("deprecation", &fields.deprecation)?];
    if let Some(sunset) = &fields.sunset {
        out.push(named("sunset", sunset)?);
    }
    for link in &fields.links {
        out.push(named("link", link)?);
    }
    Ok(out)
}

/// A refusal that names a plugin file.
type Refuse = Box<dyn Fn(String) -> SnapshotError + Send + Sync>;

/// The loaded plugin a filter table (or a router table) names, its settings, and how to
/// refuse the snapshot naming the file.
fn resolve(
    cx: &BuildContext<'_>,
    config: &Config,
    route: &str,
    filter: &FilterConfig,
) -> Result<(Arc<LoadedPlugin>, FilterSettings, Refuse), SnapshotError> {
    let (file, route_name) = (filter.plugin.clone(), route.to_string());
    let refuse: Refuse = Box::new(move |message: String| SnapshotError {
        plugin_file: Some(file.clone()),
        message: format!("route {route_name:?}: plugin {file}: {message}"),
    });
    let namespace = filter.namespace.clone().unwrap_or(filter.plugin.clone());
    let grants = Grants::parse(&filter.grants, config, namespace).map_err(|e| SnapshotError {
        plugin_file: None,
        message: format!("route {route:?}: plugin {}: {e}", filter.plugin),
    })?;
    let plugin = match cx.plugins.get(&filter.plugin) {
        Some(Ok(plugin)) => plugin.clone(),
        Some(Err(reason)) => return Err(refuse(reason.clone())),
        None => return Err(refuse(missing_plugin(&filter.plugin, config, cx.plugins))),
    };
    let settings = filter_settings(config, filter, grants).map_err(&refuse)?;
    Ok((plugin, settings, refuse))
}

/// Why `file` is not there: the directory it was looked for in, and the file meant if
/// one differs only in case or `-`/`_` (Cargo writes `block_filter.wasm` for the package
/// `block-filter`), else what the directory holds.
fn missing_plugin(
    file: &str,
    config: &Config,
    present: &BTreeMap<String, Result<Arc<LoadedPlugin>, String>>,
) -> String {
    let dir = config.plugins_dir();
    let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
    let folded = |name: &str| name.to_ascii_lowercase().replace('_', "-");
    if let Some(meant) = present.keys().find(|name| folded(name) == folded(file)) {
        return format!("no such file in {} (did you mean {meant}?)", dir.display());
    }
    let names: Vec<&str> = present.keys().take(20).map(String::as_str).collect();
    match names.is_empty() {
        true => format!("no such file in {} (it holds no .wasm file)", dir.display()),
        false => format!(
            "no such file in {} (it holds {})",
            dir.display(),
            names.join(", ")
        ),
    }
}

fn filter_settings(
    config: &Config,
    filter: &FilterConfig,
    grants: Grants,
) -> Result<FilterSettings, String> {
    let rt = &config.runtime;
    let config_json = match &filter.config {
        Some(value) => serde_json::to_string(value)
            .map_err(|e| format!("config is not JSON-compatible: {e}"))?,
        None => "{}".to_string(),
    };
    Ok(FilterSettings {
        config_json,
        grants,
        failure: filter.failure,
        deadline: millis(filter.deadline_ms.unwrap_or(rt.deadline_ms).max(1)),
        memory_bytes: (filter.memory_mib.unwrap_or(rt.memory_mib) << 20) as usize,
        max_body: filter.max_body_bytes.unwrap_or(rt.max_body_bytes),
        stream_oversized: filter.stream_oversized_responses,
        max_idle: rt.pool_max_idle,
        limits: CallLimits::from_runtime(rt),
        backoff: rt.backoff,
    })
}
