//! The private per-request context of a filter: what its `on_request` keeps for its
//! `on_response` ([`crate::RequestChanges::set_context`], [`crate::Request::context`]).
//!
//! The WIT contract carries it as a variable under the reserved prefix `weir.context/`.
//! The gateway stores such a variable under a key of the configured filter's own and
//! answers a read under the prefix with the caller's own context: no other filter, with
//! or without this SDK, can list, read or overwrite it. It counts against the gateway's
//! variable limits.

/// The key of this filter's context (the gateway makes it the filter's own).
pub(crate) const KEY: &str = "weir.context/";

/// Whether `key` is in the namespace of private contexts.
pub(crate) fn is_reserved(key: &str) -> bool {
    key.starts_with(KEY)
}
