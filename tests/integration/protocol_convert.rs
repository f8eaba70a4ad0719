//! The `protocol-convert` filter through a real gateway, against real servers the tests
//! start: a strict JSON-RPC 2.0 server, an XML/SOAP server, and a tonic gRPC server over
//! h2c. Each mode is tested on its happy path and on every error path it maps.

mod grpc;
mod json_rpc;
mod xml;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::Response;
use http_body_util::Full;
use weir_tests::TestGateway;
use weir_tests::plugins::PROTOCOL_CONVERT;

/// A protocol server for the tests: it counts its hits, keeps what its handler records of
/// each request, and stops when dropped.
struct RecordingServer<S> {
    addr: std::net::SocketAddr,
    hits: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<S>>>,
    task: tokio::task::JoinHandle<()>,
}

impl<S> Drop for RecordingServer<S> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl<S: Clone + Send + 'static> RecordingServer<S> {
    /// Serves `handle(parts, body)`, which answers with what to record and the response.
    async fn start<F>(handle: F) -> Self
    where
        F: Fn(&http::request::Parts, &Bytes) -> (S, Response<Full<Bytes>>)
            + Clone
            + Send
            + Sync
            + 'static,
    {
        let hits = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (h, s) = (hits.clone(), seen.clone());
        let (addr, task) = weir_tests::serve(move |req: http::Request<hyper::body::Incoming>| {
            let (hits, seen, handle) = (h.clone(), s.clone(), handle.clone());
            async move {
                hits.fetch_add(1, Ordering::SeqCst);
                let (parts, body) = req.into_parts();
                let body = weir_tests::read_body(body).await;
                let (record, response) = handle(&parts, &body);
                seen.lock().unwrap().push(record);
                response
            }
        })
        .await;
        Self {
            addr,
            hits,
            seen,
            task,
        }
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// What was recorded of the last request.
    fn last(&self) -> S {
        self.seen
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("a request")
    }
}

/// A request header as text, if present.
fn header(parts: &http::request::Parts, name: &str) -> Option<String> {
    parts
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// An upstream `name` with one target (and `extra` keys, `protocol = "h2c"` say).
fn upstream(name: &str, addr: std::net::SocketAddr, extra: &str) -> String {
    format!(
        "[upstreams.{name}]\ntargets = [\"{addr}\"]\n{extra}\n[upstreams.{name}.passive]\nconsecutive_failures = 0\n"
    )
}

/// A route `name` on the path prefix `prefix` to `upstream` through the filter with
/// `config` (a TOML inline table) and `grants`.
fn route(name: &str, prefix: &str, upstream: &str, config: &str, grants: &str) -> String {
    format!(
        "[[routes]]\nname = \"{name}\"\nupstream = \"{upstream}\"\nmatch = {{ path_prefix = \"{prefix}\" }}\n\
         [[routes.filters]]\nplugin = \"protocol-convert.wasm\"\ngrants = [{grants}]\nconfig = {config}\n"
    )
}

/// A gateway with these upstreams and routes, or its startup error.
async fn try_gateway(upstreams: &[String], routes: &[String]) -> anyhow::Result<TestGateway> {
    let text = format!("{}\n{}", upstreams.concat(), routes.concat());
    TestGateway::try_start(&text, &[("protocol-convert.wasm", PROTOCOL_CONVERT)]).await
}

/// A gateway that must start.
async fn gateway(upstreams: &[String], routes: &[String]) -> TestGateway {
    try_gateway(upstreams, routes)
        .await
        .expect("gateway starts")
}
