//! `limits`: the atomic rate-limit primitive, in the namespace the config gave the filter
//! (its plugin file, or its `namespace`).

use super::{HostState, state_error};
use crate::plugin::bindings::weir::gateway::limits::{Algorithm, Decision, Host, Policy};
use crate::plugin::bindings::weir::gateway::types::HostError;
use crate::state::{self, RatePolicy};

impl Host for HostState {
    async fn take(
        &mut self,
        key: String,
        policy: Policy,
        cost: u32,
    ) -> wasmtime::Result<Result<Decision, HostError>> {
        if !self.caller.grants.limits {
            return Ok(Err(HostError::AccessDenied));
        }
        if policy.window_ms == 0 {
            return Ok(Err(HostError::Invalid(
                "window-ms must be at least 1".into(),
            )));
        }
        let policy = RatePolicy {
            algorithm: match policy.algorithm {
                Algorithm::TokenBucket => state::Algorithm::TokenBucket,
                Algorithm::SlidingWindow => state::Algorithm::SlidingWindow,
                Algorithm::FixedWindow => state::Algorithm::FixedWindow,
            },
            limit: policy.limit,
            window_ms: policy.window_ms,
        };
        let (caller, answer_by) = self.state_scope();
        let key = super::kv::key(&caller, &key, answer_by);
        let decision = caller
            .services
            .state
            .take(key, policy, u64::from(cost))
            .await;
        Ok(decision.map_err(state_error).map(|d| Decision {
            allowed: d.allowed,
            remaining: d.remaining,
            reset_ms: d.reset_ms,
            retry_after_ms: d.retry_after_ms,
        }))
    }
}
