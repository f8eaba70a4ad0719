//! The `protocol-convert` filter through a real gateway, against real servers the tests
//! start: a strict JSON-RPC 2.0 server, an XML/SOAP server, and a tonic gRPC server over
//! h2c. Each mode is tested on its happy path and on every error path it maps.

mod grpc;
mod json_rpc;
mod xml;

use weir_tests::TestGateway;
use weir_tests::plugins::PROTOCOL_CONVERT;

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
