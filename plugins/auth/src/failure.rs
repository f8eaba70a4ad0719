//! Why a request was refused, and the response that says so: the gateway's JSON error
//! shape with a stable code, and the `WWW-Authenticate` challenges of the methods involved.

use weir_plugin_sdk::prelude::*;

use crate::identity::Method;

/// A refused request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// No credential of an enabled method was presented.
    Missing,
    /// The API key is unknown.
    InvalidApiKey,
    /// The Basic user name or password is wrong, or the header is malformed.
    InvalidCredentials,
    /// The bearer token was refused; the text is its RFC 6750 `error_description`.
    InvalidToken(&'static str),
    /// The token's `exp` has passed.
    TokenExpired,
    /// The consumer is known but not allowed on this route.
    Forbidden,
    /// The identity provider (JWKS or introspection endpoint) could not be asked.
    Unavailable(&'static str),
}

/// What the challenges say: the realm and the methods enabled on the route.
pub struct Challenges {
    realm: String,
    methods: Vec<Method>,
}

impl Challenges {
    /// Challenges for `methods` in `realm` (already checked to need no escaping).
    pub fn new(realm: String, methods: Vec<Method>) -> Self {
        Self { realm, methods }
    }

    /// The response for `failure`.
    pub fn respond(&self, failure: &Failure, request: &Request) -> Response {
        let (status, code, message): (u16, &str, &str) = match failure {
            Failure::Missing => (401, "missing_credentials", "credentials are required"),
            Failure::InvalidApiKey => (401, "invalid_api_key", "the API key is not valid"),
            Failure::InvalidCredentials => (
                401,
                "invalid_credentials",
                "the user name or password is not valid",
            ),
            Failure::InvalidToken(why) => (401, "invalid_token", why),
            Failure::TokenExpired => (401, "token_expired", "the token has expired"),
            Failure::Forbidden => (
                403,
                "consumer_forbidden",
                "the consumer may not use this route",
            ),
            Failure::Unavailable(why) => (503, "auth_unavailable", why),
        };
        let mut response = Response::error(status, code, message, request);
        for challenge in self.challenges(failure) {
            response = response.header("www-authenticate", challenge);
        }
        response
    }

    /// The `WWW-Authenticate` values for `failure`: every enabled method's when nothing was
    /// presented, the presented method's when it failed, none for 403 and 503.
    fn challenges(&self, failure: &Failure) -> Vec<String> {
        let bearer_error = |description: &str| {
            // RFC 6750 §3: the error and its description go into the Bearer challenge.
            format!(
                "Bearer realm=\"{}\", error=\"invalid_token\", error_description=\"{description}\"",
                self.realm
            )
        };
        match failure {
            Failure::Missing => {
                let mut schemes: Vec<String> = Vec::new();
                for method in &self.methods {
                    let challenge = self.plain(*method);
                    if !schemes.contains(&challenge) {
                        schemes.push(challenge);
                    }
                }
                schemes
            }
            Failure::InvalidApiKey => vec![self.plain(Method::ApiKey)],
            Failure::InvalidCredentials => vec![self.plain(Method::Basic)],
            Failure::InvalidToken(why) => vec![bearer_error(why)],
            Failure::TokenExpired => vec![bearer_error("the token has expired")],
            Failure::Forbidden | Failure::Unavailable(_) => Vec::new(),
        }
    }

    /// The challenge of `method` with no error (RFC 6750 §3.1: none when nothing was sent).
    fn plain(&self, method: Method) -> String {
        let realm = &self.realm;
        match method {
            // As Kong's key-auth answers.
            Method::ApiKey => format!("Key realm=\"{realm}\""),
            // RFC 7617 §2 and §2.1.
            Method::Basic => format!("Basic realm=\"{realm}\", charset=\"UTF-8\""),
            Method::Jwt | Method::OAuth2 => format!("Bearer realm=\"{realm}\""),
        }
    }
}
