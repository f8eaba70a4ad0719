//! Spans of sampled requests, exported over OTLP: a request's way is noted on the request
//! path as plain timings (no tracer, no context objects), and turned into OpenTelemetry
//! spans once its response's last byte is sent — one for the request (the server span),
//! one for each filter call and one for each upstream try (client spans) — then handed to
//! the exporter's queue (see [`Tracer`]).

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId as OtelTraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};

use crate::headers::TraceContext;

mod client;
mod export;

pub use export::Tracer;

/// What a sampled request does on its way, for its spans.
#[derive(Debug)]
pub struct SpanNotes {
    trace: TraceContext,
    /// The request's own span (the parent of the rest).
    span: u64,
    /// When the request came in, on both clocks.
    at: SystemTime,
    started: Instant,
    calls: Vec<CallNote>,
    tries: Vec<TryNote>,
    /// The span id of the next upstream try: the first is the one the `traceparent` sent
    /// upstream carries already.
    next_try: u64,
}

/// One filter call.
#[derive(Debug)]
struct CallNote {
    plugin: String,
    phase: &'static str,
    started: Instant,
    ended: Instant,
    decision: String,
}

/// One upstream try.
#[derive(Debug)]
struct TryNote {
    span: u64,
    upstream: String,
    target: SocketAddr,
    started: Instant,
    ended: Instant,
    /// The status of the answer, or why there was none.
    outcome: Result<u16, String>,
}

/// The request, as its span names it, known once its response is chosen.
pub struct RequestSummary {
    /// The method.
    pub method: http::Method,
    /// The route's name.
    pub route: String,
    /// The path (no query: it may carry credentials).
    pub path: String,
    /// `http` or `https`.
    pub scheme: &'static str,
    /// The response's status.
    pub status: u16,
    /// The client's address.
    pub client: IpAddr,
    /// The request id.
    pub request_id: String,
}

impl SpanNotes {
    /// Notes for a request of the sampled trace `trace`, which came in at `started`.
    pub fn new(trace: TraceContext, started: Instant) -> Self {
        let at =
            (SystemTime::now().checked_sub(started.elapsed())).unwrap_or(SystemTime::UNIX_EPOCH);
        Self {
            trace,
            span: fastrand::u64(1..),
            at,
            started,
            calls: Vec::new(),
            tries: Vec::new(),
            next_try: trace.span,
        }
    }

    /// Notes a filter call in `phase` that began at `started`, ended now, and decided
    /// `decision`.
    pub fn filter_call(
        &mut self,
        plugin: &str,
        phase: &'static str,
        started: Instant,
        decision: &str,
    ) {
        self.calls.push(CallNote {
            plugin: plugin.to_string(),
            phase,
            started,
            ended: Instant::now(),
            decision: decision.to_string(),
        });
    }

    /// The span id of a retry, to be sent upstream as its parent.
    pub fn retry_span(&mut self) -> u64 {
        self.next_try = fastrand::u64(1..);
        self.next_try
    }

    /// Notes an upstream try to `target` that began at `started` and ended now, with the
    /// answer's status or the failure.
    pub fn upstream_try(
        &mut self,
        upstream: &str,
        target: SocketAddr,
        started: Instant,
        outcome: Result<u16, String>,
    ) {
        self.tries.push(TryNote {
            span: self.next_try,
            upstream: upstream.to_string(),
            target,
            started,
            ended: Instant::now(),
            outcome,
        });
    }

    /// The spans of the request, which ended at `ended`.
    fn into_spans(
        self,
        request: &RequestSummary,
        ended: Instant,
        scope: &InstrumentationScope,
    ) -> Vec<SpanData> {
        let trace_id =
            OtelTraceId::from_hex(self.trace.trace_id.as_str()).unwrap_or(OtelTraceId::INVALID);
        let clock = |at: Instant| self.at + at.saturating_duration_since(self.started);
        let span = |id: u64, parent: u64, kind: SpanKind, name: String| SpanData {
            span_context: SpanContext::new(
                trace_id,
                SpanId::from_bytes(id.to_be_bytes()),
                TraceFlags::SAMPLED,
                false,
                TraceState::NONE,
            ),
            parent_span_id: SpanId::from_bytes(parent.to_be_bytes()),
            parent_span_is_remote: false,
            span_kind: kind,
            name: Cow::Owned(name),
            start_time: self.at,
            end_time: self.at,
            attributes: Vec::new(),
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: Status::Unset,
            instrumentation_scope: scope.clone(),
        };
        let mut spans = Vec::with_capacity(1 + self.calls.len() + self.tries.len());

        let name = format!("{} {}", request.method, request.route);
        let mut server = span(
            self.span,
            self.trace.parent.unwrap_or(0),
            SpanKind::Server,
            name,
        );
        server.parent_span_is_remote = self.trace.parent.is_some();
        server.end_time = clock(ended);
        server.attributes = vec![
            KeyValue::new("http.request.method", request.method.to_string()),
            KeyValue::new("url.path", request.path.clone()),
            KeyValue::new("url.scheme", request.scheme),
            KeyValue::new("http.response.status_code", i64::from(request.status)),
            KeyValue::new("client.address", request.client.to_string()),
            KeyValue::new("weir.route", request.route.clone()),
            KeyValue::new("weir.request_id", request.request_id.clone()),
        ];
        if request.status >= 500 {
            server.status = Status::error(format!("status {}", request.status));
        }
        spans.push(server);

        for call in self.calls {
            let name = format!("filter {} {}", call.plugin, call.phase);
            let mut filter = span(fastrand::u64(1..), self.span, SpanKind::Internal, name);
            (filter.start_time, filter.end_time) = (clock(call.started), clock(call.ended));
            if call.decision.starts_with("failed") {
                filter.status = Status::error(call.decision.clone());
            }
            filter.attributes = vec![
                KeyValue::new("weir.plugin", call.plugin),
                KeyValue::new("weir.phase", call.phase),
                KeyValue::new("weir.decision", call.decision),
            ];
            spans.push(filter);
        }

        for (resend, attempt) in self.tries.into_iter().enumerate() {
            let name = request.method.to_string();
            let mut client = span(attempt.span, self.span, SpanKind::Client, name);
            (client.start_time, client.end_time) = (clock(attempt.started), clock(attempt.ended));
            client.attributes = vec![
                KeyValue::new("http.request.method", request.method.to_string()),
                KeyValue::new("server.address", attempt.target.ip().to_string()),
                KeyValue::new("server.port", i64::from(attempt.target.port())),
                KeyValue::new("weir.upstream", attempt.upstream),
            ];
            if resend > 0 {
                let resend = KeyValue::new("http.request.resend_count", resend as i64);
                client.attributes.push(resend);
            }
            match attempt.outcome {
                Ok(status) => {
                    let code = KeyValue::new("http.response.status_code", i64::from(status));
                    client.attributes.push(code);
                    if status >= 400 {
                        client.status = Status::error(format!("status {status}"));
                    }
                }
                Err(error) => {
                    client
                        .attributes
                        .push(KeyValue::new("error.type", "failed"));
                    client.status = Status::error(error);
                }
            }
            spans.push(client);
        }
        spans
    }
}

/// A request's notes waiting for its response's last byte: the server finishes them.
/// Cloned into the response's extensions (they need `Clone`); the first finish exports.
#[derive(Clone)]
pub struct PendingSpans(Arc<Mutex<Option<Unfinished>>>);

/// Notes, the request they are of, and where their spans go.
struct Unfinished {
    notes: Box<SpanNotes>,
    request: RequestSummary,
    tracer: Arc<Tracer>,
}

impl PendingSpans {
    /// `notes` of `request`, for `tracer`.
    pub fn new(notes: Box<SpanNotes>, request: RequestSummary, tracer: Arc<Tracer>) -> Self {
        let unfinished = Unfinished {
            notes,
            request,
            tracer,
        };
        Self(Arc::new(Mutex::new(Some(unfinished))))
    }

    /// Ends the request's span now and hands its spans to the exporter.
    pub fn finish(&self) {
        let ended = Instant::now();
        let taken = self.0.lock().ok().and_then(|mut slot| slot.take());
        if let Some(Unfinished {
            notes,
            request,
            tracer,
        }) = taken
        {
            let spans = notes.into_spans(&request, ended, tracer.scope());
            tracer.export(spans);
        }
    }
}
