//! Test filter for the host interfaces. As its config says, it reads a secret, calls an
//! upstream through `http`, takes from a rate limit, reads the clock; it reports each answer
//! in an `x-probe-*` response header (the `Debug` form of an error), and answers 429 with
//! `retry-after` when the limit refuses.

use serde::Deserialize;
use weir_plugin_sdk::host::{clock, http, limits, secrets};
use weir_plugin_sdk::prelude::*;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    secret: Option<String>,
    fetch: Option<String>,
    limit: Option<u64>,
    #[serde(default)]
    clock: bool,
}

struct Probe {
    config: Config,
}

impl Probe {
    fn secret(name: &str) -> String {
        match secrets::get(name) {
            Ok(Some(value)) => String::from_utf8_lossy(&value).into_owned(),
            Ok(None) => "missing".into(),
            Err(e) => format!("{e:?}"),
        }
    }

    fn fetch(upstream: &str) -> String {
        let request = http::OutboundRequest {
            upstream: upstream.to_string(),
            method: "GET".into(),
            path: "/from-plugin".into(),
            headers: Vec::new(),
            body: None,
            timeout_ms: Some(2000),
        };
        match http::send(&request) {
            Ok(response) => format!("{}", response.status),
            Err(e) => format!("{e:?}"),
        }
    }
}

impl Filter for Probe {
    type Config = Config;
    const NAME: &'static str = "probe";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const PHASES: &'static [Phase] = &[Phase::RequestHeaders, Phase::ResponseHeaders];

    fn new(config: Config) -> Result<Self, String> {
        Ok(Self { config })
    }

    fn on_request(&self, _request: &Request) -> RequestDecision {
        let mut changes = RequestChanges::new();
        if let Some(limit) = self.config.limit {
            let policy = limits::Policy {
                algorithm: limits::Algorithm::FixedWindow,
                limit,
                window_ms: 3_600_000,
            };
            match limits::take("all", policy, 1) {
                Ok(d) if !d.allowed => {
                    let seconds = d.retry_after_ms.div_ceil(1000).to_string();
                    return RequestDecision::Respond(
                        Response::json(429, r#"{"error":"rate_limited"}"#)
                            .header("retry-after", seconds),
                    );
                }
                Ok(d) => changes = changes.set_variable("probe.remaining", d.remaining.to_string()),
                Err(e) => changes = changes.set_variable("probe.remaining", format!("{e:?}")),
            }
        }
        if let Some(name) = &self.config.secret {
            changes = changes.set_variable("probe.secret", Self::secret(name));
        }
        if let Some(upstream) = &self.config.fetch {
            changes = changes.set_variable("probe.fetch", Self::fetch(upstream));
        }
        if self.config.clock {
            changes = changes.set_variable("probe.now", clock::now_ms().to_string());
        }
        RequestDecision::Continue(changes)
    }

    fn on_response(&self, request: &Request, _response: &ResponseView) -> ResponseDecision {
        let mut changes = ResponseChanges::new();
        for key in ["remaining", "secret", "fetch", "now"] {
            if let Some(value) = request.variable(&format!("probe.{key}")) {
                changes = changes.set_header(&format!("x-probe-{key}"), value.as_bytes());
            }
        }
        ResponseDecision::Continue(changes)
    }
}

export_filter!(Probe);
