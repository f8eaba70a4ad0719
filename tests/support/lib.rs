//! Test support: real gateways, real upstream servers and a real HTTP client, all on
//! 127.0.0.1 with ports the OS picks. Every server stops when its handle is dropped.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;

pub mod config;
pub mod guest_tools;
pub mod otlp;
pub mod redis;
pub mod tls;

pub use config::{named_route, one_route};

/// Paths of the plugins built by `build.rs`.
pub mod plugins {
    include!(concat!(env!("OUT_DIR"), "/plugins.rs"));
}

/// A directory removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    /// A new empty directory under the system temp dir.
    pub fn new() -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "weir-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).expect("create temp dir");
        Self(path)
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Default for TempDir {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A free port on 127.0.0.1 (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Serves HTTP/1.1 and h2c on a free port with `handler`, until the task is aborted.
pub async fn serve<F, Fut, B>(handler: F) -> (SocketAddr, tokio::task::JoinHandle<()>)
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<B>> + Send + 'static,
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    serve_at([127, 0, 0, 1].into(), handler).await
}

/// Like [`serve`], on a free port of `ip` (any loopback address: `127.0.0.2` for a second
/// host, where a test needs targets on distinct IPs).
pub async fn serve_at<F, Fut, B>(
    ip: std::net::IpAddr,
    handler: F,
) -> (SocketAddr, tokio::task::JoinHandle<()>)
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<B>> + Send + 'static,
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let listener = tokio::net::TcpListener::bind(SocketAddr::new(ip, 0))
        .await
        .expect("bind a test server");
    let addr = listener.local_addr().expect("local addr");
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let handler = handler.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let reply = handler(req);
                    async move { Ok::<_, Infallible>(reply.await) }
                });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, task)
}

/// Writes a file atomically (write aside, then rename), as operators are told to.
pub fn write_atomic(path: &Path, bytes: &[u8]) {
    let tmp = path.with_file_name(format!(
        ".{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file")
    ));
    std::fs::write(&tmp, bytes).expect("write temp file");
    std::fs::rename(&tmp, path).expect("rename into place");
}

/// How a test upstream behaves; switchable while it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum Mode {
    /// 200 with an echo of the request.
    Healthy = 0,
    /// 500 to everything, health checks included.
    Failing = 1,
}

/// A real HTTP server that echoes requests as JSON with its name in `x-upstream`, counts
/// hits, and can be switched to failing or slow.
pub struct TestUpstream {
    /// Its address.
    pub addr: SocketAddr,
    /// Its name.
    pub name: String,
    hits: Arc<AtomicUsize>,
    mode: Arc<AtomicU64>,
    delay_ms: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl TestUpstream {
    /// Starts one on a free port.
    pub async fn start(name: &str) -> Self {
        Self::start_at(name, [127, 0, 0, 1].into()).await
    }

    /// Starts one on a free port of `ip` (a loopback address).
    pub async fn start_at(name: &str, ip: std::net::IpAddr) -> Self {
        let hits = Arc::new(AtomicUsize::new(0));
        let mode = Arc::new(AtomicU64::new(Mode::Healthy as u64));
        let delay_ms = Arc::new(AtomicU64::new(0));
        let (h, m, d, n) = (
            hits.clone(),
            mode.clone(),
            delay_ms.clone(),
            name.to_string(),
        );
        let (addr, task) = serve_at(ip, move |req| {
            let (h, m, d, n) = (h.clone(), m.clone(), d.clone(), n.clone());
            async move { upstream_reply(req, &h, &m, &d, &n).await }
        })
        .await;
        Self {
            addr,
            name: name.to_string(),
            hits,
            mode,
            delay_ms,
            task,
        }
    }

    /// Requests served (health checks excluded).
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::Relaxed)
    }

    /// Switches behaviour.
    pub fn set_mode(&self, mode: Mode) {
        self.mode.store(mode as u64, Ordering::Relaxed);
    }

    /// Delays every answer (health checks excluded).
    pub fn set_delay(&self, delay: Duration) {
        self.delay_ms
            .store(delay.as_millis() as u64, Ordering::Relaxed);
    }
}

impl Drop for TestUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn upstream_reply(
    req: Request<Incoming>,
    hits: &AtomicUsize,
    mode: &AtomicU64,
    delay_ms: &AtomicU64,
    name: &str,
) -> Response<Full<Bytes>> {
    let failing = mode.load(Ordering::Relaxed) == Mode::Failing as u64;
    if req.uri().path() == "/health" {
        let status = if failing {
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            StatusCode::OK
        };
        return Response::builder()
            .status(status)
            .body(Full::new(Bytes::from_static(b"ok")))
            .unwrap();
    }
    hits.fetch_add(1, Ordering::Relaxed);
    let delay = delay_ms.load(Ordering::Relaxed);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let (parts, body) = req.into_parts();
    let body = read_body(body).await;
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in &parts.headers {
        headers
            .entry(k.to_string())
            .or_default()
            .push(String::from_utf8_lossy(v.as_bytes()).into());
    }
    let json = serde_json::json!({
        "upstream": name,
        "method": parts.method.as_str(),
        "path": parts.uri.path_and_query().map_or("/", |p| p.as_str()),
        "version": format!("{:?}", parts.version),
        "headers": headers,
        "body": String::from_utf8_lossy(&body),
    });
    let status = if failing {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    Response::builder()
        .status(status)
        .header("x-upstream", name)
        .header("content-type", "application/json")
        .header("connection", "keep-alive")
        .header("keep-alive", "timeout=30")
        .body(Full::new(Bytes::from(json.to_string())))
        .unwrap()
}

/// The whole body a test server received (empty when it broke off).
pub async fn read_body(body: Incoming) -> Bytes {
    body.collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default()
}

/// The config every test gateway starts from; tests append upstreams and routes.
pub fn base_config() -> String {
    base_config_with("")
}

/// The base config with more `[server]` keys (a grace period of 5 s unless they set one).
pub fn base_config_with(server_extra: &str) -> String {
    let grace = if server_extra.contains("shutdown_grace_ms") {
        ""
    } else {
        "shutdown_grace_ms = 5000\n"
    };
    format!(
        "[server]\n\
         listen = [\"127.0.0.1:0\"]\n\
         admin = \"127.0.0.1:0\"\n\
         plugins_dir = \"plugins\"\n\
         {grace}\
         {server_extra}\
         [runtime]\n\
         max_instances = 200\n\
         max_memory_mib = 128\n"
    )
}

/// A gateway running in this process on free ports, with its own config file and plugins
/// directory.
pub struct TestGateway {
    /// The config file.
    pub config_path: PathBuf,
    /// The plugins directory.
    pub plugins_dir: PathBuf,
    /// The running gateway.
    pub running: Option<weir::server::Running>,
    /// The proxy address.
    pub addr: SocketAddr,
    /// The admin address.
    pub admin: SocketAddr,
    _dir: TempDir,
}

impl TestGateway {
    /// Writes `base_config() + config`, installs `plugins` (file name, built path) and starts.
    pub async fn start(config: &str, plugins: &[(&str, &str)]) -> Self {
        Self::try_start(config, plugins)
            .await
            .expect("gateway starts")
    }

    /// Like `start`, with more `[server]` keys.
    pub async fn start_with_server(
        server_extra: &str,
        config: &str,
        plugins: &[(&str, &str)],
    ) -> Self {
        Self::try_start_with(
            &format!("{}{config}", base_config_with(server_extra)),
            plugins,
        )
        .await
        .expect("gateway starts")
    }

    /// Like `start`, but returns the startup error.
    pub async fn try_start(config: &str, plugins: &[(&str, &str)]) -> anyhow::Result<Self> {
        Self::try_start_with(&format!("{}{config}", base_config()), plugins).await
    }

    /// Starts with this whole config text (no `base_config()`), for tests that need their
    /// own `[runtime]`.
    pub async fn start_full(full_config: &str, plugins: &[(&str, &str)]) -> anyhow::Result<Self> {
        Self::try_start_with(full_config, plugins).await
    }

    /// Starts with this whole config text.
    async fn try_start_with(full_config: &str, plugins: &[(&str, &str)]) -> anyhow::Result<Self> {
        let dir = TempDir::new();
        let plugins_dir = dir.path().join("plugins");
        std::fs::create_dir_all(&plugins_dir)?;
        for (file, source) in plugins {
            std::fs::copy(source, plugins_dir.join(file))?;
        }
        let config_path = dir.path().join("weir.toml");
        std::fs::write(&config_path, full_config)?;
        let running = weir::server::start(&config_path).await?;
        Ok(Self {
            addr: running.listen[0],
            admin: running.admin,
            running: Some(running),
            config_path,
            plugins_dir,
            _dir: dir,
        })
    }

    /// `http://<gateway><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `http://<admin><path>`.
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    /// The bound address of the `[[tcp]]` listener `name`.
    pub fn tcp_addr(&self, name: &str) -> SocketAddr {
        let running = self.running.as_ref().expect("the gateway runs");
        (running.tcp.iter())
            .find(|(n, _)| n == name)
            .map(|(_, addr)| *addr)
            .unwrap_or_else(|| panic!("no [[tcp]] listener {name:?}"))
    }

    /// The admin API's `/metrics` text.
    pub async fn metrics(&self, client: &TestClient) -> String {
        let reply = client.get(&self.admin_url("/metrics")).await;
        String::from_utf8_lossy(&reply.body).into_owned()
    }

    /// Replaces the config (atomically) with `base_config() + config`.
    pub fn write_config(&self, config: &str) {
        write_atomic(
            &self.config_path,
            format!("{}{config}", base_config()).as_bytes(),
        );
    }

    /// A `POST /reload` of the admin API, without headers.
    pub fn reload_request(&self) -> Request<Full<Bytes>> {
        request("POST", &self.admin_url("/reload"), &[], "")
    }

    /// Sends [`Self::reload_request`] and returns the answer.
    pub async fn reload(&self, client: &TestClient) -> Reply {
        client.send(self.reload_request()).await
    }

    /// `GET /status` of the admin API, as JSON.
    pub async fn status(&self, client: &TestClient) -> serde_json::Value {
        client.get(&self.admin_url("/status")).await.json()
    }

    /// Waits up to 10 s for `/status` to call the state backend healthy; true once it does.
    pub async fn backend_healthy_again(&self, client: &TestClient) -> bool {
        eventually(Duration::from_secs(10), || async {
            self.status(client).await["state"]["healthy"] == true
        })
        .await
    }

    /// Installs a plugin file (atomically).
    pub fn install_plugin(&self, file: &str, source: &str) {
        let bytes = std::fs::read(source).expect("read plugin");
        write_atomic(&self.plugins_dir.join(file), &bytes);
    }

    /// `GET /plugins` of the admin API, as `file -> entry`.
    pub async fn plugin_status(&self, client: &TestClient) -> BTreeMap<String, serde_json::Value> {
        let reply = client.get(&self.admin_url("/plugins")).await;
        let json = reply.json();
        json["plugins"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| {
                (
                    p["file"].as_str().unwrap_or_default().to_string(),
                    p.clone(),
                )
            })
            .collect()
    }

    /// The live generation.
    pub fn generation(&self) -> u64 {
        self.running
            .as_ref()
            .map_or(0, |r| r.gateway.snapshot().generation)
    }

    /// Shuts down gracefully.
    pub async fn shutdown(mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown().await;
        }
    }
}

/// The startup error of `started`, with its causes (`{:#}`); panics, naming `what`, when
/// the gateway started instead.
pub async fn refusal(started: anyhow::Result<TestGateway>, what: &str) -> String {
    match started {
        Ok(gw) => {
            gw.shutdown().await;
            panic!("{what} was accepted");
        }
        Err(error) => format!("{error:#}"),
    }
}

/// A finished response.
#[derive(Debug)]
pub struct Reply {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
    /// Trailers (empty when there were none).
    pub trailers: HeaderMap,
}

impl Reply {
    /// The body as JSON (`null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// An HTTP client with keep-alive (HTTP/1.1, or HTTP/2 with prior knowledge).
#[derive(Clone)]
pub struct TestClient {
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Default for TestClient {
    fn default() -> Self {
        Self::http1()
    }
}

impl TestClient {
    /// HTTP/1.1.
    pub fn http1() -> Self {
        Self {
            client: Client::builder(TokioExecutor::new()).build(HttpConnector::new()),
        }
    }

    /// HTTP/2 over cleartext (h2c, prior knowledge).
    pub fn h2c() -> Self {
        Self {
            client: Client::builder(TokioExecutor::new())
                .http2_only(true)
                .build(HttpConnector::new()),
        }
    }

    /// Sends a request and reads the whole response. Panics on a transport error: a test
    /// that expects a response must get one.
    pub async fn send(&self, request: Request<Full<Bytes>>) -> Reply {
        self.try_send(request)
            .await
            .expect("request failed at the transport level")
    }

    /// Sends a request; transport errors are returned.
    pub async fn try_send(&self, request: Request<Full<Bytes>>) -> anyhow::Result<Reply> {
        let response = self.client.request(request).await?;
        let (parts, body) = response.into_parts();
        let collected = body.collect().await?;
        let trailers = collected.trailers().cloned().unwrap_or_default();
        Ok(Reply {
            status: parts.status,
            headers: parts.headers,
            body: collected.to_bytes(),
            trailers,
        })
    }

    /// `GET url`.
    pub async fn get(&self, url: &str) -> Reply {
        self.send(get(url, &[])).await
    }
}

/// A GET request with headers.
pub fn get(url: &str, headers: &[(&str, &str)]) -> Request<Full<Bytes>> {
    request("GET", url, headers, Bytes::new())
}

/// A `POST` of a JSON body (`content-type: application/json`).
pub fn post_json(url: &str, body: &str) -> Request<Full<Bytes>> {
    request(
        "POST",
        url,
        &[("content-type", "application/json")],
        body.to_string(),
    )
}

/// A request with a method, headers and body.
pub fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Request<Full<Bytes>> {
    let mut builder = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    builder.body(Full::new(body.into())).expect("valid request")
}

/// Polls `check` every 20 ms until it returns true or `timeout` passes; returns the last
/// answer.
pub async fn eventually<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sends `request` as raw bytes on a new connection (so that no client library tidies it)
/// and reads until the gateway closes; give requests `Connection: close`. Bounded by 10 s.
pub async fn raw_exchange(addr: SocketAddr, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer));
    let _ = read
        .await
        .expect("the gateway answers and closes within 10 s");
    String::from_utf8_lossy(&answer).into_owned()
}

/// Sends `head` (a request line and header lines, each ending in CRLF), then
/// `Connection: close` and the blank line, through [`raw_exchange`].
pub async fn raw_head(addr: SocketAddr, head: &str) -> String {
    raw_exchange(addr, &format!("{head}Connection: close\r\n\r\n")).await
}

/// The status code of a raw HTTP/1.1 answer (0 when there is none).
pub fn raw_status(answer: &str) -> u16 {
    answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}
