//! The Wasm plugin runtime: one engine for the process, plugins compiled off the reactor
//! and cached on disk (authenticated), warm instance pools per configured filter under a
//! gateway-wide budget, calls under a deadline and a wall-clock stop with bounded results,
//! back-off of failing filters, push routers (the `push-router` world) beside filters,
//! and the host interfaces a plugin may be granted.

mod action;
mod backoff;
mod bindings;
mod budget;
mod cache;
mod call;
mod context;
mod engine;
mod failure;
mod grants;
mod idle;
mod imports;
mod loader;
mod memory;
mod pool;
mod results;
mod router;
mod slot;
mod view;

pub use action::{
    HeaderEdits, RequestAction, RequestChanges, ResponseAction, ResponseChanges, strip_length,
};
pub use backoff::BackoffStatus;
pub use call::CallLimits;
pub use engine::PluginRuntime;
pub use failure::{FailureKind, FilterFailure};
pub use grants::{Grant, Grants};
pub use imports::HostServices;
pub use loader::{LoadedPlugin, PluginInfo, PluginKind, content_hash};
pub use router::RouterSlot;
pub use slot::{FilterSettings, FilterSlot, Phases};
pub use view::{RequestView, ResponseView, Variables};

/// The prefix of filters' private contexts among the variables (never logged or shown).
pub const CONTEXT_PREFIX: &str = context::PREFIX;

/// The contract plugins are built against: the WIT package and its version (`wit/`).
pub const CONTRACT: &str = "weir:gateway@0.2.3";

#[cfg(test)]
mod contract_tests {
    #[test]
    fn the_contract_is_the_wit_package() {
        let wit = include_str!("../../../wit/world.wit");
        let package = format!("package {};", super::CONTRACT);
        assert!(
            wit.lines().any(|line| line == package),
            "wit/world.wit: not {package}"
        );
    }
}
