//! The per-client budget (the `limits` interface) and its escalation: budget refusals
//! counted as strikes in `kv`, and a deny stored in `kv` that expires by itself.

use weir_plugin_sdk::HostError;
use weir_plugin_sdk::host::kv;
use weir_plugin_sdk::host::limits::{self, Algorithm, Policy};

/// `limit` requests per window per client, counted in a sliding window (no burst at a
/// window's edge).
#[derive(Debug)]
pub struct Budget {
    policy: Policy,
}

impl Budget {
    /// A budget of `limit` per `window_ms`.
    pub fn new(limit: u64, window_ms: u64) -> Result<Self, String> {
        if limit == 0 {
            return Err("limit must be at least 1".into());
        }
        Ok(Self {
            policy: Policy {
                algorithm: Algorithm::SlidingWindow,
                limit,
                window_ms,
            },
        })
    }
}

/// After `strikes` budget refusals within `window_ms` of the first, a deny of
/// `deny_for_ms`.
#[derive(Debug)]
pub struct Escalation {
    /// Refusals that start a deny.
    pub strikes: u32,
    /// The window the strikes are counted in, from the first.
    pub window_ms: u64,
    /// How long a deny lasts.
    pub deny_for_ms: u64,
}

/// What the budget says of a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Within the budget.
    Pass,
    /// Over it: retry after this many seconds.
    OverBudget(u64),
    /// The client is denied for a while.
    Denied,
}

/// The keys of one client in one namespace.
pub struct Keys {
    budget: String,
    strikes: String,
    deny: String,
}

impl Keys {
    /// The keys of `client` in `namespace` (the gateway prefixes them with the plugin).
    pub fn new(namespace: &str, client: &str) -> Self {
        Self {
            budget: format!("{namespace}/budget/{client}"),
            strikes: format!("{namespace}/strikes/{client}"),
            deny: format!("{namespace}/deny/{client}"),
        }
    }
}

/// Judges one request: a client under a deny is refused without spending its budget;
/// otherwise the request takes one unit, and a refusal is a strike that may start a deny
/// (the strikes start over then).
pub fn judge(
    budget: &Budget,
    escalation: Option<&Escalation>,
    keys: &Keys,
) -> Result<Verdict, HostError> {
    if escalation.is_some() && kv::get(&keys.deny)?.is_some() {
        return Ok(Verdict::Denied);
    }
    let decision = limits::take(&keys.budget, budget.policy, 1)?;
    if decision.allowed {
        return Ok(Verdict::Pass);
    }
    if let Some(escalation) = escalation {
        let strikes = kv::incr(&keys.strikes, 1, Some(escalation.window_ms))?;
        if strikes >= i64::from(escalation.strikes) {
            kv::set(&keys.deny, b"1", Some(escalation.deny_for_ms))?;
            kv::delete(&keys.strikes)?;
        }
    }
    Ok(Verdict::OverBudget(
        decision.retry_after_ms.div_ceil(1000).max(1),
    ))
}
