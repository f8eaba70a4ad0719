//! A small OpenTelemetry collector: it takes OTLP/HTTP trace exports (protobuf, as the
//! OTLP specification defines them) and keeps the spans for the test to look at. It can be
//! told to refuse exports (503) or to never answer them.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Full};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use prost::Message;
use tokio::sync::Notify;

/// One span as the collector received it (ids in hex, as `traceparent` writes them).
#[derive(Debug, Clone)]
pub struct ReceivedSpan {
    /// The trace id.
    pub trace_id: String,
    /// The span id.
    pub span_id: String,
    /// The parent's span id (empty for a root).
    pub parent_span_id: String,
    /// The span's name.
    pub name: String,
    /// `SPAN_KIND_*` of the OTLP protocol: 1 internal, 2 server, 3 client.
    pub kind: i32,
    /// Its attributes, values as text.
    pub attributes: BTreeMap<String, String>,
    /// `STATUS_CODE_*`: 0 unset, 1 ok, 2 error.
    pub status: i32,
    /// Start and end, ns since the Unix epoch.
    pub start_ns: u64,
    /// See `start_ns`.
    pub end_ns: u64,
    /// Its resource's `service.name`.
    pub service: String,
}

impl ReceivedSpan {
    /// An attribute's value as text.
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }
}

/// How the collector answers exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Answer {
    /// Keep the spans, 200.
    Accept = 0,
    /// 503, spans not kept.
    Refuse = 1,
    /// Never answer.
    Stall = 2,
}

/// A running collector; stops when dropped.
pub struct OtlpCollector {
    /// Its address.
    pub addr: SocketAddr,
    spans: Arc<Mutex<Vec<ReceivedSpan>>>,
    arrived: Arc<Notify>,
    answer: Arc<AtomicU8>,
    task: tokio::task::JoinHandle<()>,
}

impl OtlpCollector {
    /// A collector on a free port.
    pub async fn start() -> Self {
        let spans: Arc<Mutex<Vec<ReceivedSpan>>> = Arc::default();
        let arrived = Arc::new(Notify::new());
        let answer = Arc::new(AtomicU8::new(Answer::Accept as u8));
        let (kept, told, mode) = (spans.clone(), arrived.clone(), answer.clone());
        let (addr, task) = crate::serve(move |request: http::Request<hyper::body::Incoming>| {
            let (kept, told, mode) = (kept.clone(), told.clone(), mode.clone());
            async move {
                let reply = |status: StatusCode, body: Vec<u8>| {
                    Response::builder()
                        .status(status)
                        .header("content-type", "application/x-protobuf")
                        .body(Full::new(Bytes::from(body)))
                        .expect("a response")
                };
                let wellformed = request.method() == http::Method::POST
                    && request.uri().path() == "/v1/traces"
                    && request
                        .headers()
                        .get("content-type")
                        .is_some_and(|v| v == "application/x-protobuf");
                let body = request.into_body().collect().await.map(|b| b.to_bytes());
                let export = body
                    .ok()
                    .and_then(|b| ExportTraceServiceRequest::decode(b).ok());
                let Some(export) = export.filter(|_| wellformed) else {
                    return reply(StatusCode::BAD_REQUEST, Vec::new());
                };
                match mode.load(Ordering::Relaxed) {
                    0 => {}
                    1 => return reply(StatusCode::SERVICE_UNAVAILABLE, Vec::new()),
                    _ => std::future::pending::<()>().await,
                }
                kept.lock().expect("spans").extend(spans_of(export));
                told.notify_waiters();
                reply(
                    StatusCode::OK,
                    ExportTraceServiceResponse::default().encode_to_vec(),
                )
            }
        })
        .await;
        Self {
            addr,
            spans,
            arrived,
            answer,
            task,
        }
    }

    /// The endpoint to export to.
    pub fn endpoint(&self) -> String {
        format!("http://{}/v1/traces", self.addr)
    }

    /// Answers exports from now on as `answer` says.
    pub fn answer(&self, answer: Answer) {
        self.answer.store(answer as u8, Ordering::Relaxed);
    }

    /// The spans received so far.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.spans.lock().expect("spans").clone()
    }

    /// Waits (up to `timeout`) until the spans of trace `trace_id` number at least `n`;
    /// the spans of that trace then.
    pub async fn trace(&self, trace_id: &str, n: usize, timeout: Duration) -> Vec<ReceivedSpan> {
        let of_trace = || -> Vec<ReceivedSpan> {
            (self.spans().into_iter())
                .filter(|s| s.trace_id == trace_id)
                .collect()
        };
        let waited = tokio::time::timeout(timeout, async {
            loop {
                let arrived = self.arrived.notified();
                if of_trace().len() >= n {
                    return;
                }
                arrived.await;
            }
        })
        .await;
        let spans = of_trace();
        assert!(
            waited.is_ok(),
            "{} of {n} spans of trace {trace_id} within {timeout:?}: {spans:#?}",
            spans.len()
        );
        spans
    }
}

impl Drop for OtlpCollector {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The spans of an export, flattened.
fn spans_of(export: ExportTraceServiceRequest) -> Vec<ReceivedSpan> {
    let mut out = Vec::new();
    for resource_spans in export.resource_spans {
        let resource = resource_spans
            .resource
            .map(|r| r.attributes)
            .unwrap_or_default();
        let service = text_of(&resource)
            .remove("service.name")
            .unwrap_or_default();
        for span in resource_spans.scope_spans.into_iter().flat_map(|s| s.spans) {
            out.push(ReceivedSpan {
                trace_id: hex(&span.trace_id),
                span_id: hex(&span.span_id),
                parent_span_id: hex(&span.parent_span_id),
                name: span.name,
                kind: span.kind,
                attributes: text_of(&span.attributes),
                status: span.status.map_or(0, |s| s.code),
                start_ns: span.start_time_unix_nano,
                end_ns: span.end_time_unix_nano,
                service: service.clone(),
            });
        }
    }
    out
}

/// Attributes with their values as text.
fn text_of(attributes: &[KeyValue]) -> BTreeMap<String, String> {
    let text = |value: &Option<AnyValue>| match value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    };
    (attributes.iter())
        .map(|kv| (kv.key.clone(), text(&kv.value)))
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
