//! `[[routes]]`: what a route matches, where it goes, and its filter chain.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::push::PushEndpoint;

/// A route: what it matches, where it goes, which filters run.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// A unique name, used in logs, metrics and by filters.
    pub name: String,
    /// What requests the route takes.
    #[serde(default, rename = "match")]
    pub matches: MatchConfig,
    /// The upstream that serves it (or `push`, or `httpdns`).
    pub upstream: Option<String>,
    /// The push endpoint that serves it instead of an upstream.
    pub push: Option<PushEndpoint>,
    /// Answer HttpDNS queries (`[httpdns]`) instead of an upstream (default false).
    #[serde(default)]
    pub httpdns: bool,
    /// A publish route's push router: a plugin implementing the `push-router` world,
    /// with its config, grants, failure policy and limits (default: the built-in policy).
    pub push_router: Option<FilterConfig>,
    /// Overrides the upstream's request timeout.
    pub timeout_ms: Option<u64>,
    /// The `Host` sent upstream (default: the authority the client addressed, canonical).
    pub host_rewrite: Option<String>,
    /// The `[bulkheads]` entry that caps this route's requests in flight (with every other
    /// route that names it); none by default.
    pub bulkhead: Option<String>,
    /// Retries of failed upstream calls (none unless the table is given).
    pub retry: Option<super::RetryConfig>,
    /// Buffer writes: store them, answer `202` with a ticket and deliver them to the
    /// upstream later (none unless the table is given).
    pub buffer: Option<super::buffer::BufferConfig>,
    /// The API version the route serves (a label for the admin API, the access log and
    /// the `weir_requests_total` metrics' readers), e.g. `v2`.
    pub version: Option<String>,
    /// When set, the route is deprecated: its responses carry `Deprecation`, `Sunset` and
    /// `Link` fields.
    pub deprecated: Option<super::DeprecationConfig>,
    /// Log this route's requests (`true`) or not (`false`), whatever `access_log.enabled`
    /// says; unset, it says.
    pub access_log: Option<bool>,
    /// The filter chain, in order.
    #[serde(default)]
    pub filters: Vec<FilterConfig>,
}

/// Match conditions; all given conditions must hold.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct MatchConfig {
    /// The host (without port); `*.example.com` matches any subdomain.
    pub host: Option<String>,
    /// A path prefix (`/api` matches `/api` and `/api/...`, not `/apix`).
    pub path_prefix: Option<String>,
    /// An exact path.
    pub path: Option<String>,
    /// Allowed methods.
    pub methods: Option<Vec<String>>,
    /// Headers that must be present with exactly these values.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// One filter in a route's chain.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct FilterConfig {
    /// The plugin file in the plugins directory (`headers.wasm`).
    pub plugin: String,
    /// The filter's config, handed to `configure` as JSON.
    #[serde(default)]
    pub config: Option<toml::Value>,
    /// Host interfaces granted: `log`, `clock`, `kv`, `limits`, `secrets:<name>`,
    /// `http:<upstream>`.
    #[serde(default)]
    pub grants: Vec<String>,
    /// What a failure of this filter does to the request (default fail closed).
    #[serde(default)]
    pub failure: FailurePolicy,
    /// Overrides the runtime's default deadline.
    pub deadline_ms: Option<u64>,
    /// Overrides the runtime's default memory cap.
    pub memory_mib: Option<u64>,
    /// Overrides the runtime's default body buffer limit.
    pub max_body_bytes: Option<usize>,
    /// A response whose `Content-Length` is over the body buffer limit streams past the
    /// filter, which sees its headers and no body, instead of failing the request (default
    /// false). For filters that leave large bodies alone, such as a cache.
    #[serde(default)]
    pub stream_oversized_responses: bool,
    /// The `kv`/`limits` namespace (default: the plugin file name).
    pub namespace: Option<String>,
}

/// What happens to a request when its filter traps, runs out of time or memory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailurePolicy {
    /// Answer 500 (trap) or 503 (deadline) with the request id.
    #[default]
    FailClosed,
    /// Go on as if the filter had said continue.
    FailOpen,
}
