//! `gray-release`: splits a route's traffic between a stable and a canary upstream by
//! weight, sticky per user. A sticky key (a header, a cookie, the consumer, the client's
//! address) is hashed with the rollout's salt to one of 10,000 buckets; the buckets below
//! the weight (in basis points) go to the canary, so that raising the weight moves only
//! stable users, never a canary user back. An override header or cookie (`stable` or
//! `canary`) and a list of canary consumers decide before the weight does. The side is
//! told in the `gray.side` variable and, when configured, a response header.
//!
//! ```json
//! { "canary": "app-v2", "weight": 5, "sticky": "cookie:uid",
//!   "override": { "header": "x-gray", "cookie": "gray" },
//!   "canary_consumers": ["qa-team"], "response_header": "x-weir-gray" }
//! ```
//! See `docs/plugins/gray-release.md`.

mod bucket;
mod config;
#[cfg(test)]
mod tests;

use weir_plugin_sdk::prelude::*;

use crate::config::{Config, Settings, Sticky, Unkeyed};

/// The variable that tells later filters and the access log the side.
pub const SIDE_VARIABLE: &str = "gray.side";
/// The variable that tells what decided the side.
pub const REASON_VARIABLE: &str = "gray.reason";

/// A side of the split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The stable upstream.
    Stable,
    /// The canary upstream.
    Canary,
}

impl Side {
    /// `stable` or `canary`: the value of the variable and the response header.
    pub fn name(self) -> &'static str {
        match self {
            Self::Stable => "stable",
            Self::Canary => "canary",
        }
    }

    /// The side an override value names (`stable` or `canary`, in any case).
    fn named(value: &str) -> Option<Self> {
        let value = value.trim();
        [Self::Stable, Self::Canary]
            .into_iter()
            .find(|side| value.eq_ignore_ascii_case(side.name()))
    }
}

/// What decided a request's side, in the order they are asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The override header.
    Header,
    /// The override cookie.
    Cookie,
    /// The consumer is in `canary_consumers`.
    Consumer,
    /// The sticky key's bucket against the weight.
    Weight,
    /// No sticky key: `unkeyed` decided.
    Unkeyed,
}

impl Reason {
    /// The value of the `gray.reason` variable.
    pub fn name(self) -> &'static str {
        match self {
            Self::Header => "header",
            Self::Cookie => "cookie",
            Self::Consumer => "consumer",
            Self::Weight => "weight",
            Self::Unkeyed => "unkeyed",
        }
    }
}

struct GrayRelease {
    settings: Settings,
}

impl GrayRelease {
    /// The side of `request` and what decided it.
    fn decide(&self, request: &Request) -> (Side, Reason) {
        let s = &self.settings;
        let forced = |value: Option<String>| value.as_deref().and_then(Side::named);
        if let Some(side) = s
            .override_header
            .as_ref()
            .and_then(|h| forced(request.header(h)))
        {
            return (side, Reason::Header);
        }
        if let Some(side) = (s.override_cookie.as_ref()).and_then(|c| forced(cookie(request, c))) {
            return (side, Reason::Cookie);
        }
        // A host call: made only when consumers are listed.
        let listed =
            || (request.variable("consumer")).is_some_and(|c| s.canary_consumers.contains(&c));
        if !s.canary_consumers.is_empty() && listed() {
            return (Side::Canary, Reason::Consumer);
        }
        let (key, reason) = match self.sticky_key(request) {
            Some(key) => (key, Reason::Weight),
            None if s.unkeyed == Unkeyed::Random => {
                (request.request_id().as_bytes().to_vec(), Reason::Unkeyed)
            }
            None => return (Side::Stable, Reason::Unkeyed),
        };
        match bucket::on_canary(bucket::bucket(s.seed, &key), s.weight) {
            true => (Side::Canary, reason),
            false => (Side::Stable, reason),
        }
    }

    /// The request's sticky key, if it has one (an empty value is none).
    fn sticky_key(&self, request: &Request) -> Option<Vec<u8>> {
        let key = match &self.settings.sticky {
            Sticky::Header(name) => request.header_bytes(name),
            Sticky::Cookie(name) => cookie(request, name).map(String::into_bytes),
            Sticky::Consumer => request.variable("consumer").map(String::into_bytes),
            Sticky::ClientIp => (self.settings.trusted.of(request))
                .map(|ip| ip.to_canonical().to_string().into_bytes()),
        };
        key.filter(|k| !k.is_empty())
    }

    /// The upstream of `side`; `None` for the route's own.
    fn upstream(&self, side: Side) -> Option<&str> {
        match side {
            Side::Canary => Some(&self.settings.canary),
            Side::Stable => self.settings.stable.as_deref(),
        }
    }
}

/// The value of the cookie `name` in the request's `Cookie` fields (RFC 6265 §5.4:
/// `a=1; b=2`, possibly on several lines), without the optional double quotes.
fn cookie(request: &Request, name: &str) -> Option<String> {
    let lines = request.header_all("cookie");
    let pairs = (lines.iter())
        .filter_map(|line| std::str::from_utf8(line).ok())
        .flat_map(|line| line.split(';'))
        .filter_map(|pair| pair.split_once('='));
    pairs
        .map(|(k, v)| (k.trim(), v.trim()))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"').to_string())
}

impl Filter for GrayRelease {
    type Config = Config;
    const NAME: &'static str = "gray-release";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const PHASES: &'static [Phase] = &[Phase::RequestHeaders];

    fn new(config: Config) -> Result<Self, String> {
        Ok(Self {
            settings: Settings::from_config(config)?,
        })
    }

    fn on_request(&self, request: &Request) -> RequestDecision {
        let (side, reason) = self.decide(request);
        let mut changes = RequestChanges::new()
            .set_variable(SIDE_VARIABLE, side.name())
            .set_variable(REASON_VARIABLE, reason.name());
        if let Some(upstream) = self.upstream(side) {
            changes = changes.set_upstream(upstream);
        }
        if let Some(header) = &self.settings.response_header {
            changes = changes.set_response_header(header, side.name());
        }
        RequestDecision::Continue(changes)
    }
}

export_filter!(GrayRelease);
