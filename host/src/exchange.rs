//! A request on its way through a route: taken in from the client (upgrade set aside,
//! hop-by-hop headers removed, body under its timeouts), lent to each filter for a call,
//! and finally moved into the upstream request.

use std::sync::Arc;

use bytes::Bytes;
use http::Request;
use http::header::{HeaderName, HeaderValue};
use http_body::Body as _;
use http_body_util::Either;
use hyper::body::Incoming;

use crate::access_log::AccessNotes;
use crate::body::{BufferBudget, ProxyBody, Reservation, Streamed, Upload};
use crate::config::{LimitsConfig, millis};
use crate::headers::{
    Peer, TraceContext, continue_trace, remove_hop_by_hop, set_client_certificate,
};
use crate::plugin::{RequestView, Variables};
use crate::telemetry::SpanNotes;
use crate::upgrade::Upgrade;

/// A request on its way through the chain.
pub struct Exchange {
    /// Method, URI, headers.
    pub parts: http::request::Parts,
    /// The body: still streaming from the client, or buffered.
    pub body: ProxyBody,
    /// Variables set by filters so far.
    pub variables: Variables,
    /// An upstream chosen by a filter.
    pub upstream: Option<String>,
    /// Headers the request filters set for the response (validated).
    pub response_headers: Vec<(HeaderName, HeaderValue)>,
    /// The client.
    pub client: Peer,
    /// The request id.
    pub request_id: String,
    /// The authority the client addressed.
    pub authority: Option<String>,
    /// An upgrade (WebSocket) the client asked for, set aside before the header hygiene.
    pub upgrade: Option<Upgrade>,
    /// How the client's upload goes (it is timed apart from the upstream); none when the
    /// request has no body.
    pub upload: Option<Arc<Upload>>,
    /// This request's share of the gateway's budget of buffered body bytes.
    pub buffered: Reservation,
    /// The budget's size (`server.limits.max_buffered_bytes`).
    pub max_buffered: usize,
    /// What the access log needs from the way, when this request is logged.
    pub log: Option<Box<AccessNotes>>,
    /// The request's place in its W3C trace (continued, or started here).
    pub trace: TraceContext,
    /// What its spans need from the way, when its trace is sampled and exported.
    pub spans: Option<Box<SpanNotes>>,
}

impl Exchange {
    /// Takes a request in: the upgrade it asks for set aside (when the config allows it),
    /// hop-by-hop headers (which reach neither a filter nor the upstream) removed, the body
    /// put under the body timeouts; a new trace is started sampled when `sample_new`.
    pub fn new(
        mut request: Request<Incoming>,
        client: Peer,
        request_id: String,
        authority: Option<String>,
        buffers: &Arc<BufferBudget>,
        limits: &LimitsConfig,
        sample_new: bool,
    ) -> Self {
        let upgrade = Upgrade::take(&mut request, &limits.upgrades);
        let (mut parts, body) = request.into_parts();
        remove_hop_by_hop(&mut parts.headers);
        set_client_certificate(&mut parts.headers, &client);
        let trace = continue_trace(&mut parts.headers, sample_new);
        let idle = millis(limits.body_idle_timeout_ms);
        // Most requests have no body: they need no upload record and no timers.
        let (body, upload) = if body.is_end_stream() {
            (Streamed::new(body, idle), None)
        } else {
            let upload = Arc::new(Upload::new(millis(limits.body_total_timeout_ms)));
            (Streamed::request(body, idle, upload.clone()), Some(upload))
        };
        Exchange {
            parts,
            body: Either::Left(body),
            variables: Variables::new(),
            upstream: None,
            response_headers: Vec::new(),
            client,
            request_id,
            authority,
            upgrade,
            upload,
            buffered: Reservation::new(buffers.clone()),
            max_buffered: limits.max_buffered_bytes,
            log: None,
            trace,
            spans: None,
        }
    }

    /// Moves the request's parts out into a view for one filter call (no copy).
    pub fn lend(&mut self, body: Option<Bytes>) -> RequestView {
        RequestView {
            parts: std::mem::replace(&mut self.parts, Request::new(()).into_parts().0),
            body,
            authority: self.authority.take(),
            client: self.client.addr,
            scheme: self.client.scheme(),
            request_id: std::mem::take(&mut self.request_id),
            variables: std::mem::take(&mut self.variables),
            upstream: self.upstream.take(),
        }
    }

    /// Moves the parts back after the call.
    pub fn give_back(&mut self, view: RequestView) {
        self.parts = view.parts;
        self.authority = view.authority;
        self.request_id = view.request_id;
        self.variables = view.variables;
        self.upstream = view.upstream;
    }
}
