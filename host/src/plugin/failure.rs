//! Why a filter call failed, told apart from the runtime's error.

use std::time::Duration;

use wasmtime::Trap;

pub use crate::error::FailureKind;

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

    /// Tells a runtime error apart: deadline, memory cap (`memory_refused`: the limiter
    /// refused a grow during the call), oversized result, or a trap.
    pub(crate) fn classify(
        error: wasmtime::Error,
        deadline: Duration,
        memory_refused: bool,
    ) -> Self {
        let message = format!("{error:#}");
        let kind = if error.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
            return Self::deadline(deadline);
        } else if memory_refused {
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
