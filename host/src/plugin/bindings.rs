//! The one `bindgen!` of the host: Rust types and traits for the `filter-plugin` world.

#![allow(missing_docs)]

wasmtime::component::bindgen!({
    world: "filter-plugin",
    path: "../wit",
    // The request and response handles, the clock, secrets, log and upstreams never wait:
    // plain calls. `kv`, `limits` and `http` may wait on the network (state backend, upstreams):
    // async.
    imports: {
        "weir:gateway/types": trappable,
        "weir:gateway/clock": trappable,
        "weir:gateway/secrets": trappable,
        "weir:gateway/log": trappable,
        "weir:gateway/upstreams": trappable,
        default: async | trappable,
    },
    exports: { default: async },
    with: {
        "weir:gateway/types.request": crate::plugin::view::RequestView,
        "weir:gateway/types.response-view": crate::plugin::view::ResponseView,
    },
});

pub use weir::gateway::types::{
    FilterInfo, Header, HostError, Phase, RequestAction, RequestMutations, Response,
    ResponseAction, ResponseMutations, Variable,
};
