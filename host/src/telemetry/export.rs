//! The span exporter: requests hand their spans to a queue bounded in spans (a full queue
//! drops them and counts them, never slowing a request); a task on the gateway's runtime
//! sends them in batches to the collector with the OTLP/HTTP exporter, each export under a
//! deadline, and counts what went and what was lost.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Context;
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::client::CollectorClient;
use crate::config::{TracingConfig, millis};
use crate::repeats::Repeats;

/// A message to the export task.
enum Message {
    Spans(Vec<SpanData>),
    /// Export what came before, then say so.
    Flush(oneshot::Sender<()>),
}

/// Where sampled requests' spans go: the queue to the export task, and its counts.
pub struct Tracer {
    tx: mpsc::UnboundedSender<Message>,
    /// Spans queued and not yet taken by the task (the queue's bound is on this).
    queued: Arc<AtomicUsize>,
    max_queue: usize,
    scope: InstrumentationScope,
    counts: Arc<Counts>,
}

/// What became of the spans.
#[derive(Default)]
struct Counts {
    exported: AtomicU64,
    dropped: AtomicU64,
    failed: AtomicU64,
}

/// How the export task batches and sends.
struct Batching {
    max_batch: usize,
    interval: Duration,
    timeout: Duration,
    /// How often a failing export is logged (`server.log_repeat_interval_ms`).
    repeat_ms: u64,
}

impl Tracer {
    /// The tracer `config` asks for (none without an `otlp_endpoint`), its export task
    /// spawned on the current runtime; failed exports are logged once per `repeat_ms`.
    pub fn start(config: &TracingConfig, repeat_ms: u64) -> anyhow::Result<Option<Arc<Self>>> {
        let Some(endpoint) = &config.otlp_endpoint else {
            return Ok(None);
        };
        let timeout = millis(config.export_timeout_ms);
        let mut headers = HashMap::new();
        for (name, value) in &config.headers {
            let value = value
                .resolve(&format!("tracing.headers.{name}"))
                .map_err(anyhow::Error::msg)?;
            let value = String::from_utf8(value)
                .with_context(|| format!("tracing.headers.{name}: not UTF-8"))?;
            headers.insert(name.clone(), value);
        }
        let mut exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(endpoint)
            .with_timeout(timeout)
            .with_headers(headers)
            .with_http_client(CollectorClient::new(timeout)?)
            .build()
            .with_context(|| format!("tracing.otlp_endpoint {endpoint:?}"))?;
        let version = env!("CARGO_PKG_VERSION");
        exporter.set_resource(
            &Resource::builder_empty()
                .with_service_name(config.service_name.clone())
                .with_attribute(KeyValue::new("service.version", version))
                .build(),
        );
        let (tx, rx) = mpsc::unbounded_channel();
        let tracer = Arc::new(Self {
            tx,
            queued: Arc::default(),
            max_queue: config.max_queue_spans,
            scope: InstrumentationScope::builder("weir")
                .with_version(version)
                .build(),
            counts: Arc::default(),
        });
        let batching = Batching {
            max_batch: config.max_batch_spans,
            interval: millis(config.export_interval_ms),
            timeout,
            repeat_ms,
        };
        let (queued, counts) = (tracer.queued.clone(), tracer.counts.clone());
        tokio::spawn(export_all(rx, exporter, batching, queued, counts));
        tracing::info!(endpoint, "exporting spans over OTLP/HTTP");
        Ok(Some(tracer))
    }

    /// The instrumentation scope the spans name.
    pub(super) fn scope(&self) -> &InstrumentationScope {
        &self.scope
    }

    /// Queues a request's spans, or drops and counts them when the queue is full.
    pub(super) fn export(&self, spans: Vec<SpanData>) {
        let n = spans.len();
        let fits = self
            .queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |queued| {
                (queued + n <= self.max_queue).then_some(queued + n)
            })
            .is_ok();
        if !fits || self.tx.send(Message::Spans(spans)).is_err() {
            if fits {
                self.queued.fetch_sub(n, Ordering::AcqRel);
            }
            self.counts.dropped.fetch_add(n as u64, Ordering::Relaxed);
        }
    }

    /// Waits (up to `timeout`) until the spans queued so far are exported (or lost).
    pub async fn flush(&self, timeout: Duration) {
        let (ack, acked) = oneshot::channel();
        if self.tx.send(Message::Flush(ack)).is_ok() {
            let _ = tokio::time::timeout(timeout, acked).await;
        }
    }

    /// Writes the counters in the Prometheus text format.
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write;
        let counts = &self.counts;
        let families = [
            (
                "weir_trace_spans_exported_total",
                "Spans the collector accepted.",
                &counts.exported,
            ),
            (
                "weir_trace_spans_dropped_total",
                "Spans dropped because the export queue was full.",
                &counts.dropped,
            ),
            (
                "weir_trace_spans_failed_total",
                "Spans lost because their export failed or timed out.",
                &counts.failed,
            ),
        ];
        for (name, help, count) in families {
            let count = count.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {count}"
            );
        }
    }
}

/// The export task: gathers spans until a batch is full or its first span has waited the
/// interval (a flush cuts the wait short), exports it, and so on until the gateway ends.
async fn export_all(
    mut rx: mpsc::UnboundedReceiver<Message>,
    exporter: opentelemetry_otlp::SpanExporter,
    batching: Batching,
    queued: Arc<AtomicUsize>,
    counts: Arc<Counts>,
) {
    let failures = Repeats::default();
    let mut batch = Vec::new();
    let mut acks = Vec::new();
    let mut open = true;
    while open {
        let Some(first) = rx.recv().await else {
            break;
        };
        let deadline = Instant::now() + batching.interval;
        let mut next = Some(first);
        loop {
            match next.take() {
                Some(Message::Spans(spans)) => {
                    queued.fetch_sub(spans.len(), Ordering::AcqRel);
                    batch.extend(spans);
                }
                Some(Message::Flush(ack)) => acks.push(ack),
                None => {}
            }
            if batch.len() >= batching.max_batch || !acks.is_empty() {
                break;
            }
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(message)) => next = Some(message),
                Ok(None) => {
                    open = false;
                    break;
                }
                Err(_) => break,
            }
        }
        while !batch.is_empty() {
            let chunk: Vec<_> = batch.drain(..batch.len().min(batching.max_batch)).collect();
            let n = chunk.len() as u64;
            let sent = tokio::time::timeout(batching.timeout, exporter.export(chunk)).await;
            let error = match sent {
                Ok(Ok(())) => {
                    counts.exported.fetch_add(n, Ordering::Relaxed);
                    continue;
                }
                Ok(Err(error)) => error.to_string(),
                Err(_) => format!("no answer within {:?}", batching.timeout),
            };
            counts.failed.fetch_add(n, Ordering::Relaxed);
            if let Some(unlogged) = failures.occur(batching.repeat_ms) {
                tracing::warn!(spans = n, error, unlogged, "span export failed");
            }
        }
        for ack in acks.drain(..) {
            let _ = ack.send(());
        }
    }
}
