//! Hostile test filter. Requests carrying `x-attack: 1` make it do what `mode` says:
//! `loop` spins forever, `memory` allocates until it can't, `panic` panics, `sleep` sleeps
//! in a WASI clock call for `x-sleep-ms` (default 10 s), `headers` returns `x-count`
//! headers (default 100,000) that all alias one `x-size`-byte value (default 1 KiB). Other
//! requests pass. `response-panic` panics in `on-response` instead, and `recurse` recurses
//! until the stack overflows. `mode = "time"` answers every request with what its WASI clocks say;
//! `mode = "sleep-configure"` sleeps 10 s in `configure`; `mode = "refuse"` makes
//! `configure` fail. `steal` reads every variable and the private-context keys of the
//! first 64 filters through the raw handle, as a filter without the SDK could, answers
//! what it found in `x-stolen`, and sets its own context to `stolen`.

use std::time::{Duration, Instant, SystemTime};

use serde::Deserialize;
use weir_plugin_sdk::{
    Filter, HeaderChanges, Phase, Request, RequestChanges, RequestDecision, Response,
    ResponseDecision, ResponseView, export_filter,
};

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
            "loop" | "memory" | "panic" | "sleep" | "headers" | "time" | "response-panic"
            | "recurse" | "steal" | "leak" => Ok(Self { mode: config.mode }),
            "sleep-configure" => {
                std::thread::sleep(Duration::from_secs(10));
                Ok(Self { mode: config.mode })
            }
            other => Err(format!("refusing mode {other:?}")),
        }
    }

    fn phases(&self) -> Vec<Phase> {
        let mut phases = Self::PHASES.to_vec();
        if self.mode == "response-panic" {
            phases.push(Phase::ResponseHeaders);
        }
        phases
    }

    fn on_response(&self, request: &Request, _response: &ResponseView) -> ResponseDecision {
        // The request's headers went upstream; what on-request saw travels in a variable.
        if request.variable("hostile.attack").is_some() {
            panic!("hostile filter panics in the response phase on purpose");
        }
        ResponseDecision::proceed()
    }

    fn on_request(&self, request: &Request) -> RequestDecision {
        if self.mode == "time" {
            return RequestDecision::Respond(clocks());
        }
        if request.header("x-attack").as_deref() != Some("1") {
            return RequestDecision::proceed();
        }
        let number = |name: &str, default: usize| {
            request
                .header(name)
                .and_then(|v| v.parse().ok())
                .unwrap_or(default)
        };
        match self.mode.as_str() {
            "response-panic" => {
                RequestDecision::Continue(RequestChanges::new().set_variable("hostile.attack", "1"))
            }
            "recurse" => {
                let depth = recurse(std::hint::black_box(1));
                RequestDecision::Respond(Response::new(200).header("x-depth", depth.to_string()))
            }
            "steal" => steal(request),
            "loop" => spin(),
            "memory" => hoard(),
            "leak" => {
                // Never freed: the instance's memory grows by this much with every call.
                let kib = number("x-leak-kib", 64);
                std::hint::black_box(Box::leak(vec![1u8; kib << 10].into_boxed_slice()));
                RequestDecision::proceed()
            }
            "sleep" => {
                std::thread::sleep(Duration::from_millis(number("x-sleep-ms", 10_000) as u64));
                RequestDecision::proceed()
            }
            "headers" => aliasing_headers(number("x-count", 100_000), number("x-size", 1024)),
            _ => panic!("hostile filter panics on purpose"),
        }
    }
}

/// What the WASI clocks say: the wall clock in ms since the Unix epoch and the
/// nanoseconds the monotonic clock moved over a 5 ms sleep.
fn clocks() -> Response {
    let wall = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let start = Instant::now();
    std::thread::sleep(Duration::from_millis(5));
    let moved = start.elapsed().as_nanos();
    Response::new(200)
        .header("x-wall-ms", wall.to_string())
        .header("x-mono-moved-ns", moved.to_string())
}

/// `count` headers whose values all point at the same `size` bytes of guest memory: a
/// component written by hand can alias list elements like this; the host would copy the
/// value once per header while lifting the result.
fn aliasing_headers(count: usize, size: usize) -> RequestDecision {
    let shared: &'static mut [u8] = Box::leak(vec![b'a'; size].into_boxed_slice());
    let ptr = shared.as_mut_ptr();
    let mut changes = RequestChanges::new();
    for _ in 0..count {
        // SAFETY: not sound as Rust (several owners of one allocation); it stands in for a
        // hand-written component. The host refuses the result before the guest's
        // post-return would free these values.
        let value = unsafe { Vec::from_raw_parts(ptr, size, size) };
        changes = changes.append_header("x-h", value);
    }
    RequestDecision::Continue(changes)
}

/// Everything the raw handle shows of other filters' variables and contexts.
fn steal(request: &Request) -> RequestDecision {
    let raw = request.raw();
    let mut found: Vec<String> = raw
        .variables()
        .into_iter()
        .map(|v| format!("{}={}", v.key, v.value))
        .collect();
    for n in 0..64 {
        if let Some(value) = raw.variable(&format!("weir.context/{n}")) {
            found.push(format!("weir.context/{n}={value}"));
        }
    }
    let changes = RequestChanges::new()
        .set_context(&"stolen")
        .set_response_header("x-stolen", found.join(",").into_bytes());
    RequestDecision::Continue(changes)
}

/// Recurses without end (the frame keeps a buffer so the stack fills fast).
#[allow(unconditional_recursion)]
fn recurse(n: u64) -> u64 {
    let frame = std::hint::black_box([n; 64]);
    recurse(frame[0].wrapping_add(1)).wrapping_add(frame[63])
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
