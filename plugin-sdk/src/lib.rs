//! Write Weir gateway filters in Rust.
//!
//! A filter is a type that implements [`Filter`] and is exported with [`export_filter!`]:
//!
//! ```ignore
//! use weir_plugin_sdk::prelude::*;
//!
//! #[derive(serde::Deserialize)]
//! struct Config { header: String }
//!
//! struct RequireHeader { header: String }
//!
//! impl Filter for RequireHeader {
//!     type Config = Config;
//!     const NAME: &'static str = "require-header";
//!     const VERSION: &'static str = "1.0.0";
//!     const PHASES: &'static [Phase] = &[Phase::RequestHeaders];
//!
//!     fn new(config: Config) -> Result<Self, String> {
//!         Ok(Self { header: config.header.to_ascii_lowercase() })
//!     }
//!
//!     fn on_request(&self, request: &Request<'_>) -> RequestDecision {
//!         match request.header(&self.header) {
//!             Some(_) => RequestDecision::proceed(),
//!             None => RequestDecision::Respond(Response::json(400, r#"{"error":"missing_header"}"#)),
//!         }
//!     }
//! }
//!
//! export_filter!(RequireHeader);
//! ```
//!
//! A push router (where each published message goes for each device) is written the same
//! way with [`push::PushRouter`] and [`export_push_router!`].
//!
//! Build it with `cargo build --release --target wasm32-wasip2`; the output is a component
//! that the gateway loads from its plugins directory. Test its logic natively with
//! [`testing`]: a fake request, response and host, under plain `cargo test`.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

/// The header reads of a lent handle (request or response): the same four methods on
/// [`Request`] and [`ResponseView`].
macro_rules! impl_header_reads {
    ($ty:ident) => {
        impl $ty<'_> {
            /// The first value of a header (case-insensitive name) as text, if present and
            /// UTF-8.
            pub fn header(&self, name: &str) -> Option<String> {
                self.header_bytes(name)
                    .and_then(|v| String::from_utf8(v).ok())
            }

            /// The first value of a header as bytes.
            pub fn header_bytes(&self, name: &str) -> Option<Vec<u8>> {
                self.handle.header(name)
            }

            /// Every value of a header, in order (for headers sent on several lines).
            pub fn header_all(&self, name: &str) -> Vec<Vec<u8>> {
                self.handle.header_all(name)
            }

            /// All headers, in order (fetches them all: prefer `header`).
            pub fn headers(&self) -> Vec<crate::Header> {
                self.handle.headers()
            }
        }
    };
}

mod changes;
pub mod client_ip;
mod context;
mod decision;
pub mod duration;
#[doc(hidden)]
pub mod export;
mod filter;
mod handle;
pub mod host;
pub mod push;
mod request;
mod response;
pub mod testing;

#[doc(hidden)]
#[allow(missing_docs)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "filter-plugin",
        path: "../wit",
        pub_export_macro: true,
        default_bindings_module: "weir_plugin_sdk::bindings",
        export_macro_name: "export_guest",
        additional_derives: [PartialEq, Eq, Hash],
    });
}

/// The `push-router` world's bindings: its imports are the filter world's (so [`host`]
/// serves routers too); only its export, `push-routing`, is generated here.
#[doc(hidden)]
#[allow(missing_docs)]
pub mod router_bindings {
    wit_bindgen::generate!({
        world: "push-router",
        path: "../wit",
        pub_export_macro: true,
        default_bindings_module: "weir_plugin_sdk::router_bindings",
        export_macro_name: "export_router_guest",
        additional_derives: [PartialEq, Eq, Hash],
        with: {
            "weir:gateway/types@0.2.3": crate::bindings::weir::gateway::types,
            "weir:gateway/log@0.2.3": crate::bindings::weir::gateway::log,
            "weir:gateway/clock@0.2.3": crate::bindings::weir::gateway::clock,
            "weir:gateway/kv@0.2.3": crate::bindings::weir::gateway::kv,
        },
    });
}

pub use bindings::weir::gateway::types::{FilterInfo, Header, HostError, Phase, Variable};
pub use changes::{HeaderChanges, RequestChanges, ResponseChanges};
pub use decision::{RequestDecision, ResponseDecision};
pub use filter::Filter;
pub use handle::{RequestHandle, ResponseHandle};
pub use request::Request;
pub use response::{Response, ResponseView};

/// Writes a line into the gateway's log (grant `log`), tagged with the plugin and the
/// request id: `log!(Info, "cache miss for {key}")`. The level is one of `Trace`,
/// `Debug`, `Info`, `Warn`, `Error`.
#[macro_export]
macro_rules! log {
    ($level:ident, $($message:tt)+) => {
        $crate::host::log::log(
            $crate::host::log::Level::$level,
            &::std::format!($($message)+),
        )
    };
}

/// Everything a filter usually needs: `use weir_plugin_sdk::prelude::*;`.
pub mod prelude {
    pub use crate::{
        Filter, HeaderChanges, Phase, Request, RequestChanges, RequestDecision, Response,
        ResponseChanges, ResponseDecision, ResponseView, export_filter,
    };
}
