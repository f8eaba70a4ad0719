//! Listeners: HTTP/1.1 and HTTP/2 (h2c, by prior knowledge or preface) on the gateway
//! addresses, HTTPS (HTTP/1.1 and h2 by ALPN) on the `[tls]` addresses, the `[[tcp]]` listeners (L4), the admin listener, and the optional demo
//! upstream. Shutdown stops accepting, lets in-flight requests (and TCP connections)
//! finish within the grace period, then closes what is left.
//!
//! The proxy runs thread-per-core: each worker thread has its own current-thread runtime,
//! its own `SO_REUSEPORT` listener on every gateway and `[[tcp]]` address, and its own
//! upstream connections, so a request never crosses threads. The admin listener, health
//! checks and reloads run on the caller's runtime.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::body::ProxyBody;
use crate::config::millis;
use crate::gateway::Gateway;
use crate::headers::Peer;
use crate::reload::Reloader;

mod accept;
mod connection;
mod listen;
mod serve;
mod tcp;

pub use listen::LimitsSource;
use listen::{listen, serve_per_core};

/// A started gateway: its bound addresses, and the handle to stop it.
pub struct Running {
    /// The gateway.
    pub gateway: Arc<Gateway>,
    /// The addresses the proxy listens on (ports resolved when the config said 0).
    pub listen: Vec<SocketAddr>,
    /// The addresses it listens on over TLS (`tls.listen`, ports resolved).
    pub tls: Vec<SocketAddr>,
    /// The admin listener's address.
    pub admin: SocketAddr,
    /// The `[[tcp]]` listeners' names and addresses (ports resolved), in config order.
    pub tcp: Vec<(String, SocketAddr)>,
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
        self.gateway.buffer.stop();
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
        // What the last requests logged is written before the process may exit.
        let log = self.gateway.access_log.clone();
        let _ = tokio::task::spawn_blocking(move || log.flush(Duration::from_secs(5))).await;
        if let Some(tracer) = &self.gateway.tracer {
            tracer.flush(Duration::from_secs(5)).await;
        }
        let grace = self.gateway.snapshot().config.server.shutdown_grace_ms;
        self.gateway.buffer.settled(millis(grace)).await;
        tracing::info!("gateway stopped");
    }
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

/// Where a `[tls]` listener finds what terminates TLS (the live snapshot's terminator,
/// with the certificates of the last reload) and counts handshakes.
#[derive(Clone)]
pub(crate) struct TlsSource(Arc<Gateway>);

impl TlsSource {
    fn terminator(&self) -> Option<Arc<crate::tls::Terminator>> {
        self.0.snapshot().tls.clone()
    }

    fn counters(&self) -> &crate::tls::TlsCounters {
        &self.0.tls
    }
}

/// A service the server runs on a listener of its own beside the gateway (the `weir`
/// binary's demo upstream): it answers each request.
pub type SideService =
    Arc<dyn Fn(Request<Incoming>) -> BoxFuture<Response<ProxyBody>> + Send + Sync>;

/// A boxed, sendable future.
pub type BoxFuture<T> = std::pin::Pin<Box<dyn Future<Output = T> + Send>>;

/// Loads the config, builds the first snapshot, binds every listener and starts serving.
/// A config with `server.demo_upstream` needs [`start_with`] and the demo service.
pub async fn start(config_path: &Path) -> anyhow::Result<Running> {
    start_with(config_path, None).await
}

/// [`start`], with the service that `server.demo_upstream` serves.
pub async fn start_with(config_path: &Path, demo: Option<SideService>) -> anyhow::Result<Running> {
    let open_files = raise_open_file_limit();
    let reloader = Reloader::start(config_path).await?;
    let gateway = reloader.gateway().clone();
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

    let demo = match (server.demo_upstream, demo) {
        (Some(addr), Some(service)) => {
            let (addr, task) =
                listen(addr, "demo upstream", side(service), &stopped, grace).await?;
            tasks.push(task);
            Some(addr)
        }
        (Some(_), None) => anyhow::bail!(
            "server.demo_upstream is set, but this program has no demo upstream (the `weir` binary has)"
        ),
        (None, _) => None,
    };

    let admin_reloader = reloader.clone();
    let admin_handler =
        move |request, _client| crate::admin::handle(admin_reloader.clone(), request);
    let (admin, task) = listen(server.admin, "admin", admin_handler, &stopped, grace).await?;
    tasks.push(task);

    tasks.push(tokio::spawn(sweep_repeats(
        gateway.clone(),
        stopped.clone(),
    )));

    let proxy_gateway = gateway.clone();
    let handler = move |request, client| proxy_gateway.clone().handle(request, client);
    let live = gateway.clone();
    let limits: LimitsSource = Arc::new(move || live.snapshot().config.server.limits.clone());
    let tcp: Vec<_> = (snapshot.config.tcp.iter())
        .map(|config| crate::tcp::TcpProxy::new(config.clone(), gateway.clone()))
        .collect();
    let addresses = listen::Addresses {
        plain: &server.listen,
        tls: (&snapshot.config.tls.listen, TlsSource(gateway.clone())),
        tcp: &tcp,
        backlog: server.limits.listen_backlog,
    };
    let admit = (limits, gateway.connections.clone());
    let bound = serve_per_core(addresses, server.workers(), handler, admit, &stopped, grace)?;
    let tcp = (tcp.iter().zip(bound.tcp))
        .map(|(proxy, addr)| (proxy.config().name.clone(), addr))
        .collect();

    let watcher = if server.watch {
        Some(crate::reload::watch(reloader.clone())?)
    } else {
        None
    };
    Ok(Running {
        gateway,
        listen: bound.listen,
        tls: bound.tls,
        admin,
        tcp,
        demo,
        stop,
        tasks,
        workers: bound.threads,
        _watcher: watcher,
    })
}

/// Logs the counts of repeated warnings left unlogged (see [`crate::repeats`]) every
/// `server.log_repeat_interval_ms`, until the server stops.
async fn sweep_repeats(gateway: Arc<Gateway>, mut stopped: watch::Receiver<bool>) {
    loop {
        let interval = gateway.snapshot().config.server.log_repeat_interval_ms;
        // An interval of 0 logs every warning: nothing to sweep, look at the setting again.
        let period = millis(interval.max(1_000));
        tokio::select! {
            _ = tokio::time::sleep(period) => gateway.metrics.log_repeats(interval),
            _ = stopped.wait_for(|&stop| stop) => return,
        }
    }
}

/// A side service running alone.
pub struct RunningService {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl RunningService {
    /// Stops it.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Serves only `service` at `addr` (`what` names it in the log) with the default
/// connection limits; on shutdown, requests in flight get `grace` to finish.
pub async fn serve_alone(
    addr: SocketAddr,
    what: &str,
    service: SideService,
    grace: Duration,
) -> anyhow::Result<RunningService> {
    let (stop, stopped) = watch::channel(false);
    let (_, task) = listen(addr, what, side(service), &stopped, grace).await?;
    Ok(RunningService { stop, task })
}

/// A side service as a connection handler.
fn side(
    service: SideService,
) -> impl Fn(Request<Incoming>, Peer) -> BoxFuture<Response<ProxyBody>>
+ Clone
+ Send
+ Sync
+ Unpin
+ 'static {
    move |request, _client| service(request)
}
