//! `weir plugin test` for filters whose language has no test runner that can call the
//! gateway's imports: the built component runs in a real gateway, started in this process
//! on 127.0.0.1 in front of the demo echo upstream, and the cases of `plugin-test.toml`
//! (a request, and the status and headers the client and the upstream should see) go
//! through it. The gateway is used as an operator runs it (`weir::server::start` on a
//! generated config), so a case passes here as it would in production.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde::Deserialize;

/// The file of cases, in the filter's directory.
pub(super) const CASES: &str = "plugin-test.toml";

/// How long one case's request may take. The gateway compiles the plugin before it starts
/// serving, so this bounds the filter and the echo, not the compiler.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest response body a case reads.
const MAX_BODY: usize = 1 << 20;

/// `plugin-test.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Suite {
    /// The keys of the filter's `[[routes.filters]]` entry, but `plugin`.
    #[serde(default)]
    filter: toml::Table,
    /// The cases, in order.
    #[serde(rename = "case")]
    cases: Vec<Case>,
}

/// One request and what should come of it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    #[serde(default = "get")]
    method: String,
    /// Path and query.
    #[serde(default = "root")]
    path: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    body: String,
    expect: Expect,
}

/// What the client and the upstream should see.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    status: u16,
    /// Headers of the response the client gets.
    #[serde(default)]
    headers: BTreeMap<String, String>,
    /// Headers of the request the upstream gets (the echo upstream answers with them).
    #[serde(default)]
    upstream_headers: BTreeMap<String, String>,
    /// Text the response body contains.
    body_contains: Option<String>,
}

fn get() -> String {
    "GET".to_string()
}

fn root() -> String {
    "/".to_string()
}

/// Runs the cases of `dir/plugin-test.toml` against the component `wasm`, whose file the
/// config names `<name>.wasm`; prints a line per case and a summary. The gateway's files
/// (config, plugins directory, compiled-plugin cache, kept for the next run) go in
/// `dir/.weir/`.
pub(super) fn run(dir: &Path, name: &str, wasm: &Path) -> anyhow::Result<()> {
    let file = dir.join(CASES);
    let text = std::fs::read_to_string(&file).with_context(|| format!("{}", file.display()))?;
    let suite: Suite = toml::from_str(&text).with_context(|| format!("{}", file.display()))?;
    if suite.cases.is_empty() {
        bail!("{}: no [[case]]", file.display());
    }
    if suite.filter.contains_key("plugin") {
        bail!(
            "{}: [filter] must not name the plugin: it is {name}.wasm",
            file.display()
        );
    }
    let work = dir.join(".weir");
    let plugins = work.join("plugins");
    // Only this component: the gateway would load any other file left in the directory.
    if plugins.exists() {
        std::fs::remove_dir_all(&plugins).with_context(|| format!("{}", plugins.display()))?;
    }
    std::fs::create_dir_all(&plugins).with_context(|| format!("{}", plugins.display()))?;
    let plugin_file = format!("{name}.wasm");
    std::fs::copy(wasm, plugins.join(&plugin_file)).context("copy the component")?;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let failed = runtime.block_on(async {
        let (echo, echo_task) = echo_upstream().await?;
        let config = work.join("weir.toml");
        std::fs::write(&config, gateway_config(echo, &plugin_file, &suite.filter)?)?;
        println!(
            "running {} cases: {plugin_file} in a gateway, before an echo upstream",
            suite.cases.len()
        );
        let gateway = weir::server::start(&config).await?;
        let listen = gateway
            .listen
            .first()
            .context("the gateway listens nowhere")?;
        let url = format!("http://{listen}");
        let mut failed = 0;
        for case in &suite.cases {
            match check(&url, case).await {
                Ok(()) => println!("case {} ... ok", case.name),
                Err(why) => {
                    failed += 1;
                    println!("case {} ... FAILED\n    {why:#}", case.name);
                }
            }
        }
        gateway.shutdown().await;
        echo_task.abort();
        anyhow::Ok(failed)
    })?;
    let passed = suite.cases.len() - failed;
    let result = if failed == 0 { "ok" } else { "FAILED" };
    println!("\ntest result: {result}. {passed} passed; {failed} failed");
    if failed > 0 {
        bail!("{failed} of {} cases failed", suite.cases.len());
    }
    Ok(())
}

/// A gateway on free ports with one route to `echo` through the filter.
fn gateway_config(echo: SocketAddr, plugin: &str, filter: &toml::Table) -> anyhow::Result<String> {
    let mut config: toml::Table = toml::from_str(&format!(
        "[server]\n\
         listen = [\"127.0.0.1:0\"]\n\
         admin = \"127.0.0.1:0\"\n\
         plugins_dir = \"plugins\"\n\
         watch = false\n\
         shutdown_grace_ms = 1000\n\
         [upstreams.echo]\n\
         targets = [\"{echo}\"]\n"
    ))?;
    let mut filter = filter.clone();
    filter.insert("plugin".into(), plugin.into());
    let mut route = toml::Table::new();
    route.insert("name".into(), "test".into());
    route.insert("upstream".into(), "echo".into());
    route.insert("filters".into(), vec![toml::Value::from(filter)].into());
    config.insert("routes".into(), vec![toml::Value::from(route)].into());
    Ok(toml::to_string(&config)?)
}

/// Sends the case's request through the gateway at `url` and compares.
async fn check(url: &str, case: &Case) -> anyhow::Result<()> {
    let mut request = http::Request::builder()
        .method(case.method.as_str())
        .uri(format!("{url}{}", case.path));
    for (name, value) in &case.headers {
        request = request.header(name, value);
    }
    let request = request
        .body(Full::new(Bytes::from(case.body.clone())))
        .context("the case's request")?;
    let client = Client::builder(TokioExecutor::new()).build_http();
    let response = tokio::time::timeout(REQUEST_TIMEOUT, client.request(request))
        .await
        .context("no response in 10 s")??;
    let (parts, body) = response.into_parts();
    let body = tokio::time::timeout(REQUEST_TIMEOUT, Limited::new(body, MAX_BODY).collect())
        .await
        .context("no body in 10 s")?
        .map_err(|e| anyhow::anyhow!("the body: {e}"))?
        .to_bytes();
    let text = String::from_utf8_lossy(&body);
    let expect = &case.expect;
    if parts.status != expect.status {
        bail!(
            "status: expected {}, got {} ({text})",
            expect.status,
            parts.status
        );
    }
    for (name, want) in &expect.headers {
        let got = parts
            .headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()));
        if got.as_deref() != Some(want.as_str()) {
            bail!("response header {name}: expected {want:?}, got {got:?}");
        }
    }
    if !expect.upstream_headers.is_empty() {
        let echoed: serde_json::Value = serde_json::from_slice(&body)
            .ok()
            .filter(|json: &serde_json::Value| json["headers"].is_object())
            .with_context(|| format!("the request did not reach the upstream ({text})"))?;
        for (name, want) in &expect.upstream_headers {
            let got = echoed["headers"][name].as_str();
            if got != Some(want.as_str()) {
                bail!("upstream request header {name}: expected {want:?}, got {got:?}");
            }
        }
    }
    if let Some(want) = &expect.body_contains
        && !text.contains(want.as_str())
    {
        bail!("body: expected it to contain {want:?}, got {text:?}");
    }
    Ok(())
}

/// The demo upstream's echo service on a free port of 127.0.0.1: it answers with the
/// method, path, headers and body it received, as JSON.
async fn echo_upstream() -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let service = hyper::service::service_fn(|request| async {
                let reply = weir_demo::handle(request).await;
                Ok::<_, Infallible>(reply.map(|r| Full::new(r.data)))
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            tokio::spawn(connection);
        }
    });
    Ok((addr, task))
}
