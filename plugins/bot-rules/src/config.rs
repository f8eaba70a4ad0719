//! The filter's config, as operators write it, and its validation into [`Settings`].

use serde::Deserialize;
use weir_plugin_sdk::client_ip::TrustedProxies;
use weir_plugin_sdk::duration;

use crate::agent::AgentRules;
use crate::budget::{Budget, Escalation};

/// The config as written in the gateway config.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// User-Agent patterns refused (regular expressions, any case).
    #[serde(default)]
    pub deny_user_agents: Vec<String>,
    /// User-Agent patterns exempt from the agent and header rules (known monitors).
    #[serde(default)]
    pub allow_user_agents: Vec<String>,
    /// Headers a request must carry; `"browser"` stands for the ones every browser sends.
    #[serde(default)]
    pub require_headers: Vec<String>,
    /// Refuse a request without a User-Agent, or with an empty one (default true).
    #[serde(default = "yes")]
    pub deny_empty_user_agent: bool,
    /// The per-client budget (grant `limits`).
    pub budget: Option<BudgetConfig>,
    /// Escalation of budget refusals to a temporary deny (grant `kv`).
    pub escalation: Option<EscalationConfig>,
    /// Proxies whose `X-Forwarded-For` is believed (CIDRs or addresses; default none).
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// Budgets, strikes and denies are shared by the routes that give the same namespace
    /// (default: the route).
    pub namespace: Option<String>,
    /// When `limits` or `kv` is unavailable: `deny` answers 503 (the default), `allow`
    /// lets the request through.
    #[serde(default)]
    pub on_unavailable: OnUnavailable,
}

/// `limit` requests per `window` per client.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetConfig {
    /// Requests per window.
    pub limit: u64,
    /// The window, in the SDK's duration format (`10s`, `1m`).
    pub window: String,
}

/// After `strikes` budget refusals within `window`, a deny for `deny_for`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalationConfig {
    /// Budget refusals that start a deny (default 5).
    #[serde(default = "default_strikes")]
    pub strikes: u32,
    /// The window the strikes are counted in (default `10m`).
    #[serde(default = "default_strike_window")]
    pub window: String,
    /// How long a deny lasts (default `15m`).
    #[serde(default = "default_deny_for")]
    pub deny_for: String,
}

/// What to do when a host interface cannot answer.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnUnavailable {
    /// 503 `bot_rules_unavailable` with `Retry-After`.
    #[default]
    Deny,
    /// Let the request through unjudged by budget and deny.
    Allow,
}

fn yes() -> bool {
    true
}

fn default_strikes() -> u32 {
    5
}

fn default_strike_window() -> String {
    "10m".into()
}

fn default_deny_for() -> String {
    "15m".into()
}

/// The validated config.
pub struct Settings {
    /// The User-Agent and header rules.
    pub agent: AgentRules,
    /// The budget, if any.
    pub budget: Option<Budget>,
    /// The escalation, if any (only with a budget).
    pub escalation: Option<Escalation>,
    /// Trusted proxies for the client IP.
    pub trusted: TrustedProxies,
    /// The key namespace (`None`: the route).
    pub namespace: Option<String>,
    /// The outage policy.
    pub on_unavailable: OnUnavailable,
}

impl Settings {
    /// Validates `config`; an error names the key at fault.
    pub fn from_config(config: Config) -> Result<Self, String> {
        let agent = AgentRules::new(
            &config.deny_user_agents,
            &config.allow_user_agents,
            &config.require_headers,
            config.deny_empty_user_agent,
        )?;
        let budget = config
            .budget
            .map(|b| {
                let window = positive_ms("budget.window", &b.window)?;
                Budget::new(b.limit, window).map_err(|e| format!("budget.{e}"))
            })
            .transpose()?;
        let escalation = match (config.escalation, &budget) {
            (None, _) => None,
            (Some(_), None) => {
                return Err("escalation: give a budget, whose refusals it counts".into());
            }
            (Some(e), Some(_)) => {
                if e.strikes == 0 {
                    return Err("escalation.strikes must be at least 1".into());
                }
                Some(Escalation {
                    strikes: e.strikes,
                    window_ms: positive_ms("escalation.window", &e.window)?,
                    deny_for_ms: positive_ms("escalation.deny_for", &e.deny_for)?,
                })
            }
        };
        if agent.is_empty() && budget.is_none() {
            return Err(
                "give deny_user_agents, require_headers, deny_empty_user_agent or a \
                        budget: an empty filter refuses nothing"
                    .into(),
            );
        }
        Ok(Self {
            agent,
            budget,
            escalation,
            trusted: TrustedProxies::parse(&config.trusted_proxies)?,
            namespace: config.namespace,
            on_unavailable: config.on_unavailable,
        })
    }
}

/// A duration of at least 1 ms, in milliseconds; `key` names it in the error.
fn positive_ms(key: &str, text: &str) -> Result<u64, String> {
    let ms = duration::parse(text).map(duration::millis);
    match ms {
        Ok(0) => Err(format!("{key} must be at least 1ms")),
        Ok(ms) => Ok(ms),
        Err(e) => Err(format!("{key}: {e}")),
    }
}
