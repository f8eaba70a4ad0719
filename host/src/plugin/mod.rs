//! The Wasm plugin runtime: one engine for the process, plugins compiled off the reactor
//! and cached on disk, warm instance pools per configured filter, and the host interfaces
//! a plugin may be granted.

pub mod bindings;
mod engine;
mod imports;
mod instance;
mod loader;
mod view;

pub use engine::PluginRuntime;
pub use imports::{Grants, HostServices};
pub use instance::{FailureKind, FilterFailure, FilterSettings, FilterSlot, Phases};
pub use loader::{LoadedPlugin, PluginInfo, content_hash};
pub use view::{RequestView, ResponseView};
