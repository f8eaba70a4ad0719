//! The life of one request, top to bottom: route → request filters → upstream → response
//! filters → log. Errors become responses in one place (`GatewayError::into_response`).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response, Version};
use http_body_util::Either;
use hyper::body::Incoming;

use crate::access_log::{self, AccessNotes, AccessRecord};
use crate::body::{Buffered, ProxyBody, Upload, full_body};
use crate::config::push::PushEndpoint;
use crate::config::{HashOn, LbPolicy, UpstreamProtocol, millis};
use crate::error::{ErrorKind, ErrorSource, GatewayError};
use crate::exchange::Exchange;
use crate::filters::{self, RequestOutcome};
use crate::gateway::Gateway;
use crate::headers::{Peer, REQUEST_ID, add_forwarded, remove_hop_by_hop, set_trace_parent};
use crate::hygiene;
use crate::push::api::PushRequest;
use crate::resilience::{Bulkhead, Refused, failure_of};
use crate::snapshot::{Route, Snapshot};
use crate::telemetry::{PendingSpans, RequestSummary, SpanNotes};
use crate::upstream::health::InFlight;
use crate::upstream::{Target, Upstream, UpstreamResponse};

mod buffered;

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
        let logged = route.access_log && sampled(snapshot.config.access_log.sample);
        let mut exchange = Exchange::new(
            request,
            client,
            request_id.clone(),
            authority,
            &self.buffers,
            &server.limits,
            // A new trace is flagged sampled only where its spans are recorded: a backend
            // that honours the flag would otherwise keep traces with no root.
            self.tracer.is_some() && sampled(snapshot.config.tracing.sample),
        );
        if logged {
            exchange.log = Some(Box::default());
        }
        if self.tracer.is_some() && exchange.trace.sampled {
            exchange.spans = Some(Box::new(SpanNotes::new(exchange.trace, started)));
        }
        let mut response = match proxy(self.as_ref(), &snapshot, route, &mut exchange).await {
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
        if let Some(notes) = exchange.log.take() {
            let redact = &snapshot.config.access_log.redact_query;
            let mut record = access_record(&exchange, *notes, route, (&method, &uri), redact);
            record.status = status;
            record.at_ms = crate::time::now_ms().saturating_sub(elapsed.as_millis() as u64);
            let pending = access_log::Pending::new(record, started, self.access_log.clone());
            response.extensions_mut().insert(pending);
        }
        if let (Some(notes), Some(tracer)) = (exchange.spans.take(), &self.tracer) {
            let request = RequestSummary {
                method,
                route: route.name.clone(),
                path: uri.path().to_string(),
                scheme: exchange.client.scheme(),
                status,
                client: exchange.client.addr.ip(),
                request_id,
            };
            let pending = PendingSpans::new(notes, request, tracer.clone());
            response.extensions_mut().insert(pending);
        }
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
    ex: &mut Exchange,
) -> Result<Response<ProxyBody>, GatewayError> {
    // Request filters, in chain order; one may answer at once. They see the client's own
    // `X-Forwarded-For` (what trusted-proxy logic needs); the gateway's come after them.
    let answered = match filters::on_request(route, ex).await? {
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
            let push = serve_push(gateway, snapshot, route, endpoint, ex);
            (Box::pin(push).await, route.filters.len(), None)
        }
        // Boxed: a buffered route's write is stored instead of sent.
        (None, None) if route.buffer.is_some() => {
            let served = buffered::serve(gateway, snapshot, route, ex);
            let (response, in_flight) = Box::pin(served).await?;
            (response, route.filters.len(), in_flight)
        }
        (None, None) => {
            let (response, in_flight) = forward(gateway, snapshot, route, ex).await?;
            (response, route.filters.len(), in_flight)
        }
    };

    // Response filters, in reverse chain order.
    let mut response = filters::on_response(route, upto, ex, response).await?;
    // A deprecated route says so on every answer (RFC 9745, RFC 8594).
    for (name, value) in &route.deprecation {
        response.headers_mut().append(name.clone(), value.clone());
    }
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
    if let (Some(notes), Ok(sent)) = (ex.log.as_mut(), &result) {
        notes.upstream_latency = Some(sent.latency);
    }
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

/// Picks a target and sends the filtered request to it, and again to another target while
/// the route's retry policy and the upstream's retry budget allow (the whole within the
/// route's timeout); each try's outcome goes into the route's record (the upstream keeps its
/// own) and the gateway's load.
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
    // The key consistent hashing picks by, read before the request is moved out.
    let key = (upstream.policy == LbPolicy::ConsistentHash).then(|| hash_key(&route.hash_on, ex));
    let key = || key.clone().unwrap_or_default();
    // A body a retry may have to send again is held, when its declared length allows.
    if let Some(policy) = route.retry.as_ref().filter(|_| ex.upgrade.is_none()) {
        let declared = http_body::Body::size_hint(&ex.body).exact();
        if declared.is_some_and(|n| n > 0 && n <= policy.buffer_body as u64) {
            Box::pin(filters::buffer_request(ex, policy.buffer_body)).await?;
        }
    }
    let mut request = upstream_request(ex, upstream.protocol(), route.host_rewrite.as_deref());
    if let Some(upgrade) = ex
        .upgrade
        .as_ref()
        .filter(|_| upstream.protocol() == UpstreamProtocol::Http1)
    {
        upgrade.restore(request.headers_mut());
    }
    let retry = (route.retry.as_ref())
        .filter(|_| ex.upgrade.is_none())
        .and_then(|policy| Some((policy, Replay::of(&request)?)));
    let Some((policy, replay)) = retry else {
        let target = upstream.pick(key)?;
        note_target(ex, &target);
        let started = Instant::now();
        let result = try_once(
            gateway,
            route,
            (upstream, &target),
            request,
            route.timeout,
            ex.upload.as_deref(),
        )
        .await;
        note_try(ex, (upstream, &target), started, &result);
        return result;
    };
    let deadline = Instant::now() + route.timeout;
    let mut held = upstream.retry_budget.request();
    let mut tried = Vec::new();
    let mut retries = 0;
    loop {
        let target = upstream.pick_other(key, &tried)?;
        note_target(ex, &target);
        let left = deadline.saturating_duration_since(Instant::now());
        let timeout = policy.per_try_timeout.map_or(left, |t| t.min(left));
        let upload = ex.upload.as_deref();
        let started = Instant::now();
        let result = try_once(
            gateway,
            route,
            (upstream, &target),
            request,
            timeout,
            upload,
        )
        .await;
        note_try(ex, (upstream, &target), started, &result);
        let failure = failure_of(&result, |sent| sent.response.status());
        let again = retries < policy.retries
            && failure.is_some_and(|f| policy.retries(&replay.method, f))
            && Instant::now() < deadline;
        if !again || !upstream.retry_budget.retry(&mut held, policy) {
            return result;
        }
        retries += 1;
        route.metrics.retries.fetch_add(1, Ordering::Relaxed);
        tried.push(target);
        // The failed answer (its connection, its body) goes before the pause.
        drop(result);
        let pause = policy.backoff(retries);
        tokio::time::sleep(pause.min(deadline.saturating_duration_since(Instant::now()))).await;
        request = replay.request();
        if let Some(spans) = ex.spans.as_mut() {
            set_trace_parent(request.headers_mut(), spans.retry_span());
        }
    }
}

/// Notes a try that began at `started` for the request's spans, when it is traced.
fn note_try(
    ex: &mut Exchange,
    (upstream, target): (&Upstream, &Target),
    started: Instant,
    result: &Result<UpstreamResponse, GatewayError>,
) {
    if let Some(spans) = ex.spans.as_mut() {
        let outcome = match result {
            Ok(sent) => Ok(sent.response.status().as_u16()),
            Err(error) => Err(error.to_string()),
        };
        spans.upstream_try(&upstream.name, target.addr, started, outcome);
    }
}

/// Notes the target a try goes to, for the access log.
fn note_target(ex: &mut Exchange, target: &Target) {
    if let Some(notes) = ex.log.as_mut() {
        notes.upstream = Some(target.addr);
    }
}

/// Whether a request is among the `sample` share of requests logged.
fn sampled(sample: f64) -> bool {
    sample >= 1.0 || fastrand::f64() < sample
}

/// The access log's record of a request, as far as the response head (the body's bytes
/// and the whole time are the server's to add).
fn access_record(
    ex: &Exchange,
    notes: AccessNotes,
    route: &Route,
    (method, uri): (&http::Method, &http::Uri),
    redact: &[String],
) -> Box<AccessRecord> {
    let path = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
    let variables = (ex.variables.iter())
        .filter(|(key, _)| !key.starts_with(crate::plugin::CONTEXT_PREFIX))
        .cloned()
        .collect();
    Box::new(AccessRecord {
        time: String::new(),
        at_ms: 0,
        request_id: ex.request_id.clone(),
        route: route.name.clone(),
        method: method.to_string(),
        path: access_log::redacted_path(path, redact),
        scheme: ex.client.scheme(),
        status: 0,
        bytes_in: ex.upload.as_ref().map_or(0, |u| u.received()),
        bytes_out: 0,
        client_ip: ex.client.addr.ip(),
        upstream: notes.upstream,
        upstream_ms: notes.upstream_latency.map(|d| d.as_secs_f64() * 1e3),
        total_ms: 0.0,
        filters: notes.filters,
        variables,
        trace_id: Some(ex.trace.trace_id.as_str().to_string()),
    })
}

/// One try: the request sent to `target` within `timeout`, its outcome recorded.
async fn try_once(
    gateway: &Gateway,
    route: &Route,
    (upstream, target): (&Upstream, &Target),
    request: Request<ProxyBody>,
    timeout: Duration,
    upload: Option<&Upload>,
) -> Result<UpstreamResponse, GatewayError> {
    let started = Instant::now();
    let result = upstream.send(target, request, timeout, upload);
    let result = result.await;
    // A client's fault (a broken-off or stalled upload) is not the upstream's.
    let latency = match &result {
        Ok(sent) => Some((sent.latency, sent.response.status().is_server_error())),
        Err(error) if error.kind.source() == ErrorSource::Client => None,
        Err(_) => {
            let latency = upload.map_or_else(|| started.elapsed(), |u| u.since_end(started));
            Some((latency, true))
        }
    };
    if let Some((latency, failed)) = latency {
        route.record.outcomes.record(latency, failed);
        gateway.resilience.load.observe(latency);
    }
    result
}

/// What it takes to send a request again: its head, and its body when that is held in
/// full (or empty). A streamed body is sent once.
struct Replay {
    method: http::Method,
    uri: http::Uri,
    version: http::Version,
    headers: http::HeaderMap,
    body: Buffered,
}

impl Replay {
    /// The replay of `request`, unless its body streams.
    fn of(request: &Request<ProxyBody>) -> Option<Self> {
        let body = match request.body() {
            Either::Right(held) => held.clone(),
            Either::Left(streamed) if http_body::Body::is_end_stream(streamed) => {
                Buffered::default()
            }
            Either::Left(_) => return None,
        };
        Some(Self {
            method: request.method().clone(),
            uri: request.uri().clone(),
            version: request.version(),
            headers: request.headers().clone(),
            body,
        })
    }

    /// The request again.
    fn request(&self) -> Request<ProxyBody> {
        let mut request = Request::new(Either::Right(self.body.clone()));
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.uri.clone();
        *request.version_mut() = self.version;
        *request.headers_mut() = self.headers.clone();
        request
    }
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
