//! Test filter for the host interfaces. As its config says, it reads a secret, calls an
//! upstream through `http`, takes from a rate limit, reads the clock, reads a granted file,
//! asks for the route's upstream record, changes the method, reads the response trailers;
//! it reports each answer in an `x-probe-*` response header (the `Debug` form of an error),
//! and answers 429 with `retry-after` when the limit refuses.

use serde::Deserialize;
use weir_plugin_sdk::host::{clock, http, limits, secrets, upstreams};
use weir_plugin_sdk::prelude::*;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    secret: Option<String>,
    fetch: Option<String>,
    limit: Option<u64>,
    #[serde(default)]
    clock: bool,
    /// A new method for the upstream request.
    method: Option<String>,
    /// Report `request.upstream()`.
    #[serde(default)]
    upstream: bool,
    /// A file to read when configured; its size (or the error) is reported.
    file: Option<String>,
    /// Report the route's upstream record and the gateway's load.
    #[serde(default)]
    record: bool,
    /// Report the response trailers (asks for the `response-body` phase).
    #[serde(default)]
    trailers: bool,
}

struct Probe {
    config: Config,
    /// What reading `config.file` gave.
    file: Option<String>,
}

impl Probe {
    fn secret(name: &str) -> String {
        match secrets::get(name) {
            Ok(Some(value)) => String::from_utf8_lossy(&value).into_owned(),
            Ok(None) => "missing".into(),
            Err(e) => format!("{e:?}"),
        }
    }

    /// The route's calls and failures of the last minute, its circuit state and the
    /// gateway's requests in flight, as `calls/failures/state/in-flight`.
    fn record(route: &str) -> String {
        let scope = upstreams::Scope::Route(route.to_string());
        let stats = upstreams::stats(&scope, 60_000, 1_000);
        let circuit = upstreams::circuit(&scope);
        match (stats, circuit) {
            (Ok(s), Ok(c)) => format!(
                "{}/{}/{:?}/{}",
                s.calls,
                s.failures,
                c.state,
                upstreams::load().in_flight
            ),
            (Err(e), _) | (_, Err(e)) => format!("{e:?}"),
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
        let file = config.file.as_ref().map(|path| match std::fs::read(path) {
            Ok(bytes) => format!("{} bytes", bytes.len()),
            Err(e) => format!("error: {:?}", e.kind()),
        });
        Ok(Self { config, file })
    }

    fn phases(&self) -> Vec<Phase> {
        let mut phases = Self::PHASES.to_vec();
        if self.config.trailers {
            phases.push(Phase::ResponseBody);
        }
        phases
    }

    fn on_request(&self, request: &Request) -> RequestDecision {
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
        if let Some(method) = &self.config.method {
            changes = changes.set_method(method.clone());
        }
        if self.config.upstream {
            changes = changes.set_variable("probe.upstream", request.upstream());
        }
        if let Some(file) = &self.file {
            changes = changes.set_variable("probe.file", file.clone());
        }
        RequestDecision::Continue(changes)
    }

    fn on_response(&self, request: &Request, response: &ResponseView) -> ResponseDecision {
        let mut changes = ResponseChanges::new();
        for key in ["remaining", "secret", "fetch", "now", "upstream", "file"] {
            if let Some(value) = request.variable(&format!("probe.{key}")) {
                changes = changes.set_header(&format!("x-probe-{key}"), value.as_bytes());
            }
        }
        if self.config.record {
            changes = changes.set_header("x-probe-record", Self::record(request.route()));
        }
        if self.config.trailers {
            let trailers: Vec<String> = response
                .trailers()
                .iter()
                .map(|t| format!("{}={}", t.name, String::from_utf8_lossy(&t.value)))
                .collect();
            changes = changes.set_header("x-probe-trailers", trailers.join(";"));
        }
        ResponseDecision::Continue(changes)
    }
}

export_filter!(Probe);
