//! The life of one request, top to bottom: route → request filters → upstream → response
//! filters → log. Errors become responses in one place (`GatewayError::into_response`).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response, Version};
use http_body_util::Either;
use hyper::body::Incoming;

use crate::body::{ProxyBody, full_body};
use crate::config::push::PushEndpoint;
use crate::config::{HashOn, UpstreamProtocol, millis};
use crate::error::{ErrorKind, ErrorSource, GatewayError};
use crate::exchange::Exchange;
use crate::filters::{self, RequestOutcome};
use crate::gateway::Gateway;
use crate::headers::{Peer, REQUEST_ID, add_forwarded, remove_hop_by_hop};
use crate::hygiene;
use crate::push::api::PushRequest;
use crate::resilience::{Bulkhead, Refused};
use crate::snapshot::{Route, Snapshot};
use crate::upstream::health::InFlight;
use crate::upstream::{Upstream, UpstreamResponse};

impl Gateway {
    /// Serves one request from `client`. Never fails: every error is a response.
    pub async fn handle(
        self: Arc<Self>,
        mut request: Request<Incoming>,
        client: Peer,
    ) -> Response<ProxyBody> {
        let started = Instant::now();
        let _in_flight = self.resilience.load.enter();
        // One snapshot for the whole request, however many reloads happen meanwhile.
        let snapshot = self.snapshot();
        let server = &snapshot.config.server;
        let request_id = self
            .request_ids
            .assign(request.headers(), server.trust_request_id);

        // Hygiene: one normal path and one authority, or a 400 before anything routes.
        let authority = match hygiene::canonicalize(&mut request, &server.paths) {
            Ok(authority) => authority,
            Err(error) => {
                tracing::debug!(request_id, error = %error, "request refused before routing");
                return self.unrouted(error, &request_id, started);
            }
        };

        // Route.
        let Some(route) = snapshot
            .router
            .find(&request, authority.as_deref())
            .map(|i| &snapshot.routes[i])
        else {
            let error = GatewayError::new(
                ErrorKind::NoRoute,
                format!("no route for {}", request.uri().path()),
            );
            return self.unrouted(error, &request_id, started);
        };

        // The route's bulkhead: a place, or a wait for one (boxed: the rare path), or 503.
        let _place = match route.bulkhead.as_deref() {
            None => None,
            Some(bulkhead) => match bulkhead.enter().await {
                Ok(place) => Some(place),
                Err(refused) => return overloaded(route, bulkhead, refused, &request_id, started),
            },
        };

        let method = request.method().clone();
        // A clone shares the request's bytes: no copy on the hot path.
        let uri = request.uri().clone();
        let exchange = Exchange::new(
            request,
            client,
            request_id.clone(),
            authority,
            &self.buffers,
            &server.limits,
        );
        let response = match proxy(self.as_ref(), &snapshot, route, exchange).await {
            Ok(response) => response,
            Err(error) => {
                let source = error.kind.source();
                // A client's mistake is routine; the gateway's, a plugin's or an upstream's
                // is worth an operator's attention, once per interval with a count.
                let interval = route.log_repeat_interval_ms;
                if source == ErrorSource::Client {
                    tracing::debug!(request_id, route = %route.name, ?source, error = %error, "request refused");
                } else if let Some(unlogged) = route.metrics.request_failed.occur(interval) {
                    tracing::warn!(request_id, route = %route.name, ?source, error = %error, unlogged, "request failed");
                }
                error.into_response(&request_id)
            }
        };
        let status = response.status().as_u16();
        let elapsed = started.elapsed();
        route.metrics.record(status, elapsed);
        // The path only: a query may carry credentials (`?apikey=`).
        tracing::debug!(target: "weir::access", request_id, route = %route.name, %method, path = uri.path(), status, micros = elapsed.as_micros() as u64);
        response
    }

    /// The answer to a request that never reached a route.
    fn unrouted(
        &self,
        error: GatewayError,
        request_id: &str,
        started: Instant,
    ) -> Response<ProxyBody> {
        let response = error.into_response(request_id);
        self.metrics
            .route("")
            .record(response.status().as_u16(), started.elapsed());
        response
    }
}

/// The answer to a request its route's bulkhead refused: 503 with `Retry-After`.
fn overloaded(
    route: &Route,
    bulkhead: &Bulkhead,
    refused: Refused,
    request_id: &str,
    started: Instant,
) -> Response<ProxyBody> {
    let detail = match refused {
        Refused::Full => "its waiting room is full",
        Refused::TimedOut => "no place came free in time",
    };
    let error = GatewayError::new(
        ErrorKind::Overloaded,
        format!("bulkhead {:?}: {detail}", bulkhead.name),
    )
    .retry_after(bulkhead.retry_after_secs());
    tracing::debug!(request_id, route = %route.name, error = %error, "request refused");
    let response = error.into_response(request_id);
    route
        .metrics
        .record(response.status().as_u16(), started.elapsed());
    route.metrics.overloaded.fetch_add(1, Ordering::Relaxed);
    response
}

async fn proxy(
    gateway: &Gateway,
    snapshot: &Snapshot,
    route: &Route,
    mut ex: Exchange,
) -> Result<Response<ProxyBody>, GatewayError> {
    // Request filters, in chain order; one may answer at once. They see the client's own
    // `X-Forwarded-For` (what trusted-proxy logic needs); the gateway's come after them.
    let answered = match filters::on_request(route, &mut ex).await? {
        RequestOutcome::Respond { response, index } => Some((*response, index)),
        RequestOutcome::Continue => None,
    };

    // The answer: a filter's, a push endpoint's, the HttpDNS endpoint's, or the upstream's
    // (the gateway's error response when the upstream failed, so that a response filter
    // can degrade it).
    let (response, upto, in_flight) = match (answered, route.push) {
        (Some((response, index)), _) => (response, index, None),
        (None, None) if route.httpdns => {
            let peer = ex.client.addr.ip();
            let answer = snapshot.httpdns.answer(&ex.parts, peer, &gateway.httpdns)?;
            (answer, route.filters.len(), None)
        }
        // Boxed: push is the rare route, and its state must not weigh on every request.
        (None, Some(endpoint)) => {
            let push = serve_push(gateway, snapshot, route, endpoint, &mut ex);
            (Box::pin(push).await, route.filters.len(), None)
        }
        (None, None) => {
            let (response, in_flight) = forward(gateway, snapshot, route, &mut ex).await?;
            (response, route.filters.len(), in_flight)
        }
    };

    // Response filters, in reverse chain order.
    let response = filters::on_response(route, upto, &mut ex, response).await?;
    drop(in_flight);
    Ok(response)
}

/// A push route's endpoint answers instead of an upstream.
async fn serve_push(
    gateway: &Gateway,
    snapshot: &Snapshot,
    route: &Route,
    endpoint: PushEndpoint,
    ex: &mut Exchange,
) -> Response<ProxyBody> {
    let router: &dyn crate::push::decision::PushRouter = match &route.push_router {
        Some(router) => router.as_ref(),
        None => &crate::push::decision::DefaultPolicy,
    };
    let request = PushRequest {
        body: std::mem::replace(&mut ex.body, full_body(Bytes::new())),
        websocket: ex.upgrade.take().and_then(|u| u.websocket()),
        consumer: (ex.variables.iter().rev())
            .find(|(key, _)| key == "consumer")
            .map(|(_, value)| value.clone()),
        parts: &ex.parts,
        request_id: &ex.request_id,
        place: ex.client.place.clone(),
    };
    let config = &snapshot.config.push;
    gateway.push.serve(endpoint, request, config, router).await
}

/// Sends the request to its upstream: the route's, or one a filter chose; a target by the
/// upstream's policy. An upstream's failure is answered with the gateway's error response;
/// the target's in-flight count is kept until the response filters are done.
async fn forward(
    gateway: &Gateway,
    snapshot: &Snapshot,
    route: &Route,
    ex: &mut Exchange,
) -> Result<(Response<ProxyBody>, Option<InFlight>), GatewayError> {
    let upstream = match (&ex.upstream, &route.upstream) {
        (None, Some(upstream)) => upstream,
        (None, None) => {
            return Err(GatewayError::new(
                ErrorKind::UnknownUpstream,
                "the route has no upstream".to_string(),
            ));
        }
        (Some(name), _) => snapshot.upstreams.get(name).ok_or_else(|| {
            GatewayError::new(
                ErrorKind::UnknownUpstream,
                format!("a filter chose unknown upstream {name:?}"),
            )
        })?,
    };
    let started = Instant::now();
    let result = call_upstream(gateway, route, upstream, ex).await;
    count_call(route, upstream, &result, started);
    let mut sent = match result {
        Ok(sent) => sent,
        Err(error) if error.kind.source() == ErrorSource::Upstream => {
            let interval = route.log_repeat_interval_ms;
            if let Some(unlogged) = route.metrics.upstream_failed.occur(interval) {
                tracing::warn!(request_id = ex.request_id, route = %route.name, error = %error, unlogged, "upstream failed");
            }
            return Ok((error.into_response(&ex.request_id), None));
        }
        Err(error) => return Err(error),
    };
    remove_hop_by_hop(sent.response.headers_mut());
    let upgrade = ex
        .upgrade
        .take()
        .filter(|_| upstream.protocol() == UpstreamProtocol::Http1);
    let limits = &snapshot.config.server.limits;
    match upgrade {
        Some(upgrade) => upgrade.splice(
            &mut sent.response,
            millis(limits.tunnel_idle_timeout_ms),
            (gateway.tunnels.clone(), ex.client.place.clone()),
        ),
        // A switch nobody asked for (or that the config does not allow) is not passed on.
        None if sent.response.status() == http::StatusCode::SWITCHING_PROTOCOLS => {
            return Err(GatewayError::new(
                ErrorKind::UpstreamFailed,
                format!("upstream {:?} switched protocols unasked", upstream.name),
            ));
        }
        None => {}
    }
    let (parts, body) = sent.response.into_parts();
    let idle = millis(limits.upstream_body_idle_timeout_ms);
    let response = Response::from_parts(parts, Either::Left(body.streamed(idle)));
    Ok((response, Some(sent.in_flight)))
}

/// Counts a call in the route's calls to `upstream` (the split a gray release is judged
/// by): failed when the answer is a 5xx or the call failed, unless the client was at fault.
fn count_call(
    route: &Route,
    upstream: &Upstream,
    result: &Result<UpstreamResponse, GatewayError>,
    started: Instant,
) {
    let Some(calls) = route.upstream_calls.get(&upstream.name) else {
        return;
    };
    let failed = match result {
        Ok(sent) => sent.response.status().is_server_error(),
        Err(error) if error.kind.source() == ErrorSource::Client => return,
        Err(_) => true,
    };
    calls.record(failed, started.elapsed());
}

/// Picks a target and sends the filtered request to it; the outcome goes into the route's
/// record (the upstream keeps its own) and the gateway's load.
async fn call_upstream(
    gateway: &Gateway,
    route: &Route,
    upstream: &Upstream,
    ex: &mut Exchange,
) -> Result<UpstreamResponse, GatewayError> {
    // The upstream's cap on requests in flight, held until the response's head.
    let _place = match upstream.bulkhead.as_deref() {
        None => None,
        Some(bulkhead) => Some(bulkhead.enter().await.map_err(|_| {
            let detail = format!(
                "upstream {:?}: its requests in flight are at the cap",
                upstream.name
            );
            GatewayError::new(ErrorKind::Overloaded, detail)
                .retry_after(bulkhead.retry_after_secs())
        })?),
    };
    let target = upstream.pick(|| hash_key(&route.hash_on, ex))?;
    let mut request = upstream_request(ex, upstream.protocol(), route.host_rewrite.as_deref());
    if let Some(upgrade) = ex
        .upgrade
        .as_ref()
        .filter(|_| upstream.protocol() == UpstreamProtocol::Http1)
    {
        upgrade.restore(request.headers_mut());
    }
    let started = Instant::now();
    let result = upstream.send(&target, request, route.timeout, ex.upload.as_deref());
    let result = result.await;
    // A client's fault (a broken-off or stalled upload) is not the upstream's.
    let latency = match &result {
        Ok(sent) => Some((sent.latency, sent.response.status().is_server_error())),
        Err(error) if error.kind.source() == ErrorSource::Client => None,
        Err(_) => {
            let latency = ex
                .upload
                .as_ref()
                .map_or_else(|| started.elapsed(), |upload| upload.since_end(started));
            Some((latency, true))
        }
    };
    if let Some((latency, failed)) = latency {
        route.record.outcomes.record(latency, failed);
        gateway.resilience.load.observe(latency);
    }
    result
}

/// Moves the (filtered) request into the form the upstream's protocol wants, with the
/// forwarding headers and the request id.
fn upstream_request(
    ex: &mut Exchange,
    protocol: UpstreamProtocol,
    host_rewrite: Option<&str>,
) -> Request<ProxyBody> {
    // The response filters still need the method and URI; everything else moves out.
    let mut kept = Request::new(()).into_parts().0;
    kept.method = ex.parts.method.clone();
    kept.uri = ex.parts.uri.clone();
    let mut parts = std::mem::replace(&mut ex.parts, kept);
    let body = std::mem::replace(&mut ex.body, full_body(Bytes::new()));
    add_forwarded(&mut parts.headers, &ex.client, ex.authority.as_deref());
    if let Ok(id) = HeaderValue::from_str(&ex.request_id) {
        parts.headers.insert(REQUEST_ID.clone(), id);
    }
    // The upstream's `Host` is the authority that was routed (or the route's rewrite),
    // never a second spelling the client sent.
    let host = host_rewrite
        .or(ex.authority.as_deref())
        .and_then(|a| HeaderValue::from_str(a).ok());
    match host {
        Some(host) => parts.headers.insert(header::HOST, host),
        None => parts.headers.remove(header::HOST),
    };
    parts.version = match protocol {
        UpstreamProtocol::Http1 => Version::HTTP_11,
        UpstreamProtocol::H2c | UpstreamProtocol::H2 => Version::HTTP_2,
    };
    Request::from_parts(parts, body)
}

/// The consistent-hash key of a request.
fn hash_key(on: &HashOn, ex: &Exchange) -> Vec<u8> {
    let client_ip = || ex.client.ip.as_bytes().to_vec();
    match on {
        HashOn::ClientIp => client_ip(),
        HashOn::Header(name) => ex
            .parts
            .headers
            .get(name.as_str())
            .map_or_else(client_ip, |v| v.as_bytes().to_vec()),
        HashOn::Cookie(name) => {
            cookie(&ex.parts.headers, name).map_or_else(client_ip, |v| v.as_bytes().to_vec())
        }
    }
}

fn cookie<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}
