//! What a configured filter may call: its `grants`, parsed once, when the snapshot is
//! built. An unknown grant, or one naming a secret, upstream or directory that is not
//! there, refuses the config, naming the grant. Every host interface denies by default.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::str::FromStr;

use crate::config::Config;

/// One host interface a filter may be granted, as the config spells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// `log`: write log lines.
    Log,
    /// `clock`: read the wall clock and the monotonic clock (otherwise they stand still).
    Clock,
    /// `kv`: the shared key/value store, in the filter's namespace.
    Kv,
    /// `limits`: rate limits, in the filter's namespace.
    Limits,
    /// `cache`: the response cache, in the filter's namespace.
    Cache,
    /// `upstreams`: read and move the outcome records and circuits of upstreams and routes.
    Upstreams,
    /// `secrets:<name>`: read one named secret.
    Secret(String),
    /// `http:<upstream>`: send requests to one named upstream.
    Http(String),
    /// `files:<dir>`: read one directory (relative to the config file), read-only.
    Files(String),
}

impl FromStr for Grant {
    type Err = String;

    fn from_str(grant: &str) -> Result<Self, String> {
        Ok(match grant.split_once(':') {
            None if grant == "log" => Self::Log,
            None if grant == "clock" => Self::Clock,
            None if grant == "kv" => Self::Kv,
            None if grant == "limits" => Self::Limits,
            None if grant == "upstreams" => Self::Upstreams,
            None if grant == "cache" => Self::Cache,
            Some(("secrets", name)) => Self::Secret(name.to_string()),
            Some(("http", name)) => Self::Http(name.to_string()),
            Some(("files", dir)) => Self::Files(dir.to_string()),
            _ => {
                return Err(format!(
                    "unknown grant {grant:?} (log, clock, kv, limits, upstreams, cache, \
                     secrets:<name>, http:<upstream>, files:<dir>)"
                ));
            }
        })
    }
}

/// What one configured filter may call.
#[derive(Debug, Clone, Default)]
pub struct Grants {
    pub(crate) log: bool,
    pub(crate) clock: bool,
    pub(crate) kv: bool,
    pub(crate) limits: bool,
    pub(crate) upstreams: bool,
    pub(crate) cache: bool,
    pub(crate) secrets: BTreeSet<String>,
    pub(crate) http: BTreeSet<String>,
    /// Directories preopened read-only: (where on the host, the path the plugin uses).
    pub(crate) files: Vec<(PathBuf, String)>,
    /// Whose `kv` keys, rate limits and cache entries these are (assigned by the config, never by the
    /// plugin).
    pub(crate) namespace: String,
}

impl Grants {
    /// Parses a filter's grant strings against `config`: a secret or upstream a grant
    /// names must be configured, a `files:` directory (relative to the config file's
    /// directory) must exist. `kv` and `limits` work in `namespace`.
    pub fn parse(grants: &[String], config: &Config, namespace: String) -> Result<Self, String> {
        let mut g = Self {
            namespace,
            ..Self::default()
        };
        for text in grants {
            let unknown = |name: &str| format!("grant {text:?} names unknown {name:?}");
            match text.parse::<Grant>()? {
                Grant::Log => g.log = true,
                Grant::Clock => g.clock = true,
                Grant::Kv => g.kv = true,
                Grant::Limits => g.limits = true,
                Grant::Upstreams => g.upstreams = true,
                Grant::Cache => g.cache = true,
                Grant::Secret(name) if config.secrets.contains_key(&name) => {
                    g.secrets.insert(name);
                }
                Grant::Http(name) if config.upstreams.contains_key(&name) => {
                    g.http.insert(name);
                }
                Grant::Secret(name) | Grant::Http(name) => return Err(unknown(&name)),
                Grant::Files(dir) => {
                    let path = config.base_dir.join(&dir);
                    if dir.is_empty() || !path.is_dir() {
                        return Err(format!(
                            "grant {text:?}: {} is not a directory",
                            path.display()
                        ));
                    }
                    g.files.push((path, dir));
                }
            }
        }
        Ok(g)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_grant_parses_and_an_unknown_one_is_named() {
        assert_eq!("log".parse(), Ok(Grant::Log));
        assert_eq!("http:auth".parse(), Ok(Grant::Http("auth".into())));
        assert_eq!("secrets:key".parse(), Ok(Grant::Secret("key".into())));
        let error = "network".parse::<Grant>().unwrap_err();
        assert!(error.contains("unknown grant \"network\""), "{error}");
        assert!("log:x".parse::<Grant>().is_err());
    }

    #[test]
    fn a_grant_naming_nothing_configured_is_refused() {
        let config = Config::empty();
        let error = Grants::parse(&["secrets:nope".into()], &config, "ns".into()).unwrap_err();
        assert!(error.contains("names unknown \"nope\""), "{error}");
        let grants = Grants::parse(&["kv".into(), "clock".into()], &config, "ns".into())
            .expect("plain grants");
        assert!(grants.kv && grants.clock && !grants.log);
        assert_eq!(grants.namespace, "ns");
    }
}
