//! Certificates made by a test: a CA of its own and a certificate it signed.

use rcgen::{BasicConstraints, Certificate, CertificateParams, IsCa, Issuer, KeyPair};

/// A certificate for some names, signed by a CA made for it.
pub struct SignedCertificate {
    /// The CA's certificate, as PEM: what a client is told to trust.
    pub ca_pem: String,
    /// The certificate.
    pub certificate: Certificate,
    /// Its private key.
    pub key: KeyPair,
}

impl SignedCertificate {
    /// A certificate for `names` (DNS names, or IP addresses written out), signed by a new
    /// CA.
    pub fn for_names(names: &[&str]) -> Self {
        let ca_key = KeyPair::generate().expect("key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).expect("CA");
        let issuer = Issuer::new(ca_params, ca_key);
        let key = KeyPair::generate().expect("key");
        let names: Vec<String> = names.iter().map(|name| name.to_string()).collect();
        let certificate = CertificateParams::new(names)
            .expect("params")
            .signed_by(&key, &issuer)
            .expect("certificate");
        Self {
            ca_pem: ca.pem(),
            certificate,
            key,
        }
    }
}
