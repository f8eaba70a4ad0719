//! Binding and serving: one listener on the control runtime (admin, side services), or
//! `SO_REUSEPORT` listeners on per-core worker threads (the proxy), each with its own
//! current-thread runtime.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::admission::Admission;
use crate::body::ProxyBody;
use crate::config::LimitsConfig;
use crate::headers::Peer;

use super::serve::accept_loop;

/// Binds `addr` and serves it with `handler` until `stopped` flips; returns the bound
/// address (the port resolved when it was 0) and the serving task.
pub(super) async fn listen<F, Fut>(
    addr: SocketAddr,
    what: &str,
    handler: F,
    stopped: &watch::Receiver<bool>,
    grace: Duration,
) -> anyhow::Result<(SocketAddr, JoinHandle<()>)>
where
    F: Fn(Request<Incoming>, Peer) -> Fut + Clone + Send + Sync + Unpin + 'static,
    Fut: Future<Output = Response<ProxyBody>> + Send + 'static,
{
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr} ({what}): {e}"))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "{what} listening");
    // The admin and demo listeners serve a few operators: the default limits suit them.
    let limits: LimitsSource = Arc::new(LimitsConfig::default);
    let task = tokio::spawn(accept_loop(
        listener,
        handler,
        limits,
        Arc::default(),
        stopped.clone(),
        grace,
    ));
    Ok((addr, task))
}

/// Starts `count` worker threads, each serving every address in `addrs` through its own
/// `SO_REUSEPORT` listener. Every socket is bound here, so errors surface before serving;
/// a port 0 is resolved by the first worker's socket and shared by the others.
pub(super) fn serve_per_core<F, Fut>(
    (addrs, backlog): (&[SocketAddr], u32),
    count: usize,
    handler: F,
    admit: (LimitsSource, Arc<Admission>),
    stopped: &watch::Receiver<bool>,
    grace: Duration,
) -> anyhow::Result<(Vec<SocketAddr>, Vec<std::thread::JoinHandle<()>>)>
where
    F: Fn(Request<Incoming>, Peer) -> Fut + Clone + Send + Sync + Unpin + 'static,
    Fut: Future<Output = Response<ProxyBody>> + Send + 'static,
{
    let mut bound: Vec<SocketAddr> = addrs.to_vec();
    let mut per_worker: Vec<Vec<std::net::TcpListener>> = (0..count).map(|_| Vec::new()).collect();
    for listeners in &mut per_worker {
        for addr in &mut bound {
            let socket = if addr.is_ipv4() {
                TcpSocket::new_v4()?
            } else {
                TcpSocket::new_v6()?
            };
            socket.set_reuseport(true)?;
            socket.set_reuseaddr(true)?;
            socket
                .bind(*addr)
                .map_err(|e| anyhow::anyhow!("cannot listen on {addr} (gateway): {e}"))?;
            *addr = socket.local_addr()?;
            listeners.push(socket.listen(backlog)?.into_std()?);
        }
    }
    for addr in &bound {
        tracing::info!(%addr, workers = count, "gateway listening (HTTP/1.1, h2c)");
    }
    let mut threads = Vec::with_capacity(count);
    for (index, listeners) in per_worker.into_iter().enumerate() {
        let (handler, stopped, admit) = (handler.clone(), stopped.clone(), admit.clone());
        let thread = std::thread::Builder::new()
            .name(format!("weir-worker-{}", index + 1))
            .spawn(move || run_worker(index + 1, listeners, handler, admit, stopped, grace))?;
        threads.push(thread);
    }
    Ok((bound, threads))
}

/// One worker thread: a current-thread runtime serving its listeners until `stopped`.
fn run_worker<F, Fut>(
    index: usize,
    listeners: Vec<std::net::TcpListener>,
    handler: F,
    (limits, admission): (LimitsSource, Arc<Admission>),
    stopped: watch::Receiver<bool>,
    grace: Duration,
) where
    F: Fn(Request<Incoming>, Peer) -> Fut + Clone + Send + Sync + Unpin + 'static,
    Fut: Future<Output = Response<ProxyBody>> + Send + 'static,
{
    crate::worker::enter(index);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!(worker = index, error = %e, "worker runtime failed to start");
            return;
        }
    };
    runtime.block_on(async move {
        let mut loops = Vec::new();
        for listener in listeners {
            match TcpListener::from_std(listener) {
                Ok(listener) => {
                    loops.push(tokio::spawn(accept_loop(
                        listener,
                        handler.clone(),
                        limits.clone(),
                        admission.clone(),
                        stopped.clone(),
                        grace,
                    )));
                }
                Err(e) => {
                    tracing::error!(worker = index, error = %e, "worker cannot use its listener")
                }
            }
        }
        for serving in loops {
            let _ = serving.await;
        }
    });
}

/// Where a listener reads its connection limits: the live config for the proxy, the
/// defaults for the admin and demo listeners.
pub type LimitsSource = Arc<dyn Fn() -> LimitsConfig + Send + Sync>;
