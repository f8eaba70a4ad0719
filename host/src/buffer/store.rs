//! What the buffer keeps, per route: the requests waiting for delivery (each with its
//! attempts so far and when it is due), the status of each delivered or dead ticket for a
//! while, and the dead letters. Behind a trait, so that the embedded store (`redb`, the
//! default) and Redis Streams (a fleet) serve the same drainer.

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;

/// A request claimed for one delivery attempt.
#[derive(Debug, Clone)]
pub struct Claimed {
    /// Its ticket.
    pub ticket: String,
    /// The store's own handle on the claim (a Redis Stream entry id; empty when embedded).
    pub handle: String,
    /// Attempts made before this one.
    pub attempts: u32,
    /// The stored request ([`super::entry::Entry`]'s form).
    pub entry: Bytes,
}

/// A ticket's state, as the store knows it.
#[derive(Debug, Clone, PartialEq)]
pub enum TicketState {
    /// Waiting for delivery; `attempts` failed so far, the last with `last_error`.
    Pending {
        /// Failed attempts so far.
        attempts: u32,
        /// Why the last one failed.
        last_error: Option<String>,
    },
    /// Delivered or dead: its status as JSON, as the drainer wrote it.
    Done(String),
}

/// How a claimed request ends.
#[derive(Debug, Clone)]
pub struct Finished {
    /// Dead (its attempts spent) rather than delivered.
    pub dead: bool,
    /// Its status, as JSON.
    pub status: String,
    /// How long the status is kept, in ms.
    pub ttl_ms: u64,
    /// Dead requests kept per route, at most: the oldest beyond go.
    pub max_dead: u64,
}

/// A store's failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError(pub String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "buffer store failed: {}", self.0)
    }
}

impl std::error::Error for StoreError {}

/// A store's reply to one call, later.
pub type Reply<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// The buffer store. Every write is durable when its reply comes.
pub trait BufferStore: Send + Sync {
    /// Stores `entry` under `ticket` for `route`, due now; false (and nothing stored) when
    /// the route already holds `max_pending` requests.
    fn accept(&self, route: &str, ticket: &str, entry: Bytes, max_pending: u64) -> Reply<'_, bool>;
    /// Claims up to `max` requests of `route` due at `now_ms` for this instance, for
    /// `lease_ms` (no other claim gets them meanwhile, unless the lease lapses).
    fn claim(&self, route: &str, max: usize, lease_ms: u64, now_ms: u64)
    -> Reply<'_, Vec<Claimed>>;
    /// Renews the lease on `claimed`; false if it is no longer this instance's.
    fn renew(&self, route: &str, claimed: &Claimed) -> Reply<'_, bool>;
    /// Puts `claimed` back, due at `at_ms`, with `attempts` made and the last `error`.
    fn retry(
        &self,
        route: &str,
        claimed: &Claimed,
        attempts: u32,
        at_ms: u64,
        error: String,
    ) -> Reply<'_, ()>;
    /// Ends `claimed`: delivered or dead, with its status. False if the claim was no
    /// longer this instance's (another instance took it over; nothing is written).
    fn finish(&self, route: &str, claimed: &Claimed, finished: Finished) -> Reply<'_, bool>;
    /// Gives up this instance's claim on `claimed` without an outcome (a store write
    /// failed): it is due again when its lease lapses, or at once where leases are local.
    fn release(&self, route: &str, claimed: &Claimed);
    /// The state of `ticket` of `route`, if the store knows it.
    fn state(&self, route: &str, ticket: &str) -> Reply<'_, Option<TicketState>>;
    /// Requests of `route` waiting for delivery, and dead requests kept.
    fn depth(&self, route: &str) -> Reply<'_, (u64, u64)>;
    /// Forgets statuses kept past their time at `now_ms`.
    fn sweep(&self, now_ms: u64) -> Reply<'_, ()>;
}
