//! Weir: a programmable API gateway whose every filter is a sandboxed Wasm component.
//!
//! The life of one request is [`Gateway::handle`] (in `proxy.rs`); everything else serves it.

pub mod access_log; // one JSON line per request, written off the request path
pub mod admin; // the admin listener: plugins, routes, upstreams, metrics
pub mod admission; // caps on open client connections, in all and per address
pub mod allocator; // the allocator's tuning: freed memory given back soon
pub mod body; // bodies held in full, with their trailers
pub mod buffer; // writes stored and answered 202 with a ticket, delivered later
pub mod config; // the TOML config: types, defaults, validation
pub mod error; // one error type and the one place it becomes a response
pub mod exchange; // a request on its way through a route, lent to filters
pub mod filters; // running a route's filter chain over a request and its response
pub mod gateway; // the live snapshot and the long-lived services
pub mod headers; // hop-by-hop removal, X-Forwarded-*, request ids
pub mod http_cache; // the response cache caching filters store into: memory, Redis, coalescing
pub mod httpdns; // which healthy addresses serve a name, answered over HTTP
pub mod hygiene; // one canonical path and authority before routing
pub mod metrics; // lock-free counters and histograms, Prometheus text
pub mod plugin; // the Wasm runtime: engine, loading, instance pools, host imports
pub mod proxy; // the life of a request, top to bottom
pub mod push; // devices' long connections, durable messages, delivery and its routing
pub mod redis_link; // the way to Redis for state and push: its three shapes, bounded calls
pub mod reload; // watching files and swapping snapshots
pub mod repeats; // repeated warnings logged once per interval, with a count
pub mod resilience; // upstream outcomes, circuit cells and load, for resilience filters
pub mod router; // routes compiled into a matcher
pub mod server; // listeners, per-core workers, HTTP/1.1, h2c and HTTPS, graceful shutdown
pub mod snapshot; // one immutable, validated view of config + plugins
pub mod state; // kv and rate-limit backends behind one trait
pub mod tcp; // L4: TCP connections of `[[tcp]]` listeners spliced to upstream targets
pub mod telemetry; // spans of sampled requests, exported over OTLP
pub mod time; // the wall clock and the one monotonic clock
pub mod tls; // TLS termination: certificates by SNI, ALPN, client certificates
pub mod upgrade; // upgrades (WebSocket) spliced through
pub mod upstream; // upstream pools, load balancing, health
pub mod worker; // which proxy worker thread runs the current code

pub use gateway::Gateway;
