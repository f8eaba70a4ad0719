//! Upstreams: named sets of targets behind one keep-alive connection pool, a load-balancing
//! policy, and health state.

mod balancer;
mod driven;
pub mod health;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::uri::{Authority, PathAndQuery};
use http::{HeaderValue, Request, Response, Uri, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

pub use balancer::fnv1a;
use balancer::{Balancer, Eligible};
use driven::{DrivenBody, DrivenPool};
use health::{HealthRegistry, InFlight, TargetHealth};
use tls::Connector;

use crate::body::{ProxyBody, Streamed, full_body};
use crate::body::{Upload, UploadFault};
use crate::config::{
    HealthCheckConfig, LbPolicy, PassiveConfig, UpstreamConfig, UpstreamProtocol, millis,
};
use crate::error::{ErrorKind, GatewayError};
use crate::resilience::{Bulkhead, Record};
use crate::time::now_ms;

/// One target of an upstream.
#[derive(Debug)]
pub struct Target {
    /// The resolved address.
    pub addr: SocketAddr,
    /// The relative weight.
    pub weight: u32,
    /// `ip:port` for request URIs, parsed once when the config loads.
    authority: Authority,
    /// Live health, shared across snapshots.
    pub health: Arc<TargetHealth>,
}

/// A named upstream.
pub struct Upstream {
    /// The name from the config.
    pub name: String,
    /// The targets, in config order.
    pub targets: Vec<Arc<Target>>,
    /// The policy name, for the admin API.
    pub policy: LbPolicy,
    balancer: Balancer,
    /// One client (and so one connection pool) per worker thread, plus one for the control
    /// thread (health checks), so that a connection is only ever driven by one thread.
    clients: Box<[Client<Connector, ProxyBody>]>,
    /// Plain HTTP/1.1 targets: connections driven by the requests' own tasks (upgrades
    /// still go through `clients`).
    driven: Option<DrivenPool>,
    /// `https` or `http`.
    scheme: http::uri::Scheme,
    /// The name the targets' certificate carries, for TLS upstreams.
    tls_name: Option<String>,
    /// Time to the response headers.
    pub request_timeout: Duration,
    protocol: UpstreamProtocol,
    passive: PassiveConfig,
    /// Active health check settings.
    pub health_check: Option<HealthCheckConfig>,
    /// The outcomes of its calls and its circuit.
    pub record: Arc<Record>,
    /// The cap on its requests in flight (`max_requests`), if any.
    pub bulkhead: Option<Arc<Bulkhead>>,
    /// Its requests and retries in flight, which bound the routes' retries.
    pub retry_budget: crate::resilience::RetryBudget,
    /// Whether, with no target available, requests are spread over all of them.
    panic_routing: bool,
    /// Targets picked in panic (no target available, health ignored): a request's try,
    /// an L4 connection attempt, a buffered delivery.
    pub panics: AtomicU64,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("name", &self.name)
            .field("targets", &self.targets)
            .finish()
    }
}

/// A response from an upstream, with the target's in-flight mark held until it is dropped.
pub struct UpstreamResponse {
    /// The response.
    pub response: Response<UpstreamBody>,
    /// The time to its headers, counted from when the upstream had the whole request.
    pub latency: Duration,
    /// Keeps the target's in-flight count until the response is handed on.
    pub in_flight: InFlight,
}

impl Upstream {
    /// Builds an upstream, resolving target addresses now (never per request).
    pub async fn new(
        name: &str,
        config: &UpstreamConfig,
        registry: &HealthRegistry,
        (record, bulkhead): (Arc<Record>, Option<Arc<Bulkhead>>),
        (workers, base_dir): (usize, &std::path::Path),
    ) -> anyhow::Result<Self> {
        let mut targets = Vec::with_capacity(config.targets.len());
        for target in &config.targets {
            let addr = resolve(target.address()).await.map_err(|e| {
                anyhow::anyhow!("upstream {name:?}: target {:?}: {e}", target.address())
            })?;
            targets.push(Arc::new(Target {
                addr,
                weight: target.weight(),
                authority: Authority::try_from(addr.to_string())
                    .map_err(|e| anyhow::anyhow!("upstream {name:?}: target {addr}: {e}"))?,
                health: registry.get(name, addr),
            }));
        }
        let connector = tls::connector(name, config, base_dir)?;
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .pool_idle_timeout(millis(config.pool_idle_timeout_ms))
            .pool_max_idle_per_host(config.pool_idle_per_target)
            .http2_only(config.protocol != UpstreamProtocol::Http1);
        let clients = (0..=workers)
            .map(|_| builder.build(connector.clone()))
            .collect();
        let driven =
            (config.protocol == UpstreamProtocol::Http1 && config.tls.is_none()).then(|| {
                DrivenPool::new(
                    workers,
                    config.pool_idle_per_target,
                    millis(config.pool_idle_timeout_ms),
                    millis(config.connect_timeout_ms),
                )
            });
        Ok(Self {
            name: name.to_string(),
            balancer: Balancer::new(config.policy, &targets),
            targets,
            policy: config.policy,
            clients,
            driven,
            tls_name: (config.tls.as_ref()).map(|t| tls::server_name(t, config)),
            scheme: match config.tls {
                Some(_) => http::uri::Scheme::HTTPS,
                None => http::uri::Scheme::HTTP,
            },
            request_timeout: millis(config.request_timeout_ms),
            protocol: config.protocol,
            passive: config.passive.clone(),
            health_check: config.health_check.clone(),
            record,
            bulkhead,
            retry_budget: Default::default(),
            panic_routing: config.panic_routing,
            panics: AtomicU64::new(0),
        })
    }

    /// The client of the worker thread running this code.
    fn client(&self) -> &Client<Connector, ProxyBody> {
        &self.clients[crate::worker::index() % self.clients.len()]
    }

    /// The name the targets' certificate carries (TLS upstreams only): the `Host` an
    /// HTTP exchange with the targets' service is addressed to.
    pub fn tls_name(&self) -> Option<&str> {
        self.tls_name.as_deref()
    }

    /// The protocol spoken to the targets.
    pub fn protocol(&self) -> UpstreamProtocol {
        self.protocol
    }

    /// Picks a target by the policy; `hash_key` is called only for consistent hashing.
    pub fn pick(&self, hash_key: impl FnOnce() -> Vec<u8>) -> Result<Arc<Target>, GatewayError> {
        self.pick_other(hash_key, &[])
    }

    /// Picks a target by the policy, other than `tried` while another is available (a
    /// retry goes elsewhere), else any.
    pub fn pick_other(
        &self,
        hash_key: impl FnOnce() -> Vec<u8>,
        tried: &[Arc<Target>],
    ) -> Result<Arc<Target>, GatewayError> {
        let skip: Vec<usize> = (self.targets.iter().enumerate())
            .filter(|(_, t)| tried.iter().any(|tried| Arc::ptr_eq(t, tried)))
            .map(|(i, _)| i)
            .collect();
        let now = now_ms();
        // The key is made once, however many picks need it.
        let (mut hash_key, mut key) = (Some(hash_key), None::<Vec<u8>>);
        let mut hash = || {
            key.get_or_insert_with(|| hash_key.take().map_or_else(Vec::new, |f| f()))
                .clone()
        };
        // No target available: all of them, as if healthy, rather than an outage. Known
        // before the pick, so that the balancer turns once per pick as it does otherwise
        // (a failed pass would move a round robin on, and the panic pass would then
        // always land on the same half of the targets).
        let in_panic = self.panic_routing
            && !(self.targets.iter()).any(|t| t.weight > 0 && t.health.is_available(now));
        let mut pick = |skip: &[usize]| {
            let eligible = Eligible {
                now_ms: now,
                skip,
                in_panic,
            };
            self.balancer.pick(&self.targets, &mut hash, eligible)
        };
        let picked = match pick(&skip) {
            None if !skip.is_empty() => pick(&[]),
            picked => picked,
        };
        if in_panic && picked.is_some() {
            self.panics.fetch_add(1, Ordering::Relaxed);
        }
        picked.map(|i| self.targets[i].clone()).ok_or_else(|| {
            GatewayError::new(
                ErrorKind::NoHealthyTarget,
                format!("no healthy target in upstream {:?}", self.name),
            )
        })
    }

    /// Sends a request to a target and waits up to `timeout` for the response headers,
    /// counted from when the client's `upload` (if any) ended: a slow upload is timed by the
    /// body timeouts, not taken for a slow upstream. The outcome feeds passive ejection and
    /// the upstream's record — unless the client failed its upload, which is no fault of
    /// the target's and ends as a client error.
    pub async fn send(
        &self,
        target: &Target,
        request: Request<ProxyBody>,
        timeout: Duration,
        upload: Option<&Upload>,
    ) -> Result<UpstreamResponse, GatewayError> {
        let in_flight = target.health.start();
        let started = std::time::Instant::now();
        let result = within(timeout, upload, self.exchange(target, request)).await;
        let latency = upload.map_or_else(|| started.elapsed(), |u| u.since_end(started));
        if let Some(fault) = upload
            .and_then(Upload::fault)
            .filter(|_| !matches!(result, Some(Ok(_))))
        {
            return Err(client_fault(fault));
        }
        let outcome = match result {
            None => Err(GatewayError::new(
                ErrorKind::UpstreamTimeout,
                format!(
                    "upstream {:?} did not answer within {} ms",
                    self.name,
                    timeout.as_millis()
                ),
            )),
            Some(Err((unsent, e))) => {
                let error = GatewayError::new(
                    ErrorKind::UpstreamFailed,
                    format!("upstream {:?}: {e}", self.name),
                );
                Err(if unsent { error.unsent() } else { error })
            }
            Some(Ok(response)) => Ok(response),
        };
        let ok = match &outcome {
            Ok(r) => !(self.passive.on_5xx && r.status().is_server_error()),
            Err(_) => false,
        };
        target.health.record(ok, &self.passive);
        let failed = outcome
            .as_ref()
            .map_or(true, |r| r.status().is_server_error());
        self.record.outcomes.record(latency, failed);
        outcome.map(|response| UpstreamResponse {
            response,
            latency,
            in_flight,
        })
    }

    /// One exchange with `target`: on a driven connection when the upstream has them and
    /// the request is no upgrade (hyper's upgrades need the pooled client), else through
    /// the worker's pooled client. An error says whether the request was never sent (no
    /// connection could be opened), and what happened.
    async fn exchange(
        &self,
        target: &Target,
        mut request: Request<ProxyBody>,
    ) -> Result<Response<UpstreamBody>, (bool, String)> {
        let driven = self
            .driven
            .as_ref()
            .filter(|_| !request.headers().contains_key(header::UPGRADE));
        let Some(pool) = driven else {
            // The pooled client dials the URI's authority and writes the origin form.
            let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
            *request.uri_mut() = Uri::builder()
                .scheme(self.scheme.clone())
                .authority(target.authority.clone())
                .path_and_query(path)
                .build()
                .map_err(|e| (true, format!("bad request target: {e}")))?;
            return (self.client().request(request).await)
                .map(|r| r.map(UpstreamBody::Pooled))
                .map_err(|e| (e.is_connect(), describe(&e)));
        };
        // A driven connection writes the URI as it is: the origin form, and a `Host`.
        let origin = (request.uri().path_and_query().cloned())
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        *request.uri_mut() = Uri::from(origin);
        if !request.headers().contains_key(header::HOST) {
            let host = HeaderValue::from_str(target.authority.as_str())
                .map_err(|e| (true, format!("bad target authority: {e}")))?;
            request.headers_mut().insert(header::HOST, host);
        }
        pool.send(target.addr, request)
            .await
            .map(|r| r.map(UpstreamBody::Driven))
            .map_err(|e| (e.is_connect(), e.to_string()))
    }

    /// Opens a TCP connection to `target` within `timeout` (for a `[[tcp]]` listener), with
    /// `TCP_NODELAY` set. The outcome feeds passive ejection as a request's would (a failed
    /// connect is a failure), and the returned mark counts the connection in the target's
    /// in-flight load (least connections) until it is dropped.
    pub async fn connect(
        &self,
        target: &Target,
        timeout: Duration,
    ) -> Result<(tokio::net::TcpStream, InFlight), ConnectError> {
        let in_flight = target.health.start();
        let result = match tokio::time::timeout(
            timeout,
            tokio::net::TcpStream::connect(target.addr),
        )
        .await
        {
            Ok(Ok(stream)) => Ok(stream),
            Ok(Err(e)) => Err(ConnectError::Failed(e)),
            Err(_) => Err(ConnectError::TimedOut),
        };
        target.health.record(result.is_ok(), &self.passive);
        let stream = result?;
        let _ = stream.set_nodelay(true);
        Ok((stream, in_flight))
    }

    /// Sends a request to the next available target and reads the whole response, with a
    /// cap on the body size (for plugins' outbound calls).
    pub async fn call(
        &self,
        request: Request<ProxyBody>,
        timeout: Duration,
        max_body: usize,
    ) -> Result<Response<Bytes>, GatewayError> {
        let target = self.pick(Vec::new)?;
        let started = tokio::time::Instant::now();
        let UpstreamResponse { response, .. } = self.send(&target, request, timeout, None).await?;
        let (parts, body) = response.into_parts();
        // The same budget covers the body: a trickling answer cannot hold the filter.
        let collected = tokio::time::timeout_at(
            started + timeout,
            http_body_util::Limited::new(body, max_body).collect(),
        )
        .await
        .map_err(|_| GatewayError::new(ErrorKind::UpstreamTimeout, "reading body: timed out"))?
        .map_err(|e| GatewayError::new(ErrorKind::UpstreamFailed, format!("reading body: {e}")))?;
        Ok(Response::from_parts(parts, collected.to_bytes()))
    }

    /// One active health check: GET `path`, 2xx or 3xx within `timeout` is healthy.
    async fn probe(&self, target: &Target, path: &str, timeout: Duration) -> bool {
        let Ok(uri) = Uri::builder()
            .scheme(self.scheme.clone())
            .authority(target.authority.clone())
            .path_and_query(path)
            .build()
        else {
            return false;
        };
        let Ok(request) = Request::get(uri).body(full_body(Bytes::new())) else {
            return false;
        };
        match tokio::time::timeout(timeout, self.client().request(request)).await {
            Ok(Ok(response)) => {
                let ok = response.status().is_success() || response.status().is_redirection();
                // Drain so the connection goes back to the pool.
                let _ = response.into_body().collect().await;
                ok
            }
            _ => false,
        }
    }
}

/// Why a connection to a target was not established.
#[derive(Debug)]
pub enum ConnectError {
    /// The connect failed (refused, unreachable).
    Failed(std::io::Error),
    /// It took longer than the connect timeout.
    TimedOut,
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Failed(e) => write!(f, "connect failed: {e}"),
            Self::TimedOut => f.write_str("connect timed out"),
        }
    }
}

/// The body of an upstream's response.
pub enum UpstreamBody {
    /// From the worker's pooled client.
    Pooled(Incoming),
    /// From a driven connection, which reading it drives.
    Driven(DrivenBody),
}

impl UpstreamBody {
    /// Streamed on to the client under the idle timeout `idle`.
    pub fn streamed(self, idle: Duration) -> Streamed {
        match self {
            Self::Pooled(body) => Streamed::new(body, idle),
            Self::Driven(body) => Streamed::boxed(Box::pin(body), idle),
        }
    }
}

impl http_body::Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            Self::Pooled(body) => std::pin::Pin::new(body).poll_frame(cx),
            Self::Driven(body) => std::pin::Pin::new(body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Pooled(body) => body.is_end_stream(),
            Self::Driven(body) => body.is_end_stream(),
        }
    }
}

/// Waits for `future` up to `timeout`, the clock starting once `upload` has ended (the
/// upstream may answer before that, too).
async fn within<F: Future>(
    timeout: Duration,
    upload: Option<&Upload>,
    future: F,
) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    if let Some(upload) = upload.filter(|u| u.ended_at().is_none()) {
        // An upstream that stops reading the body holds the upload up: bound that too, past
        // the upload's own limit, so that a slow client is still told apart (a 408).
        tokio::select! {
            output = &mut future => return Some(output),
            () = upload.ended() => {}
            () = tokio::time::sleep(upload.limit() + timeout) => return None,
        }
    }
    tokio::time::timeout(timeout, future).await.ok()
}

/// The client error for an upload the client failed.
fn client_fault(fault: UploadFault) -> GatewayError {
    match fault {
        UploadFault::TimedOut => GatewayError::new(
            ErrorKind::RequestTimeout,
            "the request body did not arrive in time",
        ),
        UploadFault::Aborted => GatewayError::new(
            ErrorKind::ClientAborted,
            "the client broke off the request body",
        ),
    }
}

/// Resolves `host:port` once.
async fn resolve(address: &str) -> anyhow::Result<SocketAddr> {
    if let Ok(addr) = address.parse() {
        return Ok(addr);
    }
    tokio::net::lookup_host(address)
        .await?
        .next()
        .ok_or_else(|| anyhow::anyhow!("resolves to no address"))
}

/// A client error with its causes, without the request.
fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Spawns the active health checks of these upstreams.
pub fn spawn_health_checks<'a>(upstreams: impl Iterator<Item = &'a Arc<Upstream>>) {
    for upstream in upstreams {
        health::spawn_checks(upstream);
    }
}
