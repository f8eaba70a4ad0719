//! The key of a state call: whose it is (the namespace the config gave the calling
//! filter, never a name the plugin claims for itself), which one (the plugin's name for
//! it), and by when the caller needs the answer.

use std::fmt::Write;
use std::time::Instant;

/// One key in one namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key<'a> {
    /// The calling filter's namespace.
    pub namespace: &'a str,
    /// The key as the plugin names it.
    pub name: &'a str,
    /// When the caller stops waiting (its own deadline), if it has one: a shared backend
    /// slower than that is treated as unavailable.
    pub answer_by: Option<Instant>,
}

impl<'a> Key<'a> {
    /// `name` in `namespace`, with no deadline of its own.
    pub fn new(namespace: &'a str, name: &'a str) -> Self {
        Self {
            namespace,
            name,
            answer_by: None,
        }
    }

    /// The same key, for a caller that stops waiting at `at`.
    pub fn answer_by(self, at: Instant) -> Self {
        Self {
            answer_by: Some(at),
            ..self
        }
    }

    /// The stored form, `<len>:<namespace><len>:<name>` (lengths in bytes, decimal): with
    /// both parts length-prefixed, no two (namespace, name) pairs have the same form,
    /// whatever characters they contain.
    pub fn encoded(&self) -> String {
        let mut out = String::with_capacity(self.namespace.len() + self.name.len() + 8);
        let _ = write!(
            out,
            "{}:{}{}:{}",
            self.namespace.len(),
            self.namespace,
            self.name.len(),
            self.name
        );
        out
    }

    /// The namespace part of an [`encoded`](Self::encoded) key.
    pub fn namespace_of(encoded: &str) -> &str {
        let parsed = encoded.split_once(':').and_then(|(len, rest)| {
            let len: usize = len.parse().ok()?;
            rest.get(..len)
        });
        parsed.unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_that_join_alike_encode_apart() {
        // Joined with a separator, both pairs would read `a:b:c`.
        let one = Key::new("a", "b:c").encoded();
        let two = Key::new("a:b", "c").encoded();
        assert_ne!(one, two);
        assert_eq!(one, "1:a3:b:c");
        assert_eq!(two, "3:a:b1:c");
        // A name that spells a whole encoded key stays inside its own namespace.
        let forged = Key::new("x", "1:y1:k").encoded();
        assert_ne!(forged, Key::new("y", "k").encoded());
    }

    #[test]
    fn namespace_reads_back() {
        for (ns, name) in [("a", "b"), ("tester.wasm", "1:x"), ("", ""), ("n:s", "")] {
            assert_eq!(Key::namespace_of(&Key::new(ns, name).encoded()), ns);
        }
        assert_eq!(Key::namespace_of("junk"), "");
    }
}
