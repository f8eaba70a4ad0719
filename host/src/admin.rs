//! The admin listener (loopback by default): `GET /plugins`, `/routes`, `/upstreams`,
//! `/metrics` (Prometheus text), `/status`; `POST /reload` reloads now.

use std::fmt::Write;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::gateway::Gateway;
use crate::proxy::{ProxyBody, full_body};
use crate::upstream::health::now_ms;

/// Serves one admin request.
pub async fn handle(gateway: Arc<Gateway>, request: Request<Incoming>) -> Response<ProxyBody> {
    if !authorized(&gateway, &request) {
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
            &json!({ "plugins": gateway.plugin_statuses() }),
        ),
        (&Method::GET, "/routes") => json_response(StatusCode::OK, &routes(&gateway)),
        (&Method::GET, "/upstreams") => json_response(StatusCode::OK, &upstreams(&gateway)),
        (&Method::GET, "/status") => {
            let status =
                json!({ "reload": gateway.last_reload(), "state": gateway.state.status() });
            json_response(StatusCode::OK, &status)
        }
        (&Method::GET, "/metrics") => metrics(&gateway),
        (&Method::POST, "/reload") => match gateway.reload().await {
            Ok(generation) => json_response(StatusCode::OK, &json!({ "generation": generation })),
            Err(reason) => json_response(
                StatusCode::UNPROCESSABLE_ENTITY,
                &json!({ "error": "reload_refused", "message": reason }),
            ),
        },
        _ => json_response(StatusCode::NOT_FOUND, &json!({ "error": "not_found" })),
    }
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
                    })
                })
                .collect();
            json!({
                "name": route.name,
                "match": {
                    "host": config.matches.host,
                    "path": config.matches.path,
                    "path_prefix": config.matches.path_prefix,
                    "methods": config.matches.methods,
                    "headers": config.matches.headers,
                },
                "upstream": route.upstream.name,
                "timeout_ms": route.timeout.as_millis() as u64,
                "filters": filters,
            })
        })
        .collect();
    json!({ "generation": snapshot.generation, "routes": routes })
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

fn metrics(gateway: &Gateway) -> Response<ProxyBody> {
    let snapshot = gateway.snapshot();
    let now = now_ms();
    let text = gateway.metrics.render(|out| {
        out.push_str("# HELP weir_upstream_target_healthy 1 when a target is available (healthy, not ejected).\n# TYPE weir_upstream_target_healthy gauge\n");
        for u in snapshot.upstreams.values() {
            for t in &u.targets {
                let up = u8::from(t.health.is_available(now));
                let _ = writeln!(out, "weir_upstream_target_healthy{{upstream=\"{}\",target=\"{}\"}} {up}", u.name, t.addr);
            }
        }
        out.push_str("# HELP weir_upstream_in_flight Requests in flight to a target.\n# TYPE weir_upstream_in_flight gauge\n");
        for u in snapshot.upstreams.values() {
            for t in &u.targets {
                let _ = writeln!(out, "weir_upstream_in_flight{{upstream=\"{}\",target=\"{}\"}} {}", u.name, t.addr, t.health.in_flight());
            }
        }
        let state = gateway.state.status();
        let _ = writeln!(out, "# HELP weir_state_backend_up 1 when the state backend answers.\n# TYPE weir_state_backend_up gauge\nweir_state_backend_up{{backend=\"{}\"}} {}", state.backend, u8::from(state.healthy));
        let _ = writeln!(out, "# HELP weir_state_backend_outages_total Times the state backend became unreachable.\n# TYPE weir_state_backend_outages_total counter\nweir_state_backend_outages_total{{backend=\"{}\"}} {}", state.backend, state.outages);
        let _ = writeln!(out, "# HELP weir_snapshot_generation The live snapshot.\n# TYPE weir_snapshot_generation gauge\nweir_snapshot_generation {}", snapshot.generation);
    });
    let mut response = Response::new(full_body(Bytes::from(text)));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    response
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
