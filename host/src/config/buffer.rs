//! `[buffer]` and `[routes.buffer]`: the asynchronous buffer route mode. A write to a
//! buffered route is stored durably and answered `202 Accepted` with a ticket; a drainer
//! delivers it to the route's upstream later, at a configured concurrency and rate, with
//! retries and a dead-letter list. Every value has a documented default
//! (`docs/configuration.md`).

use std::path::PathBuf;

use anyhow::{Context, bail};
use serde::Deserialize;

use super::RouteConfig;

/// `[buffer]`: where buffered requests are kept. Changing `store` needs a restart.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BufferStoreConfig {
    /// The embedded store's file (default `<config dir>/.weir-buffer.redb`); with the Redis
    /// state backend the buffer lives in Redis instead.
    pub store: Option<PathBuf>,
    /// How often an idle drainer looks for work that other instances accepted or whose
    /// back-off ended, in ms (default 100; a write accepted here wakes it at once).
    pub poll_interval_ms: u64,
}

impl Default for BufferStoreConfig {
    fn default() -> Self {
        Self {
            store: None,
            poll_interval_ms: 100,
        }
    }
}

/// `[routes.buffer]`: the route answers writes with `202` and a ticket and delivers them to
/// its upstream later.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BufferConfig {
    /// The methods that are buffered (default `POST`, `PUT`, `PATCH`, `DELETE`); others
    /// pass through to the upstream at once.
    pub methods: Vec<String>,
    /// Where tickets are answered: `GET <status_path>/<ticket>` (default
    /// `<match.path_prefix>/tickets`, or `/tickets` on a route without a prefix).
    pub status_path: Option<String>,
    /// The largest request body stored, in bytes (default 1 MiB); a larger one is `413`.
    pub max_body_bytes: usize,
    /// Requests stored and not yet delivered nor dead, at most, per route (default 10 000);
    /// past it a write is `503` with `Retry-After`.
    pub max_pending: u64,
    /// Deliveries in flight at once, per route and instance (default 8).
    pub concurrency: usize,
    /// Deliveries started per second, per route and instance, with a burst of a tenth of
    /// a second's worth (default 100; 0: no limit).
    pub rate: u32,
    /// Deliveries of one request before it is dead (default 5).
    pub max_attempts: u32,
    /// The back-off before the second attempt, in ms (default 1000); it doubles with each
    /// attempt up to `backoff_max_ms`, and a random part of up to half is taken off (jitter).
    pub backoff_base_ms: u64,
    /// The longest back-off, in ms (default 60 000).
    pub backoff_max_ms: u64,
    /// Upstream statuses that count as a failed delivery, as codes (`"429"`) or classes
    /// (`"5xx"`) (default `["5xx"]`). Connect failures and timeouts always do; any other
    /// status is delivered, and final.
    pub retry_statuses: Vec<String>,
    /// How long a delivered or dead ticket's status is kept, in ms (default 86 400 000).
    pub ticket_ttl_ms: u64,
    /// The largest upstream response body kept for a ticket's status, in bytes (default
    /// 65 536); past it the body is left out and the status says it was truncated.
    pub max_response_bytes: usize,
    /// Dead requests kept (with their bodies) per route, at most (default 10 000); past it
    /// the oldest go.
    pub max_dead: u64,
    /// With Redis: how long an instance's claim on a request lasts without being renewed,
    /// in ms (default 30 000). A delivering instance renews it every third of it; another
    /// instance takes over a request only once its claim has lapsed (its instance died).
    pub lease_ms: u64,
}

impl Default for BufferConfig {
    fn default() -> Self {
        Self {
            methods: ["POST", "PUT", "PATCH", "DELETE"]
                .map(String::from)
                .to_vec(),
            status_path: None,
            max_body_bytes: 1 << 20,
            max_pending: 10_000,
            concurrency: 8,
            rate: 100,
            max_attempts: 5,
            backoff_base_ms: 1_000,
            backoff_max_ms: 60_000,
            retry_statuses: vec!["5xx".into()],
            ticket_ttl_ms: 86_400_000,
            max_response_bytes: 64 << 10,
            max_dead: 10_000,
            lease_ms: 30_000,
        }
    }
}

/// A status or a class of statuses (`5xx`) that counts as a failed delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusMatch {
    /// One status.
    Code(u16),
    /// Every status of a class: `5` for 5xx.
    Class(u16),
}

impl StatusMatch {
    /// Parses `"503"` or `"5xx"`.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        match text.strip_suffix("xx").or_else(|| text.strip_suffix("XX")) {
            Some(class) => class
                .parse::<u16>()
                .ok()
                .filter(|c| (1..=5).contains(c))
                .map(Self::Class),
            None => text
                .parse::<u16>()
                .ok()
                .filter(|c| (100..=599).contains(c))
                .map(Self::Code),
        }
    }

    /// Whether `status` matches.
    pub fn matches(self, status: u16) -> bool {
        match self {
            Self::Code(code) => status == code,
            Self::Class(class) => status / 100 == class,
        }
    }
}

impl BufferConfig {
    /// The ticket status path of `route`: the configured one or the default.
    pub fn status_path(&self, route: &RouteConfig) -> String {
        match (&self.status_path, &route.matches.path_prefix) {
            (Some(path), _) => path.trim_end_matches('/').to_string(),
            (None, Some(prefix)) => format!("{}/tickets", prefix.trim_end_matches('/')),
            (None, None) => "/tickets".into(),
        }
    }

    /// The statuses that count as failures, parsed.
    pub fn failure_statuses(&self) -> Vec<StatusMatch> {
        (self.retry_statuses.iter())
            .filter_map(|s| StatusMatch::parse(s))
            .collect()
    }

    /// Checks the values against each other and against the route that has them.
    pub fn validate(&self, route: &RouteConfig) -> anyhow::Result<()> {
        let what = |key: &str| format!("route {:?}: buffer.{key}", route.name);
        if route.upstream.is_none() {
            bail!("route {:?}: buffer needs an upstream", route.name);
        }
        if route.matches.path.is_some() && self.status_path.is_none() {
            bail!(
                "route {:?}: buffer on a route with match.path needs a status_path the route also matches",
                route.name
            );
        }
        for method in &self.methods {
            let parsed = http::Method::from_bytes(method.as_bytes())
                .with_context(|| format!("{}: {method:?} is not a method", what("methods")))?;
            if parsed == http::Method::GET || parsed == http::Method::HEAD {
                bail!(
                    "{}: GET and HEAD read tickets, they are never buffered",
                    what("methods")
                );
            }
        }
        if let Some(methods) = &route.matches.methods
            && !methods.iter().any(|m| m.eq_ignore_ascii_case("GET"))
        {
            bail!(
                "route {:?}: buffer needs match.methods to include GET (tickets are read with it)",
                route.name
            );
        }
        let status_path = self.status_path(route);
        if !status_path.starts_with('/') {
            bail!("{}: {status_path:?} must start with /", what("status_path"));
        }
        let under = |prefix: &str| {
            let prefix = prefix.trim_end_matches('/');
            status_path == prefix || status_path.starts_with(&format!("{prefix}/"))
        };
        match (&route.matches.path_prefix, &route.matches.path) {
            (Some(prefix), _) if !under(prefix) => bail!(
                "{}: {status_path:?} is not under the route's path_prefix {prefix:?}",
                what("status_path")
            ),
            _ => {}
        }
        for (key, value) in [
            ("max_body_bytes", self.max_body_bytes as u64),
            ("max_pending", self.max_pending),
            ("concurrency", self.concurrency as u64),
            ("max_attempts", u64::from(self.max_attempts)),
            ("ticket_ttl_ms", self.ticket_ttl_ms),
            ("max_dead", self.max_dead),
        ] {
            if value == 0 {
                bail!("{} must be at least 1", what(key));
            }
        }
        if self.max_body_bytes > 64 << 20 {
            bail!("{} must be at most 64 MiB", what("max_body_bytes"));
        }
        if self.max_response_bytes > 16 << 20 {
            bail!("{} must be at most 16 MiB", what("max_response_bytes"));
        }
        if self.concurrency > 4096 {
            bail!("{} must be at most 4096", what("concurrency"));
        }
        if self.backoff_max_ms < self.backoff_base_ms {
            bail!(
                "{} must be at least backoff_base_ms",
                what("backoff_max_ms")
            );
        }
        if self.lease_ms < 1_000 {
            bail!("{} must be at least 1000", what("lease_ms"));
        }
        for status in &self.retry_statuses {
            if StatusMatch::parse(status).is_none() {
                bail!(
                    "{}: {status:?} is neither a status (\"503\") nor a class (\"5xx\")",
                    what("retry_statuses")
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::StatusMatch;

    #[test]
    fn statuses_and_classes_parse() {
        assert_eq!(StatusMatch::parse("5xx"), Some(StatusMatch::Class(5)));
        assert_eq!(StatusMatch::parse("429"), Some(StatusMatch::Code(429)));
        assert_eq!(StatusMatch::parse("9xx"), None);
        assert_eq!(StatusMatch::parse("42"), None);
        assert!(StatusMatch::Class(5).matches(503));
        assert!(!StatusMatch::Class(5).matches(404));
        assert!(StatusMatch::Code(429).matches(429));
    }
}
