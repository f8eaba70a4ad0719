//! Running a route's filter chain: the request side in chain order, the response side in
//! reverse. A filter is called only in the phases it asked for; the request (and response)
//! is lent to it as a handle for the call, so it pays only for the parts it reads, and
//! bodies are buffered only for filters that asked for them.

use std::time::Instant;

use bytes::Bytes;
use http::Response;
use http::header::HeaderMap;
use http_body::Body;
use http_body_util::{BodyExt, Either};

use crate::access_log::FilterOutcome;
use crate::body::{Buffered, Reservation, StreamError};
use crate::body::{ProxyBody, full_body};
use crate::config::FailurePolicy;
use crate::error::{ErrorKind, GatewayError};
use crate::exchange::Exchange;
use crate::metrics::{CallPhase, Decision};
use crate::plugin::{
    FailureKind, FilterFailure, FilterSlot, RequestAction, RequestChanges, ResponseAction,
    ResponseView, strip_length,
};
use crate::snapshot::Route;

/// What the request side of the chain decided.
pub enum RequestOutcome {
    /// Go on to the upstream.
    Continue,
    /// Filter number `index` answered; filters before it see the response.
    Respond {
        /// The answer (boxed: it is the rare case, and keeps the outcome small).
        response: Box<Response<ProxyBody>>,
        /// The index of the filter that answered.
        index: usize,
    },
}

/// Runs `on-request` of each filter of the route that asked for it, in order.
pub async fn on_request(route: &Route, ex: &mut Exchange) -> Result<RequestOutcome, GatewayError> {
    for (index, slot) in route.filters.iter().enumerate() {
        if !slot.phases.request {
            continue;
        }
        let body = if slot.phases.request_body {
            // Boxed: only body filters buffer, and the chain's state stays small without it.
            Some(Box::pin(buffer_request(ex, slot.settings.max_body)).await?)
        } else {
            None
        };
        let call = Call::start(CallPhase::Request);
        let (request, outcome) = slot.on_request(ex.lend(body)).await;
        ex.give_back(request);
        match outcome {
            Ok(RequestAction::Continue(changes)) => match apply_request(ex, changes) {
                Ok(()) => {
                    slot.record_success(call.elapsed(), Decision::Continue, call.phase);
                    note(ex, slot, call, CONTINUE);
                }
                Err(failure) => unusable(route, slot, failure, ex, call)?,
            },
            Ok(RequestAction::Respond(response)) => {
                slot.record_success(call.elapsed(), Decision::Respond, call.phase);
                note(ex, slot, call, RESPOND);
                let response = Box::new(response);
                return Ok(RequestOutcome::Respond { response, index });
            }
            Err(failure) => fail(route, slot, failure, ex, call)?,
        }
    }
    Ok(RequestOutcome::Continue)
}

/// Runs `on-response` of the first `upto` filters of the route that asked for it, in
/// reverse order.
pub async fn on_response(
    route: &Route,
    upto: usize,
    ex: &mut Exchange,
    mut response: Response<ProxyBody>,
) -> Result<Response<ProxyBody>, GatewayError> {
    for (name, value) in ex.response_headers.drain(..) {
        response.headers_mut().insert(name, value);
    }
    for slot in route.filters[..upto].iter().rev() {
        if !slot.phases.response {
            continue;
        }
        let (parts, body) = response.into_parts();
        // A body read for the filter lives in the view during the call, trailers and all;
        // one declared over its limit streams past a filter that allows it.
        let oversized = slot.settings.stream_oversized
            && declared_len(&parts.headers) > slot.settings.max_body as u64;
        let (streamed, buffered, trailers) = if slot.phases.response_body && !oversized {
            let (bytes, trailers) = Box::pin(collect(
                body,
                slot.settings.max_body,
                ErrorKind::UpstreamFailed,
                &mut ex.buffered,
                ex.max_buffered,
            ))
            .await?;
            (None, Some(bytes), trailers)
        } else {
            (Some(body), None, None)
        };
        let view = ResponseView {
            parts,
            body: buffered,
            trailers,
        };
        let call = Call::start(CallPhase::Response);
        let (request, view, outcome) = slot.on_response(ex.lend(None), view).await;
        ex.give_back(request);
        let body = streamed.unwrap_or_else(|| {
            Either::Right(Buffered::new(view.body.unwrap_or_default(), view.trailers))
        });
        response = Response::from_parts(view.parts, body);
        match outcome {
            Ok(ResponseAction::Continue(changes)) => {
                changes.apply(&mut response);
                slot.record_success(call.elapsed(), Decision::Continue, call.phase);
                note(ex, slot, call, CONTINUE);
            }
            Ok(ResponseAction::Replace(replacement)) => {
                slot.record_success(call.elapsed(), Decision::Respond, call.phase);
                note(ex, slot, call, RESPOND);
                response = replacement;
            }
            Err(failure) => fail(route, slot, failure, ex, call)?,
        }
    }
    Ok(response)
}

/// The `Content-Length` a response declares (0 when it declares none).
fn declared_len(headers: &HeaderMap) -> u64 {
    (headers.get(http::header::CONTENT_LENGTH))
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .unwrap_or(0)
}

/// Applies a filter's failure policy: fail-open logs and goes on, fail-closed ends the
/// request. A backed-off filter's answers are logged at debug level only (the failures that
/// backed it off were logged), and other failures once per interval with a count: an
/// attacker must not flood the log.
fn fail(
    route: &Route,
    slot: &FilterSlot,
    failure: FilterFailure,
    ex: &mut Exchange,
    call: Call,
) -> Result<(), GatewayError> {
    note(ex, slot, call, || {
        format!("failed:{}", failure.kind.label())
    });
    let (plugin, request_id) = (slot.plugin.info.name.as_str(), ex.request_id.as_str());
    let (kind, reason, policy) = (
        failure.kind.label(),
        &failure.message,
        slot.settings.failure,
    );
    if failure.kind == FailureKind::BackedOff {
        tracing::debug!(plugin, request_id, kind, reason = %reason, ?policy, "filter backed off");
    } else if let Some(unlogged) = slot.metrics.failed.occur(route.log_repeat_interval_ms) {
        tracing::warn!(plugin, request_id, kind, reason = %reason, ?policy, unlogged, "filter failed");
    }
    match policy {
        FailurePolicy::FailOpen => Ok(()),
        FailurePolicy::FailClosed => {
            let error = match failure.kind {
                FailureKind::Deadline => ErrorKind::PluginTimeout,
                _ => ErrorKind::PluginFailed,
            };
            Err(GatewayError::new(
                error,
                format!("filter {plugin} failed: {kind}"),
            ))
        }
    }
}

/// A filter returned something the gateway cannot use: counted like a failed call (metrics,
/// back-off), then its policy applies.
fn unusable(
    route: &Route,
    slot: &FilterSlot,
    failure: FilterFailure,
    ex: &mut Exchange,
    call: Call,
) -> Result<(), GatewayError> {
    slot.record_failure(&failure);
    fail(route, slot, failure, ex, call)
}

/// One filter call: when it began, and in which phase.
#[derive(Clone, Copy)]
struct Call {
    started: Instant,
    phase: CallPhase,
}

impl Call {
    /// A call in `phase`, beginning now.
    fn start(phase: CallPhase) -> Self {
        Self {
            started: Instant::now(),
            phase,
        }
    }

    /// Its time so far.
    fn elapsed(self) -> std::time::Duration {
        self.started.elapsed()
    }
}

/// Notes what `slot` decided in `call` for the access log and the request's spans, when the
/// request is logged or traced.
fn note(ex: &mut Exchange, slot: &FilterSlot, call: Call, decision: impl FnOnce() -> String) {
    if ex.log.is_none() && ex.spans.is_none() {
        return;
    }
    let (filter, decision) = (&slot.plugin.info.name, decision());
    if let Some(spans) = ex.spans.as_mut() {
        spans.filter_call(filter, call.phase.label(), call.started, &decision);
    }
    if let Some(notes) = ex.log.as_mut() {
        notes.filters.push(FilterOutcome {
            filter: filter.clone(),
            decision,
        });
    }
}

/// The decisions the access log writes.
const CONTINUE: fn() -> String = || "continue".to_string();
const RESPOND: fn() -> String = || "respond".to_string();

/// Buffers the request body (once) up to `max`; 413 beyond it.
pub(crate) async fn buffer_request(ex: &mut Exchange, max: usize) -> Result<Bytes, GatewayError> {
    let body = std::mem::replace(&mut ex.body, full_body(Bytes::new()));
    let (bytes, trailers) = collect(
        body,
        max,
        ErrorKind::BadRequest,
        &mut ex.buffered,
        ex.max_buffered,
    )
    .await?;
    ex.body = Either::Right(Buffered::new(bytes.clone(), trailers));
    Ok(bytes)
}

/// Reads a body and its trailers into memory, up to `max` bytes, each byte counted against
/// the gateway's buffer budget (`held`, up to `budget` in all): 503 when it is spent.
/// A body that stalls or breaks off is the peer's fault: `on_error` for a failure, 408 for a
/// client's upload that timed out.
async fn collect(
    body: ProxyBody,
    max: usize,
    on_error: ErrorKind,
    held: &mut Reservation,
    budget: usize,
) -> Result<(Bytes, Option<HeaderMap>), GatewayError> {
    // A declared length (or a body already held) larger than `max` is refused unread.
    if body.size_hint().exact().is_some_and(|n| n > max as u64) {
        return Err(too_large(max));
    }
    let streamed = match body {
        Either::Right(buffered) => match buffered.collect().await {
            Ok(collected) => {
                let trailers = collected.trailers().cloned();
                return Ok((collected.to_bytes(), trailers));
            }
            Err(never) => match never {},
        },
        Either::Left(streamed) => streamed,
    };
    let mut body = std::pin::pin!(streamed);
    let mut data = bytes::BytesMut::new();
    let mut trailers = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| stream_error(e, on_error))?;
        match frame.into_data() {
            Ok(chunk) => {
                if data.len() + chunk.len() > max {
                    return Err(too_large(max));
                }
                held.grow(chunk.len(), budget).map_err(|_| over_budget())?;
                data.extend_from_slice(&chunk);
            }
            Err(frame) => trailers = frame.into_trailers().ok(),
        }
    }
    Ok((data.freeze(), trailers))
}

/// The error for a body that stalled or broke off.
fn stream_error(error: StreamError, on_error: ErrorKind) -> GatewayError {
    let kind = match on_error {
        ErrorKind::BadRequest if error.is_timeout() => ErrorKind::RequestTimeout,
        ErrorKind::BadRequest => ErrorKind::ClientAborted,
        other => other,
    };
    GatewayError::new(kind, format!("reading body: {error}"))
}

fn over_budget() -> GatewayError {
    GatewayError::new(
        ErrorKind::Unavailable,
        "the gateway holds as many buffered bodies as it may; try again later",
    )
}

fn too_large(max: usize) -> GatewayError {
    GatewayError::new(
        ErrorKind::BodyTooLarge,
        format!("body larger than the {max} bytes a filter may buffer"),
    )
}

/// Applies what `on-request` asked for to the exchange. A path that cannot stand with the
/// request's URI fails the filter.
fn apply_request(ex: &mut Exchange, changes: RequestChanges) -> Result<(), FilterFailure> {
    changes.headers.apply(&mut ex.parts.headers);
    if let Some(path) = changes.path {
        let mut uri = std::mem::take(&mut ex.parts.uri).into_parts();
        uri.path_and_query = Some(path);
        ex.parts.uri = http::Uri::from_parts(uri).map_err(|e| FilterFailure {
            kind: FailureKind::Trap,
            message: format!("invalid rewritten path: {e}"),
        })?;
    }
    if let Some(body) = changes.body {
        strip_length(&mut ex.parts.headers);
        ex.body = full_body(body);
    }
    if let Some(upstream) = changes.upstream {
        ex.upstream = Some(upstream);
    }
    ex.variables.extend(changes.variables);
    ex.response_headers.extend(changes.response_headers);
    Ok(())
}
