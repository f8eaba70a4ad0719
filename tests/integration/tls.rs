//! HTTPS end to end: `[tls]` listeners in front of a real upstream, spoken to by rustls
//! clients and by curl (OpenSSL). ALPN settles HTTP/2 or HTTP/1.1; the upstream and the
//! filters see `https`; SNI picks the certificate (wildcards included, the first as the
//! default); a renewed certificate is served after the watcher's reload while an open
//! connection keeps going, and a broken one is refused with the file named; client
//! certificates are required or optional, and a verified one reaches filters and the
//! upstream as `X-Forwarded-Client-Cert` while a client's own claim never does; too old a
//! TLS version, a handshake that never finishes and clear text on the TLS port are closed
//! and counted.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use weir_tests::plugins::TESTER;
use weir_tests::tls::SignedCertificate;
use weir_tests::{
    Reply, TempDir, TestClient, TestGateway, TestUpstream, eventually, one_route, write_atomic,
};

/// A route through the `tester` filter, which reports what it sees of the connection.
const REPORTING: &str = r#"
[[routes.filters]]
plugin = "tester.wasm"
config = { report_connection = true }
"#;

/// Files of certificates and keys written by a test.
struct Certs {
    dir: TempDir,
}

impl Certs {
    fn new() -> Self {
        Self {
            dir: TempDir::new(),
        }
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    /// Writes `signed`'s certificate and key as `<name>.pem` and `<name>.key`; returns
    /// their `[[tls.certificates]]` entry.
    fn write(&self, name: &str, signed: &SignedCertificate) -> String {
        let (cert, key) = signed.pem();
        write_atomic(&self.path(&format!("{name}.pem")), cert.as_bytes());
        write_atomic(&self.path(&format!("{name}.key")), key.as_bytes());
        format!(
            "[[tls.certificates]]\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
            self.path(&format!("{name}.pem")).display(),
            self.path(&format!("{name}.key")).display()
        )
    }
}

/// A `[tls]` table on a free port with `extra` keys, then its certificate entries.
fn tls_table(extra: &str, certificates: &str) -> String {
    format!("[tls]\nlisten = [\"127.0.0.1:0\"]\n{extra}\n{certificates}")
}

/// The gateway's TLS address.
fn tls_addr(gw: &TestGateway) -> SocketAddr {
    gw.running.as_ref().expect("the gateway runs").tls[0]
}

/// A client that trusts `roots`, offers `alpn`, and presents `identity` (certificate PEM,
/// key PEM) when asked; TLS 1.2 only when `tls12_only`.
fn client(
    roots: &[&str],
    alpn: &[&[u8]],
    identity: Option<&(String, String)>,
    tls12_only: bool,
) -> Arc<rustls::ClientConfig> {
    let mut store = rustls::RootCertStore::empty();
    for pem in roots {
        for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            store.add(cert.expect("a CA")).expect("a CA");
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&rustls::SupportedProtocolVersion] = if tls12_only {
        &[&rustls::version::TLS12]
    } else {
        &[&rustls::version::TLS13, &rustls::version::TLS12]
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .expect("versions")
        .with_root_certificates(store);
    let mut config = match identity {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = CertificateDer::pem_slice_iter(cert.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .expect("a certificate");
            let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).expect("a key");
            builder
                .with_client_auth_cert(chain, key)
                .expect("a client certificate")
        }
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// A TLS connection to `addr` for `name` (an IP address sends no SNI).
async fn connect(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    name: &str,
) -> std::io::Result<TlsStream<TcpStream>> {
    let name = ServerName::try_from(name.to_string()).expect("a server name");
    let tcp = TcpStream::connect(addr).await?;
    let handshake = tokio_rustls::TlsConnector::from(config).connect(name, tcp);
    tokio::time::timeout(Duration::from_secs(10), handshake)
        .await
        .map_err(|_| std::io::Error::other("handshake timed out"))?
}

/// The leaf certificate the server presented.
fn presented(stream: &TlsStream<TcpStream>) -> Vec<u8> {
    let (_, connection) = stream.get_ref();
    let chain = connection.peer_certificates().expect("a certificate");
    chain[0].to_vec()
}

/// An HTTP connection over TLS: HTTP/2 when ALPN settled it, else HTTP/1.1.
enum Sender {
    H1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

impl Sender {
    async fn over(stream: TlsStream<TcpStream>) -> Self {
        let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
        let io = TokioIo::new(stream);
        if h2 {
            let (sender, connection) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                    .await
                    .expect("h2 handshake");
            tokio::spawn(connection);
            Self::H2(sender)
        } else {
            let (sender, connection) = hyper::client::conn::http1::handshake(io)
                .await
                .expect("http/1.1 handshake");
            tokio::spawn(connection);
            Self::H1(sender)
        }
    }

    /// `GET https://localhost<path>` with `headers`; transport errors are returned.
    async fn get(&mut self, path: &str, headers: &[(&str, &str)]) -> anyhow::Result<Reply> {
        let mut request = Request::get(format!("https://localhost{path}"));
        if let Self::H1(_) = self {
            request = request.uri(path).header("host", "localhost");
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Full::new(Bytes::new()))?;
        let response = match self {
            Self::H1(sender) => sender.send_request(request).await?,
            Self::H2(sender) => sender.send_request(request).await?,
        };
        let (parts, body) = response.into_parts();
        let collected = body.collect().await?;
        Ok(Reply {
            status: parts.status,
            headers: parts.headers,
            trailers: collected.trailers().cloned().unwrap_or_default(),
            body: collected.to_bytes(),
        })
    }
}

/// One request on a new connection.
async fn get_once(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    name: &str,
    headers: &[(&str, &str)],
) -> anyhow::Result<Reply> {
    let stream = connect(addr, config, name).await?;
    Sender::over(stream).await.get("/who", headers).await
}

/// The upstream's record of a header (its first value; empty when absent).
fn seen(reply: &Reply, name: &str) -> String {
    let json = reply.json();
    json["headers"][name][0].as_str().unwrap_or("").to_string()
}

/// Waits up to 10 s for every `weir_tls_handshakes_total{<line>` of `lines` in the
/// metrics (a handshake is counted just after the client hears of its failure); prints
/// them when they do not come.
async fn counted_in_metrics(gw: &TestGateway, lines: &[&str]) -> bool {
    let client = TestClient::default();
    let found = eventually(Duration::from_secs(10), || async {
        let metrics = gw.metrics(&client).await;
        (lines.iter()).all(|l| metrics.contains(&format!("weir_tls_handshakes_total{{{l}")))
    })
    .await;
    if !found {
        let metrics = gw.metrics(&client).await;
        eprintln!(
            "{}",
            metrics
                .lines()
                .filter(|l| l.contains("tls"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    found
}

#[tokio::test(flavor = "multi_thread")]
async fn https_requests_reach_the_upstream_as_https_over_h2_and_http1() {
    let up = TestUpstream::start("up").await;
    let certs = Certs::new();
    let signed = SignedCertificate::for_names(&["localhost"]);
    let config = format!(
        "{}{}",
        tls_table("", &certs.write("site", &signed)),
        one_route(up.addr, REPORTING)
    );
    let gw = TestGateway::start(&config, &[("tester.wasm", TESTER)]).await;
    let addr = tls_addr(&gw);

    for (alpn, h2) in [
        (&[&b"h2"[..], b"http/1.1"][..], true),
        (&[&b"http/1.1"[..]][..], false),
        (&[][..], false),
    ] {
        let config = client(&[&signed.ca_pem], alpn, None, false);
        let stream = connect(addr, config, "localhost")
            .await
            .expect("a handshake");
        let settled = stream.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
        assert_eq!(
            settled.as_deref() == Some(b"h2"),
            h2,
            "ALPN {alpn:?}: {settled:?}"
        );
        let spoofed = [
            ("x-forwarded-client-cert", "Subject=\"CN=admin\""),
            ("x-forwarded-proto", "http"),
        ];
        let reply =
            (Sender::over(stream).await.get("/who", &spoofed).await).expect("an HTTPS exchange");
        assert_eq!(reply.status, 200, "ALPN {alpn:?}");
        let json = reply.json();
        assert_eq!(
            json["version"], "HTTP/1.1",
            "the upstream is spoken to as configured"
        );
        assert_eq!(seen(&reply, "x-forwarded-proto"), "https", "ALPN {alpn:?}");
        assert!(seen(&reply, "forwarded").contains(";proto=https"), "{json}");
        assert_eq!(
            seen(&reply, "x-tester-scheme"),
            "https",
            "the filter sees https"
        );
        assert_eq!(
            seen(&reply, "x-tester-client-cert"),
            "none",
            "a client's own claim of a certificate never reaches a filter"
        );
        assert!(
            json["headers"]["x-forwarded-client-cert"].is_null(),
            "{json}"
        );
    }

    // The certificate's end is in the metrics, for alerts before it comes.
    let metrics = gw.metrics(&TestClient::default()).await;
    let pem = certs.path("site.pem").display().to_string();
    let line = (metrics.lines())
        .find(|l| l.starts_with("weir_tls_certificate_not_after_seconds") && l.contains(&pem))
        .unwrap_or_else(|| panic!("no expiry line for {pem}"));
    let not_after: i64 = line
        .rsplit(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .expect("a number");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time");
    assert!(not_after > now.as_secs() as i64 + 86_400, "{line}");

    // The same upstream over the clear-text listener says http.
    let plain = TestClient::default().get(&gw.url("/who")).await;
    assert_eq!(seen(&plain, "x-forwarded-proto"), "http");
    assert_eq!(seen(&plain, "x-tester-scheme"), "http");

    // curl (OpenSSL) over HTTP/2 and HTTP/1.1.
    std::fs::write(certs.path("ca.pem"), &signed.ca_pem).expect("write the CA");
    for flag in ["--http2", "--http1.1"] {
        let (ca, port) = (certs.path("ca.pem"), addr.port());
        let out = tokio::task::spawn_blocking(move || {
            std::process::Command::new("curl")
                .args(["-sS", "--max-time", "10", flag, "--cacert"])
                .arg(ca)
                .arg("--resolve")
                .arg(format!("localhost:{port}:127.0.0.1"))
                .args(["-w", "\n%{http_version} %{http_code}"])
                .arg(format!("https://localhost:{port}/curl"))
                .output()
                .expect("curl runs")
        })
        .await
        .expect("join");
        let text = String::from_utf8_lossy(&out.stdout);
        let want = if flag == "--http2" {
            "2 200"
        } else {
            "1.1 200"
        };
        assert!(
            text.ends_with(want),
            "curl {flag}: {text} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains("\"x-forwarded-proto\":[\"https\"]"), "{text}");
    }
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sni_picks_the_certificate_and_the_first_is_the_default() {
    let up = TestUpstream::start("up").await;
    let certs = Certs::new();
    let first = SignedCertificate::for_names(&["a.test", "127.0.0.1"]);
    let wildcard = SignedCertificate::for_names(&["*.b.test"]);
    let entries = certs.write("a", &first) + &certs.write("b", &wildcard);
    let config = format!("{}{}", tls_table("", &entries), one_route(up.addr, ""));
    let gw = TestGateway::start(&config, &[]).await;
    let addr = tls_addr(&gw);
    let trusting = client(&[&first.ca_pem, &wildcard.ca_pem], &[], None, false);
    let (first_der, wildcard_der) = (
        first.certificate.der().to_vec(),
        wildcard.certificate.der().to_vec(),
    );

    for (name, want) in [
        ("a.test", &first_der),
        ("x.b.test", &wildcard_der),
        // An IP address sends no SNI: the first certificate, which names that address.
        ("127.0.0.1", &first_der),
    ] {
        let stream = connect(addr, trusting.clone(), name)
            .await
            .unwrap_or_else(|e| panic!("a handshake for {name}: {e}"));
        assert!(
            presented(&stream) == *want,
            "{name} got another certificate"
        );
        let reply = Sender::over(stream)
            .await
            .get("/", &[])
            .await
            .expect("an exchange");
        assert_eq!(reply.status, 200, "{name}");
    }
    // A name no certificate covers gets the first, which the client then refuses.
    let refused = connect(addr, trusting, "c.test").await;
    assert!(
        refused.is_err(),
        "c.test must not verify against a.test's certificate"
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_renewed_certificate_is_served_after_the_watchers_reload_and_open_connections_go_on() {
    let up = TestUpstream::start("up").await;
    let certs = Certs::new();
    let old = SignedCertificate::for_names(&["localhost"]);
    let entry = certs.write("site", &old);
    let config = format!("{}{}", tls_table("", &entry), one_route(up.addr, ""));
    let gw = TestGateway::start(&config, &[]).await;
    let addr = tls_addr(&gw);
    let trusting = client(&[&old.ca_pem], &[b"h2"], None, false);
    let stream = connect(addr, trusting.clone(), "localhost")
        .await
        .expect("a handshake");
    let mut open = Sender::over(stream).await;
    assert_eq!(open.get("/", &[]).await.expect("an exchange").status, 200);
    let generation = gw.generation();

    // The files are replaced (as a renewal tool does); the watcher reloads.
    let renewed = SignedCertificate::for_names(&["localhost"]);
    certs.write("site", &renewed);
    let renewed_der = renewed.certificate.der().to_vec();
    let both = client(&[&old.ca_pem, &renewed.ca_pem], &[b"h2"], None, false);
    let served = eventually(Duration::from_secs(10), || {
        let both = both.clone();
        let renewed_der = &renewed_der;
        async move {
            match connect(addr, both, "localhost").await {
                Ok(stream) => presented(&stream) == *renewed_der,
                Err(_) => false,
            }
        }
    })
    .await;
    assert!(
        served,
        "the renewed certificate is served to new handshakes"
    );
    assert!(gw.generation() > generation);
    let again = open
        .get("/", &[])
        .await
        .expect("the open connection goes on");
    assert_eq!(again.status, 200);

    // A broken certificate is refused with the file named; the renewed one keeps serving.
    let generation = gw.generation();
    write_atomic(
        &certs.path("site.pem"),
        b"-----BEGIN CERTIFICATE-----\nnot base64\n",
    );
    let client_http = TestClient::default();
    let named = eventually(Duration::from_secs(10), || async {
        let status = gw.status(&client_http).await;
        status.to_string().contains("site.pem")
    })
    .await;
    assert!(named, "{}", gw.status(&client_http).await);
    assert_eq!(
        gw.generation(),
        generation,
        "the broken files are not served"
    );
    // A key that is not the certificate's is refused too (the key first: the files are
    // never a good pair in between).
    write_atomic(&certs.path("site.key"), old.pem().1.as_bytes());
    write_atomic(&certs.path("site.pem"), renewed.pem().0.as_bytes());
    let mismatch = eventually(Duration::from_secs(10), || async {
        gw.status(&client_http)
            .await
            .to_string()
            .contains("site.key")
    })
    .await;
    assert!(mismatch, "{}", gw.status(&client_http).await);
    assert_eq!(gw.generation(), generation);
    let stream = connect(addr, both, "localhost")
        .await
        .expect("still served");
    assert!(presented(&stream) == renewed_der);
    gw.shutdown().await;
}

/// A gateway whose clients must (or may) present a certificate signed by `clients`' CA.
async fn mtls_gateway(
    up: &TestUpstream,
    certs: &Certs,
    site: &SignedCertificate,
    clients: &SignedCertificate,
    required: bool,
) -> TestGateway {
    std::fs::write(certs.path("clients-ca.pem"), &clients.ca_pem).expect("write the CA");
    let auth = format!(
        "[tls.client_auth]\nca_file = \"{}\"\nrequired = {required}\n",
        certs.path("clients-ca.pem").display()
    );
    let config = format!(
        "{}{}",
        tls_table(&auth, &certs.write("site", site)),
        one_route(up.addr, REPORTING)
    );
    TestGateway::start(&config, &[("tester.wasm", TESTER)]).await
}

#[tokio::test(flavor = "multi_thread")]
async fn required_client_certificates_are_verified_and_their_identity_reaches_filters() {
    let up = TestUpstream::start("up").await;
    let certs = Certs::new();
    let site = SignedCertificate::for_names(&["localhost"]);
    let clients = SignedCertificate::for_names(&["clients"]);
    let gw = mtls_gateway(&up, &certs, &site, &clients, true).await;
    let addr = tls_addr(&gw);

    let alice = clients.client("alice", "spiffe://example.org/ns/shop/sa/alice");
    let config = client(&[&site.ca_pem], &[b"h2"], Some(&alice), false);
    let spoofed = [("x-forwarded-client-cert", "Subject=\"CN=admin\"")];
    let reply = get_once(addr, config, "localhost", &spoofed)
        .await
        .expect("alice is served");
    assert_eq!(reply.status, 200);
    let field = seen(&reply, "x-forwarded-client-cert");
    assert!(field.starts_with("Hash="), "{field}");
    assert!(field.contains(";Subject=\"CN=alice\""), "{field}");
    assert!(
        field.contains(";URI=\"spiffe://example.org/ns/shop/sa/alice\""),
        "{field}"
    );
    assert!(
        !field.contains("admin"),
        "the client's own claim is replaced: {field}"
    );
    assert_eq!(
        seen(&reply, "x-tester-client-cert"),
        field,
        "the filter sees it too"
    );

    // No certificate, or one from another CA: no request is served.
    let stranger = SignedCertificate::for_names(&["others"]).client("mallory", "spiffe://evil/m");
    for identity in [None, Some(&stranger)] {
        let config = client(&[&site.ca_pem], &[b"h2"], identity, false);
        let refused = get_once(addr, config, "localhost", &[]).await;
        assert!(
            refused.is_err(),
            "served without a valid certificate: {refused:?}"
        );
    }
    let counted = [r#"outcome="failed"} 2"#, r#"outcome="ok"} 1"#];
    assert!(counted_in_metrics(&gw, &counted).await);
    assert_eq!(up.hits(), 1);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn optional_client_certificates_serve_clients_without_one_and_no_identity() {
    let up = TestUpstream::start("up").await;
    let certs = Certs::new();
    let site = SignedCertificate::for_names(&["localhost"]);
    let clients = SignedCertificate::for_names(&["clients"]);
    let gw = mtls_gateway(&up, &certs, &site, &clients, false).await;
    let addr = tls_addr(&gw);

    let anonymous = client(&[&site.ca_pem], &[], None, false);
    let spoofed = [("x-forwarded-client-cert", "Subject=\"CN=admin\"")];
    let reply = get_once(addr, anonymous, "localhost", &spoofed)
        .await
        .expect("served without a certificate");
    assert_eq!(reply.status, 200);
    assert_eq!(seen(&reply, "x-tester-client-cert"), "none");
    assert!(reply.json()["headers"]["x-forwarded-client-cert"].is_null());

    let bob = clients.client("bob", "spiffe://example.org/bob");
    let config = client(&[&site.ca_pem], &[], Some(&bob), false);
    let reply = get_once(addr, config, "localhost", &[])
        .await
        .expect("bob is served");
    assert!(seen(&reply, "x-forwarded-client-cert").contains("Subject=\"CN=bob\""));
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn old_versions_stalled_handshakes_and_clear_text_are_closed_and_counted() {
    let up = TestUpstream::start("up").await;
    let certs = Certs::new();
    let site = SignedCertificate::for_names(&["localhost"]);
    let extra = "min_version = \"1.3\"\nhandshake_timeout_ms = 300";
    let config = format!(
        "{}{}",
        tls_table(extra, &certs.write("site", &site)),
        one_route(up.addr, "")
    );
    let gw = TestGateway::start(&config, &[]).await;
    let addr = tls_addr(&gw);

    // A TLS 1.2 client finds no version in common.
    let old = client(&[&site.ca_pem], &[], None, true);
    assert!(connect(addr, old, "localhost").await.is_err());

    // A client that connects and never finishes its handshake is closed after 300 ms.
    let mut stalled = TcpStream::connect(addr).await.expect("connect");
    let started = std::time::Instant::now();
    let mut buf = [0u8; 64];
    let closed = tokio::time::timeout(Duration::from_secs(5), stalled.read(&mut buf)).await;
    assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "{closed:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "{:?}",
        started.elapsed()
    );

    // Clear text on the TLS port gets no HTTP answer.
    let answer = weir_tests::raw_exchange(addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(!answer.starts_with("HTTP/1.1 200"), "{answer}");

    let counted = [r#"outcome="failed"} 2"#, r#"outcome="timeout"} 1"#];
    assert!(counted_in_metrics(&gw, &counted).await);
    // And a TLS 1.3 client is served all along.
    let modern = client(&[&site.ca_pem], &[], None, false);
    let reply = get_once(addr, modern, "localhost", &[])
        .await
        .expect("served");
    assert_eq!(reply.status, 200);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_websocket_upgrade_over_tls_is_spliced_through() {
    use crate::upgrade::{ACCEPT, KEY, read_head, websocket_echo};
    let (upstream, seen) = websocket_echo().await;
    let certs = Certs::new();
    let site = SignedCertificate::for_names(&["localhost"]);
    let config = format!(
        "{}{}",
        tls_table("", &certs.write("site", &site)),
        one_route(upstream, "")
    );
    let gw = TestGateway::start(&config, &[]).await;
    let config = client(&[&site.ca_pem], &[b"http/1.1"], None, false);
    let mut stream = connect(tls_addr(&gw), config, "localhost")
        .await
        .expect("a handshake");
    let handshake = format!(
        "GET /chat HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(handshake.as_bytes()).await.expect("send");
    let head = read_head(&mut stream).await;
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains(&format!(
        "sec-websocket-accept: {}",
        ACCEPT.to_ascii_lowercase()
    )));
    for message in [&b"hello"[..], &b"over tls"[..]] {
        stream.write_all(message).await.expect("send");
        let mut echoed = vec![0u8; message.len()];
        tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut echoed))
            .await
            .expect("echo in time")
            .expect("read the echo");
        assert_eq!(echoed, message);
    }
    drop(stream);
    let upstream_head = seen.await.expect("the upstream's head");
    assert!(
        upstream_head.contains("x-forwarded-proto: https"),
        "{upstream_head}"
    );
    gw.shutdown().await;
}
