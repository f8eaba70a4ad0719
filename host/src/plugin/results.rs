//! Bounds on what a filter call hands back, checked right after the call and before the
//! gateway converts or applies anything. (The copy wasmtime makes while lifting the result
//! out of the guest is bounded before it is made, by the store's hostcall fuel.)

use super::bindings::router::{Delivery, RouterInfo};
use super::bindings::{
    FilterInfo, Header, RequestAction, RequestMutations, Response, ResponseAction,
    ResponseMutations, Variable,
};
use crate::config::sandbox::ResultLimits;

/// Counts a result against the limits; the first limit passed is the error.
struct Tally<'l> {
    limits: &'l ResultLimits,
    headers: usize,
    header_bytes: usize,
}

impl<'l> Tally<'l> {
    fn new(limits: &'l ResultLimits) -> Self {
        Self {
            limits,
            headers: 0,
            header_bytes: 0,
        }
    }

    /// The header edits of a result: names to remove, headers to set and to append.
    fn edits(
        &mut self,
        remove: &[String],
        set: &[Header],
        append: &[Header],
    ) -> Result<(), String> {
        self.names("remove-headers", remove)?;
        self.headers("set-headers", set)?;
        self.headers("append-headers", append)
    }

    /// One list of header names (`remove-headers`).
    fn names(&mut self, what: &str, names: &[String]) -> Result<(), String> {
        self.list(what, names.len(), names.iter().map(String::len).sum())
    }

    /// One list of headers.
    fn headers(&mut self, what: &str, headers: &[Header]) -> Result<(), String> {
        let bytes = headers.iter().map(|h| h.name.len() + h.value.len()).sum();
        self.list(what, headers.len(), bytes)
    }

    fn list(&mut self, what: &str, count: usize, bytes: usize) -> Result<(), String> {
        let l = self.limits;
        if count > l.max_headers {
            return Err(format!(
                "{what}: {count} headers, more than {}",
                l.max_headers
            ));
        }
        self.headers += count;
        self.header_bytes += bytes;
        if self.headers > l.max_total_headers {
            return Err(format!(
                "more than {} headers in one result",
                l.max_total_headers
            ));
        }
        if self.header_bytes > l.max_header_bytes {
            return Err(format!(
                "more than {} bytes of headers in one result",
                l.max_header_bytes
            ));
        }
        Ok(())
    }

    fn body(&self, body: Option<&Vec<u8>>) -> Result<(), String> {
        match body {
            Some(b) if b.len() > self.limits.max_body_bytes => Err(format!(
                "a body of {} bytes, more than {}",
                b.len(),
                self.limits.max_body_bytes
            )),
            _ => Ok(()),
        }
    }

    fn variables(&self, variables: &[Variable]) -> Result<(), String> {
        let l = self.limits;
        if variables.len() > l.max_variables {
            return Err(format!(
                "{} variables, more than {}",
                variables.len(),
                l.max_variables
            ));
        }
        let bytes: usize = variables.iter().map(|v| v.key.len() + v.value.len()).sum();
        if bytes > l.max_variable_bytes {
            return Err(format!(
                "{bytes} bytes of variables, more than {}",
                l.max_variable_bytes
            ));
        }
        Ok(())
    }

    fn response(&mut self, r: &Response) -> Result<(), String> {
        self.headers("response headers", &r.headers)?;
        self.body(r.body.as_ref())
    }
}

/// A call's result, held to `[runtime.results]` before the gateway touches it.
pub(crate) trait Bounded {
    /// The first limit the result passes, if any.
    fn check(&self, limits: &ResultLimits) -> Result<(), String>;
}

impl Bounded for RequestAction {
    fn check(&self, limits: &ResultLimits) -> Result<(), String> {
        check_request(self, limits)
    }
}

impl Bounded for ResponseAction {
    fn check(&self, limits: &ResultLimits) -> Result<(), String> {
        check_response(self, limits)
    }
}

/// Metadata and `configure`'s answer are small and read once, at configuration.
impl Bounded for FilterInfo {
    fn check(&self, _: &ResultLimits) -> Result<(), String> {
        Ok(())
    }
}

/// A router's metadata, like a filter's.
impl Bounded for RouterInfo {
    fn check(&self, _: &ResultLimits) -> Result<(), String> {
        Ok(())
    }
}

/// A router's decision is one of four cases: nothing to bound.
impl Bounded for Delivery {
    fn check(&self, _: &ResultLimits) -> Result<(), String> {
        Ok(())
    }
}

impl Bounded for Result<(), String> {
    fn check(&self, _: &ResultLimits) -> Result<(), String> {
        Ok(())
    }
}

/// Checks an `on-request` result.
fn check_request(action: &RequestAction, limits: &ResultLimits) -> Result<(), String> {
    let mut tally = Tally::new(limits);
    match action {
        RequestAction::Continue(m) => {
            let RequestMutations {
                remove_headers,
                set_headers,
                append_headers,
                path,
                body,
                upstream,
                variables,
                response_headers,
            } = m;
            tally.edits(remove_headers, set_headers, append_headers)?;
            tally.headers("response-headers", response_headers)?;
            let strings = path.iter().chain(upstream).map(String::len).sum::<usize>();
            tally.list("path and upstream", 0, strings)?;
            tally.body(body.as_ref())?;
            tally.variables(variables)
        }
        RequestAction::Respond(r) => tally.response(r),
    }
}

/// Checks an `on-response` result.
fn check_response(action: &ResponseAction, limits: &ResultLimits) -> Result<(), String> {
    let mut tally = Tally::new(limits);
    match action {
        ResponseAction::Continue(m) => {
            let ResponseMutations {
                status: _,
                remove_headers,
                set_headers,
                append_headers,
                body,
            } = m;
            tally.edits(remove_headers, set_headers, append_headers)?;
            tally.body(body.as_ref())
        }
        ResponseAction::Replace(r) => tally.response(r),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(value_len: usize) -> Header {
        Header {
            name: "x-h".into(),
            value: vec![b'v'; value_len],
        }
    }

    fn continuing(set: usize, append: usize, value_len: usize) -> RequestAction {
        RequestAction::Continue(RequestMutations {
            remove_headers: Vec::new(),
            set_headers: (0..set).map(|_| header(value_len)).collect(),
            append_headers: (0..append).map(|_| header(value_len)).collect(),
            path: None,
            body: None,
            upstream: None,
            variables: Vec::new(),
            response_headers: Vec::new(),
        })
    }

    #[test]
    fn headers_are_bounded_per_list_in_total_and_in_bytes() {
        let limits = ResultLimits {
            max_headers: 10,
            max_total_headers: 15,
            max_header_bytes: 1000,
            ..ResultLimits::default()
        };
        assert!(check_request(&continuing(10, 5, 1), &limits).is_ok());
        let per_list = check_request(&continuing(11, 0, 1), &limits).unwrap_err();
        assert!(per_list.contains("set-headers"), "{per_list}");
        let total = check_request(&continuing(10, 6, 1), &limits).unwrap_err();
        assert!(total.contains("more than 15 headers"), "{total}");
        let bytes = check_request(&continuing(2, 0, 600), &limits).unwrap_err();
        assert!(bytes.contains("bytes of headers"), "{bytes}");
    }

    #[test]
    fn bodies_and_variables_are_bounded() {
        let limits = ResultLimits {
            max_body_bytes: 4,
            max_variables: 1,
            ..ResultLimits::default()
        };
        let respond = |len| {
            RequestAction::Respond(Response {
                status: 200,
                headers: Vec::new(),
                body: Some(vec![0; len]),
            })
        };
        assert!(check_request(&respond(4), &limits).is_ok());
        assert!(check_request(&respond(5), &limits).is_err());
        let variable = || Variable {
            key: "k".into(),
            value: "v".into(),
        };
        let mut action = continuing(0, 0, 0);
        if let RequestAction::Continue(m) = &mut action {
            m.variables = vec![variable(), variable()];
        }
        assert!(check_request(&action, &limits).is_err());
        let replaced = ResponseAction::Continue(ResponseMutations {
            status: None,
            remove_headers: Vec::new(),
            set_headers: Vec::new(),
            append_headers: Vec::new(),
            body: Some(vec![0; 5]),
        });
        assert!(check_response(&replaced, &limits).is_err());
    }
}
