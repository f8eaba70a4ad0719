//! The private per-request context of a filter: what its `on_request` keeps for its
//! `on_response` ([`crate::RequestChanges::set_context`], [`crate::Request::context`]).
//!
//! The WIT contract has no per-filter slot for this yet, so the context travels as a
//! request variable under a reserved key, `weir.context/<filter>/<config hash>`: one key
//! per configured filter, so that two filters of the same plugin on one route keep
//! apart (unless their configs are identical too). The SDK's views never show these keys
//! to any filter ([`crate::Request::variable`] and [`crate::Request::variables`] skip
//! them, [`crate::RequestChanges::set_variable`] refuses them); a filter built without
//! the SDK could still read them, and they count against the gateway's variable limits.

use std::cell::RefCell;

/// The namespace of context keys.
pub(crate) const PREFIX: &str = "weir.context/";

thread_local! {
    /// This instance's key: set when the filter is configured (an instance serves one
    /// filter), a fixed one in native tests.
    static KEY: RefCell<String> = RefCell::new(format!("{PREFIX}test"));
}

/// Sets this instance's key from the filter's name and config text.
pub(crate) fn configure(name: &str, config: &str) {
    let key = format!("{PREFIX}{name}/{:016x}", fnv1a(config.as_bytes()));
    KEY.with(|k| *k.borrow_mut() = key);
}

/// This instance's context key.
pub(crate) fn key() -> String {
    KEY.with(|k| k.borrow().clone())
}

/// Whether `key` is in the namespace of private contexts.
pub(crate) fn is_reserved(key: &str) -> bool {
    key.starts_with(PREFIX)
}

/// FNV-1a, 64 bits: stable across builds and platforms, which `std`'s hasher is not.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_depends_on_name_and_config() {
        configure("a", "{}");
        let first = key();
        assert!(is_reserved(&first));
        configure("a", "{\"x\":1}");
        assert_ne!(key(), first);
        configure("a", "{}");
        assert_eq!(key(), first);
        // The FNV-1a test vector of the empty input.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
