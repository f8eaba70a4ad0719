//! `secrets`: named secrets, each visible only to the plugins granted it by name.

use super::HostState;
use crate::plugin::bindings::weir::gateway::secrets::Host;
use crate::plugin::bindings::weir::gateway::types::HostError;

impl Host for HostState {
    fn get(&mut self, name: String) -> wasmtime::Result<Result<Option<Vec<u8>>, HostError>> {
        if !self.caller.grants.secrets.contains(&name) {
            return Ok(Err(HostError::AccessDenied));
        }
        Ok(Ok(self.caller.services.secrets.get(&name).cloned()))
    }
}
