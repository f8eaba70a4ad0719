//! `types`: the `request` and `response-view` resources, what a filter reads of the exchange
//! through methods. The gateway moves the request's parts into the instance's resource
//! table for the length of one call and takes them back afterwards, so handing a request to
//! a filter costs no copy; a filter pays (one lowering) only for the parts it asks for.

use http::HeaderMap;
use wasmtime::component::Resource;

use super::HostState;
use crate::plugin::bindings::weir::gateway::types::{HostRequest, HostResponseView};
use crate::plugin::bindings::{Header, Variable};
use crate::plugin::context;
use crate::plugin::view::{RequestView, ResponseView};

/// The first value of `name`, if any (names that are not valid header names match nothing).
fn first(headers: &HeaderMap, name: &str) -> Option<Vec<u8>> {
    headers.get(name).map(|v| v.as_bytes().to_vec())
}

fn all(headers: &HeaderMap, name: &str) -> Vec<Vec<u8>> {
    headers
        .get_all(name)
        .iter()
        .map(|v| v.as_bytes().to_vec())
        .collect()
}

fn listed(headers: &HeaderMap) -> Vec<Header> {
    headers
        .iter()
        .map(|(name, value)| Header {
            name: name.as_str().to_string(),
            value: value.as_bytes().to_vec(),
        })
        .collect()
}

impl HostState {
    fn request(&self, handle: &Resource<RequestView>) -> wasmtime::Result<&RequestView> {
        Ok(self.table.get(handle)?)
    }

    fn response(&self, handle: &Resource<ResponseView>) -> wasmtime::Result<&ResponseView> {
        Ok(self.table.get(handle)?)
    }

    /// Puts a request in the table for one call.
    pub(crate) fn lend_request(&mut self, view: RequestView) -> Resource<RequestView> {
        self.table
            .push(view)
            .expect("a store's resource table holds the few handles of one call")
    }

    /// Puts a response in the table for one call.
    pub(crate) fn lend_response(&mut self, view: ResponseView) -> Resource<ResponseView> {
        self.table
            .push(view)
            .expect("a store's resource table holds the few handles of one call")
    }

    /// Takes a lent request back after the call. The guest only ever borrowed it, so it is
    /// still there, whatever the call did.
    pub(crate) fn take_request(&mut self, handle: Resource<RequestView>) -> RequestView {
        self.table
            .delete(handle)
            .expect("a lent request stays in the table until taken back")
    }

    /// Takes a lent response back after the call.
    pub(crate) fn take_response(&mut self, handle: Resource<ResponseView>) -> ResponseView {
        self.table
            .delete(handle)
            .expect("a lent response stays in the table until taken back")
    }
}

impl crate::plugin::bindings::weir::gateway::types::Host for HostState {}

impl HostRequest for HostState {
    fn method(&mut self, this: Resource<RequestView>) -> wasmtime::Result<String> {
        Ok(self.request(&this)?.parts.method.as_str().to_string())
    }

    fn path(&mut self, this: Resource<RequestView>) -> wasmtime::Result<String> {
        let uri = &self.request(&this)?.parts.uri;
        Ok(uri.path_and_query().map_or("/", |p| p.as_str()).to_string())
    }

    fn authority(&mut self, this: Resource<RequestView>) -> wasmtime::Result<Option<String>> {
        Ok(self.request(&this)?.authority.clone())
    }

    fn scheme(&mut self, this: Resource<RequestView>) -> wasmtime::Result<String> {
        Ok(self.request(&this)?.scheme.to_string())
    }

    fn header(
        &mut self,
        this: Resource<RequestView>,
        name: String,
    ) -> wasmtime::Result<Option<Vec<u8>>> {
        Ok(first(&self.request(&this)?.parts.headers, &name))
    }

    fn header_all(
        &mut self,
        this: Resource<RequestView>,
        name: String,
    ) -> wasmtime::Result<Vec<Vec<u8>>> {
        Ok(all(&self.request(&this)?.parts.headers, &name))
    }

    fn headers(&mut self, this: Resource<RequestView>) -> wasmtime::Result<Vec<Header>> {
        Ok(listed(&self.request(&this)?.parts.headers))
    }

    fn body(&mut self, this: Resource<RequestView>) -> wasmtime::Result<Option<Vec<u8>>> {
        Ok(self.request(&this)?.body.as_ref().map(|b| b.to_vec()))
    }

    fn client_addr(&mut self, this: Resource<RequestView>) -> wasmtime::Result<String> {
        Ok(self.request(&this)?.client.to_string())
    }

    fn route(&mut self, this: Resource<RequestView>) -> wasmtime::Result<String> {
        self.request(&this)?;
        Ok(self.caller.route.clone())
    }

    fn request_id(&mut self, this: Resource<RequestView>) -> wasmtime::Result<String> {
        Ok(self.request(&this)?.request_id.clone())
    }

    fn variable(
        &mut self,
        this: Resource<RequestView>,
        key: String,
    ) -> wasmtime::Result<Option<String>> {
        let variables = &self.request(&this)?.variables;
        let key = match context::is_private(&key) {
            true => &self.caller.context_key,
            false => &key,
        };
        Ok(variables
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone()))
    }

    fn variables(&mut self, this: Resource<RequestView>) -> wasmtime::Result<Vec<Variable>> {
        let variables = &self.request(&this)?.variables;
        Ok(variables
            .iter()
            .filter(|(key, _)| !context::is_private(key))
            .map(|(key, value)| Variable {
                key: key.clone(),
                value: value.clone(),
            })
            .collect())
    }

    fn upstream(&mut self, this: Resource<RequestView>) -> wasmtime::Result<String> {
        let chosen = &self.request(&this)?.upstream;
        Ok(chosen
            .as_deref()
            .unwrap_or(&self.caller.route_upstream)
            .to_string())
    }

    fn set_method(
        &mut self,
        this: Resource<RequestView>,
        method: String,
    ) -> wasmtime::Result<Result<(), String>> {
        let Ok(method) = http::Method::from_bytes(method.as_bytes()) else {
            return Ok(Err(format!("invalid method {method:?}")));
        };
        self.table.get_mut(&this)?.parts.method = method;
        Ok(Ok(()))
    }

    fn drop(&mut self, _this: Resource<RequestView>) -> wasmtime::Result<()> {
        // Lent, never owned by the guest: the gateway takes it back after the call.
        Ok(())
    }
}

impl HostResponseView for HostState {
    fn status(&mut self, this: Resource<ResponseView>) -> wasmtime::Result<u16> {
        Ok(self.response(&this)?.parts.status.as_u16())
    }

    fn header(
        &mut self,
        this: Resource<ResponseView>,
        name: String,
    ) -> wasmtime::Result<Option<Vec<u8>>> {
        Ok(first(&self.response(&this)?.parts.headers, &name))
    }

    fn header_all(
        &mut self,
        this: Resource<ResponseView>,
        name: String,
    ) -> wasmtime::Result<Vec<Vec<u8>>> {
        Ok(all(&self.response(&this)?.parts.headers, &name))
    }

    fn headers(&mut self, this: Resource<ResponseView>) -> wasmtime::Result<Vec<Header>> {
        Ok(listed(&self.response(&this)?.parts.headers))
    }

    fn body(&mut self, this: Resource<ResponseView>) -> wasmtime::Result<Option<Vec<u8>>> {
        Ok(self.response(&this)?.body.as_ref().map(|b| b.to_vec()))
    }

    fn trailers(&mut self, this: Resource<ResponseView>) -> wasmtime::Result<Vec<Header>> {
        Ok(self
            .response(&this)?
            .trailers
            .as_ref()
            .map(listed)
            .unwrap_or_default())
    }

    fn drop(&mut self, _this: Resource<ResponseView>) -> wasmtime::Result<()> {
        Ok(())
    }
}
