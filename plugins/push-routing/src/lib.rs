//! The default push-routing policy, as `docs/plugins/push-routing.md` documents it:
//!
//! 1. a device with a live connection gets the message on it;
//! 2. an offline device gets nothing of a message with no time left to live (`ttl-ms` 0):
//!    it could only be queued, and a queued message with no ttl is never delivered
//!    (`drop_expired`, on by default);
//! 3. an offline device on a vendor platform (not `ws`) that registered a token gets the
//!    message through its vendor channel when the message's priority is one of
//!    `vendor_for` (`["high"]` by default: waking a device is worth it only for urgent
//!    messages);
//! 4. every other message waits in the offline queue until the device connects.

#![forbid(unsafe_code)]

use serde::Deserialize;
use weir_plugin_sdk::export_push_router;
use weir_plugin_sdk::push::{Delivery, DeviceFacts, MessageFacts, Platform, Priority, PushRouter};

/// A priority as written in the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum PriorityName {
    Normal,
    High,
}

impl PriorityName {
    fn matches(self, priority: Priority) -> bool {
        matches!(
            (self, priority),
            (Self::Normal, Priority::Normal) | (Self::High, Priority::High)
        )
    }
}

/// The router's config.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Config {
    /// The priorities that go to an offline device's vendor channel.
    vendor_for: Vec<PriorityName>,
    /// Whether a message with no ttl left is dropped for an offline device.
    drop_expired: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            vendor_for: vec![PriorityName::High],
            drop_expired: true,
        }
    }
}

/// The default policy, configured.
struct DefaultRouting {
    config: Config,
}

impl DefaultRouting {
    fn vendor_eligible(&self, message: &MessageFacts, device: &DeviceFacts) -> bool {
        device.platform != Platform::Ws
            && device.has_token
            && self
                .config
                .vendor_for
                .iter()
                .any(|p| p.matches(message.priority))
    }
}

impl PushRouter for DefaultRouting {
    type Config = Config;
    const NAME: &'static str = "push-routing";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    fn new(config: Config) -> Result<Self, String> {
        Ok(Self { config })
    }

    fn decide(&self, message: &MessageFacts, device: &DeviceFacts) -> Delivery {
        if device.online {
            Delivery::Live
        } else if self.config.drop_expired && message.ttl_ms == 0 {
            Delivery::Drop
        } else if self.vendor_eligible(message, device) {
            Delivery::Vendor
        } else {
            Delivery::Queue
        }
    }
}

export_push_router!(DefaultRouting);

#[cfg(test)]
mod tests {
    use super::*;
    use weir_plugin_sdk::push::configure;

    fn router(config: &str) -> DefaultRouting {
        match configure::<DefaultRouting>(config) {
            Ok(router) => router,
            Err(e) => panic!("config {config}: {e}"),
        }
    }

    fn message(priority: Priority, ttl_ms: u64) -> MessageFacts {
        MessageFacts {
            id: "m-1".into(),
            priority,
            ttl_ms,
            collapse_key: None,
            payload_bytes: 64,
        }
    }

    fn device(platform: Platform, online: bool, has_token: bool) -> DeviceFacts {
        DeviceFacts {
            id: "d-1".into(),
            user: "alice".into(),
            platform,
            online,
            has_token,
        }
    }

    const HIGH: Priority = Priority::High;
    const NORMAL: Priority = Priority::Normal;

    #[test]
    fn an_online_device_gets_the_message_live_whatever_else_holds() {
        let r = router("{}");
        for platform in [Platform::Ws, Platform::Apns, Platform::Fcm] {
            for (priority, ttl) in [(HIGH, 0), (NORMAL, 60_000)] {
                let d = device(platform, true, true);
                assert_eq!(r.decide(&message(priority, ttl), &d), Delivery::Live);
            }
        }
    }

    #[test]
    fn a_high_priority_message_goes_to_an_offline_vendor_device_with_a_token() {
        let r = router("{}");
        for platform in [Platform::Apns, Platform::Fcm, Platform::Hms, Platform::Mi] {
            let d = device(platform, false, true);
            assert_eq!(r.decide(&message(HIGH, 60_000), &d), Delivery::Vendor);
        }
    }

    #[test]
    fn without_a_token_or_on_ws_or_at_normal_priority_the_message_is_queued() {
        let r = router("{}");
        let no_token = device(Platform::Apns, false, false);
        assert_eq!(r.decide(&message(HIGH, 60_000), &no_token), Delivery::Queue);
        let ws = device(Platform::Ws, false, true);
        assert_eq!(r.decide(&message(HIGH, 60_000), &ws), Delivery::Queue);
        let normal = device(Platform::Fcm, false, true);
        assert_eq!(r.decide(&message(NORMAL, 60_000), &normal), Delivery::Queue);
    }

    #[test]
    fn vendor_for_normal_also_sends_normal_messages_to_the_vendor() {
        let r = router(r#"{"vendor_for":["high","normal"]}"#);
        let d = device(Platform::Fcm, false, true);
        assert_eq!(r.decide(&message(NORMAL, 60_000), &d), Delivery::Vendor);
        let none = router(r#"{"vendor_for":[]}"#);
        assert_eq!(none.decide(&message(HIGH, 60_000), &d), Delivery::Queue);
    }

    #[test]
    fn a_message_with_no_ttl_is_dropped_for_an_offline_device_unless_configured_not_to() {
        let r = router("{}");
        let d = device(Platform::Apns, false, true);
        assert_eq!(r.decide(&message(HIGH, 0), &d), Delivery::Drop);
        assert_eq!(r.decide(&message(NORMAL, 0), &d), Delivery::Drop);
        let keep = router(r#"{"drop_expired":false}"#);
        assert_eq!(keep.decide(&message(HIGH, 0), &d), Delivery::Vendor);
        assert_eq!(keep.decide(&message(NORMAL, 0), &d), Delivery::Queue);
    }

    #[test]
    fn an_unknown_key_or_priority_refuses_the_config() {
        assert!(configure::<DefaultRouting>(r#"{"vendor_for":["urgent"]}"#).is_err());
        assert!(configure::<DefaultRouting>(r#"{"vendorfor":["high"]}"#).is_err());
    }
}
