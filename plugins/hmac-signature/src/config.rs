//! The filter's config: what the gateway config may say, and the checked form the filter
//! runs with. Every key and its default is documented in `docs/plugins/hmac-signature.md`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use weir_plugin_sdk::duration;

use crate::components::DERIVED;
use crate::mac::Algorithm;

/// The config as written in the gateway config.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Key id → name of the secret that holds its key.
    #[serde(default)]
    keys: BTreeMap<String, String>,
    /// Secret name for key ids not in `keys`, with `{keyid}` standing for the key id.
    #[serde(default)]
    secret_pattern: Option<String>,
    /// How a secret's bytes become the HMAC key: `raw` or `base64`.
    #[serde(default)]
    secret_encoding: SecretEncoding,
    /// Accepted algorithms; the first is used when a signature names none.
    #[serde(default = "default_algorithms")]
    algorithms: Vec<String>,
    /// The signature label to verify; by default the first one in `Signature-Input`.
    #[serde(default)]
    label: Option<String>,
    /// Components every signature must cover.
    #[serde(default = "default_required")]
    required_components: Vec<String>,
    /// When the body must be covered by a checked `content-digest`.
    #[serde(default)]
    content_digest: DigestPolicy,
    /// Accepted distance between `created` (or `Date`) and the gateway's clock
    /// (`clock_skew_secs`, a number of seconds, is the older spelling).
    #[serde(
        default = "skew_5m",
        alias = "clock_skew_secs",
        with = "duration::secs"
    )]
    clock_skew: Duration,
    /// Refuse signatures without `created` (or, for legacy signatures, a covered `Date`).
    #[serde(default = "yes")]
    require_created: bool,
    /// Remember each signature for the skew window and refuse it a second time.
    #[serde(default = "yes")]
    replay_protection: bool,
    /// What to do when the replay store cannot be reached.
    #[serde(default)]
    replay_unavailable: ReplayUnavailable,
    /// Also set the `consumer` variable to the key id.
    #[serde(default)]
    set_consumer: bool,
    /// Remove the signature headers before the request goes on.
    #[serde(default)]
    strip_headers: bool,
    /// The legacy draft-cavage format.
    #[serde(default)]
    legacy: LegacyConfig,
}

/// The legacy (draft-cavage-http-signatures-12) part of the config.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LegacyConfig {
    #[serde(default)]
    enabled: bool,
    #[serde(default = "default_legacy_required")]
    required_headers: Vec<String>,
}

impl Default for LegacyConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            required_headers: default_legacy_required(),
        }
    }
}

/// How a secret's bytes become the HMAC key.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretEncoding {
    /// The secret's bytes are the key.
    #[default]
    Raw,
    /// The secret is base64 text (RFC 4648 §4) of the key.
    Base64,
}

/// When the body must be covered by a `content-digest` (or legacy `digest`) that is
/// checked against it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DigestPolicy {
    /// Required for requests with a non-empty body; checked whenever covered.
    #[default]
    WhenBody,
    /// Required for every request; checked whenever covered.
    Always,
    /// Never required, and the body is not buffered, so a covered digest is not compared
    /// with the body.
    Off,
}

/// What to do when the replay store cannot be reached (or `kv` is not granted).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplayUnavailable {
    /// Refuse the request with 503 `replay_check_unavailable`.
    #[default]
    FailClosed,
    /// Let the request through unchecked.
    Skip,
}

/// Where key ids find their secrets.
#[derive(Debug)]
pub struct KeySource {
    /// Key id → secret name.
    pub names: BTreeMap<String, String>,
    /// The secret-name pattern, split around `{keyid}`.
    pub pattern: Option<(String, String)>,
    /// How the secret's bytes become the key.
    pub encoding: SecretEncoding,
}

/// The legacy format's settings, when enabled.
#[derive(Debug)]
pub struct Legacy {
    /// Headers (lower-case, pseudo-headers in parentheses) every signature must cover.
    pub required_headers: Vec<String>,
}

/// The checked config the filter runs with.
#[derive(Debug)]
pub struct Settings {
    /// Where secrets come from.
    pub keys: KeySource,
    /// Accepted algorithms, the default first.
    pub algorithms: Vec<Algorithm>,
    /// The label to verify, if pinned.
    pub label: Option<String>,
    /// Components every RFC 9421 signature must cover.
    pub required_components: Vec<String>,
    /// When the body digest is required.
    pub content_digest: DigestPolicy,
    /// The skew window in seconds.
    pub clock_skew_secs: u64,
    /// Whether `created` is required.
    pub require_created: bool,
    /// Replay protection, with what to do when its store is unavailable.
    pub replay: Option<ReplayUnavailable>,
    /// Whether `consumer` is set.
    pub set_consumer: bool,
    /// Whether signature headers are removed.
    pub strip_headers: bool,
    /// The legacy format, when enabled.
    pub legacy: Option<Legacy>,
}

/// The largest skew window: a hundred years, far past any real use, so that test vectors
/// from years ago can be checked, while TTL arithmetic stays far from overflow.
const MAX_SKEW_SECS: u64 = 100 * 366 * 24 * 3600;

impl TryFrom<Config> for Settings {
    type Error = String;

    fn try_from(c: Config) -> Result<Self, String> {
        if c.keys.is_empty() && c.secret_pattern.is_none() {
            return Err("set `keys` (key id → secret name) or `secret_pattern`".into());
        }
        if let Some((id, _)) = c
            .keys
            .iter()
            .find(|(id, name)| id.is_empty() || name.is_empty())
        {
            return Err(format!(
                "`keys`: empty key id or secret name (key id {id:?})"
            ));
        }
        let pattern = c.secret_pattern.as_deref().map(split_pattern).transpose()?;
        if c.algorithms.is_empty() {
            return Err("`algorithms` must name at least one algorithm".into());
        }
        let algorithms = c
            .algorithms
            .iter()
            .map(|name| {
                Algorithm::from_name(name).ok_or_else(|| {
                    format!("`algorithms`: unknown {name:?} (hmac-sha256, hmac-sha512)")
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(label) = &c.label {
            sfv::KeyRef::from_str(label)
                .map_err(|_| format!("`label`: {label:?} is not a structured-field key"))?;
        }
        let required_components = lower_unique("required_components", c.required_components)?;
        if let Some(bad) = required_components
            .iter()
            .find(|name| name.starts_with('@') && !DERIVED.contains(&name.as_str()))
        {
            return Err(format!(
                "`required_components`: {bad:?} is not a supported derived component ({})",
                DERIVED.join(", ")
            ));
        }
        let clock_skew_secs = duration::ceil_secs(c.clock_skew);
        if clock_skew_secs > MAX_SKEW_SECS {
            return Err(format!(
                "`clock_skew` must be at most {MAX_SKEW_SECS}s (a hundred years)"
            ));
        }
        let legacy = if c.legacy.enabled {
            Some(Legacy {
                required_headers: lower_unique(
                    "legacy.required_headers",
                    c.legacy.required_headers,
                )?,
            })
        } else {
            None
        };
        Ok(Self {
            keys: KeySource {
                names: c.keys,
                pattern,
                encoding: c.secret_encoding,
            },
            algorithms,
            label: c.label,
            required_components,
            content_digest: c.content_digest,
            clock_skew_secs,
            require_created: c.require_created,
            replay: c.replay_protection.then_some(c.replay_unavailable),
            set_consumer: c.set_consumer,
            strip_headers: c.strip_headers,
            legacy,
        })
    }
}

/// Splits `prefix{keyid}suffix`, refusing a pattern without exactly one `{keyid}`.
fn split_pattern(pattern: &str) -> Result<(String, String), String> {
    match pattern.split_once("{keyid}") {
        Some((prefix, suffix)) if !suffix.contains("{keyid}") => {
            Ok((prefix.to_string(), suffix.to_string()))
        }
        _ => Err(format!(
            "`secret_pattern` must contain `{{keyid}}` exactly once: {pattern:?}"
        )),
    }
}

/// Lower-cases names, refusing empty ones and duplicates.
fn lower_unique(key: &str, names: Vec<String>) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::with_capacity(names.len());
    for name in names {
        let name = name.trim().to_ascii_lowercase();
        if name.is_empty() || out.contains(&name) {
            return Err(format!("`{key}`: empty or repeated name {name:?}"));
        }
        out.push(name);
    }
    Ok(out)
}

fn default_algorithms() -> Vec<String> {
    vec!["hmac-sha256".into(), "hmac-sha512".into()]
}

fn default_required() -> Vec<String> {
    ["@method", "@authority", "@path"]
        .map(String::from)
        .to_vec()
}

fn default_legacy_required() -> Vec<String> {
    ["(request-target)", "host", "date"]
        .map(String::from)
        .to_vec()
}

fn skew_5m() -> Duration {
    Duration::from_secs(300)
}

fn yes() -> bool {
    true
}
