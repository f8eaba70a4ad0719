//! Reading named secrets while the filter is configured, with messages that say what to
//! fix. Secrets are read once per instance; a changed secret takes effect on reload.

use weir_plugin_sdk::HostError;
use weir_plugin_sdk::host::secrets;

/// The secret `name`, or why it cannot be read.
pub fn read(name: &str) -> Result<Vec<u8>, String> {
    match secrets::get(name) {
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

/// The secret `name` as UTF-8 text.
pub fn read_text(name: &str) -> Result<String, String> {
    String::from_utf8(read(name)?).map_err(|_| format!("secret {name:?} is not UTF-8 text"))
}
