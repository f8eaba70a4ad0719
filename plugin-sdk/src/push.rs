//! Push routers: for each published message and each device it targets, the gateway asks
//! the router where the message goes. A router is a type that implements [`PushRouter`],
//! exported with [`export_push_router!`](crate::export_push_router):
//!
//! ```ignore
//! use weir_plugin_sdk::push::*;
//!
//! struct LiveOrQueue;
//!
//! impl PushRouter for LiveOrQueue {
//!     type Config = serde_json::Value;
//!     const NAME: &'static str = "live-or-queue";
//!     const VERSION: &'static str = "1.0.0";
//!
//!     fn new(_: Self::Config) -> Result<Self, String> {
//!         Ok(Self)
//!     }
//!
//!     fn decide(&self, _: &MessageFacts, device: &DeviceFacts) -> Delivery {
//!         if device.online { Delivery::Live } else { Delivery::Queue }
//!     }
//! }
//!
//! weir_plugin_sdk::export_push_router!(LiveOrQueue);
//! ```
//!
//! `decide` is a plain function of its two arguments: test it natively by building the
//! facts and calling it.

pub use crate::router_bindings::exports::weir::gateway::push_routing::{
    Delivery, DeviceFacts, MessageFacts, Platform, Priority, RouterInfo,
};

/// A push router. One value is created per Wasm instance by [`PushRouter::new`] from the
/// router's config, and then decides for many messages, one at a time.
pub trait PushRouter: Sized + 'static {
    /// The router's config, deserialised from the JSON in the gateway config.
    type Config: serde::de::DeserializeOwned;
    /// Short, stable name shown in logs, metrics and the admin API.
    const NAME: &'static str;
    /// The router's version.
    const VERSION: &'static str;

    /// Builds the router from its config. An error refuses the plugin with that message.
    fn new(config: Self::Config) -> Result<Self, String>;

    /// Where `message` goes for `device`.
    fn decide(&self, message: &MessageFacts, device: &DeviceFacts) -> Delivery;
}

/// The `metadata` export.
#[doc(hidden)]
pub fn router_info<R: PushRouter>() -> RouterInfo {
    RouterInfo {
        name: R::NAME.to_string(),
        version: R::VERSION.to_string(),
    }
}

/// Builds the router from its config text (the `configure` export).
#[doc(hidden)]
pub fn configure<R: PushRouter>(config: &str) -> Result<R, String> {
    R::new(crate::export::parse_config(config)?)
}

/// The `decide` export. The gateway configures every instance before its first decision;
/// were it not configured, the message is kept for the device (queued), never lost.
#[doc(hidden)]
pub fn decide<R: PushRouter>(
    router: Option<&R>,
    message: &MessageFacts,
    device: &DeviceFacts,
) -> Delivery {
    router.map_or(Delivery::Queue, |router| router.decide(message, device))
}

/// Exports a [`PushRouter`] implementation as the component's `push-routing` interface.
#[macro_export]
macro_rules! export_push_router {
    ($router:ty) => {
        const _: () = {
            use $crate::push::{DeviceFacts, Delivery, MessageFacts, RouterInfo};
            use $crate::router_bindings::exports::weir::gateway::push_routing::Guest;

            ::std::thread_local! {
                static ROUTER: ::std::cell::RefCell<::std::option::Option<$router>> =
                    const { ::std::cell::RefCell::new(None) };
            }

            struct Export;

            impl Guest for Export {
                fn metadata() -> RouterInfo {
                    $crate::push::router_info::<$router>()
                }

                fn configure(config: String) -> Result<(), String> {
                    let router = $crate::push::configure::<$router>(&config)?;
                    ROUTER.with(|slot| *slot.borrow_mut() = Some(router));
                    Ok(())
                }

                fn decide(message: MessageFacts, device: DeviceFacts) -> Delivery {
                    ROUTER.with(|slot| {
                        $crate::push::decide(slot.borrow().as_ref(), &message, &device)
                    })
                }
            }

            $crate::router_bindings::export_router_guest!(Export with_types_in $crate::router_bindings);
        };
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    struct OnlineOnly;

    impl PushRouter for OnlineOnly {
        type Config = std::collections::BTreeMap<String, String>;
        const NAME: &'static str = "online-only";
        const VERSION: &'static str = "0.0.1";

        fn new(config: Self::Config) -> Result<Self, String> {
            match config.is_empty() {
                true => Ok(Self),
                false => Err("takes no config".into()),
            }
        }

        fn decide(&self, _: &MessageFacts, device: &DeviceFacts) -> Delivery {
            if device.online {
                Delivery::Live
            } else {
                Delivery::Drop
            }
        }
    }

    fn facts(online: bool) -> (MessageFacts, DeviceFacts) {
        let message = MessageFacts {
            id: "m1".into(),
            priority: Priority::Normal,
            ttl_ms: 1000,
            collapse_key: None,
            payload_bytes: 10,
        };
        let device = DeviceFacts {
            id: "d1".into(),
            user: "u1".into(),
            platform: Platform::Ws,
            online,
            has_token: false,
        };
        (message, device)
    }

    #[test]
    fn configure_parses_the_config_and_an_empty_text_is_no_config() {
        assert!(configure::<OnlineOnly>("").is_ok());
        assert!(configure::<OnlineOnly>("{}").is_ok());
        let refused = configure::<OnlineOnly>(r#"{"a":"b"}"#).err();
        assert_eq!(refused.as_deref(), Some("takes no config"));
        assert!(configure::<OnlineOnly>("[").is_err());
    }

    #[test]
    fn decide_asks_the_configured_router_and_queues_without_one() {
        let router = OnlineOnly;
        let (message, offline) = facts(false);
        assert_eq!(decide(Some(&router), &message, &offline), Delivery::Drop);
        assert_eq!(
            decide::<OnlineOnly>(None, &message, &offline),
            Delivery::Queue
        );
        let (message, online) = facts(true);
        assert_eq!(decide(Some(&router), &message, &online), Delivery::Live);
    }

    #[test]
    fn metadata_names_the_router() {
        let info = router_info::<OnlineOnly>();
        assert_eq!(
            (info.name.as_str(), info.version.as_str()),
            ("online-only", "0.0.1")
        );
    }
}
