//! Serving accepted connections: the accept loop (connection caps, back-off on accept
//! errors, graceful drain) and one connection's life (first bytes, HTTP/1.1 or h2c, idle
//! timeout, graceful shutdown).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::admission::Admission;
use crate::body::ProxyBody;
use crate::config::{LimitsConfig, millis};
use crate::headers::Peer;

use super::LimitsSource;
use super::accept::AcceptBackoff;
use super::connection::{Activity, first_bytes};

/// Accepts connections until `stop` flips, serving each with `handler` (upgrades such as
/// WebSocket included) under the connection limits; then asks every connection to finish
/// gracefully and waits for them, up to `grace`.
pub(super) async fn accept_loop<F, Fut>(
    listener: TcpListener,
    handler: F,
    limits: LimitsSource,
    admission: Arc<Admission>,
    mut stop: watch::Receiver<bool>,
    grace: Duration,
) where
    F: Fn(Request<Incoming>, Peer) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<ProxyBody>> + Send + 'static,
{
    // Every connection task holds a clone of `open`; when all are gone, `drained` resolves.
    let (drained, open) = watch::channel(());
    let mut backoff = AcceptBackoff::default();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, client) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of
                        // spinning, and say so once per burst.
                        let (pause, first) = backoff.failed();
                        if first {
                            tracing::warn!(error = %e, "accept failed; backing off");
                        }
                        tokio::time::sleep(pause).await;
                        continue;
                    }
                };
                if let Some((failures, lasted)) = backoff.succeeded() {
                    tracing::warn!(failures, lasted_ms = lasted.as_millis() as u64, "accept works again");
                }
                let limits = limits();
                let Some(admitted) = admission.admit(client.ip(), limits.max_connections, limits.max_connections_per_ip) else {
                    // Closed at once: over a cap, a connection holds nothing.
                    tracing::debug!(%client, "connection refused: connection limit reached");
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let admitted = Arc::new(admitted);
                let peer = Peer::new(client).holding(admitted.clone());
                let connection = serve_connection(stream, peer, handler.clone(), limits, stop.clone(), grace);
                let open = open.clone();
                tokio::spawn(async move {
                    connection.await;
                    drop((admitted, open));
                });
            }
            _ = stop.changed() => break,
        }
    }
    drop((listener, open));
    if tokio::time::timeout(grace, drained.closed()).await.is_err() {
        tracing::warn!(
            grace_ms = grace.as_millis() as u64,
            "grace period over; closing the connections left"
        );
    }
}

/// Serves one connection: its first bytes within the first-byte timeout, then HTTP/1.1 or
/// HTTP/2 (told apart by those bytes, so that each connection holds only its own protocol's
/// state) until the client closes, the connection idles out, or the gateway stops.
async fn serve_connection<F, Fut>(
    stream: tokio::net::TcpStream,
    peer: Peer,
    handler: F,
    limits: LimitsConfig,
    stop: watch::Receiver<bool>,
    grace: Duration,
) where
    F: Fn(Request<Incoming>, Peer) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<ProxyBody>> + Send + 'static,
{
    let client = peer.addr;
    let Some(io) = first_bytes(stream, millis(limits.first_byte_timeout_ms)).await else {
        tracing::debug!(%client, "connection closed: no request within the first-byte timeout");
        return;
    };
    let h2 = io.is_h2();
    let activity = Activity::new();
    let requests = activity.clone();
    // Each request's future is boxed: hyper keeps a connection's in-flight future in a
    // slot as large as the future for the connection's whole life, idle or not.
    let service = service_fn(move |request| {
        let guard = requests.request();
        let response = handler(request, peer.clone());
        Box::pin(async move {
            let response = response.await;
            drop(guard);
            Ok::<_, Infallible>(response)
        })
    });
    let io = TokioIo::new(io);
    let ending = Ending {
        client,
        activity,
        idle: millis(limits.idle_timeout_ms),
        stop,
        grace,
    };
    let result = if h2 {
        let connection = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .keep_alive_interval(millis(limits.h2_ping_interval_ms))
            .keep_alive_timeout(millis(limits.h2_ping_timeout_ms))
            .max_concurrent_streams(limits.h2_max_concurrent_streams)
            .serve_connection(io, service);
        ending.drive(connection, |c| c.graceful_shutdown()).await
    } else {
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(millis(limits.header_read_timeout_ms))
            .serve_connection(io, service)
            .with_upgrades();
        ending.drive(connection, |c| c.graceful_shutdown()).await
    };
    if let Err(e) = result {
        tracing::debug!(%client, error = %e, "connection ended with an error");
    }
}

/// How a served connection ends: when the client closes it, when it has been idle for
/// `idle`, or when the gateway stops (then gracefully, within `grace`).
struct Ending {
    client: std::net::SocketAddr,
    activity: Arc<Activity>,
    idle: Duration,
    stop: watch::Receiver<bool>,
    grace: Duration,
}

impl Ending {
    /// Runs `connection` until it ends; `shut_down` asks it to finish gracefully.
    async fn drive<C>(
        mut self,
        connection: C,
        shut_down: impl Fn(Pin<&mut C>),
    ) -> Result<(), hyper::Error>
    where
        C: Future<Output = Result<(), hyper::Error>>,
    {
        let mut connection = std::pin::pin!(connection);
        tokio::select! {
            result = connection.as_mut() => result,
            _ = self.stop.changed() => {
                shut_down(connection.as_mut());
                // The accept loop's grace period bounds this wait.
                connection.await
            }
            () = self.activity.idle(self.idle) => {
                tracing::debug!(client = %self.client, idle_ms = self.idle.as_millis() as u64, "closing an idle connection");
                shut_down(connection.as_mut());
                // A response the client will not read cannot hold the connection either.
                match tokio::time::timeout(self.grace.min(self.idle), connection).await {
                    Ok(result) => result,
                    Err(_) => Ok(()),
                }
            }
        }
    }
}
