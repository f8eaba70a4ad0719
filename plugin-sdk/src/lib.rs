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
//! Build it with `cargo build --release --target wasm32-wasip2`; the output is a component
//! that the gateway loads from its plugins directory.

/// Implements [`HeaderChanges`] for a wrapper of a generated mutations record (both have
/// the same three header lists).
macro_rules! impl_header_changes {
    ($ty:ty) => {
        impl crate::HeaderChanges for $ty {
            fn header_lists(&mut self) -> crate::HeaderLists<'_> {
                let m = &mut self.inner;
                (
                    &mut m.remove_headers,
                    &mut m.set_headers,
                    &mut m.append_headers,
                )
            }
        }
    };
}

/// The header reads of a lent handle (request or response): the same four methods on
/// [`Request`] and [`ResponseView`], each asking the gateway.
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

mod request;
mod response;

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "filter-plugin",
        path: "../wit",
        pub_export_macro: true,
        default_bindings_module: "weir_plugin_sdk::bindings",
        export_macro_name: "export_guest",
    });
}

pub use bindings::weir::gateway::types::{FilterInfo, Header, HostError, Phase, Variable};
pub use request::{Request, RequestChanges, RequestDecision};
pub use response::{Response, ResponseChanges, ResponseDecision, ResponseView};

/// The host interfaces a filter may call. Each must be granted to the plugin in the
/// gateway config; an ungranted call returns [`HostError::AccessDenied`] (or traps, for
/// `log` and `clock`, which have no error result).
pub mod host {
    pub use crate::bindings::weir::gateway::{clock, http, kv, limits, log, secrets, upstreams};
}

/// A gateway filter. One value is created per Wasm instance by [`Filter::new`] from the
/// filter's config, and then serves many requests, one at a time.
pub trait Filter: Sized + 'static {
    /// The filter's config, deserialised from the JSON in the gateway config.
    type Config: serde::de::DeserializeOwned;
    /// Short, stable name shown in logs, metrics and the admin API.
    const NAME: &'static str;
    /// The filter's version.
    const VERSION: &'static str;
    /// The phases the gateway should call this filter in.
    const PHASES: &'static [Phase];

    /// The phases for this configured filter; by default [`Filter::PHASES`]. Override it to
    /// skip phases the config leaves unused: each skipped phase is a call saved per request.
    fn phases(&self) -> Vec<Phase> {
        Self::PHASES.to_vec()
    }

    /// Builds the filter from its config. An error refuses the plugin with that message.
    fn new(config: Self::Config) -> Result<Self, String>;

    /// Called for each request when [`Phase::RequestHeaders`] or [`Phase::RequestBody`] is
    /// declared. The default lets the request through unchanged.
    fn on_request(&self, _request: &Request<'_>) -> RequestDecision {
        RequestDecision::proceed()
    }

    /// Called for each response when [`Phase::ResponseHeaders`] or [`Phase::ResponseBody`]
    /// is declared. The default lets the response through unchanged.
    fn on_response(
        &self,
        _request: &Request<'_>,
        _response: &ResponseView<'_>,
    ) -> ResponseDecision {
        ResponseDecision::proceed()
    }
}

/// Parses a filter's JSON config; `{}` stands for no config.
#[doc(hidden)]
pub fn parse_config<C: serde::de::DeserializeOwned>(json: &str) -> Result<C, String> {
    let json = if json.trim().is_empty() { "{}" } else { json };
    serde_json::from_str(json).map_err(|e| format!("invalid config: {e}"))
}

/// The metadata export, shared by every filter type: the configured filter's phases once
/// `configure` has run, the declared ones before.
#[doc(hidden)]
pub fn filter_info<F: Filter>(configured: Option<&F>) -> FilterInfo {
    FilterInfo {
        name: F::NAME.to_string(),
        version: F::VERSION.to_string(),
        phases: configured.map_or_else(|| F::PHASES.to_vec(), F::phases),
    }
}

/// Exports a [`Filter`] implementation as the component's `filter` interface.
#[macro_export]
macro_rules! export_filter {
    ($filter:ty) => {
        const _: () = {
            use $crate::bindings::exports::weir::gateway::filter::Guest;
            use $crate::bindings::weir::gateway::types as wit;

            ::std::thread_local! {
                static FILTER: ::std::cell::RefCell<::std::option::Option<$filter>> =
                    const { ::std::cell::RefCell::new(None) };
            }

            struct Export;

            impl Guest for Export {
                fn metadata() -> wit::FilterInfo {
                    FILTER.with(|slot| $crate::filter_info::<$filter>(slot.borrow().as_ref()))
                }

                fn configure(config: String) -> Result<(), String> {
                    let config = $crate::parse_config(&config)?;
                    let filter = <$filter as $crate::Filter>::new(config)?;
                    FILTER.with(|slot| *slot.borrow_mut() = Some(filter));
                    Ok(())
                }

                fn on_request(request: &wit::Request) -> wit::RequestAction {
                    let request = $crate::Request::new(request);
                    FILTER.with(|slot| match slot.borrow().as_ref() {
                        Some(filter) => {
                            $crate::Filter::on_request(filter, &request).into_action(&request)
                        }
                        None => $crate::RequestDecision::not_configured().into_action(&request),
                    })
                }

                fn on_response(
                    request: &wit::Request,
                    response: &wit::ResponseView,
                ) -> wit::ResponseAction {
                    let request = $crate::Request::new(request);
                    let response = $crate::ResponseView::new(response);
                    FILTER.with(|slot| match slot.borrow().as_ref() {
                        Some(filter) => {
                            $crate::Filter::on_response(filter, &request, &response).into()
                        }
                        None => $crate::ResponseDecision::proceed().into(),
                    })
                }
            }

    $crate::bindings::export_guest!(Export with_types_in $crate::bindings);
        };
    };
}

/// The header lists of a set of changes: names to remove, headers to set, to append.
#[doc(hidden)]
pub type HeaderLists<'a> = (
    &'a mut Vec<String>,
    &'a mut Vec<Header>,
    &'a mut Vec<Header>,
);

/// Header edits, the same on [`RequestChanges`] and [`ResponseChanges`]. Applied by the
/// gateway in the order: remove, set, append.
pub trait HeaderChanges: Sized {
    #[doc(hidden)]
    fn header_lists(&mut self) -> HeaderLists<'_>;

    /// Sets a header, replacing existing values.
    fn set_header(mut self, name: &str, value: impl Into<Vec<u8>>) -> Self {
        self.header_lists().1.push(request::header(name, value));
        self
    }

    /// Adds a header value next to existing ones.
    fn append_header(mut self, name: &str, value: impl Into<Vec<u8>>) -> Self {
        self.header_lists().2.push(request::header(name, value));
        self
    }

    /// Removes a header.
    fn remove_header(mut self, name: &str) -> Self {
        self.header_lists().0.push(name.to_ascii_lowercase());
        self
    }
}

/// Everything a filter usually needs: `use weir_plugin_sdk::prelude::*;`.
pub mod prelude {
    pub use crate::{
        Filter, HeaderChanges, Phase, Request, RequestChanges, RequestDecision, Response,
        ResponseChanges, ResponseDecision, ResponseView, export_filter,
    };
}
