//! TLS termination for the `[tls]` listeners: rustls (ring provider), TLS 1.2 and 1.3,
//! certificates chosen by SNI, ALPN `h2`/`http/1.1`, optional client certificates
//! verified against configured CAs. A [`Terminator`] is built with each snapshot from the
//! files as they are then, so a reload serves renewed certificates to new handshakes
//! while open connections keep theirs. Session resumption state outlives snapshots.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use rustls::server::{ProducesTickets, StoresServerSessions, WebPkiClientVerifier};
use rustls::{RootCertStore, ServerConfig};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use crate::config::millis;
use crate::config::tls::{TlsConfig, TlsVersion};

mod certificates;
mod identity;
pub mod pem;

pub use identity::ClientIdentity;

/// TLS 1.2 sessions remembered for resumption by session id, all listeners together.
const SESSION_CACHE_ENTRIES: usize = 4_096;

/// Resumption state shared by every snapshot's [`Terminator`]: a bounded cache of TLS 1.2
/// sessions, and the rotating key of TLS 1.3 (and 1.2) session tickets.
pub struct Resumption {
    cache: Arc<dyn StoresServerSessions>,
    ticketer: Arc<dyn ProducesTickets>,
}

impl Resumption {
    /// A fresh cache and ticket key.
    pub fn new() -> anyhow::Result<Self> {
        Ok(Self {
            cache: rustls::server::ServerSessionMemoryCache::new(SESSION_CACHE_ENTRIES),
            ticketer: rustls::crypto::ring::Ticketer::new()
                .map_err(|e| anyhow::anyhow!("TLS session tickets: {e}"))?,
        })
    }
}

/// What terminates TLS on the `[tls]` listeners, as one snapshot configured it.
pub struct Terminator {
    config: Arc<ServerConfig>,
    handshake_timeout: Duration,
    /// Each certificate file and when its leaf expires (Unix seconds).
    expiry: Vec<(String, i64)>,
}

/// The facts of one TLS connection that requests over it carry.
#[derive(Debug)]
pub struct TlsSession {
    /// The SNI name the client sent.
    pub server_name: Option<String>,
    /// Whether ALPN settled on HTTP/2.
    pub h2: bool,
    /// The client's verified certificate, when it presented one.
    pub client: Option<ClientIdentity>,
}

/// Why a handshake did not complete.
#[derive(Debug)]
pub enum HandshakeFailure {
    /// The client did not finish it within `tls.handshake_timeout_ms`.
    TimedOut,
    /// It failed: a protocol error, no shared version or cipher, a refused certificate.
    Failed(std::io::Error),
}

impl Terminator {
    /// The terminator `config` describes, reading its files now (paths resolve against
    /// `base_dir`); none when no `[tls]` listener is configured.
    pub fn build(
        config: &TlsConfig,
        base_dir: &Path,
        resumption: &Resumption,
    ) -> anyhow::Result<Option<Arc<Self>>> {
        if config.listen.is_empty() {
            return Ok(None);
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let versions: &[&rustls::SupportedProtocolVersion] = match config.min_version {
            TlsVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
            TlsVersion::Tls13 => &[&rustls::version::TLS13],
        };
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(versions)
            .context("tls")?;
        let builder = match &config.client_auth {
            None => builder.with_no_client_auth(),
            Some(auth) => {
                let path = base_dir.join(&auth.ca_file);
                let mut roots = RootCertStore::empty();
                for ca in pem::certificates(&path).context("tls.client_auth.ca_file")? {
                    (roots.add(ca))
                        .with_context(|| format!("tls.client_auth.ca_file: {}", path.display()))?;
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
                let verifier = if auth.required {
                    verifier
                } else {
                    verifier.allow_unauthenticated()
                };
                let verifier = verifier.build().context("tls.client_auth")?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let resolver =
            certificates::SniCertificates::load(&config.certificates, base_dir, &provider)?;
        let expiry = resolver.expiry.clone();
        let mut server = builder.with_cert_resolver(Arc::new(resolver));
        server.alpn_protocols = config.alpn.iter().map(|p| p.id().to_vec()).collect();
        server.session_storage = resumption.cache.clone();
        server.ticketer = resumption.ticketer.clone();
        Ok(Some(Arc::new(Self {
            config: Arc::new(server),
            handshake_timeout: millis(config.handshake_timeout_ms),
            expiry,
        })))
    }

    /// Completes the server side of a handshake on `tcp` within the handshake timeout.
    pub async fn accept(
        &self,
        tcp: TcpStream,
    ) -> Result<(TlsStream<TcpStream>, TlsSession), HandshakeFailure> {
        let acceptor = tokio_rustls::TlsAcceptor::from(self.config.clone());
        let stream = tokio::time::timeout(self.handshake_timeout, acceptor.accept(tcp))
            .await
            .map_err(|_| HandshakeFailure::TimedOut)?
            .map_err(HandshakeFailure::Failed)?;
        let (_, connection) = stream.get_ref();
        let session = TlsSession {
            server_name: connection.server_name().map(str::to_owned),
            h2: connection.alpn_protocol() == Some(b"h2"),
            client: (connection.peer_certificates())
                .and_then(|chain| chain.first())
                .and_then(|leaf| ClientIdentity::from_der(leaf)),
        };
        Ok((stream, session))
    }
}

/// Writes when each certificate of `terminator` expires, in the Prometheus text format
/// (the family's header alone without TLS listeners).
pub fn render_expiry(out: &mut String, terminator: Option<&Terminator>) {
    use std::fmt::Write;
    out.push_str("# HELP weir_tls_certificate_not_after_seconds When each served certificate expires (Unix time).\n# TYPE weir_tls_certificate_not_after_seconds gauge\n");
    for (file, not_after) in terminator.iter().flat_map(|t| &t.expiry) {
        let file = crate::metrics::escape_label(file);
        let _ = writeln!(
            out,
            "weir_tls_certificate_not_after_seconds{{file=\"{file}\"}} {not_after}"
        );
    }
}

/// Handshakes on the `[tls]` listeners, kept across snapshots for the metrics.
#[derive(Debug, Default)]
pub struct TlsCounters {
    /// Handshakes completed.
    pub handshakes: AtomicU64,
    /// Handshakes that failed (protocol errors, refused client certificates).
    pub failed: AtomicU64,
    /// Handshakes the client did not finish in time.
    pub timed_out: AtomicU64,
}

impl TlsCounters {
    /// Counts the outcome of one handshake.
    pub fn count<T>(&self, outcome: &Result<T, HandshakeFailure>) {
        let counter = match outcome {
            Ok(_) => &self.handshakes,
            Err(HandshakeFailure::Failed(_)) => &self.failed,
            Err(HandshakeFailure::TimedOut) => &self.timed_out,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Writes the counters in the Prometheus text format.
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write;
        out.push_str("# HELP weir_tls_handshakes_total TLS handshakes on the [tls] listeners, by outcome.\n# TYPE weir_tls_handshakes_total counter\n");
        for (outcome, counter) in [
            ("ok", &self.handshakes),
            ("failed", &self.failed),
            ("timeout", &self.timed_out),
        ] {
            let n = counter.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "weir_tls_handshakes_total{{outcome=\"{outcome}\"}} {n}"
            );
        }
    }
}
