//! A call's execution budget, in one place: the engine's epoch advances every tick (a
//! ticker thread), and on every tick the running call's budget is checked; a call over
//! its budget traps, one within it yields the worker to other tasks. Time spent queued
//! behind other tasks after yielding is not counted, and neither is time the operating
//! system gave the worker's core to another thread: the budget counts the worker thread's
//! CPU time, so that under load a call does not fail for waiting its turn. (A slice that
//! ends on another thread than it began, after an asynchronous host call, is counted in
//! wall time. The call's wall-clock stop bounds everything else.)

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use wasmtime::{Engine, Store, Trap, UpdateDeadline};

use crate::time::monotonic_ns;

/// How often the epoch advances: the granularity of deadlines and of yielding to the
/// reactor while a plugin runs.
const EPOCH_TICK: Duration = Duration::from_millis(1);

/// Starts the thread that advances `engine`'s epoch every tick, for as long as the engine
/// lives.
pub(crate) fn start_ticker(engine: &Engine) -> std::io::Result<()> {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("weir-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })?;
    Ok(())
}

/// Measures how long a call has been running, leaving out the time it spent queued after
/// yielding and the time its thread was not on a core.
#[derive(Debug, Default)]
pub(crate) struct CallBudget {
    limit_ns: AtomicU64,
    used_ns: AtomicU64,
    /// When the running slice began: the thread, its CPU clock, and the wall clock.
    resumed_on: AtomicU64,
    resumed_cpu_ns: AtomicU64,
    resumed_at_ns: AtomicU64,
    /// Time the call was excused from its wall-clock stop (waits on other requests).
    excused_ns: AtomicU64,
}

/// A number for the current thread (thread ids have no stable integer form).
fn thread_number() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    thread_local! {
        static NUMBER: u64 = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    NUMBER.with(|n| *n)
}

/// The current thread's CPU time.
fn thread_cpu_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    (t.tv_sec as u64).saturating_mul(1_000_000_000) + t.tv_nsec as u64
}

impl CallBudget {
    /// Starts a call with `limit` of execution time. Its first slice is timed by the wall
    /// clock (most calls end within it, and reading a thread's CPU clock is a system
    /// call); each slice after a yield by the CPU clock of the thread it resumed on.
    fn start(&self, limit: Duration) {
        self.limit_ns
            .store(limit.as_nanos() as u64, Ordering::Relaxed);
        self.used_ns.store(0, Ordering::Relaxed);
        self.excused_ns.store(0, Ordering::Relaxed);
        // No thread is numbered 0: the first slice is timed by the wall clock.
        self.resumed_on.store(0, Ordering::Relaxed);
        self.resumed_at_ns.store(monotonic_ns(), Ordering::Relaxed);
    }

    /// Time the running slice has taken: CPU time on the thread it resumed on, wall time
    /// for the first slice or one that moved threads.
    fn ran(&self) -> u64 {
        if self.resumed_on.load(Ordering::Relaxed) == thread_number() {
            thread_cpu_ns().saturating_sub(self.resumed_cpu_ns.load(Ordering::Relaxed))
        } else {
            monotonic_ns().saturating_sub(self.resumed_at_ns.load(Ordering::Relaxed))
        }
    }

    /// Adds the slice that just ended; true when the budget is spent.
    fn spent(&self) -> bool {
        let ran = self.ran();
        let used = self.used_ns.fetch_add(ran, Ordering::Relaxed) + ran;
        used >= self.limit_ns.load(Ordering::Relaxed)
    }

    /// Marks the call as running again, on this thread, after a yield.
    fn resumed(&self) {
        self.resumed_on.store(thread_number(), Ordering::Relaxed);
        self.resumed_cpu_ns
            .store(thread_cpu_ns(), Ordering::Relaxed);
        self.resumed_at_ns.store(monotonic_ns(), Ordering::Relaxed);
    }

    /// Runs `wait` (a host call's wait on another request, at most `longest`) outside the
    /// budget: the slice before it is counted, the wait is not, the slice after it starts
    /// afresh; and the call's wall-clock stop moves out by `longest`.
    pub(crate) async fn excuse<F: Future>(&self, longest: Duration, wait: F) -> F::Output {
        let ran = self.ran();
        self.used_ns.fetch_add(ran, Ordering::Relaxed);
        self.excused_ns
            .fetch_add(longest.as_nanos() as u64, Ordering::Relaxed);
        let output = wait.await;
        self.resumed();
        output
    }

    /// The time the call was excused from its wall-clock stop.
    pub(crate) fn excused(&self) -> Duration {
        Duration::from_nanos(self.excused_ns.load(Ordering::Relaxed))
    }

    /// What is left of the budget now.
    pub(crate) fn left(&self) -> Duration {
        let used = self
            .used_ns
            .load(Ordering::Relaxed)
            .saturating_add(self.ran());
        Duration::from_nanos(self.limit_ns.load(Ordering::Relaxed).saturating_sub(used))
    }
}

/// A store's data that carries the running call's budget.
pub(crate) trait Budgeted: 'static {
    /// The budget, shared with the epoch callback.
    fn budget(&self) -> &Arc<CallBudget>;
}

/// Checks the store's budget on every epoch tick: a trap when it is spent, otherwise a
/// yield to the reactor, so that a busy plugin never holds a worker thread for long.
pub(crate) fn enforce<T: Budgeted>(store: &mut Store<T>) {
    store.epoch_deadline_callback(|ctx| {
        let budget = ctx.data().budget().clone();
        if budget.spent() {
            return Err(Trap::Interrupt.into());
        }
        Ok(UpdateDeadline::YieldCustom(
            1,
            Box::pin(async move {
                tokio::task::yield_now().await;
                budget.resumed();
            }),
        ))
    });
}

/// Starts what runs next in `store` (a call, an instantiation) with `limit` of execution.
pub(crate) fn start<T: Budgeted>(store: &mut Store<T>, limit: Duration) {
    store.data().budget().start(limit);
    store.set_epoch_deadline(1);
}
