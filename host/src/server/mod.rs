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

use crate::admission::Admission;
use crate::config::{LimitsConfig, millis};
use crate::gateway::Gateway;
use crate::headers::Peer;
use crate::proxy::ProxyBody;

mod accept;
mod connection;

use accept::AcceptBackoff;
use connection::{Activity, first_bytes};

/// The accept backlog of each worker's listener.
const LISTEN_BACKLOG: u32 = 1024;

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

/// Raises the open-file soft limit to the hard limit, so that the connection caps, not a
/// low default (often 1 024), decide how many clients the gateway holds. Returns the limit.
pub fn raise_open_file_limit() -> Option<u64> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        if let Err(e) = setrlimit(Resource::Nofile, limit) {
            tracing::warn!(error = %e, "cannot raise the open-file limit");
            return getrlimit(Resource::Nofile).current;
        }
    }
    limit.current
}

/// Loads the config, builds the first snapshot, binds every listener and starts serving.
pub async fn start(config_path: &Path) -> anyhow::Result<Running> {
    let open_files = raise_open_file_limit();
    let gateway = Gateway::start(config_path).await?;
    let snapshot = gateway.snapshot();
    let server = &snapshot.config.server;
    let grace = millis(server.shutdown_grace_ms);
    if let Some(files) = open_files.filter(|&f| f < server.limits.max_connections as u64 + 64) {
        tracing::warn!(
            open_files = files,
            max_connections = server.limits.max_connections,
            "the open-file limit is below server.limits.max_connections: accept will fail first"
        );
    }
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
    let live = gateway.clone();
    let limits: LimitsSource = Arc::new(move || live.snapshot().config.server.limits.clone());
    let (addrs, workers) = serve_per_core(
        &server.listen,
        server.workers(),
        handler,
        (limits, gateway.connections.clone()),
        &stopped,
        grace,
    )?;

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
fn serve_per_core<F, Fut>(
    addrs: &[SocketAddr],
    count: usize,
    handler: F,
    admit: (LimitsSource, Arc<Admission>),
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

/// Accepts connections until `stop` flips, serving each with `handler` (upgrades such as
/// WebSocket included) under the connection limits; then asks every connection to finish
/// gracefully and waits for them, up to `grace`.
async fn accept_loop<F, Fut>(
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
                let connection = serve_connection(stream, Peer::new(client), handler.clone(), limits, stop.clone(), grace);
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
/// HTTP/2 until the client closes, the connection idles out, or the gateway stops.
async fn serve_connection<F, Fut>(
    stream: tokio::net::TcpStream,
    peer: Peer,
    handler: F,
    limits: LimitsConfig,
    mut stop: watch::Receiver<bool>,
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
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(millis(limits.header_read_timeout_ms));
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(millis(limits.h2_ping_interval_ms))
        .keep_alive_timeout(millis(limits.h2_ping_timeout_ms))
        .max_concurrent_streams(limits.h2_max_concurrent_streams);
    let activity = Activity::new();
    let requests = activity.clone();
    let service = service_fn(move |request| {
        let guard = requests.request();
        let response = handler(request, peer.clone());
        async move {
            let response = response.await;
            drop(guard);
            Ok::<_, Infallible>(response)
        }
    });
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    let mut connection = std::pin::pin!(connection);
    let idle = millis(limits.idle_timeout_ms);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        _ = stop.changed() => {
            connection.as_mut().graceful_shutdown();
            // The accept loop's grace period bounds this wait.
            connection.await
        }
        () = activity.idle(idle) => {
            tracing::debug!(%client, idle_ms = idle.as_millis() as u64, "closing an idle connection");
            connection.as_mut().graceful_shutdown();
            // A response the client will not read cannot hold the connection either.
            match tokio::time::timeout(grace.min(idle), connection).await {
                Ok(result) => result,
                Err(_) => Ok(()),
            }
        }
    };
    if let Err(e) = result {
        tracing::debug!(%client, error = %e, "connection ended with an error");
    }
}
