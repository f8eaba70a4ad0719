//! The host's bindings: Rust types and traits for the `filter-plugin` world, and for the
//! `push-router` world, whose imports are the filter world's own (one `Host` implementation
//! each, one linker for both worlds).

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

/// The `push-router` world: only its export is generated; its imports map to the filter
/// world's interfaces above.
pub(crate) mod router {
    wasmtime::component::bindgen!({
        world: "push-router",
        path: "../wit",
        // The remapped imports keep the flags they were generated with above.
        imports: { default: async | trappable | tracing },
        exports: { default: async },
        with: {
            "weir:gateway/types": super::weir::gateway::types,
            "weir:gateway/log": super::weir::gateway::log,
            "weir:gateway/clock": super::weir::gateway::clock,
            "weir:gateway/kv": super::weir::gateway::kv,
        },
    });

    pub(crate) use exports::weir::gateway::push_routing::{
        Delivery, DeviceFacts, MessageFacts, Platform, Priority, RouterInfo,
    };
}
