//! `[access_log]`: one JSON object per request, written off the request path in batches
//! to stdout or a file rotated by size. `enabled`, `sample` and `redact_query` follow
//! reloads (and a route's `access_log` overrides `enabled`); where the log goes and its
//! buffer are read at start.

use std::path::PathBuf;

use anyhow::bail;
use serde::Deserialize;

/// Where and how requests are logged.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct AccessLogConfig {
    /// Log the requests of routes that do not say otherwise (default false).
    #[serde(default)]
    pub enabled: bool,
    /// The file to append to (default: none, standard output). Read at start.
    pub path: Option<PathBuf>,
    /// The share of requests logged, from 0 to 1 (default 1: every one).
    #[serde(default = "sample")]
    pub sample: f64,
    /// A file this large is renamed `<path>.1` (the older ones shifted up) and a new one
    /// begun (default 100 MiB).
    #[serde(default = "max_file_bytes")]
    pub max_file_bytes: u64,
    /// Rotated files kept beside the live one (default 5).
    #[serde(default = "keep_files")]
    pub keep_files: usize,
    /// Records waiting for the writer at most (default 65 536); beyond, records are
    /// dropped and counted rather than slowing requests down.
    #[serde(default = "buffer_records")]
    pub buffer_records: usize,
    /// Query parameters whose values are replaced by `[redacted]` in the logged path
    /// (default the usual credential names: `apikey`, `api_key`, `key`, `token`,
    /// `access_token`, `password`, `secret`, `signature`, `sig`, `code`).
    #[serde(default = "redact_query")]
    pub redact_query: Vec<String>,
}

impl Default for AccessLogConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            path: None,
            sample: sample(),
            max_file_bytes: max_file_bytes(),
            keep_files: keep_files(),
            buffer_records: buffer_records(),
            redact_query: redact_query(),
        }
    }
}

fn sample() -> f64 {
    1.0
}
fn max_file_bytes() -> u64 {
    100 << 20
}
fn keep_files() -> usize {
    5
}
fn buffer_records() -> usize {
    65_536
}
fn redact_query() -> Vec<String> {
    let names = [
        "apikey",
        "api_key",
        "key",
        "token",
        "access_token",
        "password",
        "secret",
    ];
    (names.iter().chain(&["signature", "sig", "code"]))
        .map(|n| n.to_string())
        .collect()
}

impl AccessLogConfig {
    /// Checks the bounds.
    pub(super) fn validate(&self) -> anyhow::Result<()> {
        if !(0.0..=1.0).contains(&self.sample) {
            bail!("access_log.sample must be from 0 to 1");
        }
        if self.max_file_bytes < 4096 {
            bail!("access_log.max_file_bytes must be at least 4096");
        }
        if self.keep_files > 1000 {
            bail!("access_log.keep_files must be at most 1000");
        }
        if !(1..=1 << 24).contains(&self.buffer_records) {
            bail!("access_log.buffer_records must be from 1 to 16777216");
        }
        Ok(())
    }
}
