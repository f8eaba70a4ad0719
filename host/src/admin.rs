//! The admin listener (loopback by default): `GET /plugins`, `/routes`,
//! `/routes/<name>/split`, `/upstreams`, `/circuits`, `/cache`, `/metrics` (Prometheus
//! text), `/status`, `/generations`; `POST /reload` reloads now; `POST /rollback` serves a
//! kept generation again; `POST /config` publishes a config (token required); `POST
//! /cache/purge` purges cached responses by key or prefix, on every instance; `GET /live` and `/ready` for an
//! orchestrator's probes.
//!
//! Every request but the probes passes two gates before it is routed: its `Host` (and
//! `Origin`, when a browser sent one) must be on the admin host allow-list, so that a web
//! page cannot reach the API through DNS rebinding or a cross-site form; and, when
//! `server.admin_token` is set, it must carry that token, whatever the endpoint or method.
//! The probes answer one fixed word and tell nothing else, so they need neither: a
//! Kubernetes kubelet sends the pod's address as `Host` and cannot hold a token.

use std::fmt::Write;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use percent_encoding::percent_decode_str;
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::body::{ProxyBody, full_body};
use crate::config::admin::AdminHosts;
use crate::gateway::Gateway;
use crate::http_cache::Purge;
use crate::metrics::escape_label as esc;
use crate::reload::{Reloader, RollbackError};
use crate::resilience::{Bulkhead, CircuitState, Load, Record, ScopeKind};
use crate::time::now_ms;

/// Serves one admin request: reads the gateway `reloader` reloads, and reloads it.
pub async fn handle(reloader: Arc<Reloader>, request: Request<Incoming>) -> Response<ProxyBody> {
    if let Some(answer) = probe(&request) {
        return answer;
    }
    let gateway = reloader.gateway().as_ref();
    if let Err(refusal) = allowed_origin(gateway, &request) {
        tracing::warn!(reason = refusal, "admin request refused");
        return json_response(
            StatusCode::FORBIDDEN,
            &json!({ "error": "host_not_allowed", "message": refusal }),
        );
    }
    if !authorized(gateway, &request) {
        let mut response = json_response(
            StatusCode::UNAUTHORIZED,
            &json!({ "error": "unauthorized" }),
        );
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"weir-admin\""),
        );
        return response;
    }
    match (request.method(), request.uri().path()) {
        (&Method::GET, "/plugins") => json_response(
            StatusCode::OK,
            &json!({ "plugins": reloader.plugin_statuses(), "filters": filters(gateway) }),
        ),
        (&Method::GET, path) if path.starts_with("/plugins/") => plugin_detail(&reloader, path),
        (&Method::GET, "/config") => {
            json_response(StatusCode::OK, &gateway.snapshot().config.redacted())
        }
        (&Method::GET, "/routes") => json_response(StatusCode::OK, &routes(gateway)),
        (&Method::GET, "/upstreams") => json_response(StatusCode::OK, &upstreams(gateway)),
        (&Method::GET, "/circuits") => json_response(StatusCode::OK, &circuits(gateway)),
        (&Method::GET, "/push") => json_response(StatusCode::OK, &gateway.push.stats().await),
        (&Method::GET, "/buffers") => json_response(StatusCode::OK, &gateway.buffer.stats().await),
        (&Method::GET, "/status") => {
            // `generation`: the one serving now, whatever the last reload attempt was.
            let status = json!({
                "generation": gateway.snapshot().generation,
                "reload": reloader.last_reload(),
                "state": gateway.state.status(),
            });
            json_response(StatusCode::OK, &status)
        }
        (&Method::GET, "/metrics") => metrics(gateway),
        (&Method::GET, "/cache") => json_response(StatusCode::OK, &json!(gateway.cache.status())),
        (&Method::POST, "/cache/purge") => purge(gateway, request).await,
        (&Method::GET, path) if path.starts_with("/routes/") => route_split(gateway, path),
        (&Method::GET, "/generations") => json_response(
            StatusCode::OK,
            &json!({ "generations": reloader.generations() }),
        ),
        (&Method::POST, "/rollback") => rollback(&reloader, request).await,
        (&Method::POST, "/config") => publish(&reloader, request).await,
        (&Method::POST, "/reload") => match reloader.reload().await {
            Ok(generation) => json_response(StatusCode::OK, &json!({ "generation": generation })),
            Err(reason) => json_response(
                StatusCode::UNPROCESSABLE_ENTITY,
                &json!({ "error": "reload_refused", "message": reason }),
            ),
        },
        _ => json_response(StatusCode::NOT_FOUND, &json!({ "error": "not_found" })),
    }
}

/// The largest body `POST /cache/purge` and `POST /rollback` read.
const MAX_PURGE_BODY: usize = 64 << 10;

/// The largest config `POST /config` reads.
const MAX_CONFIG_BODY: usize = 1 << 20;

/// A request body of at most `max` bytes, read within 10 s; the refusal otherwise.
async fn read_body(request: Request<Incoming>, max: usize) -> Result<Bytes, Response<ProxyBody>> {
    use http_body_util::BodyExt;
    let limited = http_body_util::Limited::new(request.into_body(), max);
    match tokio::time::timeout(Duration::from_secs(10), limited.collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) => Err(bad_request("bad_body", format!("reading the body: {e}"))),
        Err(_) => Err(bad_request(
            "bad_body",
            "the body did not arrive within 10 s".into(),
        )),
    }
}

fn bad_request(code: &str, message: String) -> Response<ProxyBody> {
    json_response(
        StatusCode::BAD_REQUEST,
        &json!({ "error": code, "message": message }),
    )
}

/// `POST /rollback` with `{"generation": N}`: serves a kept generation again (its config
/// and plugins as they were) until the files change again. 404 for a generation not kept,
/// 422 when its snapshot is refused now.
async fn rollback(reloader: &Reloader, request: Request<Incoming>) -> Response<ProxyBody> {
    let body = match read_body(request, MAX_PURGE_BODY).await {
        Ok(body) => body,
        Err(refusal) => return refusal,
    };
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Asked {
        generation: u64,
    }
    let asked: Asked = match serde_json::from_slice(&body) {
        Ok(asked) => asked,
        Err(e) => return bad_request("bad_rollback", format!("give {{\"generation\": N}}: {e}")),
    };
    match reloader.rollback(asked.generation).await {
        Ok(generation) => json_response(StatusCode::OK, &json!({ "generation": generation })),
        Err(RollbackError::NotKept(n)) => json_response(
            StatusCode::NOT_FOUND,
            &json!({ "error": "unknown_generation", "message": format!("generation {n} is not kept") }),
        ),
        Err(RollbackError::Refused(reason)) => json_response(
            StatusCode::UNPROCESSABLE_ENTITY,
            &json!({ "error": "rollback_refused", "message": reason }),
        ),
    }
}

/// `POST /config` with a whole config file (TOML): checked and applied as a file reload
/// is, until the files change again. Only with `server.admin_token` set (403 otherwise):
/// whoever publishes a config can run any plugin the plugins directory holds.
async fn publish(reloader: &Reloader, request: Request<Incoming>) -> Response<ProxyBody> {
    if reloader
        .gateway()
        .snapshot()
        .config
        .server
        .admin_token
        .is_none()
    {
        return json_response(
            StatusCode::FORBIDDEN,
            &json!({ "error": "token_required", "message": "POST /config needs server.admin_token" }),
        );
    }
    let body = match read_body(request, MAX_CONFIG_BODY).await {
        Ok(body) => body,
        Err(refusal) => return refusal,
    };
    let Ok(text) = std::str::from_utf8(&body) else {
        return bad_request("bad_config", "the config is not UTF-8".into());
    };
    match reloader.publish(text).await {
        Ok(generation) => json_response(StatusCode::OK, &json!({ "generation": generation })),
        Err(reason) => json_response(
            StatusCode::UNPROCESSABLE_ENTITY,
            &json!({ "error": "config_refused", "message": reason }),
        ),
    }
}

/// `POST /cache/purge` with `{"key": "<key>"}` or `{"prefix": "<prefix>"}`: the entries of
/// that key (or every key that starts with the prefix), in every namespace and on every
/// instance sharing the Redis level. 400 for a body that names neither; 503 when Redis
/// could not record the purge (this instance's memory is purged all the same).
async fn purge(gateway: &Gateway, request: Request<Incoming>) -> Response<ProxyBody> {
    let bad = |message: String| bad_request("bad_purge", message);
    let body = match read_body(request, MAX_PURGE_BODY).await {
        Ok(body) => body,
        Err(refusal) => return refusal,
    };
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Asked {
        key: Option<String>,
        prefix: Option<String>,
    }
    let asked: Asked = match serde_json::from_slice(&body) {
        Ok(asked) => asked,
        Err(e) => return bad(format!("the body is not a purge: {e}")),
    };
    let (name, prefix) = match (asked.key, asked.prefix) {
        (Some(key), None) if !key.is_empty() => (key, false),
        (None, Some(prefix)) => (prefix, true),
        _ => return bad("give one of a non-empty \"key\" or a \"prefix\"".into()),
    };
    let purge = Purge {
        name,
        prefix,
        at_ms: now_ms(),
    };
    match gateway.cache.purge(purge).await {
        Ok(purged) => json_response(StatusCode::OK, &json!({ "purged": purged })),
        Err(e) => json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({ "error": "purge_incomplete", "message": format!("{e:?}") }),
        ),
    }
}

/// Checks the authorities the client presented against the admin host allow-list: every
/// `Host` field and the URI's authority (HTTP/2's `:authority`), at least one of them; and
/// an `Origin`, which browsers send on cross-site and state-changing requests.
fn allowed_origin(gateway: &Gateway, request: &Request<Incoming>) -> Result<(), &'static str> {
    let allowed = AdminHosts::of(&gateway.snapshot().config.server);
    let hosts = request.headers().get_all(header::HOST);
    let mut presented = hosts.iter().map(|h| h.to_str().unwrap_or("")).peekable();
    let authority = request.uri().authority().map(|a| a.as_str());
    if presented.peek().is_none() && authority.is_none() {
        return Err("no Host");
    }
    if !presented.chain(authority).all(|h| allowed.allows(h)) {
        return Err("Host is not in server.admin_hosts");
    }
    if let Some(origin) = request.headers().get(header::ORIGIN) {
        let host = origin.to_str().ok().and_then(|o| {
            o.strip_prefix("http://")
                .or_else(|| o.strip_prefix("https://"))
        });
        if !host.is_some_and(|h| allowed.allows(h)) {
            return Err("Origin is not in server.admin_hosts");
        }
    }
    Ok(())
}

/// Whether the request carries the admin token, when one is configured (compared in
/// constant time).
fn authorized(gateway: &Gateway, request: &Request<Incoming>) -> bool {
    let snapshot = gateway.snapshot();
    let Some(token) = &snapshot.config.server.admin_token else {
        return true;
    };
    let Ok(expected) = token.resolve("server.admin_token") else {
        return false;
    };
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
        .unwrap_or_default();
    presented.len() == expected.len() && bool::from(presented.ct_eq(&expected))
}

/// Each configured filter's back-off, by route and plugin.
fn filters(gateway: &Gateway) -> Vec<serde_json::Value> {
    let snapshot = gateway.snapshot();
    let mut out = Vec::new();
    for route in &snapshot.routes {
        for f in &route.filters {
            let b = f.backoff_status();
            out.push(json!({
                "route": route.name,
                "plugin": f.plugin.file_name,
                "name": f.plugin.info.name,
                "consecutive_failures": b.consecutive_failures,
                "backed_off_until_ms": b.backed_off_until_ms,
                "answered_without_running": b.answered_without_running,
            }));
        }
    }
    out
}

fn routes(gateway: &Gateway) -> serde_json::Value {
    let snapshot = gateway.snapshot();
    let routes: Vec<_> = snapshot
        .routes
        .iter()
        .zip(&snapshot.config.routes)
        .map(|(route, config)| {
            let filters: Vec<_> = route
                .filters
                .iter()
                .map(|f| {
                    json!({
                        "plugin": f.plugin.file_name,
                        "name": f.plugin.info.name,
                        "version": f.plugin.info.version,
                        "phases": f.phases,
                        "failure": f.settings.failure,
                        "deadline_ms": f.settings.deadline.as_millis() as u64,
                        "memory_bytes": f.settings.memory_bytes,
                        "warm_instances": f.idle_instances(),
                        "backoff": f.backoff_status(),
                    })
                })
                .collect();
            json!({
                "name": route.name,
                "version": config.version,
                "deprecated": config.deprecated.as_ref().map(|d| json!({
                    "since": d.since, "sunset": d.sunset, "link": d.link,
                })),
                "match": {
                    "host": config.matches.host,
                    "path": config.matches.path,
                    "path_prefix": config.matches.path_prefix,
                    "methods": config.matches.methods,
                    "headers": config.matches.headers,
                },
                "upstream": route.upstream.as_ref().map(|u| &u.name),
                "push": route.push,
                "httpdns": route.httpdns,
                "timeout_ms": route.timeout.as_millis() as u64,
                "filters": filters,
            })
        })
        .collect();
    json!({ "generation": snapshot.generation, "routes": routes })
}

/// `GET /routes/<name>/split` (the name percent-encoded): the route's [`split`], or 404.
/// `GET /plugins/<file>`: the file's status, and each filter of the live config that runs
/// it: its route, grants, limits, back-off, decisions, failures by kind, latency by
/// phase and the instances made (counted since the process started; the counts survive reloads).
fn plugin_detail(reloader: &Reloader, path: &str) -> Response<ProxyBody> {
    let file = (path.strip_prefix("/plugins/"))
        .and_then(|name| percent_decode_str(name).decode_utf8().ok())
        .unwrap_or_default();
    let status = (reloader.plugin_statuses().into_iter()).find(|p| p.file == file);
    let snapshot = reloader.gateway().snapshot();
    let mut filters = Vec::new();
    for (route, config) in snapshot.routes.iter().zip(&snapshot.config.routes) {
        for (slot, filter) in route.filters.iter().zip(&config.filters) {
            if slot.plugin.file_name != file {
                continue;
            }
            let settings = &slot.settings;
            filters.push(json!({
                "route": route.name,
                "grants": filter.grants,
                "phases": slot.phases,
                "limits": {
                    "failure": settings.failure,
                    "deadline_ms": settings.deadline.as_millis() as u64,
                    "memory_bytes": settings.memory_bytes,
                    "max_body_bytes": settings.max_body,
                    "warm_instances_per_worker": settings.max_idle,
                },
                "warm_instances": slot.idle_instances(),
                "backoff": slot.backoff_status(),
                "decisions_and_failures": slot.metrics.counts(),
                "calls": slot.metrics.phases(),
                "instantiations": slot.metrics.instantiations(),
            }));
        }
    }
    match status {
        None if filters.is_empty() => json_response(
            StatusCode::NOT_FOUND,
            &json!({ "error": "unknown_plugin", "message": format!("no plugin file {file:?}") }),
        ),
        status => json_response(
            StatusCode::OK,
            &json!({ "plugin": status, "filters": filters }),
        ),
    }
}

fn route_split(gateway: &Gateway, path: &str) -> Response<ProxyBody> {
    let name = (path.strip_prefix("/routes/"))
        .and_then(|rest| rest.strip_suffix("/split"))
        .and_then(|name| percent_decode_str(name).decode_utf8().ok());
    let Some(name) = name else {
        return json_response(StatusCode::NOT_FOUND, &json!({ "error": "not_found" }));
    };
    match split(gateway, &name) {
        Some(split) => json_response(StatusCode::OK, &split),
        None => json_response(
            StatusCode::NOT_FOUND,
            &json!({ "error": "unknown_route", "message": format!("no route named {name:?}") }),
        ),
    }
}

/// How a route's upstream calls are split between upstreams since the process started
/// (the counts survive reloads): per upstream that was called, and the route's own
/// upstream always, the calls, the failed ones, the share of the route's calls and the
/// latency. `None` when the live snapshot has no route of that name.
fn split(gateway: &Gateway, name: &str) -> Option<serde_json::Value> {
    let snapshot = gateway.snapshot();
    let route = snapshot.routes.iter().find(|r| r.name == name)?;
    let own = route.upstream.as_ref().map(|u| u.name.as_str());
    let called: Vec<_> = (route.upstream_calls.iter())
        .filter(|(upstream, calls)| calls.requests() > 0 || Some(upstream.as_str()) == own)
        .collect();
    let total: u64 = called.iter().map(|(_, calls)| calls.requests()).sum();
    let ms = |d: Option<Duration>| d.map(|d| d.as_secs_f64() * 1e3);
    let upstreams: Vec<_> = called
        .iter()
        .map(|(upstream, calls)| {
            let (requests, errors) = (calls.requests(), calls.errors());
            let ratio = |n: u64, of: u64| if of == 0 { 0.0 } else { n as f64 / of as f64 };
            let latency = calls.latency();
            json!({
                "name": upstream,
                "requests": requests,
                "errors": errors,
                "share": ratio(requests, total),
                "error_rate": ratio(errors, requests),
                "latency_ms": {
                    "mean": ms(latency.mean()),
                    "p50": ms(latency.quantile(0.5)),
                    "p99": ms(latency.quantile(0.99)),
                },
            })
        })
        .collect();
    Some(json!({
        "route": route.name,
        "upstream": own,
        "generation": snapshot.generation,
        "requests": total,
        "upstreams": upstreams,
    }))
}

fn upstreams(gateway: &Gateway) -> serde_json::Value {
    let snapshot = gateway.snapshot();
    let now = now_ms();
    let upstreams: Vec<_> = snapshot
        .upstreams
        .values()
        .map(|u| {
            let targets: Vec<_> = u
                .targets
                .iter()
                .map(|t| {
                    let (requests, failures) = t.health.totals();
                    json!({
                        "address": t.addr.to_string(),
                        "weight": t.weight,
                        "healthy": t.health.is_healthy(),
                        "ejected": t.health.is_ejected(now),
                        "in_flight": t.health.in_flight(),
                        "requests": requests,
                        "failures": failures,
                    })
                })
                .collect();
            json!({ "name": u.name, "policy": format!("{:?}", u.policy), "targets": targets })
        })
        .collect();
    json!({ "upstreams": upstreams })
}

/// The window of the recent outcomes `GET /circuits` shows.
const RECENT: Duration = Duration::from_secs(60);

/// The records of the upstreams and routes of the live snapshot (the record keeps those a
/// reload removed, in case they come back).
fn live_records(gateway: &Gateway) -> Vec<Arc<Record>> {
    let snapshot = gateway.snapshot();
    gateway
        .resilience
        .records()
        .into_iter()
        .filter(|r| match r.kind {
            ScopeKind::Upstream => snapshot.upstreams.contains_key(&r.name),
            ScopeKind::Route => snapshot.routes.iter().any(|route| route.name == r.name),
        })
        .collect()
}

/// Every circuit (of each upstream and route), with its recent outcomes and transitions.
fn circuits(gateway: &Gateway) -> serde_json::Value {
    let circuits: Vec<_> = live_records(gateway)
        .iter()
        .map(|record| {
            let recent = record.outcomes.stats(RECENT, RECENT);
            let entered = |state| record.circuit.entered(state);
            json!({
                "scope": record.kind.label(),
                "name": record.name,
                "circuit": record.circuit.status(),
                "transitions": {
                    "open": entered(CircuitState::Open),
                    "half_open": entered(CircuitState::HalfOpen),
                    "closed": entered(CircuitState::Closed),
                },
                "last_60s": {
                    "calls": recent.calls,
                    "failures": recent.failures,
                    "consecutive_failures": recent.consecutive_failures,
                },
            })
        })
        .collect();
    let load = &gateway.resilience.load;
    json!({
        "circuits": circuits,
        "load": { "in_flight": load.in_flight(), "latency_ms": load.latency().as_millis() as u64 },
    })
}

/// The response cache's usage and counters.
fn render_cache(out: &mut String, c: &crate::http_cache::CacheStatus) {
    let _ = writeln!(
        out,
        "# HELP weir_cache_entries Responses cached in memory.\n# TYPE weir_cache_entries gauge\nweir_cache_entries {}",
        c.entries
    );
    let _ = writeln!(
        out,
        "# HELP weir_cache_bytes Bytes of the responses cached in memory.\n# TYPE weir_cache_bytes gauge\nweir_cache_bytes {}",
        c.bytes
    );
    let series =
        |out: &mut String, (name, help, label): (&str, &str, &str), values: [(&str, u64); 3]| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (value, n) in values {
                let _ = writeln!(out, "{name}{{{label}=\"{value}\"}} {n}");
            }
        };
    let lookups = (
        "weir_cache_lookups_total",
        "Cache lookups by where they were answered.",
        "result",
    );
    series(
        out,
        lookups,
        [
            ("memory", c.memory_hits),
            ("redis", c.shared_hits),
            ("miss", c.misses),
        ],
    );
    let fills = (
        "weir_cache_fills_total",
        "Turns at filling a missed key: led, answered by another's fill, or passed.",
        "turn",
    );
    series(
        out,
        fills,
        [
            ("lead", c.fills_led),
            ("waited", c.fills_waited),
            ("pass", c.fills_passed),
        ],
    );
    let _ = writeln!(
        out,
        "# HELP weir_cache_stores_total Responses stored.\n# TYPE weir_cache_stores_total counter\nweir_cache_stores_total {}",
        c.stores
    );
    let _ = writeln!(
        out,
        "# HELP weir_cache_redis_errors_total Calls to the cache's Redis level that failed.\n# TYPE weir_cache_redis_errors_total counter\nweir_cache_redis_errors_total {}",
        c.shared_errors
    );
}

fn metrics(gateway: &Gateway) -> Response<ProxyBody> {
    let snapshot = gateway.snapshot();
    let now = now_ms();
    let text = gateway.metrics.render(|out| {
        out.push_str("# HELP weir_upstream_target_healthy 1 when a target is available (healthy, not ejected).\n# TYPE weir_upstream_target_healthy gauge\n");
        for u in snapshot.upstreams.values() {
            for t in &u.targets {
                let up = u8::from(t.health.is_available(now));
                let _ = writeln!(out, "weir_upstream_target_healthy{{upstream=\"{}\",target=\"{}\"}} {up}", esc(&u.name), t.addr);
            }
        }
        out.push_str("# HELP weir_upstream_in_flight Requests in flight to a target.\n# TYPE weir_upstream_in_flight gauge\n");
        for u in snapshot.upstreams.values() {
            for t in &u.targets {
                let _ = writeln!(out, "weir_upstream_in_flight{{upstream=\"{}\",target=\"{}\"}} {}", esc(&u.name), t.addr, t.health.in_flight());
            }
        }
        out.push_str("# HELP weir_upstream_retry_budget_exhausted_total Retries refused because the upstream's retry budget was spent.\n# TYPE weir_upstream_retry_budget_exhausted_total counter\n");
        for u in snapshot.upstreams.values() {
            let n = u.retry_budget.exhausted.load(std::sync::atomic::Ordering::Relaxed);
            let _ = writeln!(out, "weir_upstream_retry_budget_exhausted_total{{upstream=\"{}\"}} {n}", esc(&u.name));
        }
        out.push_str("# HELP weir_upstream_panic_total Targets picked while none was available, from all of them as if healthy (panic routing): each try, L4 connection attempt or buffered delivery.\n# TYPE weir_upstream_panic_total counter\n");
        for u in snapshot.upstreams.values() {
            let n = u.panics.load(std::sync::atomic::Ordering::Relaxed);
            let _ = writeln!(out, "weir_upstream_panic_total{{upstream=\"{}\"}} {n}", esc(&u.name));
        }
        let state = gateway.state.status();
        let _ = writeln!(out, "# HELP weir_state_backend_up 1 when the state backend answers.\n# TYPE weir_state_backend_up gauge\nweir_state_backend_up{{backend=\"{}\"}} {}", state.backend, u8::from(state.healthy));
        let _ = writeln!(out, "# HELP weir_state_backend_outages_total Times the state backend became unreachable.\n# TYPE weir_state_backend_outages_total counter\nweir_state_backend_outages_total{{backend=\"{}\"}} {}", state.backend, state.outages);
        render_circuits(out, &live_records(gateway), &gateway.resilience.load);
        render_bulkheads(out, &gateway.resilience.bulkheads.all());
        let connections = &gateway.connections;
        let _ = writeln!(out, "# HELP weir_connections_open Client connections open now.\n# TYPE weir_connections_open gauge\nweir_connections_open {}", connections.open());
        let _ = writeln!(out, "# HELP weir_connections_parked Idle keep-alive connections that gave back their buffers and hold only their socket.\n# TYPE weir_connections_parked gauge\nweir_connections_parked {}", connections.parked());
        let _ = writeln!(out, "# HELP weir_connections_parks_total Times an idle keep-alive connection was parked.\n# TYPE weir_connections_parks_total counter\nweir_connections_parks_total {}", connections.parks());
        let _ = writeln!(out, "# HELP weir_connections_refused_total Client connections closed at accept by a connection cap.\n# TYPE weir_connections_refused_total counter\nweir_connections_refused_total {}", connections.refused());
        let _ = writeln!(out, "# HELP weir_tunnels_open Upgraded connections spliced through now.\n# TYPE weir_tunnels_open gauge\nweir_tunnels_open {}", gateway.tunnels.load(std::sync::atomic::Ordering::Relaxed));
        let _ = writeln!(out, "# HELP weir_buffered_body_bytes Body bytes held for filters now.\n# TYPE weir_buffered_body_bytes gauge\nweir_buffered_body_bytes {}", gateway.buffers.used());
        gateway.push.render_metrics(out);
        gateway.buffer.render_metrics(out);
        render_cache(out, &gateway.cache.status());
        gateway.httpdns.render(out);
        gateway.tls.render(out);
        gateway.access_log.render(out);
        if let Some(tracer) = &gateway.tracer {
            tracer.render(out);
        }
        crate::tls::render_expiry(out, snapshot.tls.as_deref());
        let _ = writeln!(out, "# HELP weir_snapshot_generation The live snapshot.\n# TYPE weir_snapshot_generation gauge\nweir_snapshot_generation {}", snapshot.generation);
    });
    let mut response = Response::new(full_body(Bytes::from(text)));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    response
}

/// The circuits' states and transitions, and the gateway's load.
/// A bulkhead metric: its name, its help and how to read it.
type BulkheadMetric = (&'static str, &'static str, fn(&Bulkhead) -> u64);

/// Each bulkhead's requests in and waiting now, and what it admitted, queued and refused.
fn render_bulkheads(out: &mut String, bulkheads: &[Arc<Bulkhead>]) {
    use std::sync::atomic::Ordering::Relaxed;
    let gauges: [BulkheadMetric; 2] = [
        ("weir_bulkhead_active", "Requests in a bulkhead now.", |b| {
            b.active() as u64
        }),
        (
            "weir_bulkhead_waiting",
            "Requests waiting for a place in a bulkhead now.",
            |b| b.waiting() as u64,
        ),
    ];
    let counters: [BulkheadMetric; 3] = [
        (
            "weir_bulkhead_admitted_total",
            "Requests a bulkhead let in.",
            |b| b.counts.admitted.load(Relaxed),
        ),
        (
            "weir_bulkhead_queued_total",
            "Requests that waited for a place in a bulkhead.",
            |b| b.counts.queued.load(Relaxed),
        ),
        (
            "weir_bulkhead_rejected_total",
            "Requests a bulkhead refused (503).",
            |b| b.counts.rejected.load(Relaxed),
        ),
    ];
    for (kind, metrics) in [("gauge", &gauges[..]), ("counter", &counters[..])] {
        for (name, help, value) in metrics {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for b in bulkheads {
                let _ = writeln!(out, "{name}{{bulkhead=\"{}\"}} {}", esc(&b.name), value(b));
            }
        }
    }
}

fn render_circuits(out: &mut String, records: &[Arc<Record>], load: &Load) {
    const STATES: [CircuitState; 3] = [
        CircuitState::Closed,
        CircuitState::Open,
        CircuitState::HalfOpen,
    ];
    out.push_str("# HELP weir_circuit_state 1 for the state a circuit is in.\n# TYPE weir_circuit_state gauge\n");
    per_state(out, records, ("weir_circuit_state", "state"), |r| {
        let current = r.circuit.status().state;
        STATES.map(|state| (state, u64::from(state == current)))
    });
    out.push_str("# HELP weir_circuit_transitions_total Circuit transitions by the state entered.\n# TYPE weir_circuit_transitions_total counter\n");
    per_state(
        out,
        records,
        ("weir_circuit_transitions_total", "to"),
        |r| STATES.map(|state| (state, r.circuit.entered(state))),
    );
    let _ = writeln!(
        out,
        "# HELP weir_requests_in_flight Requests being served.\n# TYPE weir_requests_in_flight gauge\nweir_requests_in_flight {}",
        load.in_flight()
    );
    let _ = writeln!(
        out,
        "# HELP weir_upstream_latency_average_seconds Moving average of the time to upstream response headers.\n# TYPE weir_upstream_latency_average_seconds gauge\nweir_upstream_latency_average_seconds {}",
        load.latency().as_secs_f64()
    );
}

/// One line per circuit and state, `<series>{scope,name,<label>=<state>} <value>`,
/// from each record's (state, value) pairs.
fn per_state(
    out: &mut String,
    records: &[Arc<Record>],
    (series, label): (&str, &str),
    values: impl Fn(&Record) -> [(CircuitState, u64); 3],
) {
    for r in records {
        for (state, value) in values(r) {
            let _ = writeln!(
                out,
                "{series}{{scope=\"{}\",name=\"{}\",{label}=\"{}\"}} {value}",
                r.kind.label(),
                esc(&r.name),
                state.label(),
            );
        }
    }
}

/// The answer to an orchestrator's probe, if `request` is one: `GET /live` (the process
/// answers) and `GET /ready` (it serves: the listeners close, and the probes with them, as
/// soon as a drain starts).
fn probe(request: &Request<Incoming>) -> Option<Response<ProxyBody>> {
    let word = match (request.method(), request.uri().path()) {
        (&Method::GET, "/live") => "live\n",
        (&Method::GET, "/ready") => "ready\n",
        _ => return None,
    };
    let mut response = Response::new(full_body(Bytes::from_static(word.as_bytes())));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    Some(response)
}

fn json_response(status: StatusCode, value: &serde_json::Value) -> Response<ProxyBody> {
    let mut response = Response::new(full_body(Bytes::from(value.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
