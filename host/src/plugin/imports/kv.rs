//! `kv`: the shared key/value store, namespaced per plugin.

use super::{HostState, state_error, ttl};
use crate::plugin::bindings::weir::gateway::kv::Host;
use crate::plugin::bindings::weir::gateway::types::HostError;

type KvResult<T> = wasmtime::Result<Result<T, HostError>>;

impl Host for HostState {
    #[tracing::instrument(name = "weir.kv.get", level = "trace", skip_all)]
    async fn get(&mut self, key: String) -> KvResult<Option<Vec<u8>>> {
        if !self.caller.grants.kv {
            return Ok(Err(HostError::AccessDenied));
        }
        let key = self.namespaced(&key);
        Ok(self
            .caller
            .services
            .state
            .get(&key)
            .await
            .map_err(state_error))
    }

    #[tracing::instrument(name = "weir.kv.set", level = "trace", skip_all)]
    async fn set(&mut self, key: String, value: Vec<u8>, ttl_ms: Option<u64>) -> KvResult<()> {
        if !self.caller.grants.kv {
            return Ok(Err(HostError::AccessDenied));
        }
        let key = self.namespaced(&key);
        Ok(self
            .caller
            .services
            .state
            .set(&key, value, ttl(ttl_ms))
            .await
            .map_err(state_error))
    }

    #[tracing::instrument(name = "weir.kv.delete", level = "trace", skip_all)]
    async fn delete(&mut self, key: String) -> KvResult<bool> {
        if !self.caller.grants.kv {
            return Ok(Err(HostError::AccessDenied));
        }
        let key = self.namespaced(&key);
        Ok(self
            .caller
            .services
            .state
            .delete(&key)
            .await
            .map_err(state_error))
    }

    #[tracing::instrument(name = "weir.kv.incr", level = "trace", skip_all)]
    async fn incr(&mut self, key: String, delta: i64, ttl_ms: Option<u64>) -> KvResult<i64> {
        if !self.caller.grants.kv {
            return Ok(Err(HostError::AccessDenied));
        }
        let key = self.namespaced(&key);
        Ok(self
            .caller
            .services
            .state
            .incr(&key, delta, ttl(ttl_ms))
            .await
            .map_err(state_error))
    }

    #[tracing::instrument(name = "weir.kv.set_if_absent", level = "trace", skip_all)]
    async fn set_if_absent(
        &mut self,
        key: String,
        value: Vec<u8>,
        ttl_ms: Option<u64>,
    ) -> KvResult<bool> {
        if !self.caller.grants.kv {
            return Ok(Err(HostError::AccessDenied));
        }
        let key = self.namespaced(&key);
        Ok(self
            .caller
            .services
            .state
            .set_if_absent(&key, value, ttl(ttl_ms))
            .await
            .map_err(state_error))
    }
}
