//! A buffered route's answer, after its request filters: a write (a buffered method) is
//! stored and answered `202 Accepted` with a ticket and a `Location` to read it at (RFC
//! 9110 §15.3.3: a 202's representation should point to a status monitor); `GET` or `HEAD`
//! of `<status_path>/<ticket>` answers the ticket's status; anything else goes to the
//! upstream at once.

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Response, StatusCode};

use super::{forward, upstream_request};
use crate::body::{ProxyBody, full_body};
use crate::buffer::Refusal;
use crate::buffer::entry::{Entry, is_ticket, new_ticket};
use crate::error::{ErrorKind, GatewayError};
use crate::exchange::Exchange;
use crate::filters;
use crate::gateway::Gateway;
use crate::snapshot::{Route, Snapshot};
use crate::upstream::health::InFlight;

/// Serves a request of a buffered route.
pub(super) async fn serve(
    gateway: &Gateway,
    snapshot: &Snapshot,
    route: &Route,
    ex: &mut Exchange,
) -> Result<(Response<ProxyBody>, Option<InFlight>), GatewayError> {
    let Some(buffer) = route.buffer.as_deref() else {
        return forward(gateway, snapshot, route, ex).await;
    };
    let method = ex.parts.method.clone();
    let reading = method == Method::GET || method == Method::HEAD;
    if let Some(ticket) = buffer.ticket_of(ex.parts.uri.path()).filter(|_| reading) {
        let status = status(gateway, &route.name, ticket, &ex.request_id);
        let status = tokio::time::timeout(route.timeout, status).await;
        return Ok((status.map_err(|_| unanswered(route))??, None));
    }
    if !buffer.methods.contains(&method) {
        return forward(gateway, snapshot, route, ex).await;
    }

    // The body, whole and within the cap (413 past it).
    let max = buffer.config.max_body_bytes;
    let declared = http_body::Body::size_hint(&ex.body).exact();
    if declared.is_some_and(|n| n > max as u64) {
        return Err(too_large(max));
    }
    let body = filters::buffer_request(ex, max)
        .await
        .map_err(|e| match e.kind {
            ErrorKind::BodyTooLarge => too_large(max),
            _ => e,
        })?;
    // The request as the upstream would get it now (forwarding fields, request id, Host).
    let request = upstream_request(
        ex,
        buffer.upstream.protocol(),
        route.host_rewrite.as_deref(),
    );
    let uri = request.uri();
    let entry = Entry {
        method: request.method().clone(),
        uri: uri.path_and_query().map_or("/", |p| p.as_str()).to_string(),
        headers: request.headers().clone(),
        body,
        request_id: ex.request_id.clone(),
        accepted_ms: crate::time::now_ms(),
    };
    let ticket = new_ticket()
        .ok_or_else(|| GatewayError::new(ErrorKind::Unavailable, "no randomness for a ticket"))?;
    // The store answers within the route's timeout, or the write is refused (503).
    let accepted = gateway.buffer.accept(
        &route.name,
        &ticket,
        entry.encode(),
        buffer.config.max_pending,
    );
    let accepted = tokio::time::timeout(route.timeout, accepted).await;
    match accepted.map_err(|_| unanswered(route))? {
        Ok(()) => {}
        Err(Refusal::Full) => {
            let detail = format!(
                "route {:?}: its buffer holds {} requests, its most",
                route.name, buffer.config.max_pending
            );
            return Err(GatewayError::new(ErrorKind::Overloaded, detail).retry_after(1));
        }
        Err(Refusal::Store(e)) => {
            return Err(GatewayError::new(ErrorKind::Unavailable, e.to_string()));
        }
    }
    let location = format!("{}/{ticket}", buffer.status_path);
    let body = serde_json::json!({
        "ticket": ticket,
        "status": "pending",
        "status_url": location,
    });
    let mut response = json(StatusCode::ACCEPTED, &body);
    if let Ok(location) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok((response, None))
}

/// A ticket's status: 200 with its JSON, or 404.
async fn status(
    gateway: &Gateway,
    route: &str,
    ticket: &str,
    request_id: &str,
) -> Result<Response<ProxyBody>, GatewayError> {
    let unknown = || GatewayError::new(ErrorKind::UnknownTicket, "no such ticket");
    if !is_ticket(ticket) {
        return Err(unknown());
    }
    match gateway.buffer.status(route, ticket).await {
        Ok(Some(status)) => Ok(json(StatusCode::OK, &status)),
        Ok(None) => Err(unknown()),
        Err(e) => {
            tracing::warn!(request_id, route, error = %e, "buffer: reading a ticket failed");
            Err(GatewayError::new(ErrorKind::Unavailable, e.to_string()))
        }
    }
}

/// The store did not answer within the route's timeout.
fn unanswered(route: &Route) -> GatewayError {
    let detail = format!(
        "route {:?}: the buffer store did not answer within {} ms",
        route.name,
        route.timeout.as_millis()
    );
    GatewayError::new(ErrorKind::Unavailable, detail)
}

fn too_large(max: usize) -> GatewayError {
    GatewayError::new(
        ErrorKind::BodyTooLarge,
        format!("body larger than the {max} bytes the route's buffer stores"),
    )
}

fn json(status: StatusCode, body: &serde_json::Value) -> Response<ProxyBody> {
    let mut response = Response::new(full_body(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
