//! `cache`: the gateway's response cache, in the filter's namespace. A fill's wait on
//! another request is excused from the call's budget and wall-clock stop (it is not the
//! filter's work), and bounded by `cache.max_wait_ms`.

use std::time::Duration;

use bytes::Bytes;

use super::HostState;
use crate::http_cache::{CacheError, Fill as Filled};
use crate::plugin::bindings::weir::gateway::cache::{Host, Turn};
use crate::plugin::bindings::weir::gateway::types::HostError;

/// A denied call of the interfaces that have no error result: a trap, as for `log`.
fn denied() -> wasmtime::Error {
    wasmtime::Error::msg("the plugin was not granted `cache`")
}

impl HostState {
    /// The filter's cache namespace, if it holds the `cache` grant.
    fn cache_scope(&self) -> wasmtime::Result<()> {
        if self.caller.grants.cache {
            Ok(())
        } else {
            Err(denied())
        }
    }
}

fn host_error(e: CacheError) -> HostError {
    match e {
        CacheError::Unavailable(m) => HostError::Unavailable(m),
        CacheError::Invalid(m) => HostError::Invalid(m),
    }
}

impl Host for HostState {
    async fn get(&mut self, key: String) -> wasmtime::Result<Option<Vec<u8>>> {
        self.cache_scope()?;
        let (cache, ns) = (&self.caller.services.cache, &self.caller.grants.namespace);
        Ok(cache.get(ns, &key).await.map(|v| v.to_vec()))
    }

    async fn fill(&mut self, key: String, wait_ms: u32) -> wasmtime::Result<Turn> {
        self.cache_scope()?;
        let caller = self.caller.clone();
        let cache = &caller.services.cache;
        let wait = Duration::from_millis(wait_ms.into()).min(cache.max_wait());
        let fill = cache.fill(&caller.grants.namespace, &key, &self.request_id, wait);
        Ok(match self.budget.excuse(wait, fill).await {
            Filled::Lead => Turn::Lead,
            Filled::Filled(value) => Turn::Filled(value.to_vec()),
            Filled::Pass => Turn::Pass,
        })
    }

    async fn put(
        &mut self,
        key: String,
        value: Vec<u8>,
        ttl_ms: u64,
    ) -> wasmtime::Result<Result<(), HostError>> {
        self.cache_scope()?;
        let (cache, ns) = (&self.caller.services.cache, &self.caller.grants.namespace);
        let ttl = Duration::from_millis(ttl_ms);
        let stored = cache.put(ns, (&key, &self.request_id), Bytes::from(value), ttl);
        Ok(stored.await.map_err(host_error))
    }

    async fn release(&mut self, key: String, pass_ms: u32) -> wasmtime::Result<()> {
        self.cache_scope()?;
        let (cache, ns) = (&self.caller.services.cache, &self.caller.grants.namespace);
        let pass = Duration::from_millis(pass_ms.into());
        cache.release(ns, &key, &self.request_id, pass);
        Ok(())
    }

    async fn delete(&mut self, key: String) -> wasmtime::Result<Result<bool, HostError>> {
        self.cache_scope()?;
        let (cache, ns) = (&self.caller.services.cache, &self.caller.grants.namespace);
        Ok(cache.delete(ns, &key).await.map_err(host_error))
    }
}
