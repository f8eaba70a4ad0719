//! Weir's integration tests, organised by feature. Each test starts real servers on free
//! ports: the gateway (in this process, over real sockets), upstreams, and plugins built
//! from source by `build.rs`.

mod admin;
mod auth;
mod balancing;
mod degradation;
mod example_config;
mod failures;
mod filters;
mod hmac_signature;
mod host_interfaces;
mod hygiene;
mod polyglot;
mod process;
mod protocol_convert;
mod protocols;
mod rate_limit;
mod reload;
mod routing;
mod sandbox;
mod shutdown;
mod upgrade;
mod upstream_errors;
