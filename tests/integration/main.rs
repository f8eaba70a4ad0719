//! Weir's integration tests, organised by feature. Each test starts real servers on free
//! ports: the gateway (in this process, over real sockets), upstreams, and plugins built
//! from source by `build.rs`.

mod access_log;
mod admin;
mod auth;
mod balancing;
mod bot_rules;
mod buffer;
mod bulkhead;
mod cache;
mod config_fuzz;
mod degradation;
mod deployment;
mod example_config;
mod exhaustion;
mod failures;
mod filters;
mod gray_release;
mod hmac_signature;
mod host_interfaces;
mod httpdns;
mod hygiene;
mod ip_restriction;
mod lifecycle;
mod otlp;
mod polyglot;
mod process;
mod protocol_convert;
mod protocols;
mod push;
mod push_router;
mod rate_limit;
mod reload;
mod request_hygiene;
mod request_validation;
mod retries;
mod routing;
mod sandbox;
mod scaffold;
mod shutdown;
mod state_hardening;
mod tcp_proxy;
mod tls;
mod upgrade;
mod upstream_errors;
mod upstream_pool;
