//! Metrics: lock-free counters and fixed-bucket histograms, looked up once per snapshot
//! (never per request), rendered in the Prometheus text format.

use std::borrow::Cow;
use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use dashmap::DashMap;

use crate::error::FailureKind;
use crate::repeats::Repeats;

/// Histogram bucket bounds, in seconds.
const BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 2.5, 10.0,
];

/// A label value escaped as the Prometheus text format requires (backslash, double quote
/// and line feed), so that a route, upstream or plugin name cannot break a line or forge a
/// sample. Plugin names come from the plugins themselves: this is not cosmetic.
pub fn escape_label(value: &str) -> Cow<'_, str> {
    if !value.contains(['\\', '"', '\n']) {
        return Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len() + 8);
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// A latency histogram.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_ns: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|&b| secs <= b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_ns
            .fetch_add(elapsed.as_nanos() as u64, Ordering::Relaxed);
    }

    /// The observations so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// The mean observation, if there is any.
    pub fn mean(&self) -> Option<Duration> {
        let count = self.count();
        let sum = self.sum_ns.load(Ordering::Relaxed);
        (count > 0).then(|| Duration::from_nanos(sum / count))
    }

    /// An estimate of the `q` quantile (0 to 1) as Prometheus' `histogram_quantile` makes
    /// it: linear within the bucket that holds it; the highest bound when it lies above
    /// every bound. `None` with no observation.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let count = self.count();
        if count == 0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * count as f64;
        let (mut below, mut lower) = (0u64, 0.0);
        for (&bound, bucket) in BUCKETS.iter().zip(&self.buckets) {
            let n = bucket.load(Ordering::Relaxed);
            if n > 0 && (below + n) as f64 >= rank {
                let within = (rank - below as f64) / n as f64;
                return Some(Duration::from_secs_f64(lower + (bound - lower) * within));
            }
            (below, lower) = (below + n, bound);
        }
        Some(Duration::from_secs_f64(lower))
    }

    /// The mean, p50 and p99 in milliseconds (null with no observation).
    pub fn summary_ms(&self) -> serde_json::Value {
        let ms = |d: Option<Duration>| d.map(|d| d.as_secs_f64() * 1e3);
        serde_json::json!({
            "mean": ms(self.mean()),
            "p50": ms(self.quantile(0.5)),
            "p99": ms(self.quantile(0.99)),
        })
    }

    /// Renders the histogram; `labels` are already escaped.
    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (bound, bucket) in BUCKETS.iter().zip(&self.buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {count}");
        let sum = self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
        let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
    }
}

/// Per-route request counts by status, and latency.
#[derive(Debug)]
pub struct RouteMetrics {
    by_status: Box<[AtomicU64]>,
    latency: Histogram,
    /// The "request failed" warning (a plugin or the gateway failed the request).
    pub request_failed: Repeats,
    /// The "upstream failed" warning.
    pub upstream_failed: Repeats,
    /// Requests its bulkhead refused.
    pub overloaded: AtomicU64,
    /// Upstream calls it tried again.
    pub retries: AtomicU64,
}

impl Default for RouteMetrics {
    fn default() -> Self {
        Self {
            by_status: (100..600).map(|_| AtomicU64::new(0)).collect(),
            latency: Histogram::default(),
            request_failed: Repeats::default(),
            upstream_failed: Repeats::default(),
            overloaded: AtomicU64::new(0),
            retries: AtomicU64::new(0),
        }
    }
}

impl RouteMetrics {
    /// Records a finished request.
    pub fn record(&self, status: u16, elapsed: Duration) {
        if let Some(c) = self.by_status.get(usize::from(status).wrapping_sub(100)) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        self.latency.observe(elapsed);
    }
}

/// The calls of one route to one upstream: how many, how many failed, how long each took
/// (from the upstream's pick to its response headers). Kept per (route, upstream) so that
/// the sides of a split (a canary beside its stable upstream) can be compared.
#[derive(Debug, Default)]
pub struct UpstreamCallMetrics {
    ok: AtomicU64,
    errors: AtomicU64,
    latency: Histogram,
}

impl UpstreamCallMetrics {
    /// Records a finished call; `failed` for a 5xx answer or a call that failed.
    pub fn record(&self, failed: bool, elapsed: Duration) {
        match failed {
            true => &self.errors,
            false => &self.ok,
        }
        .fetch_add(1, Ordering::Relaxed);
        self.latency.observe(elapsed);
    }

    /// The calls so far.
    pub fn requests(&self) -> u64 {
        self.ok.load(Ordering::Relaxed) + self.errors()
    }

    /// Of those, the failed ones.
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// Their latencies.
    pub fn latency(&self) -> &Histogram {
        &self.latency
    }
}

/// One `[[tcp]]` listener's connections and bytes.
#[derive(Debug, Default)]
pub struct TcpMetrics {
    /// Connections open now.
    pub open: AtomicU64,
    /// Connections accepted under the cap so far.
    pub accepted: AtomicU64,
    /// Connections closed at accept by the cap.
    pub refused: AtomicU64,
    /// Bytes read from clients (and sent on to targets).
    pub bytes_in: AtomicU64,
    /// Bytes read from targets (and sent on to clients).
    pub bytes_out: AtomicU64,
    /// Connections to a target that failed, timed out, or found no available target, by
    /// [`TcpFailure`].
    failures: [AtomicU64; TcpFailure::ALL.len()],
}

/// Why a `[[tcp]]` listener could not reach a target for a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpFailure {
    /// The connect failed (refused, unreachable).
    Connect = 0,
    /// The connect took longer than `connect_timeout_ms`.
    Timeout = 1,
    /// No target was available (or the upstream is gone).
    NoTarget = 2,
}

impl TcpFailure {
    /// Every reason, in label order.
    pub const ALL: [Self; 3] = [Self::Connect, Self::Timeout, Self::NoTarget];

    /// The `reason` label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Timeout => "timeout",
            Self::NoTarget => "no_target",
        }
    }
}

impl TcpMetrics {
    /// Counts a failed attempt to reach a target.
    pub fn failed(&self, why: TcpFailure) {
        self.failures[why as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// The failed attempts for `why` so far.
    pub fn failures(&self, why: TcpFailure) -> u64 {
        self.failures[why as usize].load(Ordering::Relaxed)
    }

    /// Renders every listener's series.
    fn render(out: &mut String, listeners: &DashMap<String, Arc<TcpMetrics>>) {
        type Read = fn(&TcpMetrics) -> &AtomicU64;
        let series: [(&str, &str, &str, Read); 5] = [
            (
                "weir_tcp_connections_open",
                "gauge",
                "TCP proxy connections open now, by listener.",
                |m| &m.open,
            ),
            (
                "weir_tcp_connections_total",
                "counter",
                "TCP proxy connections accepted under the cap, by listener.",
                |m| &m.accepted,
            ),
            (
                "weir_tcp_connections_refused_total",
                "counter",
                "TCP proxy connections closed at accept by the listener's max_connections.",
                |m| &m.refused,
            ),
            (
                "weir_tcp_received_bytes_total",
                "counter",
                "Bytes read from TCP proxy clients and sent on to targets, by listener.",
                |m| &m.bytes_in,
            ),
            (
                "weir_tcp_sent_bytes_total",
                "counter",
                "Bytes read from targets and sent on to TCP proxy clients, by listener.",
                |m| &m.bytes_out,
            ),
        ];
        for (name, kind, help, read) in series {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for entry in listeners.iter() {
                let listener = escape_label(entry.key());
                let n = read(entry.value()).load(Ordering::Relaxed);
                let _ = writeln!(out, "{name}{{listener=\"{listener}\"}} {n}");
            }
        }
        out.push_str("# HELP weir_tcp_connect_failures_total TCP proxy connections that reached no target, by listener and reason (connect, timeout, no_target).\n# TYPE weir_tcp_connect_failures_total counter\n");
        for entry in listeners.iter() {
            let listener = escape_label(entry.key());
            for why in TcpFailure::ALL {
                let _ = writeln!(
                    out,
                    "weir_tcp_connect_failures_total{{listener=\"{listener}\",reason=\"{}\"}} {}",
                    why.label(),
                    entry.failures(why)
                );
            }
        }
    }
}

/// Per-filter call counts, times (by phase), decisions and failures.
#[derive(Debug, Default)]
pub struct FilterMetrics {
    calls: [Histogram; CallPhase::ALL.len()],
    continued: AtomicU64,
    responded: AtomicU64,
    failures: [AtomicU64; FailureKind::ALL.len()],
    /// Instances retired between calls because their memory grew (see `plugin/memory.rs`).
    retired: AtomicU64,
    /// New instances: instantiation and `configure`, timed.
    instantiations: Histogram,
    /// The "filter failed" warning.
    pub failed: Repeats,
}

/// Which export of a plugin a call ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallPhase {
    /// `on-request`.
    Request,
    /// `on-response`.
    Response,
    /// A push router's `route`.
    Route,
}

impl CallPhase {
    /// Every phase, in label order.
    pub const ALL: [CallPhase; 3] = [Self::Request, Self::Response, Self::Route];

    /// The `phase` label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Request => "request",
            Self::Response => "response",
            Self::Route => "route",
        }
    }
}

/// What a filter decided, for metrics.
#[derive(Debug, Clone, Copy)]
pub enum Decision {
    /// It let the request or response go on.
    Continue,
    /// It answered or replaced the response.
    Respond,
}

impl FilterMetrics {
    /// Records a successful call.
    pub fn record_call(&self, elapsed: Duration, decision: Decision, phase: CallPhase) {
        self.calls[phase as usize].observe(elapsed);
        match decision {
            Decision::Continue => &self.continued,
            Decision::Respond => &self.responded,
        }
        .fetch_add(1, Ordering::Relaxed);
    }

    /// Records an instance retired for its memory's growth.
    pub fn record_retired(&self) {
        self.retired.fetch_add(1, Ordering::Relaxed);
    }

    /// Records a new instance, ready after `elapsed` (instantiated and configured).
    pub fn record_instantiation(&self, elapsed: Duration) {
        self.instantiations.observe(elapsed);
    }

    /// Records a failed call.
    pub fn record_failure(&self, kind: FailureKind) {
        self.failures[kind as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Each phase that ran at least once: its calls and their latency (mean, p50, p99, in
    /// ms), for the admin API.
    pub fn phases(&self) -> serde_json::Value {
        let phases = (CallPhase::ALL.iter().zip(&self.calls))
            .filter(|(_, calls)| calls.count() > 0)
            .map(|(phase, calls)| {
                let entry =
                    serde_json::json!({ "calls": calls.count(), "latency_ms": calls.summary_ms() });
                (phase.label().to_string(), entry)
            });
        serde_json::Value::Object(phases.collect())
    }

    /// New instances made (the first at load, then one per call that found none warm) and
    /// how long each took to be ready (mean, p50, p99, in ms), for the admin API.
    pub fn instantiations(&self) -> serde_json::Value {
        let made = &self.instantiations;
        serde_json::json!({ "count": made.count(), "latency_ms": made.summary_ms() })
    }

    /// Decisions (`continue`, `respond`) and failures by kind, for the admin API.
    pub fn counts(&self) -> serde_json::Value {
        let failures = (FailureKind::ALL.iter().zip(&self.failures))
            .map(|(kind, n)| (kind.label().to_string(), n.load(Ordering::Relaxed).into()));
        serde_json::json!({
            "continue": self.continued.load(Ordering::Relaxed),
            "respond": self.responded.load(Ordering::Relaxed),
            "failures": serde_json::Value::Object(failures.collect()),
            "instances_retired": self.retired.load(Ordering::Relaxed),
        })
    }
}

/// All metrics of the process; survives reloads.
#[derive(Debug, Default)]
pub struct Metrics {
    routes: DashMap<String, Arc<RouteMetrics>>,
    filters: DashMap<(String, String), Arc<FilterMetrics>>,
    upstream_calls: DashMap<(String, String), Arc<UpstreamCallMetrics>>,
    tcp: DashMap<String, Arc<TcpMetrics>>,
    reloads_ok: AtomicU64,
    reloads_refused: AtomicU64,
}

impl Metrics {
    /// The metrics of a route (`""` for requests that matched none).
    pub fn route(&self, route: &str) -> Arc<RouteMetrics> {
        self.routes.entry(route.to_string()).or_default().clone()
    }

    /// The metrics of a plugin on a route.
    pub fn filter(&self, route: &str, plugin: &str) -> Arc<FilterMetrics> {
        self.filters
            .entry((route.to_string(), plugin.to_string()))
            .or_default()
            .clone()
    }

    /// The calls of a route to an upstream: one per route and upstream of the config (a
    /// filter may send a request to any upstream), so the label set stays bounded.
    pub fn upstream_calls(&self, route: &str, upstream: &str) -> Arc<UpstreamCallMetrics> {
        self.upstream_calls
            .entry((route.to_string(), upstream.to_string()))
            .or_default()
            .clone()
    }

    /// The metrics of a `[[tcp]]` listener.
    pub fn tcp(&self, listener: &str) -> Arc<TcpMetrics> {
        self.tcp.entry(listener.to_string()).or_default().clone()
    }

    /// Counts a reload attempt.
    pub fn record_reload(&self, ok: bool) {
        if ok {
            &self.reloads_ok
        } else {
            &self.reloads_refused
        }
        .fetch_add(1, Ordering::Relaxed);
    }

    /// Logs how often each repeated warning was left unlogged in an interval that has
    /// passed (see [`Repeats`]).
    pub fn log_repeats(&self, interval_ms: u64) {
        for entry in self.routes.iter() {
            let route = entry.key().as_str();
            for (what, repeats) in [
                ("request failed", &entry.request_failed),
                ("upstream failed", &entry.upstream_failed),
            ] {
                if let Some(more) = repeats.sweep(interval_ms) {
                    tracing::warn!(route, more, interval_ms, "{what}: repeated");
                }
            }
        }
        for entry in self.filters.iter() {
            let (route, plugin) = entry.key();
            if let Some(more) = entry.failed.sweep(interval_ms) {
                tracing::warn!(route, plugin, more, interval_ms, "filter failed: repeated");
            }
        }
    }

    /// Renders every metric in the Prometheus text format; `extra` appends gauges that are
    /// read from the live snapshot.
    pub fn render(&self, extra: impl FnOnce(&mut String)) -> String {
        let mut out = String::with_capacity(16 << 10);
        out.push_str("# HELP weir_requests_total Requests by route and status.\n# TYPE weir_requests_total counter\n");
        for entry in self.routes.iter() {
            for (i, c) in entry.by_status.iter().enumerate() {
                let n = c.load(Ordering::Relaxed);
                if n > 0 {
                    let _ = writeln!(
                        out,
                        "weir_requests_total{{route=\"{}\",status=\"{}\"}} {n}",
                        escape_label(entry.key()),
                        i + 100
                    );
                }
            }
        }
        out.push_str("# HELP weir_route_overloaded_total Requests a route's bulkhead refused.\n# TYPE weir_route_overloaded_total counter\n");
        for entry in self.routes.iter() {
            let n = entry.overloaded.load(Ordering::Relaxed);
            if n > 0 {
                let route = escape_label(entry.key());
                let _ = writeln!(out, "weir_route_overloaded_total{{route=\"{route}\"}} {n}");
            }
        }
        out.push_str("# HELP weir_route_retries_total Upstream calls a route tried again.\n# TYPE weir_route_retries_total counter\n");
        for entry in self.routes.iter() {
            let n = entry.retries.load(Ordering::Relaxed);
            if n > 0 {
                let route = escape_label(entry.key());
                let _ = writeln!(out, "weir_route_retries_total{{route=\"{route}\"}} {n}");
            }
        }
        out.push_str("# HELP weir_request_duration_seconds Time from request to response headers.\n# TYPE weir_request_duration_seconds histogram\n");
        for entry in self.routes.iter() {
            entry.latency.render(
                &mut out,
                "weir_request_duration_seconds",
                &format!("route=\"{}\"", escape_label(entry.key())),
            );
        }
        self.render_upstream_calls(&mut out);
        TcpMetrics::render(&mut out, &self.tcp);
        out.push_str("# HELP weir_filter_call_duration_seconds Time of one filter call.\n# TYPE weir_filter_call_duration_seconds histogram\n");
        for entry in self.filters.iter() {
            let (route, plugin) = entry.key();
            let (route, plugin) = (escape_label(route), escape_label(plugin));
            for (phase, calls) in CallPhase::ALL.iter().zip(&entry.calls) {
                if calls.count() > 0 {
                    let phase = phase.label();
                    let labels = format!("route=\"{route}\",plugin=\"{plugin}\",phase=\"{phase}\"");
                    calls.render(&mut out, "weir_filter_call_duration_seconds", &labels);
                }
            }
        }
        out.push_str("# HELP weir_filter_decisions_total Filter decisions.\n# TYPE weir_filter_decisions_total counter\n");
        for entry in self.filters.iter() {
            let (route, plugin) = entry.key();
            let (route, plugin) = (escape_label(route), escape_label(plugin));
            let m = entry.value();
            for (decision, c) in [("continue", &m.continued), ("respond", &m.responded)] {
                let n = c.load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "weir_filter_decisions_total{{route=\"{route}\",plugin=\"{plugin}\",decision=\"{decision}\"}} {n}"
                );
            }
        }
        out.push_str("# HELP weir_plugin_failures_total Failed filter calls by kind (deadline, memory, trap, instantiate, oversized; backed_off: answered by the failure policy without running the backed-off filter).\n# TYPE weir_plugin_failures_total counter\n");
        for entry in self.filters.iter() {
            let (route, plugin) = entry.key();
            let (route, plugin) = (escape_label(route), escape_label(plugin));
            for kind in FailureKind::ALL {
                let n = entry.value().failures[kind as usize].load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "weir_plugin_failures_total{{route=\"{route}\",plugin=\"{plugin}\",kind=\"{}\"}} {n}",
                    kind.label()
                );
            }
        }
        out.push_str("# HELP weir_plugin_instances_retired_total Instances retired between calls because their memory grew through half the headroom they started with.\n# TYPE weir_plugin_instances_retired_total counter\n");
        for entry in self.filters.iter() {
            let (route, plugin) = entry.key();
            let (route, plugin) = (escape_label(route), escape_label(plugin));
            let n = entry.value().retired.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "weir_plugin_instances_retired_total{{route=\"{route}\",plugin=\"{plugin}\"}} {n}"
            );
        }
        out.push_str("# HELP weir_plugin_instantiate_duration_seconds Time to make a filter instance ready (instantiation and configure).\n# TYPE weir_plugin_instantiate_duration_seconds histogram\n");
        for entry in self.filters.iter() {
            let (route, plugin) = entry.key();
            let labels = format!(
                "route=\"{}\",plugin=\"{}\"",
                escape_label(route),
                escape_label(plugin)
            );
            (entry.value().instantiations).render(
                &mut out,
                "weir_plugin_instantiate_duration_seconds",
                &labels,
            );
        }
        out.push_str("# HELP weir_reloads_total Reload attempts by result.\n# TYPE weir_reloads_total counter\n");
        let _ = writeln!(
            out,
            "weir_reloads_total{{result=\"ok\"}} {}",
            self.reloads_ok.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "weir_reloads_total{{result=\"refused\"}} {}",
            self.reloads_refused.load(Ordering::Relaxed)
        );
        extra(&mut out);
        out
    }
}

impl Metrics {
    /// The calls of each route to each upstream that it called at least once.
    fn render_upstream_calls(&self, out: &mut String) {
        let called = || self.upstream_calls.iter().filter(|e| e.requests() > 0);
        out.push_str("# HELP weir_route_upstream_requests_total Upstream calls by route, upstream and outcome (error: a 5xx answer or a failed call).\n# TYPE weir_route_upstream_requests_total counter\n");
        for entry in called() {
            let (route, upstream) = entry.key();
            let (route, upstream) = (escape_label(route), escape_label(upstream));
            let errors = entry.errors();
            for (outcome, n) in [("ok", entry.requests() - errors), ("error", errors)] {
                let _ = writeln!(
                    out,
                    "weir_route_upstream_requests_total{{route=\"{route}\",upstream=\"{upstream}\",outcome=\"{outcome}\"}} {n}"
                );
            }
        }
        out.push_str("# HELP weir_route_upstream_duration_seconds Time from an upstream's pick to its response headers, by route and upstream.\n# TYPE weir_route_upstream_duration_seconds histogram\n");
        for entry in called() {
            let (route, upstream) = entry.key();
            let (route, upstream) = (escape_label(route), escape_label(upstream));
            entry.latency.render(
                out,
                "weir_route_upstream_duration_seconds",
                &format!("route=\"{route}\",upstream=\"{upstream}\""),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label("plain"), "plain");
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn quantiles_interpolate_within_their_bucket() {
        let h = Histogram::default();
        assert_eq!(h.quantile(0.5), None);
        assert_eq!(h.mean(), None);
        // 90 observations in (5 ms, 10 ms], 10 in (50 ms, 100 ms].
        for _ in 0..90 {
            h.observe(Duration::from_millis(8));
        }
        for _ in 0..10 {
            h.observe(Duration::from_millis(80));
        }
        let ms = |d: Option<Duration>| d.map(|d| d.as_secs_f64() * 1e3);
        let p50 = ms(h.quantile(0.5)).unwrap();
        assert!((p50 - (5.0 + 5.0 * 50.0 / 90.0)).abs() < 1e-6, "{p50}");
        let p99 = ms(h.quantile(0.99)).unwrap();
        assert!((p99 - (50.0 + 50.0 * 9.0 / 10.0)).abs() < 1e-6, "{p99}");
        assert_eq!(ms(h.mean()).map(f64::round), Some(15.0));
        // Above every bound: the highest bound.
        let slow = Histogram::default();
        slow.observe(Duration::from_secs(60));
        assert_eq!(slow.quantile(0.5), Some(Duration::from_secs(10)));
    }

    #[test]
    fn upstream_calls_render_only_once_called() {
        let metrics = Metrics::default();
        let canary = metrics.upstream_calls("api", "canary");
        metrics.upstream_calls("api", "unused");
        canary.record(false, Duration::from_millis(3));
        canary.record(true, Duration::from_millis(3));
        let text = metrics.render(|_| {});
        for line in [
            "weir_route_upstream_requests_total{route=\"api\",upstream=\"canary\",outcome=\"ok\"} 1",
            "weir_route_upstream_requests_total{route=\"api\",upstream=\"canary\",outcome=\"error\"} 1",
            "weir_route_upstream_duration_seconds_count{route=\"api\",upstream=\"canary\"} 2",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
        assert!(!text.contains("unused"), "{text}");
    }

    #[test]
    fn tcp_listeners_render_their_series() {
        let metrics = Metrics::default();
        let pg = metrics.tcp("pg");
        pg.open.fetch_add(2, Ordering::Relaxed);
        pg.bytes_in.fetch_add(10, Ordering::Relaxed);
        pg.failed(TcpFailure::Timeout);
        let text = metrics.render(|_| {});
        for line in [
            "weir_tcp_connections_open{listener=\"pg\"} 2",
            "weir_tcp_received_bytes_total{listener=\"pg\"} 10",
            "weir_tcp_sent_bytes_total{listener=\"pg\"} 0",
            "weir_tcp_connect_failures_total{listener=\"pg\",reason=\"timeout\"} 1",
            "weir_tcp_connect_failures_total{listener=\"pg\",reason=\"no_target\"} 0",
            "# TYPE weir_tcp_connections_refused_total counter",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
    }
}
