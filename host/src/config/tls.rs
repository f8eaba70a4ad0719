//! `[tls]`: HTTPS listeners, their certificates (chosen by SNI), ALPN, the lowest protocol
//! version, and optional client-certificate verification (mTLS). The listeners are bound
//! at start; the certificates, keys and client CAs are read again on every reload, so a
//! renewed certificate is served without a restart.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::bail;
use serde::Deserialize;

/// HTTPS listeners and what they present.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Addresses to serve HTTPS on (HTTP/1.1 and HTTP/2, by ALPN). Changing them needs a
    /// restart.
    #[serde(default)]
    pub listen: Vec<SocketAddr>,
    /// Certificates with their keys. A client's SNI name picks the first one valid for it
    /// (wildcards included); a client without SNI, or with a name none is valid for, gets
    /// the first.
    #[serde(default)]
    pub certificates: Vec<CertificateConfig>,
    /// The protocols offered by ALPN, in order of preference (default `["h2",
    /// "http/1.1"]`).
    #[serde(default = "alpn")]
    pub alpn: Vec<Alpn>,
    /// The lowest TLS version accepted: `"1.2"` (default) or `"1.3"`.
    #[serde(default)]
    pub min_version: TlsVersion,
    /// Time for a client to complete its handshake after connecting (default 10 s).
    #[serde(default = "handshake_timeout_ms")]
    pub handshake_timeout_ms: u64,
    /// Verify clients' certificates (mTLS) against these CAs.
    pub client_auth: Option<ClientAuthConfig>,
}

/// A certificate chain and its private key, as PEM files.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateConfig {
    /// The certificate chain, leaf first (PEM).
    pub cert_file: PathBuf,
    /// The leaf's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
}

/// Client-certificate verification.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClientAuthConfig {
    /// The CAs whose certificates clients may present (PEM).
    pub ca_file: PathBuf,
    /// Refuse the handshake of a client without a certificate (default true); when false,
    /// such a client is served without an identity.
    #[serde(default = "super::defaults::yes")]
    pub required: bool,
}

/// A protocol offered by ALPN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
pub enum Alpn {
    /// HTTP/2 (RFC 9113).
    #[serde(rename = "h2")]
    H2,
    /// HTTP/1.1 (RFC 9112).
    #[serde(rename = "http/1.1")]
    Http11,
}

impl Alpn {
    /// The protocol's ALPN identifier.
    pub fn id(self) -> &'static [u8] {
        match self {
            Self::H2 => b"h2",
            Self::Http11 => b"http/1.1",
        }
    }
}

/// The lowest TLS version a listener accepts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
pub enum TlsVersion {
    /// TLS 1.2 and 1.3.
    #[default]
    #[serde(rename = "1.2")]
    Tls12,
    /// TLS 1.3 only.
    #[serde(rename = "1.3")]
    Tls13,
}

fn alpn() -> Vec<Alpn> {
    vec![Alpn::H2, Alpn::Http11]
}
fn handshake_timeout_ms() -> u64 {
    10_000
}

impl TlsConfig {
    /// Checks the settings that need no file (listeners have certificates and take no
    /// address of `server`'s, ALPN names something, the timeout is sane); the files are
    /// read when a snapshot is built.
    pub(super) fn validate(&self, server: &super::ServerConfig) -> anyhow::Result<()> {
        let taken = (server.listen.iter())
            .chain([&server.admin])
            .chain(server.demo_upstream.as_ref());
        for addr in taken.filter(|a| a.port() != 0) {
            if self.listen.contains(addr) {
                bail!("tls.listen: {addr} is taken by another listener already");
            }
        }
        if self.listen.is_empty() {
            if !self.certificates.is_empty() || self.client_auth.is_some() {
                bail!("tls: certificates are given but tls.listen is empty");
            }
            return Ok(());
        }
        if self.certificates.is_empty() {
            bail!("tls.listen needs at least one [[tls.certificates]] entry");
        }
        if self.alpn.is_empty() {
            bail!("tls.alpn needs at least one protocol (\"h2\", \"http/1.1\")");
        }
        super::bounds::duration("tls.handshake_timeout_ms", self.handshake_timeout_ms, 1)?;
        Ok(())
    }
}
