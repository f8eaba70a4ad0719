//! A custom push-routing policy: `apns` devices always get the vendor channel, the user
//! `drop_user` gets nothing, and the rest is live when online, else queued. With `mode`
//! `loop` or `panic` every decision spins forever or traps instead.

use serde::Deserialize;
use weir_plugin_sdk::export_push_router;
use weir_plugin_sdk::push::{Delivery, DeviceFacts, MessageFacts, Platform, PushRouter};

/// How the router behaves.
#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Mode {
    /// The policy.
    #[default]
    Policy,
    /// Spin until the deadline stops the call.
    Loop,
    /// Trap.
    Panic,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Config {
    mode: Mode,
    drop_user: Option<String>,
}

struct Custom {
    config: Config,
}

impl PushRouter for Custom {
    type Config = Config;
    const NAME: &'static str = "router-custom";
    const VERSION: &'static str = "0.1.0";

    fn new(config: Config) -> Result<Self, String> {
        Ok(Self { config })
    }

    fn decide(&self, _: &MessageFacts, device: &DeviceFacts) -> Delivery {
        match self.config.mode {
            Mode::Policy => {}
            Mode::Loop => spin(),
            Mode::Panic => panic!("router-custom: told to panic"),
        }
        if self.config.drop_user.as_deref() == Some(device.user.as_str()) {
            Delivery::Drop
        } else if device.platform == Platform::Apns {
            Delivery::Vendor
        } else if device.online {
            Delivery::Live
        } else {
            Delivery::Queue
        }
    }
}

/// Never returns: only the gateway's deadline ends it.
fn spin() -> ! {
    let mut n = 0u64;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

export_push_router!(Custom);
