//! The one `bindgen!` of the host: Rust types and traits for the `filter-plugin` world.

#![allow(missing_docs)]

wasmtime::component::bindgen!({
    world: "filter-plugin",
    path: "../wit",
    // The request and response handles, the clock, secrets, log and upstreams never wait:
    // plain calls. `kv`, `limits` and `http` may wait on the network (state backend, upstreams):
    // async. Every capability call gets a trace-level span ("wit-bindgen import", with the
    // interface and function); byte lists (values, secrets, bodies) are never logged.
    imports: {
        "weir:gateway/types": trappable,
        "weir:gateway/clock": trappable | tracing,
        "weir:gateway/secrets": trappable | tracing,
        "weir:gateway/log": trappable | tracing,
        "weir:gateway/upstreams": trappable | tracing,
        default: async | trappable | tracing,
    },
    exports: { default: async },
    with: {
        "weir:gateway/types.request": crate::plugin::view::RequestView,
        "weir:gateway/types.response-view": crate::plugin::view::ResponseView,
    },
});

pub(crate) use weir::gateway::types::{
    FilterInfo, Header, Phase, RequestAction, RequestMutations, Response, ResponseAction,
    ResponseMutations, Variable,
};
