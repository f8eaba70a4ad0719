//! `[server.paths]`: how request paths are normalised before routing (the normaliser itself
//! is `hygiene::path`).

use serde::Deserialize;

/// What to do with `%2F`, `%5C` and a literal `\` in a path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EscapedSlashes {
    /// Refuse the request with 400 (the default).
    #[default]
    Reject,
    /// Forward them as they are (`%2f` upper-cased to `%2F`); they do not split segments.
    Keep,
    /// Read each of them as `/` before dot segments are removed.
    Decode,
}

/// What to do with `;` parameters in path segments (`/a;jsessionid=1/b`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PathParameters {
    /// Refuse the request with 400 (the default).
    #[default]
    Reject,
    /// Forward them as they are.
    Keep,
    /// Remove each segment's parameters (`/a;x/b` becomes `/a/b`).
    Strip,
}

/// How request paths are normalised; `[server.paths]` in the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct PathPolicy {
    /// `%2F`, `%5C` and `\` (default `reject`).
    #[serde(default)]
    pub escaped_slashes: EscapedSlashes,
    /// `;` parameters (default `reject`).
    #[serde(default)]
    pub path_parameters: PathParameters,
    /// Merge repeated slashes, `//a` into `/a` (default true).
    #[serde(default = "yes")]
    pub merge_slashes: bool,
}

fn yes() -> bool {
    true
}

impl Default for PathPolicy {
    fn default() -> Self {
        Self {
            escaped_slashes: EscapedSlashes::default(),
            path_parameters: PathParameters::default(),
            merge_slashes: true,
        }
    }
}
