//! `log`: plugin log lines into `tracing`, tagged with the plugin and the request id.

use super::HostState;
use crate::plugin::bindings::weir::gateway::log::{Host, Level};

impl Host for HostState {
    fn log(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        if !self.caller.grants.log {
            wasmtime::bail!(
                "plugin {} called log without the `log` grant",
                self.caller.plugin
            );
        }
        let plugin = self.caller.plugin.as_str();
        let request_id = self.request_id.as_str();
        match level {
            Level::Trace => {
                tracing::trace!(target: "weir::plugin", plugin, request_id, "{message}")
            }
            Level::Debug => {
                tracing::debug!(target: "weir::plugin", plugin, request_id, "{message}")
            }
            Level::Info => tracing::info!(target: "weir::plugin", plugin, request_id, "{message}"),
            Level::Warn => tracing::warn!(target: "weir::plugin", plugin, request_id, "{message}"),
            Level::Error => {
                tracing::error!(target: "weir::plugin", plugin, request_id, "{message}")
            }
        }
        Ok(())
    }
}
