//! The changes a filter returns: header edits shared by both directions, and what else a
//! request or a response may change. Each builder also reads back what it holds, for tests.

use serde::Serialize;

use crate::bindings::weir::gateway::types as wit;
use crate::{Header, Variable, context};

/// Builds a header with a lower-case name.
pub(crate) fn header(name: &str, value: impl Into<Vec<u8>>) -> Header {
    Header {
        name: name.to_ascii_lowercase(),
        value: value.into(),
    }
}

/// The header lists of a set of changes: names to remove, headers to set, to append.
#[doc(hidden)]
pub type HeaderLists<'a> = (
    &'a mut Vec<String>,
    &'a mut Vec<Header>,
    &'a mut Vec<Header>,
);

/// Header edits, the same on [`RequestChanges`] and [`ResponseChanges`]. Applied by the
/// gateway in the order: remove, set, append.
pub trait HeaderChanges: Sized {
    #[doc(hidden)]
    fn header_lists(&mut self) -> HeaderLists<'_>;

    #[doc(hidden)]
    fn header_lists_ref(&self) -> (&[String], &[Header], &[Header]);

    /// Sets a header, replacing existing values.
    fn set_header(mut self, name: &str, value: impl Into<Vec<u8>>) -> Self {
        self.header_lists().1.push(header(name, value));
        self
    }

    /// Adds a header value next to existing ones.
    fn append_header(mut self, name: &str, value: impl Into<Vec<u8>>) -> Self {
        self.header_lists().2.push(header(name, value));
        self
    }

    /// Removes a header.
    fn remove_header(mut self, name: &str) -> Self {
        self.header_lists().0.push(name.to_ascii_lowercase());
        self
    }

    /// The names of the headers removed, lower-case, in order.
    fn removed_headers(&self) -> &[String] {
        self.header_lists_ref().0
    }

    /// The headers set (replacing), in order.
    fn set_headers(&self) -> &[Header] {
        self.header_lists_ref().1
    }

    /// The headers appended, in order.
    fn appended_headers(&self) -> &[Header] {
        self.header_lists_ref().2
    }

    /// The last value set for the header `name` (lower-case) as text, if any.
    fn set_header_value(&self, name: &str) -> Option<&str> {
        self.set_headers()
            .iter()
            .rev()
            .find(|h| h.name == name)
            .and_then(|h| std::str::from_utf8(&h.value).ok())
    }
}

/// Implements [`HeaderChanges`] for a wrapper of a generated mutations record (both have
/// the same three header lists).
macro_rules! impl_header_changes {
    ($ty:ty) => {
        impl HeaderChanges for $ty {
            fn header_lists(&mut self) -> HeaderLists<'_> {
                let m = &mut self.inner;
                (
                    &mut m.remove_headers,
                    &mut m.set_headers,
                    &mut m.append_headers,
                )
            }

            fn header_lists_ref(&self) -> (&[String], &[Header], &[Header]) {
                let m = &self.inner;
                (&m.remove_headers, &m.set_headers, &m.append_headers)
            }
        }
    };
}

/// Changes to the request, built with chained calls:
/// `RequestChanges::new().set_header("x-a", "1").remove_header("cookie")`.
#[derive(Debug, Clone)]
pub struct RequestChanges {
    pub(crate) inner: wit::RequestMutations,
    pub(crate) method: Option<String>,
}

impl Default for RequestChanges {
    fn default() -> Self {
        Self::new()
    }
}

impl RequestChanges {
    /// No changes.
    pub fn new() -> Self {
        Self {
            inner: wit::RequestMutations {
                remove_headers: Vec::new(),
                set_headers: Vec::new(),
                append_headers: Vec::new(),
                path: None,
                body: None,
                upstream: None,
                variables: Vec::new(),
                response_headers: Vec::new(),
            },
            method: None,
        }
    }

    /// Changes the method of the request sent upstream (`POST`, say).
    pub fn set_method(mut self, method: impl Into<String>) -> Self {
        self.method = Some(method.into());
        self
    }

    /// Rewrites the path and query sent upstream.
    pub fn set_path(mut self, path: impl Into<String>) -> Self {
        self.inner.path = Some(path.into());
        self
    }

    /// Replaces the request body.
    pub fn set_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.inner.body = Some(body.into());
        self
    }

    /// Sends the request to another named upstream.
    pub fn set_upstream(mut self, upstream: impl Into<String>) -> Self {
        self.inner.upstream = Some(upstream.into());
        self
    }

    /// Hands a variable to later filters and the access log. A key in the namespace of
    /// private contexts (`weir.context/`) is not set.
    pub fn set_variable(self, key: impl Into<String>, value: impl Into<String>) -> Self {
        let key = key.into();
        match context::is_reserved(&key) {
            true => self,
            false => self.push_variable(key, value.into()),
        }
    }

    /// Keeps `value` as this filter's private context for the request: its `on_response`
    /// reads it back with [`crate::Request::context`]; other filters' views do not show
    /// it. The last value set wins. A value `serde_json` cannot write (a map with
    /// non-string keys) is not kept.
    pub fn set_context<T: Serialize>(self, value: &T) -> Self {
        match serde_json::to_string(value) {
            Ok(text) => self.push_variable(context::KEY.to_string(), text),
            Err(_) => self,
        }
    }

    fn push_variable(mut self, key: String, value: String) -> Self {
        self.inner.variables.push(Variable { key, value });
        self
    }

    /// Sets a header on the response the client will get, replacing existing values,
    /// without a response-phase call (the gateway applies it before the response filters).
    pub fn set_response_header(mut self, name: &str, value: impl Into<Vec<u8>>) -> Self {
        self.inner.response_headers.push(header(name, value));
        self
    }

    /// The new method, if any.
    pub fn method(&self) -> Option<&str> {
        self.method.as_deref()
    }

    /// The new path and query, if any.
    pub fn path(&self) -> Option<&str> {
        self.inner.path.as_deref()
    }

    /// The new body, if any.
    pub fn body(&self) -> Option<&[u8]> {
        self.inner.body.as_deref()
    }

    /// The upstream chosen, if any.
    pub fn upstream(&self) -> Option<&str> {
        self.inner.upstream.as_deref()
    }

    /// The variables set, in order (private contexts included).
    pub fn variables(&self) -> &[Variable] {
        &self.inner.variables
    }

    /// The last value set for the public variable `key`, if any.
    pub fn variable(&self, key: &str) -> Option<&str> {
        let found = self.inner.variables.iter().rev().find(|v| v.key == key);
        found.map(|v| v.value.as_str())
    }

    /// The headers set for the client's response, in order.
    pub fn response_headers(&self) -> &[Header] {
        &self.inner.response_headers
    }
}

impl_header_changes!(RequestChanges);

/// Changes to the response, built with chained calls.
#[derive(Debug, Clone)]
pub struct ResponseChanges {
    pub(crate) inner: wit::ResponseMutations,
}

impl Default for ResponseChanges {
    fn default() -> Self {
        Self::new()
    }
}

impl ResponseChanges {
    /// No changes.
    pub fn new() -> Self {
        Self {
            inner: wit::ResponseMutations {
                status: None,
                remove_headers: Vec::new(),
                set_headers: Vec::new(),
                append_headers: Vec::new(),
                body: None,
            },
        }
    }

    /// Changes the status code.
    pub fn set_status(mut self, status: u16) -> Self {
        self.inner.status = Some(status);
        self
    }

    /// Replaces the body.
    pub fn set_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.inner.body = Some(body.into());
        self
    }

    /// The new status, if any.
    pub fn status(&self) -> Option<u16> {
        self.inner.status
    }

    /// The new body, if any.
    pub fn body(&self) -> Option<&[u8]> {
        self.inner.body.as_deref()
    }
}

impl_header_changes!(ResponseChanges);
