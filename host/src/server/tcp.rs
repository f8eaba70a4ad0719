//! `[[tcp]]` listeners: accepting connections for the TCP proxy (`crate::tcp`), closing
//! those over the listener's cap at once, and on shutdown giving the open ones the grace
//! period before they are closed.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::tcp::TcpProxy;

use super::accept::AcceptBackoff;

/// Accepts connections until `stop` flips, each served by `proxy` on a task of its own;
/// then waits for them, up to `grace` (each closes itself when the grace period is over).
pub(super) async fn accept_loop(
    listener: TcpListener,
    proxy: Arc<TcpProxy>,
    mut stop: watch::Receiver<bool>,
    grace: Duration,
) {
    // Every connection task holds a clone of `open`; when all are gone, `drained` resolves.
    let (drained, open) = watch::channel(());
    let mut backoff = AcceptBackoff::default();
    loop {
        tokio::select! {
            (stream, client) = backoff.accept(&listener) => {
                let Some(place) = proxy.admit() else {
                    // Closed at once: over the cap, a connection holds nothing.
                    tracing::debug!(listener = %proxy.config().name, %client, "TCP connection refused: max_connections reached");
                    continue;
                };
                let (proxy, open, mut stopped) = (proxy.clone(), open.clone(), stop.clone());
                let over = async move {
                    let _ = stopped.wait_for(|&stop| stop).await;
                    tokio::time::sleep(grace).await;
                };
                tokio::spawn(async move {
                    proxy.serve(stream, client, place, over).await;
                    drop(open);
                });
            }
            _ = stop.changed() => break,
        }
    }
    drop((listener, open));
    if tokio::time::timeout(grace, drained.closed()).await.is_err() {
        tracing::warn!(
            listener = %proxy.config().name,
            grace_ms = grace.as_millis() as u64,
            "grace period over; closing the TCP connections left"
        );
    }
}
