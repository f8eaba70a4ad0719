//! What the gateway keeps for resilience filters (the `upstreams` import): the outcome of
//! every upstream call per upstream and per route, the circuit cells that breaker filters
//! move, and the gateway's load; and the routes' bulkheads. The record outlives snapshots, like target health: a
//! reload neither forgets recent failures nor closes an open circuit.

mod bulkhead;
mod circuit;
mod load;
mod outcomes;
mod retry;

use std::sync::Arc;

use dashmap::DashMap;

pub use bulkhead::{Bulkhead, BulkheadCounts, Bulkheads, Place, Refused};
pub use circuit::{Circuit, CircuitState, CircuitStatus};
pub use load::{Load, LoadGuard};
pub use outcomes::{OutcomeLog, WindowStats};
pub use retry::{Failure, InBudget, RetryBudget, RetryPolicy, failure_of};

/// What a record is kept for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScopeKind {
    /// The calls to one upstream, from every route.
    Upstream,
    /// The upstream calls of one route.
    Route,
}

impl ScopeKind {
    /// `upstream` or `route`, for logs, metrics and the admin API.
    pub fn label(self) -> &'static str {
        match self {
            Self::Upstream => "upstream",
            Self::Route => "route",
        }
    }
}

/// The outcomes and the circuit of one upstream or route.
#[derive(Debug)]
pub struct Record {
    /// What it is the record of.
    pub kind: ScopeKind,
    /// The upstream's or route's name.
    pub name: String,
    /// Recent calls.
    pub outcomes: OutcomeLog,
    /// The circuit breaker filters move.
    pub circuit: Circuit,
}

/// Every record, by scope, and the gateway's load.
#[derive(Debug, Default)]
pub struct Resilience {
    upstreams: DashMap<String, Arc<Record>>,
    routes: DashMap<String, Arc<Record>>,
    /// Requests in flight and recent upstream latency, gateway-wide.
    pub load: Load,
    /// The routes' bulkheads.
    pub bulkheads: Bulkheads,
}

impl Resilience {
    /// The record of `name` in `kind`, created on first use (when a snapshot is built).
    pub fn record(&self, kind: ScopeKind, name: &str) -> Arc<Record> {
        self.map(kind)
            .entry(name.to_string())
            .or_insert_with(|| {
                Arc::new(Record {
                    kind,
                    name: name.to_string(),
                    outcomes: OutcomeLog::default(),
                    circuit: Circuit::default(),
                })
            })
            .clone()
    }

    /// The record of a configured upstream or route; `None` for a name no snapshot used.
    pub fn find(&self, kind: ScopeKind, name: &str) -> Option<Arc<Record>> {
        self.map(kind).get(name).map(|r| r.clone())
    }

    /// Every record, upstreams first, each sorted by name (for the admin API and metrics).
    pub fn records(&self) -> Vec<Arc<Record>> {
        let mut all = Vec::new();
        for kind in [ScopeKind::Upstream, ScopeKind::Route] {
            let mut records: Vec<_> = self.map(kind).iter().map(|r| r.clone()).collect();
            records.sort_by(|a, b| a.name.cmp(&b.name));
            all.extend(records);
        }
        all
    }

    fn map(&self, kind: ScopeKind) -> &DashMap<String, Arc<Record>> {
        match kind {
            ScopeKind::Upstream => &self.upstreams,
            ScopeKind::Route => &self.routes,
        }
    }
}
