//! The headers that tell a refused client how to sign: `Accept-Signature` (RFC 9421 §5.1)
//! and, with the legacy format on, `WWW-Authenticate: Signature` (draft-cavage §3.1.1).
//! Built once from the config.

use sfv::{DictSerializer, KeyRef, StringRef};

use crate::config::{DigestPolicy, Settings};

/// The hint headers for this config.
pub fn for_settings(settings: &Settings) -> Vec<(&'static str, String)> {
    let mut hints = Vec::new();
    if let Some(accept) = accept_signature(settings) {
        hints.push(("accept-signature", accept));
    }
    if let Some(legacy) = &settings.legacy {
        hints.push((
            "www-authenticate",
            format!(
                "Signature headers=\"{}\"",
                legacy.required_headers.join(" ")
            ),
        ));
    }
    hints
}

/// `label=("@method" …);created;alg="…"`: the required components, `created` when it is
/// required, and the algorithm when only one is accepted. `None` only if a configured name
/// cannot be serialised.
fn accept_signature(settings: &Settings) -> Option<String> {
    let label = KeyRef::from_str(settings.label.as_deref().unwrap_or("sig1")).ok()?;
    let mut components: Vec<&str> = settings
        .required_components
        .iter()
        .map(String::as_str)
        .collect();
    if settings.content_digest == DigestPolicy::Always && !components.contains(&"content-digest") {
        components.push("content-digest");
    }
    let mut dict = DictSerializer::new();
    {
        let mut list = dict.inner_list(label);
        for name in components {
            list.bare_item(StringRef::from_str(name).ok()?);
        }
        let mut params = list.finish();
        if settings.require_created {
            params = params.parameter(KeyRef::from_str("created").ok()?, true);
        }
        if let [only] = settings.algorithms.as_slice() {
            params.parameter(
                KeyRef::from_str("alg").ok()?,
                StringRef::from_str(only.name()).ok()?,
            );
        }
    }
    dict.finish()
}
