//! Filters' private per-request contexts: what a filter's `on-request` keeps for its own
//! `on-response`. The WIT contract carries them as variables whose key starts with
//! [`PREFIX`]; the host, not the filter, decides whose they are. A variable set under the
//! prefix is stored under the setting filter's own key, whatever follows the prefix, and
//! reading any key under the prefix reads the caller's own context. No filter can list,
//! read or overwrite another's, even one built without the SDK, and two filters of one
//! plugin on a route keep apart.

use std::sync::atomic::{AtomicU64, Ordering};

/// The namespace of private contexts.
pub(crate) const PREFIX: &str = "weir.context/";

/// Whether `key` names a private context.
pub(crate) fn is_private(key: &str) -> bool {
    key.starts_with(PREFIX)
}

/// A key private to one configured filter, unique in this process.
pub(crate) fn new_key() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!("{PREFIX}{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// The key a variable set by the filter owning `own` is stored under.
pub(crate) fn stored_key(key: String, own: &str) -> String {
    match is_private(&key) {
        true => own.to_string(),
        false => key,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_private_key_is_always_the_callers_own() {
        let (a, b) = (new_key(), new_key());
        assert_ne!(a, b);
        assert!(is_private(&a) && is_private(&b));
        assert_eq!(stored_key(b.clone(), &a), a);
        assert_eq!(stored_key(format!("{PREFIX}anything"), &a), a);
        assert_eq!(stored_key("consumer".into(), &a), "consumer");
    }
}
