//! Listeners: HTTP/1.1 and HTTP/2 (h2c, by prior knowledge or preface) on the gateway
//! addresses, the admin listener, and the optional demo upstream. Shutdown stops accepting,
//! lets in-flight requests finish within the grace period, then closes what is left.
//!
//! The proxy runs thread-per-core: each worker thread has its own current-thread runtime,
//! its own `SO_REUSEPORT` listener on every gateway address, and its own upstream
//! connections, so a request never crosses threads. The admin listener, health checks and
//! reloads run on the caller's runtime.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::millis;
use crate::gateway::Gateway;
use crate::headers::Peer;
use crate::proxy::ProxyBody;

/// The accept backlog of each worker's listener.
const LISTEN_BACKLOG: u32 = 1024;

/// How long a client may take to send the request headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// A started gateway: its bound addresses, and the handle to stop it.
pub struct Running {
    /// The gateway.
    pub gateway: Arc<Gateway>,
    /// The addresses the proxy listens on (ports resolved when the config said 0).
    pub listen: Vec<SocketAddr>,
    /// The admin listener's address.
    pub admin: SocketAddr,
    /// The demo upstream's address, when configured.
    pub demo: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    workers: Vec<std::thread::JoinHandle<()>>,
    _watcher: Option<notify::RecommendedWatcher>,
}

impl Running {
    /// Stops accepting, drains in-flight requests (up to the grace period) and returns when
    /// every listener is closed.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        let workers = self.workers;
        let _ = tokio::task::spawn_blocking(move || {
            for worker in workers {
                let _ = worker.join();
            }
        })
        .await;
        tracing::info!("gateway stopped");
    }
}

thread_local! {
    static WORKER: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// The proxy worker running this code: `1..=workers` on worker threads, `0` elsewhere.
pub fn worker_index() -> usize {
    WORKER.get()
}

/// Loads the config, builds the first snapshot, binds every listener and starts serving.
pub async fn start(config_path: &Path) -> anyhow::Result<Running> {
    let gateway = Gateway::start(config_path).await?;
    let snapshot = gateway.snapshot();
    let server = &snapshot.config.server;
    let grace = millis(server.shutdown_grace_ms);
    let (stop, stopped) = watch::channel(false);
    let mut tasks = Vec::new();

    let demo = match server.demo_upstream {
        Some(addr) => {
            let (addr, task) =
                listen(addr, "demo upstream", crate::demo::handle, &stopped, grace).await?;
            tasks.push(task);
            Some(addr)
        }
        None => None,
    };

    let admin_gateway = gateway.clone();
    let admin_handler =
        move |request, _client| crate::admin::handle(admin_gateway.clone(), request);
    let (admin, task) = listen(server.admin, "admin", admin_handler, &stopped, grace).await?;
    tasks.push(task);

    let proxy_gateway = gateway.clone();
    let handler = move |request, client| proxy_gateway.clone().handle(request, client);
    let (addrs, workers) =
        serve_per_core(&server.listen, server.workers(), handler, &stopped, grace)?;

    let watcher = if server.watch {
        Some(crate::reload::watch(gateway.clone())?)
    } else {
        None
    };
    Ok(Running {
        gateway,
        listen: addrs,
        admin,
        demo,
        stop,
        tasks,
        workers,
        _watcher: watcher,
    })
}

/// A running demo upstream alone.
pub struct RunningDemo {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl RunningDemo {
    /// Stops it.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Serves only the built-in demo upstream at `addr`.
pub async fn start_demo(addr: SocketAddr) -> anyhow::Result<RunningDemo> {
    let (stop, stopped) = watch::channel(false);
    let grace = Duration::from_secs(5);
    let (_, task) = listen(addr, "demo upstream", crate::demo::handle, &stopped, grace).await?;
    Ok(RunningDemo { stop, task })
}

/// Binds `addr` and serves it with `handler` until `stopped` flips; returns the bound
/// address (the port resolved when it was 0) and the serving task.
async fn listen<F, Fut>(
    addr: SocketAddr,
    what: &str,
    handler: F,
    stopped: &watch::Receiver<bool>,
    grace: Duration,
) -> anyhow::Result<(SocketAddr, JoinHandle<()>)>
where
    F: Fn(Request<Incoming>, Peer) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<ProxyBody>> + Send + 'static,
{
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr} ({what}): {e}"))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "{what} listening");
    let task = tokio::spawn(accept_loop(listener, handler, stopped.clone(), grace));
    Ok((addr, task))
}

/// Starts `count` worker threads, each serving every address in `addrs` through its own
/// `SO_REUSEPORT` listener. Every socket is bound here, so errors surface before serving;
/// a port 0 is resolved by the first worker's socket and shared by the others.
fn serve_per_core<F, Fut>(
    addrs: &[SocketAddr],
    count: usize,
    handler: F,
    stopped: &watch::Receiver<bool>,
    grace: Duration,
) -> anyhow::Result<(Vec<SocketAddr>, Vec<std::thread::JoinHandle<()>>)>
where
    F: Fn(Request<Incoming>, Peer) -> Fut + Clone + Send + Sync + 'static,
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
            listeners.push(socket.listen(LISTEN_BACKLOG)?.into_std()?);
        }
    }
    for addr in &bound {
        tracing::info!(%addr, workers = count, "gateway listening (HTTP/1.1, h2c)");
    }
    let mut threads = Vec::with_capacity(count);
    for (index, listeners) in per_worker.into_iter().enumerate() {
        let (handler, stopped) = (handler.clone(), stopped.clone());
        let thread = std::thread::Builder::new()
            .name(format!("weir-worker-{}", index + 1))
            .spawn(move || run_worker(index + 1, listeners, handler, stopped, grace))?;
        threads.push(thread);
    }
    Ok((bound, threads))
}

/// One worker thread: a current-thread runtime serving its listeners until `stopped`.
fn run_worker<F, Fut>(
    index: usize,
    listeners: Vec<std::net::TcpListener>,
    handler: F,
    stopped: watch::Receiver<bool>,
    grace: Duration,
) where
    F: Fn(Request<Incoming>, Peer) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<ProxyBody>> + Send + 'static,
{
    WORKER.set(index);
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

/// Accepts connections until `stop` flips, serving each with `handler` (upgrades such as
/// WebSocket included); then asks every connection to finish gracefully and waits for
/// them, up to `grace`.
async fn accept_loop<F, Fut>(
    listener: TcpListener,
    handler: F,
    mut stop: watch::Receiver<bool>,
    grace: Duration,
) where
    F: Fn(Request<Incoming>, Peer) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<ProxyBody>> + Send + 'static,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    builder.http2().timer(TokioTimer::new());
    // Every connection task holds a clone of `open`; when all are gone, `drained` resolves.
    let (drained, open) = watch::channel(());
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, client) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let handler = handler.clone();
                let peer = Peer::new(client);
                let service = service_fn(move |request| {
                    let response = handler(request, peer.clone());
                    async move { Ok::<_, Infallible>(response.await) }
                });
                let connection = builder
                    .serve_connection_with_upgrades(TokioIo::new(stream), service)
                    .into_owned();
                let (mut stop, open) = (stop.clone(), open.clone());
                tokio::spawn(async move {
                    let mut connection = std::pin::pin!(connection);
                    let result = tokio::select! {
                        result = connection.as_mut() => result,
                        _ = stop.changed() => {
                            connection.as_mut().graceful_shutdown();
                            connection.await
                        }
                    };
                    if let Err(e) = result {
                        tracing::debug!(%client, error = %e, "connection ended with an error");
                    }
                    drop(open);
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
