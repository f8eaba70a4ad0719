//! The trait a filter implements.

use crate::{Phase, Request, RequestDecision, ResponseDecision, ResponseView};

/// A gateway filter. One value is created per Wasm instance by [`Filter::new`] from the
/// filter's config, and then serves many requests, one at a time.
pub trait Filter: Sized + 'static {
    /// The filter's config, deserialised from the JSON in the gateway config.
    type Config: serde::de::DeserializeOwned;
    /// Short, stable name shown in logs, metrics and the admin API.
    const NAME: &'static str;
    /// The filter's version.
    const VERSION: &'static str;
    /// The phases the gateway should call this filter in.
    const PHASES: &'static [Phase];

    /// The phases for this configured filter; by default [`Filter::PHASES`]. Override it to
    /// skip phases the config leaves unused: each skipped phase is a call saved per request.
    fn phases(&self) -> Vec<Phase> {
        Self::PHASES.to_vec()
    }

    /// Builds the filter from its config. An error refuses the plugin with that message.
    fn new(config: Self::Config) -> Result<Self, String>;

    /// Called for each request when [`Phase::RequestHeaders`] or [`Phase::RequestBody`] is
    /// declared. The default lets the request through unchanged.
    fn on_request(&self, _request: &Request<'_>) -> RequestDecision {
        RequestDecision::proceed()
    }

    /// Called for each response when [`Phase::ResponseHeaders`] or [`Phase::ResponseBody`]
    /// is declared. The default lets the response through unchanged.
    fn on_response(
        &self,
        _request: &Request<'_>,
        _response: &ResponseView<'_>,
    ) -> ResponseDecision {
        ResponseDecision::proceed()
    }
}
