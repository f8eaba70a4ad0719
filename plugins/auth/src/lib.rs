//! `auth`: authenticates requests by API key, HTTP Basic (RFC 7617), JWT (RFC 7519) or
//! OAuth2 token introspection (RFC 7662), hands the consumer upstream in headers and to
//! later filters in the `consumer` and `auth.method` variables, and refuses the rest with
//! 401 (and a `WWW-Authenticate` challenge) or 403.
//!
//! The credential that is present decides the method: the API key (header, then query
//! parameter) first, then the `Authorization` header — `Basic`, or `Bearer` (a JWS-shaped
//! token goes to `jwt`, any other to `oauth2`). A failed credential is never retried
//! with another method. See docs/plugins/auth.md.

mod api_key;
mod basic;
mod cache;
mod config;
mod credential;
mod failure;
mod identity;
mod jwt;
mod oauth2;
#[cfg(test)]
mod tests;

use weir_plugin_sdk::prelude::*;

use api_key::{ApiKeys, KeySource};
use basic::BasicUsers;
use config::Config;
use failure::{Challenges, Failure};
use identity::{Identity, Method};
use jwt::Jwt;
use oauth2::Introspection;

/// Where the credential was, to strip it before the request goes upstream.
#[derive(Clone, Copy)]
enum Presented<'a> {
    /// The API key, in the header or query parameter of these keys' config.
    ApiKey(&'a ApiKeys, KeySource),
    /// The `Authorization` header.
    Authorization,
}

/// A request that proved who it comes from.
struct Authenticated<'a> {
    identity: Identity,
    method: Method,
    presented: Presented<'a>,
}

struct Auth {
    api_key: Option<ApiKeys>,
    basic: Option<BasicUsers>,
    jwt: Option<Jwt>,
    oauth2: Option<Introspection>,
    allow: Vec<String>,
    deny: Vec<String>,
    /// (id, username, scope) header names.
    consumer_headers: [Option<String>; 3],
    hide_credentials: bool,
    challenges: Challenges,
}

impl Filter for Auth {
    type Config = Config;
    const NAME: &'static str = "auth";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const PHASES: &'static [Phase] = &[Phase::RequestHeaders];

    fn new(config: Config) -> Result<Self, String> {
        let realm = config.checked_realm()?;
        let consumer_headers = config.consumer_headers.names()?;
        let api_key = config.api_key.map(ApiKeys::new).transpose()?;
        let basic = config.basic.map(BasicUsers::new).transpose()?;
        let jwt = config.jwt.map(Jwt::new).transpose()?;
        let oauth2 = config.oauth2.map(Introspection::new).transpose()?;
        let methods: Vec<Method> = [
            api_key.as_ref().map(|_| Method::ApiKey),
            basic.as_ref().map(|_| Method::Basic),
            jwt.as_ref().map(|_| Method::Jwt),
            oauth2.as_ref().map(|_| Method::OAuth2),
        ]
        .into_iter()
        .flatten()
        .collect();
        if methods.is_empty() {
            return Err("no method enabled: configure api_key, basic, jwt or oauth2".into());
        }
        Ok(Self {
            api_key,
            basic,
            jwt,
            oauth2,
            allow: config.allow,
            deny: config.deny,
            consumer_headers,
            hide_credentials: config.hide_credentials,
            challenges: Challenges::new(realm, methods),
        })
    }

    fn on_request(&self, request: &Request) -> RequestDecision {
        let outcome = self.authenticate(request).and_then(|authenticated| {
            let id = &authenticated.identity.id;
            let allowed = self.allow.is_empty() || self.allow.contains(id);
            if allowed && !self.deny.contains(id) {
                Ok(authenticated)
            } else {
                Err(Failure::Forbidden)
            }
        });
        match outcome {
            Ok(authenticated) => RequestDecision::Continue(self.forward(request, authenticated)),
            Err(failure) => RequestDecision::Respond(self.challenges.respond(&failure, request)),
        }
    }
}

impl Auth {
    /// Finds the credential and checks it with its method.
    fn authenticate(&self, request: &Request) -> Result<Authenticated<'_>, Failure> {
        if let Some(keys) = &self.api_key
            && let Some((key, source)) = keys.presented(request)
        {
            let identity = keys.lookup(&key).ok_or(Failure::InvalidApiKey)?;
            return Ok(Authenticated {
                identity,
                method: Method::ApiKey,
                presented: Presented::ApiKey(keys, source),
            });
        }
        let (scheme, credentials) = credential::authorization(request).ok_or(Failure::Missing)?;
        let (identity, method) = match (scheme.as_str(), &self.basic) {
            ("basic", Some(users)) => {
                let identity = users
                    .verify(&credentials)
                    .ok_or(Failure::InvalidCredentials)?;
                (identity, Method::Basic)
            }
            ("bearer", _) if !credentials.is_empty() => self.bearer(&credentials)?,
            _ => return Err(Failure::Missing),
        };
        Ok(Authenticated {
            identity,
            method,
            presented: Presented::Authorization,
        })
    }

    /// A bearer token (RFC 6750 §2.1): a JWS compact serialisation goes to `jwt` when it is
    /// enabled, anything else to `oauth2`.
    fn bearer(&self, token: &str) -> Result<(Identity, Method), Failure> {
        let jws_shaped = token.split('.').count() == 3;
        match (&self.jwt, &self.oauth2) {
            (Some(jwt), None) => Ok((jwt.verify(token)?, Method::Jwt)),
            (Some(jwt), Some(_)) if jws_shaped => Ok((jwt.verify(token)?, Method::Jwt)),
            (_, Some(oauth2)) => Ok((oauth2.verify(token)?, Method::OAuth2)),
            (None, None) => Err(Failure::Missing),
        }
    }

    /// The changes for an authenticated request: the consumer headers set (replacing
    /// whatever the client sent under those names), the variables, the credential removed
    /// when asked.
    fn forward(&self, request: &Request, authenticated: Authenticated<'_>) -> RequestChanges {
        let Authenticated {
            identity,
            method,
            presented,
        } = authenticated;
        let values = [
            Some(&identity.id),
            identity.username.as_ref(),
            identity.scope.as_ref(),
        ];
        let mut changes = RequestChanges::new()
            .set_variable("consumer", identity.id.clone())
            .set_variable("auth.method", method.name());
        for (name, value) in self.consumer_headers.iter().zip(values) {
            changes = match (name, value) {
                (Some(name), Some(value)) => changes.set_header(name, value.as_bytes()),
                (Some(name), None) => changes.remove_header(name),
                (None, _) => changes,
            };
        }
        if self.hide_credentials {
            changes = match presented {
                Presented::ApiKey(keys, KeySource::Query) => match keys.query() {
                    Some(name) => {
                        changes.set_path(credential::without_query_param(request.path(), name))
                    }
                    None => changes,
                },
                Presented::ApiKey(keys, KeySource::Header) => changes.remove_header(keys.header()),
                Presented::Authorization => changes.remove_header("authorization"),
            };
        }
        changes
    }
}

export_filter!(Auth);
