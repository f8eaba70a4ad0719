//! A small identity provider for the JWKS and introspection tests.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use serde_json::{Value, json};
use weir_tests::serve;

use super::fixture;

/// How the introspection endpoint answers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) enum Introspection {
    /// 200 with the JSON answer set for the token (`{"active": false}` when none is).
    #[default]
    Answers,
    /// 500 with a JSON body that would admit the token.
    ServerError,
    /// 200 with a body that is not JSON.
    NotJson,
}

/// What the provider serves and what it saw.
#[derive(Default)]
pub(super) struct IdpState {
    /// The JWKS document.
    pub(super) jwks: Mutex<String>,
    /// Introspection answers by token.
    pub(super) answers: Mutex<HashMap<String, Value>>,
    /// How introspection answers.
    pub(super) introspection: Mutex<Introspection>,
    /// Requests for the JWKS.
    pub(super) jwks_hits: AtomicUsize,
    /// Introspection requests.
    pub(super) introspect_hits: AtomicUsize,
    /// The `authorization` and `content-type` of the last introspection request.
    pub(super) last_introspect: Mutex<(String, String)>,
}

/// A small identity provider: a JWKS at `/jwks` and RFC 7662 introspection at
/// `/introspect`, with hit counters. Stops when dropped.
pub(super) struct Idp {
    /// Its address.
    pub(super) addr: SocketAddr,
    /// What it serves and saw.
    pub(super) state: Arc<IdpState>,
    task: tokio::task::JoinHandle<()>,
}

impl Idp {
    /// Starts one on a free port, with an empty JWKS and no active token.
    pub(super) async fn start() -> Self {
        let state = Arc::new(IdpState::default());
        let shared = state.clone();
        let (addr, task) = serve(move |req| idp_reply(req, shared.clone())).await;
        Self { addr, state, task }
    }

    /// Serves these JWK fixtures as its JWKS.
    pub(super) fn set_jwks(&self, keys: &[&str]) {
        let keys: Vec<Value> = keys
            .iter()
            .map(|file| serde_json::from_str(&fixture(file)).expect("JWK fixture"))
            .collect();
        *self.state.jwks.lock().expect("lock") = json!({ "keys": keys }).to_string();
    }

    /// Requests for the JWKS so far.
    pub(super) fn jwks_hits(&self) -> usize {
        self.state.jwks_hits.load(Ordering::SeqCst)
    }

    /// Introspection requests so far.
    pub(super) fn introspect_hits(&self) -> usize {
        self.state.introspect_hits.load(Ordering::SeqCst)
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn idp_reply(req: Request<Incoming>, state: Arc<IdpState>) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = weir_tests::read_body(body).await;
    let (status, text) = match parts.uri.path() {
        "/jwks" => {
            state.jwks_hits.fetch_add(1, Ordering::SeqCst);
            (200, state.jwks.lock().expect("lock").clone())
        }
        "/introspect" if parts.method == http::Method::POST => {
            state.introspect_hits.fetch_add(1, Ordering::SeqCst);
            let header = |name: &str| {
                parts
                    .headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string()
            };
            *state.last_introspect.lock().expect("lock") =
                (header("authorization"), header("content-type"));
            // The test's tokens need no percent-decoding.
            let form = String::from_utf8_lossy(&body).to_string();
            let token = form
                .split('&')
                .find_map(|pair| pair.strip_prefix("token="))
                .unwrap_or_default();
            let answer = state
                .answers
                .lock()
                .expect("lock")
                .get(token)
                .cloned()
                .unwrap_or_else(|| json!({ "active": false }))
                .to_string();
            match *state.introspection.lock().expect("lock") {
                Introspection::Answers => (200, answer),
                Introspection::ServerError => (500, answer),
                Introspection::NotJson => (200, format!("<html>{answer}</html>")),
            }
        }
        _ => (404, String::new()),
    };
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(text)))
        .expect("response")
}
