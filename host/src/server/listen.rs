//! Binding and serving: one listener on the control runtime (admin, side services), or
//! `SO_REUSEPORT` listeners on per-core worker threads (the proxy and the `[[tcp]]`
//! listeners), each with its own current-thread runtime.

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
use crate::tcp::TcpProxy;

use super::TlsSource;
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
        (listener, None),
        handler,
        limits,
        Arc::default(),
        stopped.clone(),
        grace,
    ));
    Ok((addr, task))
}

/// The addresses the proxy workers serve.
pub(super) struct Addresses<'a> {
    /// Clear-text HTTP (`server.listen`).
    pub plain: &'a [SocketAddr],
    /// HTTPS (`tls.listen`), and where its connections find their terminator.
    pub tls: (&'a [SocketAddr], TlsSource),
    /// The `[[tcp]]` listeners.
    pub tcp: &'a [Arc<TcpProxy>],
    /// The accept backlog of every socket.
    pub backlog: u32,
}

/// One worker's sockets: HTTP ones (over TLS with a source), and `[[tcp]]` ones.
struct WorkerSockets {
    http: Vec<(std::net::TcpListener, Option<TlsSource>)>,
    tcp: Vec<(std::net::TcpListener, Arc<TcpProxy>)>,
}

/// Starts `count` worker threads, each serving every address of `addresses` through its
/// own `SO_REUSEPORT` listener. Every socket is bound here, so errors surface before
/// serving; a port 0 is resolved by the first worker's socket and shared by the others.
/// Returns the bound addresses (each kind in config order) and the threads.
pub(super) fn serve_per_core<F, Fut>(
    addresses: Addresses<'_>,
    count: usize,
    handler: F,
    admit: (LimitsSource, Arc<Admission>),
    stopped: &watch::Receiver<bool>,
    grace: Duration,
) -> anyhow::Result<Bound>
where
    F: Fn(Request<Incoming>, Peer) -> Fut + Clone + Send + Sync + Unpin + 'static,
    Fut: Future<Output = Response<ProxyBody>> + Send + 'static,
{
    let Addresses {
        plain: addrs,
        tls: (tls_addrs, tls),
        tcp,
        backlog,
    } = addresses;
    let (bound, per_worker) = bind_per_worker(addrs, count, backlog, "gateway")?;
    for addr in &bound {
        tracing::info!(%addr, workers = count, "gateway listening (HTTP/1.1, h2c)");
    }
    let (tls_bound, tls_per_worker) = bind_per_worker(tls_addrs, count, backlog, "tls")?;
    for addr in &tls_bound {
        tracing::info!(%addr, workers = count, "gateway listening (HTTPS: HTTP/1.1, h2)");
    }
    // A worker's listeners: clear text, then TLS.
    let per_worker = (per_worker.into_iter().zip(tls_per_worker)).map(|(plain, secure)| {
        let plain = plain.into_iter().map(|l| (l, None));
        plain
            .chain(secure.into_iter().map(|l| (l, Some(tls.clone()))))
            .collect::<Vec<_>>()
    });
    let tcp_addrs: Vec<SocketAddr> = tcp.iter().map(|p| p.config().listen).collect();
    let (tcp_bound, tcp_per_worker) = bind_per_worker(&tcp_addrs, count, backlog, "tcp")?;
    for (addr, proxy) in tcp_bound.iter().zip(tcp) {
        let (name, upstream) = (&proxy.config().name, &proxy.config().upstream);
        tracing::info!(%addr, listener = %name, %upstream, workers = count, "TCP proxy listening");
    }
    let mut threads = Vec::with_capacity(count);
    let workers = per_worker.zip(tcp_per_worker);
    for (index, (http, tcp_listeners)) in workers.enumerate() {
        let (handler, stopped, admit) = (handler.clone(), stopped.clone(), admit.clone());
        let tcp = tcp_listeners.into_iter().zip(tcp.iter().cloned()).collect();
        let sockets = WorkerSockets { http, tcp };
        let thread = std::thread::Builder::new()
            .name(format!("weir-worker-{}", index + 1))
            .spawn(move || run_worker(index + 1, sockets, handler, admit, stopped, grace))?;
        threads.push(thread);
    }
    Ok(Bound {
        listen: bound,
        tls: tls_bound,
        tcp: tcp_bound,
        threads,
    })
}

/// What [`serve_per_core`] bound and started.
pub(super) struct Bound {
    /// The gateway addresses.
    pub listen: Vec<SocketAddr>,
    /// The `[tls]` listeners' addresses.
    pub tls: Vec<SocketAddr>,
    /// The `[[tcp]]` listeners' addresses.
    pub tcp: Vec<SocketAddr>,
    /// The worker threads.
    pub threads: Vec<std::thread::JoinHandle<()>>,
}

/// Binds `SO_REUSEPORT` listeners on `addrs` for each of `count` workers (`what` names
/// them in errors); returns the bound addresses and each worker's listeners.
fn bind_per_worker(
    addrs: &[SocketAddr],
    count: usize,
    backlog: u32,
    what: &str,
) -> anyhow::Result<(Vec<SocketAddr>, Vec<Vec<std::net::TcpListener>>)> {
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
                .map_err(|e| anyhow::anyhow!("cannot listen on {addr} ({what}): {e}"))?;
            *addr = socket.local_addr()?;
            listeners.push(socket.listen(backlog)?.into_std()?);
        }
    }
    Ok((bound, per_worker))
}

/// One worker thread: a current-thread runtime serving its listeners (the gateway's and
/// the `[[tcp]]` ones) until `stopped`.
fn run_worker<F, Fut>(
    index: usize,
    WorkerSockets {
        http: listeners,
        tcp,
    }: WorkerSockets,
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
        for (listener, tls) in listeners {
            match TcpListener::from_std(listener) {
                Ok(listener) => {
                    loops.push(tokio::spawn(accept_loop(
                        (listener, tls),
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
        for (listener, proxy) in tcp {
            match TcpListener::from_std(listener) {
                Ok(listener) => {
                    let accepting = super::tcp::accept_loop(listener, proxy, stopped.clone(), grace);
                    loops.push(tokio::spawn(accepting));
                }
                Err(e) => {
                    tracing::error!(worker = index, error = %e, "worker cannot use its TCP listener")
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
