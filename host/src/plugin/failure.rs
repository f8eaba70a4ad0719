//! Why a filter call failed, told apart from the runtime's error.

use std::time::Duration;

use wasmtime::Trap;

/// Why a filter call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The call ran past its deadline (or its wall-clock stop) and was stopped.
    Deadline,
    /// The instance tried to grow its memory past its cap.
    Memory,
    /// The plugin trapped (a panic, an abort, a bad host call) or returned something the
    /// gateway cannot use.
    Trap,
    /// A fresh instance could not be created or configured.
    Instantiate,
    /// The plugin returned more than `[runtime.results]` allows.
    Oversized,
    /// The filter is backed off after failing in a row: it was not run.
    BackedOff,
}

impl FailureKind {
    /// Every kind, in metrics order.
    pub const ALL: [Self; 6] = [
        Self::Deadline,
        Self::Memory,
        Self::Trap,
        Self::Instantiate,
        Self::Oversized,
        Self::BackedOff,
    ];

    /// A label for metrics and logs.
    pub fn label(self) -> &'static str {
        match self {
            Self::Deadline => "deadline",
            Self::Memory => "memory",
            Self::Trap => "trap",
            Self::Instantiate => "instantiate",
            Self::Oversized => "oversized",
            Self::BackedOff => "backed_off",
        }
    }
}

/// A failed filter call.
#[derive(Debug, Clone)]
pub struct FilterFailure {
    /// What went wrong.
    pub kind: FailureKind,
    /// The runtime's message.
    pub message: String,
}

impl FilterFailure {
    /// A call stopped at its deadline.
    pub(crate) fn deadline(deadline: Duration) -> Self {
        Self {
            kind: FailureKind::Deadline,
            message: format!("stopped after its {} ms deadline", deadline.as_millis()),
        }
    }

    /// Tells a runtime error apart: deadline, memory cap, oversized result, or a trap.
    pub(crate) fn classify(error: wasmtime::Error, deadline: Duration) -> Self {
        let message = format!("{error:#}");
        let kind = if error.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
            return Self::deadline(deadline);
        } else if message.contains("growing memory") {
            FailureKind::Memory
        } else if message.contains("fuel allocated for hostcalls") {
            // wasmtime ran out of hostcall fuel lifting the result: it was too large.
            FailureKind::Oversized
        } else {
            FailureKind::Trap
        };
        Self { kind, message }
    }
}
