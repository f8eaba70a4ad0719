//! `kv`: the shared key/value store, namespaced per plugin.

use std::sync::Arc;

use super::{HostState, state_error, ttl};
use crate::plugin::bindings::weir::gateway::kv::Host;
use crate::plugin::bindings::weir::gateway::types::HostError;
use crate::state::StateBackend;

type KvResult<T> = wasmtime::Result<Result<T, HostError>>;

impl HostState {
    /// The backend and the namespaced key, if the plugin holds the `kv` grant.
    fn kv(&self, key: &str) -> Result<(Arc<dyn StateBackend>, String), HostError> {
        if !self.caller.grants.kv {
            return Err(HostError::AccessDenied);
        }
        Ok((self.caller.services.state.clone(), self.namespaced(key)))
    }
}

impl Host for HostState {
    #[tracing::instrument(name = "weir.kv.get", level = "trace", skip_all)]
    async fn get(&mut self, key: String) -> KvResult<Option<Vec<u8>>> {
        let access = self.kv(&key);
        Ok(async move {
            let (state, key) = access?;
            state.get(&key).await.map_err(state_error)
        }
        .await)
    }

    #[tracing::instrument(name = "weir.kv.set", level = "trace", skip_all)]
    async fn set(&mut self, key: String, value: Vec<u8>, ttl_ms: Option<u64>) -> KvResult<()> {
        let access = self.kv(&key);
        Ok(async move {
            let (state, key) = access?;
            state
                .set(&key, value, ttl(ttl_ms))
                .await
                .map_err(state_error)
        }
        .await)
    }

    #[tracing::instrument(name = "weir.kv.delete", level = "trace", skip_all)]
    async fn delete(&mut self, key: String) -> KvResult<bool> {
        let access = self.kv(&key);
        Ok(async move {
            let (state, key) = access?;
            state.delete(&key).await.map_err(state_error)
        }
        .await)
    }

    #[tracing::instrument(name = "weir.kv.incr", level = "trace", skip_all)]
    async fn incr(&mut self, key: String, delta: i64, ttl_ms: Option<u64>) -> KvResult<i64> {
        let access = self.kv(&key);
        Ok(async move {
            let (state, key) = access?;
            state
                .incr(&key, delta, ttl(ttl_ms))
                .await
                .map_err(state_error)
        }
        .await)
    }

    #[tracing::instrument(name = "weir.kv.set_if_absent", level = "trace", skip_all)]
    async fn set_if_absent(
        &mut self,
        key: String,
        value: Vec<u8>,
        ttl_ms: Option<u64>,
    ) -> KvResult<bool> {
        let access = self.kv(&key);
        Ok(async move {
            let (state, key) = access?;
            state
                .set_if_absent(&key, value, ttl(ttl_ms))
                .await
                .map_err(state_error)
        }
        .await)
    }
}
