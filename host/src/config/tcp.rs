//! `[[tcp]]`: listeners whose TCP streams are proxied, byte for byte, to an upstream's
//! targets (L4). Read at startup: a reload that changes them takes effect after a restart.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use anyhow::bail;
use serde::Deserialize;

use super::Config;

/// One TCP listener and the upstream its connections go to.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct TcpConfig {
    /// The listener's name, unique among `[[tcp]]` entries (the metrics' `listener` label).
    pub name: String,
    /// The address to accept connections on.
    pub listen: SocketAddr,
    /// The upstream (a name in `[upstreams]`) whose targets the connections go to.
    pub upstream: String,
    /// Time to establish the connection to a target (default 1 s).
    #[serde(default = "connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// A connection with no bytes moving either way for this long is closed (default 10 min).
    #[serde(default = "idle_timeout_ms")]
    pub idle_timeout_ms: u64,
    /// Connections open through this listener at once (default 10 000); one more is
    /// accepted and closed at once.
    #[serde(default = "max_connections")]
    pub max_connections: usize,
    /// The copy buffer of each direction of a connection, in bytes (default 16 KiB, from
    /// 1 KiB to 1 MiB): a connection holds two.
    #[serde(default = "buffer_bytes")]
    pub buffer_bytes: usize,
    /// A PROXY protocol header sent to the target before the client's bytes (`"v2"`;
    /// none when absent).
    pub proxy_protocol: Option<ProxyProtocol>,
}

/// The PROXY protocol versions a `[[tcp]]` listener can send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
pub enum ProxyProtocol {
    /// Version 2, the binary header (haproxy's proxy-protocol.txt §2.2).
    #[serde(rename = "v2")]
    V2,
}

fn connect_timeout_ms() -> u64 {
    1_000
}
fn idle_timeout_ms() -> u64 {
    600_000
}
fn max_connections() -> usize {
    10_000
}
fn buffer_bytes() -> usize {
    16 << 10
}

/// The smallest and largest `buffer_bytes`.
const BUFFER_BYTES: std::ops::RangeInclusive<usize> = 1 << 10..=1 << 20;

/// Checks the `[[tcp]]` entries of `config`: names, upstreams, limits, and addresses that
/// no other listener of the config takes.
pub(super) fn validate(config: &Config) -> anyhow::Result<()> {
    let mut names = BTreeSet::new();
    // Port 0 binds a free port: never taken twice.
    let server = &config.server;
    let mut taken: Vec<(SocketAddr, String)> = (server.listen.iter())
        .map(|a| (*a, "server.listen".to_string()))
        .chain((config.tls.listen.iter()).map(|a| (*a, "tls.listen".to_string())))
        .chain([(server.admin, "server.admin".to_string())])
        .chain(
            server
                .demo_upstream
                .map(|a| (a, "server.demo_upstream".to_string())),
        )
        .filter(|(a, _)| a.port() != 0)
        .collect();
    for tcp in &config.tcp {
        let key = |field: &str| format!("tcp {:?}: {field}", tcp.name);
        if tcp.name.is_empty() {
            bail!("tcp: an entry has an empty name");
        }
        if !names.insert(tcp.name.as_str()) {
            bail!("tcp name {:?} is used twice", tcp.name);
        }
        let Some(upstream) = config.upstreams.get(&tcp.upstream) else {
            bail!("{}: unknown upstream {:?}", key("upstream"), tcp.upstream);
        };
        if upstream.tls.is_some() {
            bail!(
                "{}: upstream {:?} has [tls], but a TCP listener passes bytes through as they are and speaks no TLS to its targets",
                key("upstream"),
                tcp.upstream
            );
        }
        if tcp.max_connections == 0 {
            bail!("{} must be at least 1", key("max_connections"));
        }
        if !BUFFER_BYTES.contains(&tcp.buffer_bytes) {
            bail!(
                "{} must be from {} to {}",
                key("buffer_bytes"),
                BUFFER_BYTES.start(),
                BUFFER_BYTES.end()
            );
        }
        super::bounds::duration(&key("connect_timeout_ms"), tcp.connect_timeout_ms, 1)?;
        super::bounds::duration(&key("idle_timeout_ms"), tcp.idle_timeout_ms, 1)?;
        if let Some((_, other)) = taken.iter().find(|(a, _)| *a == tcp.listen) {
            bail!(
                "{}: {} is taken by {other} already",
                key("listen"),
                tcp.listen
            );
        }
        if tcp.listen.port() != 0 {
            taken.push((tcp.listen, key("listen")));
        }
    }
    Ok(())
}
