//! Secrets named in the gateway config, visible only to the plugins granted them (grant
//! `secrets:<name>`). A filter reads them when it is configured; a changed secret takes
//! effect on reload.

use super::with;
use crate::HostError;

/// The secret `name`, or `None` if it is not defined; `access-denied` if this plugin may
/// not read it.
pub fn get(name: &str) -> Result<Option<Vec<u8>>, HostError> {
    with(|h| h.secret(name))
}

/// The secret `name`, which the filter cannot do without: the error says what to fix in
/// the gateway config (define it, grant it), for `configure` to refuse with.
pub fn require(name: &str) -> Result<Vec<u8>, String> {
    match get(name) {
        Ok(Some(value)) => Ok(value),
        Ok(None) => Err(format!("secret {name:?} is not defined in [secrets]")),
        Err(HostError::AccessDenied) => Err(format!(
            "secret {name:?} is not granted: add \"secrets:{name}\" to the filter's grants"
        )),
        Err(HostError::Unavailable(why) | HostError::Invalid(why)) => {
            Err(format!("secret {name:?} cannot be read: {why}"))
        }
    }
}

/// [`require`], as UTF-8 text.
pub fn require_text(name: &str) -> Result<String, String> {
    String::from_utf8(require(name)?).map_err(|_| format!("secret {name:?} is not UTF-8 text"))
}
