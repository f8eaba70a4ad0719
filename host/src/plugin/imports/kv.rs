//! `kv`: the shared key/value store, in the namespace the config gave the filter (its
//! plugin file, or its `namespace`), held to the namespace's quotas by the backend.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Caller, HostState, state_error, ttl};
use crate::plugin::bindings::weir::gateway::kv::Host;
use crate::plugin::bindings::weir::gateway::types::HostError;
use crate::state::Key;

type KvResult<T> = wasmtime::Result<Result<T, HostError>>;

/// The least a state call may wait, however little of the filter's budget is left.
const MIN_STATE_WAIT: Duration = Duration::from_millis(1);

impl HostState {
    /// The calling filter, and by when a state call must be answered: within half of
    /// what is left of the call's budget, so that a shared backend slower than that is
    /// treated as down (and the outage policy answers) while the plugin still has time
    /// to act on the answer.
    pub(super) fn state_scope(&self) -> (Arc<Caller>, Instant) {
        let wait = (self.budget.left() / 2).max(MIN_STATE_WAIT);
        (self.caller.clone(), Instant::now() + wait)
    }

    /// The calling filter if it holds the `kv` grant, and the answer deadline.
    fn kv(&self) -> Result<(Arc<Caller>, Instant), HostError> {
        let (caller, answer_by) = self.state_scope();
        if !caller.grants.kv {
            return Err(HostError::AccessDenied);
        }
        Ok((caller, answer_by))
    }
}

/// `name` in the filter's namespace.
pub(super) fn key<'a>(caller: &'a Caller, name: &'a str, answer_by: Instant) -> Key<'a> {
    Key::new(&caller.grants.namespace, name).answer_by(answer_by)
}

/// Answers a `kv` call: the grant checked, `$name` put in the filter's namespace as
/// `$key`, `$call` run on the backend `$state`, its error turned into the plugin's.
macro_rules! kv_call {
    ($self:ident, $name:expr, |$state:ident, $key:ident| $call:expr) => {{
        let (caller, by) = match $self.kv() {
            Ok(scope) => scope,
            Err(e) => return Ok(Err(e)),
        };
        let $key = key(&caller, &$name, by);
        let $state = &caller.services.state;
        Ok($call.await.map_err(state_error))
    }};
}

impl Host for HostState {
    async fn get(&mut self, name: String) -> KvResult<Option<Vec<u8>>> {
        kv_call!(self, name, |state, key| state.get(key))
    }

    async fn set(&mut self, name: String, value: Vec<u8>, ttl_ms: Option<u64>) -> KvResult<()> {
        kv_call!(self, name, |state, key| state.set(key, value, ttl(ttl_ms)))
    }

    async fn delete(&mut self, name: String) -> KvResult<bool> {
        kv_call!(self, name, |state, key| state.delete(key))
    }

    async fn incr(&mut self, name: String, delta: i64, ttl_ms: Option<u64>) -> KvResult<i64> {
        kv_call!(self, name, |state, key| state.incr(key, delta, ttl(ttl_ms)))
    }

    /// Refused (`unavailable`) while a shared backend is down, whatever its outage
    /// policy: the answer must hold on every instance (replay nonces).
    async fn set_if_absent(
        &mut self,
        name: String,
        value: Vec<u8>,
        ttl_ms: Option<u64>,
    ) -> KvResult<bool> {
        kv_call!(self, name, |state, key| state.set_if_absent(
            key,
            value,
            ttl(ttl_ms)
        ))
    }
}
