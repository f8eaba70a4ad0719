//! The filter's decisions, run natively on the SDK's fakes: the fake host keeps the
//! upstream record, the circuit cells and the kv store the way the gateway does.

mod breaker;
mod fallback;

use weir_plugin_sdk::host::upstreams::{Scope, WindowStats};
use weir_plugin_sdk::prelude::*;
use weir_plugin_sdk::testing::{FakeRequest, FakeResponse};

use crate::Degradation;

fn filter(config: serde_json::Value) -> Result<Degradation, String> {
    Degradation::new(serde_json::from_value(config).map_err(|e| e.to_string())?)
}

/// The scope of the requests below: the upstream `api`.
fn scope() -> Scope {
    Scope::Upstream("api".into())
}

fn request() -> FakeRequest {
    FakeRequest::get("/items?page=2").upstream("api")
}

fn stats(calls: u32, failures: u32, slow: u32, consecutive_failures: u32) -> WindowStats {
    WindowStats {
        calls,
        failures,
        slow,
        consecutive_failures,
    }
}

/// One exchange: the request phase, then (if it went on) the response phase with an
/// upstream answer of `status`. The client's final response, or `None` when the
/// upstream's went through unchanged.
fn exchange(filter: &Degradation, request: &FakeRequest, status: u16) -> Option<Response> {
    exchange_with(filter, request, &FakeResponse::new(status))
}

fn exchange_with(
    filter: &Degradation,
    request: &FakeRequest,
    upstream: &FakeResponse,
) -> Option<Response> {
    match filter.on_request(&request.view()) {
        RequestDecision::Respond(response) => Some(response),
        RequestDecision::Continue(changes) => {
            let carried = request.apply(&changes).in_response_phase();
            filter
                .on_response(&carried.view(), &upstream.view())
                .response()
                .cloned()
        }
    }
}
