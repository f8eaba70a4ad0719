//! Exporting a [`Filter`] as the component's `filter` interface: the macro holds the one
//! filter of the instance, the functions here do the rest.

use crate::bindings::weir::gateway::types as wit;
use crate::{Filter, FilterInfo, Request, RequestDecision, ResponseDecision, ResponseView};

/// Parses a filter's JSON config; `{}` stands for no config.
#[doc(hidden)]
pub fn parse_config<C: serde::de::DeserializeOwned>(json: &str) -> Result<C, String> {
    let json = if json.trim().is_empty() { "{}" } else { json };
    let mut reader = serde_json::Deserializer::from_str(json);
    serde_path_to_error::deserialize(&mut reader).map_err(|e| {
        // The JSON is the gateway's rendering of the TOML table: its line and column would
        // point nowhere the author can look, the field's path does.
        let inner = e.inner();
        let message = inner.to_string();
        let place = format!(" at line {} column {}", inner.line(), inner.column());
        let message = message.strip_suffix(&place).unwrap_or(&message);
        match e.path().to_string().as_str() {
            "." => format!("invalid config: {message}"),
            path => format!("invalid config: {path}: {message}"),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::parse_config;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Config {
        limits: Vec<Limit>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Limit {
        window: u64,
    }

    #[test]
    fn config_errors_name_the_field_not_a_json_column() {
        let error = parse_config::<Config>(r#"{"limits":[{"window":"1s"}]}"#).unwrap_err();
        assert!(error.starts_with("invalid config: limits[0].window: invalid type"), "{error}");
        assert!(!error.contains("column"), "{error}");
        let error = parse_config::<Config>(r#"{"limits":[],"nonsense":1}"#).unwrap_err();
        assert!(error.contains("unknown field `nonsense`"), "{error}");
        assert!(!error.contains("column"), "{error}");
    }
}

/// Builds the filter from its config text (the `configure` export).
#[doc(hidden)]
pub fn configure<F: Filter>(config: &str) -> Result<F, String> {
    F::new(parse_config(config)?)
}

/// The metadata export, shared by every filter type: the configured filter's phases once
/// `configure` has run, the declared ones before.
#[doc(hidden)]
pub fn filter_info<F: Filter>(configured: Option<&F>) -> FilterInfo {
    FilterInfo {
        name: F::NAME.to_string(),
        version: F::VERSION.to_string(),
        phases: configured.map_or_else(|| F::PHASES.to_vec(), F::phases),
    }
}

/// The `on-request` export.
#[doc(hidden)]
pub fn on_request<F: Filter>(filter: Option<&F>, handle: &wit::Request) -> wit::RequestAction {
    let request = Request::new(handle);
    let decision = match filter {
        Some(filter) => filter.on_request(&request),
        None => RequestDecision::not_configured(),
    };
    decision.into_action(&request)
}

/// The `on-response` export.
#[doc(hidden)]
pub fn on_response<F: Filter>(
    filter: Option<&F>,
    request: &wit::Request,
    response: &wit::ResponseView,
) -> wit::ResponseAction {
    let (request, response) = (Request::new(request), ResponseView::new(response));
    match filter {
        Some(filter) => filter.on_response(&request, &response).into(),
        None => ResponseDecision::proceed().into(),
    }
}

/// Exports a [`Filter`] implementation as the component's `filter` interface.
#[macro_export]
macro_rules! export_filter {
    ($filter:ty) => {
        const _: () = {
            use $crate::bindings::exports::weir::gateway::filter::Guest;
            use $crate::bindings::weir::gateway::types as wit;

            ::std::thread_local! {
                static FILTER: ::std::cell::RefCell<::std::option::Option<$filter>> =
                    const { ::std::cell::RefCell::new(None) };
            }

            struct Export;

            impl Guest for Export {
                fn metadata() -> wit::FilterInfo {
                    FILTER
                        .with(|slot| $crate::export::filter_info::<$filter>(slot.borrow().as_ref()))
                }

                fn configure(config: String) -> Result<(), String> {
                    let filter = $crate::export::configure::<$filter>(&config)?;
                    FILTER.with(|slot| *slot.borrow_mut() = Some(filter));
                    Ok(())
                }

                fn on_request(request: &wit::Request) -> wit::RequestAction {
                    FILTER.with(|slot| $crate::export::on_request(slot.borrow().as_ref(), request))
                }

                fn on_response(
                    request: &wit::Request,
                    response: &wit::ResponseView,
                ) -> wit::ResponseAction {
                    FILTER.with(|slot| {
                        $crate::export::on_response(slot.borrow().as_ref(), request, response)
                    })
                }
            }

    $crate::bindings::export_guest!(Export with_types_in $crate::bindings);
        };
    };
}
