//! Cache keys: `<authority><path>[?<query>][#<header>=<value>...]`, the query as the
//! config keeps it (parameters sorted by name), so that an operator can purge by a
//! prefix such as `example.com/images/`.

use weir_plugin_sdk::Request;

use crate::config::{KeyConfig, QueryKey};

/// The key of `request`'s target under `config`.
pub fn of(request: &Request<'_>, config: &KeyConfig) -> String {
    let mut key = String::with_capacity(64);
    key.push_str(request.authority().unwrap_or_default());
    key.push_str(request.path_only());
    let query = request.query().unwrap_or_default();
    let mut pairs: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
    let name = |pair: &&str| pair.split_once('=').map_or(*pair, |(n, _)| n).to_string();
    match &config.query {
        QueryKey::Word(word) if word == "none" => pairs.clear(),
        QueryKey::Only(names) => pairs.retain(|p| names.contains(&name(p))),
        _ => {}
    }
    pairs.sort_by_key(name);
    if !pairs.is_empty() {
        key.push('?');
        key.push_str(&pairs.join("&"));
    }
    for header in &config.headers {
        key.push('#');
        key.push_str(&header.to_ascii_lowercase());
        key.push('=');
        key.push_str(&request.header(header).unwrap_or_default());
    }
    key
}

/// A number in [0, 1) from `key` (FNV-1a), the same on every instance: the share of the
/// jitter an entry gets.
pub fn fraction(key: &str) -> f64 {
    let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    (hash >> 11) as f64 / (1u64 << 53) as f64
}
