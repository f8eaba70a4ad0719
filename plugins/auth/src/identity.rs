//! Who a request was authenticated as, and how.

/// An authentication method, as named in the `auth.method` variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// An API key in a header or a query parameter.
    ApiKey,
    /// HTTP Basic (RFC 7617).
    Basic,
    /// A signed JWT bearer token (RFC 7519).
    Jwt,
    /// An opaque bearer token checked by OAuth2 introspection (RFC 7662).
    OAuth2,
}

impl Method {
    /// The value of the `auth.method` variable.
    pub fn name(self) -> &'static str {
        match self {
            Self::ApiKey => "api_key",
            Self::Basic => "basic",
            Self::Jwt => "jwt",
            Self::OAuth2 => "oauth2",
        }
    }
}

/// An authenticated consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The consumer id (`x-consumer-id`, the `consumer` variable).
    pub id: String,
    /// A human-readable name, when the method knows one.
    pub username: Option<String>,
    /// Granted scopes, space-separated (tokens only).
    pub scope: Option<String>,
}

impl Identity {
    /// A consumer known only by its id.
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            username: None,
            scope: None,
        }
    }
}
