//! The access log: one JSON object per request, assembled on the request path from what
//! the request already carries, handed to a writer thread through a bounded channel (a
//! full channel drops the record and counts it, never slowing a request), and written there
//! in batches to standard output or to a file rotated by size.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::config::AccessLogConfig;

mod writer;

/// One request, as the access log writes it.
#[derive(Debug, Serialize)]
pub struct AccessRecord {
    /// When the request came in (RFC 3339, UTC, milliseconds); set by the writer from
    /// `at_ms`.
    pub time: String,
    /// When the request came in, ms since the Unix epoch.
    #[serde(skip)]
    pub at_ms: u64,
    /// The request id (`x-request-id`).
    pub request_id: String,
    /// The route's name.
    pub route: String,
    /// The method.
    pub method: String,
    /// The path and the query, credentials in the query redacted.
    pub path: String,
    /// `http` or `https`.
    pub scheme: &'static str,
    /// The response's status.
    pub status: u16,
    /// Request body bytes read from the client.
    pub bytes_in: u64,
    /// Response body bytes sent to the client.
    pub bytes_out: u64,
    /// The client's address (the TCP peer).
    pub client_ip: IpAddr,
    /// The upstream target the answer came from, if one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream: Option<SocketAddr>,
    /// Time from the request's arrival at the target to its response headers, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_ms: Option<f64>,
    /// Time from the request's arrival to the response's last byte, ms.
    pub total_ms: f64,
    /// Each filter that ran, with what it decided, in order.
    pub filters: Vec<FilterOutcome>,
    /// The variables the filters set for later filters and the access log (their last
    /// values).
    pub variables: BTreeMap<String, String>,
    /// The W3C trace id: the one the request carried (`traceparent`), or the one the
    /// gateway started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
}

/// What one filter decided.
#[derive(Debug, Clone, Serialize)]
pub struct FilterOutcome {
    /// The filter's name.
    pub filter: String,
    /// `continue`, `respond`, or `failed:<kind>`.
    pub decision: String,
}

/// What a logged request gathers on its way that the record needs.
#[derive(Debug, Default)]
pub struct AccessNotes {
    /// Each filter's decision, in order.
    pub filters: Vec<FilterOutcome>,
    /// The target that answered.
    pub upstream: Option<SocketAddr>,
    /// Its time to the response headers.
    pub upstream_latency: Option<Duration>,
}

/// A message to the writer.
enum Message {
    Record(Box<AccessRecord>),
    /// Write what came before, then say so.
    Flush(std::sync::mpsc::Sender<()>),
}

/// The access log's sink: the channel to its writer and its counts.
pub struct AccessLog {
    tx: SyncSender<Message>,
    written: Arc<AtomicU64>,
    dropped: AtomicU64,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl AccessLog {
    /// Opens the log `config` names (the file, created if need be) and starts its writer.
    pub fn start(config: &AccessLogConfig, base_dir: &std::path::Path) -> anyhow::Result<Self> {
        let (tx, rx) = std::sync::mpsc::sync_channel(config.buffer_records);
        let output = writer::Output::open(config, base_dir)?;
        let written = Arc::new(AtomicU64::new(0));
        let counted = written.clone();
        let thread = std::thread::Builder::new()
            .name("weir-access-log".into())
            .spawn(move || write_all(rx, output, &counted))?;
        Ok(Self {
            tx,
            written,
            dropped: AtomicU64::new(0),
            writer: Mutex::new(Some(thread)),
        })
    }

    /// Hands `record` to the writer; when its queue is full the record is dropped and
    /// counted.
    pub fn log(&self, record: Box<AccessRecord>) {
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
            self.tx.try_send(Message::Record(record))
        {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Waits (up to `timeout`) until everything handed over so far is written; a writer
    /// that is stuck (its queue full all along) is given up on at the deadline.
    pub fn flush(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let (ack, acked) = std::sync::mpsc::channel();
        let mut message = Message::Flush(ack);
        loop {
            match self.tx.try_send(message) {
                Ok(()) => break,
                Err(TrySendError::Full(back)) if Instant::now() < deadline => {
                    message = back;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(_) => return,
            }
        }
        let _ = acked.recv_timeout(deadline.saturating_duration_since(Instant::now()));
    }

    /// Writes the counters in the Prometheus text format.
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write;
        let (written, dropped) = (
            self.written.load(Ordering::Relaxed),
            self.dropped.load(Ordering::Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP weir_access_log_records_total Access log records written.\n# TYPE weir_access_log_records_total counter\nweir_access_log_records_total {written}"
        );
        let _ = writeln!(
            out,
            "# HELP weir_access_log_dropped_total Access log records dropped because the writer was behind.\n# TYPE weir_access_log_dropped_total counter\nweir_access_log_dropped_total {dropped}"
        );
    }
}

impl Drop for AccessLog {
    fn drop(&mut self) {
        self.flush(Duration::from_secs(5));
        // The writer ends when the channel closes, after this: it is not waited for.
        drop(self.writer.lock().ok().and_then(|mut w| w.take()));
    }
}

/// The writer thread: takes what is queued, writes it as one batch, until the channel
/// closes.
fn write_all(rx: Receiver<Message>, mut output: writer::Output, written: &AtomicU64) {
    let mut batch = Vec::with_capacity(64 << 10);
    while let Ok(first) = rx.recv() {
        let mut acks = Vec::new();
        let mut count = 0;
        let mut next = Some(first);
        while let Some(message) = next.take() {
            match message {
                Message::Record(record) => {
                    writer::encode(&mut batch, record);
                    count += 1;
                }
                Message::Flush(ack) => acks.push(ack),
            }
            if batch.len() < 1 << 20 {
                next = rx.try_recv().ok();
            }
        }
        output.write(&batch);
        batch.clear();
        written.fetch_add(count, Ordering::Relaxed);
        for ack in acks {
            let _ = ack.send(());
        }
    }
}

/// A record waiting for its response's last byte: the server finishes it with the bytes
/// sent. Cloned into the response's extensions (they need `Clone`); the first finish
/// logs it.
#[derive(Clone)]
pub struct Pending(Arc<Mutex<Option<Unfinished>>>);

/// A record, when its request came in, and the log it goes to.
struct Unfinished {
    record: Box<AccessRecord>,
    started: Instant,
    log: Arc<AccessLog>,
}

impl Pending {
    /// `record`, of a request that came in at `started`, for `log`.
    pub fn new(record: Box<AccessRecord>, started: Instant, log: Arc<AccessLog>) -> Self {
        let unfinished = Unfinished {
            record,
            started,
            log,
        };
        Self(Arc::new(Mutex::new(Some(unfinished))))
    }

    /// Logs the record with the response bytes sent and the time until now.
    pub fn finish(&self, bytes_out: u64) {
        let taken = self.0.lock().ok().and_then(|mut slot| slot.take());
        if let Some(Unfinished {
            mut record,
            started,
            log,
        }) = taken
        {
            record.bytes_out = bytes_out;
            record.total_ms = started.elapsed().as_secs_f64() * 1e3;
            log.log(record);
        }
    }
}

/// `path_and_query` with the values of the `redact` parameters replaced.
pub fn redacted_path(path_and_query: &str, redact: &[String]) -> String {
    let Some((path, query)) = path_and_query.split_once('?') else {
        return path_and_query.to_string();
    };
    let mut out = String::with_capacity(path_and_query.len());
    out.push_str(path);
    out.push('?');
    for (i, pair) in query.split('&').enumerate() {
        if i > 0 {
            out.push('&');
        }
        let name = pair.split_once('=').map_or(pair, |(name, _)| name);
        let secret = redact.iter().any(|r| r.eq_ignore_ascii_case(name));
        match (secret, pair.contains('=')) {
            (true, true) => {
                out.push_str(name);
                out.push_str("=[redacted]");
            }
            _ => out.push_str(pair),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Box<AccessRecord> {
        Box::new(AccessRecord {
            time: String::new(),
            at_ms: 0,
            request_id: "r".into(),
            route: "api".into(),
            method: "GET".into(),
            path: "/".into(),
            scheme: "http",
            status: 200,
            bytes_in: 0,
            bytes_out: 0,
            client_ip: [127, 0, 0, 1].into(),
            upstream: None,
            upstream_ms: None,
            total_ms: 0.0,
            filters: Vec::new(),
            variables: BTreeMap::new(),
            trace_id: None,
        })
    }

    /// A writer that has fallen behind (here: one that never reads) costs a request
    /// nothing: the queue's bound drops the records and counts them, and a flush gives up
    /// at its deadline.
    #[test]
    fn a_full_queue_drops_and_counts_instead_of_waiting() {
        let (tx, rx) = std::sync::mpsc::sync_channel(2);
        let log = AccessLog {
            tx,
            written: Arc::default(),
            dropped: AtomicU64::new(0),
            writer: Mutex::new(None),
        };
        for _ in 0..5 {
            log.log(record());
        }
        assert_eq!(log.dropped.load(Ordering::Relaxed), 3);
        let started = Instant::now();
        log.flush(Duration::from_millis(50));
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(50) && waited < Duration::from_secs(2),
            "{waited:?}"
        );
        drop(rx);
    }

    #[test]
    fn credentials_in_the_query_are_redacted() {
        let redact = vec!["apikey".to_string(), "token".to_string()];
        assert_eq!(
            redacted_path("/a?apikey=s3&x=1&TOKEN=t&flag", &redact),
            "/a?apikey=[redacted]&x=1&TOKEN=[redacted]&flag"
        );
        assert_eq!(redacted_path("/a", &redact), "/a");
    }
}
