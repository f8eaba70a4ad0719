//! L4 proxying: the life of one TCP connection accepted by a `[[tcp]]` listener. It takes
//! a place under the listener's cap, gets a target from the upstream's pool (its policy,
//! its health; the live snapshot's pool, so reloads of the upstream apply to the next
//! connection), connects under the connect timeout, sends the PROXY protocol header when
//! asked, and splices the two connections until both sides close, the connection idles
//! out, or the gateway stops.

mod proxy_header;
mod splice;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::config::{ProxyProtocol, TcpConfig, millis};
use crate::gateway::Gateway;
use crate::metrics::{TcpFailure, TcpMetrics};
use crate::upstream::ConnectError;
use crate::upstream::health::InFlight;

use splice::{Counters, Spliced, splice};

/// One `[[tcp]]` listener's proxy: its config, the gateway whose upstreams it uses, and
/// its metrics (which also count its open connections for the cap).
pub struct TcpProxy {
    config: TcpConfig,
    gateway: Arc<Gateway>,
    metrics: Arc<TcpMetrics>,
}

/// A connection's place under its listener's cap; dropping it gives the place back.
pub struct Place(Arc<TcpMetrics>);

impl Drop for Place {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}

impl TcpProxy {
    /// The proxy of the listener `config` describes.
    pub fn new(config: TcpConfig, gateway: Arc<Gateway>) -> Arc<Self> {
        let metrics = gateway.metrics.tcp(&config.name);
        Arc::new(Self {
            config,
            gateway,
            metrics,
        })
    }

    /// The listener's config.
    pub fn config(&self) -> &TcpConfig {
        &self.config
    }

    /// Takes a place for a new connection, unless `max_connections` are open already
    /// (then the refusal is counted, and the caller closes the connection at once).
    pub fn admit(&self) -> Option<Place> {
        let open = self.metrics.open.fetch_add(1, Ordering::AcqRel);
        let place = Place(self.metrics.clone());
        if open >= self.config.max_connections as u64 {
            self.metrics.refused.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        self.metrics.accepted.fetch_add(1, Ordering::Relaxed);
        Some(place)
    }

    /// Serves one accepted connection from `peer` to its end; `stop` resolves when the
    /// gateway stopped and the grace period is over.
    pub async fn serve(
        &self,
        client: TcpStream,
        peer: SocketAddr,
        _place: Place,
        stop: impl Future<Output = ()>,
    ) {
        let name = &self.config.name;
        let _ = client.set_nodelay(true);
        // Who the client reached (for the PROXY header): the listener's address, or with
        // a wildcard listener, the address it was accepted on.
        let local = client.local_addr().unwrap_or(self.config.listen);
        let Some((mut target, addr, _in_flight)) = self.reach(peer).await else {
            return;
        };
        if self.config.proxy_protocol == Some(ProxyProtocol::V2) {
            let sent = match proxy_header::v2(peer, local) {
                Ok(header) => {
                    let timeout = millis(self.config.connect_timeout_ms);
                    tokio::time::timeout(timeout, target.write_all(&header)).await
                }
                Err(e) => Ok(Err(e)),
            };
            if !matches!(sent, Ok(Ok(()))) {
                tracing::debug!(listener = %name, %peer, target = %addr, "cannot send the PROXY header");
                return;
            }
        }
        let counters = Counters {
            client_bytes: &self.metrics.bytes_in,
            target_bytes: &self.metrics.bytes_out,
        };
        let limits = (
            self.config.buffer_bytes,
            millis(self.config.idle_timeout_ms),
        );
        match splice(client, target, limits, counters, stop).await {
            Spliced::Closed => {}
            Spliced::Failed(e) => {
                tracing::debug!(listener = %name, %peer, target = %addr, error = %e, "TCP connection failed")
            }
            Spliced::Idle => {
                tracing::debug!(listener = %name, %peer, target = %addr, "TCP connection idle; closed")
            }
            Spliced::Stopped => {
                tracing::debug!(listener = %name, %peer, target = %addr, "TCP connection closed: the grace period is over")
            }
        }
    }

    /// Connects to a target of the listener's upstream, picked by its policy (consistent
    /// hashing hashes the client's IP, as for HTTP). A failed connect is recorded against
    /// its target (passive ejection) and the next pick is tried, at most once per target.
    async fn reach(&self, peer: SocketAddr) -> Option<(TcpStream, SocketAddr, InFlight)> {
        let name = &self.config.name;
        // Only the upstream is held, and only until connected: a long connection must not
        // keep a replaced snapshot (its plugin pools) alive.
        let upstream = self
            .gateway
            .snapshot()
            .upstreams
            .get(&self.config.upstream)
            .cloned();
        let Some(upstream) = upstream else {
            self.metrics.failed(TcpFailure::NoTarget);
            tracing::warn!(listener = %name, upstream = %self.config.upstream, "TCP listener's upstream is gone from the config; restart to change [[tcp]]");
            return None;
        };
        let timeout = millis(self.config.connect_timeout_ms);
        let mut tried = Vec::new();
        while tried.len() < upstream.targets.len() {
            let Ok(target) = upstream.pick(|| peer.ip().to_string().into_bytes()) else {
                self.metrics.failed(TcpFailure::NoTarget);
                tracing::debug!(listener = %name, %peer, "no available target");
                return None;
            };
            if tried.contains(&target.addr) {
                return None;
            }
            tried.push(target.addr);
            match upstream.connect(&target, timeout).await {
                Ok((stream, in_flight)) => return Some((stream, target.addr, in_flight)),
                Err(e) => {
                    self.metrics.failed(match e {
                        ConnectError::Failed(_) => TcpFailure::Connect,
                        ConnectError::TimedOut => TcpFailure::Timeout,
                    });
                    tracing::debug!(listener = %name, %peer, target = %target.addr, error = %e, "cannot reach the target");
                }
            }
        }
        None
    }
}
