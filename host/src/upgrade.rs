//! Protocol upgrades passed through (RFC 9110 §7.8; WebSocket, RFC 6455 §4): a request with
//! `Connection: upgrade` and an `Upgrade` the config allows (`server.limits.upgrades`,
//! default `websocket`) is forwarded with both, and when the upstream answers `101
//! Switching Protocols` the two connections are spliced byte for byte until either side
//! closes or the tunnel idles out. Any other upgrade (`h2c` above all: a spliced h2c
//! connection would walk around every route and filter) is ignored, as §7.8 allows, and
//! the request is served as plain HTTP/1.1. HTTP/1.1 only, on both sides.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http::header::{self, HeaderMap, HeaderValue};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::admission::Admitted;

/// An upgrade a client asked for, waiting for the upstream's answer.
pub struct Upgrade {
    protocol: HeaderValue,
    downstream: OnUpgrade,
}

impl Upgrade {
    /// Takes the upgrade `request` asks for, if it is one of `allowed`.
    pub fn take(request: &mut Request<Incoming>, allowed: &[String]) -> Option<Self> {
        let connection_upgrade = request
            .headers()
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
        let protocol = request.headers().get(header::UPGRADE)?.clone();
        let name = protocol.to_str().ok()?.split('/').next()?.trim();
        let allowed = allowed.iter().any(|p| p.eq_ignore_ascii_case(name));
        if !connection_upgrade || !allowed || request.version() != http::Version::HTTP_11 {
            return None;
        }
        Some(Self {
            protocol,
            downstream: hyper::upgrade::on(request),
        })
    }

    /// The client's side of a WebSocket upgrade that the gateway answers itself; `None`
    /// for another protocol.
    pub fn websocket(self) -> Option<OnUpgrade> {
        let name = self.protocol.to_str().ok()?;
        name.eq_ignore_ascii_case("websocket")
            .then_some(self.downstream)
    }

    /// Puts the upgrade headers (removed with the other hop-by-hop headers) back on a
    /// message.
    pub fn restore(&self, headers: &mut HeaderMap) {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, self.protocol.clone());
    }

    /// When the upstream switched protocols, puts the upgrade headers back on its (already
    /// cleaned) response and splices the two connections once both sides have upgraded;
    /// `idle` closes a tunnel with no traffic either way, `tunnels` counts the open ones,
    /// and the tunnel holds the client connection's `place` under the caps.
    pub fn splice<B>(
        self,
        response: &mut Response<B>,
        idle: Duration,
        (tunnels, place): (Arc<AtomicU64>, Option<Arc<Admitted>>),
    ) {
        if response.status() != StatusCode::SWITCHING_PROTOCOLS {
            return;
        }
        self.restore(response.headers_mut());
        let upstream = hyper::upgrade::on(response);
        tokio::spawn(async move {
            match tokio::try_join!(self.downstream, upstream) {
                Ok((downstream, upstream)) => {
                    tunnels.fetch_add(1, Ordering::Relaxed);
                    let (downstream, upstream) = (TokioIo::new(downstream), TokioIo::new(upstream));
                    match tunnel(downstream, upstream, idle).await {
                        Ok(()) => {}
                        Err(e) => {
                            tracing::debug!(error = %e, "upgraded connection ended with an error")
                        }
                    }
                    tunnels.fetch_sub(1, Ordering::Relaxed);
                    // The client connection's place under the caps is given back now.
                    drop(place);
                }
                Err(e) => tracing::debug!(error = %e, "upgrade failed"),
            }
        });
    }
}

/// Copies both ways until either side closes, or nothing moved for `idle`.
async fn tunnel<A, B>(mut a: A, mut b: B, idle: Duration) -> std::io::Result<()>
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let (mut a_read, mut a_write) = tokio::io::split(&mut a);
    let (mut b_read, mut b_write) = tokio::io::split(&mut b);
    let (mut a_buf, mut b_buf) = (vec![0u8; 8192], vec![0u8; 8192]);
    let (mut a_open, mut b_open) = (true, true);
    while a_open || b_open {
        tokio::select! {
            read = a_read.read(&mut a_buf), if a_open => match read? {
                0 => { a_open = false; b_write.shutdown().await?; }
                n => b_write.write_all(&a_buf[..n]).await?,
            },
            read = b_read.read(&mut b_buf), if b_open => match read? {
                0 => { b_open = false; a_write.shutdown().await?; }
                n => a_write.write_all(&b_buf[..n]).await?,
            },
            () = tokio::time::sleep(idle) => {
                tracing::debug!(idle_ms = idle.as_millis() as u64, "tunnel idle; closing it");
                return Ok(());
            }
        }
    }
    Ok(())
}
