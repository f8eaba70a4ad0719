//! `[tracing]`: spans of each sampled request (the request, each filter call, each
//! upstream try) exported over OTLP/HTTP. `sample` follows reloads; the collector, the
//! queue and the batches are read at start.

use std::collections::BTreeMap;

use anyhow::bail;
use serde::Deserialize;

use super::SecretConfig;

/// Where and how spans are exported.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct TracingConfig {
    /// The collector's OTLP/HTTP traces endpoint, e.g. `http://127.0.0.1:4318/v1/traces`
    /// (default: none, no spans are exported; trace context is propagated all the same, new
    /// traces unsampled).
    pub otlp_endpoint: Option<String>,
    /// Headers sent with every export (a collector's API key, say); their values are
    /// secrets.
    #[serde(default)]
    pub headers: BTreeMap<String, SecretConfig>,
    /// The `service.name` of the spans (default `weir`).
    #[serde(default = "service_name")]
    pub service_name: String,
    /// The share of new traces (requests without a valid `traceparent`) that are sampled,
    /// from 0 to 1 (default 1). A `traceparent`'s own sampled flag is honoured.
    #[serde(default = "sample")]
    pub sample: f64,
    /// Spans waiting for export at most (default 8 192); beyond, a request's spans are
    /// dropped and counted rather than slowing it down.
    #[serde(default = "max_queue_spans")]
    pub max_queue_spans: usize,
    /// Spans sent in one export at most (default 512).
    #[serde(default = "max_batch_spans")]
    pub max_batch_spans: usize,
    /// How long a span may wait for its batch to fill (default 1 000 ms).
    #[serde(default = "export_interval_ms")]
    pub export_interval_ms: u64,
    /// How long one export may take (default 5 000 ms); a collector slower than that
    /// loses the batch (counted).
    #[serde(default = "export_timeout_ms")]
    pub export_timeout_ms: u64,
}

impl Default for TracingConfig {
    fn default() -> Self {
        Self {
            otlp_endpoint: None,
            headers: BTreeMap::new(),
            service_name: service_name(),
            sample: sample(),
            max_queue_spans: max_queue_spans(),
            max_batch_spans: max_batch_spans(),
            export_interval_ms: export_interval_ms(),
            export_timeout_ms: export_timeout_ms(),
        }
    }
}

fn service_name() -> String {
    "weir".to_string()
}
fn sample() -> f64 {
    1.0
}
fn max_queue_spans() -> usize {
    8192
}
fn max_batch_spans() -> usize {
    512
}
fn export_interval_ms() -> u64 {
    1000
}
fn export_timeout_ms() -> u64 {
    5000
}

impl TracingConfig {
    /// Checks the bounds and the endpoint.
    pub(super) fn validate(&self) -> anyhow::Result<()> {
        if !(0.0..=1.0).contains(&self.sample) {
            bail!("tracing.sample must be from 0 to 1");
        }
        if !(1..=1 << 20).contains(&self.max_queue_spans) {
            bail!("tracing.max_queue_spans must be from 1 to 1048576");
        }
        if !(1..=self.max_queue_spans).contains(&self.max_batch_spans) {
            bail!("tracing.max_batch_spans must be from 1 to max_queue_spans");
        }
        if !(1..=60_000).contains(&self.export_interval_ms) {
            bail!("tracing.export_interval_ms must be from 1 to 60000");
        }
        if !(1..=60_000).contains(&self.export_timeout_ms) {
            bail!("tracing.export_timeout_ms must be from 1 to 60000");
        }
        if let Some(endpoint) = &self.otlp_endpoint {
            let uri: http::Uri = endpoint
                .parse()
                .map_err(|e| anyhow::anyhow!("tracing.otlp_endpoint {endpoint:?}: {e}"))?;
            if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
                bail!("tracing.otlp_endpoint {endpoint:?}: an http:// or https:// URL");
            }
        }
        for name in self.headers.keys() {
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                bail!("tracing.headers: {name:?} is not a header name");
            }
        }
        Ok(())
    }
}
