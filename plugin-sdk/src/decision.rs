//! What a filter decides in each phase, and how the decision reaches the gateway.

use crate::bindings::weir::gateway::types as wit;
use crate::{Request, RequestChanges, Response, ResponseChanges};

/// What a filter decides about a request.
#[derive(Debug, Clone)]
pub enum RequestDecision {
    /// Go on with these changes.
    Continue(RequestChanges),
    /// Answer the client now.
    Respond(Response),
}

impl RequestDecision {
    /// Go on unchanged.
    pub fn proceed() -> Self {
        Self::Continue(RequestChanges::new())
    }

    /// The changes, when the request goes on.
    pub fn changes(&self) -> Option<&RequestChanges> {
        match self {
            Self::Continue(changes) => Some(changes),
            Self::Respond(_) => None,
        }
    }

    /// The answer, when the filter answers the client.
    pub fn response(&self) -> Option<&Response> {
        match self {
            Self::Continue(_) => None,
            Self::Respond(response) => Some(response),
        }
    }

    /// The answer given when a request reaches an instance that was never configured,
    /// which the gateway never does; kept total so that the export cannot panic.
    #[doc(hidden)]
    pub fn not_configured() -> Self {
        Self::Respond(Response::json(500, r#"{"error":"filter_not_configured"}"#))
    }

    /// The decision as the gateway takes it. A new method is set on the request handle
    /// (the one change that is not part of the mutations record); a method the gateway
    /// refuses becomes a 500, as the filter cannot go on as it meant to.
    #[doc(hidden)]
    pub fn into_action(self, request: &Request<'_>) -> wit::RequestAction {
        match self {
            RequestDecision::Continue(changes) => {
                if let Some(method) = &changes.method
                    && let Err(message) = request.handle.set_method(method.as_str())
                {
                    return wit::RequestAction::Respond(
                        Response::error(500, "filter_failed", &message, request).into(),
                    );
                }
                wit::RequestAction::Continue(changes.inner)
            }
            RequestDecision::Respond(response) => wit::RequestAction::Respond(response.into()),
        }
    }
}

/// What a filter decides about a response.
#[derive(Debug, Clone)]
pub enum ResponseDecision {
    /// Send it on with these changes.
    Continue(ResponseChanges),
    /// Send this response instead.
    Replace(Response),
}

impl ResponseDecision {
    /// Send it on unchanged.
    pub fn proceed() -> Self {
        Self::Continue(ResponseChanges::new())
    }

    /// The changes, when the response goes on.
    pub fn changes(&self) -> Option<&ResponseChanges> {
        match self {
            Self::Continue(changes) => Some(changes),
            Self::Replace(_) => None,
        }
    }

    /// The replacement, when the filter replaces the response.
    pub fn response(&self) -> Option<&Response> {
        match self {
            Self::Continue(_) => None,
            Self::Replace(response) => Some(response),
        }
    }
}

impl From<ResponseDecision> for wit::ResponseAction {
    fn from(decision: ResponseDecision) -> Self {
        match decision {
            ResponseDecision::Continue(changes) => wit::ResponseAction::Continue(changes.inner),
            ResponseDecision::Replace(response) => wit::ResponseAction::Replace(response.into()),
        }
    }
}
