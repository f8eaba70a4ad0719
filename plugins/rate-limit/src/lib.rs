//! Skeleton, replaced by the real filter.

use weir_plugin_sdk::prelude::*;

/// Placeholder config.
#[derive(serde::Deserialize)]
pub struct Config {}

/// Placeholder filter.
pub struct Skeleton;

impl Filter for Skeleton {
    type Config = Config;
    const NAME: &'static str = "rate-limit";
    const VERSION: &'static str = "0.1.0";
    const PHASES: &'static [Phase] = &[Phase::RequestHeaders];

    fn new(_config: Config) -> Result<Self, String> {
        Ok(Self)
    }
}

export_filter!(Skeleton);
