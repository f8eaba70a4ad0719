//! The connector of an upstream: plain TCP, or TLS (rustls with the ring provider) with the
//! targets' certificates verified against the public web roots and a configured CA file,
//! a fixed server name (the targets are dialled by address, resolved when the config
//! loads), and ALPN for the configured protocol.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use hyper_rustls::{FixedServerNameResolver, HttpsConnector};
use hyper_util::client::legacy::connect::HttpConnector;
use rustls::RootCertStore;
use rustls::pki_types::ServerName;

use crate::config::{UpstreamConfig, UpstreamProtocol, UpstreamTlsConfig, millis};

/// The connector every upstream client uses.
pub type Connector = HttpsConnector<HttpConnector>;

/// The connector for `config`'s targets; `base_dir` resolves a relative `ca_file`.
pub fn connector(
    name: &str,
    config: &UpstreamConfig,
    base_dir: &Path,
) -> anyhow::Result<Connector> {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    http.set_connect_timeout(Some(millis(config.connect_timeout_ms)));
    http.enforce_http(false);
    let builder = hyper_rustls::HttpsConnectorBuilder::new();
    let Some(tls) = &config.tls else {
        // Never used for TLS: the request URIs of a plain upstream say `http`.
        let plain = rustls_config(RootCertStore::empty())?;
        return Ok(builder
            .with_tls_config(plain)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http));
    };
    let mut roots = RootCertStore::empty();
    if tls.web_roots {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    if let Some(file) = &tls.ca_file {
        let path = base_dir.join(file);
        let certs = crate::tls::pem::certificates(&path)
            .with_context(|| format!("upstream {name:?}: ca_file"))?;
        for cert in certs {
            roots
                .add(cert)
                .with_context(|| format!("upstream {name:?}: ca_file {}", path.display()))?;
        }
    }
    let server_name = server_name(tls, config);
    let server_name = ServerName::try_from(server_name.clone())
        .with_context(|| format!("upstream {name:?}: server name {server_name:?}"))?;
    let builder = builder
        .with_tls_config(rustls_config(roots)?)
        .https_or_http()
        .with_server_name_resolver(FixedServerNameResolver::new(server_name));
    Ok(match config.protocol {
        UpstreamProtocol::H2 => builder.enable_http2().wrap_connector(http),
        UpstreamProtocol::Http1 | UpstreamProtocol::H2c => {
            builder.enable_http1().wrap_connector(http)
        }
    })
}

/// The name the targets' certificate must carry: configured, or the first target's host.
pub fn server_name(tls: &UpstreamTlsConfig, config: &UpstreamConfig) -> String {
    match &tls.server_name {
        Some(name) => name.clone(),
        None => host_of(
            config
                .targets
                .first()
                .map(|t| t.address())
                .unwrap_or_default(),
        ),
    }
}

fn rustls_config(roots: RootCertStore) -> anyhow::Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// The host of `host:port` (brackets of an IPv6 literal removed).
fn host_of(address: &str) -> String {
    let host = address.rsplit_once(':').map_or(address, |(host, _)| host);
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::host_of;

    #[test]
    fn the_default_server_name_is_the_first_targets_host() {
        for (address, host) in [
            ("api.push.apple.com:443", "api.push.apple.com"),
            ("[::1]:8443", "::1"),
            ("localhost", "localhost"),
        ] {
            assert_eq!(host_of(address), host, "{address}");
        }
    }
}
