//! Hostile test filter. Requests carrying `x-attack: 1` make it do what `mode` says:
//! `loop` spins forever, `memory` allocates until it can't, `panic` panics. Other
//! requests pass. `mode = "refuse"` makes `configure` fail.

use serde::Deserialize;
use weir_plugin_sdk::{Filter, Phase, Request, RequestDecision, export_filter};

#[derive(Debug, Deserialize)]
struct Config {
    mode: String,
}

struct Hostile {
    mode: String,
}

impl Filter for Hostile {
    type Config = Config;
    const NAME: &'static str = "hostile";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const PHASES: &'static [Phase] = &[Phase::RequestHeaders];

    fn new(config: Config) -> Result<Self, String> {
        match config.mode.as_str() {
            "loop" | "memory" | "panic" => Ok(Self { mode: config.mode }),
            other => Err(format!("refusing mode {other:?}")),
        }
    }

    fn on_request(&self, request: &Request) -> RequestDecision {
        if request.header("x-attack").as_deref() != Some("1") {
            return RequestDecision::proceed();
        }
        match self.mode.as_str() {
            "loop" => spin(),
            "memory" => hoard(),
            _ => panic!("hostile filter panics on purpose"),
        }
    }
}

fn spin() -> ! {
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

fn hoard() -> ! {
    let mut kept: Vec<Vec<u8>> = Vec::new();
    loop {
        kept.push(vec![0xAB; 1 << 20]);
        std::hint::black_box(&kept);
    }
}

export_filter!(Hostile);
