//! The one `bindgen!` of the host: Rust types and traits for the `filter-plugin` world.

#![allow(missing_docs)]

wasmtime::component::bindgen!({
    world: "filter-plugin",
    path: "../wit",
    imports: { default: async | trappable },
    exports: { default: async },
});

pub use weir::gateway::types::{
    FilterInfo, Header, HostError, Phase, Request, RequestAction, RequestMutations, RequestSummary,
    Response, ResponseAction, ResponseMutations, Variable,
};
