//! The certificates a listener presents, chosen by the client's SNI name: the first one
//! whose names cover it (RFC 6125 matching, wildcards included, as webpki checks a server
//! name), else the first one configured.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, DnsName, ServerName};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::config::tls::CertificateConfig;

/// Certificates by SNI name.
#[derive(Debug)]
pub struct SniCertificates {
    /// In config order; never empty.
    certified: Vec<Arc<CertifiedKey>>,
    /// Each certificate file and when its leaf expires (Unix seconds), in config order.
    pub expiry: Vec<(String, i64)>,
}

impl SniCertificates {
    /// Reads every certificate chain and key of `configs` (paths resolve against
    /// `base_dir`), checking that each key belongs to its certificate and that each
    /// certificate is one webpki can read.
    pub fn load(
        configs: &[CertificateConfig],
        base_dir: &Path,
        provider: &CryptoProvider,
    ) -> anyhow::Result<Self> {
        let mut certified = Vec::with_capacity(configs.len());
        let mut expiry = Vec::with_capacity(configs.len());
        for config in configs {
            let (cert_file, key_file) = (
                base_dir.join(&config.cert_file),
                base_dir.join(&config.key_file),
            );
            let chain = super::pem::certificates(&cert_file).context("tls.certificates")?;
            let key = super::pem::private_key(&key_file).context("tls.certificates")?;
            webpki::EndEntityCert::try_from(&chain[0])
                .map_err(|e| anyhow::anyhow!("tls.certificates: {}: {e:?}", cert_file.display()))?;
            let not_after = super::identity::not_after(&chain[0]).with_context(|| {
                format!(
                    "tls.certificates: {}: unreadable validity",
                    cert_file.display()
                )
            })?;
            warn_if_expiring(&cert_file, not_after);
            expiry.push((cert_file.display().to_string(), not_after));
            let key = CertifiedKey::from_der(chain, key, provider).map_err(|e| {
                anyhow::anyhow!(
                    "tls.certificates: {} and {}: {e}",
                    cert_file.display(),
                    key_file.display()
                )
            })?;
            certified.push(Arc::new(key));
        }
        anyhow::ensure!(!certified.is_empty(), "tls.certificates is empty");
        Ok(Self { certified, expiry })
    }

    /// The certificate for `name`: the first valid for it, else the first.
    fn for_name(&self, name: Option<&str>) -> &Arc<CertifiedKey> {
        let wanted = name
            .and_then(|n| DnsName::try_from(n).ok())
            .map(|n| ServerName::DnsName(n.to_owned()));
        let valid = |key: &&Arc<CertifiedKey>| {
            let (Some(wanted), Some(leaf)) = (&wanted, key.cert.first()) else {
                return false;
            };
            covers(leaf, wanted)
        };
        (self.certified.iter().find(valid)).unwrap_or(&self.certified[0])
    }
}

/// Certificates this close to their end are warned about at every load.
const EXPIRY_WARNING_SECS: i64 = 14 * 86_400;

/// Logs a warning when the certificate of `file` has expired or expires within two weeks:
/// it is served all the same (clients decide), but an operator should know.
fn warn_if_expiring(file: &Path, not_after: i64) {
    let now = crate::time::now_ms() as i64 / 1000;
    let file = file.display();
    if not_after <= now {
        tracing::warn!(%file, not_after, "a TLS certificate has expired: clients will refuse it");
    } else if not_after - now < EXPIRY_WARNING_SECS {
        let days = (not_after - now) / 86_400;
        tracing::warn!(%file, days, "a TLS certificate expires within two weeks");
    }
}

/// Whether `leaf` is valid for `name`.
fn covers(leaf: &CertificateDer<'_>, name: &ServerName<'_>) -> bool {
    webpki::EndEntityCert::try_from(leaf)
        .is_ok_and(|cert| cert.verify_is_valid_for_subject_name(name).is_ok())
}

impl ResolvesServerCert for SniCertificates {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.for_name(hello.server_name()).clone())
    }
}
