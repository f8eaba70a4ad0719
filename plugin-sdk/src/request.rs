//! The request as a filter sees it: a view over a [`RequestHandle`] that reads from the
//! gateway on demand.

use std::cell::OnceCell;

use serde::de::DeserializeOwned;

use crate::handle::RequestHandle;
use crate::{Variable, context};

/// The request as a filter sees it: a handle lent by the gateway for the call. Each part is
/// fetched from the gateway when first asked for, so a filter pays only for what it reads;
/// the scalar parts are then kept for the rest of the call. In `on_response` the headers and
/// body are gone (they went upstream); the method, path, route, client, id and variables
/// remain.
pub struct Request<'a> {
    pub(crate) handle: &'a dyn RequestHandle,
    method: OnceCell<String>,
    path: OnceCell<String>,
    authority: OnceCell<Option<String>>,
    scheme: OnceCell<String>,
    client_addr: OnceCell<String>,
    route: OnceCell<String>,
    request_id: OnceCell<String>,
    body: OnceCell<Option<Vec<u8>>>,
}

impl<'a> Request<'a> {
    /// A view of `handle`: the gateway's request, or a [`crate::testing::FakeRequest`].
    pub fn new(handle: &'a dyn RequestHandle) -> Self {
        Self {
            handle,
            method: OnceCell::new(),
            path: OnceCell::new(),
            authority: OnceCell::new(),
            scheme: OnceCell::new(),
            client_addr: OnceCell::new(),
            route: OnceCell::new(),
            request_id: OnceCell::new(),
            body: OnceCell::new(),
        }
    }

    /// The handle itself, private contexts not hidden: for tests of what the gateway
    /// shows a filter that does not use this SDK.
    #[doc(hidden)]
    pub fn raw(&self) -> &'a dyn RequestHandle {
        self.handle
    }

    /// The method, upper-case.
    pub fn method(&self) -> &str {
        self.method.get_or_init(|| self.handle.method())
    }

    /// The path and query (`/a/b?x=1`).
    pub fn path(&self) -> &str {
        self.path.get_or_init(|| self.handle.path())
    }

    /// The path without the query.
    pub fn path_only(&self) -> &str {
        self.path().split('?').next().unwrap_or_default()
    }

    /// The query string without `?`, if any.
    pub fn query(&self) -> Option<&str> {
        self.path().split_once('?').map(|(_, q)| q)
    }

    /// The authority the client addressed (`Host` or `:authority`).
    pub fn authority(&self) -> Option<&str> {
        self.authority
            .get_or_init(|| self.handle.authority())
            .as_deref()
    }

    /// `http` or `https`.
    pub fn scheme(&self) -> &str {
        self.scheme.get_or_init(|| self.handle.scheme())
    }

    /// The body, when the filter declared [`crate::Phase::RequestBody`].
    pub fn body(&self) -> Option<&[u8]> {
        self.body.get_or_init(|| self.handle.body()).as_deref()
    }

    /// The client's address, `ip:port`.
    pub fn client_addr(&self) -> &str {
        self.client_addr.get_or_init(|| self.handle.client_addr())
    }

    /// The route that matched.
    pub fn route(&self) -> &str {
        self.route.get_or_init(|| self.handle.route())
    }

    /// The gateway's id for this request.
    pub fn request_id(&self) -> &str {
        self.request_id.get_or_init(|| self.handle.request_id())
    }

    /// A variable set by an earlier filter (the last one set wins). Filters' private
    /// contexts are not variables: their keys read as absent.
    pub fn variable(&self, key: &str) -> Option<String> {
        match context::is_reserved(key) {
            true => None,
            false => self.handle.variable(key),
        }
    }

    /// Every variable set by earlier filters, in order (without private contexts).
    pub fn variables(&self) -> Vec<Variable> {
        let mut variables = self.handle.variables();
        variables.retain(|v| !context::is_reserved(&v.key));
        variables
    }

    /// This filter's private context for the request, as its `on_request` stored it with
    /// [`crate::RequestChanges::set_context`]; `None` when it stored none (or another
    /// type).
    pub fn context<T: DeserializeOwned>(&self) -> Option<T> {
        let text = self.handle.variable(context::KEY)?;
        serde_json::from_str(&text).ok()
    }

    /// The name of the upstream the request goes to: the route's, or one an earlier filter
    /// chose.
    pub fn upstream(&self) -> String {
        self.handle.upstream()
    }
}

impl_header_reads!(Request);

impl std::fmt::Debug for Request<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method())
            .field("path", &self.path())
            .field("route", &self.route())
            .finish_non_exhaustive()
    }
}
